//! Blocks: header, body, block hash and the two transactions Merkle roots.
//!
//! The header commits to every byte of the body through two roots:
//! - `txs_root` over the transaction ids ([`SignedTransaction::hash`], signature excluded),
//!   which a compact block's hash list is checked against;
//! - `signed_txs_root` over the signed-transaction hashes
//!   ([`SignedTransaction::signed_hash`], body and signature), so that neither a relay nor
//!   a sync server can swap signature bytes under a certified header (the role of
//!   Bitcoin's witness commitment, BIP 141).
//!
//! [`Block::check_body`] checks both. A body that fails it is not the block its header
//! names: the fault of whoever sent that copy, never a verdict on the proposal.

use borsh::{BorshDeserialize, BorshSerialize};

use crate::{Address, Hash, HashedTx, LedgerError, SignedTransaction, VerifiedTx, context};

/// A block header. The block hash is blake3 derive-key (`"cairn block header v2"`) of
/// `borsh(header)`; the header commits to the body through `txs_root` and
/// `signed_txs_root` (see the module docs).
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
    /// Merkle root of the transaction hashes (ids, see [`txs_root`]).
    pub txs_root: Hash,
    /// Merkle root of the signed-transaction hashes (body and signature, see
    /// [`signed_txs_root`]).
    pub signed_txs_root: Hash,
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

    /// Checks that the body is the one the header commits to: `txs_root` over the
    /// transaction ids and `signed_txs_root` over the signed-transaction hashes. Returns the
    /// transaction ids in block order (so callers hash each transaction once).
    ///
    /// Errors: [`LedgerError::BodyMismatch`] naming the root that differs. Costs two
    /// blake3 hashes per transaction and two Merkle trees.
    pub fn check_body(&self) -> Result<Vec<Hash>, LedgerError> {
        self.check_body_hashes().map(|(ids, _)| ids)
    }

    /// [`Self::check_body`], also returning the signed-transaction hashes.
    fn check_body_hashes(&self) -> Result<(Vec<Hash>, Vec<Hash>), LedgerError> {
        let ids: Vec<Hash> = self
            .transactions
            .iter()
            .map(SignedTransaction::hash)
            .collect();
        let signed: Vec<Hash> = self
            .transactions
            .iter()
            .map(SignedTransaction::signed_hash)
            .collect();
        check_roots(&self.header, &ids, &signed)?;
        Ok((ids, signed))
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

/// A block whose body was checked against its header ([`Block::check_body`]): exactly the
/// block its hash names. Its hash and transaction ids are computed once, when it is sealed,
/// and reused by validation ([`crate::validate_sealed_block`]) and by callers.
///
/// Invariant: `hash == block.hash()`, `tx_ids[i] == block.transactions[i].hash()`,
/// `signed_hashes[i] == block.transactions[i].signed_hash()`, and both roots of the header
/// match the body. Only [`SealedBlock::seal`] (hashes every transaction),
/// [`SealedBlock::assemble`] and [`SealedBlock::reassemble`] (take the hashes carried by
/// [`VerifiedTx`]s, hashing no transaction) make one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedBlock {
    block: Block,
    hash: Hash,
    tx_ids: Vec<Hash>,
    signed_hashes: Vec<Hash>,
}

impl SealedBlock {
    /// Checks `block`'s body against its header and seals it. Costs two blake3 hashes per
    /// transaction (id and signed hash), both Merkle roots and the header hash.
    ///
    /// Errors: [`LedgerError::BodyMismatch`] (see [`Block::check_body`]).
    pub fn seal(block: Block) -> Result<SealedBlock, LedgerError> {
        let (tx_ids, signed_hashes) = block.check_body_hashes()?;
        let hash = block.hash();
        Ok(SealedBlock {
            block,
            hash,
            tx_ids,
            signed_hashes,
        })
    }

    /// A new block (the leader's proposal) of `header` and `txs`, whose signatures this node
    /// checked: sets the header's `txs_root` and `signed_txs_root` from the hashes the
    /// transactions carry (no transaction is hashed again), then hashes the header once.
    /// The other header fields (state root included) are the caller's.
    pub fn assemble(mut header: BlockHeader, txs: Vec<VerifiedTx>) -> SealedBlock {
        let (tx_ids, signed_hashes): (Vec<Hash>, Vec<Hash>) =
            txs.iter().map(|t| (t.id(), t.signed_hash())).unzip();
        header.txs_root = txs_root(&tx_ids);
        header.signed_txs_root = signed_txs_root(&signed_hashes);
        let hash = header.hash();
        SealedBlock {
            block: Block {
                header,
                transactions: txs.into_iter().map(VerifiedTx::into_tx).collect(),
            },
            hash,
            tx_ids,
            signed_hashes,
        }
    }

