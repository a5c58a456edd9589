//! How `clock sync` sets a VM's clock: the runtime's own CLI or a helper container, each running a
//! shell that is fed the host's next whole second once it is up, so the time set is exact however
//! long the shell took to start. The specs are pure; running them is thin.

use std::collections::HashMap;
use std::time::Duration;

use jiff::Timestamp;

use super::{Classification, Runtime};
use crate::engine::{Engine, OneShotOutcome, OneShotSpec};
use crate::env::Environment;
use crate::error::Error;
use crate::registry;

pub const HELPER_ROLE: &str = "clock-sync";

/// How long the runtime's CLI may take to set the clock.
const CLI_TIMEOUT: Duration = Duration::from_secs(30);

/// Both ways of setting the clock run a shell that reads its commands from its standard input,
/// so that the time is written only once it is up: however long the runtime's CLI or the helper
/// container takes to start (seconds, in a busy VM), the time it sets is the host's at that
/// moment. First this, to learn when the shell is up ...
pub const HELLO: &str = "echo devbox-ready\n";
/// ... which it answers with this line;
pub const READY: &str = "devbox-ready";

/// ... then, at the host's next whole second, the command that sets that second. `date -s @N`
/// takes whole seconds (busybox's `date`, in the official registry image, takes nothing finer),
/// so the time is written when it is exact: the VM is then behind only by the time the line takes
/// to reach the shell and `date` to run (milliseconds).
pub fn set_command(second: i64) -> String {
    format!("exec date -u -s @{second}\n")
}

/// What the runtime's CLI feeds its root shell in the VM: the time, as `set_command`; then, where
/// chronyd runs (podman machine's Fedora CoreOS does), podman's maintainers' own workaround
/// (containers/podman #22037), so that chronyd takes fresh samples at once rather than slewing for
/// minutes on its stale estimate. The time comes first, and from the host: `makestep` right after
/// a wake has no fresh sample to step by, and the host's clock is the one devbox measures against.
pub fn set_command_in_vm(second: i64) -> String {
    format!(
        "date -u -s @{second} >&2 || exit\n\
         if pgrep -x chronyd >/dev/null 2>&1; then chronyc -m 'burst 4/4' makestep; fi\nexit 0\n"
    )
}

/// The host's next whole second after `now`, and how long until it.
pub fn next_second(now: Timestamp) -> (i64, Duration) {
    let next = now.as_second() + 1;
    let at = Timestamp::from_second(next).unwrap_or(now);
    (next, at.duration_since(now).unsigned_abs())
}

/// Waits for the host's next whole second and gives the command that sets it.
async fn at_next_second() -> String {
    set_command(wait_next_second().await)
}

/// Waits for the host's next whole second, and gives it.
async fn wait_next_second() -> i64 {
    let (second, wait) = next_second(Timestamp::now());
    tokio::time::sleep(wait).await;
    second
}

/// How `sync` sets the VM's clock.
#[derive(Debug, Clone, PartialEq)]
pub enum Method {
    /// The runtime's own CLI runs a root shell inside the VM: no image and no container needed.
    Cli(Vec<String>),
    /// A short-lived helper container from an image already on the engine.
    Helper(OneShotSpec),
}

impl Method {
    /// The command, as a user would type it, and what it is fed: what `--dry-run` shows.
    pub fn display(&self) -> String {
        let fed = "fed `date -u -s @<second>` on its input at the host's next whole second";
        match self {
            Method::Cli(argv) => {
                format!("{}, {fed} (then, where chronyd runs, `chronyc -m 'burst 4/4' makestep`)", argv.join(" "))
            }
            Method::Helper(spec) => format!("{}, {fed}", as_docker_run(spec)),
        }
    }
}

