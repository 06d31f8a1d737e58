//! Building the PDUs a client sends and reading the parts of received ones the session needs.
//!
//! Role: the only place that touches rusmpp's PDU types field by field. It builds every PDU
//! the session sends — bind (three kinds), submit_sm (body in `short_message`, UDH included, or
//! in the `message_payload` TLV; SAR TLVs when numbered so), enquire_link, unbind, their
//! responses, deliver_sm_resp and generic_nack — and reads receipts out of `deliver_sm`; plus
//! the helpers that keep logs and metrics safe (command names for labels, masked numbers).

use rusmpp::{
    pdus::{BindReceiver, BindTransceiver, BindTransmitter, DeliverSm, DeliverSmResp, SubmitSm},
    tlvs::{MessageSubmissionRequestTlvValue as SubmitTlv, TlvValue},
    types::{AnyOctetString, COctetString, OctetString},
    values::{
        DataCoding, EsmClass, InterfaceVersion as Version, MessagePayload, Npi, RegisteredDelivery,
        Ton,
    },
    Command, CommandId, CommandStatus, Pdu,
};

use super::{BindKind, InterfaceVersion, SessionConfig, SessionError, Submit};
use crate::encoding::MESSAGE_PAYLOAD_MAX;
use crate::receipt::{parse_receipt, Receipt, ReceiptError, ReceiptTlvs};

/// `ESME_RINVMSGLEN`: message length is invalid.
pub const ESME_RINVMSGLEN: u32 = 0x01;
/// `ESME_RINVCMDID`: invalid command id.
pub const ESME_RINVCMDID: u32 = 0x03;
/// `ESME_RINVSRCADR`: invalid source address.
pub const ESME_RINVSRCADR: u32 = 0x0A;
/// `ESME_RINVDSTADR`: invalid destination address.
pub const ESME_RINVDSTADR: u32 = 0x0B;
/// `ESME_RINVOPTPARAMVAL`: invalid optional parameter (TLV) value.
pub const ESME_RINVOPTPARAMVAL: u32 = 0xC4;
/// `ESME_RX_T_APPN`: temporary application error; the SMSC should retry the `deliver_sm`.
pub const ESME_RX_T_APPN: u32 = 0x64;

/// Most octets in `short_message` (SMPP 3.4 allows 0..=254).
const SHORT_MESSAGE_MAX: usize = 254;

/// `esm_class` message-type bits meaning "SMSC delivery receipt".
const ESM_RECEIPT_MASK: u8 = 0x3C;
const ESM_RECEIPT: u8 = 0x04;

/// The snake_case SMPP name of a command, for metric labels (fixed set; `other` otherwise).
pub fn command_name(id: CommandId) -> &'static str {
    match id {
        CommandId::BindReceiver => "bind_receiver",
        CommandId::BindReceiverResp => "bind_receiver_resp",
        CommandId::BindTransmitter => "bind_transmitter",
        CommandId::BindTransmitterResp => "bind_transmitter_resp",
        CommandId::BindTransceiver => "bind_transceiver",
        CommandId::BindTransceiverResp => "bind_transceiver_resp",
        CommandId::SubmitSm => "submit_sm",
        CommandId::SubmitSmResp => "submit_sm_resp",
        CommandId::DeliverSm => "deliver_sm",
        CommandId::DeliverSmResp => "deliver_sm_resp",
        CommandId::EnquireLink => "enquire_link",
        CommandId::EnquireLinkResp => "enquire_link_resp",
        CommandId::Unbind => "unbind",
        CommandId::UnbindResp => "unbind_resp",
        CommandId::GenericNack => "generic_nack",
        CommandId::Outbind => "outbind",
        CommandId::DataSm => "data_sm",
        CommandId::DataSmResp => "data_sm_resp",
        CommandId::AlertNotification => "alert_notification",
        _ => "other",
    }
}

/// Whether a command id is a response (top bit set).
pub fn is_response(id: CommandId) -> bool {
    u32::from(id) & 0x8000_0000 != 0
}

