//! A machine's report, from a doctor run and what was measured beside it. Pure.
//!
//! A report carries no secret by construction: doctor's findings hold none (their details are
//! endpoints, versions and figures), and nothing else is taken from the environment, the config
//! or the AWS profile. As a second guard, every string is scrubbed before it leaves: the values
//! of secret-looking environment variables and the resolved AWS secret key and session token are
//! replaced, and so is the user part of any URL (`https://user:password@host`).

use super::{
    CheckResult, CheckStatus, Clocks, Disk, EngineSummary, ImageDigests, MAX_REPORT_BYTES, MachineReport, SCHEMA,
};
use crate::doctor::{Report, Status};

/// What a machine measured beside its doctor run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    pub engine: Option<EngineSummary>,
    pub images: Vec<ImageDigests>,
    pub clocks: Clocks,
    pub disk: Option<Disk>,
}

/// Who the machine is.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub machine_id: String,
    pub name: String,
    pub devbox_version: String,
    pub os: String,
}

pub const REDACTED: &str = "<redacted>";

/// Environment variables whose values are treated as secrets when they appear in a report.
const SECRET_NAMES: [&str; 7] = ["SECRET", "TOKEN", "PASSWORD", "PASSWD", "CREDENTIAL", "PRIVATE", "API_KEY"];

/// A secret shorter than this is not searched for: it would match ordinary words.
const MIN_SECRET_LEN: usize = 8;

pub fn build(identity: Identity, report: &Report, facts: Facts, ran_at: jiff::Timestamp) -> MachineReport {
    let checks = report
        .checks
        .iter()
        .map(|f| CheckResult {
            id: f.id.name().to_string(),
            status: match f.status {
                Status::Ok => CheckStatus::Ok,
                Status::Warn => CheckStatus::Warn,
                Status::Fail => CheckStatus::Fail,
                Status::Skipped => CheckStatus::Skipped,
            },
            summary: f.summary.clone(),
            hint: f.hint.clone(),
            fix: f.fix.clone(),
            details: f.details.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
        })
        .collect();
    MachineReport {
        schema: SCHEMA,
        machine_id: identity.machine_id,
        name: identity.name,
        devbox_version: identity.devbox_version,
        os: identity.os,
        engine: facts.engine,
        ran_at,
        checks,
        images: facts.images,
        clocks: facts.clocks,
        disk: facts.disk,
    }
}

/// The secrets to look for: the values of secret-looking variables, and `more` (the resolved AWS
/// secret parts).
pub fn secrets<'a>(vars: impl Iterator<Item = (&'a str, &'a str)>, more: &[&'a str]) -> Vec<&'a str> {
    let named = vars.filter(|(name, _)| {
        let upper = name.to_ascii_uppercase();
        SECRET_NAMES.iter().any(|s| upper.contains(s))
    });
    let mut all: Vec<&str> =
        named.map(|(_, v)| v).chain(more.iter().copied()).filter(|s| s.len() >= MIN_SECRET_LEN).collect();
    // Longest first, so a secret that contains another is replaced whole.
    all.sort_by_key(|s| std::cmp::Reverse(s.len()));
    all.dedup();
    all
}

/// `text` with each secret, and each URL's user part, replaced by `<redacted>`.
pub fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_string();
    for secret in secrets {
        if out.contains(secret) {
            out = out.replace(secret, REDACTED);
        }
    }
    redact_userinfo(&out)
}

