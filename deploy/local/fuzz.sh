#!/usr/bin/env bash
# Fuzzes the decoders that the outside world feeds, each target for a bounded time:
# - pigeon-smpp (connectors/smpp/fuzz): pdu_stream, receipt_parse, udh_parse, segment,
#   session_codec (the session's own reader, SessionCodec in arbitrary read sizes) and
#   lenient_receipt (the lenient deliver_sm reader the session falls back on);
# - the engine (engine/fuzz): debit_event (a debit record through the whole intake
#   decision), relay_record (receipts relayed between instances), subscriber_record
#   (the subscriber preferences topic) and handover_mark (the debit partitions' owners'
#   marks).
# The default list is every target of both (`cargo fuzz list` in each). Fails if any target
# finds a crash, a timeout or a leak; the input is left in <crate>/fuzz/artifacts/<target>/.
#
#   deploy/local/fuzz.sh                 # every target, FUZZ_SECONDS (default 60) each
#   deploy/local/fuzz.sh pdu_stream      # some targets
#   FUZZ_SECONDS=600 deploy/local/fuzz.sh
#
# Corpora grow in <crate>/fuzz/corpus/<target>/ (git-ignored) and are reused by the next
# run; the committed seeds in <crate>/fuzz/seeds/<target>/ are always read too.
# Replay a crash: cd <crate>/fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run <target> <file>
#
# cargo-fuzz needs nightly-only flags (sanitizers, coverage). On a stable toolchain the script
# sets RUSTC_BOOTSTRAP=1, which lets stable rustc accept them; only this build sees it.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
seconds=${FUZZ_SECONDS:-60}
crates=("$root/connectors/smpp/fuzz" "$root/engine/fuzz")

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi
if ! rustc --version | grep -q nightly; then
    export RUSTC_BOOTSTRAP=1
fi

# The crate of each target.
declare -A crate_of
for dir in "${crates[@]}"; do
    while read -r t; do
        crate_of[$t]=$dir
    done < <(cd "$dir" && cargo fuzz list)
done
if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    targets=()
    for dir in "${crates[@]}"; do
        mapfile -t -O "${#targets[@]}" targets < <(cd "$dir" && cargo fuzz list)
    done
fi

failed=()
for t in "${targets[@]}"; do
    dir=${crate_of[$t]:-}
    if [ -z "$dir" ]; then
        echo "no fuzz target named $t" >&2
        failed+=("$t")
        continue
    fi
    cd "$dir"
    mkdir -p logs "corpus/$t" "seeds/$t"
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
    printf '%-18s %-6s execs=%s cov=%s corpus=%s log=%s\n' \
        "$t" "$status" "$runs" "$cov" "$files" "${dir#"$root"/}/$log"
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz targets failed: ${failed[*]} (inputs in <crate>/fuzz/artifacts/)" >&2
    exit 1
fi
