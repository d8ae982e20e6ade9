//! RocksDB persistence: finalized blocks, indices, account state, certificates, the
//! consensus write-ahead log and metadata.
//!
//! # Layout
//!
//! | column family  | key                              | value                         |
//! |----------------|----------------------------------|-------------------------------|
//! | `blocks`       | height u64 BE                    | borsh [`Block`]               |
//! | `block_hashes` | block hash (32 bytes)            | height u64 BE                 |
//! | `txs`          | transaction hash (32 bytes)      | borsh [`TxLocation`] (12 B)   |
//! | `accounts`     | address (32 bytes)               | borsh [`Account`] (16 B); absent accounts are deleted |
//! | `permissions`  | address (32 bytes)               | [`Permissions`] (1 byte, non-zero); empty entries are deleted |
//! | `certificates` | height u64 BE                    | opaque bytes (consensus's)    |
//! | `consensus_wal`| view u64 BE ‖ seq u32 BE         | opaque bytes (consensus's)    |
//! | `meta`         | `ledger/genesis_hash`            | 32 bytes                      |
//! |                | `ledger/head`                    | borsh [`BlockHeader`] of the head block |
//! |                | `ledger/state_lthash`            | 2048 bytes ([`LtHash`] at head) |
//! |                | `ledger/governance`              | borsh [`Governance`] at head (absent for a chain without one) |
//! |                | `ledger/epoch/` ‖ epoch u64 BE   | borsh [`EpochRecord`] (chains with governance) |
//! |                | `ledger/epoch_height/` ‖ first height u64 BE | epoch u64 BE          |
//! |                | `ledger/snapshot_install`        | snapshot height u64 BE, only while a snapshot install runs (`crate::snapshot`) |
//! |                | `ledger/lowest_retained`         | height u64 BE: lowest height whose body is kept (absent: nothing pruned) |
//! |                | `ledger/header/` ‖ height u64 BE | borsh [`BlockHeader`] of a block whose body was pruned |
//! |                | `user/<key>`                     | [`Store::meta_put`] values    |
//!
//! Big-endian integer keys sort numerically, so iteration is in height / (view, seq) order.
//!
//! # Invariants
//!
//! - The genesis hash is written when the database is created and never changes; opening
//!   with another one fails ([`LedgerError::GenesisMismatch`]).
//! - `head`, `state_lthash`, `accounts`, `permissions`, `governance`, the epoch records and
//!   the block/indices of every height `0..=head` change only together, in one synced `WriteBatch` ([`Store::init_genesis`],
//!   [`Store::commit_block`]): after a crash the database holds all of a block or none.
//! - `state_lthash` is the [`LtHash`] of exactly the accounts, permission entries and
//!   governance record stored ([`Store::recompute_lthash`] checks it from scratch).
//! - Pruning ([`Store::prune_bodies`]): with `L = lowest_retained` (0 when absent), every
//!   height `L..=head` and the genesis block (height 0, which has no transactions) have
//!   their block in `blocks` and their transactions in `txs`; every height `1..L` has no
//!   block and no `txs` entries, but its header under `ledger/header/`. Its
//!   `block_hashes` entry and certificate stay. One pruning step moves `L` up in one
//!   `WriteBatch` (headers written, bodies and their index entries deleted, `L` raised),
//!   so after a crash the database holds the step wholly or not at all. A store installed
//!   from a state snapshot at height `S` has `L = S + 1` and no blocks or headers below it.
//!
//! Errors: RocksDB failures are [`LedgerError::Storage`], stored bytes that do not decode are
//! [`LedgerError::Corrupt`]; both are fatal ([`LedgerError::is_fatal`]).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use borsh::{BorshDeserialize, BorshSerialize};
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DB, DBCompressionType,
    Direction, IteratorMode, Options, SnapshotWithThreadMode, WriteBatch, WriteOptions,
};

use crate::governance::{Governance, Permissions};
use crate::{
    Account, Address, Block, BlockHeader, Hash, LedgerError, LtHash, SignedTransaction, StateDiff,
    StateReader, txs_root,
};

/// The state a chain starts from ([`Store::init_genesis_state`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct InitialState<'a> {
    /// Funded accounts, each address at most once; empty accounts are skipped.
    pub accounts: &'a [(Address, Account)],
    /// Initial permission entries, each address at most once; empty entries are skipped.
    pub permissions: &'a [(Address, Permissions)],
    /// The governance record (`None`: a chain without governance).
    pub governance: Option<&'a Governance>,
}

impl InitialState<'_> {
    /// The state hash of this state, from scratch.
    pub fn lthash(&self) -> LtHash {
        let mut h = LtHash::of_accounts(self.accounts.iter().map(|(a, acc)| (a, acc)));
        for (address, p) in self.permissions {
            h.update_permissions(address, Permissions::default(), *p);
        }
        h.update_governance(None, self.governance);
        h
    }
}

/// Where a finalized transaction is: block height and 0-based index in the block.
///
/// Borsh: `height` u64 LE ‖ `index` u32 LE (12 bytes).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    BorshSerialize,
    BorshDeserialize,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct TxLocation {
    /// Height of the block that includes the transaction.
    pub height: u64,
    /// Position in the block's transaction list.
    pub index: u32,
}

/// Most accounts in one WriteBatch of [`Store::put_genesis_accounts`] (about 4 MiB).
pub const GENESIS_BULK_BATCH_MAX: usize = 65_536;

pub(crate) const CF_BLOCKS: &str = "blocks";
pub(crate) const CF_BLOCK_HASHES: &str = "block_hashes";
pub(crate) const CF_TXS: &str = "txs";
pub(crate) const CF_ACCOUNTS: &str = "accounts";
pub(crate) const CF_PERMISSIONS: &str = "permissions";
pub(crate) const CF_CERTIFICATES: &str = "certificates";
pub(crate) const CF_WAL: &str = "consensus_wal";

/// WAL prunes (range deletions) between flushes of the WAL column family's memtable: the
/// bound on its range tombstones (see [`Store::wal_prune_below`]).
pub const WAL_PRUNES_PER_FLUSH: u32 = 64;
pub(crate) const CF_META: &str = "meta";
pub(crate) const COLUMN_FAMILIES: [&str; 8] = [
    CF_BLOCKS,
    CF_BLOCK_HASHES,
    CF_TXS,
    CF_ACCOUNTS,
    CF_PERMISSIONS,
    CF_CERTIFICATES,
    CF_WAL,
    CF_META,
];

pub(crate) const META_GENESIS_HASH: &[u8] = b"ledger/genesis_hash";
pub(crate) const META_HEAD: &[u8] = b"ledger/head";
pub(crate) const META_LTHASH: &[u8] = b"ledger/state_lthash";
pub(crate) const META_GOVERNANCE: &[u8] = b"ledger/governance";
/// Present while a snapshot install is in progress (`crate::snapshot`): `Store::open` wipes
/// such a store to empty.
pub(crate) const META_INSTALL: &[u8] = b"ledger/snapshot_install";
const META_USER_PREFIX: &str = "user/";
pub(crate) const META_EPOCH_PREFIX: &[u8] = b"ledger/epoch/";
pub(crate) const META_EPOCH_HEIGHT_PREFIX: &[u8] = b"ledger/epoch_height/";
const META_LOWEST_RETAINED: &[u8] = b"ledger/lowest_retained";
const META_HEADER_PREFIX: &[u8] = b"ledger/header/";

fn header_key(height: u64) -> Vec<u8> {
    [META_HEADER_PREFIX, &height.to_be_bytes()].concat()
}

/// Most blocks one [`Store::prune_bodies`] step prunes (the node's per-commit bound; see
/// [`PruneLimits`]).
pub const PRUNE_BLOCKS_PER_STEP_MAX: u64 = 64;

/// Most transactions (index entries deleted) one [`Store::prune_bodies`] step prunes, except
/// that a step always prunes at least one whole block.
pub const PRUNE_TXS_PER_STEP_MAX: u64 = 16_384;

/// Bounds of one [`Store::prune_bodies`] step: it stops before the block that would take it
/// past `blocks_max` blocks, or after the block that reaches `txs_max` transactions (a
/// step prunes at least one block when there is one to prune, so every step makes progress;
/// a block holds at most the chain's `block_txs_max` transactions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PruneLimits {
    /// Most blocks per step, ≥ 1.
    pub blocks_max: u64,
    /// Transactions per step after which it stops, ≥ 1.
    pub txs_max: u64,
}

impl Default for PruneLimits {
    /// [`PRUNE_BLOCKS_PER_STEP_MAX`] blocks, [`PRUNE_TXS_PER_STEP_MAX`] transactions.
    fn default() -> Self {
        PruneLimits {
            blocks_max: PRUNE_BLOCKS_PER_STEP_MAX,
            txs_max: PRUNE_TXS_PER_STEP_MAX,
        }
    }
}

/// What one [`Store::prune_bodies`] step did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PruneStep {
    /// Block bodies pruned by this step.
    pub blocks: u64,
    /// Transactions (bodies and index entries) pruned by this step.
    pub txs: u64,
    /// The lowest height whose body the store holds after the step (0: nothing pruned).
    pub lowest_retained_height: u64,
    /// Bodies still to prune below the `keep_from` the step was given.
    pub remaining_blocks: u64,
}

fn epoch_key(epoch: u64) -> Vec<u8> {
    [META_EPOCH_PREFIX, &epoch.to_be_bytes()].concat()
}

fn epoch_height_key(first_height: u64) -> Vec<u8> {
    [META_EPOCH_HEIGHT_PREFIX, &first_height.to_be_bytes()].concat()
}

/// What the store keeps about an epoch of a chain with governance (see the consensus
/// crate's `epoch` module): written with the genesis (epoch 0) and in the same synced
/// batch as the commit of each boundary block (the block whose execution changed the
/// validator set, which ends its epoch). Never changed afterwards.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct EpochRecord {
    /// The epoch (0 at genesis, +1 per boundary block).
    pub epoch: u64,
    /// Height of the epoch's first block: 1 for epoch 0, the boundary's height + 1 after.
    pub first_height: u64,
    /// The epoch's anchor: the genesis block for epoch 0, else the previous epoch's
    /// boundary block (the last block of that epoch).
    pub anchor: Hash,
    /// The validator set that votes in the epoch, in set order.
    pub validators: Vec<crate::governance::ValidatorInfo>,
}

/// Adds `record` (and its first-height index entry) to `batch`.
pub(crate) fn put_epoch_record(
    record: &EpochRecord,
    batch: &mut WriteBatch,
    meta: &impl rocksdb::AsColumnFamilyRef,
) {
    record.put(batch, meta);
}

impl EpochRecord {
    fn put(&self, batch: &mut WriteBatch, meta: &impl rocksdb::AsColumnFamilyRef) {
        batch.put_cf(meta, epoch_key(self.epoch), encode(self));
        batch.put_cf(
            meta,
            epoch_height_key(self.first_height),
            self.epoch.to_be_bytes(),
        );
    }
}

