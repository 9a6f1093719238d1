//! `CLUSTER ...` subcommands (INFO, NODES, SLOTS, SHARDS, MYID, KEYSLOT, COUNTKEYSINSLOT,
//! GETKEYSINSLOT) and the gossip-era ones, which point at the emberctl command to use.
//!
//! OWNED BY THE CLUSTER WORK; the command engine dispatches `CLUSTER` here.

use bytes::Bytes;

use super::Cluster;
use crate::db::Db;
use crate::resp::Reply;

/// Runs `CLUSTER <subcommand> args...` (`args[0]` is `CLUSTER`).
///
/// Placeholder until the cluster work fills it in.
pub fn cluster_command(cluster: &Cluster, db: &Db, args: &[Bytes]) -> Reply {
    let _ = (cluster, db);
    crate::cmd::unknown_subcommand(args.get(1).map(|b| &b[..]).unwrap_or(b""), "CLUSTER")
}
