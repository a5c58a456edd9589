//! devbox's own version, against the release feed.

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use super::Probe;
use crate::config::Config;
use crate::doctor::{CheckId, Finding};
use crate::env::Environment;
use crate::paths::Paths;

/// Whether a newer devbox is out: asked of the release feed at most once a day, and never a
/// failure, even offline. An update is a suggestion, so `--fix` leaves it to the user.
pub fn check<'p>(probe: &'p Probe<'_>) -> BoxFuture<'p, Finding> {
    version(probe.config, probe.env).boxed()
}

async fn version(config: &Config, env: &Environment) -> Finding {
    let id = CheckId::Version;
    let current = crate::update::CURRENT_VERSION;
    let Ok(paths) = Paths::resolve(env) else { return Finding::ok(id, format!("devbox {current}")) };
    match crate::update::cached_latest(config, env, &paths, jiff::Timestamp::now()).await {
        Some(latest) if crate::update::is_newer(current, &latest.version) => {
            Finding::warn(id, format!("devbox {current}; {} is out", latest.version))
                .hint("A newer release is available.")
                .fix("devbox self-update")
        }
        Some(latest) => Finding::ok(id, format!("devbox {current} is the newest release (checked {})", latest.seen_at)),
        None => {
            Finding::ok(id, format!("devbox {current} (the release feed has not answered; checked at most once a day)"))
        }
    }
}
