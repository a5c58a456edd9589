//! Each doctor check: measure one thing, judge it, say what to do. Thin on purpose; the judging
//! thresholds are small pure functions with unit tests.

use std::time::Duration;

use super::{CheckId, Finding, Remedy};
use crate::aws::Aws;
use crate::config::{Config, LoadedConfig, Storage};
use crate::docker_config::{self, Stored};
use crate::engine::{Engine, EngineInfo};
use crate::env::Environment;
use crate::images::{self, BaseImage, short};
use crate::registry::api::{Manifest, RegistryApi};
use crate::registry::{self, Desired};

pub fn config(loaded: &Result<LoadedConfig, anyhow::Error>) -> Finding {
    match loaded {
        Ok(loaded) => Finding::ok(CheckId::Config, loaded.source.to_string())
            .detail("path", loaded.source.path().display().to_string()),
        Err(err) => Finding::fail(CheckId::Config, format!("{err:#}"))
            .hint("Fix that key in the file; `devbox config path` shows which file is in use."),
    }
}

pub async fn engine(env: &Environment) -> (Finding, Option<(Engine, EngineInfo)>) {
    let engine = match Engine::connect(env).await {
        Ok(engine) => engine,
        Err(err) => {
            let hint = err.hint().unwrap_or_default();
            return (Finding::fail(CheckId::Engine, err.to_string()).hint(hint), None);
        }
    };
    match engine.info().await {
        Ok(info) => {
            let finding = Finding::ok(
                CheckId::Engine,
                format!("Docker {} on {}, API {}", info.server_version, info.operating_system, info.api_version),
            )
            .detail("endpoint", engine.endpoint())
            .detail("kernel", info.kernel_version.clone());
            (finding, Some((engine, info)))
        }
        Err(err) => (
            Finding::fail(CheckId::Engine, format!("{err:#}"))
                .hint("The engine answers but not fully; restart Docker.")
                .detail("endpoint", engine.endpoint()),
            None,
        ),
    }
}

/// Used space of the engine's data disk: warn above 80 %, fail above 90 %.
pub fn disk_verdict(used_percent: f64) -> super::Status {
    match used_percent {
        p if p > 90.0 => super::Status::Fail,
        p if p > 80.0 => super::Status::Warn,
        _ => super::Status::Ok,
    }
}

pub async fn disk(engine: &Engine, info: &EngineInfo) -> Finding {
    let root = &info.docker_root_dir;
    // The data directory is only visible here when the engine runs on this host.
    let local = engine.endpoint().starts_with("unix://") && !root.is_empty() && std::path::Path::new(root).is_dir();
    let usage = if local { fs4::statvfs(root).ok() } else { None };
    let Some(stats) = usage.filter(|s| s.total_space() > 0) else {
        return Finding::ok(
            CheckId::Disk,
            format!("{root} is inside the engine's VM; its free space is not visible here"),
        )
        .detail("docker_root_dir", root.clone());
    };
    let total = stats.total_space();
    let free = stats.available_space();
    let used = 100.0 * (total - free.min(total)) as f64 / total as f64;
    let summary = format!(
        "{used:.0}% used at {root} ({} free of {})",
        crate::config::ByteSize(free),
        crate::config::ByteSize(total)
    );
    let finding = Finding::new(CheckId::Disk, disk_verdict(used), summary)
        .detail("docker_root_dir", root.clone())
        .detail("free_bytes", free.to_string())
        .detail("total_bytes", total.to_string());
    match finding.status {
        super::Status::Ok => finding,
        _ => finding
            .hint("A full Docker disk breaks builds and pulls. Remove stopped containers and dangling images.")
            .fix("docker container prune -f && docker image prune -f"),
    }
}

