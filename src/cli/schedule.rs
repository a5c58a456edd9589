//! `devbox schedule install|remove|status [--backend NAME]`

use clap::{Args, Subcommand};
use serde::Serialize;

use super::Context;
use crate::config::{ConfigSource, LoadedConfig};
use crate::engine::Engine;
use crate::error::ExitStatus;
use crate::paths::Paths;
use crate::schedule::{self, Backend, BackendKind, Change, Installed, Job, JobEnv, RunRecord, Skipped};
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
    let Some(backend) = chosen_backend(ctx, None, &paths)? else { return Ok(ExitStatus::Success) };
    install(ctx, backend.as_ref(), &paths).await
}

impl ScheduleArgs {
    pub async fn run(self, ctx: &Context) -> anyhow::Result<ExitStatus> {
        let paths = Paths::resolve(&ctx.env)?;
        let Some(backend) = chosen_backend(ctx, self.backend, &paths)? else {
            ctx.printer.mark(Mark::Same, format!("no scheduler here: {NO_SCHEDULER_VAR}=none; nothing to do"));
            return Ok(ExitStatus::Success);
        };
        let kind = backend.kind();
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

pub(super) use schedule::NO_SCHEDULER_VAR;

/// The scheduler `--backend` names, or the one this machine has; `None` under
/// `DEVBOX_SCHEDULER=none`.
pub(super) fn chosen_backend(
    ctx: &Context,
    kind: Option<BackendKind>,
    paths: &Paths,
) -> anyhow::Result<Option<Box<dyn Backend>>> {
    if kind.is_none() && ctx.env.var(NO_SCHEDULER_VAR) == Some("none") {
        return Ok(None);
    }
    let kind = match kind {
        Some(kind) => kind,
        None => schedule::detect()?,
    };
    ctx.printer.detail(format!("scheduler: {kind}"));
    schedule::backend_for(kind, &ctx.env, paths).map(Some)
}

async fn install(ctx: &Context, backend: &dyn Backend, paths: &Paths) -> anyhow::Result<ExitStatus> {
    let loaded = ctx.config()?;
    let engine = ctx.engine().await.ok();
    let outcome = install_jobs(ctx, &loaded, engine.as_ref(), backend, paths).await?;
    for change in &outcome.changes {
        let verb = if outcome.jobs.iter().any(|j| j.name == change.job) { "installed" } else { "removed" };
        if change.changed {
            ctx.printer.mark(Mark::Ok, format!("{} job {verb} ({})", change.job, change.location));
        } else {
            ctx.printer.mark(Mark::Same, format!("{} job already {verb} ({})", change.job, change.location));
        }
    }
    for job in &outcome.jobs {
        ctx.printer.detail(format!(
            "  {}: {} ({}), log {}",
            job.name,
            outcome.env.argv(job).join(" "),
            job.period,
            outcome.env.log_path(job.name).display()
        ));
    }
    for Skipped { name, reason } in &outcome.skipped {
        ctx.printer.line(format!("- {name} job not installed: {reason}"));
    }
    Ok(ExitStatus::Success)
}

/// What `schedule install` did.
pub(super) struct InstallOutcome {
    pub jobs: Vec<Job>,
    pub skipped: Vec<Skipped>,
    pub changes: Vec<Change>,
    pub env: JobEnv,
}

/// The jobs `loaded` asks for on this machine, and those left out with the reason.
pub(super) async fn planned_jobs(
    ctx: &Context,
    loaded: &LoadedConfig,
    engine: Option<&Engine>,
) -> (Vec<Job>, Vec<Skipped>) {
    // The clock job is for VM engines only; the clock's classifier decides.
    let vm_engine = match engine {
        Some(engine) => crate::clock::runtime::of_engine(engine, &ctx.env).await.ok().map(|c| c.vm),
        None => None,
    };
    schedule::wanted_jobs(&loaded.config, vm_engine)
}

/// The jobs `loaded` asks for, installed in `backend`; prints nothing. `engine` (when it answers)
/// tells whether the clock job applies. `init` calls this for its schedules step.
pub(super) async fn install_jobs(
    ctx: &Context,
    loaded: &LoadedConfig,
    engine: Option<&Engine>,
    backend: &dyn Backend,
    paths: &Paths,
) -> anyhow::Result<InstallOutcome> {
    let (jobs, skipped) = planned_jobs(ctx, loaded, engine).await;
    let config = match &loaded.source {
        ConfigSource::Flag { path } | ConfigSource::Env { path } => {
            Some(std::fs::canonicalize(path).unwrap_or(path.clone()))
        }
        _ => None,
    };
    let exe = crate::env::current_exe()?;
    let env =
        JobEnv { exe: std::fs::canonicalize(&exe).unwrap_or(exe), state_dir: paths.state_dir().to_path_buf(), config };
    std::fs::create_dir_all(paths.state_dir().join("logs"))?;
    let changes = backend.install(&jobs, &env)?;
    Ok(InstallOutcome { jobs, skipped, changes, env })
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
