//! doctor at the speed of `docker info`: a proof made once is not made again. The registry's own
//! logs show every request it got, so they show whether doctor probed it.

use crate::testbed::{Bed, docker_try};

/// The requests to start an upload to the write probe's repository in the registry's logs.
fn probes(bed: &Bed) -> usize {
    let (ok, logs) = docker_try(&["logs", &bed.name]);
    assert!(ok, "docker logs {}: {logs}", bed.name);
    logs.lines().filter(|l| l.contains("POST") && l.contains("/v2/devbox-probe/readonly/blobs/uploads/")).count()
}

/// doctor's registry-api finding, which must pass; its summary.
fn api_summary(bed: &Bed) -> String {
    let out = bed.devbox(&["doctor", "--json", "--check", "registry-api"]).output().expect("run doctor");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("doctor --json");
    let api = json["checks"].as_array().and_then(|c| c.iter().find(|c| c["id"] == "registry-api")).expect("api");
    assert_eq!(api["status"], "ok", "{json:#}");
    api["summary"].as_str().unwrap_or_default().to_string()
}

#[test]
fn doctor_after_registry_up_does_not_probe_again_and_a_new_container_is_probed_anew() {
    let mut bed = Bed::new("speedproof");
    let ci = bed.ci_registry();
    bed.push_image(ci, "base/python:3.12", 10_000);
    bed.write_config("[images]\nbase = [\"base/python:3.12\"]\n");
    bed.test(&["registry", "up"]).stdout_has("created").run();
    let after_up = probes(&bed);
    assert!(after_up >= 1, "registry up did not probe the registry it made");

    // doctor shows what was proven, and proves it again no more: no upload to the probe repo.
    for _ in 0..2 {
        let summary = api_summary(&bed);
        assert!(summary.contains("a write is refused (405)"), "{summary}");
        assert!(summary.contains(&format!("read base/python:3.12 from s3://{}/registry", bed.bucket)), "{summary}");
        assert!(summary.contains("for this container, not repeated"), "{summary}");
        // What can change while it runs is read on every run: its storage, through S3.
        assert!(summary.contains("read 1 manifests from storage"), "{summary}");
    }
    assert_eq!(probes(&bed), after_up, "doctor probed a registry already proven");
    // `registry up` on an unchanged registry does not probe it again either.
    bed.test(&["registry", "up"]).stdout_has("is already up").run();
    assert_eq!(probes(&bed), after_up, "a second registry up probed a registry already proven");

    // A container made again is another container: proven anew, by `registry up`...
    let first = bed.container_identity().expect("a container");
    bed.test(&["registry", "down"]).run();
    bed.test(&["registry", "up"]).stdout_has("created").run();
    assert_ne!(bed.container_identity(), Some(first));
    let made_again = probes(&bed);
    assert!(made_again >= 1, "the new container was not probed");
    assert!(api_summary(&bed).contains("not repeated"));
    assert_eq!(probes(&bed), made_again);

    // ... or by doctor, when no proof of it is recorded; once.
    let record = bed.home.path().join(".local/state/devbox/registry-proofs.json");
    std::fs::remove_file(&record).expect("the proof is recorded in the state directory");
    let summary = api_summary(&bed);
    assert!(summary.contains("a write is refused (405)") && !summary.contains("not repeated"), "{summary}");
    let probed = probes(&bed);
    assert!(probed > made_again, "doctor did not probe a registry with no proof recorded");
    assert!(api_summary(&bed).contains("not repeated"));
    assert_eq!(probes(&bed), probed);
}
