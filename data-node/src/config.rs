//! Limits and the settings exposed by `CONFIG GET` / `CONFIG SET`.
//!
//! # Limits
//!
//! All are Redis's defaults and are enforced *before* anything is allocated for the
//! offending input:
//!
//! | limit | default | on violation |
//! | --- | --- | --- |
//! | `proto-max-bulk-len` (`CONFIG SET`: 1 MB to 2^63-1) | 512 MB | `-ERR Protocol error: invalid bulk length`, connection closed |
//! | multibulk length | 2^31-1 elements (as Redis; argv is grown lazily, never preallocated beyond 1024) | `-ERR Protocol error: invalid multibulk length`, connection closed |
//! | inline command line | 64 KB | `-ERR Protocol error: too big inline request`, connection closed |
//! | bulk/multibulk count line | 64 KB | `-ERR Protocol error: too big bulk count string` / `too big mbulk count string`, closed |
//! | `client-query-buffer-limit` (`CONFIG SET`: 1 MB to 2^63-1) | 1 GB | connection closed (no reply, as Redis) |
//! | string values (`SETRANGE`, `APPEND`) | `proto-max-bulk-len` | `-ERR string exceeds maximum allowed size (proto-max-bulk-len)` |
//! | `maxclients` | 10000 (lowered at start to fit `ulimit -n`) | `-ERR max number of clients reached`, connection closed |
//! | `client-output-buffer-limit` | `normal 0 0 0` (no limit) | connection closed, counted in `INFO stats` |

pub mod output_limits;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

pub use output_limits::{ClassLimit, ClientClass, OutputLimits};

/// Bytes of one inline command line, or of a `*`/`$` count line (Redis's
/// `PROTO_INLINE_MAX_SIZE`). Not configurable, as in Redis.
pub const PROTO_INLINE_MAX_SIZE: usize = 64 * 1024;
/// Largest multibulk element count accepted (Redis: `INT_MAX`).
pub const PROTO_MAX_MULTIBULK_LEN: usize = i32::MAX as usize;
/// Default `proto-max-bulk-len`: 512 MB.
pub const DEFAULT_PROTO_MAX_BULK_LEN: usize = 512 * 1024 * 1024;
/// Default `client-query-buffer-limit`: 1 GB.
pub const DEFAULT_CLIENT_QUERY_BUFFER_LIMIT: usize = 1024 * 1024 * 1024;

/// Default `repl-backlog-size`: 64 MB (see ARCHITECTURE, "Replication and failover").
pub const DEFAULT_REPL_BACKLOG_SIZE: u64 = 64 * 1024 * 1024;

/// Default `maxclients` (Redis's).
pub const DEFAULT_MAXCLIENTS: u64 = 10_000;
/// Largest `maxclients` accepted (Redis: `UINT_MAX`).
pub const MAX_MAXCLIENTS: u64 = u32::MAX as u64;

/// Start-up configuration of the RESP engine (built by `main`).
#[derive(Debug, Clone)]
pub struct Config {
    /// Largest bulk string accepted in a request, and largest string value.
    pub proto_max_bulk_len: usize,
    /// Largest amount of unparsed input buffered for one client before it is dropped.
    pub client_query_buffer_limit: usize,
    /// The RESP port, reported by `INFO server` and `CONFIG GET port`.
    pub port: u16,
    /// The bind address, reported by `CONFIG GET bind`.
    pub bind: String,
    /// Threads running client connections (`CONFIG GET io-threads`); 0 means half the
    /// CPUs the process may run on, at least one.
    pub io_threads: usize,
    /// Most client connections at once (`maxclients`); `main` lowers it to what the
    /// open files limit allows.
    pub maxclients: u64,
    /// Bytes of recent writes a primary keeps for replicas to resume from.
    pub repl_backlog_size: u64,
    /// `save` points (`"3600 1 300 100"`; empty: none).
    pub save: String,
    /// `maxmemory` (0: no limit) and `maxmemory-policy`.
    pub maxmemory: u64,
    pub maxmemory_policy: crate::evict::Policy,
    /// `appendonly`, `appendfsync` and `aof-load-truncated`.
    pub appendonly: bool,
    pub appendfsync: crate::persist::aof::Fsync,
    pub aof_load_truncated: bool,
}

impl Config {
    /// `io_threads` with 0 resolved to half the CPUs (at least one): the kernel's
    /// network stack, and often the clients, need the other half (see ARCHITECTURE.md).
    pub fn resolved_io_threads(&self) -> usize {
        match self.io_threads {
            0 => std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1)),
            n => n,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            proto_max_bulk_len: DEFAULT_PROTO_MAX_BULK_LEN,
            client_query_buffer_limit: DEFAULT_CLIENT_QUERY_BUFFER_LIMIT,
            port: 6379,
            bind: "127.0.0.1".into(),
            io_threads: 0,
            maxclients: DEFAULT_MAXCLIENTS,
            repl_backlog_size: DEFAULT_REPL_BACKLOG_SIZE,
            save: String::new(),
            maxmemory: 0,
            maxmemory_policy: crate::evict::Policy::NoEviction,
            appendonly: false,
            appendfsync: crate::persist::aof::Fsync::EverySec,
            aof_load_truncated: true,
        }
    }
}

