//! Delivery receipts as the simulator sends them: the pending-receipt record a session keeps
//! on its timer wheel (with the faults that will hit it), and the `deliver_sm` built from it (receipt text via
//! `pigeon_smpp::receipt`, plus the `receipted_message_id` and `message_state` TLVs).

use pigeon_smpp::receipt::{format_receipt_text, ReceiptState, ReceiptText};
use rusmpp::pdus::DeliverSm;
use rusmpp::tlvs::MessageDeliveryRequestTlvValue;
use rusmpp::types::{COctetString, OctetString};
use rusmpp::values::{EsmClass, MessageState, Npi, Ton};
use time::format_description::FormatItem;
use time::macros::format_description;
use time::OffsetDateTime;

/// `esm_class` of a delivery receipt (SMSC delivery receipt message type).
pub(crate) const ESM_CLASS_RECEIPT: u8 = 0x04;

const SMPP_DATE: &[FormatItem<'static>] =
    format_description!("[year repr:last_two][month][day][hour][minute]");

/// `YYMMDDhhmm` in UTC, as receipt texts carry dates.
pub(crate) fn smpp_date(t: OffsetDateTime) -> String {
    // Formatting these components into a String cannot fail; keep a fallback anyway.
    t.format(SMPP_DATE)
        .unwrap_or_else(|_| "0001010000".to_string())
}

/// Whether `registered_delivery` asks for a receipt that ends in `state`.
pub(crate) fn wants_receipt(registered_delivery: u8, state: ReceiptState) -> bool {
    let success = state == ReceiptState::Delivered;
    match registered_delivery & 0x03 {
        1 => true,
        2 => !success,
        3 => success,
        _ => false,
    }
}

/// A receipt owed to the ESME for one `submit_sm`.
#[derive(Debug, Clone)]
pub(crate) struct PendingReceipt {
    /// The id as the receipt spells it (may differ from `submit_sm_resp`).
    pub message_id: String,
    /// Address of the handset (the submit's destination; the receipt's source).
    pub handset: COctetString<1, 21>,
    pub handset_ton: Ton,
    pub handset_npi: Npi,
    /// Address of the ESME (the submit's source; the receipt's destination).
    pub esme: COctetString<1, 21>,
    pub esme_ton: Ton,
    pub esme_npi: Npi,
    /// `YYMMDDhhmm` of the submit.
    pub submit_date: String,
    pub state: ReceiptState,
    /// Send it twice (`duplicate_receipts`); cleared on the copy.
    pub duplicate: bool,
    /// Send it on another bind of the account (`receipts_on_other_bind`); cleared once moved.
    pub other_bind: bool,
    /// Refused once already: the next send is a retransmission.
    pub refused: bool,
}

impl PendingReceipt {
    /// The `deliver_sm` carrying this receipt.
    pub fn to_deliver_sm(&self) -> DeliverSm {
        let done_date = smpp_date(OffsetDateTime::now_utc());
        let text = format_receipt_text(&ReceiptText {
            id: &self.message_id,
            sub: 1,
            dlvrd: u32::from(self.state == ReceiptState::Delivered),
            submit_date: &self.submit_date,
            done_date: &done_date,
            state: self.state,
            err: 0,
            // Never echo subscriber text back; an empty `text:` is what many SMSCs send.
            text: "",
        });
        let mut text = text.into_bytes();
        text.truncate(255);
        let short_message = OctetString::from_vec(text).unwrap_or_else(|_| OctetString::empty());
        let mut tlvs = vec![MessageDeliveryRequestTlvValue::MessageState(
            MessageState::from(self.state.message_state()),
        )];
        if let Ok(id) = COctetString::from_string(self.message_id.clone()) {
            tlvs.insert(0, MessageDeliveryRequestTlvValue::ReceiptedMessageId(id));
        }
        DeliverSm::builder()
            .source_addr_ton(self.handset_ton)
            .source_addr_npi(self.handset_npi)
            .source_addr(self.handset.clone())
            .dest_addr_ton(self.esme_ton)
            .dest_addr_npi(self.esme_npi)
            .destination_addr(self.esme.clone())
            .esm_class(EsmClass::from(ESM_CLASS_RECEIPT))
            .short_message(short_message)
            .tlvs(tlvs)
            .build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipt_requests() {
        assert!(wants_receipt(0x01, ReceiptState::Delivered));
        assert!(wants_receipt(0x01, ReceiptState::Undeliverable));
        assert!(!wants_receipt(0x00, ReceiptState::Delivered));
        assert!(!wants_receipt(0x02, ReceiptState::Delivered));
        assert!(wants_receipt(0x02, ReceiptState::Expired));
        assert!(wants_receipt(0x03, ReceiptState::Delivered));
        assert!(!wants_receipt(0x03, ReceiptState::Rejected));
        // Intermediate-notification and SME-ack bits do not change the MC receipt request.
        assert!(wants_receipt(0x11, ReceiptState::Delivered));
    }

    #[test]
    fn dates_are_ten_digits() {
        let t = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        assert_eq!(smpp_date(t), "2311142213");
    }
}
