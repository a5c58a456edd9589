//! What `devbox fleet` shows, decided from the judged reports, the time and the stale threshold.
//! Pure: the commands print these values, as text, JSON or HTML. The per-machine lists
//! (`fleet machines`, `--check`, `prune`) are in `machines.rs`, with the measures of age and staleness both use.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use super::CheckStatus;
use super::machines::{Failing, MachineLine, age_of, failing_of, format_age, is_stale, line, machines, version_key};
use super::read::{Judged, Machine, Rejected, Superseded};
use crate::doctor::CheckId;

/// How many days the timeline shows, today included.
pub const TIMELINE_DAYS: i64 = 14;

/// How many check ids that devbox does not know get a row of their own (the most reported ones);
/// the rest are summed up in one row, "other".
pub const OWN_ROWS_FOR_OTHER_IDS: usize = 10;

/// How many failing checks the page lists.
pub const MAX_FAILURE_LINES: usize = 500;

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
    /// Machines whose reports held markup or control, bidi or zero-width characters: shown escaped.
    pub escaped: Vec<String>,
    /// Reports whose claims their key or their object's date contradicts.
    pub flagged: Vec<FlaggedLine>,
    /// Each failing or warning check of a fresh machine, as the page lists them (at most
    /// `MAX_FAILURE_LINES`; `failures_total` counts them all).
    pub failures: Vec<Failing>,
    pub failures_total: usize,
    pub rejected: Vec<Rejected>,
    /// Reports of a machine that a newer report under another key stands for.
    pub superseded: Vec<Superseded>,
    /// The listing stopped at this many objects (`--max-reports`): there are more.
    pub truncated_at: Option<usize>,
    pub timeline: Vec<DayCount>,
}

/// A report flagged by the reader, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlaggedLine {
    pub name: String,
    pub machine_id: String,
    pub principal: String,
    pub flag: super::read::Flag,
    pub says: String,
}

/// One check across the fleet. A stale machine's result counts as stale, whatever it was; a
/// skipped check or one the report lacks counts as unknown. The row "other" sums the results of
/// the check ids without a row of their own (`ids` of them); its share is of those results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckCounts {
    pub check: String,
    /// How many check ids the row stands for: 1, or more for "other".
    pub ids: usize,
    pub pass: usize,
    pub warn: usize,
    pub fail: usize,
    pub stale: usize,
    pub unknown: usize,
    /// The share of machines that pass, in percent.
    pub pass_percent: f64,
}

/// One base image across the fleet: the digest its tag resolves to in the registry's storage now
/// (read from the bucket by the reader, never taken from a report), and how many engines have it.
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

/// Results per check id, counted in one pass over every machine's checks (a report that names an
/// id twice counts once): linear in the number of results, whatever the number of ids.
#[derive(Default, Clone, Copy)]
struct Tally {
    pass: usize,
    warn: usize,
    fail: usize,
    /// Results from stale machines.
    stale: usize,
    skipped: usize,
}

fn tally<'a>(all: &[&'a Machine], stale: impl Fn(&Machine) -> bool) -> HashMap<&'a str, Tally> {
    let mut tallies: HashMap<&str, Tally> = HashMap::new();
    let mut seen: HashSet<&str> = HashSet::new();
    for m in all {
        seen.clear();
        let is_stale = stale(m);
        for c in &m.report.checks {
            if !seen.insert(c.id.as_str()) {
                continue;
            }
            let t = tallies.entry(c.id.as_str()).or_default();
            match (is_stale, c.status) {
                (true, _) => t.stale += 1,
                (false, CheckStatus::Ok) => t.pass += 1,
                (false, CheckStatus::Warn) => t.warn += 1,
                (false, CheckStatus::Fail) => t.fail += 1,
                (false, CheckStatus::Skipped) => t.skipped += 1,
            }
        }
    }
    tallies
}

fn percent(part: usize, whole: usize) -> f64 {
    if whole == 0 { 0.0 } else { (1000.0 * part as f64 / whole as f64).round() / 10.0 }
}

/// The rows: every check doctor knows, in its order; then the most reported other ids, each its
/// own row, up to `OWN_ROWS_FOR_OTHER_IDS`; then one row "other" for the rest.
fn check_rows(all: &[&Machine], stale_count: usize, tallies: HashMap<&str, Tally>) -> Vec<CheckCounts> {
    let fresh = all.len() - stale_count;
    let row = |check: String, t: Tally| CheckCounts {
        check,
        ids: 1,
        pass: t.pass,
        warn: t.warn,
        fail: t.fail,
        stale: stale_count,
        unknown: fresh - t.pass - t.warn - t.fail,
        pass_percent: percent(t.pass, all.len()),
    };
    let mut rows: Vec<CheckCounts> = CheckId::ALL
        .iter()
        .map(|id| row(id.name().to_string(), tallies.get(id.name()).copied().unwrap_or_default()))
        .collect();
    let mut others: Vec<(&str, Tally)> =
        tallies.into_iter().filter(|(id, _)| !CheckId::ALL.iter().any(|known| known.name() == *id)).collect();
    let reported = |t: &Tally| t.pass + t.warn + t.fail + t.stale + t.skipped;
    others.sort_by(|(a, ta), (b, tb)| reported(tb).cmp(&reported(ta)).then(a.cmp(b)));
    let rest = others.split_off(others.len().min(OWN_ROWS_FOR_OTHER_IDS));
    rows.extend(others.into_iter().map(|(id, t)| row(id.to_string(), t)));
    if !rest.is_empty() {
        let sum = rest.iter().fold(Tally::default(), |s, (_, t)| Tally {
            pass: s.pass + t.pass,
            warn: s.warn + t.warn,
            fail: s.fail + t.fail,
            stale: s.stale + t.stale,
            skipped: s.skipped + t.skipped,
        });
        rows.push(CheckCounts {
            check: "other".into(),
            ids: rest.len(),
            pass: sum.pass,
            warn: sum.warn,
            fail: sum.fail,
            stale: sum.stale,
            unknown: sum.skipped,
            pass_percent: percent(sum.pass, reported(&sum)),
        });
    }
    rows
}

