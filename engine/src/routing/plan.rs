//! The numbering-plan check: is an E.164 number in an assigned range of its country?
//!
//! The ranges are libphonenumber's, from the `phonenumber` crate's metadata; the decision is
//! the crate's own `parse(None, number)` then `is_valid`, restated for input that already
//! passed the E.164 shape check, over regular expressions compiled once per country code.
//! The crate itself looks every pattern up by its source text in one LRU cache of 100
//! behind a mutex (hashing the text with SipHash on every use): 13.6 µs for a UK mobile
//! number, most of the intake's cost. Here it is a few hundred nanoseconds: a number is
//! checked against all its region's number types at once (one alternation per length), and
//! the region is looked up once when the parsing rules leave the number as it was.
//! `docs/adr/0005-numbering-plan-check.md` gives the reasons, and a differential test
//! (`tests` below) holds this to the crate's answer over every region's example numbers and
//! random numbers around them.
//!
//! What is restated, step by step (the crate's `parser::parse_with`, `parser::helper`,
//! `validator`):
//! 1. the country code: the shortest 1 to 3 digit prefix that is a known code;
//! 2. the region whose leading digits (or, without them, whose number types) match;
//! 3. national prefix and carrier code stripped as the region's parsing rule says, kept
//!    only if the rest is not too short;
//! 4. valid when, for the region found again from that national number, the general
//!    pattern and one number type (fixed line, mobile, toll free, ...) match.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, OnceLock};

use phonenumber::metadata::{Descriptor, Metadata, DATABASE};
use regex::{Regex, RegexBuilder};

/// Longest national significant number, and shortest (libphonenumber's bounds).
const MAX_NSN: usize = 17;
const MIN_NSN: usize = 2;

/// Every country code with its regions, compiled on first use of the code.
static PLAN: LazyLock<HashMap<u16, OnceLock<Arc<[Region]>>>> = LazyLock::new(|| {
    let mut codes = HashMap::new();
    for meta in DATABASE.iter() {
        codes
            .entry(meta.country_code())
            .or_insert_with(OnceLock::new);
    }
    codes
});

/// Whether `e164` (`+` and digits, shape already checked) is a valid number of its country.
pub(crate) fn in_plan(e164: &str) -> bool {
    let Some(digits) = e164.strip_prefix('+') else {
        return false;
    };
    if digits.len() <= MIN_NSN || digits.starts_with('0') {
        return false;
    }
    let Some((regions, national)) = (1..=3).find_map(|len| {
        let code: u16 = digits.get(..len)?.parse().ok()?;
        let regions = regions_of(code)?;
        Some((regions, &digits[len..]))
    }) else {
        return false;
    };
    let trimmed = national.trim_start_matches('0');
    let first = source_for(&regions, trimmed);
    // Borrowed from `e164` unless a region's rule rewrites it.
    let national = match first {
        Some((region, _)) => {
            let potential = region.strip_national_prefix(national);
            if region.too_short(&potential) {
                Cow::Borrowed(national)
            } else {
                potential
            }
        }
        None => Cow::Borrowed(national),
    };
    if !(MIN_NSN..=MAX_NSN).contains(&national.len()) || !national_number_parses(&national) {
        return false;
    }
    // Most numbers come out of the parsing rules as they went in: the region found for them
    // then is the region for them now, and found valid already if that is how it was found.
    let found = if *national == *trimmed {
        first
    } else {
        source_for(&regions, &national)
    };
    found.is_some_and(|(r, valid)| valid || r.is_valid(&national))
}

/// What the crate's `NationalNumber` accepts: leading zeros, then a non-empty number below
/// 2^56.
fn national_number_parses(national: &str) -> bool {
    let rest = national.trim_start_matches('0');
    rest.parse::<u64>().is_ok_and(|v| v < 1 << 56)
}

