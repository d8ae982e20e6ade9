//! # cairn-ledger
//!
//! Owns the ledger's data model and its persistence: accounts, transactions (transfers and
//! governance),
//! blocks, execution, the state root, and RocksDB storage. Other crates (consensus, node,
//! rpc, genesis, wallet) build on these types; the byte-level formats are specified, with
//! test vectors checked by this crate's tests, in `docs/wire-format.md`.
//!
//! | module | owns |
//! |---|---|
//! | [`hash`] | [`Hash`](struct@Hash): 32-byte blake3 digests; [`context`]: every derive-key context |
//! | [`address`] | [`Address`]: account names (ed25519 public keys; bech32m `cairn1…` text) |
//! | [`tx`] | [`TransactionBody`], [`SignedTransaction`]: transfers, signing digest, signature rule, wire format |
//! | [`verified`] | [`HashedTx`], [`VerifiedTx`], [`verify_hashed`]: a transaction with its hashes computed once; a verified one only from a signature check |
//! | [`block`] | [`Block`], [`BlockHeader`], [`SealedBlock`], [`txs_root`], [`signed_txs_root`]: blocks, block hash, the two Merkle roots that commit to every byte of the body |
//! | [`state`] | [`Account`], [`StateReader`], [`LtHash`], [`StateDiff`], [`Layered`]: state, the lattice state hash (construction, security, limits), unfinalized state |
//! | [`signature`] | the signature rule (ZIP-215, no small-order sender keys); [`verify_transactions`]: batch verification with exactly the single verdicts |
//! | [`execute`] | [`BlockBuilder`], [`execute_block`], [`validate_block`]: transaction rules and block validity |
//! | [`backup`] | [`Store::checkpoint`], [`backup::stats`], [`backup::verify`]: consistent copies of a live database (RocksDB checkpoints), per-column-family statistics, checking a copy before it is restored |
//! | [`snapshot`] | [`SnapshotManifest`](snapshot::SnapshotManifest), [`verify_chunk`](snapshot::verify_chunk), [`Store::write_snapshot`], [`Store::begin_snapshot_install`]: state snapshots in content-addressed chunks for state sync, checked chunk by chunk and against the certified state root, installed atomically |
//! | [`store`] | [`Store`]: RocksDB layout and invariants; finalized blocks, indices, accounts, certificates, consensus WAL |
//! | [`params`] | [`ChainParams`]: block, mempool, timing and admission parameters and their ranges |
//! | [`governance`] | [`Governance`](governance::Governance): members, threshold, account policy, the validator set and parameters the chain decided; governance proposals and their rules |
//! | [`error`] | [`LedgerError`]: every refusal and failure, classified (peer's fault / state-dependent / fatal) |
//!
//! Everything is also re-exported at the crate root; use `cairn_ledger::Store`, etc.
//!
//! ## The life of a block
//!
//! ```
//! use cairn_ledger::*;
//! use ed25519_dalek::SigningKey;
//!
//! # fn main() -> Result<(), LedgerError> {
//! let alice_key = SigningKey::from_bytes(&[1; 32]);
//! let alice = Address::from_public_key(&alice_key.verifying_key());
//! let (bob, proposer) = (Address([2; 32]), Address([3; 32]));
//!
//! // Genesis: initial accounts and a height-0 block committing to them.
//! let accounts = vec![(alice, Account { balance: 1_000, nonce: 0 })];
//! let genesis = Block {
//!     header: BlockHeader {
//!         chain_id: "cairn-doc".into(),
//!         height: 0,
//!         view: 0,
//!         parent_hash: Hash::derive("genesis file", &[]),
//!         proposer: Address::default(),
//!         timestamp_ms: 0,
//!         txs_root: txs_root(&[]),
//!         signed_txs_root: signed_txs_root_of(&[]),
//!         state_root: LtHash::of_accounts(accounts.iter().map(|(a, acc)| (a, acc))).root(),
//!     },
//!     transactions: vec![],
//! };
//! let dir = tempfile::tempdir().unwrap();
//! let store = Store::open(dir.path(), genesis.header.parent_hash)?;
//! store.init_genesis(&genesis, &accounts)?;
//!
//! // A wallet signs; the node verifies once on admission.
//! let tx = TransactionBody {
//!     chain_id: "cairn-doc".into(),
//!     sender: alice,
//!     fee: 2,
//!     nonce: 0,
//!     expiry_height: 10,
//!     action: Action::Transfer { recipient: bob, amount: 100 },
//! }
//! .sign(&alice_key);
//! let tx = SignedTransaction::decode(&tx.encode())?;
//! tx.verify("cairn-doc")?;
//!
//! // The proposer fills a block on top of the head state.
//! let head = store.head()?.expect("genesis is stored");
//! let ctx = BlockContext { chain_id: head.chain_id.clone(), height: head.height + 1, proposer };
//! let mut builder = BlockBuilder::new(&store, store.lthash()?, ctx);
//! builder.apply(&tx)?;
//! let diff = builder.finish();
//! let block = Block {
//!     header: BlockHeader {
//!         height: 1,
//!         view: 1,
//!         parent_hash: head.hash(),
//!         proposer,
//!         timestamp_ms: 1,
//!         txs_root: txs_root(&[tx.hash()]),
//!         signed_txs_root: signed_txs_root_of(std::slice::from_ref(&tx)),
//!         state_root: diff.state_root(),
//!         ..head.clone()
//!     },
//!     transactions: vec![tx],
//! };
//!
//! // Validators check it against the parent; once finalized, it is committed.
//! let limits = BlockLimits { block_txs_max: 1_000, block_bytes_max: 1 << 20 };
//! let checked = validate_block(&head, &store, store.lthash()?, &block, &limits)?;
//! assert_eq!(checked, diff);
//! store.commit_block(&block, &checked, Some(b"certificate bytes"))?;
//! assert_eq!(store.account(&bob)?, Account { balance: 100, nonce: 0 });
//! assert_eq!(store.account(&proposer)?.balance, 2);
//! # Ok(())
//! # }
//! ```
//!
//! Invariants:
//! - An account is named by its ed25519 public key ([`Address`]); balances and nonces are
//!   u64 base units with checked arithmetic (no wrap, no silent saturation). An account
//!   equal to [`Account::default()`] is absent.
//! - A transaction is identified by the hash of its body (= its signing digest); signatures
//!   are checked under one rule, ZIP-215 with no small-order sender keys ([`signature`]),
//!   singly ([`SignedTransaction::verify`]) or in batches ([`verify_transactions`]) with
//!   identical verdicts.
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

