//! Compact blocks: the payload of the `/cairn/{namespace}/block/4` topic, and their
//! reassembly from transactions this node already holds.
//!
//! A proposal's transactions reached every validator by transaction gossip before the
//! proposal did (the leader flushes its gossip outbox right before publishing), so
//! re-sending their bodies with the block would carry each transaction over every link twice.
//! The leader gossips a [`CompactBlock`] instead: the header and the transaction hashes in
//! block order, 32 bytes per transaction instead of about 150 (the idea of Bitcoin's BIP 152
//! compact blocks, without short ids: full hashes cost little here and cannot collide).
//!
//! A receiver rebuilds the block from its mempool ([`PartialBlocks::insert`]). Transactions it
//! lacks (still in signature verification, dropped under overload, or refused by a full
//! mempool) are waited for: every transaction that passes verification is offered to the
//! waiting blocks ([`PartialBlocks::offer`]). A block still incomplete after
//! [`PARTIAL_WAIT_MS`] (or, while every transaction it lacks is still in this node's
//! signature-check queue, up to [`PARTIAL_WAIT_VERIFYING_MS_MAX`]: under load the queue
//! delivers them sooner than a fetch would, and without checking them twice) has its
//! missing transactions fetched by index
//! ([`crate::sync::SyncRequest::BlockTransactions`], at most [`TX_FETCH_MAX`]) from the
//! proposer, which surely holds the block (any peer if the proposer is not connected); a
//! block missing more, or whose fetch fails, is fetched whole by hash, as before compact
//! blocks.
//!
//! Wire format: `borsh(CompactBlock)` (the epoch first, then header, hashes and leader vote), at most the genesis `block_bytes_max` bytes (checked
//! before decoding; a valid block's compact form is always smaller than the block), at most
//! `block_txs_max` hashes, no hash twice (such a block could never execute: the second copy
//! fails its nonce), and the hashes' Merkle root must equal `header.txs_root`. A compact
//! block failing any of these is the sender's fault.
//!
//! **Authentication.** Gossip is unsigned, so a compact block carries the leader's signed
//! Notarize vote for it (`leader_vote`: in Simplex that vote *is* the proposal). The vote
//! must name the header's view, parent and hash ([`CompactBlock::decode`]) and be signed by
//! the view's leader ([`CompactBlock::verify_leader`]) before a node keeps the block, feeds
//! it to reassembly or forwards it; anything else is a forgery and the sender's fault. So no
//! peer but the leader of a view can make honest nodes hold or relay a block for that view.
//!
//! **Rebuilt bodies are not verdicts.** A block rebuilt from the mempool or completed with
//! fetched transactions carries the transactions' ids the header commits to, but maybe not
//! the signature bytes the leader chose (a sender can sign one body twice; a responder can
//! mangle a signature). The caller checks the whole body against the header
//! ([`cairn_ledger::Block::check_body`]) and fetches the block whole if it differs.
//!
//! Bounds: at most [`PARTIAL_BLOCKS_MAX`] blocks wait at once (the oldest is dropped for a
//! new one), at most [`PARTIAL_BLOCKS_PER_VIEW_MAX`] of one view; each holds at most
//! `block_txs_max` transactions. Only blocks signed by their view's leader get here.

use std::collections::{HashMap, VecDeque};

use borsh::{BorshDeserialize, BorshSerialize};
use cairn_consensus::{Digest, ValidatorIndex, ValidatorSet, Vote, VoteKind};
use cairn_ledger::{
    Block, BlockHeader, Hash, LedgerError, SealedBlock, SignedTransaction, VerifiedTx, txs_root,
};

/// Most blocks waiting for transactions at once.
pub const PARTIAL_BLOCKS_MAX: usize = 16;

/// Most blocks of one view waiting at once. An honest leader proposes one block per view;
/// the bound keeps an equivocating leader (who can sign many) from evicting other views'
/// blocks.
pub const PARTIAL_BLOCKS_PER_VIEW_MAX: usize = 2;

/// How long a block waits for its missing transactions to arrive by gossip before they are
/// fetched, ms. Long enough for a gossip batch to clear the verifier's linger and a batch
/// verification under load; short next to the 300 ms after which a proposal body is fetched
/// whole.
pub const PARTIAL_WAIT_MS: u64 = 60;

/// Longest a block waits, ms since it arrived, while every transaction it lacks is still in
/// this node's signature-check queue (gossiped to it, verdict not yet back): fetching those
/// would check their signatures a second time on the view's critical path, where under load
/// the queue is a few tens of ms from delivering them. Short of the 300 ms after which a
/// proposal body is fetched whole.
pub const PARTIAL_WAIT_VERIFYING_MS_MAX: u64 = 250;

/// While a block is held back that way, how often it is looked at again, ms.
pub const PARTIAL_RECHECK_MS: u64 = 20;

/// Most transactions fetched by index in one request; a block missing more is fetched whole.
pub const TX_FETCH_MAX: usize = 1024;