    /// Rebuilds a received block (a compact block's header) from transactions this node
    /// verified, checking both of `header`'s roots against the hashes they carry: [`seal`]
    /// without hashing any transaction (only the two Merkle trees and the header).
    ///
    /// Errors: [`LedgerError::BodyMismatch`] if the transactions are not the body the
    /// header commits to (e.g. this node holds other signature bytes for one of them).
    ///
    /// [`seal`]: SealedBlock::seal
    pub fn reassemble(
        header: BlockHeader,
        txs: Vec<VerifiedTx>,
    ) -> Result<SealedBlock, LedgerError> {
        let (tx_ids, signed_hashes): (Vec<Hash>, Vec<Hash>) =
            txs.iter().map(|t| (t.id(), t.signed_hash())).unzip();
        check_roots(&header, &tx_ids, &signed_hashes)?;
        let hash = header.hash();
        Ok(SealedBlock {
            block: Block {
                header,
                transactions: txs.into_iter().map(VerifiedTx::into_tx).collect(),
            },
            hash,
            tx_ids,
            signed_hashes,
        })
    }

    /// Each transaction's signed hash, in block order (computed once).
    pub fn signed_hashes(&self) -> &[Hash] {
        &self.signed_hashes
    }

    /// The transactions `keep` selects (given each one's id and the transaction), with
    /// their ids (no hashing), e.g. to verify those this node has not verified yet
    /// ([`crate::verify_hashed`]). In block order.
    pub fn hashed_txs(&self, keep: impl Fn(&Hash, &SignedTransaction) -> bool) -> Vec<HashedTx> {
        self.block
            .transactions
            .iter()
            .zip(&self.tx_ids)
            .filter(|(t, id)| keep(id, t))
            .map(|(t, id)| HashedTx::with_id(t.clone(), *id))
            .collect()
    }

    /// The block.
    pub fn block(&self) -> &Block {
        &self.block
    }

    /// The block hash (computed once).
    pub fn hash(&self) -> Hash {
        self.hash
    }

    /// The header.
    pub fn header(&self) -> &BlockHeader {
        &self.block.header
    }

    /// Each transaction's id, in block order (computed once).
    pub fn tx_ids(&self) -> &[Hash] {
        &self.tx_ids
    }

    /// The block, unsealed.
    pub fn into_block(self) -> Block {
        self.block
    }
}

/// Checks `header`'s two roots against a body's ids and signed hashes (in block order).
///
/// Errors: [`LedgerError::BodyMismatch`] naming the root that differs (`txs_root` first).
fn check_roots(header: &BlockHeader, ids: &[Hash], signed: &[Hash]) -> Result<(), LedgerError> {
    let root = txs_root(ids);
    if root != header.txs_root {
        return Err(LedgerError::BodyMismatch {
            block: header.hash(),
            reason: format!("txs_root {}, transactions give {root}", header.txs_root),
        });
    }
    let root = signed_txs_root(signed);
    if root != header.signed_txs_root {
        return Err(LedgerError::BodyMismatch {
            block: header.hash(),
            reason: format!(
                "signed_txs_root {}, transactions give {root}",
                header.signed_txs_root
            ),
        });
    }
    Ok(())
}

/// Merkle root of a list of transaction hashes (ids): the header's `txs_root`.
/// See [`merkle_root`].
pub fn txs_root(tx_hashes: &[Hash]) -> Hash {
    merkle_root(tx_hashes)
}

/// Merkle root of a list of signed-transaction hashes
/// ([`SignedTransaction::signed_hash`]): the header's `signed_txs_root`. The same tree as
/// [`txs_root`]; the leaves differ by their own hash context.
pub fn signed_txs_root(signed_hashes: &[Hash]) -> Hash {
    merkle_root(signed_hashes)
}

/// `signed_txs_root` of these transactions: [`signed_txs_root`] over each one's
/// [`SignedTransaction::signed_hash`], in order.
pub fn signed_txs_root_of(transactions: &[SignedTransaction]) -> Hash {
    let hashes: Vec<Hash> = transactions
        .iter()
        .map(SignedTransaction::signed_hash)
        .collect();
    signed_txs_root(&hashes)
}

/// Merkle root of a list of 32-byte hashes.
///
/// Leaves are `H_leaf(tx_hash)`, inner nodes `H_node(left ‖ right)` with distinct blake3
/// derive-key contexts (so a leaf can never pose as a node: the second-preimage defence of
/// RFC 6962 §2.1). An odd node at the end of a level is promoted unchanged. The empty list
/// has root `H_leaf("")`.
pub fn merkle_root(tx_hashes: &[Hash]) -> Hash {
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
