//! The company network: the proxy in use and whether it answers (and lets devbox through to S3),
//! whether S3's certificate is issued by a CA outside the public roots (TLS inspection) and is
//! trusted, and whether the registry container trusts it too (its own TLS errors, in its log).
//! The proxy's credentials are never shown: [`ProxyUrl`] prints without them.

use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Probe;
use crate::config::{Config, Storage};
use crate::doctor::{CheckId, Finding, Status};
use crate::http::{self, NoAnswer};
use crate::network::{Network, ProxyUrl};

/// The fix for a certificate devbox or the registry does not trust.
const CA_FIX: &str = "Add the company's CA to devbox.toml: [network] ca_certificates = [\"/path/to/company-ca.pem\"] \
(IT has it; it is the issuer named here), then run `devbox registry up`.";

pub fn check<'p>(probe: &'p Probe<'_>) -> BoxFuture<'p, Finding> {
    network(probe).boxed()
}

/// Where devbox's S3 is, when the registry stores on S3.
pub fn s3_url(config: &Config) -> Option<String> {
    let s3 = &config.registry.s3;
    (config.registry.storage() == Storage::S3).then(|| {
        if s3.endpoint.is_empty() { format!("https://s3.{}.amazonaws.com", s3.region) } else { s3.endpoint.clone() }
    })
}

async fn network(probe: &Probe<'_>) -> Finding {
    let id = CheckId::Network;
    let network = http::network();
    let s3 = s3_url(probe.config);
    let s3_proxy = s3.as_deref().and_then(|url| network.proxy_for(url)).map(|(p, s)| (p.clone(), s.to_string()));
    let any_proxy = network.https_proxy.as_ref().or(network.http_proxy.as_ref());
    let mut details: Vec<(&str, String)> = Vec::new();
    let mut said = Vec::new();
    // The proxy's tunnel to S3, kept for the look at S3's certificate.
    let mut tunneled = None;
    match (&s3_proxy, any_proxy) {
        (Some((proxy, source)), _) => {
            let target = s3.as_deref().filter(|u| u.starts_with("https://")).and_then(host_port);
            match tunnel(proxy, target.as_deref(), probe.timeout).await {
                Tunnel::Open(stream) => {
                    tunneled = stream;
                    said.push(format!("S3 through proxy {proxy} ({source})"));
                }
                failed => return proxy_finding(id, proxy, source, target.as_deref(), failed),
            }
            details.push(("proxy", proxy.to_string()));
        }
        (None, Some((proxy, source))) => {
            if let Tunnel::Refused(reason) = tunnel(proxy, None, probe.timeout).await {
                return proxy_finding(id, proxy, &source.to_string(), None, Tunnel::Refused(reason));
            }
            details.push(("proxy", proxy.to_string()));
            let direct = if s3.is_some() { "; S3 goes around it (NO_PROXY)" } else { "" };
            said.push(format!("proxy {proxy} ({source}) answers{direct}"));
        }
        (None, None) => said.push("no proxy".to_string()),
    }
    details.push(("no_proxy", network.no_proxy_value()));
    if !network.cas.is_empty() {
        let paths: Vec<String> = network.cas.iter().map(|ca| ca.path.display().to_string()).collect();
        details.push(("ca_certificates", paths.join(", ")));
    }
    let mut finding = match s3.as_deref().filter(|u| u.starts_with("https://")) {
        Some(url) => match tls(&network, url, tunneled, probe.timeout).await {
            Ok(line) => {
                said.push(line);
                Finding::ok(id, said.join("; "))
            }
            Err(finding) => return finding,
        },
        None => Finding::ok(id, said.join("; ")),
    };
    if let Some(failed) = registry_trust(probe, &network).await {
        return failed;
    }
    for (key, value) in details {
        finding = finding.detail(key, value);
    }
    finding
}

