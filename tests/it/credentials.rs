//! Short-lived AWS credentials (issue 11), against Garage, an S3 server that really expires keys:
//! the registry is not recreated while its own credentials are good, the renew job keeps it
//! working, doctor names expired or revoked keys and `--fix` restores pulls, and broken credential
//! sources get clear errors that leave the registry alone and print no secret.

use std::time::{Duration, Instant};

use crate::garage_bed::{script, write_profile};
use crate::testbed::{Bed, output_text as text};

/// The doctor checks these tests judge: the registry's, the base images and the host's AWS
/// credentials. `schedules` is left out as in the other doctor tests (no jobs go into root's
/// crontab here); `clock` too, as it reads S3's Date from a bucket on Garage, which answers it but
/// is not what these tests are about.
const CHECKS: [&str; 8] = [
    "--check",
    "registry-container",
    "--check",
    "registry-api",
    "--check",
    "base-images",
    "--check",
    "aws-credentials",
];

fn doctor<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["doctor"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&CHECKS);
    args
}

#[test]
fn keys_that_live_an_hour_keep_the_same_container() {
    let mut bed = Bed::on_garage("lease60", "60m");
    bed.with_base_image(100_000);
    bed.test(&["registry", "up"]).run();
    let first = bed.container_id().expect("a registry");
    let minted = bed.keys_minted();
    bed.test(&["registry", "up"]).output_has("already up").run();
    assert_eq!(bed.container_id().as_ref(), Some(&first), "registry up recreated it");
    let init = bed.test(&["init", "--yes"]).text();
    assert_eq!(bed.container_id().as_ref(), Some(&first), "init recreated it:\n{init}");
    // Fresh credentials were resolved (a key minted each time), and the container kept its own.
    assert!(bed.keys_minted() > minted);

    // The renew job with nothing to do asks AWS nothing: no key is minted.
    let minted = bed.keys_minted();
    let started = Instant::now();
    bed.test(&["registry", "renew"]).output_has("good until").run();
    let took = started.elapsed();
    assert_eq!(bed.keys_minted(), minted, "a renewal with nothing to do ran the credential_process");
    assert!(took < Duration::from_secs(2), "a renewal with nothing to do took {took:?}");
    assert_eq!(bed.container_id().as_ref(), Some(&first));
}

/// The "Must show": keys that live 3 minutes, 5 minutes with only the renew job's command
/// run (every 30 s, as the scheduler would at a short interval), and a pull through the registry works.
#[test]
fn three_minute_keys_renewed_by_the_job_keep_pulls_working_after_five_minutes() {
    let mut bed = Bed::on_garage("renew3m", "3m");
    let reference = bed.with_base_image(100_000);
    bed.test(&["registry", "up"]).run();
    let first = bed.container_id().expect("a registry");
    let started = Instant::now();
    let mut renewed = 0;
    while started.elapsed() < Duration::from_secs(5 * 60) {
        let out = bed.test(&["registry", "renew", "--quiet"]).any_code().run();
        assert!(out.status.success(), "renew failed after {:?}: {}", started.elapsed(), text(&out));
        let id = bed.container_id().expect("a registry");
        if id != first {
            renewed += 1;
        }
        std::thread::sleep(Duration::from_secs(30));
    }
    let (pulled, out) = bed.docker_pull(&reference);
    assert!(pulled, "docker pull after 5 minutes of 3-minute keys: {out}");
    assert!(renewed > 0, "the container was never renewed");
}

/// Expired credentials with the renewal skipped: doctor names them and `devbox registry up`;
/// `doctor --fix` renews them and the pull works again.
#[test]
fn expired_registry_credentials_are_named_and_fixed_by_doctor() {
    let mut bed = Bed::on_garage("expired", "40s");
    let reference = bed.with_base_image(100_000);
    bed.test(&["registry", "up"]).run();
    let (pulled, out) = bed.docker_pull(&reference);
    assert!(pulled, "{out}");
    bed.wait_past_expiry(Duration::from_secs(2));
    let (pulled, _) = bed.docker_pull(&reference);
    assert!(!pulled, "Garage still served the registry with its expired key");

    // The host's login is fine: no `aws sso login`.
    bed.test(&doctor(&[]))
        .code(1)
        .output_has("AWS credentials expired")
        .output_has("devbox registry up")
        .output_lacks("aws sso login")
        .run();

    bed.set_lifetime("60m");
    bed.test(&doctor(&["--fix", "--yes"])).any_code().output_has("devbox registry up").run();
    bed.test(&doctor(&[])).run();
    let (pulled, out) = bed.docker_pull(&reference);
    assert!(pulled, "{out}");
}

