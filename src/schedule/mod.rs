//! The OS scheduler: which jobs devbox wants (a pure function of the config and this binary), how
//! each backend renders them (`templates/schedule/`), and the run records every scheduled run
//! writes. One file per backend, behind the `Backend` trait, chosen at run time; installing the
//! jobs in it is `install.rs`.

pub mod cron;
mod install;
pub mod launchd;
pub mod systemd;
pub mod taskscheduler;
mod tool;
mod when;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{Config, Period};
pub use install::{InstallOutcome, backend_here, install, not_installed, planned_jobs};
pub use tool::run_tool;
pub use when::{CronSpec, Field, Timing, next_run};

/// Every job devbox may install, by name. `remove` takes out all of them.
pub const ALL_JOBS: [&str; 5] = ["cleanup", "refresh", "clock", "renew", "report"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    Systemd,
    Launchd,
    Cron,
    #[value(name = "taskscheduler")]
    TaskScheduler,
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BackendKind::Systemd => "systemd",
            BackendKind::Launchd => "launchd",
            BackendKind::Cron => "cron",
            BackendKind::TaskScheduler => "taskscheduler",
        })
    }
}

/// One scheduled job.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Job {
    pub name: &'static str,
    pub description: &'static str,
    /// devbox's arguments, after the binary's path.
    pub args: Vec<String>,
    pub timing: Timing,
    /// The config value it came from, e.g. "daily" or "10m".
    pub period: String,
}

/// A job devbox does not install, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Skipped {
    pub name: &'static str,
    pub reason: String,
}

/// Where the jobs point: the installed binary, the state directory, and the config they use.
#[derive(Debug, Clone)]
pub struct JobEnv {
    pub exe: PathBuf,
    pub state_dir: PathBuf,
    /// Set when devbox was given a config other than the default location; the jobs use it too.
    pub config: Option<PathBuf>,
}

impl JobEnv {
    pub fn log_path(&self, job: &str) -> PathBuf {
        self.state_dir.join("logs").join(format!("{job}.log"))
    }

    /// The whole command line: the binary, the job marker, the config, then the job's arguments.
    pub fn argv(&self, job: &Job) -> Vec<String> {
        let mut argv = vec![self.exe.display().to_string(), "--scheduled-job".into(), job.name.into()];
        if let Some(config) = &self.config {
            argv.extend(["--config".into(), config.display().to_string()]);
        }
        argv.extend(job.args.iter().cloned());
        argv
    }
}

/// The jobs the config asks for, and those left out with the reason. `vm_engine` says whether the
/// engine runs in a VM (`None`: it did not answer); only a VM gets the clock job.
/// `credentials_expire` says whether the registry container's own AWS credentials expire, as its
/// lease label records (`None`: no container to tell from); only those get the renew job. Pure.
///
/// The renew job follows the running container rather than a credential resolution at install
/// time: resolving would wake the SSO or `credential_process` source on every `schedule install`
/// and `doctor`, and fail when the login has lapsed, while the container is what expires. `init`
/// makes the container before it installs the jobs; `doctor` names a missing renew job.
pub fn wanted_jobs(
    config: &Config,
    vm_engine: Option<bool>,
    credentials_expire: Option<bool>,
) -> (Vec<Job>, Vec<Skipped>) {
    let clock = match vm_engine {
        Some(true) => Ok(Period::Every(config.clock.interval)),
        Some(false) => Err("the engine runs natively on this host, not in a VM".to_string()),
        None => Err("the engine did not answer, so devbox cannot tell whether it runs in a VM".to_string()),
    };
    // As often as the clock job: the refresh window (a quarter of the lifetime, at most 15
    // minutes) is longer than the default 10-minute interval, so one run falls inside it.
    let renew = match credentials_expire {
        Some(true) => Ok(Period::Every(config.clock.interval)),
        Some(false) => Err("the registry's AWS credentials do not expire (long-lived keys, or no S3)".to_string()),
        None => Err("there is no registry container yet to tell whether its AWS credentials expire; \
                     run `devbox schedule install` again after `devbox registry up`"
            .to_string()),
    };
    // The fleet report: daily, when the team config turns it on.
    let report = if config.fleet.report {
        Ok(Period::Daily)
    } else {
        Err("fleet reporting is off ([fleet] report = false)".to_string())
    };
    let candidates = [
        (
            "cleanup",
            "devbox cleanup: stopped containers and dangling images",
            &["cleanup", "--quiet"][..],
            Ok(config.cleanup.schedule),
            when::CLEANUP_ANCHOR,
        ),
        (
            "refresh",
            "devbox pull: refresh the base images",
            &["pull", "--quiet"][..],
            Ok(config.images.refresh),
            when::REFRESH_ANCHOR,
        ),
        (
            "clock",
            "devbox clock sync: set the Docker VM's clock from the host",
            &["clock", "sync", "--if-skewed", "--quiet"][..],
            clock,
            when::CLEANUP_ANCHOR,
        ),
        (
            "renew",
            "devbox registry renew: renew the registry's AWS credentials before they expire",
            &["registry", "renew", "--quiet"][..],
            renew,
            when::CLEANUP_ANCHOR,
        ),
        (
            "report",
            "devbox doctor --report: send this machine's doctor report to the team's bucket",
            &["doctor", "--report", "--quiet"][..],
            report,
            when::REPORT_ANCHOR,
        ),
    ];
    let mut jobs = Vec::new();
    let mut skipped = Vec::new();
    for (name, description, args, period, anchor) in candidates {
        match period {
            Err(reason) => skipped.push(Skipped { name, reason }),
            Ok(Period::Off) => skipped.push(Skipped { name, reason: "switched off in devbox.toml".into() }),
            Ok(period) => jobs.push(Job {
                name,
                description,
                args: args.iter().map(|a| a.to_string()).collect(),
                timing: Timing::from_period(period, anchor),
                period: String::from(period),
            }),
        }
    }
    (jobs, skipped)
}

