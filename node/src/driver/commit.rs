//! Commits: blocks finalized by consensus and ranges of finalized blocks from sync, and the
//! housekeeping after each commit (mempool, metrics including the finality latency, WAL
//! pruning, block buffer pruning and the chain parameters governance changed).
//!
//! Invariants:
//! - Every block is committed in one synced write with its certificate; only verified
//!   certificates are stored (consensus's own, or ones the sync client checked off this
//!   task), and every synced block is re-executed.
//! - A boundary or suffix block is never committed here: an epoch's end is committed up to
//!   its boundary by `try_end_epoch` (in `epochs.rs`). A synced range stops at a boundary
//!   block, and the next epoch starts at once.
//! - The WAL is pruned only below a finalized view of the running epoch.
//! - Governed parameters apply when the block that changed them is committed.
//! - Finalizations waiting for their block are bounded ([`FINALIZED_WAITING_MAX`]).

use cairn_consensus::{BlockKind, Certificate, CertificateKind, View};
use cairn_ledger::SealedBlock;
use libp2p::PeerId;
use tracing::{error, info, warn};

use super::{
    Driver, EPOCH_PROOF_KEY_PREFIX, FINALIZED_WAITING_MAX, FatalError, hash, holds_verified,
};
use crate::chain::ChainError;
use crate::sync_client::{SyncEvent, SyncedRange};

impl Driver {
    pub(super) async fn on_finalized(&mut self, cert: Certificate) -> Result<(), FatalError> {
        let CertificateKind::Finalization(p) = &cert.kind else {
            return Ok(());
        };
        let h = hash(p.payload);
        if self
            .chain
            .store()
            .height_of(&h)
            .map_err(|e| FatalError(e.to_string()))?
            .is_some()
        {
            return Ok(());
        }
        if !self.chain.can_extend(&h)
            && let Some(b) = self.buffer.get(&h).cloned()
        {
            self.insert_block(b).await?;
        }
        if let Some(kind) = self.chain.kind(&h) {
            // Tell the epoch driver what it is, in case it could not know (an observer).
            if let Some(input) = self.block_input(self.epoch(), &h) {
                self.inputs.push_back(input);
            }
            if kind != BlockKind::Ordinary {
                // A boundary or suffix block ends the epoch: committed up to the boundary
                // when the epoch driver reports the end (`try_end_epoch`), never past it.
                return Ok(());
            }
        }
        let bytes = borsh::to_vec(&cert).expect("borsh to Vec never fails");
        match self.chain.finalize(&h, Some(&bytes)) {
            Ok(blocks) => self.after_commit(blocks, Some(cert.view())),
            Err(ChainError::UnknownParent { .. }) => {
                let view = cert.view();
                if self.finalized_waiting.len() < FINALIZED_WAITING_MAX {
                    self.finalized_waiting.insert(h, cert);
                }
                self.fetch(h, Some(view));
                self.sync.request_now();
                Ok(())
            }
            Err(ChainError::Storage(e)) => Err(FatalError(e.to_string())),
            Err(e) => {
                error!(block = %h, error = %e, "a finalized block does not apply: more than f validators are faulty or this node is broken");
                Ok(())
            }
        }
    }

