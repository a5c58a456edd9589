//! The doctor's checks, as a table: for each, what it needs and how it runs (and so whether it
//! needs the engine). The runner (`run.rs`) derives everything else from these records: the order,
//! what starts at once, what waits for the engine, what is skipped.
//!
//! Each check lives in its own file, split in two where it pays: the measuring (I/O, thin) and the
//! judging (pure, with unit tests), as `devbox clock check` and `cleanup` are.

pub mod aws;
pub mod clock;
pub mod config;
pub mod disk;
pub mod engine;
pub mod images;
pub mod network;
pub mod registry;
pub mod registry_pin;
pub mod schedules;
pub mod security;
pub mod signatures;
pub mod version;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};

use super::{CheckId, Finding, Status};
use crate::config::{Config, LoadedConfig};
use crate::engine::{ContainerInfo, EngineError};
use crate::env::Environment;
pub use engine::EngineFacts;
pub use images::Digests;

/// One check, as the runner sees it.
pub struct CheckSpec {
    pub id: CheckId,
    /// The checks whose success this one needs. A failed dependency makes it "skipped", whatever
    /// it found.
    pub needs: &'static [CheckId],
    /// What it does, and so whether and how it uses the engine.
    pub run: Run,
}

/// A check's function, by how it uses the Docker engine (which the runner connects to once, for
/// all of them).
#[derive(Clone, Copy)]
pub enum Run {
    /// Judges the configuration as it loaded. It comes first: every other check reads the
    /// configuration, and none runs without it.
    First(fn(&Result<LoadedConfig, anyhow::Error>) -> Finding),
    /// Needs no engine: starts at once, under its own timeout.
    Alone(for<'p, 'a> fn(&'p Probe<'a>) -> BoxFuture<'p, Finding>),
    /// Reads the engine if it answers: measures at once, bounding its own reads (a clock that does
    /// not answer is a finding, not a timeout), then judges with what the engine said, or without.
    ThenEngine(for<'p, 'a> fn(&'p Probe<'a>) -> BoxFuture<'p, Judge<'p>>),
    /// Works on the engine: starts when the engine answers, under its own timeout, and finds
    /// nothing when it does not (the engine's failure makes it "skipped").
    OnEngine(for<'p, 'a> fn(&'p Probe<'a>, &'p EngineFacts) -> BoxFuture<'p, Finding>),
}

/// The second half of a `Run::ThenEngine` check: pure, given what was measured.
pub type Judge<'p> = Box<dyn FnOnce(Option<&EngineFacts>) -> Finding + Send + 'p>;

impl CheckId {
    /// This check's record.
    pub fn spec(self) -> CheckSpec {
        use CheckId::*;
        let (needs, run): (&'static [CheckId], Run) = match self {
            Config => (&[], Run::First(config::check)),
            // The engine check reports the connection every engine-reading check shares.
            Engine => (&[Config], Run::Alone(engine::check)),
            Disk => (&[Engine], Run::OnEngine(disk::check)),
            RegistryContainer => (&[Engine], Run::OnEngine(registry::container)),
            // The API check needs no engine of its own, but a registry to talk to.
            RegistryApi => (&[RegistryContainer], Run::Alone(registry::api)),
            // The proxy and the CAs: it reads the registry container's log when there is one.
            Network => (&[Config], Run::Alone(network::check)),
            AwsCredentials => (&[Config], Run::Alone(aws::check)),
            // The clock check reads the engine's clock when it can, and S3's in any case.
            Clock => (&[Config], Run::ThenEngine(clock::measure)),
            BaseImages => (&[RegistryApi], Run::OnEngine(images::check)),
            // What the aliases point to, against what pull recorded: the engine and the state directory.
            ImageSignatures => (&[Engine], Run::OnEngine(signatures::check)),
            // Whether the clock job is expected depends on the engine running in a VM.
            Schedules => (&[Config], Run::ThenEngine(schedules::measure)),
            PushCredentials => (&[Config], Run::Alone(security::check)),
            Version => (&[Config], Run::Alone(version::check)),
        };
        CheckSpec { id: self, needs, run }
    }
}

/// What the checks of one run share: the configuration, the timeout, and the answers that serve
/// more than one check. Each answer is asked for once, by the first check that wants it, and
/// shared by the rest.
pub struct Probe<'a> {
    pub env: &'a Environment,
    pub config: &'a Config,
    pub timeout: Duration,
    engine: Shared<BoxFuture<'a, (Finding, Option<Arc<EngineFacts>>)>>,
    digests: Shared<BoxFuture<'a, Digests>>,
    registry: Shared<BoxFuture<'a, RegistryContainer>>,
}

/// The registry container as the engine describes it: `Ok(None)` when there is none, `Err` when
/// it could not be looked at.
pub type RegistryContainer = Result<Option<Arc<ContainerInfo>>, ContainerUnseen>;

/// Why the registry container could not be looked at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContainerUnseen {
    /// No engine answered; the engine check says why.
    #[error("the engine did not answer, so the registry container was not looked at")]
    NoEngine,
    /// The engine answered, but not to the container's inspect (its error names the container).
    #[error(transparent)]
    Inspect(#[from] EngineError),
}

impl ContainerUnseen {
    /// What to do next.
    pub fn hint(&self) -> String {
        let engine = || "See the engine check (`devbox doctor --check engine`), then run doctor again.".to_string();
        match self {
            ContainerUnseen::NoEngine => engine(),
            ContainerUnseen::Inspect(err) => err.hint().unwrap_or_else(engine),
        }
    }
}

impl<'a> Probe<'a> {
    pub fn new(env: &'a Environment, config: &'a Config, timeout: Duration) -> Probe<'a> {
        // The connection serves the registry's inspect at once; the engine's info and clock
        // (the slowest requests) are read meanwhile.
        let connection = async move {
            tokio::time::timeout(timeout, engine::connect(env))
                .await
                .unwrap_or_else(|_| Err(timed_out(CheckId::Engine, timeout)))
        }
        .boxed()
        .shared();
        let connected = connection.clone();
        let engine = async move {
            let started = Instant::now();
            let facts = async move {
                match connected.await {
                    Ok(engine) => engine::facts(env, engine).await,
                    Err(finding) => (finding, None),
                }
            };
            let (mut finding, facts) = tokio::time::timeout(timeout, facts)
                .await
                .unwrap_or_else(|_| (timed_out(CheckId::Engine, timeout), None));
            finding.duration = started.elapsed();
            (finding, facts.map(Arc::new))
        };
        let digests = async move {
            let digests = images::registry_digests(config);
            tokio::time::timeout(timeout, digests)
                .await
                .unwrap_or_else(|_| Err(timed_out(CheckId::BaseImages, timeout)))
        };
        let engine = engine.boxed().shared();
        let registry = async move {
            let engine = connection.await.map_err(|_| ContainerUnseen::NoEngine)?;
            Ok(engine.container(&config.registry.container).await?.map(Arc::new))
        };
        Probe { env, config, timeout, engine, digests: digests.boxed().shared(), registry: registry.boxed().shared() }
    }