/// The settings as they are at run time (`CONFIG SET` changes them).
#[derive(Debug)]
pub struct RuntimeConfig {
    proto_max_bulk_len: AtomicUsize,
    client_query_buffer_limit: AtomicUsize,
    /// `save`, as `CONFIG GET` shows it.
    save: parking_lot::Mutex<String>,
    /// `stop-writes-on-bgsave-error`: a failed save refuses writes (`MISCONF`).
    stop_writes_on_bgsave_error: std::sync::atomic::AtomicBool,
    /// Fixed at start-up.
    pub port: u16,
    /// Fixed at start-up.
    pub bind: String,
    /// Fixed at start-up (resolved: never 0).
    pub io_threads: usize,
    maxclients: AtomicU64,
    /// Descriptors kept out of clients' reach ([`crate::fdlimit::reserved_fds`]).
    pub fd_reserve: u64,
    /// `client-output-buffer-limit`.
    pub output_limits: OutputLimits,
    repl_backlog_size: std::sync::Arc<AtomicU64>,
    /// `replica-serve-stale-data` (also given to routing, see `cmd::server::config`).
    serve_stale: std::sync::atomic::AtomicBool,
    /// `min-replicas-to-write` (0: off) and `min-replicas-max-lag` (seconds).
    min_replicas_to_write: AtomicU64,
    min_replicas_max_lag: AtomicU64,
    /// `busy-reply-threshold` (ms).
    busy_reply_threshold: AtomicU64,
    /// `notify-keyspace-events`.
    pub notify: std::sync::Arc<crate::notify::Notify>,
    /// `maxmemory` and the eviction settings.
    pub memory: crate::evict::Settings,
    /// The append-only file's settings (`appendonly` takes effect through
    /// [`crate::persist::aof::reconcile`]).
    pub aof: crate::persist::aof::Settings,
}

/// How a setting can change at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A byte size (Redis's memory units), within `min..=max`.
    Memory { min: u64, max: u64 },
    /// An integer within `min..=max`.
    Integer { min: u64, max: u64 },
    /// Redis's `save` syntax: pairs of `seconds changes`, or "" for none.
    Save,
    /// `maxclients`: 1 to `UINT_MAX`, and the open files limit must fit it.
    Maxclients,
    /// `client-output-buffer-limit`: `class hard soft seconds ...`.
    OutputLimits,
    /// `notify-keyspace-events`: Redis's class letters.
    Notify,
    /// `maxmemory-policy`: one of Redis's eight.
    Policy,
    /// `maxmemory-clients`: a byte size or a percentage of `maxmemory`.
    ClientsMemory,
    /// `yes` or `no`.
    YesNo,
    /// `appendfsync`: always, everysec or no.
    Fsync,
    /// Fixed at start-up, or decided elsewhere (the control plane).
    Immutable,
}

/// One setting `CONFIG GET` knows.
struct Param {
    name: &'static str,
    kind: Kind,
}

/// Redis's bounds for memory limits: at least 1 MB, at most `LONG_MAX`.
const MEMORY_LIMIT: Kind = Kind::Memory {
    min: 1024 * 1024,
    max: i64::MAX as u64,
};

/// Redis's `INT_CONFIG` bounds for a count: 0 to `INT_MAX`.
const NON_NEGATIVE_INT: Kind = Kind::Integer {
    min: 0,
    max: i32::MAX as u64,
};

