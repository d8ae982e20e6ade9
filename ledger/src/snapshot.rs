//! State snapshots for state sync: everything under the state root at one finalized
//! height, cut into content-addressed chunks that a joining node fetches from many peers,
//! checks one by one on arrival, and installs into a store that holds only its genesis.
//!
//! # What a snapshot holds
//!
//! A [`SnapshotManifest`] names one finalized block (its [`BlockHeader`], so its height,
//! hash and state root), the chain's [`EpochRecord`]s up to the epoch in force after it
//! (what a node needs to resume consensus there), and the [`ChunkInfo`] of every chunk: its
//! blake3 hash ([`chunk_hash`]), byte length, entry count and first/last key. A chunk is
//! the borsh encoding of a `Vec<`[`SnapshotEntry`]`>` in strictly increasing
//! [`EntryKey`] order: every present account (kind 0), every non-empty permissions entry
//! (kind 1) and the governance record (kind 2), the chunks' key ranges disjoint and
//! ascending. Cutting is deterministic (entries in key order, a new chunk when the next
//! entry would pass the chunk byte target), so every honest node makes the same manifest for
//! the same height and chunk target, and a requester can count how many peers offer it
//! ([`SnapshotManifest::id`]).
//!
//! # Trust
//!
//! The manifest itself is trusted only through the certified header it names: a node checks
//! the header's finalization certificate (its own business, outside this crate), then each
//! chunk against the manifest on arrival ([`verify_chunk`]: length, hash, decoding, key
//! order and range, entry validity), and adds each chunk's entries to an [`LtHash`] as they
//! arrive (the hash is a sum, so chunk order does not matter). Only when every chunk is in
//! and the sum's root equals the header's `state_root` is the install completed
//! ([`SnapshotInstall::finish`]). A chunk that fails is the fault of whoever served it; a
//! complete set of chunks whose root does not match means the manifest was wrong (the
//! fault of whoever offered it). Because key ranges are disjoint and keys strictly
//! increase within a chunk, no key appears twice, so the hashed multiset is a set (the
//! LtHash security argument, [`crate::state`], needs that) and equals what is stored.
//!
//! # Bounds
//!
//! A chunk is at most [`CHUNK_BYTES_MAX`] bytes, a manifest at most [`CHUNKS_MAX`] chunks,
//! [`EPOCHS_MAX`] epoch records and [`MANIFEST_BYTES_MAX`] bytes; sizes are checked before
//! anything is decoded.
//!
//! # Installing atomically
//!
//! [`Store::begin_snapshot_install`] (only on a store whose head is its genesis block)
//! writes an *install marker* and removes the genesis state in one synced batch; verified
//! chunks are then written one batch each; [`SnapshotInstall::finish`] writes the head,
//! state hash, governance record, epoch records and certificate and removes the marker in
//! one synced batch. [`Store::open`] wipes a store that still carries the marker (a crash
//! or an abandoned install) back to empty, so after a crash the store is either empty (the
//! node initialises its genesis again) or complete. Block bodies below the snapshot's
//! height are not part of a snapshot: a state-synced store holds the genesis block and the
//! blocks after the snapshot only, and records the snapshot's height + 1 as its lowest
//! retained height ([`Store::lowest_retained_height`]), as a pruned store does.
//!
//! # Files
//!
//! [`Store::write_snapshot`] writes `<dir>/manifest` and `<dir>/chunk-<index>` (index in
//! 5 decimal digits) into a temporary directory renamed into place at the end, from one
//! RocksDB snapshot, so the files are one consistent state. [`list_snapshots`] and
//! [`prune_snapshots`] manage a directory of such snapshots named by height.

use std::path::{Path, PathBuf};

use borsh::{BorshDeserialize, BorshSerialize};
use rocksdb::{IteratorMode, WriteBatch};

use crate::governance::{Governance, Permissions};
use crate::store::{
    CF_ACCOUNTS, CF_BLOCK_HASHES, CF_BLOCKS, CF_CERTIFICATES, CF_META, CF_PERMISSIONS, CF_TXS,
    CF_WAL, META_EPOCH_HEIGHT_PREFIX, META_EPOCH_PREFIX, META_GOVERNANCE, META_HEAD, META_INSTALL,
    META_LTHASH, decode,
};
use crate::{Account, Address, BlockHeader, EpochRecord, Hash, LedgerError, LtHash, Store};

