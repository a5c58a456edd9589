//! `Test`: one run of devbox as a sentence of expectations (`bed.test(args)`).

use std::fmt::Display;
use std::process::Output;

/// One run of devbox and what it must do: an exit code (0 unless told) and texts its output holds or
/// lacks. `run` checks them all, and a failure shows the whole output.
pub struct Test {
    cmd: assert_cmd::Command,
    code: i32,
    expectations: Vec<(Stream, bool, String)>,
}

#[derive(Clone, Copy, Debug)]
enum Stream {
    Stdout,
    Stderr,
}

impl Test {
    /// Expectations about `cmd`: exit code 0 until told otherwise, and nothing about its output.
    pub fn new(cmd: assert_cmd::Command) -> Test {
        Test { cmd, code: 0, expectations: Vec::new() }
    }

    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Test {
        self.cmd.env(key, value);
        self
    }

    pub fn env_remove(mut self, key: &str) -> Test {
        self.cmd.env_remove(key);
        self
    }

    /// The exit code it must end with (0 unless told).
    pub fn code(mut self, code: i32) -> Test {
        self.code = code;
        self
    }

    pub fn stdout_has(self, text: impl Display) -> Test {
        self.expect(Stream::Stdout, true, text)
    }

    pub fn stdout_lacks(self, text: impl Display) -> Test {
        self.expect(Stream::Stdout, false, text)
    }

    pub fn stderr_has(self, text: impl Display) -> Test {
        self.expect(Stream::Stderr, true, text)
    }

    pub fn stderr_lacks(self, text: impl Display) -> Test {
        self.expect(Stream::Stderr, false, text)
    }

    fn expect(mut self, stream: Stream, present: bool, text: impl Display) -> Test {
        self.expectations.push((stream, present, text.to_string()));
        self
    }

    /// Runs it and checks every expectation; returns the output for anything more.
    pub fn run(mut self) -> Output {
        let out = self.cmd.output().expect("run devbox");
        let all = || {
            format!(
                "--- stdout\n{}--- stderr\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        };
        assert_eq!(out.status.code(), Some(self.code), "exit code\n{}", all());
        for (stream, present, text) in &self.expectations {
            let bytes = match stream {
                Stream::Stdout => &out.stdout,
                Stream::Stderr => &out.stderr,
            };
            let holds = String::from_utf8_lossy(bytes).contains(text.as_str());
            let should = if *present { "holds" } else { "lacks" };
            assert_eq!(holds, *present, "{stream:?} {should} {text:?}? no\n{}", all());
        }
        out
    }
}
