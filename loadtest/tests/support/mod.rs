//! Shared set-up for the end-to-end tests: the real broker (started by the project's
//! scripts; address in `PIGEON_TEST_BROKERS`), topics of the test's own, pigeon-sim carriers
//! on ports of their own, and the engine in-process on an actix system of its own.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use pigeon::config::Config;
use pigeon_kafka::{KafkaConfig, Outgoing, Publisher};
use pigeon_loadtest::sim::{self, Account, CarrierSim, SimConfig, SimHandle};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use tokio_util::sync::CancellationToken;

pub fn brokers() -> String {
    std::env::var("PIGEON_TEST_BROKERS").unwrap_or_else(|_| "127.0.0.1:19092".to_owned())
}

/// Topic names unique to one test.
#[derive(Debug, Clone)]
pub struct Topics {
    pub debits: String,
    pub statuses: String,
    pub dead_letter: String,
    /// Receipts relayed between engine instances (`[relay]`).
    pub receipts: String,
    /// Handover marks on the debit partitions (`[handover]`).
    pub handover: String,
    pub group: String,
}

impl Topics {
    /// The engine's store directory for this test (one per test, like its topics).
    pub fn store_dir(&self) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("pigeon-store-{}", self.debits))
    }

    pub fn unique(test: &str) -> Topics {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let id = &id[..8];
        Topics {
            debits: format!("t.{test}.{id}.debits"),
            statuses: format!("t.{test}.{id}.statuses"),
            dead_letter: format!("t.{test}.{id}.dead-letter"),
            receipts: format!("t.{test}.{id}.receipts"),
            handover: format!("t.{test}.{id}.handover"),
            group: format!("pigeon-{test}-{id}"),
        }
    }

    /// Creates the topics on the broker with explicit partition counts.
    pub async fn create(&self) {
        let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", brokers())
            .create()
            .expect("admin client");
        let topics = [
            NewTopic::new(&self.debits, 4, TopicReplication::Fixed(1)),
            NewTopic::new(&self.statuses, 4, TopicReplication::Fixed(1)),
            NewTopic::new(&self.dead_letter, 1, TopicReplication::Fixed(1)),
            NewTopic::new(&self.receipts, 2, TopicReplication::Fixed(1)),
            NewTopic::new(&self.handover, 4, TopicReplication::Fixed(1)),
        ];
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let results =
            tokio::time::timeout(Duration::from_secs(20), admin.create_topics(&topics, &opts))
                .await
                .expect("topic creation answered in time")
                .expect("topic creation");
        for r in results {
            r.expect("topic created");
        }
    }
}

/// Two simulated carriers, `carrier-a` and `carrier-b`, on ports of their own.
pub async fn start_sim(dlr_delay: Duration) -> SimHandle {
    start_sim_with(dlr_delay, |_| {}).await
}

/// As [`start_sim`], with `carrier-a` (the primary for UK numbers) adjusted by `fault`.
pub async fn start_sim_with(dlr_delay: Duration, fault: impl Fn(&mut CarrierSim)) -> SimHandle {
    let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let carriers = ["carrier-a", "carrier-b"]
        .into_iter()
        .map(|name| {
            let mut c = CarrierSim::new(name, any, Account::new("pigeon", "secret"));
            c.dlr_delay = dlr_delay;
            c.seed = Some(42);
            if name == "carrier-a" {
                fault(&mut c);
            }
            c
        })
        .collect();
    sim::start(SimConfig { carriers })
        .await
        .expect("simulator starts")
}

/// A collector of the statuses of run `run`, and its generator of UK debits after it produced
/// `n` of them to the test's debit topic.
pub async fn uk_debits(
    topics: &Topics,
    run: &str,
    n: u64,
) -> (
    pigeon_loadtest::load::StatusCollector,
    pigeon_loadtest::load::Generator,
) {
    let statuses = collector(topics, run);
    let mut g =
        pigeon_loadtest::load::Generator::new(run, pigeon_loadtest::load::DebitMix::uk_only());
    produce(&topics.debits, (0..n).map(|_| g.next_event()).collect()).await;
    (statuses, g)
}

/// A directory for each of two engines of a test (`a`, `b`): configuration, log, store.
pub fn engine_dirs(topics: &Topics) -> Vec<std::path::PathBuf> {
    ["a", "b"]
        .iter()
        .map(|n| {
            let d = std::env::temp_dir().join(format!("pigeon-{}-{n}", topics.debits));
            std::fs::create_dir_all(&d).expect("dir");
            d
        })
        .collect()
}

