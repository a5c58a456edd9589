//! The Docker engine's data disk: how big and how free, measured where that disk is. A native
//! engine's data root is a directory of this host (`statvfs`); an engine in a VM keeps it on the
//! VM's own disk (on a laptop, the Docker disk that fills up), which this host cannot see: a path
//! of the same name here is another disk. There, `df` runs inside the engine.

use std::collections::HashMap;

use serde::Serialize;

use crate::clock::runtime::{Classification, Runtime};
use crate::config::{ByteSize, RegistryConfig};
use crate::engine::{Engine, EngineError, HealthRun, OneShotOutcome, OneShotSpec};

pub const PROBE_ROLE: &str = "disk-probe";
const PROBE_NAME: &str = "devbox-disk-probe";

/// The engine's data disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiskUsage {
    /// The engine's data root (`docker info`'s DockerRootDir).
    pub root: String,
    pub total_bytes: u64,
    pub available_bytes: u64,
    /// How it was measured, in words: "this host's statvfs", "df in container devbox-registry".
    pub measured: String,
    /// Measured inside the engine (its VM, or another machine), not on this host.
    pub inside_engine: bool,
}

impl DiskUsage {
    pub fn used_percent(&self) -> f64 {
        let total = self.total_bytes.max(1);
        100.0 * (total - self.available_bytes.min(total)) as f64 / total as f64
    }

    /// "12.1 GB free of 62.7 GB at /var/lib/docker (inside colima's VM)".
    pub fn describe(&self, engine: &Classification) -> String {
        let place = match (self.inside_engine, engine.runtime) {
            (false, _) => "on this host".to_string(),
            (true, Runtime::Remote) => "on the engine's machine".to_string(),
            (true, runtime) => format!("inside {}'s VM", runtime.label()),
        };
        format!("{} free of {} at {} ({place})", ByteSize(self.available_bytes), ByteSize(self.total_bytes), self.root)
    }
}

/// Whether this host can see the engine's data root itself.
pub fn on_this_host(engine: &Classification) -> bool {
    matches!(engine.runtime, Runtime::NativeLinux | Runtime::NativeWindows)
}

/// `df -P -k` output: the size and the space available of its one filesystem, in bytes.
pub fn parse_df(text: &str) -> Option<(u64, u64)> {
    let line = text.lines().find(|l| l.split_whitespace().nth(1).is_some_and(|f| f.parse::<u64>().is_ok()))?;
    let fields: Vec<&str> = line.split_whitespace().collect();
    let total: u64 = fields.get(1)?.parse().ok()?;
    let available: u64 = fields.get(3)?.parse().ok()?;
    Some((total * 1024, available * 1024))
}

/// The probe container, when there is no running registry container to ask: the registry's own
/// image (already on the engine; never pulled), no network, nothing mounted.
pub fn probe_spec(image: &str, name: &str) -> OneShotSpec {
    OneShotSpec {
        name: name.to_string(),
        image: image.to_string(),
        entrypoint: vec!["df".into()],
        args: vec!["-P".into(), "-k".into(), "/".into()],
        user: String::new(),
        cap_add: vec![],
        network_none: true,
        interactive: false,
        labels: HashMap::from([
            (crate::registry::LABEL_MANAGED.to_string(), "true".to_string()),
            (crate::registry::LABEL_ROLE.to_string(), PROBE_ROLE.to_string()),
        ]),
    }
}

/// How old the registry health check's `df` may be and still stand for the disk now: its interval
/// is 30 s, so a figure older than this means the check has stopped running.
pub const HEALTH_FIGURE_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(120);

/// The disk figure the registry's health check printed on its last run (`df -P -k /` after its
/// probe: see `registry::hardening`), when it is recent enough; with its age.
pub fn from_health(run: &HealthRun, now: jiff::Timestamp) -> Option<((u64, u64), std::time::Duration)> {
    let age = now.duration_since(run.ended?).unsigned_abs();
    (age <= HEALTH_FIGURE_MAX_AGE).then_some(())?;
    Some((parse_df(&run.output)?, age))
}

