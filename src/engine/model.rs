//! What devbox knows of the engine's things: its info, images, containers and one-shot runs, as
//! plain values. `mod.rs` fills them from bollard's answers.

use std::collections::HashMap;
use std::fmt;

use bollard::models::SystemInfo;

/// The engine's own account of itself (`GET /info`), the parts devbox uses.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct EngineInfo {
    /// The engine's clock, as `SystemTime` reports it; `None` if absent or unparsable.
    pub system_time: Option<jiff::Timestamp>,
    /// `SystemTime` exactly as the engine sent it.
    pub system_time_raw: Option<String>,
    pub server_version: String,
    pub api_version: String,
    /// e.g. "Docker Desktop", "Ubuntu 24.04 LTS", "Debian GNU/Linux 12 (bookworm)"
    pub operating_system: String,
    /// "linux" or "windows"
    pub os_type: String,
    pub kernel_version: String,
    /// The engine host's name, e.g. "docker-desktop", "colima", "lima-rancher-desktop"
    pub name: String,
    pub docker_root_dir: String,
    pub labels: Vec<String>,
    /// The engine runs as an unprivileged user (`name=rootless` among its security options:
    /// rootless podman, podman machine's default, and rootless Docker).
    pub rootless: bool,
    /// podman's Docker-compatible API rather than dockerd: its storage is containers/storage and
    /// its log drivers include `k8s-file`, which dockerd has neither of.
    pub podman: bool,
}

/// An image as the engine has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    pub id: String,
    /// `repo@sha256:…` for each registry the image was pulled from or pushed to.
    pub repo_digests: Vec<String>,
    /// The image's own `Entrypoint` and `Cmd`: how it starts when nothing overrides them.
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
}

impl ImageInfo {
    /// The digest this image has in `repo` (e.g. `127.0.0.1:5000/base/go`), if it came from there.
    pub fn digest_in(&self, repo: &str) -> Option<&str> {
        self.repo_digests.iter().find_map(|d| d.strip_prefix(repo)?.strip_prefix('@'))
    }
}

/// What devbox wants a container to be.
#[derive(Clone)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    /// Values may be credentials: they go to the engine and nowhere else.
    pub env: Vec<(String, String)>,
    pub labels: HashMap<String, String>,
    /// (host address, host port, container port)
    pub publish: Option<(String, u16, u16)>,
    /// (volume name, mount point)
    pub volume: Option<(String, String)>,
    pub extra_hosts: Vec<String>,
    pub restart_unless_stopped: bool,
    /// Replaces the image's `Cmd` when not empty.
    pub cmd: Vec<String>,
    /// Anonymous volumes (mount points): removed with the container, writable on a read-only root.
    pub anonymous_volumes: Vec<String>,
    pub hardening: Hardening,
}

/// How a container is confined: the CIS Docker Benchmark's container-runtime settings (5.x) that
/// the engine leaves off by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hardening {
    /// 5.13
    pub read_only_rootfs: bool,
    /// Writable tmpfs mounts on a read-only root: path, and its mount options.
    pub tmpfs: Vec<(String, String)>,
    /// 5.26
    pub no_new_privileges: bool,
    /// 5.4: all capabilities dropped.
    pub cap_drop_all: bool,
    /// 5.11, in bytes.
    pub memory: Option<u64>,
    /// 5.12
    pub cpu_shares: Option<u64>,
    /// 5.29
    pub pids_limit: Option<u64>,
    /// 5.27
    pub health_check: Option<HealthCheck>,
}

/// A container's health check: a command the engine runs inside it every `interval`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// As the engine takes it: `["CMD-SHELL", "…"]` or `["CMD", …]`.
    pub test: Vec<String>,
    pub interval: std::time::Duration,
    pub timeout: std::time::Duration,
    pub retries: u32,
    /// How long after start a failure does not count yet.
    pub start_period: std::time::Duration,
}

/// A short-lived container that runs one command and is removed (e.g. the clock helper).
#[derive(Debug, Clone, PartialEq)]
pub struct OneShotSpec {
    pub name: String,
    pub image: String,
    pub entrypoint: Vec<String>,
    pub args: Vec<String>,
    pub user: String,
    /// Linux capabilities added to the default set, e.g. "SYS_TIME".
    pub cap_add: Vec<String>,
    /// No network at all: the helper needs none.
    pub network_none: bool,
    /// Its standard input stays open, for `Engine::run_once_answering` (`docker run -i`).
    pub interactive: bool,
    pub labels: HashMap<String, String>,
}

