//! A team's devbox.toml, taken with `devbox init --from <path | https://… | s3://bucket/key>`.
//!
//! Where it came from, how it was trusted and the team's recorded keys are kept in the installed
//! file's header (`header.rs`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use crate::aws::Aws;
use crate::config::{BucketName, S3Config};
use crate::error::Error;
use crate::http;

const FETCH_TIMEOUT: Duration = Duration::from_secs(15);
/// A config is a few kilobytes; anything far bigger is not one.
const MAX_BYTES: u64 = 1024 * 1024;

/// Where a team config lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TeamSource {
    Path(PathBuf),
    /// https://…, or http:// to this machine only.
    Http(String),
    S3 {
        bucket: String,
        key: String,
    },
}

impl TeamSource {
    /// Reads `--from`. Plain http is refused unless it stays on this machine: a config that says
    /// which bucket and registry to trust must not be swappable on the way.
    pub fn parse(text: &str) -> Result<TeamSource, String> {
        if let Some(rest) = text.strip_prefix("s3://") {
            return match rest.split_once('/') {
                Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => {
                    Ok(TeamSource::S3 { bucket: bucket.into(), key: key.into() })
                }
                _ => Err(format!("--from {text}: an S3 source is s3://BUCKET/KEY, e.g. s3://acme-devbox/devbox.toml")),
            };
        }
        if text.starts_with("https://") {
            return Ok(TeamSource::Http(text.into()));
        }
        if let Some(rest) = text.strip_prefix("http://") {
            let host = host_of(rest);
            return if matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
                Ok(TeamSource::Http(text.into()))
            } else {
                Err(format!(
                    "--from {text}: plain http:// is allowed only to this machine (127.0.0.1, [::1], localhost), \
                     since anyone on the way could change the config; use https://"
                ))
            };
        }
        if let Some((scheme, _)) = text.split_once("://") {
            return Err(format!(
                "--from {text}: {scheme}:// is not supported; use a path, https://… or s3://BUCKET/KEY"
            ));
        }
        if text.is_empty() {
            return Err("--from needs a path, an https:// URL or s3://BUCKET/KEY".into());
        }
        Ok(TeamSource::Path(PathBuf::from(text)))
    }

    /// Where its minisign signature lives: the same place, with `.minisig` appended.
    pub fn signature(&self) -> TeamSource {
        let suffix = crate::signature::SIGNATURE_SUFFIX;
        match self {
            TeamSource::Path(path) => {
                let mut name = path.clone().into_os_string();
                name.push(suffix);
                TeamSource::Path(PathBuf::from(name))
            }
            TeamSource::Http(url) => {
                let cut = url.find(['?', '#']).unwrap_or(url.len());
                TeamSource::Http(format!("{}{suffix}{}", &url[..cut], &url[cut..]))
            }
            TeamSource::S3 { bucket, key } => TeamSource::S3 { bucket: bucket.clone(), key: format!("{key}{suffix}") },
        }
    }

    /// How the source is recorded and shown: without credentials in the URL or a presigned
    /// query string, which must never land on disk.
    pub fn display(&self) -> String {
        match self {
            TeamSource::Path(path) => path.display().to_string(),
            TeamSource::Http(url) => {
                let (scheme, rest) = url.split_once("://").unwrap_or(("https", url));
                let rest = rest.split(['?', '#']).next().unwrap_or(rest);
                let rest = match rest.split_once('/') {
                    Some((authority, path)) => format!("{}/{path}", strip_userinfo(authority)),
                    None => strip_userinfo(rest).to_string(),
                };
                format!("{scheme}://{rest}")
            }
            TeamSource::S3 { bucket, key } => format!("s3://{bucket}/{key}"),
        }
    }
}

fn host_of(after_scheme: &str) -> &str {
    let authority = after_scheme.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = strip_userinfo(authority);
    if host_port.starts_with('[') {
        return host_port.split_inclusive(']').next().unwrap_or(host_port);
    }
    host_port.split(':').next().unwrap_or(host_port)
}

fn strip_userinfo(authority: &str) -> &str {
    authority.rsplit_once('@').map_or(authority, |(_, host)| host)
}

