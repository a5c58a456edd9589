//! cosign signatures of base images (`images.verify`), checked before an image is tagged.
//!
//! cosign and containers/image (skopeo, podman) store a signature beside the image, in the same
//! repository: the tag `sha256-<hex>.sig` holds an image manifest whose layers are simple-signing
//! payloads (`application/vnd.dev.cosign.simplesigning.v1+json`), each with its ECDSA signature,
//! base64, in the annotation `dev.cosignproject.cosign/signature`. The payload is JSON that names
//! what was signed: `critical.image.docker-manifest-digest` and `critical.identity.docker-reference`.
//!
//! An image is verified when one payload carries a signature by a trusted key (`keys.rs`, checked
//! with the `p256` crate over the payload's exact bytes), and that payload names this digest and this
//! repository. The repository is compared without its registry host: CI signs through its own
//! registry's address, the laptop reads the same bucket through 127.0.0.1. Everything is read
//! through the local registry (`registry/api.rs`), each answer bounded in size.
//!
//! The judging is pure (`artifact`, `payload`, `best`, `gate`); `check` does the reads.

use base64::Engine as _;
use p256::ecdsa::signature::Verifier;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::VerifyMode;
use crate::config::keys::TrustedKeys;
use crate::registry::api::{ApiError, ManifestBody, RegistryApi};

pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
const PAYLOAD_TYPE: &str = "cosign container image signature";
const MANIFEST_TYPES: [&str; 2] =
    ["application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json"];
/// The most devbox reads of a signature manifest, and of one payload (a payload is ~300 bytes).
pub const MANIFEST_LIMIT: u64 = 256 * 1024;
pub const PAYLOAD_LIMIT: u64 = 64 * 1024;
/// The most signatures of one artifact that devbox looks at.
const MAX_SIGNATURES: usize = 16;

/// What the registry holds for one digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "signature", rename_all = "snake_case")]
pub enum Signature {
    /// Signed by the trusted key with this fingerprint, for this digest and repository.
    Verified { signed_by: String },
    /// No signature artifact at all.
    Unsigned,
    /// An artifact, but nothing in it verifies.
    #[serde(rename = "bad_signature")]
    Bad {
        #[serde(rename = "signature_problem", serialize_with = "as_text")]
        problem: BadSignature,
    },
}

fn as_text<S: serde::Serializer>(problem: &BadSignature, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(problem)
}

/// Why a signature artifact does not verify. Its `Display` is what `pull` prints.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadSignature {
    #[error("the signature artifact is not an image manifest ({0})")]
    NotAManifest(String),
    #[error("the signature artifact has media type {0:?}, not an image manifest")]
    ManifestType(String),
    #[error("the signature artifact holds no simple-signing payload with a signature (its layers: {0})")]
    NoPayload(String),
    #[error("the signature artifact or its payload is larger than devbox reads ({limit} bytes)")]
    TooLarge { limit: u64 },
    #[error("the registry has no payload {0} that the signature artifact names")]
    PayloadMissing(String),
    #[error("the payload's bytes do not match its digest {0}")]
    PayloadDigest(String),
    #[error("signed by no trusted key (images.public_keys)")]
    UnknownKey,
    #[error("the signed payload is not cosign's simple-signing JSON ({0})")]
    Payload(String),
    #[error("the signature is for another digest, {0}")]
    OtherDigest(String),
    #[error("the signature is for another repository, {0}")]
    OtherRepository(String),
}

impl BadSignature {
    /// How much a reason says about the artifact: a payload signed by a trusted key that names
    /// something else says most; a malformed artifact least. The best one is reported.
    fn rank(&self) -> u8 {
        match self {
            BadSignature::OtherDigest(_) | BadSignature::OtherRepository(_) | BadSignature::Payload(_) => 3,
            BadSignature::UnknownKey => 2,
            BadSignature::PayloadDigest(_) | BadSignature::PayloadMissing(_) | BadSignature::TooLarge { .. } => 1,
            BadSignature::NotAManifest(_) | BadSignature::ManifestType(_) | BadSignature::NoPayload(_) => 0,
        }
    }
}

impl Signature {
    /// `verified`, `unsigned` or `bad signature`: the word `pull` prints.
    pub fn word(&self) -> &'static str {
        match self {
            Signature::Verified { .. } => "verified",
            Signature::Unsigned => "unsigned",
            Signature::Bad { .. } => "bad signature",
        }
    }

    /// One phrase: `signature verified (key sha256:…)`, `unsigned (no sha256-….sig in base/python)`.
    pub fn describe(&self, repo: &str, digest: &str) -> String {
        match self {
            Signature::Verified { signed_by } => format!("signature verified (key {signed_by})"),
            Signature::Unsigned => {
                format!("unsigned (no signature {} in {repo})", signature_tag(digest).unwrap_or_else(|| "tag".into()))
            }
            Signature::Bad { problem } => format!("bad signature: {problem}"),
        }
    }
}

