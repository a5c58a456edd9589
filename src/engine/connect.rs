//! Finding the engine: each candidate endpoint in turn, until one answers.

use std::time::Duration;

use bollard::Docker;

use super::{DEFAULT_TIMEOUT, Engine, endpoint, engine_message};
use crate::env::Environment;
use crate::error::{Attempt, Error};

/// How long one candidate endpoint has to answer a ping during discovery.
const PING_TIMEOUT: Duration = Duration::from_secs(3);

impl Engine {
    /// Finds and connects to the engine, trying each place in turn. The error names every place tried.
    pub async fn connect(env: &Environment) -> Result<Engine, Error> {
        let mut plan = endpoint::plan(env, std::env::consts::OS);
        if plan.discovering && env.finds_program("podman") {
            endpoint::add_podman_inspected(&mut plan, podman_machine_sockets().await);
        }
        let mut tried: Vec<Attempt> =
            plan.notes.into_iter().map(|(place, outcome)| Attempt { place, outcome }).collect();
        for candidate in plan.candidates {
            let place = format!("{} ({})", candidate.host, candidate.origin);
            match try_connect(&candidate.host).await {
                Ok(docker) => {
                    return Ok(Engine { docker, endpoint: candidate.host, timeout: DEFAULT_TIMEOUT });
                }
                Err(why) => tried.push(Attempt { place, outcome: why.to_string() }),
            }
        }
        Err(Error::EngineUnreachable { tried })
    }
}

/// Why one candidate endpoint gave no engine.
#[derive(Debug, thiserror::Error)]
enum NoEngine {
    #[error("no socket there")]
    NoSocket,
    #[error(
        "unsupported scheme: devbox speaks unix://, tcp:// and npipe:// (for ssh://, forward the socket and use unix://)"
    )]
    UnsupportedScheme,
    #[error("no answer within {seconds}s")]
    TimedOut { seconds: u64 },
    #[error("it answered a ping, but not its version within {seconds}s")]
    VersionTimedOut { seconds: u64 },
    /// bollard refused the address, or the engine refused the version request: in their words.
    #[error("{0}")]
    Refused(String),
}

async fn try_connect(host: &str) -> Result<Docker, NoEngine> {
    // bollard's own limit is the longest devbox allows one request (a container start); each call
    // is bounded by devbox's own timeout for its kind (`Engine::call_raw_for`).
    let timeout = super::START_TIMEOUT.as_secs() + 10;
    let docker = if let Some(path) = host.strip_prefix("unix://") {
        if !std::path::Path::new(path).exists() {
            return Err(NoEngine::NoSocket);
        }
        Docker::connect_with_unix(path, timeout, bollard::API_DEFAULT_VERSION)
    } else if host.starts_with("tcp://") || host.starts_with("http://") {
        Docker::connect_with_http(host, timeout, bollard::API_DEFAULT_VERSION)
    } else if host.starts_with("npipe://") {
        Docker::connect_with_host(host)
    } else {
        return Err(NoEngine::UnsupportedScheme);
    }
    .map_err(|e| NoEngine::Refused(e.to_string()))?;
    // A ping proves the engine answers, quickly; then its version settles the API version: older
    // engines (Debian's 20.10 speaks API 1.41) refuse bollard's newer default. The version gets the
    // ordinary request's time: podman gathers it by running its helpers (conmon, crun), which takes
    // seconds in a slow VM where the ping takes milliseconds.
    match tokio::time::timeout(PING_TIMEOUT, docker.ping()).await {
        Err(_) => return Err(NoEngine::TimedOut { seconds: PING_TIMEOUT.as_secs() }),
        Ok(Err(e)) => return Err(NoEngine::Refused(engine_message(&e))),
        Ok(Ok(_)) => {}
    }
    match tokio::time::timeout(DEFAULT_TIMEOUT, docker.negotiate_version()).await {
        Err(_) => Err(NoEngine::VersionTimedOut { seconds: DEFAULT_TIMEOUT.as_secs() }),
        Ok(Err(e)) => Err(NoEngine::Refused(engine_message(&e))),
        Ok(Ok(docker)) => Ok(docker),
    }
}

/// How long `podman machine inspect` may take.
const PODMAN_INSPECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The API sockets of podman's machines, as podman itself reports them.
async fn podman_machine_sockets() -> Result<Vec<String>, String> {
    let inspect = tokio::process::Command::new("podman")
        .args(["machine", "inspect", "--format", "{{.ConnectionInfo.PodmanSocket.Path}}"])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(PODMAN_INSPECT_TIMEOUT, inspect).await {
        Err(_) => Err(format!("no answer within {}s", PODMAN_INSPECT_TIMEOUT.as_secs())),
        Ok(Err(e)) => Err(format!("it did not run: {e}")),
        Ok(Ok(out)) if !out.status.success() => {
            Err(format!("it failed: {}", String::from_utf8_lossy(&out.stderr).trim()))
        }
        Ok(Ok(out)) => match endpoint::podman_inspect_paths(&String::from_utf8_lossy(&out.stdout)) {
            paths if paths.is_empty() => Err("it names no machine (podman machine init)".into()),
            paths => Ok(paths),
        },
    }
}
