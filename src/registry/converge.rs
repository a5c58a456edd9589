//! The thin steps that make devbox's registry container what the config asks for (`registry up`,
//! `init`, `doctor --fix`) and take it away again (`registry down`, `uninstall`). What it should
//! be, and what to do about it, are decided in `mod.rs`.

use std::time::Duration;

use super::api::{ApiError, RegistryApi};
use super::cause::{self, StorageCause};
use super::proof::{self, Proofs};
use super::{Action, Desired, LABEL_MANAGED, container_spec, decide, line, verify};
use crate::aws::{Aws, AwsCredentials, ContainerCredentials};
use crate::config::{RegistryConfig, Storage};
use crate::engine::{ContainerInfo, Engine, EngineError};
use crate::error::Error;
use crate::progress::Progress;

const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a container name taken by an unfinished request is given to show its container.
const NAME_GRACE: Duration = Duration::from_secs(10);
/// How long the registry's logs are given to show the cause of an error it has just answered.
const LOG_GRACE: Duration = Duration::from_secs(2);

/// What `up` did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UpOutcome {
    Created,
    Recreated { reason: String },
    Started,
    Unchanged,
}

/// What `converge` did, and the registry it left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Converged {
    pub outcome: UpOutcome,
    pub container: String,
    pub url: String,
    /// Where its images live: `s3://BUCKET/ROOT` or `volume NAME`.
    pub storage: String,
    pub readonly: bool,
}

impl Converged {
    /// One line for people: `registry devbox-registry at http://127.0.0.1:5000 created (volume …, writable)`.
    pub fn describe(&self) -> String {
        let what = format!("registry {} at {}", self.container, self.url);
        let (storage, mode) = (&self.storage, if self.readonly { "read-only" } else { "writable" });
        match &self.outcome {
            UpOutcome::Unchanged => format!("{what} is already up ({storage}, {mode})"),
            UpOutcome::Started => format!("{what} started ({storage}, {mode})"),
            UpOutcome::Created => format!("{what} created ({storage}, {mode})"),
            UpOutcome::Recreated { reason } => format!("{what} recreated: {reason} ({storage}, {mode})"),
        }
    }
}

/// The registry as the config asks for it on this engine, whose copy of `registry.image` tells the
/// line; `None` when the engine does not have the image (nothing to compare with, then).
pub async fn desired(engine: &Engine, config: &RegistryConfig) -> anyhow::Result<Option<Desired>> {
    match line::detect(engine, &config.image).await? {
        Some(layout) => {
            let network = super::network::for_container(&crate::http::network(), &config.s3.endpoint);
            Ok(Some(Desired::from_config(config, layout)?.with_network(network)))
        }
        None => Ok(None),
    }
}

/// The same for `registry up`, which pulls the image first when the config allows it.
async fn desired_for_up(engine: &Engine, config: &RegistryConfig, progress: &dyn Progress) -> anyhow::Result<Desired> {
    ensure_image(engine, config, progress).await?;
    desired(engine, config).await?.ok_or_else(|| Error::ImageNotPresent { image: config.image.clone() }.into())
}

/// The AWS access the registry's storage needs: `None` for filesystem storage.
pub async fn connect_s3(config: &RegistryConfig) -> anyhow::Result<Option<Aws>> {
    Ok(match config.storage() {
        Storage::S3 => Some(Aws::connect(&config.s3).await?),
        Storage::Filesystem => None,
    })
}

/// Brings the registry container to the config, with an engine and AWS the caller already has
/// (`init` connected to both in its preflight). Reports nothing but the registry image's pull,
/// through `progress`.
pub(super) async fn converge(
    engine: &Engine,
    config: &RegistryConfig,
    s3: Option<&Aws>,
    proofs: &Proofs,
    progress: &dyn Progress,
) -> anyhow::Result<Converged> {
    let desired = desired_for_up(engine, config, progress).await?;
    let existing = engine.container(&config.container).await?;
    let outcome = match up(engine, config, &desired, existing.as_ref(), s3, proofs).await {
        // A run killed while the engine was making its container: the engine carried out that
        // request after the run had died. What is there now is looked at, and decided on, once more.
        Err(err) if err.downcast_ref::<NameTaken>().is_some() => {
            let existing = appeared(engine, &config.container).await?;
            up(engine, config, &desired, existing.as_ref(), s3, proofs).await?
        }
        other => other?,
    };
    let storage = match (&desired.storage, &config.s3.bucket) {
        (Storage::S3, Some(bucket)) => format!("s3://{bucket}{}", config.s3.root_directory),
        _ => format!("volume {}", config.volume()),
    };
    Ok(Converged {
        outcome,
        container: config.container.clone(),
        url: config.local_url(),
        storage,
        readonly: desired.readonly,
    })
}

