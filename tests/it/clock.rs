//! `devbox clock check|sync` against the real engine, real S3 servers (moto, one of them under
//! libfaketime) and tiny local HTTP servers. This machine's clock is never changed: the VM path of
//! `sync` runs here only as `--dry-run`, or up to the checks that stop it before it executes.

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use crate::testbed::{Bed, HttpServer, REGISTRY_IMAGE, S3Server, docker, free_port, registry_image_pinned};

/// A config for `bed` whose S3 endpoint is `endpoint`, plus `extra` TOML.
pub(crate) fn config_with_endpoint(bed: &Bed, endpoint: &str, extra: &str) {
    bed.write_raw_config(&format!(
        "[registry]\nimage = \"{}\"\npull = \"never\"\ncontainer = \"{}\"\nport = {}\n\
         [registry.s3]\nbucket = \"{}\"\nendpoint = \"{endpoint}\"\npath_style = true\n{extra}",
        crate::testbed::registry_image_pinned(),
        bed.name,
        bed.port,
        bed.bucket
    ));
}

fn check_json(bed: &Bed, envs: &[(&str, &str)]) -> (Value, i32) {
    let mut run = bed.test(&["clock", "check", "--json"]).any_code();
    for (k, v) in envs {
        run = run.env(k, v);
    }
    let out = run.run();
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("not JSON ({e}): {}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    });
    (json, out.status.code().expect("exit code"))
}

fn skew<'a>(report: &'a Value, a: &str, b: &str) -> &'a Value {
    report["skews"]
        .as_array()
        .expect("skews")
        .iter()
        .find(|s| s["a"] == a && s["b"] == b)
        .unwrap_or_else(|| panic!("no {a} vs {b} in {report:#}"))
}

fn clock<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["clocks"].as_array().expect("clocks").iter().find(|c| c["clock"] == name).expect("clock")
}

/// How far a clock's measured offset can be from the truth, from the reading itself: the remote
/// read its clock somewhere within the round trip (half of it either side of the midpoint devbox
/// assumes), and an HTTP Date header truncates to the second (half a second either side of the
/// middle devbox assumes). On a loaded machine round trips grow, and so does this bar; a fixed
/// bound would fail there while devbox measured correctly. Plus rounding in the JSON.
fn error_bar(report: &Value, name: &str) -> f64 {
    let round_trip = clock(report, name)["round_trip_ms"].as_f64().expect("a measured round trip") / 1000.0;
    let resolution = if name == "s3" { 0.5 } else { 0.0 };
    resolution + round_trip / 2.0 + 0.002
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).expect("after 1970").as_secs() as i64
}

/// Containers of the clock helper created since `since` (unix seconds), from the engine's events.
fn helper_events_since(since: i64) -> String {
    docker(&[
        "events",
        "--since",
        &since.to_string(),
        "--until",
        &(unix_now() + 1).to_string(),
        "--filter",
        "type=container",
        "--filter",
        "label=devbox.role=clock-sync",
        "--format",
        "{{.Action}} {{.Actor.Attributes.name}}",
    ])
}

#[test]
fn check_reads_all_three_clocks_in_well_under_a_second() {
    let bed = Bed::new("clock-check");
    let started = Instant::now();
    let out = bed.test(&["clock", "check"]).run();
    let elapsed = started.elapsed();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    for line in ["  host ", "  engine ", "  S3 ", "✓ engine vs host", "✓ S3 vs host", "✓ engine vs S3"] {
        assert!(text.contains(line), "no {line:?} in:\n{text}");
    }
    assert!(text.contains("engine: native Linux"), "{text}");
    assert!(elapsed < Duration::from_secs(1), "clock check took {elapsed:?}:\n{text}");
    eprintln!("clock check took {elapsed:?}");

    let (report, code) = check_json(&bed, &[]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["engine"]["runtime"], "native-linux");
    assert_eq!(report["engine"]["vm"], false);
    assert_eq!(report["max_skew_seconds"], 2.0);
    // The testbed's clocks are one clock: the engine to the millisecond, S3 within its Date
    // header's one-second resolution.
    let engine = skew(&report, "engine", "host")["skew_seconds"].as_f64().expect("engine measured");
    assert!(engine.abs() <= error_bar(&report, "engine"), "{report:#}");
    let s3 = skew(&report, "s3", "host")["skew_seconds"].as_f64().expect("S3 measured");
    assert!(s3.abs() <= error_bar(&report, "s3"), "{report:#}");
    assert!(clock(&report, "s3")["source"].as_str().expect("source").contains(&bed.bucket));
}

