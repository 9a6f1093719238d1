//! Shared domain types of ember, used by the control plane, the data node and emberctl.
//!
//! - [`slots`]: hash slots, inclusive slot ranges, parsing `0-5460 7000` and compacting.
//! - [`functions`]: function libraries (cluster-wide configuration) and their rules.
//! - [`flags`]: range checks for the binaries' duration and number flags.
//! - [`keyslot`]: which slot a key hashes to (CRC16 with hash tags, as the cluster spec says).
//! - [`lineage`]: which history a topology version belongs to, and when a node may
//!   replace its applied topology with a newer one.
//! - [`registration`]: bounds on node names and announced addresses.
//! - [`topology`]: the versioned cluster topology that the control plane owns and streams.
//!
//! Nothing here does I/O (with feature `lua`, [`functions`] runs library code); the prost types live in `ember-proto` and convert to these.

pub mod flags;
pub mod functions;
pub mod keyslot;
pub mod lineage;
pub mod registration;
pub mod slots;
pub mod topology;

pub use keyslot::key_slot;
pub use slots::{SlotRange, SlotSet, SLOT_COUNT};
pub use topology::{Migration, MigrationState, NodeId, NodeInfo, Role, SlotMap, Topology};
