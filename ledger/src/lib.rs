//! # cairn-ledger
//!
//! Owns the ledger's data model and its persistence: accounts, transfer transactions,
//! blocks, execution, the state root, and RocksDB storage.
//!
//! Invariants:
//! - An account is named by its ed25519 public key ([`Address`]); balances and nonces are
//!   u64 base units with checked arithmetic (no wrap, no silent saturation).
//! - A block is valid only if every transaction in it is valid in order; executing a block
//!   is deterministic and depends only on the parent state and the block.
//! - Finalizing a block writes block, account state, indices and head in one synced
//!   RocksDB `WriteBatch`: after a crash the database holds all of a block or none of it.

mod address;
mod block;
mod error;
mod hash;
mod tx;

pub use address::{ADDRESS_HRP, Address};
pub use block::{Block, BlockHeader, txs_root};
pub use error::LedgerError;
pub use hash::{Hash, context};
pub use tx::{CHAIN_ID_BYTES_MAX, SignedTransaction, TX_BYTES_MAX, TransactionBody};
