//! `devbox init`'s plan, in pure terms: the steps in order, what each needs, and how their outcomes
//! add up. The run (`run.rs`) carries the steps out, asking through `ask.rs`; this file decides
//! which may run and what the summary says.

pub mod answers;
pub mod ask;
pub mod front;
pub mod header;
pub mod run;
pub mod steps;
pub mod team;
pub mod trust;

use serde::Serialize;

use crate::deps;

/// One step of `init`, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Step {
    /// The engine answers; the registry's port is free (or devbox's own); S3 answers when configured.
    Preflight,
    /// The user's devbox.toml: the team's, with what was missing filled in.
    Config,
    /// The registry container (`devbox registry up`).
    Registry,
    /// The base images (`devbox pull`).
    Pull,
    /// A VM engine's clock (`devbox clock sync --if-skewed`).
    Clock,
    /// The scheduled jobs (`devbox schedule install`).
    Schedules,
    /// The final check (`devbox doctor`).
    Doctor,
}

pub const ALL_STEPS: [Step; 7] =
    [Step::Preflight, Step::Config, Step::Registry, Step::Pull, Step::Clock, Step::Schedules, Step::Doctor];

impl Step {
    pub fn name(self) -> &'static str {
        match self {
            Step::Preflight => "preflight",
            Step::Config => "config",
            Step::Registry => "registry",
            Step::Pull => "pull",
            Step::Clock => "clock",
            Step::Schedules => "schedules",
            Step::Doctor => "doctor",
        }
    }

    /// The steps that must not have failed for this one to run. A skipped step (`--skip`) does
    /// not block: the user vouched for it.
    pub fn depends_on(self) -> &'static [Step] {
        match self {
            Step::Preflight => &[],
            Step::Config => &[Step::Preflight],
            Step::Registry | Step::Clock | Step::Schedules | Step::Doctor => &[Step::Config],
            Step::Pull => &[Step::Registry],
        }
    }
}

/// What one step came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// ✓ it changed something.
    Changed(String),
    /// ✓ a check that passed; it changes nothing (preflight, doctor).
    Checked(String),
    /// = already in place.
    Same(String),
    /// ✓ with `--dry-run`: what it would change.
    WouldChange(String),
    /// ✗ with its hint.
    Failed { message: String, hint: Option<String> },
    /// - left out, and why (`--skip`, or a dry run).
    Skipped(String),
    /// - not run, because a step it needs failed.
    Blocked(Step),
}

/// The step whose failure stops `step`, if any: its own dependency, or the root cause further up.
/// Decided just before `step` would run, from what the steps before it came to.
pub fn blocker(step: Step, done: &[(Step, Outcome)]) -> Option<Step> {
    deps::blocker(step.depends_on(), |dep| match done.iter().find(|(s, _)| *s == dep).map(|(_, o)| o) {
        Some(Outcome::Failed { .. }) => deps::State::Failed,
        Some(Outcome::Blocked(root)) => deps::State::Blocked(*root),
        // Done, skipped with `--skip` (the user vouched for it), or not run yet.
        _ => deps::State::Passed,
    })
}

