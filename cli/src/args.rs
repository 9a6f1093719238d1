//! The command line: global flags, one subcommand per operation, and the local
//! validation that must happen before any request leaves the machine (slot syntax).
//!
//! To add a command (e.g. `rebalance`, `drain`, `migrations`): add a variant to
//! [`Command`] with its `Args` struct and examples here, a module under `commands/`,
//! and one arm in `commands::run`.

use std::time::Duration;

use clap::builder::TypedValueParser;
use clap::{Args, Parser, Subcommand, ValueEnum};
use ember_core::slots::SlotError;
use ember_core::{SlotRange, SlotSet};

/// Default address of the control plane's gRPC endpoint.
pub const DEFAULT_CONTROL_PLANE: &str = "http://127.0.0.1:7379";

const MAIN_EXAMPLES: &str = "\
Examples:
  emberctl pending                         nodes that registered and wait to be admitted
  emberctl bootstrap n1 n2 n3              form the cluster, slots split evenly
  emberctl join n4                         admit n4 as an empty primary
  emberctl assign n4 0-100 7000            give slots to n4
  emberctl rebalance --dry-run             how would the slots be evened out?
  emberctl drain n2                        move all of n2's slots away
  emberctl migrations                      running and recently finished migrations
  emberctl status                          is the cluster ok?
  emberctl nodes --json                    machine-readable node list
  emberctl watch                           follow every topology change

NODE is a node id, a unique id prefix (4+ hex digits), a --name, or a client host:port.

Exit codes: 0 success, 1 request rejected by the control plane, 2 usage error,
3 control plane unreachable or not answering, 4 the control plane could not persist
the change (e.g. its disk is full; nothing was changed).";

/// Operate an ember cluster through its control plane.
#[derive(Debug, Parser)]
#[command(name = "emberctl", version, about, after_help = MAIN_EXAMPLES)]
pub struct Cli {
    /// gRPC URL of the control plane (a bare host:port means http://host:port).
    #[arg(
        long,
        global = true,
        env = "EMBER_CONTROL_PLANE",
        default_value = DEFAULT_CONTROL_PLANE,
        value_name = "URL"
    )]
    pub control_plane: String,

    /// Print machine-readable JSON instead of tables (schema: README, "JSON output").
    #[arg(long, global = true)]
    pub json: bool,

    /// Give up on a request (and on connecting) after this long, e.g. `500ms`, `30s`.
    #[arg(
        long,
        global = true,
        default_value = "10s",
        value_parser = request_timeout,
        value_name = "DURATION"
    )]
    pub timeout: Duration,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the cluster from registered nodes; slots are split evenly in contiguous ranges.
    #[command(after_help = "\
Examples:
  emberctl bootstrap n1 n2 n3
  emberctl bootstrap 127.0.0.1:7001        a one-node cluster owning all 16384 slots
  emberctl bootstrap --wait 60s n1 n2 n3   first wait until the three have registered
  emberctl bootstrap --replicas 1 n1 n2 n3 n4 n5 n6
                                           n1-n3 primaries, n4-n6 one replica each

Re-running with the same nodes is a no-op success (so is --wait once they are members).")]
    Bootstrap(BootstrapArgs),

    /// Admit a registered node: as an empty primary, or as a replica.
    #[command(after_help = "\
Examples:
  emberctl join n4                         n4 becomes a primary without slots
  emberctl join n5 --replica-of n1         n5 follows n1

Give the new primary slots with `emberctl assign`.")]
    Join(JoinArgs),

    /// Give slots to a node: free slots at once, owned slots by live migration.
    #[command(after_help = "\
Examples:
  emberctl assign n1 0-5460
  emberctl assign n4 7000 7001-7100 8000
  emberctl assign n4 0-99                  owned by n1: moved by live migration

Slots are checked locally (0-16383, start <= end) before anything is sent. Free slots
are assigned at once; owned ones move by one live migration per current owner, and
emberctl waits for them (without limit: Ctrl-C stops emberctl, not the migrations,
which commit or abort on their own).")]
    Assign(AssignArgs),

    /// Remove a node from the cluster (it must own no slots unless --force).
    #[command(after_help = "\
