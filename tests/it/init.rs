//! `devbox init` and `devbox uninstall` on the real testbed: converging twice with nothing
//! changed, uninstall and init again, team configs from a path, loopback HTTP and moto's S3, the
//! faults (invalid config, 404, engine down, interrupted pull), a TTY session with its prompts
//! answered, and the cron jobs as a test user.
//!
//! Tests run init with `DEVBOX_SCHEDULER=none` (no jobs; nothing near root's crontab), except the
//! cron test, which runs as a throwaway user with its own crontab.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use crate::testbed::tty::{Pty, screen};
use crate::testbed::{Bed, HttpServer, Test, docker_try, hold_port, output_text};

/// `devbox ARGS…` for init tests: this bed, and no OS scheduler.
fn devbox(bed: &Bed, args: &[&str]) -> Test {
    bed.test(args).env("DEVBOX_SCHEDULER", "none")
}

/// Every file under `dir` with its bytes and mtime.
fn files(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, SystemTime)> {
    let mut found = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir").flatten() {
            let path = entry.path();
            let meta = entry.metadata().expect("metadata");
            if meta.is_dir() {
                stack.push(path);
            } else {
                found.insert(path.clone(), (std::fs::read(&path).expect("read"), meta.modified().expect("mtime")));
            }
        }
    }
    found
}

/// A bed whose S3 bucket holds one base image that CI pushed, and a config that names it.
fn bed_with_image(test: &str, bytes: usize) -> (Bed, String) {
    let mut bed = Bed::new(test);
    let ci = bed.ci_registry();
    bed.push_image(ci, "base/tool:1", bytes);
    bed.write_config(&format!("[images]\nbase = [\"base/tool:1\"]\nalias = \"{}/{{name}}\"\n", bed.name));
    let alias = format!("{}/base/tool:1", bed.name);
    bed.remove_image_later(&format!("127.0.0.1:{}/base/tool:1", bed.port));
    bed.remove_image_later(&alias);
    (bed, alias)
}

#[test]
fn init_converges_then_changes_nothing_then_uninstall_and_init_again() {
    let (bed, alias) = bed_with_image("init", 200_000);

    let text = devbox(&bed, &["init", "--yes"])
        .output_has("✓ preflight")
        .output_has(format!("✓ registry  registry {} at http://127.0.0.1:{} created", bed.name, bed.port))
        .output_has("✓ pull      1 updated, 0 unchanged, 0 failed")
        .output_has("= schedules no scheduler here")
        .output_has("this machine is set up: 2 changed")
        .text();
    assert!(doctor_passed(&bed, &text), "{text}");
    let (ok, _) = docker_try(&["image", "inspect", &alias]);
    assert!(ok, "the production alias is there");

    // Again: the same container, the same files with the same mtimes, and it says so.
    let container = bed.container_identity().expect("the registry container");
    let before = files(bed.home.path());
    assert!(before.keys().any(|p| p.ends_with("pulls.json")), "{:?}", before.keys());
    std::thread::sleep(Duration::from_millis(20));
    devbox(&bed, &["init", "--yes"])
        .output_has("= registry")
        .output_has("= pull      0 updated, 1 unchanged")
        .output_has("nothing changed: this machine was already set up")
        .run();
    assert_eq!(bed.container_identity().expect("container"), container, "the container was recreated");
    assert_eq!(files(bed.home.path()), before, "a second init rewrote files");

    // Uninstall: the container and the state go; the config and the volume stay.
    devbox(&bed, &["uninstall", "--yes"])
        .stdout_has(format!("removed registry container {}", bed.name))
        .stdout_has("removed state directory")
        .run();
    assert!(bed.container_identity().is_none());
    assert!(bed.config_path().exists(), "uninstall without --purge keeps the config");
    assert!(!bed.home.path().join(".local/state/devbox").exists());
    devbox(&bed, &["uninstall", "--yes"]).stdout_has("nothing to remove: devbox is not installed here").run();

    // And init again brings it all back.
    devbox(&bed, &["init", "--yes"]).output_has("created").run();
    assert_ne!(bed.container_identity().expect("container"), container, "a new container after uninstall");
}

