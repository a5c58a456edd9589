//! AWS credentials and S3, in devbox's terms. Only this module imports the AWS SDK.
//!
//! Credentials are resolved on the host by aws-config (environment, profile, SSO, assume-role) and
//! kept in memory only: they are handed to the registry container and never written or printed.

use std::fmt;
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{ProvideCredentials, Region};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

use crate::config::{S3Config, SessionMode};
use crate::error::{self, Error};

const CREDENTIALS_TIMEOUT: Duration = Duration::from_secs(15);
/// How long one S3 operation may take, retries included.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(10);

/// Credentials for the registry's S3 driver. `Debug` never shows the secret parts.
#[derive(Clone, PartialEq)]
pub struct AwsCredentials {
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
    /// When short-lived credentials (SSO, assume-role) stop working.
    pub expiry: Option<jiff::Timestamp>,
    /// When devbox resolved them: with `expiry`, their lifetime.
    pub resolved_at: jiff::Timestamp,
    /// A keyed hash of the key these credentials are judged by when their expiry cannot judge
    /// them: their own key when they have no expiry, or the long-lived key that minted this
    /// session. `None` for sessions from SSO, assume-role or `credential_process`. Never the key.
    pub source_key: Option<String>,
}

impl fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &"<redacted>")
            .field("expiry", &self.expiry)
            .finish_non_exhaustive()
    }
}

impl AwsCredentials {
    /// The variables the registry's S3 driver reads (aws-sdk-go's environment provider). The
    /// instance-metadata lookup is switched off, so a container never reaches for an EC2 role.
    pub fn container_env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("AWS_ACCESS_KEY_ID".to_string(), self.access_key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY".to_string(), self.secret_access_key.clone()),
            ("AWS_EC2_METADATA_DISABLED".to_string(), "true".to_string()),
        ];
        if let Some(token) = &self.session_token {
            env.push(("AWS_SESSION_TOKEN".to_string(), token.clone()));
        }
        env
    }
}

#[cfg(test)]
impl AwsCredentials {
    pub fn for_tests(access_key_id: &str, expiry: Option<jiff::Timestamp>, resolved_at: jiff::Timestamp) -> Self {
        let secret_access_key = format!("secret-of-{access_key_id}");
        AwsCredentials {
            source_key: expiry.is_none().then(|| key_hash(access_key_id, &secret_access_key)),
            access_key_id: access_key_id.to_string(),
            secret_access_key,
            session_token: None,
            expiry,
            resolved_at,
        }
    }

    /// A session minted from `minter`, as `session_credentials` makes one.
    pub fn minted_for_tests(minter: &AwsCredentials, expiry: jiff::Timestamp, resolved_at: jiff::Timestamp) -> Self {
        AwsCredentials {
            access_key_id: "ASIAMINTED".into(),
            secret_access_key: "minted-secret".into(),
            session_token: Some("minted-token".into()),
            expiry: Some(expiry),
            resolved_at,
            source_key: minter.source_key.clone(),
        }
    }
}

/// A keyed hash that tells two keys apart without revealing either: the secret is part of what is
/// hashed, so the hash cannot be checked against a guessed key ID without the secret too.
fn key_hash(access_key_id: &str, secret_access_key: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for part in ["devbox-credentials-key", access_key_id, secret_access_key] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    hex::encode(&hasher.finalize()[..16])
}

/// What the registry container was given, and why.
#[derive(Debug, Clone, PartialEq)]
pub enum ContainerCredentials {
    /// A session minted by STS GetSessionToken from the host's long-lived key.
    Minted(AwsCredentials),
    /// The host's credentials as they are: already temporary, or `registry.s3.session = "off"`.
    AsResolved(AwsCredentials),
    /// The host's long-lived key, because the endpoint has no STS (`session = "auto"`).
    LongLived(AwsCredentials),
}

impl ContainerCredentials {
    pub fn credentials(&self) -> &AwsCredentials {
        match self {
            ContainerCredentials::Minted(c)
            | ContainerCredentials::AsResolved(c)
            | ContainerCredentials::LongLived(c) => c,
        }
    }
}

/// The error for a credential source that answered, but with no credentials. Output that is not
/// credentials is named without being quoted: whatever it was, it may hold a secret. Anything else
/// is the source refusing (an expired SSO login, a `credential_process` that failed), which logging
/// in again fixes.
fn refused(profile: &str, reason: &str) -> Error {
    if is_unreadable_output(reason) {
        return Error::AwsCredentialsUnreadable { profile: profile.to_string() };
    }
    Error::AwsCredentials { profile: profile.to_string(), reason: reason.to_string() }
}

