//! The testbed's expiring S3 server, Garage (`tests/testbed/garage/`), for the short-lived
//! credentials tests (issue 11). moto accepts any key forever; Garage refuses a key once its
//! expiry has passed ("Access key … has expired") and a deleted key at once ("No such key").
//!
//! `GarageBed::new(test, lifetime)` is a `Bed` whose bucket lives on Garage and whose AWS profile
//! (`devbox`, in the bed's own HOME) takes its credentials from `credential_process = mint-key …`:
//! a fresh key with an `Expiration` on every call, the provider path SSO and assumed roles take.
//! It removes its bucket and every key granted on it when dropped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::testbed::{Bed, REGISTRY_IMAGE, docker, docker_try, free_port, wait_http_ok};

/// Garage's S3 API, for the host (containers reach it as host.docker.internal:3900).
pub const ENDPOINT: &str = "http://127.0.0.1:3900";

/// The running testbed Garage, as `tests/testbed/garage/up.sh` left it.
struct Garage {
    dir: PathBuf,
    bin: String,
    config: String,
    admin_key: String,
    admin_secret: String,
}

static GARAGE: OnceLock<Garage> = OnceLock::new();

fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testbed/garage")
}

fn garage() -> &'static Garage {
    GARAGE.get_or_init(|| {
        let start = "Start it with `sh tests/testbed/up.sh` (or just Garage: `sh tests/testbed/garage/up.sh`).";
        // The state directory, found exactly as the scripts find it.
        let common = scripts().join("common.sh");
        let out = Command::new("sh")
            .args(["-c", &format!(". '{}'; echo \"$garage_dir\"", common.display())])
            .output()
            .expect("run sh");
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        let env = std::fs::read_to_string(dir.join("env")).unwrap_or_else(|e| {
            panic!("the tests need the testbed's Garage (an S3 server that expires keys), and {} cannot be read ({e}). {start}", dir.join("env").display())
        });
        let value = |key: &str| {
            env.lines()
                .find_map(|l| l.strip_prefix(&format!("{key}=")))
                .unwrap_or_else(|| panic!("{} has no {key}. {start}", dir.join("env").display()))
                .to_string()
        };
        let health = Command::new("curl").args(["-fsS", "-m", "2", "-o", "/dev/null", &format!("{}/health", value("ADMIN_API"))]).status();
        assert!(
            health.is_ok_and(|s| s.success()),
            "the testbed's Garage does not answer at {} (an S3 server that expires keys; the short-lived credentials tests need it). {start}",
            value("ADMIN_API")
        );
        Garage {
            bin: value("GARAGE_BIN"),
            config: value("GARAGE_CONFIG"),
            admin_key: value("ADMIN_ACCESS_KEY_ID"),
            admin_secret: value("ADMIN_SECRET_ACCESS_KEY"),
            dir,
        }
    })
}

