//! pigeon-sim's submit and receipt faults over real loopback TCP: each one happens at about
//! its configured level (seeded dice, counted over hundreds of submits), the stats agree
//! with what the client saw, and a carrier without faults shows none of them. Connection
//! faults (drops, half-open) and the stats endpoint are in `sim_faults_conn.rs`.

// A test crate: a panic is the failure report, helpers included.
#![allow(clippy::unwrap_used)]

mod sim_support;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use pigeon_loadtest::sim::{CarrierSim, IdFormat, Latency, ReceiptState, SimStats};
use rusmpp::CommandStatus;
use sim_support::{
    carrier, count_status, receipt_ids, responses, sim_with, wait_stats, Esme, Ev, Kind,
};
use tokio::time::Instant;

/// `n` submits to distinct numbers, pipelined in as few writes as possible; the sequence
/// numbers sent.
async fn burst(esme: &mut Esme, n: usize, registered_delivery: u8) -> Vec<u32> {
    let mut seqs = Vec::with_capacity(n);
    for i in 0..n {
        seqs.push(
            esme.feed_submit(&format!("8613{i:09}"), registered_delivery)
                .await,
        );
    }
    esme.flush().await;
    seqs
}

fn n_responses(n: usize) -> impl Fn(&[Ev]) -> bool {
    move |evs| responses(evs).count() >= n
}

fn seeded(c: CarrierSim) -> CarrierSim {
    CarrierSim { seed: Some(7), ..c }
}

#[tokio::test]
async fn no_faults_by_default() {
    let (sim, addr) = sim_with(carrier(0)).await;
    let mut trx = Esme::bound(addr, Kind::Trx).await;
    let rx = Esme::bound(addr, Kind::Rx).await;
    let start = Instant::now();
    burst(&mut trx, 200, 1).await;
    let evs = trx
        .events_until(|evs| evs.len() >= 400 && receipt_ids(evs).len() >= 200)
        .await;
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(count_status(&evs, CommandStatus::EsmeRok), 200);
    // Every receipt on the bind that submitted, once, after its response.
    let mut answered = HashSet::new();
    for ev in &evs {
        match ev {
            Ev::Resp { id, .. } => assert!(answered.insert(id.clone())),
            Ev::Receipt { id, .. } => assert!(answered.contains(id), "receipt before response"),
            Ev::Other(id) => panic!("unexpected {id:?}"),
        }
    }
    assert_eq!(receipt_ids(&evs).iter().collect::<HashSet<_>>().len(), 200);
    let s = wait_stats(&sim, "acks", |s| s.receipts_acked == 200).await;
    assert_eq!(
        s,
        SimStats {
            binds: 2,
            submits: 200,
            messages: 200,
            receipts_sent: 200,
            receipts_acked: 200,
            unique_pairs: 200,
            data_codings: [("gsm7".to_string(), 200)].into(),
            ..SimStats::default()
        },
        "no fault counter may move"
    );
    drop(rx);
}

#[tokio::test]
async fn throttle_counts_all_binds_of_the_account() {
    let (sim, addr) = sim_with(CarrierSim {
        throttle_tps: Some(100),
        ..carrier(0)
    })
    .await;
    let mut a = Esme::bound(addr, Kind::Trx).await;
    let mut b = Esme::bound(addr, Kind::Tx).await;
    // 150 on each bind: a per-bind bucket would throttle only 100 in all.
    burst(&mut a, 150, 0).await;
    burst(&mut b, 150, 0).await;
    let on_a = a.events_until(n_responses(150)).await;
    let on_b = b.events_until(n_responses(150)).await;
    let throttled = count_status(&on_a, CommandStatus::EsmeRthrottled)
        + count_status(&on_b, CommandStatus::EsmeRthrottled);
    let ok =
        count_status(&on_a, CommandStatus::EsmeRok) + count_status(&on_b, CommandStatus::EsmeRok);
    assert_eq!(throttled + ok, 300);
    assert!(throttled >= 150, "throttled {throttled}");
    assert!(ok >= 100, "the bucket holds one second's worth: ok {ok}");
    let s = sim.stats();
    assert_eq!((s.throttled, s.submits), (throttled as u64, ok as u64));
    assert_eq!(s.errors, 0);
}

