//! The process's file-descriptor limit (`RLIMIT_NOFILE`) and the descriptors kept out of
//! clients' reach.
//!
//! As Redis does (`adjustOpenFilesLimit`), the node raises its soft limit at start to
//! `maxclients` plus a reserve, and lowers `maxclients` (with a warning) when the hard
//! limit does not allow that much. The accept loop never admits more than `maxclients`
//! clients, so the reserve stays free for everything else: stdio and logs, the event
//! loops (two descriptors per connection thread), the listeners, the control-plane
//! session, node-to-node gRPC streams and, later, persistence. `CONFIG SET maxclients`
//! raises the limit again, or fails as Redis does when the system cannot.

use thiserror::Error;

/// Descriptors the node keeps for itself besides the event loops of its connection
/// threads: stdio, logs, the main runtime, the RESP and internal listeners, the
/// control-plane session, node-to-node streams (a few per concurrent migration) and
/// persistence. Redis keeps 32; ember has more kinds of connections of its own.
pub const RESERVED_BASE: u64 = 96;

/// Descriptors kept out of clients' reach with `io_threads` connection threads.
pub fn reserved_fds(io_threads: usize) -> u64 {
    RESERVED_BASE + 2 * io_threads as u64
}

/// Why the limit could not be made to fit.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FdLimitError {
    /// `getrlimit` failed (no such limit on this platform).
    #[error("cannot read the open files limit: {0}")]
    Unreadable(String),
    /// The system allows at most `limit` descriptors, which leaves room for `fits`
    /// clients (0 when not even the reserve fits).
    #[error("the open files limit is {limit}: room for {fits} clients")]
    TooLow { limit: u64, fits: u64 },
}

/// The soft limit after [`fit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fitted {
    /// The soft limit before.
    pub was: u64,
    /// The soft limit now.
    pub now: u64,
}

/// Makes the soft `RLIMIT_NOFILE` at least `maxclients + reserve`, raising it (up to the
/// hard limit, or beyond it when the process may raise that) if needed. Never lowers it.
pub fn fit(maxclients: u64, reserve: u64) -> Result<Fitted, FdLimitError> {
    let want = maxclients.saturating_add(reserve);
    let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE)
        .map_err(|e| FdLimitError::Unreadable(e.to_string()))?;
    if soft >= want {
        return Ok(Fitted {
            was: soft,
            now: soft,
        });
    }
    // Raising the hard limit needs privileges (CAP_SYS_RESOURCE); try, then settle
    // for the hard limit.
    let raised = rlimit::setrlimit(rlimit::Resource::NOFILE, want, hard.max(want)).is_ok();
    let now = if raised {
        want
    } else {
        let best = want.min(hard);
        if best > soft && rlimit::setrlimit(rlimit::Resource::NOFILE, best, hard).is_ok() {
            best
        } else {
            soft
        }
    };
    if now >= want {
        Ok(Fitted { was: soft, now })
    } else {
        Err(FdLimitError::TooLow {
            limit: now,
            fits: now.saturating_sub(reserve),
        })
    }
}

/// At start: fits the limit to `maxclients`, or lowers `maxclients` to what the limit
/// allows, logging what it did as Redis does. `Err` when not even one client fits.
pub fn fit_at_start(maxclients: u64, reserve: u64) -> Result<u64, FdLimitError> {
    match fit(maxclients, reserve) {
        Ok(f) => {
            if f.now > f.was {
                tracing::info!(
                    "increased maximum number of open files to {} (it was originally set to {})",
                    f.now,
                    f.was
                );
            }
            Ok(maxclients)
        }
        Err(FdLimitError::TooLow { limit, fits }) if fits > 0 => {
            tracing::warn!(
                "you requested maxclients of {maxclients} requiring at least {} max file \
                 descriptors; the current maximum open files is {limit}: maxclients has been \
                 reduced to {fits} ({reserve} descriptors are kept for the node itself). If you \
                 need higher maxclients increase 'ulimit -n'",
                maxclients.saturating_add(reserve)
            );
            Ok(fits)
        }
        Err(e) => Err(e),
    }
}

/// Open descriptors of this process (0 where `/proc` is unavailable).
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_already_high_enough_is_left_alone() {
        let (soft, _) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
        let f = fit(1, 0).unwrap();
        assert_eq!((f.was, f.now), (soft, soft));
    }

    #[test]
    fn beyond_the_hard_limit_reports_what_fits() {
        let (soft, _) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
        // Unprivileged processes cannot pass the hard limit; root may, up to nr_open.
        match fit(u64::MAX / 2, 10) {
            Err(FdLimitError::TooLow { limit, fits }) => {
                assert!(limit >= soft, "never lowered");
                assert_eq!(fits, limit - 10);
            }
            other => panic!("fit to u64::MAX/2: {other:?}"),
        }
    }

    #[test]
    fn the_reserve_grows_with_the_connection_threads() {
        assert!(reserved_fds(8) > reserved_fds(1));
        assert!(reserved_fds(1) >= 32, "at least Redis's reserve");
    }
}