#[test]
fn uninstall_with_nothing_installed_is_a_no_op_and_asks_without_a_terminal() {
    let bed = Bed::new("uninone");
    let before = files(bed.home.path());
    devbox(&bed, &["uninstall", "--yes"]).stdout_has("nothing to remove: devbox is not installed here").run();
    assert_eq!(files(bed.home.path()), before);

    // Something to remove, no terminal and no --yes: refused, exit 2, nothing removed.
    devbox(&bed, &["registry", "up"]).run();
    devbox(&bed, &["uninstall"]).code(2).stderr_has("pass --yes").run();
    assert!(bed.container_identity().is_some(), "uninstall removed something without --yes");

    // --purge takes the config too.
    devbox(&bed, &["uninstall", "--purge", "--yes"]).run();
    assert!(bed.container_identity().is_none());
    assert!(!bed.config_path().exists());
}

/// Only the steps that concern the config: fast, and enough for --from.
const CONFIG_ONLY: [&str; 10] =
    ["--skip", "registry", "--skip", "pull", "--skip", "clock", "--skip", "schedules", "--skip", "doctor"];

/// `devbox init --yes --from FROM` with only the config steps.
fn init_from(bed: &Bed, from: &str) -> Test {
    let mut args = vec!["init", "--yes", "--from", from];
    args.extend(CONFIG_ONLY);
    devbox(bed, &args)
}

/// A team config that fits this bed, told apart by a comment.
fn team_text(bed: &Bed, tag: &str) -> String {
    let mine = std::fs::read_to_string(bed.config_path()).expect("bed config");
    format!("# the {tag} team's devbox.toml\n{mine}[images]\nconcurrency = 2\n")
}

