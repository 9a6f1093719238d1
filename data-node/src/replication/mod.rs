//! Replication (issue 12, being built; see ARCHITECTURE "Replication and failover").
//!
//! - [`log`]: the primary's replication log: every effect as a frame at an offset, the
//!   backlog a replica resumes from, and the `(replid, offset)` identity of the dataset
//!   with PSYNC2's second id.
//! - [`report`]: what Redis clients see of it (`ROLE`, `INFO replication`).

pub mod log;
pub mod report;
