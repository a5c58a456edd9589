//! The fleet view: each machine's doctor report, sent to the team's bucket, and every report read
//! back into one summary for the platform team.
//!
//! A report is `MachineReport` (this file), built without a secret from a doctor run and what the
//! machine measured (`build.rs`, pure; `send.rs`, the I/O), and stored at
//! `<prefix>machines/<principal>/<machine-id>.json`, where the principal is the writer's
//! `aws:userid` (STS GetCallerIdentity), so that an IAM policy with `${aws:userid}` in its resource
//! lets each laptop write its own folder and no other. On an S3-compatible store without STS the
//! principal is the access key ID, which such stores cannot hold a writer to. Reading them all is
//! `read.rs` (listing and fetching, concurrent and bounded; then judging each report, pure: who
//! wrote it comes from its key, not from its body); summing them up, finding the machines that
//! fail a check, listing them and choosing what to prune is `view.rs` (pure); the HTML page is
//! `html.rs`. `doctor --report` also writes the report to `fleet-report.json` in the state
//! directory, for the fleet tools a team already runs (osquery's Fleet, Kolide).

pub mod build;
pub mod html;
pub mod machines;
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

/// One machine's doctor report, as stored in the bucket. Never holds a secret (`build.rs`). Its JSON
/// Schema, generated from these types, is published as docs/fleet-report.schema.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
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
    /// When doctor ran, by this machine's clock (RFC 3339). Readers clamp it to the object's date.
    #[cfg_attr(test, schemars(with = "String"))]
    pub ran_at: jiff::Timestamp,
    pub checks: Vec<CheckResult>,
    /// Each base image's digest on this machine's engine and in the registry (the bucket's).
    pub images: Vec<ImageDigests>,
    pub clocks: Clocks,
    pub disk: Option<Disk>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
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
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Ok,
    Warn,
    Fail,
    Skipped,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
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
#[cfg_attr(test, derive(schemars::JsonSchema))]
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
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct Clocks {
    pub engine_seconds: Option<f64>,
    pub s3_seconds: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct Disk {
    pub total_bytes: u64,
    pub free_bytes: u64,
}

/// Where the reports live under the prefix.
pub fn machines_prefix(prefix: &str) -> String {
    format!("{prefix}machines/")
}

/// The object that holds one machine's report, in its writer's folder.
pub fn report_key(prefix: &str, principal: &str, machine_id: &str) -> String {
    format!("{}{principal}/{machine_id}.json", machines_prefix(prefix))
}

/// Who wrote a report and for which machine, as its key says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportKey {
    pub principal: String,
    pub machine_id: String,
}

/// Why a key under the prefix names no report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyProblem {
    /// `machines/<machine id>.json`: the layout of an older devbox, with no writer in it.
    OldLayout,
    /// Anything else.
    Foreign,
}

/// Reads `<machines prefix><principal>/<machine id>.json`. Pure.
pub fn parse_key(machines_prefix: &str, key: &str) -> Result<ReportKey, KeyProblem> {
    let rest = key.strip_prefix(machines_prefix).ok_or(KeyProblem::Foreign)?;
    let Some((principal, file)) = rest.split_once('/') else {
        return Err(if rest.ends_with(".json") { KeyProblem::OldLayout } else { KeyProblem::Foreign });
    };
    let machine_id = file.strip_suffix(".json").ok_or(KeyProblem::Foreign)?;
    if !crate::aws::valid_segment(principal) || !crate::aws::valid_segment(machine_id) {
        return Err(KeyProblem::Foreign);
    }
    Ok(ReportKey { principal: principal.to_string(), machine_id: machine_id.to_string() })
}

/// Where `doctor --report` leaves the report on this machine, for osquery's Fleet (`parse_json`)
/// and Kolide (`kolide_json`): a fixed path in the state directory.
pub fn local_report_path(state_dir: &Path) -> std::path::PathBuf {
    state_dir.join("fleet-report.json")
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
        assert_eq!(report_key("devbox/fleet/", "AIDA1", &first), format!("devbox/fleet/machines/AIDA1/{first}.json"));
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

    #[test]
    fn a_key_names_its_writer_and_its_machine() {
        let m = "devbox/fleet/machines/";
        assert_eq!(
            parse_key(m, "devbox/fleet/machines/AROA1:alice@acme.dev/0a1b.json"),
            Ok(ReportKey { principal: "AROA1:alice@acme.dev".into(), machine_id: "0a1b".into() })
        );
        assert_eq!(parse_key(m, "devbox/fleet/machines/0a1b.json"), Err(KeyProblem::OldLayout));
        for foreign in [
            "devbox/fleet/machines/p/q/r.json",
            "devbox/fleet/machines/p/x.txt",
            "devbox/fleet/machines/p\u{1b}/x.json",
            "devbox/fleet/machines/../x.json",
            "other/x.json",
        ] {
            assert_eq!(parse_key(m, foreign), Err(KeyProblem::Foreign), "{foreign}");
        }
    }

    /// docs/fleet-report.schema.json is the schema of these types, as schemars makes it.
    #[test]
    fn the_published_schema_is_the_generated_one() {
        let generated = serde_json::to_string_pretty(&schemars::schema_for!(MachineReport)).expect("json") + "\n";
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/fleet-report.schema.json");
        let published = std::fs::read_to_string(&path).unwrap_or_default();
        if published != generated {
            let new = path.with_extension("json.new");
            std::fs::write(&new, &generated).expect("write the generated schema");
            panic!(
                "{} is not the generated schema; the generated one is in {}: move it there",
                path.display(),
                new.display()
            );
        }
    }
}
