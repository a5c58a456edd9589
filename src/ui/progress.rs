//! Progress of long transfers (image pulls). On a TTY: one indicatif bar per item, in a fixed
//! order so lines do not jump. Elsewhere: one plain line when an item starts and one when it ends.
//! Under `--quiet`: nothing but failures.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::Printer;
use crate::progress::{Progress, TransferState};

pub fn progress_for(printer: &Printer) -> Box<dyn Progress> {
    if printer.quiet {
        Box::new(Quiet)
    } else if printer.tty {
        Box::new(Bars::default())
    } else {
        Box::new(Lines)
    }
}

struct Quiet;

impl Progress for Quiet {
    fn start(&self, _: &str) {}
    fn update(&self, _: &str, _: u64, _: u64, _: TransferState) {}
    fn finish(&self, item: &str, outcome: Result<&str, &str>) {
        if let Err(reason) = outcome {
            eprintln!("{item}: failed: {reason}");
        }
    }
}

/// Plain lines on stdout: they are the command's report when no one watches a terminal.
struct Lines;

impl Progress for Lines {
    fn start(&self, item: &str) {
        super::println_safe(&format!("{item}: pulling"));
    }
    fn update(&self, _: &str, _: u64, _: u64, _: TransferState) {}
    fn finish(&self, item: &str, outcome: Result<&str, &str>) {
        match outcome {
            Ok(summary) => super::println_safe(&format!("{item}: {summary}")),
            Err(reason) => super::println_safe(&format!("{item}: failed: {reason}")),
        }
    }
}

#[derive(Default)]
struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl Bars {
    fn bar(&self, item: &str) -> ProgressBar {
        let mut bars = self.bars.lock().unwrap_or_else(|e| e.into_inner());
        bars.entry(item.to_string())
            .or_insert_with(|| {
                let bar = self.multi.add(ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr()));
                bar.set_style(text_style());
                bar.set_prefix(item.to_string());
                bar.enable_steady_tick(Duration::from_millis(120));
                bar
            })
            .clone()
    }
}

/// A line with no bar: for items that wait, and for items that are done.
fn text_style() -> ProgressStyle {
    ProgressStyle::with_template("{prefix:.bold} {msg}").unwrap_or_else(|_| ProgressStyle::default_bar())
}

fn transfer_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{prefix:.bold} {msg:<10} {wide_bar:.cyan/blue} {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("━╸ ")
}

impl Progress for Bars {
    // Lines are laid out once, in the planned order, so they never jump around.
    fn plan(&self, items: &[String]) {
        let width = items.iter().map(|i| i.chars().count()).max().unwrap_or(0);
        for item in items {
            let bar = self.bar(item);
            bar.set_prefix(format!("{item:<width$}"));
            bar.set_message(TransferState::Waiting.label());
        }
    }

    fn start(&self, item: &str) {
        let bar = self.bar(item);
        bar.set_style(transfer_style());
        bar.set_message(TransferState::Waiting.label());
    }

    fn update(&self, item: &str, done: u64, total: u64, state: TransferState) {
        let bar = self.bar(item);
        bar.set_length(total);
        bar.set_position(done.min(total));
        bar.set_message(state.label());
    }

    fn finish(&self, item: &str, outcome: Result<&str, &str>) {
        let bar = self.bar(item);
        bar.set_style(text_style());
        match outcome {
            Ok(summary) => bar.finish_with_message(console::style(summary).green().to_string()),
            Err(reason) => bar.finish_with_message(console::style(format!("failed: {reason}")).red().to_string()),
        }
    }
}
