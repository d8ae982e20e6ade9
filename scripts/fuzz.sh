#!/usr/bin/env bash
# Coverage-guided fuzzing of every decoder a peer or client can reach (docs/fuzzing.md).
#
#   bash scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Runs each target (default: all) for SECONDS_PER_TARGET seconds (default 180), one after
# another, one libFuzzer process each, with -max_len at the decoder's bound where that is
# small (a little above it, so the bound check itself is exercised), then minimizes its
# corpus (cargo fuzz cmin) into fuzz/corpus/<target>/ and prints per target: executions,
# coverage (cov / ft of libFuzzer's last status line), corpus size and crashes (new files in
# fuzz/artifacts/<target>/). Exits non-zero if any target crashed.
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). Environment:
#   CAIRN_FUZZ_TARGET_DIR   build directory (default ~/.cache/cairn-fuzz-target)
#   CAIRN_FUZZ_SANITIZER    cargo-fuzz -s (default none: the decoders are safe Rust, and
#                           RocksDB's C++ is linked uninstrumented either way; address works)
#   CAIRN_FUZZ_NO_NODE=1    skip the node's targets (builds without RocksDB and libp2p)
#   CAIRN_FUZZ_LOG_DIR      where each run's libFuzzer log goes (default a temp directory)
#   CAIRN_FUZZ_CORPUS_MAX   most inputs kept per target after cmin (default 300)
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

SECONDS_PER_TARGET="${1:-180}"
shift || true

# target  max_len  dictionary (fuzz/dicts/, or -)
TABLE="
signed_transaction 300 -
block 65536 -
signature_batch 4096 -
consensus_message 4096 -
certificate 4096 -
evidence 400 -
genesis_json 16384 json.dict
rpc_body 5000 json.dict
rpc_params 4096 json.dict
compact_block 65536 -
tx_batch 65536 -
sync_request 4300 -
sync_response 65536 -
sync_frame 4300 -
admission_proof 16 -
"
NODE_TARGETS=" compact_block tx_batch sync_request sync_response sync_frame admission_proof "

export CARGO_TARGET_DIR="${CAIRN_FUZZ_TARGET_DIR:-$HOME/.cache/cairn-fuzz-target}"
SANITIZER="${CAIRN_FUZZ_SANITIZER:-none}"
FEATURES=()
if [[ "${CAIRN_FUZZ_NO_NODE:-0}" == 1 ]]; then
    FEATURES=(--no-default-features)
fi
LOG_DIR="${CAIRN_FUZZ_LOG_DIR:-$(mktemp -d)}"
CORPUS_FILES_MAX="${CAIRN_FUZZ_CORPUS_MAX:-300}"
mkdir -p "$LOG_DIR"

if [[ $# -gt 0 ]]; then
    TARGETS=("$@")
else
    TARGETS=()
    while read -r name _; do
        [[ -z "$name" ]] && continue
        if [[ "${CAIRN_FUZZ_NO_NODE:-0}" == 1 && "$NODE_TARGETS" == *" $name "* ]]; then
            continue
        fi
        TARGETS+=("$name")
    done <<<"$TABLE"
fi

FUZZ=(cargo +nightly fuzz)
"${FUZZ[@]}" build -s "$SANITIZER" -a "${FEATURES[@]}"

summary=()
crashed=0
for t in "${TARGETS[@]}"; do
    row=$(awk -v t="$t" '$1 == t' <<<"$TABLE")
    [[ -n "$row" ]] || { echo "unknown target $t" >&2; exit 2; }
    max_len=$(awk '{print $2}' <<<"$row")
    dict=$(awk '{print $3}' <<<"$row")
    mkdir -p "corpus/$t" "artifacts/$t"
    before=$(find "artifacts/$t" -type f | wc -l)
    args=(-max_total_time="$SECONDS_PER_TARGET" -max_len="$max_len" -timeout=10
          -rss_limit_mb=2048 -print_final_stats=1)
    [[ "$dict" != - ]] && args+=(-dict="dicts/$dict")
    log="$LOG_DIR/$t.log"
    echo "== $t: ${SECONDS_PER_TARGET}s, max_len $max_len (log $log)"
    rc=0
    "${FUZZ[@]}" run -s "$SANITIZER" -a "${FEATURES[@]}" "$t" "corpus/$t" -- "${args[@]}" \
        >"$log" 2>&1 || rc=$?
    execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | awk '{print $2}' | tail -1)
    status=$(grep -E '^#[0-9]+' "$log" | grep -o 'cov: [0-9]* ft: [0-9]*' | tail -1)
    after=$(find "artifacts/$t" -type f | wc -l)
    crashes=$((after - before))
    if [[ $rc -ne 0 || $crashes -gt 0 ]]; then
        crashed=1
        echo "!! $t exited $rc with $crashes new artifact(s):" >&2
        grep -E 'panicked|SUMMARY|Test unit written' "$log" | head -5 >&2 || true
    fi
    # Minimize: keep only inputs that add coverage (files over max_len never get in).
    "${FUZZ[@]}" cmin -s "$SANITIZER" -a "${FEATURES[@]}" "$t" "corpus/$t" -- -max_len="$max_len" \
        >"$LOG_DIR/$t.cmin.log" 2>&1 || echo "!! cmin of $t failed (log $LOG_DIR/$t.cmin.log)" >&2
    files=$(find "corpus/$t" -type f | wc -l)
    if (( files > CORPUS_FILES_MAX )); then
        # Keep the committed corpus small: drop the largest inputs beyond the cap (they
        # mostly add parser paths of serde_json; the smallest carry most edges per byte).
        echo "   $t: $files inputs after cmin, keeping the $CORPUS_FILES_MAX smallest" >&2
        (cd "corpus/$t" && ls -S | head -n $((files - CORPUS_FILES_MAX)) | xargs rm -f --)
        files=$CORPUS_FILES_MAX
    fi
    summary+=("$(printf '%-20s %12s  %-22s %6s %8s' "$t" "${execs:-?}" "${status:-?}" "$files" "$crashes")")
done

echo
printf '%-20s %12s  %-22s %6s %8s\n' target executions coverage corpus crashes
printf '%s\n' "${summary[@]}"
exit "$crashed"
