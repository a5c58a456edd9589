//! One advisory lock in devbox's state directory (`devbox.lock`), taken by every command that
//! changes the registry, the state records, the images' tags or the schedules, as cargo and rustup
//! take theirs. It is the OS's lock on an open file (`flock` on Unix, `LockFileEx` on Windows), so
//! a run that is killed releases it with its last file descriptor: nothing ever expires it by time.
//!
//! The holder writes its PID and command beside it (`devbox.lock.holder`, removed when it lets go),
//! so that a second run can say whom it waits for; the lock file itself is never written, so a run
//! that changes nothing leaves every file as it was. A run on a terminal waits as long as it takes, saying so once; a quiet or scheduled
//! run waits silently up to a bound (`DEVBOX_LOCK_WAIT`, 10 minutes by default), then fails naming
//! the holder. Read-only commands never take it, so they never wait.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::env::Environment;
use crate::error::Error;

/// The lock file's name in the state directory.
pub const FILE: &str = "devbox.lock";
/// Who holds it: `PID COMMAND`, written by the holder and removed when it lets go.
pub const HOLDER_FILE: &str = "devbox.lock.holder";

/// How long a quiet or scheduled run waits for the lock when `DEVBOX_LOCK_WAIT` does not say.
pub const DEFAULT_BOUND: Duration = Duration::from_secs(10 * 60);

/// How often a waiting run tries again.
const POLL: Duration = Duration::from_millis(100);

/// The lock, held until this value is dropped (or the process ends, however it ends).
#[derive(Debug)]
pub struct Held {
    _file: File,
    state_dir: PathBuf,
}

impl Drop for Held {
    fn drop(&mut self) {
        // Before the lock goes with the file: no one else writes it meanwhile.
        let _ = std::fs::remove_file(self.state_dir.join(HOLDER_FILE));
    }
}

impl Held {
    /// The state directory the lock guards: where the records it protects are written.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }
}

/// Who holds the lock, as the holder wrote it: `PID 4242 (devbox registry up)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    pub command: String,
}

impl Holder {
    /// Reads the holder's line (`PID COMMAND`); `None` while it has not written it yet.
    pub fn parse(text: &str) -> Option<Holder> {
        let line = text.lines().next()?.trim();
        let (pid, command) = line.split_once(' ')?;
        Some(Holder { pid: pid.parse().ok()?, command: command.trim().to_string() })
    }

    pub fn describe(&self) -> String {
        format!("PID {} (`devbox {}`)", self.pid, self.command)
    }
}

/// How a run waits for a lock that another holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// As long as it takes; the caller is told once whom it waits for.
    Announced,
    /// Silently, up to this long; then `Error::LockBusy`.
    Bounded(Duration),
}

impl Wait {
    /// A run that prints nothing (`--quiet`, the scheduled jobs) waits up to `DEVBOX_LOCK_WAIT`
    /// (a duration such as `30s` or `10m`), else up to [`DEFAULT_BOUND`]; any other run waits as long
    /// as it takes, saying so.
    pub fn for_run(env: &Environment, silent: bool) -> anyhow::Result<Wait> {
        if !silent {
            return Ok(Wait::Announced);
        }
        let bound = match env.var("DEVBOX_LOCK_WAIT") {
            Some(text) => humantime::parse_duration(text).map_err(|e| {
                Error::Usage(format!("DEVBOX_LOCK_WAIT={text:?} is not a duration ({e}); write it as 30s, 5m or 1h"))
            })?,
            None => DEFAULT_BOUND,
        };
        Ok(Wait::Bounded(bound))
    }
}

