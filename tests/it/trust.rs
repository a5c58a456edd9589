//! Team configs trusted explicitly, against the real binary: pinned by their SHA-256, signed with a
//! throwaway minisign key recorded at the first `init --from … --key`, or, unpinned and unsigned,
//! refused when they change a trust-relevant key under `--yes`. Each refusal exits 2, names what
//! failed, and writes nothing. And plain http where only https is allowed, refused before any
//! connection.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::release_feed::SigningKey;
use crate::testbed::{Bed, HttpServer, Test};

/// Only the config step: the others are not what these tests are about.
const CONFIG_ONLY: [&str; 10] =
    ["--skip", "registry", "--skip", "pull", "--skip", "clock", "--skip", "schedules", "--skip", "doctor"];

/// `devbox init --yes --from FROM EXTRA…`, config steps only.
fn init(bed: &Bed, from: &str, extra: &[&str]) -> Test {
    let mut args = vec!["init", "--yes", "--from", from];
    args.extend_from_slice(extra);
    args.extend(CONFIG_ONLY);
    bed.test(&args).env("DEVBOX_SCHEDULER", "none")
}

/// Every file under HOME with its bytes: what "nothing written" is checked against.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut found = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.insert(path.clone(), std::fs::read(&path).expect("read"));
            }
        }
    }
    found
}

