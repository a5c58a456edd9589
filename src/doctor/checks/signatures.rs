//! Image signatures: for each base image, whether the digest its alias points to (the local image
//! when there is no alias) was verified against a key still trusted, as `pull` recorded it in
//! `signatures.json`. Measuring reads the engine and that record; judging is pure.

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use super::{EngineFacts, Probe};
use crate::config::keys;
use crate::config::{Config, VerifyMode};
use crate::doctor::{CheckId, Finding, Remedy, Status};
use crate::engine::{Engine, EngineError};
use crate::images::{self, short};
use crate::paths::Paths;
use crate::state::SignatureRecords;

/// What one base image's alias points to, as far as signatures go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// Verified by a key that is still trusted.
    Verified,
    /// Pulled, but never checked (or checked by a key no longer trusted): `devbox pull` checks it.
    Unchecked { digest: String },
    /// Checked, and not signed by a trusted key: only the platform team can fix it.
    Refused { digest: String, why: String },
    /// Not pulled, so nothing to judge.
    NotPulled,
}

/// Why the aliases could not be looked at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unmeasured {
    /// An `images.base` entry is not a name in the registry.
    #[error("images.base: {0}")]
    BadImage(String),
    #[error("images.public_keys entry {}: {reason}", index + 1)]
    BadKey { index: usize, reason: String },
    /// The engine did not say what an alias points to (its error names the image).
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl Unmeasured {
    /// What to do next.
    fn hint(&self) -> String {
        match self {
            Unmeasured::BadImage(_) | Unmeasured::BadKey { .. } => {
                "Fix that entry in devbox.toml (`devbox config path` names the file), then run doctor again.".into()
            }
            Unmeasured::Engine(source) => source
                .hint()
                .unwrap_or_else(|| "Check the engine (`devbox doctor --check engine`), then run doctor again.".into()),
        }
    }
}

pub fn check<'p>(probe: &'p Probe<'_>, facts: &'p EngineFacts) -> BoxFuture<'p, Finding> {
    async move {
        let config = probe.config;
        if config.images.verify == VerifyMode::Off {
            return judge(VerifyMode::Off, Ok(Vec::new()));
        }
        let records = Paths::resolve(probe.env).map(|p| SignatureRecords::load(p.state_dir())).unwrap_or_default();
        judge(config.images.verify, measure(&facts.engine, config, &records).await)
    }
    .boxed()
}

/// Each base image's alias, against the record of what was verified.
pub async fn measure(
    engine: &Engine,
    config: &Config,
    records: &SignatureRecords,
) -> Result<Vec<(String, Seen)>, Unmeasured> {
    let images = images::base_images(config, &[]).map_err(Unmeasured::BadImage)?;
    let trusted = keys::load(&config.images.public_keys)
        .map_err(|bad| Unmeasured::BadKey { index: bad.index, reason: bad.reason })?;
    let seen = futures_util::future::join_all(images.iter().map(|image| async {
        let reference = image.alias.as_deref().unwrap_or(&image.local);
        let found = engine.image(reference).await?;
        let Some(digest) = found.as_ref().and_then(|i| i.digest_in(image.local_repo())) else {
            return Ok((image.name.clone(), Seen::NotPulled));
        };
        let seen = match records.get(image.local_repo(), digest) {
            Some(r) if r.verdict == "verified" && r.signed_by.as_deref().is_some_and(|k| trusted.has(k)) => {
                Seen::Verified
            }
            Some(r) if r.verdict != "verified" => Seen::Refused {
                digest: digest.to_string(),
                why: r.problem.clone().unwrap_or_else(|| r.verdict.replace('_', " ")),
            },
            _ => Seen::Unchecked { digest: digest.to_string() },
        };
        Ok((image.name.clone(), seen))
    }))
    .await;
    seen.into_iter().collect()
}

