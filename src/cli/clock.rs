//! `devbox clock check|sync`

use std::time::Duration;

use clap::{Args, Subcommand};
use jiff::Timestamp;
use serde::Serialize;

use super::Context;
use crate::clock::sync::{self as clock_sync, Decision, Method, RegistryAccess};
use crate::clock::{
    self, Classification, ClockName, Reading, Skew, Verdict, measure, runtime, skews, sync::registry_access,
};
use crate::config::Config;
use crate::engine::Engine;
use crate::error::{Error, ExitStatus};
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

/// The three clocks, read at once, and what devbox learnt about the engine on the way.
struct Measurement {
    readings: Vec<Reading>,
    engine: Option<Engine>,
    classification: Option<Classification>,
}

impl Measurement {
    fn reading(&self, clock: ClockName) -> Option<&Reading> {
        self.readings.iter().find(|r| r.clock == clock)
    }
}

/// Reads the host's clock, then the engine's and S3's concurrently. A clock that cannot be read
/// is a reading with its reason; the others are still taken.
async fn measure(ctx: &Context, config: &Config, engine: Option<Engine>) -> anyhow::Result<Measurement> {
    let host = Reading::host(Timestamp::now());
    let engine_side = async {
        let engine = match engine {
            Some(engine) => engine,
            None => match tokio::time::timeout(Duration::from_secs(8), Engine::connect(&ctx.env)).await {
                Ok(Ok(engine)) => engine,
                Ok(Err(e)) => {
                    return (Reading::failed(ClockName::Engine, "the Docker engine", e.to_string()), None, None);
                }
                Err(_) => {
                    let why = "finding the engine took longer than 8s";
                    return (Reading::failed(ClockName::Engine, "the Docker engine", why), None, None);
                }
            },
        };
        let (reading, info) = measure::engine_clock(&engine).await;
        let classification = info.map(|info| {
            let detected = runtime::classify(&info, engine.endpoint(), std::env::consts::OS);
            runtime::effective(detected, &ctx.env)
        });
        (reading, Some(engine), classification)
    };
    let ((engine_reading, engine, classification), s3) =
        tokio::join!(engine_side, measure::s3_reading(&config.registry.s3));
    Ok(Measurement { readings: vec![host, engine_reading, s3], engine, classification })
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
    let m = measure(ctx, config, None).await?;
    let skews = skews(&m.readings, max_skew);
    let registry = match &m.engine {
        Some(engine) => Some(
            registry_access(engine, &config.registry)
                .await
                .unwrap_or_else(|e| RegistryAccess::Refused(format!("cannot ask the registry: {e:#}"))),
        ),
        None => None,
    };
    let failed = skews.iter().any(|s| s.verdict.is_failure());
    if json {
        ctx.printer.json(&CheckReport {
            max_skew_seconds: max_skew.as_secs_f64(),
            clocks: &m.readings,
            skews: &skews,
            engine: m.classification.as_ref(),
            registry: registry.as_ref(),
            failed,
        })?;
    } else {
        print_clocks(ctx, &m);
        print_skews(ctx, &skews, max_skew, "");
        print_advice(ctx, &skews, m.classification.as_ref());
        if let Some(access) = &registry {
            print_registry(ctx, access);
        }
    }
    Ok(if failed { ExitStatus::Failure } else { ExitStatus::Success })
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

fn print_skews(ctx: &Context, skews: &[Skew], max_skew: Duration, suffix: &str) {
    for s in skews {
        let pair = format!("{} vs {}", s.a.label(), s.b.label());
        let (mark, text) = match (s.skew, s.verdict) {
            (Some(skew), verdict) => {
                let mark = match verdict {
                    Verdict::Ok => Mark::Ok,
                    Verdict::Warn => Mark::Warn,
                    _ => Mark::Fail,
                };
                let text = format!(
                    "{pair:<15} {:>12}  {}{suffix}",
                    clock::format_skew(skew),
                    clock::describe(verdict, max_skew)
                );
                (mark, text)
            }
            (None, _) => (Mark::Warn, format!("{pair:<15} not measured: {}", s.missing.as_deref().unwrap_or(""))),
        };
        ctx.printer.mark(mark, text);
    }
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

fn print_registry(ctx: &Context, access: &RegistryAccess) {
    match access {
        RegistryAccess::Ok => ctx.printer.mark(Mark::Ok, "registry reaches S3 (GET /v2/_catalog answered 200)"),
        RegistryAccess::Refused(why) => ctx.printer.mark(Mark::Warn, format!("registry cannot read S3: {why}")),
        RegistryAccess::NotApplicable(why) => ctx.printer.detail(format!("registry: not checked ({why})")),
    }
}

pub(super) async fn sync(ctx: &Context, config: &Config, if_skewed: bool, dry_run: bool) -> anyhow::Result<ExitStatus> {
    Ok(sync_report(ctx, config, if_skewed, dry_run).await?.0)
}

/// `clock sync`, saying also whether it set the clock. `init`'s clock step calls it with
/// `if_skewed` on VM engines.
pub(super) async fn sync_report(
    ctx: &Context,
    config: &Config,
    if_skewed: bool,
    dry_run: bool,
) -> anyhow::Result<(ExitStatus, bool)> {
    let max_skew = config.clock.max_skew;
    let before = measure(ctx, config, None).await?;
    let (Some(engine), Some(classification)) = (&before.engine, &before.classification) else {
        let why = before.reading(ClockName::Engine).and_then(|r| r.error.clone());
        let why = why.unwrap_or_else(|| "the engine did not answer".into());
        if if_skewed {
            // The scheduled job: no engine running means no clock to fix.
            ctx.printer.line(format!("clock: nothing to sync: {why}"));
            return Ok((ExitStatus::Success, false));
        }
        return Err(Error::ClockUnmeasured { reason: why }.into());
    };
    let engine_skew = match before.reading(ClockName::Engine) {
        Some(Reading { offset: Some(offset), .. }) => Ok(*offset),
        Some(r) => Err(r.error.clone().unwrap_or_else(|| "unknown".into())),
        None => Err("the engine's clock was not read".into()),
    };
    let refuse = || Error::ClockNotVm {
        endpoint: engine.endpoint().to_string(),
        runtime: classification.runtime.label().to_string(),
        reason: classification.reason.clone(),
        remote: classification.runtime == clock::Runtime::Remote,
    };
    let skew = match clock_sync::decide(classification, engine_skew, max_skew, if_skewed) {
        Decision::Refuse => return Err(refuse().into()),
        Decision::Unmeasured(reason) => return Err(Error::ClockUnmeasured { reason }.into()),
        Decision::WithinBounds(skew) => {
            if !if_skewed {
                ctx.printer.mark(
                    Mark::Same,
                    format!(
                        "the engine's clock is {} from the host's, within clock.max_skew ({}): nothing to do",
                        clock::format_skew(skew),
                        humantime::format_duration(max_skew)
                    ),
                );
            }
            return Ok((ExitStatus::Success, false));
        }
        Decision::Sync(skew) => skew,
    };
    let verdict = clock::judge(skew, max_skew);
    ctx.printer.mark(
        if verdict.is_failure() { Mark::Fail } else { Mark::Warn },
        format!(
            "the engine's clock ({}) is {} from the host's: {}",
            classification.runtime.label(),
            clock::format_skew(skew),
            clock::describe(verdict, max_skew)
        ),
    );

    let image = &config.registry.image;
    let name = helper_name();
    let on_path = |program: &str| clock_sync::on_path(&ctx.env, program);
    let plan = |target| clock_sync::choose(classification, target, image, &name, on_path);
    let (method, note) = plan(clock_sync::target_time(Timestamp::now()));
    if let Some(note) = note {
        ctx.printer.line(note);
    }
    if matches!(method, Method::Helper(_)) && !engine.has_image(image).await? {
        return Err(Error::ClockHelperImage { image: image.clone() }.into());
    }
    if dry_run {
        ctx.printer.line("would run (the time is the host's UTC time when it runs):");
        ctx.printer.product(format!("  {}", method.display()));
        ctx.printer.line(format!(
            "then measure again, and check the registry's S3 access with GET /v2/_catalog on {} \
             (restarting container {} if S3 still refuses it)",
            config.registry.local_url(),
            config.registry.container
        ));
        return Ok((ExitStatus::Success, false));
    }
    if classification.forced {
        return Err(
            Error::ClockForced { var: runtime::FORCE_VAR.into(), detected: classification.reason.clone() }.into()
        );
    }
    // The host's time as close to the moment it is set as devbox can make it.
    let (method, _) = plan(clock_sync::target_time(Timestamp::now()));
    match &method {
        Method::Cli(argv) => {
            clock_sync::run_cli(argv).await?;
        }
        Method::Helper(spec) => {
            clock_sync::run_helper(engine, spec).await?;
        }
    }
    ctx.printer.mark(Mark::Ok, format!("set the engine's clock from the host's UTC time: {}", method.display()));

    let after = measure(ctx, config, None).await?;
    let after_skews = skews(&after.readings, max_skew);
    print_skews(ctx, &after_skews, max_skew, " (after)");
    let mut failed = after_skews.iter().any(|s| s.a == ClockName::Engine && s.verdict.is_failure());

    let (first, second) = clock_sync::repair_registry(engine, &config.registry).await?;
    match (&first, &second) {
        (RegistryAccess::Refused(why), Some(after_restart)) => {
            ctx.printer.mark(Mark::Warn, format!("registry still could not read S3 after the sync: {why}"));
            ctx.printer.line(format!("restarted container {}", config.registry.container));
            print_registry(ctx, after_restart);
            failed |= matches!(after_restart, RegistryAccess::Refused(_));
        }
        (access, _) => print_registry(ctx, access),
    }
    Ok((if failed { ExitStatus::Failure } else { ExitStatus::Success }, true))
}

/// Unique per run, so two syncs never fight over a name.
fn helper_name() -> String {
    format!("devbox-clock-sync-{}", std::process::id())
}
