//! Reading a feed (its newest version, its files' URLs) and replacing this binary with a release.
//!
//! devbox reads the release's `SHA256SUMS` and its signature and checks the signature itself;
//! self_update then downloads the archive, checks its digest against the one the signed sums list,
//! extracts `devbox`, runs our check on it, and only then swaps it in with `self_replace`. Any
//! failure before the swap leaves the old binary as it was.

use std::path::{Path, PathBuf};
use std::time::Duration;

use self_update::{Release, ReleaseAsset, ReleaseSource};

use super::{
    CURRENT_VERSION, Feed, SUMS_FILE, archive_name, digest_for, parse_version, release_key, signature_file, this_target,
};
use crate::aws::{Aws, ObjectError};
use crate::config::{BucketName, Config};
use crate::error::Error;
use crate::{http, signature};

/// How long the archive's download may take.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a presigned S3 URL stays valid: long enough for one download.
const PRESIGN_FOR: Duration = Duration::from_secs(900);
/// How long reading the sums or the signature may take.
const SMALL_TIMEOUT: Duration = Duration::from_secs(30);
/// A sums file or a signature is a few hundred bytes; anything far bigger is neither.
const SMALL_MAX: u64 = 1024 * 1024;

/// Why a file of the feed (its `latest`, a release's sums or signature, the archive's address) was
/// not read.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("GET {url}: {source}")]
    Get { url: String, source: http::GetError },
    #[error(transparent)]
    Bucket(#[from] ObjectError),
    /// self_update's GitHub client failed, in its own words.
    #[error("GitHub's releases of {repo}: {reason}")]
    GitHub { repo: String, reason: String },
    #[error("GitHub lists no releases of {repo}")]
    NoReleases { repo: String },
    #[error("{what} is not UTF-8 text")]
    NotText { what: String },
}

/// The newest version the feed publishes.
pub async fn latest_version(feed: &Feed, config: &Config, timeout: Duration) -> Result<String, Error> {
    let failed = |reason: String| Error::ReleaseFeed { feed: feed.to_string(), reason };
    let text = match feed {
        Feed::Http { base } => {
            http_text(&format!("{base}/latest"), timeout).await.map_err(|e| failed(e.to_string()))?
        }
        Feed::S3 { bucket } => s3(config, bucket).await?.get_text("latest").await.map_err(|e| failed(e.to_string()))?,
        Feed::GitHub { owner, name } => {
            let (owner, name) = (owner.clone(), name.clone());
            tokio::task::spawn_blocking(move || github_latest(&owner, &name, timeout))
                .await
                .map_err(|e| failed(e.to_string()))?
                .map_err(|e| failed(e.to_string()))?
        }
    };
    parse_version(&text).map_err(|reason| failed(format!("its `latest` file says {reason}")))
}

async fn http_text(url: &str, timeout: Duration) -> Result<String, FeedError> {
    let bytes = http_bytes(url, timeout, SMALL_MAX).await?;
    String::from_utf8(bytes).map_err(|_| FeedError::NotText { what: url.to_string() })
}

fn github_latest(owner: &str, name: &str, timeout: Duration) -> Result<String, FeedError> {
    let repo = format!("{owner}/{name}");
    let releases = self_update::backends::github::Update::configure()
        .repo_owner(owner)
        .repo_name(name)
        .bin_name("devbox")
        .current_version(CURRENT_VERSION)
        .timeout(timeout)
        .build()
        .and_then(|u| u.get_latest_release())
        .map_err(|e| FeedError::GitHub { repo: repo.clone(), reason: e.to_string() })?;
    releases.latest().map(|r| r.version().to_string()).ok_or(FeedError::NoReleases { repo })
}

/// The release bucket, read with the same AWS profile, region and endpoint as the registry's.
async fn s3(config: &Config, bucket: &str) -> Result<Aws, Error> {
    let mut s3 = config.registry.s3.clone();
    let name = BucketName::try_from(bucket.to_string())
        .map_err(|reason| Error::Usage(format!("update.s3_bucket: {reason}")))?;
    s3.bucket = Some(name);
    Aws::connect(&s3).await
}

/// What was installed, and where, and which key signed its release.
#[derive(Debug, Clone)]
pub struct Installed {
    pub version: String,
    pub path: PathBuf,
    pub key: String,
}

/// Replaces the binary at `exe` with `version` from `feed`. First the release's `SHA256SUMS` and
/// its minisign signature are read and the signature is checked against the release key; then
/// the archive is downloaded and checked against the digest the signed sums list; only then is
/// the binary swapped. On any error `exe` is untouched.
pub async fn install(feed: &Feed, config: &Config, version: &str, exe: &Path) -> Result<Installed, Error> {
    let key = release_key(&config.update)?;
    let target = this_target();
    let archive = archive_name(version, target);
    let failed = |reason: String| Error::UpdateFailed { path: exe.to_path_buf(), version: version.to_string(), reason };
    let files = Files::open(feed, config).await?;
    let sums = files.read(version, SUMS_FILE).await.map_err(|e| failed(e.to_string()))?;
    let sig_name = signature_file();
    let signature = files.read(version, &sig_name).await.map_err(|reason| {
        failed(format!("the release has no readable signature ({sig_name}: {reason}), so it cannot be trusted"))
    })?;
    let sig_text = String::from_utf8(signature).unwrap_or_default();
    signature::verify(&sums, &sig_text, std::slice::from_ref(&key))
        .map_err(|e| failed(format!("{SUMS_FILE} is refused: {e}")))?;
    let sums = String::from_utf8(sums).map_err(|_| failed(format!("{SUMS_FILE} is not text")))?;
    let digest =
        digest_for(&sums, &archive).ok_or_else(|| failed(format!("{SUMS_FILE} lists no checksum for {archive}")))?;
    let release = Release::builder()
        .version(version)
        .asset(ReleaseAsset::new(&archive, files.url(version, &archive).await.map_err(|e| failed(e.to_string()))?))
        .build()
        .map_err(|e| failed(e.to_string()))?;

    let (version_owned, exe_owned) = (version.to_string(), exe.to_path_buf());
    let replaced = tokio::task::spawn_blocking(move || replace(release, digest, &version_owned, &exe_owned))
        .await
        .map_err(|e| failed(e.to_string()))?;
    replaced.map_err(|e| failed(e.to_string()))?;
    Ok(Installed { version: version.to_string(), path: exe.to_path_buf(), key: key.to_string() })
}

