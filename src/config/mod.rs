//! `devbox.toml`: the typed configuration, its embedded defaults and its validation.
//!
//! Loading (file lookup, merging over the defaults, error locations) lives in `load.rs`; this file
//! holds the shape of the config and the rules each value must follow.

pub mod keys;
mod load;
mod values;

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub(crate) use load::parse_str;
pub use load::{ConfigSource, LoadedConfig, Written, defaults, load, load_written};
pub use values::{BucketName, ByteSize, KeepLabel, Period, loopback_host, require_https};

/// The defaults, embedded in the binary. A user's file is laid over them key by key.
const DEFAULTS: &str = include_str!("../../templates/devbox.toml");

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub registry: RegistryConfig,
    pub images: ImagesConfig,
    pub cleanup: CleanupConfig,
    pub clock: ClockConfig,
    pub doctor: DoctorConfig,
    pub fleet: FleetConfig,
    pub security: SecurityConfig,
    pub network: NetworkConfig,
    pub update: UpdateConfig,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    pub image: String,
    pub pull: PullPolicy,
    pub container: String,
    pub port: u16,
    pub storage: StorageChoice,
    pub readonly: bool,
    /// The container's memory limit (CIS Docker Benchmark 5.11).
    pub memory: ByteSize,
    /// Its relative CPU weight; the engine's default is 1024 (CIS 5.12).
    pub cpu_shares: u32,
    /// The most processes and threads it may run (CIS 5.29).
    pub pids_limit: u32,
    pub s3: S3Config,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PullPolicy {
    Missing,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageChoice {
    Auto,
    S3,
    Filesystem,
}

/// Where the registry keeps its blobs, once `auto` is resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Storage {
    S3,
    Filesystem,
}

impl std::fmt::Display for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Storage::S3 => "s3",
            Storage::Filesystem => "filesystem",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    #[serde(deserialize_with = "values::empty_as_none", serialize_with = "values::none_as_empty")]
    pub bucket: Option<BucketName>,
    pub region: String,
    pub root_directory: String,
    pub endpoint: String,
    pub path_style: bool,
    pub profile: String,
    /// Whether the registry gets STS session credentials instead of a long-lived key.
    pub session: SessionMode,
    /// How long those session credentials last (STS GetSessionToken's duration).
    #[serde(with = "humantime_serde")]
    pub session_duration: Duration,
    /// A role the registry's session is taken through (STS AssumeRole, with the read-only session
    /// policy); empty: GetFederationToken from a long-lived key.
    #[serde(default)]
    pub role_arn: String,
}

/// What the registry container gets when the host's AWS key is long-lived (it has no expiry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionMode {
    /// Session credentials from STS where the endpoint answers STS; the key itself where it does not.
    Auto,
    /// Session credentials from STS, or nothing: an endpoint without STS is an error.
    Required,
    /// The long-lived key itself.
    Off,
}

impl std::fmt::Display for SessionMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SessionMode::Auto => "auto",
            SessionMode::Required => "required",
            SessionMode::Off => "off",
        })
    }
}

/// The shortest and longest session STS GetSessionToken gives an IAM user.
pub const SESSION_DURATION_RANGE: (Duration, Duration) = (Duration::from_secs(15 * 60), Duration::from_secs(36 * 3600));

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ImagesConfig {
    pub base: Vec<String>,
    pub alias: String,
    pub concurrency: usize,
    pub refresh: Period,
    /// Whether a base image must carry CI's cosign signature before it is tagged.
    pub verify: VerifyMode,
    /// The cosign public keys (PEM, ECDSA P-256, inline or an absolute path) any of which may sign.
    pub public_keys: Vec<String>,
}

/// `images.verify`: what a pull does with a base image that is not signed by a trusted key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VerifyMode {
    /// Signatures are not looked at.
    Off,
    /// Tagged anyway, with a warning.
    Warn,
    /// Not tagged: the alias keeps its last verified image.
    Require,
}

