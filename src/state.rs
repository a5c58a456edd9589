//! What devbox remembers between runs, in its state directory. Each record is one JSON file,
//! written atomically (`paths::write_atomic`) by a run that holds the state directory's lock. These
//! records are caches of what can be found again (pulls, proofs): a missing file reads as "nothing
//! recorded", and a damaged one is rebuilt, which `load_noting` says. The records devbox cannot
//! find again (the machine's fleet ID) are not here, and a damaged one is an error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::paths::write_if_changed;

/// A record as it was written; a missing file reads as nothing recorded, and so does a damaged
/// one, with a note that says it is rebuilt (for `-v`).
fn load<T: serde::de::DeserializeOwned + Default>(path: &Path) -> (T, Option<String>) {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (T::default(), None),
        Err(e) => return (T::default(), Some(rebuilt(path, &e.to_string()))),
    };
    match serde_json::from_slice(&bytes) {
        Ok(record) => (record, None),
        Err(e) => (T::default(), Some(rebuilt(path, &e.to_string()))),
    }
}

fn rebuilt(path: &Path, why: &str) -> String {
    format!("{} could not be read ({why}); it is a cache, so it is rebuilt from what is found now", path.display())
}

/// Writes a record atomically, and only when it changed (its file's time says when it did).
fn save<T: Serialize>(path: &Path, record: &T) -> anyhow::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(record)?;
    bytes.push(b'\n');
    write_if_changed(path, &bytes)?;
    Ok(())
}

/// `pulls.json`: the last pull of each base image, by local reference
/// (`127.0.0.1:5000/base/python:3.12`). `cleanup` reads `pulled_at` to judge recent use.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct PullRecords {
    pub images: BTreeMap<String, PullRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PullRecord {
    /// When the image was last pulled (its content changed on this machine).
    pub pulled_at: Option<jiff::Timestamp>,
    /// When devbox last confirmed the image is current, to the hour: a check within the hour of
    /// the last one leaves the record alone.
    pub checked_at: jiff::Timestamp,
    /// The registry's manifest digest the local image matches.
    pub digest: String,
}

impl PullRecords {
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join("pulls.json")
    }

    pub fn load(state_dir: &Path) -> PullRecords {
        Self::load_noting(state_dir).0
    }

    /// The records, and a note when the file was damaged and is rebuilt.
    pub fn load_noting(state_dir: &Path) -> (PullRecords, Option<String>) {
        load(&Self::path(state_dir))
    }

    pub fn save(&self, state_dir: &Path) -> anyhow::Result<()> {
        save(&Self::path(state_dir), self)
    }
}

/// `registry-proofs.json`: what was proven of each registry container by its behaviour (a write is
/// refused, the bucket is read), by container name. A proof holds for the container it was made
/// on, as long as it runs the config it was made with: a container's config cannot change without
/// it being made again, under another ID. So the record is keyed by both, and a proof is not made
/// again while they match.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProofRecords {
    pub registries: BTreeMap<String, ProofRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProofRecord {
    pub container_id: String,
    pub config_hash: String,
    pub proven_at: jiff::Timestamp,
    /// What was shown, for people ("a write is refused (405)").
    pub shown: Vec<String>,
}

impl ProofRecords {
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join("registry-proofs.json")
    }

    pub fn load(state_dir: &Path) -> ProofRecords {
        load(&Self::path(state_dir)).0
    }

    pub fn save(&self, state_dir: &Path) -> anyhow::Result<()> {
        save(&Self::path(state_dir), self)
    }

    /// The proof recorded for container `name`, when it was made on this very container and config.
    pub fn holding(&self, name: &str, container_id: &str, config_hash: &str) -> Option<&ProofRecord> {
        self.registries
            .get(name)
            .filter(|r| r.container_id == container_id && r.config_hash == config_hash && !container_id.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_cache_is_rebuilt_and_says_so() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(PullRecords::load_noting(dir.path()), (PullRecords::default(), None));
        std::fs::write(PullRecords::path(dir.path()), "{\"images\": {\"127.0.0.1:5000/base/py").expect("write");
        let (records, note) = PullRecords::load_noting(dir.path());
        assert_eq!(records, PullRecords::default());
        let note = note.expect("a note");
        assert!(note.contains("pulls.json") && note.contains("rebuilt"), "{note}");
    }
}
