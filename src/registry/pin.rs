//! `registry.image` pinned by digest (`registry:3.0.0@sha256:…`, as Docker writes it): a tag can be
//! moved to another image, a digest cannot. Whether the configured image is pinned, and whether
//! the image the registry container runs is the pinned one, judged from the digests the engine
//! keeps for that image (`RepoDigests`: `repo@sha256:…` for each registry it came from).

/// What the pin says of the registry container's image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinVerdict {
    /// `registry.image` is a tag without a digest: whatever the tag points to runs.
    Unpinned,
    /// The container runs an image with the pinned digest.
    Matches { digest: String },
    /// It runs another image: its digests (none when it was built or loaded locally).
    Mismatch { pinned: String, found: Vec<String> },
}

/// The digest a reference pins (`name[:tag]@sha256:<64 hex>`), if it pins one.
pub fn pinned_digest(image: &str) -> Option<&str> {
    let (_, digest) = image.split_once('@')?;
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(digest)
}

/// Judges `image` (the configured reference) against `repo_digests`, those of the image the
/// container runs.
pub fn judge(image: &str, repo_digests: &[String]) -> PinVerdict {
    let Some(pinned) = pinned_digest(image) else { return PinVerdict::Unpinned };
    let found: Vec<String> =
        repo_digests.iter().filter_map(|d| d.split_once('@').map(|(_, digest)| digest.to_string())).collect();
    if found.iter().any(|d| d.eq_ignore_ascii_case(pinned)) {
        PinVerdict::Matches { digest: pinned.to_string() }
    } else {
        PinVerdict::Mismatch { pinned: pinned.to_string(), found }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:650406796a6a7c0c45d098cdcc4d6c5f5ae47c62e9fec489d287e2bfde38fe63";

    #[test]
    fn a_tag_alone_is_unpinned() {
        assert_eq!(judge("registry:3.0.0", &[format!("registry@{DIGEST}")]), PinVerdict::Unpinned);
        assert_eq!(pinned_digest("registry@sha256:abc"), None, "not a whole digest");
        assert_eq!(pinned_digest(&format!("registry:3.0.0@{DIGEST}")), Some(DIGEST));
    }

    #[test]
    fn the_running_image_must_carry_the_pinned_digest() {
        let image = format!("registry:3.0.0@{DIGEST}");
        let other = format!("sha256:{}", "0".repeat(64));
        assert_eq!(
            judge(&image, &[format!("mirror.acme.dev/registry@{other}"), format!("registry@{DIGEST}")]),
            PinVerdict::Matches { digest: DIGEST.into() }
        );
        assert_eq!(
            judge(&image, &[format!("registry@{other}")]),
            PinVerdict::Mismatch { pinned: DIGEST.into(), found: vec![other] }
        );
        assert_eq!(judge(&image, &[]), PinVerdict::Mismatch { pinned: DIGEST.into(), found: vec![] });
    }
}