#[test]
fn init_from_a_path_installs_backs_up_shows_the_diff_and_records_the_source() {
    let bed = Bed::new("initpath");
    let dir = tempfile::tempdir().expect("tempdir");
    let team = dir.path().join("team.toml");
    let team_config = team_text(&bed, "platform");
    std::fs::write(&team, &team_config).expect("write");
    let old = std::fs::read_to_string(bed.config_path()).expect("old");

    // The difference is shown.
    init_from(&bed, team.to_str().expect("utf-8"))
        .output_has("+concurrency = 2")
        .output_has("the old one is kept as")
        .run();
    let installed = std::fs::read_to_string(bed.config_path()).expect("installed");
    assert!(installed.starts_with(&format!("# devbox: team config from {}\n", team.display())), "{installed}");
    assert!(installed.ends_with(&team_config), "{installed}");
    let backups: Vec<_> = std::fs::read_dir(bed.config_path().parent().expect("dir"))
        .expect("read_dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".bak"))
        .collect();
    assert_eq!(backups.len(), 1);
    assert_eq!(std::fs::read_to_string(backups[0].path()).expect("backup"), old);

    devbox(&bed, &["config", "show"])
        .stdout_has(format!("# team config from: {}", team.display()))
        .stdout_has("concurrency = 2")
        .run();

    // The same source again: nothing written.
    let mtime = std::fs::metadata(bed.config_path()).and_then(|m| m.modified()).expect("mtime");
    init_from(&bed, team.to_str().expect("utf-8")).any_code().output_has("= config").run();
    assert_eq!(std::fs::metadata(bed.config_path()).and_then(|m| m.modified()).expect("mtime"), mtime);
}

#[test]
fn init_from_http_and_s3_and_the_faults_write_nothing() {
    let bed = Bed::new("initurl");
    let dir = tempfile::tempdir().expect("tempdir");
    let data_team = team_text(&bed, "data");
    std::fs::write(dir.path().join("team.toml"), team_text(&bed, "web")).expect("write");
    std::fs::write(dir.path().join("bad.toml"), "[registry]\nport = 5000\ncolour = \"blue\"\n").expect("write");
    let server = HttpServer::files(dir.path());
    let base = server.url.clone();
    let unchanged = |bed: &Bed| files(bed.home.path());

    // Each bad source: its exit code, what it says, and nothing written.
    let before = unchanged(&bed);
    let bad_sources: [(String, i32, Vec<String>); 3] = [
        // A 404: named.
        (
            format!("{base}/missing.toml"),
            1,
            vec![
                format!("cannot fetch the team config from {base}/missing.toml: HTTP 404"),
                "Nothing was written".to_string(),
            ],
        ),
        // An invalid config: the source, line, column and key named.
        (format!("{base}/bad.toml"), 2, vec![format!("{base}/bad.toml:3:1: registry.colour: unknown field `colour`")]),
        // Plain http to another machine is refused before any request.
        ("http://example.com/devbox.toml".to_string(), 2, vec![]),
    ];
    for (source, code, says) in bad_sources {
        let mut run = init_from(&bed, &source).code(code);
        for text in says {
            run = run.output_has(text);
        }
        run.run();
        assert_eq!(unchanged(&bed), before, "init --from {source} wrote something");
    }

    // A good one over loopback HTTP.
    init_from(&bed, &format!("{base}/team.toml"))
        .output_has(format!("✓ config    wrote {}", bed.config_path().display()))
        .run();
    devbox(&bed, &["config", "show", "--json"]).stdout_has(format!("\"team_source\": \"{base}/team.toml\"")).run();
    drop(server);

    // From the bed's bucket in moto, read with the S3 settings now in force.
    let key = "teams/devbox.toml";
    let upload = dir.path().join("upload.toml");
    std::fs::write(&upload, &data_team).expect("write");
    let put = Command::new("curl")
        .args(["-s", "-f", "-T", upload.to_str().expect("utf-8"), &format!("{}/{}/{key}", bed.s3_endpoint, bed.bucket)])
        .stdout(Stdio::null())
        .status()
        .expect("curl PUT");
    assert!(put.success(), "uploading to moto failed");
    let source = format!("s3://{}/{key}", bed.bucket);
    init_from(&bed, &source).output_has("-# the web team's devbox.toml").run();
    let installed = std::fs::read_to_string(bed.config_path()).expect("config");
    assert!(installed.starts_with(&format!("# devbox: team config from {source}\n")), "{installed}");
    assert!(installed.contains("# the data team's devbox.toml"), "{installed}");

    // A key that is not there.
    let before = unchanged(&bed);
    init_from(&bed, &format!("s3://{}/teams/nope.toml", bed.bucket)).code(1).output_has("HTTP 404").run();
    assert_eq!(unchanged(&bed), before);
}

#[test]
fn init_with_the_engine_down_stops_at_preflight_and_changes_nothing() {
    let bed = Bed::new("initdown");
    let dir = tempfile::tempdir().expect("tempdir");
    let team = dir.path().join("team.toml");
    std::fs::write(&team, team_text(&bed, "ops")).expect("write");
    let before = files(bed.home.path());
    devbox(&bed, &["init", "--yes", "--from", team.to_str().expect("utf-8")])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .code(1)
        .output_has("✗ preflight Docker engine not reachable")
        .output_has("- config    not run: preflight failed")
        .output_has("- doctor    not run: preflight failed")
        .output_has("init stopped")
        .run();
    assert_eq!(files(bed.home.path()), before, "init changed files with the engine down");
    assert!(bed.container_identity().is_none());
}

#[test]
fn an_init_interrupted_during_the_pull_finishes_when_run_again() {
    use std::io::BufRead;
    let (bed, alias) = bed_with_image("initint", 30_000_000);
    let mut child = bed
        .devbox_std(&["init", "--yes"])
        .env("DEVBOX_SCHEDULER", "none")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start init");
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        assert!(stdout.read_line(&mut line).expect("read") > 0, "init ended before its pull: {seen}");
        seen.push_str(&line);
        // The registry's line is printed as the pull starts: interrupt at once. A 30 MB pull from
        // the local registry can finish in 0.3 s, so any wait here races it (a soak caught one).
        if line.contains("registry  registry") {
            break;
        }
    }
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).expect("read");
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{seen}{rest}{stderr}");
    assert!(rest.contains("✗ pull      interrupted"), "{rest}");
    assert!(!rest.contains("schedules"), "init went on after Ctrl-C: {rest}");
    assert!(stderr.contains("Run the same command again to finish"), "{stderr}");
    let (aliased, _) = docker_try(&["image", "inspect", &alias]);
    assert!(!aliased, "an interrupted pull tagged the alias");

    devbox(&bed, &["init", "--yes"]).output_has("= registry").output_has("✓ pull      1 updated").run();
    let (aliased, _) = docker_try(&["image", "inspect", &alias]);
    assert!(aliased, "the re-run finished the pull");
}

