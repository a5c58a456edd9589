//! STS, for two things: the registry container's own credentials, narrowed by a session policy to
//! reading the registry's part of the bucket, and the caller's principal (`aws:userid`), which
//! names the folder a fleet report is written to.
//!
//! A long-lived key never goes to the container when STS can mint a session from it. The session
//! is asked for with a policy that allows only `s3:GetObject` and `s3:ListBucket` on the
//! registry's bucket and root directory: `GetFederationToken` from an IAM user's key, or
//! `AssumeRole` on `registry.s3.role_arn` (from any credentials, SSO and assume-role sessions
//! included). A session policy can only narrow what the caller may do, never widen it.

use std::net::IpAddr;
use std::time::Duration;

use aws_sdk_sts::error::ProvideErrorMetadata;
use aws_sdk_sts::error::SdkError;

use super::{Aws, AwsCredentials, ContainerCredentials};
use crate::config::SessionMode;
use crate::error::{self, Error};

/// The name STS gives the federated user (2 to 32 of `\w+=,.@-`) and the assumed role's session.
const SESSION_NAME: &str = "devbox-registry";

/// The longest session `AssumeRole` gives.
const MAX_ROLE_SESSION: Duration = Duration::from_secs(12 * 3600);

/// How the container's credentials were narrowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Narrowing {
    /// STS GetFederationToken from the host's long-lived key.
    FederationToken,
    /// STS AssumeRole on this role.
    AssumeRole(String),
}

/// Who wrote a fleet report, as the report's key names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// `aws:userid`, from STS GetCallerIdentity: what an IAM policy's `${aws:userid}` is.
    UserId(String),
    /// An S3-compatible store without STS (Garage, MinIO without its STS): the access key ID.
    AccessKey(String),
}

impl Principal {
    /// The folder of the report's key: one path segment.
    pub fn segment(&self) -> &str {
        match self {
            Principal::UserId(id) | Principal::AccessKey(id) => id,
        }
    }
}

/// What an STS endpoint that answered said.
#[derive(Debug, Clone, PartialEq, Eq)]
enum StsAnswer {
    /// It has no STS: HTTP 501, the code `NotImplemented`, or an S3 error document (`<Error>` at
    /// its root, where STS answers `<ErrorResponse>`): an S3-compatible store answering for S3.
    NotImplemented(String),
    /// Any other refusal, or an answer that is not STS's.
    Refused(String),
}

/// The session policy: read the registry's objects, list its root, nothing else.
pub fn read_only_policy(bucket: &str, root_directory: &str) -> String {
    let root = root_directory.trim_matches('/');
    let (objects, list) = if root.is_empty() {
        (format!("arn:aws:s3:::{bucket}/*"), serde_json::json!({}))
    } else {
        (
            format!("arn:aws:s3:::{bucket}/{root}/*"),
            serde_json::json!({ "StringLike": { "s3:prefix": [root, format!("{root}/*")] } }),
        )
    };
    let mut list_statement = serde_json::json!({
        "Sid": "ListTheRegistry",
        "Effect": "Allow",
        "Action": "s3:ListBucket",
        "Resource": format!("arn:aws:s3:::{bucket}"),
    });
    if list.as_object().is_some_and(|c| !c.is_empty()) {
        list_statement["Condition"] = list;
    }
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            { "Sid": "ReadTheRegistry", "Effect": "Allow", "Action": "s3:GetObject", "Resource": objects },
            list_statement,
        ]
    })
    .to_string()
}

/// Whether `endpoint` names a store on this machine or on a private network, by its literal host:
/// `localhost`, or a loopback, private (RFC 1918, IPv6 unique-local) or link-local address. A
/// hostname is not resolved: an answer from DNS is not the user naming the store.
pub fn private_endpoint(endpoint: &str) -> bool {
    let Some(rest) = endpoint.split_once("://").map(|(_, rest)| rest) else { return false };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let host = if let Some(v6) = host.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        host.rsplit_once(':').map_or(host, |(host, _)| host)
    };
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => ip.is_loopback() || ip.is_private() || ip.is_link_local(),
        Ok(IpAddr::V6(ip)) => {
            ip.is_loopback() || (ip.segments()[0] & 0xfe00) == 0xfc00 || (ip.segments()[0] & 0xffc0) == 0xfe80
        }
        Err(_) => false,
    }
}

