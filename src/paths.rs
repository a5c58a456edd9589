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

/// Writes `contents` to `path` atomically, and only when the contents differ, so an unchanged file
/// keeps its mtime. Returns whether the file changed.
pub fn write_if_changed(path: &Path, contents: &[u8]) -> anyhow::Result<bool> {
    if std::fs::read(path).is_ok_and(|old| old == contents) {
        return Ok(false);
    }
    write_atomic(path, contents)?;
    Ok(true)
}

/// The one way devbox writes a file (config, state records, installed jobs): to a temporary file
/// in the same directory, synced to disk, renamed over `path`, and the directory synced, so that a
/// crash or a power cut leaves the old file or the new one, never an empty or half-written one.
/// On any failure (a full disk included) the temporary file is removed and the old file is left
/// as it was.
pub fn write_atomic(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let (dir, tmp) = temp_beside(path)?;
    let written = write_synced(&tmp, contents).and_then(|()| std::fs::rename(&tmp, path));
    if let Err(err) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(anyhow::Error::new(err).context(format!("cannot write {}", path.display())));
    }
    sync_dir(dir);
    Ok(())
}

/// Creates `path` with `contents` only if it does not exist, atomically (written and synced aside,
/// then linked into place): two runs that create it at once agree on one. Returns whether this run
/// created it.
pub fn create_atomic(path: &Path, contents: &[u8]) -> anyhow::Result<bool> {
    let (dir, tmp) = temp_beside(path)?;
    let linked = write_synced(&tmp, contents).and_then(|()| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            sync_dir(dir);
            Ok(true)
        }
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(err) => Err(anyhow::Error::new(err).context(format!("cannot write {}", path.display()))),
    }
}

/// `path`'s directory (made when missing) and a temporary name in it that no other process uses.
fn temp_beside(path: &Path) -> anyhow::Result<(&Path, PathBuf)> {
    let dir = path.parent().context("a file path has a parent directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("devbox");
    Ok((dir, dir.join(format!(".{name}.tmp.{}", std::process::id()))))
}

fn write_synced(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::File::create(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Makes a rename in `dir` durable. Unix syncs a directory through an open handle; Windows cannot
/// open one that way, and its rename is durable once the file is.
fn sync_dir(dir: &Path) {
    if std::env::consts::FAMILY == "unix"
        && let Ok(handle) = std::fs::File::open(dir)
    {
        let _ = handle.sync_all();
    }
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
        // Nothing is left beside it.
        let names: Vec<_> =
            std::fs::read_dir(dir.path().join("sub")).expect("list").flatten().map(|e| e.file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("file.txt")]);
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("file.txt");
        write_atomic(&path, b"old").expect("write");
        // A directory where the file should go: the rename fails after the temporary file is written.
        let blocked = dir.path().join("blocked");
        std::fs::create_dir_all(blocked.join("inside")).expect("mkdir");
        let err = write_atomic(&blocked, b"new").expect_err("cannot replace a directory");
        assert!(err.to_string().contains(&blocked.display().to_string()), "{err}");
        let mut names: Vec<_> = std::fs::read_dir(dir.path()).expect("list").flatten().map(|e| e.file_name()).collect();
        names.sort();
        assert_eq!(names, vec![std::ffi::OsString::from("blocked"), std::ffi::OsString::from("file.txt")]);
        assert_eq!(std::fs::read(&path).expect("read"), b"old");
    }

    #[test]
    fn create_atomic_keeps_the_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("id");
        assert!(create_atomic(&path, b"first").expect("create"));
        assert!(!create_atomic(&path, b"second").expect("create"));
        assert_eq!(std::fs::read(&path).expect("read"), b"first");
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 1);
    }
}
