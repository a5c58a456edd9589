use std::path::PathBuf;
use std::time::Duration;

use super::*;

fn defaults() -> Config {
    crate::config::load(crate::config::ConfigSource::Defaults { would_be: PathBuf::from("/nonexistent/devbox.toml") })
        .expect("defaults load")
        .config
}

/// All five jobs, as a VM engine with a registry on short-lived credentials and fleet reporting
/// on gets them.
fn all_jobs() -> Vec<Job> {
    let mut config = defaults();
    config.fleet.report = true;
    let (jobs, skipped) = wanted_jobs(&config, Some(true), Some(true));
    assert!(skipped.is_empty(), "{skipped:?}");
    jobs
}

fn env(exe: &str) -> JobEnv {
    JobEnv {
        exe: PathBuf::from(exe),
        state_dir: PathBuf::from("/home/alice/.local/state/devbox"),
        config: Some(PathBuf::from("/home/alice/team devbox.toml")),
    }
}

#[test]
fn jobs_follow_the_config() {
    let jobs = all_jobs();
    assert_eq!(jobs.iter().map(|j| j.name).collect::<Vec<_>>(), ["cleanup", "refresh", "clock", "renew", "report"]);
    assert_eq!(jobs[4].args, ["doctor", "--report", "--quiet"]);
    assert_eq!(jobs[4].timing, Timing::Calendar { weekday: None, hour: Some(12), minute: 47 });
    assert_eq!(jobs[3].timing, Timing::Every(Duration::from_secs(600)));
    assert_eq!(jobs[3].args, ["registry", "renew", "--quiet"]);
    assert_eq!(jobs[0].timing, Timing::Calendar { weekday: None, hour: Some(12), minute: 17 });
    assert_eq!(jobs[1].timing, Timing::Calendar { weekday: Some(1), hour: Some(9), minute: 47 });
    assert_eq!(jobs[2].timing, Timing::Every(Duration::from_secs(600)));

    // A native engine gets no clock job; "off" switches a job off.
    let mut config = defaults();
    config.cleanup.schedule = Period::Off;
    let (jobs, skipped) = wanted_jobs(&config, Some(false), Some(false));
    assert_eq!(jobs.iter().map(|j| j.name).collect::<Vec<_>>(), ["refresh"]);
    assert!(skipped.iter().any(|s| s.name == "renew" && s.reason.contains("do not expire")));
    assert!(skipped.iter().any(|s| s.name == "clock" && s.reason.contains("natively")));
    assert!(skipped.iter().any(|s| s.name == "cleanup" && s.reason.contains("off")));
    assert!(skipped.iter().any(|s| s.name == "report" && s.reason.contains("[fleet] report = false")));
}

