//! The registry's HTTP API (distribution v2), as devbox uses it. Only this file speaks HTTP to
//! the registry.

use std::time::Duration;

use super::cause::{self, StorageCause};
use crate::http;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const API_VERSION_HEADER: &str = "docker-distribution-api-version";

/// What went wrong with one request to the registry. Decisions match on it; its `Display` is what
/// people read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// No HTTP answer at all: refused, timed out, cut off.
    #[error("{0}")]
    NoAnswer(#[from] http::NoAnswer),
    /// Something answered on the registry's port, but without the registry's API header. A
    /// registry whose storage health check failed answers so too (503), before its API is reached.
    #[error("{url} answered HTTP {}, but not as a Docker registry", status_line(*status))]
    NotARegistry { url: String, status: u16 },
    /// The registry answered with an error status. `storage` is S3's reason, when the body names
    /// one; `body` is the start of the body.
    #[error("{url} answered HTTP {}{}{}", status_line(*status), code_note(storage.as_ref()), body_note(body))]
    Status { url: String, status: u16, body: String, storage: Option<StorageCause> },
    /// A manifest found, but without its digest.
    #[error("{url} answered without a Docker-Content-Digest header")]
    NoDigest { url: String },
    /// An answer longer than devbox reads for it: what it asked for is never that large.
    #[error("{url} answered with more than {limit} bytes, more than devbox reads for it")]
    TooLarge { url: String, limit: u64 },
}

impl ApiError {
    /// Whether something answered with an error status, rather than not at all: only an answer
    /// can carry S3's reason, and "connection refused" from the local registry is not S3's.
    pub fn answered(&self) -> bool {
        matches!(self, ApiError::NotARegistry { .. } | ApiError::Status { .. })
    }

    /// Whether the registry answered 5xx: it could not serve the request, for a reason of its own
    /// (its storage, usually), not the request's.
    pub fn is_server_error(&self) -> bool {
        matches!(self, ApiError::NotARegistry { status: 500..=599, .. } | ApiError::Status { status: 500..=599, .. })
    }

    /// S3's reason, when the answer's body names one.
    pub fn storage_cause(&self) -> Option<&StorageCause> {
        match self {
            ApiError::Status { storage, .. } => storage.as_ref(),
            _ => None,
        }
    }

    /// The error for an answer with `status` and `body`: the body's start, and S3's reason read
    /// from it once, here.
    fn status(url: String, status: u16, body: &str) -> ApiError {
        let storage = cause::diagnose(body);
        ApiError::Status { url, status, body: body.trim().chars().take(300).collect(), storage }
    }
}

/// `503 Service Unavailable`, or the bare number for a status without a name.
fn status_line(status: u16) -> String {
    reqwest::StatusCode::from_u16(status).map_or_else(|_| status.to_string(), |s| s.to_string())
}

/// ` (RequestTimeTooSkewed)`: S3's code, named plainly, since a drifting clock or a stale key is
/// the usual reason S3 refuses the registry.
fn code_note(storage: Option<&StorageCause>) -> String {
    storage.and_then(StorageCause::code).map(|code| format!(" ({code})")).unwrap_or_default()
}

fn body_note(body: &str) -> String {
    if body.is_empty() { String::new() } else { format!(": {body}") }
}

pub struct RegistryApi {
    base: String,
    http: reqwest::Client,
}

impl RegistryApi {
    pub fn new(base: &str) -> anyhow::Result<Self> {
        // The registry is plain HTTP on loopback.
        let http = http::loopback(REQUEST_TIMEOUT, http::Redirects::Follow)?;
        Ok(RegistryApi { base: base.trim_end_matches('/').to_string(), http })
    }

    /// `GET /v2/`: `Ok` when a distribution registry answers 200 there.
    pub async fn ping(&self) -> Result<(), ApiError> {
        let url = format!("{}/v2/", self.base);
        let response = self.http.get(&url).send().await.map_err(no_answer)?;
        let status = response.status().as_u16();
        let is_registry = response.headers().contains_key(API_VERSION_HEADER);
        match (status, is_registry) {
            (200, true) => Ok(()),
            (_, false) => Err(ApiError::NotARegistry { url, status }),
            (_, true) => Err(ApiError::status(url, status, &response.text().await.unwrap_or_default())),
        }
    }
}