/// Keeps the last 4 digits of a number for logs: `+4915112345678` -> `**********5678`.
pub fn mask_number(number: &str) -> String {
    let n = number.chars().count();
    number
        .chars()
        .enumerate()
        .map(|(i, c)| if i + 4 < n { '*' } else { c })
        .collect()
}

fn c_string<const MIN: usize, const MAX: usize>(
    s: &str,
    field: &'static str,
) -> Result<COctetString<MIN, MAX>, SessionError> {
    COctetString::from_string(s.to_owned())
        .map_err(|_| SessionError::InvalidConfig(format!("{field} is too long or contains nul")))
}

/// The bind request for `cfg`: its kind, interface version and address_range.
pub fn bind_command(cfg: &SessionConfig, seq: u32) -> Result<Command, SessionError> {
    let system_id = c_string(&cfg.system_id, "system_id")?;
    let password = c_string(cfg.password.expose(), "password")?;
    let system_type = c_string(&cfg.system_type, "system_type")?;
    let range = c_string(&cfg.address_range, "address_range")?;
    let v = match cfg.interface_version {
        InterfaceVersion::V34 => Version::Smpp3_4,
        InterfaceVersion::V50 => Version::Smpp5_0,
    };
    let pdu: Pdu = match cfg.bind {
        BindKind::Transceiver => BindTransceiver::builder()
            .system_id(system_id)
            .password(password)
            .system_type(system_type)
            .interface_version(v)
            .address_range(range)
            .build()
            .into(),
        BindKind::Transmitter => BindTransmitter::builder()
            .system_id(system_id)
            .password(password)
            .system_type(system_type)
            .interface_version(v)
            .address_range(range)
            .build()
            .into(),
        BindKind::Receiver => BindReceiver::builder()
            .system_id(system_id)
            .password(password)
            .system_type(system_type)
            .interface_version(v)
            .address_range(range)
            .build()
            .into(),
    };
    Ok(Command::new(CommandStatus::EsmeRok, seq, pdu))
}

/// Source address TON/NPI: alphanumeric sender -> 5/0; short code (up to 8 digits) -> 3/0
/// (network specific); longer digit strings -> 1/1 (international, E.164).
fn source_ton_npi(source: &str) -> (Ton, Npi) {
    let digits = !source.is_empty() && source.bytes().all(|b| b.is_ascii_digit());
    match (digits, source.len()) {
        (true, 0..=8) => (Ton::NetworkSpecific, Npi::Unknown),
        (true, _) => (Ton::International, Npi::Isdn),
        (false, _) => (Ton::Alphanumeric, Npi::Unknown),
    }
}

/// The `submit_sm` for `s`, or the status an SMSC would give when it cannot be sent at all
/// (bad address, message too long): such submits are rejected locally, never written.
pub fn submit_command(s: &Submit, seq: u32) -> Result<Command, u32> {
    let dest = s
        .destination_addr
        .strip_prefix('+')
        .unwrap_or(&s.destination_addr);
    if dest.is_empty() || !dest.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ESME_RINVDSTADR);
    }
    let destination_addr: COctetString<1, 21> =
        COctetString::from_string(dest.to_owned()).map_err(|_| ESME_RINVDSTADR)?;
    // Alphanumeric senders are limited to 11 characters by GSM.
    let source = s.source_addr.strip_prefix('+').unwrap_or(&s.source_addr);
    let (src_ton, src_npi) = source_ton_npi(source);
    if source.is_empty() || (src_ton == Ton::Alphanumeric && source.chars().count() > 11) {
        return Err(ESME_RINVSRCADR);
    }
    let source_addr: COctetString<1, 21> =
        COctetString::from_string(source.to_owned()).map_err(|_| ESME_RINVSRCADR)?;
    let (short_message, tlvs) = body(s)?;
    let pdu = SubmitSm::builder()
        .source_addr_ton(src_ton)
        .source_addr_npi(src_npi)
        .source_addr(source_addr)
        .dest_addr_ton(Ton::International)
        .dest_addr_npi(Npi::Isdn)
        .destination_addr(destination_addr)
        .esm_class(EsmClass::from(s.esm_class))
        .registered_delivery(RegisteredDelivery::from(u8::from(s.registered_delivery)))
        .data_coding(DataCoding::from(s.data_coding))
        .short_message(short_message)
        .tlvs(tlvs)
        .build();
    Ok(Command::new(CommandStatus::EsmeRok, seq, pdu))
}

