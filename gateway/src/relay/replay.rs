//! The per-user event log that lets a reconnecting browser catch up (`?resume=<epoch>:<seq>`).
//! Numbers restart with each new buffer (a restart of Roost, or a link retired when idle), so
//! each buffer has a random epoch and a cursor from another epoch always gets a gap.

use std::collections::VecDeque;
use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;

use super::replay_memory::ReplayMemory;

// Enough for a long reply's deltas (each carries the cumulative text) without letting many
// active users hold much memory.
const MAX_EVENTS: usize = 512;
const MAX_BYTES: usize = 1024 * 1024;

pub struct ReplayBuffer {
    epoch: String,
    last_seq: u64,
    /// `(seq, stamp, frame)`: the stamp orders events across users for the global budget.
    events: VecDeque<(u64, u64, Utf8Bytes)>,
    bytes: usize,
    memory: Arc<ReplayMemory>,
}

pub enum Resume {
    /// Everything after the client's seq, in order (possibly nothing).
    Replay(Vec<Utf8Bytes>),
    /// Some events are gone; the client must refetch history.
    Gap { last_seq: u64 },
}

/// Where a browser got to: `<epoch>:<seq>`. A bare `<seq>` (the old form) has no epoch, so it
/// matches none.
#[derive(Debug, PartialEq, Eq)]
pub struct Cursor {
    epoch: String,
    seq: u64,
}

impl Cursor {
    /// `None` when the text is neither `<epoch>:<seq>` nor a bare `<seq>`.
    pub fn parse(raw: &str) -> Option<Self> {
        let (epoch, seq) = raw.split_once(':').unwrap_or(("", raw));
        let epoch_ok = epoch.len() <= 64 && epoch.bytes().all(|b| b.is_ascii_alphanumeric());
        let seq = seq.parse().ok().filter(|_| epoch_ok)?;
        Some(Self { epoch: epoch.to_string(), seq })
    }
}

impl Drop for ReplayBuffer {
    fn drop(&mut self) {
        self.memory.release(self.bytes);
        self.memory.buffer_dropped();
    }
}

impl ReplayBuffer {
    /// Made through [`ReplayMemory::buffer`], which counts it.
    pub(super) fn new(memory: Arc<ReplayMemory>) -> Self {
        let epoch = uuid::Uuid::new_v4().simple().to_string()[..16].to_string();
        Self { epoch, last_seq: 0, events: VecDeque::new(), bytes: 0, memory }
    }

    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    pub fn next_seq(&mut self) -> u64 {
        self.last_seq += 1;
        self.last_seq
    }

    /// Keeps `frame` for resume. True when all buffers together are now over their budget:
    /// the caller then runs [`ReplayMemory::trim`] after letting go of this buffer's lock.
    pub fn push(&mut self, seq: u64, frame: Utf8Bytes) -> bool {
        let len = frame.len();
        self.bytes += len;
        self.events.push_back((seq, self.memory.stamp(), frame));
        self.memory.add(len);
        while self.events.len() > MAX_EVENTS || self.bytes > MAX_BYTES {
            self.drop_oldest();
        }
        self.memory.over_limit()
    }

    /// The budget this buffer counts against.
    pub fn memory(&self) -> &Arc<ReplayMemory> {
        &self.memory
    }

    pub(super) fn oldest_stamp(&self) -> Option<u64> {
        self.events.front().map(|(_, stamp, _)| *stamp)
    }

    /// Drops the oldest event; a cursor from before it then gets a gap.
    pub(super) fn drop_oldest(&mut self) {
        if let Some((_, _, old)) = self.events.pop_front() {
            self.bytes -= old.len();
            self.memory.release(old.len());
        }
    }

    pub fn resume_after(&self, cursor: &Cursor) -> Resume {
        let seen = cursor.seq;
        if cursor.epoch != self.epoch || seen > self.last_seq {
            return Resume::Gap { last_seq: self.last_seq };
        }
        let oldest = self.events.front().map(|(s, _, _)| *s).unwrap_or(self.last_seq + 1);
        if seen + 1 < oldest {
            return Resume::Gap { last_seq: self.last_seq };
        }
        Resume::Replay(self.events.iter().filter(|(s, _, _)| *s > seen).map(|(_, _, f)| f.clone()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unlimited() -> ReplayBuffer {
        ReplayBuffer::new(ReplayMemory::new(usize::MAX))
    }

    fn buffer_with(n: u64) -> ReplayBuffer {
        let mut b = unlimited();
        for _ in 0..n {
            let seq = b.next_seq();
            b.push(seq, format!("e{seq}").into());
        }
        b
    }

    fn at(b: &ReplayBuffer, seq: u64) -> Cursor {
        Cursor { epoch: b.epoch.clone(), seq }
    }

    #[test]
    fn replays_exactly_what_was_missed() {
        let b = buffer_with(5);
        match b.resume_after(&at(&b, 3)) {
            Resume::Replay(frames) => assert_eq!(frames, vec![Utf8Bytes::from("e4"), Utf8Bytes::from("e5")]),
            Resume::Gap { .. } => panic!("no gap expected"),
        }
        assert!(matches!(b.resume_after(&at(&b, 5)), Resume::Replay(f) if f.is_empty()));
    }

    #[test]
    fn reports_a_gap_when_events_were_dropped_or_seq_is_from_the_future() {
        let b = buffer_with(MAX_EVENTS as u64 + 10);
        assert!(matches!(b.resume_after(&at(&b, 2)), Resume::Gap { .. }));
        assert!(matches!(b.resume_after(&at(&b, 9)), Resume::Gap { .. }), "seq 10 was dropped");
        assert!(
            matches!(b.resume_after(&at(&b, 10)), Resume::Replay(f) if f.len() == MAX_EVENTS),
            "seq 11 on is buffered"
        );
        let small = buffer_with(3);
        assert!(matches!(small.resume_after(&at(&small, 99)), Resume::Gap { last_seq: 3 }));
    }

    #[test]
    fn a_cursor_from_another_epoch_or_without_one_gets_a_gap() {
        let (b, other) = (buffer_with(5), buffer_with(5));
        assert_ne!(b.epoch, other.epoch, "each buffer numbers in its own epoch");
        assert!(matches!(b.resume_after(&at(&other, 3)), Resume::Gap { last_seq: 5 }));
        assert!(matches!(b.resume_after(&Cursor::parse("3").unwrap()), Resume::Gap { last_seq: 5 }));
        assert!(
            matches!(b.resume_after(&Cursor::parse(&format!("{}:3", b.epoch)).unwrap()), Resume::Replay(f) if f.len() == 2)
        );
        for bad in ["", "x", "a:b", "a:", ":", "a-b:1", "1:2:3"] {
            assert_eq!(Cursor::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_byte_cap_drops_the_oldest_events_however_few_there_are() {
        let mut b = unlimited();
        let big = "x".repeat(MAX_BYTES / 4);
        for _ in 0..10 {
            let seq = b.next_seq();
            b.push(seq, big.clone().into());
        }
        assert!(b.bytes <= MAX_BYTES, "{} bytes kept", b.bytes);
        assert!(b.events.len() < 10, "some of the 10 events went");
        assert!(matches!(b.resume_after(&at(&b, 5)), Resume::Gap { .. }), "seq 6 went for bytes, not count");
        assert!(matches!(b.resume_after(&at(&b, 9)), Resume::Replay(f) if f.len() == 1));
    }
}
