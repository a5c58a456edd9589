//! The registry's HTTP API (distribution v2), as devbox uses it. Only this file speaks HTTP to
//! the registry.

use std::time::Duration;

use crate::http;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const API_VERSION_HEADER: &str = "docker-distribution-api-version";

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
    pub async fn ping(&self) -> Result<(), String> {
        let url = format!("{}/v2/", self.base);
        let response = self.http.get(&url).send().await.map_err(|e| describe(&e))?;
        let status = response.status();
        let is_registry = response.headers().contains_key(API_VERSION_HEADER);
        match (status.as_u16(), is_registry) {
            (200, true) => Ok(()),
            (_, false) => Err(format!("{url} answered HTTP {status}, but not as a Docker registry")),
            (_, true) => Err(format!("{url} answered HTTP {status}")),
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
    pub async fn read_through(&self, repo: Option<&str>) -> Result<String, String> {
        let (url, what) = match repo {
            Some(repo) => {
                (format!("{}/v2/{repo}/tags/list", self.base), format!("read the tags of {repo} from storage"))
            }
            None => (format!("{}/v2/_catalog?n=1", self.base), "read the catalog from storage".to_string()),
        };
        let response = self.http.get(&url).send().await.map_err(|e| describe(&e))?;
        let status = response.status().as_u16();
        match (status, repo) {
            (200, _) => Ok(what),
            // "name unknown" comes from storage too: the bucket answered that it has no such repository.
            (404, Some(repo)) => Ok(format!("storage answered that {repo} has no tags yet")),
            _ => {
                let body = response.text().await.unwrap_or_default();
                // A drifting clock is the usual reason S3 refuses the registry: say so plainly.
                let skew = if body.contains("RequestTimeTooSkewed") { " (RequestTimeTooSkewed)" } else { "" };
                Err(format!(
                    "{url} answered HTTP {status}{skew}: {}",
                    body.trim().chars().take(300).collect::<String>()
                ))
            }
        }
    }

    /// `HEAD /v2/<name>/manifests/<tag>`: the digest the registry serves for `name:tag`.
    pub async fn manifest(&self, name: &str, tag: &str) -> Result<Manifest, String> {
        let url = format!("{}/v2/{name}/manifests/{tag}", self.base);
        let response = self.http.head(&url).header("Accept", MANIFEST_TYPES).send().await.map_err(|e| describe(&e))?;
        match response.status().as_u16() {
            404 => Ok(Manifest::NotFound),
            200 => response
                .headers()
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok())
                .map(|d| Manifest::Found(d.to_string()))
                .ok_or_else(|| format!("{url} answered without a Docker-Content-Digest header")),
            status => Err(format!("{url} answered HTTP {status}")),
        }
    }
}

fn describe(err: &reqwest::Error) -> String {
    http::describe(err, REQUEST_TIMEOUT)
}

/// How the registry answered the start of a blob upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadStart {
    /// 405: it refuses writes (read-only).
    Refused,
    /// 202: it took the upload; `location` is where to cancel it.
    Accepted { location: Option<String> },
    /// Anything else, with the status and the start of the body.
    Other(String),
}

impl RegistryApi {
    /// `POST /v2/<repo>/blobs/uploads/`: the first step of every push, and nothing more. A
    /// writable registry answers 202 and has recorded an upload that `cancel_upload` removes.
    pub async fn start_upload(&self, repo: &str) -> Result<UploadStart, String> {
        let url = format!("{}/v2/{repo}/blobs/uploads/", self.base);
        let response = self.http.post(&url).send().await.map_err(|e| describe(&e))?;
        Ok(match response.status().as_u16() {
            405 => UploadStart::Refused,
            202 => UploadStart::Accepted {
                location: response.headers().get("location").and_then(|v| v.to_str().ok()).map(String::from),
            },
            status => {
                let body = response.text().await.unwrap_or_default();
                UploadStart::Other(format!("HTTP {status}: {}", body.trim().chars().take(200).collect::<String>()))
            }
        })
    }

    /// `DELETE <location>`: cancels an upload that `start_upload` began.
    pub async fn cancel_upload(&self, location: &str) -> Result<(), String> {
        let url = if location.starts_with('/') { format!("{}{location}", self.base) } else { location.to_string() };
        let response = self.http.delete(&url).send().await.map_err(|e| describe(&e))?;
        match response.status().as_u16() {
            200..=299 => Ok(()),
            status => Err(format!("{url} answered HTTP {status}")),
        }
    }
}
