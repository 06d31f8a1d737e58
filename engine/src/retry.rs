//! Submit retry policy: which carrier answers are worth another attempt, and when.
//!
//! Plain logic, no I/O: the shard asks [`RetryPolicy::next`] after every submit outcome.
//! - Not written (the bind closed first): at once, on another bind — it cannot be a duplicate.
//! - Throttled, queue full, or a transient carrier error: after an exponential backoff with
//!   jitter, so that a busy carrier is not hammered and binds do not retry in lock step.
//! - Accepted, permanently refused, or ambiguous (written, no answer): no retry. Resending an
//!   ambiguous submit could send the SMS twice; it is reported instead.

use std::time::Duration;

use pigeon_smpp::session::{classify, StatusClass, SubmitOutcome};
use rand::Rng;

/// What to do after an outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Keep this outcome.
    Done,
    /// Try again now, through any bind.
    RetryNow,
    /// Try again after this long.
    RetryAfter(Duration),
}

/// Retry budget and backoff of one carrier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Further attempts after the first, at most.
    pub max_retries: u32,
    /// Backoff before the first retry; doubles each time.
    pub base: Duration,
    /// Backoff never exceeds this.
    pub cap: Duration,
}

impl RetryPolicy {
    /// `attempt` counts from 0 for the first submit.
    pub fn next(&self, outcome: &SubmitOutcome, attempt: u32, rng: &mut impl Rng) -> Next {
        if attempt >= self.max_retries {
            return Next::Done;
        }
        match outcome {
            SubmitOutcome::NotSent => Next::RetryNow,
            SubmitOutcome::Rejected { command_status } => match classify(*command_status) {
                StatusClass::Throttled | StatusClass::QueueFull | StatusClass::Retryable => {
                    Next::RetryAfter(self.backoff(attempt, rng))
                }
                StatusClass::Permanent => Next::Done,
            },
            SubmitOutcome::Accepted { .. } | SubmitOutcome::Timeout | SubmitOutcome::Lost => {
                Next::Done
            }
        }
    }

    /// `base * 2^attempt`, capped, then drawn uniformly from its upper half.
    pub fn backoff(&self, attempt: u32, rng: &mut impl Rng) -> Duration {
        backoff(self.base, self.cap, attempt, rng)
    }
}

/// `base * 2^attempt`, capped, then drawn uniformly from its upper half (so that many
/// waiting on the same thing do not all try again at once): the backoff of retries and of
/// reconnects.
pub fn backoff(base: Duration, cap: Duration, attempt: u32, rng: &mut impl Rng) -> Duration {
    let full = base.saturating_mul(1u32 << attempt.min(16)).min(cap);
    if full.is_zero() {
        return full;
    }
    rng.random_range(full / 2..=full)
}

/// The waits between a bind's attempts to connect: [`Reconnect::FIRST`] after the bind is
/// lost or its first attempt fails, doubling after each further failure up to the carrier's
/// cap, each drawn from the upper half of its step (binds do not reconnect in lock step),
/// and never shorter than what the carrier's refusal asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reconnect {
    cap: Duration,
    failures: u32,
}

impl Reconnect {
    pub const FIRST: Duration = Duration::from_millis(100);

    pub fn new(cap: Duration) -> Self {
        Reconnect { cap, failures: 0 }
    }

    /// The bind is up: the next wait starts from [`Reconnect::FIRST`] again.
    pub fn bound(&mut self) {
        self.failures = 0;
    }

    /// The wait before the next attempt, at least `floor` (the carrier's hint, if any).
    pub fn next_wait(&mut self, floor: Duration, rng: &mut impl Rng) -> Duration {
        let wait = backoff(Self::FIRST, self.cap, self.failures, rng);
        self.failures = self.failures.saturating_add(1);
        wait.max(floor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    const P: RetryPolicy = RetryPolicy {
        max_retries: 3,
        base: Duration::from_millis(100),
        cap: Duration::from_secs(1),
    };

    fn rejected(status: u32) -> SubmitOutcome {
        SubmitOutcome::Rejected {
            command_status: status,
        }
    }

    #[test]
    fn what_is_retried_and_what_is_not() {
        let rng = &mut SmallRng::seed_from_u64(1);
        assert_eq!(P.next(&SubmitOutcome::NotSent, 0, rng), Next::RetryNow);
        assert!(
            matches!(P.next(&rejected(0x58), 0, rng), Next::RetryAfter(_)),
            "throttled"
        );
        assert!(
            matches!(P.next(&rejected(0x14), 0, rng), Next::RetryAfter(_)),
            "queue full"
        );
        assert!(
            matches!(P.next(&rejected(0x08), 0, rng), Next::RetryAfter(_)),
            "system error"
        );
        assert_eq!(
            P.next(&rejected(0x0B), 0, rng),
            Next::Done,
            "invalid destination"
        );
        assert_eq!(
            P.next(&SubmitOutcome::Timeout, 0, rng),
            Next::Done,
            "ambiguous"
        );
        assert_eq!(
            P.next(&SubmitOutcome::Lost, 0, rng),
            Next::Done,
            "ambiguous"
        );
        let ok = SubmitOutcome::Accepted {
            message_id: "1".into(),
        };
        assert_eq!(P.next(&ok, 0, rng), Next::Done);
    }

    #[test]
    fn the_budget_ends_retries() {
        let rng = &mut SmallRng::seed_from_u64(1);
        assert_eq!(P.next(&SubmitOutcome::NotSent, 3, rng), Next::Done);
        assert_eq!(P.next(&rejected(0x58), 3, rng), Next::Done);
    }

    proptest! {
        #[test]
        fn backoff_doubles_within_jitter_and_respects_the_cap(attempt in 0u32..40, seed: u64) {
            let rng = &mut SmallRng::seed_from_u64(seed);
            let d = P.backoff(attempt, rng);
            let full = (P.base * 2u32.pow(attempt.min(16))).min(P.cap);
            prop_assert!(d <= full && d >= full / 2, "{d:?} vs {full:?}");
        }
    }

    #[test]
    fn reconnects_double_to_the_cap_and_start_again_once_bound() {
        let rng = &mut SmallRng::seed_from_u64(7);
        let cap = Duration::from_secs(2);
        let mut r = Reconnect::new(cap);
        let first = r.next_wait(Duration::ZERO, rng);
        assert!(
            first >= Reconnect::FIRST / 2 && first <= Reconnect::FIRST,
            "{first:?}"
        );
        let waits: Vec<Duration> = (0..30).map(|_| r.next_wait(Duration::ZERO, rng)).collect();
        assert!(waits.iter().all(|w| *w <= cap), "{waits:?}");
        // The sixth wait's step, 100 ms doubled five times (3.2 s), is above the cap: from
        // there on, the cap's upper half.
        assert!(waits[4..].iter().all(|w| *w >= cap / 2), "{waits:?}");
        // A carrier asking for longer is waited for.
        let hint = Duration::from_secs(60);
        assert_eq!(r.next_wait(hint, rng), hint);
        r.bound();
        let again = r.next_wait(Duration::ZERO, rng);
        assert!(again <= Reconnect::FIRST, "{again:?}");
    }
}
