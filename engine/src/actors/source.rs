//! Source task: takes batches from the debit topic and hands each to the intake, waiting
//! until it is taken, so that a slow pipeline stops consumption rather than piling up.
//! Not an actor: it owns nothing but a loop, and stopping it is stopping consumption.

use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use pigeon_kafka::Source;
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};

use super::intake::IntakeActor;
use super::Records;
use crate::metrics;

/// Runs until `stop` is cancelled or the intake is gone.
pub async fn run(
    source: Arc<Source>,
    intake: Addr<IntakeActor>,
    batch_max: usize,
    linger: Duration,
    stop: CancellationToken,
) {
    let hop = metrics::broker_hop();
    loop {
        let batch = tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            b = source.next_batch(batch_max, linger) => b,
        };
        let batch = match batch {
            Ok(b) => b,
            Err(e) => {
                warn!(error = %e, "consume failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let started = tokio::time::Instant::now();
        let now_ms = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
        for ms in batch.iter().filter_map(|r| r.timestamp_ms) {
            hop.record((now_ms - i128::from(ms)).max(0) as f64 / 1e3);
        }
        let records = Records {
            records: batch,
            consumed_at: started,
        };
        if let Err(e) = intake.send(records).await {
            error!(error = %e, "intake is gone; stopping consumption");
            return;
        }
        metrics::source_blocked(started.elapsed().as_micros() as u64);
    }
}
