//! Installing the jobs: the scheduler this machine has, the jobs the config asks for there, and
//! the install itself. `schedule install`, `init` and `doctor --fix` all come here.

use crate::config::{ConfigSource, LoadedConfig};
use crate::engine::Engine;
use crate::env::Environment;
use crate::paths::Paths;

use super::{Backend, BackendKind, Change, Job, JobEnv, NO_SCHEDULER_VAR, Skipped, backend_for, detect, wanted_jobs};

/// The scheduler `kind` names, or the one this machine has; `None` under `DEVBOX_SCHEDULER=none`.
pub fn backend_here(
    env: &Environment,
    kind: Option<BackendKind>,
    paths: &Paths,
) -> anyhow::Result<Option<Box<dyn Backend>>> {
    if kind.is_none() && env.var(NO_SCHEDULER_VAR) == Some("none") {
        return Ok(None);
    }
    let kind = match kind {
        Some(kind) => kind,
        None => detect()?,
    };
    backend_for(kind, env, paths).map(Some)
}

/// The jobs `loaded` asks for on this machine, and those left out with the reason. The clock job
/// is for VM engines only, as the clock's classifier tells from `engine` (when it answers).
pub async fn planned_jobs(
    env: &Environment,
    loaded: &LoadedConfig,
    engine: Option<&Engine>,
) -> (Vec<Job>, Vec<Skipped>) {
    let vm_engine = match engine {
        Some(engine) => crate::clock::runtime::of_engine(engine, env).await.ok().map(|c| c.vm),
        None => None,
    };
    let expire = crate::registry::credentials_expire(engine, &loaded.config.registry).await;
    wanted_jobs(&loaded.config, vm_engine, expire)
}

/// The jobs in `jobs` that `backend` does not hold yet: what `init --dry-run` would install.
pub fn not_installed(backend: &dyn Backend, jobs: &[Job]) -> anyhow::Result<Vec<&'static str>> {
    let mut missing = Vec::new();
    for job in jobs {
        if !backend.status(job.name)?.installed {
            missing.push(job.name);
        }
    }
    Ok(missing)
}

/// What an install did.
pub struct InstallOutcome {
    pub jobs: Vec<Job>,
    pub skipped: Vec<Skipped>,
    pub changes: Vec<Change>,
    pub env: JobEnv,
}

/// Makes the jobs in `backend` exactly those `loaded` asks for, pointing at this binary, the state
/// directory, and the config file when it is not the default one.
pub async fn install(
    env: &Environment,
    loaded: &LoadedConfig,
    engine: Option<&Engine>,
    backend: &dyn Backend,
    paths: &Paths,
) -> anyhow::Result<InstallOutcome> {
    let (jobs, skipped) = planned_jobs(env, loaded, engine).await;
    let config = match &loaded.source {
        ConfigSource::Flag { path } | ConfigSource::Env { path } => {
            Some(std::fs::canonicalize(path).unwrap_or(path.clone()))
        }
        _ => None,
    };
    let exe = crate::env::current_exe()?;
    let job_env =
        JobEnv { exe: std::fs::canonicalize(&exe).unwrap_or(exe), state_dir: paths.state_dir().to_path_buf(), config };
    std::fs::create_dir_all(paths.state_dir().join("logs"))?;
    let changes = backend.install(&jobs, &job_env)?;
    Ok(InstallOutcome { jobs, skipped, changes, env: job_env })
}
