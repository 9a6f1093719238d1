//! `emberctl migrations` (running ones with progress, and recently finished ones) and
//! `emberctl migrations cancel ID`.

use crate::args::{MigrationsArgs, MigrationsCommand};
use crate::client::CliError;
use crate::commands::Ctx;
use crate::output;

pub async fn run(ctx: &Ctx, a: MigrationsArgs) -> Result<(), CliError> {
    let mut admin = ctx.connect().await?;
    match a.action {
        Some(MigrationsCommand::Cancel(c)) => {
            let change = admin.cancel_migration(c.id).await?;
            ctx.report_change(&change, None);
        }
        None => {
            let view = admin.state().await?;
            if ctx.json {
                output::emit_json(&output::migrations_doc(&view));
            } else {
                output::emit(&output::render_migrations(&view));
            }
        }
    }
    Ok(())
}
