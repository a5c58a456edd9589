//! How devbox's registry container is confined: the CIS Docker Benchmark's container-runtime
//! settings (section 5) that the engine leaves off by default. Pure: the config decides them.
//!
//! - 5.13 a read-only root filesystem. Distribution writes only to its storage (the named volume on
//!   filesystem storage, nothing local on S3) and to `/tmp`, a small tmpfs. devbox's config goes
//!   into [`CONFIG_DIR`], an anonymous volume: the engine refuses uploads into a read-only root, and
//!   the volume goes with the container.
//! - 5.26 `no-new-privileges`, and 5.3/5.4 every capability dropped: the registry listens on 5000
//!   as root in its own namespaces and needs none.
//! - 5.11, 5.12, 5.29 memory, CPU shares and PIDs from `[registry]`.
//! - 5.27 a health check that asks the registry's API, the same `/v2/` request devbox's own ping
//!   makes (a storage failure turns it into a 503, so "healthy" means it can serve).

use std::path::Path;
use std::time::Duration;

use crate::config::RegistryConfig;
use crate::engine::{ContainerInfo, Hardening, HealthCheck};

use super::line;

/// Where devbox's config lives in the container: the directory of [`line::CONFIG_PATH`].
pub const CONFIG_DIR: &str = "/etc/devbox";

/// What the health check asks, from inside the container.
pub const HEALTH_URL: &str = "http://127.0.0.1:5000/v2/";

/// The small writable scratch space distribution may use on a read-only root.
const TMPFS: (&str, &str) = ("/tmp", "rw,noexec,nosuid,nodev,size=16m,mode=1777");

/// The registry container's confinement, from the config.
pub fn hardening(config: &RegistryConfig) -> Hardening {
    debug_assert_eq!(Path::new(line::CONFIG_PATH).parent(), Some(Path::new(CONFIG_DIR)));
    Hardening {
        read_only_rootfs: true,
        tmpfs: vec![(TMPFS.0.to_string(), TMPFS.1.to_string())],
        no_new_privileges: true,
        cap_drop_all: true,
        memory: Some(config.memory.0),
        cpu_shares: Some(u64::from(config.cpu_shares)),
        pids_limit: Some(u64::from(config.pids_limit)),
        health_check: Some(health_check()),
    }
}

/// The health check. Neither official image has curl; both are busybox-based and have `wget`,
/// which the testbed's images carry too. It is a shell command on purpose: the engine keeps the
/// output of its last runs (`State.Health.Log`), so a later step can print more after the probe
/// (the disk of the engine's data root, `df -P /`, is one line) and doctor can read it from an
/// inspect, without running anything in the engine. Only the probe's outcome decides the status:
/// the `df` prints the disk's figure (`crate::disk::from_health` reads it, busybox's or coreutils'
/// alike) and the check then exits 0 whatever it printed.
fn health_check() -> HealthCheck {
    HealthCheck {
        test: vec![
            "CMD-SHELL".to_string(),
            format!("wget -q -T 5 -O /dev/null {HEALTH_URL} || exit 1; df -P -k / 2>&1; exit 0"),
        ],
        interval: Duration::from_secs(30),
        timeout: Duration::from_secs(10),
        retries: 3,
        start_period: Duration::from_secs(10),
    }
}

/// Whether a container's AWS credentials are a long-lived key: a key ID with no session token.
/// Read in memory, never printed.
pub fn holds_long_lived_key(container: &ContainerInfo) -> bool {
    container.env_value("AWS_ACCESS_KEY_ID").is_some() && container.env_value("AWS_SESSION_TOKEN").is_none()
}

/// Each CIS setting, named as doctor reports it, and whether `held` has what `wanted` asks for.
pub fn compare(held: &Hardening, wanted: &Hardening) -> Vec<(&'static str, bool)> {
    let at_most = |held: Option<u64>, wanted: Option<u64>| match (held, wanted) {
        (Some(held), Some(wanted)) => held <= wanted,
        (held, None) => held.is_some() || wanted.is_none(),
        (None, Some(_)) => false,
    };
    vec![
        ("read_only_rootfs", held.read_only_rootfs || !wanted.read_only_rootfs),
        ("no_new_privileges", held.no_new_privileges || !wanted.no_new_privileges),
        ("cap_drop_all", held.cap_drop_all || !wanted.cap_drop_all),
        ("memory", at_most(held.memory, wanted.memory)),
        ("cpu_shares", held.cpu_shares.is_some() || wanted.cpu_shares.is_none()),
        ("pids_limit", at_most(held.pids_limit, wanted.pids_limit)),
        ("health_check", held.health_check.is_some() || wanted.health_check.is_none()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_default_container_misses_every_setting_and_a_hardened_one_none() {
        let wanted = Hardening {
            memory: Some(512 << 20),
            cpu_shares: Some(512),
            pids_limit: Some(256),
            health_check: Some(health_check()),
            read_only_rootfs: true,
            no_new_privileges: true,
            cap_drop_all: true,
            tmpfs: vec![],
        };
        assert!(compare(&Hardening::default(), &wanted).iter().all(|(_, ok)| !ok));
        assert!(compare(&wanted, &wanted).iter().all(|(_, ok)| *ok));
        // A tighter limit than asked is still a limit; a looser one is not what was asked.
        let tighter = Hardening { memory: Some(1 << 20), ..wanted.clone() };
        assert!(compare(&tighter, &wanted).iter().all(|(_, ok)| *ok));
        let looser = Hardening { pids_limit: Some(100_000), ..wanted.clone() };
        assert_eq!(compare(&looser, &wanted).iter().filter(|(_, ok)| !ok).count(), 1);
    }

    #[test]
    fn the_health_check_asks_the_api_from_inside() {
        let check = health_check();
        assert_eq!(check.test[0], "CMD-SHELL");
        assert!(check.test[1].contains("http://127.0.0.1:5000/v2/"), "{:?}", check.test);
        // The disk's figure follows the probe, which alone decides the exit status.
        assert!(check.test[1].contains("|| exit 1; df -P -k /"), "{:?}", check.test);
    }
}
