//! The running simulator: one accept loop per carrier, one task per connection, shared
//! per-carrier state, and the [`SimHandle`] that reads stats, kills and restarts carriers,
//! and shuts everything down.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use super::config::{CarrierSim, SimConfig};
use super::faults::Throttles;
use super::http;
use super::reassembly::Reassembler;
use super::registry::Registry;
use super::session;
use super::stats::{Counters, PairSet, SimReport, SimStats};

/// Pause after a failed `accept` (for instance out of file descriptors) before retrying.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// State of one carrier that its sessions share; outlives kills and restarts.
#[derive(Debug)]
pub(crate) struct CarrierShared {
    pub cfg: CarrierSim,
    pub counters: Counters,
    /// Process-wide (all carriers): a message resent through another carrier is a duplicate.
    pub pairs: Arc<PairSet>,
    pub reassembly: Reassembler,
    pub registry: Registry,
    /// One `throttle_tps` bucket per account.
    pub throttles: Throttles,
    /// Told of every complete message (see [`start_observed`]).
    pub observer: Option<SubmitObserver>,
}

/// Called with `(carrier name, destination address)` each time a carrier has a complete
/// message (a single submit, or the last segment of a concatenated one), on the session's
/// task: it must be quick and must not block.
#[derive(Clone)]
pub struct SubmitObserver(Arc<ObserveFn>);

type ObserveFn = dyn Fn(&str, &str) + Send + Sync;

impl SubmitObserver {
    pub fn new(f: impl Fn(&str, &str) + Send + Sync + 'static) -> Self {
        SubmitObserver(Arc::new(f))
    }

    pub(crate) fn tell(&self, carrier: &str, destination: &str) {
        (self.0)(carrier, destination);
    }
}

impl std::fmt::Debug for SubmitObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SubmitObserver")
    }
}

#[derive(Debug)]
struct Running {
    cancel: CancellationToken,
    acceptor: JoinHandle<()>,
}

#[derive(Debug)]
struct CarrierRuntime {
    shared: Arc<CarrierShared>,
    /// The address actually bound (port 0 resolved); restarts listen here again.
    addr: SocketAddr,
    running: Mutex<Option<Running>>,
}

/// A running simulator. Dropping it stops every carrier; [`SimHandle::shutdown`] also waits.
#[derive(Debug)]
pub struct SimHandle {
    carriers: Vec<CarrierRuntime>,
    root: CancellationToken,
    tracker: TaskTracker,
}

/// Binds every carrier's listener and starts accepting; returns once all are listening.
pub async fn start(cfg: SimConfig) -> anyhow::Result<SimHandle> {
    start_observed(cfg, None).await
}

/// [`start`], with `observer` told of every complete message on any carrier (a load run
/// times the message's arrival with it).
pub async fn start_observed(
    cfg: SimConfig,
    observer: Option<SubmitObserver>,
) -> anyhow::Result<SimHandle> {
    cfg.validate()?;
    let root = CancellationToken::new();
    let tracker = TaskTracker::new();
    let pairs = Arc::new(PairSet::default());
    let mut carriers = Vec::with_capacity(cfg.carriers.len());
    for c in cfg.carriers {
        let listener = TcpListener::bind(c.listen)
            .await
            .with_context(|| format!("carrier {}: cannot listen on {}", c.name, c.listen))?;
        let addr = listener
            .local_addr()
            .context("listener has no local address")?;
        let shared = Arc::new(CarrierShared {
            cfg: c,
            counters: Counters::default(),
            pairs: Arc::clone(&pairs),
            reassembly: Reassembler::default(),
            registry: Registry::default(),
            throttles: Throttles::default(),
            observer: observer.clone(),
        });
        info!(carrier = %shared.cfg.name, %addr, "carrier listening");
        let running = spawn_acceptor(&shared, listener, root.child_token(), &tracker);
        carriers.push(CarrierRuntime {
            shared,
            addr,
            running: Mutex::new(Some(running)),
        });
    }
    Ok(SimHandle {
        carriers,
        root,
        tracker,
    })
}

fn spawn_acceptor(
    shared: &Arc<CarrierShared>,
    listener: TcpListener,
    cancel: CancellationToken,
    tracker: &TaskTracker,
) -> Running {
    let acceptor = tokio::spawn(accept_loop(
        Arc::clone(shared),
        listener,
        cancel.clone(),
        tracker.clone(),
    ));
    Running { cancel, acceptor }
}