/// Takes the lock in `state_dir` for `command` (as people would type it after `devbox`), waiting
/// as `wait` says while another run holds it. `waiting` hears once whom it waits for.
pub async fn acquire(state_dir: &Path, command: &str, wait: Wait, waiting: impl FnOnce(&str)) -> anyhow::Result<Held> {
    let path = state_dir.join(FILE);
    let mut file = open(state_dir, &path)?;
    let started = Instant::now();
    let mut waiting = Some(waiting);
    loop {
        if try_lock(&file, &path)? {
            if still_at(&file, &path) {
                return claim(file, state_dir, command);
            }
            // The holder removed the file we waited on (`uninstall` takes the state directory
            // with it): a lock on it keeps no one out, so take the one at the path now.
            file = open(state_dir, &path)?;
            continue;
        }
        let holder = read_holder(state_dir);
        // The holder writes its line just after it locks: give it a moment before naming no one.
        if wait == Wait::Announced
            && let Some(tell) = waiting.take_if(|_| holder.is_some() || started.elapsed() >= POLL * 5)
        {
            let whom = holder.as_ref().map_or_else(|| "another devbox run".to_string(), Holder::describe);
            tell(&format!("waiting for the lock held by {whom} ({})", path.display()));
        }
        if let Wait::Bounded(bound) = wait
            && started.elapsed() >= bound
        {
            let holder = holder.map_or_else(|| "another devbox run".to_string(), |h| h.describe());
            return Err(Error::LockBusy { holder, waited: humantime::format_duration(bound).to_string(), path }.into());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Takes the lock only if no one holds it: `None` when another run (or this one) does. For a
/// read-only command that would record what it found only when it can do so safely.
pub fn try_acquire(state_dir: &Path, command: &str) -> anyhow::Result<Option<Held>> {
    let path = state_dir.join(FILE);
    let file = open(state_dir, &path)?;
    if try_lock(&file, &path)? && still_at(&file, &path) {
        Ok(Some(claim(file, state_dir, command)?))
    } else {
        Ok(None)
    }
}

/// Whether `file` is still the one at `path`: a holder may remove the lock file before it lets go
/// (`uninstall`), and a run that waited on the removed file must not count it as the lock.
fn still_at(file: &File, path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (file.metadata(), std::fs::metadata(path)) {
            (Ok(held), Ok(now)) => (held.dev(), held.ino()) == (now.dev(), now.ino()),
            _ => false,
        }
    }
    // Windows does not let a file that is open without FILE_SHARE_DELETE be removed.
    #[cfg(not(unix))]
    {
        let _ = (file, path);
        true
    }
}

fn open(state_dir: &Path, path: &Path) -> anyhow::Result<File> {
    std::fs::create_dir_all(state_dir).with_context(|| format!("cannot create {}", state_dir.display()))?;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .with_context(|| format!("cannot open the lock file {}", path.display()))
}

fn try_lock(file: &File, path: &Path) -> anyhow::Result<bool> {
    match fs4::FileExt::try_lock(file) {
        Ok(()) => Ok(true),
        Err(fs4::TryLockError::WouldBlock) => Ok(false),
        Err(fs4::TryLockError::Error(err)) => {
            Err(anyhow::Error::new(err).context(format!("cannot lock {}", path.display())))
        }
    }
}

/// Writes this run's PID and command beside the lock it now holds.
fn claim(file: File, state_dir: &Path, command: &str) -> anyhow::Result<Held> {
    let line = format!("{} {command}\n", std::process::id());
    // Only the waiting message needs it: the lock holds without it.
    let _ = std::fs::write(state_dir.join(HOLDER_FILE), line);
    Ok(Held { _file: file, state_dir: state_dir.to_path_buf() })
}

fn read_holder(state_dir: &Path) -> Option<Holder> {
    Holder::parse(&std::fs::read_to_string(state_dir.join(HOLDER_FILE)).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_holder_line_is_read_back() {
        let holder = Holder::parse("4242 registry up\n").expect("parsed");
        assert_eq!(holder, Holder { pid: 4242, command: "registry up".into() });
        assert_eq!(holder.describe(), "PID 4242 (`devbox registry up`)");
        assert_eq!(Holder::parse(""), None);
        assert_eq!(Holder::parse("notapid registry up"), None);
    }

    #[test]
    fn a_quiet_run_waits_up_to_the_bound_it_is_given() {
        let env = Environment::default();
        assert_eq!(Wait::for_run(&env, false).expect("wait"), Wait::Announced);
        assert_eq!(Wait::for_run(&env, true).expect("wait"), Wait::Bounded(DEFAULT_BOUND));
        let env = env.with("DEVBOX_LOCK_WAIT", "2s");
        assert_eq!(Wait::for_run(&env, true).expect("wait"), Wait::Bounded(Duration::from_secs(2)));
        let bad = Environment::default().with("DEVBOX_LOCK_WAIT", "soon");
        let err = Wait::for_run(&bad, true).expect_err("not a duration");
        assert_eq!(crate::error::exit_status_of(&err), crate::error::ExitStatus::Usage);
    }

    /// `uninstall` removes the state directory, lock file and all, while it holds the lock: a run
    /// that waited on the removed file must take the lock at the path, not the removed one's.
    #[tokio::test]
    async fn a_lock_file_removed_by_its_holder_is_not_the_lock() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state");
        let held = try_acquire(&state, "uninstall").expect("lock").expect("free");
        let waiter = tokio::spawn({
            let state = state.clone();
            async move { acquire(&state, "pull", Wait::Bounded(Duration::from_secs(5)), |_| {}).await }
        });
        tokio::time::sleep(POLL * 3).await;
        std::fs::remove_dir_all(&state).expect("remove the state directory");
        // A new run makes the lock file anew and takes it, as the waiter is let go.
        let newcomer = try_acquire(&state, "registry up").expect("lock").expect("free");
        drop(held);
        tokio::time::sleep(POLL * 3).await;
        assert!(!waiter.is_finished(), "the waiter must not share the lock with the newcomer");
        drop(newcomer);
        let waited = waiter.await.expect("joined").expect("the waiter gets the lock at the path");
        assert!(still_at(&waited._file, &state.join(FILE)));
    }

    #[tokio::test]
    async fn a_held_lock_keeps_others_out_until_it_is_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let held = try_acquire(dir.path(), "registry up").expect("lock").expect("free");
        assert_eq!(read_holder(dir.path()).map(|h| h.command), Some("registry up".into()));
        // Another open file description: kept out, even in the same process.
        assert!(try_acquire(dir.path(), "pull").expect("lock").is_none());
        let err =
            acquire(dir.path(), "pull", Wait::Bounded(Duration::from_millis(250)), |_| {}).await.expect_err("busy");
        let busy = err.downcast_ref::<Error>().expect("an Error");
        assert!(matches!(busy, Error::LockBusy { holder, .. } if holder.contains(&std::process::id().to_string())));
        drop(held);
        assert_eq!(read_holder(dir.path()), None, "the holder's line goes with it");
        let again = acquire(dir.path(), "pull", Wait::Announced, |_| panic!("nothing to wait for")).await;
        assert!(again.is_ok());
        drop(again);
        // What is left between runs: the lock file, empty, and nothing else.
        let names: Vec<_> = std::fs::read_dir(dir.path()).expect("list").flatten().map(|e| e.file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from(FILE)]);
        assert_eq!(std::fs::metadata(dir.path().join(FILE)).expect("lock file").len(), 0);
    }
}
