#!/usr/bin/env bash
# Everything CI checks: formatting, lints, and every test (unit, property, integration
# against a real broker and pigeon-sim over TCP). Starts the broker and stops it after.
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
cargo test --workspace --no-fail-fast