/// The settings, in the order `CONFIG GET` lists them.
const PARAMS: &[Param] = &[
    Param {
        name: "proto-max-bulk-len",
        kind: MEMORY_LIMIT,
    },
    Param {
        name: "client-query-buffer-limit",
        kind: MEMORY_LIMIT,
    },
    Param {
        name: "port",
        kind: Kind::Immutable,
    },
    Param {
        name: "bind",
        kind: Kind::Immutable,
    },
    Param {
        name: "io-threads",
        kind: Kind::Immutable,
    },
    Param {
        name: "maxclients",
        kind: Kind::Maxclients,
    },
    Param {
        name: "client-output-buffer-limit",
        kind: Kind::OutputLimits,
    },
    Param {
        name: "cluster-enabled",
        kind: Kind::Immutable,
    },
    // Decided by the control plane: `emberctl config set require-full-coverage`.
    Param {
        name: "cluster-require-full-coverage",
        kind: Kind::Immutable,
    },
    Param {
        name: "databases",
        kind: Kind::Immutable,
    },
    Param {
        name: "save",
        kind: Kind::Save,
    },
    Param {
        name: "stop-writes-on-bgsave-error",
        kind: Kind::YesNo,
    },
    Param {
        name: "appendonly",
        kind: Kind::YesNo,
    },
    Param {
        name: "appendfsync",
        kind: Kind::Fsync,
    },
    Param {
        name: "appendfilename",
        kind: Kind::Immutable,
    },
    Param {
        name: "auto-aof-rewrite-percentage",
        kind: NON_NEGATIVE_INT,
    },
    Param {
        name: "auto-aof-rewrite-min-size",
        kind: Kind::Memory {
            min: 0,
            max: i64::MAX as u64,
        },
    },
    Param {
        name: "aof-load-truncated",
        kind: Kind::YesNo,
    },
    Param {
        name: "maxmemory",
        kind: Kind::Memory {
            min: 0,
            max: i64::MAX as u64,
        },
    },
    Param {
        name: "maxmemory-policy",
        kind: Kind::Policy,
    },
    Param {
        name: "maxmemory-clients",
        kind: Kind::ClientsMemory,
    },
    Param {
        name: "maxmemory-samples",
        kind: Kind::Integer {
            min: 1,
            max: i32::MAX as u64,
        },
    },
    Param {
        name: "lfu-decay-time",
        kind: NON_NEGATIVE_INT,
    },
    Param {
        name: "lfu-log-factor",
        kind: NON_NEGATIVE_INT,
    },
    Param {
        name: "repl-backlog-size",
        kind: Kind::Memory {
            min: 1,
            max: i64::MAX as u64,
        },
    },
    Param {
        name: "min-replicas-to-write",
        kind: NON_NEGATIVE_INT,
    },
    Param {
        name: "min-replicas-max-lag",
        kind: NON_NEGATIVE_INT,
    },
    Param {
        name: "replica-serve-stale-data",
        kind: Kind::YesNo,
    },
    // Redis's older names for the three settings above (aliases, listed too).
    Param {
        name: "min-slaves-to-write",
        kind: NON_NEGATIVE_INT,
    },
    Param {
        name: "min-slaves-max-lag",
        kind: NON_NEGATIVE_INT,
    },
    Param {
        name: "slave-serve-stale-data",
        kind: Kind::YesNo,
    },
    // How long a script may run before the node answers BUSY (ms); `lua-time-limit` is
    // its older name, as in Redis 7.
    Param {
        name: "busy-reply-threshold",
        kind: Kind::Integer {
            min: 0,
            max: i64::MAX as u64,
        },
    },
    Param {
        name: "notify-keyspace-events",
        kind: Kind::Notify,
    },
    Param {
        name: "lua-time-limit",
        kind: Kind::Integer {
            min: 0,
            max: i64::MAX as u64,
        },
    },
];

/// Why `CONFIG SET` refused; `Display` is Redis 7's error line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// No such setting (the name as given).
    #[error("ERR Unknown option or number of arguments for CONFIG SET - '{0}'")]
    Unknown(String),
    /// The setting cannot change at run time (the name as given).
    #[error(
        "ERR CONFIG SET failed (possibly related to argument '{0}') - can't set immutable config"
    )]
    Immutable(String),
    /// The same setting twice in one `CONFIG SET` (the second name as given).
    #[error("ERR CONFIG SET failed (possibly related to argument '{0}') - duplicate parameter")]
    Duplicate(String),
    /// A value the setting does not accept.
    #[error("ERR CONFIG SET failed (possibly related to argument '{name}') - {reason}")]
    Invalid {
        name: &'static str,
        reason: InvalidValue,
    },
}

/// What is wrong with a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidValue {
    #[error("argument must be a memory value")]
    NotMemory,
    #[error("argument must be between {min} and {max} inclusive")]
    OutOfRange { min: u64, max: u64 },
    #[error("Invalid save parameters")]
    Save,
    #[error("argument couldn't be parsed into an integer")]
    NotInteger,
    #[error("The operating system is not able to handle the specified number of clients, try with {fits}")]
    TooManyClients { fits: u64 },
    #[error("{0}")]
    OutputLimits(output_limits::LimitsError),
    #[error("Invalid event class character. Use 'Ag$lshzxeKEtmdn'.")]
    NotifyFlags,
    #[error("argument must be a memory or percent value")]
    NotMemoryOrPercent,
    #[error("percentage argument must be less or equal to 100")]
    PercentOver100,
    #[error("argument(s) must be one of the following: volatile-lru, volatile-lfu, volatile-random, volatile-ttl, allkeys-lru, allkeys-lfu, allkeys-random, noeviction")]
    Policy,
    #[error("argument must be 'yes' or 'no'")]
    YesNo,
    #[error("argument(s) must be one of the following: everysec, always, no")]
    Fsync,
}

