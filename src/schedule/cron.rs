//! cron: devbox's jobs live in one block between marker lines in the user's crontab. Every other
//! line is kept byte for byte; `remove` takes out the block and nothing else.

use serde::Serialize;

use super::{ALL_JOBS, Backend, BackendKind, Change, Installed, Job, JobEnv, next_run, run_tool, sh_quote};
use crate::error::Error;

const TEMPLATE: &str = include_str!("../../templates/schedule/cron.txt");
pub const BEGIN: &str =
    "# BEGIN devbox schedule (managed by `devbox schedule`; change devbox.toml, then run `devbox schedule install`)";
pub const END: &str = "# END devbox schedule";

#[derive(Serialize)]
struct CronJob {
    description: &'static str,
    period: String,
    line: String,
}

/// One crontab line: when, then the command with its log. `%` is special to cron, so escaped.
pub fn job_line(job: &Job, env: &JobEnv) -> String {
    let command: Vec<String> = env.argv(job).iter().map(|a| sh_quote(a)).collect();
    let log = sh_quote(&env.log_path(job.name).display().to_string());
    format!("{} {} >>{log} 2>&1", job.timing.cron_spec(), command.join(" ")).replace('%', r"\%")
}

/// The whole block for `jobs`; `None` when there are none.
pub fn render_block(jobs: &[Job], env: &JobEnv) -> anyhow::Result<Option<String>> {
    if jobs.is_empty() {
        return Ok(None);
    }
    let jobs: Vec<CronJob> = jobs
        .iter()
        .map(|j| CronJob { description: j.description, period: j.period.clone(), line: job_line(j, env) })
        .collect();
    let context = serde_json::json!({ "begin": BEGIN, "end": END, "jobs": jobs });
    crate::templates::render("cron.txt", TEMPLATE, context).map(Some)
}

/// The crontab with devbox's block replaced by `block` (or taken out when `None`). Every byte
/// outside the block stays as it was. Pure.
pub fn splice(crontab: &str, block: Option<&str>) -> String {
    let (before, after) = match find_block(crontab) {
        Some((start, end)) => (&crontab[..start], &crontab[end..]),
        None => (crontab, ""),
    };
    let mut out = String::with_capacity(crontab.len() + block.map_or(0, str::len));
    out.push_str(before);
    if let Some(block) = block {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(block);
    }
    out.push_str(after);
    out
}

/// The byte range of the block, from the start of its BEGIN line to just after its END line.
fn find_block(crontab: &str) -> Option<(usize, usize)> {
    let mut offset = 0;
    let mut start = None;
    for line in crontab.split_inclusive('\n') {
        let text = line.trim_end_matches(['\n', '\r']);
        if start.is_none() && text.starts_with("# BEGIN devbox schedule") {
            start = Some(offset);
        } else if start.is_some() && text == END {
            return Some((start?, offset + line.len()));
        }
        offset += line.len();
    }
    None
}

/// The lines inside devbox's block.
pub fn block_lines(crontab: &str) -> Vec<&str> {
    find_block(crontab).map(|(s, e)| crontab[s..e].lines().collect()).unwrap_or_default()
}

pub struct Cron;

impl Cron {
    fn read(&self) -> anyhow::Result<String> {
        let out = run_tool("crontab", &["-l"], None).map_err(|e| failure(&format!("{e:#}")))?;
        if out.success {
            return Ok(out.stdout);
        }
        // "no crontab for alice" is an empty crontab, not a failure. crontab says so only in words,
        // with the exit code of a real failure, so they are read here, where crontab is run.
        if out.stderr.contains("no crontab for") {
            return Ok(String::new());
        }
        Err(failure(&format!("`crontab -l` exited with {:?}: {}", out.code, out.stderr.trim())).into())
    }

    fn write(&self, text: &str) -> anyhow::Result<()> {
        let out = if text.is_empty() {
            run_tool("crontab", &["-r"], None)
        } else {
            run_tool("crontab", &["-"], Some(text.as_bytes()))
        }
        .map_err(|e| failure(&format!("{e:#}")))?;
        if !out.success {
            return Err(
                failure(&format!("`crontab` refused the new crontab ({:?}): {}", out.code, out.stderr.trim())).into()
            );
        }
        Ok(())
    }

    fn converge(&self, block: Option<&str>) -> anyhow::Result<bool> {
        let current = self.read()?;
        let wanted = splice(&current, block);
        if wanted == current {
            return Ok(false);
        }
        self.write(&wanted)?;
        Ok(true)
    }
}

