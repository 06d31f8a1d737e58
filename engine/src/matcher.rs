//! Receipt matching: correlates delivery receipts to accepted notifications.
//!
//! Keyed by (carrier, normalised message id). A receipt that arrives before its submit
//! response is parked and matched when the acceptance is registered; receipts of a
//! multi-part message are folded into one outcome; duplicates are counted and ignored;
//! notifications whose receipts never come end `unconfirmed` after the receipt timeout.
//! An expiring map: the maps plus deadline queues, purged by [`Matcher::expire`].

use std::collections::{BTreeSet, VecDeque};

// foldhash with a per-process random seed rather than SipHash: these maps are hashed on
// every acceptance and receipt, and SipHash was the largest single cost of the thread.
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use std::sync::Arc;
use std::time::Duration;

use pigeon_smpp::receipt::{
    match_key, normalise_message_id, IdForm, IdFormLearner, Receipt, ReceiptState,
    DEFAULT_LEARN_WINDOW,
};
use tokio::time::Instant;

use crate::event::{State, StatusEvent};
use crate::notification::{Meta, Notification};
use crate::routing::CarrierId;

type Key = (CarrierId, String);

/// A notification every segment of which a carrier accepted.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub meta: Meta,
    pub carrier: CarrierId,
    pub carrier_name: Arc<str>,
    /// One per segment, as the submit responses spelled them.
    pub message_ids: Vec<String>,
    /// With receipt failover: when to give up on this carrier's receipts, and the
    /// notification to send through the next carrier then.
    pub resubmit: Option<(Instant, Box<Notification>)>,
}

#[derive(Debug)]
struct Awaiting {
    accepted: Accepted,
    /// Segments still without a final receipt.
    open: usize,
    /// The worst final state reported so far.
    worst: Option<ReceiptState>,
    error_code: Option<u32>,
}

/// What happened to one receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptOutcome {
    /// Matched a segment of an awaiting notification.
    Matched,
    /// Not final (ENROUTE, ACCEPTD): noted, nothing changes.
    Intermediate,
    /// For a segment already settled: ignored.
    Duplicate,
    /// No acceptance known yet: parked until one is registered or the park expires.
    Parked,
}

/// The correlation table.
#[derive(Debug)]
pub struct Matcher {
    awaiting: HashMap<u64, Awaiting>,
    by_id: HashMap<Key, u64>,
    next: u64,
    /// Receipts that came before their acceptance.
    parked: HashMap<Key, Receipt>,
    parked_deadlines: VecDeque<(Instant, Key)>,
    /// Recently settled ids, to tell duplicates from unknown receipts.
    settled: HashSet<Key>,
    settled_deadlines: VecDeque<(Instant, Key)>,
    awaiting_deadlines: VecDeque<(Instant, u64)>,
    /// Receipt failover times of the notifications that have one, soonest first.
    failovers: BTreeSet<(Instant, u64)>,
    receipt_timeout: Duration,
    park_timeout: Duration,
    /// Per carrier, how its submit response ids are rewritten to match its receipts.
    ids: Vec<CarrierIds>,
}

/// How a carrier's submit response ids relate to its receipt ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdRule {
    /// As configured.
    Fixed(IdForm),
    /// Learned from the ids themselves: as they are until the first unmatched receipts show
    /// a consistent difference (hex responses and decimal receipts, or the reverse).
    Learn,
}

/// A carrier's id form, and while it is being learned, the evidence so far.
///
/// Until the form is known, a receipt id made of decimal digits only is not matched as it
/// is when the carrier's response ids are hexadecimal with letters: `"16"` may be the
/// decimal spelling of `0x10`, and matching it to response id `"00000016"` would settle the
/// wrong notification. Such receipts wait (parked) until the form is learned. The form is
/// learned as soon as either the unmatched receipts show a consistent base change, or enough
/// receipts with letters in their ids matched as they are.
#[derive(Debug)]
struct CarrierIds {
    form: IdForm,
    /// `None` once the form is known.
    learner: Option<IdFormLearner>,
    /// Some response id had hexadecimal letters.
    hex_response_ids: bool,
    /// Receipts with letters in their ids that matched as they are.
    as_is_matches: usize,
}

