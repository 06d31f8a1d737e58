#!/usr/bin/env bash
# The whole path on one machine: broker, two simulated carriers, the engine, sample debits
# (English, Chinese UCS-2, a long multi-part one, an invalid number, a full card number, a
# malformed line), their statuses, then a short load run. Everything stops at the end.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
port=19092
out="$root/.local/demo"
mkdir -p "$out"
pids=()

cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  deploy/local/broker.sh stop >/dev/null || true
}
trap cleanup EXIT

wait_for() { # wait_for FILE PATTERN COUNT SECONDS
  local deadline=$((SECONDS + $4))
  until [[ $(grep -c "$2" "$1" 2>/dev/null || true) -ge $3 ]]; do
    if ((SECONDS > deadline)); then
      echo "demo: timed out waiting for '$2' in $1" >&2
      tail -20 "$1" >&2
      exit 1
    fi
    sleep 0.2
  done
}

echo "== building (release)"
cargo build --release --quiet --bin pigeon --bin pigeon-sim --bin pigeon-load
bin="${CARGO_TARGET_DIR:-target}/release"

echo "== broker"
deploy/local/broker.sh stop >/dev/null || true
deploy/local/broker.sh start "$port"
deploy/local/broker.sh topics "$port"

echo "== simulated carriers"
"$bin"/pigeon-sim \
  --listen carrier-a=127.0.0.1:2775 --listen carrier-b=127.0.0.1:2776 \
  --account pigeon:secret --dlr-delay-ms 200 --stats-file "$out/sim-stats.json" \
  >"$out/sim.out" 2>"$out/sim.log" &
pids+=($!)
wait_for "$out/sim.out" "listening" 2 10
cat "$out/sim.out"

echo "== engine"
rm -rf "$out/store" # a fresh store: the sample event ids are the same on every run
RUST_LOG=info,rusmpp=warn "$bin"/pigeon run --config deploy/local/pigeon.toml \
  2>"$out/engine.log" &
engine=$!
pids=("$engine" "${pids[@]}")
wait_for "$out/engine.log" "bound" 2 30
wait_for "$out/engine.log" "partitions assigned" 1 60
echo "engine up (log: $out/engine.log, metrics: http://127.0.0.1:9464/metrics)"

echo "== sample debits (deploy/local/sample-debits.jsonl) and their statuses"
"$bin"/pigeon-load --brokers "127.0.0.1:$port" --events deploy/local/sample-debits.jsonl \
  --run-id demo --settle-timeout-s 60

echo "== status API: the record of demo-3 (GET /v1/notifications/demo-3, bearer token)"
python3 - <<'PY'
import json, urllib.request
req = urllib.request.Request("http://127.0.0.1:8088/v1/notifications/demo-3",
                             headers={"Authorization": "Bearer demo-token-0123456789"})
print(json.dumps(json.load(urllib.request.urlopen(req, timeout=5)), indent=1, ensure_ascii=False))
PY

echo "== load: 20000 debits at 5000/s"
"$bin"/pigeon-load --brokers "127.0.0.1:$port" --count 20000 --rate 5000 \
  --report "$out/load-report.json"

echo "== stopping (SIGTERM: drain, commit, unbind)"
kill -TERM "$engine"
wait "$engine" || true
tail -3 "$out/engine.log"
kill -TERM "${pids[1]}"
wait "${pids[1]}" || true
pids=()
echo "== what the carriers saw ($out/sim-stats.json)"
python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))
keys = ["binds", "submits", "messages", "receipts_sent", "receipts_acked", "unique_pairs", "duplicate_pairs", "data_codings"]
print(json.dumps({k: s.get(k) for k in keys}, indent=1))
' "$out/sim-stats.json"
