//! The company network: the proxy devbox's outside calls go through, what bypasses it, and the
//! company's CAs (TLS inspection). Resolved once from `[network]` and the environment (as curl
//! reads it) into one [`Network`], which `http.rs` builds every outside client from, the AWS SDK's
//! included, and which the registry container's settings are made from (`registry/network.rs`).
//!
//! A proxy URL may carry credentials (`http://user:secret@proxy:3128`). They reach the clients and
//! the registry container only: [`ProxyUrl`]'s `Display`, `Debug` and serialized form leave them out.

use std::fmt;
use std::path::PathBuf;

use crate::env::Environment;
use crate::error::Error;

/// The port curl assumes for a proxy URL that names none.
const DEFAULT_PROXY_PORT: u16 = 1080;

/// Never proxied, whatever NO_PROXY says: a proxy would have to come back to this machine.
const LOOPBACK: [&str; 3] = ["localhost", "127.0.0.0/8", "::1"];

/// A proxy's address: `http://[user[:password]@]host[:port]`. Shown without its credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyUrl {
    scheme: &'static str,
    /// `user:password` (or `user`), as written: percent-encoded where it must be.
    userinfo: Option<String>,
    host: String,
    port: u16,
}

impl ProxyUrl {
    /// Parses a proxy URL. `require_scheme`: the config wants `http://` or `https://` spelled out;
    /// the environment's variables may leave it off, as curl allows (then it is `http://`).
    pub fn parse(text: &str, require_scheme: bool) -> Result<ProxyUrl, String> {
        let text = text.trim();
        let example = "e.g. \"http://proxy.acme.com:3128\"";
        let (scheme, rest) = match text.split_once("://") {
            Some(("http", rest)) => ("http", rest),
            Some(("https", rest)) => ("https", rest),
            Some((other, _)) => {
                return Err(format!(
                    "the proxy's scheme {other:?} is not supported: use http:// or https://, {example}"
                ));
            }
            None if require_scheme => return Err(format!("{:?} is not a proxy URL, {example}", redact(text))),
            None => ("http", text),
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#']) {
            return Err(format!("{:?} is not a proxy URL: it has a path; {example}", redact(text)));
        }
        let (userinfo, host_port) = match authority.rsplit_once('@') {
            Some((userinfo, host_port)) => (Some(userinfo.to_string()), host_port),
            None => (None, authority),
        };
        let (host, port) = match host_port.strip_prefix('[') {
            Some(v6) => {
                let (host, after) = v6.split_once(']').ok_or_else(|| format!("{:?}: unclosed '['", redact(text)))?;
                (format!("[{host}]"), after.strip_prefix(':'))
            }
            None => match host_port.rsplit_once(':') {
                Some((host, port)) => (host.to_string(), Some(port)),
                None => (host_port.to_string(), None),
            },
        };
        let valid_host = !host.is_empty()
            && (host.starts_with('[')
                || host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')));
        if !valid_host {
            return Err(format!("{:?} is not a proxy URL: no valid host name; {example}", redact(text)));
        }
        let port =
            match port {
                None => DEFAULT_PROXY_PORT,
                Some(port) => port.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| {
                    format!("{:?} is not a proxy URL: {port:?} is not a port; {example}", redact(text))
                })?,
            };
        Ok(ProxyUrl { scheme, userinfo, host, port })
    }

