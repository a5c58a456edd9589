use super::*;

const HOUR: i64 = 3600;

fn t(secs_ago: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 - secs_ago).expect("valid")
}

fn clocks() -> Clocks {
    Clocks { engine: t(0), host: t(0) }
}

fn policy() -> Policy {
    Policy {
        older_than: Duration::from_secs(24 * 3600),
        keep_labels: vec![KeepLabel::try_from("devbox.keep".to_string()).expect("label")],
        build_cache: true,
        max_disk: None,
        protected_images: vec![
            "127.0.0.1:5000/base/go:1.23".into(),
            "acme/base/go:1.23".into(),
            "registry:2.8.3".into(),
        ],
        managed_label: "devbox.managed".into(),
        max_skew: Duration::from_secs(2),
    }
}

fn container(name: &str, state: &str, image_id: &str, finished_ago: Option<i64>) -> ContainerEntry {
    ContainerEntry {
        id: format!("id-{name}"),
        name: name.into(),
        image: image_id.into(),
        image_id: image_id.into(),
        state: state.into(),
        labels: HashMap::new(),
        created: t(100 * HOUR),
        started_at: finished_ago.map(|f| t(f + 60)),
        finished_at: finished_ago.map(t),
        size_rw: Some(10),
    }
}

fn image(id: &str, tags: &[&str], created_ago: i64, size: u64) -> ImageEntry {
    ImageEntry {
        id: id.into(),
        tags: tags.iter().map(|s| s.to_string()).collect(),
        digests: vec![],
        created: t(created_ago),
        size,
        labels: HashMap::new(),
    }
}

fn labelled<T>(mut item: T, key: &str, value: &str, labels: impl Fn(&mut T) -> &mut HashMap<String, String>) -> T {
    labels(&mut item).insert(key.into(), value.into());
    item
}

fn ids(removals: &[Removal]) -> Vec<&str> {
    removals.iter().map(|r| r.id.as_str()).collect()
}

fn kept_reason(plan: &Plan, name: &str) -> Option<Reason> {
    plan.kept.iter().find(|k| k.name == name).map(|k| k.reason.clone())
}

fn keep_label(label: &str) -> Option<Reason> {
    Some(Reason::KeepLabel { label: label.into() })
}

fn used_by(container: &str) -> Reason {
    Reason::UsedBy { containers: vec![container.into()] }
}

#[test]
fn only_stopped_containers_past_their_grace_go() {
    let containers = [
        container("old-exited", "exited", "sha256:a", Some(48 * HOUR)),
        container("old-dead", "dead", "sha256:a", Some(48 * HOUR)),
        container("never-started", "created", "sha256:a", None),
        container("fresh-exited", "exited", "sha256:a", Some(HOUR)),
        container("running", "running", "sha256:a", None),
        container("paused", "paused", "sha256:a", None),
        container("restarting", "restarting", "sha256:a", None),
    ];
    let plan = plan(&containers, &[], &policy(), clocks(), &Pulls::new());
    assert_eq!(ids(&plan.containers), ["id-old-exited", "id-old-dead", "id-never-started"]);
    let reasons: Vec<&Reason> = plan.containers.iter().map(|r| &r.reason).collect();
    assert_eq!(
        reasons,
        [
            &Reason::StoppedPastGrace { state: "exited".into(), age_seconds: (48 * HOUR) as u64 },
            &Reason::StoppedPastGrace { state: "dead".into(), age_seconds: (48 * HOUR) as u64 },
            &Reason::NeverStartedPastGrace { state: "created".into(), age_seconds: (100 * HOUR) as u64 },
        ]
    );
    let within = Reason::StoppedWithinGrace { age_seconds: HOUR as u64, grace: Duration::from_secs(24 * 3600) };
    assert_eq!(kept_reason(&plan, "fresh-exited"), Some(within.clone()));
    assert!(within.to_string().contains("within the 1day grace period"), "{within}");
    for state in ["running", "paused", "restarting"] {
        let reason = kept_reason(&plan, state).expect("kept");
        assert_eq!(reason, Reason::NotStopped { state: state.into() });
        assert!(reason.to_string().starts_with(state), "{reason}");
    }
}

#[test]
fn a_container_created_long_ago_but_stopped_recently_is_kept() {
    // Its creation time is past the grace period; what counts is when it stopped.
    let c = container("long-lived", "exited", "sha256:a", Some(5 * 60));
    let plan = plan(&[c], &[], &policy(), clocks(), &Pulls::new());
    assert!(plan.containers.is_empty());
}

