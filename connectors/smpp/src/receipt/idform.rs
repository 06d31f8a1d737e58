//! Finding out how a carrier spells receipt ids relative to `submit_sm_resp` ids.
//!
//! Role: when receipts stop matching because the carrier writes the id in another base (hex in
//! `submit_sm_resp`, decimal in the receipt, or the reverse), tell the engine which
//! [`IdForm`] to apply to its submit ids so [`match_key`] agrees again; the engine then
//! re-keys its pending entries.
//!
//! - [`id_forms_agree`] judges one known pair.
//! - [`IdFormLearner`] judges the stream of one carrier, from the *shape* of ids only (it
//!   never stores an id), because an unmatched receipt has, by definition, no known partner.

use std::collections::VecDeque;

use super::{match_key, normalise_message_id, IdForm};

/// Default number of ids per side [`IdFormLearner`] looks at.
pub const DEFAULT_LEARN_WINDOW: usize = 20;

/// The [`IdForm`] which, applied to `submit_id`, gives the same [`match_key`] as `receipt_id`;
/// tried in the order `AsIs`, `HexToDecimal`, `DecimalToHex`. `None` when none does, or when
/// the receipt id is empty.
///
/// An all-digit id is valid in both bases, so one pair can agree by accident (`10` hex is
/// `16` decimal); use it to confirm a form, and [`IdFormLearner`] to find one.
pub fn id_forms_agree(submit_id: &str, receipt_id: &str) -> Option<IdForm> {
    let want = match_key(receipt_id);
    if want.is_empty() {
        return None;
    }
    [IdForm::AsIs, IdForm::HexToDecimal, IdForm::DecimalToHex]
        .into_iter()
        .find(|&form| match_key(&normalise_message_id(submit_id, form)) == want)
}

/// What an id looks like, as far as bases go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// Digits only, fits 128 bits: could be decimal or hex.
    Decimal,
    /// Hex digits with at least one letter `a-f` (any case), fits 128 bits.
    Hex,
    /// `0x` then hex digits, fits 128 bits. Hex on the submit side; on the receipt side no
    /// [`IdForm`] applied to submit ids can produce it, so it counts as [`Shape::Other`].
    PrefixedHex,
    /// Anything else (empty, dashes, other letters, too long): no base conversion applies.
    Other,
}

fn shape(id: &str) -> Shape {
    let id = id.trim();
    if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) {
        return if id.parse::<u128>().is_ok() {
            Shape::Decimal
        } else {
            Shape::Other
        };
    }
    let (digits, prefixed) = match id.strip_prefix("0x").or_else(|| id.strip_prefix("0X")) {
        Some(d) => (d, true),
        None => (id, false),
    };
    let hex = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_hexdigit())
        && u128::from_str_radix(digits, 16).is_ok();
    match (hex, prefixed) {
        (true, true) => Shape::PrefixedHex,
        (true, false) if digits.bytes().any(|b| b.is_ascii_alphabetic()) => Shape::Hex,
        _ => Shape::Other,
    }
}

/// Which base one side's ids are in, judged on a full window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Base {
    Decimal,
    Hex,
}

/// The shapes of the last `cap` ids of one side, with running counts.
#[derive(Debug, Clone)]
struct ShapeWindow {
    cap: usize,
    shapes: VecDeque<Shape>,
    decimal: usize,
    hex: usize,
}

impl ShapeWindow {
    fn new(cap: usize) -> Self {
        Self {
            cap,
            shapes: VecDeque::with_capacity(cap),
            decimal: 0,
            hex: 0,
        }
    }

    fn count(&mut self, s: Shape, up: bool) {
        let n = match s {
            Shape::Decimal => &mut self.decimal,
            Shape::Hex | Shape::PrefixedHex => &mut self.hex,
            Shape::Other => return,
        };
        *n = if up { *n + 1 } else { n.saturating_sub(1) };
    }

