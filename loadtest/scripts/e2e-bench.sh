#!/usr/bin/env bash
# One end-to-end measurement on this machine: broker, two simulated carriers (uncapped, a
# receipt 100 ms after each submit), the release engine with deploy/local/pigeon.toml and
# carriers uncapped, and pigeon-load. Prints pigeon-load's summary, the engine's CPU per
# notification and resident memory, this machine's speed at the time (a fixed loop's CPU
# time), and its own latency split (broker hop, its own share;
# from its metrics on 127.0.0.1:${METRICS_PORT:-19899}).
#
#   [WINDOW=N] [BINDS=N] loadtest/scripts/e2e-bench.sh COUNT RATE [VAR=VALUE ...]
#
# WINDOW sets the carriers' SMPP window (default 64, the demo's), BINDS their binds each
# (default 1).
# VAR=VALUE pairs are engine configuration overrides, e.g. PIGEON_STORE__ENABLED=false or
# PIGEON_STORE__FSYNC=false. Build first: cargo build --release --bin pigeon --bin pigeon-sim
# --bin pigeon-load.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
count=${1:?COUNT}
rate=${2:?RATE}
shift 2
port=19092
out="$root/.local/bench"
bin="${CARGO_TARGET_DIR:-target}/release"
mkdir -p "$out"
rm -rf "$out/store"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  deploy/local/broker.sh stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

deploy/local/broker.sh stop >/dev/null 2>&1 || true
deploy/local/broker.sh start "$port" >/dev/null
deploy/local/broker.sh topics "$port" >/dev/null

"$bin"/pigeon-sim --listen carrier-a=127.0.0.1:2775 --listen carrier-b=127.0.0.1:2776 \
  --account pigeon:secret --dlr-delay-ms 100 >"$out/sim.out" 2>"$out/sim.log" &
pids+=($!)

# The demo's configuration with the carriers' caps lifted (and their window and binds set,
# with WINDOW=N and BINDS=N in the environment).
sed -e 's/^max_segments_per_second = .*/max_segments_per_second = 100000/' \
  -e "s/^window = .*/window = ${WINDOW:-64}/" -e "s/^binds = .*/binds = ${BINDS:-1}/" \
  deploy/local/pigeon.toml >"$out/pigeon.toml"
metrics="127.0.0.1:${METRICS_PORT:-19899}"
env PIGEON_STORE__PATH="$out/store" PIGEON_API__LISTEN="" PIGEON_METRICS__LISTEN="$metrics" "$@" \
  RUST_LOG=warn,pigeon_kafka=info,pigeon::store=info "$bin"/pigeon run --config "$out/pigeon.toml" 2>"$out/engine.log" &
engine=$!
pids=("$engine" "${pids[@]}")

echo "waiting for the engine to join its group" >&2
for _ in $(seq 1 300); do
  grep -q "partitions assigned" "$out/engine.log" 2>/dev/null && break
  sleep 0.1
done

ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$engine/stat"; }
# user+sys ticks of each engine thread, summed by thread name (digits dropped).
threads() {
  for t in /proc/"$engine"/task/*; do
    printf '%s %s\n' "$(tr -d '0-9' <"$t/comm")" "$(sed 's/.*) //' "$t/stat" | awk '{print $12 + $13}')"
  done 2>/dev/null | awk '{a[$1] += $2} END {for (k in a) print k, a[k]}' | sort
}
# Busy and total jiffies of the whole machine (all processes, both cores).
machine() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8}' /proc/stat; }
# Bytes the engine had written to the disk (journal, tables; not what stays in the page cache
# unwritten).
disk() { awk '/^write_bytes/ {print $2}' "/proc/$engine/io"; }
# This machine's speed now (it varies from hour to hour and day to day on a shared host):
# the CPU time of a fixed single-threaded loop, to compare runs taken at different times.
reference=$(python3 -c 'import time; t = time.process_time(); sum(range(3 * 10**7)); print(f"{time.process_time() - t:.2f}")')
before=$(cpu)
dbefore=$(disk)
mbefore=$(machine)
threads >"$out/threads.before"
"$bin"/pigeon-load --brokers "127.0.0.1:$port" --count "$count" --rate "$rate" \
  --report "$out/report.json"
curl -sf "http://$metrics/metrics" >"$out/metrics.txt" || : >"$out/metrics.txt"
after=$(cpu)
dafter=$(disk)
mafter=$(machine)
threads >"$out/threads.after"
rss=$(awk '/VmRSS/ {print $2}' "/proc/$engine/status")
python3 - "$before" "$after" "$ticks" "$count" "$rss" <<'PY'
import sys
before, after, ticks, count, rss = map(float, sys.argv[1:])
print(f"engine CPU: {(after - before) / ticks:.2f} s, {(after - before) / ticks / count * 1e6:.1f} us per notification; RSS {rss / 1024:.0f} MB")
PY
echo "$dbefore $dafter $count" | awk '{printf "engine wrote to disk: %.1f MB, %.0f B per notification\n", ($2 - $1) / 1e6, ($2 - $1) / $3}'
echo "machine reference: $reference s of CPU for a fixed loop before the run (python3, sum(range(3e7)); lower is faster)"
echo "$mbefore $mafter" | awk '{printf "machine busy during the run: %.0f%% of all cores\n", 100 * ($3 - $1) / ($4 - $2)}'
echo "engine CPU by thread (s):"
join -a 2 "$out/threads.before" "$out/threads.after" | awk -v t="$ticks" \
  'NF == 3 {d = $3 - $2} NF == 2 {d = $2} d > 0 {printf "  %-20s %.2f\n", $1, d / t}' | sort -k2 -rn
# The engine's own view (its histograms, the whole run): produced -> taken, taken -> to a
# carrier, each quantile interpolated within its bucket as Prometheus does.
awk -F'[{}"]' '
/^pigeon_(broker_hop|consumed_to_submit)_seconds_bucket\{le="/ {
  m = $1; sub(/_bucket$/, "", m); k = ++n[m]; le[m, k] = $3; c[m, k] = $NF + 0 }
function q(m, p,   i, rank, lo, below) {
  rank = p * c[m, n[m]]; lo = 0; below = 0
  for (i = 1; i <= n[m]; i++) {
    if (c[m, i] >= rank) {
      if (le[m, i] == "+Inf") return lo * 1000
      return (lo + (le[m, i] - lo) * (c[m, i] > below ? (rank - below) / (c[m, i] - below) : 0)) * 1000
    }
    lo = le[m, i]; below = c[m, i]
  }
}
END { h = "pigeon_broker_hop_seconds"; o = "pigeon_consumed_to_submit_seconds"
  if (c[h, n[h]] > 0 && c[o, n[o]] > 0)
    printf "engine measured: broker hop p50 %.1f p99 %.1f ms; its own share p50 %.1f p99 %.1f ms\n",
      q(h, 0.5), q(h, 0.99), q(o, 0.5), q(o, 0.99) }' "$out/metrics.txt"
