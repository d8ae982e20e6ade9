#!/usr/bin/env bash
# Builds Cairn and starts a 4-validator local testnet with funded demo accounts.
# Re-running reuses ./localnet (delete it for a fresh chain).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
# The dev profile (Cargo.toml: dependencies optimised) is the build scripts/test.sh uses too,
# so running both compiles RocksDB and libp2p once. For production or benchmarks build
# `cargo build --release --bins` (Cairn's own crates fully optimised).
echo "building the binaries (a first build on a small machine takes about half an hour)..." >&2
cargo build --bins
bin="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/debug"
export PATH="$bin:$PATH"
if [ ! -f localnet/testnet.json ]; then
  cairn-testnet generate --validators 4 --accounts 10 --out localnet
fi
echo
echo "wallet and node binaries: $bin   (export PATH=\"$bin:\$PATH\")"
exec cairn-testnet start localnet