fn failure(reason: &str) -> Error {
    Error::Scheduler { backend: "cron".into(), reason: reason.into() }
}

impl Backend for Cron {
    fn kind(&self) -> BackendKind {
        BackendKind::Cron
    }

    fn install(&self, jobs: &[Job], env: &JobEnv) -> anyhow::Result<Vec<Change>> {
        let block = render_block(jobs, env)?;
        let changed = self.converge(block.as_deref())?;
        Ok(jobs.iter().map(|j| Change { job: j.name.into(), location: "crontab".into(), changed }).collect())
    }

    fn remove(&self) -> anyhow::Result<Vec<Change>> {
        let changed = self.converge(None)?;
        Ok(vec![Change { job: "all".into(), location: "crontab".into(), changed }])
    }

    /// One `crontab -l` for every job.
    fn installed(&self) -> anyhow::Result<Vec<&'static str>> {
        let crontab = self.read()?;
        let lines = block_lines(&crontab);
        Ok(ALL_JOBS.into_iter().filter(|job| lines.iter().any(|l| l.contains(&marker(job)))).collect())
    }

    fn status(&self, job: &str) -> anyhow::Result<Installed> {
        let crontab = self.read()?;
        let marker = marker(job);
        let line = block_lines(&crontab).into_iter().find(|l| l.contains(&marker)).map(str::to_string);
        let next_run = line.as_deref().and_then(parse_spec).and_then(|spec| {
            next_run(&spec, &jiff::ZonedDateTime::now()).map(|t| t.strftime("%Y-%m-%d %H:%M %Z").to_string())
        });
        Ok(Installed { installed: line.is_some(), next_run, location: "crontab".into() })
    }
}

/// What marks `job`'s line in devbox's block.
fn marker(job: &str) -> String {
    format!("--scheduled-job {job} ")
}

/// The schedule part of one of devbox's own lines (it only writes the forms `Field` prints).
fn parse_spec(line: &str) -> Option<super::CronSpec> {
    use super::Field;
    let field = |s: &str| -> Option<Field> {
        match s {
            "*" => Some(Field::Any),
            _ => match s.strip_prefix("*/") {
                Some(n) => n.parse().ok().map(Field::Every),
                None => s.parse().ok().map(Field::At),
            },
        }
    };
    let mut parts = line.split_whitespace();
    let (minute, hour, dom, _month, dow) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    Some(super::CronSpec {
        minute: field(minute)?,
        hour: field(hour)?,
        day_of_month: field(dom)?,
        weekday: field(dow)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLOCK: &str = "# BEGIN devbox schedule (x)\n1 2 * * * job\n# END devbox schedule\n";

    #[test]
    fn splice_appends_replaces_and_removes_leaving_other_lines_alone() {
        let theirs = "MAILTO=me@example.com\n# my backup\n0 3 * * * /usr/local/bin/backup --all  \n";
        let installed = splice(theirs, Some(BLOCK));
        assert_eq!(installed, format!("{theirs}{BLOCK}"));
        let replaced = splice(&installed, Some("# BEGIN devbox schedule (y)\n# END devbox schedule\n"));
        assert!(replaced.starts_with(theirs) && replaced.contains("(y)") && !replaced.contains("job"));
        assert_eq!(splice(&installed, None), theirs);
        assert_eq!(splice(&installed, Some(BLOCK)), installed, "installing twice changes nothing");
    }

    #[test]
    fn splice_keeps_lines_after_the_block_and_odd_endings() {
        let text = format!("a\r\n{BLOCK}b without newline");
        assert_eq!(splice(&text, None), "a\r\nb without newline");
        assert_eq!(splice("", Some(BLOCK)), BLOCK);
        assert_eq!(splice("x", Some(BLOCK)), format!("x\n{BLOCK}"));
        // A BEGIN without END is not a block: nothing is cut.
        let broken = "# BEGIN devbox schedule\nkeep me\n";
        assert_eq!(splice(broken, None), broken);
    }

    #[test]
    fn our_lines_parse_back_to_their_schedule() {
        use super::super::{Field, Timing};
        let spec = Timing::Every(std::time::Duration::from_secs(600)).cron_spec();
        assert_eq!(spec.to_string(), "*/10 * * * *");
        assert_eq!(parse_spec("*/10 * * * * /bin/devbox"), Some(spec));
        assert_eq!(parse_spec("17 12 * * 1 x").map(|s| s.weekday), Some(Field::At(1)));
        assert_eq!(parse_spec("nonsense"), None);
    }
}
