//! One change at a time from many tasks, committed as few requests: the tasks of one
//! thread hand their changes to a batching task, which commits everything waiting in one
//! request while the previous one is on its way to the disk. The writer then sees one
//! request, and the runtime one wake-up from the store, per batch instead of per change.

use futures::future::BoxFuture;
use futures::FutureExt;
use tokio::sync::{mpsc, oneshot};

use super::{Change, Store, StoreError};

/// Most changes in one request.
const MOST: usize = 1_024;

type Item = (Change, oneshot::Sender<Result<(), StoreError>>);

/// Hands changes to a batching task (see [`Batcher::new`]).
#[derive(Clone)]
pub struct Batcher {
    tx: mpsc::Sender<Item>,
}

impl Batcher {
    /// A batcher, and the task that commits its batches: spawn that on the thread whose
    /// tasks use the batcher. The task ends once every batcher handle is gone.
    pub fn new(store: Store) -> (Batcher, BoxFuture<'static, ()>) {
        let (tx, rx) = mpsc::channel(MOST);
        (Batcher { tx }, run(store, rx).boxed())
    }

    /// Commits `change` with whatever else is waiting; returns once it is durable.
    pub async fn commit(&self, change: Change) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((change, reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

async fn run(store: Store, mut rx: mpsc::Receiver<Item>) {
    let mut items = Vec::with_capacity(MOST);
    while rx.recv_many(&mut items, MOST).await > 0 {
        let (changes, replies): (Vec<_>, Vec<_>) = items.drain(..).unzip();
        let done = store.commit(changes).await;
        for reply in replies {
            // A caller that gave up waiting is not an error: its change was applied anyway.
            let _ = reply.send(done.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::State;
    use crate::notification::Origin;
    use crate::store::{ClaimRequest, StoreOptions};

    #[tokio::test]
    async fn concurrent_changes_go_in_few_requests_and_all_apply() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StoreOptions {
            enabled: true,
            path: dir.path().join("db"),
            fsync: false,
            receipt_ttl_ms: 60_000,
        })
        .unwrap();
        let ids: Vec<String> = (0..200).map(|i| format!("e{i:03}")).collect();
        let claims = (ids.iter().enumerate())
            .map(|(i, id)| ClaimRequest {
                event_id: id.clone(),
                origin: Origin {
                    partition: 0,
                    offset: i as i64,
                },
                transaction_id: None,
                destination: None,
            })
            .collect();
        store.claim(claims).await.unwrap();
        let before = store.stats().requests;
        let (batcher, task) = Batcher::new(store.clone());
        let running = tokio::spawn(task);
        let marks = ids.iter().map(|id| {
            batcher.commit(Change::Submitting {
                event_id: id.clone(),
                carrier: "alpha".into(),
                at: time::OffsetDateTime::UNIX_EPOCH,
            })
        });
        for r in futures::future::join_all(marks).await {
            r.unwrap();
        }
        let requests = store.stats().requests - before;
        assert!(requests < 20, "{requests} requests for 200 changes");
        for id in &ids {
            assert_eq!(store.get(id).unwrap().unwrap().state, State::Submitting);
        }
        drop(batcher);
        running.await.unwrap();
    }
}
