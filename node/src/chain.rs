//! The node's view of the chain: the finalized ledger in RocksDB plus a bounded tree of
//! blocks that were proposed (and validated) but are not finalized yet.
//!
//! Invariants:
//! - Every pending block descends from the finalized head through pending blocks only, and
//!   was fully validated (header, transactions, state root) before it was inserted.
//! - Finalizing block B commits B's not-yet-finalized ancestors then B, in height order, each
//!   in its own synced `WriteBatch`; afterwards pending blocks that do not descend from the
//!   new head are dropped (they can never be finalized).
//! - Epochs (the consensus crate's `epoch` module, rules E2 and E3): every pending block has
//!   a [`BlockKind`] relative to the running epoch, whose anchor is the previous epoch's
//!   boundary block (or genesis). A child of the anchor or of an ordinary block is
//!   `Boundary` if executing it changed the validator set, else `Ordinary`; a child of a
//!   boundary or suffix block is a `Suffix` block and must be empty (no transactions, so no
//!   state change). Suffix blocks are never committed: the epoch's boundary block is its
//!   last committed block, and [`Chain::start_epoch`] drops them.

use std::collections::HashMap;
use std::sync::Arc;

use cairn_consensus::BlockKind;

use cairn_ledger::{
    Address, Block, BlockBuilder, BlockContext, BlockHeader, BlockLimits, Hash, Layered,
    LedgerError, LtHash, SealedBlock, SignatureCheck, SignedTransaction, StateDiff, StateReader,
    Store, VerifiedTx, txs_root, validate_sealed_block,
};

/// Most pending (validated, not finalized) blocks held. Beyond it new proposals are refused
/// until finalization prunes the tree; in Simplex at most a few views are in flight.
pub const PENDING_BLOCKS_MAX: usize = 256;

/// A validated block awaiting finalization.
#[derive(Clone, Debug)]
pub struct PendingBlock {
    /// The block, sealed (hash and transaction ids computed once, carried to the commit).
    pub block: SealedBlock,
    /// Its hash.
    pub hash: Hash,
    /// The state change it makes on top of its parent.
    pub diff: StateDiff,
    /// What it is in the running epoch (module docs).
    pub kind: BlockKind,
}

/// Why a block cannot be accepted now.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The parent is neither the finalized head nor a pending block.
    #[error("unknown parent {parent} of block {block}")]
    UnknownParent { block: Hash, parent: Hash },
    /// The block is invalid (the proposer's or sender's fault).
    #[error(transparent)]
    Invalid(LedgerError),
    /// Too many pending blocks.
    #[error("pending block limit of {max} reached")]
    PendingFull { max: usize },
    /// The head is its epoch's boundary block: nothing is committed on it before the next
    /// epoch starts ([`Chain::start_epoch`]).
    #[error("block {block} follows its epoch's boundary block: the next epoch has not started")]
    EpochEnded { block: Hash },
    /// Storage failure (fatal).
    #[error("storage: {0}")]
    Storage(LedgerError),
}

/// Finalized ledger plus pending blocks.
pub struct Chain {
    store: Arc<Store>,
    chain_id: String,
    limits: BlockLimits,
    head: BlockHeader,
    head_hash: Hash,
    head_lthash: LtHash,
    /// The running epoch's anchor: children of it start the epoch (module docs).
    epoch_anchor: Hash,
    /// The head's kind in the running epoch (`Ordinary` when it is the anchor).
    head_kind: BlockKind,
    pending: HashMap<Hash, PendingBlock>,
    /// Execution and commit time counters (exported as metrics).
    timings: crate::metrics::BlockTimings,
}

