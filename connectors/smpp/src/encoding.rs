//! Text encodings and segmentation for short messages.
//!
//! Role: turn engine text into `short_message` bodies (and back, for the simulator).
//!
//! - GSM 03.38 default alphabet plus its extension table (`€ [ ] { } ^ ~ \ |` and form feed,
//!   each sent as escape `0x1B` + code), **unpacked**: one septet per octet, `data_coding` 0x00.
//! - Anything else goes as UCS-2 / UTF-16BE, `data_coding` 0x08; characters outside the BMP
//!   (emoji) become surrogate pairs.
//! - One part holds 160 septets (GSM) or 70 UTF-16 units (UCS-2). Longer text is split into
//!   parts of at most 153 septets / 67 units, each prefixed by the 6-octet concatenation UDH
//!   `05 00 03 ref total seq`. An escape pair and a surrogate pair are never split.
//!
//! The implementation is table driven rather than rusmpp-extra's encoders: those lack the form
//! feed extension, a decoder, and a count that does not allocate.

/// `data_coding` for the GSM 03.38 default alphabet.
pub const DATA_CODING_GSM7: u8 = 0x00;
/// `data_coding` for UCS-2.
pub const DATA_CODING_UCS2: u8 = 0x08;
/// `esm_class` bit telling that `short_message` starts with a user data header.
pub const ESM_CLASS_UDHI: u8 = 0x40;
/// Septets in a single, unsplit GSM message.
pub const GSM7_SINGLE: usize = 160;
/// Septets per part of a split GSM message (room left for the UDH).
pub const GSM7_PART: usize = 153;
/// UTF-16 units in a single, unsplit UCS-2 message.
pub const UCS2_SINGLE: usize = 70;
/// UTF-16 units per part of a split UCS-2 message.
pub const UCS2_PART: usize = 67;
/// Most parts a concatenated message can have (the UDH counts them in one octet).
pub const MAX_PARTS: usize = 255;
/// Length of the concatenation UDH written by [`segment`] (`05 00 03 ref total seq`).
pub const UDH_LEN: usize = 6;

const ESC: u8 = 0x1B;

/// The GSM 03.38 default alphabet, indexed by septet. 0x1B is the escape, never a character.
const GSM_TABLE: [char; 128] = [
    '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å', //
    'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', '\u{1B}', 'Æ', 'æ', 'ß', 'É', //
    ' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/', //
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?', //
    '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', //
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§', //
    '¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', //
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à', //
];

/// The extension table: character and the code that follows the escape.
const GSM_EXT: [(char, u8); 10] = [
    ('\u{0C}', 0x0A),
    ('^', 0x14),
    ('{', 0x28),
    ('}', 0x29),
    ('\\', 0x2F),
    ('[', 0x3C),
    ('~', 0x3D),
    (']', 0x3E),
    ('|', 0x40),
    ('€', 0x65),
];

const NONE: u8 = 0xFF;

/// ASCII character -> septet, `NONE` when not in the default table.
const ASCII_TO_GSM: [u8; 128] = {
    let mut rev = [NONE; 128];
    let mut i = 0;
    while i < 128 {
        let c = GSM_TABLE[i] as u32;
        if c < 128 && i != ESC as usize {
            rev[c as usize] = i as u8;
        }
        i += 1;
    }
    rev
};

/// How a character is written in GSM 03.38.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Septets {
    One(u8),
    /// Escape then this code.
    Ext(u8),
}

impl Septets {
    fn len(self) -> usize {
        match self {
            Septets::One(_) => 1,
            Septets::Ext(_) => 2,
        }
    }
}

fn gsm_encode_char(c: char) -> Option<Septets> {
    let cp = c as u32;
    if cp < 128 {
        let s = ASCII_TO_GSM[cp as usize];
        if s != NONE {
            return Some(Septets::One(s));
        }
    } else if let Some(i) = GSM_TABLE.iter().position(|&t| t == c) {
        // Non-ASCII entries of the default table (positions are < 128, so the cast is exact).
        return Some(Septets::One(i as u8));
    }
    GSM_EXT
        .iter()
        .find(|(ch, _)| *ch == c)
        .map(|&(_, code)| Septets::Ext(code))
}

fn gsm_ext_char(code: u8) -> Option<char> {
    GSM_EXT.iter().find(|(_, k)| *k == code).map(|&(ch, _)| ch)
}

/// Whether `c` can be written in GSM 03.38 (default or extension table).
pub fn is_gsm7(c: char) -> bool {
    gsm_encode_char(c).is_some()
}

/// The alphabet a message is sent in; maps to SMPP `data_coding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Coding {
    /// GSM 03.38 default alphabet, one septet per octet (unpacked), `data_coding` 0x00.
    Gsm7,
    /// UCS-2 / UTF-16BE, `data_coding` 0x08.
    Ucs2,
}

impl Coding {
    /// The SMPP `data_coding` value: 0x00 for GSM 03.38, 0x08 for UCS-2.
    pub fn data_coding(self) -> u8 {
        match self {
            Coding::Gsm7 => DATA_CODING_GSM7,
            Coding::Ucs2 => DATA_CODING_UCS2,
        }
    }

    /// The coding for a `data_coding` value; `None` for codings Pigeon does not speak.
    pub fn from_data_coding(dc: u8) -> Option<Coding> {
        match dc {
            DATA_CODING_GSM7 => Some(Coding::Gsm7),
            DATA_CODING_UCS2 => Some(Coding::Ucs2),
            _ => None,
        }
    }

