//! What `init` asks for, and of whom: the S3 bucket, its region and profile, and another port when
//! the registry's is busy. The flags answer in advance; what is still missing is asked through
//! `front::Front` (a terminal's prompts, in `cli/init/ask.rs`), and only when `Front::interactive` says
//! someone can answer. A question with no one to answer it fails, naming its flag.

use std::path::PathBuf;

use crate::config::{self, StorageChoice};
use crate::error::Error;
use crate::init::answers::{self, Question};
use crate::init::front::port_free;
use crate::init::run::Run;

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
