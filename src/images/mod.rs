//! Base images: which ones the config asks for, what they are called locally and in production,
//! and how one pull's outcome is judged. Pure; the pulling and its record are in `pull.rs`.

pub mod pull;
pub mod verify;

use serde::Serialize;

use crate::config::Config;
use crate::engine::EngineError;
use crate::error::Error;
use crate::registry::api::ApiError;

/// One base image, under each of its names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BaseImage {
    /// The name in the registry, e.g. `base/python:3.12`.
    pub name: String,
    #[serde(skip)]
    pub repo: String,
    #[serde(skip)]
    pub tag: String,
    /// Where it is pulled from: `127.0.0.1:5000/base/python:3.12`.
    pub local: String,
    /// Its production name, e.g. `acme/base/python:3.12`, when `images.alias` is set.
    pub alias: Option<String>,
}

impl BaseImage {
    /// `127.0.0.1:5000/base/python`: the repository part of `local`, as repo digests name it.
    pub fn local_repo(&self) -> &str {
        self.local.rsplit_once(':').map_or(&self.local, |(repo, _)| repo)
    }
}

/// The images to pull: the ones named, or else every `images.base` entry. Errors name the bad entry.
pub fn base_images(config: &Config, requested: &[String]) -> Result<Vec<BaseImage>, String> {
    let names = if requested.is_empty() { &config.images.base } else { requested };
    let mut images = Vec::with_capacity(names.len());
    for name in names {
        let (repo, tag) = parse_name(name)?;
        let name = format!("{repo}:{tag}");
        if images.iter().any(|i: &BaseImage| i.name == name) {
            continue;
        }
        images.push(BaseImage {
            local: format!("127.0.0.1:{}/{name}", config.registry.port),
            alias: alias_for(&config.images.alias, &name),
            repo: repo.to_string(),
            tag: tag.to_string(),
            name,
        });
    }
    Ok(images)
}

/// The images a pull takes: as `base_images`, but a bad name is a usage error, and so is having none.
pub fn to_pull(config: &Config, requested: &[String]) -> Result<Vec<BaseImage>, Error> {
    let images = base_images(config, requested).map_err(Error::Usage)?;
    if images.is_empty() {
        return Err(Error::NoBaseImages);
    }
    Ok(images)
}

/// Splits and checks a name in the registry: `path/to/repo[:tag]`, lowercase, no host, no digest.
pub fn parse_name(name: &str) -> Result<(&str, &str), String> {
    let bad = |why: &str| Err(format!("{name:?} is not an image name in the registry: {why}"));
    let (repo, tag) = match name.rsplit_once(':') {
        Some((repo, tag)) => (repo, tag),
        None => (name, "latest"),
    };
    if name.contains('@') {
        return bad("pull by tag, not by digest");
    }
    if repo.is_empty() || repo.split('/').any(|part| part.is_empty()) {
        return bad("write it as \"path/name:tag\", e.g. \"base/python:3.12\"");
    }
    if repo.split('/').next().is_some_and(|first| first.contains('.') || first.contains(':')) && repo.contains('/') {
        return bad("give the name inside the registry, without a registry host");
    }
    if !repo.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/".contains(c)) {
        return bad("use lowercase letters, digits, '.', '_', '-' and '/'");
    }
    if tag.is_empty() || tag.len() > 128 || !tag.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
        return bad("the tag may hold letters, digits, '.', '_' and '-' (at most 128)");
    }
    Ok((repo, tag))
}

/// `images.alias` with `{name}` replaced: `acme/{name}` → `acme/base/python:3.12`.
pub fn alias_for(pattern: &str, name: &str) -> Option<String> {
    (!pattern.is_empty()).then(|| pattern.replace("{name}", name))
}

/// What one pull did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    /// New content arrived. `old` is `None` when the image was not here before.
    Updated {
        old_digest: Option<String>,
        new_digest: String,
    },
    Unchanged {
        digest: String,
    },
    Failed {
        #[serde(serialize_with = "as_text")]
        reason: PullError,
    },
}

