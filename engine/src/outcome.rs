//! One verdict for a notification from its segments' submit outcomes: accepted, hand it to
//! the next carrier of its route, or end it with a state and a reason. Plain logic.
//!
//! A notification is handed over only when no segment of it was accepted or written without
//! an answer, so that a fallback carrier never sends part of a message twice.

use pigeon_smpp::session::{classify, StatusClass, SubmitOutcome};

use crate::event::State;

/// What becomes of a notification after its submits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every segment accepted: the carrier's ids, one per segment.
    Accepted(Vec<String>),
    /// Nothing reached the carrier; try the next carrier of the route.
    HandOver { reason: &'static str },
    /// The end of this notification's submits.
    End {
        state: State,
        reason: &'static str,
        command_status: Option<u32>,
        /// Ids of the segments that were accepted, if any.
        ids: Vec<String>,
    },
}

/// Whether the parts not sent must be tried again on this carrier rather than moved on:
/// some part is already with it (accepted, or written without an answer), and another was
/// never written.
pub fn must_stay(outcomes: &[SubmitOutcome]) -> bool {
    let with_carrier = outcomes.iter().any(|o| {
        matches!(
            o,
            SubmitOutcome::Accepted { .. } | SubmitOutcome::Timeout | SubmitOutcome::Lost
        )
    });
    with_carrier && outcomes.iter().any(|o| matches!(o, SubmitOutcome::NotSent))
}

/// What follows an `ambiguous` verdict: a submit was written and never answered, so the
/// carrier may have the message (and nothing can match its receipt).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unanswered {
    /// Publish `ambiguous`, wait `engine.ambiguous_wait_ms`, then send it again to the same
    /// carrier flagged `possible_duplicate`: the policy after a crash, applied to a lost
    /// answer too, so that the debit still gets a known outcome.
    ResendLater,
    /// It was sent again for this once already: end it `unconfirmed(no_submit_response)`;
    /// whether the customer got it is unknown, and a third copy is not worth the risk.
    GiveUp,
}

/// The policy for an `ambiguous` verdict, given whether the notification was already sent
/// again after one.
pub fn after_unanswered(resent_before: bool) -> Unanswered {
    if resent_before {
        Unanswered::GiveUp
    } else {
        Unanswered::ResendLater
    }
}

