//! Block sync protocol: request-response messages a node uses to catch up.
//!
//! Framing and byte bounds are the network layer's (`network` module); this module defines
//! the borsh-encoded payloads:
//!
//! - [`SyncRequest::Status`] → [`SyncResponse::Status`]: the peer's finalized head and the
//!   lowest height whose block body it holds (a node with `[storage] retain_blocks` prunes
//!   older bodies; 0: it holds every block).
//! - [`SyncRequest::Blocks`] `{from_height, count}` → [`SyncResponse::Blocks`]: up to
//!   `count` (≤ [`SYNC_BLOCKS_MAX`]) consecutive finalized blocks from `from_height`, each
//!   with the finalization certificate the peer stored for it, if any. The responder stops
//!   early to stay under the response byte bound. A request from below the responder's
//!   lowest retained height is answered [`SyncResponse::Pruned`]: neither side's fault, the
//!   requester asks a peer that holds the range.
//! - [`SyncRequest::BlockByHash`] → [`SyncResponse::Block`]: any block the peer holds,
//!   finalized or pending (used to fetch a proposal body or a notarized parent).
//! - [`SyncRequest::BlockTransactions`] `{block, indices}` → [`SyncResponse::Transactions`]:
//!   the transactions at positions `indices` (at most [`TX_FETCH_MAX`]) of a block the peer
//!   holds, finalized or pending, in request order; empty if it does not hold the block or
//!   an index is out of range (used to complete a compact block, see [`crate::compact`]).
//!
//! - [`SyncRequest::SnapshotOffer`] `{height}` → [`SyncResponse::SnapshotOffer`]: the
//!   manifest of the peer's state snapshot at `height` (0: its newest) with the
//!   finalization certificate of the snapshot's block, if it has one ([`SnapshotOffer`];
//!   state sync, [`crate::state_sync`]).
//! - [`SyncRequest::SnapshotChunk`] `{manifest, index}` → [`SyncResponse::SnapshotChunk`]:
//!   chunk `index` of the snapshot whose manifest id is `manifest`, if the peer holds it.
//!
//! A requester trusts nothing in a response: a range of blocks is accepted only up to the
//! last block that carries a valid finalization certificate, every earlier block must link
//! to it by parent hash and to the requester's head, and each block is re-executed.

use borsh::{BorshDeserialize, BorshSerialize};
use cairn_consensus::{BlockKind, Digest, Epoch, EpochProof, SUFFIX_BLOCKS_MAX, ValidatorSet};
use cairn_ledger::{Block, BlockHeader, Hash, SignedTransaction, txs_root};

pub use crate::compact::TX_FETCH_MAX;

/// Most blocks in one [`SyncResponse::Blocks`].
pub const SYNC_BLOCKS_MAX: u16 = 1024;

/// Largest encoded [`SyncRequest`], bytes (checked before decoding): a
/// [`SyncRequest::BlockTransactions`] of [`TX_FETCH_MAX`] indices and some slack.
pub const SYNC_REQUEST_BYTES_MAX: usize = 64 + 4 * TX_FETCH_MAX;

/// A sync request.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum SyncRequest {
    /// Ask for the finalized head.
    Status,
    /// Ask for finalized blocks `from_height ..` (at most `count`).
    Blocks { from_height: u64, count: u16 },
    /// Ask for one block by hash.
    BlockByHash(Hash),
    /// Ask for the transactions at positions `indices` (at most [`TX_FETCH_MAX`]) of block
    /// `block`.
    BlockTransactions { block: Hash, indices: Vec<u32> },
    /// Ask for the manifest of the snapshot at `height` (0: the newest held).
    SnapshotOffer { height: u64 },
    /// Ask for chunk `index` of the snapshot whose manifest id
    /// ([`cairn_ledger::snapshot::SnapshotManifest::id`]) is `manifest`.
    SnapshotChunk { manifest: Hash, index: u32 },
}

/// A snapshot a peer offers: its manifest and the finalization certificate of the block it
/// names. The manifest travels as bytes so that its own bound
/// ([`cairn_ledger::snapshot::MANIFEST_BYTES_MAX`]) is checked before it is decoded.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SnapshotOffer {
    /// Borsh [`cairn_ledger::snapshot::SnapshotManifest`].
    pub manifest: Vec<u8>,
    /// Borsh consensus `Certificate`: a finalization of the manifest's block (at most
    /// [`SNAPSHOT_CERTIFICATE_BYTES_MAX`] bytes).
    pub certificate: Vec<u8>,
}