/// The closing line, and whether the run failed.
pub fn summary(results: &[(Step, Outcome)], dry_run: bool) -> (String, bool) {
    let count = |f: fn(&Outcome) -> bool| results.iter().filter(|(_, o)| f(o)).count();
    let changed = count(|o| matches!(o, Outcome::Changed(_)));
    let would = count(|o| matches!(o, Outcome::WouldChange(_)));
    let same = count(|o| matches!(o, Outcome::Same(_) | Outcome::Checked(_)));
    let failed = count(|o| matches!(o, Outcome::Failed { .. }));
    let blocked = count(|o| matches!(o, Outcome::Blocked(_)));
    let skipped = count(|o| matches!(o, Outcome::Skipped(_)));
    let mut parts = Vec::new();
    if dry_run {
        parts.push(format!("{would} would change"));
    } else {
        parts.push(format!("{changed} changed"));
    }
    parts.push(format!("{same} already in place"));
    if failed > 0 {
        parts.push(format!("{failed} failed"));
    }
    if blocked > 0 {
        parts.push(format!("{blocked} not run"));
    }
    if skipped > 0 {
        parts.push(format!("{skipped} skipped"));
    }
    let counts = parts.join(", ");
    let text = match (failed > 0, dry_run) {
        (true, _) => format!("init stopped: {counts}. Fix what failed, then run `devbox init` again: it resumes."),
        (false, true) => format!("dry run: {counts}. Nothing was changed."),
        (false, false) if changed == 0 => format!("nothing changed: this machine was already set up ({counts})"),
        (false, false) => format!("this machine is set up: {counts}"),
    };
    (text, failed > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail() -> Outcome {
        Outcome::Failed { message: "down".into(), hint: None }
    }

    #[test]
    fn steps_come_after_what_they_need() {
        for (i, step) in ALL_STEPS.iter().enumerate() {
            for dep in step.depends_on() {
                assert!(ALL_STEPS[..i].contains(dep), "{step:?} needs {dep:?}, which runs later");
            }
        }
    }

    #[test]
    fn a_failed_preflight_blocks_everything_naming_preflight() {
        let mut done = vec![(Step::Preflight, fail())];
        for step in &ALL_STEPS[1..] {
            let root = blocker(*step, &done).expect("blocked");
            assert_eq!(root, Step::Preflight, "{step:?}");
            done.push((*step, Outcome::Blocked(root)));
        }
    }

    #[test]
    fn a_failed_registry_blocks_only_the_pull() {
        let done = vec![
            (Step::Preflight, Outcome::Checked("ok".into())),
            (Step::Config, Outcome::Same("ok".into())),
            (Step::Registry, fail()),
        ];
        assert_eq!(blocker(Step::Pull, &done), Some(Step::Registry));
        assert_eq!(blocker(Step::Clock, &done), None);
        assert_eq!(blocker(Step::Schedules, &done), None);
        assert_eq!(blocker(Step::Doctor, &done), None);
    }

    #[test]
    fn a_skipped_step_does_not_block() {
        let done = vec![
            (Step::Preflight, Outcome::Skipped("--skip".into())),
            (Step::Config, Outcome::Skipped("--skip".into())),
        ];
        assert_eq!(blocker(Step::Registry, &done), None);
    }

    #[test]
    fn the_summary_says_when_nothing_changed() {
        let results = vec![
            (Step::Preflight, Outcome::Checked("ok".into())),
            (Step::Config, Outcome::Same("in place".into())),
            (Step::Schedules, Outcome::Skipped("--skip".into())),
        ];
        let (text, failed) = summary(&results, false);
        assert!(!failed);
        assert_eq!(text, "nothing changed: this machine was already set up (0 changed, 2 already in place, 1 skipped)");

        let mut results = results;
        results.push((Step::Registry, Outcome::Changed("created".into())));
        assert_eq!(summary(&results, false).0, "this machine is set up: 1 changed, 2 already in place, 1 skipped");
    }

    #[test]
    fn the_summary_of_a_failure_says_a_rerun_resumes() {
        let results = vec![
            (Step::Preflight, fail()),
            (Step::Config, Outcome::Blocked(Step::Preflight)),
            (Step::Pull, Outcome::Skipped("--skip".into())),
        ];
        let (text, failed) = summary(&results, false);
        assert!(failed);
        assert_eq!(
            text,
            "init stopped: 0 changed, 0 already in place, 1 failed, 1 not run, 1 skipped. Fix what failed, then run \
             `devbox init` again: it resumes."
        );
    }

    #[test]
    fn a_dry_run_counts_what_would_change() {
        let results =
            vec![(Step::Config, Outcome::WouldChange("write".into())), (Step::Clock, Outcome::Same("vm".into()))];
        assert_eq!(summary(&results, true).0, "dry run: 1 would change, 1 already in place. Nothing was changed.");
    }
}
