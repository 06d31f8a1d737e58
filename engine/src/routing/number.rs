//! Destination numbers: the E.164 shape check, then the numbering-plan check.
//!
//! Role: turn an event's `destination` into an [`Msisdn`], or say why it is not one. Two
//! checks, the cheap one first:
//! 1. shape: `+`, then 7 to 15 digits, the first not zero (E.164); tens of nanoseconds.
//! 2. plan: the number must be in an assigned range of its country, by libphonenumber's
//!    metadata (the `phonenumber` crate), checked with patterns compiled once per country
//!    code (`plan.rs`): 0.74 µs for a UK mobile number, 0.35 µs for a Chinese one
//!    (`cargo bench -p pigeon-engine --bench hot_path -- number_validate`), where the
//!    crate's own parse and validation take 13.6 µs and 4.4 µs. Nothing is cached by
//!    number: such a cache would hold personal data and grow with the customer base.
//!
//! A country's patterns are compiled on its first number; [`warm_up`] does the UK's when a
//! router is built.
//!
//! An [`Msisdn`] never prints its digits in `Debug`: only [`Msisdn::digits`] gives them, for
//! the SMPP destination address.

use std::fmt;

/// Powers of ten up to 10^15, for cutting a number down to a prefix.
pub(crate) const POW10: [u64; 16] = {
    let mut t = [1u64; 16];
    let mut i = 1;
    while i < 16 {
        t[i] = t[i - 1] * 10;
        i += 1;
    }
    t
};

/// Why a destination is not a deliverable number; both surface as reason `invalid_number`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidNumber {
    /// Not `+` and 7 to 15 digits with the first not zero.
    #[error("not an E.164 number (+ and 7 to 15 digits, the first not zero)")]
    Shape,
    /// E.164 in shape, but in no assigned range of its country's numbering plan.
    #[error("not a valid number in its country's numbering plan")]
    NotInPlan,
}

/// An E.164 number reduced to its digits. `Debug` masks all but the last four digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Msisdn {
    value: u64,
    len: u8,
}

impl Msisdn {
    /// The production check: E.164 shape, then the numbering plan (`phonenumber`).
    pub fn parse(s: &str) -> Result<Msisdn, InvalidNumber> {
        let n = Msisdn::parse_shape(s)?;
        if in_plan(s) {
            Ok(n)
        } else {
            Err(InvalidNumber::NotInPlan)
        }
    }

    /// The shape check alone: `+` followed by 7 to 15 digits, the first not zero. Used for
    /// porting files, where checking millions of numbers against the plan would make loading
    /// take minutes; a ported number outside the plan is still refused by [`Msisdn::parse`].
    pub fn parse_shape(s: &str) -> Result<Msisdn, InvalidNumber> {
        let digits = s.strip_prefix('+').ok_or(InvalidNumber::Shape)?;
        Msisdn::from_digits(digits)
    }

    /// Digits without `+` (7 to 15, the first not zero).
    pub(crate) fn from_digits(digits: &str) -> Result<Msisdn, InvalidNumber> {
        let b = digits.as_bytes();
        if !(7..=15).contains(&b.len()) || b[0] == b'0' || !b.iter().all(u8::is_ascii_digit) {
            return Err(InvalidNumber::Shape);
        }
        let value = b.iter().fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0'));
        Ok(Msisdn {
            value,
            len: b.len() as u8,
        })
    }

    /// Digits without `+`, as SMPP sends them with TON international.
    pub fn digits(&self) -> String {
        format!("{:0width$}", self.value, width = usize::from(self.len))
    }

    /// `+` and the digits with all but the last four replaced by `*`: safe to log.
    pub fn masked(&self) -> String {
        mask_digits(&self.digits())
    }

    /// Number of digits, 7 to 15.
    pub fn digit_count(&self) -> u8 {
        self.len
    }

    /// The digits as an integer (unique per number: E.164 numbers never start with 0).
    pub(crate) fn value(&self) -> u64 {
        self.value
    }

    /// The first `len` digits as an integer; `len` must be 1..=digit_count.
    pub(crate) fn prefix(&self, len: u8) -> u64 {
        self.value / POW10[usize::from(self.len.saturating_sub(len))]
    }
}

impl fmt::Debug for Msisdn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Msisdn({})", self.masked())
    }
}

/// `+` then the digits with all but the last four masked.
pub(crate) fn mask_digits(digits: &str) -> String {
    let keep = digits.len().saturating_sub(4);
    let mut s = String::with_capacity(digits.len() + 1);
    s.push('+');
    s.extend(
        digits
            .chars()
            .enumerate()
            .map(|(i, c)| if i < keep { '*' } else { c }),
    );
    s
}

use super::plan::in_plan;

/// Decodes the `phonenumber` metadata and compiles the UK's patterns now, so that the
/// first event does not pay for them (another country's first number compiles its own, in
/// about a millisecond).
pub fn warm_up() {
    super::plan::compile(44);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape() {
        assert_eq!(
            Msisdn::parse_shape("+447700900123").map(|m| m.digits()),
            Ok("447700900123".into())
        );
        for bad in [
            "447700900123",
            "+0447700900",
            "+44 7700",
            "+123456",
            "+1234567890123456",
            "+",
            "",
            "+4477009001２3",
        ] {
            assert_eq!(Msisdn::parse_shape(bad), Err(InvalidNumber::Shape), "{bad}");
        }
    }

    #[test]
    fn plan() {
        // UK mobile, French mobile, US (New York), Chinese mobile.
        for good in [
            "+447911123456",
            "+33612345678",
            "+12125550123",
            "+8613800138000",
        ] {
            assert!(Msisdn::parse(good).is_ok(), "{good}");
        }
        // UK shape but unassigned range; US 555-01xx fictional range; unassigned code +999.
        for bad in ["+440000000000", "+15550100123", "+99912345678"] {
            assert_eq!(Msisdn::parse(bad), Err(InvalidNumber::NotInPlan), "{bad}");
        }
        assert_eq!(Msisdn::parse("+44 7911"), Err(InvalidNumber::Shape));
    }

    #[test]
    fn debug_output_is_masked() {
        let n = Msisdn::parse_shape("+447700900123").expect("shape");
        assert_eq!(format!("{n:?}"), "Msisdn(+********0123)");
        assert_eq!(
            n.masked(),
            crate::notification::mask_number("+447700900123")
        );
    }

    #[test]
    fn prefixes_of_a_number() {
        let n = Msisdn::parse_shape("+447700900123").expect("shape");
        assert_eq!(n.prefix(2), 44);
        assert_eq!(n.prefix(6), 447700);
        assert_eq!(n.prefix(12), 447700900123);
        assert_eq!(n.digit_count(), 12);
    }
}
