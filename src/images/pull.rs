//! Pulling base images through the local registry: a digest check first, then the pull, then the
//! production alias. The alias moves only once the new image is complete, so an interrupted pull
//! never leaves it pointing at something half-made, and a re-run finishes the job. Each good pull
//! is recorded in `pulls.json`, for `cleanup` and `doctor`.

use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::Serialize;

use super::{BaseImage, Outcome, PullError};
use crate::config::Config;
use crate::engine::Engine;
use crate::error::Error;
use crate::lock::Held;
use crate::progress::Progress;
use crate::registry::api::{ApiError, Manifest, RegistryApi};
use crate::registry::{self, Renewal, Service};
use crate::state::{PullRecord, PullRecords};

#[derive(Debug, Clone, Serialize)]
pub struct PullResult {
    #[serde(flatten)]
    pub image: BaseImage,
    #[serde(flatten)]
    pub outcome: Outcome,
    #[serde(serialize_with = "millis")]
    pub duration: Duration,
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

/// What a pull did to each image.
#[derive(Debug)]
pub struct Pulled {
    pub results: Vec<PullResult>,
    pub elapsed: Duration,
    /// The registry, when its credentials were due and the pull renewed them first.
    pub renewed: Option<crate::registry::Converged>,
    /// `pulls.json` was damaged and rebuilt: why (said under `-v`).
    pub rebuilt: Option<String>,
}

impl Pulled {
    fn count(&self, f: fn(&Outcome) -> bool) -> usize {
        self.results.iter().filter(|r| f(&r.outcome)).count()
    }
    pub fn updated(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Updated { .. }))
    }
    pub fn unchanged(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Unchanged { .. }))
    }
    pub fn failed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Failed { .. }))
    }
    /// `1 updated, 2 unchanged, 0 failed in 3.4s`
    pub fn summary(&self) -> String {
        format!(
            "{} updated, {} unchanged, {} failed in {:.1}s",
            self.updated(),
            self.unchanged(),
            self.failed(),
            self.elapsed.as_secs_f64()
        )
    }
    /// `base/go:1.23: not in the registry: base/go:1.23`, one for each image that failed.
    pub fn failures(&self) -> Vec<String> {
        self.results
            .iter()
            .filter_map(|r| match &r.outcome {
                Outcome::Failed { reason } => Some(format!("{}: {reason}", r.image.name)),
                _ => None,
            })
            .collect()
    }
}

/// Pulls `images` through the local registry, reporting only through `progress`, and records the
/// good pulls in the state directory that `lock` guards (it moves tags and writes records, so it
/// runs under the lock). The registry must answer first: starting it is `registry up`'s job,
/// never a side effect. Ctrl-C stops it with `Error::Interrupted`; no alias moves.
pub async fn pull_and_record(
    engine: &Engine,
    config: &Config,
    images: &[BaseImage],
    lock: &Held,
    progress: &dyn Progress,
) -> anyhow::Result<Pulled> {
    let state_dir = lock.state_dir();
    let url = config.registry.local_url();
    let api = RegistryApi::new(&url)?;
    // The weekly job may be the first to find the registry's credentials due: renew them first.
    let renewed = match Service::new(engine, &config.registry, lock).renew(progress).await? {
        Renewal::Renewed(up) => Some(up),
        Renewal::NotNeeded(_) | Renewal::Fresh { .. } => None,
    };
    if let Err(answer) = api.ping().await {
        let storage = if answer.answered() { storage_failure(engine, config, &answer).await } else { None };
        return Err(storage.unwrap_or(Error::RegistryDown { url: url.clone(), reason: answer.to_string() }).into());
    }

    let started = Instant::now();
    let results = tokio::select! {
        results = pull_all(engine, &api, images, config.images.concurrency, progress) => results,
        _ = tokio::signal::ctrl_c() => return Err(Error::Interrupted.into()),
    };
    let rebuilt = record(state_dir, &results)?;
    // A read the registry could not answer from its storage has one cause for every image: name it.
    let server_error = results.iter().find_map(|r| match &r.outcome {
        Outcome::Failed { reason } => reason.registry_answer().filter(|answer| answer.is_server_error()),
        _ => None,
    });
    if let Some(answer) = server_error
        && let Some(error) = storage_failure(engine, config, answer).await
    {
        return Err(error.into());
    }
    Ok(Pulled { results, elapsed: started.elapsed(), renewed, rebuilt })
}

/// The error for a registry that cannot read its storage, when its answer or its logs say why.
async fn storage_failure(engine: &Engine, config: &Config, answer: &ApiError) -> Option<Error> {
    let container = &config.registry.container;
    let cause = registry::storage_cause(engine, container, Some(answer)).await?;
    Some(registry::storage_error(container, &cause, "Then pull again."))
}

/// How stale `checked_at` may be before an unchanged pull rewrites it.
const RECHECK_RECORD_SECS: i64 = 3600;