/// The runtime's own command that opens a root shell in its VM, where it has one.
pub fn cli_command(engine: &Classification) -> Option<Vec<String>> {
    let instance = engine.instance.as_deref();
    let prefix: Vec<&str> = match engine.runtime {
        Runtime::Colima => vec!["colima", "ssh", "--profile", instance.unwrap_or("default"), "--"],
        Runtime::Lima => vec!["limactl", "shell", instance?],
        Runtime::RancherDesktop => vec!["rdctl", "shell"],
        Runtime::PodmanMachine => vec!["podman", "machine", "ssh"],
        _ => return None,
    };
    // Plain words only: each CLI joins or quotes its arguments its own way on the way to the VM's
    // shell, and the script travels on the standard input instead.
    Some(prefix.into_iter().chain(["sudo", "sh"]).map(String::from).collect())
}

/// Prefers the runtime's CLI when it is installed; otherwise the helper container. The note says
/// why the CLI was passed over.
pub fn choose(
    engine: &Classification,
    image: &str,
    helper_name: &str,
    on_path: impl Fn(&str) -> bool,
) -> (Method, Option<String>) {
    match cli_command(engine) {
        Some(argv) if on_path(&argv[0]) => (Method::Cli(argv), None),
        Some(argv) => (
            Method::Helper(helper_spec(image, helper_name)),
            Some(format!(
                "{}'s CLI ({}) is not on PATH: using a helper container instead",
                engine.runtime.label(),
                argv[0]
            )),
        ),
        None => (Method::Helper(helper_spec(image, helper_name)), None),
    }
}

/// Whether `program` is an executable file on `PATH`.
pub fn on_path(env: &Environment, program: &str) -> bool {
    env.finds_program(program)
}

