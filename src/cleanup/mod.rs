//! Cleanup: gather the listing, compute the plan (`plan.rs`, pure), and carry it out. Removals are
//! never forced, so the engine itself refuses anything that came into use since the listing.

pub mod plan;

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::Serialize;

use crate::config::Config;
use crate::engine::{Engine, RemoveError};
use plan::{Clocks, Plan, Policy, Pulls, Removal};

/// How many removals run at once.
pub const REMOVAL_CONCURRENCY: usize = 8;

/// The policy in force, from the config.
pub fn policy(config: &Config) -> Policy {
    let registry = &config.registry;
    let mut protected_images: Vec<String> = Vec::new();
    for name in &config.images.base {
        protected_images.push(format!("127.0.0.1:{}/{name}", registry.port));
        if !config.images.alias.is_empty() {
            protected_images.push(config.images.alias.replace("{name}", name));
        }
    }
    protected_images.push(registry.image.clone());
    Policy {
        older_than: config.cleanup.older_than,
        keep_labels: config.cleanup.keep_labels.clone(),
        build_cache: config.cleanup.build_cache,
        max_disk: config.cleanup.max_disk.map(|s| s.0),
        protected_images,
        managed_label: crate::registry::LABEL_MANAGED.to_string(),
        max_skew: config.clock.max_skew,
    }
}

/// The pulls devbox recorded (`<state_dir>/pulls.json`, written by `devbox pull`). No file, or an
/// unreadable one, means no record: cleanup then judges by creation and container starts alone.
pub fn read_pulls(state_dir: &Path) -> Pulls {
    let records = crate::state::PullRecords::load(state_dir);
    records
        .images
        .into_iter()
        .filter_map(|(reference, record)| Some((plan::normalize_reference(&reference), record.pulled_at?)))
        .collect()
}

/// Lists the engine and computes the plan. The engine's clock is read once, before the listing:
/// that one instant is the plan's "now", for every age and for the cutoff.
pub async fn make_plan(engine: &Engine, policy: &Policy, pulls: &Pulls) -> anyhow::Result<Plan> {
    let info = engine.info().await?;
    make_plan_at(engine, policy, pulls, info.system_time).await
}

/// `make_plan` for a caller that has just read the engine's clock (`engine_time`, from its info):
/// one request fewer, which in a slow VM is a good part of a second.
pub async fn make_plan_at(
    engine: &Engine,
    policy: &Policy,
    pulls: &Pulls,
    engine_time: Option<jiff::Timestamp>,
) -> anyhow::Result<Plan> {
    let host = jiff::Timestamp::now();
    let clocks = Clocks { engine: engine_time.unwrap_or(host), host };
    let (containers, images) = tokio::try_join!(engine.list_containers(), engine.list_images())?;
    Ok(plan::plan(&containers, &images, policy, clocks, pulls))
}

/// The engine's data disk, measured where it is (inside the VM of a VM engine), and what the
/// engine is, for the reports. `Err` says why it was not measured.
pub async fn engine_disk(
    engine: &Engine,
    env: &crate::env::Environment,
    config: &Config,
) -> Result<(crate::disk::DiskUsage, crate::clock::Classification), crate::disk::DiskError> {
    let info = engine.info().await?;
    let classification = crate::clock::runtime::effective(
        crate::clock::runtime::classify(&info, engine.endpoint(), std::env::consts::OS),
        env,
    );
    let usage = crate::disk::measure(engine, &classification, &info.docker_root_dir, &config.registry, None).await?;
    Ok((usage, classification))
}

/// What happened to one category of the plan.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Step {
    pub removed: Vec<String>,
    /// Refused by the engine, with its reason.
    pub failed: Vec<(String, String)>,
    /// Not tried, because the engine stopped answering first.
    pub not_attempted: Vec<String>,
    pub space_freed: u64,
    /// Where `space_freed` comes from.
    pub space_source: &'static str,
    /// The engine's prune removed these too: they matched the policy's filters at that moment
    /// (e.g. an image that lost its tag during the run).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub also_removed: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub containers: Step,
    pub dangling_images: Step,
    pub evicted_images: Step,
    pub build_cache: Option<Step>,
    pub seconds: f64,
    /// Set when the engine stopped answering part-way: the report is partial.
    pub engine_lost: Option<String>,
}

impl Outcome {
    pub fn failures(&self) -> usize {
        [&self.containers, &self.dangling_images, &self.evicted_images]
            .into_iter()
            .chain(self.build_cache.as_ref())
            .map(|s| s.failed.len() + s.not_attempted.len())
            .sum()
    }

    pub fn space_freed(&self) -> u64 {
        [&self.containers, &self.dangling_images, &self.evicted_images]
            .into_iter()
            .chain(self.build_cache.as_ref())
            .map(|s| s.space_freed)
            .sum()
    }
}

