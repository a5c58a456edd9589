//! A release feed served on 127.0.0.1 by a small HTTP server in this process, for install.sh and
//! `devbox self-update`. Its layout is the real one: `latest`, `v<version>/<archive>`,
//! `v<version>/SHA256SUMS`. Nothing here reaches beyond loopback.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

pub struct ReleaseFeed {
    pub root: tempfile::TempDir,
    pub url: String,
    /// Every path requested, in order.
    pub requests: Arc<Mutex<Vec<String>>>,
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
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (dir, log) = (root.path().to_path_buf(), requests.clone());
        // Lives as long as the test process; each connection is answered and closed.
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = serve(stream, &dir, &log);
            }
        });
        ReleaseFeed { root, url, requests }
    }

    /// Publishes `version` with `binary` as `devbox` in this machine's archive, and its SHA256SUMS.
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
        archive
    }

    pub fn set_latest(&self, version: &str) {
        std::fs::write(self.root.path().join("latest"), format!("{version}\n")).expect("write latest");
    }

    pub fn requested(&self) -> Vec<String> {
        self.requests.lock().expect("lock").clone()
    }
}

fn serve(stream: std::net::TcpStream, root: &Path, log: &Mutex<Vec<String>>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" || header == "\n" {
            break;
        }
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    let path = path.split('?').next().unwrap_or("/").trim_start_matches('/').to_string();
    log.lock().expect("lock").push(path.clone());
    let file = (!path.split('/').any(|p| p == ".." || p.is_empty())).then(|| root.join(&path));
    let mut stream = stream;
    match file.and_then(|f| std::fs::read(f).ok()) {
        Some(body) => {
            write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
                body.len()
            )?;
            stream.write_all(&body)?;
        }
        None => {
            let body = b"not found";
            write!(stream, "HTTP/1.1 404 Not Found\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len())?;
            stream.write_all(body)?;
        }
    }
    stream.flush()
}
