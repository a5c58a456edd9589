//! The VM engine's test bed: a `VmBed` per test (its HOME with a docker context named `colima`,
//! its registry, its Garage bucket and key), the lock that runs the VM tests one after another,
//! and the helpers that read and set the VM's clock. The tests are in `vm.rs`.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::testbed::{free_port, output_text, wait_until};

pub const REGISTRY_IMAGE: &str = "devbox-testbed/registry:2.8";
pub const GARAGE_ENV: &str = "/var/lib/devbox-testbed/garage/env";

/// One VM test at a time: they pause its CPUs, set its clock and count its containers.
pub static VM_LOCK: Mutex<()> = Mutex::new(());

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn vm_sh(args: &[&str]) -> Output {
    Command::new("sh").arg(repo().join("tests/testbed/vm/vm.sh")).args(args).output().expect("run vm.sh")
}

pub fn unix_now() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).expect("after 1970").as_secs() as i64
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

/// The testbed's Garage, from the env file its up.sh writes.
pub struct Garage {
    pub bin: String,
    pub config: String,
}

impl Garage {
    pub fn find() -> Garage {
        let env = std::fs::read_to_string(GARAGE_ENV).unwrap_or_else(|e| {
            panic!("the VM tests need the testbed's Garage ({GARAGE_ENV}: {e}): run `sh tests/testbed/garage/up.sh`")
        });
        let get = |key: &str| {
            env.lines()
                .find_map(|l| l.strip_prefix(&format!("{key}=")))
                .unwrap_or_else(|| panic!("{GARAGE_ENV} has no {key}"))
                .to_string()
        };
        let garage = Garage { bin: get("GARAGE_BIN"), config: get("GARAGE_CONFIG") };
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", 3900)).is_ok(),
            "Garage does not answer on 127.0.0.1:3900: run `sh tests/testbed/garage/up.sh`"
        );
        garage
    }

    pub fn run(&self, args: &[&str]) -> String {
        let out = Command::new(&self.bin).arg("-c").arg(&self.config).args(args).output().expect("run garage");
        assert!(out.status.success(), "garage {args:?} failed: {}", output_text(&out));
        String::from_utf8_lossy(&out.stdout).to_string()
    }
}

/// One VM test's world: the lock, its own HOME with the `colima` context, a bucket and a
/// long-lived key on Garage, and its container names and port. It removes what it made.
pub struct VmBed {
    pub _lock: MutexGuard<'static, ()>,
    pub name: String,
    pub home: tempfile::TempDir,
    pub port: u16,
    pub bucket: String,
    pub key_id: String,
    pub secret: String,
    pub garage: Garage,
    /// Containers on this host's engine (CI's writable registry).
    pub host_containers: Vec<String>,
}

impl VmBed {
    pub fn new(test: &str) -> VmBed {
        let lock = VM_LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let status = vm_sh(&["status"]);
        assert!(
            status.status.success(),
            "the testbed's VM engine is not running ({}): start it with `sh tests/testbed/up.sh`",
            output_text(&status).trim()
        );
        let garage = Garage::find();
        let name = format!("dbxv-{test}-{}", std::process::id());
        let home = tempfile::tempdir().expect("temp HOME");
        let out = vm_sh(&["context", home.path().to_str().expect("utf-8")]);
        assert!(out.status.success(), "vm.sh context: {}", output_text(&out));
        garage.run(&["bucket", "create", &name]);
        let key: Value =
            serde_json::from_str(&garage.run(&["json-api", "CreateKey", &format!("{{\"name\":\"{name}\"}}")]))
                .expect("CreateKey answers JSON");
        let key_id = key["accessKeyId"].as_str().expect("a key id").to_string();
        let secret = key["secretAccessKey"].as_str().expect("a secret").to_string();
        garage.run(&["bucket", "allow", "--read", "--write", &name, "--key", &key_id]);
        // No clock left behind by an earlier run that stopped half-way.
        set_vm_clock(0);
        let bed = VmBed {
            _lock: lock,
            port: free_port(),
            bucket: name.clone(),
            name,
            home,
            key_id,
            secret,
            garage,
            host_containers: Vec::new(),
        };
        bed.write_config("");
        bed
    }

    pub fn write_config(&self, extra: &str) {
        let path = self.home.path().join(".config/devbox/devbox.toml");
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        let text = format!(
            "[registry]\nimage = \"{REGISTRY_IMAGE}\"\npull = \"never\"\ncontainer = \"{}\"\nport = {}\n\
             [registry.s3]\nbucket = \"{}\"\nendpoint = \"http://127.0.0.1:3900\"\nregion = \"us-east-1\"\n\
             path_style = true\n{extra}",
            self.name, self.port, self.bucket
        );
        std::fs::write(path, text).expect("write config");
    }

