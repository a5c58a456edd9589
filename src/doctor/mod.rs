//! `devbox doctor`: every check at once, each with its own timeout, each problem with the exact
//! command that fixes it. This file holds the vocabulary and the pure decisions (which checks run,
//! how a report reads); `checks/` holds one record per check (what it needs, how it runs) and the
//! checks themselves, `run.rs` runs them as their records say.

pub mod checks;
pub mod fix;
pub mod run;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Serialize;

/// Every check, in the order the report lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum CheckId {
    Config,
    Engine,
    Disk,
    RegistryContainer,
    RegistryApi,
    Network,
    AwsCredentials,
    Clock,
    BaseImages,
    Schedules,
    PushCredentials,
    Version,
}

impl CheckId {
    pub const ALL: [CheckId; 12] = [
        CheckId::Config,
        CheckId::Engine,
        CheckId::Disk,
        CheckId::RegistryContainer,
        CheckId::RegistryApi,
        CheckId::Network,
        CheckId::AwsCredentials,
        CheckId::Clock,
        CheckId::BaseImages,
        CheckId::Schedules,
        CheckId::PushCredentials,
        CheckId::Version,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CheckId::Config => "config",
            CheckId::Engine => "engine",
            CheckId::Disk => "disk",
            CheckId::RegistryContainer => "registry-container",
            CheckId::RegistryApi => "registry-api",
            CheckId::Network => "network",
            CheckId::AwsCredentials => "aws-credentials",
            CheckId::Clock => "clock",
            CheckId::BaseImages => "base-images",
            CheckId::Schedules => "schedules",
            CheckId::PushCredentials => "push-credentials",
            CheckId::Version => "version",
        }
    }

    /// The checks whose success this one needs, as its record in `checks` says.
    pub fn depends_on(self) -> &'static [CheckId] {
        self.spec().needs
    }
}

/// `--check NAME…` and everything those need, or every check when none is named.
pub fn selection(requested: &[CheckId]) -> BTreeSet<CheckId> {
    if requested.is_empty() {
        return CheckId::ALL.into_iter().collect();
    }
    let mut selected = BTreeSet::new();
    let mut todo: Vec<CheckId> = requested.to_vec();
    while let Some(id) = todo.pop() {
        if selected.insert(id) {
            todo.extend_from_slice(id.depends_on());
        }
    }
    selected
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
    Skipped,
}

/// What `--fix` can do about a finding. Listed in the order remedies are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Remedy {
    /// `devbox registry up`: create, recreate or start the registry.
    RegistryUp,
    /// `devbox clock sync`: set a VM engine's clock from the host's.
    ClockSync,
    /// `devbox schedule install`: install the missing jobs.
    ScheduleInstall,
    /// `devbox pull`: fetch stale or missing base images.
    Pull,
}

impl Remedy {
    pub fn command(self) -> &'static str {
        match self {
            Remedy::RegistryUp => "devbox registry up",
            Remedy::ClockSync => "devbox clock sync",
            Remedy::ScheduleInstall => "devbox schedule install",
            Remedy::Pull => "devbox pull",
        }
    }
}

/// One check's result.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub id: CheckId,
    pub status: Status,
    /// One line: what was found.
    pub summary: String,
    /// What to do about it, when something is wrong.
    pub hint: Option<String>,
    /// The exact command that fixes it, when there is one.
    pub fix: Option<String>,
    #[serde(skip)]
    pub remedy: Option<Remedy>,
    #[serde(rename = "duration_ms", serialize_with = "millis")]
    pub duration: Duration,
    /// Endpoints, versions, figures: shown with `-v` and in JSON. Never secrets.
    pub details: BTreeMap<&'static str, String>,
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

impl Finding {
    pub fn new(id: CheckId, status: Status, summary: impl Into<String>) -> Finding {
        Finding {
            id,
            status,
            summary: summary.into(),
            hint: None,
            fix: None,
            remedy: None,
            duration: Duration::ZERO,
            details: BTreeMap::new(),
        }
    }

    pub fn ok(id: CheckId, summary: impl Into<String>) -> Finding {
        Finding::new(id, Status::Ok, summary)
    }

    pub fn warn(id: CheckId, summary: impl Into<String>) -> Finding {
        Finding::new(id, Status::Warn, summary)
    }

    pub fn fail(id: CheckId, summary: impl Into<String>) -> Finding {
        Finding::new(id, Status::Fail, summary)
    }

