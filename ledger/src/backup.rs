//! Backups of the node's database: consistent copies of a live [`Store`] (RocksDB
//! checkpoints), statistics per column family, and checking a copy before it is restored.
//!
//! - [`Store::checkpoint`] writes a consistent, openable copy of the database as it was at
//!   one instant into a new directory while the store stays in use. RocksDB hard-links the
//!   immutable table files when the target is on the same file system (so a checkpoint
//!   beside the database is instant and takes no space until the live database compacts
//!   them away) and copies them otherwise; the write-ahead log is copied, so the copy holds
//!   every committed `WriteBatch` wholly or not at all (a block is all there or absent, as
//!   in the live database: `store` module invariants).
//! - [`Store::stats`] (live) and [`stats`] (a database no process has open, opened
//!   read-only) report the finalized head, sizes and exact key counts per column family.
//! - [`verify`] opens a copy read-only and checks it belongs to the expected chain (genesis
//!   hash and chain id), that its head is consistent (state hash against the head's
//!   `state_root`, the head block stored under its height) and returns the head.
//! - [`forget_consensus_wal`] empties a restored copy's consensus write-ahead log: it
//!   records the votes of the node the backup was taken from, not of the node it is
//!   restored into.
//!
//! Errors are [`BackupError`]s, each naming the path it concerns.

use std::path::{Path, PathBuf};

use rocksdb::{DB, checkpoint::Checkpoint};

use crate::store::{
    CF_BLOCKS, CF_META, COLUMN_FAMILIES, META_GENESIS_HASH, META_HEAD, META_LTHASH, db_options,
    decode,
};
use crate::{Block, BlockHeader, Hash, LtHash, Store};

