//! The testbed: a real Docker engine, a real registry image built locally from Debian's
//! docker-registry, and a real S3-compatible server (moto) started here. Nothing is mocked.
//!
//! `Bed::new("name")` gives one test its own HOME, container names, ports and bucket, and removes
//! the containers, volumes, images and bucket it made when it is dropped. `bed.test(args)` runs
//! devbox there and reads like a sentence:
//!
//! ```ignore
//! bed.test(&["doctor"]).code(1).stdout_has("is held by another process").run();
//! ```
//!
//! The other helpers every test file shares live here too, once: `wait_until` and `poll_until`
//! (polling with a deadline), `HttpServer` (one loopback HTTP server, for files or a fixed answer,
//! in `testbed/http.rs`), `hold_port`, `output_text` and `strip_ansi` (text), `write_executable`,
//! and the `Test` builder (`testbed/run.rs`).

mod http;
mod run;
pub mod tty;

use std::fmt::Display;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub use http::HttpServer;
pub use run::Test;

/// The registry image the tests use, built by `tests/testbed/registry-image.sh`.
pub const REGISTRY_IMAGE: &str = "devbox-testbed/registry:2.8";

struct Shared {
    s3_port: u16,
    /// The shell that runs moto and ends it when this process ends; kept so it is never orphaned.
    _moto: std::process::Child,
}

static SHARED: OnceLock<Shared> = OnceLock::new();

