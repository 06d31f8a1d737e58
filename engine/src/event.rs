//! Event schemas, version 1: the debit event the engine consumes and the status event it
//! publishes (`docs/events.md` is the reference with examples).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The only debit schema version this engine reads.
pub const SCHEMA_VERSION: u32 = 1;

/// A card debit, as the payment processor publishes it. Unknown fields are ignored so that
/// producers can add fields within a version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DebitEvent {
    pub schema_version: u32,
    /// Idempotency key: one notification per event id.
    pub event_id: String,
    pub transaction_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    /// The bank's customer reference (used for subscription look-ups, never shown).
    pub customer_ref: String,
    /// E.164 destination number, `+` and up to 15 digits.
    pub destination: String,
    /// The last four digits of the card, nothing more.
    pub card_last4: String,
    /// Amount in minor units of `currency`.
    pub amount_minor: i64,
    /// ISO 4217 alphabetic code.
    pub currency: String,
    pub merchant: String,
    /// BCP 47 tag, e.g. `en`, `en-GB`, `zh-CN`.
    pub locale: String,
    /// Available balance after the debit, in minor units, if the bank shares it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balance_minor: Option<i64>,
    /// Notification class: absent or `debit` for a card debit; any other class (e.g.
    /// `balance_alert`) is served after debits when priority lanes are on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
}

impl DebitEvent {
    /// Whether this is a debit notification (the urgent lane).
    pub fn is_debit(&self) -> bool {
        self.class.as_deref().is_none_or(|c| c == "debit")
    }
}

/// Why an event was refused before it became a notification. The code is stable and
/// machine-readable; it appears in statuses and dead-letter headers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("event is {0} bytes, above the limit")]
    Oversized(usize),
    #[error("event is not valid json: {0}")]
    MalformedJson(String),
    #[error("schema_version {0} is not supported")]
    UnsupportedVersion(u64),
    #[error("field {field} is invalid: {why}")]
    InvalidField {
        field: &'static str,
        why: &'static str,
    },
    #[error("card_last4 carries more than the last four digits")]
    CardNotTruncated,
}

impl Rejection {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::Oversized(_) => "oversized_event",
            Rejection::MalformedJson(_) => "malformed_event",
            Rejection::UnsupportedVersion(_) => "unsupported_schema_version",
            Rejection::InvalidField { .. } => "invalid_field",
            Rejection::CardNotTruncated => "card_number_not_truncated",
        }
    }
}

/// Decodes and validates one debit event. On failure, the event id is returned with the
/// reason when it could be read, so that the rejection can still be reported against it.
pub fn decode(bytes: &[u8], max_bytes: usize) -> Result<DebitEvent, (Option<String>, Rejection)> {
    if bytes.len() > max_bytes {
        return Err((None, Rejection::Oversized(bytes.len())));
    }
    let ev: DebitEvent = match serde_json::from_slice(bytes) {
        Ok(ev) => ev,
        Err(e) => {
            let id = salvage_event_id(bytes);
            let rej = match salvage_version(bytes) {
                Some(v) if v != u64::from(SCHEMA_VERSION) => Rejection::UnsupportedVersion(v),
                _ => Rejection::MalformedJson(serde_error_text(&e)),
            };
            return Err((id, rej));
        }
    };
    validate(&ev).map_err(|r| (valid_id(&ev.event_id).then(|| ev.event_id.clone()), r))?;
    Ok(ev)
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_graphic())
}

