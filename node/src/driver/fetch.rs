//! Fetches from peers: whole blocks by hash (a proposal body that did not arrive by
//! gossip, a block whose ancestors are missing, a compact block that could not be rebuilt)
//! and the missing transactions of compact blocks that waited [`PARTIAL_WAIT_MS`]; the
//! choice of peer; and the sync server's lookups of blocks held in memory.
//!
//! Invariants:
//! - Requests run on tasks of their own; their answers come back as `Internal` results
//!   through the bounded internal queue, so a slow peer never holds up the driver.
//! - At most [`FETCHES_IN_FLIGHT_MAX`](crate::block_buffer::FETCHES_IN_FLIGHT_MAX) block
//!   fetches (one per block) and as many transaction fetches are in flight (the block
//!   buffer counts them).
//! - A block is asked of its view's leader when it is connected (it built the block), else
//!   of the next peer round-robin; never of a peer that just served a bad copy unless it is
//!   the only one.
//! - Lookups are answered from pending and received (sealed) blocks: a hash-map lookup and
//!   a clone, never a store read.

use cairn_consensus::View;
use cairn_ledger::{Block, Hash, SealedBlock};
use libp2p::PeerId;

use super::{Driver, Internal};
use crate::compact::{MissingRequest, PARTIAL_WAIT_MS};
use crate::sync::{SyncRequest, SyncResponse};
use crate::sync_server::{Lookup, pick};

impl Driver {
    /// Answers the sync server from the blocks held in memory: pending ones, and received
    /// ones (sealed). A hash-map lookup and a clone; never a store read.
    pub(super) fn on_lookup(&mut self, lookup: Lookup) {
        let held = |h: &Hash| -> Option<&Block> {
            self.chain
                .pending(h)
                .map(|p| p.block.block())
                .or_else(|| self.buffer.get(h).map(SealedBlock::block))
        };
        match lookup {
            Lookup::Block { hash, reply } => {
                let _ = reply.send(held(&hash).cloned());
            }
            Lookup::Transactions {
                block,
                indices,
                reply,
            } => {
                let _ = reply.send(held(&block).and_then(|b| pick(b, &indices)));
            }
        }
    }

    pub(super) fn next_peer(&mut self) -> Option<PeerId> {
        if self.peers.is_empty() {
            return None;
        }
        self.rr = (self.rr + 1) % self.peers.len();
        Some(self.peers[self.rr])
    }

    /// The peer to ask for a block proposed in `view`: that view's leader if it is connected
    /// (it built the block, so it holds it; a peer that forwarded the compact block may still
    /// be waiting for its transactions), else the next peer round-robin; never `avoid` (a
    /// peer that just served a bad copy) unless it is the only one.
    fn block_peer(&mut self, view: Option<View>, avoid: Option<PeerId>) -> Option<PeerId> {
        let leader = view.and_then(|v| {
            let index = self.params.validators.leader(v) as usize;
            self.params.validator_peers.get(index).copied().flatten()
        });
        match leader {
            Some(p) if self.peers.contains(&p) && Some(p) != avoid => Some(p),
            _ => {
                let first = self.next_peer()?;
                if Some(first) == avoid && self.peers.len() > 1 {
                    self.next_peer()
                } else {
                    Some(first)
                }
            }
        }
    }

    /// Fetches one block by hash (proposed in `view`, if known) from a peer (bounded
    /// in-flight).
    pub(super) fn fetch(&mut self, h: Hash, view: Option<View>) {
        self.fetch_avoiding(h, view, None)
    }

    /// [`Self::fetch`] from a peer other than `avoid` if there is one.
    pub(super) fn fetch_avoiding(&mut self, h: Hash, view: Option<View>, avoid: Option<PeerId>) {
        if !self.buffer.start_fetch(h) {
            return;
        }
        let Some(peer) = self.block_peer(view, avoid) else {
            self.buffer.end_fetch(&h);
            return;
        };
        let net = self.net.clone();
        let out = self.internal_tx.clone();
        let max = self.params.sync_response_bytes_max;
        tokio::spawn(async move {
            let request = SyncRequest::BlockByHash(h);
            let res = net.request(peer, request.encode(), request.cost()).await;
            let msg = match res
                .map_err(|e| e.to_string())
                .and_then(|b| SyncResponse::decode(&b, max).map_err(|e| e.to_string()))
            {
                Ok(SyncResponse::Block(block)) => Internal::Fetched {
                    hash: h,
                    block,
                    peer,
                },
                Ok(_) => Internal::Fetched {
                    hash: h,
                    block: None,
                    peer,
                },
                Err(reason) => {
                    let _ = out
                        .send(Internal::Fetched {
                            hash: h,
                            block: None,
                            peer,
                        })
                        .await;
                    Internal::RequestFailed {
                        what: "fetch",
                        peer,
                        reason,
                    }
                }
            };
            let _ = out.send(msg).await;
        });
    }

    /// Fetches the missing transactions of compact blocks that waited [`PARTIAL_WAIT_MS`]
    /// for them to arrive by gossip (each block once), or longer while they are all still in
    /// this node's signature-check queue ([`PartialBlocks::due`](crate::compact::PartialBlocks::due)).
    pub(super) fn request_missing_txs(&mut self) {
        let now_ms = self.now_ms();
        let verifying = &self.verifying;
        let due = self
            .buffer
            .partials
            .due(now_ms, PARTIAL_WAIT_MS, |h| verifying.contains(h));
        for request in due {
            self.shared.metrics.compact_block_fetches.inc();
            match request {
                MissingRequest::Transactions {
                    block,
                    view,
                    indices,
                } => self.fetch_txs(block, view, indices),
                MissingRequest::Block { block, view } => self.fetch(block, Some(view)),
            }
        }
    }

    /// Asks a peer for the transactions at `indices` of waiting compact block `block`; the
    /// answer arrives as [`Internal::FetchedTxs`].
    /// At most [`FETCHES_IN_FLIGHT_MAX`](crate::block_buffer::FETCHES_IN_FLIGHT_MAX) at once;
    /// beyond that the block is left to the whole-block fetch of a proposal body that did not
    /// arrive.
    fn fetch_txs(&mut self, block: Hash, view: View, indices: Vec<u32>) {
        let Some(peer) = self.block_peer(Some(view), None) else {
            return;
        };
        if !self.buffer.start_tx_fetch() {
            return;
        }
        let net = self.net.clone();
        let out = self.internal_tx.clone();
        let max = self.params.sync_response_bytes_max;
        let request = SyncRequest::BlockTransactions {
            block,
            indices: indices.clone(),
        };
        let cost = request.cost();
        let request = request.encode();
        tokio::spawn(async move {
            let txs = match net
                .request(peer, request, cost)
                .await
                .map_err(|e| e.to_string())
                .and_then(|b| SyncResponse::decode(&b, max).map_err(|e| e.to_string()))
            {
                Ok(SyncResponse::Transactions(txs)) => Ok(txs),
                Ok(SyncResponse::Error(reason)) => Err(reason),
                Ok(_) => Err("unexpected response kind".into()),
                Err(reason) => Err(reason),
            };
            let _ = out
                .send(Internal::FetchedTxs {
                    block,
                    view,
                    indices,
                    txs,
                })
                .await;
        });
    }
}
