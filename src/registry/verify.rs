//! Proofs that the running registry is the one devbox configured, by its behaviour rather than by
//! devbox's own labels: an image that reads another config than devbox's (a layout devbox does not
//! know, an entrypoint that ignores its command) answers like a registry all the same, but empty,
//! writable and not on S3.

use crate::aws::Aws;
use crate::config::{RegistryConfig, Storage};
use crate::registry::api::{ApiError, Manifest, RegistryApi, UploadStart};
use crate::registry::effective_readonly;

/// A repository name no one pushes to: the write probe starts an upload there and nothing more.
pub const PROBE_REPO: &str = "devbox-probe/readonly";

/// What the proofs found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It behaves as configured; what was shown, for people.
    Proven(Vec<String>),
    /// It answers, but not as devbox's config says: the cause.
    Ignored(String),
    /// A proof could not be carried out (storage unreadable, an unexpected answer): why, and the
    /// registry's error answer when it gave one.
    Unproven { reason: String, answer: Option<ApiError> },
}

/// Runs the proofs that the config calls for against the registry at `api`:
/// - read-only on S3: starting a blob upload is refused with 405 (one that is accepted is
///   cancelled at once);
/// - S3: a tag that the bucket holds (found by listing it through `s3`) is served by the registry.
pub async fn prove(api: &RegistryApi, config: &RegistryConfig, s3: Option<&Aws>) -> Verdict {
    let mut shown = Vec::new();
    if effective_readonly(config) {
        match api.start_upload(PROBE_REPO).await {
            Ok(UploadStart::Refused) => shown.push("a write is refused (405)".to_string()),
            Ok(UploadStart::Accepted { location }) => {
                // Leave nothing behind: the probe's upload goes at once.
                let cancelled = match location {
                    Some(location) => api.cancel_upload(&location).await.map_err(|why| why.to_string()),
                    None => Err("it gave no Location to cancel".to_string()),
                };
                let note = cancelled.err().map(|why| format!(" (cancelling the probe's upload failed: {why})"));
                return Verdict::Ignored(format!(
                    "it is writable: it accepted the start of an upload to {PROBE_REPO} (HTTP 202) where \
                     read-only storage must refuse it with 405{}",
                    note.unwrap_or_default()
                ));
            }
            Ok(UploadStart::Other(answer)) => {
                return Verdict::Unproven {
                    reason: format!(
                        "the write probe (an upload to {PROBE_REPO}) got {answer}, not the 405 of a read-only registry"
                    ),
                    answer: Some(answer),
                };
            }
            Err(answer) => {
                return Verdict::Unproven {
                    reason: format!("the write probe got no answer: {answer}"),
                    answer: Some(answer),
                };
            }
        }
    }
    if config.storage() == Storage::S3
        && let Some(s3) = s3
    {
        let bucket = config.s3.bucket.as_ref().map(|b| b.to_string()).unwrap_or_default();
        let place = format!("s3://{bucket}{}", config.s3.root_directory);
        match s3.stored_tag(&config.s3.root_directory).await {
            Ok(None) => shown.push(format!("{place} holds no image yet, so there is nothing to read back")),
            Ok(Some((repo, tag))) => match api.manifest(&repo, &tag).await {
                Ok(Manifest::Found(_)) => shown.push(format!("read {repo}:{tag} from {place}")),
                Ok(Manifest::NotFound) => {
                    return Verdict::Ignored(format!(
                        "it does not read the bucket: {place} holds {repo}:{tag}, and the registry answers that \
                         it does not exist"
                    ));
                }
                Err(answer) => {
                    return Verdict::Unproven {
                        reason: format!("it cannot read {repo}:{tag}, which {place} holds: {answer}"),
                        answer: Some(answer),
                    };
                }
            },
            Err(err) => {
                return Verdict::Unproven {
                    reason: format!("listing {place} to find an image to read back failed: {err}"),
                    answer: None,
                };
            }
        }
    }
    Verdict::Proven(shown)
}
