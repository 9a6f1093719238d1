//! The RESP server: the accept loop, the connection threads (each connection a task on
//! one of them), the active expiry task, and the [`ServerState`] every connection
//! shares.
//!
//! - [`accept`]: admission against `maxclients`, the accept loop's backoff.
//! - [`connection`]: one connection: turns of command execution, backpressure,
//!   `client-output-buffer-limit`.
//! - [`buffers`]: the per-thread pools of read and write buffers (idle connections hold
//!   none).
//!
//! Slot mutexes are only held inside command execution, which never awaits, so a slow
//! or stuck client only ever blocks its own task. A protocol error is answered and the
//! connection is closed (as Redis does); a client whose unparsed input exceeds
//! `client-query-buffer-limit` is disconnected.

mod accept;
pub mod buffers;
pub mod connection;

use std::cell::Cell;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{
    AtomicBool, AtomicI32, AtomicI64, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::alloc;
use crate::cluster::Cluster;
use crate::config::{Config, RuntimeConfig};
use crate::db::Db;
use accept::Admitted;
pub use accept::MAX_CLIENTS_REACHED;

/// Counters for `INFO stats`.
#[derive(Debug, Default)]
pub struct Stats {
    pub connections: AtomicU64,
    /// Added once per turn of pipelined commands, not per command.
    pub commands: AtomicU64,
    /// Clients refused over `maxclients` (`rejected_connections`).
    pub rejected_connections: AtomicU64,
    /// Clients closed over `client-output-buffer-limit`.
    pub output_limit_disconnections: AtomicU64,
    /// Clients closed over `client-query-buffer-limit`.
    pub query_limit_disconnections: AtomicU64,
}

/// The listable part of a connection (`CLIENT LIST`, `CLIENT INFO`).
#[derive(Debug)]
pub struct ClientInfo {
    pub id: u64,
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
}

impl ClientInfo {
    pub fn new(id: u64, addr: String, laddr: String) -> ClientInfo {
        ClientInfo {
            id,
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
        }
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
        if multi >= 0 {
            flags.push('x');
        }
        if self.readonly.load(Ordering::Relaxed) {
            flags.push('r');
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
            "id={} addr={} laddr={} fd={} name={} age={} idle={idle} flags={flags} db=0 sub=0 psub=0 ssub=0 multi={multi} qbuf={qbuf} qbuf-free={} argv-mem=0 multi-mem=0 rbs={cap} rbp={cap} obl=0 oll=0 omem={omem} tot-mem={cap} events=r cmd={cmd} user=default redir=-1 resp={} lib-name={} lib-ver={}",
            self.id,
            self.addr,
            self.laddr,
            self.fd.load(Ordering::Relaxed),
            s(&self.name),
            self.created.elapsed().as_secs(),
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
    admitted: AtomicUsize,
}

impl ClientRegistry {
    pub fn register(&self, addr: String, laddr: String) -> Arc<ClientInfo> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let info = Arc::new(ClientInfo::new(id, addr, laddr));
        self.clients.lock().insert(id, info.clone());
        info
    }

    fn unregister(&self, id: u64) {
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
}

impl ServerState {
    pub fn new(cluster: Arc<Cluster>, config: Config) -> ServerState {
        ServerState {
            db: Db::new(),
            cluster,
            config: RuntimeConfig::new(&config),
            stats: Stats::default(),
            clients: ClientRegistry::default(),
            started: Instant::now(),
            started_unix: crate::db::now_ms() / 1000,
        }
    }

    /// `used_memory`: bytes allocated through [`alloc::Counting`] if `main` installed
    /// it as the global allocator (the data node does), else the resident set size.
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

/// Serves RESP clients on `listener` until `shutdown` completes, then stops accepting,
/// tells every connection to close and returns. Also runs the active expiry task.
///
/// Connections run on [`ConnectionThreads`]; this task only accepts.
pub async fn serve(listener: TcpListener, state: Arc<ServerState>, shutdown: impl Future) {
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(active_expiry(state.clone(), stop_rx.clone()));
    let mut threads = ConnectionThreads::start(state.config.io_threads, &state, &stop_rx);
    let mut backoff = accept::Backoff::default();
    let mut refusals = accept::RateLimitedLog::default();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    backoff.succeeded();
                    match accept::admit(&state) {
                        Some(admitted) => threads.hand_over(stream, peer, admitted, &state, &stop_rx),
                        None => accept::refuse(stream, &state, &mut refusals),
                    }
                }
                Err(e) => {
                    let wait = backoff.failed(&e, &state);
                    tokio::select! {
                        _ = &mut shutdown => break,
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
            },
        }
    }
    let _ = stop_tx.send(true);
}

type Handover = (std::net::TcpStream, SocketAddr, Admitted);

/// The threads that run client connections (`io-threads`, default half the CPUs).
///
/// Each thread runs its own single-threaded tokio runtime: it waits on its own epoll
/// instance and runs its connections start to finish, with no work stealing and no
/// wake-ups across threads. (On a multi-threaded runtime every readiness event goes
/// through one shared driver and idle workers are woken with futexes.) The accept
/// loop hands each new connection to the next thread, round robin; a connection stays
/// on its thread. Commands still share the keyspace through the per-slot locks.
struct ConnectionThreads {
    senders: Vec<tokio::sync::mpsc::UnboundedSender<Handover>>,
    next: usize,
}

impl ConnectionThreads {
    fn start(n: usize, state: &Arc<ServerState>, stop: &watch::Receiver<bool>) -> Self {
        let mut senders = Vec::with_capacity(n);
        for i in 0..n {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let (state, stop) = (state.clone(), stop.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("ember-io-{i}"))
                .spawn(move || connection_thread(rx, state, stop));
            match spawned {
                Ok(_) => senders.push(tx),
                Err(e) => tracing::error!(error = %e, "cannot start connection thread {i}"),
            }
        }
        if senders.is_empty() {
            tracing::warn!("no connection threads: connections run on the main runtime");
        }
        ConnectionThreads { senders, next: 0 }
    }

    fn hand_over(
        &mut self,
        stream: TcpStream,
        peer: SocketAddr,
        admitted: Admitted,
        state: &Arc<ServerState>,
        stop: &watch::Receiver<bool>,
    ) {
        if self.senders.is_empty() {
            tokio::spawn(connection::run(
                stream,
                peer,
                state.clone(),
                stop.clone(),
                admitted,
            ));
            return;
        }
        self.next = (self.next + 1) % self.senders.len();
        // Deregistered from this runtime's reactor; the thread registers it with its own.
        let handed = stream
            .into_std()
            .map_err(|e| e.to_string())
            .and_then(|std| {
                self.senders[self.next]
                    .send((std, peer, admitted))
                    .map_err(|_| "its connection thread is gone".to_string())
            });
        if let Err(e) = handed {
            tracing::error!(%peer, "dropping connection: {e}");
        }
    }
}

/// One connection thread: runs the connections handed to it until the accept loop ends
/// and they have all closed.
fn connection_thread(
    mut handed: tokio::sync::mpsc::UnboundedReceiver<Handover>,
    state: Arc<ServerState>,
    stop: watch::Receiver<bool>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start a connection thread's runtime");
            return;
        }
    };
    let connections = async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                next = handed.recv() => match next {
                    Some((std, peer, admitted)) => match TcpStream::from_std(std) {
                        Ok(stream) => {
                            conns.spawn(connection::run(
                                stream,
                                peer,
                                state.clone(),
                                stop.clone(),
                                admitted,
                            ));
                        }
                        Err(e) => tracing::warn!(%peer, error = %e, "cannot register connection"),
                    },
                    None => break,
                },
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
        while conns.join_next().await.is_some() {}
    };
    rt.block_on(async move {
        tokio::select! {
            _ = connections => {}
            _ = spin(SPIN.with(Rc::clone)) => {}
        }
    });
}

