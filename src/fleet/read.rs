//! Reading every report under the prefix: one listing, then the objects fetched concurrently (at
//! most `CONCURRENCY` at a time), each judged as it arrives and kept in a compact form, so memory
//! grows with the number of machines, not with the size of their reports.
//!
//! A report may come from anyone who can write to the prefix, so each is judged before use: one
//! over the size limit, not JSON, of another schema version, or not shaped like a report is
//! rejected with the reason; control characters in its strings are escaped, and one that holds
//! markup is flagged (every output escapes it). Neither stops the rest.

use futures_util::StreamExt;
use serde_json::Value;

use super::{CheckStatus, MAX_REPORT_BYTES, MachineReport, SCHEMA, machines_prefix};
use std::sync::Arc;

use crate::aws::{ActionError, Aws, ObjectInfo};

/// How many reports are fetched at once.
pub const CONCURRENCY: usize = 64;

/// A report that was read and may be shown.
#[derive(Debug, Clone, PartialEq)]
pub struct Machine {
    /// Its object's key.
    pub key: String,
    pub report: MachineReport,
    /// When it was last heard from: when it ran, or when its object was written if that is
    /// earlier (a machine whose clock runs ahead must not look fresh).
    pub seen: jiff::Timestamp,
    /// Some of its strings held control characters (now escaped) or markup.
    pub escaped: bool,
}

/// An object under the prefix that is not a usable report, and why.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Rejected {
    pub key: String,
    pub reason: String,
    #[serde(skip)]
    pub last_modified: Option<jiff::Timestamp>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Judged {
    Machine(Box<Machine>),
    Rejected(Rejected),
}

