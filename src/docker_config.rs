//! The docker CLI's own config (`$DOCKER_CONFIG/config.json`): where registry credentials are kept.
//! devbox reads only which hosts have credentials and how they are kept, never the secrets.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::env::Environment;

/// How the docker CLI keeps credentials for one registry host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Stored {
    /// An `auth` or `identitytoken` right in config.json.
    InFile,
    /// A per-host credential helper (`credHelpers`), e.g. ecr-login.
    Helper { helper: String },
    /// The global store (`credsStore`), as its `list` command reports.
    Store { store: String },
}

/// `$DOCKER_CONFIG`, or `~/.docker`.
pub fn dir(env: &Environment) -> Option<PathBuf> {
    env.var("DOCKER_CONFIG").map(PathBuf::from).or_else(|| env.home().map(|home| home.join(".docker")))
}

pub fn path(env: &Environment) -> Option<PathBuf> {
    dir(env).map(|d| d.join("config.json"))
}

/// The hosts that have credentials in `config` (the parsed config.json), and the global store's
/// name if one is set (its hosts are listed by `store_hosts`).
pub fn stored_credentials(config: &serde_json::Value) -> (Vec<(String, Stored)>, Option<String>) {
    let mut found = Vec::new();
    if let Some(auths) = config.get("auths").and_then(|a| a.as_object()) {
        for (host, entry) in auths {
            let has_secret = ["auth", "identitytoken", "password"]
                .iter()
                .any(|key| entry.get(key).and_then(|v| v.as_str()).is_some_and(|v| !v.is_empty()));
            if has_secret {
                found.push((normalize_host(host), Stored::InFile));
            }
        }
    }
    if let Some(helpers) = config.get("credHelpers").and_then(|h| h.as_object()) {
        for (host, helper) in helpers {
            let helper = helper.as_str().unwrap_or_default().to_string();
            found.push((normalize_host(host), Stored::Helper { helper }));
        }
    }
    let store = config.get("credsStore").and_then(|s| s.as_str()).filter(|s| !s.is_empty()).map(String::from);
    (found, store)
}

/// The hosts a credential store holds secrets for: `docker-credential-<store> list` prints a JSON
/// map of server URL to user name, no secrets. `None` when the helper cannot be run.
pub async fn store_hosts(store: &str, timeout: Duration) -> Option<Vec<String>> {
    let program = format!("docker-credential-{store}");
    let run = tokio::process::Command::new(&program)
        .arg("list")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(timeout, run).await.ok()?.ok()?;
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&output.stdout).ok().filter(|_| output.status.success())?;
    Some(map.keys().map(|k| normalize_host(k)).collect())
}

pub fn read(path: &Path) -> Option<serde_json::Value> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// `https://123.dkr.ecr.us-east-1.amazonaws.com/v1/` → `123.dkr.ecr.us-east-1.amazonaws.com`.
pub fn normalize_host(key: &str) -> String {
    let without_scheme = key.split_once("://").map_or(key, |(_, rest)| rest);
    without_scheme.split('/').next().unwrap_or_default().to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_found_in_every_place_docker_keeps_them() {
        let config = serde_json::json!({
            "auths": {
                "https://123456789012.dkr.ecr.us-east-1.amazonaws.com/v1/": { "auth": "c2VjcmV0" },
                "ghcr.io": { "identitytoken": "tok" },
                "quay.io": {}
            },
            "credHelpers": { "987654321098.dkr.ecr.eu-west-1.amazonaws.com": "ecr-login" },
            "credsStore": "desktop"
        });
        let (found, store) = stored_credentials(&config);
        assert_eq!(
            found,
            vec![
                ("ghcr.io".to_string(), Stored::InFile),
                ("123456789012.dkr.ecr.us-east-1.amazonaws.com".to_string(), Stored::InFile),
                (
                    "987654321098.dkr.ecr.eu-west-1.amazonaws.com".to_string(),
                    Stored::Helper { helper: "ecr-login".into() }
                ),
            ]
        );
        assert_eq!(store.as_deref(), Some("desktop"));
    }

    #[test]
    fn hosts_are_normalized() {
        assert_eq!(normalize_host("https://Index.Docker.io/v1/"), "index.docker.io");
        assert_eq!(normalize_host("registry.example.com:5000"), "registry.example.com:5000");
    }
}
