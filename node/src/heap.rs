//! Live heap bytes: a counting wrapper around a global allocator.
//!
//! A node's resident memory (RSS) is its live heap plus what the allocator keeps mapped
//! for reuse (free pages not yet returned, fragmentation), plus RocksDB's C++ heap and the
//! binary. RSS alone cannot tell a structure that grows (a leak, an unbounded map) from an
//! allocator that holds on to freed memory. [`Counting`] keeps the live Rust heap in one
//! counter, so the two can be told apart: with the profiling feature `heap-stats`,
//! `cairn-node` installs `Counting<MiMalloc>` (or `Counting<System>` with
//! `system-allocator`) as its global allocator and `GET /metrics` reports the counter as
//! `cairn_heap_allocated_bytes` (docs/operations.md, "Memory").
//!
//! What is counted: every allocation made through Rust's global allocator (the requested
//! sizes, not the allocator's size classes or metadata). What is not: RocksDB's C++ heap,
//! which calls `malloc` directly.
//!
//! Cost: one relaxed atomic add per allocation and per free, shared by every thread, which
//! is why it is a profiling feature and off by default.
//!
//! This module also owns the process's transparent-huge-page policy
//! ([`disable_transparent_huge_pages`]): mimalloc advises the kernel to back its arena with
//! 2 MiB pages, and a node's resident memory then grows with the span of addresses it has
//! touched rather than with its live heap (docs/scaling.md, "Run time", session 23).

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes allocated and not yet freed through every [`Counting`] allocator in the process.
static ALLOCATED_BYTES: AtomicUsize = AtomicUsize::new(0);

/// A global allocator that forwards to `A` and counts the bytes live through it
/// ([`allocated_bytes`]). Sizes are the layouts' sizes as requested.
pub struct Counting<A>(pub A);

/// Bytes allocated through [`Counting`] and not yet freed: the live Rust heap when a
/// `Counting` allocator is the global one (feature `heap-stats`), else zero.
pub fn allocated_bytes() -> usize {
    ALLOCATED_BYTES.load(Ordering::Relaxed)
}

// SAFETY: every method forwards to `A` with the caller's arguments unchanged and returns
// `A`'s result, so `A`'s guarantees carry over; the counter is bookkeeping only.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Counting<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc` is `A::alloc`'s.
        let p = unsafe { self.0.alloc(layout) };
        if !p.is_null() {
            ALLOCATED_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { self.0.alloc_zeroed(layout) };
        if !p.is_null() {
            ALLOCATED_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator (so from `A`) with `layout`.
        unsafe { self.0.dealloc(ptr, layout) };
        ALLOCATED_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc`, and `new_size` is the caller's.
        let p = unsafe { self.0.realloc(ptr, layout, new_size) };
        // On failure the old block stays allocated at its old size: nothing changes.
        if !p.is_null() {
            if new_size >= layout.size() {
                ALLOCATED_BYTES.fetch_add(new_size - layout.size(), Ordering::Relaxed);
            } else {
                ALLOCATED_BYTES.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

/// What [`disable_transparent_huge_pages`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HugePages {
    /// Transparent huge pages are now off for this process (`prctl(PR_SET_THP_DISABLE)`).
    Disabled,
    /// Left as they were: the operator set `MIMALLOC_ALLOW_THP` (mimalloc's own switch, read
    /// at its start: `0` turns them off, `1` leaves them on).
    LeftToEnvironment,
    /// Not Linux: nothing to do.
    Unsupported,
}

/// Turns transparent huge pages off for this process (Linux `prctl(PR_SET_THP_DISABLE, 1)`,
/// inherited by threads and children), unless `MIMALLOC_ALLOW_THP` is set. Call it first in
/// `main`, before the runtime's threads start allocating.
///
/// Why: mimalloc 3 advises its 1 GiB arena with `MADV_HUGEPAGE`, so on kernels whose THP
/// mode is `madvise` (Debian's default) or `always`, each first touch of a 2 MiB-aligned range
/// of the arena faults in a whole 2 MiB page, and mimalloc's purges of freed 64 KiB spans do
/// not give it back. Measured in a 60-minute soak (docs/scaling.md, "Run time", session 23):
/// the node with huge pages held about 44 MiB more resident memory for the same live heap than
/// the one without, and used no less CPU.
///
/// Errors: the `prctl` call's (`EINVAL` on kernels before 3.15).
pub fn disable_transparent_huge_pages() -> std::io::Result<HugePages> {
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_some() {
        return Ok(HugePages::LeftToEnvironment);
    }
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_SET_THP_DISABLE takes integer arguments only and changes no memory; it
        // sets a flag on this process's address space.
        let rc = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(HugePages::Disabled)
    }
    #[cfg(not(target_os = "linux"))]
    Ok(HugePages::Unsupported)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::alloc::System;

    // The only test that uses a `Counting` allocator, and the test binary's global allocator
    // is not one: every change of the counter here is this test's.
    #[test]
    fn counts_live_bytes_through_alloc_realloc_and_free() {
        let a = Counting(System);
        let before = allocated_bytes();
        let layout = Layout::from_size_align(1000, 8).unwrap();
        // SAFETY: non-zero layout; each pointer is freed once, with its current layout.
        unsafe {
            let p = a.alloc(layout);
            assert!(!p.is_null());
            assert_eq!(allocated_bytes() - before, 1000);
            let z = a.alloc_zeroed(layout);
            assert!(!z.is_null());
            assert_eq!(*z.add(999), 0);
            assert_eq!(allocated_bytes() - before, 2000);
            let p = a.realloc(p, layout, 5000);
            assert!(!p.is_null());
            assert_eq!(allocated_bytes() - before, 6000);
            let p = a.realloc(p, Layout::from_size_align(5000, 8).unwrap(), 10);
            assert!(!p.is_null());
            assert_eq!(allocated_bytes() - before, 1010);
            a.dealloc(p, Layout::from_size_align(10, 8).unwrap());
            a.dealloc(z, layout);
        }
        assert_eq!(allocated_bytes(), before);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn huge_pages_are_turned_off_for_the_process() {
        if std::env::var_os("MIMALLOC_ALLOW_THP").is_some() {
            // The operator's choice wins; the function must leave it alone.
            assert_eq!(
                disable_transparent_huge_pages().unwrap(),
                HugePages::LeftToEnvironment
            );
            return;
        }
        assert_eq!(
            disable_transparent_huge_pages().unwrap(),
            HugePages::Disabled
        );
        // The kernel reports the flag since Linux 5.0 ("THP_enabled: 0").
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        if let Some(line) = status.lines().find(|l| l.starts_with("THP_enabled:")) {
            assert_eq!(line.split_whitespace().nth(1), Some("0"), "{line}");
        }
        // And the flag reads back through prctl on every kernel that accepted it.
        // SAFETY: PR_GET_THP_DISABLE takes no pointer arguments.
        let flag = unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) };
        assert_eq!(flag, 1);
    }
}