/// Most bytes in one chunk (1 MiB): what one request fetches and one check reads.
pub const CHUNK_BYTES_MAX: usize = 1 << 20;
/// Most chunks in one manifest: with [`CHUNK_BYTES_MAX`] chunks, 4 GiB of state (about 85
/// million accounts at 49 bytes each).
pub const CHUNKS_MAX: usize = 4096;
/// Most epoch records in one manifest.
pub const EPOCHS_MAX: usize = 1024;
/// Largest encoded manifest, bytes: a header (≤ 220), [`CHUNKS_MAX`] chunk infos (≤ 110
/// each) and [`EPOCHS_MAX`] records of small validator sets, with room to spare. Checked
/// before decoding.
pub const MANIFEST_BYTES_MAX: usize = 2 << 20;
/// The derive-key context of a chunk's hash.
pub const CHUNK_CONTEXT: &str = "cairn snapshot chunk v1";
/// The derive-key context of a manifest's id.
pub const MANIFEST_CONTEXT: &str = "cairn snapshot manifest v1";
/// File name of the manifest in a snapshot directory.
pub const MANIFEST_FILE: &str = "manifest";

/// Entry kind of an account ([`EntryKey::kind`]).
pub const KIND_ACCOUNT: u8 = 0;
/// Entry kind of a permissions entry.
pub const KIND_PERMISSIONS: u8 = 1;
/// Entry kind of the governance record (its key's address is all zero).
pub const KIND_GOVERNANCE: u8 = 2;

/// The order of snapshot entries: kind, then address. Borsh: `kind` u8 ‖ 32 bytes.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize,
)]
pub struct EntryKey {
    /// [`KIND_ACCOUNT`], [`KIND_PERMISSIONS`] or [`KIND_GOVERNANCE`].
    pub kind: u8,
    /// The account (all zero for the governance record).
    pub address: Address,
}

/// One element of the state. Borsh: variant index (0, 1, 2), then the fields.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum SnapshotEntry {
    /// A present (non-empty) account.
    Account {
        /// Its address.
        address: Address,
        /// Balance and nonce.
        account: Account,
    },
    /// A non-empty permissions entry of known bits.
    Permissions {
        /// The account.
        address: Address,
        /// The permissions it holds.
        permissions: Permissions,
    },
    /// The governance record.
    Governance(Governance),
}

impl SnapshotEntry {
    /// Its place in the snapshot order.
    pub fn key(&self) -> EntryKey {
        match self {
            SnapshotEntry::Account { address, .. } => EntryKey {
                kind: KIND_ACCOUNT,
                address: *address,
            },
            SnapshotEntry::Permissions { address, .. } => EntryKey {
                kind: KIND_PERMISSIONS,
                address: *address,
            },
            SnapshotEntry::Governance(_) => EntryKey {
                kind: KIND_GOVERNANCE,
                address: Address::default(),
            },
        }
    }

    /// Its element of the state hash.
    fn lthash(&self) -> LtHash {
        match self {
            SnapshotEntry::Account { address, account } => LtHash::of_account(address, account),
            SnapshotEntry::Permissions {
                address,
                permissions,
            } => LtHash::of_permissions(address, *permissions),
            SnapshotEntry::Governance(g) => LtHash::of_governance(g),
        }
    }

    /// Why this entry could never be stored, if so.
    fn invalid(&self) -> Option<String> {
        match self {
            SnapshotEntry::Account { address, account } if account.is_empty() => {
                Some(format!("account {address} is empty"))
            }
            SnapshotEntry::Permissions {
                address,
                permissions,
            } if permissions.is_empty() || !permissions.is_known() => {
                Some(format!("permissions of {address} are empty or unknown"))
            }
            SnapshotEntry::Governance(g) => g.validate().err().map(|e| format!("governance: {e}")),
            _ => None,
        }
    }
}

/// What the manifest says about one chunk.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ChunkInfo {
    /// [`chunk_hash`] of its bytes.
    pub hash: Hash,
    /// Its length, bytes (1..=[`CHUNK_BYTES_MAX`]).
    pub bytes: u32,
    /// Entries in it (≥ 1).
    pub entries: u32,
    /// Key of its first entry.
    pub first: EntryKey,
    /// Key of its last entry (≥ `first`; below the next chunk's `first`).
    pub last: EntryKey,
}

/// A snapshot's table of contents (module docs). Borsh: `header`, `epochs`
/// (`Vec<EpochRecord>`), `chunks` (`Vec<ChunkInfo>`).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SnapshotManifest {
    /// The finalized block whose state this is.
    pub header: BlockHeader,
    /// The chain's epoch records, epoch 0 first, up to the epoch in force after `header`
    /// (at most [`EPOCHS_MAX`]); empty for a chain without governance.
    pub epochs: Vec<EpochRecord>,
    /// The chunks, in key order (1..=[`CHUNKS_MAX`]).
    pub chunks: Vec<ChunkInfo>,
}

/// The hash of a chunk's bytes: `blake3::derive_key(CHUNK_CONTEXT, bytes)`.
pub fn chunk_hash(bytes: &[u8]) -> Hash {
    Hash::derive(CHUNK_CONTEXT, &[bytes])
}

impl SnapshotManifest {
    /// Height of the snapshot's block.
    pub fn height(&self) -> u64 {
        self.header.height
    }

    /// Hash of the snapshot's block.
    pub fn block_hash(&self) -> Hash {
        self.header.hash()
    }

