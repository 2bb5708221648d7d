//! Decompression bombs: a payload that decompresses to far more than it announces is refused
//! having allocated about what it announced, not what it would decompress to. Its own test
//! binary, because it counts every allocation of the process.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    sync::atomic::{AtomicUsize, Ordering},
};

use homcc_proto::{Compression, CompressionError};

/// The system allocator, counting the bytes allocated now and the most at once since a reset.
struct Counting;

static NOW: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = NOW.fetch_add(by, Ordering::SeqCst) + by;
    PEAK.fetch_max(now, Ordering::SeqCst);
}

// SAFETY: every call goes to `System` unchanged; only the counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        NOW.fetch_sub(layout.size(), Ordering::SeqCst);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        NOW.fetch_sub(layout.size(), Ordering::SeqCst);
        grew(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// The most bytes allocated at once while `run` ran, beyond what was allocated before it.
fn peak_during<T>(run: impl FnOnce() -> T) -> (T, usize) {
    let before = NOW.load(Ordering::SeqCst);
    PEAK.store(before, Ordering::SeqCst);
    let out = run();
    (out, PEAK.load(Ordering::SeqCst) - before)
}

#[test]
fn a_bomb_is_refused_within_the_announced_size() {
    let zeros = vec![0u8; 64 << 20];
    for c in [Compression::Lzo, Compression::Lzma, Compression::Zstd] {
        let (used, bomb) = c.compress(&zeros);
        assert_eq!(used, c, "{c} shrinks zeros");
        assert!(bomb.len() < 1 << 20, "{c}: a {} byte bomb", bomb.len());
        // Announced as 1 KiB, within a limit of 1 KiB.
        let (result, peak) = peak_during(|| c.decompress(&bomb, 1024, 1024));
        assert!(
            matches!(
                result,
                Err(CompressionError::SizeMismatch { .. } | CompressionError::Corrupt { .. })
            ),
            "{c}: {result:?}"
        );
        assert!(
            peak < 256 << 10,
            "{c}: {peak} bytes allocated for a 1 KiB announcement"
        );
        // Announced whole: the same bytes decompress (the bound is the announcement's).
        let size = zeros.len() as u64;
        assert_eq!(c.decompress(&bomb, size, size).unwrap(), zeros, "{c}");
    }
}