/// Largest certificate accepted in a [`SnapshotOffer`], bytes (a finalization of a set of
/// up to a few hundred validators).
pub const SNAPSHOT_CERTIFICATE_BYTES_MAX: usize = 64 * 1024;

/// A finalized block with its stored certificate (borsh of a consensus `Certificate`).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SyncedBlock {
    /// The block.
    pub block: Block,
    /// The finalization certificate stored with it, if this block was finalized directly.
    pub certificate: Option<Vec<u8>>,
    /// For the boundary block of an epoch (the last block of that epoch), the proof that
    /// the epoch ended (borsh [`StoredEpochProof`]); `None` for every other block. A
    /// response ends with such a block: the next blocks are certified by the next epoch's
    /// set, which the requester learns by executing this one.
    pub epoch_proof: Option<Vec<u8>>,
}

/// What a node keeps about an ended epoch (store metadata `epoch_proof/<epoch>`) and serves
/// with its boundary block: the consensus [`EpochProof`] (a finalization by the epoch's set
/// of the boundary or of a suffix block after it, and the ids from that block down to the
/// boundary) and the headers of the suffix blocks it lists (`proof.blocks` minus the
/// boundary, same order). Suffix blocks are never committed, so their headers travel here:
/// a requester checks that they hash to the listed ids, link by parent hash down to the
/// boundary, and are empty ([`StoredEpochProof::verify`]).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct StoredEpochProof {
    /// The proof.
    pub proof: EpochProof,
    /// Headers of `proof.blocks[..len - 1]`, in that order (at most `SUFFIX_BLOCKS_MAX`).
    pub suffix: Vec<BlockHeader>,
}

