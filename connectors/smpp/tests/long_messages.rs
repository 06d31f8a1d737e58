//! Long messages over real loopback TCP: SAR-numbered parts and `message_payload` submits, as
//! the engine builds them from [`segment_with`], checked in what the scripted SMSC reads.

mod common;

use bytes::Bytes;
use common::seen::SeenSubmit;
use common::{config, start, submit, Script};
use pigeon_smpp::encoding::{
    segment_with, Alphabet, Concatenation, SegmentOptions, Segmented, DATA_CODING_UCS2,
};
use pigeon_smpp::session::{connect, Session, Submit, SubmitOutcome};
use tokio::sync::mpsc;

/// The submits for every part of `seg`, built as the engine's shard builds them.
fn submits(seg: &Segmented) -> Vec<Submit> {
    seg.parts
        .iter()
        .enumerate()
        .map(|(i, p)| Submit {
            data_coding: seg.coding.data_coding(),
            esm_class: seg.esm_class(),
            short_message: Bytes::copy_from_slice(p),
            sar: seg.sar_for_part(i),
            message_payload: seg.payload_tlv,
            ..submit(0)
        })
        .collect()
}

async fn send_all(session: &Session, submits: Vec<Submit>) {
    for s in submits {
        let outcome = session.submit(s).await;
        assert!(
            matches!(outcome, SubmitOutcome::Accepted { .. }),
            "{outcome:?}"
        );
    }
}

#[tokio::test]
async fn sar_parts_carry_the_three_tlvs_and_no_udh() {
    let smsc = start(Script::default()).await;
    let (tx, _rx) = mpsc::channel(16);
    let session = connect(config(&smsc.addr), tx).await.unwrap();
    let opts = SegmentOptions {
        alphabet: Alphabet::Gsm7,
        concatenation: Concatenation::Sar,
    };
    // 400 septets in SAR parts of 152: three parts.
    let seg = segment_with(&"x".repeat(400), 0xA55A, &opts);
    assert_eq!(seg.parts.len(), 3);
    send_all(&session, submits(&seg)).await;
    let seen = smsc.wait_for("three submits", |o| o.submits == 3).await;
    for (i, (part, got)) in seg.parts.iter().zip(&seen.submit_pdus).enumerate() {
        let seq = u8::try_from(i + 1).unwrap();
        assert_eq!(
            *got,
            SeenSubmit {
                esm_class: 0,
                data_coding: 0,
                short_message: part.clone(),
                sar_ref: Some(0xA55A),
                sar_total: Some(3),
                sar_seq: Some(seq),
                payload: None,
            },
            "part {seq}"
        );
        // No UDH: the body is the text itself.
        assert_eq!(got.short_message.first(), Some(&b'x'));
    }
    let total: usize = seen.submit_pdus.iter().map(|s| s.short_message.len()).sum();
    assert_eq!(total, 400);
    session.unbind().await;
}

#[tokio::test]
async fn message_payload_submit_has_empty_short_message() {
    let smsc = start(Script::default()).await;
    let (tx, _rx) = mpsc::channel(16);
    let session = connect(config(&smsc.addr), tx).await.unwrap();
    let opts = SegmentOptions {
        alphabet: Alphabet::Ucs2Only,
        concatenation: Concatenation::MessagePayload,
    };
    // 600 UTF-16 units: 1,200 octets, far beyond one short_message.
    let text = "ü".repeat(600);
    let seg = segment_with(&text, 7, &opts);
    assert_eq!(seg.parts.len(), 1);
    assert!(seg.payload_tlv);
    send_all(&session, submits(&seg)).await;
    let seen = smsc.wait_for("one submit", |o| o.submits == 1).await;
    let got = &seen.submit_pdus[0];
    assert!(got.short_message.is_empty());
    assert_eq!(got.payload.as_deref(), Some(&seg.parts[0][..]));
    assert_eq!(got.payload.as_ref().map(Vec::len), Some(1200));
    assert_eq!(got.data_coding, DATA_CODING_UCS2);
    assert_eq!(got.esm_class, 0);
    assert_eq!(
        (got.sar_ref, got.sar_total, got.sar_seq),
        (None, None, None)
    );
    session.unbind().await;
}

#[tokio::test]
async fn udh_parts_keep_their_header_and_no_tlvs() {
    let smsc = start(Script::default()).await;
    let (tx, _rx) = mpsc::channel(16);
    let session = connect(config(&smsc.addr), tx).await.unwrap();
    let seg = segment_with(&"y".repeat(200), 0x0142, &SegmentOptions::default());
    send_all(&session, submits(&seg)).await;
    let seen = smsc.wait_for("two submits", |o| o.submits == 2).await;
    for (i, got) in seen.submit_pdus.iter().enumerate() {
        let seq = u8::try_from(i + 1).unwrap();
        assert_eq!(got.esm_class, 0x40);
        assert_eq!(&got.short_message[..6], &[0x05, 0x00, 0x03, 0x42, 2, seq]);
        assert_eq!((got.sar_ref, got.payload.as_ref()), (None, None));
    }
    session.unbind().await;
}

#[tokio::test]
async fn oversized_bodies_are_rejected_locally() {
    let smsc = start(Script::default()).await;
    let (tx, _rx) = mpsc::channel(16);
    let session = connect(config(&smsc.addr), tx).await.unwrap();
    let too_long = Submit {
        short_message: Bytes::from(vec![b'a'; 255]),
        ..submit(1)
    };
    let payload_too_long = Submit {
        short_message: Bytes::from(vec![b'a'; 65_536]),
        message_payload: true,
        ..submit(2)
    };
    let bad_sar = Submit {
        sar: Some((1, 2, 3)),
        ..submit(3)
    };
    for (s, status) in [(too_long, 0x01), (payload_too_long, 0x01), (bad_sar, 0xC4)] {
        assert_eq!(
            session.submit(s).await,
            SubmitOutcome::Rejected {
                command_status: status
            }
        );
    }
    session.unbind().await;
    assert_eq!(smsc.now().submits, 0);
}
