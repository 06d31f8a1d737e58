//! Cost of the per-submit limits: the rate gate (ours and `governor`'s, for the choice made in
//! `flow.rs`), the AIMD updates and the breaker's admission check.
//!
//! `cargo bench -p pigeon-engine --bench limits -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::num::NonZeroU32;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use governor::{Quota, RateLimiter};
use pigeon::breaker::{Breaker, BreakerConfig};
use pigeon::flow::{BindFlow, FlowConfig, RateGate, MAX_RATE};
use tokio::time::Instant;

fn rate_gate(c: &mut Criterion) {
    let mut g = c.benchmark_group("rate_gate");
    // A rate far above what the loop can take, so that tokens are always available.
    let gate = RateGate::new(MAX_RATE, 1_000_000);
    g.bench_function("check_ready", |b| b.iter(|| black_box(gate.check(1))));
    let now = Instant::now();
    g.bench_function("check_at_ready", |b| {
        b.iter(|| black_box(gate.check_at(1, black_box(now))))
    });
    g.bench_function("until_ready_ready", |b| {
        b.iter(|| futures::executor::block_on(gate.until_ready(black_box(2))))
    });
    g.bench_function("set_rate", |b| {
        b.iter(|| gate.set_rate(black_box(MAX_RATE)))
    });

    let quota = Quota::per_second(NonZeroU32::MAX).allow_burst(NonZeroU32::MAX);
    let governor = RateLimiter::direct(quota);
    g.bench_function("governor_check_ready", |b| {
        b.iter(|| black_box(governor.check()))
    });
    let two = NonZeroU32::new(2).unwrap_or(NonZeroU32::MIN);
    g.bench_function("governor_check_n_ready", |b| {
        b.iter(|| black_box(governor.check_n(black_box(two))))
    });
    // What a runtime rate change costs with `governor`: a new limiter.
    g.bench_function("governor_rebuild", |b| {
        b.iter(|| {
            let q = Quota::with_period(black_box(Duration::from_micros(66_667)))
                .map(|q| q.allow_burst(NonZeroU32::MIN));
            black_box(q.map(RateLimiter::direct))
        })
    });
    g.finish();
}

fn bind_flow(c: &mut Criterion) {
    let mut g = c.benchmark_group("bind_flow");
    let mut flow = BindFlow::new(15.0, FlowConfig::default());
    let mut now = Instant::now();
    g.bench_function("on_accepted", |b| {
        b.iter(|| {
            now += Duration::from_millis(1);
            flow.on_accepted(black_box(now));
        })
    });
    g.bench_function("on_throttled_held_off", |b| {
        b.iter(|| black_box(flow.on_throttled(black_box(now))))
    });
    g.bench_function("on_throttled_cut", |b| {
        b.iter(|| {
            now += Duration::from_secs(1);
            black_box(flow.on_throttled(black_box(now)))
        })
    });
    g.bench_function("on_response", |b| {
        b.iter(|| flow.on_response(black_box(Duration::from_millis(180))))
    });
    g.bench_function("window", |b| b.iter(|| black_box(flow.window())));
    g.finish();
}

fn breaker(c: &mut Criterion) {
    let mut g = c.benchmark_group("breaker");
    let now = Instant::now();
    let mut closed = Breaker::new(BreakerConfig::default());
    g.bench_function("try_acquire_closed", |b| {
        b.iter(|| black_box(closed.try_acquire(black_box(now))))
    });
    let mut open = Breaker::new(BreakerConfig::default());
    open.on_all_binds_down(now);
    g.bench_function("try_acquire_open", |b| {
        b.iter(|| black_box(open.try_acquire(black_box(now))))
    });
    g.bench_function("on_failure_then_success", |b| {
        b.iter(|| {
            closed.on_failure(black_box(now));
            closed.on_success();
        })
    });
    g.finish();
}

criterion_group!(benches, rate_gate, bind_flow, breaker);
criterion_main!(benches);