/// `DEVBOX_SCHEDULER=none` says this machine has no scheduler devbox may use (a container, a CI
/// runner, the tests): schedule commands, `init`, `uninstall` and `doctor` then leave schedules
/// alone.
pub const NO_SCHEDULER_VAR: &str = "DEVBOX_SCHEDULER";

/// The scheduler for this machine: by OS, then whether a systemd user manager answers, else cron.
pub fn detect() -> anyhow::Result<BackendKind> {
    let os = std::env::consts::OS;
    let systemd = os == "linux" && systemd::user_manager_answers();
    let crontab = !systemd && run_tool("crontab", &["-l"], None).is_ok();
    choose_backend(os, systemd, crontab)
        .map_err(|reason| crate::error::Error::Scheduler { backend: "auto".into(), reason }.into())
}

/// The backend of `kind`, working in this user's own directories.
pub fn backend_for(
    kind: BackendKind,
    env: &crate::env::Environment,
    paths: &crate::paths::Paths,
) -> anyhow::Result<Box<dyn Backend>> {
    let home = env.home().ok_or_else(|| {
        crate::error::Error::Usage("HOME is not set, so devbox cannot find your own directories".into())
    })?;
    Ok(match kind {
        BackendKind::Systemd => {
            let config_home = env.var("XDG_CONFIG_HOME").map_or_else(|| home.join(".config"), Into::into);
            Box::new(systemd::Systemd { unit_dir: config_home.join("systemd/user") })
        }
        BackendKind::Launchd => Box::new(launchd::Launchd { agents_dir: home.join("Library/LaunchAgents") }),
        BackendKind::Cron => Box::new(cron::Cron),
        BackendKind::TaskScheduler => {
            Box::new(taskscheduler::TaskScheduler { xml_dir: paths.state_dir().join("schedule") })
        }
    })
}

/// Which backend serves this machine. Pure: the caller says what answers.
pub fn choose_backend(os: &str, systemd_user_answers: bool, has_crontab: bool) -> Result<BackendKind, String> {
    match os {
        "macos" => Ok(BackendKind::Launchd),
        "windows" => Ok(BackendKind::TaskScheduler),
        "linux" if systemd_user_answers => Ok(BackendKind::Systemd),
        _ if has_crontab => Ok(BackendKind::Cron),
        _ => Err(format!(
            "no scheduler found on this {os} machine: no systemd user manager answers and there is no `crontab`"
        )),
    }
}

/// One job's place in the scheduler.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Installed {
    pub installed: bool,
    pub next_run: Option<String>,
    /// Where it lives: a file, a crontab, a task name.
    pub location: String,
}

/// What install or remove did to one job.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub job: String,
    pub location: String,
    pub changed: bool,
}

/// One OS scheduler.
pub trait Backend {
    fn kind(&self) -> BackendKind;
    /// Makes the installed jobs exactly `jobs`: writes what differs, removes devbox jobs not wanted.
    fn install(&self, jobs: &[Job], env: &JobEnv) -> anyhow::Result<Vec<Change>>;
    /// Removes every devbox job, and nothing else.
    fn remove(&self) -> anyhow::Result<Vec<Change>>;
    fn status(&self, job: &str) -> anyhow::Result<Installed>;
    /// Which of devbox's jobs are installed, without when they run next: for `doctor`, which
    /// needs no more. Backends whose status asks a tool per job read it once here.
    fn installed(&self) -> anyhow::Result<Vec<&'static str>> {
        let mut installed = Vec::new();
        for job in ALL_JOBS {
            if self.status(job)?.installed {
                installed.push(job);
            }
        }
        Ok(installed)
    }
}

/// Removes, one by one, the devbox jobs that are not in `jobs`; returns those that were there.
/// For the backends that keep one file or task per job.
pub fn remove_unwanted(
    jobs: &[Job],
    remove_job: impl Fn(&str) -> anyhow::Result<Change>,
) -> anyhow::Result<Vec<Change>> {
    let unwanted = ALL_JOBS.iter().filter(|name| !jobs.iter().any(|j| j.name == **name));
    let mut removed = Vec::new();
    for name in unwanted {
        let change = remove_job(name)?;
        if change.changed {
            removed.push(change);
        }
    }
    Ok(removed)
}

/// The record a scheduled run leaves in `<state_dir>/runs/<job>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub job: String,
    pub started_at: jiff::Timestamp,
    pub finished_at: jiff::Timestamp,
    pub exit_code: u8,
    /// "success", "failure" or "usage error"
    pub outcome: String,
    pub error: Option<String>,
}

pub fn run_record_path(state_dir: &Path, job: &str) -> PathBuf {
    state_dir.join("runs").join(format!("{job}.json"))
}

pub fn write_run_record(state_dir: &Path, record: &RunRecord) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(record)?;
    crate::paths::write_if_changed(&run_record_path(state_dir, &record.job), text.as_bytes())?;
    Ok(())
}

pub fn read_run_record(state_dir: &Path, job: &str) -> Option<RunRecord> {
    let text = std::fs::read_to_string(run_record_path(state_dir, job)).ok()?;
    serde_json::from_str(&text).ok()
}

/// How long a scheduler tool (systemctl, launchctl, crontab, schtasks) has to answer.
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(15);

/// Quotes one argument for a POSIX shell (cron runs its lines with /bin/sh).
pub fn sh_quote(arg: &str) -> String {
    if !arg.is_empty() && arg.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:@,+".contains(c)) {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// Escapes text for XML element content and attributes.
pub fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&apos;")
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
