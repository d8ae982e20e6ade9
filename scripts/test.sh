#!/usr/bin/env bash
# The test suite: builds every binary (the end-to-end tests run the real cairn-node processes)
# and runs every crate's tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
cargo build --workspace --bins
cargo test --workspace --no-fail-fast
