//! The cleanup plan: a pure function of the engine's listing, the `[cleanup]` policy, the engine's
//! clock and devbox's pull records. It is what `--dry-run` prints and what the run carries out.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;

use crate::config::KeepLabel;
use crate::engine::{ContainerEntry, ImageEntry};

/// The policy, resolved from the config.
#[derive(Debug, Clone)]
pub struct Policy {
    pub older_than: Duration,
    pub keep_labels: Vec<KeepLabel>,
    pub build_cache: bool,
    pub max_disk: Option<u64>,
    /// Image references that are never removed: base images, their aliases, the registry image.
    pub protected_images: Vec<String>,
    /// Containers carrying this label with value "true" are devbox's own.
    pub managed_label: String,
    pub max_skew: Duration,
}

/// The two clocks, each read once per run, so a plan never mixes readings taken at different
/// moments. Ages are judged by the earlier of the two: an engine clock that is behind (a VM that
/// slept) stamped what it did by that clock, and one that is ahead must not age anything past what
/// this host would say.
#[derive(Debug, Clone, Copy)]
pub struct Clocks {
    pub engine: Timestamp,
    pub host: Timestamp,
}

/// Last pull recorded by devbox, by local reference.
pub type Pulls = HashMap<String, Timestamp>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Container,
    Image,
}

/// Why an item goes or stays. Ages are whole seconds by the engine's clock at the plan's one
/// instant; `Display` gives the words `--dry-run` prints. In JSON it is an object with a stable
/// `kind` (`"stopped-past-grace"`, ...), its data, and the same words as `text`, so a plan is
/// compared by identity and kind, never by prose that contains an elapsed time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Reason {
    /// A stopped container past its grace period.
    StoppedPastGrace { state: String, age_seconds: u64 },
    /// A container that was created and never started, past its grace period (counted from creation).
    NeverStartedPastGrace { state: String, age_seconds: u64 },
    /// A dangling image past its grace period.
    DanglingPastGrace { age_seconds: u64 },
    /// Evicted to fit `max_disk`: the least recently used (pulled, started or created) goes first.
    LeastRecentlyUsed { age_seconds: u64 },
    /// A container that is not stopped (running, paused, restarting...).
    NotStopped { state: String },
    /// A container devbox manages (the registry).
    DevboxOwn,
    /// It carries one of `cleanup.keep_labels`.
    KeepLabel { label: String },
    /// A podman pod's infra container: it goes with its pod (`podman pod rm`), never alone.
    PodInfra,
    /// A container that stopped (or was created) within the grace period.
    StoppedWithinGrace {
        age_seconds: u64,
        #[serde(with = "humantime_serde")]
        grace: Duration,
    },
    /// A dangling image created within the grace period.
    DanglingWithinGrace { age_seconds: u64 },
    /// A base image, its alias, or the registry image, by tag or digest.
    ConfiguredImage { reference: String },
    /// An image a surviving container uses.
    UsedBy { containers: Vec<String> },
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::StoppedPastGrace { state, age_seconds } => write!(f, "{state} (stopped {})", ago(*age_seconds)),
            Reason::NeverStartedPastGrace { state, age_seconds } => {
                write!(f, "{state} (created, never started, {})", ago(*age_seconds))
            }
            Reason::DanglingPastGrace { age_seconds } => write!(f, "dangling, created {}", ago(*age_seconds)),
            Reason::LeastRecentlyUsed { age_seconds } => {
                write!(f, "least recently used (last used {})", ago(*age_seconds))
            }
            Reason::NotStopped { state } => write!(f, "{state} (only stopped containers are removed)"),
            Reason::DevboxOwn => f.write_str("devbox's own container"),
            Reason::KeepLabel { label } => write!(f, "keep label {label}"),
            Reason::PodInfra => f.write_str("a podman pod's infra container (it goes with its pod)"),
            Reason::StoppedWithinGrace { age_seconds, grace } => write!(
                f,
                "stopped {}, within the {} grace period",
                ago(*age_seconds),
                humantime::format_duration(*grace)
            ),
            Reason::DanglingWithinGrace { age_seconds } => {
                write!(f, "dangling, created {}, within the grace period", ago(*age_seconds))
            }
            Reason::ConfiguredImage { reference } => write!(f, "configured image {reference}"),
            Reason::UsedBy { containers } => write!(f, "used by container {}", containers.join(", ")),
        }
    }
}

