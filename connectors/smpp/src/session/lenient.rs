//! A forgiving reader for the `deliver_sm` PDUs rusmpp refuses.
//!
//! Role: sloppy SMSCs send receipts whose TLVs break the rules (`receipted_message_id`
//! without its nul, a `message_state` of the wrong length, a TLV running past the end).
//! rusmpp rejects the whole PDU for that; refusing or dropping the session would make the
//! SMSC resend it forever. This reader takes the mandatory fields strictly enough to find
//! `esm_class` and `short_message`, then reads the receipt TLVs it can and skips the rest.

use crate::receipt::ReceiptTlvs;

/// Tags of the TLVs a receipt may carry.
const TAG_RECEIPTED_MESSAGE_ID: u16 = 0x001E;
const TAG_NETWORK_ERROR_CODE: u16 = 0x0423;
const TAG_MESSAGE_PAYLOAD: u16 = 0x0424;
const TAG_MESSAGE_STATE: u16 = 0x0427;

/// The parts of a `deliver_sm` a receipt needs.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct LooseDeliverSm<'a> {
    pub esm_class: u8,
    pub short_message: &'a [u8],
    pub tlvs: ReceiptTlvs,
    pub payload: Option<&'a [u8]>,
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.buf.split_first()?;
        self.buf = rest;
        Some(b)
    }

    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.buf.len() < n {
            return None;
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Some(head)
    }

    fn u16(&mut self) -> Option<u16> {
        self.bytes(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    /// A nul-terminated string (without its nul), however long.
    fn c_string(&mut self) -> Option<&'a [u8]> {
        let end = self.buf.iter().position(|&b| b == 0)?;
        let s = self.bytes(end)?;
        self.u8()?;
        Some(s)
    }
}

/// Reads a whole `deliver_sm` PDU (header included); `None` when even the mandatory fields
/// cannot be found.
pub(super) fn read_deliver_sm(pdu: &[u8]) -> Option<LooseDeliverSm<'_>> {
    let mut r = Reader {
        buf: pdu.get(16..)?,
    };
    r.c_string()?; // service_type
    r.bytes(2)?; // source ton, npi
    r.c_string()?; // source_addr
    r.bytes(2)?; // destination ton, npi
    r.c_string()?; // destination_addr
    let esm_class = r.u8()?;
    r.bytes(2)?; // protocol_id, priority_flag
    r.c_string()?; // schedule_delivery_time
    r.c_string()?; // validity_period
    r.bytes(4)?; // registered_delivery, replace_if_present, data_coding, sm_default_msg_id
    let sm_length = usize::from(r.u8()?);
    let short_message = r.bytes(sm_length)?;
    let mut out = LooseDeliverSm {
        esm_class,
        short_message,
        ..LooseDeliverSm::default()
    };
    while let (Some(tag), Some(len)) = (r.u16(), r.u16()) {
        // A TLV running past the end: keep what is there, as far as it goes.
        let value = r.bytes(usize::from(len)).unwrap_or_else(|| {
            let v = r.buf;
            r.buf = &[];
            v
        });
        match tag {
            TAG_RECEIPTED_MESSAGE_ID => out.tlvs.receipted_message_id = message_id(value),
            TAG_MESSAGE_STATE if value.len() == 1 => out.tlvs.message_state = Some(value[0]),
            TAG_NETWORK_ERROR_CODE if value.len() == 3 => {
                out.tlvs.network_error_code =
                    Some((value[0], u16::from_be_bytes([value[1], value[2]])));
            }
            TAG_MESSAGE_PAYLOAD => out.payload = Some(value),
            _ => {}
        }
    }
    Some(out)
}

/// A message id up to its nul (or the end), if it is plain printable ASCII.
fn message_id(value: &[u8]) -> Option<String> {
    let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
    let id = value[..end].trim_ascii();
    let printable = !id.is_empty() && id.len() <= 64 && id.iter().all(u8::is_ascii_graphic);
    printable.then(|| String::from_utf8_lossy(id).into_owned())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A `deliver_sm` PDU (receipt esm_class) with `text` and raw TLV bytes.
    pub(crate) fn deliver_sm_bytes(seq: u32, text: &[u8], tlvs: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        body.push(0); // service_type
        body.extend_from_slice(&[1, 1]);
        body.extend_from_slice(b"4915112345678\0");
        body.extend_from_slice(&[5, 0]);
        body.extend_from_slice(b"Bank\0");
        body.push(0x04); // esm_class: receipt
        body.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
        body.push(u8::try_from(text.len()).unwrap());
        body.extend_from_slice(text);
        body.extend_from_slice(tlvs);
        let mut pdu = Vec::new();
        pdu.extend_from_slice(&u32::try_from(16 + body.len()).unwrap().to_be_bytes());
        pdu.extend_from_slice(&5u32.to_be_bytes());
        pdu.extend_from_slice(&0u32.to_be_bytes());
        pdu.extend_from_slice(&seq.to_be_bytes());
        pdu.extend_from_slice(&body);
        pdu
    }

    #[test]
    fn reads_receipt_with_broken_tlvs() {
        // receipted_message_id without nul, message_state ok, then a TLV cut short.
        let tlvs = [
            0x00, 0x1E, 0x00, 0x04, b'A', b'B', b'1', b'2', // id without nul
            0x04, 0x27, 0x00, 0x01, 0x02, // message_state 2
            0x04, 0x23, 0x00, 0x05, 0x03, // network_error_code claiming 5 octets, 1 present
        ];
        let pdu = deliver_sm_bytes(9, b"id:AB12 stat:DELIVRD", &tlvs);
        let d = read_deliver_sm(&pdu).unwrap();
        assert_eq!(d.esm_class, 0x04);
        assert_eq!(d.short_message, b"id:AB12 stat:DELIVRD");
        assert_eq!(d.tlvs.receipted_message_id.as_deref(), Some("AB12"));
        assert_eq!(d.tlvs.message_state, Some(2));
        assert_eq!(d.tlvs.network_error_code, None);
    }

    #[test]
    fn rejects_garbage_ids_and_broken_mandatory_fields() {
        let tlvs = [0x00, 0x1E, 0x00, 0x03, b'a', 0x07, b'b'];
        let pdu = deliver_sm_bytes(1, b"", &tlvs);
        assert_eq!(
            read_deliver_sm(&pdu).unwrap().tlvs.receipted_message_id,
            None
        );
        // sm_length beyond the end of the PDU.
        let mut pdu = deliver_sm_bytes(1, b"abc", &[]);
        pdu.truncate(pdu.len() - 2);
        assert!(read_deliver_sm(&pdu).is_none());
        assert!(read_deliver_sm(&[0; 10]).is_none());
    }
}
