//! devbox on podman, as podman machine runs it: the testbed's second VM (tests/testbed/podman/), a
//! Debian trixie guest with podman 5.4, rootless as the user `core`, its Docker-compatible API
//! forwarded to this host and found where podman 5 puts it
//! (`$XDG_RUNTIME_DIR/podman/podman-machine-default-api.sock`, in each test's own runtime dir).
//! `ssh` into the VM stands in for `podman machine ssh`. Its clock is the VM's own: pausing the VM
//! puts it behind, as a laptop's sleep does; this host's clock is never touched.
//!
//! One VM test at a time (the VM tests' lock): the VMs are slow (software emulation) and shared.
//! S3 is the testbed's Garage, which refuses request dates more than 24 h old.

use std::time::Duration;

use crate::podman_bed::*;
use crate::testbed::docker as host_docker;
use crate::testbed::{Bed, output_text};
use crate::vm_bed::{REGISTRY_IMAGE, finding};

fn runtime_of(report: &serde_json::Value) -> &str {
    report["engine"]["runtime"].as_str().unwrap_or_default()
}

#[test]
fn podman_machine_is_found_in_its_runtime_dir_and_through_its_context_rootless_and_rootful() {
    let bed = Bed::on_podman("classify");
    let (report, code) = json(&bed, &["clock", "check", "--json"]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(runtime_of(&report), "podman-machine", "{report:#}");
    assert_eq!(report["engine"]["vm"], true);
    assert_eq!(report["engine"]["forced"], false);
    for clock in ["host", "engine", "s3"] {
        let reading = report["clocks"].as_array().expect("clocks").iter().find(|c| c["clock"] == clock);
        let reading = reading.unwrap_or_else(|| panic!("no {clock} clock in {report:#}"));
        assert!(reading["offset_seconds"].is_number(), "the {clock} clock was not read: {reading:#}");
    }
    let socket = format!("{}/podman/podman-machine-default-api.sock", bed.runtime_dir().display());
    let source = report["clocks"][1]["source"].as_str().unwrap_or_default();
    assert!(source.ends_with(&socket), "found in the runtime dir: {source}");

    // The same engine through the docker context a podman user may make.
    let out = bed.test(&["clock", "check", "--json"]).env("DOCKER_CONTEXT", "podman-machine-default").any_code().run();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(runtime_of(&report), "podman-machine", "{report:#}");

    // Rootful: podman machine set-rootful serves root's podman on the same path.
    let rootful = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(rootful.path().join("podman")).expect("mkdir");
    std::os::unix::fs::symlink(
        format!("{RUN}/podman-root.sock"),
        rootful.path().join("podman/podman-machine-default-api.sock"),
    )
    .expect("symlink");
    let out = bed.test(&["clock", "check", "--json"]).env("XDG_RUNTIME_DIR", rootful.path()).any_code().run();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(runtime_of(&report), "podman-machine", "{report:#}");
    assert!(report["clocks"][1]["offset_seconds"].is_number(), "rootful podman's clock: {report:#}");
}

#[test]
fn podman_registry_up_on_garage_serves_what_ci_pushed_read_only_and_pull_cleanup_and_doctor_work() {
    let mut bed = Bed::on_podman("s3");
    bed.write_config("[images]\nbase = [\"podtest/base:1\"]\nalias = \"\"\n[cleanup]\nolder_than = \"1s\"\n");
    let ci = bed.ci_registry();
    bed.push_image(ci, "podtest/base:1", 1_000);

    let up = bed.test(&["registry", "up"]).text();
    assert!(up.contains(&format!("s3://{}/registry, read-only", bed.bucket)), "{up}");
    let bindings = podman_docker(&["inspect", "--format", "{{json .HostConfig.PortBindings}}", &bed.name]);
    let bindings = String::from_utf8_lossy(&bindings.stdout).to_string();
    assert!(bindings.contains(&format!(r#""HostIp":"127.0.0.1","HostPort":"{}""#, bed.port)), "{bindings}");

    let pulled = bed.test(&["pull"]).text();
    assert!(pulled.contains("podtest/base:1: pulling"), "progress lines: {pulled}");
    assert!(pulled.contains("podtest/base:1: pulled sha256:"), "{pulled}");
    let image = format!("127.0.0.1:{}/podtest/base:1", bed.port);
    assert!(podman_docker(&["image", "inspect", &image]).status.success(), "{image} is not in podman after the pull");

    // A push through the laptop's registry is refused by the registry itself.
    let pushed = format!("127.0.0.1:{}/podtest/pushed:1", bed.port);
    host_docker(&["tag", REGISTRY_IMAGE, &pushed]);
    let push = std::process::Command::new("docker").args(["push", &pushed]).output().expect("docker push");
    host_docker(&["rmi", &pushed]);
    assert!(!push.status.success(), "a push to the read-only registry succeeded: {}", output_text(&push));

    // Cleanup: a stopped container past its grace period goes; a pod and its infra container,
    // the registry and the base image stay.
    let pod = format!("{}-pod", bed.name);
    bed.pod(&pod);
    let stopped = format!("{}-stopped", bed.name);
    let made = podman_docker(&["create", "--name", &stopped, "--entrypoint", "/bin/date", REGISTRY_IMAGE]);
    assert!(made.status.success(), "{}", output_text(&made));
    // The registry image declares a volume, so the stopped container has an anonymous one.
    let volume = podman_docker(&["inspect", "--format", "{{range .Mounts}}{{.Name}}{{end}}", &stopped]);
    let volume = String::from_utf8_lossy(&volume.stdout).trim().to_string();
    assert!(!volume.is_empty(), "{stopped} has no volume");
    std::thread::sleep(Duration::from_secs(2));
    let out = bed.test(&["cleanup"]).text();
    assert!(!podman_docker(&["inspect", &stopped]).status.success(), "{stopped} was not removed:\n{out}");
    // Cleanup never removes a volume, not even an anonymous one whose container it removed; the
    // test removes the one it caused.
    assert!(podman_docker(&["volume", "inspect", &volume]).status.success(), "cleanup removed a volume:\n{out}");
    let removed = podman_docker(&["volume", "rm", &volume]);
    assert!(removed.status.success(), "{}", output_text(&removed));
    let infra = podman_in_vm(&format!("pod inspect --format '{{{{.InfraContainerID}}}}' {pod}"));
    let infra = String::from_utf8_lossy(&infra.stdout).trim().to_string();
    assert!(!infra.is_empty(), "the pod {pod} or its infra container is gone:\n{out}");
    assert!(podman_docker(&["inspect", &infra]).status.success(), "the infra container was removed:\n{out}");
    assert!(podman_docker(&["inspect", &bed.name]).status.success(), "the registry was removed:\n{out}");
    assert!(podman_docker(&["image", "inspect", &image]).status.success(), "the base image was removed:\n{out}");
    assert!(out.contains("inside podman machine's VM"), "cleanup reports the VM's disk:\n{out}");

    // Doctor: healthy, the disk measured is the VM's.
    let (report, code) = json(&bed, &["doctor", "--json", "--timeout", "60s"]);
    assert_eq!(code, 0, "{report:#}");
    let disk = finding(&report, "disk");
    assert!(disk["summary"].as_str().unwrap_or_default().contains("inside podman machine's VM"), "{disk:#}");
    let total: u64 = disk["details"]["total_bytes"].as_str().and_then(|s| s.parse().ok()).expect("total_bytes");
    let gib = total as f64 / (1u64 << 30) as f64;
    assert!((3.0..=12.0).contains(&gib), "the VM's disk is about 6 GiB, the check says {gib:.1} GiB: {disk:#}");
}

#[test]
fn podman_registry_up_on_filesystem_storage_serves_on_loopback() {
    let bed = Bed::on_podman("fs");
    std::fs::write(
        bed.home.path().join(".config/devbox/devbox.toml"),
        format!(
            "[registry]\nimage = \"{REGISTRY_IMAGE}\"\npull = \"never\"\ncontainer = \"{}\"\nport = {}\n",
            bed.name, bed.port
        ),
    )
    .expect("write config");
    let up = bed.test(&["registry", "up"]).text();
    assert!(up.contains(&format!("volume {}-data, writable", bed.name)), "{up}");
    let catalog = std::process::Command::new("curl")
        .args(["-s", &format!("http://127.0.0.1:{}/v2/_catalog", bed.port)])
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&catalog.stdout).trim(), r#"{"repositories":[]}"#);
    let status = bed.test(&["registry", "status"]).text();
    assert!(status.contains("running"), "{status}");
}

#[test]
fn podman_a_paused_vm_is_synced_through_podman_machine_ssh_to_within_half_a_second() {
    let mut bed = Bed::on_podman("pause");
    // Without podman's CLI, a rootless container cannot set the VM's clock: the error says so.
    let pause = podman_sh(&["pause", "20"]);
    assert!(pause.status.success(), "podman/vm.sh pause: {}", output_text(&pause));
    let behind = bed.engine_skew();
    assert!((-23.0..=-17.0).contains(&behind), "after a 20 s pause the VM is {behind} s off");
    let refused = bed.test(&["clock", "sync"]).any_code().run();
    assert_eq!(refused.status.code(), Some(1), "{}", output_text(&refused));
    let text = output_text(&refused);
    assert!(text.contains("podman machine ssh"), "the error names the way that works:\n{text}");

    bed.with_podman_cli();
    let out = bed.test(&["clock", "sync", "--if-skewed"]).text();
    assert!(out.contains("set the engine's clock"), "{out}");
    assert!(out.contains("podman machine ssh"), "{out}");
    let after = bed.engine_skew();
    eprintln!("paused 20 s: {behind:+.3} s; after clock sync --if-skewed: {after:+.3} s");
    assert!(after.abs() < 0.5, "after clock sync the VM is {after} s off:\n{out}");
    let again = bed.test(&["clock", "sync", "--if-skewed"]).text();
    assert!(!again.contains("set the engine's clock"), "{again}");
}

#[test]
fn podman_a_day_behind_doctor_names_the_clock_and_fix_brings_the_registry_back() {
    let mut bed = Bed::on_podman("day");
    bed.with_podman_cli();
    bed.write_config("[images]\nbase = [\"podtest/base:1\"]\nalias = \"\"\n");
    let ci = bed.ci_registry();
    bed.push_image(ci, "podtest/base:1", 1_000);
    bed.test(&["registry", "up"]).text();
    bed.test(&["pull"]).text();

    // 25 hours behind: Garage refuses the registry's requests ("Date is too old").
    set_podman_vm_clock(25 * 3600);
    // The registry's storage health check needs three failures, 10 s apart, to give up.
    std::thread::sleep(Duration::from_secs(35));
    let (report, code) = json(&bed, &["doctor", "--json", "--timeout", "60s"]);
    assert_eq!(code, 1, "{report:#}");
    let clock = finding(&report, "clock");
    assert_eq!(clock["status"], "fail", "{clock:#}");
    assert_eq!(clock["fix"], "devbox clock sync", "{clock:#}");
    let api = finding(&report, "registry-api");
    assert_eq!(api["status"], "fail", "{api:#}");
    assert!(api["summary"].as_str().unwrap_or_default().contains("clock"), "names the clock: {api:#}");

    let fixed = bed.test(&["doctor", "--fix", "--yes", "--timeout", "60s"]).any_code().run();
    assert!(fixed.status.success(), "doctor --fix --yes:\n{}", output_text(&fixed));
    let (report, code) = json(&bed, &["doctor", "--json", "--timeout", "60s"]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(finding(&report, "clock")["status"], "ok", "{report:#}");
    let _ = podman_docker(&["rmi", "-f", &format!("127.0.0.1:{}/podtest/base:1", bed.port)]);
    let pulled = bed.test(&["pull"]).text();
    assert!(pulled.contains("podtest/base:1: pulled"), "a pull works again: {pulled}");
}
