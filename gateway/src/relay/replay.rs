//! The per-user event log that lets a reconnecting browser catch up (`?resume=<seq>`).

use std::collections::VecDeque;

use axum::extract::ws::Utf8Bytes;

// Enough for a long reply's deltas (each carries the cumulative text) without letting many
// active users hold much memory.
const MAX_EVENTS: usize = 512;
const MAX_BYTES: usize = 1024 * 1024;

#[derive(Default)]
pub struct ReplayBuffer {
    last_seq: u64,
    events: VecDeque<(u64, Utf8Bytes)>,
    bytes: usize,
}

pub enum Resume {
    /// Everything after the client's seq, in order (possibly nothing).
    Replay(Vec<Utf8Bytes>),
    /// Some events are gone; the client must refetch history.
    Gap { last_seq: u64 },
}

impl ReplayBuffer {
    pub fn next_seq(&mut self) -> u64 {
        self.last_seq += 1;
        self.last_seq
    }

    pub fn push(&mut self, seq: u64, frame: Utf8Bytes) {
        self.bytes += frame.len();
        self.events.push_back((seq, frame));
        while self.events.len() > MAX_EVENTS || self.bytes > MAX_BYTES {
            let Some((_, old)) = self.events.pop_front() else { break };
            self.bytes -= old.len();
        }
    }

    pub fn resume_after(&self, seen: u64) -> Resume {
        if seen > self.last_seq {
            // The client saw numbers from before a restart of this server.
            return Resume::Gap { last_seq: self.last_seq };
        }
        let oldest = self.events.front().map(|(s, _)| *s).unwrap_or(self.last_seq + 1);
        if seen + 1 < oldest {
            return Resume::Gap { last_seq: self.last_seq };
        }
        Resume::Replay(self.events.iter().filter(|(s, _)| *s > seen).map(|(_, f)| f.clone()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buffer_with(n: u64) -> ReplayBuffer {
        let mut b = ReplayBuffer::default();
        for _ in 0..n {
            let seq = b.next_seq();
            b.push(seq, format!("e{seq}").into());
        }
        b
    }

    #[test]
    fn replays_exactly_what_was_missed() {
        let b = buffer_with(5);
        match b.resume_after(3) {
            Resume::Replay(frames) => assert_eq!(frames, vec![Utf8Bytes::from("e4"), Utf8Bytes::from("e5")]),
            Resume::Gap { .. } => panic!("no gap expected"),
        }
        assert!(matches!(b.resume_after(5), Resume::Replay(f) if f.is_empty()));
    }

    #[test]
    fn reports_a_gap_when_events_were_dropped_or_seq_is_from_the_future() {
        let b = buffer_with(MAX_EVENTS as u64 + 10);
        assert!(matches!(b.resume_after(2), Resume::Gap { .. }));
        assert!(matches!(b.resume_after(9), Resume::Gap { .. }), "seq 10 was dropped");
        assert!(matches!(b.resume_after(10), Resume::Replay(f) if f.len() == MAX_EVENTS), "seq 11 on is buffered");
        assert!(matches!(buffer_with(3).resume_after(99), Resume::Gap { last_seq: 3 }));
    }
}
