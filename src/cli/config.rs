//! `devbox config path|show`

use clap::{Args, Subcommand};
use serde::Serialize;

use super::Context;
use crate::config::{Config, ConfigSource};
use crate::error::ExitStatus;

#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    command: ConfigCommand,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print the path of the config file in use (or that would be, when there is none yet)
    Path,
    /// Print the effective config: the file laid over the built-in defaults, with its source
    Show {
        /// Print JSON instead of TOML
        #[arg(long)]
        json: bool,
    },
}

#[derive(Serialize)]
struct Shown<'a> {
    source: &'a ConfigSource,
    config: &'a Config,
}

impl ConfigArgs {
    pub fn run(self, ctx: &Context) -> anyhow::Result<ExitStatus> {
        match self.command {
            ConfigCommand::Path => {
                // Works even when the file is broken: finding it is how you fix it.
                ctx.printer.product(ctx.config_source()?.path().display().to_string());
            }
            ConfigCommand::Show { json } => {
                let loaded = ctx.config()?;
                if json {
                    ctx.printer.json(&Shown { source: &loaded.source, config: &loaded.config })?;
                } else {
                    let toml = toml::to_string_pretty(&loaded.config)?;
                    ctx.printer.product(format!("# source: {}\n\n{toml}", loaded.source));
                }
            }
        }
        Ok(ExitStatus::Success)
    }
}
