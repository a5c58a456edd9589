//! The scheduled jobs: installed in the OS scheduler, and their last runs recent and successful.

use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use super::{EngineFacts, Judge, Probe, timed_out};
use crate::config::Config;
use crate::doctor::{CheckId, Finding, Remedy};
use crate::env::Environment;
use crate::paths::Paths;
use crate::schedule;

/// What the scheduler holds, read at once: its tools are slow processes rather than requests, and
/// need no engine. Only which jobs are expected waits for the engine (the clock job is for VMs).
pub fn measure<'p>(probe: &'p Probe<'_>) -> BoxFuture<'p, Judge<'p>> {
    async move {
        let env = probe.env.clone();
        let task = tokio::task::spawn_blocking(move || scheduler_state(&env));
        let state = match tokio::time::timeout(probe.timeout, task).await {
            Ok(Ok(state)) => state,
            Ok(Err(crashed)) => Err(Finding::fail(CheckId::Schedules, format!("the check crashed: {crashed}"))),
            Err(_) => Err(timed_out(CheckId::Schedules, probe.timeout)),
        };
        let config = probe.config;
        // The renew job is wanted when the registry container's own credentials expire.
        let expire = tokio::time::timeout(probe.timeout, async {
            let facts = probe.engine().await?;
            crate::registry::credentials_expire(Some(&facts.engine), &config.registry).await
        })
        .await
        .ok()
        .flatten();
        Box::new(move |engine: Option<&EngineFacts>| {
            schedules(config, engine.map(|e| e.classification.vm), expire, state)
        }) as Judge<'p>
    }
    .boxed()
}

