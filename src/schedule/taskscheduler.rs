//! Windows Task Scheduler: one task per job under `\devbox\`, created from XML with
//! `schtasks /Create /XML`. The XML is kept in devbox's state directory, as UTF-16 as schtasks wants.

use std::path::PathBuf;

use serde::Serialize;

use super::{ALL_JOBS, Backend, BackendKind, Change, Installed, Job, JobEnv, Timing, run_tool, xml_escape};
use crate::error::Error;

const TEMPLATE: &str = include_str!("../../templates/schedule/taskscheduler.xml");

pub fn task_name(job: &str) -> String {
    format!(r"\devbox\{job}")
}

/// Quotes one argument for cmd.exe's command line.
fn win_quote(arg: &str) -> String {
    if !arg.is_empty() && !arg.chars().any(|c| c.is_whitespace() || "\"&|<>^%".contains(c)) {
        arg.to_string()
    } else {
        format!("\"{}\"", arg.replace('"', "\"\""))
    }
}

#[derive(Serialize)]
struct TaskContext {
    description: String,
    task_name: String,
    start_boundary: String,
    interval: Option<String>,
    weekday: Option<&'static str>,
    arguments: String,
}

/// What the task hands `cmd.exe`: the job's command line with its output appended to its log.
/// `/d`: no AutoRun commands from the registry; `/s`: cmd strips exactly the outer quotes and runs
/// what is between them as typed, whatever quotes and special characters the paths hold.
pub fn cmd_arguments(job: &Job, env: &JobEnv) -> String {
    let command: Vec<String> = env.argv(job).iter().map(|a| win_quote(a)).collect();
    let log = win_quote(&env.log_path(job.name).display().to_string());
    format!("/d /s /c \"{} >> {log} 2>&1\"", command.join(" "))
}

/// The task's XML, as UTF-8 text (written as UTF-16 by `install`). Task Scheduler cannot set an
/// environment or redirect output, so the job runs through `cmd.exe` (`cmd_arguments`) for its
/// log. Each value is escaped here, once (the template adds no escaping of its own).
pub fn render(job: &Job, env: &JobEnv) -> anyhow::Result<String> {
    let (start_boundary, interval) = match job.timing {
        Timing::Every(d) => {
            ("2024-01-01T00:00:00".to_string(), Some(format!("PT{}M", d.as_secs().div_ceil(60).max(1))))
        }
        Timing::Calendar { hour: None, minute, .. } => (format!("2024-01-01T00:{minute:02}:00"), Some("PT1H".into())),
        Timing::Calendar { hour: Some(hour), minute, .. } => (format!("2024-01-01T{hour:02}:{minute:02}:00"), None),
    };
    let context = TaskContext {
        description: xml_escape(job.description),
        task_name: xml_escape(&task_name(job.name)),
        start_boundary,
        interval,
        weekday: job.timing.weekday_name(),
        arguments: xml_escape(&cmd_arguments(job, env)),
    };
    crate::templates::render("taskscheduler.xml", TEMPLATE, context)
}

/// UTF-16 little-endian with a byte-order mark, as `schtasks /XML` reads it.
pub fn utf16(text: &str) -> Vec<u8> {
    let mut bytes = vec![0xFF, 0xFE];
    bytes.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    bytes
}

pub struct TaskScheduler {
    /// Where the task XML files are kept (in devbox's state directory).
    pub xml_dir: PathBuf,
}

impl TaskScheduler {
    fn path(&self, job: &str) -> PathBuf {
        self.xml_dir.join(format!("devbox-{job}.xml"))
    }

    fn schtasks(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = run_tool("schtasks", args, None).map_err(|e| failure(&format!("{e:#}")))?;
        if !out.success {
            return Err(failure(&format!("`schtasks {}`: {}", args.join(" "), out.stderr.trim())).into());
        }
        Ok(out.stdout)
    }

    fn remove_job(&self, job: &str) -> anyhow::Result<Change> {
        let path = self.path(job);
        let present = path.exists();
        if present {
            let _ = self.schtasks(&["/Delete", "/TN", &task_name(job), "/F"]);
            std::fs::remove_file(&path)?;
        }
        Ok(Change { job: job.into(), location: task_name(job), changed: present })
    }
}

fn failure(reason: &str) -> Error {
    Error::Scheduler { backend: "taskscheduler".into(), reason: reason.into() }
}

impl Backend for TaskScheduler {
    fn kind(&self) -> BackendKind {
        BackendKind::TaskScheduler
    }

    fn install(&self, jobs: &[Job], env: &JobEnv) -> anyhow::Result<Vec<Change>> {
        let mut changes = Vec::new();
        for job in jobs {
            let path = self.path(job.name);
            let changed = crate::paths::write_if_changed(&path, &utf16(&render(job, env)?))?;
            if changed {
                self.schtasks(&["/Create", "/TN", &task_name(job.name), "/XML", &path.display().to_string(), "/F"])?;
            }
            changes.push(Change { job: job.name.into(), location: task_name(job.name), changed });
        }
        changes.extend(super::remove_unwanted(jobs, |name| self.remove_job(name))?);
        Ok(changes)
    }

    fn remove(&self) -> anyhow::Result<Vec<Change>> {
        ALL_JOBS.iter().map(|job| self.remove_job(job)).collect()
    }

    /// The tasks' XML files, with no `schtasks` run.
    fn installed(&self) -> anyhow::Result<Vec<&'static str>> {
        Ok(ALL_JOBS.into_iter().filter(|job| self.path(job).exists()).collect())
    }

    fn status(&self, job: &str) -> anyhow::Result<Installed> {
        let installed = self.path(job).exists();
        let next_run = if installed {
            self.schtasks(&["/Query", "/TN", &task_name(job), "/V", "/FO", "LIST"]).ok().and_then(|text| {
                text.lines().find_map(|l| l.strip_prefix("Next Run Time:").map(|v| v.trim().to_string()))
            })
        } else {
            None
        };
        Ok(Installed { installed, next_run, location: task_name(job) })
    }
}
