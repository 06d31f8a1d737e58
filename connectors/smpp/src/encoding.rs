//! Text encodings and segmentation for short messages.
//!
//! Role: turn engine text into `short_message` bodies (and back, for the simulator).
//!
//! - GSM 03.38 default alphabet plus its extension table (`€ [ ] { } ^ ~ \ |` and form feed,
//!   each sent as escape `0x1B` + code), **unpacked**: one septet per octet, `data_coding` 0x00.
//! - ISO-8859-1 (Latin-1), one octet per character, `data_coding` 0x03, for carriers that take
//!   it ([`Alphabet::Latin1`]).
//! - Anything else goes as UCS-2 / UTF-16BE, `data_coding` 0x08; characters outside the BMP
//!   (emoji) become surrogate pairs.
//!
//! Which alphabet a text gets is [`Alphabet::choose`]; how a long text travels is
//! [`Concatenation`]; both come per carrier in [`SegmentOptions`] and meet in
//! [`segment_with`]. [`segment`] is the default (GSM 03.38 else UCS-2, 8-bit UDH).
//!
//! Limits, in septets (GSM) / UTF-16 units (UCS-2) / octets (Latin-1):
//!
//! | | single | 8-bit UDH | 16-bit UDH | SAR | message_payload |
//! |---|---|---|---|---|---|
//! | GSM 03.38 | 160 | 153 | 152 | 152 | no split |
//! | UCS-2 | 70 | 67 | 66 | 66 | no split |
//! | Latin-1 | 140 | 134 | 133 | 133 | no split |
//!
//! SAR parts carry no UDH, but the SMSC writes one over the air, and which one is its choice:
//! `sar_msg_ref_num` is 16 bits, so it may well use the 7-octet 16-bit element. Pigeon therefore
//! sizes SAR parts for the 16-bit element (152 / 66 / 133), one unit less than the 8-bit UDH
//! limits, so a part never has to be split again by the SMSC.
//!
//! Latin-1 is an SMPP-side alphabet only: the air interface knows GSM 7-bit, 8-bit data and
//! UCS-2, so the SMSC transcodes. The Latin-1 limits are the 140 octets of user data, which
//! holds for any transcoding that keeps one octet (or less) per character.
//!
//! An escape pair and a surrogate pair are never split across parts.

mod gsm;
mod parse;

pub use gsm::{is_gsm7, is_latin1};
pub use parse::{decode, parse_part, reassemble, Part};

use gsm::{gsm_encode_char, Septets, ESC};

/// `data_coding` for the GSM 03.38 default alphabet.
pub const DATA_CODING_GSM7: u8 = 0x00;
/// `data_coding` for ISO-8859-1 (Latin-1).
pub const DATA_CODING_LATIN1: u8 = 0x03;
/// `data_coding` for UCS-2.
pub const DATA_CODING_UCS2: u8 = 0x08;
/// `esm_class` bit telling that `short_message` starts with a user data header.
pub const ESM_CLASS_UDHI: u8 = 0x40;
/// Septets in a single, unsplit GSM message.
pub const GSM7_SINGLE: usize = 160;
/// Septets per part of a split GSM message (room left for the 8-bit UDH).
pub const GSM7_PART: usize = 153;
/// Septets per part with the 16-bit UDH (7 octets = 8 septets), and per SAR part.
pub const GSM7_PART_UDH16: usize = 152;
/// UTF-16 units in a single, unsplit UCS-2 message.
pub const UCS2_SINGLE: usize = 70;
/// UTF-16 units per part of a split UCS-2 message.
pub const UCS2_PART: usize = 67;
/// UTF-16 units per part with the 16-bit UDH, and per SAR part.
pub const UCS2_PART_UDH16: usize = 66;
/// Octets in a single, unsplit Latin-1 message.
pub const LATIN1_SINGLE: usize = 140;
/// Octets per part of a split Latin-1 message (8-bit UDH).
pub const LATIN1_PART: usize = 134;
/// Octets per part with the 16-bit UDH, and per SAR part.
pub const LATIN1_PART_UDH16: usize = 133;
/// Most parts a concatenated message can have (the UDH and SAR count them in one octet).
pub const MAX_PARTS: usize = 255;
/// Length of the 8-bit concatenation UDH written by [`segment`] (`05 00 03 ref total seq`).
pub const UDH_LEN: usize = 6;
/// Length of the 16-bit concatenation UDH (`06 08 04 refhi reflo total seq`).
pub const UDH16_LEN: usize = 7;
/// Most octets the `message_payload` TLV holds (its length field is 16 bits).
pub const MESSAGE_PAYLOAD_MAX: usize = 65_535;

