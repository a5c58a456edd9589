//! No long-lived key inside the engine, and a hardened registry container (issue 18).
//!
//! With moto's STS, a long-lived key on the host becomes a session in the container: `docker
//! inspect` shows neither the key ID nor the secret, the lease is the session's expiry, a renewal
//! inside the window replaces it and a rotated key recreates the container. With Garage (no STS),
//! `auto` hands over the key and doctor warns; `required` refuses and leaves the registry alone.
//! On both registry lines and both storages, each CIS Docker Benchmark 5.x setting is read back
//! from `docker inspect`, and the registry still serves, refuses pushes on S3, and restarts.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::testbed::{Bed, REGISTRY_IMAGE, S3Server, docker, docker_try, layer_tar, output_text, wait_until};

/// A long-lived key as `~/.aws/credentials` holds one, distinctive enough to search for.
const KEY_ID: &str = "AKIADEVBOXLONGLIVED1";
const SECRET: &str = "long-lived-secret-that-must-stay-on-the-host-1";
/// The same user's key after a rotation.
const ROTATED_ID: &str = "AKIADEVBOXROTATED002";
const ROTATED_SECRET: &str = "rotated-secret-that-must-stay-on-the-host-22";
/// The access key ID moto's STS gives every session.
const MOTO_SESSION_KEY: &str = "AKIAIOSFODNN7EXAMPLE";

const V3_IMAGE: &str = "devbox-testbed/registry:3";

/// `devbox ARGS` on `bed`, with `key`/`secret` as the host's (long-lived) credentials.
fn with_key(bed: &Bed, args: &[&str], key: &str, secret: &str) -> std::process::Output {
    bed.devbox(args).env("AWS_ACCESS_KEY_ID", key).env("AWS_SECRET_ACCESS_KEY", secret).output().expect("run")
}

/// The container's environment, one `KEY=value` a line.
fn env_of(container: &str) -> String {
    docker(&["inspect", "--format", "{{range .Config.Env}}{{println .}}{{end}}", container])
}

fn env_value(container: &str, key: &str) -> Option<String> {
    env_of(container).lines().find_map(|l| l.strip_prefix(&format!("{key}="))).map(String::from)
}

fn label(container: &str, key: &str) -> String {
    docker(&["inspect", "--format", &format!("{{{{index .Config.Labels \"{key}\"}}}}"), container])
}

fn expiry_of(container: &str) -> jiff::Timestamp {
    let raw = label(container, "devbox.credentials-expiry");
    raw.parse().unwrap_or_else(|e| panic!("devbox.credentials-expiry {raw:?}: {e}"))
}

/// Whether `docker inspect` of `container`, all of it, shows `secret` anywhere.
fn inspect_shows(container: &str, secret: &str) -> bool {
    docker(&["inspect", container]).contains(secret)
}

/// doctor's `registry-container` finding, from `--json`.
fn registry_container_finding(bed: &Bed, key: Option<(&str, &str)>) -> serde_json::Value {
    let mut cmd = bed.devbox(&["doctor", "--json", "--check", "registry-container"]);
    if let Some((id, secret)) = key {
        cmd.env("AWS_ACCESS_KEY_ID", id).env("AWS_SECRET_ACCESS_KEY", secret);
    }
    let out = cmd.output().expect("run");
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("doctor --json: {e}\n{}", output_text(&out)));
    finding_of(&json)
}

/// The `registry-container` finding of a doctor `--json` report.
fn finding_of(json: &serde_json::Value) -> serde_json::Value {
    let checks = json["checks"].as_array().expect("checks");
    checks.iter().find(|c| c["id"] == "registry-container").cloned().unwrap_or_else(|| panic!("{json}"))
}

fn seconds_between(a: jiff::Timestamp, b: jiff::Timestamp) -> i64 {
    (b.as_second() - a.as_second()).abs()
}

