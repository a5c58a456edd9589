//! The base images: each one on the engine, at the digest the registry serves.

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use super::{EngineFacts, Probe};
use crate::config::Config;
use crate::doctor::{CheckId, Finding, Remedy};
use crate::engine::{Engine, EngineError};
use crate::images::{self, BaseImage, short};
use crate::registry::api::{Manifest, RegistryApi};

/// The registry's base-image digests, as `registry_digests` read them, shared by two checks.
pub type Digests = Result<Vec<(BaseImage, Manifest)>, Finding>;

/// The registry's side of the base-images check: each image's manifest digest. It needs no
/// engine, so it runs while the engine connects.
pub async fn registry_digests(config: &Config) -> Digests {
    let id = CheckId::BaseImages;
    let images = images::base_images(config, &[])
        .map_err(|reason| Finding::fail(id, reason).hint("Fix images.base in devbox.toml."))?;
    let api = RegistryApi::new(&config.registry.local_url()).map_err(|err| Finding::fail(id, format!("{err:#}")))?;
    let digests =
        futures_util::future::join_all(images.iter().map(|image| api.manifest(&image.repo, &image.tag))).await;
    images
        .into_iter()
        .zip(digests)
        .map(|(image, digest)| digest.map(|d| (image, d)).map_err(|reason| Finding::fail(id, reason.to_string())))
        .collect()
}

pub fn check<'p>(probe: &'p Probe<'_>, facts: &'p EngineFacts) -> BoxFuture<'p, Finding> {
    async move {
        match probe.digests().await {
            Ok(remote) => judge(measure(&facts.engine, &remote).await),
            Err(finding) => finding,
        }
    }
    .boxed()
}

/// One base image on the engine, against the registry's digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageState {
    Current,
    Stale {
        local: String,
        remote: String,
    },
    /// Not pulled yet.
    Missing,
    /// Not in the registry.
    Absent,
}

/// Compares each base image on the engine with the registry's digest (from `registry_digests`).
pub async fn measure(
    engine: &Engine,
    remote: &[(BaseImage, Manifest)],
) -> Result<Vec<(String, ImageState)>, EngineError> {
    let states = futures_util::future::join_all(remote.iter().map(|(image, manifest)| async move {
        let Manifest::Found(remote) = manifest else { return Ok((image.name.clone(), ImageState::Absent)) };
        let local = engine.image(&image.local).await?;
        let state = match local.as_ref().and_then(|i| i.digest_in(image.local_repo())) {
            None => ImageState::Missing,
            Some(digest) if digest == remote => ImageState::Current,
            Some(digest) => ImageState::Stale { local: digest.to_string(), remote: remote.clone() },
        };
        Ok((image.name.clone(), state))
    }))
    .await;
    states.into_iter().collect()
}

/// Images missing from the registry fail (CI has not published them); stale or unpulled ones are a
/// warning that `devbox pull` fixes. Pure.
pub fn judge(found: Result<Vec<(String, ImageState)>, EngineError>) -> Finding {
    let id = CheckId::BaseImages;
    let images = match found {
        Ok(images) if images.is_empty() => return Finding::ok(id, "none configured (images.base is empty)"),
        Ok(images) => images,
        Err(reason) => return Finding::fail(id, reason.to_string()),
    };
    let named = |wanted: fn(&ImageState) -> bool| -> Vec<&str> {
        images.iter().filter(|(_, state)| wanted(state)).map(|(name, _)| name.as_str()).collect()
    };
    let absent = named(|s| *s == ImageState::Absent);
    let missing = named(|s| *s == ImageState::Missing);
    let current = named(|s| *s == ImageState::Current);
    let stale = named(|s| matches!(s, ImageState::Stale { .. }));
    let details: Vec<String> = images
        .iter()
        .filter_map(|(name, state)| match state {
            ImageState::Stale { local, remote } => Some(format!("{name}: {} → {}", short(local), short(remote))),
            _ => None,
        })
        .collect();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Status;

    fn stale() -> ImageState {
        ImageState::Stale { local: format!("sha256:{}", "a".repeat(64)), remote: format!("sha256:{}", "b".repeat(64)) }
    }

    fn judged(images: &[(&str, ImageState)]) -> Finding {
        judge(Ok(images.iter().map(|(name, state)| (name.to_string(), state.clone())).collect()))
    }

    #[test]
    fn all_current_passes_and_none_configured_is_fine() {
        let finding = judged(&[("base/python:3.12", ImageState::Current), ("base/node:22", ImageState::Current)]);
        assert_eq!((finding.status, finding.summary.as_str()), (Status::Ok, "all 2 current"));
        assert!(finding.details.is_empty());
        let none = judged(&[]);
        assert_eq!((none.status, none.summary.as_str()), (Status::Ok, "none configured (images.base is empty)"));
    }

    #[test]
    fn stale_or_unpulled_images_are_a_warning_that_pull_fixes() {
        let finding = judged(&[
            ("base/python:3.12", stale()),
            ("base/node:22", ImageState::Missing),
            ("base/go:1.23", ImageState::Current),
        ]);
        assert_eq!(finding.status, Status::Warn);
        assert_eq!(finding.summary, "1 of 3 current; stale: base/python:3.12; not pulled: base/node:22");
        assert_eq!(finding.remedy, Some(Remedy::Pull));
        assert_eq!(
            finding.details.get("stale").map(String::as_str),
            Some("base/python:3.12: sha256:aaaaaaaaaaaa → sha256:bbbbbbbbbbbb")
        );
        assert_eq!(
            judged(&[("base/node:22", ImageState::Missing)]).summary,
            "0 of 1 current; not pulled: base/node:22"
        );
    }

    #[test]
    fn an_image_missing_from_the_registry_fails_without_a_remedy() {
        let finding = judged(&[("base/python:3.12", stale()), ("base/rust:1", ImageState::Absent)]);
        assert_eq!(finding.status, Status::Fail);
        assert_eq!(finding.summary, "not in the registry: base/rust:1");
        assert!(finding.hint.unwrap_or_default().contains("CI has not published them"));
        assert_eq!(finding.remedy, None);
        assert!(finding.details.contains_key("stale"), "the stale image is still noted");
    }

    #[test]
    fn an_engine_error_is_the_finding() {
        let refused =
            EngineError::Failed { what: "inspecting base/python:3.12".into(), message: "engine said no".into() };
        let finding = judge(Err(refused));
        assert_eq!(
            (finding.status, finding.summary.as_str()),
            (Status::Fail, "inspecting base/python:3.12 failed: engine said no")
        );
    }
}
