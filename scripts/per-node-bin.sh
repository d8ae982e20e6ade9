#!/usr/bin/env bash
# A `cairn-node` wrapper for `cairn-testnet bench --node-bin` (or `start --node-bin`) that runs
# each node with its own build, to compare builds side by side under the same load in the same
# run (docs/operations.md, "Memory"):
#
#   NODE_BIN=/tmp/cairn-node-a NODE_BIN_node_2=/tmp/cairn-node-b NODE_BIN_node_3=/tmp/cairn-node-c \
#     cairn-testnet bench ... --node-bin scripts/per-node-bin.sh
#
# NODE_BIN: the build for every node not named otherwise. NODE_BIN_<home>: the build for the
# node whose home directory is named <home>, with `-` written `_` (node-2: NODE_BIN_node_2).
# The node is exec'd, so the testnet's signals reach it.
set -euo pipefail
: "${NODE_BIN:?set NODE_BIN to the default cairn-node build}"
. "$(dirname "$0")/node-home.sh"
home="$(node_home "$@")"
var="NODE_BIN_$(basename "$home" | tr -- '-.' '__')"
exec "${!var:-$NODE_BIN}" "$@"