/// Pure. Under `require` an alias on an unverified digest fails, under `warn` it warns; a digest
/// never checked is fixed by `devbox pull`, one checked and refused only by the platform team.
pub fn judge(mode: VerifyMode, found: Result<Vec<(String, Seen)>, Unmeasured>) -> Finding {
    let id = CheckId::ImageSignatures;
    if mode == VerifyMode::Off {
        return Finding::ok(id, "not checked (images.verify = \"off\")");
    }
    let images = match found {
        Ok(images) if images.is_empty() => return Finding::ok(id, "none configured (images.base is empty)"),
        Ok(images) => images,
        Err(unmeasured) => return Finding::fail(id, unmeasured.to_string()).hint(unmeasured.hint()),
    };
    let verified = images.iter().filter(|(_, s)| *s == Seen::Verified).count();
    let pulled = images.iter().filter(|(_, s)| *s != Seen::NotPulled).count();
    let refused: Vec<String> = images
        .iter()
        .filter_map(|(name, s)| match s {
            Seen::Refused { digest, why } => Some(format!("{name} ({}: {why})", short(digest))),
            _ => None,
        })
        .collect();
    let unchecked: Vec<String> = images
        .iter()
        .filter_map(|(name, s)| match s {
            Seen::Unchecked { digest } => Some(format!("{name} ({})", short(digest))),
            _ => None,
        })
        .collect();
    let status = if mode == VerifyMode::Require { Status::Fail } else { Status::Warn };
    let mut finding = if !refused.is_empty() {
        Finding::new(id, status, format!("not signed by a trusted key: {}", refused.join(", "))).hint(
            "Ask the platform team: this digest is not signed by any trusted key (images.public_keys). \
             Its alias was tagged before verification was on, or under images.verify = \"warn\".",
        )
    } else if !unchecked.is_empty() {
        Finding::new(id, status, format!("not verified yet: {}", unchecked.join(", ")))
            .hint("Pull again: devbox verifies each image's signature before it tags it.")
            .remedy(Remedy::Pull)
    } else if pulled == 0 {
        Finding::ok(id, "none pulled yet")
    } else {
        Finding::ok(id, format!("{verified} of {pulled} pulled verified (images.verify = \"{mode}\")"))
    };
    let not_pulled: Vec<&str> = images.iter().filter(|(_, s)| *s == Seen::NotPulled).map(|(n, _)| n.as_str()).collect();
    if !not_pulled.is_empty() {
        finding = finding.detail("not_pulled", not_pulled.join(", "));
    }
    if !unchecked.is_empty() && !refused.is_empty() {
        finding = finding.detail("not_verified_yet", unchecked.join(", "));
    }
    finding
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    fn judged(mode: VerifyMode, images: &[(&str, Seen)]) -> Finding {
        judge(mode, Ok(images.iter().map(|(n, s)| (n.to_string(), s.clone())).collect()))
    }

    #[test]
    fn off_and_all_verified_pass() {
        assert_eq!(judged(VerifyMode::Off, &[]).status, Status::Ok);
        let finding = judged(VerifyMode::Require, &[("base/a:1", Seen::Verified), ("base/b:1", Seen::NotPulled)]);
        assert_eq!(finding.status, Status::Ok);
        assert_eq!(finding.summary, "1 of 1 pulled verified (images.verify = \"require\")");
        assert_eq!(finding.details.get("not_pulled").map(String::as_str), Some("base/b:1"));
        assert_eq!(judged(VerifyMode::Warn, &[("base/a:1", Seen::NotPulled)]).summary, "none pulled yet");
    }

    #[test]
    fn an_unverified_alias_fails_under_require_and_warns_under_warn() {
        let refused = Seen::Refused { digest: D.into(), why: "unsigned".into() };
        let finding = judged(VerifyMode::Require, &[("base/a:1", refused.clone()), ("base/b:1", Seen::Verified)]);
        assert_eq!(finding.status, Status::Fail);
        assert_eq!(finding.summary, "not signed by a trusted key: base/a:1 (sha256:aaaaaaaaaaaa: unsigned)");
        assert!(finding.hint.as_deref().unwrap_or_default().starts_with("Ask the platform team"));
        assert_eq!(finding.remedy, None);
        assert_eq!(judged(VerifyMode::Warn, &[("base/a:1", refused)]).status, Status::Warn);
    }

    #[test]
    fn what_could_not_be_looked_at_fails_with_where_and_the_next_step() {
        let bad_key = judge(VerifyMode::Require, Err(Unmeasured::BadKey { index: 1, reason: "not PEM".into() }));
        assert_eq!((bad_key.status, bad_key.summary.as_str()), (Status::Fail, "images.public_keys entry 2: not PEM"));
        assert!(bad_key.hint.as_deref().unwrap_or_default().contains("devbox.toml"), "{bad_key:?}");
        let what = "inspecting image base/a:1".to_string();
        let slow = EngineError::TimedOut { endpoint: "unix:///d.sock".into(), what: what.clone(), seconds: 20 };
        let unseen = judge(VerifyMode::Warn, Err(Unmeasured::Engine(slow)));
        assert_eq!(unseen.status, Status::Fail);
        assert!(unseen.summary.contains("did not answer inspecting image base/a:1 within 20s"), "{unseen:?}");
        assert!(unseen.hint.as_deref().unwrap_or_default().contains("Restart Docker"), "{unseen:?}");
        let refused = EngineError::Refused { what, status: 500, message: "boom".into() };
        let hint = judge(VerifyMode::Warn, Err(Unmeasured::Engine(refused))).hint.unwrap_or_default();
        assert!(hint.contains("devbox doctor --check engine"), "{hint}");
    }

    #[test]
    fn a_digest_never_checked_is_fixed_by_a_pull() {
        let finding = judged(VerifyMode::Require, &[("base/a:1", Seen::Unchecked { digest: D.into() })]);
        assert_eq!(finding.status, Status::Fail);
        assert_eq!(finding.summary, "not verified yet: base/a:1 (sha256:aaaaaaaaaaaa)");
        assert_eq!(finding.remedy, Some(Remedy::Pull));
    }
}
