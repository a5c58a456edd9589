//! The clock: how far apart this host, the Docker engine and S3 are, and whether AWS will accept
//! the engine's requests. Reading one clock is thin I/O (`measure.rs`), reading all three is
//! `check.rs`, setting a VM's is `sync.rs`; judging is pure and lives here.
//!
//! Every clock is expressed as its offset from the host's clock at the moment it was read
//! (positive: ahead of the host), so readings taken concurrently can be compared.

pub mod check;
pub mod http_date;
pub mod measure;
pub mod runtime;
pub mod setter;
pub mod sync;

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde::{Serialize, Serializer};

pub use runtime::{Classification, Runtime};

/// Above this a skew fails the check.
pub const FAIL_ABOVE: Duration = Duration::from_secs(5 * 60);
/// AWS refuses signed requests whose time is more than 15 minutes off (`RequestTimeTooSkewed`).
pub const AWS_LIMIT: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClockName {
    Host,
    Engine,
    S3,
}

impl ClockName {
    pub fn label(self) -> &'static str {
        match self {
            ClockName::Host => "host",
            ClockName::Engine => "engine",
            ClockName::S3 => "S3",
        }
    }
}

/// One clock, read once.
#[derive(Debug, Clone, Serialize)]
pub struct Reading {
    pub clock: ClockName,
    /// Where it was read: "this machine", the engine's endpoint, the S3 URL.
    pub source: String,
    /// What the clock said (UTC), when it could be read.
    pub time: Option<Timestamp>,
    /// Its offset from the host's clock; positive when it is ahead.
    #[serde(rename = "offset_seconds", serialize_with = "seconds")]
    pub offset: Option<SignedDuration>,
    #[serde(rename = "round_trip_ms", serialize_with = "millis")]
    pub round_trip: Option<Duration>,
    /// Why it could not be read, or why it was not read at all.
    pub error: Option<String>,
    /// Not read on purpose (S3 with no bucket configured): nothing is wrong.
    pub skipped: bool,
}

impl Reading {
    pub fn host(now: Timestamp) -> Reading {
        Reading {
            clock: ClockName::Host,
            source: "this machine".into(),
            time: Some(now),
            offset: Some(SignedDuration::ZERO),
            round_trip: None,
            error: None,
            skipped: false,
        }
    }

    pub fn failed(clock: ClockName, source: impl Into<String>, why: impl Into<String>) -> Reading {
        Reading {
            clock,
            source: source.into(),
            time: None,
            offset: None,
            round_trip: None,
            error: Some(why.into()),
            skipped: false,
        }
    }

    pub fn skipped(clock: ClockName, why: impl Into<String>) -> Reading {
        Reading { skipped: true, ..Reading::failed(clock, clock.label(), why) }
    }
}

/// A remote clock's offset from the host's, from a request sent at `sent` and answered at
/// `received` (host time): the remote read its clock, at best guess, halfway through.
pub fn offset_from(remote: Timestamp, sent: Timestamp, received: Timestamp) -> SignedDuration {
    let midpoint = sent + received.duration_since(sent) / 2;
    remote.duration_since(midpoint)
}

/// A remote clock read as the request arrived, and answered later (dockerd's `SystemTime`):
/// it read its clock about half a plain request's round trip (`ping`) after `sent`. When the
/// answer took no longer than the ping, that is the midpoint, as `offset_from` has it.
pub fn offset_from_early_read(
    remote: Timestamp,
    sent: Timestamp,
    received: Timestamp,
    ping: std::time::Duration,
) -> SignedDuration {
    remote.duration_since(sent + one_way(sent, received, ping))
}

/// Half a plain request's round trip (`ping`), never more than half of this one's.
fn one_way(sent: Timestamp, received: Timestamp, ping: std::time::Duration) -> SignedDuration {
    let round_trip = received.duration_since(sent);
    SignedDuration::try_from(ping).unwrap_or(round_trip).min(round_trip) / 2
}

/// A remote clock read as the answer left, after the rest was gathered (podman's `SystemTime`: it
/// runs its helpers first, seconds in a slow VM): about half a plain request's round trip before
/// `received`.
pub fn offset_from_late_read(
    remote: Timestamp,
    sent: Timestamp,
    received: Timestamp,
    ping: std::time::Duration,
) -> SignedDuration {
    remote.duration_since(received - one_way(sent, received, ping))
}

