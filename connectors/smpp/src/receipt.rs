//! Delivery receipts: parsing what SMSCs send back, tolerantly, and formatting the usual text.
//!
//! Role: turn a receipt `deliver_sm` into a [`Receipt`] the engine can match against a sent
//! message, whatever dialect the carrier speaks, and write the canonical text for the simulator.
//!
//! - TLVs (`receipted_message_id`, `message_state`, `network_error_code`) win when present.
//! - The text `id:.. sub:.. dlvrd:.. submit date:.. done date:.. stat:.. err:.. text:..` is read
//!   tolerantly: keys in any case, fields missing or in any order, unknown fields skipped,
//!   `text:` cut short or absent, dates of any length. Only `id` and `stat` are needed.
//! - Nothing here panics on any input: receipts come from the outside world.
//! - Carriers spell ids differently in `submit_sm_resp` and in receipts (hex vs decimal, case,
//!   leading zeros): see [`normalise_message_id`] and [`match_key`]; which [`IdForm`] a carrier
//!   needs is found by [`id_forms_agree`] (one known pair) and [`IdFormLearner`] (the stream).

use std::borrow::Cow;
use std::fmt::Write as _;

mod idform;

pub use idform::{id_forms_agree, IdFormLearner, DEFAULT_LEARN_WINDOW};

/// Final (or intermediate) state of a message as the carrier reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReceiptState {
    Enroute,
    Delivered,
    Expired,
    Deleted,
    Undeliverable,
    Accepted,
    Unknown,
    Rejected,
    Skipped,
}

impl ReceiptState {
    /// Every state, in `message_state` order.
    pub const ALL: [ReceiptState; 9] = [
        ReceiptState::Enroute,
        ReceiptState::Delivered,
        ReceiptState::Expired,
        ReceiptState::Deleted,
        ReceiptState::Undeliverable,
        ReceiptState::Accepted,
        ReceiptState::Unknown,
        ReceiptState::Rejected,
        ReceiptState::Skipped,
    ];

    /// The `stat:` text (`DELIVRD`, `UNDELIV`, ...).
    pub fn stat_text(self) -> &'static str {
        match self {
            ReceiptState::Enroute => "ENROUTE",
            ReceiptState::Delivered => "DELIVRD",
            ReceiptState::Expired => "EXPIRED",
            ReceiptState::Deleted => "DELETED",
            ReceiptState::Undeliverable => "UNDELIV",
            ReceiptState::Accepted => "ACCEPTD",
            ReceiptState::Unknown => "UNKNOWN",
            ReceiptState::Rejected => "REJECTD",
            ReceiptState::Skipped => "SKIPPED",
        }
    }

    /// SMPP `message_state` TLV value (1 = ENROUTE ... 9 = SKIPPED).
    pub fn message_state(self) -> u8 {
        match self {
            ReceiptState::Enroute => 1,
            ReceiptState::Delivered => 2,
            ReceiptState::Expired => 3,
            ReceiptState::Deleted => 4,
            ReceiptState::Undeliverable => 5,
            ReceiptState::Accepted => 6,
            ReceiptState::Unknown => 7,
            ReceiptState::Rejected => 8,
            ReceiptState::Skipped => 9,
        }
    }

    /// The state for a `message_state` value; `None` outside 1..=9.
    pub fn from_message_state(v: u8) -> Option<Self> {
        match v {
            1..=9 => Self::ALL.get(usize::from(v - 1)).copied(),
            _ => None,
        }
    }

    /// Reads a `stat:` word, case-insensitively: the 7-letter SMPP words, the spelled-out
    /// `DELIVERED` / `UNDELIVERABLE` / `UNDELIVERED` / `REJECTED` / `ACCEPTED`, or a
    /// `message_state` number.
    pub fn from_stat_text(s: &str) -> Option<Self> {
        let s = s.trim();
        if let Ok(n) = s.parse::<u8>() {
            return Self::from_message_state(n);
        }
        const WORDS: [(&str, ReceiptState); 14] = [
            ("DELIVRD", ReceiptState::Delivered),
            ("DELIVERED", ReceiptState::Delivered),
            ("EXPIRED", ReceiptState::Expired),
            ("DELETED", ReceiptState::Deleted),
            ("UNDELIV", ReceiptState::Undeliverable),
            ("UNDELIVERABLE", ReceiptState::Undeliverable),
            ("UNDELIVERED", ReceiptState::Undeliverable),
            ("ACCEPTD", ReceiptState::Accepted),
            ("ACCEPTED", ReceiptState::Accepted),
            ("UNKNOWN", ReceiptState::Unknown),
            ("REJECTD", ReceiptState::Rejected),
            ("REJECTED", ReceiptState::Rejected),
            ("ENROUTE", ReceiptState::Enroute),
            ("SKIPPED", ReceiptState::Skipped),
        ];
        WORDS
            .iter()
            .find(|(w, _)| w.eq_ignore_ascii_case(s))
            .map(|&(_, st)| st)
    }

    /// Whether no further receipt is expected after this one.
    ///
    /// Everything but `ENROUTE` and `ACCEPTD` is final. SMPP 3.4 calls `ACCEPTD` final, but
    /// many carriers send it as an intermediate "taken by the network" receipt followed by a
    /// real one, so Pigeon keeps waiting (until the validity period) after it.
    pub fn is_final(self) -> bool {
        !matches!(self, ReceiptState::Enroute | ReceiptState::Accepted)
    }
}

