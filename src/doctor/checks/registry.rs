//! The local registry: its container (devbox's own, running, on loopback only, read-only on S3, made
//! from the current devbox.toml) and its API (it answers, and can read its storage).

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use super::{ContainerUnseen, EngineFacts, Probe, RegistryContainer, registry_pin};
use crate::config::{ByteSize, RegistryConfig, SessionMode};
use crate::doctor::{CheckId, Finding, Remedy, Status};
use crate::engine::{ContainerInfo, Engine, Hardening};
use crate::paths::Paths;
use crate::registry;
use crate::registry::api::{ApiError, RegistryApi};
use crate::registry::cause::FixCommand;
use crate::registry::lease::{Lease, LeaseVerdict, human_until};
use crate::registry::pin::PinVerdict;
use crate::registry::proof::{self, Proofs};

pub fn container<'p>(probe: &'p Probe<'_>, facts: &'p EngineFacts) -> BoxFuture<'p, Finding> {
    async move {
        let inspected = probe.registry_container().await;
        judge_container(&measure_container(&facts.engine, &probe.config.registry, inspected).await)
    }
    .boxed()
}

/// What was found of the registry container.
#[derive(Debug, Clone)]
pub struct ContainerFound {
    pub name: String,
    pub port: u16,
    pub container: Result<Option<ContainerSeen>, ContainerUnseen>,
    /// Another process holds the registry's port. Looked at only when the registry is not running:
    /// then the port should be free, and `registry up` cannot succeed if it is not.
    pub port_held: bool,
    /// The configuration hash that the current devbox.toml gives, when it can be worked out.
    pub desired_hash: Option<String>,
    /// When it was looked at: the container's credentials are judged against it.
    pub now: jiff::Timestamp,
    /// How the current devbox.toml confines the container.
    pub hardening: Hardening,
    /// `registry.s3.session`, named when the registry holds a long-lived key.
    pub session: SessionMode,
    /// `registry.image`, and what its pin says of the image the container runs.
    pub image: String,
    pub pin: PinVerdict,
}

/// The registry container, in the terms the judge needs.
#[derive(Debug, Clone, Default)]
pub struct ContainerSeen {
    pub state: String,
    pub managed: bool,
    pub published: Vec<String>,
    pub storage: Option<String>,
    pub readonly: bool,
    pub config_hash: Option<String>,
    pub image: String,
    pub id: String,
    /// Its own AWS credentials, as devbox recorded them when it made the container.
    pub lease: Lease,
    /// Whether those credentials are a long-lived key (no session token).
    pub long_lived_key: bool,
    pub hardening: Hardening,
    /// Its health check's verdict, when it has one.
    pub health: Option<String>,
}

impl ContainerSeen {
    fn of(container: &ContainerInfo) -> ContainerSeen {
        ContainerSeen {
            state: container.state.clone(),
            managed: container.label(registry::LABEL_MANAGED) == Some("true"),
            published: container.published.clone(),
            storage: container.label(registry::LABEL_STORAGE).map(String::from),
            readonly: container.label(registry::LABEL_READONLY) == Some("true"),
            config_hash: container.label(registry::LABEL_CONFIG_HASH).map(String::from),
            image: container.image.clone(),
            id: container.id.clone(),
            lease: registry::lease_of(container),
            long_lived_key: registry::holds_long_lived_key(container),
            hardening: container.hardening.clone(),
            health: container.health.clone(),
        }
    }

    fn is_running(&self) -> bool {
        self.state == "running"
    }
}

/// What was found of the registry container, from its inspect (`inspected`, shared with the
/// other checks that read it).
pub async fn measure_container(
    engine: &Engine,
    registry: &RegistryConfig,
    inspected: RegistryContainer,
) -> ContainerFound {
    let digests = registry_pin::digests_of(engine, &inspected).await;
    let container = inspected.map(|found| found.as_deref().map(ContainerSeen::of));
    let stopped = matches!(&container, Ok(None)) || matches!(&container, Ok(Some(c)) if !c.is_running());
    ContainerFound {
        name: registry.container.clone(),
        port: registry.port,
        port_held: stopped && std::net::TcpListener::bind(("127.0.0.1", registry.port)).is_err(),
        container,
        desired_hash: registry::desired(engine, registry).await.ok().flatten().map(|desired| desired.hash),
        now: jiff::Timestamp::now(),
        hardening: registry::hardening(registry),
        session: registry.s3.session,
        image: registry.image.clone(),
        pin: registry::pin::judge(&registry.image, &digests),
    }
}

