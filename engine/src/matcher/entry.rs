//! One notification awaiting its receipts, held compactly: the matcher keeps up to millions of
//! them for as long as the receipt timeout (two days by default), so each byte here counts a
//! megabyte per million. What a status needs is kept in a form it can be rebuilt from exactly
//! when the notification is settled:
//!
//! - an event id in UUID form as its 16 bytes, one of at most 16 bytes in place, any other
//!   with the strings;
//! - the transaction id, the masked destination (its leading `+` and run of `*` as a flag and
//!   a count) and the message ids as the submit responses spelled them, packed one after the
//!   other, each after its length, in place when they fit (the usual case) or else in one
//!   allocation;
//! - `occurred_at` as unix nanoseconds and its offset;
//! - the carrier as a position in the matcher's table of (carrier, name) pairs;
//! - what few notifications have (the notification kept for receipt failover, an
//!   `occurred_at` beyond the nanosecond range) behind one optional box.

use pigeon_smpp::receipt::ReceiptState;
use time::{OffsetDateTime, UtcOffset};
use tokio::time::Instant;

use crate::notification::{Meta, Notification};

/// Bytes of strings held in place. The usual transaction id (13 bytes), masked destination
/// tail (4) and message id (8 to 16), each after a length byte, take 28 to 36.
const INLINE: usize = 38;

/// [`Entry::event_kind`] values above the in-place lengths `0..=16`.
const EVENT_UUID_LOWER: u8 = 17;
const EVENT_UUID_UPPER: u8 = 18;
const EVENT_PACKED: u8 = 19;

/// As many as [`Entry::stars`] can count.
const STARS: &str = concat!(
    "****************************************************************",
    "****************************************************************",
    "****************************************************************",
    "***************************************************************",
);

const POSSIBLE_DUPLICATE: u8 = 1;
const MASK_PLUS: u8 = 2;
const HAS_ERROR_CODE: u8 = 4;

/// With receipt failover: when to give up on the carrier's receipts, and the notification to
/// send through the next carrier then.
pub(super) type Resubmit = (Instant, Box<Notification>);

/// What few notifications have.
#[derive(Debug)]
pub(super) struct Rare {
    pub resubmit: Option<Resubmit>,
    /// Order of acceptance, which breaks ties between equal failover times.
    pub seq: u64,
    /// `occurred_at` when it is beyond what [`Entry::occurred`] can hold.
    pub occurred_at: Option<OffsetDateTime>,
}

#[derive(Debug)]
pub(super) struct Entry {
    /// `occurred_at` in unix nanoseconds (offset in `offset`), unless `rare` holds it.
    occurred: i64,
    /// Receipt deadline, in nanoseconds from the matcher's base instant.
    pub deadline: i64,
    rare: Option<Box<Rare>>,
    /// The event id's UUID bytes, or the id itself (see `event_kind`).
    event: [u8; 16],
    segments: u32,
    /// Segments still without a final receipt.
    pub open: u32,
    /// Of the worst final state (with [`HAS_ERROR_CODE`]).
    error_code: u32,
    /// Position in the matcher's (carrier, name) table.
    pub carrier: u32,
    /// `occurred_at`'s offset: hours, minutes, seconds.
    offset: (i8, i8, i8),
    /// `0..=16`: the event id is that many bytes of `event`; else one of `EVENT_*`.
    event_kind: u8,
    flags: u8,
    /// Leading `*` of the masked destination (after its `+`, if [`MASK_PLUS`]).
    stars: u8,
    /// The worst final state reported so far.
    pub worst: Option<ReceiptState>,
    /// Length-prefixed: the event id if [`EVENT_PACKED`], the transaction id, the masked
    /// destination after its `+` and stars, then each message id.
    strings: Packed,
}

#[derive(Debug)]
enum Packed {
    Inline(u8, [u8; INLINE]),
    Heap(Box<[u8]>),
}