/// How long a connection thread keeps polling for events after its last batch.
const SPIN_FOR: Duration = Duration::from_micros(50);

/// Brief busy-polling of a connection thread's event loop.
///
/// After a batch of commands, the thread keeps checking for new events (zero-timeout
/// `epoll_wait`s) for [`SPIN_FOR`] instead of going to sleep at once. A client's next
/// request then finds the thread awake: the client's `write` does not have to wake a
/// sleeping thread (a cross-CPU wake-up, paid in the client's own system time), which
/// at `-P 1` is what limits a load generator that shares the machine. An idle thread does
/// not spin: spinning starts with a batch and ends [`SPIN_FOR`] after the last one.
#[derive(Default)]
struct Spin {
    /// Batches executed on this thread.
    batches: Cell<u64>,
    /// The spinner is waiting for a batch.
    parked: Cell<bool>,
    wake: tokio::sync::Notify,
}

impl Spin {
    /// Called by a connection after it executed a batch.
    fn batch_done(&self) {
        self.batches.set(self.batches.get() + 1);
        if self.parked.replace(false) {
            self.wake.notify_one();
        }
    }
}

thread_local! {
    /// This thread's [`Spin`] (only connection threads run a spinner).
    static SPIN: Rc<Spin> = Rc::new(Spin::default());
}

async fn spin(spin: Rc<Spin>) {
    loop {
        spin.parked.set(true);
        spin.wake.notified().await;
        let mut seen = spin.batches.get();
        let mut quiet_since = Instant::now();
        while quiet_since.elapsed() < SPIN_FOR {
            // Deferred to after the event loop's next (non-blocking) poll.
            tokio::task::yield_now().await;
            if spin.batches.get() != seen {
                seen = spin.batches.get();
                quiet_since = Instant::now();
            }
        }
    }
}

/// Sweeps 1024 slots every 100 ms (the whole keyspace every ~1.6 s), removing expired
/// keys, like Redis's active expire cycle (which samples instead of sweeping).
async fn active_expiry(state: Arc<ServerState>, mut stop: watch::Receiver<bool>) {
    let mut next = 0u16;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        for _ in 0..16 {
            next = state.db.active_expire_cycle(next, 64);
            tokio::task::yield_now().await;
        }
    }
}