    /// The whole URL, credentials included: for the clients and the registry container only.
    pub fn with_credentials(&self) -> String {
        match &self.userinfo {
            Some(userinfo) => format!("{}://{userinfo}@{}:{}", self.scheme, self.host, self.port),
            None => self.to_string(),
        }
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn has_credentials(&self) -> bool {
        self.userinfo.is_some()
    }

    /// Whether the proxy runs on this machine (127.0.0.0/8, localhost, [::1]).
    pub fn is_loopback(&self) -> bool {
        is_loopback_host(&self.host)
    }

    /// The same proxy reached at `host`: what a container uses for a proxy on this machine's loopback.
    pub fn at_host(&self, host: &str) -> ProxyUrl {
        ProxyUrl { host: host.to_string(), ..self.clone() }
    }
}

/// The credentials of a proxy URL that did not parse, hidden from the error that quotes it.
fn redact(text: &str) -> String {
    match (text.split_once("://"), text.rsplit_once('@')) {
        (Some((scheme, _)), Some((_, host))) => format!("{scheme}://***@{host}"),
        (None, Some((_, host))) => format!("***@{host}"),
        _ => text.to_string(),
    }
}

impl fmt::Display for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let user = if self.userinfo.is_some() { "***@" } else { "" };
        write!(f, "{}://{user}{}:{}", self.scheme, self.host, self.port)
    }
}

impl fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProxyUrl({self})")
    }
}

impl TryFrom<String> for ProxyUrl {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        ProxyUrl::parse(&text, true)
    }
}

/// What `config show` and a fleet report print: never the credentials.
impl From<ProxyUrl> for String {
    fn from(proxy: ProxyUrl) -> String {
        proxy.to_string()
    }
}

pub fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost") || bare.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether a request to `host` goes around the proxy under the NO_PROXY `rules`, as curl decides:
/// `*` is everything; `example.com` and `.example.com` are that domain and every name under it;
/// an address or a CIDR block (`10.0.0.0/8`) matches a host given as an address.
pub fn bypasses(host: &str, rules: &[String]) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']').trim_end_matches('.').to_ascii_lowercase();
    let address = host.parse::<std::net::IpAddr>().ok();
    rules.iter().map(|r| r.trim().to_ascii_lowercase()).filter(|r| !r.is_empty()).any(|rule| {
        if rule == "*" {
            return true;
        }
        if let Some(address) = address {
            let rule = rule.trim_start_matches('[').trim_end_matches(']');
            return match rule.split_once('/') {
                Some((net, bits)) => in_block(address, net, bits),
                None => rule.parse::<std::net::IpAddr>().is_ok_and(|r| r == address),
            };
        }
        let domain = rule.trim_start_matches("*.").trim_start_matches('.').trim_end_matches('.');
        !domain.is_empty() && (host == domain || host.ends_with(&format!(".{domain}")))
    })
}

fn in_block(address: std::net::IpAddr, net: &str, bits: &str) -> bool {
    use std::net::IpAddr;
    let (Ok(net), Ok(bits)) = (net.parse::<IpAddr>(), bits.parse::<u32>()) else { return false };
    match (address, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) if bits <= 32 => {
            let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) if bits <= 128 => {
            let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// A company CA file from `network.ca_certificates`, read and checked to hold PEM certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompanyCa {
    pub path: PathBuf,
    pub pem: String,
}

/// Where the proxy in force came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxySource {
    /// `[network] proxy`.
    Config,
    /// This environment variable.
    Env(&'static str),
}

impl fmt::Display for ProxySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxySource::Config => f.write_str("network.proxy"),
            ProxySource::Env(name) => f.write_str(name),
        }
    }
}

/// The network settings in force: what every outside client and the registry container get.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Network {
    /// For `https://` requests.
    pub https_proxy: Option<(ProxyUrl, ProxySource)>,
    /// For plain `http://` requests.
    pub http_proxy: Option<(ProxyUrl, ProxySource)>,
    /// What goes around the proxy: `[network] no_proxy`, NO_PROXY, and always this machine.
    pub no_proxy: Vec<String>,
    pub cas: Vec<CompanyCa>,
}

