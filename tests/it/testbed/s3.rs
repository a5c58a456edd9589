//! The S3 servers the tests run on, made one way: `S3Server::moto()`, a builder for a moto of the
//! test's own (a clock of its own under libfaketime, an STS whose clock is behind, a recorder of
//! every request, a `Host` read as a host), and `S3Server::garage()`, the testbed's Garage. Every
//! process started here runs under a watcher (`watched`) that ends it with the test process,
//! however that ends, and a moto ends when its `S3Server` is dropped.
//!
//! ```ignore
//! let s3 = S3Server::moto().clock_offset("+7m").start();
//! let bed = Bed::on_s3("stsrenew", S3Server::moto().slow_sts(Duration::from_secs(840)).start());
//! ```

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, garage, port_open, wait_until};

/// Starts `command` (a shell line, its output redirected by itself) under a watcher that ends it
/// when this test process ends, however it ends; writes the command's PID to `pid_file` if given.
/// The returned child is the watcher.
pub fn watched(command: String, pid_file: Option<&Path>) -> std::io::Result<Child> {
    watched_in(&[], command, pid_file, None)
}

/// The same, the watcher itself run by `launcher` (`faketime -f +7m`: the command and its watcher
/// see that clock; faketime forks, so the watcher is what can end the command), and removing
/// `leaves` once the command has ended (the shared moto's directory, which no drop removes).
fn watched_in(
    launcher: &[&str],
    command: String,
    pid_file: Option<&Path>,
    leaves: Option<&Path>,
) -> std::io::Result<Child> {
    let record = pid_file.map(|p| format!("echo $c >{}; ", p.display())).unwrap_or_default();
    let clean = leaves.map(|dir| format!("; rm -rf '{}'", dir.display())).unwrap_or_default();
    let watcher = format!(
        "{command} & c=$!; {record}\
         while kill -0 {parent} 2>/dev/null && kill -0 $c 2>/dev/null; do sleep 1; done; kill $c 2>/dev/null{clean}",
        parent = std::process::id()
    );
    let mut cmd = Command::new(launcher.first().copied().unwrap_or("sh"));
    if let Some((_, args)) = launcher.split_first() {
        cmd.args(args).arg("sh");
    }
    cmd.args(["-c", &watcher]);
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn()
}

/// A moto to start: `S3Server::moto()`, its options, then `start`.
#[must_use = "a moto starts with `.start()`"]
#[derive(Default)]
pub struct Moto {
    clock_offset: Option<String>,
    slow_sts: Option<Duration>,
    recording: bool,
    host_as_host: bool,
}

impl Moto {
    /// Its clock runs `offset` from this machine's (libfaketime's syntax: "+7m", "-20m"); only
    /// moto's process sees it.
    pub fn clock_offset(mut self, offset: &str) -> Moto {
        self.clock_offset = Some(offset.to_string());
        self
    }

    /// Its STS's clock is `behind` the real one: sessions end that much sooner than asked, as if
    /// issued earlier (a 15-minute session, the shortest, whose renewal window opens at once).
    pub fn slow_sts(mut self, behind: Duration) -> Moto {
        self.slow_sts = Some(behind);
        self
    }

    /// It records every request it answers (moto's recorder, on from the start): `recorded`.
    pub fn recording(mut self) -> Moto {
        self.recording = true;
        self
    }

    /// It takes a request's `Host` for a host, never a bucket in a virtual-hosted name: S3 reached
    /// by a name (the company network's `s3-….devbox-corp.test`).
    pub fn host_as_host(mut self) -> Moto {
        self.host_as_host = true;
        self
    }

    /// Starts it on all addresses (containers reach it through the docker bridge gateway, as
    /// host.docker.internal) and waits until it answers.
    pub fn start(self) -> S3Server {
        let port = free_port();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut env = String::new();
        if self.recording {
            env +=
                &format!("MOTO_ENABLE_RECORDING=1 MOTO_RECORDER_FILEPATH={} ", dir.path().join("requests").display());
        }
        if self.host_as_host {
            env += "S3_IGNORE_SUBDOMAIN_BUCKETNAME=true ";
        }
        let server = match self.slow_sts {
            None => format!("-m moto.server -H 0.0.0.0 -p {port}"),
            Some(behind) => {
                let script = dir.path().join("slow_sts.py");
                let text = format!(
                    "import datetime, moto.sts.models as m\nreal = m.utcnow\n\
                     m.utcnow = lambda: real() - datetime.timedelta(seconds={})\n\
                     from moto.server import main\nmain(['-H', '0.0.0.0', '-p', '{port}'])\n",
                    behind.as_secs()
                );
                std::fs::write(&script, text).expect("write moto's launcher");
                script.display().to_string()
            }
        };
        let pid_file = dir.path().join("pid");
        let command = format!("{env}python3 {server} >{} 2>&1", dir.path().join("log").display());
        let launcher: Vec<&str> = match &self.clock_offset {
            Some(offset) => vec!["faketime", "-f", offset],
            None => Vec::new(),
        };
        let watcher = watched_in(&launcher, command, Some(&pid_file), Some(dir.path()))
            .expect("start moto (faketime for a clock offset: tests/testbed/up.sh installs both)");
        wait_until(
            format!("moto's S3 server to start on port {port} (install it: pip install 'moto[server]')"),
            Duration::from_secs(30),
            || port_open(port),
        );
        S3Server { kind: Kind::Moto { port, watcher, pid_file, dir } }
    }
}