#[test]
fn a_skewed_s3_is_reported_with_its_sign_and_size_within_a_second() {
    let ahead = S3Server::moto().clock_offset("+7m").start();
    let behind = S3Server::moto().clock_offset("-20m").start();
    let bed = Bed::new("clock-skewed");

    config_with_endpoint(&bed, &ahead.endpoint(), "");
    let (report, code) = check_json(&bed, &[]);
    assert_eq!(code, 1, "a skew above 5 minutes fails: {report:#}");
    let s3 = skew(&report, "s3", "host");
    let seconds = s3["skew_seconds"].as_f64().expect("measured");
    let bar = error_bar(&report, "s3");
    assert!((seconds - 420.0).abs() <= bar, "S3 is 7 minutes ahead, measured {seconds} (± {bar}): {report:#}");
    assert_eq!(s3["verdict"], "fail");
    // The engine is as far behind S3 as S3 is ahead of the host: what S3 judges the registry by.
    let engine_vs_s3 = skew(&report, "engine", "s3")["skew_seconds"].as_f64().expect("measured");
    assert!((engine_vs_s3 + 420.0).abs() <= bar + error_bar(&report, "engine"), "{report:#}");
    assert_eq!(skew(&report, "engine", "host")["verdict"], "ok");

    config_with_endpoint(&bed, &behind.endpoint(), "");
    let (report, code) = check_json(&bed, &[]);
    assert_eq!(code, 1);
    let s3 = skew(&report, "s3", "host");
    let seconds = s3["skew_seconds"].as_f64().expect("measured");
    let bar = error_bar(&report, "s3");
    assert!((seconds + 1200.0).abs() <= bar, "S3 is 20 minutes behind, measured {seconds} (± {bar}): {report:#}");
    assert_eq!(s3["verdict"], "aws_will_refuse");

    // In words, with the sign: about 20 minutes (the figure itself is held to its error bar above).
    bed.test(&["clock", "check"])
        .code(1)
        .stdout_matches(r"✗ S3 vs host\s+-(19m 5\d\.\d|20m \d\.\d)s  AWS will refuse")
        .stdout_has("this host's own clock is off")
        .run();
}

#[test]
fn an_engine_that_is_down_still_leaves_host_and_s3_reported() {
    let bed = Bed::new("clock-noengine");
    let (report, code) = check_json(&bed, &[("DOCKER_HOST", "unix:///nonexistent.sock")]);
    assert_eq!(code, 0, "an unmeasured clock is a warning, not a failure: {report:#}");
    let engine = clock(&report, "engine");
    assert!(engine["error"].as_str().expect("why").contains("/nonexistent.sock"), "{report:#}");
    assert_eq!(skew(&report, "engine", "host")["verdict"], "unmeasured");
    assert_eq!(skew(&report, "s3", "host")["verdict"], "ok");
    assert!(report["engine"].is_null());

    bed.test(&["clock", "check"])
        .env("DOCKER_HOST", "unix:///nonexistent.sock")
        .stdout_has("! engine: not measured")
        .stdout_has("✓ S3 vs host")
        .run();
    // The scheduled job has no engine clock to fix, and says so without failing.
    bed.test(&["clock", "sync", "--if-skewed"])
        .env("DOCKER_HOST", "unix:///nonexistent.sock")
        .stdout_has("nothing to sync")
        .run();
    // Asked outright, sync fails and says why.
    bed.test(&["clock", "sync"])
        .env("DOCKER_HOST", "unix:///nonexistent.sock")
        .code(1)
        .stderr_has("cannot read the engine's clock")
        .run();
}

