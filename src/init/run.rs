//! One `init` run: the config it converges to, and its steps carried out in order, each the same
//! domain action as its own command: `registry::Service::up` (`registry up`), `images::pull` (`pull`),
//! `clock::sync` (`clock sync --if-skewed`), `schedule::install` (`schedule install`), and the
//! doctor's checks; `steps.rs` says how each result reads. Everything that could refuse the run (a
//! team config that does not parse, an engine that does not answer, a busy port with no one to
//! ask) is found before anything is written. `cli/init.rs` parses the flags and prints each step.

use std::future::Future;
use std::path::{Path, PathBuf};

use crate::aws::Aws;
use crate::config::{self, Config, ConfigSource, LoadedConfig, Storage};
use crate::engine::Engine;
use crate::env::Environment;
use crate::error::{Error, ExitStatus, exit_status_of};
use crate::images::pull::pull_and_record;
use crate::init::answers::{self, Question};
use crate::init::front::{Front, port_free};
use crate::init::team::{self, TeamSource};
use crate::init::{ALL_STEPS, Outcome, Step, blocker, steps};
use crate::init::{header, trust};
use crate::lock::Held;
use crate::paths::{Paths, write_if_changed};
use crate::registry::{self, Service};
use crate::schedule;

/// What the flags asked of this run.
#[derive(Debug, Default)]
pub struct Options {
    /// A team's devbox.toml: a path, an https:// URL or s3://BUCKET/KEY, optionally pinned
    /// with `#sha256=HEX`.
    pub from: Option<String>,
    /// `--key`: the team's minisign key (or a path to it), recorded at the first signed init.
    pub key: Option<String>,
    /// `--trust-unsigned`: apply an unpinned, unsigned config's trust-relevant changes.
    pub trust_unsigned: bool,
    pub dry_run: bool,
    pub skip: Vec<Step>,
    pub bucket: Option<String>,
    pub region: Option<String>,
    pub profile: Option<String>,
    pub port: Option<u16>,
}

/// What the steps came to, in order.
pub struct Ran {
    pub results: Vec<(Step, Outcome)>,
    /// A step failed on bad input (exit 2 rather than 1).
    pub usage: bool,
    /// Ctrl-C stopped the run; no later step ran.
    pub interrupted: bool,
}

impl Ran {
    pub fn status(&self, failed: bool) -> ExitStatus {
        match (failed, self.usage) {
            (false, _) => ExitStatus::Success,
            (true, true) => ExitStatus::Usage,
            (true, false) => ExitStatus::Failure,
        }
    }
}

pub struct Run<'a> {
    pub(super) env: &'a Environment,
    pub(super) front: &'a dyn Front,
    pub(super) options: Options,
    /// Where the user's config lives (or will).
    path: PathBuf,
    source: ConfigSource,
    /// The user's file as it stands, if any.
    current: Option<String>,
    /// The file to build on: the team's (with its source line) or the current one.
    pub(super) base: Option<String>,
    team: Option<String>,
    pub(super) answers: Vec<(Question, toml::Value)>,
    pub(super) config: Config,
    engine: Option<Engine>,
    aws: Option<Aws>,
    /// The state directory's lock, held while the steps change the machine (none in a dry run).
    lock: Option<Held>,
}

