//! `doctor --fix`: the remedies, each the very domain action of its own command (the registry
//! through `registry::Service`, the pull, the clock sync, the schedules), applied in rounds under
//! the state directory's lock. How each outcome reads is the caller's, through `FixReport`.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::Serialize;

use super::{CheckId, Remedy, Report, run::run};
use crate::clock::sync::{SyncReport, Synced};
use crate::config::{Config, LoadedConfig};
use crate::engine::Engine;
use crate::env::Environment;
use crate::images::{self, pull::Pulled, pull::pull_and_record};
use crate::lock::Held;
use crate::paths::Paths;
use crate::progress::Progress;
use crate::registry::{Converged, Service};
use crate::schedule::{self, InstallOutcome};

/// What the remedies' outcomes look like to the person who asked for them.
pub trait FixReport {
    /// A remedy is about to run.
    fn applying(&self, remedy: Remedy);
    /// It failed: the error, with its causes.
    fn failed(&self, message: &str);
    fn progress(&self) -> Box<dyn Progress>;
    fn registry_up(&self, up: &Converged);
    fn pulled(&self, pulled: &Pulled);
    fn jobs_installed(&self, outcome: &InstallOutcome);
    /// What the clock sync says while it runs, and how it ended.
    fn clock(&self) -> &dyn SyncReport;
    fn clock_synced(&self, synced: &Synced);
    /// The scheduler the schedules go to.
    fn detail(&self, text: &str);
}

/// One remedy as it went.
#[derive(Debug, Clone, Serialize)]
pub struct Applied {
    pub command: &'static str,
    pub ok: bool,
    pub error: Option<String>,
}

/// How the configuration is read again between rounds (a fix may have written it).
pub type Reload<'a> = &'a dyn Fn() -> anyhow::Result<LoadedConfig>;

/// Applies `remedies` (found by `before`'s checks), then checks `selected` again. A fix can uncover
/// what its failure hid (a registry that comes back shows stale images), so what is new after a
/// round is applied too, a few rounds at most. Returns what was applied and the last report.
#[allow(clippy::too_many_arguments)]
pub async fn apply_all(
    env: &Environment,
    loaded: &LoadedConfig,
    reload: Reload<'_>,
    selected: &BTreeSet<CheckId>,
    timeout: Duration,
    remedies: Vec<Remedy>,
    lock: &Held,
    report: &dyn FixReport,
) -> (Vec<Applied>, Report) {
    let mut applied: Vec<Applied> = Vec::new();
    let mut pending = remedies;
    let mut after = None;
    for _round in 0..3 {
        for remedy in pending {
            report.applying(remedy);
            applied.push(apply(env, loaded, remedy, lock, report).await);
        }
        let checked = run(env, &reload(), selected, timeout).await;
        pending =
            checked.remedies().into_iter().filter(|r| !applied.iter().any(|a| a.command == r.command())).collect();
        after = Some(checked);
        if pending.is_empty() {
            break;
        }
    }
    let after = match after {
        Some(after) => after,
        None => run(env, &reload(), selected, timeout).await,
    };
    (applied, after)
}

/// Runs one remedy and says how it went. Errors are reported, not raised: the next round of
/// checks tells what is still wrong.
async fn apply(
    env: &Environment,
    loaded: &LoadedConfig,
    remedy: Remedy,
    lock: &Held,
    report: &dyn FixReport,
) -> Applied {
    let error = match fix(env, loaded, remedy, lock, report).await {
        Ok(true) => None,
        Ok(false) => Some(format!("{} did not fully succeed", remedy.command())),
        Err(err) => {
            let message = format!("{err:#}");
            report.failed(&message);
            Some(message)
        }
    };
    Applied { command: remedy.command(), ok: error.is_none(), error }
}

/// The domain action behind one remedy; `false` when it ran but did not fully succeed.
async fn fix(
    env: &Environment,
    loaded: &LoadedConfig,
    remedy: Remedy,
    lock: &Held,
    report: &dyn FixReport,
) -> anyhow::Result<bool> {
    let config: &Config = &loaded.config;
    match remedy {
        Remedy::RegistryUp => {
            let engine = Engine::connect(env).await?;
            let up = Service::new(&engine, &config.registry, lock).up(report.progress().as_ref()).await?;
            report.registry_up(&up);
            Ok(true)
        }
        Remedy::ClockSync => {
            let synced = crate::clock::sync::run(env, config, true, false, report.clock()).await?;
            report.clock_synced(&synced);
            Ok(!synced.failed())
        }
        Remedy::ScheduleInstall => {
            let paths = Paths::resolve(env)?;
            let Some(backend) = schedule::backend_here(env, None, &paths)? else { return Ok(true) };
            report.detail(&format!("scheduler: {}", backend.kind()));
            let engine = Engine::connect(env).await.ok();
            let outcome = schedule::install(env, loaded, engine.as_ref(), backend.as_ref(), &paths).await?;
            report.jobs_installed(&outcome);
            Ok(true)
        }
        Remedy::Pull => {
            let images = images::to_pull(config, &[])?;
            let engine = Engine::connect(env).await?;
            let pulled = pull_and_record(&engine, config, &images, lock, report.progress().as_ref()).await?;
            report.pulled(&pulled);
            Ok(pulled.failed() == 0)
        }
    }
}