/// Pure.
pub fn judge_container(found: &ContainerFound) -> Finding {
    let id = CheckId::RegistryContainer;
    let name = &found.name;
    let container = match &found.container {
        Ok(Some(container)) => container,
        Ok(None) => {
            return port_held(found).unwrap_or_else(|| {
                Finding::fail(id, format!("{name} does not exist"))
                    .hint("The local registry serves the base images.")
                    .remedy(Remedy::RegistryUp)
            });
        }
        Err(unseen) => return Finding::fail(id, unseen.to_string()).hint(unseen.hint()),
    };
    if !container.managed {
        return Finding::fail(id, format!("a container named {name} exists, but devbox did not make it"))
            .hint(format!("Remove it (docker rm -f {name}) or set registry.container in devbox.toml."));
    }
    if !container.is_running() {
        return port_held(found).unwrap_or_else(|| {
            Finding::fail(id, format!("{name} is {}", container.state))
                .hint("Start it again.")
                .remedy(Remedy::RegistryUp)
        });
    }
    if let Some(open) = container.published.iter().find(|p| !p.starts_with("127.0.0.1:")) {
        return Finding::fail(id, format!("{name} is published on {open}, not only on 127.0.0.1"))
            .hint("Anyone on the network could reach it. Recreate it.")
            .fix("devbox registry down && devbox registry up");
    }
    let storage = container.storage.as_deref().unwrap_or("unknown");
    if storage == "s3" && !container.readonly {
        return Finding::fail(id, format!("{name} is writable on S3 storage"))
            .hint("Only CI may push. Recreate it read-only.")
            .fix("devbox registry down && devbox registry up");
    }
    let finding = Finding::ok(
        id,
        format!(
            "{name} running on {}, {storage}{}",
            container.published.join(", "),
            if container.readonly { ", read-only" } else { "" }
        ),
    )
    .detail("image", container.image.clone())
    .detail("id", container.id.chars().take(12).collect::<String>());
    if let Some(failed) = registry_pin::mismatch(&finding, &found.pin, name) {
        return failed;
    }
    // Its own credentials, not the host's: those are what S3 sees from the registry.
    let finding = match container.lease.verdict(found.now) {
        LeaseVerdict::Expired { expiry } => {
            return Finding::fail(id, format!("{name}'s AWS credentials expired at {expiry}: S3 refuses the registry"))
                .hint("Renew them: devbox recreates the registry with fresh credentials from your AWS profile.")
                .remedy(Remedy::RegistryUp);
        }
        LeaseVerdict::Renew { expiry } => {
            return Finding { status: Status::Warn, ..finding }
                .detail("credentials", format!("expire at {expiry}"))
                .hint(format!(
                    "Its AWS credentials expire in {}; the renewal job should have renewed them by now.",
                    human_until(found.now, expiry)
                ))
                .remedy(Remedy::RegistryUp);
        }
        LeaseVerdict::Fresh { expiry, renew_at } => finding
            .detail("credentials", format!("expire in {}, renewed from {renew_at}", human_until(found.now, expiry))),
        LeaseVerdict::LongLived => finding,
    };
    let (finding, missing) = hardening_details(finding, container, &found.hardening);
    let finding = finding.detail("long_lived_key", if container.long_lived_key { "yes" } else { "no" });
    match &found.desired_hash {
        Some(desired) if container.config_hash.as_ref() != Some(desired) => {
            return Finding { status: Status::Warn, ..finding }
                .hint("It was made from an older devbox.toml; recreate it to apply the current one.")
                .remedy(Remedy::RegistryUp);
        }
        _ => {}
    }
    if !missing.is_empty() {
        return Finding { status: Status::Warn, ..finding }
            .hint(format!(
                "It runs without {} (CIS Docker Benchmark, section 5); recreate it hardened.",
                missing.join(", ")
            ))
            .remedy(Remedy::RegistryUp);
    }
    if container.health.as_deref() == Some("unhealthy") {
        return Finding { status: Status::Warn, ..finding }.hint(format!(
            "Its health check fails: `docker inspect --format '{{{{json .State.Health}}}}' {name}` shows what it said."
        ));
    }
    if container.long_lived_key {
        let why = match found.session {
            SessionMode::Off => "registry.s3.session = \"off\" hands it the key itself. Set it to \"auto\" \
                 (session credentials from STS) and run `devbox registry up`."
                .to_string(),
            SessionMode::Auto | SessionMode::Required => "Its S3 endpoint gives no STS session credentials, so \
                 registry.s3.session = \"auto\" handed it the key itself. Use temporary credentials (SSO, \
                 assume-role) for the profile, or an endpoint with STS; registry.s3.session = \"required\" \
                 refuses instead."
                .to_string(),
        };
        return Finding { status: Status::Warn, ..finding }.hint(format!(
            "The registry holds a long-lived AWS key, which anything that can read the engine's API (docker inspect) \
             can read. {why}"
        ));
    }
    registry_pin::unpinned(finding, &found.pin, &found.image)
}

