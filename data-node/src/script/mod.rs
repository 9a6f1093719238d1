//! Lua scripting (`EVAL`, `EVALSHA`, `SCRIPT ...`): the script cache, the thread that
//! runs scripts, and what other clients see while one runs.
//!
//! - **One script at a time**, as Redis runs them on its one thread: whoever runs one
//!   holds [`Scripts`]' run token.
//! - **Where a script runs.** A script known to be short runs on its connection's
//!   thread, in that thread's own Lua 5.1 VM ([`lua`]): no hand-over, as in Redis. Any
//!   other runs on the dedicated script thread, and the connection that sent it waits
//!   for the reply without blocking its connection thread, so the other clients of that
//!   thread go on, get `BUSY` and can send `SCRIPT KILL`. "Known short": its last run
//!   on the script thread took less than [`lua::SHORT`]. A run on a connection's thread
//!   that outlasts [`lua::INLINE_BUDGET`] before its first write is abandoned (nothing
//!   happened yet) and handed to the script thread, and the script is no longer known
//!   short; one that wrote runs to its end there, holding that thread's other clients
//!   (see ARCHITECTURE.md).
//! - **Atomic on its slot.** A script's declared keys must share one slot (`CROSSSLOT`
//!   otherwise); the script runs with that slot's table locked from start to end (a
//!   script without keys locks the slot of the first key it touches), so no other client
//!   sees it half done. Its writes are published as one frame of effects, as `EXEC`'s
//!   are, so replicas apply them whole and deterministically.
//! - **While a script runs**, commands on its slot wait for it (asynchronously); once it
//!   has run longer than `busy-reply-threshold` (5 s by default), every command but `SCRIPT KILL`,
//!   `SHUTDOWN NOSAVE` and a few connection commands answers `BUSY`, as in Redis.
//!   `SCRIPT KILL` stops a script that has not written yet.

pub mod dump;
pub mod functions;
pub mod libs;
pub mod lua;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use tokio::sync::{oneshot, watch};

use crate::resp::Reply;
use crate::state::ServerState;

/// One script execution, handed to the script thread.
pub struct Job {
    /// The script's hex SHA1 and body (the body is also in the cache).
    pub sha: String,
    /// What runs (the shebang line blanked) and what was sent (what the cache keeps).
    pub body: Bytes,
    pub original: Bytes,
    /// The command as sent (`EVAL script numkeys key ... arg ...`, `FCALL function
    /// numkeys ...`): its first `keys` keys are from index 3, its arguments after them.
    pub command: Arc<[Bytes]>,
    pub keys: usize,
    /// The slot of the declared keys, routed already.
    pub slot: Option<u16>,
    /// `EVAL_RO` / `EVALSHA_RO`: write commands are refused.
    pub read_only: bool,
    /// The caller sent `READONLY` (reads may be served by a replica).
    pub readonly_client: bool,
    /// `SCRIPT LOAD`: compile and cache only (the reply is the SHA1 or the error).
    pub load_only: bool,
    /// `FCALL`: the function that runs (`sha` and the bodies are empty).
    pub function: Option<String>,
    /// It is known short: it may run on the connection's thread.
    pub short: bool,
    /// It declared `allow-oom`: its writes are not refused when memory is full.
    pub allow_oom: bool,
}

impl Job {
    /// The declared keys (`KEYS`).
    pub fn keys(&self) -> &[Bytes] {
        self.command.get(3..3 + self.keys).unwrap_or_default()
    }

    /// The arguments after them (`ARGV`).
    pub fn args(&self) -> &[Bytes] {
        self.command.get(3 + self.keys..).unwrap_or_default()
    }
}

/// What the script thread is handed.
pub(crate) enum Work {
    /// A script or a function call, and where its reply goes.
    Run(Job, oneshot::Sender<Reply>),
    /// The function libraries as of a topology version: the functions VM is rebuilt
    /// with them if they changed.
    Libraries(u64, Arc<ember_core::functions::Libraries>),
}

/// No slot held (in [`Scripts`]' `slot`).
const NO_SLOT: u32 = u32::MAX;

