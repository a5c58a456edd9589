//! The errors users are expected to meet. Each says what happened and where (`Display`), what to do
//! next (`hint`), and which exit code it means. Everything else travels as `anyhow` context.
//!
//! This is the crate's vocabulary, so it depends on nothing else in the crate. Each outside system's
//! home says what happened to its requests in its own enum (`engine::EngineError`,
//! `registry::api::ApiError`, `http::NoAnswer`, `aws::ObjectError`); `engine::hint_of` finds the hint
//! of either kind in an error's chain.

use std::fmt;
use std::path::PathBuf;

/// Exit codes: 0 success, 1 failure, 2 usage or configuration error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Success,
    Failure,
    Usage,
}

impl From<ExitStatus> for u8 {
    fn from(status: ExitStatus) -> u8 {
        match status {
            ExitStatus::Success => 0,
            ExitStatus::Failure => 1,
            ExitStatus::Usage => 2,
        }
    }
}

impl From<ExitStatus> for std::process::ExitCode {
    fn from(status: ExitStatus) -> Self {
        std::process::ExitCode::from(u8::from(status))
    }
}

/// A place in a config file.
#[derive(Debug, Clone, PartialEq)]
pub struct Location {
    pub path: PathBuf,
    pub line_col: Option<(usize, usize)>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some((line, column)) = self.line_col {
            write!(f, ":{line}:{column}")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file {source_desc}: {err}")]
    Read { source_desc: String, err: std::io::Error },
    #[error("{location}: {}{message}", key.as_ref().map(|k| format!("{k}: ")).unwrap_or_default())]
    Invalid { location: Location, key: Option<String>, message: String },
}

/// One place devbox looked for a Docker engine, and why it did not answer.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub place: String,
    pub outcome: String,
    /// There was an engine's socket, and this user may not open it.
    pub denied: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),

    #[error("{0}")]
    Usage(String),

    #[error("Docker engine not reachable (tried: {})", tried.iter().map(|a| format!("{} → {}", a.place, a.outcome)).collect::<Vec<_>>().join("; "))]
    EngineUnreachable { tried: Vec<Attempt> },

    #[error("port {port} on 127.0.0.1 is already in use, so the registry cannot listen there")]
    PortBusy { port: u16 },

    #[error("the registry image {image} is not on this engine, and registry.pull = \"never\" forbids pulling it")]
    ImageNotPresent { image: String },

    #[error("cannot pull the registry image {image}: {reason}")]
    ImagePull { image: String, reason: String },

    #[error("S3 endpoint {endpoint} cannot be reached for bucket {bucket}: {reason}")]
    S3Unreachable { endpoint: String, bucket: String, reason: String },

    #[error("S3 bucket {bucket} at {endpoint}: {reason}")]
    S3Bucket { endpoint: String, bucket: String, reason: String },

    #[error("no AWS credentials for profile {profile:?}: {reason}")]
    AwsCredentials { profile: String, reason: String },

    #[error(
        "no AWS credentials for profile {profile:?}: its credential source (credential_process, SSO, assume-role) gave no answer within {seconds}s"
    )]
    AwsCredentialsTimeout { profile: String, seconds: u64 },

    #[error(
        "no AWS credentials for profile {profile:?}: its credential_process printed something that is not credentials (devbox expects JSON with Version, AccessKeyId, SecretAccessKey and Expiration)"
    )]
    AwsCredentialsUnreadable { profile: String },

    #[error("the AWS credentials of profile {profile:?} had already expired when devbox got them (at {expiry})")]
    AwsCredentialsExpired { profile: String, expiry: String },

    /// `registry.s3.session` asks for session credentials that the endpoint does not give.
    #[error(
        "registry.s3.session = \"{}\", but {endpoint} gives no session credentials: {reason}",
        if *required { "required" } else { "auto" }
    )]
    NoSessionCredentials { endpoint: String, required: bool, reason: String },

    #[error("cannot get session credentials for the registry from STS at {endpoint}: {reason}")]
    SessionCredentialsUnanswered { endpoint: String, reason: String },

    /// `session = "auto"` keeps a long-lived key from an endpoint that is not on this machine or a
    /// private network (issue 25).
    #[error(
        "registry.s3.session = \"auto\" does not hand the long-lived key to {endpoint}: it gives no session \
         credentials ({reason}), and it is not on this machine or a private network"
    )]
    LongLivedKeyWithheld { endpoint: String, reason: String },

    /// The registry answers, but S3 refuses its reads, for a reason devbox named.
    #[error("the registry {container} cannot read its storage: {cause}")]
    RegistryStorage { container: String, cause: String, fix: String },

    #[error("the registry container {container} did not become ready at {url}: {reason}")]
    RegistryNotReady { container: String, url: String, reason: String },

    #[error(
        "devbox cannot tell how to configure the registry image {image}: its command ({}) names neither \
         /etc/docker/registry/config.yml (distribution 2.8) nor /etc/distribution/config.yml (distribution 3)",
        shell_words(entrypoint, cmd)
    )]
    UnknownRegistryImage { image: String, entrypoint: Vec<String>, cmd: Vec<String> },

    /// The registry answers, but not as the config devbox gave it says it should.
    #[error("the registry container {container} ignored devbox's config: {cause}")]
    RegistryIgnoredConfig { container: String, cause: String, fix: String },

    #[error("a container named {container} exists, but devbox did not make it, so devbox leaves it alone")]
    ForeignContainer { container: String },

    #[error("no base images are configured")]
    NoBaseImages,

    #[error("the local registry at {url} is not answering: {reason}")]
    RegistryDown { url: String, reason: String },

    #[error("interrupted")]
    Interrupted,

    #[error("the registry container {container} does not exist")]
    RegistryMissing { container: String },

    #[error("devbox will not set the clock of the engine at {endpoint}: it is {runtime} ({reason}), so {}", if *remote { "its clock is that machine's" } else { "it shares this host's clock" })]
    ClockNotVm { endpoint: String, runtime: String, reason: String, remote: bool },

    #[error("cannot read the engine's clock, so there is nothing to sync against: {reason}")]
    ClockUnmeasured { reason: String },

    #[error("the clock helper needs the image {image} on the engine, and devbox never pulls for it")]
    ClockHelperImage { image: String },

    #[error("setting the VM's clock with {how} failed: {reason}")]
    ClockFix { how: String, reason: String },

    #[error(
        "{runtime}'s engine runs rootless, so a container cannot set its VM's clock (a rootless container's SYS_TIME is its own user namespace's, not the VM's)"
    )]
    ClockRootless { runtime: String, cli: Option<String> },

    #[error(
        "the engine's classification was forced ({detected}): devbox sets only the clock of an engine it has classified as a VM itself"
    )]
    ClockForced { var: String, detected: String },
    #[error(
        "the Docker engine stopped answering during cleanup ({reason}); {removed} of {planned} planned removals were done, the report above is partial"
    )]
    CleanupInterrupted { reason: String, removed: usize, planned: usize },

    #[error("the scheduler backend {backend} failed: {reason}")]
    Scheduler { backend: String, reason: String },

    #[error("cannot fetch the team config from {from}: {reason}")]
    TeamConfigFetch { from: String, reason: String },

    #[error("{key}: {why}, and there is no terminal to ask on")]
    Unanswered { key: String, flag: String, why: String },

    #[error("no release feed is configured (update.url, update.s3_bucket and update.github are all empty)")]
    NoReleaseFeed,

    #[error("cannot read the release feed {feed}: {reason}")]
    ReleaseFeed { feed: String, reason: String },

    #[error("{} was installed by {manager}, so devbox does not replace it itself", path.display())]
    PackageManaged { path: PathBuf, manager: String },

    #[error("cannot update {} to devbox {version}: {reason}", path.display())]
    UpdateFailed { path: PathBuf, version: String, reason: String },

    /// Another run holds the state directory's lock, and this one waited as long as it may.
    #[error("another devbox run holds the lock {}: {holder}; gave up after waiting {waited}", path.display())]
    LockBusy { holder: String, waited: String, path: PathBuf },

    /// A record devbox needs is there but unreadable: it is never silently made again.
    #[error("{what} in {place} is damaged: {reason}")]
    DamagedRecord { what: String, place: String, reason: String, fix: String },

    #[error("{what} {url}: {reason}")]
    InsecureUrl { what: String, url: String, reason: String },

    #[error("devbox {to} is older than this devbox {from}")]
    Downgrade { from: String, to: String },

    #[error("the team config from {from} is not the pinned one: its SHA-256 is {actual}, the pin says {expected}")]
    TeamConfigPin { from: String, expected: String, actual: String },

    #[error("the team config from {from} is not signed by a trusted key: {reason}")]
    TeamConfigSignature { from: String, reason: String },

    #[error("the team config from {from} is neither pinned nor signed, and it changes {}", keys.join(", "))]
    TeamConfigUntrusted { from: String, keys: Vec<String> },

    /// S3 refused to list or read the fleet's reports to this identity: the policy lacks the actions.
    #[error("cannot read the fleet reports: {reason}")]
    FleetReadDenied { reason: String, bucket: String, prefix: String, objects: String, profile: String },

    #[error("cannot read the fleet reports: {reason}")]
    FleetRead { reason: String },

    /// S3 refused the report's upload to this identity: the policy lacks `s3:PutObject`.
    #[error("the fleet report was not sent: {reason}")]
    FleetSendDenied { reason: String, folders: String, profile: String },

    #[error("the fleet report was not sent: {reason}")]
    FleetSend { reason: String },

    /// A file devbox makes for the fleet (the report in the state directory, `fleet --html`'s page).
    #[error("cannot write the {what} to {}: {reason}", path.display())]
    FleetWrite { what: &'static str, path: PathBuf, reason: String },
}

