//! A notification in flight: what every stage after intake needs to know about one debit.

use std::sync::Arc;

use pigeon_smpp::encoding::Segmented;
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::event::{State, StatusEvent, SCHEMA_VERSION};
use crate::routing::CarrierId;

/// The part of a notification that statuses are made of. Holds no message text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub event_id: String,
    pub transaction_id: String,
    pub occurred_at: OffsetDateTime,
    /// Destination with all but the last four digits masked.
    pub masked: String,
    pub segments: u32,
    /// Sent again after an earlier carrier may already have delivered it: every status from
    /// then on says so.
    pub possible_duplicate: bool,
}

impl Meta {
    /// A status for this notification, stamped now.
    pub fn status(&self, state: State) -> StatusEvent {
        StatusEvent {
            schema_version: SCHEMA_VERSION,
            event_id: self.event_id.clone(),
            transaction_id: Some(self.transaction_id.clone()),
            state,
            reason: None,
            detail: None,
            carrier: None,
            message_ids: Vec::new(),
            segments: self.segments,
            command_status: None,
            destination: Some(self.masked.clone()),
            occurred_at: Some(self.occurred_at),
            at: OffsetDateTime::now_utc(),
            possible_duplicate: self.possible_duplicate,
        }
    }
}

/// Kafka coordinates of the record a notification came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Origin {
    pub partition: i32,
    pub offset: i64,
}

/// A notification ready for a carrier.
#[derive(Debug, Clone)]
pub struct Notification {
    pub meta: Meta,
    pub origin: Origin,
    /// Destination digits without `+`.
    pub destination: String,
    /// The rendered message, kept to encode it again for another carrier.
    pub body: Arc<str>,
    /// `body` encoded and split for the carrier at `route_pos`.
    pub text: Segmented,
    /// Concatenation reference of `text`'s parts (kept when it is encoded again).
    pub reference: u16,
    /// Carriers to use, primary first.
    pub route: Arc<[CarrierId]>,
    /// Position in `route` of the carrier this notification is with now.
    pub route_pos: usize,
    /// Not accepted by then: it ends `expired`, never sent late.
    pub deadline: Instant,
    /// When the engine took its record from the broker.
    pub consumed_at: Instant,
    /// Served in the urgent lane (debits, or everything when lanes are off).
    pub urgent: bool,
    /// Accepted but no receipt within this long: go again through the next carrier of the
    /// route (flagged `possible_duplicate`). `None` (the default): wait for the receipt.
    pub receipt_failover: Option<std::time::Duration>,
    /// Already sent again because a submit of it went unanswered ([`crate::outcome::Unanswered`]).
    pub resent_unanswered: bool,
}

impl Notification {
    /// The carrier this notification is with now.
    pub fn carrier(&self) -> CarrierId {
        self.route.get(self.route_pos).copied().unwrap_or_default()
    }

    /// Whether a carrier remains after the current one.
    pub fn has_fallback(&self) -> bool {
        self.route_pos + 1 < self.route.len()
    }
}

/// A one-segment notification routed over carriers `0, 1`, for tests.
#[cfg(test)]
pub(crate) fn sample(event_id: &str) -> Notification {
    let body: Arc<str> = "Card ending 4242 debited GBP 12.50".into();
    Notification {
        meta: Meta {
            event_id: event_id.into(),
            transaction_id: format!("t-{event_id}"),
            occurred_at: OffsetDateTime::UNIX_EPOCH,
            masked: "+********0123".into(),
            segments: 1,
            possible_duplicate: false,
        },
        origin: Origin {
            partition: 0,
            offset: 0,
        },
        destination: "447400900123".into(),
        text: pigeon_smpp::encoding::segment(&body, 1),
        body,
        reference: 1,
        route: Arc::from([0, 1]),
        route_pos: 0,
        deadline: Instant::now() + std::time::Duration::from_secs(600),
        consumed_at: Instant::now(),
        urgent: true,
        receipt_failover: Some(std::time::Duration::from_secs(30)),
        resent_unanswered: false,
    }
}

/// Masks all but the last four digits: `+447400900123` -> `+********0123`.
pub fn mask_number(n: &str) -> String {
    let digits = n.bytes().filter(u8::is_ascii_digit).count();
    let mut seen = 0;
    n.chars()
        .map(|c| {
            if c.is_ascii_digit() {
                seen += 1;
                if seen + 4 <= digits {
                    return '*';
                }
            }
            c
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masking_keeps_only_the_last_four_digits() {
        assert_eq!(mask_number("+447400900123"), "+********0123");
        assert_eq!(mask_number("8613800138000"), "*********8000");
        assert_eq!(mask_number("123"), "123");
    }
}
