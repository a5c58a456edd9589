//! `devbox init [--from SRC] [--yes] [--dry-run] [--skip STEP]…`
//!
//! Parses the flags, hands them to the run (`crate::init::run`: fetching and validating a team
//! config, the answers, the steps), and prints one line per step and the summary. The questions
//! are asked on a terminal by `init/ask.rs`.

mod ask;

use clap::Args;

use crate::cli::Context;
use crate::error::{Error, ExitStatus};
use crate::init::run::{Options, Run};
use crate::init::{Outcome, Step, summary};
use crate::ui::{Mark, Printer};

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Take the team's devbox.toml from a path, an https:// URL or s3://BUCKET/KEY; SRC#sha256=HEX
    /// pins it by its hash
    #[arg(long, value_name = "SRC")]
    from: Option<String>,

    /// The team's minisign public key (or a path to it): SRC.minisig must be signed by it, and it
    /// is recorded, so every later --from must be signed too
    #[arg(long, value_name = "KEY", requires = "from")]
    key: Option<String>,

    /// Apply a team config that is neither pinned nor signed even when it changes the registry
    /// image, the S3 endpoint or session, the update feed or the fleet bucket
    #[arg(long, requires = "from")]
    trust_unsigned: bool,

    /// Ask nothing: take the defaults, or fail naming the flag when there is none
    #[arg(short, long)]
    yes: bool,

    /// Print what would change, and change nothing
    #[arg(long)]
    dry_run: bool,

    /// Leave out a step (repeatable)
    #[arg(long, value_enum, value_name = "STEP")]
    skip: Vec<Step>,

    /// The team's S3 bucket (registry.s3.bucket)
    #[arg(long, value_name = "NAME")]
    bucket: Option<String>,

    /// The bucket's region (registry.s3.region)
    #[arg(long, value_name = "REGION")]
    region: Option<String>,

    /// The AWS profile for the bucket (registry.s3.profile)
    #[arg(long, value_name = "NAME")]
    profile: Option<String>,

    /// The registry's port on 127.0.0.1 (registry.port)
    #[arg(long, value_name = "PORT")]
    port: Option<u16>,
}

impl InitArgs {
    pub async fn run(self, ctx: &Context) -> anyhow::Result<ExitStatus> {
        let front = ask::Terminal::new(ctx, self.yes);
        let dry_run = self.dry_run;
        let options = Options {
            from: self.from,
            key: self.key,
            trust_unsigned: self.trust_unsigned,
            dry_run,
            skip: self.skip,
            bucket: self.bucket,
            region: self.region,
            profile: self.profile,
            port: self.port,
        };
        let mut run = Run::prepare(&ctx.env, ctx.config_source()?, options, &front).await?;
        // Taken once the questions are answered and preflight has passed: a run waits for no one's
        // prompt, and one that stops at preflight changes nothing.
        let lock = (!dry_run).then(|| ctx.lock("init"));
        let ran = run.run(lock, |step, outcome| print_step(&ctx.printer, step, outcome)).await;
        let (text, failed) = summary(&ran.results, dry_run);
        ctx.printer.line("");
        ctx.printer.mark(if failed { Mark::Fail } else { Mark::Ok }, text);
        // What the run set up (or, with --dry-run, would): not the file as it was before.
        ctx.printer.hint(crate::fleet::reporting_sentence(run.config()));
        if ran.interrupted {
            return Err(Error::Interrupted.into());
        }
        Ok(ran.status(failed))
    }
}

fn print_step(p: &Printer, step: Step, outcome: &Outcome) {
    let name = format!("{:<10}", step.name());
    match outcome {
        Outcome::Changed(text) | Outcome::Checked(text) | Outcome::WouldChange(text) => {
            p.mark(Mark::Ok, format!("{name}{text}"))
        }
        Outcome::Same(text) => p.mark(Mark::Same, format!("{name}{text}")),
        Outcome::Failed { message, hint } => {
            p.mark(Mark::Fail, format!("{name}{message}"));
            if let Some(hint) = hint {
                p.hint(format!("{:10}hint: {hint}", ""));
            }
        }
        Outcome::Skipped(why) => p.mark(Mark::Skip, format!("{name}skipped ({why})")),
        Outcome::Blocked(root) => p.mark(Mark::Skip, format!("{name}not run: {} failed", root.name())),
    }
}
