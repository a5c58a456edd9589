//! Why a registry cannot read its S3 storage, told from the registry's own words: the error detail
//! in its HTTP answer, or else its last log lines. Pure, so every wording S3 servers use is a test.
//!
//! The registry relays what S3 said (`ExpiredToken`, `RequestTimeTooSkewed`, …) inside its own
//! error, usually an HTTP 500 or, once its storage health check has failed a few times, a 503 on
//! every path. Naming S3's reason turns "the registry is broken" into the one command that fixes it.

use serde::Serialize;

/// The root cause of a failed storage read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum StorageCause {
    /// S3 refused the registry's key: expired, revoked, or not allowed on the bucket.
    Credentials { code: String },
    /// S3 refused the request's date: the engine's clock (the VM's) is off.
    Clock { code: String },
    /// The bucket named in the config does not exist.
    NoSuchBucket,
    /// The registry could not reach S3 at all.
    Unreachable { reason: String },
}

impl StorageCause {
    /// What to tell the user, after "the registry cannot read its storage".
    pub fn explain(&self) -> String {
        match self {
            StorageCause::Credentials { code } => {
                format!("S3 refused the registry's AWS credentials ({code}): they expired or were revoked")
            }
            StorageCause::Clock { code } => {
                format!("S3 refused the registry's requests because the Docker engine's clock is off ({code})")
            }
            StorageCause::NoSuchBucket => "the bucket in registry.s3.bucket does not exist (NoSuchBucket)".to_string(),
            StorageCause::Unreachable { reason } => format!("the registry cannot reach S3 ({reason})"),
        }
    }

    /// The one fix for this cause: what to do, and the devbox command that does it, when there is one.
    pub fn remedy(&self) -> StorageRemedy {
        let (what, command) = match self {
            StorageCause::Credentials { .. } => ("Renew the registry's credentials", Some(FixCommand::RegistryUp)),
            StorageCause::Clock { .. } => ("Set the Docker VM's clock from this host", Some(FixCommand::ClockSync)),
            StorageCause::NoSuchBucket => {
                ("Check registry.s3.bucket and registry.s3.region in devbox.toml (devbox config show)", None)
            }
            StorageCause::Unreachable { .. } => (
                "Check registry.s3.endpoint and your network; the registry reaches S3 from inside the Docker engine",
                None,
            ),
        };
        StorageRemedy { what, command }
    }

    /// The code that names it in a message (`RequestTimeTooSkewed`); `None` for an unreachable S3,
    /// whose reason (`connection refused`) would read as the registry's own.
    pub fn code(&self) -> Option<&str> {
        match self {
            StorageCause::Credentials { code } | StorageCause::Clock { code } => Some(code),
            StorageCause::NoSuchBucket => Some("NoSuchBucket"),
            StorageCause::Unreachable { .. } => None,
        }
    }
}

/// The devbox commands that fix a storage cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FixCommand {
    RegistryUp,
    ClockSync,
}

impl FixCommand {
    pub fn command(self) -> &'static str {
        match self {
            FixCommand::RegistryUp => "devbox registry up",
            FixCommand::ClockSync => "devbox clock sync",
        }
    }
}

/// What fixes a storage cause: in words (`what`, without a final stop), and the command that does
/// it, when devbox has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageRemedy {
    pub what: &'static str,
    pub command: Option<FixCommand>,
}

impl StorageRemedy {
    /// The words alone, as a sentence: a doctor finding shows the command apart.
    pub fn hint(&self) -> String {
        format!("{}.", self.what)
    }

    /// The words with the command: "Renew the registry's credentials: `devbox registry up`."
    pub fn sentence(&self) -> String {
        match self.command {
            Some(command) => format!("{}: `{}`.", self.what, command.command()),
            None => self.hint(),
        }
    }
}

/// The S3 error codes (and phrases of S3-compatible servers) for each cause, most specific first.
/// A skewed clock is checked before credentials: AWS answers a stale date with `AccessDenied`-like
/// wording on some paths, and the date is then the cause to fix first.
const CLOCK: &[&str] =
    &["RequestTimeTooSkewed", "RequestExpired", "too skewed", "Date is too old", "date too far", "request time"];
const CREDENTIALS: &[&str] = &[
    "ExpiredToken",
    "TokenRefreshRequired",
    "InvalidAccessKeyId",
    "InvalidToken",
    "SignatureDoesNotMatch",
    "has expired",
    "AccessDenied",
    "No such key",
    "NoCredentialProviders",
];
const UNREACHABLE: &[&str] = &[
    "connection refused",
    "no such host",
    "i/o timeout",
    "Client.Timeout",
    "context deadline exceeded",
    "network is unreachable",
    "connection reset",
    "TLS handshake",
];

