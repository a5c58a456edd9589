//! A proof made once is not made again. What `verify::prove` shows of a registry (a write is
//! refused, the bucket is read) holds for the container it was made on: its config cannot change
//! without it being made again, under another ID. So the proof is recorded in devbox's state
//! directory, keyed by the container's ID and config hash, and while both match only what can
//! change while the container runs is checked: that S3 still answers the registry's credentials
//! (and so that the engine's clock is close enough for S3), with one read through the registry.
//!
//! This is the one rule, for `registry up` (through `Service`) and `doctor` alike: `once` gives the
//! recorded proof or makes it; the read that only a live registry can answer is `with_storage_read`
//! (doctor's registry check reads the base images' manifests instead, which is such a read).
//! Only the holder of the state directory's lock records a proof; `doctor` without `--fix` records
//! one only when no other run holds the lock.

use std::path::{Path, PathBuf};

use super::api::RegistryApi;
use super::verify::{self, Verdict};
use super::{LABEL_CONFIG_HASH, LABEL_MANAGED};
use crate::aws::Aws;
use crate::config::{RegistryConfig, Storage};
use crate::engine::ContainerInfo;
use crate::lock::Held;
use crate::state::{ProofRecord, ProofRecords};

/// Where proofs are recorded, and whether this run may record them.
#[derive(Debug, Clone, Default)]
pub struct Proofs {
    dir: Option<PathBuf>,
    /// Whether this run holds the state directory's lock: else a proof is recorded only when the
    /// lock can be taken at that moment.
    held: bool,
}

impl Proofs {
    /// The proofs of a run that holds the lock.
    pub fn held(lock: &Held) -> Proofs {
        Proofs { dir: Some(lock.state_dir().to_path_buf()), held: true }
    }

    /// The proofs of a read-only run (`doctor`): it reads them, and records one only when no other
    /// run holds the lock.
    pub fn reading(state_dir: &Path) -> Proofs {
        Proofs { dir: Some(state_dir.to_path_buf()), held: false }
    }

    /// The proof recorded for `container` (named `name`), when it was made on this very container.
    pub fn recorded(&self, name: &str, container: &ContainerInfo) -> Option<ProofRecord> {
        let dir = self.dir.as_ref()?;
        let hash = container.label(LABEL_CONFIG_HASH)?;
        (container.label(LABEL_MANAGED) == Some("true")).then_some(())?;
        ProofRecords::load(dir).holding(name, &container.id, hash).cloned()
    }

    /// Records what was proven of `container`. Best effort: a record that cannot be written only
    /// means the proof is made again next time.
    pub fn record(&self, name: &str, container: &ContainerInfo, shown: &[String]) {
        let (Some(dir), Some(hash)) = (&self.dir, container.label(LABEL_CONFIG_HASH)) else { return };
        // A read-only run writes only under the lock, taken for that moment, or not at all.
        let _moment = if self.held {
            None
        } else {
            match crate::lock::try_acquire(dir, "doctor") {
                Ok(Some(held)) => Some(held),
                _ => return,
            }
        };
        let mut records = ProofRecords::load(dir);
        let record = ProofRecord {
            container_id: container.id.clone(),
            config_hash: hash.to_string(),
            proven_at: jiff::Timestamp::now(),
            shown: shown.to_vec(),
        };
        records.registries.insert(name.to_string(), record);
        let _ = records.save(dir);
    }
}

/// What was shown of a recorded proof, for people: each item, and when it was proven.
pub fn shown(record: &ProofRecord) -> Vec<String> {
    let at = record.proven_at.strftime("%Y-%m-%d %H:%M:%S UTC");
    let mut shown = record.shown.clone();
    shown.push(format!("proven at {at} for this container, not repeated"));
    shown
}

/// The AWS access a proof may list the bucket with.
pub enum S3<'a> {
    /// The caller's (`None` for filesystem storage).
    Connected(Option<&'a Aws>),
    /// Connect with the config's profile, only if a proof must be made (`doctor`). Without
    /// credentials the bucket cannot be listed, so only the write probe runs; the AWS check names
    /// that problem itself.
    FromProfile,
}

/// A proof, recorded or made now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proof {
    /// Recorded for this very container: what it showed.
    Recorded(Vec<String>),
    /// Made now (and recorded, when it passed).
    Made(Verdict),
}

