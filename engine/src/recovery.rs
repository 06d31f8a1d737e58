//! Idempotency and crash recovery: what a consumed record becomes, given what the store
//! already knows of its event id, and how records found open at start-up resume.
//!
//! - A new event id is sent as usual.
//! - The same Kafka record seen again (a replay after a restart or a crash, its offset not
//!   yet committed): if nothing of it was written to a carrier (`received`, `retrying`), it
//!   is sent as usual; if it was being written with no answer recorded (`submitting`,
//!   `ambiguous`), the carrier may have it: `ambiguous` is published, and after
//!   `engine.ambiguous_wait_ms` it is sent again flagged `possible_duplicate`; if it was
//!   decided, its latest status is published again (that completes its checkpoint) and
//!   nothing is sent.
//! - The same event id on another Kafka record (the producer sent it twice): nothing is
//!   sent; a `skipped(duplicate_event)` status names the record that came first.
//! - At start-up, records accepted by a carrier and still waiting for receipts are
//!   registered with the matcher again, so their receipts match after the restart.

use std::sync::Arc;

use pigeon_smpp::receipt::{Receipt, ReceiptState};
use time::OffsetDateTime;

use crate::event::{State, StatusEvent};
use crate::matcher::{Accepted, SEGMENT_RECEIPT};
use crate::notification::Meta;
use crate::routing::CarrierId;
use crate::store::{Claim, NotificationRecord};

/// What to do with one consumed record that became a notification (or a skip).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replay {
    /// Decide and send as usual.
    Proceed,
    /// Possibly sent before a crash: publish `ambiguous`, wait, send again flagged.
    ResendFlagged,
    /// Already decided: publish this status again, unrecorded, and send nothing.
    Republish(Box<StatusEvent>),
    /// A second record with the same event id: publish this status, unrecorded, and send
    /// nothing.
    Duplicate(Box<StatusEvent>),
}

/// The decision for a claim answer.
pub fn replay(claim: Claim) -> Replay {
    match claim {
        Claim::New => Replay::Proceed,
        Claim::Redelivered(r) => match r.state {
            State::Received | State::Retrying => Replay::Proceed,
            State::Submitting | State::Ambiguous => Replay::ResendFlagged,
            _ => Replay::Republish(Box::new(r.latest_status())),
        },
        Claim::Duplicate(r) => {
            let mut s = r.latest_status();
            s.state = State::Skipped;
            s.reason = Some("duplicate_event".into());
            s.detail = r.origin.map(|o| {
                format!(
                    "event id first seen at partition {} offset {}",
                    o.partition, o.offset
                )
            });
            s.command_status = None;
            s.message_ids = Vec::new();
            s.at = OffsetDateTime::now_utc();
            Replay::Duplicate(Box::new(s))
        }
    }
}

/// How long ago the record was accepted (zero if that is unknown or in the future).
pub fn accepted_age(r: &NotificationRecord, now: OffsetDateTime) -> std::time::Duration {
    r.timeline
        .iter()
        .rev()
        .find(|e| e.state == State::Accepted)
        .and_then(|e| (now - e.at).try_into().ok())
        .unwrap_or_default()
}

/// An open record accepted by a carrier, as the matcher registers it; `None` for any other
/// record, or one whose carrier is no longer configured.
pub fn accepted_of(r: &NotificationRecord, carriers: &[Arc<str>]) -> Option<Accepted> {
    if r.state != State::Accepted || r.message_ids.is_empty() {
        return None;
    }
    let name = r.carrier.as_deref()?;
    let carrier: CarrierId = carriers.iter().position(|c| &**c == name)?;
    Some(Accepted {
        meta: Meta {
            event_id: r.event_id.clone(),
            transaction_id: r.transaction_id.clone().unwrap_or_default(),
            occurred_at: r
                .timeline
                .first()
                .map_or_else(OffsetDateTime::now_utc, |e| e.at),
            masked: r.destination.clone().unwrap_or_default(),
            segments: r.segments,
            possible_duplicate: r.possible_duplicate,
        },
        carrier,
        carrier_name: carriers[carrier].clone(),
        message_ids: r.message_ids.clone(),
        resubmit: None,
    })
}

