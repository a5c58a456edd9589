//! `devbox clock check|sync`

use clap::{Args, Subcommand};
use jiff::Timestamp;
use serde::Serialize;

use crate::cli::{Context, report};
use crate::clock::check::{Measurement, RegistryAccess};
use crate::clock::{self, Classification, ClockName, Reading, Skew, Verdict};
use crate::config::Config;
use crate::error::ExitStatus;
use crate::ui::Mark;

#[derive(Debug, Args)]
pub struct ClockArgs {
    #[command(subcommand)]
    command: ClockCommand,
}

#[derive(Debug, Subcommand)]
enum ClockCommand {
    /// Measure the skew between this host, the Docker engine and S3
    Check {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Set a VM engine's clock from this host's UTC time, then measure again
    Sync {
        /// Do nothing, quietly, when the engine's clock is within clock.max_skew (the scheduled job)
        #[arg(long)]
        if_skewed: bool,
        /// Show the helper container it would run, and run nothing
        #[arg(long)]
        dry_run: bool,
    },
}

impl ClockArgs {
    pub async fn run(self, ctx: &Context) -> anyhow::Result<ExitStatus> {
        let config = ctx.config()?.config;
        match self.command {
            ClockCommand::Check { json } => check(ctx, &config, json).await,
            ClockCommand::Sync { if_skewed, dry_run } => sync(ctx, &config, if_skewed, dry_run).await,
        }
    }
}

#[derive(Serialize)]
struct CheckReport<'a> {
    max_skew_seconds: f64,
    clocks: &'a [Reading],
    skews: &'a [Skew],
    engine: Option<&'a Classification>,
    registry: Option<&'a RegistryAccess>,
    /// A skew above 5 minutes: the exit code is 1.
    failed: bool,
}

async fn check(ctx: &Context, config: &Config, json: bool) -> anyhow::Result<ExitStatus> {
    let max_skew = config.clock.max_skew;
    let checked = clock::check::check(&ctx.env, config).await;
    let m = &checked.measurement;
    if json {
        ctx.printer.json(&CheckReport {
            max_skew_seconds: max_skew.as_secs_f64(),
            clocks: &m.readings,
            skews: &checked.skews,
            engine: m.classification.as_ref(),
            registry: checked.registry.as_ref(),
            failed: checked.failed,
        })?;
    } else {
        print_clocks(ctx, m);
        report::skews(&ctx.printer, &checked.skews, max_skew, "");
        print_advice(ctx, &checked.skews, m.classification.as_ref());
        if let Some(access) = &checked.registry {
            report::registry_access(&ctx.printer, access);
        }
    }
    Ok(if checked.failed { ExitStatus::Failure } else { ExitStatus::Success })
}

fn print_clocks(ctx: &Context, m: &Measurement) {
    let p = &ctx.printer;
    // Each clock as it stood when the host's was read, so the times line up.
    let host_time = m.reading(ClockName::Host).and_then(|r| r.time).unwrap_or_else(Timestamp::now);
    p.line("clocks (UTC, at the same instant):");
    for r in &m.readings {
        match (r.offset.map(|offset| host_time + offset), &r.error) {
            (Some(time), _) => {
                let trip = r.round_trip.map(|d| format!(", round trip {} ms", d.as_millis())).unwrap_or_default();
                p.line(format!("  {:<7} {:<25} {}{trip}", r.clock.label(), show_time(time), r.source));
            }
            (None, why) if r.skipped => {
                p.line(format!("  {:<7} not read: {}", r.clock.label(), why.as_deref().unwrap_or("")));
            }
            (None, why) => p.mark(
                Mark::Warn,
                format!("{}: not measured ({}): {}", r.clock.label(), r.source, why.as_deref().unwrap_or("unknown")),
            ),
        }
    }
    if let Some(c) = &m.classification {
        let clock = if c.vm { "a VM with its own clock" } else { "no clock of its own to set" };
        p.line(format!("engine: {} ({}): {clock}", c.runtime.label(), c.reason));
    }
}

fn show_time(time: Timestamp) -> String {
    time.round(jiff::Unit::Millisecond).unwrap_or(time).strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// What to do about a bad skew: sync a VM, or fix the host's own clock.
fn print_advice(ctx: &Context, skews: &[Skew], engine: Option<&Classification>) {
    let bad = |a, b| {
        skews.iter().any(|s| {
            s.a == a && s.b == b && matches!(s.verdict, Verdict::Warn | Verdict::Fail | Verdict::AwsWillRefuse)
        })
    };
    if bad(ClockName::Engine, ClockName::Host) {
        match engine {
            Some(c) if c.vm => ctx.printer.hint("run: devbox clock sync"),
            _ => ctx.printer.hint(
                "the engine shares this host's clock; keep it right with NTP (timedatectl set-ntp true, or chrony)",
            ),
        }
    }
    if bad(ClockName::S3, ClockName::Host) {
        ctx.printer.hint(
            "this host's own clock is off: turn on NTP (macOS: System Settings > General > Date & Time; Linux: \
             timedatectl set-ntp true; inside WSL2: sudo hwclock -s)",
        );
    }
}

async fn sync(ctx: &Context, config: &Config, if_skewed: bool, dry_run: bool) -> anyhow::Result<ExitStatus> {
    // A sync may restart the registry, so it takes the lock, but only once it must set the clock:
    // a dry run, or a clock within bounds (the scheduled job's usual case), waits for no one.
    let progress = report::ClockSync::new(&ctx.printer, config);
    let lock = async || ctx.lock("clock sync").await;
    let synced = clock::sync::run_locking(&ctx.env, config, if_skewed, dry_run, &progress, lock).await?;
    Ok(report::clock_synced(&ctx.printer, config, &synced, if_skewed))
}
