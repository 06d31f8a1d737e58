//! pigeon-sim over real loopback TCP, driven by the minimal rusmpp client in `sim_support`:
//! binds, submits, receipts, concatenation, duplicates, bind quotas, hostile input, receipt
//! routing to other binds, and carrier kill/restart. Every wait is on a condition with a
//! deadline.

// A test crate: a panic is the failure report, helpers included.
#![allow(clippy::unwrap_used)]

mod sim_support;

use pigeon_loadtest::sim::{start, CarrierSim, IdFormat, ReceiptState, SimConfig};
use pigeon_smpp::receipt::{parse_receipt, ReceiptTlvs};
use rusmpp::tokio_codec::CommandCodec;
use rusmpp::{CommandId, CommandStatus, Pdu};
use sim_support::{carrier, receipt_tlvs, sim_with, udh_part, wait_stats, within, Esme, Kind};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

#[tokio::test]
async fn wrong_password_is_refused_with_bindfail_and_closed() {
    let (sim, addr) = sim_with(carrier(0)).await;
    let mut esme = Esme::connect(addr).await;
    assert_eq!(
        esme.bind(Kind::Trx, "bank", "wrong").await,
        CommandStatus::EsmeRbindfail
    );
    assert!(esme.recv().await.is_none(), "session must close");
    let mut esme = Esme::connect(addr).await;
    assert_eq!(
        esme.bind(Kind::Trx, "nobody", "secret").await,
        CommandStatus::EsmeRbindfail
    );
    let stats = sim.shutdown().await;
    assert_eq!((stats.binds, stats.bind_failures), (0, 2));
}

#[tokio::test]
async fn submit_before_bind_is_refused_and_link_pdus_are_answered() {
    let (sim, addr) = sim_with(carrier(0)).await;
    let mut esme = Esme::connect(addr).await;
    esme.send(Pdu::EnquireLink).await;
    esme.expect(CommandId::EnquireLinkResp).await;
    esme.submit("8613800000000", 0, 0, b"hi").await;
    let resp = esme.expect(CommandId::SubmitSmResp).await;
    assert_eq!(resp.status(), CommandStatus::EsmeRinvbndsts);

    let mut rx = Esme::bound(addr, Kind::Rx).await;
    rx.submit("8613800000000", 0, 0, b"hi").await;
    let resp = rx.expect(CommandId::SubmitSmResp).await;
    assert_eq!(resp.status(), CommandStatus::EsmeRinvbndsts);
    rx.send(Pdu::Unbind).await;
    rx.expect(CommandId::UnbindResp).await;
    assert!(rx.recv().await.is_none(), "unbind must close");
    assert_eq!(sim.shutdown().await.submits, 0);
}

#[tokio::test]
async fn submits_get_unique_ids_and_receipts_with_tlvs_and_text() {
    let (sim, addr) = sim_with(carrier(20)).await;
    let mut esme = Esme::bound(addr, Kind::Trx).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(
            esme.submit_ok(&format!("861380000000{i}"), "debit 10.00")
                .await,
        );
    }
    let mut expected = ids.clone();
    expected.sort();
    expected.dedup();
    assert_eq!(expected.len(), 3, "ids must be unique: {ids:?}");
    assert!(ids
        .iter()
        .all(|id| id.len() >= 8 && u64::from_str_radix(id, 16).is_ok()));

    let mut receipted = Vec::new();
    for _ in 0..3 {
        let d = esme.receipt().await;
        assert_eq!(u8::from(d.esm_class), 0x04);
        let (tlv_id, tlv_state) = receipt_tlvs(&d);
        let tlv_id = tlv_id.expect("receipted_message_id tlv");
        assert_eq!(tlv_state, Some(ReceiptState::Delivered.message_state()));
        // The text alone must be enough for a tolerant parser.
        let text = d.short_message().as_ref();
        let parsed = parse_receipt(text, &ReceiptTlvs::default()).unwrap();
        assert_eq!(parsed.message_id, tlv_id);
        assert_eq!(parsed.state, ReceiptState::Delivered);
        let text = String::from_utf8(text.to_vec()).unwrap();
        assert!(text.contains("sub:001 dlvrd:001"), "{text}");
        assert!(
            !text.contains("debit"),
            "receipt must not echo the message: {text}"
        );
        receipted.push(tlv_id);
    }
    receipted.sort();
    assert_eq!(receipted, expected);
    let stats = wait_stats(&sim, "acks", |s| s.receipts_acked == 3).await;
    assert_eq!(
        (stats.submits, stats.messages, stats.receipts_sent),
        (3, 3, 3)
    );
    assert_eq!(stats.data_codings.get("gsm7"), Some(&3));
}

