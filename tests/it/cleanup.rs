//! `devbox cleanup` on a real (private) engine: every protected kind next to every removable kind.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::private_engine::PrivateEngine;
use crate::testbed::{Bed, REGISTRY_IMAGE, poll_until, wait_until};

fn container_ids(engine: &PrivateEngine) -> BTreeSet<String> {
    engine.docker(&["ps", "-aq", "--no-trunc"]).split_whitespace().map(String::from).collect()
}

fn image_ids(engine: &PrivateEngine) -> BTreeSet<String> {
    engine.docker(&["images", "-q", "--no-trunc"]).split_whitespace().map(String::from).collect()
}

fn id_of(engine: &PrivateEngine, what: &str) -> String {
    engine.docker(&["inspect", "--format", "{{.Id}}", what])
}

fn json(out: &[u8]) -> serde_json::Value {
    serde_json::from_slice(out).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(out)))
}

fn ids_in(value: &serde_json::Value) -> BTreeSet<String> {
    value.as_array().expect("array").iter().map(|r| r["id"].as_str().expect("id").to_string()).collect()
}

/// A plan's items by identity: ID and the kind of reason, never the words (they hold ages).
fn identity(value: &serde_json::Value) -> Vec<(String, String)> {
    let items = value.as_array().expect("array");
    items
        .iter()
        .map(|r| (r["id"].as_str().expect("id").into(), r["reason"]["kind"].as_str().expect("kind").into()))
        .collect()
}

fn strings_in(value: &serde_json::Value) -> BTreeSet<String> {
    value.as_array().expect("array").iter().map(|v| v.as_str().expect("string").to_string()).collect()
}

