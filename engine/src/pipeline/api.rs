//! The pipeline's side of the HTTP API: the traits of [`crate::api`] over the engine's
//! live state (carrier health, the reload loop, the store).

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt as _;
use tokio::sync::{mpsc, oneshot};

use super::ReloadRequest;
use crate::api::{Admin, BreakerView, CarrierView, Carriers, Notifications};
use crate::config::Config;
use crate::health::CarrierHealth;
use crate::reload::ReloadPlan;
use crate::store::Store;

/// Reads the configuration again (from its file) for a reload: the configuration, or every
/// error found in it.
pub type ConfigSource = Arc<dyn Fn() -> Result<Config, Vec<String>> + Send + Sync>;

/// Carrier state from the shards' shared health table.
pub struct CarrierStates {
    /// (name, configured binds), by carrier id.
    pub carriers: Vec<(String, usize)>,
    pub health: Arc<CarrierHealth>,
}

impl Carriers for CarrierStates {
    fn carriers(&self) -> Vec<CarrierView> {
        self.carriers
            .iter()
            .enumerate()
            .filter_map(|(id, (name, binds))| {
                let h = self.health.view(id)?;
                Some(CarrierView {
                    name: name.clone(),
                    binds_up: h.binds_up,
                    binds: *binds,
                    breaker: match h.breaker {
                        "open" => BreakerView::Open,
                        "half_open" => BreakerView::HalfOpen,
                        _ => BreakerView::Closed,
                    },
                    up: h.up,
                    rate_segments_per_second: Some(f64::from(h.rate)),
                })
            })
            .collect()
    }
}

/// `POST /v1/admin/reload`: the same path as SIGHUP, with the answer returned.
pub struct AdminReload {
    pub source: Option<ConfigSource>,
    pub tx: mpsc::Sender<ReloadRequest>,
}

impl Admin for AdminReload {
    fn reload(&self) -> BoxFuture<'static, Result<serde_json::Value, Vec<String>>> {
        let (source, tx) = (self.source.clone(), self.tx.clone());
        async move {
            let Some(source) = source else {
                return Err(vec![
                    "this engine was not started from a configuration file".into(),
                ]);
            };
            let config = source()?;
            let (reply, answer) = oneshot::channel();
            let request = ReloadRequest {
                config,
                reply: Some(reply),
            };
            if tx.send(request).await.is_err() {
                return Err(vec!["the engine is stopping".into()]);
            }
            let plan = answer
                .await
                .map_err(|_| vec!["the engine is stopping".to_owned()])??;
            Ok(summary(&plan))
        }
        .boxed()
    }
}

fn summary(plan: &ReloadPlan) -> serde_json::Value {
    serde_json::json!({
        "rates": plan.rates.iter().map(|(carrier, sps)| {
            serde_json::json!({"carrier": carrier, "segments_per_second": sps})
        }).collect::<Vec<_>>(),
        "routing_changed": plan.routing_changed,
        "templates_changed": plan.templates_changed,
    })
}

/// Notification records from the store (none when it is off).
pub struct StoreLookup(pub Option<Store>);

impl Notifications for StoreLookup {
    fn by_event_id(&self, id: &str) -> anyhow::Result<Option<serde_json::Value>> {
        let Some(store) = &self.0 else {
            return Ok(None);
        };
        Ok(match store.get(id)? {
            Some(r) => Some(serde_json::to_value(r)?),
            None => None,
        })
    }

    fn by_transaction_id(&self, id: &str) -> anyhow::Result<Vec<serde_json::Value>> {
        let Some(store) = &self.0 else {
            return Ok(Vec::new());
        };
        store
            .by_transaction(id)?
            .into_iter()
            .map(|r| serde_json::to_value(r).map_err(Into::into))
            .collect()
    }
}
