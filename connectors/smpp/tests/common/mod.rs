//! A tiny scripted SMSC over real loopback TCP (optionally TLS, see `tls.rs`), built on
//! rusmpp's codec, for session tests.

#![allow(dead_code, clippy::unwrap_used)]

pub mod seen;
pub mod tls;

use std::time::Duration;

use bytes::BytesMut;
use futures::StreamExt;
use pigeon_smpp::receipt::{format_receipt_text, ReceiptState, ReceiptText};
use pigeon_smpp::session::{Inbound, Session, SessionConfig, Submit};
use rusmpp::{
    pdus::{BindReceiverResp, BindTransceiverResp, BindTransmitterResp, DeliverSm, SubmitSmResp},
    tlvs::MessageDeliveryRequestTlvValue,
    tokio_codec::CommandCodec,
    types::{COctetString, OctetString},
    values::{EsmClass, MessageState},
    Command, CommandId, CommandStatus, Pdu,
};
use seen::{seen_submit, SeenSubmit};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tokio_util::codec::{Encoder, FramedRead};

pub const PASSWORD: &str = "secret";

/// What the SMSC does.
#[derive(Clone, Debug)]
pub struct Script {
    pub respond_submits: bool,
    pub response_delay: Duration,
    pub reject_status: Option<u32>,
    /// After each accepted submit: a text receipt, a TLV-only receipt and an unparseable one.
    pub send_receipts: bool,
    /// Drop the connection after reading this many submits (without answering them).
    pub close_after_submits: Option<usize>,
    /// Write garbage after reading this many submits (without answering them).
    pub garbage_after_submits: Option<usize>,
    pub answer_enquire_link: bool,
    /// Send an enquire_link right after the bind.
    pub probe_enquire_link: bool,
    /// Send an unbind right after the bind.
    pub unbind_after_bind: bool,
    /// After each accepted submit: a text receipt whose receipted_message_id TLV lacks its nul
    /// (rusmpp cannot decode it).
    pub malformed_receipts: bool,
    /// Answer submits with a submit_sm_resp whose message_id lacks its nul.
    pub malformed_submit_resp: bool,
}

impl Default for Script {
    fn default() -> Self {
        Self {
            respond_submits: true,
            response_delay: Duration::ZERO,
            reject_status: None,
            send_receipts: false,
            close_after_submits: None,
            garbage_after_submits: None,
            answer_enquire_link: true,
            probe_enquire_link: false,
            unbind_after_bind: false,
            malformed_receipts: false,
            malformed_submit_resp: false,
        }
    }
}

/// What the SMSC saw.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    pub binds: usize,
    /// The last bind: its command, interface_version and address_range.
    pub bind_command: Option<CommandId>,
    pub interface_version: Option<u8>,
    pub address_range: String,
    pub submits: usize,
    pub in_flight: usize,
    pub max_in_flight: usize,
    pub deliver_sm_resps: Vec<u32>,
    pub enquire_links: usize,
    pub enquire_link_resps: usize,
    pub unbinds: usize,
    pub unbind_resps: usize,
    pub closed: bool,
    /// Every submit_sm, in the order read.
    pub submit_pdus: Vec<SeenSubmit>,
}

pub struct Smsc {
    pub addr: String,
    pub observed: watch::Receiver<Observed>,
}

impl Smsc {
    /// Waits (at most 10 s) until `f` holds for what the SMSC saw.
    pub async fn wait_for(&self, what: &str, f: impl Fn(&Observed) -> bool) -> Observed {
        let mut rx = self.observed.clone();
        let found = tokio::time::timeout(Duration::from_secs(10), async {
            rx.wait_for(|o| f(o)).await.map(|o| o.clone())
        })
        .await;
        match found {
            Ok(Ok(o)) => o,
            _ => panic!("smsc never saw: {what}; saw {:?}", *self.observed.borrow()),
        }
    }

    pub fn now(&self) -> Observed {
        self.observed.borrow().clone()
    }
}