/// Every way taking, reading or checking a copy of the database fails. Nothing is changed
/// by a failed call, except that a failed [`Store::checkpoint`] may leave a partial target
/// directory (the caller removes it).
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The checkpoint target must be a new directory.
    #[error("{path} already exists; a checkpoint is written into a new directory")]
    TargetExists {
        /// The target given.
        path: PathBuf,
    },
    /// The checkpoint target must be an absolute path (it is resolved by the node process,
    /// whose working directory is not the caller's).
    #[error("{path} is not an absolute path")]
    NotAbsolute {
        /// The target given.
        path: PathBuf,
    },
    /// The checkpoint target's parent directory does not exist.
    #[error("the parent directory of {path} does not exist")]
    NoParent {
        /// The target given.
        path: PathBuf,
    },
    /// RocksDB or the file system failed.
    #[error("{path}: {reason}")]
    Storage {
        /// The database or file concerned.
        path: PathBuf,
        /// What RocksDB or the OS reported.
        reason: String,
    },
    /// The directory does not hold a RocksDB database with Cairn's column families.
    #[error("{path} is not a Cairn database: {reason}")]
    NotADatabase {
        /// The directory given.
        path: PathBuf,
        /// Why not (no `CURRENT` file, a column family missing, no genesis hash stored).
        reason: String,
    },
    /// The database belongs to another genesis.
    #[error("{path} belongs to genesis {found}, expected genesis {expected}")]
    GenesisMismatch {
        /// The database.
        path: PathBuf,
        /// The genesis hash expected (the home's `genesis.json`).
        expected: Hash,
        /// The genesis hash the database holds.
        found: Hash,
    },
    /// The database's head block is of another chain id.
    #[error("{path} holds chain `{found}`, expected `{expected}`")]
    ChainMismatch {
        /// The database.
        path: PathBuf,
        /// The chain id expected.
        expected: String,
        /// The chain id of the stored head block.
        found: String,
    },
    /// Stored data does not decode or is inconsistent.
    #[error("{path} is corrupt: {reason}")]
    Corrupt {
        /// The database.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

fn storage(path: &Path, e: impl std::fmt::Display) -> BackupError {
    BackupError::Storage {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

fn corrupt(path: &Path, e: impl std::fmt::Display) -> BackupError {
    BackupError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// The finalized head of a database (or a copy of one).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DbHead {
    /// The genesis hash the database was created for.
    pub genesis_hash: Hash,
    /// Chain id of the head block (`None`: no genesis block stored yet).
    pub chain_id: Option<String>,
    /// Height of the finalized head (`None`: no genesis block stored yet).
    pub finalized_height: Option<u64>,
    /// Hash of the finalized head block.
    pub finalized_hash: Option<Hash>,
}

/// One column family's statistics.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CfStats {
    /// Column family name (`store` module layout).
    pub name: String,
    /// Exact number of keys (counted by iterating a snapshot).
    pub keys: u64,
    /// Bytes of its table files (`rocksdb.total-sst-files-size`).
    pub sst_bytes: u64,
    /// Bytes held in memtables, not yet in table files (`rocksdb.cur-size-all-mem-tables`;
    /// 0 for a database opened read-only).
    pub memtable_bytes: u64,
    /// Memory its open table files hold outside the block cache
    /// (`rocksdb.estimate-table-readers-mem`: index and filter blocks, for the column
    /// families that keep them on the heap; `store::HISTORY_COLUMN_FAMILIES` keep them in
    /// the cache). Read after counting the keys, which opens every table file. 0 from a
    /// node that predates the field.
    #[serde(default)]
    pub table_readers_bytes: u64,
}

/// Statistics of a database: its head, and per column family its key count and sizes.
///
/// Cost: counting keys iterates every key of the database (about a second per million
/// keys), on a snapshot, so the figures agree with each other and with the head.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DbStats {
    /// The database directory.
    pub path: PathBuf,
    /// The finalized head.
    #[serde(flatten)]
    pub head: DbHead,
    /// Column families, in the `store` module's order.
    pub column_families: Vec<CfStats>,
    /// Bytes of every file in the database directory (table files, logs, manifest).
    pub disk_bytes: u64,
}

/// Checks the checkpoint target `to`: absolute, new, in an existing directory.
fn check_target(to: &Path) -> Result<(), BackupError> {
    if !to.is_absolute() {
        return Err(BackupError::NotAbsolute { path: to.into() });
    }
    if to.symlink_metadata().is_ok() {
        return Err(BackupError::TargetExists { path: to.into() });
    }
    match to.parent() {
        Some(parent) if parent.is_dir() => Ok(()),
        _ => Err(BackupError::NoParent { path: to.into() }),
    }
}

impl Store {
    /// Writes a consistent copy of this database, as of one instant, into the new directory
    /// `to` (absolute; its parent must exist), while the store stays in use; returns the
    /// copy's head, read back from the copy (which also checks that it opens).
    ///
    /// Table files are hard-linked when `to` is on the database's file system (instant),
    /// copied otherwise (proportional to the database's size; commits go on meanwhile).
    ///
    /// # Errors
    /// [`BackupError::NotAbsolute`], [`BackupError::TargetExists`], [`BackupError::NoParent`]
    /// for a bad target (nothing written); [`BackupError::Storage`] if RocksDB fails (a
    /// partial `to` may be left); the errors of [`verify`] if the copy does not open.
    pub fn checkpoint(&self, to: &Path) -> Result<DbHead, BackupError> {
        check_target(to)?;
        let db_path = self.db.path().to_path_buf();
        let checkpoint = Checkpoint::new(&self.db).map_err(|e| storage(&db_path, e))?;
        checkpoint
            .create_checkpoint(to)
            .map_err(|e| storage(to, e))?;
        verify(to, self.genesis_hash(), None)
    }

    /// Statistics of this (live) database, on one snapshot. See [`DbStats`] for the cost.
    ///
    /// # Errors
    /// [`BackupError::Storage`], [`BackupError::Corrupt`].
    pub fn stats(&self) -> Result<DbStats, BackupError> {
        let path = self.db.path().to_path_buf();
        db_stats(&self.db, &path)
    }
}

/// Opens the database at `path` read-only (no lock is taken, nothing is written).
fn open_read_only(path: &Path) -> Result<DB, BackupError> {
    if !path.join("CURRENT").is_file() {
        return Err(BackupError::NotADatabase {
            path: path.into(),
            reason: "no RocksDB CURRENT file".into(),
        });
    }
    let existing = DB::list_cf(&rocksdb::Options::default(), path).map_err(|e| storage(path, e))?;
    if let Some(missing) = COLUMN_FAMILIES
        .iter()
        .find(|cf| !existing.iter().any(|e| e == *cf))
    {
        return Err(BackupError::NotADatabase {
            path: path.into(),
            reason: format!("column family `{missing}` is missing"),
        });
    }
    let (db_opts, cfs) = db_options(&crate::store::StoreOptions::default());
    DB::open_cf_descriptors_read_only(&db_opts, path, cfs, false).map_err(|e| storage(path, e))
}

fn cf<'a>(db: &'a DB, path: &Path, name: &str) -> Result<&'a rocksdb::ColumnFamily, BackupError> {
    db.cf_handle(name).ok_or_else(|| BackupError::NotADatabase {
        path: path.into(),
        reason: format!("column family `{name}` is missing"),
    })
}

