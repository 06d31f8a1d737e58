//! Destination number -> operator -> ordered route of carriers. Pure and table driven.

use std::collections::HashMap;

use crate::config::{CarrierConfig, RoutingConfig};

/// Index of a carrier in the configuration's carrier list.
pub type CarrierId = usize;

/// An E.164 number reduced to its digits, checked for shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Msisdn {
    value: u64,
    len: u8,
}

impl Msisdn {
    /// `+` followed by 7 to 15 digits, the first not zero (E.164 shape).
    pub fn parse(s: &str) -> Option<Msisdn> {
        let digits = s.strip_prefix('+')?;
        let b = digits.as_bytes();
        if !(7..=15).contains(&b.len()) || b[0] == b'0' || !b.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let value = b.iter().fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0'));
        Some(Msisdn {
            value,
            len: b.len() as u8,
        })
    }

    /// Digits without `+`, as SMPP sends them with TON international.
    pub fn digits(&self) -> String {
        format!("{:0width$}", self.value, width = usize::from(self.len))
    }

    fn prefix(&self, len: u8) -> u64 {
        self.value / 10u64.pow(u32::from(self.len - len))
    }
}

/// Longest-prefix table of E.164 prefixes.
#[derive(Debug, Clone, Default)]
pub struct PrefixTable<T> {
    /// Keyed by (prefix length, prefix value).
    entries: HashMap<(u8, u64), T>,
    max_len: u8,
}

impl<T> PrefixTable<T> {
    pub fn new() -> Self {
        Self {
            entries: HashMap::new(),
            max_len: 0,
        }
    }

    /// Adds a prefix given as digits (no `+`). Returns false for a malformed prefix.
    pub fn insert(&mut self, digits: &str, value: T) -> bool {
        if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
        let v = digits
            .bytes()
            .fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0'));
        let len = digits.len() as u8;
        self.entries.insert((len, v), value);
        self.max_len = self.max_len.max(len);
        true
    }

    /// The value of the longest prefix of `n`, if any.
    pub fn longest(&self, n: &Msisdn) -> Option<&T> {
        (1..=self.max_len.min(n.len))
            .rev()
            .find_map(|l| self.entries.get(&(l, n.prefix(l))))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Why a destination has no route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoRoute {
    /// Not an E.164 number.
    InvalidNumber,
    /// No operator matched and no default route is configured.
    NoRoute,
}

impl NoRoute {
    pub fn code(self) -> &'static str {
        match self {
            NoRoute::InvalidNumber => "invalid_number",
            NoRoute::NoRoute => "no_route",
        }
    }
}

/// The routing table built from configuration.
#[derive(Debug, Clone)]
pub struct Router {
    prefixes: PrefixTable<usize>,
    /// Per operator, carriers in order of preference.
    routes: Vec<Vec<CarrierId>>,
    default_route: Vec<CarrierId>,
}

impl Router {
    /// Builds from validated configuration (unknown names were rejected there).
    pub fn new(routing: &RoutingConfig, carriers: &[CarrierConfig]) -> Router {
        let id = |name: &String| carriers.iter().position(|c| &c.name == name);
        let mut op_index = HashMap::new();
        let mut routes = Vec::new();
        for (op, route) in &routing.operators {
            op_index.insert(op.as_str(), routes.len());
            routes.push(route.iter().filter_map(id).collect());
        }
        let mut prefixes = PrefixTable::new();
        for (prefix, op) in &routing.prefixes {
            if let (Some(digits), Some(&i)) = (prefix.strip_prefix('+'), op_index.get(op.as_str()))
            {
                prefixes.insert(digits, i);
            }
        }
        let default_route = routing.default_route.iter().filter_map(id).collect();
        Router {
            prefixes,
            routes,
            default_route,
        }
    }

    /// The carriers for `destination`, primary first.
    pub fn route(&self, destination: &str) -> Result<(Msisdn, &[CarrierId]), NoRoute> {
        let n = Msisdn::parse(destination).ok_or(NoRoute::InvalidNumber)?;
        let route = match self.prefixes.longest(&n) {
            Some(&op) => &self.routes[op],
            None => &self.default_route,
        };
        if route.is_empty() {
            return Err(NoRoute::NoRoute);
        }
        Ok((n, route))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn msisdn_shape() {
        assert_eq!(
            Msisdn::parse("+447700900123").map(|m| m.digits()),
            Some("447700900123".into())
        );
        for bad in [
            "447700900123",
            "+0447700900",
            "+44 7700",
            "+123456",
            "+1234567890123456",
            "+",
        ] {
            assert!(Msisdn::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn longest_prefix_wins() {
        let mut t = PrefixTable::new();
        t.insert("44", "uk");
        t.insert("4477", "uk-mobile");
        t.insert("447700", "uk-test");
        let m = |s| Msisdn::parse(s).expect("valid");
        assert_eq!(t.longest(&m("+447700900123")), Some(&"uk-test"));
        assert_eq!(t.longest(&m("+447712345678")), Some(&"uk-mobile"));
        assert_eq!(t.longest(&m("+442071234567")), Some(&"uk"));
        assert_eq!(t.longest(&m("+8613800138000")), None);
    }

    proptest! {
        /// The table agrees with a brute-force scan over the same prefixes.
        #[test]
        fn matches_brute_force(
            prefixes in proptest::collection::vec("[1-9][0-9]{0,6}", 1..50),
            number in "[1-9][0-9]{6,14}",
        ) {
            let mut t = PrefixTable::new();
            for (i, p) in prefixes.iter().enumerate() { t.insert(p, i); }
            let n = Msisdn::parse(&format!("+{number}")).expect("shape");
            let brute = prefixes.iter().enumerate()
                .filter(|(_, p)| number.starts_with(p.as_str()))
                .max_by_key(|(i, p)| (p.len(), *i))
                .map(|(_, p)| p.clone());
            let got = t.longest(&n).map(|&i| prefixes[i].clone());
            prop_assert_eq!(got, brute);
        }
    }
}