impl StoredEpochProof {
    /// Checks that this proves `boundary` (a sealed block's header, hash `boundary_hash`)
    /// was the last block of epoch `epoch`, whose set is `validators`, on the chain with
    /// namespace `chain_namespace` (the genesis hash): the proof names `epoch`; suffix headers hash to the listed ids, each is empty (both
    /// transaction roots are the empty root), keeps the boundary's state root, and is its
    /// parent's child one height up; the listed ids end at the boundary; the finalization
    /// verifies (`EpochProof::verify`).
    ///
    /// # Errors
    /// Why it does not hold (the sender's fault).
    pub fn verify(
        &self,
        boundary: &BlockHeader,
        boundary_hash: Hash,
        chain_namespace: &[u8; 32],
        epoch: Epoch,
        validators: &ValidatorSet,
    ) -> Result<(), String> {
        if self.proof.epoch != epoch {
            return Err(format!(
                "epoch proof is for epoch {}, this block is in epoch {epoch}",
                self.proof.epoch
            ));
        }
        let blocks = &self.proof.blocks;
        if blocks.is_empty() || blocks.len() > SUFFIX_BLOCKS_MAX + 1 {
            return Err(format!("epoch proof lists {} blocks", blocks.len()));
        }
        if self.suffix.len() != blocks.len() - 1 {
            return Err(format!(
                "epoch proof lists {} blocks but carries {} suffix headers",
                blocks.len(),
                self.suffix.len()
            ));
        }
        if *blocks.last().expect("not empty") != Digest(boundary_hash.0) {
            return Err("epoch proof does not end at this block".into());
        }
        let empty = txs_root(&[]);
        let mut known = std::collections::HashMap::new();
        known.insert(
            Digest(boundary_hash.0),
            (Digest(boundary.parent_hash.0), BlockKind::Boundary),
        );
        for (i, header) in self.suffix.iter().enumerate() {
            if Digest(header.hash().0) != blocks[i] {
                return Err(format!("suffix header {i} does not hash to the listed id"));
            }
            if header.txs_root != empty
                || header.signed_txs_root != empty
                || header.state_root != boundary.state_root
                || header.chain_id != boundary.chain_id
            {
                return Err(format!(
                    "suffix header {i} is not an empty block on the boundary"
                ));
            }
            let depth = (blocks.len() - 1 - i) as u64;
            if header.height != boundary.height + depth {
                return Err(format!("suffix header {i} has height {}", header.height));
            }
            known.insert(blocks[i], (Digest(header.parent_hash.0), BlockKind::Suffix));
        }
        self.proof
            .verify(chain_namespace, validators, |id| known.get(id).copied())
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// A sync response.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum SyncResponse {
    /// Finalized head height and hash, and the lowest height whose block body the responder
    /// holds (it serves `Blocks` from there to `height`; 0: every block).
    Status {
        height: u64,
        hash: Hash,
        lowest_retained_height: u64,
    },
    /// Consecutive finalized blocks.
    Blocks(Vec<SyncedBlock>),
    /// A block by hash, if held.
    Block(Option<Block>),
    /// The responder could not serve the request.
    Error(String),
    /// The requested transactions of a block, in request order (empty if not held).
    Transactions(Vec<SignedTransaction>),
    /// The blocks asked for are below the lowest height whose body the responder holds
    /// (`lowest_retained_height`): it pruned them. Not a fault of either side.
    Pruned { lowest_retained_height: u64 },
    /// The snapshot asked for, if held.
    SnapshotOffer(Option<SnapshotOffer>),
    /// The chunk asked for (at most [`cairn_ledger::snapshot::CHUNK_BYTES_MAX`] bytes), if
    /// held.
    SnapshotChunk(Option<Vec<u8>>),
}

impl SyncResponse {
    /// Whether a peer reporting its head at `height` with bodies from
    /// `lowest_retained_height` (a [`SyncResponse::Status`]) can serve a range starting at
    /// `from_height`: it holds that block's body (the genesis block and every block from
    /// the lowest retained height up) and has finalized it.
    pub fn serves_from(height: u64, lowest_retained_height: u64, from_height: u64) -> bool {
        from_height <= height && (from_height == 0 || from_height >= lowest_retained_height)
    }
}

/// Decoding failures (the peer's fault).
#[derive(Debug, thiserror::Error)]
pub enum SyncCodecError {
    /// Longer than allowed.
    #[error("sync {what} is {len} bytes, more than {max}")]
    Oversize {
        what: &'static str,
        len: usize,
        max: usize,
    },
    /// Does not decode.
    #[error("malformed sync {what}: {reason}")]
    Malformed { what: &'static str, reason: String },
}

impl SyncRequest {
    /// Borsh bytes.
    pub fn encode(&self) -> Vec<u8> {
        borsh::to_vec(self).expect("borsh to Vec never fails")
    }
    /// Decodes, checking [`SYNC_REQUEST_BYTES_MAX`] first.
    pub fn decode(bytes: &[u8]) -> Result<Self, SyncCodecError> {
        if bytes.len() > SYNC_REQUEST_BYTES_MAX {
            return Err(SyncCodecError::Oversize {
                what: "request",
                len: bytes.len(),
                max: SYNC_REQUEST_BYTES_MAX,
            });
        }
        borsh::from_slice(bytes).map_err(|e| SyncCodecError::Malformed {
            what: "request",
            reason: e.to_string(),
        })
    }
}

impl SyncResponse {
    /// Borsh bytes.
    pub fn encode(&self) -> Vec<u8> {
        borsh::to_vec(self).expect("borsh to Vec never fails")
    }
    /// Decodes, checking `bytes_max` first.
    pub fn decode(bytes: &[u8], bytes_max: usize) -> Result<Self, SyncCodecError> {
        if bytes.len() > bytes_max {
            return Err(SyncCodecError::Oversize {
                what: "response",
                len: bytes.len(),
                max: bytes_max,
            });
        }
        borsh::from_slice(bytes).map_err(|e| SyncCodecError::Malformed {
            what: "response",
            reason: e.to_string(),
        })
    }
}

/// Tokens a request costs at the peer's sync server (its per-peer token bucket,
/// [`crate::sync_server::RequestLimiter`]) and in this node's own pacing of what it sends
/// ([`crate::network::pacer`]): 1, plus 1 per [`BLOCKS_PER_TOKEN`] blocks a range asks for (a
/// range of 1,024 blocks costs 17: RocksDB reads, not requests, are what a flooder would
/// spend), plus 1 per 256 transactions asked for by index.
pub fn request_cost(request: &SyncRequest) -> u32 {
    match request {
        SyncRequest::Status | SyncRequest::BlockByHash(_) => 1,
        SyncRequest::Blocks { count, .. } => {
            1 + u32::from((*count).min(SYNC_BLOCKS_MAX)) / BLOCKS_PER_TOKEN
        }
        SyncRequest::BlockTransactions { indices, .. } => {
            1 + (indices.len().min(TX_FETCH_MAX) / 256) as u32
        }
        SyncRequest::SnapshotOffer { .. } => 1,
        // A chunk is a file read of up to 1 MiB: as costly as a long range of blocks.
        SyncRequest::SnapshotChunk { .. } => SNAPSHOT_CHUNK_COST,
    }
}

/// Blocks of a range request that cost one token (see [`request_cost`]).
pub const BLOCKS_PER_TOKEN: u32 = 64;

/// Tokens a snapshot chunk request costs: at the default 50 tokens a second, 25 chunks (25
/// MiB) a second per peer.
pub const SNAPSHOT_CHUNK_COST: u32 = 2;

impl SyncRequest {
    /// Tokens this request costs ([`request_cost`]).
    pub fn cost(&self) -> u32 {
        request_cost(self)
    }
}

/// The cost of the costliest request: a range of [`SYNC_BLOCKS_MAX`] blocks (17). A
/// client's pacing burst must hold at least this many tokens.
pub const REQUEST_COST_MAX: u32 = 1 + SYNC_BLOCKS_MAX as u32 / BLOCKS_PER_TOKEN;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_garbage_is_refused() {
        for r in [
            SyncRequest::Status,
            SyncRequest::Blocks {
                from_height: 9,
                count: 3,
            },
            SyncRequest::BlockByHash(Hash([4; 32])),
            SyncRequest::SnapshotOffer { height: 0 },
            SyncRequest::SnapshotChunk {
                manifest: Hash([6; 32]),
                index: 4095,
            },
            SyncRequest::BlockTransactions {
                block: Hash([5; 32]),
                indices: vec![0, 7, 9_999],
            },
            // The largest request fits the bound.
            SyncRequest::BlockTransactions {
                block: Hash([5; 32]),
                indices: vec![u32::MAX; TX_FETCH_MAX],
            },
        ] {
            assert_eq!(SyncRequest::decode(&r.encode()).unwrap(), r);
        }
        assert!(matches!(
            SyncRequest::decode(&[9, 9, 9]),
            Err(SyncCodecError::Malformed { .. })
        ));
        assert!(matches!(
            SyncRequest::decode(&[0; SYNC_REQUEST_BYTES_MAX + 1]),
            Err(SyncCodecError::Oversize { .. })
        ));
        assert!(matches!(
            SyncResponse::decode(&[0; 30], 10),
            Err(SyncCodecError::Oversize { .. })
        ));
    }

