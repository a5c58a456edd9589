//! devbox on the testbed's VM engine (tests/testbed/vm/): a Debian VM under QEMU running dockerd,
//! reached as colima exposes its engine (a socket and a docker context named `colima` in the
//! test's HOME). Its clock is the VM's own: pausing the VM's CPUs (`vm.sh pause N`) puts it N
//! seconds behind, as a laptop's sleep does, and a helper container with `date -s` can set it back
//! further. This host's clock is never touched.
//!
//! The VM is one shared engine and slow (software emulation: a container takes seconds to start),
//! so these tests take one lock each and run one after another, with generous timeouts. S3 is the
//! testbed's Garage (tests/testbed/garage/), which refuses request dates more than 24 h old.

use std::process::Command;
use std::time::Duration;

use crate::testbed::{Bed, Test, output_text};
use crate::vm_bed::*;

#[test]
fn vm_engine_is_classified_from_the_real_engine_and_its_three_clocks_read() {
    let bed = Bed::on_vm("classify");
    let report = bed.test(&["clock", "check", "--json"]).json();
    assert_eq!(report["engine"]["runtime"], "colima", "{report:#}");
    assert_eq!(report["engine"]["vm"], true);
    assert_eq!(report["engine"]["forced"], false);
    for clock in ["host", "engine", "s3"] {
        let reading = report["clocks"].as_array().expect("clocks").iter().find(|c| c["clock"] == clock);
        let reading = reading.unwrap_or_else(|| panic!("no {clock} clock in {report:#}"));
        assert!(reading["offset_seconds"].is_number(), "the {clock} clock was not read: {reading:#}");
    }
    let endpoint = report["clocks"][1]["source"].as_str().unwrap_or_default().to_string();
    assert!(endpoint.ends_with("/.colima/default/docker.sock"), "reached through the colima context: {endpoint}");
}

#[test]
fn vm_a_paused_vm_is_synced_to_within_half_a_second() {
    let bed = Bed::on_vm("pause");
    let pause = vm_sh(&["pause", "20"]);
    assert!(pause.status.success(), "vm.sh pause: {}", output_text(&pause));
    let behind = bed.engine_skew();
    assert!((-23.0..=-17.0).contains(&behind), "after a 20 s pause the VM is {behind} s off");
    let out = bed.test(&["clock", "sync", "--if-skewed"]).output_has("set the engine's clock").text();
    let after = bed.engine_skew();
    eprintln!("paused 20 s: {behind:+.3} s; after clock sync --if-skewed: {after:+.3} s");
    assert!(after.abs() < 0.5, "after clock sync the VM is {after} s off:\n{out}");
    // The scheduled job then has nothing to do.
    bed.test(&["clock", "sync", "--if-skewed"]).output_lacks("set the engine's clock").run();
}

