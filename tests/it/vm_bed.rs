//! The VM engine's test bed: `Bed::on_vm` per test, a `Bed` on the VM's engine (its HOME with a
//! docker context named `colima`, its Garage bucket and key), the lock that runs the VM tests one
//! after another, and the helpers that read and set the VM's clock. The tests are in `vm.rs`.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use serde_json::Value;

pub use crate::testbed::REGISTRY_IMAGE;
use crate::testbed::{Bed, S3Server, garage, output_text};

/// One VM test at a time in this process: they pause its CPUs, set its clock and count its containers.
static VM_LOCK: Mutex<()> = Mutex::new(());

/// One VM test at a time on this machine, whichever VM and whichever test process (a soak beside a
/// CI run): the lock of this process, then a lock file that every process takes.
pub struct VmLock {
    _file: std::fs::File,
    _guard: MutexGuard<'static, ()>,
}

pub fn vm_lock() -> VmLock {
    let guard = VM_LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let path = std::env::temp_dir().join("devbox-testbed-vm-tests.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .expect("open the VM tests' lock file");
    // fs4's, not std's `File::lock`, which is newer than the crate's rust-version.
    fs4::FileExt::lock(&file).expect("lock the VM tests' lock file");
    VmLock { _file: file, _guard: guard }
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn vm_sh(args: &[&str]) -> Output {
    Command::new("sh").arg(repo().join("tests/testbed/vm/vm.sh")).args(args).output().expect("run vm.sh")
}

/// The docker CLI on the VM's engine.
pub fn vm_docker(args: &[&str]) -> Output {
    Command::new("docker").arg("-H").arg(format!("unix://{}", sock())).args(args).output().expect("run docker")
}

pub fn sock() -> String {
    String::from_utf8_lossy(&vm_sh(&["sock"]).stdout).trim().to_string()
}

/// Sets the VM's clock (its kernel's, never this host's) with a helper container, as devbox's
/// helper does: a root shell that is fed `date -s` once it is up. `behind`: that many seconds
/// behind this host's clock, set at the host's next whole second.
pub fn set_vm_clock(behind: i64) {
    use std::io::{BufRead, Write};
    let mut child = Command::new("docker")
        .arg("-H")
        .arg(format!("unix://{}", sock()))
        .args(["run", "--rm", "-i", "--user", "0", "--cap-add", "SYS_TIME", "--network", "none"])
        .args(["--entrypoint", "/bin/sh", REGISTRY_IMAGE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("docker run");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"echo ready\n").expect("feed the helper");
    let mut line = String::new();
    let mut reader = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    reader.read_line(&mut line).expect("read");
    assert_eq!(line.trim(), "ready", "the helper did not start");
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).expect("after 1970");
    std::thread::sleep(Duration::from_secs(1) - Duration::from_nanos(u64::from(now.subsec_nanos())));
    let second = now.as_secs() as i64 + 1;
    stdin.write_all(format!("exec date -u -s @{}\n", second - behind).as_bytes()).expect("feed the helper");
    drop(stdin);
    let mut said = String::new();
    std::io::Read::read_to_string(&mut reader, &mut said).expect("read");
    let out = child.wait_with_output().expect("docker run ends");
    assert!(out.status.success(), "setting the VM's clock failed: {said}{}", output_text(&out));
}

impl Bed {
    /// One VM test's world: the VM tests' lock, and a `Bed` on the VM's engine (its HOME with the
    /// `colima` context) whose bucket lives on Garage, with a long-lived key of its own. The bed
    /// removes what it made, on the VM's engine and on this host's, then sets the VM's clock back
    /// to this host's, whatever the test did to it, and releases the lock.
    pub fn on_vm(test: &str) -> Bed {
        let lock = vm_lock();
        let status = vm_sh(&["status"]);
        assert!(
            status.status.success(),
            "the testbed's VM engine is not running ({}): start it with `sh tests/testbed/up.sh`",
            output_text(&status).trim()
        );
        let mut bed = Bed::named("dbxv", test, S3Server::garage())
            .on_engine(&format!("unix://{}", sock()))
            // Never root's own crontab: `doctor --fix` would install the jobs there.
            .env("DEVBOX_SCHEDULER", "none")
            // The VM is slow, but nothing may hang.
            .timeout(Duration::from_secs(300))
            // The VM's engine got the image by `docker save` and `load`: no repository digest to pin.
            .config_with(REGISTRY_IMAGE, "region = \"us-east-1\"\n");
        bed.at_end(move || {
            let _ = std::panic::catch_unwind(|| set_vm_clock(0));
            drop(lock);
        });
        let out = vm_sh(&["context", bed.home.path().to_str().expect("utf-8")]);
        assert!(out.status.success(), "vm.sh context: {}", output_text(&out));
        bed.key = garage().create_key(&bed.name, &bed.bucket);
        // No clock left behind by an earlier run that stopped half-way.
        set_vm_clock(0);
        bed
    }

    /// The engine's skew from the host, by `clock check --json`, in seconds (a VM's, or podman's).
    pub fn engine_skew(&self) -> f64 {
        skew(&self.test(&["clock", "check", "--json"]).any_code().json(), "engine", "host")
    }
}

pub fn skew(report: &Value, a: &str, b: &str) -> f64 {
    report["skews"]
        .as_array()
        .expect("skews")
        .iter()
        .find(|s| s["a"] == a && s["b"] == b)
        .and_then(|s| s["skew_seconds"].as_f64())
        .unwrap_or_else(|| panic!("no {a} vs {b} skew in {report:#}"))
}

pub fn finding<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["checks"].as_array().expect("checks").iter().find(|c| c["id"] == id).unwrap_or_else(|| panic!("no {id}"))
}
