//! `devbox fleet [--check NAME] [--json] [--html FILE]`, `devbox fleet machines|prune`

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde::Serialize;

use crate::aws::{ActionError, Aws};
use crate::cli::Context;
use crate::config::Config;
use crate::doctor::CheckId;
use crate::error::{Error, ExitStatus};
use crate::fleet::machines::{self, Failing, MachineLine, Prunable, SortBy};
use crate::fleet::read::{self, Judged};
use crate::fleet::send::fleet_s3;
use crate::fleet::view::{self, Summary};
use crate::fleet::{CheckStatus, html, machines_prefix};
use crate::ui::{Mark, Printer};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct FleetArgs {
    #[command(subcommand)]
    command: Option<FleetCommand>,

    /// Only the machines failing this check, each with its summary and fix
    #[arg(long, value_name = "NAME", value_enum)]
    check: Option<CheckId>,

    /// Print JSON
    #[arg(long, global = true)]
    json: bool,

    /// Also write the summary as one self-contained HTML page to FILE
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,

    /// Read at most N objects under the prefix (the listing stops there, and says so)
    #[arg(long, global = true, value_name = "N", default_value_t = read::DEFAULT_MAX_REPORTS)]
    max_reports: usize,
}

#[derive(Debug, Subcommand)]
enum FleetCommand {
    /// One line per machine: name, age of its last report, devbox version, runtime, failing checks
    Machines {
        /// The order of the lines
        #[arg(long, value_enum, default_value = "name")]
        sort: SortBy,
    },
    /// Remove the reports of machines not heard from for longer than --older-than (retired ones)
    Prune {
        /// e.g. "90d"
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        older_than: Duration,
        /// List what would be removed, and remove nothing
        #[arg(long)]
        dry_run: bool,
    },
}

impl FleetArgs {
    pub async fn run(self, ctx: &Context) -> anyhow::Result<ExitStatus> {
        let config = ctx.config()?.config;
        let fleet = Fleet::read(&config, self.max_reports).await?;
        let now = jiff::Timestamp::now();
        let stale_after = config.fleet.stale_after;
        let p = &ctx.printer;
        match self.command {
            Some(FleetCommand::Machines { sort }) => {
                let lines = machines::machine_lines(&fleet.judged, now, stale_after, sort);
                if self.json { p.json(&lines)? } else { print_machines(p, &lines) }
            }
            Some(FleetCommand::Prune { older_than, dry_run }) => {
                return prune(p, &fleet, machines::prunable(&fleet.judged, now, older_than), dry_run, self.json).await;
            }
            None => {
                let summary = view::summary(&fleet.judged, now, stale_after, &fleet.current, fleet.truncated_at);
                if let Some(file) = &self.html {
                    let page = html::render(&summary, &fleet.source, now)?;
                    std::fs::write(file, page).map_err(|e| Error::FleetWrite {
                        what: "fleet page",
                        path: file.clone(),
                        reason: e.to_string(),
                    })?;
                }
                match self.check {
                    Some(check) => {
                        let found = machines::failing(&fleet.judged, check.name(), now, stale_after);
                        if self.json {
                            p.json(&CheckJson { check: check.name(), machines: &found })?;
                        } else {
                            print_failing(p, check.name(), &found);
                        }
                    }
                    None if self.json => p.json(&summary)?,
                    None => print_summary(p, &summary, &fleet.source),
                }
                if let Some(file) = self.html.as_ref().filter(|_| !self.json) {
                    p.line(format!("\nWrote the fleet page to {}", file.display()));
                }
            }
        }
        Ok(ExitStatus::Success)
    }
}

/// Every report under the prefix, judged, and where they came from.
struct Fleet {
    aws: Arc<Aws>,
    judged: Vec<Judged>,
    truncated_at: Option<usize>,
    /// Each base image and the digest its tag resolves to in the registry's storage now.
    current: Vec<(String, Option<String>)>,
    /// "bucket/prefix/machines/", for people.
    source: String,
}

impl Fleet {
    async fn read(config: &Config, cap: usize) -> anyhow::Result<Fleet> {
        let s3 = fleet_s3(config)?;
        let aws = Arc::new(Aws::connect(&s3).await?);
        let prefix = &config.fleet.prefix;
        let (fetched, current) = tokio::join!(read::fetch_all(&aws, prefix, cap), current_digests(config, &aws));
        let fetched = fetched.map_err(|err| read_error(&aws, prefix, &s3.profile, err))?;
        let source = format!("{}/{}", aws.bucket(), machines_prefix(prefix));
        Ok(Fleet { aws, judged: fetched.judged, truncated_at: fetched.truncated_at, current, source })
    }
}

