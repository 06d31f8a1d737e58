//! Receipt matching: correlates delivery receipts to accepted notifications.
//!
//! Keyed by (carrier, normalised message id). A receipt that arrives before its submit
//! response is parked and matched when the acceptance is registered; receipts of a
//! multi-part message are folded into one outcome; duplicates are counted and ignored;
//! notifications whose receipts never come end `unconfirmed` after the receipt timeout.
//! An expiring map: the awaiting notifications in acceptance order, the parked receipts with
//! a deadline queue and the settled ids in two generations (`settled`), purged by
//! [`Matcher::expire`].
//!
//! A notification waits up to the receipt timeout (two days by default), so there can be
//! millions at once: each is held compactly (`entry`) in a slab (`slab`), its message
//! ids found through an index that stores no key (`index`), and its status rebuilt only
//! when it is settled.

mod entry;
mod held;
mod index;
mod settled;
mod slab;

use std::collections::{BTreeMap, VecDeque};
use std::hash::BuildHasher;

// foldhash with a per-process random seed rather than SipHash: these maps are hashed on
// every acceptance and receipt, and SipHash was the largest single cost of the thread.
use foldhash::{HashMap, HashMapExt, HashSet};
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
use crate::store::TimelineEntry;

use entry::Entry;
pub use held::{HeldAnswers, PARKED_ANSWER_HOLD};
use index::Index;
use settled::Settled;
use slab::Slab;

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
    /// `learning`: the carrier's id form is still being learned, so the receipt may wait
    /// for that rather than for a submit response about to be handled.
    Parked { id: ParkId, learning: bool },
}

/// What happened to one receipt relayed by another instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayedOutcome {
    /// Matched a segment of a notification awaiting it here.
    Matched,
    /// Not final: nothing changes.
    Intermediate,
    /// For a segment settled here recently (matched, or the receipt this instance relayed
    /// itself, read back): passed over for good.
    Settled,
    /// Nothing here awaits it now: another instance's, or one whose acceptance this instance
    /// has not registered yet (the follower tries it again for a while, `relay.rs`).
    NotOurs,
}

/// A receipt that settled nothing: its key, and whether a segment awaits that key but the
/// receipt's id was held back as ambiguous (digits only, while the carrier's id form is
/// being learned and its response ids are hexadecimal).
struct Missed {
    key: Key,
    ambiguous: bool,
}

/// Names a parked receipt (and its copies sent while it is parked) in
/// [`Matcher::take_applied_parks`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParkId(u64);

/// The correlation table.
#[derive(Debug)]
pub struct Matcher {
    /// The awaiting notifications, oldest (so soonest due) first.
    entries: Slab,
    /// Matching key of each awaiting message id, to its entry's slot.
    by_id: Index,
    by_id_hasher: foldhash::fast::RandomState,
    /// Applied to the index's hashes: all ones but in tests, which make keys collide.
    hash_mask: u32,
    /// Acceptances so far: orders the failovers due at the same time.
    next: u64,
    /// Receipts that came before their acceptance.
    parked: HashMap<Key, (Receipt, ParkId)>,
    next_park: u64,
    /// Parked receipts applied since [`Matcher::take_applied_parks`] was last called.
    applied_parks: Vec<ParkId>,
    parked_deadlines: VecDeque<(Instant, Key)>,
    /// Recently settled ids (for the park timeout at least), to tell duplicates from
    /// unknown receipts, by a 64-bit fingerprint of their key: a receipt taken for a
    /// duplicate by a fingerprint collision is a chance of 2⁻⁶⁴ per pair.
    settled: Settled,
    /// Receipt failover times of the notifications that have one, soonest first, to slots.
    failovers: BTreeMap<(Instant, u64), u32>,
    receipt_timeout: Duration,
    park_timeout: Duration,
    /// Receipt deadlines are held as nanoseconds from this.
    base: Instant,
    /// Per carrier, how its submit response ids are rewritten to match its receipts.
    ids: Vec<CarrierIds>,
    /// Each (carrier, name) of the acceptances once; entries name theirs by position.
    carriers: Vec<(CarrierId, Arc<str>)>,
    /// Room for the keys of one acceptance, kept not to allocate it for each.
    keys: Vec<Key>,
    /// Final receipts of single segments of notifications still awaiting others', to be
    /// recorded before their SMSC is answered ([`Matcher::take_segment_receipts`]).
    segment_receipts: Vec<(String, TimelineEntry)>,
}

