//! A release feed served on 127.0.0.1 by a small HTTP server in this process, for install.sh and
//! `devbox self-update`. Its layout is the real one: `latest`, `v<version>/<archive>`,
//! `v<version>/SHA256SUMS`, `v<version>/SHA256SUMS.minisig`, signed with a throwaway minisign key
//! made for each feed. Nothing here reaches beyond loopback.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::testbed::HttpServer;

pub struct ReleaseFeed {
    pub root: tempfile::TempDir,
    pub url: String,
    pub key: SigningKey,
    server: HttpServer,
}

/// A throwaway minisign key pair (`minisign -G -W`: no password), in a temp dir of its own.
pub struct SigningKey {
    dir: tempfile::TempDir,
    /// The public key's base64 line, as `update.public_key` and `DEVBOX_PUBLIC_KEY` take it.
    pub public: String,
}

impl SigningKey {
    pub fn new() -> SigningKey {
        let dir = tempfile::tempdir().expect("key dir");
        let out = Command::new("minisign")
            .args(["-G", "-W", "-p"])
            .arg(dir.path().join("key.pub"))
            .arg("-s")
            .arg(dir.path().join("key.sec"))
            .output()
            .expect("run minisign (tests/testbed/up.sh installs it)");
        assert!(out.status.success(), "minisign -G: {}", String::from_utf8_lossy(&out.stderr));
        let public = std::fs::read_to_string(dir.path().join("key.pub")).expect("key.pub");
        let public = public.lines().nth(1).expect("the key line").trim().to_string();
        SigningKey { dir, public }
    }

    /// The secret key file, as `scripts/release.sh --key` takes it.
    pub fn secret_file(&self) -> PathBuf {
        self.dir.path().join("key.sec")
    }

    /// Signs `file` as `file.minisig`.
    pub fn sign(&self, file: &Path) {
        let out = Command::new("minisign")
            .args(["-S", "-s"])
            .arg(self.secret_file())
            .arg("-m")
            .arg(file)
            .output()
            .expect("run minisign");
        assert!(out.status.success(), "minisign -S: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// The Rust target this machine's archives are named for, as install.sh and devbox derive it.
pub fn this_target() -> String {
    let arch = std::env::consts::ARCH;
    match std::env::consts::OS {
        "macos" => format!("{arch}-apple-darwin"),
        _ => format!("{arch}-unknown-linux-gnu"),
    }
}

/// A stand-in for a release's binary: a script that answers `--version` as devbox `version` does.
pub fn fake_devbox(version: &str) -> Vec<u8> {
    format!("#!/bin/sh\ncase \"$1\" in\n  --version) echo \"devbox {version}\" ;;\n  *) echo \"fake devbox {version}: $*\" ;;\nesac\n")
        .into_bytes()
}

/// That `script` (install.sh, scripts/release.sh) is POSIX sh: shellcheck is clean, dash parses it.
pub fn assert_posix_sh(script: &Path) {
    let out = Command::new("shellcheck")
        .args(["-s", "sh"])
        .arg(script)
        .output()
        .expect("run shellcheck (tests/testbed/up.sh installs it)");
    assert!(out.status.success(), "shellcheck {}:\n{}", script.display(), String::from_utf8_lossy(&out.stdout));
    let parsed = Command::new("dash").arg("-n").arg(script).status().expect("run dash");
    assert!(parsed.success(), "dash -n {} failed", script.display());
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Which checksum a published release lists for its archive.
#[derive(Clone, Copy, PartialEq)]
pub enum Sums {
    Good,
    /// The SHA-256 of something else: what a corrupted or tampered download looks like.
    Bad,
}

impl ReleaseFeed {
    pub fn start() -> ReleaseFeed {
        let root = tempfile::tempdir().expect("feed dir");
        let server = HttpServer::files(root.path());
        ReleaseFeed { url: server.url.clone(), root, key: SigningKey::new(), server }
    }

    /// Publishes `version` with `binary` as `devbox` in this machine's archive, and its SHA256SUMS,
    /// signed with the feed's key.
    pub fn publish(&self, version: &str, binary: &[u8], sums: Sums) -> PathBuf {
        let dir = self.root.path().join(format!("v{version}"));
        let staging = tempfile::tempdir().expect("staging");
        let bin = staging.path().join("devbox");
        crate::testbed::write_executable(&bin, binary);
        let archive_name = format!("devbox-{version}-{}.tar.gz", this_target());
        std::fs::create_dir_all(&dir).expect("mkdir");
        let archive = dir.join(&archive_name);
        let tar = Command::new("tar")
            .args(["-czf"])
            .arg(&archive)
            .arg("-C")
            .arg(staging.path())
            .arg("devbox")
            .status()
            .expect("run tar");
        assert!(tar.success(), "tar failed");
        let bytes = std::fs::read(&archive).expect("read archive");
        let digest = match sums {
            Sums::Good => sha256_hex(&bytes),
            Sums::Bad => sha256_hex(b"not the archive"),
        };
        // Another target's line first, as a real SHA256SUMS has.
        let other = format!("{}  devbox-{version}-riscv64gc-unknown-linux-gnu.tar.gz\n", sha256_hex(b"other"));
        std::fs::write(dir.join("SHA256SUMS"), format!("{other}{digest}  {archive_name}\n")).expect("write sums");
        self.key.sign(&dir.join("SHA256SUMS"));
        archive
    }

    pub fn set_latest(&self, version: &str) {
        std::fs::write(self.root.path().join("latest"), format!("{version}\n")).expect("write latest");
    }

    /// Every path requested, in order.
    pub fn requested(&self) -> Vec<String> {
        self.server.requested()
    }
}
