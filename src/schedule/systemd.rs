//! systemd user units: one `.service` and one `.timer` per job in the user's unit directory,
//! `Persistent=true` so a run missed while the laptop slept happens at the next boot.

use std::path::PathBuf;

use serde::Serialize;

use super::{ALL_JOBS, Backend, BackendKind, Change, Installed, Job, JobEnv, Timing, run_tool};
use crate::error::Error;

const SERVICE: &str = include_str!("../../templates/schedule/systemd.service");
const TIMER: &str = include_str!("../../templates/schedule/systemd.timer");

pub fn unit_name(job: &str) -> String {
    format!("devbox-{job}")
}

/// Quotes one word of `ExecStart=`: `%` and `$` are systemd's specifiers and variables.
fn quote(word: &str) -> String {
    let escaped = word.replace('%', "%%").replace('$', "$$");
    if escaped.chars().any(|c| c.is_whitespace() || c == '"' || c == '\\' || c == '\'' || c == ';') {
        format!("\"{}\"", escaped.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        escaped
    }
}

#[derive(Serialize)]
struct UnitContext {
    description: &'static str,
    unit: String,
    period: String,
    exec_start: String,
    log: String,
    timer_lines: Vec<String>,
}

/// The `.service` and `.timer` for one job.
pub fn render(job: &Job, env: &JobEnv) -> anyhow::Result<(String, String)> {
    let timer_lines = match job.timing {
        Timing::Every(d) => {
            let secs = d.as_secs().max(1);
            vec![format!("OnBootSec={}s", secs.min(300)), format!("OnUnitActiveSec={secs}s")]
        }
        calendar => {
            vec![format!("OnCalendar={}", calendar.on_calendar().unwrap_or_default()), "RandomizedDelaySec=5m".into()]
        }
    };
    let context = UnitContext {
        description: job.description,
        unit: unit_name(job.name),
        period: job.period.clone(),
        exec_start: env.argv(job).iter().map(|a| quote(a)).collect::<Vec<_>>().join(" "),
        log: env.log_path(job.name).display().to_string().replace('%', "%%"),
        timer_lines,
    };
    Ok((
        crate::templates::render("systemd.service", SERVICE, &context)?,
        crate::templates::render("systemd.timer", TIMER, &context)?,
    ))
}

pub struct Systemd {
    /// `~/.config/systemd/user`
    pub unit_dir: PathBuf,
}

impl Systemd {
    fn systemctl(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut full = vec!["--user"];
        full.extend_from_slice(args);
        let out = run_tool("systemctl", &full, None).map_err(|e| failure(&format!("{e:#}")))?;
        if !out.success {
            return Err(failure(&format!("`systemctl --user {}`: {}", args.join(" "), out.stderr.trim())).into());
        }
        Ok(out.stdout)
    }

    fn files(&self, job: &str) -> [PathBuf; 2] {
        let unit = unit_name(job);
        [self.unit_dir.join(format!("{unit}.service")), self.unit_dir.join(format!("{unit}.timer"))]
    }

    fn remove_job(&self, job: &str) -> anyhow::Result<Change> {
        let [service, timer] = self.files(job);
        let present = service.exists() || timer.exists();
        if present {
            // Stop first; a timer that is already gone from systemd's view is fine. A failed
            // last run would stay in systemd's memory (`list-units --failed`) after its file has
            // gone: forget it too.
            let unit = unit_name(job);
            let _ = self.systemctl(&["disable", "--now", &format!("{unit}.timer")]);
            let _ = self.systemctl(&["reset-failed", &format!("{unit}.service"), &format!("{unit}.timer")]);
            for file in [&service, &timer] {
                if file.exists() {
                    std::fs::remove_file(file)?;
                }
            }
        }
        Ok(Change { job: job.into(), location: timer.display().to_string(), changed: present })
    }
}

fn failure(reason: &str) -> Error {
    Error::Scheduler { backend: "systemd".into(), reason: reason.into() }
}

/// Whether a systemd user manager answers (`systemctl --user is-system-running`).
pub fn user_manager_answers() -> bool {
    run_tool("systemctl", &["--user", "is-system-running"], None).is_ok_and(|out| {
        matches!(out.stdout.trim(), "running" | "degraded" | "starting" | "initializing" | "maintenance")
    })
}

impl Backend for Systemd {
    fn kind(&self) -> BackendKind {
        BackendKind::Systemd
    }

    fn install(&self, jobs: &[Job], env: &JobEnv) -> anyhow::Result<Vec<Change>> {
        let mut changes = Vec::new();
        let mut reload = false;
        for job in jobs {
            let (service, timer) = render(job, env)?;
            let [service_path, timer_path] = self.files(job.name);
            let changed = crate::paths::write_if_changed(&service_path, service.as_bytes())?
                | crate::paths::write_if_changed(&timer_path, timer.as_bytes())?;
            reload |= changed;
            changes.push(Change { job: job.name.into(), location: timer_path.display().to_string(), changed });
        }
        let removed = super::remove_unwanted(jobs, |name| self.remove_job(name))?;
        reload |= !removed.is_empty();
        changes.extend(removed);
        if reload {
            self.systemctl(&["daemon-reload"])?;
        }
        for job in jobs {
            let timer = format!("{}.timer", unit_name(job.name));
            let active = self.systemctl(&["is-active", &timer]).is_ok();
            if !active || reload {
                self.systemctl(&["enable", "--now", &timer])?;
            }
        }
        Ok(changes)
    }

    fn remove(&self) -> anyhow::Result<Vec<Change>> {
        let changes: Vec<Change> = ALL_JOBS.iter().map(|job| self.remove_job(job)).collect::<anyhow::Result<_>>()?;
        if changes.iter().any(|c| c.changed) {
            self.systemctl(&["daemon-reload"])?;
        }
        Ok(changes)
    }

    /// The timers' files, with no `systemctl` run.
    fn installed(&self) -> anyhow::Result<Vec<&'static str>> {
        Ok(ALL_JOBS.into_iter().filter(|job| self.files(job)[1].exists()).collect())
    }

    fn status(&self, job: &str) -> anyhow::Result<Installed> {
        let [_, timer] = self.files(job);
        let installed = timer.exists();
        let next_run = if installed {
            self.systemctl(&[
                "show",
                &format!("{}.timer", unit_name(job)),
                "--property=NextElapseUSecRealtime",
                "--value",
            ])
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty() && s != "n/a")
        } else {
            None
        };
        Ok(Installed { installed, next_run, location: timer.display().to_string() })
    }
}
