//! Receipts relayed between instances through Kafka.
//!
//! An SMSC may deliver a receipt on any receiver bind of the account, so with several
//! instances a receipt can reach one that did not send its message. Such a receipt parks
//! there (`matcher`); when its answer has been held for [`crate::matcher::PARKED_ANSWER_HOLD`]
//! without an acceptance to match, the matcher actor publishes it to the relay topic, and
//! answers its SMSC once the broker has it. Every instance reads the whole topic (a
//! consumer group of its own, `<kafka.group_id>.receipts.<instance>`, committed as it goes)
//! and applies each relayed receipt that a notification of its own awaits; the others are
//! tried again for a few seconds (the sender's acceptance may not be recorded yet), then
//! passed over as another instance's. So a receipt is answered to its SMSC only once it is
//! safe in the store or on the topic, and it matches wherever its notification waits.
//!
//! The record: key `<carrier>/<message id>` (copies of one receipt share a partition), value
//! JSON `{"v":1,"carrier":"carrier-a","message_id":"…","stat":"DELIVRD","err":5}`. Carrier
//! names are the configuration's, the same on every instance.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use pigeon_kafka::source::CommitMode;
use pigeon_kafka::{KafkaConfig, Outgoing, Record, Source};
use pigeon_smpp::receipt::{Receipt, ReceiptState};
use pigeon_smpp::session::ReceiptAck;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::actors::matcher::{MatcherActor, RelayedReceipts};
use crate::routing::CarrierId;

/// Longest carrier name and message id a relayed receipt may carry (SMPP's message ids are
/// at most 64 characters).
const MAX_CARRIER: usize = 256;
const MAX_MESSAGE_ID: usize = 64;
/// Relayed records read per batch at most, and how long a batch gathers.
const BATCH_MAX: usize = 512;
const BATCH_LINGER: Duration = Duration::from_millis(5);

/// `[relay]`: receipts relayed between the instances of one deployment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayConfig {
    /// The topic receipts are relayed on; unset: receipts are not relayed (one instance, or
    /// an SMSC that delivers receipts on the bind that submitted).
    #[serde(default)]
    pub receipts_topic: Option<String>,
    /// This instance's name, stable across restarts and unique in the deployment: its
    /// consumer group on the relay topic is `<kafka.group_id>.receipts.<instance>`.
    #[serde(default)]
    pub instance: String,
}

impl RelayConfig {
    /// Whether receipts are relayed.
    pub fn enabled(&self) -> bool {
        self.receipts_topic.is_some()
    }

    /// What is wrong with the section, if anything.
    pub fn validate(&self) -> Vec<String> {
        let mut errs = Vec::new();
        let Some(topic) = &self.receipts_topic else {
            return errs;
        };
        if topic.trim().is_empty() {
            errs.push("relay.receipts_topic: must not be empty when set".to_owned());
        }
        let name_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if self.instance.is_empty() || self.instance.len() > 100 {
            errs.push(
                "relay.instance: each instance needs a name of its own (1 to 100 characters) \
                 when relay.receipts_topic is set"
                    .to_owned(),
            );
        } else if !self.instance.chars().all(name_char) {
            errs.push(format!(
                "relay.instance: {:?} may hold only letters, digits, '.', '_' and '-'",
                self.instance
            ));
        }
        errs
    }

    /// The consumer group of this instance on the relay topic.
    pub fn group(&self, kafka: &KafkaConfig) -> String {
        format!("{}.receipts.{}", kafka.group_id, self.instance)
    }
}

/// Where the matcher actor relays receipts.
#[derive(Debug, Clone)]
pub struct RelayOut {
    pub publisher: pigeon_kafka::Publisher,
    pub topic: Arc<str>,
}

#[derive(Serialize, Deserialize)]
struct Wire<'a> {
    v: u8,
    #[serde(borrow)]
    carrier: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    message_id: std::borrow::Cow<'a, str>,
    stat: std::borrow::Cow<'a, str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    err: Option<u32>,
}

