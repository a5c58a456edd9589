//! Renewing the registry container's short-lived AWS credentials before they expire: what the
//! scheduled `renew` job, `pull` and `doctor --fix` run. Deciding needs nothing but the container's
//! labels, so a run with nothing to do makes no AWS call (an SSO or `credential_process` source is
//! never woken up) and costs one container inspect.

use super::converge::{Converged, connect_s3, converge};
use super::lease::LeaseVerdict;
use super::proof::Proofs;
use super::{LABEL_MANAGED, lease_of};
use crate::config::{RegistryConfig, Storage};
use crate::engine::Engine;
use crate::progress::Progress;

/// What a renewal found, or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Renewal {
    /// Nothing to renew: why, for people (no container, filesystem storage, long-lived keys).
    NotNeeded(String),
    /// Its credentials are good past the refresh window.
    Fresh { expiry: jiff::Timestamp, renew_at: jiff::Timestamp },
    /// The container was recreated with fresh credentials.
    Renewed(Converged),
}

/// What a renewal would do now, from the container's labels alone: `None` when it would do nothing
/// (with the reason), `Some(verdict)` when the credentials are due or expired.
async fn due(engine: &Engine, config: &RegistryConfig) -> anyhow::Result<Result<LeaseVerdict, Renewal>> {
    if config.storage() != Storage::S3 {
        return Ok(Err(Renewal::NotNeeded(
            "the registry uses filesystem storage, so it holds no AWS credentials".into(),
        )));
    }
    let Some(container) = engine.container(&config.container).await? else {
        return Ok(Err(Renewal::NotNeeded(format!(
            "there is no registry container {} (`devbox registry up` makes one)",
            config.container
        ))));
    };
    if container.label(LABEL_MANAGED) != Some("true") {
        return Ok(Err(Renewal::NotNeeded(format!("the container {} is not devbox's", config.container))));
    }
    Ok(match lease_of(&container).verdict(jiff::Timestamp::now()) {
        LeaseVerdict::LongLived => Err(Renewal::NotNeeded("its AWS credentials are long-lived".into())),
        LeaseVerdict::Fresh { expiry, renew_at } => Err(Renewal::Fresh { expiry, renew_at }),
        due @ (LeaseVerdict::Renew { .. } | LeaseVerdict::Expired { .. }) => Ok(due),
    })
}

/// Renews the registry's credentials when they are inside the refresh window or expired: fresh
/// ones are resolved on the host and the container is recreated through `converge`. When the host
/// cannot resolve any (its login expired), the error says so and the container is left as it was.
pub async fn renew(
    engine: &Engine,
    config: &RegistryConfig,
    proofs: &Proofs,
    progress: &dyn Progress,
) -> anyhow::Result<Renewal> {
    if let Err(nothing) = due(engine, config).await? {
        return Ok(nothing);
    }
    let s3 = connect_s3(config).await?;
    Ok(Renewal::Renewed(converge(engine, config, s3.as_ref(), proofs, progress).await?))
}

/// Whether the registry's own AWS credentials expire, from its container's labels: `Some(false)`
/// for filesystem storage and long-lived keys, `None` when there is no container of devbox's to
/// tell from (or the engine did not answer). What decides whether the `renew` job is wanted.
pub async fn credentials_expire(engine: Option<&Engine>, config: &RegistryConfig) -> Option<bool> {
    if config.storage() != Storage::S3 {
        return Some(false);
    }
    let container = engine?.container(&config.container).await.ok()??;
    (container.label(LABEL_MANAGED) == Some("true")).then(|| lease_of(&container).expiry.is_some())
}
