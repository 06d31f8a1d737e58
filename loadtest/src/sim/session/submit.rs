//! `submit_sm` as a faulty carrier answers it, in this order: not bound or malformed UDH
//! (protocol errors), over `throttle_tps` (`ESME_RTHROTTLED`), a `reject_prefixes`
//! destination (`ESME_RINVDSTADR`), an `error_rate` hit (`error_status`); otherwise accepted
//! (counted, given an id) and then answered after `response_latency`, or never
//! (`no_response_rate`). Its receipt, if asked for, is drawn from `receipt_mix` and queued
//! after `dlr_delay` plus jitter, or sent before the response (`receipt_before_response`).

use std::sync::Arc;

use futures::SinkExt;

use pigeon_smpp::receipt::ReceiptState;
use rusmpp::pdus::SubmitSm;
use rusmpp::tokio_codec::EncodeError;
use rusmpp::{Command, CommandStatus};
use time::OffsetDateTime;
use tokio::time::Instant;

use super::{submit_resp, Session, State};
use crate::sim::dlr::{smpp_date, wants_receipt, PendingReceipt};
use crate::sim::ids::next_message_number;
use crate::sim::stats::Counters;
use crate::sim::submit;

impl Session {
    pub(super) async fn submit(&mut self, seq: u32, sm: &SubmitSm) -> Result<(), EncodeError> {
        let may_submit = matches!(&self.state, State::Bound { kind, .. } if kind.can_submit());
        if !may_submit {
            return self
                .reply(CommandStatus::EsmeRinvbndsts, seq, submit_resp(""))
                .await;
        }
        let Some((concat, payload)) = submit::split(sm) else {
            return self
                .reply(CommandStatus::EsmeRinvesmclass, seq, submit_resp(""))
                .await;
        };
        let carrier = Arc::clone(&self.carrier);
        let (cfg, counters) = (&carrier.cfg, &carrier.counters);
        if let Some(throttle) = &self.throttle {
            if !throttle.admit(Instant::now()) {
                Counters::incr(&counters.throttled);
                return self.respond(CommandStatus::EsmeRthrottled, seq, "").await;
            }
        }
        let destination = sm.destination_addr.as_str();
        if cfg
            .reject_prefixes
            .iter()
            .any(|p| destination.starts_with(p.as_str()))
        {
            Counters::incr(&counters.errors);
            return self.respond(CommandStatus::EsmeRinvdstadr, seq, "").await;
        }
        if self.dice.chance(cfg.error_rate) {
            Counters::incr(&counters.errors);
            let status = CommandStatus::from(cfg.error_status);
            return self.respond(status, seq, "").await;
        }

        Counters::incr(&counters.submits);
        let number = next_message_number();
        let spelling = cfg.id_spelling();
        let silent = self.dice.chance(cfg.no_response_rate);
        submit::count_message(&carrier, sm, concat, payload);
        let receipt = if silent && !cfg.no_response_still_delivers {
            None
        } else {
            self.receipt_for(sm, spelling.receipt_id(number))
        };
        let mut receipt_first = None;
        if let Some(receipt) = receipt {
            if self.dice.chance(cfg.receipt_before_response) {
                receipt_first = Some(receipt);
            } else {
                let delay = self.dice.delay(cfg.dlr_delay, cfg.dlr_jitter);
                self.receipts.insert(receipt, delay);
            }
        }
        if let Some(receipt) = receipt_first {
            Counters::incr(&counters.receipts_before_response);
            self.deliver_now(receipt).await?;
        }
        if silent {
            Counters::incr(&counters.no_response);
            return Ok(());
        }
        self.respond(CommandStatus::EsmeRok, seq, &spelling.response_id(number))
            .await
    }

    /// The receipt owed for `sm`, if its `registered_delivery` asks for the drawn state.
    fn receipt_for(&mut self, sm: &SubmitSm, message_id: String) -> Option<PendingReceipt> {
        let cfg = &self.carrier.cfg;
        let state: ReceiptState = self.dice.receipt_state(&cfg.receipt_mix, cfg.receipt_state);
        if !wants_receipt(u8::from(sm.registered_delivery), state) {
            return None;
        }
        Some(PendingReceipt {
            message_id,
            handset: sm.destination_addr.clone(),
            handset_ton: sm.dest_addr_ton,
            handset_npi: sm.dest_addr_npi,
            esme: sm.source_addr.clone(),
            esme_ton: sm.source_addr_ton,
            esme_npi: sm.source_addr_npi,
            submit_date: smpp_date(OffsetDateTime::now_utc()),
            state,
            duplicate: self.dice.chance(cfg.duplicate_receipts),
            other_bind: self.dice.chance(cfg.receipts_on_other_bind),
            refused: false,
        })
    }

    /// A `submit_sm_resp`, now or after `response_latency` (in order with earlier ones).
    async fn respond(
        &mut self,
        status: CommandStatus,
        seq: u32,
        message_id: &str,
    ) -> Result<(), EncodeError> {
        let latency = self.carrier.cfg.response_latency;
        if latency.is_zero() && self.outbox.is_empty() {
            return self.reply(status, seq, submit_resp(message_id)).await;
        }
        let due = Instant::now() + self.dice.latency(latency);
        let response = Command::new(status, seq, submit_resp(message_id));
        self.outbox.push(due, response);
        Ok(())
    }

    /// Writes every held-back response that is due, then flushes.
    pub(super) async fn send_due_responses(&mut self) -> Result<(), EncodeError> {
        let now = Instant::now();
        while let Some(response) = self.outbox.pop_due(now) {
            self.writer.feed(response).await?;
        }
        SinkExt::<Command>::flush(&mut self.writer).await
    }
}
