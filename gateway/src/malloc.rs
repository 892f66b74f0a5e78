//! glibc's allocator, told to give large blocks back.
//!
//! By default glibc raises its mmap threshold to the size of any large block freed (up to
//! 32 MiB), so after the first Argon2 hash every later one's 19 MiB comes from a heap arena,
//! and is kept there once freed: 1,000 sign-ups left Roost at 476 MiB (323 MiB with only two
//! hashing threads: arenas fragment, so each held several). A fixed threshold turns that off: a block
//! of 1 MiB or more is always its own mapping, returned when freed (1,000 sign-ups: 21 MiB
//! after, 60 MiB at the peak), for the cost of mapping it afresh (a few ms a hash). Smaller
//! blocks, which is nearly everything else Roost allocates, are unaffected.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Large blocks are mapped and unmapped on their own from this size on.
const MMAP_THRESHOLD: i32 = 1024 * 1024;

/// Call once, early in `main`, before other threads start.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; no thread allocates yet.
    unsafe {
        if libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) != 1 {
            eprintln!("roost: could not set the allocator's mmap threshold; memory may stay high after sign-ups");
        }
    }
}

/// Something sizeable was freed (a user's link, its replay buffer and socket buffers).
static FREED: AtomicBool = AtomicBool::new(false);

/// Notes that memory worth giving back was freed; the next [`give_back_freed_memory`] round
/// returns it to the system.
pub fn freed() {
    FREED.store(true, Ordering::Relaxed);
}

/// glibc returns a freed block to the system only from the top of its heaps; the rest stays
/// mapped, so after 1,000 users left, Roost kept 280 MiB it no longer used. `malloc_trim`
/// gives back every free page; it runs at most every 10 s, and only after [`freed`].
pub async fn give_back_freed_memory() {
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    loop {
        tick.tick().await;
        if FREED.swap(false, Ordering::Relaxed) {
            let _ = tokio::task::spawn_blocking(trim).await;
        }
    }
}

fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}