#[test]
fn a_long_lived_key_stays_on_the_host_and_the_registry_gets_a_session() {
    let mut bed = Bed::new("stsmint");
    let ci = bed.ci_registry();
    bed.push_image(ci, "base/tool:1", 50_000);

    let up = with_key(&bed, &["registry", "up"], KEY_ID, SECRET);
    assert!(up.status.success(), "{}", output_text(&up));
    assert!(!output_text(&up).contains(SECRET), "the secret was printed");
    // Neither the key ID nor the secret is anywhere in what the engine keeps.
    assert!(!inspect_shows(&bed.name, KEY_ID), "docker inspect shows the key ID");
    assert!(!inspect_shows(&bed.name, SECRET), "docker inspect shows the secret");
    // The container's key is a session from STS, and its expiry is the lease: 12 hours by default.
    assert_eq!(env_value(&bed.name, "AWS_ACCESS_KEY_ID").as_deref(), Some(MOTO_SESSION_KEY));
    assert!(env_value(&bed.name, "AWS_SESSION_TOKEN").is_some_and(|t| !t.is_empty()));
    let expiry = expiry_of(&bed.name);
    let twelve_hours = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(12);
    assert!(seconds_between(expiry, twelve_hours) < 300, "the lease ends at {expiry}, not in 12 h");
    let key_hash = label(&bed.name, "devbox.credentials-key");
    assert_eq!(key_hash.len(), 32, "the minting key's hash: {key_hash:?}");

    // The registry works with its session, and doctor says it holds no long-lived key.
    let reference = format!("127.0.0.1:{}/base/tool:1", bed.port);
    let (pulled, said) = docker_try(&["pull", &reference]);
    assert!(pulled, "{said}");
    let finding = registry_container_finding(&bed, Some((KEY_ID, SECRET)));
    assert_eq!(finding["status"], "ok", "{finding}");
    assert_eq!(finding["details"]["long_lived_key"], "no", "{finding}");

    // The same key again: the session is good, nothing changes and no STS call is needed.
    let first = bed.container_identity();
    let again = with_key(&bed, &["registry", "up"], KEY_ID, SECRET);
    assert!(output_text(&again).contains("is already up"), "{}", output_text(&again));
    assert_eq!(bed.container_identity(), first);

    // A rotated key recreates the container, with a session from the new key.
    let rotated = with_key(&bed, &["registry", "up"], ROTATED_ID, ROTATED_SECRET);
    assert!(rotated.status.success(), "{}", output_text(&rotated));
    assert!(output_text(&rotated).contains("recreated: the AWS credentials changed"), "{}", output_text(&rotated));
    assert_ne!(bed.container_identity(), first);
    for secret in [KEY_ID, SECRET, ROTATED_ID, ROTATED_SECRET] {
        assert!(!inspect_shows(&bed.name, secret), "docker inspect shows {secret}");
    }
    assert_ne!(label(&bed.name, "devbox.credentials-key"), key_hash);
    let (pulled, said) = docker_try(&["pull", &reference]);
    assert!(pulled, "{said}");
}

#[test]
fn a_renewal_inside_the_window_replaces_the_session() {
    // A 15-minute session from an STS 14 minutes behind: it ends a minute after it is made, and
    // its window (a quarter of that) opens after 45 seconds.
    let bed = Bed::on_s3("stsrenew", S3Server::moto().slow_sts(Duration::from_secs(14 * 60)).start());
    bed.write_config("session_duration = \"15m\"\n");

    let up = with_key(&bed, &["registry", "up"], KEY_ID, SECRET);
    assert!(up.status.success(), "{}", output_text(&up));
    let first = bed.container_identity();
    let expiry = expiry_of(&bed.name);
    assert!(seconds_between(expiry, jiff::Timestamp::now() + jiff::SignedDuration::from_mins(1)) < 30);

    // Outside the window the renew job keeps it.
    let early = with_key(&bed, &["registry", "renew"], KEY_ID, SECRET);
    assert!(output_text(&early).contains("good until"), "{}", output_text(&early));
    assert_eq!(bed.container_identity(), first);

    // Inside it (the last 15 s), the renew job replaces the session.
    let inside = expiry - jiff::SignedDuration::from_secs(10);
    while jiff::Timestamp::now() < inside {
        std::thread::sleep(Duration::from_millis(250));
    }
    let renew = with_key(&bed, &["registry", "renew"], KEY_ID, SECRET);
    assert!(renew.status.success(), "{}", output_text(&renew));
    assert_ne!(bed.container_identity(), first, "the renewal kept the container: {}", output_text(&renew));
    assert!(expiry_of(&bed.name) > expiry, "the new session does not outlive the old one");
    assert!(env_value(&bed.name, "AWS_SESSION_TOKEN").is_some());
    assert!(!inspect_shows(&bed.name, KEY_ID) && !inspect_shows(&bed.name, SECRET));
}