impl Chain {
    /// Opens the chain on an initialized store, in the newest epoch the store records (its
    /// anchor), or epoch 0 anchored at genesis on a chain without governance.
    pub fn open(
        store: Arc<Store>,
        chain_id: String,
        limits: BlockLimits,
    ) -> Result<Chain, LedgerError> {
        let head = store.head()?.ok_or_else(|| LedgerError::Corrupt {
            reason: "store has no genesis block".into(),
        })?;
        let head_lthash = store.lthash()?;
        let head_hash = head.hash();
        let epoch_anchor = match store.epoch_at_height(head.height.saturating_add(1))? {
            Some(record) => record.anchor,
            None => store
                .block_by_height(0)?
                .ok_or_else(|| LedgerError::Corrupt {
                    reason: "store has no genesis block".into(),
                })?
                .hash(),
        };
        Ok(Chain {
            store,
            chain_id,
            limits,
            head,
            head_hash,
            head_lthash,
            epoch_anchor,
            head_kind: BlockKind::Ordinary,
            pending: HashMap::new(),
            timings: crate::metrics::BlockTimings::default(),
        })
    }

    /// Counts block execution and commit time into `timings` (the node's metrics) from now
    /// on.
    pub fn set_timings(&mut self, timings: crate::metrics::BlockTimings) {
        self.timings = timings;
    }

    /// The running epoch's anchor (the previous epoch's boundary block, or genesis).
    pub fn epoch_anchor(&self) -> Hash {
        self.epoch_anchor
    }

    /// Starts a new epoch on the head, which must be the ended epoch's boundary block (or
    /// a block synced past it): its children start the epoch. Drops every pending block
    /// (the ended epoch's suffix blocks and forks: none can be committed any more).
    pub fn start_epoch(&mut self) {
        self.epoch_anchor = self.head_hash;
        self.head_kind = BlockKind::Ordinary;
        self.pending.clear();
    }

    /// The kind of a block (`None` if neither pending nor the head).
    pub fn kind(&self, hash: &Hash) -> Option<BlockKind> {
        if *hash == self.head_hash {
            return Some(self.head_kind);
        }
        self.pending.get(hash).map(|p| p.kind)
    }

    /// True if a child of `parent` must be a suffix block (empty): `parent` is a boundary or
    /// suffix block of the running epoch. `None` if `parent` is unknown.
    pub fn child_is_suffix(&self, parent: &Hash) -> Option<bool> {
        if *parent == self.epoch_anchor {
            return Some(false);
        }
        self.kind(parent).map(|k| k != BlockKind::Ordinary)
    }

    /// The kind of a child of `parent` whose execution gave `diff`.
    fn child_kind(suffix: bool, diff: &StateDiff) -> BlockKind {
        if suffix {
            BlockKind::Suffix
        } else if diff.validators_changed {
            BlockKind::Boundary
        } else {
            BlockKind::Ordinary
        }
    }

    /// The finalized head header.
    pub fn head(&self) -> &BlockHeader {
        &self.head
    }
    /// The finalized head hash.
    pub fn head_hash(&self) -> Hash {
        self.head_hash
    }
    /// The underlying store.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }
    /// Number of pending blocks.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }
    /// A pending block.
    pub fn pending(&self, hash: &Hash) -> Option<&PendingBlock> {
        self.pending.get(hash)
    }

    /// True if `hash` is the head or a pending block (something a child can build on).
    pub fn can_extend(&self, hash: &Hash) -> bool {
        *hash == self.head_hash || self.pending.contains_key(hash)
    }

    /// A block by hash from pending or the store.
    pub fn block(&self, hash: &Hash) -> Result<Option<Block>, LedgerError> {
        if let Some(p) = self.pending.get(hash) {
            return Ok(Some(p.block.block().clone()));
        }
        self.store.block_by_hash(hash)
    }

    /// Pending blocks from the head (exclusive) to `hash` (inclusive), oldest first.
    /// `None` if `hash` does not reach the head through pending blocks.
    fn path_from_head(&self, hash: &Hash) -> Option<Vec<&PendingBlock>> {
        let mut path = Vec::new();
        let mut cur = *hash;
        while cur != self.head_hash {
            let p = self.pending.get(&cur)?;
            path.push(p);
            cur = p.block.header().parent_hash;
            if path.len() > PENDING_BLOCKS_MAX {
                return None;
            }
        }
        path.reverse();
        Some(path)
    }

    /// The header, state hash and layered state reader at `parent`.
    /// Runs `f` on the state a child of `parent` builds on (the store under the diffs of
    /// the pending blocks from the head to `parent`); `None` if `parent` is neither the head
    /// nor a pending descendant of it.
    pub fn with_state_at<R>(
        &self,
        parent: &Hash,
        f: impl FnOnce(&dyn StateReader) -> R,
    ) -> Option<R> {
        let (_, _, state) = self.state_at(parent)?;
        Some(f(&state))
    }

