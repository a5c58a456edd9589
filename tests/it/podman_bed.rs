//! The podman VM's test bed (tests/testbed/podman/): a `PodmanBed` per test, with its own HOME whose
//! `.run` stands for `XDG_RUNTIME_DIR` and holds podman machine's API socket
//! (`podman/podman-machine-default-api.sock`, a link to the VM's rootless API), a docker context
//! `podman-machine-default` on it, a bucket and key on Garage, and its names and port. It takes the
//! VM tests' lock: one VM test at a time, whichever VM. The tests are in `podman.rs`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::MutexGuard;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::testbed::{free_port, output_text, write_executable};
use crate::vm_bed::{Garage, REGISTRY_IMAGE, VM_LOCK, host_docker, repo, run_within, skew};

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

/// One podman test's world. It removes what it made.
pub struct PodmanBed {
    pub _lock: MutexGuard<'static, ()>,
    pub name: String,
    pub home: tempfile::TempDir,
    pub port: u16,
    pub bucket: String,
    pub key_id: String,
    pub secret: String,
    pub garage: Garage,
    /// Whether devbox's PATH has the `podman` whose `machine ssh` reaches the VM.
    pub podman_on_path: bool,
    /// Containers on this host's engine (CI's writable registry).
    pub host_containers: Vec<String>,
    /// Pods made in the VM, removed at the end.
    pub pods: Vec<String>,
}

impl PodmanBed {
    pub fn new(test: &str) -> PodmanBed {
        let lock = VM_LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let status = podman_sh(&["status"]);
        assert!(
            status.status.success(),
            "the testbed's podman VM is not running ({}): start it with `sh tests/testbed/podman/up.sh`",
            output_text(&status).trim()
        );
        let loaded = podman_sh(&["load", REGISTRY_IMAGE]);
        assert!(loaded.status.success(), "loading {REGISTRY_IMAGE} into the podman VM: {}", output_text(&loaded));
        let garage = Garage::find();
        let name = format!("dbxp-{test}-{}", std::process::id());
        let home = tempfile::tempdir().expect("temp HOME");
        let out = podman_sh(&["context", home.path().to_str().expect("utf-8")]);
        assert!(out.status.success(), "podman/vm.sh context: {}", output_text(&out));
        std::fs::create_dir_all(home.path().join("bin")).expect("mkdir bin");
        garage.run(&["bucket", "create", &name]);
        let key: Value =
            serde_json::from_str(&garage.run(&["json-api", "CreateKey", &format!("{{\"name\":\"{name}\"}}")]))
                .expect("CreateKey answers JSON");
        let key_id = key["accessKeyId"].as_str().expect("a key id").to_string();
        let secret = key["secretAccessKey"].as_str().expect("a secret").to_string();
        garage.run(&["bucket", "allow", "--read", "--write", &name, "--key", &key_id]);
        set_podman_vm_clock(0);
        let bed = PodmanBed {
            _lock: lock,
            port: free_port(),
            bucket: name.clone(),
            name,
            home,
            key_id,
            secret,
            garage,
            podman_on_path: false,
            host_containers: Vec::new(),
            pods: Vec::new(),
        };
        bed.write_config("");
        bed
    }

    /// Puts the `podman` whose `machine ssh` reaches the VM on devbox's PATH.
    pub fn with_podman_cli(&mut self) {
        fake_podman(&self.home.path().join("bin"));
        self.podman_on_path = true;
    }

    /// The config: the registry on S3 (Garage), unless `extra` says otherwise.
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

    pub fn runtime_dir(&self) -> PathBuf {
        self.home.path().join(".run")
    }

