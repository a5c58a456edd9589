//! Runs that overlap, runs that are killed, and files that cannot be written, against the real
//! engine: one registry lifecycle under one lock (`registry::Service`, `lock.rs`), containers
//! removed by ID, and files written whole or not at all (`paths::write_atomic`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use crate::testbed::{Bed, REGISTRY_IMAGE, docker, output_text, poll_until, wait_until};

/// The bed's config, with the registry's PIDs limit set: a change that makes `registry up`
/// recreate the container and keeps what it serves (the same bucket and root).
fn config_with_pids(bed: &Bed, pids_limit: u32, extra: &str) {
    bed.write_raw_config(&format!(
        "[registry]\nimage = \"{REGISTRY_IMAGE}\"\npull = \"never\"\ncontainer = \"{}\"\nport = {}\npids_limit = {pids_limit}\n\
         [registry.s3]\nbucket = \"{}\"\nendpoint = \"{}\"\npath_style = true\n{extra}",
        bed.name, bed.port, bed.bucket, bed.s3_endpoint
    ));
}

fn state_dir(bed: &Bed) -> PathBuf {
    bed.home.path().join(".local/state/devbox")
}

/// Starts `devbox ARGS` in the background, its output piped.
fn spawn(bed: &Bed, args: &[&str], env: &[(&str, &str)]) -> Child {
    let mut cmd = bed.devbox_std(args);
    for (key, value) in env {
        cmd.env(key, value);
    }
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start devbox")
}

/// Every devbox registry container on the engine that serves this bed's port, running or not.
fn registry_containers(bed: &Bed) -> Vec<String> {
    let listed = docker(&["ps", "-a", "--filter", "label=devbox.role=registry", "--format", "{{.ID}} {{.Ports}}"]);
    let port = format!("127.0.0.1:{}->", bed.port);
    listed.lines().filter(|line| line.contains(&port)).map(|line| line.to_string()).collect()
}

/// The config hash that `registry status --json` says is current, and whether it is running.
fn status(bed: &Bed) -> serde_json::Value {
    let out = bed.test(&["registry", "status", "--json"]).any_code().run();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", output_text(&out)))
}

fn assert_one_current_registry(bed: &Bed) {
    let status = status(bed);
    assert_eq!(status["state"], "running", "{status}");
    assert_eq!(status["healthy"], true, "{status}");
    assert_eq!(status["config_current"], true, "{status}");
    let containers = registry_containers(bed);
    assert_eq!(containers.len(), 1, "one registry container, not {containers:?}");
}

fn finished(child: Child) -> Output {
    child.wait_with_output().expect("wait for devbox")
}

#[test]
fn six_commands_at_once_leave_one_running_registry_and_all_succeed() {
    let mut bed = Bed::new("sixatonce");
    let ci = bed.ci_registry();
    bed.push_image(ci, "base/python:3.12", 100_000);
    let images = format!("[images]\nbase = [\"base/python:3.12\"]\nalias = \"{}/{{name}}\"\n", bed.name);
    config_with_pids(&bed, 256, &images);
    bed.test(&["registry", "up"]).run();
    bed.test(&["pull"]).run();
    // A changed config, so that the first `up` to run recreates the container under the others.
    config_with_pids(&bed, 300, &images);

    let doctor = crate::doctor::doctor(&["--fix", "--yes"]);
    let runs: Vec<Vec<&str>> = vec![
        vec!["registry", "up"],
        vec!["registry", "up"],
        vec!["registry", "renew"],
        vec!["registry", "renew"],
        vec!["pull"],
        doctor,
    ];
    let children: Vec<(String, Child)> =
        runs.iter().map(|args| (args.join(" "), spawn(&bed, args, &[("DEVBOX_SCHEDULER", "none")]))).collect();
    let mut recreated = 0;
    for (what, child) in children {
        let out = finished(child);
        let text = output_text(&out);
        assert_eq!(out.status.code(), Some(0), "devbox {what} failed:\n{text}");
        recreated += text.matches("recreated: the configuration changed").count();
    }
    assert_eq!(recreated, 1, "exactly one run recreated the registry");
    assert_one_current_registry(&bed);
    bed.test(&["registry", "up"]).stdout_has("is already up").run();
}

#[test]
fn four_ups_recreating_at_once_leave_one_container_with_the_new_config() {
    let bed = Bed::new("fourups");
    config_with_pids(&bed, 256, "");
    bed.test(&["registry", "up"]).run();
    let first = bed.container_identity().expect("a container");
    config_with_pids(&bed, 300, "");

    let children: Vec<Child> = (0..4).map(|_| spawn(&bed, &["registry", "up"], &[])).collect();
    let texts: Vec<String> = children
        .into_iter()
        .map(|child| {
            let out = finished(child);
            let text = output_text(&out);
            assert_eq!(out.status.code(), Some(0), "{text}");
            text
        })
        .collect();
    let recreated = texts.iter().filter(|t| t.contains("recreated: the configuration changed")).count();
    let unchanged = texts.iter().filter(|t| t.contains("is already up")).count();
    assert_eq!((recreated, unchanged), (1, 3), "{texts:#?}");
    assert_one_current_registry(&bed);
    assert_ne!(bed.container_identity().map(|c| c.0), Some(first.0));
    let pids = docker(&["inspect", "--format", "{{.HostConfig.PidsLimit}}", &bed.name]);
    assert_eq!(pids, "300");
}

