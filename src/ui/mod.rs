//! Everything the user sees: plain lines, status marks, JSON, and progress. Only this module knows
//! `console` and `indicatif`; domain code reports through the `Progress` trait.

// The one place that writes to stdout and stderr (with `main`): everything else goes through here.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod progress;
mod prompt;

use std::io::{IsTerminal, Write};

pub use progress::progress_for;
pub use prompt::{confirm, input, interactive, select};

/// `--color`: when to colour output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// How loud to be, decided once from `-q`, `-v`, `--color`, `NO_COLOR` and whether stdout is a TTY.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    pub quiet: bool,
    pub verbose: bool,
    pub tty: bool,
}

/// The outcome of one step or check, as a mark at the start of its line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// ✓ done or healthy
    Ok,
    /// = already in place
    Same,
    /// ! a warning
    Warn,
    /// ✗ failed
    Fail,
    /// - not run
    Skip,
}

impl Printer {
    pub fn new(quiet: bool, verbose: bool, color: ColorChoice, no_color_env: bool) -> Self {
        let tty = std::io::stdout().is_terminal();
        let colors = match color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => tty && !no_color_env,
        };
        console::set_colors_enabled(colors);
        console::set_colors_enabled_stderr(colors && std::io::stderr().is_terminal() || color == ColorChoice::Always);
        Printer { quiet, verbose, tty }
    }

    /// A line of normal output. `--quiet` drops it.
    pub fn line(&self, text: impl AsRef<str>) {
        if !self.quiet {
            println_safe(text.as_ref());
        }
    }

    /// A line shown only with `-v`.
    pub fn detail(&self, text: impl AsRef<str>) {
        if self.verbose && !self.quiet {
            println_safe(&console::style(text.as_ref()).dim().to_string());
        }
    }

    /// A status line: mark, then text. Failures still print under `--quiet`, on stderr.
    pub fn mark(&self, mark: Mark, text: impl AsRef<str>) {
        let symbol = match mark {
            Mark::Ok => console::style("✓").green(),
            Mark::Same => console::style("=").dim(),
            Mark::Warn => console::style("!").yellow(),
            Mark::Fail => console::style("✗").red(),
            Mark::Skip => console::style("-").dim(),
        };
        let line = format!("{symbol} {}", text.as_ref());
        match (mark, self.quiet) {
            (Mark::Fail, true) => eprintln!("{line}"),
            (_, true) => {}
            _ => println_safe(&line),
        }
    }

    /// A problem that must reach the user even under `--quiet` (a scheduled job runs quietly): on
    /// stderr, always.
    pub fn problem(&self, text: impl AsRef<str>) {
        eprintln!("{}", text.as_ref());
    }

    /// An indented hint under a status line.
    pub fn hint(&self, text: impl AsRef<str>) {
        if !self.quiet {
            println_safe(&format!("  {}", console::style(text.as_ref()).dim()));
        }
    }

    /// Machine-readable output: always printed, whatever the verbosity.
    pub fn json(&self, value: &impl serde::Serialize) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(value)?;
        println_safe(&text);
        Ok(())
    }

    /// Raw text that is the command's product (a path, a config file, a script): always printed.
    pub fn product(&self, text: impl AsRef<str>) {
        let text = text.as_ref();
        if text.ends_with('\n') {
            print_safe(text);
        } else {
            println_safe(text);
        }
    }
}

/// Prints the final error with its chain of causes and its hint. Only `main` calls this.
pub fn print_error(err: &anyhow::Error, hint: Option<String>) {
    let mut text = format!("{} {err}", console::style("error:").red().bold());
    // anyhow chains often repeat the inner message inside the outer one: `causes` says each once.
    for cause in crate::error::causes(err.as_ref()).iter().skip(1) {
        text.push_str(&format!("\n  caused by: {cause}"));
    }
    if let Some(hint) = hint {
        text.push_str(&format!("\n{} {hint}", console::style("hint:").cyan().bold()));
    }
    eprintln!("{text}");
}

// A closed pipe (`devbox … | head`) is not an error worth a panic.
pub(super) fn println_safe(text: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

fn print_safe(text: &str) {
    let _ = write!(std::io::stdout().lock(), "{text}");
}
