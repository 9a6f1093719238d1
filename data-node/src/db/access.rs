//! What each key remembers of its use, for eviction: 32 bits per key, as Redis keeps
//! 24 in every object.
//!
//! - Under an LRU or any non-LFU policy: the [`clock`] (hundredths of a second, so
//!   that keys written and read within one second are told apart, where Redis's clock
//!   counts seconds; it wraps after 497 days) of the key's last access. `OBJECT
//!   IDLETIME` (in seconds) and the LRU policies read its age.
//! - Under an LFU policy (Redis's layout): the minutes clock of the last decrement in
//!   the high 16 bits, a logarithmic access counter (0-255, new keys at
//!   [`LFU_INIT`]) in the low 8. Each access decays the counter by one per
//!   `lfu-decay-time` minutes since, then increments it with probability
//!   `1 / ((counter - LFU_INIT) * lfu-log-factor + 1)`.
//!
//! Switching between the two reinterprets the bits, as in Redis ("LRU and LFU data
//! will take some time to adjust"). The settings live here, in atomics, because every
//! key access reads them (one keyspace per process).

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::LazyLock;
use std::time::Instant;

/// The counter of a new key under LFU (Redis's `LFU_INIT_VAL`).
pub const LFU_INIT: u32 = 5;

static LFU: AtomicBool = AtomicBool::new(false);
static LOG_FACTOR: AtomicU32 = AtomicU32::new(10);
static DECAY_MINUTES: AtomicU32 = AtomicU32::new(1);
static CLOCK: AtomicU32 = AtomicU32::new(0);
static STARTED: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Selects what keys remember (an LFU policy or not) and the LFU settings.
pub fn configure(lfu: bool, log_factor: u32, decay_minutes: u32) {
    LFU.store(lfu, Ordering::Relaxed);
    LOG_FACTOR.store(log_factor, Ordering::Relaxed);
    DECAY_MINUTES.store(decay_minutes, Ordering::Relaxed);
}

/// Whether an LFU policy is selected.
pub fn lfu() -> bool {
    LFU.load(Ordering::Relaxed)
}

/// Hundredths of a second since the process started, as of the last [`tick`] (a
/// cached clock, as Redis's `lruclock`: reading it costs one load).
pub fn clock() -> u32 {
    CLOCK.load(Ordering::Relaxed)
}

/// Advances [`clock`] (the server calls it every 10 ms).
pub fn tick() {
    CLOCK.store(
        (STARTED.elapsed().as_millis() / 10) as u32,
        Ordering::Relaxed,
    );
}

fn minutes() -> u32 {
    (clock() / 6000) & 0xffff
}

/// What a new key starts with.
pub fn fresh() -> u32 {
    match lfu() {
        true => (minutes() << 8) | LFU_INIT,
        false => clock(),
    }
}

/// The LFU counter of `bits`, decayed to now.
pub fn frequency(bits: u32) -> u32 {
    let counter = bits & 0xff;
    let decay = DECAY_MINUTES.load(Ordering::Relaxed);
    if decay == 0 {
        return counter;
    }
    let last = bits >> 8;
    let now = minutes();
    let elapsed = match now >= last {
        true => now - last,
        false => 65535 - last + now,
    };
    counter.saturating_sub(elapsed / decay)
}

/// Seconds since the access `bits` records (LRU).
pub fn idle_seconds(bits: u32) -> u32 {
    idle(bits) / 100
}

/// Hundredths of a second since the access `bits` records (LRU).
fn idle(bits: u32) -> u32 {
    clock().wrapping_sub(bits)
}

/// `bits` after one access.
pub fn touched(bits: u32) -> u32 {
    if !lfu() {
        return clock();
    }
    let mut counter = frequency(bits);
    if counter < 255 {
        let base = counter.saturating_sub(LFU_INIT) as f64;
        let p = 1.0 / (base * f64::from(LOG_FACTOR.load(Ordering::Relaxed)) + 1.0);
        if random_unit() < p {
            counter += 1;
        }
    }
    (minutes() << 8) | counter
}

/// A uniform draw in `[0, 1)` (xorshift, per thread: an access must not lock).
fn random_unit() -> f64 {
    thread_local! {
        static STATE: Cell<u64> = Cell::new(rand::random::<u64>() | 1);
    }
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        (x >> 11) as f64 / (1u64 << 53) as f64
    })
}

/// How good an eviction candidate a key with `bits` is under the current mode: higher
/// is better (longer idle, or less frequent).
pub fn badness(bits: u32) -> u64 {
    match lfu() {
        true => u64::from(255 - frequency(bits)),
        false => u64::from(idle(bits)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The counter grows logarithmically: a few thousand accesses reach the tens, not
    /// the hundreds (Redis's table: factor 10, 1K hits -> ~18, 100K -> ~142 ... ).
    #[test]
    fn lfu_counts_logarithmically() {
        let mut bits = LFU_INIT;
        LFU.store(true, Ordering::Relaxed);
        for _ in 0..1000 {
            bits = touched(bits);
        }
        LFU.store(false, Ordering::Relaxed);
        let c = bits & 0xff;
        assert!((10..40).contains(&c), "{c}");
    }
}
