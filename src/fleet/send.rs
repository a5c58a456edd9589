//! `doctor --report`: measure what the report carries beside the checks, build it, write it to
//! `fleet-report.json` in the state directory (for osquery's Fleet and Kolide), and, with
//! `[fleet] report = true`, upload it with the host's AWS credentials to the writer's own folder,
//! `<prefix>machines/<aws:userid>/` (which needs only s3:PutObject there).

use std::path::PathBuf;
use std::time::Duration;

use super::build::{self, Facts, Identity};
use super::{Clocks, Disk, EngineSummary, ImageDigests, local_report_path, machines_prefix, report_key};
use crate::aws::{ActionError, Aws, Principal};
use crate::config::{Config, S3Config};
use crate::doctor::Report;
use crate::doctor::checks::Probe;
use crate::env::Environment;
use crate::error::Error;
use crate::paths::Paths;
use crate::registry::api::Manifest;

/// Where the fleet's reports live: `fleet.bucket`, else the registry's, reached with the
/// registry's profile, region and endpoint.
pub fn fleet_s3(config: &Config) -> Result<S3Config, Error> {
    let mut s3 = config.registry.s3.clone();
    s3.bucket = config.fleet.bucket.clone().or(s3.bucket);
    if s3.bucket.is_none() {
        return Err(Error::Usage(
            "no bucket for the fleet reports: set fleet.bucket (or registry.s3.bucket) in devbox.toml".into(),
        ));
    }
    Ok(s3)
}

/// What `doctor --report` did.
#[derive(Debug)]
pub enum Sent {
    /// `[fleet] report = false`: written to `local` only.
    Local { local: PathBuf },
    Uploaded {
        url: String,
        bytes: usize,
        local: PathBuf,
        /// The principal is the access key ID: the store has no STS (Garage, MinIO).
        by_access_key: bool,
    },
}

/// Builds this machine's report from `doctor`, writes it to the state directory, and uploads it
/// when `[fleet] report = true`. Errors say what to allow or set.
pub async fn send(env: &Environment, config: &Config, doctor: &Report, timeout: Duration) -> anyhow::Result<Sent> {
    let paths = Paths::resolve(env)?;
    let identity = Identity {
        machine_id: super::machine_id(paths.state_dir())?,
        name: display_name(config),
        devbox_version: env!("CARGO_PKG_VERSION").to_string(),
        os: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
    };
    let local = local_report_path(paths.state_dir());
    let upload = config.fleet.report;
    let s3 = if upload { Some(fleet_s3(config)?) } else { None };
    let connect = async {
        match &s3 {
            Some(s3) => Some(Aws::connect(s3).await),
            None => None,
        }
    };
    let (facts, aws) = tokio::join!(facts(env, config, timeout), connect);
    let report = build::build(identity, doctor, facts, jiff::Timestamp::now());
    let aws = aws.transpose()?;
    let aws_secrets = aws.as_ref().map(|a| a.credentials().secret_parts()).unwrap_or_default();
    let secrets = build::secrets(env.vars(), &aws_secrets);
    let bytes = build::encode(&report, &secrets).map_err(anyhow::Error::msg)?;
    crate::paths::write_if_changed(&local, &bytes).map_err(|e| Error::FleetWrite {
        what: "fleet report",
        path: local.clone(),
        reason: crate::error::chain(e.as_ref()),
    })?;
    let (Some(aws), Some(s3)) = (aws, s3) else { return Ok(Sent::Local { local }) };
    let principal = aws.principal().await?;
    let key = report_key(&config.fleet.prefix, principal.segment(), &report.machine_id);
    let size = bytes.len();
    aws.put_object(&key, bytes, "application/json")
        .await
        .map_err(|err| upload_error(&aws, &config.fleet.prefix, &s3, err))?;
    Ok(Sent::Uploaded {
        url: format!("s3://{}/{key}", aws.bucket()),
        bytes: size,
        local,
        by_access_key: matches!(principal, Principal::AccessKey(_)),
    })
}

/// A denied upload names the action and the resource a policy must allow, and whose identity.
fn upload_error(aws: &Aws, prefix: &str, s3: &S3Config, err: ActionError) -> Error {
    match err {
        ActionError::Denied { .. } => Error::FleetSendDenied {
            reason: err.to_string(),
            folders: aws.resource(&machines_prefix(prefix)),
            profile: s3.profile.clone(),
        },
        other => Error::FleetSend { reason: other.to_string() },
    }
}

/// `fleet.name`, else this host's name.
fn display_name(config: &Config) -> String {
    if !config.fleet.name.is_empty() {
        return config.fleet.name.clone();
    }
    gethostname::gethostname().to_string_lossy().into_owned()
}

/// The engine, the base images' digests (the engine's and the registry's), the clocks' skews and
/// the disk, read at once, each bounded by `timeout`. What does not answer is left out.
pub async fn facts(env: &Environment, config: &Config, timeout: Duration) -> Facts {
    let probe = Probe::new(env, config, timeout);
    let s3_clock = tokio::time::timeout(timeout, crate::clock::measure::s3_reading(&config.registry.s3));
    let (engine, remote, s3) = tokio::join!(probe.engine(), probe.digests(), s3_clock);
    let seconds = |d: jiff::SignedDuration| (d.as_secs_f64() * 1000.0).round() / 1000.0;
    let mut facts = Facts {
        clocks: Clocks { engine_seconds: None, s3_seconds: s3.ok().and_then(|r| r.offset).map(seconds) },
        ..Facts::default()
    };
    let remote = remote.unwrap_or_default();
    let images = crate::images::base_images(config, &[]).unwrap_or_default();
    facts.images = images
        .iter()
        .map(|image| ImageDigests {
            name: image.name.clone(),
            local: None,
            registry: remote.iter().find(|(i, _)| i.name == image.name).and_then(|(_, m)| match m {
                Manifest::Found(digest) => Some(digest.clone()),
                Manifest::NotFound => None,
            }),
        })
        .collect();
    let Some(engine) = engine else { return facts };
    facts.engine = Some(EngineSummary {
        version: engine.info.server_version.clone(),
        os: engine.info.operating_system.clone(),
        runtime: engine.classification.runtime.label().to_string(),
        vm: engine.classification.vm,
    });
    facts.clocks.engine_seconds = engine.clock.offset.map(seconds);
    let locals = futures_util::future::join_all(images.iter().map(|image| async {
        let found = tokio::time::timeout(timeout, engine.engine.image(&image.local)).await;
        found.ok()?.ok()?.and_then(|i| i.digest_in(image.local_repo()).map(String::from))
    }));
    let root = &engine.info.docker_root_dir;
    let disk = tokio::time::timeout(
        timeout,
        crate::disk::measure(&engine.engine, &engine.classification, root, &config.registry, None),
    );
    let (locals, disk) = tokio::join!(locals, disk);
    for (image, local) in facts.images.iter_mut().zip(locals) {
        image.local = local;
    }
    facts.disk =
        disk.ok().and_then(Result::ok).map(|d| Disk { total_bytes: d.total_bytes, free_bytes: d.available_bytes });
    facts
}
