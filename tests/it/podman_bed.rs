//! The podman VM's test bed (tests/testbed/podman/): `Bed::on_podman` per test, with its own HOME whose
//! `.run` stands for `XDG_RUNTIME_DIR` and holds podman machine's API socket
//! (`podman/podman-machine-default-api.sock`, a link to the VM's rootless API), a docker context
//! `podman-machine-default` on it, a bucket and key on Garage, and its names and port. It takes the
//! VM tests' lock: one VM test at a time, whichever VM. The tests are in `podman.rs`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::testbed::{Bed, S3Server, garage, output_text, write_executable};
use crate::vm_bed::{REGISTRY_IMAGE, repo, vm_lock};

/// The rootless user podman machine logs in as, and the podman VM's fixed paths (podman/vm.sh).
pub const RUN: &str = "/run/devbox-testbed/podman-vm";
pub const SSH_PORT: &str = "42023";

pub fn podman_sh(args: &[&str]) -> Output {
    Command::new("sh").arg(repo().join("tests/testbed/podman/vm.sh")).args(args).output().expect("run podman/vm.sh")
}

/// The docker CLI on the VM's rootless podman API.
pub fn podman_docker(args: &[&str]) -> Output {
    Command::new("docker").arg("-H").arg(format!("unix://{RUN}/podman.sock")).args(args).output().expect("run docker")
}

/// `podman` itself in the VM, as the rootless user logs in to run it (pods have no Docker API).
pub fn podman_in_vm(args: &str) -> Output {
    Command::new("ssh").args(ssh_args("core")).arg(format!("podman {args}")).output().expect("ssh")
}

/// The ssh options that reach the VM as `user`, with the image's key and known host.
fn ssh_args(user: &str) -> Vec<String> {
    let image = std::fs::read_to_string(format!("{RUN}/image")).expect("the podman VM runs (podman/vm.sh up)");
    let image = image.trim();
    [
        "-i",
        &format!("{image}/id_ed25519"),
        "-p",
        SSH_PORT,
        "-o",
        "HostKeyAlias=devbox-vm",
        "-o",
        &format!("UserKnownHostsFile={image}/known_hosts"),
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "LogLevel=ERROR",
        &format!("{user}@127.0.0.1"),
    ]
    .map(String::from)
    .to_vec()
}

/// A `podman` whose `machine ssh` is exactly an ssh into the VM as `core`, as podman machine's is,
/// and which does nothing else.
pub fn fake_podman(dir: &Path) {
    let ssh = ssh_args("core").iter().map(|a| format!("'{a}'")).collect::<Vec<_>>().join(" ");
    let script = format!(
        "#!/bin/sh\n# podman machine ssh, as the testbed's podman VM offers it, and nothing else.\n\
         if [ \"$1\" = machine ] && [ \"$2\" = ssh ]; then shift 2; exec /usr/bin/ssh {ssh} \"$@\"; fi\n\
         echo \"this podman only does machine ssh\" >&2\nexit 125\n"
    );
    write_executable(&dir.join("podman"), script.as_bytes());
}

/// Sets the VM's clock (never this host's) as root over ssh: a shell fed `date -s` once it is up,
/// at this host's next whole second. `behind`: that many seconds behind this host's clock.
pub fn set_podman_vm_clock(behind: i64) {
    use std::io::{BufRead, Write};
    let mut child = Command::new("ssh")
        .args(ssh_args("root"))
        .arg("sh")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ssh");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"echo ready\n").expect("feed the shell");
    let mut line = String::new();
    let mut reader = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    reader.read_line(&mut line).expect("read");
    assert_eq!(line.trim(), "ready", "the VM's shell did not start");
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).expect("after 1970");
    std::thread::sleep(Duration::from_secs(1) - Duration::from_nanos(u64::from(now.subsec_nanos())));
    let second = now.as_secs() as i64 + 1;
    stdin.write_all(format!("exec date -u -s @{}\n", second - behind).as_bytes()).expect("feed the shell");
    drop(stdin);
    let out = child.wait_with_output().expect("ssh ends");
    assert!(out.status.success(), "setting the podman VM's clock failed: {}", output_text(&out));
}