impl Entry {
    pub fn new(meta: Meta, carrier: u32, message_ids: &[String], deadline: i64) -> Entry {
        let Meta {
            event_id,
            transaction_id,
            occurred_at,
            masked,
            segments,
            possible_duplicate,
        } = meta;
        let (event_kind, event) = pack_event(&event_id);
        let (plus, stars, rest) = split_mask(&masked);
        let fields = (event_kind == EVENT_PACKED)
            .then_some(event_id.as_str())
            .into_iter()
            .chain([transaction_id.as_str(), rest])
            .chain(message_ids.iter().map(String::as_str));
        let (occurred, rare) = match i64::try_from(occurred_at.unix_timestamp_nanos()) {
            Ok(nanos) => (nanos, None),
            Err(_) => (
                0,
                Some(Box::new(Rare {
                    resubmit: None,
                    seq: 0,
                    occurred_at: Some(occurred_at),
                })),
            ),
        };
        let mut flags = 0;
        if possible_duplicate {
            flags |= POSSIBLE_DUPLICATE;
        }
        if plus {
            flags |= MASK_PLUS;
        }
        Entry {
            occurred,
            deadline,
            rare,
            event,
            segments,
            open: u32::try_from(message_ids.len()).unwrap_or(u32::MAX),
            error_code: 0,
            carrier,
            offset: occurred_at.offset().as_hms(),
            event_kind,
            flags,
            stars,
            worst: None,
            strings: pack(fields),
        }
    }

    /// Keeps `resubmit`, `seq` ordering it among equal failover times.
    pub fn set_resubmit(&mut self, resubmit: Resubmit, seq: u64) {
        let rare = self.rare.get_or_insert_with(|| {
            Box::new(Rare {
                resubmit: None,
                seq,
                occurred_at: None,
            })
        });
        rare.resubmit = Some(resubmit);
        rare.seq = seq;
    }

    pub fn resubmit(&self) -> Option<&Resubmit> {
        self.rare.as_ref().and_then(|r| r.resubmit.as_ref())
    }

    pub fn into_resubmit(self) -> Option<Resubmit> {
        self.rare.and_then(|r| r.resubmit)
    }

    /// Where this entry stands among the receipt failovers, if it has one.
    pub fn failover_key(&self) -> Option<(Instant, u64)> {
        let rare = self.rare.as_ref()?;
        rare.resubmit.as_ref().map(|(at, _)| (*at, rare.seq))
    }

    pub fn error_code(&self) -> Option<u32> {
        (self.flags & HAS_ERROR_CODE != 0).then_some(self.error_code)
    }

    /// Records a final state worse than any so far, with its error code.
    pub fn set_worst(&mut self, state: ReceiptState, error_code: Option<u32>) {
        self.worst = Some(state);
        self.error_code = error_code.unwrap_or(0);
        if error_code.is_some() {
            self.flags |= HAS_ERROR_CODE;
        } else {
            self.flags &= !HAS_ERROR_CODE;
        }
    }

    /// The message ids, one per segment, as the submit responses spelled them.
    pub fn message_ids(&self) -> Fields<'_> {
        let skip = if self.event_kind == EVENT_PACKED {
            3
        } else {
            2
        };
        let mut fields = self.fields();
        for _ in 0..skip {
            fields.skip_one();
        }
        fields
    }

    pub fn id_count(&self) -> usize {
        self.message_ids().count()
    }

    /// Whether it has one message id only (then it never collides with itself in the index).
    pub fn single(&self) -> bool {
        let mut ids = self.message_ids();
        ids.skip_one() && !ids.skip_one()
    }

    /// The [`Meta`] it was accepted with.
    pub fn meta(&self) -> Meta {
        let mut fields = self.fields();
        let event_id = match self.event_kind {
            EVENT_UUID_LOWER => format_uuid(&self.event, false),
            EVENT_UUID_UPPER => format_uuid(&self.event, true),
            EVENT_PACKED => fields.next().unwrap_or_default().to_owned(),
            len => String::from_utf8_lossy(self.event.get(..usize::from(len)).unwrap_or_default())
                .into_owned(),
        };
        let transaction_id = fields.next().unwrap_or_default().to_owned();
        let rest = fields.next().unwrap_or_default();
        let plus = if self.flags & MASK_PLUS != 0 { "+" } else { "" };
        let stars = STARS.get(..usize::from(self.stars)).unwrap_or_default();
        let mut masked = String::with_capacity(plus.len() + stars.len() + rest.len());
        masked.push_str(plus);
        masked.push_str(stars);
        masked.push_str(rest);
        Meta {
            event_id,
            transaction_id,
            occurred_at: self.occurred_at(),
            masked,
            segments: self.segments,
            possible_duplicate: self.flags & POSSIBLE_DUPLICATE != 0,
        }
    }

    fn occurred_at(&self) -> OffsetDateTime {
        if let Some(at) = self.rare.as_ref().and_then(|r| r.occurred_at) {
            return at;
        }
        // Cannot fail: any i64 of nanoseconds is within the years the crate supports, and the
        // offset came from a real `UtcOffset`.
        // In i64 arithmetic: i128 division is slow, and this runs for every status.
        const NANOS: i64 = 1_000_000_000;
        let (h, m, s) = self.offset;
        let nanos = u32::try_from(self.occurred.rem_euclid(NANOS)).unwrap_or(0);
        OffsetDateTime::from_unix_timestamp(self.occurred.div_euclid(NANOS))
            .and_then(|at| at.replace_nanosecond(nanos))
            .ok()
            .zip(UtcOffset::from_hms(h, m, s).ok())
            .and_then(|(at, offset)| at.checked_to_offset(offset))
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    fn fields(&self) -> Fields<'_> {
        Fields {
            rest: match &self.strings {
                Packed::Inline(len, bytes) => bytes.get(..usize::from(*len)).unwrap_or_default(),
                Packed::Heap(bytes) => bytes,
            },
        }
    }
}