/// What the registry says about one tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Manifest {
    /// The manifest's digest (`Docker-Content-Digest`).
    Found(String),
    NotFound,
}

/// The manifest types an engine can pull, so the registry answers with the digest the engine records.
const MANIFEST_TYPES: &str = "application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json, \
    application/vnd.oci.image.manifest.v1+json";

impl RegistryApi {
    /// A read that the registry must answer from its storage: the tags of `repo`, or the catalog.
    /// Returns what was read; an error when storage did not answer (S3 down, bad credentials).
    pub async fn read_through(&self, repo: Option<&str>) -> Result<String, ApiError> {
        let (url, what) = match repo {
            Some(repo) => {
                (format!("{}/v2/{repo}/tags/list", self.base), format!("read the tags of {repo} from storage"))
            }
            None => (format!("{}/v2/_catalog?n=1", self.base), "read the catalog from storage".to_string()),
        };
        let response = self.http.get(&url).send().await.map_err(no_answer)?;
        let status = response.status().as_u16();
        match (status, repo) {
            (200, _) => Ok(what),
            // "name unknown" comes from storage too: the bucket answered that it has no such repository.
            (404, Some(repo)) => Ok(format!("storage answered that {repo} has no tags yet")),
            _ => Err(ApiError::status(url, status, &response.text().await.unwrap_or_default())),
        }
    }

    /// `HEAD /v2/<name>/manifests/<tag>`: the digest the registry serves for `name:tag`.
    pub async fn manifest(&self, name: &str, tag: &str) -> Result<Manifest, ApiError> {
        let url = format!("{}/v2/{name}/manifests/{tag}", self.base);
        let response = self.http.head(&url).header("Accept", MANIFEST_TYPES).send().await.map_err(no_answer)?;
        match response.status().as_u16() {
            404 => Ok(Manifest::NotFound),
            200 => response
                .headers()
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok())
                .map(|d| Manifest::Found(d.to_string()))
                .ok_or(ApiError::NoDigest { url }),
            // A HEAD answer has no body to read S3's reason from.
            status => Err(ApiError::status(url, status, "")),
        }
    }
}

/// A manifest read whole: its media type (`Content-Type`) and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestBody {
    pub media_type: String,
    pub bytes: Vec<u8>,
}

/// The manifest types a signature artifact comes as: cosign and containers/image write an OCI
/// image manifest; older cosign a Docker v2 one.
const SIGNATURE_MANIFEST_TYPES: &str =
    "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

impl RegistryApi {
    /// `GET /v2/<name>/manifests/<tag>` for a signature artifact (cosign's `sha256-<hex>.sig`):
    /// `None` when the registry has no such tag; at most `limit` bytes are read.
    pub async fn signature_manifest(
        &self,
        name: &str,
        tag: &str,
        limit: u64,
    ) -> Result<Option<ManifestBody>, ApiError> {
        let url = format!("{}/v2/{name}/manifests/{tag}", self.base);
        let response =
            self.http.get(&url).header("Accept", SIGNATURE_MANIFEST_TYPES).send().await.map_err(no_answer)?;
        match response.status().as_u16() {
            404 => Ok(None),
            200 => {
                let media_type = response
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                let bytes = read_capped(response, &url, limit).await?;
                Ok(Some(ManifestBody { media_type, bytes }))
            }
            status => Err(ApiError::status(url, status, &response.text().await.unwrap_or_default())),
        }
    }

    /// `GET /v2/<name>/blobs/<digest>`: a small blob, read whole, at most `limit` bytes. `None`
    /// when the registry has no such blob.
    pub async fn small_blob(&self, name: &str, digest: &str, limit: u64) -> Result<Option<Vec<u8>>, ApiError> {
        let url = format!("{}/v2/{name}/blobs/{digest}", self.base);
        let response = self.http.get(&url).send().await.map_err(no_answer)?;
        match response.status().as_u16() {
            404 => Ok(None),
            200 => read_capped(response, &url, limit).await.map(Some),
            status => Err(ApiError::status(url, status, &response.text().await.unwrap_or_default())),
        }
    }
}

