//! What `devbox fleet` shows, decided from the judged reports, the time and the stale threshold.
//! Pure: the commands print these values, as text, JSON or HTML.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use super::CheckStatus;
use super::read::{Judged, Machine, Rejected};
use crate::doctor::CheckId;

/// How many days the timeline shows, today included.
pub const TIMELINE_DAYS: i64 = 14;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub machines: usize,
    pub reported_24h: usize,
    pub stale: usize,
    pub stale_after: String,
    /// Machines (not stale) whose `image-signatures` check warns or fails: an alias on a digest
    /// not verified against the team's keys.
    pub unverified_images: usize,
    pub checks: Vec<CheckCounts>,
    pub currency: Vec<ImageCurrency>,
    pub versions: Vec<VersionCount>,
    pub stale_machines: Vec<MachineLine>,
    /// Machines whose reports held markup or control characters: shown escaped.
    pub escaped: Vec<String>,
    pub rejected: Vec<Rejected>,
    pub timeline: Vec<DayCount>,
}

/// One check across the fleet. A stale machine's result counts as stale, whatever it was; a
/// skipped check or one the report lacks counts as unknown.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckCounts {
    pub check: String,
    pub pass: usize,
    pub warn: usize,
    pub fail: usize,
    pub stale: usize,
    pub unknown: usize,
    /// The share of machines that pass, in percent.
    pub pass_percent: f64,
}

/// One base image across the fleet: the bucket's current digest (what the most recent report's
/// registry served), and how many engines have it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageCurrency {
    pub image: String,
    pub current: Option<String>,
    pub on_current: usize,
    pub on_older: usize,
    pub not_pulled: usize,
    /// The machines on an older digest.
    pub behind: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VersionCount {
    pub version: String,
    pub machines: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DayCount {
    pub day: String,
    /// Machines whose last report is from that day.
    pub reports: usize,
}

/// One machine, as `fleet machines` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MachineLine {
    pub name: String,
    pub machine_id: String,
    pub last_report: Timestamp,
    pub age: String,
    #[serde(skip)]
    pub age_seconds: i64,
    pub devbox_version: String,
    pub runtime: String,
    pub failing: Vec<String>,
    pub warnings: Vec<String>,
    pub stale: bool,
}

/// A machine whose check fails (or warns), with what doctor told it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failing {
    pub name: String,
    pub machine_id: String,
    pub status: CheckStatus,
    pub summary: String,
    pub hint: Option<String>,
    pub fix: Option<String>,
    pub age: String,
    pub stale: bool,
}

/// A report `prune` removes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prunable {
    pub key: String,
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

fn machines(judged: &[Judged]) -> impl Iterator<Item = &Machine> {
    judged.iter().filter_map(|j| match j {
        Judged::Machine(m) => Some(m.as_ref()),
        Judged::Rejected(_) => None,
    })
}

fn age_of(seen: Timestamp, now: Timestamp) -> SignedDuration {
    now.duration_since(seen).max(SignedDuration::ZERO)
}

fn is_stale(m: &Machine, now: Timestamp, stale_after: Duration) -> bool {
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

/// Check names in doctor's order, then any other a report names, alphabetically.
fn check_names<'a>(machines: impl Iterator<Item = &'a Machine>) -> Vec<String> {
    let mut names: Vec<String> = CheckId::ALL.iter().map(|id| id.name().to_string()).collect();
    let mut others: Vec<String> =
        machines.flat_map(|m| m.report.checks.iter().map(|c| c.id.clone())).filter(|id| !names.contains(id)).collect();
    others.sort();
    others.dedup();
    names.extend(others);
    names
}

pub fn summary(judged: &[Judged], now: Timestamp, stale_after: Duration) -> Summary {
    let all: Vec<&Machine> = machines(judged).collect();
    let stale = |m: &Machine| is_stale(m, now, stale_after);
    let checks: Vec<CheckCounts> = check_names(all.iter().copied())
        .into_iter()
        .map(|check| {
            let mut counts = CheckCounts { check, pass: 0, warn: 0, fail: 0, stale: 0, unknown: 0, pass_percent: 0.0 };
            for m in &all {
                let status = m.report.checks.iter().find(|c| c.id == counts.check).map(|c| c.status);
                match (stale(m), status) {
                    (true, _) => counts.stale += 1,
                    (false, Some(CheckStatus::Ok)) => counts.pass += 1,
                    (false, Some(CheckStatus::Warn)) => counts.warn += 1,
                    (false, Some(CheckStatus::Fail)) => counts.fail += 1,
                    (false, Some(CheckStatus::Skipped) | None) => counts.unknown += 1,
                }
            }
            if !all.is_empty() {
                counts.pass_percent = (1000.0 * counts.pass as f64 / all.len() as f64).round() / 10.0;
            }
            counts
        })
        .collect();
    let mut versions: BTreeMap<&str, usize> = BTreeMap::new();
    for m in &all {
        *versions.entry(m.report.devbox_version.as_str()).or_default() += 1;
    }
    let mut versions: Vec<VersionCount> =
        versions.into_iter().map(|(v, n)| VersionCount { version: v.to_string(), machines: n }).collect();
    versions.sort_by_key(|v| std::cmp::Reverse(version_key(&v.version)));
    let mut stale_machines: Vec<MachineLine> =
        all.iter().filter(|m| stale(m)).map(|m| line(m, now, stale_after)).collect();
    stale_machines.sort_by_key(|l| std::cmp::Reverse(l.age_seconds));
    Summary {
        machines: all.len(),
        reported_24h: all.iter().filter(|m| age_of(m.seen, now) <= SignedDuration::from_hours(24)).count(),
        stale: all.iter().filter(|m| stale(m)).count(),
        stale_after: format_age(SignedDuration::try_from(stale_after).unwrap_or(SignedDuration::MAX)),
        unverified_images: unverified_images(&checks),
        checks,
        currency: currency(&all),
        versions,
        stale_machines,
        escaped: all.iter().filter(|m| m.escaped).map(|m| m.report.name.clone()).collect(),
        rejected: judged
            .iter()
            .filter_map(|j| match j {
                Judged::Rejected(r) => Some(r.clone()),
                Judged::Machine(_) => None,
            })
            .collect(),
        timeline: timeline(&all, now),
    }
}

