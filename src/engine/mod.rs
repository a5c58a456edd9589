//! The Docker engine, in devbox's terms. Only this module imports bollard; commands see
//! `Engine`, `ContainerSpec` and `ContainerInfo`.

mod connect;
mod endpoint;
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

use crate::error::Error;
use crate::ui::{Progress, TransferState};

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
    ) -> anyhow::Result<Result<T, bollard::errors::Error>> {
        self.call_raw_for(self.timeout, what, request).await
    }

    /// `call_raw` under another timeout: starting a container, which takes seconds in a slow VM.
    async fn call_raw_for<T>(
        &self,
        timeout: Duration,
        what: &str,
        request: impl Future<Output = Result<T, bollard::errors::Error>>,
    ) -> anyhow::Result<Result<T, bollard::errors::Error>> {
        tokio::time::timeout(timeout, request).await.map_err(|_| {
            Error::EngineTimeout { endpoint: self.endpoint.clone(), what: what.to_string(), seconds: timeout.as_secs() }
                .into()
        })
    }

    /// Any engine future (a stream's next item, say) under the engine timeout.
    async fn within<T>(&self, what: &str, future: impl Future<Output = T>) -> anyhow::Result<T> {
        tokio::time::timeout(self.timeout, future).await.map_err(|_| {
            Error::EngineTimeout {
                endpoint: self.endpoint.clone(),
                what: what.to_string(),
                seconds: self.timeout.as_secs(),
            }
            .into()
        })
    }

    async fn call<T>(
        &self,
        what: &str,
        request: impl Future<Output = Result<T, bollard::errors::Error>>,
    ) -> anyhow::Result<T> {
        self.call_raw(what, request).await?.map_err(|e| failed(what, &e))
    }

    /// Like `call`, but "not found" is `None` rather than an error.
    async fn call_optional<T>(
        &self,
        what: &str,
        request: impl Future<Output = Result<T, bollard::errors::Error>>,
    ) -> anyhow::Result<Option<T>> {
        match self.call_raw(what, request).await? {
            Ok(value) => Ok(Some(value)),
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(None),
            Err(e) => Err(failed(what, &e)),
        }
    }

    /// A ping: the cheapest request, for timing the way to the engine.
    pub async fn ping(&self) -> anyhow::Result<()> {
        self.call("pinging the engine", self.docker.ping()).await.map(|_| ())
    }

    /// The engine's info: version, operating system, clock. `api_version` is what devbox speaks.
    pub async fn info(&self) -> anyhow::Result<EngineInfo> {
        let info = self.call("reading the engine's info", self.docker.info()).await?;
        Ok(model::engine_info(info, self.docker.client_version().to_string()))
    }

    /// The container called `name`, if there is one.
    pub async fn container(&self, name: &str) -> anyhow::Result<Option<ContainerInfo>> {
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
            labels: config.labels.unwrap_or_default(),
            published,
            env: config.env.unwrap_or_default(),
            hardening,
            health,
            last_health,
        }))
    }

    /// Creates (but does not start) a container. Returns its ID.
    pub async fn create_container(&self, spec: &ContainerSpec) -> anyhow::Result<String> {
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
    ) -> anyhow::Result<()> {
        let mut archive = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(contents.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_cksum();
        archive.append_data(&mut header, name, contents)?;
        let tarball = archive.into_inner()?;
        let options = UploadToContainerOptionsBuilder::default().path(dir).build();
        self.call(
            &format!("copying {}/{name} into container {container}", dir.trim_end_matches('/')),
            self.docker.upload_to_container(container, Some(options), bollard::body_full(tarball.into())),
        )
        .await
    }

    /// Starts a container. A published port that something else holds becomes `Error::PortBusy`.
    pub async fn start_container(&self, name: &str, published_port: Option<u16>) -> anyhow::Result<()> {
        let what = format!("starting container {name}");
        match self.call_raw_for(START_TIMEOUT, &what, self.docker.start_container(name, None)).await? {
            Ok(()) => Ok(()),
            Err(e) => match published_port {
                Some(port) if is_port_conflict(&engine_message(&e)) => Err(Error::PortBusy { port }.into()),
                _ => Err(failed(&what, &e)),
            },
        }
    }

    /// Removes a container and its anonymous volumes; named volumes stay. Returns whether it existed.
    pub async fn remove_container(&self, name: &str) -> anyhow::Result<bool> {
        let options = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
        let what = format!("removing container {name}");
        Ok(self.call_optional(&what, self.docker.remove_container(name, Some(options))).await?.is_some())
    }

    /// Whether a named volume exists.
    pub async fn has_volume(&self, name: &str) -> anyhow::Result<bool> {
        let what = format!("inspecting volume {name}");
        Ok(self.call_optional(&what, self.docker.inspect_volume(name)).await?.is_some())
    }

    /// Removes a named volume (`uninstall --purge`). Returns whether it existed.
    pub async fn remove_volume(&self, name: &str) -> anyhow::Result<bool> {
        let what = format!("removing volume {name}");
        Ok(self
            .call_optional(
                &what,
                self.docker.remove_volume(name, None::<bollard::query_parameters::RemoveVolumeOptions>),
            )
            .await?
            .is_some())
    }

    pub async fn has_image(&self, image: &str) -> anyhow::Result<bool> {
        Ok(self.image(image).await?.is_some())
    }

    /// An image's ID and repo digests, or `None` when the engine does not have it.
    pub async fn image(&self, reference: &str) -> anyhow::Result<Option<ImageInfo>> {
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
    pub async fn tag_image(&self, source: &str, target: &str) -> anyhow::Result<()> {
        let (repo, tag) = split_tag(target);
        let options = TagImageOptionsBuilder::default().repo(repo).tag(tag).build();
        self.call(&format!("tagging {source} as {target}"), self.docker.tag_image(source, Some(options))).await
    }

    /// Pulls an image, reporting bytes across its layers to `progress` as `item` (the caller starts
    /// and finishes the item). The stream has no overall timeout, since a large image takes what
    /// it takes, but a stall of the engine timeout between two messages ends it.
    pub async fn pull_image(&self, image: &str, item: &str, progress: &dyn Progress) -> Result<(), String> {
        let (repo, tag) = split_tag(image);
        let options = CreateImageOptionsBuilder::default().from_image(repo).tag(tag).build();
        let mut stream = self.docker.create_image(Some(options), None, None);
        let mut layers: HashMap<String, (u64, u64, TransferState)> = HashMap::new();
        loop {
            let info = match tokio::time::timeout(self.timeout, stream.next()).await {
                Err(_) => return Err(format!("no progress from the engine for {}s", self.timeout.as_secs())),
                Ok(None) => return Ok(()),
                Ok(Some(Err(e))) => return Err(engine_message(&e)),
                Ok(Some(Ok(info))) => info,
            };
            if let Some(message) = info.error_detail.and_then(|d| d.message) {
                return Err(message);
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
    pub async fn restart_container(&self, name: &str) -> anyhow::Result<()> {
        let options = RestartContainerOptionsBuilder::default().t(10).build();
        let what = format!("restarting container {name}");
        // Stopping (up to 10 s) and starting again: a start's limit, plus the stop.
        let restart = self.docker.restart_container(name, Some(options));
        self.call_raw_for(START_TIMEOUT + Duration::from_secs(10), &what, restart).await?.map_err(|e| failed(&what, &e))
    }

    /// The container's log lines (stdout and stderr), the last `tail`, then new ones if `follow`.
    pub fn logs(&self, name: &str, tail: &str, follow: bool) -> impl Stream<Item = anyhow::Result<String>> + use<> {
        let options = LogsOptions { follow, stdout: true, stderr: true, tail: tail.to_string(), ..Default::default() };
        self.docker
            .logs(name, Some(options))
            .map(|item| item.map(|line| line.to_string()).map_err(|e| failed("reading the container's logs", &e)))
    }
}

fn failed(what: &str, err: &bollard::errors::Error) -> anyhow::Error {
    anyhow::anyhow!(engine_message(err)).context(format!("{what} failed"))
}

/// The engine's own words, without bollard's wrapping.
fn engine_message(err: &bollard::errors::Error) -> String {
    match err {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message.trim().to_string(),
        other => other.to_string(),
    }
}

fn is_port_conflict(message: &str) -> bool {
    message.contains("port is already allocated") || message.contains("address already in use")
}

/// Splits `repo[:tag]`, minding registry ports (`127.0.0.1:5000/base/go` has no tag).
pub fn split_tag(image: &str) -> (&str, &str) {
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
    fn split_tag_minds_registry_ports() {
        assert_eq!(split_tag("registry:2.8.3"), ("registry", "2.8.3"));
        assert_eq!(split_tag("127.0.0.1:5000/base/go"), ("127.0.0.1:5000/base/go", "latest"));
        assert_eq!(split_tag("127.0.0.1:5000/base/go:1.23"), ("127.0.0.1:5000/base/go", "1.23"));
        assert_eq!(split_tag("alpine"), ("alpine", "latest"));
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
