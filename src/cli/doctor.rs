//! `devbox doctor [--json] [--fix] [--check NAME]`: runs the checks (`doctor::run`), prints them,
//! and with `--fix` hands the remedies to `doctor::fix` under the lock, saying how each went.

use std::time::Duration;

use clap::Args;
use serde::Serialize;

use crate::cli::{Context, report};
use crate::clock::sync::{SyncReport, Synced};
use crate::config::Config;
use crate::doctor::fix::{Applied, FixReport, apply_all};
use crate::doctor::{CheckId, Finding, Remedy, Report, Status, run::run, selection};
use crate::error::ExitStatus;
use crate::fleet::send::Sent;
use crate::images::pull::Pulled;
use crate::progress::Progress;
use crate::registry::Converged;
use crate::schedule::InstallOutcome;
use crate::ui::{Mark, Printer, confirm, progress_for};

/// The per-check timeout when the config cannot be read.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print JSON (schema in docs/doctor.md)
    #[arg(long)]
    json: bool,

    /// Repair what devbox can (start the registry, pull stale images), then check again
    #[arg(long)]
    fix: bool,

    /// With --fix: do not ask first
    #[arg(short, long)]
    yes: bool,

    /// Run only this check and those it needs (repeatable)
    #[arg(long = "check", value_name = "NAME", value_enum)]
    checks: Vec<CheckId>,

    /// Then upload this machine's report to the team's bucket, when [fleet] report = true
    #[arg(long)]
    report: bool,

    /// How long each check may take [default: doctor.timeout, 5s]
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    timeout: Option<Duration>,
}

#[derive(Serialize)]
struct Json<'a> {
    checks: &'a [Finding],
    summary: Summary,
}

#[derive(Serialize)]
struct Summary {
    ok: usize,
    warn: usize,
    fail: usize,
    skipped: usize,
    text: String,
}

impl<'a> Json<'a> {
    fn of(report: &'a Report) -> Self {
        Json {
            checks: &report.checks,
            summary: Summary {
                ok: report.count(Status::Ok),
                warn: report.count(Status::Warn),
                fail: report.count(Status::Fail),
                skipped: report.count(Status::Skipped),
                text: report.summary(),
            },
        }
    }
}

#[derive(Serialize)]
struct FixJson<'a> {
    before: Json<'a>,
    fixes: Vec<Applied>,
    after: Json<'a>,
}

impl DoctorArgs {
    pub async fn run(self, ctx: &Context) -> anyhow::Result<ExitStatus> {
        let selected = selection(&self.checks);
        let loaded = ctx.config();
        let timeout =
            self.timeout.unwrap_or_else(|| loaded.as_ref().map_or(DEFAULT_TIMEOUT, |l| l.config.doctor.timeout));
        let before = run(&ctx.env, &loaded, &selected, timeout).await;
        if !self.fix {
            if self.json {
                ctx.printer.json(&Json::of(&before))?;
            } else {
                print_report(ctx, &before);
            }
            self.send_report(ctx, &before, timeout).await;
            return Ok(exit_status(&before));
        }

        if !self.json {
            print_report(ctx, &before);
        }
        let Ok(loaded_config) = &loaded else {
            return self.finish_fix(ctx, &before, Vec::new(), &before, timeout).await;
        };
        let config = &loaded_config.config;
        let remedies = before.remedies();
        if remedies.is_empty() {
            if !self.json {
                ctx.printer.line("\nNothing here that devbox can fix by itself; the hints above say what to do.");
            }
            return self.finish_fix(ctx, &before, Vec::new(), &before, timeout).await;
        }
        let commands: Vec<&str> = remedies.iter().map(|r| r.command()).collect();
        if !(self.yes || confirm(&ctx.printer, &format!("Run {}?", commands.join(", then ")), true)?) {
            return self.finish_fix(ctx, &before, Vec::new(), &before, timeout).await;
        }

        // Taken once the user said yes: the checks above read only, and a prompt holds no one up.
        let lock = ctx.lock("doctor --fix").await?;
        let printer = if self.json { ctx.quiet().printer } else { ctx.printer };
        let fixes = Fixes { printer: &printer, clock: report::ClockSync::new(&printer, config), config };
        let reload = || ctx.config();
        let (applied, after) =
            apply_all(&ctx.env, loaded_config, &reload, &selected, timeout, remedies, &lock, &fixes).await;
        if !self.json {
            ctx.printer.line(format!("\nAfter the fixes (before: {}):", before.summary()));
            print_report(ctx, &after);
        }
        self.finish_fix(ctx, &before, applied, &after, timeout).await
    }