/// The `short_message` and TLVs carrying the body of `s`: the body in `short_message` (at
/// most 254 octets) or in `message_payload` (at most 65,535), plus the SAR TLVs when set.
fn body(s: &Submit) -> Result<(OctetString<0, 255>, Vec<SubmitTlv>), u32> {
    let mut tlvs = Vec::new();
    if let Some((reference, total, seq)) = s.sar {
        if total == 0 || seq == 0 || seq > total {
            return Err(ESME_RINVOPTPARAMVAL);
        }
        tlvs.push(SubmitTlv::SarMsgRefNum(reference));
        tlvs.push(SubmitTlv::SarTotalSegments(total));
        tlvs.push(SubmitTlv::SarSegmentSeqnum(seq));
    }
    if s.message_payload {
        // The TLV length field is 16 bits; rusmpp would silently truncate it.
        if s.short_message.len() > MESSAGE_PAYLOAD_MAX {
            return Err(ESME_RINVMSGLEN);
        }
        let payload = MessagePayload::new(AnyOctetString::from_bytes(s.short_message.clone()));
        tlvs.push(SubmitTlv::MessagePayload(payload));
        return Ok((OctetString::empty(), tlvs));
    }
    // sm_length is one octet; longer text must be split (or go in message_payload).
    if s.short_message.len() > SHORT_MESSAGE_MAX {
        return Err(ESME_RINVMSGLEN);
    }
    let short_message =
        OctetString::from_bytes(s.short_message.clone()).map_err(|_| ESME_RINVMSGLEN)?;
    Ok((short_message, tlvs))
}

/// `enquire_link`.
pub fn enquire_link(seq: u32) -> Command {
    Command::new(CommandStatus::EsmeRok, seq, Pdu::EnquireLink)
}

/// `enquire_link_resp` to the peer's `enquire_link` number `seq`.
pub fn enquire_link_resp(seq: u32) -> Command {
    Command::new(CommandStatus::EsmeRok, seq, Pdu::EnquireLinkResp)
}

/// `unbind`.
pub fn unbind(seq: u32) -> Command {
    Command::new(CommandStatus::EsmeRok, seq, Pdu::Unbind)
}

/// `unbind_resp` to the peer's `unbind` number `seq`.
pub fn unbind_resp(seq: u32) -> Command {
    Command::new(CommandStatus::EsmeRok, seq, Pdu::UnbindResp)
}

/// `generic_nack` with `status` for the peer's request number `seq`.
pub fn generic_nack(status: u32, seq: u32) -> Command {
    Command::new(CommandStatus::from(status), seq, Pdu::GenericNack)
}

/// `deliver_sm_resp` with `status` (and an empty message_id) for `deliver_sm` number `seq`.
pub fn deliver_sm_resp(status: u32, seq: u32) -> Command {
    Command::new(CommandStatus::from(status), seq, DeliverSmResp::default())
}

/// The receipt TLVs of a `deliver_sm`, and the `message_payload` TLV if any.
pub fn receipt_parts(d: &DeliverSm) -> (ReceiptTlvs, Option<&[u8]>) {
    let mut tlvs = ReceiptTlvs::default();
    let mut payload = None;
    for tlv in d.tlvs() {
        match tlv.value() {
            Some(TlvValue::ReceiptedMessageId(id)) => {
                tlvs.receipted_message_id = Some(id.as_str().to_owned());
            }
            Some(TlvValue::MessageState(st)) => tlvs.message_state = Some(u8::from(*st)),
            Some(TlvValue::NetworkErrorCode(e)) => {
                tlvs.network_error_code = Some((u8::from(e.network_type), e.error_code));
            }
            Some(TlvValue::MessagePayload(p)) => payload = Some(p.value.as_ref()),
            _ => {}
        }
    }
    (tlvs, payload)
}

