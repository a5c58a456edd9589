//! Where devbox keeps its files, in the user's own directories: the places the `directories`
//! crate picks for each OS, derived here from `Environment` so nothing reads HOME or XDG_* behind
//! its back, and so each OS's answer can be tested on any OS.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::env::Environment;

/// The name of devbox's own directory inside each of the user's directories.
const APP: &str = "devbox";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    config_dir: PathBuf,
    state_dir: PathBuf,
}

impl Paths {
    pub fn resolve(env: &Environment) -> anyhow::Result<Self> {
        Self::for_os(env, std::env::consts::OS)
    }

    /// The directories on `os` (as `std::env::consts::OS` names it):
    ///
    /// | os | config | state |
    /// | --- | --- | --- |
    /// | linux and other Unix | `$XDG_CONFIG_HOME/devbox` or `~/.config/devbox` | `$XDG_STATE_HOME/devbox` or `~/.local/state/devbox` |
    /// | macos | `~/Library/Application Support/devbox` | the same |
    /// | windows | `%APPDATA%\devbox\config` | `%LOCALAPPDATA%\devbox\data` |
    ///
    /// An XDG variable counts only when it is an absolute path, as the XDG spec says.
    fn for_os(env: &Environment, os: &str) -> anyhow::Result<Self> {
        let home = || {
            env.home().with_context(|| {
                format!(
                    "cannot find your home directory (HOME is {:?}); set HOME and run again",
                    env.var("HOME").unwrap_or("unset")
                )
            })
        };
        let paths = match os {
            "macos" => {
                let dir = home()?.join("Library/Application Support").join(APP);
                Paths { config_dir: dir.clone(), state_dir: dir }
            }
            "windows" => {
                // The known folders, as Windows itself puts them in the environment.
                let known = |var: &str, under_profile: &str| -> anyhow::Result<PathBuf> {
                    match env.var(var) {
                        Some(dir) => Ok(PathBuf::from(dir)),
                        None => Ok(home()?.join("AppData").join(under_profile)),
                    }
                };
                Paths {
                    config_dir: known("APPDATA", "Roaming")?.join(APP).join("config"),
                    state_dir: known("LOCALAPPDATA", "Local")?.join(APP).join("data"),
                }
            }
            _ => {
                let xdg = |var: &str, default: &str| -> anyhow::Result<PathBuf> {
                    match env.var(var).map(PathBuf::from).filter(|dir| dir.is_absolute()) {
                        Some(dir) => Ok(dir),
                        None => Ok(home()?.join(default)),
                    }
                };
                Paths {
                    config_dir: xdg("XDG_CONFIG_HOME", ".config")?.join(APP),
                    state_dir: xdg("XDG_STATE_HOME", ".local/state")?.join(APP),
                }
            }
        };
        Ok(paths)
    }

    /// Both directories under `root`, for tests that must not touch the real user's files.
    #[cfg(test)]
    pub fn under(root: &Path) -> Self {
        Paths { config_dir: root.join("config"), state_dir: root.join("state") }
    }

    pub fn config_file(&self) -> PathBuf {
        self.config_dir.join("devbox.toml")
    }

    /// Records of what devbox did (pulls, scheduled runs), and the scheduled jobs' logs.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }
}

/// Writes `contents` to `path` atomically (a temporary file in the same directory, then a rename),
/// and only when the contents differ, so an unchanged file keeps its mtime. Returns whether the
/// file changed.
pub fn write_if_changed(path: &Path, contents: &[u8]) -> anyhow::Result<bool> {
    if std::fs::read(path).is_ok_and(|old| old == contents) {
        return Ok(false);
    }
    let dir = path.parent().context("a file path has a parent directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("devbox");
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    std::fs::write(&tmp, contents).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot move {} into place", path.display()))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(os: &str, vars: &[(&str, &str)]) -> (String, String) {
        let env = vars.iter().fold(Environment::default(), |env, (k, v)| env.with(k, v));
        let paths = Paths::for_os(&env, os).expect("resolved");
        (paths.config_dir.display().to_string(), paths.state_dir.display().to_string())
    }

    #[test]
    fn linux_follows_xdg_then_home() {
        let home = [("HOME", "/home/ann")];
        assert_eq!(paths("linux", &home), ("/home/ann/.config/devbox".into(), "/home/ann/.local/state/devbox".into()));
        let xdg = [("HOME", "/home/ann"), ("XDG_CONFIG_HOME", "/cfg"), ("XDG_STATE_HOME", "/st")];
        assert_eq!(paths("linux", &xdg), ("/cfg/devbox".into(), "/st/devbox".into()));
        // Relative XDG values are ignored, as the XDG spec says (and as `directories` did).
        let relative = [("HOME", "/home/ann"), ("XDG_CONFIG_HOME", "cfg"), ("XDG_STATE_HOME", "")];
        assert_eq!(
            paths("linux", &relative),
            ("/home/ann/.config/devbox".into(), "/home/ann/.local/state/devbox".into())
        );
        assert_eq!(paths("freebsd", &home).0, "/home/ann/.config/devbox");
    }

    #[test]
    fn macos_keeps_both_in_application_support() {
        let dir = "/Users/ann/Library/Application Support/devbox".to_string();
        assert_eq!(paths("macos", &[("HOME", "/Users/ann"), ("XDG_CONFIG_HOME", "/cfg")]), (dir.clone(), dir));
    }

    #[test]
    fn windows_uses_roaming_for_config_and_local_for_state() {
        let roaming = PathBuf::from(r"C:\Users\ann\AppData\Roaming");
        let local = PathBuf::from(r"C:\Users\ann\AppData\Local");
        let expected = (
            roaming.join("devbox").join("config").display().to_string(),
            local.join("devbox").join("data").display().to_string(),
        );
        let known = [("APPDATA", r"C:\Users\ann\AppData\Roaming"), ("LOCALAPPDATA", r"C:\Users\ann\AppData\Local")];
        assert_eq!(paths("windows", &known), expected);
        // Without the known-folder variables, the same places under the user's profile.
        let profile = PathBuf::from(r"C:\Users\ann");
        let (config, state) = paths("windows", &[("USERPROFILE", r"C:\Users\ann")]);
        assert_eq!(config, profile.join("AppData").join("Roaming").join("devbox").join("config").display().to_string());
        assert_eq!(state, profile.join("AppData").join("Local").join("devbox").join("data").display().to_string());
    }

    #[test]
    fn no_home_is_a_clear_error() {
        let err = Paths::for_os(&Environment::default(), "linux").expect_err("no HOME");
        assert!(err.to_string().contains("set HOME"), "{err}");
        assert!(Paths::for_os(&Environment::default().with("XDG_CONFIG_HOME", "/c"), "linux").is_err());
    }

    #[test]
    fn write_if_changed_leaves_identical_files_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/file.txt");
        assert!(write_if_changed(&path, b"one").expect("write"));
        let mtime = std::fs::metadata(&path).and_then(|m| m.modified()).expect("mtime");
        assert!(!write_if_changed(&path, b"one").expect("write"));
        assert_eq!(std::fs::metadata(&path).and_then(|m| m.modified()).expect("mtime"), mtime);
        assert!(write_if_changed(&path, b"two").expect("write"));
        assert_eq!(std::fs::read(&path).expect("read"), b"two");
    }
}
