//! `devbox schedule --backend systemd` for real, in the testbed's VM (Debian 12, systemd as PID 1;
//! this host runs no systemd): a test user with lingering on, so that its own `systemd --user`
//! manager runs with no one logged in, as on a laptop; `schedule install` there, the timers as
//! systemd lists them, one job's service started by systemd (it runs devbox, which writes its log
//! and its run record), and `schedule remove` leaving no unit file, no timer and no unit in
//! systemd's memory. The user goes at the end, even when the test fails.
//!
//! The VM runs under software emulation on some machines: every step gets minutes, not seconds.

use std::process::{Command, Output};
use std::time::Duration;

use crate::testbed::{Test, output_text, poll_until};
use crate::vm_bed::{repo, vm_lock, vm_sh};

/// What a command in the VM may take: under TCG a debug devbox starts in seconds, not milliseconds.
const IN_VM: Duration = Duration::from_secs(300);

/// The prefix of the test users' names, so that one left by a killed run is found and removed.
const PREFIX: &str = "dbxsd";

/// `script`, run with sh as root in the VM (fed on its input: no quoting through ssh), as a `Test`.
fn vm_script(script: &str) -> Test {
    let mut cmd = Command::new("sh");
    cmd.arg(repo().join("tests/testbed/vm/vm.sh")).args(["ssh", "sh", "-s"]);
    let mut cmd = assert_cmd::Command::from_std(cmd);
    cmd.write_stdin(script);
    Test::new(cmd).timeout(IN_VM)
}

/// `script` as root in the VM, whatever its exit code.
fn vm_root(script: &str) -> Output {
    vm_script(script).any_code().run()
}

/// Where the test puts its drop-ins for the user's runtime directory and manager (see
/// `VmUser::new`).
const DROP_IN: &str = "/run/systemd/system/user-runtime-dir@$uid.service.d";
const MANAGER_DROP_IN: &str = "/run/systemd/system/user@$uid.service.d";

/// The shell lines that remove test user `name` from the VM: its manager, its runtime directory's
/// drop-in, its lingering and its home.
fn remove_user(name: &str) -> String {
    format!(
        "if uid=$(id -u {name} 2>/dev/null); then\n\
         loginctl disable-linger {name} 2>/dev/null; rm -f /var/lib/systemd/linger/{name}\n\
         systemctl stop user@$uid.service user-runtime-dir@$uid.service\n\
         systemctl reset-failed user@$uid.service user-runtime-dir@$uid.service 2>/dev/null\n\
         rm -rf {DROP_IN} {MANAGER_DROP_IN} && systemctl daemon-reload\n\
         userdel --remove {name} 2>/dev/null; rm -rf /home/{name}\n\
         fi\n"
    )
}

/// A user in the VM with lingering on and devbox in its home; removed on drop.
struct VmUser {
    name: String,
    uid: String,
}

