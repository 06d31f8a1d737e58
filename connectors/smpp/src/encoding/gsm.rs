//! GSM 03.38 tables: the default alphabet and its extension table, both directions.
//!
//! Table driven rather than rusmpp-extra's encoders: those lack the form feed extension, a
//! decoder, and a count that does not allocate.

/// The escape septet: the next septet is looked up in the extension table.
pub(super) const ESC: u8 = 0x1B;

/// The GSM 03.38 default alphabet, indexed by septet. 0x1B is the escape, never a character.
pub(super) const GSM_TABLE: [char; 128] = [
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
pub(super) enum Septets {
    One(u8),
    /// Escape then this code.
    Ext(u8),
}

impl Septets {
    pub(super) fn len(self) -> usize {
        match self {
            Septets::One(_) => 1,
            Septets::Ext(_) => 2,
        }
    }
}

pub(super) fn gsm_encode_char(c: char) -> Option<Septets> {
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

pub(super) fn gsm_ext_char(code: u8) -> Option<char> {
    GSM_EXT.iter().find(|(_, k)| *k == code).map(|&(ch, _)| ch)
}

/// Whether `c` can be written in GSM 03.38 (default or extension table).
pub fn is_gsm7(c: char) -> bool {
    gsm_encode_char(c).is_some()
}

/// Whether `c` can be written in ISO-8859-1 (`data_coding` 0x03): code points U+0000..=U+00FF,
/// one octet each, the octet being the code point.
pub fn is_latin1(c: char) -> bool {
    u32::from(c) <= 0xFF
}
