//! Membership changes: `bootstrap`, `join`, `forget`. NODE arguments go to the control
//! plane as typed; it resolves ids, id prefixes, names and host:port authoritatively.

use ember_core::topology::resolve_node;

use crate::args::{BootstrapArgs, ForgetArgs, JoinArgs};
use crate::client::CliError;
use crate::commands::Ctx;
use crate::model::{ClusterView, Dropped};
use crate::output;

pub async fn bootstrap(ctx: &Ctx, a: BootstrapArgs) -> Result<(), CliError> {
    let change = ctx.connect().await?.bootstrap(a.nodes).await?;
    ctx.report_change(&change, None);
    Ok(())
}

pub async fn join(ctx: &Ctx, a: JoinArgs) -> Result<(), CliError> {
    let change = ctx.connect().await?.join(a.node, a.replica_of).await?;
    ctx.report_change(&change, None);
    Ok(())
}

pub async fn forget(ctx: &Ctx, a: ForgetArgs) -> Result<(), CliError> {
    let mut admin = ctx.connect().await?;
    let dropped = if a.force {
        what_forget_drops(&admin.state().await?, &a.node)
    } else {
        None
    };
    if let Some(d) = dropped.as_ref().filter(|d| d.slot_count > 0) {
        // With --json, stdout carries only the JSON document.
        let line = output::render_dropped(d, false);
        if ctx.json {
            eprintln!("{line}");
        } else {
            output::emit(&line);
        }
    }
    let change = admin.forget(a.node, a.force).await?;
    ctx.report_change(&change, dropped.as_ref());
    Ok(())
}

/// What forgetting `query` would drop, as far as emberctl can tell from `view`. `None`
/// when the name does not resolve here: the control plane will say why.
pub fn what_forget_drops(view: &ClusterView, query: &str) -> Option<Dropped> {
    let n = resolve_node(view.all_nodes(), query).ok()?;
    let slots = view.snapshot.topology.slots.ranges_of(&n.id);
    Some(Dropped {
        node: n.label(),
        slot_count: slots.iter().map(|r| r.len()).sum(),
        slots,
        key_count: view.observed.get(&n.id).map(|o| o.key_count),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::tests::sample;

    #[test]
    fn forget_preview_counts_slots_and_keys() {
        let view = sample();
        let d = what_forget_drops(&view, "n1").unwrap();
        assert_eq!((d.slot_count, d.key_count), (5461, Some(1234)));
        assert_eq!(ember_core::slots::format_ranges(&d.slots), "0-5460");
        assert!(d.node.starts_with("n1 ("));
        // Pending nodes own nothing; unknown names are left to the control plane.
        assert_eq!(what_forget_drops(&view, "n4").unwrap().slot_count, 0);
        assert!(what_forget_drops(&view, "nope").is_none());
    }
}