/// What a `deliver_sm` with a receipt told us, from TLVs where present and text otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The carrier's message id, as the receipt spells it (normalise before matching).
    pub message_id: String,
    pub state: ReceiptState,
    /// `err:` text or the network_error_code TLV's error value.
    pub error_code: Option<u32>,
}

/// The TLVs of a `deliver_sm` that matter for receipts, already pulled out of the PDU.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReceiptTlvs {
    pub receipted_message_id: Option<String>,
    pub message_state: Option<u8>,
    /// network_error_code: (network type, error code).
    pub network_error_code: Option<(u8, u16)>,
}

impl ReceiptTlvs {
    /// Whether any receipt TLV is present (then the `deliver_sm` is a receipt).
    pub fn any(&self) -> bool {
        self.receipted_message_id.is_some() || self.message_state.is_some()
    }
}

/// Longest unknown `stat:` word kept in [`ReceiptError::UnknownState`].
const MAX_STATE_ECHO: usize = 32;

/// Reads a receipt: TLVs first, the `id:... stat:...` text for whatever they lack.
///
/// The text is read as UTF-8 with invalid bytes replaced. An empty id counts as missing.
pub fn parse_receipt(short_message: &[u8], tlvs: &ReceiptTlvs) -> Result<Receipt, ReceiptError> {
    let text = String::from_utf8_lossy(short_message);
    let fields = parse_receipt_fields(&text);

    let message_id = tlvs
        .receipted_message_id
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .or(fields.id)
        .ok_or(ReceiptError::MissingId)?
        .to_owned();

    let state = match tlvs
        .message_state
        .and_then(ReceiptState::from_message_state)
    {
        Some(st) => st,
        None => match fields.stat {
            Some(word) => ReceiptState::from_stat_text(word).ok_or_else(|| {
                ReceiptError::UnknownState(word.chars().take(MAX_STATE_ECHO).collect())
            })?,
            None => match tlvs.message_state {
                Some(v) => return Err(ReceiptError::UnknownState(format!("message_state {v}"))),
                None => return Err(ReceiptError::MissingState),
            },
        },
    };

    let error_code = match tlvs.network_error_code {
        Some((_, code)) => Some(u32::from(code)),
        None => fields.err.and_then(parse_err),
    };

    Ok(Receipt {
        message_id,
        state,
        error_code,
    })
}

/// `err:` values: decimal (`000`, `11`) or hex with `0x`; anything else is no code.
fn parse_err(s: &str) -> Option<u32> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// The fields found in a receipt text, each as written; absent when missing or empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReceiptFields<'a> {
    pub id: Option<&'a str>,
    pub sub: Option<u32>,
    pub dlvrd: Option<u32>,
    /// `YYMMDDhhmm` or `YYMMDDhhmmss` (not validated).
    pub submit_date: Option<&'a str>,
    pub done_date: Option<&'a str>,
    pub stat: Option<&'a str>,
    pub err: Option<&'a str>,
    /// Everything after `text:`, possibly cut short.
    pub text: Option<&'a str>,
}

/// Reads the conventional receipt text tolerantly (see the module docs); never fails.
///
/// Keys match case-insensitively with `_` ignored (`submit_date`, `Done Date`), `stat` also as
/// `state`/`status` and `err` as `error`. A key whose value is empty (`id: 123`) takes the next
/// word. `text:` takes the rest of the input verbatim.
pub fn parse_receipt_fields(s: &str) -> ReceiptFields<'_> {
    let mut f = ReceiptFields::default();
    let mut rest = s;
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            break;
        }
        let (tok, after) = split_word(rest);
        let Some((key, value)) = tok.split_once(':') else {
            // `submit date:` / `done date:`: a key word then `date:`.
            if tok.eq_ignore_ascii_case("submit") || tok.eq_ignore_ascii_case("done") {
                let (tok2, after2) = split_word(after.trim_start());
                if let Some((k2, v2)) = tok2.split_once(':') {
                    if k2.eq_ignore_ascii_case("date") {
                        let (v2, after2) = value_or_next(v2, after2);
                        if tok.eq_ignore_ascii_case("submit") {
                            f.submit_date = non_empty(v2);
                        } else {
                            f.done_date = non_empty(v2);
                        }
                        rest = after2;
                        continue;
                    }
                }
            }
            rest = after;
            continue;
        };
        if key.eq_ignore_ascii_case("text") {
            // "text:" is 5 ASCII bytes, so this index is a char boundary.
            f.text = rest.get(5..);
            break;
        }
        let (value, after) = value_or_next(value, after);
        let key: Cow<'_, str> = if key.contains('_') {
            Cow::Owned(key.replace('_', ""))
        } else {
            Cow::Borrowed(key)
        };
        let is = |k: &str| key.eq_ignore_ascii_case(k);
        if is("id") {
            f.id = non_empty(value);
        } else if is("sub") {
            f.sub = value.parse().ok();
        } else if is("dlvrd") {
            f.dlvrd = value.parse().ok();
        } else if is("submitdate") {
            f.submit_date = non_empty(value);
        } else if is("donedate") {
            f.done_date = non_empty(value);
        } else if is("stat") || is("state") || is("status") {
            f.stat = non_empty(value);
        } else if is("err") || is("error") {
            f.err = non_empty(value);
        }
        rest = after;
    }
    f
}

