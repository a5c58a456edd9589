//! The command line: clap definitions, the global flags, and the context every command runs in.
//! Parsing does no I/O; `Context` turns the flags into real objects on first use.

mod cleanup;
mod clock;
mod completions;
mod config;
mod doctor;
mod fleet;
mod init;
mod pull;
mod registry;
mod report;
mod schedule;
mod self_update;
mod uninstall;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{ConfigSource, LoadedConfig};
use crate::engine::Engine;
use crate::env::Environment;
use crate::error::ExitStatus;
use crate::paths::Paths;
use crate::schedule::{Backend, BackendKind};
use crate::ui::{ColorChoice, Printer};

const ABOUT: &str = "Makes this machine match production: a local read-only registry backed by the team's S3 bucket, \
current base images, a VM clock that AWS accepts, and a Docker disk that never fills up.";

#[derive(Debug, Parser)]
#[command(name = "devbox", version, about = ABOUT, propagate_version = true)]
#[command(after_help = "Exit codes: 0 success, 1 failure, 2 usage or configuration error.")]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Use this config file instead of the default one [env: DEVBOX_CONFIG]
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Print only errors
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Print more detail: endpoints, timings, what each step decided
    #[arg(short, long, global = true)]
    pub verbose: bool,

    /// When to use colour; NO_COLOR is honoured under `auto`
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,

    /// Set by the scheduled jobs: record this run's outcome in <state dir>/runs/NAME.json
    #[arg(long, global = true, hide = true, value_name = "NAME")]
    pub scheduled_job: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Set up this machine, step by step: registry, base images, clock, schedules; safe to run again
    Init(init::InitArgs),
    /// Check everything devbox sets up, each problem with the command that fixes it
    Doctor(doctor::DoctorArgs),
    /// Manage the local registry container (S3-backed, read-only, on 127.0.0.1)
    Registry(registry::RegistryArgs),
    /// Pull the base images through the local registry and tag them with their production names
    Pull(pull::PullArgs),
    /// Measure the clock skew between this host, the Docker engine and S3; fix a drifting VM clock
    Clock(clock::ClockArgs),
    /// Remove stopped containers, dangling images and old build cache, by the [cleanup] policy
    Cleanup(cleanup::CleanupArgs),
    /// Install, remove or show the OS-scheduled jobs (cleanup, base-image refresh, clock)
    Schedule(schedule::ScheduleArgs),
    /// Replace this binary with the newest release (or --version V), checked against its SHA256SUMS
    #[command(disable_version_flag = true)]
    SelfUpdate(self_update::SelfUpdateArgs),
    /// Show where the config lives and what is in force
    Config(config::ConfigArgs),
    /// Print a shell completion script
    Completions(completions::CompletionsArgs),
    /// Remove what init set up: schedules, the registry container, devbox's state
    Uninstall(uninstall::UninstallArgs),
    /// For the platform team: every machine's doctor report from the team's bucket, summed up
    Fleet(fleet::FleetArgs),
}

/// What every command may use: the environment, the printer, and (on demand) the config and engine.
#[derive(Clone)]
pub struct Context {
    pub env: Environment,
    pub printer: Printer,
    config_flag: Option<PathBuf>,
    /// Run by the OS scheduler (`--scheduled-job`): it waits for the lock silently, up to a bound.
    scheduled: bool,
}

impl Context {
    pub fn new(global: &GlobalArgs, env: Environment) -> Self {
        let printer = Printer::new(global.quiet, global.verbose, global.color, env.no_color());
        Context { env, printer, config_flag: global.config.clone(), scheduled: global.scheduled_job.is_some() }
    }

    /// The same context, printing nothing but errors: for a command run inside another one.
    pub fn quiet(&self) -> Context {
        Context { printer: Printer { quiet: true, ..self.printer }, ..self.clone() }
    }

    /// Which file holds the config: `--config`, then `DEVBOX_CONFIG`, then the user's config dir.
    pub fn config_source(&self) -> anyhow::Result<ConfigSource> {
        if let Some(path) = &self.config_flag {
            return Ok(ConfigSource::Flag { path: path.clone() });
        }
        if let Some(path) = self.env.var("DEVBOX_CONFIG") {
            return Ok(ConfigSource::Env { path: PathBuf::from(path) });
        }
        let path = Paths::resolve(&self.env)?.config_file();
        Ok(if path.exists() { ConfigSource::UserFile { path } } else { ConfigSource::Defaults { would_be: path } })
    }