impl Matcher {
    /// `rules[carrier]` says how that carrier's submit response ids are rewritten before
    /// matching (carriers not listed: as they are).
    pub fn new(receipt_timeout: Duration, park_timeout: Duration, rules: Vec<IdRule>) -> Matcher {
        let ids = rules
            .into_iter()
            .map(|r| {
                let (form, learner) = match r {
                    IdRule::Fixed(form) => (form, None),
                    IdRule::Learn => (IdForm::AsIs, Some(IdFormLearner::new(DEFAULT_LEARN_WINDOW))),
                };
                CarrierIds {
                    form,
                    learner,
                    hex_response_ids: false,
                    as_is_matches: 0,
                }
            })
            .collect();
        Matcher {
            awaiting: HashMap::new(),
            by_id: HashMap::new(),
            next: 0,
            parked: HashMap::new(),
            parked_deadlines: VecDeque::new(),
            settled: HashSet::new(),
            settled_deadlines: VecDeque::new(),
            awaiting_deadlines: VecDeque::new(),
            failovers: BTreeSet::new(),
            receipt_timeout,
            park_timeout,
            ids,
        }
    }

    /// The matching key of a submit response id of `carrier`.
    fn submit_key(&self, carrier: CarrierId, id: &str) -> Key {
        key_in_form(carrier, id, self.id_form(carrier))
    }

    /// The id form in force for `carrier`.
    pub fn id_form(&self, carrier: CarrierId) -> IdForm {
        self.ids.get(carrier).map_or(IdForm::AsIs, |c| c.form)
    }

    /// One more receipt with letters matched as it is; enough of them settle the form as
    /// "as is", and the receipts kept back meanwhile are applied.
    fn count_as_is_match(&mut self, carrier: CarrierId, now: Instant, out: &mut Vec<StatusEvent>) {
        let Some(c) = self.ids.get_mut(carrier) else {
            return;
        };
        c.as_is_matches += 1;
        if c.as_is_matches >= DEFAULT_LEARN_WINDOW {
            self.relearn(carrier, IdForm::AsIs, now, out);
        }
    }

    /// Switches `carrier` to `form`: every awaiting notification of it is keyed again, and
    /// parked receipts that now match are applied.
    fn relearn(
        &mut self,
        carrier: CarrierId,
        form: IdForm,
        now: Instant,
        out: &mut Vec<StatusEvent>,
    ) {
        let old = self.id_form(carrier);
        if let Some(c) = self.ids.get_mut(carrier) {
            c.form = form;
            c.learner = None;
        }
        tracing::info!(carrier, ?old, ?form, "receipt id form learned");
        // Two passes: an old key of one notification may be the new key of another.
        let mut moved = Vec::new();
        for (&slot, w) in &self.awaiting {
            if w.accepted.carrier != carrier {
                continue;
            }
            for id in &w.accepted.message_ids {
                let before = key_in_form(carrier, id, old);
                if self.by_id.get(&before) == Some(&slot) {
                    moved.push((before, key_in_form(carrier, id, form), slot));
                }
            }
        }
        for (before, _, _) in &moved {
            self.by_id.remove(before);
        }
        for (_, after, slot) in moved {
            self.by_id.insert(after, slot);
        }
        let ready: Vec<Key> = self
            .parked
            .keys()
            .filter(|k| k.0 == carrier && self.by_id.contains_key(*k))
            .cloned()
            .collect();
        for k in ready {
            if let Some(r) = self.parked.remove(&k) {
                self.apply(k, &r, now, out);
            }
        }
    }

    /// Notifications waiting for receipts.
    pub fn awaiting(&self) -> usize {
        self.awaiting.len()
    }

    /// Receipts waiting for their acceptance.
    pub fn parked(&self) -> usize {
        self.parked.len()
    }

    /// Registers an acceptance; receipts parked for it are applied at once. Terminal
    /// statuses that result are pushed to `out`.
    pub fn accept(&mut self, a: Accepted, now: Instant, out: &mut Vec<StatusEvent>) {
        self.accept_aged(a, now, Duration::ZERO, out);
    }