/// A validated new value.
enum NewValue {
    Memory(usize),
    Integer(u64),
    Save(String),
    Maxclients(u64),
    OutputLimits([ClassLimit; 3]),
    Notify(u32),
    Policy(crate::evict::Policy),
    ClientsMemory(crate::evict::ClientsLimit),
    YesNo(bool),
    Fsync(crate::persist::aof::Fsync),
}

impl RuntimeConfig {
    pub fn new(c: &Config) -> Self {
        RuntimeConfig {
            proto_max_bulk_len: AtomicUsize::new(c.proto_max_bulk_len),
            client_query_buffer_limit: AtomicUsize::new(c.client_query_buffer_limit),
            save: parking_lot::Mutex::new(c.save.clone()),
            port: c.port,
            bind: c.bind.clone(),
            io_threads: c.resolved_io_threads(),
            maxclients: AtomicU64::new(c.maxclients),
            fd_reserve: crate::fdlimit::reserved_fds(c.resolved_io_threads()),
            output_limits: OutputLimits::default(),
            repl_backlog_size: std::sync::Arc::new(AtomicU64::new(c.repl_backlog_size)),
            serve_stale: std::sync::atomic::AtomicBool::new(true),
            stop_writes_on_bgsave_error: std::sync::atomic::AtomicBool::new(true),
            min_replicas_to_write: AtomicU64::new(0),
            min_replicas_max_lag: AtomicU64::new(10),
            busy_reply_threshold: AtomicU64::new(5000),
            notify: Default::default(),
            memory: {
                let m = crate::evict::Settings::default();
                m.set_maxmemory(c.maxmemory);
                // What keys remember is process-wide (one keyspace per process): a
                // server started with the default policy leaves it as it is (tests run
                // several in one process).
                if c.maxmemory_policy != crate::evict::Policy::NoEviction {
                    m.set_policy(c.maxmemory_policy);
                }
                m
            },
            aof: {
                let a = crate::persist::aof::Settings::default();
                a.set_appendonly(c.appendonly);
                a.set_fsync(c.appendfsync);
                a.load_truncated
                    .store(c.aof_load_truncated, Ordering::Relaxed);
                a
            },
        }
    }

    /// `replica-serve-stale-data`: a replica whose link is down still serves reads.
    pub fn serve_stale(&self) -> bool {
        self.serve_stale.load(Ordering::Relaxed)
    }

    /// `stop-writes-on-bgsave-error`.
    pub fn stop_writes_on_bgsave_error(&self) -> bool {
        self.stop_writes_on_bgsave_error.load(Ordering::Relaxed)
    }

    /// Whether `save` names any save point.
    pub fn has_save_points(&self) -> bool {
        !self.save.lock().is_empty()
    }