/// The relay record of one receipt from `carrier`.
pub fn encode(carrier: &str, r: &Receipt) -> Outgoing {
    let wire = Wire {
        v: 1,
        carrier: carrier.into(),
        message_id: r.message_id.as_str().into(),
        stat: r.state.stat_text().into(),
        err: r.error_code,
    };
    Outgoing {
        key: Some(format!("{carrier}/{}", r.message_id).into_bytes()),
        // A struct of strings and numbers always serialises.
        payload: serde_json::to_vec(&wire).unwrap_or_default(),
        headers: Vec::new(),
    }
}

/// Why a relay record was passed over.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("not a relayed receipt: {0}")]
    Malformed(String),
    #[error("relay record version {0} is not known")]
    Version(u8),
    #[error("{0} is too long")]
    TooLong(&'static str),
    #[error("the message id is empty")]
    EmptyId,
    #[error("unknown receipt state")]
    State,
}

/// Reads a relay record: the carrier's name and the receipt.
pub fn decode(payload: &[u8]) -> Result<(String, Receipt), DecodeError> {
    let w: Wire<'_> = serde_json::from_slice(payload).map_err(|e| {
        // serde_json's message names the expected type and place, never the input.
        DecodeError::Malformed(e.to_string())
    })?;
    if w.v != 1 {
        return Err(DecodeError::Version(w.v));
    }
    if w.carrier.len() > MAX_CARRIER {
        return Err(DecodeError::TooLong("the carrier name"));
    }
    if w.message_id.len() > MAX_MESSAGE_ID {
        return Err(DecodeError::TooLong("the message id"));
    }
    if w.message_id.trim().is_empty() {
        return Err(DecodeError::EmptyId);
    }
    let state = ReceiptState::from_stat_text(&w.stat).ok_or(DecodeError::State)?;
    let receipt = Receipt {
        message_id: w.message_id.into_owned(),
        state,
        error_code: w.err,
    };
    Ok((w.carrier.into_owned(), receipt))
}

/// When a relayed receipt that nothing here awaited is tried again, after it was read. Its
/// sender may not know its acceptance yet when it reads it (a submit response handled late:
/// an instance far behind, or an SMSC that sends receipts before responses); after the last
/// try it is passed over (`relay_not_ours`), as another instance's.
const RETRY_AFTER: [Duration; 4] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
    Duration::from_secs(8),
];
/// Relayed receipts held for another try at most; beyond, one is passed over at once.
const MAX_HELD: usize = 65_536;

/// A relayed receipt to try (again).
struct Relayed {
    carrier: CarrierId,
    receipt: Receipt,
    /// Its record's partition and offset, done once it is decided or passed over.
    at: (i32, i64),
    read: Instant,
    /// Tries after the first so far.
    retries: usize,
}

/// Reads the relay topic until `stop`: each batch's receipts go to the matcher by carrier.
/// A receipt counts as done (committed) once the matcher has answered it, which it does once
/// what it decided is in the store; one that nothing here awaits is held and tried again
/// ([`RETRY_AFTER`]), so a receipt relayed before its sender registered the acceptance still
/// matches. The records are read on a task of their own, so that the tries are on time
/// while the topic is quiet.
pub async fn follow(
    source: Source,
    matcher: Addr<MatcherActor>,
    carriers: HashMap<String, CarrierId>,
    stop: CancellationToken,
) {
    info!(topic = source.topic(), "following relayed receipts");
    let source = Arc::new(source);
    let names: HashMap<CarrierId, String> = (carriers.iter())
        .map(|(name, id)| (*id, name.clone()))
        .collect();
    let (tx, mut batches) = tokio::sync::mpsc::channel(1);
    let reader = actix::spawn({
        let source = source.clone();
        async move {
            loop {
                let batch = source.next_batch(BATCH_MAX, BATCH_LINGER).await;
                if tx.send(batch).await.is_err() {
                    return;
                }
            }
        }
    });
    let mut held: BTreeMap<(Instant, u64), Relayed> = BTreeMap::new();
    let mut seq = 0u64;
    loop {
        let due = held.keys().next().map(|(at, _)| *at);
        let (tries, mut done) = tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                let now = Instant::now();
                let later = held.split_off(&(now, u64::MAX));
                (std::mem::replace(&mut held, later).into_values().collect(), Vec::new())
            }
            batch = batches.recv() => match batch {
                None => break,
                Some(Err(e)) => {
                    warn!(error = %e, "reading relayed receipts failed");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
                Some(Ok(batch)) => read(&batch, &carriers),
            },
        };
        let Some(missed) = try_relayed(&matcher, tries, &mut done).await else {
            warn!("the matcher is gone; relayed receipts are no longer followed");
            break;
        };
        for mut r in missed {
            match RETRY_AFTER.get(r.retries) {
                Some(after) if held.len() < MAX_HELD => {
                    let at = r.read + *after;
                    r.retries += 1;
                    seq += 1;
                    held.insert((at, seq), r);
                }
                _ => {
                    let name = names.get(&r.carrier).map_or("any", String::as_str);
                    crate::metrics::receipts(name, "relay_not_ours", 1);
                    done.push(r.at);
                }
            }
        }
        crate::metrics::relay_held(held.len());
        if !done.is_empty() {
            source.done(done);
            if let Err(e) = source.commit(CommitMode::Async) {
                warn!(error = %e, "committing the relay position failed");
            }
        }
    }
    reader.abort();
    // What is held is not done: read again after a restart.
    if let Err(e) = source.commit(CommitMode::Sync) {
        warn!(error = %e, "committing the relay position failed");
    }
    source.unsubscribe();
}

