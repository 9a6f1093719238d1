//! `emberctl assign NODE SLOTS...`: free slots move at once, owned ones by live migration
//! (the control plane decides which; emberctl only validates and reports).

use crate::args::AssignArgs;
use crate::client::CliError;
use crate::commands::Ctx;

pub async fn run(ctx: &Ctx, a: AssignArgs) -> Result<(), CliError> {
    // Before connecting: a typo in a slot must never cost a round trip, nor need a
    // reachable control plane to be reported.
    let ranges = a
        .slot_ranges()
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let mut admin = ctx.connect().await?;
    let change = admin.assign(a.node, &ranges).await?;
    ctx.report_change(&change, None);
    Ok(())
}