    /// How long a script may run before the node answers `BUSY`.
    pub fn busy_reply_threshold(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.busy_reply_threshold.load(Ordering::Relaxed))
    }

    /// `min-replicas-to-write` and `min-replicas-max-lag`: a primary refuses writes
    /// unless that many replicas acknowledged within that many seconds (0: no rule).
    pub fn min_replicas(&self) -> (u64, u64) {
        (
            self.min_replicas_to_write.load(Ordering::Relaxed),
            self.min_replicas_max_lag.load(Ordering::Relaxed),
        )
    }

    pub fn repl_backlog_size(&self) -> u64 {
        self.repl_backlog_size.load(Ordering::Relaxed)
    }

    /// The `repl-backlog-size` cell itself, for the replication log to read.
    pub fn repl_backlog_size_cell(&self) -> std::sync::Arc<AtomicU64> {
        self.repl_backlog_size.clone()
    }

    /// Most client connections at once.
    pub fn maxclients(&self) -> u64 {
        self.maxclients.load(Ordering::Relaxed)
    }

    /// The output buffer limits of `class`.
    pub fn output_limit(&self, class: ClientClass) -> ClassLimit {
        self.output_limits.get(class)
    }

    pub fn proto_max_bulk_len(&self) -> usize {
        self.proto_max_bulk_len.load(Ordering::Relaxed)
    }

    pub fn client_query_buffer_limit(&self) -> usize {
        self.client_query_buffer_limit.load(Ordering::Relaxed)
    }

    /// All setting names, in `CONFIG GET` order.
    pub fn names() -> impl Iterator<Item = &'static str> {
        PARAMS.iter().map(|p| p.name)
    }

    /// The current value of a setting, as `CONFIG GET` shows it.
    pub fn get(&self, name: &str) -> Option<String> {
        Some(match name {
            "proto-max-bulk-len" => self.proto_max_bulk_len().to_string(),
            "client-query-buffer-limit" => self.client_query_buffer_limit().to_string(),
            "port" => self.port.to_string(),
            "bind" => self.bind.clone(),
            "io-threads" => self.io_threads.to_string(),
            "maxclients" => self.maxclients().to_string(),
            "client-output-buffer-limit" => self.output_limits.describe(),
            "cluster-enabled" => "yes".into(),
            "cluster-require-full-coverage" => "yes".into(),
            "databases" => "1".into(),
            "save" => self.save.lock().clone(),
            "stop-writes-on-bgsave-error" => yes_no(self.stop_writes_on_bgsave_error()),
            "appendonly" => yes_no(self.aof.appendonly()),
            "appendfsync" => self.aof.fsync().name().into(),
            "appendfilename" => crate::persist::aof::FILE.into(),
            "auto-aof-rewrite-percentage" => {
                self.aof.auto_percentage.load(Ordering::Relaxed).to_string()
            }
            "auto-aof-rewrite-min-size" => {
                self.aof.auto_min_size.load(Ordering::Relaxed).to_string()
            }
            "aof-load-truncated" => yes_no(self.aof.load_truncated.load(Ordering::Relaxed)),
            "maxmemory" => self.memory.maxmemory().to_string(),
            "maxmemory-policy" => self.memory.policy().name().into(),
            "maxmemory-samples" => self.memory.samples().to_string(),
            "maxmemory-clients" => self.memory.clients().to_string(),
            "lfu-log-factor" => self.memory.lfu().0.to_string(),
            "lfu-decay-time" => self.memory.lfu().1.to_string(),
            "repl-backlog-size" => self.repl_backlog_size().to_string(),
            "min-replicas-to-write" | "min-slaves-to-write" => self.min_replicas().0.to_string(),
            "min-replicas-max-lag" | "min-slaves-max-lag" => self.min_replicas().1.to_string(),
            "replica-serve-stale-data" | "slave-serve-stale-data" => yes_no(self.serve_stale()),
            "busy-reply-threshold" | "lua-time-limit" => {
                self.busy_reply_threshold().as_millis().to_string()
            }
            "notify-keyspace-events" => crate::notify::format(self.notify.flags()),
            _ => return None,
        })
    }

    /// `CONFIG SET name value [name value ...]`, all or nothing, checked in Redis 7's
    /// order: every name first (the first unknown, immutable or repeated one is the
    /// error), then every value (the first invalid one is the error); only then is
    /// anything changed.
    pub fn set(&self, pairs: &[(&[u8], &[u8])]) -> Result<(), ConfigError> {
        let mut params: Vec<&Param> = Vec::with_capacity(pairs.len());
        for (name, _) in pairs {
            let given = || String::from_utf8_lossy(name).into_owned();
            let Some(p) = PARAMS
                .iter()
                .find(|p| name.eq_ignore_ascii_case(p.name.as_bytes()))
            else {
                return Err(ConfigError::Unknown(given()));
            };
            if p.kind == Kind::Immutable {
                return Err(ConfigError::Immutable(given()));
            }
            // (Redis 7.0 takes a setting and its alias in one CONFIG SET: the last wins.)
            if params.iter().any(|q| q.name == p.name) {
                return Err(ConfigError::Duplicate(given()));
            }
            params.push(p);
        }
        let mut values = Vec::with_capacity(pairs.len());
        for (p, (_, value)) in params.iter().zip(pairs) {
            let invalid = |reason| ConfigError::Invalid {
                name: p.name,
                reason,
            };
            values.push(match p.kind {
                Kind::Memory { min, max } => {
                    let v = parse_memory(value).map_err(invalid)?;
                    if !(min..=max).contains(&v) {
                        return Err(invalid(InvalidValue::OutOfRange { min, max }));
                    }
                    // `max` is at most i64::MAX: fits a usize on the 64-bit targets ember
                    // supports.
                    NewValue::Memory(usize::try_from(v).unwrap_or(usize::MAX))
                }
                Kind::Integer { min, max } => {
                    let v = crate::resp::parse::parse_i64(value)
                        .ok_or(InvalidValue::NotInteger)
                        .map_err(invalid)?;
                    match u64::try_from(v).ok().filter(|v| (min..=max).contains(v)) {
                        Some(v) => NewValue::Integer(v),
                        None => return Err(invalid(InvalidValue::OutOfRange { min, max })),
                    }
                }
                Kind::Save => NewValue::Save(parse_save(value).map_err(invalid)?),
                Kind::Maxclients => {
                    NewValue::Maxclients(self.check_maxclients(value).map_err(invalid)?)
                }
                Kind::OutputLimits => NewValue::OutputLimits(
                    self.output_limits
                        .parse(value)
                        .map_err(|e| invalid(InvalidValue::OutputLimits(e)))?,
                ),
                Kind::Notify => NewValue::Notify(
                    crate::notify::parse(value)
                        .ok_or(InvalidValue::NotifyFlags)
                        .map_err(invalid)?,
                ),
                Kind::Policy => NewValue::Policy(
                    crate::evict::Policy::parse(value)
                        .ok_or(InvalidValue::Policy)
                        .map_err(invalid)?,
                ),
                Kind::ClientsMemory => {
                    NewValue::ClientsMemory(parse_clients_memory(value).map_err(invalid)?)
                }
                Kind::YesNo => NewValue::YesNo(
                    parse_yes_no(value)
                        .ok_or(InvalidValue::YesNo)
                        .map_err(invalid)?,
                ),
                Kind::Fsync => NewValue::Fsync(
                    crate::persist::aof::Fsync::parse(value)
                        .ok_or(InvalidValue::Fsync)
                        .map_err(invalid)?,
                ),
                Kind::Immutable => unreachable!("refused above"),
            });
        }
        for (p, v) in params.iter().zip(values) {
            match (p.name, v) {
                ("proto-max-bulk-len", NewValue::Memory(v)) => {
                    self.proto_max_bulk_len.store(v, Ordering::Relaxed)
                }
                ("client-query-buffer-limit", NewValue::Memory(v)) => {
                    self.client_query_buffer_limit.store(v, Ordering::Relaxed)
                }
                ("repl-backlog-size", NewValue::Memory(v)) => {
                    self.repl_backlog_size.store(v as u64, Ordering::Relaxed)
                }
                ("min-replicas-to-write" | "min-slaves-to-write", NewValue::Integer(v)) => {
                    self.min_replicas_to_write.store(v, Ordering::Relaxed)
                }
                ("min-replicas-max-lag" | "min-slaves-max-lag", NewValue::Integer(v)) => {
                    self.min_replicas_max_lag.store(v, Ordering::Relaxed)
                }
                ("replica-serve-stale-data" | "slave-serve-stale-data", NewValue::YesNo(v)) => {
                    self.serve_stale.store(v, Ordering::Relaxed)
                }
                ("busy-reply-threshold" | "lua-time-limit", NewValue::Integer(v)) => {
                    self.busy_reply_threshold.store(v, Ordering::Relaxed)
                }
                (_, NewValue::Save(v)) => *self.save.lock() = v,
                (_, NewValue::Maxclients(n)) => self.maxclients.store(n, Ordering::Relaxed),
                (_, NewValue::OutputLimits(l)) => self.output_limits.store(l),
                (_, NewValue::Notify(f)) => self.notify.set(f),
                (_, NewValue::Policy(p)) => self.memory.set_policy(p),
                (_, NewValue::ClientsMemory(l)) => self.memory.set_clients(l),
                ("maxmemory", NewValue::Memory(v)) => self.memory.set_maxmemory(v as u64),
                ("maxmemory-samples", NewValue::Integer(v)) => self.memory.set_samples(v as u32),
                ("lfu-log-factor", NewValue::Integer(v)) => {
                    self.memory.set_lfu(Some(v as u32), None)
                }
                ("lfu-decay-time", NewValue::Integer(v)) => {
                    self.memory.set_lfu(None, Some(v as u32))
                }
                ("stop-writes-on-bgsave-error", NewValue::YesNo(v)) => {
                    self.stop_writes_on_bgsave_error.store(v, Ordering::Relaxed)
                }
                ("appendonly", NewValue::YesNo(v)) => self.aof.set_appendonly(v),
                ("aof-load-truncated", NewValue::YesNo(v)) => {
                    self.aof.load_truncated.store(v, Ordering::Relaxed)
                }
                (_, NewValue::Fsync(f)) => self.aof.set_fsync(f),
                ("auto-aof-rewrite-percentage", NewValue::Integer(v)) => {
                    self.aof.auto_percentage.store(v, Ordering::Relaxed)
                }
                ("auto-aof-rewrite-min-size", NewValue::Memory(v)) => {
                    self.aof.auto_min_size.store(v as u64, Ordering::Relaxed)
                }
                (name, _) => unreachable!("no setter for {name}"),
            }
        }
        Ok(())
    }
}

