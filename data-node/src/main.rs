//! `ember-data-node`: a Redis-Cluster-compatible RESP server whose idea of the cluster
//! comes only from the control plane's session stream.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use ember_core::{flags, registration};
use ember_data_node::cluster::applier::Applier;
use ember_data_node::cluster::identity::Identity;
use ember_data_node::cluster::session::{self, SessionConfig};
use ember_data_node::cluster::Cluster;
use ember_data_node::migration::Migrations;
use ember_data_node::{serve, Config, ServerState};

/// An ember data node: serves RESP clients, follows the control plane's topology.
#[derive(Parser, Debug)]
#[command(
    version,
    about,
    after_help = "Example:\n  ember-data-node --port 7001 --name n1 --control-plane http://127.0.0.1:7379 --data-dir ./n1\n  \
                  then: emberctl bootstrap n1"
)]
struct Args {
    /// Address to listen on for RESP clients (and node-to-node gRPC).
    #[arg(long, env = "EMBER_BIND", default_value = "127.0.0.1")]
    bind: IpAddr,
    /// RESP port.
    #[arg(long, env = "EMBER_PORT", default_value_t = 6379)]
    port: u16,
    /// Node-to-node gRPC port (default: port + 10000).
    #[arg(long, env = "EMBER_INTERNAL_PORT")]
    internal_port: Option<u16>,
    /// host:port given to clients in MOVED / CLUSTER SLOTS / CLUSTER NODES
    /// (default: bind:port, or 127.0.0.1:port when binding every interface).
    #[arg(long, env = "EMBER_ANNOUNCE", value_parser = addr)]
    announce: Option<String>,
    /// host:port other nodes use for node-to-node gRPC (default: the --announce host
    /// with --internal-port).
    #[arg(long, env = "EMBER_INTERNAL_ANNOUNCE", value_parser = addr)]
    internal_announce: Option<String>,
    /// The control plane's gRPC URL.
    #[arg(
        long,
        env = "EMBER_CONTROL_PLANE",
        default_value = "http://127.0.0.1:7379"
    )]
    control_plane: String,
    /// Directory holding the node's identity.
    #[arg(long, env = "EMBER_DATA_DIR", default_value = "./ember-node-data")]
    data_dir: PathBuf,
    /// A unique human name that emberctl accepts wherever it takes a NODE (1-64 of
    /// A-Z a-z 0-9 . _ -, not all hex digits).
    #[arg(long, env = "EMBER_NAME", value_parser = name)]
    name: Option<String>,
    /// Threads running client connections, each with its own event loop (0: half the
    /// CPUs, at least one). Like Redis's `io-threads`, but each thread also executes
    /// its clients' commands.
    #[arg(long, env = "EMBER_IO_THREADS", default_value = "0", value_parser = io_threads)]
    io_threads: usize,
    /// Most client connections at once (Redis's `maxclients`; `CONFIG SET maxclients`).
    /// Lowered at start, with a warning, when `ulimit -n` cannot fit it plus the
    /// descriptors the node keeps for itself.
    #[arg(long, env = "EMBER_MAXCLIENTS", default_value_t = ember_data_node::config::DEFAULT_MAXCLIENTS,
          value_parser = clap::value_parser!(u64).range(1..=ember_data_node::config::MAX_MAXCLIENTS))]
    maxclients: u64,
    /// Bytes of recent writes a primary keeps so that a replica that was briefly
    /// disconnected resumes without a full sync (Redis's `repl-backlog-size`; units as
    /// in Redis: `64mb`; `CONFIG SET repl-backlog-size`).
    #[arg(long, env = "EMBER_REPL_BACKLOG_SIZE", default_value = "64mb", value_parser = memory)]
    repl_backlog_size: u64,
    /// Most memory the node may use before it evicts keys or refuses writes (Redis's
    /// `maxmemory`; units as in Redis: `100mb`, `2gb`; 0: no limit; `CONFIG SET
    /// maxmemory`).
    #[arg(long, env = "EMBER_MAXMEMORY", default_value = "0", value_parser = memory_or_zero)]
    maxmemory: u64,
    /// What goes when memory is full (Redis's `maxmemory-policy`): noeviction,
    /// allkeys-lru, allkeys-lfu, allkeys-random, volatile-lru, volatile-lfu,
    /// volatile-random, volatile-ttl.
    #[arg(long, env = "EMBER_MAXMEMORY_POLICY", default_value = "noeviction", value_parser = policy)]
    maxmemory_policy: ember_data_node::evict::Policy,
    /// Save points: a snapshot is written to --data-dir when N seconds passed and M
    /// keys changed since the last one (Redis's `save`: `"3600 1 300 100"`; empty: none;
    /// `CONFIG SET save`). A snapshot in --data-dir is loaded at start either way.
    #[arg(long, env = "EMBER_SAVE", default_value = "", value_parser = save_points)]
    save: String,
    /// Log every write to an append-only file in --data-dir, loaded at start in place
    /// of the snapshot (Redis's `appendonly`; `CONFIG SET appendonly`).
    #[arg(long, env = "EMBER_APPENDONLY", default_value = "no", value_parser = yes_no, action = clap::ArgAction::Set)]
    appendonly: bool,
    /// When the append-only file is synced to disk: `always` (before the replies of
    /// the writes: no acknowledged write is lost), `everysec` (up to about a second of
    /// writes lost in a crash) or `no` (when the kernel decides).
    #[arg(long, env = "EMBER_APPENDFSYNC", default_value = "everysec", value_parser = fsync)]
    appendfsync: ember_data_node::persist::aof::Fsync,
    /// An append-only file whose last record is incomplete (a crash while writing) is
    /// loaded up to it and cut there (yes), or stops the node (no).
    #[arg(long, env = "EMBER_AOF_LOAD_TRUNCATED", default_value = "yes", value_parser = yes_no, action = clap::ArgAction::Set)]
    aof_load_truncated: bool,
    /// Check that a node answers PING on 127.0.0.1:--port, exit 0 if so (for container
    /// health checks), instead of starting one.
    #[arg(long)]
    health_check: bool,
}

