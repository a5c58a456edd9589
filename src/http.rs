//! The one home of HTTP clients. Only this file builds a `reqwest::Client`; there are two kinds.
//!
//! - [`loopback`]: services on this machine (the local registry, an S3-compatible store or a feed on
//!   127.0.0.1). No proxy, since a proxy would have to come back to this machine; and no TLS trust
//!   store, since these speak plain HTTP and loading the system's certificates costs more than the
//!   requests themselves (it showed in `doctor`'s timing).
//! - [`outside`]: everything else (a team config on HTTPS, a release feed, S3's clock). It goes
//!   through the proxy of the [`Network`] in force (`[network]`, else the environment as curl reads
//!   it), and TLS is rustls with the platform's trust store plus the company CAs.
//! - [`aws_sdk`]: the AWS SDK's HTTP client (S3, STS, SSO), with the same proxy and trust.
//!
//! - [`engine`]: a Docker engine's API, for the one request devbox makes outside bollard (the
//!   ping that tells the engine's API version): plain HTTP over its unix socket or TCP address, no
//!   proxy (bollard uses none), no TLS trust store.
//!
//! All have a connect timeout and an overall timeout per request; the caller says how long a whole
//! request may take, since a version check and a download differ.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;

use std::path::{Path, PathBuf};

use crate::network::{CompanyCa, Network};

mod get;
pub use get::{GetError, get_bytes};

/// The network settings in force: put here by whoever resolved the config (`use_network`), read
/// only by the client builders below. Before any config is loaded: no proxy, the OS's roots.
static NETWORK: RwLock<Option<Arc<Network>>> = RwLock::new(None);

/// Makes `network` the settings every outside client is built with from now on.
pub fn use_network(network: Network) {
    if let Ok(mut slot) = NETWORK.write() {
        *slot = Some(Arc::new(network));
    }
}

/// The network settings in force.
pub fn network() -> Arc<Network> {
    NETWORK.read().ok().and_then(|slot| slot.clone()).unwrap_or_default()
}

/// Resolves the network settings of `config` (read from `config_file`, whose directory relative CA
/// paths start from) with the environment, and makes them the ones every client is built with.
/// A CA file that is not PEM, or a proxy variable that is not a URL, is bad input (exit 2).
pub fn install_network(
    config: &crate::config::NetworkConfig,
    env: &crate::env::Environment,
    config_file: &Path,
) -> Result<(), crate::error::Error> {
    let dir = config_file.parent().unwrap_or(Path::new("."));
    let cas = read_cas(&config.ca_certificates, dir).map_err(|reason| {
        crate::error::Error::Usage(format!("network.ca_certificates: {reason}. Fix the path in devbox.toml."))
    })?;
    use_network(Network::resolve(config.proxy.as_ref(), &config.no_proxy, cas, env)?);
    Ok(())
}

/// Reads the CA files of `paths` (relative ones from `base`, the config file's directory). Each
/// must hold at least one PEM certificate: the error says which file is not, and why.
pub fn read_cas(paths: &[PathBuf], base: &Path) -> Result<Vec<CompanyCa>, String> {
    paths
        .iter()
        .map(|path| {
            let path = if path.is_absolute() { path.clone() } else { base.join(path) };
            let bytes = std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let not_pem = |why: &str| {
                format!(
                    "{} is not a PEM certificate ({why}): give the company CA as PEM text, \
                     \"-----BEGIN CERTIFICATE-----\" … (convert DER with `openssl x509 -inform der -in CA.cer -out ca.pem`)",
                    path.display()
                )
            };
            let pem = String::from_utf8(bytes).map_err(|_| not_pem("it is not text"))?;
            match pem_certificates(pem.as_bytes()) {
                Ok(0) => Err(not_pem("no certificate in it")),
                Ok(_) => Ok(CompanyCa { path, pem }),
                Err(reason) => Err(not_pem(&reason)),
            }
        })
        .collect()
}

/// How many certificates a PEM bundle holds; an error when a PEM block in it is not one.
pub fn pem_certificates(pem: &[u8]) -> Result<usize, String> {
    reqwest::Certificate::from_pem_bundle(pem).map(|certs| certs.len()).map_err(|e| crate::error::chain(&e))
}

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

/// A client for the outside world: the proxy of the network settings in force, rustls with the
/// platform's trust store and the company CAs, and connect and overall timeouts.
pub fn outside(timeout: Duration, redirects: Redirects) -> anyhow::Result<reqwest::Client> {
    outside_with(&network(), timeout, redirects)
}

