//! Session tests against a scripted SMSC over real loopback TCP (see `common`).

mod common;

use std::time::Duration;

use common::{config, next_inbound, start, submit, wait_closed, Script};
use futures::future::join_all;
use pigeon_smpp::receipt::ReceiptState;
use pigeon_smpp::session::{classify, connect, Inbound, SessionError, StatusClass, SubmitOutcome};
use tokio::sync::mpsc;

#[tokio::test]
async fn bind_ok_and_wrong_password_refused() {
    let smsc = start(Script::default()).await;
    let (tx, _rx) = mpsc::channel(16);
    let session = connect(config(&smsc.addr), tx.clone()).await.unwrap();
    assert!(!session.is_closed());
    smsc.wait_for("a bind", |o| o.binds == 1).await;
    session.unbind().await;

    let mut cfg = config(&smsc.addr);
    cfg.password = "wrong".into();
    match connect(cfg, tx).await {
        Err(SessionError::BindRefused { command_status }) => assert_eq!(command_status, 0x0E),
        other => panic!("expected BindRefused, got {other:?}"),
    }
}

#[tokio::test]
async fn connect_to_nothing_fails() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    let (tx, _rx) = mpsc::channel(1);
    assert!(matches!(
        connect(config(&addr), tx).await,
        Err(SessionError::Connect { .. })
    ));
}

#[tokio::test]
async fn pipelined_submits_respect_the_window() {
    let smsc = start(Script {
        response_delay: Duration::from_millis(2),
        ..Script::default()
    })
    .await;
    let (tx, _rx) = mpsc::channel(16);
    let session = connect(config(&smsc.addr), tx).await.unwrap();
    let outcomes = join_all((0..200).map(|i| {
        let s = session.clone();
        async move { s.submit(submit(i)).await }
    }))
    .await;
    let mut ids: Vec<String> = outcomes
        .into_iter()
        .map(|o| match o {
            SubmitOutcome::Accepted { message_id } => message_id,
            other => panic!("expected Accepted, got {other:?}"),
        })
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 200);
    let seen = smsc.now();
    assert_eq!(seen.submits, 200);
    assert!(
        seen.max_in_flight <= 10,
        "max in flight {}",
        seen.max_in_flight
    );
    assert!(seen.max_in_flight > 1, "submits were not pipelined");
    assert_eq!(session.in_flight(), 0);
    session.unbind().await;
}

#[tokio::test]
async fn a_receipt_is_answered_only_when_its_receiver_acknowledges_it() {
    let smsc = start(Script {
        send_receipts: true,
        ..Script::default()
    })
    .await;
    let (tx, mut rx) = mpsc::channel(16);
    let session = connect(config(&smsc.addr), tx).await.unwrap();
    let SubmitOutcome::Accepted { .. } = session.submit(submit(1)).await else {
        panic!("not accepted")
    };
    let Inbound::Receipt(_, first) = next_inbound(&mut rx).await else {
        panic!("not a receipt")
    };
    let Inbound::Receipt(_, second) = next_inbound(&mut rx).await else {
        panic!("not a receipt")
    };
    // Only the unparseable third is answered while the two receipts wait for their acks.
    let seen = smsc
        .wait_for("one deliver_sm_resp", |o| o.deliver_sm_resps.len() == 1)
        .await;
    assert_eq!(seen.deliver_sm_resps, vec![0]);
    // Dropped without an ack (the receiver could not keep it): the SMSC is told to retry.
    drop(second);
    first.ack();
    let seen = smsc
        .wait_for("three deliver_sm_resp", |o| o.deliver_sm_resps.len() == 3)
        .await;
    let mut statuses = seen.deliver_sm_resps.clone();
    statuses.sort_unstable();
    assert_eq!(
        statuses,
        vec![0, 0, 0x64],
        "ESME_RX_T_APPN for the dropped one"
    );
    session.unbind().await;
}

#[tokio::test]
async fn a_receipt_beyond_the_unanswered_bound_is_refused_for_redelivery() {
    let smsc = start(Script {
        send_receipts: true,
        ..Script::default()
    })
    .await;
    let (tx, mut rx) = mpsc::channel(16);
    let mut cfg = config(&smsc.addr);
    cfg.max_unanswered_receipts = 1;
    let session = connect(cfg, tx).await.unwrap();
    let SubmitOutcome::Accepted { message_id } = session.submit(submit(1)).await else {
        panic!("not accepted")
    };
    let Inbound::Receipt(first, ack) = next_inbound(&mut rx).await else {
        panic!("not a receipt")
    };
    assert_eq!(first.message_id, message_id);
    // The second receipt comes while the first waits for its ack: refused at once, not
    // handed on; the unparseable third is acknowledged as always.
    let seen = smsc
        .wait_for("two deliver_sm_resp", |o| o.deliver_sm_resps.len() == 2)
        .await;
    let mut statuses = seen.deliver_sm_resps.clone();
    statuses.sort_unstable();
    assert_eq!(statuses, vec![0, 0x64], "ESME_RX_T_APPN for the second");
    ack.ack();
    let seen = smsc
        .wait_for("three deliver_sm_resp", |o| o.deliver_sm_resps.len() == 3)
        .await;
    assert_eq!(seen.deliver_sm_resps[2], 0, "the first, once acknowledged");
    assert!(
        rx.try_recv().is_err(),
        "the refused receipt was handed on as well"
    );
    session.unbind().await;
}