#[test]
fn keep_labels_and_devbox_containers_are_protected() {
    let mut p = policy();
    p.keep_labels.push(KeepLabel::try_from("team=infra".to_string()).expect("label"));
    let containers = [
        labelled(container("kept", "exited", "sha256:a", Some(48 * HOUR)), "devbox.keep", "", |c| &mut c.labels),
        labelled(container("infra", "exited", "sha256:a", Some(48 * HOUR)), "team", "infra", |c| &mut c.labels),
        labelled(container("web", "exited", "sha256:a", Some(48 * HOUR)), "team", "web", |c| &mut c.labels),
        labelled(container("registry", "exited", "sha256:a", Some(48 * HOUR)), "devbox.managed", "true", |c| {
            &mut c.labels
        }),
    ];
    let plan = plan(&containers, &[], &p, clocks(), &Pulls::new());
    assert_eq!(ids(&plan.containers), ["id-web"]);
    assert_eq!(kept_reason(&plan, "kept"), keep_label("devbox.keep"));
    assert_eq!(kept_reason(&plan, "infra"), keep_label("team=infra"));
    assert_eq!(kept_reason(&plan, "registry"), Some(Reason::DevboxOwn));
}

#[test]
fn dangling_images_go_after_their_grace_unless_used_or_labelled() {
    let containers = [
        container("uses-b", "running", "sha256:b", None),
        container("old-uses-c", "exited", "sha256:c", Some(48 * HOUR)),
    ];
    let images = [
        image("sha256:a", &[], 48 * HOUR, 100),
        image("sha256:b", &[], 48 * HOUR, 100),
        image("sha256:c", &[], 48 * HOUR, 100),
        image("sha256:d", &[], HOUR, 100),
        labelled(image("sha256:e", &[], 48 * HOUR, 100), "devbox.keep", "1", |i| &mut i.labels),
        image("sha256:f", &["alpine:3.20"], 48 * HOUR, 100),
    ];
    let plan = plan(&containers, &images, &policy(), clocks(), &Pulls::new());
    // c is used only by a container this plan removes, so it goes too.
    assert_eq!(ids(&plan.dangling_images), ["sha256:a", "sha256:c"]);
    assert!(plan.dangling_by_prune, "the prune filters select exactly these");
    assert!(plan.kept.iter().any(|k| k.id == "b" && k.reason == used_by("uses-b")));
    let fresh = Reason::DanglingWithinGrace { age_seconds: HOUR as u64 };
    assert!(plan.kept.iter().any(|k| k.id == "d" && k.reason == fresh));
    assert!(plan.kept.iter().any(|k| k.id == "e" && Some(k.reason.clone()) == keep_label("devbox.keep")));
    assert_eq!(plan.dangling_images[0].reason, Reason::DanglingPastGrace { age_seconds: (48 * HOUR) as u64 });
    assert!(plan.evicted_images.is_empty(), "tagged images only go for max_disk");
}

#[test]
fn a_dangling_image_protected_by_digest_turns_the_prune_off() {
    let mut by_digest = image("sha256:a", &[], 48 * HOUR, 100);
    by_digest.digests = vec!["127.0.0.1:5000/base/go@sha256:feed".into()];
    let images = [by_digest, image("sha256:b", &[], 48 * HOUR, 100)];
    let plan = plan(&[], &images, &policy(), clocks(), &Pulls::new());
    assert_eq!(ids(&plan.dangling_images), ["sha256:b"]);
    assert!(!plan.dangling_by_prune, "the prune would also take the protected image");
}

#[test]
fn configured_images_and_aliases_are_never_evicted() {
    let mut p = policy();
    p.max_disk = Some(0);
    let images = [
        image("sha256:base", &["127.0.0.1:5000/base/go:1.23"], 500 * HOUR, 100),
        image("sha256:alias", &["acme/base/go:1.23"], 500 * HOUR, 100),
        image("sha256:reg", &["registry:2.8.3"], 500 * HOUR, 100),
        image("sha256:other", &["alpine"], 500 * HOUR, 100),
    ];
    let plan = plan(&[], &images, &p, clocks(), &Pulls::new());
    assert_eq!(ids(&plan.evicted_images), ["sha256:other"]);
    assert_eq!(plan.evicted_images[0].tags, ["alpine"]);
    assert!(plan.max_disk_note.as_deref().is_some_and(|n| n.contains("in use or protected")));
    assert_eq!(plan.images_size_after, 300);
}

