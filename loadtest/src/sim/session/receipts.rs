//! The receipts side of a session: sending what is due (twice for `duplicate_receipts`, on
//! another bind for `receipts_on_other_bind`), adopting receipts the carrier kept, and
//! handing over everything still owed when the session ends.

use futures::{FutureExt, SinkExt, StreamExt};
use rusmpp::tokio_codec::EncodeError;
use rusmpp::{Command, CommandStatus};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info};

use super::{Session, State, MAX_BATCH};
use crate::sim::dlr::PendingReceipt;
use crate::sim::registry::Handoff;
use crate::sim::stats::Counters;

impl Session {
    /// Sends `first` and every other receipt already due; passes on those it cannot carry.
    pub(super) async fn on_due(&mut self, first: PendingReceipt) -> Result<(), EncodeError> {
        let mut elsewhere = Vec::new();
        let mut next = Some(first);
        let mut handled = 0;
        while let Some(receipt) = next {
            self.dispatch(receipt, &mut elsewhere).await?;
            handled += 1;
            next = if handled < MAX_BATCH {
                self.receipts
                    .next()
                    .now_or_never()
                    .flatten()
                    .map(|e| e.into_inner())
            } else {
                None
            };
        }
        self.route_elsewhere(elsewhere);
        SinkExt::<Command>::flush(&mut self.writer).await
    }

    /// Sends one receipt now, wherever it should go (`receipt_before_response`).
    pub(super) async fn deliver_now(&mut self, receipt: PendingReceipt) -> Result<(), EncodeError> {
        let mut elsewhere = Vec::new();
        self.dispatch(receipt, &mut elsewhere).await?;
        self.route_elsewhere(elsewhere);
        Ok(())
    }

    /// Feeds `receipt` to this socket, moves it to another bind, or adds it to `elsewhere`
    /// when this bind cannot carry receipts.
    async fn dispatch(
        &mut self,
        mut receipt: PendingReceipt,
        elsewhere: &mut Vec<Handoff>,
    ) -> Result<(), EncodeError> {
        let State::Bound { system_id, kind } = &self.state else {
            // Receipts are only owed once bound; nothing to carry them on otherwise.
            return Ok(());
        };
        if receipt.other_bind {
            receipt.other_bind = false;
            let item = Handoff {
                deadline: Instant::now(),
                receipt,
            };
            match self.carrier.registry.offer_other(system_id, self.id, item) {
                None => {
                    Counters::incr(&self.carrier.counters.receipts_other_bind);
                    return Ok(());
                }
                // No other receiver is bound: deliver it as usual.
                Some(back) => receipt = back.receipt,
            }
        }
        if kind.can_receive() {
            self.send_receipt(receipt).await
        } else {
            elsewhere.push(Handoff {
                deadline: Instant::now(),
                receipt,
            });
            Ok(())
        }
    }

    fn route_elsewhere(&self, elsewhere: Vec<Handoff>) {
        if let State::Bound { system_id, .. } = &self.state {
            self.carrier.registry.route(system_id, self.id, elsewhere);
        }
    }

    /// Writes the receipt's `deliver_sm`, twice when it is marked `duplicate`.
    async fn send_receipt(&mut self, mut receipt: PendingReceipt) -> Result<(), EncodeError> {
        let copies = if std::mem::take(&mut receipt.duplicate) {
            2
        } else {
            1
        };
        for copy in 0..copies {
            let seq = self.next_seq;
            // Sequence numbers run 1..=0x7FFF_FFFF.
            self.next_seq = if seq >= 0x7FFF_FFFF { 1 } else { seq + 1 };
            let deliver = receipt.to_deliver_sm();
            self.writer
                .feed(Command::new(CommandStatus::EsmeRok, seq, deliver))
                .await?;
            self.outstanding.insert(seq, receipt.clone());
            Counters::incr(&self.carrier.counters.receipts_sent);
            if receipt.refused && copy == 0 {
                Counters::incr(&self.carrier.counters.receipts_resent);
            }
            if copy > 0 {
                Counters::incr(&self.carrier.counters.duplicate_receipts_sent);
            }
        }
        Ok(())
    }

    pub(super) fn adopt_orphans(&mut self) {
        let State::Bound { system_id, kind } = &self.state else {
            return;
        };
        if !kind.can_receive() || !self.carrier.registry.has_orphans() {
            return;
        }
        for h in self.carrier.registry.take_orphans(system_id) {
            self.receipts.insert_at(h.receipt, h.deadline);
        }
    }

    /// Leaves the registry and passes every receipt still owed (queued, handed over, or sent
    /// and not acknowledged) to another bind of the account, or to the carrier to keep.
    pub(super) fn finish(mut self, reason: &'static str, mut handoff_rx: mpsc::Receiver<Handoff>) {
        let State::Bound { system_id, .. } = &self.state else {
            debug!(peer = %self.peer, reason, "connection closed before bind");
            return;
        };
        let registry = &self.carrier.registry;
        registry.unbind(system_id, self.id);
        let now = Instant::now();
        let mut owed: Vec<Handoff> = self
            .outstanding
            .drain()
            .map(|(_, receipt)| Handoff {
                deadline: now,
                receipt,
            })
            .collect();
        // Unlisted first, then closed: a hand-off either landed before the close (and is
        // drained here) or fails and stays with the carrier. None is lost in between.
        handoff_rx.close();
        while let Ok(h) = handoff_rx.try_recv() {
            owed.push(h);
        }
        while let Some(key) = self.receipts.peek() {
            let expired = self.receipts.remove(&key);
            owed.push(Handoff {
                deadline: expired.deadline(),
                receipt: expired.into_inner(),
            });
        }
        info!(carrier = %self.carrier.cfg.name, peer = %self.peer, system_id, reason, receipts_owed = owed.len(), "session closed");
        registry.route(system_id, self.id, owed);
    }
}
