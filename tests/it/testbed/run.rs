//! `Test`: one run of devbox as a sentence of expectations (`bed.test(args)`).

use std::fmt::Display;
use std::process::Output;
use std::time::Duration;

/// One run of devbox and what it must do: an exit code (0 unless told) and texts its output holds or
/// lacks. `run` checks them all, and a failure shows the whole output.
#[must_use = "a Test checks nothing until `.run()`"]
pub struct Test {
    cmd: assert_cmd::Command,
    /// The exit code it must end with; `None`: any.
    code: Option<i32>,
    expectations: Vec<Expectation>,
}

/// What one stream must be: `holds` judges its text, `what` says it in a failure.
struct Expectation {
    stream: Stream,
    what: String,
    holds: Box<dyn Fn(&str) -> bool>,
}

#[derive(Clone, Copy, Debug)]
enum Stream {
    Stdout,
    Stderr,
    /// stdout then stderr, as one text.
    Output,
}

impl Test {
    /// Expectations about `cmd`: exit code 0 until told otherwise, and nothing about its output.
    pub fn new(cmd: assert_cmd::Command) -> Test {
        Test { cmd, code: Some(0), expectations: Vec::new() }
    }

    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Test {
        self.cmd.env(key, value);
        self
    }

    pub fn env_remove(mut self, key: &str) -> Test {
        self.cmd.env_remove(key);
        self
    }

    /// How long it may take before it is killed and the test fails.
    pub fn timeout(mut self, limit: Duration) -> Test {
        self.cmd.timeout(limit);
        self
    }

    /// The exit code it must end with (0 unless told).
    pub fn code(mut self, code: i32) -> Test {
        self.code = Some(code);
        self
    }

    /// Any exit code will do: a run whose outcome the test judges by what it changed.
    pub fn any_code(mut self) -> Test {
        self.code = None;
        self
    }

    pub fn stdout_has(self, text: impl Display) -> Test {
        self.has(Stream::Stdout, true, text)
    }

    pub fn stdout_lacks(self, text: impl Display) -> Test {
        self.has(Stream::Stdout, false, text)
    }

    /// stdout is exactly `text` ("" for a silent run).
    pub fn stdout_is(self, text: impl Display) -> Test {
        self.is(Stream::Stdout, text)
    }

    /// stdout matches the regular expression `pattern`.
    pub fn stdout_matches(self, pattern: &str) -> Test {
        let regex = predicates::str::is_match(pattern).expect("a valid regular expression");
        self.expect(Stream::Stdout, format!("matches /{pattern}/"), move |text| {
            predicates::Predicate::eval(&regex, text)
        })
    }

    pub fn stderr_has(self, text: impl Display) -> Test {
        self.has(Stream::Stderr, true, text)
    }

    pub fn stderr_lacks(self, text: impl Display) -> Test {
        self.has(Stream::Stderr, false, text)
    }

    /// stderr is exactly `text` ("" for a silent run).
    pub fn stderr_is(self, text: impl Display) -> Test {
        self.is(Stream::Stderr, text)
    }

    /// stdout then stderr, read as one text, holds `text`.
    pub fn output_has(self, text: impl Display) -> Test {
        self.has(Stream::Output, true, text)
    }

    pub fn output_lacks(self, text: impl Display) -> Test {
        self.has(Stream::Output, false, text)
    }

    fn has(self, stream: Stream, present: bool, text: impl Display) -> Test {
        let text = text.to_string();
        let what = format!("{} {text:?}", if present { "holds" } else { "lacks" });
        self.expect(stream, what, move |read| read.contains(text.as_str()) == present)
    }

    fn is(self, stream: Stream, text: impl Display) -> Test {
        let text = text.to_string();
        self.expect(stream, format!("is exactly {text:?}"), move |read| read == text)
    }

    fn expect(mut self, stream: Stream, what: String, holds: impl Fn(&str) -> bool + 'static) -> Test {
        self.expectations.push(Expectation { stream, what, holds: Box::new(holds) });
        self
    }

    /// Runs it and checks every expectation; returns the output for anything more.
    pub fn run(mut self) -> Output {
        let out = self.cmd.output().unwrap_or_else(|e| panic!("run devbox: {e}"));
        let all = || {
            format!(
                "--- stdout\n{}--- stderr\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        };
        if let Some(code) = self.code {
            assert_eq!(out.status.code(), Some(code), "exit code\n{}", all());
        }
        for Expectation { stream, what, holds } in &self.expectations {
            let read = match stream {
                Stream::Stdout => String::from_utf8_lossy(&out.stdout).to_string(),
                Stream::Stderr => String::from_utf8_lossy(&out.stderr).to_string(),
                Stream::Output => super::output_text(&out),
            };
            assert!(holds(&read), "{stream:?} {what}? no\n{}", all());
        }
        out
    }

    /// Runs it, checks every expectation, and returns its stdout and stderr as one text.
    pub fn text(self) -> String {
        super::output_text(&self.run())
    }

    /// Runs it, checks every expectation, and returns its stdout read as JSON.
    pub fn json(self) -> serde_json::Value {
        let out = self.run();
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", super::output_text(&out)))
    }
}
