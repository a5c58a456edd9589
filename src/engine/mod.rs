//! The Docker engine, in devbox's terms. Only this module imports bollard; commands see
//! `Engine`, `ContainerSpec` and `ContainerInfo`.

mod connect;
mod endpoint;
mod error;
mod hardening;
mod listing;
mod model;
mod oneshot;

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig, PortBinding, RestartPolicy, RestartPolicyNameEnum};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, LogsOptions, RemoveContainerOptionsBuilder,
    RestartContainerOptionsBuilder, TagImageOptionsBuilder, UploadToContainerOptionsBuilder,
};
use futures_util::{Stream, StreamExt};

use crate::progress::{Progress, TransferState};

pub use error::{EngineError, hint_of};
pub use listing::{ContainerEntry, ImageEntry, RemoveError};
#[cfg(test)]
pub use model::info_from_json;
pub use model::{
    ContainerInfo, ContainerSpec, EngineInfo, Hardening, HealthCheck, HealthRun, ImageInfo, OneShotOutcome, OneShotSpec,
};

/// How long devbox waits for the engine to answer one ordinary request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long starting a container may take. Its network, mounts and process are set up inside the
/// engine's VM, which takes seconds there, and many more in a busy or emulated VM (20 s measured
/// under QEMU without acceleration on a loaded machine).
pub const START_TIMEOUT: Duration = Duration::from_secs(90);

/// A connected engine.
pub struct Engine {
    docker: Docker,
    endpoint: String,
    timeout: Duration,
}

impl Engine {
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Runs one engine request under the engine timeout. A timeout is an error here; the engine's
    /// own answer is left to the caller.
    async fn call_raw<T>(
        &self,
        what: &str,
        request: impl Future<Output = Result<T, bollard::errors::Error>>,
    ) -> Result<Result<T, bollard::errors::Error>, EngineError> {
        self.call_raw_for(self.timeout, what, request).await
    }

    /// `call_raw` under another timeout: starting a container, which takes seconds in a slow VM.
    async fn call_raw_for<T>(
        &self,
        timeout: Duration,
        what: &str,
        request: impl Future<Output = Result<T, bollard::errors::Error>>,
    ) -> Result<Result<T, bollard::errors::Error>, EngineError> {
        tokio::time::timeout(timeout, request).await.map_err(|_| self.timed_out(what, timeout))
    }

    fn timed_out(&self, what: &str, timeout: Duration) -> EngineError {
        EngineError::TimedOut { endpoint: self.endpoint.clone(), what: what.to_string(), seconds: timeout.as_secs() }
    }

    /// Any engine future (a stream's next item, say) under the engine timeout.
    async fn within<T>(&self, what: &str, future: impl Future<Output = T>) -> Result<T, EngineError> {
        tokio::time::timeout(self.timeout, future).await.map_err(|_| self.timed_out(what, self.timeout))
    }

    async fn call<T>(
        &self,
        what: &str,
        request: impl Future<Output = Result<T, bollard::errors::Error>>,
    ) -> Result<T, EngineError> {
        self.call_raw(what, request).await?.map_err(|e| EngineError::of(what, &e))
    }

    /// Like `call`, but "not found" is `None` rather than an error.
    async fn call_optional<T>(
        &self,
        what: &str,
        request: impl Future<Output = Result<T, bollard::errors::Error>>,
    ) -> Result<Option<T>, EngineError> {
        match self.call_raw(what, request).await? {
            Ok(value) => Ok(Some(value)),
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(None),
            Err(e) => Err(EngineError::of(what, &e)),
        }
    }

    /// A ping: the cheapest request, for timing the way to the engine.
    pub async fn ping(&self) -> Result<(), EngineError> {
        self.call("pinging the engine", self.docker.ping()).await.map(|_| ())
    }

    /// The engine's info: version, operating system, clock. `api_version` is what devbox speaks.
    pub async fn info(&self) -> Result<EngineInfo, EngineError> {
        let info = self.call("reading the engine's info", self.docker.info()).await?;
        Ok(model::engine_info(info, self.docker.client_version().to_string()))
    }

    /// The container called `name`, if there is one.
    pub async fn container(&self, name: &str) -> Result<Option<ContainerInfo>, EngineError> {
        let what = format!("inspecting container {name}");
        let Some(inspect) = self.call_optional(&what, self.docker.inspect_container(name, None)).await? else {
            return Ok(None);
        };
        let config = inspect.config.unwrap_or_default();
        let host_config = inspect.host_config.unwrap_or_default();
        let hardening = hardening::read(&host_config, config.healthcheck.as_ref());
        let health = hardening::status(inspect.state.as_ref());
        let last_health = hardening::last_run(inspect.state.as_ref());
        let published = host_config
            .port_bindings
            .unwrap_or_default()
            .into_values()
            .flatten()
            .flatten()
            .map(|b| format!("{}:{}", b.host_ip.unwrap_or_default(), b.host_port.unwrap_or_default()))
            .collect();
        Ok(Some(ContainerInfo {
            id: inspect.id.unwrap_or_default(),
            created: inspect.created.unwrap_or_default(),
            state: inspect.state.and_then(|s| s.status).map(|s| s.to_string()).unwrap_or_else(|| "unknown".into()),
            image: config.image.unwrap_or_default(),
            image_id: inspect.image.unwrap_or_default(),
            labels: config.labels.unwrap_or_default(),
            published,
            env: config.env.unwrap_or_default(),
            hardening,
            health,
            last_health,
        }))
    }