/// Starts `registry up` for a changed config (`pids_limit`), and kills it (SIGKILL) as soon as
/// `now` holds of the container (`None`: gone) compared with the one before (`old`). Returns what
/// was seen then.
fn kill_recreate_when(bed: &Bed, pids_limit: u32, now: impl Fn(Option<&str>, &str) -> bool) -> String {
    let (old, _) = bed.container_identity().expect("a container");
    config_with_pids(bed, pids_limit, "");
    let mut child = spawn(bed, &["registry", "up"], &[]);
    let mut seen = String::new();
    let caught = poll_until(Duration::from_secs(60), Duration::from_millis(5), || {
        let out = bed.engine_docker(&["inspect", "--format", "{{.Id}} {{.State.Status}}", &bed.name]);
        seen = String::from_utf8_lossy(&out.stdout).trim().to_string();
        now(out.status.success().then_some(seen.as_str()), &old)
    });
    child.kill().expect("SIGKILL");
    let out = finished(child);
    assert!(caught, "the recreate never reached that point; last seen {seen:?}: {}", output_text(&out));
    println!("killed at {seen:?}");
    seen
}

#[test]
fn a_run_killed_in_the_middle_of_a_recreate_is_finished_by_the_next() {
    let bed = Bed::new("killed");
    config_with_pids(&bed, 256, "");
    bed.test(&["registry", "up"]).run();

    // As soon as the old container is gone: mostly between taking it away and making the new one
    // (the engine may still carry out the killed run's request to make it after the next run has
    // looked), else just after.
    kill_recreate_when(&bed, 300, |now, old| now.is_none_or(|now| !now.starts_with(old)));
    bed.test(&["registry", "up"]).run();
    assert_one_current_registry(&bed);

    // Once the new container exists: made, and perhaps not yet handed its config or started.
    kill_recreate_when(&bed, 320, |now, old| now.is_some_and(|now| !now.starts_with(old)));
    bed.test(&["registry", "up"]).run();
    assert_one_current_registry(&bed);
    bed.test(&["registry", "up"]).stdout_has("is already up").run();
    assert_eq!(docker(&["inspect", "--format", "{{.HostConfig.PidsLimit}}", &bed.name]), "320");
}

/// A tmpfs of `kib` KiB mounted on `dir`, unmounted when dropped (the test's failure included).
struct SmallDisk {
    dir: PathBuf,
}

impl SmallDisk {
    fn mount(dir: &Path, kib: u32) -> SmallDisk {
        std::fs::create_dir_all(dir).expect("mkdir");
        let size = format!("size={kib}k");
        let out = Command::new("mount").args(["-t", "tmpfs", "-o", &size, "tmpfs"]).arg(dir).output().expect("mount");
        assert!(out.status.success(), "mount a tmpfs on {dir:?} (the tests run as root): {}", output_text(&out));
        SmallDisk { dir: dir.to_path_buf() }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).output();
    }
}

#[test]
fn a_config_that_does_not_fit_on_the_disk_leaves_the_old_one_and_no_temporary_file() {
    let bed = Bed::new("diskfull");
    let config_dir = bed.config_path().parent().expect("config dir").to_path_buf();
    let old = std::fs::read(bed.config_path()).expect("the bed's config");
    // 16 KiB: room for the old file and its backup, not for a team config of 12 KiB.
    let disk = SmallDisk::mount(&config_dir, 16);
    std::fs::write(bed.config_path(), &old).expect("config on the small disk");
    let team = bed.home.path().join("team.toml");
    let padding = format!("# {}\n", "padding ".repeat(60)).repeat(30);
    std::fs::write(&team, format!("{}{padding}", String::from_utf8_lossy(&old))).expect("team config");
    assert!(std::fs::metadata(&team).expect("size").len() > 12 * 1024);

    let skip = ["--skip", "registry", "--skip", "pull", "--skip", "clock", "--skip", "schedules", "--skip", "doctor"];
    let mut args = vec!["init", "--yes", "--from", team.to_str().expect("utf-8")];
    args.extend_from_slice(&skip);
    bed.test(&args)
        .env("DEVBOX_SCHEDULER", "none")
        .code(1)
        .output_has(format!("cannot write {}", bed.config_path().display()))
        .output_has("No space left on device")
        .run();
    assert_eq!(std::fs::read(bed.config_path()).expect("read"), old, "the old config is intact");
    let left: Vec<String> = std::fs::read_dir(&config_dir)
        .expect("list")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|name| name.contains(".tmp."))
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
    drop(disk);
}

