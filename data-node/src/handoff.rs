//! One decision point for a paused handoff.
//!
//! A handoff moves the right to acknowledge writes for some slots from one node, the
//! *holder* (it pauses those writes), to another, the *taker*; a third party, the
//! *committer* (the control plane), publishes the result. Two parties could end a
//! paused handoff: the committer (commit: the taker serves the slots) and the holder
//! (abort: it stops pausing and keeps serving them, because its pause must be bounded).
//! If each decided on its own, both nodes could acknowledge writes for the same slots:
//! a commit's delivery to the holder is not bounded in time, so a timer alone cannot end
//! the pause safely. The decision is therefore taken in one place that both reach: a
//! [`Cell`] kept by the taker.
//!
//! ```text
//! Preparing --ready()--> Ready --promise()--> Promised   (final)
//!     \                    \
//!      `------abort()-------`--------------> Aborted    (final)
//! ```
//!
//! - The committer commits only after it obtained the taker's promise
//!   ([`Cell::promise`], possible only from `Ready`).
//! - The holder, once its pause timed out, asks the taker to abort ([`Cell::abort`]);
//!   only if the taker agreed ([`Answer::Aborted`]) may it end the pause on its own.
//!   Any other answer, or none, means the committer may have committed: the pause goes
//!   on until the committer's decision arrives. [`ask_until_aborted`] is that side.
//! - `Promised` and `Aborted` exclude each other: whichever comes first wins, forever.
//!   A taker that agreed to abort refuses the commit (it discarded what it took over).
//!
//! The pause can thus outlast an outage of the committer only in the window between the
//! taker's promise and the committer's durable commit (milliseconds).
//!
//! Users: live slot migration (taker: the migration's target, holder: its source; see
//! `crate::migration`). A manual failover's write pause has the same shape but keeps its
//! decision at the control plane (`control-plane/src/handover.rs`; ARCHITECTURE
//! "Failover" says why).

use std::future::Future;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

/// Where a handoff's decision stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The taker is still taking over (e.g. importing the slots).
    Preparing,
    /// The taker has everything it needs; nothing is decided yet.
    Ready,
    /// The taker promised to take over: the committer may commit. Final.
    Promised,
    /// The taker agreed to abort: it discarded what it took and refuses the commit. Final.
    Aborted,
}

/// Why [`Cell::promise`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PromiseError {
    #[error("the taker is not ready yet")]
    NotReady,
    #[error("the handoff was aborted")]
    Aborted,
}

/// [`Cell::abort`] refused: the taker already promised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the taker already promised to take over")]
pub struct AlreadyPromised;

/// [`Cell::ready`] refused: the handoff was aborted meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the handoff was aborted")]
pub struct Aborted;

/// The decision of one handoff, kept by its taker. Every transition is one step under
/// one lock, so concurrent `promise` and `abort` calls are decided in the order they
/// take it: exactly one of them wins.
#[derive(Debug)]
pub struct Cell {
    phase: Mutex<Phase>,
}

impl Default for Cell {
    fn default() -> Self {
        Self::new()
    }
}

impl Cell {
    pub fn new() -> Self {
        Self {
            phase: Mutex::new(Phase::Preparing),
        }
    }

    pub fn phase(&self) -> Phase {
        *self.phase.lock()
    }

    /// The taker has everything: `Preparing -> Ready` (no-op if ready or promised).
    pub fn ready(&self) -> Result<(), Aborted> {
        let mut p = self.phase.lock();
        match *p {
            Phase::Preparing => {
                *p = Phase::Ready;
                Ok(())
            }
            Phase::Ready | Phase::Promised => Ok(()),
            Phase::Aborted => Err(Aborted),
        }
    }

    /// The committer asks for the promise: `Ready -> Promised` (idempotent).
    pub fn promise(&self) -> Result<(), PromiseError> {
        let mut p = self.phase.lock();
        match *p {
            Phase::Ready | Phase::Promised => {
                *p = Phase::Promised;
                Ok(())
            }
            Phase::Preparing => Err(PromiseError::NotReady),
            Phase::Aborted => Err(PromiseError::Aborted),
        }
    }

    /// The holder asks to abort: anything but `Promised` becomes `Aborted` (idempotent);
    /// `Ok(true)` if this call aborted it. A taker that must discard what it took over
    /// atomically with the abort (so that nothing is taken over after it) calls this
    /// under its own lock, the one it also holds while taking over and checking
    /// [`Cell::phase`]; that lock is always taken before the cell's.
    pub fn abort(&self) -> Result<bool, AlreadyPromised> {
        let mut p = self.phase.lock();
        match *p {
            Phase::Promised => Err(AlreadyPromised),
            Phase::Aborted => Ok(false),
            Phase::Preparing | Phase::Ready => {
                *p = Phase::Aborted;
                Ok(true)
            }
        }
    }
}

