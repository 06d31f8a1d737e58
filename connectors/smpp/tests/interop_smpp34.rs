//! Interop: our session against the independent `smpp34` crate's SMSC (server) over loopback.
//!
//! `smpp34`'s listener trait is declared with `#[async_trait]`; to avoid adding the
//! `async-trait` crate only for this test, the few overridden methods are written in the
//! boxed-future form that macro expands to.

#![allow(clippy::unwrap_used)]

mod common;

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{config, next_inbound, submit, PASSWORD};
use futures::future::join_all;
use pigeon_smpp::receipt::ReceiptState;
use pigeon_smpp::session::{connect, Inbound, SessionError, SubmitOutcome};
use smpp34::server::ESME;
use smpp34::{
    bind_transceiver, bind_transceiver_resp, submit_sm, submit_sm_resp, SmppConnectionInformation,
    SmppError, SmppServer, SmppServerListener, TlvTag,
};
use tokio::sync::mpsc;

type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// (source_addr, destination_addr, data_coding, registered_delivery, short_message)
type Seen = (String, String, u8, u8, Vec<u8>);

#[derive(Default)]
struct Smsc {
    esme: Mutex<Option<Arc<ESME>>>,
    submits: AtomicUsize,
    last: Mutex<Option<Seen>>,
}

impl SmppServerListener for Smsc {
    fn on_bind_transceiver<'l0, 'l1, 'l2, 'at>(
        &'l0 self,
        req: bind_transceiver,
        _c: &'l1 SmppConnectionInformation,
        _s: &'l2 String,
    ) -> BoxFut<'at, bind_transceiver_resp>
    where
        'l0: 'at,
        'l1: 'at,
        'l2: 'at,
        Self: 'at,
    {
        Box::pin(async move {
            if req.system_id == "pigeon" && req.password == PASSWORD {
                req.accept("smpp34".to_string(), Some(0x34))
            } else {
                req.reject(SmppError::ESME_RINVPASWD)
            }
        })
    }

    fn on_esme_bound<'l0, 'l1, 'at>(&'l0 self, esme: ESME, _s: &'l1 String) -> BoxFut<'at, ()>
    where
        'l0: 'at,
        'l1: 'at,
        Self: 'at,
    {
        Box::pin(async move {
            *self.esme.lock().unwrap() = Some(Arc::new(esme));
        })
    }

    fn on_submit_sm<'l0, 'l1, 'l2, 'at>(
        &'l0 self,
        req: submit_sm,
        _c: &'l1 SmppConnectionInformation,
        _s: &'l2 String,
    ) -> BoxFut<'at, submit_sm_resp>
    where
        'l0: 'at,
        'l1: 'at,
        'l2: 'at,
        Self: 'at,
    {
        Box::pin(async move {
            let n = self.submits.fetch_add(1, Ordering::SeqCst) + 1;
            *self.last.lock().unwrap() = Some((
                req.source_addr.clone(),
                req.destination_addr.clone(),
                req.data_coding,
                req.registered_delivery,
                req.short_message.to_vec(),
            ));
            let id = format!("interop-{n}");
            if n == 1 {
                // One receipt, text and TLVs, for the first message.
                if let Some(esme) = self.esme.lock().unwrap().clone() {
                    let text = format!("id:{id} sub:001 dlvrd:001 submit date:2401311200 done date:2401311201 stat:DELIVRD err:000 text:");
                    let tlv_id = format!("{id}\0").into_bytes();
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        let _ = esme
                            .deliver_sm()
                            .source_addr("4915112345678")
                            .destination_addr("Bank")
                            .esm_class(0x04)
                            .short_message(text.into_bytes())
                            .tlv(TlvTag::ReceiptedMessageId, tlv_id)
                            .tlv(TlvTag::MessageStateTlv, [2])
                            .send()
                            .await;
                    });
                }
            }
            req.accept(id)
        })
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test]
async fn binds_submits_and_receives_a_receipt_from_smpp34() {
    let smsc = Arc::new(Smsc::default());
    let port = free_port();
    let mut server = SmppServer::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port, smsc.clone());
    server.start().await;
    assert!(server.is_alive());
    let addr = format!("127.0.0.1:{port}");

    let mut bad = config(&addr);
    bad.password = "nope".into();
    let (tx, mut rx) = mpsc::channel(16);
    assert!(matches!(
        connect(bad, tx.clone()).await,
        Err(SessionError::BindRefused {
            command_status: 0x0E
        })
    ));

    let session = connect(config(&addr), tx).await.unwrap();
    let outcomes = join_all((0..20).map(|i| {
        let s = session.clone();
        async move { s.submit(submit(i)).await }
    }))
    .await;
    for o in &outcomes {
        assert!(
            matches!(o, SubmitOutcome::Accepted { message_id } if message_id.starts_with("interop-")),
            "{o:?}"
        );
    }
    assert_eq!(smsc.submits.load(Ordering::SeqCst), 20);
    let (src, dst, dc, rd, sm) = smsc.last.lock().unwrap().clone().unwrap();
    assert_eq!(src, "Bank");
    assert!(dst.starts_with("49151"));
    assert_eq!((dc, rd), (0, 1));
    assert_eq!(sm, b"Your account was debited");

    let Inbound::Receipt(r, ack) = next_inbound(&mut rx).await else {
        panic!("not a receipt")
    };
    ack.ack();
    assert_eq!(r.message_id, "interop-1");
    assert_eq!(r.state, ReceiptState::Delivered);

    session.unbind().await;
    assert!(session.is_closed());
    let Inbound::Closed { reason } = next_inbound(&mut rx).await else {
        panic!("not closed")
    };
    assert_eq!(reason, "unbound");
    server.stop().await;
}