    /// The registry container, inspected once for the checks that read it.
    pub async fn registry_container(&self) -> RegistryContainer {
        self.registry.clone().await
    }

    /// The connected engine, or `None` when it did not answer (the engine check says why).
    pub async fn engine(&self) -> Option<Arc<EngineFacts>> {
        self.engine.clone().await.1
    }

    /// The engine check's finding about that connection.
    pub async fn engine_finding(&self) -> Finding {
        self.engine.clone().await.0
    }

    /// The registry's digest of each base image. Its reads prove the registry's storage and show
    /// whether the engine's images are current, so two checks share them.
    pub async fn digests(&self) -> Digests {
        self.digests.clone().await
    }
}

pub fn timed_out(id: CheckId, timeout: Duration) -> Finding {
    Finding::new(id, Status::Fail, format!("no answer within {}s", timeout.as_secs_f32()))
        .hint("Something this check talks to is frozen or unreachable; the details of the other checks say which.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dependency_comes_earlier_in_the_report() {
        for id in CheckId::ALL {
            for dep in id.spec().needs {
                assert!(dep < &id, "{} depends on {}, listed after it", id.name(), dep.name());
            }
        }
    }

    #[test]
    fn what_works_on_the_engine_needs_the_engine_check() {
        for id in CheckId::ALL.into_iter().filter(|id| matches!(id.spec().run, Run::OnEngine(_))) {
            assert!(super::super::selection(&[id]).contains(&CheckId::Engine), "{}", id.name());
        }
    }

    #[test]
    fn only_the_config_check_comes_first() {
        for id in CheckId::ALL {
            assert_eq!(matches!(id.spec().run, Run::First(_)), id == CheckId::Config, "{}", id.name());
            assert_eq!(id.spec().id, id);
        }
    }
}