#[test]
fn vm_disk_check_measures_the_vms_disk_not_this_hosts() {
    let bed = Bed::on_vm("disk");
    bed.test(&["registry", "up"]).run();
    let report = bed.test(&["doctor", "--check", "disk", "--json", "--timeout", "60s"]).json();
    let disk = finding(&report, "disk");
    let total: u64 = disk["details"]["total_bytes"].as_str().and_then(|s| s.parse().ok()).expect("total_bytes");
    let gib = total as f64 / (1u64 << 30) as f64;
    let host = fs4::statvfs("/var/lib/docker").map(|s| s.total_space()).unwrap_or(0);
    eprintln!("the VM's disk: {gib:.1} GiB; this host's /var/lib/docker: {:.0} GiB", host as f64 / (1u64 << 30) as f64);
    assert!((3.0..=12.0).contains(&gib), "the VM's disk is about 6 GiB, the check says {gib:.1} GiB: {disk:#}");
    assert_ne!(total, host, "the check measured this host's disk");
    let summary = disk["summary"].as_str().unwrap_or_default();
    assert!(summary.contains("inside colima's VM"), "{summary}");
    assert_eq!(disk["details"]["measured"], format!("df in container {}", bed.name));

    // Once the registry's health check has run (30 s after the start), its `df` is the figure:
    // no exec in the VM, and the report says how old the figure is.
    let health = || {
        let out = vm_docker(&["inspect", "--format", "{{len .State.Health.Log}}", &bed.name]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    crate::testbed::wait_until("the registry's first health check", Duration::from_secs(90), || health() != "0");
    let report = bed.test(&["doctor", "--check", "disk", "--json", "--timeout", "60s"]).any_code().json();
    let disk = finding(&report, "disk");
    let measured = disk["details"]["measured"].as_str().unwrap_or_default();
    assert!(measured.starts_with(&format!("df by {}'s health check, ", bed.name)), "{disk:#}");
    assert!(measured.ends_with(" s ago"), "{disk:#}");
    let from_health: u64 = disk["details"]["total_bytes"].as_str().and_then(|s| s.parse().ok()).expect("total_bytes");
    assert_eq!(from_health, total, "{disk:#}");

    // Without a running registry, a probe container measures the same disk, and leaves nothing.
    // Two doctors at once each run their own probe; a young stopped probe (another run's, between
    // its create and start) is left alone.
    let image = vm_docker(&["inspect", "--format", "{{.Config.Image}}", &bed.name]);
    let image = String::from_utf8_lossy(&image.stdout).trim().to_string();
    bed.test(&["registry", "down"]).run();
    let planted = vm_docker(&["create", "--label", "devbox.role=disk-probe", "--entrypoint", "df", &image]);
    assert!(planted.status.success(), "docker create: {}", output_text(&planted));
    let planted = String::from_utf8_lossy(&planted.stdout).trim().to_string();
    let mut doctors: Vec<_> = (0..2)
        .map(|_| {
            let mut cmd = bed.devbox_std(&["doctor", "--check", "disk", "--json", "--timeout", "120s"]);
            cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().expect("devbox")
        })
        .collect();
    for doctor in doctors.drain(..) {
        let out = doctor.wait_with_output().expect("wait");
        let report: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", output_text(&out)));
        let disk = finding(&report, "disk");
        let probed: u64 = disk["details"]["total_bytes"].as_str().and_then(|s| s.parse().ok()).expect("total_bytes");
        assert_eq!(probed, total, "{disk:#}");
    }
    let left = vm_docker(&["ps", "-a", "--filter", "label=devbox.role=disk-probe", "-q", "--no-trunc"]);
    assert_eq!(String::from_utf8_lossy(&left.stdout).trim(), planted, "only the planted probe stays");
    assert!(vm_docker(&["rm", &planted]).status.success());
}

#[test]
fn vm_a_day_behind_doctor_names_the_clock_and_fix_brings_the_registry_back() {
    let mut bed = Bed::on_vm("day");
    bed.write_config("[images]\nbase = [\"vmtest/base:1\"]\nalias = \"\"\n");
    let ci = bed.ci_registry();
    bed.push_image(ci, "vmtest/base:1", 1_000);
    bed.test(&["registry", "up"]).run();
    bed.test(&["pull"]).run();

    // 25 hours behind: Garage refuses the registry's requests ("Date is too old").
    set_vm_clock(25 * 3600);
    // The registry's storage health check needs three failures, 10 s apart, to give up.
    std::thread::sleep(Duration::from_secs(35));
    let report = bed.test(&["doctor", "--json", "--timeout", "60s"]).code(1).json();
    let clock = finding(&report, "clock");
    assert_eq!(clock["status"], "fail", "{clock:#}");
    assert_eq!(clock["fix"], "devbox clock sync", "{clock:#}");
    let api = finding(&report, "registry-api");
    assert_eq!(api["status"], "fail", "{api:#}");
    let summary = api["summary"].as_str().unwrap_or_default();
    assert!(summary.contains("clock"), "the registry's failure names the clock: {api:#}");
    assert_eq!(api["fix"], "devbox clock sync", "{api:#}");

    bed.test(&["doctor", "--fix", "--yes", "--timeout", "60s"]).run();
    let report = bed.test(&["doctor", "--json", "--timeout", "60s"]).json();
    let clock = finding(&report, "clock");
    assert_eq!(clock["status"], "ok", "doctor --fix converged on the clock: {clock:#}");
    // A pull works again through the registry on the VM.
    vm_docker(&["rmi", "-f", &format!("127.0.0.1:{}/vmtest/base:1", bed.port)]);
    bed.test(&["pull"]).output_has("vmtest/base:1").run();
}

#[test]
fn vm_registry_pull_and_cleanup_work_as_on_a_native_engine() {
    let mut bed = Bed::on_vm("cleanup");
    bed.write_config("[images]\nbase = [\"vmtest/base:1\"]\nalias = \"\"\n[cleanup]\nolder_than = \"1s\"\n");
    let ci = bed.ci_registry();
    bed.push_image(ci, "vmtest/base:1", 1_000);
    bed.test(&["registry", "up"]).run();
    bed.test(&["pull"]).output_has("vmtest/base:1").run();
    let image = format!("127.0.0.1:{}/vmtest/base:1", bed.port);
    let listed = vm_docker(&["image", "inspect", &image]);
    assert!(listed.status.success(), "{image} is not on the VM's engine after the pull");

    // A stopped container past its grace period goes; the registry and the base image stay.
    let stopped = format!("{}-stopped", bed.name);
    let made = vm_docker(&["create", "--name", &stopped, "--entrypoint", "/bin/date", REGISTRY_IMAGE]);
    assert!(made.status.success(), "{}", output_text(&made));
    // Its anonymous volume (the image declares one) stays, as cleanup keeps every volume: this
    // test removes it.
    let volume = vm_docker(&["inspect", "--format", "{{range .Mounts}}{{.Name}}{{end}}", &stopped]);
    let volume = String::from_utf8_lossy(&volume.stdout).trim().to_string();
    std::thread::sleep(Duration::from_secs(2));
    let out = bed.test(&["cleanup"]).text();
    if !volume.is_empty() {
        let _ = vm_docker(&["volume", "rm", &volume]);
    }
    assert!(!vm_docker(&["inspect", &stopped]).status.success(), "{stopped} was not removed:\n{out}");
    assert!(vm_docker(&["inspect", &bed.name]).status.success(), "the registry was removed:\n{out}");
    assert!(vm_docker(&["image", "inspect", &image]).status.success(), "the base image was removed:\n{out}");
    assert!(out.contains("inside colima's VM"), "cleanup reports the VM's disk:\n{out}");
}

#[test]
fn vm_schedule_install_and_init_dry_run_include_the_clock_job_with_cron() {
    let _lock = vm_lock();
    let status = vm_sh(&["status"]);
    assert!(status.status.success(), "the testbed's VM engine is not running: start it with `sh tests/testbed/up.sh`");
    let user = crate::schedule::TestUser::new("vmclk");
    let home = user.home.to_str().expect("utf-8").to_string();
    let out = vm_sh(&["context", &home]);
    assert!(out.status.success(), "vm.sh context: {}", output_text(&out));
    let config = user.home.join(".config/devbox/devbox.toml");
    std::fs::create_dir_all(config.parent().expect("parent")).expect("mkdir");
    std::fs::write(&config, format!("[registry]\nimage = \"{REGISTRY_IMAGE}\"\npull = \"never\"\n")).expect("config");
    let chown = Command::new("chown").args(["-R", &format!("{}:", user.name), &home]).status().expect("chown");
    assert!(chown.success());
    // As the user, with the `colima` context in its HOME and no DOCKER_HOST.
    let devbox = |args: &[&str]| {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", &user.name, "--", "env", "-i"])
            .arg(format!("HOME={home}"))
            .args(["PATH=/usr/local/bin:/usr/bin:/bin", "NO_COLOR=1"])
            .arg(format!("USER={}", user.name))
            .arg(&user.bin)
            .args(args);
        Test::new(assert_cmd::Command::from_std(cmd)).timeout(Duration::from_secs(120))
    };

    // init's dry run plans the clock fix.
    devbox(&["init", "--dry-run", "--yes"]).any_code().output_has("clock sync --if-skewed").output_has("clock").run();

    devbox(&["schedule", "install", "--backend", "cron"]).output_has("clock job installed (crontab)").run();
    let crontab = user.crontab();
    let line = crontab.lines().find(|l| l.contains("--scheduled-job clock")).unwrap_or_else(|| panic!("{crontab}"));
    assert!(line.contains("clock sync --if-skewed --quiet"), "{line}");
    assert!(line.starts_with("*/10 "), "every clock.interval (10m): {line}");
    devbox(&["schedule", "remove", "--backend", "cron"]).run();
}
