//! devbox's own registry container: what it should be (a pure function of the config) and how that
//! compares with what runs (a pure decision). The thin steps that make it so are in `converge.rs`;
//! every command changes the registry through `Service` (`service.rs`), under the lock.

pub mod api;
pub mod cause;
mod converge;
pub mod hardening;
pub mod lease;
pub mod line;
pub mod network;
pub mod pin;
pub mod proof;
mod renew;
mod service;
pub mod verify;

use std::collections::HashMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::aws::AwsCredentials;
use crate::config::{RegistryConfig, Storage};
use crate::engine::{ContainerInfo, ContainerSpec, Hardening};
pub use converge::{Converged, UpOutcome, desired, pending, storage_cause, storage_error, wait_ready};
pub use hardening::{hardening, holds_long_lived_key};
use lease::LeaseVerdict;
pub use lease::{damaged_lease, lease_of};
use line::{Layout, Line};
pub use renew::{Renewal, credentials_expire};
pub use service::Service;

pub const LABEL_MANAGED: &str = "devbox.managed";
pub const LABEL_ROLE: &str = "devbox.role";
pub const LABEL_CONFIG_HASH: &str = "devbox.config-hash";
pub const LABEL_STORAGE: &str = "devbox.storage";
pub const LABEL_READONLY: &str = "devbox.readonly";
pub const LABEL_CREDENTIALS_EXPIRY: &str = "devbox.credentials-expiry";
/// When devbox resolved the container's credentials: with the expiry, their lifetime.
pub const LABEL_CREDENTIALS_ISSUED: &str = "devbox.credentials-issued";
/// A keyed hash of the long-lived key behind the container's credentials (the key itself, or the
/// one that minted its session), so that a rotated key is seen without the engine holding it.
pub const LABEL_CREDENTIALS_KEY: &str = "devbox.credentials-key";

const TEMPLATE: &str = include_str!("../../templates/registry.yml");
const DATA_IN_CONTAINER: &str = "/var/lib/registry";

/// The registry as the config asks for it.
pub struct Desired {
    /// The image's line, and the command that hands it `config_yaml`.
    pub layout: Layout,
    pub config_yaml: String,
    pub hash: String,
    pub storage: Storage,
    pub readonly: bool,
    /// How the container is confined.
    pub hardening: Hardening,
    pub network: network::ContainerNetwork,
}

impl Desired {
    pub fn from_config(config: &RegistryConfig, layout: Layout) -> anyhow::Result<Desired> {
        let storage = config.storage();
        let readonly = effective_readonly(config);
        let config_yaml = render_config(config, layout.line)?;
        let hardening = hardening(config);
        let hash = config_hash(config, &layout, &config_yaml, &hardening);
        Ok(Desired { layout, config_yaml, hash, storage, readonly, hardening, network: Default::default() })
    }
}

/// Read-only applies to S3 storage, the shared store that only CI may write. A filesystem registry
/// is the laptop's own cache, with nothing behind it to protect.
pub fn effective_readonly(config: &RegistryConfig) -> bool {
    config.readonly && config.storage() == Storage::S3
}

#[derive(Serialize)]
struct RegistryContext<'a> {
    line: Line,
    path: &'a str,
    storage: String,
    readonly: bool,
    s3: S3Context<'a>,
}

#[derive(Serialize)]
struct S3Context<'a> {
    region: &'a str,
    bucket: String,
    root_directory: &'a str,
    endpoint: String,
    path_style: bool,
    secure: bool,
}

/// The registry's config for distribution `line`, rendered from `templates/registry.yml`.
pub fn render_config(config: &RegistryConfig, line: Line) -> anyhow::Result<String> {
    let s3 = &config.s3;
    let endpoint = container_endpoint(&s3.endpoint);
    let context = RegistryContext {
        line,
        path: line::CONFIG_PATH,
        storage: config.storage().to_string(),
        readonly: effective_readonly(config),
        s3: S3Context {
            region: &s3.region,
            bucket: s3.bucket.as_ref().map(|b| b.to_string()).unwrap_or_default(),
            root_directory: &s3.root_directory,
            secure: !endpoint.starts_with("http://"),
            endpoint,
            path_style: s3.path_style,
        },
    };
    crate::templates::render("registry.yml", TEMPLATE, context)
}

/// An endpoint on this host's loopback is not the container's loopback: inside the container it
/// is reached through `host.docker.internal`, which devbox maps to the engine's host gateway.
pub fn container_endpoint(endpoint: &str) -> String {
    for local in ["localhost", "127.0.0.1", "[::1]"] {
        for scheme in ["http://", "https://"] {
            let prefix = format!("{scheme}{local}");
            if let Some(rest) = endpoint.strip_prefix(&prefix)
                && (rest.is_empty() || rest.starts_with(':') || rest.starts_with('/'))
            {
                return format!("{scheme}host.docker.internal{rest}");
            }
        }
    }
    endpoint.to_string()
}

