//! ember's control plane: the single, durable authority for cluster topology.
//!
//! - [`state`]: the durable state and the pure state machine (`apply(op) -> next state`).
//! - [`store`]: persistence behind one trait: a file (atomic, fsynced JSON document) or
//!   etcd (transactions fenced by the leader's term).
//! - [`leadership`]: with etcd, the election of one leader among several processes.
//! - [`forward`]: followers forward every request to the leader.
//! - [`authority`]: serialises changes; persists, then publishes each committed state.
//! - [`heartbeater`]: turns observed liveness into health changes.
//! - [`handover`]: manual zero-loss failover (the primary's write pause, one decision).
//! - [`lease`]: write leases granted to primaries, and fencing before a failover.
//! - [`session`]: the per-node session stream (hello, heartbeats, snapshots).
//! - [`admin`]: the API that emberctl calls.
//! - [`server`]: wires the gRPC services (plus health and reflection) together.

pub mod admin;
pub mod authority;
pub mod forward;
pub mod handover;
pub mod heartbeater;
pub mod leadership;
pub mod lease;
pub mod restore;
pub mod scheduler;
pub mod server;
pub mod session;
pub mod state;
mod status;
pub mod store;
