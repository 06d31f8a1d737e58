//! Receipt `deliver_sm` contents from an SMSC: arbitrary text and arbitrary TLV values through
//! `parse_receipt`, the field reader, and the id normalisation and learning used to match them.
//!
//! Input layout (so seeds can be written by hand): one flags octet, then `message_state` (1
//! octet, flag 0x02), `network_error_code` (3 octets, flag 0x04), `receipted_message_id` up
//! to a nul (flag 0x01), a submit id up to a nul (flag 0x08), and the receipt text.
//!
//! Checks: no panic; a parsed receipt has a non-empty, trimmed id; TLVs win over the text; an
//! id form found by `id_forms_agree` really makes the keys agree.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pigeon_smpp::receipt::{
    id_forms_agree, match_key, normalise_message_id, parse_receipt, parse_receipt_fields, IdForm,
    IdFormLearner, ReceiptState, ReceiptTlvs,
};

struct Input<'a> {
    text: &'a [u8],
    receipted_message_id: Option<String>,
    message_state: Option<u8>,
    network_error_code: Option<(u8, u16)>,
    submit_id: String,
}

fn take<'a>(data: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    let (head, tail) = data.split_at_checked(n)?;
    *data = tail;
    Some(head)
}

fn take_c_string(data: &mut &[u8]) -> Option<String> {
    let end = data.iter().position(|&b| b == 0)?;
    let s = String::from_utf8_lossy(&data[..end]).into_owned();
    *data = &data[end + 1..];
    Some(s)
}

impl<'a> Input<'a> {
    fn read(mut data: &'a [u8]) -> Option<Self> {
        let flags = *take(&mut data, 1)?.first()?;
        let message_state = match flags & 0x02 {
            0 => None,
            _ => take(&mut data, 1)?.first().copied(),
        };
        let network_error_code = match flags & 0x04 {
            0 => None,
            _ => match take(&mut data, 3)? {
                &[t, hi, lo] => Some((t, u16::from_be_bytes([hi, lo]))),
                _ => return None,
            },
        };
        let receipted_message_id = match flags & 0x01 {
            0 => None,
            _ => Some(take_c_string(&mut data)?),
        };
        let submit_id = match flags & 0x08 {
            0 => String::new(),
            _ => take_c_string(&mut data)?,
        };
        Some(Input {
            text: data,
            receipted_message_id,
            message_state,
            network_error_code,
            submit_id,
        })
    }
}

const FORMS: [IdForm; 4] = [
    IdForm::AsIs,
    IdForm::HexToDecimal,
    IdForm::DecimalToHex,
    IdForm::Lowercase,
];

fuzz_target!(|data: &[u8]| {
    let Some(input) = Input::read(data) else {
        return;
    };
    let tlvs = ReceiptTlvs {
        receipted_message_id: input.receipted_message_id.clone(),
        message_state: input.message_state,
        network_error_code: input.network_error_code,
    };
    let _ = parse_receipt_fields(&String::from_utf8_lossy(input.text));
    if let Ok(r) = parse_receipt(input.text, &tlvs) {
        assert!(!r.message_id.is_empty());
        assert_eq!(r.message_id.trim(), r.message_id);
        if let Some(id) = tlvs.receipted_message_id.as_deref().map(str::trim) {
            if !id.is_empty() {
                assert_eq!(r.message_id, id);
            }
        }
        if let Some(st) = tlvs
            .message_state
            .and_then(ReceiptState::from_message_state)
        {
            assert_eq!(r.state, st);
        }
        if let Some((_, code)) = tlvs.network_error_code {
            assert_eq!(r.error_code, Some(u32::from(code)));
        }
        for form in FORMS {
            let _ = match_key(&normalise_message_id(&r.message_id, form));
        }
        if let Some(form) = id_forms_agree(&input.submit_id, &r.message_id) {
            assert_eq!(
                match_key(&normalise_message_id(&input.submit_id, form)),
                match_key(&r.message_id)
            );
        }
        let mut learner = IdFormLearner::new(1);
        learner.observe_submit_id(&input.submit_id);
        if let Some(form) = learner.observe_unmatched_receipt_id(&r.message_id) {
            assert!(matches!(form, IdForm::HexToDecimal | IdForm::DecimalToHex));
        }
    }
});
