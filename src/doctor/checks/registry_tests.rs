//! The registry container check's verdicts, on containers as the engine describes them.

use super::*;

fn found(container: Option<ContainerSeen>) -> ContainerFound {
    ContainerFound {
        name: "devbox-registry".into(),
        port: 5000,
        container: Ok(container),
        port_held: false,
        desired_hash: Some("abc".into()),
        now: jiff::Timestamp::from_second(1_800_000_000).expect("a timestamp"),
        hardening: hardened(),
        session: SessionMode::Auto,
        image: "registry:3.0.0@sha256:1".into(),
        pin: PinVerdict::Matches { digest: "sha256:1".into() },
    }
}

fn hardened() -> Hardening {
    let mut config = crate::config::defaults().expect("embedded defaults parse").registry;
    config.pids_limit = 256;
    registry::hardening(&config)
}

fn running() -> ContainerSeen {
    ContainerSeen {
        state: "running".into(),
        managed: true,
        published: vec!["127.0.0.1:5000".into()],
        storage: Some("s3".into()),
        readonly: true,
        config_hash: Some("abc".into()),
        image: "registry:2.8".into(),
        id: "0123456789abcdef".into(),
        lease: Lease::default(),
        long_lived_key: false,
        hardening: hardened(),
        health: Some("healthy".into()),
    }
}

#[test]
fn a_current_read_only_registry_on_loopback_passes() {
    let finding = judge_container(&found(Some(running())));
    assert_eq!(finding.status, Status::Ok);
    assert_eq!(finding.summary, "devbox-registry running on 127.0.0.1:5000, s3, read-only");
    assert_eq!(finding.details.get("id").map(String::as_str), Some("0123456789ab"));
    assert_eq!(finding.remedy, None);
    // When the current config's hash cannot be worked out, nothing is said of it.
    let unknown =
        ContainerFound { desired_hash: None, ..found(Some(ContainerSeen { config_hash: None, ..running() })) };
    assert_eq!(judge_container(&unknown).status, Status::Ok);
}

#[test]
fn a_registry_from_an_older_config_is_a_warning_that_registry_up_fixes() {
    let finding = judge_container(&found(Some(ContainerSeen { config_hash: Some("old".into()), ..running() })));
    assert_eq!(finding.status, Status::Warn);
    assert_eq!(finding.remedy, Some(Remedy::RegistryUp));
    assert!(finding.hint.unwrap_or_default().contains("older devbox.toml"));
}

#[test]
fn a_missing_or_stopped_registry_fails_and_registry_up_fixes_it() {
    let missing = judge_container(&found(None));
    assert_eq!((missing.status, missing.remedy), (Status::Fail, Some(Remedy::RegistryUp)));
    assert_eq!(missing.summary, "devbox-registry does not exist");

    let stopped = judge_container(&found(Some(ContainerSeen { state: "exited".into(), ..running() })));
    assert_eq!((stopped.status, stopped.remedy), (Status::Fail, Some(Remedy::RegistryUp)));
    assert_eq!(stopped.summary, "devbox-registry is exited");
    assert_eq!(stopped.fix.as_deref(), Some("devbox registry up"));
}

#[test]
fn a_port_held_by_another_process_is_named_instead_and_not_fixed() {
    for container in [None, Some(ContainerSeen { state: "exited".into(), ..running() })] {
        let finding = judge_container(&ContainerFound { port_held: true, ..found(container) });
        assert_eq!(finding.status, Status::Fail);
        assert_eq!(finding.summary, "port 5000 on 127.0.0.1 is held by another process");
        assert!(finding.hint.unwrap_or_default().contains("lsof -iTCP:5000"));
        assert_eq!((finding.fix, finding.remedy), (None, None));
    }
}

#[test]
fn a_container_devbox_did_not_make_is_left_to_the_user() {
    let finding = judge_container(&found(Some(ContainerSeen { managed: false, ..running() })));
    assert_eq!(finding.status, Status::Fail);
    assert!(finding.hint.unwrap_or_default().contains("docker rm -f devbox-registry"));
    assert_eq!((finding.fix, finding.remedy), (None, None));
}

#[test]
fn an_exposed_or_writable_registry_fails_with_a_recreate_command_not_a_remedy() {
    let exposed = ContainerSeen { published: vec!["0.0.0.0:5000".into()], ..running() };
    let writable = ContainerSeen { readonly: false, ..running() };
    for (seen, summary) in [
        (exposed, "devbox-registry is published on 0.0.0.0:5000, not only on 127.0.0.1"),
        (writable, "devbox-registry is writable on S3 storage"),
    ] {
        let finding = judge_container(&found(Some(seen)));
        assert_eq!((finding.status, finding.summary.as_str()), (Status::Fail, summary));
        assert_eq!(finding.fix.as_deref(), Some("devbox registry down && devbox registry up"));
        assert_eq!(finding.remedy, None);
    }
    // A writable filesystem registry is the laptop's own cache: fine.
    let local = ContainerSeen { storage: Some("filesystem".into()), readonly: false, ..running() };
    assert_eq!(judge_container(&found(Some(local))).summary, "devbox-registry running on 127.0.0.1:5000, filesystem");
}

