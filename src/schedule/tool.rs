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
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        match pipe.write_all(input) {
            // The tool quit without reading all of it: its exit status and stderr say why.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            other => other.with_context(|| format!("cannot write to `{program}`"))?,
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
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!("`{program} {}` did not finish within {}s", args.join(" "), TOOL_TIMEOUT.as_secs());
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    Ok(ToolOutput {
        success: status.success(),
        code: status.code(),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}
