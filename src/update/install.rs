//! Reading a feed (its newest version, its files' URLs) and replacing this binary with a release.
//!
//! self_update does the replacing: it fetches `SHA256SUMS`, downloads the archive, checks its
//! digest against that file, extracts `devbox`, runs our check on it, and only then swaps it in
//! with `self_replace`. Any failure before the swap leaves the old binary as it was.

use std::path::{Path, PathBuf};
use std::time::Duration;

use self_update::{Release, ReleaseAsset, ReleaseSource};

use super::{CURRENT_VERSION, Feed, SUMS_FILE, archive_name, parse_version, this_target};
use crate::aws::Aws;
use crate::config::{BucketName, Config};
use crate::error::Error;
use crate::http;

/// How long the archive's download may take.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a presigned S3 URL stays valid: long enough for one download.
const PRESIGN_FOR: Duration = Duration::from_secs(900);

/// The newest version the feed publishes.
pub async fn latest_version(feed: &Feed, config: &Config, timeout: Duration) -> Result<String, Error> {
    let failed = |reason: String| Error::ReleaseFeed { feed: feed.to_string(), reason };
    let text = match feed {
        Feed::Http { base } => http_text(&format!("{base}/latest"), timeout).await.map_err(failed)?,
        Feed::S3 { bucket } => s3(config, bucket).await?.get_text("latest").await.map_err(|e| failed(e.to_string()))?,
        Feed::GitHub { owner, name } => {
            let (owner, name) = (owner.clone(), name.clone());
            tokio::task::spawn_blocking(move || github_latest(&owner, &name, timeout))
                .await
                .map_err(|e| failed(e.to_string()))?
                .map_err(failed)?
        }
    };
    parse_version(&text).map_err(|reason| failed(format!("its `latest` file says {reason}")))
}

async fn http_text(url: &str, timeout: Duration) -> Result<String, String> {
    let client = http::for_url(url, timeout, http::Redirects::Follow).map_err(|e| format!("{e:#}"))?;
    let response = client.get(url).send().await.map_err(|e| format!("GET {url}: {}", http::describe(&e, timeout)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("GET {url} answered HTTP {status}"));
    }
    response.text().await.map_err(|e| format!("GET {url}: {}", http::describe(&e, timeout)))
}

fn github_latest(owner: &str, name: &str, timeout: Duration) -> Result<String, String> {
    let releases = self_update::backends::github::Update::configure()
        .repo_owner(owner)
        .repo_name(name)
        .bin_name("devbox")
        .current_version(CURRENT_VERSION)
        .timeout(timeout)
        .build()
        .and_then(|u| u.get_latest_release())
        .map_err(|e| e.to_string())?;
    releases.latest().map(|r| r.version().to_string()).ok_or_else(|| "it has no releases".to_string())
}

/// The release bucket, read with the same AWS profile, region and endpoint as the registry's.
async fn s3(config: &Config, bucket: &str) -> Result<Aws, Error> {
    let mut s3 = config.registry.s3.clone();
    let name = BucketName::try_from(bucket.to_string())
        .map_err(|reason| Error::Usage(format!("update.s3_bucket: {reason}")))?;
    s3.bucket = Some(name);
    Aws::connect(&s3).await
}

/// What was installed, and where.
#[derive(Debug, Clone)]
pub struct Installed {
    pub version: String,
    pub path: PathBuf,
}

/// Replaces the binary at `exe` with `version` from `feed`, verified against the release's
/// `SHA256SUMS` before anything is replaced. On any error `exe` is untouched.
pub async fn install(feed: &Feed, config: &Config, version: &str, exe: &Path) -> Result<Installed, Error> {
    let target = this_target();
    let archive = archive_name(version, target);
    let failed = |reason: String| Error::UpdateFailed { path: exe.to_path_buf(), version: version.to_string(), reason };
    let release = match feed {
        Feed::Http { base } => {
            Some(one_release(version, &archive, |file| format!("{base}/{}", Feed::key(version, file))))
        }
        Feed::S3 { bucket } => {
            let aws = s3(config, bucket).await?;
            let unsigned = |e: crate::aws::ObjectError| failed(e.to_string());
            let archive_url = aws.presigned_get(&Feed::key(version, &archive), PRESIGN_FOR).await.map_err(unsigned)?;
            let sums_url = aws.presigned_get(&Feed::key(version, SUMS_FILE), PRESIGN_FOR).await.map_err(unsigned)?;
            Some(one_release(
                version,
                &archive,
                |file| if file == SUMS_FILE { sums_url.clone() } else { archive_url.clone() },
            ))
        }
        Feed::GitHub { .. } => None,
    }
    .transpose()
    .map_err(|e| failed(e.to_string()))?;

    let (feed, version_owned, exe_owned) = (feed.clone(), version.to_string(), exe.to_path_buf());
    let replaced = tokio::task::spawn_blocking(move || replace(&feed, release, &version_owned, &exe_owned))
        .await
        .map_err(|e| failed(e.to_string()))?;
    replaced.map_err(|e| failed(e.to_string()))?;
    Ok(Installed { version: version.to_string(), path: exe.to_path_buf() })
}

/// A release of the feed: the archive and its sums file, at the URLs `url_of(file)` gives.
fn one_release(version: &str, archive: &str, url_of: impl Fn(&str) -> String) -> self_update::Result<Release> {
    Release::builder()
        .version(version)
        .asset(ReleaseAsset::new(archive, url_of(archive)))
        .asset(ReleaseAsset::new(SUMS_FILE, url_of(SUMS_FILE)))
        .build()
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

/// The blocking part: self_update's download, checks and swap. The options are the same for every
/// backend, but each backend has its own builder type, hence the macro.
fn replace(feed: &Feed, release: Option<Release>, version: &str, exe: &Path) -> anyhow::Result<()> {
    macro_rules! configured {
        ($builder:expr) => {
            $builder
                .bin_name("devbox")
                .current_version(CURRENT_VERSION)
                .release_tag(format!("v{version}"))
                .target(this_target())
                .bin_install_path(exe)
                .checksum_from_asset(SUMS_FILE)
                .verify_binary(reports_version(version.to_string()))
                .timeout(DOWNLOAD_TIMEOUT)
                .show_download_progress(false)
                .show_output(false)
                .no_confirm(true)
        };
    }
    let status = match (feed, release) {
        (Feed::GitHub { owner, name }, _) => {
            configured!(self_update::backends::github::Update::configure().repo_owner(owner).repo_name(name))
                .build()?
                .update()?
        }
        (_, Some(release)) => configured!(self_update::backends::custom::Update::configure().source(Resolved(release)))
            .build()?
            .update()?,
        (_, None) => anyhow::bail!("no release was resolved for {feed}"),
    };
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