/// A block as gossiped: the header, its transactions' hashes in block order, and the
/// leader's signed proposal for it.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct CompactBlock {
    /// The epoch the block is proposed in: its leader vote verifies under that epoch's
    /// namespace and set only (`cairn_consensus::epoch`).
    pub epoch: u64,
    /// The block header (its hash is the block hash).
    pub header: BlockHeader,
    /// `SignedTransaction::hash` of each transaction, in block order.
    pub tx_hashes: Vec<Hash>,
    /// The leader's Notarize vote for this block: `Notarize(Proposal { view: header.view,
    /// parent: header.parent_hash, payload: header hash, .. })`, signed by the leader of
    /// `header.view` (checked by [`CompactBlock::verify_leader`]).
    pub leader_vote: Vote,
}

/// Why a compact block is refused. Every variant is the sender's fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompactBlockError {
    /// Longer than the genesis `block_bytes_max`.
    #[error("compact block of {len} bytes exceeds {max}")]
    Oversize {
        /// Bytes received.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// Does not decode (or has bytes after the end).
    #[error("malformed compact block: {reason}")]
    Malformed {
        /// The decoder's message.
        reason: String,
    },
    /// More hashes than the genesis `block_txs_max`.
    #[error("compact block lists {count} transactions, more than {max}")]
    TooManyTxs {
        /// Hashes listed.
        count: usize,
        /// The bound.
        max: usize,
    },
    /// A transaction hash is listed twice.
    #[error("compact block lists transaction {hash} twice (again at index {index})")]
    DuplicateTx {
        /// The repeated hash.
        hash: Hash,
        /// Position of the second copy.
        index: usize,
    },
    /// The carried vote is not a Notarize vote for this header (view, parent and hash).
    #[error("compact block's leader vote does not propose this block: {reason}")]
    ProposalMismatch {
        /// What differs.
        reason: String,
    },
    /// The carried vote is not signed by the view's leader.
    #[error("compact block for view {view} is not signed by its leader: {reason}")]
    ForgedProposal {
        /// The header's view.
        view: u64,
        /// Wrong signer or bad signature.
        reason: String,
    },
    /// The hashes do not have the header's `txs_root`.
    #[error("compact block hashes have root {computed}, header says {header}")]
    RootMismatch {
        /// Merkle root of the listed hashes.
        computed: Hash,
        /// `header.txs_root`.
        header: Hash,
    },
}

impl CompactBlock {
    /// The compact form of `block` (hashes every transaction) proposed in epoch 0, carrying
    /// `leader_vote`, the proposer's Notarize vote for it (tests and tools; the node uses
    /// [`Self::of_sealed`]).
    pub fn of(block: &Block, leader_vote: Vote) -> CompactBlock {
        CompactBlock {
            epoch: 0,
            header: block.header.clone(),
            tx_hashes: block.transactions.iter().map(|t| t.hash()).collect(),
            leader_vote,
        }
    }

    /// The compact form of a sealed block proposed in `epoch`, from the transaction ids it
    /// carries (no transaction is hashed), carrying `leader_vote`.
    pub fn of_sealed(epoch: u64, block: &SealedBlock, leader_vote: Vote) -> CompactBlock {
        CompactBlock {
            epoch,
            header: block.header().clone(),
            tx_hashes: block.tx_ids().to_vec(),
            leader_vote,
        }
    }

    /// Checks that [`Self::leader_vote`] is signed by validator `leader` (the leader of
    /// `header.view`) under `namespace`. One ed25519 verification.
    ///
    /// # Errors
    /// [`CompactBlockError::ForgedProposal`]: another signer, or a bad signature; always the
    /// sender's fault.
    pub fn verify_leader(
        &self,
        namespace: &[u8; 32],
        validators: &ValidatorSet,
        leader: ValidatorIndex,
    ) -> Result<(), CompactBlockError> {
        let forged = |reason: String| CompactBlockError::ForgedProposal {
            view: self.header.view,
            reason,
        };
        if self.leader_vote.signer != leader {
            return Err(forged(format!(
                "signed by validator {}, the leader is {leader}",
                self.leader_vote.signer
            )));
        }
        self.leader_vote
            .verify(namespace, validators)
            .map_err(|e| forged(e.to_string()))
    }

    /// Borsh bytes.
    pub fn encode(&self) -> Vec<u8> {
        borsh::to_vec(self).expect("borsh to Vec never fails")
    }

