//! The stored encoding of records and outbox statuses: compact binary, written by hand (no
//! serde: the API types skip empty fields, which a non-self-describing format cannot do).
//!
//! Every value opens with a format byte. Strings and lists are a varint length and their
//! items; integers are LEB128 varints (signed ones zigzag first); a state is one byte; a
//! time is its Unix seconds, its nanoseconds and its UTC offset in seconds, all varints, so
//! it reads back exactly as written. Optional fields are announced by a flags byte. A record's event id is
//! its key and is not repeated in the value.

use time::{OffsetDateTime, UtcOffset};

use super::{NotificationRecord, StoreError, TimelineEntry};
use crate::event::{State, StatusEvent};
use crate::notification::Origin;

/// Format byte of a record value.
const RECORD_V1: u8 = 1;
/// As [`RECORD_V1`], but only the record's first time is absolute: each later one is its
/// difference from the first ([`Times`]).
const RECORD_V2: u8 = 2;
/// Format byte of an outbox value.
const STATUS_V1: u8 = 1;

/// Every state, indexed by its stored byte. Append only: the byte is on disk.
const STATES: [State; 12] = [
    State::Received,
    State::Submitting,
    State::Accepted,
    State::Retrying,
    State::Delivered,
    State::Undelivered,
    State::Expired,
    State::Failed,
    State::Skipped,
    State::Rejected,
    State::Ambiguous,
    State::Unconfirmed,
];

fn state_byte(s: State) -> u8 {
    // Exhaustive: a new state fails to compile here until it has a byte.
    match s {
        State::Received => 0,
        State::Submitting => 1,
        State::Accepted => 2,
        State::Retrying => 3,
        State::Delivered => 4,
        State::Undelivered => 5,
        State::Expired => 6,
        State::Failed => 7,
        State::Skipped => 8,
        State::Rejected => 9,
        State::Ambiguous => 10,
        State::Unconfirmed => 11,
    }
}

/// Appends values to a buffer.
struct Out<'a>(&'a mut Vec<u8>);

impl Out<'_> {
    fn u8(&mut self, b: u8) {
        self.0.push(b);
    }

    fn uvar(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn ivar(&mut self, v: i64) {
        self.uvar(((v << 1) ^ (v >> 63)) as u64);
    }

    fn uvar128(&mut self, mut v: u128) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn str(&mut self, s: &str) {
        self.uvar(s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
    }

    fn opt_str(&mut self, s: &Option<String>) {
        if let Some(s) = s {
            self.str(s);
        }
    }

    fn strs(&mut self, v: &[String]) {
        self.uvar(v.len() as u64);
        for s in v {
            self.str(s);
        }
    }

    fn time(&mut self, t: OffsetDateTime) {
        self.ivar(t.unix_timestamp());
        self.uvar(u64::from(t.nanosecond()));
        self.ivar(i64::from(t.offset().whole_seconds()));
    }

    fn state(&mut self, s: State) {
        self.u8(state_byte(s));
    }
}

/// Reads values back; every failure names the key.
struct In<'a> {
    key: &'a [u8],
    at: &'a [u8],
}

impl<'a> In<'a> {
    fn corrupt(&self, why: &str) -> StoreError {
        StoreError::Corrupt {
            key: super::keys::printable(self.key),
            why: why.to_owned(),
        }
    }

    fn u8(&mut self) -> Result<u8, StoreError> {
        let (&b, rest) = self
            .at
            .split_first()
            .ok_or_else(|| self.corrupt("value ends early"))?;
        self.at = rest;
        Ok(b)
    }

    fn uvar(&mut self) -> Result<u64, StoreError> {
        let v = self.uvar128()?;
        u64::try_from(v).map_err(|_| self.corrupt("varint too long"))
    }

