//! Reading the three clocks. Thin I/O around the pure parts in `mod.rs` and `http_date.rs`; the
//! only file of the clock module that speaks HTTP.

use std::time::{Duration, Instant};

use jiff::Timestamp;

use super::{
    ClockName, Reading, http_date, offset_from, offset_from_early_read, offset_from_http_date, offset_from_late_read,
};
use crate::config::S3Config;
use crate::engine::{Engine, EngineInfo};
use crate::http;

/// How long one clock may take to answer. A clock that is slower than this is not worth reading.
pub const CLOCK_TIMEOUT: Duration = Duration::from_secs(3);

/// How long the engine's info may take: podman gathers it by running its helpers (conmon, the OCI
/// runtime), which takes seconds in a slow VM. Its clock is read as it answers, so a slow answer
/// is still a precise one (see `engine_clock`).
pub const ENGINE_INFO_TIMEOUT: Duration = Duration::from_secs(20);

/// The URL whose `Date` header gives S3's clock: the configured bucket on its endpoint, path-style
/// (no bucket-name DNS or TLS surprises). `None` when no bucket is configured.
pub fn s3_clock_url(s3: &S3Config) -> Option<String> {
    let bucket = s3.bucket.as_ref()?;
    let endpoint = if s3.endpoint.is_empty() {
        format!("https://s3.{}.amazonaws.com", s3.region)
    } else {
        s3.endpoint.trim_end_matches('/').to_string()
    };
    Some(format!("{endpoint}/{bucket}"))
}

/// A client for `url`: the loopback one for an S3-compatible store on this machine, else the
/// outside one. Redirects are not followed: the first answer's `Date` is the clock.
pub fn http_client(url: &str) -> anyhow::Result<reqwest::Client> {
    http::for_url(url, CLOCK_TIMEOUT, http::Redirects::None)
}

/// S3's clock for the configured bucket; skipped (nothing wrong) when no bucket is configured.
pub async fn s3_reading(s3: &S3Config) -> Reading {
    match s3_clock_url(s3) {
        None => Reading::skipped(ClockName::S3, "no bucket is configured (registry.s3.bucket)"),
        Some(url) => match http_client(&url) {
            Ok(http) => s3_clock(&http, &url).await,
            Err(e) => Reading::failed(ClockName::S3, url, format!("{e:#}")),
        },
    }
}

/// S3's clock, from an unauthenticated `HEAD` on the bucket. Any answer carries a `Date` header
/// (AWS answers 403 without credentials), and that is all devbox reads from it.
pub async fn s3_clock(http: &reqwest::Client, url: &str) -> Reading {
    let sent = Timestamp::now();
    let started = Instant::now();
    let response = match http.head(url).send().await {
        Ok(response) => response,
        Err(e) => return Reading::failed(ClockName::S3, url, describe(&e)),
    };
    let round_trip = started.elapsed();
    let received = Timestamp::now();
    match http_date::parse_header(response.headers().get(reqwest::header::DATE).map(|v| v.as_bytes())) {
        Ok(date) => Reading {
            clock: ClockName::S3,
            source: format!("{url} (Date header of HTTP {})", response.status().as_u16()),
            time: Some(date),
            offset: Some(offset_from_http_date(date, sent, received)),
            round_trip: Some(round_trip),
            error: None,
            skipped: false,
        },
        Err(why) => Reading::failed(ClockName::S3, url, format!("{why} (HTTP {})", response.status().as_u16())),
    }
}

/// The engine's clock, from `SystemTime` in its info, and the info itself (for classifying it).
/// dockerd reads its clock as it starts answering `GET /info`, then spends most of the round trip
/// gathering the rest (a few hundred ms in a slow VM): so a ping first measures how long a request
/// takes to arrive (see `offset_from_early_read`). podman reads it last, as the answer leaves
/// (`offset_from_late_read`).
pub async fn engine_clock(engine: &Engine) -> (Reading, Option<EngineInfo>) {
    let source = engine.endpoint().to_string();
    // The first ping opens the connection that the second and the info reuse.
    let mut ping = None;
    for _ in 0..2 {
        let pinged = Instant::now();
        ping = match tokio::time::timeout(CLOCK_TIMEOUT, engine.ping()).await {
            Ok(Ok(())) => Some(pinged.elapsed()),
            _ => break,
        };
    }
    let sent = Timestamp::now();
    let started = Instant::now();
    let info = match tokio::time::timeout(ENGINE_INFO_TIMEOUT, engine.info()).await {
        Err(_) => {
            let why = format!("no answer within {}s", ENGINE_INFO_TIMEOUT.as_secs());
            return (Reading::failed(ClockName::Engine, source, why), None);
        }
        Ok(Err(e)) => return (Reading::failed(ClockName::Engine, source, format!("{e:#}")), None),
        Ok(Ok(info)) => info,
    };
    let round_trip = started.elapsed();
    let received = Timestamp::now();
    let reading = match info.system_time {
        Some(time) => Reading {
            clock: ClockName::Engine,
            source,
            time: Some(time),
            offset: Some(match ping {
                Some(ping) if info.podman => offset_from_late_read(time, sent, received, ping),
                Some(ping) => offset_from_early_read(time, sent, received, ping),
                None => offset_from(time, sent, received),
            }),
            round_trip: Some(round_trip),
            error: None,
            skipped: false,
        },
        None => {
            let why = match &info.system_time_raw {
                Some(raw) => format!("the engine's SystemTime {raw:?} is not a timestamp"),
                None => "the engine's info has no SystemTime".to_string(),
            };
            Reading::failed(ClockName::Engine, source, why)
        }
    };
    (reading, Some(info))
}

fn describe(err: &reqwest::Error) -> String {
    http::describe(err, CLOCK_TIMEOUT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BucketName;

    fn s3(bucket: &str, endpoint: &str) -> S3Config {
        S3Config {
            bucket: (!bucket.is_empty()).then(|| BucketName::try_from(bucket.to_string()).expect("valid")),
            region: "eu-west-1".into(),
            root_directory: "/registry".into(),
            endpoint: endpoint.into(),
            path_style: false,
            profile: "devbox".into(),
            session: crate::config::SessionMode::Auto,
            session_duration: std::time::Duration::from_secs(12 * 3600),
            role_arn: String::new(),
        }
    }

    #[test]
    fn the_s3_clock_is_read_from_the_configured_bucket() {
        assert_eq!(
            s3_clock_url(&s3("acme-registry", "")).as_deref(),
            Some("https://s3.eu-west-1.amazonaws.com/acme-registry")
        );
        assert_eq!(
            s3_clock_url(&s3("acme-registry", "http://127.0.0.1:9000/")).as_deref(),
            Some("http://127.0.0.1:9000/acme-registry")
        );
        assert_eq!(s3_clock_url(&s3("", "http://127.0.0.1:9000")), None);
    }
}