impl RuntimeConfig {
    /// A new `maxclients`: in range, and the open files limit raised to fit it (as Redis
    /// does at `CONFIG SET`), else refused with the number that would fit.
    fn check_maxclients(&self, value: &[u8]) -> Result<u64, InvalidValue> {
        let n = crate::resp::parse::parse_i64(value).ok_or(InvalidValue::NotInteger)?;
        let n = u64::try_from(n)
            .ok()
            .filter(|n| (1..=MAX_MAXCLIENTS).contains(n))
            .ok_or(InvalidValue::OutOfRange {
                min: 1,
                max: MAX_MAXCLIENTS,
            })?;
        match crate::fdlimit::fit(n, self.fd_reserve) {
            Ok(_) => Ok(n),
            Err(crate::fdlimit::FdLimitError::TooLow { fits, .. }) => {
                Err(InvalidValue::TooManyClients { fits })
            }
            // Nothing to fit against (no such limit here): take the value.
            Err(crate::fdlimit::FdLimitError::Unreadable(_)) => Ok(n),
        }
    }
}

/// `yes` or `no`, any case (Redis's boolean settings).
pub fn parse_yes_no(v: &[u8]) -> Option<bool> {
    match v.to_ascii_lowercase().as_slice() {
        b"yes" => Some(true),
        b"no" => Some(false),
        _ => None,
    }
}

