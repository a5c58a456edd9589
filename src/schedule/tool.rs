//! Runs a scheduler's own tool (systemctl, launchctl, crontab, schtasks) with a timeout.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::Context;

use super::TOOL_TIMEOUT;

/// What the tool said.
#[derive(Debug, Clone)]
pub struct ToolOutput {
    pub success: bool,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `program args…`, feeding `stdin` if given. Fails only when it cannot be started or does
/// not finish within `TOOL_TIMEOUT`; a non-zero exit is in the output.
pub fn run_tool(program: &str, args: &[&str], stdin: Option<&[u8]>) -> anyhow::Result<ToolOutput> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run `{program}`"))?;
    // A tool that stops reading early (it refused, or failed) says why in its exit status and
    // stderr: that is the story, not the broken pipe. If it still claims success, it did not
    // take the whole input, and that is a failure.
    let mut cut_short = false;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        match pipe.write_all(input) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => cut_short = true,
            Err(e) => return Err(e).with_context(|| format!("cannot write to `{program}`")),
        }
    }
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let out = reader(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let err = reader(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let deadline = Instant::now() + TOOL_TIMEOUT;
    let mut pause = std::time::Duration::from_millis(1);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!("`{program} {}` did not finish within {}s", args.join(" "), TOOL_TIMEOUT.as_secs());
        }
        // Most tools answer within milliseconds: poll often at first, then back off.
        std::thread::sleep(pause);
        pause = (pause * 2).min(std::time::Duration::from_millis(50));
    };
    let mut stderr = err.join().unwrap_or_default();
    if cut_short && status.success() {
        stderr.push_str(&format!("`{program}` exited before reading all its input"));
    }
    Ok(ToolOutput {
        success: status.success() && !cut_short,
        code: status.code(),
        stdout: out.join().unwrap_or_default(),
        stderr,
    })
}
