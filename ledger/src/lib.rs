//! # cairn-ledger
//!
//! Owns the ledger's data model and its persistence: accounts, transfer transactions,
//! blocks, execution, the state root, and RocksDB storage. Other crates (consensus, node,
//! rpc, genesis, wallet) build on these types; the byte-level formats are specified, with
//! test vectors checked by this crate's tests, in `docs/wire-format.md`.
//!
//! | module | owns |
//! |---|---|
//! | [`Hash`], [`context`] | 32-byte blake3 digests and every derive-key context |
//! | [`Address`] | account names (ed25519 public keys; bech32m `cairn1…` text) |
//! | [`TransactionBody`], [`SignedTransaction`] | transfers, signing digest, signature rule, wire format |
//! | [`Block`], [`BlockHeader`], [`txs_root`] | blocks, block hash, transactions Merkle root |
//! | [`Account`], [`StateReader`], [`LtHash`], [`StateDiff`], [`Layered`] | state, the lattice state hash, unfinalized state |
//! | [`BlockBuilder`], [`execute_block`], [`validate_block`] | transaction rules and block validity |
//! | [`Store`] | RocksDB: finalized blocks, indices, accounts, certificates, consensus WAL |
//! | [`LedgerError`] | every refusal and failure, classified (peer's fault / state-dependent / fatal) |
//!
//! Invariants:
//! - An account is named by its ed25519 public key ([`Address`]); balances and nonces are
//!   u64 base units with checked arithmetic (no wrap, no silent saturation). An account
//!   equal to [`Account::default()`] is absent.
//! - A transaction is identified by the hash of its body (= its signing digest); signatures
//!   are checked with `verify_strict` only ([`SignedTransaction::verify`]).
//! - A block is valid only if every transaction in it is valid in order; executing a block
//!   is deterministic and depends only on the parent state and the block. Every transaction
//!   conserves total supply (fees move to the proposer; nothing is minted or burned).
//! - The state root is the [`LtHash`] of all present accounts, maintained incrementally in
//!   work proportional to the accounts a block touches; it always equals the hash
//!   recomputed from scratch.
//! - Finalizing a block writes block, account state, indices, state hash and head in one
//!   synced RocksDB `WriteBatch`: after a crash the database holds all of a block or none
//!   of it. A database is bound to one genesis hash for its whole life.
//! - Decoding untrusted bytes never panics: sizes are bounded before decoding and every
//!   failure is a [`LedgerError`].

mod address;
mod block;
mod error;
mod execute;
mod hash;
mod state;
mod store;
mod tx;

pub use address::{ADDRESS_HRP, Address};
pub use block::{Block, BlockHeader, txs_root};
pub use error::LedgerError;
pub use execute::{
    BlockBuilder, BlockContext, BlockLimits, SignatureCheck, execute_block, validate_block,
    validate_block_with,
};
pub use hash::{Hash, context};
pub use state::{Account, LTHASH_BYTES, LTHASH_LANES, Layered, LtHash, StateDiff, StateReader};
pub use store::{Store, StoreSnapshot, TxLocation};
pub use tx::{CHAIN_ID_BYTES_MAX, SignedTransaction, TX_BYTES_MAX, TransactionBody};
