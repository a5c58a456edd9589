//! A proof made once is not made again. What `verify::prove` shows of a registry (a write is
//! refused, the bucket is read) holds for the container it was made on: its config cannot change
//! without it being made again, under another ID. So the proof is recorded in devbox's state
//! directory, keyed by the container's ID and config hash, and while both match only what can
//! change while the container runs is checked: that S3 still answers the registry's credentials
//! (and so that the engine's clock is close enough for S3), with one read through the registry.

use std::path::{Path, PathBuf};

use super::api::RegistryApi;
use super::verify::{self, Verdict};
use super::{LABEL_CONFIG_HASH, LABEL_MANAGED};
use crate::aws::Aws;
use crate::config::RegistryConfig;
use crate::engine::{ContainerInfo, Engine};
use crate::env::Environment;
use crate::paths::Paths;
use crate::state::{ProofRecord, ProofRecords};

/// Where proofs are recorded: devbox's state directory, or nowhere (then every proof is made).
#[derive(Debug, Clone, Default)]
pub struct Proofs {
    dir: Option<PathBuf>,
}

impl Proofs {
    pub fn in_state_dir(env: &Environment) -> Proofs {
        Proofs { dir: Paths::resolve(env).ok().map(|p| p.state_dir().to_path_buf()) }
    }

    pub fn at(state_dir: &Path) -> Proofs {
        Proofs { dir: Some(state_dir.to_path_buf()) }
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

/// `verify::prove` once per container: the recorded proof when it holds, with one read through
/// the registry that S3 must answer (its credentials and its clock), or else the proof, recorded
/// when it passes.
pub async fn prove_once(
    engine: &Engine,
    api: &RegistryApi,
    config: &RegistryConfig,
    s3: Option<&Aws>,
    proofs: &Proofs,
) -> Verdict {
    let container = engine.container(&config.container).await.ok().flatten();
    if let Some(record) = container.as_ref().and_then(|c| proofs.recorded(&config.container, c)) {
        return match api.read_through(None).await {
            Ok(_) => Verdict::Proven(shown(&record)),
            Err(answer) => {
                Verdict::Unproven { reason: format!("it cannot read its storage: {answer}"), answer: Some(answer) }
            }
        };
    }
    let verdict = verify::prove(api, config, s3).await;
    if let (Verdict::Proven(shown), Some(container)) = (&verdict, &container) {
        proofs.record(&config.container, container, shown);
    }
    verdict
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
        let proofs = Proofs { dir: Some(dir.path().to_path_buf()) };
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
}
