//! Hot-path costs: segmentation, receipt parsing, submit_sm encode + decode through the codec.

#![allow(clippy::unwrap_used)]

use bytes::BytesMut;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use pigeon_smpp::encoding::{segment, segment_with, Alphabet, Concatenation, SegmentOptions};
use pigeon_smpp::receipt::{parse_receipt, ReceiptTlvs};
use rusmpp::{
    pdus::SubmitSm,
    tokio_codec::CommandCodec,
    types::{COctetString, OctetString},
    values::{DataCoding, Npi, RegisteredDelivery, Ton},
    Command, CommandStatus,
};
use tokio_util::codec::{Decoder, Encoder};

const GSM_ONE: &str = "Your account ****1234 was debited EUR 12.50 at SUPERMARKET on 31/01 12:00. \
Balance EUR 1,024.10. Not you? Call +49 30 1234567.";
const UCS2: &str = "您尾号1234的账户于01月31日12:00消费支出人民币12.50元，余额1024.10元。【银行】";
/// Outside GSM 03.38 (ç, ô) but inside Latin-1: UCS-2 by default, Latin-1 where allowed.
const LATIN1: &str =
    "Votre compte ****1234 a été débité de 12,50 EUR chez Façade le 31/01 à 12:00. \
Solde 1.024,10 EUR. Ce n'était pas vous ? Appelez le +33 1 23 45 67 89. Réf. côté banque: A-1.";

fn bench_segment(c: &mut Criterion) {
    let gsm_two = format!("{GSM_ONE} {GSM_ONE} {{ref: [A-1]}}");
    assert_eq!(segment(GSM_ONE, 1).parts.len(), 1);
    assert_eq!(segment(&gsm_two, 1).parts.len(), 2);
    let mut g = c.benchmark_group("segment");
    g.bench_function("gsm_1_part", |b| b.iter(|| segment(black_box(GSM_ONE), 7)));
    g.bench_function("gsm_2_parts", |b| {
        b.iter(|| segment(black_box(&gsm_two), 7))
    });
    g.bench_function("ucs2", |b| b.iter(|| segment(black_box(UCS2), 7)));
    g.finish();
}

fn bench_segment_with(c: &mut Criterion) {
    let gsm_two = format!("{GSM_ONE} {GSM_ONE} {{ref: [A-1]}}");
    let opts = |alphabet, concatenation| SegmentOptions {
        alphabet,
        concatenation,
    };
    let udh16 = opts(Alphabet::Gsm7, Concatenation::Udh16);
    let sar = opts(Alphabet::Gsm7, Concatenation::Sar);
    let latin1 = opts(Alphabet::Latin1, Concatenation::Udh8);
    let payload = opts(Alphabet::Gsm7, Concatenation::MessagePayload);
    assert_eq!(segment_with(&gsm_two, 7, &udh16).parts.len(), 2);
    assert_eq!(
        segment_with(&gsm_two, 7, &sar).sar.map(|s| s.total),
        Some(2)
    );
    let l = segment_with(LATIN1, 7, &latin1);
    assert_eq!((l.coding.data_coding(), l.parts.len()), (0x03, 2));
    assert_eq!(segment(LATIN1, 7).parts.len(), 3);
    let mut g = c.benchmark_group("segment_with");
    g.bench_function("udh16_gsm_2_parts", |b| {
        b.iter(|| segment_with(black_box(&gsm_two), 0x1234, &udh16))
    });
    g.bench_function("sar_gsm_2_parts", |b| {
        b.iter(|| segment_with(black_box(&gsm_two), 0x1234, &sar))
    });
    g.bench_function("latin1_2_parts", |b| {
        b.iter(|| segment_with(black_box(LATIN1), 7, &latin1))
    });
    g.bench_function("ucs2_3_parts_same_text", |b| {
        b.iter(|| segment_with(black_box(LATIN1), 7, &SegmentOptions::default()))
    });
    g.bench_function("message_payload_gsm", |b| {
        b.iter(|| segment_with(black_box(&gsm_two), 7, &payload))
    });
    g.finish();
}

fn bench_receipt(c: &mut Criterion) {
    let text = b"id:0A1B2C3D4E sub:001 dlvrd:001 submit date:2401311200 done date:2401311201 \
stat:DELIVRD err:000 text:Your account ****12";
    let tlvs = ReceiptTlvs::default();
    c.bench_function("parse_receipt", |b| {
        b.iter(|| parse_receipt(black_box(text), black_box(&tlvs)))
    });
}

fn bench_codec(c: &mut Criterion) {
    let seg = segment(GSM_ONE, 1);
    let sm = SubmitSm::builder()
        .source_addr_ton(Ton::Alphanumeric)
        .source_addr_npi(Npi::Unknown)
        .source_addr(COctetString::from_string("Bank".into()).unwrap())
        .dest_addr_ton(Ton::International)
        .dest_addr_npi(Npi::Isdn)
        .destination_addr(COctetString::from_string("4915112345678".into()).unwrap())
        .registered_delivery(RegisteredDelivery::from(1))
        .data_coding(DataCoding::from(0))
        .short_message(OctetString::from_vec(seg.parts[0].clone()).unwrap())
        .build();
    let cmd = Command::new(CommandStatus::EsmeRok, 42, sm);
    let mut codec = CommandCodec::new();
    let mut buf = BytesMut::with_capacity(512);
    c.bench_function("submit_sm_encode_decode", |b| {
        b.iter(|| {
            codec.encode(black_box(&cmd), &mut buf).unwrap();
            let back = codec.decode(&mut buf).unwrap().unwrap();
            black_box(back)
        })
    });
}

criterion_group!(
    benches,
    bench_segment,
    bench_segment_with,
    bench_receipt,
    bench_codec
);
criterion_main!(benches);
