//! Limits and the settings exposed by `CONFIG GET` / `CONFIG SET`.
//!
//! # Limits
//!
//! All are Redis's defaults and are enforced *before* anything is allocated for the
//! offending input:
//!
//! | limit | default | on violation |
//! | --- | --- | --- |
//! | `proto-max-bulk-len` | 512 MB | `-ERR Protocol error: invalid bulk length`, connection closed |
//! | multibulk length | 2^31-1 elements (as Redis; argv is grown lazily, never preallocated beyond 1024) | `-ERR Protocol error: invalid multibulk length`, connection closed |
//! | inline command line | 64 KB | `-ERR Protocol error: too big inline request`, connection closed |
//! | bulk/multibulk count line | 64 KB | `-ERR Protocol error: too big bulk count string` / `too big mbulk count string`, closed |
//! | `client-query-buffer-limit` | 1 GB | connection closed (no reply, as Redis) |
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
        }
    }
}

/// The settings as they are at run time (`CONFIG SET` changes them).
#[derive(Debug)]
pub struct RuntimeConfig {
    proto_max_bulk_len: AtomicUsize,
    client_query_buffer_limit: AtomicUsize,
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
}

/// The names `CONFIG GET` knows, in the order it lists them.
const NAMES: &[&str] = &[
    "proto-max-bulk-len",
    "client-query-buffer-limit",
    "port",
    "bind",
    "io-threads",
    "maxclients",
    "client-output-buffer-limit",
    "cluster-enabled",
    "cluster-require-full-coverage",
    "databases",
    "save",
    "appendonly",
    "maxmemory",
    "maxmemory-policy",
];

impl RuntimeConfig {
    pub fn new(c: &Config) -> Self {
        RuntimeConfig {
            proto_max_bulk_len: AtomicUsize::new(c.proto_max_bulk_len),
            client_query_buffer_limit: AtomicUsize::new(c.client_query_buffer_limit),
            port: c.port,
            bind: c.bind.clone(),
            io_threads: c.resolved_io_threads(),
            maxclients: AtomicU64::new(c.maxclients),
            fd_reserve: crate::fdlimit::reserved_fds(c.resolved_io_threads()),
            output_limits: OutputLimits::default(),
        }
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

    /// All setting names.
    pub fn names() -> &'static [&'static str] {
        NAMES
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
            // Coverage is decided by the control plane; ember always requires it.
            "cluster-require-full-coverage" => "yes".into(),
            "databases" => "1".into(),
            "save" => String::new(),
            "appendonly" => "no".into(),
            "maxmemory" => "0".into(),
            "maxmemory-policy" => "noeviction".into(),
            _ => return None,
        })
    }

    /// `CONFIG SET name value`. Errors carry the text after `ERR `.
    pub fn set(&self, name: &str, value: &[u8]) -> Result<(), String> {
        let failed = |why: &dyn std::fmt::Display| {
            format!("CONFIG SET failed (possibly related to argument '{name}') - {why}")
        };
        match name {
            "maxclients" => return self.set_maxclients(value).map_err(|e| failed(&e)),
            "client-output-buffer-limit" => {
                return self.output_limits.set(value).map_err(|e| failed(&e))
            }
            _ => {}
        }
        let target = match name {
            "proto-max-bulk-len" => &self.proto_max_bulk_len,
            "client-query-buffer-limit" => &self.client_query_buffer_limit,
            _ if NAMES.contains(&name) => {
                return Err(format!(
                    "CONFIG SET failed (possibly related to argument '{name}') - can't set immutable config"
                ))
            }
            _ => {
                return Err(format!(
                    "Unknown option or number of arguments for CONFIG SET - '{name}'"
                ))
            }
        };
        let v = parse_memory(value).filter(|v| *v >= 1024 * 1024).ok_or_else(|| {
            format!(
                "CONFIG SET failed (possibly related to argument '{name}') - argument must be a memory value"
            )
        })?;
        target.store(v, Ordering::Relaxed);
        Ok(())
    }

    /// `CONFIG SET maxclients n`: raises the open files limit to fit, or fails as Redis
    /// does and keeps the old value.
    fn set_maxclients(&self, value: &[u8]) -> Result<(), MaxclientsError> {
        let n = crate::resp::parse::parse_i64(value).ok_or(MaxclientsError::NotInteger)?;
        let n = u64::try_from(n)
            .ok()
            .filter(|n| (1..=MAX_MAXCLIENTS).contains(n))
            .ok_or(MaxclientsError::OutOfRange)?;
        match crate::fdlimit::fit(n, self.fd_reserve) {
            Ok(_) => {}
            Err(crate::fdlimit::FdLimitError::TooLow { fits, .. }) => {
                return Err(MaxclientsError::TooMany { fits })
            }
            // Nothing to fit against (no such limit here): take the value.
            Err(crate::fdlimit::FdLimitError::Unreadable(_)) => {}
        }
        self.maxclients.store(n, Ordering::Relaxed);
        Ok(())
    }
}

/// A rejected `maxclients`; `Display` is Redis's text.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
enum MaxclientsError {
    #[error("argument couldn't be parsed into an integer")]
    NotInteger,
    #[error("argument must be between 1 and {MAX_MAXCLIENTS} inclusive")]
    OutOfRange,
    #[error("The operating system is not able to handle the specified number of clients, try with {fits}")]
    TooMany { fits: u64 },
}

/// Parses `100`, `1k`, `1kb`, `512mb`, `1gb` (Redis's memory units).
fn parse_memory(v: &[u8]) -> Option<usize> {
    let s = std::str::from_utf8(v).ok()?.to_ascii_lowercase();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: usize = num.parse().ok()?;
    let mul: usize = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    n.checked_mul(mul)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_units() {
        assert_eq!(parse_memory(b"512mb"), Some(512 * 1024 * 1024));
        assert_eq!(parse_memory(b"1k"), Some(1000));
        assert_eq!(parse_memory(b"12"), Some(12));
        assert_eq!(parse_memory(b"x"), None);
    }
}
