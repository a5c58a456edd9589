//! The newest release, as `devbox doctor` wants it: read from the feed at most once a day, kept in
//! `<state dir>/latest-release.json`, and never an error when the feed cannot be reached.

use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::{Feed, latest_version};
use crate::config::Config;
use crate::env::Environment;
use crate::paths::{Paths, write_if_changed};

/// How often the feed is asked, whatever the answer was.
pub const CHECK_EVERY: SignedDuration = SignedDuration::from_hours(24);
/// How long one ask may take: doctor must stay quick when the network is not there.
const ASK_TIMEOUT: Duration = Duration::from_secs(3);

/// The newest version a feed published, and when devbox last read it there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatestRelease {
    pub version: String,
    /// When the feed said so. Older than a day when the feed could not be reached since.
    pub seen_at: Timestamp,
}

/// The cache file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Cached {
    /// The feed it was read from; a different feed in the config makes it void.
    feed: String,
    /// When the feed was last asked, answered or not.
    asked_at: Timestamp,
    latest: Option<LatestRelease>,
    /// Why the last ask failed, if it did.
    error: Option<String>,
}

/// Whether to ask the feed now: not when it was asked, for the same feed, less than a day ago.
fn should_ask(cached: Option<&Cached>, feed: &str, now: Timestamp) -> bool {
    match cached {
        Some(c) if c.feed == feed => {
            let age = now.duration_since(c.asked_at);
            age >= CHECK_EVERY || age < SignedDuration::ZERO
        }
        _ => true,
    }
}

/// The cache after asking: a new answer replaces the old one; a failure keeps the last answer
/// from the same feed, and still counts as an ask.
fn after_ask(previous: Option<Cached>, feed: &str, now: Timestamp, answer: Result<String, String>) -> Cached {
    let previous_latest = previous.filter(|p| p.feed == feed).and_then(|p| p.latest);
    match answer {
        Ok(version) => Cached {
            feed: feed.to_string(),
            asked_at: now,
            latest: Some(LatestRelease { version, seen_at: now }),
            error: None,
        },
        Err(reason) => Cached { feed: feed.to_string(), asked_at: now, latest: previous_latest, error: Some(reason) },
    }
}

fn cache_file(paths: &Paths) -> PathBuf {
    paths.state_dir().join("latest-release.json")
}

fn read(path: &Path) -> Option<Cached> {
    std::fs::read(path).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok())
}

/// The newest release of the configured feed, as of at most a day ago. Asks the feed only when
/// the cache is a day old (or for another feed); offline, or with no feed configured, it returns
/// what the cache holds, or `None`. It never fails: a cache it cannot write only means the next
/// call asks again.
pub async fn cached_latest(config: &Config, env: &Environment, paths: &Paths, now: Timestamp) -> Option<LatestRelease> {
    let feed = Feed::from_config(&config.update, env).ok()?;
    let key = feed.to_string();
    let path = cache_file(paths);
    let cached = read(&path);
    if !should_ask(cached.as_ref(), &key, now) {
        return cached.and_then(|c| c.latest);
    }
    let answer = latest_version(&feed, config, ASK_TIMEOUT).await.map_err(|e| e.to_string());
    let updated = after_ask(cached, &key, now, answer);
    if let Ok(bytes) = serde_json::to_vec_pretty(&updated) {
        // Not writing it costs one more ask next time, nothing else.
        let _ = write_if_changed(&path, &bytes);
    }
    updated.latest
}

#[cfg(test)]
mod tests {
    use super::*;

    const FEED: &str = "https://dl.acme.dev/devbox/";

    fn at(text: &str) -> Timestamp {
        text.parse().expect("a timestamp")
    }

    fn cached(asked_at: &str, version: Option<&str>) -> Cached {
        Cached {
            feed: FEED.into(),
            asked_at: at(asked_at),
            latest: version.map(|v| LatestRelease { version: v.into(), seen_at: at(asked_at) }),
            error: None,
        }
    }