/// Whether `session = "auto"` may hand the long-lived key to an endpoint whose STS said `answer`:
/// only a store the user named on this machine or a private network, and only when it has no STS.
fn may_hand_the_key(mode: SessionMode, on_aws: bool, endpoint: &str, answer: &StsAnswer) -> bool {
    mode == SessionMode::Auto && !on_aws && private_endpoint(endpoint) && matches!(answer, StsAnswer::NotImplemented(_))
}

/// STS gave no answer at all (no connection, a timeout, a body that never came): its causes.
#[derive(Debug)]
struct NoAnswer(String);

/// What an STS call's failure says: an answer (`Ok`) or none at all (`Err`).
fn classify<E>(action: &str, err: SdkError<E>) -> Result<StsAnswer, NoAnswer>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match &err {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let code = service.err().code().unwrap_or("no error code").to_string();
            let said = format!("STS {action} answered HTTP {status} ({code})");
            let s3_error = service.raw().body().bytes().is_some_and(is_s3_error_document);
            if status == 501 || code == "NotImplemented" {
                Ok(StsAnswer::NotImplemented(said))
            } else if s3_error {
                Ok(StsAnswer::NotImplemented(format!("{said}, an S3 error where STS's would be: it has no STS")))
            } else {
                Ok(StsAnswer::Refused(said))
            }
        }
        SdkError::ResponseError(_) => {
            Ok(StsAnswer::Refused(format!("its answer to STS {action} is not an STS answer ({})", error::chain(&err))))
        }
        _ => Err(NoAnswer(error::chain(&err))),
    }
}

/// Whether `body` is an S3 error document (`<Error>` at its root, as S3 and the stores that copy
/// it answer), not an STS one (`<ErrorResponse>`): the endpoint answered for S3, not for STS.
fn is_s3_error_document(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body);
    let mut rest = text.trim_start();
    if let Some(after) = rest.strip_prefix("<?xml") {
        rest = after.split_once("?>").map_or("", |(_, r)| r).trim_start();
    }
    rest.starts_with("<Error>") || rest.starts_with("<Error ")
}