    fn ivar(&mut self) -> Result<i64, StoreError> {
        let u = self.uvar()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    fn uvar128(&mut self) -> Result<u128, StoreError> {
        let mut v = 0u128;
        for shift in (0..128).step_by(7) {
            let b = self.u8()?;
            v |= u128::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.corrupt("varint too long"))
    }

    fn int<T: TryFrom<i64>>(&mut self) -> Result<T, StoreError> {
        let v = self.ivar()?;
        T::try_from(v).map_err(|_| self.corrupt("integer out of range"))
    }

    fn uint<T: TryFrom<u64>>(&mut self) -> Result<T, StoreError> {
        let v = self.uvar()?;
        T::try_from(v).map_err(|_| self.corrupt("integer out of range"))
    }

    fn str(&mut self) -> Result<String, StoreError> {
        let len: usize = self.uint()?;
        if len > self.at.len() {
            return Err(self.corrupt("string longer than the value"));
        }
        let (s, rest) = self.at.split_at(len);
        self.at = rest;
        String::from_utf8(s.to_vec()).map_err(|_| self.corrupt("string is not utf-8"))
    }

    fn skip_str(&mut self) -> Result<(), StoreError> {
        let len: usize = self.uint()?;
        self.at = self
            .at
            .get(len..)
            .ok_or_else(|| self.corrupt("string longer than the value"))?;
        Ok(())
    }

    fn opt_str(&mut self, present: bool) -> Result<Option<String>, StoreError> {
        if present {
            self.str().map(Some)
        } else {
            Ok(None)
        }
    }

    fn strs(&mut self) -> Result<Vec<String>, StoreError> {
        let n: usize = self.uint()?;
        // Each string takes at least its length byte: a bound before allocating.
        if n > self.at.len() {
            return Err(self.corrupt("list longer than the value"));
        }
        (0..n).map(|_| self.str()).collect()
    }

    fn time(&mut self) -> Result<OffsetDateTime, StoreError> {
        let secs = self.ivar()?;
        let nanos = self.uint()?;
        let offset = self.int()?;
        let offset =
            UtcOffset::from_whole_seconds(offset).map_err(|_| self.corrupt("bad utc offset"))?;
        OffsetDateTime::from_unix_timestamp(secs)
            .ok()
            .and_then(|t| t.replace_nanosecond(nanos).ok())
            .and_then(|t| t.checked_to_offset(offset))
            .ok_or_else(|| self.corrupt("time out of range"))
    }

    fn state(&mut self) -> Result<State, StoreError> {
        let b = self.u8()?;
        STATES
            .get(usize::from(b))
            .copied()
            .ok_or_else(|| self.corrupt("unknown state"))
    }

    fn end(&self) -> Result<(), StoreError> {
        if self.at.is_empty() {
            Ok(())
        } else {
            Err(self.corrupt("trailing bytes"))
        }
    }
}

fn flag(bit: u8, on: bool) -> u8 {
    if on {
        1 << bit
    } else {
        0
    }
}

fn has(flags: u8, bit: u8) -> bool {
    flags & (1 << bit) != 0
}

/// The times of one record ([`RECORD_V2`]): the first absolute (eleven bytes or so), each
/// later one as its difference from the first in nanoseconds, zigzag, shifted left by one
/// bit that says whether its UTC offset follows (otherwise it is the first's). A
/// notification's times lie within seconds of each other: four or five bytes each.
#[derive(Default)]
struct Times {
    /// The record's first time, and it in nanoseconds since the epoch.
    base: Option<(OffsetDateTime, i128)>,
}

impl Times {
    fn put(&mut self, o: &mut Out<'_>, t: OffsetDateTime) {
        let Some((base, base_nanos)) = self.base else {
            o.time(t);
            self.base = Some((t, t.unix_timestamp_nanos()));
            return;
        };
        // The difference of the two instants, as `t - base` but without its calendar
        // arithmetic (a record's times are a few seconds apart).
        let d = t.unix_timestamp_nanos() - base_nanos;
        let zigzag = ((d << 1) ^ (d >> 127)) as u128;
        let other_offset = t.offset() != base.offset();
        let v = (zigzag << 1) | u128::from(other_offset);
        // The same bytes either way; 64-bit arithmetic while the value fits.
        match u64::try_from(v) {
            Ok(v) => o.uvar(v),
            Err(_) => o.uvar128(v),
        }
        if other_offset {
            o.ivar(i64::from(t.offset().whole_seconds()));
        }
    }

