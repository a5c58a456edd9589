//! When the registry container's short-lived AWS credentials are due for renewal: what
//! `Service::renew` asks before it renews them (the scheduled `renew` job, `pull`). Deciding needs nothing but the container's
//! labels, so a run with nothing to do makes no AWS call (an SSO or `credential_process` source is
//! never woken up) and costs one container inspect.

use super::converge::Converged;
use super::lease::LeaseVerdict;
use super::{LABEL_MANAGED, damaged_lease, lease_of};
use crate::config::{RegistryConfig, Storage};
use crate::engine::Engine;
use crate::error::Error;

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
pub(super) async fn due(engine: &Engine, config: &RegistryConfig) -> anyhow::Result<Result<LeaseVerdict, Renewal>> {
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
    if let Some((label, value)) = damaged_lease(&container) {
        // A lease that cannot be read is not taken for "long-lived" (never renewed) nor renewed
        // behind the user's back: they are told, and `registry up` makes the container again.
        return Err(Error::DamagedRecord {
            what: "the registry's credentials lease".into(),
            place: format!("label {label} of container {}", config.container),
            reason: format!("{value:?} is not a time"),
            fix: "Run `devbox registry up`: it recreates the registry with fresh credentials and a new lease.".into(),
        }
        .into());
    }
    Ok(match lease_of(&container).verdict(jiff::Timestamp::now()) {
        LeaseVerdict::LongLived => Err(Renewal::NotNeeded("its AWS credentials are long-lived".into())),
        LeaseVerdict::Fresh { expiry, renew_at } => Err(Renewal::Fresh { expiry, renew_at }),
        due @ (LeaseVerdict::Renew { .. } | LeaseVerdict::Expired { .. }) => Ok(due),
    })
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