fn yes_no(v: bool) -> String {
    if v { "yes" } else { "no" }.into()
}

/// `maxmemory-clients`: a memory value, or `N%` of `maxmemory` (0 to 100).
fn parse_clients_memory(v: &[u8]) -> Result<crate::evict::ClientsLimit, InvalidValue> {
    use crate::evict::ClientsLimit;
    if let Some(p) = v.strip_suffix(b"%") {
        let p: u64 = std::str::from_utf8(p)
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse().ok())
            .ok_or(InvalidValue::NotMemoryOrPercent)?;
        if p > 100 {
            return Err(InvalidValue::PercentOver100);
        }
        return Ok(ClientsLimit::Percent(p));
    }
    parse_memory(v)
        .map(ClientsLimit::Bytes)
        .map_err(|_| InvalidValue::NotMemoryOrPercent)
}

/// Redis's `memtoull`: digits then an optional unit (`b`, `k`, `kb`, `m`, `mb`, `g`,
/// `gb`, any case); no sign, no fraction. A value too large for 64 bits is reported
/// as out of range (Redis's own arithmetic wraps there).
pub fn parse_memory(v: &[u8]) -> Result<u64, InvalidValue> {
    let split = v
        .iter()
        .position(|c| !c.is_ascii_digit())
        .unwrap_or(v.len());
    let (digits, unit) = v.split_at(split);
    let mul: u64 = match unit.to_ascii_lowercase().as_slice() {
        b"" | b"b" => 1,
        b"k" => 1000,
        b"kb" => 1024,
        b"m" => 1000 * 1000,
        b"mb" => 1024 * 1024,
        b"g" => 1000 * 1000 * 1000,
        b"gb" => 1024 * 1024 * 1024,
        _ => return Err(InvalidValue::NotMemory),
    };
    let too_big = InvalidValue::OutOfRange {
        min: 0,
        max: u64::MAX,
    };
    // No digits at all reads as 0, as in Redis (then out of range for every limit).
    let n = digits.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    });
    n.and_then(|n| n.checked_mul(mul)).ok_or(too_big)
}

/// Validates a `save` value as Redis does and returns it as `CONFIG GET` shows it:
/// words separated by single spaces, in pairs `seconds changes` with seconds >= 1 and
/// changes >= 0 (each read like C's `strtoll`, changes then kept as a C `int`); `""`
/// means no save points.
pub fn parse_save(v: &[u8]) -> Result<String, InvalidValue> {
    if v.is_empty() {
        return Ok(String::new());
    }
    let words: Vec<&[u8]> = v.split(|&c| c == b' ').collect();
    if !words.len().is_multiple_of(2) {
        return Err(InvalidValue::Save);
    }
    let mut points = Vec::with_capacity(words.len() / 2);
    for pair in words.chunks(2) {
        let seconds = strtoll(pair[0]).filter(|&s| s >= 1);
        let changes = strtoll(pair[1]).filter(|&c| c >= 0);
        match (seconds, changes) {
            // Redis stores `changes` in an int.
            (Some(s), Some(c)) => points.push(format!("{s} {}", c as i32)),
            _ => return Err(InvalidValue::Save),
        }
    }
    Ok(points.join(" "))
}

