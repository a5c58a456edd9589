//! devbox's own releases: where they are published (the feed), which is newest, and replacing this
//! binary with one of them. Only this module (and `install.rs` in it) knows the self_update crate.
//!
//! A release feed, over HTTPS (`update.url`, `DEVBOX_DOWNLOAD_URL`; plain HTTP only to this
//! machine) or in an S3 bucket (`update.s3_bucket`), has this layout, relative to its base URL or
//! the bucket's root:
//!
//! ```text
//! latest                                     the newest version, e.g. "0.2.0" (one line)
//! v<version>/devbox-<version>-<target>.tar.gz  holds the `devbox` binary at its root
//! v<version>/SHA256SUMS                      `sha256sum` output: "<hex>  <file name>" per line
//! v<version>/SHA256SUMS.minisig              minisign's signature of SHA256SUMS
//! ```
//!
//! GitHub releases (`update.github`) hold the same files: the tag is `v<version>`, its assets are
//! the archives, `SHA256SUMS` and its signature, and "latest" is GitHub's latest release.
//! `install.sh` reads the same layout. The signature is what makes a release trusted: the sums
//! come from the same place as the archives, so whoever can change one can change the other.

mod cache;
mod install;

use std::fmt;
use std::path::Path;

pub use cache::cached_latest;
pub use install::{install, latest_version};

use crate::config::UpdateConfig;
use crate::env::Environment;
use crate::error::Error;
use crate::signature::{PublicKey, SIGNATURE_SUFFIX};

/// This build's version.
pub const CURRENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The name of the sums file in every release.
pub const SUMS_FILE: &str = "SHA256SUMS";

/// The name of the sums file's minisign signature.
pub fn signature_file() -> String {
    format!("{SUMS_FILE}{SIGNATURE_SUFFIX}")
}

/// The key releases must be signed with: `update.public_key`, else the project's, embedded.
pub fn release_key(update: &UpdateConfig) -> Result<PublicKey, Error> {
    if update.public_key.trim().is_empty() {
        return Ok(PublicKey::project());
    }
    PublicKey::parse(&update.public_key).map_err(|reason| Error::Usage(format!("update.public_key: {reason}")))
}

/// The SHA-256 that a `SHA256SUMS` text lists for `file` ("<hex>  <name>", or "<hex> *<name>" in
/// binary mode), in lowercase hex.
pub fn digest_for(sums: &str, file: &str) -> Option<String> {
    sums.lines().find_map(|line| {
        let (hex, name) = line.trim_end().split_once(' ')?;
        let name = name.trim_start_matches(' ').trim_start_matches('*');
        let hex = hex.to_ascii_lowercase();
        (name == file && hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hex)
    })
}

/// Where releases are published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feed {
    /// GitHub releases of `owner/name`.
    GitHub { owner: String, name: String },
    /// A release feed at this base URL (no trailing slash).
    Http { base: String },
    /// A release feed at the root of this bucket, read with the user's AWS credentials.
    S3 { bucket: String },
}

impl Feed {
    /// The feed in force: `DEVBOX_DOWNLOAD_URL` (a mirror, as for install.sh), then `update.url`,
    /// then `update.s3_bucket`, then `update.github`. A plain `http://` feed is refused here, before
    /// anything connects, unless it is on this machine.
    pub fn from_config(update: &UpdateConfig, env: &Environment) -> Result<Feed, Error> {
        let (url, what) = match env.var("DEVBOX_DOWNLOAD_URL") {
            Some(url) => (url, "DEVBOX_DOWNLOAD_URL"),
            None => (update.url.as_str(), "update.url"),
        };
        if !url.is_empty() {
            crate::http::require_https(url).map_err(|reason| Error::InsecureUrl {
                what: what.into(),
                url: url.into(),
                reason,
            })?;
            return Ok(Feed::Http { base: url.trim_end_matches('/').to_string() });
        }
        if !update.s3_bucket.is_empty() {
            return Ok(Feed::S3 { bucket: update.s3_bucket.clone() });
        }
        match update.github.split_once('/') {
            Some((owner, name)) if !owner.is_empty() && !name.is_empty() => {
                Ok(Feed::GitHub { owner: owner.to_string(), name: name.to_string() })
            }
            _ => Err(Error::NoReleaseFeed),
        }
    }

    /// Where a file of the feed lives, relative to its root: `latest`, or `v<version>/<file>`.
    pub fn key(version: &str, file: &str) -> String {
        format!("v{version}/{file}")
    }
}

impl fmt::Display for Feed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Feed::GitHub { owner, name } => write!(f, "https://github.com/{owner}/{name}/releases"),
            Feed::Http { base } => write!(f, "{base}/"),
            Feed::S3 { bucket } => write!(f, "s3://{bucket}/"),
        }
    }
}

