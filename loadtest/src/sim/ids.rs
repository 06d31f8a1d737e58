//! Message ids: the process-wide counter every carrier draws from, the forms an id is spelt
//! in ([`IdFormat`]), and how a receipt may spell the same id differently from
//! `submit_sm_resp` ([`IdSpelling`]), as real SMSCs do (hex in the response and decimal in the
//! receipt, other letter case, leading zeros dropped).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::{Deserialize, Serialize};

/// Process-wide message-id counter, so ids are unique across carriers and simulators.
static NEXT_MESSAGE_NUMBER: AtomicU64 = AtomicU64::new(1);

/// A fresh message number; spell it with [`IdFormat::format`].
pub(crate) fn next_message_number() -> u64 {
    NEXT_MESSAGE_NUMBER.fetch_add(1, Relaxed)
}

/// How message ids in `submit_sm_resp` (and the receipts) are spelt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdFormat {
    /// Lowercase hexadecimal, zero-padded to 8 digits (`0000002a`).
    #[default]
    Hex,
    /// Plain decimal (`42`).
    Decimal,
    /// A version-4-shaped UUID derived from the number (`8c1f...-4...-8000-00000000002a`);
    /// the low 62 bits are the number, so ids stay unique.
    Uuid,
}

impl IdFormat {
    pub fn format(self, n: u64) -> String {
        match self {
            IdFormat::Hex => format!("{n:08x}"),
            IdFormat::Decimal => n.to_string(),
            IdFormat::Uuid => {
                let high = (splitmix64(n) & !0xF000) | 0x4000;
                let low = (n & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000;
                uuid::Uuid::from_u64_pair(high, low).to_string()
            }
        }
    }

    /// Parses `hex`, `decimal` or `uuid`, case-insensitively.
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "hex" => Ok(IdFormat::Hex),
            "decimal" => Ok(IdFormat::Decimal),
            "uuid" => Ok(IdFormat::Uuid),
            _ => anyhow::bail!("unknown id format {s:?} (hex, decimal or uuid)"),
        }
    }
}

/// How one carrier spells a message number in `submit_sm_resp` and in its receipts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct IdSpelling {
    pub response: IdFormat,
    /// `None`: the receipt uses the response's form.
    pub receipt: Option<IdFormat>,
    pub receipt_uppercase: bool,
    pub receipt_strip_leading_zeros: bool,
}

impl IdSpelling {
    /// The id in `submit_sm_resp`.
    pub fn response_id(&self, n: u64) -> String {
        self.response.format(n)
    }

    /// The id in the receipt (text `id:` and `receipted_message_id`).
    pub fn receipt_id(&self, n: u64) -> String {
        let mut id = self.receipt.unwrap_or(self.response).format(n);
        if self.receipt_strip_leading_zeros {
            let trimmed = id.trim_start_matches('0');
            id = if trimmed.is_empty() {
                "0".to_string()
            } else {
                trimmed.to_string()
            };
        }
        if self.receipt_uppercase {
            id.make_ascii_uppercase();
        }
        id
    }
}

/// A bijective 64-bit mix (SplitMix64's finaliser), so UUIDs do not look sequential.
pub(crate) fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_formats() {
        assert_eq!(IdFormat::Hex.format(42), "0000002a");
        assert_eq!(IdFormat::Decimal.format(42), "42");
        let u = IdFormat::Uuid.format(42);
        let parsed = uuid::Uuid::parse_str(&u).unwrap();
        assert_eq!(parsed.get_version_num(), 4);
        assert!(u.ends_with("-8000-00000000002a"), "{u}");
        assert_ne!(IdFormat::Uuid.format(43), u);
        assert_eq!(IdFormat::parse("UUID").unwrap(), IdFormat::Uuid);
        assert!(IdFormat::parse("base64").is_err());
    }

    #[test]
    fn receipts_spell_ids_their_own_way() {
        let vonage = IdSpelling {
            response: IdFormat::Hex,
            receipt: Some(IdFormat::Decimal),
            ..IdSpelling::default()
        };
        assert_eq!(vonage.response_id(255), "000000ff");
        assert_eq!(vonage.receipt_id(255), "255");
        let shouting = IdSpelling {
            receipt_uppercase: true,
            receipt_strip_leading_zeros: true,
            ..IdSpelling::default()
        };
        assert_eq!(shouting.receipt_id(255), "FF");
        assert_eq!(IdSpelling::default().receipt_id(255), "000000ff");
    }

    #[test]
    fn numbers_are_unique() {
        assert_ne!(next_message_number(), next_message_number());
    }
}
