//! The engine's data disk: how full, and what `devbox cleanup` would free.

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use super::{EngineFacts, Probe};
use crate::cleanup;
use crate::config::Config;
use crate::doctor::{CheckId, Finding, Status};
use crate::env::Environment;
use crate::paths::Paths;

/// Used space of the engine's data disk: warn above 80 %, fail above 90 %.
pub fn disk_verdict(used_percent: f64) -> Status {
    match used_percent {
        p if p > 90.0 => Status::Fail,
        p if p > 80.0 => Status::Warn,
        _ => Status::Ok,
    }
}

pub fn check<'p>(probe: &'p Probe<'_>, facts: &'p EngineFacts) -> BoxFuture<'p, Finding> {
    disk(probe, facts, probe.config, probe.env).boxed()
}

/// The disk that holds the engine's data root, measured where it is (`crate::disk`): this host's
/// for a native engine, the VM's for an engine in a VM.
async fn disk(probe: &Probe<'_>, facts: &EngineFacts, config: &Config, env: &Environment) -> Finding {
    let root = &facts.info.docker_root_dir;
    let measured = async {
        // Inside a VM, the registry's health check may have measured it already: no exec then.
        let registry = if crate::disk::on_this_host(&facts.classification) {
            None
        } else {
            probe.registry_container().await.ok().flatten()
        };
        let health = registry.as_ref().and_then(|c| c.last_health.as_ref());
        crate::disk::measure(&facts.engine, &facts.classification, root, &config.registry, health).await
    };
    let (usage, reclaimable) = tokio::join!(measured, reclaimable(facts, config, env));
    let usage = match usage {
        Ok(usage) if usage.total_bytes > 0 => usage,
        Ok(_) => return Finding::ok(CheckId::Disk, format!("{root}: its size is unknown; {reclaimable}")),
        Err(why) => {
            return Finding::warn(CheckId::Disk, format!("the engine's disk at {root} was not measured: {why}"))
                .detail("docker_root_dir", root.clone());
        }
    };
    let used = usage.used_percent();
    let summary = format!("{used:.0}% used: {}; {reclaimable}", usage.describe(&facts.classification));
    let finding = Finding::new(CheckId::Disk, disk_verdict(used), summary)
        .detail("docker_root_dir", root.clone())
        .detail("free_bytes", usage.available_bytes.to_string())
        .detail("total_bytes", usage.total_bytes.to_string())
        .detail("measured", usage.measured.clone());
    match finding.status {
        Status::Ok => finding,
        _ => finding
            .hint("A full Docker disk breaks builds and pulls. Remove stopped containers and dangling images; `devbox cleanup --dry-run` shows what goes.")
            .fix("devbox cleanup"),
    }
}

/// What `devbox cleanup` would free now, from the same plan it would carry out.
async fn reclaimable(facts: &EngineFacts, config: &Config, env: &Environment) -> String {
    let pulls = Paths::resolve(env).map(|p| cleanup::read_pulls(p.state_dir())).unwrap_or_default();
    // The engine's clock as its info gave it when doctor connected: no second `GET /info`.
    let engine_time = facts.info.system_time;
    match cleanup::make_plan_at(&facts.engine, &cleanup::policy(config), &pulls, engine_time).await {
        Ok(plan) => {
            let removals = plan.containers.iter().chain(&plan.dangling_images).chain(&plan.evicted_images);
            let bytes: u64 = removals.clone().filter_map(|r| r.size).sum();
            match removals.count() {
                0 => "nothing for cleanup to remove".to_string(),
                n => format!("cleanup would remove {n} items, at least {}", crate::config::ByteSize(bytes)),
            }
        }
        Err(err) => format!("reclaimable space unknown ({err:#})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_thresholds() {
        assert_eq!(disk_verdict(50.0), Status::Ok);
        assert_eq!(disk_verdict(80.0), Status::Ok);
        assert_eq!(disk_verdict(80.5), Status::Warn);
        assert_eq!(disk_verdict(90.5), Status::Fail);
    }
}
