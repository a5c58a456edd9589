//! Config values with rules of their own, each parsed from the string a user writes. Their own
//! formats (`ByteSize`'s "536.9MB", humantime's "1day") are for reports; `config show` prints the
//! string as it was written (`load::Written`).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// An S3 bucket name, checked against AWS's naming rules. An empty string means "no bucket".
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct BucketName(String);

impl BucketName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BucketName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<BucketName> for String {
    fn from(b: BucketName) -> String {
        b.0
    }
}

impl TryFrom<String> for BucketName {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        let bad = |why: &str| Err(format!("{name:?} is not a valid S3 bucket name: {why}"));
        if !(3..=63).contains(&name.len()) {
            return bad("it must be 3 to 63 characters long");
        }
        if !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-') {
            return bad("use only lowercase letters, digits, '.' and '-'");
        }
        let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if !edge_ok(name.chars().next()) || !edge_ok(name.chars().last()) {
            return bad("it must begin and end with a letter or digit");
        }
        if name.contains("..") {
            return bad("it must not contain two dots in a row");
        }
        if name.parse::<std::net::Ipv4Addr>().is_ok() {
            return bad("it must not look like an IP address");
        }
        Ok(BucketName(name))
    }
}

/// Deserializes `""` as `None`, so an empty bucket reads as "no bucket".
pub(super) fn empty_as_none<'de, D, T>(de: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<String, Error = String>,
{
    let raw = String::deserialize(de)?;
    if raw.is_empty() {
        return Ok(None);
    }
    T::try_from(raw).map(Some).map_err(serde::de::Error::custom)
}

/// Serializes `None` back to the `""` it was read from.
pub(super) fn none_as_empty<S, T>(value: &Option<T>, ser: S) -> Result<S::Ok, S::Error>
where
    S: serde::Serializer,
    T: Clone + Into<String>,
{
    let raw: String = value.clone().map(Into::into).unwrap_or_default();
    ser.serialize_str(&raw)
}

/// A disk size such as "40GB" or "1.5 TiB".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct ByteSize(pub u64);

impl TryFrom<String> for ByteSize {
    type Error = String;

    fn try_from(raw: String) -> Result<Self, String> {
        let bad = || format!("{raw:?} is not a size: write a number and a unit, e.g. \"40GB\" or \"512MiB\"");
        let s = raw.trim();
        let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
        let (number, unit) = s.split_at(split);
        let number: f64 = number.parse().map_err(|_| bad())?;
        let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "kb" | "k" => 1_000,
            "mb" | "m" => 1_000_000,
            "gb" | "g" => 1_000_000_000,
            "tb" | "t" => 1_000_000_000_000,
            "kib" => 1 << 10,
            "mib" => 1 << 20,
            "gib" => 1 << 30,
            "tib" => 1 << 40,
            _ => return Err(bad()),
        };
        Ok(ByteSize((number * multiplier as f64) as u64))
    }
}

impl From<ByteSize> for String {
    fn from(size: ByteSize) -> String {
        size.to_string()
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
        let mut value = self.0 as f64;
        let mut unit = 0;
        while value >= 1000.0 && unit < UNITS.len() - 1 {
            value /= 1000.0;
            unit += 1;
        }
        if unit == 0 || value.fract() == 0.0 {
            write!(f, "{value:.0}{}", UNITS[unit])
        } else {
            write!(f, "{value:.1}{}", UNITS[unit])
        }
    }
}

/// A label that protects whatever carries it: `key` (any value) or `key=value`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct KeepLabel {
    pub key: String,
    pub value: Option<String>,
}

impl TryFrom<String> for KeepLabel {
    type Error = String;

    fn try_from(raw: String) -> Result<Self, String> {
        let (key, value) = match raw.split_once('=') {
            Some((key, value)) => (key.trim(), Some(value.to_string())),
            None => (raw.trim(), None),
        };
        if key.is_empty() {
            return Err(format!("{raw:?} has no label key: write \"key\" or \"key=value\""));
        }
        Ok(KeepLabel { key: key.to_string(), value })
    }
}

impl From<KeepLabel> for String {
    fn from(label: KeepLabel) -> String {
        match label.value {
            Some(value) => format!("{}={value}", label.key),
            None => label.key,
        }
    }
}

/// How often a scheduled job runs: a calendar word, a duration such as "6h", or "off".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub enum Period {
    Off,
    Hourly,
    Daily,
    Weekly,
    Every(Duration),
}

impl TryFrom<String> for Period {
    type Error = String;

    fn try_from(raw: String) -> Result<Self, String> {
        Ok(match raw.as_str() {
            "off" => Period::Off,
            "hourly" => Period::Hourly,
            "daily" => Period::Daily,
            "weekly" => Period::Weekly,
            other => match humantime::parse_duration(other) {
                Ok(d) if !d.is_zero() => Period::Every(d),
                _ => {
                    return Err(format!(
                        "{raw:?} is not a period: use \"hourly\", \"daily\", \"weekly\", \"off\" or a duration such as \"12h\""
                    ));
                }
            },
        })
    }
}

