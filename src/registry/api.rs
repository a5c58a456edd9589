//! The registry's HTTP API (distribution v2), as devbox uses it. Only this file speaks HTTP to
//! the registry.

use std::time::Duration;

use anyhow::Context;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const API_VERSION_HEADER: &str = "docker-distribution-api-version";

pub struct RegistryApi {
    base: String,
    http: reqwest::Client,
}

impl RegistryApi {
    pub fn new(base: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(2))
            .no_proxy()
            .build()
            .context("building the HTTP client")?;
        Ok(RegistryApi { base: base.trim_end_matches('/').to_string(), http })
    }

    /// `GET /v2/`: `Ok` when a distribution registry answers 200 there.
    pub async fn ping(&self) -> Result<(), String> {
        let url = format!("{}/v2/", self.base);
        let response = self.http.get(&url).send().await.map_err(|e| describe(&e))?;
        let status = response.status();
        let is_registry = response.headers().contains_key(API_VERSION_HEADER);
        match (status.as_u16(), is_registry) {
            (200, true) => Ok(()),
            (_, false) => Err(format!("{url} answered HTTP {status}, but not as a Docker registry")),
            (_, true) => Err(format!("{url} answered HTTP {status}")),
        }
    }
}

impl RegistryApi {
    /// `GET /v2/_catalog?n=1`: a request the registry can only answer by asking its storage, so
    /// on S3 storage it shows whether S3 accepts the registry's signed requests.
    pub async fn catalog(&self) -> Result<(), String> {
        let url = format!("{}/v2/_catalog?n=1", self.base);
        let response = self.http.get(&url).send().await.map_err(|e| describe(&e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        let detail = if body.contains("RequestTimeTooSkewed") { ": RequestTimeTooSkewed" } else { "" };
        let body: String = body.trim().chars().take(300).collect();
        Err(format!("{url} answered HTTP {status}{detail} ({body})"))
    }
}

fn describe(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        format!("no answer within {}s", REQUEST_TIMEOUT.as_secs())
    } else if err.is_connect() {
        "connection refused".to_string()
    } else {
        err.to_string()
    }
}