/// A script of the cache: its body, and whether it is known short (see the module).
struct Cached {
    body: Bytes,
    short: AtomicBool,
}

/// Scripts: the per-node cache of bodies, the script thread, the running one.
pub struct Scripts {
    cache: RwLock<HashMap<String, Cached, foldhash::fast::RandomState>>,
    jobs: Mutex<Option<std::sync::mpsc::Sender<Work>>>,
    /// Held by whoever runs a script (the script thread or a connection's thread).
    pub(crate) token: Mutex<()>,
    /// When the running script started (µs since `epoch`, 0: none) and the slot it
    /// holds: read by every command, so atomics rather than a lock.
    started: AtomicU64,
    slot: AtomicU32,
    epoch: Instant,
    /// `SCRIPT KILL` was asked for the running script (read by the VM's hook).
    pub kill: Arc<AtomicBool>,
    /// The running script has written (it can no longer be killed, nor abandoned).
    pub wrote: Arc<AtomicBool>,
    /// Bumped when a script ends: connections waiting for one watch it.
    done: watch::Sender<u64>,
    /// Bumped by `SCRIPT FLUSH`: the script thread forgets its compiled functions.
    pub generation: std::sync::atomic::AtomicU64,
    /// The function libraries and what runs now (`FCALL`, `FUNCTION ...`).
    pub functions: functions::Functions,
}

impl Default for Scripts {
    fn default() -> Self {
        Scripts {
            cache: RwLock::default(),
            jobs: Mutex::new(None),
            token: Mutex::new(()),
            started: AtomicU64::new(0),
            slot: AtomicU32::new(NO_SLOT),
            epoch: Instant::now(),
            kill: Arc::default(),
            wrote: Arc::default(),
            done: watch::channel(0).0,
            generation: Default::default(),
            functions: Default::default(),
        }
    }
}