    /// Decodes and checks a gossiped compact block: at most `bytes_max` bytes (before
    /// decoding), at most `txs_max` hashes, no hash twice, Merkle root equal to
    /// `header.txs_root`, and a leader vote that proposes exactly this header (its
    /// signature is checked by [`Self::verify_leader`], which needs the validator set).
    ///
    /// # Errors
    /// [`CompactBlockError`], always the sender's fault.
    pub fn decode(
        bytes: &[u8],
        bytes_max: usize,
        txs_max: usize,
    ) -> Result<CompactBlock, CompactBlockError> {
        if bytes.len() > bytes_max {
            return Err(CompactBlockError::Oversize {
                len: bytes.len(),
                max: bytes_max,
            });
        }
        let compact: CompactBlock =
            borsh::from_slice(bytes).map_err(|e| CompactBlockError::Malformed {
                reason: e.to_string(),
            })?;
        if compact.tx_hashes.len() > txs_max {
            return Err(CompactBlockError::TooManyTxs {
                count: compact.tx_hashes.len(),
                max: txs_max,
            });
        }
        let header_hash = compact.header.hash();
        match &compact.leader_vote.kind {
            VoteKind::Notarize(p)
                if p.view == compact.header.view
                    && p.parent == Digest(compact.header.parent_hash.0)
                    && p.payload == Digest(header_hash.0) => {}
            VoteKind::Notarize(p) => {
                return Err(CompactBlockError::ProposalMismatch {
                    reason: format!(
                        "vote for view {} payload {}, block is view {} hash {header_hash}",
                        p.view,
                        Hash(p.payload.0),
                        compact.header.view
                    ),
                });
            }
            other => {
                return Err(CompactBlockError::ProposalMismatch {
                    reason: format!("a {other:?} vote, not Notarize"),
                });
            }
        }
        let mut seen = std::collections::HashSet::with_capacity(compact.tx_hashes.len());
        for (index, h) in compact.tx_hashes.iter().enumerate() {
            if !seen.insert(*h) {
                return Err(CompactBlockError::DuplicateTx { hash: *h, index });
            }
        }
        let computed = txs_root(&compact.tx_hashes);
        if computed != compact.header.txs_root {
            return Err(CompactBlockError::RootMismatch {
                computed,
                header: compact.header.txs_root,
            });
        }
        Ok(compact)
    }
}

/// A transaction at one position of a block being rebuilt.
#[derive(Debug, Clone)]
enum Held {
    /// From this node's mempool or its verifier: signature checked, hashes carried.
    Verified(VerifiedTx),
    /// Fetched from a peer (`BlockTransactions`): neither verified nor hashed beyond the
    /// id check of [`PartialBlocks::fill`].
    Fetched(SignedTransaction),
}

impl Held {
    fn into_tx(self) -> SignedTransaction {
        match self {
            Held::Verified(t) => t.into_tx(),
            Held::Fetched(t) => t,
        }
    }
}

/// A block rebuilt from a compact block: the leader-signed header and every transaction,
/// not yet checked against the header's roots. [`RebuiltBlock::seal`] checks it.
#[derive(Debug, Clone)]
pub struct RebuiltBlock {
    header: BlockHeader,
    txs: Vec<Held>,
}

impl RebuiltBlock {
    /// The header.
    pub fn header(&self) -> &BlockHeader {
        &self.header
    }

    /// Checks the body against the header's roots and seals it. If every transaction came
    /// from this node's mempool or verifier ([`VerifiedTx`]), their carried hashes are used
    /// ([`SealedBlock::reassemble`]: no transaction is hashed); otherwise (some were
    /// fetched) the block is sealed from scratch ([`SealedBlock::seal`]).
    ///
    /// # Errors
    /// [`LedgerError::BodyMismatch`]: the transactions are not the body the header commits
    /// to (e.g. this node holds other signature bytes for one of them).
    pub fn seal(self) -> Result<SealedBlock, LedgerError> {
        if self.txs.iter().all(|t| matches!(t, Held::Verified(_))) {
            let txs = self
                .txs
                .into_iter()
                .map(|t| match t {
                    Held::Verified(v) => v,
                    Held::Fetched(_) => unreachable!("checked above"),
                })
                .collect();
            SealedBlock::reassemble(self.header, txs)
        } else {
            SealedBlock::seal(self.into_block())
        }
    }

    /// The block, unchecked.
    pub fn into_block(self) -> Block {
        Block {
            header: self.header,
            transactions: self.txs.into_iter().map(Held::into_tx).collect(),
        }
    }
}

/// A compact block waiting for some of its transactions.
#[derive(Debug)]
struct Partial {
    header: BlockHeader,
    tx_hashes: Vec<Hash>,
    /// Transactions by position; `None` while missing.
    txs: Vec<Option<Held>>,
    /// Missing transaction hash → its position (hashes are distinct: checked at decode).
    missing: HashMap<Hash, usize>,
    /// When it started waiting (ms, caller's clock).
    since_ms: u64,
    /// Whether its missing transactions were already requested.
    requested: bool,
    /// Not requested before this time (ms, caller's clock): set while every missing
    /// transaction is in signature verification ([`PartialBlocks::due`]).
    deferred_until_ms: u64,
}

impl Partial {
    fn complete(self) -> RebuiltBlock {
        assert!(
            self.missing.is_empty(),
            "completing a block with missing transactions"
        );
        RebuiltBlock {
            header: self.header,
            txs: self
                .txs
                .into_iter()
                .map(|t| t.expect("no transaction missing"))
                .collect(),
        }
    }
}

/// What [`PartialBlocks::insert`] did with a compact block.
#[derive(Debug)]
pub enum Reassembly {
    /// Every transaction was at hand: the whole block (to be sealed; boxed, as it is far
    /// larger than the other variants).
    Complete(Box<RebuiltBlock>),
    /// Waiting for this many transactions.
    Waiting {
        /// Transactions still missing.
        missing: usize,
    },
    /// Already waiting (a second copy of the same block).
    AlreadyWaiting,
    /// [`PARTIAL_BLOCKS_PER_VIEW_MAX`] other blocks of the same view wait already (only an
    /// equivocating leader signs more than one): not kept.
    ViewFull,
}