#[tokio::test]
async fn error_rate_and_reject_prefixes() {
    let (sim, addr) = sim_with(seeded(CarrierSim {
        error_rate: 0.2,
        error_status: 0x0B,
        reject_prefixes: vec!["86199".to_string()],
        ..carrier(0)
    }))
    .await;
    let mut esme = Esme::bound(addr, Kind::Trx).await;
    burst(&mut esme, 500, 0).await;
    let evs = esme.events_until(n_responses(500)).await;
    let errors = count_status(&evs, CommandStatus::EsmeRinvdstadr);
    assert!((60..=140).contains(&errors), "errors {errors}");
    assert_eq!(count_status(&evs, CommandStatus::EsmeRok), 500 - errors);
    let s = sim.stats();
    assert_eq!((s.errors, s.submits), (errors as u64, 500 - errors as u64));

    // A rejected prefix fails every time.
    for _ in 0..20 {
        esme.submit_to("8619900000000", 1).await;
    }
    let evs = esme.events_until(n_responses(20)).await;
    assert_eq!(count_status(&evs, CommandStatus::EsmeRinvdstadr), 20);
    assert_eq!(sim.stats().errors, errors as u64 + 20);
}

#[tokio::test]
async fn the_same_seed_meets_the_same_faults() {
    let mut runs = Vec::new();
    for _ in 0..2 {
        let (_sim, addr) = sim_with(seeded(CarrierSim {
            error_rate: 0.5,
            ..carrier(0)
        }))
        .await;
        let mut esme = Esme::bound(addr, Kind::Trx).await;
        burst(&mut esme, 64, 0).await;
        let evs = esme.events_until(n_responses(64)).await;
        let statuses: Vec<CommandStatus> = responses(&evs).map(|(_, s, _)| s).collect();
        assert!(statuses.contains(&CommandStatus::EsmeRsyserr));
        runs.push(statuses);
    }
    assert_eq!(runs[0], runs[1]);
}

#[tokio::test]
async fn responses_wait_for_the_latency_and_keep_their_order() {
    let (_sim, addr) = sim_with(seeded(CarrierSim {
        response_latency: Latency::new(50, 50),
        ..carrier(0)
    }))
    .await;
    let mut esme = Esme::bound(addr, Kind::Trx).await;
    let mut sent_at = HashMap::new();
    for i in 0..20 {
        let seq = esme.submit_to(&format!("86138000000{i:02}"), 0).await;
        sent_at.insert(seq, Instant::now());
    }
    let mut order = Vec::new();
    while order.len() < 20 {
        if let Some(Ev::Resp { seq, status, .. }) = esme.next_event().await {
            assert_eq!(status, CommandStatus::EsmeRok);
            let waited = sent_at[&seq].elapsed();
            assert!(
                waited >= Duration::from_millis(50),
                "answered after {waited:?}"
            );
            order.push(seq);
        }
    }
    let mut sorted = order.clone();
    sorted.sort_unstable();
    assert_eq!(order, sorted, "responses must keep the submit order");
}