    fn push(&mut self, s: Shape) {
        if self.shapes.len() == self.cap {
            if let Some(old) = self.shapes.pop_front() {
                self.count(old, false);
            }
        }
        self.shapes.push_back(s);
        self.count(s, true);
    }

    /// `Decimal` when the window is full of all-digit ids; `Hex` when it is full of hex ids
    /// (all-digit ones included) with at least one letter or prefix; else unknown.
    fn base(&self) -> Option<Base> {
        if self.shapes.len() < self.cap {
            None
        } else if self.decimal == self.cap {
            Some(Base::Decimal)
        } else if self.decimal + self.hex == self.cap {
            Some(Base::Hex)
        } else {
            None
        }
    }
}

/// Learns one carrier's [`IdForm`] from the shapes of its ids; keep one per carrier.
///
/// Feed it every `submit_sm_resp` id ([`observe_submit_id`](Self::observe_submit_id)) and
/// every receipt id that matched no pending message under the current form
/// ([`observe_unmatched_receipt_id`](Self::observe_unmatched_receipt_id)), both as received.
///
/// Heuristic: it keeps the shapes of the last `window` ids of each side. When the last
/// `window` unmatched receipt ids are all decimal while the last `window` submit ids are hex
/// (only hex digits, at least one with a letter `a-f` or a `0x` prefix), it proposes
/// [`IdForm::HexToDecimal`]; when the receipt ids are hex (without `0x`: no form applied to
/// submit ids could match those) and the submit ids all decimal, [`IdForm::DecimalToHex`]. Any id of another shape (a UUID, an over-long number) in a window
/// blocks a proposal until it leaves the window. Same-base mismatches (case, leading zeros)
/// are already absorbed by [`match_key`], so they never lead here.
///
/// A proposal is sticky until [`reset`](Self::reset): the engine applies it, re-keys its
/// pending entries, and resets the learner if it wants to keep watching. The learner holds
/// shapes only, never ids.
#[derive(Debug, Clone)]
pub struct IdFormLearner {
    submits: ShapeWindow,
    receipts: ShapeWindow,
    proposal: Option<IdForm>,
}

impl Default for IdFormLearner {
    fn default() -> Self {
        Self::new(DEFAULT_LEARN_WINDOW)
    }
}

impl IdFormLearner {
    /// A learner judging the last `window` ids of each side (at least 1).
    pub fn new(window: usize) -> Self {
        let window = window.max(1);
        Self {
            submits: ShapeWindow::new(window),
            receipts: ShapeWindow::new(window),
            proposal: None,
        }
    }

    /// Records the shape of a `submit_sm_resp` id; returns the current proposal.
    pub fn observe_submit_id(&mut self, id: &str) -> Option<IdForm> {
        self.submits.push(shape(id));
        self.judge()
    }

    /// Records the shape of a receipt id that matched nothing; returns the current proposal.
    pub fn observe_unmatched_receipt_id(&mut self, id: &str) -> Option<IdForm> {
        let s = match shape(id) {
            Shape::PrefixedHex => Shape::Other,
            s => s,
        };
        self.receipts.push(s);
        self.judge()
    }

    /// The proposed form, once the evidence is in.
    pub fn proposal(&self) -> Option<IdForm> {
        self.proposal
    }

    /// Forgets everything seen and any proposal.
    pub fn reset(&mut self) {
        *self = Self::new(self.submits.cap);
    }

    fn judge(&mut self) -> Option<IdForm> {
        if self.proposal.is_none() {
            self.proposal = match (self.submits.base(), self.receipts.base()) {
                (Some(Base::Hex), Some(Base::Decimal)) => Some(IdForm::HexToDecimal),
                (Some(Base::Decimal), Some(Base::Hex)) => Some(IdForm::DecimalToHex),
                _ => None,
            };
        }
        self.proposal
    }
}

#[cfg(test)]
mod tests;