impl VmUser {
    fn new() -> VmUser {
        let name = format!("{PREFIX}{}", std::process::id() % 100_000);
        // Users left by a run that was killed before its drop go first.
        let old = vm_root(&format!("awk -F: '/^{PREFIX}[0-9]+:/ {{ print $1 }}' /etc/passwd"));
        let leftovers: String = String::from_utf8_lossy(&old.stdout).lines().map(remove_user).collect();
        let out = vm_root(&format!("{leftovers}useradd --create-home --shell /bin/sh {name} && id -u {name}"));
        assert!(out.status.success(), "useradd in the VM: {}", output_text(&out));
        // From here on, the user is removed whatever happens.
        let user = VmUser { name, uid: String::from_utf8_lossy(&out.stdout).trim().to_string() };
        // Lingering, as `loginctl enable-linger` records it; then the user's manager, started as
        // logind starts it at boot for a lingering user. The testbed's VM has no D-Bus, hence no
        // logind and no pam_systemd: `systemd-user-runtime-dir` (which asks logind) cannot make
        // the user's runtime directory, and nothing sets XDG_RUNTIME_DIR. Two drop-ins do that
        // instead; the manager itself is the real `user@.service`.
        vm_script(&format!(
            "set -e\n\
             loginctl enable-linger {name} 2>/dev/null || {{ mkdir -p /var/lib/systemd/linger; touch /var/lib/systemd/linger/{name}; }}\n\
             uid={uid}\n\
             mkdir -p {DROP_IN}\n\
             printf '%s\\n' '[Service]' 'ExecStart=' 'ExecStart=/usr/bin/install -d -m 0700 -o {name} -g {name} /run/user/{uid}' \
               'ExecStop=' 'ExecStop=/bin/rm -rf /run/user/{uid}' >{DROP_IN}/devbox-test.conf\n\
             mkdir -p {MANAGER_DROP_IN}\n\
             printf '%s\\n' '[Service]' 'Environment=XDG_RUNTIME_DIR=/run/user/{uid}' >{MANAGER_DROP_IN}/devbox-test.conf\n\
             systemctl daemon-reload\n\
             systemctl start user@{uid}.service\n",
            name = user.name,
            uid = user.uid
        ))
        .run();
        // The manager answers once its private socket is up.
        let ready = poll_until(IN_VM, Duration::from_secs(2), || {
            let out = user.sh("systemctl --user is-system-running");
            matches!(String::from_utf8_lossy(&out.stdout).trim(), "running" | "degraded")
        });
        let state = output_text(&vm_root(&format!("systemctl status --no-pager user@{}.service", user.uid)));
        assert!(ready, "the user's systemd manager did not start within {IN_VM:?}:\n{state}");
        user.copy_devbox();
        user
    }

    fn home(&self) -> String {
        format!("/home/{}", self.name)
    }

    /// This build's devbox, into the user's home (the VM runs Debian 12, as this host does).
    /// Without its debug info: through ssh under TCG, the 136 MB debug build took 147 s, the
    /// 49 MB stripped one 40 s. `strip` is binutils', which every Rust build here links with.
    fn copy_devbox(&self) {
        let scratch = tempfile::tempdir().expect("tempdir");
        let bin = scratch.path().join("devbox");
        let stripped = Command::new("strip")
            .arg("-o")
            .arg(&bin)
            .arg(env!("CARGO_BIN_EXE_devbox"))
            .output()
            .expect("run strip (binutils)");
        assert!(stripped.status.success(), "strip: {}", output_text(&stripped));
        let target = format!("{}/devbox", self.home());
        let mut cmd = Command::new("sh");
        cmd.arg(repo().join("tests/testbed/vm/vm.sh")).arg("ssh").arg(format!(
            "cat >{target}.part && chmod 0755 {target}.part && chown {}: {target}.part && mv {target}.part {target}",
            self.name
        ));
        let mut cmd = assert_cmd::Command::from_std(cmd);
        cmd.pipe_stdin(&bin).expect("the devbox binary");
        let out = cmd.timeout(IN_VM).output().expect("copy devbox into the VM");
        assert!(out.status.success(), "copying devbox into the VM: {}", output_text(&out));
    }

    /// `script` as this user, with its own HOME and runtime directory, as its login would have.
    fn sh(&self, script: &str) -> Output {
        vm_root(&self.as_user(script))
    }

    fn as_user(&self, script: &str) -> String {
        let quoted = script.replace('\'', r"'\''");
        format!(
            "exec runuser -u {} -- env -i HOME={} USER={} XDG_RUNTIME_DIR=/run/user/{} \
             PATH=/usr/local/bin:/usr/bin:/bin NO_COLOR=1 sh -c '{quoted}'",
            self.name,
            self.home(),
            self.name,
            self.uid
        )
    }

    /// `devbox ARGS…` as this user, as a `Test`.
    fn devbox(&self, args: &str) -> Test {
        vm_script(&self.as_user(&format!("{}/devbox {args}", self.home())))
    }
}

