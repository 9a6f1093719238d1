//! The control plane's view (emberctl `--json`), the invariants of a settled cluster,
//! and key access straight to the slots' owners.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, ensure, Context};
use ember_tests::{wait_until, TestCluster};
use serde_json::Value;

use crate::{connect, slot_ranges};

pub const SLOTS: usize = 16384;

/// A set of slots.
#[derive(Clone)]
pub struct SlotSet(pub Vec<bool>);

impl SlotSet {
    pub fn empty() -> Self {
        Self(vec![false; SLOTS])
    }

    pub fn all() -> Self {
        Self(vec![true; SLOTS])
    }

    /// Adds emberctl's range strings (`"0-5460"`, `"7000"`).
    pub fn add_ranges(&mut self, ranges: &Value) {
        for r in ranges.as_array().into_iter().flatten() {
            if let Some((lo, hi)) = r.as_str().and_then(parse_range) {
                self.0[lo..=hi].iter_mut().for_each(|b| *b = true);
            }
        }
    }

    pub fn union(&mut self, other: &SlotSet) {
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a |= *b;
        }
    }

    pub fn contains(&self, slot: u16) -> bool {
        self.0[usize::from(slot)]
    }

    pub fn len(&self) -> usize {
        self.0.iter().filter(|b| **b).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

pub fn parse_range(s: &str) -> Option<(usize, usize)> {
    let (lo, hi) = s.split_once('-').unwrap_or((s, s));
    let (lo, hi): (usize, usize) = (lo.parse().ok()?, hi.parse().ok()?);
    (lo <= hi && hi < SLOTS).then_some((lo, hi))
}

pub fn slot_of(key: &str) -> u16 {
    ember_core::key_slot(key.as_bytes())
}

/// `emberctl status --json` (a `Cluster` document).
pub fn status(c: &TestCluster) -> anyhow::Result<Value> {
    c.ctl_json(&["--timeout", "3s", "status"])
}

/// Like [`status`], retried for up to `timeout` (the control plane may be restarting).
pub fn status_within(c: &TestCluster, timeout: Duration) -> anyhow::Result<Value> {
    let mut last = None;
    wait_until("control plane status", timeout, || {
        last = Some(status(c)?);
        Ok(true)
    })?;
    last.context("no status")
}

pub fn members(status: &Value) -> &[Value] {
    status["nodes"].as_array().map_or(&[], Vec::as_slice)
}

pub fn migrations(status: &Value) -> &[Value] {
    status["migrations"].as_array().map_or(&[], Vec::as_slice)
}

pub fn member<'a>(status: &'a Value, key: &str, value: &str) -> Option<&'a Value> {
    members(status).iter().find(|m| m[key] == value)
}

/// The slots node `id` owns or takes part in a migration of.
pub fn slots_at_stake(status: &Value, id: &str) -> SlotSet {
    let mut set = SlotSet::empty();
    if let Some(m) = member(status, "id", id) {
        set.add_ranges(&m["slots"]);
    }
    for m in migrations(status) {
        if m["source_id"] == id || m["target_id"] == id {
            set.add_ranges(&m["slots"]);
        }
    }
    set
}

/// The control plane's slot map as each slot's owner's client port; checks that the runs
/// cover every slot exactly once.
pub fn owner_map(c: &TestCluster) -> anyhow::Result<Vec<Option<u16>>> {
    let map = c.ctl_json(&["--timeout", "3s", "slots"])?;
    let mut owner = vec![None; SLOTS];
    let mut next = 0;
    for run in map["slots"].as_array().context("slots")? {
        let (start, end) = (run["start"].as_u64(), run["end"].as_u64());
        let (Some(start), Some(end)) = (start, end) else {
            bail!("slot run without bounds: {run}");
        };
        ensure!(
            start == next && end >= start && (end as usize) < SLOTS,
            "slot runs do not cover each slot once: {start}-{end} after {next}"
        );
        let port = run["client_addr"]
            .as_str()
            .and_then(|a| a.rsplit(':').next())
            .and_then(|p| p.parse().ok());
        owner[start as usize..=end as usize].fill(port);
        next = end + 1;
    }
    ensure!(next as usize == SLOTS, "slot runs end at {next}");
    Ok(owner)
}

