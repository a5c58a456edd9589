//! The fleet view's decisions, on a small fleet.

use super::*;
use crate::fleet::machines::{SortBy, failing, machine_lines, prunable};
use crate::fleet::{CheckResult, Clocks, EngineSummary, ImageDigests, MachineReport, SCHEMA};

fn now() -> Timestamp {
    "2026-11-28T12:00:00Z".parse().expect("time")
}

fn machine(name: &str, hours_ago: i64, checks: &[(&str, CheckStatus)], image: Option<(&str, &str)>) -> Judged {
    let ran_at = now() - SignedDuration::from_hours(hours_ago);
    Judged::Machine(Box::new(Machine {
        key: format!("devbox/fleet/machines/AIDA{name}/id-{name}.json"),
        shown_key: format!("devbox/fleet/machines/AIDA{name}/id-{name}.json"),
        principal: format!("AIDA{name}"),
        seen: ran_at,
        escaped: false,
        flags: Vec::new(),
        report: MachineReport {
            schema: SCHEMA,
            machine_id: format!("id-{name}"),
            name: name.into(),
            devbox_version: if name == "old" { "0.9.0".into() } else { "0.10.0".into() },
            os: "linux x86_64".into(),
            engine: Some(EngineSummary {
                version: "27".into(),
                os: "Debian".into(),
                runtime: "colima".into(),
                vm: true,
            }),
            ran_at,
            checks: checks
                .iter()
                .map(|(id, status)| CheckResult {
                    id: id.to_string(),
                    status: *status,
                    summary: format!("{id} of {name}"),
                    hint: None,
                    fix: (*status == CheckStatus::Fail).then(|| format!("devbox fix-{id}")),
                    details: BTreeMap::new(),
                })
                .collect(),
            images: image
                .map(|(local, registry)| ImageDigests {
                    name: "base/go:1".into(),
                    local: (!local.is_empty()).then(|| local.into()),
                    registry: (!registry.is_empty()).then(|| registry.into()),
                })
                .into_iter()
                .collect(),
            clocks: Clocks::default(),
            disk: None,
        },
    }))
}

fn fleet() -> Vec<Judged> {
    use CheckStatus::*;
    vec![
        machine("alpha", 1, &[("clock", Ok), ("engine", Ok)], Some(("sha256:new", "sha256:new"))),
        machine("bravo", 2, &[("clock", Fail), ("engine", Ok)], Some(("sha256:old", "sha256:new"))),
        machine("charlie", 30, &[("clock", Warn), ("engine", Skipped)], Some(("", "sha256:older"))),
        machine("old", 24 * 10, &[("clock", Fail), ("engine", Ok)], Some(("sha256:ancient", ""))),
        Judged::Rejected(Rejected {
            key: "devbox/fleet/machines/p/bad.json".into(),
            exact_key: "devbox/fleet/machines/p/bad.json".into(),
            reason: "is not JSON".into(),
            last_modified: None,
        }),
    ]
}

const THREE_DAYS: Duration = Duration::from_secs(3 * 86_400);

/// What the registry's storage says `base/go:1` is now.
fn current() -> Vec<(String, Option<String>)> {
    vec![("base/go:1".into(), Some("sha256:new".into()))]
}

fn summary(judged: &[Judged], now: Timestamp, stale_after: Duration) -> Summary {
    super::summary(judged, now, stale_after, &current(), None)
}

#[test]
fn the_summary_counts_machines_checks_versions_and_rejects() {
    let s = summary(&fleet(), now(), THREE_DAYS);
    assert_eq!((s.machines, s.reported_24h, s.stale), (4, 2, 1));
    let clock = s.checks.iter().find(|c| c.check == "clock").expect("clock");
    assert_eq!((clock.pass, clock.warn, clock.fail, clock.stale, clock.unknown), (1, 1, 1, 1, 0));
    assert_eq!(clock.pass_percent, 25.0);
    let engine = s.checks.iter().find(|c| c.check == "engine").expect("engine");
    assert_eq!((engine.pass, engine.unknown, engine.stale), (2, 1, 1));
    let config = s.checks.iter().find(|c| c.check == "config").expect("every known check is listed");
    assert_eq!(config.unknown, 3);
    assert_eq!(
        s.versions,
        vec![
            VersionCount { version: "0.10.0".into(), machines: 3 },
            VersionCount { version: "0.9.0".into(), machines: 1 }
        ]
    );
    assert_eq!(s.stale_machines.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(), vec!["old"]);
    assert_eq!(s.rejected.len(), 1);
    assert_eq!(s.timeline.len(), TIMELINE_DAYS as usize);
    assert_eq!(s.timeline.last().map(|d| d.reports), Some(2), "{:?}", s.timeline);
}

#[test]
fn currency_follows_the_registry_not_the_reports() {
    // A report that claims the registry serves another digest, from the future, changes nothing.
    let mut judged = fleet();
    judged.push(machine("liar", -24 * 365, &[], Some(("sha256:forged", "sha256:forged"))));
    let s = summary(&judged, now(), THREE_DAYS);
    assert_eq!(
        s.currency,
        vec![ImageCurrency {
            image: "base/go:1".into(),
            current: Some("sha256:new".into()),
            on_current: 1,
            on_older: 3,
            not_pulled: 1,
            behind: vec!["bravo".into(), "liar".into(), "old".into()],
        }]
    );
}

