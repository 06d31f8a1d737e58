//! Who is bound to a carrier, per `system_id`: the bind quota, and where receipts go when the
//! session that took the submit cannot carry them (a transmitter bind, or a closed session).
//! Receipts nobody can take yet are kept, like a real SMSC keeps them, until a receiver or
//! transceiver of that account binds. Locked on bind, unbind and hand-off only, never per submit.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError};

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::dlr::PendingReceipt;

/// A receipt moving between sessions, due at `deadline`.
#[derive(Debug)]
pub(crate) struct Handoff {
    pub deadline: Instant,
    pub receipt: PendingReceipt,
}

/// Why a bind was refused by the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BindRefused {
    /// The account already has `max_binds` live sessions.
    QuotaReached,
}

#[derive(Debug)]
struct LiveSession {
    id: u64,
    can_receive: bool,
    handoff: mpsc::Sender<Handoff>,
}

#[derive(Debug, Default)]
struct AccountState {
    sessions: Vec<LiveSession>,
    /// Receipts waiting for a receiver bind.
    orphans: VecDeque<Handoff>,
    /// Rotates hand-offs over the live receivers.
    next: usize,
}

/// Live sessions and kept receipts of one carrier.
impl AccountState {
    /// Hands `item` to a live receiver other than `from`; gives it back when none takes it.
    fn offer(&mut self, from: u64, mut item: Handoff) -> Option<Handoff> {
        let n = self.sessions.len();
        for _ in 0..n {
            self.next = self.next.wrapping_add(1);
            let s = &self.sessions[self.next % n];
            if s.id == from || !s.can_receive {
                continue;
            }
            match s.handoff.try_send(item) {
                Ok(()) => return None,
                Err(mpsc::error::TrySendError::Full(back))
                | Err(mpsc::error::TrySendError::Closed(back)) => item = back,
            }
        }
        Some(item)
    }
}

#[derive(Debug, Default)]
pub(crate) struct Registry {
    accounts: Mutex<HashMap<String, AccountState>>,
    next_session: AtomicU64,
    /// Receipts kept across all accounts; lets sessions skip the lock when there are none.
    orphans: AtomicUsize,
}

impl Registry {
    pub fn next_session_id(&self) -> u64 {
        self.next_session.fetch_add(1, Relaxed)
    }

    /// Whether kept receipts exist for any account.
    pub fn has_orphans(&self) -> bool {
        self.orphans.load(Relaxed) > 0
    }

    /// Registers a bound session. A receiver or transceiver takes over the receipts kept for
    /// its account, which are returned.
    pub fn bind(
        &self,
        system_id: &str,
        session_id: u64,
        can_receive: bool,
        handoff: mpsc::Sender<Handoff>,
        max_binds: Option<usize>,
    ) -> Result<Vec<Handoff>, BindRefused> {
        let mut accounts = self.lock();
        let account = accounts.entry(system_id.to_string()).or_default();
        if max_binds.is_some_and(|max| account.sessions.len() >= max) {
            return Err(BindRefused::QuotaReached);
        }
        account.sessions.push(LiveSession {
            id: session_id,
            can_receive,
            handoff,
        });
        if !can_receive {
            return Ok(Vec::new());
        }
        let taken: Vec<Handoff> = account.orphans.drain(..).collect();
        self.orphans.fetch_sub(taken.len(), Relaxed);
        Ok(taken)
    }

    /// Removes a session; its bind slot is free again.
    pub fn unbind(&self, system_id: &str, session_id: u64) {
        if let Some(account) = self.lock().get_mut(system_id) {
            account.sessions.retain(|s| s.id != session_id);
        }
    }

    /// Receipts kept for `system_id`, for a receiver session to adopt.
    pub fn take_orphans(&self, system_id: &str) -> Vec<Handoff> {
        let mut accounts = self.lock();
        let Some(account) = accounts.get_mut(system_id) else {
            return Vec::new();
        };
        let taken: Vec<Handoff> = account.orphans.drain(..).collect();
        self.orphans.fetch_sub(taken.len(), Relaxed);
        taken
    }

    /// Sends receipts to live receivers of `system_id` other than `from`, or keeps them.
    pub fn route(&self, system_id: &str, from: u64, receipts: Vec<Handoff>) {
        if receipts.is_empty() {
            return;
        }
        let mut accounts = self.lock();
        let account = accounts.entry(system_id.to_string()).or_default();
        for item in receipts {
            if let Some(kept) = account.offer(from, item) {
                account.orphans.push_back(kept);
                self.orphans.fetch_add(1, Relaxed);
            }
        }
    }

    /// Hands `item` to a live receiver of `system_id` other than `from`; gives it back when
    /// there is none (the caller then delivers it itself).
    pub fn offer_other(&self, system_id: &str, from: u64, item: Handoff) -> Option<Handoff> {
        match self.lock().get_mut(system_id) {
            Some(account) => account.offer(from, item),
            None => Some(item),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, AccountState>> {
        self.accounts.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