/// How a one-shot container ended.
#[derive(Debug, Clone, PartialEq)]
pub enum OneShotOutcome {
    /// It ran and exited with this code, having printed this.
    Exited { code: i64, output: String },
    /// It never ran: the engine refused to create or start it, in these words.
    NotStarted { reason: String },
}

/// What a container is, as far as devbox cares.
#[derive(Clone)]
pub struct ContainerInfo {
    pub id: String,
    pub created: String,
    pub state: String,
    /// The image as it was asked for (`Config.Image`), e.g. `registry:3.0.0@sha256:…`.
    pub image: String,
    /// The ID of the image it runs, whatever the name now points to.
    pub image_id: String,
    pub labels: HashMap<String, String>,
    /// "host address:host port" for each published port.
    pub published: Vec<String>,
    pub(super) env: Vec<String>,
    pub hardening: Hardening,
    /// Its health check's verdict ("starting", "healthy", "unhealthy"); `None` without one.
    pub health: Option<String>,
    /// Its health check's last run, when it has run.
    pub last_health: Option<HealthRun>,
}

/// One run of a container's health check, as the engine keeps it (`State.Health.Log`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthRun {
    pub exit_code: Option<i64>,
    /// What it printed (the engine keeps the first 4 KiB).
    pub output: String,
    pub ended: Option<jiff::Timestamp>,
}

impl ContainerInfo {
    pub fn is_running(&self) -> bool {
        self.state == "running"
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }

    /// The value of one environment variable, for comparing in memory; never printed.
    pub fn env_value(&self, key: &str) -> Option<&str> {
        self.env.iter().find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
    }
}

#[cfg(test)]
impl ContainerInfo {
    pub fn for_tests(state: &str, labels: HashMap<String, String>, env: Vec<String>) -> Self {
        ContainerInfo {
            id: "0123456789ab".into(),
            created: String::new(),
            state: state.into(),
            image: "registry:2.8.3".into(),
            image_id: "sha256:0123".into(),
            labels,
            published: vec![],
            env,
            hardening: Hardening::default(),
            health: None,
            last_health: None,
        }
    }
}

// Environment values can hold credentials, so they never reach a debug print.
impl fmt::Debug for ContainerInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContainerInfo")
            .field("id", &self.id)
            .field("state", &self.state)
            .field("image", &self.image)
            .field("labels", &self.labels)
            .field("published", &self.published)
            .field("env", &format_args!("<{} variables>", self.env.len()))
            .finish()
    }
}

/// devbox's view of the engine's `GET /info` answer.
pub(super) fn engine_info(info: SystemInfo, api_version: String) -> EngineInfo {
    let system_time_raw = info.system_time.clone();
    let log_drivers = info.plugins.as_ref().and_then(|p| p.log.clone()).unwrap_or_default();
    let podman = log_drivers.iter().any(|d| d == "k8s-file")
        || info.docker_root_dir.as_deref().is_some_and(|d| d.ends_with("/containers/storage"));
    EngineInfo {
        podman,
        system_time: system_time_raw.as_deref().and_then(|t| t.parse().ok()),
        system_time_raw,
        server_version: info.server_version.unwrap_or_default(),
        api_version,
        operating_system: info.operating_system.unwrap_or_default(),
        os_type: info.os_type.unwrap_or_default(),
        kernel_version: info.kernel_version.unwrap_or_default(),
        name: info.name.unwrap_or_default(),
        docker_root_dir: info.docker_root_dir.unwrap_or_default(),
        labels: info.labels.unwrap_or_default(),
        rootless: info.security_options.unwrap_or_default().iter().any(|o| o == "name=rootless"),
    }
}

/// An `EngineInfo` from a recorded `GET /info` answer (`docker info --format '{{json .}}'`),
/// through the same mapping as a live engine's.
#[cfg(test)]
pub fn info_from_json(json: &str) -> EngineInfo {
    let info: SystemInfo = serde_json::from_str(json).expect("a recorded engine info payload");
    engine_info(info, "1.41".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_debug_never_shows_environment_values() {
        let info = ContainerInfo {
            id: "abc".into(),
            created: String::new(),
            state: "running".into(),
            image: "registry:2".into(),
            image_id: String::new(),
            labels: HashMap::new(),
            published: vec![],
            env: vec!["AWS_SECRET_ACCESS_KEY=hunter2".into()],
            hardening: Hardening::default(),
            health: None,
            last_health: None,
        };
        assert!(!format!("{info:?}").contains("hunter2"));
        assert_eq!(info.env_value("AWS_SECRET_ACCESS_KEY"), Some("hunter2"));
        assert_eq!(info.env_value("AWS_SECRET"), None);
    }
}