/// What the OS scheduler holds of devbox's jobs, every job that devbox may install. Blocking: the
/// scheduler tools (crontab, systemctl, launchctl, schtasks) are plain processes, run once each.
pub struct SchedulerState {
    backend: String,
    state_dir: std::path::PathBuf,
    jobs: Vec<(&'static str, bool, Option<schedule::RunRecord>)>,
}

pub fn scheduler_state(env: &Environment) -> Result<Option<SchedulerState>, Finding> {
    if env.var(schedule::NO_SCHEDULER_VAR) == Some("none") {
        return Ok(None);
    }
    let read = || -> anyhow::Result<SchedulerState> {
        let paths = Paths::resolve(env)?;
        let kind = schedule::detect()?;
        let installed = schedule::backend_for(kind, env, &paths)?.installed()?;
        let jobs = schedule::ALL_JOBS
            .into_iter()
            .map(|name| (name, installed.contains(&name), schedule::read_run_record(paths.state_dir(), name)))
            .collect();
        Ok(SchedulerState { backend: kind.to_string(), state_dir: paths.state_dir().to_path_buf(), jobs })
    };
    read().map(Some).map_err(|err| Finding::fail(CheckId::Schedules, format!("{err:#}")))
}

/// How the jobs this machine should have stand: installed, and their last run recent and
/// successful. `vm_engine` decides whether the clock job is expected.
pub fn schedules(
    config: &Config,
    vm_engine: Option<bool>,
    credentials_expire: Option<bool>,
    state: Result<Option<SchedulerState>, Finding>,
) -> Finding {
    let id = CheckId::Schedules;
    let state = match state {
        Ok(Some(state)) => state,
        Ok(None) => {
            return Finding::ok(
                id,
                format!("no scheduler here ({}=none): no jobs expected", schedule::NO_SCHEDULER_VAR),
            );
        }
        Err(finding) => return finding,
    };
    let (jobs, _) = schedule::wanted_jobs(config, vm_engine, credentials_expire);
    let states: Vec<JobState> = jobs
        .iter()
        .map(|job| {
            let found = state.jobs.iter().find(|(name, _, _)| *name == job.name);
            JobState {
                name: job.name,
                installed: found.is_some_and(|(_, installed, _)| *installed),
                period: job.timing.period(),
                last: found.and_then(|(_, _, last)| last.clone()),
            }
        })
        .collect();
    judge_schedules(&states, jiff::Timestamp::now(), &state.backend, &state.state_dir)
}

/// One expected job, as found.
pub struct JobState {
    pub name: &'static str,
    pub installed: bool,
    pub period: Duration,
    pub last: Option<schedule::RunRecord>,
}

/// Missing jobs and failed or overdue last runs are warnings: the machine still works, but the
/// upkeep has stopped. Pure.
pub fn judge_schedules(jobs: &[JobState], now: jiff::Timestamp, backend: &str, state_dir: &std::path::Path) -> Finding {
    let id = CheckId::Schedules;
    if jobs.is_empty() {
        return Finding::ok(id, "no jobs wanted (all switched off in devbox.toml)");
    }
    let missing: Vec<&str> = jobs.iter().filter(|j| !j.installed).map(|j| j.name).collect();
    if !missing.is_empty() {
        return Finding::warn(id, format!("not installed in {backend}: {}", missing.join(", ")))
            .hint("Without them nothing cleans the Docker disk or refreshes the base images.")
            .remedy(Remedy::ScheduleInstall);
    }
    for job in jobs {
        let Some(last) = &job.last else { continue };
        if last.outcome != "success" {
            let log = state_dir.join("logs").join(format!("{}.log", job.name));
            return Finding::warn(id, format!("the last {} run failed (exit {})", job.name, last.exit_code))
                .hint(format!("{}; see {}", last.error.as_deref().unwrap_or("no error recorded"), log.display()));
        }
        let age = now.duration_since(last.finished_at);
        if age.as_secs() > 2 * job.period.as_secs() as i64 {
            return Finding::warn(
                id,
                format!(
                    "{} last ran {}h ago, but should run every {}",
                    job.name,
                    age.as_secs() / 3600,
                    humantime::format_duration(job.period)
                ),
            )
            .hint(format!(
                "The scheduler ({backend}) is not running it: check that the machine's {backend} is active."
            ));
        }
    }
    let names: Vec<&str> = jobs.iter().map(|j| j.name).collect();
    let never: Vec<&str> = jobs.iter().filter(|j| j.last.is_none()).map(|j| j.name).collect();
    let tail =
        if never.is_empty() { "last runs succeeded".to_string() } else { format!("not run yet: {}", never.join(", ")) };
    Finding::ok(id, format!("{} installed in {backend}; {tail}", names.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Status;

    #[test]
    fn schedules_are_judged_by_presence_outcome_and_age() {
        let now: jiff::Timestamp = "2026-11-26T12:00:00Z".parse().expect("timestamp");
        let day = Duration::from_secs(24 * 3600);
        let run = |hours_ago: i64, outcome: &str| {
            let finished_at = now - jiff::SignedDuration::from_hours(hours_ago);
            Some(schedule::RunRecord {
                job: "cleanup".into(),
                started_at: finished_at,
                finished_at,
                exit_code: if outcome == "success" { 0 } else { 1 },
                outcome: outcome.into(),
                error: (outcome != "success").then(|| "engine down".into()),
            })
        };
        let state = std::path::Path::new("/state");
        let job = |installed, last| JobState { name: "cleanup", installed, period: day, last };
        let judged = |jobs: &[JobState]| judge_schedules(jobs, now, "cron", state);

        let missing = judged(&[job(false, None)]);
        assert_eq!((missing.status, missing.remedy), (Status::Warn, Some(Remedy::ScheduleInstall)));
        assert_eq!(judged(&[job(true, None)]).summary, "cleanup installed in cron; not run yet: cleanup");
        assert_eq!(judged(&[job(true, run(20, "success"))]).status, Status::Ok);
        let failed = judged(&[job(true, run(2, "failure"))]);
        assert_eq!(failed.status, Status::Warn);
        assert!(failed.hint.unwrap_or_default().contains("/state/logs/cleanup.log"));
        let overdue = judged(&[job(true, run(60, "success"))]);
        assert_eq!(overdue.status, Status::Warn);
        assert_eq!(overdue.summary, "cleanup last ran 60h ago, but should run every 1day");
    }
}
