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
    /// How it was trusted: pinned by its hash, signed by which key, or trusted unsigned.
    team_trust: Option<String>,
    /// The team's signing keys recorded at the first signed `init --from … --key`.
    team_keys: Vec<String>,
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
                let team_source = crate::init::header::recorded_source(&text);
                let team_trust = team_source.map(|_| match crate::init::header::recorded_trust(&text) {
                    Some(trust) => trust.to_string(),
                    None => "not recorded (installed by an older devbox)".to_string(),
                });
                let team_keys = crate::init::header::recorded_keys(&text);
                if json {
                    let shown = Shown { source: &loaded.source, team_source, team_trust, team_keys, config: &written };
                    ctx.printer.json(&shown)?;
                } else {
                    let toml = toml::to_string_pretty(&written)?;
                    let keys: String = team_keys.iter().map(|k| format!("\n# team key: {k}")).collect();
                    let team = team_source
                        .map(|t| {
                            format!("\n# team config from: {t}\n# trusted: {}{keys}", team_trust.unwrap_or_default())
                        })
                        .unwrap_or_default();
                    ctx.printer.product(format!("# source: {}{team}\n\n{toml}", loaded.source));
                }
            }
        }
        Ok(ExitStatus::Success)
    }
}
