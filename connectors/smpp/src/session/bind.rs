//! The bind handshake: TCP connect, then bind request and its response over any stream.
//!
//! Role: turn a [`SessionConfig`] into a bound connection (or a [`SessionError`] saying why
//! not), answering the peer's enquire_link meanwhile. [`super::connect`] bounds it (with the
//! TLS handshake in between) by `bind_timeout` and hands the connection to the socket task.

use futures::{SinkExt, StreamExt};
use rusmpp::CommandId;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;
use tracing::debug;

use super::codec::{Frame, FrameError, SessionCodec};
use super::{pdu, SessionConfig, SessionError};
use crate::metrics;

/// A connection framed into PDUs, over plain TCP or TLS.
pub(super) type Conn<S> = Framed<S, SessionCodec>;

/// Sequence number of the bind request; the task's window starts after it.
pub(super) const BIND_SEQUENCE: u32 = 1;

/// TCP connect with Nagle off.
pub(super) async fn dial(cfg: &SessionConfig) -> Result<TcpStream, SessionError> {
    let stream = TcpStream::connect(&cfg.addr)
        .await
        .map_err(|source| SessionError::Connect {
            addr: cfg.addr.clone(),
            source,
        })?;
    // Small PDUs, latency matters more than packet count (writes are batched anyway).
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Sends the bind request over `stream` and waits for its response.
pub(super) async fn bind<S>(cfg: &SessionConfig, stream: S) -> Result<Conn<S>, SessionError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let request = pdu::bind_command(cfg, BIND_SEQUENCE)?;
    let mut framed = Framed::new(stream, SessionCodec::new());
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
            Some(Ok(Frame::Malformed(m))) => {
                return Err(SessionError::Protocol(format!(
                    "undecodable pdu {:#010x} during bind: {}",
                    m.command_id, m.error
                )))
            }
            Some(Ok(Frame::Command(cmd))) => cmd,
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
                let resp = pdu::enquire_link_resp(cmd.sequence_number());
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

fn encode_io(e: FrameError) -> SessionError {
    match e {
        FrameError::Io(io) => SessionError::Io(io),
        other => SessionError::Protocol(other.to_string()),
    }
}