/// Waits (at most two minutes) until `n` events have a terminal status.
pub async fn wait_for(statuses: &pigeon_loadtest::load::StatusCollector, n: u64, what: &str) {
    assert!(
        statuses
            .wait_terminal(n, tokio::time::Instant::now() + Duration::from_secs(120))
            .await,
        "{what}: only {} of {n} ended",
        statuses.terminal_count()
    );
}

/// The events of `ids` with a status flagged `possible_duplicate`.
pub fn flagged<'a>(
    statuses: &pigeon_loadtest::load::StatusCollector,
    ids: &'a [String],
) -> std::collections::HashSet<&'a String> {
    ids.iter()
        .filter(|id| statuses.statuses(id).iter().any(|s| s.possible_duplicate))
        .collect()
}

/// A collector of the statuses of run `run` (its event ids' prefix) on the test's topic.
pub fn collector(topics: &Topics, run: &str) -> pigeon_loadtest::load::StatusCollector {
    pigeon_loadtest::load::StatusCollector::start(
        &KafkaConfig::new(brokers()),
        &topics.statuses,
        run,
    )
    .expect("status collector")
}

/// Engine configuration pointing at `sim` and `topics`.
pub fn engine_config(sim: &SimHandle, topics: &Topics) -> Config {
    engine_config_with(sim, topics, "")
}

/// As [`engine_config`], with extra TOML lines for `carrier-a`'s table.
pub fn engine_config_with(sim: &SimHandle, topics: &Topics, carrier_a: &str) -> Config {
    Config::from_toml(&engine_toml(sim, topics, carrier_a)).expect("test configuration")
}

/// The TOML text of [`engine_config_with`].
pub fn engine_toml(sim: &SimHandle, topics: &Topics, carrier_a: &str) -> String {
    let a = sim.addr("carrier-a").expect("carrier-a");
    let b = sim.addr("carrier-b").expect("carrier-b");
    format!(
        r#"
        [kafka]
        brokers = "{brokers}"
        group_id = "{group}"
        [topics]
        debits = "{debits}"
        statuses = "{statuses}"
        dead_letter = "{dead_letter}"
        [store]
        path = "{store}"
        fsync = false
        [engine]
        commit_interval_ms = 200
        drain_timeout_ms = 20000
        arbiters = 2
        [[carriers]]
        name = "carrier-a"
        address = "{a}"
        system_id = "pigeon"
        password = "secret"
        {carrier_a}
        [[carriers]]
        name = "carrier-b"
        address = "{b}"
        system_id = "pigeon"
        password = "secret"
        max_segments_per_second = 20000
        [routing]
        default_route = ["carrier-a"]
        operators = {{ uk = ["carrier-a", "carrier-b"], cn = ["carrier-b", "carrier-a"] }}
        prefixes = {{ "+44" = "uk", "+86" = "cn" }}
        [metrics]
        listen = ""
        "#,
        carrier_a = if carrier_a.contains("max_segments_per_second") {
            carrier_a.to_owned()
        } else {
            format!("max_segments_per_second = 20000\n{carrier_a}")
        },
        brokers = brokers(),
        group = topics.group,
        debits = topics.debits,
        statuses = topics.statuses,
        dead_letter = topics.dead_letter,
        store = topics.store_dir().display(),
    )
}

/// The engine running in-process on an actix system of its own thread.
pub struct Engine {
    stop: CancellationToken,
    reload: tokio::sync::mpsc::Sender<pigeon::pipeline::ReloadRequest>,
    thread: std::thread::JoinHandle<anyhow::Result<()>>,
}

impl Engine {
    pub fn start(cfg: Config) -> Engine {
        Self::start_with(cfg, None)
    }

    /// As [`Engine::start`], with where `POST /v1/admin/reload` reads the configuration.
    pub fn start_with(
        cfg: Config,
        config_source: Option<pigeon::pipeline::api::ConfigSource>,
    ) -> Engine {
        let stop = CancellationToken::new();
        let (reload, rx) = tokio::sync::mpsc::channel(4);
        let controls = pigeon::pipeline::Controls {
            stop: stop.clone(),
            reload: rx,
            config_source,
        };
        let thread = std::thread::spawn(move || {
            actix_rt::System::new().block_on(pigeon::pipeline::run(cfg, controls))
        });
        Engine {
            stop,
            reload,
            thread,
        }
    }

