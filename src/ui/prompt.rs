//! Questions to the user, with dialoguer. A prompt appears only when both stdin and stdout are
//! terminals; otherwise the default answer is taken at once, so nothing ever blocks in CI.

use std::io::IsTerminal;

use super::Printer;

/// Whether there is someone to ask: stdin and stdout are both terminals.
pub fn interactive(printer: &Printer) -> bool {
    printer.tty && std::io::stdin().is_terminal()
}

/// Asks a yes/no question; without a terminal, answers `default`.
pub fn confirm(printer: &Printer, question: &str, default: bool) -> anyhow::Result<bool> {
    if !interactive(printer) {
        return Ok(default);
    }
    Ok(dialoguer::Confirm::new().with_prompt(question).default(default).interact()?)
}

/// Asks for a line of text, offering `default` (Enter takes it; it may be empty). `check` may
/// refuse an answer with a reason, and the question is asked again. Without a terminal, answers
/// `default`.
pub fn input(
    printer: &Printer,
    question: &str,
    default: &str,
    check: impl Fn(&str) -> Result<(), String>,
) -> anyhow::Result<String> {
    if !interactive(printer) {
        return Ok(default.to_string());
    }
    let mut prompt = dialoguer::Input::<String>::new().with_prompt(question).allow_empty(true);
    if !default.is_empty() {
        prompt = prompt.default(default.to_string());
    }
    let answer = prompt.validate_with(|text: &String| check(text.trim())).interact_text()?;
    Ok(answer.trim().to_string())
}

/// Asks to pick one of `items`; without a terminal, answers `default`.
pub fn select(printer: &Printer, question: &str, items: &[String], default: usize) -> anyhow::Result<usize> {
    if !interactive(printer) || items.is_empty() {
        return Ok(default);
    }
    Ok(dialoguer::Select::new().with_prompt(question).items(items).default(default).interact()?)
}