    fn state_at(&self, parent: &Hash) -> Option<(BlockHeader, LtHash, Layered<'_>)> {
        let path = self.path_from_head(parent)?;
        let (header, lthash) = match path.last() {
            Some(p) => (p.block.header().clone(), p.diff.lthash.clone()),
            None => (self.head.clone(), self.head_lthash.clone()),
        };
        let layered = Layered {
            base: self.store.as_ref() as &dyn StateReader,
            diffs: path.iter().map(|p| &p.diff).collect(),
        };
        Some((header, lthash, layered))
    }

    /// Reads an account at the tip of `parent`'s branch (finalized state if `parent` is the head).
    pub fn account_at(
        &self,
        parent: &Hash,
        address: &Address,
    ) -> Result<Option<cairn_ledger::Account>, LedgerError> {
        match self.state_at(parent) {
            Some((_, _, state)) => state.account(address).map(Some),
            None => Ok(None),
        }
    }

    /// The block limits in force for a child of `parent` (its state's governed limits,
    /// capped by the genesis ones: [`BlockLimits::at`]); `None` if `parent` is not the head
    /// or a pending block descending from it.
    pub fn limits_at(&self, parent: &Hash) -> Result<Option<BlockLimits>, LedgerError> {
        match self.state_at(parent) {
            Some((_, _, state)) => self.limits.at(&state).map(Some),
            None => Ok(None),
        }
    }