#[test]
fn a_truncated_machine_id_is_an_error_that_names_the_file_and_the_fix() {
    let bed = Bed::new("machineid");
    config_with_pids(&bed, 256, "[fleet]\nreport = true\n");
    let path = state_dir(&bed).join("machine-id");
    std::fs::create_dir_all(state_dir(&bed)).expect("mkdir");
    std::fs::write(&path, "0123abcd").expect("a truncated id");
    bed.test(&["doctor", "--check", "config", "--report"])
        .stderr_has(format!("this machine's fleet ID in {} is damaged", path.display()))
        .stderr_has("8 characters, not the 32 hex digits")
        .stderr_has(format!("remove {}", path.display()))
        .run();
    assert_eq!(std::fs::read_to_string(&path).expect("read"), "0123abcd", "never made again silently");
}

#[test]
fn a_damaged_lease_label_is_an_error_for_renew_and_up_makes_the_registry_again() {
    let bed = Bed::new("lease");
    docker(&[
        "create",
        "--name",
        &bed.name,
        "--label",
        "devbox.managed=true",
        "--label",
        "devbox.role=registry",
        "--label",
        "devbox.credentials-expiry=2026-12-0",
        REGISTRY_IMAGE,
    ]);
    bed.test(&["registry", "renew"])
        .code(1)
        .stderr_has(format!(
            "the registry's credentials lease in label devbox.credentials-expiry of container {} is damaged",
            bed.name
        ))
        .stderr_has("Run `devbox registry up`")
        .run();
    bed.test(&["registry", "up"]).stdout_has("recreated").run();
    assert_one_current_registry(&bed);
}

/// Whether `pid` holds the lock, by the line it writes beside it.
fn holds_lock(bed: &Bed, pid: u32) -> bool {
    std::fs::read_to_string(state_dir(bed).join("devbox.lock.holder"))
        .is_ok_and(|text| text.starts_with(&format!("{pid} ")))
}

#[test]
fn a_second_run_waits_for_the_lock_and_says_for_whom_and_a_quiet_one_gives_up() {
    let bed = Bed::new("lockwait");
    config_with_pids(&bed, 256, "");
    // A real holder: `registry up`, stopped (SIGSTOP) while it holds the lock.
    let holder = spawn(&bed, &["registry", "up"], &[]);
    let pid = holder.id();
    wait_until("registry up to take the lock", Duration::from_secs(60), || holds_lock(&bed, pid));
    let stopped = Command::new("kill").args(["-STOP", &pid.to_string()]).status().expect("kill -STOP");
    assert!(stopped.success());

    // Read-only commands never wait.
    bed.test(&["registry", "status"]).any_code().timeout(Duration::from_secs(20)).run();
    bed.test(&["doctor", "--check", "config"]).timeout(Duration::from_secs(20)).run();
    // Nor does the scheduled clock job when there is nothing to set (a native engine).
    bed.test(&["--quiet", "clock", "sync", "--if-skewed"])
        .env("DEVBOX_LOCK_WAIT", "1s")
        .timeout(Duration::from_secs(20))
        .output_lacks("another devbox run holds the lock")
        .run();

    // A run on its own waits, and says once for whom.
    let mut waiter = spawn(&bed, &["registry", "renew"], &[]);
    let mut stderr = BufReader::new(waiter.stderr.take().expect("stderr"));
    let mut line = String::new();
    stderr.read_line(&mut line).expect("read the waiting line");
    assert!(line.contains(&format!("waiting for the lock held by PID {pid} (`devbox registry up`)")), "{line:?}");

    // A quiet one waits up to its bound, then fails naming the holder.
    bed.test(&["--quiet", "registry", "renew"])
        .env("DEVBOX_LOCK_WAIT", "1s")
        .code(1)
        .stderr_has(format!("another devbox run holds the lock {}", state_dir(&bed).join("devbox.lock").display()))
        .stderr_has(format!("PID {pid} (`devbox registry up`)"))
        .stderr_has("gave up after waiting 1s")
        .run();

    // The holder goes on; then the waiter does.
    let resumed = Command::new("kill").args(["-CONT", &pid.to_string()]).status().expect("kill -CONT");
    assert!(resumed.success());
    let out = holder.wait_with_output().expect("the holder");
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let status = waiter.wait().expect("the waiter");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).expect("rest");
    assert!(status.success(), "the waiter failed: {rest}");
    assert!(!rest.contains("waiting for the lock"), "said once: {rest}");

    // A holder killed outright: the OS releases its lock, and the next run takes it at once.
    config_with_pids(&bed, 300, "");
    let mut killed = spawn(&bed, &["registry", "up"], &[]);
    let pid = killed.id();
    wait_until("registry up to take the lock", Duration::from_secs(60), || holds_lock(&bed, pid));
    killed.kill().expect("SIGKILL");
    let _ = killed.wait();
    bed.test(&["--quiet", "registry", "up"]).env("DEVBOX_LOCK_WAIT", "0s").run();
    assert_one_current_registry(&bed);
}