pub async fn registry_container(engine: &Engine, config: &Config) -> Finding {
    let registry = &config.registry;
    let id = CheckId::RegistryContainer;
    let container = match engine.container(&registry.container).await {
        Ok(Some(container)) => container,
        Ok(None) => {
            return port_held(registry.port).unwrap_or_else(|| {
                Finding::fail(id, format!("{} does not exist", registry.container))
                    .hint("The local registry serves the base images.")
                    .remedy(Remedy::RegistryUp)
            });
        }
        Err(err) => return Finding::fail(id, format!("{err:#}")),
    };
    if container.label(registry::LABEL_MANAGED) != Some("true") {
        return Finding::fail(
            id,
            format!("a container named {} exists, but devbox did not make it", registry.container),
        )
        .hint(format!("Remove it (docker rm -f {}) or set registry.container in devbox.toml.", registry.container));
    }
    if !container.is_running() {
        return port_held(registry.port).unwrap_or_else(|| {
            Finding::fail(id, format!("{} is {}", registry.container, container.state))
                .hint("Start it again.")
                .remedy(Remedy::RegistryUp)
        });
    }
    if let Some(open) = container.published.iter().find(|p| !p.starts_with("127.0.0.1:")) {
        return Finding::fail(id, format!("{} is published on {open}, not only on 127.0.0.1", registry.container))
            .hint("Anyone on the network could reach it. Recreate it.")
            .fix("devbox registry down && devbox registry up");
    }
    let storage = container.label(registry::LABEL_STORAGE).unwrap_or("unknown").to_string();
    let readonly = container.label(registry::LABEL_READONLY) == Some("true");
    if storage == "s3" && !readonly {
        return Finding::fail(id, format!("{} is writable on S3 storage", registry.container))
            .hint("Only CI may push. Recreate it read-only.")
            .fix("devbox registry down && devbox registry up");
    }
    let finding = Finding::ok(
        id,
        format!(
            "{} running on {}, {storage}{}",
            registry.container,
            container.published.join(", "),
            if readonly { ", read-only" } else { "" }
        ),
    )
    .detail("image", container.image.clone())
    .detail("id", container.id.chars().take(12).collect::<String>());
    match Desired::from_config(registry) {
        Ok(desired) if container.label(registry::LABEL_CONFIG_HASH) != Some(desired.hash.as_str()) => {
            Finding { status: super::Status::Warn, ..finding }
                .hint("It was made from an older devbox.toml; recreate it to apply the current one.")
                .remedy(Remedy::RegistryUp)
        }
        _ => finding,
    }
}

/// When the registry is not running, its port should be free; if another process holds it,
/// `registry up` cannot succeed, and that is the problem to name.
fn port_held(port: u16) -> Option<Finding> {
    std::net::TcpListener::bind(("127.0.0.1", port)).err().map(|_| {
        Finding::fail(CheckId::RegistryContainer, format!("port {port} on 127.0.0.1 is held by another process"))
            .hint(format!(
                "Stop it (`lsof -iTCP:{port} -sTCP:LISTEN` names it), or set registry.port in devbox.toml to a free port. On macOS, port 5000 is often the AirPlay Receiver."
            ))
    })
}

pub async fn registry_api(config: &Config) -> Finding {
    let id = CheckId::RegistryApi;
    let url = config.registry.local_url();
    let api = match RegistryApi::new(&url) {
        Ok(api) => api,
        Err(err) => return Finding::fail(id, format!("{err:#}")),
    };
    if let Err(reason) = api.ping().await {
        return Finding::fail(id, reason).hint("See what the registry says: devbox registry logs --no-follow");
    }
    // A read that reaches storage proves the bucket (or volume) works behind the registry.
    let repo = images::base_images(config, &[]).ok().and_then(|images| images.first().map(|i| i.repo.clone()));
    match api.read_through(repo.as_deref()).await {
        Ok(what) => Finding::ok(id, format!("{url}/v2/ answers; {what}")),
        Err(reason) => Finding::fail(id, format!("{url}/v2/ answers, but the registry cannot read its storage: {reason}"))
            .hint("Check the bucket and credentials (`devbox doctor --check aws-credentials`) and `devbox registry logs --no-follow`."),
    }
}

/// Credentials that expire within an hour deserve a warning; expired ones are a failure.
pub fn expiry_verdict(expiry: Option<jiff::Timestamp>, now: jiff::Timestamp) -> (super::Status, String) {
    let Some(expiry) = expiry else { return (super::Status::Ok, "long-lived".into()) };
    let left = expiry.duration_since(now);
    let minutes = left.as_secs() / 60;
    if left.is_negative() || left.is_zero() {
        (super::Status::Fail, format!("expired at {expiry}"))
    } else if left.as_secs() < 3600 {
        (super::Status::Warn, format!("expire in {minutes} min"))
    } else {
        (super::Status::Ok, format!("expire in {}h {}m", minutes / 60, minutes % 60))
    }
}