/// The strings of an [`Entry`], in order.
#[derive(Debug, Clone)]
pub(super) struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    /// The next field's bytes.
    fn next_bytes(&mut self) -> Option<&'a [u8]> {
        let mut len = 0usize;
        let mut shift = 0;
        let mut used = 0;
        loop {
            let b = *self.rest.get(used)?;
            used += 1;
            len |= usize::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
        }
        let field = self.rest.get(used..used + len)?;
        self.rest = self.rest.get(used + len..)?;
        Some(field)
    }

    /// Passes over the next field; whether there was one.
    fn skip_one(&mut self) -> bool {
        self.next_bytes().is_some()
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        // Always valid: the bytes were whole `str`s.
        self.next_bytes()
            .map(|b| std::str::from_utf8(b).unwrap_or_default())
    }
}

fn pack<'a>(fields: impl Iterator<Item = &'a str> + Clone) -> Packed {
    let total: usize = fields.clone().map(|f| varint_len(f.len()) + f.len()).sum();
    if total <= INLINE {
        let mut bytes = [0; INLINE];
        let mut at = 0;
        write_fields(fields, |b| {
            if let Some(dst) = bytes.get_mut(at..at + b.len()) {
                dst.copy_from_slice(b);
            }
            at += b.len();
        });
        // `total` fits: it is at most INLINE.
        Packed::Inline(u8::try_from(total).unwrap_or(0), bytes)
    } else {
        let mut bytes = Vec::with_capacity(total);
        write_fields(fields, |b| bytes.extend_from_slice(b));
        Packed::Heap(bytes.into_boxed_slice())
    }
}

fn write_fields<'a>(fields: impl Iterator<Item = &'a str>, mut put: impl FnMut(&[u8])) {
    for f in fields {
        let mut len = f.len();
        while len >= 0x80 {
            put(&[(len & 0x7f) as u8 | 0x80]);
            len >>= 7;
        }
        put(&[len as u8]);
        put(f.as_bytes());
    }
}

fn varint_len(mut n: usize) -> usize {
    let mut bytes = 1;
    while n >= 0x80 {
        n >>= 7;
        bytes += 1;
    }
    bytes
}

/// The event id as a UUID (hyphenated, all hex letters of one case), or in place when it is
/// short enough; else it goes with the strings.
fn pack_event(id: &str) -> (u8, [u8; 16]) {
    if let Some((bytes, upper)) = parse_uuid(id) {
        let kind = if upper {
            EVENT_UUID_UPPER
        } else {
            EVENT_UUID_LOWER
        };
        return (kind, bytes);
    }
    let mut bytes = [0; 16];
    match (bytes.get_mut(..id.len()), u8::try_from(id.len())) {
        (Some(dst), Ok(len)) => {
            dst.copy_from_slice(id.as_bytes());
            (len, bytes)
        }
        _ => (EVENT_PACKED, bytes),
    }
}