/// The alphabet a message is sent in; maps to SMPP `data_coding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Coding {
    /// GSM 03.38 default alphabet, one septet per octet (unpacked), `data_coding` 0x00.
    Gsm7,
    /// UCS-2 / UTF-16BE, `data_coding` 0x08.
    Ucs2,
    /// ISO-8859-1, one octet per character, `data_coding` 0x03.
    Latin1,
}

impl Coding {
    /// The SMPP `data_coding` value: 0x00 GSM 03.38, 0x03 Latin-1, 0x08 UCS-2.
    pub fn data_coding(self) -> u8 {
        match self {
            Coding::Gsm7 => DATA_CODING_GSM7,
            Coding::Ucs2 => DATA_CODING_UCS2,
            Coding::Latin1 => DATA_CODING_LATIN1,
        }
    }

    /// The coding for a `data_coding` value; `None` for codings Pigeon does not speak.
    pub fn from_data_coding(dc: u8) -> Option<Coding> {
        match dc {
            DATA_CODING_GSM7 => Some(Coding::Gsm7),
            DATA_CODING_UCS2 => Some(Coding::Ucs2),
            DATA_CODING_LATIN1 => Some(Coding::Latin1),
            _ => None,
        }
    }

    /// Units (septets, UTF-16 units or octets) `c` takes; `None` when the coding cannot carry
    /// it.
    fn units(self, c: char) -> Option<usize> {
        match self {
            Coding::Gsm7 => gsm_encode_char(c).map(Septets::len),
            Coding::Ucs2 => Some(c.len_utf16()),
            Coding::Latin1 => is_latin1(c).then_some(1),
        }
    }

    /// Octets one unit takes in `short_message`.
    fn octets_per_unit(self) -> usize {
        match self {
            Coding::Gsm7 | Coding::Latin1 => 1,
            Coding::Ucs2 => 2,
        }
    }
}

/// Which alphabets a carrier accepts; [`Alphabet::choose`] picks one per text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Alphabet {
    /// GSM 03.38 when every character fits (extension table included), else UCS-2.
    #[default]
    Gsm7,
    /// GSM 03.38 when every character fits; else Latin-1 (`data_coding` 0x03) when every
    /// character is in ISO-8859-1 (U+0000..=U+00FF); else UCS-2. GSM comes first because it
    /// holds more characters per part (160 vs 140); Latin-1 saves the text that GSM cannot
    /// carry (`ç`, `ê`, `` ` ``, ...) from UCS-2's 70.
    Latin1,
    /// Always UCS-2.
    Ucs2Only,
}

impl Alphabet {
    /// The coding `text` is sent in under this alphabet policy.
    pub fn choose(self, text: &str) -> Coding {
        match self {
            Alphabet::Ucs2Only => Coding::Ucs2,
            _ if text.chars().all(is_gsm7) => Coding::Gsm7,
            _ => self.beyond_gsm(text),
        }
    }

    /// The coding of a text that GSM 03.38 cannot carry.
    fn beyond_gsm(self, text: &str) -> Coding {
        match self {
            Alphabet::Latin1 if text.chars().all(is_latin1) => Coding::Latin1,
            _ => Coding::Ucs2,
        }
    }
}

