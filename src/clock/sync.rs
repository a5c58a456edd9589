//! `clock sync`: what to do (a pure decision), the helper container that sets a VM's clock (a
//! pure spec), and the thin steps that run it and bring the registry's S3 access back. `run` is
//! the whole sync, for `clock sync`, `init` and `doctor --fix`.

use std::collections::HashMap;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use super::check::{RegistryAccess, measure_all, registry_access};
use super::{Classification, ClockName, Reading, Runtime, Skew, Verdict, judge, runtime, skews};
use crate::config::{Config, RegistryConfig};
use crate::engine::{Engine, OneShotOutcome, OneShotSpec};
use crate::env::Environment;
use crate::error::Error;
use crate::registry::{self, api::RegistryApi};

/// What a sync says as it goes. A sync takes seconds, and whatever stops it halfway should come
/// after what it had found; the end is `run`'s result.
pub trait SyncReport {
    /// The engine's clock is `skew` off the host's, judged `verdict`, and will be set.
    fn skewed(&self, engine: &Classification, skew: SignedDuration, verdict: Verdict);
    /// A remark on the way, e.g. why the runtime's CLI was passed over.
    fn note(&self, text: &str);
    /// The clock was set, this way.
    fn set(&self, method: &Method);
    /// The skews measured again after setting it.
    fn after(&self, skews: &[Skew]);
}

/// How a sync ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Synced {
    /// `--if-skewed` and no engine answered: there is no clock to set, for this reason.
    NoEngine(String),
    /// The engine's clock is within `clock.max_skew`; nothing was done.
    WithinBounds(SignedDuration),
    /// `--dry-run`: what would set it (at the host's time when it runs).
    WouldRun(Method),
    /// The clock was set. `engine_off`: still off afterwards. The registry's S3 access after the
    /// sync, and after the one restart when S3 still refused it.
    Set { engine_off: bool, registry: RegistryAccess, after_restart: Option<RegistryAccess> },
}

impl Synced {
    /// The sync did not fix the clock, or the registry still cannot read S3.
    pub fn failed(&self) -> bool {
        match self {
            Synced::Set { engine_off, after_restart, .. } => {
                *engine_off || matches!(after_restart, Some(RegistryAccess::Refused(_)))
            }
            _ => false,
        }
    }
}

/// Measures, decides, and sets a VM engine's clock from the host's UTC time; then measures again
/// and brings back the registry's S3 access. `if_skewed` is the scheduled job: no engine, or a
/// clock within bounds, is a quiet success. An engine that is not a VM is refused.
pub async fn run(
    env: &Environment,
    config: &Config,
    if_skewed: bool,
    dry_run: bool,
    report: &dyn SyncReport,
) -> anyhow::Result<Synced> {
    let max_skew = config.clock.max_skew;
    let before = measure_all(env, &config.registry.s3).await;
    let (Some(engine), Some(classification)) = (&before.engine, &before.classification) else {
        let why = before.reading(ClockName::Engine).and_then(|r| r.error.clone());
        let why = why.unwrap_or_else(|| "the engine did not answer".into());
        if if_skewed {
            return Ok(Synced::NoEngine(why));
        }
        return Err(Error::ClockUnmeasured { reason: why }.into());
    };
    let engine_skew = match before.reading(ClockName::Engine) {
        Some(Reading { offset: Some(offset), .. }) => Ok(*offset),
        Some(r) => Err(r.error.clone().unwrap_or_else(|| "unknown".into())),
        None => Err("the engine's clock was not read".into()),
    };
    let skew = match decide(classification, engine_skew, max_skew, if_skewed) {
        Decision::Refuse => {
            return Err(Error::ClockNotVm {
                endpoint: engine.endpoint().to_string(),
                runtime: classification.runtime.label().to_string(),
                reason: classification.reason.clone(),
                remote: classification.runtime == Runtime::Remote,
            }
            .into());
        }
        Decision::Unmeasured(reason) => return Err(Error::ClockUnmeasured { reason }.into()),
        Decision::WithinBounds(skew) => return Ok(Synced::WithinBounds(skew)),
        Decision::Sync(skew) => skew,
    };
    report.skewed(classification, skew, judge(skew, max_skew));

    let image = &config.registry.image;
    let name = helper_name();
    let plan = |target| choose(classification, target, image, &name, |program: &str| on_path(env, program));
    let (method, note) = plan(target_time(Timestamp::now()));
    if let Some(note) = note {
        report.note(&note);
    }
    if matches!(method, Method::Helper(_)) && !engine.has_image(image).await? {
        return Err(Error::ClockHelperImage { image: image.clone() }.into());
    }
    if dry_run {
        return Ok(Synced::WouldRun(method));
    }
    if classification.forced {
        return Err(
            Error::ClockForced { var: runtime::FORCE_VAR.into(), detected: classification.reason.clone() }.into()
        );
    }
    // The host's time as close to the moment it is set as devbox can make it.
    let (method, _) = plan(target_time(Timestamp::now()));
    match &method {
        Method::Cli(argv) => {
            run_cli(argv).await?;
        }
        Method::Helper(spec) => {
            run_helper(engine, spec).await?;
        }
    }
    report.set(&method);

    let after = measure_all(env, &config.registry.s3).await;
    let after_skews = skews(&after.readings, max_skew);
    report.after(&after_skews);
    let engine_off = after_skews.iter().any(|s| s.a == ClockName::Engine && s.verdict.is_failure());
    let (registry, after_restart) = repair_registry(engine, &config.registry).await?;
    Ok(Synced::Set { engine_off, registry, after_restart })
}

