//! The registry container's part of doctor that reads `registry.image`'s pin: a digest the
//! running image does not carry fails, a tag without a digest warns. The verdict is
//! `registry::pin::judge`'s; this file says how it reads.

use super::RegistryContainer;
use crate::doctor::{Finding, Remedy, Status};
use crate::engine::Engine;
use crate::registry::pin::PinVerdict;

/// The repository digests of the image the inspected container runs (by its image ID, whatever
/// its name points to now); none when there is no container or the engine does not say.
pub async fn digests_of(engine: &Engine, inspected: &RegistryContainer) -> Vec<String> {
    let Ok(Some(container)) = inspected else { return Vec::new() };
    engine.image(&container.image_id).await.ok().flatten().map(|image| image.repo_digests).unwrap_or_default()
}

/// A digest mismatch: the registry runs an image other than the pinned one. `None` otherwise.
pub fn mismatch(finding: &Finding, verdict: &PinVerdict, name: &str) -> Option<Finding> {
    let PinVerdict::Mismatch { pinned, found } = verdict else { return None };
    let found = if found.is_empty() { "none (built or loaded here)".to_string() } else { found.join(", ") };
    Some(
        Finding { status: Status::Fail, ..finding.clone() }
            .detail("image_digests", found.clone())
            .hint(format!(
                "{name} runs an image whose digests ({found}) are not the pin {pinned} in registry.image: the \
                 image was replaced under its name. Recreate it: the engine pulls the pinned digest and checks it."
            ))
            .remedy(Remedy::RegistryUp),
    )
}

/// A tag without a digest: a warning, with how to pin it. The finding as it was otherwise.
pub fn unpinned(finding: Finding, verdict: &PinVerdict, image: &str) -> Finding {
    match verdict {
        PinVerdict::Unpinned => Finding { status: Status::Warn, ..finding }.hint(format!(
            "registry.image = \"{image}\" is a tag without a digest: if the tag is moved, this laptop runs \
             another image with the team's AWS session. Pin it: registry.image = \"{image}@sha256:…\" (the \
             digest `docker buildx imagetools inspect {image}` or the image's registry shows)."
        )),
        PinVerdict::Matches { digest } => finding.detail("image_digest", digest.clone()),
        PinVerdict::Mismatch { .. } => finding,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::CheckId;

    #[test]
    fn a_digest_other_than_the_pin_fails_with_the_fix() {
        let ok = Finding::ok(CheckId::RegistryContainer, "running");
        let other = PinVerdict::Mismatch { pinned: "sha256:1".into(), found: vec!["sha256:2".into()] };
        let failed = mismatch_finding(&ok, &other);
        assert_eq!(failed.status, Status::Fail);
        assert!(
            failed.hint.as_deref().is_some_and(|h| h.contains("(sha256:2) are not the pin sha256:1")),
            "{failed:?}"
        );
        assert_eq!(failed.remedy, Some(Remedy::RegistryUp));
        assert!(mismatch(&ok, &PinVerdict::Unpinned, "r").is_none());
    }

    #[test]
    fn a_bare_tag_warns_with_how_to_pin_it_and_a_match_shows_the_digest() {
        let ok = Finding::ok(CheckId::RegistryContainer, "running");
        let warned = unpinned(ok.clone(), &PinVerdict::Unpinned, "registry:3.0.0");
        assert_eq!(warned.status, Status::Warn);
        assert!(warned.hint.as_deref().is_some_and(|h| h.contains("registry.image = \"registry:3.0.0@sha256:")));
        let matched = unpinned(ok, &PinVerdict::Matches { digest: "sha256:1".into() }, "r@sha256:1");
        assert_eq!(
            (matched.status, matched.details.get("image_digest").map(String::as_str)),
            (Status::Ok, Some("sha256:1"))
        );
    }

    fn mismatch_finding(ok: &Finding, verdict: &PinVerdict) -> Finding {
        mismatch(ok, verdict, "devbox-registry").expect("a mismatch fails")
    }
}