async fn accept_loop(
    shared: Arc<CarrierShared>,
    listener: TcpListener,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            () = cancel.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let task = session::run(Arc::clone(&shared), stream, peer, cancel.clone());
                tracker.spawn(task);
            }
            Err(e) => {
                warn!(carrier = %shared.cfg.name, error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

impl SimHandle {
    /// `(carrier name, listening address)` for every carrier, in configuration order.
    pub fn addrs(&self) -> Vec<(String, SocketAddr)> {
        self.carriers
            .iter()
            .map(|c| (c.shared.cfg.name.clone(), c.addr))
            .collect()
    }

    /// The listening address of one carrier.
    pub fn addr(&self, name: &str) -> Option<SocketAddr> {
        self.find(name).map(|c| c.addr)
    }

    /// A snapshot of all carriers summed.
    pub fn stats(&self) -> SimStats {
        let mut total = SimStats::default();
        for c in &self.carriers {
            total.add(&c.shared.counters.snapshot());
        }
        total
    }

    /// A snapshot of one carrier.
    pub fn carrier_stats(&self, name: &str) -> Option<SimStats> {
        self.find(name).map(|c| c.shared.counters.snapshot())
    }

    /// Totals plus the per-carrier breakdown, as the binary writes them.
    pub fn report(&self) -> SimReport {
        let shared: Vec<&CarrierShared> = self.carriers.iter().map(|c| &*c.shared).collect();
        report_of(&shared)
    }

    /// Serves `GET /stats` (the [`SimHandle::report`] as JSON) on `listen` until the
    /// simulator stops; returns the address bound (port 0 picks a free one).
    pub async fn serve_stats(&self, listen: SocketAddr) -> anyhow::Result<SocketAddr> {
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("stats endpoint: cannot listen on {listen}"))?;
        let addr = listener
            .local_addr()
            .context("stats listener has no local address")?;
        let shared: Vec<Arc<CarrierShared>> = self
            .carriers
            .iter()
            .map(|c| Arc::clone(&c.shared))
            .collect();
        let report: http::ReportFn = Arc::new(move || {
            let refs: Vec<&CarrierShared> = shared.iter().map(|c| &**c).collect();
            report_of(&refs)
        });
        self.tracker.spawn(http::serve(
            listener,
            report,
            self.root.child_token(),
            self.tracker.clone(),
        ));
        info!(%addr, "stats endpoint listening");
        Ok(addr)
    }

    /// Simulates a carrier outage: stops listening and drops every session of `name` without
    /// an unbind. Receipts owed are kept and delivered after [`SimHandle::restart_carrier`]
    /// to the next receiver bind of the same account. False when `name` is unknown or
    /// already down.
    pub async fn kill_carrier(&self, name: &str) -> bool {
        let Some(c) = self.find(name) else {
            return false;
        };
        let Some(running) = c.running.lock().await.take() else {
            return false;
        };
        running.cancel.cancel();
        if let Err(e) = running.acceptor.await {
            warn!(carrier = name, error = %e, "accept loop ended abnormally");
        }
        info!(carrier = name, "carrier killed");
        true
    }

    /// Listens again on the same address after [`SimHandle::kill_carrier`]. Stats, the
    /// duplicate set and kept receipts carry over.
    pub async fn restart_carrier(&self, name: &str) -> anyhow::Result<()> {
        let c = self
            .find(name)
            .ok_or_else(|| anyhow::anyhow!("no carrier named {name:?}"))?;
        let mut running = c.running.lock().await;
        anyhow::ensure!(running.is_none(), "carrier {name:?} is already running");
        let listener = TcpListener::bind(c.addr)
            .await
            .with_context(|| format!("carrier {name}: cannot listen again on {}", c.addr))?;
        *running = Some(spawn_acceptor(
            &c.shared,
            listener,
            self.root.child_token(),
            &self.tracker,
        ));
        info!(carrier = name, addr = %c.addr, "carrier restarted");
        Ok(())
    }

    /// Stops every carrier and waits for every session to end; stats stay readable.
    pub async fn stop(&self) {
        self.root.cancel();
        for c in &self.carriers {
            if let Some(running) = c.running.lock().await.take() {
                let _ = running.acceptor.await;
            }
        }
        self.tracker.close();
        self.tracker.wait().await;
    }

    /// [`SimHandle::stop`], then the final totals.
    pub async fn shutdown(self) -> SimStats {
        self.stop().await;
        self.stats()
    }

    fn find(&self, name: &str) -> Option<&CarrierRuntime> {
        self.carriers.iter().find(|c| c.shared.cfg.name == name)
    }
}

/// Totals plus the per-carrier breakdown of `carriers`.
fn report_of(carriers: &[&CarrierShared]) -> SimReport {
    let carriers: BTreeMap<String, SimStats> = carriers
        .iter()
        .map(|c| (c.cfg.name.clone(), c.counters.snapshot()))
        .collect();
    let mut total = SimStats::default();
    for s in carriers.values() {
        total.add(s);
    }
    SimReport { total, carriers }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.root.cancel();
    }
}