#[test]
fn an_s3_endpoint_that_is_down_still_leaves_engine_and_host_reported() {
    let bed = Bed::new("clock-nos3");
    config_with_endpoint(&bed, &format!("http://127.0.0.1:{}", free_port()), "");
    let (report, code) = check_json(&bed, &[]);
    assert_eq!(code, 0, "{report:#}");
    assert!(clock(&report, "s3")["error"].as_str().expect("why").contains("cannot connect"), "{report:#}");
    assert_eq!(skew(&report, "engine", "host")["verdict"], "ok");
    assert_eq!(skew(&report, "s3", "host")["verdict"], "unmeasured");
    assert_eq!(skew(&report, "engine", "s3")["verdict"], "unmeasured");
}

#[test]
fn a_missing_or_malformed_date_header_is_named() {
    let bed = Bed::new("clock-date");
    let none = HttpServer::raw("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    config_with_endpoint(&bed, &none.url, "");
    let (report, code) = check_json(&bed, &[]);
    assert_eq!(code, 0);
    assert_eq!(clock(&report, "s3")["error"], "the answer had no Date header (HTTP 403)", "{report:#}");
    assert_eq!(skew(&report, "engine", "host")["verdict"], "ok");

    let bad = HttpServer::raw(
        "HTTP/1.1 403 Forbidden\r\nDate: last Tuesday\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    config_with_endpoint(&bed, &bad.url, "");
    bed.test(&["clock", "check"])
        .stdout_has("! S3: not measured")
        .stdout_has("the Date header \"last Tuesday\" is not an HTTP date (HTTP 403)")
        .run();
}

#[test]
fn max_skew_zero_is_allowed() {
    let bed = Bed::new("clock-zero");
    bed.write_config("[clock]\nmax_skew = \"0s\"\n");
    let (report, code) = check_json(&bed, &[]);
    assert_eq!(report["max_skew_seconds"], 0.0, "{report:#}");
    // Any measurable skew now warns, and a warning does not fail the check.
    assert_eq!(code, 0);
    let verdict = skew(&report, "engine", "host")["verdict"].as_str().expect("verdict").to_string();
    assert!(verdict == "warn" || verdict == "ok", "{report:#}");
}

#[test]
fn sync_refuses_a_native_engine_and_runs_nothing() {
    let bed = Bed::new("clock-native");
    let since = unix_now();
    for args in [&["clock", "sync"][..], &["clock", "sync", "--dry-run"]] {
        bed.test(args)
            .code(2)
            .stderr_has("devbox will not set the clock of the engine at unix://")
            .stderr_has("it shares this host's clock")
            .stderr_has("timedatectl set-ntp true")
            .stderr_has("chrony")
            .run();
    }
    // The scheduled job's command is a quiet no-op while the clocks agree.
    bed.test(&["clock", "sync", "--if-skewed"]).stdout_is("").run();
    assert_eq!(helper_events_since(since), "", "a clock helper container was created");
}

#[test]
fn the_vm_path_dry_run_shows_the_exact_helper_container() {
    let bed = Bed::new("clock-dryrun");
    // Zero tolerance, so the testbed's millisecond skew counts as drift.
    bed.write_config("[clock]\nmax_skew = \"0s\"\n");
    let since = unix_now();
    let out = bed
        .test(&["clock", "sync", "--dry-run"])
        .env("DEVBOX_ENGINE_KIND", "vm")
        .stdout_has("the engine's clock (a Linux VM) is")
        .stdout_has("then measure again, and check the registry's S3 access")
        .run();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let command = text.lines().find_map(|l| l.trim().strip_prefix("docker run ")).expect("a docker run line");
    // The helper runs the registry's own image, as the bed's config pins it.
    let image = registry_image_pinned();
    let expected = format!(
        "--rm -i --name devbox-clock-sync- --label devbox.managed=true --label devbox.role=clock-sync --user 0 \
         --cap-add SYS_TIME --network none --entrypoint /bin/sh {image}, \
         fed `date -u -s @<second>` on its input at the host's next whole second"
    );
    let masked =
        command.split_whitespace().map(|w| if w.starts_with("devbox-clock-sync-") { "devbox-clock-sync-" } else { w });
    let masked = masked.collect::<Vec<_>>().join(" ");
    assert_eq!(masked, expected, "{command}");
    assert_eq!(helper_events_since(since), "", "--dry-run created a container");

    // The same container, fed `date -d` (show) for `date -s` (set), really runs on this engine:
    // the image, entrypoint, user, capability and network flags are right, its shell reads the
    // command from its input, and no clock is touched.
    let mut run = std::process::Command::new("docker")
        .args(["run", "--rm", "-i", "--user", "0", "--cap-add", "SYS_TIME", "--network", "none"])
        .args(["--entrypoint", "/bin/sh", REGISTRY_IMAGE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("docker run");
    let at = unix_now();
    run.stdin.take().expect("stdin").write_all(format!("exec date -u -d @{at} +%s\n").as_bytes()).expect("feed");
    let shown = run.wait_with_output().expect("docker run ends");
    assert_eq!(String::from_utf8_lossy(&shown.stdout).trim(), at.to_string());
}

#[test]
fn a_forced_classification_never_executes_the_helper() {
    let bed = Bed::new("clock-forced");
    bed.write_config("[clock]\nmax_skew = \"0s\"\n");
    let since = unix_now();
    bed.test(&["clock", "sync"])
        .env("DEVBOX_ENGINE_KIND", "vm")
        .code(2)
        .stderr_has("the engine's classification was forced")
        .stderr_has("DEVBOX_ENGINE_KIND is a testing aid")
        .run();
    assert_eq!(helper_events_since(since), "");
}

#[test]
fn a_helper_that_cannot_start_is_a_clear_error_and_leaves_the_registry_alone() {
    let bed = Bed::new("clock-helper");
    bed.test(&["registry", "up"]).run();
    let registry = bed.container_identity().expect("registry exists");
    bed.test(&["clock", "check"]).stdout_has("✓ registry reaches S3").run();

    // The helper's image is absent, and devbox never pulls for it.
    let absent = format!("devbox-testbed/absent-{}:1", std::process::id());
    bed.write_raw_config(&format!(
        "[registry]\nimage = \"{absent}\"\npull = \"never\"\ncontainer = \"{}\"\nport = {}\n\
         [registry.s3]\nbucket = \"{}\"\nendpoint = \"{}\"\npath_style = true\n[clock]\nmax_skew = \"0s\"\n",
        bed.name, bed.port, bed.bucket, bed.s3_endpoint
    ));
    let since = unix_now();
    bed.test(&["clock", "sync"])
        .env("DEVBOX_ENGINE_KIND", "vm")
        .code(1)
        .stderr_has(format!("the clock helper needs the image {absent} on the engine"))
        .stderr_has("Nothing was changed")
        .run();
    assert_eq!(bed.container_identity(), Some(registry), "the registry container changed");
    assert!(docker(&["inspect", "--format", "{{.State.Status}}", &bed.name]) == "running");
    assert!(!crate::testbed::docker_try(&["image", "inspect", &absent]).0, "the image was pulled");
    assert_eq!(helper_events_since(since), "");
}

#[test]
fn a_runtime_without_its_cli_installed_falls_back_to_the_helper() {
    let bed = Bed::new("clock-colima");
    bed.write_config("[clock]\nmax_skew = \"0s\"\n");
    let since = unix_now();
    // colima's own `colima ssh -- sudo sh` is preferred, but colima is not installed here.
    bed.test(&["clock", "sync", "--dry-run"])
        .env("DEVBOX_ENGINE_KIND", "colima")
        .env("PATH", "/usr/bin:/bin")
        .stdout_has("colima's CLI (colima) is not on PATH: using a helper container instead")
        .stdout_has("docker run --rm -i --name devbox-clock-sync-")
        .run();
    assert_eq!(helper_events_since(since), "");
}