/// Unique per run, so two syncs never fight over a name.
fn helper_name() -> String {
    format!("devbox-clock-sync-{}", std::process::id())
}

/// What `clock sync` does, given the engine and its skew against the host.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// The engine shares this host's clock, or is another machine: never touch it.
    Refuse,
    /// The engine's clock could not be read, for this reason.
    Unmeasured(String),
    /// Within `clock.max_skew`: nothing to do.
    WithinBounds(SignedDuration),
    /// Set the VM's clock; it is this far off.
    Sync(SignedDuration),
}

/// Decides. Without `--if-skewed`, a non-VM engine is refused before anything else; with it (the
/// scheduled job), a clock within bounds is a quiet no-op whatever the engine.
pub fn decide(
    engine: &Classification,
    engine_skew: Result<SignedDuration, String>,
    max_skew: Duration,
    if_skewed: bool,
) -> Decision {
    if !engine.vm && !if_skewed {
        return Decision::Refuse;
    }
    let skew = match engine_skew {
        Ok(skew) => skew,
        Err(why) => return Decision::Unmeasured(why),
    };
    if judge(skew, max_skew) == Verdict::Ok {
        return Decision::WithinBounds(skew);
    }
    if engine.vm { Decision::Sync(skew) } else { Decision::Refuse }
}

pub const HELPER_ROLE: &str = "clock-sync";

/// How long the runtime's CLI may take to set the clock.
const CLI_TIMEOUT: Duration = Duration::from_secs(30);

/// How `sync` sets the VM's clock.
#[derive(Debug, Clone, PartialEq)]
pub enum Method {
    /// The runtime's own CLI runs `date` inside the VM: no image and no container needed.
    Cli(Vec<String>),
    /// A short-lived helper container from an image already on the engine.
    Helper(OneShotSpec),
}

impl Method {
    /// The command, as a user would type it: what `--dry-run` shows.
    pub fn display(&self) -> String {
        match self {
            Method::Cli(argv) => argv.join(" "),
            Method::Helper(spec) => as_docker_run(spec),
        }
    }
}

/// The runtime's own command that sets its VM's clock to `target`, where it has one.
pub fn cli_command(engine: &Classification, target: Timestamp) -> Option<Vec<String>> {
    let instance = engine.instance.as_deref();
    let prefix: Vec<&str> = match engine.runtime {
        Runtime::Colima => vec!["colima", "ssh", "--profile", instance.unwrap_or("default"), "--"],
        Runtime::Lima => vec!["limactl", "shell", instance?],
        Runtime::RancherDesktop => vec!["rdctl", "shell"],
        Runtime::PodmanMachine => vec!["podman", "machine", "ssh"],
        _ => return None,
    };
    let date = format!("@{}", target.as_second());
    Some(prefix.into_iter().chain(["sudo", "date", "-u", "-s", &date]).map(String::from).collect())
}

/// Prefers the runtime's CLI when it is installed; otherwise the helper container. The note says
/// why the CLI was passed over.
pub fn choose(
    engine: &Classification,
    target: Timestamp,
    image: &str,
    helper_name: &str,
    on_path: impl Fn(&str) -> bool,
) -> (Method, Option<String>) {
    match cli_command(engine, target) {
        Some(argv) if on_path(&argv[0]) => (Method::Cli(argv), None),
        Some(argv) => (
            Method::Helper(helper_spec(image, target, helper_name)),
            Some(format!(
                "{}'s CLI ({}) is not on PATH: using a helper container instead",
                engine.runtime.label(),
                argv[0]
            )),
        ),
        None => (Method::Helper(helper_spec(image, target, helper_name)), None),
    }
}

