#!/usr/bin/env bash
# Coverage-guided fuzzing of every decoder a peer or client can reach (docs/fuzzing.md).
#
#   bash scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Runs each target (default: all) for SECONDS_PER_TARGET seconds (default 180), one after
# another, one libFuzzer process each, with -max_len at the decoder's bound where that is
# small (a little above it, so the bound check itself is exercised), then minimizes its
# corpus fuzz/corpus/<target>/ (libFuzzer -merge=1, as `cargo fuzz cmin` does, run on the
# binaries built once at the start) and prints per target: executions, coverage (cov / ft of
# libFuzzer's last status line), corpus size and crashes (new files in
# fuzz/artifacts/<target>/). Exits non-zero if any target crashed.
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). Environment:
#   CAIRN_FUZZ_TARGET_DIR   build directory (default ~/.cache/cairn-fuzz-target)
#   CAIRN_FUZZ_SANITIZER    cargo-fuzz -s (default none: the decoders are safe Rust, and
#                           RocksDB's C++ is linked uninstrumented either way; address works)
#   CAIRN_FUZZ_NO_NODE=1    skip the node's targets (builds without the node and libp2p;
#                           RocksDB still builds: cairn-ledger links it)
#   CAIRN_FUZZ_LOG_DIR      where each run's libFuzzer log goes (default a temp directory)
#   CAIRN_FUZZ_CORPUS_MAX   most inputs kept per target after minimizing (default 300)
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
epoch_message 4200 -
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

# Build once; the runs below use the binaries directly (cargo fuzz run/cmin would rebuild
# before each target, picking up whatever the working tree holds at that moment).
cargo +nightly fuzz build -s "$SANITIZER" -a "${FEATURES[@]}"
BIN_DIR="$CARGO_TARGET_DIR/$(rustc +nightly -vV | sed -n 's/^host: //p')/release"

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
          -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="artifacts/$t/")
    [[ "$dict" != - ]] && args+=(-dict="dicts/$dict")
    log="$LOG_DIR/$t.log"
    echo "== $t: ${SECONDS_PER_TARGET}s, max_len $max_len (log $log)"
    rc=0
    "$BIN_DIR/$t" "${args[@]}" "corpus/$t" >"$log" 2>&1 || rc=$?
    execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | awk '{print $2}' | tail -1 || true)
    status=$(grep -E '^#[0-9]+' "$log" | grep -o 'cov: [0-9]* ft: [0-9]*' | tail -1 || true)
    # signature_batch prints how many transactions it has checked against its oracle.
    checked=$(grep -o '[0-9]* batches, [0-9]* transactions checked' "$log" | tail -1 || true)
    [[ -n "$checked" ]] && echo "   $t: $checked (at the last 2^14-execution mark)"
    after=$(find "artifacts/$t" -type f | wc -l)
    crashes=$((after - before))
    if [[ $rc -ne 0 || $crashes -gt 0 ]]; then
        crashed=1
        echo "!! $t exited $rc with $crashes new artifact(s):" >&2
        grep -E 'panicked|SUMMARY|Test unit written' "$log" | head -5 >&2 || true
    fi
    # Minimize (what cargo fuzz cmin does): merge into an empty directory, keeping only
    # inputs that add coverage (inputs over max_len are dropped), then replace the corpus.
    minimized=$(mktemp -d)
    if "$BIN_DIR/$t" -merge=1 -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 \
        "$minimized" "corpus/$t" >"$LOG_DIR/$t.cmin.log" 2>&1; then
        rm -rf "corpus/$t" && mv "$minimized" "corpus/$t"
    else
        echo "!! minimizing $t failed (log $LOG_DIR/$t.cmin.log)" >&2
        rm -rf "$minimized"
    fi
    files=$(find "corpus/$t" -type f | wc -l)
    if (( files > CORPUS_FILES_MAX )); then
        # Keep the committed corpus small. Past the cap (only the JSON targets get there:
        # serde_json's many syntax-error paths each count), keep the smallest half (those
        # paths, cheaply) and the largest half (the near-valid requests and genesis files
        # that reach this project's code); drop the middle.
        echo "   $t: $files inputs after minimizing, keeping the $((CORPUS_FILES_MAX / 2)) smallest and largest" >&2
        (cd "corpus/$t" && ls -S | sed -n "$((CORPUS_FILES_MAX / 2 + 1)),$((files - CORPUS_FILES_MAX / 2))p" \
            | xargs rm -f --)
        files=$(find "corpus/$t" -type f | wc -l)
    fi
    summary+=("$(printf '%-20s %12s  %-22s %6s %8s' "$t" "${execs:-?}" "${status:-?}" "$files" "$crashes")")
done

echo
printf '%-20s %12s  %-22s %6s %8s\n' target executions coverage corpus crashes
printf '%s\n' "${summary[@]}"
exit "$crashed"
