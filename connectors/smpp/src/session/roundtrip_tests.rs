//! Round trips of every PDU the session encodes: built by `pdu.rs` as the session builds it,
//! encoded and decoded by [`SessionCodec`] (the codec the session runs), compared field by
//! field. Also the local checks on SAR and `message_payload` submits.

use bytes::{Bytes, BytesMut};
use rusmpp::{
    tlvs::{Tlv, TlvTag, TlvValue},
    values::{InterfaceVersion as Version, Npi, Ton},
    Command, CommandId, Pdu,
};
use tokio_util::codec::{Decoder, Encoder};

use super::codec::{Frame, SessionCodec};
use super::pdu::{self, ESME_RINVMSGLEN, ESME_RINVOPTPARAMVAL};
use super::{BindKind, InterfaceVersion, SessionConfig, Submit};
use crate::encoding::{segment_with, Concatenation, SegmentOptions, MESSAGE_PAYLOAD_MAX};

/// Encodes `cmd`, checks `command_length`, decodes it back and checks it is the same command,
/// consumed whole; returns the decoded command.
fn round_trip(cmd: &Command) -> Command {
    let mut codec = SessionCodec::new();
    let mut buf = BytesMut::new();
    codec.encode(cmd.clone(), &mut buf).expect("encoding");
    let length = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    assert_eq!(
        usize::try_from(length).unwrap(),
        buf.len(),
        "command_length"
    );
    let back = match codec.decode(&mut buf).expect("framing") {
        Some(Frame::Command(back)) => back,
        Some(Frame::Malformed(m)) => panic!("{:?} did not decode: {}", cmd.id(), m.error),
        None => panic!("{:?} incomplete after encoding", cmd.id()),
    };
    assert!(buf.is_empty(), "{:?} not consumed whole", cmd.id());
    assert_eq!(back.id(), cmd.id());
    assert_eq!(back.status(), cmd.status());
    assert_eq!(back.sequence_number(), cmd.sequence_number());
    assert_eq!(back.pdu(), cmd.pdu());
    assert_eq!(&back, cmd);
    back
}

fn submit(body: &[u8]) -> Submit {
    Submit {
        source_addr: "Bank".into(),
        destination_addr: "+4915112345678".into(),
        data_coding: 0,
        esm_class: 0,
        short_message: Bytes::copy_from_slice(body),
        registered_delivery: true,
        sar: None,
        message_payload: false,
    }
}

/// The TLVs of a decoded submit_sm as (tag, value).
fn submit_tlvs(cmd: &Command) -> Vec<(TlvTag, Option<TlvValue>)> {
    let Some(Pdu::SubmitSm(sm)) = cmd.pdu() else {
        panic!("not a submit_sm")
    };
    sm.tlvs()
        .iter()
        .map(|t: &Tlv| (t.tag(), t.value().cloned()))
        .collect()
}

fn short_message(cmd: &Command) -> Vec<u8> {
    let Some(Pdu::SubmitSm(sm)) = cmd.pdu() else {
        panic!("not a submit_sm")
    };
    sm.short_message().as_ref().to_vec()
}

#[test]
fn binds_round_trip() {
    for (kind, id) in [
        (BindKind::Transceiver, CommandId::BindTransceiver),
        (BindKind::Transmitter, CommandId::BindTransmitter),
        (BindKind::Receiver, CommandId::BindReceiver),
    ] {
        let mut cfg = SessionConfig::new("127.0.0.1:2775", "pigeon", "secret");
        cfg.bind = kind;
        cfg.system_type = "SMS".into();
        cfg.address_range = "^49".into();
        cfg.interface_version = InterfaceVersion::V50;
        let back = round_trip(&pdu::bind_command(&cfg, 1).unwrap());
        assert_eq!(back.id(), id);
        let (system_id, password, system_type, version, range) = match back.pdu() {
            Some(Pdu::BindTransceiver(b)) => (
                &b.system_id,
                &b.password,
                &b.system_type,
                b.interface_version,
                &b.address_range,
            ),
            Some(Pdu::BindTransmitter(b)) => (
                &b.system_id,
                &b.password,
                &b.system_type,
                b.interface_version,
                &b.address_range,
            ),
            Some(Pdu::BindReceiver(b)) => (
                &b.system_id,
                &b.password,
                &b.system_type,
                b.interface_version,
                &b.address_range,
            ),
            other => panic!("not a bind: {other:?}"),
        };
        assert_eq!(system_id.as_str(), "pigeon");
        assert_eq!(password.as_str(), "secret");
        assert_eq!(system_type.as_str(), "SMS");
        assert_eq!(version, Version::Smpp5_0);
        assert_eq!(range.as_str(), "^49");
    }
}

#[test]
fn plain_submit_round_trips() {
    let back = round_trip(&pdu::submit_command(&submit(b"Your account was debited"), 7).unwrap());
    let Some(Pdu::SubmitSm(sm)) = back.pdu() else {
        panic!("not a submit_sm")
    };
    assert_eq!(sm.source_addr.as_str(), "Bank");
    assert_eq!(sm.source_addr_ton, Ton::Alphanumeric);
    assert_eq!(sm.destination_addr.as_str(), "4915112345678");
    assert_eq!(sm.dest_addr_npi, Npi::Isdn);
    assert_eq!(u8::from(sm.registered_delivery), 1);
    assert_eq!(sm.short_message().as_ref(), b"Your account was debited");
    assert!(sm.tlvs().is_empty());
    // The longest short_message there is.
    round_trip(&pdu::submit_command(&submit(&[b'x'; 254]), 8).unwrap());
}

