//! Runs the selected checks concurrently, each under its own timeout. Everything that does not need
//! another check's result starts at once; afterwards, a check whose dependency failed is reported
//! as skipped, whatever it found. A frozen engine costs one timeout, never a hang.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::{Duration, Instant};

use futures_util::FutureExt;

use super::{CheckId, Finding, Report, Status, checks};
use crate::clock;
use crate::config::LoadedConfig;
use crate::deps;
use crate::env::Environment;

pub async fn run(
    env: &Environment,
    loaded: &Result<LoadedConfig, anyhow::Error>,
    selected: &BTreeSet<CheckId>,
    timeout: Duration,
) -> Report {
    let started = Instant::now();
    let mut config_finding = checks::config(loaded);
    config_finding.duration = started.elapsed();
    let Ok(loaded) = loaded else {
        let others =
            selected.iter().filter(|id| **id != CheckId::Config).map(|id| Finding::skipped(*id, CheckId::Config));
        return Report::new(std::iter::once(config_finding).chain(others).collect());
    };
    let config = &loaded.config;
    let wanted = |id: CheckId| selected.contains(&id);

    // The registry's half of the base-images check needs no engine, and its reads prove the
    // registry's storage too: it starts at once, and both checks share its answer.
    let digests_wanted = wanted(CheckId::BaseImages) || wanted(CheckId::RegistryApi);
    let remote = maybe(digests_wanted, async {
        let digests = checks::registry_digests(config);
        tokio::time::timeout(timeout, digests).await.unwrap_or_else(|_| Err(timed_out(CheckId::BaseImages, timeout)))
    })
    .shared();
    let engine_branch = async {
        // The engine serves more checks than its own; connect if any of them is wanted.
        let needs_engine = [CheckId::Engine, CheckId::Clock, CheckId::Schedules, CheckId::BaseImages];
        if !needs_engine.into_iter().chain(CheckId::Engine.dependents()).any(wanted) {
            return Vec::new();
        }
        let started = Instant::now();
        // So do S3's clock and this host's, read at the same moment.
        let host_clock = clock::Reading::host(jiff::Timestamp::now());
        let s3_clock = async {
            let reading = clock::measure::s3_reading(&config.registry.s3);
            tokio::time::timeout(timeout, reading).await.unwrap_or_else(|_| {
                clock::Reading::failed(clock::ClockName::S3, "S3", format!("no answer within {}s", timeout.as_secs()))
            })
        };
        // And the scheduler's tools, which are slow processes rather than requests.
        let scheduler_state = wanted(CheckId::Schedules).then(|| {
            let env = env.clone();
            tokio::task::spawn_blocking(move || checks::scheduler_state(&env))
        });
        let scheduler_state = async move {
            match scheduler_state {
                Some(task) => Some(
                    tokio::time::timeout(timeout, task)
                        .await
                        .unwrap_or_else(|_| Ok(Err(timed_out(CheckId::Schedules, timeout)))),
                ),
                None => None,
            }
        };
        let (connected, remote, s3_clock) = tokio::join!(
            tokio::time::timeout(timeout, checks::engine(env)),
            async { if wanted(CheckId::BaseImages) { remote.clone().await } else { None } },
            maybe(wanted(CheckId::Clock), s3_clock),
        );
        let (mut engine_finding, facts) = connected.unwrap_or_else(|_| (timed_out(CheckId::Engine, timeout), None));
        engine_finding.duration = started.elapsed();
        let finding = wanted(CheckId::Engine).then_some(engine_finding);
        let mut clock_finding = s3_clock.map(|s3| {
            let mut f = checks::clock(config, facts.as_ref(), s3, host_clock);
            f.duration = started.elapsed();
            f
        });
        let vm_engine = facts.as_ref().map(|f| f.classification.vm);
        let schedules = async {
            let state = scheduler_state.await?;
            let state =
                state.unwrap_or_else(|e| Err(Finding::fail(CheckId::Schedules, format!("the check crashed: {e}"))));
            let mut finding = checks::schedules(config, vm_engine, state);
            finding.duration = started.elapsed();
            Some(finding)
        };
        let Some(facts) = facts else {
            let schedules = schedules.await;
            return [finding, clock_finding.take(), schedules].into_iter().flatten().collect();
        };
        let (engine, info) = (&facts.engine, &facts.info);
        let (disk, container, schedules, images) = tokio::join!(
            maybe(wanted(CheckId::Disk), timed(CheckId::Disk, timeout, checks::disk(engine, info, config, env))),
            maybe(
                wanted(CheckId::RegistryContainer),
                timed(CheckId::RegistryContainer, timeout, checks::registry_container(engine, config))
            ),
            schedules,
            async {
                let remote = remote?;
                let remaining = timeout.saturating_sub(started.elapsed());
                let mut finding = timed(CheckId::BaseImages, remaining, checks::base_images(engine, remote)).await;
                finding.duration = started.elapsed();
                Some(finding)
            },
        );
        [finding, disk, container, images, clock_finding, schedules].into_iter().flatten().collect()
    };
    let (engine, api, aws, push, version) = tokio::join!(
        engine_branch,
        maybe(
            wanted(CheckId::RegistryApi),
            timed(CheckId::RegistryApi, timeout, checks::registry_api(config, remote.clone()))
        ),
        maybe(
            wanted(CheckId::AwsCredentials),
            timed(CheckId::AwsCredentials, timeout, checks::aws_credentials(config))
        ),
        maybe(
            wanted(CheckId::PushCredentials),
            timed(CheckId::PushCredentials, timeout, checks::push_credentials(env, config))
        ),
        maybe(wanted(CheckId::Version), timed(CheckId::Version, timeout, checks::version(config, env))),
    );
    let mut findings = vec![config_finding];
    findings.extend(engine);
    findings.extend([api, aws, push, version].into_iter().flatten());
    Report::new(apply_skips(findings, selected))
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

async fn maybe<T>(wanted: bool, check: impl Future<Output = T>) -> Option<T> {
    if wanted { Some(check.await) } else { None }
}

async fn timed(id: CheckId, timeout: Duration, check: impl Future<Output = Finding>) -> Finding {
    let started = Instant::now();
    let mut finding = tokio::time::timeout(timeout, check).await.unwrap_or_else(|_| timed_out(id, timeout));
    finding.duration = started.elapsed();
    finding
}

fn timed_out(id: CheckId, timeout: Duration) -> Finding {
    Finding::new(id, Status::Fail, format!("no answer within {}s", timeout.as_secs_f32()))
        .hint("Something this check talks to is frozen or unreachable; the details of the other checks say which.")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::selection;

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
                (CheckId::PushCredentials, Status::Ok, "fine".into()),
            ]
        );
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
