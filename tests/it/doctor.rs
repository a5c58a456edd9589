//! `devbox doctor` on the real testbed, healthy and with each fault made for real.

use std::time::{Duration, Instant};

use crate::testbed::tty::on_a_tty;
use crate::testbed::{Bed, S3Server, docker, hold_port, strip_ansi};

const PRODUCTION: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";

/// A provisioned bed: CI pushed one base image, the registry is up and the image pulled.
fn healthy(bed: &mut Bed) {
    let ci = bed.ci_registry();
    bed.push_image(ci, "base/python:3.12", 100_000);
    bed.write_config(&format!(
        "[images]\nbase = [\"base/python:3.12\"]\nalias = \"{}/{{name}}\"\n[security]\nproduction_registries = [\"{PRODUCTION}\"]\n",
        bed.name
    ));
    bed.test(&["registry", "up"]).run();
    bed.test(&["pull"]).run();
}

fn report(bed: &Bed, args: &[&str]) -> (i32, serde_json::Value) {
    let out = bed.test(args).any_code().run();
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    });
    (out.status.code().unwrap_or(-1), json)
}

fn status<'a>(report: &'a serde_json::Value, id: &str) -> &'a str {
    report["checks"]
        .as_array()
        .and_then(|checks| checks.iter().find(|c| c["id"] == id))
        .and_then(|c| c["status"].as_str())
        .unwrap_or_else(|| panic!("no check {id} in {report}"))
}

/// What the disk check's own figures warrant: it judges this machine's disk, which the testbed
/// does not control (other work on the machine fills and frees it), so a test expects of it only
/// what its figures say, as `disk_verdict` judges them: full as `df` says, used of used plus
/// available (root's reserve is neither), the used part read here from the engine's data disk.
fn disk_warrants(report: &serde_json::Value) -> &'static str {
    let disk = report["checks"].as_array().and_then(|c| c.iter().find(|c| c["id"] == "disk")).expect("disk");
    let figure = |key: &str| disk["details"][key].as_str().and_then(|v| v.parse::<f64>().ok());
    let root = docker(&["info", "--format", "{{.DockerRootDir}}"]);
    let stats = fs4::statvfs(&root).unwrap_or_else(|e| panic!("statvfs {root}: {e}"));
    match (figure("free_bytes"), figure("total_bytes")) {
        (Some(available), Some(total)) if total > 0.0 => {
            let used = total - (stats.free_space() as f64).min(total);
            match 100.0 * used / (used + available).max(1.0) {
                p if p > 90.0 => "fail",
                p if p > 80.0 => "warn",
                _ => "ok",
            }
        }
        _ => "ok",
    }
}

/// Every check but `schedules` and `disk`, the two that judge this machine rather than the
/// testbed: the testbed never installs jobs into root's own crontab, so `schedules` is "not
/// installed" here (a warning); the disk is the machine's (see `disk_warrants`). `--fix` must not
/// be let loose on either: the disk's remedy would clean the machine's own engine.
const ALL_BUT_MACHINE_CHECKS: [&str; 20] = [
    "--check",
    "engine",
    "--check",
    "network",
    "--check",
    "registry-container",
    "--check",
    "registry-api",
    "--check",
    "aws-credentials",
    "--check",
    "clock",
    "--check",
    "base-images",
    "--check",
    "push-credentials",
    "--check",
    "config",
    "--check",
    "version",
];

pub fn doctor<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["doctor"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&ALL_BUT_MACHINE_CHECKS);
    args
}

#[test]
fn a_healthy_machine_passes_every_check() {
    let mut bed = Bed::new("dochealthy");
    healthy(&mut bed);
    let (code, json) = report(&bed, &["doctor", "--json"]);
    let disk = disk_warrants(&json);
    assert_eq!(code, if disk == "fail" { 1 } else { 0 }, "{json:#}");
    assert_eq!(json["summary"]["fail"], if disk == "fail" { 1 } else { 0 }, "{json:#}");
    for check in json["checks"].as_array().expect("checks") {
        if check["id"] == "schedules" {
            assert_eq!(check["status"], "warn", "{check}");
            assert_eq!(check["fix"], "devbox schedule install", "{check}");
        } else if check["id"] == "disk" {
            assert_eq!(check["status"], disk, "{check}");
        } else {
            assert_eq!(check["status"], "ok", "{check}");
        }
        for key in ["id", "status", "summary", "hint", "fix", "duration_ms", "details"] {
            assert!(check.get(key).is_some(), "{key} missing from {check}");
        }
    }
    assert_eq!(json["checks"].as_array().map(Vec::len), Some(13));
    bed.test(&doctor(&[])).stdout_has("all 10 checks passed").run();
}

