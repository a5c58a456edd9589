//! scripts/release.sh makes real releases of this build, which install.sh installs and
//! `devbox self-update` moves to, from a release feed on 127.0.0.1.
//!
//! Two real devbox binaries are needed, an older one to update from and this build to update to,
//! and there is only one build. The older one is this build, stripped as release builds are, with
//! its version bytes replaced by an older version of the same length: the same code, saying
//! another version, as an older release would. Both are packed by the script, so what install.sh
//! and self-update read is its output.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::release_feed::{ReleaseFeed, SigningKey, assert_posix_sh, fake_devbox, sha256_hex, this_target};
use crate::testbed::{output_text, write_executable};

const CURRENT: &str = env!("CARGO_PKG_VERSION");

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn script() -> PathBuf {
    manifest_dir().join("scripts/release.sh")
}

/// `dash scripts/release.sh ARGS`: POSIX sh, as it promises.
fn release_sh(args: &[&str]) -> Output {
    release_sh_in(manifest_dir(), args)
}

/// The same, run in `dir` (where its default `--out`, `dist`, would be).
fn release_sh_in(dir: &Path, args: &[&str]) -> Output {
    Command::new("dash").arg(script()).args(args).current_dir(dir).output().expect("run scripts/release.sh")
}

/// `release.sh package` of `binary` as `version` into the feed, for its default target: this
/// machine's, which must be the name install.sh and self-update look for; signed with the feed's
/// throwaway key.
fn package(feed: &ReleaseFeed, binary: &Path, version: &str) {
    let binary = binary.to_string_lossy();
    let key = feed.key.secret_file();
    let out = release_sh(&[
        "package",
        "--binary",
        &binary,
        "--version",
        version,
        "--out",
        &feed.root.path().to_string_lossy(),
        "--key",
        &key.to_string_lossy(),
    ]);
    assert!(out.status.success(), "release.sh package {version}:\n{}", output_text(&out));
    assert!(output_text(&out).contains("signed "), "{}", output_text(&out));
}

/// A version older than this build's and as long, so it can take its place in the binary.
fn older_version() -> String {
    let older = format!("0.0.{}", "9".repeat(CURRENT.len() - 4));
    let core = |v: &str| -> Vec<u64> {
        v.split(['-', '+']).next().unwrap_or(v).split('.').map(|n| n.parse().unwrap_or(0)).collect()
    };
    assert!(core(&older) < core(CURRENT), "this test needs a version older than {CURRENT} of the same length");
    older
}

/// An older release of this build: `built` stripped, as release builds are, with every `from`
/// replaced by `to`, of the same length, written to `out`. Every one: the linker packs string
/// constants end to end, so the version devbox compares may sit right after a digit or a dot
/// ("…for safety.0.1.0up to date…"), and which neighbour it gets changes from build to build
/// (a guard against such neighbours once left CI's build half patched). strip and perl do the work: a byte loop in this unoptimized test
/// build takes seconds on a 100 MB binary, and neither tool leaves this process a write handle
/// on `out` (see `write_executable`).
fn older_release(built: &Path, from: &str, to: &str, out: &Path) {
    assert_eq!(from.len(), to.len());
    let stripped = out.with_extension("stripped");
    let strip = Command::new("strip").arg("-o").arg(&stripped).arg(built).output().expect("run strip");
    assert!(strip.status.success(), "strip: {}", output_text(&strip));
    let patch = r#"my ($in, $out, $from, $to) = @ARGV;
        open(my $i, '<:raw', $in) or die "$in: $!"; local $/; my $bytes = <$i>;
        my $n = ($bytes =~ s/\Q$from\E/$to/g) || 0;
        open(my $o, '>:raw', $out) or die "$out: $!"; print $o $bytes; close($o) or die "$out: $!";
        chmod(0755, $out) or die "$out: $!"; print $n;"#;
    let patched =
        Command::new("perl").args(["-e", patch]).arg(&stripped).arg(out).args([from, to]).output().expect("run perl");
    assert!(patched.status.success(), "perl: {}", output_text(&patched));
    assert_ne!(String::from_utf8_lossy(&patched.stdout), "0", "the binary holds no {from:?}");
    if cfg!(target_os = "macos") {
        // Changed bytes break the linker's ad-hoc signature, and macOS kills unsigned arm64 code.
        let signed = Command::new("codesign").args(["--force", "-s", "-"]).arg(out).status();
        assert!(signed.expect("run codesign").success());
    }
}

