//! What each of `init`'s actions came to, as a step's outcome. Pure: the run (`run.rs`)
//! carries out the domain action (`registry::converge`, `images::pull`, `clock::sync`,
//! `schedule::install`), then asks here how its line reads.

use super::Outcome;
use crate::clock::sync::Synced;
use crate::error::Error;
use crate::images::pull::Pulled;
use crate::registry::{Action, Converged, UpOutcome};
use crate::schedule::{BackendKind, InstallOutcome};

/// `--dry-run`: what the registry step would do. A container of that name that is not devbox's
/// fails the step, as it would fail the real run.
pub fn registry_preview(name: &str, image: &str, action: Option<Action>) -> anyhow::Result<Outcome> {
    let Some(action) = action else {
        return Ok(Outcome::WouldChange(format!("would pull {image} and create registry {name}")));
    };
    Ok(match action {
        Action::Nothing => Outcome::Same(format!("registry {name} is already up")),
        Action::Create => Outcome::WouldChange(format!("would create registry {name}")),
        Action::Recreate(why) => Outcome::WouldChange(format!("would recreate registry {name}: {why}")),
        Action::Start => Outcome::WouldChange(format!("would start registry {name}")),
        Action::Refuse => return Err(Error::ForeignContainer { container: name.to_string() }.into()),
    })
}

pub fn registry(up: &Converged) -> Outcome {
    if up.outcome == UpOutcome::Unchanged { Outcome::Same(up.describe()) } else { Outcome::Changed(up.describe()) }
}

/// An image that failed fails the step, naming each image and why.
pub fn pull(pulled: &Pulled) -> Outcome {
    if pulled.failed() > 0 {
        return Outcome::Failed {
            message: format!("{}: {}", pulled.summary(), pulled.failures().join("; ")),
            hint: Some("Run `devbox pull` for the details; `devbox init` again resumes here.".into()),
        };
    }
    if pulled.updated() > 0 { Outcome::Changed(pulled.summary()) } else { Outcome::Same(pulled.summary()) }
}

/// The clock step on a VM engine (`runtime` names it), after `clock sync --if-skewed`.
pub fn clock(runtime: &str, synced: &Synced) -> Outcome {
    match synced {
        synced if synced.failed() => Outcome::Failed {
            message: format!("the {runtime} VM's clock is still off after a sync"),
            hint: Some("Run `devbox clock check` to see the skews.".into()),
        },
        Synced::Set { .. } => Outcome::Changed(format!("set the {runtime} VM's clock from this host's")),
        _ => Outcome::Same(format!("the {runtime} VM's clock is within clock.max_skew")),
    }
}

/// `--dry-run`: the jobs `kind` does not hold yet.
pub fn schedules_preview(kind: BackendKind, missing: &[&str]) -> Outcome {
    if missing.is_empty() {
        Outcome::Same(format!("jobs already in {kind}"))
    } else {
        Outcome::WouldChange(format!("would install in {kind}: {}", missing.join(", ")))
    }
}

/// The jobs installed in `kind`, and those left out with the reason.
pub fn schedules(kind: BackendKind, outcome: &InstallOutcome) -> Outcome {
    let changed: Vec<&str> = outcome.changes.iter().filter(|c| c.changed).map(|c| c.job.as_str()).collect();
    let jobs: Vec<&str> = outcome.jobs.iter().map(|j| j.name).collect();
    let skipped: Vec<String> = outcome.skipped.iter().map(|s| format!("{}: {}", s.name, s.reason)).collect();
    let skipped = if skipped.is_empty() { String::new() } else { format!(" (not installed: {})", skipped.join("; ")) };
    if changed.is_empty() {
        Outcome::Same(format!("jobs already in {kind}: {}{skipped}", jobs.join(", ")))
    } else {
        Outcome::Changed(format!("{kind}: installed or updated {}{skipped}", changed.join(", ")))
    }
}
