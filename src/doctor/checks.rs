//! Each doctor check: measure one thing, judge it, say what to do. Thin on purpose; the judging
//! thresholds are small pure functions with unit tests.

use std::time::Duration;

use super::{CheckId, Finding, Remedy, Status};
use crate::aws::Aws;
use crate::cleanup;
use crate::clock::{
    self, ClockName, Reading,
    runtime::{self, Classification},
};
use crate::config::{Config, LoadedConfig, Storage};
use crate::docker_config::{self, Stored};
use crate::engine::{Engine, EngineInfo};
use crate::env::Environment;
use crate::images::{self, BaseImage, short};
use crate::paths::Paths;
use crate::registry;
use crate::registry::api::{Manifest, RegistryApi};
use crate::schedule;

pub fn config(loaded: &Result<LoadedConfig, anyhow::Error>) -> Finding {
    match loaded {
        Ok(loaded) => Finding::ok(CheckId::Config, loaded.source.to_string())
            .detail("path", loaded.source.path().display().to_string()),
        Err(err) => Finding::fail(CheckId::Config, format!("{err:#}"))
            .hint("Fix that key in the file; `devbox config path` shows which file is in use."),
    }
}

/// A connected engine, what it says of itself, and its clock as read with that answer.
pub struct EngineFacts {
    pub engine: Engine,
    pub info: EngineInfo,
    pub classification: Classification,
    pub clock: Reading,
}

pub async fn engine(env: &Environment) -> (Finding, Option<EngineFacts>) {
    let engine = match Engine::connect(env).await {
        Ok(engine) => engine,
        Err(err) => {
            let hint = err.hint().unwrap_or_default();
            return (Finding::fail(CheckId::Engine, err.to_string()).hint(hint), None);
        }
    };
    // One `GET /info` serves this check, the disk's data directory and the engine's clock.
    let (clock, info) = clock::measure::engine_clock(&engine).await;
    let Some(info) = info else {
        let why = clock.error.clone().unwrap_or_default();
        return (
            Finding::fail(CheckId::Engine, why)
                .hint("The engine answers but not fully; restart Docker.")
                .detail("endpoint", engine.endpoint()),
            None,
        );
    };
    let classification = runtime::effective(runtime::classify(&info, engine.endpoint(), std::env::consts::OS), env);
    let finding = Finding::ok(
        CheckId::Engine,
        format!(
            "Docker {} on {}, API {} ({})",
            info.server_version,
            info.operating_system,
            info.api_version,
            if classification.vm { "in a VM" } else { "native" }
        ),
    )
    .detail("endpoint", engine.endpoint())
    .detail("kernel", info.kernel_version.clone())
    .detail("runtime", classification.runtime.label());
    (finding, Some(EngineFacts { engine, info, classification, clock }))
}

/// Host, engine and S3 clocks: the skews between them, judged as `devbox clock check` judges them.
/// A clock that could not be read is noted, not failed: its own check says why.
pub fn clock(config: &Config, engine: Option<&EngineFacts>, s3: Reading, host: Reading) -> Finding {
    let id = CheckId::Clock;
    let max_skew = config.clock.max_skew;
    let engine_reading = engine
        .map(|e| e.clock.clone())
        .unwrap_or_else(|| Reading::failed(ClockName::Engine, "the Docker engine", "the engine did not answer"));
    let readings = [host, engine_reading, s3];
    let skews = clock::skews(&readings, max_skew);
    let measured: Vec<String> = skews
        .iter()
        .filter(|s| s.b == ClockName::Host)
        .filter_map(|s| s.skew.map(|skew| format!("{} {}", s.a.label(), clock::format_skew(skew))))
        .collect();
    let unread: Vec<&str> =
        readings.iter().filter(|r| r.offset.is_none() && !r.skipped).map(|r| r.clock.label()).collect();
    let worst = skews.iter().filter(|s| s.skew.is_some()).max_by_key(|s| s.skew.map(|d| d.unsigned_abs()));
    let mut summary = if measured.is_empty() {
        "no clock but this host's could be read".to_string()
    } else {
        format!("{} from this host", measured.join(", "))
    };
    if !unread.is_empty() {
        summary.push_str(&format!(" (not read: {})", unread.join(", ")));
    }
    let status = match worst.map(|s| s.verdict) {
        Some(v) if v.is_failure() => Status::Fail,
        Some(clock::Verdict::Warn) => Status::Warn,
        _ => Status::Ok,
    };
    let mut finding =
        Finding::new(id, status, summary).detail("max_skew", humantime::format_duration(max_skew).to_string());
    if let Some(worst) = worst.filter(|_| status != Status::Ok) {
        finding.summary = format!("{}: {}", finding.summary, clock::describe(worst.verdict, max_skew));
        let vm = engine.is_some_and(|e| e.classification.vm);
        finding = if worst.a == ClockName::Engine && vm {
            finding
                .hint("The Docker VM's clock drifted (the laptop slept). Set it from this host's.")
                .remedy(Remedy::ClockSync)
        } else {
            finding
                .hint("This host's own clock is off: S3 disagrees with it. Turn on NTP (`timedatectl set-ntp true`, or chrony; on macOS, Date & Time settings).")
        };
    }
    finding
}