impl Drop for VmUser {
    fn drop(&mut self) {
        // Never a panic in a drop: that would abort the whole test binary.
        match std::panic::catch_unwind(|| vm_root(&remove_user(&self.name))) {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!("removing the VM's test user {}: {}", self.name, output_text(&out)),
            Err(_) => eprintln!("removing the VM's test user {} failed", self.name),
        }
    }
}

#[test]
fn vm_systemd_timers_run_the_jobs_and_remove_leaves_nothing() {
    let _lock = vm_lock();
    let status = vm_sh(&["status"]);
    assert!(status.status.success(), "the testbed's VM engine is not running: start it with `sh tests/testbed/up.sh`");
    let user = VmUser::new();
    let units = format!("{}/.config/systemd/user", user.home());

    // The user's devbox has no engine it may use (the VM's socket is root's and the docker
    // group's): cleanup and refresh are the jobs, and a run fails, saying why, in its log.
    user.devbox("schedule install --backend systemd")
        .output_has("cleanup job installed")
        .output_has("refresh job installed")
        .run();
    let timers = user.sh("systemctl --user list-timers --all --no-pager");
    let listed = output_text(&timers);
    for timer in ["devbox-cleanup.timer", "devbox-refresh.timer"] {
        assert!(listed.contains(timer), "systemctl --user list-timers lacks {timer}:\n{listed}");
    }
    let state = user.sh("systemctl --user is-active devbox-cleanup.timer devbox-refresh.timer");
    assert_eq!(String::from_utf8_lossy(&state.stdout), "active\nactive\n", "{}", output_text(&state));
    user.devbox("schedule status --backend systemd")
        .output_has("cleanup: installed in systemd, next run ")
        .output_has("never run")
        .run();

    // Started by systemd, as its timer would: the job's own command line, its output in its log.
    let started = user.sh("systemctl --user start devbox-cleanup.service");
    assert!(!started.status.success(), "cleanup cannot reach an engine here, so the run fails");
    let shown = user.sh(
        "systemctl --user show devbox-cleanup.service --property=Result,ExecMainStatus,ExecMainStartTimestampMonotonic",
    );
    let shown = String::from_utf8_lossy(&shown.stdout).to_string();
    assert!(shown.contains("Result=exit-code") && shown.contains("ExecMainStatus=1"), "{shown}");
    assert!(!shown.contains("ExecMainStartTimestampMonotonic=0\n"), "systemd never started it: {shown}");
    let log = user.sh("cat ~/.local/state/devbox/logs/cleanup.log");
    let log = String::from_utf8_lossy(&log.stdout).to_string();
    assert!(log.contains("Docker engine not reachable"), "the job's log:\n{log}");
    let report = user.devbox("schedule status --backend systemd --json").json();
    let cleanup = report.as_array().and_then(|jobs| jobs.iter().find(|j| j["job"] == "cleanup")).expect("cleanup");
    assert_eq!(cleanup["installed"], true, "{report:#}");
    assert_eq!(cleanup["last_run"]["outcome"], "failure", "{report:#}");
    assert_eq!(cleanup["last_run"]["exit_code"], 1, "{report:#}");

    // Remove: no unit file, no timer, and nothing of devbox's left in systemd's memory.
    user.devbox("schedule remove --backend systemd").output_has("removed cleanup").output_has("removed refresh").run();
    let files = user.sh(&format!("ls -A {units}"));
    let left = String::from_utf8_lossy(&files.stdout).to_string();
    assert!(!left.contains("devbox-"), "unit files left in {units}:\n{left}");
    let timers = output_text(&user.sh("systemctl --user list-timers --all --no-pager"));
    assert!(!timers.contains("devbox-"), "timers left:\n{timers}");
    let loaded = output_text(&user.sh("systemctl --user list-units --all --no-pager --plain 'devbox-*'"));
    assert!(!loaded.contains("devbox-"), "units left in systemd's memory:\n{loaded}");
    user.devbox("schedule status --backend systemd").output_has("cleanup: not installed in systemd").run();
}
