//! The read commands: `status`, `nodes`, `slots`, `pending`. Each is one GetState call
//! rendered as a table or as JSON (schema in cli/README-JSON.md).

use crate::client::CliError;
use crate::commands::Ctx;
use crate::output;

pub async fn status(ctx: &Ctx) -> Result<(), CliError> {
    let view = ctx.connect().await?.state().await?;
    if ctx.json {
        output::emit_json(&output::cluster_doc(&view));
    } else {
        output::emit(&output::render_status(&view));
    }
    Ok(())
}

pub async fn nodes(ctx: &Ctx) -> Result<(), CliError> {
    let view = ctx.connect().await?.state().await?;
    if ctx.json {
        output::emit_json(&output::cluster_doc(&view));
    } else {
        output::emit(&output::render_nodes(&view));
    }
    Ok(())
}

pub async fn slots(ctx: &Ctx) -> Result<(), CliError> {
    let view = ctx.connect().await?.state().await?;
    if ctx.json {
        output::emit_json(&output::slots_doc(&view.snapshot));
    } else {
        output::emit(&output::render_slots(&view.snapshot));
    }
    Ok(())
}

pub async fn pending(ctx: &Ctx) -> Result<(), CliError> {
    let view = ctx.connect().await?.state().await?;
    if ctx.json {
        output::emit_json(&output::pending_doc(&view));
    } else {
        output::emit(&output::render_pending(&view));
    }
    Ok(())
}