impl<'a> Run<'a> {
    /// Reads the current config (`source`), fetches and validates the team's, and asks for what is
    /// missing about S3. Nothing is written here; any error leaves the machine as it was.
    pub async fn prepare(
        env: &'a Environment,
        source: ConfigSource,
        options: Options,
        front: &'a dyn Front,
    ) -> anyhow::Result<Run<'a>> {
        let path = source.path().to_path_buf();
        let current = match std::fs::read_to_string(&path) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(err) => {
                return Err(crate::error::ConfigError::Read { source_desc: path.display().to_string(), err }.into());
            }
        };
        let current_config = match &current {
            Some(text) => config::parse_str(text, &path),
            None => config::defaults(),
        };
        let (base, team) = match &options.from {
            Some(from) => {
                let (from, pin) = trust::split_pin(from).map_err(Error::Usage)?;
                let source = match TeamSource::parse(from).map_err(Error::Usage)? {
                    TeamSource::Path(p) => TeamSource::Path(std::fs::canonicalize(&p).unwrap_or(p)),
                    other => other,
                };
                // S3 is reached with the S3 settings in force now (endpoint, region, profile), and
                // so is the network (proxy, CAs).
                let now = match &current_config {
                    Ok(c) => c.clone(),
                    Err(_) => parse(None, &path)?,
                };
                crate::http::install_network(&now.network, env, &path)?;
                let text = team::fetch(&source, &now.registry.s3).await?;
                let shown = source.display();
                // Validated before anything is written: errors name the source, line and key.
                let team_config = config::parse_str(&text, Path::new(&shown)).map_err(Error::from)?;
                let asked = trust::Asked { pin, key: options.key.as_deref(), trust_unsigned: options.trust_unsigned };
                let offered = trust::Offered { source: &source, text: &text, config: &team_config };
                let recorded = current.as_deref().map(header::recorded_keys).unwrap_or_default();
                let (trust, keys) = trust::judge(offered, &now, recorded, asked, &now.registry.s3, front).await?;
                (Some(header::with_header(&shown, &trust, &keys, &text)), Some(format!("{shown}, {trust}")))
            }
            None => {
                if let Err(err) = current_config {
                    return Err(Error::from(err).into());
                }
                (current.clone(), None)
            }
        };
        let config = parse(base.as_deref(), &path)?;
        // The network settings this run's steps go out with (a team config may set them): checked
        // now, before anything is written.
        crate::http::install_network(&config.network, env, &path)?;
        let mut run = Run {
            env,
            front,
            options,
            path,
            source,
            current,
            base,
            team,
            answers: Vec::new(),
            config,
            engine: None,
            aws: None,
            lock: None,
        };
        run.ask_about_s3()?;
        Ok(run)
    }

    /// Runs the steps in order, each once what it needs has not failed; `report` hears each
    /// outcome as it comes. Ctrl-C stops the run after the step it interrupted.
    /// The configuration this run sets up: the one its config step writes (or, with `--dry-run`,
    /// would write).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// `lock` takes the state directory's lock, which every step that changes the machine needs:
    /// it is taken once preflight has passed (a run that stops there changes nothing, the lock
    /// file included); a dry run changes nothing and passes none.
    pub async fn run(
        &mut self,
        lock: Option<impl Future<Output = anyhow::Result<Held>>>,
        mut report: impl FnMut(Step, &Outcome),
    ) -> Ran {
        let mut lock = lock;
        let mut ran = Ran { results: Vec::new(), usage: false, interrupted: false };
        // One listener for the whole run, made before the first step: a Ctrl-C that comes between
        // two steps (while one is reported) is kept for the next, where a listener made per step
        // would come too late to hear it, and tokio's handler would have swallowed it.
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::pin!(ctrl_c);
        for step in ALL_STEPS {
            let outcome = if self.options.skip.contains(&step) {
                Outcome::Skipped("--skip".into())
            } else if let Some(root) = blocker(step, &ran.results) {
                Outcome::Blocked(root)
            } else {
                let result = tokio::select! {
                    result = async {
                        if step != Step::Preflight && let Some(lock) = lock.take() {
                            self.lock = Some(lock.await?);
                        }
                        self.step(step).await
                    } => result,
                    _ = &mut ctrl_c => Err(Error::Interrupted.into()),
                };
                match result {
                    Ok(outcome) => outcome,
                    Err(err) => {
                        ran.interrupted =
                            err.chain().any(|c| matches!(c.downcast_ref::<Error>(), Some(Error::Interrupted)));
                        ran.usage |= exit_status_of(&err) == ExitStatus::Usage;
                        Outcome::Failed { message: format!("{err:#}"), hint: crate::engine::hint_of(&err) }
                    }
                }
            };
            report(step, &outcome);
            ran.results.push((step, outcome));
            if ran.interrupted {
                break;
            }
        }
        ran
    }

    pub(super) fn answer(&mut self, question: Question, value: toml::Value) -> anyhow::Result<()> {
        self.answers.retain(|(q, _)| *q != question);
        self.answers.push((question, value));
        self.config = parse(self.text()?.as_deref(), &self.path)?;
        Ok(())
    }

    /// The user's file as it will be: the base with the answers set.
    fn text(&self) -> anyhow::Result<Option<String>> {
        answers::apply(self.base.as_deref(), &self.answers)
    }

    async fn engine(&mut self) -> anyhow::Result<&Engine> {
        if self.engine.is_none() {
            let engine = Engine::connect(self.env).await?;
            self.front.detail(format!("engine: {}", engine.endpoint()));
            self.engine = Some(engine);
        }
        self.engine.as_ref().ok_or_else(|| anyhow::anyhow!("no engine connection"))
    }

    async fn aws(&mut self) -> anyhow::Result<Option<&Aws>> {
        if self.config.registry.storage() == Storage::Filesystem {
            return Ok(None);
        }
        if self.aws.is_none() {
            self.aws = Some(Aws::connect(&self.config.registry.s3).await?);
        }
        Ok(self.aws.as_ref())
    }

    fn loaded(&self) -> LoadedConfig {
        let source = match &self.source {
            ConfigSource::Defaults { would_be } if self.path.exists() => {
                ConfigSource::UserFile { path: would_be.clone() }
            }
            other => other.clone(),
        };
        LoadedConfig { config: self.config.clone(), source }
    }

    async fn step(&mut self, step: Step) -> anyhow::Result<Outcome> {
        match step {
            Step::Preflight => self.preflight().await,
            Step::Config => self.write_config(),
            Step::Registry => self.registry().await,
            Step::Pull => self.pull().await,
            Step::Clock => self.clock().await,
            Step::Schedules => self.schedules().await,
            Step::Doctor => self.doctor().await,
        }
    }

    /// The engine answers, the registry's port is free or devbox's own, and S3 answers when
    /// configured. A busy port is asked about here, on a terminal.
    async fn preflight(&mut self) -> anyhow::Result<Outcome> {
        let container = self.config.registry.container.clone();
        let engine = self.engine().await?;
        let info = engine.info().await?;
        let endpoint = engine.endpoint().to_string();
        let existing = engine.container(&container).await?;
        let port = self.config.registry.port;
        let ours = existing.as_ref().is_some_and(|c| {
            c.label(registry::LABEL_MANAGED) == Some("true")
                && c.published.iter().any(|p| p.ends_with(&format!(":{port}")))
        });
        let port_note = if ours {
            format!("port {port} is the registry's own")
        } else if port_free(port) {
            format!("port {port} is free")
        } else {
            self.choose_port(port)?
        };
        let storage = match self.aws().await? {
            Some(aws) => {
                let latency = aws.check_bucket().await?;
                let bucket = self.config.registry.s3.bucket.as_ref().map(|b| b.to_string()).unwrap_or_default();
                format!("s3://{bucket} answers ({} ms)", latency.as_millis())
            }
            None => "no S3 bucket: filesystem storage".into(),
        };
        Ok(Outcome::Checked(format!("Docker {} at {endpoint}; {port_note}; {storage}", info.server_version)))
    }

    /// Writes the user's file when it differs (atomically), showing the difference first and
    /// keeping the old one as `devbox.toml.<UTC time>.bak`.
    fn write_config(&mut self) -> anyhow::Result<Outcome> {
        let text = self.text()?;
        let from = self.team.as_ref().map(|t| format!(" (team config from {t})")).unwrap_or_default();
        let path = self.path.display().to_string();
        let Some(text) = text else {
            let storage = match self.config.registry.storage() {
                Storage::Filesystem => {
                    "filesystem storage, as no registry.s3.bucket is set (--bucket sets one; a laptop without AWS \
                     can still try devbox)"
                }
                Storage::S3 => "S3 storage",
            };
            return Ok(Outcome::Same(format!("built-in defaults ({path} not needed): {storage}")));
        };
        if self.current.as_deref() == Some(text.as_str()) {
            return Ok(Outcome::Same(format!("{path} is in place{from}")));
        }
        if let Some(old) = &self.current {
            let diff = team::diff(old, &text, &format!("{path} (now)"), &format!("{path} (new)"));
            for line in trust::mark_diff(&diff, old, &text) {
                self.front.diff_line(&line);
            }
        }
        if self.options.dry_run {
            return Ok(Outcome::WouldChange(format!("would write {path}{from}")));
        }
        let backup = match &self.current {
            Some(old) => {
                let stamp = jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ").to_string();
                let backup = self.path.with_file_name(format!("devbox.toml.{stamp}.bak"));
                write_if_changed(&backup, old.as_bytes())?;
                format!("; the old one is kept as {}", backup.display())
            }
            None => String::new(),
        };
        write_if_changed(&self.path, text.as_bytes())?;
        self.current = Some(text);
        Ok(Outcome::Changed(format!("wrote {path}{from}{backup}")))
    }

    async fn registry(&mut self) -> anyhow::Result<Outcome> {
        let config = self.config.registry.clone();
        if self.options.dry_run {
            let credentials = self.aws().await?.map(|a| a.credentials().clone());
            let action = registry::pending(self.engine().await?, &config, credentials.as_ref()).await?;
            return steps::registry_preview(&config.container, &config.image, action);
        }
        self.aws().await?;
        self.engine().await?;
        let engine = self.engine.as_ref().ok_or_else(|| anyhow::anyhow!("no engine connection"))?;
        let progress = self.front.progress();
        let service = Service::new(engine, &config, held(&self.lock)?);
        let up = service.up_with(self.aws.as_ref(), progress.as_ref()).await?;
        Ok(steps::registry(&up))
    }

    async fn pull(&mut self) -> anyhow::Result<Outcome> {
        let base = &self.config.images.base;
        if base.is_empty() {
            return Ok(Outcome::Same("no base images to pull (images.base is empty)".into()));
        }
        if self.options.dry_run {
            return Ok(Outcome::WouldChange(format!(
                "would pull the base images that are not current: {}",
                base.join(", ")
            )));
        }
        let images = crate::images::to_pull(&self.config, &[])?;
        self.engine().await?;
        let engine = self.engine.as_ref().ok_or_else(|| anyhow::anyhow!("no engine connection"))?;
        let progress = self.front.progress();
        let pulled = pull_and_record(engine, &self.config, &images, held(&self.lock)?, progress.as_ref()).await?;
        Ok(steps::pull(&pulled))
    }

    async fn clock(&mut self) -> anyhow::Result<Outcome> {
        let env = self.env;
        let classification = crate::clock::runtime::of_engine(self.engine().await?, env).await?;
        if !classification.vm {
            return Ok(Outcome::Same(format!(
                "{} shares this host's clock ({}): nothing to fix",
                classification.runtime.label(),
                classification.reason
            )));
        }
        if self.options.dry_run {
            return Ok(Outcome::WouldChange(format!(
                "would set the {} VM's clock if it is more than clock.max_skew off (devbox clock sync --if-skewed)",
                classification.runtime.label()
            )));
        }
        let report = self.front.clock_report(&self.config);
        let synced = crate::clock::sync::run(env, &self.config, true, false, report.as_ref()).await?;
        Ok(steps::clock(classification.runtime.label(), &synced))
    }

    async fn schedules(&mut self) -> anyhow::Result<Outcome> {
        let paths = Paths::resolve(self.env)?;
        let Some(backend) = schedule::backend_here(self.env, None, &paths)? else {
            let var = schedule::NO_SCHEDULER_VAR;
            return Ok(Outcome::Same(format!("no scheduler here ({var}=none): no jobs to install")));
        };
        let kind = backend.kind();
        self.front.detail(format!("scheduler: {kind}"));
        let loaded = self.loaded();
        // The clock job depends on the engine's kind; without an engine, it is left out and said so.
        let _ = self.engine().await;
        let engine = self.engine.as_ref();
        if self.options.dry_run {
            let (jobs, _) = schedule::planned_jobs(self.env, &loaded, engine).await;
            return Ok(steps::schedules_preview(kind, &schedule::not_installed(backend.as_ref(), &jobs)?));
        }
        let outcome = schedule::install(self.env, &loaded, engine, backend.as_ref(), &paths).await?;
        Ok(steps::schedules(kind, &outcome))
    }

    async fn doctor(&mut self) -> anyhow::Result<Outcome> {
        if self.options.dry_run {
            return Ok(Outcome::Skipped("a dry run: doctor checks the machine after the changes".into()));
        }
        let loaded = Ok(self.loaded());
        let selected = crate::doctor::selection(&[]);
        let report = crate::doctor::run::run(self.env, &loaded, &selected, self.config.doctor.timeout).await;
        if !report.failed() {
            return Ok(Outcome::Checked(report.summary()));
        }
        let failed: Vec<&str> =
            report.checks.iter().filter(|f| f.status == crate::doctor::Status::Fail).map(|f| f.id.name()).collect();
        Ok(Outcome::Failed {
            message: format!("{} (failed: {})", report.summary(), failed.join(", ")),
            hint: Some("Run `devbox doctor` for each problem and its fix.".into()),
        })
    }
}

/// The lock a step that changes the machine runs under: `run` was given it unless this is a dry run.
fn held(lock: &Option<Held>) -> anyhow::Result<&Held> {
    lock.as_ref().ok_or_else(|| anyhow::anyhow!("init changes the machine only under the state directory's lock"))
}

/// The config `text` makes, or the built-in defaults when there is no text.
fn parse(text: Option<&str>, path: &Path) -> anyhow::Result<Config> {
    Ok(match text {
        Some(text) => config::parse_str(text, path).map_err(Error::from)?,
        None => config::defaults().map_err(Error::from)?,
    })
}
