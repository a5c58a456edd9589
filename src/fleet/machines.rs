//! What `fleet machines`, `fleet --check` and `fleet prune` list: one line per machine, the
//! machines where a check fails, the reports old enough to remove; and the measures of age and
//! staleness that the summary in `view.rs` shares. Pure.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use super::CheckStatus;
use super::read::{Judged, Machine};
use crate::doctor::CheckId;

/// How many check ids a machine's line names before "and N more".
const MAX_IDS_PER_LINE: usize = 10;

/// One machine, as `fleet machines` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MachineLine {
    pub name: String,
    pub machine_id: String,
    pub principal: String,
    pub last_report: Timestamp,
    pub age: String,
    #[serde(skip)]
    pub age_seconds: i64,
    pub devbox_version: String,
    pub runtime: String,
    pub failing: Vec<String>,
    pub warnings: Vec<String>,
    pub stale: bool,
    pub flagged: bool,
}

/// A machine whose check fails (or warns): what the machine reported (its own words, which
/// devbox did not write and cannot vouch for), and devbox's own fix for a check it knows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failing {
    pub name: String,
    pub machine_id: String,
    pub principal: String,
    pub check: String,
    pub status: CheckStatus,
    pub reported_summary: String,
    pub reported_hint: Option<String>,
    pub reported_fix: Option<String>,
    /// devbox's own fix for this check, when devbox knows the check.
    pub fix: Option<String>,
    pub age: String,
    pub stale: bool,
}

/// A report `prune` removes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prunable {
    /// The key as shown.
    pub key: String,
    /// The exact key, which is what is deleted.
    #[serde(skip)]
    pub exact_key: String,
    pub name: Option<String>,
    pub age: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SortBy {
    /// By name
    Name,
    /// Oldest report first
    Age,
    /// Oldest devbox first
    Version,
    /// By engine runtime
    Runtime,
    /// Most failing checks first
    Failing,
}

pub(super) fn machines(judged: &[Judged]) -> impl Iterator<Item = &Machine> {
    judged.iter().filter_map(|j| match j {
        Judged::Machine(m) => Some(m.as_ref()),
        Judged::Rejected(_) | Judged::Superseded(_) => None,
    })
}

/// devbox's own fix for a check it knows: doctor's, for that check alone.
pub fn devbox_fix(check: &str) -> Option<String> {
    CheckId::ALL.iter().find(|id| id.name() == check).map(|id| format!("devbox doctor --check {} --fix", id.name()))
}

pub(super) fn age_of(seen: Timestamp, now: Timestamp) -> SignedDuration {
    now.duration_since(seen).max(SignedDuration::ZERO)
}

pub(super) fn is_stale(m: &Machine, now: Timestamp, stale_after: Duration) -> bool {
    age_of(m.seen, now).unsigned_abs() > stale_after
}

