//! Membership changes: `bootstrap`, `join`, `forget`. NODE arguments go to the control
//! plane as typed; it resolves ids, id prefixes, names and host:port authoritatively.

use std::time::{Duration, Instant};

use ember_core::topology::{resolve_node, ResolveError};

use crate::args::{BootstrapArgs, FailoverArgs, ForgetArgs, JoinArgs, ReplicateArgs};
use crate::client::CliError;
use crate::commands::Ctx;
use crate::model::{ClusterView, Dropped};
use crate::output;

pub async fn bootstrap(ctx: &Ctx, a: BootstrapArgs) -> Result<(), CliError> {
    if let Some(wait) = a.wait {
        wait_for_nodes(ctx, &a.nodes, wait).await?;
    }
    let change = ctx.connect().await?.bootstrap(a.nodes, a.replicas).await?;
    ctx.report_change(&change, None);
    Ok(())
}

/// How often `bootstrap --wait` looks again.
const WAIT_POLL: Duration = Duration::from_millis(200);

/// The NODE arguments that match no member nor pending node. An ambiguous one is not
/// missing: waiting would not fix it, and Bootstrap reports it authoritatively.
fn missing<'a>(view: &ClusterView, nodes: &'a [String]) -> Vec<&'a str> {
    nodes
        .iter()
        .filter(|q| {
            matches!(
                resolve_node(view.all_nodes(), q),
                Err(ResolveError::Unknown(_))
            )
        })
        .map(String::as_str)
        .collect()
}

/// Polls until every NODE has registered (members count: re-running on a bootstrapped
/// cluster is satisfied at once), or `wait` has passed. The control plane may not be
/// up yet (docker-compose starts everything together), so unreachable is retried too.
async fn wait_for_nodes(ctx: &Ctx, nodes: &[String], wait: Duration) -> Result<(), CliError> {
    let deadline = Instant::now() + wait;
    let mut said = false;
    loop {
        let attempt = async { ctx.connect().await?.state().await };
        let last = match attempt.await {
            Ok(view) => {
                let missing = missing(&view, nodes);
                if missing.is_empty() {
                    return Ok(());
                }
                if !said && !ctx.json {
                    eprintln!("waiting for {} to register", missing.join(", "));
                    said = true;
                }
                CliError::Rejected(format!(
                    "gave up after {}: {} {} not registered (see emberctl pending; is \
                     ember-data-node running with --control-plane {}?)",
                    humantime::format_duration(wait),
                    missing.join(", "),
                    if missing.len() == 1 { "has" } else { "have" },
                    ctx.url
                ))
            }
            Err(e @ (CliError::Unreachable { .. } | CliError::Timeout { .. })) => e,
            Err(e) => return Err(e),
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(last);
        }
        tokio::time::sleep(left.min(WAIT_POLL)).await;
    }
}

pub async fn join(ctx: &Ctx, a: JoinArgs) -> Result<(), CliError> {
    let change = ctx.connect().await?.join(a.node, a.replica_of).await?;
    ctx.report_change(&change, None);
    Ok(())
}

pub async fn failover(ctx: &Ctx, a: FailoverArgs) -> Result<(), CliError> {
    let change = ctx.connect().await?.failover(a.node, a.force).await?;
    ctx.report_change(&change, None);
    Ok(())
}

pub async fn replicate(ctx: &Ctx, a: ReplicateArgs) -> Result<(), CliError> {
    let change = ctx.connect().await?.replicate(a.node, a.primary).await?;
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
    // A node not heard from since the control plane started has no report: its status
    // then says 0 keys, which is not a count.
    let report = view
        .observed
        .get(&n.id)
        .filter(|o| o.connected || o.millis_since_heartbeat > 0);
    Some(Dropped {
        node: n.label(),
        slot_count: slots.iter().map(|r| r.len()).sum(),
        slots,
        key_count: report.map(|o| o.key_count),
        key_count_age_ms: report.map(|o| o.millis_since_heartbeat),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::tests::sample;

    #[test]
    fn missing_nodes_are_the_unknown_ones() {
        let view = sample();
        let q = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // Members and pending nodes both count.
        assert!(missing(&view, &q(&["n1", "n4", "127.0.0.1:7002"])).is_empty());
        let nodes = q(&["n1", "n9", "ghost"]);
        assert_eq!(missing(&view, &nodes), vec!["n9", "ghost"]);
    }

    #[test]
    fn forget_preview_counts_slots_and_keys() {
        let view = sample();
        let d = what_forget_drops(&view, "n1").unwrap();
        assert_eq!((d.slot_count, d.key_count), (5461, Some(1234)));
        assert_eq!(d.key_count_age_ms, Some(80));
        assert_eq!(ember_core::slots::format_ranges(&d.slots), "0-5460");
        assert!(d.node.starts_with("n1 ("));
        // Pending nodes own nothing; unknown names are left to the control plane.
        assert_eq!(what_forget_drops(&view, "n4").unwrap().slot_count, 0);
        assert!(what_forget_drops(&view, "nope").is_none());
    }

    #[test]
    fn forget_preview_has_no_key_count_without_a_report() {
        let mut view = sample();
        let n1 = resolve_node(view.all_nodes(), "n1").unwrap().id;
        // Not heard from since the control plane (re)started: its status says 0 keys.
        let o = view.observed.get_mut(&n1).unwrap();
        (o.connected, o.millis_since_heartbeat, o.key_count) = (false, 0, 0);
        let d = what_forget_drops(&view, "n1").unwrap();
        assert_eq!((d.key_count, d.key_count_age_ms), (None, None));
        // Heard from before it went silent: the count, with its age.
        let o = view.observed.get_mut(&n1).unwrap();
        (o.millis_since_heartbeat, o.key_count) = (42_000, 7);
        let d = what_forget_drops(&view, "n1").unwrap();
        assert_eq!((d.key_count, d.key_count_age_ms), (Some(7), Some(42_000)));
        assert!(
            crate::output::render_dropped(&d, false)
                .contains("7 keys (as last reported by the node 42s ago)"),
            "{}",
            crate::output::render_dropped(&d, false)
        );
    }
}
