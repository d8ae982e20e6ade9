//! Blocks: header, body, block hash and the transactions Merkle root.

use borsh::{BorshDeserialize, BorshSerialize};

use crate::{Address, Hash, LedgerError, SignedTransaction, context};

/// A block header. The block hash is blake3 derive-key (`"cairn block header v1"`) of
/// `borsh(header)`; the header commits to the body through `txs_root`.
#[derive(
    Clone,
    Debug,
    PartialEq,
    Eq,
    BorshSerialize,
    BorshDeserialize,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct BlockHeader {
    /// Chain id from genesis.
    pub chain_id: String,
    /// Height: genesis block is 0, each block is its parent's height + 1.
    pub height: u64,
    /// Consensus view in which the block was proposed (0 for genesis).
    pub view: u64,
    /// Hash of the parent block (for genesis: the genesis file hash).
    pub parent_hash: Hash,
    /// Proposer's consensus public key as an address; receives the fees.
    pub proposer: Address,
    /// Proposer's wall clock when it built the block, ms since the Unix epoch.
    pub timestamp_ms: u64,
    /// Merkle root of the transaction hashes (see [`txs_root`]).
    pub txs_root: Hash,
    /// State root after executing this block (see `state` module docs).
    pub state_root: Hash,
}

impl BlockHeader {
    /// The block hash.
    pub fn hash(&self) -> Hash {
        let bytes = borsh::to_vec(self).expect("borsh to Vec never fails");
        Hash::derive(context::BLOCK_HEADER, &[&bytes])
    }
}

/// A block: header and the ordered transactions it executes.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Block {
    /// The header.
    pub header: BlockHeader,
    /// Transactions, executed in order. All must be valid: one invalid transaction makes
    /// the whole block invalid.
    pub transactions: Vec<SignedTransaction>,
}

impl Block {
    /// The block hash (hash of the header).
    pub fn hash(&self) -> Hash {
        self.header.hash()
    }

    /// Encodes with borsh.
    pub fn encode(&self) -> Vec<u8> {
        borsh::to_vec(self).expect("borsh to Vec never fails")
    }

    /// Decodes a block no longer than `bytes_max` (checked before decoding).
    pub fn decode(bytes: &[u8], bytes_max: usize) -> Result<Block, LedgerError> {
        if bytes.len() > bytes_max {
            return Err(LedgerError::Oversize {
                what: "block",
                len: bytes.len(),
                max: bytes_max,
            });
        }
        borsh::from_slice(bytes).map_err(|e| LedgerError::Malformed {
            what: "block",
            reason: e.to_string(),
        })
    }
}

/// Merkle root of a list of transaction hashes.
///
/// Leaves are `H_leaf(tx_hash)`, inner nodes `H_node(left ‖ right)` with distinct blake3
/// derive-key contexts (so a leaf can never pose as a node: the second-preimage defence of
/// RFC 6962 §2.1). An odd node at the end of a level is promoted unchanged. The empty list
/// has root `H_leaf("")`.
pub fn txs_root(tx_hashes: &[Hash]) -> Hash {
    if tx_hashes.is_empty() {
        return Hash::derive(context::MERKLE_LEAF, &[]);
    }
    let mut level: Vec<Hash> = tx_hashes
        .iter()
        .map(|h| Hash::derive(context::MERKLE_LEAF, &[h.as_bytes()]))
        .collect();
    while level.len() > 1 {
        let mut next = Vec::with_capacity(level.len().div_ceil(2));
        for pair in level.chunks(2) {
            match pair {
                [l, r] => next.push(Hash::derive(
                    context::MERKLE_NODE,
                    &[l.as_bytes(), r.as_bytes()],
                )),
                [single] => next.push(*single),
                _ => unreachable!("chunks(2) yields 1 or 2 items"),
            }
        }
        level = next;
    }
    level[0]
}