/// What the OS scheduler holds of devbox's jobs, every job that devbox may install. Blocking: the
/// scheduler tools (crontab, systemctl, launchctl, schtasks) are plain processes. It needs no
/// engine, so it runs while the engine connects.
pub struct SchedulerState {
    backend: String,
    state_dir: std::path::PathBuf,
    jobs: Vec<(&'static str, bool, Option<schedule::RunRecord>)>,
}

pub fn scheduler_state(env: &Environment) -> Result<Option<SchedulerState>, Finding> {
    if env.var(schedule::NO_SCHEDULER_VAR) == Some("none") {
        return Ok(None);
    }
    let read = || -> anyhow::Result<SchedulerState> {
        let paths = Paths::resolve(env)?;
        let kind = schedule::detect()?;
        let backend = schedule::backend_for(kind, env, &paths)?;
        let mut jobs = Vec::new();
        for name in schedule::ALL_JOBS {
            let installed = backend.status(name)?.installed;
            jobs.push((name, installed, schedule::read_run_record(paths.state_dir(), name)));
        }
        Ok(SchedulerState { backend: kind.to_string(), state_dir: paths.state_dir().to_path_buf(), jobs })
    };
    read().map(Some).map_err(|err| Finding::fail(CheckId::Schedules, format!("{err:#}")))
}

/// How the jobs this machine should have stand: installed, and their last run recent and
/// successful. `vm_engine` decides whether the clock job is expected.
pub fn schedules(config: &Config, vm_engine: Option<bool>, state: Result<Option<SchedulerState>, Finding>) -> Finding {
    let id = CheckId::Schedules;
    let state = match state {
        Ok(Some(state)) => state,
        Ok(None) => {
            return Finding::ok(
                id,
                format!("no scheduler here ({}=none): no jobs expected", schedule::NO_SCHEDULER_VAR),
            );
        }
        Err(finding) => return finding,
    };
    let (jobs, _) = schedule::wanted_jobs(config, vm_engine);
    let states: Vec<JobState> = jobs
        .iter()
        .map(|job| {
            let found = state.jobs.iter().find(|(name, _, _)| *name == job.name);
            JobState {
                name: job.name,
                installed: found.is_some_and(|(_, installed, _)| *installed),
                period: job.timing.period(),
                last: found.and_then(|(_, _, last)| last.clone()),
            }
        })
        .collect();
    judge_schedules(&states, jiff::Timestamp::now(), &state.backend, &state.state_dir)
}

/// One expected job, as found.
pub struct JobState {
    pub name: &'static str,
    pub installed: bool,
    pub period: Duration,
    pub last: Option<schedule::RunRecord>,
}

/// Missing jobs and failed or overdue last runs are warnings: the machine still works, but the
/// upkeep has stopped. Pure.
pub fn judge_schedules(jobs: &[JobState], now: jiff::Timestamp, backend: &str, state_dir: &std::path::Path) -> Finding {
    let id = CheckId::Schedules;
    if jobs.is_empty() {
        return Finding::ok(id, "no jobs wanted (all switched off in devbox.toml)");
    }
    let missing: Vec<&str> = jobs.iter().filter(|j| !j.installed).map(|j| j.name).collect();
    if !missing.is_empty() {
        return Finding::warn(id, format!("not installed in {backend}: {}", missing.join(", ")))
            .hint("Without them nothing cleans the Docker disk or refreshes the base images.")
            .remedy(Remedy::ScheduleInstall);
    }
    for job in jobs {
        let Some(last) = &job.last else { continue };
        if last.outcome != "success" {
            let log = state_dir.join("logs").join(format!("{}.log", job.name));
            return Finding::warn(id, format!("the last {} run failed (exit {})", job.name, last.exit_code))
                .hint(format!("{}; see {}", last.error.as_deref().unwrap_or("no error recorded"), log.display()));
        }
        let age = now.duration_since(last.finished_at);
        if age.as_secs() > 2 * job.period.as_secs() as i64 {
            return Finding::warn(
                id,
                format!(
                    "{} last ran {}h ago, but should run every {}",
                    job.name,
                    age.as_secs() / 3600,
                    humantime::format_duration(job.period)
                ),
            )
            .hint(format!(
                "The scheduler ({backend}) is not running it: check that the machine's {backend} is active."
            ));
        }
    }
    let names: Vec<&str> = jobs.iter().map(|j| j.name).collect();
    let never: Vec<&str> = jobs.iter().filter(|j| j.last.is_none()).map(|j| j.name).collect();
    let tail =
        if never.is_empty() { "last runs succeeded".to_string() } else { format!("not run yet: {}", never.join(", ")) };
    Finding::ok(id, format!("{} installed in {backend}; {tail}", names.join(", ")))
}

/// Used space of the engine's data disk: warn above 80 %, fail above 90 %.
pub fn disk_verdict(used_percent: f64) -> super::Status {
    match used_percent {
        p if p > 90.0 => super::Status::Fail,
        p if p > 80.0 => super::Status::Warn,
        _ => super::Status::Ok,
    }
}

pub async fn disk(engine: &Engine, info: &EngineInfo, config: &Config, env: &Environment) -> Finding {
    let root = &info.docker_root_dir;
    let reclaimable = reclaimable(engine, config, env).await;
    // The data directory is only visible here when the engine runs on this host.
    let local = engine.endpoint().starts_with("unix://") && !root.is_empty() && std::path::Path::new(root).is_dir();
    let usage = if local { fs4::statvfs(root).ok() } else { None };
    let Some(stats) = usage.filter(|s| s.total_space() > 0) else {
        return Finding::ok(CheckId::Disk, format!("{root} is inside the engine's VM; {reclaimable}"))
            .detail("docker_root_dir", root.clone());
    };
    let total = stats.total_space();
    let free = stats.available_space();
    let used = 100.0 * (total - free.min(total)) as f64 / total as f64;
    let summary = format!(
        "{used:.0}% used at {root} ({} free of {}); {reclaimable}",
        crate::config::ByteSize(free),
        crate::config::ByteSize(total)
    );
    let finding = Finding::new(CheckId::Disk, disk_verdict(used), summary)
        .detail("docker_root_dir", root.clone())
        .detail("free_bytes", free.to_string())
        .detail("total_bytes", total.to_string());
    match finding.status {
        Status::Ok => finding,
        _ => finding
            .hint("A full Docker disk breaks builds and pulls. Remove stopped containers and dangling images; `devbox cleanup --dry-run` shows what goes.")
            .fix("devbox cleanup"),
    }
}

/// What `devbox cleanup` would free now, from the same plan it would carry out.
async fn reclaimable(engine: &Engine, config: &Config, env: &Environment) -> String {
    let pulls = Paths::resolve(env).map(|p| cleanup::read_pulls(p.state_dir())).unwrap_or_default();
    match cleanup::make_plan(engine, &cleanup::policy(config), &pulls).await {
        Ok(plan) => {
            let removals = plan.containers.iter().chain(&plan.dangling_images).chain(&plan.evicted_images);
            let bytes: u64 = removals.clone().filter_map(|r| r.size).sum();
            match removals.count() {
                0 => "nothing for cleanup to remove".to_string(),
                n => format!("cleanup would remove {n} items, at least {}", crate::config::ByteSize(bytes)),
            }
        }
        Err(err) => format!("reclaimable space unknown ({err:#})"),
    }
}

pub async fn registry_container(engine: &Engine, config: &Config) -> Finding {
    let registry = &config.registry;
    let id = CheckId::RegistryContainer;
    let container = match engine.container(&registry.container).await {
        Ok(Some(container)) => container,
        Ok(None) => {
            return port_held(registry.port).unwrap_or_else(|| {
                Finding::fail(id, format!("{} does not exist", registry.container))
                    .hint("The local registry serves the base images.")
                    .remedy(Remedy::RegistryUp)
            });
        }
        Err(err) => return Finding::fail(id, format!("{err:#}")),
    };
    if container.label(registry::LABEL_MANAGED) != Some("true") {
        return Finding::fail(
            id,
            format!("a container named {} exists, but devbox did not make it", registry.container),
        )
        .hint(format!("Remove it (docker rm -f {}) or set registry.container in devbox.toml.", registry.container));
    }
    if !container.is_running() {
        return port_held(registry.port).unwrap_or_else(|| {
            Finding::fail(id, format!("{} is {}", registry.container, container.state))
                .hint("Start it again.")
                .remedy(Remedy::RegistryUp)
        });
    }
    if let Some(open) = container.published.iter().find(|p| !p.starts_with("127.0.0.1:")) {
        return Finding::fail(id, format!("{} is published on {open}, not only on 127.0.0.1", registry.container))
            .hint("Anyone on the network could reach it. Recreate it.")
            .fix("devbox registry down && devbox registry up");
    }
    let storage = container.label(registry::LABEL_STORAGE).unwrap_or("unknown").to_string();
    let readonly = container.label(registry::LABEL_READONLY) == Some("true");
    if storage == "s3" && !readonly {
        return Finding::fail(id, format!("{} is writable on S3 storage", registry.container))
            .hint("Only CI may push. Recreate it read-only.")
            .fix("devbox registry down && devbox registry up");
    }
    let finding = Finding::ok(
        id,
        format!(
            "{} running on {}, {storage}{}",
            registry.container,
            container.published.join(", "),
            if readonly { ", read-only" } else { "" }
        ),
    )
    .detail("image", container.image.clone())
    .detail("id", container.id.chars().take(12).collect::<String>());
    match registry::desired(engine, registry).await {
        Ok(Some(desired)) if container.label(registry::LABEL_CONFIG_HASH) != Some(desired.hash.as_str()) => {
            Finding { status: super::Status::Warn, ..finding }
                .hint("It was made from an older devbox.toml; recreate it to apply the current one.")
                .remedy(Remedy::RegistryUp)
        }
        _ => finding,
    }
}

/// When the registry is not running, its port should be free; if another process holds it,
/// `registry up` cannot succeed, and that is the problem to name.
fn port_held(port: u16) -> Option<Finding> {
    std::net::TcpListener::bind(("127.0.0.1", port)).err().map(|_| {
        Finding::fail(CheckId::RegistryContainer, format!("port {port} on 127.0.0.1 is held by another process"))
            .hint(format!(
                "Stop it (`lsof -iTCP:{port} -sTCP:LISTEN` names it), or set registry.port in devbox.toml to a free port. On macOS, port 5000 is often the AirPlay Receiver."
            ))
    })
}

/// The registry's base-image digests, as `registry_digests` read them, shared by two checks.
pub type Digests = Result<Vec<(BaseImage, Manifest)>, Finding>;

pub async fn registry_api(config: &Config, digests: impl std::future::Future<Output = Option<Digests>>) -> Finding {
    let id = CheckId::RegistryApi;
    let url = config.registry.local_url();
    let api = match RegistryApi::new(&url) {
        Ok(api) => api,
        Err(err) => return Finding::fail(id, format!("{err:#}")),
    };
    if let Err(reason) = api.ping().await {
        return Finding::fail(id, reason).hint("See what the registry says: devbox registry logs --no-follow");
    }
    // Its behaviour, not devbox's labels, shows that it runs devbox's config.
    let proofs = match registry::verify::prove_connecting(&api, &config.registry).await {
        registry::verify::Verdict::Proven(shown) => shown.iter().map(|s| format!("; {s}")).collect::<String>(),
        registry::verify::Verdict::Ignored(cause) => {
            return Finding::fail(id, format!("the registry ignored devbox's config: {cause}"))
                .hint("Recreate it. If that does not help, registry.image names an image that does not read the config devbox names as its command.")
                .fix("devbox registry down && devbox registry up");
        }
        registry::verify::Verdict::Unproven(reason) => {
            return Finding::fail(id, format!("{url}/v2/ answers, but {reason}"))
                .hint("See what the registry says: devbox registry logs --no-follow");
        }
    };
    // A read that reaches storage proves the bucket (or volume) works behind the registry. The
    // base images' manifests are such reads, and are read anyway; with none configured, the catalog.
    match digests.await {
        Some(Ok(digests)) if !digests.is_empty() => {
            return Finding::ok(
                id,
                format!("{url}/v2/ answers; read {} manifests from storage{proofs}", digests.len()),
            );
        }
        Some(Err(failed)) => {
            return Finding::fail(id, format!("{url}/v2/ answers, but the registry cannot read its storage: {}", failed.summary))
                .hint("Check the bucket and credentials (`devbox doctor --check aws-credentials`) and `devbox registry logs --no-follow`.");
        }
        _ => {}
    }
    match api.read_through(None).await {
        Ok(what) => Finding::ok(id, format!("{url}/v2/ answers; {what}{proofs}")),
        Err(reason) => Finding::fail(id, format!("{url}/v2/ answers, but the registry cannot read its storage: {reason}"))
            .hint("Check the bucket and credentials (`devbox doctor --check aws-credentials`) and `devbox registry logs --no-follow`."),
    }
}

/// Credentials that expire within an hour deserve a warning; expired ones are a failure.
pub fn expiry_verdict(expiry: Option<jiff::Timestamp>, now: jiff::Timestamp) -> (super::Status, String) {
    let Some(expiry) = expiry else { return (super::Status::Ok, "long-lived".into()) };
    let left = expiry.duration_since(now);
    let minutes = left.as_secs() / 60;
    if left.is_negative() || left.is_zero() {
        (super::Status::Fail, format!("expired at {expiry}"))
    } else if left.as_secs() < 3600 {
        (super::Status::Warn, format!("expire in {minutes} min"))
    } else {
        (super::Status::Ok, format!("expire in {}h {}m", minutes / 60, minutes % 60))
    }
}

pub async fn aws_credentials(config: &Config) -> Finding {
    let id = CheckId::AwsCredentials;
    let s3 = &config.registry.s3;
    if config.registry.storage() != Storage::S3 {
        return Finding::ok(id, "not needed: the registry uses filesystem storage");
    }
    let aws = match Aws::connect(s3).await {
        Ok(aws) => aws,
        Err(err) => return Finding::fail(id, err.to_string()).hint(err.hint().unwrap_or_default()),
    };
    let (status, expiry) = expiry_verdict(aws.credentials().expiry, jiff::Timestamp::now());
    let login = format!("aws sso login --profile {}", s3.profile);
    if status == super::Status::Fail {
        return Finding::fail(id, format!("credentials {expiry}")).hint("Log in again.").fix(login);
    }
    let (identity, reached) = tokio::join!(aws.identity(), aws.check_bucket());
    let bucket = s3.bucket.as_ref().map(|b| b.to_string()).unwrap_or_default();
    let latency = match reached {
        Ok(latency) => latency,
        Err(err) => return Finding::fail(id, err.to_string()).hint(err.hint().unwrap_or_default()),
    };
    let account = identity.as_ref().map(|i| i.account.clone()).unwrap_or_else(|_| "unknown".into());
    let finding = Finding::new(
        id,
        status,
        format!("account {account}, bucket {bucket} reachable ({} ms), credentials {expiry}", latency.as_millis()),
    )
    .detail("endpoint", aws.endpoint())
    .detail("bucket_latency_ms", latency.as_millis().to_string());
    let finding = match identity {
        Ok(identity) => finding.detail("identity", identity.arn),
        Err(err) => finding.detail("identity", err.to_string()),
    };
    match status {
        super::Status::Warn => finding.hint("Log in again before they expire.").fix(login),
        _ => finding,
    }
}

/// The registry's side of the base-images check: each image's manifest digest. It needs no
/// engine, so it runs while the engine connects.
pub async fn registry_digests(config: &Config) -> Digests {
    let id = CheckId::BaseImages;
    let images = images::base_images(config, &[])
        .map_err(|reason| Finding::fail(id, reason).hint("Fix images.base in devbox.toml."))?;
    let api = RegistryApi::new(&config.registry.local_url()).map_err(|err| Finding::fail(id, format!("{err:#}")))?;
    let digests =
        futures_util::future::join_all(images.iter().map(|image| api.manifest(&image.repo, &image.tag))).await;
    images
        .into_iter()
        .zip(digests)
        .map(|(image, digest)| digest.map(|d| (image, d)).map_err(|reason| Finding::fail(id, reason)))
        .collect()
}

/// Compares each base image on the engine with the registry's digest (from `registry_digests`).
pub async fn base_images(engine: &Engine, remote: Digests) -> Finding {
    let id = CheckId::BaseImages;
    let remote = match remote {
        Ok(remote) if remote.is_empty() => return Finding::ok(id, "none configured (images.base is empty)"),
        Ok(remote) => remote,
        Err(finding) => return finding,
    };
    let states = futures_util::future::join_all(remote.iter().map(|(image, manifest)| async move {
        let Manifest::Found(remote) = manifest else { return Ok(ImageState::Absent) };
        let local = engine.image(&image.local).await.map_err(|e| format!("{e:#}"))?;
        Ok::<_, String>(match local.as_ref().and_then(|i| i.digest_in(image.local_repo())) {
            None => ImageState::Missing,
            Some(digest) if digest == remote => ImageState::Current,
            Some(digest) => ImageState::Stale(format!("{}: {} → {}", image.name, short(digest), short(remote))),
        })
    }))
    .await;
    let images: Vec<&BaseImage> = remote.iter().map(|(image, _)| image).collect();
    let (mut current, mut stale, mut missing, mut absent) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut details = Vec::new();
    for (image, state) in images.iter().zip(states) {
        match state {
            Err(reason) => return Finding::fail(id, reason),
            Ok(ImageState::Absent) => absent.push(image.name.clone()),
            Ok(ImageState::Missing) => missing.push(image.name.clone()),
            Ok(ImageState::Current) => current.push(image.name.clone()),
            Ok(ImageState::Stale(detail)) => {
                details.push(detail);
                stale.push(image.name.clone());
            }
        }
    }
    let mut finding = if !absent.is_empty() {
        Finding::fail(id, format!("not in the registry: {}", absent.join(", ")))
            .hint("CI has not published them, or images.base names them wrongly. Ask the platform team.")
    } else if !stale.is_empty() || !missing.is_empty() {
        let mut parts = Vec::new();
        if !stale.is_empty() {
            parts.push(format!("stale: {}", stale.join(", ")));
        }
        if !missing.is_empty() {
            parts.push(format!("not pulled: {}", missing.join(", ")));
        }
        Finding::warn(id, format!("{} of {} current; {}", current.len(), images.len(), parts.join("; ")))
            .hint("Pull the current base images.")
            .remedy(Remedy::Pull)
    } else {
        Finding::ok(id, format!("all {} current", images.len()))
    };
    if !details.is_empty() {
        finding = finding.detail("stale", details.join("; "));
    }
    finding
}

enum ImageState {
    Current,
    Stale(String),
    Missing,
    Absent,
}

pub async fn push_credentials(env: &Environment, config: &Config) -> Finding {
    let id = CheckId::PushCredentials;
    let production = &config.security.production_registries;
    if production.is_empty() {
        return Finding::ok(id, "no production registries configured (security.production_registries)");
    }
    let Some(path) = docker_config::path(env) else {
        return Finding::ok(id, "no docker config (HOME unset)");
    };
    let Some(docker) = docker_config::read(&path) else {
        return Finding::ok(id, format!("none stored ({} absent or unreadable)", path.display()));
    };
    let (mut stored, store) = docker_config::stored_credentials(&docker);
    let mut unchecked = None;
    if let Some(store) = store {
        match docker_config::store_hosts(&store, Duration::from_secs(3)).await {
            Some(hosts) => stored.extend(hosts.into_iter().map(|h| (h, Stored::Store { store: store.clone() }))),
            None => unchecked = Some(store),
        }
    }
    let wanted: Vec<String> = production.iter().map(|h| docker_config::normalize_host(h)).collect();
    let offending: Vec<&(String, Stored)> = stored.iter().filter(|(host, _)| wanted.contains(host)).collect();
    if let Some((host, how)) = offending.first() {
        let place = match how {
            Stored::InFile => format!("in {}", path.display()),
            Stored::Helper { helper } => format!("through the credential helper {helper}"),
            Stored::Store { store } => format!("in the credential store {store}"),
        };
        let hosts: Vec<&str> = offending.iter().map(|(h, _)| h.as_str()).collect();
        return Finding::fail(id, format!("push credentials for {} are stored {place}", hosts.join(", ")))
            .hint("Only CI pushes to production. Remove them from this machine.")
            .fix(format!("docker logout {host}"));
    }
    let summary = format!("none for the {} production registries", production.len());
    match unchecked {
        Some(store) => {
            Finding::ok(id, format!("{summary} in {} (credential store {store} not readable)", path.display()))
        }
        None => Finding::ok(id, summary),
    }
}

/// Whether a newer devbox is out: asked of the release feed at most once a day, and never a
/// failure, even offline. An update is a suggestion, so `--fix` leaves it to the user.
pub async fn version(config: &Config, env: &Environment) -> Finding {
    let id = CheckId::Version;
    let current = crate::update::CURRENT_VERSION;
    let Ok(paths) = Paths::resolve(env) else { return Finding::ok(id, format!("devbox {current}")) };
    match crate::update::cached_latest(config, env, &paths, jiff::Timestamp::now()).await {
        Some(latest) if crate::update::is_newer(current, &latest.version) => {
            Finding::warn(id, format!("devbox {current}; {} is out", latest.version))
                .hint("A newer release is available.")
                .fix("devbox self-update")
        }
        Some(latest) => Finding::ok(id, format!("devbox {current} is the newest release (checked {})", latest.seen_at)),
        None => {
            Finding::ok(id, format!("devbox {current} (the release feed has not answered; checked at most once a day)"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Status;

    #[test]
    fn disk_thresholds() {
        assert_eq!(disk_verdict(50.0), Status::Ok);
        assert_eq!(disk_verdict(80.0), Status::Ok);
        assert_eq!(disk_verdict(80.5), Status::Warn);
        assert_eq!(disk_verdict(90.5), Status::Fail);
    }

    #[test]
    fn schedules_are_judged_by_presence_outcome_and_age() {
        let now: jiff::Timestamp = "2026-11-26T12:00:00Z".parse().expect("timestamp");
        let day = Duration::from_secs(24 * 3600);
        let run = |hours_ago: i64, outcome: &str| {
            let finished_at = now - jiff::SignedDuration::from_hours(hours_ago);
            Some(schedule::RunRecord {
                job: "cleanup".into(),
                started_at: finished_at,
                finished_at,
                exit_code: if outcome == "success" { 0 } else { 1 },
                outcome: outcome.into(),
                error: (outcome != "success").then(|| "engine down".into()),
            })
        };
        let state = std::path::Path::new("/state");
        let job = |installed, last| JobState { name: "cleanup", installed, period: day, last };
        let judged = |jobs: &[JobState]| judge_schedules(jobs, now, "cron", state);

        let missing = judged(&[job(false, None)]);
        assert_eq!((missing.status, missing.remedy), (Status::Warn, Some(Remedy::ScheduleInstall)));
        assert_eq!(judged(&[job(true, None)]).summary, "cleanup installed in cron; not run yet: cleanup");
        assert_eq!(judged(&[job(true, run(20, "success"))]).status, Status::Ok);
        let failed = judged(&[job(true, run(2, "failure"))]);
        assert_eq!(failed.status, Status::Warn);
        assert!(failed.hint.unwrap_or_default().contains("/state/logs/cleanup.log"));
        let overdue = judged(&[job(true, run(60, "success"))]);
        assert_eq!(overdue.status, Status::Warn);
        assert_eq!(overdue.summary, "cleanup last ran 60h ago, but should run every 1day");
    }

    #[test]
    fn expiry_thresholds() {
        let now: jiff::Timestamp = "2026-11-26T12:00:00Z".parse().expect("timestamp");
        let at = |s: &str| Some(s.parse::<jiff::Timestamp>().expect("timestamp"));
        assert_eq!(expiry_verdict(None, now), (Status::Ok, "long-lived".into()));
        assert_eq!(expiry_verdict(at("2026-11-26T17:30:00Z"), now), (Status::Ok, "expire in 5h 30m".into()));
        assert_eq!(expiry_verdict(at("2026-11-26T12:20:00Z"), now), (Status::Warn, "expire in 20 min".into()));
        assert_eq!(expiry_verdict(at("2026-11-26T11:00:00Z"), now).0, Status::Fail);
    }
}