impl Proof {
    /// The verdict, with a recorded proof's one read through the registry that S3 must answer (its
    /// credentials and its clock): what `registry up` needs before it vouches for a container.
    pub async fn with_storage_read(self, api: &RegistryApi) -> Verdict {
        match self {
            Proof::Made(verdict) => verdict,
            Proof::Recorded(shown) => match api.read_through(None).await {
                Ok(_) => Verdict::Proven(shown),
                Err(answer) => {
                    Verdict::Unproven { reason: format!("it cannot read its storage: {answer}"), answer: Some(answer) }
                }
            },
        }
    }

    /// The verdict as it stands, for a caller that reads the storage itself (`doctor`).
    pub fn verdict(self) -> Verdict {
        match self {
            Proof::Made(verdict) => verdict,
            Proof::Recorded(shown) => Verdict::Proven(shown),
        }
    }
}

/// A writable registry on its own volume: no write to refuse, no bucket to read.
pub fn nothing_to_prove(config: &RegistryConfig) -> bool {
    !super::effective_readonly(config) && config.storage() == Storage::Filesystem
}

/// `verify::prove` once per container (`container`, as the engine reports it): the recorded proof
/// when it holds, or else the proof, recorded when it passes. A writable registry on its own volume
/// has nothing to prove.
pub async fn once(
    api: &RegistryApi,
    config: &RegistryConfig,
    container: Option<&ContainerInfo>,
    s3: S3<'_>,
    proofs: &Proofs,
) -> Proof {
    if nothing_to_prove(config) {
        return Proof::Made(Verdict::Proven(Vec::new()));
    }
    if let Some(record) = container.and_then(|c| proofs.recorded(&config.container, c)) {
        return Proof::Recorded(shown(&record));
    }
    let verdict = match s3 {
        S3::Connected(s3) => verify::prove(api, config, s3).await,
        S3::FromProfile => {
            let aws = match config.storage() {
                Storage::S3 => Aws::connect(&config.s3).await.ok(),
                Storage::Filesystem => None,
            };
            verify::prove(api, config, aws.as_ref()).await
        }
    };
    if let (Verdict::Proven(shown), Some(container)) = (&verdict, container) {
        proofs.record(&config.container, container, shown);
    }
    Proof::Made(verdict)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn container(id: &str, hash: &str) -> ContainerInfo {
        let mut info = ContainerInfo::for_tests(
            "running",
            HashMap::from([
                (LABEL_MANAGED.to_string(), "true".to_string()),
                (LABEL_CONFIG_HASH.to_string(), hash.to_string()),
            ]),
            vec![],
        );
        info.id = id.to_string();
        info
    }

    #[test]
    fn a_proof_holds_for_its_container_and_config_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let proofs = Proofs { dir: Some(dir.path().to_path_buf()), held: true };
        let made = container("aaa", "h1");
        assert!(proofs.recorded("reg", &made).is_none());
        proofs.record("reg", &made, &["a write is refused (405)".to_string()]);
        let record = proofs.recorded("reg", &made).expect("recorded");
        assert_eq!(record.shown, vec!["a write is refused (405)".to_string()]);
        assert!(shown(&record).last().is_some_and(|s| s.contains("not repeated")));
        // Another container (recreated), another config, another name: proven anew.
        assert!(proofs.recorded("reg", &container("bbb", "h1")).is_none());
        assert!(proofs.recorded("reg", &container("aaa", "h2")).is_none());
        assert!(proofs.recorded("other", &made).is_none());
        // Nowhere to record: nothing is recorded, nothing holds.
        let nowhere = Proofs::default();
        nowhere.record("reg", &made, &[]);
        assert!(nowhere.recorded("reg", &made).is_none());
    }

    #[test]
    fn a_reading_run_records_only_when_no_one_holds_the_lock() {
        let dir = tempfile::tempdir().expect("tempdir");
        let reading = Proofs::reading(dir.path());
        let made = container("aaa", "h1");
        let held = crate::lock::try_acquire(dir.path(), "registry up").expect("lock").expect("free");
        reading.record("reg", &made, &["a write is refused (405)".to_string()]);
        assert!(reading.recorded("reg", &made).is_none(), "recorded under another run's lock");
        drop(held);
        // A child that another test thread forks at this moment keeps a copy of the lock file's
        // descriptor, and so the flock, until it execs (close-on-exec acts only then): wait, as a
        // later run would, until the lock is free (failed 1 in 300 runs without this).
        let free = (0..500).any(|_| {
            let free = crate::lock::try_acquire(dir.path(), "test").expect("lock").is_some();
            if !free {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            free
        });
        assert!(free, "the lock stayed held after its holder dropped it");
        reading.record("reg", &made, &["a write is refused (405)".to_string()]);
        assert!(reading.recorded("reg", &made).is_some());
    }
}