    async fn finish_fix(
        &self,
        ctx: &Context,
        before: &Report,
        fixes: Vec<Applied>,
        after: &Report,
        timeout: Duration,
    ) -> anyhow::Result<ExitStatus> {
        if self.json {
            ctx.printer.json(&FixJson { before: Json::of(before), fixes, after: Json::of(after) })?;
        }
        self.send_report(ctx, after, timeout).await;
        Ok(exit_status(after))
    }

    /// `--report`: uploads `report` to the fleet's bucket. Whatever happens there, doctor's own
    /// outcome stands: a failed upload is printed (on stderr, so `--json` stays one document),
    /// never turned into doctor's exit code.
    async fn send_report(&self, ctx: &Context, report: &Report, timeout: Duration) {
        if !self.report {
            return;
        }
        let sent = match ctx.config() {
            Ok(loaded) => crate::fleet::send::send(&ctx.env, &loaded.config, report, timeout).await,
            Err(err) => Err(err.context("the fleet report was not sent")),
        };
        let p = &ctx.printer;
        match sent {
            Ok(Sent::Off) => p.problem("devbox: no fleet report sent: [fleet] report = false in devbox.toml"),
            Ok(Sent::Uploaded { url, bytes }) if !self.json => {
                p.line("");
                p.mark(Mark::Ok, format!("fleet report sent to {url} ({bytes} bytes)"));
            }
            Ok(Sent::Uploaded { .. }) => {}
            Err(err) => {
                p.problem(format!("devbox: {err:#}"));
                if let Some(hint) = crate::engine::hint_of(&err) {
                    p.problem(format!("  hint: {hint}"));
                }
            }
        }
    }
}

/// How the remedies read: as their own commands report them.
struct Fixes<'a> {
    printer: &'a Printer,
    clock: report::ClockSync<'a>,
    config: &'a Config,
}

impl FixReport for Fixes<'_> {
    fn applying(&self, remedy: Remedy) {
        self.printer.line(format!("\n$ {}", remedy.command()));
    }

    fn failed(&self, message: &str) {
        self.printer.mark(Mark::Fail, message);
    }

    fn progress(&self) -> Box<dyn Progress> {
        progress_for(self.printer)
    }

    fn registry_up(&self, up: &Converged) {
        report::registry_up(self.printer, up);
    }

    fn pulled(&self, pulled: &Pulled) {
        report::pulled(self.printer, pulled);
    }

    fn jobs_installed(&self, outcome: &InstallOutcome) {
        report::jobs_installed(self.printer, outcome);
    }

    fn clock(&self) -> &dyn SyncReport {
        &self.clock
    }

    fn clock_synced(&self, synced: &Synced) {
        report::clock_synced(self.printer, self.config, synced, true);
    }

    fn detail(&self, text: &str) {
        self.printer.detail(text);
    }
}

fn exit_status(report: &Report) -> ExitStatus {
    if report.failed() { ExitStatus::Failure } else { ExitStatus::Success }
}

fn print_report(ctx: &Context, report: &Report) {
    let p = &ctx.printer;
    for finding in &report.checks {
        let mark = match finding.status {
            Status::Ok => Mark::Ok,
            Status::Warn => Mark::Warn,
            Status::Fail => Mark::Fail,
            Status::Skipped => Mark::Skip,
        };
        // Under --quiet only failures print, so the list must still say which check failed.
        p.mark(mark, format!("{:<19}{}", finding.id.name(), finding.summary));
        if let Some(hint) = &finding.hint {
            p.hint(format!("  {hint}"));
        }
        if let Some(fix) = &finding.fix {
            p.hint(format!("  run: {fix}"));
        }
        if p.verbose {
            for (key, value) in &finding.details {
                p.detail(format!("      {key}: {value}"));
            }
            p.detail(format!("      took {} ms", finding.duration.as_millis()));
        }
    }
    let (fail, warn) = (report.count(Status::Fail), report.count(Status::Warn));
    let mark = if fail > 0 {
        Mark::Fail
    } else if warn > 0 {
        Mark::Warn
    } else {
        Mark::Ok
    };
    p.line("");
    p.mark(mark, report.summary());
    if fail + warn > 0 && !report.remedies().is_empty() {
        p.hint("  `devbox doctor --fix` repairs what devbox can.");
    }
}
