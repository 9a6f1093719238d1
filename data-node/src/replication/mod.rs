//! Replication (issue 12; see ARCHITECTURE "Replication and failover").
//!
//! - [`log`]: the replication log: every effect as a frame at an offset, the backlog a
//!   replica resumes from, and the `(replid, offset)` identity of the dataset with
//!   PSYNC2's second id.
//! - [`primary`]: the `Internal.Replicate` stream a primary serves each replica (partial
//!   resync or full sync), the replicas' acknowledgements, `WAIT`.
//! - [`replica`]: a replica following its primary, and the role changes the topology
//!   makes.
//! - [`handover`]: a manual failover's write pause on the primary.
//! - [`lease`]: write leases, the fence that keeps a cut-off primary from
//!   acknowledging writes once a replica may be promoted.
//! - [`wire`]: frames to and from protobuf.
//! - [`report`]: what Redis clients see of it (`ROLE`, `INFO replication`).

pub(crate) mod fullsync;
pub mod handover;
pub mod lease;
pub mod log;
pub mod primary;
pub mod replica;
pub mod report;
pub mod step_down;
pub mod wire;