/// [`outside`] for the given settings.
pub fn outside_with(network: &Network, timeout: Duration, redirects: Redirects) -> anyhow::Result<reqwest::Client> {
    outside_builder(network, timeout, redirects)?.build().context("building the HTTP client")
}

/// What every client for the outside world is built from.
// The one home of `reqwest::Client::builder`.
#[allow(clippy::disallowed_methods)]
fn outside_builder(
    network: &Network,
    timeout: Duration,
    redirects: Redirects,
) -> anyhow::Result<reqwest::ClientBuilder> {
    // The environment is read once, by `env.rs`, into `network`: reqwest must not read it again.
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(OUTSIDE_CONNECT_TIMEOUT.min(timeout))
        .redirect(redirects.policy())
        .no_proxy();
    let no_proxy = reqwest::NoProxy::from_string(&network.no_proxy_value());
    if let Some((proxy, _)) = &network.https_proxy {
        let proxy = reqwest::Proxy::https(proxy.with_credentials()).context("the HTTPS proxy")?;
        builder = builder.proxy(proxy.no_proxy(no_proxy.clone()));
    }
    if let Some((proxy, _)) = &network.http_proxy {
        let proxy = reqwest::Proxy::http(proxy.with_credentials()).context("the HTTP proxy")?;
        builder = builder.proxy(proxy.no_proxy(no_proxy));
    }
    if !network.cas.is_empty() {
        let certs = reqwest::Certificate::from_pem_bundle(network.ca_bundle().as_bytes())
            .context("reading network.ca_certificates")?;
        builder = builder.tls_certs_merge(certs);
    }
    Ok(builder)
}

/// Whether a client of the network in force (the platform's roots and the company CAs) accepts
/// the certificate of the HTTPS server at `url`: one HEAD within `timeout`.
pub async fn reaches(network: &Network, url: &str, timeout: Duration) -> Result<(), NoAnswer> {
    let client = outside_with(network, timeout, Redirects::None).map_err(|e| NoAnswer::Failed(format!("{e:#}")))?;
    client.head(url).send().await.map(|_| ()).map_err(|e| NoAnswer::of(&e, timeout))
}

/// The certificate chain (DER, the server's own first) that the TLS server for `host` presents
/// on `stream` (a connection to it, or a proxy's tunnel), whoever issued it: for doctor, which
/// names the issuer and judges the chain with [`chain_trust`]. reqwest tells nothing of a
/// certificate it got through a proxy's tunnel, hence this handshake of its own. Nothing is sent
/// after it.
pub async fn peer_chain(stream: tokio::net::TcpStream, host: &str) -> Option<Vec<Vec<u8>>> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .ok()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(host.to_string()).ok()?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, stream).await.ok()?;
    let chain: Vec<Vec<u8>> = tls.get_ref().1.peer_certificates()?.iter().map(|cert| cert.to_vec()).collect();
    (!chain.is_empty()).then_some(chain)
}

/// Which roots a certificate chain for `host` is good under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainTrust {
    /// The public roots (Mozilla's, as webpki-roots carries them): what a registry image's own
    /// bundle holds.
    pub public: bool,
    /// The company CAs of `[network] ca_certificates` alone: what devbox gives the registry.
    pub company_cas: bool,
}

/// Judges `chain` (DER, the server's own first) for `host`, now, against the public roots and
/// against the company CAs. Pure: nothing is asked of the network or the OS.
pub fn chain_trust(chain: &[Vec<u8>], host: &str, cas: &[crate::network::CompanyCa]) -> ChainTrust {
    use rustls::pki_types::pem::PemObject;
    let mut public = rustls::RootCertStore::empty();
    public.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let mut company = rustls::RootCertStore::empty();
    for ca in cas {
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca.pem.as_bytes()).flatten() {
            let _ = company.add(cert);
        }
    }
    ChainTrust { public: verifies(public, chain, host), company_cas: verifies(company, chain, host) }
}

fn verifies(roots: rustls::RootCertStore, chain: &[Vec<u8>], host: &str) -> bool {
    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let Ok(verifier) = rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider).build()
    else {
        return false;
    };
    let (Some((leaf, rest)), Ok(name)) = (chain.split_first(), ServerName::try_from(host.to_string())) else {
        return false;
    };
    let intermediates: Vec<CertificateDer<'_>> = rest.iter().map(|c| CertificateDer::from(c.as_slice())).collect();
    verifier
        .verify_server_cert(&CertificateDer::from(leaf.as_slice()), &intermediates, &name, &[], UnixTime::now())
        .is_ok()
}

