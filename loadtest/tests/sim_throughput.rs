//! Throughput of one bind: a pipelined ESME pushes submits (receipts requested) as fast as the
//! simulator answers and acknowledges every receipt. Ignored by default; run in release:
//! `cargo test --release -p pigeon-loadtest --test sim_throughput -- --ignored --nocapture`.
//! `SIM_THROUGHPUT_MESSAGES` sets the count and `SIM_THROUGHPUT_MIN_RATE` the rate to assert.

// A test crate: a panic is the failure report, helpers included.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use pigeon_loadtest::sim::{start, Account, CarrierSim, SimConfig};
use rusmpp::pdus::{BindTransceiver, DeliverSmResp, SubmitSm};
use rusmpp::tokio_codec::CommandCodec;
use rusmpp::types::{COctetString, OctetString};
use rusmpp::values::RegisteredDelivery;
use rusmpp::{Command, CommandId, CommandStatus};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::codec::Framed;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "throughput check; run in release"]
async fn one_bind_sustains_the_target_rate() {
    let total = env_u64("SIM_THROUGHPUT_MESSAGES", 200_000);
    let min_rate = env_u64("SIM_THROUGHPUT_MIN_RATE", 20_000);
    let sim = start(SimConfig {
        carriers: vec![CarrierSim {
            accounts: vec![Account::new("bank", "secret")],
            dlr_delay: Duration::from_millis(10),
            ..CarrierSim::default()
        }],
    })
    .await
    .unwrap();
    let stream = TcpStream::connect(sim.addrs()[0].1).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let mut framed = Framed::new(stream, CommandCodec::new());
    let bind = BindTransceiver::builder()
        .system_id(COctetString::from_string("bank".to_string()).unwrap())
        .password(COctetString::from_string("secret".to_string()).unwrap())
        .build();
    framed
        .send(Command::new(CommandStatus::EsmeRok, 1, bind))
        .await
        .unwrap();
    assert_eq!(
        framed.next().await.unwrap().unwrap().status(),
        CommandStatus::EsmeRok
    );
    let (mut sink, mut stream) = framed.split();
    let (ack_tx, mut ack_rx) = mpsc::unbounded_channel::<u32>();

    let started = Instant::now();
    let writer = tokio::spawn(async move {
        let mut sent = 0u64;
        let mut acks_open = true;
        loop {
            // Receipts first, then the next batch of submits.
            while let Ok(seq) = ack_rx.try_recv() {
                let ack = Command::new(CommandStatus::EsmeRok, seq, DeliverSmResp::default());
                sink.feed(ack).await.unwrap();
            }
            if sent < total {
                for _ in 0..256.min(total - sent) {
                    sent += 1;
                    let dest = format!("86138{:08}", sent % 100_000_000);
                    let sm = SubmitSm::builder()
                        .source_addr(COctetString::from_string("95588".to_string()).unwrap())
                        .destination_addr(COctetString::from_string(dest).unwrap())
                        .registered_delivery(RegisteredDelivery::from(1))
                        .short_message(
                            OctetString::from_slice(b"debit 10.00 card 1234 balance 99.00")
                                .unwrap(),
                        )
                        .build();
                    // Truncation intended: sequence numbers only need to be distinct per window.
                    let seq = (sent % 0x7FFF_0000) as u32 + 2;
                    sink.feed(Command::new(CommandStatus::EsmeRok, seq, sm))
                        .await
                        .unwrap();
                }
                sink.flush().await.unwrap();
            } else {
                sink.flush().await.unwrap();
                if !acks_open {
                    return;
                }
                match ack_rx.recv().await {
                    Some(seq) => {
                        let ack =
                            Command::new(CommandStatus::EsmeRok, seq, DeliverSmResp::default());
                        sink.feed(ack).await.unwrap();
                    }
                    None => acks_open = false,
                }
            }
            tokio::task::yield_now().await;
        }
    });

    let (mut resps, mut receipts) = (0u64, 0u64);
    let mut submits_done = None;
    while resps < total || receipts < total {
        let c = tokio::time::timeout(Duration::from_secs(60), stream.next())
            .await
            .expect("stalled")
            .unwrap()
            .unwrap();
        match c.id() {
            CommandId::SubmitSmResp => {
                resps += 1;
                if resps == total {
                    submits_done = Some(started.elapsed());
                }
            }
            CommandId::DeliverSm => {
                receipts += 1;
                ack_tx.send(c.sequence_number()).unwrap();
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    drop(ack_tx);
    writer.await.unwrap();
    let all_done = started.elapsed();
    let submit_time = submits_done.unwrap();
    // Precision loss is irrelevant for a printed rate.
    #[allow(clippy::cast_precision_loss)]
    let rate = total as f64 / submit_time.as_secs_f64();
    println!(
        "{total} submits answered in {submit_time:?} ({rate:.0}/s); all receipts in {all_done:?}"
    );
    let stats = sim.shutdown().await;
    assert_eq!(stats.submits, total);
    assert_eq!(stats.receipts_sent, total);
    assert!(rate >= min_rate as f64, "{rate:.0}/s is below {min_rate}/s");
}