/// Names the cause in `text` (a registry's error body, or its log lines); `None` when it says
/// nothing devbox recognises. The registry relays S3's error only as text, so this is the one place
/// that reads it: `api.rs` calls it on an error answer's body, `converge.rs` on the log lines, and
/// everything after matches on the `StorageCause`.
pub fn diagnose(text: &str) -> Option<StorageCause> {
    let lower = text.to_ascii_lowercase();
    let find = |needles: &[&str]| needles.iter().find(|n| lower.contains(&n.to_ascii_lowercase())).map(|n| code_of(n));
    if let Some(code) = find(CLOCK) {
        return Some(StorageCause::Clock { code });
    }
    if lower.contains("nosuchbucket") || lower.contains("bucket does not exist") {
        return Some(StorageCause::NoSuchBucket);
    }
    if let Some(code) = find(CREDENTIALS) {
        return Some(StorageCause::Credentials { code });
    }
    find(UNREACHABLE).map(|reason| StorageCause::Unreachable { reason })
}

/// The code or phrase that matched, never the text around it: that may hold a key ID, and error
/// text is printed while keys are not.
fn code_of(needle: &str) -> String {
    needle.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_codes_name_their_cause() {
        let cases = [
            (
                "ExpiredToken: The provided token has expired.",
                StorageCause::Credentials { code: "ExpiredToken".into() },
            ),
            (
                "InvalidAccessKeyId: The AWS Access Key Id you provided does not exist in our records.",
                StorageCause::Credentials { code: "InvalidAccessKeyId".into() },
            ),
            ("AccessDenied: Access Denied", StorageCause::Credentials { code: "AccessDenied".into() }),
            (
                "RequestTimeTooSkewed: The difference between the request time and the current time is too large.",
                StorageCause::Clock { code: "RequestTimeTooSkewed".into() },
            ),
            ("NoSuchBucket: The specified bucket does not exist", StorageCause::NoSuchBucket),
        ];
        for (text, cause) in cases {
            assert_eq!(diagnose(text), Some(cause), "{text}");
        }
    }

    #[test]
    fn a_registry_500_body_with_the_driver_error_inside() {
        let body = r#"{"errors":[{"code":"UNKNOWN","message":"unknown error","detail":{"DriverName":"s3aws","Enclosed":{"Err":{}}, "Message":"s3aws: InvalidAccessKeyId: Forbidden: Access key GK31c2f218a2e44f485b94239e has expired\n\tstatus code: 403"}}]}"#;
        assert_eq!(diagnose(body), Some(StorageCause::Credentials { code: "InvalidAccessKeyId".into() }));
    }

    #[test]
    fn an_s3_compatible_servers_phrases() {
        assert_eq!(
            diagnose("Forbidden: Access key GK0123 has expired"),
            Some(StorageCause::Credentials { code: "has expired".into() })
        );
        assert_eq!(
            diagnose("AccessDenied: Forbidden: Date is too old"),
            Some(StorageCause::Clock { code: "Date is too old".into() })
        );
    }

    #[test]
    fn no_key_id_leaks_into_the_code() {
        let Some(StorageCause::Credentials { code }) = diagnose("Access key GKabc123 has expired") else {
            panic!("not recognised")
        };
        assert!(!code.contains("GK"), "{code}");
    }

    #[test]
    fn unreachable_s3() {
        let log = r#"level=error msg="s3aws: RequestError: send request failed\ncaused by: Get http://host.docker.internal:3900/bucket: dial tcp 172.17.0.1:3900: connect: connection refused""#;
        assert_eq!(diagnose(log), Some(StorageCause::Unreachable { reason: "connection refused".into() }));
    }

    #[test]
    fn the_clock_wins_over_access_denied() {
        assert!(matches!(diagnose("AccessDenied: RequestTimeTooSkewed"), Some(StorageCause::Clock { .. })));
    }

    #[test]
    fn text_without_a_known_cause() {
        assert_eq!(diagnose("unknown error"), None);
        assert_eq!(diagnose(""), None);
    }

    #[test]
    fn each_cause_has_one_remedy() {
        let bucket = StorageCause::NoSuchBucket.remedy();
        assert!(bucket.hint().contains("registry.s3.bucket") && bucket.command.is_none());
        assert_eq!(bucket.sentence(), bucket.hint());
        let clock = StorageCause::Clock { code: "x".into() }.remedy();
        assert_eq!(clock.command, Some(FixCommand::ClockSync));
        assert_eq!(clock.sentence(), "Set the Docker VM's clock from this host: `devbox clock sync`.");
        let credentials = StorageCause::Credentials { code: "x".into() }.remedy();
        assert_eq!(credentials.hint(), "Renew the registry's credentials.");
        assert_eq!(credentials.command, Some(FixCommand::RegistryUp));
    }
}