#[tokio::test]
async fn decimal_ids_and_failure_state_are_configurable() {
    let (_sim, addr) = sim_with(CarrierSim {
        id_format: IdFormat::Decimal,
        receipt_state: ReceiptState::Undeliverable,
        ..carrier(0)
    })
    .await;
    let mut esme = Esme::bound(addr, Kind::Trx).await;
    let id = esme.submit_ok("8613800000000", "x").await;
    assert!(id.bytes().all(|b| b.is_ascii_digit()), "{id}");
    let d = esme.receipt().await;
    let (tlv_id, state) = receipt_tlvs(&d);
    assert_eq!(tlv_id.as_deref(), Some(id.as_str()));
    assert_eq!(state, Some(ReceiptState::Undeliverable.message_state()));
}

#[tokio::test]
async fn two_part_udh_message_is_one_message_two_segments_two_receipts() {
    let (sim, addr) = sim_with(carrier(0)).await;
    let mut esme = Esme::bound(addr, Kind::Trx).await;
    let first = "A".repeat(153);
    for (seq, text) in [(1, first.as_str()), (2, "tail of the message")] {
        esme.submit("8613800000000", 0x40, 0x00, &udh_part(42, 2, seq, text))
            .await;
    }
    let mut ids = Vec::new();
    let mut receipts = 0;
    while ids.len() < 2 || receipts < 2 {
        let c = esme.recv().await.expect("connection closed");
        match c.pdu() {
            Some(Pdu::SubmitSmResp(r)) => ids.push(r.message_id().as_str().to_string()),
            Some(Pdu::DeliverSm(_)) => {
                receipts += 1;
                esme.ack(c.sequence_number()).await;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_ne!(ids[0], ids[1]);
    let s = wait_stats(&sim, "two acks", |s| s.receipts_acked == 2).await;
    assert_eq!((s.submits, s.messages, s.segments_reassembled), (2, 1, 2));
    assert_eq!((s.receipts_sent, s.unique_pairs), (2, 1));
}

#[tokio::test]
async fn duplicate_destination_and_text_is_counted() {
    let (sim, addr) = sim_with(carrier(0)).await;
    let mut esme = Esme::bound(addr, Kind::Tx).await;
    esme.submit_ok("8613800000000", "debit 10.00").await;
    esme.submit_ok("8613800000000", "debit 10.00").await;
    esme.submit_ok("8613800000001", "debit 10.00").await;
    // The same text as UCS-2 is the same message for the customer.
    let ucs2: Vec<u8> = "debit 10.00"
        .encode_utf16()
        .flat_map(u16::to_be_bytes)
        .collect();
    esme.submit("8613800000001", 0, 0x08, &ucs2).await;
    esme.expect(CommandId::SubmitSmResp).await;
    let s = wait_stats(&sim, "four messages", |s| s.messages == 4).await;
    assert_eq!((s.unique_pairs, s.duplicate_pairs), (2, 2));
    assert_eq!(s.data_codings.get("ucs2"), Some(&1));
}

#[tokio::test]
async fn bind_quota_is_enforced_per_account_and_freed_on_unbind() {
    let (sim, addr) = sim_with(CarrierSim {
        max_binds: Some(1),
        ..carrier(0)
    })
    .await;
    let mut first = Esme::bound(addr, Kind::Trx).await;
    let mut second = Esme::connect(addr).await;
    assert_eq!(
        second.bind(Kind::Trx, "bank", "secret").await,
        CommandStatus::EsmeRalybnd
    );
    assert!(second.recv().await.is_none(), "refused bind must close");
    first.send(Pdu::Unbind).await;
    first.expect(CommandId::UnbindResp).await;
    assert!(first.recv().await.is_none());
    let _third = Esme::bound(addr, Kind::Trx).await;
    let s = sim.stats();
    assert_eq!((s.binds, s.bind_failures), (2, 1));
}

#[tokio::test]
async fn garbage_closes_only_that_session() {
    let (sim, addr) = sim_with(carrier(0)).await;
    let mut healthy = Esme::bound(addr, Kind::Trx).await;
    // A bind_transceiver whose system_id never ends.
    let mut unterminated = vec![0, 0, 0, 0x20, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 1];
    unterminated.extend_from_slice(&[b'a'; 16]);
    let hostile: [&[u8]; 3] = [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        &[0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 1],
        &unterminated,
    ];
    for bytes in hostile {
        let mut raw = within("connect", TcpStream::connect(addr)).await.unwrap();
        raw.write_all(bytes).await.unwrap();
        let mut esme = Esme {
            framed: Framed::new(raw, CommandCodec::new()),
            seq: 0,
        };
        assert!(esme.recv().await.is_none(), "hostile session must close");
    }
    // The simulator still serves old and new sessions.
    healthy.submit_ok("8613800000000", "still here").await;
    let mut fresh = Esme::bound(addr, Kind::Trx).await;
    fresh.submit_ok("8613800000001", "and here").await;
    assert_eq!(sim.stats().submits, 2);
}

#[tokio::test]
async fn receipts_go_to_a_receiver_when_submitted_on_a_transmitter() {
    let (sim, addr) = sim_with(carrier(0)).await;
    let mut tx = Esme::bound(addr, Kind::Tx).await;
    let mut rx = Esme::bound(addr, Kind::Rx).await;
    let id = tx.submit_ok("8613800000000", "split binds").await;
    let d = rx.receipt().await;
    assert_eq!(receipt_tlvs(&d).0.as_deref(), Some(id.as_str()));
    wait_stats(&sim, "ack", |s| s.receipts_acked == 1).await;
}

#[tokio::test]
async fn receipts_owed_by_a_closed_session_reach_the_next_bind() {
    let (sim, addr) = sim_with(carrier(100)).await;
    let mut trx = Esme::bound(addr, Kind::Trx).await;
    let id = trx.submit_ok("8613800000000", "owed").await;
    drop(trx);
    // No receiver is bound yet: the carrier keeps the receipt until one binds.
    let mut later = Esme::bound(addr, Kind::Trx).await;
    let d = later.receipt().await;
    assert_eq!(receipt_tlvs(&d).0.as_deref(), Some(id.as_str()));
    wait_stats(&sim, "ack", |s| s.receipts_acked == 1).await;
}

#[tokio::test]
async fn killed_carrier_drops_sessions_and_comes_back() {
    let (sim, addr) = sim_with(carrier(50)).await;
    let mut esme = Esme::bound(addr, Kind::Trx).await;
    let id = esme.submit_ok("8613800000000", "before the outage").await;
    assert!(sim.kill_carrier("carrier1").await);
    assert!(esme.recv().await.is_none(), "session must drop");
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "listener must be gone"
    );
    sim.restart_carrier("carrier1").await.unwrap();
    let mut esme = Esme::bound(addr, Kind::Trx).await;
    let d = esme.receipt().await;
    assert_eq!(receipt_tlvs(&d).0.as_deref(), Some(id.as_str()));
    let stats = sim.shutdown().await;
    assert_eq!(stats.binds, 2);
}

#[tokio::test]
async fn carriers_share_the_id_space_and_the_duplicate_set() {
    let sim = start(SimConfig {
        carriers: vec![
            CarrierSim {
                name: "a".into(),
                ..carrier(0)
            },
            CarrierSim {
                name: "b".into(),
                ..carrier(0)
            },
        ],
    })
    .await
    .unwrap();
    let mut on_a = Esme::bound(sim.addr("a").unwrap(), Kind::Tx).await;
    let mut on_b = Esme::bound(sim.addr("b").unwrap(), Kind::Tx).await;
    let id_a = on_a.submit_ok("8613800000000", "failover").await;
    let id_b = on_b.submit_ok("8613800000000", "failover").await;
    assert_ne!(id_a, id_b);
    let s = wait_stats(&sim, "two messages", |s| s.messages == 2).await;
    assert_eq!((s.unique_pairs, s.duplicate_pairs), (1, 1));
    assert_eq!(sim.carrier_stats("b").unwrap().duplicate_pairs, 1);
    assert!(sim.carrier_stats("c").is_none());
}

#[tokio::test]
async fn header_only_deliver_sm_resp_counts_as_an_ack() {
    let (sim, addr) = sim_with(carrier(0)).await;
    let mut esme = Esme::bound(addr, Kind::Trx).await;
    esme.submit_ok("8613800000000", "terse client").await;
    let c = esme.expect(CommandId::DeliverSm).await;
    let mut raw = vec![0, 0, 0, 16, 0x80, 0, 0, 5, 0, 0, 0, 0];
    raw.extend_from_slice(&c.sequence_number().to_be_bytes());
    esme.framed.get_mut().write_all(&raw).await.unwrap();
    wait_stats(&sim, "ack", |s| s.receipts_acked == 1).await;
    // The session is still usable afterwards.
    esme.submit_ok("8613800000001", "still bound").await;
}