impl Aws {
    /// The credentials the registry container gets.
    ///
    /// - `registry.s3.role_arn` set: `AssumeRole` on it with the read-only session policy, from
    ///   whatever the host holds (a key, SSO, a role).
    /// - A long-lived key: `GetFederationToken` with that policy. The session carries the key's
    ///   hash, so that rotating the key is still seen.
    /// - A session the host already holds (SSO, assume-role, `credential_process`), no role: it is
    ///   handed over as it is, with all of the user's permissions; doctor says so.
    /// - `session = "off"`: the host's credentials as they are.
    ///
    /// When STS refuses, `session = "auto"` hands a long-lived key over only to an S3-compatible
    /// store on this machine or a private network whose STS is not implemented; anything else
    /// (AWS itself, a public endpoint, any other refusal) is an error. An STS that gives no answer
    /// is an error in every mode.
    pub async fn container_credentials(
        &self,
        mode: SessionMode,
        duration: Duration,
    ) -> Result<ContainerCredentials, Error> {
        let host = &self.credentials;
        let temporary = host.expiry.is_some() || host.session_token.is_some();
        if mode == SessionMode::Off || (temporary && self.session.role_arn.is_none()) {
            return Ok(ContainerCredentials::AsResolved(host.clone()));
        }
        let policy = read_only_policy(&self.bucket, &self.session.root_directory);
        let (action, asked) = match &self.session.role_arn {
            Some(role) => {
                let seconds = i32::try_from(duration.min(MAX_ROLE_SESSION).as_secs()).unwrap_or(i32::MAX);
                let asked = self
                    .sts
                    .assume_role()
                    .role_arn(role)
                    .role_session_name(SESSION_NAME)
                    .policy(&policy)
                    .duration_seconds(seconds)
                    .send()
                    .await
                    .map(|out| out.credentials().cloned())
                    .map_err(|e| classify("AssumeRole", e));
                ("AssumeRole", asked)
            }
            None => {
                let seconds = i32::try_from(duration.as_secs()).unwrap_or(i32::MAX);
                let asked = self
                    .sts
                    .get_federation_token()
                    .name(SESSION_NAME)
                    .policy(&policy)
                    .duration_seconds(seconds)
                    .send()
                    .await
                    .map(|out| out.credentials().cloned())
                    .map_err(|e| classify("GetFederationToken", e));
                ("GetFederationToken", asked)
            }
        };
        let refused = |answer: StsAnswer| {
            if self.session.role_arn.is_none() && may_hand_the_key(mode, self.on_aws, &self.endpoint, &answer) {
                return Ok(ContainerCredentials::LongLived(host.clone()));
            }
            let reason = match answer {
                StsAnswer::NotImplemented(said) | StsAnswer::Refused(said) => said,
            };
            if mode == SessionMode::Auto && !self.on_aws && !private_endpoint(&self.endpoint) {
                return Err(Error::LongLivedKeyWithheld { endpoint: self.endpoint.clone(), reason });
            }
            Err(Error::NoSessionCredentials {
                endpoint: self.endpoint.clone(),
                required: mode == SessionMode::Required || self.session.role_arn.is_some(),
                reason,
            })
        };
        let session = match asked {
            Ok(Some(session)) => session,
            Ok(None) => return refused(StsAnswer::Refused(format!("STS {action} answered without credentials"))),
            Err(Ok(answer)) => return refused(answer),
            Err(Err(NoAnswer(reason))) => {
                return Err(Error::SessionCredentialsUnanswered { endpoint: self.endpoint.clone(), reason });
            }
        };
        let expiry =
            std::time::SystemTime::try_from(*session.expiration()).ok().and_then(|t| jiff::Timestamp::try_from(t).ok());
        let credentials = AwsCredentials {
            access_key_id: session.access_key_id().to_string(),
            secret_access_key: session.secret_access_key().to_string(),
            session_token: Some(session.session_token().to_string()),
            expiry,
            resolved_at: jiff::Timestamp::now(),
            source_key: host.source_key.clone(),
        };
        let via = match &self.session.role_arn {
            Some(role) => Narrowing::AssumeRole(role.clone()),
            None => Narrowing::FederationToken,
        };
        Ok(ContainerCredentials::Narrowed(credentials, via))
    }

    /// Whose credentials these are, as a fleet report's key names it: `aws:userid` from STS
    /// GetCallerIdentity; on an S3-compatible store whose STS answers with a refusal (it has none),
    /// the access key ID. On AWS, and when STS gives no answer, an error.
    pub async fn principal(&self) -> Result<Principal, Error> {
        let asked = self.sts.get_caller_identity().send().await;
        let failed = |reason: String| Error::AwsCredentials {
            profile: self.session.profile.clone(),
            reason: format!("STS GetCallerIdentity, which names this machine's fleet report, failed: {reason}"),
        };
        match asked {
            Ok(out) => match out.user_id() {
                Some(id) if valid_segment(id) => Ok(Principal::UserId(id.to_string())),
                other => Err(failed(format!("it gave no usable user ID ({other:?})"))),
            },
            Err(err) => match classify("GetCallerIdentity", err) {
                Ok(_) if !self.on_aws && valid_segment(&self.credentials.access_key_id) => {
                    Ok(Principal::AccessKey(self.credentials.access_key_id.clone()))
                }
                Ok(StsAnswer::NotImplemented(said) | StsAnswer::Refused(said)) => Err(failed(said)),
                Err(NoAnswer(reason)) => Err(failed(reason)),
            },
        }
    }

    /// Whether the container's credentials will be the user's own session, unnarrowed: the host
    /// holds a session (SSO, assume-role) and no `registry.s3.role_arn` narrows it.
    pub fn hands_over_full_session(&self, mode: SessionMode) -> bool {
        let host = &self.credentials;
        mode != SessionMode::Off
            && self.session.role_arn.is_none()
            && (host.expiry.is_some() || host.session_token.is_some())
    }
}

