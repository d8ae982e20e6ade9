#!/usr/bin/env bash
# Measures README's two quick-start commands back to back, cold: clones this repository to a
# fresh directory, runs scripts/quickstart.sh until the testnet answers JSON-RPC, stops it,
# then runs scripts/test.sh. For a truly cold figure, start with an empty CARGO_TARGET_DIR
# (default: the clone's ./target) and, if you want downloads counted, an empty ~/.cargo/registry.
# Usage: scripts/measure-cold-start.sh [CLONE_DIR]   (default /tmp/cairn-cold; it is replaced)
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
dir="${1:-/tmp/cairn-cold}"
rm -rf "$dir"
git clone -q "$src" "$dir"
cd "$dir"
export CI=true
limit_s=5400
start=$(date +%s)
bash scripts/quickstart.sh >"$dir/quickstart.log" 2>&1 &
qs_pid=$!
until curl -s -m1 -X POST -H 'content-type: application/json' \
    -d '{"jsonrpc":"2.0","id":1,"method":"getStatus"}' http://127.0.0.1:8545 2>/dev/null | grep -q result; do
  sleep 5
  kill -0 "$qs_pid" 2>/dev/null || { echo "quickstart exited early; see $dir/quickstart.log" >&2; exit 1; }
  (( $(date +%s) - start < limit_s )) || { echo "quickstart: no answer after ${limit_s}s" >&2; exit 1; }
done
qs_s=$(( $(date +%s) - start ))
kill -INT "$qs_pid" 2>/dev/null || true
wait "$qs_pid" 2>/dev/null || true
t=$(date +%s)
rc=0
bash scripts/test.sh >"$dir/test.log" 2>&1 || rc=$?
test_s=$(( $(date +%s) - t ))
echo "quickstart_to_rpc_s=$qs_s test_s=$test_s test_rc=$rc total_s=$((qs_s + test_s))"
exit "$rc"