/// One S3 server: a moto of its own, ended when dropped, or the testbed's Garage.
pub struct S3Server {
    kind: Kind,
}

enum Kind {
    Moto { port: u16, watcher: Child, pid_file: PathBuf, dir: tempfile::TempDir },
    Garage,
}

impl S3Server {
    /// A moto of the test's own, to set up and `start`.
    pub fn moto() -> Moto {
        Moto::default()
    }

    /// The testbed's Garage (`testbed/garage.rs`), which expires keys; panics saying how to start
    /// it when it is not running.
    pub fn garage() -> S3Server {
        garage();
        S3Server { kind: Kind::Garage }
    }

    pub fn is_garage(&self) -> bool {
        matches!(self.kind, Kind::Garage)
    }

    /// Its S3 API, for this host.
    pub fn endpoint(&self) -> String {
        match &self.kind {
            Kind::Moto { port, .. } => format!("http://127.0.0.1:{port}"),
            Kind::Garage => super::garage::ENDPOINT.to_string(),
        }
    }

    /// The port its S3 API listens on.
    pub fn port(&self) -> u16 {
        match &self.kind {
            Kind::Moto { port, .. } => *port,
            Kind::Garage => super::garage::ENDPOINT.rsplit(':').next().and_then(|p| p.parse().ok()).expect("a port"),
        }
    }

    /// Makes `bucket`: on moto with any key, on Garage owned by the tests' long-lived key.
    pub fn create_bucket(&self, bucket: &str) {
        match self.kind {
            Kind::Moto { .. } => {
                let (status, body) = moto_s3(&self.endpoint(), "PUT", &format!("/{bucket}"));
                assert_eq!(status, 200, "creating bucket {bucket} in moto: {body}");
            }
            Kind::Garage => garage().create_bucket(bucket),
        }
    }

    /// Empties and deletes `bucket` (on Garage, with every key granted on it), whatever answers.
    pub fn remove_bucket(&self, bucket: &str) {
        match self.kind {
            Kind::Moto { .. } if !port_open(self.port()) => {}
            Kind::Moto { .. } => {
                let endpoint = self.endpoint();
                let (_, listing) = moto_s3(&endpoint, "GET", &format!("/{bucket}?list-type=2&max-keys=1000"));
                for key in listing.split("<Key>").skip(1).filter_map(|rest| rest.split("</Key>").next()) {
                    let _ = moto_s3(&endpoint, "DELETE", &format!("/{bucket}/{key}"));
                }
                let _ = moto_s3(&endpoint, "DELETE", &format!("/{bucket}"));
            }
            Kind::Garage => garage().remove_bucket(bucket),
        }
    }

    /// Stops a moto (a test of S3 gone), and waits until its port is closed.
    pub fn stop(&self) {
        let Kind::Moto { port, pid_file, .. } = &self.kind else { panic!("the testbed's Garage is never stopped") };
        if let Ok(pid) = std::fs::read_to_string(pid_file) {
            let _ = Command::new("kill").arg(pid.trim()).output();
            // Ended: its ID is no longer one to signal.
            let _ = std::fs::remove_file(pid_file);
        }
        wait_until(format!("moto on port {port} to stop"), Duration::from_secs(10), || !port_open(*port));
    }

    /// What a moto made `recording()` recorded so far: one JSON object a line, one a request.
    pub fn recorded(&self) -> String {
        let Kind::Moto { dir, .. } = &self.kind else { panic!("Garage records nothing") };
        std::fs::read_to_string(dir.path().join("requests")).unwrap_or_default()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Kind::Moto { watcher, pid_file, .. } = &mut self.kind {
            if let Ok(pid) = std::fs::read_to_string(&*pid_file) {
                let _ = Command::new("kill").arg(pid.trim()).output();
            }
            let _ = watcher.kill();
            let _ = watcher.wait();
        }
    }
}

/// An S3 request to moto. moto does not check signatures, so plain HTTP is enough here.
fn moto_s3(endpoint: &str, method: &str, path: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-m", "10", "-o", "-", "-w", "\n%{http_code}", "-X", method, &format!("{endpoint}{path}")])
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}
