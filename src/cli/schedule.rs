//! `devbox schedule install|remove|status [--backend NAME]`

use clap::{Args, Subcommand};
use serde::Serialize;

use super::Context;
use crate::config::ConfigSource;
use crate::error::ExitStatus;
use crate::paths::Paths;
use crate::schedule::{self, Backend, BackendKind, Installed, JobEnv, RunRecord, Skipped};
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
    /// Install the cleanup, base-image refresh and clock jobs (those that apply here)
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

/// `devbox schedule install` with the scheduler chosen for this machine; `doctor --fix` calls it.
pub(super) async fn install_detected(ctx: &Context) -> anyhow::Result<ExitStatus> {
    let paths = Paths::resolve(&ctx.env)?;
    let backend = schedule::backend_for(schedule::detect()?, &ctx.env, &paths)?;
    install(ctx, backend.as_ref(), &paths).await
}

impl ScheduleArgs {
    pub async fn run(self, ctx: &Context) -> anyhow::Result<ExitStatus> {
        let paths = Paths::resolve(&ctx.env)?;
        let kind = match self.backend {
            Some(kind) => kind,
            None => schedule::detect()?,
        };
        ctx.printer.detail(format!("scheduler: {kind}"));
        let backend = schedule::backend_for(kind, &ctx.env, &paths)?;
        match self.command {
            ScheduleCommand::Install => install(ctx, backend.as_ref(), &paths).await,
            ScheduleCommand::Remove => {
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
    // The clock job is for VM engines only; the clock's classifier decides.
    let vm_engine = match ctx.engine().await {
        Ok(engine) => crate::clock::runtime::of_engine(&engine, &ctx.env).await.ok().map(|c| c.vm),
        Err(_) => None,
    };
    let (jobs, skipped) = schedule::wanted_jobs(&loaded.config, vm_engine);
    let config = match &loaded.source {
        ConfigSource::Flag { path } | ConfigSource::Env { path } => {
            Some(std::fs::canonicalize(path).unwrap_or(path.clone()))
        }
        _ => None,
    };
    let exe = std::env::current_exe()?;
    let env =
        JobEnv { exe: std::fs::canonicalize(&exe).unwrap_or(exe), state_dir: paths.state_dir().to_path_buf(), config };
    std::fs::create_dir_all(paths.state_dir().join("logs"))?;
    let changes = backend.install(&jobs, &env)?;
    for change in &changes {
        let verb = if jobs.iter().any(|j| j.name == change.job) { "installed" } else { "removed" };
        if change.changed {
            ctx.printer.mark(Mark::Ok, format!("{} job {verb} ({})", change.job, change.location));
        } else {
            ctx.printer.mark(Mark::Same, format!("{} job already {verb} ({})", change.job, change.location));
        }
    }
    for job in &jobs {
        ctx.printer.detail(format!(
            "  {}: {} ({}), log {}",
            job.name,
            env.argv(job).join(" "),
            job.period,
            env.log_path(job.name).display()
        ));
    }
    for Skipped { name, reason } in &skipped {
        ctx.printer.line(format!("- {name} job not installed: {reason}"));
    }
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
