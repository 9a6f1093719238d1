//! Read and write buffers that idle connections do not hold.
//!
//! A connection takes a buffer from its thread's pool when it has something to read or
//! to write and gives it back once the buffer is empty again (all input parsed, all
//! replies written), so an idle connection holds neither. Each pool keeps at most
//! [`POOL_MAX`] buffers of at most [`KEEP_MAX`] bytes: a big buffer (one grown for a
//! large request or reply) is freed rather than kept.

use std::cell::RefCell;

use bytes::BytesMut;

/// Capacity of a new buffer, and how much room a read asks for.
pub const CHUNK: usize = 16 * 1024;
/// Buffers larger than this are freed instead of pooled.
pub const KEEP_MAX: usize = 64 * 1024;
/// Buffers each pool of a thread keeps.
pub const POOL_MAX: usize = 64;

thread_local! {
    static READS: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
    static WRITES: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// An empty read buffer with room for at least [`CHUNK`] bytes.
pub fn take_read() -> BytesMut {
    READS
        .with(|p| p.borrow_mut().pop())
        .unwrap_or_else(|| BytesMut::with_capacity(CHUNK))
}

/// Returns an emptied read buffer to the pool (or frees it).
///
/// Arguments of parsed commands are slices of the buffer; the space is only reused once
/// none of them is alive (a queued `MULTI` keeps its arguments), else it is freed.
pub fn give_read(mut buf: BytesMut) {
    debug_assert!(buf.is_empty());
    buf.clear();
    if !buf.try_reclaim(CHUNK) || buf.capacity() > KEEP_MAX {
        return;
    }
    READS.with(|p| {
        let mut p = p.borrow_mut();
        if p.len() < POOL_MAX {
            p.push(buf);
        }
    });
}

/// An empty write buffer with room for at least [`CHUNK`] bytes.
pub fn take_write() -> Vec<u8> {
    WRITES
        .with(|p| p.borrow_mut().pop())
        .unwrap_or_else(|| Vec::with_capacity(CHUNK))
}

/// Returns a write buffer to the pool (or frees it).
pub fn give_write(mut buf: Vec<u8>) {
    buf.clear();
    if buf.capacity() < CHUNK || buf.capacity() > KEEP_MAX {
        return;
    }
    WRITES.with(|p| {
        let mut p = p.borrow_mut();
        if p.len() < POOL_MAX {
            p.push(buf);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_on_the_same_thread() {
        let mut b = take_read();
        b.extend_from_slice(b"PING\r\n");
        let ptr = b.as_ptr();
        let _ = b.split_to(b.len());
        give_read(b);
        let again = take_read();
        assert_eq!(again.as_ptr(), ptr, "the same allocation, reclaimed");
        assert!(again.is_empty() && again.capacity() >= CHUNK);

        let w = take_write();
        let ptr = w.as_ptr();
        give_write(w);
        let again = take_write();
        assert_eq!(again.as_ptr(), ptr);
    }

    #[test]
    fn big_or_shared_buffers_are_not_kept() {
        let mut big = Vec::with_capacity(KEEP_MAX * 2);
        big.push(1u8);
        give_write(big);
        assert!(take_write().capacity() <= KEEP_MAX);

        let mut b = take_read();
        b.extend_from_slice(b"GET k\r\n");
        let kept = b.split_to(b.len()).freeze(); // a queued argument still points into it
        let ptr = kept.as_ptr();
        give_read(b);
        let fresh = take_read();
        assert_ne!(fresh.as_ptr(), ptr);
        drop(kept);
    }
}
