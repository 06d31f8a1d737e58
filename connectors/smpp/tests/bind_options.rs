//! Bind options seen at the in-test SMSC: interface version, address_range, bind kinds.

mod common;

use common::{config, start, submit, Script};
use pigeon_smpp::session::{connect, BindKind, InterfaceVersion, SubmitOutcome};
use rusmpp::CommandId;
use tokio::sync::mpsc;

#[tokio::test]
async fn default_bind_is_smpp34_with_empty_address_range() {
    let smsc = start(Script::default()).await;
    let (tx, _rx) = mpsc::channel(16);
    let session = connect(config(&smsc.addr), tx).await.unwrap();
    let seen = smsc.wait_for("a bind", |o| o.binds == 1).await;
    assert_eq!(seen.bind_command, Some(CommandId::BindTransceiver));
    assert_eq!(seen.interface_version, Some(0x34));
    assert_eq!(seen.address_range, "");
    session.unbind().await;
}

#[tokio::test]
async fn smpp50_and_address_range_are_sent_in_the_bind() {
    let smsc = start(Script::default()).await;
    let mut cfg = config(&smsc.addr);
    cfg.interface_version = InterfaceVersion::V50;
    cfg.address_range = "^49151".into();
    let (tx, _rx) = mpsc::channel(16);
    let session = connect(cfg, tx).await.unwrap();
    let seen = smsc.wait_for("a bind", |o| o.binds == 1).await;
    assert_eq!(seen.interface_version, Some(0x50));
    assert_eq!(seen.address_range, "^49151");
    assert!(matches!(
        session.submit(submit(1)).await,
        SubmitOutcome::Accepted { .. }
    ));
    session.unbind().await;
}

#[tokio::test]
async fn too_long_address_range_is_invalid_config() {
    let mut cfg = config("127.0.0.1:9");
    cfg.address_range = "9".repeat(41);
    let (tx, _rx) = mpsc::channel(1);
    assert!(matches!(
        connect(cfg, tx).await,
        Err(pigeon_smpp::session::SessionError::InvalidConfig(_))
    ));
}

#[tokio::test]
async fn receiver_bind_refuses_submits_without_writing_them() {
    let smsc = start(Script::default()).await;
    let mut cfg = config(&smsc.addr);
    cfg.bind = BindKind::Receiver;
    let (tx, _rx) = mpsc::channel(16);
    let session = connect(cfg, tx).await.unwrap();
    let seen = smsc.wait_for("a bind", |o| o.binds == 1).await;
    assert_eq!(seen.bind_command, Some(CommandId::BindReceiver));
    for i in 0..3 {
        assert_eq!(session.submit(submit(i)).await, SubmitOutcome::NotSent);
    }
    assert_eq!(session.in_flight(), 0);
    assert!(!session.is_closed());
    session.unbind().await;
    let seen = smsc.wait_for("an unbind", |o| o.unbinds == 1).await;
    assert_eq!(seen.submits, 0);
}

#[tokio::test]
async fn transmitter_bind_submits() {
    let smsc = start(Script::default()).await;
    let mut cfg = config(&smsc.addr);
    cfg.bind = BindKind::Transmitter;
    let (tx, _rx) = mpsc::channel(16);
    let session = connect(cfg, tx).await.unwrap();
    let seen = smsc.wait_for("a bind", |o| o.binds == 1).await;
    assert_eq!(seen.bind_command, Some(CommandId::BindTransmitter));
    assert!(matches!(
        session.submit(submit(1)).await,
        SubmitOutcome::Accepted { .. }
    ));
    session.unbind().await;
}