fn addr(s: &str) -> Result<String, String> {
    registration::check_addr(s).map_err(|e| e.to_string())?;
    Ok(s.to_string())
}

fn name(s: &str) -> Result<String, String> {
    registration::check_name(s).map_err(|e| e.to_string())?;
    Ok(s.to_string())
}

/// A byte size with Redis's units (`64mb`), at least 1.
fn memory(s: &str) -> Result<u64, String> {
    match ember_data_node::config::parse_memory(s.as_bytes()) {
        Ok(0) => Err("must be at least 1 byte".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{s}: {e} (e.g. 64mb, 1gb)")),
    }
}

/// A byte size with Redis's units, 0 allowed.
fn memory_or_zero(s: &str) -> Result<u64, String> {
    ember_data_node::config::parse_memory(s.as_bytes())
        .map_err(|e| format!("{s}: {e} (e.g. 0, 100mb, 2gb)"))
}

fn policy(s: &str) -> Result<ember_data_node::evict::Policy, String> {
    ember_data_node::evict::Policy::parse(s.as_bytes()).ok_or_else(|| {
        format!("{s}: not a policy: noeviction, allkeys-lru, allkeys-lfu, allkeys-random, volatile-lru, volatile-lfu, volatile-random or volatile-ttl")
    })
}

fn save_points(s: &str) -> Result<String, String> {
    ember_data_node::config::parse_save(s.as_bytes())
        .map_err(|e| format!("{s:?}: {e} (pairs of seconds and changes: \"3600 1 300 100\")"))
}

fn yes_no(s: &str) -> Result<bool, String> {
    ember_data_node::config::parse_yes_no(s.as_bytes())
        .ok_or_else(|| format!("{s}: must be yes or no"))
}

fn fsync(s: &str) -> Result<ember_data_node::persist::aof::Fsync, String> {
    ember_data_node::persist::aof::Fsync::parse(s.as_bytes())
        .ok_or_else(|| format!("{s}: must be always, everysec or no"))
}

fn io_threads(s: &str) -> Result<usize, String> {
    flags::number_in(s, 0, 256)
}

fn announced_host(bind: IpAddr) -> String {
    if bind.is_unspecified() {
        tracing::warn!("binding every interface: announcing 127.0.0.1; set --announce so other hosts can reach this node");
        "127.0.0.1".into()
    } else {
        bind.to_string()
    }
}

/// mimalloc's fine size classes (16, 64, 80 ... bytes) fit small keys and values far
/// tighter than glibc malloc's 32-byte minimum chunk: about 40 bytes less per key.
/// Wrapped to count the bytes allocated (`INFO memory`'s `used_memory`).
#[global_allocator]
static GLOBAL: ember_data_node::alloc::Counting<mimalloc::MiMalloc> =
    ember_data_node::alloc::Counting::new(mimalloc::MiMalloc);

fn main() {
    ember_data_node::alloc::tune_mimalloc();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("cannot start the runtime")
        .block_on(start());
}

async fn start() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = run(Args::parse()).await {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// Sends PING to the local node and expects +PONG.
async fn health_check(port: u16) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let check = async {
        let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        conn.write_all(b"*1\r\n$4\r\nPING\r\n").await?;
        let mut buf = [0u8; 7];
        conn.read_exact(&mut buf).await?;
        anyhow::ensure!(
            &buf == b"+PONG\r\n",
            "unexpected reply {:?}",
            String::from_utf8_lossy(&buf)
        );
        Ok(())
    };
    tokio::time::timeout(std::time::Duration::from_secs(2), check)
        .await
        .context("no reply within 2s")?
}

async fn run(args: Args) -> anyhow::Result<()> {
    let _ = ember_data_node::state::ALLOCATOR.set("mimalloc");
    if args.health_check {
        return health_check(args.port)
            .await
            .with_context(|| format!("node on port {} is not healthy", args.port));
    }
    let internal_port = match args.internal_port {
        Some(p) => p,
        None => args
            .port
            .checked_add(10000)
            .context("--port + 10000 overflows; set --internal-port")?,
    };
    let client_addr = args
        .announce
        .clone()
        .unwrap_or_else(|| format!("{}:{}", announced_host(args.bind), args.port));
    // The internal address defaults to the announced host with the internal port.
    let internal_addr = args.internal_announce.clone().unwrap_or_else(|| {
        let host = client_addr
            .rsplit_once(':')
            .map_or(client_addr.as_str(), |(h, _)| h);
        format!("{host}:{internal_port}")
    });

    let identity = Identity::load_or_create(&args.data_dir)?;
    let cluster = Arc::new(Cluster::new(identity.node_id));
    let mut config = Config {
        port: args.port,
        bind: args.bind.to_string(),
        io_threads: args.io_threads,
        maxclients: args.maxclients,
        repl_backlog_size: args.repl_backlog_size,
        maxmemory: args.maxmemory,
        maxmemory_policy: args.maxmemory_policy,
        save: args.save.clone(),
        appendonly: args.appendonly,
        appendfsync: args.appendfsync,
        aof_load_truncated: args.aof_load_truncated,
        ..Config::default()
    };
    let reserve = ember_data_node::fdlimit::reserved_fds(config.resolved_io_threads());
    config.maxclients = ember_data_node::fdlimit::fit_at_start(config.maxclients, reserve)
        .with_context(|| {
            format!(
                "the open files limit ('ulimit -n') is not enough for the node to start: raise it \
                 to at least {}",
                reserve + 1
            )
        })?;
    let state = Arc::new(ServerState::new(cluster.clone(), config));
    // Function changes and a shutdown's hand-over go there (without it, tests of the
    // command engine apply changes locally).
    state.cluster.set_control_plane(args.control_plane.clone());
    state.persist.set_dir(args.data_dir.clone(), &state);
    // Before the node listens: it serves its data or nothing. The append-only file,
    // when on, is the more recent copy (as in Redis).
    let aof = match args.appendonly {
        true => ember_data_node::persist::aof::load(&state, &args.data_dir).context(
            "the node does not start with an append-only file it cannot read (a torn last record is cut with --aof-load-truncated yes; otherwise move the file away to start from the snapshot, or empty)",
        )?,
        false => None,
    };
    if let Some(read) = aof {
        tracing::info!(
            keys = state.db.dbsize(),
            records = read.chunks,
            bytes = read.valid,
            position = ?state.repl.position(),
            "append-only file loaded"
        );
        state.persist.loaded(state.db.nonempty_slots());
    } else if ember_data_node::persist::snapshot::exists(&args.data_dir) {
        let done = ember_data_node::persist::snapshot::load(&state, &args.data_dir)
            .context("the node does not start with a snapshot it cannot read whole (move the file away to start empty)")?;
        tracing::info!(
            keys = done.keys,
            bytes = done.bytes,
            ms = done.took.as_millis() as u64,
            "snapshot loaded"
        );
        state.persist.loaded(state.db.nonempty_slots());
    }

    // Where the loaded data is in its replication history (before recording goes on
    // under a new id): the control plane compares it with the replicas'.
    let loaded = state.repl.is_loaded().then(|| {
        let (id, offset) = state.repl.position();
        (id.to_string(), offset)
    });
    ember_data_node::persist::aof::reconcile(&state);

    let listener = tokio::net::TcpListener::bind(SocketAddr::new(args.bind, args.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", args.bind, args.port))?;
    let internal = tokio::net::TcpListener::bind(SocketAddr::new(args.bind, internal_port))
        .await
        .with_context(|| {
            format!(
                "cannot listen on {}:{internal_port} (internal port)",
                args.bind
            )
        })?;
    tracing::info!(
        node_id = %identity.node_id,
        %client_addr,
        %internal_addr,
        control_plane = %args.control_plane,
        "data node starting"
    );

    let migrations = Migrations::new(state.clone());
    let internal = tokio::spawn(ember_data_node::internal::serve(
        internal,
        migrations.clone(),
    ));
    let config = SessionConfig {
        control_plane: args.control_plane,
        name: args.name,
        client_addr,
        internal_addr,
        loaded,
    };
    let replication =
        ember_data_node::replication::replica::Replication::new(state.clone(), migrations.clone());
    let blocked = Arc::new(ember_data_node::blocking::BlockedListener(state.clone()));
    let pubsub = ember_data_node::pubsub::fanout::PubSubListener::new(state.clone());
    let functions = Arc::new(ember_data_node::script::functions::FunctionsListener(
        state.clone(),
    ));
    let tracking = Arc::new(ember_data_node::tracking::TrackingListener(state.clone()));
    let applier = Applier::new(
        cluster,
        vec![
            migrations.clone(),
            replication,
            blocked,
            pubsub,
            functions,
            tracking,
        ],
    );
    let session = tokio::spawn(session::run(applier, identity, config, migrations));
    // No background task may die silently: the session and the node-to-node server run
    // for the life of the process, so either one ending stops it with a message.
    let shutdown = async move {
        tokio::select! {
            _ = shutdown_signal() => {}
            r = session => {
                tracing::error!("the control-plane session task stopped ({r:?}); shutting down");
                std::process::exit(70);
            }
            r = internal => {
                tracing::error!("the node-to-node server stopped ({r:?}); shutting down");
                std::process::exit(70);
            }
        }
    };
    serve(listener, state.clone(), shutdown).await;
    ember_data_node::persist::aof::flush_at_shutdown(&state);
    // A signal (or a SHUTDOWN that did not save) saves if save points are set, as Redis.
    let p = &state.persist;
    if !p.shutdown_done.load(std::sync::atomic::Ordering::Relaxed)
        && ember_data_node::persist::has_save_points(&state)
    {
        ember_data_node::persist::save_at_shutdown(&state)
            .context("the snapshot at shutdown failed")?;
    }
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("install SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
    tracing::info!("shutting down");
}