    fn get(&mut self, i: &mut In<'_>) -> Result<OffsetDateTime, StoreError> {
        let Some((base, _)) = self.base else {
            let t = i.time()?;
            self.base = Some((t, 0));
            return Ok(t);
        };
        let v = i.uvar128()?;
        let zigzag = v >> 1;
        let d = ((zigzag >> 1) as i128) ^ -((zigzag & 1) as i128);
        let offset = if v & 1 == 1 {
            let secs = i.int()?;
            UtcOffset::from_whole_seconds(secs).map_err(|_| i.corrupt("bad utc offset"))?
        } else {
            base.offset()
        };
        let later = match i64::try_from(d) {
            // Within ±292 years: one 64-bit count of nanoseconds.
            Ok(d) => base.checked_add(time::Duration::nanoseconds(d)),
            Err(_) => {
                const NANOS: i128 = 1_000_000_000;
                i64::try_from(d.div_euclid(NANOS)).ok().and_then(|secs| {
                    // In 0..1e9: fits.
                    let nanos = d.rem_euclid(NANOS) as i32;
                    base.checked_add(time::Duration::new(secs, nanos))
                })
            }
        };
        later
            .and_then(|t| {
                if t.offset() == offset {
                    Some(t)
                } else {
                    t.checked_to_offset(offset)
                }
            })
            .ok_or_else(|| i.corrupt("time out of range"))
    }
}

/// Encodes a record (without its event id, the key) into `buf`, which it clears first.
pub(super) fn encode_record(r: &NotificationRecord, buf: &mut Vec<u8>) {
    buf.clear();
    let mut o = Out(buf);
    let mut times = Times::default();
    o.u8(RECORD_V2);
    o.u8(flag(0, r.transaction_id.is_some())
        | flag(1, r.destination.is_some())
        | flag(2, r.origin.is_some())
        | flag(3, r.carrier.is_some())
        | flag(4, r.reason.is_some())
        | flag(5, r.command_status.is_some())
        | flag(6, r.possible_duplicate)
        | flag(7, r.submitted_at.is_some()));
    o.state(r.state);
    o.opt_str(&r.transaction_id);
    o.opt_str(&r.destination);
    if let Some(origin) = r.origin {
        o.ivar(i64::from(origin.partition));
        o.ivar(origin.offset);
    }
    o.opt_str(&r.carrier);
    o.strs(&r.message_ids);
    o.opt_str(&r.reason);
    if let Some(c) = r.command_status {
        o.uvar(u64::from(c));
    }
    o.uvar(u64::from(r.segments));
    if let Some(t) = r.submitted_at {
        times.put(&mut o, t);
    }
    o.uvar(r.timeline.len() as u64);
    for e in &r.timeline {
        o.state(e.state);
        o.u8(flag(0, e.carrier.is_some())
            | flag(1, e.reason.is_some())
            | flag(2, e.detail.is_some())
            | flag(3, e.command_status.is_some())
            | flag(4, e.possible_duplicate)
            | flag(5, !e.message_ids.is_empty()));
        times.put(&mut o, e.at);
        o.opt_str(&e.carrier);
        o.opt_str(&e.reason);
        o.opt_str(&e.detail);
        if let Some(c) = e.command_status {
            o.uvar(u64::from(c));
        }
        if !e.message_ids.is_empty() {
            o.strs(&e.message_ids);
        }
    }
}

/// Decodes the record stored under `event_id`.
pub(super) fn decode_record(
    event_id: &str,
    value: &[u8],
) -> Result<NotificationRecord, StoreError> {
    let mut i = In {
        key: event_id.as_bytes(),
        at: value,
    };
    let mut times = match i.u8()? {
        // Every time absolute: read as if each were the first.
        RECORD_V1 => None,
        RECORD_V2 => Some(Times::default()),
        _ => return Err(i.corrupt("unknown record format")),
    };
    let mut time = |i: &mut In<'_>| match times.as_mut() {
        Some(times) => times.get(i),
        None => i.time(),
    };
    let f = i.u8()?;
    let state = i.state()?;
    let transaction_id = i.opt_str(has(f, 0))?;
    let destination = i.opt_str(has(f, 1))?;
    let origin = if has(f, 2) {
        Some(Origin {
            partition: i.int()?,
            offset: i.int()?,
        })
    } else {
        None
    };
    let carrier = i.opt_str(has(f, 3))?;
    let message_ids = i.strs()?;
    let reason = i.opt_str(has(f, 4))?;
    let command_status = if has(f, 5) { Some(i.uint()?) } else { None };
    let segments = i.uint()?;
    let submitted_at = if has(f, 7) { Some(time(&mut i)?) } else { None };
    let n: usize = i.uint()?;
    if n > i.at.len() {
        return Err(i.corrupt("timeline longer than the value"));
    }
    let mut timeline = Vec::with_capacity(n + 2);
    for _ in 0..n {
        let state = i.state()?;
        let ef = i.u8()?;
        let at = time(&mut i)?;
        timeline.push(TimelineEntry {
            state,
            at,
            carrier: i.opt_str(has(ef, 0))?,
            reason: i.opt_str(has(ef, 1))?,
            detail: i.opt_str(has(ef, 2))?,
            command_status: if has(ef, 3) { Some(i.uint()?) } else { None },
            possible_duplicate: has(ef, 4),
            message_ids: if has(ef, 5) { i.strs()? } else { Vec::new() },
        });
    }
    i.end()?;
    Ok(NotificationRecord {
        event_id: event_id.to_owned(),
        transaction_id,
        destination,
        origin,
        state,
        carrier,
        message_ids,
        reason,
        command_status,
        segments,
        possible_duplicate: has(f, 6),
        submitted_at,
        timeline,
    })
}