/// How a feed's files are reached: by URL (HTTPS, a loopback feed, GitHub's release downloads),
/// or in a bucket (read with the AWS SDK; the archive through a presigned URL).
enum Files {
    Base(String),
    S3(Aws),
}

impl Files {
    async fn open(feed: &Feed, config: &Config) -> Result<Files, Error> {
        Ok(match feed {
            Feed::Http { base } => Files::Base(base.clone()),
            Feed::GitHub { owner, name } => Files::Base(format!("https://github.com/{owner}/{name}/releases/download")),
            Feed::S3 { bucket } => Files::S3(s3(config, bucket).await?),
        })
    }

    async fn url(&self, version: &str, file: &str) -> Result<String, FeedError> {
        Ok(match self {
            Files::Base(base) => format!("{base}/{}", Feed::key(version, file)),
            Files::S3(aws) => aws.presigned_get(&Feed::key(version, file), PRESIGN_FOR).await?,
        })
    }

    /// A small file of the release (the sums, the signature), whole.
    async fn read(&self, version: &str, file: &str) -> Result<Vec<u8>, FeedError> {
        Ok(match self {
            Files::Base(_) => http_bytes(&self.url(version, file).await?, SMALL_TIMEOUT, SMALL_MAX).await?,
            Files::S3(aws) => aws.get_bytes(&Feed::key(version, file), SMALL_MAX).await?,
        })
    }
}

/// A small file of a feed on HTTP(S), whole.
async fn http_bytes(url: &str, timeout: Duration, limit: u64) -> Result<Vec<u8>, FeedError> {
    http::get_bytes(url, timeout, limit).await.map_err(|source| FeedError::Get { url: url.to_string(), source })
}

/// A feed's release, already resolved: the version asked for, whatever self_update asks.
struct Resolved(Release);

impl ReleaseSource for Resolved {
    fn get_releases(&self) -> self_update::Result<Vec<Release>> {
        Ok(vec![self.0.clone()])
    }

    fn get_release_version(&self, _version: &str) -> self_update::Result<Release> {
        Ok(self.0.clone())
    }
}

/// The blocking part: self_update's download, its check of the archive against `digest` (from
/// the signed sums), the new binary's own check, and the swap.
fn replace(release: Release, digest: String, version: &str, exe: &Path) -> anyhow::Result<()> {
    let status = self_update::backends::custom::Update::configure()
        .source(Resolved(release))
        .bin_name("devbox")
        .current_version(CURRENT_VERSION)
        .release_tag(format!("v{version}"))
        .target(this_target())
        .bin_install_path(exe)
        .verify_checksum(self_update::Checksum::Sha256(digest))
        .verify_binary(reports_version(version.to_string()))
        .timeout(DOWNLOAD_TIMEOUT)
        .show_download_progress(false)
        .show_output(false)
        .no_confirm(true)
        .build()?
        .update()?;
    anyhow::ensure!(status.is_updated(), "self_update did not replace the binary ({status:?})");
    Ok(())
}

/// The last check before the swap: the new binary runs here and says it is `devbox <version>`.
fn reports_version(version: String) -> impl Fn(&Path) -> self_update::Result<()> + Send + Sync + 'static {
    move |path: &Path| {
        let rejected = |why: String| self_update::Error::verification_rejected(why);
        let out = std::process::Command::new(path)
            .arg("--version")
            .output()
            .map_err(|e| rejected(format!("the new binary does not run here: {e}")))?;
        let said = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() && said == format!("devbox {version}") {
            Ok(())
        } else {
            Err(rejected(format!("the new binary's `--version` printed {said:?}, not \"devbox {version}\"")))
        }
    }
}

impl std::fmt::Display for Installed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "devbox {} at {}", self.version, self.path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_feed_error_names_the_file_and_what_happened_to_it() {
        let missing = FeedError::Get {
            url: "http://127.0.0.1:9/v1.2.0/SHA256SUMS".into(),
            source: http::GetError::Status { status: 404 },
        };
        assert_eq!(missing.to_string(), "GET http://127.0.0.1:9/v1.2.0/SHA256SUMS: HTTP 404 Not Found");
        let quiet = FeedError::Get { url: "https://dl.acme.dev/latest".into(), source: http::NoAnswer::Refused.into() };
        assert_eq!(
            crate::error::chain(&quiet),
            "GET https://dl.acme.dev/latest: cannot connect (connection refused, or no route)"
        );
        assert_eq!(
            FeedError::NoReleases { repo: "acme/devbox".into() }.to_string(),
            "GitHub lists no releases of acme/devbox"
        );
    }
}
