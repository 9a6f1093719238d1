//! `emberctl config set KEY VALUE`: cluster-wide settings (SetConfig).

use crate::args::{ConfigKey, ConfigSetArgs};
use crate::client::CliError;
use crate::commands::Ctx;

pub async fn set(ctx: &Ctx, a: ConfigSetArgs) -> Result<(), CliError> {
    let mut admin = ctx.connect().await?;
    let change = match a.key {
        ConfigKey::RequireFullCoverage => {
            admin.set_require_full_coverage(a.value.as_bool()).await?
        }
    };
    ctx.report_change(&change, None);
    Ok(())
}
