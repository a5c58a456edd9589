//! Runs the selected checks concurrently, each under its own timeout. A check whose dependency
//! failed is reported as skipped, not run; a frozen engine costs one timeout, never a hang.

use std::collections::BTreeSet;
use std::future::Future;

use futures_util::future::BoxFuture;
use std::time::{Duration, Instant};

use super::{CheckId, Finding, Report, checks};
use crate::config::{Config, LoadedConfig};
use crate::env::Environment;

pub async fn run(
    env: &Environment,
    loaded: &Result<LoadedConfig, anyhow::Error>,
    selected: &BTreeSet<CheckId>,
    timeout: Duration,
) -> Report {
    let wanted = |id: CheckId| selected.contains(&id);
    let started = Instant::now();
    let mut config_finding = checks::config(loaded);
    config_finding.duration = started.elapsed();
    let Ok(loaded) = loaded else {
        let mut findings = vec![config_finding];
        findings.extend(
            selected.iter().filter(|id| **id != CheckId::Config).map(|id| Finding::skipped(*id, CheckId::Config)),
        );
        return Report::new(findings);
    };
    let config = &loaded.config;

    let engine_branch = async {
        if !wanted(CheckId::Engine) {
            return Vec::new();
        }
        let started = Instant::now();
        let connected = tokio::time::timeout(timeout, checks::engine(env)).await;
        let (mut finding, engine) = connected.unwrap_or_else(|_| (timed_out(CheckId::Engine, timeout), None));
        finding.duration = started.elapsed();
        let Some((engine, info)) = engine else {
            let mut findings = vec![finding];
            findings.extend(skip_dependents(selected, CheckId::Engine));
            return findings;
        };
        let engine = &engine;
        let disk = async {
            if wanted(CheckId::Disk) {
                vec![timed(CheckId::Disk, timeout, checks::disk(engine, &info)).await]
            } else {
                vec![]
            }
        };
        let registry = registry_chain(engine, config, selected, timeout);
        let (disk, registry) = tokio::join!(disk, registry);
        [vec![finding], disk, registry].concat()
    };
    let aws = async {
        if wanted(CheckId::AwsCredentials) {
            vec![timed(CheckId::AwsCredentials, timeout, checks::aws_credentials(config)).await]
        } else {
            vec![]
        }
    };
    let push = async {
        if wanted(CheckId::PushCredentials) {
            vec![timed(CheckId::PushCredentials, timeout, checks::push_credentials(env, config)).await]
        } else {
            vec![]
        }
    };
    let (engine, aws, push) = tokio::join!(engine_branch, aws, push);
    let mut findings = vec![config_finding];
    findings.retain(|f| wanted(f.id));
    Report::new([findings, engine, aws, push].concat())
}

/// registry-container → registry-api → base-images, each only if the one before passed.
async fn registry_chain(
    engine: &crate::engine::Engine,
    config: &Config,
    selected: &BTreeSet<CheckId>,
    timeout: Duration,
) -> Vec<Finding> {
    let steps: [(CheckId, BoxFuture<'_, Finding>); 3] = [
        (CheckId::RegistryContainer, Box::pin(checks::registry_container(engine, config))),
        (CheckId::RegistryApi, Box::pin(checks::registry_api(config))),
        (CheckId::BaseImages, Box::pin(checks::base_images(engine, config))),
    ];
    let mut findings = Vec::new();
    for (id, check) in steps {
        if !selected.contains(&id) {
            continue;
        }
        let finding = timed(id, timeout, check).await;
        let failed = !finding.passed();
        findings.push(finding);
        if failed {
            findings.extend(skip_dependents(selected, id));
            break;
        }
    }
    findings
}

/// Every selected check that needs `failed`, directly or not.
fn skip_dependents(selected: &BTreeSet<CheckId>, failed: CheckId) -> Vec<Finding> {
    selected
        .iter()
        .filter(|id| super::selection(&[**id]).contains(&failed) && **id != failed)
        .map(|id| Finding::skipped(*id, failed))
        .collect()
}

async fn timed(id: CheckId, timeout: Duration, check: impl Future<Output = Finding>) -> Finding {
    let started = Instant::now();
    let mut finding = tokio::time::timeout(timeout, check).await.unwrap_or_else(|_| timed_out(id, timeout));
    finding.duration = started.elapsed();
    finding
}

fn timed_out(id: CheckId, timeout: Duration) -> Finding {
    Finding::fail(id, format!("no answer within {}s", timeout.as_secs_f32()))
        .hint("Something this check talks to is frozen or unreachable; the details of the other checks say which.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependents_of_a_failure_are_skipped_transitively() {
        let selected = super::super::selection(&[]);
        let skipped: Vec<CheckId> = skip_dependents(&selected, CheckId::Engine).into_iter().map(|f| f.id).collect();
        assert_eq!(skipped, vec![CheckId::Disk, CheckId::RegistryContainer, CheckId::RegistryApi, CheckId::BaseImages]);
        let skipped: Vec<CheckId> =
            skip_dependents(&selected, CheckId::RegistryApi).into_iter().map(|f| f.id).collect();
        assert_eq!(skipped, vec![CheckId::BaseImages]);
    }
}