    /// Housekeeping after `blocks` were committed; `finalized_view` is the view of the
    /// running epoch's finalization that committed them (`None` for synced blocks), below
    /// which the WAL is pruned.
    pub(super) fn after_commit(
        &mut self,
        blocks: Vec<SealedBlock>,
        finalized_view: Option<View>,
    ) -> Result<(), FatalError> {
        if blocks.is_empty() {
            return Ok(());
        }
        let store = self.chain.store().clone();
        // WebSocket subscribers: a non-blocking broadcast, built only if someone listens.
        if self.shared.finalized_blocks.receiver_count() > 0 {
            for b in &blocks {
                let event = cairn_rpc::FinalizedBlock::new(
                    b.hash(),
                    b.header().clone(),
                    b.tx_ids().to_vec(),
                    cairn_rpc::touched_accounts(b.block()),
                );
                let _ = self
                    .shared
                    .finalized_blocks
                    .send(std::sync::Arc::new(event));
            }
        }
        for b in &blocks {
            // The ids the block was sealed with: nothing is hashed again.
            let txs = b
                .tx_ids()
                .iter()
                .copied()
                .zip(b.block().transactions.iter().map(|t| &t.body.sender));
            self.mempool
                .remove_finalized(txs, store.as_ref(), b.header().height);
            self.shared.metrics.blocks_finalized.inc();
            self.shared
                .metrics
                .txs_finalized
                .inc_by(b.tx_ids().len() as u64);
            self.finalized_waiting.remove(&b.hash());
        }
        let txs: usize = blocks.iter().map(|b| b.tx_ids().len()).sum();
        let now_ms = super::wall_ms();
        self.shared
            .metrics
            .throughput
            .record(now_ms, txs as u64, blocks.len() as u64);
        let head = self.chain.head().clone();
        if finalized_view.is_some()
            && let Some(last) = blocks.last()
        {
            // Finality latency: from the proposer's clock at the block's creation to this
            // node's commit of it (the certified block, the newest of the batch).
            let latency_ms = now_ms.saturating_sub(last.header().timestamp_ms);
            self.shared
                .metrics
                .finality_latency_ms
                .set(i64::try_from(latency_ms).unwrap_or(i64::MAX));
        }
        info!(height = head.height, view = head.view, hash = %self.chain.head_hash(), txs, "finalized");
        self.shared.metrics.height.set(head.height as i64);
        self.shared.committed_height.send_replace(head.height);
        if let Some(trigger) = &self.shared.snapshots {
            trigger.committed(head.height);
        }
        self.mempool_changed();
        // Votes below a finalized view of the running epoch can never matter again (views
        // restart in every epoch, so only that epoch's views may prune).
        if let Some(view) = finalized_view
            && self.chain.head_hash() != self.chain.epoch_anchor()
        {
            store
                .wal_prune_below(view.min(head.view))
                .map_err(|e| FatalError(format!("consensus WAL prune failed: {e}")))?;
        }
        self.buffer.prune(head.height);
        self.apply_governed_params()
    }

    /// Applies the chain parameters of the committed head's governance record if a
    /// `set_params` changed them: the mempool bounds (a pool above a lowered bound admits
    /// nothing until it drains), the block interval, the consensus timeouts (from the next
    /// deadline on; liveness only) and the admission difficulty (new proofs only; admitted
    /// peers stay). Block limits need nothing here: validation and the leader read them from
    /// each block's parent state ([`cairn_ledger::BlockLimits::at`]). Every node applies a
    /// change when it commits the block that made it, so the moments differ by the
    /// commit skew, which none of these parameters' safety depends on.
    fn apply_governed_params(&mut self) -> Result<(), FatalError> {
        use cairn_ledger::StateReader as _;
        let Some(governance) = self
            .chain
            .store()
            .governance()
            .map_err(|e| FatalError(e.to_string()))?
        else {
            return Ok(());
        };
        let new = &governance.params;
        let old = &self.params.params_in_force;
        if new == old {
            return Ok(());
        }
        info!(
            height = self.chain.head().height,
            ?old,
            ?new,
            "chain parameters changed by governance: applying"
        );
        let mempool = crate::mempool::MempoolConfig::from_params(new);
        // A governed ChainParams passed `ChainParams::validate`, whose ranges imply the
        // mempool's and the consensus's own checks.
        assert!(
            mempool.validate().is_ok(),
            "governed mempool bounds are valid"
        );
        self.mempool.set_config(mempool);
        self.shared.sender_future_max.store(
            new.mempool_sender_future_max,
            std::sync::atomic::Ordering::Relaxed,
        );
        self.params.block_interval_ms = new.block_interval_ms;
        self.params.leader_timeout_ms = new.leader_timeout_ms;
        let timeouts = cairn_consensus::Timeouts {
            leader_timeout_ms: new.leader_timeout_ms,
            notarization_timeout_ms: new.notarization_timeout_ms,
            nullify_retry_ms: new.nullify_retry_ms,
        };
        self.epochs
            .set_timeouts(timeouts)
            .map_err(|e| FatalError(format!("governed timeouts refused: {e}")))?;
        self.epoch_params.leader_timeout_ms = timeouts.leader_timeout_ms;
        self.epoch_params.notarization_timeout_ms = timeouts.notarization_timeout_ms;
        self.epoch_params.nullify_retry_ms = timeouts.nullify_retry_ms;
        if new.admission_difficulty_bits != old.admission_difficulty_bits {
            self.net
                .set_admission_difficulty(new.admission_difficulty_bits);
        }
        self.params.params_in_force = new.clone();
        self.mempool_changed();
        Ok(())
    }

