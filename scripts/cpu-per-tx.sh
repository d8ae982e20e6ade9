#!/usr/bin/env bash
# CPU cost per finalized transfer of a local 4-validator testnet (docs/throughput.md).
#
#   bash scripts/cpu-per-tx.sh NODE_BIN TESTNET_BIN RATE DURATION_S [RUNS]
#
# For each run: a fresh testnet (`cairn-testnet generate`), its validators started with
# NODE_BIN (`cairn-testnet start`), then one fixed open-loop load (`cairn-testnet load
# --rate RATE --duration DURATION_Ss --json`). The CPU time (user + system, from
# /proc/<pid>/stat) the validator processes spend from just before the load starts to just
# after it ends is divided by the transfers it finalized. Prints one JSON line per run:
#   {"rate":..,"finalized":..,"finalized_tps":..,"node_cpu_s":..,"cpu_us_per_tx":..}
# Unlike a saturation search, this figure hardly depends on what else the machine runs
# (it counts CPU spent, not throughput reached), so two builds can be compared on a busy
# 2-core machine. Every run is bounded: the load by DURATION_S + its 30 s drain, the whole
# run by a timeout of DURATION_S + 240 s.
set -euo pipefail
NODE_BIN=$(realpath "$1"); TESTNET_BIN=$(realpath "$2"); RATE=$3; DURATION_S=$4; RUNS=${5:-1}
TICKS=$(getconf CLK_TCK)

cpu_ticks() { # sum of utime + stime of the given pids, in clock ticks
  local total=0 pid f
  for pid in "$@"; do
    if [[ -r /proc/$pid/stat ]]; then
      # fields after the ")" of the command name: state is field 3; utime 14, stime 15
      f=$(sed 's/.*) //' "/proc/$pid/stat")
      set -- $f
      total=$((total + ${12} + ${13}))
    fi
  done
  echo "$total"
}

for run in $(seq 1 "$RUNS"); do
  dir=$(mktemp -d /tmp/cairn-cpu-XXXXXX)
  "$TESTNET_BIN" generate --validators 4 --accounts 10 --out "$dir/net" >/dev/null
  "$TESTNET_BIN" start "$dir/net" --node-bin "$NODE_BIN" >"$dir/start.log" 2>&1 &
  starter=$!
  trap 'kill $starter 2>/dev/null || true' EXIT
  # wait (at most 60 s) for the four validators to run and RPC to answer
  for _ in $(seq 1 120); do
    pids=$(pgrep -f -- "$NODE_BIN.*$dir/net" || true)
    [[ $(echo "$pids" | grep -c . || true) -ge 4 ]] && grep -q "started" "$dir/start.log" && break
    sleep 0.5
  done
  sleep 5
  pids=$(pgrep -f -- "$NODE_BIN.*$dir/net")
  before=$(cpu_ticks $pids)
  report=$(timeout $((DURATION_S + 240)) "$TESTNET_BIN" load "$dir/net" --rate "$RATE" \
    --duration "${DURATION_S}s" --json 2>"$dir/load.log")
  after=$(cpu_ticks $pids)
  kill $starter 2>/dev/null || true
  wait $starter 2>/dev/null || true
  trap - EXIT
  python3 - "$report" "$before" "$after" "$TICKS" "$RATE" <<'EOF'
import json, sys
r = json.loads(sys.argv[1]); before, after, ticks = map(int, sys.argv[2:5])
cpu_s = (after - before) / ticks
fin = r["finalized"]
print(json.dumps({"rate": int(sys.argv[5]), "finalized": fin,
                  "finalized_tps": round(r["finalized_tps"]), "node_cpu_s": round(cpu_s, 2),
                  "cpu_us_per_tx": round(cpu_s * 1e6 / fin, 1) if fin else None}))
EOF
  rm -rf "$dir"
done