    /// Creates (but does not start) a container. Returns its ID.
    pub async fn create_container(&self, spec: &ContainerSpec) -> Result<String, EngineError> {
        let port_key = spec.publish.as_ref().map(|(_, _, inner)| format!("{inner}/tcp"));
        let host_config = HostConfig {
            port_bindings: spec.publish.as_ref().map(|(ip, host_port, _)| {
                HashMap::from([(
                    port_key.clone().unwrap_or_default(),
                    Some(vec![PortBinding { host_ip: Some(ip.clone()), host_port: Some(host_port.to_string()) }]),
                )])
            }),
            binds: spec.volume.as_ref().map(|(volume, target)| vec![format!("{volume}:{target}")]),
            extra_hosts: (!spec.extra_hosts.is_empty()).then(|| spec.extra_hosts.clone()),
            restart_policy: spec.restart_unless_stopped.then_some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                maximum_retry_count: None,
            }),
            ..Default::default()
        };
        let host_config = hardening::apply(&spec.hardening, host_config);
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            labels: Some(spec.labels.clone()),
            exposed_ports: port_key.map(|key| vec![key]),
            cmd: (!spec.cmd.is_empty()).then(|| spec.cmd.clone()),
            volumes: (!spec.anonymous_volumes.is_empty()).then(|| spec.anonymous_volumes.clone()),
            healthcheck: hardening::health_config(&spec.hardening),
            host_config: Some(host_config),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default().name(&spec.name).build();
        let created = self
            .call(&format!("creating container {}", spec.name), self.docker.create_container(Some(options), body))
            .await?;
        Ok(created.id)
    }

    /// Puts one file `name` into the directory `dir` of a container (created or running), which
    /// must exist: unpacked there rather than at `/`, it may be a volume on a read-only root,
    /// where the engine refuses anything unpacked at `/`.
    pub async fn copy_file_into_dir(
        &self,
        container: &str,
        dir: &str,
        name: &str,
        contents: &[u8],
    ) -> Result<(), EngineError> {
        let mut archive = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(contents.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_cksum();
        let what = format!("copying {}/{name} into container {container}", dir.trim_end_matches('/'));
        archive.append_data(&mut header, name, contents).map_err(|e| EngineError::failed(&what, e))?;
        let tarball = archive.into_inner().map_err(|e| EngineError::failed(&what, e))?;
        let options = UploadToContainerOptionsBuilder::default().path(dir).build();
        self.call(&what, self.docker.upload_to_container(container, Some(options), bollard::body_full(tarball.into())))
            .await
    }

    /// Starts a container. A published port that something else holds becomes `PortInUse`.
    pub async fn start_container(&self, name: &str, published_port: Option<u16>) -> Result<(), EngineError> {
        let what = format!("starting container {name}");
        match self.call_raw_for(START_TIMEOUT, &what, self.docker.start_container(name, None)).await? {
            Ok(()) => Ok(()),
            Err(e) => match (published_port, EngineError::of(&what, &e)) {
                (Some(port), EngineError::Refused { message, .. }) if is_port_conflict(&message) => {
                    Err(EngineError::PortInUse { port })
                }
                (_, refused) => Err(refused),
            },
        }
    }

    /// Removes a container and its anonymous volumes; named volumes stay. Returns whether it existed.
    pub async fn remove_container(&self, name: &str) -> Result<bool, EngineError> {
        let options = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
        let what = format!("removing container {name}");
        match self.call_raw(&what, self.docker.remove_container(name, Some(options))).await? {
            Ok(()) => Ok(true),
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(false),
            // The engine is already removing it for another request: one from a run that was
            // killed meanwhile, whose removal the engine carries on. Done when it is gone.
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 409, message })
                if message.contains("already in progress") =>
            {
                self.until_gone(name, &what).await.map(|()| true)
            }
            Err(e) => Err(EngineError::of(&what, &e)),
        }
    }

    /// Waits, up to the engine timeout, until no container answers to `name`.
    async fn until_gone(&self, name: &str, what: &str) -> Result<(), EngineError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        while self.container(name).await?.is_some() {
            if tokio::time::Instant::now() > deadline {
                return Err(self.timed_out(what, self.timeout));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    /// Whether a named volume exists.
    pub async fn has_volume(&self, name: &str) -> Result<bool, EngineError> {
        let what = format!("inspecting volume {name}");
        Ok(self.call_optional(&what, self.docker.inspect_volume(name)).await?.is_some())
    }

    /// Removes a named volume (`uninstall --purge`). Returns whether it existed.
    pub async fn remove_volume(&self, name: &str) -> Result<bool, EngineError> {
        let what = format!("removing volume {name}");
        Ok(self
            .call_optional(
                &what,
                self.docker.remove_volume(name, None::<bollard::query_parameters::RemoveVolumeOptions>),
            )
            .await?
            .is_some())
    }

    pub async fn has_image(&self, image: &str) -> Result<bool, EngineError> {
        Ok(self.image(image).await?.is_some())
    }

    /// An image's ID and repo digests, or `None` when the engine does not have it.
    pub async fn image(&self, reference: &str) -> Result<Option<ImageInfo>, EngineError> {
        let what = format!("inspecting image {reference}");
        let Some(inspect) = self.call_optional(&what, self.docker.inspect_image(reference)).await? else {
            return Ok(None);
        };
        let config = inspect.config.unwrap_or_default();
        Ok(Some(ImageInfo {
            id: inspect.id.unwrap_or_default(),
            repo_digests: inspect.repo_digests.unwrap_or_default(),
            entrypoint: config.entrypoint.unwrap_or_default(),
            cmd: config.cmd.unwrap_or_default(),
        }))
    }

    /// Tags `source` (a reference or ID) as `target` (`repo:tag`), moving the tag if it exists.
    pub async fn tag_image(&self, source: &str, target: &str) -> Result<(), EngineError> {
        let (repo, tag) = split_tag(target);
        let options = TagImageOptionsBuilder::default().repo(repo).tag(tag).build();
        self.call(&format!("tagging {source} as {target}"), self.docker.tag_image(source, Some(options))).await
    }

    /// Pulls an image, reporting bytes across its layers to `progress` as `item` (the caller starts
    /// and finishes the item). The stream has no overall timeout, since a large image takes what
    /// it takes, but a stall of the engine timeout between two messages ends it.
    pub async fn pull_image(&self, image: &str, item: &str, progress: &dyn Progress) -> Result<(), EngineError> {
        let (repo, tag) = split_tag(image);
        let options = CreateImageOptionsBuilder::default().from_image(repo).tag(tag).build();
        let mut stream = self.docker.create_image(Some(options), None, None);
        let mut layers: HashMap<String, (u64, u64, TransferState)> = HashMap::new();
        loop {
            let info = match tokio::time::timeout(self.timeout, stream.next()).await {
                Err(_) => return Err(EngineError::Stalled { seconds: self.timeout.as_secs() }),
                Ok(None) => return Ok(()),
                Ok(Some(Err(e))) => {
                    let refused = EngineError::of(&format!("pulling {image}"), &e);
                    return Err(match plain_http_hint(&engine_message(&e), repo) {
                        Some(message) => EngineError::PullRefused { message },
                        None => refused,
                    });
                }
                Ok(Some(Ok(info))) => info,
            };
            if let Some(message) = info.error_detail.and_then(|d| d.message) {
                let message = plain_http_hint(&message, repo).unwrap_or(message);
                return Err(EngineError::PullRefused { message });
            }
            track_layer(&mut layers, info.id, info.status.as_deref(), info.progress_detail);
            let (done, total) = layers.values().fold((0, 0), |(d, t), (ld, lt, _)| (d + ld, t + lt));
            let state = if layers.values().any(|(_, _, s)| *s == TransferState::Pulling) {
                TransferState::Pulling
            } else if layers.values().any(|(_, _, s)| *s == TransferState::Extracting) {
                TransferState::Extracting
            } else {
                TransferState::Waiting
            };
            progress.update(item, done, total, state);
        }
    }

    /// Restarts a container (10 s to stop gracefully).
    pub async fn restart_container(&self, name: &str) -> Result<(), EngineError> {
        let options = RestartContainerOptionsBuilder::default().t(10).build();
        let what = format!("restarting container {name}");
        // Stopping (up to 10 s) and starting again: a start's limit, plus the stop.
        let restart = self.docker.restart_container(name, Some(options));
        self.call_raw_for(START_TIMEOUT + Duration::from_secs(10), &what, restart)
            .await?
            .map_err(|e| EngineError::of(&what, &e))
    }

    /// The container's log lines (stdout and stderr), the last `tail`, then new ones if `follow`.
    pub fn logs(
        &self,
        name: &str,
        tail: &str,
        follow: bool,
    ) -> impl Stream<Item = Result<String, EngineError>> + use<> {
        let options = LogsOptions { follow, stdout: true, stderr: true, tail: tail.to_string(), ..Default::default() };
        self.docker.logs(name, Some(options)).map(|item| {
            item.map(|line| line.to_string()).map_err(|e| EngineError::of("reading the container's logs", &e))
        })
    }
}

/// The engine's own words, without bollard's wrapping.
fn engine_message(err: &bollard::errors::Error) -> String {
    match err {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message.trim().to_string(),
        other => other.to_string(),
    }
}

/// podman (containers/image) pulls over HTTPS unless registries.conf marks the registry insecure;
/// dockerd trusts 127.0.0.0/8 by itself. The engine says so only in words: this is where they are
/// read, once, and turned into what to do.
fn plain_http_hint(message: &str, repo: &str) -> Option<String> {
    if !message.contains("server gave HTTP response to HTTPS client") {
        return None;
    }
    let registry = repo.split('/').next().unwrap_or(repo);
    Some(format!(
        "{message} (podman pulls over HTTPS unless registries.conf marks the registry insecure; on podman machine: \
         podman machine ssh \"printf '[[registry]]\\nlocation = \\\"{registry}\\\"\\ninsecure = true\\n' | \
         sudo tee /etc/containers/registries.conf.d/devbox.conf\", then podman machine stop && podman machine start)"
    ))
}

/// Whether the engine's refusal to start a container is a port clash. The engine says so only in
/// words (a 500 like any other failure), so they are read here, once, into `PortInUse`: dockerd's
/// own wording, and the kernel's through rootless or VM port forwarders.
fn is_port_conflict(message: &str) -> bool {
    message.contains("port is already allocated") || message.contains("address already in use")
}

/// Splits `repo[:tag]`, minding registry ports (`127.0.0.1:5000/base/go` has no tag).
pub fn split_tag(image: &str) -> (&str, &str) {
    // `name[:tag]@sha256:…`: the digest decides, so the engine is asked for exactly that.
    if let Some((name, digest)) = image.split_once('@') {
        let repo = match name.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => repo,
            _ => name,
        };
        return (repo, digest);
    }
    match image.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') && !image.contains('@') => (repo, tag),
        _ => (image, "latest"),
    }
}

