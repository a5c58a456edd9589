//! install.sh against a release feed on 127.0.0.1: verified installs, refused ones, pinning, dash,
//! and shellcheck.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::release_feed::{ReleaseFeed, Sums, assert_posix_sh, fake_devbox, this_target};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("install.sh")
}

struct Run {
    home: tempfile::TempDir,
}

impl Run {
    fn new() -> Run {
        Run { home: tempfile::tempdir().expect("temp HOME") }
    }

    fn install_dir(&self) -> PathBuf {
        self.home.path().join("bin")
    }

    /// `<shell> install.sh` with a temp HOME and install dir, reading `feed`.
    fn install(&self, shell: &str, feed: &ReleaseFeed, extra_env: &[(&str, &str)]) -> Output {
        self.install_with(shell, feed, extra_env, &[])
    }

    /// The same, with `args` for install.sh.
    fn install_with(&self, shell: &str, feed: &ReleaseFeed, extra_env: &[(&str, &str)], args: &[&str]) -> Output {
        let mut cmd = Command::new(shell);
        cmd.arg(script())
            .args(args)
            .env("HOME", self.home.path())
            .env("DEVBOX_INSTALL_DIR", self.install_dir())
            .env("DEVBOX_DOWNLOAD_URL", format!("{}/", feed.url))
            .env("DEVBOX_PUBLIC_KEY", &feed.key.public)
            .env_remove("DEVBOX_VERSION");
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        cmd.output().expect("run install.sh")
    }

    /// What the install dir holds (nothing left behind, not even a temp file, when it refuses).
    fn installed_files(&self) -> Vec<String> {
        match std::fs::read_dir(self.install_dir()) {
            Ok(entries) => entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect(),
            Err(_) => Vec::new(),
        }
    }
}

