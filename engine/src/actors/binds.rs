//! A carrier's binds: the sessions that are up, picked round robin for submits, and the task
//! per bind that keeps it up — connect, wait until it closes, back off with jitter, again.
//!
//! A bind slot holds a transceiver or a transmitter (submits go through it); a carrier that
//! wants separate receivers gets a receiver session beside each transmitter, which only
//! delivers receipts.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockWriteGuard};
use std::time::Duration;

use pigeon_smpp::session::{self, Inbound, Session, SessionConfig};
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::breaker::Breaker;
use crate::health::CarrierHealth;
use crate::metrics;
use crate::retry::Reconnect;
use crate::routing::CarrierId;

/// What a kept session is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Takes submits (transceiver or transmitter).
    Submit,
    /// Only delivers receipts (receiver).
    Receive,
}

/// The sessions of one carrier that are up.
pub struct Binds {
    name: Arc<str>,
    carrier: CarrierId,
    health: Arc<CarrierHealth>,
    /// Losing every submitting bind trips the carrier's breaker.
    breaker: Arc<Mutex<Breaker>>,
    /// One slot per bind; `None` while that bind is down.
    submitters: RwLock<Vec<Option<Session>>>,
    receivers: RwLock<Vec<Option<Session>>>,
    up: Notify,
    next: AtomicUsize,
}

fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

impl Binds {
    pub fn new(
        name: Arc<str>,
        carrier: CarrierId,
        slots: usize,
        health: Arc<CarrierHealth>,
        breaker: Arc<Mutex<Breaker>>,
    ) -> Binds {
        Binds {
            name,
            carrier,
            health,
            breaker,
            submitters: RwLock::new(vec![None; slots]),
            receivers: RwLock::new(vec![None; slots]),
            up: Notify::new(),
            next: AtomicUsize::new(0),
        }
    }

    /// A submitting session that is up, round robin, with its slot index; waits for one when
    /// all are down.
    pub async fn pick(&self) -> (usize, Session) {
        loop {
            let notified = self.up.notified();
            if let Some(picked) = self.try_pick() {
                return picked;
            }
            notified.await;
        }
    }

    /// As [`Binds::pick`], but gives up at `deadline`.
    pub async fn pick_until(&self, deadline: Instant) -> Option<(usize, Session)> {
        tokio::time::timeout_at(deadline, self.pick()).await.ok()
    }

    /// A submitting session that is up and its slot index, round robin, if any.
    pub fn try_pick(&self) -> Option<(usize, Session)> {
        let binds = self.submitters.read().unwrap_or_else(|p| p.into_inner());
        let n = binds.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|i| (start + i) % n)
            .find_map(|i| match &binds[i] {
                Some(s) if !s.is_closed() => Some((i, s.clone())),
                _ => None,
            })
    }

    fn set(&self, role: Role, i: usize, s: Option<Session>) {
        let slots = match role {
            Role::Submit => &self.submitters,
            Role::Receive => &self.receivers,
        };
        let mut slots = write(slots);
        slots[i] = s;
        let up = slots.iter().filter(|b| b.is_some()).count();
        drop(slots);
        if role == Role::Submit {
            metrics::carrier_binds(&self.name, up);
            self.health.set_binds_up(self.carrier, up);
            let mut b = self.breaker.lock().unwrap_or_else(|p| p.into_inner());
            if up == 0 {
                b.on_all_binds_down(Instant::now());
            } else {
                b.on_binds_up();
            }
            self.health.publish_breaker(self.carrier, &self.name, &b);
            drop(b);
            self.up.notify_waiters();
        }
    }

    /// Every session that is up, of either role.
    pub fn sessions(&self) -> Vec<Session> {
        let mut all: Vec<Session> = self
            .submitters
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .flatten()
            .cloned()
            .collect();
        all.extend(
            self.receivers
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .flatten()
                .cloned(),
        );
        all
    }
}

/// Keeps session `i` of `role` up until `stop`: connect, wait until it closes, back off
/// ([`Reconnect`], capped at `max_backoff`; longer when the carrier says its bind quota is
/// used up or the account is refused), again.
pub async fn keep(
    binds: Arc<Binds>,
    role: Role,
    i: usize,
    cfg: SessionConfig,
    max_backoff: Duration,
    inbound: mpsc::Sender<Inbound>,
    stop: CancellationToken,
) {
    let mut backoff = Reconnect::new(max_backoff);
    while !stop.is_cancelled() {
        let connected = tokio::select! {
            _ = stop.cancelled() => break,
            r = session::connect(cfg.clone(), inbound.clone()) => r,
        };
        let mut floor = Duration::ZERO;
        match connected {
            Ok(s) => {
                info!(carrier = %binds.name, bind = i, ?role, "bound");
                backoff.bound();
                binds.set(role, i, Some(s.clone()));
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = s.closed() => {}
                }
                binds.set(role, i, None);
                warn!(carrier = %binds.name, bind = i, ?role, "bind lost; reconnecting");
            }
            Err(e) => {
                floor = e.retry_after_hint();
                warn!(carrier = %binds.name, bind = i, ?role, error = %e, "bind failed");
            }
        }
        let wait = backoff.next_wait(floor, &mut rand::rng());
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}
