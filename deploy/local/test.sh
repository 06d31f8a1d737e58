#!/usr/bin/env bash
# Everything CI checks: formatting, lints, every test (unit, property, integration against
# a real broker and pigeon-sim over TCP), and the `smoke` load scenario end to end (its own
# broker on another port, simulated carriers, the engine binary). Starts the test broker and
# stops it after.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
port=${PIGEON_TEST_PORT:-19192}

deploy/local/broker.sh stop >/dev/null 2>&1 || true
deploy/local/broker.sh start "$port"
trap 'deploy/local/broker.sh stop >/dev/null 2>&1 || true' EXIT
export PIGEON_TEST_BROKERS="127.0.0.1:$port"

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
# The crash tests run the engine binary as a child process.
cargo build --quiet -p pigeon-engine --bin pigeon
status=0
cargo test --workspace --no-fail-fast || status=$?
cargo run --quiet -p pigeon-loadtest --bin pigeon-load -- \
  --scenario loadtest/scenarios/smoke.toml --broker-port "${PIGEON_SMOKE_PORT:-$((port + 200))}" || status=$?
exit "$status"
