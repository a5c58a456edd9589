//! Reading every report under the prefix: one listing (at most a cap of objects), and beside it the
//! objects fetched concurrently (at most `CONCURRENCY` at a time), each judged as it arrives and kept in a
//! compact form, so memory grows with the number of machines, not with the size of their reports.
//!
//! A report may come from anyone who can write to the prefix, so each is judged before use. Who
//! wrote it and for which machine come from its key, which IAM ties to the writer
//! (`machines/${aws:userid}/…`), never from its body: a body that names another machine is
//! flagged, and a `ran_at` later than the object's own date is clamped to it and flagged. One
//! machine under several keys is counted once (the newest). A report over the size limit, not
//! JSON, of another schema version, not shaped like a report, or that cannot be read at all (403,
//! gone since the listing) is rejected with the reason; none of them stops the rest. Control,
//! bidi and zero-width characters in its strings are escaped, and one that holds markup is
//! flagged (every output escapes it).

use std::collections::HashMap;

use futures_util::StreamExt;
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use serde_json::Value;

use super::{CheckStatus, KeyProblem, MAX_REPORT_BYTES, MachineReport, SCHEMA, machines_prefix, parse_key};
use std::sync::Arc;

use crate::aws::{ActionError, Aws, ObjectInfo};

/// How many reports are fetched at once.
pub const CONCURRENCY: usize = 64;

/// How many objects one reading lists, unless `--max-reports` says otherwise.
pub const DEFAULT_MAX_REPORTS: usize = 100_000;

/// How much later than its object's date a report may say it ran (clock skew, a slow upload)
/// before it counts as a report from the future.
const FUTURE_SLACK: SignedDuration = SignedDuration::from_mins(5);

/// A report that was read and may be shown. Every string in it is escaped for a terminal.
#[derive(Debug, Clone, PartialEq)]
pub struct Machine {
    /// Its object's exact key, for `prune`.
    pub key: String,
    /// The key as shown.
    pub shown_key: String,
    /// Who wrote it: its key's folder.
    pub principal: String,
    /// The report, with `machine_id` taken from the key and `ran_at` clamped to `last_modified`.
    pub report: MachineReport,
    /// When it was last heard from: its clamped `ran_at`.
    pub seen: Timestamp,
    /// Some of its strings held control, bidi or zero-width characters (now escaped) or markup.
    pub escaped: bool,
    /// What the reader found wrong with it, beside that.
    pub flags: Vec<Flag>,
}

/// Something a report claimed that its key or its object's date contradicts.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "flag", rename_all = "snake_case")]
pub enum Flag {
    /// Its body names another machine than its key; the key's is used.
    OtherMachine { claimed: String },
    /// It says it ran after its object was written; the object's date is used.
    FromTheFuture { claimed: Timestamp, written: Timestamp },
    /// The same machine was also reported under these keys; this one, the newest, is counted.
    AlsoUnder { keys: Vec<String> },
}

impl std::fmt::Display for Flag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Flag::OtherMachine { claimed } => {
                write!(f, "its body names machine {claimed:?}, not its key's; the key's is shown")
            }
            Flag::FromTheFuture { claimed, written } => write!(
                f,
                "it says it ran at {claimed}, after its object was written ({written}); the object's date is used"
            ),
            Flag::AlsoUnder { keys } => {
                write!(f, "the same machine was also reported as {}; only this newest one is counted", keys.join(", "))
            }
        }
    }
}

/// An object under the prefix that is not a usable report, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rejected {
    /// The key as shown.
    pub key: String,
    pub reason: String,
    #[serde(skip)]
    pub exact_key: String,
    #[serde(skip)]
    pub last_modified: Option<Timestamp>,
}

/// A report of a machine that a newer report, under another key, stands for.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Superseded {
    pub key: String,
    /// The key of the report that is counted.
    pub by: String,
    #[serde(skip)]
    pub exact_key: String,
    #[serde(skip)]
    pub last_modified: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Judged {
    Machine(Box<Machine>),
    Rejected(Rejected),
    Superseded(Superseded),
}

/// Everything one reading found.
#[derive(Debug, Clone, PartialEq)]
pub struct Fetched {
    pub judged: Vec<Judged>,
    /// The listing stopped at this many objects: there are more.
    pub truncated_at: Option<usize>,
}

