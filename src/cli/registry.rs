//! `devbox registry up|down|status|logs`

use clap::{Args, Subcommand};
use futures_util::StreamExt;
use serde::Serialize;

use crate::cli::{Context, report};
use crate::config::{Config, Storage};
use crate::error::{Error, ExitStatus};
use crate::registry::{self, Service, api::RegistryApi};
use crate::ui::{Mark, progress_for};

#[derive(Debug, Args)]
pub struct RegistryArgs {
    #[command(subcommand)]
    command: RegistryCommand,
}

#[derive(Debug, Subcommand)]
enum RegistryCommand {
    /// Create or start the registry container, and wait until it answers
    Up,
    /// Remove the registry container (its data volume stays)
    Down,
    /// Renew the registry's short-lived AWS credentials if they expire soon (the scheduled renew job)
    ///
    /// Reads only the container's labels: when its credentials are long-lived or good for longer
    /// than the refresh window, it changes nothing and asks AWS nothing. Otherwise it resolves fresh
    /// credentials and recreates the container, as `registry up` does.
    Renew,
    /// Show the container's state, health, endpoint, storage and credentials' expiry
    Status {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Print the registry's logs, then follow them
    Logs {
        /// How many lines to show from the end ("all" for every line)
        #[arg(long, default_value = "100", value_name = "N")]
        tail: String,
        /// Print what is there and stop, instead of following
        #[arg(long)]
        no_follow: bool,
    },
}

impl RegistryArgs {
    pub async fn run(self, ctx: &Context) -> anyhow::Result<ExitStatus> {
        let config = ctx.config()?.config;
        match self.command {
            RegistryCommand::Up => up(ctx, &config).await,
            RegistryCommand::Down => down(ctx, &config).await,
            RegistryCommand::Renew => renew(ctx, &config).await,
            RegistryCommand::Status { json } => status(ctx, &config, json).await,
            RegistryCommand::Logs { tail, no_follow } => logs(ctx, &config, &tail, !no_follow).await,
        }
    }
}

async fn up(ctx: &Context, config: &Config) -> anyhow::Result<ExitStatus> {
    let engine = ctx.engine().await?;
    let lock = ctx.lock("registry up").await?;
    let up = Service::new(&engine, &config.registry, &lock).up(progress_for(&ctx.printer).as_ref()).await?;
    report::registry_up(&ctx.printer, &up);
    Ok(ExitStatus::Success)
}

async fn renew(ctx: &Context, config: &Config) -> anyhow::Result<ExitStatus> {
    let engine = ctx.engine().await?;
    let lock = ctx.lock("registry renew").await?;
    let name = &config.registry.container;
    match Service::new(&engine, &config.registry, &lock).renew(progress_for(&ctx.printer).as_ref()).await? {
        registry::Renewal::NotNeeded(why) => {
            ctx.printer.mark(Mark::Same, format!("registry {name}: nothing to renew: {why}"))
        }
        registry::Renewal::Fresh { expiry, renew_at } => ctx.printer.mark(
            Mark::Same,
            format!("registry {name}: its AWS credentials are good until {expiry}; renewal from {renew_at}"),
        ),
        registry::Renewal::Renewed(up) => report::registry_up(&ctx.printer, &up),
    }
    Ok(ExitStatus::Success)
}

async fn down(ctx: &Context, config: &Config) -> anyhow::Result<ExitStatus> {
    let registry = &config.registry;
    let engine = ctx.engine().await?;
    let lock = ctx.lock("registry down").await?;
    if Service::new(&engine, registry, &lock).remove().await? {
        let kept = match registry.storage() {
            Storage::Filesystem => format!("; volume {} kept", registry.volume()),
            Storage::S3 => String::new(),
        };
        ctx.printer.mark(Mark::Ok, format!("registry {} removed{kept}", registry.container));
    } else {
        ctx.printer.mark(Mark::Same, format!("registry {} is not there", registry.container));
    }
    Ok(ExitStatus::Success)
}

#[derive(Debug, Serialize)]
struct StatusReport {
    container: String,
    /// "running", "exited", "created", …, or "missing"
    state: String,
    /// `GET /v2/` answered 200 as a registry.
    healthy: bool,
    health: String,
    endpoint: String,
    id: Option<String>,
    created: Option<String>,
    image: Option<String>,
    storage: Option<String>,
    readonly: Option<bool>,
    bound_to: Vec<String>,
    credentials_expiry: Option<String>,
    /// The running container was made from the current devbox.toml.
    config_current: Option<bool>,
}

async fn status(ctx: &Context, config: &Config, json: bool) -> anyhow::Result<ExitStatus> {
    let registry = &config.registry;
    let engine = ctx.engine().await?;
    let existing = engine.container(&registry.container).await?;
    let health = match &existing {
        Some(c) if c.is_running() => RegistryApi::new(&registry.local_url())?.ping().await.map_err(|e| e.to_string()),
        Some(c) => Err(format!("the container is {}", c.state)),
        None => Err("the container does not exist".to_string()),
    };
    let desired = registry::desired(&engine, registry).await?;
    let label = |key: &str| existing.as_ref().and_then(|c| c.label(key)).map(String::from);
    let report = StatusReport {
        container: registry.container.clone(),
        state: existing.as_ref().map_or("missing".to_string(), |c| c.state.clone()),
        healthy: health.is_ok(),
        health: health.clone().err().unwrap_or_else(|| "GET /v2/ answered 200".into()),
        endpoint: registry.local_url(),
        id: existing.as_ref().map(|c| c.id.chars().take(12).collect()),
        created: existing.as_ref().map(|c| c.created.clone()),
        image: existing.as_ref().map(|c| c.image.clone()),
        storage: label(registry::LABEL_STORAGE),
        readonly: label(registry::LABEL_READONLY).map(|v| v == "true"),
        bound_to: existing.as_ref().map(|c| c.published.clone()).unwrap_or_default(),
        credentials_expiry: label(registry::LABEL_CREDENTIALS_EXPIRY),
        config_current: existing
            .as_ref()
            .zip(desired.as_ref())
            .map(|(_, desired)| label(registry::LABEL_CONFIG_HASH).as_deref() == Some(&desired.hash)),
    };
    if json {
        ctx.printer.json(&report)?;
    } else {
        print_status(ctx, &report);
    }
    Ok(if report.healthy { ExitStatus::Success } else { ExitStatus::Failure })
}

fn print_status(ctx: &Context, r: &StatusReport) {
    let p = &ctx.printer;
    if r.healthy {
        p.mark(Mark::Ok, format!("registry {}: {}, healthy", r.container, r.state));
    } else {
        p.mark(Mark::Fail, format!("registry {}: {} ({})", r.container, r.state, r.health));
        p.hint(if r.state == "missing" {
            "run: devbox registry up"
        } else {
            "run: devbox registry up, or see: devbox registry logs"
        });
    }
    if r.state == "missing" {
        return;
    }
    let row = |name: &str, value: String| p.line(format!("  {name:<12} {value}"));
    row("endpoint", r.endpoint.clone());
    row("bound to", r.bound_to.join(", "));
    row("storage", r.storage.clone().unwrap_or_else(|| "unknown".into()));
    row("read-only", r.readonly.map_or("unknown".into(), |ro| if ro { "yes".into() } else { "no".into() }));
    row("image", r.image.clone().unwrap_or_default());
    row("id", r.id.clone().unwrap_or_default());
    row("created", r.created.clone().unwrap_or_default());
    let expiry = match (&r.credentials_expiry, r.storage.as_deref()) {
        (Some(at), _) => format!("expire at {at}"),
        (None, Some("s3")) => "long-lived (no expiry)".into(),
        _ => "none needed".into(),
    };
    row("credentials", expiry);
    if r.config_current == Some(false) {
        p.mark(Mark::Warn, "the container predates the current devbox.toml");
        p.hint("run: devbox registry up");
    }
}

async fn logs(ctx: &Context, config: &Config, tail: &str, follow: bool) -> anyhow::Result<ExitStatus> {
    let registry = &config.registry;
    if tail != "all" && tail.parse::<u64>().is_err() {
        return Err(Error::Usage(format!("--tail takes a number of lines or \"all\", not {tail:?}")).into());
    }
    let engine = ctx.engine().await?;
    if engine.container(&registry.container).await?.is_none() {
        return Err(Error::RegistryMissing { container: registry.container.clone() }.into());
    }
    let mut lines = std::pin::pin!(engine.logs(&registry.container, tail, follow));
    while let Some(line) = lines.next().await {
        ctx.printer.product(line?);
    }
    Ok(ExitStatus::Success)
}