fn version_of(binary: &Path) -> String {
    let out = Command::new(binary).arg("--version").output().expect("run --version");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn a_release_made_by_the_script_installs_with_install_sh_then_self_updates_to_the_next() {
    let feed = ReleaseFeed::start();
    let target = this_target();
    let work = tempfile::tempdir().expect("tempdir");
    let this_build = std::fs::read(env!("CARGO_BIN_EXE_devbox")).expect("read devbox");
    let older = older_version();
    let older_bin = work.path().join("devbox-older");
    older_release(env!("CARGO_BIN_EXE_devbox").as_ref(), CURRENT, &older, &older_bin);
    let older_build = std::fs::read(&older_bin).expect("read the older build");
    assert_eq!(version_of(&older_bin), format!("devbox {older}"));

    // The older release, in the feed's layout, verifiable with sha256sum itself.
    package(&feed, &older_bin, &older);
    let dir = feed.root.path().join(format!("v{older}"));
    let archive = format!("devbox-{older}-{target}.tar.gz");
    assert_eq!(std::fs::read_to_string(feed.root.path().join("latest")).expect("latest"), format!("{older}\n"));
    let feed_install_sh = std::fs::read(feed.root.path().join("install.sh")).expect("the feed's install.sh");
    assert!(feed_install_sh == std::fs::read(manifest_dir().join("install.sh")).expect("install.sh"));
    let listed = Command::new("tar").arg("-tzf").arg(dir.join(&archive)).output().expect("run tar");
    assert_eq!(String::from_utf8_lossy(&listed.stdout), "devbox\n", "only devbox, at the archive's root");
    let sums = std::fs::read_to_string(dir.join("SHA256SUMS")).expect("SHA256SUMS");
    let digest = sha256_hex(&std::fs::read(dir.join(&archive)).expect("archive"));
    assert_eq!(sums, format!("{digest}  {archive}\n"));
    let checked = Command::new("sha256sum").args(["-c", "SHA256SUMS"]).current_dir(&dir).output().expect("sha256sum");
    assert!(checked.status.success(), "{}", output_text(&checked));
    // The signature verifies with minisign itself, against the throwaway key's public half.
    let verified = Command::new("minisign")
        .args(["-V", "-P", &feed.key.public, "-m", "SHA256SUMS"])
        .current_dir(&dir)
        .output()
        .expect("minisign -V");
    assert!(verified.status.success(), "{}", output_text(&verified));

    // The feed's install.sh installs it, run as docs/onboarding.md says: the very bytes packed,
    // their signature checked with minisign.
    let home = tempfile::tempdir().expect("temp HOME");
    let bin_dir = home.path().join("bin");
    let installed = bin_dir.join("devbox");
    let out = install_sh(&feed, home.path(), &bin_dir);
    assert!(out.status.success(), "install.sh:\n{}", output_text(&out));
    let said = output_text(&out);
    assert!(said.contains(&format!("verified the signature of SHA256SUMS (minisign, key {})", feed.key.public)));
    assert!(said.contains(&format!("installed devbox {older} to")), "{said}");
    assert!(std::fs::read(&installed).expect("read installed") == older_build, "not the packed bytes");

    // This build, released as the next version, and self-update moves the installed one to it;
    // but first each tampered form of that release is refused, the installed binary untouched.
    package(&feed, env!("CARGO_BIN_EXE_devbox").as_ref(), CURRENT);
    assert_eq!(std::fs::read_to_string(feed.root.path().join("latest")).expect("latest"), format!("{CURRENT}\n"));
    let config = home.path().join("devbox.toml");
    let feed_config = format!(
        "[update]\nurl = \"{}/\"\ngithub = \"nobody/never-contacted\"\npublic_key = \"{}\"\n",
        feed.url, feed.key.public
    );
    std::fs::write(&config, feed_config).expect("write config");
    let self_update = || {
        Command::new(&installed)
            .arg("self-update")
            .arg("--config")
            .arg(&config)
            .env("HOME", home.path())
            .env("NO_COLOR", "1")
            .env_remove("DEVBOX_CONFIG")
            .env_remove("DEVBOX_DOWNLOAD_URL")
            .output()
            .expect("run the installed devbox")
    };
    refuses_tampered_releases(&feed, &self_update, &installed, &older_build, home.path());

    let out = self_update();
    let said = output_text(&out);
    assert!(out.status.success(), "self-update:\n{said}");
    assert!(said.contains(&format!("updating devbox {older} → {CURRENT} from {}/", feed.url)), "{said}");
    assert!(said.contains(&format!("updated to devbox {CURRENT} at {}", installed.display())), "{said}");
    assert!(std::fs::read(&installed).expect("read installed") == this_build, "not this build's bytes");
    assert_eq!(version_of(&installed), format!("devbox {CURRENT}"));
    let left: Vec<String> = std::fs::read_dir(&bin_dir)
        .expect("read_dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into())
        .collect();
    assert_eq!(left, ["devbox"], "no temp file or backup left beside the binary");
    let requested = feed.requested();
    for file in [format!("v{CURRENT}/SHA256SUMS"), format!("v{CURRENT}/devbox-{CURRENT}-{target}.tar.gz")] {
        assert!(requested.contains(&file), "self-update never asked for {file}: {requested:?}");
    }
}

/// The feed's own install.sh, piped to sh as docs/onboarding.md says, with the feed's key.
fn install_sh(feed: &ReleaseFeed, home: &Path, bin_dir: &Path) -> Output {
    Command::new("sh")
        .args(["-c", "curl -fsSL \"$DEVBOX_DOWNLOAD_URL/install.sh\" | sh -s -- --require-signature"])
        .env("HOME", home)
        .env("DEVBOX_INSTALL_DIR", bin_dir)
        .env("DEVBOX_DOWNLOAD_URL", &feed.url)
        .env("DEVBOX_PUBLIC_KEY", &feed.key.public)
        .env_remove("DEVBOX_VERSION")
        .output()
        .expect("run install.sh")
}

/// Each tampered form of the newest release in `feed` (this build's) is refused by self-update
/// (exit 1, naming what failed) and by install.sh, and `installed` stays `before`, byte for byte.
/// The release is left as it was made.
fn refuses_tampered_releases(
    feed: &ReleaseFeed,
    self_update: &dyn Fn() -> Output,
    installed: &Path,
    before: &[u8],
    home: &Path,
) {
    let dir = feed.root.path().join(format!("v{CURRENT}"));
    let (sums, sig) = (dir.join("SHA256SUMS"), dir.join("SHA256SUMS.minisig"));
    let archive = dir.join(format!("devbox-{CURRENT}-{}.tar.gz", this_target()));
    let originals: Vec<(PathBuf, Vec<u8>)> =
        [&sums, &sig, &archive].iter().map(|p| (p.to_path_buf(), std::fs::read(p).expect("read"))).collect();
    let restore = || {
        for (path, bytes) in &originals {
            std::fs::write(path, bytes).expect("restore");
        }
    };
    let other_key = SigningKey::new();
    let swapped = tempfile::tempdir().expect("tempdir");
    write_executable(&swapped.path().join("devbox"), &fake_devbox(CURRENT));
    type Tamper<'a> = (&'a str, Box<dyn Fn() + 'a>, &'a str, &'a str);
    let tampers: Vec<Tamper> = vec![
        (
            "an archive swapped, with SHA256SUMS recomputed",
            Box::new(|| {
                let tar = Command::new("tar")
                    .arg("-czf")
                    .arg(&archive)
                    .arg("-C")
                    .arg(swapped.path())
                    .arg("devbox")
                    .status()
                    .expect("tar");
                assert!(tar.success());
                let name = archive.file_name().expect("name").to_string_lossy().into_owned();
                let digest = sha256_hex(&std::fs::read(&archive).expect("read"));
                std::fs::write(&sums, format!("{digest}  {name}\n")).expect("write sums");
            }),
            "does not match the file's bytes",
            "does not verify with key",
        ),
        (
            "a valid signature from another key",
            Box::new(|| other_key.sign(&sums)),
            "was made with another key",
            "does not verify with key",
        ),
        (
            "a truncated signature",
            Box::new(|| {
                let bytes = std::fs::read(&sig).expect("read");
                std::fs::write(&sig, &bytes[..bytes.len() / 2]).expect("write");
            }),
            "is not a minisign signature",
            "does not verify with key",
        ),
        (
            "no signature",
            Box::new(|| std::fs::remove_file(&sig).expect("rm")),
            "the release has no readable signature",
            "the release has no signature",
        ),
    ];
    for (what, tamper, self_update_says, install_says) in tampers {
        tamper();
        let out = self_update();
        let said = output_text(&out);
        assert_eq!(out.status.code(), Some(1), "{what}: self-update must fail:\n{said}");
        assert!(said.contains(self_update_says), "{what}: self-update should say {self_update_says:?}:\n{said}");
        assert!(said.contains("Nothing was replaced"), "{what}:\n{said}");
        assert!(std::fs::read(installed).expect("read") == before, "{what}: the installed binary changed");

        let elsewhere = home.join("install-elsewhere");
        let out = install_sh(feed, home, &elsewhere);
        let said = output_text(&out);
        assert_eq!(out.status.code(), Some(1), "{what}: install.sh must fail:\n{said}");
        assert!(said.contains(install_says), "{what}: install.sh should say {install_says:?}:\n{said}");
        assert!(!elsewhere.join("devbox").exists(), "{what}: install.sh installed something");
        restore();
    }
}

/// A feed over plain http to a name other than 127.0.0.1, localhost or [::1] is refused before
/// anything connects, by self-update and install.sh alike. The name is this machine's own (it
/// resolves to loopback here), so a connection, had one been made, would have reached the feed.
#[test]
fn a_plain_http_feed_to_a_name_is_refused_before_connecting() {
    let feed = ReleaseFeed::start();
    feed.publish("0.2.0", &fake_devbox("0.2.0"), crate::release_feed::Sums::Good);
    feed.set_latest("0.2.0");
    let name = gethostname_or("devbox-feed.invalid");
    let url = format!("http://{name}:{}/", feed.url.rsplit(':').next().expect("port"));
    let home = tempfile::tempdir().expect("temp HOME");
    let copy = home.path().join("devbox");
    crate::testbed::copy_executable(env!("CARGO_BIN_EXE_devbox").as_ref(), &copy);

    let config = home.path().join("devbox.toml");
    std::fs::write(&config, format!("[update]\nurl = \"{url}\"\n")).expect("write config");
    let out = Command::new(&copy).args(["self-update", "--config"]).arg(&config).env("HOME", home.path()).output();
    let out = out.expect("run devbox");
    let said = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(said.contains("update.url") && said.contains("plain http:// is allowed only to this machine"), "{said}");

    std::fs::write(&config, "").expect("write config");
    let out = Command::new(&copy)
        .args(["self-update", "--config"])
        .arg(&config)
        .env("HOME", home.path())
        .env("DEVBOX_DOWNLOAD_URL", &url)
        .output()
        .expect("run devbox");
    let said = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(said.contains(&format!("DEVBOX_DOWNLOAD_URL {url}")) && said.contains("use https://"), "{said}");

    let out = Command::new("dash")
        .arg(manifest_dir().join("install.sh"))
        .env("HOME", home.path())
        .env("DEVBOX_INSTALL_DIR", home.path().join("bin"))
        .env("DEVBOX_DOWNLOAD_URL", &url)
        .output()
        .expect("run install.sh");
    let said = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(said.contains("plain http:// is allowed only to this machine"), "{said}");
    assert!(!home.path().join("bin").exists());
    assert!(feed.requested().is_empty(), "nothing may connect: {:?}", feed.requested());
    assert!(std::fs::read(&copy).expect("read") == std::fs::read(env!("CARGO_BIN_EXE_devbox")).expect("read"));
}

/// A redirect from a loopback feed to plain http elsewhere is refused (the same rule as an HTTPS
/// answer sending us to plain HTTP, which reqwest's policy in http.rs refuses the same way).
#[test]
fn a_redirect_to_plain_http_elsewhere_is_refused() {
    let name = gethostname_or("devbox-feed.invalid");
    let target = ReleaseFeed::start();
    target.set_latest("0.2.0");
    let port = target.url.rsplit(':').next().expect("port").to_string();
    let redirector = crate::testbed::HttpServer::start(move |path| {
        format!("HTTP/1.1 302 Found\r\nLocation: http://{name}:{port}/{path}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .into_bytes()
    });
    let home = tempfile::tempdir().expect("temp HOME");
    let config = home.path().join("devbox.toml");
    std::fs::write(&config, format!("[update]\nurl = \"{}/\"\n", redirector.url)).expect("write config");
    let out = Command::new(env!("CARGO_BIN_EXE_devbox"))
        .args(["self-update", "--check", "--config"])
        .arg(&config)
        .env("HOME", home.path())
        .output()
        .expect("run devbox");
    let said = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("redirected to http://") && said.contains("plain http:// is allowed only"), "{said}");
    assert_eq!(redirector.requested(), ["latest"]);
    assert!(target.requested().is_empty(), "the redirect was followed: {:?}", target.requested());
}

/// This machine's name when it resolves to loopback (so a connection would reach the test's
/// server), else `fallback`, a name that resolves nowhere: either way not a literal loopback host.
fn gethostname_or(fallback: &str) -> String {
    let out = Command::new("hostname").output().expect("run hostname");
    let name = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let resolves = Command::new("getent").args(["hosts", &name]).output().expect("run getent");
    let address = String::from_utf8_lossy(&resolves.stdout);
    if !name.is_empty() && name != "localhost" && address.starts_with("127.") { name } else { fallback.to_string() }
}

#[test]
fn release_sh_lists_every_target_in_sums_and_never_moves_latest_back() {
    let out_dir = tempfile::tempdir().expect("tempdir");
    let out = out_dir.path().to_string_lossy().into_owned();
    let binary = out_dir.path().join("built-elsewhere");
    // Targets other than this machine's: the script cannot run them, so it packs them as given.
    write_executable(&binary, &fake_devbox("any"));
    let bin = binary.to_string_lossy().into_owned();
    let run = |version: &str, target: &str| {
        let ran = release_sh(&["package", "--binary", &bin, "--version", version, "--target", target, "--out", &out]);
        assert!(ran.status.success(), "{}", output_text(&ran));
        output_text(&ran)
    };
    let latest = || std::fs::read_to_string(out_dir.path().join("latest")).expect("latest");

    let said = run("0.3.0", "riscv64gc-unknown-linux-gnu");
    assert!(said.contains("to check its version: it is for riscv64gc-unknown-linux-gnu"), "{said}");
    run("0.3.0", "aarch64-apple-darwin");
    let sums = std::fs::read_to_string(out_dir.path().join("v0.3.0/SHA256SUMS")).expect("sums");
    let names: Vec<&str> = sums.lines().filter_map(|l| l.split_once("  ").map(|(_, name)| name)).collect();
    assert_eq!(names, ["devbox-0.3.0-aarch64-apple-darwin.tar.gz", "devbox-0.3.0-riscv64gc-unknown-linux-gnu.tar.gz"]);
    assert_eq!(latest(), "0.3.0\n");

    assert!(run("0.2.9", "aarch64-apple-darwin").contains("left"), "an older release is not the newest");
    assert!(run("0.10.0-rc.1", "aarch64-apple-darwin").contains("is a pre-release"));
    assert_eq!(latest(), "0.3.0\n");
    run("0.10.0", "aarch64-apple-darwin");
    assert_eq!(latest(), "0.10.0\n", "versions compare as numbers, not text");

    // `sums` rewrites the list from the archives there, as CI does after merging its builds.
    std::fs::write(out_dir.path().join("v0.3.0/SHA256SUMS"), "stale\n").expect("write");
    let ran = release_sh(&["sums", "--version", "0.3.0", "--out", &out]);
    assert!(ran.status.success(), "{}", output_text(&ran));
    assert_eq!(std::fs::read_to_string(out_dir.path().join("v0.3.0/SHA256SUMS")).expect("sums"), sums);
}

#[test]
fn release_sh_refuses_bad_input_and_writes_nothing() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let says_099 = scratch.path().join("says-0.9.9");
    write_executable(&says_099, &fake_devbox("0.9.9"));
    let fake = says_099.to_string_lossy().into_owned();
    let target = this_target();
    // (arguments, exit code, what stderr says); each runs in an empty directory, where its
    // default `--out` (dist) would be.
    let cases: &[(&[&str], i32, &str)] = &[
        (&[], 2, "say what to do: package or sums"),
        (&["publish"], 2, "unknown command \"publish\""),
        (&["package", "--bogus"], 2, "unknown option \"--bogus\""),
        (&["package", "--binary", &fake, "--version"], 2, "--version needs a value"),
        (&["package", "--binary", &fake, "--version", "../1.0.0"], 2, "\"../1.0.0\" is not a version such as 0.2.0"),
        (&["package", "--binary", &fake, "--version", "1.2"], 2, "\"1.2\" is not a version such as 0.2.0"),
        (&["package", "--binary", &fake, "--target", "x86_64;rm"], 2, "is not a target such as"),
        (&["package", "--binary", "/nonexistent/devbox"], 2, "--binary /nonexistent/devbox: no such file"),
        (&["sums", "--binary", &fake], 2, "--binary is for package only"),
        (
            &["package", "--binary", &fake, "--version", "0.2.0", "--target", &target],
            1,
            "says \"devbox 0.9.9\", not \"devbox 0.2.0\"; package it as the version it says (--version 0.9.9)",
        ),
        (&["sums", "--version", "0.2.0"], 1, "v0.2.0 does not exist; run package first"),
    ];
    for (args, code, says) in cases {
        let empty = tempfile::tempdir().expect("tempdir");
        let ran = release_sh_in(empty.path(), args);
        let stderr = String::from_utf8_lossy(&ran.stderr);
        assert_eq!(ran.status.code(), Some(*code), "release.sh {args:?}: {}", output_text(&ran));
        assert!(stderr.contains(says), "release.sh {args:?} should say {says:?}, said:\n{stderr}");
        let written = std::fs::read_dir(empty.path()).expect("read_dir").count();
        assert_eq!(written, 0, "release.sh {args:?} wrote something");
    }
}

#[test]
fn release_sh_is_shellcheck_clean_as_posix_sh() {
    assert_posix_sh(&script());
    let help = release_sh(&["--help"]);
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("usage: scripts/release.sh package"));
}

/// install.sh and devbox trust the same project key: install.sh's `project_key` is the key line of
/// keys/release.pub, the file devbox embeds (its unit tests parse it).
#[test]
fn install_sh_carries_the_key_devbox_embeds() {
    let public = std::fs::read_to_string(manifest_dir().join("keys/release.pub")).expect("keys/release.pub");
    let key = public.lines().nth(1).expect("the key line of keys/release.pub");
    let install = std::fs::read_to_string(manifest_dir().join("install.sh")).expect("install.sh");
    assert!(install.lines().any(|l| l == format!("project_key=\"{key}\"")), "install.sh's project_key is not {key}");
}
