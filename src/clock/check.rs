//! `clock check`: the three clocks read at once, the skews between them, and whether the registry
//! can still reach S3 (AWS refuses a request whose time is off). Thin I/O around the pure judges
//! in `mod.rs`; the single clocks are read in `measure.rs`.

use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;

use super::{Classification, ClockName, Reading, Skew, measure, runtime, skews};
use crate::config::{Config, RegistryConfig, S3Config, Storage};
use crate::engine::Engine;
use crate::env::Environment;
use crate::registry::{self, api::RegistryApi};

/// How long finding the engine may take before its clock is reported as not read: a ping, then
/// the version, which podman in a slow VM takes seconds to gather.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The three clocks, read at once, and what devbox learnt about the engine on the way.
pub struct Measurement {
    pub readings: Vec<Reading>,
    pub engine: Option<Engine>,
    pub classification: Option<Classification>,
}

impl Measurement {
    pub fn reading(&self, clock: ClockName) -> Option<&Reading> {
        self.readings.iter().find(|r| r.clock == clock)
    }
}

/// Reads the host's clock, then the engine's and S3's concurrently. A clock that cannot be read
/// is a reading with its reason; the others are still taken.
pub async fn measure_all(env: &Environment, s3: &S3Config) -> Measurement {
    let host = Reading::host(Timestamp::now());
    let engine_side = async {
        let engine = match tokio::time::timeout(CONNECT_TIMEOUT, Engine::connect(env)).await {
            Ok(Ok(engine)) => engine,
            Ok(Err(e)) => {
                return (Reading::failed(ClockName::Engine, "the Docker engine", e.to_string()), None, None);
            }
            Err(_) => {
                let why = format!("finding the engine took longer than {}s", CONNECT_TIMEOUT.as_secs());
                return (Reading::failed(ClockName::Engine, "the Docker engine", why), None, None);
            }
        };
        let (reading, info) = measure::engine_clock(&engine).await;
        let classification = info.map(|info| {
            let detected = runtime::classify(&info, engine.endpoint(), std::env::consts::OS);
            runtime::effective(detected, env)
        });
        (reading, Some(engine), classification)
    };
    let ((engine_reading, engine, classification), s3) = tokio::join!(engine_side, measure::s3_reading(s3));
    Measurement { readings: vec![host, engine_reading, s3], engine, classification }
}

/// What `clock check` found.
pub struct Checked {
    pub measurement: Measurement,
    pub skews: Vec<Skew>,
    /// `None` when the engine did not answer, so the registry could not be asked.
    pub registry: Option<RegistryAccess>,
    /// A skew above 5 minutes.
    pub failed: bool,
}

/// Measures the three clocks, judges the skews against `clock.max_skew`, and asks the registry
/// whether S3 still accepts it.
pub async fn check(env: &Environment, config: &Config) -> Checked {
    let measurement = measure_all(env, &config.registry.s3).await;
    let skews = skews(&measurement.readings, config.clock.max_skew);
    let registry = match &measurement.engine {
        Some(engine) => Some(
            registry_access(engine, &config.registry)
                .await
                .unwrap_or_else(|e| RegistryAccess::Refused(format!("cannot ask the registry: {e:#}"))),
        ),
        None => None,
    };
    let failed = skews.iter().any(|s| s.verdict.is_failure());
    Checked { measurement, skews, registry, failed }
}

/// Whether the registry container can reach S3, through a real request to it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", content = "detail", rename_all = "snake_case")]
pub enum RegistryAccess {
    /// Not S3-backed, not there, not running, or not devbox's: nothing about the clock to check.
    NotApplicable(String),
    Ok,
    Refused(String),
}

/// Asks the registry for its catalog, which it reads from S3.
pub async fn registry_access(engine: &Engine, config: &RegistryConfig) -> anyhow::Result<RegistryAccess> {
    if config.storage() != Storage::S3 {
        return Ok(RegistryAccess::NotApplicable("the registry uses filesystem storage".into()));
    }
    match engine.container(&config.container).await? {
        None => return Ok(RegistryAccess::NotApplicable(format!("no container {}", config.container))),
        Some(c) if !c.is_running() => {
            return Ok(RegistryAccess::NotApplicable(format!("container {} is {}", config.container, c.state)));
        }
        Some(c) if c.label(registry::LABEL_MANAGED) != Some("true") => {
            return Ok(RegistryAccess::NotApplicable(format!("container {} is not devbox's", config.container)));
        }
        Some(_) => {}
    }
    Ok(match RegistryApi::new(&config.local_url())?.read_through(None).await {
        Ok(_) => RegistryAccess::Ok,
        Err(why) => RegistryAccess::Refused(why.to_string()),
    })
}
