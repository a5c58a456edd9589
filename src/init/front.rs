//! Whoever runs `init` (a terminal's prompts, in `cli/init/ask.rs`; `--yes`): the one seam between
//! `init`'s domain and its front. `init/run.rs` holds a `Front`, `init/ask.rs` asks through it.

use crate::clock::sync::SyncReport;
use crate::config::Config;
use crate::progress::Progress;

/// Whoever runs `init`: it answers the questions and shows what `init` has to show on the way.
pub trait Front: Sync {
    /// Whether someone can answer questions (a terminal, and not `--yes`).
    fn interactive(&self) -> bool;
    /// The team's S3 bucket; empty for none (filesystem storage).
    fn bucket(&self) -> anyhow::Result<String>;
    fn region(&self, default: &str) -> anyhow::Result<String>;
    /// An AWS profile: one of `found` (from ~/.aws/config), or typed in when there are none.
    fn profile(&self, default: &str, found: &[String]) -> anyhow::Result<String>;
    /// Another port for the registry, as `why` says `busy` is taken.
    fn port(&self, why: &str, suggestion: Option<u16>) -> anyhow::Result<u16>;
    /// Whether to apply the team config from `from`, neither pinned nor signed, which changes the
    /// trust-relevant `keys`. Asked only when `interactive`.
    fn trust(&self, from: &str, keys: &[String]) -> anyhow::Result<bool>;
    /// One line of the difference between the config file now and as it will be written.
    fn diff_line(&self, line: &str);
    /// A detail for `--verbose`: which engine, which scheduler.
    fn detail(&self, text: String);
    /// How the registry's and the pull's progress is shown inside `init` (one line per step).
    fn progress(&self) -> Box<dyn Progress>;
    /// How the clock step's sync is shown.
    fn clock_report<'a>(&'a self, config: &Config) -> Box<dyn SyncReport + 'a>;
}

/// Whether nothing listens on 127.0.0.1:`port` (binding it is the one sure test).
pub fn port_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}
