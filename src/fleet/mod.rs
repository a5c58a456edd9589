//! The fleet view: each machine's doctor report, sent to the team's bucket, and every report read
//! back into one summary for the platform team.
//!
//! A report is `MachineReport` (this file), built without a secret from a doctor run and what the
//! machine measured (`build.rs`, pure; `send.rs`, the I/O), and stored at
//! `<prefix>machines/<machine-id>.json`. Reading them all is `read.rs` (listing and fetching,
//! concurrent and bounded; then judging each report, pure); summing them up, finding the machines
//! that fail a check, listing them and choosing what to prune is `view.rs` (pure); the HTML page
//! is `html.rs`.

pub mod build;
pub mod html;
pub mod read;
pub mod send;
pub mod view;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::Config;

/// The report's shape. A reader refuses any other, so a change that breaks readers bumps it.
pub const SCHEMA: u64 = 1;

/// The largest report devbox writes or reads.
pub const MAX_REPORT_BYTES: u64 = 64 * 1024;

/// One machine's doctor report, as stored in the bucket. Never holds a secret (`build.rs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineReport {
    pub schema: u64,
    /// Random, made once and kept in the state directory: it names the report's object.
    pub machine_id: String,
    /// The hostname, or `fleet.name`.
    pub name: String,
    pub devbox_version: String,
    /// This host's OS and architecture, e.g. "macos aarch64".
    pub os: String,
    /// The Docker engine, when it answered.
    pub engine: Option<EngineSummary>,
    pub ran_at: jiff::Timestamp,
    pub checks: Vec<CheckResult>,
    /// Each base image's digest on this machine's engine and in the registry (the bucket's).
    pub images: Vec<ImageDigests>,
    pub clocks: Clocks,
    pub disk: Option<Disk>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineSummary {
    pub version: String,
    /// What the engine says it runs on, e.g. "Docker Desktop", "Debian GNU/Linux 12 (bookworm)".
    pub os: String,
    /// colima, Docker Desktop, native Linux…
    pub runtime: String,
    pub vm: bool,
}

/// A check's status in a report: doctor's, spelled the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Ok,
    Warn,
    Fail,
    Skipped,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// Doctor's check name ("clock", "registry-api"…); a newer devbox may report more.
    pub id: String,
    pub status: CheckStatus,
    pub summary: String,
    #[serde(default)]
    pub hint: Option<String>,
    #[serde(default)]
    pub fix: Option<String>,
    #[serde(default)]
    pub details: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageDigests {
    /// The name in the registry, e.g. "base/python:3.12".
    pub name: String,
    /// On this machine's engine; `None` when not pulled.
    pub local: Option<String>,
    /// What the registry (the bucket) serves; `None` when it did not answer or has none.
    pub registry: Option<String>,
}

/// Each clock's offset from this host's, in seconds (positive: ahead); `None` when not read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Clocks {
    pub engine_seconds: Option<f64>,
    pub s3_seconds: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Disk {
    pub total_bytes: u64,
    pub free_bytes: u64,
}

/// Where the reports live under the prefix.
pub fn machines_prefix(prefix: &str) -> String {
    format!("{prefix}machines/")
}

/// The object that holds one machine's report.
pub fn report_key(prefix: &str, machine_id: &str) -> String {
    format!("{}{machine_id}.json", machines_prefix(prefix))
}

/// This machine's ID: made once (128 random bits, hex) and kept in `state_dir/machine-id`. A file
/// that is there but not 32 hex digits (truncated by a crash, edited) is an error that names it:
/// made again silently, the machine would report under a new ID and leave its old report behind as
/// a ghost in the fleet. Two runs that make it at once agree on one.
pub fn machine_id(state_dir: &Path) -> anyhow::Result<String> {
    let path = state_dir.join("machine-id");
    loop {
        match std::fs::read_to_string(&path) {
            Ok(text) => return parse_machine_id(&text).map_err(|reason| damaged_machine_id(&path, reason).into()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(anyhow::Error::new(e).context(format!("cannot read {}", path.display()))),
        }
        let mut bytes = [0u8; 16];
        getrandom::getrandom(&mut bytes).map_err(|e| anyhow::anyhow!("cannot draw a random machine ID: {e}"))?;
        let id = hex::encode(bytes);
        if crate::paths::create_atomic(&path, format!("{id}\n").as_bytes())? {
            return Ok(id);
        }
        // Another run made it first: read theirs.
    }
}

/// The ID a machine-id file holds, or why it holds none.
fn parse_machine_id(text: &str) -> Result<String, String> {
    let id = text.trim();
    if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(id.to_ascii_lowercase())
    } else if id.is_empty() {
        Err("it is empty".to_string())
    } else {
        Err(format!("it holds {} characters, not the 32 hex digits of an ID", id.chars().count()))
    }
}

fn damaged_machine_id(path: &Path, reason: String) -> crate::error::Error {
    crate::error::Error::DamagedRecord {
        what: "this machine's fleet ID".into(),
        place: path.display().to_string(),
        reason,
        fix: format!(
            "If you know this machine's ID (its report is s3://BUCKET/PREFIX/machines/ID.json, listed by `devbox fleet \
             machines`), write it back into {0}. Otherwise remove {0}: the next report makes a new ID, and \
             `devbox fleet prune` later removes the old one's report.",
            path.display()
        ),
    }
}

/// One sentence for `init`: whether this machine reports, and where.
pub fn reporting_sentence(config: &Config) -> String {
    let fleet = &config.fleet;
    let bucket = fleet.bucket.as_ref().or(config.registry.s3.bucket.as_ref());
    match (fleet.report, bucket) {
        (true, Some(bucket)) => format!(
            "fleet: this machine reports its doctor results daily to s3://{bucket}/{} ([fleet] report = true; set it to false in your devbox.toml to stop)",
            machines_prefix(&fleet.prefix)
        ),
        (true, None) => {
            "fleet: [fleet] report = true, but no bucket is set (fleet.bucket or registry.s3.bucket): nothing is sent"
                .to_string()
        }
        (false, _) => "fleet: this machine does not report to the team ([fleet] report = false)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_machine_id_is_made_once_and_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = machine_id(dir.path()).expect("id");
        assert_eq!(first.len(), 32);
        assert_eq!(machine_id(dir.path()).expect("id"), first);
        assert_eq!(report_key("devbox/fleet/", &first), format!("devbox/fleet/machines/{first}.json"));
        // Damaged (a path, truncated, emptied): an error that names the file, never a new ID.
        for damaged in ["../../etc/passwd", &first[..7], ""] {
            std::fs::write(dir.path().join("machine-id"), damaged).expect("write");
            let err = machine_id(dir.path()).expect_err("damaged");
            let known = err.downcast_ref::<crate::error::Error>().expect("an Error");
            assert!(matches!(known, crate::error::Error::DamagedRecord { .. }), "{known}");
            assert!(err.to_string().contains("machine-id"), "{err}");
            assert_eq!(std::fs::read_to_string(dir.path().join("machine-id")).expect("read"), damaged);
        }
    }
}