/// What the retention filter needs of a stored record, read without decoding the rest: its
/// state, and when it began (`NotificationRecord::began`) in Unix milliseconds. `None` if the value cannot be
/// read that far (a corrupt value is kept, for reads to report).
pub(super) fn record_span(value: &[u8]) -> Option<(State, i64)> {
    let mut i = In {
        key: b"",
        at: value,
    };
    let mut times = match i.u8().ok()? {
        RECORD_V1 => None,
        RECORD_V2 => Some(Times::default()),
        _ => return None,
    };
    let mut time = |i: &mut In<'_>| match times.as_mut() {
        Some(times) => times.get(i),
        None => i.time(),
    };
    let f = i.u8().ok()?;
    let state = i.state().ok()?;
    for present in [has(f, 0), has(f, 1)] {
        if present {
            i.skip_str().ok()?;
        }
    }
    if has(f, 2) {
        i.uvar().ok()?;
        i.uvar().ok()?;
    }
    if has(f, 3) {
        i.skip_str().ok()?;
    }
    let ids: u64 = i.uvar().ok()?;
    for _ in 0..ids {
        i.skip_str().ok()?;
    }
    if has(f, 4) {
        i.skip_str().ok()?;
    }
    if has(f, 5) {
        i.uvar().ok()?;
    }
    i.uvar().ok()?;
    let submitted = if has(f, 7) {
        Some(time(&mut i).ok()?)
    } else {
        None
    };
    let began = if i.uvar().ok()? > 0 {
        i.state().ok()?;
        i.u8().ok()?;
        time(&mut i).ok()?
    } else {
        submitted?
    };
    Some((state, super::keys::unix_ms(began)))
}

