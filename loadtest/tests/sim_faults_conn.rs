//! pigeon-sim's connection faults over real loopback TCP: sessions dropped without an
//! unbind (`drop_every`), sessions gone half-open that keep their bind slot until the client
//! gives up (`half_open_after`), and the in-process stats endpoint.

// A test crate: a panic is the failure report, helpers included.
#![allow(clippy::unwrap_used)]

mod sim_support;

use std::time::Duration;

use pigeon_loadtest::sim::{CarrierSim, SimReport};
use rusmpp::{CommandStatus, Pdu};
use sim_support::{carrier, http_get, receipt_tlvs, sim_with, wait_stats, within, Esme, Kind};
use tokio::time::Instant;

#[tokio::test]
async fn sessions_are_dropped_after_each_bind_and_receipts_survive() {
    let drop_every = Duration::from_millis(200);
    let (sim, addr) = sim_with(CarrierSim {
        drop_every: Some(drop_every),
        max_binds: Some(1),
        ..carrier(300)
    })
    .await;
    let mut esme = Esme::bound(addr, Kind::Trx).await;
    let bound_at = Instant::now();
    let id = esme.submit_ok("8613800000000", "owed across a drop").await;
    // The socket just closes: no unbind, no other PDU first.
    assert!(esme.recv().await.is_none(), "the session must be dropped");
    assert!(bound_at.elapsed() >= drop_every - Duration::from_millis(5));
    wait_stats(&sim, "first drop", |s| s.drops == 1).await;

    // The slot is free at once (no ghost bind), and the receipt owed comes on the new bind.
    let mut again = Esme::bound(addr, Kind::Trx).await;
    let d = again.receipt().await;
    assert_eq!(receipt_tlvs(&d).0.as_deref(), Some(id.as_str()));
    assert!(again.recv().await.is_none(), "every session is dropped");
    let s = wait_stats(&sim, "second drop", |s| s.drops == 2).await;
    assert_eq!((s.binds, s.bind_failures, s.half_opens), (2, 0, 0));
}

#[tokio::test]
async fn half_open_sessions_go_silent_and_hold_their_bind() {
    let (sim, addr) = sim_with(CarrierSim {
        half_open_after: Some(Duration::from_millis(150)),
        max_binds: Some(1),
        ..carrier(0)
    })
    .await;
    let mut esme = Esme::bound(addr, Kind::Trx).await;
    esme.submit_ok("8613800000000", "before the silence").await;
    esme.receipt().await;
    wait_stats(&sim, "half-open", |s| s.half_opens == 1).await;

    // Nothing comes back any more, but the socket stays open.
    esme.send(Pdu::EnquireLink).await;
    esme.submit_to("8613800000001", 1).await;
    let silence = tokio::time::timeout(Duration::from_millis(300), esme.recv()).await;
    assert!(
        silence.is_err(),
        "a half-open session answers nothing: {silence:?}"
    );

    // The ghost keeps its bind slot.
    let mut other = Esme::connect(addr).await;
    assert_eq!(
        other.bind(Kind::Trx, "bank", "secret").await,
        CommandStatus::EsmeRalybnd
    );

    // Once the client gives up, the slot comes back.
    drop(esme);
    let mut rebound = within("a bind after the client gave up", async {
        loop {
            let mut e = Esme::connect(addr).await;
            if e.bind(Kind::Trx, "bank", "secret").await == CommandStatus::EsmeRok {
                return e;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    // The submit sent into the silence was never read, so it never counts.
    let s = sim.stats();
    assert_eq!((s.submits, s.half_opens, s.drops), (1, 1, 0));
    rebound.submit_ok("8613800000002", "after").await;
}

#[tokio::test]
async fn stats_endpoint_serves_the_live_report() {
    let (sim, addr) = sim_with(CarrierSim {
        error_rate: 1.0,
        ..carrier(0)
    })
    .await;
    let stats = sim
        .serve_stats("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let mut esme = Esme::bound(addr, Kind::Trx).await;
    for _ in 0..3 {
        esme.submit_to("8613800000000", 1).await;
        let resp = esme.expect(rusmpp::CommandId::SubmitSmResp).await;
        assert_eq!(resp.status(), CommandStatus::EsmeRsyserr);
    }
    let (status, body) = http_get(stats, "/stats").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    let report: SimReport = serde_json::from_str(&body).unwrap();
    assert_eq!((report.total.errors, report.total.submits), (3, 0));
    assert_eq!(report.carriers["carrier1"].errors, 3);
    for field in [
        "throttled",
        "errors",
        "no_response",
        "drops",
        "duplicate_receipts_sent",
        "data_codings",
    ] {
        assert!(body.contains(&format!("\"{field}\"")), "{field} in {body}");
    }
    let (status, _) = http_get(stats, "/other").await;
    assert!(status.starts_with("HTTP/1.1 404"), "{status}");
    // The endpoint stops with the simulator.
    within("shutdown", sim.shutdown()).await;
    assert!(tokio::net::TcpStream::connect(stats).await.is_err());
}