/// Blocks read back from the database are decoded with this bound (stored blocks were
/// validated against the chain's much smaller limit before being committed).
pub(crate) const STORED_BLOCK_BYTES_MAX: usize = 1 << 30;

/// The head as cached in memory (mirrors `meta`).
#[derive(Clone)]
struct Head {
    header: BlockHeader,
    hash: Hash,
    lthash: LtHash,
}

/// The node's database. `Send + Sync`; share it with `Arc<Store>`.
///
/// Reads may run concurrently with each other and with writes; writes that move the head
/// ([`Self::init_genesis`], [`Self::commit_block`]) are serialized internally, as are WAL
/// appends. For reads that must agree with each other across a concurrent commit (e.g.
/// executing a block against the head state), use [`Self::snapshot`].
pub struct Store {
    pub(crate) db: DB,
    /// The options the database was opened with: they hold its statistics (tickers).
    db_opts: Options,
    genesis_hash: Hash,
    head: RwLock<Option<Head>>,
    commit_lock: Mutex<()>,
    /// Serialises WAL appends and prunes; holds the number of prunes since the WAL column
    /// family's memtable was last flushed.
    wal_lock: Mutex<u32>,
    /// Read cache of the committed accounts ([`AccountCache`]).
    accounts: Mutex<AccountCache>,
    /// The committed governance record (mirrors `meta`), decoded once.
    governance: RwLock<Option<Arc<Governance>>>,
    /// `ledger/lowest_retained` (0: nothing pruned). Raised *before* a pruning step's write
    /// (and put back if the write fails), so a reader that finds a block missing and then
    /// reads this value knows whether it was pruned.
    lowest_retained: std::sync::atomic::AtomicU64,
    /// Serialises pruning steps.
    prune_lock: Mutex<()>,
}

/// Default for the most accounts [`Store`]'s read cache holds
/// ([`StoreOptions::account_cache_max`]; two generations of at most half each; about
/// 100 bytes per entry, so ~25 MiB when full).
///
/// Why: every transaction reads its sender's account several times on the node's
/// single consensus thread (mempool admission, block building, pruning after
/// finalization), and a RocksDB point read walks the memtable's skip list; in a loaded
/// node's profile those reads were as costly as the block commit itself.
pub const ACCOUNT_CACHE_MAX: usize = 1 << 18;

/// Least [`StoreOptions::account_cache_max`]: twice [`PREFETCH_ACCOUNTS_MAX`], so that one
/// prefetch (which fills the young generation, half the cache) never evicts its own reads.
pub const ACCOUNT_CACHE_MAX_MIN: usize = 2 * PREFETCH_ACCOUNTS_MAX;

/// Most [`StoreOptions::account_cache_max`]: 2^28 accounts (about 25 GiB when full), a
/// bound on a typo, not a recommendation.
pub const ACCOUNT_CACHE_MAX_MAX: usize = 1 << 28;

/// Accounts read per step of [`Store::warm_account_cache`]: the cache's lock is taken once
/// per step, so a warm-up never holds it for long.
pub const WARM_ACCOUNTS_STEP_MAX: usize = 1 << 16;

/// Most addresses one [`Store::prefetch_accounts`] call reads: a block's worth of transfers'
/// senders and recipients, well under half of [`ACCOUNT_CACHE_MAX`] (so a prefetch never
/// evicts its own reads).
pub const PREFETCH_ACCOUNTS_MAX: usize = 1 << 16;

/// The committed value of recently read or written accounts (absent accounts as
/// [`Account::default`], as the store reads them).
///
/// Invariant: an entry equals the account in the database at the last commit. Commits write
/// every account they change through to the cache (after the `WriteBatch`, under this
/// lock) and bump `epoch`; a reader that missed fills the cache only if no commit ran
/// since before its database read (same `epoch`), so it can never put back a value that a
/// concurrent commit has just replaced.
///
/// Eviction: when `young` reaches half of `capacity` ([`StoreOptions::account_cache_max`])
/// it becomes `old` and the previous `old` is dropped; a hit in `old` moves the entry back
/// to `young` (an approximate LRU at O(1) per operation).
struct AccountCache {
    young: HashMap<Address, Account>,
    old: HashMap<Address, Account>,
    epoch: u64,
    /// Most entries in both generations together.
    capacity: usize,
}

impl Default for AccountCache {
    fn default() -> Self {
        AccountCache::with_capacity(ACCOUNT_CACHE_MAX)
    }
}

impl AccountCache {
    fn with_capacity(capacity: usize) -> Self {
        assert!(
            capacity >= 2,
            "an account cache holds at least one entry per generation"
        );
        AccountCache {
            young: HashMap::new(),
            old: HashMap::new(),
            epoch: 0,
            capacity,
        }
    }

    /// Room left in the young generation before a `put` of a new address would age it.
    fn young_room(&self) -> usize {
        (self.capacity / 2).saturating_sub(self.young.len())
    }

    fn get(&mut self, address: &Address) -> Option<Account> {
        if let Some(a) = self.young.get(address) {
            return Some(*a);
        }
        let a = self.old.remove(address)?;
        self.put(*address, a);
        Some(a)
    }

    fn put(&mut self, address: Address, account: Account) {
        if self.young.len() >= self.capacity / 2 && !self.young.contains_key(&address) {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(address, account);
    }

    /// Forgets everything and invalidates reads in flight.
    fn clear(&mut self) {
        self.young.clear();
        self.old.clear();
        self.epoch += 1;
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let head = self.read_head();
        f.debug_struct("Store")
            .field("path", &self.db.path())
            .field("genesis_hash", &self.genesis_hash)
            .field("head_height", &head.as_ref().map(|h| h.header.height))
            .finish()
    }
}

pub(crate) fn storage(e: rocksdb::Error) -> LedgerError {
    LedgerError::Storage {
        reason: e.into_string(),
    }
}

fn corrupt(what: &str, detail: impl std::fmt::Display) -> LedgerError {
    LedgerError::Corrupt {
        reason: format!("{what}: {detail}"),
    }
}

pub(crate) fn decode<T: BorshDeserialize>(what: &str, bytes: &[u8]) -> Result<T, LedgerError> {
    borsh::from_slice(bytes).map_err(|e| corrupt(what, e))
}

fn encode<T: BorshSerialize>(value: &T) -> Vec<u8> {
    borsh::to_vec(value).expect("borsh to Vec never fails")
}

fn synced() -> WriteOptions {
    let mut w = WriteOptions::default();
    w.set_sync(true);
    w
}

fn wal_key(view: u64, seq: u32) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..8].copy_from_slice(&view.to_be_bytes());
    k[8..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn parse_wal_key(key: &[u8]) -> Result<(u64, u32), LedgerError> {
    let k: &[u8; 12] = key
        .try_into()
        .map_err(|_| corrupt("wal key", format!("{} bytes, expected 12", key.len())))?;
    let view = u64::from_be_bytes(k[..8].try_into().expect("8 bytes"));
    let seq = u32::from_be_bytes(k[8..].try_into().expect("4 bytes"));
    Ok((view, seq))
}

fn parse_height(what: &str, bytes: &[u8]) -> Result<u64, LedgerError> {
    let arr: [u8; 8] = bytes
        .try_into()
        .map_err(|_| corrupt(what, format!("{} bytes, expected 8", bytes.len())))?;
    Ok(u64::from_be_bytes(arr))
}

/// Default size of RocksDB's block cache ([`StoreOptions::block_cache_bytes`]), shared by
/// every column family: data blocks, and the index and filter blocks of the history column
/// families ([`HISTORY_COLUMN_FAMILIES`]).
pub const BLOCK_CACHE_BYTES: usize = 16 << 20;

/// Least [`StoreOptions::block_cache_bytes`]: 4 MiB. The history's partitioned index and
/// filter blocks live in the cache; much below this they would be evicted between the
/// reads of one lookup.
pub const BLOCK_CACHE_BYTES_MIN: usize = 4 << 20;

/// Most [`StoreOptions::block_cache_bytes`]: 64 GiB, a bound on a typo, not a
/// recommendation.
pub const BLOCK_CACHE_BYTES_MAX: usize = 64 << 30;

/// How a [`Store`] is opened ([`Store::open_with`]). [`Store::open`] uses the default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreOptions {
    /// RocksDB's block cache (LRU), bytes, shared by every column family. Default
    /// [`BLOCK_CACHE_BYTES`] (16 MiB); within [`BLOCK_CACHE_BYTES_MIN`] ..=
    /// [`BLOCK_CACHE_BYTES_MAX`]. The cache holds uncompressed data blocks of every column
    /// family and the history's index and filter blocks; a state much larger than the cache
    /// (millions of accounts drawn uniformly) pays a data-block read, LZ4 decompression and
    /// checksum for nearly every account read that the store's account cache
    /// ([`ACCOUNT_CACHE_MAX`]) misses (docs/scaling.md, "State size"). The node sets it
    /// from `[storage] block_cache_mib`.
    pub block_cache_bytes: usize,
    /// Most accounts the store's own read cache holds, decoded, in memory (two generations
    /// of at most half each; about 100 bytes per entry). Default [`ACCOUNT_CACHE_MAX`]
    /// (262,144, about 25 MiB); within [`ACCOUNT_CACHE_MAX_MIN`] ..= [`ACCOUNT_CACHE_MAX_MAX`].
    /// A state of at most half this many accounts fits whole once warmed
    /// ([`Store::warm_account_cache`]): every account read is then a hash-map lookup instead
    /// of a RocksDB read (memtables, index, data block), which at 10,000,000 uniformly drawn
    /// accounts was the largest cost after signature checks (docs/scaling.md, "State
    /// size"). The node sets it from `[storage] account_cache_max`.
    pub account_cache_max: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            block_cache_bytes: BLOCK_CACHE_BYTES,
            account_cache_max: ACCOUNT_CACHE_MAX,
        }
    }
}

impl StoreOptions {
    /// Checks every field against its stated bound.
    ///
    /// Errors: [`LedgerError::InvalidOptions`] naming the field.
    pub fn validate(&self) -> Result<(), LedgerError> {
        let within = |field: &'static str, unit: &str, v: usize, lo: usize, hi: usize| {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(LedgerError::InvalidOptions {
                    field,
                    reason: format!("{v} {unit}, expected {lo}..={hi}"),
                })
            }
        };
        within(
            "block_cache_bytes",
            "bytes",
            self.block_cache_bytes,
            BLOCK_CACHE_BYTES_MIN,
            BLOCK_CACHE_BYTES_MAX,
        )?;
        within(
            "account_cache_max",
            "accounts",
            self.account_cache_max,
            ACCOUNT_CACHE_MAX_MIN,
            ACCOUNT_CACHE_MAX_MAX,
        )
    }
}

