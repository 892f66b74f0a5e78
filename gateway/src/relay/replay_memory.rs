//! One memory budget for every user's replay buffer (`--replay-memory-limit-mib`).
//!
//! Each buffer caps itself (512 events, 1 MiB), but 1,000 users streaming at once would still
//! hold up to 1 GB. Every buffer counts its bytes here; once the total passes the limit, the
//! oldest events across all users go first (usually those of users who left and have not come
//! back), until the total is an eighth below the limit, so one pass covers many events. A user
//! whose events went gets `roost.gap` on resume, as for the per-user cap, and refetches history.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use super::replay::ReplayBuffer;

pub struct ReplayMemory {
    limit: usize,
    used: AtomicUsize,
    /// Orders events across buffers: each event takes the next stamp.
    clock: AtomicU64,
    buffers: Mutex<Vec<Weak<Mutex<ReplayBuffer>>>>,
    /// Buffers alive (their `Drop` counts down), so dead entries are swept before they pile up.
    live: AtomicUsize,
    /// One pass at a time; a push that finds one under way leaves the work to it.
    trimming: Mutex<()>,
}

impl ReplayMemory {
    pub fn new(limit_bytes: usize) -> Arc<Self> {
        Arc::new(Self {
            limit: limit_bytes.max(1),
            used: AtomicUsize::new(0),
            clock: AtomicU64::new(0),
            buffers: Mutex::new(Vec::new()),
            live: AtomicUsize::new(0),
            trimming: Mutex::new(()),
        })
    }

    /// A new, empty buffer counted against this budget.
    pub fn buffer(self: &Arc<Self>) -> Arc<Mutex<ReplayBuffer>> {
        let buffer = Arc::new(Mutex::new(ReplayBuffer::new(self.clone())));
        let live = self.live.fetch_add(1, Ordering::Relaxed) + 1;
        let mut buffers = self.buffers.lock().expect("replay registry lock");
        if buffers.len() >= 2 * live + 16 {
            buffers.retain(|b| b.strong_count() > 0);
        }
        buffers.push(Arc::downgrade(&buffer));
        buffer
    }

    /// Bytes held by every buffer together.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    pub(super) fn stamp(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::Relaxed)
    }

    pub(super) fn add(&self, bytes: usize) {
        self.used.fetch_add(bytes, Ordering::Relaxed);
    }

    /// True when the buffers together hold more than the limit: time for [`Self::trim`], once
    /// the caller has let go of its buffer's lock.
    pub(super) fn over_limit(&self) -> bool {
        self.used() > self.limit
    }

    pub(super) fn release(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::Relaxed);
    }

    pub(super) fn buffer_dropped(&self) {
        self.live.fetch_sub(1, Ordering::Relaxed);
    }

    /// Drops the oldest events across every buffer until the total is an eighth under the
    /// limit. Takes each buffer's lock in turn, so the caller must hold none of them.
    pub fn trim(&self) {
        let Ok(_pass) = self.trimming.try_lock() else { return };
        let target = self.limit - self.limit / 8;
        if !self.over_limit() {
            return;
        }
        let buffers: Vec<Arc<Mutex<ReplayBuffer>>> = {
            let mut registry = self.buffers.lock().expect("replay registry lock");
            registry.retain(|b| b.strong_count() > 0);
            registry.iter().filter_map(Weak::upgrade).collect()
        };
        // The buffers ordered by their oldest event; after each drop, the buffer goes back in
        // by its new oldest, so events leave in age order across all users.
        let mut oldest: BinaryHeap<Reverse<(u64, usize)>> = buffers
            .iter()
            .enumerate()
            .filter_map(|(i, b)| Some(Reverse((b.lock().expect("replay lock").oldest_stamp()?, i))))
            .collect();
        while self.used() > target {
            let Some(Reverse((stamp, i))) = oldest.pop() else { break };
            let mut buffer = buffers[i].lock().expect("replay lock");
            // Its owner may have pushed or trimmed since the heap was built: go by what is there.
            match buffer.oldest_stamp() {
                Some(now) if now == stamp => {
                    buffer.drop_oldest();
                    if let Some(next) = buffer.oldest_stamp() {
                        oldest.push(Reverse((next, i)));
                    }
                }
                Some(now) => oldest.push(Reverse((now, i))),
                None => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::replay::{Cursor, Resume};

    fn push(buffer: &Mutex<ReplayBuffer>, text: &str) -> bool {
        let mut b = buffer.lock().unwrap();
        let seq = b.next_seq();
        b.push(seq, text.to_string().into())
    }

    fn resume(buffer: &Mutex<ReplayBuffer>, seq: u64) -> Resume {
        let b = buffer.lock().unwrap();
        b.resume_after(&Cursor::parse(&format!("{}:{seq}", b.epoch())).unwrap())
    }

    #[test]
    fn over_the_budget_the_oldest_events_of_any_user_go_first() {
        let memory = ReplayMemory::new(1000);
        let (quiet, busy) = (memory.buffer(), memory.buffer());
        for _ in 0..4 {
            assert!(!push(&quiet, &"q".repeat(100)));
        }
        for _ in 0..6 {
            assert!(!push(&busy, &"b".repeat(100)));
        }
        assert_eq!(memory.used(), 1000);
        assert!(push(&busy, &"b".repeat(100)), "1,100 bytes is over the limit");
        memory.trim();
        assert!(memory.used() <= 1000 - 1000 / 8, "{} bytes left", memory.used());
        // The quiet user's events were the oldest: all but one went, and nothing of the busy one's.
        assert!(matches!(resume(&quiet, 0), Resume::Gap { last_seq: 4 }), "the quiet user sees a gap");
        assert!(matches!(resume(&quiet, 3), Resume::Replay(f) if f.len() == 1));
        assert!(matches!(resume(&busy, 0), Resume::Replay(f) if f.len() == 7), "the busy user lost nothing");
    }

    #[test]
    fn a_buffer_gives_its_bytes_back_when_dropped_and_the_registry_is_swept() {
        let memory = ReplayMemory::new(1 << 20);
        for _ in 0..100 {
            let buffer = memory.buffer();
            push(&buffer, "some event");
        }
        assert_eq!(memory.used(), 0);
        // At most twice the live buffers (one here) plus 16 before a sweep.
        assert!(memory.buffers.lock().unwrap().len() <= 18, "dead entries are swept");
        let kept = memory.buffer();
        push(&kept, "12345");
        assert_eq!(memory.used(), 5);
    }
}