/// The finding for a proxy that did not let devbox through.
fn proxy_finding(id: CheckId, proxy: &ProxyUrl, source: &str, target: Option<&str>, failed: Tunnel) -> Finding {
    let to = target.map(|t| format!(" to {t}")).unwrap_or_default();
    let (what, hint) = match failed {
        Tunnel::Open(_) => ("the proxy let devbox through".to_string(), String::new()),
        Tunnel::Refused(reason) => (
            format!("the proxy {proxy} ({source}) does not answer: {reason}; devbox cannot reach S3 without it"),
            format!("Start the proxy, or fix {source} (`devbox config show`; HTTPS_PROXY / NO_PROXY in your shell)."),
        ),
        Tunnel::AuthRequired { offered, status } => (
            format!(
                "the proxy {proxy} ({source}) asks for credentials (HTTP {status}{})",
                if status == 407 { " Proxy Authentication Required" } else { "" }
            ),
            if offered {
                format!("It refused the user and password in {source}: fix them (http://USER:PASSWORD@HOST:PORT).")
            } else {
                format!("Put your proxy user and password in {source}: http://USER:PASSWORD@HOST:PORT.")
            },
        ),
        Tunnel::Status(status) => (
            format!("the proxy {proxy} ({source}) refused to connect{to} (HTTP {status})"),
            "Ask whoever runs the proxy to allow S3's address, or add it to [network] no_proxy if it is reached directly."
                .to_string(),
        ),
    };
    Finding::new(id, Status::Fail, what).hint(hint).detail("proxy", proxy.to_string())
}

