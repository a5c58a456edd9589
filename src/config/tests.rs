//! The config's shape and validation, on the embedded defaults and small changes to them.

use super::*;

fn defaults() -> Config {
    super::defaults().expect("embedded defaults parse")
}

#[test]
fn embedded_defaults_are_valid_and_use_filesystem_storage() {
    let config = defaults();
    assert_eq!(config.validate(), Ok(()));
    assert_eq!(config.registry.storage(), Storage::Filesystem);
    assert_eq!(config.registry.port, 5000);
    assert_eq!(config.registry.volume(), "devbox-registry-data");
}

#[test]
fn auto_storage_is_s3_when_a_bucket_is_set() {
    let mut config = defaults();
    config.registry.s3.bucket = Some(BucketName::try_from("acme-registry".to_string()).expect("valid"));
    assert_eq!(config.registry.storage(), Storage::S3);
}

#[test]
fn s3_storage_without_bucket_names_the_key() {
    let mut config = defaults();
    config.registry.storage = StorageChoice::S3;
    let err = config.validate().expect_err("must fail");
    assert_eq!(err.key, "registry.storage");
}

#[test]
fn update_keys_are_checked() {
    let mut config = defaults();
    assert_eq!(config.update.github, "devbox/devbox");
    config.update.url = "dl.acme.dev/devbox".into();
    assert_eq!(config.validate().expect_err("must fail").key, "update.url");
    config.update.url = "http://dl.acme.dev/devbox/".into();
    assert!(config.validate().expect_err("plain http").message.contains("use https://"));
    config.update.url = "http://127.0.0.1:8000/devbox/".into();
    assert_eq!(config.validate(), Ok(()));
    config.update.url = "https://dl.acme.dev/devbox/".into();
    assert_eq!(config.validate(), Ok(()));
    config.update.public_key = "not a key".into();
    assert_eq!(config.validate().expect_err("must fail").key, "update.public_key");
    config.update.public_key = String::new();
    config.registry.s3.endpoint = "http://minio.lan:9000".into();
    assert_eq!(config.validate().expect_err("plain http").key, "registry.s3.endpoint");
    config.registry.s3.endpoint = "http://localhost:9000".into();
    assert_eq!(config.validate(), Ok(()));
    config.update.github = "acme".into();
    assert_eq!(config.validate().expect_err("must fail").key, "update.github");
    config.update.github = "acme/devbox".into();
    config.update.s3_bucket = "Not_A_Bucket".into();
    assert_eq!(config.validate().expect_err("must fail").key, "update.s3_bucket");
}

#[test]
fn fleet_reporting_is_off_by_default_and_its_prefix_is_checked() {
    let mut config = defaults();
    assert!(!config.fleet.report);
    assert_eq!(config.fleet.prefix, "devbox/fleet/");
    assert_eq!(config.fleet.stale_after, Duration::from_secs(3 * 24 * 3600));
    config.fleet.prefix = "devbox/fleet".into();
    assert_eq!(config.validate().expect_err("must fail").key, "fleet.prefix");
    config.fleet.prefix = "devbox/fleet/".into();
    config.fleet.name = "a\u{1b}[31m".into();
    assert_eq!(config.validate().expect_err("must fail").key, "fleet.name");
}

#[test]
fn session_and_limits_are_checked() {
    let config = defaults();
    assert_eq!(config.registry.s3.session, SessionMode::Auto);
    assert_eq!(config.registry.s3.session_duration, Duration::from_secs(12 * 3600));
    for (duration, ok) in [(14 * 60, false), (15 * 60, true), (36 * 3600, true), (36 * 3600 + 1, false)] {
        let mut config = defaults();
        config.registry.s3.session_duration = Duration::from_secs(duration);
        let key = config.validate().err().map(|e| e.key);
        assert_eq!(key, (!ok).then_some("registry.s3.session_duration"), "{duration}s");
    }
    let mut config = defaults();
    config.registry.memory = ByteSize(1024);
    assert_eq!(config.validate().expect_err("must fail").key, "registry.memory");
    let mut config = defaults();
    config.registry.cpu_shares = 1;
    assert_eq!(config.validate().expect_err("must fail").key, "registry.cpu_shares");
    let mut config = defaults();
    config.registry.pids_limit = 0;
    assert_eq!(config.validate().expect_err("must fail").key, "registry.pids_limit");
}

#[test]
fn container_names_follow_docker_rules() {
    assert!(is_container_name("devbox-registry"));
    assert!(is_container_name("a.b_c-1"));
    assert!(!is_container_name("-x"));
    assert!(!is_container_name("a b"));
    assert!(!is_container_name(""));
}