pub async fn aws_credentials(config: &Config) -> Finding {
    let id = CheckId::AwsCredentials;
    let s3 = &config.registry.s3;
    if config.registry.storage() != Storage::S3 {
        return Finding::ok(id, "not needed: the registry uses filesystem storage");
    }
    let aws = match Aws::connect(s3).await {
        Ok(aws) => aws,
        Err(err) => return Finding::fail(id, err.to_string()).hint(err.hint().unwrap_or_default()),
    };
    let (status, expiry) = expiry_verdict(aws.credentials().expiry, jiff::Timestamp::now());
    let login = format!("aws sso login --profile {}", s3.profile);
    if status == super::Status::Fail {
        return Finding::fail(id, format!("credentials {expiry}")).hint("Log in again.").fix(login);
    }
    let (identity, reached) = tokio::join!(aws.identity(), aws.check_bucket());
    let bucket = s3.bucket.as_ref().map(|b| b.to_string()).unwrap_or_default();
    let latency = match reached {
        Ok(latency) => latency,
        Err(err) => return Finding::fail(id, err.to_string()).hint(err.hint().unwrap_or_default()),
    };
    let account = identity.as_ref().map(|i| i.account.clone()).unwrap_or_else(|_| "unknown".into());
    let finding = Finding::new(
        id,
        status,
        format!("account {account}, bucket {bucket} reachable ({} ms), credentials {expiry}", latency.as_millis()),
    )
    .detail("endpoint", aws.endpoint())
    .detail("bucket_latency_ms", latency.as_millis().to_string());
    let finding = match identity {
        Ok(identity) => finding.detail("identity", identity.arn),
        Err(err) => finding.detail("identity", err.to_string()),
    };
    match status {
        super::Status::Warn => finding.hint("Log in again before they expire.").fix(login),
        _ => finding,
    }
}

/// The registry's side of the base-images check: each image's manifest digest. It needs no
/// engine, so it runs while the engine connects.
pub async fn registry_digests(config: &Config) -> Result<Vec<(BaseImage, Manifest)>, Finding> {
    let id = CheckId::BaseImages;
    let images = images::base_images(config, &[])
        .map_err(|reason| Finding::fail(id, reason).hint("Fix images.base in devbox.toml."))?;
    let api = RegistryApi::new(&config.registry.local_url()).map_err(|err| Finding::fail(id, format!("{err:#}")))?;
    let digests =
        futures_util::future::join_all(images.iter().map(|image| api.manifest(&image.repo, &image.tag))).await;
    images
        .into_iter()
        .zip(digests)
        .map(|(image, digest)| digest.map(|d| (image, d)).map_err(|reason| Finding::fail(id, reason)))
        .collect()
}

/// Compares each base image on the engine with the registry's digest (from `registry_digests`).
pub async fn base_images(engine: &Engine, remote: Result<Vec<(BaseImage, Manifest)>, Finding>) -> Finding {
    let id = CheckId::BaseImages;
    let remote = match remote {
        Ok(remote) if remote.is_empty() => return Finding::ok(id, "none configured (images.base is empty)"),
        Ok(remote) => remote,
        Err(finding) => return finding,
    };
    let states = futures_util::future::join_all(remote.iter().map(|(image, manifest)| async move {
        let Manifest::Found(remote) = manifest else { return Ok(ImageState::Absent) };
        let local = engine.image(&image.local).await.map_err(|e| format!("{e:#}"))?;
        Ok::<_, String>(match local.as_ref().and_then(|i| i.digest_in(image.local_repo())) {
            None => ImageState::Missing,
            Some(digest) if digest == remote => ImageState::Current,
            Some(digest) => ImageState::Stale(format!("{}: {} → {}", image.name, short(digest), short(remote))),
        })
    }))
    .await;
    let images: Vec<&BaseImage> = remote.iter().map(|(image, _)| image).collect();
    let (mut current, mut stale, mut missing, mut absent) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut details = Vec::new();
    for (image, state) in images.iter().zip(states) {
        match state {
            Err(reason) => return Finding::fail(id, reason),
            Ok(ImageState::Absent) => absent.push(image.name.clone()),
            Ok(ImageState::Missing) => missing.push(image.name.clone()),
            Ok(ImageState::Current) => current.push(image.name.clone()),
            Ok(ImageState::Stale(detail)) => {
                details.push(detail);
                stale.push(image.name.clone());
            }
        }
    }
    let mut finding = if !absent.is_empty() {
        Finding::fail(id, format!("not in the registry: {}", absent.join(", ")))
            .hint("CI has not published them, or images.base names them wrongly. Ask the platform team.")
    } else if !stale.is_empty() || !missing.is_empty() {
        let mut parts = Vec::new();
        if !stale.is_empty() {
            parts.push(format!("stale: {}", stale.join(", ")));
        }
        if !missing.is_empty() {
            parts.push(format!("not pulled: {}", missing.join(", ")));
        }
        Finding::warn(id, format!("{} of {} current; {}", current.len(), images.len(), parts.join("; ")))
            .hint("Pull the current base images.")
            .remedy(Remedy::Pull)
    } else {
        Finding::ok(id, format!("all {} current", images.len()))
    };
    if !details.is_empty() {
        finding = finding.detail("stale", details.join("; "));
    }
    finding
}

