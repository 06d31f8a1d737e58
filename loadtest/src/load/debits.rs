//! Generated debit events: unique event ids, unique texts (the amount encodes the sequence
//! number) and unique destinations (the number encodes it too, so that a carrier's view of a
//! message leads back to its debit: [`sequence_of`]), UK and Chinese numbers, English and
//! Chinese locales, some long.

use std::hash::{DefaultHasher, Hash, Hasher};

use pigeon::event::{DebitEvent, SCHEMA_VERSION};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use time::OffsetDateTime;

/// Shares of the generated traffic.
#[derive(Debug, Clone)]
pub struct DebitMix {
    /// Fraction in `zh-CN` (UCS-2) to Chinese numbers.
    pub chinese: f64,
    /// Fraction with a merchant name long enough for two segments.
    pub long: f64,
    /// Every how many events a malformed record is produced instead (0: never).
    pub malformed_every: u64,
    /// How event and transaction ids are spelled.
    pub ids: IdShape,
}

impl Default for DebitMix {
    fn default() -> Self {
        DebitMix {
            chinese: 0.1,
            long: 0.1,
            malformed_every: 0,
            ids: IdShape::Readable,
        }
    }
}

impl DebitMix {
    /// UK numbers only, one GSM segment each, nothing malformed.
    pub fn uk_only() -> DebitMix {
        DebitMix {
            chinese: 0.0,
            long: 0.0,
            malformed_every: 0,
            ids: IdShape::Readable,
        }
    }
}

/// How a run's event and transaction ids are spelled. Either way each leads back to its
/// sequence number ([`RunIds::sequence`]) and no two runs share one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdShape {
    /// `{run}-{i}` and `txn-{run}-{i}`: easy to read in a test's statuses.
    #[default]
    Readable,
    /// As a payment processor sends them: event ids are UUIDs (version 8: 80 bits naming
    /// the run, then the sequence number in the last 48), transaction ids twelve digits
    /// like a retrieval reference number (four naming the run, eight of sequence number).
    Uuid,
}

/// The ids of one run's debits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunIds {
    shape: IdShape,
    /// What every event id of the run starts with; the sequence number follows.
    prefix: String,
    /// `txn-{run}-` or the run's four digits.
    transaction_prefix: String,
}

