//! `ember-control-plane`: holds the authoritative cluster topology, persists it, and
//! streams versioned snapshots to data nodes.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use ember_control_plane::server::{self, Config, StoreConfig};
use ember_core::flags;

/// The ember control plane: the single, durable authority for cluster topology.
#[derive(Parser, Debug)]
#[command(
    version,
    about,
    after_help = "Example:\n  ember-control-plane --listen 0.0.0.0:7379 --data-dir /var/lib/ember-cp"
)]
struct Args {
    /// gRPC address for emberctl (admin API) and data nodes (session stream).
    #[arg(long, env = "EMBER_CP_LISTEN", default_value = "127.0.0.1:7379")]
    listen: SocketAddr,
    /// Where the state is kept: `file` (state.json in --data-dir: one control-plane
    /// process) or `etcd` (--etcd-endpoints: several processes, one elected leader).
    #[arg(long, env = "EMBER_CP_STORE", default_value = "file", value_parser = ["file", "etcd"])]
    store: String,
    /// Directory holding the durable state (state.json), with `--store file`.
    #[arg(long, env = "EMBER_CP_DATA_DIR", default_value = "./ember-cp-data")]
    data_dir: PathBuf,
    /// etcd's client URLs, comma-separated (`--store etcd`).
    #[arg(
        long,
        env = "EMBER_CP_ETCD_ENDPOINTS",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:2379"
    )]
    etcd_endpoints: Vec<String>,
    /// The prefix of every key ember writes in etcd (one cluster per prefix).
    #[arg(long, env = "EMBER_CP_ETCD_PREFIX", default_value = "/ember")]
    etcd_prefix: String,
    /// The leader's lease: a leader that could not renew it for this long is replaced
    /// (`--store etcd`; 1s to 60s, whole seconds).
    #[arg(long, env = "EMBER_CP_LEASE_TTL", default_value = "3s", value_parser = lease_ttl)]
    lease_ttl: Duration,
    /// This process's URL as the other control planes reach it (they forward requests to
    /// the leader); default `http://LISTEN`, which must then not be a wildcard address.
    #[arg(long, env = "EMBER_CP_ADVERTISE_URL")]
    advertise_url: Option<String>,
    /// A node silent this long is marked failed (e.g. 5s, 500ms; 100ms to 1h).
    #[arg(long, env = "EMBER_CP_NODE_TIMEOUT", default_value = "5s", value_parser = node_timeout)]
    node_timeout: Duration,
    /// Most live migrations running at once (rebalance and drain run this many in parallel; 1-64).
    #[arg(long, env = "EMBER_CP_MAX_MIGRATIONS", default_value = "4", value_parser = max_migrations)]
    max_migrations: usize,
    /// A migration whose target reports no progress for this long is aborted (1s to 24h).
    #[arg(long, env = "EMBER_CP_MIGRATION_TIMEOUT", default_value = "30s", value_parser = migration_timeout)]
    migration_timeout: Duration,
    /// A replica whose link to its primary has been down longer than this many node
    /// timeouts is not promoted (0: no bound; as Redis's cluster-replica-validity-factor).
    #[arg(long, env = "EMBER_CP_REPLICA_VALIDITY_FACTOR", default_value_t = ember_control_plane::heartbeater::REPLICA_VALIDITY_FACTOR, value_parser = validity_factor)]
    replica_validity_factor: u32,
}

fn lease_ttl(s: &str) -> Result<Duration, String> {
    let d = flags::duration_in(s, Duration::from_secs(1), Duration::from_secs(60))?;
    if d.subsec_nanos() != 0 {
        return Err(format!(
            "{s} is not a whole number of seconds (etcd leases count seconds)"
        ));
    }
    Ok(d)
}

fn node_timeout(s: &str) -> Result<Duration, String> {
    flags::duration_in(s, Duration::from_millis(100), Duration::from_secs(3600))
}

fn migration_timeout(s: &str) -> Result<Duration, String> {
    flags::duration_in(s, Duration::from_secs(1), Duration::from_secs(24 * 3600))
}

fn validity_factor(s: &str) -> Result<u32, String> {
    flags::number_in(s, 0, 1000)
}

fn max_migrations(s: &str) -> Result<usize, String> {
    flags::number_in(s, 1, 64)
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let store = match args.store.as_str() {
        "etcd" => {
            let advertise = match args.advertise_url {
                Some(url) => url,
                None if args.listen.ip().is_unspecified() => {
                    eprintln!("error: --listen {} is a wildcard address: give --advertise-url (the URL the other control planes reach this one at)", args.listen);
                    std::process::exit(2);
                }
                None => format!("http://{}", args.listen),
            };
            StoreConfig::Etcd {
                endpoints: args.etcd_endpoints,
                prefix: args.etcd_prefix,
                lease_ttl: args.lease_ttl,
                advertise,
            }
        }
        _ => StoreConfig::File {
            data_dir: args.data_dir,
        },
    };
    let config = Config {
        listen: args.listen,
        store,
        node_timeout: args.node_timeout,
        max_migrations: args.max_migrations,
        migration_timeout: args.migration_timeout,
        replica_validity_factor: args.replica_validity_factor,
    };
    if let Err(e) = server::run(config, shutdown_signal()).await {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("install SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {},
        _ = term.recv() => {},
    }
    tracing::info!("shutting down");
}
