//! Interoperability: the independent `smpp34` crate's ESME client against pigeon-sim over
//! loopback TCP. It binds as a transceiver, submits, receives the delivery receipt through its
//! own decoder (TLV accessors included), acknowledges it, and unbinds.
//!
//! `SmppClientListener` is declared with `#[async_trait]`; this crate does not depend on
//! `async-trait`, so the two callbacks used here are written in the form that macro expands to
//! (a boxed `Send` future with the same lifetime bounds).

// A test crate: a panic is the failure report, helpers included.
#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pigeon_loadtest::sim::{start, Account, CarrierSim, ReceiptState, SimConfig, SimHandle};
use pigeon_smpp::receipt::{parse_receipt, ReceiptTlvs};
use smpp34::client::{SmppClient, SmppClientListener, BIND_TYPE, SMSC};
use smpp34::{deliver_sm, deliver_sm_resp, SmppConnectionInformation, TlvList};
use tokio::sync::{mpsc, oneshot};

const DEADLINE: Duration = Duration::from_secs(10);

async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, f)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

struct Listener {
    bound: Mutex<Option<oneshot::Sender<SMSC>>>,
    receipts: mpsc::UnboundedSender<deliver_sm>,
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl SmppClientListener for Listener {
    fn on_smsc_bound<'life0, 'life1, 'async_trait>(
        &'life0 self,
        smsc: SMSC,
        _session_id: &'life1 String,
    ) -> BoxFuture<'async_trait, ()>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            if let Some(tx) = self.bound.lock().unwrap().take() {
                let _ = tx.send(smsc);
            }
        })
    }

    fn on_deliver_sm<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        deliver_sm: deliver_sm,
        _connection_information: &'life1 SmppConnectionInformation,
        _session_id: &'life2 String,
    ) -> BoxFuture<'async_trait, deliver_sm_resp>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            let _ = self.receipts.send(deliver_sm.clone());
            deliver_sm.accept()
        })
    }
}

async fn wait_acked(sim: &SimHandle, n: u64) {
    within("receipt acknowledgements", async {
        while sim.stats().receipts_acked < n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn smpp34_client_binds_submits_and_gets_the_receipt() {
    let sim = start(SimConfig {
        carriers: vec![CarrierSim {
            accounts: vec![Account::new("bank", "secret")],
            dlr_delay: Duration::from_millis(10),
            ..CarrierSim::default()
        }],
    })
    .await
    .unwrap();
    let addr = sim.addrs()[0].1;

    let (bound_tx, bound_rx) = oneshot::channel();
    let (receipts_tx, mut receipts_rx) = mpsc::unbounded_channel();
    let listener = Arc::new(Listener {
        bound: Mutex::new(Some(bound_tx)),
        receipts: receipts_tx,
    });
    let mut client = SmppClient::new(
        addr.ip().to_string(),
        addr.port(),
        false,
        BIND_TYPE::TRX,
        "bank".to_string(),
        "secret".to_string(),
        String::new(),
        0,
        0,
        String::new(),
        listener,
        10,
    );
    client.start().await;
    let smsc = within("bind", bound_rx).await.unwrap();

    let resp = within(
        "submit_sm_resp",
        smsc.submit_sm()
            .source_addr("95588")
            .destination_addr("8613800000000")
            .registered_delivery(1)
            .short_message(b"debit 10.00".to_vec())
            .send(),
    )
    .await
    .unwrap();
    assert!(resp.is_success());
    let id = resp.message_id.clone().unwrap();

    let receipt = within("receipt", receipts_rx.recv()).await.unwrap();
    assert_eq!(receipt.esm_class, 0x04);
    assert_eq!(receipt.source_addr, "8613800000000");
    assert_eq!(receipt.destination_addr, "95588");
    assert_eq!(
        receipt.tlvs.receipted_message_id().as_deref(),
        Some(id.as_str())
    );
    assert_eq!(
        receipt.tlvs.message_state(),
        Some(ReceiptState::Delivered.message_state())
    );
    let parsed = parse_receipt(&receipt.short_message, &ReceiptTlvs::default()).unwrap();
    assert_eq!(parsed.message_id, id);
    wait_acked(&sim, 1).await;

    within("unbind", smsc.send_unbind()).await.unwrap();
    client.stop().await;
    let stats = sim.shutdown().await;
    assert_eq!((stats.binds, stats.submits, stats.messages), (1, 1, 1));
    assert_eq!((stats.receipts_sent, stats.receipts_acked), (1, 1));
}
