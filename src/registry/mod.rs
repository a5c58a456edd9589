//! devbox's own registry container: what it should be (a pure function of the config), how that
//! compares with what runs (a pure decision), and the thin steps that make it so.

pub mod api;
pub mod line;
pub mod verify;

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::aws::{Aws, AwsCredentials};
use crate::config::{RegistryConfig, Storage};
use crate::engine::{ContainerInfo, ContainerSpec, Engine};
use crate::error::Error;
use crate::ui::Progress;
use line::{Layout, Line};

pub const LABEL_MANAGED: &str = "devbox.managed";
pub const LABEL_ROLE: &str = "devbox.role";
pub const LABEL_CONFIG_HASH: &str = "devbox.config-hash";
pub const LABEL_STORAGE: &str = "devbox.storage";
pub const LABEL_READONLY: &str = "devbox.readonly";
pub const LABEL_CREDENTIALS_EXPIRY: &str = "devbox.credentials-expiry";

const TEMPLATE: &str = include_str!("../../templates/registry.yml");
const DATA_IN_CONTAINER: &str = "/var/lib/registry";
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The registry as the config asks for it.
pub struct Desired {
    /// The image's line, and the command that hands it `config_yaml`.
    pub layout: Layout,
    pub config_yaml: String,
    pub hash: String,
    pub storage: Storage,
    pub readonly: bool,
}

impl Desired {
    pub fn from_config(config: &RegistryConfig, layout: Layout) -> anyhow::Result<Desired> {
        let storage = config.storage();
        let readonly = effective_readonly(config);
        let config_yaml = render_config(config, layout.line)?;
        let hash = config_hash(config, &layout, &config_yaml);
        Ok(Desired { layout, config_yaml, hash, storage, readonly })
    }
}

/// The registry as the config asks for it on this engine, whose copy of `registry.image` tells the
/// line; `None` when the engine does not have the image (nothing to compare with, then).
pub async fn desired(engine: &Engine, config: &RegistryConfig) -> anyhow::Result<Option<Desired>> {
    match line::detect(engine, &config.image).await? {
        Some(layout) => Ok(Some(Desired::from_config(config, layout)?)),
        None => Ok(None),
    }
}

