//! devbox on a terminal, through util-linux `script`: as a person sees it (`on_a_tty`), and
//! answering its prompts as they appear (`Pty`).

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Bed, poll_until, strip_ansi};

/// Runs `devbox ARGS` in a pseudo-terminal (util-linux `script`), as a person at a terminal sees it.
pub fn on_a_tty(bed: &Bed, args: &[&str]) -> String {
    let inner = bed.devbox_std(args);
    let line = std::iter::once(env!("CARGO_BIN_EXE_devbox")).chain(args.iter().copied()).collect::<Vec<_>>().join(" ");
    let mut script = std::process::Command::new("script");
    script.args(["-qec", &line, "/dev/null"]).env_remove("NO_COLOR");
    for (key, value) in inner.get_envs() {
        match value {
            Some(value) => script.env(key, value),
            None => script.env_remove(key),
        };
    }
    script.env_remove("NO_COLOR");
    let out = script.output().expect("run script(1)");
    String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n")
}

/// Drives `devbox init` in a pseudo-terminal (`script`), answering its prompts as they appear.
pub struct Pty {
    child: std::process::Child,
    output: Arc<Mutex<Vec<u8>>>,
    /// Reads the terminal until it closes: joined, the output is complete.
    reader: std::thread::JoinHandle<()>,
}

impl Pty {
    pub fn spawn(bed: &Bed, args: &[&str]) -> Pty {
        let std = bed.devbox_std(args);
        let line = std::iter::once(std.get_program().to_string_lossy().to_string())
            .chain(std.get_args().map(|a| format!("'{}'", a.to_string_lossy())))
            .collect::<Vec<_>>()
            .join(" ");
        let mut cmd = Command::new("script");
        cmd.args(["-qfec", &line, "/dev/null"]);
        for (key, value) in std.get_envs() {
            match value {
                Some(value) => cmd.env(key, value),
                None => cmd.env_remove(key),
            };
        }
        cmd.env("TERM", "xterm").env("DEVBOX_SCHEDULER", "none").env("COLUMNS", "200");
        let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("script");
        let output = Arc::new(Mutex::new(Vec::new()));
        let mut stdout = child.stdout.take().expect("stdout");
        let sink = Arc::clone(&output);
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().expect("lock").extend_from_slice(&buf[..n]);
            }
        });
        Pty { child, output, reader }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().expect("lock")).to_string()
    }

    /// Waits for `prompt` to appear (its `nth` time), then types `keys`.
    pub fn answer(&mut self, prompt: &str, keys: &str) {
        let shown = poll_until(Duration::from_secs(30), Duration::from_millis(50), || self.text().contains(prompt));
        assert!(shown, "no prompt {prompt:?} in:\n{}", self.text());
        // Let the prompt switch the terminal to raw mode before the keys arrive.
        std::thread::sleep(Duration::from_millis(300));
        let stdin = self.child.stdin.as_mut().expect("stdin");
        stdin.write_all(keys.as_bytes()).expect("type");
        stdin.flush().expect("flush");
    }

    pub fn finish(mut self) -> (Option<i32>, String) {
        let mut status = None;
        let finished = poll_until(Duration::from_secs(120), Duration::from_millis(100), || {
            status = self.child.try_wait().expect("wait");
            status.is_some()
        });
        assert!(finished, "init did not finish:\n{}", self.text());
        let status = status.expect("finished");
        // Drop stdin so nothing holds the terminal open, then read it to its end.
        drop(self.child.stdin.take());
        self.reader.join().expect("the terminal reader");
        let text = String::from_utf8_lossy(&self.output.lock().expect("lock")).to_string();
        (status.code(), text)
    }
}

/// What a person saw: escape sequences gone, and each line as it was left after redraws.
pub fn screen(raw: &str) -> String {
    strip_ansi(raw)
        .split('\n')
        .map(|line| line.trim_end_matches('\r').rsplit('\r').next().unwrap_or("").trim_end().to_string())
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}
