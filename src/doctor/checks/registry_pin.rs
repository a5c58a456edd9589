//! The registry container's part of doctor that reads `registry.image`'s pin: a digest the
//! running image does not carry fails, a tag without a digest warns. The verdict is
//! `registry::pin::judge`'s; this file says how it reads.

use crate::doctor::{Finding, Remedy, Status};
use crate::registry::pin::PinVerdict;

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
