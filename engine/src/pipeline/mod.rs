//! Wiring: builds the stages downstream first, runs until asked to stop, then drains.
//!
//! Shutdown order: stop consuming; wait (bounded by `engine.drain_timeout_ms`) until every
//! consumed record is decided and every accepted notification has its receipt; commit;
//! unbind every session; flush the producer.

pub mod api;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use actix::{Actor, Addr, Arbiter};
use anyhow::Context as _;
use pigeon_kafka::{Assignment, HandoverConfig, Publisher, Source};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::actors::checkpoint::{Checkpoint, CommitNow};
use crate::actors::intake::{Idempotency, IntakeActor, Reload};
use crate::actors::matcher::{Awaiting, MatcherActor};
use crate::actors::shard::{SetRate, SetShare, Shard, ShardLinks, Unbind};
use crate::actors::sink::{Sink, SinkTopics};
use crate::actors::source;
use crate::config::{Config, RateShare};
use crate::health::CarrierHealth;
use crate::intake::{Encodings, Intake, IntakeLimits};
use crate::matcher::Matcher;
use crate::recovery;
use crate::relay::{self, RelayOut};
use crate::reload;
use crate::store::Store;
use crate::template::Templates;

/// Receipts that arrive before their submit response wait this long for it, and a settled
/// message id is known this long, so that a carrier's resent receipt counts as a duplicate.
/// Carriers resend an unanswered receipt within a minute or two; a longer window costs
/// memory at the peak (settled ids: ~35 bytes each, 3 M at 25,000/s for 120 s).
const PARK_TIMEOUT: Duration = Duration::from_secs(120);

/// How the engine is steered while it runs.
pub struct Controls {
    /// Cancelled to stop: drain, commit, unbind.
    pub stop: CancellationToken,
    /// New configurations (already validated on their own) to apply live where allowed.
    pub reload: mpsc::Receiver<ReloadRequest>,
    /// Where `POST /v1/admin/reload` reads the configuration again; `None`: it cannot.
    pub config_source: Option<api::ConfigSource>,
}

/// A configuration to apply, and where to say whether it was.
pub struct ReloadRequest {
    pub config: Config,
    /// Receives what changed, or every reason the reload was refused.
    pub reply: Option<oneshot::Sender<Result<reload::ReloadPlan, Vec<String>>>>,
}