/// Why the runtime's CLI did not set the clock. A CLI that fails fast (`podman machine ssh` with the
/// machine stopped, `colima ssh` with no instance) may close its input before devbox writes to it, or
/// while it does: that is reported by what the CLI said and how it exited, never by the pipe.
#[derive(Debug, thiserror::Error)]
pub enum CliFailure {
    #[error("it did not start: {0}")]
    NotStarted(#[source] std::io::Error),
    #[error("it exited with {status}: {}", said_or_nothing(.output))]
    Exited { status: std::process::ExitStatus, output: String },
    #[error("its shell ended before it read the time: {}", said_or_nothing(.output))]
    EndedEarly { output: String },
    #[error("no answer within {}s", .0.as_secs())]
    TimedOut(Duration),
    #[error("talking to it: {0}")]
    Io(#[source] std::io::Error),
}

fn said_or_nothing(output: &str) -> &str {
    if output.is_empty() { "it said nothing" } else { output }
}

/// Runs the runtime's CLI and feeds its shell. Its failure is the user's error, with its own words.
pub async fn run_cli(argv: &[String]) -> Result<String, Error> {
    let outcome = match tokio::time::timeout(CLI_TIMEOUT, feed_cli(argv)).await {
        Err(_) => Err(CliFailure::TimedOut(CLI_TIMEOUT)),
        Ok(outcome) => outcome,
    };
    outcome.map_err(|failure| Error::ClockFix { how: argv.join(" "), reason: failure.to_string() })
}

async fn feed_cli(argv: &[String]) -> Result<String, CliFailure> {
    use std::process::Stdio;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    let Some((program, args)) = argv.split_first() else {
        return Err(CliFailure::NotStarted(std::io::Error::new(std::io::ErrorKind::InvalidInput, "no command")));
    };
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(CliFailure::NotStarted)?;
    let (Some(mut stdin), Some(stdout), Some(mut stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(CliFailure::Io(std::io::Error::other("its standard streams were not connected")));
    };
    // Its errors are read all along, so that a CLI that writes much to stderr never blocks on a
    // full pipe while devbox waits for its output.
    let errors = tokio::spawn(async move {
        let mut errors = String::new();
        let _ = stderr.read_to_string(&mut errors).await;
        errors
    });
    // A write to a CLI that has already exited fails (EPIPE); what it said, and its exit status,
    // tell why, so the write's own failure only means "it never read this".
    let mut fed = stdin.write_all(HELLO.as_bytes()).await.is_ok();
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let mut said = Vec::new();
    let mut ready = false;
    while let Some(line) = lines.next_line().await.map_err(CliFailure::Io)? {
        if line.trim() == READY {
            ready = true;
            break;
        }
        said.push(line);
    }
    if ready {
        let command = set_command_in_vm(wait_next_second().await);
        fed &= stdin.write_all(command.as_bytes()).await.is_ok();
    }
    drop(stdin);
    while let Some(line) = lines.next_line().await.map_err(CliFailure::Io)? {
        said.push(line);
    }
    let status = child.wait().await.map_err(CliFailure::Io)?;
    let errors = errors.await.unwrap_or_default();
    let output = format!("{}\n{}", said.join("\n"), errors).trim().to_string();
    match (status.success(), ready && fed) {
        (true, true) => Ok(output),
        (true, false) => Err(CliFailure::EndedEarly { output }),
        (false, _) => Err(CliFailure::Exited { status, output }),
    }
}

/// The helper container: the registry's own image (already on the engine; never pulled), running
/// a shell as root, with `SYS_TIME` (the one capability that may set the clock; not
/// `--privileged`) and no network. A container shares the VM's kernel, and the kernel has one
/// wall clock, so its `date -s` sets the VM's clock.
pub fn helper_spec(image: &str, name: &str) -> OneShotSpec {
    OneShotSpec {
        name: name.to_string(),
        image: image.to_string(),
        entrypoint: vec!["/bin/sh".into()],
        args: vec![],
        user: "0".into(),
        cap_add: vec!["SYS_TIME".into()],
        network_none: true,
        interactive: true,
        labels: HashMap::from([
            (registry::LABEL_MANAGED.to_string(), "true".to_string()),
            (registry::LABEL_ROLE.to_string(), HELPER_ROLE.to_string()),
        ]),
    }
}

/// The `docker run` command that does what the helper does: what `--dry-run` shows.
pub fn as_docker_run(spec: &OneShotSpec) -> String {
    let mut parts = vec![format!("docker run --rm{}", if spec.interactive { " -i" } else { "" })];
    parts.push(format!("--name {}", spec.name));
    let mut labels: Vec<_> = spec.labels.iter().collect();
    labels.sort();
    parts.extend(labels.into_iter().map(|(k, v)| format!("--label {k}={v}")));
    parts.push(format!("--user {}", spec.user));
    parts.extend(spec.cap_add.iter().map(|cap| format!("--cap-add {cap}")));
    if spec.network_none {
        parts.push("--network none".into());
    }
    parts.push(format!("--entrypoint {}", spec.entrypoint.join(" ")));
    parts.push(spec.image.clone());
    parts.extend(spec.args.iter().cloned());
    parts.join(" ")
}

/// A helper that did not run, or failed, as the error the user sees.
pub fn helper_result(outcome: OneShotOutcome, image: &str) -> Result<String, Error> {
    let how = format!("a helper container (image {image})");
    match outcome {
        OneShotOutcome::Exited { code: 0, output } => Ok(output),
        OneShotOutcome::Exited { code, output } => Err(Error::ClockFix {
            how,
            reason: format!("it exited with code {code}: {}", if output.is_empty() { "no output" } else { &output }),
        }),
        OneShotOutcome::NotStarted { reason } => {
            Err(Error::ClockFix { how, reason: format!("it did not start: {reason}") })
        }
    }
}

/// Runs the helper. The registry is not touched on any path.
pub async fn run_helper(engine: &Engine, spec: &OneShotSpec) -> anyhow::Result<String> {
    let outcome = engine.run_once_answering(spec, HELLO, READY, at_next_second).await?;
    Ok(helper_result(outcome, &spec.image)?)
}
