//! Responses held back by `response_latency`: a FIFO of `(due, response)` whose due times
//! never decrease, so a session answers in the order it was asked, and one timer for the
//! head. No task or timer per PDU.

use std::collections::VecDeque;
use std::pin::Pin;

use rusmpp::Command;
use tokio::time::{Instant, Sleep};

#[derive(Debug)]
pub(super) struct Outbox {
    queue: VecDeque<(Instant, Command)>,
    /// Fires when the head is due; only polled while the queue is not empty.
    timer: Pin<Box<Sleep>>,
}

impl Outbox {
    pub fn new() -> Self {
        Self {
            queue: VecDeque::new(),
            timer: Box::pin(tokio::time::sleep_until(Instant::now())),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// The timer of the head, to await while the queue is not empty.
    pub fn timer(&mut self) -> Pin<&mut Sleep> {
        self.timer.as_mut()
    }

    /// Queues `response` for `due`, or just after the one queued before it.
    pub fn push(&mut self, due: Instant, response: Command) {
        let due = match self.queue.back() {
            Some((last, _)) => due.max(*last),
            None => {
                self.timer.as_mut().reset(due);
                due
            }
        };
        self.queue.push_back((due, response));
    }

    /// The head, when it is due at `now`; re-arms the timer for the next one.
    pub fn pop_due(&mut self, now: Instant) -> Option<Command> {
        if self.queue.front().is_none_or(|(due, _)| *due > now) {
            return None;
        }
        let (_, response) = self.queue.pop_front()?;
        if let Some((next, _)) = self.queue.front() {
            self.timer.as_mut().reset(*next);
        }
        Some(response)
    }

    /// Everything queued, due or not (before an unbind response).
    pub fn drain(&mut self) -> impl Iterator<Item = Command> + '_ {
        self.queue.drain(..).map(|(_, response)| response)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rusmpp::{CommandStatus, Pdu};

    use super::*;

    fn resp(seq: u32) -> Command {
        Command::new(CommandStatus::EsmeRok, seq, Pdu::EnquireLinkResp)
    }

    #[tokio::test]
    async fn responses_leave_in_order_when_due() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut outbox = Outbox::new();
        outbox.push(t0 + ms(30), resp(1));
        // Due earlier, but asked later: it waits for the first.
        outbox.push(t0 + ms(10), resp(2));
        outbox.push(t0 + ms(40), resp(3));
        assert!(outbox.pop_due(t0 + ms(20)).is_none());
        let seqs = |o: &mut Outbox, at| {
            std::iter::from_fn(|| o.pop_due(at))
                .map(|c| c.sequence_number())
                .collect::<Vec<_>>()
        };
        assert_eq!(seqs(&mut outbox, t0 + ms(30)), [1, 2]);
        assert_eq!(seqs(&mut outbox, t0 + ms(40)), [3]);
        assert!(outbox.is_empty());
        outbox.push(t0 + ms(99), resp(4));
        assert_eq!(outbox.drain().count(), 1);
    }
}
