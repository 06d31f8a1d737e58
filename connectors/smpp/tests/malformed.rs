//! PDUs rusmpp cannot decode: a broken receipt is acknowledged and read from its text, the
//! session stays up; any other undecodable PDU still closes the session.

mod common;

use common::{config, next_inbound, start, submit, Script};
use pigeon_smpp::receipt::ReceiptState;
use pigeon_smpp::session::{connect, Inbound, SubmitOutcome};
use tokio::sync::mpsc;

#[tokio::test]
async fn malformed_receipt_is_acknowledged_and_read_leniently() {
    let smsc = start(Script {
        malformed_receipts: true,
        ..Script::default()
    })
    .await;
    let (tx, mut rx) = mpsc::channel(16);
    let session = connect(config(&smsc.addr), tx).await.unwrap();
    for i in 0..3 {
        let SubmitOutcome::Accepted { message_id } = session.submit(submit(i)).await else {
            panic!("not accepted")
        };
        let Inbound::Receipt(r, ack) = next_inbound(&mut rx).await else {
            panic!("expected a receipt, the session closed")
        };
        ack.ack();
        assert_eq!(r.message_id, message_id);
        assert_eq!(r.state, ReceiptState::Expired);
    }
    let seen = smsc
        .wait_for("three deliver_sm_resp", |o| o.deliver_sm_resps.len() == 3)
        .await;
    assert_eq!(seen.deliver_sm_resps, vec![0, 0, 0]);
    assert!(!session.is_closed());
    session.unbind().await;
    let Inbound::Closed { reason } = next_inbound(&mut rx).await else {
        panic!("not closed")
    };
    assert_eq!(reason, "unbound");
}

#[tokio::test]
async fn other_undecodable_pdu_closes_the_session() {
    let smsc = start(Script {
        malformed_submit_resp: true,
        ..Script::default()
    })
    .await;
    let (tx, mut rx) = mpsc::channel(16);
    let session = connect(config(&smsc.addr), tx).await.unwrap();
    assert_eq!(session.submit(submit(1)).await, SubmitOutcome::Lost);
    let Inbound::Closed { reason } = next_inbound(&mut rx).await else {
        panic!("not closed")
    };
    assert!(reason.contains("decode"), "{reason}");
    assert!(session.is_closed());
}