/// The invariants of a settled cluster: every member on the control plane's version, in
/// `cluster_state:ok` and routing every slot as the control plane's map does; every slot
/// owned once; keys only on their slot's owner.
pub fn invariants(c: &TestCluster) -> anyhow::Result<bool> {
    let s = status(c)?;
    let version = s["version"].as_u64().context("no version")?;
    ensure!(
        s["slots_assigned"].as_u64() == Some(SLOTS as u64),
        "{} slots assigned",
        s["slots_assigned"]
    );
    for m in members(&s) {
        ensure!(
            m["applied_version"].as_u64() == Some(version),
            "{} applied version {} of {version}",
            m["name"],
            m["applied_version"]
        );
    }
    let owner = owner_map(c)?;
    ensure!(owner.iter().all(Option::is_some), "a slot has no owner");
    for (i, spec) in c.specs.iter().enumerate() {
        if !c.nodes[i].is_running() {
            continue;
        }
        if member(&s, "name", &spec.name).is_some() {
            let state = c.cluster_info(i)?.remove("cluster_state");
            ensure!(
                state.as_deref() == Some("ok"),
                "{} has cluster_state {state:?}",
                spec.name
            );
            routes_as(spec.port, &owner).with_context(|| spec.name.clone())?;
        }
        keys_only_in_owned(spec.port, &owner).with_context(|| spec.name.clone())?;
    }
    Ok(true)
}

/// The node at `port` routes every slot to `owner`'s port (by its `CLUSTER SLOTS`).
pub fn routes_as(port: u16, owner: &[Option<u16>]) -> anyhow::Result<()> {
    let mut seen = vec![None; SLOTS];
    for (lo, hi, p) in slot_ranges(&mut connect(port)?)? {
        seen[usize::from(lo)..=usize::from(hi)].fill(Some(p));
    }
    match (0..SLOTS).find(|&s| seen[s] != owner[s]) {
        Some(s) => bail!(
            "routes slot {s} to {:?}, the control plane's map to {:?}",
            seen[s],
            owner[s]
        ),
        None => Ok(()),
    }
}

/// `CLUSTER COUNTKEYSINSLOT` on the node at `port` is 0 for every slot it does not own.
pub fn keys_only_in_owned(port: u16, owner: &[Option<u16>]) -> anyhow::Result<()> {
    let mut pipe = redis::pipe();
    for slot in 0..SLOTS {
        pipe.cmd("CLUSTER").arg("COUNTKEYSINSLOT").arg(slot);
    }
    let counts: Vec<u64> = pipe.query(&mut connect(port)?)?;
    match (0..SLOTS).find(|&s| counts[s] > 0 && owner[s] != Some(port)) {
        Some(s) => bail!(
            "holds {} keys of slot {s}, owned by {:?}",
            counts[s],
            owner[s]
        ),
        None => Ok(()),
    }
}

/// Indices of `keys` by owner port, then by slot.
pub fn by_owner(
    owner: &[Option<u16>],
    keys: &[String],
) -> anyhow::Result<BTreeMap<u16, BTreeMap<u16, Vec<usize>>>> {
    let mut out: BTreeMap<u16, BTreeMap<u16, Vec<usize>>> = BTreeMap::new();
    for (i, k) in keys.iter().enumerate() {
        let slot = slot_of(k);
        let port = owner[usize::from(slot)].with_context(|| format!("slot {slot} has no owner"))?;
        out.entry(port)
            .or_default()
            .entry(slot)
            .or_default()
            .push(i);
    }
    Ok(out)
}

/// SETs `keys[i]` to `values[i]` on their slots' owners, pipelined.
pub fn store(owner: &[Option<u16>], keys: &[String], values: &[String]) -> anyhow::Result<()> {
    for (port, slots) in by_owner(owner, keys)? {
        let mut conn = connect(port)?;
        let idx: Vec<usize> = slots.into_values().flatten().collect();
        for chunk in idx.chunks(1000) {
            let mut pipe = redis::pipe();
            for &i in chunk {
                pipe.cmd("SET").arg(&keys[i]).arg(&values[i]).ignore();
            }
            pipe.exec(&mut conn)?;
        }
    }
    Ok(())
}

/// GETs `keys` from their slots' owners (one MGET per slot, pipelined per node).
pub fn fetch(owner: &[Option<u16>], keys: &[String]) -> anyhow::Result<Vec<Option<String>>> {
    let mut out = vec![None; keys.len()];
    for (port, slots) in by_owner(owner, keys)? {
        let mut conn = connect(port)?;
        let slots: Vec<Vec<usize>> = slots.into_values().collect();
        for chunk in slots.chunks(256) {
            let mut pipe = redis::pipe();
            for idx in chunk {
                let ks: Vec<&str> = idx.iter().map(|&i| keys[i].as_str()).collect();
                pipe.cmd("MGET").arg(ks);
            }
            let replies: Vec<Vec<Option<String>>> = pipe.query(&mut conn)?;
            for (idx, values) in chunk.iter().zip(replies) {
                for (&i, v) in idx.iter().zip(values) {
                    out[i] = v;
                }
            }
        }
    }
    Ok(out)
}