/// Reason of the timeline entry that records a final receipt for one segment of a
/// notification whose other segments' receipts are still awaited.
pub const SEGMENT_RECEIPT: &str = "segment_receipt";

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
            entries: Slab::new(),
            by_id: Index::new(),
            by_id_hasher: foldhash::fast::RandomState::default(),
            hash_mask: u32::MAX,
            next: 0,
            parked: HashMap::new(),
            next_park: 0,
            applied_parks: Vec::new(),
            parked_deadlines: VecDeque::new(),
            settled: Settled::new(park_timeout, Instant::now()),
            failovers: BTreeMap::new(),
            receipt_timeout,
            park_timeout,
            base: Instant::now(),
            ids,
            carriers: Vec::new(),
            keys: Vec::new(),
            segment_receipts: Vec::new(),
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
        // Two passes: an old key of one notification may be the new key of another. Oldest
        // first, so that of two notifications with the same new key, the newer has it.
        let mut moved = Vec::new();
        for (slot, e) in self.entries.iter_oldest_first() {
            if self.carrier_of(e) != carrier {
                continue;
            }
            for id in e.message_ids() {
                let before = key_in_form(carrier, id, old);
                if self.find(&before, old) == Some(slot) {
                    moved.push((before, key_in_form(carrier, id, form), slot));
                }
            }
        }
        for (before, _, _) in &moved {
            self.unindex(before, old);
        }
        for (_, after, slot) in moved {
            self.index(&after, slot, form);
        }
        let mut ready: Vec<Key> = self
            .parked
            .keys()
            .filter(|k| k.0 == carrier && self.find(k, form).is_some())
            .cloned()
            .collect();
        // In a set order: of two receipts for one notification, the first applied may decide
        // its error code.
        ready.sort_unstable();
        for k in ready {
            if let Some((r, id)) = self.parked.remove(&k) {
                self.applied_parks.push(id);
                self.apply(k, &r, now, out);
            }
        }
    }

    /// Notifications waiting for receipts.
    pub fn awaiting(&self) -> usize {
        self.entries.len()
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
        let seq = self.next;
        self.next += 1;
        let carrier = a.carrier;
        if let Some(c) = self.ids.get_mut(carrier) {
            if let Some(l) = c.learner.as_mut() {
                for id in &a.message_ids {
                    l.observe_submit_id(id);
                    c.hex_response_ids |= id
                        .bytes()
                        .any(|b| b.is_ascii_hexdigit() && !b.is_ascii_digit());
                }
            }
        }
        // Deadlines stay in order: aged acceptances are registered at start-up, oldest first,
        // before any fresh one.
        let deadline = self.nanos(now + self.receipt_timeout.saturating_sub(age));
        let Some(at) = self.carrier_position(carrier, &a.carrier_name) else {
            out.push(unheld(a.meta, &a.carrier_name, a.message_ids));
            return;
        };
        let mut e = Entry::new(a.meta, at, &a.message_ids, deadline);
        if let Some(resubmit) = a.resubmit {
            e.set_resubmit(resubmit, seq);
        }
        let failover = e.failover_key();
        let slot = match self.entries.push(e) {
            Ok(slot) => slot,
            Err(e) => {
                out.push(unheld(e.meta(), &a.carrier_name, a.message_ids));
                return;
            }
        };
        let form = self.id_form(carrier);
        let mut keys = std::mem::take(&mut self.keys);
        keys.extend(
            a.message_ids
                .iter()
                .map(|id| key_in_form(carrier, id, form)),
        );
        if let Some(key) = failover {
            self.failovers.insert(key, slot);
        }
        for k in &keys {
            self.index(k, slot, form);
        }
        let doubtful = self.doubts_digit_ids(carrier);
        for k in keys.drain(..) {
            let ok = self
                .parked
                .get(&k)
                .is_some_and(|(r, _)| !(doubtful && digits_only(&r.message_id)));
            if let Some((r, id)) = ok.then(|| self.parked.remove(&k)).flatten() {
                self.applied_parks.push(id);
                self.apply(k, &r, now, out);
            }
        }
        self.keys = keys;
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
        if !r.state.is_final() {
            return ReceiptOutcome::Intermediate;
        }
        let learning = self.ids.get(carrier).is_some_and(|c| c.learner.is_some());
        let digits = digits_only(&r.message_id);
        let Missed { key, ambiguous } = match self.settle_awaited(carrier, &r, now, out) {
            Ok(()) => {
                if learning && !digits {
                    self.count_as_is_match(carrier, now, out);
                }
                return ReceiptOutcome::Matched;
            }
            Err(missed) => missed,
        };
        if let Some((_, id)) = self.parked.get(&key) {
            // Sent again while the first is parked: still only in memory.
            return ReceiptOutcome::Parked { id: *id, learning };
        }
        if self.settled.contains(self.fingerprint(&key)) {
            return ReceiptOutcome::Duplicate;
        }
        // A receipt held back only because its id is ambiguous is no evidence of a base
        // change: it also reads as a response id as it is.
        let proposal = self
            .ids
            .get_mut(carrier)
            .and_then(|c| c.learner.as_mut())
            .filter(|_| !ambiguous)
            .and_then(|l| l.observe_unmatched_receipt_id(&r.message_id));
        self.parked_deadlines
            .push_back((now + self.park_timeout, key.clone()));
        let id = ParkId(self.next_park);
        self.next_park += 1;
        self.parked.insert(key, (r, id));
        if let Some(form) = proposal.filter(|f| *f != self.id_form(carrier)) {
            if self.would_match(carrier, form) > self.would_match(carrier, self.id_form(carrier)) {
                self.relearn(carrier, form, now, out);
            } else if let Some(l) = self.ids.get_mut(carrier).and_then(|c| c.learner.as_mut()) {
                // The parked receipts do not bear the proposal out: start over.
                l.reset();
            }
        }
        // Learned just now, the form no longer keeps this receipt (if it was applied, it is
        // among the applied parks).
        let learning = self.ids.get(carrier).is_some_and(|c| c.learner.is_some());
        ReceiptOutcome::Parked { id, learning }
    }

    /// Applies one receipt relayed by another instance (`relay.rs`): it settles a
    /// notification awaiting it here, or nothing here awaits it (yet). Never parked here:
    /// every instance reads the relayed receipts, so most that nothing here awaits belong to
    /// another; the follower tries those again while the sender's acceptance may still come.
    pub fn relayed_receipt(
        &mut self,
        carrier: CarrierId,
        r: &Receipt,
        now: Instant,
        out: &mut Vec<StatusEvent>,
    ) -> RelayedOutcome {
        if !r.state.is_final() {
            return RelayedOutcome::Intermediate;
        }
        match self.settle_awaited(carrier, r, now, out) {
            Ok(()) => RelayedOutcome::Matched,
            Err(missed) if self.settled.contains(self.fingerprint(&missed.key)) => {
                RelayedOutcome::Settled
            }
            Err(_) => RelayedOutcome::NotOurs,
        }
    }

    /// Settles the segment whose receipt `r` is, if it awaits one here and `r`'s id can be
    /// trusted as it is (see [`CarrierIds`]); otherwise says what the lookup found.
    fn settle_awaited(
        &mut self,
        carrier: CarrierId,
        r: &Receipt,
        now: Instant,
        out: &mut Vec<StatusEvent>,
    ) -> Result<(), Missed> {
        let key = (carrier, key_of(&r.message_id));
        let doubtful = self.doubts_digit_ids(carrier) && digits_only(&r.message_id);
        let h = self.hash(&key);
        match self.find_hashed(h, &key, self.id_form(carrier)) {
            Some(slot) if !doubtful => {
                self.by_id.remove_found(h, &key, slot);
                self.settle_segment(key, slot, r, now, out);
                Ok(())
            }
            found => Err(Missed {
                key,
                ambiguous: found.is_some(),
            }),
        }
    }

    /// The receipt parked as `park`, with its carrier, while it is parked. Park ids are
    /// handed out in the order of `parked_deadlines`, which only loses its front, so a park's
    /// place there is its id less the id of the front.
    pub fn parked_receipt(&self, park: ParkId) -> Option<(CarrierId, &Receipt)> {
        let front = self.next_park - self.parked_deadlines.len() as u64;
        let at = usize::try_from(park.0.checked_sub(front)?).ok()?;
        let (_, key) = self.parked_deadlines.get(at)?;
        let (r, id) = self.parked.get(key)?;
        (*id == park).then_some((key.0, r))
    }

    /// Forgets a parked receipt that was relayed to the other instances: it is theirs now,
    /// and a copy its SMSC sends again is answered as a duplicate. `false` if it is no longer
    /// parked (applied or expired meanwhile).
    pub fn relayed(&mut self, carrier: CarrierId, r: &Receipt, park: ParkId, now: Instant) -> bool {
        let key = (carrier, key_of(&r.message_id));
        if self.parked.get(&key).is_none_or(|(_, id)| *id != park) {
            return false;
        }
        self.parked.remove(&key);
        self.remember_settled(&key, now);
        true
    }

    /// How many of `carrier`'s parked receipts would match an awaiting notification if its
    /// response ids were read in `form`.
    fn would_match(&self, carrier: CarrierId, form: IdForm) -> usize {
        let keys: HashSet<Key> = self
            .entries
            .iter()
            .filter(|(_, e)| self.carrier_of(e) == carrier)
            .flat_map(|(_, e)| e.message_ids().map(|id| key_in_form(carrier, id, form)))
            .collect();
        self.parked.keys().filter(|k| keys.contains(*k)).count()
    }

    fn apply(&mut self, key: Key, r: &Receipt, now: Instant, out: &mut Vec<StatusEvent>) {
        if let Some(slot) = self.unindex(&key, self.id_form(key.0)) {
            self.settle_segment(key, slot, r, now, out);
        }
    }

    /// Applies `r` to the entry at `slot`, whose `key` is already out of the index.
    fn settle_segment(
        &mut self,
        key: Key,
        slot: u32,
        r: &Receipt,
        now: Instant,
        out: &mut Vec<StatusEvent>,
    ) {
        self.remember_settled(&key, now);
        let Some(e) = self.entries.get_mut(slot) else {
            return;
        };
        let worse = severity(r.state) > e.worst.map_or(0, severity);
        if e.open > 1 {
            e.open -= 1;
            if worse {
                e.set_worst(r.state, r.error_code);
            }
            self.note_segment_receipt(slot, r);
            return;
        }
        e.open = 0;
        if worse {
            e.set_worst(r.state, r.error_code);
        }
        if let Some(s) = self.entries.get(slot).map(|e| self.settle(e)) {
            out.push(s);
        }
        self.discard(slot);
    }

    /// Notifications whose receipt failover time has come with no final receipt for any of
    /// their segments: each is forgotten here (a late receipt from the carrier that accepted
    /// it counts as a duplicate) and returned, flagged `possible_duplicate`, to be sent
    /// through the next carrier of its route. Those with some segment settled stay.
    pub fn due_failovers(&mut self, now: Instant) -> Vec<Notification> {
        let mut due = Vec::new();
        while let Some((&(at, _), &slot)) = self.failovers.first_key_value() {
            if at > now {
                break;
            }
            self.failovers.pop_first();
            // Part of it reached the customer, or it is too late to send it anywhere else:
            // it stays with this carrier and waits for its receipts.
            let untouched = self.entries.get(slot).is_some_and(|e| {
                usize::try_from(e.open).is_ok_and(|open| open == e.id_count())
                    && e.worst.is_none()
                    && e.resubmit().is_some_and(|(_, n)| n.deadline > now)
            });
            if !untouched {
                continue;
            }
            let Some((carrier, keys)) = self.entries.get(slot).map(|e| self.keys_of(e)) else {
                continue;
            };
            for key in keys {
                self.unindex(&key, self.id_form(carrier));
                self.remember_settled(&key, now);
            }
            let Some(e) = self.remove(slot) else {
                continue;
            };
            if let Some((_, mut n)) = e.into_resubmit() {
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
        let now_nanos = self.nanos(now);
        while let Some((slot, e)) = self.entries.first() {
            if e.deadline > now_nanos {
                break;
            }
            let (carrier, keys) = self.keys_of(e);
            let mut s = self.carrier_status(e, State::Unconfirmed);
            s.reason = Some("no_receipt".into());
            out.push(s);
            for key in &keys {
                self.unindex(key, self.id_form(carrier));
            }
            if !self.discard(slot) {
                break;
            }
        }
        let mut unmatched = 0;
        while let Some((at, _)) = self.parked_deadlines.front() {
            if *at > now {
                break;
            }
            if let Some((_, k)) = self.parked_deadlines.pop_front() {
                if self.parked.remove(&k).is_some() {
                    unmatched += 1;
                    // Its SMSC was told to send it again (ADR 0008): a copy that comes now
                    // is answered as a duplicate, not parked and refused once more.
                    self.remember_settled(&k, now);
                }
            }
        }
        self.settled.expire(now);
        // Neither maps nor queues give memory back by themselves: after a peak (a burst of
        // early receipts, a carrier's outage) what they held would stay taken for good.
        shrink!(self.parked, self.parked_deadlines);
        unmatched
    }

    /// An entry's carrier, and its keys in the carrier's form.
    fn keys_of(&self, e: &Entry) -> (CarrierId, Vec<Key>) {
        let carrier = self.carrier_of(e);
        let keys = e
            .message_ids()
            .map(|id| self.submit_key(carrier, id))
            .collect();
        (carrier, keys)
    }

    /// Forgets an awaiting notification, whose keys are out of the index (its entry tells
    /// them apart there), and returns it.
    fn remove(&mut self, slot: u32) -> Option<Entry> {
        let failover = self.entries.get(slot)?.failover_key();
        let e = self.entries.remove(slot)?;
        self.removed(failover);
        Some(e)
    }

    /// As [`Matcher::remove`], for an entry no longer wanted; whether there was one.
    fn discard(&mut self, slot: u32) -> bool {
        let failover = self.entries.get(slot).and_then(Entry::failover_key);
        let discarded = self.entries.discard(slot);
        if discarded {
            self.removed(failover);
        }
        discarded
    }

    fn removed(&mut self, failover: Option<(Instant, u64)>) {
        if let Some(key) = failover {
            self.failovers.remove(&key);
        }
        self.by_id.shrink();
    }

    /// `t` as nanoseconds from `base`.
    fn nanos(&self, t: Instant) -> i64 {
        match t.checked_duration_since(self.base) {
            Some(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
            None => i64::try_from(self.base.duration_since(t).as_nanos()).map_or(i64::MIN, |n| -n),
        }
    }

    /// The position of (`carrier`, `name`) in the table, added if new; `None` only if the
    /// table had as many as positions can number.
    fn carrier_position(&mut self, carrier: CarrierId, name: &Arc<str>) -> Option<u32> {
        let known = self
            .carriers
            .iter()
            .position(|(c, n)| *c == carrier && (Arc::ptr_eq(n, name) || n == name));
        if let Some(at) = known {
            return u32::try_from(at).ok();
        }
        let at = u32::try_from(self.carriers.len()).ok()?;
        self.carriers.push((carrier, name.clone()));
        Some(at)
    }

    fn carrier_of(&self, e: &Entry) -> CarrierId {
        self.carriers
            .get(e.carrier as usize)
            .map_or(CarrierId::MAX, |c| c.0)
    }

    /// The whole 64-bit hash of a key, which the tests' collision mask does not touch.
    fn fingerprint(&self, key: &Key) -> u64 {
        self.by_id_hasher.hash_one((key.0, key.1.as_str()))
    }

    /// Keeps `key` as settled for the park timeout at least: a receipt for it meanwhile is a
    /// duplicate.
    fn remember_settled(&mut self, key: &Key, now: Instant) {
        let f = self.fingerprint(key);
        self.settled.insert(f, now);
    }

    fn hash(&self, key: &Key) -> u32 {
        // The low half of a 64-bit hash: a shared one costs an overflow entry, nothing more.
        (self.by_id_hasher.hash_one((key.0, key.1.as_str())) as u32) & self.hash_mask
    }

    /// Whether no two keys of the entry at `slot` share a hash.
    fn alone(&self, slot: u32, form: IdForm) -> bool {
        let Some(e) = self.entries.get(slot) else {
            return false;
        };
        if e.single() {
            return true;
        }
        let carrier = self.carrier_of(e);
        let mut keys: Vec<(u32, Key)> = e
            .message_ids()
            .map(|id| {
                let k = key_in_form(carrier, id, form);
                (self.hash(&k), k)
            })
            .collect();
        keys.sort_unstable();
        keys.dedup();
        keys.windows(2).all(|w| w[0].0 != w[1].0)
    }

    /// The slot `key` (of a carrier whose ids are read in `form`) leads to.
    fn find(&self, key: &Key, form: IdForm) -> Option<u32> {
        self.find_hashed(self.hash(key), key, form)
    }

    /// As [`Matcher::find`], `h` being the key's hash.
    fn find_hashed(&self, h: u32, key: &Key, form: IdForm) -> Option<u32> {
        let holds = |slot| holds(&self.entries, &self.carriers, slot, key, form);
        self.by_id.get(h, key, holds)
    }

    fn unindex(&mut self, key: &Key, form: IdForm) -> Option<u32> {
        let h = self.hash(key);
        let Matcher {
            by_id,
            entries,
            carriers,
            ..
        } = self;
        let holds = |slot| holds(entries, carriers, slot, key, form);
        by_id.remove(h, key, holds)
    }

    fn index(&mut self, key: &Key, slot: u32, form: IdForm) {
        let (h, alone) = (self.hash(key), self.alone(slot, form));
        let Matcher {
            by_id,
            entries,
            carriers,
            ..
        } = self;
        let holds = |slot| holds(entries, carriers, slot, key, form);
        by_id.insert(h, key, slot, holds, alone);
    }

    /// Keeps a segment's final receipt for [`Matcher::take_segment_receipts`].
    fn note_segment_receipt(&mut self, slot: u32, r: &Receipt) {
        let Some(e) = self.entries.get(slot) else {
            return;
        };
        let (state, _) = outcome(r.state);
        let stat = r.state.stat_text();
        let detail = match r.error_code.filter(|c| *c != 0) {
            Some(code) => format!("{stat} err:{code}"),
            None => stat.to_owned(),
        };
        let entry = TimelineEntry {
            state,
            at: time::OffsetDateTime::now_utc(),
            carrier: (self.carriers.get(e.carrier as usize)).map(|(_, name)| name.to_string()),
            reason: Some(SEGMENT_RECEIPT.to_owned()),
            detail: Some(detail),
            message_ids: vec![r.message_id.clone()],
            command_status: None,
            possible_duplicate: false,
        };
        let event_id = e.meta().event_id;
        self.segment_receipts.push((event_id, entry));
    }

    /// The parked receipts applied since the last call (by [`Matcher::accept`] or once their
    /// carrier's id form was learned): their outcome is among the statuses and segment
    /// receipts of the same call, so their `deliver_sm` can be answered once those are
    /// recorded.
    pub fn take_applied_parks(&mut self) -> Vec<ParkId> {
        std::mem::take(&mut self.applied_parks)
    }

    /// The segments' receipts noted since the last call, by event id: each goes to the
    /// store ([`crate::store::Change::Segment`]) before its `deliver_sm` is answered, so
    /// that a restart does not wait for it again.
    pub fn take_segment_receipts(&mut self) -> Vec<(String, TimelineEntry)> {
        std::mem::take(&mut self.segment_receipts)
    }

    fn carrier_status(&self, e: &Entry, state: State) -> StatusEvent {
        // The strings rebuilt go into the status as they are rather than copied again by
        // `Meta::status` (a test holds the two to the same result).
        let mut meta = e.meta();
        let event_id = std::mem::take(&mut meta.event_id);
        let transaction_id = std::mem::take(&mut meta.transaction_id);
        let masked = std::mem::take(&mut meta.masked);
        let mut s = meta.status(state);
        s.event_id = event_id;
        s.transaction_id = Some(transaction_id);
        s.destination = Some(masked);
        s.carrier = self
            .carriers
            .get(e.carrier as usize)
            .map(|(_, name)| name.to_string());
        s.message_ids = e.message_ids().map(str::to_owned).collect();
        s
    }

    fn settle(&self, e: &Entry) -> StatusEvent {
        let (state, reason) = e.worst.map_or((State::Delivered, None), outcome);
        let mut s = self.carrier_status(e, state);
        s.reason = reason.map(str::to_owned);
        if let Some(code) = e
            .error_code()
            .filter(|c| *c != 0 && state != State::Delivered)
        {
            s.detail = Some(format!("carrier error code {code}"));
        }
        s
    }
}

/// The notification state a final receipt state stands for, with its reason.
fn outcome(state: ReceiptState) -> (State, Option<&'static str>) {
    match state {
        ReceiptState::Delivered => (State::Delivered, None),
        ReceiptState::Expired => (State::Expired, Some("carrier_expired")),
        ReceiptState::Rejected => (State::Undelivered, Some("carrier_rejected")),
        ReceiptState::Deleted => (State::Undelivered, Some("carrier_deleted")),
        ReceiptState::Unknown => (State::Undelivered, Some("carrier_unknown")),
        _ => (State::Undelivered, Some("undeliverable")),
    }
}

/// Shrinks each collection to twice what it holds once it holds less than a quarter of its
/// capacity: a shrink copies what is left, so that each is paid for by many removals.
macro_rules! shrink {
    ($($c:expr),+) => {
        $(
            if $c.capacity() > $crate::matcher::SHRINK_ABOVE && $c.len() < $c.capacity() / 4 {
                $c.shrink_to($c.len() * 2);
            }
        )+
    };
}
use shrink;

/// Capacity below which a collection is left as it is.
const SHRINK_ABOVE: usize = 4096;

fn holds(
    entries: &Slab,
    carriers: &[(CarrierId, Arc<str>)],
    slot: u32,
    key: &Key,
    form: IdForm,
) -> bool {
    entries.get(slot).is_some_and(|e| {
        carriers.get(e.carrier as usize).map(|c| c.0) == Some(key.0)
            && e.message_ids().any(|id| key_is(id, form, &key.1))
    })
}

/// The status of an acceptance the matcher cannot hold: it never happens (that takes some
/// four billion awaiting notifications, or as many carrier names), but if it did, the
/// notification would get an outcome all the same.
fn unheld(meta: Meta, carrier_name: &str, message_ids: Vec<String>) -> StatusEvent {
    let mut s = meta.status(State::Unconfirmed);
    tracing::error!(event_id = %s.event_id, "receipt matcher full");
    s.carrier = Some(carrier_name.to_owned());
    s.message_ids = message_ids;
    s.reason = Some("no_receipt".into());
    s
}

fn digits_only(id: &str) -> bool {
    id.trim().bytes().all(|b| b.is_ascii_digit())
}

fn key_in_form(carrier: CarrierId, id: &str, form: IdForm) -> Key {
    match form {
        IdForm::AsIs => (carrier, key_of(id)),
        form => (carrier, key_of(&normalise_message_id(id, form))),
    }
}

/// [`match_key`], in one allocation rather than two for an ASCII id: every acceptance and
/// receipt makes a key.
fn key_of(id: &str) -> String {
    if !id.is_ascii() {
        return match_key(id);
    }
    // Lowercasing ASCII changes no `0` nor any length, so it can come last.
    let trimmed = id.trim();
    match trimmed.trim_start_matches('0') {
        "" if !trimmed.is_empty() => "0".to_owned(),
        stripped => stripped.to_ascii_lowercase(),
    }
}

/// Whether `id`, read in `form`, has the matching key `key`: what [`key_in_form`] says,
/// without building the key for an ASCII id read as it is (every receipt checks one).
fn key_is(id: &str, form: IdForm, key: &str) -> bool {
    if form != IdForm::AsIs || !id.is_ascii() {
        return key_in_form(0, id, form).1 == key;
    }
    // `match_key`: trimmed, lowercased, leading zeros stripped, all zeros "0".
    let lower = id.trim().as_bytes();
    let stripped = match lower.iter().position(|&b| b != b'0') {
        Some(at) => lower.get(at..).unwrap_or_default(),
        None if lower.is_empty() => lower,
        None => b"0",
    };
    stripped.eq_ignore_ascii_case(key.as_bytes()) && !key.bytes().any(|b| b.is_ascii_uppercase())
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
        with_rules(Vec::new())
    }

    /// A matcher with these id rules for carrier 0 (receipts wait 60 s, parked ones 10 s).
    fn with_rules(rules: Vec<IdRule>) -> Matcher {
        Matcher::new(Duration::from_secs(60), Duration::from_secs(10), rules)
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
    fn a_segment_receipt_before_the_last_is_noted_for_the_store_and_the_last_settles() {
        let (mut m, now, mut out) = (m(), Instant::now(), Vec::new());
        m.accept(accepted(&["s1", "s2"]), now, &mut out);
        let mut first = receipt("s1", ReceiptState::Undeliverable);
        first.error_code = Some(34);
        assert_eq!(m.receipt(0, first, now, &mut out), ReceiptOutcome::Matched);
        assert!(out.is_empty());
        let noted = m.take_segment_receipts();
        let [(event_id, entry)] = noted.as_slice() else {
            panic!("one segment noted: {noted:?}");
        };
        assert_eq!(event_id, "e1");
        assert_eq!(entry.state, State::Undelivered);
        assert_eq!(entry.reason.as_deref(), Some(SEGMENT_RECEIPT));
        assert_eq!(entry.detail.as_deref(), Some("UNDELIV err:34"));
        assert_eq!(entry.message_ids, ["s1"]);
        assert_eq!(entry.carrier.as_deref(), Some("a"));
        assert!(m.take_segment_receipts().is_empty(), "taken once");
        let last = receipt("s2", ReceiptState::Delivered);
        assert_eq!(m.receipt(0, last, now, &mut out), ReceiptOutcome::Matched);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].state, State::Undelivered, "the worst segment's");
        assert!(
            m.take_segment_receipts().is_empty(),
            "the last one is the status"
        );
    }

    /// The park of a parked outcome.
    fn park(o: ReceiptOutcome) -> ParkId {
        match o {
            ReceiptOutcome::Parked {
                id,
                learning: false,
            } => id,
            other => panic!("not parked for its acceptance: {other:?}"),
        }
    }

    #[test]
    fn a_relayed_receipt_settles_what_waits_here_and_is_never_parked() {
        let (mut m, now, mut out) = (m(), Instant::now(), Vec::new());
        m.accept(accepted(&["r1"]), now, &mut out);
        let stranger = receipt("r9", ReceiptState::Delivered);
        assert_eq!(
            m.relayed_receipt(0, &stranger, now, &mut out),
            RelayedOutcome::NotOurs
        );
        assert_eq!(
            (m.parked(), out.len()),
            (0, 0),
            "another instance's: not kept"
        );
        let enroute = receipt("r1", ReceiptState::Enroute);
        assert_eq!(
            m.relayed_receipt(0, &enroute, now, &mut out),
            RelayedOutcome::Intermediate
        );
        let ours = receipt("r1", ReceiptState::Delivered);
        assert_eq!(
            m.relayed_receipt(0, &ours, now, &mut out),
            RelayedOutcome::Matched
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].state, State::Delivered);
        assert_eq!(m.awaiting(), 0);
        assert_eq!(
            m.relayed_receipt(0, &ours, now, &mut out),
            RelayedOutcome::Settled,
            "settled: a copy changes nothing, for good"
        );
        assert_eq!(
            m.relayed_receipt(1, &receipt("r1", ReceiptState::Delivered), now, &mut out),
            RelayedOutcome::NotOurs,
            "the same id from another carrier"
        );
        // Relayed before its acceptance is registered here: not ours yet, then matched.
        assert_eq!(
            m.relayed_receipt(0, &stranger, now, &mut out),
            RelayedOutcome::NotOurs
        );
        m.accept(accepted(&["r9"]), now, &mut out);
        assert_eq!(
            m.relayed_receipt(0, &stranger, now, &mut out),
            RelayedOutcome::Matched
        );
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn a_receipt_this_instance_relayed_is_settled_when_it_reads_it_back() {
        let (mut m, now, mut out) = (m(), Instant::now(), Vec::new());
        let r = receipt("z1", ReceiptState::Delivered);
        let id = park(m.receipt(0, r.clone(), now, &mut out));
        assert!(m.relayed(0, &r, id, now));
        assert_eq!(
            m.relayed_receipt(0, &r, now, &mut out),
            RelayedOutcome::Settled
        );
        assert!(out.is_empty());
    }

    #[test]
    fn a_relayed_park_is_forgotten_and_its_copies_count_as_duplicates() {
        let (mut m, now, mut out) = (m(), Instant::now(), Vec::new());
        let r = receipt("x1", ReceiptState::Delivered);
        let id = park(m.receipt(0, r.clone(), now, &mut out));
        assert_eq!(m.parked_receipt(id), Some((0, &r)));
        assert_eq!(m.parked_receipt(ParkId(id.0 + 1)), None);
        assert!(!m.relayed(0, &r, ParkId(id.0 + 1), now), "another park");
        assert!(m.relayed(0, &r, id, now));
        assert_eq!(m.parked(), 0);
        assert_eq!(m.parked_receipt(id), None, "no longer parked");
        assert!(!m.relayed(0, &r, id, now), "once");
        assert_eq!(
            m.receipt(0, r.clone(), now, &mut out),
            ReceiptOutcome::Duplicate,
            "the SMSC's copy is answered, not parked again"
        );
        assert_eq!(
            m.expire(now + Duration::from_secs(11), &mut out),
            0,
            "not counted unmatched here"
        );
        // Found by its id once the parks before it have expired.
        let early = park(m.receipt(0, receipt("y1", ReceiptState::Delivered), now, &mut out));
        let later_at = now + Duration::from_secs(5);
        let y2 = receipt("y2", ReceiptState::Delivered);
        let later = park(m.receipt(0, y2.clone(), later_at, &mut out));
        m.expire(now + Duration::from_secs(12), &mut out);
        assert_eq!(m.parked_receipt(early), None, "expired");
        assert_eq!(m.parked_receipt(later), Some((0, &y2)));
        // Applied before the relay was confirmed: nothing to forget.
        let r2 = receipt("x2", ReceiptState::Delivered);
        let id2 = park(m.receipt(0, r2.clone(), now, &mut out));
        m.accept(accepted(&["x2"]), now, &mut out);
        assert!(!m.relayed(0, &r2, id2, now));
    }

    #[test]
    fn a_parked_receipt_sent_again_is_still_parked_until_its_acceptance_or_its_end() {
        let (mut m, now, mut out) = (m(), Instant::now(), Vec::new());
        let early = || receipt("q1", ReceiptState::Delivered);
        let first = park(m.receipt(0, early(), now, &mut out));
        assert_eq!(park(m.receipt(0, early(), now, &mut out)), first, "a copy");
        assert!(m.take_applied_parks().is_empty());
        m.accept(accepted(&["q1"]), now, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(m.take_applied_parks(), [first], "its answers may go");
        assert!(m.take_applied_parks().is_empty(), "once");
        let late = m.receipt(0, early(), now, &mut out);
        assert_eq!(late, ReceiptOutcome::Duplicate);

        // One that never matches is parked (and refused) until its park ends, then answered.
        let stray = || receipt("q9", ReceiptState::Delivered);
        let stray_park = park(m.receipt(0, stray(), now, &mut out));
        assert_ne!(stray_park, first);
        let parked_until = now + Duration::from_secs(10);
        assert_eq!(
            m.expire(parked_until - Duration::from_millis(1), &mut out),
            0
        );
        let again = m.receipt(0, stray(), now, &mut out);
        assert_eq!(park(again), stray_park);
        assert_eq!(m.expire(parked_until, &mut out), 1, "unmatched");
        let after = m.receipt(0, stray(), parked_until, &mut out);
        assert_eq!(after, ReceiptOutcome::Duplicate);
        assert!(m.take_applied_parks().is_empty(), "expired, not applied");
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
        let id = park(r);
        assert!(out.is_empty());
        m.accept(accepted(&["7"]), now, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(m.parked(), 0);
        assert_eq!(m.take_applied_parks(), [id]);
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
        park(m.receipt(1, receipt("1", ReceiptState::Delivered), now, &mut out));
        assert!(out.is_empty());
    }

    #[test]
    fn a_carrier_with_hex_responses_and_decimal_receipts_is_matched() {
        let mut m = with_rules(vec![IdRule::Fixed(IdForm::HexToDecimal)]);
        let (now, mut out) = (Instant::now(), Vec::new());
        m.accept(accepted(&["0000FF"]), now, &mut out);
        let r = m.receipt(0, receipt("255", ReceiptState::Delivered), now, &mut out);
        assert_eq!(r, ReceiptOutcome::Matched);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn hex_responses_with_decimal_receipts_are_learned_and_matched() {
        let mut m = with_rules(vec![IdRule::Learn]);
        let (now, mut out) = (Instant::now(), Vec::new());
        for i in 0..30u32 {
            let mut a = accepted(&[&format!("{:08x}", 0xa0 + i)]);
            a.meta.event_id = format!("e{i}");
            m.accept(a, now, &mut out);
        }
        let mut parked = Vec::new();
        for i in 0..30u32 {
            let r = receipt(&(0xa0 + i).to_string(), ReceiptState::Delivered);
            if let ReceiptOutcome::Parked { id, learning } = m.receipt(0, r, now, &mut out) {
                parked.push((id, learning));
            }
        }
        assert_eq!(m.id_form(0), IdForm::HexToDecimal);
        // Parked while the form was learned, so refused at once, but the last: its arrival
        // settled the form and applied them all.
        let (last, before) = parked.split_last().expect("some were parked");
        assert!(before.iter().all(|(_, learning)| *learning), "{parked:?}");
        assert!(!last.1, "{parked:?}");
        let mut applied = m.take_applied_parks();
        applied.sort_unstable();
        let ids: Vec<ParkId> = parked.iter().map(|(id, _)| *id).collect();
        assert_eq!(applied, ids);
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
        let mut m = with_rules(vec![IdRule::Learn]);
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
        let mut m = with_rules(vec![IdRule::Learn]);
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
        // Not matched after unconfirmed.
        park(late);
        assert_eq!(out.len(), 1);
    }

    /// A matcher whose index hashes are cut to `mask`: with few bits, most keys share one.
    fn with_hash_mask(mask: u32) -> Matcher {
        let mut m = m();
        m.hash_mask = mask;
        m
    }

    /// What a status says, `at` aside (`OffsetDateTime`'s equality ignores the offset, the
    /// JSON does not).
    fn json(s: &StatusEvent) -> serde_json::Value {
        let mut s = s.clone();
        s.at = OffsetDateTime::UNIX_EPOCH;
        serde_json::to_value(s).expect("json")
    }

    #[test]
    fn statuses_say_what_the_acceptance_said() {
        let at = time::macros::datetime!(2025-03-30 01:59:59.123456789 +01:00);
        let long = format!("evt-{}", "9".repeat(60));
        let cases = [
            (
                "0b4c1f7e-5d2a-4c8e-9f3b-2a6d8e1c4b7f",
                "txn-000123456",
                "*******1234",
            ),
            ("0B4C1F7E-5D2A-4C8E-9F3B-2A6D8E1C4B7F", "t", "+********0123"),
            ("0B4C1F7E-5d2a-4c8e-9f3b-2a6d8e1c4b7f", "", ""),
            ("e1", "txn-1", "+44****0123"),
            (long.as_str(), long.as_str(), "***"),
        ];
        for (i, (event_id, transaction_id, masked)) in cases.into_iter().enumerate() {
            let a = Accepted {
                meta: Meta {
                    event_id: event_id.into(),
                    transaction_id: transaction_id.into(),
                    occurred_at: at,
                    masked: masked.into(),
                    segments: 2,
                    possible_duplicate: i % 2 == 0,
                },
                carrier: 1,
                carrier_name: "carrier-b".into(),
                message_ids: vec!["0000AbC1".into()],
                resubmit: None,
            };
            let expected = |state| {
                let mut s = a.meta.status(state);
                s.carrier = Some("carrier-b".into());
                s.message_ids = vec!["0000AbC1".into()];
                s
            };
            let (mut m, now, mut out) = (m(), Instant::now(), Vec::new());
            m.accept(a.clone(), now, &mut out);
            m.receipt(1, receipt("abc1", ReceiptState::Delivered), now, &mut out);
            assert_eq!(out.len(), 1);
            assert_eq!(
                json(&out[0]),
                json(&expected(State::Delivered)),
                "{event_id}"
            );

            let (mut m, mut out) = (self::m(), Vec::new());
            m.accept(a.clone(), now, &mut out);
            m.expire(now + Duration::from_secs(60), &mut out);
            let mut want = expected(State::Unconfirmed);
            want.reason = Some("no_receipt".into());
            assert_eq!(out.len(), 1);
            assert_eq!(json(&out[0]), json(&want), "{event_id}");
        }
    }

    #[test]
    fn a_multipart_notification_keeps_its_ids_as_sent_and_its_worst_outcome() {
        let (mut m, now, mut out) = (m(), Instant::now(), Vec::new());
        let long = format!("{}7", "0".repeat(70));
        let ids = ["0000000A", "0x1b", long.as_str(), " 0c "];
        m.accept(accepted(&ids), now, &mut out);
        let mut rejected = receipt("7", ReceiptState::Rejected);
        rejected.error_code = Some(42);
        for r in [
            receipt("a", ReceiptState::Delivered),
            rejected,
            receipt("0X1B", ReceiptState::Undeliverable),
        ] {
            assert_eq!(m.receipt(0, r, now, &mut out), ReceiptOutcome::Matched);
        }
        assert!(out.is_empty(), "one segment still open");
        assert_eq!(
            m.receipt(0, receipt("A", ReceiptState::Delivered), now, &mut out),
            ReceiptOutcome::Duplicate
        );
        assert_eq!(
            m.receipt(0, receipt("C", ReceiptState::Expired), now, &mut out),
            ReceiptOutcome::Matched
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].state, State::Undelivered);
        assert_eq!(out[0].reason.as_deref(), Some("carrier_rejected"));
        assert_eq!(out[0].detail.as_deref(), Some("carrier error code 42"));
        assert_eq!(out[0].message_ids, ids);
        assert_eq!(m.awaiting(), 0);
    }

    #[test]
    fn keys_sharing_a_hash_each_find_their_own_notification() {
        for mask in [0, 1, 3, u32::MAX] {
            let (mut m, now, mut out) = (with_hash_mask(mask), Instant::now(), Vec::new());
            // The same ids on two carriers: equal keys of two carriers and distinct keys of
            // one carrier share hashes.
            for carrier in 0..2 {
                for i in 0..20u32 {
                    let mut a = accepted(&[&format!("{i:x}")]);
                    a.carrier = carrier;
                    a.meta.event_id = format!("e{}", i * 2 + carrier as u32 + 1);
                    m.accept(a, now, &mut out);
                }
            }
            if mask == 0 {
                assert_eq!(
                    m.by_id.overflowed(),
                    39,
                    "one key by its hash, the rest whole"
                );
            }
            // An unknown id is not taken for one that shares its hash.
            park(m.receipt(0, receipt("ff", ReceiptState::Delivered), now, &mut out));
            // Newest first: the key held by its hash goes before those kept whole.
            for i in (0..20u32).rev() {
                for carrier in 0..2 {
                    let r = Receipt {
                        message_id: format!("{i:X}"),
                        state: ReceiptState::Undeliverable,
                        error_code: Some(i * 2 + carrier as u32 + 1),
                    };
                    assert_eq!(
                        m.receipt(carrier, r, now, &mut out),
                        ReceiptOutcome::Matched,
                        "mask {mask}"
                    );
                }
            }
            assert_eq!((out.len(), m.awaiting()), (40, 0));
            for s in &out {
                let want = format!("carrier error code {}", &s.event_id[1..]);
                assert_eq!(s.detail.as_deref(), Some(want.as_str()), "mask {mask}");
            }
            assert_eq!(m.by_id.overflowed(), 0);
        }
    }

    #[test]
    fn the_keys_of_a_multipart_notification_may_share_a_hash() {
        for mask in [0, 1] {
            let (mut m, now, mut out) = (with_hash_mask(mask), Instant::now(), Vec::new());
            m.accept(accepted(&["1", "2", "3"]), now, &mut out);
            let mut other = accepted(&["4"]);
            other.meta.event_id = "e2".into();
            m.accept(other, now, &mut out);
            for id in ["2", "1"] {
                assert_eq!(
                    m.receipt(0, receipt(id, ReceiptState::Delivered), now, &mut out),
                    ReceiptOutcome::Matched
                );
            }
            assert_eq!(
                m.receipt(0, receipt("2", ReceiptState::Delivered), now, &mut out),
                ReceiptOutcome::Duplicate
            );
            assert!(out.is_empty());
            for id in ["4", "3"] {
                assert_eq!(
                    m.receipt(0, receipt(id, ReceiptState::Delivered), now, &mut out),
                    ReceiptOutcome::Matched
                );
            }
            let settled: Vec<&str> = out.iter().map(|s| s.event_id.as_str()).collect();
            assert_eq!(settled, ["e2", "e1"], "mask {mask}");
            assert_eq!(out[1].message_ids, ["1", "2", "3"]);
        }
    }

    #[test]
    fn of_two_notifications_with_one_id_the_later_takes_its_receipt() {
        for mask in [0, u32::MAX] {
            let (mut m, now, mut out) = (with_hash_mask(mask), Instant::now(), Vec::new());
            let mut other = accepted(&["5"]);
            other.meta.event_id = "e0".into();
            m.accept(other, now, &mut out);
            for (i, id) in ["7", "0007"].into_iter().enumerate() {
                let mut a = accepted(&[id]);
                a.meta.event_id = format!("e{}", i + 1);
                m.accept(a, now, &mut out);
            }
            m.receipt(0, receipt("7", ReceiptState::Delivered), now, &mut out);
            assert_eq!(out.len(), 1);
            assert_eq!(out[0].event_id, "e2");
            assert_eq!(
                m.receipt(0, receipt("5", ReceiptState::Delivered), now, &mut out),
                ReceiptOutcome::Matched
            );
            m.expire(now + Duration::from_secs(60), &mut out);
            assert_eq!(out.len(), 3);
            assert_eq!(
                (out[2].event_id.as_str(), out[2].state),
                ("e1", State::Unconfirmed)
            );
        }
    }

    #[test]
    fn a_slot_freed_by_a_settled_notification_serves_the_next_without_its_past() {
        let (mut m, now, mut out) = (m(), Instant::now(), Vec::new());
        let mut a = accepted(&["a1"]);
        a.resubmit = Some((
            now + Duration::from_secs(30),
            Box::new(crate::notification::sample("e1")),
        ));
        m.accept(a, now, &mut out);
        m.receipt(0, receipt("a1", ReceiptState::Delivered), now, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(m.awaiting(), 0);

        let later = now + Duration::from_secs(20);
        let mut b = accepted(&["b1"]);
        b.meta.event_id = "e2".into();
        b.meta.transaction_id = "t2".into();
        m.accept(b, later, &mut out);
        assert_eq!(
            m.entries.iter().map(|(slot, _)| slot).collect::<Vec<_>>(),
            [0]
        );
        assert!(
            m.due_failovers(now + Duration::from_secs(30)).is_empty(),
            "e1's failover went with it"
        );
        m.expire(now + Duration::from_secs(60), &mut out);
        assert_eq!((out.len(), m.awaiting()), (1, 1), "e2's own deadline");
        m.expire(later + Duration::from_secs(60), &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].event_id, "e2");
        assert_eq!(out[1].transaction_id.as_deref(), Some("t2"));
        assert_eq!(out[1].message_ids, ["b1"]);
        assert_eq!(out[1].state, State::Unconfirmed);
    }

    #[test]
    fn keys_are_made_and_compared_as_match_key_does() {
        let ids = [
            "",
            " ",
            "0",
            "000",
            " 00AbC ",
            "\u{b}0a\u{c}",
            "0x0A",
            "0X0a",
            "ÀB",
            "00É",
            "\t\n12\r",
            "a b",
            "Ⅻ",
            "255",
            "ff",
            "00FF",
            "\u{a0}1\u{a0}",
            "٣",
        ];
        let reference = |id: &str, form| match_key(&normalise_message_id(id, form));
        for id in ids {
            assert_eq!(key_of(id), match_key(id), "{id:?}");
            for form in [
                IdForm::AsIs,
                IdForm::HexToDecimal,
                IdForm::DecimalToHex,
                IdForm::Lowercase,
            ] {
                assert_eq!(key_in_form(0, id, form).1, reference(id, form), "{id:?}");
                for other in ids {
                    let key = reference(other, form);
                    assert_eq!(
                        key_is(id, form, &key),
                        reference(id, form) == key,
                        "{id:?} {other:?} {form:?}"
                    );
                }
            }
        }
    }
}
