//! `devbox doctor [--json] [--fix] [--check NAME]`

use std::time::Duration;

use clap::Args;
use serde::Serialize;

use crate::cli::{Context, report};
use crate::clock;
use crate::config::Config;
use crate::doctor::{CheckId, Finding, Remedy, Report, Status, run::run, selection};
use crate::error::ExitStatus;
use crate::fleet::send::Sent;
use crate::images::{self, pull::pull_and_record};
use crate::paths::Paths;
use crate::registry;
use crate::schedule;
use crate::ui::{Mark, confirm, progress_for};

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

    /// Then write this machine's report to fleet-report.json in the state directory, and upload it
    /// to the team's bucket when [fleet] report = true
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

#[derive(Serialize)]
struct Applied {
    command: &'static str,
    ok: bool,
    error: Option<String>,
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

        // A fix can uncover what its failure hid (a registry that comes back shows stale images),
        // so check again after each round and apply what is new, a few rounds at most.
        let fix_ctx = if self.json { ctx.quiet() } else { ctx.clone() };
        let mut applied: Vec<Applied> = Vec::new();
        let mut pending = remedies;
        let mut after = before.clone();
        for _round in 0..3 {
            for remedy in pending {
                fix_ctx.printer.line(format!("\n$ {}", remedy.command()));
                applied.push(apply(&fix_ctx, config, remedy).await);
            }
            after = run(&ctx.env, &ctx.config(), &selected, timeout).await;
            pending =
                after.remedies().into_iter().filter(|r| !applied.iter().any(|a| a.command == r.command())).collect();
            if pending.is_empty() {
                break;
            }
        }
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
            Ok(Sent::Local { local }) => p.problem(format!(
                "devbox: fleet report written to {}; not sent: [fleet] report = false in devbox.toml",
                local.display()
            )),
            Ok(Sent::Uploaded { url, bytes, local, by_access_key }) if !self.json => {
                p.line("");
                p.mark(
                    Mark::Ok,
                    format!("fleet report sent to {url} ({bytes} bytes), and written to {}", local.display()),
                );
                if by_access_key {
                    p.hint(
                        "  filed under the access key ID: this S3 endpoint has no STS to name the caller's aws:userid",
                    );
                }
            }
            Ok(Sent::Uploaded { .. }) => {}
            Err(err) => p.problem(format!("devbox: {err:#}")),
        }
    }
}

/// Runs one remedy and says how it went. Errors are reported, not raised: the next round of
/// checks tells what is still wrong.
async fn apply(ctx: &Context, config: &Config, remedy: Remedy) -> Applied {
    let error = match fix(ctx, config, remedy).await {
        Ok(ExitStatus::Success) => None,
        Ok(_) => Some(format!("{} did not fully succeed", remedy.command())),
        Err(err) => {
            let message = format!("{err:#}");
            ctx.printer.mark(Mark::Fail, &message);
            Some(message)
        }
    };
    Applied { command: remedy.command(), ok: error.is_none(), error }
}

/// The domain action behind one remedy, reported as its own command reports it.
async fn fix(ctx: &Context, config: &Config, remedy: Remedy) -> anyhow::Result<ExitStatus> {
    let p = &ctx.printer;
    match remedy {
        Remedy::RegistryUp => {
            let engine = ctx.engine().await?;
            let s3 = registry::connect_s3(&config.registry).await?;
            let up = registry::converge(
                &engine,
                &config.registry,
                s3.as_ref(),
                &registry::proof::Proofs::in_state_dir(&ctx.env),
                progress_for(p).as_ref(),
            )
            .await?;
            report::registry_up(p, &up);
            Ok(ExitStatus::Success)
        }
        Remedy::ClockSync => {
            let synced = clock::sync::run(&ctx.env, config, true, false, &report::ClockSync::new(p, config)).await?;
            Ok(report::clock_synced(p, config, &synced, true))
        }
        Remedy::ScheduleInstall => {
            let paths = Paths::resolve(&ctx.env)?;
            let Some(backend) = ctx.scheduler(None, &paths)? else { return Ok(ExitStatus::Success) };
            let loaded = ctx.config()?;
            let engine = ctx.engine().await.ok();
            let outcome = schedule::install(&ctx.env, &loaded, engine.as_ref(), backend.as_ref(), &paths).await?;
            report::jobs_installed(p, &outcome);
            Ok(ExitStatus::Success)
        }
        Remedy::Pull => {
            let images = images::to_pull(config, &[])?;
            let engine = ctx.engine().await?;
            let state_dir = Paths::resolve(&ctx.env)?.state_dir().to_path_buf();
            let pulled = pull_and_record(&engine, config, &images, &state_dir, progress_for(p).as_ref()).await?;
            Ok(report::pulled(p, &pulled))
        }
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