/// The receipt in a `deliver_sm`'s content: `None` when it is not a receipt (mobile
/// originated), else the receipt read from its TLVs and text (the text is `short_message`, or
/// the `message_payload` TLV when `short_message` is empty).
pub fn receipt_of(
    esm_class: u8,
    short_message: &[u8],
    payload: Option<&[u8]>,
    tlvs: &ReceiptTlvs,
) -> Option<Result<Receipt, ReceiptError>> {
    if !is_receipt(esm_class, tlvs) {
        return None;
    }
    let text = if short_message.is_empty() {
        payload.unwrap_or(short_message)
    } else {
        short_message
    };
    Some(parse_receipt(text, tlvs))
}

/// Whether a `deliver_sm` is a delivery receipt: its esm_class message type says so, or
/// receipt TLVs are present.
pub fn is_receipt(esm_class: u8, tlvs: &ReceiptTlvs) -> bool {
    esm_class & ESM_RECEIPT_MASK == ESM_RECEIPT || tlvs.any()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn masking_keeps_last_four() {
        assert_eq!(mask_number("4915112345678"), "*********5678");
        assert_eq!(mask_number("123"), "123");
        assert_eq!(mask_number(""), "");
    }

    fn submit(src: &str, dst: &str, len: usize) -> Submit {
        Submit {
            source_addr: src.into(),
            destination_addr: dst.into(),
            data_coding: 0,
            esm_class: 0,
            short_message: Bytes::from(vec![b'a'; len]),
            registered_delivery: true,
            sar: None,
            message_payload: false,
        }
    }

    #[test]
    fn submit_validation() {
        assert!(submit_command(&submit("Bank", "4915112345678", 160), 1).is_ok());
        assert!(submit_command(&submit("Bank", "+4915112345678", 254), 1).is_ok());
        assert_eq!(
            submit_command(&submit("Bank", "49151x", 1), 1).err(),
            Some(ESME_RINVDSTADR)
        );
        assert_eq!(
            submit_command(&submit("Bank", "", 1), 1).err(),
            Some(ESME_RINVDSTADR)
        );
        let long = "1".repeat(21);
        assert_eq!(
            submit_command(&submit("Bank", &long, 1), 1).err(),
            Some(ESME_RINVDSTADR)
        );
        assert_eq!(
            submit_command(&submit("MyBankSender", "49", 1), 1).err(),
            Some(ESME_RINVSRCADR)
        );
        assert_eq!(
            submit_command(&submit("Bank", "49", 255), 1).err(),
            Some(ESME_RINVMSGLEN)
        );
    }

    #[test]
    fn submit_fields() {
        let cmd = submit_command(&submit("Bank", "+4915112345678", 3), 9).unwrap();
        assert_eq!(cmd.sequence_number(), 9);
        let Some(Pdu::SubmitSm(sm)) = cmd.pdu() else {
            panic!("not a submit_sm")
        };
        assert_eq!(sm.source_addr_ton, Ton::Alphanumeric);
        assert_eq!(sm.source_addr_npi, Npi::Unknown);
        assert_eq!(sm.dest_addr_ton, Ton::International);
        assert_eq!(sm.dest_addr_npi, Npi::Isdn);
        assert_eq!(sm.destination_addr.as_str(), "4915112345678");
        assert_eq!(u8::from(sm.registered_delivery), 1);
        assert_eq!(sm.short_message().as_ref(), b"aaa");
        assert_eq!(
            source_ton_npi("4915112345678"),
            (Ton::International, Npi::Isdn)
        );
        assert_eq!(
            source_ton_npi("12345"),
            (Ton::NetworkSpecific, Npi::Unknown)
        );
    }
}
