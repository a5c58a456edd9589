//! The registry container's own AWS credentials: how long they stay good, and when devbox renews
//! them. Pure: the decisions take the labels devbox wrote when it made the container and the time.
//!
//! Short-lived credentials (SSO, assume-role, `credential_process`) come back different on every
//! resolution, so "the credentials differ" says nothing about whether the container needs new
//! ones. What counts is the expiry devbox recorded when it made the container.

use std::time::Duration;

use jiff::Timestamp;

use super::{LABEL_CREDENTIALS_EXPIRY, LABEL_CREDENTIALS_ISSUED};
use crate::engine::ContainerInfo;

/// The longest refresh window: renew at most 15 minutes before expiry. AWS's own SDKs refresh
/// cached SSO and assume-role credentials 5 to 15 minutes ahead; 15 leaves the scheduled job (every
/// `clock.interval`, 10 minutes by default) one chance to run inside the window even when a run is
/// missed by a few minutes.
pub const MAX_WINDOW: Duration = Duration::from_secs(15 * 60);

/// How long before expiry devbox renews: a quarter of the lifetime, at most [`MAX_WINDOW`].
///
/// A quarter keeps short sessions useful: a 1-hour SSO session is renewed at 45 minutes, a
/// 12-hour one at 11 h 45 min, and a 3-minute test key at 2 min 15 s. A fixed 15 minutes would
/// renew anything shorter than 15 minutes on every run.
pub fn refresh_window(lifetime: Duration) -> Duration {
    (lifetime / 4).min(MAX_WINDOW)
}

/// The registry's credentials, as its labels describe them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lease {
    /// When devbox resolved them (and made the container).
    pub issued: Option<Timestamp>,
    /// When they stop working; `None` for long-lived keys.
    pub expiry: Option<Timestamp>,
}

/// Whether the registry's credentials need renewing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseVerdict {
    /// Long-lived keys: nothing expires.
    LongLived,
    /// Good for longer than the refresh window: leave the container alone.
    Fresh { expiry: Timestamp, renew_at: Timestamp },
    /// Inside the refresh window: renew now, while they still work.
    Renew { expiry: Timestamp },
    /// Already refused by S3.
    Expired { expiry: Timestamp },
}

impl Lease {
    /// When to renew: the refresh window before expiry. Without an issue time (a container made by
    /// an older devbox) the lifetime is unknown, so the longest window applies.
    pub fn renew_at(&self) -> Option<Timestamp> {
        let expiry = self.expiry?;
        let lifetime = self
            .issued
            .map(|issued| Duration::try_from(expiry.duration_since(issued)).unwrap_or(Duration::ZERO))
            .unwrap_or(MAX_WINDOW * 4);
        let window = jiff::SignedDuration::try_from(refresh_window(lifetime)).unwrap_or(jiff::SignedDuration::ZERO);
        Some(expiry.checked_sub(window).unwrap_or(expiry))
    }

    pub fn verdict(&self, now: Timestamp) -> LeaseVerdict {
        let (Some(expiry), Some(renew_at)) = (self.expiry, self.renew_at()) else {
            return LeaseVerdict::LongLived;
        };
        if now >= expiry {
            LeaseVerdict::Expired { expiry }
        } else if now >= renew_at {
            LeaseVerdict::Renew { expiry }
        } else {
            LeaseVerdict::Fresh { expiry, renew_at }
        }
    }
}

/// "12 min", "2h 05m", "40 s": how far `later` is from `now`, for people.
pub fn human_until(now: Timestamp, later: Timestamp) -> String {
    let secs = later.duration_since(now).as_secs().max(0);
    match secs {
        0..120 => format!("{secs} s"),
        120..7200 => format!("{} min", secs / 60),
        _ => format!("{}h {:02}m", secs / 3600, secs % 3600 / 60),
    }
}

/// The lease of the credentials a container was made with, from its labels.
pub fn lease_of(container: &ContainerInfo) -> Lease {
    let at = |key| container.label(key).and_then(|v| v.parse::<Timestamp>().ok());
    Lease { issued: at(LABEL_CREDENTIALS_ISSUED), expiry: at(LABEL_CREDENTIALS_EXPIRY) }
}