/// Carries out the plan: containers first (so their images fall out of use), then dangling
/// images, then evictions, then the build cache. Stops at the first sign the engine is gone.
pub async fn carry_out(engine: &Engine, plan: &Plan, older_than: Duration) -> Outcome {
    let started = Instant::now();
    let lost = LostFlag::default();

    let containers = remove_each(&plan.containers, &lost, "container sizes reported by the engine", |r| async move {
        engine.remove_stopped_container(&r.id).await
    })
    .await;

    let dangling = if lost.is_set() {
        not_attempted(&plan.dangling_images)
    } else if plan.dangling_by_prune && !plan.dangling_images.is_empty() {
        prune_dangling(engine, plan, &lost).await
    } else {
        remove_each(&plan.dangling_images, &lost, "image sizes as listed by the engine", |r| async move {
            engine.remove_image(&r.id).await
        })
        .await
    };

    let evicted = remove_each(&plan.evicted_images, &lost, "image sizes as listed by the engine", |r| async move {
        for tag in &r.tags {
            match engine.remove_image(tag).await {
                Ok(()) | Err(RemoveError::Gone) => {}
                Err(e) => return Err(e),
            }
        }
        // The last tag usually takes the image with it; a digest reference can keep it.
        match engine.remove_image(&r.id).await {
            Ok(()) | Err(RemoveError::Gone) => Ok(()),
            Err(e) => Err(e),
        }
    })
    .await;

    let build_cache = if !plan.build_cache {
        None
    } else if lost.is_set() {
        Some(Step { not_attempted: vec!["build cache".into()], ..Step::default() })
    } else {
        let mut step = Step { space_source: "the engine's build prune answer", ..Step::default() };
        match engine.prune_build_cache(older_than).await {
            Ok(pruned) => {
                step.removed = pruned.deleted;
                step.space_freed = pruned.space_reclaimed;
            }
            Err(RemoveError::Unreachable(why)) => {
                lost.set(&why);
                step.not_attempted.push("build cache".into());
            }
            Err(RemoveError::Refused(why)) => step.failed.push(("build cache".into(), why)),
            Err(RemoveError::Gone) => {}
        }
        Some(step)
    };

    Outcome {
        containers,
        dangling_images: dangling,
        evicted_images: evicted,
        build_cache,
        seconds: started.elapsed().as_secs_f64(),
        engine_lost: lost.reason(),
    }
}

async fn prune_dangling(engine: &Engine, plan: &Plan, lost: &LostFlag) -> Step {
    let mut step = Step { space_source: "the engine's image prune answer", ..Step::default() };
    let planned: HashSet<&str> = plan.dangling_images.iter().map(|r| r.id.as_str()).collect();
    match engine.prune_dangling_images(plan.cutoff.as_second(), &plan.prune_exclude_labels).await {
        Ok(pruned) => {
            let deleted: HashSet<&str> = pruned.deleted.iter().map(String::as_str).collect();
            for removal in &plan.dangling_images {
                if deleted.contains(removal.id.as_str()) {
                    step.removed.push(removal.id.clone());
                } else {
                    step.failed
                        .push((removal.id.clone(), "the engine kept it (in use, or changed since the listing)".into()));
                }
            }
            // The answer also names each deleted layer; only images the plan meant to keep matter here.
            let kept: HashSet<String> =
                plan.kept.iter().filter(|k| k.kind == plan::Kind::Image).map(|k| k.id.clone()).collect();
            step.also_removed = pruned
                .deleted
                .iter()
                .filter(|id| !planned.contains(id.as_str()) && kept.contains(&plan::short_id(id)))
                .cloned()
                .collect();
            step.space_freed = pruned.space_reclaimed;
        }
        Err(RemoveError::Unreachable(why)) => {
            lost.set(&why);
            step.not_attempted = plan.dangling_images.iter().map(|r| r.id.clone()).collect();
        }
        Err(RemoveError::Refused(why)) => {
            step.failed = plan.dangling_images.iter().map(|r| (r.id.clone(), why.clone())).collect();
        }
        Err(RemoveError::Gone) => {}
    }
    step
}

/// Removes each item with bounded concurrency. Once the engine is lost, the rest are not tried.
async fn remove_each<'a, F, Fut>(items: &'a [Removal], lost: &LostFlag, source: &'static str, remove: F) -> Step
where
    F: Fn(&'a Removal) -> Fut,
    Fut: Future<Output = Result<(), RemoveError>>,
{
    let results = futures_util::stream::iter(items)
        .map(|item| {
            let attempt = (!lost.is_set()).then(|| remove(item));
            async move {
                match attempt {
                    None => (item, None),
                    Some(fut) => (item, Some(fut.await)),
                }
            }
        })
        .buffer_unordered(REMOVAL_CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    let mut step = Step { space_source: source, ..Step::default() };
    for (item, result) in results {
        match result {
            None => step.not_attempted.push(item.id.clone()),
            Some(Ok(())) => {
                step.removed.push(item.id.clone());
                step.space_freed += item.size.unwrap_or(0);
            }
            // Someone else removed it meanwhile: it is gone, but not by us, and freed nothing for us.
            Some(Err(RemoveError::Gone)) => step.failed.push((item.id.clone(), "already gone".into())),
            Some(Err(RemoveError::Refused(why))) => step.failed.push((item.id.clone(), why)),
            Some(Err(RemoveError::Unreachable(why))) => {
                lost.set(&why);
                step.not_attempted.push(item.id.clone());
            }
        }
    }
    step
}

fn not_attempted(items: &[Removal]) -> Step {
    Step { not_attempted: items.iter().map(|r| r.id.clone()).collect(), ..Step::default() }
}

/// Whether the engine has stopped answering, and why.
#[derive(Default)]
struct LostFlag {
    flag: AtomicBool,
    reason: std::sync::Mutex<Option<String>>,
}

impl LostFlag {
    fn is_set(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    fn set(&self, why: &str) {
        self.flag.store(true, Ordering::SeqCst);
        if let Ok(mut reason) = self.reason.lock() {
            reason.get_or_insert_with(|| why.to_string());
        }
    }

    fn reason(&self) -> Option<String> {
        self.reason.lock().ok().and_then(|r| r.clone())
    }
}