    /// `devbox` with this bed's HOME (so the `colima` context), Garage's key, no DOCKER_HOST.
    pub fn devbox(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_devbox"));
        cmd.args(args)
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DEVBOX_CONFIG")
            .env_remove("DEVBOX_ENGINE_KIND")
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .env("HOME", self.home.path())
            .env("AWS_ACCESS_KEY_ID", &self.key_id)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", self.home.path().join(".aws/config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", self.home.path().join(".aws/credentials"))
            .env("NO_COLOR", "1")
            .env("DEVBOX_DOWNLOAD_URL", "http://127.0.0.1:9/")
            // Never root's own crontab: `doctor --fix` would install the jobs there.
            .env("DEVBOX_SCHEDULER", "none")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs devbox, with a deadline: the VM is slow, but nothing may hang.
    pub fn run(&self, args: &[&str]) -> Output {
        run_within(self.devbox(args), Duration::from_secs(300))
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "devbox {args:?} failed:\n{}", output_text(&out));
        output_text(&out)
    }

    pub fn json(&self, args: &[&str]) -> (Value, i32) {
        let out = self.run(args);
        let json =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", output_text(&out)));
        (json, out.status.code().unwrap_or(-1))
    }

    /// The engine's skew from the host, by `clock check --json`, in seconds.
    pub fn engine_skew(&self) -> f64 {
        let (report, _) = self.json(&["clock", "check", "--json"]);
        skew(&report, "engine", "host")
    }

    /// CI's writable registry on this host's native engine, on this bed's bucket (the only
    /// writer, as in production). Returns its port.
    pub fn ci_registry(&mut self) -> u16 {
        let name = format!("{}-ci", self.name);
        let port = free_port();
        let config = format!(
            "version: 0.1\nstorage:\n  s3:\n    region: us-east-1\n    bucket: {}\n    \
             regionendpoint: http://host.docker.internal:3900\n    forcepathstyle: true\n    \
             rootdirectory: /registry\n    v4auth: true\n  redirect:\n    disable: true\nhttp:\n  addr: :5000\n",
            self.bucket
        );
        let file = self.home.path().join("ci-registry.yml");
        std::fs::write(&file, config).expect("write CI registry config");
        host_docker(&[
            "create",
            "--name",
            &name,
            "-p",
            &format!("127.0.0.1:{port}:5000"),
            "--add-host",
            "host.docker.internal:host-gateway",
            "-e",
            &format!("AWS_ACCESS_KEY_ID={}", self.key_id),
            "-e",
            &format!("AWS_SECRET_ACCESS_KEY={}", self.secret),
            REGISTRY_IMAGE,
        ]);
        self.host_containers.push(name.clone());
        host_docker(&["cp", file.to_str().expect("utf-8"), &format!("{name}:/etc/docker/registry/config.yml")]);
        host_docker(&["start", &name]);
        wait_until("CI's registry to answer", Duration::from_secs(30), || {
            Command::new("curl")
                .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", &format!("http://127.0.0.1:{port}/v2/")])
                .output()
                .is_ok_and(|o| o.stdout == b"200")
        });
        port
    }

    /// Pushes a small image as CI would, as `name` (e.g. "vmtest/base:1"), through CI's registry.
    pub fn push(&self, ci_port: u16, name: &str) {
        let reference = format!("127.0.0.1:{ci_port}/{name}");
        let dir = tempfile::tempdir().expect("tempdir");
        let tarball = dir.path().join("layer.tar");
        let mut builder = tar::Builder::new(std::fs::File::create(&tarball).expect("create tar"));
        let data = format!("{} {}", self.name, unix_now()).into_bytes();
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, "data.txt", data.as_slice()).expect("append");
        builder.finish().expect("finish tar");
        host_docker(&["import", tarball.to_str().expect("utf-8"), &reference]);
        host_docker(&["push", &reference]);
        host_docker(&["rmi", &reference]);
    }
}

impl Drop for VmBed {
    fn drop(&mut self) {
        // The VM's clock back to this host's, whatever the test did to it.
        let _ = std::panic::catch_unwind(|| set_vm_clock(0));
        let _ = vm_docker(&["rm", "-f", "-v", &self.name]);
        let _ = vm_docker(&["volume", "rm", "-f", &format!("{}-data", self.name)]);
        let listed = vm_docker(&["image", "ls", "--format", "{{.Repository}}:{{.Tag}}"]);
        for image in String::from_utf8_lossy(&listed.stdout).lines().filter(|i| i.contains(&format!(":{}/", self.port)))
        {
            let _ = vm_docker(&["rmi", "-f", image]);
        }
        for container in &self.host_containers {
            let _ = Command::new("docker").args(["rm", "-f", "-v", container]).output();
        }
        let g = |args: &[&str]| Command::new(&self.garage.bin).arg("-c").arg(&self.garage.config).args(args).output();
        let _ = g(&["key", "delete", "--yes", &self.key_id]);
        // Only an empty bucket can go; what the registry wrote stays under this test's name.
        let _ = g(&["bucket", "delete", "--yes", &self.bucket]);
    }
}

pub fn host_docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("run docker");
    assert!(out.status.success(), "docker {args:?} failed: {}", output_text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub fn run_within(mut cmd: Command, limit: Duration) -> Output {
    let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn devbox");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.expect("devbox ran"),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("devbox did not finish within {limit:?}");
        }
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