/// A lease label that devbox wrote but that no longer reads as a time (`label`, its value): read as
/// "no expiry", it would pass for a long-lived key that is never renewed, so it is never read past.
pub fn damaged_lease(container: &ContainerInfo) -> Option<(&'static str, String)> {
    [LABEL_CREDENTIALS_EXPIRY, LABEL_CREDENTIALS_ISSUED].into_iter().find_map(|key| {
        let value = container.label(key)?;
        value.parse::<Timestamp>().is_err().then(|| (key, value.to_string()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).expect("a timestamp")
    }

    #[test]
    fn the_window_is_a_quarter_of_the_lifetime_up_to_fifteen_minutes() {
        assert_eq!(refresh_window(Duration::from_secs(180)), Duration::from_secs(45));
        assert_eq!(refresh_window(Duration::from_secs(3600)), Duration::from_secs(900));
        assert_eq!(refresh_window(Duration::from_secs(12 * 3600)), Duration::from_secs(900));
        assert_eq!(refresh_window(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn an_hour_long_session_is_fresh_until_its_last_fifteen_minutes() {
        let lease = Lease { issued: Some(at(0)), expiry: Some(at(3600)) };
        assert_eq!(lease.verdict(at(1)), LeaseVerdict::Fresh { expiry: at(3600), renew_at: at(2700) });
        assert_eq!(lease.verdict(at(2699)), LeaseVerdict::Fresh { expiry: at(3600), renew_at: at(2700) });
        assert_eq!(lease.verdict(at(2700)), LeaseVerdict::Renew { expiry: at(3600) });
        assert_eq!(lease.verdict(at(3599)), LeaseVerdict::Renew { expiry: at(3600) });
        assert_eq!(lease.verdict(at(3600)), LeaseVerdict::Expired { expiry: at(3600) });
    }

    #[test]
    fn a_three_minute_key_is_renewed_in_its_last_quarter() {
        let lease = Lease { issued: Some(at(0)), expiry: Some(at(180)) };
        assert!(matches!(lease.verdict(at(134)), LeaseVerdict::Fresh { .. }));
        assert_eq!(lease.verdict(at(135)), LeaseVerdict::Renew { expiry: at(180) });
    }

    #[test]
    fn long_lived_keys_never_need_renewal() {
        let lease = Lease { issued: Some(at(0)), expiry: None };
        assert_eq!(lease.verdict(at(1_000_000)), LeaseVerdict::LongLived);
    }

    #[test]
    fn without_an_issue_time_the_longest_window_applies() {
        let lease = Lease { issued: None, expiry: Some(at(3600)) };
        assert_eq!(lease.renew_at(), Some(at(2700)));
    }

    #[test]
    fn an_expiry_before_the_issue_time_is_expired_at_once() {
        let lease = Lease { issued: Some(at(100)), expiry: Some(at(50)) };
        assert_eq!(lease.verdict(at(100)), LeaseVerdict::Expired { expiry: at(50) });
    }

    #[test]
    fn times_read_as_people_say_them() {
        assert_eq!(human_until(at(0), at(40)), "40 s");
        assert_eq!(human_until(at(0), at(720)), "12 min");
        assert_eq!(human_until(at(0), at(7500)), "2h 05m");
        assert_eq!(human_until(at(10), at(0)), "0 s");
    }

    #[test]
    fn a_lease_label_that_is_not_a_time_is_damaged_not_long_lived() {
        let labels = |expiry: &str| {
            std::collections::HashMap::from([(LABEL_CREDENTIALS_EXPIRY.to_string(), expiry.to_string())])
        };
        let damaged = ContainerInfo::for_tests("running", labels("2026-12-0"), vec![]);
        assert_eq!(damaged_lease(&damaged), Some((LABEL_CREDENTIALS_EXPIRY, "2026-12-0".to_string())));
        let good = ContainerInfo::for_tests("running", labels("2026-12-07T10:00:00Z"), vec![]);
        assert_eq!(damaged_lease(&good), None);
        assert_eq!(lease_of(&good).expiry, Some("2026-12-07T10:00:00Z".parse().expect("a time")));
    }
}