fn track_layer(
    layers: &mut HashMap<String, (u64, u64, TransferState)>,
    id: Option<String>,
    status: Option<&str>,
    detail: Option<bollard::models::ProgressDetail>,
) {
    let (Some(id), Some(status)) = (id, status) else { return };
    let current = detail.as_ref().and_then(|d| d.current).unwrap_or(0).max(0) as u64;
    let total = detail.as_ref().and_then(|d| d.total).unwrap_or(0).max(0) as u64;
    let entry = layers.entry(id).or_insert((0, 0, TransferState::Waiting));
    match status {
        "Downloading" => *entry = (current, total.max(entry.1), TransferState::Pulling),
        "Extracting" => entry.2 = TransferState::Extracting,
        "Download complete" | "Verifying Checksum" => *entry = (entry.1, entry.1, TransferState::Extracting),
        "Pull complete" | "Already exists" => *entry = (entry.1, entry.1, TransferState::Waiting),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn podman_refusing_plain_http_is_told_what_to_do() {
        let hint = plain_http_hint("http: server gave HTTP response to HTTPS client", "127.0.0.1:5000/base/go")
            .expect("a plain-HTTP refusal gets a hint");
        assert!(hint.contains(r#"location = \"127.0.0.1:5000\""#), "{hint}");
        assert!(hint.contains("podman machine ssh"), "{hint}");
        assert_eq!(plain_http_hint("manifest unknown", "127.0.0.1:5000/x"), None);
    }

    #[test]
    fn split_tag_minds_registry_ports() {
        assert_eq!(split_tag("registry:2.8.3"), ("registry", "2.8.3"));
        assert_eq!(split_tag("127.0.0.1:5000/base/go"), ("127.0.0.1:5000/base/go", "latest"));
        assert_eq!(split_tag("127.0.0.1:5000/base/go:1.23"), ("127.0.0.1:5000/base/go", "1.23"));
        assert_eq!(split_tag("alpine"), ("alpine", "latest"));
        assert_eq!(split_tag("registry:3.0.0@sha256:abc"), ("registry", "sha256:abc"));
        assert_eq!(split_tag("127.0.0.1:5990/r@sha256:abc"), ("127.0.0.1:5990/r", "sha256:abc"));
    }

    #[test]
    fn port_conflicts_are_recognised_in_both_engine_wordings() {
        assert!(is_port_conflict(
            "driver failed programming external connectivity on endpoint x: Bind for 127.0.0.1:5000 failed: port is already allocated"
        ));
        assert!(is_port_conflict("listen tcp4 127.0.0.1:5000: bind: address already in use"));
        assert!(!is_port_conflict("no such image"));
    }
}