/// Remembers each good pull in `pulls.json`, for `cleanup` and `doctor`. Returns a note when the
/// file was damaged, and so rebuilt from this pull.
fn record(state_dir: &Path, results: &[PullResult]) -> anyhow::Result<Option<String>> {
    let (mut records, rebuilt) = PullRecords::load_noting(state_dir);
    let now = jiff::Timestamp::now();
    for result in results {
        let (digest, pulled) = match &result.outcome {
            Outcome::Updated { new_digest, .. } => (new_digest, true),
            Outcome::Unchanged { digest } => (digest, false),
            Outcome::Failed { .. } => continue,
        };
        let existing = records.images.get(&result.image.local);
        // An unchanged image checked again within the hour keeps its record as it was, so a
        // re-run (`init` on a set-up machine) rewrites nothing.
        if !pulled
            && let Some(old) = existing
            && old.digest == *digest
            && now.duration_since(old.checked_at) < jiff::SignedDuration::from_secs(RECHECK_RECORD_SECS)
        {
            continue;
        }
        let previous = existing.and_then(|r| r.pulled_at);
        records.images.insert(
            result.image.local.clone(),
            PullRecord {
                pulled_at: if pulled { Some(now) } else { previous },
                checked_at: now,
                digest: digest.clone(),
            },
        );
    }
    records.save(state_dir)?;
    Ok(rebuilt)
}

/// Pulls every image, `concurrency` at a time. Results come back in the order of `images`; a
/// failure of one never stops the others.
pub async fn pull_all(
    engine: &Engine,
    api: &RegistryApi,
    images: &[BaseImage],
    concurrency: usize,
    progress: &dyn Progress,
) -> Vec<PullResult> {
    progress.plan(&images.iter().map(|i| i.name.clone()).collect::<Vec<_>>());
    let mut results: Vec<(usize, PullResult)> = futures_util::stream::iter(images.iter().enumerate())
        .map(|(index, image)| async move {
            let started = Instant::now();
            let outcome = pull_one(engine, api, image, progress).await;
            match &outcome {
                Outcome::Failed { reason } => progress.finish(&image.name, Err(&reason.to_string())),
                done => progress.finish(&image.name, Ok(&done.describe())),
            }
            (index, PullResult { image: image.clone(), outcome, duration: started.elapsed() })
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    results.sort_by_key(|(index, _)| *index);
    results.into_iter().map(|(_, result)| result).collect()
}

async fn pull_one(engine: &Engine, api: &RegistryApi, image: &BaseImage, progress: &dyn Progress) -> Outcome {
    match try_pull(engine, api, image, progress).await {
        Ok(outcome) => outcome,
        Err(reason) => Outcome::Failed { reason },
    }
}

async fn try_pull(
    engine: &Engine,
    api: &RegistryApi,
    image: &BaseImage,
    progress: &dyn Progress,
) -> Result<Outcome, PullError> {
    let remote = match api.manifest(&image.repo, &image.tag).await? {
        Manifest::NotFound => return Err(PullError::NotInRegistry(image.name.clone())),
        Manifest::Found(digest) => digest,
    };
    let before = engine.image(&image.local).await?;
    let old_digest = before.as_ref().and_then(|i| i.digest_in(image.local_repo())).map(String::from);
    if old_digest.as_deref() == Some(remote.as_str()) {
        ensure_alias(engine, image).await?;
        return Ok(Outcome::Unchanged { digest: remote });
    }

    progress.start(&image.name);
    let pulled = engine.pull_image(&image.local, &image.name, progress).await;
    // bollard can report a spurious end-of-stream error after a complete pull; the engine's own
    // view of the image decides whether the pull failed.
    let after = engine.image(&image.local).await?;
    let new_digest = after.as_ref().and_then(|i| i.digest_in(image.local_repo())).map(String::from);
    let new_digest = match (pulled, new_digest) {
        (Ok(()), Some(digest)) => digest,
        (Err(_), Some(digest)) if digest == remote => digest,
        (Err(reason), _) => return Err(reason.into()),
        (Ok(()), None) => return Err(PullError::Missing(image.local.clone())),
    };
    ensure_alias(engine, image).await?;
    if Some(&new_digest) == old_digest.as_ref() {
        return Ok(Outcome::Unchanged { digest: new_digest });
    }
    Ok(Outcome::Updated { old_digest, new_digest })
}

/// Points the production alias at the local image, touching nothing when it already does.
async fn ensure_alias(engine: &Engine, image: &BaseImage) -> Result<(), PullError> {
    let Some(alias) = &image.alias else { return Ok(()) };
    let local = engine.image(&image.local).await?;
    let current = engine.image(alias).await?;
    match (local, current) {
        (Some(local), Some(current)) if local.id == current.id => Ok(()),
        (Some(_), _) => Ok(engine.tag_image(&image.local, alias).await?),
        (None, _) => Err(PullError::NotOnEngine(image.local.clone())),
    }
}
