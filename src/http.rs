//! The one home of HTTP clients. Only this file builds a `reqwest::Client`; there are two kinds.
//!
//! - [`loopback`]: services on this machine (the local registry, an S3-compatible store or a feed on
//!   127.0.0.1). No proxy, since a proxy would have to come back to this machine; and no TLS trust
//!   store, since these speak plain HTTP and loading the system's certificates costs more than the
//!   requests themselves (it showed in `doctor`'s timing).
//! - [`outside`]: everything else (a team config on HTTPS, a release feed, S3's clock). The proxies in
//!   `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY` are honoured, as curl honours them;
//!   TLS is rustls with the platform's trust store.
//!
//! - [`engine`]: a Docker engine's API, for the one request devbox makes outside bollard (the
//!   ping that tells the engine's API version): plain HTTP over its unix socket or TCP address, no
//!   proxy (bollard uses none), no TLS trust store.
//!
//! All have a connect timeout and an overall timeout per request; the caller says how long a whole
//! request may take, since a version check and a download differ.

use std::time::Duration;

use anyhow::Context;

/// How long connecting to this machine may take: it is immediate or refused.
const LOOPBACK_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long connecting to another machine may take, DNS and TLS handshake included.
const OUTSIDE_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether a request follows redirects. Reading a server's `Date` header wants the first answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redirects {
    Follow,
    None,
}

/// How many redirects a request follows, as reqwest's default policy.
const MAX_REDIRECTS: usize = 10;

impl Redirects {
    fn policy(self) -> reqwest::redirect::Policy {
        match self {
            // Each hop must pass the rule its first URL passed: a redirect never leaves HTTPS
            // (nor plain HTTP on this machine) for plain HTTP elsewhere.
            Redirects::Follow => reqwest::redirect::Policy::custom(|attempt| {
                let from = attempt.previous().last().map(|u| u.as_str()).unwrap_or_default();
                if attempt.previous().len() > MAX_REDIRECTS {
                    attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
                } else if let Err(reason) = redirect_allowed(from, attempt.url().as_str()) {
                    attempt.error(reason)
                } else {
                    attempt.follow()
                }
            }),
            Redirects::None => reqwest::redirect::Policy::none(),
        }
    }
}

/// Whether `url` may be fetched at all: HTTPS, or plain HTTP to this machine only. The rule is
/// the config's (`update.url` and `registry.s3.endpoint` are held to it where they are read), so
/// that it is one rule; here it also judges each redirect.
pub use crate::config::require_https;

/// Whether a redirect from `from` to `to` may be followed: `to` must itself be allowed, and an
/// HTTPS answer never sends us to plain HTTP, not even on this machine.
fn redirect_allowed(from: &str, to: &str) -> Result<(), String> {
    let https = |u: &str| u.get(..8).is_some_and(|s| s.eq_ignore_ascii_case("https://"));
    if https(from) && !https(to) {
        return Err(format!("{from} redirected to {to}: a redirect from HTTPS to plain HTTP is refused"));
    }
    require_https(to).map_err(|reason| format!("{from} redirected to {to}, refused: {reason}"))
}

/// A client for services on this machine: no proxy, no TLS trust store, a short connect timeout.
pub fn loopback(timeout: Duration, redirects: Redirects) -> anyhow::Result<reqwest::Client> {
    loopback_builder(timeout, redirects).build().context("building the HTTP client")
}

/// What every client for this machine's services (and an engine's socket) is built from.
// The one home of `reqwest::Client::builder`.
#[allow(clippy::disallowed_methods)]
fn loopback_builder(timeout: Duration, redirects: Redirects) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(LOOPBACK_CONNECT_TIMEOUT.min(timeout))
        .redirect(redirects.policy())
        .no_proxy()
        .tls_certs_only([])
}

/// A client for the outside world: proxies from the environment, rustls with the platform's trust
/// store, and connect and overall timeouts.
// The one home of `reqwest::Client::builder`.
#[allow(clippy::disallowed_methods)]
pub fn outside(timeout: Duration, redirects: Redirects) -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(OUTSIDE_CONNECT_TIMEOUT.min(timeout))
        .redirect(redirects.policy())
        .build()
        .context("building the HTTP client")
}