/// The machines whose `image-signatures` check warns or fails.
fn unverified_images(checks: &[CheckCounts]) -> usize {
    checks.iter().find(|c| c.check == CheckId::ImageSignatures.name()).map_or(0, |c| c.warn + c.fail)
}

/// For each base image: the current digest is what the registry served the machine that reported
/// last; each machine's engine has it, has an older one, or has none.
/// One image as the reports name it: the newest registry digest seen (and when), and each
/// machine with its engine's digest.
type Sightings<'a> = (Option<(Timestamp, &'a str)>, Vec<(&'a Machine, Option<&'a str>)>);

fn currency(all: &[&Machine]) -> Vec<ImageCurrency> {
    let mut by_image: BTreeMap<&str, Sightings> = BTreeMap::new();
    for m in all {
        for image in &m.report.images {
            let entry = by_image.entry(image.name.as_str()).or_default();
            if let Some(digest) = &image.registry
                && entry.0.is_none_or(|(at, _)| m.report.ran_at > at)
            {
                entry.0 = Some((m.report.ran_at, digest.as_str()));
            }
            entry.1.push((m, image.local.as_deref()));
        }
    }
    by_image
        .into_iter()
        .map(|(image, (current, locals))| {
            let current = current.map(|(_, d)| d);
            let mut row = ImageCurrency {
                image: image.to_string(),
                current: current.map(String::from),
                on_current: 0,
                on_older: 0,
                not_pulled: 0,
                behind: Vec::new(),
            };
            for (m, local) in locals {
                match local {
                    None => row.not_pulled += 1,
                    Some(local) if Some(local) == current => row.on_current += 1,
                    Some(_) => {
                        row.on_older += 1;
                        row.behind.push(m.report.name.clone());
                    }
                }
            }
            row.behind.sort();
            row
        })
        .collect()
}

fn timeline(all: &[&Machine], now: Timestamp) -> Vec<DayCount> {
    let today = now.to_zoned_datetime(jiff::tz::TimeZone::UTC).date();
    (0..TIMELINE_DAYS)
        .rev()
        .filter_map(|back| today.checked_sub(jiff::Span::new().days(back)).ok())
        .map(|day| DayCount {
            day: day.to_string(),
            reports: all.iter().filter(|m| m.seen.to_zoned_datetime(jiff::tz::TimeZone::UTC).date() == day).count(),
        })
        .collect()
}

/// "0.10.2" sorts after "0.9.1"; anything unparsable sorts first.
fn version_key(version: &str) -> Vec<u64> {
    version.split(['.', '-', '+']).map_while(|part| part.parse().ok()).collect()
}

fn line(m: &Machine, now: Timestamp, stale_after: Duration) -> MachineLine {
    let with = |status| m.report.checks.iter().filter(|c| c.status == status).map(|c| c.id.clone()).collect();
    let age = age_of(m.seen, now);
    MachineLine {
        name: m.report.name.clone(),
        machine_id: m.report.machine_id.clone(),
        last_report: m.seen,
        age: format_age(age),
        age_seconds: age.as_secs(),
        devbox_version: m.report.devbox_version.clone(),
        runtime: m.report.engine.as_ref().map_or_else(|| "no engine".to_string(), |e| e.runtime.clone()),
        failing: with(CheckStatus::Fail),
        warnings: with(CheckStatus::Warn),
        stale: is_stale(m, now, stale_after),
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

/// The machines whose `check` fails, then those where it warns, each by name.
pub fn failing(judged: &[Judged], check: &str, now: Timestamp, stale_after: Duration) -> Vec<Failing> {
    let mut found: Vec<Failing> = machines(judged)
        .filter_map(|m| {
            let result = m.report.checks.iter().find(|c| c.id == check)?;
            matches!(result.status, CheckStatus::Fail | CheckStatus::Warn).then(|| Failing {
                name: m.report.name.clone(),
                machine_id: m.report.machine_id.clone(),
                status: result.status,
                summary: result.summary.clone(),
                hint: result.hint.clone(),
                fix: result.fix.clone(),
                age: format_age(age_of(m.seen, now)),
                stale: is_stale(m, now, stale_after),
            })
        })
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
            let (key, name, seen) = match j {
                Judged::Machine(m) => (&m.key, Some(m.report.name.clone()), m.seen),
                Judged::Rejected(r) => (&r.key, None, r.last_modified?),
            };
            let age = age_of(seen, now);
            (age.unsigned_abs() > older_than).then(|| (seen, Prunable { key: key.clone(), name, age: format_age(age) }))
        })
        .collect();
    old.sort_by_key(|(seen, p)| (*seen, p.key.clone()));
    old.into_iter().map(|(_, p)| p).collect()
}

#[cfg(test)]
#[path = "view_tests.rs"]
mod tests;
