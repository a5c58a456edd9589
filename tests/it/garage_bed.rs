//! The testbed's expiring S3 server, Garage (`tests/testbed/garage/`), for the short-lived
//! credentials tests (issue 11). moto accepts any key forever; Garage refuses a key once its
//! expiry has passed ("Access key … has expired") and a deleted key at once ("No such key").
//!
//! `Bed::on_garage(test, lifetime)` is a `Bed` whose bucket lives on Garage (`S3Server::garage()`)
//! and whose AWS profile (`devbox`, in the bed's own HOME) takes its credentials from
//! `credential_process = mint-key …`: a fresh key with an `Expiration` on every call, the provider
//! path SSO and assumed roles take. The `Bed` removes its bucket and every key granted on it.
//! The Garage handle itself is `testbed/garage.rs`.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::testbed::{Bed, S3Server, docker, docker_try, garage};

impl Bed {
    /// One test's world on Garage: a bed whose profile mints keys that live `lifetime` ("60m",
    /// "3m", "20s"). devbox runs with that profile as its only source of credentials, and no OS
    /// scheduler.
    pub fn on_garage(test: &str, lifetime: &str) -> Bed {
        let bed = Bed::on_s3(test, S3Server::garage())
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env("DEVBOX_SCHEDULER", "none")
            .timeout(Duration::from_secs(180));
        bed.set_lifetime(lifetime);
        bed
    }

    /// The profile's `credential_process` from now on: mint-key with keys that live `lifetime`.
    pub fn set_lifetime(&self, lifetime: &str) {
        let mint = crate::testbed::garage::scripts().join("mint-key");
        let process = format!(
            "{} --dir {} --bucket {} --lifetime {lifetime}",
            mint.display(),
            garage().dir.display(),
            self.bucket
        );
        self.set_credential_process(&process);
    }

    /// The profile's `credential_process`, as given (a fault: one that hangs, fails, or prints garbage).
    pub fn set_credential_process(&self, process: &str) {
        write_profile(self, process);
    }

    /// A CI registry, one image of `bytes` pushed through it as `base/tool:1`, and a config that
    /// names it as the base image. Returns the reference `docker pull` takes through devbox's registry.
    pub fn with_base_image(&mut self, bytes: usize) -> String {
        let ci = self.ci_registry();
        self.push_image(ci, "base/tool:1", bytes);
        self.write_config(&format!("[images]\nbase = [\"base/tool:1\"]\nalias = \"{}/{{name}}\"\n", self.name));
        let local = format!("127.0.0.1:{}/base/tool:1", self.port);
        self.remove_image_later(&local);
        self.remove_image_later(&format!("{}/base/tool:1", self.name));
        local
    }

    /// `docker pull` of `reference` through the registry, from nothing: the local copy goes first.
    pub fn docker_pull(&self, reference: &str) -> (bool, String) {
        let _ = docker_try(&["rmi", "-f", reference]);
        docker_try(&["pull", reference])
    }

    /// The access key ID the registry container runs with (an ID, not a secret).
    pub fn registry_key_id(&self) -> String {
        let env = docker(&["inspect", "--format", "{{range .Config.Env}}{{println .}}{{end}}", &self.name]);
        env.lines().find_map(|l| l.strip_prefix("AWS_ACCESS_KEY_ID=")).expect("the registry has a key").to_string()
    }

    /// How many keys have been granted on this bed's bucket: one more for each credential_process run.
    pub fn keys_minted(&self) -> usize {
        garage().keys_on(&self.bucket).len()
    }

    /// Deletes `key_id` on the server: every request signed with it is refused from now on.
    pub fn revoke(&self, key_id: &str) {
        garage().revoke(key_id);
    }

    /// The registry container's ID, or `None` when there is none.
    pub fn container_id(&self) -> Option<String> {
        self.container_identity().map(|(id, _)| id)
    }

    /// Waits until the registry's credentials are past `label`'s time plus a margin.
    pub fn wait_past_expiry(&self, margin: Duration) {
        let expiry =
            docker(&["inspect", "--format", "{{index .Config.Labels \"devbox.credentials-expiry\"}}", &self.name]);
        let expiry: jiff::Timestamp = expiry.parse().unwrap_or_else(|e| panic!("expiry label {expiry:?}: {e}"));
        let until = expiry + jiff::SignedDuration::try_from(margin).expect("margin");
        let deadline = Instant::now() + Duration::from_secs(600);
        while jiff::Timestamp::now() < until {
            assert!(Instant::now() < deadline, "waited too long for {expiry}");
            std::thread::sleep(Duration::from_millis(250));
        }
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
