//! What the socket task does with each PDU the peer sends.
//!
//! Role: match responses to pending requests, answer the peer's requests (enquire_link,
//! unbind, deliver_sm, unknown ones with generic_nack), turn receipts into
//! [`Inbound::Receipt`], and read a `deliver_sm` rusmpp could not decode leniently instead of
//! dropping the session over it.

use rusmpp::{Command, CommandId, Pdu};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{timeout, Instant};
use tracing::{debug, warn};

use super::{Close, Pending, SocketTask, State};
use crate::metrics;
use crate::receipt::ReceiptTlvs;
use crate::session::codec::{Frame, FrameError, Malformed};
use crate::session::lenient::read_deliver_sm;
use crate::session::pdu::{self, command_name, is_response};
use crate::session::{Inbound, ReceiptAck, SubmitOutcome};

/// How a `deliver_sm` is answered.
pub(super) enum Answer {
    /// With this status, now.
    Now(u32),
    /// When the receiver acknowledges the receipt (status 0), or refuses or times out
    /// (`ESME_RX_T_APPN`).
    Later(tokio::sync::oneshot::Receiver<()>),
}

impl<S> SocketTask<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    /// One read result: a PDU, a PDU rusmpp could not decode, the end, or a framing error.
    pub(super) async fn on_frame(
        &mut self,
        frame: Option<Result<Frame, FrameError>>,
    ) -> Result<(), Close> {
        match frame {
            // Some SMSCs close right after (or instead of) their unbind_resp.
            None if self.state == (State::Unbinding { unbind_sent: true }) => {
                Err(Close::new("unbound", "unbound"))
            }
            None => Err(Close::new("peer_closed", "connection closed by peer")),
            Some(Err(e)) => Err(Close::new(
                "decode_error",
                format!("pdu decode failed: {e}"),
            )),
            Some(Ok(Frame::Command(cmd))) => {
                self.last_rx = Instant::now();
                self.on_command(cmd).await
            }
            Some(Ok(Frame::Malformed(m))) => {
                self.last_rx = Instant::now();
                if m.is_deliver_sm() {
                    self.on_malformed_deliver_sm(m).await
                } else {
                    Err(Close::new(
                        "decode_error",
                        format!(
                            "pdu decode failed: command_id {:#010x}: {}",
                            m.command_id, m.error
                        ),
                    ))
                }
            }
        }
    }

    async fn on_command(&mut self, cmd: Command) -> Result<(), Close> {
        let id = cmd.id();
        let seq = cmd.sequence_number();
        self.pdus.increment((command_name(id), "rx"));
        if is_response(id) {
            self.on_response(cmd);
            return if self.state == (State::Unbinding { unbind_sent: true })
                && self.pending.unbinds == 0
            {
                Err(Close::new("unbound", "unbound"))
            } else {
                Ok(())
            };
        }
        match id {
            CommandId::EnquireLink => self.write(pdu::enquire_link_resp(seq)).await,
            CommandId::DeliverSm => self.on_deliver_sm(cmd).await,
            CommandId::Unbind => {
                self.write(pdu::unbind_resp(seq)).await?;
                self.flush().await?;
                Err(Close::new("peer_unbound", "peer unbound"))
            }
            CommandId::AlertNotification => Ok(()),
            CommandId::BindTransceiver
            | CommandId::BindTransmitter
            | CommandId::BindReceiver
            | CommandId::Outbind
            | CommandId::SubmitSm => Err(Close::new(
                "protocol_error",
                format!("peer sent {} to a client", command_name(id)),
            )),
            other => {
                warn!(
                    command = command_name(other),
                    "unsupported request answered with generic_nack"
                );
                self.write(pdu::generic_nack(pdu::ESME_RINVCMDID, seq))
                    .await
            }
        }
    }

    fn on_response(&mut self, cmd: Command) {
        let id = cmd.id();
        let seq = cmd.sequence_number();
        let status = u32::from(cmd.status());
        match self.pending.remove(seq) {
            Some(Pending::Submit { reply, sent_at }) => {
                (self.submit_response_times).record(sent_at.elapsed().as_secs_f64());
                let outcome = match (id, cmd.pdu()) {
                    (CommandId::SubmitSmResp, Some(Pdu::SubmitSmResp(r))) if status == 0 => {
                        SubmitOutcome::Accepted {
                            message_id: r.message_id().as_str().to_owned(),
                        }
                    }
                    (CommandId::SubmitSmResp, None) if status == 0 => {
                        warn!(seq, "submit_sm_resp accepted without a message id");
                        SubmitOutcome::Accepted {
                            message_id: String::new(),
                        }
                    }
                    (CommandId::SubmitSmResp | CommandId::GenericNack, _) => {
                        debug!(seq, command_status = status, "submit_sm rejected");
                        SubmitOutcome::Rejected {
                            command_status: status,
                        }
                    }
                    (other, _) => {
                        warn!(
                            seq,
                            command = command_name(other),
                            "wrong response to submit_sm"
                        );
                        SubmitOutcome::Lost
                    }
                };
                let _ = reply.send(outcome);
            }
            Some(Pending::EnquireLink { .. }) | Some(Pending::Unbind) => {}
            None => {
                metrics::unmatched_response();
                debug!(
                    seq,
                    command = command_name(id),
                    command_status = status,
                    "response matches no pending request"
                );
            }
        }
    }

    async fn on_deliver_sm(&mut self, cmd: Command) -> Result<(), Close> {
        let seq = cmd.sequence_number();
        let status = match cmd.pdu() {
            Some(Pdu::DeliverSm(d)) => {
                let (tlvs, payload) = pdu::receipt_parts(d);
                let sm = d.short_message().as_ref();
                self.deliver(u8::from(d.esm_class), sm, payload, &tlvs)
                    .await
            }
            _ => {
                warn!("deliver_sm without a body acknowledged");
                Answer::Now(0)
            }
        };
        self.answer_deliver_sm(seq, status).await
    }

    /// A `deliver_sm` rusmpp refused (typically a receipt TLV without its nul): answered with
    /// status 0 so the SMSC does not resend it forever, and read leniently.
    async fn on_malformed_deliver_sm(&mut self, m: Malformed) -> Result<(), Close> {
        self.pdus.increment(("deliver_sm", "rx"));
        metrics::malformed_deliver_sm();
        warn!(
            seq = m.sequence_number,
            error = %m.error,
            "malformed deliver_sm acknowledged, reading it leniently"
        );
        let status = match m.raw.as_deref().and_then(read_deliver_sm) {
            Some(d) => {
                self.deliver(d.esm_class, d.short_message, d.payload, &d.tlvs)
                    .await
            }
            None => {
                self.receipts.increment("unparsed");
                warn!(
                    seq = m.sequence_number,
                    "deliver_sm unreadable, acknowledged and dropped"
                );
                Answer::Now(0)
            }
        };
        self.answer_deliver_sm(m.sequence_number, status).await
    }

    /// Answers now, or once the receiver acknowledges the receipt (see
    /// [`crate::session::ReceiptAck`]): a late answer is written on a later turn.
    async fn answer_deliver_sm(&mut self, seq: u32, answer: Answer) -> Result<(), Close> {
        match answer {
            Answer::Now(status) => self.write(pdu::deliver_sm_resp(status, seq)).await,
            Answer::Later(acked) => {
                let wait = self.cfg.response_timeout;
                self.acks.push(Box::pin(async move {
                    match timeout(wait, acked).await {
                        Ok(Ok(())) => (seq, 0),
                        Ok(Err(_)) => {
                            metrics::receipt("not_acknowledged");
                            (seq, pdu::ESME_RX_T_APPN)
                        }
                        Err(_) => {
                            metrics::receipt("ack_timeout");
                            (seq, pdu::ESME_RX_T_APPN)
                        }
                    }
                }));
                Ok(())
            }
        }
    }

    /// Handles one deliver_sm's content; returns the deliver_sm_resp status.
    async fn deliver(
        &mut self,
        esm_class: u8,
        short_message: &[u8],
        payload: Option<&[u8]>,
        tlvs: &ReceiptTlvs,
    ) -> Answer {
        match pdu::receipt_of(esm_class, short_message, payload, tlvs) {
            None => {
                debug!("mobile-originated deliver_sm acknowledged and ignored");
                Answer::Now(0)
            }
            Some(Ok(receipt)) if self.acks.len() >= self.cfg.max_unanswered_receipts => {
                self.receipts.increment("refused_busy");
                debug!(message_id = %receipt.message_id, "receipt refused: too many unanswered");
                Answer::Now(pdu::ESME_RX_T_APPN)
            }
            Some(Ok(receipt)) => {
                debug!(message_id = %receipt.message_id, state = ?receipt.state, "receipt");
                let (ack, acked) = ReceiptAck::channel();
                match self.forward(Inbound::Receipt(receipt, ack)).await {
                    0 => Answer::Later(acked),
                    refused => Answer::Now(refused),
                }
            }
            Some(Err(e)) => {
                self.receipts.increment("unparsed");
                warn!(reason = %e, "receipt not understood, acknowledged anyway");
                Answer::Now(0)
            }
        }
    }

    /// Hands a receipt on; returns the deliver_sm_resp status: 0, or ESME_RX_T_APPN when the
    /// inbound mailbox stays full for `response_timeout` or is gone, so the SMSC retries later.
    async fn forward(&mut self, item: Inbound) -> u32 {
        let item = match self.inbound.try_send(item) {
            Ok(()) => {
                self.receipts.increment("forwarded");
                return 0;
            }
            Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => {
                self.receipts.increment("not_forwarded");
                warn!("inbound receiver is gone, receipt refused for redelivery");
                return pdu::ESME_RX_T_APPN;
            }
            Err(tokio::sync::mpsc::error::TrySendError::Full(item)) => item,
        };
        // About to wait: let the submits already written go out first.
        if self.flush().await.is_err() {
            debug!("flush before waiting for the inbound mailbox failed");
        }
        let started = Instant::now();
        let result = timeout(self.cfg.response_timeout, self.inbound.send(item)).await;
        metrics::inbound_blocked(started.elapsed());
        match result {
            Ok(Ok(())) => {
                self.receipts.increment("forwarded");
                0
            }
            Ok(Err(_)) => {
                self.receipts.increment("not_forwarded");
                warn!("inbound receiver is gone, receipt refused for redelivery");
                pdu::ESME_RX_T_APPN
            }
            Err(_) => {
                self.receipts.increment("not_forwarded");
                warn!("inbound mailbox full, receipt refused for redelivery");
                pdu::ESME_RX_T_APPN
            }
        }
    }
}
