//! Ordered per-partition checkpoints.
//!
//! Records are tracked in the order the source hands them on and completed in any order; the
//! committable position of a partition is the offset after the longest done prefix. Kafka's
//! committed offset means "everything before this is done", so committing anything beyond
//! that prefix could lose a record on restart.

use std::collections::{BTreeMap, VecDeque};

#[derive(Debug, Default)]
struct Partition {
    /// Tracked offsets in ascending order, with whether each is done.
    pending: VecDeque<(i64, bool)>,
    /// Offset after the last done prefix: what a commit would store.
    position: Option<i64>,
    /// `position` at the last commit.
    committed: Option<i64>,
}

/// Tracks outstanding offsets of every assigned partition.
#[derive(Debug, Default)]
pub struct Checkpoints {
    partitions: BTreeMap<i32, Partition>,
}

impl Checkpoints {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `offset` of `partition` was handed on. Offsets of one partition must be
    /// tracked in ascending order; an offset not above the last tracked one is ignored
    /// (a redelivery after a rebalance is tracked again only after [`Checkpoints::forget`]).
    pub fn track(&mut self, partition: i32, offset: i64) {
        let p = self.partitions.entry(partition).or_default();
        let last = p
            .pending
            .back()
            .map(|(o, _)| *o)
            .or(p.position.map(|o| o - 1));
        if last.is_some_and(|last| offset <= last) {
            return;
        }
        p.pending.push_back((offset, false));
    }

    /// Marks `offset` of `partition` done. Unknown offsets are ignored and reported as false.
    pub fn done(&mut self, partition: i32, offset: i64) -> bool {
        let Some(p) = self.partitions.get_mut(&partition) else {
            return false;
        };
        let Ok(i) = p.pending.binary_search_by_key(&offset, |(o, _)| *o) else {
            return false;
        };
        p.pending[i].1 = true;
        while let Some(&(o, true)) = p.pending.front() {
            p.position = Some(o + 1);
            p.pending.pop_front();
        }
        true
    }

    /// Outstanding (tracked, not done) records over all partitions.
    pub fn outstanding(&self) -> usize {
        self.partitions
            .values()
            .map(|p| p.pending.iter().filter(|(_, d)| !*d).count())
            .sum()
    }

    /// Outstanding records of these partitions.
    pub fn outstanding_in(&self, partitions: &[i32]) -> usize {
        partitions
            .iter()
            .filter_map(|k| self.partitions.get(k))
            .map(|p| p.pending.iter().filter(|(_, d)| !*d).count())
            .sum()
    }

    /// Positions that moved since the last [`Checkpoints::mark_committed`]: (partition, next
    /// offset to consume).
    pub fn committable(&self) -> Vec<(i32, i64)> {
        self.partitions
            .iter()
            .filter_map(|(&k, p)| match p.position {
                Some(pos) if p.committed != Some(pos) => Some((k, pos)),
                _ => None,
            })
            .collect()
    }

    /// Records that these positions were committed.
    pub fn mark_committed(&mut self, positions: &[(i32, i64)]) {
        for &(k, pos) in positions {
            if let Some(p) = self.partitions.get_mut(&k) {
                p.committed = Some(pos);
            }
        }
    }

    /// Drops a partition (revoked or lost); its outstanding records belong to the next owner.
    pub fn forget(&mut self, partition: i32) {
        self.partitions.remove(&partition);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn position_waits_for_the_oldest_outstanding_offset() {
        let mut c = Checkpoints::new();
        for o in 10..15 {
            c.track(0, o);
        }
        assert!(c.done(0, 12));
        assert!(c.done(0, 11));
        assert!(c.committable().is_empty(), "10 is still outstanding");
        assert!(c.done(0, 10));
        assert_eq!(c.committable(), vec![(0, 13)]);
        c.mark_committed(&[(0, 13)]);
        assert!(c.committable().is_empty());
        assert_eq!(c.outstanding(), 2);
    }

    #[test]
    fn partitions_are_independent_and_forget_drops_state() {
        let mut c = Checkpoints::new();
        c.track(0, 5);
        c.track(1, 7);
        c.done(1, 7);
        assert_eq!(c.committable(), vec![(1, 8)]);
        c.forget(0);
        assert_eq!(c.outstanding(), 0);
        assert!(!c.done(0, 5));
    }

    #[test]
    fn stale_or_repeated_offsets_are_ignored() {
        let mut c = Checkpoints::new();
        c.track(0, 5);
        c.done(0, 5);
        c.track(0, 5);
        c.track(0, 3);
        assert_eq!(c.outstanding(), 0);
        assert_eq!(c.committable(), vec![(0, 6)]);
    }

    proptest! {
        /// Whatever the completion order, the position is always the first not-done offset.
        #[test]
        fn position_is_the_first_offset_not_done(
            n in 1usize..200,
            order in proptest::collection::vec(any::<prop::sample::Index>(), 0..200),
        ) {
            let mut c = Checkpoints::new();
            for o in 0..n as i64 { c.track(3, o * 2); }
            let mut done = vec![false; n];
            for idx in order {
                let i = idx.index(n);
                done[i] = true;
                c.done(3, i as i64 * 2);
                let first_open = done.iter().position(|d| !d);
                let expect = match first_open {
                    Some(0) => None,
                    Some(i) => Some((i as i64 - 1) * 2 + 1),
                    None => Some((n as i64 - 1) * 2 + 1),
                };
                let got = c.committable().first().map(|&(_, p)| p);
                prop_assert_eq!(got, expect);
                prop_assert_eq!(c.outstanding(), done.iter().filter(|d| !**d).count());
            }
        }
    }
}