/// A batch's receipts to try, and the records passed over (not relay records).
fn read(
    batch: &[Record],
    carriers: &HashMap<String, CarrierId>,
) -> (Vec<Relayed>, Vec<(i32, i64)>) {
    let now = Instant::now();
    let (mut tries, mut done) = (Vec::with_capacity(batch.len()), Vec::new());
    let (mut invalid, mut first_reason) = (0u64, None);
    for Record {
        payload,
        partition,
        offset,
        ..
    } in batch
    {
        let decoded = decode(payload).and_then(|(carrier, r)| {
            let id = carriers.get(&carrier).copied().ok_or_else(|| {
                DecodeError::Malformed("a carrier this instance does not have".into())
            })?;
            Ok((id, r))
        });
        match decoded {
            Ok((carrier, receipt)) => tries.push(Relayed {
                carrier,
                receipt,
                at: (*partition, *offset),
                read: now,
                retries: 0,
            }),
            Err(e) => {
                invalid += 1;
                first_reason.get_or_insert(e);
                done.push((*partition, *offset));
            }
        }
    }
    if let Some(e) = first_reason {
        // Once per batch: a misconfigured peer would otherwise flood the log.
        warn!(records = invalid, error = %e, "relay records passed over");
    }
    crate::metrics::receipts("any", "relay_invalid", invalid);
    (tries, done)
}