/// Whether `program` is an executable file on `PATH`.
pub fn on_path(env: &Environment, program: &str) -> bool {
    let Some(path) = env.var("PATH") else { return false };
    std::env::split_paths(path).any(|dir| ["", ".exe"].iter().any(|ext| dir.join(format!("{program}{ext}")).is_file()))
}

/// Runs the runtime's CLI. Its failure is the user's error, with its own words.
pub async fn run_cli(argv: &[String]) -> Result<String, Error> {
    let how = argv.join(" ");
    let fail = |reason: String| Error::ClockFix { how: how.clone(), reason };
    let (program, args) = argv.split_first().ok_or_else(|| fail("no command".into()))?;
    let child =
        tokio::process::Command::new(program).args(args).stdin(std::process::Stdio::null()).kill_on_drop(true).output();
    let output = match tokio::time::timeout(CLI_TIMEOUT, child).await {
        Err(_) => return Err(fail(format!("no answer within {}s", CLI_TIMEOUT.as_secs()))),
        Ok(Err(e)) => return Err(fail(format!("it did not start: {e}"))),
        Ok(Ok(output)) => output,
    };
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    if output.status.success() {
        Ok(text.trim().to_string())
    } else {
        Err(fail(format!("it exited with {}: {}", output.status, text.trim())))
    }
}

/// The helper container: the registry's own image (already on the engine; never pulled), running
/// only `date -u -s @SECONDS` as root, with `SYS_TIME` (the one capability that may set the clock;
/// not `--privileged`) and no network. A container shares the VM's kernel, and the kernel has one
/// wall clock, so this sets the VM's clock.
pub fn helper_spec(image: &str, target: Timestamp, name: &str) -> OneShotSpec {
    OneShotSpec {
        name: name.to_string(),
        image: image.to_string(),
        entrypoint: vec!["/bin/date".into()],
        args: vec!["-u".into(), "-s".into(), format!("@{}", target.as_second())],
        user: "0".into(),
        cap_add: vec!["SYS_TIME".into()],
        network_none: true,
        labels: HashMap::from([
            (registry::LABEL_MANAGED.to_string(), "true".to_string()),
            (registry::LABEL_ROLE.to_string(), HELPER_ROLE.to_string()),
        ]),
    }
}

/// The time to set: the host's UTC time, to the nearest second (`date -s @N` takes whole seconds,
/// and busybox's `date` in the official registry image takes nothing finer).
pub fn target_time(host_now: Timestamp) -> Timestamp {
    let rounded = (host_now + SignedDuration::from_millis(500)).as_second();
    Timestamp::from_second(rounded).unwrap_or(host_now)
}

/// The `docker run` command that does what the helper does: what `--dry-run` shows.
pub fn as_docker_run(spec: &OneShotSpec) -> String {
    let mut parts = vec!["docker run --rm".to_string(), format!("--name {}", spec.name)];
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
    let outcome = engine.run_once(spec).await?;
    Ok(helper_result(outcome, &spec.image)?)
}

