//! SMPP over TLS against the in-test SMSC with a certificate made at test time.

mod common;

use common::tls::self_signed;
use common::{config, next_inbound, start_with, submit, Script};
use pigeon_smpp::receipt::ReceiptState;
use pigeon_smpp::session::{connect, Inbound, SessionError, SubmitOutcome, TlsConfig};
use tokio::sync::mpsc;

#[tokio::test]
async fn binds_submits_and_gets_receipts_over_tls() {
    let cert = self_signed(&["localhost"]);
    let smsc = start_with(
        Script {
            send_receipts: true,
            ..Script::default()
        },
        Some(cert.acceptor.clone()),
    )
    .await;
    let mut cfg = config(&smsc.addr);
    cfg.tls = Some(TlsConfig {
        ca_file: Some(cert.ca_file.clone()),
        ..TlsConfig::new("localhost")
    });
    let (tx, mut rx) = mpsc::channel(16);
    let session = connect(cfg, tx).await.unwrap();
    smsc.wait_for("a bind over tls", |o| o.binds == 1).await;
    let SubmitOutcome::Accepted { message_id } = session.submit(submit(1)).await else {
        panic!("not accepted over tls")
    };
    let Inbound::Receipt(r, ack) = next_inbound(&mut rx).await else {
        panic!("not a receipt")
    };
    ack.ack();
    assert_eq!(r.message_id, message_id);
    assert_eq!(r.state, ReceiptState::Delivered);
    session.unbind().await;
    smsc.wait_for("an unbind over tls", |o| o.unbinds == 1)
        .await;
}

#[tokio::test]
async fn wrong_server_name_is_refused() {
    let cert = self_signed(&["localhost"]);
    let smsc = start_with(Script::default(), Some(cert.acceptor.clone())).await;
    let mut cfg = config(&smsc.addr);
    cfg.tls = Some(TlsConfig {
        ca_file: Some(cert.ca_file.clone()),
        ..TlsConfig::new("smsc.wrong.example")
    });
    let (tx, _rx) = mpsc::channel(16);
    let err = connect(cfg, tx).await.unwrap_err();
    let SessionError::TlsHandshake {
        server_name,
        reason,
    } = &err
    else {
        panic!("expected TlsHandshake, got {err:?}")
    };
    assert_eq!(server_name, "smsc.wrong.example");
    assert!(reason.contains("not valid for name"), "{reason}");
    assert!(err.to_string().contains("smsc.wrong.example"), "{err}");
    assert!(!err.retry_after_hint().is_zero());
    assert_eq!(smsc.now().binds, 0);
}

#[tokio::test]
async fn untrusted_certificate_is_refused_unless_verification_is_skipped() {
    let cert = self_signed(&["localhost"]);
    let smsc = start_with(Script::default(), Some(cert.acceptor.clone())).await;
    let (tx, _rx) = mpsc::channel(16);
    // The bundled Mozilla roots do not trust a self-signed certificate.
    let mut cfg = config(&smsc.addr);
    cfg.tls = Some(TlsConfig::new("localhost"));
    assert!(matches!(
        connect(cfg.clone(), tx.clone()).await,
        Err(SessionError::TlsHandshake { .. })
    ));
    cfg.tls = Some(TlsConfig {
        insecure_skip_verify: true,
        ..TlsConfig::new("any.name.example")
    });
    let session = connect(cfg, tx).await.unwrap();
    assert!(matches!(
        session.submit(submit(1)).await,
        SubmitOutcome::Accepted { .. }
    ));
    session.unbind().await;
}

#[tokio::test]
async fn unreadable_ca_file_is_a_config_error() {
    let smsc = common::start(Script::default()).await;
    let mut cfg = config(&smsc.addr);
    cfg.tls = Some(TlsConfig {
        ca_file: Some("/nonexistent/pigeon-ca.pem".into()),
        ..TlsConfig::new("localhost")
    });
    let (tx, _rx) = mpsc::channel(1);
    let err = connect(cfg, tx).await.unwrap_err();
    assert!(matches!(err, SessionError::TlsConfig(_)), "{err:?}");
    assert!(err.to_string().contains("ca_file"), "{err}");
}
