//! Longest-prefix and exact-number tables over E.164 digits.
//!
//! Role: the in-memory form of the operator tables, built once and then only read.
//!
//! Layout: per prefix length (1 to 15 digits) one sorted `Vec<u64>` of prefixes, a
//! parallel `Vec<T>` of values, and a bucket index over the key range that narrows each
//! binary search to a handful of keys. A lookup probes the non-empty lengths, from the
//! longest that fits the number down to one digit: at most 15 probes, none allocating.
//!
//! Measured on 1,000,000 random 4 to 9 digit prefixes with `T` a `u16` operator id
//! (`engine/benches/router.rs`, three runs): 10.7 bytes per prefix and 37 to 42 ns per
//! lookup. A `HashMap<(u8, u64), u16>` with a fast hash took 36 to 39 ns but 45.9 bytes per
//! prefix (24-byte slots plus a control byte, at most 7/8 full, power-of-two growth); plain
//! binary search without the index took 190 ns. Tables are swapped whole on reload, so two
//! are briefly resident: at equal speed the smaller layout is the one picked.
//!
//! A number's digits, read as an integer, identify it: E.164 numbers and prefixes never
//! start with 0, so no length needs storing beside the value.

use super::number::{Msisdn, POW10};

/// An E.164 prefix: 1 to 15 digits, the first not zero (a country code starts it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix {
    len: u8,
    value: u64,
}

/// Why a prefix is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    #[error("empty prefix")]
    Empty,
    #[error("more than 15 digits")]
    TooLong,
    #[error("not all digits")]
    NotDigits,
    #[error("starts with 0 (a prefix starts with a country code)")]
    LeadingZero,
}

impl Prefix {
    /// Digits with or without a leading `+`.
    pub fn parse(s: &str) -> Result<Prefix, PrefixError> {
        let digits = s.strip_prefix('+').unwrap_or(s).as_bytes();
        match digits {
            [] => Err(PrefixError::Empty),
            d if !d.iter().all(u8::is_ascii_digit) => Err(PrefixError::NotDigits),
            d if d.len() > 15 => Err(PrefixError::TooLong),
            [b'0', ..] => Err(PrefixError::LeadingZero),
            d => Ok(Prefix {
                len: d.len() as u8,
                value: d.iter().fold(0, |acc, b| acc * 10 + u64::from(b - b'0')),
            }),
        }
    }

    /// Digits without `+`.
    pub fn digits(&self) -> String {
        self.value.to_string()
    }

    /// Number of digits, 1 to 15.
    pub fn digit_count(&self) -> u8 {
        self.len
    }

    /// Whether `n` starts with this prefix.
    pub fn matches(&self, n: &Msisdn) -> bool {
        self.len <= n.digit_count() && n.prefix(self.len) == self.value
    }

    /// The prefix spanning all of `n`.
    pub fn of_number(n: &Msisdn) -> Prefix {
        Prefix {
            len: n.digit_count(),
            value: n.value(),
        }
    }
}

/// Sorted keys with their values; a lookup is one binary search.
#[derive(Debug, Clone)]
struct Sorted<T> {
    keys: Vec<u64>,
    values: Vec<T>,
    /// Buckets of the key space narrow each binary search to a few keys: bucket
    /// `(key - base) >> shift` holds `keys[index[b]..index[b + 1]]`. Empty for small tables.
    index: Vec<u32>,
    base: u64,
    shift: u32,
}

/// Keys per index bucket, on average over the key range.
const KEYS_PER_BUCKET: usize = 4;

impl<T> Sorted<T> {
    const fn new() -> Self {
        Sorted {
            keys: Vec::new(),
            values: Vec::new(),
            index: Vec::new(),
            base: 0,
            shift: 0,
        }
    }

    /// Buckets the key range so that a bucket holds about [`KEYS_PER_BUCKET`] keys when keys
    /// are spread evenly; clustered keys make fuller buckets, searched in O(log) as before.
    fn build_index(&mut self) {
        let n = self.keys.len();
        let (Some(&first), Some(&last)) = (self.keys.first(), self.keys.last()) else {
            return;
        };
        if n < 4 * KEYS_PER_BUCKET || u32::try_from(n).is_err() {
            return;
        }
        let q = (last - first) / (n / KEYS_PER_BUCKET) as u64;
        self.base = first;
        self.shift = u64::BITS - q.leading_zeros();
        let buckets = ((last - first) >> self.shift) as usize + 1;
        self.index = Vec::with_capacity(buckets + 1);
        let mut i = 0;
        for b in 0..=buckets as u64 {
            while self
                .keys
                .get(i)
                .is_some_and(|k| (k - first) >> self.shift < b)
            {
                i += 1;
            }
            self.index.push(i as u32);
        }
    }

    /// `entries` sorted by key; of equal keys the last wins.
    fn from_sorted(entries: impl Iterator<Item = (u64, T)>) -> Self {
        let mut s = Sorted::new();
        for (k, v) in entries {
            if s.keys.last() == Some(&k) {
                s.values.pop();
            } else {
                s.keys.push(k);
            }
            s.values.push(v);
        }
        s.keys.shrink_to_fit();
        s.values.shrink_to_fit();
        s.build_index();
        s
    }

