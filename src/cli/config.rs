//! `devbox config path|show`

use clap::{Args, Subcommand};
use serde::Serialize;

use crate::cli::Context;
use crate::config::{ConfigSource, Written, load_written};
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
    /// Where the team config was taken from (`devbox init --from`), when it was.
    team_source: Option<&'a str>,
    /// Each value in the words it was written in ("512MiB", "24h").
    config: &'a Written,
}

impl ConfigArgs {
    pub fn run(self, ctx: &Context) -> anyhow::Result<ExitStatus> {
        match self.command {
            ConfigCommand::Path => {
                // Works even when the file is broken: finding it is how you fix it.
                ctx.printer.product(ctx.config_source()?.path().display().to_string());
            }
            ConfigCommand::Show { json } => {
                let (loaded, written) = load_written(ctx.config_source()?).map_err(crate::error::Error::from)?;
                ctx.printer.detail(format!("config: {}", loaded.source));
                let text = std::fs::read_to_string(loaded.source.path()).unwrap_or_default();
                let team_source = crate::init::team::recorded_source(&text);
                if json {
                    ctx.printer.json(&Shown { source: &loaded.source, team_source, config: &written })?;
                } else {
                    let toml = toml::to_string_pretty(&written)?;
                    let team = team_source.map(|t| format!("\n# team config from: {t}")).unwrap_or_default();
                    ctx.printer.product(format!("# source: {}{team}\n\n{toml}", loaded.source));
                }
            }
        }
        Ok(ExitStatus::Success)
    }
}
