//! The questions `init` asks on a terminal: the S3 bucket, its region and profile, and another
//! port when the registry's is busy. Each has a flag, so that nothing is asked under `--yes` or
//! without a terminal; a question with no answer there fails, naming its flag.

use std::path::PathBuf;

use crate::cli::init::{Run, port_free};
use crate::config::{self, StorageChoice};
use crate::error::Error;
use crate::init::answers::{self, Question};
use crate::ui;

impl Run<'_> {
    fn interactive(&self) -> bool {
        !self.args.yes && ui::interactive(&self.ctx.printer)
    }

    /// Bucket, then region and profile: from the flags, or asked on a terminal when missing.
    pub(super) fn ask_about_s3(&mut self) -> anyhow::Result<()> {
        let user: toml::Table = match &self.base {
            Some(text) => toml::from_str(text)?,
            None => toml::Table::new(),
        };
        let filesystem = self.config.registry.storage == StorageChoice::Filesystem;
        let mut bucket_now = false;
        if let Some(bucket) = self.args.bucket.clone() {
            config::BucketName::try_from(bucket.clone()).map_err(|why| Error::Usage(format!("--bucket: {why}")))?;
            bucket_now = self.config.registry.s3.bucket.as_ref().map(|b| b.to_string()) != Some(bucket.clone());
            if bucket_now {
                self.answer(Question::Bucket, toml::Value::String(bucket))?;
            }
        }
        let bucket_set = self.config.registry.s3.bucket.is_some();
        for question in answers::s3_questions(&user, bucket_set, filesystem, false) {
            if question == Question::Bucket && self.interactive() {
                let answer = ui::input(
                    &self.ctx.printer,
                    "S3 bucket of the team's registry (empty: none, use local filesystem storage)",
                    "",
                    |text| {
                        if text.is_empty() {
                            Ok(())
                        } else {
                            config::BucketName::try_from(text.to_string()).map(|_| ())
                        }
                    },
                )?;
                if !answer.is_empty() {
                    self.answer(Question::Bucket, toml::Value::String(answer))?;
                    bucket_now = true;
                }
            }
        }
        let flags = [(Question::Region, self.args.region.clone()), (Question::Profile, self.args.profile.clone())];
        for (question, flag) in flags {
            if let Some(value) = flag {
                self.answer(question, toml::Value::String(value))?;
            }
        }
        for question in answers::s3_questions(&user, true, filesystem, bucket_now) {
            let already = self.answers.iter().any(|(q, _)| *q == question);
            if already || !self.interactive() {
                continue;
            }
            let value = match question {
                Question::Region => {
                    let default = self.config.registry.s3.region.clone();
                    ui::input(&self.ctx.printer, "The bucket's AWS region", &default, |text| {
                        if text.is_empty() { Err("a region is needed, e.g. us-east-1".into()) } else { Ok(()) }
                    })?
                }
                Question::Profile => self.ask_profile()?,
                _ => continue,
            };
            self.answer(question, toml::Value::String(value))?;
        }
        Ok(())
    }

    /// Offers the profiles in ~/.aws/config, with the configured default first.
    fn ask_profile(&self) -> anyhow::Result<String> {
        let default = self.config.registry.s3.profile.clone();
        let file = match self.ctx.env.var("AWS_CONFIG_FILE") {
            Some(path) => PathBuf::from(path),
            None => self.ctx.env.home().unwrap_or_default().join(".aws/config"),
        };
        let found = answers::aws_profiles(&std::fs::read_to_string(file).unwrap_or_default());
        if found.is_empty() {
            return ui::input(&self.ctx.printer, "AWS profile for the bucket (from ~/.aws/config)", &default, |_| {
                Ok(())
            });
        }
        let mut items = found;
        if !items.contains(&default) {
            items.insert(0, default.clone());
        }
        let start = items.iter().position(|p| *p == default).unwrap_or(0);
        let picked = ui::select(&self.ctx.printer, "AWS profile for the bucket", &items, start)?;
        Ok(items.swap_remove(picked))
    }

    pub(super) fn choose_port(&mut self, busy: u16) -> anyhow::Result<String> {
        let why = format!("port {busy} on 127.0.0.1 is in use by something else");
        if self.args.port == Some(busy) || !self.interactive() {
            if self.args.port == Some(busy) {
                return Err(Error::PortBusy { port: busy }.into());
            }
            return Err(Error::Unanswered {
                key: Question::Port.key().into(),
                flag: Question::Port.flag().into(),
                why,
            }
            .into());
        }
        let suggestion = answers::suggest_port(busy, port_free).map(|p| p.to_string()).unwrap_or_default();
        let answer =
            ui::input(&self.ctx.printer, &format!("{why}; the registry's port"), &suggestion, |text| {
                match text.parse::<u16>() {
                    Ok(p) if p > 0 && port_free(p) => Ok(()),
                    Ok(p) if p > 0 => Err(format!("port {p} is in use too")),
                    _ => Err("a port between 1 and 65535".into()),
                }
            })?;
        let port: u16 = answer.parse().map_err(|_| Error::Usage(format!("not a port: {answer}")))?;
        self.answer(Question::Port, toml::Value::Integer(i64::from(port)))?;
        Ok(format!("port {port} is free (was {busy}, in use)"))
    }
}