fn validate(ev: &DebitEvent) -> Result<(), Rejection> {
    let bad = |field, why| Err(Rejection::InvalidField { field, why });
    if ev.schema_version != SCHEMA_VERSION {
        return Err(Rejection::UnsupportedVersion(u64::from(ev.schema_version)));
    }
    if !valid_id(&ev.event_id) {
        return bad("event_id", "must be 1..=64 printable ascii characters");
    }
    if ev.transaction_id.is_empty() || ev.transaction_id.len() > 64 {
        return bad("transaction_id", "must be 1..=64 characters");
    }
    if ev.customer_ref.is_empty() || ev.customer_ref.len() > 64 {
        return bad("customer_ref", "must be 1..=64 characters");
    }
    let card_digits = ev.card_last4.bytes().filter(u8::is_ascii_digit).count();
    if card_digits > 4 {
        return Err(Rejection::CardNotTruncated);
    }
    if ev.card_last4.len() != 4 || card_digits != 4 {
        return bad("card_last4", "must be exactly four digits");
    }
    if ev.amount_minor < 0 {
        return bad("amount_minor", "must not be negative");
    }
    if ev.currency.len() != 3 || !ev.currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return bad("currency", "must be an ISO 4217 code");
    }
    if ev.merchant.is_empty() || ev.merchant.chars().count() > 64 {
        return bad("merchant", "must be 1..=64 characters");
    }
    if ev.merchant.chars().any(char::is_control) {
        return bad("merchant", "must not contain control characters");
    }
    if ev.locale.is_empty() || ev.locale.len() > 35 {
        return bad("locale", "must be a bcp 47 tag");
    }
    if ev.destination.len() > 32 {
        return bad("destination", "too long");
    }
    if ev
        .balance_minor
        .is_some_and(|b| b.unsigned_abs() > 1_000_000_000_000_000)
    {
        return bad("balance_minor", "out of range");
    }
    Ok(())
}

/// serde_json's message without the input echoed: it never contains field values.
fn serde_error_text(e: &serde_json::Error) -> String {
    format!(
        "{:?} error at line {} column {}",
        e.classify(),
        e.line(),
        e.column()
    )
    .to_lowercase()
}

#[derive(Deserialize)]
struct Salvage {
    #[serde(default)]
    event_id: Option<serde_json::Value>,
    #[serde(default)]
    schema_version: Option<serde_json::Value>,
}

fn salvage(bytes: &[u8]) -> Option<Salvage> {
    serde_json::from_slice::<Salvage>(bytes).ok()
}

fn salvage_event_id(bytes: &[u8]) -> Option<String> {
    match salvage(bytes)?.event_id? {
        serde_json::Value::String(s) if valid_id(&s) => Some(s),
        _ => None,
    }
}

fn salvage_version(bytes: &[u8]) -> Option<u64> {
    salvage(bytes)?.schema_version?.as_u64()
}

/// Notification states; every transition is published as a status event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Record-only (status API, never published): consumed and claimed, not yet sent.
    Received,
    /// Record-only (status API, never published): about to be written to a carrier.
    Submitting,
    /// Accepted by a carrier (submit_sm_resp OK for every segment); waiting for receipts.
    Accepted,
    /// The carrier named could not take it; it moved to the next carrier of its route.
    Retrying,
    /// The carrier reported the message delivered.
    Delivered,
    /// The carrier reported it could not deliver the message.
    Undelivered,
    /// The carrier reported the message expired undelivered.
    Expired,
    /// The carrier refused the message, or no carrier could take it.
    Failed,
    /// Not sent, on purpose: the reason says why (invalid number, no route, ...).
    Skipped,
    /// The event itself was invalid; a copy is on the dead-letter topic.
    Rejected,
    /// A submit was written but its response never came: the carrier may have it.
    Ambiguous,
    /// Accepted, but no receipt came within the receipt timeout.
    Unconfirmed,
}

impl State {
    /// Whether no further status follows for this event.
    pub fn is_terminal(self) -> bool {
        !matches!(
            self,
            State::Received
                | State::Submitting
                | State::Accepted
                | State::Ambiguous
                | State::Retrying
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            State::Received => "received",
            State::Submitting => "submitting",
            State::Accepted => "accepted",
            State::Retrying => "retrying",
            State::Delivered => "delivered",
            State::Undelivered => "undelivered",
            State::Expired => "expired",
            State::Failed => "failed",
            State::Skipped => "skipped",
            State::Rejected => "rejected",
            State::Ambiguous => "ambiguous",
            State::Unconfirmed => "unconfirmed",
        }
    }
}

