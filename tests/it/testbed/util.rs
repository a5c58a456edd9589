//! The helpers every test file shares: polling with a deadline (`wait_until`, `poll_until`),
//! ports (`port_open`, `hold_port`), text (`output_text`, `strip_ansi`), and executables written so
//! that running them never fails with ETXTBSY (`write_executable`).

use std::fmt::Display;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Writes `contents` to `path` as an executable that a test then runs (a fake tool, a script).
///
/// This process never holds a write handle on that file: a child process (`install`) writes it.
/// A handle open here while another test thread forks is inherited by that child until it execs
/// (close-on-exec only takes effect then), and on a loaded machine that can be long enough for
/// running the file to fail with ETXTBSY ("Text file busy"). Writing to a temporary name and
/// renaming would not help: the inherited handle is on the same inode.
pub fn write_executable(path: &Path, contents: &[u8]) {
    let staging = tempfile::tempdir().expect("tempdir");
    let source = staging.path().join("contents");
    std::fs::write(&source, contents).expect("write the executable's contents");
    copy_executable(&source, path);
}

/// Copies `from` to `to` as an executable, written by a child process: see `write_executable`.
pub fn copy_executable(from: &Path, to: &Path) {
    let out = Command::new("install").arg("-m").arg("0755").arg(from).arg(to).output().expect("run install");
    assert!(out.status.success(), "install {from:?} {to:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// How often `wait_until` looks.
const POLL: Duration = Duration::from_millis(50);

/// Polls `done` until it holds; panics naming `what` it waited for when `timeout` passes first.
pub fn wait_until(what: impl Display, timeout: Duration, done: impl FnMut() -> bool) {
    assert!(poll_until(timeout, POLL, done), "gave up after {timeout:?} waiting for {what}");
}

/// Polls `done` every `every` until it holds or `timeout` passes, and says which: for a caller
/// that explains a timeout with what it saw, or must look more often than `wait_until` does.
pub fn poll_until(timeout: Duration, every: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(every);
    }
}

/// Whether something accepts connections on 127.0.0.1:`port`.
pub fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// Holds 127.0.0.1:`port` as another program would, until the listener is dropped.
pub fn hold_port(port: u16) -> TcpListener {
    TcpListener::bind(("127.0.0.1", port)).expect("hold the port")
}

/// A process's stdout then stderr, as one text.
pub fn output_text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// `text` without its terminal escape sequences (CSI: ESC [ parameters, then a final byte '@'..='~').
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.next_if_eq(&'[').is_some() {
                for p in chars.by_ref() {
                    if ('@'..='~').contains(&p) {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}
