//! `devbox pull [IMAGE…]`

use clap::Args;
use serde::Serialize;

use crate::cli::{Context, report};
use crate::error::ExitStatus;
use crate::images::pull::{PullResult, pull_and_record};
use crate::ui::{Printer, progress_for};

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
        let images = crate::images::to_pull(&config, &self.images)?;
        let engine = ctx.engine().await?;
        let lock = ctx.lock("pull").await?;
        let quiet = Printer { quiet: true, ..ctx.printer };
        let progress = progress_for(if self.json { &quiet } else { &ctx.printer });
        let pulled = pull_and_record(&engine, &config, &images, &lock, progress.as_ref()).await?;
        if !self.json {
            return Ok(report::pulled(&ctx.printer, &pulled));
        }
        let report = Report {
            images: &pulled.results,
            updated: pulled.updated(),
            unchanged: pulled.unchanged(),
            failed: pulled.failed(),
            duration_ms: pulled.elapsed.as_millis() as u64,
        };
        ctx.printer.json(&report)?;
        Ok(if report.failed > 0 { ExitStatus::Failure } else { ExitStatus::Success })
    }
}