/// A key deleted on the server while the container's lease still looks good: the same diagnosis
/// and fix, and `registry up`, `pull` and the renew path see S3's refusal rather than the label.
#[test]
fn a_revoked_key_is_named_and_fixed() {
    let mut bed = Bed::on_garage("revoked", "60m");
    let reference = bed.with_base_image(100_000);
    bed.test(&["registry", "up"]).run();
    bed.revoke(&bed.registry_key_id());

    // pull names the cause and the fix.
    bed.test(&["pull"])
        .code(1)
        .output_has("S3 refused the registry's AWS credentials")
        .output_has("devbox registry up")
        .output_lacks("Start it with")
        .run();

    // doctor names it; --fix recreates the registry; the pull works.
    bed.test(&doctor(&[]))
        .code(1)
        .output_has("S3 refused the registry's AWS credentials")
        .output_has("devbox registry up")
        .run();
    bed.test(&doctor(&["--fix", "--yes"])).any_code().run();
    bed.test(&doctor(&[])).run();
    let (pulled, out) = bed.docker_pull(&reference);
    assert!(pulled, "{out}");

    // registry up, whose decision alone would keep it, recreates it once S3 refuses it.
    let before = bed.container_id();
    bed.revoke(&bed.registry_key_id());
    bed.test(&["registry", "up"]).output_has("recreated: S3 refused its AWS credentials").run();
    assert_ne!(bed.container_id(), before);
    let (pulled, out) = bed.docker_pull(&reference);
    assert!(pulled, "{out}");
}

/// The host's login expired (the SSO token, a credential_process that fails): a clear error with
/// `aws sso login --profile devbox`, exit 1, and the running registry is left as it was.
#[test]
fn an_expired_host_login_is_named_and_leaves_the_registry_alone() {
    let mut bed = Bed::on_garage("hostlogin", "20s");
    bed.with_base_image(100_000);
    bed.test(&["registry", "up"]).run();
    let id = bed.container_id();
    let failing = script(
        &bed,
        "sso-expired.sh",
        "echo 'Error loading SSO Token: Token for devbox does not exist or has expired' >&2; exit 1",
    );
    bed.set_credential_process(failing.to_str().expect("utf-8"));

    // While the registry's own credentials are good, the renew job has nothing to do and asks nothing.
    bed.test(&["registry", "renew"]).run();

    // registry up resolves credentials first, and stops there.
    bed.test(&["registry", "up"]).code(1).output_has("aws sso login --profile devbox").run();
    assert_eq!(bed.container_id(), id, "the registry was touched");

    // Inside the refresh window, the renew job fails the same way, and leaves it too.
    bed.wait_past_expiry(Duration::ZERO);
    bed.test(&["registry", "renew"]).code(1).output_has("aws sso login --profile devbox").run();
    assert_eq!(bed.container_id(), id, "the registry was touched");
}

/// A credential_process that fails in its own way, on a bed on moto (no expiring server needed):
/// `registry up` exits 1 within 30 s, says `says`, prints none of `never` (no secret, no SSO
/// advice), and makes no container.
struct Fault {
    test: &'static str,
    body: String,
    says: &'static str,
    never: &'static [&'static str],
}

fn refused_before_any_container(fault: Fault) {
    let bed = Bed::new(fault.test);
    let process = script(&bed, "creds.sh", &fault.body);
    write_profile(&bed, process.to_str().expect("utf-8"));
    let started = Instant::now();
    let mut run = bed
        .test(&["registry", "up"])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .code(1)
        .output_has(fault.says);
    for text in fault.never {
        run = run.output_lacks(text);
    }
    run.run();
    assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
    assert_eq!(bed.container_identity(), None);
}

/// The table of faults: one test per row, so each runs, passes and fails on its own.
macro_rules! credential_process_faults {
    ($($name:ident: $fault:expr,)*) => {$(
        #[test]
        fn $name() {
            refused_before_any_container($fault);
        }
    )*};
}

credential_process_faults! {
    a_hanging_credential_process_times_out: Fault {
        test: "credhang",
        body: "exec sleep 40".into(),
        says: "gave no answer within 15s",
        never: &["aws sso login"],
    },
    a_credential_process_printing_garbage_is_named_without_its_secret: Fault {
        test: "credjunk",
        body: "echo 'AccessKeyId=AKIAFAKE SecretAccessKey=FAKE-SECRET-d3adb33f'; \
               echo '{\"Version\": 1, \"AccessKeyId\": \"AKIAFAKE\", \"SecretAccessKey\": \"FAKE-SECRET-d3adb33f\"'"
            .into(),
        says: "printed something that is not credentials",
        never: &["FAKE-SECRET", "aws sso login"],
    },
    credentials_already_expired_are_refused_before_any_container: Fault {
        test: "credpast",
        body: format!(
            "echo '{{\"Version\": 1, \"AccessKeyId\": \"AKIAPAST\", \"SecretAccessKey\": \"past-secret\", \"Expiration\": \"{}\"}}'",
            jiff::Timestamp::now() - jiff::SignedDuration::from_mins(10)
        ),
        says: "had already expired",
        never: &["past-secret"],
    },
}

