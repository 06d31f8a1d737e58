//! The `pigeon-sim` binary as scripts use it: flags or a TOML file in, one
//! `listening carrier=NAME addr=ADDR` line per carrier out, a stats file rewritten while it
//! runs, the live `GET /stats` endpoint, fault flags, and the final JSON stats (totals plus
//! per-carrier breakdown) on SIGTERM or SIGINT, exiting 0.

// A test crate: a panic is the failure report, helpers included.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

mod sim_support;

use futures::{SinkExt, StreamExt};
use pigeon_loadtest::sim::SimReport;
use rusmpp::pdus::{BindTransceiver, SubmitSm};
use rusmpp::tokio_codec::CommandCodec;
use rusmpp::types::{COctetString, OctetString};
use rusmpp::{Command, CommandId, CommandStatus};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command as Process};
use tokio_util::codec::Framed;

const DEADLINE: Duration = Duration::from_secs(20);

async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, f)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

fn scratch_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pigeon-sim-{tag}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Starts the binary and returns it with the `carriers` carriers it announced.
async fn spawn(args: &[&str], carriers: usize) -> (Child, BTreeMap<String, SocketAddr>) {
    let (child, announced, _) = spawn_announced(args, carriers, false).await;
    (child, announced)
}

/// [`spawn`], also waiting for the stats endpoint's address when `stats` is set.
async fn spawn_announced(
    args: &[&str],
    carriers: usize,
    stats: bool,
) -> (Child, BTreeMap<String, SocketAddr>, Option<SocketAddr>) {
    let mut child = Process::new(env!("CARGO_BIN_EXE_pigeon-sim"))
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut announced = BTreeMap::new();
    let mut stats_addr = None;
    while announced.len() < carriers || (stats && stats_addr.is_none()) {
        let line = within("listening line", lines.next_line())
            .await
            .unwrap()
            .expect("pigeon-sim exited before listening");
        if let Some(addr) = line.strip_prefix("listening stats=") {
            stats_addr = Some(addr.parse().unwrap());
            continue;
        }
        let rest = line.strip_prefix("listening carrier=").unwrap();
        let (name, addr) = rest.split_once(" addr=").unwrap();
        announced.insert(name.to_string(), addr.parse().unwrap());
    }
    (child, announced, stats_addr)
}

async fn bind_and_submit(addr: SocketAddr, dest: &str) {
    let stream = within("connect", TcpStream::connect(addr)).await.unwrap();
    let mut framed = Framed::new(stream, CommandCodec::new());
    let bind = BindTransceiver::builder()
        .system_id(COctetString::from_string("bank".to_string()).unwrap())
        .password(COctetString::from_string("secret".to_string()).unwrap())
        .build();
    framed
        .send(Command::new(CommandStatus::EsmeRok, 1, bind))
        .await
        .unwrap();
    let resp = within("bind_resp", framed.next()).await.unwrap().unwrap();
    assert_eq!(resp.status(), CommandStatus::EsmeRok);
    let sm = SubmitSm::builder()
        .source_addr(COctetString::from_string("95588".to_string()).unwrap())
        .destination_addr(COctetString::from_string(dest.to_string()).unwrap())
        .short_message(OctetString::from_slice(b"debit 10.00").unwrap())
        .build();
    framed
        .send(Command::new(CommandStatus::EsmeRok, 2, sm))
        .await
        .unwrap();
    let resp = within("submit_sm_resp", framed.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.id(), CommandId::SubmitSmResp);
    assert_eq!(resp.status(), CommandStatus::EsmeRok);
}

fn read_report(path: &Path) -> Option<SimReport> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

async fn signal_and_wait(child: &mut Child, signal: &str) {
    let pid = child.id().unwrap().to_string();
    let status = Process::new("kill")
        .args([signal, &pid])
        .status()
        .await
        .unwrap();
    assert!(status.success());
    let status = within("exit", child.wait()).await.unwrap();
    assert!(status.success(), "pigeon-sim exited with {status}");
}