/// Each hardening setting as a detail, present (with its value) or "missing"; and the missing ones.
fn hardening_details(
    mut finding: Finding,
    container: &ContainerSeen,
    wanted: &Hardening,
) -> (Finding, Vec<&'static str>) {
    let held = &container.hardening;
    let mut missing = Vec::new();
    for (setting, present) in registry::hardening::compare(held, wanted) {
        let value = match setting {
            _ if !present => {
                missing.push(setting);
                "missing".to_string()
            }
            "memory" => held.memory.map(|m| ByteSize(m).to_string()).unwrap_or_default(),
            "cpu_shares" => held.cpu_shares.map(|v| v.to_string()).unwrap_or_default(),
            "pids_limit" => held.pids_limit.map(|v| v.to_string()).unwrap_or_default(),
            "health_check" => container.health.clone().unwrap_or_else(|| "present".into()),
            _ => "yes".to_string(),
        };
        finding = finding.detail(setting, value);
    }
    (finding, missing)
}

/// When another process holds the port, that is the problem to name.
fn port_held(found: &ContainerFound) -> Option<Finding> {
    let port = found.port;
    found.port_held.then(|| {
        Finding::fail(CheckId::RegistryContainer, format!("port {port} on 127.0.0.1 is held by another process"))
            .hint(format!(
                "Stop it (`lsof -iTCP:{port} -sTCP:LISTEN` names it), or set registry.port in devbox.toml to a free port. On macOS, port 5000 is often the AirPlay Receiver."
            ))
    })
}

pub fn api<'p>(probe: &'p Probe<'_>) -> BoxFuture<'p, Finding> {
    registry_api(probe).boxed()
}

