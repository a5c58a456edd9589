//! Finding the engine: each candidate endpoint in turn, until one answers.

use std::time::Duration;

use bollard::{ClientVersion, Docker};

use super::{DEFAULT_TIMEOUT, Engine, endpoint, engine_message};
use crate::env::Environment;
use crate::error::{Attempt, Error};
use crate::http::NoAnswer;

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
            plan.notes.into_iter().map(|(place, outcome)| Attempt { place, outcome, denied: false }).collect();
        for candidate in plan.candidates {
            let place = format!("{} ({})", candidate.host, candidate.origin);
            match try_connect(&candidate.host).await {
                Ok(docker) => {
                    return Ok(Engine { docker, endpoint: candidate.host, timeout: DEFAULT_TIMEOUT });
                }
                Err(why) => {
                    let denied = matches!(why, NoEngine::Denied);
                    tried.push(Attempt { place, outcome: why.to_string(), denied });
                }
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
    #[error("permission denied: this user may not open the socket")]
    Denied,
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
    if let Some(path) = host.strip_prefix("unix://") {
        if !std::path::Path::new(path).exists() {
            return Err(NoEngine::NoSocket);
        }
        let api = ping(Some(std::path::Path::new(path)), "http://docker/_ping").await?;
        at_version(api, |version| Docker::connect_with_unix(path, timeout, version)).await
    } else if host.starts_with("tcp://") || host.starts_with("http://") {
        let url = format!("{}/_ping", host.replacen("tcp://", "http://", 1).trim_end_matches('/'));
        let api = ping(None, &url).await?;
        at_version(api, |version| Docker::connect_with_http(host, timeout, version)).await
    } else if host.starts_with("npipe://") {
        let docker = Docker::connect_with_host(host).map_err(|e| NoEngine::Refused(e.to_string()))?;
        match tokio::time::timeout(PING_TIMEOUT, docker.ping()).await {
            Err(_) => return Err(NoEngine::TimedOut { seconds: PING_TIMEOUT.as_secs() }),
            Ok(Err(e)) => return Err(NoEngine::Refused(engine_message(&e))),
            Ok(Ok(_)) => {}
        }
        negotiate(docker).await
    } else {
        Err(NoEngine::UnsupportedScheme)
    }
}

/// The client, speaking the API version the ping named; without one, bollard's newest until
/// `/version` settles it.
async fn at_version(
    api: Option<ClientVersion>,
    connect: impl Fn(&ClientVersion) -> Result<Docker, bollard::errors::Error>,
) -> Result<Docker, NoEngine> {
    let refused = |e: bollard::errors::Error| NoEngine::Refused(e.to_string());
    match api {
        Some(api) => connect(&api).map_err(refused),
        None => negotiate(connect(bollard::API_DEFAULT_VERSION).map_err(refused)?).await,
    }
}

/// A ping proves the engine answers, quickly, and its `Api-Version` header names the newest API
/// the engine speaks: older engines (Debian's 20.10 speaks 1.41) refuse bollard's newer default.
/// `Some(version)` is what devbox will speak: the older of the two. `None` when the engine sent no
/// such header, so `/version` must settle it. The ping is the cheapest request that tells:
/// `GET /version` makes dockerd ask containerd and runc, and podman run its helpers (70 ms and
/// 1.2 s in the testbed's emulated VMs, where a ping takes 3 ms).
async fn ping(socket: Option<&std::path::Path>, url: &str) -> Result<Option<ClientVersion>, NoEngine> {
    let client = crate::http::engine(socket, PING_TIMEOUT).map_err(|e| NoEngine::Refused(format!("{e:#}")))?;
    let response = client.get(url).send().await.map_err(|e| match NoAnswer::of(&e, PING_TIMEOUT) {
        NoAnswer::TimedOut { seconds } => NoEngine::TimedOut { seconds },
        NoAnswer::Denied => NoEngine::Denied,
        other => NoEngine::Refused(other.to_string()),
    })?;
    let header = response.headers().get("api-version").and_then(|v| v.to_str().ok());
    Ok(header.and_then(api_version).map(|server| older(server, bollard::API_DEFAULT_VERSION)))
}

/// The API version in an `Api-Version` header ("1.41"), if it is one.
fn api_version(header: &str) -> Option<ClientVersion> {
    let (major, minor) = header.trim().split_once('.')?;
    Some(ClientVersion { major_version: major.parse().ok()?, minor_version: minor.parse().ok()? })
}

/// The older of two API versions.
fn older(a: ClientVersion, b: &ClientVersion) -> ClientVersion {
    if a <= *b { a } else { *b }
}

/// The API version from `GET /version`, for an engine whose ping did not say it. It gets the
/// ordinary request's time: podman gathers it by running its helpers (conmon, crun), which takes
/// seconds in a slow VM.
async fn negotiate(docker: Docker) -> Result<Docker, NoEngine> {
    match tokio::time::timeout(DEFAULT_TIMEOUT, docker.negotiate_version()).await {
        Err(_) => Err(NoEngine::VersionTimedOut { seconds: DEFAULT_TIMEOUT.as_secs() }),
        Ok(Err(e)) => Err(NoEngine::Refused(engine_message(&e))),
        Ok(Ok(docker)) => Ok(docker),
    }
}

/// How long `podman machine inspect` may take.
const PODMAN_INSPECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The API sockets of podman's machines, as podman itself reports them.
async fn podman_machine_sockets() -> Result<Vec<String>, PodmanInspectError> {
    let inspect = tokio::process::Command::new("podman")
        .args(["machine", "inspect", "--format", "{{.ConnectionInfo.PodmanSocket.Path}}"])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(PODMAN_INSPECT_TIMEOUT, inspect).await {
        Err(_) => Err(PodmanInspectError::TimedOut(PODMAN_INSPECT_TIMEOUT)),
        Ok(Err(e)) => Err(PodmanInspectError::NotRun(e)),
        Ok(Ok(out)) if !out.status.success() => {
            Err(PodmanInspectError::Failed { stderr: String::from_utf8_lossy(&out.stderr).trim().to_string() })
        }
        Ok(Ok(out)) => match endpoint::podman_inspect_paths(&String::from_utf8_lossy(&out.stdout)) {
            paths if paths.is_empty() => Err(PodmanInspectError::NoMachine),
            paths => Ok(paths),
        },
    }
}

/// Why `podman machine inspect` named no socket.
#[derive(Debug, thiserror::Error)]
pub enum PodmanInspectError {
    #[error("no answer within {}s", .0.as_secs())]
    TimedOut(Duration),
    #[error("it did not run: {0}")]
    NotRun(std::io::Error),
    #[error("it failed: {stderr}")]
    Failed { stderr: String },
    #[error("it names no machine (podman machine init)")]
    NoMachine,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_version_is_the_older_of_the_engines_and_bollards() {
        let v = |s| api_version(s).map(|v| (v.major_version, v.minor_version));
        assert_eq!(v("1.41"), Some((1, 41)));
        assert_eq!(v(" 1.53 "), Some((1, 53)));
        assert_eq!(v("1"), None);
        assert_eq!(v("one.41"), None);
        assert_eq!(v(""), None);
        let newest = ClientVersion { major_version: 1, minor_version: 53 };
        let pick = |a, b| {
            let v = older(api_version(a).expect("version"), &api_version(b).expect("version"));
            format!("{v}")
        };
        assert_eq!(pick("1.41", "1.53"), "1.41");
        assert_eq!(pick("1.99", "1.53"), "1.53");
        assert_eq!(pick("2.0", "1.53"), "1.53");
        assert_eq!(format!("{}", older(ClientVersion { major_version: 1, minor_version: 44 }, &newest)), "1.44");
    }
}
