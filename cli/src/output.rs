//! What emberctl prints: aligned tables for people and a documented JSON schema for
//! scripts (cli/README-JSON.md). The JSON types here are emberctl's own, not the prost
//! messages, so the wire format can evolve without breaking scripts.
//!
//! Everything here is pure (`render_*` return strings); [`emit`] does the writing.

use std::io::Write;

use ember_core::slots::format_ranges;
use ember_core::topology::short_id;
use ember_core::{MigrationState, NodeId, NodeInfo, Role, SlotRange, SLOT_COUNT};
use serde::Serialize;

use crate::model::{short_label, ClusterView, Dropped, Move, Observed, Snapshot};
use crate::progress::{fmt_bytes, fmt_count, fmt_elapsed};

// ------------------------------------------------------------------ writing

/// Writes `text` (plus a newline) to stdout. A closed pipe (`emberctl nodes | head`) is
/// not an error worth a message, so it ends the process quietly.
pub fn emit(text: &str) {
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{text}").and_then(|()| out.flush()).is_err() {
        std::process::exit(0);
    }
}

/// Writes one compact JSON document on one line.
pub fn emit_json<T: Serialize>(value: &T) {
    emit(&serde_json::to_string(value).expect("emberctl's JSON types always serialize"));
}

// ------------------------------------------------------------------ tables