/// The digest each configured base image's tag resolves to in the registry's storage now, as
/// the reader read it from the bucket (`None`: no such tag, or it could not be read).
pub type Current = [(String, Option<String>)];

pub fn summary(
    judged: &[Judged],
    now: Timestamp,
    stale_after: Duration,
    current: &Current,
    truncated_at: Option<usize>,
) -> Summary {
    let all: Vec<&Machine> = machines(judged).collect();
    let stale = |m: &Machine| is_stale(m, now, stale_after);
    let stale_count = all.iter().filter(|m| stale(m)).count();
    let checks = check_rows(&all, stale_count, tally(&all, stale));
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
    let mut failures: Vec<Failing> = all
        .iter()
        .filter(|m| !stale(m))
        .flat_map(|m| m.report.checks.iter().filter_map(move |c| failing_of(m, c, now, stale_after)))
        .collect();
    failures.sort_by(|a, b| (a.status != CheckStatus::Fail, &a.name).cmp(&(b.status != CheckStatus::Fail, &b.name)));
    let failures_total = failures.len();
    failures.truncate(MAX_FAILURE_LINES);
    Summary {
        machines: all.len(),
        reported_24h: all.iter().filter(|m| age_of(m.seen, now) <= SignedDuration::from_hours(24)).count(),
        stale: stale_count,
        stale_after: format_age(SignedDuration::try_from(stale_after).unwrap_or(SignedDuration::MAX)),
        unverified_images: unverified_images(&checks),
        checks,
        currency: currency(&all, current),
        versions,
        stale_machines,
        escaped: all.iter().filter(|m| m.escaped).map(|m| m.report.name.clone()).collect(),
        flagged: all
            .iter()
            .flat_map(|m| {
                m.flags.iter().map(|flag| FlaggedLine {
                    name: m.report.name.clone(),
                    machine_id: m.report.machine_id.clone(),
                    principal: m.principal.clone(),
                    flag: flag.clone(),
                    says: flag.to_string(),
                })
            })
            .collect(),
        failures,
        failures_total,
        rejected: judged
            .iter()
            .filter_map(|j| match j {
                Judged::Rejected(r) => Some(r.clone()),
                _ => None,
            })
            .collect(),
        superseded: judged
            .iter()
            .filter_map(|j| match j {
                Judged::Superseded(s) => Some(s.clone()),
                _ => None,
            })
            .collect(),
        truncated_at,
        timeline: timeline(&all, now),
    }
}

/// The machines whose `image-signatures` check warns or fails.
fn unverified_images(checks: &[CheckCounts]) -> usize {
    checks.iter().find(|c| c.check == CheckId::ImageSignatures.name()).map_or(0, |c| c.warn + c.fail)
}

/// For each configured base image: its current digest is what its tag resolves to in the
/// registry's storage (`current`); each machine's engine has it, has another one, or has none.
/// What reports say the registry served them is not used: a report cannot decide what is current.
fn currency(all: &[&Machine], current: &Current) -> Vec<ImageCurrency> {
    let mut rows: Vec<ImageCurrency> = current
        .iter()
        .map(|(image, digest)| ImageCurrency {
            image: image.clone(),
            current: digest.clone(),
            on_current: 0,
            on_older: 0,
            not_pulled: 0,
            behind: Vec::new(),
        })
        .collect();
    let index: HashMap<&str, usize> = current.iter().enumerate().map(|(i, (image, _))| (image.as_str(), i)).collect();
    for m in all {
        for image in &m.report.images {
            let Some(row) = index.get(image.name.as_str()).map(|i| &mut rows[*i]) else { continue };
            match image.local.as_deref() {
                None => row.not_pulled += 1,
                Some(local) if Some(local) == row.current.as_deref() => row.on_current += 1,
                Some(_) => {
                    row.on_older += 1;
                    row.behind.push(m.report.name.clone());
                }
            }
        }
    }
    for row in &mut rows {
        row.behind.sort();
    }
    rows
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

#[cfg(test)]
#[path = "view_tests.rs"]
mod tests;
