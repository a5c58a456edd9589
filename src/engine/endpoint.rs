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
    /// No explicit choice: the well-known sockets, to which `podman machine inspect` may add.
    pub discovering: bool,
}

pub fn plan(env: &Environment, os: &str) -> Plan {
    let mut notes = Vec::new();
    if let Some(host) = env.var("DOCKER_HOST") {
        let candidates = vec![Candidate { host: host.to_string(), origin: "DOCKER_HOST".into() }];
        return Plan { candidates, notes, discovering: false };
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
                Some(Ok(host)) => Plan { candidates: vec![Candidate { host, origin }], notes, discovering: false },
                Some(Err(why)) => {
                    notes.push((origin, why.to_string()));
                    Plan { candidates: Vec::new(), notes, discovering: false }
                }
                None => {
                    notes.push((origin, "no docker config directory (HOME unset)".into()));
                    Plan { candidates: Vec::new(), notes, discovering: false }
                }
            };
        }
        _ => notes.push(("context \"default\"".into(), "uses the well-known sockets".into())),
    }

    let candidates =
        well_known(env, os).into_iter().map(|(host, origin)| Candidate { host, origin: origin.into() }).collect();
    Plan { candidates, notes, discovering: true }
}

/// podman 5's own word on where its machine's API is (`podman machine inspect`, run by `connect`
/// when `podman` is on PATH), added to a plan that is still discovering: after the sockets of the
/// same name already listed, in place of podman's fixed guesses, and without duplicates.
pub fn add_podman_inspected(plan: &mut Plan, inspected: Result<Vec<String>, impl std::fmt::Display>) {
    if !plan.discovering {
        return;
    }
    match inspected {
        Ok(paths) => {
            let at =
                plan.candidates.iter().position(|c| c.origin.starts_with("podman")).unwrap_or(plan.candidates.len());
            let new: Vec<Candidate> = paths
                .into_iter()
                .map(|path| Candidate { host: format!("unix://{path}"), origin: PODMAN_INSPECT.into() })
                .filter(|c| !plan.candidates.iter().any(|known| known.host == c.host))
                .collect();
            plan.candidates.splice(at..at, new);
        }
        Err(why) => plan.notes.push((PODMAN_INSPECT.into(), why.to_string())),
    }
}

pub const PODMAN_INSPECT: &str = "podman machine inspect";

/// The API sockets that `podman machine inspect --format '{{.ConnectionInfo.PodmanSocket.Path}}'`
/// prints, one per machine and line.
pub fn podman_inspect_paths(output: &str) -> Vec<String> {
    output.lines().map(str::trim).filter(|l| l.starts_with('/')).map(String::from).collect()
}

fn current_context(docker_config: &Path) -> Option<String> {
    let text = std::fs::read_to_string(docker_config.join("config.json")).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json.get("currentContext")?.as_str().filter(|s| !s.is_empty()).map(String::from)
}

/// Why a docker context named no endpoint.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("cannot read {}: {source}; list contexts with `docker context ls`", .meta.display())]
    Unreadable { meta: PathBuf, source: std::io::Error },
    #[error("{} is not valid JSON: {source}", .meta.display())]
    NotJson { meta: PathBuf, source: serde_json::Error },
    #[error("{} names no docker endpoint", .meta.display())]
    NoEndpoint { meta: PathBuf },
}

/// The docker CLI stores a context's endpoint in `contexts/meta/<sha256 of its name>/meta.json`.
fn context_host(docker_config: &Path, name: &str) -> Result<String, ContextError> {
    let digest = hex::encode(Sha256::digest(name.as_bytes()));
    let meta = docker_config.join("contexts/meta").join(digest).join("meta.json");
    let text = match std::fs::read_to_string(&meta) {
        Ok(text) => text,
        Err(source) => return Err(ContextError::Unreadable { meta, source }),
    };
    let json: serde_json::Value = match serde_json::from_str(&text) {
        Ok(json) => json,
        Err(source) => return Err(ContextError::NotJson { meta, source }),
    };
    match json.pointer("/Endpoints/docker/Host").and_then(|h| h.as_str()) {
        Some(host) => Ok(host.to_string()),
        None => Err(ContextError::NoEndpoint { meta }),
    }
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
        ]);
    }
    // podman 5 serves its machine's API at <runtime dir>/podman/<machine>-api.sock: $TMPDIR on
    // macOS, $XDG_RUNTIME_DIR on Linux. The default machine first, then any other machine's.
    let podman_runtime = if os == "macos" { env.var("TMPDIR") } else { env.var("XDG_RUNTIME_DIR") };
    if let Some(runtime) = podman_runtime {
        let dir = Path::new(runtime).join("podman");
        sockets.push((dir.join(format!("{PODMAN_DEFAULT_MACHINE}-api.sock")), "podman machine"));
        sockets.extend(other_machine_sockets(&dir).into_iter().map(|path| (path, "podman machine")));
    }
    if let Some(home) = env.home() {
        // podman 4's machine socket.
        sockets.push((home.join(".local/share/containers/podman/machine/podman.sock"), "podman machine"));
    }
    if let Some(runtime) = env.var("XDG_RUNTIME_DIR") {
        sockets.push((Path::new(runtime).join("docker.sock"), "rootless Docker"));
        sockets.push((Path::new(runtime).join("podman/podman.sock"), "podman"));
    }
    sockets.push((PathBuf::from("/run/podman/podman.sock"), "podman"));
    sockets.into_iter().map(|(path, origin)| (format!("unix://{}", path.display()), origin)).collect()
}

