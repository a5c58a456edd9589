//! How domain code reports a long transfer (an image pull), without knowing how it is drawn. It sits
//! below the engine and the domain modules; only `ui/progress.rs` draws it (indicatif bars on a TTY,
//! plain lines elsewhere, nothing under `--quiet`).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferState {
    Waiting,
    Pulling,
    Extracting,
}

impl TransferState {
    pub fn label(self) -> &'static str {
        match self {
            TransferState::Waiting => "waiting",
            TransferState::Pulling => "pulling",
            TransferState::Extracting => "extracting",
        }
    }
}

/// How domain code reports a transfer. Implementations decide how (or whether) to draw it.
pub trait Progress: Send + Sync {
    /// Every item that will be reported, in display order, before any starts.
    fn plan(&self, _items: &[String]) {}
    fn start(&self, item: &str);
    fn update(&self, item: &str, done: u64, total: u64, state: TransferState);
    fn finish(&self, item: &str, outcome: Result<&str, &str>);
}