    /// The exact bytes of the version 5 `Status` and `Pruned` responses, as
    /// docs/wire-format.md ("Sync protocol") gives them.
    #[test]
    fn status_and_pruned_responses_have_the_documented_bytes() {
        let status = SyncResponse::Status {
            height: 7,
            hash: Hash([0xab; 32]),
            lowest_retained_height: 3,
        };
        let hex = hex::encode(status.encode());
        assert_eq!(
            hex,
            format!(
                "00{}{}{}",
                "0700000000000000",
                "ab".repeat(32),
                "0300000000000000"
            )
        );
        let pruned = SyncResponse::Pruned {
            lowest_retained_height: 1025,
        };
        assert_eq!(hex::encode(pruned.encode()), "050104000000000000");
        for r in [status, pruned] {
            assert_eq!(SyncResponse::decode(&r.encode(), 1024).unwrap(), r);
        }
    }

    #[test]
    fn a_pruned_peer_serves_only_from_its_lowest_retained_height() {
        // Unpruned (0): every finalized height, genesis included.
        assert!(SyncResponse::serves_from(100, 0, 0));
        assert!(SyncResponse::serves_from(100, 0, 1));
        assert!(SyncResponse::serves_from(100, 0, 100));
        assert!(
            !SyncResponse::serves_from(100, 0, 101),
            "not finalized there"
        );
        // Pruned below 40: genesis, and 40 up.
        assert!(SyncResponse::serves_from(100, 40, 0));
        assert!(!SyncResponse::serves_from(100, 40, 1));
        assert!(!SyncResponse::serves_from(100, 40, 39));
        assert!(SyncResponse::serves_from(100, 40, 40));
        // A nonsensical lowest height above the head: holds nothing past genesis.
        assert!(!SyncResponse::serves_from(10, 20, 11));
    }
}
