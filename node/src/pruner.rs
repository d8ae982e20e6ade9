//! Block body pruning (`[storage] retain_blocks`): a background task that keeps only the
//! bodies of the last `retain_blocks` finalized blocks.
//!
//! The driver publishes each committed head height on a `watch` channel (a send that never
//! waits, [`crate::driver::Shared::committed_height`]); for each new head (changes coalesce)
//! this task runs **one** bounded step ([`cairn_ledger::Store::prune_bodies`] with
//! [`PruneLimits::default`]: at most [`cairn_ledger::PRUNE_BLOCKS_PER_STEP_MAX`] blocks and
//! about [`cairn_ledger::PRUNE_TXS_PER_STEP_MAX`] transactions) on a blocking thread, so the
//! consensus task never waits for it and one commit triggers at most one step's deletes.
//! Behind by more than one step (pruning just turned on for a long chain), it catches up at
//! up to 64 blocks per committed block. Every [`COMPACT_EVERY_PRUNED_BLOCKS`] pruned blocks
//! it asks RocksDB to compact the pruned ranges ([`cairn_ledger::Store::compact_pruned`]),
//! on the same thread.
//!
//! A storage failure while pruning is fatal, as any other storage failure of the node: the
//! task returns it and the node stops.

use std::sync::Arc;

use cairn_ledger::{LedgerError, PruneLimits};
use tokio::sync::watch;
use tracing::{debug, info};

use crate::driver::Shared;

/// Pruned blocks between two compactions of the pruned ranges.
pub const COMPACT_EVERY_PRUNED_BLOCKS: u64 = 4096;

/// The height from which block bodies are kept when the head is `head`: the last
/// `retain_blocks` blocks, `head + 1 - retain_blocks ..= head` (0 while the chain is shorter).
pub fn keep_from(head: u64, retain_blocks: u64) -> u64 {
    (head + 1).saturating_sub(retain_blocks)
}

/// Runs the pruner over `shared`'s store until `stop` turns true or the driver's head channel
/// closes. `retain_blocks` ≥ 1.
///
/// # Errors
/// A storage failure of a pruning step (fatal for the node).
pub async fn run(
    shared: Arc<Shared>,
    retain_blocks: u64,
    mut stop: watch::Receiver<bool>,
) -> Result<(), LedgerError> {
    assert!(retain_blocks >= 1, "retain_blocks must be positive");
    let store = shared.store.clone();
    let metrics = &shared.metrics;
    let mut head = shared.committed_height.subscribe();
    let mut since_compaction = 0u64;
    metrics
        .lowest_retained_height
        .set(i64::try_from(store.lowest_retained_height()).unwrap_or(i64::MAX));
    info!(
        retain_blocks,
        lowest_retained_height = store.lowest_retained_height(),
        "pruning block bodies"
    );
    loop {
        let height = *head.borrow_and_update();
        let keep = keep_from(height, retain_blocks);
        if keep > store.lowest_retained_height().max(1) {
            let s = store.clone();
            let compact = since_compaction >= COMPACT_EVERY_PRUNED_BLOCKS;
            let step = tokio::task::spawn_blocking(move || {
                let step = s.prune_bodies(keep, PruneLimits::default());
                if compact {
                    s.compact_pruned();
                }
                step
            })
            .await
            .map_err(|e| LedgerError::Storage {
                reason: format!("pruning task failed: {e}"),
            })??;
            if compact {
                since_compaction = 0;
            }
            since_compaction += step.blocks;
            metrics.blocks_pruned.inc_by(step.blocks);
            metrics.txs_pruned.inc_by(step.txs);
            metrics
                .lowest_retained_height
                .set(i64::try_from(step.lowest_retained_height).unwrap_or(i64::MAX));
            debug!(
                blocks = step.blocks,
                txs = step.txs,
                lowest_retained_height = step.lowest_retained_height,
                remaining = step.remaining_blocks,
                "pruned block bodies"
            );
        }
        tokio::select! {
            changed = head.changed() => if changed.is_err() { return Ok(()) },
            _ = stop.wait_for(|s| *s) => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_retain_blocks_bodies_are_kept() {
        assert_eq!(keep_from(0, 1024), 0);
        assert_eq!(keep_from(1023, 1024), 0);
        assert_eq!(
            keep_from(1024, 1024),
            1,
            "heights 1..=1024: genesis is extra"
        );
        assert_eq!(keep_from(5000, 1024), 3977);
        assert_eq!(5000 - keep_from(5000, 1024) + 1, 1024);
    }
}