/// How a column's cells are aligned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// A minimal aligned table: a header row, cells padded to the widest, two spaces apart,
/// no trailing whitespace.
#[derive(Debug)]
pub struct Table {
    headers: Vec<(&'static str, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[(&'static str, Align)]) -> Self {
        Self {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.headers.len());
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let width = |s: &str| s.chars().count();
        let mut widths: Vec<usize> = self.headers.iter().map(|(h, _)| width(h)).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(width(cell));
            }
        }
        let header: Vec<String> = self.headers.iter().map(|(h, _)| h.to_string()).collect();
        std::iter::once(&header)
            .chain(&self.rows)
            .map(|row| {
                let cells: Vec<String> = row
                    .iter()
                    .zip(&widths)
                    .zip(&self.headers)
                    .map(|((cell, w), (_, align))| match align {
                        Align::Left => format!("{cell:<w$}"),
                        Align::Right => format!("{cell:>w$}"),
                    })
                    .collect();
                cells.join("  ").trim_end().to_string()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// `key  value` lines with the values aligned.
fn key_values(pairs: &[(&str, String)]) -> String {
    let w = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    pairs
        .iter()
        .map(|(k, v)| format!("{k:<w$}  {v}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Compacted ranges for a table cell, shortened after `max` ranges (JSON has them all).
pub fn ranges_cell(ranges: &[SlotRange], max: usize) -> String {
    if ranges.is_empty() {
        return "-".into();
    }
    if ranges.len() <= max {
        return format_ranges(ranges);
    }
    format!(
        "{} ... (+{} more)",
        format_ranges(&ranges[..max]),
        ranges.len() - max
    )
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn opt_num(v: Option<u64>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

// ------------------------------------------------------------------ JSON schema

/// One node, member or pending (`nodes[]`, `pending[]`).
#[derive(Debug, Serialize, PartialEq)]
pub struct NodeDoc {
    pub id: String,
    pub name: Option<String>,
    pub client_addr: String,
    pub internal_addr: String,
    /// `primary`, `replica`, or null for a pending node.
    pub role: Option<&'static str>,
    /// The primary's id for a replica, else null.
    pub primary_id: Option<String>,
    /// `ok`, `fail` or `pending`.
    pub health: &'static str,
    pub config_epoch: u64,
    /// Compacted inclusive ranges, ascending: `["0-5460", "7000"]`.
    pub slots: Vec<String>,
    pub slot_count: usize,
    /// Null when the control plane has no session data for the node.
    pub applied_version: Option<u64>,
    pub key_count: Option<u64>,
    /// Keys the node holds in slots the topology does not give it (loaded from a
    /// snapshot after the slot moved on): invisible to clients, kept.
    pub orphaned_keys: Option<u64>,
    pub connected: Option<bool>,
    pub millis_since_heartbeat: Option<u64>,
    /// The node's replication offset (bytes of its history), null when unknown.
    pub repl_offset: Option<u64>,
    /// A replica: `up`, `down` or `syncing` (its link to the primary); null otherwise.
    pub repl_link: Option<&'static str>,
    /// A replica whose link is down: for how long.
    pub repl_link_down_ms: Option<u64>,
    /// A replica: how many bytes it is behind its primary (as of both heartbeats).
    pub repl_lag_bytes: Option<u64>,
    /// A replica: why it could not be promoted now if its primary failed (null: it could).
    pub not_promotable: Option<String>,
}

/// A migration recorded in the topology.
#[derive(Debug, Serialize, PartialEq)]
pub struct MigrationDoc {
    pub id: String,
    pub slots: Vec<String>,
    pub source_id: String,
    pub target_id: String,
    /// `streaming` or `handoff`.
    pub state: &'static str,
}

/// The whole cluster (`status --json`, `nodes --json`, and `cluster` in change replies).
#[derive(Debug, Serialize, PartialEq)]
pub struct ClusterDoc {
    /// Null until the control plane has a cluster.
    pub cluster_id: Option<String>,
    pub version: u64,
    pub current_epoch: u64,
    /// `ok` or `fail`, as Redis's `cluster_state`.
    pub state: &'static str,
    pub require_full_coverage: bool,
    pub slots_assigned: usize,
    /// Slots owned by a member that is not failed.
    pub slots_ok: usize,
    pub nodes: Vec<NodeDoc>,
    pub pending: Vec<NodeDoc>,
    pub migrations: Vec<MigrationDoc>,
    /// Set while the control plane refuses to publish (recover with `import-state`).
    pub alarm: Option<String>,
    /// Set while changes cannot be persisted (e.g. a full disk).
    pub persistence_error: Option<String>,
    /// Nodes of other clusters trying to connect.
    pub foreign: Vec<ForeignDoc>,
    /// Where the state is kept; the leading control-plane process's URL (empty with the
    /// file store's one process) and term.
    pub control_plane_store: String,
    pub control_plane_leader: String,
    pub control_plane_term: i64,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct ForeignDoc {
    pub node_id: String,
    pub cluster_id: String,
    pub client_addr: String,
    pub applied_version: u64,
}

/// One run of the slot map (`slots --json`); unassigned runs have a null `node_id`.
#[derive(Debug, Serialize, PartialEq)]
pub struct SlotRunDoc {
    pub range: String,
    pub start: u16,
    pub end: u16,
    pub count: usize,
    pub node_id: Option<String>,
    pub node_name: Option<String>,
    pub client_addr: Option<String>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct SlotsDoc {
    pub cluster_id: Option<String>,
    pub version: u64,
    pub slots: Vec<SlotRunDoc>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct PendingDoc {
    pub pending: Vec<NodeDoc>,
}

/// What `forget --force` dropped.
#[derive(Debug, Serialize, PartialEq)]
pub struct DroppedDoc {
    pub node: String,
    pub slots: Vec<String>,
    pub slot_count: usize,
    pub key_count: Option<u64>,
    /// How long before the request the node reported `key_count`.
    pub key_count_age_ms: Option<u64>,
}

/// The reply of a mutating command.
#[derive(Debug, Serialize, PartialEq)]
pub struct ChangeDoc {
    /// False when the request was already in effect.
    pub changed: bool,
    pub summary: String,
    /// The topology after the change; `pending` is empty and session fields are null.
    pub cluster: ClusterDoc,
    /// `forget --force` only: what was dropped; null otherwise.
    pub dropped: Option<DroppedDoc>,
}

/// One line of `watch --json`.
#[derive(Debug, Serialize, PartialEq)]
pub struct WatchDoc {
    /// RFC 3339, UTC, when emberctl received the version.
    pub time: String,
    pub cluster_id: Option<String>,
    pub version: u64,
    pub current_epoch: u64,
    pub state: &'static str,
    /// Human descriptions of what changed since the previous line.
    pub changes: Vec<String>,
}

pub fn range_strings(ranges: &[SlotRange]) -> Vec<String> {
    ranges.iter().map(ToString::to_string).collect()
}

fn node_doc(view: &ClusterView, n: &NodeInfo, pending: bool) -> NodeDoc {
    let t = &view.snapshot.topology;
    let ranges = if pending {
        Vec::new()
    } else {
        t.slots.ranges_of(&n.id)
    };
    let obs: Option<&Observed> = view.observed.get(&n.id);
    let (role, primary_id) = match (pending, n.role) {
        (true, _) => (None, None),
        (false, Role::Primary) => (Some("primary"), None),
        (false, Role::Replica { of }) => (Some("replica"), Some(of.to_string())),
    };
    NodeDoc {
        id: n.id.to_string(),
        name: n.name.clone(),
        client_addr: n.client_addr.clone(),
        internal_addr: n.internal_addr.clone(),
        role,
        primary_id,
        health: health(n, pending),
        config_epoch: if pending {
            0
        } else {
            t.effective_config_epoch(&n.id)
        },
        slot_count: ranges.iter().map(SlotRange::len).sum(),
        slots: range_strings(&ranges),
        applied_version: obs.map(|o| o.applied_version),
        key_count: obs.map(|o| o.key_count),
        orphaned_keys: obs.map(|o| o.orphaned_keys),
        connected: obs.map(|o| o.connected),
        millis_since_heartbeat: obs.map(|o| o.millis_since_heartbeat),
        repl_offset: obs.and_then(|o| o.repl).map(|r| r.offset),
        repl_link: replica_link(view, n).map(|(link, _, _)| link),
        repl_link_down_ms: replica_link(view, n).and_then(|(_, down, _)| down),
        repl_lag_bytes: replica_link(view, n).and_then(|(_, _, lag)| lag),
        not_promotable: obs.and_then(|o| o.not_promotable.clone()),
    }
}

/// A replica's link (`up`, `down`, `syncing`), how long it has been down, and its lag
/// in bytes behind its primary; None for a primary or a node without a report.
fn replica_link(
    view: &ClusterView,
    n: &NodeInfo,
) -> Option<(&'static str, Option<u64>, Option<u64>)> {
    let Role::Replica { of } = n.role else {
        return None;
    };
    let r = view.observed.get(&n.id)?.repl?;
    let primary = view.observed.get(&of).and_then(|o| o.repl);
    let lag = primary.map(|p| p.offset.saturating_sub(r.offset));
    Some(match (r.syncing, r.link_up) {
        (true, _) => ("syncing", None, None),
        (false, true) => ("up", None, lag),
        (false, false) => ("down", Some(r.link_down_millis), lag),
    })
}

/// The `REPL` cell of `emberctl nodes`.
fn repl_cell(view: &ClusterView, n: &NodeInfo) -> String {
    match (n.role, view.observed.get(&n.id).and_then(|o| o.repl)) {
        (_, None) => "-".into(),
        (Role::Primary, Some(r)) => match r.replicas {
            0 => "-".into(),
            1 => "1 replica".into(),
            k => format!("{k} replicas"),
        },
        (Role::Replica { .. }, Some(_)) => {
            let link = match replica_link(view, n) {
                Some(("up", _, Some(lag))) => format!("up, lag {lag} B"),
                Some(("down", Some(ms), _)) => format!("down {:.1}s", ms as f64 / 1000.0),
                Some((link, _, _)) => link.to_string(),
                None => "-".into(),
            };
            match view
                .observed
                .get(&n.id)
                .and_then(|o| o.not_promotable.as_ref())
            {
                Some(_) => format!("{link}, not promotable"),
                None => link,
            }
        }
    }
}

fn health(n: &NodeInfo, pending: bool) -> &'static str {
    match (pending, n.failed) {
        (true, _) => "pending",
        (false, true) => "fail",
        (false, false) => "ok",
    }
}

pub fn cluster_doc(view: &ClusterView) -> ClusterDoc {
    let s = &view.snapshot;
    let t = &s.topology;
    ClusterDoc {
        cluster_id: s.cluster_id.map(|id| id.to_string()),
        version: t.version,
        current_epoch: t.current_epoch,
        state: s.state(),
        require_full_coverage: t.require_full_coverage,
        slots_assigned: t.slots.assigned(),
        slots_ok: s.slots_ok(),
        nodes: ordered_members(s)
            .into_iter()
            .map(|n| node_doc(view, n, false))
            .collect(),
        pending: ordered_pending(view)
            .into_iter()
            .map(|n| node_doc(view, n, true))
            .collect(),
        migrations: t
            .migrations
            .iter()
            .map(|m| MigrationDoc {
                id: m.id.to_string(),
                slots: range_strings(&m.slots),
                source_id: m.source.to_string(),
                target_id: m.target.to_string(),
                state: state_name(m.state),
            })
            .collect(),
        alarm: view.alarm.clone(),
        persistence_error: view.persistence_error.clone(),
        control_plane_store: view.control_plane.store.clone(),
        control_plane_leader: view.control_plane.leader.clone(),
        control_plane_term: view.control_plane.term,
        foreign: view
            .foreign
            .iter()
            .map(|f| ForeignDoc {
                node_id: f.node_id.clone(),
                cluster_id: f.cluster_id.clone(),
                client_addr: f.client_addr.clone(),
                applied_version: f.applied_version,
            })
            .collect(),
    }
}

fn state_name(s: MigrationState) -> &'static str {
    match s {
        MigrationState::Streaming => "streaming",
        MigrationState::Handoff => "handoff",
    }
}

/// One planned move in a `plan` event.
#[derive(Debug, Serialize, PartialEq)]
pub struct MoveDoc {
    pub source_id: String,
    pub source: String,
    pub target_id: String,
    pub target: String,
    pub slots: Vec<String>,
    pub slot_count: usize,
}

/// `{"event":"plan",...}`: the first line of `assign`/`rebalance`/`drain --json`.
#[derive(Debug, Serialize, PartialEq)]
pub struct PlanEvent {
    pub event: &'static str,
    pub moves: Vec<MoveDoc>,
    pub slot_count: usize,
    pub move_count: usize,
}

pub fn plan_event(s: &Snapshot, moves: &[Move]) -> PlanEvent {
    PlanEvent {
        event: "plan",
        moves: moves
            .iter()
            .map(|m| MoveDoc {
                source_id: m.source.to_string(),
                source: label_of(s, &m.source),
                target_id: m.target.to_string(),
                target: label_of(s, &m.target),
                slots: range_strings(&m.slots),
                slot_count: m.slot_count(),
            })
            .collect(),
        slot_count: moves.iter().map(Move::slot_count).sum(),
        move_count: moves.len(),
    }
}

/// A running migration in `migrations --json`.
#[derive(Debug, Serialize, PartialEq)]
pub struct RunningDoc {
    pub id: String,
    pub source_id: String,
    pub target_id: String,
    pub slots: Vec<String>,
    pub slot_count: usize,
    /// `streaming` or `handoff`.
    pub state: &'static str,
    /// Null until the target reported progress.
    pub keys: Option<u64>,
    pub bytes: Option<u64>,
    /// Keys in the slots when the snapshot started; null while unknown.
    pub keys_total: Option<u64>,
    pub millis: Option<u64>,
}

/// A finished migration in `migrations --json`.
#[derive(Debug, Serialize, PartialEq)]
pub struct FinishedDoc {
    pub id: String,
    pub source_id: String,
    pub target_id: String,
    pub slots: Vec<String>,
    pub slot_count: usize,
    pub committed: bool,
    pub reason: String,
    pub keys: u64,
    pub bytes: u64,
    pub millis: u64,
}

/// `migrations --json`.
#[derive(Debug, Serialize, PartialEq)]
pub struct MigrationsDoc {
    pub running: Vec<RunningDoc>,
    /// Oldest first, as the control plane keeps them (the last 100).
    pub finished: Vec<FinishedDoc>,
}

fn slot_count(ranges: &[SlotRange]) -> usize {
    ranges.iter().map(SlotRange::len).sum()
}

pub fn migrations_doc(view: &ClusterView) -> MigrationsDoc {
    MigrationsDoc {
        running: view
            .snapshot
            .topology
            .migrations
            .iter()
            .map(|m| {
                let p = view.progress.get(&m.id);
                RunningDoc {
                    id: m.id.to_string(),
                    source_id: m.source.to_string(),
                    target_id: m.target.to_string(),
                    slots: range_strings(&m.slots),
                    slot_count: slot_count(&m.slots),
                    state: state_name(m.state),
                    keys: p.map(|p| p.keys),
                    bytes: p.map(|p| p.bytes),
                    keys_total: p.map(|p| p.keys_total).filter(|k| *k > 0),
                    millis: p.map(|p| p.millis),
                }
            })
            .collect(),
        finished: view
            .finished
            .iter()
            .map(|f| FinishedDoc {
                id: f.migration.id.to_string(),
                source_id: f.migration.source.to_string(),
                target_id: f.migration.target.to_string(),
                slots: range_strings(&f.migration.slots),
                slot_count: slot_count(&f.migration.slots),
                committed: f.committed,
                reason: f.reason.clone(),
                keys: f.keys,
                bytes: f.bytes,
                millis: f.millis,
            })
            .collect(),
    }
}

/// The slot map as runs, unassigned runs included, covering 0-16383 exactly once.
fn slot_runs(s: &Snapshot) -> Vec<(SlotRange, Option<NodeId>)> {
    let mut runs: Vec<(SlotRange, Option<NodeId>)> = Vec::new();
    for slot in 0..SLOT_COUNT {
        let owner = s.topology.slots.owner(slot);
        match runs.last_mut() {
            Some((r, o)) if *o == owner => r.end = slot,
            _ => runs.push((SlotRange::single(slot), owner)),
        }
    }
    runs
}

pub fn slots_doc(s: &Snapshot) -> SlotsDoc {
    let slots = slot_runs(s)
        .into_iter()
        .map(|(r, owner)| {
            let node = owner.and_then(|o| s.topology.nodes.get(&o));
            SlotRunDoc {
                range: r.to_string(),
                start: r.start,
                end: r.end,
                count: r.len(),
                node_id: owner.map(|o| o.to_string()),
                node_name: node.and_then(|n| n.name.clone()),
                client_addr: node.map(|n| n.client_addr.clone()),
            }
        })
        .collect();
    SlotsDoc {
        cluster_id: s.cluster_id.map(|id| id.to_string()),
        version: s.topology.version,
        slots,
    }
}

pub fn pending_doc(view: &ClusterView) -> PendingDoc {
    PendingDoc {
        pending: ordered_pending(view)
            .into_iter()
            .map(|n| node_doc(view, n, true))
            .collect(),
    }
}

pub fn change_doc(
    view: &ClusterView,
    changed: bool,
    summary: &str,
    dropped: Option<&Dropped>,
) -> ChangeDoc {
    ChangeDoc {
        changed,
        summary: summary.to_string(),
        cluster: cluster_doc(view),
        dropped: dropped.map(|d| DroppedDoc {
            node: d.node.clone(),
            slots: range_strings(&d.slots),
            slot_count: d.slot_count,
            key_count: d.key_count,
            key_count_age_ms: d.key_count_age_ms,
        }),
    }
}

// ------------------------------------------------------------------ ordering

/// Primaries by their first slot (slotless ones last, by address), each followed by its
/// replicas; replicas of unknown primaries at the end.
pub fn ordered_members(s: &Snapshot) -> Vec<&NodeInfo> {
    let t = &s.topology;
    let mut primaries: Vec<&NodeInfo> = t.nodes.values().filter(|n| n.is_primary()).collect();
    let first_slot = |n: &NodeInfo| {
        t.slots
            .ranges_of(&n.id)
            .first()
            .map_or(u32::MAX, |r| r.start.into())
    };
    primaries.sort_by_key(|n| (first_slot(n), n.client_addr.clone()));
    let mut out = Vec::with_capacity(t.nodes.len());
    for p in primaries {
        out.push(p);
        let mut replicas: Vec<&NodeInfo> = t.replicas_of(&p.id).collect();
        replicas.sort_by_key(|n| n.client_addr.clone());
        out.extend(replicas);
    }
    let mut orphans: Vec<&NodeInfo> = t
        .nodes
        .values()
        .filter(|n| !out.iter().any(|o| o.id == n.id))
        .collect();
    orphans.sort_by_key(|n| n.client_addr.clone());
    out.extend(orphans);
    out
}

fn ordered_pending(view: &ClusterView) -> Vec<&NodeInfo> {
    let mut p: Vec<&NodeInfo> = view.pending.iter().collect();
    p.sort_by_key(|n| n.client_addr.clone());
    p
}

// ------------------------------------------------------------------ human output

/// A node's label as other rows refer to it: name, else short id.
fn label_of(s: &Snapshot, id: &NodeId) -> String {
    s.topology
        .nodes
        .get(id)
        .map_or_else(|| short_id(id), short_label)
}

pub fn render_status(view: &ClusterView) -> String {
    let s = &view.snapshot;
    let t = &s.topology;
    let members = t.nodes.len();
    let primaries = t.nodes.values().filter(|n| n.is_primary()).count();
    let failed = t.nodes.values().filter(|n| n.failed).count();
    let cluster_id = match s.cluster_id {
        Some(id) if t.is_bootstrapped() => id.to_string(),
        Some(id) => format!("{id} (not bootstrapped: emberctl bootstrap NODE...)"),
        None => "none (not bootstrapped: emberctl bootstrap NODE...)".into(),
    };
    let pending = match view.pending.len() {
        0 => "0".to_string(),
        n => format!("{n} (see emberctl pending)"),
    };
    let mut problems: Vec<(&str, String)> = Vec::new();
    if let Some(alarm) = &view.alarm {
        problems.push(("ALARM", alarm.clone()));
    }
    if let Some(e) = &view.persistence_error {
        problems.push((
            "PERSISTENCE",
            format!("{e} (changes are refused and nothing new is published until a save succeeds; retrying)"),
        ));
    }
    if !view.foreign.is_empty() {
        let mut clusters: Vec<&str> = view.foreign.iter().map(|f| f.cluster_id.as_str()).collect();
        clusters.sort();
        clusters.dedup();
        problems.push((
            "FOREIGN NODES",
            format!(
                "{} node(s) of cluster(s) {} tried to connect: {} (if this control plane lost \
                 its state, restore it with `emberctl import-state [BACKUP]`)",
                view.foreign.len(),
                clusters.join(", "),
                view.foreign
                    .iter()
                    .map(|f| format!(
                        "{} at version {}",
                        sanitize(&f.client_addr),
                        f.applied_version
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    let table = key_values(&[
        ("cluster id", cluster_id),
        ("state", s.state().to_string()),
        ("version", t.version.to_string()),
        ("current epoch", t.current_epoch.to_string()),
        (
            "slots",
            format!(
                "{} assigned, {} ok (of {SLOT_COUNT})",
                t.slots.assigned(),
                s.slots_ok()
            ),
        ),
        (
            "members",
            format!(
                "{members} ({primaries} primaries, {} replicas, {failed} failed)",
                members - primaries
            ),
        ),
        ("pending", pending),
        (
            "migrations",
            match t.migrations.len() {
                0 => "0 running".to_string(),
                n => format!("{n} running (see emberctl migrations)"),
            },
        ),
        (
            "require-full-coverage",
            yes_no(t.require_full_coverage).to_string(),
        ),
        ("control plane", {
            let cp = &view.control_plane;
            match cp.leader.as_str() {
                "" => cp.store.clone(),
                leader => format!("{}, leader {leader} (term {})", cp.store, cp.term),
            }
        }),
    ]);
    if problems.is_empty() {
        return table;
    }
    let problems: Vec<(&str, String)> = problems
        .into_iter()
        .map(|(k, v)| (k, v.replace(['\n', '\r'], " ")))
        .collect();
    format!("{}\n{table}", key_values(&problems))
}

/// A value a node chose (its address): printable ASCII only, so it cannot forge rows.
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect()
}

/// Table cells shown for at most this many ranges per node.
const MAX_RANGES_IN_TABLE: usize = 6;

pub fn render_nodes(view: &ClusterView) -> String {
    let s = &view.snapshot;
    let t = &s.topology;
    if t.nodes.is_empty() && view.pending.is_empty() {
        return "no nodes registered yet (start ember-data-node --control-plane URL; it registers itself)".into();
    }
    let mut table = Table::new(&[
        ("ID", Align::Left),
        ("NAME", Align::Left),
        ("ADDR", Align::Left),
        ("ROLE", Align::Left),
        ("HEALTH", Align::Left),
        ("EPOCH", Align::Right),
        ("SLOTS", Align::Right),
        ("RANGES", Align::Left),
        ("VERSION", Align::Right),
        ("KEYS", Align::Right),
        ("REPL", Align::Left),
    ]);
    let members = ordered_members(s).into_iter().map(|n| (n, false));
    let pending = ordered_pending(view).into_iter().map(|n| (n, true));
    for (n, is_pending) in members.chain(pending) {
        let obs = view.observed.get(&n.id);
        let ranges = if is_pending {
            Vec::new()
        } else {
            t.slots.ranges_of(&n.id)
        };
        let role = match (is_pending, n.role) {
            (true, _) => "-".to_string(),
            (false, Role::Primary) => "primary".to_string(),
            (false, Role::Replica { of }) => format!("replica of {}", label_of(s, &of)),
        };
        table.row(vec![
            short_id(&n.id),
            n.name.clone().unwrap_or_else(|| "-".into()),
            n.client_addr.clone(),
            role,
            health(n, is_pending).to_string(),
            if is_pending {
                "-".into()
            } else {
                t.effective_config_epoch(&n.id).to_string()
            },
            ranges.iter().map(SlotRange::len).sum::<usize>().to_string(),
            ranges_cell(&ranges, MAX_RANGES_IN_TABLE),
            opt_num(obs.map(|o| o.applied_version)),
            match obs {
                Some(o) if o.orphaned_keys > 0 => {
                    format!(
                        "{} (+{} orphaned)",
                        o.key_count - o.orphaned_keys.min(o.key_count),
                        o.orphaned_keys
                    )
                }
                _ => opt_num(obs.map(|o| o.key_count)),
            },
            repl_cell(view, n),
        ]);
    }
    match t.migrations.len() {
        0 => table.render(),
        n => format!(
            "{}\n\n{n} migration{} running (see emberctl migrations)",
            table.render(),
            if n == 1 { "" } else { "s" }
        ),
    }
}

pub fn render_slots(s: &Snapshot) -> String {
    let mut table = Table::new(&[
        ("RANGE", Align::Left),
        ("SLOTS", Align::Right),
        ("OWNER", Align::Left),
        ("ADDR", Align::Left),
    ]);
    for (r, owner) in slot_runs(s) {
        let (who, addr) = match owner {
            Some(o) => (
                label_of(s, &o),
                s.topology
                    .nodes
                    .get(&o)
                    .map_or_else(|| "?".into(), |n| n.client_addr.clone()),
            ),
            None => ("(unassigned)".to_string(), "-".to_string()),
        };
        table.row(vec![r.to_string(), r.len().to_string(), who, addr]);
    }
    table.render()
}

pub fn render_pending(view: &ClusterView) -> String {
    if view.pending.is_empty() {
        return "no pending nodes (a data node registers itself when started with \
                ember-data-node --control-plane URL)"
            .into();
    }
    let mut table = Table::new(&[
        ("ID", Align::Left),
        ("NAME", Align::Left),
        ("ADDR", Align::Left),
        ("INTERNAL", Align::Left),
        ("CONNECTED", Align::Left),
    ]);
    for n in ordered_pending(view) {
        let connected = view
            .observed
            .get(&n.id)
            .map_or("-", |o| yes_no(o.connected));
        table.row(vec![
            short_id(&n.id),
            n.name.clone().unwrap_or_else(|| "-".into()),
            n.client_addr.clone(),
            n.internal_addr.clone(),
            connected.to_string(),
        ]);
    }
    let hint = if view.snapshot.topology.is_bootstrapped() {
        "admit one with: emberctl join NODE [--replica-of NODE]"
    } else {
        "form the cluster with: emberctl bootstrap NODE... (then emberctl join NODE for more)"
    };
    format!("{}\n\n{hint}", table.render())
}

/// The plan as a table and a summary line (`5461 slots in 2 moves`).
pub fn render_plan(s: &Snapshot, moves: &[Move]) -> String {
    let mut table = Table::new(&[
        ("SOURCE", Align::Left),
        ("TARGET", Align::Left),
        ("SLOTS", Align::Right),
        ("RANGES", Align::Left),
    ]);
    for m in moves {
        table.row(vec![
            label_of(s, &m.source),
            label_of(s, &m.target),
            m.slot_count().to_string(),
            ranges_cell(&m.slots, MAX_RANGES_IN_TABLE),
        ]);
    }
    let slots: usize = moves.iter().map(Move::slot_count).sum();
    format!(
        "{}\n\n{slots} slots in {} move{}",
        table.render(),
        moves.len(),
        if moves.len() == 1 { "" } else { "s" }
    )
}

/// Finished migrations shown by `migrations` (all of them with --json).
const MAX_FINISHED_SHOWN: usize = 10;

pub fn render_migrations(view: &ClusterView) -> String {
    let s = &view.snapshot;
    let t = &s.topology;
    let mut out = Vec::new();
    if t.migrations.is_empty() {
        out.push("no migrations running".to_string());
    } else {
        let mut table = Table::new(&[
            ("ID", Align::Left),
            ("SOURCE", Align::Left),
            ("TARGET", Align::Left),
            ("SLOTS", Align::Right),
            ("RANGES", Align::Left),
            ("STATE", Align::Left),
            ("KEYS", Align::Right),
            ("BYTES", Align::Right),
            ("ELAPSED", Align::Right),
        ]);
        for m in &t.migrations {
            let p = view.progress.get(&m.id);
            let keys = match p {
                None => "-".to_string(),
                Some(p) if p.keys_total > 0 => {
                    format!("{}/{}", fmt_count(p.keys), fmt_count(p.keys_total))
                }
                Some(p) => fmt_count(p.keys),
            };
            table.row(vec![
                short_id(&m.id),
                label_of(s, &m.source),
                label_of(s, &m.target),
                slot_count(&m.slots).to_string(),
                ranges_cell(&m.slots, 4),
                state_name(m.state).to_string(),
                keys,
                p.map_or_else(|| "-".into(), |p| fmt_bytes(p.bytes)),
                p.map_or_else(
                    || "-".into(),
                    |p| fmt_elapsed(std::time::Duration::from_millis(p.millis)),
                ),
            ]);
        }
        out.push(table.render());
    }
    if !view.finished.is_empty() {
        let mut table = Table::new(&[
            ("ID", Align::Left),
            ("SOURCE", Align::Left),
            ("TARGET", Align::Left),
            ("SLOTS", Align::Right),
            ("RANGES", Align::Left),
            ("OUTCOME", Align::Left),
            ("KEYS", Align::Right),
            ("BYTES", Align::Right),
            ("TOOK", Align::Right),
            ("REASON", Align::Left),
        ]);
        let skip = view.finished.len().saturating_sub(MAX_FINISHED_SHOWN);
        for f in view.finished.iter().skip(skip) {
            let m = &f.migration;
            table.row(vec![
                short_id(&m.id),
                label_of(s, &m.source),
                label_of(s, &m.target),
                slot_count(&m.slots).to_string(),
                ranges_cell(&m.slots, 4),
                if f.committed { "committed" } else { "aborted" }.to_string(),
                fmt_count(f.keys),
                fmt_bytes(f.bytes),
                fmt_elapsed(std::time::Duration::from_millis(f.millis)),
                if f.reason.is_empty() { "-" } else { &f.reason }.to_string(),
            ]);
        }
        let older = if skip > 0 {
            format!(" ({skip} older ones: see --json)")
        } else {
            String::new()
        };
        out.push(format!("recently finished{older}:\n{}", table.render()));
    }
    out.join("\n\n")
}

/// The human line for a mutation's result.
pub fn render_change(changed: bool, summary: &str) -> String {
    match (changed, summary.trim()) {
        (true, "") => "done".into(),
        (false, "") => "nothing to do: already in effect".into(),
        (true, s) => s.to_string(),
        (false, s) => format!("{s} (already in effect, nothing changed)"),
    }
}

pub fn render_dropped(d: &Dropped, done: bool) -> String {
    let keys = match (d.key_count, d.key_count_age_ms) {
        (None, _) => "an unknown number of keys (no report from the node)".to_string(),
        (Some(k), Some(ms)) => {
            // Whole seconds, or milliseconds when under one.
            let age =
                std::time::Duration::from_millis(if ms >= 1000 { ms / 1000 * 1000 } else { ms });
            format!(
                "{k} keys (as last reported by the node {} ago)",
                humantime::format_duration(age)
            )
        }
        (Some(k), None) => format!("{k} keys (as last reported by the node)"),
    };
    let ranges = if d.slots.is_empty() {
        String::new()
    } else {
        format!(" ({})", ranges_cell(&d.slots, 8))
    };
    if done {
        format!(
            "{} slots{ranges} are now unassigned; {keys} were dropped with them",
            d.slot_count
        )
    } else {
        format!(
            "forgetting {} drops {} slots{ranges} holding {keys}",
            d.node, d.slot_count
        )
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use ember_core::Topology;
    use std::collections::BTreeMap;
    use uuid::Uuid;

    pub fn node(n: u128, name: Option<&str>, role: Role) -> NodeInfo {
        NodeInfo {
            id: Uuid::from_u128(n << 96 | n),
            name: name.map(String::from),
            client_addr: format!("127.0.0.1:700{n}"),
            internal_addr: format!("127.0.0.1:1700{n}"),
            role,
            failed: false,
            config_epoch: n as u64,
        }
    }

    /// n1 owns 0-5460, n2 owns 5461-10921 and 16000, n3 (replica of n1), 10922-.. free
    /// except 16000, n4 pending.
    pub fn sample() -> ClusterView {
        let cluster = Uuid::from_u128(42);
        let mut t = Topology::new(cluster);
        let n1 = node(1, Some("n1"), Role::Primary);
        let n2 = node(2, None, Role::Primary);
        let mut n3 = node(3, Some("n3"), Role::Replica { of: n1.id });
        n3.failed = true;
        (0..=5460).for_each(|s| t.slots.set(s, Some(n1.id)));
        (5461..=10921).for_each(|s| t.slots.set(s, Some(n2.id)));
        t.slots.set(16000, Some(n2.id));
        let ids = (n1.id, n2.id, n3.id);
        for n in [n1, n2, n3] {
            t.nodes.insert(n.id, n);
        }
        t.version = 7;
        t.current_epoch = 2;
        let mut observed = BTreeMap::new();
        observed.insert(
            ids.0,
            Observed {
                connected: true,
                applied_version: 7,
                key_count: 1234,
                orphaned_keys: 0,
                millis_since_heartbeat: 80,
                repl: Some(crate::model::Replication {
                    offset: 5000,
                    replicas: 1,
                    ..Default::default()
                }),
                not_promotable: None,
            },
        );
        observed.insert(
            ids.2,
            Observed {
                connected: false,
                applied_version: 7,
                key_count: 1200,
                orphaned_keys: 0,
                millis_since_heartbeat: 3000,
                repl: Some(crate::model::Replication {
                    offset: 4000,
                    link_down_millis: 2500,
                    ..Default::default()
                }),
                not_promotable: Some("it is silent".into()),
            },
        );
        observed.insert(
            ids.1,
            Observed {
                connected: true,
                applied_version: 6,
                key_count: 5,
                orphaned_keys: 0,
                millis_since_heartbeat: 90,
                repl: None,
                not_promotable: None,
            },
        );
        ClusterView {
            snapshot: Snapshot {
                cluster_id: Some(cluster),
                topology: t,
            },
            pending: vec![node(4, Some("n4"), Role::Primary)],
            observed,
            progress: BTreeMap::new(),
            finished: Vec::new(),
            alarm: None,
            persistence_error: None,
            foreign: Vec::new(),
            control_plane: Default::default(),
        }
    }

    #[test]
    fn table_columns_are_aligned() {
        let mut t = Table::new(&[
            ("A", Align::Left),
            ("NUM", Align::Right),
            ("C", Align::Left),
        ]);
        t.row(vec!["long-cell".into(), "5".into(), "x".into()]);
        t.row(vec!["s".into(), "12345".into(), "".into()]);
        assert_eq!(
            t.render(),
            "A            NUM  C\nlong-cell      5  x\ns          12345"
        );
    }

    #[test]
    fn ranges_are_compacted_and_shortened() {
        let r = |a, b| SlotRange::new(a, b).unwrap();
        assert_eq!(ranges_cell(&[], 3), "-");
        assert_eq!(ranges_cell(&[r(0, 5460), r(7000, 7000)], 3), "0-5460 7000");
        assert_eq!(
            ranges_cell(&[r(0, 1), r(3, 3), r(5, 6), r(9, 9)], 2),
            "0-1 3 ... (+2 more)"
        );
    }

    #[test]
    fn nodes_table_has_aligned_columns_and_compacted_ranges() {
        let out = render_nodes(&sample());
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 5, "{out}");
        assert!(lines[0].starts_with("ID        NAME  ADDR"), "{out}");
        // Every column starts at the same offset on every line: check RANGES and HEALTH.
        for col in ["HEALTH", "RANGES"] {
            let at = lines[0].find(col).unwrap();
            for l in &lines[1..] {
                assert_ne!(&l[at - 2..at], "  x", "{out}");
                assert_eq!(&l[at - 2..at], "  ", "column {col} misaligned in:\n{out}");
            }
        }
        // Order: n1, its replica n3, then n2, then pending n4.
        assert!(
            lines[1].contains("n1") && lines[1].contains("0-5460") && lines[1].contains("1234"),
            "{out}"
        );
        assert!(
            lines[2].contains("replica of n1") && lines[2].contains("fail"),
            "{out}"
        );
        assert!(lines[1].ends_with("1 replica"), "{out}");
        assert!(lines[2].ends_with("down 2.5s, not promotable"), "{out}");
        assert!(
            lines[3].contains("5461-10921 16000") && lines[3].contains("5462"),
            "{out}"
        );
        assert!(
            lines[4].contains("n4") && lines[4].contains("pending"),
            "{out}"
        );
        // The replica shows its primary's config epoch.
        assert!(lines[2].split_whitespace().any(|c| c == "1"), "{out}");
    }

    #[test]
    fn slots_table_covers_everything_with_unassigned_runs() {
        let out = render_slots(&sample().snapshot);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "RANGE        SLOTS  OWNER         ADDR");
        assert_eq!(lines[1], "0-5460        5461  n1            127.0.0.1:7001");
        assert!(
            lines[3].starts_with("10922-15999   5078  (unassigned)  -"),
            "{out}"
        );
        assert_eq!(lines.len(), 6, "{out}");
    }

    #[test]
    fn status_reports_state_and_counts() {
        let out = render_status(&sample());
        assert!(out.contains("state                  fail"), "{out}");
        assert!(
            out.contains("slots                  10923 assigned, 10923 ok (of 16384)"),
            "{out}"
        );
        assert!(
            out.contains("members                3 (2 primaries, 1 replicas, 1 failed)"),
            "{out}"
        );
        assert!(
            out.contains("pending                1 (see emberctl pending)"),
            "{out}"
        );
        assert!(out.contains("require-full-coverage  yes"), "{out}");
    }

    #[test]
    fn pending_lists_nodes_with_a_hint() {
        let out = render_pending(&sample());
        assert!(
            out.contains("n4") && out.contains("emberctl join NODE"),
            "{out}"
        );
    }

    #[test]
    fn cluster_json_has_the_documented_fields() {
        let v = serde_json::to_value(cluster_doc(&sample())).unwrap();
        for key in [
            "cluster_id",
            "version",
            "current_epoch",
            "state",
            "require_full_coverage",
            "slots_assigned",
            "slots_ok",
            "nodes",
            "pending",
            "migrations",
        ] {
            assert!(v.get(key).is_some(), "missing {key} in {v}");
        }
        assert_eq!(v["state"], "fail");
        assert_eq!(v["version"], 7);
        let n1 = &v["nodes"][0];
        for key in [
            "id",
            "name",
            "client_addr",
            "internal_addr",
            "role",
            "primary_id",
            "health",
            "config_epoch",
            "slots",
            "slot_count",
            "applied_version",
            "key_count",
            "connected",
            "millis_since_heartbeat",
            "repl_offset",
            "repl_link",
            "repl_link_down_ms",
            "repl_lag_bytes",
            "not_promotable",
        ] {
            assert!(n1.get(key).is_some(), "missing {key} in {n1}");
        }
        assert_eq!(n1["slots"], serde_json::json!(["0-5460"]));
        assert_eq!(n1["slot_count"], 5461);
        assert_eq!(n1["role"], "primary");
        assert_eq!(n1["key_count"], 1234);
        let n3 = &v["nodes"][1];
        assert_eq!(
            (n3["role"].as_str(), n3["health"].as_str()),
            (Some("replica"), Some("fail"))
        );
        assert_eq!(n3["primary_id"], v["nodes"][0]["id"]);
        assert_eq!(n3["key_count"], 1200);
        assert_eq!(n3["repl_link"], "down");
        assert_eq!(n3["repl_link_down_ms"], 2500);
        assert_eq!(n3["repl_lag_bytes"], 1000, "behind its primary's offset");
        assert_eq!(n3["not_promotable"], "it is silent");
        assert_eq!(n1["not_promotable"], serde_json::Value::Null);
        assert_eq!(n1["repl_link"], serde_json::Value::Null);
        let p = &v["pending"][0];
        assert_eq!(
            (p["health"].as_str(), p["role"].is_null()),
            (Some("pending"), true)
        );
    }

    #[test]
    fn slots_and_change_json_shapes() {
        let view = sample();
        let v = serde_json::to_value(slots_doc(&view.snapshot)).unwrap();
        let runs = v["slots"].as_array().unwrap();
        assert_eq!(
            runs.iter()
                .map(|r| r["count"].as_u64().unwrap())
                .sum::<u64>(),
            16384
        );
        assert_eq!(runs[0]["range"], "0-5460");
        assert_eq!(runs[0]["node_name"], "n1");
        assert!(runs[2]["node_id"].is_null());

        let d = Dropped {
            node: "n1".into(),
            slots: vec![SlotRange::new(0, 5460).unwrap()],
            slot_count: 5461,
            key_count: Some(3),
            key_count_age_ms: Some(500),
        };
        let v = serde_json::to_value(change_doc(&view, true, "forgot n1", Some(&d))).unwrap();
        assert_eq!(v["changed"], true);
        assert_eq!(v["summary"], "forgot n1");
        assert_eq!(v["cluster"]["version"], 7);
        assert_eq!(v["dropped"]["slots"], serde_json::json!(["0-5460"]));
        let v = serde_json::to_value(change_doc(&view, false, "", None)).unwrap();
        assert!(v["dropped"].is_null());
    }

    #[test]
    fn change_lines() {
        assert_eq!(
            render_change(true, "bootstrapped 3 nodes"),
            "bootstrapped 3 nodes"
        );
        assert!(render_change(false, "n1 is a member").contains("already in effect"));
        let d = Dropped {
            node: "n1".into(),
            slots: vec![SlotRange::new(0, 9).unwrap()],
            slot_count: 10,
            key_count: None,
            key_count_age_ms: None,
        };
        assert_eq!(
            render_dropped(&d, false),
            "forgetting n1 drops 10 slots (0-9) holding an unknown number of keys (no report from the node)"
        );
        assert!(render_dropped(&d, true).starts_with("10 slots (0-9) are now unassigned"));
    }
}