    /// As [`Matcher::accept`], for an acceptance `age` ago (one recovered after a restart):
    /// its receipt timeout runs from the acceptance, not from now.
    pub fn accept_aged(
        &mut self,
        a: Accepted,
        now: Instant,
        age: Duration,
        out: &mut Vec<StatusEvent>,
    ) {
        let slot = self.next;
        self.next += 1;
        if let Some(c) = self.ids.get_mut(a.carrier) {
            if let Some(l) = c.learner.as_mut() {
                for id in &a.message_ids {
                    l.observe_submit_id(id);
                    c.hex_response_ids |= id
                        .bytes()
                        .any(|b| b.is_ascii_hexdigit() && !b.is_ascii_digit());
                }
            }
        }
        let keys: Vec<Key> = a
            .message_ids
            .iter()
            .map(|id| self.submit_key(a.carrier, id))
            .collect();
        let open = keys.len();
        let a_carrier = a.carrier;
        if let Some((at, _)) = &a.resubmit {
            self.failovers.insert((*at, slot));
        }
        self.awaiting.insert(
            slot,
            Awaiting {
                accepted: a,
                open,
                worst: None,
                error_code: None,
            },
        );
        // Deadlines stay in order: aged acceptances are registered at start-up, oldest first,
        // before any fresh one.
        self.awaiting_deadlines
            .push_back((now + self.receipt_timeout.saturating_sub(age), slot));
        for k in &keys {
            self.by_id.insert(k.clone(), slot);
        }
        let carrier = a_carrier;
        let doubtful = self.doubts_digit_ids(carrier);
        for k in keys {
            let ok = self
                .parked
                .get(&k)
                .is_some_and(|r| !(doubtful && digits_only(&r.message_id)));
            if let Some(r) = ok.then(|| self.parked.remove(&k)).flatten() {
                self.apply(k, &r, now, out);
            }
        }
    }

    /// Whether `carrier`'s form is still being learned and its response ids are hexadecimal,
    /// so that a digits-only receipt id cannot be trusted as it is (see [`CarrierIds`]).
    fn doubts_digit_ids(&self, carrier: CarrierId) -> bool {
        self.ids
            .get(carrier)
            .is_some_and(|c| c.learner.is_some() && c.hex_response_ids)
    }

    /// Applies one receipt from `carrier`.
    pub fn receipt(
        &mut self,
        carrier: CarrierId,
        r: Receipt,
        now: Instant,
        out: &mut Vec<StatusEvent>,
    ) -> ReceiptOutcome {
        let key = (carrier, match_key(&r.message_id));
        if !r.state.is_final() {
            return ReceiptOutcome::Intermediate;
        }
        let learning = self.ids.get(carrier).is_some_and(|c| c.learner.is_some());
        let digits = digits_only(&r.message_id);
        let doubtful = self.doubts_digit_ids(carrier) && digits;
        if !doubtful && self.by_id.contains_key(&key) {
            self.apply(key, &r, now, out);
            if learning && !digits {
                self.count_as_is_match(carrier, now, out);
            }
            return ReceiptOutcome::Matched;
        }
        if self.settled.contains(&key) || self.parked.contains_key(&key) {
            return ReceiptOutcome::Duplicate;
        }
        // A receipt held back only because its id is ambiguous is no evidence of a base
        // change: it also reads as a response id as it is.
        let ambiguous = doubtful && self.by_id.contains_key(&key);
        let proposal = self
            .ids
            .get_mut(carrier)
            .and_then(|c| c.learner.as_mut())
            .filter(|_| !ambiguous)
            .and_then(|l| l.observe_unmatched_receipt_id(&r.message_id));
        self.parked_deadlines
            .push_back((now + self.park_timeout, key.clone()));
        self.parked.insert(key, r);
        if let Some(form) = proposal.filter(|f| *f != self.id_form(carrier)) {
            if self.would_match(carrier, form) > self.would_match(carrier, self.id_form(carrier)) {
                self.relearn(carrier, form, now, out);
            } else if let Some(l) = self.ids.get_mut(carrier).and_then(|c| c.learner.as_mut()) {
                // The parked receipts do not bear the proposal out: start over.
                l.reset();
            }
        }
        ReceiptOutcome::Parked
    }

    /// How many of `carrier`'s parked receipts would match an awaiting notification if its
    /// response ids were read in `form`.
    fn would_match(&self, carrier: CarrierId, form: IdForm) -> usize {
        let keys: HashSet<Key> = self
            .awaiting
            .values()
            .filter(|w| w.accepted.carrier == carrier)
            .flat_map(|w| {
                w.accepted
                    .message_ids
                    .iter()
                    .map(|id| key_in_form(carrier, id, form))
            })
            .collect();
        self.parked.keys().filter(|k| keys.contains(*k)).count()
    }