/// Measures the engine's data disk where it is. `Err` says why it could not be. Inside the engine,
/// `health` (the registry container's last health check run) gives the figure without running
/// anything there, when it is recent: doctor passes it, cleanup (which acts on the figure) does not.
pub async fn measure(
    engine: &Engine,
    classification: &Classification,
    root: &str,
    registry: &RegistryConfig,
    health: Option<&HealthRun>,
) -> Result<DiskUsage, DiskError> {
    if on_this_host(classification) && !root.is_empty() && std::path::Path::new(root).is_dir() {
        let stats = fs4::statvfs(root).map_err(|source| DiskError::Statvfs { root: root.to_string(), source })?;
        return Ok(DiskUsage {
            root: root.to_string(),
            total_bytes: stats.total_space(),
            available_bytes: stats.available_space(),
            measured: "this host's statvfs".into(),
            inside_engine: false,
        });
    }
    let inside = |(total_bytes, available_bytes), measured: String| DiskUsage {
        root: root.to_string(),
        total_bytes,
        available_bytes,
        measured,
        inside_engine: true,
    };
    if let Some((sizes, age)) = health.and_then(|run| from_health(run, jiff::Timestamp::now())) {
        let measured = format!("df by {}'s health check, {} s ago", registry.container, age.as_secs());
        return Ok(inside(sizes, measured));
    }
    // `df` of a container's root filesystem, which the storage driver keeps under the data root:
    // the data root's disk. Nothing is mounted (Docker Desktop refuses to mount a VM path that is
    // not shared from the host). The registry container runs anyway: `df` in it costs an exec, not
    // a container start (seconds in a slow VM).
    let container = &registry.container;
    let args = ["df", "-P", "-k", "/"];
    if let Ok(Some((0, output))) = engine.exec(container, &args).await
        && let Some(sizes) = parse_df(&output)
    {
        return Ok(inside(sizes, format!("df in container {container}")));
    }
    let image = &registry.image;
    if !engine.has_image(image).await? {
        return Err(DiskError::NoImage { image: image.clone() });
    }
    // One name for every probe: a probe left behind (its run was cut short by a timeout, as
    // doctor's checks are) is removed by the next one, by its ID.
    let spec = probe_spec(image, PROBE_NAME);
    // A probe left stopped by an earlier run goes, by its ID; one that runs is another run's.
    if let Some(left) = engine.container(PROBE_NAME).await?
        && left.label(crate::registry::LABEL_ROLE) == Some(PROBE_ROLE)
        && !left.is_running()
    {
        engine.remove_container(&left.id).await?;
    }
    let image = image.clone();
    match engine.run_once(&spec).await? {
        OneShotOutcome::Exited { code: 0, output } => match parse_df(&output) {
            Some(sizes) => Ok(inside(sizes, format!("df in a container of {image}"))),
            None => Err(DiskError::Unreadable { image, output }),
        },
        OneShotOutcome::Exited { code, output } => Err(DiskError::ProbeFailed { image, code, output }),
        OneShotOutcome::NotStarted { reason } => Err(DiskError::ProbeNotStarted { image, reason }),
    }
}

/// Why the engine's disk was not measured.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("statvfs {root}: {source}")]
    Statvfs { root: String, source: std::io::Error },
    #[error(
        "measured inside the engine with the registry image, and {image} is not on the engine (devbox registry up)"
    )]
    NoImage { image: String },
    #[error("df in a container of {image} said: {output}")]
    Unreadable { image: String, output: String },
    #[error("df in a container of {image} exited {code}: {output}")]
    ProbeFailed { image: String, code: i64, output: String },
    #[error("a container of {image} did not start: {reason}")]
    ProbeNotStarted { image: String, reason: String },
    #[error(transparent)]
    Engine(#[from] EngineError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn df_is_read_from_busybox_and_coreutils() {
        let busybox = "Filesystem           1024-blocks    Used Available Capacity Mounted on\n\
                       overlay                 6120712   2157676   3632120  37% /\n";
        assert_eq!(parse_df(busybox), Some((6_120_712 * 1024, 3_632_120 * 1024)));
        let coreutils = "Filesystem     1024-blocks      Used Available Capacity Mounted on\n\
                         overlay          244506940 120000000 112000000      52% /\n";
        assert_eq!(parse_df(coreutils), Some((244_506_940 * 1024, 112_000_000 * 1024)));
        assert_eq!(parse_df("df: /: No such file or directory"), None);
    }

    #[test]
    fn the_health_checks_figure_stands_while_it_is_recent() {
        let now: jiff::Timestamp = "2026-11-28T20:00:00Z".parse().expect("timestamp");
        let ended = |secs: i64| Some(now - jiff::SignedDuration::from_secs(secs));
        let output = "Filesystem 1024-blocks Used Available Capacity Mounted on\noverlay 1000 400 600 40% /\n";
        let run = |output: &str, ended| HealthRun { exit_code: Some(0), output: output.to_string(), ended };
        let fresh = from_health(&run(output, ended(12)), now);
        assert_eq!(fresh, Some(((1000 * 1024, 600 * 1024), std::time::Duration::from_secs(12))));
        assert_eq!(from_health(&run(output, ended(600)), now), None, "too old: the check stopped");
        assert_eq!(from_health(&run(output, None), now), None, "no time: no age to say");
        assert_eq!(from_health(&run("df: not found\n", ended(5)), now), None);
    }

    #[test]
    fn only_a_native_engine_is_measured_on_this_host() {
        assert!(on_this_host(&Classification::new(Runtime::NativeLinux, "")));
        for runtime in [Runtime::Colima, Runtime::DockerDesktop, Runtime::Wsl2, Runtime::Remote] {
            assert!(!on_this_host(&Classification::new(runtime, "")), "{runtime:?}");
        }
    }

    #[test]
    fn the_figure_says_where_it_was_measured() {
        let usage = DiskUsage {
            root: "/var/lib/docker".into(),
            total_bytes: 6 * 1024 * 1024 * 1024,
            available_bytes: 3 * 1024 * 1024 * 1024,
            measured: "df in container devbox-registry".into(),
            inside_engine: true,
        };
        assert_eq!(usage.used_percent(), 50.0);
        let colima = Classification::new(Runtime::Colima, "");
        assert!(
            usage.describe(&colima).ends_with("at /var/lib/docker (inside colima's VM)"),
            "{}",
            usage.describe(&colima)
        );
    }
}