    /// The manifest's identity: `blake3::derive_key(MANIFEST_CONTEXT, borsh(manifest))`.
    pub fn id(&self) -> Hash {
        Hash::derive(MANIFEST_CONTEXT, &[&self.encode()])
    }

    /// Borsh bytes.
    pub fn encode(&self) -> Vec<u8> {
        borsh::to_vec(self).expect("borsh to Vec never fails")
    }

    /// Total bytes of all chunks.
    pub fn chunk_bytes_total(&self) -> u64 {
        self.chunks.iter().map(|c| u64::from(c.bytes)).sum()
    }

    /// Decodes a manifest, checking [`MANIFEST_BYTES_MAX`] first and its shape
    /// ([`Self::check_shape`]) after.
    ///
    /// Errors: [`SnapshotError::Oversize`], [`SnapshotError::Malformed`],
    /// [`SnapshotError::BadManifest`] (all the sender's fault).
    pub fn decode(bytes: &[u8]) -> Result<SnapshotManifest, SnapshotError> {
        if bytes.len() > MANIFEST_BYTES_MAX {
            return Err(SnapshotError::Oversize {
                what: "manifest",
                len: bytes.len(),
                max: MANIFEST_BYTES_MAX,
            });
        }
        let m: SnapshotManifest =
            borsh::from_slice(bytes).map_err(|e| SnapshotError::Malformed {
                what: "manifest",
                reason: e.to_string(),
            })?;
        m.check_shape()?;
        Ok(m)
    }

    /// Checks what a manifest can be checked for on its own: 1..=[`CHUNKS_MAX`] chunks of
    /// 1..=[`CHUNK_BYTES_MAX`] bytes and ≥ 1 entries each, known kinds, key ranges
    /// ascending and disjoint; epoch records numbered 0, 1, … (at most [`EPOCHS_MAX`]) with
    /// ascending first heights, none after `height + 1`; a height above 0. Whether its
    /// contents are the state is known only when the root matches.
    ///
    /// Errors: [`SnapshotError::BadManifest`].
    pub fn check_shape(&self) -> Result<(), SnapshotError> {
        let bad = |reason: String| Err(SnapshotError::BadManifest { reason });
        if self.header.height == 0 {
            return bad("a snapshot of the genesis block".into());
        }
        if self.chunks.is_empty() || self.chunks.len() > CHUNKS_MAX {
            return bad(format!(
                "{} chunks (1..={CHUNKS_MAX} allowed)",
                self.chunks.len()
            ));
        }
        if self.epochs.len() > EPOCHS_MAX {
            return bad(format!("{} epoch records", self.epochs.len()));
        }
        let key_ok = |k: &EntryKey| {
            k.kind <= KIND_GOVERNANCE
                && (k.kind != KIND_GOVERNANCE || k.address == Address::default())
        };
        let mut previous: Option<EntryKey> = None;
        for (i, c) in self.chunks.iter().enumerate() {
            if c.bytes == 0 || c.bytes as usize > CHUNK_BYTES_MAX || c.entries == 0 {
                return bad(format!(
                    "chunk {i}: {} bytes, {} entries",
                    c.bytes, c.entries
                ));
            }
            if !key_ok(&c.first) || !key_ok(&c.last) || c.first > c.last {
                return bad(format!("chunk {i}: bad key range"));
            }
            if c.first == c.last && c.entries != 1 {
                return bad(format!("chunk {i}: one key, {} entries", c.entries));
            }
            if previous.is_some_and(|p| p >= c.first) {
                return bad(format!(
                    "chunk {i}: key range overlaps or precedes the last"
                ));
            }
            previous = Some(c.last);
        }
        for (i, r) in self.epochs.iter().enumerate() {
            if r.epoch != i as u64 {
                return bad(format!("epoch record {i} is of epoch {}", r.epoch));
            }
            if i > 0 && r.first_height <= self.epochs[i - 1].first_height {
                return bad(format!("epoch record {i}: first height does not ascend"));
            }
            if r.first_height > self.header.height.saturating_add(1) {
                return bad(format!("epoch record {i} starts after the snapshot"));
            }
        }
        Ok(())
    }
}