fn text(out: &Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn install_sh_under_dash_installs_a_verified_release_that_runs() {
    let feed = ReleaseFeed::start();
    feed.publish("0.2.0", &fake_devbox("0.2.0"), Sums::Good);
    feed.set_latest("0.2.0");
    let run = Run::new();

    let out = run.install("dash", &feed, &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "install.sh failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("verified devbox-0.2.0-"), "{stdout}");
    assert!(stdout.contains(&format!("verified the signature of SHA256SUMS (minisign, key {})", feed.key.public)));
    assert!(stdout.contains("installed devbox 0.2.0 to"), "{stdout}");
    assert!(stdout.contains("is not on your PATH; add it, e.g.: export PATH="), "{stdout}");
    assert!(stdout.contains("next: devbox init"), "{stdout}");
    assert_eq!(run.installed_files(), vec!["devbox".to_string()]);
    let installed = run.install_dir().join("devbox");
    let ran = Command::new(&installed).arg("--version").output().expect("run the installed binary");
    assert_eq!(String::from_utf8_lossy(&ran.stdout).trim(), "devbox 0.2.0");
    let archive = format!("v0.2.0/devbox-0.2.0-{}.tar.gz", this_target());
    assert_eq!(feed.requested(), ["latest", archive.as_str(), "v0.2.0/SHA256SUMS", "v0.2.0/SHA256SUMS.minisig"]);

    // Run again with the install dir on PATH: no PATH hint, the same binary.
    // The test's own PATH, extended for the child: tests have no `Environment` to ask.
    #[allow(clippy::disallowed_methods)]
    let path = format!("{}:{}", run.install_dir().display(), std::env::var("PATH").unwrap_or_default());
    let again = run.install("sh", &feed, &[("PATH", &path)]);
    let (stdout, stderr) = text(&again);
    assert!(again.status.success(), "{stdout}\n{stderr}");
    assert!(!stdout.contains("not on your PATH"), "{stdout}");
    assert_eq!(std::fs::read(&installed).expect("read"), fake_devbox("0.2.0"));
}

#[test]
fn install_sh_refuses_a_bad_checksum_and_leaves_no_binary() {
    let feed = ReleaseFeed::start();
    feed.publish("0.2.0", &fake_devbox("0.2.0"), Sums::Bad);
    feed.set_latest("0.2.0");
    let run = Run::new();

    let out = run.install("dash", &feed, &[]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("checksum mismatch for devbox-0.2.0-"), "{stderr}");
    assert!(stderr.contains("refusing to install it, and nothing was installed"), "{stderr}");
    assert_eq!(run.installed_files(), Vec::<String>::new());

    // A devbox already there stays as it was.
    std::fs::create_dir_all(run.install_dir()).expect("mkdir");
    std::fs::write(run.install_dir().join("devbox"), fake_devbox("0.1.0")).expect("write");
    let out = run.install("dash", &feed, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(std::fs::read(run.install_dir().join("devbox")).expect("read"), fake_devbox("0.1.0"));
    assert_eq!(run.installed_files(), vec!["devbox".to_string()]);
}

#[test]
fn install_sh_refuses_when_sums_are_missing_or_silent() {
    let feed = ReleaseFeed::start();
    feed.publish("0.2.0", &fake_devbox("0.2.0"), Sums::Good);
    feed.set_latest("0.2.0");
    let sums = feed.root.path().join("v0.2.0/SHA256SUMS");
    let run = Run::new();

    // The sums file lists other archives only (signed, so the signature is not what refuses it).
    std::fs::write(&sums, "0000  devbox-0.2.0-other.tar.gz\n").expect("write");
    feed.key.sign(&sums);
    let out = run.install("dash", &feed, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("SHA256SUMS lists no checksum for devbox-0.2.0-"), "{}", text(&out).1);
    assert_eq!(run.installed_files(), Vec::<String>::new());

    // No sums file at all.
    std::fs::remove_file(&sums).expect("rm");
    let out = run.install("dash", &feed, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("cannot be verified; nothing was installed"), "{}", text(&out).1);
    assert_eq!(run.installed_files(), Vec::<String>::new());
}

#[test]
fn install_sh_refuses_when_no_tool_can_verify() {
    let feed = ReleaseFeed::start();
    feed.publish("0.2.0", &fake_devbox("0.2.0"), Sums::Good);
    feed.set_latest("0.2.0");
    let run = Run::new();
    // A PATH with every tool install.sh needs, except sha256sum, shasum and openssl.
    let tools = tempfile::tempdir().expect("tools dir");
    for tool in
        ["uname", "curl", "mktemp", "tr", "awk", "sed", "tar", "gzip", "mkdir", "cp", "chmod", "mv", "rm", "dirname"]
    {
        let found = Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().expect("which");
        let found = String::from_utf8_lossy(&found.stdout).trim().to_string();
        assert!(!found.is_empty(), "the test needs {tool}");
        std::os::unix::fs::symlink(&found, tools.path().join(tool)).expect("symlink");
    }
    let path = tools.path().to_string_lossy().into_owned();

    let out = run.install("/usr/bin/dash", &feed, &[("PATH", &path)]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("none of sha256sum, shasum or openssl is installed"), "{stderr}");
    assert_eq!(run.installed_files(), Vec::<String>::new());

    // With only openssl (the last resort), it verifies and installs.
    let openssl = Command::new("sh").args(["-c", "command -v openssl"]).output().expect("which");
    let openssl = String::from_utf8_lossy(&openssl.stdout).trim().to_string();
    std::os::unix::fs::symlink(&openssl, tools.path().join("openssl")).expect("symlink");
    // Without minisign on the PATH, --require-signature refuses: the signature cannot be checked.
    let out = run.install_with("/usr/bin/dash", &feed, &[("PATH", &path)], &["--require-signature"]);
    assert_eq!(out.status.code(), Some(1), "{:?}", text(&out));
    assert!(text(&out).1.contains("--require-signature: cannot verify the signature of SHA256SUMS without minisign"));
    assert_eq!(run.installed_files(), Vec::<String>::new());

    let out = run.install("/usr/bin/dash", &feed, &[("PATH", &path)]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(text(&out).0.contains("verified devbox-0.2.0-"));
    // It says what it did not verify, and how to.
    assert!(text(&out).0.contains("NOT verified: the signature of SHA256SUMS (minisign is not installed)"));
    assert!(text(&out).0.contains("brew install minisign"));
    assert_eq!(run.installed_files(), vec!["devbox".to_string()]);
}

#[test]
fn install_sh_devbox_version_pins_a_release() {
    let feed = ReleaseFeed::start();
    feed.publish("0.2.0", &fake_devbox("0.2.0"), Sums::Good);
    feed.publish("0.3.0", &fake_devbox("0.3.0"), Sums::Good);
    feed.set_latest("0.3.0");
    let run = Run::new();

    let out = run.install("dash", &feed, &[("DEVBOX_VERSION", "v0.2.0")]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(text(&out).0.contains("installed devbox 0.2.0"), "{}", text(&out).0);
    assert!(!feed.requested().contains(&"latest".to_string()), "a pinned install never reads latest");

    let out = run.install("dash", &feed, &[]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(text(&out).0.contains("installed devbox 0.3.0"), "{}", text(&out).0);

    let out = run.install("dash", &feed, &[("DEVBOX_VERSION", "../../etc")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("is not a version such as 0.2.0"), "{}", text(&out).1);
    let out = run.install("dash", &feed, &[("DEVBOX_VERSION", "9.9.9")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("cannot download"), "{}", text(&out).1);
    assert_eq!(std::fs::read(run.install_dir().join("devbox")).expect("read"), fake_devbox("0.3.0"));
}

#[test]
fn install_sh_is_shellcheck_clean_as_posix_sh() {
    assert_posix_sh(&script());
    // An unknown option is a usage error, and changes nothing.
    let out = Command::new("dash").arg(script()).arg("--bogus").output().expect("run");
    assert_eq!(out.status.code(), Some(2));
}
