//! Generated debit events: unique event ids and unique texts (the amount encodes the
//! sequence number), UK and Chinese numbers, English and Chinese locales, some long.

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
}

impl Default for DebitMix {
    fn default() -> Self {
        DebitMix {
            chinese: 0.1,
            long: 0.1,
            malformed_every: 0,
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
        }
    }
}

const MERCHANTS: &[&str] = &["Coffee House", "Metro Ticket", "Green Grocer", "Book Nook"];
const LONG_MERCHANT: &str = "The Grand Central Station Bakery and Coffee Roasters Ltd";

pub struct Generator {
    run_id: String,
    mix: DebitMix,
    seq: u64,
    rng: SmallRng,
    ids: Vec<String>,
}

impl Generator {
    pub fn new(run_id: &str, mix: DebitMix) -> Generator {
        Generator {
            run_id: run_id.to_owned(),
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
            let n: u64 = self.rng.random_range(0..100_000_000);
            (
                format!("+86138{n:08}"),
                "zh-CN",
                "CNY",
                if long {
                    "北京王府井百货大楼有限责任公司第一分店"
                } else {
                    "咖啡店"
                },
            )
        } else {
            let n: u64 = self.rng.random_range(0..1_000_000);
            let m = MERCHANTS[(i % MERCHANTS.len() as u64) as usize];
            (
                format!("+447400{n:06}"),
                "en-GB",
                "GBP",
                if long { LONG_MERCHANT } else { m },
            )
        };
        DebitEvent {
            schema_version: SCHEMA_VERSION,
            event_id: format!("{}-{i}", self.run_id),
            transaction_id: format!("txn-{}-{i}", self.run_id),
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