#[tokio::test]
async fn receipt_delays_and_state_mix() {
    let (_sim, addr) = sim_with(seeded(CarrierSim {
        dlr_jitter: Duration::from_millis(30),
        receipt_mix: vec![
            (ReceiptState::Delivered, 0.5),
            (ReceiptState::Undeliverable, 0.5),
        ],
        ..carrier(20)
    }))
    .await;
    let mut esme = Esme::bound(addr, Kind::Trx).await;
    // Time from each submit leaving to its receipt arriving, via the response's id.
    let mut sent_at = HashMap::new();
    for i in 0..200 {
        let seq = esme.submit_to(&format!("8613{i:09}"), 1).await;
        sent_at.insert(seq, Instant::now());
    }
    let mut submitted_at = HashMap::new();
    let mut delays = Vec::new();
    let mut states: HashMap<u8, usize> = HashMap::new();
    while delays.len() < 200 {
        match esme.next_event().await.expect("connection closed") {
            Ev::Resp { seq, id, .. } => {
                submitted_at.insert(id, sent_at[&seq]);
            }
            Ev::Receipt { id, state } => {
                delays.push(submitted_at[&id].elapsed());
                *states.entry(state).or_default() += 1;
            }
            Ev::Other(id) => panic!("unexpected {id:?}"),
        }
    }
    let delivered = states[&ReceiptState::Delivered.message_state()];
    let undeliverable = states[&ReceiptState::Undeliverable.message_state()];
    assert_eq!(delivered + undeliverable, 200);
    assert!((60..=140).contains(&delivered), "{states:?}");
    let (min, max) = (delays.iter().min().unwrap(), delays.iter().max().unwrap());
    assert!(
        *min >= Duration::from_millis(20),
        "a receipt came after {min:?}"
    );
    assert!(
        *max >= *min + Duration::from_millis(10),
        "jitter spreads receipts: {min:?}..{max:?}"
    );
}

#[tokio::test]
async fn receipt_ids_are_spelt_their_own_way() {
    let vonage = CarrierSim {
        receipt_id_format: Some(IdFormat::Decimal),
        ..carrier(0)
    };
    let shouting = CarrierSim {
        receipt_id_uppercase: true,
        receipt_id_strip_leading_zeros: true,
        ..carrier(0)
    };
    let uuid = CarrierSim {
        id_format: IdFormat::Uuid,
        ..carrier(0)
    };
    type Check = fn(&str, &str);
    let checks: [(CarrierSim, Check); 3] = [
        (vonage, |resp, receipt| {
            let n = u64::from_str_radix(resp, 16).unwrap();
            assert_eq!(receipt, n.to_string());
        }),
        (shouting, |resp, receipt| {
            assert_eq!(receipt, resp.trim_start_matches('0').to_ascii_uppercase());
            assert_ne!(receipt, resp);
        }),
        (uuid, |resp, receipt| {
            assert_eq!(uuid::Uuid::parse_str(resp).unwrap().get_version_num(), 4);
            assert_eq!(receipt, resp);
        }),
    ];
    for (c, check) in checks {
        let (_sim, addr) = sim_with(c).await;
        let mut esme = Esme::bound(addr, Kind::Trx).await;
        let resp = esme.submit_ok("8613800000000", "x").await;
        let evs = esme.events_until(|evs| !receipt_ids(evs).is_empty()).await;
        check(&resp, receipt_ids(&evs)[0]);
    }
}

#[tokio::test]
async fn some_receipts_come_before_their_response() {
    let (sim, addr) = sim_with(seeded(CarrierSim {
        receipt_before_response: 0.3,
        ..carrier(0)
    }))
    .await;
    let mut esme = Esme::bound(addr, Kind::Trx).await;
    burst(&mut esme, 200, 1).await;
    let evs = esme.events_until(|evs| evs.len() >= 400).await;
    let mut answered = HashSet::new();
    let mut early = 0;
    for ev in &evs {
        match ev {
            Ev::Resp { id, .. } => {
                answered.insert(id.as_str());
            }
            Ev::Receipt { id, .. } if !answered.contains(id.as_str()) => early += 1,
            _ => {}
        }
    }
    assert!((30..=90).contains(&early), "early receipts {early}");
    let s = sim.stats();
    assert_eq!(s.receipts_before_response, early as u64);
    assert_eq!((s.submits, s.receipts_sent), (200, 200));
}