/// The archive of `version` for `target`, e.g. `devbox-0.2.0-x86_64-unknown-linux-gnu.tar.gz`.
pub fn archive_name(version: &str, target: &str) -> String {
    format!("devbox-{version}-{target}.tar.gz")
}

/// The target this binary was built for, which names its release archive.
pub fn this_target() -> &'static str {
    self_update::get_target()
}

/// A version as a feed or a user writes it ("0.2.0", "v0.2.0\n") → "0.2.0". Semantic versions
/// only, so a feed that serves an HTML error page is refused rather than "installed".
pub fn parse_version(text: &str) -> Result<String, String> {
    let version = text.trim().trim_start_matches('v');
    let (core, _pre) = version.split_once(['-', '+']).unwrap_or((version, ""));
    let parts: Vec<&str> = core.split('.').collect();
    let numeric = |p: &&str| !p.is_empty() && p.len() <= 9 && p.bytes().all(|b| b.is_ascii_digit());
    if parts.len() == 3 && parts.iter().all(numeric) && !version.contains(char::is_whitespace) {
        Ok(version.to_string())
    } else {
        let shown: String = text.trim().chars().take(40).collect();
        Err(format!("{shown:?} is not a version such as 0.2.0"))
    }
}

/// Whether `latest` is newer than `current`. Unparsable versions are never newer.
pub fn is_newer(current: &str, latest: &str) -> bool {
    self_update::version::bump_is_greater(current, latest).unwrap_or(false)
}

/// The file a package (deb, rpm, a Homebrew formula) installs beside devbox to say that it manages
/// the binary, relative to the binary's directory: `<prefix>/bin/devbox` →
/// `<prefix>/share/devbox/package-manager`. It holds the manager's name, e.g. "brew".
pub const PACKAGE_MARKER: &str = "../share/devbox/package-manager";

/// Which package manager owns the binary at `exe` (already canonical), if any: by the places
/// package managers install to, or by the marker a package put beside it.
pub fn package_manager(exe: &Path, marker: Option<&str>) -> Option<String> {
    if let Some(name) = marker.map(str::trim).filter(|m| !m.is_empty()) {
        return Some(name.to_string());
    }
    const OWNED: &[(&str, &str)] = &[
        ("/usr/local/Cellar/", "Homebrew"),
        ("/opt/homebrew/", "Homebrew"),
        ("/home/linuxbrew/.linuxbrew/", "Homebrew"),
        ("/nix/store/", "Nix"),
        ("/snap/", "snap"),
        ("/usr/bin/", "the system's package manager"),
        ("/usr/sbin/", "the system's package manager"),
        ("/usr/lib/", "the system's package manager"),
        ("/bin/", "the system's package manager"),
    ];
    let path = exe.to_string_lossy();
    OWNED.iter().find(|(prefix, _)| path.starts_with(prefix)).map(|(_, name)| (*name).to_string())
}

