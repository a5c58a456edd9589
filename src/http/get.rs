//! One GET of a small file, whole: a feed's `latest`, a release's sums and signature, a team
//! config. The client that suits the URL, a bound on time and on size, and what went wrong as a
//! variant. The URL is the caller's to name (it may carry a password), so these errors never do.

use std::time::Duration;

use super::{NoAnswer, Redirects, for_url};

/// Why a GET gave no whole file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GetError {
    /// No client could be made for it (a company CA that does not load, a proxy that is not a URL).
    #[error("no HTTP client for it: {0}")]
    Client(String),
    #[error(transparent)]
    NoAnswer(#[from] NoAnswer),
    /// The server answered with a status other than success.
    #[error("HTTP {status}{}", reason_of(*status))]
    Status { status: u16 },
    /// Bigger than the file asked for can be: by its declared length, or by what arrived.
    #[error("{size} bytes, over the {limit}-byte limit for it")]
    TooLarge { size: u64, limit: u64 },
}

/// " Not Found" for 404: the words people know a status by, when it has them.
fn reason_of(status: u16) -> String {
    reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .map(|reason| format!(" {reason}"))
        .unwrap_or_default()
}

/// The body of `url`, whole, read within `timeout` and refused over `limit` bytes, following
/// redirects (never from https to plain http).
pub async fn get_bytes(url: &str, timeout: Duration, limit: u64) -> Result<Vec<u8>, GetError> {
    let client = for_url(url, timeout, Redirects::Follow).map_err(|e| GetError::Client(format!("{e:#}")))?;
    let response = client.get(url).send().await.map_err(|e| NoAnswer::of(&e, timeout))?;
    let status = response.status();
    if !status.is_success() {
        return Err(GetError::Status { status: status.as_u16() });
    }
    if let Some(size) = response.content_length().filter(|size| *size > limit) {
        return Err(GetError::TooLarge { size, limit });
    }
    let bytes = response.bytes().await.map_err(|e| NoAnswer::of(&e, timeout))?;
    let size = bytes.len() as u64;
    if size > limit {
        return Err(GetError::TooLarge { size, limit });
    }
    Ok(bytes.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_reads_as_people_know_it() {
        assert_eq!(GetError::Status { status: 404 }.to_string(), "HTTP 404 Not Found");
        assert_eq!(GetError::Status { status: 599 }.to_string(), "HTTP 599");
        assert_eq!(GetError::from(NoAnswer::TimedOut { seconds: 30 }).to_string(), "no answer within 30s");
        assert_eq!(
            GetError::TooLarge { size: 2_000_000, limit: 1_048_576 }.to_string(),
            "2000000 bytes, over the 1048576-byte limit for it"
        );
    }
}
