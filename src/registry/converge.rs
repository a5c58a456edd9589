//! The thin steps that make devbox's registry container what the config asks for (`registry up`,
//! `init`, `doctor --fix`) and take it away again (`registry down`, `uninstall`). What it should
//! be, and what to do about it, are decided in `mod.rs`.

use std::time::Duration;

use super::api::RegistryApi;
use super::cause::{self, StorageCause};
use super::proof::{self, Proofs};
use super::{Action, Desired, LABEL_MANAGED, UpOutcome, container_spec, decide, line, verify};
use crate::aws::{Aws, AwsCredentials, ContainerCredentials};
use crate::config::{RegistryConfig, Storage};
use crate::engine::{ContainerInfo, Engine};
use crate::error::Error;
use crate::ui::Progress;

const READY_TIMEOUT: Duration = Duration::from_secs(30);

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
        Some(layout) => Ok(Some(Desired::from_config(config, layout)?)),
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
pub async fn converge(
    engine: &Engine,
    config: &RegistryConfig,
    s3: Option<&Aws>,
    proofs: &Proofs,
    progress: &dyn Progress,
) -> anyhow::Result<Converged> {
    let desired = desired_for_up(engine, config, progress).await?;
    let existing = engine.container(&config.container).await?;
    let outcome = up(engine, config, &desired, existing.as_ref(), s3, proofs).await?;
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

/// Removes devbox's registry container; `false` when there is none. A container of that name that
/// devbox did not make is refused, never removed. Its volume stays.
pub async fn remove(engine: &Engine, config: &RegistryConfig) -> anyhow::Result<bool> {
    match engine.container(&config.container).await? {
        None => Ok(false),
        Some(existing) if existing.label(LABEL_MANAGED) != Some("true") => {
            Err(Error::ForeignContainer { container: config.container.clone() }.into())
        }
        Some(_) => engine.remove_container(&config.container).await,
    }
}

/// Brings the container to `desired`, and waits until it answers. Whatever this run created is
/// removed again if it cannot be made ready: nothing is left half-made.
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
    let outcome = match decide(existing, desired, credentials, jiff::Timestamp::now()) {
        Action::Refuse => return Err(Error::ForeignContainer { container: config.container.clone() }.into()),
        Action::Nothing => UpOutcome::Unchanged,
        Action::Start => {
            engine.start_container(&config.container, Some(config.port)).await?;
            UpOutcome::Started
        }
        action @ (Action::Create | Action::Recreate(_)) => {
            replace(engine, config, desired, existing.is_some(), s3).await?;
            match action {
                Action::Recreate(reason) => UpOutcome::Recreated { reason: reason.to_string() },
                _ => UpOutcome::Created,
            }
        }
    };
    let failure = match settle(engine, config, &api, s3, proofs, &outcome).await {
        Ok(()) => return Ok(outcome),
        Err(failure) => failure,
    };
    if outcome == UpOutcome::Unchanged
        && s3.is_some()
        && let Some(cause) = storage_cause(engine, &config.container, &failure.said).await
    {
        match cause {
            StorageCause::Credentials { code } => {
                replace(engine, config, desired, true, s3).await?;
                let outcome = UpOutcome::Recreated { reason: format!("S3 refused its AWS credentials ({code})") };
                return match settle(engine, config, &api, s3, proofs, &outcome).await {
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

/// Takes away the old container (when there is one) and makes the new one, after checking what
/// the new one needs: a failed check leaves the old one as it was.
async fn replace(
    engine: &Engine,
    config: &RegistryConfig,
    desired: &Desired,
    existing: bool,
    s3: Option<&Aws>,
) -> anyhow::Result<()> {
    if let Some(s3) = s3 {
        s3.check_bucket().await?;
    }
    // The container's own credentials: a session minted now when the host's key is long-lived.
    let credentials = match s3 {
        Some(s3) => Some(s3.container_credentials(config.s3.session, config.s3.session_duration).await?),
        None => None,
    };
    if existing {
        engine.remove_container(&config.container).await?;
    }
    create_and_start(engine, config, desired, credentials.as_ref().map(ContainerCredentials::credentials)).await
}

/// Why a registry could not be made ready: the error for people, and what the registry said (for
/// `storage_cause`).
struct Unsettled {
    error: Error,
    said: String,
}

/// Waits until the registry answers, then proves it behaves as configured. What this run made and
/// cannot vouch for goes again. A container left as it was is given no grace when it answers with
/// a storage failure that its logs explain: waiting would not change S3's mind.
async fn settle(
    engine: &Engine,
    config: &RegistryConfig,
    api: &RegistryApi,
    s3: Option<&Aws>,
    proofs: &Proofs,
    outcome: &UpOutcome,
) -> Result<(), Unsettled> {
    let not_ready = |reason: String| Error::RegistryNotReady {
        container: config.container.clone(),
        url: config.local_url(),
        reason,
    };
    if *outcome == UpOutcome::Unchanged
        && let Err(said) = api.ping().await
        && answered(&said)
        && storage_cause(engine, &config.container, &said).await.is_some()
    {
        return Err(Unsettled { error: not_ready(said.clone()), said });
    }
    if let Err(reason) = wait_ready(engine, api, &config.container).await {
        if *outcome != UpOutcome::Unchanged {
            // Keep the logs for the error, then leave no broken container behind.
            let logs = last_log_lines(engine, &config.container).await;
            let _ = engine.remove_container(&config.container).await;
            return Err(Unsettled { error: not_ready(format!("{reason}{logs}")), said: reason });
        }
        return Err(Unsettled { error: not_ready(reason.clone()), said: reason });
    }
    // Answering is not enough: it must behave as devbox's config says (proven once per container).
    let (error, said) = match proof::prove_once(engine, api, config, s3, proofs).await {
        verify::Verdict::Proven(_) => return Ok(()),
        verify::Verdict::Ignored(cause) => (
            Error::RegistryIgnoredConfig {
                container: config.container.clone(),
                cause: cause.clone(),
                fix: format!(
                    "The image {} does not serve the config devbox names as its command ({}). Use an official \
                     registry image (registry:3.0.0 or registry:2.8.3) or one laid out like it.",
                    config.image,
                    line::CONFIG_PATH
                ),
            },
            cause,
        ),
        verify::Verdict::Unproven(reason) => (not_ready(format!("it answers, but {reason}")), reason),
    };
    if matches!(outcome, UpOutcome::Created | UpOutcome::Recreated { .. }) {
        // What this run made and cannot vouch for goes again.
        let _ = engine.remove_container(&config.container).await;
    }
    Err(Unsettled { error, said })
}

/// Waits until the registry answers, and stops waiting as soon as its container has stopped.
pub async fn wait_ready(engine: &Engine, api: &RegistryApi, container: &str) -> Result<(), String> {
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
        // Into the config's own volume: the root filesystem is read-only.
        let name = line::CONFIG_PATH.rsplit('/').next().unwrap_or(line::CONFIG_PATH);
        let dir = super::hardening::CONFIG_DIR;
        engine.copy_file_into_dir(&config.container, dir, name, desired.config_yaml.as_bytes()).await?;
        engine.start_container(&config.container, Some(config.port)).await
    }
    .await;
    if started.is_err() {
        // A container that never ran is no use to anyone: take it away before reporting.
        let _ = engine.remove_container(&config.container).await;
    }
    started
}

/// Why the registry cannot read its storage, from what it said (`said`: its error answer), or else
/// from its recent log lines: once its storage health check has failed, it answers 503 with no
/// detail, and only the log lines written before that name S3's reason.
///
/// The registry logs a failed request after it has answered it, so the line that names S3's reason
/// may not be in the logs yet when the answer arrives (more so on a busy machine, where the
/// container's CPU shares count): the logs are read again once, a moment later.
pub async fn storage_cause(engine: &Engine, container: &str, said: &str) -> Option<StorageCause> {
    if let Some(cause) = cause::diagnose(said) {
        return Some(cause);
    }
    use futures_util::StreamExt;
    for wait in [Duration::ZERO, LOG_LAG] {
        tokio::time::sleep(wait).await;
        let lines: Vec<String> =
            engine.logs(container, "200", false).filter_map(|line| async move { line.ok() }).collect().await;
        if let Some(cause) = lines.iter().rev().find_map(|line| cause::diagnose(line)) {
            return Some(cause);
        }
    }
    None
}

/// How long a log line may lag behind the answer it belongs to.
const LOG_LAG: Duration = Duration::from_millis(500);

/// Whether a failed request to the registry got an answer from it (an HTTP status), rather than
/// no connection: only an answer can carry S3's reason, and "connection refused" from the local
/// registry is not S3's.
pub fn answered(said: &str) -> bool {
    said.contains("answered HTTP")
}

/// The error for a registry that cannot read its storage, with the command that fixes `cause`;
/// `then` is what follows it ("Then pull again.").
pub fn storage_error(container: &str, cause: &StorageCause, then: &str) -> Error {
    let fix = match cause {
        StorageCause::Credentials { .. } => format!("Renew the registry's credentials: `devbox registry up`. {then}"),
        StorageCause::Clock { .. } => format!("Set the Docker VM's clock from this host: `devbox clock sync`. {then}"),
        StorageCause::NoSuchBucket | StorageCause::Unreachable { .. } => format!("{} {then}", cause.hint()),
    };
    Error::RegistryStorage { container: container.to_string(), cause: cause.explain(), fix: fix.trim_end().to_string() }
}

async fn last_log_lines(engine: &Engine, container: &str) -> String {
    use futures_util::StreamExt;
    let lines: Vec<String> =
        engine.logs(container, "5", false).filter_map(|line| async move { line.ok() }).collect().await;
    if lines.is_empty() { String::new() } else { format!("; its last log lines:\n{}", lines.concat().trim_end()) }
}
