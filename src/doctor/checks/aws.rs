//! AWS credentials, when the registry stores on S3: the host can resolve them, and the bucket
//! answers with them.
//!
//! What is judged is whether the host can get credentials at all. Short-lived ones (SSO,
//! assume-role, `credential_process`) are fresh each time they are resolved, so their expiry says
//! nothing about a problem: the registry's own copy is what expires, and the registry checks judge
//! it by its lease. Only when the host cannot resolve any (its login expired) does the failure name
//! `aws sso login`, through the error's own hint.

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use super::Probe;
use crate::aws::Aws;
use crate::config::{Config, Storage};
use crate::doctor::{CheckId, Finding, Status};
use crate::error::Error;

/// How the credentials the host resolved are described: their kind and how long they last. Never
/// a warning: fresh ones were just handed out.
pub fn lifetime(expiry: Option<jiff::Timestamp>, now: jiff::Timestamp) -> String {
    let Some(expiry) = expiry else { return "long-lived".into() };
    let minutes = expiry.duration_since(now).as_secs().max(0) / 60;
    if minutes < 120 {
        format!("short-lived, good for {minutes} min")
    } else {
        format!("short-lived, good for {}h {}m", minutes / 60, minutes % 60)
    }
}

pub fn check<'p>(probe: &'p Probe<'_>) -> BoxFuture<'p, Finding> {
    aws_credentials(probe.config).boxed()
}

async fn aws_credentials(config: &Config) -> Finding {
    let id = CheckId::AwsCredentials;
    let s3 = &config.registry.s3;
    if config.registry.storage() != Storage::S3 {
        return Finding::ok(id, "not needed: the registry uses filesystem storage");
    }
    let aws = match Aws::connect(s3).await {
        Ok(aws) => aws,
        Err(err) => return failed(config, &err),
    };
    let credentials = lifetime(aws.credentials().expiry, jiff::Timestamp::now());
    let (identity, reached) = tokio::join!(aws.identity(), aws.check_bucket());
    let bucket = s3.bucket.as_ref().map(|b| b.to_string()).unwrap_or_default();
    let latency = match reached {
        Ok(latency) => latency,
        Err(err) => return failed(config, &err),
    };
    let account = identity.as_ref().map(|i| i.account.clone()).unwrap_or_else(|_| "unknown".into());
    let finding = Finding::new(
        id,
        Status::Ok,
        format!("account {account}, bucket {bucket} reachable ({} ms), credentials {credentials}", latency.as_millis()),
    )
    .detail("endpoint", aws.endpoint())
    .detail("bucket_latency_ms", latency.as_millis().to_string());
    match identity {
        Ok(identity) => finding.detail("identity", identity.arn),
        Err(err) => finding.detail("identity", err.to_string()),
    }
}

/// The finding for `err`. S3 out of reach through a proxy names the proxy: it is the proxy that
/// is in the way far more often than S3.
fn failed(config: &Config, err: &Error) -> Finding {
    let id = CheckId::AwsCredentials;
    let network = crate::http::network();
    let proxy = super::network::s3_url(config).and_then(|url| network.proxy_for(&url).cloned());
    match (err, proxy) {
        (Error::S3Unreachable { .. }, Some((proxy, source))) => Finding::fail(
            id,
            format!("cannot reach S3 through the proxy {proxy} ({source}): {err}"),
        )
        .hint(format!(
            "The proxy is in the way: start it, or fix {source}. `devbox doctor --check network` says how it answers."
        )),
        _ => Finding::fail(id, err.to_string()).hint(err.hint().unwrap_or_default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_short_lived_credentials_are_described_not_judged() {
        let now: jiff::Timestamp = "2026-11-26T12:00:00Z".parse().expect("timestamp");
        let at = |s: &str| Some(s.parse::<jiff::Timestamp>().expect("timestamp"));
        assert_eq!(lifetime(None, now), "long-lived");
        assert_eq!(lifetime(at("2026-11-26T17:30:00Z"), now), "short-lived, good for 5h 30m");
        assert_eq!(lifetime(at("2026-11-26T12:02:00Z"), now), "short-lived, good for 2 min");
    }
}