#[test]
fn failing_lists_failures_first_with_their_fixes() {
    let found = failing(&fleet(), "clock", now(), THREE_DAYS);
    let names: Vec<(&str, CheckStatus)> = found.iter().map(|f| (f.name.as_str(), f.status)).collect();
    assert_eq!(names, vec![("bravo", CheckStatus::Fail), ("old", CheckStatus::Fail), ("charlie", CheckStatus::Warn)]);
    assert_eq!(found[0].reported_fix.as_deref(), Some("devbox fix-clock"), "the machine's words, as such");
    assert_eq!(found[0].fix.as_deref(), Some("devbox doctor --check clock --fix"), "devbox's own");
    assert!(found[1].stale);
    assert!(failing(&fleet(), "nonesuch", now(), THREE_DAYS).is_empty());
}

#[test]
fn machines_sort_as_asked() {
    let names = |sort| -> Vec<String> {
        machine_lines(&fleet(), now(), THREE_DAYS, sort).into_iter().map(|l| l.name).collect()
    };
    assert_eq!(names(SortBy::Name), ["alpha", "bravo", "charlie", "old"]);
    assert_eq!(names(SortBy::Age), ["old", "charlie", "bravo", "alpha"]);
    assert_eq!(names(SortBy::Version)[0], "old");
    assert_eq!(names(SortBy::Failing)[..2], ["bravo", "old"]);
    let line = &machine_lines(&fleet(), now(), THREE_DAYS, SortBy::Name)[1];
    assert_eq!((line.age.as_str(), line.failing.clone(), line.stale), ("2h 0m", vec!["clock".to_string()], false));
}

#[test]
fn prune_takes_only_what_is_older_than_asked() {
    let old = prunable(&fleet(), now(), Duration::from_secs(90 * 86_400));
    assert!(old.is_empty());
    let old = prunable(&fleet(), now(), Duration::from_secs(86_400));
    assert_eq!(old.iter().map(|p| p.name.clone().unwrap_or_default()).collect::<Vec<_>>(), ["old", "charlie"]);
    assert_eq!(old[0].age, "10d");
}

#[test]
fn ages_read_like_people_say_them() {
    assert_eq!(format_age(SignedDuration::from_secs(40)), "40s");
    assert_eq!(format_age(SignedDuration::from_secs(7 * 60 + 5)), "7m");
    assert_eq!(format_age(SignedDuration::from_secs(5 * 3600 + 12 * 60)), "5h 12m");
    assert_eq!(format_age(SignedDuration::from_secs(3 * 86_400 + 4 * 3600)), "3d 4h");
    assert_eq!(format_age(SignedDuration::from_secs(3 * 86_400 + 59 * 60)), "3d");
}

#[test]
fn machines_with_an_unverified_base_image_are_counted_unless_stale() {
    use CheckStatus::*;
    let fleet = vec![
        machine("alpha", 1, &[("image-signatures", Ok)], None),
        machine("bravo", 2, &[("image-signatures", Fail)], None),
        machine("charlie", 3, &[("image-signatures", Warn)], None),
        machine("old", 24 * 10, &[("image-signatures", Fail)], None),
        machine("delta", 1, &[("clock", Ok)], None),
    ];
    assert_eq!(summary(&fleet, now(), THREE_DAYS).unverified_images, 2);
    assert_eq!(summary(&fleet[..1], now(), THREE_DAYS).unverified_images, 0);
}

#[test]
fn unknown_check_ids_beyond_a_few_are_summed_as_other() {
    use CheckStatus::*;
    let ids: Vec<String> = (0..1500).map(|i| format!("invented-{i:04}")).collect();
    let mut judged = fleet();
    for n in 0..3 {
        let checks: Vec<(&str, CheckStatus)> =
            ids.iter().enumerate().map(|(i, id)| (id.as_str(), if i % 2 == 0 { Ok } else { Fail })).collect();
        judged.push(machine(&format!("many{n}"), 1, &checks, None));
    }
    let s = summary(&judged, now(), THREE_DAYS);
    assert_eq!(s.checks.len(), CheckId::ALL.len() + OWN_ROWS_FOR_OTHER_IDS + 1);
    let other = s.checks.last().expect("other");
    assert_eq!((other.check.as_str(), other.ids), ("other", 1500 - OWN_ROWS_FOR_OTHER_IDS));
    assert_eq!(other.pass + other.fail, 3 * (1500 - OWN_ROWS_FOR_OTHER_IDS));
    let line = machine_lines(&judged, now(), THREE_DAYS, SortBy::Failing).into_iter().next().expect("a line");
    assert_eq!(line.failing.len(), 11, "ten ids and a count");
    assert_eq!(line.failing.last().map(String::as_str), Some("and 740 more"));
}
