//! One change at a time from many tasks, committed as few requests: the tasks of one
//! thread hand their changes to a batching task, which commits everything waiting in one
//! request while the previous one is on its way to the disk. The writer then sees one
//! request, and the runtime one wake-up from the store, per batch instead of per change.

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use tokio::sync::{mpsc, oneshot};

use super::{Change, Store, StoreError};

/// Most changes in one request.
const MOST: usize = 1_024;

type Item = (Change, oneshot::Sender<Result<(), StoreError>>);

/// Completes once a queued batch is durable.
type Durable = BoxFuture<'static, Result<(), StoreError>>;

/// Hands changes to a batching task (see [`Batcher::new`]).
#[derive(Clone)]
pub struct Batcher {
    tx: mpsc::Sender<Item>,
}

impl Batcher {
    /// A batcher, and the task that commits its batches: spawn that on the thread whose
    /// tasks use the batcher. The task ends once every batcher handle is gone.
    pub fn new(store: Store) -> (Batcher, BoxFuture<'static, ()>) {
        Self::queueing_with(move |changes| {
            let store = store.clone();
            async move { Ok(store.commit_queued(changes).await?.boxed()) }.boxed()
        })
    }

    /// A batcher whose batches go to `queue`, which returns once a batch is queued, with
    /// the future of its durability.
    fn queueing_with<Q>(queue: Q) -> (Batcher, BoxFuture<'static, ()>)
    where
        Q: FnMut(Vec<Change>) -> BoxFuture<'static, Result<Durable, StoreError>> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(MOST);
        (Batcher { tx }, run(queue, rx).boxed())
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

async fn run<Q>(mut queue: Q, mut rx: mpsc::Receiver<Item>)
where
    Q: FnMut(Vec<Change>) -> BoxFuture<'static, Result<Durable, StoreError>>,
{
    let mut items = Vec::with_capacity(MOST);
    // Batches queued with the writer, waiting to be durable: the next batch goes to the
    // writer as soon as it gathers, not after the previous one reached the disk, so that a
    // change waits for its own group commit only.
    let mut durable = FuturesUnordered::new();
    loop {
        tokio::select! {
            got = rx.recv_many(&mut items, MOST) => {
                if got == 0 {
                    break;
                }
                let (changes, replies): (Vec<_>, Vec<_>) = items.drain(..).unzip();
                match queue(changes).await {
                    Ok(done) => durable.push(async move { answer(replies, done.await) }),
                    Err(e) => answer(replies, Err(e)),
                }
            }
            Some(()) = durable.next(), if !durable.is_empty() => {}
        }
    }
    while durable.next().await.is_some() {}
}

fn answer(replies: Vec<oneshot::Sender<Result<(), StoreError>>>, done: Result<(), StoreError>) {
    for reply in replies {
        // A caller that gave up waiting is not an error: its change was applied anyway.
        let _ = reply.send(done.clone());
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

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
            ..StoreOptions::default()
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

    fn mark(id: &str) -> Change {
        Change::Submitting {
            event_id: id.into(),
            carrier: "alpha".into(),
            at: time::OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_goes_to_the_writer_while_the_previous_one_waits_for_the_disk() {
        // Each batch the batcher queues, with the sender that makes it durable.
        let (queued_tx, mut queued) = mpsc::unbounded_channel();
        let (batcher, task) = Batcher::queueing_with(move |changes| {
            let (disk, durable) = oneshot::channel::<()>();
            queued_tx.send((changes.len(), disk)).unwrap();
            let durable: Durable =
                async move { durable.await.map_err(|_| StoreError::Closed) }.boxed();
            async move { Ok(durable) }.boxed()
        });
        let running = tokio::spawn(task);
        let first = tokio::spawn({
            let b = batcher.clone();
            async move { b.commit(mark("e1")).await }
        });
        let (n, first_disk) = queued.recv().await.unwrap();
        assert_eq!(n, 1);
        let second = tokio::spawn({
            let b = batcher.clone();
            async move { b.commit(mark("e2")).await }
        });
        // The first batch is not durable yet; the second is queued all the same (with paused
        // time, a batcher waiting for the first would make this time out at once).
        let (n, second_disk) = tokio::time::timeout(Duration::from_secs(5), queued.recv())
            .await
            .expect("the second batch waited for the first one's sync")
            .unwrap();
        assert_eq!(n, 1);
        second_disk.send(()).unwrap();
        second.await.unwrap().unwrap();
        assert!(
            !first.is_finished(),
            "answered before its batch was durable"
        );
        first_disk.send(()).unwrap();
        first.await.unwrap().unwrap();
        drop(batcher);
        running.await.unwrap();
    }
}
