//! `devbox schedule install|remove|status [--backend NAME]`

use clap::{Args, Subcommand};
use serde::Serialize;

use crate::cli::{Context, report};
use crate::error::ExitStatus;
use crate::paths::Paths;
use crate::schedule::{self, Backend, BackendKind, Installed, RunRecord};
use crate::ui::Mark;

#[derive(Debug, Args)]
pub struct ScheduleArgs {
    #[command(subcommand)]
    command: ScheduleCommand,

    /// Use this scheduler instead of the one chosen for this machine
    #[arg(long, global = true, value_enum, value_name = "NAME")]
    backend: Option<BackendKind>,
}

#[derive(Debug, Subcommand)]
enum ScheduleCommand {
    /// Install the cleanup, base-image refresh, clock and credentials-renewal jobs (those that apply here)
    Install,
    /// Remove every job devbox installed, and nothing else
    Remove,
    /// Show each job: installed, next run, last run and its outcome
    Status {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

impl ScheduleArgs {
    pub async fn run(self, ctx: &Context) -> anyhow::Result<ExitStatus> {
        let paths = Paths::resolve(&ctx.env)?;
        let Some(backend) = ctx.scheduler(self.backend, &paths)? else {
            let var = schedule::NO_SCHEDULER_VAR;
            ctx.printer.mark(Mark::Same, format!("no scheduler here: {var}=none; nothing to do"));
            return Ok(ExitStatus::Success);
        };
        let kind = backend.kind();
        match self.command {
            ScheduleCommand::Install => {
                let _lock = ctx.lock("schedule install").await?;
                install(ctx, backend.as_ref(), &paths).await
            }
            ScheduleCommand::Remove => {
                let _lock = ctx.lock("schedule remove").await?;
                let changes = backend.remove()?;
                let removed: Vec<_> = changes.iter().filter(|c| c.changed).collect();
                if removed.is_empty() {
                    ctx.printer.mark(Mark::Same, format!("no devbox jobs in {kind}"));
                }
                for change in removed {
                    ctx.printer.mark(Mark::Ok, format!("removed {} ({})", change.job, change.location));
                }
                Ok(ExitStatus::Success)
            }
            ScheduleCommand::Status { json } => status(ctx, backend.as_ref(), &paths, json),
        }
    }
}

async fn install(ctx: &Context, backend: &dyn Backend, paths: &Paths) -> anyhow::Result<ExitStatus> {
    let loaded = ctx.config()?;
    let engine = ctx.engine().await.ok();
    let outcome = schedule::install(&ctx.env, &loaded, engine.as_ref(), backend, paths).await?;
    report::jobs_installed(&ctx.printer, &outcome);
    Ok(ExitStatus::Success)
}

#[derive(Serialize)]
struct JobStatus {
    job: &'static str,
    backend: BackendKind,
    #[serde(flatten)]
    installed: Installed,
    last_run: Option<RunRecord>,
}

fn status(ctx: &Context, backend: &dyn Backend, paths: &Paths, json: bool) -> anyhow::Result<ExitStatus> {
    let mut report = Vec::new();
    for job in schedule::ALL_JOBS {
        report.push(JobStatus {
            job,
            backend: backend.kind(),
            installed: backend.status(job)?,
            last_run: schedule::read_run_record(paths.state_dir(), job),
        });
    }
    if json {
        ctx.printer.json(&report)?;
        return Ok(ExitStatus::Success);
    }
    for s in &report {
        let last = match &s.last_run {
            Some(r) => format!(
                "last run {} ({}, exit {})",
                r.finished_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
                r.outcome,
                r.exit_code
            ),
            None => "never run".into(),
        };
        if s.installed.installed {
            let next = s.installed.next_run.as_deref().unwrap_or("unknown");
            ctx.printer.mark(Mark::Ok, format!("{}: installed in {}, next run {next}, {last}", s.job, s.backend));
        } else {
            ctx.printer.mark(Mark::Same, format!("{}: not installed in {}, {last}", s.job, s.backend));
        }
        ctx.printer.detail(format!("  {}", s.installed.location));
        if let Some(error) = s.last_run.as_ref().and_then(|r| r.error.as_ref()) {
            ctx.printer.hint(format!("last error: {error}"));
        }
    }
    Ok(ExitStatus::Success)
}