/// Reads the head (and checks it) through `get` (a snapshot's or the database's reads of
/// the `meta` and `blocks` column families).
fn read_head(
    path: &Path,
    get: impl Fn(&str, &[u8]) -> Result<Option<Vec<u8>>, BackupError>,
) -> Result<DbHead, BackupError> {
    let genesis_bytes =
        get(CF_META, META_GENESIS_HASH)?.ok_or_else(|| BackupError::NotADatabase {
            path: path.into(),
            reason: "no genesis hash stored".into(),
        })?;
    let genesis_hash = Hash(genesis_bytes.as_slice().try_into().map_err(|_| {
        corrupt(
            path,
            format!("genesis hash of {} bytes", genesis_bytes.len()),
        )
    })?);
    let Some(head_bytes) = get(CF_META, META_HEAD)? else {
        return Ok(DbHead {
            genesis_hash,
            chain_id: None,
            finalized_height: None,
            finalized_hash: None,
        });
    };
    let header: BlockHeader = decode("head header", &head_bytes).map_err(|e| corrupt(path, e))?;
    let lthash_bytes = get(CF_META, META_LTHASH)?
        .ok_or_else(|| corrupt(path, "state hash missing while a head is stored"))?;
    let lthash = LtHash::from_bytes(&lthash_bytes).map_err(|e| corrupt(path, e))?;
    if lthash.root() != header.state_root {
        return Err(corrupt(
            path,
            "state hash does not match the head's state_root",
        ));
    }
    let hash = header.hash();
    let block_bytes = get(CF_BLOCKS, &header.height.to_be_bytes())?
        .ok_or_else(|| corrupt(path, format!("head block {} is not stored", header.height)))?;
    let block = Block::decode(&block_bytes, crate::store::STORED_BLOCK_BYTES_MAX)
        .map_err(|e| corrupt(path, e))?;
    if block.hash() != hash {
        return Err(corrupt(
            path,
            format!(
                "the block stored at height {} is not the head",
                header.height
            ),
        ));
    }
    Ok(DbHead {
        genesis_hash,
        chain_id: Some(header.chain_id.clone()),
        finalized_height: Some(header.height),
        finalized_hash: Some(hash),
    })
}

fn int_property(
    db: &DB,
    path: &Path,
    cf: &rocksdb::ColumnFamily,
    name: &str,
) -> Result<u64, BackupError> {
    Ok(db
        .property_int_value_cf(cf, name)
        .map_err(|e| storage(path, e))?
        .unwrap_or(0))
}

fn db_stats(db: &DB, path: &Path) -> Result<DbStats, BackupError> {
    let snap = db.snapshot();
    let head = read_head(path, |cf_name, key| {
        snap.get_cf(cf(db, path, cf_name)?, key)
            .map_err(|e| storage(path, e))
    })?;
    let mut column_families = Vec::with_capacity(COLUMN_FAMILIES.len());
    for name in COLUMN_FAMILIES {
        let handle = cf(db, path, name)?;
        let mut it = snap.raw_iterator_cf(handle);
        it.seek_to_first();
        let mut keys = 0u64;
        while it.valid() {
            keys += 1;
            it.next();
        }
        it.status().map_err(|e| storage(path, e))?;
        column_families.push(CfStats {
            name: name.to_string(),
            keys,
            sst_bytes: int_property(db, path, handle, "rocksdb.total-sst-files-size")?,
            memtable_bytes: int_property(db, path, handle, "rocksdb.cur-size-all-mem-tables")?,
            table_readers_bytes: int_property(
                db,
                path,
                handle,
                "rocksdb.estimate-table-readers-mem",
            )?,
        });
    }
    Ok(DbStats {
        path: path.to_path_buf(),
        head,
        column_families,
        disk_bytes: dir_bytes(path)?,
    })
}

