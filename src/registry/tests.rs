//! The registry container as a config renders it (its storage, the hash that says when to recreate it, its lease) and `decide`'s choice to keep or recreate it.

use super::lease::Lease;
use super::*;
use crate::config::{BucketName, ByteSize, PullPolicy, S3Config, SessionMode, StorageChoice};

fn registry_config(bucket: Option<&str>, endpoint: &str) -> RegistryConfig {
    RegistryConfig {
        image: "registry:2.8.3".into(),
        pull: PullPolicy::Missing,
        container: "devbox-registry".into(),
        port: 5000,
        storage: StorageChoice::Auto,
        readonly: true,
        memory: ByteSize(512 << 20),
        cpu_shares: 512,
        pids_limit: 256,
        s3: S3Config {
            bucket: bucket.map(|b| BucketName::try_from(b.to_string()).expect("valid bucket")),
            region: "us-east-1".into(),
            root_directory: "/registry".into(),
            endpoint: endpoint.into(),
            path_style: !endpoint.is_empty(),
            profile: "devbox".into(),
            session: SessionMode::Auto,
            session_duration: std::time::Duration::from_secs(12 * 3600),
            role_arn: String::new(),
        },
    }
}

fn layout(line: Line) -> Layout {
    let cmd = match line {
        Line::V2 => "/etc/docker/registry/config.yml",
        Line::V3 => "/etc/distribution/config.yml",
    };
    Layout::of_image("registry", &["/entrypoint.sh".to_string()], &[cmd.to_string()]).expect("a known layout")
}

#[test]
fn s3_config_renders_read_only_with_redirects_off() {
    let config = registry_config(Some("acme-docker-registry"), "");
    insta::assert_snapshot!("registry_2_8_s3_aws", render_config(&config, Line::V2).expect("render"));
    insta::assert_snapshot!("registry_3_s3_aws", render_config(&config, Line::V3).expect("render"));
}

#[test]
fn a_localhost_endpoint_is_reached_through_the_host_gateway() {
    let config = registry_config(Some("acme-docker-registry"), "http://127.0.0.1:9000");
    let v2 = render_config(&config, Line::V2).expect("render");
    let v3 = render_config(&config, Line::V3).expect("render");
    // 2.8 always addresses the bucket by path behind an endpoint and has no such key; 3 must be told.
    assert!(!v2.contains("forcepathstyle"));
    assert!(v3.contains("forcepathstyle: true"));
    insta::assert_snapshot!("registry_2_8_s3_local_endpoint", v2);
    insta::assert_snapshot!("registry_3_s3_local_endpoint", v3);
}

#[test]
fn filesystem_config_is_writable_and_names_only_one_driver() {
    for (line, name) in [(Line::V2, "registry_2_8_filesystem"), (Line::V3, "registry_3_filesystem")] {
        let yaml = render_config(&registry_config(None, ""), line).expect("render");
        assert!(!yaml.contains("s3:"));
        // Neither line gets a debug listener or deletes, whatever the image's own default.
        assert!(!yaml.contains("debug:") && yaml.contains("delete:\n    enabled: false"), "{yaml}");
        insta::assert_snapshot!(name, yaml);
    }
}

#[test]
fn the_line_shapes_the_container() {
    let desired = Desired::from_config(&registry_config(None, ""), layout(Line::V3)).expect("desired");
    let spec = container_spec(&registry_config(None, ""), &desired, None);
    assert_eq!(spec.cmd, vec![line::CONFIG_PATH.to_string()]);
    assert!(spec.env.contains(&("OTEL_TRACES_EXPORTER".to_string(), "none".to_string())));
}

#[test]
fn container_endpoint_rewrites_only_loopback_hosts() {
    assert_eq!(container_endpoint("http://localhost:9000"), "http://host.docker.internal:9000");
    assert_eq!(container_endpoint("http://127.0.0.1:9000/"), "http://host.docker.internal:9000/");
    assert_eq!(container_endpoint("https://[::1]"), "https://host.docker.internal");
    assert_eq!(container_endpoint("http://127.0.0.10:9000"), "http://127.0.0.10:9000");
    assert_eq!(container_endpoint("https://minio.internal:9000"), "https://minio.internal:9000");
    assert_eq!(container_endpoint(""), "");
}

