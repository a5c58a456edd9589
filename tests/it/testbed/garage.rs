//! The testbed's Garage (`tests/testbed/garage/`), an S3 server that expires keys: one handle,
//! found once, exactly as its scripts find it. moto accepts any key forever; Garage refuses a key
//! once its expiry has passed ("Access key … has expired") and a deleted key at once ("No such key").

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use super::Key;

/// Garage's S3 API, for the host (containers reach it as host.docker.internal:3900).
pub const ENDPOINT: &str = "http://127.0.0.1:3900";

/// The running testbed Garage, as `tests/testbed/garage/up.sh` left it.
pub struct Garage {
    /// Its state directory, which `mint-key` and `revoke-key` take as `--dir`.
    pub dir: PathBuf,
    bin: String,
    config: String,
    /// The tests' own long-lived key, owner of every test bucket.
    admin_key: Key,
}

static GARAGE: OnceLock<Garage> = OnceLock::new();

/// Garage's scripts: up.sh, mint-key, revoke-key.
pub fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testbed/garage")
}

/// The testbed's Garage; panics saying how to start it when it is not running.
pub fn garage() -> &'static Garage {
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
            "the testbed's Garage does not answer at {} (an S3 server that expires keys; the short-lived credentials and VM tests need it). {start}",
            value("ADMIN_API")
        );
        Garage {
            bin: value("GARAGE_BIN"),
            config: value("GARAGE_CONFIG"),
            admin_key: Key::new(&value("ADMIN_ACCESS_KEY_ID"), &value("ADMIN_SECRET_ACCESS_KEY")),
            dir,
        }
    })
}

impl Garage {
    /// Runs the garage CLI; panics with its output when it fails.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = self.cli_try(args);
        assert!(out.status.success(), "garage {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// Runs the garage CLI, for cleanup that goes on whatever it answers.
    fn cli_try(&self, args: &[&str]) -> Output {
        Command::new(&self.bin).arg("-c").arg(&self.config).args(args).output().expect("run garage")
    }

    /// Makes `bucket`, owned by the tests' long-lived key.
    pub fn create_bucket(&self, bucket: &str) {
        self.cli(&["bucket", "create", bucket]);
        self.cli(&["bucket", "allow", "--read", "--write", "--owner", bucket, "--key", &self.admin_key.id]);
    }

    /// A key that never expires, allowed to read and write `bucket`.
    pub fn create_key(&self, name: &str, bucket: &str) -> Key {
        let key = self.cli(&["json-api", "CreateKey", &format!("{{\"name\":\"{name}\"}}")]);
        let key: serde_json::Value = serde_json::from_str(&key).expect("CreateKey answers JSON");
        let key = Key::new(
            key["accessKeyId"].as_str().expect("a key id"),
            key["secretAccessKey"].as_str().expect("a secret"),
        );
        self.cli(&["bucket", "allow", "--read", "--write", bucket, "--key", &key.id]);
        key
    }

    /// A key from `mint-key` (what the tests' `credential_process` runs): allowed to read `bucket`,
    /// and to write it with `write`, for `lifetime` ("3h", "60m", "20s").
    pub fn mint_key(&self, bucket: &str, write: bool, lifetime: &str) -> Key {
        let mut cmd = Command::new(scripts().join("mint-key"));
        cmd.args(["--dir", self.dir.to_str().expect("utf-8"), "--bucket", bucket, "--lifetime", lifetime]);
        if write {
            cmd.arg("--write");
        }
        let minted = cmd.output().expect("run mint-key");
        assert!(minted.status.success(), "mint-key failed: {}", String::from_utf8_lossy(&minted.stderr));
        let key: serde_json::Value = serde_json::from_slice(&minted.stdout).expect("mint-key prints JSON");
        Key::new(key["AccessKeyId"].as_str().expect("key id"), key["SecretAccessKey"].as_str().expect("secret"))
    }

    /// Deletes `key_id` on the server: every request signed with it is refused from now on.
    pub fn revoke(&self, key_id: &str) {
        let out = Command::new(scripts().join("revoke-key"))
            .args(["--dir", self.dir.to_str().expect("utf-8"), key_id])
            .output()
            .expect("run revoke-key");
        assert!(out.status.success(), "revoke-key failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// The access key IDs granted on `bucket`, the tests' own key left out.
    pub fn keys_on(&self, bucket: &str) -> Vec<String> {
        let info = self.cli(&["json-api", "GetBucketInfo", &format!("{{\"globalAlias\":\"{bucket}\"}}")]);
        let info: serde_json::Value = serde_json::from_str(&info).expect("GetBucketInfo answers JSON");
        info["keys"]
            .as_array()
            .map(|keys| keys.iter().filter_map(|k| k["accessKeyId"].as_str()).map(String::from).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .filter(|id| *id != self.admin_key.id)
            .collect()
    }

    /// Deletes every key granted on `bucket`, what it holds, and the bucket. Whatever used those
    /// keys (a registry) must be gone first.
    pub fn remove_bucket(&self, bucket: &str) {
        for key in self.keys_on(bucket) {
            let _ = self.cli_try(&["key", "delete", "--yes", &key]);
        }
        // Empty the bucket (1,000 keys a round), then delete it.
        for _ in 0..50 {
            let (_, listing) = self.s3("GET", &format!("/{bucket}?list-type=2&max-keys=1000"));
            let keys: Vec<&str> =
                listing.split("<Key>").skip(1).filter_map(|rest| rest.split("</Key>").next()).collect();
            if keys.is_empty() {
                break;
            }
            for key in keys {
                let _ = self.s3("DELETE", &format!("/{bucket}/{key}"));
            }
        }
        let _ = self.cli_try(&["bucket", "delete", "--yes", bucket]);
    }

    /// An S3 request signed with the tests' long-lived key.
    fn s3(&self, method: &str, path: &str) -> (u16, String) {
        let out = Command::new("curl")
            .args(["-s", "-m", "10", "-o", "-", "-w", "\n%{http_code}", "-X", method])
            .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD", "--aws-sigv4", "aws:amz:us-east-1:s3"])
            .args(["--user", &format!("{}:{}", self.admin_key.id, self.admin_key.secret)])
            .arg(format!("{ENDPOINT}{path}"))
            .output()
            .expect("run curl");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }
}