/// Snapshot failures, classified: [`Self::is_peer_fault`] (what a peer sent is wrong),
/// [`Self::is_fatal`] (storage or file system), the rest are refusals of the caller's
/// request (a store that is not fresh, a head that moved on, an incomplete install).
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Longer than allowed (checked before decoding).
    #[error("snapshot {what} is {len} bytes, more than {max}")]
    Oversize {
        /// Manifest or chunk.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// Does not decode.
    #[error("malformed snapshot {what}: {reason}")]
    Malformed {
        /// Manifest or chunk.
        what: &'static str,
        /// The decoder's complaint.
        reason: String,
    },
    /// A manifest that breaks its shape rules or disagrees with the state it names.
    #[error("bad snapshot manifest: {reason}")]
    BadManifest {
        /// Which rule.
        reason: String,
    },
    /// A chunk index past the manifest's chunks.
    #[error("chunk {index} of a manifest of {count} chunks")]
    ChunkIndex {
        /// The index.
        index: u32,
        /// Chunks in the manifest.
        count: usize,
    },
    /// A chunk whose bytes are not the ones the manifest names (length or hash).
    #[error("chunk {index}: {reason}")]
    BadChunk {
        /// The chunk.
        index: u32,
        /// What is wrong.
        reason: String,
    },
    /// A chunk added twice to one install.
    #[error("chunk {index} added twice")]
    DuplicateChunk {
        /// The chunk.
        index: u32,
    },
    /// A verified chunk of another manifest.
    #[error("chunk {index} was verified against another manifest")]
    WrongManifest {
        /// The chunk.
        index: u32,
    },
    /// Not every chunk is in.
    #[error("{missing} chunks missing")]
    Incomplete {
        /// How many.
        missing: usize,
    },
    /// Every chunk is in and each matches the manifest, but the state they make does not
    /// have the certified header's root: the manifest was wrong.
    #[error("the snapshot's state root is {got}, the certified header's is {expected}")]
    RootMismatch {
        /// The header's root.
        expected: Hash,
        /// The chunks' root.
        got: Hash,
    },
    /// Installing needs a store whose head is its genesis block.
    #[error(
        "the store's head is at height {height:?}: a snapshot installs only over a store holding just its genesis"
    )]
    StoreNotFresh {
        /// The head's height (`None`: no genesis).
        height: Option<u64>,
    },
    /// The head moved on before a snapshot at `expected` could be taken.
    #[error("the head is at {head:?}, not at the snapshot height {expected}")]
    HeadMoved {
        /// The height asked for.
        expected: u64,
        /// The head found.
        head: Option<u64>,
    },
    /// The state is too large for [`CHUNKS_MAX`] chunks of the target size.
    #[error("the state needs more than {CHUNKS_MAX} chunks of {chunk_bytes} bytes")]
    TooLarge {
        /// The chunk byte target.
        chunk_bytes: usize,
    },
    /// A storage failure.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// A file system failure.
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        reason: String,
    },
}

impl SnapshotError {
    /// Whether what a peer sent is wrong (the sender is to blame).
    pub fn is_peer_fault(&self) -> bool {
        matches!(
            self,
            SnapshotError::Oversize { .. }
                | SnapshotError::Malformed { .. }
                | SnapshotError::BadManifest { .. }
                | SnapshotError::ChunkIndex { .. }
                | SnapshotError::BadChunk { .. }
                | SnapshotError::RootMismatch { .. }
        )
    }

    /// Whether the node cannot go on (storage or file system).
    pub fn is_fatal(&self) -> bool {
        match self {
            SnapshotError::Ledger(e) => e.is_fatal(),
            SnapshotError::Io { .. } => true,
            _ => false,
        }
    }
}