/// Whether aws-config's error says a `credential_process` printed something that is not
/// credentials. aws-config reports that only in words (a `ProviderError` holding a sentence, the
/// same kind as a process that failed), so they are read here, once, into
/// `Error::AwsCredentialsUnreadable`; its wording is in aws-config's `credential_process.rs`.
fn is_unreadable_output(reason: &str) -> bool {
    const UNREADABLE: [&str; 2] = ["could not parse response", "could not decode output"];
    UNREADABLE.iter().any(|words| reason.contains(words))
}

/// Why one object of a bucket could not be read. Its `Display` is one line for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObjectError {
    #[error("no object {key} in bucket {bucket} at {endpoint} (HTTP 404)")]
    NotFound { bucket: String, key: String, endpoint: String },
    #[error("access denied to s3://{bucket}/{key} for these credentials (HTTP 403)")]
    Denied { bucket: String, key: String },
    /// S3 answered with another status, and the code it gave, when it gave one.
    #[error("HTTP {status} from {endpoint}{}", code.as_ref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Status { endpoint: String, status: u16, code: Option<String> },
    #[error("{endpoint} did not answer within {seconds}s")]
    TimedOut { endpoint: String, seconds: u64 },
    /// The request failed on the way (DNS, connection, TLS), with its causes.
    #[error("{0}")]
    Unreachable(String),
    #[error("s3://{bucket}/{key} is {size} bytes, over the limit of {limit}")]
    TooLarge { bucket: String, key: String, size: u64, limit: u64 },
    #[error("s3://{bucket}/{key} is not text")]
    NotText { bucket: String, key: String },
    #[error("cannot sign a URL for s3://{bucket}/{key}: {reason}")]
    Unsigned { bucket: String, key: String, reason: String },
}

/// AWS as the registry's bucket needs it: resolved credentials, and S3 and STS clients.
pub struct Aws {
    client: aws_sdk_s3::Client,
    sts: aws_sdk_sts::Client,
    credentials: AwsCredentials,
    bucket: String,
    endpoint: String,
    /// No `registry.s3.endpoint`: AWS itself, which always has STS.
    on_aws: bool,
}

/// Who the credentials belong to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub account: String,
    pub arn: String,
}

