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
use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::state::ServerState;
use accept::Admitted;
pub use accept::MAX_CLIENTS_REACHED;

/// Serves RESP clients on `listener` until `shutdown` completes (or a client sends
/// `SHUTDOWN`), then stops accepting,
/// tells every connection to close and returns. Also runs the active expiry task.
///
/// Connections run on [`ConnectionThreads`]; this task only accepts.
pub async fn serve(listener: TcpListener, state: Arc<ServerState>, shutdown: impl Future) {
    let (stop_tx, stop_rx) = watch::channel(false);
    crate::script::Scripts::start(&state);
    state
        .db
        .set_expiry_listener(Arc::new(crate::notify::ExpiredEvents {
            notify: state.config.notify.clone(),
            tracker: state.tracker.clone(),
            node: Arc::downgrade(&state),
        }));
    tokio::spawn(active_expiry(state.clone(), stop_rx.clone()));
    tokio::spawn(access_clock(stop_rx.clone()));
    tokio::spawn(crate::persist::scheduler(state.clone(), stop_rx.clone()));
    let mut threads = ConnectionThreads::start(state.config.io_threads, &state, &stop_rx);
    let mut backoff = accept::Backoff::default();
    let mut refusals = accept::RateLimitedLog::default();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => {
                crate::replication::step_down::hand_over(&state).await;
                break;
            }
            _ = state.shutdown.notified() => {
                if !state.shutdown_now.load(std::sync::atomic::Ordering::Relaxed) {
                    crate::replication::step_down::hand_over(&state).await;
                }
                break;
            }
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
    crate::replication::log::defer_wakes_on_this_thread();
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
    let log = state.repl.clone();
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
            _ = spin(SPIN.with(Rc::clone), log) => {}
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

/// The spinner also wakes the replication streams, once per round of the event loop
/// (after every connection that was ready has run its turn), not once per turn: at
/// `-P 1` with many clients that is many turns, and each wake-up is a cross-thread
/// switch on the stream's side.
async fn spin(spin: Rc<Spin>, log: Arc<crate::replication::log::Log>) {
    loop {
        log.wake();
        spin.parked.set(true);
        spin.wake.notified().await;
        let mut seen = spin.batches.get();
        let mut quiet_since = Instant::now();
        while quiet_since.elapsed() < SPIN_FOR {
            // Deferred to after the event loop's next (non-blocking) poll.
            tokio::task::yield_now().await;
            log.wake();
            if spin.batches.get() != seen {
                seen = spin.batches.get();
                quiet_since = Instant::now();
            }
        }
    }
}

/// Advances the keys' access clock ([`crate::db::access`]) every 10 ms.
async fn access_clock(mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => crate::db::access::tick(),
            _ = stop.changed() => return,
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
        // Eviction goes on between commands too (as Redis's eviction time event).
        crate::evict::make_room(&state);
        crate::evict::evict_clients(&state);
        if state.pause.writes_paused() {
            // CLIENT PAUSE: the dataset holds still (as Redis, keys do not expire).
            continue;
        }
        for _ in 0..16 {
            next = state.db.active_expire_cycle(next, 64);
            tokio::task::yield_now().await;
        }
    }
}