    fn get(&self, key: u64) -> Option<&T> {
        if self.index.is_empty() {
            let i = self.keys.binary_search(&key).ok()?;
            return self.values.get(i);
        }
        let b = usize::try_from(key.checked_sub(self.base)? >> self.shift).ok()?;
        let (&lo, &hi) = (self.index.get(b)?, self.index.get(b + 1)?);
        let (lo, hi) = (lo as usize, hi as usize);
        let i = self.keys.get(lo..hi)?.binary_search(&key).ok()?;
        self.values.get(lo + i)
    }

    fn heap_bytes(&self) -> usize {
        self.keys.capacity() * size_of::<u64>()
            + self.values.capacity() * size_of::<T>()
            + self.index.capacity() * size_of::<u32>()
    }
}

/// Longest-prefix table of E.164 prefixes.
#[derive(Debug, Clone)]
pub struct PrefixTable<T> {
    /// Index `len - 1`: the prefixes of that many digits.
    by_len: [Sorted<T>; 15],
    /// Lengths that have prefixes, longest first.
    lengths: Vec<u8>,
}

impl<T> Default for PrefixTable<T> {
    fn default() -> Self {
        PrefixTable {
            by_len: [const { Sorted::new() }; 15],
            lengths: Vec::new(),
        }
    }
}

impl<T> PrefixTable<T> {
    /// Builds from entries in any order; of two equal prefixes the later entry wins.
    pub fn from_entries(mut entries: Vec<(Prefix, T)>) -> Self {
        entries.sort_by_key(|(p, _)| *p); // stable: equal prefixes keep their order
        let mut t = PrefixTable::default();
        let mut rest = entries.into_iter().peekable();
        while let Some((first, _)) = rest.peek() {
            let len = first.len;
            let run = std::iter::from_fn(|| rest.next_if(|(p, _)| p.len == len));
            t.by_len[usize::from(len - 1)] = Sorted::from_sorted(run.map(|(p, v)| (p.value, v)));
            t.lengths.push(len);
        }
        t.lengths.reverse();
        t
    }

    /// The value of the longest prefix of `n`, if any.
    pub fn longest(&self, n: &Msisdn) -> Option<&T> {
        self.lengths
            .iter()
            .filter(|&&l| l <= n.digit_count())
            .find_map(|&l| self.by_len[usize::from(l - 1)].get(n.prefix(l)))
    }

    /// Number of prefixes.
    pub fn len(&self) -> usize {
        self.by_len.iter().map(|s| s.keys.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.lengths.is_empty()
    }

    /// Bytes held on the heap by the table.
    pub fn heap_bytes(&self) -> usize {
        self.by_len.iter().map(Sorted::heap_bytes).sum::<usize>() + self.lengths.capacity()
    }
}

/// Exact-match table of full E.164 numbers (the porting overrides).
#[derive(Debug, Clone)]
pub struct NumberTable<T>(Sorted<T>);

impl<T> Default for NumberTable<T> {
    fn default() -> Self {
        NumberTable(Sorted::new())
    }
}

impl<T> NumberTable<T> {
    /// Builds from entries in any order; of two equal numbers the later entry wins.
    pub fn from_entries(mut entries: Vec<(Msisdn, T)>) -> Self {
        entries.sort_by_key(|(n, _)| n.value());
        NumberTable(Sorted::from_sorted(
            entries.into_iter().map(|(n, v)| (n.value(), v)),
        ))
    }

    pub fn get(&self, n: &Msisdn) -> Option<&T> {
        if self.0.keys.is_empty() {
            return None;
        }
        self.0.get(n.value())
    }

    pub fn len(&self) -> usize {
        self.0.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.keys.is_empty()
    }

    /// Bytes held on the heap by the table.
    pub fn heap_bytes(&self) -> usize {
        self.0.heap_bytes()
    }
}

// 10^15 must fit: the longest prefix of the longest number.
const _: () = assert!(POW10[15] < u64::MAX / 10);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> Prefix {
        Prefix::parse(s).expect("prefix")
    }
    fn m(s: &str) -> Msisdn {
        Msisdn::parse_shape(s).expect("shape")
    }

    #[test]
    fn prefix_forms() {
        assert_eq!(p("+44"), p("44"));
        assert_eq!(p("+447700").digits(), "447700");
        assert_eq!(Prefix::parse(""), Err(PrefixError::Empty));
        assert_eq!(Prefix::parse("+"), Err(PrefixError::Empty));
        assert_eq!(Prefix::parse("044"), Err(PrefixError::LeadingZero));
        assert_eq!(Prefix::parse("4x"), Err(PrefixError::NotDigits));
        assert_eq!(Prefix::parse("++44"), Err(PrefixError::NotDigits));
        assert_eq!(Prefix::parse("1234567890123456"), Err(PrefixError::TooLong));
    }