/// An image's entrypoint and command as one line, for messages.
fn shell_words(entrypoint: &[String], cmd: &[String]) -> String {
    let words: Vec<&str> = entrypoint.iter().chain(cmd).map(String::as_str).collect();
    if words.is_empty() { "none".to_string() } else { words.join(" ") }
}

/// The exit code an error means: the first expected `Error` in its chain decides, else failure.
pub fn exit_status_of(err: &anyhow::Error) -> ExitStatus {
    err.chain().find_map(|cause| cause.downcast_ref::<Error>()).map_or(ExitStatus::Failure, Error::exit_status)
}

impl Error {
    pub fn exit_status(&self) -> ExitStatus {
        match self {
            Error::Config(_)
            | Error::Usage(_)
            | Error::UnknownRegistryImage { .. }
            | Error::NoSessionCredentials { required: true, .. }
            | Error::LongLivedKeyWithheld { .. }
            | Error::NoBaseImages
            | Error::ClockNotVm { .. }
            | Error::ClockForced { .. }
            | Error::Unanswered { .. }
            | Error::NoReleaseFeed
            | Error::PackageManaged { .. }
            | Error::InsecureUrl { .. }
            | Error::Downgrade { .. }
            | Error::TeamConfigPin { .. }
            | Error::TeamConfigSignature { .. }
            | Error::TeamConfigUntrusted { .. } => ExitStatus::Usage,
            _ => ExitStatus::Failure,
        }
    }