/// The difference between the file as it was and as it will be, as a unified diff.
pub fn diff(old: &str, new: &str, old_name: &str, new_name: &str) -> String {
    similar::TextDiff::from_lines(old, new).unified_diff().context_radius(2).header(old_name, new_name).to_string()
}

/// Fetches the team config's text. S3 is read with the current config's `[registry.s3]` settings
/// (region, endpoint, profile), the bucket and key taken from the source. AWS credentials and
/// endpoint problems keep their own error (and its hint: log in, check the endpoint), under the
/// context of this fetch.
pub async fn fetch(source: &TeamSource, s3: &S3Config) -> anyhow::Result<String> {
    let failed = |reason: String| Error::TeamConfigFetch { from: source.display(), reason };
    let bytes = match source {
        TeamSource::Path(path) => std::fs::read(path).map_err(|e| failed(e.to_string()))?,
        TeamSource::Http(url) => {
            http::get_bytes(url, FETCH_TIMEOUT, MAX_BYTES).await.map_err(|e| failed(e.to_string()))?
        }
        TeamSource::S3 { bucket, key } => {
            let mut settings = s3.clone();
            settings.bucket = Some(BucketName::try_from(bucket.clone()).map_err(failed)?);
            let aws = Aws::connect(&settings)
                .await
                .with_context(|| format!("cannot fetch the team config from {}", source.display()))?;
            aws.get_bytes(key, MAX_BYTES).await.map_err(|e| failed(e.to_string()))?
        }
    };
    if bytes.len() as u64 > MAX_BYTES {
        return Err(failed(format!("it is {} bytes; a devbox.toml is a few kilobytes", bytes.len())).into());
    }
    Ok(String::from_utf8(bytes).map_err(|_| failed("it is not UTF-8 text".into()))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_told_apart() {
        assert_eq!(TeamSource::parse("team.toml"), Ok(TeamSource::Path("team.toml".into())));
        assert_eq!(
            TeamSource::parse("s3://acme-devbox/teams/devbox.toml"),
            Ok(TeamSource::S3 { bucket: "acme-devbox".into(), key: "teams/devbox.toml".into() })
        );
        assert_eq!(
            TeamSource::parse("https://example.com/devbox.toml"),
            Ok(TeamSource::Http("https://example.com/devbox.toml".into()))
        );
        assert!(matches!(TeamSource::parse("http://127.0.0.1:8000/devbox.toml"), Ok(TeamSource::Http(_))));
        assert!(matches!(TeamSource::parse("http://localhost/devbox.toml"), Ok(TeamSource::Http(_))));
    }

    #[test]
    fn bad_sources_say_what_is_accepted() {
        assert!(TeamSource::parse("http://example.com/devbox.toml").expect_err("refused").contains("use https://"));
        assert!(TeamSource::parse("http://127.0.0.1.evil.com/x").expect_err("refused").contains("use https://"));
        assert!(TeamSource::parse("http://user@evil.com:80@127.0.0.1/x").is_ok(), "the host is after the last @");
        assert!(TeamSource::parse("s3://bucket-only").expect_err("refused").contains("s3://BUCKET/KEY"));
        assert!(TeamSource::parse("ftp://x/y").expect_err("refused").contains("ftp:// is not supported"));
        assert!(TeamSource::parse("").is_err());
    }

    #[test]
    fn recorded_sources_carry_no_credentials() {
        let source =
            TeamSource::parse("https://me:secret@example.com/devbox.toml?X-Amz-Signature=abc#top").expect("ok");
        assert_eq!(source.display(), "https://example.com/devbox.toml");
    }

    #[test]
    fn the_diff_shows_what_changes() {
        let diff = diff("[registry]\nport = 5000\n", "[registry]\nport = 5001\n", "old", "new");
        assert!(diff.contains("-port = 5000\n+port = 5001"), "{diff}");
        assert!(diff.starts_with("--- old\n+++ new\n"), "{diff}");
    }

    #[test]
    fn the_signature_sits_beside_the_config() {
        let sig = |s: &str| TeamSource::parse(s).expect("source").signature().display();
        assert_eq!(sig("https://x.dev/devbox.toml?v=1"), "https://x.dev/devbox.toml.minisig");
        assert_eq!(sig("s3://acme/teams/devbox.toml"), "s3://acme/teams/devbox.toml.minisig");
        assert_eq!(sig("team.toml"), "team.toml.minisig");
    }
}