/// One path segment of an S3 key that IAM's `${aws:userid}` can match: no `/`, no control
/// character, not `.` or `..`, at most 128 bytes.
pub fn valid_segment(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id != "."
        && id != ".."
        && !id.contains('/')
        && !id.chars().any(|c| c.is_control() || c.is_whitespace())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_reads_the_registry_root_and_nothing_else() {
        let policy: serde_json::Value =
            serde_json::from_str(&read_only_policy("acme-registry", "/registry")).expect("json");
        let statements = policy["Statement"].as_array().expect("statements");
        assert_eq!(statements.len(), 2);
        assert_eq!(statements[0]["Action"], "s3:GetObject");
        assert_eq!(statements[0]["Resource"], "arn:aws:s3:::acme-registry/registry/*");
        assert_eq!(statements[1]["Action"], "s3:ListBucket");
        assert_eq!(statements[1]["Resource"], "arn:aws:s3:::acme-registry");
        assert_eq!(
            statements[1]["Condition"]["StringLike"]["s3:prefix"],
            serde_json::json!(["registry", "registry/*"])
        );
        let whole: serde_json::Value = serde_json::from_str(&read_only_policy("b", "/")).expect("json");
        assert_eq!(whole["Statement"][0]["Resource"], "arn:aws:s3:::b/*");
        assert!(whole["Statement"][1].get("Condition").is_none());
        assert!(read_only_policy("acme-registry", "/registry").len() < 2048, "STS takes at most 2,048 characters");
    }

    #[test]
    fn only_a_store_named_on_a_private_network_counts_as_private() {
        for private in [
            "http://127.0.0.1:3900",
            "http://localhost:9000/",
            "https://10.1.2.3",
            "http://172.16.0.9:9000",
            "http://192.168.1.20:9000/x",
            "http://[::1]:3900",
            "http://[fd00::1]:9000",
            "http://user@127.0.0.1:1",
        ] {
            assert!(private_endpoint(private), "{private}");
        }
        for public in [
            "https://s3.us-east-1.amazonaws.com",
            "https://minio.acme.dev",
            "http://8.8.8.8:9000",
            "http://172.32.0.1",
            "http://host.docker.internal:3900",
            "127.0.0.1:3900",
            "",
        ] {
            assert!(!private_endpoint(public), "{public}");
        }
    }

    #[test]
    fn the_long_lived_key_goes_only_to_a_private_store_without_sts() {
        let none = StsAnswer::NotImplemented("HTTP 501".into());
        let refused = StsAnswer::Refused("HTTP 403 (AccessDenied)".into());
        let local = "http://127.0.0.1:3900";
        assert!(may_hand_the_key(SessionMode::Auto, false, local, &none));
        assert!(!may_hand_the_key(SessionMode::Required, false, local, &none), "required never");
        assert!(!may_hand_the_key(SessionMode::Auto, false, local, &refused), "a refusal is an error");
        assert!(!may_hand_the_key(SessionMode::Auto, true, local, &none), "AWS always has STS");
        assert!(!may_hand_the_key(SessionMode::Auto, false, "https://minio.acme.dev", &none), "a stranger");
    }

    #[test]
    fn an_s3_error_where_sts_would_answer_means_no_sts() {
        let garage = br#"<?xml version="1.0" encoding="UTF-8"?><Error><Code>InvalidRequest</Code><Message>Bad request: Missing X-Amz-Content-Sha256 field</Message></Error>"#;
        assert!(is_s3_error_document(garage));
        let sts = br#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Code>AccessDenied</Code></Error></ErrorResponse>"#;
        assert!(!is_s3_error_document(sts));
        assert!(!is_s3_error_document(b"<html>proxy says no</html>"));
        assert!(!is_s3_error_document(b""));
    }

    #[test]
    fn a_principal_is_one_path_segment() {
        assert!(valid_segment("AIDAEXAMPLE123"));
        assert!(valid_segment("AROAEXAMPLE:alice@acme.dev"));
        for bad in ["", ".", "..", "a/b", "a\u{1b}b", "a b", &"x".repeat(129)] {
            assert!(!valid_segment(bad), "{bad:?}");
        }
    }
}
