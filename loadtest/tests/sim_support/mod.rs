//! The test side of pigeon-sim's SMPP: a minimal rusmpp ESME over a framed socket, waits
//! that always have a deadline, and small builders, shared by the `sim_*` test crates.

// Each test crate uses part of this.
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use pigeon_loadtest::sim::{start, Account, CarrierSim, SimConfig, SimHandle, SimStats};
use rusmpp::pdus::{
    BindReceiver, BindTransceiver, BindTransmitter, DeliverSm, DeliverSmResp, SubmitSm,
};
use rusmpp::tlvs::TlvValue;
use rusmpp::tokio_codec::CommandCodec;
use rusmpp::types::{COctetString, OctetString};
use rusmpp::values::{DataCoding, EsmClass, RegisteredDelivery};
use rusmpp::{Command, CommandId, CommandStatus, Pdu};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

pub const DEADLINE: Duration = Duration::from_secs(10);

pub async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, f)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

pub async fn wait_stats(sim: &SimHandle, what: &str, pred: impl Fn(&SimStats) -> bool) -> SimStats {
    within(what, async {
        loop {
            let s = sim.stats();
            if pred(&s) {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
}

pub fn carrier(dlr_delay_ms: u64) -> CarrierSim {
    CarrierSim {
        accounts: vec![Account::new("bank", "secret")],
        dlr_delay: Duration::from_millis(dlr_delay_ms),
        ..CarrierSim::default()
    }
}

pub async fn sim_with(c: CarrierSim) -> (SimHandle, SocketAddr) {
    let sim = start(SimConfig { carriers: vec![c] }).await.unwrap();
    let addr = sim.addrs()[0].1;
    (sim, addr)
}

pub fn cstr<const MIN: usize, const MAX: usize>(s: &str) -> COctetString<MIN, MAX> {
    COctetString::from_string(s.to_string()).unwrap()
}

#[derive(Clone, Copy)]
pub enum Kind {
    Tx,
    Rx,
    Trx,
}

/// A bare ESME: one framed socket, sequence numbers, and a way to wait for one PDU.
pub struct Esme {
    pub framed: Framed<TcpStream, CommandCodec>,
    pub seq: u32,
}

impl Esme {
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = within("connect", TcpStream::connect(addr)).await.unwrap();
        Self {
            framed: Framed::new(stream, CommandCodec::new()),
            seq: 0,
        }
    }

    pub async fn send(&mut self, pdu: impl Into<Pdu>) -> u32 {
        self.seq += 1;
        let seq = self.seq;
        self.framed
            .send(Command::new(CommandStatus::EsmeRok, seq, pdu))
            .await
            .unwrap();
        seq
    }

    /// The next PDU, or `None` when the simulator closed the connection.
    pub async fn recv(&mut self) -> Option<Command> {
        match within("a pdu", self.framed.next()).await {
            Some(Ok(c)) => Some(c),
            Some(Err(_)) | None => None,
        }
    }

    pub async fn expect(&mut self, id: CommandId) -> Command {
        let c = self.recv().await.expect("connection closed");
        assert_eq!(c.id(), id, "unexpected pdu {c:?}");
        c
    }

    pub async fn bind(&mut self, kind: Kind, system_id: &str, password: &str) -> CommandStatus {
        let (id, pw) = (cstr(system_id), cstr(password));
        match kind {
            Kind::Tx => {
                self.send(
                    BindTransmitter::builder()
                        .system_id(id)
                        .password(pw)
                        .build(),
                )
                .await;
                self.expect(CommandId::BindTransmitterResp).await.status()
            }
            Kind::Rx => {
                self.send(BindReceiver::builder().system_id(id).password(pw).build())
                    .await;
                self.expect(CommandId::BindReceiverResp).await.status()
            }
            Kind::Trx => {
                self.send(
                    BindTransceiver::builder()
                        .system_id(id)
                        .password(pw)
                        .build(),
                )
                .await;
                self.expect(CommandId::BindTransceiverResp).await.status()
            }
        }
    }

    pub async fn bound(addr: SocketAddr, kind: Kind) -> Self {
        let mut esme = Self::connect(addr).await;
        assert_eq!(
            esme.bind(kind, "bank", "secret").await,
            CommandStatus::EsmeRok
        );
        esme
    }

    pub async fn submit(&mut self, dest: &str, esm_class: u8, data_coding: u8, body: &[u8]) -> u32 {
        let sm = SubmitSm::builder()
            .source_addr(cstr("95588"))
            .destination_addr(cstr(dest))
            .esm_class(EsmClass::from(esm_class))
            .registered_delivery(RegisteredDelivery::from(1))
            .data_coding(DataCoding::from(data_coding))
            .short_message(OctetString::from_slice(body).unwrap())
            .build();
        self.send(sm).await
    }

    /// Submits GSM text and returns the message id of the (successful) response.
    pub async fn submit_ok(&mut self, dest: &str, text: &str) -> String {
        let seq = self.submit(dest, 0, 0, text.as_bytes()).await;
        let resp = self.expect(CommandId::SubmitSmResp).await;
        assert_eq!(resp.sequence_number(), seq);
        assert_eq!(resp.status(), CommandStatus::EsmeRok);
        match resp.pdu() {
            Some(Pdu::SubmitSmResp(r)) => r.message_id().as_str().to_string(),
            other => panic!("unexpected {other:?}"),
        }
    }

    pub async fn ack(&mut self, seq: u32) {
        let ack = DeliverSmResp::builder().build();
        self.framed
            .send(Command::new(CommandStatus::EsmeRok, seq, ack))
            .await
            .unwrap();
    }

    /// Waits for a receipt, acknowledges it, and returns it.
    pub async fn receipt(&mut self) -> DeliverSm {
        let c = self.expect(CommandId::DeliverSm).await;
        self.ack(c.sequence_number()).await;
        match c.pdu() {
            Some(Pdu::DeliverSm(d)) => d.clone(),
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// The `receipted_message_id` and `message_state` TLVs of a receipt.
pub fn receipt_tlvs(d: &DeliverSm) -> (Option<String>, Option<u8>) {
    let mut id = None;
    let mut state = None;
    for tlv in d.tlvs() {
        match tlv.value() {
            Some(TlvValue::ReceiptedMessageId(s)) => id = Some(s.as_str().to_string()),
            Some(TlvValue::MessageState(s)) => state = Some(u8::from(*s)),
            _ => {}
        }
    }
    (id, state)
}

/// A concatenated part: UDH (8-bit reference) then GSM 7-bit unpacked text (ASCII letters).
pub fn udh_part(reference: u8, total: u8, seq: u8, text: &str) -> Vec<u8> {
    let mut v = vec![0x05, 0x00, 0x03, reference, total, seq];
    v.extend_from_slice(text.as_bytes());
    v
}

/// What an ESME saw, one PDU at a time (receipts are acknowledged on the way).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ev {
    Resp {
        seq: u32,
        status: CommandStatus,
        id: String,
    },
    Receipt {
        id: String,
        state: u8,
    },
    Other(CommandId),
}

impl Esme {
    /// A GSM `submit_sm` with `registered_delivery`, not waiting for the response.
    pub async fn submit_to(&mut self, dest: &str, registered_delivery: u8) -> u32 {
        let seq = self.feed_submit(dest, registered_delivery).await;
        self.flush().await;
        seq
    }

    /// [`Esme::submit_to`] without flushing, to send a burst in as few writes as possible.
    pub async fn feed_submit(&mut self, dest: &str, registered_delivery: u8) -> u32 {
        let sm = SubmitSm::builder()
            .source_addr(cstr("95588"))
            .destination_addr(cstr(dest))
            .registered_delivery(RegisteredDelivery::from(registered_delivery))
            .short_message(OctetString::from_slice(b"debit 10.00").unwrap())
            .build();
        self.seq += 1;
        let seq = self.seq;
        self.framed
            .feed(Command::new(CommandStatus::EsmeRok, seq, sm))
            .await
            .unwrap();
        seq
    }

    pub async fn flush(&mut self) {
        SinkExt::<Command>::flush(&mut self.framed).await.unwrap();
    }

    /// The next PDU as an [`Ev`], acknowledging receipts; `None` when the connection closed.
    pub async fn next_event(&mut self) -> Option<Ev> {
        let c = self.recv().await?;
        Some(match c.pdu() {
            Some(Pdu::SubmitSmResp(r)) => Ev::Resp {
                seq: c.sequence_number(),
                status: c.status(),
                id: r.message_id().as_str().to_string(),
            },
            Some(Pdu::DeliverSm(d)) => {
                self.ack(c.sequence_number()).await;
                let (id, state) = receipt_tlvs(d);
                Ev::Receipt {
                    id: id.expect("receipted_message_id tlv"),
                    state: state.expect("message_state tlv"),
                }
            }
            _ if c.id() == CommandId::SubmitSmResp => Ev::Resp {
                seq: c.sequence_number(),
                status: c.status(),
                id: String::new(),
            },
            _ => Ev::Other(c.id()),
        })
    }

    /// Events until `done` holds over all of them (checked after each one).
    pub async fn events_until(&mut self, done: impl Fn(&[Ev]) -> bool) -> Vec<Ev> {
        let mut seen = Vec::new();
        while !done(&seen) {
            let ev = self.next_event().await.expect("connection closed");
            seen.push(ev);
        }
        seen
    }
}

/// Responses in `evs`.
pub fn responses(evs: &[Ev]) -> impl Iterator<Item = (u32, CommandStatus, &str)> {
    evs.iter().filter_map(|e| match e {
        Ev::Resp { seq, status, id } => Some((*seq, *status, id.as_str())),
        _ => None,
    })
}

/// Receipt ids in `evs`, in arrival order.
pub fn receipt_ids(evs: &[Ev]) -> Vec<&str> {
    evs.iter()
        .filter_map(|e| match e {
            Ev::Receipt { id, .. } => Some(id.as_str()),
            _ => None,
        })
        .collect()
}

/// How many of `evs` are responses with `status`.
pub fn count_status(evs: &[Ev], status: CommandStatus) -> usize {
    responses(evs).filter(|(_, s, _)| *s == status).count()
}

/// `GET path` over plain HTTP/1.1; the status line and the body.
pub async fn http_get(addr: SocketAddr, path: &str) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = within("connect", TcpStream::connect(addr)).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    within("http response", stream.read_to_end(&mut raw))
        .await
        .unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    let status = head.lines().next().unwrap_or("").to_string();
    (status, body.to_string())
}