#[tokio::test]
async fn receipts_are_forwarded_and_acknowledged() {
    let smsc = start(Script {
        send_receipts: true,
        ..Script::default()
    })
    .await;
    let (tx, mut rx) = mpsc::channel(16);
    let session = connect(config(&smsc.addr), tx).await.unwrap();
    let SubmitOutcome::Accepted { message_id } = session.submit(submit(1)).await else {
        panic!("not accepted")
    };
    let Inbound::Receipt(text, ack) = next_inbound(&mut rx).await else {
        panic!("not a receipt")
    };
    ack.ack();
    assert_eq!(text.message_id, message_id);
    assert_eq!(text.state, ReceiptState::Delivered);
    assert_eq!(text.error_code, Some(0));
    let Inbound::Receipt(tlv, ack) = next_inbound(&mut rx).await else {
        panic!("not a receipt")
    };
    ack.ack();
    assert_eq!(tlv.message_id, message_id);
    assert_eq!(tlv.state, ReceiptState::Undeliverable);
    // All three deliver_sm answered, the unparseable one too.
    let seen = smsc
        .wait_for("three deliver_sm_resp", |o| o.deliver_sm_resps.len() == 3)
        .await;
    assert_eq!(seen.deliver_sm_resps, vec![0, 0, 0]);
    session.unbind().await;
    assert!(matches!(
        next_inbound(&mut rx).await,
        Inbound::Closed { .. }
    ));
}

#[tokio::test]
async fn rejected_submit_carries_its_status() {
    let smsc = start(Script {
        reject_status: Some(0x58),
        ..Script::default()
    })
    .await;
    let (tx, _rx) = mpsc::channel(16);
    let session = connect(config(&smsc.addr), tx).await.unwrap();
    let outcome = session.submit(submit(1)).await;
    assert_eq!(
        outcome,
        SubmitOutcome::Rejected {
            command_status: 0x58
        }
    );
    assert_eq!(classify(0x58), StatusClass::Throttled);
    // An invalid destination is refused locally, never written.
    let mut bad = submit(2);
    bad.destination_addr = "not a number".into();
    assert_eq!(
        session.submit(bad).await,
        SubmitOutcome::Rejected {
            command_status: 0x0B
        }
    );
    assert_eq!(smsc.now().submits, 1);
    session.unbind().await;
}

#[tokio::test]
async fn unanswered_submit_times_out() {
    let smsc = start(Script {
        respond_submits: false,
        ..Script::default()
    })
    .await;
    let (tx, _rx) = mpsc::channel(16);
    let mut cfg = config(&smsc.addr);
    cfg.response_timeout = Duration::from_millis(200);
    let session = connect(cfg, tx).await.unwrap();
    assert_eq!(session.submit(submit(1)).await, SubmitOutcome::Timeout);
    assert_eq!(session.in_flight(), 0);
    assert!(!session.is_closed());
}

#[tokio::test]
async fn server_closing_mid_flight_loses_written_submits() {
    let smsc = start(Script {
        respond_submits: false,
        close_after_submits: Some(3),
        ..Script::default()
    })
    .await;
    let (tx, mut rx) = mpsc::channel(16);
    let session = connect(config(&smsc.addr), tx).await.unwrap();
    let outcomes = join_all((0..3).map(|i| {
        let s = session.clone();
        async move { s.submit(submit(i)).await }
    }))
    .await;
    assert!(
        outcomes.iter().all(|o| *o == SubmitOutcome::Lost),
        "{outcomes:?}"
    );
    let Inbound::Closed { reason } = next_inbound(&mut rx).await else {
        panic!("not closed")
    };
    assert!(reason.contains("closed by peer"), "{reason}");
    wait_closed(&session).await;
    assert_eq!(session.submit(submit(9)).await, SubmitOutcome::NotSent);
}