/// `scheme://user:password@host/…` → `scheme://<redacted>@host/…`.
fn redact_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        let authority_end =
            tail.find(|c: char| c == '/' || c == '?' || c == '#' || c.is_whitespace()).unwrap_or(tail.len());
        match tail[..authority_end].rfind('@') {
            Some(user_end) => {
                out.push_str(REDACTED);
                rest = &tail[user_end..];
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    out
}

/// The report as the bytes to upload: every string scrubbed, and within `MAX_REPORT_BYTES`. A
/// report over the limit loses its checks' details first, then its hints, then is cut to its
/// checks' statuses; what was dropped is said in the report.
pub fn encode(report: &MachineReport, secrets: &[&str]) -> Result<Vec<u8>, String> {
    let mut report = report.clone();
    scrub_report(&mut report, secrets);
    for step in 0..4 {
        let bytes = serde_json::to_vec_pretty(&report).map_err(|e| format!("cannot encode the report: {e}"))?;
        if bytes.len() as u64 <= MAX_REPORT_BYTES {
            return Ok(bytes);
        }
        for check in &mut report.checks {
            match step {
                0 => check.details.clear(),
                1 => check.hint = None,
                _ => {
                    check.summary = check.summary.chars().take(200).collect();
                    check.fix = check.fix.take().map(|f| f.chars().take(200).collect());
                }
            }
        }
        if step == 2 {
            report.images.truncate(50);
        }
    }
    Err(format!("the report is over {} KB even cut down", MAX_REPORT_BYTES / 1024))
}

fn scrub_report(report: &mut MachineReport, secrets: &[&str]) {
    let s = |text: &mut String| *text = scrub(text, secrets);
    s(&mut report.name);
    s(&mut report.os);
    if let Some(engine) = &mut report.engine {
        s(&mut engine.version);
        s(&mut engine.os);
        s(&mut engine.runtime);
    }
    for check in &mut report.checks {
        s(&mut check.summary);
        check.hint.iter_mut().for_each(s);
        check.fix.iter_mut().for_each(s);
        check.details.values_mut().for_each(s);
    }
    for image in &mut report.images {
        s(&mut image.name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::{CheckId, Finding};

    fn identity() -> Identity {
        Identity {
            machine_id: "0123456789abcdef0123456789abcdef".into(),
            name: "laptop-1".into(),
            devbox_version: "0.1.0".into(),
            os: "linux x86_64".into(),
        }
    }

    #[test]
    fn a_report_carries_each_check_and_the_measured_facts() {
        let doctor = Report::new(vec![
            Finding::ok(CheckId::Config, "loaded").detail("path", "/home/a/.config/devbox/devbox.toml"),
            Finding::fail(CheckId::Clock, "engine -20m").fix("devbox clock sync"),
        ]);
        let facts = Facts {
            images: vec![ImageDigests { name: "base/go:1".into(), local: None, registry: Some("sha256:b".into()) }],
            clocks: Clocks { engine_seconds: Some(-1200.0), s3_seconds: Some(0.2) },
            ..Facts::default()
        };
        let at = jiff::Timestamp::from_second(1_800_000_000).expect("time");
        let report = build(identity(), &doctor, facts, at);
        assert_eq!(report.schema, SCHEMA);
        assert_eq!(report.checks.len(), 2);
        assert_eq!(report.checks[1].id, "clock");
        assert_eq!(report.checks[1].status, CheckStatus::Fail);
        assert_eq!(report.checks[1].fix.as_deref(), Some("devbox clock sync"));
        assert_eq!(report.checks[0].details["path"], "/home/a/.config/devbox/devbox.toml");
        let bytes = encode(&report, &[]).expect("encodes");
        let back: MachineReport = serde_json::from_slice(&bytes).expect("reads back");
        assert_eq!(back, report);
    }

    #[test]
    fn secrets_and_url_passwords_never_leave() {
        let vars = [("ACME_DEPLOY_TOKEN", "tok-1234567890"), ("HOME", "/home/someone"), ("GH_TOKEN", "short")];
        let found = secrets(vars.into_iter(), &["aws-secret-key-abcdef"]);
        assert_eq!(found, vec!["aws-secret-key-abcdef", "tok-1234567890"]);
        assert_eq!(
            scrub("feed https://deploy:hunter22@dl.acme.dev/devbox/ refused tok-1234567890", &found),
            "feed https://<redacted>@dl.acme.dev/devbox/ refused <redacted>"
        );
        assert_eq!(scrub("http://127.0.0.1:9/ and a@b", &found), "http://127.0.0.1:9/ and a@b");
        let doctor = Report::new(vec![
            Finding::warn(CheckId::Version, "https://u:p@x/ says no").detail("key", "aws-secret-key-abcdef"),
        ]);
        let bytes =
            encode(&build(identity(), &doctor, Facts::default(), jiff::Timestamp::UNIX_EPOCH), &found).expect("ok");
        let text = String::from_utf8(bytes).expect("utf-8");
        assert!(!text.contains("aws-secret-key-abcdef") && !text.contains("u:p@"), "{text}");
    }

    #[test]
    fn a_report_over_the_limit_is_cut_down_to_fit() {
        let huge = "x".repeat(20_000);
        let doctor = Report::new(
            CheckId::ALL
                .iter()
                .map(|id| Finding::warn(*id, huge.clone()).detail("big", huge.clone()).hint(huge.clone()))
                .collect(),
        );
        let bytes =
            encode(&build(identity(), &doctor, Facts::default(), jiff::Timestamp::UNIX_EPOCH), &[]).expect("fits");
        assert!(bytes.len() as u64 <= MAX_REPORT_BYTES, "{} bytes", bytes.len());
        let back: MachineReport = serde_json::from_slice(&bytes).expect("reads back");
        assert_eq!(back.checks.len(), CheckId::ALL.len());
        assert_eq!(back.checks[0].status, CheckStatus::Warn);
    }
}