#[test]
fn init_schedules_and_uninstall_with_real_cron_as_a_test_user() {
    let user = crate::schedule::TestUser::new("init");
    let theirs = "# mine\n0 3 * * * /bin/true\n";
    let planted = user.run(None, "crontab", &["-"], Some(theirs));
    assert!(planted.status.success(), "{}", output_text(&planted));
    // No engine for this user: only the steps that need none.
    let args = ["init", "--yes", "--skip", "preflight", "--skip", "registry", "--skip", "pull", "--skip", "clock"];
    let args: Vec<&str> = args.iter().copied().chain(["--skip", "doctor"]).collect();
    user.test(&args).output_has("✓ schedules cron: installed or updated cleanup, refresh").run();
    let crontab = user.crontab();
    assert!(crontab.starts_with(theirs) && crontab.contains("--scheduled-job cleanup"), "{crontab}");

    user.test(&args)
        .any_code()
        .output_has("= schedules jobs already in cron: cleanup, refresh")
        .output_has("nothing changed")
        .run();
    assert_eq!(user.crontab(), crontab);
    // doctor reads the same crontab, once for every job.
    user.test(&["doctor", "--check", "schedules"]).output_has("✓ schedules").run();

    let removed = user
        .test(&["uninstall", "--yes"])
        .any_code()
        .output_has("removed scheduled jobs in cron: cleanup, refresh")
        .run();
    let text = output_text(&removed);
    assert!(removed.status.success() || text.contains("cannot check the registry container"), "{text}");
    assert_eq!(user.crontab(), theirs, "uninstall did not leave the user's crontab as it was");
    user.test(&["doctor", "--check", "schedules"])
        .output_has("! schedules          not installed in cron: cleanup, refresh")
        .run();
}