/// The container that took the name `container` while devbox was making its own: the engine
/// reserves the name before the container can be inspected, so it is waited for, briefly.
async fn appeared(engine: &Engine, container: &str) -> anyhow::Result<Option<ContainerInfo>> {
    let deadline = std::time::Instant::now() + NAME_GRACE;
    loop {
        let found = engine.container(container).await?;
        if found.is_some() || std::time::Instant::now() >= deadline {
            return Ok(found);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What `converge` would do now, changing nothing: what `init --dry-run` shows. `None` when the
/// engine does not have the image yet, so the line (and with it the container) is unknown.
pub async fn pending(
    engine: &Engine,
    config: &RegistryConfig,
    credentials: Option<&AwsCredentials>,
) -> anyhow::Result<Option<Action>> {
    let Some(desired) = desired(engine, config).await? else { return Ok(None) };
    let existing = engine.container(&config.container).await?;
    Ok(Some(decide(existing.as_ref(), &desired, credentials, jiff::Timestamp::now())))
}

/// Removes devbox's registry container, by the ID it was found under; `false` when there is
/// none. A container of that name that devbox did not make is refused, never removed. Its volume
/// stays.
pub(super) async fn remove(engine: &Engine, config: &RegistryConfig) -> anyhow::Result<bool> {
    match engine.container(&config.container).await? {
        None => Ok(false),
        Some(existing) if existing.label(LABEL_MANAGED) != Some("true") => {
            Err(Error::ForeignContainer { container: config.container.clone() }.into())
        }
        Some(existing) => Ok(engine.remove_container(&existing.id).await?),
    }
}

/// Brings the container to `desired`, and waits until it answers. Whatever this run created is
/// removed again, by its ID, if it cannot be made ready: nothing is left half-made, and nothing
/// that another run made is taken for this run's.
///
/// A container that needed no change but whose key S3 refuses (revoked on the server, or cut short
/// while its lease still looks good) is recreated once with the fresh credentials: the lease labels
/// are devbox's record, S3's refusal is the truth.
async fn up(
    engine: &Engine,
    config: &RegistryConfig,
    desired: &Desired,
    existing: Option<&ContainerInfo>,
    s3: Option<&Aws>,
    proofs: &Proofs,
) -> anyhow::Result<UpOutcome> {
    let api = RegistryApi::new(&config.local_url())?;
    let credentials = s3.map(Aws::credentials);
    // The container this run acted on, by ID: what it removes again when that cannot be made ready.
    let (outcome, acted) = match decide(existing, desired, credentials, jiff::Timestamp::now()) {
        Action::Refuse => return Err(Error::ForeignContainer { container: config.container.clone() }.into()),
        Action::Nothing => (UpOutcome::Unchanged, None),
        Action::Start => {
            engine.start_container(&config.container, Some(config.port)).await?;
            (UpOutcome::Started, existing.map(|c| c.id.clone()))
        }
        action @ (Action::Create | Action::Recreate(_)) => {
            let made = replace(engine, config, desired, existing, s3).await?;
            let outcome = match action {
                Action::Recreate(reason) => UpOutcome::Recreated { reason: reason.to_string() },
                _ => UpOutcome::Created,
            };
            (outcome, Some(made))
        }
    };
    let failure = match settle(engine, config, &api, s3, proofs, &outcome, acted.as_deref()).await {
        Ok(()) => return Ok(outcome),
        Err(failure) => failure,
    };
    if outcome == UpOutcome::Unchanged
        && s3.is_some()
        && let Some(cause) = storage_cause(engine, &config.container, failure.answer.as_ref()).await
    {
        match cause {
            StorageCause::Credentials { code } => {
                let made = replace(engine, config, desired, existing, s3).await?;
                let outcome = UpOutcome::Recreated { reason: format!("S3 refused its AWS credentials ({code})") };
                return match settle(engine, config, &api, s3, proofs, &outcome, Some(&made)).await {
                    Ok(()) => Ok(outcome),
                    Err(failure) => Err(failure.error.into()),
                };
            }
            cause @ StorageCause::Clock { .. } => {
                return Err(storage_error(&config.container, &cause, "The registry was left as it was.").into());
            }
            StorageCause::NoSuchBucket | StorageCause::Unreachable { .. } => {}
        }
    }
    Err(failure.error.into())
}

/// Takes away the old container (when there is one, by its ID) and makes the new one, after
/// checking what the new one needs: a failed check leaves the old one as it was. Returns the new
/// container's ID.
async fn replace(
    engine: &Engine,
    config: &RegistryConfig,
    desired: &Desired,
    existing: Option<&ContainerInfo>,
    s3: Option<&Aws>,
) -> anyhow::Result<String> {
    if let Some(s3) = s3 {
        s3.check_bucket().await?;
    }
    // The container's own credentials: a session minted now when the host's key is long-lived.
    let credentials = match s3 {
        Some(s3) => Some(s3.container_credentials(config.s3.session, config.s3.session_duration).await?),
        None => None,
    };
    if let Some(existing) = existing {
        engine.remove_container(&existing.id).await?;
    }
    create_and_start(engine, config, desired, credentials.as_ref().map(ContainerCredentials::credentials)).await
}

/// The engine refused to make the container: a container of that name appeared after devbox
/// looked (made by a run that was killed while the engine was making it).
#[derive(Debug, thiserror::Error)]
#[error("creating container {container} failed: {message}")]
struct NameTaken {
    container: String,
    message: String,
}

/// Why a registry could not be made ready: the error for people, and the registry's error answer,
/// when there was one (for `storage_cause`).
struct Unsettled {
    error: Error,
    answer: Option<ApiError>,
}

/// Waits until the registry answers, then proves it behaves as configured. What this run made (or
/// started: `acted`, its ID) and cannot vouch for goes again. A container left as it was is given
/// no grace when it answers with a storage failure that its logs explain: waiting would not change
/// S3's mind.
async fn settle(
    engine: &Engine,
    config: &RegistryConfig,
    api: &RegistryApi,
    s3: Option<&Aws>,
    proofs: &Proofs,
    outcome: &UpOutcome,
    acted: Option<&str>,
) -> Result<(), Unsettled> {
    let not_ready = |reason: String| Error::RegistryNotReady {
        container: config.container.clone(),
        url: config.local_url(),
        reason,
    };
    if *outcome == UpOutcome::Unchanged
        && let Err(answer) = api.ping().await
        && answer.answered()
        && storage_cause(engine, &config.container, Some(&answer)).await.is_some()
    {
        return Err(Unsettled { error: not_ready(answer.to_string()), answer: Some(answer) });
    }
    if let Err(not) = wait_ready(engine, api, &config.container).await {
        let answer = not.answer().cloned();
        if let Some(id) = acted {
            // Keep the logs for the error, then leave no broken container behind.
            let logs = last_log_lines(engine, id).await;
            let _ = engine.remove_container(id).await;
            return Err(Unsettled { error: not_ready(format!("{not}{logs}")), answer });
        }
        return Err(Unsettled { error: not_ready(not.to_string()), answer });
    }
    // Answering is not enough: it must behave as devbox's config says (proven once per container).
    let container = engine.container(&config.container).await.ok().flatten();
    let (error, answer) = match proof::once(api, config, container.as_ref(), proof::S3::Connected(s3), proofs)
        .await
        .with_storage_read(api)
        .await
    {
        verify::Verdict::Proven(_) => return Ok(()),
        verify::Verdict::Ignored(cause) => (
            Error::RegistryIgnoredConfig {
                container: config.container.clone(),
                cause,
                fix: format!(
                    "The image {} does not serve the config devbox names as its command ({}). Use an official \
                     registry image (registry:3.0.0 or registry:2.8.3) or one laid out like it.",
                    config.image,
                    line::CONFIG_PATH
                ),
            },
            None,
        ),
        verify::Verdict::Unproven { reason, answer } => (not_ready(format!("it answers, but {reason}")), answer),
    };
    if matches!(outcome, UpOutcome::Created | UpOutcome::Recreated { .. })
        && let Some(id) = acted
    {
        // What this run made and cannot vouch for goes again.
        let _ = engine.remove_container(id).await;
    }
    Err(Unsettled { error, answer })
}

/// Why a registry did not become ready.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotReady {
    /// It kept giving this answer until the deadline.
    #[error("{answer} (waited {seconds}s)")]
    TimedOut { answer: ApiError, seconds: u64 },
    /// Its container stopped, in this state.
    #[error("the container stopped ({state})")]
    Stopped { state: String },
}

impl NotReady {
    /// The registry's last answer, when it gave one.
    pub fn answer(&self) -> Option<&ApiError> {
        match self {
            NotReady::TimedOut { answer, .. } => Some(answer),
            NotReady::Stopped { .. } => None,
        }
    }
}

/// Waits until the registry answers, and stops waiting as soon as its container has stopped.
pub async fn wait_ready(engine: &Engine, api: &RegistryApi, container: &str) -> Result<(), NotReady> {
    let deadline = std::time::Instant::now() + READY_TIMEOUT;
    loop {
        let Err(answer) = api.ping().await else { return Ok(()) };
        if std::time::Instant::now() >= deadline {
            return Err(NotReady::TimedOut { answer, seconds: READY_TIMEOUT.as_secs() });
        }
        if let Ok(Some(info)) = engine.container(container).await
            && !info.is_running()
        {
            return Err(NotReady::Stopped { state: info.state });
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
    let reason = pulled.err().map(|e| e.to_string());
    progress.finish(&config.image, reason.as_deref().map_or(Ok("pulled"), Err));
    match reason {
        None => Ok(()),
        Some(reason) => Err(Error::ImagePull { image: config.image.clone(), reason }.into()),
    }
}

/// Creates the container, hands it its config and starts it; returns its ID. A container that
/// never started is removed again, by that ID.
async fn create_and_start(
    engine: &Engine,
    config: &RegistryConfig,
    desired: &Desired,
    credentials: Option<&AwsCredentials>,
) -> anyhow::Result<String> {
    let spec = container_spec(config, desired, credentials);
    let id = match engine.create_container(&spec).await {
        Ok(id) => id,
        Err(EngineError::Refused { status: 409, message, .. }) => {
            return Err(NameTaken { container: config.container.clone(), message }.into());
        }
        Err(err) => return Err(err.into()),
    };
    let started = async {
        // Into the config's own volume: the root filesystem is read-only.
        let name = line::CONFIG_PATH.rsplit('/').next().unwrap_or(line::CONFIG_PATH);
        let dir = super::hardening::CONFIG_DIR;
        engine.copy_file_into_dir(&config.container, dir, name, desired.config_yaml.as_bytes()).await?;
        if let Some(bundle) = &desired.network.ca_bundle {
            engine.copy_file_into_dir(&config.container, dir, super::network::CA_FILE, bundle.as_bytes()).await?;
        }
        engine.start_container(&config.container, Some(config.port)).await
    }
    .await;
    if started.is_err() {
        // A container that never ran is no use to anyone: take it away before reporting.
        let _ = engine.remove_container(&id).await;
    }
    started?;
    Ok(id)
}

/// Why the registry cannot read its storage, from its error answer (S3's reason, when the body
/// named one), or else from its recent log lines: once its storage health check has failed, it
/// answers 503 with no detail, and only the log lines written before that name S3's reason.
pub async fn storage_cause(engine: &Engine, container: &str, answer: Option<&ApiError>) -> Option<StorageCause> {
    if let Some(cause) = answer.and_then(ApiError::storage_cause) {
        return Some(cause.clone());
    }
    // The registry logs a request's error after it has answered it, and the engine's log pipeline
    // adds its own delay: a line that is not there yet may be a moment later.
    let deadline = std::time::Instant::now() + LOG_GRACE;
    loop {
        use futures_util::StreamExt;
        let lines: Vec<String> =
            engine.logs(container, "200", false).filter_map(|line| async move { line.ok() }).collect().await;
        let cause = lines.iter().rev().find_map(|line| cause::diagnose(line));
        if cause.is_some() || std::time::Instant::now() >= deadline {
            return cause;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The error for a registry that cannot read its storage, with the command that fixes `cause`;
/// `then` is what follows it ("Then pull again.").
pub fn storage_error(container: &str, cause: &StorageCause, then: &str) -> Error {
    let fix = format!("{} {then}", cause.remedy().sentence());
    Error::RegistryStorage { container: container.to_string(), cause: cause.explain(), fix: fix.trim_end().to_string() }
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

    #[test]
    fn a_storage_error_says_the_cause_and_its_one_remedy_then_what_follows() {
        let error = storage_error(
            "devbox-registry",
            &StorageCause::Credentials { code: "ExpiredToken".into() },
            "Then pull again.",
        );
        assert!(error.to_string().contains("S3 refused the registry's AWS credentials (ExpiredToken)"), "{error}");
        assert_eq!(
            error.hint().as_deref(),
            Some("Renew the registry's credentials: `devbox registry up`. Then pull again.")
        );
        let error = storage_error("devbox-registry", &StorageCause::NoSuchBucket, "");
        assert_eq!(error.hint(), Some(StorageCause::NoSuchBucket.remedy().hint()));
    }

    #[test]
    fn not_ready_keeps_the_registrys_last_answer() {
        let answer = ApiError::NotARegistry { url: "http://127.0.0.1:5000/v2/".into(), status: 503 };
        let timed_out = NotReady::TimedOut { answer: answer.clone(), seconds: 30 };
        assert_eq!(timed_out.answer(), Some(&answer));
        assert!(timed_out.to_string().ends_with("but not as a Docker registry (waited 30s)"), "{timed_out}");
        assert_eq!(NotReady::Stopped { state: "exited".into() }.answer(), None);
    }
}
