//! Runs the selected checks concurrently, each under its own timeout, as their records in
//! `checks` say. Everything starts at once: a check that needs another's result measures what it
//! can meanwhile, and the answers that serve several checks (the engine's connection, the
//! registry's digests) are asked for once. Afterwards, a check whose dependency failed is reported
//! as skipped, whatever it found: waiting for dependencies before starting would put their
//! latencies end to end. A frozen engine costs one timeout, never a hang.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::{Duration, Instant};

use super::checks::{CheckSpec, Probe, Run, timed_out};
use super::{CheckId, Finding, Remedy, Report, Status};
use crate::config::LoadedConfig;
use crate::deps;
use crate::env::Environment;

pub async fn run(
    env: &Environment,
    loaded: &Result<LoadedConfig, anyhow::Error>,
    selected: &BTreeSet<CheckId>,
    timeout: Duration,
) -> Report {
    let specs: Vec<CheckSpec> = selected.iter().map(|id| id.spec()).collect();
    let mut findings: Vec<Finding> = specs.iter().filter_map(|spec| first(spec, loaded)).collect();
    // Without a configuration nothing else can run; each is reported skipped.
    if let Ok(loaded) = loaded {
        let probe = Probe::new(env, &loaded.config, timeout);
        let running = specs.iter().map(|spec| one(&probe, spec));
        findings.extend(futures_util::future::join_all(running).await.into_iter().flatten());
    }
    Report::new(apply_skips(relate(findings), selected))
}

/// Relates findings after the fact. A registry that cannot read its storage while the engine's
/// clock is far off (so S3 refuses its requests' dates) most likely fails because of the clock,
/// even when the registry's own answer names no cause: after three failed storage health checks
/// it answers 503 to everything and logs nothing more. What the registry said, when it named a
/// cause, stands.
pub fn relate(mut findings: Vec<Finding>) -> Vec<Finding> {
    let clock_off = findings
        .iter()
        .find(|f| f.id == CheckId::Clock && f.status == Status::Fail && f.remedy == Some(Remedy::ClockSync))
        .map(|f| f.summary.clone());
    let Some(clock) = clock_off else { return findings };
    for finding in findings.iter_mut().filter(|f| f.id == CheckId::RegistryApi && f.status == Status::Fail) {
        if finding.remedy.is_none() {
            finding.summary = format!("{}: likely because the Docker engine's clock is off ({clock})", finding.summary);
            finding.hint = Some(
                "S3 refuses requests whose date is too far off, so the registry cannot read its storage. Set the Docker VM's clock from this host's; the sync restarts the registry if S3 still refuses it.".into(),
            );
            finding.fix = Some(Remedy::ClockSync.command().to_string());
            finding.remedy = Some(Remedy::ClockSync);
        }
    }
    findings
}

/// The check that comes first, judging the configuration as it loaded.
fn first(spec: &CheckSpec, loaded: &Result<LoadedConfig, anyhow::Error>) -> Option<Finding> {
    let Run::First(check) = spec.run else { return None };
    let started = Instant::now();
    let mut finding = check(loaded);
    finding.duration = started.elapsed();
    Some(finding)
}

/// One of the other checks, run as its record says. `None` when it did not run: it came first,
/// or it works on an engine that did not answer.
async fn one(probe: &Probe<'_>, spec: &CheckSpec) -> Option<Finding> {
    let (id, timeout) = (spec.id, probe.timeout);
    let started = Instant::now();
    let mut finding = match spec.run {
        Run::First(_) => return None,
        Run::Alone(check) => timed(id, timeout, check(probe)).await,
        Run::ThenEngine(measure) => {
            let (judge, engine) = tokio::join!(measure(probe), probe.engine());
            judge(engine.as_deref())
        }
        Run::OnEngine(check) => {
            // The engine's connection is bounded by its own timeout; the check's starts after.
            let engine = probe.engine().await?;
            return Some(timed(id, timeout, check(probe, &engine)).await);
        }
    };
    finding.duration = started.elapsed();
    Some(finding)
}

/// Replaces the finding of every check whose dependency did not pass with "skipped", naming the
/// check that failed at the root, and adds "skipped" for selected checks that never ran (their
/// dependency had nothing to give them).
pub fn apply_skips(findings: Vec<Finding>, selected: &BTreeSet<CheckId>) -> Vec<Finding> {
    let mut by_id: BTreeMap<CheckId, Finding> = findings.into_iter().map(|f| (f.id, f)).collect();
    // CheckId order puts every dependency before the checks that need it.
    let blocked = deps::blocked(selected.iter().copied(), CheckId::depends_on, |id| {
        selected.contains(&id) && by_id.get(&id).is_none_or(|found| !found.passed())
    });
    for (id, root) in blocked {
        by_id.insert(id, Finding::skipped(id, root));
    }
    by_id.into_values().filter(|f| selected.contains(&f.id)).collect()
}