/// Runs the engine inside the current actix system until `stop` is cancelled, then drains.
pub async fn run(cfg: Config, controls: Controls) -> anyhow::Result<()> {
    let Controls {
        stop,
        reload,
        config_source,
    } = controls;
    let e = &cfg.engine;
    let mailbox = e.mailbox_capacity;
    let templates = Templates::new(&cfg.templates).context("templates")?;
    let router = cfg
        .routing
        .router(&cfg.carriers)
        .map_err(|e| anyhow::anyhow!(e.join("\n")))?;

    let store = if cfg.store.enabled {
        Some(Store::open(&cfg.store).context("opening the store")?)
    } else {
        None
    };
    let handover = cfg.handover.topic.as_ref().map(|topic| HandoverConfig {
        topic: topic.clone(),
        // Without a store nothing is known of earlier claims: a name of this run's own.
        owner: store.as_ref().map_or_else(
            || uuid::Uuid::new_v4().to_string(),
            |s| s.owner().to_owned(),
        ),
        lease_records: i64::from(cfg.handover.lease_records),
    });
    let source = Arc::new(
        Source::subscribe_with(&cfg.kafka, &cfg.topics.debits, handover)
            .context("subscribing to debits")?,
    );
    let publisher = Publisher::new(&cfg.kafka).context("creating the producer")?;
    let mut matcher = Matcher::new(
        Duration::from_millis(e.receipt_timeout_ms),
        PARK_TIMEOUT,
        cfg.carriers
            .iter()
            .map(|c| c.receipt_id_form.rule())
            .collect(),
    );
    if let Some(store) = &store {
        recover(store, &cfg, &mut matcher)?;
        actix::spawn(write_waiting_claims(store.clone()));
    }

    // Downstream first.
    let checkpoint =
        Checkpoint::new(source.clone(), Duration::from_millis(e.commit_interval_ms)).start();
    let topics = SinkTopics {
        statuses: cfg.topics.statuses.as_str().into(),
        dead_letter: cfg.topics.dead_letter.as_str().into(),
        source: cfg.topics.debits.as_str().into(),
    };
    let sink = Sink::new(
        publisher.clone(),
        topics,
        checkpoint.clone(),
        store.clone(),
        mailbox,
    )
    .start();
    if let Some(store) = &store {
        let outbox = store.outbox().context("reading the outbox")?;
        if !outbox.is_empty() {
            info!(
                statuses = outbox.len(),
                "publishing the outbox left by the last run"
            );
            let replays = outbox.into_iter().map(|s| (s, None)).collect();
            let publish = crate::actors::Publish {
                replays,
                ..Default::default()
            };
            sink.send(publish).await.context("sink")?;
        }
    }
    let peers = Arc::new(OnceLock::new());
    let relay_out = cfg.relay.receipts_topic.as_ref().map(|t| RelayOut {
        publisher: publisher.clone(),
        topic: t.as_str().into(),
    });
    let matcher = MatcherActor::new(
        matcher,
        sink.clone(),
        peers.clone(),
        cfg.carriers.iter().map(|c| c.name.clone()).collect(),
        mailbox,
        relay_out,
    )
    .start();
    // Receipts relayed by the other instances: followed from now on (the matcher knows what
    // the store says is awaited), until the drain below is over.
    let relay_stop = CancellationToken::new();
    let relay_arbiter = Arbiter::new();
    let (relay_done, relay_finished) = oneshot::channel();
    if let Some(topic) = &cfg.relay.receipts_topic {
        let mut kafka = cfg.kafka.clone();
        kafka.group_id = cfg.relay.group(&cfg.kafka);
        let source = Source::subscribe(&kafka, topic).context("subscribing to relayed receipts")?;
        let carriers = (cfg.carriers.iter().enumerate())
            .map(|(i, c)| (c.name.clone(), i))
            .collect();
        let (matcher, stop) = (matcher.clone(), relay_stop.clone());
        relay_arbiter.spawn(async move {
            relay::follow(source, matcher, carriers, stop).await;
            let _ = relay_done.send(());
        });
    } else {
        drop(relay_done);
    }

    let workers = if e.arbiters == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        e.arbiters
    };
    let arbiters: Vec<Arbiter> = (0..workers).map(|_| Arbiter::new()).collect();
    let health = Arc::new(CarrierHealth::new(cfg.carriers.len()));
    let encodings: Encodings = cfg.carriers.iter().map(|c| c.segment_options()).collect();
    let shards: Vec<Addr<Shard>> = cfg
        .carriers
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let c = c.clone();
            let links = ShardLinks {
                matcher: matcher.clone(),
                health: health.clone(),
                peers: peers.clone(),
                failover_after: Duration::from_millis(e.failover_after_ms),
                ambiguous_wait: Duration::from_millis(e.ambiguous_wait_ms),
                encodings: encodings.clone(),
                store: store.clone(),
                mailbox,
                rate_share: e.rate_share,
            };
            Shard::start_in_arbiter(&arbiters[i % workers].handle(), move |_| {
                Shard::new(i, c, links)
            })
        })
        .collect();
    let _ = peers.set(shards.clone());
    let intake_arbiter = Arbiter::new();
    let intake = {
        let (shards, sink) = (shards.clone(), sink.clone());
        let limits = IntakeLimits {
            max_event_bytes: e.max_event_bytes,
            validity: Duration::from_millis(e.validity_ms),
            priority_lanes: e.priority_lanes,
        };
        let eligibility = crate::eligibility::start(&cfg)
            .await
            .context("subscriber eligibility")?;
        let intake = Intake::new(
            templates,
            router,
            limits,
            health.clone(),
            encodings.clone(),
            eligibility,
        );
        let idempotency = store.clone().map(|store| Idempotency {
            store,
            ambiguous_wait: Duration::from_millis(e.ambiguous_wait_ms),
        });
        IntakeActor::start_in_arbiter(&intake_arbiter.handle(), move |_| {
            IntakeActor::new(intake, shards, sink, mailbox, idempotency)
        })
    };

    if e.rate_share == RateShare::Partitions {
        actix::spawn(share_rates(source.assignment(), shards.clone()));
    }
    // Reloads from the caller (SIGHUP) and from the admin API go through one loop.
    let (reload_tx, reload_rx) = mpsc::channel(4);
    actix::spawn(forward(reload, reload_tx.clone()));
    actix::spawn(apply_reloads(
        cfg.clone(),
        reload_rx,
        intake.clone(),
        shards.clone(),
    ));
    let ready = Arc::new(AtomicBool::new(false));
    let api_stop = CancellationToken::new();
    if cfg.api.enabled() {
        let listener = tokio::net::TcpListener::bind(&cfg.api.listen)
            .await
            .with_context(|| format!("api.listen {}", cfg.api.listen))?;
        let token: Arc<str> = cfg.api.token.as_str().into();
        let peers = if cfg.api.peers.is_empty() {
            None
        } else {
            let peers = crate::api::HttpPeers::new(&cfg.api.peers, token.clone())
                .context("the api's client for its peers")?;
            Some(Arc::new(peers) as Arc<dyn crate::api::Peers>)
        };
        let state = crate::api::ApiState {
            token,
            peers,
            notifications: Arc::new(api::StoreLookup(store.clone())),
            carriers: Arc::new(api::CarrierStates {
                carriers: cfg
                    .carriers
                    .iter()
                    .map(|c| (c.name.clone(), c.binds))
                    .collect(),
                health: health.clone(),
            }),
            admin: Arc::new(api::AdminReload {
                source: config_source,
                tx: reload_tx.clone(),
            }),
            ready: ready.clone(),
        };
        let api_stop = api_stop.clone();
        actix::spawn(async move {
            if let Err(e) = crate::api::serve(listener, state, api_stop).await {
                warn!(error = %e, "http api failed");
            }
        });
    }
    ready.store(true, Ordering::Relaxed);
    info!(carriers = cfg.carriers.len(), workers, "engine started");
    // The source polls on a thread of its own: a rebalance blocks that thread while the
    // revoked partitions drain, and the rest of the pipeline must go on meanwhile.
    let source_arbiter = Arbiter::new();
    let (consumed, finished) = oneshot::channel();
    {
        let (source, intake) = (source.clone(), intake.clone());
        let (batch_max, linger) = (e.batch_max, Duration::from_millis(e.batch_linger_ms));
        source_arbiter.spawn(async move {
            source::run(source, intake, batch_max, linger, stop).await;
            let _ = consumed.send(());
        });
    }
    let _ = finished.await;

    ready.store(false, Ordering::Relaxed);
    info!("draining");
    let deadline = Instant::now() + Duration::from_millis(e.drain_timeout_ms);
    loop {
        let outstanding = source.outstanding();
        let awaiting = matcher.send(Awaiting).await.unwrap_or(0);
        if outstanding == 0 && awaiting == 0 {
            break;
        }
        if Instant::now() >= deadline {
            warn!(outstanding, awaiting, "drain timed out");
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    relay_stop.cancel();
    let _ = relay_finished.await;
    let _ = checkpoint.send(CommitNow).await;
    for s in &shards {
        let _ = s.send(Unbind).await;
    }
    let flushed = publisher.flush(Duration::from_secs(10));
    if let Err(e) = flushed {
        warn!(error = %e, "producer flush failed");
    }
    source.unsubscribe();
    for a in (arbiters.iter()).chain([&intake_arbiter, &source_arbiter, &relay_arbiter]) {
        a.stop();
    }
    api_stop.cancel();
    info!("stopped");
    Ok(())
}

/// Registers the notifications a carrier accepted before the last stop (or crash) with the
/// matcher, so that their receipts still match.
fn recover(store: &Store, cfg: &Config, matcher: &mut Matcher) -> anyhow::Result<()> {
    let names: Vec<Arc<str>> = cfg
        .carriers
        .iter()
        .map(|c| c.name.as_str().into())
        .collect();
    let open = store.open_records().context("reading open records")?;
    let (now, wall, mut out) = (Instant::now(), time::OffsetDateTime::now_utc(), Vec::new());
    // Its receipt timeout runs from when it was accepted, restarts or not; the oldest first,
    // so that the matcher's deadlines stay in order.
    let mut accepted: Vec<_> = open
        .iter()
        .filter_map(|r| {
            Some((
                recovery::accepted_age(r, wall),
                recovery::accepted_of(r, &names)?,
                r,
            ))
        })
        .collect();
    accepted.sort_by_key(|(age, ..)| std::cmp::Reverse(*age));
    let awaiting = accepted.len();
    for (age, a, r) in accepted {
        let carrier = a.carrier;
        matcher.accept_aged(a, now, age, &mut out);
        // Segments whose receipts came before the stop count as they did then.
        for receipt in recovery::segment_receipts(r) {
            matcher.receipt(carrier, receipt, now, &mut out);
        }
    }
    // Recorded already.
    matcher.take_segment_receipts();
    info!(open = open.len(), awaiting, "resumed from the store");
    Ok(())
}

/// Has the store write claims that waited [`crate::store::CLAIM_WRITE_DELAY`] with no
/// change, while no other request comes to do it.
async fn write_waiting_claims(store: Store) {
    let delay = crate::store::CLAIM_WRITE_DELAY;
    let mut tick = tokio::time::interval(delay / 2);
    loop {
        tick.tick().await;
        if let Err(e) = store.write_claims(delay).await {
            warn!(error = %e, "writing waiting claims failed");
        }
    }
}

async fn forward(mut from: mpsc::Receiver<ReloadRequest>, to: mpsc::Sender<ReloadRequest>) {
    while let Some(r) = from.recv().await {
        if to.send(r).await.is_err() {
            return;
        }
    }
}

/// Applies each new configuration that [`reload::plan`] allows; logs every reason otherwise.
/// Tells every shard the share of the debit partitions this instance holds, at start and
/// after each rebalance, for carrier rates shared by partitions (`engine.rate_share`).
async fn share_rates(mut assignment: watch::Receiver<Assignment>, shards: Vec<Addr<Shard>>) {
    loop {
        let (share, held) = {
            let a = assignment.borrow_and_update();
            (a.share(), a.partitions.len())
        };
        crate::metrics::partitions_held(held, share);
        for s in &shards {
            let _ = s.send(SetShare(share)).await;
        }
        if assignment.changed().await.is_err() {
            return;
        }
    }
}

async fn apply_reloads(
    mut current: Config,
    mut rx: mpsc::Receiver<ReloadRequest>,
    intake: Addr<IntakeActor>,
    shards: Vec<Addr<Shard>>,
) {
    while let Some(ReloadRequest { config: new, reply }) = rx.recv().await {
        let planned = reload::plan(&current, &new).and_then(|plan| {
            let templates = Templates::new(&new.templates).map_err(|e| vec![e.to_string()])?;
            let router = new.routing.router(&new.carriers)?;
            Ok((plan, templates, router))
        });
        let (plan, templates, router) = match planned {
            Ok(p) => p,
            Err(errors) => {
                for e in &errors {
                    warn!(error = %e, "reload refused");
                }
                if let Some(reply) = reply {
                    let _ = reply.send(Err(errors));
                }
                continue;
            }
        };
        let changed = plan.routing_changed || plan.templates_changed;
        if changed && intake.send(Reload { router, templates }).await.is_err() {
            return;
        }
        for (carrier, sps) in &plan.rates {
            if let Some(s) = shards.get(*carrier) {
                let _ = s.send(SetRate(*sps)).await;
            }
        }
        info!(
            rates = plan.rates.len(),
            routing = plan.routing_changed,
            "configuration reloaded"
        );
        current = new;
        if let Some(reply) = reply {
            let _ = reply.send(Ok(plan));
        }
    }
}
