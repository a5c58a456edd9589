//! How the outcome of a domain action reads, wherever it runs: `registry up` and `doctor --fix`
//! report the registry alike, `pull` and `doctor --fix` the images, `clock sync` and
//! `doctor --fix` the clock, `schedule install` and `doctor --fix` the jobs. The domain returns
//! what happened; only these functions (and the commands) print it.

use std::time::Duration;

use jiff::SignedDuration;

use crate::clock::check::RegistryAccess;
use crate::clock::sync::{Method, SyncReport, Synced};
use crate::clock::{self, Classification, Skew, Verdict};
use crate::config::Config;
use crate::error::ExitStatus;
use crate::images::pull::Pulled;
use crate::registry::{Converged, UpOutcome};
use crate::schedule::{InstallOutcome, Skipped};
use crate::ui::{Mark, Printer};

/// `registry up`: one line, `=` when nothing changed.
pub fn registry_up(p: &Printer, up: &Converged) {
    p.mark(if up.outcome == UpOutcome::Unchanged { Mark::Same } else { Mark::Ok }, up.describe());
}

/// `pull`: the summary line, after the per-image progress; a failed image fails the command.
pub fn pulled(p: &Printer, pulled: &Pulled) -> ExitStatus {
    if let Some(up) = &pulled.renewed {
        registry_up(p, up);
    }
    if let Some(rebuilt) = &pulled.rebuilt {
        p.detail(rebuilt);
    }
    let failed = pulled.failed() > 0;
    p.mark(if failed { Mark::Fail } else { Mark::Ok }, pulled.summary());
    if failed { ExitStatus::Failure } else { ExitStatus::Success }
}

/// `schedule install`: each job installed or removed, then (with `-v`) what each runs, then the
/// jobs left out and why.
pub fn jobs_installed(p: &Printer, outcome: &InstallOutcome) {
    for change in &outcome.changes {
        let verb = if outcome.jobs.iter().any(|j| j.name == change.job) { "installed" } else { "removed" };
        if change.changed {
            p.mark(Mark::Ok, format!("{} job {verb} ({})", change.job, change.location));
        } else {
            p.mark(Mark::Same, format!("{} job already {verb} ({})", change.job, change.location));
        }
    }
    for job in &outcome.jobs {
        p.detail(format!(
            "  {}: {} ({}), log {}",
            job.name,
            outcome.env.argv(job).join(" "),
            job.period,
            outcome.env.log_path(job.name).display()
        ));
    }
    for Skipped { name, reason } in &outcome.skipped {
        p.line(format!("- {name} job not installed: {reason}"));
    }
}

/// One line per pair of clocks: the skew and its verdict, `suffix` after it.
pub fn skews(p: &Printer, skews: &[Skew], max_skew: Duration, suffix: &str) {
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
        p.mark(mark, text);
    }
}

/// Whether the registry reaches S3; said only with `-v` when there was nothing to check.
pub fn registry_access(p: &Printer, access: &RegistryAccess) {
    match access {
        RegistryAccess::Ok => p.mark(Mark::Ok, "registry reaches S3 (GET /v2/_catalog answered 200)"),
        RegistryAccess::Refused(why) => p.mark(Mark::Warn, format!("registry cannot read S3: {why}")),
        RegistryAccess::NotApplicable(why) => p.detail(format!("registry: not checked ({why})")),
    }
}

/// What `clock sync` says while it runs.
pub struct ClockSync<'a> {
    printer: &'a Printer,
    max_skew: Duration,
}

impl<'a> ClockSync<'a> {
    pub fn new(printer: &'a Printer, config: &Config) -> Self {
        ClockSync { printer, max_skew: config.clock.max_skew }
    }
}

impl SyncReport for ClockSync<'_> {
    fn skewed(&self, engine: &Classification, skew: SignedDuration, verdict: Verdict) {
        self.printer.mark(
            if verdict.is_failure() { Mark::Fail } else { Mark::Warn },
            format!(
                "the engine's clock ({}) is {} from the host's: {}",
                engine.runtime.label(),
                clock::format_skew(skew),
                clock::describe(verdict, self.max_skew)
            ),
        );
    }

    fn note(&self, text: &str) {
        self.printer.line(text);
    }

    fn set(&self, method: &Method) {
        self.printer.mark(Mark::Ok, format!("set the engine's clock from the host's UTC time: {}", method.display()));
    }

    fn after(&self, after: &[Skew]) {
        skews(self.printer, after, self.max_skew, " (after)");
    }
}

/// How `clock sync` ended. Under `--if-skewed` a clock within bounds says nothing.
pub fn clock_synced(p: &Printer, config: &Config, synced: &Synced, if_skewed: bool) -> ExitStatus {
    match synced {
        // The scheduled job: no engine running means no clock to fix.
        Synced::NoEngine(why) => p.line(format!("clock: nothing to sync: {why}")),
        Synced::WithinBounds(_) if if_skewed => {}
        Synced::WithinBounds(skew) => p.mark(
            Mark::Same,
            format!(
                "the engine's clock is {} from the host's, within clock.max_skew ({}): nothing to do",
                clock::format_skew(*skew),
                humantime::format_duration(config.clock.max_skew)
            ),
        ),
        Synced::WouldRun(method) => {
            p.line("would run (the time is the host's UTC time when it runs):");
            p.product(format!("  {}", method.display()));
            p.line(format!(
                "then measure again, and check the registry's S3 access with GET /v2/_catalog on {} \
                 (restarting container {} if S3 still refuses it)",
                config.registry.local_url(),
                config.registry.container
            ));
        }
        Synced::Set { registry, after_restart, .. } => match (registry, after_restart) {
            (RegistryAccess::Refused(why), Some(after_restart)) => {
                p.mark(Mark::Warn, format!("registry still could not read S3 after the sync: {why}"));
                p.line(format!("restarted container {}", config.registry.container));
                registry_access(p, after_restart);
            }
            (access, _) => registry_access(p, access),
        },
    }
    if synced.failed() { ExitStatus::Failure } else { ExitStatus::Success }
}
