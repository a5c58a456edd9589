//! The public keys base images may be signed by (`images.public_keys`): cosign's ECDSA P-256 keys,
//! PEM (`-----BEGIN PUBLIC KEY-----`, SubjectPublicKeyInfo), each given inline or as the absolute
//! path of a `.pub` file. Parsed once, when the config loads, so a bad key is a config error.

use std::path::Path;

use p256::ecdsa::VerifyingKey;
use p256::pkcs8::{DecodePublicKey, EncodePublicKey};
use sha2::{Digest, Sha256};

/// One trusted key, with the fingerprint that names it in records and messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedKey {
    /// `sha256:` and the first 16 hex digits of the SHA-256 of the key's DER (SubjectPublicKeyInfo).
    pub fingerprint: String,
    pub key: VerifyingKey,
}

/// Every key that may sign.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedKeys(pub Vec<TrustedKey>);

impl TrustedKeys {
    /// Whether a key with `fingerprint` is among them.
    pub fn has(&self, fingerprint: &str) -> bool {
        self.0.iter().any(|k| k.fingerprint == fingerprint)
    }
}

/// Why entry `index` of `images.public_keys` is not a key devbox can use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadKey {
    pub index: usize,
    pub reason: String,
}

/// Reads every entry: inline PEM, or the absolute path of a PEM file.
pub fn load(entries: &[String]) -> Result<TrustedKeys, BadKey> {
    let mut keys = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        let bad = |reason: String| BadKey { index, reason };
        let text = if entry.trim_start().starts_with("-----BEGIN") {
            entry.clone()
        } else {
            let path = Path::new(entry.trim());
            if !path.is_absolute() {
                return Err(bad(format!(
                    "{entry:?} is neither a PEM public key (\"-----BEGIN PUBLIC KEY-----…\") nor an absolute path to one"
                )));
            }
            std::fs::read_to_string(path).map_err(|err| bad(format!("cannot read {}: {err}", path.display())))?
        };
        keys.push(parse_pem(&text).map_err(bad)?);
    }
    Ok(TrustedKeys(keys))
}

/// A PEM public key, which must be ECDSA on P-256 (what `cosign generate-key-pair` and
/// `skopeo generate-sigstore-key` make).
pub fn parse_pem(text: &str) -> Result<TrustedKey, String> {
    let text = text.trim();
    if !text.starts_with("-----BEGIN PUBLIC KEY-----") {
        return Err("not a PEM public key: it must start with \"-----BEGIN PUBLIC KEY-----\" (cosign.pub)".into());
    }
    let key = VerifyingKey::from_public_key_pem(text)
        .map_err(|err| format!("not an ECDSA P-256 public key ({err}); cosign's keys are P-256, e.g. cosign.pub"))?;
    let der = key.to_public_key_der().map_err(|err| format!("cannot encode the key: {err}"))?;
    let fingerprint = format!("sha256:{}", &hex::encode(Sha256::digest(der.as_bytes()))[..16]);
    Ok(TrustedKey { fingerprint, key })
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use p256::ecdsa::SigningKey;

    /// A fixed signing key for tests, from `seed` (any byte but 0).
    pub fn signing_key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32].into()).expect("a valid scalar")
    }

    pub fn public_pem(key: &SigningKey) -> String {
        key.verifying_key().to_public_key_pem(Default::default()).expect("pem")
    }

    #[test]
    fn a_p256_pem_key_loads_inline_or_from_a_path() {
        let pem = public_pem(&signing_key(7));
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cosign.pub");
        std::fs::write(&path, &pem).expect("write");
        let keys = load(&[pem.clone(), path.display().to_string()]).expect("both load");
        assert_eq!(keys.0.len(), 2);
        assert_eq!(keys.0[0], keys.0[1]);
        assert!(keys.0[0].fingerprint.starts_with("sha256:") && keys.0[0].fingerprint.len() == 23);
        assert!(keys.has(&keys.0[0].fingerprint));
        assert_ne!(parse_pem(&public_pem(&signing_key(8))).expect("key").fingerprint, keys.0[0].fingerprint);
    }

    #[test]
    fn anything_but_a_p256_public_key_is_refused_with_its_index() {
        // An Ed25519 public key (SubjectPublicKeyInfo): PEM, but not P-256.
        let ed25519 = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n";
        let ok = public_pem(&signing_key(7));
        let err = load(&[ok.clone(), ed25519.into()]).expect_err("ed25519");
        assert_eq!(err.index, 1);
        assert!(err.reason.contains("not an ECDSA P-256 public key"), "{}", err.reason);
        let err = load(&["cosign.pub".into()]).expect_err("relative path");
        assert!(err.reason.contains("absolute path"), "{}", err.reason);
        let err = load(&["/nonexistent/cosign.pub".into()]).expect_err("missing file");
        assert!(err.reason.starts_with("cannot read /nonexistent/cosign.pub"), "{}", err.reason);
        let private = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert!(load(&[private.into()]).expect_err("private").reason.contains("not a PEM public key"));
        let garbled = ok.replace("PUBLIC KEY-----\n", "PUBLIC KEY-----\nzz");
        assert!(load(&[garbled]).is_err());
    }
}
