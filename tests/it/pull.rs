//! `devbox pull` against the real engine, registry and S3 server.
use crate::testbed::{Bed, docker, docker_try};

/// A bed with CI's registry, two base images pushed to S3, devbox's registry up, and a config
/// that names the two images plus their production alias.
fn provisioned(test: &str, extra_images: &[&str]) -> (Bed, u16, Vec<String>) {
    let mut bed = Bed::new(test);
    let ci = bed.ci_registry();
    let digests = vec![bed.push_image(ci, "base/python:3.12", 300_000), bed.push_image(ci, "base/go:1.23", 200_000)];
    let mut base: Vec<String> = vec!["base/python:3.12".into(), "base/go:1.23".into()];
    base.extend(extra_images.iter().map(|s| s.to_string()));
    let list = base.iter().map(|b| format!("{b:?}")).collect::<Vec<_>>().join(", ");
    bed.write_config(&format!("[images]\nbase = [{list}]\nalias = \"{}/{{name}}\"\n", bed.name));
    for name in &base {
        bed.remove_image_later(&format!("127.0.0.1:{}/{name}", bed.port));
        bed.remove_image_later(&format!("{}/{name}", bed.name));
    }
    bed.test(&["registry", "up"]).run();
    (bed, ci, digests)
}

fn json(bed: &Bed, args: &[&str]) -> (i32, serde_json::Value) {
    let out = bed.test(args).any_code().run();
    let value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    });
    (out.status.code().unwrap_or(-1), value)
}

#[test]
fn pull_fetches_everything_then_only_what_ci_changed() {
    let (mut bed, ci, digests) = provisioned("pull", &[]);

    // First pull: both images arrive, with their production aliases.
    let (code, first) = json(&bed, &["pull", "--json"]);
    assert_eq!(code, 0, "{first}");
    assert_eq!(first["updated"], 2);
    for (i, name) in ["base/python:3.12", "base/go:1.23"].iter().enumerate() {
        let entry = &first["images"][i];
        assert_eq!(entry["name"], *name);
        assert_eq!(entry["status"], "updated");
        assert_eq!(entry["old_digest"], serde_json::Value::Null);
        assert_eq!(entry["new_digest"], digests[i].as_str());
        let local = docker(&["image", "inspect", "--format", "{{.Id}}", &format!("127.0.0.1:{}/{name}", bed.port)]);
        let alias = docker(&["image", "inspect", "--format", "{{.Id}}", &format!("{}/{name}", bed.name)]);
        assert_eq!(local, alias, "the alias of {name} points elsewhere");
    }

    // CI rebuilds one image: exactly that one is updated, with both digests.
    let rebuilt = bed.push_image(ci, "base/go:1.23", 200_000);
    let (code, second) = json(&bed, &["pull", "--json"]);
    assert_eq!(code, 0, "{second}");
    assert_eq!((second["updated"].as_u64(), second["unchanged"].as_u64()), (Some(1), Some(1)), "{second}");
    assert_eq!(second["images"][0]["status"], "unchanged");
    assert_eq!(second["images"][1]["status"], "updated");
    assert_eq!(second["images"][1]["old_digest"], digests[1].as_str());
    assert_eq!(second["images"][1]["new_digest"], rebuilt.as_str());
    let alias =
        docker(&["image", "inspect", "--format", "{{index .RepoDigests 0}}", &format!("{}/base/go:1.23", bed.name)]);
    assert!(alias.ends_with(&rebuilt), "the alias was not moved to the new image: {alias}");

    // Nothing changed: nothing pulled, and the text output says so in one line per image.
    bed.test(&["pull"])
        .stdout_has("base/python:3.12: unchanged sha256:")
        .stdout_has("0 updated, 2 unchanged, 0 failed")
        .run();

    // Each pull is recorded for cleanup and doctor.
    let records = std::fs::read_to_string(bed.home.path().join(".local/state/devbox/pulls.json")).expect("pulls.json");
    assert!(records.contains(&format!("127.0.0.1:{}/base/go:1.23", bed.port)) && records.contains(&rebuilt));
}