/// What [`Store::warm_account_cache`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccountCacheWarmUp {
    /// Accounts read into the cache.
    pub accounts: u64,
    /// True if every stored account was read: the state fits in the cache's young
    /// generation (half of [`StoreOptions::account_cache_max`]).
    pub whole_state: bool,
}

/// Column families that grow with every finalized block (bodies, indices, certificates).
/// Their index and filter blocks are partitioned and kept in the block cache
/// ([`StoreOptions::block_cache_bytes`]), only the top level pinned, so the memory they take is bounded
/// by the cache, not by the history's length. With RocksDB's default (index and filters of
/// every open table held on the heap), a node's RSS grew with its history: the `txs` index
/// alone holds about 10 bits of bloom filter per finalized transfer, plus an index entry
/// per 4 KiB block (docs/scaling.md, "Run time"). Their hot path is writes; they are read
/// by `getTransaction`, `getBlock` and block sync, where one more cache lookup per read is
/// cheap. The state (`accounts`) keeps its index and filters on the heap: its reads are on
/// every transfer's path, and that memory grows with the account count, not with time.
pub const HISTORY_COLUMN_FAMILIES: [&str; 4] =
    [CF_BLOCKS, CF_BLOCK_HASHES, CF_TXS, CF_CERTIFICATES];

/// Modest options: several nodes share a 2-core machine in tests. Returns the database's
/// options and one descriptor per column family ([`COLUMN_FAMILIES`], in order).
pub(crate) fn db_options(opts: &StoreOptions) -> (Options, Vec<ColumnFamilyDescriptor>) {
    let cache = Cache::new_lru_cache(opts.block_cache_bytes);
    let table = |history: bool| {
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&cache);
        table.set_bloom_filter(10.0, false);
        if history {
            table.set_index_type(rocksdb::BlockBasedIndexType::TwoLevelIndexSearch);
            table.set_partition_filters(true);
            table.set_cache_index_and_filter_blocks(true);
            table.set_pin_top_level_index_and_filter(true);
        }
        table
    };

    let mut cf = Options::default();
    cf.set_compression_type(DBCompressionType::Lz4);
    cf.set_write_buffer_size(4 << 20);
    cf.set_max_write_buffer_number(2);
    cf.set_block_based_table_factory(&table(false));
    let cfs = COLUMN_FAMILIES
        .iter()
        .map(|name| {
            let mut opts = cf.clone();
            if HISTORY_COLUMN_FAMILIES.contains(name) {
                opts.set_block_based_table_factory(&table(true));
            }
            ColumnFamilyDescriptor::new(*name, opts)
        })
        .collect();

    let mut db = cf;
    db.create_if_missing(true);
    db.create_missing_column_families(true);
    db.set_max_background_jobs(2);
    db.set_db_write_buffer_size(16 << 20);
    db.set_max_total_wal_size(32 << 20);
    db.set_max_open_files(256);
    db.set_keep_log_file_num(2);
    db.set_max_log_file_size(4 << 20);
    // Tickers only (write stalls, compaction and flush bytes: `Store::rocksdb_figures`);
    // histograms and timers cost more and nothing reads them.
    db.enable_statistics();
    db.set_statistics_level(rocksdb::statistics::StatsLevel::ExceptHistogramOrTimers);
    (db, cfs)
}

/// RocksDB's write-stall and compaction figures ([`Store::rocksdb_figures`]), exported by
/// the node as metrics (`cairn_rocksdb_*`). Counters are cumulative since the database was
/// opened; gauges are read at the call. Sources: RocksDB statistics tickers
/// (`rocksdb.stall.micros`, `rocksdb.compact.read.bytes`, `rocksdb.compact.write.bytes`,
/// `rocksdb.flush.write.bytes`) and DB properties (`rocksdb.is-write-stopped`,
/// `rocksdb.actual-delayed-write-rate`, `rocksdb.num-running-compactions`,
/// `rocksdb.num-running-flushes`, and per column family summed:
/// `rocksdb.estimate-pending-compaction-bytes`, `rocksdb.num-immutable-mem-table`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RocksDbFigures {
    /// Time writes were delayed or stopped by RocksDB's write controller, µs (counter).
    pub stall_micros: u64,
    /// Bytes read by compactions (counter).
    pub compaction_read_bytes: u64,
    /// Bytes written by compactions (counter).
    pub compaction_write_bytes: u64,
    /// Bytes written by memtable flushes (counter).
    pub flush_write_bytes: u64,
    /// Whether writes are stopped right now.
    pub write_stopped: bool,
    /// The delayed write rate in force, bytes per second (0: writes are not delayed).
    pub delayed_write_rate_bytes_per_s: u64,
    /// Compactions running now.
    pub running_compactions: u64,
    /// Memtable flushes running now.
    pub running_flushes: u64,
    /// Estimated bytes compaction must rewrite to bring every level under its target, all
    /// column families.
    pub pending_compaction_bytes: u64,
    /// Immutable memtables waiting to be flushed, all column families.
    pub immutable_memtables: u64,
    /// Memory the open table files hold outside the block cache, bytes, all column
    /// families (`rocksdb.estimate-table-readers-mem`: the state's index and filter
    /// blocks; the history's are in the cache, [`HISTORY_COLUMN_FAMILIES`]).
    pub table_readers_bytes: u64,
    /// Bytes in the shared block cache (`rocksdb.block-cache-usage`), at most about
    /// [`StoreOptions::block_cache_bytes`].
    pub block_cache_bytes: u64,
}

impl Store {
    /// Opens or creates the database at `path` for the chain whose genesis (file) hash is
    /// `genesis_hash` (by convention the genesis block's `parent_hash`; the store only
    /// compares it). A new database records `genesis_hash`; a restarted one resumes from
    /// its head.
    ///
    /// Errors: [`LedgerError::GenesisMismatch`] if the database was created for another
    /// genesis hash; [`LedgerError::Storage`] if RocksDB fails (e.g. another process holds
    /// the lock); [`LedgerError::Corrupt`] if stored metadata does not decode.
    pub fn open(path: &Path, genesis_hash: Hash) -> Result<Store, LedgerError> {
        Store::open_with(path, genesis_hash, &StoreOptions::default())
    }

    /// [`Store::open`] with the given options.
    ///
    /// Errors: as [`Store::open`], and [`LedgerError::InvalidOptions`] if `opts` fails
    /// [`StoreOptions::validate`] (nothing is opened then).
    pub fn open_with(
        path: &Path,
        genesis_hash: Hash,
        opts: &StoreOptions,
    ) -> Result<Store, LedgerError> {
        opts.validate()?;
        let (db_opts, cfs) = db_options(opts);
        let db = DB::open_cf_descriptors(&db_opts, path, cfs).map_err(storage)?;
        let store = Store {
            db,
            db_opts,
            genesis_hash,
            head: RwLock::new(None),
            commit_lock: Mutex::new(()),
            wal_lock: Mutex::new(0),
            accounts: Mutex::new(AccountCache::with_capacity(opts.account_cache_max)),
            governance: RwLock::new(None),
            lowest_retained: std::sync::atomic::AtomicU64::new(0),
            prune_lock: Mutex::new(()),
        };
        match store
            .db
            .get_cf(store.cf(CF_META), META_GENESIS_HASH)
            .map_err(storage)?
        {
            Some(bytes) => {
                let found = Hash(
                    bytes
                        .as_slice()
                        .try_into()
                        .map_err(|_| corrupt("genesis hash", format!("{} bytes", bytes.len())))?,
                );
                if found != genesis_hash {
                    return Err(LedgerError::GenesisMismatch {
                        expected: genesis_hash,
                        found,
                    });
                }
            }
            None => {
                let mut batch = WriteBatch::default();
                batch.put_cf(store.cf(CF_META), META_GENESIS_HASH, genesis_hash.0);
                store.db.write_opt(batch, &synced()).map_err(storage)?;
            }
        }
        // An interrupted snapshot install leaves the store empty (`crate::snapshot`).
        store.wipe_interrupted_install()?;
        let head = store.load_head()?;
        *store.head.write().unwrap_or_else(|e| e.into_inner()) = head;
        let governance = store.load_governance()?;
        *store.governance.write().unwrap_or_else(|e| e.into_inner()) = governance;
        store.load_lowest_retained()?;
        Ok(store)
    }