impl Bed {
    /// One podman test's world: the VM tests' lock, and a `Bed` on the VM's rootless podman API,
    /// found as podman machine serves it (its HOME's `.run` stands for `XDG_RUNTIME_DIR`), whose
    /// bucket lives on Garage with a long-lived key of its own. The bed removes what it made, on
    /// podman and on this host's engine, and the pods made in the VM (`pod`); then sets the VM's
    /// clock back and releases the lock.
    pub fn on_podman(test: &str) -> Bed {
        let lock = vm_lock();
        let status = podman_sh(&["status"]);
        assert!(
            status.status.success(),
            "the testbed's podman VM is not running ({}): start it with `sh tests/testbed/podman/up.sh`",
            output_text(&status).trim()
        );
        let loaded = podman_sh(&["load", REGISTRY_IMAGE]);
        assert!(loaded.status.success(), "loading {REGISTRY_IMAGE} into the podman VM: {}", output_text(&loaded));
        let bed = Bed::named("dbxp", test, S3Server::garage());
        let home = bed.home.path().to_path_buf();
        // devbox as a podman machine user on Linux runs it: no DOCKER_HOST and no current context,
        // so it finds the machine's socket in XDG_RUNTIME_DIR; PATH holds `podman` only after
        // `with_podman_cli`. Such a laptop has no /var/run/docker.sock, and this host's dockerd
        // would answer there first: devbox runs in its own mount namespace, where that path is
        // /dev/null.
        let mut bed = bed
            .on_engine(&format!("unix://{RUN}/podman.sock"))
            .wrapped(&[
                "/usr/bin/unshare",
                "-m",
                "--propagation",
                "private",
                "/bin/sh",
                "-c",
                "mount --bind /dev/null /run/docker.sock && exec \"$0\" \"$@\"",
            ])
            .env("XDG_RUNTIME_DIR", home.join(".run").to_str().expect("utf-8"))
            .env("PATH", &format!("{}:/usr/bin:/bin", home.join("bin").display()))
            // Never root's own crontab: `doctor --fix` would install the jobs there.
            .env("DEVBOX_SCHEDULER", "none")
            // The VM is slow, but nothing may hang.
            .timeout(Duration::from_secs(300))
            // The VM's engine got the image by `docker save` and `load`: no repository digest to pin.
            .config_with(REGISTRY_IMAGE, "region = \"us-east-1\"\n");
        bed.at_end(move || {
            let _ = std::panic::catch_unwind(|| set_podman_vm_clock(0));
            drop(lock);
        });
        let out = podman_sh(&["context", home.to_str().expect("utf-8")]);
        assert!(out.status.success(), "podman/vm.sh context: {}", output_text(&out));
        std::fs::create_dir_all(home.join("bin")).expect("mkdir bin");
        bed.key = garage().create_key(&bed.name, &bed.bucket);
        // No clock left behind by an earlier run that stopped half-way.
        set_podman_vm_clock(0);
        bed
    }

    /// Puts the `podman` whose `machine ssh` reaches the VM on devbox's PATH.
    pub fn with_podman_cli(&mut self) {
        fake_podman(&self.home.path().join("bin"));
    }

    /// podman machine's runtime dir, which devbox finds the API socket in.
    pub fn runtime_dir(&self) -> PathBuf {
        self.home.path().join(".run")
    }

    /// A pod in the VM (its infra container created, not started), removed at the end.
    pub fn pod(&mut self, name: &str) {
        let out = podman_in_vm(&format!("pod create --name {name}"));
        assert!(out.status.success(), "podman pod create: {}", output_text(&out));
        let name = name.to_string();
        self.at_end(move || {
            let _ = podman_in_vm(&format!("pod rm -f {name}"));
        });
    }
}

/// Runs devbox on `bed` for its JSON report, whatever its exit code, and that code.
pub fn json(bed: &Bed, args: &[&str]) -> (Value, i32) {
    let out = bed.test(args).any_code().run();
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", output_text(&out)));
    (json, out.status.code().unwrap_or(-1))
}
