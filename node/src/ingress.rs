//! One ingress path for transactions: RPC submissions and gossiped batches both reach the
//! mempool through [`Driver::admit_batch`], as [`VerifiedTx`]s (signature checked once, by
//! the [`crate::verifier`], id and signed hash computed once on the way in).
//!
//! Transactions submitted to this node may fill only
//! [`crate::mempool::LOCAL_SHARE_PERCENT`] of the pool's bounds; gossiped ones may fill it
//! all, so under overload every validator still takes what the others admitted and their
//! pools (from which proposals are built and rebuilt) hold the same transactions.
//!
//! On admission a transaction also completes compact blocks waiting for it
//! ([`crate::compact::PartialBlocks::offer`]); a locally submitted one is queued for batched
//! gossip (at most [`TX_BATCH_TXS_MAX`] per batch, or [`TX_BATCH_LINGER_MS`]); a gossiped
//! batch is reported to gossipsub (`Accept` if any was admitted, `Reject` if the sender is
//! at fault, else `Ignore`); then a proposal waiting for transactions is built.

use std::sync::atomic::Ordering;

use cairn_ledger::{Hash, VerifiedTx};
use libp2p::PeerId;

#[allow(unused_imports)] // named in docs
use crate::driver::REJECTED_REMEMBERED_MAX;
use crate::driver::{BodyOrigin, Driver, FatalError};
use crate::mempool::MempoolError;
use crate::network::{Acceptance, MessageId, Topic};
use crate::txgossip::{TX_BATCH_LINGER_MS, TX_BATCH_TXS_MAX, encode_batch};

/// Where a batch of transactions came from.
#[derive(Debug, Clone)]
pub enum TxOrigin {
    /// This node's RPC clients: admitted ones are gossiped (batched).
    Local,
    /// A gossip message from `source`; `invalid` if some of its transactions failed the
    /// stateless checks (an honest node gossips only transactions it verified, so the
    /// whole message is the sender's fault; the valid ones are still admitted).
    Gossip {
        /// The forwarding peer.
        source: PeerId,
        /// The gossipsub message, reported once admission is decided.
        message_id: MessageId,
        /// Some transaction of the message failed verification.
        invalid: bool,
    },
}

impl Driver {
    /// Admits verified transactions (at most `cairn_rpc::SEND_TRANSACTIONS_MAX` from RPC,
    /// [`TX_BATCH_TXS_MAX`] from gossip) into the mempool, in order, with one result per
    /// transaction. See the [module docs](self) for what follows admission.
    ///
    /// # Errors
    /// [`FatalError`] if storage fails while a completed block or a proposal is handled.
    pub async fn admit_batch(
        &mut self,
        txs: Vec<VerifiedTx>,
        origin: TxOrigin,
    ) -> Result<Vec<Result<Hash, MempoolError>>, FatalError> {
        // Verified transactions complete compact blocks waiting for them, also those the
        // mempool refuses below (e.g. full). The blocks are handled after the admissions,
        // so their transactions are in the mempool and not re-verified.
        let completed = self.buffer.partials.offer(&txs);
        let mut results = Vec::with_capacity(txs.len());
        let mut admitted = 0usize;
        let mut peer_fault = false;
        let local = matches!(origin, TxOrigin::Local);
        for tx in txs {
            let gossip = local.then(|| tx.tx().clone());
            let r = self.admit(tx, local);
            match (&r, gossip) {
                (Ok(_), Some(tx)) => {
                    admitted += 1;
                    self.queue_for_gossip(tx).await;
                }
                (Ok(_), None) => admitted += 1,
                // State-dependent refusals (nonce, balance, full) are not punished.
                (Err(e), _) if e.is_peer_fault() => peer_fault = true,
                (Err(_), _) => {}
            }
            results.push(r);
        }
        if let TxOrigin::Gossip {
            source,
            message_id,
            invalid,
        } = origin
        {
            let acceptance = if invalid || peer_fault {
                Acceptance::Reject
            } else if admitted == 0 {
                Acceptance::Ignore
            } else {
                Acceptance::Accept
            };
            self.report(message_id, source, acceptance).await;
        }
        for b in completed {
            let view = b.header().view;
            self.on_rebuilt(b, BodyOrigin::Rebuilt { view, peer: None })
                .await?;
        }
        if admitted > 0 && self.pending_build.is_some() {
            self.try_build().await?;
        }
        Ok(results)
    }

    /// Admits one verified transaction (`local`: submitted to this node, so it may fill only
    /// the pool's local share, `mempool::LOCAL_SHARE_PERCENT`; the rest is kept for what other
    /// validators gossip); remembers why it was refused (for `getTransaction`) unless it is a
    /// duplicate.
    fn admit(&mut self, tx: VerifiedTx, local: bool) -> Result<Hash, MempoolError> {
        let h = tx.id();
        let next_height = self.chain.head().height + 1;
        let store = self.chain.store().clone();
        let room = if local {
            self.mempool.check_local_room()
        } else {
            Ok(())
        };
        let r = room.and_then(|()| {
            self.mempool
                .insert(tx, store.as_ref(), &self.params.chain_id, next_height)
        });
        match &r {
            Ok(_) => self.shared.refusals().forget(&h),
            Err(e) => {
                self.shared.metrics.txs_rejected.inc();
                // A duplicate of a pooled transaction is that transaction (pending); another
                // transaction holding its sender and nonce refuses this one for good.
                if !matches!(e, MempoolError::Duplicate { .. }) || !self.mempool.contains(&h) {
                    self.remember_rejected(h, e.code().to_string(), e.to_string());
                }
            }
        }
        self.mempool_changed();
        r
    }

    /// Queues a locally admitted transaction for batched gossip; publishes the batch when it
    /// is full (otherwise the run loop publishes it after `TX_BATCH_LINGER_MS`).
    async fn queue_for_gossip(&mut self, tx: cairn_ledger::SignedTransaction) {
        if self.tx_outbox.is_empty() {
            self.tx_outbox_since_ms = self.now_ms();
        }
        self.tx_outbox.push(tx);
        if self.tx_outbox.len() >= TX_BATCH_TXS_MAX {
            self.flush_tx_outbox().await;
        }
    }

    /// When the gossip outbox is due (ms, driver clock), if it holds anything.
    pub(crate) fn tx_outbox_due_ms(&self) -> Option<u64> {
        (!self.tx_outbox.is_empty()).then(|| self.tx_outbox_since_ms + TX_BATCH_LINGER_MS)
    }

    /// Publishes the gossip outbox as one batch.
    pub(crate) async fn flush_tx_outbox(&mut self) {
        if self.tx_outbox.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.tx_outbox);
        if let Err(e) = self
            .net
            .publish(Topic::Transactions, encode_batch(&batch))
            .await
        {
            tracing::debug!(error = %e, txs = batch.len(), "publishing a transaction batch failed");
        }
    }

    /// Publishes the mempool's size (metric) and whether it takes more submissions (for the
    /// RPC server: [`crate::mempool::Mempool::is_full_for_local`]).
    pub(crate) fn mempool_changed(&self) {
        self.shared
            .metrics
            .mempool_txs
            .set(self.mempool.len() as i64);
        self.shared
            .mempool_full
            .store(self.mempool.is_full_for_local(), Ordering::Relaxed);
    }

    /// Remembers why transaction `h` was refused or dropped, for `getTransaction` (at most
    /// [`REJECTED_REMEMBERED_MAX`], oldest forgotten first: [`crate::refusals`]).
    pub(crate) fn remember_rejected(&mut self, h: Hash, code: String, reason: String) {
        self.shared.refusals().record(h, code, reason);
    }
}