/// The 16 bytes of a hyphenated UUID, and whether its letters are upper case; `None` for any
/// other spelling (mixed case included), which could not be written back the same.
fn parse_uuid(id: &str) -> Option<([u8; 16], bool)> {
    let s = id.as_bytes();
    if s.len() != 36 || [8, 13, 18, 23].iter().any(|&i| s.get(i) != Some(&b'-')) {
        return None;
    }
    let mut bytes = [0u8; 16];
    // Of every digit: its value, and bits for a lower and an upper case letter.
    let mut seen = 0;
    let digits = (s.iter().enumerate())
        .filter(|(i, _)| !matches!(i, 8 | 13 | 18 | 23))
        .map(|(_, c)| c);
    for (i, &c) in digits.enumerate() {
        let d = HEX[usize::from(c)];
        seen |= d;
        let byte = bytes.get_mut(i / 2)?;
        *byte = (*byte << 4) | (d & 0xf);
    }
    let upper = seen & HEX_UPPER != 0;
    (seen & HEX_INVALID == 0 && !(upper && seen & HEX_LOWER != 0)).then_some((bytes, upper))
}

const HEX_LOWER: u8 = 0x10;
const HEX_UPPER: u8 = 0x20;
const HEX_INVALID: u8 = 0x80;

/// Per byte: the value of a hex digit with [`HEX_LOWER`] or [`HEX_UPPER`] for a letter, or
/// [`HEX_INVALID`].
const HEX: [u8; 256] = {
    let mut t = [HEX_INVALID; 256];
    let mut c = 0;
    while c < 10 {
        t[b'0' as usize + c] = c as u8;
        c += 1;
    }
    let mut c = 0;
    while c < 6 {
        t[b'a' as usize + c] = (10 + c as u8) | HEX_LOWER;
        t[b'A' as usize + c] = (10 + c as u8) | HEX_UPPER;
        c += 1;
    }
    t
};

fn format_uuid(bytes: &[u8; 16], upper: bool) -> String {
    let digits = if upper {
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    let mut s = Vec::with_capacity(36);
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push(b'-');
        }
        s.push(digits[usize::from(b >> 4)]);
        s.push(digits[usize::from(b & 0xf)]);
    }
    // Hex digits and hyphens: always UTF-8.
    String::from_utf8(s).unwrap_or_default()
}