/// Compiles the patterns of country code `code` now (with its regions' number types as one
/// alternation per length they allow) without matching anything: the regex
/// crate gives each pattern's match cache to the first thread that matches with it, and
/// every other thread takes a slower shared path (a lock per match), so the intake's thread,
/// not the one that starts the engine, should be the first to match.
pub(crate) fn compile(code: u16) {
    for region in regions_of(code).iter().flat_map(|r| r.iter()) {
        for &len in &region.general.lengths {
            let _ = region.types_of_length(usize::from(len));
        }
    }
}

fn regions_of(code: u16) -> Option<Arc<[Region]>> {
    let slot = PLAN.get(&code)?;
    Some(
        slot.get_or_init(|| {
            (DATABASE.by_code(&code).unwrap_or_default().into_iter())
                .map(Region::compile)
                .collect()
        })
        .clone(),
    )
}

/// The region a national number belongs to: the only one of its code, or the first whose
/// leading digits match (or, without leading digits, whose number types do); with whether
/// it was found that way, by the number being valid there.
fn source_for<'a>(regions: &'a [Region], national: &str) -> Option<(&'a Region, bool)> {
    if let [only] = regions {
        return only.id_parses.then_some((only, false));
    }
    regions.iter().find_map(|r| match &r.leading_digits {
        Some(re) => re.is_match(national).then_some((r, false)),
        None => r.is_valid(national).then_some((r, true)),
    })
}

/// A number-type pattern and the lengths it allows (none listed: any).
struct Pattern {
    /// Anchored at the start only, as the crate matches (`find`, then `start == 0`).
    re: Regex,
    lengths: Vec<u16>,
}

impl Pattern {
    fn compile(d: &Descriptor) -> Pattern {
        Pattern {
            re: anchored(d.national_number().as_str()),
            lengths: d.possible_length().to_vec(),
        }
    }

    fn is_match(&self, value: &str) -> bool {
        self.allows_length(value.len()) && self.re.is_match(value)
    }

    /// Whether its lengths allow `len`.
    fn allows_length(&self, len: usize) -> bool {
        let len = u16::try_from(len).unwrap_or(u16::MAX);
        self.lengths.is_empty() || self.lengths.contains(&len)
    }
}

/// One region's metadata, compiled.
struct Region {
    /// The crate answers "no region" for a sole region whose id it cannot parse.
    id_parses: bool,
    general: Pattern,
    general_local_lengths: Vec<u16>,
    /// Every number type the crate's `number_type` tries; any match makes a number valid.
    types: Vec<Pattern>,
    /// For each national number length up to [`MAX_NSN`], the patterns of the types that
    /// allow it as one alternation, matched in one pass; compiled on first use (`None`: one
    /// of them does not compile, so they are tried one by one).
    types_by_length: [OnceLock<Option<Regex>>; MAX_NSN + 1],
    leading_digits: Option<Regex>,
    national_prefix: Option<String>,
    /// Unanchored, as the crate uses it (captures and replacement depend on it).
    prefix_for_parsing: Option<Regex>,
    prefix_transform: Option<String>,
}

impl Region {
    fn compile(meta: &Metadata) -> Region {
        let d = meta.descriptors();
        let types = [
            d.premium_rate(),
            d.toll_free(),
            d.shared_cost(),
            d.voip(),
            d.personal_number(),
            d.pager(),
            d.uan(),
            d.voicemail(),
            d.fixed_line(),
            d.mobile(),
        ];
        Region {
            id_parses: meta.id() == "001" || meta.id().parse::<phonenumber::country::Id>().is_ok(),
            general: Pattern::compile(d.general()),
            general_local_lengths: d.general().possible_local_length().to_vec(),
            types: types.into_iter().flatten().map(Pattern::compile).collect(),
            types_by_length: Default::default(),
            leading_digits: meta.leading_digits().map(|r| anchored(r.as_str())),
            national_prefix: meta.national_prefix().map(str::to_owned),
            prefix_for_parsing: meta
                .national_prefix_for_parsing()
                .map(|r| build(r.as_str())),
            prefix_transform: meta.national_prefix_transform_rule().map(str::to_owned),
        }
    }

