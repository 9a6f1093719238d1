//! A counting wrapper for the global allocator, so `INFO memory` can report
//! `used_memory` as Redis does: the bytes the process has allocated (Redis asks its
//! allocator; mimalloc keeps no such total in release builds, so ember counts).
//!
//! `main` installs it around mimalloc:
//! `#[global_allocator] static A: Counting<mimalloc::MiMalloc> = Counting::new(MiMalloc);`
//! Without it (tests, tools), `used_memory` falls back to the resident set size.
//!
//! The count is split over cache-line-sized shards: each of the first threads to
//! allocate owns one, which only it writes (a plain load and store, no atomic
//! read-modify-write: the allocator is called for every allocation, Lua's included),
//! and the threads after them share shard 0. A shard may go negative (memory freed by
//! another thread than the one that allocated it), the sum never does.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};

const SHARDS: usize = 64;

/// A thread's count, and what of it [`APPROXIMATE`] has (`published`, written by the
/// owner only).
#[repr(align(128))]
struct Shard(AtomicIsize, AtomicIsize);

static COUNTS: [Shard; SHARDS] =
    [const { Shard(AtomicIsize::new(0), AtomicIsize::new(0)) }; SHARDS];

/// Most an owned shard drifts from what it published to [`APPROXIMATE`].
const DRIFT: isize = 16 * 1024;

/// The sum of what the shards published: within [`approximation`] of [`allocated`],
/// and one load to read (what `maxmemory` is checked against before every command).
static APPROXIMATE: AtomicIsize = AtomicIsize::new(0);

/// Most [`approximate`] can be off by: the drift of every shard in use.
pub fn approximation() -> u64 {
    shards_in_use() as u64 * DRIFT as u64
}

/// The next shard to hand a thread (shard 0 is everyone's).
static NEXT_SHARD: AtomicUsize = AtomicUsize::new(1);

fn shards_in_use() -> usize {
    NEXT_SHARD.load(Ordering::Relaxed).min(SHARDS)
}

thread_local! {
    // `const` and without a destructor: usable from inside the allocator.
    static MY_SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// Adds `n` to this thread's shard.
fn count(n: isize) {
    let i = MY_SHARD
        .try_with(|c| {
            let mut i = c.get();
            if i == usize::MAX {
                i = NEXT_SHARD.fetch_add(1, Ordering::Relaxed);
                if i >= SHARDS {
                    i = 0;
                }
                c.set(i);
            }
            i
        })
        .unwrap_or(0);
    let Shard(shard, published) = &COUNTS[i];
    match i {
        0 => {
            shard.fetch_add(n, Ordering::Relaxed);
            APPROXIMATE.fetch_add(n, Ordering::Relaxed);
        }
        // Owned: no other thread writes it.
        _ => {
            let now = shard.load(Ordering::Relaxed) + n;
            shard.store(now, Ordering::Relaxed);
            let drift = now - published.load(Ordering::Relaxed);
            if drift.abs() >= DRIFT {
                published.store(now, Ordering::Relaxed);
                APPROXIMATE.fetch_add(drift, Ordering::Relaxed);
            }
        }
    }
}

/// [`allocated`], give or take [`approximation`] bytes, for one load.
pub fn approximate() -> usize {
    APPROXIMATE.load(Ordering::Relaxed).max(0) as usize
}

/// Bytes currently allocated through [`Counting`] (0 if it is not installed).
pub fn allocated() -> usize {
    let total: isize = COUNTS[..shards_in_use()]
        .iter()
        .map(|s| s.0.load(Ordering::Relaxed))
        .sum();
    total.max(0) as usize
}

/// What an allocator really takes for a request: its size class (the count is then
/// the allocator's figure, which `maxmemory` bounds, not the bytes asked for).
pub trait SizeClasses {
    fn good_size(&self, size: usize) -> usize {
        size
    }
}

impl SizeClasses for mimalloc::MiMalloc {
    fn good_size(&self, size: usize) -> usize {
        // SAFETY: a pure function of `size`.
        unsafe { libmimalloc_sys::mi_good_size(size) }
    }
}

impl SizeClasses for std::alloc::System {}

/// mimalloc's options that keep memory close to what is allocated (called first thing
/// in `main`): freed pages go back to the OS after 10 ms, not mimalloc 3's 1 s (the
/// `no_thp` build feature does the rest: without it, transparent huge pages cost ~15
/// MB of resident set at start and more under eviction). Under `maxmemory` with mixed
/// value sizes the resident set then grows by about 1.17x the limit, Redis's by 1.3x
/// (bench/RESULTS.md). `MIMALLOC_PURGE_DELAY` in the environment wins.
pub fn tune_mimalloc() {
    // mimalloc's `mi_option_purge_delay` (the same in its v2 and v3).
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets a process-wide option; mimalloc reads options atomically.
        unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, 10) };
    }
}

/// Wraps an allocator and counts the bytes it has outstanding (their size classes).
pub struct Counting<A>(A);

impl<A> Counting<A> {
    pub const fn new(a: A) -> Self {
        Counting(a)
    }
}

// SAFETY: every method forwards to the wrapped allocator unchanged; the counter is
// only bookkeeping.
unsafe impl<A: GlobalAlloc + SizeClasses> GlobalAlloc for Counting<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = self.0.alloc(layout);
        if !p.is_null() {
            count(self.0.good_size(layout.size()) as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(self.0.good_size(layout.size()) as isize));
        self.0.dealloc(ptr, layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = self.0.alloc_zeroed(layout);
        if !p.is_null() {
            count(self.0.good_size(layout.size()) as isize);
        }
        p
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = self.0.realloc(ptr, layout, new_size);
        if !p.is_null() {
            let (old, new) = (self.0.good_size(layout.size()), self.0.good_size(new_size));
            count(new as isize - old as isize);
        }
        p
    }
}
