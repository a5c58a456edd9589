//! minisign signatures: the release's `SHA256SUMS.minisig` and a team config's `.minisig`, checked
//! against a public key. The one home of the `minisign-verify` crate.
//!
//! minisign rather than zipsign: one detached signature file signs any file (the release's sums
//! and a team's devbox.toml alike), the `minisign` tool that makes and checks it is packaged by
//! Debian, Homebrew and most others (so install.sh can check a release with it, and a platform
//! team can sign its config), and the verifier is a small crate with no dependencies.

use std::fmt;

/// The suffix of a detached minisign signature: `SHA256SUMS.minisig`, `devbox.toml.minisig`.
pub const SIGNATURE_SUFFIX: &str = ".minisig";

/// The project's release key, embedded: `update.public_key` replaces it for a company that builds
/// its own releases. `keys/release.pub` is the file `minisign -G` wrote.
const PROJECT_KEY_FILE: &str = include_str!("../keys/release.pub");

/// A minisign public key, as its base64 line (`RW…`), which is how people pass and see it.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    text: String,
    key: minisign_verify::PublicKey,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.text)
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl PublicKey {
    /// A key as a user writes it: the base64 line, or the whole `minisign.pub` file (its comment
    /// line, then the key).
    pub fn parse(text: &str) -> Result<PublicKey, String> {
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
            .unwrap_or_default();
        let key = minisign_verify::PublicKey::from_base64(line).map_err(|_| {
            let shown: String = line.chars().take(60).collect();
            format!("{shown:?} is not a minisign public key (a line such as \"RWQ…\", as `minisign -G` writes it)")
        })?;
        Ok(PublicKey { text: line.to_string(), key })
    }

    /// The project's own release key, embedded in this binary.
    pub fn project() -> PublicKey {
        // A test below proves the embedded file parses; a broken one must not build a release.
        PublicKey::parse(PROJECT_KEY_FILE).unwrap_or_else(|reason| unreachable!("keys/release.pub: {reason}"))
    }
}

/// Why a signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature file is not a minisign signature (truncated or damaged)")]
    Malformed,
    #[error("the signature was made with another key than {expected}")]
    OtherKey { expected: String },
    #[error("the signature does not match the file's bytes (the file or its signature was changed)")]
    Mismatch,
}

/// Checks `signature` (a `.minisig` file's text) over `data` against each of `keys`; the key that
/// signed it, or why none did.
pub fn verify<'k>(data: &[u8], signature: &str, keys: &'k [PublicKey]) -> Result<&'k PublicKey, SignatureError> {
    let signature = minisign_verify::Signature::decode(signature).map_err(|_| SignatureError::Malformed)?;
    let mut other_key = true;
    for key in keys {
        match key.key.verify(data, &signature, false) {
            Ok(()) => return Ok(key),
            Err(minisign_verify::Error::UnexpectedKeyId) => {}
            Err(_) => other_key = false,
        }
    }
    if other_key {
        let expected = keys.iter().map(ToString::to_string).collect::<Vec<_>>().join(" or ");
        Err(SignatureError::OtherKey { expected })
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made once with `minisign -G -W` and `minisign -S -m f -t "devbox test"`, f holding "hello\n".
    const KEY: &str = "untrusted comment: minisign public key C2E77A461328F1AF\n\
                       RWSv8SgTRnrnwkoADr1/QBv+oKspR4kvgPHKnbo/yUfhrMS+PFsmIAV2\n";
    const SIG: &str = "untrusted comment: signature from minisign secret key\n\
        RUSv8SgTRnrnwuvdVj3ZeRSVNsR/ErsUeiHTxFSLgElhxA4EM+M73raRJj2iAMrGSadKJmi8GF/iBIHXL5xmNXSQpTSefpWjSQM=\n\
        trusted comment: devbox test\n\
        uMF551+DIrMBhMy+0uz7eLcmCcwZYiVTVL95/qeerOFERj5sl2UFNLATUUN/WQWk0ht1s01L6EJIj9C2YlscCQ==\n";

    #[test]
    fn a_good_signature_names_its_key() {
        let key = PublicKey::parse(KEY).expect("key");
        assert_eq!(key.to_string(), "RWSv8SgTRnrnwkoADr1/QBv+oKspR4kvgPHKnbo/yUfhrMS+PFsmIAV2");
        let keys = [PublicKey::project(), key.clone()];
        assert_eq!(verify(b"hello\n", SIG, &keys), Ok(&key));
    }

    #[test]
    fn bad_signatures_say_why() {
        let key = PublicKey::parse("RWSv8SgTRnrnwkoADr1/QBv+oKspR4kvgPHKnbo/yUfhrMS+PFsmIAV2").expect("key");
        let keys = [key];
        assert_eq!(verify(b"hello!\n", SIG, &keys), Err(SignatureError::Mismatch));
        assert_eq!(verify(b"hello\n", &SIG[..SIG.len() / 2], &keys), Err(SignatureError::Malformed));
        assert!(matches!(verify(b"hello\n", SIG, &[PublicKey::project()]), Err(SignatureError::OtherKey { .. })));
        assert!(PublicKey::parse("not a key").is_err());
        assert!(PublicKey::parse("").is_err());
    }

    #[test]
    fn the_project_key_is_embedded() {
        assert!(PublicKey::project().to_string().starts_with("RW"));
    }
}