/// `can_hand_over`: the route has a further carrier. `expired`: the validity has elapsed.
pub fn conclude(outcomes: Vec<SubmitOutcome>, can_hand_over: bool, expired: bool) -> Verdict {
    let parts = outcomes.len();
    let mut ids = Vec::with_capacity(parts);
    let mut refused: Option<u32> = None;
    let mut permanent: Option<u32> = None;
    let mut written_unanswered = false;
    for o in outcomes {
        match o {
            SubmitOutcome::Accepted { message_id } => ids.push(message_id),
            SubmitOutcome::Rejected { command_status } => {
                refused.get_or_insert(command_status);
                if classify(command_status) == StatusClass::Permanent {
                    permanent.get_or_insert(command_status);
                }
            }
            SubmitOutcome::Timeout | SubmitOutcome::Lost => written_unanswered = true,
            SubmitOutcome::NotSent => {}
        }
    }
    if ids.len() == parts {
        return Verdict::Accepted(ids);
    }
    let end = |state, reason, command_status, ids| Verdict::End {
        state,
        reason,
        command_status,
        ids,
    };
    if written_unanswered {
        return end(State::Ambiguous, "no_submit_response", refused, ids);
    }
    if let Some(status) = permanent {
        return end(State::Failed, "carrier_refused", Some(status), ids);
    }
    let reason = match refused.map(classify) {
        Some(StatusClass::Throttled) => "carrier_throttled",
        Some(StatusClass::QueueFull) => "carrier_queue_full",
        Some(_) => "carrier_error",
        None => "carrier_unavailable",
    };
    if !ids.is_empty() {
        // Part of the message is with this carrier: another carrier must not send it again.
        return end(State::Failed, reason, refused, ids);
    }
    if expired {
        return end(State::Expired, "validity_elapsed", refused, ids);
    }
    if can_hand_over {
        return Verdict::HandOver { reason };
    }
    end(State::Failed, reason, refused, ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(id: &str) -> SubmitOutcome {
        SubmitOutcome::Accepted {
            message_id: id.into(),
        }
    }
    fn refused(status: u32) -> SubmitOutcome {
        SubmitOutcome::Rejected {
            command_status: status,
        }
    }

    #[test]
    fn all_accepted() {
        assert_eq!(
            conclude(vec![ok("1"), ok("2")], true, false),
            Verdict::Accepted(vec!["1".into(), "2".into()])
        );
    }

    #[test]
    fn nothing_reached_the_carrier_so_the_next_one_gets_it() {
        let v = conclude(vec![SubmitOutcome::NotSent], true, false);
        assert_eq!(
            v,
            Verdict::HandOver {
                reason: "carrier_unavailable"
            }
        );
        let v = conclude(vec![refused(0x58), refused(0x58)], true, false);
        assert_eq!(
            v,
            Verdict::HandOver {
                reason: "carrier_throttled"
            }
        );
    }

    #[test]
    fn without_a_next_carrier_it_fails_with_the_reason() {
        match conclude(vec![refused(0x14)], false, false) {
            Verdict::End {
                state,
                reason,
                command_status,
                ..
            } => {
                assert_eq!(
                    (state, reason, command_status),
                    (State::Failed, "carrier_queue_full", Some(0x14))
                );
            }
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn a_permanent_refusal_is_never_handed_over() {
        match conclude(vec![refused(0x0B)], true, false) {
            Verdict::End {
                state,
                reason,
                command_status,
                ..
            } => {
                assert_eq!(
                    (state, reason, command_status),
                    (State::Failed, "carrier_refused", Some(0x0B))
                );
            }
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn a_written_submit_without_answer_is_ambiguous_not_handed_over() {
        for o in [SubmitOutcome::Timeout, SubmitOutcome::Lost] {
            match conclude(vec![ok("1"), o], true, false) {
                Verdict::End { state, ids, .. } => {
                    assert_eq!(state, State::Ambiguous);
                    assert_eq!(ids, vec!["1".to_owned()]);
                }
                v => panic!("{v:?}"),
            }
        }
    }

    #[test]
    fn parts_not_sent_stay_with_the_carrier_that_has_the_others() {
        assert!(must_stay(&[ok("1"), SubmitOutcome::NotSent]));
        assert!(must_stay(&[SubmitOutcome::Lost, SubmitOutcome::NotSent]));
        assert!(!must_stay(&[
            SubmitOutcome::NotSent,
            SubmitOutcome::NotSent
        ]));
        assert!(!must_stay(&[ok("1"), refused(0x58)]));
        assert!(!must_stay(&[ok("1"), ok("2")]));
    }

    #[test]
    fn an_unanswered_submit_is_sent_again_once_then_unconfirmed() {
        assert_eq!(after_unanswered(false), Unanswered::ResendLater);
        assert_eq!(after_unanswered(true), Unanswered::GiveUp);
    }

    #[test]
    fn a_partly_accepted_message_is_not_handed_over() {
        match conclude(vec![ok("1"), SubmitOutcome::NotSent], true, false) {
            Verdict::End { state, reason, .. } => {
                assert_eq!((state, reason), (State::Failed, "carrier_unavailable"))
            }
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn past_its_validity_it_expires_instead_of_moving_on() {
        match conclude(vec![SubmitOutcome::NotSent], true, true) {
            Verdict::End { state, reason, .. } => {
                assert_eq!((state, reason), (State::Expired, "validity_elapsed"))
            }
            v => panic!("{v:?}"),
        }
    }
}