/// Encodes an outbox status.
pub(super) fn encode_status(s: &StatusEvent) -> Vec<u8> {
    let mut buf = Vec::with_capacity(64 + s.event_id.len());
    let mut o = Out(&mut buf);
    o.u8(STATUS_V1);
    o.u8(flag(0, s.transaction_id.is_some())
        | flag(1, s.reason.is_some())
        | flag(2, s.detail.is_some())
        | flag(3, s.carrier.is_some())
        | flag(4, s.command_status.is_some())
        | flag(5, s.destination.is_some())
        | flag(6, s.occurred_at.is_some())
        | flag(7, s.possible_duplicate));
    o.uvar(u64::from(s.schema_version));
    o.str(&s.event_id);
    o.state(s.state);
    o.opt_str(&s.transaction_id);
    o.opt_str(&s.reason);
    o.opt_str(&s.detail);
    o.opt_str(&s.carrier);
    o.strs(&s.message_ids);
    o.uvar(u64::from(s.segments));
    if let Some(c) = s.command_status {
        o.uvar(u64::from(c));
    }
    o.opt_str(&s.destination);
    if let Some(t) = s.occurred_at {
        o.time(t);
    }
    o.time(s.at);
    buf
}

/// Decodes the outbox status stored under `key`.
pub(super) fn decode_status(key: &[u8], value: &[u8]) -> Result<StatusEvent, StoreError> {
    let mut i = In { key, at: value };
    if i.u8()? != STATUS_V1 {
        return Err(i.corrupt("unknown outbox format"));
    }
    let f = i.u8()?;
    let s = StatusEvent {
        schema_version: i.uint()?,
        event_id: i.str()?,
        state: i.state()?,
        transaction_id: i.opt_str(has(f, 0))?,
        reason: i.opt_str(has(f, 1))?,
        detail: i.opt_str(has(f, 2))?,
        carrier: i.opt_str(has(f, 3))?,
        message_ids: i.strs()?,
        segments: i.uint()?,
        command_status: if has(f, 4) { Some(i.uint()?) } else { None },
        destination: i.opt_str(has(f, 5))?,
        occurred_at: if has(f, 6) { Some(i.time()?) } else { None },
        at: i.time()?,
        possible_duplicate: has(f, 7),
    };
    i.end()?;
    Ok(s)
}

/// Format byte of a staged entry.
const STAGED_V1: u8 = 1;
const ITEM_RECORD: u8 = 1;
const ITEM_HELD: u8 = 2;
const ITEM_GONE: u8 = 3;

/// One item of a staged entry (`staged.rs`).
#[derive(Debug, PartialEq)]
#[expect(
    clippy::large_enum_variant,
    reason = "nearly every item is a record; read once, at start-up"
)]
pub(super) enum StagedItem {
    /// The record's latest version; whether the open index and the transaction index
    /// already name it.
    Record {
        record: NotificationRecord,
        open_indexed: bool,
        transaction_indexed: bool,
    },
    /// The record's latest version is in the index, and its terminal status waits for the
    /// broker.
    Held(String),
    /// Nothing is staged for this event any more.
    Gone(String),
}

/// Builds the value of a staged entry: a format byte, then its items.
#[derive(Default)]
pub(super) struct StagedEntry {
    buf: Vec<u8>,
    scratch: Vec<u8>,
}

impl StagedEntry {
    pub(super) fn clear(&mut self) {
        self.buf.clear();
    }

    /// The encoded entry.
    pub(super) fn value(&self) -> &[u8] {
        &self.buf
    }

    fn item(&mut self, kind: u8, event_id: &str) {
        if self.buf.is_empty() {
            self.buf.push(STAGED_V1);
        }
        let mut o = Out(&mut self.buf);
        o.u8(kind);
        o.str(event_id);
    }