#[test]
fn each_hardening_setting_is_reported_and_a_missing_one_is_a_warning() {
    let ok = judge_container(&found(Some(running())));
    assert_eq!(ok.status, Status::Ok, "{ok:?}");
    for key in ["read_only_rootfs", "no_new_privileges", "cap_drop_all"] {
        assert_eq!(ok.details.get(key).map(String::as_str), Some("yes"), "{key}");
    }
    assert_eq!(ok.details.get("pids_limit").map(String::as_str), Some("256"));
    assert_eq!(ok.details.get("health_check").map(String::as_str), Some("healthy"));
    assert_eq!(ok.details.get("long_lived_key").map(String::as_str), Some("no"));

    let soft = judge_container(&found(Some(ContainerSeen { hardening: Hardening::default(), ..running() })));
    assert_eq!((soft.status, soft.remedy), (Status::Warn, Some(Remedy::RegistryUp)), "{soft:?}");
    assert_eq!(soft.details.get("read_only_rootfs").map(String::as_str), Some("missing"));
    assert!(soft.hint.unwrap_or_default().contains("read_only_rootfs, no_new_privileges"));
}

#[test]
fn a_long_lived_key_in_the_registry_is_a_warning_that_names_the_setting() {
    let holding = ContainerSeen { long_lived_key: true, ..running() };
    let auto = judge_container(&found(Some(holding.clone())));
    assert_eq!(auto.status, Status::Warn);
    assert_eq!(auto.details.get("long_lived_key").map(String::as_str), Some("yes"));
    let hint = auto.hint.unwrap_or_default();
    assert!(hint.contains("long-lived AWS key") && hint.contains("registry.s3.session"), "{hint}");
    let off = judge_container(&ContainerFound { session: SessionMode::Off, ..found(Some(holding)) });
    assert!(off.hint.unwrap_or_default().contains("registry.s3.session = \"off\""));
}

#[test]
fn an_engine_error_is_the_finding() {
    let refused = crate::engine::EngineError::Refused {
        what: "inspecting container devbox-registry".into(),
        status: 500,
        message: "engine said no".into(),
    };
    let finding = judge_container(&ContainerFound { container: Err(refused.into()), ..found(None) });
    assert_eq!(
        (finding.status, finding.summary.as_str()),
        (Status::Fail, "inspecting container devbox-registry failed: engine said no")
    );
    assert!(finding.hint.unwrap_or_default().contains("devbox doctor --check engine"));
    let unanswered = judge_container(&ContainerFound { container: Err(ContainerUnseen::NoEngine), ..found(None) });
    assert_eq!(unanswered.summary, "the engine did not answer, so the registry container was not looked at");
}

#[test]
fn the_registrys_own_credentials_are_judged_by_their_lease() {
    let at = |secs: i64| jiff::Timestamp::from_second(1_800_000_000 + secs).expect("a timestamp");
    let with_lease = |issued: i64, expiry: i64| {
        found(Some(ContainerSeen { lease: Lease { issued: Some(at(issued)), expiry: Some(at(expiry)) }, ..running() }))
    };
    // An hour-long session made 10 minutes ago: ok, with its expiry shown.
    let fresh = judge_container(&with_lease(-600, 3000));
    assert_eq!(fresh.status, Status::Ok, "{fresh:?}");
    assert!(fresh.details.get("credentials").is_some_and(|v| v.contains("expire in 50 min")), "{fresh:?}");
    // Within the last quarter: a warning, fixed by `registry up`.
    let due = judge_container(&with_lease(-3000, 600));
    assert_eq!((due.status, due.remedy), (Status::Warn, Some(Remedy::RegistryUp)), "{due:?}");
    // Expired: a failure that names them, fixed by `registry up`.
    let expired = judge_container(&with_lease(-3600, -1));
    assert_eq!((expired.status, expired.remedy), (Status::Fail, Some(Remedy::RegistryUp)), "{expired:?}");
    assert!(expired.summary.contains("AWS credentials expired"), "{expired:?}");
    // Long-lived keys: nothing to judge.
    assert_eq!(judge_container(&found(Some(running()))).status, Status::Ok);
}