    /// Builds a block on `parent` with transactions chosen by `pick`, executes it, inserts it
    /// as pending and returns it. `pick` gets a builder positioned on the parent state and
    /// returns the transactions it applied, in order. Hashes every transaction (for tests
    /// and tools that hold plain transactions); the node's leader uses
    /// [`Self::build_verified`].
    pub fn build(
        &mut self,
        parent: &Hash,
        view: u64,
        proposer: Address,
        timestamp_ms: u64,
        pick: impl FnOnce(&mut BlockBuilder<'_>) -> Vec<SignedTransaction>,
    ) -> Result<Block, ChainError> {
        let sealed = self.build_with(
            parent,
            view,
            proposer,
            timestamp_ms,
            pick,
            |mut header, transactions| {
                let hashes: Vec<Hash> = transactions.iter().map(|t| t.hash()).collect();
                header.txs_root = txs_root(&hashes);
                header.signed_txs_root = cairn_ledger::signed_txs_root_of(&transactions);
                SealedBlock::seal(Block {
                    header,
                    transactions,
                })
                .expect("a block built here matches its roots")
            },
        )?;
        Ok(sealed.into_block())
    }

    /// The leader's [`Self::build`]: `pick` returns transactions whose signatures this node
    /// checked ([`VerifiedTx`], as the mempool holds them), so the block is assembled from
    /// the hashes they carry ([`SealedBlock::assemble`]): no transaction is hashed, the
    /// header once. Inserts it as pending and returns it, sealed.
    pub fn build_verified(
        &mut self,
        parent: &Hash,
        view: u64,
        proposer: Address,
        timestamp_ms: u64,
        pick: impl FnOnce(&mut BlockBuilder<'_>) -> Vec<VerifiedTx>,
    ) -> Result<SealedBlock, ChainError> {
        self.build_with(
            parent,
            view,
            proposer,
            timestamp_ms,
            pick,
            SealedBlock::assemble,
        )
    }

    /// The shared body of [`Self::build`] and [`Self::build_verified`]: executes what `pick`
    /// applies on `parent`'s state, makes the header (both transaction roots left zero for
    /// `seal`, which sets them from the transactions and seals the block), inserts the block
    /// as pending and returns it.
    fn build_with<T>(
        &mut self,
        parent: &Hash,
        view: u64,
        proposer: Address,
        timestamp_ms: u64,
        pick: impl FnOnce(&mut BlockBuilder<'_>) -> Vec<T>,
        seal: impl FnOnce(BlockHeader, Vec<T>) -> SealedBlock,
    ) -> Result<SealedBlock, ChainError> {
        if self.pending.len() >= PENDING_BLOCKS_MAX {
            return Err(ChainError::PendingFull {
                max: PENDING_BLOCKS_MAX,
            });
        }
        let (parent_header, lthash, state) =
            self.state_at(parent).ok_or(ChainError::UnknownParent {
                block: Hash::ZERO,
                parent: *parent,
            })?;
        let height = parent_header.height + 1;
        let ctx = BlockContext {
            chain_id: self.chain_id.clone(),
            height,
            proposer,
        };
        let suffix = self.child_is_suffix(parent) == Some(true);
        let execute_started = std::time::Instant::now();
        let mut builder = BlockBuilder::new(&state, lthash, ctx);
        // A suffix block is empty (E2): nothing is picked.
        let transactions = if suffix {
            Vec::new()
        } else {
            pick(&mut builder)
        };
        let diff = builder.finish();
        self.timings.executed(execute_started.elapsed());
        let kind = Self::child_kind(suffix, &diff);
        let header = BlockHeader {
            chain_id: self.chain_id.clone(),
            height,
            view,
            parent_hash: *parent,
            proposer,
            timestamp_ms: timestamp_ms.max(parent_header.timestamp_ms),
            // Both roots are set by `seal` from the transactions.
            txs_root: Hash::ZERO,
            signed_txs_root: Hash::ZERO,
            state_root: diff.state_root(),
        };
        drop(state);
        let sealed = seal(header, transactions);
        let hash = sealed.hash();
        self.pending.insert(
            hash,
            PendingBlock {
                block: sealed.clone(),
                hash,
                diff,
                kind,
            },
        );
        Ok(sealed)
    }

    /// Validates `block` against its parent (which must be the head or pending) and inserts it
    /// as pending. Idempotent for a block already pending. `verified` reports transactions
    /// whose signature this node already checked (they are not checked again): given the
    /// id and the transaction, it must match the signature bytes too (see
    /// `SignatureCheck::SkipVerified`).
    pub fn insert(
        &mut self,
        block: SealedBlock,
        verified: &dyn Fn(&Hash, &SignedTransaction) -> bool,
    ) -> Result<Hash, ChainError> {
        let hash = block.hash();
        if self.pending.contains_key(&hash) {
            return Ok(hash);
        }
        if self.pending.len() >= PENDING_BLOCKS_MAX {
            return Err(ChainError::PendingFull {
                max: PENDING_BLOCKS_MAX,
            });
        }
        let parent = block.header().parent_hash;
        let suffix = self.child_is_suffix(&parent) == Some(true);
        if suffix && !block.block().transactions.is_empty() {
            return Err(ChainError::Invalid(LedgerError::InvalidBlock {
                block: hash,
                height: block.header().height,
                reason: "a block after its epoch's boundary block must be empty".into(),
            }));
        }
        let diff = {
            let (parent_header, lthash, state) =
                self.state_at(&parent).ok_or(ChainError::UnknownParent {
                    block: hash,
                    parent,
                })?;
            if block.header().timestamp_ms < parent_header.timestamp_ms {
                return Err(ChainError::Invalid(LedgerError::InvalidBlock {
                    block: hash,
                    height: block.header().height,
                    reason: "timestamp earlier than parent's".into(),
                }));
            }
            let execute_started = std::time::Instant::now();
            self.prefetch_accounts(&block);
            let diff = validate_sealed_block(
                &parent_header,
                &state,
                lthash,
                &block,
                &self.limits,
                SignatureCheck::SkipVerified(verified),
            )
            .map_err(ChainError::Invalid)?;
            self.timings.executed(execute_started.elapsed());
            diff
        };
        let kind = Self::child_kind(suffix, &diff);
        self.pending.insert(
            hash,
            PendingBlock {
                block,
                hash,
                diff,
                kind,
            },
        );
        Ok(hash)
    }

    /// Commits `hash` and its pending ancestors. `certificate` (if any) is stored with
    /// `hash` only. Returns the committed blocks, oldest first. `Err(UnknownParent)` if the
    /// branch does not reach the head (the caller syncs).
    ///
    /// # Panics
    /// A suffix block on the path: they are never committed (module docs).
    pub fn finalize(
        &mut self,
        hash: &Hash,
        certificate: Option<&[u8]>,
    ) -> Result<Vec<SealedBlock>, ChainError> {
        if self
            .store
            .height_of(hash)
            .map_err(ChainError::Storage)?
            .is_some()
        {
            return Ok(Vec::new());
        }
        let path: Vec<Hash> = self
            .path_from_head(hash)
            .ok_or(ChainError::UnknownParent {
                block: *hash,
                parent: Hash::ZERO,
            })?
            .iter()
            .map(|p| p.hash)
            .collect();
        let mut committed = Vec::with_capacity(path.len());
        for h in path {
            let p = self.pending.remove(&h).expect("path holds pending blocks");
            assert_ne!(
                p.kind,
                BlockKind::Suffix,
                "suffix blocks are never committed"
            );
            let cert = if h == *hash { certificate } else { None };
            let commit_started = std::time::Instant::now();
            self.store
                .commit_sealed(&p.block, &p.diff, cert)
                .map_err(ChainError::Storage)?;
            self.timings.committed(commit_started.elapsed());
            self.head = p.block.header().clone();
            self.head_hash = h;
            self.head_lthash = p.diff.lthash.clone();
            self.head_kind = p.kind;
            committed.push(p.block);
        }
        self.prune();
        Ok(committed)
    }

    /// Validates `block` as the child of the head and commits it (block sync path).
    /// Reads the committed accounts `block`'s transfers touch into the store's cache in one
    /// batched read (a quarter cheaper per account than one read each on a large state,
    /// docs/scaling.md). Usually they are there already (the verifier warmed them when the
    /// transactions arrived); a block fetched whole or synced brings transactions this
    /// node never verified. A failed read is only logged: execution reads again, and
    /// reports it.
    fn prefetch_accounts(&self, block: &SealedBlock) {
        let addresses: Vec<cairn_ledger::Address> = block
            .block()
            .transactions
            .iter()
            .flat_map(|tx| tx.body.touched_accounts())
            .collect();
        if let Err(e) = self.store.prefetch_accounts(&addresses) {
            tracing::debug!(error = %e, "account prefetch failed");
        }
    }

    /// `verified` as for [`Self::insert`].
    pub fn commit_next(
        &mut self,
        block: SealedBlock,
        certificate: Option<&[u8]>,
        verified: &dyn Fn(&Hash, &SignedTransaction) -> bool,
    ) -> Result<(), ChainError> {
        let hash = block.hash();
        if block.header().parent_hash != self.head_hash {
            return Err(ChainError::UnknownParent {
                block: hash,
                parent: block.header().parent_hash,
            });
        }
        if self.child_is_suffix(&self.head_hash) == Some(true) {
            // The head is the epoch's boundary: the caller starts the next epoch first.
            return Err(ChainError::EpochEnded { block: hash });
        }
        let diff = match self.pending.remove(&hash) {
            Some(p) => p.diff,
            None => {
                let execute_started = std::time::Instant::now();
                self.prefetch_accounts(&block);
                let diff = validate_sealed_block(
                    &self.head,
                    self.store.as_ref(),
                    self.head_lthash.clone(),
                    &block,
                    &self.limits,
                    SignatureCheck::SkipVerified(verified),
                )
                .map_err(ChainError::Invalid)?;
                self.timings.executed(execute_started.elapsed());
                diff
            }
        };
        let commit_started = std::time::Instant::now();
        self.store
            .commit_sealed(&block, &diff, certificate)
            .map_err(ChainError::Storage)?;
        self.timings.committed(commit_started.elapsed());
        self.head = block.header().clone();
        self.head_hash = hash;
        self.head_kind = Self::child_kind(false, &diff);
        self.head_lthash = diff.lthash;
        self.prune();
        Ok(())
    }

    /// Drops pending blocks that no longer descend from the head.
    fn prune(&mut self) {
        let keep: Vec<Hash> = self
            .pending
            .keys()
            .filter(|h| self.path_from_head(h).is_some())
            .copied()
            .collect();
        self.pending.retain(|h, _| keep.contains(h));
    }
}
