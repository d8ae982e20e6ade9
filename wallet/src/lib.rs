//! cairn-wallet
