//! devbox on the testbed's VM engine (tests/testbed/vm/): a Debian VM under QEMU running dockerd,
//! reached as colima exposes its engine (a socket and a docker context named `colima` in the
//! test's HOME). Its clock is the VM's own: pausing the VM's CPUs (`vm.sh pause N`) puts it N
//! seconds behind, as a laptop's sleep does, and a helper container with `date -s` can set it back
//! further. This host's clock is never touched.
//!
//! The VM is one shared engine and slow (software emulation: a container takes seconds to start),
//! so these tests take one lock each and run one after another, with generous timeouts. S3 is the
//! testbed's Garage (tests/testbed/garage/), which refuses request dates more than 24 h old.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use crate::testbed::free_port;

const REGISTRY_IMAGE: &str = "devbox-testbed/registry:2.8";
const GARAGE_ENV: &str = "/var/lib/devbox-testbed/garage/env";

/// One VM test at a time: they pause its CPUs, set its clock and count its containers.
static VM_LOCK: Mutex<()> = Mutex::new(());

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn vm_sh(args: &[&str]) -> Output {
    Command::new("sh").arg(repo().join("tests/testbed/vm/vm.sh")).args(args).output().expect("run vm.sh")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).expect("after 1970").as_secs() as i64
}

/// The docker CLI on the VM's engine.
fn vm_docker(args: &[&str]) -> Output {
    Command::new("docker").arg("-H").arg(format!("unix://{}", sock())).args(args).output().expect("run docker")
}

fn sock() -> String {
    String::from_utf8_lossy(&vm_sh(&["sock"]).stdout).trim().to_string()
}

/// Sets the VM's clock (its kernel's, never this host's) with a helper container, as devbox's
/// helper does: a root shell that is fed `date -s` once it is up. `behind`: that many seconds
/// behind this host's clock, set at the host's next whole second.
fn set_vm_clock(behind: i64) {
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
    assert!(out.status.success(), "setting the VM's clock failed: {said}{}", text(&out));
}

/// The testbed's Garage, from the env file its up.sh writes.
struct Garage {
    bin: String,
    config: String,
}

impl Garage {
    fn find() -> Garage {
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

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new(&self.bin).arg("-c").arg(&self.config).args(args).output().expect("run garage");
        assert!(out.status.success(), "garage {args:?} failed: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).to_string()
    }
}

/// One VM test's world: the lock, its own HOME with the `colima` context, a bucket and a
/// long-lived key on Garage, and its container names and port. It removes what it made.
struct VmBed {
    _lock: MutexGuard<'static, ()>,
    name: String,
    home: tempfile::TempDir,
    port: u16,
    bucket: String,
    key_id: String,
    secret: String,
    garage: Garage,
    /// Containers on this host's engine (CI's writable registry).
    host_containers: Vec<String>,
}

impl VmBed {
    fn new(test: &str) -> VmBed {
        let lock = VM_LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let status = vm_sh(&["status"]);
        assert!(
            status.status.success(),
            "the testbed's VM engine is not running ({}): start it with `sh tests/testbed/up.sh`",
            text(&status).trim()
        );
        let garage = Garage::find();
        let name = format!("dbxv-{test}-{}", std::process::id());
        let home = tempfile::tempdir().expect("temp HOME");
        let out = vm_sh(&["context", home.path().to_str().expect("utf-8")]);
        assert!(out.status.success(), "vm.sh context: {}", text(&out));
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

    fn write_config(&self, extra: &str) {
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
    fn devbox(&self, args: &[&str]) -> Command {
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
    fn run(&self, args: &[&str]) -> Output {
        run_within(self.devbox(args), Duration::from_secs(300))
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "devbox {args:?} failed:\n{}", text(&out));
        text(&out)
    }

    fn json(&self, args: &[&str]) -> (Value, i32) {
        let out = self.run(args);
        let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&out)));
        (json, out.status.code().unwrap_or(-1))
    }

