//! What the registry container gets of the company network: the proxy (a proxy on this machine's
//! loopback rewritten to `host.docker.internal`, which devbox maps to the engine's host gateway,
//! the host's address as a native engine or a VM sees it), NO_PROXY extended with what must never be
//! proxied, and the company CAs.
//!
//! The CAs are uploaded into devbox's own config volume ([`super::hardening::CONFIG_DIR`]) before
//! the container starts, never baked into an image, and `SSL_CERT_DIR` names that directory: Go's
//! crypto/x509 (both registry lines) then trusts them besides the image's own bundle
//! (`/etc/ssl/certs/ca-certificates.crt`, which it still reads). A bind mount would not do: the
//! engine may be in a VM, which has none of this host's files.
//!
//! The settings are part of the config hash, so a changed proxy or CA recreates the registry.

use sha2::{Digest, Sha256};

use super::Desired;
use super::hardening::CONFIG_DIR;
use crate::network::{Network, ProxyUrl};

/// The file the company CAs are uploaded to, in [`CONFIG_DIR`].
pub const CA_FILE: &str = "company-ca.pem";

/// The container's share of the network settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerNetwork {
    /// `HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`, `SSL_CERT_DIR`, as they apply.
    pub env: Vec<(String, String)>,
    /// The company CAs as one PEM bundle, when there are any.
    pub ca_bundle: Option<String>,
    /// A hash of all of it, empty when there is nothing: it joins the config hash.
    pub fingerprint: String,
}

/// What the registry container gets, for S3 at `endpoint` (as the config names it).
pub fn for_container(network: &Network, endpoint: &str) -> ContainerNetwork {
    let reachable = |proxy: &ProxyUrl| {
        if proxy.is_loopback() { proxy.at_host("host.docker.internal") } else { proxy.clone() }
    };
    let proxies = [("HTTPS_PROXY", &network.https_proxy), ("HTTP_PROXY", &network.http_proxy)];
    let mut env: Vec<(String, String)> = proxies
        .into_iter()
        .filter_map(|(name, proxy)| proxy.as_ref().map(|(p, _)| (name.to_string(), reachable(p))))
        .map(|(name, proxy)| (name, proxy.with_credentials()))
        .collect();
    let mut fingerprint_parts: Vec<String> = proxies_shown(network);
    if !env.is_empty() {
        let mut no_proxy = network.no_proxy.clone();
        // A local S3 is reached through the host gateway, never through the proxy.
        if super::container_endpoint(endpoint) != endpoint {
            no_proxy.push("host.docker.internal".to_string());
        }
        let no_proxy = no_proxy.join(",");
        fingerprint_parts.push(no_proxy.clone());
        env.push(("NO_PROXY".to_string(), no_proxy));
    }
    let ca_bundle = (!network.cas.is_empty()).then(|| network.ca_bundle());
    if let Some(bundle) = &ca_bundle {
        env.push(("SSL_CERT_DIR".to_string(), CONFIG_DIR.to_string()));
        fingerprint_parts.push(bundle.clone());
    }
    let fingerprint = if env.is_empty() { String::new() } else { hash(&fingerprint_parts, network) };
    ContainerNetwork { env, ca_bundle, fingerprint }
}

/// The proxies as shown (no credentials): what the hash covers in the clear.
fn proxies_shown(network: &Network) -> Vec<String> {
    [&network.https_proxy, &network.http_proxy]
        .into_iter()
        .map(|p| p.as_ref().map(|(p, _)| p.to_string()).unwrap_or_default())
        .collect()
}

/// A hash of the settings; the proxies' credentials count through a hash of their own, so that a
/// changed password recreates the registry while the label gives nothing away.
fn hash(parts: &[String], network: &Network) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    for proxy in [&network.https_proxy, &network.http_proxy].into_iter().flatten() {
        let credentials = Sha256::digest(format!("devbox-proxy-credentials\0{}", proxy.0.with_credentials()));
        hasher.update(credentials);
    }
    hex::encode(&hasher.finalize()[..16])
}

impl Desired {
    /// The same registry, with the network settings it is to get. A registry with none keeps the
    /// hash it had before devbox knew of networks, so upgrading recreates nothing.
    pub fn with_network(mut self, network: ContainerNetwork) -> Desired {
        if !network.fingerprint.is_empty() {
            let mut hasher = Sha256::new();
            hasher.update(self.hash.as_bytes());
            hasher.update([0]);
            hasher.update(network.fingerprint.as_bytes());
            self.hash = hex::encode(&hasher.finalize()[..16]);
        }
        self.network = network;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::{CompanyCa, ProxySource};

    fn proxy(url: &str) -> Option<(ProxyUrl, ProxySource)> {
        Some((ProxyUrl::parse(url, true).expect("a proxy"), ProxySource::Env("HTTPS_PROXY")))
    }

    fn value<'a>(net: &'a ContainerNetwork, name: &str) -> Option<&'a str> {
        net.env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn a_loopback_proxy_is_reached_through_the_host_gateway_and_local_s3_never_through_it() {
        let network = Network {
            https_proxy: proxy("http://u:p@127.0.0.1:3128"),
            no_proxy: vec![".corp.example".into(), "localhost".into()],
            ..Network::default()
        };
        let local = for_container(&network, "http://127.0.0.1:9000");
        assert_eq!(value(&local, "HTTPS_PROXY"), Some("http://u:p@host.docker.internal:3128"));
        assert_eq!(value(&local, "HTTP_PROXY"), None);
        assert_eq!(value(&local, "NO_PROXY"), Some(".corp.example,localhost,host.docker.internal"));
        let remote = for_container(&network, "https://s3.corp.test:9443");
        assert_eq!(value(&remote, "NO_PROXY"), Some(".corp.example,localhost"));
        let elsewhere = Network { https_proxy: proxy("http://proxy.acme.com:3128"), ..Network::default() };
        assert_eq!(value(&for_container(&elsewhere, ""), "HTTPS_PROXY"), Some("http://proxy.acme.com:3128"));
    }

    #[test]
    fn nothing_to_give_leaves_the_hash_alone_and_every_change_moves_it() {
        let none = for_container(&Network::default(), "");
        assert_eq!(none, ContainerNetwork::default());
        let with_proxy = Network { https_proxy: proxy("http://u:p@127.0.0.1:3128"), ..Network::default() };
        let other_password = Network { https_proxy: proxy("http://u:q@127.0.0.1:3128"), ..Network::default() };
        let ca = CompanyCa { path: "/ca.pem".into(), pem: "-----BEGIN CERTIFICATE-----\nAA==\n".into() };
        let with_ca = Network { cas: vec![ca], ..with_proxy.clone() };
        let prints: Vec<String> =
            [&with_proxy, &other_password, &with_ca].iter().map(|n| for_container(n, "").fingerprint).collect();
        assert!(prints.iter().all(|p| p.len() == 32));
        assert_ne!(prints[0], prints[1]);
        assert_ne!(prints[0], prints[2]);
        let given = for_container(&with_ca, "");
        assert_eq!(value(&given, "SSL_CERT_DIR"), Some(CONFIG_DIR));
        assert!(given.ca_bundle.as_deref().is_some_and(|b| b.starts_with("-----BEGIN CERTIFICATE-----")));
    }
}