/// A masked destination as its leading `+`, the run of `*` after it (at most 255 of them) and
/// the rest: `+********0123` is `(true, 8, "0123")`.
fn split_mask(masked: &str) -> (bool, u8, &str) {
    let (plus, after) = match masked.strip_prefix('+') {
        Some(after) => (true, after),
        None => (false, masked),
    };
    let stars = after.bytes().take(255).take_while(|&b| b == b'*').count();
    // At most 255, and `*` is one byte.
    let rest = after.get(stars..).unwrap_or_default();
    (plus, u8::try_from(stars).unwrap_or(0), rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(event_id: &str, transaction_id: &str, masked: &str, at: OffsetDateTime) -> Meta {
        Meta {
            event_id: event_id.into(),
            transaction_id: transaction_id.into(),
            occurred_at: at,
            masked: masked.into(),
            segments: 3,
            possible_duplicate: true,
        }
    }

    fn round_trip(m: &Meta, ids: &[&str]) {
        let ids: Vec<String> = ids.iter().map(|s| (*s).to_owned()).collect();
        let e = Entry::new(m.clone(), 7, &ids, 0);
        let back = e.meta();
        assert_eq!(&back, m);
        // `OffsetDateTime`'s equality is the instant's: the offset must come back too.
        assert_eq!(back.occurred_at.offset(), m.occurred_at.offset());
        assert_eq!(e.message_ids().collect::<Vec<_>>(), ids);
        assert_eq!(e.id_count(), ids.len());
        assert_eq!(e.single(), ids.len() == 1);
        assert_eq!(e.carrier, 7);
    }

    #[test]
    fn what_a_status_is_made_of_comes_back_exactly() {
        let at = time::macros::datetime!(2025-03-30 01:59:59.123456789 +01:00);
        let long = "x".repeat(300);
        for event_id in [
            "0b4c1f7e-5d2a-4c8e-9f3b-2a6d8e1c4b7f",
            "0B4C1F7E-5D2A-4C8E-9F3B-2A6D8E1C4B7F",
            "0B4c1f7e-5d2a-4c8e-9f3b-2a6d8e1c4b7f",
            "01234567-8901-2345-6789-012345678901",
            "0b4c1f7e-5d2a-4c8e-9f3b-2a6d8e1c4b7",
            "0b4c1f7e-5d2a-4c8e-9f3b-2a6d8e1c4b7f0",
            "0b4c1f7e_5d2a-4c8e-9f3b-2a6d8e1c4b7f",
            "{b4c1f7e-5d2a-4c8e-9f3b-2a6d8e1c4b7f}",
            "0b4c1f7e-5d2a-4c8e-9f3b-2a6d8e1c4b7g",
            "0b4c1f7e-5d2a-4c8e-9f3b-2a6d8e1c-b7f",
            "0b4c1f7e-5d2a-4c8e-9f3b-2a6d8e1c4b\u{e9}",
            "",
            "e1",
            "evt-0123456789ab",
            "evt-0123456789abc",
            "événement",
            long.as_str(),
        ] {
            round_trip(
                &meta(event_id, "txn-000123456", "*******1234", at),
                &["0A1B2C3D"],
            );
        }
        for masked in [
            "",
            "+",
            "*",
            "+********0123",
            "*********8000",
            "123",
            "+*+*1",
            "**** 1234",
            &"*".repeat(300),
            &format!("+{}12", "*".repeat(256)),
        ] {
            round_trip(&meta("e1", "t1", masked, at), &["1"]);
        }
        for txn in ["", "txn-000123456", long.as_str(), "transaction ✓"] {
            round_trip(&meta("e1", txn, "+****0123", at), &["00ab", "00AC"]);
        }
        for ids in [
            &[][..],
            &["1"],
            &["0123456789abcdef"],
            &["0123456789abcdef0123"],
            &["a", "b", "c", "d"],
            &[" 0x1F ", "", long.as_str()],
        ] {
            round_trip(&meta("e1", "t1", "+****0123", at), ids);
        }
    }

    #[test]
    fn occurred_at_keeps_its_offset_and_nanoseconds_at_any_date() {
        use time::macros::{datetime, offset};
        for at in [
            OffsetDateTime::UNIX_EPOCH,
            datetime!(2025-06-01 12:00:00.000000001 UTC),
            datetime!(2025-06-01 12:00:00 -09:30),
            datetime!(2025-06-01 12:00:00 +14:00),
            datetime!(2025-06-01 12:00:00 UTC).to_offset(offset!(+25:59:59)),
            datetime!(2025-06-01 12:00:00 UTC).to_offset(offset!(-25:59:59)),
            // Beyond i64 nanoseconds either way: kept whole.
            datetime!(1600-01-01 00:00:00 +02:00),
            datetime!(2300-01-01 00:00:00.5 -05:00),
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(i64::MAX)).expect("max"),
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(i64::MIN)).expect("min"),
        ] {
            round_trip(&meta("e1", "t1", "+****0123", at), &["1"]);
        }
    }

    #[test]
    fn the_usual_notification_needs_no_allocation_of_its_own() {
        let ids = ["0123456789ABCDEF".to_owned()];
        let m = meta(
            "0b4c1f7e-5d2a-4c8e-9f3b-2a6d8e1c4b7f",
            "txn-000123456",
            "*******1234",
            OffsetDateTime::UNIX_EPOCH,
        );
        let e = Entry::new(m, 0, &ids, 0);
        assert!(matches!(e.strings, Packed::Inline(..)));
        assert!(e.rare.is_none());
    }

    #[test]
    fn the_worst_state_keeps_its_error_code_or_its_absence() {
        let ids = ["1".to_owned()];
        let mut e = Entry::new(meta("e", "t", "", OffsetDateTime::UNIX_EPOCH), 0, &ids, 0);
        assert_eq!(e.error_code(), None);
        e.set_worst(ReceiptState::Undeliverable, Some(0));
        assert_eq!(e.error_code(), Some(0));
        e.set_worst(ReceiptState::Rejected, None);
        assert_eq!(
            (e.worst, e.error_code()),
            (Some(ReceiptState::Rejected), None)
        );
    }
}