#[tokio::test]
async fn flags_stats_file_and_sigterm() {
    let dir = scratch_dir("flags");
    let stats = dir.join("stats.json");
    let stats_arg = stats.to_str().unwrap();
    let (mut child, carriers) = spawn(
        &[
            "--listen",
            "127.0.0.1:0",
            "--listen",
            "cu=127.0.0.1:0",
            "--account",
            "bank:secret",
            "--dlr-delay-ms",
            "5",
            "--stats-file",
            stats_arg,
            "--stats-interval-ms",
            "20",
        ],
        2,
    )
    .await;
    assert_eq!(carriers.keys().collect::<Vec<_>>(), vec!["carrier1", "cu"]);
    bind_and_submit(carriers["carrier1"], "8613800000000").await;
    bind_and_submit(carriers["cu"], "8613800000000").await;

    // The periodic rewrite shows the traffic while the simulator runs.
    within("live stats", async {
        while read_report(&stats).is_none_or(|r| r.total.submits < 2) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;

    signal_and_wait(&mut child, "-TERM").await;
    let report = read_report(&stats).unwrap();
    assert_eq!((report.total.binds, report.total.messages), (2, 2));
    assert_eq!(
        (report.total.unique_pairs, report.total.duplicate_pairs),
        (1, 1)
    );
    assert_eq!(report.carriers["cu"].submits, 1);
    assert_eq!(report.carriers["carrier1"].submits, 1);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn config_file_and_sigint() {
    let dir = scratch_dir("config");
    let config = dir.join("sim.toml");
    let stats = dir.join("stats.json");
    std::fs::write(
        &config,
        "[[carrier]]\nname = \"cmcc\"\nlisten = \"127.0.0.1:0\"\naccounts = [\"bank:secret\"]\n\
         max_binds = 1\nid_format = \"decimal\"\n",
    )
    .unwrap();
    let args = [
        "--config",
        config.to_str().unwrap(),
        "--stats-file",
        stats.to_str().unwrap(),
    ];
    let (mut child, carriers) = spawn(&args, 1).await;
    bind_and_submit(carriers["cmcc"], "8613800000009").await;
    signal_and_wait(&mut child, "-INT").await;
    let report = read_report(&stats).unwrap();
    assert_eq!(report.carriers["cmcc"].submits, 1);
    assert_eq!(report.total.data_codings.get("gsm7"), Some(&1));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn fault_flags_and_the_stats_endpoint() {
    let dir = scratch_dir("faults");
    let stats_file = dir.join("stats.json");
    let args = [
        "--stats-file",
        stats_file.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--account",
        "bank:secret",
        "--reject-prefix",
        "86199",
        "--throttle-tps",
        "1000",
        "--receipt-mix",
        "DELIVRD=0.9,UNDELIV=0.1",
        "--seed",
        "3",
        "--stats-listen",
        "127.0.0.1:0",
    ];
    let (mut child, carriers, stats) = spawn_announced(&args, 1, true).await;
    let stats = stats.unwrap();
    bind_and_submit(carriers["carrier1"], "8613800000000").await;

    let stream = within("connect", TcpStream::connect(carriers["carrier1"]))
        .await
        .unwrap();
    let mut framed = Framed::new(stream, CommandCodec::new());
    let bind = BindTransceiver::builder()
        .system_id(COctetString::from_string("bank".to_string()).unwrap())
        .password(COctetString::from_string("secret".to_string()).unwrap())
        .build();
    framed
        .send(Command::new(CommandStatus::EsmeRok, 1, bind))
        .await
        .unwrap();
    within("bind_resp", framed.next()).await.unwrap().unwrap();
    let sm = SubmitSm::builder()
        .destination_addr(COctetString::from_string("8619900000000".to_string()).unwrap())
        .build();
    framed
        .send(Command::new(CommandStatus::EsmeRok, 2, sm))
        .await
        .unwrap();
    let resp = within("submit_sm_resp", framed.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), CommandStatus::EsmeRinvdstadr);

    let (status, body) = sim_support::http_get(stats, "/stats").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    let report: SimReport = serde_json::from_str(&body).unwrap();
    assert_eq!((report.total.submits, report.total.errors), (1, 1));
    assert_eq!(report.carriers["carrier1"].errors, 1);
    let (status, _) = sim_support::http_get(stats, "/").await;
    assert_eq!(status, "HTTP/1.1 404 Not Found");

    signal_and_wait(&mut child, "-TERM").await;
    assert_eq!(read_report(&stats_file).unwrap().total.errors, 1);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn fault_flags_are_checked() {
    for bad in [
        ["--error-rate", "1.5"],
        ["--receipt-mix", "LOST=1"],
        ["--error-status", "0xZZ"],
        ["--throttle-tps", "0"],
    ] {
        let status = Process::new(env!("CARGO_BIN_EXE_pigeon-sim"))
            .args(["--listen", "127.0.0.1:0", "--account", "bank:secret"])
            .args(bad)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .unwrap();
        assert!(!status.success(), "{bad:?} must be refused");
    }
}

#[tokio::test]
async fn bad_configuration_fails_fast() {
    let status = Process::new(env!("CARGO_BIN_EXE_pigeon-sim"))
        .args(["--listen", "127.0.0.1:0", "--account", "no-colon"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .unwrap();
    assert!(!status.success());
}