/// A request for the missing transactions of a waiting block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MissingRequest {
    /// Fetch these positions (at most [`TX_FETCH_MAX`], ascending) of block `block`.
    Transactions {
        /// The block hash.
        block: Hash,
        /// The view it was proposed in (its leader surely holds it).
        view: u64,
        /// Positions of the missing transactions.
        indices: Vec<u32>,
    },
    /// Too many are missing: fetch block `block` whole.
    Block {
        /// The block hash.
        block: Hash,
        /// The view it was proposed in.
        view: u64,
    },
}

/// Compact blocks waiting for transactions, at most [`PARTIAL_BLOCKS_MAX`], oldest dropped
/// first. Pure state: the caller supplies the clock and performs the fetches.
#[derive(Debug, Default)]
pub struct PartialBlocks {
    blocks: HashMap<Hash, Partial>,
    order: VecDeque<Hash>,
}

impl PartialBlocks {
    /// An empty set.
    pub fn new() -> PartialBlocks {
        PartialBlocks::default()
    }

    /// Blocks waiting.
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    /// True if no block waits.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// True if block `hash` waits for transactions.
    pub fn contains(&self, hash: &Hash) -> bool {
        self.blocks.contains_key(hash)
    }

    /// Rebuilds `compact` (already checked by [`CompactBlock::decode`]) from the
    /// transactions `held` returns; if some are missing, it waits (dropping the oldest
    /// waiting block if [`PARTIAL_BLOCKS_MAX`] wait already).
    pub fn insert(
        &mut self,
        compact: CompactBlock,
        held: impl Fn(&Hash) -> Option<VerifiedTx>,
        now_ms: u64,
    ) -> Reassembly {
        let hash = compact.header.hash();
        if self.blocks.contains_key(&hash) {
            return Reassembly::AlreadyWaiting;
        }
        let view = compact.header.view;
        let same_view = self
            .blocks
            .values()
            .filter(|p| p.header.view == view)
            .count();
        let mut txs = Vec::with_capacity(compact.tx_hashes.len());
        let mut missing = HashMap::new();
        for (i, h) in compact.tx_hashes.iter().enumerate() {
            let tx = held(h);
            if tx.is_none() {
                missing.insert(*h, i);
            }
            txs.push(tx.map(Held::Verified));
        }
        let partial = Partial {
            header: compact.header,
            tx_hashes: compact.tx_hashes,
            txs,
            missing,
            since_ms: now_ms,
            requested: false,
            deferred_until_ms: 0,
        };
        if partial.missing.is_empty() {
            return Reassembly::Complete(Box::new(partial.complete()));
        }
        if same_view >= PARTIAL_BLOCKS_PER_VIEW_MAX {
            return Reassembly::ViewFull;
        }
        let missing = partial.missing.len();
        while self.blocks.len() >= PARTIAL_BLOCKS_MAX {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            self.blocks.remove(&old);
        }
        self.blocks.insert(hash, partial);
        self.order.push_back(hash);
        Reassembly::Waiting { missing }
    }