/// Reads the first of `names` that is set: a proxy, or an error naming the variable.
fn env_proxy(env: &Environment, names: &[&'static str]) -> Result<Option<(ProxyUrl, ProxySource)>, Error> {
    let Some((name, value)) = names.iter().find_map(|n| env.var(n).map(|v| (*n, v))) else { return Ok(None) };
    ProxyUrl::parse(value, false)
        .map(|proxy| Some((proxy, ProxySource::Env(name))))
        .map_err(|reason| Error::Usage(format!("{name}: {reason}. Fix or unset {name}, or set [network] proxy.")))
}

impl Network {
    /// The settings from `[network]` (its `proxy`, `no_proxy` and the CAs read from its
    /// `ca_certificates`) and the environment, as curl reads it: `https_proxy`/`HTTPS_PROXY`,
    /// `http_proxy`/`HTTP_PROXY`, `all_proxy`/`ALL_PROXY`, `no_proxy`/`NO_PROXY`. `[network] proxy`
    /// wins over the environment's proxies; the NO_PROXY rules of both apply.
    pub fn resolve(
        proxy: Option<&ProxyUrl>,
        no_proxy: &[String],
        cas: Vec<CompanyCa>,
        env: &Environment,
    ) -> Result<Network, Error> {
        let (https_proxy, http_proxy) = match proxy {
            Some(proxy) => (Some((proxy.clone(), ProxySource::Config)), Some((proxy.clone(), ProxySource::Config))),
            None => {
                let all = env_proxy(env, &["all_proxy", "ALL_PROXY"])?;
                (
                    env_proxy(env, &["https_proxy", "HTTPS_PROXY"])?.or_else(|| all.clone()),
                    env_proxy(env, &["http_proxy", "HTTP_PROXY"])?.or(all),
                )
            }
        };
        let from_env = env.var("no_proxy").or_else(|| env.var("NO_PROXY")).unwrap_or_default();
        let mut no_proxy: Vec<String> = no_proxy
            .iter()
            .map(String::as_str)
            .chain(from_env.split(','))
            .chain(LOOPBACK)
            .map(|r| r.trim().to_string())
            .filter(|r| !r.is_empty())
            .collect();
        no_proxy.dedup();
        Ok(Network { https_proxy, http_proxy, no_proxy, cas })
    }

    /// The proxy a request to `url` goes through, or `None` when it goes direct.
    pub fn proxy_for(&self, url: &str) -> Option<&(ProxyUrl, ProxySource)> {
        let (proxy, rest) = match url.split_once("://") {
            Some(("https", rest)) => (self.https_proxy.as_ref(), rest),
            Some(("http", rest)) => (self.http_proxy.as_ref(), rest),
            _ => return None,
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let host = if host_port.starts_with('[') {
            host_port.split_inclusive(']').next().unwrap_or(host_port)
        } else {
            host_port.split(':').next().unwrap_or(host_port)
        };
        proxy.filter(|_| !bypasses(host, &self.no_proxy))
    }

    /// The NO_PROXY rules as one comma-separated value.
    pub fn no_proxy_value(&self) -> String {
        self.no_proxy.join(",")
    }

    /// The company CAs as one PEM bundle.
    pub fn ca_bundle(&self) -> String {
        self.cas.iter().map(|ca| format!("{}\n", ca.pem.trim_end())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls_parse_as_curl_reads_them_and_never_show_credentials() {
        let proxy = ProxyUrl::parse("http://alice:s3cret@proxy.acme.com:3128/", true).expect("a proxy");
        assert_eq!(proxy.to_string(), "http://***@proxy.acme.com:3128");
        assert_eq!(format!("{proxy:?}"), "ProxyUrl(http://***@proxy.acme.com:3128)");
        assert_eq!(String::from(proxy.clone()), "http://***@proxy.acme.com:3128");
        assert_eq!(proxy.with_credentials(), "http://alice:s3cret@proxy.acme.com:3128");
        // The environment may leave the scheme and the port off; the config must name the scheme.
        let bare = ProxyUrl::parse("proxy.acme.com", false).expect("a proxy");
        assert_eq!(bare.to_string(), "http://proxy.acme.com:1080");
        assert!(ProxyUrl::parse("proxy.acme.com:3128", true).is_err());
        assert!(ProxyUrl::parse("http://[::1]:3128", true).expect("v6").is_loopback());
        assert!(ProxyUrl::parse("http://127.0.0.1:3128", true).expect("v4").is_loopback());
        for bad in
            ["not a url", "http://", "http://proxy:99999", "ftp://proxy:21", "http://proxy:3128/path", "http://a b"]
        {
            assert!(ProxyUrl::parse(bad, true).is_err(), "{bad}");
        }
        let err = ProxyUrl::parse("http://bob:hunter2@proxy:notaport", true).expect_err("bad port");
        assert!(!err.contains("hunter2"), "{err}");
        assert_eq!(
            ProxyUrl::parse("http://127.0.0.1:3128", true).expect("v4").at_host("host.docker.internal").to_string(),
            "http://host.docker.internal:3128"
        );
    }

    #[test]
    fn no_proxy_takes_domains_leading_dots_addresses_and_cidr_blocks() {
        let rules: Vec<String> =
            [".corp.example", "internal.test", "10.0.0.0/8", "192.168.1.7", "fd00::/8", " "].map(String::from).to_vec();
        assert!(bypasses("s3.corp.example", &rules));
        assert!(bypasses("corp.example", &rules));
        assert!(bypasses("a.b.internal.test", &rules));
        assert!(bypasses("internal.test", &rules));
        assert!(!bypasses("notinternal.test", &rules));
        assert!(!bypasses("corp.example.com", &rules));
        assert!(bypasses("10.20.30.40", &rules));
        assert!(!bypasses("11.0.0.1", &rules));
        assert!(bypasses("192.168.1.7", &rules));
        assert!(!bypasses("192.168.1.8", &rules));
        assert!(bypasses("[fd12::1]", &rules));
        assert!(!bypasses("s3.amazonaws.com", &rules));
        assert!(bypasses("anything", &["*".to_string()]));
    }

    fn network(proxy: Option<&str>, no_proxy: &[&str], env: &[(&str, &str)]) -> Result<Network, Error> {
        let proxy = proxy.map(|p| ProxyUrl::parse(p, true).expect("a proxy"));
        let no_proxy: Vec<String> = no_proxy.iter().map(|r| r.to_string()).collect();
        let env = env.iter().fold(Environment::default(), |e, (k, v)| e.with(k, v));
        Network::resolve(proxy.as_ref(), &no_proxy, Vec::new(), &env)
    }

    #[test]
    fn the_config_wins_over_the_environment_and_no_proxy_rules_add_up() {
        let net =
            network(None, &[], &[("HTTPS_PROXY", "http://env-proxy:3128"), ("no_proxy", ".corp.example,10.0.0.0/8")])
                .expect("resolves");
        let (proxy, source) = net.https_proxy.clone().expect("a proxy");
        assert_eq!((proxy.to_string(), source), ("http://env-proxy:3128".to_string(), ProxySource::Env("HTTPS_PROXY")));
        assert_eq!(net.http_proxy, None);
        assert!(net.proxy_for("https://s3.eu-west-1.amazonaws.com/bucket").is_some());
        assert!(net.proxy_for("https://minio.corp.example:9000").is_none());
        assert!(net.proxy_for("https://10.1.2.3:9000").is_none());
        assert!(net.proxy_for("https://127.0.0.1:9000").is_none());
        assert!(net.proxy_for("http://example.com").is_none());

        let net = network(
            Some("http://cfg-proxy:8080"),
            &["s3.internal"],
            &[("https_proxy", "http://env-proxy:3128"), ("NO_PROXY", ".corp.example")],
        )
        .expect("resolves");
        assert_eq!(net.proxy_for("http://example.com").map(|p| p.1.clone()), Some(ProxySource::Config));
        assert_eq!(net.no_proxy_value(), "s3.internal,.corp.example,localhost,127.0.0.0/8,::1");

        let all = network(None, &[], &[("ALL_PROXY", "socks5://x:1")]).expect_err("socks is refused");
        assert!(all.to_string().starts_with("ALL_PROXY: "), "{all}");
        assert_eq!(all.exit_status(), crate::error::ExitStatus::Usage);
    }
}
