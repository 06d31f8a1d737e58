//! The notification record and how claims and changes fold into it. Pure: no I/O.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::event::{State, StatusEvent, SCHEMA_VERSION};
use crate::notification::Origin;

use super::ClaimRequest;

/// Everything known about one notification, keyed by event id. The status API returns it as
/// JSON as is; empty fields are left out, times are RFC 3339.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationRecord {
    pub event_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<String>,
    /// Destination with all but the last four digits masked (callers mask it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    /// The Kafka record it was claimed from; none when a status came before any claim
    /// (a rejected event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
    /// The latest state. A terminal state is never replaced by a non-terminal one.
    pub state: State,
    /// The carrier it was last with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carrier: Option<String>,
    /// Carrier message ids of the latest acceptance, one per segment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub message_ids: Vec<String>,
    /// Reason code of the latest status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// SMPP command_status of the latest status, if it carried one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_status: Option<u32>,
    #[serde(default)]
    pub segments: u32,
    /// Set once any status said the customer may get the SMS twice; never cleared.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub possible_duplicate: bool,
    /// When it was last about to be written to a carrier.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub submitted_at: Option<OffsetDateTime>,
    /// Every state change, oldest first.
    #[serde(default)]
    pub timeline: Vec<TimelineEntry>,
}

/// One state change of a notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub state: State,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carrier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub message_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_status: Option<u32>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub possible_duplicate: bool,
}

impl TimelineEntry {
    /// An entry with only a state and a time.
    pub fn bare(state: State, at: OffsetDateTime) -> Self {
        TimelineEntry {
            state,
            at,
            carrier: None,
            reason: None,
            detail: None,
            message_ids: Vec::new(),
            command_status: None,
            possible_duplicate: false,
        }
    }
}

impl NotificationRecord {
    /// A record with nothing known but its id (a status before any claim).
    pub(super) fn blank(event_id: &str) -> Self {
        NotificationRecord {
            event_id: event_id.to_owned(),
            transaction_id: None,
            destination: None,
            origin: None,
            state: State::Received,
            carrier: None,
            message_ids: Vec::new(),
            reason: None,
            command_status: None,
            segments: 0,
            possible_duplicate: false,
            submitted_at: None,
            timeline: Vec::new(),
        }
    }

    /// The record a first claim creates: `received`, one timeline entry.
    pub(super) fn received(req: &ClaimRequest, at: OffsetDateTime) -> Self {
        let mut r = Self::blank(&req.event_id);
        r.transaction_id.clone_from(&req.transaction_id);
        r.destination.clone_from(&req.destination);
        r.origin = Some(req.origin);
        r.timeline.push(TimelineEntry::bare(State::Received, at));
        r
    }

    /// When it began: its first timeline entry (`received`, for a claimed one), or its
    /// submission if it has no timeline. Its retention counts from here (`ttl.rs`).
    pub(super) fn began(&self) -> Option<OffsetDateTime> {
        self.timeline.first().map(|e| e.at).or(self.submitted_at)
    }

    /// Its latest state as a status event (what a replay publishes again).
    pub fn latest_status(&self) -> StatusEvent {
        // The entry that set the state (late entries may follow a terminal one).
        let last = (self.timeline.iter().rev())
            .find(|e| e.state == self.state)
            .or(self.timeline.last());
        StatusEvent {
            schema_version: SCHEMA_VERSION,
            event_id: self.event_id.clone(),
            transaction_id: self.transaction_id.clone(),
            state: self.state,
            reason: self.reason.clone(),
            detail: last.and_then(|e| e.detail.clone()),
            carrier: self.carrier.clone(),
            message_ids: self.message_ids.clone(),
            segments: self.segments,
            command_status: self.command_status,
            destination: self.destination.clone(),
            occurred_at: None,
            at: last.map_or_else(OffsetDateTime::now_utc, |e| e.at),
            possible_duplicate: self.possible_duplicate,
        }
    }

    /// Every acceptance in its timeline as (carrier, message id, when): what its receipts
    /// will name.
    pub(super) fn acceptances(&self) -> impl Iterator<Item = (&str, &str, OffsetDateTime)> {
        (self.timeline.iter())
            .filter(|e| e.state == State::Accepted)
            .filter_map(|e| e.carrier.as_deref().map(|c| (c, e)))
            .flat_map(|(c, e)| (e.message_ids.iter()).map(move |id| (c, id.as_str(), e.at)))
    }

    /// Whether recovery after a crash must look at it (its state is not terminal).
    pub fn is_open(&self) -> bool {
        !self.state.is_terminal()
    }

    /// Whether a change to `to` may replace the current state: anything may, except a
    /// non-terminal state after a terminal one (such a late change is kept in the timeline
    /// only).
    fn may_move_to(&self, to: State) -> bool {
        to.is_terminal() || !self.state.is_terminal()
    }

    /// Appends a status to the timeline and takes its state and details. The record's
    /// fields copy what they take from it (into their own room, mostly there already: the
    /// carrier and message ids of an acceptance); the timeline entry takes its strings.
    pub(super) fn apply_status(&mut self, s: StatusEvent) {
        if self.transaction_id.is_none() {
            self.transaction_id = s.transaction_id;
        }
        if self.destination.is_none() {
            self.destination = s.destination;
        }
        if self.may_move_to(s.state) {
            self.state = s.state;
            if s.carrier.is_some() {
                self.carrier.clone_from(&s.carrier);
            }
            if !s.message_ids.is_empty() {
                self.message_ids.clone_from(&s.message_ids);
            }
            self.reason.clone_from(&s.reason);
            self.command_status = s.command_status;
            if s.segments > 0 {
                self.segments = s.segments;
            }
            self.possible_duplicate |= s.possible_duplicate;
        }
        self.timeline.push(TimelineEntry {
            state: s.state,
            at: s.at,
            carrier: s.carrier,
            reason: s.reason,
            detail: s.detail,
            message_ids: s.message_ids,
            command_status: s.command_status,
            possible_duplicate: s.possible_duplicate,
        });
    }

    /// Marks it as about to be written to `carrier`.
    pub(super) fn apply_submitting(&mut self, carrier: String, at: OffsetDateTime) {
        let mut entry = TimelineEntry::bare(State::Submitting, at);
        entry.carrier = Some(carrier);
        if self.may_move_to(State::Submitting) {
            self.state = State::Submitting;
            self.carrier.clone_from(&entry.carrier);
            self.submitted_at = Some(at);
        }
        self.timeline.push(entry);
    }
}
