//! Recently settled receipt keys, by fingerprint, so that a receipt for one of them is told
//! apart from an unknown receipt: a set of 64-bit fingerprints in two generations instead
//! of one set and a queue of deadlines. New fingerprints go to the current generation; once
//! `keep` has passed since it began, it becomes the previous one and the previous one is
//! dropped. So a fingerprint is remembered for at least `keep` and less than twice that
//! (plus however late [`Settled::expire`] is called), at ~9–18 bytes each (the sets' slots)
//! instead of that plus 24 bytes of deadline: with receipts for a million notifications in
//! the last `keep`, ~25 MB less.

use std::time::Duration;

use foldhash::{HashSet, HashSetExt};
use tokio::time::Instant;

#[derive(Debug)]
pub(super) struct Settled {
    current: HashSet<u64>,
    previous: HashSet<u64>,
    keep: Duration,
    /// When `current` began.
    began: Instant,
}

impl Settled {
    pub fn new(keep: Duration, now: Instant) -> Settled {
        Settled {
            current: HashSet::new(),
            previous: HashSet::new(),
            keep,
            began: now,
        }
    }

    pub fn insert(&mut self, fingerprint: u64, now: Instant) {
        self.expire(now);
        self.current.insert(fingerprint);
    }

    pub fn contains(&self, fingerprint: u64) -> bool {
        self.current.contains(&fingerprint) || self.previous.contains(&fingerprint)
    }

    /// Drops the previous generation once the current one is `keep` old; both, if nothing
    /// came for longer than that again.
    pub fn expire(&mut self, now: Instant) {
        let age = now.saturating_duration_since(self.began);
        if age < self.keep {
            return;
        }
        if age < self.keep * 2 {
            self.previous = std::mem::take(&mut self.current);
        } else {
            self.previous = HashSet::new();
            self.current = HashSet::new();
        }
        self.began = now;
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEEP: Duration = Duration::from_secs(120);

    #[test]
    fn a_fingerprint_is_kept_at_least_as_long_as_asked_and_less_than_twice_that() {
        let start = Instant::now();
        let mut s = Settled::new(KEEP, start);
        s.insert(1, start);
        s.insert(2, start + KEEP - Duration::from_millis(1));
        // The current generation becomes the previous one: both still known.
        s.expire(start + KEEP);
        s.insert(3, start + KEEP);
        assert!(s.contains(1) && s.contains(2) && s.contains(3));
        // Just before 2 × KEEP, 2 (settled just before KEEP) is still needed.
        s.expire(start + KEEP * 2 - Duration::from_millis(1));
        assert!(
            s.contains(2),
            "kept only {:?}",
            KEEP - Duration::from_millis(1)
        );
        // Then the first generation goes, the second stays.
        s.expire(start + KEEP * 2);
        assert!(!s.contains(1) && !s.contains(2));
        assert!(s.contains(3));
        assert_eq!(s.len(), 1);
        assert!(!s.contains(4));
    }

    #[test]
    fn after_a_long_quiet_spell_everything_is_forgotten_at_once() {
        let start = Instant::now();
        let mut s = Settled::new(KEEP, start);
        s.insert(1, start);
        s.insert(2, start + KEEP * 3);
        assert!(!s.contains(1), "two generations old");
        assert!(s.contains(2));
        assert_eq!(s.len(), 1);
    }
}
