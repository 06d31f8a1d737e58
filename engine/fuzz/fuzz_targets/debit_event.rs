//! Debit event records from Kafka through the whole intake decision: decoding and
//! validation, eligibility, routing, rendering, segmenting.
//!
//! Input: a first octet picks the form. Even: the rest is the record as it is. Odd: the
//! rest is split at 0xff into field values (destination, merchant, locale, card_last4,
//! currency, customer_ref, event_id, amount as decimal text), read as lossy UTF-8 and put in
//! a well-formed event of the current time, so that the fuzzer reaches past the JSON.
//!
//! Checks: no panic; a card number longer than four digits is never accepted; what is sent
//! has a valid event id, a destination of digits, a masked number showing at most four
//! digits, and one part or more, each within one SMS unless it goes in the payload TLV.

#![no_main]

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use pigeon::config::Config;
use pigeon::eligibility::Eligibility;
use pigeon::health::CarrierHealth;
use pigeon::intake::{Decision, Encodings, Intake, IntakeLimits};
use pigeon::notification::Origin;
use pigeon::template::Templates;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

fn intake() -> Intake {
    let cfg = Config::from_toml(
        r#"
        [kafka]
        brokers = "127.0.0.1:1"
        [[carriers]]
        name = "a"
        address = "127.0.0.1:1"
        system_id = "p"
        password = "p"
        [[carriers]]
        name = "b"
        address = "127.0.0.1:2"
        system_id = "p"
        password = "p"
        long_messages = "message_payload"
        [routing]
        default_route = ["a"]
        operators = { uk = ["a", "b"], cn = ["b", "a"] }
        prefixes = { "+44" = "uk", "+86" = "cn" }
        "#,
    )
    .expect("valid");
    let health = Arc::new(CarrierHealth::new(2));
    health.set_binds_up(0, 1);
    health.set_binds_up(1, 1);
    let encodings: Encodings = cfg.carriers.iter().map(|c| c.segment_options()).collect();
    Intake::new(
        Templates::new(&cfg.templates).expect("templates"),
        cfg.routing.router(&cfg.carriers).expect("router"),
        IntakeLimits {
            max_event_bytes: 4096,
            validity: Duration::from_secs(3600),
            priority_lanes: true,
        },
        health,
        encodings,
        Eligibility::everyone(),
    )
}

thread_local! {
    static INTAKE: RefCell<Intake> = RefCell::new(intake());
}

/// The odd form: field values in a well-formed event. The card value, for the check.
fn structured(data: &[u8]) -> (Vec<u8>, String) {
    let mut fields = data
        .split(|&b| b == 0xff)
        .map(|f| String::from_utf8_lossy(f).into_owned());
    let mut next = |default: &str| fields.next().unwrap_or_else(|| default.to_owned());
    let destination = next("+447700900123");
    let merchant = next("Coffee");
    let locale = next("en-GB");
    let card = next("4242");
    let currency = next("GBP");
    let customer = next("c-1");
    let event_id = next("evt-1");
    let amount = next("1250");
    let now = OffsetDateTime::now_utc().format(&Rfc3339).expect("time");
    let mut ev = serde_json::json!({
        "schema_version": 1, "event_id": event_id, "transaction_id": "txn-1",
        "occurred_at": now, "customer_ref": customer, "destination": destination,
        "card_last4": card, "currency": currency, "merchant": merchant, "locale": locale,
        "amount_minor": 0,
    });
    ev["amount_minor"] = match amount.trim().parse::<i64>() {
        Ok(n) => n.into(),
        Err(_) => amount.into(),
    };
    (ev.to_string().into_bytes(), card)
}

fuzz_target!(|data: &[u8]| {
    let Some((&form, rest)) = data.split_first() else {
        return;
    };
    let (record, card) = if form % 2 == 0 {
        (rest.to_vec(), None)
    } else {
        let (record, card) = structured(rest);
        (record, Some(card))
    };
    let origin = Origin {
        partition: 0,
        offset: 0,
    };
    let decision = INTAKE.with(|i| i.borrow_mut().decide(&record, origin));
    let card_too_long = card.is_some_and(|c| c.bytes().filter(u8::is_ascii_digit).count() > 4);
    match decision {
        Decision::Send(n) => {
            assert!(!card_too_long, "a full card number was accepted");
            let id = &n.meta.event_id;
            assert!(!id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_graphic()));
            assert!(!n.destination.is_empty() && n.destination.bytes().all(|b| b.is_ascii_digit()));
            let shown = n.meta.masked.bytes().filter(u8::is_ascii_digit).count();
            assert!(shown <= 4, "the masked number shows {shown} digits");
            assert!(!n.text.parts.is_empty());
            if !n.text.payload_tlv {
                // One SMS: 140 octets, or 160 GSM 7-bit characters sent one per octet.
                assert!(n.text.parts.iter().all(|p| p.len() <= 160));
            }
            assert_eq!(n.meta.segments as usize, n.text.parts.len());
        }
        Decision::Skip { meta, .. } => {
            assert!(!card_too_long, "a full card number was accepted");
            assert!(meta.masked.bytes().filter(u8::is_ascii_digit).count() <= 4);
        }
        Decision::Reject { .. } => {}
    }
});
