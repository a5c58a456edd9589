//! Where devbox keeps its files, in the user's own directories as the `directories` crate defines
//! them for this OS.

use std::path::PathBuf;

use anyhow::Context;

use crate::env::Environment;

#[derive(Debug, Clone)]
pub struct Paths {
    config_dir: PathBuf,
}

impl Paths {
    pub fn resolve(env: &Environment) -> anyhow::Result<Self> {
        let dirs = directories::ProjectDirs::from("", "", "devbox").with_context(|| {
            format!(
                "cannot find your home directory (HOME is {:?}); set HOME and run again",
                env.var("HOME").unwrap_or("unset")
            )
        })?;
        Ok(Paths { config_dir: dirs.config_dir().to_path_buf() })
    }

    pub fn config_file(&self) -> PathBuf {
        self.config_dir.join("devbox.toml")
    }
}