#[tokio::test]
async fn garbage_from_server_closes_the_session() {
    let smsc = start(Script {
        respond_submits: false,
        garbage_after_submits: Some(2),
        ..Script::default()
    })
    .await;
    let (tx, mut rx) = mpsc::channel(16);
    let session = connect(config(&smsc.addr), tx).await.unwrap();
    let outcomes = join_all((0..2).map(|i| {
        let s = session.clone();
        async move { s.submit(submit(i)).await }
    }))
    .await;
    assert!(
        outcomes.iter().all(|o| *o == SubmitOutcome::Lost),
        "{outcomes:?}"
    );
    let Inbound::Closed { reason } = next_inbound(&mut rx).await else {
        panic!("not closed")
    };
    assert!(reason.contains("decode"), "{reason}");
    assert!(session.is_closed());
    assert_eq!(session.submit(submit(9)).await, SubmitOutcome::NotSent);
}

#[tokio::test]
async fn unbind_waits_for_in_flight_then_unbinds() {
    let smsc = start(Script {
        response_delay: Duration::from_millis(300),
        ..Script::default()
    })
    .await;
    let (tx, mut rx) = mpsc::channel(16);
    let session = connect(config(&smsc.addr), tx).await.unwrap();
    let pending: Vec<_> = (0..5)
        .map(|i| {
            let s = session.clone();
            tokio::spawn(async move { s.submit(submit(i)).await })
        })
        .collect();
    smsc.wait_for("5 submits in flight", |o| o.in_flight == 5)
        .await;
    assert_eq!(session.in_flight(), 5);
    session.unbind().await;
    for p in pending {
        assert!(matches!(p.await.unwrap(), SubmitOutcome::Accepted { .. }));
    }
    let seen = smsc.wait_for("an unbind", |o| o.unbinds == 1).await;
    assert_eq!(seen.in_flight, 0);
    assert!(session.is_closed());
    assert_eq!(session.submit(submit(9)).await, SubmitOutcome::NotSent);
    let Inbound::Closed { reason } = next_inbound(&mut rx).await else {
        panic!("not closed")
    };
    assert_eq!(reason, "unbound");
}

#[tokio::test]
async fn enquire_link_keeps_alive_and_answers_the_peer() {
    let smsc = start(Script {
        probe_enquire_link: true,
        ..Script::default()
    })
    .await;
    let (tx, _rx) = mpsc::channel(16);
    let mut cfg = config(&smsc.addr);
    cfg.enquire_link_interval = Duration::from_millis(50);
    cfg.response_timeout = Duration::from_millis(500);
    let session = connect(cfg, tx).await.unwrap();
    smsc.wait_for("our enquire_link_resp", |o| o.enquire_link_resps == 1)
        .await;
    smsc.wait_for("3 enquire_links", |o| o.enquire_links >= 3)
        .await;
    assert!(!session.is_closed());
    session.unbind().await;
}

#[tokio::test]
async fn unanswered_enquire_link_closes_a_silent_session() {
    let smsc = start(Script {
        answer_enquire_link: false,
        ..Script::default()
    })
    .await;
    let (tx, mut rx) = mpsc::channel(16);
    let mut cfg = config(&smsc.addr);
    cfg.enquire_link_interval = Duration::from_millis(50);
    cfg.response_timeout = Duration::from_millis(200);
    let session = connect(cfg, tx).await.unwrap();
    let Inbound::Closed { reason } = next_inbound(&mut rx).await else {
        panic!("not closed")
    };
    assert!(reason.contains("enquire_link"), "{reason}");
    assert!(session.is_closed());
    // Before the socket goes, an unbind, so that no ghost bind is left at the SMSC.
    smsc.wait_for("an unbind before the close", |o| o.unbinds == 1)
        .await;
}

#[tokio::test]
async fn peer_unbind_is_answered_and_closes() {
    let smsc = start(Script {
        unbind_after_bind: true,
        ..Script::default()
    })
    .await;
    let (tx, mut rx) = mpsc::channel(16);
    let session = connect(config(&smsc.addr), tx).await.unwrap();
    let Inbound::Closed { reason } = next_inbound(&mut rx).await else {
        panic!("not closed")
    };
    assert_eq!(reason, "peer unbound");
    smsc.wait_for("our unbind_resp", |o| o.unbind_resps == 1)
        .await;
    assert!(session.is_closed());
}

#[tokio::test]
async fn dropping_every_handle_unbinds() {
    let smsc = start(Script::default()).await;
    let (tx, mut rx) = mpsc::channel(16);
    let session = connect(config(&smsc.addr), tx).await.unwrap();
    drop(session);
    smsc.wait_for("an unbind", |o| o.unbinds == 1).await;
    assert!(matches!(
        next_inbound(&mut rx).await,
        Inbound::Closed { .. }
    ));
}
