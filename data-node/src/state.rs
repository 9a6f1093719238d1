//! What every part of the data node shares: the keyspace, the cluster view, the
//! settings, the connected clients and the counters ([`ServerState`]), and the memory
//! figures `INFO memory` reports.

use std::collections::HashMap;
use std::sync::atomic::{
    AtomicBool, AtomicI32, AtomicI64, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use parking_lot::Mutex;

use crate::alloc;
use crate::cluster::Cluster;
use crate::config::{Config, RuntimeConfig};
use crate::db::Db;

/// Counters for `INFO stats`.
#[derive(Debug, Default)]
pub struct Stats {
    pub connections: AtomicU64,
    /// Added once per turn of pipelined commands, not per command.
    pub commands: AtomicU64,
    /// Clients refused over `maxclients` (`rejected_connections`).
    pub rejected_connections: AtomicU64,
    /// Full syncs served to replicas, partial resyncs accepted, and partial resyncs
    /// asked for and refused (the replica then synced in full).
    pub sync_full: AtomicU64,
    pub sync_partial_ok: AtomicU64,
    pub sync_partial_err: AtomicU64,
    /// Clients closed over `client-output-buffer-limit`.
    pub output_limit_disconnections: AtomicU64,
    /// Clients closed over `client-query-buffer-limit`.
    pub query_limit_disconnections: AtomicU64,
}

/// The listable part of a connection (`CLIENT LIST`, `CLIENT INFO`).
#[derive(Debug)]
pub struct ClientInfo {
    pub id: u64,
    /// Where pushes for this client go, once it has a mailbox (it subscribed, or tracks
    /// keys): invalidations for clients that redirect to it are sent there.
    pub mailbox: Mutex<Option<crate::pubsub::Mailbox>>,
    pub addr: String,
    pub laddr: String,
    pub created: Instant,
    pub name: Mutex<Option<Bytes>>,
    pub lib_name: Mutex<Option<Bytes>>,
    pub lib_ver: Mutex<Option<Bytes>>,
    /// Negotiated protocol version (2 or 3).
    pub resp: AtomicU8,
    /// Reply bytes queued and not yet written to the socket.
    pub omem: AtomicUsize,
    /// The socket's file descriptor (-1 until known).
    pub fd: AtomicI32,
    /// The last command: `TABLE` index << 8 | subcommand position + 1 (`u32::MAX`:
    /// none yet), for `cmd=` (see [`crate::cmd::command_name`]).
    pub last_cmd: AtomicU32,
    /// When the last command arrived, ms since the epoch.
    pub last_interaction: AtomicU64,
    /// Unparsed input buffered, and the read buffer's capacity.
    pub qbuf: AtomicUsize,
    pub qbuf_cap: AtomicUsize,
    /// Commands queued by `MULTI` (-1 outside a transaction).
    pub multi: AtomicI64,
    /// `READONLY` was sent.
    pub readonly: AtomicBool,
    /// Waiting in a blocking command (`BLPOP` ...).
    pub blocked: AtomicBool,
    /// Subscriptions: channels, patterns, shard channels (`sub=`, `psub=`, `ssub=`).
    pub subscriptions: [AtomicUsize; 3],
    /// `CLIENT NO-EVICT on` (flag `e`).
    pub no_evict: AtomicBool,
    /// `CLIENT KILL` chose this client: its connection closes.
    pub killed: AtomicBool,
    pub kill: tokio::sync::Notify,
}

impl ClientInfo {
    pub fn new(id: u64, addr: String, laddr: String) -> ClientInfo {
        ClientInfo {
            id,
            mailbox: Mutex::new(None),
            addr,
            laddr,
            created: Instant::now(),
            name: Mutex::new(None),
            lib_name: Mutex::new(None),
            lib_ver: Mutex::new(None),
            resp: AtomicU8::new(2),
            omem: AtomicUsize::new(0),
            fd: AtomicI32::new(-1),
            last_cmd: AtomicU32::new(u32::MAX),
            last_interaction: AtomicU64::new(crate::db::now_ms()),
            qbuf: AtomicUsize::new(0),
            qbuf_cap: AtomicUsize::new(0),
            multi: AtomicI64::new(-1),
            readonly: AtomicBool::new(false),
            blocked: AtomicBool::new(false),
            subscriptions: Default::default(),
            no_evict: AtomicBool::new(false),
            killed: AtomicBool::new(false),
            kill: tokio::sync::Notify::new(),
        }
    }

    /// Closes this client's connection (`CLIENT KILL`).
    pub fn kill(&self) {
        self.killed.store(true, Ordering::Relaxed);
        self.kill.notify_one();
    }

    /// Records the command being run (`TABLE[idx]`, its subcommand position) at `now`.
    pub fn record_command(&self, idx: usize, sub: Option<usize>, now: u64) {
        let sub = sub.map_or(0, |n| (n + 1).min(0xff)) as u32;
        self.last_cmd
            .store((idx as u32) << 8 | sub, Ordering::Relaxed);
        self.last_interaction.store(now, Ordering::Relaxed);
    }

    /// Records the connection's read buffer: bytes not parsed yet, and its capacity.
    pub fn set_query_buffer(&self, len: usize, capacity: usize) {
        self.qbuf.store(len, Ordering::Relaxed);
        self.qbuf_cap.store(capacity, Ordering::Relaxed);
    }

    /// One `CLIENT LIST` line (without the trailing newline), in Redis 7's format
    /// (then `lib-name` / `lib-ver`, as Redis 7.2 adds). `omem` is the reply bytes not
    /// yet written; there is no reply list, so `obl`/`oll` are 0.
    pub fn describe(&self) -> String {
        let s = |m: &Mutex<Option<Bytes>>| {
            m.lock()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default()
        };
        let cmd = match self.last_cmd.load(Ordering::Relaxed) {
            u32::MAX => "NULL",
            v => crate::cmd::command_name(
                (v >> 8) as usize,
                (v & 0xff).checked_sub(1).map(|n| n as usize),
            ),
        };
        let multi = self.multi.load(Ordering::Relaxed);
        let mut flags = String::new();
        let subs = self
            .subscriptions
            .each_ref()
            .map(|n| n.load(Ordering::Relaxed));
        if subs.iter().any(|&n| n > 0) {
            flags.push('P');
        }
        if multi >= 0 {
            flags.push('x');
        }
        if self.blocked.load(Ordering::Relaxed) {
            flags.push('b');
        }
        if self.readonly.load(Ordering::Relaxed) {
            flags.push('r');
        }
        if self.no_evict.load(Ordering::Relaxed) {
            flags.push('e');
        }
        if flags.is_empty() {
            flags.push('N');
        }
        let idle = crate::db::now_ms()
            .saturating_sub(self.last_interaction.load(Ordering::Relaxed))
            / 1000;
        let (qbuf, cap) = (
            self.qbuf.load(Ordering::Relaxed),
            self.qbuf_cap.load(Ordering::Relaxed),
        );
        let omem = self.omem.load(Ordering::Relaxed);
        format!(
            "id={} addr={} laddr={} fd={} name={} age={} idle={idle} flags={flags} db=0 sub={} psub={} ssub={} multi={multi} qbuf={qbuf} qbuf-free={} argv-mem=0 multi-mem=0 rbs={cap} rbp={cap} obl=0 oll=0 omem={omem} tot-mem={cap} events=r cmd={cmd} user=default redir=-1 resp={} lib-name={} lib-ver={}",
            self.id,
            self.addr,
            self.laddr,
            self.fd.load(Ordering::Relaxed),
            s(&self.name),
            self.created.elapsed().as_secs(),
            subs[0],
            subs[1],
            subs[2],
            cap.saturating_sub(qbuf),
            self.resp.load(Ordering::Relaxed),
            s(&self.lib_name),
            s(&self.lib_ver),
        )
    }
}

/// The connected clients.
#[derive(Debug, Default)]
pub struct ClientRegistry {
    clients: Mutex<HashMap<u64, Arc<ClientInfo>>>,
    next_id: AtomicU64,
    /// Clients admitted by the accept loop and not yet gone (counted under
    /// `maxclients`; registered a moment later, on their thread).
    pub(crate) admitted: AtomicUsize,
}

impl ClientRegistry {
    pub fn register(&self, addr: String, laddr: String) -> Arc<ClientInfo> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let info = Arc::new(ClientInfo::new(id, addr, laddr));
        self.clients.lock().insert(id, info.clone());
        info
    }

    pub fn get(&self, id: u64) -> Option<Arc<ClientInfo>> {
        self.clients.lock().get(&id).cloned()
    }

    pub(crate) fn unregister(&self, id: u64) {
        self.clients.lock().remove(&id);
    }

    /// All connected clients, by id.
    pub fn list(&self) -> Vec<Arc<ClientInfo>> {
        let mut v: Vec<_> = self.clients.lock().values().cloned().collect();
        v.sort_by_key(|c| c.id);
        v
    }

    pub fn len(&self) -> usize {
        self.clients.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The largest output buffer (unsent reply bytes) of any client now.
    pub fn max_output_buffer(&self) -> usize {
        self.clients
            .lock()
            .values()
            .map(|c| c.omem.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0)
    }
}

/// Everything the connections share.
pub struct ServerState {
    pub db: Db,
    pub cluster: Arc<Cluster>,
    pub config: RuntimeConfig,
    pub stats: Stats,
    pub clients: ClientRegistry,
    pub started: Instant,
    /// Start time, seconds since the epoch.
    pub started_unix: u64,
    /// The replication log (subscribed to the keyspace once a replica streams).
    pub repl: Arc<crate::replication::log::Log>,
    /// The replicas streaming from this node (a primary).
    pub followers: crate::replication::primary::Followers,
    /// The link to this node's primary (a replica).
    pub link: crate::replication::replica::Link,
    /// This node's write lease (as a primary) and its grants to its primary (as a replica).
    pub lease: crate::replication::lease::Lease,
    /// A manual failover's write pause (a primary).
    pub handover: crate::replication::handover::Handover,
    /// Clients blocked on keys (`BLPOP` ...).
    pub blocked: crate::blocking::Blocked,
    /// Pub/sub subscriptions and the links to the other nodes.
    pub pubsub: crate::pubsub::PubSub,
    /// Lua scripts: the cache, the script thread, the running script.
    pub scripts: crate::script::Scripts,
    /// `SHUTDOWN`: the node stops serving (see [`crate::server::serve`]).
    pub shutdown: tokio::sync::Notify,
    /// `SHUTDOWN NOW`: stop without handing the shard over first.
    pub shutdown_now: std::sync::atomic::AtomicBool,
    /// The node is shutting down (see [`ServerState::leave`]); woken then.
    leaving_flag: std::sync::atomic::AtomicBool,
    pub leaving: tokio::sync::Notify,
    /// Client-side caching: who read which keys.
    pub tracker: Arc<crate::tracking::Tracker>,
    /// `CLIENT PAUSE`.
    pub pause: crate::pause::Pause,
    /// `maxmemory`'s eviction pool and counts.
    pub evictor: crate::evict::Evictor,
    /// Snapshots on disk.
    pub persist: crate::persist::Persistence,
}

impl ServerState {
    pub fn new(cluster: Arc<Cluster>, config: Config) -> ServerState {
        let runtime = RuntimeConfig::new(&config);
        ServerState {
            db: Db::new(),
            cluster,
            repl: Arc::new(crate::replication::log::Log::new(
                runtime.repl_backlog_size_cell(),
            )),
            followers: Default::default(),
            link: Default::default(),
            lease: Default::default(),
            handover: Default::default(),
            blocked: Default::default(),
            pubsub: Default::default(),
            scripts: Default::default(),
            tracker: Default::default(),
            shutdown: tokio::sync::Notify::new(),
            shutdown_now: Default::default(),
            leaving_flag: Default::default(),
            leaving: tokio::sync::Notify::new(),
            pause: Default::default(),
            evictor: Default::default(),
            persist: Default::default(),
            config: runtime,
            stats: Stats::default(),
            clients: ClientRegistry::default(),
            started: Instant::now(),
            started_unix: crate::db::now_ms() / 1000,
        }
    }

    /// `used_memory`: bytes allocated through [`alloc::Counting`] if `main` installed
    /// it as the global allocator (the data node does), else the resident set size.
    /// The node starts shutting down: a replica stops streaming from its primary.
    pub fn leave(&self) {
        self.leaving_flag
            .store(true, std::sync::atomic::Ordering::Release);
        self.leaving.notify_waiters();
    }

    pub fn is_leaving(&self) -> bool {
        self.leaving_flag.load(std::sync::atomic::Ordering::Acquire)
    }

    pub fn used_memory(&self) -> usize {
        match alloc::allocated() {
            0 => rss_bytes(),
            n => n,
        }
    }
}

/// Resident set size of this process (0 where `/proc` is unavailable).
pub fn rss_bytes() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<usize>().ok())
        .map(|pages| pages * 4096)
        .unwrap_or(0)
}

/// The global allocator's name, set by the binary that installs one.
pub static ALLOCATOR: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();

/// What `INFO memory` reports as `mem_allocator`.
pub fn allocator_name() -> &'static str {
    ALLOCATOR.get().copied().unwrap_or("libc")
}
