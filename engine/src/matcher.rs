//! Receipt matching: correlates delivery receipts to accepted notifications.
//!
//! Keyed by (carrier, normalised message id). A receipt that arrives before its submit
//! response is parked and matched when the acceptance is registered; receipts of a
//! multi-part message are folded into one outcome; duplicates are counted and ignored;
//! notifications whose receipts never come end `unconfirmed` after the receipt timeout.
//! An expiring map: the maps plus deadline queues, purged by [`Matcher::expire`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use pigeon_smpp::receipt::{match_key, normalise_message_id, IdForm, Receipt, ReceiptState};
use tokio::time::Instant;

use crate::event::{State, StatusEvent};
use crate::notification::Meta;
use crate::router::CarrierId;

type Key = (CarrierId, String);

/// A notification every segment of which a carrier accepted.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub meta: Meta,
    pub carrier: CarrierId,
    pub carrier_name: Arc<str>,
    /// One per segment, as the submit responses spelled them.
    pub message_ids: Vec<String>,
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
    receipt_timeout: Duration,
    park_timeout: Duration,
    /// Per carrier, how its submit response ids are rewritten to match its receipts.
    id_forms: Vec<IdForm>,
}

impl Matcher {
    /// `id_forms[carrier]` rewrites that carrier's submit response ids before matching
    /// (carriers not listed: as they are).
    pub fn new(
        receipt_timeout: Duration,
        park_timeout: Duration,
        id_forms: Vec<IdForm>,
    ) -> Matcher {
        Matcher {
            awaiting: HashMap::new(),
            by_id: HashMap::new(),
            next: 0,
            parked: HashMap::new(),
            parked_deadlines: VecDeque::new(),
            settled: HashSet::new(),
            settled_deadlines: VecDeque::new(),
            awaiting_deadlines: VecDeque::new(),
            receipt_timeout,
            park_timeout,
            id_forms,
        }
    }

    /// The matching key of a submit response id of `carrier`.
    fn submit_key(&self, carrier: CarrierId, id: &str) -> Key {
        match self.id_forms.get(carrier).copied().unwrap_or_default() {
            IdForm::AsIs => (carrier, match_key(id)),
            form => (carrier, match_key(&normalise_message_id(id, form))),
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
        let slot = self.next;
        self.next += 1;
        let keys: Vec<Key> = a
            .message_ids
            .iter()
            .map(|id| self.submit_key(a.carrier, id))
            .collect();
        let open = keys.len();
        self.awaiting.insert(
            slot,
            Awaiting {
                accepted: a,
                open,
                worst: None,
                error_code: None,
            },
        );
        self.awaiting_deadlines
            .push_back((now + self.receipt_timeout, slot));
        for k in &keys {
            self.by_id.insert(k.clone(), slot);
        }
        for k in keys {
            if let Some(r) = self.parked.remove(&k) {
                self.apply(k, &r, now, out);
            }
        }
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
        if self.by_id.contains_key(&key) {
            self.apply(key, &r, now, out);
            return ReceiptOutcome::Matched;
        }
        if self.settled.contains(&key) || self.parked.contains_key(&key) {
            return ReceiptOutcome::Duplicate;
        }
        self.parked_deadlines
            .push_back((now + self.park_timeout, key.clone()));
        self.parked.insert(key, r);
        ReceiptOutcome::Parked
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
            },
            carrier: 0,
            carrier_name: "a".into(),
            message_ids: ids.iter().map(|s| (*s).to_owned()).collect(),
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
            vec![IdForm::HexToDecimal],
        );
        let (now, mut out) = (Instant::now(), Vec::new());
        m.accept(accepted(&["0000FF"]), now, &mut out);
        let r = m.receipt(0, receipt("255", ReceiptState::Delivered), now, &mut out);
        assert_eq!(r, ReceiptOutcome::Matched);
        assert_eq!(out.len(), 1);
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