/// A reason in JSON: its kind and data, and the words for people beside them.
fn reason_with_text<S: serde::Serializer>(reason: &Reason, serializer: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Described<'a> {
        #[serde(flatten)]
        reason: &'a Reason,
        text: String,
    }
    Described { reason, text: reason.to_string() }.serialize(serializer)
}

/// One thing the plan removes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Removal {
    pub id: String,
    /// A container's name, an image's first tag, or a short ID.
    pub name: String,
    /// Why it goes.
    #[serde(serialize_with = "reason_with_text")]
    pub reason: Reason,
    /// Size as the engine reported it in the listing.
    pub size: Option<u64>,
    /// For evicted images: the tags to remove (the image goes with its last tag).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

/// One thing the plan keeps, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Kept {
    pub kind: Kind,
    pub id: String,
    pub name: String,
    #[serde(serialize_with = "reason_with_text")]
    pub reason: Reason,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub engine_time: Timestamp,
    pub host_time: Timestamp,
    pub older_than: String,
    /// Anything that stopped (or, for images, was created) before this is past its grace period.
    pub cutoff: Timestamp,
    /// Set when the engine's clock and the host's disagree by more than `clock.max_skew`.
    pub clock_note: Option<String>,
    pub containers: Vec<Removal>,
    pub dangling_images: Vec<Removal>,
    /// The engine's image prune with filters selects exactly `dangling_images`, so it is used.
    pub dangling_by_prune: bool,
    /// The `label!=` filters that keep labelled images out of the prune.
    pub prune_exclude_labels: Vec<String>,
    pub evicted_images: Vec<Removal>,
    pub max_disk: Option<u64>,
    /// Total size of the images as listed, before and after this plan.
    pub images_size_before: u64,
    pub images_size_after: u64,
    pub max_disk_note: Option<String>,
    pub build_cache: bool,
    pub kept: Vec<Kept>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.containers.is_empty() && self.dangling_images.is_empty() && self.evicted_images.is_empty()
    }
}

pub fn short_id(id: &str) -> String {
    id.trim_start_matches("sha256:").chars().take(12).collect()
}

/// `name` → `name:latest` when it has no tag, so references compare as the engine lists them.
pub fn normalize_reference(reference: &str) -> String {
    let (repo, tag) = crate::engine::split_tag(reference);
    if reference.contains('@') { reference.to_string() } else { format!("{repo}:{tag}") }
}

fn has_keep_label<'a>(labels: &HashMap<String, String>, keep: &'a [KeepLabel]) -> Option<&'a KeepLabel> {
    keep.iter().find(|k| labels.get(&k.key).is_some_and(|v| k.value.as_ref().is_none_or(|want| want == v)))
}

/// A podman pod's infra container, as podman's Docker-compatible API lists it (it says nothing of
/// pods there): named `<pod ID's first 12 hex digits>-infra`, or made from podman's own pause image.
fn is_pod_infra(c: &ContainerEntry) -> bool {
    let named =
        c.name.strip_suffix("-infra").is_some_and(|id| id.len() == 12 && id.bytes().all(|b| b.is_ascii_hexdigit()));
    named || c.image.starts_with("localhost/podman-pause:")
}

fn keep_label_text(label: &KeepLabel) -> String {
    String::from(label.clone())
}

/// Whole seconds from `then` to `now`; zero for anything after `now` (it changed since the instant).
fn age(now: Timestamp, then: Timestamp) -> u64 {
    now.as_second().saturating_sub(then.as_second()).max(0) as u64
}

/// An age in words, coarser as it grows: "9s ago", "3h 12m ago", "2days 4h ago".
fn ago(secs: u64) -> String {
    let rounded = if secs >= 86_400 {
        secs / 3600 * 3600
    } else if secs >= 3600 {
        secs / 60 * 60
    } else {
        secs
    };
    format!("{} ago", humantime::format_duration(Duration::from_secs(rounded)))
}