/// S3's host name, and its certificate chain as presented on the proxy's tunnel when there is
/// one, else directly.
async fn s3_chain(
    url: &str,
    tunneled: Option<tokio::net::TcpStream>,
    timeout: Duration,
) -> Option<(String, Vec<Vec<u8>>)> {
    let target = host_port(url)?;
    let host = target.rsplit_once(':').map_or(target.as_str(), |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
    let look = async {
        let stream = match tunneled {
            Some(stream) => stream,
            None => tokio::net::TcpStream::connect(target.as_str()).await.ok()?,
        };
        http::peer_chain(stream, &host).await
    };
    let chain = tokio::time::timeout(timeout, look).await.ok().flatten()?;
    Some((host, chain))
}

/// Whether devbox, and the registry container it sets up, trust S3's certificate, and who issued
/// it: a line for the finding, or the finding that fails. The container trusts its image's bundle
/// (the public roots) and the company CAs devbox gives it, never this machine's own store: a CA
/// that only the OS trusts (IT installed it) still fails there.
async fn tls(
    network: &Network,
    url: &str,
    tunneled: Option<tokio::net::TcpStream>,
    timeout: Duration,
) -> Result<String, Finding> {
    let id = CheckId::Network;
    let (devbox, seen) = tokio::join!(http::reaches(network, url, timeout), s3_chain(url, tunneled, timeout));
    let issuer = seen
        .as_ref()
        .and_then(|(_, chain)| chain.first())
        .and_then(|leaf| issuer_of(leaf))
        .unwrap_or_else(|| "an unknown issuer".to_string());
    let trust = seen.as_ref().map(|(host, chain)| http::chain_trust(chain, host, &network.cas));
    let untrusted = |what: String| Finding::fail(id, what).hint(CA_FIX).detail("issuer", issuer.clone());
    match (devbox, trust) {
        (Ok(()), Some(trust)) if trust.public => {
            Ok(format!("S3's certificate is issued by {issuer}, publicly trusted"))
        }
        (Ok(()), Some(trust)) if trust.company_cas => Ok(format!(
            "S3's certificate is issued by {issuer}, a CA outside the public roots (a private CA, or TLS \
             inspection), trusted through network.ca_certificates"
        )),
        (Ok(()), Some(_)) => Err(untrusted(format!(
            "S3's certificate is issued by {issuer}, a CA outside the public roots that this machine's own \
             trust store has but network.ca_certificates does not: the registry container will not trust it"
        ))),
        (Ok(()), None) => Ok("S3's certificate is trusted".to_string()),
        (Err(_), Some(_)) => Err(untrusted(format!(
            "S3's certificate at {url} is issued by {issuer}, a CA this machine does not trust \
             (TLS inspection by a company proxy or firewall?)"
        ))),
        (Err(reason), None) => {
            let through = match network.proxy_for(url) {
                Some((proxy, source)) => format!(" through proxy {proxy} ({source})"),
                None if network.https_proxy.is_some() => " directly (NO_PROXY sends it around the proxy)".to_string(),
                None => String::new(),
            };
            Err(Finding::fail(id, format!("cannot reach S3 at {url}{through}: {reason}"))
                .hint("Check registry.s3.endpoint, the proxy and your VPN."))
        }
    }
}

/// A failed finding when the registry container says it does not trust S3's certificate.
async fn registry_trust(probe: &Probe<'_>, network: &Network) -> Option<Finding> {
    use futures_util::StreamExt;
    let container = probe.registry_container().await.ok().flatten()?;
    if !container.is_running() || s3_url(probe.config).is_none() {
        return None;
    }
    let facts = probe.engine().await?;
    let lines: Vec<String> = facts
        .engine
        .logs(&probe.config.registry.container, "100", false)
        .filter_map(|line| async move { line.ok() })
        .collect()
        .await;
    let said = lines.iter().rev().find_map(|line| untrusted_certificate(line))?;
    let given = container.env_value("SSL_CERT_DIR").is_some();
    let hint = if given || network.cas.is_empty() {
        CA_FIX.to_string()
    } else {
        "The registry was made before network.ca_certificates was set: `devbox registry up` gives it the CAs.".into()
    };
    Some(
        Finding::fail(
            CheckId::Network,
            format!("the registry container does not trust S3's certificate (its log: {said})"),
        )
        .hint(hint),
    )
}

/// The words of Go's crypto/x509 (both registry lines) for a certificate it does not trust.
pub fn untrusted_certificate(line: &str) -> Option<String> {
    const SAID: [&str; 3] = [
        "x509: certificate signed by unknown authority",
        "tls: failed to verify certificate",
        "certificate is not trusted",
    ];
    SAID.iter().find(|words| line.contains(*words)).map(|w| w.to_string())
}

/// What a proxy did with a `CONNECT`.
#[derive(Debug)]
enum Tunnel {
    /// It answers; with a target, the tunnel to it.
    Open(Option<tokio::net::TcpStream>),
    /// Nothing answered: refused, timed out, or not HTTP.
    Refused(String),
    /// HTTP 407, or 401 to credentials it refused; `offered`: credentials were sent.
    AuthRequired {
        offered: bool,
        status: u16,
    },
    Status(u16),
}

/// Asks `proxy` to open a tunnel to `target` (`host:port`), with its credentials when it has
/// some; with no target, whether it accepts a connection at all.
async fn tunnel(proxy: &ProxyUrl, target: Option<&str>, timeout: Duration) -> Tunnel {
    let ask = async {
        let host = proxy.host().trim_start_matches('[').trim_end_matches(']');
        let mut stream =
            tokio::net::TcpStream::connect((host, proxy.port())).await.map_err(|e| Tunnel::Refused(e.to_string()))?;
        let Some(target) = target else { return Ok(Tunnel::Open(None)) };
        let auth = credentials_of(proxy)
            .map(|c| format!("Proxy-Authorization: Basic {}\r\n", base64(c.as_bytes())))
            .unwrap_or_default();
        let request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{auth}\r\n");
        stream.write_all(request.as_bytes()).await.map_err(|e| Tunnel::Refused(e.to_string()))?;
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
            let n = stream.read(&mut buf).await.map_err(|e| Tunnel::Refused(e.to_string()))?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        let offered = proxy.has_credentials();
        Ok::<Tunnel, Tunnel>(match status_of(&head) {
            // A TLS server sends nothing before the client's hello: the tunnel is clean.
            Some(200..=299) => Tunnel::Open(Some(stream)),
            Some(status @ 407) => Tunnel::AuthRequired { offered, status },
            // tinyproxy answers 401 to credentials it refuses.
            Some(status @ 401) if offered => Tunnel::AuthRequired { offered, status },
            Some(status) => Tunnel::Status(status),
            None => Tunnel::Refused("it did not answer as an HTTP proxy".into()),
        })
    };
    match tokio::time::timeout(timeout, ask).await {
        Ok(Ok(tunnel) | Err(tunnel)) => tunnel,
        Err(_) => Tunnel::Refused(NoAnswer::TimedOut { seconds: timeout.as_secs() }.to_string()),
    }
}

/// `user:password` of a proxy URL, percent-decoded as curl decodes it.
fn credentials_of(proxy: &ProxyUrl) -> Option<String> {
    let url = proxy.with_credentials();
    let userinfo = url.split_once("://")?.1.rsplit_once('@')?.0;
    let bytes = userinfo.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The status code of an HTTP answer's first line.
fn status_of(head: &[u8]) -> Option<u16> {
    let line = head.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut words = line.split_whitespace();
    words.next().filter(|v| v.starts_with("HTTP/"))?;
    words.next()?.parse().ok()
}

/// `host:port` of an https URL (443 when it names no port).
fn host_port(url: &str) -> Option<String> {
    let rest = url.strip_prefix("https://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let has_port =
        authority.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) && !authority.ends_with(']');
    Some(if has_port { authority.to_string() } else { format!("{authority}:443") })
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The issuer of a certificate (DER), as `CN=…, O=…`: enough to name the CA to ask IT for.
pub fn issuer_of(der: &[u8]) -> Option<String> {
    let (certificate, _) = tlv(der, 0x30)?;
    let (tbs, _) = tlv(certificate, 0x30)?;
    let mut rest = tbs;
    if rest.first() == Some(&0xa0) {
        rest = tlv(rest, 0xa0)?.1;
    }
    rest = tlv(rest, 0x02)?.1; // serial number
    rest = tlv(rest, 0x30)?.1; // signature algorithm
    let (mut name, _) = tlv(rest, 0x30)?;
    let mut parts = Vec::new();
    while !name.is_empty() {
        let (set, after) = tlv(name, 0x31)?;
        name = after;
        let (attribute, _) = tlv(set, 0x30)?;
        let (oid, value) = tlv(attribute, 0x06)?;
        let label = match oid {
            [0x55, 0x04, 0x03] => "CN",
            [0x55, 0x04, 0x0a] => "O",
            _ => continue,
        };
        let (text, _) = tlv(value, *value.first()?)?;
        parts.push((label, String::from_utf8_lossy(text).to_string()));
    }
    // The common name first: it is what people know a CA by.
    parts.sort_by_key(|(label, _)| *label != "CN");
    let shown: Vec<String> = parts.iter().map(|(label, text)| format!("{label}={text}")).collect();
    (!shown.is_empty()).then(|| shown.join(", "))
}

/// One DER element of `tag` at the start of `data`: its contents, and what follows it.
fn tlv(data: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    if *data.first()? != tag {
        return None;
    }
    let first = *data.get(1)?;
    let (len, start) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let len = data.get(2..2 + n)?.iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, 2 + n)
    };
    let end = start.checked_add(len)?;
    Some((data.get(start..end)?, data.get(end..)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issuer_is_read_from_the_certificate() {
        let leaf = include_bytes!("../../../tests/fixtures/network/leaf.der");
        assert_eq!(issuer_of(leaf).as_deref(), Some("CN=Devbox Fixture CA, O=Devbox Fixtures"));
        assert_eq!(issuer_of(&leaf[..40]), None);
        assert_eq!(issuer_of(b"not a certificate"), None);
    }

    #[test]
    fn a_connect_answer_and_its_credentials() {
        assert_eq!(status_of(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n"), Some(407));
        assert_eq!(status_of(b"HTTP/1.0 200 Connection established\r\n\r\n"), Some(200));
        assert_eq!(status_of(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(base64(b"alice:s3cret"), "YWxpY2U6czNjcmV0");
        assert_eq!(base64(b"ab"), "YWI=");
        let proxy = ProxyUrl::parse("http://alice:p%40ss@proxy:3128", true).expect("a proxy");
        assert_eq!(credentials_of(&proxy).as_deref(), Some("alice:p@ss"));
        assert_eq!(host_port("https://s3.corp.test:9443/bucket"), Some("s3.corp.test:9443".into()));
        assert_eq!(host_port("https://s3.us-east-1.amazonaws.com"), Some("s3.us-east-1.amazonaws.com:443".into()));
        assert_eq!(host_port("http://minio:9000"), None);
    }

    #[test]
    fn gos_words_for_an_untrusted_certificate_are_recognised() {
        let line = "level=error msg=\"s3aws: RequestError: send request failed caused by: Get \\\"https://s3.corp.test/\\\": \
                    x509: certificate signed by unknown authority\"";
        assert_eq!(untrusted_certificate(line).as_deref(), Some("x509: certificate signed by unknown authority"));
        assert_eq!(untrusted_certificate("level=info msg=listening on [::]:5000"), None);
    }

    #[test]
    fn a_refused_proxy_is_named_without_its_credentials() {
        let proxy = ProxyUrl::parse("http://alice:s3cret@127.0.0.1:3128", true).expect("a proxy");
        let finding = proxy_finding(
            CheckId::Network,
            &proxy,
            "HTTPS_PROXY",
            None,
            Tunnel::AuthRequired { offered: true, status: 407 },
        );
        let shown = format!("{finding:?}");
        assert!(shown.contains("407") && shown.contains("http://***@127.0.0.1:3128"), "{shown}");
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}