/// A status event, keyed by event id on the status topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusEvent {
    pub schema_version: u32,
    pub event_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<String>,
    pub state: State,
    /// Stable reason code for skipped, rejected, failed and other unhappy endings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Human-readable detail; never contains message text or a full number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carrier: Option<String>,
    /// Carrier message ids, one per segment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub message_ids: Vec<String>,
    #[serde(default)]
    pub segments: u32,
    /// SMPP command_status of a refused submit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_status: Option<u32>,
    /// Destination with all but the last four digits masked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    /// When the debit happened (from the event), if known.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub occurred_at: Option<OffsetDateTime>,
    /// When this status was decided.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The carrier may have sent this SMS before (a resubmit after an unanswered submit or
    /// a missing receipt): the customer may get it twice.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub possible_duplicate: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const GOOD: &str = r#"{"schema_version":1,"event_id":"evt-1","transaction_id":"txn-1",
        "occurred_at":"2026-11-25T19:00:00Z","customer_ref":"c-1","destination":"+447400900123",
        "card_last4":"4242","amount_minor":1250,"currency":"GBP","merchant":"Coffee House",
        "locale":"en-GB","balance_minor":123456}"#;

    fn with(field: &str, value: &str) -> String {
        let mut v: serde_json::Value = serde_json::from_str(GOOD).unwrap();
        v[field] = serde_json::from_str(value).unwrap();
        v.to_string()
    }

    #[test]
    fn a_valid_event_decodes() {
        let ev = decode(GOOD.as_bytes(), 4096).expect("valid");
        assert_eq!(ev.event_id, "evt-1");
        assert_eq!(ev.amount_minor, 1250);
        assert_eq!(ev.balance_minor, Some(123_456));
    }

    #[test]
    fn hostile_events_are_rejected_with_a_code_and_the_id_when_readable() {
        let cases: Vec<(String, &str, bool)> = vec![
            ("{not json".into(), "malformed_event", false),
            (with("amount_minor", "\"12\""), "malformed_event", true),
            (with("amount_minor", "-5"), "invalid_field", true),
            (
                with("schema_version", "2"),
                "unsupported_schema_version",
                true,
            ),
            (
                with("card_last4", "\"4111111111111111\""),
                "card_number_not_truncated",
                true,
            ),
            (with("card_last4", "\"42a2\""), "invalid_field", true),
            (with("currency", "\"pounds\""), "invalid_field", true),
            (
                with("merchant", &format!("\"{}\"", "m".repeat(65))),
                "invalid_field",
                true,
            ),
            (with("event_id", "42"), "malformed_event", false),
            (
                GOOD.replace("\"destination\":\"+447400900123\",", ""),
                "malformed_event",
                true,
            ),
        ];
        for (input, code, has_id) in cases {
            let (id, rej) = decode(input.as_bytes(), 4096).expect_err(&input);
            assert_eq!(rej.code(), code, "{input}");
            assert_eq!(id.is_some(), has_id, "{input}");
        }
        let (_, rej) = decode(&[0xff, 0xfe, b'{'], 4096).expect_err("invalid utf-8");
        assert_eq!(rej.code(), "malformed_event");
        let big = with("merchant", &format!("\"{}\"", "x".repeat(5000)));
        assert_eq!(
            decode(big.as_bytes(), 4096).expect_err("big").1.code(),
            "oversized_event"
        );
    }

    #[test]
    fn rejection_text_never_echoes_field_values() {
        let input = with("amount_minor", "\"secret-value\"");
        let (_, rej) = decode(input.as_bytes(), 4096).expect_err("wrong type");
        assert!(!rej.to_string().contains("secret-value"), "{rej}");
    }

    #[test]
    fn status_serialises_without_empty_fields() {
        let s = StatusEvent {
            schema_version: 1,
            event_id: "e".into(),
            transaction_id: None,
            state: State::Delivered,
            reason: None,
            detail: None,
            carrier: Some("a".into()),
            message_ids: vec!["1f".into()],
            segments: 1,
            command_status: None,
            destination: None,
            occurred_at: None,
            at: OffsetDateTime::UNIX_EPOCH,
            possible_duplicate: false,
        };
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains(r#""state":"delivered""#), "{json}");
        assert!(!json.contains("reason"), "{json}");
        let back: StatusEvent = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
    }
}
