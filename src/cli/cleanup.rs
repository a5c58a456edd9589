//! `devbox cleanup [--dry-run] [--json]`

use clap::Args;
use serde::Serialize;

use crate::cleanup::plan::{Plan, Removal};
use crate::cleanup::{self, Outcome, Step};
use crate::cli::Context;
use crate::config::ByteSize;
use crate::disk::DiskUsage;
use crate::error::{Error, ExitStatus};
use crate::paths::Paths;
use crate::ui::Mark;

#[derive(Debug, Args)]
pub struct CleanupArgs {
    /// Print the plan and change nothing
    #[arg(long)]
    dry_run: bool,

    /// Print the plan and its outcome as JSON
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Report<'a> {
    dry_run: bool,
    /// The engine's data disk before the cleanup, where it is (inside a VM engine).
    disk: Option<&'a DiskUsage>,
    plan: &'a Plan,
    outcome: Option<&'a Outcome>,
}

impl CleanupArgs {
    pub async fn run(self, ctx: &Context) -> anyhow::Result<ExitStatus> {
        let config = ctx.config()?.config;
        let policy = cleanup::policy(&config);
        let paths = Paths::resolve(&ctx.env)?;
        let engine = ctx.engine().await?;
        // The plan is made from what is there once no other run is pulling or tagging: a dry run
        // changes nothing and waits for no one.
        let _lock = if self.dry_run { None } else { Some(ctx.lock("cleanup").await?) };
        let pulls = cleanup::read_pulls(paths.state_dir());
        let (plan, disk) = tokio::join!(
            cleanup::make_plan(&engine, &policy, &pulls),
            cleanup::engine_disk(&engine, &ctx.env, &config)
        );
        let plan = plan?;
        if !self.json {
            match &disk {
                Ok((usage, engine)) => ctx.printer.line(format!("engine disk: {}", usage.describe(engine))),
                Err(why) => ctx.printer.mark(Mark::Warn, format!("the engine's disk was not measured: {why}")),
            }
            print_plan(ctx, &plan);
        }
        let disk = disk.as_ref().ok().map(|(usage, _)| usage);
        if plan.is_empty() && !plan.build_cache && !self.json {
            ctx.printer.mark(Mark::Same, "nothing to remove");
            return Ok(ExitStatus::Success);
        }
        if self.dry_run {
            if self.json {
                ctx.printer.json(&Report { dry_run: true, disk, plan: &plan, outcome: None })?;
            } else {
                ctx.printer.line("dry run: nothing was removed");
            }
            return Ok(ExitStatus::Success);
        }
        let outcome = cleanup::carry_out(&engine, &plan, policy.older_than).await;
        if self.json {
            ctx.printer.json(&Report { dry_run: false, disk, plan: &plan, outcome: Some(&outcome) })?;
        } else {
            print_outcome(ctx, &outcome);
        }
        if let Some(reason) = &outcome.engine_lost {
            let removed = outcome.containers.removed.len()
                + outcome.dangling_images.removed.len()
                + outcome.evicted_images.removed.len();
            let planned = plan.containers.len() + plan.dangling_images.len() + plan.evicted_images.len();
            return Err(Error::CleanupInterrupted { reason: reason.clone(), removed, planned }.into());
        }
        Ok(if outcome.failures() == 0 { ExitStatus::Success } else { ExitStatus::Failure })
    }
}

fn size(bytes: Option<u64>) -> String {
    bytes.map(|b| ByteSize(b).to_string()).unwrap_or_default()
}

fn print_plan(ctx: &Context, plan: &Plan) {
    let p = &ctx.printer;
    p.line(format!(
        "cleanup plan, by the {} clock ({}): grace {}, so anything stopped before {} may go",
        if plan.engine_time <= plan.host_time { "engine's" } else { "host's" },
        plan.engine_time.min(plan.host_time).strftime("%Y-%m-%d %H:%M:%S UTC"),
        plan.older_than,
        plan.cutoff.strftime("%Y-%m-%d %H:%M:%S UTC"),
    ));
    if let Some(note) = &plan.clock_note {
        p.mark(Mark::Warn, note);
        p.hint("run: devbox clock check");
    }
    let section = |title: String, items: &[Removal]| {
        p.line(format!("{title} ({}):", items.len()));
        for r in items {
            let id = crate::cleanup::plan::short_id(&r.id);
            p.line(format!("  - {id}  {}  {}  {}", r.name, r.reason, size(r.size)).trim_end());
        }
    };
    section("stopped containers".into(), &plan.containers);
    let how = if plan.dangling_by_prune { "by the engine's prune with filters" } else { "one by one" };
    section(format!("dangling images, {how}"), &plan.dangling_images);
    if let Some(max) = plan.max_disk {
        section(
            format!(
                "least recently used images, to fit max_disk {} (images take {}, {} after)",
                ByteSize(max),
                ByteSize(plan.images_size_before),
                ByteSize(plan.images_size_after)
            ),
            &plan.evicted_images,
        );
    }
    if let Some(note) = &plan.max_disk_note {
        p.mark(Mark::Warn, note);
    }
    if plan.build_cache {
        p.line(format!("build cache: entries unused for {} (`docker builder prune` semantics)", plan.older_than));
    }
    let kept_containers = plan.kept.iter().filter(|k| k.kind == crate::cleanup::plan::Kind::Container).count();
    p.line(format!(
        "kept: {kept_containers} containers, {} images, every volume{}",
        plan.kept.len() - kept_containers,
        if p.verbose { "" } else { " (-v says why)" }
    ));
    for k in &plan.kept {
        p.detail(format!("  = {} {} ({:?}): {}", k.id, k.name, k.kind, k.reason));
    }
}

fn print_outcome(ctx: &Context, outcome: &Outcome) {
    let p = &ctx.printer;
    let line = |what: &str, step: &Step| {
        let mut text = format!("{what}: {} removed, {} freed", step.removed.len(), ByteSize(step.space_freed));
        if !step.space_source.is_empty() && step.space_freed > 0 {
            text.push_str(&format!(" ({})", step.space_source));
        }
        p.mark(if step.failed.is_empty() && step.not_attempted.is_empty() { Mark::Ok } else { Mark::Fail }, text);
        for (id, why) in &step.failed {
            p.mark(Mark::Fail, format!("  {}: {why}", crate::cleanup::plan::short_id(id)));
        }
        if !step.not_attempted.is_empty() {
            p.mark(Mark::Fail, format!("  {} not attempted: the engine stopped answering", step.not_attempted.len()));
        }
        for id in &step.also_removed {
            p.mark(
                Mark::Warn,
                format!(
                    "  {}: also removed by the engine's prune (it matched the filters by then)",
                    crate::cleanup::plan::short_id(id)
                ),
            );
        }
    };
    line("stopped containers", &outcome.containers);
    line("dangling images", &outcome.dangling_images);
    line("least recently used images", &outcome.evicted_images);
    if let Some(step) = &outcome.build_cache {
        line("build cache", step);
    }
    p.line(format!("{} freed in {:.2}s", ByteSize(outcome.space_freed()), outcome.seconds));
}