    /// Reads `ledger/lowest_retained` into memory (0 when absent).
    fn load_lowest_retained(&self) -> Result<(), LedgerError> {
        let lowest = match self
            .db
            .get_cf(self.cf(CF_META), META_LOWEST_RETAINED)
            .map_err(storage)?
        {
            Some(bytes) => parse_height("lowest retained height", &bytes)?,
            None => 0,
        };
        self.lowest_retained
            .store(lowest, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    /// Adds to `batch` the lowest height whose block body the store holds (see
    /// [`Self::lowest_retained_height`]). For a store that does not hold the bodies below
    /// some height for another reason than pruning, e.g. one installed from a state
    /// snapshot at height `S` (bodies from `S + 1`): written in the install's batch, it makes
    /// such a store answer and advertise like a pruned one. Takes effect in memory at the
    /// next [`Self::reload_cached_state`] or open.
    pub(crate) fn put_lowest_retained_height(
        &self,
        batch: &mut WriteBatch,
        lowest_retained_height: u64,
    ) {
        batch.put_cf(
            self.cf(CF_META),
            META_LOWEST_RETAINED,
            lowest_retained_height.to_be_bytes(),
        );
    }

    /// Writes `batch` synced.
    pub(crate) fn write_synced(&self, batch: WriteBatch) -> Result<(), LedgerError> {
        self.db.write_opt(batch, &synced()).map_err(storage)
    }

    /// Re-reads the head and governance record from the database and empties the account
    /// cache (after a snapshot install changed them outside a commit).
    pub(crate) fn reload_cached_state(&self) -> Result<(), LedgerError> {
        let _guard = self.commit_lock.lock().unwrap_or_else(|e| e.into_inner());
        let head = self.load_head()?;
        let governance = self.load_governance()?;
        self.account_cache().clear();
        *self.governance.write().unwrap_or_else(|e| e.into_inner()) = governance;
        *self.head.write().unwrap_or_else(|e| e.into_inner()) = head;
        self.load_lowest_retained()
    }

    /// The genesis hash this database belongs to.
    pub fn genesis_hash(&self) -> Hash {
        self.genesis_hash
    }

    pub(crate) fn cf(&self, name: &str) -> &ColumnFamily {
        self.db
            .cf_handle(name)
            .expect("every column family is opened")
    }

    fn load_head(&self) -> Result<Option<Head>, LedgerError> {
        let Some(header_bytes) = self
            .db
            .get_cf(self.cf(CF_META), META_HEAD)
            .map_err(storage)?
        else {
            return Ok(None);
        };
        let header: BlockHeader = decode("head header", &header_bytes)?;
        let lthash_bytes = self
            .db
            .get_cf(self.cf(CF_META), META_LTHASH)
            .map_err(storage)?
            .ok_or_else(|| corrupt("state lthash", "missing while a head is stored"))?;
        let lthash = LtHash::from_bytes(&lthash_bytes).map_err(|e| corrupt("state lthash", e))?;
        if lthash.root() != header.state_root {
            return Err(corrupt(
                "state lthash",
                "does not match the head's state_root",
            ));
        }
        let hash = header.hash();
        Ok(Some(Head {
            header,
            hash,
            lthash,
        }))
    }

    fn load_governance(&self) -> Result<Option<Arc<Governance>>, LedgerError> {
        let Some(bytes) = self
            .db
            .get_cf(self.cf(CF_META), META_GOVERNANCE)
            .map_err(storage)?
        else {
            return Ok(None);
        };
        let g: Governance = decode("governance", &bytes)?;
        g.validate().map_err(|e| corrupt("governance", e))?;
        Ok(Some(Arc::new(g)))
    }

    fn read_head(&self) -> Option<Head> {
        self.head.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Writes the genesis block (height 0) and initial accounts, once; no-op if the same
    /// genesis is already stored (returns Ok).
    ///
    /// `accounts` lists each address at most once; [`Account::default()`] entries are
    /// skipped. The block must have height 0, no transactions, `txs_root` and
    /// `signed_txs_root` of the empty list,
    /// and `state_root` equal to the [`LtHash`] root of `accounts`.
    ///
    /// Errors: [`LedgerError::GenesisMismatch`] if a different genesis block is stored;
    /// [`LedgerError::InvalidBlock`] if the block breaks the rules above or an address is
    /// repeated; storage errors.
    pub fn init_genesis(
        &self,
        genesis_block: &Block,
        accounts: &[(Address, Account)],
    ) -> Result<(), LedgerError> {
        self.init_genesis_state(
            genesis_block,
            InitialState {
                accounts,
                ..InitialState::default()
            },
        )
    }

    /// [`Self::init_genesis`] with permissions and a governance record as well: the
    /// block's `state_root` must be the root of [`InitialState::lthash`]. Same errors, and
    /// [`LedgerError::InvalidBlock`] for a repeated permission entry or a governance record
    /// that breaks its invariants.
    pub fn init_genesis_state(
        &self,
        genesis_block: &Block,
        state: InitialState<'_>,
    ) -> Result<(), LedgerError> {
        self.init_genesis_state_bulk(genesis_block, state, &LtHash::zero())
    }

    /// Writes accounts of a large genesis state ahead of [`Self::init_genesis_state_bulk`],
    /// in synced-later WriteBatches of at most [`GENESIS_BULK_BATCH_MAX`] accounts (so memory
    /// stays bounded whatever the state's size). Nothing is visible as a chain until the
    /// genesis block is written: a crash in between leaves a store without a head, which
    /// the next start fills again (the same puts). Empty accounts are skipped.
    ///
    /// The caller owns the state hash of what it writes here (the sum of
    /// [`LtHash::of_account`]) and passes it to [`Self::init_genesis_state_bulk`]; each
    /// address must be written once and not appear in the [`InitialState`] too.
    ///
    /// Errors: [`LedgerError::InvalidBlock`] (height 0) if a genesis block is already
    /// stored; storage errors.
    pub fn put_genesis_accounts(&self, accounts: &[(Address, Account)]) -> Result<(), LedgerError> {
        let _guard = self.commit_lock.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(stored) = self.block_by_height(0)? {
            return Err(LedgerError::InvalidBlock {
                block: stored.hash(),
                height: 0,
                reason: "genesis accounts written after the genesis block".into(),
            });
        }
        for chunk in accounts.chunks(GENESIS_BULK_BATCH_MAX) {
            let mut batch = WriteBatch::default();
            for (address, account) in chunk {
                if !account.is_empty() {
                    batch.put_cf(self.cf(CF_ACCOUNTS), address.0, encode(account));
                }
            }
            self.db.write(batch).map_err(storage)?;
        }
        Ok(())
    }

    /// [`Self::init_genesis_state`] for a genesis whose state also holds accounts written
    /// beforehand with [`Self::put_genesis_accounts`], whose state hash is `bulk`: the
    /// block's `state_root` must be the root of `state.lthash() + bulk`. Same errors.
    pub fn init_genesis_state_bulk(
        &self,
        genesis_block: &Block,
        state: InitialState<'_>,
        bulk: &LtHash,
    ) -> Result<(), LedgerError> {
        let accounts = state.accounts;
        let _guard = self.commit_lock.lock().unwrap_or_else(|e| e.into_inner());
        let header = &genesis_block.header;
        let hash = genesis_block.hash();
        if let Some(stored) = self.block_by_height(0)? {
            let found = stored.hash();
            return if found == hash {
                Ok(())
            } else {
                Err(LedgerError::GenesisMismatch {
                    expected: hash,
                    found,
                })
            };
        }
        let invalid = |reason: String| LedgerError::InvalidBlock {
            block: hash,
            height: header.height,
            reason,
        };
        if header.height != 0 {
            return Err(invalid("genesis block must have height 0".into()));
        }
        if !genesis_block.transactions.is_empty() {
            return Err(invalid("genesis block must have no transactions".into()));
        }
        if header.txs_root != txs_root(&[]) || header.signed_txs_root != txs_root(&[]) {
            return Err(invalid(format!(
                "txs_root {} / signed_txs_root {}: not the empty root",
                header.txs_root, header.signed_txs_root
            )));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (address, _) in accounts {
            if !seen.insert(*address) {
                return Err(invalid(format!("genesis account {address} listed twice")));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for (address, p) in state.permissions {
            if !seen.insert(*address) || !p.is_known() {
                return Err(invalid(format!(
                    "genesis permissions of {address} listed twice or unknown"
                )));
            }
        }
        if let Some(g) = state.governance {
            g.validate()
                .map_err(|e| invalid(format!("genesis governance: {e}")))?;
        }
        let mut lthash = state.lthash();
        lthash.add(bulk);
        if header.state_root != lthash.root() {
            return Err(invalid(format!(
                "state_root {}, the initial state gives {}",
                header.state_root,
                lthash.root()
            )));
        }

        let mut batch = WriteBatch::default();
        batch.put_cf(
            self.cf(CF_BLOCKS),
            0u64.to_be_bytes(),
            genesis_block.encode(),
        );
        batch.put_cf(self.cf(CF_BLOCK_HASHES), hash.0, 0u64.to_be_bytes());
        for (address, account) in accounts {
            if !account.is_empty() {
                batch.put_cf(self.cf(CF_ACCOUNTS), address.0, encode(account));
            }
        }
        for (address, p) in state.permissions {
            if !p.is_empty() {
                batch.put_cf(self.cf(CF_PERMISSIONS), address.0, [p.0]);
            }
        }
        if let Some(g) = state.governance {
            batch.put_cf(self.cf(CF_META), META_GOVERNANCE, encode(g));
            EpochRecord {
                epoch: g.epoch,
                first_height: 1,
                anchor: hash,
                validators: g.validators.clone(),
            }
            .put(&mut batch, self.cf(CF_META));
        }
        batch.put_cf(self.cf(CF_META), META_LTHASH, lthash.to_bytes());
        batch.put_cf(self.cf(CF_META), META_HEAD, encode(header));
        self.db.write_opt(batch, &synced()).map_err(storage)?;
        // Reads before genesis cached absent accounts.
        self.account_cache().clear();
        *self.governance.write().unwrap_or_else(|e| e.into_inner()) =
            state.governance.map(|g| Arc::new(g.clone()));
        *self.head.write().unwrap_or_else(|e| e.into_inner()) = Some(Head {
            header: header.clone(),
            hash,
            lthash,
        });
        Ok(())
    }

    /// Header of the last committed block; `None` before [`Self::init_genesis`].
    pub fn head(&self) -> Result<Option<BlockHeader>, LedgerError> {
        Ok(self.read_head().map(|h| h.header))
    }

    /// State hash at the head ([`LtHash::zero`] before [`Self::init_genesis`]).
    pub fn lthash(&self) -> Result<LtHash, LedgerError> {
        Ok(self.read_head().map_or_else(LtHash::zero, |h| h.lthash))
    }

    /// Appends a finalized block: block, block hash index, tx index, changed accounts,
    /// lthash, certificate (opaque) and new head in ONE synced WriteBatch.
    ///
    /// `diff` must be the result of executing `block` on the head state (e.g. from
    /// [`crate::validate_block`]).
    ///
    /// # Panics
    ///
    /// (A bug in the caller, which must only commit validated children of the head.) If
    /// there is no head yet, or `block.header.height != head + 1`, or `parent_hash` is not
    /// the head's hash, or `diff.state_root() != block.header.state_root`.
    ///
    /// Errors: storage errors only; on error nothing was written.
    pub fn commit_block(
        &self,
        block: &Block,
        diff: &StateDiff,
        certificate: Option<&[u8]>,
    ) -> Result<(), LedgerError> {
        let ids: Vec<Hash> = block.transactions.iter().map(|t| t.hash()).collect();
        self.commit_hashed(block, block.hash(), &ids, diff, certificate)
    }

    /// [`Self::commit_block`] for a sealed block: its hash and transaction ids were computed
    /// when it was sealed, so no transaction is hashed again here. Same panics and errors.
    pub fn commit_sealed(
        &self,
        block: &crate::SealedBlock,
        diff: &StateDiff,
        certificate: Option<&[u8]>,
    ) -> Result<(), LedgerError> {
        self.commit_hashed(
            block.block(),
            block.hash(),
            block.tx_ids(),
            diff,
            certificate,
        )
    }

    /// The write of [`Self::commit_block`], with `hash == block.hash()` and
    /// `ids[i] == block.transactions[i].hash()` given by the caller.
    fn commit_hashed(
        &self,
        block: &Block,
        hash: Hash,
        ids: &[Hash],
        diff: &StateDiff,
        certificate: Option<&[u8]>,
    ) -> Result<(), LedgerError> {
        assert_eq!(
            ids.len(),
            block.transactions.len(),
            "one id per transaction"
        );
        let _guard = self.commit_lock.lock().unwrap_or_else(|e| e.into_inner());
        let head = self
            .read_head()
            .expect("commit_block called before init_genesis");
        let header = &block.header;
        assert_eq!(
            Some(header.height),
            head.header.height.checked_add(1),
            "commit_block: block height is not head height + 1"
        );
        assert_eq!(
            header.parent_hash, head.hash,
            "commit_block: parent_hash is not the head's hash"
        );
        assert_eq!(
            diff.state_root(),
            header.state_root,
            "commit_block: diff does not match the header's state_root"
        );

        let height_key = header.height.to_be_bytes();
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_BLOCKS), height_key, block.encode());
        batch.put_cf(self.cf(CF_BLOCK_HASHES), hash.0, height_key);
        // In key order: RocksDB inserts a batch's entries into the memtable's skip list one
        // after another, reusing the previous insert's position, so ascending keys cost
        // fewer comparisons than random ones (tx hashes are random).
        let mut tx_keys: Vec<(Hash, u32)> = ids
            .iter()
            .enumerate()
            .map(|(index, id)| {
                let index =
                    u32::try_from(index).expect("a block holds fewer than 2^32 transactions");
                (*id, index)
            })
            .collect();
        tx_keys.sort_unstable();
        for (tx_hash, index) in tx_keys {
            batch.put_cf(
                self.cf(CF_TXS),
                tx_hash.0,
                encode(&TxLocation {
                    height: header.height,
                    index,
                }),
            );
        }
        for (address, account) in &diff.accounts {
            if account.is_empty() {
                batch.delete_cf(self.cf(CF_ACCOUNTS), address.0);
            } else {
                batch.put_cf(self.cf(CF_ACCOUNTS), address.0, encode(account));
            }
        }
        for (address, p) in &diff.permissions {
            if p.is_empty() {
                batch.delete_cf(self.cf(CF_PERMISSIONS), address.0);
            } else {
                batch.put_cf(self.cf(CF_PERMISSIONS), address.0, [p.0]);
            }
        }
        if let Some(g) = &diff.governance {
            batch.put_cf(self.cf(CF_META), META_GOVERNANCE, encode(&**g));
        }
        if diff.validators_changed {
            let g = diff
                .governance
                .as_ref()
                .expect("a block that changed the validator set changed the governance record");
            EpochRecord {
                epoch: g.epoch,
                first_height: header.height + 1,
                anchor: hash,
                validators: g.validators.clone(),
            }
            .put(&mut batch, self.cf(CF_META));
        }
        if let Some(cert) = certificate {
            batch.put_cf(self.cf(CF_CERTIFICATES), height_key, cert);
        }
        batch.put_cf(self.cf(CF_META), META_LTHASH, diff.lthash.to_bytes());
        batch.put_cf(self.cf(CF_META), META_HEAD, encode(header));
        self.db.write_opt(batch, &synced()).map_err(storage)?;
        if let Some(g) = &diff.governance {
            *self.governance.write().unwrap_or_else(|e| e.into_inner()) = Some(g.clone());
        }
        {
            let mut cache = self.account_cache();
            for (address, account) in &diff.accounts {
                cache.put(*address, *account);
            }
            cache.epoch += 1;
        }
        *self.head.write().unwrap_or_else(|e| e.into_inner()) = Some(Head {
            header: header.clone(),
            hash,
            lthash: diff.lthash.clone(),
        });
        Ok(())
    }

    /// Stores (or replaces) the certificate of the committed block at height `h` (synced),
    /// for certificates that arrive after the block was committed.
    ///
    /// Errors: [`LedgerError::InvalidBlock`] if no block at `h` is committed; storage errors.
    pub fn put_certificate(&self, h: u64, certificate: &[u8]) -> Result<(), LedgerError> {
        if self.read_head().is_none_or(|head| h > head.header.height) {
            return Err(LedgerError::InvalidBlock {
                block: Hash::ZERO,
                height: h,
                reason: "no committed block at this height".into(),
            });
        }
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_CERTIFICATES), h.to_be_bytes(), certificate);
        self.db.write_opt(batch, &synced()).map_err(storage)
    }

    /// The committed block at height `h`.
    pub fn block_by_height(&self, h: u64) -> Result<Option<Block>, LedgerError> {
        match self
            .db
            .get_pinned_cf(self.cf(CF_BLOCKS), h.to_be_bytes())
            .map_err(storage)?
        {
            Some(bytes) => {
                let block = Block::decode(&bytes, STORED_BLOCK_BYTES_MAX)
                    .map_err(|e| corrupt("block", e))?;
                Ok(Some(block))
            }
            None => Ok(None),
        }
    }

    /// The committed block with this hash.
    pub fn block_by_hash(&self, hash: &Hash) -> Result<Option<Block>, LedgerError> {
        match self.height_of(hash)? {
            Some(h) => match self.block_by_height(h)? {
                Some(block) => Ok(Some(block)),
                // Pruned (the hash index stays): not held.
                None if self.is_pruned(h) => Ok(None),
                None => Err(corrupt("block hash index", "names a missing block")),
            },
            None => Ok(None),
        }
    }

    /// The lowest height whose block body (its transactions) the store holds: every
    /// finalized height from it to the head is held (and the genesis block, which has no
    /// transactions, always is). 0 when nothing was pruned. Only ever rises
    /// ([`Self::prune_bodies`]).
    pub fn lowest_retained_height(&self) -> u64 {
        self.lowest_retained
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Whether the body of the finalized block at `height` was pruned (`0 < height <`
    /// [`Self::lowest_retained_height`]). A reader that found no block at a height reads
    /// this afterwards: the bound is raised before bodies are deleted.
    pub fn is_pruned(&self, height: u64) -> bool {
        height > 0 && height < self.lowest_retained_height()
    }

    /// The header of the finalized block at `height`, whether or not its body was pruned
    /// (`None` above the head, and below the lowest retained height for a header the store
    /// never had: one installed from a state snapshot holds no blocks below it).
    ///
    /// Errors: storage errors; [`LedgerError::Corrupt`] if a stored header does not decode.
    pub fn header_by_height(&self, height: u64) -> Result<Option<BlockHeader>, LedgerError> {
        if !self.is_pruned(height)
            && let Some(block) = self.block_by_height(height)?
        {
            return Ok(Some(block.header));
        }
        if !self.is_pruned(height) {
            return Ok(None);
        }
        match self
            .db
            .get_cf(self.cf(CF_META), header_key(height))
            .map_err(storage)?
        {
            Some(bytes) => Ok(Some(decode("pruned block header", &bytes)?)),
            None => Ok(None),
        }
    }

    /// One bounded pruning step: deletes the bodies of the finalized blocks from the lowest
    /// retained height (at least 1: the genesis block stays) up to, not including,
    /// `keep_from` (capped at the head: the head's body always stays), at most `limits`'
    /// worth, keeping each block's header (`ledger/header/<height>`), hash index entry and
    /// certificate; the transaction index entries of the pruned transactions are deleted
    /// (they would name missing blocks). Account state is untouched. Idempotent: with
    /// nothing below `keep_from` left to prune it writes nothing.
    ///
    /// **Crash safety.** The headers, the deletions and the new lowest retained height go
    /// in one `WriteBatch`, so a crash leaves the step done wholly or not at all. The batch
    /// is not synced itself: the next synced commit syncs RocksDB's log up to it, and a step
    /// lost with the last unsynced writes is redone by the next call. The in-memory bound
    /// ([`Self::lowest_retained_height`]) is raised before the write, so a concurrent reader
    /// never takes a pruned block for a missing one.
    ///
    /// Bodies are deleted with point deletes (one per block and per transaction): a range
    /// tombstone would cost every later read of the memtable holding it (see
    /// [`Self::wal_prune_below`]); RocksDB compaction reclaims the space
    /// ([`Self::compact_pruned`] asks for it over the pruned range).
    ///
    /// Errors: storage errors (the bound is put back); [`LedgerError::Corrupt`] if a block
    /// to prune is missing or does not decode.
    ///
    /// # Panics
    /// If a limit is zero.
    pub fn prune_bodies(
        &self,
        keep_from: u64,
        limits: PruneLimits,
    ) -> Result<PruneStep, LedgerError> {
        assert!(
            limits.blocks_max >= 1 && limits.txs_max >= 1,
            "prune limits must be positive: {limits:?}"
        );
        let _guard = self.prune_lock.lock().unwrap_or_else(|e| e.into_inner());
        let head = self.read_head().map_or(0, |h| h.header.height);
        let keep_from = keep_from.min(head);
        let old = self.lowest_retained_height();
        let start = old.max(1);
        let mut step = PruneStep {
            lowest_retained_height: old,
            ..PruneStep::default()
        };
        if start >= keep_from {
            return Ok(step);
        }
        let meta = self.cf(CF_META);
        let mut batch = WriteBatch::default();
        let mut height = start;
        while height < keep_from && step.blocks < limits.blocks_max && step.txs < limits.txs_max {
            let block = self
                .block_by_height(height)?
                .ok_or_else(|| corrupt("blocks", format!("block {height} to prune is missing")))?;
            batch.put_cf(meta, header_key(height), encode(&block.header));
            for tx in &block.transactions {
                // A transaction is finalized at most once (nonces), so its index entry
                // names this block.
                batch.delete_cf(self.cf(CF_TXS), tx.hash().0);
            }
            batch.delete_cf(self.cf(CF_BLOCKS), height.to_be_bytes());
            step.blocks += 1;
            step.txs += block.transactions.len() as u64;
            height += 1;
        }
        batch.put_cf(meta, META_LOWEST_RETAINED, height.to_be_bytes());
        self.lowest_retained
            .store(height, std::sync::atomic::Ordering::SeqCst);
        if let Err(e) = self.db.write(batch) {
            self.lowest_retained
                .store(old, std::sync::atomic::Ordering::SeqCst);
            return Err(storage(e));
        }
        step.lowest_retained_height = height;
        step.remaining_blocks = keep_from - height;
        Ok(step)
    }

    /// RocksDB's latest sequence number: it rises with every write (diagnostics and tests:
    /// an unchanged number means nothing was written).
    pub fn write_sequence_number(&self) -> u64 {
        self.db.latest_sequence_number()
    }

    /// Asks RocksDB to compact the `blocks` and `txs` column families' pruned data now
    /// (`blocks` over heights below the lowest retained one; `txs`, whose keys are random
    /// hashes, whole). Blocking, and a few seconds on a large database: run it off the
    /// consensus path, every many pruned blocks (the node: every
    /// `COMPACT_EVERY_PRUNED_BLOCKS`). Without it the space comes back too, as RocksDB's
    /// own compactions reach the files holding deleted entries.
    ///
    /// Errors: none reported by RocksDB's manual compaction (it logs its own failures).
    pub fn compact_pruned(&self) {
        let lowest = self.lowest_retained_height();
        if lowest == 0 {
            return;
        }
        self.db.compact_range_cf(
            self.cf(CF_BLOCKS),
            Some(1u64.to_be_bytes()),
            Some(lowest.to_be_bytes()),
        );
        self.db
            .compact_range_cf(self.cf(CF_TXS), None::<&[u8]>, None::<&[u8]>);
    }

    /// Compacts the `accounts` column family whole, down to its last level. Blocking: for a
    /// state written in bulk (a genesis with generated accounts) before the chain runs, so
    /// that the compaction debt of writing millions of accounts in random key order is paid
    /// at initialization, not by the first blocks' reads and CPU.
    pub fn compact_accounts(&self) {
        self.db
            .compact_range_cf(self.cf(CF_ACCOUNTS), None::<&[u8]>, None::<&[u8]>);
    }

    /// Loads the stored accounts into the read cache, in key order, until the cache's young
    /// generation is full (half of [`StoreOptions::account_cache_max`]) or the state is read
    /// whole. For a node at start: with a cache sized to the state, no account read of the
    /// running chain then reaches RocksDB (a transfer between two of 10,000,000 uniformly
    /// drawn accounts otherwise costs each node two reads of about 10 µs each on this
    /// project's test machine, docs/scaling.md, "State size").
    ///
    /// Takes the commit lock for the whole scan (no commit can interleave, so every cached
    /// value is the committed one) and the cache's lock once per step of at most
    /// [`WARM_ACCOUNTS_STEP_MAX`] accounts. Reads bypass RocksDB's block cache (a full scan
    /// would only evict what the running node reads). `progress(loaded)` is called after
    /// each step. Work: one sequential pass over at most half the cache's capacity of
    /// accounts.
    ///
    /// Accounts already cached count against the young generation's room, so a cache that
    /// already holds some may stop that many short of it (`whole_state` false).
    ///
    /// Errors: [`LedgerError::Storage`] if RocksDB fails; [`LedgerError::Corrupt`] if a
    /// stored key is not an address or an account does not decode (the cache keeps the
    /// accounts loaded before it).
    pub fn warm_account_cache(
        &self,
        progress: &mut dyn FnMut(u64),
    ) -> Result<AccountCacheWarmUp, LedgerError> {
        let _guard = self.commit_lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut read_opts = rocksdb::ReadOptions::default();
        read_opts.fill_cache(false);
        let mut it = self.db.raw_iterator_cf_opt(self.cf(CF_ACCOUNTS), read_opts);
        it.seek_to_first();
        let mut loaded = 0u64;
        let mut step: Vec<(Address, Account)> = Vec::with_capacity(WARM_ACCOUNTS_STEP_MAX);
        loop {
            let room = self.account_cache().young_room();
            if room == 0 || !it.valid() {
                break;
            }
            step.clear();
            while step.len() < room.min(WARM_ACCOUNTS_STEP_MAX) {
                let Some((key, value)) = it.item() else {
                    break;
                };
                step.push((
                    crate::snapshot::address_key(key)?,
                    decode("account", value)?,
                ));
                it.next();
            }
            it.status().map_err(storage)?;
            loaded += step.len() as u64;
            let mut cache = self.account_cache();
            for (address, account) in step.drain(..) {
                cache.put(address, account);
            }
            // The step fit in the young generation's room (the commit lock keeps every other
            // writer out), so the warm-up never ages out what it loaded.
            assert!(cache.young.len() <= cache.capacity / 2);
            drop(cache);
            progress(loaded);
        }
        it.status().map_err(storage)?;
        Ok(AccountCacheWarmUp {
            accounts: loaded,
            whole_state: !it.valid(),
        })
    }

    /// Reads the committed accounts of `addresses` that the read cache
    /// ([`ACCOUNT_CACHE_MAX`]) lacks into it, in one batched RocksDB `MultiGet` (keys sorted:
    /// it probes each file's filter and index once per batch instead of once per key).
    /// At most [`PREFETCH_ACCOUNTS_MAX`] addresses are read per call (the rest is ignored).
    /// A warm-up only: later reads ([`StateReader::account`]) hit the cache instead of
    /// RocksDB; a commit that runs meanwhile wins, as for any read (the cache's `epoch`).
    ///
    /// Errors: [`LedgerError::Storage`] if RocksDB fails; [`LedgerError::Corrupt`] if a
    /// stored account does not decode.
    pub fn prefetch_accounts(&self, addresses: &[Address]) -> Result<(), LedgerError> {
        let (mut missing, epoch) = {
            let mut cache = self.account_cache();
            let missing: Vec<Address> = addresses
                .iter()
                .take(PREFETCH_ACCOUNTS_MAX)
                .filter(|a| cache.get(a).is_none())
                .copied()
                .collect();
            (missing, cache.epoch)
        };
        if missing.is_empty() {
            return Ok(());
        }
        missing.sort_unstable();
        missing.dedup();
        let values = self.db.batched_multi_get_cf(
            self.cf(CF_ACCOUNTS),
            missing.iter().map(|a| &a.0[..]),
            true,
        );
        let mut read = Vec::with_capacity(missing.len());
        for (address, value) in missing.iter().zip(values) {
            let account = match value.map_err(storage)? {
                Some(bytes) => decode("account", &bytes)?,
                None => Account::default(),
            };
            read.push((*address, account));
        }
        let mut cache = self.account_cache();
        if cache.epoch == epoch {
            for (address, account) in read {
                cache.put(address, account);
            }
        }
        Ok(())
    }

    /// Height of the committed block with this hash.
    pub fn height_of(&self, hash: &Hash) -> Result<Option<u64>, LedgerError> {
        match self
            .db
            .get_pinned_cf(self.cf(CF_BLOCK_HASHES), hash.0)
            .map_err(storage)?
        {
            Some(bytes) => Ok(Some(parse_height("block hash index", &bytes)?)),
            None => Ok(None),
        }
    }

    /// The record of epoch `epoch`, if the chain has governance and reached it.
    ///
    /// Errors: storage errors; [`LedgerError::Corrupt`] if the record does not decode.
    pub fn epoch_record(&self, epoch: u64) -> Result<Option<EpochRecord>, LedgerError> {
        match self
            .db
            .get_cf(self.cf(CF_META), epoch_key(epoch))
            .map_err(storage)?
        {
            Some(bytes) => Ok(Some(decode("epoch record", &bytes)?)),
            None => Ok(None),
        }
    }

    /// The record of the epoch in which the block at `height` was finalized (the genesis
    /// block counts as epoch 0), or `None` on a chain without governance. Heights past the
    /// head answer with the newest epoch.
    ///
    /// Errors: storage errors; [`LedgerError::Corrupt`] if an index entry or record is bad.
    pub fn epoch_at_height(&self, height: u64) -> Result<Option<EpochRecord>, LedgerError> {
        let cf = self.cf(CF_META);
        let mut it = self.db.raw_iterator_cf(cf);
        it.seek_for_prev(epoch_height_key(height.max(1)));
        let epoch = match it.key() {
            Some(key) if key.starts_with(META_EPOCH_HEIGHT_PREFIX) => {
                let value = it.value().expect("an entry has a value");
                u64::from_be_bytes(
                    value
                        .try_into()
                        .map_err(|_| corrupt("epoch height index", "value is not 8 bytes"))?,
                )
            }
            _ => {
                it.status().map_err(storage)?;
                return Ok(None);
            }
        };
        drop(it);
        let record = self
            .epoch_record(epoch)?
            .ok_or_else(|| corrupt("epoch height index", "names a missing epoch"))?;
        Ok(Some(record))
    }

    /// The certificate stored with the block at height `h`, if any.
    pub fn certificate(&self, h: u64) -> Result<Option<Vec<u8>>, LedgerError> {
        self.db
            .get_cf(self.cf(CF_CERTIFICATES), h.to_be_bytes())
            .map_err(storage)
    }

    /// Where the finalized transaction with this hash is.
    pub fn tx_location(&self, hash: &Hash) -> Result<Option<TxLocation>, LedgerError> {
        match self
            .db
            .get_pinned_cf(self.cf(CF_TXS), hash.0)
            .map_err(storage)?
        {
            Some(bytes) => Ok(Some(decode("tx location", &bytes)?)),
            None => Ok(None),
        }
    }

    /// The finalized transaction with this hash and its location (reads its whole block).
    pub fn transaction(
        &self,
        hash: &Hash,
    ) -> Result<Option<(SignedTransaction, TxLocation)>, LedgerError> {
        let Some(loc) = self.tx_location(hash)? else {
            return Ok(None);
        };
        let Some(block) = self.block_by_height(loc.height)? else {
            // Pruned after the index was read: not held any more.
            if self.is_pruned(loc.height) {
                return Ok(None);
            }
            return Err(corrupt("tx index", "names a missing block"));
        };
        let tx = block
            .transactions
            .get(loc.index as usize)
            .cloned()
            .ok_or_else(|| corrupt("tx index", "index past the block's transactions"))?;
        if tx.hash() != *hash {
            return Err(corrupt("tx index", "names a different transaction"));
        }
        Ok(Some((tx, loc)))
    }

    /// Appends `entry` to the consensus write-ahead log under `view` (synced). Entries of
    /// one view keep their append order (seq 0, 1, …); views need not be appended in order.
    ///
    /// Errors: storage errors; [`LedgerError::Storage`] if a view already holds 2^32 entries.
    pub fn wal_append(&self, view: u64, entry: &[u8]) -> Result<(), LedgerError> {
        let _guard = self.wal_lock.lock().unwrap_or_else(|e| e.into_inner());
        let cf = self.cf(CF_WAL);
        let mut it = self.db.raw_iterator_cf(cf);
        it.seek_for_prev(wal_key(view, u32::MAX));
        let seq = match it.key() {
            Some(key) => {
                let (v, s) = parse_wal_key(key)?;
                if v == view {
                    s.checked_add(1).ok_or_else(|| LedgerError::Storage {
                        reason: format!("consensus wal: view {view} already holds 2^32 entries"),
                    })?
                } else {
                    0
                }
            }
            None => {
                it.status().map_err(storage)?;
                0
            }
        };
        drop(it);
        let mut batch = WriteBatch::default();
        batch.put_cf(cf, wal_key(view, seq), entry);
        self.db.write_opt(batch, &synced()).map_err(storage)
    }

    /// Every WAL entry with its view, in (view, seq) order.
    pub fn wal_entries(&self) -> Result<Vec<(u64, Vec<u8>)>, LedgerError> {
        let mut out = Vec::new();
        for item in self.db.iterator_cf(self.cf(CF_WAL), IteratorMode::Start) {
            let (key, value) = item.map_err(storage)?;
            let (view, _) = parse_wal_key(&key)?;
            out.push((view, value.into_vec()));
        }
        Ok(out)
    }

    /// Deletes every WAL entry with a view below `view` (synced).
    ///
    /// One range tombstone per call. RocksDB re-fragments every range tombstone of a
    /// memtable each time an iterator is created over it (each [`Self::wal_append`] creates
    /// one), so unflushed tombstones would make every vote's persist slower for as long as
    /// the node runs (one prune per finalized view: ~150,000 an hour). The WAL column family
    /// is therefore flushed every [`WAL_PRUNES_PER_FLUSH`] prunes, which bounds the memtable's
    /// range tombstones (flushed ones are fragmented once per table file, then compacted away).
    pub fn wal_prune_below(&self, view: u64) -> Result<(), LedgerError> {
        if view == 0 {
            return Ok(());
        }
        let mut prunes = self.wal_lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(self.cf(CF_WAL), wal_key(0, 0), wal_key(view, 0));
        self.db.write_opt(batch, &synced()).map_err(storage)?;
        *prunes += 1;
        if *prunes >= WAL_PRUNES_PER_FLUSH {
            self.db.flush_cf(self.cf(CF_WAL)).map_err(storage)?;
            *prunes = 0;
        }
        Ok(())
    }

    /// Entries (appends and range deletions) in the WAL column family's memtable (RocksDB
    /// property `rocksdb.num-entries-active-mem-table`). With the flush every
    /// [`WAL_PRUNES_PER_FLUSH`] prunes this stays below that many views' appends and prunes.
    pub fn wal_memtable_entries(&self) -> Result<u64, LedgerError> {
        Ok(self
            .db
            .property_int_value_cf(self.cf(CF_WAL), "rocksdb.num-entries-active-mem-table")
            .map_err(storage)?
            .unwrap_or(0))
    }

    /// RocksDB's write-stall and compaction figures now ([`RocksDbFigures`]). A property
    /// RocksDB does not report reads as 0.
    ///
    /// Errors: [`LedgerError::Storage`] if RocksDB fails to read a property.
    pub fn rocksdb_figures(&self) -> Result<RocksDbFigures, LedgerError> {
        use rocksdb::statistics::Ticker;
        let db_prop = |name: &str| -> Result<u64, LedgerError> {
            Ok(self
                .db
                .property_int_value(name)
                .map_err(storage)?
                .unwrap_or(0))
        };
        let cf_sum = |name: &str| -> Result<u64, LedgerError> {
            let mut sum = 0u64;
            for cf in COLUMN_FAMILIES {
                sum = sum.saturating_add(
                    self.db
                        .property_int_value_cf(self.cf(cf), name)
                        .map_err(storage)?
                        .unwrap_or(0),
                );
            }
            Ok(sum)
        };
        Ok(RocksDbFigures {
            stall_micros: self.db_opts.get_ticker_count(Ticker::StallMicros),
            compaction_read_bytes: self.db_opts.get_ticker_count(Ticker::CompactReadBytes),
            compaction_write_bytes: self.db_opts.get_ticker_count(Ticker::CompactWriteBytes),
            flush_write_bytes: self.db_opts.get_ticker_count(Ticker::FlushWriteBytes),
            write_stopped: db_prop("rocksdb.is-write-stopped")? != 0,
            delayed_write_rate_bytes_per_s: db_prop("rocksdb.actual-delayed-write-rate")?,
            running_compactions: db_prop("rocksdb.num-running-compactions")?,
            running_flushes: db_prop("rocksdb.num-running-flushes")?,
            pending_compaction_bytes: cf_sum("rocksdb.estimate-pending-compaction-bytes")?,
            immutable_memtables: cf_sum("rocksdb.num-immutable-mem-table")?,
            table_readers_bytes: cf_sum("rocksdb.estimate-table-readers-mem")?,
            // One cache shared by every column family: any one reports its usage.
            block_cache_bytes: self
                .db
                .property_int_value_cf(self.cf(CF_META), "rocksdb.block-cache-usage")
                .map_err(storage)?
                .unwrap_or(0),
        })
    }

    /// The value stored under the caller's metadata `key` (a namespace separate from the
    /// ledger's own metadata, which it cannot read or overwrite).
    pub fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>, LedgerError> {
        self.db
            .get_cf(self.cf(CF_META), format!("{META_USER_PREFIX}{key}"))
            .map_err(storage)
    }

    /// Up to `limit` user metadata entries whose key starts with `prefix`, in key order
    /// (keys returned without the internal namespace). Bounded by `limit`.
    pub fn meta_scan(
        &self,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, LedgerError> {
        let full = format!("{META_USER_PREFIX}{prefix}");
        let mut out = Vec::new();
        let mode = IteratorMode::From(full.as_bytes(), rocksdb::Direction::Forward);
        for item in self.db.iterator_cf(self.cf(CF_META), mode) {
            if out.len() >= limit {
                break;
            }
            let (key, value) = item.map_err(storage)?;
            if !key.starts_with(full.as_bytes()) {
                break;
            }
            let key = String::from_utf8_lossy(&key[META_USER_PREFIX.len()..]).into_owned();
            out.push((key, value.into_vec()));
        }
        Ok(out)
    }

    /// Stores `value` under the caller's metadata `key` (synced).
    pub fn meta_put(&self, key: &str, value: &[u8]) -> Result<(), LedgerError> {
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_META), format!("{META_USER_PREFIX}{key}"), value);
        self.db.write_opt(batch, &synced()).map_err(storage)
    }

    /// Every stored (present) account, in address order. O(state size): for tools, tests
    /// and audits, not the hot path.
    pub fn accounts(&self) -> Result<Vec<(Address, Account)>, LedgerError> {
        let mut out = Vec::new();
        for item in self.db.iterator_cf(
            self.cf(CF_ACCOUNTS),
            IteratorMode::From(&[], Direction::Forward),
        ) {
            let (key, value) = item.map_err(storage)?;
            let address = Address(
                key.as_ref()
                    .try_into()
                    .map_err(|_| corrupt("account key", format!("{} bytes", key.len())))?,
            );
            out.push((address, decode("account", &value)?));
        }
        Ok(out)
    }

    /// Recomputes the state hash from every stored account and checks it against the stored
    /// one. O(state size).
    ///
    /// Errors: [`LedgerError::Corrupt`] on a mismatch; storage errors.
    pub fn recompute_lthash(&self) -> Result<LtHash, LedgerError> {
        let snapshot = self.snapshot();
        let stored = snapshot.lthash()?;
        let mut sum = LtHash::zero();
        for item in snapshot
            .snap
            .iterator_cf(self.cf(CF_ACCOUNTS), IteratorMode::Start)
        {
            let (key, value) = item.map_err(storage)?;
            let address = Address(
                key.as_ref()
                    .try_into()
                    .map_err(|_| corrupt("account key", format!("{} bytes", key.len())))?,
            );
            let account: Account = decode("account", &value)?;
            if !account.is_empty() {
                sum.add(&LtHash::of_account(&address, &account));
            }
        }
        for item in snapshot
            .snap
            .iterator_cf(self.cf(CF_PERMISSIONS), IteratorMode::Start)
        {
            let (key, value) = item.map_err(storage)?;
            let address = Address(
                key.as_ref()
                    .try_into()
                    .map_err(|_| corrupt("permissions key", format!("{} bytes", key.len())))?,
            );
            sum.update_permissions(
                &address,
                Permissions::default(),
                decode_permissions(&value)?,
            );
        }
        sum.update_governance(None, snapshot.governance()?.as_deref());
        if sum != stored {
            return Err(corrupt(
                "state lthash",
                "does not match the stored accounts",
            ));
        }
        Ok(sum)
    }

    /// A consistent point-in-time view: head, state hash and accounts that belong together,
    /// unaffected by later commits.
    pub fn snapshot(&self) -> StoreSnapshot<'_> {
        StoreSnapshot {
            store: self,
            snap: self.db.snapshot(),
        }
    }
}

impl Store {
    fn account_cache(&self) -> std::sync::MutexGuard<'_, AccountCache> {
        self.accounts.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl StateReader for Store {
    /// The committed account, from the read cache ([`ACCOUNT_CACHE_MAX`]) or the database.
    fn account(&self, address: &Address) -> Result<Account, LedgerError> {
        let epoch = {
            let mut cache = self.account_cache();
            if let Some(a) = cache.get(address) {
                return Ok(a);
            }
            cache.epoch
        };
        let account = match self
            .db
            .get_pinned_cf(self.cf(CF_ACCOUNTS), address.0)
            .map_err(storage)?
        {
            Some(bytes) => decode("account", &bytes)?,
            None => Account::default(),
        };
        let mut cache = self.account_cache();
        if cache.epoch == epoch {
            cache.put(*address, account);
        }
        Ok(account)
    }

    fn permissions(&self, address: &Address) -> Result<Permissions, LedgerError> {
        match self
            .db
            .get_pinned_cf(self.cf(CF_PERMISSIONS), address.0)
            .map_err(storage)?
        {
            Some(bytes) => decode_permissions(&bytes),
            None => Ok(Permissions::default()),
        }
    }

    /// The committed record, from memory.
    fn governance(&self) -> Result<Option<Arc<Governance>>, LedgerError> {
        Ok(self
            .governance
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone())
    }
}

/// A stored permissions value: one byte, non-zero, only known bits.
fn decode_permissions(bytes: &[u8]) -> Result<Permissions, LedgerError> {
    match bytes {
        [b] if *b != 0 && Permissions(*b).is_known() => Ok(Permissions(*b)),
        _ => Err(corrupt("permissions", format!("{bytes:02x?}"))),
    }
}

/// A consistent read-only view of a [`Store`] at one instant (a RocksDB snapshot).
pub struct StoreSnapshot<'a> {
    store: &'a Store,
    pub(crate) snap: SnapshotWithThreadMode<'a, DB>,
}

impl StoreSnapshot<'_> {
    fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>, LedgerError> {
        self.snap.get_cf(self.store.cf(cf), key).map_err(storage)
    }

    /// Head header at the snapshot (`None` before genesis).
    pub fn head(&self) -> Result<Option<BlockHeader>, LedgerError> {
        self.get(CF_META, META_HEAD)?
            .map(|b| decode("head header", &b))
            .transpose()
    }

    /// State hash at the snapshot ([`LtHash::zero`] before genesis).
    pub fn lthash(&self) -> Result<LtHash, LedgerError> {
        match self.get(CF_META, META_LTHASH)? {
            Some(b) => LtHash::from_bytes(&b).map_err(|e| corrupt("state lthash", e)),
            None => Ok(LtHash::zero()),
        }
    }
}

impl StateReader for StoreSnapshot<'_> {
    fn account(&self, address: &Address) -> Result<Account, LedgerError> {
        match self
            .snap
            .get_pinned_cf(self.store.cf(CF_ACCOUNTS), address.0)
            .map_err(storage)?
        {
            Some(bytes) => decode("account", &bytes),
            None => Ok(Account::default()),
        }
    }

