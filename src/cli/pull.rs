//! `devbox pull [IMAGE…]`

use std::time::Instant;

use clap::Args;
use serde::Serialize;

use super::Context;
use crate::config::Config;
use crate::error::{Error, ExitStatus};
use crate::images::pull::{PullResult, pull_all};
use crate::images::{Outcome, base_images};
use crate::paths::Paths;
use crate::registry::api::RegistryApi;
use crate::state::{PullRecord, PullRecords};
use crate::ui::{Mark, Printer, Progress, progress_for};

#[derive(Debug, Args)]
pub struct PullArgs {
    /// Names in the registry to pull (default: every images.base entry), e.g. base/python:3.12
    images: Vec<String>,

    /// Print JSON: one entry per image with its status and digests
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Report<'a> {
    images: &'a [PullResult],
    updated: usize,
    unchanged: usize,
    failed: usize,
    duration_ms: u64,
}

impl PullArgs {
    pub async fn run(self, ctx: &Context) -> anyhow::Result<ExitStatus> {
        let config = ctx.config()?.config;
        pull(ctx, &config, &self.images, self.json).await
    }
}

/// Pulls `names` (or every base image) and reports; `doctor --fix` calls this too.
pub(super) async fn pull(ctx: &Context, config: &Config, names: &[String], json: bool) -> anyhow::Result<ExitStatus> {
    let quiet = Printer { quiet: true, ..ctx.printer };
    let progress = progress_for(if json { &quiet } else { &ctx.printer });
    let pulled = pull_quietly(ctx, config, names, progress.as_ref()).await?;
    let report = Report {
        images: &pulled.results,
        updated: pulled.updated(),
        unchanged: pulled.unchanged(),
        failed: pulled.failed(),
        duration_ms: pulled.elapsed.as_millis() as u64,
    };
    if json {
        ctx.printer.json(&report)?;
    } else {
        let mark = if report.failed > 0 { Mark::Fail } else { Mark::Ok };
        ctx.printer.mark(mark, pulled.summary());
    }
    Ok(if report.failed > 0 { ExitStatus::Failure } else { ExitStatus::Success })
}

/// What a pull did to each image.
pub(super) struct Pulled {
    pub results: Vec<PullResult>,
    pub elapsed: std::time::Duration,
}

impl Pulled {
    fn count(&self, f: fn(&Outcome) -> bool) -> usize {
        self.results.iter().filter(|r| f(&r.outcome)).count()
    }
    pub fn updated(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Updated { .. }))
    }
    pub fn unchanged(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Unchanged { .. }))
    }
    pub fn failed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Failed { .. }))
    }
    pub fn summary(&self) -> String {
        format!(
            "{} updated, {} unchanged, {} failed in {:.1}s",
            self.updated(),
            self.unchanged(),
            self.failed(),
            self.elapsed.as_secs_f64()
        )
    }
}

/// The pull itself, reporting only through `progress`, and recorded in `pulls.json`. `init`
/// calls this for its one line. Ctrl-C stops it with `Error::Interrupted`; no alias moves.
pub(super) async fn pull_quietly(
    ctx: &Context,
    config: &Config,
    names: &[String],
    progress: &dyn Progress,
) -> anyhow::Result<Pulled> {
    let images = base_images(config, names).map_err(Error::Usage)?;
    if images.is_empty() {
        return Err(Error::NoBaseImages.into());
    }
    let engine = ctx.engine().await?;
    let url = config.registry.local_url();
    let api = RegistryApi::new(&url)?;
    // Pulling needs the local registry; starting it is `registry up`'s job, never a side effect.
    api.ping().await.map_err(|reason| Error::RegistryDown { url: url.clone(), reason })?;

    let started = Instant::now();
    let concurrency = config.images.concurrency;
    let results = tokio::select! {
        results = pull_all(&engine, &api, &images, concurrency, progress) => results,
        _ = tokio::signal::ctrl_c() => return Err(Error::Interrupted.into()),
    };
    record(ctx, &results)?;
    Ok(Pulled { results, elapsed: started.elapsed() })
}

/// How stale `checked_at` may be before an unchanged pull rewrites it.
const RECHECK_RECORD_SECS: i64 = 3600;

/// Remembers each good pull in `pulls.json`, for `cleanup` and `doctor`.
fn record(ctx: &Context, results: &[PullResult]) -> anyhow::Result<()> {
    let state_dir = Paths::resolve(&ctx.env)?.state_dir().to_path_buf();
    let mut records = PullRecords::load(&state_dir);
    let now = jiff::Timestamp::now();
    for result in results {
        let (digest, pulled) = match &result.outcome {
            Outcome::Updated { new_digest, .. } => (new_digest, true),
            Outcome::Unchanged { digest } => (digest, false),
            Outcome::Failed { .. } => continue,
        };
        let existing = records.images.get(&result.image.local);
        // An unchanged image checked again within the hour keeps its record as it was, so a
        // re-run (`init` on a set-up machine) rewrites nothing.
        if !pulled
            && let Some(old) = existing
            && old.digest == *digest
            && now.duration_since(old.checked_at) < jiff::SignedDuration::from_secs(RECHECK_RECORD_SECS)
        {
            continue;
        }
        let previous = existing.and_then(|r| r.pulled_at);
        records.images.insert(
            result.image.local.clone(),
            PullRecord {
                pulled_at: if pulled { Some(now) } else { previous },
                checked_at: now,
                digest: digest.clone(),
            },
        );
    }
    records.save(&state_dir)
}
