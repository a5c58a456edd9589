//! What cleanup needs from the engine: the listing of containers and images in devbox's terms, and
//! the removals and prunes that carry out a plan. Part of the engine module, so bollard stays here.

use std::collections::HashMap;
use std::time::Duration;

use bollard::query_parameters::{
    InspectContainerOptionsBuilder, ListContainersOptionsBuilder, ListImagesOptionsBuilder, PruneBuildOptionsBuilder,
    PruneImagesOptionsBuilder, RemoveContainerOptionsBuilder, RemoveImageOptionsBuilder,
};
use futures_util::StreamExt;
use jiff::Timestamp;

use super::{Engine, EngineError, engine_message};

/// How many inspections run at once while listing.
const INSPECT_CONCURRENCY: usize = 16;

/// One container, with what the cleanup policy judges it by.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ContainerEntry {
    pub id: String,
    pub name: String,
    /// The image as the container was created from it (a reference or an ID).
    pub image: String,
    /// The image's ID (`sha256:…`), which is what keeps an image in use.
    pub image_id: String,
    /// "created", "running", "paused", "restarting", "removing", "exited" or "dead"
    pub state: String,
    pub labels: HashMap<String, String>,
    pub created: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    /// The writable layer's size as the engine reports it (stopped containers only).
    pub size_rw: Option<u64>,
}

/// One image (top-level: `docker images`, not `-a`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ImageEntry {
    pub id: String,
    /// Tags such as `alpine:3.20`; empty for a dangling image.
    pub tags: Vec<String>,
    /// References such as `repo@sha256:…`.
    pub digests: Vec<String>,
    pub created: Timestamp,
    pub size: u64,
    pub labels: HashMap<String, String>,
}

/// Why one removal did not happen.
#[derive(Debug, Clone, PartialEq)]
pub enum RemoveError {
    /// The engine answered and refused (in use, running, conflict…).
    Refused(String),
    /// It was already gone.
    Gone,
    /// The engine did not answer (stopped, crashed, timed out).
    Unreachable(String),
}

/// What a prune endpoint answered.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pruned {
    /// IDs the engine deleted.
    pub deleted: Vec<String>,
    pub space_reclaimed: u64,
}