/// How a text longer than one message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Concatenation {
    /// Parts with the 8-bit-reference UDH `05 00 03 ref total seq` (the reference's low
    /// octet), `esm_class` UDHI.
    #[default]
    Udh8,
    /// Parts with the 16-bit-reference UDH `06 08 04 refhi reflo total seq`, one unit less per
    /// part than [`Concatenation::Udh8`], `esm_class` UDHI.
    Udh16,
    /// Parts carry payload only; each `submit_sm` gets the `sar_msg_ref_num` (the reference),
    /// `sar_total_segments` and `sar_segment_seqnum` TLVs (see [`Segmented::sar_for_part`]).
    Sar,
    /// One `submit_sm`, empty `short_message`, the whole text in the `message_payload` TLV; the
    /// SMSC splits. Text over [`MESSAGE_PAYLOAD_MAX`] octets must be refused by the caller.
    MessagePayload,
}

impl Concatenation {
    /// Units per part when split; `None` when this concatenation never splits.
    fn part_limit(self, coding: Coding) -> Option<usize> {
        let limit = match (self, coding) {
            (Concatenation::MessagePayload, _) => return None,
            (Concatenation::Udh8, Coding::Gsm7) => GSM7_PART,
            (Concatenation::Udh8, Coding::Ucs2) => UCS2_PART,
            (Concatenation::Udh8, Coding::Latin1) => LATIN1_PART,
            (Concatenation::Udh16 | Concatenation::Sar, Coding::Gsm7) => GSM7_PART_UDH16,
            (Concatenation::Udh16 | Concatenation::Sar, Coding::Ucs2) => UCS2_PART_UDH16,
            (Concatenation::Udh16 | Concatenation::Sar, Coding::Latin1) => LATIN1_PART_UDH16,
        };
        Some(limit)
    }
}

/// A carrier's alphabet and long-message options; the default is [`segment`]'s behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SegmentOptions {
    pub alphabet: Alphabet,
    pub concatenation: Concatenation,
}

/// The SAR TLV values shared by every part of a [`Concatenation::Sar`] message; each part's
/// `sar_segment_seqnum` is its index + 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SarInfo {
    /// `sar_msg_ref_num`.
    pub reference: u16,
    /// `sar_total_segments`.
    pub total: u8,
}

/// A message ready for `submit_sm`: one body per `submit_sm`, UDH included when split with a
/// UDH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segmented {
    pub coding: Coding,
    /// One body per `submit_sm`. With more than one and no `sar`, each starts with a
    /// concatenation UDH and `esm_class` must carry UDHI (see [`Segmented::esm_class`]).
    pub parts: Vec<Vec<u8>>,
    /// Set when the parts are numbered by SAR TLVs instead of a UDH (never for one part).
    pub sar: Option<SarInfo>,
    /// The single part goes in the `message_payload` TLV, with an empty `short_message`.
    pub payload_tlv: bool,
}

impl Segmented {
    /// Whether every part starts with a concatenation UDH.
    pub fn has_udh(&self) -> bool {
        self.parts.len() > 1 && self.sar.is_none() && !self.payload_tlv
    }

    /// `esm_class` for these parts (0x40 when they carry a UDH, else 0).
    pub fn esm_class(&self) -> u8 {
        if self.has_udh() {
            ESM_CLASS_UDHI
        } else {
            0
        }
    }

    /// (`sar_msg_ref_num`, `sar_total_segments`, `sar_segment_seqnum`) for part `index`, when
    /// this message uses SAR and `index` is one of its parts.
    pub fn sar_for_part(&self, index: usize) -> Option<(u16, u8, u8)> {
        let sar = self.sar?;
        let seq = u8::try_from(index + 1).ok().filter(|&s| s <= sar.total)?;
        Some((sar.reference, sar.total, seq))
    }
}

/// GSM 03.38 when every character fits (extension table included), else UCS-2.
pub fn choose_coding(text: &str) -> Coding {
    Alphabet::Gsm7.choose(text)
}