#[test]
fn a_stopped_registry_is_named_and_fix_brings_it_back() {
    let mut bed = Bed::new("docstopped");
    healthy(&mut bed);
    docker(&["stop", "-t", "1", &bed.name]);

    bed.test(&["doctor"])
        .code(1)
        .stdout_has(format!("✗ registry-container {} is exited", bed.name))
        .stdout_has("run: devbox registry up")
        .stdout_has("- registry-api       skipped: registry-container failed")
        .run();

    let (code, json) = report(&bed, &doctor(&["--fix", "--yes", "--json"]));
    assert_eq!(code, 0, "{json:#}");
    assert_eq!(status(&json["before"], "registry-container"), "fail");
    assert_eq!(json["fixes"][0]["command"], "devbox registry up");
    assert_eq!(json["fixes"][0]["ok"], true);
    assert_eq!(json["after"]["summary"]["fail"], 0, "{json:#}");
    assert_eq!(json["after"]["summary"]["warn"], 0, "{json:#}");
}

#[test]
fn a_removed_registry_and_stale_images_are_fixed_in_order() {
    let mut bed = Bed::new("docremoved");
    healthy(&mut bed);
    bed.test(&["registry", "down"]).run();
    docker(&["rmi", &format!("127.0.0.1:{}/base/python:3.12", bed.port)]);

    let (code, json) = report(&bed, &["doctor", "--json"]);
    assert_eq!(code, 1);
    assert_eq!(status(&json, "registry-container"), "fail");
    assert_eq!(status(&json, "base-images"), "skipped");

    bed.test(&doctor(&["--fix", "--yes"]))
        .stdout_has("$ devbox registry up")
        .stdout_has("After the fixes")
        .stdout_has("all 10 checks passed")
        .run();
    // The second round found the image missing and pulled it too.
    let (code, json) = report(&bed, &["doctor", "--json"]);
    assert_eq!(code, 0, "{json:#}");
    assert_eq!(status(&json, "base-images"), "ok");
}

#[test]
fn a_stopped_s3_server_fails_the_registry_api_and_bucket_but_nothing_else() {
    let mut bed = Bed::on_s3("docs3down", S3Server::moto().start());
    healthy(&mut bed);
    bed.s3().stop();
    let (code, json) = report(&bed, &["doctor", "--json"]);
    assert_eq!(code, 1);
    assert_eq!(status(&json, "registry-api"), "fail", "{json:#}");
    assert_eq!(status(&json, "aws-credentials"), "fail", "{json:#}");
    for ok in ["config", "engine", "registry-container", "push-credentials", "clock"] {
        assert_eq!(status(&json, ok), "ok", "{ok}: {json:#}");
    }
    assert_eq!(status(&json, "disk"), disk_warrants(&json), "{json:#}");
}

#[test]
fn an_unreachable_engine_skips_its_dependents() {
    let bed = Bed::new("docnoengine");
    let started = Instant::now();
    let json = bed.test(&["doctor", "--json"]).env("DOCKER_HOST", "unix:///nonexistent.sock").code(1).json();
    assert!(started.elapsed() < Duration::from_secs(6), "took {:?}", started.elapsed());
    assert_eq!(status(&json, "engine"), "fail");
    for skipped in ["disk", "registry-container", "registry-api", "base-images"] {
        assert_eq!(status(&json, skipped), "skipped", "{skipped}");
    }
    assert_eq!(status(&json, "aws-credentials"), "ok");
}

#[test]
fn a_socket_this_user_may_not_open_is_named_with_the_fix() {
    use std::os::unix::fs::PermissionsExt;
    let user = crate::schedule::TestUser::new("docperm");
    // root's socket, as dockerd's is root:docker 0660, and a user outside that group.
    let dir = tempfile::tempdir().expect("a temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let socket = dir.path().join("docker.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).expect("bind");
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let host = format!("DOCKER_HOST=unix://{}", socket.display());
    let bin = user.bin.to_str().expect("utf-8");
    let out = user.run(None, "env", &[&host, bin, "doctor", "--check", "engine"], None);
    let stdout = strip_ansi(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("permission denied: this user may not open the socket"), "{stdout}");
    assert!(stdout.contains("sudo usermod -aG docker $USER"), "{stdout}");
    assert!(!stdout.contains("Start Docker"), "{stdout}");
}

