//! Key layouts of the store's keyspaces (`docs/adr/0004-durable-store.md`).
//!
//! | keyspace | key | value |
//! |---|---|---|
//! | `records` | event id | the record, binary (`codec.rs`) |
//! | `open` | event id | empty |
//! | `by_transaction` | transaction id, `\0`, event id | when the notification began, once it ended (8 bytes; [`KEPT`] before; empty in stores written before) |
//! | `receipts` | carrier, `\0`, message id | expiry (8 bytes), event id |
//! | `outbox` | event id, `\0`, state | the status event, binary (`codec.rs`) |
//! | `staged` | sequence number, big-endian `u64` | a group's staged records (`staged.rs`) |
//! | `meta` | `owner` | the store's name, made when it is created (`Store::owner`) |
//!
//! An expiry or a beginning is milliseconds since the Unix epoch as a big-endian `i64`.
//! Expired receipt keys are ignored when read and dropped when fjall compacts them; records
//! and transaction keys are dropped when compacted past their retention (`ttl.rs`).

use time::OffsetDateTime;

use super::StoreError;

pub(super) const RECORDS: &str = "records";
pub(super) const OPEN: &str = "open";
pub(super) const BY_TRANSACTION: &str = "by_transaction";
pub(super) const RECEIPTS: &str = "receipts";
/// A keyspace of earlier versions (expiry entries, now a compaction filter's work): dropped
/// at start-up if found.
pub(super) const RETIRED_RECEIPT_EXPIRY: &str = "receipt_expiry";
pub(super) const OUTBOX: &str = "outbox";
pub(super) const STAGED: &str = "staged";
pub(super) const META: &str = "meta";
pub(super) const OWNER: &[u8] = b"owner";

const SEP: u8 = 0;

/// Milliseconds since the Unix epoch, saturating.
pub(super) fn unix_ms(t: OffsetDateTime) -> i64 {
    let ms = t.unix_timestamp_nanos() / 1_000_000;
    i64::try_from(ms).unwrap_or(if ms < 0 { i64::MIN } else { i64::MAX })
}

/// When a receipt key for a message accepted at `at` expires.
pub(super) fn receipt_expiry(at: OffsetDateTime, ttl_ms: i64) -> i64 {
    unix_ms(at).saturating_add(ttl_ms)
}

fn joined(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(a.len() + 1 + b.len());
    k.extend_from_slice(a);
    k.push(SEP);
    k.extend_from_slice(b);
    k
}

/// `by_transaction` key.
pub(super) fn transaction_key(transaction_id: &str, event_id: &str) -> Vec<u8> {
    joined(transaction_id.as_bytes(), event_id.as_bytes())
}

/// A `by_transaction` value's beginning while its record is open: kept whatever the
/// retention, until the record ends and the key is written again with its beginning.
pub(super) const KEPT: i64 = i64::MAX;

/// `by_transaction` value: when the notification began, for its retention.
pub(super) fn transaction_value(began_ms: i64) -> [u8; 8] {
    began_ms.to_be_bytes()
}

/// When the notification of a `by_transaction` value began (`None`: a value written before
/// they had one, or corrupt).
pub(super) fn transaction_value_began(value: &[u8]) -> Option<i64> {
    leading_ms(value)
}

/// The time a value opens with (`None`: too short to have one).
fn leading_ms(value: &[u8]) -> Option<i64> {
    value.first_chunk::<8>().map(|t| i64::from_be_bytes(*t))
}

/// The prefix of every `by_transaction` key of a transaction.
pub(super) fn transaction_prefix(transaction_id: &str) -> Vec<u8> {
    joined(transaction_id.as_bytes(), &[])
}

/// The event id of a `by_transaction` key: what follows the last separator (event ids are
/// printable ASCII).
pub(super) fn transaction_key_event(key: &[u8]) -> Option<&str> {
    let at = key.iter().rposition(|&b| b == SEP)?;
    std::str::from_utf8(key.get(at + 1..)?).ok()
}

/// `outbox` key: one status per (event, state).
pub(super) fn outbox_key(event_id: &str, state: crate::event::State) -> Vec<u8> {
    joined(event_id.as_bytes(), state.as_str().as_bytes())
}

/// `receipts` key.
pub(super) fn receipt_key(carrier: &str, message_id: &str) -> Vec<u8> {
    joined(carrier.as_bytes(), message_id.as_bytes())
}

/// A `receipts` value: who owns the message id, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ReceiptValue {
    pub expires_ms: i64,
    pub event_id: String,
}

impl ReceiptValue {
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(8 + self.event_id.len());
        v.extend_from_slice(&self.expires_ms.to_be_bytes());
        v.extend_from_slice(self.event_id.as_bytes());
        v
    }

    /// The expiry of an encoded value (`None`: too short to have one).
    pub(super) fn expiry_of(value: &[u8]) -> Option<i64> {
        leading_ms(value)
    }

    pub(super) fn decode(key: &[u8], value: &[u8]) -> Result<Self, StoreError> {
        let corrupt = |why: &str| StoreError::Corrupt {
            key: printable(key),
            why: why.to_owned(),
        };
        let (t, id) = value
            .split_first_chunk::<8>()
            .ok_or_else(|| corrupt("receipt value shorter than 8 bytes"))?;
        let event_id = std::str::from_utf8(id)
            .map_err(|_| corrupt("receipt owner is not utf-8"))?
            .to_owned();
        Ok(ReceiptValue {
            expires_ms: i64::from_be_bytes(*t),
            event_id,
        })
    }
}

/// A key for error text: separators and other control bytes escaped.
pub(super) fn printable(key: &[u8]) -> String {
    String::from_utf8_lossy(key).escape_debug().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_keys_name_their_event() {
        let k = transaction_key("txn-1", "evt-9");
        assert!(k.starts_with(&transaction_prefix("txn-1")));
        assert!(!k.starts_with(&transaction_prefix("txn-")));
        assert_eq!(transaction_key_event(&k), Some("evt-9"));
        assert_eq!(transaction_value_began(&transaction_value(-5)), Some(-5));
        assert_eq!(transaction_value_began(&[]), None, "written before values");
    }

    #[test]
    fn receipt_values_round_trip() {
        let v = ReceiptValue {
            expires_ms: -3,
            event_id: "evt-1".into(),
        };
        assert_eq!(ReceiptValue::expiry_of(&v.encode()), Some(-3));
        assert_eq!(ReceiptValue::expiry_of(b"short"), None);
        assert_eq!(ReceiptValue::decode(b"k", &v.encode()).ok(), Some(v));
        assert!(ReceiptValue::decode(b"k", b"short").is_err());
    }
}