/// Calls `boundary(byte_index)` at each point where a new part must start; returns the
/// number of parts. [`segment_count_with`] counts with it and [`segment_with`] cuts with it
/// or, for GSM 03.38, with [`walk_septets`]: both go through [`walk`], so they cannot
/// disagree.
fn walk_parts(
    text: &str,
    coding: Coding,
    concatenation: Concatenation,
    boundary: impl FnMut(usize),
) -> usize {
    let units = text
        .char_indices()
        .map(|(i, c)| (i, coding.units(c).unwrap_or(0)));
    let total = units.clone().map(|(_, n)| n).sum();
    walk(units, total, coding, concatenation, boundary)
}

/// [`walk_parts`] over GSM 03.38 septets, with indices into them (never between an escape
/// and its code: the escape is never a character of its own).
fn walk_septets(
    septets: &[u8],
    concatenation: Concatenation,
    boundary: impl FnMut(usize),
) -> usize {
    let mut i = 0;
    let units = std::iter::from_fn(move || {
        let at = i;
        i += if *septets.get(at)? == ESC { 2 } else { 1 };
        Some((at, i - at))
    });
    walk(units, septets.len(), Coding::Gsm7, concatenation, boundary)
}

/// The parts of a text of `total` units in `coding`, given each character's index and
/// units; calls `boundary` with the index where each part after the first starts.
fn walk(
    units: impl Iterator<Item = (usize, usize)>,
    total: usize,
    coding: Coding,
    concatenation: Concatenation,
    mut boundary: impl FnMut(usize),
) -> usize {
    let Some(part) = concatenation.part_limit(coding) else {
        return 1;
    };
    let single = match coding {
        Coding::Gsm7 => GSM7_SINGLE,
        Coding::Ucs2 => UCS2_SINGLE,
        Coding::Latin1 => LATIN1_SINGLE,
    };
    if total <= single {
        return 1;
    }
    let mut parts = 1;
    let mut used = 0;
    for (i, n) in units {
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
        // Alphabet::choose only picks Gsm7 when every character fits.
        Coding::Gsm7 => {
            let _ = push_gsm(c, out);
        }
        Coding::Ucs2 => {
            let mut buf = [0u16; 2];
            for u in c.encode_utf16(&mut buf) {
                out.extend_from_slice(&u.to_be_bytes());
            }
        }
        Coding::Latin1 => {
            // Alphabet::choose only picks Latin1 when every character fits.
            if let Ok(b) = u8::try_from(u32::from(c)) {
                out.push(b);
            }
        }
    }
}

fn encode_payload(coding: Coding, text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() * coding.octets_per_unit());
    for c in text.chars() {
        write_char(coding, c, &mut out);
    }
    out
}

/// Encodes and splits `text` with the default options (GSM 03.38 else UCS-2, 8-bit UDH);
/// `reference` is the concatenation reference shared by the parts.
///
/// A single part carries no UDH (an empty text gives one empty part). Text needing more than
/// [`MAX_PARTS`] parts cannot be numbered in an 8-bit UDH: callers must refuse it (check
/// [`segment_count`]); if they do not, total and sequence saturate at 255.
pub fn segment(text: &str, reference: u8) -> Segmented {
    segment_with(text, u16::from(reference), &SegmentOptions::default())
}

