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
        let plan = endpoint::plan(env, std::env::consts::OS);
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
    // One request proves the engine answers and settles the API version: older engines (Debian's
    // 20.10 speaks API 1.41) refuse bollard's newer default.
    match tokio::time::timeout(PING_TIMEOUT, docker.negotiate_version()).await {
        Err(_) => Err(NoEngine::TimedOut { seconds: PING_TIMEOUT.as_secs() }),
        Ok(Err(e)) => Err(NoEngine::Refused(engine_message(&e))),
        Ok(Ok(docker)) => Ok(docker),
    }
}
