//! Judging single reports: broken, hostile, lying about who or when they are.

use super::*;

const M: &str = "p/machines/";

fn report_json(machine: &str, name: &str, ran_at: &str) -> String {
    format!(
        r#"{{"schema":1,"machine_id":"{machine}","name":{},"devbox_version":"0.1.0","os":"linux x86_64","engine":null,
        "ran_at":"{ran_at}","checks":[{{"id":"clock","status":"fail","summary":"off","fix":"devbox clock sync","details":{{"a":"b"}}}}],
        "images":[],"clocks":{{"engine_seconds":null,"s3_seconds":null}},"disk":null}}"#,
        serde_json::to_string(name).expect("json")
    )
}

fn good(name: &str) -> String {
    report_json("m1", name, "2026-11-28T10:00:00Z")
}

fn reason(judged: Judged) -> String {
    match judged {
        Judged::Rejected(r) => r.reason,
        other => panic!("accepted: {other:?}"),
    }
}

fn machine(judged: Judged) -> Machine {
    match judged {
        Judged::Machine(m) => *m,
        other => panic!("not a machine: {other:?}"),
    }
}

fn at(text: &str) -> Timestamp {
    text.parse().expect("time")
}

#[test]
fn a_good_report_is_read_and_kept_small() {
    let m = machine(judge(M, "p/machines/AIDA1/m1.json", None, good("laptop").as_bytes()));
    assert_eq!((m.report.name.as_str(), m.principal.as_str(), m.report.machine_id.as_str()), ("laptop", "AIDA1", "m1"));
    assert!(!m.escaped && m.flags.is_empty());
    assert_eq!(m.report.checks[0].fix.as_deref(), Some("devbox clock sync"));
    assert!(m.report.checks[0].details.is_empty());
    assert_eq!(m.seen, m.report.ran_at);
    // Written after it ran: its own time counts.
    let m = machine(judge(M, "p/machines/AIDA1/m1.json", Some(at("2026-11-29T10:00:00Z")), good("x").as_bytes()));
    assert_eq!(m.seen, at("2026-11-28T10:00:00Z"));
}

#[test]
fn who_and_when_come_from_the_key_and_the_object() {
    // A body naming another machine: the key's is used, and it is flagged.
    let m = machine(judge(M, "p/machines/AIDA1/mine.json", None, good("x").as_bytes()));
    assert_eq!(m.report.machine_id, "mine");
    assert_eq!(m.flags, vec![Flag::OtherMachine { claimed: "m1".into() }]);
    // A year ahead of its object: clamped and flagged; a minute ahead is skew, only clamped.
    let written = at("2026-11-28T10:00:00Z");
    let ahead = report_json("m1", "x", "2027-11-28T10:00:00Z");
    let m = machine(judge(M, "p/machines/AIDA1/m1.json", Some(written), ahead.as_bytes()));
    assert_eq!((m.seen, m.report.ran_at), (written, written));
    assert_eq!(m.flags, vec![Flag::FromTheFuture { claimed: at("2027-11-28T10:00:00Z"), written }]);
    let skewed = report_json("m1", "x", "2026-11-28T10:01:00Z");
    let m = machine(judge(M, "p/machines/AIDA1/m1.json", Some(written), skewed.as_bytes()));
    assert_eq!((m.seen, m.flags.len()), (written, 0));
    // Keys that name no writer are not counted.
    assert!(reason(judge(M, "p/machines/m1.json", None, good("x").as_bytes())).contains("older devbox's layout"));
    assert!(reason(judge(M, "p/machines/a/b/c.json", None, good("x").as_bytes())).starts_with("is not at p/machines/"));
}

#[test]
fn one_machine_under_two_keys_is_counted_once() {
    let older = judge(M, "p/machines/AIDA1/m1.json", None, good("a").as_bytes());
    let newer = judge(M, "p/machines/AIDA2/m1.json", None, report_json("m1", "b", "2026-11-28T11:00:00Z").as_bytes());
    let other = judge(M, "p/machines/AIDA1/m2.json", None, report_json("m2", "c", "2026-11-28T09:00:00Z").as_bytes());
    let judged = dedupe(vec![older, newer, other]);
    let kinds: Vec<&str> = judged
        .iter()
        .map(|j| match j {
            Judged::Machine(m) => m.report.name.as_str(),
            Judged::Superseded(_) => "superseded",
            Judged::Rejected(_) => "rejected",
        })
        .collect();
    assert_eq!(kinds, ["superseded", "b", "c"]);
    let Judged::Superseded(s) = &judged[0] else { panic!() };
    assert_eq!((s.key.as_str(), s.by.as_str()), ("p/machines/AIDA1/m1.json", "p/machines/AIDA2/m1.json"));
    let Judged::Machine(b) = &judged[1] else { panic!() };
    assert_eq!(b.flags, vec![Flag::AlsoUnder { keys: vec!["p/machines/AIDA1/m1.json".into()] }]);
}

#[test]
fn broken_and_hostile_reports_are_rejected_or_escaped() {
    let k = "p/machines/AIDA1/m1.json";
    assert!(reason(judge(M, k, None, b"<html>not json")).starts_with("is not JSON"));
    let big = vec![b' '; MAX_REPORT_BYTES as usize + 1];
    assert_eq!(reason(judge(M, k, None, &big)), "is 65537 bytes, over the 64 KB limit");
    let v2 = good("x").replacen("\"schema\":1", "\"schema\":2", 1);
    assert_eq!(reason(judge(M, k, None, v2.as_bytes())), "has schema version 2; this devbox reads version 1");
    assert!(reason(judge(M, k, None, br#"{"schema":1,"name":"x"}"#)).starts_with("is not a devbox report"));
    assert!(reason(judge(M, k, None, b"{}")).contains("no schema version"));

    let m = machine(judge(M, k, None, good("evil\u{1b}[2J<script>alert(1)</script>").as_bytes()));
    assert!(m.escaped);
    assert_eq!(m.report.name, "evil\\u{1b}[2J<script>alert(1)</script>");
    assert!(machine(judge(M, k, None, good("<b>bold</b>").as_bytes())).escaped, "markup is flagged");
    assert!(!machine(judge(M, k, None, good("a < b").as_bytes())).escaped, "a plain '<' is not markup");
}

#[test]
fn bidi_and_zero_width_characters_are_escaped() {
    assert_eq!(clean("abc\u{202e}fdp.exe"), ("abc\\u{202e}fdp.exe".to_string(), true));
    assert_eq!(clean("zw\u{200d}j\u{200b}\u{feff}"), ("zw\\u{200d}j\\u{200b}\\u{feff}".to_string(), true));
    assert_eq!(clean("\u{2067}iso\u{2069}"), ("\\u{2067}iso\\u{2069}".to_string(), true));
    assert_eq!(clean("naïve café ✓"), ("naïve café ✓".to_string(), false));
    let m = machine(judge(M, "p/machines/AIDA1/m1.json", None, good("lap\u{202e}top").as_bytes()));
    assert!(m.escaped);
    assert_eq!(m.report.name, "lap\\u{202e}top");
    // A key with control characters is shown escaped and kept exact for prune.
    let key = "p/machines/AIDA1/\u{1b}[31mx.json";
    let r = match judge(M, key, None, good("x").as_bytes()) {
        Judged::Rejected(r) => r,
        other => panic!("{other:?}"),
    };
    assert_eq!((r.key.as_str(), r.exact_key.as_str()), ("p/machines/AIDA1/\\u{1b}[31mx.json", key));
}