async fn timed(id: CheckId, timeout: Duration, check: impl Future<Output = Finding>) -> Finding {
    let started = Instant::now();
    let mut finding = tokio::time::timeout(timeout, check).await.unwrap_or_else(|_| timed_out(id, timeout));
    finding.duration = started.elapsed();
    finding
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::{Status, selection};

    fn ids_and_status(findings: &[Finding]) -> Vec<(CheckId, Status, String)> {
        findings.iter().map(|f| (f.id, f.status, f.summary.clone())).collect()
    }

    #[test]
    fn a_failed_engine_skips_everything_that_needs_it_naming_the_engine() {
        let selected = selection(&[]);
        let findings = vec![
            Finding::ok(CheckId::Config, "fine"),
            Finding::fail(CheckId::Engine, "down"),
            Finding::fail(CheckId::RegistryApi, "connection refused"),
            Finding::ok(CheckId::AwsCredentials, "fine"),
            Finding::ok(CheckId::PushCredentials, "fine"),
        ];
        let result = apply_skips(findings, &selected);
        let skipped = |id| (id, Status::Skipped, "skipped: engine failed".to_string());
        assert_eq!(
            ids_and_status(&result),
            vec![
                (CheckId::Config, Status::Ok, "fine".into()),
                (CheckId::Engine, Status::Fail, "down".into()),
                skipped(CheckId::Disk),
                skipped(CheckId::RegistryContainer),
                skipped(CheckId::RegistryApi),
                (CheckId::AwsCredentials, Status::Ok, "fine".into()),
                skipped(CheckId::BaseImages),
                skipped(CheckId::ImageSignatures),
                (CheckId::PushCredentials, Status::Ok, "fine".into()),
            ]
        );
    }

    #[test]
    fn a_registry_failure_without_a_cause_is_laid_on_a_clock_that_is_far_off() {
        let clock = Finding::fail(CheckId::Clock, "engine -25h 0m 0.0s from this host").remedy(Remedy::ClockSync);
        let api = Finding::fail(CheckId::RegistryApi, "answered HTTP 503").hint("See what the registry says");
        let related = relate(vec![clock.clone(), api.clone()]);
        assert_eq!(related[1].remedy, Some(Remedy::ClockSync));
        assert_eq!(related[1].fix.as_deref(), Some("devbox clock sync"));
        assert!(related[1].summary.contains("likely because the Docker engine's clock is off"), "{:?}", related[1]);
        // A cause the registry named stands.
        let credentials = api.clone().remedy(Remedy::RegistryUp);
        assert_eq!(relate(vec![clock.clone(), credentials])[1].remedy, Some(Remedy::RegistryUp));
        // A clock within bounds, or this host's own clock off (no sync to offer), relates nothing.
        let warn = Finding::warn(CheckId::Clock, "engine -3s").remedy(Remedy::ClockSync);
        assert_eq!(relate(vec![warn, api.clone()])[1].remedy, None);
        let host = Finding::fail(CheckId::Clock, "S3 +20m from this host");
        assert_eq!(relate(vec![host, api])[1].remedy, None);
    }

    #[test]
    fn a_stopped_registry_skips_the_api_and_images_but_keeps_a_warning_chain() {
        let selected = selection(&[CheckId::BaseImages]);
        let findings = vec![
            Finding::ok(CheckId::Config, "fine"),
            Finding::ok(CheckId::Engine, "up"),
            Finding::fail(CheckId::RegistryContainer, "exited"),
            Finding::fail(CheckId::RegistryApi, "refused"),
            Finding::warn(CheckId::BaseImages, "stale"),
        ];
        let result = apply_skips(findings, &selected);
        assert_eq!(result[3].summary, "skipped: registry-container failed");
        assert_eq!(result[4].summary, "skipped: registry-container failed");

        let warned = vec![
            Finding::ok(CheckId::Config, "fine"),
            Finding::ok(CheckId::Engine, "up"),
            Finding::warn(CheckId::RegistryContainer, "old config"),
            Finding::ok(CheckId::RegistryApi, "answers"),
            Finding::warn(CheckId::BaseImages, "stale"),
        ];
        let result = apply_skips(warned, &selected);
        assert_eq!(result[4].status, Status::Warn, "a warning does not skip what depends on it");
    }
}
