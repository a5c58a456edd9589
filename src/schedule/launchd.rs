//! launchd agents (macOS): one plist per job in `~/Library/LaunchAgents`, loaded with
//! `launchctl bootstrap gui/<uid>`. A calendar run missed during sleep runs on wake.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use super::{ALL_JOBS, Backend, BackendKind, Change, Installed, Job, JobEnv, Timing, next_run, run_tool, xml_escape};
use crate::error::Error;

const TEMPLATE: &str = include_str!("../../templates/schedule/launchd.plist");

pub fn label(job: &str) -> String {
    format!("dev.devbox.{job}")
}

#[derive(Serialize)]
struct PlistContext {
    label: String,
    argv: Vec<String>,
    interval_seconds: Option<u64>,
    calendar: BTreeMap<&'static str, u8>,
    log: String,
}

pub fn render(job: &Job, env: &JobEnv) -> anyhow::Result<String> {
    let mut calendar = BTreeMap::new();
    let interval_seconds = match job.timing {
        Timing::Every(d) => Some(d.as_secs().max(1)),
        Timing::Calendar { weekday, hour, minute } => {
            calendar.insert("Minute", minute);
            if let Some(hour) = hour {
                calendar.insert("Hour", hour);
            }
            if let Some(weekday) = weekday {
                calendar.insert("Weekday", weekday);
            }
            None
        }
    };
    let context = PlistContext {
        label: label(job.name),
        argv: env.argv(job).iter().map(|a| xml_escape(a)).collect(),
        interval_seconds,
        calendar,
        log: xml_escape(&env.log_path(job.name).display().to_string()),
    };
    crate::templates::render("launchd.plist", TEMPLATE, context)
}

pub struct Launchd {
    /// `~/Library/LaunchAgents`
    pub agents_dir: PathBuf,
}

impl Launchd {
    fn path(&self, job: &str) -> PathBuf {
        self.agents_dir.join(format!("{}.plist", label(job)))
    }

    fn domain(&self) -> anyhow::Result<String> {
        let out = run_tool("id", &["-u"], None)?;
        Ok(format!("gui/{}", out.stdout.trim()))
    }

    fn launchctl(&self, args: &[&str]) -> anyhow::Result<()> {
        let out = run_tool("launchctl", args, None).map_err(|e| failure(&format!("{e:#}")))?;
        if !out.success {
            return Err(failure(&format!("`launchctl {}`: {}", args.join(" "), out.stderr.trim())).into());
        }
        Ok(())
    }

    fn remove_job(&self, job: &str) -> anyhow::Result<Change> {
        let path = self.path(job);
        let present = path.exists();
        if present {
            let _ = self.launchctl(&["bootout", &format!("{}/{}", self.domain()?, label(job))]);
            std::fs::remove_file(&path)?;
        }
        Ok(Change { job: job.into(), location: path.display().to_string(), changed: present })
    }
}

fn failure(reason: &str) -> Error {
    Error::Scheduler { backend: "launchd".into(), reason: reason.into() }
}

impl Backend for Launchd {
    fn kind(&self) -> BackendKind {
        BackendKind::Launchd
    }

    fn install(&self, jobs: &[Job], env: &JobEnv) -> anyhow::Result<Vec<Change>> {
        let mut changes = Vec::new();
        for job in jobs {
            let path = self.path(job.name);
            let changed = crate::paths::write_if_changed(&path, render(job, env)?.as_bytes())?;
            if changed {
                let domain = self.domain()?;
                // Reload: an agent already loaded keeps its old definition until booted out.
                let _ = self.launchctl(&["bootout", &format!("{domain}/{}", label(job.name))]);
                self.launchctl(&["bootstrap", &domain, &path.display().to_string()])?;
            }
            changes.push(Change { job: job.name.into(), location: path.display().to_string(), changed });
        }
        changes.extend(super::remove_unwanted(jobs, |name| self.remove_job(name))?);
        Ok(changes)
    }

    fn remove(&self) -> anyhow::Result<Vec<Change>> {
        ALL_JOBS.iter().map(|job| self.remove_job(job)).collect()
    }

    fn status(&self, job: &str) -> anyhow::Result<Installed> {
        let path = self.path(job);
        let text = std::fs::read_to_string(&path).ok();
        // launchd does not say when a calendar job runs next; the plist does.
        let next = text.as_deref().and_then(|t| {
            let minute = plist_integer(t, "Minute")?;
            let spec =
                Timing::Calendar { weekday: plist_integer(t, "Weekday"), hour: plist_integer(t, "Hour"), minute }
                    .cron_spec();
            next_run(&spec, &jiff::ZonedDateTime::now()).map(|z| z.strftime("%Y-%m-%d %H:%M %Z").to_string())
        });
        let next = next.or_else(|| {
            let secs = plist_integer::<u64>(text.as_deref()?, "StartInterval")?;
            Some(format!("every {}", humantime::format_duration(std::time::Duration::from_secs(secs))))
        });
        Ok(Installed { installed: text.is_some(), next_run: next, location: path.display().to_string() })
    }
}

/// The integer after `<key>name</key>` in devbox's own plist.
fn plist_integer<T: std::str::FromStr>(text: &str, key: &str) -> Option<T> {
    let rest = text.split(&format!("<key>{key}</key>")).nth(1)?;
    rest.split("<integer>").nth(1)?.split("</integer>").next()?.trim().parse().ok()
}