/// A verifier that accepts any certificate (the handshake's signatures still checked): for
/// [`peer_chain`], which only reads who issued it and sends nothing.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The AWS SDK's HTTP client for an endpoint (`plain_http`: an `http://` one, which needs no TLS:
/// loading the system's certificates costs more than a local store's requests). It goes through the
/// proxy in force for that scheme, and trusts the platform's roots and the company CAs.
pub fn aws_sdk(plain_http: bool) -> aws_sdk_s3::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
    use aws_smithy_http_client::{Connector, proxy::ProxyConfig};
    let network = network();
    let for_scheme = if plain_http { &network.http_proxy } else { &network.https_proxy };
    let proxy = match for_scheme {
        Some((proxy, _)) => {
            let url = proxy.with_credentials();
            let config = if plain_http { ProxyConfig::http(url) } else { ProxyConfig::https(url) };
            // The URL was checked when it was read; should the SDK still refuse it, go direct
            // rather than fail every call: doctor's network check names the proxy.
            config.map(|c| c.no_proxy(network.no_proxy_value())).unwrap_or_else(|_| ProxyConfig::disabled())
        }
        None => ProxyConfig::disabled(),
    };
    let mut trust = tls::TrustStore::default();
    for ca in &network.cas {
        trust.add_pem_certificate(ca.pem.as_bytes());
    }
    // It never refuses a trust store (PEM is checked when the TLS provider loads it, and was
    // checked when the config was read); should it, the OS's roots are still trusted.
    let context = tls::TlsContext::builder().with_trust_store(trust).build().unwrap_or_default();
    aws_smithy_http_client::Builder::new().build_with_connector_fn(move |settings, components| {
        let mut builder = Connector::builder().proxy_config(proxy.clone());
        builder.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            builder.set_sleep_impl(components.sleep_impl());
        }
        if plain_http {
            builder.build_http()
        } else {
            builder.tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc)).tls_context(context.clone()).build()
        }
    })
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
    url.strip_prefix("http://").is_some_and(crate::config::loopback_host)
}

/// Why a request got no answer. Made once from reqwest's error, here; callers match on it, and its
/// `Display` is the wording people read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoAnswer {
    #[error("no answer within {seconds}s")]
    TimedOut { seconds: u64 },
    #[error("cannot connect (connection refused, or no route)")]
    Refused,
    /// This machine refused this user the connection: a unix socket it may not open.
    #[error("permission denied")]
    Denied,
    /// Anything else (a reset connection, a malformed answer), with its causes.
    #[error("{0}")]
    Failed(String),
}

impl NoAnswer {
    /// What `err` says happened to a request allowed `timeout`.
    pub fn of(err: &reqwest::Error, timeout: Duration) -> NoAnswer {
        if err.is_timeout() {
            NoAnswer::TimedOut { seconds: timeout.as_secs() }
        } else if err.is_connect() && crate::error::io_kind(err) == Some(std::io::ErrorKind::PermissionDenied) {
            NoAnswer::Denied
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
    fn a_ca_file_must_hold_pem_certificates() {
        let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/network");
        let read = read_cas(&[PathBuf::from("ca.pem")], &fixtures).expect("a PEM CA");
        assert_eq!(read[0].path, fixtures.join("ca.pem"));
        assert!(read[0].pem.starts_with("-----BEGIN CERTIFICATE-----"));
        let dir = tempfile::tempdir().expect("a temp dir");
        std::fs::write(dir.path().join("notes.txt"), "this is not a certificate\n").expect("write");
        std::fs::write(dir.path().join("bad.pem"), "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n")
            .expect("write");
        for name in ["notes.txt", "bad.pem", "missing.pem"] {
            let err = read_cas(&[PathBuf::from(name)], dir.path()).expect_err(name);
            assert!(err.contains(name), "{err}");
        }
    }

    #[test]
    fn a_chain_is_judged_against_the_public_roots_and_the_company_cas() {
        let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/network");
        let leaf = std::fs::read(fixtures.join("leaf.der")).expect("the fixture certificate");
        let ca = crate::network::CompanyCa {
            path: fixtures.join("ca.pem"),
            pem: std::fs::read_to_string(fixtures.join("ca.pem")).expect("the fixture CA"),
        };
        let chain = vec![leaf];
        let with_ca = chain_trust(&chain, "s3.example.test", std::slice::from_ref(&ca));
        assert_eq!(with_ca, ChainTrust { public: false, company_cas: true });
        assert_eq!(chain_trust(&chain, "s3.example.test", &[]), ChainTrust { public: false, company_cas: false });
        assert_eq!(chain_trust(&chain, "other.example.test", &[ca]), ChainTrust { public: false, company_cas: false });
        assert_eq!(chain_trust(&[], "s3.example.test", &[]), ChainTrust { public: false, company_cas: false });
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