/// The hex SHA1 of a script body (as `SCRIPT LOAD` returns it).
pub fn sha1_hex(body: &[u8]) -> String {
    use sha1::Digest;
    let digest = sha1::Sha1::digest(body);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

impl Scripts {
    /// Starts the script thread (once; `serve` calls it).
    pub fn start(state: &Arc<ServerState>) {
        let mut jobs = state.scripts.jobs.lock();
        if jobs.is_some() {
            return;
        }
        let (tx, rx) = std::sync::mpsc::channel::<Work>();
        let weak = Arc::downgrade(state);
        std::thread::Builder::new()
            .name("ember-scripts".into())
            .spawn(move || lua::run_thread(weak, rx))
            .expect("cannot start the script thread");
        // Libraries that arrived with a topology before the thread was there.
        let (version, libs) = state.scripts.functions.requested();
        let _ = tx.send(Work::Libraries(version, libs));
        *jobs = Some(tx);
        let rt = tokio::runtime::Handle::try_current().ok();
        state.scripts.functions.started(state, rt);
    }

    /// Caches `body` (the script thread does, once it compiled).
    pub(crate) fn insert(&self, sha: &str, body: &Bytes) {
        self.cache
            .write()
            .entry(sha.to_string())
            .or_insert_with(|| Cached {
                body: body.clone(),
                short: AtomicBool::new(false),
            });
    }

    pub fn get(&self, sha: &str) -> Option<Bytes> {
        self.lookup(&sha.to_ascii_lowercase()).map(|(body, _)| body)
    }

    /// The body of script `sha` (lowercase) and whether it is known short.
    pub(crate) fn lookup(&self, sha: &str) -> Option<(Bytes, bool)> {
        let cache = self.cache.read();
        let c = cache.get(sha)?;
        Some((c.body.clone(), c.short.load(Ordering::Relaxed)))
    }

    /// Records whether script `sha` is known short.
    pub(crate) fn set_short(&self, sha: &str, short: bool) {
        if let Some(c) = self.cache.read().get(sha) {
            c.short.store(short, Ordering::Relaxed);
        }
    }

    pub fn exists(&self, sha: &[u8]) -> bool {
        std::str::from_utf8(sha).is_ok_and(|s| self.get(s).is_some())
    }

    /// `SCRIPT FLUSH`.
    pub fn flush(&self) {
        self.cache.write().clear();
        self.generation.fetch_add(1, Ordering::Relaxed);
    }

    /// Hands `job` to the script thread: where its reply will arrive.
    pub fn submit(&self, job: Job) -> oneshot::Receiver<Reply> {
        let (reply, pending) = oneshot::channel();
        match self.jobs.lock().as_ref() {
            Some(tx) => {
                if let Err(std::sync::mpsc::SendError(Work::Run(_, reply))) =
                    tx.send(Work::Run(job, reply))
                {
                    let _ = reply.send(Reply::err("ERR the script thread is gone"));
                }
            }
            None => {
                let _ = reply.send(Reply::err("ERR scripting is not available"));
            }
        }
        pending
    }

    /// Hands the script thread the libraries of topology `version` (see [`functions`]).
    pub(crate) fn send_libraries(&self, version: u64, libs: Arc<ember_core::functions::Libraries>) {
        if let Some(tx) = self.jobs.lock().as_ref() {
            let _ = tx.send(Work::Libraries(version, libs));
        }
    }

    fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64 + 1
    }

    pub(crate) fn begin(&self, slot: Option<u16>, function: Option<Arc<[Bytes]>>) {
        *self.functions.running.lock() = function;
        self.kill.store(false, Ordering::Relaxed);
        self.wrote.store(false, Ordering::Relaxed);
        self.slot
            .store(slot.map_or(NO_SLOT, u32::from), Ordering::Release);
        self.started.store(self.now_us(), Ordering::Release);
    }

    pub(crate) fn set_slot(&self, slot: u16) {
        self.slot.store(u32::from(slot), Ordering::Release);
    }

    pub(crate) fn end(&self) {
        *self.functions.running.lock() = None;
        self.started.store(0, Ordering::Release);
        self.slot.store(NO_SLOT, Ordering::Release);
        // Pairs with the fence of `wait_done`: either it sees the script ended, or this
        // sees its receiver (waking nobody is the common case, and it costs nothing).
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.done.receiver_count() > 0 {
            self.done.send_modify(|n| *n += 1);
        }
    }

    /// Whether a script has run longer than `after` (`busy-reply-threshold`: the node
    /// answers `BUSY`).
    pub fn busy(&self, after: Duration) -> bool {
        match self.started.load(Ordering::Acquire) {
            0 => false,
            t => self.now_us().saturating_sub(t) >= after.as_micros() as u64,
        }
    }

    /// Whether a script holds `slot` now (a command on it must wait).
    pub fn holds(&self, slot: u16) -> bool {
        self.slot.load(Ordering::Acquire) == u32::from(slot)
    }

    /// Whether a script is running.
    pub fn running(&self) -> bool {
        self.started.load(Ordering::Acquire) != 0
    }

    /// How long the running script has run, in milliseconds.
    pub fn running_ms(&self) -> u64 {
        match self.started.load(Ordering::Acquire) {
            0 => 0,
            t => self.now_us().saturating_sub(t) / 1000,
        }
    }

    /// `SCRIPT KILL` (`function` false) or `FUNCTION KILL` (true): Redis's rules (each
    /// stops only its own kind, and only before the first write).
    pub fn kill(&self, function: bool) -> Reply {
        if !self.running() {
            return Reply::err("NOTBUSY No scripts in execution right now.");
        }
        if self.wrote.load(Ordering::Relaxed) {
            return Reply::err(
                "UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.",
            );
        }
        if self.functions.running.lock().is_some() != function {
            return self.busy_reply();
        }
        self.kill.store(true, Ordering::Relaxed);
        Reply::ok()
    }

    /// `BUSY` as Redis words it for what runs (a script, or a function).
    pub fn busy_reply(&self) -> Reply {
        match self.functions.running.lock().is_some() {
            false => Reply::err(
                "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.",
            ),
            true => Reply::err(
                "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.",
            ),
        }
    }

    /// Waits until the running script (if any) ends.
    pub async fn wait_done(&self) {
        let mut rx = self.done.subscribe();
        std::sync::atomic::fence(Ordering::SeqCst);
        if !self.running() {
            return;
        }
        let _ = rx.changed().await;
    }
}
