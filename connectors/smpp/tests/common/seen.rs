//! What the test SMSC records of each submit_sm: the fields long messages are about.

use rusmpp::{pdus::SubmitSm, tlvs::TlvValue};

/// The parts of one submit_sm that concern long messages.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeenSubmit {
    pub esm_class: u8,
    pub data_coding: u8,
    pub short_message: Vec<u8>,
    /// sar_msg_ref_num, sar_total_segments, sar_segment_seqnum, each if present.
    pub sar_ref: Option<u16>,
    pub sar_total: Option<u8>,
    pub sar_seq: Option<u8>,
    /// The message_payload TLV, if present.
    pub payload: Option<Vec<u8>>,
}

pub fn seen_submit(sm: &SubmitSm) -> SeenSubmit {
    let mut seen = SeenSubmit {
        esm_class: u8::from(sm.esm_class),
        data_coding: u8::from(sm.data_coding),
        short_message: sm.short_message().as_ref().to_vec(),
        ..SeenSubmit::default()
    };
    for tlv in sm.tlvs() {
        match tlv.value() {
            Some(TlvValue::SarMsgRefNum(r)) => seen.sar_ref = Some(*r),
            Some(TlvValue::SarTotalSegments(t)) => seen.sar_total = Some(*t),
            Some(TlvValue::SarSegmentSeqnum(q)) => seen.sar_seq = Some(*q),
            Some(TlvValue::MessagePayload(p)) => seen.payload = Some(p.value.to_vec()),
            _ => {}
        }
    }
    seen
}