#[test]
fn max_disk_evicts_least_recently_used_first_until_it_fits() {
    let mut p = policy();
    p.max_disk = Some(250);
    // Created long ago, but pulled recently: recently used.
    let pulled = image("sha256:pulled", &["app/pulled:1"], 900 * HOUR, 100);
    // Created long ago, but a (removed) container started from it recently: recently used.
    let started = image("sha256:started", &["app/started:1"], 900 * HOUR, 100);
    let old = image("sha256:old", &["app/old:1"], 800 * HOUR, 100);
    let new = image("sha256:new", &["app/new:1"], 10 * HOUR, 100);
    let containers = [container("ran", "exited", "sha256:started", Some(30 * HOUR))];
    let pulls = Pulls::from([("app/pulled:1".to_string(), t(2 * HOUR))]);
    let plan = plan(&containers, &[pulled, started, old, new], &p, clocks(), &pulls);
    // 400 listed; the removed container frees "started" for eviction; two must go to fit 250.
    assert_eq!(ids(&plan.evicted_images), ["sha256:old", "sha256:started"]);
    let ages: Vec<&Reason> = plan.evicted_images.iter().map(|r| &r.reason).collect();
    assert_eq!(
        ages,
        [
            &Reason::LeastRecentlyUsed { age_seconds: (800 * HOUR) as u64 },
            &Reason::LeastRecentlyUsed { age_seconds: (30 * HOUR + 60) as u64 },
        ]
    );
    assert_eq!(plan.images_size_before, 400);
    assert_eq!(plan.images_size_after, 200);
    assert_eq!(plan.max_disk_note, None);
}

#[test]
fn images_used_by_surviving_containers_are_never_evicted() {
    let mut p = policy();
    p.max_disk = Some(0);
    let containers = [container("stopped-recently", "exited", "sha256:x", Some(HOUR))];
    let plan = plan(&containers, &[image("sha256:x", &["app/x:1"], 900 * HOUR, 100)], &p, clocks(), &Pulls::new());
    assert!(plan.evicted_images.is_empty());
    assert!(plan.kept.iter().any(|k| k.reason == used_by("stopped-recently")));
}

#[test]
fn dangling_images_removed_do_not_count_toward_max_disk() {
    let mut p = policy();
    p.max_disk = Some(100);
    let images = [image("sha256:d", &[], 48 * HOUR, 500), image("sha256:t", &["app/t:1"], 48 * HOUR, 100)];
    let plan = plan(&[], &images, &p, clocks(), &Pulls::new());
    assert_eq!(ids(&plan.dangling_images), ["sha256:d"]);
    assert!(plan.evicted_images.is_empty());
    assert_eq!(plan.images_size_after, 100);
}

#[test]
fn ages_are_judged_by_the_engine_clock_and_skew_is_noted() {
    // The engine is 30 hours behind the host: by the engine's clock the container stopped 1h ago.
    let engine = t(30 * HOUR);
    let c = container("c", "exited", "sha256:a", Some(31 * HOUR));
    let plan = plan(&[c], &[], &policy(), Clocks { engine, host: t(0) }, &Pulls::new());
    assert!(plan.containers.is_empty());
    let note = plan.clock_note.expect("skew noted");
    assert!(note.contains("1day 6h behind"), "{note}");

    let within = super::plan(&[], &[], &policy(), Clocks { engine: t(1), host: t(0) }, &Pulls::new());
    assert_eq!(within.clock_note, None);
    let ahead = super::plan(&[], &[], &policy(), Clocks { engine: t(0), host: t(10) }, &Pulls::new());
    assert!(ahead.clock_note.is_some_and(|n| n.contains("10s ahead of")));
}

#[test]
fn an_engine_clock_that_is_off_never_makes_young_things_old() {
    // The engine's clock jumped 30 hours ahead; a container stopped 2 hours ago (by both clocks
    // then) is 32 hours old by the engine's clock now, 2 hours by this host's: it stays.
    let c = container("c", "exited", "sha256:a", Some(2 * HOUR));
    let plan = plan(&[c], &[], &policy(), Clocks { engine: t(-30 * HOUR), host: t(0) }, &Pulls::new());
    assert!(plan.containers.is_empty(), "{:?}", plan.containers);
    assert_eq!(plan.cutoff, t(24 * HOUR), "the cutoff is by this host's clock, the earlier one");
    assert!(plan.clock_note.is_some_and(|n| n.contains("ages are judged by this host's clock")));
    // Behind (a VM that slept): the engine's clock is the earlier one, and what it stamped 1 hour
    // ago by its own clock is 1 hour old, not 31.
    let c = container("c", "exited", "sha256:a", Some(31 * HOUR));
    let behind = super::plan(&[c], &[], &policy(), Clocks { engine: t(30 * HOUR), host: t(0) }, &Pulls::new());
    assert!(behind.containers.is_empty());
    assert_eq!(behind.cutoff, t(54 * HOUR));
}

