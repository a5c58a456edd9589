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
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    // Its output is read from the start, so a tool that writes before it reads never blocks on a
    // full pipe; the input is written on its own thread, so a tool that reads nothing and never
    // exits still meets the timeout below (killing it ends the write).
    let out = reader(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let err = reader(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let writer = match (stdin, child.stdin.take()) {
        (Some(input), Some(mut pipe)) => {
            let input = input.to_vec();
            Some(std::thread::spawn(move || pipe.write_all(&input)))
        }
        _ => None,
    };
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
    // A tool that stops reading early (it refused, or failed) says why in its exit status and
    // stderr: that is the story, not the broken pipe. If it still claims success, it did not
    // take the whole input, and that is a failure.
    let cut_short = match writer.map(|w| w.join()) {
        Some(Ok(Err(e))) if e.kind() == std::io::ErrorKind::BrokenPipe => true,
        Some(Ok(Err(e))) => return Err(e).with_context(|| format!("cannot write to `{program}`")),
        Some(Err(_)) => anyhow::bail!("writing to `{program}` panicked"),
        Some(Ok(Ok(()))) | None => false,
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

#[cfg(test)]
mod tests {
    use super::*;

    // Each runs a real process through a pipe: loop them (tests/soak.sh --unit) before changing.

    #[test]
    fn a_tool_that_exits_at_once_is_told_by_its_status_and_words() {
        let input = vec![b'x'; 1 << 20];
        let out = run_tool("sh", &["-c", "echo refused >&2; exit 3"], Some(&input)).expect("it ran");
        assert!(!out.success);
        assert_eq!(out.code, Some(3));
        assert!(out.stderr.contains("refused"), "{out:?}");
    }

    #[test]
    fn a_tool_that_writes_much_before_it_reads_does_not_block() {
        // 1 MiB out before reading 1 MiB in: both pipes overflow unless each is served on its own.
        let input = vec![b'y'; 1 << 20];
        let script = "head -c 1048576 /dev/zero | tr '\\0' z; wc -c";
        let out = run_tool("sh", &["-c", script], Some(&input)).expect("it ran");
        assert!(out.success, "{out:?}");
        assert!(out.stdout.starts_with("zzz"));
        assert_eq!(out.stdout.trim_start_matches('z').trim(), "1048576");
    }

    #[test]
    fn a_tool_that_succeeds_without_reading_its_input_fails() {
        let input = vec![b'x'; 1 << 20];
        let out = run_tool("sh", &["-c", "exec 0<&-; exit 0"], Some(&input)).expect("it ran");
        assert!(!out.success, "{out:?}");
        assert!(out.stderr.contains("exited before reading all its input"), "{out:?}");
    }
}