#[test]
fn cleanup_removes_exactly_the_plan_and_keeps_every_protected_kind() {
    let bed = Bed::new("cleanpop");
    let engine = PrivateEngine::start();
    engine.load_registry_image();
    let port = bed.port.to_string();
    let base = format!("127.0.0.1:{port}/base/tiny:1");
    let run = |name: &str, extra: &[&str], image: &str, cmd: &[&str]| {
        let mut args = vec!["run", "-d", "--network", "none", "--name", name];
        args.extend(extra);
        args.push(image);
        args.extend(cmd);
        engine.docker(&args);
    };
    let create = |name: &str, extra: &[&str], image: &str| {
        let mut args = vec!["create", "--pull", "never", "--name", name];
        args.extend(extra);
        args.extend([image, "/nothing"]);
        engine.docker(&args)
    };

    // Protected images: a base image, its alias, a keep-labelled image, the registry image.
    engine.import(&base, &[]);
    engine.import("acme/base/tiny:1", &[]);
    engine.import("labelled:1", &["devbox.keep=yes"]);
    // Dangling images: one plain, one with a keep label, one used by a kept container, one used
    // only by a container this plan removes.
    engine.import("tmp/plain:1", &[]);
    engine.import("tmp/plain:1", &[]);
    engine.import("tmp/keep:1", &["devbox.keep=1"]);
    engine.import("tmp/keep:1", &[]);
    engine.import("tmp/used-kept:1", &[]);
    create("kept-user", &["--label", "devbox.keep"], "tmp/used-kept:1");
    engine.import("tmp/used-kept:1", &[]);
    engine.import("tmp/used-removed:1", &[]);
    create("removed-user", &[], "tmp/used-removed:1");
    engine.import("tmp/used-removed:1", &[]);
    // A tagged image nothing uses: only max_disk evicts it.
    engine.import("old/unused:1", &[]);

    // Containers: running, paused, exited, created, kept, devbox's own (stopped), one with a volume.
    run("running", &[], REGISTRY_IMAGE, &[]);
    run("paused", &[], REGISTRY_IMAGE, &[]);
    engine.docker(&["pause", "paused"]);
    run("exited", &["--entrypoint", "/bin/registry"], REGISTRY_IMAGE, &["--version"]);
    create("created", &[], &base);
    create("kept-exited", &["--label", "devbox.keep=because"], &base);
    create(&bed.name, &["--label", "devbox.managed=true", "--label", "devbox.role=registry"], REGISTRY_IMAGE);
    engine.docker(&["volume", "create", "precious"]);
    engine.docker(&["volume", "create", &format!("{}-data", bed.name)]);
    create("with-volume", &["-v", "precious:/data"], &base);
    wait_until("the exited container to exit", Duration::from_secs(30), || {
        engine.docker(&["inspect", "--format", "{{.State.Status}}", "exited"]) == "exited"
    });
    // Past the grace period of 1s, by the engine's clock.
    std::thread::sleep(Duration::from_millis(2500));

    let removable_containers: BTreeSet<String> =
        ["exited", "created", "removed-user", "with-volume"].iter().map(|n| id_of(&engine, n)).collect();
    let dangling: Vec<String> =
        engine.docker(&["images", "-q", "--no-trunc", "--filter", "dangling=true"]).lines().map(String::from).collect();
    assert_eq!(dangling.len(), 4, "four dangling images were made");
    let dangling_kept = [
        engine.docker(&["images", "-q", "--no-trunc", "--filter", "dangling=true", "--filter", "label=devbox.keep"]),
        engine.docker(&["inspect", "--format", "{{.Image}}", "kept-user"]),
    ];
    let removable_dangling: BTreeSet<String> =
        dangling.iter().filter(|id| !dangling_kept.contains(id)).cloned().collect();
    assert_eq!(removable_dangling.len(), 2);
    // max_disk = "1B": every tagged image that is unused and unprotected goes, least recently used first.
    let evicted: BTreeSet<String> =
        ["tmp/plain:1", "tmp/keep:1", "tmp/used-kept:1", "tmp/used-removed:1", "old/unused:1"]
            .iter()
            .map(|r| id_of(&engine, r))
            .collect();

    let containers_before = container_ids(&engine);
    let images_before = image_ids(&engine);
    let config = "[images]\nbase = [\"base/tiny:1\"]\nalias = \"acme/{name}\"\n[cleanup]\nolder_than = \"1s\"\nmax_disk = \"1B\"\n";
    let devbox = |args: &[&str]| bed.test(args).env("DOCKER_HOST", &engine.host);

    // Bad input: exit 2, a clear message, nothing removed.
    for (extra, expected) in [
        ("[cleanup]\nmax_disk = \"lots\"\n", "cleanup.max_disk: \"lots\" is not a size"),
        ("[cleanup]\nolder_than = \"-1h\"\n", "cleanup.older_than"),
        ("[cleanup]\nkeep_labels = [\"=x\"]\n", "has no label key"),
    ] {
        bed.write_config(extra);
        devbox(&["cleanup"]).code(2).stderr_has(expected).run();
    }
    assert_eq!(container_ids(&engine), containers_before);
    assert_eq!(image_ids(&engine), images_before);

    // The dry run lists exactly what goes, and removes nothing.
    bed.write_config(config);
    let dry = devbox(&["cleanup", "--dry-run", "--json"]).json();
    assert_eq!(ids_in(&dry["plan"]["containers"]), removable_containers);
    assert_eq!(ids_in(&dry["plan"]["dangling_images"]), removable_dangling);
    assert_eq!(ids_in(&dry["plan"]["evicted_images"]), evicted);
    assert_eq!(dry["plan"]["dangling_by_prune"], true);
    let kinds =
        |part: &str| -> BTreeSet<String> { identity(&dry["plan"][part]).into_iter().map(|(_, kind)| kind).collect() };
    assert_eq!(kinds("containers"), BTreeSet::from(["never-started-past-grace".into(), "stopped-past-grace".into()]));
    assert_eq!(kinds("dangling_images"), BTreeSet::from(["dangling-past-grace".into()]));
    assert_eq!(kinds("evicted_images"), BTreeSet::from(["least-recently-used".into()]));
    assert_eq!(container_ids(&engine), containers_before);
    assert_eq!(image_ids(&engine), images_before);
    devbox(&["cleanup", "--dry-run"])
        .stdout_has("stopped containers (4):")
        .stdout_has("dry run: nothing was removed")
        .run();

    // The real run removes exactly that, and reports space from the engine's answers.
    let real = devbox(&["cleanup", "--json"]).json();
    // Two runs read the engine's clock at two instants, so their ages differ; what goes, and why, must not.
    for part in ["containers", "dangling_images", "evicted_images"] {
        assert_eq!(identity(&real["plan"][part]), identity(&dry["plan"][part]), "the {part} plan changed between runs");
    }
    assert_eq!(identity(&real["plan"]["kept"]), identity(&dry["plan"]["kept"]), "what is kept changed between runs");
    assert_eq!(strings_in(&real["outcome"]["containers"]["removed"]), removable_containers);
    assert_eq!(strings_in(&real["outcome"]["dangling_images"]["removed"]), removable_dangling);
    assert_eq!(strings_in(&real["outcome"]["evicted_images"]["removed"]), evicted);
    assert!(real["outcome"]["dangling_images"]["space_freed"].as_u64().expect("bytes") > 0);
    assert_eq!(real["outcome"]["dangling_images"]["space_source"], "the engine's image prune answer");

    let expected_containers: BTreeSet<String> = containers_before.difference(&removable_containers).cloned().collect();
    assert_eq!(container_ids(&engine), expected_containers);
    for survivor in ["running", "paused", "kept-exited", "kept-user", bed.name.as_str()] {
        engine.docker(&["inspect", survivor]);
    }
    let gone: BTreeSet<String> = removable_dangling.union(&evicted).cloned().collect();
    let expected_images: BTreeSet<String> = images_before.difference(&gone).cloned().collect();
    assert_eq!(image_ids(&engine), expected_images);
    for survivor in [base.as_str(), "acme/base/tiny:1", "labelled:1", REGISTRY_IMAGE] {
        engine.docker(&["image", "inspect", survivor]);
    }
    let volumes = engine.docker(&["volume", "ls", "-q"]);
    assert!(volumes.contains("precious") && volumes.contains(&format!("{}-data", bed.name)), "{volumes}");

    // Again: nothing left to do.
    devbox(&["cleanup"]).run();
    assert_eq!(container_ids(&engine), expected_containers);
}