/// The same for `registry up`, which pulls the image first when the config allows it.
pub async fn desired_for_up(
    engine: &Engine,
    config: &RegistryConfig,
    progress: &dyn Progress,
) -> anyhow::Result<Desired> {
    ensure_image(engine, config, progress).await?;
    desired(engine, config).await?.ok_or_else(|| Error::ImageNotPresent { image: config.image.clone() }.into())
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
/// The line is part of it: the same tag moved to another line's image is another container.
fn config_hash(config: &RegistryConfig, layout: &Layout, config_yaml: &str) -> String {
    let mut hasher = Sha256::new();
    let line = layout.line.to_string();
    let cmd = layout.cmd.join("\0");
    for part in [config.image.as_str(), &config.port.to_string(), &config.volume(), &line, &cmd, config_yaml] {
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
pub fn decide(existing: Option<&ContainerInfo>, desired: &Desired, credentials: Option<&AwsCredentials>) -> Action {
    let Some(existing) = existing else { return Action::Create };
    if existing.label(LABEL_MANAGED) != Some("true") {
        return Action::Refuse;
    }
    if existing.label(LABEL_CONFIG_HASH) != Some(desired.hash.as_str()) {
        return Action::Recreate("the configuration changed");
    }
    if let Some(credentials) = credentials
        && credentials.container_env().iter().any(|(key, value)| existing.env_value(key) != Some(value))
    {
        return Action::Recreate("the AWS credentials changed");
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
    if let Some(expiry) = credentials.and_then(|c| c.expiry) {
        labels.insert(LABEL_CREDENTIALS_EXPIRY.to_string(), expiry.to_string());
    }
    ContainerSpec {
        name: config.container.clone(),
        image: config.image.clone(),
        env: credentials
            .map(AwsCredentials::container_env)
            .unwrap_or_default()
            .into_iter()
            .chain(desired.layout.env())
            .collect(),
        labels,
        publish: Some(("127.0.0.1".to_string(), config.port, 5000)),
        volume: (desired.storage == Storage::Filesystem).then(|| (config.volume(), DATA_IN_CONTAINER.to_string())),
        extra_hosts: vec!["host.docker.internal:host-gateway".to_string()],
        restart_unless_stopped: true,
        cmd: desired.layout.cmd.clone(),
    }
}

/// What `up` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UpOutcome {
    Created,
    Recreated { reason: String },
    Started,
    Unchanged,
}

/// Brings the registry container to the state `config` asks for, and waits until it answers.
/// Whatever this run created is removed again if it cannot be made ready: nothing is left half-made.
pub async fn up(
    engine: &Engine,
    config: &RegistryConfig,
    desired: &Desired,
    existing: Option<&ContainerInfo>,
    s3: Option<&Aws>,
    progress: &dyn Progress,
) -> anyhow::Result<UpOutcome> {
    let api = api::RegistryApi::new(&config.local_url())?;
    let credentials = s3.map(Aws::credentials);
    let outcome = match decide(existing, desired, credentials) {
        Action::Refuse => return Err(Error::ForeignContainer { container: config.container.clone() }.into()),
        Action::Nothing => UpOutcome::Unchanged,
        Action::Start => {
            engine.start_container(&config.container, Some(config.port)).await?;
            UpOutcome::Started
        }
        action @ (Action::Create | Action::Recreate(_)) => {
            // Check everything the new container needs before touching the old one.
            if let Some(s3) = s3 {
                s3.check_bucket().await?;
            }
            ensure_image(engine, config, progress).await?;
            if existing.is_some() {
                engine.remove_container(&config.container).await?;
            }
            create_and_start(engine, config, desired, credentials).await?;
            match action {
                Action::Recreate(reason) => UpOutcome::Recreated { reason: reason.to_string() },
                _ => UpOutcome::Created,
            }
        }
    };
    if let Err(reason) = wait_ready(engine, &api, &config.container).await {
        if outcome != UpOutcome::Unchanged {
            // Keep the logs for the error, then leave no broken container behind.
            let logs = last_log_lines(engine, &config.container).await;
            engine.remove_container(&config.container).await?;
            return Err(Error::RegistryNotReady {
                container: config.container.clone(),
                url: config.local_url(),
                reason: format!("{reason}{logs}"),
            }
            .into());
        }
        return Err(
            Error::RegistryNotReady { container: config.container.clone(), url: config.local_url(), reason }.into()
        );
    }
    // Answering is not enough: it must behave as devbox's config says.
    let failure = match verify::prove(&api, config, s3).await {
        verify::Verdict::Proven(_) => return Ok(outcome),
        verify::Verdict::Ignored(cause) => Error::RegistryIgnoredConfig {
            container: config.container.clone(),
            cause,
            fix: format!(
                "The image {} does not serve the config devbox names as its command ({}). Use an official \
                 registry image (registry:3.0.0 or registry:2.8.3) or one laid out like it.",
                config.image,
                line::CONFIG_PATH
            ),
        },
        verify::Verdict::Unproven(reason) => Error::RegistryNotReady {
            container: config.container.clone(),
            url: config.local_url(),
            reason: format!("it answers, but {reason}"),
        },
    };
    if matches!(outcome, UpOutcome::Created | UpOutcome::Recreated { .. }) {
        // What this run made and cannot vouch for goes again.
        engine.remove_container(&config.container).await?;
    }
    Err(failure.into())
}

/// Waits until the registry answers, and stops waiting as soon as its container has stopped.
pub async fn wait_ready(engine: &Engine, api: &api::RegistryApi, container: &str) -> Result<(), String> {
    let deadline = std::time::Instant::now() + READY_TIMEOUT;
    loop {
        let Err(reason) = api.ping().await else { return Ok(()) };
        if std::time::Instant::now() >= deadline {
            return Err(format!("{reason} (waited {}s)", READY_TIMEOUT.as_secs()));
        }
        if let Ok(Some(info)) = engine.container(container).await
            && !info.is_running()
        {
            return Err(format!("the container stopped ({})", info.state));
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

async fn ensure_image(engine: &Engine, config: &RegistryConfig, progress: &dyn Progress) -> anyhow::Result<()> {
    if engine.has_image(&config.image).await? {
        return Ok(());
    }
    if config.pull == crate::config::PullPolicy::Never {
        return Err(Error::ImageNotPresent { image: config.image.clone() }.into());
    }
    progress.start(&config.image);
    let pulled = engine.pull_image(&config.image, &config.image, progress).await;
    progress.finish(&config.image, pulled.as_ref().map(|()| "pulled").map_err(String::as_str));
    pulled.map_err(|reason| Error::ImagePull { image: config.image.clone(), reason }.into())
}

async fn create_and_start(
    engine: &Engine,
    config: &RegistryConfig,
    desired: &Desired,
    credentials: Option<&AwsCredentials>,
) -> anyhow::Result<()> {
    let spec = container_spec(config, desired, credentials);
    engine.create_container(&spec).await?;
    let started = async {
        engine.copy_file_into(&config.container, line::CONFIG_PATH, desired.config_yaml.as_bytes()).await?;
        engine.start_container(&config.container, Some(config.port)).await
    }
    .await;
    if started.is_err() {
        // A container that never ran is no use to anyone: take it away before reporting.
        let _ = engine.remove_container(&config.container).await;
    }
    started
}

async fn last_log_lines(engine: &Engine, container: &str) -> String {
    use futures_util::StreamExt;
    let lines: Vec<String> =
        engine.logs(container, "5", false).filter_map(|line| async move { line.ok() }).collect().await;
    if lines.is_empty() { String::new() } else { format!("; its last log lines:\n{}", lines.concat().trim_end()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BucketName, PullPolicy, S3Config, StorageChoice};

    fn registry_config(bucket: Option<&str>, endpoint: &str) -> RegistryConfig {
        RegistryConfig {
            image: "registry:2.8.3".into(),
            pull: PullPolicy::Missing,
            container: "devbox-registry".into(),
            port: 5000,
            storage: StorageChoice::Auto,
            readonly: true,
            s3: S3Config {
                bucket: bucket.map(|b| BucketName::try_from(b.to_string()).expect("valid bucket")),
                region: "us-east-1".into(),
                root_directory: "/registry".into(),
                endpoint: endpoint.into(),
                path_style: !endpoint.is_empty(),
                profile: "devbox".into(),
            },
        }
    }

    fn layout(line: Line) -> Layout {
        let cmd = match line {
            Line::V2 => "/etc/docker/registry/config.yml",
            Line::V3 => "/etc/distribution/config.yml",
        };
        Layout::of_image("registry", &["/entrypoint.sh".to_string()], &[cmd.to_string()]).expect("a known layout")
    }

    #[test]
    fn s3_config_renders_read_only_with_redirects_off() {
        let config = registry_config(Some("acme-docker-registry"), "");
        insta::assert_snapshot!("registry_2_8_s3_aws", render_config(&config, Line::V2).expect("render"));
        insta::assert_snapshot!("registry_3_s3_aws", render_config(&config, Line::V3).expect("render"));
    }

    #[test]
    fn a_localhost_endpoint_is_reached_through_the_host_gateway() {
        let config = registry_config(Some("acme-docker-registry"), "http://127.0.0.1:9000");
        let v2 = render_config(&config, Line::V2).expect("render");
        let v3 = render_config(&config, Line::V3).expect("render");
        // 2.8 always addresses the bucket by path behind an endpoint and has no such key; 3 must be told.
        assert!(!v2.contains("forcepathstyle"));
        assert!(v3.contains("forcepathstyle: true"));
        insta::assert_snapshot!("registry_2_8_s3_local_endpoint", v2);
        insta::assert_snapshot!("registry_3_s3_local_endpoint", v3);
    }

    #[test]
    fn filesystem_config_is_writable_and_names_only_one_driver() {
        for (line, name) in [(Line::V2, "registry_2_8_filesystem"), (Line::V3, "registry_3_filesystem")] {
            let yaml = render_config(&registry_config(None, ""), line).expect("render");
            assert!(!yaml.contains("s3:"));
            // Neither line gets a debug listener or deletes, whatever the image's own default.
            assert!(!yaml.contains("debug:") && yaml.contains("delete:\n    enabled: false"), "{yaml}");
            insta::assert_snapshot!(name, yaml);
        }
    }

    #[test]
    fn the_line_shapes_the_container() {
        let desired = Desired::from_config(&registry_config(None, ""), layout(Line::V3)).expect("desired");
        let spec = container_spec(&registry_config(None, ""), &desired, None);
        assert_eq!(spec.cmd, vec![line::CONFIG_PATH.to_string()]);
        assert!(spec.env.contains(&("OTEL_TRACES_EXPORTER".to_string(), "none".to_string())));
    }

    #[test]
    fn container_endpoint_rewrites_only_loopback_hosts() {
        assert_eq!(container_endpoint("http://localhost:9000"), "http://host.docker.internal:9000");
        assert_eq!(container_endpoint("http://127.0.0.1:9000/"), "http://host.docker.internal:9000/");
        assert_eq!(container_endpoint("https://[::1]"), "https://host.docker.internal");
        assert_eq!(container_endpoint("http://127.0.0.10:9000"), "http://127.0.0.10:9000");
        assert_eq!(container_endpoint("https://minio.internal:9000"), "https://minio.internal:9000");
        assert_eq!(container_endpoint(""), "");
    }

    #[test]
    fn the_hash_changes_with_the_config_but_not_otherwise() {
        let config = registry_config(Some("acme-docker-registry"), "");
        let a = Desired::from_config(&config, layout(Line::V2)).expect("desired");
        let b = Desired::from_config(&config, layout(Line::V2)).expect("desired");
        let mut moved = registry_config(Some("acme-docker-registry"), "");
        moved.port = 5001;
        let c = Desired::from_config(&moved, layout(Line::V2)).expect("desired");
        // The same tag, another line's image: another container.
        let d = Desired::from_config(&config, layout(Line::V3)).expect("desired");
        assert_eq!(a.hash, b.hash);
        assert_ne!(a.hash, c.hash);
        assert_ne!(a.hash, d.hash);
    }

    fn running(hash: &str, state: &str) -> ContainerInfo {
        ContainerInfo::for_tests(
            state,
            HashMap::from([
                (LABEL_MANAGED.to_string(), "true".to_string()),
                (LABEL_CONFIG_HASH.to_string(), hash.to_string()),
            ]),
            vec![],
        )
    }

    #[test]
    fn decide_converges() {
        let desired = Desired::from_config(&registry_config(None, ""), layout(Line::V2)).expect("desired");
        assert_eq!(decide(None, &desired, None), Action::Create);
        assert_eq!(decide(Some(&running(&desired.hash, "running")), &desired, None), Action::Nothing);
        assert_eq!(decide(Some(&running(&desired.hash, "exited")), &desired, None), Action::Start);
        assert_eq!(
            decide(Some(&running("old", "running")), &desired, None),
            Action::Recreate("the configuration changed")
        );
        let foreign = ContainerInfo::for_tests("running", HashMap::new(), vec![]);
        assert_eq!(decide(Some(&foreign), &desired, None), Action::Refuse);
    }
}
