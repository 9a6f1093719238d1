//! Transactions: MULTI, EXEC, DISCARD, WATCH, UNWATCH.
//!
//! Queued commands are validated (name, arity) and routed when queued; all keyed
//! commands of one transaction must use one slot (else `CROSSSLOT`, and `EXEC` answers
//! `EXECABORT`). `EXEC` runs the keyed commands with that slot's table locked, so they
//! are atomic. A keyless command inside a transaction (say `DBSIZE`) runs with the lock
//! released and retaken around it, so it is not atomic with the rest.
//!
//! `WATCH` remembers the slot's modification counter; `EXEC` aborts if it changed. This
//! aborts on a write to *any* key of the watched key's slot (a false abort Redis would
//! not make, but never a missed one).

use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::{flags, Ctx, Handler, MultiState, TABLE};
use crate::db::SlotTable;
use crate::resp::Reply;

/// # Format
/// `MULTI`
pub fn multi(ctx: &mut Ctx, _args: &[Bytes]) -> Reply {
    if ctx.client.multi.is_some() {
        return Reply::err("ERR MULTI calls can not be nested");
    }
    ctx.client.multi = Some(MultiState::default());
    ctx.client.info.multi.store(0, Ordering::Relaxed);
    Reply::ok()
}

/// # Format
/// `DISCARD`
pub fn discard(ctx: &mut Ctx, _args: &[Bytes]) -> Reply {
    if ctx.client.multi.take().is_none() {
        return Reply::err("ERR DISCARD without MULTI");
    }
    ctx.client.info.multi.store(-1, Ordering::Relaxed);
    ctx.client.watched.clear();
    Reply::ok()
}

/// # Format
/// `WATCH key [key ...]`
pub fn watch(ctx: &mut Ctx, _t: &mut SlotTable, _args: &[Bytes]) -> Reply {
    if ctx.client.multi.is_some() {
        return Reply::err("ERR WATCH inside MULTI is not allowed");
    }
    let v = ctx.state.db.version(ctx.slot);
    ctx.client.watched.push((ctx.slot, v));
    Reply::ok()
}

/// # Format
/// `UNWATCH`
pub fn unwatch(ctx: &mut Ctx, _args: &[Bytes]) -> Reply {
    ctx.client.watched.clear();
    Reply::ok()
}

/// # Format
/// `EXEC`
pub fn exec(ctx: &mut Ctx, _args: &[Bytes]) -> Reply {
    let Some(ms) = ctx.client.multi.take() else {
        return Reply::err("ERR EXEC without MULTI");
    };
    ctx.client.info.multi.store(-1, Ordering::Relaxed);
    let watched = std::mem::take(&mut ctx.client.watched);
    if ms.dirty {
        return Reply::err("EXECABORT Transaction discarded because of previous errors.");
    }
    if ms.denyoom && crate::evict::out_of_memory(ctx.state) {
        return Reply::error(format!(
            "EXECABORT Transaction discarded because of: {}",
            crate::evict::OOM
        ));
    }
    let state = ctx.state;
    // Routed under the slot's lock, as in `cmd::execute`.
    let mut guard = ms.slot.map(|s| state.db.lock(s));
    // The primary's link (a replica applying one frame atomically) is not routed.
    let routed = !ctx.client.primary_link;
    if let (Some(slot), true) = (ms.slot, routed) {
        if let Err(e) = state.cluster.route(slot, !ms.write && ctx.client.readonly) {
            return Reply::error(e.to_string());
        }
    }
    if ms.write && routed {
        if let Err(e) = super::may_write(state) {
            return e;
        }
    }
    if ms.write && routed && guard.as_ref().is_some_and(|g| g.is_held()) {
        // A migration's handoff holds the slot: put the transaction back and wait.
        ctx.client.held_on = ms.slot;
        ctx.client.watched = watched;
        ctx.client
            .info
            .multi
            .store(ms.queued.len() as i64, Ordering::Relaxed);
        ctx.client.multi = Some(ms);
        return Reply::Null;
    }
    // Checked with the transaction's slot locked: nothing can change it before we run.
    if watched.iter().any(|&(s, v)| state.db.version(s) != v) {
        return Reply::NullArray;
    }
    ctx.slot = ms.slot.unwrap_or(0);
    // As in Redis, nothing blocks inside a transaction.
    ctx.nonblocking = true;
    let mut replies = Vec::with_capacity(ms.queued.len());
    // The transaction's effects, published at once: a consumer sees it whole.
    let mut effects = Vec::new();
    for (idx, args) in &ms.queued {
        let spec = &TABLE[*idx];
        match spec.handler {
            Handler::Keyed(f) => {
                let Some(g) = guard.as_mut() else {
                    replies.push(Reply::err("ERR no slot locked"));
                    continue;
                };
                ctx.noop = false;
                ctx.observed = g.observed();
                let r = f(ctx, g, args);
                if spec.flags & flags::WRITE != 0 {
                    crate::cmd::record_write(ctx, g, args, &r, &mut effects);
                }
                replies.push(r);
            }
            Handler::Keyless(f) => {
                if let Some(g) = guard.as_mut() {
                    g.publish(std::mem::take(&mut effects));
                }
                drop(guard.take());
                let mut r = f(ctx, args);
                if let Some(pending) = ctx.client.script.take() {
                    // A script inside the transaction: its reply is this command's. The
                    // slot is released meanwhile (the script takes it).
                    r = super::scripting::wait_here(pending);
                }
                if let Some(w) = ctx.client.wait.take() {
                    // A transaction never blocks: `WAIT` counts the replicas there now.
                    r = Reply::Integer(state.followers.count_at(w.offset) as i64);
                }
                replies.push(r);
                guard = ms.slot.map(|s| state.db.lock(s));
            }
        }
    }
    if let Some(g) = guard.as_mut() {
        g.publish(std::mem::take(&mut effects));
        // Clients blocked on what the transaction pushed are served once it is whole.
        crate::blocking::serve(state, ctx.client, g, ctx.slot, ctx.now);
    }
    if ms.write {
        ctx.client.woff = state.repl.end();
    }
    Reply::Array(replies)
}