    /// `devbox` as a podman machine user on Linux runs it: no DOCKER_HOST and no current context, so
    /// it finds the machine's socket in XDG_RUNTIME_DIR; PATH holds `podman` only after
    /// `with_podman_cli`. Such a laptop has no /var/run/docker.sock, and this host's dockerd would
    /// answer there first: devbox runs in its own mount namespace, where that path is /dev/null.
    pub fn devbox(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("/usr/bin/unshare");
        cmd.args(["-m", "--propagation", "private", "/bin/sh", "-c"])
            .arg("mount --bind /dev/null /run/docker.sock && exec \"$0\" \"$@\"")
            .arg(env!("CARGO_BIN_EXE_devbox"))
            .args(args)
            .env_clear()
            .env("HOME", self.home.path())
            .env("XDG_RUNTIME_DIR", self.runtime_dir())
            .env("PATH", format!("{}:/usr/bin:/bin", self.home.path().join("bin").display()))
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

    /// Runs devbox with these variables set as well.
    pub fn run_with(&self, args: &[&str], vars: &[(&str, &str)]) -> Output {
        let mut cmd = self.devbox(args);
        cmd.envs(vars.iter().copied());
        run_within(cmd, Duration::from_secs(300))
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

    /// CI's writable registry on this host's native engine, on this bed's bucket (the only writer,
    /// as in production). Returns its port.
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
        let port_map = format!("127.0.0.1:{port}:5000");
        let (key, secret) =
            (format!("AWS_ACCESS_KEY_ID={}", self.key_id), format!("AWS_SECRET_ACCESS_KEY={}", self.secret));
        host_docker(
            &["create", "--name", &name, "-p", &port_map, "--add-host", "host.docker.internal:host-gateway"]
                .into_iter()
                .chain(["-e", &key, "-e", &secret, REGISTRY_IMAGE])
                .collect::<Vec<_>>(),
        );
        self.host_containers.push(name.clone());
        host_docker(&["cp", file.to_str().expect("utf-8"), &format!("{name}:/etc/docker/registry/config.yml")]);
        host_docker(&["start", &name]);
        crate::testbed::wait_http_ok(&format!("http://127.0.0.1:{port}/v2/"));
        port
    }

    /// Pushes a one-file image as CI would, as `name` (e.g. "podtest/base:1"), through CI's registry.
    pub fn push(&self, ci_port: u16, name: &str) {
        let reference = format!("127.0.0.1:{ci_port}/{name}");
        let dir = tempfile::tempdir().expect("tempdir");
        let data = format!("{} {name}", self.name);
        let tarball = crate::testbed::layer_tar(dir.path(), "data.txt", data.as_bytes());
        host_docker(&["import", tarball.to_str().expect("utf-8"), &reference]);
        host_docker(&["push", &reference]);
        host_docker(&["rmi", &reference]);
    }

    /// A pod in the VM (its infra container created, not started), removed at the end.
    pub fn pod(&mut self, name: &str) {
        let out = podman_in_vm(&format!("pod create --name {name}"));
        assert!(out.status.success(), "podman pod create: {}", output_text(&out));
        self.pods.push(name.to_string());
    }
}

impl Drop for PodmanBed {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(|| set_podman_vm_clock(0));
        for pod in &self.pods {
            let _ = podman_in_vm(&format!("pod rm -f {pod}"));
        }
        let _ = podman_docker(&["rm", "-f", "-v", &self.name]);
        let _ = podman_docker(&["volume", "rm", "-f", &format!("{}-data", self.name)]);
        let listed = podman_docker(&["image", "ls", "--format", "{{.Repository}}:{{.Tag}}"]);
        for image in String::from_utf8_lossy(&listed.stdout).lines().filter(|i| i.contains(&format!(":{}/", self.port)))
        {
            let _ = podman_docker(&["rmi", "-f", image]);
        }
        for container in &self.host_containers {
            let _ = Command::new("docker").args(["rm", "-f", "-v", container]).output();
        }
        let g = |args: &[&str]| Command::new(&self.garage.bin).arg("-c").arg(&self.garage.config).args(args).output();
        let _ = g(&["key", "delete", "--yes", &self.key_id]);
        let _ = g(&["bucket", "delete", "--yes", &self.bucket]);
    }
}
