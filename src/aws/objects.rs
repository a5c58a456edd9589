//! Objects under a prefix, for the fleet reports (issues 17 and 27): put, list (capped, keys
//! decoded exactly), get and delete, each error saying which S3 action on which resource failed,
//! so a denial names what an IAM policy must allow. And the one `GetObject` body reader.

use aws_sdk_s3::error::SdkError;

use super::{Aws, AwsCredentials};
use crate::error;

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
pub(super) enum GetFailed {
    Request(Box<SdkError<aws_sdk_s3::operation::get_object::GetObjectError>>),
    Body(BodyError),
}

/// Why an object's body was not read whole.
pub(super) enum BodyError {
    /// Over the limit: its declared length, or as much as had arrived when it passed the limit.
    TooLarge(u64),
    Failed(String),
}

/// The body of a `GetObject` answer, refused above `max_bytes` without reading past it: by its
/// declared length first, then as it streams (a length can be missing, or wrong).
pub(super) async fn capped_body(
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

/// A key as `encoding-type=url` gives it, decoded (`%XX`, and `+` for a space); `None` when it is
/// not valid percent-encoded UTF-8.
fn percent_decode(encoded: &str) -> Option<String> {
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
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

    /// The objects whose keys start with `prefix`, a page of 1,000 at a time (s3:ListBucket), at
    /// most `cap` of them, each page handed to `each` as it arrives (so a caller can work on one
    /// while S3 lists the next); true when there were more than `cap`. Keys come URL-encoded
    /// (`encoding-type=url`) and are decoded here, so a key holding a character XML cannot carry
    /// (a control character) is listed exactly, and can be deleted by its exact name.
    pub async fn list_objects(
        &self,
        prefix: &str,
        cap: usize,
        mut each: impl FnMut(Vec<ObjectInfo>),
    ) -> Result<bool, ActionError> {
        let mut listed = 0usize;
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .encoding_type(aws_sdk_s3::types::EncodingType::Url)
                .max_keys(i32::try_from(cap.saturating_add(1).saturating_sub(listed).min(1000)).unwrap_or(1000))
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| self.action_error("s3:ListBucket", "", e))?;
            let mut objects: Vec<ObjectInfo> = page
                .contents()
                .iter()
                .filter_map(|o| {
                    Some(ObjectInfo {
                        key: percent_decode(o.key()?)?,
                        size: o.size().unwrap_or(0).max(0) as u64,
                        last_modified: o
                            .last_modified()
                            .and_then(|t| std::time::SystemTime::try_from(*t).ok())
                            .and_then(|t| jiff::Timestamp::try_from(t).ok()),
                    })
                })
                .collect();
            let truncated = listed + objects.len() > cap;
            objects.truncate(cap - listed);
            listed += objects.len();
            each(objects);
            if truncated {
                return Ok(true);
            }
            match page.next_continuation_token() {
                Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_string()),
                _ => return Ok(false),
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
    fn listed_keys_are_decoded_exactly() {
        assert_eq!(percent_decode("a%1Bb%09c+d%2B%E2%80%AE").as_deref(), Some("a\u{1b}b\tc d+\u{202e}"));
        assert_eq!(percent_decode("plain/key.json").as_deref(), Some("plain/key.json"));
        assert_eq!(percent_decode("bad%zz"), None);
        assert_eq!(percent_decode("cut%2"), None);
    }
}