#[test]
fn udh_submits_round_trip() {
    let text = "a".repeat(400);
    for concatenation in [Concatenation::Udh8, Concatenation::Udh16] {
        let opts = SegmentOptions {
            concatenation,
            ..SegmentOptions::default()
        };
        let seg = segment_with(&text, 0x1234, &opts);
        assert_eq!(seg.parts.len(), 3);
        for (i, part) in seg.parts.iter().enumerate() {
            let s = Submit {
                esm_class: seg.esm_class(),
                data_coding: seg.coding.data_coding(),
                sar: seg.sar_for_part(i),
                message_payload: seg.payload_tlv,
                ..submit(part)
            };
            let back = round_trip(&pdu::submit_command(&s, 10).unwrap());
            let Some(Pdu::SubmitSm(sm)) = back.pdu() else {
                panic!("not a submit_sm")
            };
            assert_eq!(u8::from(sm.esm_class), 0x40);
            assert_eq!(short_message(&back), *part);
            assert!(sm.tlvs().is_empty());
        }
    }
}

#[test]
fn sar_submits_round_trip_with_their_tlvs() {
    let opts = SegmentOptions {
        concatenation: Concatenation::Sar,
        ..SegmentOptions::default()
    };
    let seg = segment_with(&"a".repeat(200), 0xBEEF, &opts);
    assert_eq!(seg.parts.len(), 2);
    for (i, part) in seg.parts.iter().enumerate() {
        let s = Submit {
            esm_class: seg.esm_class(),
            data_coding: seg.coding.data_coding(),
            sar: seg.sar_for_part(i),
            message_payload: seg.payload_tlv,
            ..submit(part)
        };
        let back = round_trip(&pdu::submit_command(&s, 20).unwrap());
        let seq = u8::try_from(i + 1).unwrap();
        assert_eq!(
            submit_tlvs(&back),
            vec![
                (TlvTag::SarMsgRefNum, Some(TlvValue::SarMsgRefNum(0xBEEF))),
                (
                    TlvTag::SarTotalSegments,
                    Some(TlvValue::SarTotalSegments(2))
                ),
                (
                    TlvTag::SarSegmentSeqnum,
                    Some(TlvValue::SarSegmentSeqnum(seq))
                ),
            ]
        );
        assert_eq!(short_message(&back), *part, "sar parts carry no udh");
    }
}

#[test]
fn payload_submit_round_trips_with_empty_short_message() {
    let body = vec![b'p'; 1000];
    let s = Submit {
        message_payload: true,
        ..submit(&body)
    };
    let back = round_trip(&pdu::submit_command(&s, 30).unwrap());
    assert!(short_message(&back).is_empty());
    let tlvs = submit_tlvs(&back);
    assert_eq!(tlvs.len(), 1);
    assert_eq!(tlvs[0].0, TlvTag::MessagePayload);
    let Some(TlvValue::MessagePayload(p)) = &tlvs[0].1 else {
        panic!("no message_payload value")
    };
    assert_eq!(p.value.as_ref(), &body[..]);
}

#[test]
fn payload_and_sar_limits_are_checked_locally() {
    let payload = |len: usize| Submit {
        message_payload: true,
        ..submit(&vec![b'a'; len])
    };
    assert!(pdu::submit_command(&payload(255), 1).is_ok());
    let max = pdu::submit_command(&payload(MESSAGE_PAYLOAD_MAX), 1).unwrap();
    let mut buf = BytesMut::new();
    SessionCodec::new().encode(max, &mut buf).unwrap();
    // The TLV length field says 65,535, not a truncated value.
    let at = buf.len() - MESSAGE_PAYLOAD_MAX - 2;
    assert_eq!(&buf[at - 2..at + 2], &[0x04, 0x24, 0xFF, 0xFF]);
    assert_eq!(
        pdu::submit_command(&payload(MESSAGE_PAYLOAD_MAX + 1), 1).err(),
        Some(ESME_RINVMSGLEN)
    );
    let sar = |sar| Submit {
        sar: Some(sar),
        ..submit(b"abc")
    };
    assert!(pdu::submit_command(&sar((1, 3, 3)), 1).is_ok());
    for bad in [(1, 0, 0), (1, 3, 0), (1, 3, 4)] {
        assert_eq!(
            pdu::submit_command(&sar(bad), 1).err(),
            Some(ESME_RINVOPTPARAMVAL),
            "{bad:?}"
        );
    }
    // SAR does not lift the short_message limit.
    let long = Submit {
        sar: Some((1, 2, 1)),
        ..submit(&[b'a'; 255])
    };
    assert_eq!(pdu::submit_command(&long, 1).err(), Some(ESME_RINVMSGLEN));
}

#[test]
fn bodyless_pdus_and_responses_round_trip() {
    for cmd in [
        pdu::enquire_link(40),
        pdu::enquire_link_resp(41),
        pdu::unbind(42),
        pdu::unbind_resp(43),
        pdu::generic_nack(pdu::ESME_RINVCMDID, 44),
        pdu::deliver_sm_resp(0, 45),
        pdu::deliver_sm_resp(pdu::ESME_RX_T_APPN, 46),
    ] {
        round_trip(&cmd);
    }
    let nack = round_trip(&pdu::generic_nack(pdu::ESME_RINVCMDID, 47));
    assert_eq!(u32::from(nack.status()), 0x03);
    let resp = round_trip(&pdu::deliver_sm_resp(pdu::ESME_RX_T_APPN, 48));
    assert_eq!(resp.id(), CommandId::DeliverSmResp);
    assert_eq!(u32::from(resp.status()), 0x64);
}