    /// A check that is not reported because `blocker` failed.
    pub fn skipped(id: CheckId, blocker: CheckId) -> Finding {
        Finding::new(id, Status::Skipped, format!("skipped: {} failed", blocker.name()))
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Finding {
        self.hint = Some(hint.into());
        self
    }

    pub fn fix(mut self, command: impl Into<String>) -> Finding {
        self.fix = Some(command.into());
        self
    }

    /// A fix that `--fix` can apply itself; its command is the one printed.
    pub fn remedy(mut self, remedy: Remedy) -> Finding {
        self.fix = Some(remedy.command().to_string());
        self.remedy = Some(remedy);
        self
    }

    pub fn detail(mut self, key: &'static str, value: impl Into<String>) -> Finding {
        self.details.insert(key, value.into());
        self
    }

    pub fn passed(&self) -> bool {
        matches!(self.status, Status::Ok | Status::Warn)
    }
}

/// All findings of one run, in `CheckId` order.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub checks: Vec<Finding>,
}

impl Report {
    pub fn new(mut checks: Vec<Finding>) -> Report {
        checks.sort_by_key(|f| f.id);
        Report { checks }
    }

    pub fn count(&self, status: Status) -> usize {
        self.checks.iter().filter(|f| f.status == status).count()
    }

    pub fn failed(&self) -> bool {
        self.count(Status::Fail) > 0
    }

    /// "all 8 checks passed", or "2 problems, 1 warning, 3 skipped".
    pub fn summary(&self) -> String {
        let (fail, warn, skipped) = (self.count(Status::Fail), self.count(Status::Warn), self.count(Status::Skipped));
        if fail + warn + skipped == 0 {
            return match self.checks.len() {
                1 => "the check passed".to_string(),
                n => format!("all {n} checks passed"),
            };
        }
        let plural = |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        let mut parts = Vec::new();
        if fail > 0 {
            parts.push(plural(fail, "problem", "problems"));
        }
        if warn > 0 {
            parts.push(plural(warn, "warning", "warnings"));
        }
        if skipped > 0 {
            parts.push(format!("{skipped} skipped"));
        }
        parts.join(", ")
    }

    /// The remedies `--fix` would apply, each once, in the order they must run.
    pub fn remedies(&self) -> Vec<Remedy> {
        let set: BTreeSet<Remedy> = self
            .checks
            .iter()
            .filter(|f| matches!(f.status, Status::Fail | Status::Warn))
            .filter_map(|f| f.remedy)
            .collect();
        set.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selecting_a_check_brings_what_it_depends_on() {
        let selected = selection(&[CheckId::BaseImages]);
        assert_eq!(
            selected.into_iter().collect::<Vec<_>>(),
            vec![
                CheckId::Config,
                CheckId::Engine,
                CheckId::RegistryContainer,
                CheckId::RegistryApi,
                CheckId::BaseImages
            ]
        );
        assert_eq!(selection(&[]).len(), CheckId::ALL.len());
        assert_eq!(selection(&[CheckId::Config]).len(), 1);
    }

    #[test]
    fn the_summary_counts_problems_warnings_and_skips() {
        let report = Report::new(vec![
            Finding::fail(CheckId::Engine, "down"),
            Finding::skipped(CheckId::Disk, CheckId::Engine),
            Finding::warn(CheckId::BaseImages, "stale").remedy(Remedy::Pull),
            Finding::ok(CheckId::Config, "fine"),
        ]);
        assert_eq!(report.summary(), "1 problem, 1 warning, 1 skipped");
        assert!(report.failed());
        assert_eq!(report.checks[0].id, CheckId::Config);
        let healthy = Report::new(vec![Finding::ok(CheckId::Config, "fine"), Finding::ok(CheckId::Engine, "up")]);
        assert_eq!(healthy.summary(), "all 2 checks passed");
        assert!(!healthy.failed());
    }

    #[test]
    fn remedies_come_once_each_in_dependency_order() {
        let report = Report::new(vec![
            Finding::warn(CheckId::BaseImages, "stale").remedy(Remedy::Pull),
            Finding::fail(CheckId::RegistryContainer, "stopped").remedy(Remedy::RegistryUp),
            Finding::fail(CheckId::RegistryApi, "down").remedy(Remedy::RegistryUp),
            Finding::ok(CheckId::Config, "fine").remedy(Remedy::Pull),
        ]);
        assert_eq!(report.remedies(), vec![Remedy::RegistryUp, Remedy::Pull]);
    }
}
