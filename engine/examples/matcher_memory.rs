//! Heap the receipt matcher holds per notification awaiting its receipt: registers 1,000,000
//! realistic acceptances (UUID v4 event ids, `txn-000123456` transaction ids, masked UK
//! numbers, one 8 to 16 hex digit message id each, two carriers), prints the live heap bytes
//! per entry, then settles them all with receipts and prints what remains.
//!
//! `cargo run --release -p pigeon-engine --example matcher_memory`
//!
//! Counts the bytes requested from the allocator (the engine's, mimalloc), not its rounding.

use std::sync::Arc;
use std::time::Duration;

use cap::Cap;
use pigeon::matcher::{Accepted, IdRule, Matcher};
use pigeon::notification::Meta;
use pigeon_smpp::receipt::{IdForm, Receipt, ReceiptState};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use time::OffsetDateTime;
use tokio::time::Instant;

#[global_allocator]
static ALLOC: Cap<mimalloc::MiMalloc> = Cap::new(mimalloc::MiMalloc, usize::MAX);

const N: usize = 1_000_000;
/// Seeds of the generators of the message ids (drawn again for the receipts) and of the rest.
const IDS: u64 = 0x1d5;
const REST: u64 = 0x5eed;

/// The `i`th notification's carrier and message id, as its submit response spelled it: one
/// carrier answers in upper case, the other in lower case. The low 20 bits are `i`, so that
/// every id is distinct.
fn message_id(rng: &mut StdRng, i: usize) -> (usize, String) {
    let carrier = i % 2;
    let digits = rng.random_range(8..=16usize);
    let bits = digits * 4;
    let mask = if bits == 64 {
        u64::MAX
    } else {
        (1 << bits) - 1
    };
    let value = ((rng.random::<u64>() << 20) | i as u64) & mask;
    let id = if carrier == 0 {
        format!("{value:0digits$X}")
    } else {
        format!("{value:0digits$x}")
    };
    (carrier, id)
}

fn accepted(
    rng: &mut StdRng,
    ids: &mut StdRng,
    i: usize,
    names: &[Arc<str>],
    now: OffsetDateTime,
) -> Accepted {
    let event_id = uuid::Builder::from_random_bytes(rng.random())
        .into_uuid()
        .hyphenated()
        .to_string();
    let last4: u16 = rng.random_range(0..10_000);
    let ago = Duration::from_nanos(rng.random_range(0..3_600_000_000_000u64));
    let (carrier, id) = message_id(ids, i);
    Accepted {
        meta: Meta {
            event_id,
            transaction_id: format!("txn-{i:09}"),
            occurred_at: now - ago,
            masked: format!("*******{last4:04}"),
            segments: 1,
            possible_duplicate: false,
        },
        carrier,
        carrier_name: names[carrier].clone(),
        message_ids: vec![id],
        resubmit: None,
    }
}

fn per_entry(bytes: usize) -> f64 {
    bytes as f64 / N as f64
}

fn main() {
    let names: Vec<Arc<str>> = vec!["vodafone".into(), "three".into()];
    let park = Duration::from_secs(600);
    let mut m = Matcher::new(
        Duration::from_secs(48 * 3600),
        park,
        vec![IdRule::Fixed(IdForm::AsIs); 2],
    );
    let (now, wall) = (Instant::now(), OffsetDateTime::now_utc());
    let mut out = Vec::new();
    let base = ALLOC.allocated();

    let (mut rng, mut ids) = (StdRng::seed_from_u64(REST), StdRng::seed_from_u64(IDS));
    for i in 0..N {
        let a = accepted(&mut rng, &mut ids, i, &names, wall);
        m.accept(a, now, &mut out);
    }
    assert!(out.is_empty() && m.awaiting() == N);
    let held = ALLOC.allocated() - base;
    println!(
        "awaiting {N}: {held} bytes live, {:.1} bytes per entry",
        per_entry(held)
    );

    // The same ids again, for the receipts.
    let mut ids = StdRng::seed_from_u64(IDS);
    let mut settled = 0;
    for i in 0..N {
        let (carrier, message_id) = message_id(&mut ids, i);
        let r = Receipt {
            message_id,
            state: ReceiptState::Delivered,
            error_code: None,
        };
        m.receipt(carrier, r, now, &mut out);
        settled += out.len();
        out.clear();
    }
    assert_eq!((settled, m.awaiting()), (N, 0));
    let left = ALLOC.allocated() - base;
    println!(
        "after settling all: {left} bytes live, {:.1} bytes per settled entry (ids kept {}s to \
         {}s to tell duplicates)",
        per_entry(left),
        park.as_secs(),
        2 * park.as_secs()
    );
    m.expire(now + park * 2 + Duration::from_secs(1), &mut out);
    let left = ALLOC.allocated() - base;
    println!(
        "after the settled ids expire: {left} bytes live, {:.1} bytes per entry",
        per_entry(left)
    );
}