async fn registry_api(probe: &Probe<'_>) -> Finding {
    let id = CheckId::RegistryApi;
    let url = probe.config.registry.local_url();
    let api = match RegistryApi::new(&url) {
        Ok(api) => api,
        Err(err) => return Finding::fail(id, format!("{err:#}")),
    };
    // A read that reaches storage proves the bucket (or volume) works behind the registry. The
    // base images' manifests are such reads, and are read anyway (the base-images check compares
    // them): they start with the ping. With no base image configured, the catalog is read.
    // With no base image configured, the catalog is the read: it starts with them too.
    let catalog = async { if probe.config.images.base.is_empty() { Some(api.read_through(None).await) } else { None } };
    let (pinged, digests, catalog) = tokio::join!(api.ping(), probe.digests(), catalog);
    if let Err(answer) = pinged {
        let finding = Finding::fail(id, answer.to_string());
        return explained(probe, Some(&answer), finding.clone())
            .await
            .unwrap_or_else(|| finding.hint("See what the registry says: devbox registry logs --no-follow"));
    }
    // Its behaviour, not devbox's labels, shows that it runs devbox's config: proven once per
    // container. What can change while it runs (S3 answering its credentials, at its clock's time)
    // the storage read below shows on every run.
    let proofs = match prove_once(probe).await {
        registry::verify::Verdict::Proven(shown) => shown.iter().map(|s| format!("; {s}")).collect::<String>(),
        registry::verify::Verdict::Ignored(cause) => {
            return Finding::fail(id, format!("the registry ignored devbox's config: {cause}"))
                .hint("Recreate it. If that does not help, registry.image names an image that does not read the config devbox names as its command.")
                .fix("devbox registry down && devbox registry up");
        }
        registry::verify::Verdict::Unproven { reason, answer } => {
            let finding = Finding::fail(id, format!("{url}/v2/ answers, but {reason}"));
            return explained(probe, answer.as_ref(), finding.clone())
                .await
                .unwrap_or_else(|| finding.hint("See what the registry says: devbox registry logs --no-follow"));
        }
    };
    let unreadable = |reason: &str| {
        Finding::fail(id, format!("{url}/v2/ answers, but the registry cannot read its storage: {reason}"))
    };
    let generic = "Check the bucket and credentials (`devbox doctor --check aws-credentials`) and `devbox registry logs --no-follow`.";
    // The base images' reads are HEAD requests: their answers have no body to name S3's reason, so
    // only the registry's logs can.
    let (failed, answer) = match digests {
        Ok(digests) if !digests.is_empty() => {
            return Finding::ok(
                id,
                format!("{url}/v2/ answers; read {} manifests from storage{proofs}", digests.len()),
            );
        }
        Err(failed) => (failed.summary, None),
        Ok(_) => {
            let read = match catalog {
                Some(read) => read,
                None => api.read_through(None).await,
            };
            match read {
                Ok(what) => return Finding::ok(id, format!("{url}/v2/ answers; {what}{proofs}")),
                Err(answer) => (answer.to_string(), Some(answer)),
            }
        }
    };
    explained(probe, answer.as_ref(), unreadable(&failed)).await.unwrap_or_else(|| unreadable(&failed).hint(generic))
}

/// The proofs that the registry runs devbox's config, by the one rule (`registry::proof::once`):
/// the record made for this container when there is one, else the proofs themselves, recorded when
/// they pass and no other run holds the lock. The read that shows the storage still answers is this
/// check's own (the base images' manifests, or the catalog).
async fn prove_once(probe: &Probe<'_>) -> registry::verify::Verdict {
    let config = &probe.config.registry;
    // Nothing to prove: no need to wait for the container's inspect.
    if proof::nothing_to_prove(config) {
        return registry::verify::Verdict::Proven(Vec::new());
    }
    let api = match RegistryApi::new(&config.local_url()) {
        Ok(api) => api,
        Err(err) => return registry::verify::Verdict::Unproven { reason: format!("{err:#}"), answer: None },
    };
    let proofs = match Paths::resolve(probe.env) {
        Ok(paths) => Proofs::reading(paths.state_dir()),
        Err(_) => Proofs::default(),
    };
    let container = probe.registry_container().await.ok().flatten();
    proof::once(&api, config, container.as_deref(), proof::S3::FromProfile, &proofs).await.verdict()
}

/// `finding` with the root cause the registry gives for a failed storage read, and its fix; `None`
/// when neither its error answer nor its logs name one.
async fn explained(probe: &Probe<'_>, answer: Option<&ApiError>, finding: Finding) -> Option<Finding> {
    let facts = probe.engine().await?;
    let cause = registry::storage_cause(&facts.engine, &probe.config.registry.container, answer).await?;
    let summary = format!("{}: {}", finding.summary, cause.explain());
    let remedy = cause.remedy();
    let finding = Finding { summary, ..finding }.hint(remedy.hint());
    Some(match remedy.command {
        Some(FixCommand::RegistryUp) => finding.remedy(Remedy::RegistryUp),
        Some(FixCommand::ClockSync) => finding.remedy(Remedy::ClockSync),
        None => finding,
    })
}

#[cfg(test)]
#[path = "registry_tests.rs"]
mod tests;