    /// Handles a result of the sync client's requests: starts or continues sync, and
    /// commits a checked range.
    pub(super) async fn on_sync_event(&mut self, event: SyncEvent) -> Result<(), FatalError> {
        match event {
            SyncEvent::PeerStatus {
                peer,
                height,
                lowest_retained_height,
            } => {
                let head = self.chain.head().height;
                let now_ms = self.now_ms();
                self.sync
                    .on_status(peer, height, lowest_retained_height, head, now_ms);
            }
            SyncEvent::Pruned {
                id,
                from_height,
                peer,
                lowest_retained_height,
            } => {
                let head = self.chain.head().height;
                let now_ms = self.now_ms();
                self.sync
                    .on_pruned(id, from_height, peer, lowest_retained_height, head, now_ms);
            }
            SyncEvent::Blocks {
                id,
                from_height,
                checked,
            } => {
                let now_ms = self.now_ms();
                self.sync.on_blocks(id, from_height, checked, now_ms);
                // Commit every waiting range that is next in order (each pop removes one).
                while let Some((peer, range)) =
                    self.sync.next_range(self.chain.head().height, now_ms)
                {
                    if let Some(range) = range {
                        self.apply_synced(peer, range).await?;
                    }
                }
                let head = self.chain.head().height;
                self.sync.after_commit(head, now_ms);
            }
            SyncEvent::Failed { what, peer, reason } => {
                let now_ms = self.now_ms();
                let head = self.chain.head().height;
                self.sync.on_failed(what, peer, &reason, head, now_ms);
            }
        }
        Ok(())
    }

    /// Commits a range the sync client checked off this task and prepared
    /// ([`crate::sync_client::prepare_synced`]: up to the last block carrying a valid
    /// finalization certificate, hash-linked); every block is re-executed by `commit_next`.
    /// Only verified certificates are ever stored.
    async fn apply_synced(&mut self, peer: PeerId, range: SyncedRange) -> Result<(), FatalError> {
        let SyncedRange {
            blocks,
            epoch_proof,
            verified,
        } = range;
        let epoch = self.epoch();
        let mut committed = 0u64;
        let mut last_view = 0;
        // Every block here is covered by the range's last certificate (hash-linked), and its
        // body is the one its header commits to (sealed), so its signatures are the ones the
        // certifying validators checked.
        let trust_certified = !self.params.sync_reverify_signatures;
        for (block, certificate) in blocks {
            let height = block.header().height;
            if height <= self.chain.head().height {
                continue;
            }
            if self.chain.child_is_suffix(&self.chain.head_hash()) == Some(true) {
                // A synced boundary block ended the epoch: later blocks were certified by
                // the next epoch's set, which the sync client did not check them against.
                break;
            }
            last_view = block.header().view;
            let b = block.clone();
            let mempool = &self.mempool;
            match self
                .chain
                .commit_next(block, certificate.as_deref(), &|id, t| {
                    trust_certified
                        || holds_verified(mempool, id, t)
                        || (!verified.is_empty() && verified.contains(&t.signed_hash()))
                }) {
                Ok(()) => {
                    committed += 1;
                    self.shared.metrics.blocks_synced.inc();
                    self.after_commit(vec![b], None)?;
                }
                Err(ChainError::Storage(e)) => return Err(FatalError(e.to_string())),
                Err(e) => {
                    warn!(%peer, height, error = %e, "synced block refused");
                    break;
                }
            }
        }
        if self.chain.child_is_suffix(&self.chain.head_hash()) == Some(true) {
            info!(
                epoch = self.epoch(),
                head = self.chain.head().height,
                "synced an epoch's boundary block"
            );
            // Kept to serve the next node that syncs (it was verified by the sync client).
            if let Some(bytes) = &epoch_proof {
                self.chain
                    .store()
                    .meta_put(&format!("{EPOCH_PROOF_KEY_PREFIX}{epoch:020}"), bytes)
                    .map_err(|e| FatalError(e.to_string()))?;
            }
            self.epoch_end_waiting = None;
            let outputs = self.start_epoch_after_boundary(false)?;
            self.perform(outputs).await?;
        }
        if committed > 0 {
            info!(%peer, committed, head = self.chain.head().height, view = last_view, "synced blocks");
            self.retry_parked().await?;
        }
        Ok(())
    }
}