#[test]
fn the_hash_changes_with_the_config_but_not_otherwise() {
    let config = registry_config(Some("acme-docker-registry"), "");
    let a = Desired::from_config(&config, layout(Line::V2)).expect("desired");
    let b = Desired::from_config(&config, layout(Line::V2)).expect("desired");
    let mut moved = registry_config(Some("acme-docker-registry"), "");
    moved.port = 5001;
    let c = Desired::from_config(&moved, layout(Line::V2)).expect("desired");
    // The same tag, another line's image: another container.
    let d = Desired::from_config(&config, layout(Line::V3)).expect("desired");
    assert_eq!(a.hash, b.hash);
    assert_ne!(a.hash, c.hash);
    assert_ne!(a.hash, d.hash);
}

fn running(hash: &str, state: &str) -> ContainerInfo {
    ContainerInfo::for_tests(
        state,
        HashMap::from([
            (LABEL_MANAGED.to_string(), "true".to_string()),
            (LABEL_CONFIG_HASH.to_string(), hash.to_string()),
        ]),
        vec![],
    )
}

fn now() -> jiff::Timestamp {
    jiff::Timestamp::from_second(1_800_000_000).expect("a timestamp")
}

fn minutes(m: i64) -> jiff::Timestamp {
    now().checked_add(jiff::SignedDuration::from_mins(m)).expect("a timestamp")
}

/// A running registry made with `made_with` (its env and lease labels, as container_spec writes them).
fn made_with(desired: &Desired, made_with: &AwsCredentials) -> ContainerInfo {
    let spec = container_spec(&registry_config(Some("bucket"), ""), desired, Some(made_with));
    let env = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    ContainerInfo::for_tests("running", spec.labels, env)
}

#[test]
fn short_lived_credentials_are_kept_until_the_refresh_window() {
    let desired = Desired::from_config(&registry_config(Some("bucket"), ""), layout(Line::V3)).expect("desired");
    // An hour-long session, made 1 minute ago; the host now resolves a different session.
    let old = AwsCredentials::for_tests("ASIAOLD", Some(minutes(59)), minutes(-1));
    let existing = made_with(&desired, &old);
    let fresh = AwsCredentials::for_tests("ASIANEW", Some(minutes(60)), now());
    assert_eq!(decide(Some(&existing), &desired, Some(&fresh), now()), Action::Nothing);
    // 44 minutes left of 60: still outside the 15-minute window.
    assert_eq!(decide(Some(&existing), &desired, Some(&fresh), minutes(14)), Action::Nothing);
    assert_eq!(
        decide(Some(&existing), &desired, Some(&fresh), minutes(45)),
        Action::Recreate("its AWS credentials are about to expire")
    );
    assert_eq!(
        decide(Some(&existing), &desired, Some(&fresh), minutes(60)),
        Action::Recreate("its AWS credentials expired")
    );
}

#[test]
fn rotated_long_lived_keys_still_recreate() {
    let desired = Desired::from_config(&registry_config(Some("bucket"), ""), layout(Line::V3)).expect("desired");
    let old = AwsCredentials::for_tests("AKIAOLD", None, minutes(-600));
    let existing = made_with(&desired, &old);
    let same = AwsCredentials::for_tests("AKIAOLD", None, now());
    assert_eq!(decide(Some(&existing), &desired, Some(&same), now()), Action::Nothing);
    let rotated = AwsCredentials::for_tests("AKIANEW", None, now());
    assert_eq!(
        decide(Some(&existing), &desired, Some(&rotated), now()),
        Action::Recreate("the AWS credentials changed")
    );
    // From long-lived keys to a session, and back.
    let session = AwsCredentials::for_tests("ASIA", Some(minutes(60)), now());
    assert_eq!(
        decide(Some(&existing), &desired, Some(&session), now()),
        Action::Recreate("the AWS credentials changed")
    );
    let existing = made_with(&desired, &session);
    assert_eq!(
        decide(Some(&existing), &desired, Some(&rotated), now()),
        Action::Recreate("the AWS credentials changed")
    );
}