/// Lists the reports (at most `cap`) and fetches them all. A listing that S3 refuses (a policy
/// without s3:ListBucket) is the error; anything wrong with one report, a refused fetch included,
/// is that report's `Rejected`. The listing runs beside the fetches: the first page's reports are
/// fetched while S3 lists the next. Each fetch runs as a task of its own, so fetching and judging
/// spread over the runtime's threads rather than queueing on the one that polls this function.
pub async fn fetch_all(aws: &Arc<Aws>, prefix: &str, cap: usize) -> Result<Fetched, ActionError> {
    let machines = Arc::new(machines_prefix(prefix));
    let (listed, found) = tokio::sync::mpsc::unbounded_channel::<ObjectInfo>();
    let lister = {
        let (aws, machines) = (Arc::clone(aws), Arc::clone(&machines));
        tokio::spawn(async move {
            aws.list_objects(&machines, cap, |page| page.into_iter().for_each(|object| _ = listed.send(object))).await
        })
    };
    let found = futures_util::stream::unfold(found, |mut found| async move { Some((found.recv().await?, found)) });
    let judged: Vec<Judged> = found
        .map(|object| {
            let (key, last_modified) = (object.key.clone(), object.last_modified);
            let task = tokio::spawn(fetch_one(Arc::clone(aws), Arc::clone(&machines), object));
            async move {
                task.await
                    .unwrap_or_else(|crashed| rejected(&key, last_modified, format!("could not be read: {crashed}")))
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let truncated = match lister.await {
        Ok(listing) => listing?,
        Err(crashed) => {
            return Err(ActionError::Failed {
                action: "s3:ListBucket",
                resource: machines.to_string(),
                reason: format!("the listing stopped: {crashed}"),
            });
        }
    };
    Ok(Fetched { judged: dedupe(judged), truncated_at: truncated.then_some(cap) })
}

fn rejected(key: &str, last_modified: Option<Timestamp>, reason: String) -> Judged {
    Judged::Rejected(Rejected { key: clean(key).0, reason, exact_key: key.to_string(), last_modified })
}

async fn fetch_one(aws: Arc<Aws>, machines: Arc<String>, object: ObjectInfo) -> Judged {
    let unread = |reason: String| rejected(&object.key, object.last_modified, reason);
    if object.size > MAX_REPORT_BYTES {
        return unread(over_limit(object.size));
    }
    match aws.get_object(&object.key, MAX_REPORT_BYTES).await {
        Ok(body) => judge(&machines, &object.key, object.last_modified, &body),
        Err(ActionError::Denied { .. }) => unread("could not be read: S3 refused s3:GetObject (HTTP 403)".into()),
        Err(ActionError::NotFound { .. }) => {
            unread("could not be read: it was removed after the listing (HTTP 404)".into())
        }
        Err(ActionError::TooLarge { size, .. }) => unread(over_limit(size)),
        Err(other) => unread(format!("could not be read: {}", clean(&other.to_string()).0)),
    }
}

fn over_limit(size: u64) -> String {
    format!("is {size} bytes, over the {} KB limit", MAX_REPORT_BYTES / 1024)
}

/// Judges one object: its key (who wrote it, for which machine) and its bytes. Pure.
pub fn judge(machines_prefix: &str, key: &str, last_modified: Option<Timestamp>, body: &[u8]) -> Judged {
    let reject = |reason: String| rejected(key, last_modified, reason);
    let named = match parse_key(machines_prefix, key) {
        Ok(named) => named,
        Err(KeyProblem::OldLayout) => {
            return reject("is in an older devbox's layout, with no writer in its key: not counted".into());
        }
        Err(KeyProblem::Foreign) => {
            return reject(format!("is not at {machines_prefix}<principal>/<machine id>.json: not counted"));
        }
    };
    if body.len() as u64 > MAX_REPORT_BYTES {
        return reject(over_limit(body.len() as u64));
    }
    let mut value: Value = match serde_json::from_slice(body) {
        Ok(value) => value,
        Err(err) => return reject(format!("is not JSON ({err})")),
    };
    match value.get("schema") {
        Some(Value::Number(n)) if n.as_u64() == Some(SCHEMA) => {}
        Some(other) => {
            let (shown, _) = clean(&other.to_string().chars().take(40).collect::<String>());
            return reject(format!("has schema version {shown}; this devbox reads version {SCHEMA}"));
        }
        None => return reject("has no schema version: not a devbox report".into()),
    }
    let escaped = clean_strings(&mut value);
    let mut report: MachineReport = match serde_json::from_value(value) {
        Ok(report) => report,
        Err(err) => return reject(format!("is not a devbox report ({err})")),
    };
    // Kept small: what the views show. A passing check's hint and details are not among it.
    for check in &mut report.checks {
        check.details.clear();
        if check.status == CheckStatus::Ok {
            check.hint = None;
            check.fix = None;
        }
    }
    let mut flags = Vec::new();
    let machine_id = clean(&named.machine_id).0;
    if report.machine_id != machine_id {
        flags.push(Flag::OtherMachine { claimed: std::mem::replace(&mut report.machine_id, machine_id) });
    }
    if let Some(written) = last_modified
        && report.ran_at > written
    {
        if report.ran_at.duration_since(written) > FUTURE_SLACK {
            flags.push(Flag::FromTheFuture { claimed: report.ran_at, written });
        }
        report.ran_at = written;
    }
    Judged::Machine(Box::new(Machine {
        key: key.to_string(),
        shown_key: clean(key).0,
        principal: clean(&named.principal).0,
        seen: report.ran_at,
        report,
        escaped,
        flags,
    }))
}

/// Each machine counted once: of the reports with one machine ID (from their keys), the newest
/// object stands, flagged with the others' keys; the others are `Superseded`. Pure, linear.
pub fn dedupe(judged: Vec<Judged>) -> Vec<Judged> {
    let mut newest: HashMap<String, usize> = HashMap::new();
    let mut others: HashMap<usize, Vec<usize>> = HashMap::new();
    let order = |m: &Machine| (m.report.ran_at, m.key.clone());
    for (i, j) in judged.iter().enumerate() {
        let Judged::Machine(m) = j else { continue };
        match newest.get(&m.report.machine_id).copied() {
            None => {
                newest.insert(m.report.machine_id.clone(), i);
            }
            Some(kept) => {
                let Judged::Machine(k) = &judged[kept] else { continue };
                let (winner, loser) = if order(m) > order(k) { (i, kept) } else { (kept, i) };
                newest.insert(m.report.machine_id.clone(), winner);
                let mut moved = others.remove(&loser).unwrap_or_default();
                moved.push(loser);
                others.entry(winner).or_default().extend(moved);
            }
        }
    }
    if others.is_empty() {
        return judged;
    }
    let by: HashMap<usize, String> = others
        .iter()
        .flat_map(|(winner, losers)| {
            let key = match &judged[*winner] {
                Judged::Machine(m) => m.shown_key.clone(),
                _ => String::new(),
            };
            losers.iter().map(move |l| (*l, key.clone()))
        })
        .collect();
    let shown: HashMap<usize, String> = judged
        .iter()
        .enumerate()
        .filter_map(|(i, j)| match j {
            Judged::Machine(m) if by.contains_key(&i) => Some((i, m.shown_key.clone())),
            _ => None,
        })
        .collect();
    judged
        .into_iter()
        .enumerate()
        .map(|(i, j)| match j {
            Judged::Machine(m) if by.contains_key(&i) => Judged::Superseded(Superseded {
                key: m.shown_key,
                by: by[&i].clone(),
                exact_key: m.key,
                last_modified: Some(m.seen),
            }),
            Judged::Machine(mut m) if others.contains_key(&i) => {
                let mut keys: Vec<String> = others[&i].iter().map(|l| shown[l].clone()).collect();
                keys.sort();
                m.flags.push(Flag::AlsoUnder { keys });
                Judged::Machine(m)
            }
            other => other,
        })
        .collect()
}

/// Escapes what `clean` escapes in every string of `value`, and says whether any string held one
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

/// Whether `c` changes what text around it looks like without being seen itself: a control
/// character, a bidi override or isolate (U+202A–U+202E, U+2066–U+2069, U+200E/F, U+061C), or a
/// zero-width or invisible one (U+200B–U+200D, U+2060–U+2064, U+FEFF, U+00AD, U+180E).
fn is_deceptive(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}')
        || matches!(c, '\u{2066}'..='\u{2069}' | '\u{feff}' | '\u{061c}' | '\u{00ad}' | '\u{180e}')
}

/// `text` with each control, bidi and zero-width character written out as `\u{…}`, and whether
/// there was one.
pub fn clean(text: &str) -> (String, bool) {
    if !text.chars().any(is_deceptive) {
        return (text.to_string(), false);
    }
    let cleaned =
        text.chars().map(|c| if is_deceptive(c) { format!("\\u{{{:x}}}", c as u32) } else { c.to_string() }).collect();
    (cleaned, true)
}

/// Whether `text` holds what a browser would take for a tag, a comment or an entity.
fn has_markup(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.windows(2).any(|w| w[0] == b'<' && (w[1].is_ascii_alphabetic() || matches!(w[1], b'/' | b'!' | b'?')))
        || text.contains("&#")
}

#[cfg(test)]
#[path = "read_tests.rs"]
mod tests;