Examples:
  emberctl forget n4
  emberctl forget 3f2a --force             its slots become unassigned, their keys are lost")]
    Forget(ForgetArgs),

    /// Promote a replica: it takes over its primary's slots (with a new config epoch), the
    /// primary and the shard's other replicas follow it.
    #[command(after_help = "\
Examples:
  emberctl failover n4                     n4 (a replica) takes over its primary's shard, losing nothing
  emberctl failover n4 --force             ... without the primary (it is down or unreachable)

Without --force the primary holds its writes (at most 1 s) until n4 has every one of
them, then n4 takes over and the held writes are redirected to it (MOVED): no
acknowledged write is lost. It needs the primary and n4 healthy and n4's link up.
--force does not need the primary: it waits until no write lease the primary could
hold is left, then promotes n4 as it is; writes n4 has not received are lost (check
its lag with `emberctl nodes` first).")]
    Failover(FailoverArgs),

    /// Make NODE a replica of PRIMARY (NODE: a replica, or a primary without slots).
    #[command(after_help = "\
Examples:
  emberctl replicate n5 n1                 n5 follows n1 (full sync, then the stream)")]
    Replicate(ReplicateArgs),

    /// Even the slots out across primaries by live migration.
    #[command(after_help = "\
Examples:
  emberctl rebalance --dry-run             print the plan only
  emberctl rebalance                       run it, two migrations at a time
  emberctl rebalance --parallel 4 --json   one JSON event per line

The plan (the fewest moves) comes from the control plane, printed before anything
moves. emberctl then waits for every migration without a time limit: Ctrl-C stops
emberctl, not the migrations, which commit or abort on their own. If one aborts, no
new one starts and emberctl exits 1 naming it; run rebalance again to continue from
the state it left.")]
    Rebalance(MoveArgs),

    /// Move all of a node's slots to the other primaries by live migration.
    #[command(after_help = "\
Examples:
  emberctl drain n2 --dry-run              print the plan only
  emberctl drain n2 && emberctl forget n2  empty n2, then remove it

As rebalance: the plan first, then unbounded waiting (Ctrl-C stops emberctl, not the
migrations); if one aborts, emberctl exits 1 and drain can be run again.")]
    Drain(DrainArgs),

    /// Running migrations with their progress, and recently finished ones.
    #[command(after_help = "\
Examples:
  emberctl migrations
  emberctl migrations --json
  emberctl migrations cancel 3f2a          abort one: the source keeps every key")]
    Migrations(MigrationsArgs),

    /// Cluster summary: id, version, epoch, state, slot coverage, members.
    #[command(after_help = "\
Examples:
  emberctl status
  emberctl status --json | jq -r .state")]
    Status,

    /// One line per node: role, health, epoch, slots, applied version, keys.
    #[command(after_help = "\
Examples:
  emberctl nodes
  emberctl nodes --json | jq '.nodes[] | select(.health != \"ok\") | .name'")]
    Nodes,

    /// The slot map: each slot range and its owner (unassigned ranges included).
    #[command(after_help = "\
Examples:
  emberctl slots
  emberctl slots --json")]
    Slots,

    /// Registered nodes that are not members yet.
    #[command(after_help = "\
Examples:
  emberctl pending
  emberctl pending --json

A data node registers itself when started with `ember-data-node --control-plane URL`;
admit it with `emberctl join NODE` (or `emberctl bootstrap` for the first nodes).")]
    Pending,

    /// Follow the topology: one line per new version, saying what changed.
    #[command(after_help = "\
Examples:
  emberctl watch
  emberctl watch --json                    one JSON object per line