enum ImageState {
    Current,
    Stale(String),
    Missing,
    Absent,
}

pub async fn push_credentials(env: &Environment, config: &Config) -> Finding {
    let id = CheckId::PushCredentials;
    let production = &config.security.production_registries;
    if production.is_empty() {
        return Finding::ok(id, "no production registries configured (security.production_registries)");
    }
    let Some(path) = docker_config::path(env) else {
        return Finding::ok(id, "no docker config (HOME unset)");
    };
    let Some(docker) = docker_config::read(&path) else {
        return Finding::ok(id, format!("none stored ({} absent or unreadable)", path.display()));
    };
    let (mut stored, store) = docker_config::stored_credentials(&docker);
    let mut unchecked = None;
    if let Some(store) = store {
        match docker_config::store_hosts(&store, Duration::from_secs(3)).await {
            Some(hosts) => stored.extend(hosts.into_iter().map(|h| (h, Stored::Store { store: store.clone() }))),
            None => unchecked = Some(store),
        }
    }
    let wanted: Vec<String> = production.iter().map(|h| docker_config::normalize_host(h)).collect();
    let offending: Vec<&(String, Stored)> = stored.iter().filter(|(host, _)| wanted.contains(host)).collect();
    if let Some((host, how)) = offending.first() {
        let place = match how {
            Stored::InFile => format!("in {}", path.display()),
            Stored::Helper { helper } => format!("through the credential helper {helper}"),
            Stored::Store { store } => format!("in the credential store {store}"),
        };
        let hosts: Vec<&str> = offending.iter().map(|(h, _)| h.as_str()).collect();
        return Finding::fail(id, format!("push credentials for {} are stored {place}", hosts.join(", ")))
            .hint("Only CI pushes to production. Remove them from this machine.")
            .fix(format!("docker logout {host}"));
    }
    let summary = format!("none for the {} production registries", production.len());
    match unchecked {
        Some(store) => {
            Finding::ok(id, format!("{summary} in {} (credential store {store} not readable)", path.display()))
        }
        None => Finding::ok(id, summary),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Status;

    #[test]
    fn disk_thresholds() {
        assert_eq!(disk_verdict(50.0), Status::Ok);
        assert_eq!(disk_verdict(80.0), Status::Ok);
        assert_eq!(disk_verdict(80.5), Status::Warn);
        assert_eq!(disk_verdict(90.5), Status::Fail);
    }

    #[test]
    fn expiry_thresholds() {
        let now: jiff::Timestamp = "2026-11-26T12:00:00Z".parse().expect("timestamp");
        let at = |s: &str| Some(s.parse::<jiff::Timestamp>().expect("timestamp"));
        assert_eq!(expiry_verdict(None, now), (Status::Ok, "long-lived".into()));
        assert_eq!(expiry_verdict(at("2026-11-26T17:30:00Z"), now), (Status::Ok, "expire in 5h 30m".into()));
        assert_eq!(expiry_verdict(at("2026-11-26T12:20:00Z"), now), (Status::Warn, "expire in 20 min".into()));
        assert_eq!(expiry_verdict(at("2026-11-26T11:00:00Z"), now).0, Status::Fail);
    }
}