/// The bed's own config, as a team would publish it, with `tag` in a comment.
fn team_text(bed: &Bed, tag: &str) -> String {
    let mine = std::fs::read_to_string(bed.config_path()).expect("bed config");
    format!("# the {tag} team's devbox.toml\n{mine}[images]\nconcurrency = 2\n")
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[test]
fn a_pinned_team_config_is_taken_and_one_changed_by_a_byte_is_refused() {
    let bed = Bed::new("trustpin");
    let dir = tempfile::tempdir().expect("tempdir");
    let team = dir.path().join("team.toml");
    let text = team_text(&bed, "pinned");
    std::fs::write(&team, &text).expect("write");
    let pin = sha256(text.as_bytes());
    let from = format!("{}#sha256={pin}", team.display());

    // One byte changed: refused, exit 2, nothing written.
    let before = files(bed.home.path());
    let changed = text.replacen("concurrency = 2", "concurrency = 3", 1);
    std::fs::write(&team, &changed).expect("write");
    init(&bed, &from, &[])
        .code(2)
        .output_has(format!("is not the pinned one: its SHA-256 is {}, the pin says {pin}", sha256(changed.as_bytes())))
        .output_has("Nothing was written")
        .run();
    assert_eq!(files(bed.home.path()), before, "a refused pin wrote something");

    // The pinned bytes: taken, and the pin recorded.
    std::fs::write(&team, &text).expect("write");
    init(&bed, &from, &[]).output_has(format!("pinned sha256={pin}")).run();
    let installed = std::fs::read_to_string(bed.config_path()).expect("installed");
    assert!(installed.contains(&format!("# devbox: trusted: pinned sha256={pin}\n")), "{installed}");
    bed.test(&["config", "show"]).stdout_has(format!("# trusted: pinned sha256={pin}")).run();

    // A malformed pin is bad input.
    init(&bed, &format!("{}#sha256=abc", team.display()), &[]).code(2).output_has("64 hex digits").run();
}

#[test]
fn a_signed_team_config_records_its_key_and_later_ones_must_be_signed_by_it() {
    let bed = Bed::new("trustsig");
    let dir = tempfile::tempdir().expect("tempdir");
    let team = dir.path().join("team.toml");
    let key = SigningKey::new();
    let text = team_text(&bed, "signed");
    std::fs::write(&team, &text).expect("write");
    key.sign(&team);
    let server = HttpServer::files(dir.path());
    let url = format!("{}/team.toml", server.url);

    // First init: --key, over loopback HTTP; the signature beside it is checked and the key recorded.
    init(&bed, &url, &["--key", &key.public]).output_has(format!("signed by key {}", key.public)).run();
    assert!(server.requested().contains(&"team.toml.minisig".to_string()), "{:?}", server.requested());
    let installed = std::fs::read_to_string(bed.config_path()).expect("installed");
    assert!(installed.contains(&format!("# devbox: team key {}\n", key.public)), "{installed}");
    bed.test(&["config", "show", "--json"])
        .stdout_has(format!("\"team_trust\": \"signed by key {}\"", key.public))
        .stdout_has(format!("\"team_keys\": [\n    \"{}\"", key.public))
        .run();

    // A config whose signature is for other bytes: refused, nothing written, even unchanged keys.
    let before = files(bed.home.path());
    std::fs::write(&team, text.replacen("concurrency = 2", "concurrency = 4", 1)).expect("write");
    init(&bed, &url, &[])
        .code(2)
        .output_has("is not signed by a trusted key: the signature does not match the file's bytes")
        .output_has("Nothing was written")
        .run();
    assert_eq!(files(bed.home.path()), before);

    // Signed by another key: refused too.
    key_other_signs(&team);
    init(&bed, &url, &[]).code(2).output_has("the signature was made with another key").run();
    assert_eq!(files(bed.home.path()), before);

    // No signature at all, once a key is recorded: refused, even with --trust-unsigned.
    std::fs::remove_file(dir.path().join("team.toml.minisig")).expect("rm");
    init(&bed, &url, &["--trust-unsigned"])
        .code(2)
        .output_has("once a key is recorded, every team config must be signed")
        .run();
    assert_eq!(files(bed.home.path()), before);

    // Signed again by the recorded key: taken without --key.
    key.sign(&team);
    init(&bed, &url, &[]).output_has(format!("signed by key {}", key.public)).run();
    assert!(std::fs::read_to_string(bed.config_path()).expect("installed").contains("concurrency = 4"));
}

fn key_other_signs(file: &Path) {
    SigningKey::new().sign(file);
}

#[test]
fn an_unsigned_config_changing_the_registry_image_needs_trust_unsigned_and_the_diff_marks_it() {
    let bed = Bed::new("trustimg");
    let dir = tempfile::tempdir().expect("tempdir");
    let team = dir.path().join("team.toml");
    let mine = std::fs::read_to_string(bed.config_path()).expect("bed config");
    let (image_line, _) = mine.split_once('\n').and_then(|(_, rest)| rest.split_once('\n')).expect("two lines");
    assert!(image_line.starts_with("image = "), "{image_line}");
    let text = mine.replacen(image_line, "image = \"someone/registry:3\"", 1);
    std::fs::write(&team, &text).expect("write");
    let from = team.to_string_lossy().into_owned();

    // Unpinned, unsigned, changing registry.image, under --yes: exit 2, named, nothing written.
    let before = files(bed.home.path());
    init(&bed, &from, &[])
        .code(2)
        .output_has("is neither pinned nor signed, and it changes registry.image")
        .output_has("--trust-unsigned")
        .run();
    assert_eq!(files(bed.home.path()), before);

    // A config that changes no trust-relevant key is taken as before.
    std::fs::write(&team, team_text(&bed, "harmless")).expect("write");
    init(&bed, &from, &[]).output_has("unsigned (it changed no trust-relevant key)").run();
    bed.test(&["config", "show"]).stdout_has("# trusted: unsigned (it changed no trust-relevant key)").run();

    // With --trust-unsigned: applied, the changed key marked in the diff, and recorded as such.
    std::fs::write(&team, &text).expect("write");
    init(&bed, &from, &["--trust-unsigned"])
        .output_has("+image = \"someone/registry:3\"    <- trust-relevant")
        .output_has("trusted unsigned")
        .run();
    bed.test(&["config", "show"])
        .stdout_has("# trusted: trusted unsigned (its trust-relevant changes were accepted)")
        .run();
}

#[test]
fn plain_http_is_refused_before_any_connection_where_https_is_required() {
    let bed = Bed::new("trusthttp");
    let server = HttpServer::files(Path::new("/nonexistent"));
    let port = server.port;
    let before = files(bed.home.path());

    // init --from http:// to a name that is not a literal loopback host.
    init(&bed, &format!("http://localhost.localdomain:{port}/devbox.toml"), &[])
        .code(2)
        .output_has("plain http:// is allowed only to this machine")
        .run();
    // registry.s3.endpoint over plain http to another host: the config is refused.
    let config = bed.home.path().join("plain-endpoint.toml");
    std::fs::write(&config, format!("[registry.s3]\nendpoint = \"http://localhost.localdomain:{port}\"\n"))
        .expect("write");
    bed.test(&["--config", &config.to_string_lossy(), "config", "show"])
        .code(2)
        .output_has("registry.s3.endpoint")
        .output_has("plain http:// is allowed only to this machine")
        .run();
    std::fs::remove_file(&config).expect("rm");
    assert!(server.requested().is_empty(), "something connected: {:?}", server.requested());
    assert_eq!(files(bed.home.path()), before);
}

/// doctor's `registry-container` finding, from `--json`.
fn registry_finding(bed: &Bed) -> serde_json::Value {
    let json = bed.test(&["doctor", "--json", "--check", "registry-container"]).any_code().json();
    let checks = json["checks"].as_array().expect("checks");
    checks.iter().find(|c| c["id"] == "registry-container").cloned().unwrap_or_else(|| panic!("{json}"))
}

/// The bed's registry runs its image pinned by digest: doctor passes and shows the digest. A pin
/// the running image does not carry fails, with the fix; a tag without a digest warns.
#[test]
fn doctor_fails_a_registry_image_whose_digest_differs_from_its_pin_and_warns_on_a_bare_tag() {
    let bed = Bed::new("trustdigest");
    let pinned = crate::testbed::registry_image_pinned();
    let digest = pinned.split_once('@').expect("pinned by digest").1;
    bed.test(&["registry", "up"]).run();
    let finding = registry_finding(&bed);
    assert_eq!(finding["status"], "ok", "{finding}");
    assert_eq!(finding["details"]["image_digest"], digest, "{finding}");

    // The same name, another digest in the pin: what runs is not what is pinned.
    let other = format!("sha256:{}", "0".repeat(64));
    let (name, _) = pinned.split_once('@').expect("pinned");
    let config = std::fs::read_to_string(bed.config_path()).expect("config").replacen(digest, &other, 1);
    bed.write_raw_config(&config);
    let before = bed.container_identity();
    let finding = registry_finding(&bed);
    assert_eq!(finding["status"], "fail", "{finding}");
    let hint = finding["hint"].as_str().unwrap_or_default();
    assert!(hint.contains(&format!("are not the pin {other} in registry.image")), "{finding}");
    assert!(finding["fix"].as_str().unwrap_or_default().contains("devbox registry up"), "{finding}");
    assert_eq!(bed.container_identity(), before, "doctor changed the container");

    // A tag without a digest (the registry made from it): a warning that says how to pin it.
    bed.write_config_with_image(name, "");
    bed.test(&["registry", "up"]).run();
    let finding = registry_finding(&bed);
    assert_eq!(finding["status"], "warn", "{finding}");
    assert!(finding["hint"].as_str().unwrap_or_default().contains("is a tag without a digest"), "{finding}");
}

/// On a terminal, an unpinned, unsigned config that changes the registry image is asked about:
/// "no" refuses it (exit 2, nothing written), "yes" applies it and records that it was accepted.
#[test]
fn on_a_terminal_a_trust_relevant_change_is_applied_only_after_a_yes() {
    use crate::testbed::tty::{Pty, screen};
    let bed = Bed::new("trusttty");
    let dir = tempfile::tempdir().expect("tempdir");
    let team = dir.path().join("team.toml");
    let mine = std::fs::read_to_string(bed.config_path()).expect("bed config");
    let pinned = crate::testbed::registry_image_pinned();
    let other = pinned.split_once('@').map_or(pinned, |(name, _)| name);
    std::fs::write(&team, mine.replacen(pinned, other, 1)).expect("write");
    let from = team.to_string_lossy().into_owned();
    let mut args = vec!["init", "--from", from.as_str()];
    args.extend(CONFIG_ONLY);
    let question = "is neither pinned nor signed, and it changes registry.image";

    let before = files(bed.home.path());
    let mut pty = Pty::spawn(&bed, &args);
    pty.answer(question, "n");
    let (code, raw) = pty.finish();
    assert_eq!(code, Some(2), "{}", screen(&raw));
    assert_eq!(files(bed.home.path()), before, "a refused config was written");

    let mut pty = Pty::spawn(&bed, &args);
    pty.answer(question, "y");
    let (code, raw) = pty.finish();
    let seen = screen(&raw);
    assert_eq!(code, Some(0), "{seen}");
    assert!(seen.contains("<- trust-relevant"), "{seen}");
    let installed = std::fs::read_to_string(bed.config_path()).expect("installed");
    assert!(installed.contains(&format!("image = \"{other}\"")), "{installed}");
    assert!(installed.contains("# devbox: trusted: trusted unsigned (its trust-relevant changes were accepted)"));
}
