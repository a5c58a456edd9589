//! Every read of the process environment goes through `Environment`, captured once at start-up.
//! Commands receive it; nothing else calls `std::env::var` (clippy.toml forbids it elsewhere).
//! This is also the one place that asks for this program's own path.

use std::collections::HashMap;
use std::path::PathBuf;

#[derive(Debug, Clone, Default)]
pub struct Environment {
    vars: HashMap<String, String>,
}

impl Environment {
    // The one home of environment reads: everything else asks this value.
    #[allow(clippy::disallowed_methods)]
    pub fn from_process() -> Self {
        Environment {
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        }
    }

    /// A variable's value; unset and empty read the same.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// Every variable, by name and value: what `fleet` scrubs from a report before it leaves.
    pub fn vars(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn home(&self) -> Option<PathBuf> {
        self.var("HOME").or_else(|| self.var("USERPROFILE")).map(PathBuf::from)
    }

    /// `NO_COLOR` set to anything non-empty turns colour off (https://no-color.org).
    pub fn no_color(&self) -> bool {
        self.var("NO_COLOR").is_some()
    }

    /// Whether `program` is an executable file on `PATH`.
    pub fn finds_program(&self, program: &str) -> bool {
        let Some(path) = self.var("PATH") else { return false };
        std::env::split_paths(path)
            .any(|dir| ["", ".exe"].iter().any(|ext| dir.join(format!("{program}{ext}")).is_file()))
    }

    #[cfg(test)]
    pub fn with(mut self, name: &str, value: &str) -> Self {
        self.vars.insert(name.to_string(), value.to_string());
        self
    }
}

/// This program's own path, as the OS reports it: the binary that scheduled jobs run and that
/// `self-update` replaces.
// The one home of `current_exe`.
#[allow(clippy::disallowed_methods)]
pub fn current_exe() -> std::io::Result<PathBuf> {
    std::env::current_exe()
}
