//! The answers owed for parked receipts, held for a while instead of refused at once.
//!
//! A receipt that comes before its acceptance is registered is parked (only in memory), so
//! its `deliver_sm` cannot be answered "received" yet (ADR 0008). Most such receipts are
//! ahead of a submit response that is being handled right then: their acceptance is
//! registered milliseconds later. Holding the answer until then, and giving it once the
//! receipt's outcome is recorded, spares the SMSC a second delivery of it (the parked
//! receipt itself is applied at the acceptance either way). Held for `hold` from the receipt's
//! first arrival (given up by [`HeldAnswers::overdue`], which the matcher actor calls once a
//! second): a receipt that matches nothing by then is refused as before, so that an
//! SMSC's window of unanswered receipts never stays filled with them.

use std::collections::VecDeque;
use std::time::Duration;

use foldhash::{HashMap, HashMapExt};
use tokio::time::Instant;

use super::{shrink, ParkId};

/// How long the answer to a parked receipt is held (plus up to the second between the
/// matcher actor's checks): its acceptance comes within milliseconds when it was only behind
/// its submit response, and an SMSC waits longer than this for an answer (commonly 30–60 s;
/// a session refuses at its own `response_timeout` anyway).
pub const PARKED_ANSWER_HOLD: Duration = Duration::from_secs(2);

/// Answers (`A`: whatever answers one `deliver_sm`) by parked receipt.
#[derive(Debug)]
pub struct HeldAnswers<A> {
    by_park: HashMap<ParkId, Vec<A>>,
    /// When each park's answers are given up, oldest first; a park released before is
    /// skipped (park ids are never reused).
    deadlines: VecDeque<(Instant, ParkId)>,
    hold: Duration,
}

impl<A> HeldAnswers<A> {
    pub fn new(hold: Duration) -> HeldAnswers<A> {
        HeldAnswers {
            by_park: HashMap::new(),
            deadlines: VecDeque::new(),
            hold,
        }
    }

    /// Holds the answer to one delivery of parked receipt `id` (a copy joins the first and
    /// shares its deadline).
    pub fn hold(&mut self, id: ParkId, answer: A, now: Instant) {
        let answers = self.by_park.entry(id).or_insert_with(|| {
            self.deadlines.push_back((now + self.hold, id));
            Vec::new()
        });
        answers.push(answer);
    }

    /// The answers held for these parks, whose receipts were applied.
    pub fn release(&mut self, ids: impl IntoIterator<Item = ParkId>, into: &mut Vec<A>) {
        for id in ids {
            if let Some(answers) = self.by_park.remove(&id) {
                into.extend(answers);
            }
        }
    }

    /// The answers whose parks have been held for `hold` by `now`: to be refused.
    pub fn overdue(&mut self, now: Instant) -> Vec<A> {
        self.overdue_parks(now)
            .into_iter()
            .flat_map(|(_, answers)| answers)
            .collect()
    }

    /// As [`HeldAnswers::overdue`], by park, in the order they were first held: for a caller that does
    /// something with each park's receipt before it answers (relays it, `relay.rs`).
    pub fn overdue_parks(&mut self, now: Instant) -> Vec<(ParkId, Vec<A>)> {
        let mut due = Vec::new();
        while let Some((at, id)) = self.deadlines.front().copied() {
            if at > now {
                break;
            }
            self.deadlines.pop_front();
            if let Some(answers) = self.by_park.remove(&id) {
                due.push((id, answers));
            }
        }
        shrink!(self.by_park, self.deadlines);
        due
    }

    /// Answers held.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_park.values().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOLD: Duration = Duration::from_secs(2);

    #[test]
    fn answers_are_released_by_park_and_copies_go_with_the_first() {
        let now = Instant::now();
        let mut h = HeldAnswers::new(HOLD);
        h.hold(ParkId(1), "first", now);
        h.hold(ParkId(2), "other", now);
        h.hold(ParkId(1), "copy", now + Duration::from_millis(500));
        assert_eq!(h.len(), 3);
        let mut acks = Vec::new();
        h.release([ParkId(1), ParkId(7)], &mut acks);
        assert_eq!(acks, ["first", "copy"]);
        assert_eq!(h.len(), 1);
        h.release([ParkId(1)], &mut acks);
        assert_eq!(acks.len(), 2, "released once");
    }

    #[test]
    fn a_park_not_applied_within_the_hold_is_given_up_whole() {
        let now = Instant::now();
        let mut h = HeldAnswers::new(HOLD);
        h.hold(ParkId(1), 1, now);
        h.hold(ParkId(2), 2, now + Duration::from_secs(1));
        h.hold(ParkId(1), 3, now + Duration::from_secs(1));
        assert!(h.overdue(now + HOLD - Duration::from_millis(1)).is_empty());
        assert_eq!(
            h.overdue(now + HOLD),
            [1, 3],
            "the copy shares the deadline"
        );
        let mut acks = Vec::new();
        h.release([ParkId(1)], &mut acks);
        assert!(acks.is_empty(), "already given up");
        assert_eq!(h.overdue(now + Duration::from_secs(3)), [2]);
        assert_eq!(h.len(), 0);
    }

    #[test]
    fn overdue_parks_come_whole_and_oldest_first() {
        let now = Instant::now();
        let mut h = HeldAnswers::new(HOLD);
        h.hold(ParkId(9), "first", now);
        h.hold(ParkId(3), "late", now + Duration::from_secs(1));
        h.hold(ParkId(9), "copy", now + Duration::from_secs(1));
        let due = h.overdue_parks(now + Duration::from_secs(3));
        assert_eq!(
            due,
            [
                (ParkId(9), vec!["first", "copy"]),
                (ParkId(3), vec!["late"])
            ]
        );
        assert_eq!(h.len(), 0);
    }

    #[test]
    fn a_released_park_leaves_nothing_to_give_up() {
        let now = Instant::now();
        let mut h = HeldAnswers::new(HOLD);
        h.hold(ParkId(4), 'a', now);
        let mut acks = Vec::new();
        h.release([ParkId(4)], &mut acks);
        assert_eq!(acks, ['a']);
        assert!(h.overdue(now + HOLD).is_empty());
        assert!(h.deadlines.is_empty());
    }
}
