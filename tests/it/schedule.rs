//! `devbox schedule` with the real `crontab` from Debian's cron, as a test user made for the test.
//! Root's own crontab is never touched.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::testbed::{Test, output_text, write_executable};

/// A throwaway user with its own home; deleted with its crontab when the test ends. `init.rs`
/// uses it too.
pub struct TestUser {
    pub name: String,
    pub home: PathBuf,
    pub bin: PathBuf,
}

impl TestUser {
    pub fn new(tag: &str) -> TestUser {
        let uid = Command::new("id").arg("-u").output().expect("id");
        assert_eq!(
            String::from_utf8_lossy(&uid.stdout).trim(),
            "0",
            "the cron round trip makes a test user (useradd) and so must run as root, as CI does"
        );
        assert!(
            Command::new("sh").args(["-c", "command -v crontab"]).status().expect("sh").success(),
            "`crontab` is missing: run `sh tests/testbed/up.sh` (it installs Debian's cron)"
        );
        let name = format!("dbx{tag}{}", std::process::id() % 100_000);
        let home = PathBuf::from(format!("/tmp/{name}-home"));
        let out = Command::new("useradd")
            .args(["--create-home", "--home-dir", home.to_str().expect("utf-8"), "--shell", "/bin/sh", &name])
            .output()
            .expect("useradd");
        assert!(out.status.success(), "useradd failed: {}", String::from_utf8_lossy(&out.stderr));
        // The binary, somewhere the user may run it from.
        let bin = home.join("bin/devbox");
        std::fs::create_dir_all(bin.parent().expect("parent")).expect("mkdir");
        crate::testbed::copy_executable(env!("CARGO_BIN_EXE_devbox").as_ref(), &bin);
        let chown = Command::new("chown").args(["-R", &format!("{name}:"), home.to_str().expect("utf-8")]).status();
        assert!(chown.expect("chown").success());
        TestUser { name, home, bin }
    }

    /// `program args…` as this user, with its own HOME and `extra_path` first on PATH.
    fn command(&self, extra_path: Option<&Path>, program: &str, args: &[&str]) -> Command {
        let path = match extra_path {
            Some(dir) => format!("{}:/usr/local/bin:/usr/bin:/bin", dir.display()),
            None => "/usr/local/bin:/usr/bin:/bin".into(),
        };
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", &self.name, "--", "env", "-i"])
            .arg(format!("HOME={}", self.home.display()))
            .arg(format!("PATH={path}"))
            .arg(format!("USER={}", self.name))
            .args(["NO_COLOR=1", "DOCKER_HOST=unix:///nonexistent/docker.sock", program])
            .args(args);
        cmd
    }

    /// Runs `program args…` as this user (see `command`), with `stdin` as its input.
    pub fn run(&self, extra_path: Option<&Path>, program: &str, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = self.command(extra_path, program, args);
        match stdin {
            None => cmd.output().expect("runuser"),
            Some(text) => {
                use std::io::Write;
                let mut child = cmd
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("runuser");
                child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write");
                child.wait_with_output().expect("wait")
            }
        }
    }

    /// `devbox ARGS` as this user, as a sentence of expectations: see `Test`.
    pub fn test(&self, args: &[&str]) -> Test {
        self.test_with_path(None, args)
    }

    /// The same, with `extra_path` first on PATH (fake tools).
    pub fn test_with_path(&self, extra_path: Option<&Path>, args: &[&str]) -> Test {
        let cmd = self.command(extra_path, self.bin.to_str().expect("utf-8"), args);
        Test::new(assert_cmd::Command::from_std(cmd))
    }