/// What the taker answered when the holder asked it to abort.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// It agreed: the holder may end its pause and keep serving.
    Aborted,
    /// It promised already: the committer may have committed; keep pausing.
    Promised,
    /// It knows nothing of this handoff (restarted?); keep pausing.
    Unknown,
    /// No answer (unreachable, timed out); keep pausing.
    Unreachable,
}

/// The holder's side of a bounded pause: waits until `deadline`, then asks the taker to
/// abort, again every `reask` while it answers [`Answer::Unknown`] or nothing, and
/// returns once it agreed ([`Answer::Aborted`]): the caller then ends the pause itself.
/// After [`Answer::Promised`] (final) it never returns: only the committer's decision
/// can end the pause, and the caller drops this future when that decision arrives.
pub async fn ask_until_aborted<F, Fut>(deadline: Instant, reask: Duration, mut ask: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Answer>,
{
    tokio::time::sleep_until(deadline).await;
    loop {
        match ask().await {
            Answer::Aborted => return,
            Answer::Promised => return std::future::pending().await,
            Answer::Unknown | Answer::Unreachable => tokio::time::sleep(reask).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Barrier};

    use super::*;

    #[test]
    fn promised_and_aborted_exclude_each_other() {
        let c = Cell::new();
        assert_eq!(c.promise(), Err(PromiseError::NotReady));
        c.ready().unwrap();
        c.promise().unwrap();
        c.promise().unwrap();
        assert_eq!(c.abort(), Err(AlreadyPromised));
        assert_eq!(c.phase(), Phase::Promised);
        c.ready().unwrap();
        assert_eq!(c.phase(), Phase::Promised, "ready never undoes a promise");

        let c = Cell::new();
        c.ready().unwrap();
        assert_eq!(c.abort(), Ok(true));
        assert_eq!(c.promise(), Err(PromiseError::Aborted));
        assert_eq!(c.ready(), Err(Aborted));
        assert_eq!(c.phase(), Phase::Aborted);
    }

    #[test]
    fn an_abort_before_ready_is_final() {
        let c = Cell::new();
        c.abort().unwrap();
        assert_eq!(c.ready(), Err(Aborted));
        assert_eq!(c.promise(), Err(PromiseError::Aborted));
    }

    #[test]
    fn only_the_first_abort_reports_that_it_aborted() {
        let c = Cell::new();
        assert_eq!(c.abort(), Ok(true));
        assert_eq!(c.abort(), Ok(false));
    }

    /// Two threads race `promise` and `abort` on a ready cell, many times: exactly one
    /// wins each race, and the cell's final phase names the winner.
    #[test]
    fn concurrent_promise_and_abort_have_exactly_one_winner() {
        let (mut promised, mut aborted) = (0, 0);
        for _ in 0..2000 {
            let c = Arc::new(Cell::new());
            c.ready().unwrap();
            let start = Arc::new(Barrier::new(2));
            let promiser = {
                let (c, start) = (c.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    c.promise().is_ok()
                })
            };
            let aborter = {
                let (c, start) = (c.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    c.abort() == Ok(true)
                })
            };
            let p = promiser.join().unwrap();
            let a = aborter.join().unwrap();
            assert!(p ^ a, "exactly one must win: promise {p}, abort {a}");
            let phase = c.phase();
            assert_eq!(
                phase,
                if p { Phase::Promised } else { Phase::Aborted },
                "the phase names the winner"
            );
            if p {
                promised += 1;
            } else {
                aborted += 1;
            }
        }
        // Which side wins is up to the scheduler; every race had exactly one winner.
        eprintln!("promise won {promised} races, abort won {aborted}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_holder_asks_after_the_deadline_and_stops_at_aborted() {
        let asked = Arc::new(AtomicUsize::new(0));
        let start = Instant::now();
        let answers = [Answer::Unreachable, Answer::Unknown, Answer::Aborted];
        let a = asked.clone();
        ask_until_aborted(
            start + Duration::from_millis(800),
            Duration::from_millis(100),
            move || {
                let n = a.fetch_add(1, Ordering::SeqCst);
                async move { answers[n] }
            },
        )
        .await;
        assert_eq!(asked.load(Ordering::SeqCst), 3);
        assert_eq!(start.elapsed(), Duration::from_millis(1000));
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_promise_only_the_committer_ends_the_pause() {
        let asked = Arc::new(AtomicUsize::new(0));
        let a = asked.clone();
        let hold = ask_until_aborted(Instant::now(), Duration::from_millis(10), move || {
            a.fetch_add(1, Ordering::SeqCst);
            async { Answer::Promised }
        });
        let waited = tokio::time::timeout(Duration::from_secs(3600), hold).await;
        assert!(waited.is_err(), "a promised handoff never ends by a timer");
        assert_eq!(
            asked.load(Ordering::SeqCst),
            1,
            "a promise is final: asked once"
        );
    }
}
