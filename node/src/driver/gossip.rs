//! Network events: gossip by topic (consensus messages, compact blocks, transaction
//! batches, evidence), peers connecting and disconnecting, and sync requests from peers,
//! which are forwarded to the sync server task.
//!
//! Invariants:
//! - A gossip message the sender is at fault for is reported `Reject`, a state-dependent
//!   miss `Ignore`, one to keep and forward `Accept`; only the running epoch's consensus
//!   messages are checked, so only they are forwarded. A transaction batch is reported once
//!   its admission is decided ([`crate::ingress`]).
//! - Gossiped transactions are hashed once, here, and their signatures checked off this
//!   task in the verifier's batches: at most [`VERIFY_IN_FLIGHT_MAX`] in flight; beyond that
//!   a batch is dropped without penalty.
//! - Sync requests never run on this task: they are forwarded with `try_send`, and a full
//!   queue drops them unanswered.

use std::sync::atomic::Ordering;

use cairn_consensus::{EpochError, EpochInput, EpochMessage};
use cairn_ledger::{Hash, HashedTx};
use libp2p::PeerId;
use tracing::debug;

use super::{Driver, FatalError, Internal, VERIFY_IN_FLIGHT_MAX};
use crate::network::{Acceptance, MessageId, NetworkEvent, Topic};
use crate::sync_server::ServeRequest;
use crate::txgossip::decode_batch;

impl Driver {
    pub(super) async fn on_network(&mut self, ev: NetworkEvent) -> Result<(), FatalError> {
        match ev {
            NetworkEvent::Gossip {
                topic,
                source,
                message_id,
                data,
            } => match topic {
                Topic::Consensus => {
                    let acceptance = match EpochMessage::decode(&data) {
                        Err(e) => {
                            debug!(peer = %source, error = %e, "undecodable consensus message");
                            Acceptance::Reject
                        }
                        Ok(message) => {
                            let now_ms = self.now_ms();
                            let current = message.epoch == self.epoch();
                            match self.epochs.handle(EpochInput::Message { message, now_ms }) {
                                // Only the running epoch's messages are checked, so only they
                                // are forwarded: others are the sender's to deliver.
                                Ok(outputs) => {
                                    self.perform(outputs).await?;
                                    if current {
                                        Acceptance::Accept
                                    } else {
                                        Acceptance::Ignore
                                    }
                                }
                                Err(EpochError::Message { source: e, .. }) if e.is_peer_fault() => {
                                    debug!(peer = %source, error = %e, "invalid consensus message");
                                    Acceptance::Reject
                                }
                                Err(_) => Acceptance::Ignore,
                            }
                        }
                    };
                    self.report(message_id, source, acceptance).await;
                }
                Topic::Blocks => {
                    let acceptance = self.on_gossip_block(source, &data).await?;
                    self.report(message_id, source, acceptance).await;
                }
                Topic::Transactions => self.on_gossip_tx(source, message_id, data).await,
                Topic::Evidence => {
                    let acceptance = self.on_gossip_evidence(source, &data)?;
                    self.report(message_id, source, acceptance).await;
                }
            },
            NetworkEvent::Request { peer, data, token } => {
                // Served on the sync server's task; a full queue drops the request
                // unanswered (costing this task nothing).
                let request = ServeRequest { peer, data, token };
                if self.sync_requests.try_send(request).is_err() {
                    self.shared.metrics.sync_requests_dropped.inc();
                }
            }
            NetworkEvent::PeerConnected { peer } => {
                if !self.peers.contains(&peer) {
                    self.peers.push(peer);
                    // A node that was down learns how far behind it is from its first peer,
                    // not one `sync.interval_ms` later: catch-up starts at once.
                    self.sync.on_peer_connected(peer);
                }
                self.shared
                    .peer_count
                    .store(self.peers.len() as u32, Ordering::Relaxed);
                self.shared.metrics.peers.set(self.peers.len() as i64);
            }
            NetworkEvent::PeerDisconnected { peer } => {
                self.peers.retain(|p| *p != peer);
                self.sync.on_peer_disconnected(peer);
                self.shared
                    .peer_count
                    .store(self.peers.len() as u32, Ordering::Relaxed);
                self.shared.metrics.peers.set(self.peers.len() as i64);
            }
        }
        Ok(())
    }

    pub(crate) async fn report(&self, id: MessageId, source: PeerId, acceptance: Acceptance) {
        if matches!(acceptance, Acceptance::Reject) {
            self.shared.metrics.gossip_rejected.inc();
        }
        self.net.report(id, source, acceptance).await;
    }

    async fn on_gossip_tx(&mut self, source: PeerId, message_id: MessageId, data: Vec<u8>) {
        let txs = match decode_batch(&data) {
            Ok(txs) => txs,
            Err(e) => {
                debug!(peer = %source, error = %e, "undecodable transaction batch");
                return self.report(message_id, source, Acceptance::Reject).await;
            }
        };
        // Each transaction is hashed once, here. Those already held were verified when they
        // arrived; verify only the rest.
        let txs: Vec<HashedTx> = txs
            .into_iter()
            .map(HashedTx::new)
            .filter(|tx| !self.mempool.contains(&tx.id()))
            .collect();
        if txs.is_empty() {
            return self.report(message_id, source, Acceptance::Ignore).await;
        }
        if self.verify_in_flight + txs.len() > VERIFY_IN_FLIGHT_MAX {
            // Overloaded: drop without penalty (the sender is not at fault) and let the
            // transactions reach us again in a block.
            return self.report(message_id, source, Acceptance::Ignore).await;
        }
        self.verify_in_flight += txs.len();
        let ids: Vec<Hash> = txs.iter().map(HashedTx::id).collect();
        self.verifying.extend(ids.iter().copied());
        let out = self.internal_tx.clone();
        let verifier = self.shared.verifier.clone();
        // Signature checks are the expensive part: off the driver task, in the verifier's
        // batches shared with other messages and RPC submissions. At most
        // VERIFY_IN_FLIGHT_MAX transactions (so boundedly many tasks) wait here.
        tokio::spawn(async move {
            let results = match verifier.verify(txs).await {
                Ok(v) => v.results,
                // Shutting down: report nothing admitted (the counter must still drop).
                Err(_) => Vec::new(),
            };
            let _ = out
                .send(Internal::TxBatchVerified {
                    ids,
                    results,
                    source,
                    message_id,
                })
                .await;
        });
    }
}