/// After a sync: the registry's S3 access, restarting the container once if S3 still refuses it.
/// Returns the access before any restart, and after it when there was one.
pub async fn repair_registry(
    engine: &Engine,
    config: &RegistryConfig,
) -> anyhow::Result<(RegistryAccess, Option<RegistryAccess>)> {
    let first = registry_access(engine, config).await?;
    if !matches!(first, RegistryAccess::Refused(_)) {
        return Ok((first, None));
    }
    engine.restart_container(&config.container).await?;
    let api = RegistryApi::new(&config.local_url())?;
    if let Err(why) = registry::wait_ready(engine, &api, &config.container).await {
        return Ok((first, Some(RegistryAccess::Refused(format!("after a restart it did not answer: {why}")))));
    }
    let second = registry_access(engine, config).await?;
    Ok((first, Some(second)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Runtime;

    fn engine(runtime: Runtime) -> Classification {
        Classification::new(runtime, "")
    }

    const TWO_S: Duration = Duration::from_secs(2);

    fn secs(s: i64) -> Result<SignedDuration, String> {
        Ok(SignedDuration::from_secs(s))
    }

    #[test]
    fn a_native_engine_is_refused_whatever_its_skew() {
        let native = engine(Runtime::NativeLinux);
        assert_eq!(decide(&native, secs(0), TWO_S, false), Decision::Refuse);
        assert_eq!(decide(&native, Err("down".into()), TWO_S, false), Decision::Refuse);
        assert_eq!(decide(&engine(Runtime::Remote), secs(600), TWO_S, true), Decision::Refuse);
        // The scheduled job on a native engine whose clock is fine stays quiet.
        assert_eq!(decide(&native, secs(0), TWO_S, true), Decision::WithinBounds(SignedDuration::ZERO));
    }

    #[test]
    fn a_vm_is_synced_when_off_in_either_direction() {
        let vm = engine(Runtime::DockerDesktop);
        assert_eq!(decide(&vm, secs(-1200), TWO_S, true), Decision::Sync(SignedDuration::from_secs(-1200)));
        assert_eq!(decide(&vm, secs(3), TWO_S, false), Decision::Sync(SignedDuration::from_secs(3)));
        assert_eq!(decide(&vm, secs(1), TWO_S, false), Decision::WithinBounds(SignedDuration::from_secs(1)));
        assert_eq!(
            decide(&vm, Ok(SignedDuration::from_millis(1)), Duration::ZERO, true),
            Decision::Sync(SignedDuration::from_millis(1)),
            "max_skew = 0s syncs at any skew"
        );
        assert_eq!(decide(&vm, Err("down".into()), TWO_S, true), Decision::Unmeasured("down".into()));
    }

    #[test]
    fn the_helper_sets_the_clock_to_the_hosts_nearest_second_with_least_privilege() {
        let host: Timestamp = "2026-11-26T16:41:46.700Z".parse().expect("ts");
        let target = target_time(host);
        assert_eq!(target.to_string(), "2026-11-26T16:41:47Z");
        let spec = helper_spec("registry:2.8.3", target, "devbox-clock-sync-1");
        assert_eq!(
            as_docker_run(&spec),
            format!(
                "docker run --rm --name devbox-clock-sync-1 --label devbox.managed=true --label devbox.role=clock-sync \
                 --user 0 --cap-add SYS_TIME --network none --entrypoint /bin/date registry:2.8.3 -u -s @{}",
                target.as_second()
            )
        );
    }

    #[test]
    fn the_runtimes_own_cli_is_preferred_when_installed() {
        let target: Timestamp = "2026-11-26T16:41:47Z".parse().expect("ts");
        let at = format!("@{}", target.as_second());
        let mut colima = engine(Runtime::Colima);
        colima.instance = Some("work".into());
        let (method, note) = choose(&colima, target, "reg:1", "h", |p| p == "colima");
        assert_eq!(method.display(), format!("colima ssh --profile work -- sudo date -u -s {at}"));
        assert_eq!(note, None);
        let podman = engine(Runtime::PodmanMachine);
        assert_eq!(
            cli_command(&podman, target).expect("podman").join(" "),
            format!("podman machine ssh sudo date -u -s {at}")
        );
        assert_eq!(cli_command(&engine(Runtime::RancherDesktop), target).expect("rd")[..2], ["rdctl", "shell"]);
        // Lima needs its instance's name; without it, the helper.
        assert_eq!(cli_command(&engine(Runtime::Lima), target), None);

        // Not installed: the helper, and the note says why.
        let (method, note) = choose(&colima, target, "reg:1", "h", |_| false);
        assert!(matches!(method, Method::Helper(_)));
        assert_eq!(note.as_deref(), Some("colima's CLI (colima) is not on PATH: using a helper container instead"));
        // Docker Desktop has no such CLI.
        let (method, note) = choose(&engine(Runtime::DockerDesktop), target, "reg:1", "h", |_| true);
        assert!(matches!(method, Method::Helper(_)) && note.is_none());
    }

    #[test]
    fn path_lookup_goes_through_the_environment() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("colima"), "").expect("write");
        let env = Environment::default().with("PATH", dir.path().to_str().expect("utf-8"));
        assert!(on_path(&env, "colima"));
        assert!(!on_path(&env, "podman"));
        assert!(!on_path(&Environment::default(), "colima"));
    }

    #[test]
    fn a_helper_that_fails_is_a_clear_error() {
        let not_started = helper_result(OneShotOutcome::NotStarted { reason: "no such image".into() }, "reg:1")
            .expect_err("must fail");
        assert_eq!(
            not_started.to_string(),
            "setting the VM's clock with a helper container (image reg:1) failed: it did not start: no such image"
        );
        assert!(not_started.hint().is_some_and(|h| h.contains("registry was left as it was")));
        let refused = helper_result(
            OneShotOutcome::Exited { code: 1, output: "date: cannot set date: Operation not permitted".into() },
            "reg:1",
        )
        .expect_err("must fail");
        assert!(refused.to_string().contains("exited with code 1: date: cannot set date"), "{refused}");
        assert_eq!(
            helper_result(OneShotOutcome::Exited { code: 0, output: "ok".into() }, "reg:1").ok(),
            Some("ok".into())
        );
    }
}
