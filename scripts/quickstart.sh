#!/usr/bin/env bash
# Builds Cairn and starts a 4-validator local testnet with funded demo accounts.
# Re-running reuses ./testnet (delete it for a fresh chain).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
echo "building release binaries (first build takes several minutes)..." >&2
cargo build --release --bins
bin="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/release"
export PATH="$bin:$PATH"
if [ ! -f testnet/testnet.json ]; then
  cairn-testnet generate --validators 4 --accounts 10 --out testnet
fi
echo
echo "wallet and node binaries: $bin   (export PATH=\"$bin:\$PATH\")"
exec cairn-testnet start testnet