    /// The engine's skew from the host, by `clock check --json`, in seconds.
    fn engine_skew(&self) -> f64 {
        let (report, _) = self.json(&["clock", "check", "--json"]);
        skew(&report, "engine", "host")
    }

    /// CI's writable registry on this host's native engine, on this bed's bucket (the only
    /// writer, as in production). Returns its port.
    fn ci_registry(&mut self) -> u16 {
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
        wait_for(Duration::from_secs(30), "CI's registry to answer", || {
            Command::new("curl")
                .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", &format!("http://127.0.0.1:{port}/v2/")])
                .output()
                .is_ok_and(|o| o.stdout == b"200")
        });
        port
    }

    /// Pushes a small image as CI would, as `name` (e.g. "vmtest/base:1"), through CI's registry.
    fn push(&self, ci_port: u16, name: &str) {
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

fn host_docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("run docker");
    assert!(out.status.success(), "docker {args:?} failed: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn run_within(mut cmd: Command, limit: Duration) -> Output {
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

fn wait_for(limit: Duration, what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ready() {
        assert!(Instant::now() < deadline, "waited {limit:?} for {what}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn skew(report: &Value, a: &str, b: &str) -> f64 {
    report["skews"]
        .as_array()
        .expect("skews")
        .iter()
        .find(|s| s["a"] == a && s["b"] == b)
        .and_then(|s| s["skew_seconds"].as_f64())
        .unwrap_or_else(|| panic!("no {a} vs {b} skew in {report:#}"))
}

fn finding<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["checks"].as_array().expect("checks").iter().find(|c| c["id"] == id).unwrap_or_else(|| panic!("no {id}"))
}

#[test]
fn vm_engine_is_classified_from_the_real_engine_and_its_three_clocks_read() {
    let bed = VmBed::new("classify");
    let (report, code) = bed.json(&["clock", "check", "--json"]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["engine"]["runtime"], "colima", "{report:#}");
    assert_eq!(report["engine"]["vm"], true);
    assert_eq!(report["engine"]["forced"], false);
    for clock in ["host", "engine", "s3"] {
        let reading = report["clocks"].as_array().expect("clocks").iter().find(|c| c["clock"] == clock);
        let reading = reading.unwrap_or_else(|| panic!("no {clock} clock in {report:#}"));
        assert!(reading["offset_seconds"].is_number(), "the {clock} clock was not read: {reading:#}");
    }
    let endpoint = report["clocks"][1]["source"].as_str().unwrap_or_default().to_string();
    assert!(endpoint.ends_with("/.colima/default/docker.sock"), "reached through the colima context: {endpoint}");
}

#[test]
fn vm_a_paused_vm_is_synced_to_within_half_a_second() {
    let bed = VmBed::new("pause");
    let pause = vm_sh(&["pause", "20"]);
    assert!(pause.status.success(), "vm.sh pause: {}", text(&pause));
    let behind = bed.engine_skew();
    assert!((-23.0..=-17.0).contains(&behind), "after a 20 s pause the VM is {behind} s off");
    let out = bed.ok(&["clock", "sync", "--if-skewed"]);
    assert!(out.contains("set the engine's clock"), "{out}");
    let after = bed.engine_skew();
    eprintln!("paused 20 s: {behind:+.3} s; after clock sync --if-skewed: {after:+.3} s");
    assert!(after.abs() < 0.5, "after clock sync the VM is {after} s off:\n{out}");
    // The scheduled job then has nothing to do.
    let again = bed.ok(&["clock", "sync", "--if-skewed"]);
    assert!(!again.contains("set the engine's clock"), "{again}");
}

#[test]
fn vm_disk_check_measures_the_vms_disk_not_this_hosts() {
    let bed = VmBed::new("disk");
    bed.ok(&["registry", "up"]);
    let (report, code) = bed.json(&["doctor", "--check", "disk", "--json", "--timeout", "60s"]);
    let disk = finding(&report, "disk");
    assert_eq!(code, 0, "{report:#}");
    let total: u64 = disk["details"]["total_bytes"].as_str().and_then(|s| s.parse().ok()).expect("total_bytes");
    let gib = total as f64 / (1u64 << 30) as f64;
    let host = fs4::statvfs("/var/lib/docker").map(|s| s.total_space()).unwrap_or(0);
    eprintln!("the VM's disk: {gib:.1} GiB; this host's /var/lib/docker: {:.0} GiB", host as f64 / (1u64 << 30) as f64);
    assert!((3.0..=12.0).contains(&gib), "the VM's disk is about 6 GiB, the check says {gib:.1} GiB: {disk:#}");
    assert_ne!(total, host, "the check measured this host's disk");
    let summary = disk["summary"].as_str().unwrap_or_default();
    assert!(summary.contains("inside colima's VM"), "{summary}");
    assert_eq!(disk["details"]["measured"], format!("df in container {}", bed.name));

    // Without a running registry, a probe container measures the same disk, and leaves nothing.
    bed.ok(&["registry", "down"]);
    let (report, _) = bed.json(&["doctor", "--check", "disk", "--json", "--timeout", "120s"]);
    let disk = finding(&report, "disk");
    let probed: u64 = disk["details"]["total_bytes"].as_str().and_then(|s| s.parse().ok()).expect("total_bytes");
    assert_eq!(probed, total, "{disk:#}");
    let left = vm_docker(&["ps", "-a", "--filter", "label=devbox.role=disk-probe", "-q"]);
    assert_eq!(String::from_utf8_lossy(&left.stdout).trim(), "", "a probe container was left behind");
}

#[test]
fn vm_a_day_behind_doctor_names_the_clock_and_fix_brings_the_registry_back() {
    let mut bed = VmBed::new("day");
    bed.write_config("[images]\nbase = [\"vmtest/base:1\"]\nalias = \"\"\n");
    let ci = bed.ci_registry();
    bed.push(ci, "vmtest/base:1");
    bed.ok(&["registry", "up"]);
    bed.ok(&["pull"]);

    // 25 hours behind: Garage refuses the registry's requests ("Date is too old").
    set_vm_clock(25 * 3600);
    // The registry's storage health check needs three failures, 10 s apart, to give up.
    std::thread::sleep(Duration::from_secs(35));
    let (report, code) = bed.json(&["doctor", "--json", "--timeout", "60s"]);
    assert_eq!(code, 1, "{report:#}");
    let clock = finding(&report, "clock");
    assert_eq!(clock["status"], "fail", "{clock:#}");
    assert_eq!(clock["fix"], "devbox clock sync", "{clock:#}");
    let api = finding(&report, "registry-api");
    assert_eq!(api["status"], "fail", "{api:#}");
    let summary = api["summary"].as_str().unwrap_or_default();
    assert!(summary.contains("clock"), "the registry's failure names the clock: {api:#}");
    assert_eq!(api["fix"], "devbox clock sync", "{api:#}");

    let fixed = bed.run(&["doctor", "--fix", "--yes", "--timeout", "60s"]);
    assert!(fixed.status.success(), "doctor --fix --yes:\n{}", text(&fixed));
    let (report, code) = bed.json(&["doctor", "--json", "--timeout", "60s"]);
    assert_eq!(code, 0, "{report:#}");
    let clock = finding(&report, "clock");
    assert_eq!(clock["status"], "ok", "doctor --fix converged on the clock: {clock:#}");
    // A pull works again through the registry on the VM.
    vm_docker(&["rmi", "-f", &format!("127.0.0.1:{}/vmtest/base:1", bed.port)]);
    let pulled = bed.ok(&["pull"]);
    assert!(pulled.contains("vmtest/base:1"), "{pulled}");
}

#[test]
fn vm_registry_pull_and_cleanup_work_as_on_a_native_engine() {
    let mut bed = VmBed::new("cleanup");
    bed.write_config("[images]\nbase = [\"vmtest/base:1\"]\nalias = \"\"\n[cleanup]\nolder_than = \"1s\"\n");
    let ci = bed.ci_registry();
    bed.push(ci, "vmtest/base:1");
    bed.ok(&["registry", "up"]);
    let pulled = bed.ok(&["pull"]);
    assert!(pulled.contains("vmtest/base:1"), "{pulled}");
    let image = format!("127.0.0.1:{}/vmtest/base:1", bed.port);
    let listed = vm_docker(&["image", "inspect", &image]);
    assert!(listed.status.success(), "{image} is not on the VM's engine after the pull");

    // A stopped container past its grace period goes; the registry and the base image stay.
    let stopped = format!("{}-stopped", bed.name);
    let made = vm_docker(&["create", "--name", &stopped, "--entrypoint", "/bin/date", REGISTRY_IMAGE]);
    assert!(made.status.success(), "{}", text(&made));
    // Its anonymous volume (the image declares one) stays, as cleanup keeps every volume: this
    // test removes it.
    let volume = vm_docker(&["inspect", "--format", "{{range .Mounts}}{{.Name}}{{end}}", &stopped]);
    let volume = String::from_utf8_lossy(&volume.stdout).trim().to_string();
    std::thread::sleep(Duration::from_secs(2));
    let out = bed.ok(&["cleanup"]);
    if !volume.is_empty() {
        let _ = vm_docker(&["volume", "rm", &volume]);
    }
    assert!(!vm_docker(&["inspect", &stopped]).status.success(), "{stopped} was not removed:\n{out}");
    assert!(vm_docker(&["inspect", &bed.name]).status.success(), "the registry was removed:\n{out}");
    assert!(vm_docker(&["image", "inspect", &image]).status.success(), "the base image was removed:\n{out}");
    assert!(out.contains("inside colima's VM"), "cleanup reports the VM's disk:\n{out}");
}

#[test]
fn vm_schedule_install_and_init_dry_run_include_the_clock_job_with_cron() {
    let _lock = VM_LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let status = vm_sh(&["status"]);
    assert!(status.status.success(), "the testbed's VM engine is not running: start it with `sh tests/testbed/up.sh`");
    let user = crate::schedule::TestUser::new("vmclk");
    let home = user.home.to_str().expect("utf-8").to_string();
    let out = vm_sh(&["context", &home]);
    assert!(out.status.success(), "vm.sh context: {}", text(&out));
    let config = user.home.join(".config/devbox/devbox.toml");
    std::fs::create_dir_all(config.parent().expect("parent")).expect("mkdir");
    std::fs::write(&config, format!("[registry]\nimage = \"{REGISTRY_IMAGE}\"\npull = \"never\"\n")).expect("config");
    let chown = Command::new("chown").args(["-R", &format!("{}:", user.name), &home]).status().expect("chown");
    assert!(chown.success());
    // As the user, with the `colima` context in its HOME and no DOCKER_HOST.
    let devbox = |args: &[&str]| {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", &user.name, "--", "env", "-i"])
            .arg(format!("HOME={home}"))
            .args(["PATH=/usr/local/bin:/usr/bin:/bin", "NO_COLOR=1"])
            .arg(format!("USER={}", user.name))
            .arg(&user.bin)
            .args(args);
        run_within(cmd, Duration::from_secs(120))
    };

    let plan = devbox(&["init", "--dry-run", "--yes"]);
    let plan_text = text(&plan);
    assert!(plan_text.contains("clock sync --if-skewed"), "init's dry run plans the clock fix:\n{plan_text}");
    assert!(plan_text.contains("clock"), "{plan_text}");

    let install = devbox(&["schedule", "install", "--backend", "cron"]);
    assert!(install.status.success(), "{}", text(&install));
    assert!(text(&install).contains("clock job installed (crontab)"), "{}", text(&install));
    let crontab = user.crontab();
    let line = crontab.lines().find(|l| l.contains("--scheduled-job clock")).unwrap_or_else(|| panic!("{crontab}"));
    assert!(line.contains("clock sync --if-skewed --quiet"), "{line}");
    assert!(line.starts_with("*/10 "), "every clock.interval (10m): {line}");
    let remove = devbox(&["schedule", "remove", "--backend", "cron"]);
    assert!(remove.status.success(), "{}", text(&remove));
}
