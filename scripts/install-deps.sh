#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks to build Cairn: a C/C++ toolchain and libclang
# (RocksDB's bindings are generated with bindgen), and a Rust toolchain if there is none.
# For the tests: tmux (keystore prompt test) and chromium (the dashboard's headless browser
# test, testnet/tests/dashboard.rs; skipped without it unless CI=true); fonts-dejavu-core (the
# benchmark charts' text, testnet/src/charts.rs).
set -euo pipefail

need=()
for pkg in clang libclang-dev build-essential pkg-config tmux chromium fonts-dejavu-core; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if ((${#need[@]})); then
  echo "installing: ${need[*]}" >&2
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  [ -x "$HOME/.cargo/bin/cargo" ] || {
    echo "installing the Rust toolchain with rustup" >&2
    command -v curl >/dev/null 2>&1 || { ${SUDO:-} apt-get install -y -qq curl ca-certificates >/dev/null; }
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
  }
fi