fn io(path: &Path, e: std::io::Error) -> SnapshotError {
    SnapshotError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// A chunk checked against its manifest ([`verify_chunk`]): the only way to add entries to
/// a [`SnapshotInstall`].
#[derive(Debug)]
pub struct VerifiedChunk {
    manifest: Hash,
    index: u32,
    entries: Vec<SnapshotEntry>,
    lthash: LtHash,
}

impl VerifiedChunk {
    /// The chunk's index.
    pub fn index(&self) -> u32 {
        self.index
    }
    /// Entries in it.
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    /// Never true (a chunk holds at least one entry).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Checks chunk `index` of the manifest whose id is `manifest_id` (pass
/// [`SnapshotManifest::id`], computed once): its length and [`chunk_hash`] match the
/// manifest's, it decodes to exactly the announced number of entries, keys strictly
/// ascend from the announced first to the announced last, and every entry is one a store
/// could hold. Computes the chunk's share of the state hash (pure; run it off any latency
/// sensitive task).
///
/// Errors: [`SnapshotError::ChunkIndex`], [`SnapshotError::BadChunk`],
/// [`SnapshotError::Malformed`]: the fault of whoever served the bytes.
pub fn verify_chunk(
    manifest: &SnapshotManifest,
    manifest_id: Hash,
    index: u32,
    bytes: &[u8],
) -> Result<VerifiedChunk, SnapshotError> {
    let info = manifest
        .chunks
        .get(index as usize)
        .ok_or(SnapshotError::ChunkIndex {
            index,
            count: manifest.chunks.len(),
        })?;
    let bad = |reason: String| Err(SnapshotError::BadChunk { index, reason });
    if bytes.len() != info.bytes as usize {
        return bad(format!(
            "{} bytes, the manifest says {}",
            bytes.len(),
            info.bytes
        ));
    }
    if chunk_hash(bytes) != info.hash {
        return bad("hash differs from the manifest's".into());
    }
    let entries: Vec<SnapshotEntry> =
        borsh::from_slice(bytes).map_err(|e| SnapshotError::Malformed {
            what: "chunk",
            reason: e.to_string(),
        })?;
    if entries.len() != info.entries as usize {
        return bad(format!(
            "{} entries, the manifest says {}",
            entries.len(),
            info.entries
        ));
    }
    let mut lthash = LtHash::zero();
    let mut previous: Option<EntryKey> = None;
    for e in &entries {
        let key = e.key();
        if previous.is_some_and(|p| p >= key) {
            return bad("keys do not strictly ascend".into());
        }
        if let Some(reason) = e.invalid() {
            return bad(reason);
        }
        previous = Some(key);
        lthash.add(&e.lthash());
    }
    if entries.first().map(SnapshotEntry::key) != Some(info.first)
        || entries.last().map(SnapshotEntry::key) != Some(info.last)
    {
        return bad("keys outside the manifest's range".into());
    }
    Ok(VerifiedChunk {
        manifest: manifest_id,
        index,
        entries,
        lthash,
    })
}

/// Reads the manifest of the snapshot in `dir` (size checked before reading it all).
///
/// Errors: [`SnapshotError::Io`]; a manifest that does not decode is reported as
/// [`SnapshotError::Malformed`] (a damaged local file).
pub fn read_manifest(dir: &Path) -> Result<SnapshotManifest, SnapshotError> {
    let path = dir.join(MANIFEST_FILE);
    let bytes = read_bounded(&path, MANIFEST_BYTES_MAX)?;
    SnapshotManifest::decode(&bytes)
}

/// Path of chunk `index` in a snapshot directory.
pub fn chunk_path(dir: &Path, index: u32) -> PathBuf {
    dir.join(format!("chunk-{index:05}"))
}

/// Reads chunk `index` of the snapshot in `dir` (at most [`CHUNK_BYTES_MAX`] bytes).
///
/// Errors: [`SnapshotError::Io`] (missing or too long).
pub fn read_chunk(dir: &Path, index: u32) -> Result<Vec<u8>, SnapshotError> {
    read_bounded(&chunk_path(dir, index), CHUNK_BYTES_MAX)
}

fn read_bounded(path: &Path, max: usize) -> Result<Vec<u8>, SnapshotError> {
    let len = std::fs::metadata(path).map_err(|e| io(path, e))?.len();
    if len > max as u64 {
        return Err(SnapshotError::Io {
            path: path.to_path_buf(),
            reason: format!("{len} bytes, more than {max}"),
        });
    }
    std::fs::read(path).map_err(|e| io(path, e))
}

/// The snapshots in `root` (subdirectories named by their height in decimal; temporary
/// `*.tmp` directories are skipped), highest first. A missing `root` has none.
///
/// Errors: [`SnapshotError::Io`].
pub fn list_snapshots(root: &Path) -> Result<Vec<(u64, PathBuf)>, SnapshotError> {
    let rd = match std::fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(root, e)),
    };
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| io(root, e))?;
        if let Some(h) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u64>().ok())
        {
            out.push((h, entry.path()));
        }
    }
    out.sort_by_key(|(h, _)| std::cmp::Reverse(*h));
    Ok(out)
}

