//! AWS credentials, when the registry stores on S3: they load, they have not expired, and the
//! bucket answers.

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use super::Probe;
use crate::aws::Aws;
use crate::config::{Config, Storage};
use crate::doctor::{CheckId, Finding, Status};

/// Credentials that expire within an hour deserve a warning; expired ones are a failure.
pub fn expiry_verdict(expiry: Option<jiff::Timestamp>, now: jiff::Timestamp) -> (Status, String) {
    let Some(expiry) = expiry else { return (Status::Ok, "long-lived".into()) };
    let left = expiry.duration_since(now);
    let minutes = left.as_secs() / 60;
    if left.is_negative() || left.is_zero() {
        (Status::Fail, format!("expired at {expiry}"))
    } else if left.as_secs() < 3600 {
        (Status::Warn, format!("expire in {minutes} min"))
    } else {
        (Status::Ok, format!("expire in {}h {}m", minutes / 60, minutes % 60))
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
        Err(err) => return Finding::fail(id, err.to_string()).hint(err.hint().unwrap_or_default()),
    };
    let (status, expiry) = expiry_verdict(aws.credentials().expiry, jiff::Timestamp::now());
    let login = format!("aws sso login --profile {}", s3.profile);
    if status == Status::Fail {
        return Finding::fail(id, format!("credentials {expiry}")).hint("Log in again.").fix(login);
    }
    let (identity, reached) = tokio::join!(aws.identity(), aws.check_bucket());
    let bucket = s3.bucket.as_ref().map(|b| b.to_string()).unwrap_or_default();
    let latency = match reached {
        Ok(latency) => latency,
        Err(err) => return Finding::fail(id, err.to_string()).hint(err.hint().unwrap_or_default()),
    };
    let account = identity.as_ref().map(|i| i.account.clone()).unwrap_or_else(|_| "unknown".into());
    let finding = Finding::new(
        id,
        status,
        format!("account {account}, bucket {bucket} reachable ({} ms), credentials {expiry}", latency.as_millis()),
    )
    .detail("endpoint", aws.endpoint())
    .detail("bucket_latency_ms", latency.as_millis().to_string());
    let finding = match identity {
        Ok(identity) => finding.detail("identity", identity.arn),
        Err(err) => finding.detail("identity", err.to_string()),
    };
    match status {
        Status::Warn => finding.hint("Log in again before they expire.").fix(login),
        _ => finding,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_thresholds() {
        let now: jiff::Timestamp = "2026-11-26T12:00:00Z".parse().expect("timestamp");
        let at = |s: &str| Some(s.parse::<jiff::Timestamp>().expect("timestamp"));
        assert_eq!(expiry_verdict(None, now), (Status::Ok, "long-lived".into()));
        assert_eq!(expiry_verdict(at("2026-11-26T17:30:00Z"), now), (Status::Ok, "expire in 5h 30m".into()));
        assert_eq!(expiry_verdict(at("2026-11-26T12:20:00Z"), now), (Status::Warn, "expire in 20 min".into()));
        assert_eq!(expiry_verdict(at("2026-11-26T11:00:00Z"), now).0, Status::Fail);
    }
}