/// C's `strtoll(s, &end, 10)` with `*end == '\0'` required: leading white space, an
/// optional sign, digits (none at all reads as 0 only for the empty word), saturating at
/// the `i64` bounds.
fn strtoll(w: &[u8]) -> Option<i64> {
    if w.is_empty() {
        return Some(0);
    }
    let mut i = w
        .iter()
        .position(|c| !matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'))
        .unwrap_or(w.len());
    let neg = match w.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let digits = &w[i..];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v: i64 = 0;
    for &d in digits {
        let d = i64::from(d - b'0');
        v = v
            .saturating_mul(10)
            .saturating_add(if neg { -d } else { d });
        if neg && v == i64::MIN || !neg && v == i64::MAX {
            break;
        }
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rc() -> RuntimeConfig {
        RuntimeConfig::new(&Config::default())
    }

    fn set(c: &RuntimeConfig, pairs: &[(&str, &str)]) -> Result<(), String> {
        let pairs: Vec<(&[u8], &[u8])> = pairs
            .iter()
            .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
            .collect();
        c.set(&pairs).map_err(|e| e.to_string())
    }

    #[test]
    fn memory_units() {
        assert_eq!(parse_memory(b"512mb"), Ok(512 * 1024 * 1024));
        assert_eq!(parse_memory(b"1k"), Ok(1000));
        assert_eq!(parse_memory(b"1KB"), Ok(1024));
        assert_eq!(parse_memory(b"12"), Ok(12));
        assert_eq!(parse_memory(b""), Ok(0));
        assert_eq!(parse_memory(b"x"), Err(InvalidValue::NotMemory));
        assert_eq!(parse_memory(b"-1"), Err(InvalidValue::NotMemory));
        assert_eq!(parse_memory(b"1.5mb"), Err(InvalidValue::NotMemory));
        assert!(matches!(
            parse_memory(b"18446744073709551616"),
            Err(InvalidValue::OutOfRange { .. })
        ));
        assert!(matches!(
            parse_memory(b"17179869184gb"),
            Err(InvalidValue::OutOfRange { .. })
        ));
    }

    #[test]
    fn limits_have_redis_bounds_and_wording() {
        let c = rc();
        let between = "ERR CONFIG SET failed (possibly related to argument 'proto-max-bulk-len') - argument must be between 1048576 and 9223372036854775807 inclusive";
        for v in ["18446744073709551615", "9223372036854775808", "100", ""] {
            assert_eq!(
                set(&c, &[("proto-max-bulk-len", v)]),
                Err(between.into()),
                "{v}"
            );
        }
        assert_eq!(
            set(&c, &[("proto-max-bulk-len", "1x")]),
            Err("ERR CONFIG SET failed (possibly related to argument 'proto-max-bulk-len') - argument must be a memory value".into())
        );
        assert_eq!(c.proto_max_bulk_len(), DEFAULT_PROTO_MAX_BULK_LEN);
        assert_eq!(
            set(&c, &[("proto-max-bulk-len", "9223372036854775807")]),
            Ok(())
        );
        assert_eq!(c.proto_max_bulk_len(), i64::MAX as usize);
        assert_eq!(set(&c, &[("CLIENT-QUERY-BUFFER-LIMIT", "1mb")]), Ok(()));
        assert_eq!(c.client_query_buffer_limit(), 1 << 20);
    }

    #[test]
    fn names_are_checked_first_and_nothing_changes_on_error() {
        let c = rc();
        assert_eq!(
            set(&c, &[("proto-max-bulk-len", "1mb"), ("NoSuch", "1")]),
            Err("ERR Unknown option or number of arguments for CONFIG SET - 'NoSuch'".into())
        );
        assert_eq!(
            set(&c, &[("io-threads", "1"), ("nosuch", "1")]),
            Err("ERR CONFIG SET failed (possibly related to argument 'io-threads') - can't set immutable config".into())
        );
        assert_eq!(
            set(&c, &[("proto-max-bulk-len", "1mb"), ("PROTO-MAX-BULK-LEN", "2mb")]),
            Err("ERR CONFIG SET failed (possibly related to argument 'PROTO-MAX-BULK-LEN') - duplicate parameter".into())
        );
        assert_eq!(
            set(&c, &[("proto-max-bulk-len", "2mb"), ("client-query-buffer-limit", "1")]),
            Err("ERR CONFIG SET failed (possibly related to argument 'client-query-buffer-limit') - argument must be between 1048576 and 9223372036854775807 inclusive".into())
        );
        assert_eq!(c.proto_max_bulk_len(), DEFAULT_PROTO_MAX_BULK_LEN);
    }

    #[test]
    fn save_is_validated_and_recorded_like_redis() {
        let c = rc();
        assert_eq!(c.get("save").as_deref(), Some(""));
        for (v, shown) in [
            ("100 1", "100 1"),
            ("100 ", "100 0"),
            ("+5 -0", "5 0"),
            ("3600 1 300 100", "3600 1 300 100"),
            (
                "99999999999999999999 99999999999",
                "9223372036854775807 1215752191",
            ),
            ("", ""),
        ] {
            assert_eq!(set(&c, &[("save", v)]), Ok(()), "{v:?}");
            assert_eq!(c.get("save").as_deref(), Some(shown), "{v:?}");
        }
        for v in ["1", "0 1", "-1 1", "1 -1", "1x 1", "100  1", " 5 1", "+ 1"] {
            assert_eq!(
                set(&c, &[("save", v)]),
                Err("ERR CONFIG SET failed (possibly related to argument 'save') - Invalid save parameters".into()),
                "{v:?}"
            );
        }
    }
}
