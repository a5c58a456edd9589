//! The Docker engine: it answers, and what it says of itself. Its connection serves every check
//! that reads the engine; this check reports it.

use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use super::Probe;
use crate::clock::{
    self, Reading,
    runtime::{self, Classification},
};
use crate::doctor::{CheckId, Finding};
use crate::engine::{Engine, EngineInfo};
use crate::env::Environment;

/// A connected engine, what it says of itself, and its clock as read with that answer.
pub struct EngineFacts {
    pub engine: Arc<Engine>,
    pub info: EngineInfo,
    pub classification: Classification,
    pub clock: Reading,
}

pub fn check<'p>(probe: &'p Probe<'_>) -> BoxFuture<'p, Finding> {
    probe.engine_finding().boxed()
}

/// The engine's connection, which the checks that only inspect (the registry container) use while
/// its info and clock are still being read.
pub async fn connect(env: &Environment) -> Result<Arc<Engine>, Finding> {
    Engine::connect(env).await.map(Arc::new).map_err(|err| {
        let hint = err.hint().unwrap_or_default();
        Finding::fail(CheckId::Engine, err.to_string()).hint(hint)
    })
}

/// What the connected engine says of itself: one `GET /info` serves this check, the disk's data
/// directory and the engine's clock.
pub async fn facts(env: &Environment, engine: Arc<Engine>) -> (Finding, Option<EngineFacts>) {
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
