//! glibc's allocator, told to give large blocks back.
//!
//! By default glibc raises its mmap threshold to the size of any large block freed (up to
//! 32 MiB), so after the first Argon2 hash every later one's 19 MiB comes from a heap arena,
//! and is kept there once freed: 1,000 sign-ups left Roost at 476 MiB even with two hashing
//! threads (arenas fragment, so each held several). A fixed threshold turns that off: a block
//! of 1 MiB or more is always its own mapping, returned when freed (1,000 sign-ups: 21 MiB
//! after, 60 MiB at the peak), for the cost of mapping it afresh (a few ms a hash). Smaller
//! blocks, which is nearly everything else Roost allocates, are unaffected.

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