/// Hands `tries` to the matcher by carrier and waits for its answers: the records of those
/// it decided go to `done`; the ones it left unanswered, nothing here awaiting them (or what
/// they decided not recorded: the store failed, and the engine says so), are returned.
/// `None`: the matcher is gone.
async fn try_relayed(
    matcher: &Addr<MatcherActor>,
    tries: Vec<Relayed>,
    done: &mut Vec<(i32, i64)>,
) -> Option<Vec<Relayed>> {
    /// A carrier's receipts for the matcher, and each with the answer it waits for.
    type Asked = (
        Vec<(Receipt, ReceiptAck)>,
        Vec<(Relayed, oneshot::Receiver<()>)>,
    );
    let mut by_carrier: HashMap<CarrierId, Asked> = HashMap::new();
    for r in tries {
        let (ack, answered) = ReceiptAck::channel();
        let (receipts, waiting) = by_carrier.entry(r.carrier).or_default();
        receipts.push((r.receipt.clone(), ack));
        waiting.push((r, answered));
    }
    let mut missed = Vec::new();
    for (carrier, (receipts, waiting)) in by_carrier {
        matcher
            .send(RelayedReceipts { carrier, receipts })
            .await
            .ok()?;
        for (r, answered) in waiting {
            match answered.await {
                Ok(()) => done.push(r.at),
                Err(_) => missed.push(r),
            }
        }
    }
    Some(missed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn receipt(id: &str, state: ReceiptState, err: Option<u32>) -> Receipt {
        Receipt {
            message_id: id.to_owned(),
            state,
            error_code: err,
        }
    }

    #[test]
    fn a_receipt_reads_back_as_it_was_relayed_with_its_carrier() {
        for state in ReceiptState::ALL {
            for err in [None, Some(0), Some(u32::MAX)] {
                let r = receipt("0A1b-77", state, err);
                let out = encode("carrier-a", &r);
                assert_eq!(out.key.as_deref(), Some(&b"carrier-a/0A1b-77"[..]));
                assert_eq!(decode(&out.payload), Ok(("carrier-a".to_owned(), r)));
            }
        }
    }

    #[test]
    fn records_that_are_not_relayed_receipts_are_refused_with_their_reason() {
        type Expect = fn(&DecodeError) -> bool;
        let cases: [(&[u8], Expect); 7] = [
            (b"", |e| matches!(e, DecodeError::Malformed(_))),
            (b"\xff\xfe", |e| matches!(e, DecodeError::Malformed(_))),
            (
                br#"{"v":2,"carrier":"a","message_id":"1","stat":"DELIVRD"}"#,
                |e| *e == DecodeError::Version(2),
            ),
            (
                br#"{"v":1,"carrier":"a","message_id":" ","stat":"DELIVRD"}"#,
                |e| *e == DecodeError::EmptyId,
            ),
            (
                br#"{"v":1,"carrier":"a","message_id":"1","stat":"NOPE"}"#,
                |e| *e == DecodeError::State,
            ),
            (
                br#"{"v":1,"carrier":"a","message_id":1,"stat":"DELIVRD"}"#,
                |e| matches!(e, DecodeError::Malformed(_)),
            ),
            (br#"{"v":1,"carrier":"a","stat":"DELIVRD"}"#, |e| {
                matches!(e, DecodeError::Malformed(_))
            }),
        ];
        for (bytes, expected) in cases {
            let e = decode(bytes).expect_err("refused");
            assert!(expected(&e), "{:?}: {e:?}", String::from_utf8_lossy(bytes));
        }
        let long_id = format!(
            r#"{{"v":1,"carrier":"a","message_id":"{}","stat":"DELIVRD"}}"#,
            "7".repeat(65)
        );
        assert_eq!(
            decode(long_id.as_bytes()),
            Err(DecodeError::TooLong("the message id"))
        );
    }

    #[test]
    fn the_section_needs_a_name_for_each_instance_once_a_topic_is_set() {
        assert!(RelayConfig::default().validate().is_empty(), "off");
        let mut c = RelayConfig {
            receipts_topic: Some("pigeon.receipts".into()),
            instance: String::new(),
        };
        assert_eq!(c.validate().len(), 1);
        c.instance = "pigeon 0".into();
        assert!(
            c.validate()[0].contains("may hold only"),
            "{:?}",
            c.validate()
        );
        c.instance = "pigeon-0".into();
        assert!(c.validate().is_empty());
        assert_eq!(
            c.group(&KafkaConfig::new("b:9092")),
            "pigeon.receipts.pigeon-0"
        );
        c.receipts_topic = Some(" ".into());
        assert_eq!(c.validate().len(), 1);
    }

    proptest! {
        /// Whatever arrives on the topic, reading it answers without panicking, and what it
        /// accepts is a receipt within the limits.
        #[test]
        fn any_bytes_decode_or_are_refused(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok((carrier, r)) = decode(&bytes) {
                prop_assert!(carrier.len() <= MAX_CARRIER);
                prop_assert!(!r.message_id.trim().is_empty() && r.message_id.len() <= MAX_MESSAGE_ID);
            }
        }

        #[test]
        fn any_receipt_round_trips(id in "[ -~]{1,64}", carrier in "[a-z0-9-]{1,40}", state in 0usize..9, err in proptest::option::of(any::<u32>())) {
            prop_assume!(!id.trim().is_empty());
            let r = receipt(&id, ReceiptState::ALL[state], err);
            prop_assert_eq!(decode(&encode(&carrier, &r).payload), Ok((carrier, r)));
        }
    }
}