/// The final receipts of single segments recorded since the record's latest acceptance
/// ([`crate::store::Change::Segment`]), as they came: the matcher takes them again after a
/// restart, so that the notification waits only for its other segments' receipts.
pub fn segment_receipts(r: &NotificationRecord) -> Vec<Receipt> {
    let since = (r.timeline.iter())
        .rposition(|e| e.state == State::Accepted)
        .map_or(0, |i| i + 1);
    r.timeline[since..]
        .iter()
        .filter(|e| e.reason.as_deref() == Some(SEGMENT_RECEIPT))
        .filter_map(|e| {
            let detail = e.detail.as_deref()?;
            let (stat, error_code) = match detail.split_once(" err:") {
                Some((stat, code)) => (stat, code.parse().ok()),
                None => (detail, None),
            };
            Some(Receipt {
                message_id: e.message_ids.first()?.clone(),
                state: ReceiptState::from_stat_text(stat)?,
                error_code,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notification::Origin;

    fn record(state: State) -> NotificationRecord {
        let mut s = crate::notification::sample("e1").meta.status(state);
        s.carrier = Some("b".into());
        s.message_ids = vec!["m1".into()];
        let mut r: NotificationRecord =
            serde_json::from_value(serde_json::json!({"event_id": "e1", "state": "received"}))
                .expect("record");
        r.origin = Some(Origin {
            partition: 2,
            offset: 7,
        });
        r.state = state;
        r.carrier = s.carrier;
        r.message_ids = s.message_ids;
        r.segments = 1;
        r
    }

    #[test]
    fn a_replay_resends_only_what_never_reached_a_carrier() {
        assert_eq!(replay(Claim::New), Replay::Proceed);
        for state in [State::Received, State::Retrying] {
            assert_eq!(replay(Claim::Redelivered(record(state))), Replay::Proceed);
        }
        for state in [State::Submitting, State::Ambiguous] {
            assert_eq!(
                replay(Claim::Redelivered(record(state))),
                Replay::ResendFlagged,
                "{state:?}"
            );
        }
        for state in [
            State::Accepted,
            State::Delivered,
            State::Failed,
            State::Skipped,
        ] {
            match replay(Claim::Redelivered(record(state))) {
                Replay::Republish(s) => assert_eq!(s.state, state),
                other => panic!("{state:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_duplicate_event_is_skipped_naming_the_first_record() {
        let Replay::Duplicate(s) = replay(Claim::Duplicate(record(State::Delivered))) else {
            panic!("not a duplicate");
        };
        assert_eq!(s.state, State::Skipped);
        assert_eq!(s.reason.as_deref(), Some("duplicate_event"));
        assert!(s.detail.as_deref().is_some_and(|d| d.contains("offset 7")));
        assert!(s.message_ids.is_empty());
    }

    #[test]
    fn accepted_records_register_with_their_carrier_after_a_restart() {
        let carriers: Vec<Arc<str>> = vec!["a".into(), "b".into()];
        let a = accepted_of(&record(State::Accepted), &carriers).expect("accepted");
        assert_eq!(a.carrier, 1);
        assert_eq!(a.message_ids, ["m1"]);
        assert!(accepted_of(&record(State::Delivered), &carriers).is_none());
        assert!(accepted_of(&record(State::Accepted), &carriers[..1]).is_none());
    }

    #[test]
    fn a_segment_receipt_recorded_before_a_restart_counts_after_it() {
        use crate::store::TimelineEntry;
        let mut r = record(State::Accepted);
        r.message_ids = vec!["m1".into(), "m2".into()];
        r.segments = 2;
        let t = OffsetDateTime::now_utc();
        let mut older = TimelineEntry::bare(State::Delivered, t);
        older.reason = Some(SEGMENT_RECEIPT.into());
        older.detail = Some("DELIVRD".into());
        older.message_ids = vec!["old".into()];
        let mut accepted = TimelineEntry::bare(State::Accepted, t);
        accepted.message_ids = r.message_ids.clone();
        let mut segment = older.clone();
        segment.state = State::Undelivered;
        segment.detail = Some("UNDELIV err:34".into());
        segment.message_ids = vec!["m1".into()];
        // An acceptance after `older` (a failover) makes it history.
        r.timeline = vec![older, accepted, segment];
        let receipts = segment_receipts(&r);
        assert_eq!(
            receipts,
            [Receipt {
                message_id: "m1".into(),
                state: ReceiptState::Undeliverable,
                error_code: Some(34),
            }]
        );

        let carriers: Vec<Arc<str>> = vec!["a".into(), "b".into()];
        let a = accepted_of(&r, &carriers).expect("accepted");
        let (carrier, now, mut out) = (a.carrier, tokio::time::Instant::now(), Vec::new());
        let mut m = crate::matcher::Matcher::new(
            std::time::Duration::from_secs(60),
            std::time::Duration::from_secs(10),
            Vec::new(),
        );
        m.accept_aged(a, now, std::time::Duration::ZERO, &mut out);
        for receipt in receipts {
            m.receipt(carrier, receipt, now, &mut out);
        }
        assert!(out.is_empty());
        let other = Receipt {
            message_id: "m2".into(),
            state: ReceiptState::Delivered,
            error_code: None,
        };
        m.receipt(carrier, other, now, &mut out);
        let [s] = out.as_slice() else {
            panic!("the other segment's receipt ends it: {out:?}");
        };
        assert_eq!(s.state, State::Undelivered);
    }

    #[test]
    fn a_recovered_acceptance_keeps_its_age() {
        let now = OffsetDateTime::now_utc();
        let mut r = record(State::Accepted);
        r.timeline = vec![crate::store::TimelineEntry::bare(
            State::Accepted,
            now - time::Duration::seconds(90),
        )];
        assert_eq!(accepted_age(&r, now).as_secs(), 90);
        r.timeline.clear();
        assert_eq!(accepted_age(&r, now), std::time::Duration::ZERO);
    }
}
