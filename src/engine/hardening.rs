//! A container's confinement (`Hardening`) in the engine's terms: into a create request, and back
//! out of an inspect answer, so that what devbox asked for and what the engine holds compare.

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::{ContainerState, HealthConfig, HostConfig};

use super::model::{Hardening, HealthCheck, HealthRun};

const NO_NEW_PRIVILEGES: &str = "no-new-privileges";

/// `host` with `hardening`'s settings laid over it.
pub(super) fn apply(hardening: &Hardening, host: HostConfig) -> HostConfig {
    let positive = |value: Option<u64>| value.map(|v| i64::try_from(v).unwrap_or(i64::MAX));
    HostConfig {
        readonly_rootfs: hardening.read_only_rootfs.then_some(true),
        tmpfs: (!hardening.tmpfs.is_empty()).then(|| hardening.tmpfs.iter().cloned().collect::<HashMap<_, _>>()),
        security_opt: hardening.no_new_privileges.then(|| vec![NO_NEW_PRIVILEGES.to_string()]),
        cap_drop: hardening.cap_drop_all.then(|| vec!["ALL".to_string()]),
        memory: positive(hardening.memory),
        // Without a swap limit the engine allows as much swap again: the limit is the limit.
        memory_swap: positive(hardening.memory),
        cpu_shares: positive(hardening.cpu_shares),
        pids_limit: positive(hardening.pids_limit),
        ..host
    }
}

/// The create request's health check.
pub(super) fn health_config(hardening: &Hardening) -> Option<HealthConfig> {
    let nanos = |d: Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
    hardening.health_check.as_ref().map(|check| HealthConfig {
        test: Some(check.test.clone()),
        interval: Some(nanos(check.interval)),
        timeout: Some(nanos(check.timeout)),
        retries: Some(i64::from(check.retries)),
        start_period: Some(nanos(check.start_period)),
        start_interval: None,
    })
}

/// What an inspected container holds. A health check of `["NONE"]` (one switched off) is none.
pub(super) fn read(host: &HostConfig, health: Option<&HealthConfig>) -> Hardening {
    let positive = |value: Option<i64>| value.and_then(|v| u64::try_from(v).ok()).filter(|v| *v > 0);
    let duration = |nanos: Option<i64>| Duration::from_nanos(nanos.and_then(|n| u64::try_from(n).ok()).unwrap_or(0));
    let mut tmpfs: Vec<(String, String)> = host.tmpfs.clone().unwrap_or_default().into_iter().collect();
    tmpfs.sort();
    Hardening {
        read_only_rootfs: host.readonly_rootfs == Some(true),
        tmpfs,
        no_new_privileges: host
            .security_opt
            .iter()
            .flatten()
            .any(|opt| opt == NO_NEW_PRIVILEGES || opt == "no-new-privileges:true" || opt == "no-new-privileges=true"),
        cap_drop_all: host.cap_drop.iter().flatten().any(|cap| cap.eq_ignore_ascii_case("ALL")),
        memory: positive(host.memory),
        cpu_shares: positive(host.cpu_shares),
        pids_limit: positive(host.pids_limit),
        health_check: health.and_then(|h| {
            let test = h.test.clone().unwrap_or_default();
            (!test.is_empty() && test[0] != "NONE").then(|| HealthCheck {
                test,
                interval: duration(h.interval),
                timeout: duration(h.timeout),
                retries: h.retries.and_then(|r| u32::try_from(r).ok()).unwrap_or(0),
                start_period: duration(h.start_period),
            })
        }),
    }
}

/// The health check's verdict, when the container has one.
pub(super) fn status(state: Option<&ContainerState>) -> Option<String> {
    let status = state?.health.as_ref()?.status?;
    Some(status.to_string()).filter(|s| !s.is_empty() && s != "none")
}

/// The health check's last run, newest of those the engine keeps.
pub(super) fn last_run(state: Option<&ContainerState>) -> Option<HealthRun> {
    let run = state?.health.as_ref()?.log.as_ref()?.last()?;
    Some(HealthRun {
        exit_code: run.exit_code,
        output: run.output.clone().unwrap_or_default(),
        ended: run.end.as_deref().and_then(|t| t.parse().ok()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_asked_for_reads_back_the_same() {
        let hardening = Hardening {
            read_only_rootfs: true,
            tmpfs: vec![("/tmp".into(), "rw,noexec,nosuid,size=16m".into())],
            no_new_privileges: true,
            cap_drop_all: true,
            memory: Some(512 << 20),
            cpu_shares: Some(512),
            pids_limit: Some(256),
            health_check: Some(HealthCheck {
                test: vec!["CMD-SHELL".into(), "true".into()],
                interval: Duration::from_secs(30),
                timeout: Duration::from_secs(5),
                retries: 3,
                start_period: Duration::from_secs(10),
            }),
        };
        let host = apply(&hardening, HostConfig::default());
        assert_eq!(read(&host, health_config(&hardening).as_ref()), hardening);
        // Nothing asked for, nothing set: the engine's defaults.
        assert_eq!(apply(&Hardening::default(), HostConfig::default()), HostConfig::default());
        assert_eq!(read(&HostConfig::default(), None), Hardening::default());
    }

    #[test]
    fn a_switched_off_health_check_is_none() {
        let off = HealthConfig { test: Some(vec!["NONE".into()]), ..Default::default() };
        assert_eq!(read(&HostConfig::default(), Some(&off)).health_check, None);
    }
}