    /// Offers transactions whose signatures this node verified; returns the blocks they
    /// completed.
    pub fn offer<'a>(
        &mut self,
        txs: impl IntoIterator<Item = &'a VerifiedTx>,
    ) -> Vec<RebuiltBlock> {
        if self.blocks.is_empty() {
            return Vec::new();
        }
        for tx in txs {
            for p in self.blocks.values_mut() {
                if let Some(i) = p.missing.remove(&tx.id()) {
                    p.txs[i] = Some(Held::Verified(tx.clone()));
                }
            }
        }
        self.take_complete()
    }

    /// Fills block `block`'s positions `indices` with fetched `txs` (same order). Returns the
    /// block if that completed it. Nothing changes unless every transaction has the hash
    /// listed at its position.
    ///
    /// # Errors
    /// `Err(reason)` if the response does not match the request (the responder's fault).
    pub fn fill(
        &mut self,
        block: &Hash,
        indices: &[u32],
        txs: Vec<SignedTransaction>,
    ) -> Result<Option<RebuiltBlock>, String> {
        let Some(p) = self.blocks.get_mut(block) else {
            return Ok(None); // completed or dropped meanwhile
        };
        if txs.len() != indices.len() {
            return Err(format!(
                "{} transactions for {} positions",
                txs.len(),
                indices.len()
            ));
        }
        for (&i, tx) in indices.iter().zip(&txs) {
            match p.tx_hashes.get(i as usize) {
                Some(h) if *h == tx.hash() => {}
                _ => return Err(format!("transaction at position {i} does not match")),
            }
        }
        for (i, tx) in indices.iter().zip(txs) {
            let h = p.tx_hashes[*i as usize];
            if p.missing.remove(&h).is_some() {
                p.txs[*i as usize] = Some(Held::Fetched(tx));
            }
        }
        Ok(self.take_complete().pop())
    }

    /// Requests for blocks that have waited at least `wait_ms` and not been requested yet
    /// (each block is requested once; a failed request is covered by the whole-block fetch
    /// of a proposal body that has not arrived). A block whose every missing transaction is
    /// `verifying` (in this node's signature-check queue) is held back, looked at again
    /// every [`PARTIAL_RECHECK_MS`], until [`PARTIAL_WAIT_VERIFYING_MS_MAX`] after it
    /// arrived.
    pub fn due(
        &mut self,
        now_ms: u64,
        wait_ms: u64,
        verifying: impl Fn(&Hash) -> bool,
    ) -> Vec<MissingRequest> {
        let mut out = Vec::new();
        for hash in &self.order {
            let p = self.blocks.get_mut(hash).expect("order and map agree");
            let waited_ms = now_ms.saturating_sub(p.since_ms);
            if p.requested || waited_ms < wait_ms || now_ms < p.deferred_until_ms {
                continue;
            }
            if waited_ms < PARTIAL_WAIT_VERIFYING_MS_MAX && p.missing.keys().all(&verifying) {
                p.deferred_until_ms = now_ms
                    .saturating_add(PARTIAL_RECHECK_MS)
                    .min(p.since_ms.saturating_add(PARTIAL_WAIT_VERIFYING_MS_MAX));
                continue;
            }
            p.requested = true;
            if p.missing.len() > TX_FETCH_MAX {
                out.push(MissingRequest::Block {
                    block: *hash,
                    view: p.header.view,
                });
            } else {
                let mut indices: Vec<u32> = p.missing.values().map(|&i| i as u32).collect();
                indices.sort_unstable();
                out.push(MissingRequest::Transactions {
                    block: *hash,
                    view: p.header.view,
                    indices,
                });
            }
        }
        out
    }

    /// When (ms, caller's clock) the next block not yet requested has waited `wait_ms`;
    /// `None` if none waits unrequested.
    pub fn next_due_ms(&self, wait_ms: u64) -> Option<u64> {
        self.blocks
            .values()
            .filter(|p| !p.requested)
            .map(|p| p.since_ms.saturating_add(wait_ms).max(p.deferred_until_ms))
            .min()
    }

    /// Forgets block `hash` (e.g. it arrived whole).
    pub fn remove(&mut self, hash: &Hash) {
        if self.blocks.remove(hash).is_some() {
            self.order.retain(|h| h != hash);
        }
    }

    /// Forgets blocks at or below `height` (finalized or orphaned).
    pub fn prune(&mut self, height: u64) {
        self.blocks.retain(|_, p| p.header.height > height);
        let blocks = &self.blocks;
        self.order.retain(|h| blocks.contains_key(h));
    }

    fn take_complete(&mut self) -> Vec<RebuiltBlock> {
        let done: Vec<Hash> = self
            .order
            .iter()
            .filter(|h| self.blocks[*h].missing.is_empty())
            .copied()
            .collect();
        if done.is_empty() {
            return Vec::new();
        }
        self.order.retain(|h| !done.contains(h));
        done.iter()
            .map(|h| self.blocks.remove(h).expect("listed").complete())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_ledger::{Address, TransactionBody};
    use ed25519_dalek::SigningKey;

    fn transfers(n: u64) -> Vec<SignedTransaction> {
        let key = SigningKey::from_bytes(&[7; 32]);
        (0..n)
            .map(|nonce| {
                TransactionBody {
                    chain_id: "cairn-compact-test".into(),
                    sender: Address::from_public_key(&key.verifying_key()),
                    fee: 1,
                    nonce,
                    expiry_height: 50,
                    action: cairn_ledger::Action::Transfer {
                        recipient: Address([9; 32]),
                        amount: 1,
                    },
                }
                .sign(&key)
            })
            .collect()
    }

    fn block(txs: Vec<SignedTransaction>, height: u64) -> Block {
        let hashes: Vec<Hash> = txs.iter().map(|t| t.hash()).collect();
        Block {
            header: BlockHeader {
                chain_id: "cairn-compact-test".into(),
                height,
                view: height,
                parent_hash: Hash([1; 32]),
                proposer: Address([2; 32]),
                timestamp_ms: 5,
                txs_root: txs_root(&hashes),
                signed_txs_root: cairn_ledger::signed_txs_root_of(&txs),
                state_root: Hash([3; 32]),
            },
            transactions: txs,
        }
    }

    /// The test namespace and its one validator's key (index 0).
    const NAMESPACE: [u8; 32] = [5; 32];
    fn leader_key() -> SigningKey {
        SigningKey::from_bytes(&[11; 32])
    }
    fn validators() -> ValidatorSet {
        let v = |key: SigningKey| cairn_consensus::Validator {
            public_key: key.verifying_key(),
            voting_power: 1,
        };
        ValidatorSet::new(vec![v(leader_key()), v(SigningKey::from_bytes(&[12; 32]))]).unwrap()
    }

    /// Validator `signer`'s Notarize vote for `b` (index 0 holds [`leader_key`]).
    fn vote_by(b: &Block, signer: ValidatorIndex, key: &SigningKey) -> Vote {
        let kind = VoteKind::Notarize(cairn_consensus::Proposal {
            view: b.header.view,
            parent_view: b.header.view - 1,
            parent: Digest(b.header.parent_hash.0),
            payload: Digest(b.hash().0),
        });
        Vote::sign(&NAMESPACE, kind, signer, key)
    }

    /// `b`'s compact form, signed by the leader (validator 0).
    fn compact(b: &Block) -> CompactBlock {
        CompactBlock::of(b, vote_by(b, 0, &leader_key()))
    }

    fn verified(txs: &[SignedTransaction]) -> Vec<VerifiedTx> {
        cairn_ledger::verify_hashed(
            txs.iter()
                .cloned()
                .map(cairn_ledger::HashedTx::new)
                .collect(),
            "cairn-compact-test",
        )
        .into_iter()
        .map(|r| r.unwrap())
        .collect()
    }

    fn pool(txs: &[SignedTransaction]) -> HashMap<Hash, VerifiedTx> {
        verified(txs).into_iter().map(|t| (t.id(), t)).collect()
    }

    fn blocks(rebuilt: Vec<RebuiltBlock>) -> Vec<Block> {
        rebuilt.into_iter().map(RebuiltBlock::into_block).collect()
    }

    #[test]
    fn encoding_round_trips_and_is_smaller_than_the_block() {
        let b = block(transfers(50), 1);
        let c = compact(&b);
        let bytes = c.encode();
        assert!(bytes.len() * 3 < b.encode().len(), "{} bytes", bytes.len());
        assert_eq!(CompactBlock::decode(&bytes, bytes.len(), 50).unwrap(), c);
    }

    #[test]
    fn decode_refuses_oversize_malformed_too_many_duplicates_and_wrong_root() {
        let txs = transfers(4);
        let c = compact(&block(txs.clone(), 1));
        let bytes = c.encode();
        assert!(matches!(
            CompactBlock::decode(&bytes, bytes.len() - 1, 10),
            Err(CompactBlockError::Oversize { .. })
        ));
        assert!(matches!(
            CompactBlock::decode(&bytes[..bytes.len() - 1], 1 << 20, 10),
            Err(CompactBlockError::Malformed { .. })
        ));
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(matches!(
            CompactBlock::decode(&trailing, 1 << 20, 10),
            Err(CompactBlockError::Malformed { .. })
        ));
        assert_eq!(
            CompactBlock::decode(&bytes, 1 << 20, 3),
            Err(CompactBlockError::TooManyTxs { count: 4, max: 3 })
        );
        // The same transaction twice, with a root that matches the list.
        let dup = block(vec![txs[0].clone(), txs[1].clone(), txs[0].clone()], 1);
        assert_eq!(
            CompactBlock::decode(&compact(&dup).encode(), 1 << 20, 10),
            Err(CompactBlockError::DuplicateTx {
                hash: txs[0].hash(),
                index: 2
            })
        );
        // Hashes swapped: the header's root no longer matches.
        let mut swapped = c.clone();
        swapped.tx_hashes.swap(0, 1);
        assert!(matches!(
            CompactBlock::decode(&swapped.encode(), 1 << 20, 10),
            Err(CompactBlockError::RootMismatch { .. })
        ));
    }

    #[test]
    fn the_leader_vote_must_propose_this_block_and_be_signed_by_the_leader() {
        let b = block(transfers(3), 4);
        let c = compact(&b);
        let set = validators();
        let decoded = CompactBlock::decode(&c.encode(), 1 << 20, 10).unwrap();
        decoded.verify_leader(&NAMESPACE, &set, 0).unwrap();
        // Another validator's vote, or the leader's under another namespace: forged.
        assert!(matches!(
            decoded.verify_leader(&NAMESPACE, &set, 1),
            Err(CompactBlockError::ForgedProposal { view: 4, .. })
        ));
        let other = CompactBlock::of(&b, vote_by(&b, 1, &SigningKey::from_bytes(&[12; 32])));
        assert!(matches!(
            other.verify_leader(&NAMESPACE, &set, 0),
            Err(CompactBlockError::ForgedProposal { .. })
        ));
        assert!(matches!(
            decoded.verify_leader(&[6; 32], &set, 0),
            Err(CompactBlockError::ForgedProposal { .. })
        ));
        // A signature byte flipped: forged.
        let mut flipped = c.clone();
        flipped.leader_vote.signature[10] ^= 1;
        assert!(matches!(
            flipped.verify_leader(&NAMESPACE, &set, 0),
            Err(CompactBlockError::ForgedProposal { .. })
        ));
        // A valid vote for another block (the header changed under it): refused at decode.
        let mut moved = c.clone();
        moved.header.timestamp_ms += 1;
        assert!(matches!(
            CompactBlock::decode(&moved.encode(), 1 << 20, 10),
            Err(CompactBlockError::ProposalMismatch { .. })
        ));
        // A Nullify vote instead of the proposal.
        let mut nullify = c.clone();
        nullify.leader_vote = Vote::sign(&NAMESPACE, VoteKind::Nullify(4), 0, &leader_key());
        assert!(matches!(
            CompactBlock::decode(&nullify.encode(), 1 << 20, 10),
            Err(CompactBlockError::ProposalMismatch { .. })
        ));
    }

    #[test]
    fn a_block_whose_transactions_are_held_is_rebuilt_at_once() {
        let txs = transfers(20);
        let b = block(txs.clone(), 1);
        let held = pool(&txs);
        let mut partials = PartialBlocks::new();
        match partials.insert(compact(&b), |h| held.get(h).cloned(), 0) {
            Reassembly::Complete(rebuilt) => {
                let sealed = rebuilt.seal().unwrap();
                assert_eq!(sealed.block(), &b);
                assert_eq!(sealed.hash(), b.hash());
            }
            other => panic!("{other:?}"),
        }
        assert!(partials.is_empty());
    }

    #[test]
    fn missing_transactions_complete_the_block_when_offered() {
        let txs = transfers(10);
        let b = block(txs.clone(), 1);
        let held = pool(&txs[..7]);
        let mut partials = PartialBlocks::new();
        assert!(matches!(
            partials.insert(compact(&b), |h| held.get(h).cloned(), 0),
            Reassembly::Waiting { missing: 3 }
        ));
        assert!(matches!(
            partials.insert(compact(&b), |h| held.get(h).cloned(), 0),
            Reassembly::AlreadyWaiting
        ));
        // Unrelated and partial offers complete nothing.
        let other = verified(&transfers(12));
        let txs = verified(&txs);
        assert!(partials.offer([&other[11]]).is_empty());
        assert!(partials.offer([&txs[8]]).is_empty());
        let done = partials.offer(&txs[7..]);
        assert_eq!(done[0].clone().seal().unwrap().block(), &b);
        assert_eq!(blocks(done), vec![b]);
        assert!(partials.is_empty());
    }

    #[test]
    fn a_waiting_block_is_requested_once_after_the_wait_and_filled_from_the_response() {
        let txs = transfers(10);
        let b = block(txs.clone(), 1);
        let h = b.hash();
        let held = pool(&[&txs[..2], &txs[5..]].concat());
        let mut partials = PartialBlocks::new();
        partials.insert(compact(&b), |h| held.get(h).cloned(), 100);
        assert_eq!(
            partials.next_due_ms(PARTIAL_WAIT_MS),
            Some(100 + PARTIAL_WAIT_MS)
        );
        assert!(
            partials
                .due(100 + PARTIAL_WAIT_MS - 1, PARTIAL_WAIT_MS, |_| false)
                .is_empty()
        );
        let due = partials.due(100 + PARTIAL_WAIT_MS, PARTIAL_WAIT_MS, |_| false);
        assert_eq!(
            due,
            vec![MissingRequest::Transactions {
                block: h,
                view: 1,
                indices: vec![2, 3, 4]
            }]
        );
        assert!(
            partials.due(10_000, PARTIAL_WAIT_MS, |_| false).is_empty(),
            "requested once"
        );
        assert_eq!(partials.next_due_ms(PARTIAL_WAIT_MS), None);
        // A response with a wrong transaction or count changes nothing.
        assert!(partials.fill(&h, &[2, 3, 4], txs[3..6].to_vec()).is_err());
        assert!(partials.fill(&h, &[2, 3, 4], txs[2..4].to_vec()).is_err());
        assert!(partials.fill(&h, &[2, 3, 99], txs[2..5].to_vec()).is_err());
        assert!(partials.contains(&h));
        let filled = partials.fill(&h, &[2, 3, 4], txs[2..5].to_vec()).unwrap();
        assert_eq!(filled.clone().unwrap().seal().unwrap().block(), &b);
        assert_eq!(filled.map(RebuiltBlock::into_block), Some(b));
        assert!(partials.is_empty());
        // A late response for a block no longer waiting is ignored.
        assert!(
            partials
                .fill(&h, &[2], txs[2..3].to_vec())
                .unwrap()
                .is_none()
        );
    }

    /// A block lacking only transactions still in signature verification is not fetched
    /// after the usual wait, but looked at again every PARTIAL_RECHECK_MS and fetched at
    /// PARTIAL_WAIT_VERIFYING_MS_MAX at the latest; one that lacks any other transaction is
    /// fetched after the usual wait; verdicts arriving meanwhile complete it.
    #[test]
    fn a_block_waits_longer_for_transactions_in_verification() {
        let txs = transfers(10);
        let b = block(txs.clone(), 1);
        let h = b.hash();
        let held = pool(&[&txs[..2], &txs[5..]].concat());
        let in_queue: std::collections::HashSet<Hash> =
            txs[2..5].iter().map(SignedTransaction::hash).collect();
        let verifying = |x: &Hash| in_queue.contains(x);

        let mut partials = PartialBlocks::new();
        partials.insert(compact(&b), |h| held.get(h).cloned(), 100);
        assert!(
            partials
                .due(100 + PARTIAL_WAIT_MS, PARTIAL_WAIT_MS, verifying)
                .is_empty()
        );
        assert_eq!(
            partials.next_due_ms(PARTIAL_WAIT_MS),
            Some(100 + PARTIAL_WAIT_MS + PARTIAL_RECHECK_MS)
        );
        // Not yet looked at again before the recheck time.
        assert!(
            partials
                .due(100 + PARTIAL_WAIT_MS + 1, PARTIAL_WAIT_MS, |_| false)
                .is_empty()
        );
        // Still verifying at the last recheck before the bound: held back to the bound.
        let last = 100 + PARTIAL_WAIT_VERIFYING_MS_MAX - 1;
        assert!(partials.due(last, PARTIAL_WAIT_MS, verifying).is_empty());
        assert_eq!(
            partials.next_due_ms(PARTIAL_WAIT_MS),
            Some(100 + PARTIAL_WAIT_VERIFYING_MS_MAX)
        );
        let at_bound = partials.due(
            100 + PARTIAL_WAIT_VERIFYING_MS_MAX,
            PARTIAL_WAIT_MS,
            verifying,
        );
        assert_eq!(
            at_bound,
            vec![MissingRequest::Transactions {
                block: h,
                view: 1,
                indices: vec![2, 3, 4]
            }]
        );

        // One missing transaction not in verification: fetched after the usual wait.
        let mut partials = PartialBlocks::new();
        let held = pool(&[&txs[..1], &txs[5..]].concat());
        partials.insert(compact(&b), |h| held.get(h).cloned(), 100);
        assert_eq!(
            partials
                .due(100 + PARTIAL_WAIT_MS, PARTIAL_WAIT_MS, verifying)
                .len(),
            1,
            "tx 1 is not in verification"
        );

        // Held back, then the verdicts arrive: complete, nothing fetched.
        let mut partials = PartialBlocks::new();
        let held = pool(&[&txs[..2], &txs[5..]].concat());
        partials.insert(compact(&b), |h| held.get(h).cloned(), 100);
        assert!(
            partials
                .due(100 + PARTIAL_WAIT_MS, PARTIAL_WAIT_MS, verifying)
                .is_empty()
        );
        let done = partials.offer(&verified(&txs[2..5]));
        assert_eq!(blocks(done), vec![b]);
        assert!(partials.is_empty());
    }

    #[test]
    fn a_block_missing_more_than_the_fetch_bound_is_fetched_whole() {
        let txs = transfers(TX_FETCH_MAX as u64 + 1);
        let b = block(txs, 1);
        let mut partials = PartialBlocks::new();
        partials.insert(compact(&b), |_| None, 0);
        assert_eq!(
            partials.due(PARTIAL_WAIT_MS, PARTIAL_WAIT_MS, |_| false),
            vec![MissingRequest::Block {
                block: b.hash(),
                view: 1
            }]
        );
    }

    #[test]
    fn waiting_blocks_are_bounded_oldest_first_and_pruned_by_height() {
        let txs = transfers(1);
        let mut partials = PartialBlocks::new();
        let blocks: Vec<Block> = (1..=PARTIAL_BLOCKS_MAX as u64 + 2)
            .map(|height| block(txs.clone(), height))
            .collect();
        for b in &blocks {
            partials.insert(compact(b), |_| None, 0);
            assert!(partials.len() <= PARTIAL_BLOCKS_MAX);
        }
        assert_eq!(partials.len(), PARTIAL_BLOCKS_MAX);
        assert!(!partials.contains(&blocks[0].hash()));
        assert!(!partials.contains(&blocks[1].hash()));
        assert!(partials.contains(&blocks[2].hash()));
        partials.prune(5);
        assert_eq!(partials.len(), PARTIAL_BLOCKS_MAX + 2 - 5);
        assert!(!partials.contains(&blocks[4].hash()));
        assert!(partials.contains(&blocks[5].hash()));
        partials.remove(&blocks[5].hash());
        assert!(!partials.contains(&blocks[5].hash()));
        // One offer completes every block that waited for it.
        let done = partials.offer(&verified(&txs));
        assert_eq!(done.len(), PARTIAL_BLOCKS_MAX + 2 - 6);
        assert!(partials.is_empty());
    }

    #[test]
    fn an_equivocating_leader_keeps_at_most_two_blocks_of_its_view_waiting() {
        let txs = transfers(1);
        let mut partials = PartialBlocks::new();
        // Blocks of other views wait first; they must survive the flood.
        let others: Vec<Block> = (10..14).map(|h| block(txs.clone(), h)).collect();
        for b in &others {
            partials.insert(compact(b), |_| None, 0);
        }
        // Twenty distinct blocks for view 3 (different timestamps).
        let mut kept = 0;
        for t in 0..20 {
            let mut b = block(txs.clone(), 3);
            b.header.timestamp_ms = 100 + t;
            match partials.insert(compact(&b), |_| None, 0) {
                Reassembly::Waiting { .. } => kept += 1,
                Reassembly::ViewFull => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(kept, PARTIAL_BLOCKS_PER_VIEW_MAX);
        assert_eq!(partials.len(), others.len() + PARTIAL_BLOCKS_PER_VIEW_MAX);
        for b in &others {
            assert!(partials.contains(&b.hash()));
        }
    }
}