/// "3d 4h", "3d", "5h 12m", "7m", "40s".
pub fn format_age(age: SignedDuration) -> String {
    let s = age.as_secs().max(0);
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, 0, _) => format!("{d}d"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

/// "0.10.2" sorts after "0.9.1"; anything unparsable sorts first.
pub(super) fn version_key(version: &str) -> Vec<u64> {
    version.split(['.', '-', '+']).map_while(|part| part.parse().ok()).collect()
}

pub(super) fn line(m: &Machine, now: Timestamp, stale_after: Duration) -> MachineLine {
    let with = |status| {
        let ids: Vec<&str> = m.report.checks.iter().filter(|c| c.status == status).map(|c| c.id.as_str()).collect();
        let mut named: Vec<String> = ids.iter().take(MAX_IDS_PER_LINE).map(|id| id.to_string()).collect();
        if ids.len() > MAX_IDS_PER_LINE {
            named.push(format!("and {} more", ids.len() - MAX_IDS_PER_LINE));
        }
        named
    };
    let age = age_of(m.seen, now);
    MachineLine {
        name: m.report.name.clone(),
        machine_id: m.report.machine_id.clone(),
        principal: m.principal.clone(),
        last_report: m.seen,
        age: format_age(age),
        age_seconds: age.as_secs(),
        devbox_version: m.report.devbox_version.clone(),
        runtime: m.report.engine.as_ref().map_or_else(|| "no engine".to_string(), |e| e.runtime.clone()),
        failing: with(CheckStatus::Fail),
        warnings: with(CheckStatus::Warn),
        stale: is_stale(m, now, stale_after),
        flagged: !m.flags.is_empty(),
    }
}

/// Every machine, one line each, sorted as asked (then by name).
pub fn machine_lines(judged: &[Judged], now: Timestamp, stale_after: Duration, sort: SortBy) -> Vec<MachineLine> {
    let mut lines: Vec<MachineLine> = machines(judged).map(|m| line(m, now, stale_after)).collect();
    lines.sort_by(|a, b| a.name.cmp(&b.name).then(a.machine_id.cmp(&b.machine_id)));
    match sort {
        SortBy::Name => {}
        SortBy::Age => lines.sort_by_key(|l| std::cmp::Reverse(l.age_seconds)),
        SortBy::Version => lines.sort_by_key(|l| version_key(&l.devbox_version)),
        SortBy::Runtime => lines.sort_by(|a, b| a.runtime.cmp(&b.runtime)),
        SortBy::Failing => lines.sort_by_key(|l| std::cmp::Reverse((l.failing.len(), l.warnings.len()))),
    }
    lines
}

pub(super) fn failing_of(
    m: &Machine,
    c: &super::CheckResult,
    now: Timestamp,
    stale_after: Duration,
) -> Option<Failing> {
    matches!(c.status, CheckStatus::Fail | CheckStatus::Warn).then(|| Failing {
        name: m.report.name.clone(),
        machine_id: m.report.machine_id.clone(),
        principal: m.principal.clone(),
        check: c.id.clone(),
        status: c.status,
        reported_summary: c.summary.clone(),
        reported_hint: c.hint.clone(),
        reported_fix: c.fix.clone(),
        fix: devbox_fix(&c.id),
        age: format_age(age_of(m.seen, now)),
        stale: is_stale(m, now, stale_after),
    })
}

/// The machines whose `check` fails, then those where it warns, each by name.
pub fn failing(judged: &[Judged], check: &str, now: Timestamp, stale_after: Duration) -> Vec<Failing> {
    let mut found: Vec<Failing> = machines(judged)
        .filter_map(|m| failing_of(m, m.report.checks.iter().find(|c| c.id == check)?, now, stale_after))
        .collect();
    found.sort_by(|a, b| (a.status != CheckStatus::Fail, &a.name).cmp(&(b.status != CheckStatus::Fail, &b.name)));
    found
}

/// The reports last heard from more than `older_than` ago, oldest first. An object that is not a
/// report goes by when it was written.
pub fn prunable(judged: &[Judged], now: Timestamp, older_than: Duration) -> Vec<Prunable> {
    let mut old: Vec<(Timestamp, Prunable)> = judged
        .iter()
        .filter_map(|j| {
            let (key, exact_key, name, seen) = match j {
                Judged::Machine(m) => (&m.shown_key, &m.key, Some(m.report.name.clone()), m.seen),
                Judged::Rejected(r) => (&r.key, &r.exact_key, None, r.last_modified?),
                Judged::Superseded(s) => (&s.key, &s.exact_key, None, s.last_modified?),
            };
            let age = age_of(seen, now);
            (age.unsigned_abs() > older_than).then(|| {
                (seen, Prunable { key: key.clone(), exact_key: exact_key.clone(), name, age: format_age(age) })
            })
        })
        .collect();
    old.sort_by_key(|(seen, p)| (*seen, p.key.clone()));
    old.into_iter().map(|(_, p)| p).collect()
}
