//! Block sync protocol: request-response messages a node uses to catch up.
//!
//! Framing and byte bounds are the network layer's (`network` module); this module defines
//! the borsh-encoded payloads:
//!
//! - [`SyncRequest::Status`] → [`SyncResponse::Status`]: the peer's finalized head.
//! - [`SyncRequest::Blocks`] `{from_height, count}` → [`SyncResponse::Blocks`]: up to
//!   `count` (≤ [`SYNC_BLOCKS_MAX`]) consecutive finalized blocks from `from_height`, each
//!   with the finalization certificate the peer stored for it, if any. The responder stops
//!   early to stay under the response byte bound.
//! - [`SyncRequest::BlockByHash`] → [`SyncResponse::Block`]: any block the peer holds,
//!   finalized or pending (used to fetch a proposal body or a notarized parent).
//! - [`SyncRequest::BlockTransactions`] `{block, indices}` → [`SyncResponse::Transactions`]:
//!   the transactions at positions `indices` (at most [`TX_FETCH_MAX`]) of a block the peer
//!   holds, finalized or pending, in request order; empty if it does not hold the block or
//!   an index is out of range (used to complete a compact block, see [`crate::compact`]).
//!
//! A requester trusts nothing in a response: a range of blocks is accepted only up to the
//! last block that carries a valid finalization certificate, every earlier block must link
//! to it by parent hash and to the requester's head, and each block is re-executed.

use borsh::{BorshDeserialize, BorshSerialize};
use cairn_ledger::{Block, Hash, SignedTransaction};

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
}

/// A finalized block with its stored certificate (borsh of a consensus `Certificate`).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SyncedBlock {
    /// The block.
    pub block: Block,
    /// The finalization certificate stored with it, if this block was finalized directly.
    pub certificate: Option<Vec<u8>>,
}

/// A sync response.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum SyncResponse {
    /// Finalized head height and hash.
    Status { height: u64, hash: Hash },
    /// Consecutive finalized blocks.
    Blocks(Vec<SyncedBlock>),
    /// A block by hash, if held.
    Block(Option<Block>),
    /// The responder could not serve the request.
    Error(String),
    /// The requested transactions of a block, in request order (empty if not held).
    Transactions(Vec<SignedTransaction>),
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
}