    fn apply(&mut self, key: Key, r: &Receipt, now: Instant, out: &mut Vec<StatusEvent>) {
        let Some(slot) = self.by_id.remove(&key) else {
            return;
        };
        self.settled_deadlines
            .push_back((now + self.park_timeout, key.clone()));
        self.settled.insert(key);
        let Some(w) = self.awaiting.get_mut(&slot) else {
            return;
        };
        w.open = w.open.saturating_sub(1);
        if severity(r.state) > w.worst.map_or(0, severity) {
            w.worst = Some(r.state);
            w.error_code = r.error_code;
        }
        if w.open == 0 {
            if let Some(w) = self.awaiting.remove(&slot) {
                out.push(settle(w));
            }
        }
    }

    /// Notifications whose receipt failover time has come with no final receipt for any of
    /// their segments: each is forgotten here (a late receipt from the carrier that accepted
    /// it counts as a duplicate) and returned, flagged `possible_duplicate`, to be sent
    /// through the next carrier of its route. Those with some segment settled stay.
    pub fn due_failovers(&mut self, now: Instant) -> Vec<Notification> {
        let mut due = Vec::new();
        while let Some(&(at, slot)) = self.failovers.first() {
            if at > now {
                break;
            }
            self.failovers.pop_first();
            // Part of it reached the customer, or it is too late to send it anywhere else:
            // it stays with this carrier and waits for its receipts.
            let untouched = self.awaiting.get(&slot).is_some_and(|w| {
                w.open == w.accepted.message_ids.len()
                    && w.worst.is_none()
                    && w.accepted
                        .resubmit
                        .as_ref()
                        .is_some_and(|(_, n)| n.deadline > now)
            });
            if !untouched {
                continue;
            }
            let Some(w) = self.awaiting.remove(&slot) else {
                continue;
            };
            for id in &w.accepted.message_ids {
                let key = self.submit_key(w.accepted.carrier, id);
                self.by_id.remove(&key);
                self.settled_deadlines
                    .push_back((now + self.park_timeout, key.clone()));
                self.settled.insert(key);
            }
            if let Some((_, mut n)) = w.accepted.resubmit {
                n.meta.possible_duplicate = true;
                due.push(*n);
            }
        }
        due
    }

    /// Ends what has waited too long: notifications without all receipts become
    /// `unconfirmed`; parked receipts and settled ids are forgotten. Returns how many parked
    /// receipts expired unmatched.
    pub fn expire(&mut self, now: Instant, out: &mut Vec<StatusEvent>) -> usize {
        while let Some(&(at, slot)) = self.awaiting_deadlines.front() {
            if at > now {
                break;
            }
            self.awaiting_deadlines.pop_front();
            if let Some(w) = self.awaiting.remove(&slot) {
                for id in &w.accepted.message_ids {
                    let key = self.submit_key(w.accepted.carrier, id);
                    self.by_id.remove(&key);
                }
                let mut s = carrier_status(&w.accepted, State::Unconfirmed);
                s.reason = Some("no_receipt".into());
                out.push(s);
            }
        }
        let mut unmatched = 0;
        while let Some((at, _)) = self.parked_deadlines.front() {
            if *at > now {
                break;
            }
            if let Some((_, k)) = self.parked_deadlines.pop_front() {
                unmatched += usize::from(self.parked.remove(&k).is_some());
            }
        }
        while let Some((at, _)) = self.settled_deadlines.front() {
            if *at > now {
                break;
            }
            if let Some((_, k)) = self.settled_deadlines.pop_front() {
                self.settled.remove(&k);
            }
        }
        unmatched
    }
}

fn digits_only(id: &str) -> bool {
    id.trim().bytes().all(|b| b.is_ascii_digit())
}

fn key_in_form(carrier: CarrierId, id: &str, form: IdForm) -> Key {
    match form {
        IdForm::AsIs => (carrier, match_key(id)),
        form => (carrier, match_key(&normalise_message_id(id, form))),
    }
}

/// Orders final states: a message is as good as its worst segment.
fn severity(s: ReceiptState) -> u8 {
    match s {
        ReceiptState::Delivered => 1,
        ReceiptState::Accepted | ReceiptState::Enroute => 0,
        ReceiptState::Expired => 2,
        ReceiptState::Unknown => 3,
        ReceiptState::Deleted | ReceiptState::Skipped => 4,
        ReceiptState::Undeliverable => 5,
        ReceiptState::Rejected => 6,
    }
}