impl From<Period> for String {
    fn from(p: Period) -> String {
        match p {
            Period::Off => "off".into(),
            Period::Hourly => "hourly".into(),
            Period::Daily => "daily".into(),
            Period::Weekly => "weekly".into(),
            Period::Every(d) => humantime::format_duration(d).to_string(),
        }
    }
}

/// Whether the part of a URL after `scheme://` names this machine: `127.0.0.0/8`, `localhost` or
/// `[::1]`, literally (a name that resolves there is not enough: its resolution can change).
pub fn loopback_host(rest: &str) -> bool {
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let host = if host_port.starts_with('[') {
        host_port.split_inclusive(']').next().unwrap_or(host_port)
    } else {
        host_port.split(':').next().unwrap_or(host_port)
    };
    host == "localhost" || host == "[::1]" || host.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether `url` may be fetched at all: HTTPS, or plain HTTP to this machine only (`127.0.0.0/8`,
/// `localhost`, `[::1]`), where nothing travels a network someone else can change. Checked before
/// any connection is made; the error says why, for the caller to name the key or flag.
pub fn require_https(url: &str) -> Result<(), String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err("must start with https:// (or http:// to 127.0.0.1)".into());
    };
    if scheme.eq_ignore_ascii_case("https") {
        return Ok(());
    }
    if !scheme.eq_ignore_ascii_case("http") {
        return Err("must start with https:// (or http:// to 127.0.0.1)".into());
    }
    if loopback_host(rest) {
        Ok(())
    } else {
        Err("plain http:// is allowed only to this machine (127.0.0.1, [::1], localhost): anyone on the way \
             could change what it sends; use https://"
            .into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_plain_http_to_this_machine_is_allowed() {
        assert_eq!(require_https("https://dl.acme.dev/devbox/"), Ok(()));
        assert_eq!(require_https("HTTPS://dl.acme.dev/devbox/"), Ok(()));
        assert_eq!(require_https("http://127.0.0.1:8000/feed"), Ok(()));
        assert_eq!(require_https("http://[::1]:8000/feed"), Ok(()));
        assert_eq!(require_https("http://localhost/feed"), Ok(()));
        assert!(require_https("http://dl.acme.dev/devbox/").expect_err("plain").contains("use https://"));
        assert!(require_https("http://127.0.0.1.evil.dev/").is_err());
        assert!(require_https("ftp://127.0.0.1/").is_err());
        assert!(require_https("dl.acme.dev").is_err());
    }

    #[test]
    fn bucket_names_follow_aws_rules() {
        for ok in ["abc", "acme-docker-registry", "my.bucket.1"] {
            assert!(BucketName::try_from(ok.to_string()).is_ok(), "{ok}");
        }
        for bad in ["ab", "Acme", "-acme", "acme-", "a..b", "192.168.1.1", "under_score", &"a".repeat(64)] {
            assert!(BucketName::try_from(bad.to_string()).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes_parse_decimal_and_binary_units() {
        assert_eq!(ByteSize::try_from("40GB".to_string()), Ok(ByteSize(40_000_000_000)));
        assert_eq!(ByteSize::try_from("512MiB".to_string()), Ok(ByteSize(512 << 20)));
        assert_eq!(ByteSize::try_from("1.5 TB".to_string()), Ok(ByteSize(1_500_000_000_000)));
        assert!(ByteSize::try_from("lots".to_string()).is_err());
        assert!(ByteSize::try_from("12 parsecs".to_string()).is_err());
        assert_eq!(ByteSize(40_000_000_000).to_string(), "40GB");
        assert_eq!(ByteSize(1_500_000).to_string(), "1.5MB");
    }

    #[test]
    fn keep_labels_need_a_key() {
        assert_eq!(
            KeepLabel::try_from("team=infra".to_string()),
            Ok(KeepLabel { key: "team".into(), value: Some("infra".into()) })
        );
        assert_eq!(KeepLabel::try_from("devbox.keep".to_string()).map(|l| l.value), Ok(None));
        assert!(KeepLabel::try_from("=infra".to_string()).is_err());
    }

    #[test]
    fn periods_accept_words_and_durations() {
        assert_eq!(Period::try_from("weekly".to_string()), Ok(Period::Weekly));
        assert_eq!(Period::try_from("6h".to_string()), Ok(Period::Every(Duration::from_secs(6 * 3600))));
        assert!(Period::try_from("0s".to_string()).is_err());
        assert!(Period::try_from("fortnightly".to_string()).is_err());
        assert_eq!(String::from(Period::Every(Duration::from_secs(90 * 60))), "1h 30m");
    }
}
