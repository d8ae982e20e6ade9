//! Prometheus metrics (prometheus-client), served at `GET /metrics` on the RPC listener.

use std::sync::atomic::{AtomicI64, AtomicU64};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// All node metrics. Cheap to clone handles out of; updated by the driver.
pub struct Metrics {
    registry: Registry,
    /// Finalized head height.
    pub height: Gauge<i64, AtomicI64>,
    /// Current consensus view (views restart at 0 in every epoch).
    pub view: Gauge<i64, AtomicI64>,
    /// Current epoch (validator-set changes so far).
    pub epoch: Gauge<i64, AtomicI64>,
    /// Transactions in the mempool.
    pub mempool_txs: Gauge<i64, AtomicI64>,
    /// Connected peers.
    pub peers: Gauge<i64, AtomicI64>,
    /// Blocks finalized (committed) since start.
    pub blocks_finalized: Counter<u64, AtomicU64>,
    /// Transactions finalized since start.
    pub txs_finalized: Counter<u64, AtomicU64>,
    /// Transactions refused by the mempool (RPC or gossip).
    pub txs_rejected: Counter<u64, AtomicU64>,
    /// Blocks committed through block sync.
    pub blocks_synced: Counter<u64, AtomicU64>,
    /// Gossip messages rejected as invalid (the sender's fault).
    pub gossip_rejected: Counter<u64, AtomicU64>,
    /// Peers admitted after a valid proof of work (see `docs/admission.md`).
    pub peers_admitted: Counter<u64, AtomicU64>,
    /// Peers refused admission (wrong proof, or none within the deadline).
    pub peers_refused: Counter<u64, AtomicU64>,
    /// Peers banned for a low score.
    pub peers_banned: Counter<u64, AtomicU64>,
    /// Provable peer faults (bad block bodies, forged proposals, bad sync responses,
    /// abusive requests), each lowering the peer's score.
    pub peer_faults: Counter<u64, AtomicU64>,
    /// Equivocation evidence records stored (found locally or received by gossip).
    pub evidence: Counter<u64, AtomicU64>,
    /// Gossiped compact blocks rebuilt at once from the mempool.
    pub compact_blocks_rebuilt: Counter<u64, AtomicU64>,
    /// Gossiped compact blocks that had to wait for some of their transactions.
    pub compact_blocks_waited: Counter<u64, AtomicU64>,
    /// Requests for a waiting block's missing transactions (by index, or the whole block
    /// when too many are missing).
    pub compact_block_fetches: Counter<u64, AtomicU64>,
    /// Gossiped compact blocks refused because their leader vote was missing, not the
    /// leader's, or forged (the sender is penalized).
    pub proposals_forged: Counter<u64, AtomicU64>,
    /// Block bodies refused because they do not match their header's roots (fetched copies:
    /// the sender is penalized; rebuilt ones: the block is fetched whole).
    pub block_bodies_refused: Counter<u64, AtomicU64>,
    /// Sync requests dropped unanswered because the sync server's queue was full.
    pub sync_requests_dropped: Counter<u64, AtomicU64>,
    /// Proposals this node judged invalid (a leader-signed block whose header or execution
    /// is wrong): a verdict on the leader, answered with a nullify vote.
    pub proposals_refused: Counter<u64, AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric under the `cairn` prefix.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("cairn");
        let m = Metrics {
            height: Gauge::default(),
            view: Gauge::default(),
            epoch: Gauge::default(),
            mempool_txs: Gauge::default(),
            peers: Gauge::default(),
            blocks_finalized: Counter::default(),
            txs_finalized: Counter::default(),
            txs_rejected: Counter::default(),
            blocks_synced: Counter::default(),
            gossip_rejected: Counter::default(),
            peers_admitted: Counter::default(),
            peers_refused: Counter::default(),
            peers_banned: Counter::default(),
            peer_faults: Counter::default(),
            evidence: Counter::default(),
            compact_blocks_rebuilt: Counter::default(),
            compact_blocks_waited: Counter::default(),
            compact_block_fetches: Counter::default(),
            proposals_forged: Counter::default(),
            block_bodies_refused: Counter::default(),
            sync_requests_dropped: Counter::default(),
            proposals_refused: Counter::default(),
            registry: Registry::default(),
        };
        registry.register("height", "Finalized head height", m.height.clone());
        registry.register("view", "Current consensus view", m.view.clone());
        registry.register(
            "epoch",
            "Current epoch (validator-set changes so far)",
            m.epoch.clone(),
        );
        registry.register(
            "mempool_txs",
            "Transactions in the mempool",
            m.mempool_txs.clone(),
        );
        registry.register("peers", "Connected peers", m.peers.clone());
        registry.register(
            "blocks_finalized",
            "Blocks finalized since start",
            m.blocks_finalized.clone(),
        );
        registry.register(
            "txs_finalized",
            "Transactions finalized since start",
            m.txs_finalized.clone(),
        );
        registry.register(
            "txs_rejected",
            "Transactions refused by the mempool",
            m.txs_rejected.clone(),
        );
        registry.register(
            "blocks_synced",
            "Blocks committed through block sync",
            m.blocks_synced.clone(),
        );
        registry.register(
            "gossip_rejected",
            "Gossip messages rejected as invalid",
            m.gossip_rejected.clone(),
        );
        registry.register(
            "peers_admitted",
            "Peers admitted after a valid proof of work",
            m.peers_admitted.clone(),
        );
        registry.register(
            "peers_refused",
            "Peers refused admission (wrong or missing proof of work)",
            m.peers_refused.clone(),
        );
        registry.register(
            "peers_banned",
            "Peers banned for a low score",
            m.peers_banned.clone(),
        );
        registry.register(
            "evidence",
            "Equivocation evidence records stored",
            m.evidence.clone(),
        );
        registry.register(
            "compact_blocks_rebuilt",
            "Gossiped compact blocks rebuilt at once from the mempool",
            m.compact_blocks_rebuilt.clone(),
        );
        registry.register(
            "peer_faults",
            "Provable peer faults recorded against the peer's score",
            m.peer_faults.clone(),
        );
        registry.register(
            "proposals_forged",
            "Gossiped compact blocks refused for a missing or forged leader signature",
            m.proposals_forged.clone(),
        );
        registry.register(
            "block_bodies_refused",
            "Block bodies refused because they do not match their header's roots",
            m.block_bodies_refused.clone(),
        );
        registry.register(
            "sync_requests_dropped",
            "Sync requests dropped unanswered: the sync server's queue was full",
            m.sync_requests_dropped.clone(),
        );
        registry.register(
            "proposals_refused",
            "Leader-signed proposals judged invalid (wrong header or execution)",
            m.proposals_refused.clone(),
        );
        registry.register(
            "compact_blocks_waited",
            "Gossiped compact blocks that waited for some of their transactions",
            m.compact_blocks_waited.clone(),
        );
        registry.register(
            "compact_block_fetches",
            "Requests for a waiting compact block's missing transactions",
            m.compact_block_fetches.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Brings a counter up to `total` (a monotonic count kept elsewhere, e.g. in
    /// `NetworkStats`); never decreases it.
    pub fn catch_up(counter: &Counter<u64, AtomicU64>, total: u64) {
        let now = counter.get();
        if total > now {
            counter.inc_by(total - now);
        }
    }

    /// OpenMetrics text exposition format (ends with `# EOF`).
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }

    /// The `GET /metrics` answer: [`Metrics::render`] under the OpenMetrics content type
    /// ([`cairn_rpc::OPENMETRICS_CONTENT_TYPE`]).
    pub fn response(&self) -> axum::response::Response {
        use axum::response::IntoResponse;
        (
            [(
                axum::http::header::CONTENT_TYPE,
                cairn_rpc::OPENMETRICS_CONTENT_TYPE,
            )],
            self.render(),
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_served_as_openmetrics() {
        let m = Metrics::new();
        m.height.set(5);
        let response = m.response();
        assert_eq!(
            response.headers()[axum::http::header::CONTENT_TYPE],
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        );
        let text = m.render();
        assert!(text.contains("cairn_height 5"), "{text}");
        assert!(
            text.ends_with("# EOF\n"),
            "OpenMetrics text ends with # EOF: {text}"
        );
    }
}
