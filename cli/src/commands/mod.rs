//! One module per command family; [`run`] dispatches a parsed command line.
//!
//! Commands validate their arguments before connecting (see `assign`), so bad input is a
//! usage error (exit 2) that never needs a control plane.

use std::time::Duration;

use crate::args::{normalize_url, Cli, Command, ConfigCommand};
use crate::client::{Admin, CliError};
use crate::model::{Change, ClusterView, Dropped};
use crate::output;

mod assign;
mod completions;
mod config;
mod functions;
mod membership;
mod migrations;
mod moves;
mod rebalance;
mod show;
mod state;
mod watch;

/// What every command needs: where the control plane is and how to print.
pub struct Ctx {
    pub url: String,
    pub json: bool,
    pub timeout: Duration,
}

impl Ctx {
    pub async fn connect(&self) -> Result<Admin, CliError> {
        Admin::connect(&self.url, self.timeout).await
    }

    /// Prints a mutation's result: its summary line, or the change document with --json.
    pub fn report_change(&self, change: &Change, dropped: Option<&Dropped>) {
        if self.json {
            let view = ClusterView::from_snapshot(change.snapshot.clone());
            output::emit_json(&output::change_doc(
                &view,
                change.changed,
                &change.summary,
                dropped,
            ));
        } else {
            output::emit(&output::render_change(change.changed, &change.summary));
            if let Some(d) = dropped.filter(|d| change.changed && d.slot_count > 0) {
                output::emit(&output::render_dropped(d, true));
            }
        }
    }
}

pub async fn run(cli: Cli) -> Result<(), CliError> {
    let ctx = Ctx {
        url: normalize_url(&cli.control_plane),
        json: cli.json,
        timeout: cli.timeout,
    };
    match cli.command {
        Command::Bootstrap(a) => membership::bootstrap(&ctx, a).await,
        Command::Join(a) => membership::join(&ctx, a).await,
        Command::Failover(a) => membership::failover(&ctx, a).await,
        Command::Replicate(a) => membership::replicate(&ctx, a).await,
        Command::Forget(a) => membership::forget(&ctx, a).await,
        Command::Assign(a) => assign::run(&ctx, a).await,
        Command::Rebalance(a) => rebalance::rebalance(&ctx, a).await,
        Command::Drain(a) => rebalance::drain(&ctx, a).await,
        Command::Migrations(a) => migrations::run(&ctx, a).await,
        Command::Status => show::status(&ctx).await,
        Command::Nodes => show::nodes(&ctx).await,
        Command::Slots => show::slots(&ctx).await,
        Command::Pending => show::pending(&ctx).await,
        Command::Watch => watch::run(&ctx).await,
        Command::Config(ConfigCommand::Set(a)) => config::set(&ctx, a).await,
        Command::Functions(a) => functions::run(&ctx, a).await,
        Command::ExportState(a) => state::export(&ctx, a).await,
        Command::ImportState(a) => state::import(&ctx, a).await,
        Command::Completions(a) => {
            completions::run(a);
            Ok(())
        }
    }
}
