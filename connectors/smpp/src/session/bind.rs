//! The bind handshake: TCP connect, bind request, wait for its response.
//!
//! Role: turn a [`SessionConfig`] into a bound connection (or a [`SessionError`] saying why
//! not), answering the peer's enquire_link meanwhile. [`super::connect`] bounds it with
//! `bind_timeout` and hands the connection to the socket task.

use futures::{SinkExt, StreamExt};
use rusmpp::{tokio_codec::CommandCodec, Command, CommandId, CommandStatus, Pdu};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;
use tracing::debug;

use super::{pdu, SessionConfig, SessionError};
use crate::metrics;

pub(super) type Conn = Framed<TcpStream, CommandCodec>;

/// Sequence number of the bind request; the task's window starts after it.
pub(super) const BIND_SEQUENCE: u32 = 1;

pub(super) async fn bind(cfg: &SessionConfig) -> Result<Conn, SessionError> {
    let request = pdu::bind_command(cfg, BIND_SEQUENCE)?;
    let stream = TcpStream::connect(&cfg.addr)
        .await
        .map_err(|source| SessionError::Connect {
            addr: cfg.addr.clone(),
            source,
        })?;
    // Small PDUs, latency matters more than packet count.
    let _ = stream.set_nodelay(true);
    let mut framed = Framed::new(stream, CommandCodec::new());
    metrics::pdu(pdu::command_name(request.id()), "tx");
    framed.send(request).await.map_err(encode_io)?;
    loop {
        let cmd = match framed.next().await {
            None => {
                return Err(SessionError::Protocol(
                    "connection closed during bind".into(),
                ))
            }
            Some(Err(e)) => return Err(SessionError::Protocol(format!("pdu decode failed: {e}"))),
            Some(Ok(cmd)) => cmd,
        };
        metrics::pdu(pdu::command_name(cmd.id()), "rx");
        match cmd.id() {
            CommandId::BindTransceiverResp
            | CommandId::BindTransmitterResp
            | CommandId::BindReceiverResp
            | CommandId::GenericNack
                if cmd.sequence_number() == BIND_SEQUENCE =>
            {
                let status = u32::from(cmd.status());
                return match (cmd.id(), status) {
                    (CommandId::GenericNack, 0) => Err(SessionError::BindRefused {
                        // ESME_RBINDFAIL: a nack without a reason.
                        command_status: 0x0D,
                    }),
                    (CommandId::GenericNack, s) | (_, s @ 1..) => {
                        Err(SessionError::BindRefused { command_status: s })
                    }
                    _ => Ok(framed),
                };
            }
            CommandId::EnquireLink => {
                let resp = Command::new(
                    CommandStatus::EsmeRok,
                    cmd.sequence_number(),
                    Pdu::EnquireLinkResp,
                );
                metrics::pdu("enquire_link_resp", "tx");
                framed.send(resp).await.map_err(encode_io)?;
            }
            other => debug!(
                command = pdu::command_name(other),
                "pdu before bind_resp ignored"
            ),
        }
    }
}

fn encode_io(e: rusmpp::tokio_codec::EncodeError) -> SessionError {
    match e {
        rusmpp::tokio_codec::EncodeError::Io(io) => SessionError::Io(io),
        other => SessionError::Protocol(other.to_string()),
    }
}
