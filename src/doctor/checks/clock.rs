//! Host, engine and S3 clocks: the skews between them, judged as `devbox clock check` judges them.

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use super::{EngineFacts, Judge, Probe};
use crate::clock::{self, ClockName, Reading};
use crate::config::Config;
use crate::doctor::{CheckId, Finding, Remedy, Status};

/// This host's clock and S3's, read at once, while the engine (whose clock is read with its
/// `GET /info`) connects. An S3 that does not answer is a reading that failed, not a timeout.
pub fn measure<'p>(probe: &'p Probe<'_>) -> BoxFuture<'p, Judge<'p>> {
    async move {
        let host = Reading::host(jiff::Timestamp::now());
        let timeout = probe.timeout;
        let s3 =
            tokio::time::timeout(timeout, clock::measure::s3_reading(&probe.config.registry.s3)).await.unwrap_or_else(
                |_| Reading::failed(ClockName::S3, "S3", format!("no answer within {}s", timeout.as_secs())),
            );
        let config = probe.config;
        Box::new(move |engine: Option<&EngineFacts>| judge(config, engine, s3, host)) as Judge<'p>
    }
    .boxed()
}

/// A clock that could not be read is noted, not failed: its own check says why.
pub fn judge(config: &Config, engine: Option<&EngineFacts>, s3: Reading, host: Reading) -> Finding {
    let id = CheckId::Clock;
    let max_skew = config.clock.max_skew;
    let engine_reading = engine
        .map(|e| e.clock.clone())
        .unwrap_or_else(|| Reading::failed(ClockName::Engine, "the Docker engine", "the engine did not answer"));
    let readings = [host, engine_reading, s3];
    let skews = clock::skews(&readings, max_skew);
    let measured: Vec<String> = skews
        .iter()
        .filter(|s| s.b == ClockName::Host)
        .filter_map(|s| s.skew.map(|skew| format!("{} {}", s.a.label(), clock::format_skew(skew))))
        .collect();
    let unread: Vec<&str> =
        readings.iter().filter(|r| r.offset.is_none() && !r.skipped).map(|r| r.clock.label()).collect();
    let worst = skews.iter().filter(|s| s.skew.is_some()).max_by_key(|s| s.skew.map(|d| d.unsigned_abs()));
    let mut summary = if measured.is_empty() {
        "no clock but this host's could be read".to_string()
    } else {
        format!("{} from this host", measured.join(", "))
    };
    if !unread.is_empty() {
        summary.push_str(&format!(" (not read: {})", unread.join(", ")));
    }
    let status = match worst.map(|s| s.verdict) {
        Some(v) if v.is_failure() => Status::Fail,
        Some(clock::Verdict::Warn) => Status::Warn,
        _ => Status::Ok,
    };
    let mut finding =
        Finding::new(id, status, summary).detail("max_skew", humantime::format_duration(max_skew).to_string());
    if let Some(worst) = worst.filter(|_| status != Status::Ok) {
        finding.summary = format!("{}: {}", finding.summary, clock::describe(worst.verdict, max_skew));
        let vm = engine.is_some_and(|e| e.classification.vm);
        finding = if worst.a == ClockName::Engine && vm {
            finding
                .hint("The Docker VM's clock drifted (the laptop slept). Set it from this host's.")
                .remedy(Remedy::ClockSync)
        } else {
            finding
                .hint("This host's own clock is off: S3 disagrees with it. Turn on NTP (`timedatectl set-ntp true`, or chrony; on macOS, Date & Time settings).")
        };
    }
    finding
}