    pub(super) fn record(
        &mut self,
        r: &NotificationRecord,
        open_indexed: bool,
        transaction_indexed: bool,
    ) {
        self.item(ITEM_RECORD, &r.event_id);
        encode_record(r, &mut self.scratch);
        let mut o = Out(&mut self.buf);
        o.u8(flag(0, open_indexed) | flag(1, transaction_indexed));
        o.uvar(self.scratch.len() as u64);
        self.buf.extend_from_slice(&self.scratch);
    }

    pub(super) fn held(&mut self, event_id: &str) {
        self.item(ITEM_HELD, event_id);
    }

    pub(super) fn gone(&mut self, event_id: &str) {
        self.item(ITEM_GONE, event_id);
    }
}

/// Decodes the staged entry stored under `key`.
pub(super) fn decode_staged(key: &[u8], value: &[u8]) -> Result<Vec<StagedItem>, StoreError> {
    let mut i = In { key, at: value };
    if i.u8()? != STAGED_V1 {
        return Err(i.corrupt("unknown staged entry format"));
    }
    let mut out = Vec::new();
    while !i.at.is_empty() {
        let kind = i.u8()?;
        let event_id = i.str()?;
        out.push(match kind {
            ITEM_RECORD => {
                let f = i.u8()?;
                let len: usize = i.uint()?;
                if len > i.at.len() {
                    return Err(i.corrupt("staged record longer than the value"));
                }
                let (bytes, rest) = i.at.split_at(len);
                i.at = rest;
                StagedItem::Record {
                    record: decode_record(&event_id, bytes)?,
                    open_indexed: has(f, 0),
                    transaction_indexed: has(f, 1),
                }
            }
            ITEM_HELD => StagedItem::Held(event_id),
            ITEM_GONE => StagedItem::Gone(event_id),
            _ => return Err(i.corrupt("unknown staged item")),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn full_status(state: State) -> StatusEvent {
        StatusEvent {
            schema_version: 3,
            event_id: "evt-é".into(),
            transaction_id: Some("txn".into()),
            state,
            reason: Some("r".into()),
            detail: Some("d".into()),
            carrier: Some("alpha".into()),
            message_ids: vec!["1f".into(), String::new()],
            segments: 2,
            command_status: Some(u32::MAX),
            destination: Some("+****0123".into()),
            occurred_at: Some(datetime!(1960-01-01 00:00:00.000_000_001 -3:30)),
            at: datetime!(2026-11-25 19:00:00.123_456_789 UTC),
            possible_duplicate: true,
        }
    }

    #[test]
    fn every_state_has_its_own_byte() {
        for (b, s) in STATES.iter().enumerate() {
            assert_eq!(usize::from(state_byte(*s)), b);
        }
    }

    /// A record with every field set, and a status of every state.
    fn full_record() -> NotificationRecord {
        let at = datetime!(2026-11-25 19:00:00.5 +2);
        let mut full = NotificationRecord::blank("e");
        full.transaction_id = Some("t".into());
        full.destination = Some("+***1".into());
        full.origin = Some(Origin {
            partition: -1,
            offset: i64::MAX,
        });
        full.carrier = Some("c".into());
        full.submitted_at = Some(at);
        full.apply_submitting("c".into(), at);
        for state in STATES {
            let mut s = full_status(state);
            s.event_id = "e".into();
            full.apply_status(s);
        }
        full
    }

    #[test]
    fn records_round_trip_with_every_field_set_or_empty() {
        let mut buf = Vec::new();
        for r in [NotificationRecord::blank("e"), full_record()] {
            encode_record(&r, &mut buf);
            let back = decode_record("e", &buf).unwrap();
            assert_eq!(back, r);
            // Offsets are kept, not only the instant.
            let offsets = |r: &NotificationRecord| -> Vec<UtcOffset> {
                r.timeline.iter().map(|e| e.at.offset()).collect()
            };
            assert_eq!(offsets(&back), offsets(&r));
            for cut in 0..buf.len() {
                assert!(decode_record("e", &buf[..cut]).is_err(), "cut at {cut}");
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn times_round_trip_whatever_their_distance_and_offset(
            times in proptest::collection::vec(
                (
                    -377_705_116_800i64..=253_402_300_799,
                    0u32..1_000_000_000,
                    -93_599i32..=93_599,
                ),
                1..6,
            ),
            submitted in proptest::bool::ANY,
        ) {
            let mut r = NotificationRecord::blank("e");
            for (secs, nanos, offset) in times {
                let at = OffsetDateTime::from_unix_timestamp(secs)
                    .unwrap()
                    .replace_nanosecond(nanos)
                    .unwrap()
                    .checked_to_offset(UtcOffset::from_whole_seconds(offset).unwrap());
                proptest::prop_assume!(at.is_some());
                let at = at.unwrap();
                if submitted && r.submitted_at.is_none() {
                    r.submitted_at = Some(at);
                }
                r.timeline.push(TimelineEntry::bare(State::Accepted, at));
            }
            let mut buf = Vec::new();
            encode_record(&r, &mut buf);
            let back = decode_record("e", &buf).unwrap();
            let exact = |r: &NotificationRecord| -> Vec<(i128, UtcOffset)> {
                (r.submitted_at.iter().chain(r.timeline.iter().map(|e| &e.at)))
                    .map(|t| (t.unix_timestamp_nanos(), t.offset()))
                    .collect()
            };
            proptest::prop_assert_eq!(exact(&back), exact(&r));
            proptest::prop_assert_eq!(record_span(&buf), span(&r));
            proptest::prop_assert_eq!(back, r);
        }
    }

    /// [`record_span`] of a record, from the decoded record.
    fn span(r: &NotificationRecord) -> Option<(State, i64)> {
        Some((r.state, super::super::keys::unix_ms(r.began()?)))
    }

    #[test]
    fn a_record_span_is_read_without_decoding_it_and_a_cut_value_gives_none() {
        let mut buf = Vec::new();
        let mut submitted_only = NotificationRecord::blank("e");
        submitted_only.submitted_at = Some(datetime!(2026-11-25 19:00:00.25 UTC));
        for r in [full_record(), submitted_only] {
            encode_record(&r, &mut buf);
            let want = span(&r);
            assert!(want.is_some());
            assert_eq!(record_span(&buf), want);
            for cut in 0..buf.len() {
                let got = record_span(&buf[..cut]);
                // A cut after the first timeline entry's time still gives the same answer.
                assert!(got.is_none() || got == want, "cut at {cut}: {got:?}");
            }
        }
        // Neither a timeline nor a submission: nothing to count from.
        encode_record(&NotificationRecord::blank("e"), &mut buf);
        assert_eq!(record_span(&buf), None);
        assert_eq!(record_span(b"\x07"), None, "unknown format");
    }

    /// [`full_record`] as the first format wrote it, every time absolute.
    const FULL_RECORD_V1: &[&str] = &[
        "01ff0b0174052b2a2a2a3101feffffffffffffffff0105616c70686102023166000172ffffffff0f",
        "02a0d0b8b00d80cab5ee01c0700d0101a0d0b8b00d80cab5ee01c0700163003fe0c0b9b00d959aef",
        "3a0005616c70686101720164ffffffff0f0202316600013fe0c0b9b00d959aef3a0005616c706861",
        "01720164ffffffff0f0202316600023fe0c0b9b00d959aef3a0005616c70686101720164ffffffff",
        "0f0202316600033fe0c0b9b00d959aef3a0005616c70686101720164ffffffff0f0202316600043f",
        "e0c0b9b00d959aef3a0005616c70686101720164ffffffff0f0202316600053fe0c0b9b00d959aef",
        "3a0005616c70686101720164ffffffff0f0202316600063fe0c0b9b00d959aef3a0005616c706861",
        "01720164ffffffff0f0202316600073fe0c0b9b00d959aef3a0005616c70686101720164ffffffff",
        "0f0202316600083fe0c0b9b00d959aef3a0005616c70686101720164ffffffff0f0202316600093f",
        "e0c0b9b00d959aef3a0005616c70686101720164ffffffff0f02023166000a3fe0c0b9b00d959aef",
        "3a0005616c70686101720164ffffffff0f02023166000b3fe0c0b9b00d959aef3a0005616c706861",
        "01720164ffffffff0f0202316600",
    ];

    #[test]
    fn records_of_the_first_format_are_still_read() {
        let hex: String = FULL_RECORD_V1.concat();
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let back = decode_record("e", &bytes).unwrap();
        let want = full_record();
        assert_eq!(back, want);
        assert_eq!(record_span(&bytes), span(&want));
        let offsets = |r: &NotificationRecord| -> Vec<UtcOffset> {
            r.timeline.iter().map(|e| e.at.offset()).collect()
        };
        assert_eq!(offsets(&back), offsets(&want));
        // The current format says the same in fewer bytes.
        let mut buf = Vec::new();
        encode_record(&want, &mut buf);
        assert!(buf.len() < bytes.len(), "{} >= {}", buf.len(), bytes.len());
    }

    #[test]
    fn staged_entries_round_trip_and_refuse_every_cut() {
        let at = datetime!(2026-11-25 19:00 UTC);
        let mut a = NotificationRecord::blank("a");
        a.transaction_id = Some("t".into());
        a.apply_submitting("c".into(), at);
        let b = NotificationRecord::blank("b");
        let mut entry = StagedEntry::default();
        assert!(entry.value().is_empty());
        entry.record(&a, true, false);
        entry.held("h");
        entry.record(&b, false, true);
        entry.gone("g");
        let items = decode_staged(b"k", entry.value()).unwrap();
        let want = [
            StagedItem::Record {
                record: a,
                open_indexed: true,
                transaction_indexed: false,
            },
            StagedItem::Held("h".into()),
            StagedItem::Record {
                record: b,
                open_indexed: false,
                transaction_indexed: true,
            },
            StagedItem::Gone("g".into()),
        ];
        assert_eq!(items, want);
        // Cuts inside an item are refused; a cut between items reads as a shorter entry
        // (fjall writes an entry whole or not at all).
        let whole = entry.value().to_vec();
        for cut in 0..whole.len() {
            if let Ok(items) = decode_staged(b"k", &whole[..cut]) {
                assert!(
                    items.len() < want.len() && want.starts_with(&items),
                    "cut at {cut}"
                );
            }
        }
        assert!(decode_staged(b"k", b"\x01\x09\x01x").is_err());
        assert!(decode_staged(b"k", b"\x02").is_err());
        entry.clear();
        assert!(entry.value().is_empty());
    }

    #[test]
    fn statuses_round_trip() {
        let mut bare = full_status(State::Delivered);
        bare.transaction_id = None;
        bare.reason = None;
        bare.detail = None;
        bare.carrier = None;
        bare.message_ids.clear();
        bare.command_status = None;
        bare.destination = None;
        bare.occurred_at = None;
        bare.possible_duplicate = false;
        for s in [full_status(State::Unconfirmed), bare] {
            let v = encode_status(&s);
            let back = decode_status(b"k", &v).unwrap();
            assert_eq!(back, s);
            assert_eq!(
                back.occurred_at.map(|t| t.offset()),
                s.occurred_at.map(|t| t.offset())
            );
            assert!(decode_status(b"k", &v[..v.len() - 1]).is_err());
        }
    }

    #[test]
    fn garbage_is_corrupt_not_a_panic() {
        for v in [
            &b""[..],
            b"{not json",
            b"\x01\xff\xff",
            b"\x01\x00\x0c",
            b"\x02",
        ] {
            assert!(matches!(
                decode_record("k", v),
                Err(StoreError::Corrupt { .. })
            ));
            assert!(decode_status(b"k", v).is_err());
        }
    }
}