#[test]
fn a_missing_image_fails_clearly_while_the_others_succeed() {
    let (bed, _ci, _) = provisioned("pullmissing", &["base/missing:1"]);
    bed.test(&["pull"])
        .code(1)
        .stdout_has("base/python:3.12: pulled sha256:")
        .stdout_has("base/go:1.23: pulled sha256:")
        .stdout_has("base/missing:1: failed: not in the registry: base/missing:1")
        .stdout_has("2 updated, 0 unchanged, 1 failed")
        .run();
    let (exists, _) = docker_try(&["image", "inspect", &format!("{}/base/missing:1", bed.name)]);
    assert!(!exists, "a failed image got an alias");
}

#[test]
fn output_without_a_tty_is_plain_lines_and_quiet_is_silent() {
    let (bed, _ci, _) = provisioned("pullplain", &[]);
    let out = bed.test(&["pull", "base/python:3.12"]).env_remove("NO_COLOR").stderr_is("").run();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains('\u{1b}') && !stdout.contains('\r'), "escape codes in {stdout:?}");
    let lines: Vec<&str> = stdout.lines().map(|l| l.split(" sha256:").next().unwrap_or(l)).collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert_eq!(lines[..2], ["base/python:3.12: pulling", "base/python:3.12: pulled"], "{stdout}");
    assert!(lines[2].starts_with("✓ 1 updated, 0 unchanged, 0 failed in "), "{stdout}");
    bed.test(&["pull", "--quiet"]).stdout_is("").stderr_is("").run();
}

#[test]
fn pull_with_the_registry_down_names_the_fix_and_starts_nothing() {
    let (bed, _ci, _) = provisioned("pulldown", &[]);
    bed.test(&["registry", "down"]).run();
    bed.test(&["pull"])
        .code(1)
        .stderr_has(format!("the local registry at http://127.0.0.1:{} is not answering", bed.port))
        .stderr_has("devbox registry up")
        .run();
    assert!(bed.container_identity().is_none(), "pull started the registry");
}

#[test]
fn bad_names_and_an_empty_list_are_usage_errors() {
    let bed = Bed::new("pullusage");
    let cases: [(&[&str], &str); 2] =
        [(&["pull"], "no base images are configured"), (&["pull", "ghcr.io/acme/base:1"], "without a registry host")];
    for (args, says) in cases {
        bed.test(args).code(2).stderr_has(says).run();
    }
}

#[test]
fn an_interrupted_pull_leaves_no_alias_and_a_rerun_finishes() {
    use std::io::BufRead;

    let mut bed = Bed::new("pullint");
    let ci = bed.ci_registry();
    let digest = bed.push_image(ci, "base/big:1", 30_000_000);
    bed.write_config(&format!("[images]\nbase = [\"base/big:1\"]\nalias = \"{}/{{name}}\"\n", bed.name));
    let alias = format!("{}/base/big:1", bed.name);
    bed.remove_image_later(&format!("127.0.0.1:{}/base/big:1", bed.port));
    bed.remove_image_later(&alias);
    bed.test(&["registry", "up"]).run();

    let mut child = bed
        .devbox_std(&["pull"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start devbox pull");
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    stdout.read_line(&mut first).expect("read");
    assert_eq!(first.trim(), "base/big:1: pulling");
    std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted"), "{:?}", out);
    let (aliased, _) = docker_try(&["image", "inspect", &alias]);
    assert!(!aliased, "an interrupted pull tagged the alias");

    bed.test(&["pull"]).stdout_has("1 updated").run();
    let tagged = docker(&["image", "inspect", "--format", "{{index .RepoDigests 0}}", &alias]);
    assert!(tagged.ends_with(&digest), "{tagged}");
}