impl Garage {
    /// Runs the garage CLI; panics with its output when it fails.
    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(&self.bin).arg("-c").arg(&self.config).args(args).output().expect("run garage");
        assert!(out.status.success(), "garage {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// An S3 request signed with the tests' long-lived key.
    fn s3(&self, method: &str, path: &str) -> (u16, String) {
        let out = Command::new("curl")
            .args(["-s", "-m", "10", "-o", "-", "-w", "\n%{http_code}", "-X", method])
            .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD", "--aws-sigv4", "aws:amz:us-east-1:s3"])
            .args(["--user", &format!("{}:{}", self.admin_key, self.admin_secret)])
            .arg(format!("{ENDPOINT}{path}"))
            .output()
            .expect("run curl");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }

    /// The access key IDs granted on `bucket`, the tests' own key left out.
    fn keys_on(&self, bucket: &str) -> Vec<String> {
        let info = self.cli(&["json-api", "GetBucketInfo", &format!("{{\"globalAlias\":\"{bucket}\"}}")]);
        let info: serde_json::Value = serde_json::from_str(&info).expect("GetBucketInfo answers JSON");
        info["keys"]
            .as_array()
            .map(|keys| keys.iter().filter_map(|k| k["accessKeyId"].as_str()).map(String::from).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .filter(|id| *id != self.admin_key)
            .collect()
    }
}

/// One test's world on Garage.
pub struct GarageBed {
    pub bed: Bed,
}

impl GarageBed {
    /// A bed on Garage whose profile mints keys that live `lifetime` ("60m", "3m", "20s").
    pub fn new(test: &str, lifetime: &str) -> GarageBed {
        let garage = garage();
        let bed = Bed::elsewhere(test, ENDPOINT);
        garage.cli(&["bucket", "create", &bed.bucket]);
        garage.cli(&["bucket", "allow", "--read", "--write", "--owner", &bed.bucket, "--key", &garage.admin_key]);
        let this = GarageBed { bed };
        this.set_lifetime(lifetime);
        this
    }

    /// The profile's `credential_process` from now on: mint-key with keys that live `lifetime`.
    pub fn set_lifetime(&self, lifetime: &str) {
        let mint = scripts().join("mint-key");
        let process = format!(
            "{} --dir {} --bucket {} --lifetime {lifetime}",
            mint.display(),
            garage().dir.display(),
            self.bed.bucket
        );
        self.set_credential_process(&process);
    }

    /// The profile's `credential_process`, as given (a fault: one that hangs, fails, or prints garbage).
    pub fn set_credential_process(&self, process: &str) {
        write_profile(&self.bed, process);
    }

    /// `devbox ARGS…` with this bed's HOME, its AWS profile as the only source of credentials, and
    /// no OS scheduler.
    pub fn devbox(&self, args: &[&str]) -> assert_cmd::Command {
        let mut cmd = assert_cmd::Command::from_std(self.devbox_std(args));
        cmd.timeout(Duration::from_secs(180));
        cmd
    }

    pub fn devbox_std(&self, args: &[&str]) -> Command {
        let mut cmd = self.bed.devbox_std(args);
        cmd.env_remove("AWS_ACCESS_KEY_ID").env_remove("AWS_SECRET_ACCESS_KEY").env("DEVBOX_SCHEDULER", "none");
        cmd
    }

    /// CI's writable registry on this bed's bucket, with a key allowed to write that outlives the
    /// test; returns its port.
    pub fn ci_registry(&mut self) -> u16 {
        let minted = Command::new(scripts().join("mint-key"))
            .args(["--dir", garage().dir.to_str().expect("utf-8"), "--bucket", &self.bed.bucket, "--write"])
            .args(["--lifetime", "3h"])
            .output()
            .expect("run mint-key");
        assert!(minted.status.success(), "mint-key --write failed: {}", String::from_utf8_lossy(&minted.stderr));
        let key: serde_json::Value = serde_json::from_slice(&minted.stdout).expect("mint-key prints JSON");
        let name = format!("{}-ci", self.bed.name);
        let port = free_port();
        let config = format!(
            "version: 0.1\nstorage:\n  s3:\n    region: us-east-1\n    bucket: {}\n    regionendpoint: http://host.docker.internal:3900\n    \
             rootdirectory: /registry\n    v4auth: true\n  redirect:\n    disable: true\nhttp:\n  addr: :5000\n",
            self.bed.bucket
        );
        let env_file = self.bed.home.path().join("ci-registry.env");
        // The key goes to docker through a file of the test's own, never on a command line.
        std::fs::write(
            &env_file,
            format!(
                "AWS_ACCESS_KEY_ID={}\nAWS_SECRET_ACCESS_KEY={}\n",
                key["AccessKeyId"].as_str().expect("key id"),
                key["SecretAccessKey"].as_str().expect("secret")
            ),
        )
        .expect("write env file");
        docker(&[
            "create",
            "--name",
            &name,
            "-p",
            &format!("127.0.0.1:{port}:5000"),
            "--add-host",
            "host.docker.internal:host-gateway",
            "--env-file",
            env_file.to_str().expect("utf-8"),
            REGISTRY_IMAGE,
        ]);
        self.bed.remove_container_later(&name);
        let file = self.bed.home.path().join("ci-registry.yml");
        std::fs::write(&file, config).expect("write CI registry config");
        docker(&["cp", file.to_str().expect("utf-8"), &format!("{name}:/etc/docker/registry/config.yml")]);
        docker(&["start", &name]);
        wait_http_ok(&format!("http://127.0.0.1:{port}/v2/"));
        port
    }

    /// A CI registry, one image of `bytes` pushed through it as `base/tool:1`, and a config that
    /// names it as the base image. Returns the reference `docker pull` takes through devbox's registry.
    pub fn with_base_image(&mut self, bytes: usize) -> String {
        let ci = self.ci_registry();
        self.bed.push_image(ci, "base/tool:1", bytes);
        self.bed.write_config(&format!("[images]\nbase = [\"base/tool:1\"]\nalias = \"{}/{{name}}\"\n", self.bed.name));
        let local = format!("127.0.0.1:{}/base/tool:1", self.bed.port);
        self.bed.remove_image_later(&local);
        self.bed.remove_image_later(&format!("{}/base/tool:1", self.bed.name));
        local
    }

    /// `docker pull` of `reference` through the registry, from nothing: the local copy goes first.
    pub fn docker_pull(&self, reference: &str) -> (bool, String) {
        let _ = docker_try(&["rmi", "-f", reference]);
        docker_try(&["pull", reference])
    }

    /// The access key ID the registry container runs with (an ID, not a secret).
    pub fn registry_key_id(&self) -> String {
        let env = docker(&["inspect", "--format", "{{range .Config.Env}}{{println .}}{{end}}", &self.bed.name]);
        env.lines().find_map(|l| l.strip_prefix("AWS_ACCESS_KEY_ID=")).expect("the registry has a key").to_string()
    }

    /// How many keys have been granted on this bed's bucket: one more for each credential_process run.
    pub fn keys_minted(&self) -> usize {
        garage().keys_on(&self.bed.bucket).len()
    }

    /// Deletes `key_id` on the server: every request signed with it is refused from now on.
    pub fn revoke(&self, key_id: &str) {
        let out = Command::new(scripts().join("revoke-key"))
            .args(["--dir", garage().dir.to_str().expect("utf-8"), key_id])
            .output()
            .expect("run revoke-key");
        assert!(out.status.success(), "revoke-key failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// The registry container's ID, or `None` when there is none.
    pub fn container_id(&self) -> Option<String> {
        self.bed.container_identity().map(|(id, _)| id)
    }

    /// Waits until the registry's credentials are past `label`'s time plus a margin.
    pub fn wait_past_expiry(&self, margin: Duration) {
        let expiry =
            docker(&["inspect", "--format", "{{index .Config.Labels \"devbox.credentials-expiry\"}}", &self.bed.name]);
        let expiry: jiff::Timestamp = expiry.parse().unwrap_or_else(|e| panic!("expiry label {expiry:?}: {e}"));
        let until = expiry + jiff::SignedDuration::try_from(margin).expect("margin");
        let deadline = Instant::now() + Duration::from_secs(600);
        while jiff::Timestamp::now() < until {
            assert!(Instant::now() < deadline, "waited too long for {expiry}");
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for GarageBed {
    fn drop(&mut self) {
        let garage = garage();
        let bucket = &self.bed.bucket;
        // The registries go first, so none holds a key while it is deleted.
        let _ = docker_try(&["rm", "-f", &self.bed.name, &format!("{}-ci", self.bed.name)]);
        for key in garage.keys_on(bucket) {
            let _ =
                Command::new(&garage.bin).arg("-c").arg(&garage.config).args(["key", "delete", "--yes", &key]).output();
        }
        // Empty the bucket (1,000 keys a round), then delete it.
        for _ in 0..50 {
            let (_, listing) = garage.s3("GET", &format!("/{bucket}?list-type=2&max-keys=1000"));
            let keys: Vec<&str> =
                listing.split("<Key>").skip(1).filter_map(|rest| rest.split("</Key>").next()).collect();
            if keys.is_empty() {
                break;
            }
            for key in keys {
                let _ = garage.s3("DELETE", &format!("/{bucket}/{key}"));
            }
        }
        let _ = Command::new(&garage.bin)
            .arg("-c")
            .arg(&garage.config)
            .args(["bucket", "delete", "--yes", bucket])
            .output();
    }
}

/// Writes the `devbox` profile of `bed`'s HOME with `credential_process` as its only source.
pub fn write_profile(bed: &Bed, process: &str) {
    let aws = bed.home.path().join(".aws");
    std::fs::create_dir_all(&aws).expect("mkdir .aws");
    std::fs::write(
        aws.join("config"),
        format!("[profile devbox]\nregion = us-east-1\ncredential_process = {process}\n"),
    )
    .expect("write ~/.aws/config");
}

/// A script in `bed`'s HOME, made executable; returns its path.
pub fn script(bed: &Bed, name: &str, body: &str) -> PathBuf {
    let path = bed.home.path().join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    let status = Command::new("chmod").args(["+x", path.to_str().expect("utf-8")]).status().expect("chmod");
    assert!(status.success());
    path
}