/// A client for a Docker engine's API: over the unix socket `socket` when given, else to the TCP
/// address in each request's URL; as [`loopback`] otherwise (bollard uses no proxy either).
pub fn engine(socket: Option<&std::path::Path>, timeout: Duration) -> anyhow::Result<reqwest::Client> {
    let builder = loopback_builder(timeout, Redirects::None);
    let builder = match socket {
        #[cfg(unix)]
        Some(path) => builder.unix_socket(path),
        #[cfg(not(unix))]
        Some(path) => anyhow::bail!("{} is a unix socket, which this OS does not have", path.display()),
        None => builder,
    };
    builder.build().context("building the HTTP client")
}

/// The client that suits `url`: [`loopback`] for `http://` to this machine, else [`outside`].
pub fn for_url(url: &str, timeout: Duration, redirects: Redirects) -> anyhow::Result<reqwest::Client> {
    if is_loopback(url) { loopback(timeout, redirects) } else { outside(timeout, redirects) }
}

/// Whether `url` is plain HTTP to this machine (127.0.0.0/8, localhost or [::1]).
pub fn is_loopback(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else { return false };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let host = if host_port.starts_with('[') {
        host_port.split_inclusive(']').next().unwrap_or(host_port)
    } else {
        host_port.split(':').next().unwrap_or(host_port)
    };
    host == "localhost" || host == "[::1]" || host.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

/// Why a request got no answer. Made once from reqwest's error, here; callers match on it, and its
/// `Display` is the wording people read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoAnswer {
    #[error("no answer within {seconds}s")]
    TimedOut { seconds: u64 },
    #[error("cannot connect (connection refused, or no route)")]
    Refused,
    /// Anything else (a reset connection, a malformed answer), with its causes.
    #[error("{0}")]
    Failed(String),
}

impl NoAnswer {
    /// What `err` says happened to a request allowed `timeout`.
    pub fn of(err: &reqwest::Error, timeout: Duration) -> NoAnswer {
        if err.is_timeout() {
            NoAnswer::TimedOut { seconds: timeout.as_secs() }
        } else if err.is_connect() {
            NoAnswer::Refused
        } else {
            NoAnswer::Failed(crate::error::chain(err))
        }
    }
}

/// A reqwest error as people read it: a timeout or a refused connection in plain words, anything
/// else with its causes.
pub fn describe(err: &reqwest::Error, timeout: Duration) -> String {
    NoAnswer::of(err, timeout).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_http_to_this_machine_is_loopback() {
        assert!(is_loopback("http://127.0.0.1:5000/v2/"));
        assert!(is_loopback("http://127.0.0.2:9000"));
        assert!(is_loopback("http://localhost:9000/bucket"));
        assert!(is_loopback("http://[::1]:9000/bucket"));
        assert!(is_loopback("http://user:pw@127.0.0.1/feed"));
        assert!(!is_loopback("https://127.0.0.1:5000/v2/"));
        assert!(!is_loopback("http://127.0.0.1.example.com/"));
        assert!(!is_loopback("http://minio.lan:9000/bucket"));
        assert!(!is_loopback("https://s3.eu-west-1.amazonaws.com/acme"));
    }

    #[test]
    fn redirects_never_leave_https_for_plain_http() {
        assert_eq!(redirect_allowed("https://a.dev/x", "https://b.dev/y"), Ok(()));
        assert_eq!(redirect_allowed("http://127.0.0.1:1/x", "http://127.0.0.1:2/y"), Ok(()));
        assert!(
            redirect_allowed("https://a.dev/x", "http://a.dev/x").expect_err("down").contains("HTTPS to plain HTTP")
        );
        assert!(redirect_allowed("https://a.dev/x", "http://127.0.0.1/x").is_err());
        assert!(redirect_allowed("http://127.0.0.1/x", "http://evil.dev/x").is_err());
    }

    #[test]
    fn both_clients_build() {
        assert!(loopback(Duration::from_secs(1), Redirects::None).is_ok());
        assert!(outside(Duration::from_secs(1), Redirects::Follow).is_ok());
        assert!(engine(Some(std::path::Path::new("/run/docker.sock")), Duration::from_secs(1)).is_ok());
        assert!(engine(None, Duration::from_secs(1)).is_ok());
    }
}