    pub fn config(&self) -> anyhow::Result<LoadedConfig> {
        let loaded = crate::config::load(self.config_source()?).map_err(crate::error::Error::from)?;
        self.printer.detail(format!("config: {}", loaded.source));
        crate::http::install_network(&loaded.config.network, &self.env, loaded.source.path())?;
        Ok(loaded)
    }

    pub async fn engine(&self) -> anyhow::Result<Engine> {
        let engine = Engine::connect(&self.env).await?;
        if self.printer.verbose {
            let info = engine.info().await?;
            self.printer.detail(format!(
                "engine: {} (Docker {} on {}, API {})",
                engine.endpoint(),
                info.server_version,
                info.operating_system,
                info.api_version
            ));
        }
        Ok(engine)
    }

    /// The state directory's lock, for `command` (as typed after `devbox`): what every command that
    /// changes the registry, the state records, the images' tags or the schedules takes first. On a
    /// terminal it waits as long as it takes, saying once for whom; under `--quiet` and in the
    /// scheduled jobs it waits silently up to `DEVBOX_LOCK_WAIT`, then fails naming the holder.
    pub async fn lock(&self, command: &str) -> anyhow::Result<crate::lock::Held> {
        let paths = Paths::resolve(&self.env)?;
        let wait = crate::lock::Wait::for_run(&self.env, self.printer.quiet || self.scheduled)?;
        let held = crate::lock::acquire(paths.state_dir(), command, wait, |text| self.printer.problem(text)).await?;
        Ok(held)
    }

    /// The scheduler `kind` names, or the one this machine has; `None` under `DEVBOX_SCHEDULER=none`.
    pub fn scheduler(&self, kind: Option<BackendKind>, paths: &Paths) -> anyhow::Result<Option<Box<dyn Backend>>> {
        let backend = crate::schedule::backend_here(&self.env, kind, paths)?;
        if let Some(backend) = &backend {
            self.printer.detail(format!("scheduler: {}", backend.kind()));
        }
        Ok(backend)
    }
}

pub async fn run(cli: Cli, env: Environment) -> anyhow::Result<ExitStatus> {
    let ctx = Context::new(&cli.global, env);
    let started_at = jiff::Timestamp::now();
    let result = match cli.command {
        Command::Init(args) => args.run(&ctx).await,
        Command::Doctor(args) => args.run(&ctx).await,
        Command::Registry(args) => args.run(&ctx).await,
        Command::Pull(args) => args.run(&ctx).await,
        Command::Clock(args) => args.run(&ctx).await,
        Command::Cleanup(args) => args.run(&ctx).await,
        Command::Schedule(args) => args.run(&ctx).await,
        Command::SelfUpdate(args) => args.run(&ctx).await,
        Command::Config(args) => args.run(&ctx),
        Command::Completions(args) => args.run(),
        Command::Uninstall(args) => args.run(&ctx).await,
        Command::Fleet(args) => args.run(&ctx).await,
    };
    if let Some(job) = &cli.global.scheduled_job {
        record_scheduled_run(&ctx, job, started_at, &result);
    }
    result
}

/// A scheduled run leaves its outcome for `devbox schedule status`. Failing to write it must not
/// change the run's own outcome, so that failure is only printed.
fn record_scheduled_run(ctx: &Context, job: &str, started_at: jiff::Timestamp, result: &anyhow::Result<ExitStatus>) {
    let status = match result {
        Ok(status) => *status,
        Err(err) => crate::error::exit_status_of(err),
    };
    let record = crate::schedule::RunRecord {
        job: job.to_string(),
        started_at,
        finished_at: jiff::Timestamp::now(),
        exit_code: u8::from(status),
        outcome: match status {
            ExitStatus::Success => "success",
            ExitStatus::Failure => "failure",
            ExitStatus::Usage => "usage error",
        }
        .into(),
        error: result.as_ref().err().map(|e| format!("{e:#}")),
    };
    let written = Paths::resolve(&ctx.env).and_then(|p| crate::schedule::write_run_record(p.state_dir(), &record));
    if let Err(e) = written {
        ctx.printer.problem(format!("devbox: cannot record this scheduled run: {e:#}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