/// Lists the reports and fetches them all. A listing or fetch that S3 refuses (a policy without
/// s3:ListBucket or s3:GetObject) is the error; anything wrong with one report is that report's
/// `Rejected`. Each fetch runs as a task of its own, so fetching and judging spread over the
/// runtime's threads rather than queueing on the one that polls this function.
pub async fn fetch_all(aws: &Arc<Aws>, prefix: &str) -> Result<Vec<Judged>, ActionError> {
    let objects = aws.list_objects(&machines_prefix(prefix)).await?;
    let fetched: Vec<Result<Judged, ActionError>> = futures_util::stream::iter(objects)
        .map(|object| {
            let (key, last_modified) = (object.key.clone(), object.last_modified);
            let task = tokio::spawn(fetch_one(Arc::clone(aws), object));
            async move {
                task.await.unwrap_or_else(|crashed| {
                    Ok(Judged::Rejected(Rejected {
                        key,
                        reason: format!("could not be read: {crashed}"),
                        last_modified,
                    }))
                })
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    fetched.into_iter().collect()
}

async fn fetch_one(aws: Arc<Aws>, object: ObjectInfo) -> Result<Judged, ActionError> {
    let rejected = |reason: String| {
        Judged::Rejected(Rejected { key: object.key.clone(), reason, last_modified: object.last_modified })
    };
    if object.size > MAX_REPORT_BYTES {
        return Ok(rejected(over_limit(object.size)));
    }
    match aws.get_object(&object.key, MAX_REPORT_BYTES).await {
        Ok(body) => Ok(judge(&object.key, object.last_modified, &body)),
        Err(err @ ActionError::Denied { .. }) => Err(err),
        Err(ActionError::TooLarge { size, .. }) => Ok(rejected(over_limit(size))),
        Err(other) => Ok(rejected(format!("could not be read: {other}"))),
    }
}

fn over_limit(size: u64) -> String {
    format!("is {size} bytes, over the {} KB limit", MAX_REPORT_BYTES / 1024)
}

/// Judges one object's bytes. Pure.
pub fn judge(key: &str, last_modified: Option<jiff::Timestamp>, body: &[u8]) -> Judged {
    let rejected = |reason: String| Judged::Rejected(Rejected { key: clean(key).0, reason, last_modified });
    if body.len() as u64 > MAX_REPORT_BYTES {
        return rejected(over_limit(body.len() as u64));
    }
    let mut value: Value = match serde_json::from_slice(body) {
        Ok(value) => value,
        Err(err) => return rejected(format!("is not JSON ({err})")),
    };
    match value.get("schema") {
        Some(Value::Number(n)) if n.as_u64() == Some(SCHEMA) => {}
        Some(other) => {
            let (shown, _) = clean(&other.to_string().chars().take(40).collect::<String>());
            return rejected(format!("has schema version {shown}; this devbox reads version {SCHEMA}"));
        }
        None => return rejected("has no schema version: not a devbox report".into()),
    }
    let escaped = clean_strings(&mut value);
    let mut report: MachineReport = match serde_json::from_value(value) {
        Ok(report) => report,
        Err(err) => return rejected(format!("is not a devbox report ({err})")),
    };
    // Kept small: what the views show. A passing check's hint and details are not among it.
    for check in &mut report.checks {
        check.details.clear();
        if check.status == CheckStatus::Ok {
            check.hint = None;
            check.fix = None;
        }
    }
    let seen = last_modified.map_or(report.ran_at, |written| written.min(report.ran_at));
    Judged::Machine(Box::new(Machine { key: clean(key).0, report, seen, escaped }))
}

/// Escapes control characters in every string of `value`, and says whether any string held one
/// or held markup.
fn clean_strings(value: &mut Value) -> bool {
    match value {
        Value::String(text) => {
            let (cleaned, changed) = clean(text);
            *text = cleaned;
            changed || has_markup(text)
        }
        Value::Array(items) => items.iter_mut().fold(false, |any, item| clean_strings(item) | any),
        Value::Object(map) => map.values_mut().fold(false, |any, item| clean_strings(item) | any),
        _ => false,
    }
}

/// `text` with each control character written out as `\u{…}`, and whether there was one.
pub fn clean(text: &str) -> (String, bool) {
    if !text.chars().any(char::is_control) {
        return (text.to_string(), false);
    }
    let cleaned =
        text.chars().map(|c| if c.is_control() { format!("\\u{{{:x}}}", c as u32) } else { c.to_string() }).collect();
    (cleaned, true)
}

/// Whether `text` holds what a browser would take for a tag, a comment or an entity.
fn has_markup(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.windows(2).any(|w| w[0] == b'<' && (w[1].is_ascii_alphabetic() || matches!(w[1], b'/' | b'!' | b'?')))
        || text.contains("&#")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report_json(name: &str) -> String {
        format!(
            r#"{{"schema":1,"machine_id":"m1","name":{},"devbox_version":"0.1.0","os":"linux x86_64","engine":null,
            "ran_at":"2026-11-28T10:00:00Z","checks":[{{"id":"clock","status":"fail","summary":"off","fix":"devbox clock sync","details":{{"a":"b"}}}}],
            "images":[],"clocks":{{"engine_seconds":null,"s3_seconds":null}},"disk":null}}"#,
            serde_json::to_string(name).expect("json")
        )
    }

    fn reason(judged: Judged) -> String {
        match judged {
            Judged::Rejected(r) => r.reason,
            Judged::Machine(m) => panic!("accepted: {m:?}"),
        }
    }

    #[test]
    fn a_good_report_is_read_and_kept_small() {
        let Judged::Machine(m) = judge("p/machines/m1.json", None, report_json("laptop").as_bytes()) else {
            panic!("rejected")
        };
        assert_eq!(m.report.name, "laptop");
        assert!(!m.escaped);
        assert_eq!(m.report.checks[0].fix.as_deref(), Some("devbox clock sync"));
        assert!(m.report.checks[0].details.is_empty());
        assert_eq!(m.seen, m.report.ran_at);
        // A clock ahead of S3's: the object's own time counts.
        let written: jiff::Timestamp = "2026-11-27T10:00:00Z".parse().expect("time");
        let Judged::Machine(m) = judge("k", Some(written), report_json("x").as_bytes()) else { panic!() };
        assert_eq!(m.seen, written);
    }

    #[test]
    fn broken_and_hostile_reports_are_rejected_or_escaped() {
        assert!(reason(judge("k", None, b"<html>not json")).starts_with("is not JSON"));
        let big = vec![b' '; MAX_REPORT_BYTES as usize + 1];
        assert_eq!(reason(judge("k", None, &big)), "is 65537 bytes, over the 64 KB limit");
        let v2 = report_json("x").replacen("\"schema\":1", "\"schema\":2", 1);
        assert_eq!(reason(judge("k", None, v2.as_bytes())), "has schema version 2; this devbox reads version 1");
        assert!(reason(judge("k", None, br#"{"schema":1,"name":"x"}"#)).starts_with("is not a devbox report"));
        assert!(reason(judge("k", None, b"{}")).contains("no schema version"));

        let Judged::Machine(m) = judge("k", None, report_json("evil\u{1b}[2J<script>alert(1)</script>").as_bytes())
        else {
            panic!("rejected")
        };
        assert!(m.escaped);
        assert_eq!(m.report.name, "evil\\u{1b}[2J<script>alert(1)</script>");
        let Judged::Machine(m) = judge("k", None, report_json("<b>bold</b>").as_bytes()) else { panic!() };
        assert!(m.escaped, "markup is flagged");
        let Judged::Machine(m) = judge("k", None, report_json("a < b").as_bytes()) else { panic!() };
        assert!(!m.escaped, "a plain '<' is not markup");
    }
}