Intermediate versions may be skipped (the control plane sends the latest).
Stop with Ctrl-C.")]
    Watch,

    /// Change cluster-wide settings.
    #[command(subcommand)]
    Config(ConfigCommand),

    /// Function libraries (FUNCTION LOAD / FCALL), cluster-wide: loaded once here, every
    /// node has them (also nodes that join or restart later).
    #[command(subcommand)]
    Functions(FunctionsCommand),

    /// Print the control plane's state (a backup, readable by import-state).
    #[command(after_help = "\
Examples:
  emberctl export-state > ember-state.json
  emberctl export-state --output /backups/ember-$(date +%F).json

The document is the control plane's versioned state format (as its state.json).")]
    ExportState(ExportArgs),

    /// Restore the control plane's state, reconciled with what the nodes report.
    #[command(after_help = "\
Examples:
  emberctl import-state ember-state.json   restore a backup (e.g. on a new, empty control plane)
  emberctl import-state                    recover from an ALARM: re-adopt the current state
  cat ember-state.json | emberctl import-state -

Run it with the data nodes connected: each slot goes to the node that reports owning
it with the highest config epoch (the backup's owner only for slots nobody claims),
versions and epochs are set above every one seen, and running migrations are dropped
(their sources keep every key), so a restore never drops a key. Without FILE on a
control plane that lost its state, the topology is rebuilt from the nodes' reports.")]
    ImportState(ImportArgs),

    /// Print a shell completion script to stdout.
    #[command(after_help = "\
Examples:
  emberctl completions bash > /etc/bash_completion.d/emberctl
  emberctl completions zsh > \"${fpath[1]}/_emberctl\"
  emberctl completions fish > ~/.config/fish/completions/emberctl.fish")]
    Completions(CompletionsArgs),
}

/// `--timeout`: 10 ms to 1 h.
fn request_timeout(s: &str) -> Result<Duration, String> {
    ember_core::flags::duration_in(s, Duration::from_millis(10), Duration::from_secs(3600))
}