    /// (units in a single message, units per part when split).
    fn limits(self) -> (usize, usize) {
        match self {
            Coding::Gsm7 => (GSM7_SINGLE, GSM7_PART),
            Coding::Ucs2 => (UCS2_SINGLE, UCS2_PART),
        }
    }

    /// Units (septets or UTF-16 units) `c` takes; `None` when GSM cannot carry it.
    fn units(self, c: char) -> Option<usize> {
        match self {
            Coding::Gsm7 => gsm_encode_char(c).map(Septets::len),
            Coding::Ucs2 => Some(c.len_utf16()),
        }
    }
}

/// A message ready for `submit_sm`: one `short_message` per segment, UDH included when split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segmented {
    pub coding: Coding,
    /// `short_message` bodies; when more than one, each starts with a concatenation UDH and
    /// `esm_class` must carry UDHI (0x40).
    pub parts: Vec<Vec<u8>>,
}

impl Segmented {
    /// `esm_class` for these parts (0x40 when they carry a UDH, else 0).
    pub fn esm_class(&self) -> u8 {
        if self.parts.len() > 1 {
            ESM_CLASS_UDHI
        } else {
            0
        }
    }
}

/// GSM 03.38 when every character fits (extension table included), else UCS-2.
pub fn choose_coding(text: &str) -> Coding {
    if text.chars().all(is_gsm7) {
        Coding::Gsm7
    } else {
        Coding::Ucs2
    }
}

/// Calls `boundary(char_index_end)` at each point where a new part must start, walking the
/// text once; returns the number of parts. Shared by [`segment`] and [`segment_count`] so the
/// two can never disagree.
fn walk_parts(text: &str, coding: Coding, mut boundary: impl FnMut(usize)) -> usize {
    let (single, part) = coding.limits();
    let total: usize = text.chars().filter_map(|c| coding.units(c)).sum();
    if total <= single {
        return 1;
    }
    let mut parts = 1;
    let mut used = 0;
    for (i, c) in text.char_indices() {
        let n = coding.units(c).unwrap_or(0);
        if used + n > part {
            boundary(i);
            parts += 1;
            used = 0;
        }
        used += n;
    }
    parts
}

fn write_char(coding: Coding, c: char, out: &mut Vec<u8>) {
    match coding {
        Coding::Gsm7 => match gsm_encode_char(c) {
            Some(Septets::One(s)) => out.push(s),
            Some(Septets::Ext(code)) => out.extend_from_slice(&[ESC, code]),
            // choose_coding only picks Gsm7 when every character fits.
            None => {}
        },
        Coding::Ucs2 => {
            let mut buf = [0u16; 2];
            for u in c.encode_utf16(&mut buf) {
                out.extend_from_slice(&u.to_be_bytes());
            }
        }
    }
}

fn encode_payload(coding: Coding, text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() * 2);
    for c in text.chars() {
        write_char(coding, c, &mut out);
    }
    out
}

/// Encodes and splits `text`; `reference` is the concatenation reference shared by the parts.
///
/// A single part carries no UDH (an empty text gives one empty part). Text needing more than
/// [`MAX_PARTS`] parts cannot be numbered in an 8-bit UDH: callers must refuse it (check
/// [`segment_count`]); if they do not, total and sequence saturate at 255.
pub fn segment(text: &str, reference: u8) -> Segmented {
    let coding = choose_coding(text);
    let mut starts = Vec::new();
    let n = walk_parts(text, coding, |i| starts.push(i));
    if n == 1 {
        return Segmented {
            coding,
            parts: vec![encode_payload(coding, text)],
        };
    }
    let total = u8::try_from(n).unwrap_or(u8::MAX);
    let (_, part_units) = coding.limits();
    let per_part_bytes = UDH_LEN
        + match coding {
            Coding::Gsm7 => part_units,
            Coding::Ucs2 => part_units * 2,
        };
    let mut parts = Vec::with_capacity(n);
    let mut from = 0;
    for (seq, &to) in starts
        .iter()
        .chain(std::iter::once(&text.len()))
        .enumerate()
    {
        let seq = u8::try_from(seq + 1).unwrap_or(u8::MAX);
        let mut p = Vec::with_capacity(per_part_bytes);
        p.extend_from_slice(&[0x05, 0x00, 0x03, reference, total, seq]);
        for c in text[from..to].chars() {
            write_char(coding, c, &mut p);
        }
        parts.push(p);
        from = to;
    }
    Segmented { coding, parts }
}

/// The number of segments `text` needs (what rate limits count), without allocating parts.
pub fn segment_count(text: &str) -> usize {
    walk_parts(text, choose_coding(text), |_| {})
}

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
            if payload.len() % 2 != 0 {
                return Err(EncodingError::BadUcs2);
            }
            let units = payload
                .chunks_exact(2)
                .map(|p| u16::from_be_bytes([p[0], p[1]]));
            char::decode_utf16(units)
                .collect::<Result<String, _>>()
                .map_err(|_| EncodingError::BadUcs2)
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EncodingError {
    #[error("user data header is truncated or malformed")]
    BadUdh,
    #[error("byte {0:#04x} is not a GSM 03.38 septet")]
    BadSeptet(u8),
    #[error("ucs-2 payload has an odd length or an unpaired surrogate")]
    BadUcs2,
}

#[cfg(test)]
mod tests;
