//! Priority lanes: debit notifications ahead of lower classes. Plain logic: two FIFO queues,
//! the urgent one always served first; the shard bounds their total and drains them.

use std::collections::VecDeque;

/// Waiting work in two lanes.
#[derive(Debug)]
pub struct Lanes<T> {
    urgent: VecDeque<T>,
    other: VecDeque<T>,
}

impl<T> Default for Lanes<T> {
    fn default() -> Self {
        Lanes {
            urgent: VecDeque::new(),
            other: VecDeque::new(),
        }
    }
}

impl<T> Lanes<T> {
    pub fn push(&mut self, item: T, urgent: bool) {
        if urgent {
            self.urgent.push_back(item);
        } else {
            self.other.push_back(item);
        }
    }

    /// The oldest urgent item, else the oldest other one.
    pub fn pop(&mut self) -> Option<T> {
        self.urgent.pop_front().or_else(|| self.other.pop_front())
    }

    pub fn len(&self) -> usize {
        self.urgent.len() + self.other.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn urgent_work_goes_first_and_each_lane_keeps_its_order() {
        let mut l = Lanes::default();
        l.push("low-1", false);
        l.push("low-2", false);
        l.push("debit-1", true);
        l.push("debit-2", true);
        let order: Vec<_> = std::iter::from_fn(|| l.pop()).collect();
        assert_eq!(order, ["debit-1", "debit-2", "low-1", "low-2"]);
        assert!(l.is_empty());
    }

    proptest! {
        /// Whatever the arrivals, an item is popped only when no urgent item waits before
        /// it, and nothing is lost or duplicated.
        #[test]
        fn no_other_item_overtakes_a_waiting_urgent_one(ops in proptest::collection::vec(any::<Option<bool>>(), 0..200)) {
            let mut l = Lanes::default();
            let mut pushed = 0u32;
            let mut popped = Vec::new();
            for op in ops {
                match op {
                    Some(urgent) => { l.push((pushed, urgent), urgent); pushed += 1; }
                    None => {
                        let urgent_waiting = l.urgent.len();
                        if let Some((id, urgent)) = l.pop() {
                            prop_assert!(urgent || urgent_waiting == 0);
                            popped.push(id);
                        }
                    }
                }
            }
            while let Some((id, _)) = l.pop() { popped.push(id); }
            popped.sort_unstable();
            prop_assert_eq!(popped, (0..pushed).collect::<Vec<_>>());
        }
    }
}
