//! `devbox uninstall [--purge] [--yes]`: removes what `init` set up (the scheduled jobs, the
//! registry container, devbox's state directory). The registry's volume and the config stay
//! unless `--purge`. It lists what it found, asks, then removes; with nothing there it says so.

use std::path::PathBuf;

use clap::Args;

use crate::cli::Context;
use crate::config::{self, Config};
use crate::error::{Error, ExitStatus};
use crate::lock::Held;
use crate::paths::Paths;
use crate::registry::Service;
use crate::schedule::{ALL_JOBS, Backend};
use crate::ui::{Mark, confirm, interactive};

#[derive(Debug, Args)]
pub struct UninstallArgs {
    /// Also remove the registry's data volume and your devbox.toml (with its backups)
    #[arg(long)]
    purge: bool,

    /// Do not ask first (needed without a terminal)
    #[arg(short, long)]
    yes: bool,
}

/// One thing to remove, found on this machine.
enum Item {
    Jobs { backend: Box<dyn Backend>, names: Vec<&'static str> },
    Container { name: String },
    Volume { name: String },
    State { dir: PathBuf },
    Config { files: Vec<PathBuf> },
}

impl Item {
    fn describe(&self) -> String {
        match self {
            Item::Jobs { backend, names } => format!("scheduled jobs in {}: {}", backend.kind(), names.join(", ")),
            Item::Container { name } => format!("registry container {name}"),
            Item::Volume { name } => format!("registry volume {name} (its cached images)"),
            Item::State { dir } => format!("state directory {}", dir.display()),
            Item::Config { files } => {
                format!("config {}", files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", "))
            }
        }
    }
}

impl UninstallArgs {
    pub async fn run(self, ctx: &Context) -> anyhow::Result<ExitStatus> {
        // A broken config must not stop an uninstall: the defaults name devbox's container then.
        let (config, config_path) = match ctx.config() {
            Ok(loaded) => {
                let path = loaded.source.path().to_path_buf();
                (loaded.config, path)
            }
            Err(err) => {
                ctx.printer.mark(Mark::Warn, format!("{err:#}; using the built-in defaults to find what to remove"));
                let defaults = config::defaults()?;
                (defaults, ctx.config_source()?.path().to_path_buf())
            }
        };
        let paths = Paths::resolve(&ctx.env)?;
        let (items, problems) = self.survey(ctx, &config, &paths, config_path).await;
        for problem in &problems {
            ctx.printer.mark(Mark::Fail, problem);
        }
        if items.is_empty() {
            if problems.is_empty() {
                let kept =
                    if self.purge { "" } else { " (the config and the registry volume are kept without --purge)" };
                ctx.printer.mark(Mark::Same, format!("nothing to remove: devbox is not installed here{kept}"));
                return Ok(ExitStatus::Success);
            }
            return Ok(ExitStatus::Failure);
        }
        ctx.printer.line("devbox uninstall will remove:");
        for item in &items {
            ctx.printer.line(format!("  - {}", item.describe()));
        }
        if !self.purge {
            ctx.printer.line("and keep the config and the registry volume (--purge removes them too).");
        }
        if !self.yes {
            if !interactive(&ctx.printer) {
                return Err(Error::Usage(
                    "uninstall removes the items above; pass --yes to confirm without a terminal. Nothing was removed."
                        .into(),
                )
                .into());
            }
            if !confirm(&ctx.printer, "Remove them?", false)? {
                ctx.printer.line("Nothing was removed.");
                return Ok(ExitStatus::Success);
            }
        }
        let lock = ctx.lock("uninstall").await?;
        let mut failed = !problems.is_empty();
        for item in items {
            let what = item.describe();
            match remove(ctx, &config, &lock, item).await {
                Ok(()) => ctx.printer.mark(Mark::Ok, format!("removed {what}")),
                Err(err) => {
                    failed = true;
                    ctx.printer.mark(Mark::Fail, format!("could not remove {what}: {err:#}"));
                }
            }
        }
        Ok(if failed { ExitStatus::Failure } else { ExitStatus::Success })
    }

    /// What is there to remove. Reads only. A part that cannot be read is a problem to report,
    /// and the rest is still removed.
    async fn survey(
        &self,
        ctx: &Context,
        config: &Config,
        paths: &Paths,
        config_path: PathBuf,
    ) -> (Vec<Item>, Vec<String>) {
        let mut items = Vec::new();
        let mut problems = Vec::new();
        match ctx.scheduler(None, paths) {
            Ok(None) => {}
            Ok(Some(backend)) => {
                let mut names = Vec::new();
                for job in ALL_JOBS {
                    match backend.status(job) {
                        Ok(installed) if installed.installed => names.push(job),
                        Ok(_) => {}
                        Err(err) => problems.push(format!("cannot read the {} jobs: {err:#}", backend.kind())),
                    }
                }
                if !names.is_empty() {
                    items.push(Item::Jobs { backend, names });
                }
            }
            // No scheduler on this machine: no jobs can be installed in it.
            Err(err) => ctx.printer.detail(format!("no scheduler: {err:#}")),
        }
        let registry = &config.registry;
        match ctx.engine().await {
            Ok(engine) => {
                match engine.container(&registry.container).await {
                    Ok(Some(c)) if c.label(crate::registry::LABEL_MANAGED) == Some("true") => {
                        items.push(Item::Container { name: registry.container.clone() })
                    }
                    Ok(Some(_)) => ctx.printer.detail(format!("{} is not devbox's; left alone", registry.container)),
                    Ok(None) => {}
                    Err(err) => problems.push(format!("cannot inspect the registry container: {err:#}")),
                }
                if self.purge {
                    match engine.has_volume(&registry.volume()).await {
                        Ok(true) => items.push(Item::Volume { name: registry.volume() }),
                        Ok(false) => {}
                        Err(err) => problems.push(format!("cannot inspect the registry volume: {err:#}")),
                    }
                }
            }
            Err(err) => problems.push(format!("cannot check the registry container: {err:#}")),
        }
        if paths.state_dir().exists() {
            items.push(Item::State { dir: paths.state_dir().to_path_buf() });
        }
        if self.purge {
            let mut files: Vec<PathBuf> = Vec::new();
            if config_path.exists() {
                files.push(config_path.clone());
            }
            // The backups `init --from` made, next to it.
            if let Some(dir) = config_path.parent()
                && let Ok(entries) = std::fs::read_dir(dir)
            {
                for entry in entries.flatten() {
                    let name = entry.file_name().to_string_lossy().to_string();
                    if name.starts_with("devbox.toml.") && name.ends_with(".bak") {
                        files.push(entry.path());
                    }
                }
            }
            if !files.is_empty() {
                files.sort();
                items.push(Item::Config { files });
            }
        }
        (items, problems)
    }
}

async fn remove(ctx: &Context, config: &Config, lock: &Held, item: Item) -> anyhow::Result<()> {
    match item {
        Item::Jobs { backend, .. } => {
            backend.remove()?;
        }
        Item::Container { .. } => {
            Service::new(&ctx.engine().await?, &config.registry, lock).remove().await?;
        }
        Item::Volume { name } => {
            ctx.engine().await?.remove_volume(&name).await?;
        }
        Item::State { dir } => std::fs::remove_dir_all(&dir)?,
        Item::Config { files } => {
            for file in files {
                std::fs::remove_file(&file)?;
            }
        }
    }
    Ok(())
}
