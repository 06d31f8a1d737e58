#!/usr/bin/env bash
# Fuzzes the decoders of pigeon-smpp that the outside world feeds (PDU stream, receipts, UDH)
# and the segmenter, each target for a bounded time. The default list is every target of
# connectors/smpp/fuzz/Cargo.toml (`cargo fuzz list`): pdu_stream, receipt_parse, udh_parse,
# segment, session_codec (the session's own reader, SessionCodec in arbitrary read sizes) and
# lenient_receipt (the lenient deliver_sm reader the session falls back on). Fails if any target finds a crash, a
# timeout or a leak; the input is left in connectors/smpp/fuzz/artifacts/<target>/.
#
#   deploy/local/fuzz.sh                 # every target, FUZZ_SECONDS (default 60) each
#   deploy/local/fuzz.sh pdu_stream      # some targets
#   FUZZ_SECONDS=600 deploy/local/fuzz.sh
#
# Corpora grow in connectors/smpp/fuzz/corpus/<target>/ (git-ignored) and are reused by the
# next run; the committed seeds in connectors/smpp/fuzz/seeds/<target>/ are always read too.
# Replay a crash: cd connectors/smpp/fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run <target> <file>
#
# cargo-fuzz needs nightly-only flags (sanitizers, coverage). On a stable toolchain the script
# sets RUSTC_BOOTSTRAP=1, which lets stable rustc accept them; only this build sees it.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
fuzz_dir="$root/connectors/smpp/fuzz"
seconds=${FUZZ_SECONDS:-60}
cd "$fuzz_dir"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi
if ! rustc --version | grep -q nightly; then
    export RUSTC_BOOTSTRAP=1
fi

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

mkdir -p logs
failed=()
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "seeds/$t"
    log="logs/$t.log"
    echo "fuzzing $t for ${seconds}s" >&2
    # Debug assertions on (overflow checks included): a wrapped length is a finding too.
    if cargo fuzz run --debug-assertions "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$seconds" -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
        status=ok
    else
        status=FAILED
        failed+=("$t")
    fi
    runs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' || echo '?')
    cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -1 | grep -Eo '[0-9]+' || echo '?')
    files=$(find "corpus/$t" -type f | wc -l)
    printf '%-14s %-6s execs=%s cov=%s corpus=%s log=%s\n' \
        "$t" "$status" "$runs" "$cov" "$files" "connectors/smpp/fuzz/$log"
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz targets failed: ${failed[*]} (inputs in connectors/smpp/fuzz/artifacts/)" >&2
    exit 1
fi
