//! The pending-request window: the pure bookkeeping of one session, without I/O.
//!
//! Role: allocate sequence numbers (1..=0x7FFFFFFF, wrapping, never one still pending), remember
//! each written request under its sequence number with a deadline, hand it back when its
//! response arrives, and give up the ones whose deadline has passed. The socket task owns one
//! [`Window`] and only shells I/O around it; timing uses `tokio::time::Instant`, so tests run
//! with paused time.

use std::collections::{BTreeSet, HashMap};

use tokio::time::Instant;

/// Highest sequence number SMPP allows (the top bit is reserved).
pub const MAX_SEQUENCE: u32 = 0x7FFF_FFFF;

/// Requests awaiting a response, keyed by sequence number, each with a deadline.
#[derive(Debug)]
pub struct Window<T> {
    next_seq: u32,
    pending: HashMap<u32, (Instant, T)>,
    /// Deadlines in order; the sequence number breaks ties and finds the entry.
    deadlines: BTreeSet<(Instant, u32)>,
}

impl<T> Default for Window<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Window<T> {
    /// An empty window whose first sequence number is 1.
    pub fn new() -> Self {
        Self::starting_at(1)
    }

    /// An empty window whose first sequence number is `seq` (clamped into 1..=0x7FFFFFFF).
    pub fn starting_at(seq: u32) -> Self {
        Self {
            next_seq: seq.clamp(1, MAX_SEQUENCE),
            pending: HashMap::new(),
            deadlines: BTreeSet::new(),
        }
    }

    /// The next sequence number: increasing, wrapping from 0x7FFFFFFF back to 1, skipping any
    /// still pending (a window never holds 2^31 entries, so this terminates).
    pub fn next_sequence(&mut self) -> u32 {
        loop {
            let seq = self.next_seq;
            self.next_seq = if seq >= MAX_SEQUENCE { 1 } else { seq + 1 };
            if !self.pending.contains_key(&seq) {
                return seq;
            }
        }
    }

    /// Remembers a written request; replaces (and returns) an entry under the same number.
    pub fn insert(&mut self, seq: u32, deadline: Instant, value: T) -> Option<T> {
        let old = self.remove(seq);
        self.pending.insert(seq, (deadline, value));
        self.deadlines.insert((deadline, seq));
        old
    }

    /// Takes the request answered by a response with this sequence number.
    pub fn remove(&mut self, seq: u32) -> Option<T> {
        let (deadline, value) = self.pending.remove(&seq)?;
        self.deadlines.remove(&(deadline, seq));
        Some(value)
    }

    /// The earliest deadline, if anything is pending.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|&(d, _)| d)
    }

    /// Takes every request whose deadline is at or before `now`, earliest first.
    pub fn expire(&mut self, now: Instant) -> Vec<(u32, T)> {
        let mut out = Vec::new();
        while let Some(&(deadline, seq)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_first();
            if let Some((_, value)) = self.pending.remove(&seq) {
                out.push((seq, value));
            }
        }
        out
    }

    /// Takes everything (the session is closing).
    pub fn drain(&mut self) -> Vec<(u32, T)> {
        self.deadlines.clear();
        self.pending.drain().map(|(seq, (_, v))| (seq, v)).collect()
    }

    /// Whether any pending entry satisfies `f`.
    pub fn any(&self, mut f: impl FnMut(&T) -> bool) -> bool {
        self.pending.values().any(|(_, v)| f(v))
    }

    /// How many pending entries satisfy `f`.
    pub fn count(&self, mut f: impl FnMut(&T) -> bool) -> usize {
        self.pending.values().filter(|(_, v)| f(v)).count()
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn sequence_starts_at_one_and_wraps() {
        let mut w: Window<()> = Window::new();
        assert_eq!(w.next_sequence(), 1);
        assert_eq!(w.next_sequence(), 2);
        let mut w: Window<()> = Window::starting_at(MAX_SEQUENCE - 1);
        assert_eq!(w.next_sequence(), MAX_SEQUENCE - 1);
        assert_eq!(w.next_sequence(), MAX_SEQUENCE);
        assert_eq!(w.next_sequence(), 1);
        let w: Window<()> = Window::starting_at(0);
        assert_eq!(w.next_seq, 1);
        let w: Window<()> = Window::starting_at(u32::MAX);
        assert_eq!(w.next_seq, MAX_SEQUENCE);
    }

    #[tokio::test(start_paused = true)]
    async fn sequence_skips_pending() {
        let now = Instant::now();
        let mut w = Window::starting_at(MAX_SEQUENCE);
        w.insert(1, now, "a");
        w.insert(2, now, "b");
        assert_eq!(w.next_sequence(), MAX_SEQUENCE);
        assert_eq!(w.next_sequence(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn responses_and_deadlines() {
        let t0 = Instant::now();
        let mut w = Window::new();
        let s1 = w.next_sequence();
        let s2 = w.next_sequence();
        let s3 = w.next_sequence();
        w.insert(s1, t0 + Duration::from_secs(5), "one");
        w.insert(s2, t0 + Duration::from_secs(1), "two");
        w.insert(s3, t0 + Duration::from_secs(5), "three");
        assert_eq!(w.len(), 3);
        assert_eq!(w.next_deadline(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(w.remove(s2), Some("two"));
        assert_eq!(w.remove(s2), None);
        assert_eq!(w.next_deadline(), Some(t0 + Duration::from_secs(5)));

        tokio::time::advance(Duration::from_secs(4)).await;
        assert!(w.expire(Instant::now()).is_empty());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(w.expire(Instant::now()), vec![(s1, "one"), (s3, "three")]);
        assert!(w.is_empty());
        assert_eq!(w.next_deadline(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn insert_replaces_and_drain_empties() {
        let t0 = Instant::now();
        let mut w = Window::new();
        assert_eq!(w.insert(7, t0, 1), None);
        assert_eq!(w.insert(7, t0 + Duration::from_secs(1), 2), Some(1));
        assert_eq!(w.len(), 1);
        assert_eq!(w.next_deadline(), Some(t0 + Duration::from_secs(1)));
        w.insert(8, t0, 3);
        assert!(w.any(|v| *v == 3));
        assert_eq!(w.count(|v| *v > 1), 2);
        let mut all = w.drain();
        all.sort_unstable();
        assert_eq!(all, vec![(7, 2), (8, 3)]);
        assert!(w.is_empty());
        assert_eq!(w.next_deadline(), None);
    }
}