#[test]
fn zero_grace_removes_everything_stopped_before_now() {
    let mut p = policy();
    p.older_than = Duration::ZERO;
    let plan = plan(
        &[container("c", "exited", "sha256:a", Some(1))],
        &[image("sha256:a", &[], 1, 1)],
        &p,
        clocks(),
        &Pulls::new(),
    );
    assert_eq!(ids(&plan.containers), ["id-c"]);
    assert_eq!(ids(&plan.dangling_images), ["sha256:a"]);
}

#[test]
fn prune_filters_carry_every_keep_label() {
    let mut p = policy();
    p.keep_labels.push(KeepLabel::try_from("team=infra".to_string()).expect("label"));
    let plan = plan(&[], &[], &p, clocks(), &Pulls::new());
    assert_eq!(plan.prune_exclude_labels, ["devbox.keep", "team=infra"]);
    assert!(plan.is_empty());
}

#[test]
fn references_normalize_like_the_engine_lists_them() {
    assert_eq!(normalize_reference("alpine"), "alpine:latest");
    assert_eq!(normalize_reference("127.0.0.1:5000/base/go"), "127.0.0.1:5000/base/go:latest");
    assert_eq!(normalize_reference("acme/base/go:1.23"), "acme/base/go:1.23");
    assert_eq!(short_id("sha256:0123456789abcdef"), "0123456789ab");
}

#[test]
fn reasons_read_as_words_and_serialize_as_kinds_with_their_data() {
    let cases = [
        (Reason::StoppedPastGrace { state: "exited".into(), age_seconds: 9 }, "exited (stopped 9s ago)"),
        (
            Reason::NeverStartedPastGrace { state: "created".into(), age_seconds: 3 * 3600 + 125 },
            "created (created, never started, 3h 2m ago)",
        ),
        (Reason::DanglingPastGrace { age_seconds: 2 * 86_400 + 3 * 3600 + 59 }, "dangling, created 2days 3h ago"),
        (Reason::LeastRecentlyUsed { age_seconds: 0 }, "least recently used (last used 0s ago)"),
        (
            Reason::StoppedWithinGrace { age_seconds: 61, grace: Duration::from_secs(3600) },
            "stopped 1m 1s ago, within the 1h grace period",
        ),
        (Reason::ConfiguredImage { reference: "registry:2.8.3".into() }, "configured image registry:2.8.3"),
        (Reason::UsedBy { containers: vec!["a".into(), "b".into()] }, "used by container a, b"),
    ];
    for (reason, words) in cases {
        assert_eq!(reason.to_string(), words);
    }

    let removal = Removal {
        id: "sha256:a".into(),
        name: "old".into(),
        reason: Reason::StoppedPastGrace { state: "exited".into(), age_seconds: 9 },
        size: Some(1),
        tags: vec![],
    };
    let json = serde_json::to_value(&removal).expect("json");
    assert_eq!(
        json["reason"],
        serde_json::json!({"kind": "stopped-past-grace", "state": "exited", "age_seconds": 9, "text": "exited (stopped 9s ago)"})
    );
    let kept = Kept { kind: Kind::Image, id: "a".into(), name: "a".into(), reason: Reason::DevboxOwn };
    let json = serde_json::to_value(&kept).expect("json");
    assert_eq!(json["reason"], serde_json::json!({"kind": "devbox-own", "text": "devbox's own container"}));
    let within = Reason::StoppedWithinGrace { age_seconds: 5, grace: Duration::from_secs(86_400) };
    assert_eq!(serde_json::to_value(Kept { reason: within, ..kept }).expect("json")["reason"]["grace"], "1day");
}

#[test]
fn a_podman_pods_infra_container_stays_with_its_pod() {
    // As podman's Docker-compatible API lists them: created, never started, no word of the pod.
    let mut by_image = container("web-infra", "created", "sha256:p", None);
    by_image.image = "localhost/podman-pause:5.4.2-1766335321".into();
    let containers = [
        container("9a8fec429d48-infra", "created", "sha256:p", None),
        by_image,
        container("pod-member", "exited", "sha256:a", Some(48 * HOUR)),
        container("not-hex!!!!!-infra", "exited", "sha256:a", Some(48 * HOUR)),
    ];
    let plan = plan(&containers, &[], &policy(), clocks(), &Pulls::new());
    assert_eq!(ids(&plan.containers), ["id-pod-member", "id-not-hex!!!!!-infra"]);
    assert_eq!(kept_reason(&plan, "9a8fec429d48-infra"), Some(Reason::PodInfra));
    assert_eq!(kept_reason(&plan, "web-infra"), Some(Reason::PodInfra));
}