/// Total size of the regular files directly in `dir` (a RocksDB directory is flat).
///
/// A live database deletes obsolete files (old WAL segments, manifests, options files)
/// while this runs: a file listed but gone before it is measured is skipped, not an error.
pub fn dir_bytes(dir: &Path) -> Result<u64, BackupError> {
    let mut total = 0u64;
    for entry in std::fs::read_dir(dir).map_err(|e| storage(dir, e))? {
        let entry = entry.map_err(|e| storage(dir, e))?;
        let meta = match entry.metadata() {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(storage(&entry.path(), e)),
        };
        if meta.is_file() {
            total = total.saturating_add(meta.len());
        }
    }
    Ok(total)
}

/// Statistics of the database at `path`, opened read-only (use it for a database no node
/// runs on, or for a copy; a running node answers with [`Store::stats`]).
///
/// # Errors
/// [`BackupError::NotADatabase`], [`BackupError::Storage`], [`BackupError::Corrupt`].
pub fn stats(path: &Path) -> Result<DbStats, BackupError> {
    let db = open_read_only(path)?;
    db_stats(&db, path)
}

/// Opens the copy at `path` read-only and checks it: it is a Cairn database of
/// `genesis_hash`, its head block is stored and matches the stored state hash, and (if
/// given) the head block's chain id is `chain_id`. Returns its head.
///
/// # Errors
/// [`BackupError::NotADatabase`], [`BackupError::GenesisMismatch`],
/// [`BackupError::ChainMismatch`], [`BackupError::Corrupt`] (also when it holds no genesis
/// block: a copy without blocks restores nothing), [`BackupError::Storage`].
pub fn verify(
    path: &Path,
    genesis_hash: Hash,
    chain_id: Option<&str>,
) -> Result<DbHead, BackupError> {
    let db = open_read_only(path)?;
    let head = read_head(path, |cf_name, key| {
        db.get_cf(cf(&db, path, cf_name)?, key)
            .map_err(|e| storage(path, e))
    })?;
    if head.genesis_hash != genesis_hash {
        return Err(BackupError::GenesisMismatch {
            path: path.into(),
            expected: genesis_hash,
            found: head.genesis_hash,
        });
    }
    let Some(found) = head.chain_id.as_deref() else {
        return Err(corrupt(path, "no genesis block stored"));
    };
    if let Some(expected) = chain_id {
        if found != expected {
            return Err(BackupError::ChainMismatch {
                path: path.into(),
                expected: expected.into(),
                found: found.into(),
            });
        }
    }
    Ok(head)
}

/// Empties the consensus write-ahead log of the (restored, not running) database at `path`
/// of chain `genesis_hash`; returns how many entries it held. The log records what the node
/// the copy was taken from signed; the node it is restored into starts from its own state.
///
/// # Errors
/// [`BackupError::Storage`] (also when another process has the database open),
/// [`BackupError::GenesisMismatch`].
pub fn forget_consensus_wal(path: &Path, genesis_hash: Hash) -> Result<usize, BackupError> {
    let store = Store::open(path, genesis_hash).map_err(|e| match e {
        crate::LedgerError::GenesisMismatch { expected, found } => BackupError::GenesisMismatch {
            path: path.into(),
            expected,
            found,
        },
        other => storage(path, other),
    })?;
    let entries = store.wal_entries().map_err(|e| storage(path, e))?.len();
    store
        .wal_prune_below(u64::MAX)
        .map_err(|e| storage(path, e))?;
    store
        .db
        .flush_cf(store.cf(crate::store::CF_WAL))
        .map_err(|e| storage(path, e))?;
    Ok(entries)
}
