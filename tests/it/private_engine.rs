//! A private Docker engine for one test: a second dockerd with its own data root, socket and
//! containerd, and no network bridge. Cleanup judges the whole engine, so its tests must not share
//! the machine's engine with other tests (or people) whose stopped containers are not theirs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::testbed::{REGISTRY_IMAGE, poll_until};

pub struct PrivateEngine {
    pub dir: tempfile::TempDir,
    pub host: String,
    dockerd: std::sync::Mutex<Option<std::process::Child>>,
}

impl PrivateEngine {
    pub fn start() -> PrivateEngine {
        crate::testbed::docker(&["version", "--format", "{{.Server.Version}}"]);
        // A short path: the socket's path must fit in 108 bytes.
        let dir = tempfile::Builder::new().prefix("dbxe-").tempdir_in("/tmp").expect("tempdir");
        let host = format!("unix://{}/docker.sock", dir.path().display());
        let engine = PrivateEngine { host, dir, dockerd: std::sync::Mutex::new(None) };
        engine.spawn();
        engine
    }

    fn spawn(&self) {
        let d = self.dir.path();
        let log = std::fs::File::create(d.join("dockerd.log")).expect("log");
        // In a network namespace of its own: a dockerd started with --bridge=none deletes the
        // host's docker0 bridge, which would break every other test on the machine's engine.
        let child = Command::new("unshare")
            .args(["--net", "--", "dockerd"])
            .args(["--data-root", &path(&d.join("data")), "--exec-root", &path(&d.join("exec"))])
            .args(["--pidfile", &path(&d.join("dockerd.pid")), "-H", &self.host])
            .args(["--bridge=none", "--iptables=false", "--ip-masq=false"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start a private dockerd (the tests run as root, as CI does): {e}"));
        *self.dockerd.lock().expect("lock") = Some(child);
        let answered =
            poll_until(Duration::from_secs(60), Duration::from_millis(200), || self.docker_try(&["version"]).0);
        assert!(
            answered,
            "the private dockerd did not answer within 60s; its log:\n{}",
            std::fs::read_to_string(d.join("dockerd.log")).unwrap_or_default()
        );
    }

    pub fn docker(&self, args: &[&str]) -> String {
        let (ok, out) = self.docker_try(args);
        assert!(ok, "docker {args:?} on the private engine failed: {out}");
        out.trim().to_string()
    }

    pub fn docker_try(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new("docker").arg("-H").arg(&self.host).args(args).output().expect("run docker");
        (
            out.status.success(),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        )
    }

    /// Copies the testbed's registry image in (it has a long-running binary for running containers).
    pub fn load_registry_image(&self) {
        let script = format!("docker save {REGISTRY_IMAGE} | docker -H {} load -q", self.host);
        let out = Command::new("sh").args(["-c", &script]).output().expect("sh");
        assert!(out.status.success(), "loading the registry image: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Imports a one-file image (distinct content each time) as `reference`, with optional `LABEL`s.
    pub fn import(&self, reference: &str, labels: &[&str]) -> String {
        // A count, not the time, makes each import's content its own.
        static IMPORTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = IMPORTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = tempfile::tempdir().expect("tempdir");
        let tarball = crate::testbed::layer_tar(dir.path(), "data.txt", format!("{reference} {n}").as_bytes());
        let mut args = vec!["import".to_string()];
        for label in labels {
            args.extend(["--change".into(), format!("LABEL {label}")]);
        }
        args.extend([path(&tarball), reference.to_string()]);
        self.docker(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    pub fn data_root(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn pid(&self) -> Option<String> {
        std::fs::read_to_string(self.dir.path().join("dockerd.pid")).ok().map(|p| p.trim().to_string())
    }

    /// The engine disappears as in a crash: SIGKILL, no shutdown.
    pub fn crash(&self) {
        if let Some(mut child) = self.dockerd.lock().expect("lock").take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(self.dir.path().join("dockerd.pid"));
    }

    /// The containers the engine keeps on disk: what survives it, read without its API.
    pub fn containers_on_disk(&self) -> std::collections::BTreeSet<String> {
        std::fs::read_dir(self.data_root().join("containers"))
            .map(|dir| dir.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect())
            .unwrap_or_default()
    }
}

impl Drop for PrivateEngine {
    fn drop(&mut self) {
        // Remove what the test left, then stop the engine; its containerd stops with it.
        let (_, ids) = self.docker_try(&["ps", "-aq"]);
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(ids);
            let _ = self.docker_try(&args);
        }
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
        }
        if let Some(mut child) = self.dockerd.lock().ok().and_then(|mut c| c.take()) {
            poll_until(Duration::from_secs(30), Duration::from_millis(100), || !matches!(child.try_wait(), Ok(None)));
            let _ = child.kill();
            let _ = child.wait();
        }
        // After a crash, dockerd's containerd lives on; it goes too.
        if let Ok(pid) = std::fs::read_to_string(self.dir.path().join("exec/containerd/containerd.pid")) {
            let _ = Command::new("kill").args(["-TERM", pid.trim()]).status();
            std::thread::sleep(Duration::from_millis(500));
        }
        // A crashed engine can leave mounts behind; they must go before the directory can.
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        let root = path(self.dir.path());
        for mount in mounts.lines().filter_map(|l| l.split_whitespace().nth(1)).filter(|m| m.starts_with(&root)) {
            let _ = Command::new("umount").args(["-l", mount]).status();
        }
        let _ = Command::new("rm").args(["-rf", &root]).status();
    }
}

fn path(p: &Path) -> String {
    p.to_str().expect("utf-8 path").to_string()
}