/// One poll of `GET /v2/` on 127.0.0.1:`port`: whether a registry answered 200.
fn v2_answers(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) =
        std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
    else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"GET /v2/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") && &head[9..12] == b"200"
}

/// The cost of a renewal, measured: how long `/v2/` does not answer while the renew job recreates
/// the registry (polled every 10 ms), and whether a `docker pull` of a 200 MB image that is in
/// flight when it happens completes. The figures go to the README ("Short-lived credentials").
#[test]
fn a_renewal_costs_a_second_of_downtime_and_a_pull_in_flight_completes() {
    let mut bed = Bed::on_garage("renewcost", "60m");
    let reference = bed.with_base_image(200 * 1024 * 1024);
    // Keys that are due for renewal 30 s after the registry is made (40 s, a 10 s window).
    bed.set_lifetime("40s");
    bed.test(&["registry", "up"]).run();
    let first = bed.container_id();
    let made = Instant::now();
    bed.set_lifetime("60m");
    let _ = crate::testbed::docker_try(&["rmi", "-f", &reference]);
    while made.elapsed() < Duration::from_secs(31) {
        std::thread::sleep(Duration::from_millis(100));
    }

    let port = bed.port;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut polls = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                polls.push((Instant::now(), v2_answers(port)));
                std::thread::sleep(Duration::from_millis(10));
            }
            polls
        })
    };
    // The pull goes through the engine's API, whose progress lines say how far the layer is and
    // whether the engine retried it: the renewal starts once the layer is streaming.
    let (repo, tag) = reference.rsplit_once(':').expect("a tag");
    let mut pull = std::process::Command::new("curl")
        .args(["-sN", "--unix-socket", "/var/run/docker.sock", "-X", "POST"])
        .arg(format!("http://localhost/images/create?fromImage={repo}&tag={tag}"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the pull");
    let pull_started = Instant::now();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<(Instant, String)>();
    let stdout = pull.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send((Instant::now(), line));
        }
    });
    let mut progress = Vec::new();
    let streaming = |line: &str| {
        let json: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
        json["status"] == "Downloading" && json["progressDetail"]["current"].as_u64().unwrap_or(0) > 10 * 1024 * 1024
    };
    loop {
        let (at, line) = lines_rx.recv_timeout(Duration::from_secs(60)).expect("the pull reports progress");
        let now_streaming = streaming(&line);
        progress.push((at, line));
        if now_streaming {
            break;
        }
    }
    let renew_started = Instant::now();
    let renew = bed.test(&["registry", "renew"]).any_code().run();
    let renew_took = renew_started.elapsed();
    let _ = pull.wait();
    reader.join().expect("reader");
    progress.extend(lines_rx.try_iter());
    let pull_took = pull_started.elapsed();
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let polls = poller.join().expect("poller");
    let retried = progress.iter().filter(|(_, l)| l.contains("Retrying")).count();
    let downloading_after = progress.iter().filter(|(at, l)| *at > renew_started && l.contains("Downloading")).count();
    let last = progress.last().map(|(_, l)| l.clone()).unwrap_or_default();
    let pulled = last.contains("Downloaded newer image") || last.contains("Image is up to date");

    assert!(renew.status.success(), "{}", text(&renew));
    assert_ne!(bed.container_id(), first, "the renewal did not recreate the registry: {}", text(&renew));
    // The longest run of polls that got no 200.
    let (mut longest, mut down_since) = (Duration::ZERO, None);
    for (at, up) in &polls {
        match (up, down_since) {
            (false, None) => down_since = Some(*at),
            (true, Some(since)) => {
                longest = longest.max(at.duration_since(since));
                down_since = None;
            }
            _ => {}
        }
    }
    let failed = polls.iter().filter(|(_, up)| !up).count();
    println!(
        "renewal: `registry renew` took {:.2}s; /v2/ did not answer for {:.2}s ({failed} of {} polls every 10 ms failed)",
        renew_took.as_secs_f64(),
        longest.as_secs_f64(),
        polls.len()
    );
    println!(
        "pull in flight: a 200 MB layer streaming when the renewal started: {} after {:.1}s; {retried} \
         retries by the engine, {downloading_after} progress lines after the renewal started; last: {last}",
        if pulled { "completed" } else { "FAILED" },
        pull_took.as_secs_f64()
    );
    assert!(longest < Duration::from_secs(10), "the registry was down for {longest:?}");
    assert!(pulled, "the pull in flight failed: {progress:#?}");
}