/// The engine disappears mid-cleanup: a clear error, a partial report, and nothing outside the
/// plan removed.
#[test]
fn an_engine_that_disappears_mid_cleanup_gets_a_partial_report() {
    let bed = Bed::new("cleanlost");
    let engine = PrivateEngine::start();
    engine.import("tiny:1", &[]);
    let keep_me =
        engine.docker(&["create", "--pull", "never", "--name", "keep-me", "--label", "devbox.keep", "tiny:1", "/x"]);
    let script = format!(
        "for i in $(seq 1 300); do echo \"create --pull never tiny:1 /x\"; done | xargs -P 4 -L 1 docker -H {} >/dev/null",
        engine.host
    );
    assert!(std::process::Command::new("sh").args(["-c", &script]).status().expect("sh").success());
    std::thread::sleep(Duration::from_millis(2500));
    let before = container_ids(&engine);
    assert_eq!(before.len(), 301);
    bed.write_config("[cleanup]\nolder_than = \"1s\"\n");

    let child = bed
        .devbox_std(&["cleanup", "--json"])
        .env("DOCKER_HOST", &engine.host)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn devbox");
    // Watch the engine's own directory (not its API) and crash it once removals have begun.
    let containers_dir = engine.data_root().join("containers");
    let removing = poll_until(Duration::from_secs(120), Duration::from_millis(5), || {
        std::fs::read_dir(&containers_dir).map(|d| d.count()).unwrap_or(0) < 301 - 10
    });
    assert!(removing, "cleanup never started removing");
    engine.crash();
    let out = child.wait_with_output().expect("devbox finishes");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(stderr.contains("stopped answering during cleanup"), "{stderr}");
    assert!(stderr.contains("the report above is partial"), "{stderr}");
    assert!(stderr.contains("hint: Start Docker again"), "{stderr}");
    let report = json(&out.stdout);
    let removed = strings_in(&report["outcome"]["containers"]["removed"]);
    let not_attempted = strings_in(&report["outcome"]["containers"]["not_attempted"]);
    assert!(
        !removed.is_empty() && !not_attempted.is_empty(),
        "removed {} / not attempted {}",
        removed.len(),
        not_attempted.len()
    );
    assert!(report["outcome"]["engine_lost"].is_string());

    let after: BTreeSet<String> = engine.containers_on_disk().into_iter().map(|id| id.to_string()).collect();
    let planned = ids_in(&report["plan"]["containers"]);
    assert!(!planned.contains(&keep_me));
    // Nothing outside the plan went, and everything reported removed is gone.
    assert!(before.difference(&after).all(|id| planned.contains(id)), "a container outside the plan was removed");
    assert!(removed.iter().all(|id| !after.contains(id)), "a container reported removed is still there");
    assert!(after.contains(&keep_me), "the kept container survives");
}