    #[test]
    fn the_feed_is_asked_at_most_once_a_day() {
        let c = cached("2026-11-26T09:00:00Z", Some("0.2.0"));
        assert!(should_ask(None, FEED, at("2026-11-26T09:00:00Z")));
        assert!(!should_ask(Some(&c), FEED, at("2026-11-26T09:00:01Z")));
        assert!(!should_ask(Some(&c), FEED, at("2026-11-27T08:59:59Z")));
        assert!(should_ask(Some(&c), FEED, at("2026-11-27T09:00:00Z")));
        // Another feed in the config, or a cache from the future (a clock set back): ask again.
        assert!(should_ask(Some(&c), "s3://other/", at("2026-11-26T09:00:01Z")));
        assert!(should_ask(Some(&c), FEED, at("2026-11-25T09:00:00Z")));
    }

    #[test]
    fn a_failed_ask_keeps_the_last_answer_and_counts_as_an_ask() {
        let old = cached("2026-11-20T09:00:00Z", Some("0.2.0"));
        let now = at("2026-11-26T09:00:00Z");
        let after = after_ask(Some(old), FEED, now, Err("connection refused".into()));
        assert_eq!(after.asked_at, now);
        assert_eq!(after.latest, Some(LatestRelease { version: "0.2.0".into(), seen_at: at("2026-11-20T09:00:00Z") }));
        assert_eq!(after.error.as_deref(), Some("connection refused"));
        assert!(!should_ask(Some(&after), FEED, at("2026-11-26T12:00:00Z")));
    }

    #[test]
    fn an_answer_replaces_the_cache_and_another_feeds_answer_is_dropped() {
        let now = at("2026-11-26T09:00:00Z");
        let after = after_ask(Some(cached("2026-11-20T09:00:00Z", Some("0.2.0"))), FEED, now, Ok("0.3.0".into()));
        assert_eq!(after.latest, Some(LatestRelease { version: "0.3.0".into(), seen_at: now }));
        assert_eq!(after.error, None);
        let elsewhere =
            after_ask(Some(cached("2026-11-20T09:00:00Z", Some("0.2.0"))), "s3://other/", now, Err("x".into()));
        assert_eq!(elsewhere.latest, None);
    }

    #[tokio::test]
    async fn offline_it_returns_the_cache_or_none_and_asks_once_a_day() {
        let home = tempfile::tempdir().expect("tempdir");
        // A closed port on loopback: the ask fails at once.
        let env = Environment::default().with("DEVBOX_DOWNLOAD_URL", "http://127.0.0.1:9/feed");
        let paths = Paths::under(home.path());
        let config =
            crate::config::load(crate::config::ConfigSource::Defaults { would_be: home.path().join("devbox.toml") })
                .expect("defaults")
                .config;
        let now = at("2026-11-26T09:00:00Z");

        assert_eq!(cached_latest(&config, &env, &paths, now).await, None);
        let written = read(&cache_file(&paths)).expect("the failed ask is recorded");
        assert_eq!(written.asked_at, now);
        assert!(written.error.is_some());

        // A cache with an answer from this feed: returned as it is, offline, within the day...
        let mut c = cached("2026-11-26T08:00:00Z", Some("0.2.0"));
        c.feed = "http://127.0.0.1:9/feed/".into();
        std::fs::write(cache_file(&paths), serde_json::to_vec(&c).expect("json")).expect("write");
        let mtime = std::fs::metadata(cache_file(&paths)).and_then(|m| m.modified()).expect("mtime");
        let expected = Some(LatestRelease { version: "0.2.0".into(), seen_at: at("2026-11-26T08:00:00Z") });
        assert_eq!(cached_latest(&config, &env, &paths, now).await, expected);
        assert_eq!(std::fs::metadata(cache_file(&paths)).and_then(|m| m.modified()).expect("mtime"), mtime);
        // ...and after it, the ask fails but the last answer is still returned.
        assert_eq!(cached_latest(&config, &env, &paths, at("2026-11-28T09:00:00Z")).await, expected);
        assert_eq!(read(&cache_file(&paths)).expect("cache").asked_at, at("2026-11-28T09:00:00Z"));
    }
}