    /// What to do next, in a sentence or two, with the exact command where there is one.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            Error::Config(ConfigError::Read { .. }) => {
                "Check the path, or unset --config / DEVBOX_CONFIG to use the default location (`devbox config path`).".into()
            }
            Error::Config(ConfigError::Invalid { location, .. }) => format!(
                "Fix that key in {}, then run the command again. The README's Configuration section lists every key.",
                location.path.display()
            ),
            Error::Usage(_) => "Run `devbox --help` for the commands and flags.".into(),
            Error::EngineUnreachable { tried } if tried.iter().any(|a| a.denied) => {
                "This user may not open the engine's socket: join the group that owns it (Docker's: `sudo usermod -aG docker $USER`, then log out and in), or point DOCKER_HOST at an engine this user may use.".into()
            }
            Error::EngineUnreachable { .. } => {
                "Start Docker (Docker Desktop, colima start, `podman machine start`, `sudo systemctl start docker`, …), or point DOCKER_HOST at a running engine.".into()
            }
            Error::PortBusy { port } => format!(
                "Stop whatever listens there (`lsof -iTCP:{port} -sTCP:LISTEN`), or set registry.port in devbox.toml to a free port. On macOS, port 5000 is often the AirPlay Receiver."
            ),
            Error::ImageNotPresent { image } => {
                format!("Run `docker pull {image}` or load it, or set registry.pull = \"missing\".")
            }
            Error::ImagePull { .. } => {
                "Check registry.image in devbox.toml and that the engine can reach its registry.".into()
            }
            Error::S3Unreachable { .. } => {
                "Check registry.s3.endpoint and registry.s3.region in devbox.toml, and your network or VPN.".into()
            }
            Error::S3Bucket { .. } => {
                "Check registry.s3.bucket in devbox.toml, and that your AWS identity may read it (`aws s3 ls s3://BUCKET --profile PROFILE`).".into()
            }
            Error::AwsCredentials { profile, .. } => format!(
                "Log in again (`aws sso login --profile {profile}`) or configure the profile (`aws configure --profile {profile}`), or set registry.s3.profile. Nothing was changed."
            ),
            Error::AwsCredentialsTimeout { profile, .. } => format!(
                "Run the profile's credential source by hand to see where it waits: `aws configure export-credentials --profile {profile}`. Nothing was changed."
            ),
            Error::AwsCredentialsUnreadable { profile } => format!(
                "Run it by hand (`aws configure export-credentials --profile {profile}`) and fix what it prints; its output holds secrets, so do not paste it anywhere. Nothing was changed."
            ),
            Error::AwsCredentialsExpired { profile, .. } => format!(
                "Their source hands out credentials that are already past their Expiration: check that machine's clock and what it prints (`aws configure export-credentials --profile {profile}`). Nothing was changed."
            ),
            Error::NoSessionCredentials { required: true, .. } => "An S3-compatible store without STS \
                 (MinIO, Garage, Ceph) cannot give them: set registry.s3.session = \"auto\" to hand the registry the \
                 long-lived key there (doctor then warns), or give the profile temporary credentials (SSO, \
                 assume-role). The registry was left as it was."
                .into(),
            Error::NoSessionCredentials { .. } => "STS refused to make a session from these credentials: check \
                 them, and that they may call sts:GetFederationToken (or sts:AssumeRole on registry.s3.role_arn; \
                 docs/onboarding.md lists the permissions), or set registry.s3.session = \"off\" to hand the \
                 registry the key itself. The registry was left as it was."
                .into(),
            Error::LongLivedKeyWithheld { endpoint, .. } => format!(
                "devbox hands a long-lived key only to an S3-compatible store named by its address on this machine \
                 or a private network (127.0.0.1, localhost, 10.x, 172.16-31.x, 192.168.x). Give the profile \
                 temporary credentials (SSO, assume-role), or, if you trust {endpoint} with the key itself, set \
                 registry.s3.session = \"off\". The registry was left as it was."
            ),
            Error::SessionCredentialsUnanswered { .. } => "Check registry.s3.endpoint and your network or VPN, then \
                 run the command again. The registry was left as it was."
                .into(),
            Error::RegistryStorage { fix, .. } => fix.clone(),
            Error::RegistryNotReady { container, .. } => {
                format!("See what the registry said: `devbox registry logs --no-follow` (container {container}).")
            }
            Error::UnknownRegistryImage { .. } => "Set registry.image to an official registry image (registry:3.0.0 or \
                 registry:2.8.3) or one laid out like it, whose command is the path of its config file."
                .into(),
            Error::RegistryIgnoredConfig { fix, .. } => fix.clone(),
            Error::ForeignContainer { container } => format!(
                "Remove it yourself (`docker rm -f {container}`) if it is not needed, or set registry.container in devbox.toml to another name."
            ),
            Error::NoBaseImages => {
                "Set images.base in devbox.toml (e.g. [\"base/python:3.12\"]), or name the images: devbox pull base/python:3.12".into()
            }
            Error::RegistryDown { .. } => "Start it with `devbox registry up`, then pull again.".into(),
            Error::Interrupted => {
                "Run the same command again to finish: it keeps what this run did and goes on from there (a pull moves no alias until its image is whole).".into()
            }
            Error::RegistryMissing { .. } => "Create it with `devbox registry up`.".into(),
            Error::ClockNotVm { remote: false, .. } => "Keep this host's clock right with NTP instead: `timedatectl set-ntp true` \
                 (systemd-timesyncd), or chrony (`chronyc tracking` shows its state). Nothing was changed."
                .into(),
            Error::ClockNotVm { remote: true, .. } => {
                "Fix that machine's clock with NTP there (`timedatectl set-ntp true`, or chrony). Nothing was changed.".into()
            }
            Error::ClockUnmeasured { .. } => "Start Docker, then run `devbox clock check`.".into(),
            Error::ClockHelperImage { image } => format!(
                "Run `devbox registry up` (it brings the registry image), or `docker pull {image}` yourself. Nothing was changed."
            ),
            Error::ClockRootless { cli: Some(cli), .. } => format!(
                "Put the runtime's CLI on PATH: devbox then sets the clock through `{cli}` (a root shell in the VM). By hand: \
                 `podman machine ssh \"sudo chronyc -m 'burst 4/4' makestep\"`, or `podman machine ssh \"sudo date -u -s @$(date -u +%s)\"`."
            ),
            Error::ClockRootless { cli: None, .. } => "Set the clock from a root shell inside the VM (`sudo date -u -s @<seconds>`), \
                 or restart the VM.".into(),
            Error::ClockFix { .. } => "The registry was left as it was, and nothing else was changed. \
                 Restart the Docker VM (Docker Desktop: Restart; `colima restart`; `podman machine stop && podman machine start`; \
                 WSL2: `wsl --shutdown`) to reset its clock."
                .into(),
            Error::ClockForced { var, .. } => format!("{var} is a testing aid for `devbox clock sync --dry-run`; unset it."),
            Error::CleanupInterrupted { .. } => {
                "Start Docker again, then run `devbox cleanup`: the plan is computed afresh from what is left.".into()
            }
            Error::Scheduler { backend, .. } => format!(
                "Nothing outside devbox's own entries was changed. Fix the {backend} problem above, or choose another backend: `devbox schedule install --backend cron|systemd|launchd|taskscheduler`."
            ),
            Error::TeamConfigFetch { .. } => {
                "Check the address (a path, https://…, or s3://BUCKET/KEY) and your access to it. Nothing was written.".into()
            }
            Error::Unanswered { key, flag, .. } => {
                format!("Pass {flag}, or set {key} in devbox.toml (`devbox config path`), or run `devbox init` on a terminal to be asked.")
            }
            Error::NoReleaseFeed => {
                "Set update.github (\"owner/repo\"), update.url or update.s3_bucket in devbox.toml, or DEVBOX_DOWNLOAD_URL.".into()
            }
            Error::ReleaseFeed { .. } => {
                "Nothing was changed. Check the update keys (`devbox config show`) and your network, then run it again.".into()
            }
            Error::PackageManaged { manager, .. } => format!(
                "Update devbox with {manager} (e.g. `brew upgrade devbox`, `sudo apt-get install --only-upgrade devbox`). Nothing was changed."
            ),
            Error::LockBusy { holder, .. } => format!(
                "Run it again once {holder} has finished (it goes on by itself; if it hangs, stop it). \
                 DEVBOX_LOCK_WAIT sets how long a quiet or scheduled run waits (e.g. 30m)."
            ),
            Error::DamagedRecord { fix, .. } => fix.clone(),
            Error::UpdateFailed { path, .. } => format!(
                "Nothing was replaced: {} is still devbox {}. Run `devbox self-update` again, or reinstall with install.sh.",
                path.display(),
                // The build's version, as `update::CURRENT_VERSION` has it; named here from the
                // compiler so the error vocabulary needs nothing from the crate.
                env!("CARGO_PKG_VERSION")
            ),
            Error::InsecureUrl { what, .. } => format!(
                "Use the https:// address for {what} (plain http:// only to 127.0.0.1, [::1] or localhost). Nothing was fetched or changed."
            ),
            Error::Downgrade { to, .. } => {
                format!("To go back on purpose: `devbox self-update --version {to} --allow-downgrade`. Nothing was changed.")
            }
            Error::TeamConfigPin { .. } => "Nothing was written. Ask the platform team for the current pin \
                (`sha256sum devbox.toml`), or check who changed the file at its source."
                .into(),
            Error::TeamConfigSignature { .. } => "Nothing was written. Ask the platform team to sign the file with \
                their key (`minisign -S -m devbox.toml`), or pass the key they publish with --key if it changed."
                .into(),
            Error::TeamConfigUntrusted { .. } => "Nothing was written. Pin the file (--from SRC#sha256=HEX), have it \
                signed (SRC.minisig, with --key KEY), answer yes on a terminal, or pass --trust-unsigned if you \
                trust whoever can change it."
                .into(),
            Error::FleetReadDenied { bucket, prefix, objects, profile, .. } => format!(
                "Reading them needs s3:ListBucket on {bucket} (for the prefix {prefix}) and s3:GetObject on \
                 {objects}* for this AWS identity (profile {profile:?}); docs/onboarding.md has the policy."
            ),
            Error::FleetRead { .. } => "Check fleet.bucket and your access to it (`devbox doctor --check \
                aws-credentials`), then run it again."
                .into(),
            Error::FleetSendDenied { folders, profile, .. } => format!(
                "Allow s3:PutObject on {folders}${{aws:userid}}/* for this machine's AWS identity (profile \
                 {profile:?}); docs/onboarding.md has the policy. The report was written locally all the same."
            ),
            Error::FleetSend { .. } => "Check fleet.bucket and your access to it (`devbox doctor --check \
                aws-credentials`), then send it again with `devbox doctor --report`."
                .into(),
            Error::FleetWrite { what: "fleet page", .. } => {
                "Give --html a path in a directory that exists and that you may write to.".into()
            }
            Error::FleetWrite { path, .. } => format!(
                "Check that {} is writable and its disk has room, then run it again.",
                path.parent().unwrap_or(path).display()
            ),
        })
    }
}

/// An error and its causes, as people read them: each message once (a wrapper often repeats its
/// source's message inside its own), outermost first. Works for `anyhow::Error` (`chain(&*err)`,
/// or `err.as_ref()`) and any `std::error::Error`.
pub fn causes(err: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(cause) = next {
        let text = cause.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = cause.source();
    }
    parts
}

/// The kind of the first I/O error among `err` and its causes.
pub fn io_kind(err: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let mut next = Some(err);
    while let Some(err) = next {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        next = err.source();
    }
    None
}

/// An error with its causes on one line, joined by ": ". The one formatter of error chains.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    causes(err).join(": ")
}

#[cfg(test)]
#[path = "error_tests.rs"]
mod tests;