    /// The crate's `number_type(..) != Unknown`.
    fn is_valid(&self, national: &str) -> bool {
        self.general.is_match(national)
            && match self.types_of_length(national.len()) {
                Some(any) => any.is_match(national),
                None => self.types.iter().any(|t| t.is_match(national)),
            }
    }

    /// The alternation of the type patterns that allow length `len` (see
    /// `types_by_length`).
    fn types_of_length(&self, len: usize) -> Option<&Regex> {
        let slot = self.types_by_length.get(len)?;
        slot.get_or_init(|| {
            // Each pattern is anchored already (or one that matches nothing).
            let allowed: Vec<&str> = (self.types.iter())
                .filter(|t| t.allows_length(len))
                .map(|t| t.re.as_str())
                .collect();
            if allowed.is_empty() {
                return Some(never());
            }
            RegexBuilder::new(&allowed.join("|"))
                .ignore_whitespace(true)
                .build()
                .ok()
        })
        .as_ref()
    }

    /// The crate's `validator::length(.., Type::Unknown) == TooShort`.
    fn too_short(&self, national: &str) -> bool {
        let len = u16::try_from(national.len()).unwrap_or(u16::MAX);
        match self.general.lengths.first() {
            None => false,
            Some(&min) => !self.general_local_lengths.contains(&len) && len < min,
        }
    }

    /// The crate's `helper::national_number`, then its literal national prefix strip.
    fn strip_national_prefix<'a>(&self, national: &'a str) -> Cow<'a, str> {
        let out = self.parsing_rule(national);
        let Some(prefix) = &self.national_prefix else {
            return out;
        };
        match out {
            Cow::Borrowed(s) => Cow::Borrowed(s.strip_prefix(prefix.as_str()).unwrap_or(s)),
            Cow::Owned(s) => match s.strip_prefix(prefix.as_str()) {
                Some(rest) => Cow::Owned(rest.to_owned()),
                None => Cow::Owned(s),
            },
        }
    }

    fn parsing_rule<'a>(&self, national: &'a str) -> Cow<'a, str> {
        let Some(parsing) = &self.prefix_for_parsing else {
            return Cow::Borrowed(match &self.national_prefix {
                Some(p) => national.strip_prefix(p.as_str()).unwrap_or(national),
                None => national,
            });
        };
        let Some(caps) = parsing.captures(national) else {
            return Cow::Borrowed(national);
        };
        let Some(whole) = caps.get(0).filter(|m| m.start() == 0) else {
            return Cow::Borrowed(national);
        };
        let viable = self.general.is_match(national);
        let last = caps.get(caps.len() - 1);
        match (&self.prefix_transform, last) {
            (Some(transform), Some(_)) => {
                let transformed = parsing.replace(national, transform.as_str());
                if viable && !self.general.is_match(&transformed) {
                    Cow::Borrowed(national)
                } else {
                    Cow::Owned(transformed.into_owned())
                }
            }
            _ => Cow::Borrowed(&national[whole.end()..]),
        }
    }
}

/// `source` matched from the first character only: the leftmost match starts at 0 exactly
/// when an anchored one exists.
fn anchored(source: &str) -> Regex {
    build(&format!("^(?:{source})"))
}

/// The crate compiles every pattern with whitespace ignored.
fn build(source: &str) -> Regex {
    match RegexBuilder::new(source).ignore_whitespace(true).build() {
        Ok(re) => re,
        // The crate compiled the same text when it loaded its metadata; a pattern it could
        // not compile matches nothing, as the crate's lookup would fail.
        Err(_) => never(),
    }
}

fn never() -> Regex {
    static NEVER: LazyLock<Regex> = LazyLock::new(|| match Regex::new(r"[^\s\S]") {
        Ok(re) => re,
        Err(e) => unreachable!("a constant pattern: {e}"),
    });
    NEVER.clone()
}

#[cfg(test)]
mod tests;