/// The body of `response`, refused once it passes `limit` bytes (announced or counted).
async fn read_capped(mut response: reqwest::Response, url: &str, limit: u64) -> Result<Vec<u8>, ApiError> {
    let too_large = || ApiError::TooLarge { url: url.to_string(), limit };
    if response.content_length().is_some_and(|length| length > limit) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(no_answer)? {
        if body.len() as u64 + chunk.len() as u64 > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn no_answer(err: reqwest::Error) -> ApiError {
    ApiError::NoAnswer(http::NoAnswer::of(&err, REQUEST_TIMEOUT))
}

/// How the registry answered the start of a blob upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadStart {
    /// 405: it refuses writes (read-only).
    Refused,
    /// 202: it took the upload; `location` is where to cancel it.
    Accepted { location: Option<String> },
    /// Anything else: the status and the start of the body.
    Other(ApiError),
}

impl RegistryApi {
    /// `POST /v2/<repo>/blobs/uploads/`: the first step of every push, and nothing more. A
    /// writable registry answers 202 and has recorded an upload that `cancel_upload` removes.
    pub async fn start_upload(&self, repo: &str) -> Result<UploadStart, ApiError> {
        let url = format!("{}/v2/{repo}/blobs/uploads/", self.base);
        let response = self.http.post(&url).send().await.map_err(no_answer)?;
        Ok(match response.status().as_u16() {
            405 => UploadStart::Refused,
            202 => UploadStart::Accepted {
                location: response.headers().get("location").and_then(|v| v.to_str().ok()).map(String::from),
            },
            status => UploadStart::Other(ApiError::status(url, status, &response.text().await.unwrap_or_default())),
        })
    }

    /// `DELETE <location>`: cancels an upload that `start_upload` began.
    pub async fn cancel_upload(&self, location: &str) -> Result<(), ApiError> {
        let url = if location.starts_with('/') { format!("{}{location}", self.base) } else { location.to_string() };
        let response = self.http.delete(&url).send().await.map_err(no_answer)?;
        match response.status().as_u16() {
            200..=299 => Ok(()),
            status => Err(ApiError::status(url, status, &response.text().await.unwrap_or_default())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_answer_names_s3s_reason_once_and_reads_as_one_line() {
        let body =
            r#"{"errors":[{"code":"UNKNOWN","detail":"s3aws: RequestTimeTooSkewed: the difference is too large"}]}"#;
        let err = ApiError::status("http://127.0.0.1:5000/v2/_catalog?n=1".into(), 500, body);
        assert_eq!(err.storage_cause(), Some(&StorageCause::Clock { code: "RequestTimeTooSkewed".into() }));
        assert!(err.answered() && err.is_server_error());
        assert_eq!(
            err.to_string(),
            format!(
                "http://127.0.0.1:5000/v2/_catalog?n=1 answered HTTP 500 Internal Server Error (RequestTimeTooSkewed): {body}"
            )
        );
    }

    #[test]
    fn what_counts_as_an_answer() {
        let url = || "http://127.0.0.1:5000/v2/".to_string();
        assert!(!ApiError::NoAnswer(http::NoAnswer::Refused).answered());
        assert!(!ApiError::NoDigest { url: url() }.answered());
        let unhealthy = ApiError::NotARegistry { url: url(), status: 503 };
        assert!(unhealthy.answered() && unhealthy.is_server_error());
        assert_eq!(
            unhealthy.to_string(),
            "http://127.0.0.1:5000/v2/ answered HTTP 503 Service Unavailable, but not as a Docker registry"
        );
        let missing = ApiError::status(url(), 404, "");
        assert!(missing.answered() && !missing.is_server_error());
        assert_eq!(missing.to_string(), "http://127.0.0.1:5000/v2/ answered HTTP 404 Not Found");
    }
}