/// What a pull does with an image, given the mode and its signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Tag,
    /// `warn`: tag it, and say it is not verified.
    TagWithWarning,
    /// `require`: leave the alias where it is.
    Refuse,
}

/// Pure: `off` tags everything; `warn` tags with a warning what is not verified; `require` refuses it.
pub fn gate(mode: VerifyMode, signature: Option<&Signature>) -> Gate {
    let verified = matches!(signature, Some(Signature::Verified { .. }));
    match mode {
        VerifyMode::Off => Gate::Tag,
        _ if verified => Gate::Tag,
        VerifyMode::Warn => Gate::TagWithWarning,
        VerifyMode::Require => Gate::Refuse,
    }
}

/// `sha256:<hex>` → `sha256-<hex>.sig`, the tag cosign stores the signature under.
pub fn signature_tag(digest: &str) -> Option<String> {
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| format!("sha256-{hex}.sig"))
}

/// One signature in the artifact: the payload layer it signs, and the signature itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub digest: String,
    pub size: u64,
    pub signature: String,
}

#[derive(Deserialize)]
struct OciManifest {
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    layers: Vec<Layer>,
}

#[derive(Deserialize)]
struct Layer {
    #[serde(rename = "mediaType")]
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
}

/// Pure: the signatures a signature artifact's manifest holds, or why it is not one.
pub fn artifact(body: &ManifestBody) -> Result<Vec<Candidate>, BadSignature> {
    let declared = body.media_type.split(';').next().unwrap_or_default().trim();
    if !declared.is_empty() && !MANIFEST_TYPES.contains(&declared) {
        return Err(BadSignature::ManifestType(declared.to_string()));
    }
    let manifest: OciManifest =
        serde_json::from_slice(&body.bytes).map_err(|e| BadSignature::NotAManifest(e.to_string()))?;
    if let Some(inner) = manifest.media_type.as_deref().filter(|t| !MANIFEST_TYPES.contains(t)) {
        return Err(BadSignature::ManifestType(inner.to_string()));
    }
    let candidates: Vec<Candidate> = manifest
        .layers
        .iter()
        .filter(|l| l.media_type == SIMPLE_SIGNING)
        .filter_map(|l| {
            let signature = l.annotations.get(SIGNATURE_ANNOTATION)?;
            Some(Candidate { digest: l.digest.clone(), size: l.size, signature: signature.clone() })
        })
        .take(MAX_SIGNATURES)
        .collect();
    if candidates.is_empty() {
        let types: Vec<&str> = manifest.layers.iter().map(|l| l.media_type.as_str()).collect();
        return Err(BadSignature::NoPayload(if types.is_empty() { "none".into() } else { types.join(", ") }));
    }
    Ok(candidates)
}

#[derive(Deserialize)]
struct Payload {
    critical: Critical,
}

