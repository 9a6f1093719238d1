//! `emberctl rebalance` and `emberctl drain NODE`: ask the control plane for a plan
//! (PlanMoves), print it, and unless `--dry-run` run it with [`moves::run`].

use crate::args::{DrainArgs, MoveArgs};
use crate::client::CliError;
use crate::commands::{moves, Ctx};
use crate::output;

pub async fn rebalance(ctx: &Ctx, a: MoveArgs) -> Result<(), CliError> {
    plan_and_run(ctx, None, a, "emberctl rebalance").await
}

pub async fn drain(ctx: &Ctx, a: DrainArgs) -> Result<(), CliError> {
    let again = format!("emberctl drain {}", a.node);
    plan_and_run(ctx, Some(a.node), a.moves, &again).await
}

async fn plan_and_run(
    ctx: &Ctx,
    drain: Option<String>,
    a: MoveArgs,
    again: &str,
) -> Result<(), CliError> {
    let mut admin = ctx.connect().await?;
    let plan = admin.plan_moves(drain.clone()).await?;
    if ctx.json {
        output::emit_json(&output::plan_event(&plan.snapshot, &plan.moves));
    } else if plan.moves.is_empty() {
        output::emit(match drain {
            Some(_) => "nothing to move: the node owns no slots",
            None => "already balanced: nothing to move",
        });
    } else {
        output::emit(&output::render_plan(&plan.snapshot, &plan.moves));
    }
    if a.dry_run {
        return Ok(());
    }
    if plan.moves.is_empty() {
        if ctx.json {
            crate::progress::Reporter::new(true, 0).done(0, 0, 0);
        }
        return Ok(());
    }
    moves::run(ctx, &mut admin, plan.moves, a.parallel, again).await
}