impl Engine {
    /// Every container, with finish and start times and sizes for those that are not running.
    pub async fn list_containers(&self) -> Result<Vec<ContainerEntry>, EngineError> {
        let options = ListContainersOptionsBuilder::default().all(true).build();
        let listing = self.call("listing containers", self.docker.list_containers(Some(options))).await?;
        let entries = futures_util::stream::iter(listing)
            .map(|summary| async move {
                let id = summary.id.clone().unwrap_or_default();
                let state = summary.state.map(|s| s.to_string()).unwrap_or_default();
                let mut entry = ContainerEntry {
                    name: summary
                        .names
                        .and_then(|n| n.into_iter().next())
                        .map(|n| n.trim_start_matches('/').to_string())
                        .unwrap_or_default(),
                    image: summary.image.unwrap_or_default(),
                    image_id: summary.image_id.unwrap_or_default(),
                    labels: summary.labels.unwrap_or_default(),
                    created: Timestamp::from_second(summary.created.unwrap_or(0)).unwrap_or(Timestamp::UNIX_EPOCH),
                    started_at: None,
                    finished_at: None,
                    size_rw: None,
                    state,
                    id,
                };
                // Running containers are never removed, so only the others need their times and size.
                if !matches!(entry.state.as_str(), "running" | "paused" | "restarting") {
                    let options = InspectContainerOptionsBuilder::default().size(true).build();
                    let what = format!("inspecting container {}", entry.name);
                    let Some(inspect) =
                        self.call_optional(&what, self.docker.inspect_container(&entry.id, Some(options))).await?
                    else {
                        return Ok::<_, EngineError>(None);
                    };
                    let state = inspect.state.unwrap_or_default();
                    entry.started_at = state.started_at.as_deref().and_then(engine_time);
                    entry.finished_at = state.finished_at.as_deref().and_then(engine_time);
                    entry.size_rw = inspect.size_rw.map(|s| s.max(0) as u64);
                }
                Ok::<_, EngineError>(Some(entry))
            })
            .buffer_unordered(INSPECT_CONCURRENCY)
            .collect::<Vec<_>>()
            .await;
        let mut out = Vec::new();
        for entry in entries {
            out.extend(entry?);
        }
        out.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.id.cmp(&b.id)));
        Ok(out)
    }

    /// The IDs of the containers labelled `key=value`, created before `before`, that are not
    /// running (created, exited or dead), without inspecting them.
    pub async fn stopped_labelled(
        &self,
        key: &str,
        value: &str,
        before: Timestamp,
    ) -> Result<Vec<String>, EngineError> {
        let filters = HashMap::from([
            ("label".to_string(), vec![format!("{key}={value}")]),
            ("status".to_string(), vec!["created".to_string(), "exited".to_string(), "dead".to_string()]),
        ]);
        let options = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
        let listing = self.call("listing stopped containers", self.docker.list_containers(Some(options))).await?;
        let old = |summary: &bollard::models::ContainerSummary| summary.created.is_some_and(|t| t < before.as_second());
        Ok(listing.into_iter().filter(old).filter_map(|summary| summary.id).collect())
    }

    /// Every top-level image.
    pub async fn list_images(&self) -> Result<Vec<ImageEntry>, EngineError> {
        let options = ListImagesOptionsBuilder::default().all(false).build();
        let listing = self.call("listing images", self.docker.list_images(Some(options))).await?;
        let real = |refs: Vec<String>| refs.into_iter().filter(|r| !r.starts_with("<none>")).collect::<Vec<_>>();
        let mut out: Vec<ImageEntry> = listing
            .into_iter()
            .map(|image| ImageEntry {
                tags: real(image.repo_tags),
                digests: real(image.repo_digests),
                created: Timestamp::from_second(image.created).unwrap_or(Timestamp::UNIX_EPOCH),
                size: image.size.max(0) as u64,
                labels: image.labels,
                id: image.id,
            })
            .collect();
        out.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Removes a stopped container. Never forced, so a container that started since the listing
    /// is refused by the engine; its volumes stay.
    pub async fn remove_stopped_container(&self, id: &str) -> Result<(), RemoveError> {
        let options = RemoveContainerOptionsBuilder::default().force(false).v(false).build();
        let request = self.docker.remove_container(id, Some(options));
        classify(tokio::time::timeout(self.timeout, request).await).map(|_| ())
    }

    /// Removes one image reference (a tag, or an ID). Never forced, so an image in use stays.
    pub async fn remove_image(&self, reference: &str) -> Result<(), RemoveError> {
        let options = RemoveImageOptionsBuilder::default().force(false).noprune(false).build();
        let request = self.docker.remove_image(reference, Some(options), None);
        classify(tokio::time::timeout(self.timeout, request).await).map(|_| ())
    }

    /// `POST /images/prune` for dangling images created before `until` (unix seconds), except those
    /// carrying one of `exclude_labels` (`key` or `key=value`). The engine also skips images in use.
    pub async fn prune_dangling_images(&self, until: i64, exclude_labels: &[String]) -> Result<Pruned, RemoveError> {
        let mut filters = HashMap::from([
            ("dangling".to_string(), vec!["true".to_string()]),
            ("until".to_string(), vec![until.to_string()]),
        ]);
        if !exclude_labels.is_empty() {
            filters.insert("label!".to_string(), exclude_labels.to_vec());
        }
        let options = PruneImagesOptionsBuilder::default().filters(&filters).build();
        let answer = classify(tokio::time::timeout(self.timeout * 6, self.docker.prune_images(Some(options))).await)?;
        Ok(Pruned {
            deleted: answer.images_deleted.unwrap_or_default().into_iter().filter_map(|item| item.deleted).collect(),
            space_reclaimed: answer.space_reclaimed.unwrap_or(0).max(0) as u64,
        })
    }

    /// `POST /build/prune` (`docker builder prune` semantics) for cache unused for `older_than`.
    pub async fn prune_build_cache(&self, older_than: Duration) -> Result<Pruned, RemoveError> {
        let filters = HashMap::from([("until".to_string(), vec![format!("{}s", older_than.as_secs())])]);
        let options = PruneBuildOptionsBuilder::default().filters(&filters).build();
        let answer = classify(tokio::time::timeout(self.timeout * 6, self.docker.prune_build(Some(options))).await)?;
        Ok(Pruned {
            deleted: answer.caches_deleted.unwrap_or_default(),
            space_reclaimed: answer.space_reclaimed.unwrap_or(0).max(0) as u64,
        })
    }
}

fn classify<T>(
    answer: Result<Result<T, bollard::errors::Error>, tokio::time::error::Elapsed>,
) -> Result<T, RemoveError> {
    match answer {
        Err(_) => Err(RemoveError::Unreachable("no answer within the engine timeout".into())),
        Ok(Ok(value)) => Ok(value),
        Ok(Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. })) => Err(RemoveError::Gone),
        Ok(Err(e @ bollard::errors::Error::DockerResponseServerError { .. })) => {
            Err(RemoveError::Refused(engine_message(&e)))
        }
        Ok(Err(e)) => Err(RemoveError::Unreachable(engine_message(&e))),
    }
}

/// The engine's RFC 3339 times; its "0001-01-01T00:00:00Z" means "never".
fn engine_time(raw: &str) -> Option<Timestamp> {
    raw.parse::<Timestamp>().ok().filter(|t| t.as_second() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_engine_times_mean_never() {
        assert_eq!(engine_time("0001-01-01T00:00:00Z"), None);
        assert_eq!(engine_time("2024-05-01T10:00:00.123456789Z").map(|t| t.as_second()), Some(1_714_557_600));
        assert_eq!(engine_time("garbage"), None);
    }
}
