//! `CLIENT PAUSE timeout [WRITE|ALL]` and `CLIENT UNPAUSE`, as Redis: while paused, the
//! commands of ordinary clients wait (every command under `ALL`; under `WRITE` those that
//! may write or replicate: writes, `EVAL`/`FCALL`, `PUBLISH`, an `EXEC` of writes ...)
//! and run once the pause ends, by its deadline or `UNPAUSE`. Keys do not expire
//! meanwhile (the active cycle stops), so a paused dataset holds still. Node-local, as in
//! Redis Cluster; the links of replication and migration are not RESP clients and go on.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::watch;

#[derive(Clone, Copy)]
struct Paused {
    until: Instant,
    /// `ALL` (else `WRITE`).
    all: bool,
}

pub struct Pause {
    paused: Mutex<Option<Paused>>,
    /// Set while a pause may be in force (every command checks it, so an atomic).
    active: AtomicBool,
    changed: watch::Sender<u64>,
    /// Clients waiting for the pause to end (counted in `blocked_clients`, as Redis).
    waiting: AtomicUsize,
}

impl Default for Pause {
    fn default() -> Self {
        Pause {
            paused: Mutex::new(None),
            active: AtomicBool::new(false),
            changed: watch::channel(0).0,
            waiting: AtomicUsize::new(0),
        }
    }
}

/// Counts a waiting client for as long as it waits (also if its task is dropped).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Pause {
    /// `CLIENT PAUSE`: a pause already in force keeps the later deadline and the
    /// stricter mode, as in Redis.
    pub fn pause(&self, timeout: Duration, all: bool) {
        let until = Instant::now() + timeout;
        let mut paused = self.paused.lock();
        *paused = Some(match *paused {
            Some(p) if p.until > Instant::now() => Paused {
                until: p.until.max(until),
                all: p.all || all,
            },
            _ => Paused { until, all },
        });
        self.active.store(true, Ordering::Release);
        drop(paused);
        self.changed.send_modify(|n| *n += 1);
    }

    /// `CLIENT UNPAUSE`.
    pub fn unpause(&self) {
        *self.paused.lock() = None;
        self.active.store(false, Ordering::Release);
        self.changed.send_modify(|n| *n += 1);
    }

    /// Until when a command (`writes`: one that may write or replicate) must wait.
    fn holds(&self, writes: bool) -> Option<Instant> {
        if !self.active.load(Ordering::Acquire) {
            return None;
        }
        let mut paused = self.paused.lock();
        match *paused {
            Some(p) if p.until <= Instant::now() => {
                *paused = None;
                self.active.store(false, Ordering::Release);
                None
            }
            Some(p) if p.all || writes => Some(p.until),
            _ => None,
        }
    }

    /// Whether a pause may be in force (one atomic load: every command asks).
    pub fn maybe_active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }

    /// Whether a command of this kind would wait now.
    pub fn would_hold(&self, writes: bool) -> bool {
        self.holds(writes).is_some()
    }

    /// Waits while a pause holds a command of this kind.
    pub async fn wait(&self, writes: bool) {
        let mut changed = self.changed.subscribe();
        while let Some(until) = self.holds(writes) {
            self.waiting.fetch_add(1, Ordering::Relaxed);
            let _counted = Waiting(&self.waiting);
            tokio::select! {
                _ = tokio::time::sleep_until(until.into()) => {}
                _ = changed.changed() => {}
            }
        }
    }

    /// Whether writes are paused (keys must not expire).
    pub fn writes_paused(&self) -> bool {
        self.holds(true).is_some()
    }

    /// Clients waiting for a pause to end.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_pause_keeps_the_later_deadline_and_the_stricter_mode() {
        let p = Pause::default();
        assert!(!p.would_hold(true));
        p.pause(Duration::from_secs(60), false);
        assert!(p.would_hold(true) && !p.would_hold(false));
        p.pause(Duration::from_millis(1), true);
        assert!(p.would_hold(false), "ALL is stricter");
        assert!(p.holds(true).unwrap() > Instant::now() + Duration::from_secs(30));
        p.unpause();
        assert!(!p.would_hold(true));
    }

    #[tokio::test]
    async fn waiting_ends_at_the_deadline_or_on_unpause() {
        let p = std::sync::Arc::new(Pause::default());
        p.pause(Duration::from_millis(30), false);
        let started = Instant::now();
        p.wait(true).await;
        assert!(started.elapsed() >= Duration::from_millis(25));
        p.pause(Duration::from_secs(60), true);
        let waiter = tokio::spawn({
            let p = p.clone();
            async move { p.wait(false).await }
        });
        while p.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        p.unpause();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(p.waiting(), 0);
    }
}