#[test]
fn init_on_a_terminal_asks_for_what_is_missing() {
    let bed = Bed::new("inittty");
    // The port devbox would use is taken, and no bucket is set: both are asked.
    let holder = hold_port(bed.port);
    bed.write_raw_config(&format!(
        "[registry]\nimage = \"{}\"\npull = \"never\"\ncontainer = \"{}\"\nport = {}\n\
         [registry.s3]\nendpoint = \"{}\"\npath_style = true\n",
        crate::testbed::registry_image_pinned(),
        bed.name,
        bed.port,
        bed.s3_endpoint
    ));
    let aws = bed.home.path().join(".aws");
    std::fs::create_dir_all(&aws).expect("mkdir");
    std::fs::write(aws.join("config"), "[default]\nregion = us-east-1\n[profile devbox]\n[profile team]\n")
        .expect("write");

    let mut pty = Pty::spawn(&bed, &["init"]);
    pty.answer("S3 bucket of the team's registry", &format!("{}\r", bed.bucket));
    pty.answer("The bucket's AWS region", "\r");
    pty.answer("AWS profile for the bucket", "\u{1b}[B\r");
    pty.answer("the registry's port", "\r");
    let (code, raw) = pty.finish();
    drop(holder);
    let seen = screen(&raw);
    assert_eq!(code, Some(0), "{seen}");
    assert!(doctor_passed(&bed, &seen), "{seen}");

    let config = std::fs::read_to_string(bed.config_path()).expect("config");
    assert!(config.contains(&format!("bucket = \"{}\"", bed.bucket)), "{config}");
    assert!(config.contains("profile = \"team\""), "{config}");
    assert!(!config.contains(&format!("port = {}\n", bed.port)), "the busy port was kept: {config}");

    let mut settings = insta::Settings::clone_current();
    // The bed's container and bucket share one name.
    settings.add_filter(r"Docker \S+ at \S+;", "Docker [VERSION] at [ENGINE];");
    settings.add_filter(r"shares this host's clock \(.*\)", "shares this host's clock (…)");
    settings.add_filter(r"\d+ ms\b", "[N] ms");
    // Held by `doctor_passed` above: every check passed, or the one warning this machine's disk gives.
    settings.add_filter(r"✓ doctor    (all 12 checks passed|1 warning)", "✓ doctor    [PASSED]");
    settings.add_filter(r"devbox\.toml\.\d{8}T\d{6}Z\.bak", "devbox.toml.[STAMP].bak");
    settings.add_filter(&regex_escape(&bed.name), "[BED]");
    // The testbed image's digest is this machine's own (made by `docker import`).
    settings.add_filter(&regex_escape(crate::testbed::registry_image_pinned()), "[REGISTRY_IMAGE]");
    settings.add_filter(&regex_escape(&bed.home.path().display().to_string()), "[HOME]");
    settings.add_filter(&regex_escape(&bed.s3_endpoint), "[S3]");
    settings.add_filter(&format!(r"\b{}\b", bed.port), "[BUSY_PORT]");
    // What is left is the free port devbox suggested, and the user took.
    settings.add_filter(r"\b\d{4,5}\b", "[NEW_PORT]");
    settings.bind(|| insta::assert_snapshot!("init_tty_session", seen));
}

/// Whether init's doctor step passed every check, but for the one warning this machine's own disk
/// may give: the disk check judges the machine, which the testbed does not control.
fn doctor_passed(bed: &Bed, text: &str) -> bool {
    if text.contains("✓ doctor    all ") {
        return true;
    }
    let report = bed.test(&["doctor", "--json", "--check", "disk"]).any_code().json();
    let disk_warns =
        report["checks"].as_array().is_some_and(|c| c.iter().any(|c| c["id"] == "disk" && c["status"] == "warn"));
    disk_warns && text.contains("✓ doctor    1 warning\n")
}

fn regex_escape(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_alphanumeric() || c == ' ' { c.to_string() } else { format!("\\{c}") }).collect()
}

#[test]
fn a_dry_run_changes_nothing_and_a_busy_port_without_a_terminal_names_the_flag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bed = Bed::new("initdry");
    let team = dir.path().join("team.toml");
    std::fs::write(&team, format!("{}[fleet]\nreport = true\n", team_text(&bed, "qa"))).expect("write");
    let before = files(bed.home.path());
    devbox(&bed, &["init", "--dry-run", "--from", team.to_str().expect("utf-8")])
        .output_has("✓ config    would write")
        // The fleet line tells of the config the run would write, not of the file as it is.
        .output_has("fleet: this machine reports its doctor results daily")
        // The diff is shown.
        .output_has("+# the qa team's devbox.toml")
        .output_has(format!("✓ registry  would create registry {}", bed.name))
        .output_has("dry run: 2 would change")
        .output_has("Nothing was changed.")
        .run();
    assert_eq!(files(bed.home.path()), before, "a dry run wrote files");
    assert!(bed.container_identity().is_none(), "a dry run made a container");

    // The port is held by another process and there is no one to ask: exit 2, named, nothing done.
    let holder = hold_port(bed.port);
    devbox(&bed, &["init", "--yes"])
        .code(2)
        .output_has(format!("registry.port: port {} on 127.0.0.1 is in use", bed.port))
        .output_has("Pass --port")
        .output_has("- registry  not run: preflight failed")
        .run();
    drop(holder);
    assert_eq!(files(bed.home.path()), before);
    assert!(bed.container_identity().is_none());
}