/// `bootstrap --wait`: up to a day.
fn wait_duration(s: &str) -> Result<Duration, String> {
    ember_core::flags::duration_in(s, Duration::ZERO, Duration::from_secs(24 * 3600))
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Write the document here instead of stdout (replaced atomically).
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// A document from `export-state` (`-` reads stdin); none: re-adopt the current state.
    #[arg(value_name = "FILE")]
    pub file: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct BootstrapArgs {
    /// The registered nodes that form the cluster (id, id prefix, name or host:port).
    #[arg(required = true, value_name = "NODE")]
    pub nodes: Vec<String>,
    /// Replicas per primary: the first NODEs are primaries (NODE count / (N + 1) of
    /// them), the others replicas, spread so that none sits on its primary's host when
    /// hosts differ (as `redis-cli --cluster create --cluster-replicas N`).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub replicas: u32,
    /// First wait up to this long (e.g. `60s`) until every NODE has registered.
    #[arg(long, value_parser = wait_duration, value_name = "DURATION")]
    pub wait: Option<Duration>,
}

/// Default of `--parallel`: migrations in flight at once.
pub const DEFAULT_PARALLEL: usize = 2;

/// What `rebalance` (and `drain`) take.
#[derive(Debug, Args)]
pub struct MoveArgs {
    /// Print the plan and stop.
    #[arg(long)]
    pub dry_run: bool,
    /// Run at most this many migrations at once.
    #[arg(long, default_value_t = DEFAULT_PARALLEL, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..).map(usize::from))]
    pub parallel: usize,
}

#[derive(Debug, Args)]
pub struct DrainArgs {
    /// The member to empty.
    pub node: String,
    #[command(flatten)]
    pub moves: MoveArgs,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct MigrationsArgs {
    #[command(subcommand)]
    pub action: Option<MigrationsCommand>,
}

#[derive(Debug, Subcommand)]
pub enum MigrationsCommand {
    /// Abort a running migration: the source keeps every slot and key.
    Cancel(CancelArgs),
}

#[derive(Debug, Args)]
pub struct CancelArgs {
    /// The migration's id, or a unique prefix of it.
    pub id: String,
}

#[derive(Debug, Args)]
pub struct JoinArgs {
    /// The registered node to admit.
    pub node: String,
    /// Join as a replica of this member (a primary).
    #[arg(long, value_name = "NODE")]
    pub replica_of: Option<String>,
}

#[derive(Debug, Args)]
pub struct FailoverArgs {
    /// The replica to promote.
    pub node: String,
    /// Promote without the primary's cooperation (it is down or cut off).
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct ReplicateArgs {
    /// The node that becomes a replica.
    pub node: String,
    /// The primary it follows.
    pub primary: String,
}

#[derive(Debug, Args)]
pub struct AssignArgs {
    /// The member that receives the slots.
    pub node: String,
    /// Slots and inclusive ranges, e.g. `0-5460 7000` (commas also separate).
    #[arg(required = true, value_name = "SLOTS")]
    pub slots: Vec<String>,
    /// Run at most this many migrations at once (one per current owner).
    #[arg(long, default_value_t = DEFAULT_PARALLEL, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..).map(usize::from))]
    pub parallel: usize,
}

impl AssignArgs {
    /// The requested slots as the fewest ranges, or why the arguments are not slots.
    /// Called before connecting, so bad input never reaches the network.
    pub fn slot_ranges(&self) -> Result<Vec<SlotRange>, SlotError> {
        Ok(SlotSet::parse_args(&self.slots)?.ranges())
    }
}

#[derive(Debug, Args)]
pub struct ForgetArgs {
    /// The node to remove (member or pending).
    pub node: String,
    /// Also forget a node that still owns slots: they become unassigned and the keys in
    /// them are dropped.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Subcommand)]
pub enum FunctionsCommand {
    /// Load a library from a file (its first line `#!lua name=NAME`).
    #[command(after_help = "\
Examples:
  emberctl functions load mylib.lua
  emberctl functions load --replace mylib.lua   a new version of a loaded library

Loading the library that is loaded already (same code) changes nothing.")]
    Load(FunctionsLoadArgs),
    /// The libraries and their functions.
    #[command(after_help = "\
Examples:
  emberctl functions list
  emberctl functions list --code               with each library's code
  emberctl --json functions list")]
    List(FunctionsListArgs),
    /// Delete a library (and its functions).
    Delete(FunctionsDeleteArgs),
    /// Delete every library.
    Flush,
}

#[derive(Debug, Args)]
pub struct FunctionsLoadArgs {
    /// The library's code (`-` reads standard input).
    pub file: std::path::PathBuf,
    /// Replace the library of the same name.
    #[arg(long)]
    pub replace: bool,
}

#[derive(Debug, Args)]
pub struct FunctionsListArgs {
    /// Print each library's code too.
    #[arg(long)]
    pub code: bool,
}

#[derive(Debug, Args)]
pub struct FunctionsDeleteArgs {
    /// The library's name.
    pub name: String,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Set a cluster-wide setting.
    #[command(after_help = "\
Examples:
  emberctl config set require-full-coverage no   serve covered slots even if some are down
  emberctl config set require-full-coverage yes  (default) the cluster is down while any slot is")]
    Set(ConfigSetArgs),
}

#[derive(Debug, Args)]
pub struct ConfigSetArgs {
    pub key: ConfigKey,
    pub value: Toggle,
}

/// Settings that `config set` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ConfigKey {
    /// As Redis's cluster-require-full-coverage.
    RequireFullCoverage,
}

/// A yes/no setting value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Toggle {
    #[value(alias = "true", alias = "on")]
    Yes,
    #[value(alias = "false", alias = "off")]
    No,
}

impl Toggle {
    pub fn as_bool(self) -> bool {
        self == Toggle::Yes
    }
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    pub shell: clap_complete::Shell,
}

/// Turns what the user typed into a gRPC URL: a bare `host:port` gets `http://`.
pub fn normalize_url(url: &str) -> String {
    let url = url.trim();
    if url.contains("://") {
        url.to_string()
    } else {
        format!("http://{url}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("emberctl").chain(args.iter().copied()))
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_have_defaults_and_go_anywhere() {
        let cli = parse(&["status"]).unwrap();
        assert!(!cli.json);
        assert_eq!(cli.timeout, Duration::from_secs(10));
        let cli = parse(&[
            "nodes",
            "--json",
            "--timeout",
            "500ms",
            "--control-plane",
            "h:1",
        ])
        .unwrap();
        assert!(cli.json);
        assert_eq!(cli.timeout, Duration::from_millis(500));
        assert_eq!(cli.control_plane, "h:1");
        assert_eq!(normalize_url(&cli.control_plane), "http://h:1");
        assert_eq!(normalize_url("https://cp:7379"), "https://cp:7379");
    }

    #[test]
    fn assign_slots_are_validated_locally() {
        let Command::Assign(a) = parse(&["assign", "n1", "0-5460", "7000,7001"])
            .unwrap()
            .command
        else {
            panic!("not assign")
        };
        let ranges = a.slot_ranges().unwrap();
        assert_eq!(
            ember_core::slots::format_ranges(&ranges),
            "0-5460 7000-7001"
        );

        for (bad, msg) in [
            ("16384", "slot 16384 is out of range: slots are 0-16383"),
            ("10-5", "slot range 10-5 is reversed: write it as 5-10"),
            (
                "x",
                "'x' is not a slot: expected a number like 7000 or a range like 0-5460",
            ),
        ] {
            let Command::Assign(a) = parse(&["assign", "n1", "0-5460", bad]).unwrap().command
            else {
                panic!("not assign")
            };
            assert_eq!(a.slot_ranges().unwrap_err().to_string(), msg);
        }
        // Missing slots is a usage error that clap reports.
        assert!(parse(&["assign", "n1"]).is_err());
    }

    #[test]
    fn subcommands_parse() {
        let Command::Join(j) = parse(&["join", "n5", "--replica-of", "n1"])
            .unwrap()
            .command
        else {
            panic!()
        };
        assert_eq!(
            (j.node.as_str(), j.replica_of.as_deref()),
            ("n5", Some("n1"))
        );
        let Command::Forget(f) = parse(&["forget", "n4", "--force"]).unwrap().command else {
            panic!()
        };
        assert!(f.force);
        let Command::Config(ConfigCommand::Set(s)) =
            parse(&["config", "set", "require-full-coverage", "no"])
                .unwrap()
                .command
        else {
            panic!()
        };
        assert_eq!(
            (s.key, s.value.as_bool()),
            (ConfigKey::RequireFullCoverage, false)
        );
        assert!(parse(&["config", "set", "require-full-coverage", "maybe"]).is_err());
        assert!(parse(&["bootstrap"]).is_err());
        let Command::Bootstrap(b) = parse(&["bootstrap", "--wait", "60s", "n1", "n2"])
            .unwrap()
            .command
        else {
            panic!()
        };
        assert_eq!((b.wait, b.nodes.len()), (Some(Duration::from_secs(60)), 2));
        assert!(parse(&["bootstrap", "--wait", "soon", "n1"]).is_err());
        let Command::Rebalance(r) = parse(&["rebalance"]).unwrap().command else {
            panic!()
        };
        assert_eq!((r.dry_run, r.parallel), (false, 2));
        let Command::Drain(d) = parse(&["drain", "n2", "--dry-run", "--parallel", "3"])
            .unwrap()
            .command
        else {
            panic!()
        };
        assert_eq!(
            (d.node.as_str(), d.moves.dry_run, d.moves.parallel),
            ("n2", true, 3)
        );
        assert!(parse(&["rebalance", "--parallel", "0"]).is_err());
        let Command::Migrations(m) = parse(&["migrations", "cancel", "3f2a"]).unwrap().command
        else {
            panic!()
        };
        assert!(matches!(m.action, Some(MigrationsCommand::Cancel(c)) if c.id == "3f2a"));
        assert!(parse(&["migrations"]).is_ok());
        assert!(parse(&["completions", "bash"]).is_ok());
    }
}