#[test]
fn a_session_minted_from_a_long_lived_key_follows_its_lease_and_its_key() {
    let desired = Desired::from_config(&registry_config(Some("bucket"), ""), layout(Line::V3)).expect("desired");
    let key = AwsCredentials::for_tests("AKIAKEY", None, minutes(-1));
    let existing = made_with(&desired, &AwsCredentials::minted_for_tests(&key, minutes(12 * 60 - 1), minutes(-1)));
    // The engine holds the session, never the key, and only the key's hash in a label.
    assert_eq!(existing.env_value("AWS_ACCESS_KEY_ID"), Some("ASIAMINTED"));
    assert_eq!(existing.label(LABEL_CREDENTIALS_KEY), key.source_key.as_deref());
    assert!(!format!("{:?}", existing.labels).contains("AKIAKEY"));
    // The same key on the host: the session is kept until its window, then renewed.
    let same = AwsCredentials::for_tests("AKIAKEY", None, now());
    assert_eq!(decide(Some(&existing), &desired, Some(&same), now()), Action::Nothing);
    assert_eq!(
        decide(Some(&existing), &desired, Some(&same), minutes(12 * 60 - 10)),
        Action::Recreate("its AWS credentials are about to expire")
    );
    // A rotated key: made again at once.
    let rotated = AwsCredentials::for_tests("AKIAROTATED", None, now());
    assert_eq!(
        decide(Some(&existing), &desired, Some(&rotated), now()),
        Action::Recreate("the AWS credentials changed")
    );
}

#[test]
fn hardening_and_the_session_setting_are_part_of_the_hash() {
    let config = registry_config(Some("bucket"), "");
    let base = Desired::from_config(&config, layout(Line::V3)).expect("desired").hash;
    let mut tighter = registry_config(Some("bucket"), "");
    tighter.pids_limit = 128;
    let mut off = registry_config(Some("bucket"), "");
    off.s3.session = SessionMode::Off;
    for changed in [tighter, off] {
        assert_ne!(Desired::from_config(&changed, layout(Line::V3)).expect("desired").hash, base);
    }
    // Filesystem storage holds no credentials: the session setting does not touch it.
    let mut fs_off = registry_config(None, "");
    fs_off.s3.session = SessionMode::Off;
    assert_eq!(
        Desired::from_config(&fs_off, layout(Line::V2)).expect("desired").hash,
        Desired::from_config(&registry_config(None, ""), layout(Line::V2)).expect("desired").hash
    );
}

#[test]
fn the_lease_is_read_back_from_the_labels() {
    let desired = Desired::from_config(&registry_config(Some("bucket"), ""), layout(Line::V3)).expect("desired");
    let session = AwsCredentials::for_tests("ASIA", Some(minutes(60)), now());
    let lease = lease_of(&made_with(&desired, &session));
    assert_eq!(lease, Lease { issued: Some(now()), expiry: Some(minutes(60)) });
    let long_lived = AwsCredentials::for_tests("AKIA", None, now());
    assert_eq!(lease_of(&made_with(&desired, &long_lived)), Lease { issued: None, expiry: None });
}

#[test]
fn decide_converges() {
    let desired = Desired::from_config(&registry_config(None, ""), layout(Line::V2)).expect("desired");
    assert_eq!(decide(None, &desired, None, now()), Action::Create);
    assert_eq!(decide(Some(&running(&desired.hash, "running")), &desired, None, now()), Action::Nothing);
    assert_eq!(decide(Some(&running(&desired.hash, "exited")), &desired, None, now()), Action::Start);
    assert_eq!(
        decide(Some(&running(&desired.hash, "created")), &desired, None, now()),
        Action::Recreate("a run was stopped while making it")
    );
    assert_eq!(
        decide(Some(&running("old", "running")), &desired, None, now()),
        Action::Recreate("the configuration changed")
    );
    let mut damaged = running(&desired.hash, "running");
    damaged.labels.insert(LABEL_CREDENTIALS_EXPIRY.to_string(), "2026-12-0".to_string());
    assert_eq!(
        decide(Some(&damaged), &desired, None, now()),
        Action::Recreate("its credentials' lease label is unreadable")
    );
    let foreign = ContainerInfo::for_tests("running", HashMap::new(), vec![]);
    assert_eq!(decide(Some(&foreign), &desired, None, now()), Action::Refuse);
}