/// A Garage key written as `~/.aws/credentials` writes one: no expiry, as far as devbox can tell.
fn long_lived_garage_key(bed: &Bed) -> (String, String) {
    let mint = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testbed/garage/mint-key");
    let out = Command::new(mint).args(["--bucket", &bed.bucket, "--lifetime", "3h"]).output().expect("mint-key");
    assert!(out.status.success(), "mint-key: {}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("mint-key prints JSON");
    let (id, secret) = (json["AccessKeyId"].as_str(), json["SecretAccessKey"].as_str());
    let (id, secret) = (id.expect("a key ID").to_string(), secret.expect("a secret").to_string());
    let aws = bed.home.path().join(".aws");
    std::fs::create_dir_all(&aws).expect("mkdir .aws");
    std::fs::write(aws.join("config"), "[profile devbox]\nregion = us-east-1\n").expect("write config");
    std::fs::write(
        aws.join("credentials"),
        format!("[devbox]\naws_access_key_id = {id}\naws_secret_access_key = {secret}\n"),
    )
    .expect("write credentials");
    (id, secret)
}

#[test]
fn without_sts_auto_hands_over_the_key_with_a_warning_and_required_refuses() {
    let mut bed = Bed::on_garage("stsnone", "60m");
    let reference = bed.with_base_image(50_000);
    let (key_id, _secret) = long_lived_garage_key(&bed);

    let up = bed.devbox(&["registry", "up"]).output().expect("run");
    assert!(up.status.success(), "{}", output_text(&up));
    assert_eq!(env_value(&bed.name, "AWS_ACCESS_KEY_ID").as_deref(), Some(key_id.as_str()));
    assert_eq!(env_value(&bed.name, "AWS_SESSION_TOKEN"), None);
    let (pulled, said) = bed.docker_pull(&reference);
    assert!(pulled, "{said}");

    // doctor warns (exit 0), and names the setting.
    let mut doctor = bed.devbox(&["doctor", "--json", "--check", "registry-container"]);
    let out = doctor.output().expect("run");
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let finding = &finding_of(&json);
    assert_eq!(finding["status"], "warn", "{finding}");
    assert_eq!(finding["details"]["long_lived_key"], "yes", "{finding}");
    let hint = finding["hint"].as_str().unwrap_or_default();
    assert!(hint.contains("long-lived AWS key") && hint.contains("registry.s3.session"), "{hint}");

    // `required` refuses with a configuration error, and the running registry stays as it was.
    let first = bed.container_id();
    bed.write_config(&format!(
        "session = \"required\"\n[images]\nbase = [\"base/tool:1\"]\nalias = \"{}/{{name}}\"\n",
        bed.name
    ));
    let refused = bed.devbox(&["registry", "up"]).output().expect("run");
    let said = output_text(&refused);
    println!("registry.s3.session = \"required\" on Garage, exit {:?}:\n{said}", refused.status.code());
    assert_eq!(refused.status.code(), Some(2), "{said}");
    assert!(said.contains("registry.s3.session = \"required\""), "{said}");
    assert!(said.contains("gives no session credentials"), "{said}");
    assert!(said.contains("The registry was left as it was"), "{said}");
    assert_eq!(bed.container_id(), first, "the registry was touched");
    assert_eq!(docker(&["inspect", "--format", "{{.State.Status}}", &bed.name]), "running");
    let (pulled, said) = bed.docker_pull(&reference);
    assert!(pulled, "{said}");
}

/// Makes sure `tag` is built from the current recipe (the script does nothing when it is).
fn registry_image(tag: &str, layout: &str) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testbed/registry-image.sh");
    let built = Command::new("sh").arg(script).args([tag, layout]).status().expect("run registry-image.sh");
    assert!(built.success(), "building {tag} failed (see above)");
    // Pinned by digest, as every bed's image is (a bare tag is a doctor warning).
    crate::testbed::pin_by_digest(tag)
}

/// Each CIS Docker Benchmark 5.x setting devbox sets, as the engine holds it.
fn assert_cis_settings(container: &str) {
    let host: serde_json::Value =
        serde_json::from_str(&docker(&["inspect", "--format", "{{json .HostConfig}}", container])).expect("JSON");
    let config: serde_json::Value =
        serde_json::from_str(&docker(&["inspect", "--format", "{{json .Config}}", container])).expect("JSON");
    // 5.11 memory, 5.12 CPU shares, 5.29 PIDs: the defaults in templates/devbox.toml.
    assert_eq!(host["Memory"], 512 * 1024 * 1024, "5.11: {host}");
    assert_eq!(host["CpuShares"], 512, "5.12: {host}");
    assert_eq!(host["PidsLimit"], 256, "5.29: {host}");
    // 5.13 a read-only root, with a small tmpfs where distribution may write.
    assert_eq!(host["ReadonlyRootfs"], true, "5.13: {host}");
    assert!(host["Tmpfs"]["/tmp"].as_str().is_some_and(|o| o.contains("size=16m")), "5.13: {host}");
    // 5.26 no new privileges; 5.3/5.4 no capabilities; 5.5 not privileged.
    assert_eq!(host["SecurityOpt"], serde_json::json!(["no-new-privileges"]), "5.26: {host}");
    assert_eq!(host["CapDrop"], serde_json::json!(["ALL"]), "5.3: {host}");
    assert_eq!(host["Privileged"], false, "5.5: {host}");
    // 5.27 a health check that asks the API.
    let test = config["Healthcheck"]["Test"].to_string();
    assert!(test.contains("http://127.0.0.1:5000/v2/"), "5.27: {config}");
}

