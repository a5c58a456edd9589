//! The registry's own credentials narrowed to reading its bucket (issue 27), and never the
//! long-lived key to a stranger (issue 25; its decision is unit-tested in src/aws/sts.rs): what
//! devbox asks STS for, as moto records it, and that the registry works with what it gets.

use crate::testbed::{Bed, S3Server, output_text as text};

/// The form parameters of every STS `action` request that `moto` (made `recording()`) recorded
/// so far: what devbox sent to STS, policy and all.
fn sts_calls(moto: &S3Server, action: &str) -> Vec<Vec<(String, String)>> {
    moto.recorded()
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|entry| {
            let body = entry["body"].as_str()?.to_string();
            let body = if entry["body_encoded"] == true { decode_base64(&body)? } else { body };
            let params = form_params(&body);
            params.iter().any(|(k, v)| k == "Action" && v == action).then_some(params)
        })
        .collect()
}

fn decode_base64(text: &str) -> Option<String> {
    let out = std::process::Command::new("base64")
        .arg("-d")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().expect("stdin").write_all(text.as_bytes())?;
            child.wait_with_output()
        })
        .ok()?;
    String::from_utf8(out.stdout).ok()
}

/// `a=1&b=%7B…` → [("a", "1"), ("b", "{…")].
fn form_params(body: &str) -> Vec<(String, String)> {
    let decode = |s: &str| {
        let bytes = s.replace('+', " ").into_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            if let (b'%', Some(Ok(b))) = (bytes[i], hex.map(|h| u8::from_str_radix(h, 16))) {
                out.push(b);
                i += 3;
                continue;
            }
            out.push(bytes[i]);
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    body.split('&').filter_map(|pair| pair.split_once('=')).map(|(k, v)| (decode(k), decode(v))).collect()
}

fn param<'a>(call: &'a [(String, String)], name: &str) -> Option<&'a str> {
    call.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// The policy devbox asks STS to narrow the registry's session with, for `bucket` under `/registry`.
fn read_only_policy(bucket: &str) -> serde_json::Value {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            { "Sid": "ReadTheRegistry", "Effect": "Allow", "Action": "s3:GetObject", "Resource": format!("arn:aws:s3:::{bucket}/registry/*") },
            { "Sid": "ListTheRegistry", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": format!("arn:aws:s3:::{bucket}"),
              "Condition": { "StringLike": { "s3:prefix": ["registry", "registry/*"] } } },
        ]
    })
}

/// From a long-lived key, the registry's session comes from GetFederationToken with the read-only
/// policy; with `registry.s3.role_arn`, from AssumeRole on that role with the same policy. The
/// requests moto recorded show the policy sent, and a pull through the registry works with those
/// credentials. doctor says what the registry holds.
#[test]
fn the_registry_session_is_narrowed_to_reading_its_bucket() {
    let mut bed = Bed::on_s3("stsnarrow", S3Server::moto().recording().start());
    let ci = bed.ci_registry();
    bed.push_image(ci, "base/tool:1", 50_000);
    bed.write_config("[images]\nbase = [\"base/tool:1\"]\n");
    let key = |cmd: &mut assert_cmd::Command| {
        cmd.env("AWS_ACCESS_KEY_ID", "AKIADEVBOXNARROW0001").env("AWS_SECRET_ACCESS_KEY", "narrow-secret-0001");
    };
    let reference = format!("127.0.0.1:{}/base/tool:1", bed.port);
    bed.remove_image_later(&reference);
    let run = |args: &[&str]| {
        let mut cmd = bed.devbox(args);
        key(&mut cmd);
        cmd.output().expect("run devbox")
    };

    let up = run(&["registry", "up"]);
    assert!(up.status.success(), "{}", text(&up));
    let calls = sts_calls(bed.s3(), "GetFederationToken");
    assert_eq!(calls.len(), 1, "one GetFederationToken: {calls:?}");
    println!("GetFederationToken as moto recorded it: {:?}", calls[0]);
    let policy: serde_json::Value = serde_json::from_str(param(&calls[0], "Policy").expect("a Policy")).expect("JSON");
    assert_eq!(policy, read_only_policy(&bed.bucket));
    assert_eq!(param(&calls[0], "Name"), Some("devbox-registry"));
    assert!(sts_calls(bed.s3(), "GetSessionToken").is_empty(), "an unnarrowed session was asked for");
    let (pulled, said) = crate::testbed::docker_try(&["pull", &reference]);
    assert!(pulled, "the registry could not read with its narrowed session: {said}");
    let doctor = run(&["doctor", "--json", "--check", "aws-credentials"]);
    let json: serde_json::Value = serde_json::from_slice(&doctor.stdout).expect("JSON");
    let finding = json["checks"].as_array().and_then(|c| c.iter().find(|c| c["id"] == "aws-credentials")).expect("it");
    assert_eq!(
        finding["details"]["registry_credentials"],
        "a read-only session (sts:GetFederationToken), where the endpoint has STS"
    );

    // Through a role: AssumeRole on it, with the same policy, from a session the host holds (as
    // SSO gives one); without the role, doctor says the registry would get the whole session.
    let role = "arn:aws:iam::123456789012:role/devbox-registry-read";
    let session = |cmd: &mut assert_cmd::Command| {
        key(cmd);
        cmd.env("AWS_SESSION_TOKEN", "a-session-the-user-holds");
    };
    let mut doctor = bed.devbox(&["doctor", "--json", "--check", "aws-credentials"]);
    session(&mut doctor);
    let json: serde_json::Value = serde_json::from_slice(&doctor.output().expect("run").stdout).expect("JSON");
    let finding = json["checks"].as_array().and_then(|c| c.iter().find(|c| c["id"] == "aws-credentials")).expect("it");
    assert_eq!(finding["details"]["registry_credentials"], "your full session", "{finding}");
    assert!(finding["summary"].as_str().unwrap_or_default().contains("set registry.s3.role_arn"), "{finding}");

    bed.write_config(&format!("role_arn = \"{role}\"\n[images]\nbase = [\"base/tool:1\"]\n"));
    crate::testbed::docker(&["rm", "-f", "-v", &bed.name]);
    let mut up = bed.devbox(&["registry", "up"]);
    session(&mut up);
    let up = up.output().expect("run");
    assert!(up.status.success(), "{}", text(&up));
    let calls = sts_calls(bed.s3(), "AssumeRole");
    assert_eq!(calls.len(), 1, "one AssumeRole: {calls:?}");
    assert_eq!(param(&calls[0], "RoleArn"), Some(role));
    let policy: serde_json::Value = serde_json::from_str(param(&calls[0], "Policy").expect("a Policy")).expect("JSON");
    assert_eq!(policy, read_only_policy(&bed.bucket));
    let _ = crate::testbed::docker_try(&["rmi", &reference]);
    let (pulled, said) = crate::testbed::docker_try(&["pull", &reference]);
    assert!(pulled, "the registry could not read with its assumed role's session: {said}");
}
