//! `clock sync`: what to do (a pure decision), the helper container that sets a VM's clock (a
//! pure spec), and the thin steps that run it and bring the registry's S3 access back. `run` is
//! the whole sync, for `clock sync`, `init` and `doctor --fix`.

use std::time::Duration;

use jiff::SignedDuration;

use super::check::{RegistryAccess, measure_all, registry_access};
pub use super::setter::*;
use super::{Classification, ClockName, Reading, Runtime, Skew, Verdict, judge, runtime, skews};
use crate::config::{Config, RegistryConfig};
use crate::engine::Engine;
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
/// clock within bounds, is a quiet success. An engine that is not a VM is refused. For a caller
/// that already holds devbox's lock.
pub async fn run(
    env: &Environment,
    config: &Config,
    if_skewed: bool,
    dry_run: bool,
    report: &dyn SyncReport,
) -> anyhow::Result<Synced> {
    run_locking(env, config, if_skewed, dry_run, report, async || Ok(())).await
}

/// The same, taking the lock (`lock`, held to the end) only once the clock must be set: the
/// scheduled job, finding nothing to do, never waits for another run.
pub async fn run_locking<G>(
    env: &Environment,
    config: &Config,
    if_skewed: bool,
    dry_run: bool,
    report: &dyn SyncReport,
    lock: impl AsyncFnOnce() -> anyhow::Result<G>,
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
    let (method, note) = choose(classification, image, &name, |program: &str| on_path(env, program));
    if matches!(method, Method::Helper(_)) && classification.rootless {
        return Err(Error::ClockRootless {
            runtime: classification.runtime.label().to_string(),
            cli: cli_command(classification).map(|argv| argv.join(" ")),
        }
        .into());
    }
    if let Some(note) = note {
        report.note(&note);
    }
    if matches!(method, Method::Helper(_)) && !engine.has_image(image).await? {
        return Err(Error::ClockHelperImage { image: image.clone() }.into());
    }
    if dry_run {
        return Ok(Synced::WouldRun(method));
    }
    let _held = lock().await?;
    if classification.forced {
        return Err(
            Error::ClockForced { var: runtime::FORCE_VAR.into(), detected: classification.reason.clone() }.into()
        );
    }
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
    use jiff::Timestamp;

    use crate::clock::Runtime;
    use crate::engine::OneShotOutcome;

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
    fn the_time_is_fed_at_the_hosts_next_whole_second() {
        let host: Timestamp = "2026-11-26T16:41:46.700Z".parse().expect("ts");
        let (second, wait) = next_second(host);
        assert_eq!(Timestamp::from_second(second).expect("ts").to_string(), "2026-11-26T16:41:47Z");
        assert_eq!(wait, Duration::from_millis(300));
        // On the boundary itself: the next one, a whole second away, never a second in the past.
        let on: Timestamp = "2026-11-26T16:41:46Z".parse().expect("ts");
        assert_eq!(next_second(on), (on.as_second() + 1, Duration::from_secs(1)));
        assert_eq!(set_command(1_795_000_000), "exec date -u -s @1795000000\n");
    }

    #[test]
    fn the_helper_is_a_root_shell_with_least_privilege_that_reads_its_input() {
        let spec = helper_spec("registry:2.8.3", "devbox-clock-sync-1");
        assert_eq!(
            Method::Helper(spec).display(),
            "docker run --rm -i --name devbox-clock-sync-1 --label devbox.managed=true --label devbox.role=clock-sync \
             --user 0 --cap-add SYS_TIME --network none --entrypoint /bin/sh registry:2.8.3, \
             fed `date -u -s @<second>` on its input at the host's next whole second"
        );
    }

    #[test]
    fn the_runtimes_own_cli_is_preferred_when_installed() {
        let mut colima = engine(Runtime::Colima);
        colima.instance = Some("work".into());
        let (method, note) = choose(&colima, "reg:1", "h", |p| p == "colima");
        assert_eq!(method, Method::Cli(cli_command(&colima).expect("colima")));
        assert_eq!(cli_command(&colima).expect("colima").join(" "), "colima ssh --profile work -- sudo sh");
        assert_eq!(note, None);
        let podman = engine(Runtime::PodmanMachine);
        assert_eq!(cli_command(&podman).expect("podman").join(" "), "podman machine ssh sudo sh");
        assert_eq!(cli_command(&engine(Runtime::RancherDesktop)).expect("rd")[..2], ["rdctl", "shell"]);
        // Lima needs its instance's name; without it, the helper.
        assert_eq!(cli_command(&engine(Runtime::Lima)), None);

        // Not installed: the helper, and the note says why.
        let (method, note) = choose(&colima, "reg:1", "h", |_| false);
        assert!(matches!(method, Method::Helper(_)));
        assert_eq!(note.as_deref(), Some("colima's CLI (colima) is not on PATH: using a helper container instead"));
        // Docker Desktop has no such CLI.
        let (method, note) = choose(&engine(Runtime::DockerDesktop), "reg:1", "h", |_| true);
        assert!(matches!(method, Method::Helper(_)) && note.is_none());
    }

    /// The CLI path, with `sh` itself as the "runtime's CLI": it is fed only once it said it was
    /// ready, and sets nothing here (`echo` stands in for `date`).
    #[tokio::test]
    async fn a_cli_shell_is_fed_once_ready() {
        // Never the host's clock: `date` and `chronyc` are echoed, not run.
        let sed = "sed -u -e 's/^date /echo date /' -e 's/chronyc /echo chronyc /' | sh";
        let argv = vec!["sh".to_string(), "-c".to_string(), sed.to_string()];
        let before = Timestamp::now().as_second();
        let out = run_cli(&argv).await.expect("sh runs");
        let second: i64 =
            out.strip_prefix("date -u -s @").and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{out}"));
        assert!(second > before && second <= Timestamp::now().as_second(), "{second} {before}");
    }

    /// A CLI that fails fast (`podman machine ssh` with the machine stopped) exits before devbox
    /// writes to it, or while it does: either way it is reported by its exit status and its own
    /// words, never by the pipe that closed.
    #[tokio::test]
    async fn a_cli_that_exits_at_once_is_reported_by_its_status_and_words() {
        let sh = |script: &str| vec!["sh".to_string(), "-c".to_string(), script.to_string()];
        for script in ["echo 'no instance' >&2; exit 3", "exec 0<&-; echo 'no instance' >&2; exit 3"] {
            let failed = run_cli(&sh(script)).await.expect_err("exits 3");
            assert_eq!(
                failed.to_string(),
                format!(
                    "setting the VM's clock with sh -c {script} failed: it exited with exit status: 3: no instance"
                )
            );
        }
        let ended = run_cli(&sh("exec 0<&-; echo bye")).await.expect_err("never read the time");
        assert!(ended.to_string().ends_with("its shell ended before it read the time: bye"), "{ended}");
        let missing = run_cli(&["/nonexistent/devbox-cli".to_string()]).await.expect_err("no such program");
        assert!(missing.to_string().contains("it did not start: "), "{missing}");
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
