//! One cell: `conns` connections, each running a case's op in a request/response loop
//! for a fixed time, against one server; the result is ops per second, or the first
//! error any connection met (a cell with an error has no number).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::cases::{Case, Env};
use super::resp::Conn;

/// What a cell measured.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Ops per second over all connections.
    Rps(f64),
    /// The first failure (an error reply, a reply of the wrong shape, a lost connection).
    Error(String),
}

impl Outcome {
    /// The mean rate of runs of equal length; the first error if any failed.
    pub fn mean(runs: &[Outcome]) -> Outcome {
        let mut sum = 0.0;
        for o in runs {
            match o {
                Outcome::Rps(r) => sum += r,
                Outcome::Error(_) => return o.clone(),
            }
        }
        Outcome::Rps(sum / runs.len().max(1) as f64)
    }

    pub fn rps(&self) -> Option<f64> {
        match self {
            Outcome::Rps(r) => Some(*r),
            Outcome::Error(_) => None,
        }
    }
}

/// Runs `case` on `conns` connections to `port` for `duration`. Each connection has its
/// own rng seeded from `seed` and its index, so both servers see the same requests.
pub fn cell(
    port: u16,
    case: &Case,
    env: &Env,
    conns: usize,
    duration: Duration,
    seed: u64,
) -> Outcome {
    let mut clients = Vec::with_capacity(conns);
    for _ in 0..conns {
        match Conn::connect(port) {
            Ok(c) => clients.push(c),
            Err(e) => return Outcome::Error(format!("{e:#}")),
        }
    }
    let ops = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let first_error: Mutex<Option<String>> = Mutex::new(None);
    let barrier = Barrier::new(conns + 1);
    let mut began = Instant::now();
    let ended = std::thread::scope(|s| {
        let handles: Vec<_> = clients
            .into_iter()
            .enumerate()
            .map(|(t, mut c)| {
                let (ops, stop, first_error, barrier) = (&ops, &stop, &first_error, &barrier);
                s.spawn(move || {
                    let mut rng =
                        StdRng::seed_from_u64(seed.wrapping_mul(1_000_003).wrapping_add(t as u64));
                    barrier.wait();
                    let deadline = Instant::now() + duration;
                    let mut done = 0u64;
                    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                        if let Err(e) = (case.op)(&mut c, &mut rng, env) {
                            stop.store(true, Ordering::Relaxed);
                            first_error.lock().unwrap().get_or_insert(format!("{e:#}"));
                            break;
                        }
                        done += 1;
                    }
                    ops.fetch_add(done, Ordering::Relaxed);
                    Instant::now()
                })
            })
            .collect();
        barrier.wait();
        began = Instant::now();
        handles
            .into_iter()
            .map(|h| h.join().expect("client thread panicked"))
            .max()
            .unwrap_or_else(Instant::now)
    });
    if let Some(e) = first_error.into_inner().unwrap() {
        return Outcome::Error(e);
    }
    let secs = ended.duration_since(began).as_secs_f64();
    Outcome::Rps(ops.into_inner() as f64 / secs)
}

/// The (ember, redis) round whose ratio is the median; the first round with an error if
/// any failed.
pub fn median_round(mut rounds: Vec<(Outcome, Outcome)>) -> (Outcome, Outcome) {
    let ratio = |(e, r): &(Outcome, Outcome)| Some(e.rps()? / r.rps()?);
    if let Some(failed) = rounds.iter().position(|round| ratio(round).is_none()) {
        return rounds.swap_remove(failed);
    }
    rounds.sort_by(|a, b| ratio(a).partial_cmp(&ratio(b)).expect("rates are finite"));
    let mid = rounds.len() / 2;
    rounds.swap_remove(mid)
}
