//! Whether a team config may be applied: pinned by its hash (`--from SRC#sha256=HEX`), signed by
//! a key the first `init --from … --key KEY` recorded (`SRC.minisig`), or, for a config that
//! changes none of the keys that decide what this machine runs and trusts, taken as it is. A
//! config that changes one of those keys unpinned and unsigned needs a yes on a terminal, or
//! `--trust-unsigned`. How it was trusted is recorded in the installed file's header (`team.rs`),
//! where `config show` reads it.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::config::{Config, S3Config};
use crate::error::Error;
use crate::init::front::Front;
use crate::init::team::{self, TeamSource};
use crate::signature::{self, PublicKey};

/// The keys a team config can use to make this machine run another image, send its AWS session
/// elsewhere, or replace devbox itself.
pub const TRUST_RELEVANT: &[&str] = &[
    "registry.image",
    "registry.s3.endpoint",
    "registry.s3.session",
    "update.github",
    "update.s3_bucket",
    "update.url",
    "update.public_key",
    "fleet.bucket",
];

/// How the team config in force was trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// Its SHA-256 matched `--from SRC#sha256=HEX`.
    Pinned(String),
    /// Signed by this key.
    Signed(String),
    /// Neither, and it changed no trust-relevant key.
    Unchanged,
    /// Neither; its trust-relevant changes were accepted (a yes, or `--trust-unsigned`).
    Accepted,
}

impl fmt::Display for Trust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trust::Pinned(hex) => write!(f, "pinned sha256={hex}"),
            Trust::Signed(key) => write!(f, "signed by key {key}"),
            Trust::Unchanged => f.write_str("unsigned (it changed no trust-relevant key)"),
            Trust::Accepted => f.write_str("trusted unsigned (its trust-relevant changes were accepted)"),
        }
    }
}

impl Trust {
    /// Reads what `Display` wrote, from an installed file's header.
    pub fn parse(text: &str) -> Option<Trust> {
        if let Some(hex) = text.strip_prefix("pinned sha256=") {
            return Some(Trust::Pinned(hex.to_string()));
        }
        if let Some(key) = text.strip_prefix("signed by key ") {
            return Some(Trust::Signed(key.to_string()));
        }
        [Trust::Unchanged, Trust::Accepted].into_iter().find(|t| t.to_string() == text)
    }
}

/// `SRC#sha256=HEX` → (`SRC`, the pin in lowercase hex); `SRC` alone has no pin.
pub fn split_pin(from: &str) -> Result<(&str, Option<String>), String> {
    let Some((source, hex)) = from.rsplit_once("#sha256=") else { return Ok((from, None)) };
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "--from {from}: the pin after #sha256= must be 64 hex digits, as `sha256sum devbox.toml` prints"
        ));
    }
    Ok((source, Some(hex.to_ascii_lowercase())))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The trust-relevant keys whose values differ between the config in force and the team's.
pub fn relevant_changes(now: &Config, team: &Config) -> Vec<String> {
    let (now, team) = (flatten(now), flatten(team));
    TRUST_RELEVANT.iter().filter(|key| now.get(**key) != team.get(**key)).map(|k| k.to_string()).collect()
}

/// A config as dotted keys and their values.
fn flatten(config: &Config) -> std::collections::BTreeMap<String, toml::Value> {
    fn walk(prefix: &str, value: &toml::Value, out: &mut std::collections::BTreeMap<String, toml::Value>) {
        match value {
            toml::Value::Table(table) => {
                for (k, v) in table {
                    let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    walk(&key, v, out);
                }
            }
            other => {
                out.insert(prefix.to_string(), other.clone());
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    if let Ok(value) = toml::Value::try_from(config) {
        walk("", &value, &mut out);
    }
    out
}

/// The unified diff's lines, with each added or removed line of a trust-relevant key marked.
pub fn mark_diff(diff: &str, old: &str, new: &str) -> Vec<String> {
    let relevant = relevant_lines(old, new);
    diff.lines()
        .map(|line| {
            let changed = (line.starts_with('+') && !line.starts_with("+++"))
                || (line.starts_with('-') && !line.starts_with("---"));
            if changed && relevant.iter().any(|r| r == line) {
                format!("{line}    <- trust-relevant")
            } else {
                line.to_string()
            }
        })
        .collect()
}

/// The diff lines ("+key = …", "-key = …") that set a trust-relevant key, found by walking both
/// files with their `[section]` headers.
fn relevant_lines(old: &str, new: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (sign, text) in [('-', old), ('+', new)] {
        let mut section = String::new();
        for line in text.lines() {
            let trimmed = line.trim();
            if let Some(name) = trimmed.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
                section = name.trim().to_string();
            } else if let Some((key, _)) = trimmed.split_once('=') {
                let full = format!("{section}.{}", key.trim());
                if TRUST_RELEVANT.contains(&full.as_str()) {
                    out.push(format!("{sign}{line}"));
                }
            }
        }
    }
    out
}

/// What `init --from` was given about trust.
pub struct Asked<'a> {
    pub pin: Option<String>,
    /// `--key`: a key's base64 line, or a path to a `minisign.pub` file.
    pub key: Option<&'a str>,
    pub trust_unsigned: bool,
}

/// A team config as fetched: where from, its bytes, and what they parse to.
pub struct Offered<'a> {
    pub source: &'a TeamSource,
    pub text: &'a str,
    pub config: &'a Config,
}

