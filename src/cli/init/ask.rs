//! `init`'s questions on a terminal (dialoguer, through `ui`): the S3 bucket, its region and
//! profile, and another port when the registry's is busy. Which questions are asked, and when, is
//! decided in `crate::init::ask`; this file only asks them and shows what `init` shows on the way.

use crate::cli::{Context, report};
use crate::clock::sync::SyncReport;
use crate::config::{self, Config};
use crate::error::Error;
use crate::init::front::{Front, port_free};
use crate::progress::Progress;
use crate::ui::{self, progress_for};

pub(super) struct Terminal {
    ctx: Context,
    /// Everything `init` runs inside its steps prints nothing but errors: one line per step.
    quiet: Context,
    yes: bool,
}

impl Terminal {
    pub(super) fn new(ctx: &Context, yes: bool) -> Self {
        Terminal { ctx: ctx.clone(), quiet: ctx.quiet(), yes }
    }
}

impl Front for Terminal {
    fn interactive(&self) -> bool {
        !self.yes && ui::interactive(&self.ctx.printer)
    }

    fn bucket(&self) -> anyhow::Result<String> {
        ui::input(
            &self.ctx.printer,
            "S3 bucket of the team's registry (empty: none, use local filesystem storage)",
            "",
            |text| if text.is_empty() { Ok(()) } else { config::BucketName::try_from(text.to_string()).map(|_| ()) },
        )
    }

    fn region(&self, default: &str) -> anyhow::Result<String> {
        ui::input(&self.ctx.printer, "The bucket's AWS region", default, |text| {
            if text.is_empty() { Err("a region is needed, e.g. us-east-1".into()) } else { Ok(()) }
        })
    }

    /// Offers the profiles found, with the configured default first.
    fn profile(&self, default: &str, found: &[String]) -> anyhow::Result<String> {
        if found.is_empty() {
            return ui::input(
                &self.ctx.printer,
                "AWS profile for the bucket (from ~/.aws/config)",
                default,
                |_| Ok(()),
            );
        }
        let mut items = found.to_vec();
        if !items.iter().any(|p| p == default) {
            items.insert(0, default.to_string());
        }
        let start = items.iter().position(|p| p == default).unwrap_or(0);
        let picked = ui::select(&self.ctx.printer, "AWS profile for the bucket", &items, start)?;
        Ok(items.swap_remove(picked))
    }

    fn port(&self, why: &str, suggestion: Option<u16>) -> anyhow::Result<u16> {
        let suggestion = suggestion.map(|p| p.to_string()).unwrap_or_default();
        let answer =
            ui::input(&self.ctx.printer, &format!("{why}; the registry's port"), &suggestion, |text| {
                match text.parse::<u16>() {
                    Ok(p) if p > 0 && port_free(p) => Ok(()),
                    Ok(p) if p > 0 => Err(format!("port {p} is in use too")),
                    _ => Err("a port between 1 and 65535".into()),
                }
            })?;
        Ok(answer.parse().map_err(|_| Error::Usage(format!("not a port: {answer}")))?)
    }

    fn trust(&self, from: &str, keys: &[String]) -> anyhow::Result<bool> {
        let question = format!(
            "The team config from {from} is neither pinned nor signed, and it changes {} (what this machine runs, \
             where its AWS session goes, or where devbox updates from). Apply it?",
            keys.join(", ")
        );
        ui::confirm(&self.ctx.printer, &question, false)
    }

    fn diff_line(&self, line: &str) {
        self.ctx.printer.hint(format!("{:10}{line}", ""));
    }

    fn detail(&self, text: String) {
        self.ctx.printer.detail(text);
    }

    fn progress(&self) -> Box<dyn Progress> {
        progress_for(&self.quiet.printer)
    }

    fn clock_report<'a>(&'a self, config: &Config) -> Box<dyn SyncReport + 'a> {
        Box::new(report::ClockSync::new(&self.quiet.printer, config))
    }
}
