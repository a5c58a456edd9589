//! `devbox self-update [--check] [--version V]`

use clap::Args;

use crate::cli::Context;
use crate::error::{Error, ExitStatus};
use crate::ui::Mark;
use crate::update::{self, CURRENT_VERSION, Feed};

/// How long reading the feed's `latest` may take here (doctor's check waits less).
const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, Args)]
pub struct SelfUpdateArgs {
    /// Only report this version and the newest one; change nothing (exits 0 either way)
    #[arg(long)]
    check: bool,

    /// Install this version (e.g. 0.2.0) instead of the newest; an older one needs --allow-downgrade
    #[arg(long, value_name = "V")]
    version: Option<String>,

    /// Allow --version to name a version older than this one
    #[arg(long, requires = "version")]
    allow_downgrade: bool,
}

impl SelfUpdateArgs {
    pub async fn run(self, ctx: &Context) -> anyhow::Result<ExitStatus> {
        let pinned = self.version.as_deref().map(update::parse_version).transpose().map_err(Error::Usage)?;
        if let Some(version) = &pinned
            && update::is_newer(version, CURRENT_VERSION)
            && !self.allow_downgrade
        {
            return Err(Error::Downgrade { from: CURRENT_VERSION.into(), to: version.clone() }.into());
        }
        let config = ctx.config()?.config;
        let feed = Feed::from_config(&config.update, &ctx.env)?;
        let (exe, manager) = update::this_binary()?;
        ctx.printer.detail(format!("feed: {feed}; this binary: {} ({})", exe.display(), update::this_target()));

        if self.check {
            let latest = update::latest_version(&feed, &config, READ_TIMEOUT).await?;
            ctx.printer.line(format!("this binary: devbox {CURRENT_VERSION} ({})", exe.display()));
            ctx.printer.line(format!("newest:      devbox {latest} ({feed})"));
            if update::is_newer(CURRENT_VERSION, &latest) {
                let how = match &manager {
                    Some(manager) => format!("update it with {manager}"),
                    None => "run `devbox self-update`".to_string(),
                };
                ctx.printer.mark(Mark::Warn, format!("an update is available: {how}"));
            } else {
                ctx.printer.mark(Mark::Ok, "up to date");
            }
            ctx.printer.hint("--check changes nothing and exits 0 whether or not an update is available.");
            return Ok(ExitStatus::Success);
        }

        if let Some(manager) = manager {
            return Err(Error::PackageManaged { path: exe, manager }.into());
        }
        let version = match pinned {
            Some(version) => version,
            None => {
                let latest = update::latest_version(&feed, &config, READ_TIMEOUT).await?;
                if !update::is_newer(CURRENT_VERSION, &latest) {
                    ctx.printer
                        .mark(Mark::Same, format!("devbox {CURRENT_VERSION} is up to date (newest: {latest}, {feed})"));
                    return Ok(ExitStatus::Success);
                }
                latest
            }
        };
        if version == CURRENT_VERSION {
            ctx.printer.mark(Mark::Same, format!("devbox {CURRENT_VERSION} is already installed at {}", exe.display()));
            return Ok(ExitStatus::Success);
        }
        ctx.printer.line(format!("updating devbox {CURRENT_VERSION} → {version} from {feed}"));
        let installed = update::install(&feed, &config, &version, &exe).await?;
        ctx.printer.mark(
            Mark::Ok,
            format!(
                "updated to {installed} ({} signed by key {}; the archive matched its SHA-256 there)",
                update::SUMS_FILE,
                installed.key
            ),
        );
        Ok(ExitStatus::Success)
    }
}