#[derive(Deserialize)]
struct Critical {
    identity: Identity,
    image: Image,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct Identity {
    #[serde(rename = "docker-reference")]
    docker_reference: String,
}

#[derive(Deserialize)]
struct Image {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

/// Pure: whether `bytes`, the payload of `candidate`, is signed by one of `keys` and names `digest`
/// in repository `repo`. The key's fingerprint when it is. The signature is checked before the
/// payload is read: nothing unsigned is parsed.
pub fn payload(
    keys: &TrustedKeys,
    candidate: &Candidate,
    bytes: &[u8],
    digest: &str,
    repo: &str,
) -> Result<String, BadSignature> {
    if format!("sha256:{}", hex::encode(Sha256::digest(bytes))) != candidate.digest {
        return Err(BadSignature::PayloadDigest(candidate.digest.clone()));
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(candidate.signature.trim())
        .map_err(|_| BadSignature::UnknownKey)?;
    let signature = p256::ecdsa::Signature::from_der(&raw)
        .or_else(|_| p256::ecdsa::Signature::from_slice(&raw))
        .map_err(|_| BadSignature::UnknownKey)?;
    let key = keys.0.iter().find(|k| k.key.verify(bytes, &signature).is_ok()).ok_or(BadSignature::UnknownKey)?;
    let payload: Payload = serde_json::from_slice(bytes).map_err(|e| BadSignature::Payload(e.to_string()))?;
    let critical = payload.critical;
    if critical.kind != PAYLOAD_TYPE {
        return Err(BadSignature::Payload(format!("its type is {:?}, not {PAYLOAD_TYPE:?}", critical.kind)));
    }
    if critical.image.docker_manifest_digest != digest {
        return Err(BadSignature::OtherDigest(critical.image.docker_manifest_digest));
    }
    if repository_path(&critical.identity.docker_reference) != repo {
        return Err(BadSignature::OtherRepository(critical.identity.docker_reference));
    }
    Ok(key.fingerprint.clone())
}

/// `registry.example:5000/base/python:3.12` → `base/python`: the repository inside its registry,
/// without host, tag or digest.
pub fn repository_path(reference: &str) -> &str {
    let name = reference.split('@').next().unwrap_or(reference);
    let name = match name.rsplit_once(':') {
        Some((before, tag)) if !tag.contains('/') => before,
        _ => name,
    };
    match name.split_once('/') {
        Some((host, rest)) if host.contains('.') || host.contains(':') || host == "localhost" => rest,
        _ => name,
    }
}

/// Pure: the verdict over every signature's result: verified by the first that verifies, else the
/// reason that says most.
pub fn best(results: Vec<Result<String, BadSignature>>) -> Signature {
    let mut worst: Option<BadSignature> = None;
    for result in results {
        match result {
            Ok(signed_by) => return Signature::Verified { signed_by },
            Err(problem) if worst.as_ref().is_none_or(|w| problem.rank() > w.rank()) => worst = Some(problem),
            Err(_) => {}
        }
    }
    worst.map_or(Signature::Unsigned, |problem| Signature::Bad { problem })
}

/// Reads the signature of `digest` in `repo` through the local registry and judges it. An error
/// only when the registry did not answer as a registry does; anything it serves is judged.
pub async fn check(api: &RegistryApi, keys: &TrustedKeys, repo: &str, digest: &str) -> Result<Signature, ApiError> {
    let bad = |problem| Ok(Signature::Bad { problem });
    let Some(tag) = signature_tag(digest) else {
        return bad(BadSignature::OtherDigest(format!("(devbox verifies sha256 digests only; this is {digest})")));
    };
    let body = match api.signature_manifest(repo, &tag, MANIFEST_LIMIT).await {
        Ok(Some(body)) => body,
        Ok(None) => return Ok(Signature::Unsigned),
        Err(ApiError::TooLarge { limit, .. }) => return bad(BadSignature::TooLarge { limit }),
        Err(other) => return Err(other),
    };
    let candidates = match artifact(&body) {
        Ok(candidates) => candidates,
        Err(problem) => return bad(problem),
    };
    let reads = candidates.iter().map(|candidate| async move {
        if candidate.size > PAYLOAD_LIMIT {
            return Ok(Err(BadSignature::TooLarge { limit: PAYLOAD_LIMIT }));
        }
        Ok(match api.small_blob(repo, &candidate.digest, PAYLOAD_LIMIT).await {
            Ok(Some(bytes)) => payload(keys, candidate, &bytes, digest, repo),
            Ok(None) => Err(BadSignature::PayloadMissing(candidate.digest.clone())),
            Err(ApiError::TooLarge { limit, .. }) => Err(BadSignature::TooLarge { limit }),
            Err(other) => return Err(other),
        })
    });
    let results: Result<Vec<_>, ApiError> = futures_util::future::join_all(reads).await.into_iter().collect();
    Ok(best(results?))
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;

/// What a pull checks signatures against: the mode and the trusted keys.
#[derive(Debug, Clone)]
pub struct Trust {
    pub mode: VerifyMode,
    pub keys: TrustedKeys,
}

impl Trust {
    /// From `[images]`; the config's validation has read the keys once already.
    pub fn from_config(images: &crate::config::ImagesConfig) -> Result<Trust, crate::error::Error> {
        let keys = crate::config::keys::load(&images.public_keys).map_err(|bad| {
            crate::error::Error::Usage(format!("images.public_keys entry {}: {}", bad.index, bad.reason))
        })?;
        Ok(Trust { mode: images.verify, keys })
    }

    /// `None` when verification is off; else the signature of `digest` in `repo`.
    pub async fn check(&self, api: &RegistryApi, repo: &str, digest: &str) -> Result<Option<Checked>, ApiError> {
        if self.mode == VerifyMode::Off {
            return Ok(None);
        }
        let signature = check(api, &self.keys, repo, digest).await?;
        Ok(Some(Checked { digest: digest.to_string(), signature }))
    }
}

/// One digest's signature, as a pull found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Checked {
    #[serde(skip)]
    pub digest: String,
    #[serde(flatten)]
    pub signature: Signature,
}

impl Checked {
    /// Its record in `signatures.json`, first reached `now`.
    pub fn record(&self, now: jiff::Timestamp) -> crate::state::SignatureRecord {
        let (verdict, signed_by, problem) = match &self.signature {
            Signature::Verified { signed_by } => ("verified", Some(signed_by.clone()), None),
            Signature::Unsigned => ("unsigned", None, None),
            Signature::Bad { problem } => ("bad_signature", None, Some(problem.to_string())),
        };
        crate::state::SignatureRecord { verdict: verdict.into(), signed_by, problem, since: now }
    }
}