#![warn(missing_docs)]

pub mod address;
pub mod backup;
pub mod block;
pub mod error;
pub mod execute;
#[doc(hidden)]
pub mod fuzzing;
pub mod governance;
pub mod hash;
pub mod params;
pub mod signature;
pub mod snapshot;
pub mod state;
pub mod store;
pub mod tx;
pub mod verified;

pub use address::{ADDRESS_HRP, Address};
pub use block::{
    Block, BlockHeader, SealedBlock, merkle_root, signed_txs_root, signed_txs_root_of, txs_root,
};
pub use error::LedgerError;
pub use execute::{
    BlockBuilder, BlockContext, BlockLimits, SignatureCheck, execute_block, validate_block,
    validate_block_with, validate_sealed_block,
};
pub use hash::{Hash, context};
pub use params::{ChainParams, ParamError};
pub use signature::{VERIFY_BATCH_CHUNK, verify_signature, verify_transactions};
pub use state::{Account, LTHASH_BYTES, LTHASH_LANES, Layered, LtHash, StateDiff, StateReader};
pub use store::{
    ACCOUNT_CACHE_MAX, ACCOUNT_CACHE_MAX_MAX, ACCOUNT_CACHE_MAX_MIN, AccountCacheWarmUp,
    EpochRecord, GENESIS_BULK_BATCH_MAX, InitialState, PREFETCH_ACCOUNTS_MAX,
    PRUNE_BLOCKS_PER_STEP_MAX, PRUNE_TXS_PER_STEP_MAX, PruneLimits, PruneStep, RocksDbFigures,
    Store, StoreOptions, StoreSnapshot, TxLocation, WAL_PRUNES_PER_FLUSH, WARM_ACCOUNTS_STEP_MAX,
};
#[cfg(feature = "count-hashes")]
pub use tx::hash_counts;
pub use tx::{Action, CHAIN_ID_BYTES_MAX, SignedTransaction, TX_BYTES_MAX, TransactionBody};
pub use verified::{HashedTx, VerifiedTx, verify_hashed};
