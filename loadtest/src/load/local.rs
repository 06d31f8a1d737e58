//! The system under test, started on this machine: the project's local broker
//! (`deploy/local/broker.sh`, restarted empty for each run), the simulated carriers
//! (in this process, so that their view of each message is timed on the run's clock), and
//! the engine binary as a child process on a configuration written for the run.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;
use tokio::time::Instant;

/// A broker of the run's own, through the project's broker script: its pid file and log
/// in `state` (`PIGEON_BROKER_STATE`), so that it never touches another local broker.
pub struct Broker {
    script: PathBuf,
    state: PathBuf,
    pub port: u16,
}

impl Broker {
    pub fn new(repo_root: &Path, state: &Path, port: u16) -> Broker {
        Broker {
            script: repo_root.join("deploy/local/broker.sh"),
            state: state.to_owned(),
            port,
        }
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Stops this broker if it runs, starts it empty on `port` and creates the engine's
    /// topics (installing the broker first if needed).
    pub fn restart(&self) -> anyhow::Result<()> {
        let _ = self.script_run(&["stop"]);
        let port = self.port.to_string();
        self.script_run(&["start", &port])?;
        self.script_run(&["topics", &port])
    }

    pub fn stop(&self) {
        let _ = self.script_run(&["stop"]);
    }

    /// The running broker's process id, from the script's pid file.
    pub fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.state.join("broker.pid"))
            .ok()
            .and_then(|p| p.trim().parse().ok())
    }

    fn script_run(&self, args: &[&str]) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.state)
            .with_context(|| format!("creating {}", self.state.display()))?;
        let out = Command::new("bash")
            .arg(&self.script)
            .args(args)
            .env("PIGEON_BROKER_STATE", &self.state)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {}", self.script.display()))?;
        anyhow::ensure!(
            out.status.success(),
            "{} {}: {}",
            self.script.display(),
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(())
    }
}

/// The engine configuration for a run: `base` (the local demo's) with the scenario's
/// overrides, the run's broker, consumer group and store, the API listener off and the
/// metrics listener on `metrics` (off when `None`) unless the overrides set them, and each
/// carrier pointed at the simulated carrier of the same name.
pub fn engine_config(
    base: &str,
    overrides: &toml::Table,
    brokers: &str,
    run_id: &str,
    store: &Path,
    carriers: &[(String, SocketAddr)],
    metrics: Option<SocketAddr>,
) -> anyhow::Result<String> {
    let mut cfg: toml::Table = base.parse().context("the base engine configuration")?;
    let mut run = toml::Table::new();
    let mut set = |section: &str, key: &str, value: toml::Value| {
        let t = run
            .entry(section)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if let toml::Value::Table(t) = t {
            t.insert(key.to_owned(), value);
        }
    };
    set("kafka", "brokers", brokers.into());
    set(
        "kafka",
        "group_id",
        format!("pigeon-load-engine-{run_id}").into(),
    );
    set("store", "path", store.display().to_string().into());
    set("api", "listen", "".into());
    set(
        "metrics",
        "listen",
        metrics.map(|a| a.to_string()).unwrap_or_default().into(),
    );
    super::scenario::merge_into(&mut cfg, &run);
    super::scenario::merge_into(&mut cfg, overrides);
    let Some(toml::Value::Array(list)) = cfg.get_mut("carriers") else {
        anyhow::bail!("the engine configuration has no [[carriers]]");
    };
    let mut missing = Vec::new();
    for c in list.iter_mut() {
        let Some(t) = c.as_table_mut() else { continue };
        let name = t.get("name").and_then(|n| n.as_str()).unwrap_or_default();
        match carriers.iter().find(|(n, _)| n == name) {
            Some((_, addr)) => {
                t.insert("address".into(), addr.to_string().into());
            }
            None => missing.push(name.to_owned()),
        }
    }
    anyhow::ensure!(
        missing.is_empty(),
        "engine carriers without a simulated carrier of the same name: {}",
        missing.join(", ")
    );
    toml::to_string(&cfg).context("writing the engine configuration")
}

/// One engine process.
pub struct EngineProcess {
    child: Child,
}

impl EngineProcess {
    /// The engine binary next to this program (`target/<profile>/pigeon`).
    pub fn binary_beside_me() -> anyhow::Result<PathBuf> {
        let me = std::env::current_exe().context("locating pigeon-load")?;
        let bin = me.with_file_name(format!("pigeon{}", std::env::consts::EXE_SUFFIX));
        anyhow::ensure!(
            bin.exists(),
            "{} is missing: cargo build --release --bin pigeon",
            bin.display()
        );
        Ok(bin)
    }

