//! ember's data node: a Redis-Cluster-compatible RESP server.
//!
//! Layout (in the style of mini-redis, with commands grouped by family):
//!
//! - [`resp`]: the wire protocol. [`resp::parse`] turns buffered bytes into commands
//!   (RESP multibulk arrays of bulk strings, and inline commands for telnet users) and
//!   enforces the protocol limits; [`resp::reply`] is the [`Reply`] type and its
//!   RESP2/RESP3 encoder.
//! - [`db`]: the keyspace, organised by hash slot: 16384 tables, each behind its own
//!   mutex, so that counting, listing and dropping a slot never scans the whole keyspace;
//!   [`db::observe`] hands every change, as effects, to whoever follows the keyspace.
//! - [`cmd`]: the command table (name, arity, flags, key positions) and the commands,
//!   one file per family. Every keyed command is routed through
//!   [`cluster::Cluster::route`] before it runs.
//! - [`server`]: the accept loop (`maxclients`), the per-connection task (pipelining in
//!   bounded turns, backpressure, `client-output-buffer-limit`) and the active expiry
//!   task.
//! - [`state`]: the [`ServerState`] every part shares (keyspace, cluster view, settings,
//!   clients, counters).
//! - [`blocking`]: clients blocked on keys (`BLPOP` ...): their queues, who serves
//!   them, and what ends a wait.
//! - [`glob`]: the glob matcher behind every pattern (KEYS, SCAN MATCH, CONFIG GET).
//! - [`config`]: limits and the settings `CONFIG GET/SET` expose.
//! - [`fdlimit`]: the open files limit, fitted to `maxclients` plus a reserve.
//! - [`alloc`]: an optional counting global allocator for `used_memory`.
//! - [`evict`]: `maxmemory`: the eviction policies, their sampling pool, `OOM`.
//! - [`cluster`]: the node's view of the cluster topology: the applied snapshot, routing,
//!   `CLUSTER ...`, the node's identity and its session with the control plane.
//! - [`migration`]: live slot migration (source streaming and handoff, target staging).
//! - [`notify`]: keyspace notifications (`notify-keyspace-events`).
//! - [`tracking`]: client-side caching (`CLIENT TRACKING`): who read what, invalidations.
//! - [`persist`]: snapshots on disk (`SAVE`, `BGSAVE`, `save` points), loaded at start.
//! - [`pause`]: `CLIENT PAUSE`: which commands wait, until when.
//! - [`pubsub`]: subscriptions, delivery, and the node-to-node links that carry
//!   messages across the cluster.
//! - [`script`]: Lua scripting: the script cache, the script thread and its VM.
//! - [`internal`]: the node-to-node gRPC endpoint (health, slot streaming, handoff
//!   aborts).
//! - [`handoff`]: one decision point for a paused handoff (commit or abort), kept by the
//!   node that takes over; used by migration, meant for the manual failover pause too.

pub mod alloc;
pub mod blocking;
pub mod cluster;
pub mod cmd;
pub mod config;
pub mod db;
pub mod evict;
pub mod fdlimit;
pub mod glob;
pub mod handoff;
pub mod internal;
pub mod migration;
pub mod notify;
pub mod pause;
pub mod persist;
pub mod pubsub;
pub mod replication;
pub mod resp;
pub mod script;
pub mod server;
pub mod state;
pub mod tracking;

pub use config::Config;
pub use db::Db;
pub use resp::Reply;
pub use server::serve;
pub use state::ServerState;