/// Encodes and splits `text` per a carrier's `opts`; `reference` is the concatenation
/// reference (only its low octet with [`Concatenation::Udh8`]).
///
/// A text that fits one message is one part without UDH or SAR, whatever the concatenation
/// (with [`Concatenation::MessagePayload`] it is always one part, flagged `payload_tlv`).
/// Text needing more than [`MAX_PARTS`] parts must be refused by the caller (check
/// [`segment_count_with`]); if it is not, total and sequence saturate at 255.
pub fn segment_with(text: &str, reference: u16, opts: &SegmentOptions) -> Segmented {
    let concatenation = opts.concatenation;
    let payload_tlv = concatenation == Concatenation::MessagePayload;
    // GSM 03.38, the usual case, is encoded once and then cut; other codings part by part.
    let septets = (opts.alphabet != Alphabet::Ucs2Only)
        .then(|| gsm_septets(text))
        .flatten();
    let coding = match septets {
        Some(_) => Coding::Gsm7,
        None => opts.alphabet.beyond_gsm(text),
    };
    // Where parts after the first start: in the septets, or in the text.
    let mut starts = Vec::new();
    let n = match &septets {
        Some(s) => walk_septets(s, concatenation, |i| starts.push(i)),
        None => walk_parts(text, coding, concatenation, |i| starts.push(i)),
    };
    if n == 1 {
        return Segmented {
            coding,
            parts: vec![septets.unwrap_or_else(|| encode_payload(coding, text))],
            sar: None,
            payload_tlv,
        };
    }
    let total = u8::try_from(n).unwrap_or(u8::MAX);
    let [ref_hi, ref_lo] = reference.to_be_bytes();
    let header: &[u8] = match concatenation {
        Concatenation::Udh8 => &[0x05, 0x00, 0x03, ref_lo, total],
        Concatenation::Udh16 => &[0x06, 0x08, 0x04, ref_hi, ref_lo, total],
        Concatenation::Sar | Concatenation::MessagePayload => &[],
    };
    let part_units = concatenation.part_limit(coding).unwrap_or(0);
    let per_part_bytes = header.len() + 1 + part_units * coding.octets_per_unit();
    let end = septets.as_ref().map_or(text.len(), Vec::len);
    let mut parts = Vec::with_capacity(n);
    let mut from = 0;
    for (seq, &to) in starts.iter().chain(std::iter::once(&end)).enumerate() {
        let mut p = Vec::with_capacity(per_part_bytes);
        if !header.is_empty() {
            p.extend_from_slice(header);
            p.push(u8::try_from(seq + 1).unwrap_or(u8::MAX));
        }
        match &septets {
            Some(s) => p.extend_from_slice(&s[from..to]),
            None => {
                for c in text[from..to].chars() {
                    write_char(coding, c, &mut p);
                }
            }
        }
        parts.push(p);
        from = to;
    }
    let sar = (concatenation == Concatenation::Sar).then_some(SarInfo { reference, total });
    Segmented {
        coding,
        parts,
        sar,
        payload_tlv,
    }
}

/// `text` in GSM 03.38 septets, an extension character as the escape and its code; `None`
/// when a character is in neither table.
fn gsm_septets(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        push_gsm(c, &mut out)?;
    }
    Some(out)
}

/// Appends `c` in GSM 03.38 septets (an extension character as the escape and its code);
/// `None`, appending nothing, when it is in neither table.
fn push_gsm(c: char, out: &mut Vec<u8>) -> Option<()> {
    match gsm_encode_char(c)? {
        Septets::One(s) => out.push(s),
        Septets::Ext(code) => out.extend_from_slice(&[ESC, code]),
    }
    Some(())
}

/// The number of segments `text` needs (what rate limits count), without allocating parts.
pub fn segment_count(text: &str) -> usize {
    segment_count_with(text, &SegmentOptions::default())
}

/// The number of `submit_sm` PDUs [`segment_with`] makes for `text` and `opts`, without
/// allocating parts. With [`Concatenation::MessagePayload`] this is 1 although the SMSC still
/// splits over the air (into what [`Concatenation::Udh8`] would count).
pub fn segment_count_with(text: &str, opts: &SegmentOptions) -> usize {
    walk_parts(text, opts.alphabet.choose(text), opts.concatenation, |_| {})
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EncodingError {
    #[error("user data header is truncated or malformed")]
    BadUdh,
    #[error("byte {0:#04x} is not a GSM 03.38 septet")]
    BadSeptet(u8),
    #[error("ucs-2 payload has an odd length or an unpaired surrogate")]
    BadUcs2,
    #[error("parts are missing, out of order or disagree on reference or total")]
    BadConcatenation,
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod options_tests;
