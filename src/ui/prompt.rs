//! Questions to the user, with dialoguer. A prompt appears only when both stdin and stdout are
//! terminals; otherwise the default answer is taken at once, so nothing ever blocks in CI.

use std::io::IsTerminal;

use super::Printer;

/// Asks a yes/no question; without a terminal, answers `default`.
pub fn confirm(printer: &Printer, question: &str, default: bool) -> anyhow::Result<bool> {
    if !(printer.tty && std::io::stdin().is_terminal()) {
        return Ok(default);
    }
    Ok(dialoguer::Confirm::new().with_prompt(question).default(default).interact()?)
}