fn shared() -> &'static Shared {
    SHARED.get_or_init(|| {
        let engine = Command::new("docker").args(["version", "--format", "{{.Server.Version}}"]).output();
        match engine {
            Ok(out) if out.status.success() => {}
            Ok(out) => panic!(
                "the tests need a running Docker engine, and `docker version` failed:\n{}\n\
                 Start one: `dockerd &` as root (Debian: apt-get install docker.io), or run `bash .ci/run`.",
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => panic!("the tests need the docker CLI and a running engine ({e}); see `bash .ci/run`"),
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testbed/registry-image.sh");
        let built = Command::new("sh").arg(&script).arg(REGISTRY_IMAGE).status().expect("run registry-image.sh");
        assert!(built.success(), "building the testbed registry image failed (see above)");
        let (s3_port, moto) = start_moto();
        Shared { s3_port, _moto: moto }
    })
}

/// Starts moto's S3 server on all addresses (containers reach it through the docker bridge
/// gateway as host.docker.internal), and ends it when this test process ends.
fn start_moto() -> (u16, std::process::Child) {
    let port = free_port();
    let watcher = format!(
        "python3 -m moto.server -H 0.0.0.0 -p {port} >/dev/null 2>&1 & moto=$!; \
         while kill -0 {parent} 2>/dev/null && kill -0 $moto 2>/dev/null; do sleep 1; done; kill $moto 2>/dev/null",
        parent = std::process::id()
    );
    let child = Command::new("sh")
        .args(["-c", &watcher])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start moto");
    wait_until(
        format!("moto's S3 server to start on port {port} (install it: pip install 'moto[server]')"),
        Duration::from_secs(30),
        || port_open(port),
    );
    (port, child)
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

fn shared_s3_endpoint() -> String {
    format!("http://127.0.0.1:{}", shared().s3_port)
}

/// Runs the docker CLI; panics with its stderr when it fails.
pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("run docker");
    assert!(out.status.success(), "docker {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Runs the docker CLI and reports whether it succeeded, with its combined output.
pub fn docker_try(args: &[&str]) -> (bool, String) {
    let out = Command::new("docker").args(args).output().expect("run docker");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// An S3 request to moto. moto does not check signatures, so plain HTTP is enough here.
fn s3(endpoint: &str, method: &str, path: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-m", "10", "-o", "-", "-w", "\n%{http_code}", "-X", method, &format!("{endpoint}{path}")])
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// One test's world.
pub struct Bed {
    pub name: String,
    pub home: tempfile::TempDir,
    pub port: u16,
    pub bucket: String,
    /// The S3 server this bed's bucket lives in: the shared one, or its own (`with_own_s3`).
    pub s3_endpoint: String,
    own_s3: Option<std::process::Child>,
    /// The bucket lives on another S3 server, whose helper makes and removes it (`elsewhere`).
    bucket_elsewhere: bool,
    containers: Vec<String>,
    volumes: Vec<String>,
    images: Vec<String>,
}

impl Bed {
    pub fn new(test: &str) -> Bed {
        Bed::on_s3(test, shared_s3_endpoint(), None)
    }

    /// A bed with an S3 server of its own, which the test may stop (`stop_s3`).
    pub fn with_own_s3(test: &str) -> Bed {
        shared();
        let (port, child) = start_moto();
        Bed::on_s3(test, format!("http://127.0.0.1:{port}"), Some(child))
    }

    /// A bed whose bucket (named `bucket`, not created here) lives on the S3 server at
    /// `s3_endpoint`, made and removed by the caller's own helper (Garage: `garage_bed.rs`).
    pub fn elsewhere(test: &str, s3_endpoint: &str) -> Bed {
        let mut bed = Bed::on_s3(test, s3_endpoint.to_string(), None);
        bed.bucket_elsewhere = true;
        bed
    }

    fn on_s3(test: &str, s3_endpoint: String, own_s3: Option<std::process::Child>) -> Bed {
        shared();
        let name = format!("dbxt-{test}-{}", std::process::id());
        let bucket = format!("dbxt-{}-{}", test.replace('_', "-"), std::process::id());
        // A bed on another server makes its bucket there; moto here takes any PUT, so try it only on moto.
        if s3_endpoint == shared_s3_endpoint() || own_s3.is_some() {
            let (status, body) = s3(&s3_endpoint, "PUT", &format!("/{bucket}"));
            assert_eq!(status, 200, "creating bucket {bucket} in moto: {body}");
        }
        let bed = Bed {
            s3_endpoint,
            own_s3,
            bucket_elsewhere: false,
            home: tempfile::tempdir().expect("temp HOME"),
            port: free_port(),
            containers: vec![name.clone()],
            volumes: vec![format!("{name}-data")],
            images: Vec::new(),
            bucket,
            name,
        };
        bed.write_config("");
        bed
    }

    pub fn config_path(&self) -> PathBuf {
        self.home.path().join(".config/devbox/devbox.toml")
    }

    /// Writes the user's devbox.toml: this bed's registry on S3, plus `extra` TOML lines.
    pub fn write_config(&self, extra: &str) {
        let text = format!(
            "[registry]\nimage = \"{REGISTRY_IMAGE}\"\npull = \"never\"\ncontainer = \"{}\"\nport = {}\n\
             [registry.s3]\nbucket = \"{}\"\nendpoint = \"{}\"\npath_style = true\n{extra}",
            self.name, self.port, self.bucket, self.s3_endpoint
        );
        self.write_raw_config(&text);
    }

    /// Writes devbox.toml exactly as given.
    pub fn write_raw_config(&self, text: &str) {
        let path = self.config_path();
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write config");
    }

    /// `devbox` with this bed's HOME, test AWS credentials and no way to reach AWS itself.
    pub fn devbox(&self, args: &[&str]) -> assert_cmd::Command {
        let mut cmd = assert_cmd::Command::from_std(self.devbox_std(args));
        cmd.timeout(Duration::from_secs(120));
        cmd
    }

    /// `devbox ARGS` as a sentence of expectations, checked by `run`: see `Test`.
    pub fn test(&self, args: &[&str]) -> Test {
        Test::new(self.devbox(args))
    }

    /// The same, as a plain process, for tests that signal it or read it while it runs.
    pub fn devbox_std(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_devbox"));
        cmd.args(args)
            .env_remove("DEVBOX_CONFIG")
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .env("HOME", self.home.path())
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing-secret")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", self.home.path().join(".aws/config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", self.home.path().join(".aws/credentials"))
            .env("NO_COLOR", "1")
            // The release feed (self-update, doctor's version check): a closed port on loopback,
            // never GitHub. Tests that need a feed serve one and set it themselves.
            .env("DEVBOX_DOWNLOAD_URL", "http://127.0.0.1:9/");
        cmd
    }

    /// The devbox container's ID and creation time, or `None` when there is no such container.
    pub fn container_identity(&self) -> Option<(String, String)> {
        let (ok, out) = docker_try(&["inspect", "--format", "{{.Id}} {{.Created}}", &self.name]);
        ok.then(|| {
            let (id, created) = out.trim().split_once(' ').expect("id and created");
            (id.to_string(), created.to_string())
        })
    }

    /// Starts CI's writable registry on this bed's bucket, and returns its port. It is the only
    /// writer, as in production.
    pub fn ci_registry(&mut self) -> u16 {
        let name = format!("{}-ci", self.name);
        let port = free_port();
        let endpoint = self.s3_endpoint.replace("127.0.0.1", "host.docker.internal");
        let config = format!(
            "version: 0.1\nstorage:\n  s3:\n    region: us-east-1\n    bucket: {}\n    regionendpoint: {endpoint}\n    \
             forcepathstyle: true\n    rootdirectory: /registry\n    v4auth: true\n  redirect:\n    disable: true\n\
             http:\n  addr: :5000\n",
            self.bucket
        );
        docker(&[
            "create",
            "--name",
            &name,
            "-p",
            &format!("127.0.0.1:{port}:5000"),
            "--add-host",
            "host.docker.internal:host-gateway",
            "-e",
            "AWS_ACCESS_KEY_ID=ci",
            "-e",
            "AWS_SECRET_ACCESS_KEY=ci-secret",
            REGISTRY_IMAGE,
        ]);
        self.containers.push(name.clone());
        let file = self.home.path().join("ci-registry.yml");
        std::fs::write(&file, config).expect("write CI registry config");
        docker(&["cp", file.to_str().expect("utf-8"), &format!("{name}:/etc/docker/registry/config.yml")]);
        docker(&["start", &name]);
        wait_http_ok(&format!("http://127.0.0.1:{port}/v2/"));
        port
    }

    /// Builds an image of `bytes` random bytes and pushes it as CI would, to `registry_port`.
    /// The local copies are removed, so a later pull really pulls. Returns the pushed digest.
    pub fn push_image(&mut self, registry_port: u16, name: &str, bytes: usize) -> String {
        let reference = format!("127.0.0.1:{registry_port}/{name}");
        let dir = tempfile::tempdir().expect("tempdir");
        let tarball = layer_tar(dir.path(), "data.bin", &random_bytes(bytes));
        docker(&["import", tarball.to_str().expect("utf-8"), &reference]);
        let pushed = docker(&["push", &reference]);
        docker(&["rmi", &reference]);
        pushed
            .lines()
            .find_map(|l| l.split("digest: ").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .expect("push prints a digest")
            .to_string()
    }

    /// Stops this bed's own S3 server (see `with_own_s3`).
    pub fn stop_s3(&mut self) {
        let port = self.s3_endpoint.rsplit(':').next().expect("a port");
        let _ = Command::new("pkill").args(["-f", &format!("moto.server -H 0.0.0.0 -p {port}$")]).status();
        let port: u16 = port.parse().expect("port");
        wait_until(format!("moto on port {port} to stop"), Duration::from_secs(10), || !port_open(port));
    }

    /// Remembers a container to remove when the test ends.
    pub fn remove_container_later(&mut self, name: &str) {
        self.containers.push(name.to_string());
    }

    /// Remembers an image to remove when the test ends.
    pub fn remove_image_later(&mut self, reference: &str) {
        self.images.push(reference.to_string());
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        for container in &self.containers {
            let _ = Command::new("docker").args(["rm", "-f", "-v", container]).output();
        }
        for volume in &self.volumes {
            let _ = Command::new("docker").args(["volume", "rm", "-f", volume]).output();
        }
        for image in &self.images {
            let _ = Command::new("docker").args(["rmi", "-f", image]).output();
        }
        // Images that lost their tag to a newer pull still carry this bed's repository names.
        let mine = [format!("127.0.0.1:{}/", self.port), format!("{}/", self.name)];
        if let Ok(out) = Command::new("docker").args(["image", "ls", "--format", "{{.Repository}} {{.ID}}"]).output() {
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                if let Some((repo, id)) = line.split_once(' ')
                    && mine.iter().any(|prefix| repo.starts_with(prefix.as_str()))
                {
                    let _ = Command::new("docker").args(["rmi", "-f", id]).output();
                }
            }
        }
        match self.own_s3.take() {
            // Its own server goes, and its buckets with it.
            Some(mut watcher) => {
                self.stop_s3();
                let _ = watcher.kill();
                let _ = watcher.wait();
            }
            None if self.bucket_elsewhere => {}
            None => empty_and_delete_bucket(&self.s3_endpoint, &self.bucket),
        }
    }
}

fn empty_and_delete_bucket(endpoint: &str, bucket: &str) {
    let (_, listing) = s3(endpoint, "GET", &format!("/{bucket}?list-type=2&max-keys=1000"));
    for key in listing.split("<Key>").skip(1).filter_map(|rest| rest.split("</Key>").next()) {
        let _ = s3(endpoint, "DELETE", &format!("/{bucket}/{key}"));
    }
    let _ = s3(endpoint, "DELETE", &format!("/{bucket}"));
}

pub fn wait_http_ok(url: &str) {
    wait_until(format!("{url} to answer 200"), Duration::from_secs(20), || {
        let out = Command::new("curl").args(["-s", "-o", "/dev/null", "-w", "%{http_code}", url]).output();
        out.is_ok_and(|o| o.stdout == b"200")
    });
}

/// Writes `dir/layer.tar`: one file, `name`, holding `data`; `docker import` makes it an image.
pub fn layer_tar(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let tarball = dir.join("layer.tar");
    let mut builder = tar::Builder::new(std::fs::File::create(&tarball).expect("create tar"));
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    builder.append_data(&mut header, name, data).expect("append");
    builder.finish().expect("finish tar");
    tarball
}

/// Incompressible bytes, so image sizes mean what they say (xorshift; no crate needed).
fn random_bytes(len: usize) -> Vec<u8> {
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut state = now ^ (u64::from(std::process::id()) << 32) ^ call.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Writes `contents` to `path` as an executable that a test then runs (a fake tool, a script).
///
/// This process never holds a write handle on that file: a child process (`install`) writes it.
/// A handle open here while another test thread forks is inherited by that child until it execs
/// (close-on-exec only takes effect then), and on a loaded machine that can be long enough for
/// running the file to fail with ETXTBSY ("Text file busy"). Writing to a temporary name and
/// renaming would not help: the inherited handle is on the same inode.
pub fn write_executable(path: &Path, contents: &[u8]) {
    let staging = tempfile::tempdir().expect("tempdir");
    let source = staging.path().join("contents");
    std::fs::write(&source, contents).expect("write the executable's contents");
    copy_executable(&source, path);
}

/// Copies `from` to `to` as an executable, written by a child process: see `write_executable`.
pub fn copy_executable(from: &Path, to: &Path) {
    let out = Command::new("install").arg("-m").arg("0755").arg(from).arg(to).output().expect("run install");
    assert!(out.status.success(), "install {from:?} {to:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// How often `wait_until` looks.
const POLL: Duration = Duration::from_millis(50);

/// Polls `done` until it holds; panics naming `what` it waited for when `timeout` passes first.
pub fn wait_until(what: impl Display, timeout: Duration, done: impl FnMut() -> bool) {
    assert!(poll_until(timeout, POLL, done), "gave up after {timeout:?} waiting for {what}");
}

/// Polls `done` every `every` until it holds or `timeout` passes, and says which: for a caller
/// that explains a timeout with what it saw, or must look more often than `wait_until` does.
pub fn poll_until(timeout: Duration, every: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(every);
    }
}

/// Whether something accepts connections on 127.0.0.1:`port`.
pub fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// Holds 127.0.0.1:`port` as another program would, until the listener is dropped.
pub fn hold_port(port: u16) -> TcpListener {
    TcpListener::bind(("127.0.0.1", port)).expect("hold the port")
}

/// A process's stdout then stderr, as one text.
pub fn output_text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// `text` without its terminal escape sequences (CSI: ESC [ parameters, then a final byte '@'..='~').
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.next_if_eq(&'[').is_some() {
                for p in chars.by_ref() {
                    if ('@'..='~').contains(&p) {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}
