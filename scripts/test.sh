#!/usr/bin/env bash
# The test suite: builds every binary (the end-to-end tests run the real cairn-node processes)
# and runs every crate's tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
# The test-only Byzantine validator (feature `byzantine`, debug builds only) is built in, as
# the test build has it (testnet's dev-dependency): one build of the binaries serves both.
cargo build --workspace --bins --features cairn-node/byzantine
cargo test --workspace --no-fail-fast
