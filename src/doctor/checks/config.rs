//! The configuration: it loaded, from which file; or why not.

use crate::config::LoadedConfig;
use crate::doctor::{CheckId, Finding};

pub fn check(loaded: &Result<LoadedConfig, anyhow::Error>) -> Finding {
    match loaded {
        Ok(loaded) => Finding::ok(CheckId::Config, loaded.source.to_string())
            .detail("path", loaded.source.path().display().to_string()),
        Err(err) => Finding::fail(CheckId::Config, format!("{err:#}"))
            .hint("Fix that key in the file; `devbox config path` shows which file is in use."),
    }
}