    #[test]
    fn longest_prefix_wins() {
        let t = PrefixTable::from_entries(vec![
            (p("44"), "uk"),
            (p("4477"), "uk-mobile"),
            (p("447700"), "uk-test"),
        ]);
        assert_eq!(t.longest(&m("+447700900123")), Some(&"uk-test"));
        assert_eq!(t.longest(&m("+447712345678")), Some(&"uk-mobile"));
        assert_eq!(t.longest(&m("+442071234567")), Some(&"uk"));
        assert_eq!(t.longest(&m("+8613800138000")), None);
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn a_prefix_longer_than_the_number_does_not_match() {
        let t = PrefixTable::from_entries(vec![(p("1234567"), 1), (p("12345670"), 2)]);
        assert_eq!(t.longest(&m("+1234567")), Some(&1));
        assert_eq!(t.longest(&m("+12345670")), Some(&2));
    }

    #[test]
    fn the_later_of_equal_entries_wins() {
        let t = PrefixTable::from_entries(vec![(p("44"), 1), (p("33"), 5), (p("+44"), 2)]);
        assert_eq!(t.longest(&m("+447700900123")), Some(&2));
        assert_eq!(t.len(), 2);
        let n = NumberTable::from_entries(vec![(m("+447700900123"), 1), (m("+447700900123"), 2)]);
        assert_eq!(n.get(&m("+447700900123")), Some(&2));
        assert_eq!(n.get(&m("+447700900124")), None);
        assert_eq!(n.len(), 1);
    }

    proptest! {
        /// Large enough tables to be indexed find exactly the keys they hold, with keys
        /// clustered (two ranges far apart) as real numbering is.
        #[test]
        fn indexed_lookups_find_exactly_the_keys_held(
            low in proptest::collection::vec(4_470_000_000u64..4_470_100_000, 0..300),
            high in proptest::collection::vec(8_613_800_000_000u64..8_613_900_000_000, 16..300),
            probes in proptest::collection::vec(any::<u16>(), 50),
        ) {
            let all: Vec<u64> = low.iter().chain(&high).copied().collect();
            let numbers: Vec<Msisdn> =
                all.iter().map(|v| m(&format!("+{v}"))).collect();
            let t = NumberTable::from_entries(numbers.iter().map(|&n| (n, n.value())).collect());
            prop_assert!(!t.0.index.is_empty());
            let held: std::collections::HashSet<u64> = all.iter().copied().collect();
            prop_assert_eq!(t.len(), held.len());
            for &v in &all {
                prop_assert_eq!(t.get(&m(&format!("+{v}"))), Some(&v));
            }
            for p in probes {
                // Neighbours of held keys, and keys outside the range on either side.
                let v = all[usize::from(p) % all.len()];
                for probe in [v - 1, v + 1, 4_469_999_999, 8_613_900_000_001] {
                    let want = held.contains(&probe).then_some(probe);
                    prop_assert_eq!(t.get(&m(&format!("+{probe}"))).copied(), want);
                }
            }
        }

        /// The table agrees with a brute-force scan over the same prefixes.
        #[test]
        fn matches_brute_force(
            prefixes in proptest::collection::vec("[1-9][0-9]{0,8}", 1..500),
            numbers in proptest::collection::vec("[1-9][0-9]{6,14}", 1..20),
        ) {
            let t = PrefixTable::from_entries(
                prefixes.iter().enumerate().map(|(i, s)| (p(s), i)).collect(),
            );
            for number in numbers {
                let n = m(&format!("+{number}"));
                // Equal prefixes: the later entry wins, so the highest index.
                let brute = prefixes.iter().enumerate()
                    .filter(|(_, s)| number.starts_with(s.as_str()))
                    .max_by_key(|(i, s)| (s.len(), *i))
                    .map(|(i, _)| i);
                prop_assert_eq!(t.longest(&n).copied(), brute);
            }
        }

        /// Numbers sharing leading digits with the prefixes (the random ones mostly miss).
        #[test]
        fn matches_brute_force_on_near_misses(
            prefixes in proptest::collection::vec("4[47][0-9]{0,5}", 1..100),
            numbers in proptest::collection::vec("4[47][0-9]{5,11}", 1..20),
        ) {
            let t = PrefixTable::from_entries(
                prefixes.iter().enumerate().map(|(i, s)| (p(s), i)).collect(),
            );
            for number in numbers {
                let n = m(&format!("+{number}"));
                let brute = prefixes.iter().enumerate()
                    .filter(|(_, s)| number.starts_with(s.as_str()))
                    .max_by_key(|(i, s)| (s.len(), *i))
                    .map(|(i, _)| i);
                prop_assert_eq!(t.longest(&n).copied(), brute);
                let via_matches = prefixes.iter().enumerate()
                    .filter(|(_, s)| p(s).matches(&n))
                    .max_by_key(|(i, s)| (s.len(), *i))
                    .map(|(i, _)| i);
                prop_assert_eq!(via_matches, brute);
            }
        }
    }
}
