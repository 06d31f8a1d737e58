//! The `pigeon-sim` binary as scripts use it: flags or a TOML file in, one
//! `listening carrier=NAME addr=ADDR` line per carrier out, a stats file rewritten while it
//! runs, and the final JSON stats (totals plus per-carrier breakdown) on SIGTERM or SIGINT,
//! exiting 0.

// A test crate: a panic is the failure report, helpers included.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

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
    let mut child = Process::new(env!("CARGO_BIN_EXE_pigeon-sim"))
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut announced = BTreeMap::new();
    while announced.len() < carriers {
        let line = within("listening line", lines.next_line())
            .await
            .unwrap()
            .expect("pigeon-sim exited before listening");
        let rest = line.strip_prefix("listening carrier=").unwrap();
        let (name, addr) = rest.split_once(" addr=").unwrap();
        announced.insert(name.to_string(), addr.parse().unwrap());
    }
    (child, announced)
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