fn out_cmd(c: Command) -> Out {
    Out::Cmd(Box::new(c))
}

enum Out {
    Cmd(Box<Command>),
    Raw(Vec<u8>),
    Close,
}

/// Starts an SMSC serving one connection at a time on a fresh loopback port.
pub async fn start(script: Script) -> Smsc {
    start_with(script, None).await
}

/// Like [`start`], with TLS on every connection when `tls` is given (a failed handshake
/// just drops that connection).
pub async fn start_with(script: Script, tls: Option<TlsAcceptor>) -> Smsc {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (obs_tx, obs_rx) = watch::channel(Observed::default());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            match &tls {
                None => serve(stream, script.clone(), obs_tx.clone()).await,
                Some(acceptor) => {
                    if let Ok(stream) = acceptor.accept(stream).await {
                        serve(stream, script.clone(), obs_tx.clone()).await;
                    }
                }
            }
        }
    });
    Smsc {
        addr,
        observed: obs_rx,
    }
}

async fn serve<S>(stream: S, script: Script, obs: watch::Sender<Observed>)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (rd, mut wr) = tokio::io::split(stream);
    let mut reader = FramedRead::new(rd, CommandCodec::new());
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Out>();
    let writer_obs = obs.clone();
    let writer = tokio::spawn(async move {
        let mut codec = CommandCodec::new();
        while let Some(out) = out_rx.recv().await {
            let bytes = match out {
                Out::Cmd(cmd) => {
                    if cmd.id() == CommandId::SubmitSmResp {
                        writer_obs.send_modify(|o| o.in_flight -= 1);
                    }
                    let mut buf = BytesMut::new();
                    codec.encode(*cmd, &mut buf).unwrap();
                    buf.to_vec()
                }
                Out::Raw(b) => b,
                Out::Close => break,
            };
            if wr.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    let mut next_seq = 1_000u32;
    let mut message_no = 0u32;
    while let Some(Ok(cmd)) = reader.next().await {
        let seq = cmd.sequence_number();
        match cmd.id() {
            CommandId::BindTransceiver | CommandId::BindTransmitter | CommandId::BindReceiver => {
                let (password, version, range) = match cmd.pdu() {
                    Some(Pdu::BindTransceiver(b)) => {
                        (&b.password, b.interface_version, &b.address_range)
                    }
                    Some(Pdu::BindTransmitter(b)) => {
                        (&b.password, b.interface_version, &b.address_range)
                    }
                    Some(Pdu::BindReceiver(b)) => {
                        (&b.password, b.interface_version, &b.address_range)
                    }
                    _ => panic!("bind without body"),
                };
                let ok = password.as_str() == PASSWORD;
                let (version, range) = (u8::from(version), range.as_str().to_owned());
                obs.send_modify(|o| {
                    o.binds += usize::from(ok);
                    o.bind_command = Some(cmd.id());
                    o.interface_version = Some(version);
                    o.address_range = range;
                });
                let status = if ok { 0 } else { 0x0E };
                let id = || COctetString::from_string("smsc".into()).unwrap();
                let resp: Pdu = match cmd.id() {
                    CommandId::BindTransmitter => BindTransmitterResp::builder()
                        .system_id(id())
                        .build()
                        .into(),
                    CommandId::BindReceiver => {
                        BindReceiverResp::builder().system_id(id()).build().into()
                    }
                    _ => BindTransceiverResp::builder()
                        .system_id(id())
                        .build()
                        .into(),
                };
                let _ = out_tx.send(out_cmd(Command::new(
                    CommandStatus::from(status),
                    seq,
                    resp,
                )));
                if !ok {
                    break;
                }
                if script.probe_enquire_link {
                    next_seq += 1;
                    let _ = out_tx.send(out_cmd(Command::new(
                        CommandStatus::EsmeRok,
                        next_seq,
                        Pdu::EnquireLink,
                    )));
                }
                if script.unbind_after_bind {
                    next_seq += 1;
                    let _ = out_tx.send(out_cmd(Command::new(
                        CommandStatus::EsmeRok,
                        next_seq,
                        Pdu::Unbind,
                    )));
                }
            }
            CommandId::SubmitSm => {
                let Some(Pdu::SubmitSm(sm)) = cmd.pdu() else {
                    panic!()
                };
                let seen = seen_submit(sm);
                obs.send_modify(|o| {
                    o.submit_pdus.push(seen);
                    o.submits += 1;
                    o.in_flight += 1;
                    o.max_in_flight = o.max_in_flight.max(o.in_flight);
                });
                let submits = obs.borrow().submits;
                if script.close_after_submits == Some(submits) {
                    let _ = out_tx.send(Out::Close);
                    break;
                }
                if script.garbage_after_submits == Some(submits) {
                    // command_length 0x00FFFFFF: far beyond any sane PDU.
                    let _ = out_tx.send(Out::Raw(vec![
                        0, 0xFF, 0xFF, 0xFF, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 9,
                    ]));
                    continue;
                }
                if !script.respond_submits {
                    continue;
                }
                if script.malformed_submit_resp {
                    // submit_sm_resp, status 0, message_id "abc" without its nul.
                    let mut raw = vec![0, 0, 0, 19, 0x80, 0, 0, 4, 0, 0, 0, 0];
                    raw.extend_from_slice(&seq.to_be_bytes());
                    raw.extend_from_slice(b"abc");
                    let _ = out_tx.send(Out::Raw(raw));
                    continue;
                }
                message_no += 1;
                let id = format!("{message_no:08X}");
                let out = out_tx.clone();
                let script = script.clone();
                next_seq += 10;
                let deliver_seq = next_seq;
                tokio::spawn(async move {
                    if !script.response_delay.is_zero() {
                        tokio::time::sleep(script.response_delay).await;
                    }
                    let status = script.reject_status.unwrap_or(0);
                    let resp = SubmitSmResp::builder()
                        .message_id(COctetString::from_string(id.clone()).unwrap())
                        .build();
                    let _ = out.send(out_cmd(Command::new(
                        CommandStatus::from(status),
                        seq,
                        resp,
                    )));
                    if script.send_receipts && status == 0 {
                        for (i, d) in receipts(&id).into_iter().enumerate() {
                            let s = deliver_seq + u32::try_from(i).unwrap();
                            let _ = out.send(out_cmd(Command::new(CommandStatus::EsmeRok, s, d)));
                        }
                    }
                    if script.malformed_receipts && status == 0 {
                        let _ = out.send(Out::Raw(malformed_receipt(deliver_seq, &id)));
                    }
                });
            }
            CommandId::DeliverSmResp => {
                let status = u32::from(cmd.status());
                obs.send_modify(|o| o.deliver_sm_resps.push(status));
            }
            CommandId::EnquireLink => {
                obs.send_modify(|o| o.enquire_links += 1);
                if script.answer_enquire_link {
                    let _ = out_tx.send(out_cmd(Command::new(
                        CommandStatus::EsmeRok,
                        seq,
                        Pdu::EnquireLinkResp,
                    )));
                }
            }
            CommandId::EnquireLinkResp => obs.send_modify(|o| o.enquire_link_resps += 1),
            CommandId::Unbind => {
                obs.send_modify(|o| o.unbinds += 1);
                let _ = out_tx.send(out_cmd(Command::new(
                    CommandStatus::EsmeRok,
                    seq,
                    Pdu::UnbindResp,
                )));
                let _ = out_tx.send(Out::Close);
            }
            CommandId::UnbindResp => {
                obs.send_modify(|o| o.unbind_resps += 1);
                let _ = out_tx.send(Out::Close);
            }
            _ => {}
        }
    }
    let _ = out_tx.send(Out::Close);
    let _ = writer.await;
    obs.send_modify(|o| o.closed = true);
}

/// A text receipt, a TLV-only receipt (upper-case hex id) and an unparseable one.
fn receipts(id: &str) -> Vec<DeliverSm> {
    let text = format_receipt_text(&ReceiptText {
        id,
        sub: 1,
        dlvrd: 1,
        submit_date: "2401311200",
        done_date: "2401311201",
        state: ReceiptState::Delivered,
        err: 0,
        text: "",
    });
    let base = || {
        DeliverSm::builder()
            .source_addr(COctetString::from_string("4915112345678".into()).unwrap())
            .destination_addr(COctetString::from_string("Bank".into()).unwrap())
            .esm_class(EsmClass::from(0x04))
    };
    vec![
        base()
            .short_message(OctetString::from_vec(text.into_bytes()).unwrap())
            .build(),
        base()
            .push_tlv(MessageDeliveryRequestTlvValue::ReceiptedMessageId(
                COctetString::from_string(id.to_owned()).unwrap(),
            ))
            .push_tlv(MessageDeliveryRequestTlvValue::MessageState(
                MessageState::Undeliverable,
            ))
            .build(),
        base()
            .short_message(OctetString::from_vec(b"this is not a receipt".to_vec()).unwrap())
            .build(),
    ]
}

/// A text receipt for `id` (state EXPIRED) whose receipted_message_id TLV has no nul and
/// whose last TLV runs past the end of the PDU: rusmpp refuses it.
pub fn malformed_receipt(seq: u32, id: &str) -> Vec<u8> {
    let text = format_receipt_text(&ReceiptText {
        id,
        sub: 1,
        dlvrd: 0,
        submit_date: "2401311200",
        done_date: "2401311201",
        state: ReceiptState::Expired,
        err: 0,
        text: "",
    });
    let mut body = vec![0, 1, 1];
    body.extend_from_slice(b"4915112345678\0");
    body.extend_from_slice(&[5, 0]);
    body.extend_from_slice(b"Bank\0");
    body.push(0x04); // esm_class: receipt
    body.extend_from_slice(&[0; 8]);
    body.push(u8::try_from(text.len()).unwrap());
    body.extend_from_slice(text.as_bytes());
    body.extend_from_slice(&[0x00, 0x1E, 0x00, u8::try_from(id.len()).unwrap()]);
    body.extend_from_slice(id.as_bytes());
    body.extend_from_slice(&[0x04, 0x23, 0x00, 0x03, 0x03]);
    let mut pdu = u32::try_from(16 + body.len())
        .unwrap()
        .to_be_bytes()
        .to_vec();
    pdu.extend_from_slice(&[0, 0, 0, 5, 0, 0, 0, 0]);
    pdu.extend_from_slice(&seq.to_be_bytes());
    pdu.extend_from_slice(&body);
    pdu
}

pub fn config(addr: &str) -> SessionConfig {
    let mut cfg = SessionConfig::new(addr, "pigeon", PASSWORD);
    cfg.window = 10;
    cfg.response_timeout = Duration::from_secs(5);
    cfg.enquire_link_interval = Duration::from_secs(30);
    cfg.bind_timeout = Duration::from_secs(5);
    cfg
}

pub fn submit(n: usize) -> Submit {
    Submit {
        source_addr: "Bank".into(),
        destination_addr: format!("49151{n:08}"),
        data_coding: 0,
        esm_class: 0,
        short_message: bytes::Bytes::from_static(b"Your account was debited"),
        registered_delivery: true,
        sar: None,
        message_payload: false,
    }
}

/// Waits (at most 10 s) for the next inbound item.
pub async fn next_inbound(rx: &mut mpsc::Receiver<Inbound>) -> Inbound {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("no inbound item within 10 s")
        .expect("inbound channel closed")
}

/// Waits (at most 10 s) until the session reports closed.
pub async fn wait_closed(session: &Session) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut rx_poll = tokio::time::interval(Duration::from_millis(5));
    while !session.is_closed() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "session never closed"
        );
        rx_poll.tick().await;
    }
}