    pub fn crontab(&self) -> String {
        let out = self.run(None, "crontab", &["-l"], None);
        String::from_utf8(out.stdout).expect("utf-8")
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = Command::new("crontab").args(["-r", "-u", &self.name]).output();
        let _ = Command::new("userdel").args(["-r", &self.name]).output();
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

const THEIRS: &str = "MAILTO=\"\"\n# nightly backup, keep exactly as is\n0 3 * * *  /usr/local/bin/backup --all   # trailing spaces   \n@reboot echo hi\n";

#[test]
fn cron_round_trip_keeps_other_lines_byte_for_byte() {
    let user = TestUser::new("cron");
    let planted = user.run(None, "crontab", &["-"], Some(THEIRS));
    assert!(planted.status.success(), "{}", output_text(&planted));
    assert_eq!(user.crontab(), THEIRS);

    user.test(&["schedule", "install", "--backend", "cron"]).output_has("cleanup job installed (crontab)").run();
    let crontab = user.crontab();
    assert!(crontab.starts_with(THEIRS), "the user's lines changed:\n{crontab}");
    let job_line = crontab.lines().find(|l| l.contains("--scheduled-job cleanup")).expect("the cleanup line");
    assert!(job_line.starts_with("17 12 * * * "), "{job_line}");
    assert!(job_line.contains(&format!("{} --scheduled-job cleanup cleanup --quiet", user.bin.display())));

    // Installing again changes nothing.
    user.test(&["schedule", "install", "--backend", "cron"])
        .any_code()
        .output_has("cleanup job already installed")
        .run();
    assert_eq!(user.crontab(), crontab);

    // Status before any run, then run the job's own command as cron would, then status again.
    user.test(&["schedule", "status", "--backend", "cron"])
        .any_code()
        .output_has("cleanup: installed in cron, next run 20")
        .output_has("never run")
        .run();
    let command = job_line.splitn(6, ' ').nth(5).expect("the command part");
    let ran = user.run(None, "sh", &["-c", command], None);
    assert!(!ran.status.success(), "cleanup cannot reach an engine here, so the run fails");
    let log = std::fs::read_to_string(user.home.join(".local/state/devbox/logs/cleanup.log")).expect("the job's log");
    assert!(log.contains("Docker engine not reachable"), "{log}");
    let report = user.test(&["schedule", "status", "--backend", "cron", "--json"]).any_code().json();
    let cleanup = &report[0];
    assert_eq!(cleanup["job"], "cleanup");
    assert_eq!(cleanup["installed"], true);
    assert_eq!(cleanup["last_run"]["outcome"], "failure");
    assert_eq!(cleanup["last_run"]["exit_code"], 1);
    assert!(cleanup["next_run"].is_string());

    // A crontab binary that fails: a clear error, exit 1, the user's crontab untouched.
    let fake = user.home.join("fake-bin");
    std::fs::create_dir_all(&fake).expect("mkdir");
    write_executable(&fake.join("crontab"), b"#!/bin/sh\necho 'crontab: simulated failure' >&2\nexit 3\n");
    Command::new("chmod").args(["-R", "a+rx", fake.to_str().expect("utf-8")]).status().expect("chmod");
    user.test_with_path(Some(&fake), &["schedule", "remove", "--backend", "cron"])
        .code(1)
        .output_has("the scheduler backend cron failed")
        .output_has("simulated failure")
        .run();
    // One that reads but refuses to write.
    write_executable(
        &fake.join("crontab"),
        b"#!/bin/sh\nif [ \"$1\" = -l ]; then exec /usr/bin/crontab -l; fi\necho 'crontab: disk full' >&2\nexit 1\n",
    );
    user.test_with_path(Some(&fake), &["schedule", "remove", "--backend", "cron"])
        .code(1)
        .output_has("disk full")
        .run();
    assert_eq!(user.crontab(), crontab, "a failed write changed the crontab");

    // Remove takes out exactly what install put in.
    user.test(&["schedule", "remove", "--backend", "cron"]).run();
    assert_eq!(user.crontab(), THEIRS, "the crontab is not byte for byte what the user had");
    user.test(&["schedule", "status", "--backend", "cron"])
        .any_code()
        .output_has("cleanup: not installed in cron")
        .run();
}

#[test]
fn a_user_without_a_crontab_has_none_after_install_and_remove() {
    let user = TestUser::new("cronnone");
    user.test(&["schedule", "install", "--backend", "cron"]).run();
    assert!(user.crontab().contains("--scheduled-job cleanup"));
    user.test(&["schedule", "remove", "--backend", "cron"]).run();
    let listed = user.run(None, "crontab", &["-l"], None);
    assert!(!listed.status.success() && output_text(&listed).contains("no crontab for"), "{}", output_text(&listed));
}