impl std::fmt::Display for VerifyMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            VerifyMode::Off => "off",
            VerifyMode::Warn => "warn",
            VerifyMode::Require => "require",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CleanupConfig {
    pub schedule: Period,
    #[serde(with = "humantime_serde")]
    pub older_than: Duration,
    pub keep_labels: Vec<KeepLabel>,
    pub build_cache: bool,
    #[serde(deserialize_with = "values::empty_as_none", serialize_with = "values::none_as_empty")]
    pub max_disk: Option<ByteSize>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClockConfig {
    #[serde(with = "humantime_serde")]
    pub max_skew: Duration,
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DoctorConfig {
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

/// `[fleet]`: this machine's doctor reports, sent to the team's bucket (`doctor --report`), and
/// what `devbox fleet` reads back.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FleetConfig {
    pub report: bool,
    #[serde(deserialize_with = "values::empty_as_none", serialize_with = "values::none_as_empty")]
    pub bucket: Option<BucketName>,
    pub prefix: String,
    #[serde(with = "humantime_serde")]
    pub stale_after: Duration,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityConfig {
    pub production_registries: Vec<String>,
}

/// `[network]`: the company proxy and CAs (resolved with the environment in `network.rs`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    /// Shown and serialized without its credentials.
    #[serde(deserialize_with = "values::empty_as_none", serialize_with = "values::none_as_empty")]
    pub proxy: Option<crate::network::ProxyUrl>,
    pub no_proxy: Vec<String>,
    pub ca_certificates: Vec<std::path::PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateConfig {
    pub github: String,
    pub s3_bucket: String,
    pub url: String,
    /// The minisign key releases must be signed with; empty: the project's, embedded.
    pub public_key: String,
}

impl RegistryConfig {
    /// The storage in force: `auto` means S3 when a bucket is set, the named volume otherwise.
    pub fn storage(&self) -> Storage {
        match self.storage {
            StorageChoice::S3 => Storage::S3,
            StorageChoice::Filesystem => Storage::Filesystem,
            StorageChoice::Auto if self.s3.bucket.is_some() => Storage::S3,
            StorageChoice::Auto => Storage::Filesystem,
        }
    }

    /// The named volume that holds filesystem storage. `down` and cleanup keep it.
    pub fn volume(&self) -> String {
        format!("{}-data", self.container)
    }

    /// The registry's address as seen from this host.
    pub fn local_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// A rule a value broke, found after the file parsed: which key, and why.
#[derive(Debug, PartialEq)]
pub struct Invalid {
    pub key: &'static str,
    pub message: String,
}

impl Config {
    /// Rules that span several keys, or that serde cannot express. Each names the key to fix.
    pub fn validate(&self) -> Result<(), Invalid> {
        let invalid = |key, message: String| Err(Invalid { key, message });
        let r = &self.registry;
        if r.image.trim().is_empty() {
            return invalid("registry.image", "must name an image, e.g. \"registry:2.8.3\"".into());
        }
        if r.port == 0 {
            return invalid("registry.port", "must be a port between 1 and 65535".into());
        }
        if !is_container_name(&r.container) {
            return invalid(
                "registry.container",
                format!(
                    "{:?} is not a valid container name (letters, digits, '_', '.', '-'; starting with a letter or digit)",
                    r.container
                ),
            );
        }
        if r.storage == StorageChoice::S3 && r.s3.bucket.is_none() {
            return invalid(
                "registry.storage",
                "is \"s3\" but registry.s3.bucket is empty: set the bucket, or use storage = \"filesystem\"".into(),
            );
        }
        if r.storage() == Storage::S3 && r.s3.region.trim().is_empty() {
            return invalid("registry.s3.region", "must be set for S3 storage, e.g. \"us-east-1\"".into());
        }
        let endpoint = &r.s3.endpoint;
        if !endpoint.is_empty()
            && let Err(reason) = require_https(endpoint)
        {
            return invalid("registry.s3.endpoint", format!("{endpoint:?}: {reason}; or empty for AWS"));
        }
        if !r.s3.root_directory.starts_with('/') {
            return invalid(
                "registry.s3.root_directory",
                format!("{:?} must be an absolute path, e.g. \"/registry\"", r.s3.root_directory),
            );
        }
        let (shortest, longest) = SESSION_DURATION_RANGE;
        if !(shortest..=longest).contains(&r.s3.session_duration) {
            return invalid(
                "registry.s3.session_duration",
                format!(
                    "{} is outside what STS gives: between 15m and 36h, e.g. \"12h\"",
                    humantime::format_duration(r.s3.session_duration)
                ),
            );
        }
        // The engine's own minimums: below them it refuses to create the container.
        if r.memory.0 < 6 * 1024 * 1024 {
            return invalid(
                "registry.memory",
                format!("{} is below the engine's minimum of 6MiB, e.g. \"512MiB\"", r.memory),
            );
        }
        if r.cpu_shares < 2 {
            return invalid(
                "registry.cpu_shares",
                "must be at least 2 (the engine's default weight is 1024), e.g. 512".into(),
            );
        }
        if r.pids_limit < 16 {
            return invalid(
                "registry.pids_limit",
                "must be at least 16: the registry runs a few dozen threads, e.g. 256".into(),
            );
        }
        let alias = &self.images.alias;
        if !alias.is_empty() && !alias.contains("{name}") {
            return invalid(
                "images.alias",
                format!("{alias:?} must contain {{name}}, e.g. \"acme/{{name}}\", so each image gets its own alias"),
            );
        }
        if self.doctor.timeout.is_zero() {
            return invalid("doctor.timeout", "must be more than 0s, e.g. \"5s\"".into());
        }
        let update = &self.update;
        if !update.url.is_empty()
            && let Err(reason) = require_https(&update.url)
        {
            return invalid("update.url", format!("{:?}: {reason}, e.g. \"https://dl.acme.dev/devbox/\"", update.url));
        }
        if !update.public_key.is_empty()
            && let Err(reason) = crate::signature::PublicKey::parse(&update.public_key)
        {
            return invalid("update.public_key", reason);
        }
        if !(update.github.is_empty() || update.github.split('/').filter(|p| !p.is_empty()).count() == 2) {
            return invalid(
                "update.github",
                format!("{:?} must be \"owner/repo\", e.g. \"acme/devbox\"", update.github),
            );
        }
        if !update.s3_bucket.is_empty()
            && let Err(reason) = BucketName::try_from(update.s3_bucket.clone())
        {
            return invalid("update.s3_bucket", reason);
        }
        let fleet = &self.fleet;
        if fleet.prefix.is_empty() || !fleet.prefix.ends_with('/') || fleet.prefix.starts_with('/') {
            return invalid(
                "fleet.prefix",
                format!("{:?} must be a key prefix ending in '/', e.g. \"devbox/fleet/\"", fleet.prefix),
            );
        }
        if fleet.stale_after.is_zero() {
            return invalid("fleet.stale_after", "must be more than 0s, e.g. \"3d\"".into());
        }
        if fleet.name.chars().count() > 64 || fleet.name.chars().any(char::is_control) {
            return invalid("fleet.name", "must be at most 64 characters, with no control characters".into());
        }
        if self.images.concurrency == 0 {
            return invalid("images.concurrency", "must be at least 1".into());
        }
        self.validate_keys()
    }

    /// `images.public_keys`: each one a P-256 PEM key (read now when it is a path), and at least
    /// one when `images.verify` is on.
    fn validate_keys(&self) -> Result<(), Invalid> {
        let images = &self.images;
        if let Err(bad) = keys::load(&images.public_keys) {
            // The key named is the list: serde's path to one item is not a `&'static str`.
            let message = format!("entry {} (counting from 0): {}", bad.index, bad.reason);
            return Err(Invalid { key: "images.public_keys", message });
        }
        if images.verify != VerifyMode::Off && images.public_keys.is_empty() {
            return Err(Invalid {
                key: "images.public_keys",
                message: format!(
                    "is empty, but images.verify = \"{}\" needs the key CI signs with (its cosign.pub, PEM)",
                    images.verify
                ),
            });
        }
        Ok(())
    }
}

fn is_container_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

#[cfg(test)]
mod tests;
