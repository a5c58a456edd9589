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
/// How old a stopped probe must be to count as left behind: longer than any run waits for one.
const PROBE_LEFT_AFTER: std::time::Duration = std::time::Duration::from_secs(15 * 60);
/// A probe's name: this prefix and the process's ID, so that two doctors at once each run their own.
const PROBE_NAME: &str = "devbox-disk-probe";

/// The engine's data disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiskUsage {
    /// The engine's data root (`docker info`'s DockerRootDir).
    pub root: String,
    pub total_bytes: u64,
    /// In use, as `df` counts it: the size less the free blocks (root's reserve is free, not used).
    pub used_bytes: u64,
    /// What an unprivileged writer may still use (`df`'s "Available": the reserve left out).
    pub available_bytes: u64,
    /// How it was measured, in words: "this host's statvfs", "df in container devbox-registry".
    pub measured: String,
    /// Measured inside the engine (its VM, or another machine), not on this host.
    pub inside_engine: bool,
}

impl DiskUsage {
    /// How full the disk is, as `df` says it: used of used plus available. A filesystem's reserve
    /// for root (5 % by default, far more on some machines) is neither, so a disk is not called
    /// full while `df` says it has room.
    pub fn used_percent(&self) -> f64 {
        let usable = (self.used_bytes + self.available_bytes).max(1);
        100.0 * self.used_bytes as f64 / usable as f64
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

/// The size, the space used and the space available of one filesystem, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    pub total: u64,
    pub used: u64,
    pub available: u64,
}

/// `df -P -k` output: the sizes of its one filesystem.
pub fn parse_df(text: &str) -> Option<Sizes> {
    let line = text.lines().find(|l| l.split_whitespace().nth(1).is_some_and(|f| f.parse::<u64>().is_ok()))?;
    let fields: Vec<&str> = line.split_whitespace().collect();
    let kib = |at: usize| fields.get(at)?.parse::<u64>().ok().map(|k| k * 1024);
    Some(Sizes { total: kib(1)?, used: kib(2)?, available: kib(3)? })
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
pub fn from_health(run: &HealthRun, now: jiff::Timestamp) -> Option<(Sizes, std::time::Duration)> {
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
            used_bytes: stats.total_space().saturating_sub(stats.free_space()),
            available_bytes: stats.available_space(),
            measured: "this host's statvfs".into(),
            inside_engine: false,
        });
    }
    let inside = |sizes: Sizes, measured: String| DiskUsage {
        root: root.to_string(),
        total_bytes: sizes.total,
        used_bytes: sizes.used,
        available_bytes: sizes.available,
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
    // A probe left behind (its run was cut short by a timeout, as doctor's checks are, or killed)
    // is removed by a later one, by its ID. A young one may be another run's, between its create
    // and start, or its exit and the reading of its output: it is left alone.
    let before = jiff::Timestamp::now() - PROBE_LEFT_AFTER;
    for left in engine.stopped_labelled(crate::registry::LABEL_ROLE, PROBE_ROLE, before).await? {
        engine.remove_container(&left).await?;
    }
    let spec = probe_spec(image, &format!("{PROBE_NAME}-{}", std::process::id()));
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
        let sizes = |total: u64, used: u64, available: u64| {
            Some(Sizes { total: total * 1024, used: used * 1024, available: available * 1024 })
        };
        assert_eq!(parse_df(busybox), sizes(6_120_712, 2_157_676, 3_632_120));
        let coreutils = "Filesystem     1024-blocks      Used Available Capacity Mounted on\n\
                         overlay          244506940 120000000 112000000      52% /\n";
        assert_eq!(parse_df(coreutils), sizes(244_506_940, 120_000_000, 112_000_000));
        assert_eq!(parse_df("df: /: No such file or directory"), None);
    }

    #[test]
    fn the_health_checks_figure_stands_while_it_is_recent() {
        let now: jiff::Timestamp = "2026-11-28T20:00:00Z".parse().expect("timestamp");
        let ended = |secs: i64| Some(now - jiff::SignedDuration::from_secs(secs));
        let output = "Filesystem 1024-blocks Used Available Capacity Mounted on\noverlay 1000 400 600 40% /\n";
        let run = |output: &str, ended| HealthRun { exit_code: Some(0), output: output.to_string(), ended };
        let fresh = from_health(&run(output, ended(12)), now);
        let sizes = Sizes { total: 1000 * 1024, used: 400 * 1024, available: 600 * 1024 };
        assert_eq!(fresh, Some((sizes, std::time::Duration::from_secs(12))));
        assert_eq!(from_health(&run(output, ended(600)), now), None, "too old: the check stopped");
        assert_eq!(from_health(&run(output, None), now), None, "no time: no age to say");
        assert_eq!(from_health(&run("df: not found\n", ended(5)), now), None);
    }

    /// A disk whose reserve for root is large (this testbed's: 252 GB, 185 GB free, 24 GB
    /// available to others) is as full as `df` says (74 %), not 90 %.
    #[test]
    fn a_disk_is_as_full_as_df_says_whatever_its_reserve() {
        let gib = 1024 * 1024 * 1024;
        let usage = DiskUsage {
            root: "/var/lib/docker".into(),
            total_bytes: 252 * gib,
            used_bytes: 67 * gib,
            available_bytes: 24 * gib,
            measured: "this host's statvfs".into(),
            inside_engine: false,
        };
        assert_eq!(usage.used_percent().round(), 74.0);
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
            used_bytes: 3 * 1024 * 1024 * 1024,
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
