//! An optional counting wrapper for the global allocator, so `INFO memory` can report
//! `used_memory` as Redis does (bytes allocated by the process).
//!
//! `main` installs it, e.g.
//! `#[global_allocator] static A: ember_data_node::alloc::Counting<std::alloc::System> = Counting::new(System);`
//! Without it, `used_memory` falls back to the resident set size.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicUsize, Ordering};

static ALLOCATED: AtomicUsize = AtomicUsize::new(0);

/// Bytes currently allocated through [`Counting`] (0 if it is not installed).
pub fn allocated() -> usize {
    ALLOCATED.load(Ordering::Relaxed)
}

/// Wraps an allocator and counts the bytes it has outstanding.
pub struct Counting<A>(A);

impl<A> Counting<A> {
    pub const fn new(a: A) -> Self {
        Counting(a)
    }
}

// SAFETY: every method forwards to the wrapped allocator unchanged; the counter is
// only bookkeeping.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Counting<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = self.0.alloc(layout);
        if !p.is_null() {
            ALLOCATED.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        ALLOCATED.fetch_sub(layout.size(), Ordering::Relaxed);
        self.0.dealloc(ptr, layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = self.0.alloc_zeroed(layout);
        if !p.is_null() {
            ALLOCATED.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = self.0.realloc(ptr, layout, new_size);
        if !p.is_null() {
            ALLOCATED.fetch_sub(layout.size(), Ordering::Relaxed);
            ALLOCATED.fetch_add(new_size, Ordering::Relaxed);
        }
        p
    }
}
