//! Building blocks of the soak run (`bench/src/bin/soak.rs`): the control plane's view
//! and the cluster invariants, writer threads, faults, and node failures as published.

pub mod cluster;
pub mod faults;
pub mod watch;
pub mod writer;