#[tokio::test]
async fn some_receipts_are_sent_twice() {
    let (sim, addr) = sim_with(seeded(CarrierSim {
        duplicate_receipts: 0.25,
        ..carrier(0)
    }))
    .await;
    let mut esme = Esme::bound(addr, Kind::Trx).await;
    burst(&mut esme, 200, 1).await;
    let evs = esme
        .events_until(|evs| receipt_ids(evs).iter().collect::<HashSet<_>>().len() >= 200)
        .await;
    // Let the stats settle on what was sent, then read every copy.
    let s = wait_stats(&sim, "receipts sent", |s| {
        s.receipts_sent == 200 + s.duplicate_receipts_sent
    })
    .await;
    let dups = s.duplicate_receipts_sent as usize;
    assert!((25..=75).contains(&dups), "duplicates {dups}");
    let mut ids = receipt_ids(&evs).len();
    let mut more = Vec::new();
    while ids < 200 + dups {
        more.push(esme.next_event().await.expect("connection closed"));
        ids = receipt_ids(&evs).len() + receipt_ids(&more).len();
    }
    let mut copies: HashMap<&str, usize> = HashMap::new();
    for id in receipt_ids(&evs).into_iter().chain(receipt_ids(&more)) {
        *copies.entry(id).or_default() += 1;
    }
    assert_eq!(copies.values().filter(|n| **n == 2).count(), dups);
    assert!(copies.values().all(|n| *n <= 2));
    wait_stats(&sim, "acks", |s| s.receipts_acked == 200 + dups as u64).await;
}

#[tokio::test]
async fn some_receipts_arrive_on_another_bind() {
    let (sim, addr) = sim_with(seeded(CarrierSim {
        receipts_on_other_bind: 0.5,
        ..carrier(0)
    }))
    .await;
    let mut trx = Esme::bound(addr, Kind::Trx).await;
    let mut rx = Esme::bound(addr, Kind::Rx).await;
    burst(&mut trx, 200, 1).await;
    let on_trx = trx.events_until(n_responses(200)).await;
    let moved = wait_stats(&sim, "receipts sent", |s| s.receipts_sent == 200)
        .await
        .receipts_other_bind as usize;
    assert!((60..=140).contains(&moved), "moved {moved}");
    let mut here = receipt_ids(&on_trx).len();
    let mut rest = Vec::new();
    while here < 200 - moved {
        rest.push(trx.next_event().await.expect("connection closed"));
        here = receipt_ids(&on_trx).len() + receipt_ids(&rest).len();
    }
    let there = rx.events_until(|evs| receipt_ids(evs).len() >= moved).await;
    assert_eq!(receipt_ids(&there).len(), moved);

    // Alone, a bind gets all its receipts whatever the rate says.
    let (sim, addr) = sim_with(CarrierSim {
        receipts_on_other_bind: 1.0,
        ..carrier(0)
    })
    .await;
    let mut alone = Esme::bound(addr, Kind::Trx).await;
    burst(&mut alone, 20, 1).await;
    alone.events_until(|evs| receipt_ids(evs).len() >= 20).await;
    assert_eq!(sim.stats().receipts_other_bind, 0);
}

#[tokio::test]
async fn some_submits_are_never_answered_but_still_delivered() {
    for still_delivers in [true, false] {
        let (sim, addr) = sim_with(seeded(CarrierSim {
            no_response_rate: 0.2,
            no_response_still_delivers: still_delivers,
            ..carrier(0)
        }))
        .await;
        let mut esme = Esme::bound(addr, Kind::Trx).await;
        burst(&mut esme, 200, 1).await;
        let s = wait_stats(&sim, "all submits", |s| s.submits == 200).await;
        let silent = s.no_response as usize;
        assert!((20..=65).contains(&silent), "unanswered {silent}");
        let receipts = if still_delivers { 200 } else { 200 - silent };
        let evs = esme
            .events_until(|evs| {
                responses(evs).count() >= 200 - silent && receipt_ids(evs).len() >= receipts
            })
            .await;
        assert_eq!(count_status(&evs, CommandStatus::EsmeRok), 200 - silent);
        let answered: HashSet<&str> = responses(&evs).map(|(_, _, id)| id).collect();
        let unanswered = receipt_ids(&evs)
            .into_iter()
            .filter(|id| !answered.contains(id))
            .count();
        // The receipts of unanswered submits carry ids the client never saw.
        assert_eq!(unanswered, if still_delivers { silent } else { 0 });
        let s = wait_stats(&sim, "acks", |s| s.receipts_acked == receipts as u64).await;
        assert_eq!((s.messages, s.receipts_sent), (200, receipts as u64));
    }
}