/// Decides whether the `offered` team config may be applied over the config in force (`now`,
/// whose file recorded the team keys `recorded`), asking `front` when a yes is needed. The trust,
/// and the keys to record in the installed file.
pub async fn judge(
    offered: Offered<'_>,
    now: &Config,
    recorded: Vec<String>,
    asked: Asked<'_>,
    s3: &S3Config,
    front: &dyn Front,
) -> anyhow::Result<(Trust, Vec<String>)> {
    let Offered { source, text, config: team_config } = offered;
    let mut keys = recorded;
    let from = source.display();
    let given = match asked.key {
        Some(key) => Some(read_key(key)?),
        None => None,
    };
    if let Some(pin) = asked.pin {
        let actual = sha256_hex(text.as_bytes());
        if actual != pin {
            return Err(Error::TeamConfigPin { from, expected: pin, actual }.into());
        }
        return Ok((Trust::Pinned(pin), keys));
    }
    if given.is_some() || !keys.is_empty() {
        let mut trusted: Vec<PublicKey> = keys.iter().filter_map(|k| PublicKey::parse(k).ok()).collect();
        trusted.extend(given);
        let sig_source = source.signature();
        let refused = |reason: String| Error::TeamConfigSignature { from: from.clone(), reason };
        let signature = team::fetch(&sig_source, s3).await.map_err(|e| {
            refused(format!(
                "its signature {} cannot be read ({e:#}); once a key is recorded, every team config must be signed by it (or pinned with #sha256=)",
                sig_source.display()
            ))
        })?;
        let signer = signature::verify(text.as_bytes(), &signature, &trusted).map_err(|e| refused(e.to_string()))?;
        let signer = signer.to_string();
        if !keys.contains(&signer) {
            keys.push(signer.clone());
        }
        return Ok((Trust::Signed(signer), keys));
    }
    let changed = relevant_changes(now, team_config);
    if changed.is_empty() {
        return Ok((Trust::Unchanged, keys));
    }
    if asked.trust_unsigned || (front.interactive() && front.trust(&from, &changed)?) {
        return Ok((Trust::Accepted, keys));
    }
    Err(Error::TeamConfigUntrusted { from, keys: changed }.into())
}

/// `--key`: a path to a `minisign.pub` file, or the key itself.
fn read_key(arg: &str) -> anyhow::Result<PublicKey> {
    let text = match std::fs::read_to_string(arg) {
        Ok(file) => file,
        Err(_) => arg.to_string(),
    };
    Ok(PublicKey::parse(&text).map_err(|reason| Error::Usage(format!("--key {arg}: {reason}")))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::defaults;

    #[test]
    fn pins_are_64_hex_digits() {
        let hex = "AB".repeat(32);
        assert_eq!(split_pin(&format!("team.toml#sha256={hex}")), Ok(("team.toml", Some("ab".repeat(32)))));
        assert_eq!(split_pin("https://x.dev/devbox.toml"), Ok(("https://x.dev/devbox.toml", None)));
        assert!(split_pin("team.toml#sha256=abc").expect_err("short").contains("64 hex digits"));
        assert_eq!(sha256_hex(b""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }

    #[test]
    fn only_trust_relevant_keys_count() {
        let now = defaults().expect("defaults");
        let mut team = now.clone();
        team.registry.port = 5001;
        team.images.base = vec!["base/go:1".into()];
        assert!(relevant_changes(&now, &team).is_empty());
        team.registry.image = "someone/registry:3".into();
        team.update.url = "https://evil.dev/".into();
        assert_eq!(relevant_changes(&now, &team), ["registry.image", "update.url"]);
    }

    #[test]
    fn the_diff_marks_trust_relevant_lines() {
        let old = "[registry]\nport = 5000\nimage = \"registry:3.0.0\"\n";
        let new = "[registry]\nport = 5001\nimage = \"someone/registry:3\"\n";
        let diff = team::diff(old, new, "old", "new");
        let marked = mark_diff(&diff, old, new);
        assert!(marked.contains(&"+image = \"someone/registry:3\"    <- trust-relevant".to_string()), "{marked:?}");
        assert!(marked.contains(&"-image = \"registry:3.0.0\"    <- trust-relevant".to_string()), "{marked:?}");
        assert!(marked.contains(&"+port = 5001".to_string()), "{marked:?}");
    }

    #[test]
    fn trust_round_trips_through_its_text() {
        for trust in [Trust::Pinned("ab".repeat(32)), Trust::Signed("RWQx".into()), Trust::Unchanged, Trust::Accepted] {
            assert_eq!(Trust::parse(&trust.to_string()), Some(trust));
        }
        assert_eq!(Trust::parse("whatever"), None);
    }
}