#[test]
fn a_frozen_engine_costs_one_timeout_not_a_hang() {
    let bed = Bed::new("docfrozen");
    // A socket that accepts connections and never answers: an engine that froze.
    let socket = bed.home.path().join("frozen.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).expect("bind");
    let _accepting = std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    for timeout in ["5s", "1s"] {
        let started = Instant::now();
        let json = bed
            .test(&["doctor", "--json", "--timeout", timeout])
            .env("DOCKER_HOST", format!("unix://{}", socket.display()))
            .any_code()
            .json();
        let took = started.elapsed();
        let limit = humantime::parse_duration(timeout).expect("duration") + Duration::from_secs(1);
        assert!(took <= limit, "doctor took {took:?} with --timeout {timeout}");
        assert_eq!(status(&json, "engine"), "fail");
        assert_eq!(status(&json, "registry-api"), "skipped");
    }
}

#[test]
fn a_port_held_by_another_process_is_named() {
    let bed = Bed::new("docport");
    let _holder = hold_port(bed.port);
    bed.test(&["doctor"])
        .code(1)
        .stdout_has(format!("port {} on 127.0.0.1 is held by another process", bed.port))
        .stdout_has("registry.port")
        .run();
}

#[test]
fn stored_push_credentials_are_flagged_without_echoing_the_secret() {
    let bed = Bed::new("docpush");
    bed.write_config(&format!("[security]\nproduction_registries = [\"{PRODUCTION}\"]\n"));
    let secret = "Y2k6c3VwZXItc2VjcmV0LXB1c2gtdG9rZW4=";
    let docker_dir = bed.home.path().join(".docker");
    std::fs::create_dir_all(&docker_dir).expect("mkdir");
    std::fs::write(
        docker_dir.join("config.json"),
        format!(
            r#"{{"auths": {{"https://{PRODUCTION}": {{"auth": "{secret}"}}, "ghcr.io": {{"auth": "b3RoZXI="}}}}}}"#
        ),
    )
    .expect("write");
    for args in [&["doctor", "--check", "push-credentials"][..], &["-v", "doctor"], &["doctor", "--json"]] {
        // Neither the push secret nor the AWS one is printed.
        bed.test(args)
            .code(1)
            .output_has(format!("push credentials for {PRODUCTION} are stored"))
            .output_has(format!("docker logout {PRODUCTION}"))
            .output_lacks(secret)
            .output_lacks("super-secret")
            .output_lacks("testing-secret")
            .run();
    }
}

#[test]
fn missing_and_already_expired_credentials_are_named() {
    let bed = Bed::new("doccreds");
    // The AWS check with no credentials in the environment: only the profile can give them.
    let check = || {
        let out = bed
            .test(&["doctor", "--json", "--check", "aws-credentials"])
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .any_code()
            .run();
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        (out, json)
    };
    // No credentials at all: the AWS check fails and says how to log in.
    let (out, json) = check();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(status(&json, "aws-credentials"), "fail");
    assert!(
        json["checks"][1]["hint"].as_str().unwrap_or_default().contains("aws sso login --profile devbox"),
        "{json:#}"
    );

    // Short-lived credentials from a credential_process, as SSO and assume-role give them.
    // Fresh ones are fine however soon they expire (the registry's own copy is judged by its
    // lease); ones already expired when handed out are refused, without the login hint.
    for (expires_in, expected) in [(-600, "fail"), (120, "ok"), (1200, "ok"), (7200, "ok")] {
        let expiry = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(expires_in);
        let script = bed.home.path().join("creds.sh");
        crate::testbed::write_executable(
            &script,
            format!(
                "#!/bin/sh\necho '{{\"Version\": 1, \"AccessKeyId\": \"AKIDPROCESS\", \"SecretAccessKey\": \"process-secret\", \"SessionToken\": \"tok\", \"Expiration\": \"{expiry}\"}}'\n"
            )
            .as_bytes(),
        );
        let aws = bed.home.path().join(".aws");
        std::fs::create_dir_all(&aws).expect("mkdir");
        std::fs::write(aws.join("config"), format!("[profile devbox]\ncredential_process = {}\n", script.display()))
            .expect("write");
        let (out, json) = check();
        assert_eq!(status(&json, "aws-credentials"), expected, "expiring in {expires_in}s: {json:#}");
        assert!(!String::from_utf8_lossy(&out.stdout).contains("process-secret"));
        assert!(!String::from_utf8_lossy(&out.stdout).contains("aws sso login"), "{json:#}");
    }
}

#[test]
fn check_runs_only_what_was_asked_and_its_dependencies() {
    let bed = Bed::new("doccheck");
    let (_, json) = report(&bed, &["doctor", "--json", "--check", "disk"]);
    let ids: Vec<&str> = json["checks"].as_array().expect("checks").iter().filter_map(|c| c["id"].as_str()).collect();
    assert_eq!(ids, ["config", "engine", "disk"]);
    bed.test(&["doctor", "--check", "nonsense"]).code(2).run();
}

#[test]
fn a_broken_config_is_a_failed_check_with_everything_else_skipped() {
    let bed = Bed::new("docbadcfg");
    bed.write_raw_config("[registry]\nport = \"five\"\n");
    let (code, json) = report(&bed, &["doctor", "--json"]);
    assert_eq!(code, 1);
    assert_eq!(status(&json, "config"), "fail");
    assert!(json["checks"][0]["summary"].as_str().unwrap_or_default().contains("registry.port"), "{json:#}");
    assert_eq!(status(&json, "engine"), "skipped");
}

#[test]
fn an_s3_server_with_a_skewed_clock_fails_the_clock_check() {
    let bed = Bed::new("docskew");
    let s3 = S3Server::moto().clock_offset("+7m").start();
    crate::clock::config_with_endpoint(&bed, &s3.endpoint(), "");
    let (code, json) = report(&bed, &["doctor", "--json", "--check", "clock"]);
    assert_eq!(code, 1, "{json:#}");
    let clock = json["checks"].as_array().and_then(|c| c.iter().find(|c| c["id"] == "clock")).expect("clock");
    assert_eq!(clock["status"], "fail", "{clock}");
    let summary = clock["summary"].as_str().unwrap_or_default();
    // Seven minutes, give or take the measurement's error bar (it grows with a loaded machine's round trips).
    assert!(summary.contains("S3 +7m") || summary.contains("S3 +6m 5"), "{summary}");
    assert!(clock["hint"].as_str().unwrap_or_default().contains("timedatectl set-ntp true"), "{clock}");
}

#[test]
fn the_terminal_report_reads_as_designed() {
    let mut bed = Bed::new("doctty");
    healthy(&mut bed);
    docker(&["stop", "-t", "1", &bed.name]);
    let raw = on_a_tty(&bed, &["doctor"]);
    assert!(raw.contains('\u{1b}'), "no colour on a terminal: {raw:?}");
    let home = bed.home.path().display().to_string();
    let text = strip_ansi(&raw).replace(&home, "<home>").replace(&bed.name, "<name>").replace(&bed.bucket, "<bucket>");
    // Versions, sizes, skews and times change from machine to machine; the shape does not. The
    // disk line's very verdict depends on the machine's disk, so it stands for itself, with any
    // hint under it; and the count it adds to the summary may make a word plural.
    let mut in_disk = false;
    let text: String = text
        .lines()
        .filter(|line| {
            let indented = line.starts_with("    ");
            in_disk = (in_disk && indented) || line.split_whitespace().nth(1) == Some("disk");
            !(in_disk && indented)
        })
        .map(|line| line.replace(" problems,", " problem,").replace(" warnings,", " warning,") + "\n")
        .collect();
    let shape: String = text
        .lines()
        .map(|line| match line.split_whitespace().nth(1) {
            Some("disk") => "<disk: this machine's own figures>".to_string(),
            Some("clock") => line.replace("S3", "S-three").replace(" +", " ±").replace(" -", " ±"),
            _ => line.to_string(),
        })
        .map(|line| {
            let mut out = String::new();
            let mut last_digit = false;
            for c in line.chars() {
                if c.is_ascii_digit() {
                    if !last_digit {
                        out.push('#');
                    }
                    last_digit = true;
                } else {
                    out.push(c);
                    last_digit = false;
                }
            }
            out.replace("S-three", "S3").trim_end().to_string() + "\n"
        })
        .collect();
    insta::assert_snapshot!("doctor_tty_stopped_registry", shape);
}