fn carrier_status(a: &Accepted, state: State) -> StatusEvent {
    let mut s = a.meta.status(state);
    s.carrier = Some(a.carrier_name.to_string());
    s.message_ids = a.message_ids.clone();
    s
}

fn settle(w: Awaiting) -> StatusEvent {
    let (state, reason) = match w.worst {
        Some(ReceiptState::Delivered) | None => (State::Delivered, None),
        Some(ReceiptState::Expired) => (State::Expired, Some("carrier_expired")),
        Some(ReceiptState::Rejected) => (State::Undelivered, Some("carrier_rejected")),
        Some(ReceiptState::Deleted) => (State::Undelivered, Some("carrier_deleted")),
        Some(ReceiptState::Unknown) => (State::Undelivered, Some("carrier_unknown")),
        Some(_) => (State::Undelivered, Some("undeliverable")),
    };
    let mut s = carrier_status(&w.accepted, state);
    s.reason = reason.map(str::to_owned);
    if let Some(code) = w
        .error_code
        .filter(|c| *c != 0 && state != State::Delivered)
    {
        s.detail = Some(format!("carrier error code {code}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::OffsetDateTime;

    fn accepted(ids: &[&str]) -> Accepted {
        Accepted {
            meta: Meta {
                event_id: "e1".into(),
                transaction_id: "t1".into(),
                occurred_at: OffsetDateTime::UNIX_EPOCH,
                masked: "+****0123".into(),
                segments: ids.len() as u32,
                possible_duplicate: false,
            },
            carrier: 0,
            carrier_name: "a".into(),
            message_ids: ids.iter().map(|s| (*s).to_owned()).collect(),
            resubmit: None,
        }
    }

    fn receipt(id: &str, state: ReceiptState) -> Receipt {
        Receipt {
            message_id: id.into(),
            state,
            error_code: None,
        }
    }

    fn m() -> Matcher {
        Matcher::new(Duration::from_secs(60), Duration::from_secs(10), Vec::new())
    }

    #[test]
    fn without_a_receipt_in_time_a_notification_goes_to_the_next_carrier_flagged() {
        let (mut m, now, mut out) = (m(), Instant::now(), Vec::new());
        let n = crate::notification::sample("e1");
        let mut a = accepted(&["a1"]);
        a.resubmit = Some((now + Duration::from_secs(30), Box::new(n.clone())));
        m.accept(a, now, &mut out);
        let mut settled = accepted(&["a2"]);
        settled.meta.event_id = "e2".into();
        settled.resubmit = Some((now + Duration::from_secs(30), Box::new(n)));
        m.accept(settled, now, &mut out);
        m.receipt(0, receipt("a2", ReceiptState::Delivered), now, &mut out);
        assert_eq!(out.len(), 1, "e2 delivered");

        assert!(m.due_failovers(now + Duration::from_secs(29)).is_empty());
        let due = m.due_failovers(now + Duration::from_secs(30));
        assert_eq!(due.len(), 1, "e1 only: e2 has its receipt");
        assert_eq!(due[0].meta.event_id, "e1");
        assert!(due[0].meta.possible_duplicate);
        assert!(due[0].meta.status(State::Retrying).possible_duplicate);
        assert_eq!(m.awaiting(), 0);
        let late = m.receipt(0, receipt("a1", ReceiptState::Delivered), now, &mut out);
        assert_eq!(
            late,
            ReceiptOutcome::Duplicate,
            "the first carrier's late receipt"
        );
        assert_eq!(out.len(), 1);
        assert!(m.due_failovers(now + Duration::from_secs(60)).is_empty());
    }

    #[test]
    fn receipt_failover_waits_for_every_segment_untouched() {
        let (mut m, now, mut out) = (m(), Instant::now(), Vec::new());
        let mut a = accepted(&["p1", "p2"]);
        a.resubmit = Some((
            now + Duration::from_secs(5),
            Box::new(crate::notification::sample("e1")),
        ));
        m.accept(a, now, &mut out);
        m.receipt(0, receipt("p1", ReceiptState::Delivered), now, &mut out);
        assert!(
            m.due_failovers(now + Duration::from_secs(5)).is_empty(),
            "part of it reached the customer: no second send"
        );
        assert_eq!(m.awaiting(), 1, "still waits for the other receipt");
    }

    #[test]
    fn an_acceptance_recovered_after_a_restart_keeps_its_receipt_deadline() {
        // Receipt timeout 60 s; accepted 50 s before the restart: unconfirmed 10 s after it.
        let (mut m, now, mut out) = (m(), Instant::now(), Vec::new());
        m.accept_aged(accepted(&["r1"]), now, Duration::from_secs(50), &mut out);
        m.expire(now + Duration::from_secs(9), &mut out);
        assert!(out.is_empty());
        m.expire(now + Duration::from_secs(10), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].state, State::Unconfirmed);
    }

    #[test]
    fn receipt_failover_never_sends_after_the_validity() {
        let (mut m, now, mut out) = (m(), Instant::now(), Vec::new());
        let mut n = crate::notification::sample("e1");
        n.deadline = now + Duration::from_secs(10);
        let mut a = accepted(&["x1"]);
        a.resubmit = Some((now + Duration::from_secs(10), Box::new(n)));
        m.accept(a, now, &mut out);
        assert!(m.due_failovers(now + Duration::from_secs(10)).is_empty());
        assert_eq!(m.awaiting(), 1, "waits for its receipt instead");
    }

    #[test]
    fn a_receipt_settles_its_notification_once() {
        let (mut m, now, mut out) = (m(), Instant::now(), Vec::new());
        m.accept(accepted(&["00AB"]), now, &mut out);
        let r = m.receipt(0, receipt("ab", ReceiptState::Delivered), now, &mut out);
        assert_eq!(
            r,
            ReceiptOutcome::Matched,
            "case and leading zeros normalised"
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].state, State::Delivered);
        assert_eq!(out[0].message_ids, vec!["00AB".to_owned()]);
        let again = m.receipt(0, receipt("AB", ReceiptState::Delivered), now, &mut out);
        assert_eq!(again, ReceiptOutcome::Duplicate);
        assert_eq!(out.len(), 1);
        assert_eq!(m.awaiting(), 0);
    }

    #[test]
    fn a_receipt_before_its_acceptance_is_parked_then_matched() {
        let (mut m, now, mut out) = (m(), Instant::now(), Vec::new());
        let r = m.receipt(0, receipt("7", ReceiptState::Delivered), now, &mut out);
        assert_eq!(r, ReceiptOutcome::Parked);
        assert!(out.is_empty());
        m.accept(accepted(&["7"]), now, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(m.parked(), 0);
    }

    #[test]
    fn multipart_folds_into_the_worst_segment_outcome() {
        let (mut m, now, mut out) = (m(), Instant::now(), Vec::new());
        m.accept(accepted(&["1", "2"]), now, &mut out);
        m.receipt(0, receipt("1", ReceiptState::Delivered), now, &mut out);
        assert!(out.is_empty(), "one segment still open");
        m.receipt(0, receipt("2", ReceiptState::Undeliverable), now, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].state, State::Undelivered);
    }

    #[test]
    fn the_same_id_on_another_carrier_does_not_match() {
        let (mut m, now, mut out) = (m(), Instant::now(), Vec::new());
        m.accept(accepted(&["1"]), now, &mut out);
        assert_eq!(
            m.receipt(1, receipt("1", ReceiptState::Delivered), now, &mut out),
            ReceiptOutcome::Parked
        );
        assert!(out.is_empty());
    }

    #[test]
    fn a_carrier_with_hex_responses_and_decimal_receipts_is_matched() {
        let mut m = Matcher::new(
            Duration::from_secs(60),
            Duration::from_secs(10),
            vec![IdRule::Fixed(IdForm::HexToDecimal)],
        );
        let (now, mut out) = (Instant::now(), Vec::new());
        m.accept(accepted(&["0000FF"]), now, &mut out);
        let r = m.receipt(0, receipt("255", ReceiptState::Delivered), now, &mut out);
        assert_eq!(r, ReceiptOutcome::Matched);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn hex_responses_with_decimal_receipts_are_learned_and_matched() {
        let mut m = Matcher::new(
            Duration::from_secs(60),
            Duration::from_secs(10),
            vec![IdRule::Learn],
        );
        let (now, mut out) = (Instant::now(), Vec::new());
        for i in 0..30u32 {
            let mut a = accepted(&[&format!("{:08x}", 0xa0 + i)]);
            a.meta.event_id = format!("e{i}");
            m.accept(a, now, &mut out);
        }
        for i in 0..30u32 {
            m.receipt(
                0,
                receipt(&(0xa0 + i).to_string(), ReceiptState::Delivered),
                now,
                &mut out,
            );
        }
        assert_eq!(m.id_form(0), IdForm::HexToDecimal);
        assert_eq!(
            out.len(),
            30,
            "every notification settled, the early receipts included"
        );
        assert_eq!(m.awaiting(), 0);
        assert_eq!(m.parked(), 0);
    }

    #[test]
    fn learning_works_with_interleaved_sequential_ids() {
        // Small sequential ids collide across bases ("10" is 0x0a in decimal but also the
        // as-is key of response id "00000010"): nothing may be settled by another's receipt.
        let mut m = Matcher::new(
            Duration::from_secs(60),
            Duration::from_secs(10),
            vec![IdRule::Learn],
        );
        let (now, mut out) = (Instant::now(), Vec::new());
        let receipt_of = |i: u32| Receipt {
            message_id: i.to_string(),
            state: ReceiptState::Undeliverable,
            error_code: Some(i),
        };
        for i in 1..=200u32 {
            let mut a = accepted(&[&format!("{i:08x}")]);
            a.meta.event_id = format!("e{i}");
            m.accept(a, now, &mut out);
            if i > 5 {
                m.receipt(0, receipt_of(i - 5), now, &mut out);
            }
        }
        for i in 196..=200u32 {
            m.receipt(0, receipt_of(i), now, &mut out);
        }
        assert_eq!(m.id_form(0), IdForm::HexToDecimal);
        assert_eq!((out.len(), m.awaiting(), m.parked()), (200, 0, 0));
        for s in &out {
            let i = &s.event_id[1..];
            let want = format!("carrier error code {i}");
            assert_eq!(
                s.detail.as_deref(),
                Some(want.as_str()),
                "{} settled by its own receipt",
                s.event_id
            );
        }
    }

    #[test]
    fn a_carrier_whose_receipts_repeat_its_hex_ids_is_learned_as_is() {
        let mut m = Matcher::new(
            Duration::from_secs(60),
            Duration::from_secs(10),
            vec![IdRule::Learn],
        );
        let (now, mut out) = (Instant::now(), Vec::new());
        for i in 1..=300u32 {
            let mut a = accepted(&[&format!("{i:08x}")]);
            a.meta.event_id = format!("e{i}");
            m.accept(a, now, &mut out);
            if i > 5 {
                let r = receipt(&format!("{:08x}", i - 5), ReceiptState::Delivered);
                m.receipt(0, r, now, &mut out);
            }
        }
        for i in 296..=300u32 {
            m.receipt(
                0,
                receipt(&format!("{i:08x}"), ReceiptState::Delivered),
                now,
                &mut out,
            );
        }
        assert_eq!(m.id_form(0), IdForm::AsIs);
        assert_eq!((out.len(), m.awaiting(), m.parked()), (300, 0, 0));
    }

    #[test]
    fn intermediate_receipts_change_nothing() {
        let (mut m, now, mut out) = (m(), Instant::now(), Vec::new());
        m.accept(accepted(&["1"]), now, &mut out);
        assert_eq!(
            m.receipt(0, receipt("1", ReceiptState::Enroute), now, &mut out),
            ReceiptOutcome::Intermediate
        );
        assert!(out.is_empty());
        assert_eq!(m.awaiting(), 1);
    }

    #[test]
    fn missing_receipts_end_unconfirmed_and_parks_expire() {
        let (mut m, now, mut out) = (m(), Instant::now(), Vec::new());
        m.accept(accepted(&["1"]), now, &mut out);
        m.receipt(0, receipt("99", ReceiptState::Delivered), now, &mut out);
        assert_eq!(m.expire(now + Duration::from_secs(5), &mut out), 0);
        assert!(out.is_empty());
        assert_eq!(
            m.expire(now + Duration::from_secs(11), &mut out),
            1,
            "park expired"
        );
        assert!(out.is_empty());
        m.expire(now + Duration::from_secs(61), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].state, State::Unconfirmed);
        assert_eq!(out[0].reason.as_deref(), Some("no_receipt"));
        assert_eq!(m.awaiting(), 0);
        let late = m.receipt(0, receipt("1", ReceiptState::Delivered), now, &mut out);
        assert_eq!(
            late,
            ReceiptOutcome::Parked,
            "a receipt after unconfirmed is not matched"
        );
        assert_eq!(out.len(), 1);
    }
}