    /// Starts `bin run --config config`, its log appended to `log`.
    pub fn start(bin: &Path, config: &Path, log: &Path) -> anyhow::Result<EngineProcess> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let child = Command::new(bin)
            .arg("run")
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "warn,pigeon_kafka=info,pigeon::store=info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        Ok(EngineProcess { child })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// User + system CPU seconds so far (0 once it has exited).
    pub fn cpu_seconds(&self) -> f64 {
        super::cpu::process_seconds(self.pid()).unwrap_or(0.0)
    }

    /// Resident memory in MB (0 once it has exited).
    pub fn rss_mb(&self) -> f64 {
        let Ok(status) = std::fs::read_to_string(format!("/proc/{}/status", self.pid())) else {
            return 0.0;
        };
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    }

    /// `kill -9`: no drain, no commit, no unbind.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits at most `within` for it to exit (SIGKILL after that). True when
    /// it exited cleanly in time.
    pub async fn stop(&mut self, within: Duration) -> bool {
        let pid = self.pid().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + within;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return status.success(),
                Ok(None) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                _ => {
                    self.kill9();
                    return false;
                }
            }
        }
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for EngineProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `log` has a line containing `needle` after byte `from`, or `deadline`.
pub async fn wait_for_log(
    log: &Path,
    from: u64,
    needle: &str,
    deadline: Instant,
) -> anyhow::Result<()> {
    loop {
        if let Ok(f) = std::fs::File::open(log) {
            let mut r = BufReader::new(f);
            if std::io::Seek::seek(&mut r, std::io::SeekFrom::Start(from)).is_ok()
                && r.lines().map_while(Result::ok).any(|l| l.contains(needle))
            {
                return Ok(());
            }
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "no {needle:?} in {} in time",
            log.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Size of a file (0 if missing): where to look for new log lines from.
pub fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[kafka]
brokers = "127.0.0.1:19092"
[api]
listen = "127.0.0.1:8088"
token = "demo-token-0123456789"
[[carriers]]
name = "carrier-a"
address = "127.0.0.1:2775"
window = 64
[[carriers]]
name = "carrier-b"
address = "127.0.0.1:2776"
"#;

    fn addrs() -> Vec<(String, SocketAddr)> {
        vec![
            ("carrier-a".into(), SocketAddr::from(([127, 0, 0, 1], 4001))),
            ("carrier-b".into(), SocketAddr::from(([127, 0, 0, 1], 4002))),
        ]
    }

    #[test]
    fn the_run_configuration_points_at_the_run_and_keeps_overrides() {
        let overrides: toml::Table = "[engine]\nambiguous_wait_ms = 2000\n".parse().unwrap();
        let text = engine_config(
            BASE,
            &overrides,
            "127.0.0.1:19392",
            "r1",
            Path::new("/tmp/x/store"),
            &addrs(),
            Some(SocketAddr::from(([127, 0, 0, 1], 9464))),
        )
        .unwrap();
        let cfg: toml::Table = text.parse().unwrap();
        assert_eq!(cfg["kafka"]["brokers"].as_str(), Some("127.0.0.1:19392"));
        assert_eq!(
            cfg["kafka"]["group_id"].as_str(),
            Some("pigeon-load-engine-r1")
        );
        assert_eq!(cfg["store"]["path"].as_str(), Some("/tmp/x/store"));
        assert_eq!(cfg["api"]["listen"].as_str(), Some(""));
        assert_eq!(cfg["metrics"]["listen"].as_str(), Some("127.0.0.1:9464"));
        assert_eq!(cfg["api"]["token"].as_str(), Some("demo-token-0123456789"));
        assert_eq!(cfg["engine"]["ambiguous_wait_ms"].as_integer(), Some(2000));
        let carriers = cfg["carriers"].as_array().unwrap();
        assert_eq!(carriers[0]["address"].as_str(), Some("127.0.0.1:4001"));
        assert_eq!(carriers[1]["address"].as_str(), Some("127.0.0.1:4002"));
        assert_eq!(carriers[0]["window"].as_integer(), Some(64));
    }

    #[test]
    fn a_carrier_without_a_simulated_one_is_refused() {
        let err = engine_config(
            BASE,
            &toml::Table::new(),
            "b",
            "r",
            Path::new("s"),
            &addrs()[..1],
            None,
        )
        .unwrap_err();
        assert!(err.to_string().contains("carrier-b"), "{err}");
    }
}