/// Why one image could not be pulled. Its `Display` is what `pull` prints and `--json` holds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PullError {
    /// The registry's answer to the digest check.
    #[error(transparent)]
    Registry(#[from] ApiError),
    /// The registry has no such tag.
    #[error("not in the registry: {0}")]
    NotInRegistry(String),
    /// The engine refused or did not answer.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The engine reported a good pull, but the image is not there.
    #[error("the engine reported success, but {0} is not there")]
    Missing(String),
    /// The image to alias is gone from the engine.
    #[error("{0} is not on this engine")]
    NotOnEngine(String),
    /// `images.verify = "require"` and the registry's digest is not signed by a trusted key: it
    /// is not tagged, and what was there stays.
    #[error(
        "refused {}: {why}; nothing was tagged or removed (images.verify = \"require\"). Ask the platform team: only a digest CI signed with a key in images.public_keys is tagged",
        short(digest)
    )]
    Refused { digest: String, why: String },
}

impl PullError {
    /// The registry's error answer, when the registry (rather than the engine) failed.
    pub fn registry_answer(&self) -> Option<&ApiError> {
        match self {
            PullError::Registry(answer) => Some(answer),
            _ => None,
        }
    }
}

fn as_text<S: serde::Serializer>(reason: &PullError, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(reason)
}

impl Outcome {
    /// One line for people: `updated sha256:1a2b3c4d5e6f → sha256:…`.
    pub fn describe(&self) -> String {
        match self {
            Outcome::Updated { old_digest: Some(old), new_digest } => {
                format!("updated {} → {}", short(old), short(new_digest))
            }
            Outcome::Updated { old_digest: None, new_digest } => format!("pulled {}", short(new_digest)),
            Outcome::Unchanged { digest } => format!("unchanged {}", short(digest)),
            Outcome::Failed { reason } => format!("failed: {reason}"),
        }
    }
}

/// `sha256:` and the first 12 hex digits, as docker shows image IDs.
pub fn short(digest: &str) -> &str {
    let end = digest.find(':').map_or(12, |colon| colon + 1 + 12);
    &digest[..end.min(digest.len())]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(base: &[&str], alias: &str) -> Config {
        let mut config: Config = crate::config::load(crate::config::ConfigSource::Defaults { would_be: "x".into() })
            .expect("defaults")
            .config;
        config.images.base = base.iter().map(|s| s.to_string()).collect();
        config.images.alias = alias.into();
        config
    }

    #[test]
    fn base_images_get_local_and_production_names() {
        let images = base_images(&config(&["base/python:3.12", "base/go"], "acme/{name}"), &[]).expect("valid");
        assert_eq!(images[0].local, "127.0.0.1:5000/base/python:3.12");
        assert_eq!(images[0].local_repo(), "127.0.0.1:5000/base/python");
        assert_eq!(images[0].alias.as_deref(), Some("acme/base/python:3.12"));
        assert_eq!(images[1].name, "base/go:latest");
        assert_eq!(base_images(&config(&["base/go:1"], ""), &[]).expect("valid")[0].alias, None);
    }

    #[test]
    fn named_images_replace_the_configured_list_once_each() {
        let requested = vec!["base/go:1.23".to_string(), "base/go:1.23".to_string()];
        let images = base_images(&config(&["base/python:3.12"], ""), &requested).expect("valid");
        assert_eq!(images.len(), 1);
        assert_eq!(images[0].name, "base/go:1.23");
    }

    #[test]
    fn names_are_checked() {
        for bad in ["", "Base/Python:3", "ghcr.io/acme/base:1", "base/go@sha256:abc", "base//go:1", "base/go:"] {
            assert!(parse_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_name("base/python:3.12"), Ok(("base/python", "3.12")));
        assert_eq!(parse_name("python"), Ok(("python", "latest")));
    }

    #[test]
    fn outcomes_read_as_one_line() {
        let old = "sha256:1111111111111111111111111111111111111111111111111111111111111111".to_string();
        let new = "sha256:2222222222222222222222222222222222222222222222222222222222222222".to_string();
        assert_eq!(
            Outcome::Updated { old_digest: Some(old.clone()), new_digest: new.clone() }.describe(),
            "updated sha256:111111111111 → sha256:222222222222"
        );
        assert_eq!(Outcome::Unchanged { digest: old }.describe(), "unchanged sha256:111111111111");
        assert_eq!(short("abc"), "abc");
    }
}
