//! Where devbox keeps its files, in the user's own directories as the `directories` crate defines
//! them for this OS.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::env::Environment;

#[derive(Debug, Clone)]
pub struct Paths {
    config_dir: PathBuf,
    state_dir: PathBuf,
}

impl Paths {
    pub fn resolve(env: &Environment) -> anyhow::Result<Self> {
        let dirs = directories::ProjectDirs::from("", "", "devbox").with_context(|| {
            format!(
                "cannot find your home directory (HOME is {:?}); set HOME and run again",
                env.var("HOME").unwrap_or("unset")
            )
        })?;
        // Linux has a state directory (~/.local/state/devbox); elsewhere the local data directory.
        let state_dir = dirs.state_dir().unwrap_or_else(|| dirs.data_local_dir()).to_path_buf();
        Ok(Paths { config_dir: dirs.config_dir().to_path_buf(), state_dir })
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
