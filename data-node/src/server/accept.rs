//! Admission of new clients against `maxclients`, and the accept loop's backoff.
//!
//! As Redis: a client over `maxclients` gets `-ERR max number of clients reached` (best
//! effort, without waiting) and is closed, and `INFO stats` counts it in
//! `rejected_connections`. The count of admitted clients is taken in the accept loop,
//! before a connection is handed to its thread, so a burst of connections can never
//! overshoot the limit. Since the soft open files limit is `maxclients` plus the reserve
//! ([`crate::fdlimit`]), clients never take the descriptors the node keeps for itself.
//!
//! An accept error (typically `EMFILE` when the limit is lower than it should be, or
//! `ENFILE` when the whole system is out of descriptors) never makes the loop spin or
//! end: it waits, doubling the wait from [`Backoff::MIN`] to [`Backoff::MAX`], and logs
//! at most once per [`Backoff::LOG_EVERY`].

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use crate::state::ServerState;

/// Redis's refusal, byte for byte.
pub const MAX_CLIENTS_REACHED: &[u8] = b"-ERR max number of clients reached\r\n";

/// One admitted client: holds its place under `maxclients` until dropped.
pub struct Admitted(Arc<ServerState>);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.clients.admitted.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Takes a place for a new client, or `None` when `maxclients` are connected.
/// Called only by the accept loop (one task), so checking then counting is exact.
pub fn admit(state: &Arc<ServerState>) -> Option<Admitted> {
    let admitted = state.clients.admitted.load(Ordering::Relaxed) as u64;
    if admitted >= state.config.maxclients() {
        return None;
    }
    state.clients.admitted.fetch_add(1, Ordering::Relaxed);
    Some(Admitted(state.clone()))
}

/// Refuses a client over `maxclients`.
pub fn refuse(stream: TcpStream, state: &ServerState, log: &mut RateLimitedLog) {
    // A fresh socket's send buffer is empty: this either writes it all or nothing.
    let _ = stream.try_write(MAX_CLIENTS_REACHED);
    let refused = state
        .stats
        .rejected_connections
        .fetch_add(1, Ordering::Relaxed)
        + 1;
    if log.ready() {
        tracing::warn!(
            maxclients = state.config.maxclients(),
            rejected_connections = refused,
            "max number of clients reached: refusing new clients"
        );
    }
}

/// Allows a log line at most once per [`Backoff::LOG_EVERY`].
#[derive(Debug, Default)]
pub struct RateLimitedLog {
    last: Option<Instant>,
    /// Events not logged since the last line.
    pub suppressed: u64,
}

impl RateLimitedLog {
    /// True when a line may be logged now (and counts the event otherwise).
    pub fn ready(&mut self) -> bool {
        if self.last.is_some_and(|t| t.elapsed() < Backoff::LOG_EVERY) {
            self.suppressed += 1;
            return false;
        }
        self.last = Some(Instant::now());
        true
    }
}

/// The accept loop's wait after an accept error.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
    log: RateLimitedLog,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next: Self::MIN,
            log: RateLimitedLog::default(),
        }
    }
}

impl Backoff {
    pub const MIN: Duration = Duration::from_millis(10);
    pub const MAX: Duration = Duration::from_secs(1);
    pub const LOG_EVERY: Duration = Duration::from_secs(10);

    /// An accept succeeded: the next error waits [`Backoff::MIN`] again.
    pub fn succeeded(&mut self) {
        self.next = Self::MIN;
    }

    /// An accept failed: logs (rate limited) and returns how long to wait.
    pub fn failed(&mut self, error: &std::io::Error, state: &ServerState) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        if self.log.ready() {
            tracing::warn!(
                %error,
                failures_not_logged = std::mem::take(&mut self.log.suppressed),
                clients = state.clients.admitted.load(Ordering::Relaxed),
                maxclients = state.config.maxclients(),
                open_fds = crate::fdlimit::open_fds(),
                "accept failed; waiting {wait:?} before accepting again"
            );
        }
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap_and_resets() {
        let state = ServerState::new(
            Arc::new(crate::cluster::Cluster::standalone()),
            crate::Config::default(),
        );
        let e = std::io::Error::from_raw_os_error(24); // EMFILE
        let mut b = Backoff::default();
        let waits: Vec<Duration> = (0..10).map(|_| b.failed(&e, &state)).collect();
        assert_eq!(waits[0], Backoff::MIN);
        assert_eq!(waits[1], Backoff::MIN * 2);
        assert_eq!(*waits.last().unwrap(), Backoff::MAX);
        assert!(waits.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(b.log.suppressed, 9, "one line for ten failures");
        b.succeeded();
        assert_eq!(b.failed(&e, &state), Backoff::MIN);
    }

    #[test]
    fn admission_stops_at_maxclients_and_frees_places() {
        let state = Arc::new(ServerState::new(
            Arc::new(crate::cluster::Cluster::standalone()),
            crate::Config {
                maxclients: 2,
                ..crate::Config::default()
            },
        ));
        let a = admit(&state).unwrap();
        let _b = admit(&state).unwrap();
        assert!(admit(&state).is_none());
        drop(a);
        assert!(admit(&state).is_some());
    }
}
