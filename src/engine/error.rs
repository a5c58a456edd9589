//! What went wrong with a request to the engine. Made once from bollard's errors, in this module;
//! callers match on the variants, and `Display` is what people read.

use crate::error::Error;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// The engine did not answer `what` in time.
    #[error("the Docker engine at {endpoint} did not answer {what} within {seconds}s")]
    TimedOut { endpoint: String, what: String, seconds: u64 },
    /// A stream (a pull) stopped moving for `seconds`.
    #[error("no progress from the engine for {seconds}s")]
    Stalled { seconds: u64 },
    /// A published port is held by something else.
    #[error("port {port} on 127.0.0.1 is already in use, so the registry cannot listen there")]
    PortInUse { port: u16 },
    /// The engine answered `what` with an error status, in its own words.
    #[error("{what} failed: {message}")]
    Refused { what: String, status: u16, message: String },
    /// A pull that the engine ended with an error, in its own words (the stream has no status).
    #[error("{message}")]
    PullRefused { message: String },
    /// The request failed on the way: the connection dropped, or bollard could not read the answer.
    #[error("{what} failed: {message}")]
    Failed { what: String, message: String },
}

impl EngineError {
    /// What bollard's `err` says happened to `what`.
    pub(super) fn of(what: &str, err: &bollard::errors::Error) -> EngineError {
        match err {
            bollard::errors::Error::DockerResponseServerError { status_code, message } => EngineError::Refused {
                what: what.to_string(),
                status: *status_code,
                message: message.trim().to_string(),
            },
            other => EngineError::Failed { what: what.to_string(), message: other.to_string() },
        }
    }

    /// `what` failed on the way, for this reason (an I/O error, an answer without what it needs).
    pub(super) fn failed(what: &str, reason: impl std::fmt::Display) -> EngineError {
        EngineError::Failed { what: what.to_string(), message: reason.to_string() }
    }

    /// What to do next, where there is something to say.
    pub fn hint(&self) -> Option<String> {
        match self {
            EngineError::TimedOut { .. } | EngineError::Stalled { .. } => {
                Some("The engine is running but not answering. Restart Docker, then run `devbox doctor`.".into())
            }
            // The same advice as for a port found busy before the engine is asked.
            EngineError::PortInUse { port } => Error::PortBusy { port: *port }.hint(),
            EngineError::Refused { .. } | EngineError::PullRefused { .. } | EngineError::Failed { .. } => None,
        }
    }
}

/// What to do next about `err`: the hint of the first expected error in its chain, whether it is
/// devbox's own (`Error`) or the engine's (`EngineError`). It lives here, the lowest module that
/// knows both.
pub fn hint_of(err: &anyhow::Error) -> Option<String> {
    err.chain().find_map(|cause| {
        if let Some(known) = cause.downcast_ref::<crate::error::Error>() {
            Some(known.hint())
        } else {
            cause.downcast_ref::<crate::engine::EngineError>().map(crate::engine::EngineError::hint)
        }
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bollard_errors_become_what_happened() {
        let answer =
            bollard::errors::Error::DockerResponseServerError { status_code: 409, message: " in use \n".into() };
        assert_eq!(
            EngineError::of("removing container x", &answer),
            EngineError::Refused { what: "removing container x".into(), status: 409, message: "in use".into() }
        );
        assert_eq!(EngineError::of("x", &answer).to_string(), "x failed: in use");
        let busy = EngineError::PortInUse { port: 5000 };
        assert!(busy.hint().is_some_and(|h| h.contains("lsof -iTCP:5000")), "{busy:?}");
        assert!(EngineError::failed("x", "gone").hint().is_none());
    }
}
