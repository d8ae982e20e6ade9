#!/usr/bin/env bash
# A `cairn-node` wrapper for `cairn-testnet bench --node-bin` (or `start --node-bin`) that runs
# one node under heaptrack and the others normally (docs/operations.md, "Memory"):
#
#   cargo build --workspace --bins --features cairn-node/system-allocator
#   cp target/debug/cairn-node /tmp/cairn-node-sysalloc   # then rebuild without the feature
#   HEAP_NODE_BIN=/tmp/cairn-node-sysalloc NODE_BIN=target/debug/cairn-node \
#     cairn-testnet bench ... --node-bin scripts/heaptrack-node.sh
#
# HEAP_NODE (default node-0): the home directory name of the profiled node.
# HEAP_NODE_BIN: a build with the feature `system-allocator` (heaptrack interposes malloc and
# sees nothing that mimalloc allocates). NODE_BIN: the normal build, for the other nodes.
# HEAP_OUT (default .): where `heaptrack.<node>.<unix seconds>.zst` is written.
# The node is exec'd (LD_PRELOAD, as `heaptrack` itself does), so the testnet's signals reach
# it; the profile is complete once the node exits (the named pipe beside it is left behind).
# Read it with `heaptrack_print -f FILE`.
set -euo pipefail
: "${HEAP_NODE_BIN:?set HEAP_NODE_BIN to a cairn-node built with --features system-allocator}"
: "${NODE_BIN:?set NODE_BIN to the normal cairn-node build}"
. "$(dirname "$0")/node-home.sh"
home="$(node_home "$@")"
if [ "$(basename "$home")" != "${HEAP_NODE:-node-0}" ]; then
  exec "$NODE_BIN" "$@"
fi
lib=/usr/lib/heaptrack
[ -x "$lib/libexec/heaptrack_interpret" ] || { echo "heaptrack is not installed (apt-get install heaptrack)" >&2; exit 1; }
out="${HEAP_OUT:-.}/heaptrack.$(basename "$home").$(date +%s)"
fifo="$out.fifo"
mkfifo "$fifo"
"$lib/libexec/heaptrack_interpret" < "$fifo" | zstd -q -c > "$out.zst" &
LD_PRELOAD="$lib/libheaptrack_preload.so" DUMP_HEAPTRACK_OUTPUT="$fifo" exec "$HEAP_NODE_BIN" "$@"