/// (first word, the rest starting at the whitespace after it).
fn split_word(s: &str) -> (&str, &str) {
    let end = s.find(char::is_whitespace).unwrap_or(s.len());
    s.split_at(end)
}

/// `value` if non-empty, else the next word when it is not itself a `key:`.
fn value_or_next<'a>(value: &'a str, after: &'a str) -> (&'a str, &'a str) {
    if !value.is_empty() {
        return (value, after);
    }
    let (next, after_next) = split_word(after.trim_start());
    if next.is_empty() || next.contains(':') {
        (value, after)
    } else {
        (next, after_next)
    }
}

fn non_empty(s: &str) -> Option<&str> {
    Some(s).filter(|s| !s.is_empty())
}

/// Fields of the conventional receipt text (SMPP 3.4 appendix B).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptText<'a> {
    pub id: &'a str,
    pub sub: u32,
    pub dlvrd: u32,
    /// `YYMMDDhhmm`.
    pub submit_date: &'a str,
    pub done_date: &'a str,
    pub state: ReceiptState,
    pub err: u32,
    /// At most the first 20 characters of the original text; simulators may leave it empty.
    pub text: &'a str,
}

/// Characters of the original text a receipt carries.
pub const RECEIPT_TEXT_CHARS: usize = 20;

/// `id:{id} sub:001 dlvrd:001 submit date:... done date:... stat:DELIVRD err:000 text:...`
///
/// `sub`, `dlvrd` and `err` are zero-padded to 3 digits; `text` is cut to
/// [`RECEIPT_TEXT_CHARS`] characters.
pub fn format_receipt_text(r: &ReceiptText<'_>) -> String {
    let mut s = String::with_capacity(120);
    // Writing to a String cannot fail.
    let _ = write!(
        s,
        "id:{} sub:{:03} dlvrd:{:03} submit date:{} done date:{} stat:{} err:{:03} text:",
        r.id,
        r.sub,
        r.dlvrd,
        r.submit_date,
        r.done_date,
        r.state.stat_text(),
        r.err
    );
    s.extend(r.text.chars().take(RECEIPT_TEXT_CHARS));
    s
}

/// How a carrier's receipt ids relate to its `submit_sm_resp` ids; applied to one side so both
/// spell the id the same way before [`match_key`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum IdForm {
    /// Use the id as given.
    #[default]
    AsIs,
    /// The id is hexadecimal (optionally `0x`-prefixed); write it in decimal.
    HexToDecimal,
    /// The id is decimal; write it in lowercase hexadecimal.
    DecimalToHex,
    /// Lowercase the id.
    Lowercase,
}

/// Rewrites `id` per `form` (surrounding whitespace trimmed). An id that does not parse in the
/// expected base, or exceeds 128 bits, is returned unchanged (trimmed) rather than guessed at.
pub fn normalise_message_id(id: &str, form: IdForm) -> String {
    let id = id.trim();
    match form {
        IdForm::AsIs => id.to_owned(),
        IdForm::Lowercase => id.to_lowercase(),
        IdForm::HexToDecimal => {
            let hex = id
                .strip_prefix("0x")
                .or_else(|| id.strip_prefix("0X"))
                .unwrap_or(id);
            match u128::from_str_radix(hex, 16) {
                Ok(n) if !hex.starts_with('+') => n.to_string(),
                _ => id.to_owned(),
            }
        }
        IdForm::DecimalToHex => match id.parse::<u128>() {
            Ok(n) if !id.starts_with('+') => format!("{n:x}"),
            _ => id.to_owned(),
        },
    }
}

/// The default key for matching a receipt to a sent message: trimmed, lowercased, leading
/// zeros stripped (an all-zero id becomes `"0"`). Apply it to both the `submit_sm_resp` id and
/// the receipt id, after any carrier-specific [`normalise_message_id`].
pub fn match_key(id: &str) -> String {
    let lower = id.trim().to_lowercase();
    let stripped = lower.trim_start_matches('0');
    if stripped.is_empty() && !lower.is_empty() {
        "0".to_owned()
    } else {
        stripped.to_owned()
    }
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ReceiptError {
    #[error("receipt carries no message id")]
    MissingId,
    #[error("receipt carries no state")]
    MissingState,
    #[error("receipt state {0:?} is not known")]
    UnknownState(String),
}

#[cfg(test)]
mod tests;