fn health(container: &str) -> String {
    docker(&["inspect", "--format", "{{if .State.Health}}{{.State.Health.Status}}{{end}}", container])
}

fn wait_healthy(container: &str) {
    wait_until(format!("{container} to be healthy"), Duration::from_secs(120), || {
        let status = health(container);
        assert_ne!(status, "unhealthy", "{}", docker(&["inspect", "--format", "{{json .State.Health}}", container]));
        status == "healthy"
    });
}

/// A small image pushed to the bed's registry as `repo:1`: whether the push went through.
fn push(bed: &mut Bed, repo: &str) -> (bool, String) {
    let reference = format!("127.0.0.1:{}/{repo}:1", bed.port);
    let dir = tempfile::tempdir().expect("tempdir");
    let tarball = layer_tar(dir.path(), "data.bin", repo.as_bytes());
    docker(&["import", tarball.to_str().expect("utf-8"), &reference]);
    bed.remove_image_later(&reference);
    docker_try(&["push", &reference])
}

fn pull_fresh(reference: &str) -> (bool, String) {
    let _ = docker_try(&["rmi", "-f", reference]);
    docker_try(&["pull", reference])
}

/// The hardening on one image and storage: the settings, a healthy health check, a push refused
/// (S3) or taken by the volume (filesystem), pulls, and a restart that changes none of it.
fn hardened(test: &str, image: &str, s3: bool) {
    let mut bed = Bed::new(test);
    let reference = format!("127.0.0.1:{}/base/tool:1", bed.port);
    let registry = format!(
        "[registry]\nimage = \"{image}\"\npull = \"never\"\ncontainer = \"{}\"\nport = {}\n",
        bed.name, bed.port
    );
    if s3 {
        let ci = bed.ci_registry();
        bed.push_image(ci, "base/tool:1", 50_000);
        let text = std::fs::read_to_string(bed.config_path()).expect("read config");
        bed.write_raw_config(&text.replacen(
            &format!("image = \"{}\"", crate::testbed::registry_image_pinned()),
            &format!("image = \"{image}\""),
            1,
        ));
    } else {
        bed.write_raw_config(&registry);
    }
    let up = bed.devbox(&["registry", "up"]).output().expect("run");
    assert!(up.status.success(), "{}", output_text(&up));
    assert_cis_settings(&bed.name);
    wait_healthy(&bed.name);

    let (pushed, said) = push(&mut bed, "laptop/own");
    if s3 {
        assert!(!pushed, "a push to the S3 registry went through: {said}");
    } else {
        // The volume stays writable under a read-only root.
        assert!(pushed, "{said}");
        let (pushed, said) = push(&mut bed, "base/tool");
        assert!(pushed, "{said}");
    }
    let (pulled, said) = pull_fresh(&reference);
    assert!(pulled, "{said}");

    let first = bed.container_identity();
    docker(&["restart", &bed.name]);
    wait_healthy(&bed.name);
    let (pulled, said) = pull_fresh(&reference);
    assert!(pulled, "after a restart: {said}");
    bed.devbox(&["registry", "up"]).assert().success().stdout(predicates::str::contains("is already up"));
    assert_eq!(bed.container_identity(), first);

    let finding = registry_container_finding(&bed, None);
    assert_eq!(finding["status"], "ok", "{finding}");
    for setting in ["read_only_rootfs", "no_new_privileges", "cap_drop_all"] {
        assert_eq!(finding["details"][setting], "yes", "{setting}: {finding}");
    }
    assert_eq!(finding["details"]["health_check"], "healthy", "{finding}");
    assert_eq!(finding["details"]["pids_limit"], "256", "{finding}");
}

#[test]
fn hardened_on_line_2_8_with_s3() {
    hardened("hard28s3", &registry_image(REGISTRY_IMAGE, "2.8"), true);
}

#[test]
fn hardened_on_line_2_8_with_a_volume() {
    hardened("hard28fs", &registry_image(REGISTRY_IMAGE, "2.8"), false);
}

#[test]
fn hardened_on_line_3_with_s3() {
    hardened("hard3s3", &registry_image(V3_IMAGE, "3"), true);
}

#[test]
fn hardened_on_line_3_with_a_volume() {
    hardened("hard3fs", &registry_image(V3_IMAGE, "3"), false);
}