    /// Hands a new configuration to the running engine, as SIGHUP does; returns whether it
    /// was applied (or every reason it was refused).
    pub async fn reload(&self, cfg: Config) -> Result<pigeon::reload::ReloadPlan, Vec<String>> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let req = pigeon::pipeline::ReloadRequest {
            config: cfg,
            reply: Some(reply),
        };
        self.reload.send(req).await.expect("engine running");
        rx.await.expect("engine answered")
    }

    /// Graceful stop (as on SIGTERM): returns when the engine drained and stopped.
    pub async fn stop(self) {
        self.stop.cancel();
        let thread = self.thread;
        tokio::task::spawn_blocking(move || thread.join())
            .await
            .expect("join task")
            .expect("engine thread did not panic")
            .expect("engine stopped cleanly");
    }
}

/// Produces raw records to `topic`, keyed, waiting for every acknowledgement.
pub async fn produce(topic: &str, records: Vec<(Vec<u8>, Vec<u8>)>) {
    let publisher = Publisher::new(&KafkaConfig::new(brokers())).expect("producer");
    let batch: Vec<Outgoing> = records
        .into_iter()
        .map(|(k, p)| Outgoing {
            key: Some(k),
            payload: p,
            headers: Vec::new(),
        })
        .collect();
    for r in publisher.publish(topic, &batch).await {
        r.expect("produced");
    }
}

/// A consumer of `topic` from its beginning, in a group of its own.
pub fn consumer(topic: &str) -> StreamConsumer {
    let mut cfg = KafkaConfig::new(brokers());
    cfg.group_id = format!("reader-{}", uuid::Uuid::new_v4().simple());
    let c: StreamConsumer = cfg.consumer().create().expect("consumer");
    c.subscribe(&[topic]).expect("subscribe");
    c
}

/// The `pigeon` binary as a child process, for tests that crash it (`kill -9`) or run two.
pub struct EngineProcess {
    child: std::process::Child,
}

impl EngineProcess {
    /// The engine binary, built beside pigeon-sim (`deploy/local/test.sh` builds it first).
    pub fn binary() -> std::path::PathBuf {
        let sim = std::path::PathBuf::from(env!("CARGO_BIN_EXE_pigeon-sim"));
        let bin = sim.with_file_name(format!("pigeon{}", std::env::consts::EXE_SUFFIX));
        assert!(
            bin.exists(),
            "{} is missing: cargo build -p pigeon-engine --bin pigeon",
            bin.display()
        );
        bin
    }

    /// Starts `pigeon run` on the configuration `toml` (written to `dir/pigeon.toml`), with
    /// `env` overrides; its log is appended to `dir/engine.log`.
    pub fn start(dir: &std::path::Path, toml: &str, env: &[(&str, &str)]) -> EngineProcess {
        let config = dir.join("pigeon.toml");
        std::fs::write(&config, toml).expect("write the configuration");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("engine.log"))
            .expect("engine log");
        let child = std::process::Command::new(Self::binary())
            .arg("run")
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "warn,pigeon=info")
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("engine starts");
        EngineProcess { child }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `kill -9`: no drain, no commit, no unbind.
    pub fn kill9(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }

    /// SIGTERM, then waits (at most `within`) for a clean exit.
    pub async fn stop(mut self, within: Duration) {
        let pid = self.child.id().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill -TERM");
        assert!(sent.success());
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "engine exited with {status}");
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "engine did not stop in {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for EngineProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until the engine logging to `dir` has been assigned partitions `times` times.
pub async fn wait_assigned(dir: &std::path::Path, times: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let log = std::fs::read_to_string(dir.join("engine.log")).unwrap_or_default();
        if log.matches("partitions assigned").count() >= times {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} was not assigned partitions",
            dir.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A free loopback address (bound, then released) for a server the test starts.
pub fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

/// One HTTP/1.1 request (`Connection: close`): the status code and the JSON body (`Null`
/// when the body is not JSON).
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> (u16, serde_json::Value) {
    http_with(addr, method, path, token, &[]).await
}

/// [`http`] with more request headers.
pub async fn http_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
) -> (u16, serde_json::Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut more = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    for (name, value) in headers {
        more.push_str(&format!("{name}: {value}\r\n"));
    }
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{more}Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw))
        .await
        .expect("answered in time")
        .expect("read");
    let text = String::from_utf8_lossy(&raw);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (
        status,
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}
