//! Checkpoint actor: marks records done as their decisions are acknowledged and commits the
//! done prefix of each partition on an interval, and once more, synchronously, on shutdown.

use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, AsyncContext, Context, Handler, Message};
use pigeon_kafka::source::CommitMode;
use pigeon_kafka::Source;
use tracing::warn;

use super::Done;
use crate::metrics;

pub struct Checkpoint {
    source: Arc<Source>,
    interval: Duration,
}

impl Checkpoint {
    pub fn new(source: Arc<Source>, interval: Duration) -> Checkpoint {
        Checkpoint { source, interval }
    }

    fn commit(&self, mode: CommitMode) {
        match self.source.commit(mode) {
            Ok(n) if n > 0 => metrics::offsets_committed(n),
            Ok(_) => {}
            Err(e) => warn!(error = %e, "offset commit failed; retried at the next interval"),
        }
    }
}

impl Actor for Checkpoint {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.interval, |act, _| act.commit(CommitMode::Async));
    }
}

impl Handler<Done> for Checkpoint {
    type Result = ();

    fn handle(&mut self, Done(origins): Done, _: &mut Context<Self>) {
        self.source
            .done(origins.into_iter().map(|o| (o.partition, o.offset)));
    }
}

/// Commits synchronously now; sent once on shutdown after the pipeline drained.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CommitNow;

impl Handler<CommitNow> for Checkpoint {
    type Result = ();

    fn handle(&mut self, _: CommitNow, _: &mut Context<Self>) {
        self.commit(CommitMode::Sync);
    }
}