/// The same for an HTTP `Date` header, which truncates to the second: the server's clock was
/// somewhere in [date, date + 1 s), so the middle of that second is the best guess.
pub fn offset_from_http_date(date: Timestamp, sent: Timestamp, received: Timestamp) -> SignedDuration {
    offset_from(date + SignedDuration::from_millis(500), sent, received)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Ok,
    /// Above `clock.max_skew`.
    Warn,
    /// Above 5 minutes.
    Fail,
    /// Above 15 minutes: S3 refuses the engine's signed requests.
    AwsWillRefuse,
    /// One of the two clocks could not be read.
    Unmeasured,
}

impl Verdict {
    pub fn is_failure(self) -> bool {
        matches!(self, Verdict::Fail | Verdict::AwsWillRefuse)
    }
}

/// Judges one skew, in either direction.
pub fn judge(skew: SignedDuration, max_skew: Duration) -> Verdict {
    let size = skew.unsigned_abs();
    if size > AWS_LIMIT {
        Verdict::AwsWillRefuse
    } else if size > FAIL_ABOVE {
        Verdict::Fail
    } else if size > max_skew {
        Verdict::Warn
    } else {
        Verdict::Ok
    }
}

/// How far `a` is ahead of `b` (negative: behind).
#[derive(Debug, Clone, Serialize)]
pub struct Skew {
    pub a: ClockName,
    pub b: ClockName,
    #[serde(rename = "skew_seconds", serialize_with = "seconds")]
    pub skew: Option<SignedDuration>,
    pub verdict: Verdict,
    /// Why it was not measured.
    pub missing: Option<String>,
}

/// The pairs devbox reports: the engine against the host (what `sync` fixes), S3 against the host,
/// and the engine against S3 (what S3 itself judges the registry's requests by).
const PAIRS: [(ClockName, ClockName); 3] =
    [(ClockName::Engine, ClockName::Host), (ClockName::S3, ClockName::Host), (ClockName::Engine, ClockName::S3)];

/// The pairs' skews. A pair with a clock skipped on purpose is left out.
pub fn skews(readings: &[Reading], max_skew: Duration) -> Vec<Skew> {
    let find = |clock| readings.iter().find(|r| r.clock == clock);
    let skipped = |clock| find(clock).is_some_and(|r: &Reading| r.skipped);
    PAIRS
        .iter()
        .filter(|&&(a, b)| !skipped(a) && !skipped(b))
        .map(|&(a, b)| {
            let (ra, rb) = (find(a), find(b));
            match (ra.and_then(|r| r.offset), rb.and_then(|r| r.offset)) {
                (Some(oa), Some(ob)) => {
                    let skew = oa - ob;
                    Skew { a, b, skew: Some(skew), verdict: judge(skew, max_skew), missing: None }
                }
                _ => {
                    let missing = [ra, rb]
                        .into_iter()
                        .zip([a, b])
                        .filter(|(r, _)| r.is_none_or(|r| r.offset.is_none()))
                        .map(|(_, clock)| format!("the {} clock was not read", clock.label()))
                        .collect::<Vec<_>>()
                        .join(", ");
                    Skew { a, b, skew: None, verdict: Verdict::Unmeasured, missing: Some(missing) }
                }
            }
        })
        .collect()
}

/// "+0.003s", "-1.250s", "+7m 0.2s", "-1h 2m 3.0s": signed, to the millisecond under ten seconds.
pub fn format_skew(skew: SignedDuration) -> String {
    let sign = if skew.is_negative() { '-' } else { '+' };
    let millis = skew.unsigned_abs().as_millis();
    if millis < 10_000 {
        return format!("{sign}{}.{:03}s", millis / 1000, millis % 1000);
    }
    let tenths = (millis + 50) / 100;
    let (hours, minutes, seconds, tenth) = (tenths / 36_000, tenths / 600 % 60, tenths / 10 % 60, tenths % 10);
    match (hours, minutes) {
        (0, 0) => format!("{sign}{seconds}.{tenth}s"),
        (0, m) => format!("{sign}{m}m {seconds}.{tenth}s"),
        (h, m) => format!("{sign}{h}h {m}m {seconds}.{tenth}s"),
    }
}

/// The verdict in words, for the line it ends.
pub fn describe(verdict: Verdict, max_skew: Duration) -> String {
    match verdict {
        Verdict::Ok => format!("ok (within {})", humantime::format_duration(max_skew)),
        Verdict::Warn => format!("above clock.max_skew ({})", humantime::format_duration(max_skew)),
        Verdict::Fail => "above 5 minutes".into(),
        Verdict::AwsWillRefuse => "AWS will refuse: above 15 minutes (RequestTimeTooSkewed)".into(),
        Verdict::Unmeasured => "not measured".into(),
    }
}

