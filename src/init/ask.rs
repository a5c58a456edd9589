//! What `init` asks for, and of whom: the S3 bucket, its region and profile, and another port when
//! the registry's is busy. The flags answer in advance; what is still missing is asked through
//! `Front` (a terminal's prompts, in `cli/init/ask.rs`), and only when `Front::interactive` says
//! someone can answer. A question with no one to answer it fails, naming its flag.

use std::path::PathBuf;

use crate::clock::sync::SyncReport;
use crate::config::{self, Config, StorageChoice};
use crate::error::Error;
use crate::init::answers::{self, Question};
use crate::init::run::Run;
use crate::ui::Progress;

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

impl Run<'_> {
    /// Bucket, then region and profile: from the flags, or asked when missing.
    pub(super) fn ask_about_s3(&mut self) -> anyhow::Result<()> {
        let user: toml::Table = match &self.base {
            Some(text) => toml::from_str(text)?,
            None => toml::Table::new(),
        };
        let filesystem = self.config.registry.storage == StorageChoice::Filesystem;
        let mut bucket_now = false;
        if let Some(bucket) = self.options.bucket.clone() {
            config::BucketName::try_from(bucket.clone()).map_err(|why| Error::Usage(format!("--bucket: {why}")))?;
            bucket_now = self.config.registry.s3.bucket.as_ref().map(|b| b.to_string()) != Some(bucket.clone());
            if bucket_now {
                self.answer(Question::Bucket, toml::Value::String(bucket))?;
            }
        }
        let bucket_set = self.config.registry.s3.bucket.is_some();
        for question in answers::s3_questions(&user, bucket_set, filesystem, false) {
            if question == Question::Bucket && self.front.interactive() {
                let answer = self.front.bucket()?;
                if !answer.is_empty() {
                    self.answer(Question::Bucket, toml::Value::String(answer))?;
                    bucket_now = true;
                }
            }
        }
        let flags =
            [(Question::Region, self.options.region.clone()), (Question::Profile, self.options.profile.clone())];
        for (question, flag) in flags {
            if let Some(value) = flag {
                self.answer(question, toml::Value::String(value))?;
            }
        }
        for question in answers::s3_questions(&user, true, filesystem, bucket_now) {
            let already = self.answers.iter().any(|(q, _)| *q == question);
            if already || !self.front.interactive() {
                continue;
            }
            let value = match question {
                Question::Region => self.front.region(&self.config.registry.s3.region)?,
                Question::Profile => {
                    let file = match self.env.var("AWS_CONFIG_FILE") {
                        Some(path) => PathBuf::from(path),
                        None => self.env.home().unwrap_or_default().join(".aws/config"),
                    };
                    let found = answers::aws_profiles(&std::fs::read_to_string(file).unwrap_or_default());
                    self.front.profile(&self.config.registry.s3.profile, &found)?
                }
                _ => continue,
            };
            self.answer(question, toml::Value::String(value))?;
        }
        Ok(())
    }

    /// The registry's port is held by something else: another one, from `--port` or asked.
    pub(super) fn choose_port(&mut self, busy: u16) -> anyhow::Result<String> {
        let why = format!("port {busy} on 127.0.0.1 is in use by something else");
        if self.options.port == Some(busy) {
            return Err(Error::PortBusy { port: busy }.into());
        }
        if !self.front.interactive() {
            return Err(Error::Unanswered {
                key: Question::Port.key().into(),
                flag: Question::Port.flag().into(),
                why,
            }
            .into());
        }
        let port = self.front.port(&why, answers::suggest_port(busy, port_free))?;
        self.answer(Question::Port, toml::Value::Integer(i64::from(port)))?;
        Ok(format!("port {port} is free (was {busy}, in use)"))
    }
}
