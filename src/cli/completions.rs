//! `devbox completions SHELL`

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use crate::error::ExitStatus;

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to print completions for
    #[arg(value_enum)]
    shell: Shell,
}

impl CompletionsArgs {
    pub fn run(self) -> anyhow::Result<ExitStatus> {
        let mut command = crate::cli::Cli::command();
        clap_complete::generate(self.shell, &mut command, "devbox", &mut std::io::stdout());
        Ok(ExitStatus::Success)
    }
}