fn seconds<S: Serializer>(value: &Option<SignedDuration>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(d) => s.serialize_f64((d.as_secs_f64() * 1000.0).round() / 1000.0),
        None => s.serialize_none(),
    }
}

fn millis<S: Serializer>(value: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(d) => s.serialize_f64((d.as_secs_f64() * 10_000.0).round() / 10.0),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: i64) -> SignedDuration {
        SignedDuration::from_secs(s)
    }

    const TWO_S: Duration = Duration::from_secs(2);

    #[test]
    fn verdicts_follow_the_thresholds_in_both_directions() {
        for sign in [1, -1] {
            assert_eq!(judge(secs(0), TWO_S), Verdict::Ok);
            assert_eq!(judge(secs(2 * sign), TWO_S), Verdict::Ok, "max_skew itself is within bounds");
            assert_eq!(judge(SignedDuration::from_millis(2001 * sign), TWO_S), Verdict::Warn);
            assert_eq!(judge(secs(300 * sign), TWO_S), Verdict::Warn, "5 minutes exactly is not above 5 minutes");
            assert_eq!(judge(secs(301 * sign), TWO_S), Verdict::Fail);
            assert_eq!(judge(secs(900 * sign), TWO_S), Verdict::Fail);
            assert_eq!(judge(secs(901 * sign), TWO_S), Verdict::AwsWillRefuse);
        }
    }

    #[test]
    fn max_skew_zero_warns_at_any_measurable_skew() {
        assert_eq!(judge(SignedDuration::ZERO, Duration::ZERO), Verdict::Ok);
        assert_eq!(judge(SignedDuration::from_millis(1), Duration::ZERO), Verdict::Warn);
        assert_eq!(judge(SignedDuration::from_millis(-1), Duration::ZERO), Verdict::Warn);
        assert_eq!(judge(secs(400), Duration::ZERO), Verdict::Fail);
    }

    #[test]
    fn a_max_skew_above_the_fail_threshold_still_fails_there() {
        assert_eq!(judge(secs(600), Duration::from_secs(3600)), Verdict::Fail);
    }

    #[test]
    fn offsets_correct_for_half_the_round_trip() {
        let sent: Timestamp = "2026-01-01T00:00:00Z".parse().expect("ts");
        let received = sent + SignedDuration::from_millis(200);
        // The remote read its clock at host time +100 ms and said +100 ms: no skew.
        let remote = sent + SignedDuration::from_millis(100);
        assert_eq!(offset_from(remote, sent, received), SignedDuration::ZERO);
        // A VM whose clock stopped 7 minutes ago is 7 minutes behind.
        assert_eq!(offset_from(remote - secs(420), sent, received), secs(-420));
        // A Date header of the second the request arrived in means the middle of that second.
        let date: Timestamp = "2026-01-01T00:07:00Z".parse().expect("ts");
        assert_eq!(offset_from_http_date(date, sent, received), SignedDuration::from_millis(420_400));
    }

    #[test]
    fn an_engine_that_reads_its_clock_on_arrival_is_judged_by_the_ping() {
        let sent: Timestamp = "2026-01-01T00:00:00Z".parse().expect("ts");
        // A request takes 50 ms each way; the engine read its clock on arrival, then took 300 ms
        // more to answer: it is on time, though the midpoint would say 150 ms behind.
        let received = sent + SignedDuration::from_millis(400);
        let remote = sent + SignedDuration::from_millis(50);
        let ping = Duration::from_millis(100);
        assert_eq!(offset_from_early_read(remote, sent, received, ping), SignedDuration::ZERO);
        assert_eq!(offset_from(remote, sent, received), SignedDuration::from_millis(-150));
        // An answer as quick as the ping: the midpoint.
        let quick = sent + SignedDuration::from_millis(100);
        assert_eq!(offset_from_early_read(remote, sent, quick, ping), offset_from(remote, sent, quick));
        // A ping slower than the answer itself cannot put the reading after the answer.
        assert_eq!(offset_from_early_read(remote, sent, quick, Duration::from_secs(5)), SignedDuration::ZERO);
    }

    #[test]
    fn podman_reads_its_clock_as_it_answers() {
        // Measured on the testbed's podman VM: a 30 ms ping, an info that took 8.7 s to gather,
        // its SystemTime 0.3 s before it arrived. On time by the late read; 4 s ahead by the midpoint.
        let sent: Timestamp = "2026-01-01T00:00:00Z".parse().expect("ts");
        let received = sent + SignedDuration::from_millis(8_700);
        let remote = received - SignedDuration::from_millis(15);
        let ping = Duration::from_millis(30);
        assert_eq!(offset_from_late_read(remote, sent, received, ping), SignedDuration::ZERO);
        assert_eq!(offset_from(remote, sent, received), SignedDuration::from_millis(4_335));
        let quick = sent + SignedDuration::from_millis(30);
        assert_eq!(
            offset_from_late_read(sent + SignedDuration::from_millis(15), sent, quick, ping),
            SignedDuration::ZERO
        );
    }

    #[test]
    fn podman_is_told_from_dockerd_by_its_info() {
        let podman = crate::engine::info_from_json(
            r#"{"Plugins":{"Log":["k8s-file","none","passthrough","journald"]},
               "DockerRootDir":"/home/core/.local/share/containers/storage",
               "SecurityOptions":["name=seccomp,profile=default","name=rootless"]}"#,
        );
        assert!(podman.podman && podman.rootless);
        let dockerd = crate::engine::info_from_json(
            r#"{"Plugins":{"Log":["awslogs","json-file","journald"]},"DockerRootDir":"/var/lib/docker",
               "SecurityOptions":["name=seccomp,profile=default"]}"#,
        );
        assert!(!dockerd.podman && !dockerd.rootless);
    }

    #[test]
    fn engine_system_time_with_an_offset_means_the_same_instant() {
        let info = crate::engine::info_from_json(r#"{"SystemTime":"2025-01-10T10:12:03.4821173+01:00"}"#);
        assert_eq!(info.system_time.expect("parsed").to_string(), "2025-01-10T09:12:03.4821173Z");
        let garbled = crate::engine::info_from_json(r#"{"SystemTime":"yesterday"}"#);
        assert_eq!((garbled.system_time, garbled.system_time_raw.as_deref()), (None, Some("yesterday")));
    }

    fn reading(clock: ClockName, offset: Option<i64>) -> Reading {
        let mut r = Reading::failed(clock, "x", "down");
        if let Some(ms) = offset {
            r.offset = Some(SignedDuration::from_millis(ms));
            r.error = None;
        }
        r
    }

    #[test]
    fn pairwise_skews_have_the_right_sign_and_name_what_is_missing() {
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().expect("ts");
        // The VM slept: 20 minutes behind; S3 is right.
        let readings =
            [Reading::host(now), reading(ClockName::Engine, Some(-1_200_000)), reading(ClockName::S3, Some(300))];
        let s = skews(&readings, TWO_S);
        assert_eq!(
            (s[0].a, s[0].b, s[0].skew, s[0].verdict),
            (ClockName::Engine, ClockName::Host, Some(secs(-1200)), Verdict::AwsWillRefuse)
        );
        assert_eq!((s[1].skew, s[1].verdict), (Some(SignedDuration::from_millis(300)), Verdict::Ok));
        assert_eq!((s[2].skew, s[2].verdict), (Some(SignedDuration::from_millis(-1_200_300)), Verdict::AwsWillRefuse));

        // The engine is down: its two pairs are unmeasured and say why; S3 against the host stands.
        let readings = [Reading::host(now), reading(ClockName::Engine, None), reading(ClockName::S3, Some(-5000))];
        let s = skews(&readings, TWO_S);
        assert_eq!(
            (s[0].verdict, s[0].missing.as_deref()),
            (Verdict::Unmeasured, Some("the engine clock was not read"))
        );
        assert_eq!((s[1].skew, s[1].verdict), (Some(secs(-5)), Verdict::Warn));
        assert_eq!(s[2].verdict, Verdict::Unmeasured);
        assert!(!s.iter().any(|s| s.verdict.is_failure()));

        // No bucket configured: S3 was skipped on purpose, and its pairs are left out.
        let readings =
            [Reading::host(now), reading(ClockName::Engine, Some(5)), Reading::skipped(ClockName::S3, "no bucket")];
        let s = skews(&readings, TWO_S);
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].a, s[0].verdict), (ClockName::Engine, Verdict::Ok));
    }

    #[test]
    fn skews_read_well() {
        assert_eq!(format_skew(SignedDuration::from_millis(3)), "+0.003s");
        assert_eq!(format_skew(SignedDuration::from_millis(-1250)), "-1.250s");
        assert_eq!(format_skew(SignedDuration::from_millis(12_340)), "+12.3s");
        assert_eq!(format_skew(SignedDuration::from_millis(420_210)), "+7m 0.2s");
        assert_eq!(format_skew(SignedDuration::from_millis(-3_723_000)), "-1h 2m 3.0s");
    }
}