impl Aws {
    /// Resolves credentials for `registry.s3.profile` and prepares clients for the bucket.
    pub async fn connect(s3: &S3Config) -> Result<Aws, Error> {
        let bucket = s3.bucket.as_ref().map(|b| b.to_string()).unwrap_or_default();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(s3.region.clone()))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(3))
                    .operation_timeout(OPERATION_TIMEOUT)
                    .build(),
            )
            .retry_config(RetryConfig::standard().with_max_attempts(2));
        if !s3.profile.is_empty() {
            loader = loader.profile_name(&s3.profile);
        }
        // Through the company proxy, trusting the company CAs (`http.rs`); a plain-HTTP endpoint
        // (an S3-compatible store on this machine) without TLS.
        loader = loader.http_client(crate::http::aws_sdk(s3.endpoint.starts_with("http://")));
        let sdk = loader.load().await;
        let profile = s3.profile.clone();
        let no_credentials = |reason: String| Error::AwsCredentials { profile: profile.clone(), reason };
        let provider =
            sdk.credentials_provider().ok_or_else(|| no_credentials("no credentials provider is configured".into()))?;
        let resolved = tokio::time::timeout(CREDENTIALS_TIMEOUT, provider.provide_credentials())
            .await
            .map_err(|_| Error::AwsCredentialsTimeout {
                profile: profile.clone(),
                seconds: CREDENTIALS_TIMEOUT.as_secs(),
            })?
            .map_err(|e| refused(&profile, &error::chain(&e)))?;
        let credentials = AwsCredentials {
            access_key_id: resolved.access_key_id().to_string(),
            secret_access_key: resolved.secret_access_key().to_string(),
            session_token: resolved.session_token().map(String::from),
            expiry: resolved.expiry().and_then(|t| jiff::Timestamp::try_from(t).ok()),
            resolved_at: jiff::Timestamp::now(),
            source_key: None,
        };
        // Credentials without an expiry can only be judged by which key they are.
        let credentials = AwsCredentials {
            source_key: credentials
                .expiry
                .is_none()
                .then(|| key_hash(&credentials.access_key_id, &credentials.secret_access_key)),
            ..credentials
        };
        // Handed to a registry, these would be refused by S3 from its first request on.
        if let Some(expiry) = credentials.expiry
            && expiry <= credentials.resolved_at
        {
            return Err(Error::AwsCredentialsExpired { profile, expiry: expiry.to_string() });
        }

        let mut config = aws_sdk_s3::config::Builder::from(&sdk).force_path_style(s3.path_style);
        let mut sts = aws_sdk_sts::config::Builder::from(&sdk);
        // An S3-compatible store (and the test server) answers STS at the same endpoint.
        if !s3.endpoint.is_empty() {
            config = config.endpoint_url(&s3.endpoint);
            sts = sts.endpoint_url(&s3.endpoint);
        }
        let endpoint = if s3.endpoint.is_empty() {
            format!("https://s3.{}.amazonaws.com", s3.region)
        } else {
            s3.endpoint.clone()
        };
        Ok(Aws {
            client: aws_sdk_s3::Client::from_conf(config.build()),
            sts: aws_sdk_sts::Client::from_conf(sts.build()),
            credentials,
            bucket,
            endpoint,
            on_aws: s3.endpoint.is_empty(),
        })
    }

    pub fn credentials(&self) -> &AwsCredentials {
        &self.credentials
    }

    /// The credentials the registry container gets. A long-lived key (no expiry, no session token)
    /// stays on the host: STS GetSessionToken mints a session of `duration` from it, which carries
    /// the key's hash so that rotating the key is still seen. Credentials that are already
    /// temporary are handed over as they are.
    ///
    /// Under `auto`, an S3-compatible endpoint that answers but gives no session (it has no STS:
    /// MinIO, Garage, Ceph) gets the key itself; AWS always has STS, so there a refusal is an
    /// error. Under `required` it is an error everywhere. An STS that gives no answer is an error
    /// in every mode: nothing is handed over that the user did not choose.
    pub async fn container_credentials(
        &self,
        mode: SessionMode,
        duration: Duration,
    ) -> Result<ContainerCredentials, Error> {
        let host = &self.credentials;
        if mode == SessionMode::Off || host.expiry.is_some() || host.session_token.is_some() {
            return Ok(ContainerCredentials::AsResolved(host.clone()));
        }
        let seconds = i32::try_from(duration.as_secs()).unwrap_or(i32::MAX);
        let asked = self.sts.get_session_token().duration_seconds(seconds).send().await;
        let answered_without_session = |reason: String| {
            if mode == SessionMode::Auto && !self.on_aws {
                Ok(ContainerCredentials::LongLived(host.clone()))
            } else {
                Err(Error::NoSessionCredentials {
                    endpoint: self.endpoint.clone(),
                    required: mode == SessionMode::Required,
                    reason,
                })
            }
        };
        let out = match asked {
            Ok(out) => out,
            Err(SdkError::ServiceError(service)) => {
                let status = service.raw().status().as_u16();
                let code = aws_sdk_sts::error::ProvideErrorMetadata::code(service.err()).unwrap_or("no error code");
                return answered_without_session(format!("STS GetSessionToken answered HTTP {status} ({code})"));
            }
            Err(err @ SdkError::ResponseError(_)) => {
                return answered_without_session(format!(
                    "its answer to STS GetSessionToken is not an STS answer ({})",
                    error::chain(&err)
                ));
            }
            Err(err) => {
                return Err(Error::SessionCredentialsUnanswered {
                    endpoint: self.endpoint.clone(),
                    reason: error::chain(&err),
                });
            }
        };
        let Some(session) = out.credentials() else {
            return answered_without_session("STS GetSessionToken answered without credentials".into());
        };
        let expiry =
            std::time::SystemTime::try_from(*session.expiration()).ok().and_then(|t| jiff::Timestamp::try_from(t).ok());
        Ok(ContainerCredentials::Minted(AwsCredentials {
            access_key_id: session.access_key_id().to_string(),
            secret_access_key: session.secret_access_key().to_string(),
            session_token: Some(session.session_token().to_string()),
            expiry,
            resolved_at: jiff::Timestamp::now(),
            source_key: host.source_key.clone(),
        }))
    }

    /// Proves the bucket exists and these credentials may use it (HeadBucket). Returns the latency.
    pub async fn check_bucket(&self) -> Result<Duration, Error> {
        let started = Instant::now();
        match self.client.head_bucket().bucket(&self.bucket).send().await {
            Ok(_) => Ok(started.elapsed()),
            Err(err) => Err(self.bucket_error(err)),
        }
    }

    /// The account and identity the credentials belong to (STS GetCallerIdentity).
    pub async fn identity(&self) -> Result<Identity, Error> {
        let out = self.sts.get_caller_identity().send().await.map_err(|e| Error::AwsCredentials {
            profile: String::new(),
            reason: format!("STS GetCallerIdentity failed: {}", error::chain(&e)),
        })?;
        Ok(Identity {
            account: out.account().unwrap_or_default().to_string(),
            arn: out.arn().unwrap_or_default().to_string(),
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The object `key` of the bucket, as text (a release feed's `latest`: a version, a line).
    pub async fn get_text(&self, key: &str) -> Result<String, ObjectError> {
        let bytes = self.get_bytes(key, 64 * 1024).await?;
        String::from_utf8(bytes).map_err(|_| ObjectError::NotText { bucket: self.bucket.clone(), key: key.to_string() })
    }

    /// The object `key` of the bucket (a team's devbox.toml), refused above `max_bytes` without
    /// reading past it.
    pub async fn get_bytes(&self, key: &str, max_bytes: u64) -> Result<Vec<u8>, ObjectError> {
        self.get_capped(key, max_bytes).await.map_err(|err| match err {
            GetFailed::Request(err) => self.object_error(key, *err),
            GetFailed::Body(BodyError::TooLarge(size)) => {
                ObjectError::TooLarge { bucket: self.bucket.clone(), key: key.to_string(), size, limit: max_bytes }
            }
            GetFailed::Body(BodyError::Failed(reason)) => ObjectError::Unreachable(reason),
        })
    }

    /// The one `GetObject` request: the object `key`, refused above `max_bytes` without reading
    /// past it. Each caller words the failure in its own error.
    async fn get_capped(&self, key: &str, max_bytes: u64) -> Result<Vec<u8>, GetFailed> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| GetFailed::Request(Box::new(e)))?;
        capped_body(out, max_bytes).await.map_err(GetFailed::Body)
    }

    /// A URL that lets a plain HTTP client GET the object `key` for `valid_for`, signed with these
    /// credentials (so self_update can download a release from a private bucket).
    pub async fn presigned_get(&self, key: &str, valid_for: Duration) -> Result<String, ObjectError> {
        let unsigned =
            |reason: String| ObjectError::Unsigned { bucket: self.bucket.clone(), key: key.to_string(), reason };
        let config =
            aws_sdk_s3::presigning::PresigningConfig::expires_in(valid_for).map_err(|e| unsigned(e.to_string()))?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(config)
            .await
            .map_err(|e| unsigned(error::chain(&e)))?;
        Ok(request.uri().to_string())
    }

    fn object_error<E: ProvideErrorMetadata + std::error::Error + 'static>(
        &self,
        key: &str,
        err: SdkError<E>,
    ) -> ObjectError {
        let (bucket, key, endpoint) = (self.bucket.clone(), key.to_string(), self.endpoint.clone());
        match &err {
            SdkError::ServiceError(service) => match service.raw().status().as_u16() {
                404 => ObjectError::NotFound { bucket, key, endpoint },
                403 => ObjectError::Denied { bucket, key },
                status => ObjectError::Status { endpoint, status, code: service.err().code().map(String::from) },
            },
            SdkError::TimeoutError(_) => ObjectError::TimedOut { endpoint, seconds: OPERATION_TIMEOUT.as_secs() },
            _ => ObjectError::Unreachable(error::chain(&err)),
        }
    }

    /// A repository and one of its tags, as the registry's storage under `root` holds them, read
    /// from the bucket itself (`<root>/docker/registry/v2/repositories/<name>/_manifests/tags/<tag>/`).
    /// `None` when the bucket holds no tagged image there. A few small listings, whatever the size.
    pub async fn stored_tag(&self, root: &str) -> Result<Option<(String, String)>, Error> {
        let root = root.trim_matches('/');
        let repos = if root.is_empty() {
            "docker/registry/v2/repositories/".to_string()
        } else {
            format!("{root}/docker/registry/v2/repositories/")
        };
        let mut start_after: Option<String> = None;
        // Each round finds the next repository by its first key, then that repository's first tag.
        for _ in 0..5 {
            let listing = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&repos)
                .set_start_after(start_after.clone())
                .max_keys(1)
                .send()
                .await
                .map_err(|e| self.bucket_error(e))?;
            let Some(key) = listing.contents().first().and_then(|o| o.key()) else { return Ok(None) };
            // Path components of a repository name never start with "_"; its own keys do.
            let Some((name, _)) = key[repos.len()..].split_once("/_") else { return Ok(None) };
            let tags = format!("{repos}{name}/_manifests/tags/");
            let listing = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&tags)
                .max_keys(1)
                .send()
                .await
                .map_err(|e| self.bucket_error(e))?;
            if let Some(tag) =
                listing.contents().first().and_then(|o| o.key()).and_then(|k| k[tags.len()..].split('/').next())
            {
                return Ok(Some((name.to_string(), tag.to_string())));
            }
            // Untagged: past this repository's keys ("~" sorts after every name character).
            start_after = Some(format!("{repos}{name}/~"));
        }
        Ok(None)
    }

    fn bucket_error<E: std::error::Error + 'static>(&self, err: SdkError<E>) -> Error {
        let unreachable = |reason: String| Error::S3Unreachable {
            endpoint: self.endpoint.clone(),
            bucket: self.bucket.clone(),
            reason,
        };
        let bucket = |reason: &str| Error::S3Bucket {
            endpoint: self.endpoint.clone(),
            bucket: self.bucket.clone(),
            reason: reason.to_string(),
        };
        match &err {
            SdkError::TimeoutError(_) => unreachable(format!("no answer within {}s", OPERATION_TIMEOUT.as_secs())),
            SdkError::DispatchFailure(_) => unreachable(error::chain(&err)),
            SdkError::ServiceError(service) => match service.raw().status().as_u16() {
                404 => bucket("the bucket does not exist"),
                403 => bucket("access denied for these credentials"),
                301 | 400 => bucket("the bucket is in another region than registry.s3.region"),
                status => bucket(&format!("unexpected HTTP status {status}")),
            },
            _ => unreachable(error::chain(&err)),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Objects under a prefix, for the fleet reports (issue 17): put, list, get and delete, each error
// saying which S3 action on which resource failed, so a denial names what an IAM policy must allow.

/// One S3 object request that failed, by what happened.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("S3 refused {action} on {resource} for these credentials (HTTP 403)")]
    Denied { action: &'static str, resource: String },
    #[error("no object {resource} (HTTP 404)")]
    NotFound { resource: String },
    #[error("{action} on {resource}: {endpoint} did not answer within 10s")]
    Timeout { action: &'static str, resource: String, endpoint: String },
    #[error("{action} on {resource}: {reason}")]
    Failed { action: &'static str, resource: String, reason: String },
    #[error("{resource} is {size} bytes, over the {limit}-byte limit")]
    TooLarge { resource: String, size: u64, limit: u64 },
}

/// Why a `GetObject` gave no whole object: the request failed, or its body.
enum GetFailed {
    Request(Box<SdkError<aws_sdk_s3::operation::get_object::GetObjectError>>),
    Body(BodyError),
}

/// Why an object's body was not read whole.
enum BodyError {
    /// Over the limit: its declared length, or as much as had arrived when it passed the limit.
    TooLarge(u64),
    Failed(String),
}

/// The body of a `GetObject` answer, refused above `max_bytes` without reading past it: by its
/// declared length first, then as it streams (a length can be missing, or wrong).
async fn capped_body(
    out: aws_sdk_s3::operation::get_object::GetObjectOutput,
    max_bytes: u64,
) -> Result<Vec<u8>, BodyError> {
    if let Some(size) = out.content_length().map(|l| l.max(0) as u64).filter(|s| *s > max_bytes) {
        return Err(BodyError::TooLarge(size));
    }
    let mut body = out.body;
    let mut bytes = Vec::new();
    while let Some(chunk) = body.try_next().await.map_err(|e| BodyError::Failed(error::chain(&e)))? {
        bytes.extend_from_slice(&chunk);
        if bytes.len() as u64 > max_bytes {
            return Err(BodyError::TooLarge(bytes.len() as u64));
        }
    }
    Ok(bytes)
}

/// One object of a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    pub last_modified: Option<jiff::Timestamp>,
}

impl AwsCredentials {
    /// The parts that must never leave this machine, so a report can be checked for them.
    pub fn secret_parts(&self) -> Vec<&str> {
        std::iter::once(self.secret_access_key.as_str()).chain(self.session_token.as_deref()).collect()
    }
}

impl Aws {
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The resource an IAM policy names for `key` of this bucket (the bucket itself for "").
    pub fn resource(&self, key: &str) -> String {
        if key.is_empty() {
            format!("arn:aws:s3:::{}", self.bucket)
        } else {
            format!("arn:aws:s3:::{}/{key}", self.bucket)
        }
    }

    fn action_error<E: std::error::Error + 'static>(
        &self,
        action: &'static str,
        key: &str,
        err: SdkError<E>,
    ) -> ActionError {
        let resource = self.resource(key);
        match &err {
            SdkError::TimeoutError(_) => ActionError::Timeout { action, resource, endpoint: self.endpoint.clone() },
            SdkError::ServiceError(service) => match service.raw().status().as_u16() {
                403 => ActionError::Denied { action, resource },
                404 => ActionError::NotFound { resource },
                status => {
                    ActionError::Failed { action, resource, reason: format!("HTTP {status} from {}", self.endpoint) }
                }
            },
            _ => ActionError::Failed { action, resource, reason: error::chain(&err) },
        }
    }

    /// Writes `body` as the object `key` (s3:PutObject).
    pub async fn put_object(&self, key: &str, body: Vec<u8>, content_type: &str) -> Result<(), ActionError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(body.into())
            .send()
            .await
            .map_err(|e| self.action_error("s3:PutObject", key, e))?;
        Ok(())
    }

    /// Every object whose key starts with `prefix`, a page of 1,000 at a time (s3:ListBucket).
    pub async fn list_objects(&self, prefix: &str) -> Result<Vec<ObjectInfo>, ActionError> {
        let mut objects = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| self.action_error("s3:ListBucket", "", e))?;
            objects.extend(page.contents().iter().filter_map(|o| {
                Some(ObjectInfo {
                    key: o.key()?.to_string(),
                    size: o.size().unwrap_or(0).max(0) as u64,
                    last_modified: o
                        .last_modified()
                        .and_then(|t| std::time::SystemTime::try_from(*t).ok())
                        .and_then(|t| jiff::Timestamp::try_from(t).ok()),
                })
            }));
            match page.next_continuation_token() {
                Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_string()),
                _ => return Ok(objects),
            }
        }
    }

    /// The object `key`, refused above `max_bytes` without reading past it (s3:GetObject).
    pub async fn get_object(&self, key: &str, max_bytes: u64) -> Result<Vec<u8>, ActionError> {
        self.get_capped(key, max_bytes).await.map_err(|err| match err {
            GetFailed::Request(err) => self.action_error("s3:GetObject", key, *err),
            GetFailed::Body(BodyError::TooLarge(size)) => {
                ActionError::TooLarge { resource: self.resource(key), size, limit: max_bytes }
            }
            GetFailed::Body(BodyError::Failed(reason)) => {
                ActionError::Failed { action: "s3:GetObject", resource: self.resource(key), reason }
            }
        })
    }

    /// Removes the object `key` (s3:DeleteObject).
    pub async fn delete_object(&self, key: &str) -> Result<(), ActionError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| self.action_error("s3:DeleteObject", key, e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_that_is_not_credentials_is_named_without_being_quoted() {
        // aws-config's own wordings, from its credential_process.rs.
        for said in [
            "Error retrieving credentials from external process, could not parse response: missing field",
            "Error retrieving credentials from external process: could not decode output as UTF-8: invalid utf-8",
        ] {
            assert!(matches!(refused("devbox", said), Error::AwsCredentialsUnreadable { .. }), "{said}");
        }
        let failed = "Error retrieving credentials: external process exited with code exit status: 1. Stderr: no";
        assert!(matches!(refused("devbox", failed), Error::AwsCredentials { .. }));
    }

    #[test]
    fn an_object_error_names_what_s3_said() {
        let status = ObjectError::Status {
            endpoint: "http://127.0.0.1:3900".into(),
            status: 400,
            code: Some("InvalidRequest".into()),
        };
        assert_eq!(status.to_string(), "HTTP 400 from http://127.0.0.1:3900 (InvalidRequest)");
        let denied = ObjectError::Denied { bucket: "b".into(), key: "k".into() };
        assert_eq!(denied.to_string(), "access denied to s3://b/k for these credentials (HTTP 403)");
    }
}