/// A hash of everything that shapes the container, secrets excluded: same hash, same container.
/// The line is part of it: the same tag moved to another line's image is another container. So
/// are its hardening, and on S3 what its credentials are to be: a registry made before either was
/// set is made again once.
fn config_hash(config: &RegistryConfig, layout: &Layout, config_yaml: &str, hardening: &Hardening) -> String {
    let mut hasher = Sha256::new();
    let line = layout.line.to_string();
    let cmd = layout.cmd.join("\0");
    let hardening = format!("{hardening:?}");
    let session = match config.storage() {
        Storage::S3 => format!("{} {:?}", config.s3.session, config.s3.session_duration),
        Storage::Filesystem => String::new(),
    };
    let parts = [config.image.as_str(), &config.port.to_string(), &config.volume(), &line, &cmd, config_yaml];
    for part in parts.into_iter().chain([hardening.as_str(), &session]) {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    hex::encode(&hasher.finalize()[..16])
}

/// What `up` must do to bring the container to the desired state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Create,
    /// Remove and create again, for the reason given.
    Recreate(&'static str),
    Start,
    Nothing,
    /// A container of that name exists but is not devbox's: never touch it.
    Refuse,
}

/// Decides what `up` does. Pure: the tests drive it with every combination.
///
/// `credentials` are the host's. Short-lived ones differ on every resolution, so they are judged by
/// the lease devbox recorded on the container: still good past the refresh window, the container
/// stays. That holds for a session devbox minted from a long-lived key too. The long-lived key
/// behind the container is compared by its hash, so a rotated key still recreates it.
pub fn decide(
    existing: Option<&ContainerInfo>,
    desired: &Desired,
    credentials: Option<&AwsCredentials>,
    now: jiff::Timestamp,
) -> Action {
    let Some(existing) = existing else { return Action::Create };
    if existing.label(LABEL_MANAGED) != Some("true") {
        return Action::Refuse;
    }
    if existing.label(LABEL_CONFIG_HASH) != Some(desired.hash.as_str()) {
        return Action::Recreate("the configuration changed");
    }
    // Never started: a run stopped before handing it its config, so it would serve the image's own.
    if existing.state == "created" {
        return Action::Recreate("a run was stopped while making it");
    }
    if damaged_lease(existing).is_some() {
        return Action::Recreate("its credentials' lease label is unreadable");
    }
    if let Some(credentials) = credentials {
        let changed = credentials.source_key.as_deref() != existing.label(LABEL_CREDENTIALS_KEY);
        match lease_of(existing).verdict(now) {
            LeaseVerdict::Expired { .. } => return Action::Recreate("its AWS credentials expired"),
            LeaseVerdict::Renew { .. } => return Action::Recreate("its AWS credentials are about to expire"),
            // Fresh session credentials are kept while they last, unless the host's key is another
            // one than the key behind them (rotated, or the host moved to a long-lived key).
            LeaseVerdict::Fresh { .. } if changed && credentials.source_key.is_some() => {
                return Action::Recreate("the AWS credentials changed");
            }
            LeaseVerdict::Fresh { .. } => {}
            LeaseVerdict::LongLived if changed => return Action::Recreate("the AWS credentials changed"),
            LeaseVerdict::LongLived => {}
        }
    }
    if existing.is_running() { Action::Nothing } else { Action::Start }
}

/// The container devbox runs for this config, with credentials when the storage is S3.
fn container_spec(config: &RegistryConfig, desired: &Desired, credentials: Option<&AwsCredentials>) -> ContainerSpec {
    let mut labels = HashMap::from([
        (LABEL_MANAGED.to_string(), "true".to_string()),
        (LABEL_ROLE.to_string(), "registry".to_string()),
        (LABEL_CONFIG_HASH.to_string(), desired.hash.clone()),
        (LABEL_STORAGE.to_string(), desired.storage.to_string()),
        (LABEL_READONLY.to_string(), desired.readonly.to_string()),
    ]);
    if let Some(credentials) = credentials
        && let Some(expiry) = credentials.expiry
    {
        labels.insert(LABEL_CREDENTIALS_EXPIRY.to_string(), expiry.to_string());
        labels.insert(LABEL_CREDENTIALS_ISSUED.to_string(), credentials.resolved_at.to_string());
    }
    if let Some(key) = credentials.and_then(|c| c.source_key.as_ref()) {
        labels.insert(LABEL_CREDENTIALS_KEY.to_string(), key.clone());
    }
    ContainerSpec {
        name: config.container.clone(),
        image: config.image.clone(),
        env: credentials
            .map(AwsCredentials::container_env)
            .unwrap_or_default()
            .into_iter()
            .chain(desired.layout.env())
            .chain(desired.network.env.iter().cloned())
            .collect(),
        labels,
        publish: Some(("127.0.0.1".to_string(), config.port, 5000)),
        volume: (desired.storage == Storage::Filesystem).then(|| (config.volume(), DATA_IN_CONTAINER.to_string())),
        extra_hosts: vec!["host.docker.internal:host-gateway".to_string()],
        restart_unless_stopped: true,
        cmd: desired.layout.cmd.clone(),
        anonymous_volumes: vec![hardening::CONFIG_DIR.to_string()],
        hardening: desired.hardening.clone(),
    }
}

#[cfg(test)]
mod tests;