#[test]
fn every_job_command_parses_in_this_binary() {
    let jobs = all_jobs();
    for job in &jobs {
        // Every installed job's command parses in this very binary.
        let mut argv = vec!["devbox".to_string()];
        argv.extend(env("/usr/bin/devbox").argv(job).into_iter().skip(1));
        <crate::cli::Cli as clap::Parser>::try_parse_from(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    }
}

#[test]
fn backend_choice_follows_the_os_and_what_answers() {
    assert_eq!(choose_backend("macos", false, true), Ok(BackendKind::Launchd));
    assert_eq!(choose_backend("windows", false, false), Ok(BackendKind::TaskScheduler));
    assert_eq!(choose_backend("linux", true, true), Ok(BackendKind::Systemd));
    assert_eq!(choose_backend("linux", false, true), Ok(BackendKind::Cron));
    assert_eq!(choose_backend("freebsd", false, true), Ok(BackendKind::Cron));
    assert!(choose_backend("linux", false, false).is_err_and(|e| e.contains("no scheduler")));
}

#[test]
fn next_run_follows_the_cron_spec() {
    let now: jiff::ZonedDateTime = "2024-05-01T12:20:30[UTC]".parse().expect("time");
    let at = |timing: Timing| next_run(&timing.cron_spec(), &now).map(|t| t.strftime("%a %F %R").to_string());
    let daily = Timing::Calendar { weekday: None, hour: Some(12), minute: 17 };
    assert_eq!(at(daily).as_deref(), Some("Thu 2024-05-02 12:17"));
    let weekly = Timing::Calendar { weekday: Some(1), hour: Some(9), minute: 47 };
    assert_eq!(at(weekly).as_deref(), Some("Mon 2024-05-06 09:47"));
    let hourly = Timing::Calendar { weekday: None, hour: None, minute: 17 };
    assert_eq!(at(hourly).as_deref(), Some("Wed 2024-05-01 13:17"));
    assert_eq!(at(Timing::Every(Duration::from_secs(600))).as_deref(), Some("Wed 2024-05-01 12:30"));
    assert_eq!(Timing::Every(Duration::from_secs(6 * 3600)).cron_spec().to_string(), "17 */6 * * *");
    assert_eq!(Timing::Every(Duration::from_secs(3 * 86400)).cron_spec().to_string(), "17 12 */3 * *");
    assert_eq!(daily.on_calendar().as_deref(), Some("*-*-* 12:17:00"));
    assert_eq!(weekly.on_calendar().as_deref(), Some("Mon *-*-* 09:47:00"));
    assert_eq!(hourly.on_calendar().as_deref(), Some("*-*-* *:17:00"));
}

#[test]
fn quoting_survives_spaces_quotes_and_percent() {
    assert_eq!(sh_quote("/usr/bin/devbox"), "/usr/bin/devbox");
    assert_eq!(sh_quote("/home/a b/it's"), r"'/home/a b/it'\''s'");
    assert_eq!(xml_escape("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
}

#[test]
fn systemd_units_render() {
    for job in all_jobs() {
        let (service, timer) = systemd::render(&job, &env("/home/alice/.local/bin/devbox")).expect("render");
        insta::assert_snapshot!(format!("systemd_{}_service", job.name), service);
        insta::assert_snapshot!(format!("systemd_{}_timer", job.name), timer);
    }
}

#[test]
fn launchd_plists_render_and_parse_back() {
    for job in all_jobs() {
        let exe = "/Users/alice/.local/bin/devbox & co";
        let text = launchd::render(&job, &env(exe)).expect("render");
        insta::assert_snapshot!(format!("launchd_{}", job.name), text);
        let parsed: plist::Value = plist::from_bytes(text.as_bytes()).expect("a valid plist");
        let dict = parsed.as_dictionary().expect("a dict");
        assert_eq!(dict.get("Label").and_then(|v| v.as_string()), Some(launchd::label(job.name).as_str()));
        let args: Vec<&str> = dict
            .get("ProgramArguments")
            .and_then(|v| v.as_array())
            .expect("arguments")
            .iter()
            .filter_map(|v| v.as_string())
            .collect();
        assert_eq!(args, env(exe).argv(&job), "arguments survive XML escaping");
        match job.timing {
            Timing::Every(d) => {
                assert_eq!(dict.get("StartInterval").and_then(|v| v.as_unsigned_integer()), Some(d.as_secs()));
            }
            Timing::Calendar { minute, hour, weekday } => {
                let cal = dict.get("StartCalendarInterval").and_then(|v| v.as_dictionary()).expect("calendar");
                let int = |k: &str| cal.get(k).and_then(|v| v.as_unsigned_integer());
                assert_eq!(int("Minute"), Some(u64::from(minute)));
                assert_eq!(int("Hour"), hour.map(u64::from));
                assert_eq!(int("Weekday"), weekday.map(u64::from));
            }
        }
        assert_eq!(
            dict.get("StandardOutPath").and_then(|v| v.as_string()),
            Some(env(exe).log_path(job.name).to_str().expect("utf-8"))
        );
    }
}

#[test]
fn cron_block_renders() {
    let block = cron::render_block(&all_jobs(), &env("/home/alice/.local/bin/devbox")).expect("render").expect("jobs");
    insta::assert_snapshot!("cron_block", block);
    assert!(block.starts_with(cron::BEGIN) && block.ends_with(&format!("{}\n", cron::END)));
    assert_eq!(cron::render_block(&[], &env("/x")).expect("render"), None);
}

#[test]
fn task_scheduler_xml_renders() {
    for job in all_jobs() {
        let exe = r"C:\Users\alice\AppData\Local\devbox\devbox.exe";
        let job_env = JobEnv {
            exe: PathBuf::from(exe),
            state_dir: PathBuf::from(r"C:\Users\alice\AppData\Local\devbox\data"),
            config: None,
        };
        let xml = taskscheduler::render(&job, &job_env).expect("render");
        insta::assert_snapshot!(format!("taskscheduler_{}", job.name), xml);
        // Well-formed XML, read back with the same parser the plist crate uses.
        let mut reader = quick_xml::Reader::from_str(&xml);
        loop {
            match reader.read_event() {
                Ok(quick_xml::events::Event::Eof) => break,
                Ok(_) => {}
                Err(e) => panic!("{} XML is malformed: {e}", job.name),
            }
        }
        let bytes = taskscheduler::utf16(&xml);
        assert_eq!(&bytes[..2], &[0xFF, 0xFE]);
        assert_eq!(xml_text(&xml, "Arguments"), taskscheduler::cmd_arguments(&job, &job_env));
        assert_eq!(xml_text(&xml, "Description"), job.description);
    }
}

/// The text of the first `<tag>` in `xml`, its entities decoded once, as Task Scheduler and
/// launchd read it.
fn xml_text(xml: &str, tag: &str) -> String {
    let mut reader = quick_xml::Reader::from_str(xml);
    loop {
        match reader.read_event().expect("well-formed XML") {
            quick_xml::events::Event::Start(e) if e.name().as_ref() == tag => {
                let raw = reader.read_text(e.name()).expect("the element's text");
                return quick_xml::escape::unescape(&raw).expect("known entities").into_owned();
            }
            quick_xml::events::Event::Eof => panic!("no <{tag}> in:\n{xml}"),
            _ => {}
        }
    }
}

/// What Task Scheduler hands cmd.exe, decoded from the XML, is exactly the command line to run:
/// paths with spaces, `&` and `'` quoted for cmd, the output appended to the job's log.
#[test]
fn task_scheduler_hands_cmd_exactly_the_command_line() {
    let job_env = JobEnv {
        exe: PathBuf::from(r"C:\Program Files\devbox & co\devbox.exe"),
        state_dir: PathBuf::from(r"C:\Users\o'brien\AppData\Local\devbox\data"),
        config: Some(PathBuf::from(r"C:\Users\o'brien\team devbox.toml")),
    };
    let cleanup = all_jobs().into_iter().find(|j| j.name == "cleanup").expect("the cleanup job");
    let xml = taskscheduler::render(&cleanup, &job_env).expect("render");
    assert_eq!(xml_text(&xml, "Command"), "cmd.exe");
    let log = job_env.log_path("cleanup").display().to_string();
    assert_eq!(
        xml_text(&xml, "Arguments"),
        format!(
            r#"/d /s /c ""C:\Program Files\devbox & co\devbox.exe" --scheduled-job cleanup --config "C:\Users\o'brien\team devbox.toml" cleanup --quiet >> {log} 2>&1""#
        )
    );
    assert_eq!(xml_text(&xml, "URI"), r"\devbox\cleanup");
    assert!(!xml.contains("&amp;amp;") && !xml.contains("&amp;quot;"), "escaped twice:\n{xml}");
}

/// launchd reads each argument back exactly, whatever XML's special characters the paths hold.
#[test]
fn launchd_arguments_are_escaped_once() {
    let exe = r#"/Users/o'brien/a "b" <c> & d/devbox"#;
    let job = all_jobs().into_iter().find(|j| j.name == "cleanup").expect("the cleanup job");
    let text = launchd::render(&job, &env(exe)).expect("render");
    let parsed: plist::Value = plist::from_bytes(text.as_bytes()).expect("a valid plist");
    let args = parsed.as_dictionary().and_then(|d| d.get("ProgramArguments")).and_then(|v| v.as_array());
    let args: Vec<&str> = args.expect("arguments").iter().filter_map(|v| v.as_string()).collect();
    assert_eq!(args, env(exe).argv(&job));
    assert_eq!(xml_text(&text, "string"), launchd::label("cleanup"));
}

/// `systemd-analyze verify` accepts the units, on a machine that has it.
#[test]
fn systemd_analyze_verifies_the_units() {
    let Ok(out) = std::process::Command::new("systemd-analyze").arg("--version").output() else {
        println!("systemd-analyze is not installed here: verification not run");
        return;
    };
    assert!(out.status.success());
    let dir = tempfile::tempdir().expect("tempdir");
    // A real executable, as systemd checks that ExecStart's program exists.
    let exe = crate::env::current_exe().expect("exe");
    let job_env = JobEnv { exe, state_dir: dir.path().join("state"), config: None };
    let mut units = Vec::new();
    for job in all_jobs() {
        let (service, timer) = systemd::render(&job, &job_env).expect("render");
        let name = systemd::unit_name(job.name);
        for (ext, text) in [("service", service), ("timer", timer)] {
            let path = dir.path().join(format!("{name}.{ext}"));
            std::fs::write(&path, text).expect("write");
            units.push(path);
        }
    }
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .args(&units)
        .env("SYSTEMD_LOG_LEVEL", "warning")
        .output()
        .expect("run systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Complaints about units devbox did not write (the host's own) are not ours to judge.
    let ours: Vec<&str> = stderr.lines().filter(|l| l.contains("devbox-")).collect();
    println!(
        "systemd-analyze verify ran on {} units: {}",
        units.len(),
        if ours.is_empty() { "accepted" } else { "rejected" }
    );
    assert!(out.status.success() && ours.is_empty(), "systemd-analyze verify rejected the units:\n{stderr}");
}