impl RunIds {
    pub fn new(run_id: &str, shape: IdShape) -> RunIds {
        match shape {
            IdShape::Readable => RunIds {
                shape,
                prefix: format!("{run_id}-"),
                transaction_prefix: format!("txn-{run_id}-"),
            },
            IdShape::Uuid => {
                let bits = |salt: u8| {
                    let mut h = DefaultHasher::new();
                    (salt, run_id).hash(&mut h);
                    h.finish().to_be_bytes()
                };
                let (a, b) = (bits(0), bits(1));
                let mut bytes = [0u8; 16];
                bytes[..8].copy_from_slice(&a);
                bytes[8..10].copy_from_slice(&b[..2]);
                bytes[6] = (bytes[6] & 0x0f) | 0x80; // version 8
                bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 9562 variant
                let uuid = uuid::Uuid::from_bytes(bytes).hyphenated().to_string();
                RunIds {
                    shape,
                    // The first four groups; the fifth (48 bits) is the sequence number.
                    prefix: uuid[..24].to_owned(),
                    transaction_prefix: format!("{:04}", u64::from_be_bytes(b) % 10_000),
                }
            }
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The event id of debit `i`.
    pub fn event_id(&self, i: u64) -> String {
        match self.shape {
            IdShape::Readable => format!("{}{i}", self.prefix),
            IdShape::Uuid => format!("{}{:012x}", self.prefix, i & 0xffff_ffff_ffff),
        }
    }

    /// The transaction id of debit `i`.
    pub fn transaction_id(&self, i: u64) -> String {
        match self.shape {
            IdShape::Readable => format!("{}{i}", self.transaction_prefix),
            IdShape::Uuid => format!("{}{:08}", self.transaction_prefix, i % 100_000_000),
        }
    }

    /// The sequence number of one of this run's event ids.
    pub fn sequence(&self, event_id: &str) -> Option<u64> {
        let rest = event_id.strip_prefix(&self.prefix)?;
        match self.shape {
            IdShape::Readable => rest.parse().ok(),
            IdShape::Uuid => (rest.len() == 12)
                .then(|| u64::from_str_radix(rest, 16).ok())
                .flatten(),
        }
    }
}

/// The UK mobile number of debit `i`: `+44 740d dddddd`, one per sequence number below ten
/// million (all in assigned ranges).
pub fn uk_number(i: u64) -> String {
    format!("+44740{}{:06}", (i / 1_000_000) % 10, i % 1_000_000)
}

/// The Chinese mobile number of debit `i`: `+86 138 dddddddd`.
pub fn chinese_number(i: u64) -> String {
    format!("+86138{:08}", i % 100_000_000)
}

/// The sequence number of the debit a destination belongs to ([`uk_number`],
/// [`chinese_number`]), from the digits as a carrier sees them (with or without `+`).
pub fn sequence_of(destination: &str) -> Option<u64> {
    let digits = destination.strip_prefix('+').unwrap_or(destination);
    let rest = digits
        .strip_prefix("44740")
        .filter(|r| r.len() == 7)
        .or_else(|| digits.strip_prefix("86138").filter(|r| r.len() == 8))?;
    rest.parse().ok()
}

const MERCHANTS: &[&str] = &["Coffee House", "Metro Ticket", "Green Grocer", "Book Nook"];
const LONG_MERCHANT: &str = "The Grand Central Station Bakery and Coffee Roasters Ltd";

pub struct Generator {
    run_id: String,
    run_ids: RunIds,
    mix: DebitMix,
    seq: u64,
    rng: SmallRng,
    ids: Vec<String>,
}

impl Generator {
    pub fn new(run_id: &str, mix: DebitMix) -> Generator {
        Generator {
            run_id: run_id.to_owned(),
            run_ids: RunIds::new(run_id, mix.ids),
            mix,
            seq: 0,
            rng: SmallRng::seed_from_u64(7),
            ids: Vec::new(),
        }
    }

    /// Event ids of the valid events generated so far, in order.
    pub fn ids(&self) -> Vec<String> {
        self.ids.clone()
    }

    /// The next record: (key, payload).
    pub fn next_event(&mut self) -> (Vec<u8>, Vec<u8>) {
        self.seq += 1;
        let i = self.seq;
        if self.mix.malformed_every > 0 && i.is_multiple_of(self.mix.malformed_every) {
            let id = format!("{}-bad-{i}", self.run_id);
            return (
                id.into_bytes(),
                b"{\"schema_version\":1,\"event_id\":".to_vec(),
            );
        }
        let ev = self.event(i);
        self.ids.push(ev.event_id.clone());
        let payload = serde_json::to_vec(&ev).unwrap_or_default();
        (ev.event_id.into_bytes(), payload)
    }

    /// A valid debit with sequence number `i`.
    pub fn event(&mut self, i: u64) -> DebitEvent {
        let chinese = self.rng.random_bool(self.mix.chinese.clamp(0.0, 1.0));
        let long = self.rng.random_bool(self.mix.long.clamp(0.0, 1.0));
        let (destination, locale, currency, merchant) = if chinese {
            (
                chinese_number(i),
                "zh-CN",
                "CNY",
                if long {
                    "北京王府井百货大楼有限责任公司第一分店"
                } else {
                    "咖啡店"
                },
            )
        } else {
            let m = MERCHANTS[(i % MERCHANTS.len() as u64) as usize];
            (
                uk_number(i),
                "en-GB",
                "GBP",
                if long { LONG_MERCHANT } else { m },
            )
        };
        DebitEvent {
            schema_version: SCHEMA_VERSION,
            event_id: self.run_ids.event_id(i),
            transaction_id: self.run_ids.transaction_id(i),
            occurred_at: OffsetDateTime::now_utc(),
            customer_ref: format!("cust-{}", i % 100_000),
            destination,
            card_last4: format!("{:04}", i % 10_000),
            // Unique per event, so that every text is unique and duplicates show.
            amount_minor: 100 + i as i64,
            currency: currency.to_owned(),
            merchant: merchant.to_owned(),
            locale: locale.to_owned(),
            balance_minor: Some(1_000_000 + i as i64),
            class: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_lead_back_to_their_debit() {
        for i in [1, 42, 999_999, 1_000_000, 9_999_999] {
            assert_eq!(sequence_of(&uk_number(i)), Some(i));
            assert_eq!(sequence_of(uk_number(i).trim_start_matches('+')), Some(i));
            assert_eq!(sequence_of(&chinese_number(i)), Some(i));
        }
        assert_eq!(sequence_of("+447911123456"), None);
        assert_eq!(sequence_of("+4474001"), None);
    }

    #[test]
    fn uuid_ids_are_uuids_that_lead_back_to_their_debit_and_run() {
        let a = RunIds::new("steady-peak-0a1b2c3d", IdShape::Uuid);
        let b = RunIds::new("steady-peak-0a1b2c3e", IdShape::Uuid);
        assert_ne!(a.prefix(), b.prefix());
        for i in [1, 42, 1_000_000, 0xffff_ffff_ffff] {
            let id = a.event_id(i);
            let uuid = uuid::Uuid::parse_str(&id).expect("a UUID");
            assert_eq!(uuid.hyphenated().to_string(), id, "lower-case, hyphenated");
            assert_eq!(uuid.get_version_num(), 8);
            assert_eq!(uuid.get_variant(), uuid::Variant::RFC4122);
            assert_eq!(a.sequence(&id), Some(i));
            assert_eq!(b.sequence(&id), None);
            let txn = a.transaction_id(i);
            assert_eq!(txn.len(), 12, "{txn}");
            assert!(txn.bytes().all(|c| c.is_ascii_digit()), "{txn}");
        }
        assert_ne!(a.transaction_id(1), a.transaction_id(2));
        assert_eq!(a.sequence(&format!("{}12345", a.prefix())), None);
        assert_eq!(RunIds::new("steady-peak-0a1b2c3d", IdShape::Uuid), a);
    }

    #[test]
    fn readable_ids_lead_back_to_their_debit() {
        let ids = RunIds::new("crash", IdShape::Readable);
        assert_eq!(ids.event_id(7), "crash-7");
        assert_eq!(ids.transaction_id(7), "txn-crash-7");
        assert_eq!(ids.sequence("crash-7"), Some(7));
        assert_eq!(ids.sequence("crashed-7"), None);
        let mut g = Generator::new("crash", DebitMix::uk_only());
        assert_eq!(g.event(3).event_id, "crash-3");
    }

    #[test]
    fn generated_numbers_are_valid_and_distinct() {
        let mut g = Generator::new("t", DebitMix::default());
        let mut seen = std::collections::HashSet::new();
        for i in (1..200).chain([999_999, 1_000_000, 5_432_100]) {
            let ev = g.event(i);
            assert!(
                pigeon::routing::Msisdn::parse(&ev.destination).is_ok(),
                "{i}"
            );
            assert!(seen.insert(ev.destination), "{i}");
        }
    }
}