/// What each configured base image's tag resolves to in the registry's storage, read from its
/// bucket (the fleet's, or the registry's own when that is another). Unknown (`None`) where the
/// registry keeps no S3 storage or the bucket could not be read: never taken from a report.
async fn current_digests(config: &Config, fleet: &Arc<Aws>) -> Vec<(String, Option<String>)> {
    let images = crate::images::base_images(config, &[]).unwrap_or_default();
    let s3 = &config.registry.s3;
    let registry = match s3.bucket.as_ref() {
        None => None,
        Some(bucket) if bucket.to_string() == fleet.bucket() => Some(Arc::clone(fleet)),
        Some(_) => Aws::connect(s3).await.ok().map(Arc::new),
    };
    let digests = futures_util::future::join_all(images.iter().map(|image| {
        let registry = registry.clone();
        async move {
            let registry = registry?;
            registry.tag_digest(&s3.root_directory, &image.repo, &image.tag).await.ok().flatten()
        }
    }))
    .await;
    images.into_iter().map(|i| i.name).zip(digests).collect()
}

/// A refused read names the two actions the platform team's policy needs.
fn read_error(aws: &Aws, prefix: &str, profile: &str, err: ActionError) -> Error {
    match err {
        ActionError::Denied { .. } => Error::FleetReadDenied {
            reason: err.to_string(),
            bucket: aws.resource(""),
            prefix: prefix.to_string(),
            objects: aws.resource(prefix),
            profile: profile.to_string(),
        },
        other => Error::FleetRead { reason: other.to_string() },
    }
}

#[derive(Serialize)]
struct CheckJson<'a> {
    check: &'a str,
    machines: &'a [Failing],
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn print_summary(p: &Printer, s: &Summary, source: &str) {
    p.line(format!(
        "{} reported to s3://{source}: {} in the last 24 h, {} stale (no report for more than {})",
        plural(s.machines, "machine", "machines"),
        s.reported_24h,
        s.stale,
        s.stale_after
    ));
    if s.machines > 0 {
        p.line(format!(
            "\n{:<20}{:>6}{:>6}{:>6}{:>7}{:>9}{:>8}",
            "check", "pass", "warn", "fail", "stale", "unknown", "pass%"
        ));
        for c in &s.checks {
            let check = if c.ids > 1 { format!("{} ({} ids)", c.check, c.ids) } else { c.check.clone() };
            p.line(format!(
                "{:<20}{:>6}{:>6}{:>6}{:>7}{:>9}{:>7.0}%",
                check, c.pass, c.warn, c.fail, c.stale, c.unknown, c.pass_percent
            ));
        }
    }
    if !s.currency.is_empty() {
        p.line(format!(
            "\n{:<28}{:>9}{:>7}{:>12}  current digest (the registry's)",
            "base image", "current", "older", "not pulled"
        ));
        for i in &s.currency {
            let digest = i.current.as_deref().map_or("unknown", crate::images::short);
            p.line(format!("{:<28}{:>9}{:>7}{:>12}  {digest}", i.image, i.on_current, i.on_older, i.not_pulled));
            if !i.behind.is_empty() {
                p.hint(format!("  behind: {}", i.behind.join(", ")));
            }
        }
    }
    if s.unverified_images > 0 {
        let machines = plural(s.unverified_images, "machine has", "machines have");
        p.mark(Mark::Warn, format!("{machines} a base image not verified against the team's keys (image-signatures)"));
    }
    if !s.versions.is_empty() {
        let versions: Vec<String> = s.versions.iter().map(|v| format!("{} ({})", v.version, v.machines)).collect();
        p.line(format!("\ndevbox versions: {}", versions.join(", ")));
    }
    if !s.stale_machines.is_empty() {
        let names: Vec<String> = s.stale_machines.iter().map(|m| format!("{} ({} ago)", m.name, m.age)).collect();
        p.mark(Mark::Warn, format!("stale: {}", names.join(", ")));
    }
    print_skipped(p, s);
}