pub fn plan(
    containers: &[ContainerEntry],
    images: &[ImageEntry],
    policy: &Policy,
    clocks: Clocks,
    pulls: &Pulls,
) -> Plan {
    // The earlier clock: no age comes out longer than either clock says, so a clock that is off
    // never makes something young look old enough to remove.
    let now = clocks.engine.min(clocks.host);
    let grace = jiff::SignedDuration::try_from(policy.older_than).unwrap_or(jiff::SignedDuration::MAX);
    let cutoff = now.checked_sub(grace).unwrap_or(Timestamp::MIN);
    let mut kept = Vec::new();

    // Containers: stopped ones past their grace period go, unless something protects them.
    let mut removed_containers = Vec::new();
    for c in containers {
        let reason = if !matches!(c.state.as_str(), "exited" | "created" | "dead") {
            Some(Reason::NotStopped { state: c.state.clone() })
        } else if c.labels.get(&policy.managed_label).map(String::as_str) == Some("true") {
            Some(Reason::DevboxOwn)
        } else if let Some(label) = has_keep_label(&c.labels, &policy.keep_labels) {
            Some(Reason::KeepLabel { label: keep_label_text(label) })
        } else if is_pod_infra(c) {
            Some(Reason::PodInfra)
        } else {
            let stopped = c.finished_at.unwrap_or(c.created);
            (stopped > cutoff)
                .then(|| Reason::StoppedWithinGrace { age_seconds: age(now, stopped), grace: policy.older_than })
        };
        match reason {
            Some(reason) => {
                kept.push(Kept { kind: Kind::Container, id: short_id(&c.id), name: c.name.clone(), reason })
            }
            None => {
                let state = c.state.clone();
                let reason = match c.finished_at {
                    Some(stopped) => Reason::StoppedPastGrace { state, age_seconds: age(now, stopped) },
                    None => Reason::NeverStartedPastGrace { state, age_seconds: age(now, c.created) },
                };
                removed_containers.push(Removal {
                    id: c.id.clone(),
                    name: c.name.clone(),
                    reason,
                    size: c.size_rw,
                    tags: vec![],
                });
            }
        }
    }
    let removed_ids: HashSet<&str> = removed_containers.iter().map(|r| r.id.as_str()).collect();
    let mut users: HashMap<&str, Vec<&str>> = HashMap::new();
    for c in containers.iter().filter(|c| !removed_ids.contains(c.id.as_str())) {
        users.entry(c.image_id.as_str()).or_default().push(c.name.as_str());
    }

    let protected: HashSet<String> = policy.protected_images.iter().map(|r| normalize_reference(r)).collect();
    let protected_repos: HashSet<&str> =
        protected.iter().map(|r| crate::engine::split_tag(r).0).collect::<HashSet<_>>();
    let protection = |image: &ImageEntry| -> Option<Reason> {
        if let Some(tag) = image.tags.iter().find(|t| protected.contains(&normalize_reference(t))) {
            return Some(Reason::ConfiguredImage { reference: tag.clone() });
        }
        if let Some(digest) =
            image.digests.iter().find(|d| d.split('@').next().is_some_and(|r| protected_repos.contains(r)))
        {
            return Some(Reason::ConfiguredImage { reference: digest.clone() });
        }
        if let Some(label) = has_keep_label(&image.labels, &policy.keep_labels) {
            return Some(Reason::KeepLabel { label: keep_label_text(label) });
        }
        users
            .get(image.id.as_str())
            .map(|names| Reason::UsedBy { containers: names.iter().map(|n| n.to_string()).collect() })
    };

    // Dangling images past their grace period. Whole seconds, as the listing has them: the
    // engine's `until` filter then selects exactly the same images.
    let cutoff_secs = cutoff.as_second();
    let mut dangling = Vec::new();
    let mut prune_would_take = HashSet::new();
    let mut remaining_size = 0u64;
    let mut evictable = Vec::new();
    for image in images {
        let is_dangling = image.tags.is_empty();
        if is_dangling
            && image.created.as_second() < cutoff_secs
            && has_keep_label(&image.labels, &policy.keep_labels).is_none()
            && !users.contains_key(image.id.as_str())
        {
            prune_would_take.insert(image.id.as_str());
        }
        let name = image.tags.first().cloned().unwrap_or_else(|| short_id(&image.id));
        let keep = |reason: Reason| Kept { kind: Kind::Image, id: short_id(&image.id), name: name.clone(), reason };
        if let Some(reason) = protection(image) {
            kept.push(keep(reason));
            remaining_size += image.size;
        } else if is_dangling && image.created.as_second() >= cutoff_secs {
            kept.push(keep(Reason::DanglingWithinGrace { age_seconds: age(now, image.created) }));
            remaining_size += image.size;
        } else if is_dangling {
            dangling.push(Removal {
                id: image.id.clone(),
                name,
                reason: Reason::DanglingPastGrace { age_seconds: age(now, image.created) },
                size: Some(image.size),
                tags: vec![],
            });
        } else {
            remaining_size += image.size;
            evictable.push(image);
        }
    }
    let dangling_by_prune =
        dangling.len() == prune_would_take.len() && dangling.iter().all(|d| prune_would_take.contains(d.id.as_str()));
    let images_size_before = images.iter().map(|i| i.size).sum();

    // Over max_disk: least recently used unprotected images go first, until the rest fit.
    let mut evicted = Vec::new();
    let mut max_disk_note = None;
    if let Some(max) = policy.max_disk {
        let last_used = |image: &ImageEntry| -> Timestamp {
            let pulled = image.tags.iter().filter_map(|t| pulls.get(&normalize_reference(t)).copied()).max();
            let started = containers.iter().filter(|c| c.image_id == image.id).filter_map(|c| c.started_at).max();
            [Some(image.created), pulled, started].into_iter().flatten().max().unwrap_or(image.created)
        };
        let mut candidates: Vec<(Timestamp, &ImageEntry)> = evictable.iter().map(|i| (last_used(i), *i)).collect();
        candidates.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.id.cmp(&b.1.id)));
        let mut candidates = candidates.into_iter();
        while remaining_size > max {
            let Some((used, image)) = candidates.next() else {
                max_disk_note = Some(format!(
                    "images still take {} after this plan, above max_disk {}: the rest are in use or protected",
                    crate::config::ByteSize(remaining_size),
                    crate::config::ByteSize(max)
                ));
                break;
            };
            remaining_size = remaining_size.saturating_sub(image.size);
            evicted.push(Removal {
                id: image.id.clone(),
                name: image.tags.first().cloned().unwrap_or_else(|| short_id(&image.id)),
                reason: Reason::LeastRecentlyUsed { age_seconds: age(now, used) },
                size: Some(image.size),
                tags: image.tags.clone(),
            });
        }
    }

    let skew = clocks.engine.as_millisecond() - clocks.host.as_millisecond();
    let clock_note = (skew.unsigned_abs() > policy.max_skew.as_millis() as u64).then(|| {
        let by = humantime::format_duration(Duration::from_secs(skew.unsigned_abs() / 1000));
        let (side, judge) = if skew > 0 { ("ahead of", "this host's") } else { ("behind", "the engine's") };
        format!(
            "the engine's clock is {by} {side} this host's (more than clock.max_skew {}); ages are judged by {judge} clock, the earlier one, so nothing goes sooner than either clock says (devbox clock sync sets the engine's)",
            humantime::format_duration(policy.max_skew)
        )
    });

    Plan {
        engine_time: clocks.engine,
        host_time: clocks.host,
        older_than: policy_age(policy),
        cutoff,
        clock_note,
        containers: removed_containers,
        dangling_images: dangling,
        dangling_by_prune,
        prune_exclude_labels: policy.keep_labels.iter().map(keep_label_text).collect(),
        evicted_images: evicted,
        max_disk: policy.max_disk,
        images_size_before,
        images_size_after: remaining_size,
        max_disk_note,
        build_cache: policy.build_cache,
        kept,
    }
}

fn policy_age(policy: &Policy) -> String {
    humantime::format_duration(policy.older_than).to_string()
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