/// The thin wrapper: where this process's binary really lives, and who owns it.
pub fn this_binary() -> anyhow::Result<(std::path::PathBuf, Option<String>)> {
    use anyhow::Context;
    let exe = crate::env::current_exe().context("cannot find this program's own path")?;
    let exe = exe.canonicalize().with_context(|| format!("cannot resolve {}", exe.display()))?;
    let marker = exe.parent().and_then(|dir| std::fs::read_to_string(dir.join(PACKAGE_MARKER)).ok());
    let owner = package_manager(&exe, marker.as_deref());
    Ok((exe, owner))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(github: &str, s3_bucket: &str, url: &str) -> UpdateConfig {
        UpdateConfig { github: github.into(), s3_bucket: s3_bucket.into(), url: url.into(), public_key: String::new() }
    }

    #[test]
    fn plain_http_feeds_are_refused_unless_on_this_machine() {
        let env = Environment::default();
        let plain = update("", "", "http://dl.acme.dev/devbox/");
        assert!(
            matches!(Feed::from_config(&plain, &env), Err(Error::InsecureUrl { ref what, .. }) if what == "update.url")
        );
        let mirror = env.clone().with("DEVBOX_DOWNLOAD_URL", "http://mirror.lan/devbox");
        let refused = Feed::from_config(&update("acme/devbox", "", ""), &mirror);
        assert!(matches!(refused, Err(Error::InsecureUrl { ref what, .. }) if what == "DEVBOX_DOWNLOAD_URL"));
    }

    #[test]
    fn sums_list_digests_by_file_name() {
        let a = "a".repeat(64);
        let b = "B".repeat(64);
        let sums = format!("{a}  devbox-0.2.0-x.tar.gz\n{b} *devbox-0.2.0-y.tar.gz\nshort  devbox-0.2.0-z.tar.gz\n");
        assert_eq!(digest_for(&sums, "devbox-0.2.0-x.tar.gz"), Some(a));
        assert_eq!(digest_for(&sums, "devbox-0.2.0-y.tar.gz"), Some("b".repeat(64)));
        assert_eq!(digest_for(&sums, "devbox-0.2.0-z.tar.gz"), None);
        assert_eq!(digest_for(&sums, "devbox-0.2.0-x.tar"), None);
    }

    #[test]
    fn the_release_key_is_the_configured_one_or_the_projects() {
        let mut config = update("acme/devbox", "", "");
        assert_eq!(release_key(&config).ok(), Some(PublicKey::project()));
        config.public_key = "RWSv8SgTRnrnwkoADr1/QBv+oKspR4kvgPHKnbo/yUfhrMS+PFsmIAV2".into();
        assert_eq!(release_key(&config).map(|k| k.to_string()).ok().as_deref(), Some(config.public_key.as_str()));
        config.public_key = "nonsense".into();
        assert!(matches!(release_key(&config), Err(Error::Usage(_))));
    }

    #[test]
    fn the_feed_is_the_mirror_then_url_then_bucket_then_github() {
        let env = Environment::default();
        let all = update("acme/devbox", "acme-releases", "https://dl.acme.dev/devbox/");
        assert_eq!(Feed::from_config(&all, &env).ok(), Some(Feed::Http { base: "https://dl.acme.dev/devbox".into() }));
        let mirror = env.clone().with("DEVBOX_DOWNLOAD_URL", "http://127.0.0.1:9/feed");
        assert_eq!(Feed::from_config(&all, &mirror).ok(), Some(Feed::Http { base: "http://127.0.0.1:9/feed".into() }));
        assert_eq!(
            Feed::from_config(&update("acme/devbox", "acme-releases", ""), &env).ok(),
            Some(Feed::S3 { bucket: "acme-releases".into() })
        );
        assert_eq!(
            Feed::from_config(&update("acme/devbox", "", ""), &env).ok(),
            Some(Feed::GitHub { owner: "acme".into(), name: "devbox".into() })
        );
        assert!(matches!(Feed::from_config(&update("", "", ""), &env), Err(Error::NoReleaseFeed)));
        assert!(matches!(Feed::from_config(&update("just-a-name", "", ""), &env), Err(Error::NoReleaseFeed)));
    }

    #[test]
    fn feed_layout() {
        assert_eq!(Feed::key("0.2.0", SUMS_FILE), "v0.2.0/SHA256SUMS");
        assert_eq!(archive_name("0.2.0", "x86_64-unknown-linux-gnu"), "devbox-0.2.0-x86_64-unknown-linux-gnu.tar.gz");
        assert_eq!(Feed::S3 { bucket: "b".into() }.to_string(), "s3://b/");
    }

    #[test]
    fn versions_are_semantic_and_compared_as_such() {
        assert_eq!(parse_version("0.2.0\n"), Ok("0.2.0".into()));
        assert_eq!(parse_version("v1.10.3"), Ok("1.10.3".into()));
        assert_eq!(parse_version("1.0.0-rc.1"), Ok("1.0.0-rc.1".into()));
        assert!(parse_version("<html>404</html>").is_err());
        assert!(parse_version("1.2").is_err());
        assert!(parse_version("").is_err());
        assert!(is_newer("0.1.0", "0.2.0"));
        assert!(is_newer("0.9.0", "0.10.0"));
        assert!(!is_newer("0.2.0", "0.2.0"));
        assert!(!is_newer("0.2.0", "0.1.9"));
        assert!(!is_newer("0.2.0", "garbage"));
    }

    #[test]
    fn package_managed_binaries_are_recognised() {
        let owner = |p: &str, m: Option<&str>| package_manager(Path::new(p), m);
        assert_eq!(owner("/usr/bin/devbox", None).as_deref(), Some("the system's package manager"));
        assert_eq!(owner("/opt/homebrew/Cellar/devbox/0.1.0/bin/devbox", None).as_deref(), Some("Homebrew"));
        assert_eq!(owner("/usr/local/Cellar/devbox/0.1.0/bin/devbox", None).as_deref(), Some("Homebrew"));
        assert_eq!(owner("/home/ann/.local/bin/devbox", Some("apt\n")).as_deref(), Some("apt"));
        assert_eq!(owner("/home/ann/.local/bin/devbox", None), None);
        assert_eq!(owner("/usr/local/bin/devbox", Some("  ")), None);
    }
}