    fn permissions(&self, address: &Address) -> Result<Permissions, LedgerError> {
        match self
            .snap
            .get_pinned_cf(self.store.cf(CF_PERMISSIONS), address.0)
            .map_err(storage)?
        {
            Some(bytes) => decode_permissions(&bytes),
            None => Ok(Permissions::default()),
        }
    }

    /// The record at the snapshot (decoded on each call).
    fn governance(&self) -> Result<Option<Arc<Governance>>, LedgerError> {
        self.get(CF_META, META_GOVERNANCE)?
            .map(|b| {
                let g: Governance = decode("governance", &b)?;
                Ok(Arc::new(g))
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(n: u32) -> Address {
        let mut a = [0u8; 32];
        a[..4].copy_from_slice(&n.to_le_bytes());
        Address(a)
    }

    #[test]
    fn account_cache_is_bounded_and_keeps_recent_entries() {
        let mut c = AccountCache::default();
        let half = u32::try_from(ACCOUNT_CACHE_MAX / 2).unwrap();
        for n in 0..3 * half {
            c.put(
                address(n),
                Account {
                    balance: u64::from(n),
                    nonce: 1,
                },
            );
            // Keep entry 0 in use: a hit in the old generation moves it back to the young.
            assert_eq!(c.get(&address(0)).map(|a| a.balance), Some(0));
            assert!(c.young.len() + c.old.len() <= ACCOUNT_CACHE_MAX);
        }
        // The newest half is held, the oldest untouched entries are gone.
        assert_eq!(
            c.get(&address(3 * half - 1)).map(|a| a.balance),
            Some(u64::from(3 * half - 1))
        );
        assert_eq!(c.get(&address(1)), None);
        // Overwrites replace, and clear empties and moves the epoch on.
        c.put(
            address(0),
            Account {
                balance: 9,
                nonce: 9,
            },
        );
        assert_eq!(
            c.get(&address(0)),
            Some(Account {
                balance: 9,
                nonce: 9
            })
        );
        let epoch = c.epoch;
        c.clear();
        assert_eq!(c.get(&address(0)), None);
        assert_eq!(c.epoch, epoch + 1);
    }

    /// Accounts `address(0..count)`, each with its own balance (10 + n) and a nonce.
    fn numbered_accounts(count: u32) -> Vec<(Address, Account)> {
        (0..count)
            .map(|n| {
                (
                    address(n),
                    Account {
                        balance: 10 + u64::from(n),
                        nonce: u64::from(n % 7),
                    },
                )
            })
            .collect()
    }

    /// A prefetch fills the cache with exactly the stored values (absent accounts as the
    /// default), duplicates and all; a compaction changes no value.
    #[test]
    fn prefetch_fills_the_cache_with_the_stored_accounts() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Hash([7; 32])).unwrap();
        let stored = numbered_accounts(1000);
        store.put_genesis_accounts(&stored).unwrap();
        // Every third stored account, twice, and some never stored.
        let wanted: Vec<Address> = (0..1000)
            .step_by(3)
            .chain((0..1000).step_by(3))
            .chain(5000..5010)
            .map(address)
            .collect();
        assert!(store.account_cache().young.is_empty());
        store.prefetch_accounts(&wanted).unwrap();
        {
            let mut cache = store.account_cache();
            assert_eq!(cache.young.len(), 334 + 10, "each address read once");
            for n in (0..1000).step_by(3) {
                assert_eq!(cache.get(&address(n)), Some(stored[n as usize].1));
            }
            assert_eq!(cache.get(&address(1)), None, "not asked for");
            for n in 5000..5010 {
                assert_eq!(cache.get(&address(n)), Some(Account::default()));
            }
        }
        store.compact_accounts();
        store.account_cache().clear();
        for (a, acc) in &stored {
            assert_eq!(store.account(a).unwrap(), *acc);
        }
        // More than the bound: only the first PREFETCH_ACCOUNTS_MAX are read.
        store.account_cache().clear();
        let many: Vec<Address> = (0..PREFETCH_ACCOUNTS_MAX as u32 + 10)
            .map(address)
            .collect();
        store.prefetch_accounts(&many).unwrap();
        assert_eq!(store.account_cache().young.len(), PREFETCH_ACCOUNTS_MAX);
    }

    /// The history's index and filter blocks are charged to the block cache, so the memory
    /// its table files hold on the heap does not grow with the history; the state's stay on
    /// the heap. Same keys, same values, one flushed table each.
    #[test]
    fn history_index_and_filters_live_in_the_block_cache() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Hash([7; 32])).unwrap();
        let keys_n: u32 = 200_000;
        for cf in [CF_TXS, CF_ACCOUNTS] {
            let mut batch = WriteBatch::default();
            for n in 0..keys_n {
                let key = Hash::derive("cairn/test", &[&n.to_le_bytes()]).0;
                batch.put_cf(store.cf(cf), key, n.to_le_bytes().repeat(3));
            }
            store.db.write(batch).unwrap();
            store.db.flush_cf(store.cf(cf)).unwrap();
            let probe = Hash::derive("cairn/test", &[&7u32.to_le_bytes()]).0;
            assert_eq!(
                store.db.get_cf(store.cf(cf), probe).unwrap(),
                Some(7u32.to_le_bytes().repeat(3))
            );
        }
        let heap = |cf: &str| {
            store
                .db
                .property_int_value_cf(store.cf(cf), "rocksdb.estimate-table-readers-mem")
                .unwrap()
                .unwrap()
        };
        let (history, state) = (heap(CF_TXS), heap(CF_ACCOUNTS));
        println!("{keys_n} keys: txs {history} B on the heap, accounts {state} B");
        // 10 bits of filter per key alone is 250,000 bytes for the state's table.
        assert!(
            state > 250_000,
            "state index and filter on the heap: {state}"
        );
        assert!(
            history < state / 10,
            "history on the heap: {history} vs {state}"
        );
        let figures = store.rocksdb_figures().unwrap();
        assert!(figures.table_readers_bytes >= state + history);
        assert!(
            figures.block_cache_bytes > 0,
            "history index/filter blocks cached"
        );
        assert!(figures.block_cache_bytes <= 2 * BLOCK_CACHE_BYTES as u64);
    }

    /// `StoreOptions::block_cache_bytes` sizes the one shared cache, and an option out of
    /// its bound is refused before anything is created on disk.
    #[test]
    fn the_block_cache_is_sized_by_the_options_and_bounds_are_checked() {
        let capacity = |store: &Store| {
            store
                .db
                .property_int_value_cf(store.cf(CF_META), "rocksdb.block-cache-capacity")
                .unwrap()
                .unwrap()
        };
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Hash([7; 32])).unwrap();
        assert_eq!(capacity(&store), BLOCK_CACHE_BYTES as u64, "default");
        drop(store);
        let big = StoreOptions {
            block_cache_bytes: 96 << 20,
            ..StoreOptions::default()
        };
        let store = Store::open_with(dir.path(), Hash([7; 32]), &big).unwrap();
        assert_eq!(capacity(&store), 96 << 20);
        drop(store);

        for bad in [0, BLOCK_CACHE_BYTES_MIN - 1, BLOCK_CACHE_BYTES_MAX + 1] {
            let opts = StoreOptions {
                block_cache_bytes: bad,
                ..StoreOptions::default()
            };
            assert_refused_before_opening(&opts, "block_cache_bytes");
        }
        for good in [BLOCK_CACHE_BYTES_MIN, BLOCK_CACHE_BYTES_MAX] {
            assert!(
                StoreOptions {
                    block_cache_bytes: good,
                    ..StoreOptions::default()
                }
                .validate()
                .is_ok()
            );
        }
    }

    /// Opening a fresh store with `opts` fails with `InvalidOptions` naming `field`, and
    /// creates nothing on disk.
    fn assert_refused_before_opening(opts: &StoreOptions, field: &str) {
        let fresh = tempfile::tempdir().unwrap();
        let path = fresh.path().join("db");
        match Store::open_with(&path, Hash([7; 32]), opts) {
            Err(LedgerError::InvalidOptions { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{opts:?}: expected InvalidOptions, got {:?}", other.err()),
        }
        assert!(!path.exists(), "{opts:?}: nothing is created");
    }

    /// `StoreOptions::account_cache_max` is checked against its bounds before anything is
    /// created on disk.
    #[test]
    fn the_account_cache_bound_is_checked() {
        for bad in [0, ACCOUNT_CACHE_MAX_MIN - 1, ACCOUNT_CACHE_MAX_MAX + 1] {
            let opts = StoreOptions {
                account_cache_max: bad,
                ..StoreOptions::default()
            };
            assert_refused_before_opening(&opts, "account_cache_max");
        }
        for good in [
            ACCOUNT_CACHE_MAX_MIN,
            ACCOUNT_CACHE_MAX,
            ACCOUNT_CACHE_MAX_MAX,
        ] {
            let opts = StoreOptions {
                account_cache_max: good,
                ..StoreOptions::default()
            };
            assert!(opts.validate().is_ok(), "{good}");
        }
    }

    /// A warm-up loads stored accounts (exactly their values) until the young generation
    /// is full, and says whether it read the whole state; a cache sized to the state holds
    /// it whole and then answers every read without RocksDB.
    #[test]
    fn warming_fills_the_account_cache_up_to_its_young_generation() {
        let dir = tempfile::tempdir().unwrap();
        let count = ACCOUNT_CACHE_MAX_MIN / 2 + 4_464; // 70,000: more than the least cache's half
        let stored = numbered_accounts(count as u32);
        let small = StoreOptions {
            account_cache_max: ACCOUNT_CACHE_MAX_MIN,
            ..StoreOptions::default()
        };
        {
            let store = Store::open_with(dir.path(), Hash([7; 32]), &small).unwrap();
            store.put_genesis_accounts(&stored).unwrap();
            let mut steps = Vec::new();
            let warm = store.warm_account_cache(&mut |n| steps.push(n)).unwrap();
            assert_eq!(
                warm,
                AccountCacheWarmUp {
                    accounts: (ACCOUNT_CACHE_MAX_MIN / 2) as u64,
                    whole_state: false,
                }
            );
            assert_eq!(steps.last().copied(), Some(warm.accounts));
            assert!(
                steps.windows(2).all(|w| w[0] < w[1]),
                "progress grows: {steps:?}"
            );
            let mut cache = store.account_cache();
            assert_eq!(cache.young.len(), ACCOUNT_CACHE_MAX_MIN / 2);
            assert!(cache.old.is_empty(), "a warm-up never ages the cache");
            let by_address: HashMap<Address, Account> = stored.iter().copied().collect();
            let cached: Vec<(Address, Account)> =
                cache.young.iter().map(|(a, v)| (*a, *v)).collect();
            for (a, v) in cached {
                assert_eq!(by_address[&a], v);
            }
            assert_eq!(cache.young_room(), 0);
            let _ = cache.get(&address(0));
        }
        let big = StoreOptions {
            account_cache_max: 2 * count,
            ..StoreOptions::default()
        };
        let store = Store::open_with(dir.path(), Hash([7; 32]), &big).unwrap();
        let warm = store.warm_account_cache(&mut |_| {}).unwrap();
        assert_eq!(
            warm,
            AccountCacheWarmUp {
                accounts: count as u64,
                whole_state: true,
            }
        );
        for (a, v) in &stored {
            assert_eq!(store.account_cache().get(a), Some(*v), "cached whole");
        }
        // Reads now come from the cache: a value changed behind the store's back (never
        // done outside tests) is not seen.
        store
            .db
            .put_cf(
                store.cf(CF_ACCOUNTS),
                address(1).0,
                encode(&Account {
                    balance: 77,
                    nonce: 0,
                }),
            )
            .unwrap();
        assert_eq!(store.account(&address(1)).unwrap(), stored[1].1);
        // A second warm-up finds the young generation full: it reads nothing and changes
        // nothing.
        let again = store.warm_account_cache(&mut |_| {}).unwrap();
        assert_eq!(again.accounts, 0);
        assert_eq!(store.account_cache().young.len(), count);
        assert_eq!(store.account(&address(1)).unwrap(), stored[1].1);
    }
}
