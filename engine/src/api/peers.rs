//! Lookups on the other instances of a deployment (`api.peers`).
//!
//! An instance holds the records of the debits it consumed, so with several instances a
//! lookup that misses locally may be another's. [`HttpPeers`] asks every peer, concurrently,
//! with the same bearer token and the [`SCOPE_HEADER`] set to [`SCOPE_LOCAL`], which makes a
//! peer answer from its own store only (so two instances that name each other never ask back
//! and forth). A "not found" is answered only when every peer answered; a peer that could not
//! be asked (unreachable, slower than [`PEER_TIMEOUT`], or answering anything but 200 or 404)
//! makes the lookup `503 peers_unavailable`, naming it, rather than a 404 that may be wrong.
//!
//! Each configured peer is a `host:port`, resolved on every lookup to all its addresses: a
//! Kubernetes headless Service's name gives every pod of the StatefulSet, this one included
//! (which answers its own local miss again, harmlessly).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::{join_all, BoxFuture};
use reqwest::{StatusCode, Url};
use serde_json::Value;

/// Header that scopes a lookup; with [`SCOPE_LOCAL`], the instance does not ask its peers.
pub const SCOPE_HEADER: &str = "pigeon-lookup-scope";
/// [`SCOPE_HEADER`]'s value for a lookup in the answering instance's own store only.
pub const SCOPE_LOCAL: &str = "local";
/// Longest wait for one peer's answer (they are asked concurrently), well within the
/// request's own deadline.
pub const PEER_TIMEOUT: Duration = Duration::from_secs(3);

/// Peers that could not be asked (addresses, or configured names that did not resolve).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable(pub Vec<String>);

/// The other instances' stores, as the handlers ask them.
pub trait Peers: Send + Sync + 'static {
    /// The record of one event on any peer that has it; `Ok(None)` when every peer answered
    /// that it does not.
    fn notification(
        &self,
        event_id: String,
    ) -> BoxFuture<'static, Result<Option<Value>, Unavailable>>;
    /// Every peer's records of one transaction; an error when any peer could not be asked.
    fn transaction(
        &self,
        transaction_id: String,
    ) -> BoxFuture<'static, Result<Vec<Value>, Unavailable>>;
}

/// [`Peers`] over HTTP.
pub struct HttpPeers {
    client: reqwest::Client,
    peers: Arc<[String]>,
    token: Arc<str>,
}

impl HttpPeers {
    /// Peers at `peers` (`host:port` each), asked with `token`.
    pub fn new(peers: &[String], token: Arc<str>) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(PEER_TIMEOUT)
            .connect_timeout(PEER_TIMEOUT)
            .build()?;
        Ok(Self {
            client,
            peers: peers.into(),
            token,
        })
    }

    /// Asks every address of every peer for the path of `segments`; each answer is
    /// `Some(body)` for 200 with a body that `fits`, `None` for 404, or the address that
    /// could not be asked.
    fn ask_all(
        &self,
        segments: Vec<String>,
        fits: fn(&Value) -> bool,
    ) -> BoxFuture<'static, Vec<Result<Option<Value>, String>>> {
        let (client, peers, token) = (self.client.clone(), self.peers.clone(), self.token.clone());
        Box::pin(async move {
            let (addresses, unresolved) = resolve(&peers).await;
            let asks = addresses.into_iter().map(|addr| {
                let (client, token, segments) = (client.clone(), token.clone(), &segments);
                async move {
                    ask(&client, &token, addr, segments, fits)
                        .await
                        .map_err(|why| {
                            tracing::warn!(peer = %addr, why, "a peer could not be asked");
                            addr.to_string()
                        })
                }
            });
            let mut answers = join_all(asks).await;
            answers.extend(unresolved.into_iter().map(Err));
            answers
        })
    }
}

impl Peers for HttpPeers {
    fn notification(
        &self,
        event_id: String,
    ) -> BoxFuture<'static, Result<Option<Value>, Unavailable>> {
        let path = vec!["v1".into(), "notifications".into(), event_id];
        let answers = self.ask_all(path, Value::is_object);
        Box::pin(async move {
            let mut unavailable = Vec::new();
            for answer in answers.await {
                match answer {
                    Ok(Some(record)) => return Ok(Some(record)),
                    Ok(None) => {}
                    Err(peer) => unavailable.push(peer),
                }
            }
            if unavailable.is_empty() {
                Ok(None)
            } else {
                Err(Unavailable(unavailable))
            }
        })
    }

    fn transaction(
        &self,
        transaction_id: String,
    ) -> BoxFuture<'static, Result<Vec<Value>, Unavailable>> {
        let path = vec![
            "v1".into(),
            "transactions".into(),
            transaction_id,
            "notifications".into(),
        ];
        let answers = self.ask_all(path, |body| body["notifications"].is_array());
        Box::pin(async move {
            let mut records = Vec::new();
            let mut unavailable = Vec::new();
            for answer in answers.await {
                match answer {
                    Ok(Some(mut body)) => {
                        if let Value::Array(found) = body["notifications"].take() {
                            records.extend(found);
                        }
                    }
                    Ok(None) => {}
                    Err(peer) => unavailable.push(peer),
                }
            }
            if unavailable.is_empty() {
                Ok(records)
            } else {
                Err(Unavailable(unavailable))
            }
        })
    }
}

/// Every address of every peer, without repeats, and the peers that did not resolve.
async fn resolve(peers: &[String]) -> (BTreeSet<SocketAddr>, Vec<String>) {
    let mut addresses = BTreeSet::new();
    let mut unresolved = Vec::new();
    for peer in peers {
        match tokio::time::timeout(PEER_TIMEOUT, tokio::net::lookup_host(peer.as_str())).await {
            Ok(Ok(found)) => addresses.extend(found),
            Ok(Err(e)) => {
                tracing::warn!(peer, error = %e, "a peer's name did not resolve");
                unresolved.push(peer.clone());
            }
            Err(_) => {
                tracing::warn!(peer, "a peer's name did not resolve in time");
                unresolved.push(peer.clone());
            }
        }
    }
    (addresses, unresolved)
}

/// One peer's answer: 200 with a JSON body, or 404; anything else is the reason it failed.
async fn ask(
    client: &reqwest::Client,
    token: &str,
    addr: SocketAddr,
    segments: &[String],
    fits: fn(&Value) -> bool,
) -> Result<Option<Value>, &'static str> {
    let mut url = Url::parse(&format!("http://{addr}/")).map_err(|_| "no url for the address")?;
    url.path_segments_mut()
        .map_err(|_| "no url for the address")?
        .extend(segments.iter());
    let response = client
        .get(url)
        .bearer_auth(token)
        .header(SCOPE_HEADER, SCOPE_LOCAL)
        .send()
        .await
        .map_err(|e| {
            if e.is_timeout() {
                "timed out"
            } else {
                "unreachable"
            }
        })?;
    match response.status() {
        StatusCode::OK => match response.json().await {
            Ok(body) if fits(&body) => Ok(Some(body)),
            _ => Err("an answer that is not the record asked for"),
        },
        StatusCode::NOT_FOUND => Ok(None),
        StatusCode::UNAUTHORIZED => Err("refused the token"),
        _ => Err("an error answer"),
    }
}