/// Deletes all but the `keep` highest snapshots in `root`, and any leftover temporary
/// directory. Returns the heights deleted.
///
/// Errors: [`SnapshotError::Io`].
pub fn prune_snapshots(root: &Path, keep: usize) -> Result<Vec<u64>, SnapshotError> {
    let mut deleted = Vec::new();
    for (h, path) in list_snapshots(root)?.into_iter().skip(keep) {
        std::fs::remove_dir_all(&path).map_err(|e| io(&path, e))?;
        deleted.push(h);
    }
    if let Ok(rd) = std::fs::read_dir(root) {
        for entry in rd.flatten() {
            if entry.file_name().to_string_lossy().ends_with(".tmp") {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    Ok(deleted)
}

/// Writes chunks as entries come, cutting at the byte target.
struct ChunkWriter {
    dir: PathBuf,
    chunk_bytes: usize,
    buf: Vec<u8>,
    entries: u32,
    first: Option<EntryKey>,
    last: Option<EntryKey>,
    chunks: Vec<ChunkInfo>,
}

impl ChunkWriter {
    fn push(&mut self, entry: &SnapshotEntry) -> Result<(), SnapshotError> {
        let encoded = borsh::to_vec(entry).expect("borsh to Vec never fails");
        assert!(
            encoded.len() + 4 <= CHUNK_BYTES_MAX,
            "a state entry of {} bytes does not fit a chunk",
            encoded.len()
        );
        // 4 bytes of the Vec's length prefix.
        if self.entries > 0 && 4 + self.buf.len() + encoded.len() > self.chunk_bytes {
            self.flush()?;
        }
        let key = entry.key();
        self.first.get_or_insert(key);
        self.last = Some(key);
        self.buf.extend_from_slice(&encoded);
        self.entries += 1;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SnapshotError> {
        if self.entries == 0 {
            return Ok(());
        }
        if self.chunks.len() >= CHUNKS_MAX {
            return Err(SnapshotError::TooLarge {
                chunk_bytes: self.chunk_bytes,
            });
        }
        let mut bytes = Vec::with_capacity(4 + self.buf.len());
        bytes.extend_from_slice(&self.entries.to_le_bytes());
        bytes.extend_from_slice(&self.buf);
        let index = self.chunks.len() as u32;
        let path = chunk_path(&self.dir, index);
        std::fs::write(&path, &bytes).map_err(|e| io(&path, e))?;
        self.chunks.push(ChunkInfo {
            hash: chunk_hash(&bytes),
            bytes: u32::try_from(bytes.len()).expect("a chunk is at most 1 MiB"),
            entries: self.entries,
            first: self.first.take().expect("a chunk has entries"),
            last: self.last.take().expect("a chunk has entries"),
        });
        self.buf.clear();
        self.entries = 0;
        Ok(())
    }
}

impl Store {
    /// Writes the snapshot of the finalized state at `height` into the new directory `dir`
    /// (manifest and chunks of at most `chunk_bytes` bytes, 1 KiB..=[`CHUNK_BYTES_MAX`];
    /// module docs), reading one RocksDB snapshot; the files go to `dir.tmp` first, renamed
    /// to `dir` at the end. O(state size) reads and writes: call it off latency-sensitive
    /// tasks.
    ///
    /// Errors: [`SnapshotError::HeadMoved`] if the head is no longer at `height` (a later
    /// commit ran first: the snapshot is skipped); [`SnapshotError::TooLarge`];
    /// [`SnapshotError::Io`], storage errors.
    ///
    /// # Panics
    /// If `chunk_bytes` is outside 1 KiB..=[`CHUNK_BYTES_MAX`].
    pub fn write_snapshot(
        &self,
        height: u64,
        dir: &Path,
        chunk_bytes: usize,
    ) -> Result<SnapshotManifest, SnapshotError> {
        assert!(
            (1024..=CHUNK_BYTES_MAX).contains(&chunk_bytes),
            "chunk target {chunk_bytes} bytes"
        );
        let snap = self.snapshot();
        let header = snap.head()?;
        if header.as_ref().map(|h| h.height) != Some(height) {
            return Err(SnapshotError::HeadMoved {
                expected: height,
                head: header.map(|h| h.height),
            });
        }
        let header = header.expect("checked");
        let tmp = dir.with_extension("tmp");
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
        }
        std::fs::create_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
        let mut w = ChunkWriter {
            dir: tmp.clone(),
            chunk_bytes,
            buf: Vec::new(),
            entries: 0,
            first: None,
            last: None,
            chunks: Vec::new(),
        };
        for item in snap
            .snap
            .iterator_cf(self.cf(CF_ACCOUNTS), IteratorMode::Start)
        {
            let (key, value) = item.map_err(crate::store::storage)?;
            let address = address_key(&key)?;
            w.push(&SnapshotEntry::Account {
                address,
                account: decode("account", &value)?,
            })?;
        }
        for item in snap
            .snap
            .iterator_cf(self.cf(CF_PERMISSIONS), IteratorMode::Start)
        {
            let (key, value) = item.map_err(crate::store::storage)?;
            let address = address_key(&key)?;
            let permissions = match value.as_ref() {
                [b] => Permissions(*b),
                _ => {
                    return Err(LedgerError::Corrupt {
                        reason: "permissions value is not one byte".into(),
                    }
                    .into());
                }
            };
            w.push(&SnapshotEntry::Permissions {
                address,
                permissions,
            })?;
        }
        if let Some(g) = crate::StateReader::governance(&snap)? {
            w.push(&SnapshotEntry::Governance((*g).clone()))?;
        }
        w.flush()?;
        let mut epochs = Vec::new();
        let mode = IteratorMode::From(META_EPOCH_PREFIX, rocksdb::Direction::Forward);
        for item in snap.snap.iterator_cf(self.cf(CF_META), mode) {
            let (key, value) = item.map_err(crate::store::storage)?;
            if !key.starts_with(META_EPOCH_PREFIX) {
                break;
            }
            let record: EpochRecord = decode("epoch record", &value)?;
            if record.first_height <= height.saturating_add(1) {
                epochs.push(record);
            }
        }
        let manifest = SnapshotManifest {
            header,
            epochs,
            chunks: w.chunks,
        };
        manifest.check_shape()?;
        let path = tmp.join(MANIFEST_FILE);
        std::fs::write(&path, manifest.encode()).map_err(|e| io(&path, e))?;
        std::fs::rename(&tmp, dir).map_err(|e| io(dir, e))?;
        Ok(manifest)
    }

    /// Starts installing the snapshot `manifest` describes: only over a store whose head
    /// is its genesis block (height 0). In one synced batch, writes the install marker and
    /// removes the genesis state, head and epoch records (the genesis block stays); from
    /// here until [`SnapshotInstall::finish`] the store has no head, and [`Store::open`]
    /// wipes it to empty if the process stops first.
    ///
    /// The manifest's header must already be known good (its finalization certificate
    /// checked by the caller); everything else in it is checked against that header's state
    /// root by [`SnapshotInstall::finish`].
    ///
    /// Errors: [`SnapshotError::BadManifest`] (shape), [`SnapshotError::StoreNotFresh`],
    /// storage errors.
    pub fn begin_snapshot_install(
        &self,
        manifest: SnapshotManifest,
    ) -> Result<SnapshotInstall<'_>, SnapshotError> {
        manifest.check_shape()?;
        let head = self.head()?;
        if head.as_ref().map(|h| h.height) != Some(0) {
            return Err(SnapshotError::StoreNotFresh {
                height: head.map(|h| h.height),
            });
        }
        let mut batch = WriteBatch::default();
        batch.put_cf(
            self.cf(CF_META),
            META_INSTALL,
            manifest.height().to_be_bytes(),
        );
        self.delete_state(&mut batch);
        self.write_synced(batch)?;
        self.reload_cached_state()?;
        let id = manifest.id();
        let count = manifest.chunks.len();
        Ok(SnapshotInstall {
            store: self,
            id,
            received: vec![false; count],
            missing: count,
            lthash: LtHash::zero(),
            governance: None,
            finished: false,
            manifest,
        })
    }

    /// Adds to `batch` the deletion of the state, head, state hash, governance record and
    /// epoch records (not blocks).
    fn delete_state(&self, batch: &mut WriteBatch) {
        let (lo, hi) = ([0u8; 32].to_vec(), vec![0xffu8; 33]);
        batch.delete_range_cf(self.cf(CF_ACCOUNTS), &lo, &hi);
        batch.delete_range_cf(self.cf(CF_PERMISSIONS), &lo, &hi);
        let meta = self.cf(CF_META);
        batch.delete_cf(meta, META_HEAD);
        batch.delete_cf(meta, META_LTHASH);
        batch.delete_cf(meta, META_GOVERNANCE);
        for prefix in [META_EPOCH_PREFIX, META_EPOCH_HEIGHT_PREFIX] {
            let mut end = prefix.to_vec();
            end.extend_from_slice(&[0xff; 9]);
            batch.delete_range_cf(meta, prefix, &end);
        }
    }

    /// Called by [`Store::open`]: if an install was interrupted (the marker is present),
    /// deletes every block, index, certificate, WAL entry and the state and marker, leaving
    /// the store empty (its genesis hash and the caller's metadata kept). Returns whether it
    /// did.
    pub(crate) fn wipe_interrupted_install(&self) -> Result<bool, LedgerError> {
        if self
            .db
            .get_cf(self.cf(CF_META), META_INSTALL)
            .map_err(crate::store::storage)?
            .is_none()
        {
            return Ok(false);
        }
        let mut batch = WriteBatch::default();
        self.delete_state(&mut batch);
        let (lo, hi) = (Vec::<u8>::new(), vec![0xffu8; 64]);
        for cf in [CF_BLOCKS, CF_BLOCK_HASHES, CF_TXS, CF_CERTIFICATES, CF_WAL] {
            batch.delete_range_cf(self.cf(cf), &lo, &hi);
        }
        batch.delete_cf(self.cf(CF_META), META_INSTALL);
        self.write_synced(batch)?;
        Ok(true)
    }
}

/// The address a stored state key (of `accounts` or `permissions`) names.
///
/// Errors: [`LedgerError::Corrupt`] if the key is not 32 bytes.
pub(crate) fn address_key(key: &[u8]) -> Result<Address, LedgerError> {
    Ok(Address(key.try_into().map_err(|_| {
        LedgerError::Corrupt {
            reason: format!("address key of {} bytes", key.len()),
        }
    })?))
}

/// An install in progress ([`Store::begin_snapshot_install`]): add every chunk, verified
/// ([`verify_chunk`]), in any order, then [`Self::finish`]. Dropping it unfinished leaves
/// the install marker, so the store is wiped to empty when it is next opened
/// ([`Self::abort`] does that at once).
pub struct SnapshotInstall<'a> {
    store: &'a Store,
    manifest: SnapshotManifest,
    id: Hash,
    received: Vec<bool>,
    missing: usize,
    lthash: LtHash,
    governance: Option<Governance>,
    finished: bool,
}

impl SnapshotInstall<'_> {
    /// The manifest being installed.
    pub fn manifest(&self) -> &SnapshotManifest {
        &self.manifest
    }

    /// Chunks still missing.
    pub fn missing(&self) -> usize {
        self.missing
    }

    /// Whether chunk `index` is in.
    pub fn has(&self, index: u32) -> bool {
        self.received.get(index as usize).copied().unwrap_or(false)
    }

    /// Writes a verified chunk's entries (one unsynced batch; [`Self::finish`] syncs) and
    /// adds its share to the running state hash.
    ///
    /// Errors: [`SnapshotError::WrongManifest`], [`SnapshotError::DuplicateChunk`]
    /// (nothing written), storage errors.
    ///
    /// # Panics
    /// After [`Self::finish`] succeeded.
    pub fn add_chunk(&mut self, chunk: VerifiedChunk) -> Result<(), SnapshotError> {
        assert!(!self.finished, "add_chunk after the install finished");
        if chunk.manifest != self.id {
            return Err(SnapshotError::WrongManifest { index: chunk.index });
        }
        let slot = &mut self.received[chunk.index as usize];
        if *slot {
            return Err(SnapshotError::DuplicateChunk { index: chunk.index });
        }
        let store = self.store;
        let mut batch = WriteBatch::default();
        for e in chunk.entries {
            match e {
                SnapshotEntry::Account { address, account } => batch.put_cf(
                    store.cf(CF_ACCOUNTS),
                    address.0,
                    borsh::to_vec(&account).expect("borsh to Vec never fails"),
                ),
                SnapshotEntry::Permissions {
                    address,
                    permissions,
                } => batch.put_cf(store.cf(CF_PERMISSIONS), address.0, [permissions.0]),
                SnapshotEntry::Governance(g) => {
                    // Key order puts the single governance key in one chunk only.
                    assert!(self.governance.is_none(), "two governance records");
                    self.governance = Some(g);
                }
            }
        }
        store.db.write(batch).map_err(crate::store::storage)?;
        *slot = true;
        self.missing -= 1;
        self.lthash.add(&chunk.lthash);
        Ok(())
    }

    /// Completes the install: every chunk in, the state's root equal to the header's
    /// `state_root`, and the epoch records consistent with the governance record (the
    /// last record's epoch and set are the record's; no records without one). Then, in
    /// one synced batch: the governance record, epoch records, state hash, head (the
    /// manifest's header), its `certificate` if given, and the marker removed.
    ///
    /// Errors (nothing written): [`SnapshotError::Incomplete`] (add the rest and call it
    /// again); [`SnapshotError::RootMismatch`] and [`SnapshotError::BadManifest`] (the
    /// manifest was wrong: the caller should [`Self::abort`]); storage errors.
    ///
    /// # Panics
    /// If called again after it succeeded.
    pub fn finish(&mut self, certificate: Option<&[u8]>) -> Result<(), SnapshotError> {
        assert!(!self.finished, "the install already finished");
        if self.missing > 0 {
            return Err(SnapshotError::Incomplete {
                missing: self.missing,
            });
        }
        let expected = self.manifest.header.state_root;
        let got = self.lthash.root();
        if got != expected {
            return Err(SnapshotError::RootMismatch { expected, got });
        }
        let consistent = match (&self.governance, self.manifest.epochs.last()) {
            (None, None) => true,
            (Some(g), Some(r)) => r.epoch == g.epoch && r.validators == g.validators,
            _ => false,
        };
        if !consistent {
            return Err(SnapshotError::BadManifest {
                reason: "epoch records disagree with the governance record".into(),
            });
        }
        let store = self.store;
        let meta = store.cf(CF_META);
        let mut batch = WriteBatch::default();
        if let Some(g) = &self.governance {
            batch.put_cf(
                meta,
                META_GOVERNANCE,
                borsh::to_vec(g).expect("borsh to Vec never fails"),
            );
        }
        for r in &self.manifest.epochs {
            crate::store::put_epoch_record(r, &mut batch, meta);
        }
        let header = &self.manifest.header;
        if let Some(cert) = certificate {
            batch.put_cf(store.cf(CF_CERTIFICATES), header.height.to_be_bytes(), cert);
        }
        batch.put_cf(meta, META_LTHASH, self.lthash.to_bytes());
        // No block bodies below the snapshot's next height: advertised like a pruned store.
        store.put_lowest_retained_height(&mut batch, header.height + 1);
        batch.put_cf(
            meta,
            META_HEAD,
            borsh::to_vec(header).expect("borsh to Vec never fails"),
        );
        batch.delete_cf(meta, META_INSTALL);
        store.write_synced(batch)?;
        self.finished = true;
        store.reload_cached_state()?;
        Ok(())
    }

    /// Gives up: wipes the store to empty (no genesis: the caller initialises it again).
    ///
    /// Errors: storage errors.
    ///
    /// # Panics
    /// After [`Self::finish`] succeeded.
    pub fn abort(self) -> Result<(), SnapshotError> {
        assert!(!self.finished, "abort after the install finished");
        self.store.wipe_interrupted_install()?;
        self.store.reload_cached_state()?;
        Ok(())
    }
}
