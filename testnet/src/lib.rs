//! cairn-testnet