/// Reports that were not read, not counted, flagged or shown escaped: counted and named, never
/// fatal.
fn print_skipped(p: &Printer, s: &Summary) {
    if let Some(cap) = s.truncated_at {
        p.mark(
            Mark::Warn,
            format!("only the first {cap} objects were read: there are more (raise it with --max-reports N)"),
        );
    }
    for f in &s.flagged {
        p.mark(Mark::Warn, format!("{} (machine {}, principal {}): {}", f.name, f.machine_id, f.principal, f.says));
    }
    if !s.superseded.is_empty() {
        p.mark(
            Mark::Warn,
            format!(
                "{} not counted: the same machine reported again under another key:",
                plural(s.superseded.len(), "report", "reports")
            ),
        );
        for r in &s.superseded {
            p.hint(format!("  {} (counted: {})", r.key, r.by));
        }
    }
    if !s.rejected.is_empty() {
        p.mark(Mark::Warn, format!("{} skipped:", plural(s.rejected.len(), "report", "reports")));
        for r in &s.rejected {
            p.hint(format!("  {} {}", r.key, r.reason));
        }
    }
    if !s.escaped.is_empty() {
        p.mark(
            Mark::Warn,
            format!(
                "{} held markup, or control, bidi or zero-width characters, shown escaped: {}",
                plural(s.escaped.len(), "report", "reports"),
                s.escaped.join(", ")
            ),
        );
    }
}

fn print_failing(p: &Printer, check: &str, found: &[Failing]) {
    let fails = found.iter().filter(|f| f.status == CheckStatus::Fail).count();
    if found.is_empty() {
        p.mark(Mark::Ok, format!("{check}: no machine fails or warns"));
        return;
    }
    p.line(format!(
        "{check}: {} fail, {} warn (quoted: what each machine reported, in its own words)",
        fails,
        found.len() - fails
    ));
    for f in found {
        let mark = if f.status == CheckStatus::Fail { Mark::Fail } else { Mark::Warn };
        let stale = if f.stale { ", stale" } else { "" };
        // Under --quiet a failure still prints; its fix goes with it.
        p.mark(mark, format!("{} ({} ago{stale}, principal {})", f.name, f.age, f.principal));
        p.hint(format!("  reported: \u{201c}{}\u{201d}", f.reported_summary));
        if let Some(hint) = &f.reported_hint {
            p.hint(format!("  reported hint: \u{201c}{hint}\u{201d}"));
        }
        if let Some(fix) = &f.reported_fix {
            p.hint(format!("  reported fix: \u{201c}{fix}\u{201d}"));
        }
        if let Some(fix) = &f.fix {
            p.hint(format!("  devbox's fix: {fix}"));
        }
    }
}

fn print_machines(p: &Printer, lines: &[MachineLine]) {
    if lines.is_empty() {
        p.line("no machine has reported yet");
        return;
    }
    p.line(format!("{:<24}{:>12}  {:<10}{:<18}failing", "machine", "last report", "devbox", "runtime"));
    for l in lines {
        let failing = if l.failing.is_empty() { "-".to_string() } else { l.failing.join(", ") };
        let stale = if l.stale { " (stale)" } else { "" };
        p.line(format!(
            "{:<24}{:>12}  {:<10}{:<18}{failing}{stale}",
            l.name,
            format!("{} ago", l.age),
            l.devbox_version,
            l.runtime
        ));
    }
}

#[derive(Serialize)]
struct PruneJson<'a> {
    dry_run: bool,
    reports: &'a [Prunable],
    removed: usize,
    errors: Vec<String>,
}

async fn prune(
    p: &Printer,
    fleet: &Fleet,
    old: Vec<Prunable>,
    dry_run: bool,
    json: bool,
) -> anyhow::Result<ExitStatus> {
    let mut errors = Vec::new();
    if !dry_run {
        for item in &old {
            if let Err(err) = fleet.aws.delete_object(&item.exact_key).await {
                errors.push(crate::fleet::read::clean(&err.to_string()).0);
            }
        }
    }
    let removed = if dry_run { 0 } else { old.len() - errors.len() };
    if json {
        p.json(&PruneJson { dry_run, reports: &old, removed, errors: errors.clone() })?;
    } else {
        let verb = if dry_run { "would remove" } else { "removing" };
        p.line(format!("{verb} {}", plural(old.len(), "report", "reports")));
        for item in &old {
            p.line(format!(
                "  {} ({}, last heard from {} ago)",
                item.key,
                item.name.as_deref().unwrap_or("unreadable"),
                item.age
            ));
        }
        for err in &errors {
            p.mark(Mark::Fail, err);
        }
    }
    if !errors.is_empty() {
        anyhow::bail!(
            "{} of {} reports could not be removed; removing needs s3:DeleteObject on the prefix",
            errors.len(),
            old.len()
        );
    }
    Ok(ExitStatus::Success)
}