const PODMAN_DEFAULT_MACHINE: &str = "podman-machine-default";

/// The API sockets of machines other than the default one in podman's runtime directory, sorted.
fn other_machine_sockets(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with("-api.sock") && n != format!("{PODMAN_DEFAULT_MACHINE}-api.sock"))
        })
        .collect();
    found.sort();
    found
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

    #[test]
    fn podman_5_machine_sockets_are_in_its_runtime_dir() {
        let dir = tempfile::tempdir().expect("tempdir");
        let runtime = dir.path().to_str().expect("utf-8");
        std::fs::create_dir_all(dir.path().join("podman")).expect("mkdir");
        std::fs::write(dir.path().join("podman/work-api.sock"), "").expect("write");
        std::fs::write(dir.path().join("podman/gvproxy.sock"), "").expect("write");
        let env = Environment::default().with("HOME", "/home/dev").with("XDG_RUNTIME_DIR", runtime);
        let hosts: Vec<String> = plan(&env, "linux").candidates.into_iter().map(|c| c.host).collect();
        let default = format!("unix://{runtime}/podman/podman-machine-default-api.sock");
        let work = format!("unix://{runtime}/podman/work-api.sock");
        let position = |host: &str| hosts.iter().position(|h| h == host).unwrap_or_else(|| panic!("{host}: {hosts:?}"));
        assert!(position(&default) < position(&work), "the default machine first: {hosts:?}");
        assert!(position(&work) < position("unix:///home/dev/.local/share/containers/podman/machine/podman.sock"));
        assert!(!hosts.iter().any(|h| h.contains("gvproxy")), "{hosts:?}");
        // On macOS, podman's runtime dir is $TMPDIR.
        let mac = Environment::default().with("HOME", "/Users/ann").with("TMPDIR", "/var/folders/x1/T");
        let hosts: Vec<String> = plan(&mac, "macos").candidates.into_iter().map(|c| c.host).collect();
        assert!(hosts.contains(&"unix:///var/folders/x1/T/podman/podman-machine-default-api.sock".to_string()));
    }

    #[test]
    fn podman_machine_inspect_adds_its_sockets_to_discovery_only() {
        let env = Environment::default().with("HOME", "/home/dev");
        let mut found = plan(&env, "linux");
        let listed = "/run/user/1000/podman/podman-machine-default-api.sock\n/tmp/other-api.sock\n";
        add_podman_inspected(&mut found, Ok::<_, String>(podman_inspect_paths(listed)));
        let inspected: Vec<&str> =
            found.candidates.iter().filter(|c| c.origin == PODMAN_INSPECT).map(|c| c.host.as_str()).collect();
        assert_eq!(
            inspected,
            ["unix:///run/user/1000/podman/podman-machine-default-api.sock", "unix:///tmp/other-api.sock"]
        );
        let first_podman = found.candidates.iter().position(|c| c.origin.starts_with("podman")).expect("podman");
        assert_eq!(found.candidates[first_podman].origin, PODMAN_INSPECT, "podman's own word before the guesses");
        // A failed inspect is a note for the error; an explicit choice is left alone.
        let mut failed = plan(&env, "linux");
        add_podman_inspected(&mut failed, Err::<Vec<String>, _>("it failed: no machine"));
        assert!(failed.notes.contains(&(PODMAN_INSPECT.to_string(), "it failed: no machine".to_string())));
        let mut chosen = plan(&env.clone().with("DOCKER_HOST", "unix:///x.sock"), "linux");
        add_podman_inspected(&mut chosen, Ok::<_, String>(vec!["/tmp/other-api.sock".into()]));
        assert_eq!(chosen.candidates.len(), 1);
        assert!(podman_inspect_paths("Error: no machine\n").is_empty());
    }
}
