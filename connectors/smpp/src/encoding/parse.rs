//! The receiving side: splitting a `short_message` into UDH and payload, decoding payloads, and
//! putting a [`Segmented`] message back together (simulator, tests and fuzzers).

use super::gsm::{gsm_ext_char, ESC, GSM_TABLE};
use super::{Coding, EncodingError, Segmented};

/// One received `short_message` split into its concatenation header (if any) and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part<'a> {
    /// (reference, total, sequence starting at 1) when a concatenation UDH is present.
    pub concat: Option<(u16, u8, u8)>,
    pub payload: &'a [u8],
}

/// Splits a `short_message` into UDH and payload; `udhi` is esm_class & 0x40 != 0.
///
/// Understands the 8-bit (IEI 0x00) and 16-bit (IEI 0x08) concatenation elements and skips
/// any other element. A header running past the message, an element running past the header,
/// a concatenation element of the wrong length, or a total / sequence of 0 or sequence above
/// total is [`EncodingError::BadUdh`].
pub fn parse_part(short_message: &[u8], udhi: bool) -> Result<Part<'_>, EncodingError> {
    if !udhi {
        return Ok(Part {
            concat: None,
            payload: short_message,
        });
    }
    let (&udhl, rest) = short_message.split_first().ok_or(EncodingError::BadUdh)?;
    let udhl = usize::from(udhl);
    if rest.len() < udhl {
        return Err(EncodingError::BadUdh);
    }
    let (mut header, payload) = rest.split_at(udhl);
    let mut concat = None;
    while !header.is_empty() {
        let [iei, len, tail @ ..] = header else {
            return Err(EncodingError::BadUdh);
        };
        let len = usize::from(*len);
        if tail.len() < len {
            return Err(EncodingError::BadUdh);
        }
        let (data, next) = tail.split_at(len);
        match (*iei, data) {
            (0x00, &[r, total, seq]) => concat = Some((u16::from(r), total, seq)),
            (0x08, &[hi, lo, total, seq]) => {
                concat = Some((u16::from_be_bytes([hi, lo]), total, seq))
            }
            (0x00 | 0x08, _) => return Err(EncodingError::BadUdh),
            _ => {}
        }
        header = next;
    }
    if let Some((_, total, seq)) = concat {
        if total == 0 || seq == 0 || seq > total {
            return Err(EncodingError::BadUdh);
        }
    }
    Ok(Part { concat, payload })
}

/// Decodes a payload (no UDH) in `coding` back to text.
///
/// GSM: an escape followed by a code missing from the extension table decodes as the default
/// table's character for that code (3GPP TS 23.038 §6.2.1.1); a trailing escape or a byte
/// above 0x7F is an error. UCS-2: an odd length or an unpaired surrogate is an error.
/// Latin-1: every octet is the code point of its character, so decoding never fails.
pub fn decode(coding: Coding, payload: &[u8]) -> Result<String, EncodingError> {
    match coding {
        Coding::Gsm7 => {
            let mut out = String::with_capacity(payload.len());
            let mut it = payload.iter().copied();
            while let Some(b) = it.next() {
                if b > 0x7F {
                    return Err(EncodingError::BadSeptet(b));
                }
                if b == ESC {
                    let code = it.next().ok_or(EncodingError::BadSeptet(ESC))?;
                    if code > 0x7F {
                        return Err(EncodingError::BadSeptet(code));
                    }
                    match gsm_ext_char(code) {
                        Some(c) => out.push(c),
                        // Escape-escape (a further extension table) shows as a space.
                        None if code == ESC => out.push(' '),
                        None => out.push(GSM_TABLE[usize::from(code)]),
                    }
                } else {
                    out.push(GSM_TABLE[usize::from(b)]);
                }
            }
            Ok(out)
        }
        Coding::Ucs2 => {
            if !payload.len().is_multiple_of(2) {
                return Err(EncodingError::BadUcs2);
            }
            let units = payload
                .chunks_exact(2)
                .map(|p| u16::from_be_bytes([p[0], p[1]]));
            char::decode_utf16(units)
                .collect::<Result<String, _>>()
                .map_err(|_| EncodingError::BadUcs2)
        }
        Coding::Latin1 => Ok(payload.iter().copied().map(char::from).collect()),
    }
}

/// Decodes the parts of `seg`, in order, back to the text that was segmented.
///
/// Checks what a receiver would rely on: a multipart UDH message has a concatenation element
/// in every part with one reference, `total` equal to the number of parts and `sequence`
/// equal to the position; a SAR message has [`super::SarInfo`] with a matching total; a
/// `message_payload` message has exactly one part. Each part is decoded on its own, so a split
/// escape or surrogate pair is an error too. Anything else is
/// [`EncodingError::BadConcatenation`] (or the decoding error of the part).
pub fn reassemble(seg: &Segmented) -> Result<String, EncodingError> {
    let n = seg.parts.len();
    if n == 0 || (seg.payload_tlv && n != 1) {
        return Err(EncodingError::BadConcatenation);
    }
    if let Some(sar) = seg.sar {
        if usize::from(sar.total) != n || n < 2 {
            return Err(EncodingError::BadConcatenation);
        }
    }
    let udh = seg.has_udh();
    let mut reference = None;
    let mut out = String::new();
    for (i, raw) in seg.parts.iter().enumerate() {
        let part = parse_part(raw, udh)?;
        match (udh, part.concat) {
            (false, _) => {}
            (true, None) => return Err(EncodingError::BadConcatenation),
            (true, Some((r, total, seq))) => {
                let in_place = usize::from(total) == n && usize::from(seq) == i + 1;
                if !in_place || *reference.get_or_insert(r) != r {
                    return Err(EncodingError::BadConcatenation);
                }
            }
        }
        out.push_str(&decode(seg.coding, part.payload)?);
    }
    Ok(out)
}
