//! Where the Docker engine is: `DOCKER_HOST`, then the current docker context, then the sockets
//! that the common engines create. bollard does not read docker contexts, so this does.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::env::Environment;

/// A place to try, and how devbox came to it.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// `unix:///path`, `tcp://host:port`, `npipe:////./pipe/name`, …
    pub host: String,
    pub origin: String,
}

/// What to try, in order. An explicit choice (`DOCKER_HOST` or a context) is the only candidate:
/// a user who named an engine wants that engine, not a silent fallback to another.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub candidates: Vec<Candidate>,
    /// Places looked at that gave no candidate, for the error message (e.g. "DOCKER_HOST unset").
    pub notes: Vec<(String, String)>,
}

pub fn plan(env: &Environment, os: &str) -> Plan {
    let mut notes = Vec::new();
    if let Some(host) = env.var("DOCKER_HOST") {
        return Plan { candidates: vec![Candidate { host: host.to_string(), origin: "DOCKER_HOST".into() }], notes };
    }
    notes.push(("DOCKER_HOST".into(), "unset".into()));

    let docker_config = crate::docker_config::dir(env);
    let (context, context_origin) = match env.var("DOCKER_CONTEXT") {
        Some(name) => (Some(name.to_string()), "DOCKER_CONTEXT"),
        None => (docker_config.as_deref().and_then(current_context), "docker config currentContext"),
    };
    match context {
        Some(name) if name != "default" => {
            let origin = format!("context {name:?} ({context_origin})");
            return match docker_config.as_deref().map(|dir| context_host(dir, &name)) {
                Some(Ok(host)) => Plan { candidates: vec![Candidate { host, origin }], notes },
                Some(Err(why)) => {
                    notes.push((origin, why));
                    Plan { candidates: Vec::new(), notes }
                }
                None => {
                    notes.push((origin, "no docker config directory (HOME unset)".into()));
                    Plan { candidates: Vec::new(), notes }
                }
            };
        }
        _ => notes.push(("context \"default\"".into(), "uses the well-known sockets".into())),
    }

    let candidates =
        well_known(env, os).into_iter().map(|(host, origin)| Candidate { host, origin: origin.into() }).collect();
    Plan { candidates, notes }
}

fn current_context(docker_config: &Path) -> Option<String> {
    let text = std::fs::read_to_string(docker_config.join("config.json")).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json.get("currentContext")?.as_str().filter(|s| !s.is_empty()).map(String::from)
}

/// The docker CLI stores a context's endpoint in `contexts/meta/<sha256 of its name>/meta.json`.
fn context_host(docker_config: &Path, name: &str) -> Result<String, String> {
    let digest = hex::encode(Sha256::digest(name.as_bytes()));
    let meta = docker_config.join("contexts/meta").join(digest).join("meta.json");
    let text = std::fs::read_to_string(&meta)
        .map_err(|e| format!("cannot read {}: {e}; list contexts with `docker context ls`", meta.display()))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{} is not valid JSON: {e}", meta.display()))?;
    json.pointer("/Endpoints/docker/Host")
        .and_then(|h| h.as_str())
        .map(String::from)
        .ok_or_else(|| format!("{} names no docker endpoint", meta.display()))
}

/// The sockets that Docker Desktop, colima, OrbStack, Rancher Desktop, rootless Docker and podman
/// create, most common first.
fn well_known(env: &Environment, os: &str) -> Vec<(String, &'static str)> {
    if os == "windows" {
        return vec![
            ("npipe:////./pipe/docker_engine".into(), "Docker Desktop"),
            ("npipe:////./pipe/podman-machine-default".into(), "podman machine"),
        ];
    }
    let mut sockets: Vec<(PathBuf, &'static str)> = vec![(PathBuf::from("/var/run/docker.sock"), "default socket")];
    if let Some(home) = env.home() {
        sockets.extend([
            (home.join(".docker/run/docker.sock"), "Docker Desktop"),
            (home.join(".docker/desktop/docker.sock"), "Docker Desktop"),
            (home.join(".colima/default/docker.sock"), "colima"),
            (home.join(".colima/docker.sock"), "colima"),
            (home.join(".orbstack/run/docker.sock"), "OrbStack"),
            (home.join(".rd/docker.sock"), "Rancher Desktop"),
            (home.join(".local/share/containers/podman/machine/podman.sock"), "podman machine"),
        ]);
    }
    if let Some(runtime) = env.var("XDG_RUNTIME_DIR") {
        sockets.push((Path::new(runtime).join("docker.sock"), "rootless Docker"));
        sockets.push((Path::new(runtime).join("podman/podman.sock"), "podman"));
    }
    sockets.push((PathBuf::from("/run/podman/podman.sock"), "podman"));
    sockets.into_iter().map(|(path, origin)| (format!("unix://{}", path.display()), origin)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_host_wins_and_is_the_only_candidate() {
        let env = Environment::default().with("DOCKER_HOST", "tcp://127.0.0.1:2375").with("DOCKER_CONTEXT", "colima");
        let plan = plan(&env, "linux");
        assert_eq!(plan.candidates.len(), 1);
        assert_eq!(plan.candidates[0].host, "tcp://127.0.0.1:2375");
        assert_eq!(plan.candidates[0].origin, "DOCKER_HOST");
    }

    #[test]
    fn the_current_context_is_read_from_its_meta_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join(".docker");
        let digest = hex::encode(Sha256::digest(b"colima"));
        let meta_dir = config.join("contexts/meta").join(digest);
        std::fs::create_dir_all(&meta_dir).expect("mkdir");
        std::fs::write(config.join("config.json"), r#"{"auths":{},"currentContext":"colima"}"#).expect("write");
        std::fs::write(
            meta_dir.join("meta.json"),
            r#"{"Name":"colima","Endpoints":{"docker":{"Host":"unix:///Users/x/.colima/default/docker.sock"}}}"#,
        )
        .expect("write");
        let env = Environment::default().with("HOME", dir.path().to_str().expect("utf-8"));
        let plan = plan(&env, "macos");
        assert_eq!(
            plan.candidates,
            vec![Candidate {
                host: "unix:///Users/x/.colima/default/docker.sock".into(),
                origin: "context \"colima\" (docker config currentContext)".into(),
            }]
        );
    }

    #[test]
    fn a_missing_context_is_a_note_not_a_fallback() {
        let dir = tempfile::tempdir().expect("tempdir");
        let env =
            Environment::default().with("HOME", dir.path().to_str().expect("utf-8")).with("DOCKER_CONTEXT", "nope");
        let plan = plan(&env, "linux");
        assert!(plan.candidates.is_empty());
        assert!(plan.notes.iter().any(|(place, why)| place.contains("nope") && why.contains("docker context ls")));
    }

    #[test]
    fn without_a_choice_the_well_known_sockets_are_tried() {
        let env = Environment::default().with("HOME", "/home/dev").with("XDG_RUNTIME_DIR", "/run/user/1000");
        let hosts: Vec<String> = plan(&env, "linux").candidates.into_iter().map(|c| c.host).collect();
        assert_eq!(hosts[0], "unix:///var/run/docker.sock");
        assert!(hosts.contains(&"unix:///home/dev/.docker/run/docker.sock".to_string()));
        assert!(hosts.contains(&"unix:///home/dev/.colima/default/docker.sock".to_string()));
        assert!(hosts.contains(&"unix:///run/user/1000/podman/podman.sock".to_string()));
        let windows: Vec<String> = plan(&env, "windows").candidates.into_iter().map(|c| c.host).collect();
        assert_eq!(windows[0], "npipe:////./pipe/docker_engine");
    }
}
