//! Prometheus metrics (prometheus-client), served at `GET /metrics` on the RPC listener.

use std::sync::atomic::{AtomicI64, AtomicU64};

use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::network::{NetworkStats, PeerSource};

/// The one label of the discovery families: `found`, how a peer was found
/// ([`PeerSource::as_str`]).
pub type FoundLabel = [(&'static str, &'static str); 1];

fn found(source: PeerSource) -> FoundLabel {
    [("found", source.as_str())]
}

/// Transactions and blocks committed per wall-clock second over the last
/// [`cairn_rpc::THROUGHPUT_BINS_MAX`] seconds (`getThroughput`, the dashboard's chart).
/// Bounded: one entry per second that had commits, the oldest dropped past the window.
#[derive(Default)]
pub struct ThroughputBins {
    /// `(second since the Unix epoch, txs, blocks)`, ascending seconds.
    bins: std::sync::Mutex<std::collections::VecDeque<(u64, u64, u64)>>,
    /// The second the series starts at (no bins before it): when the node started.
    start_s: std::sync::atomic::AtomicU64,
}

impl ThroughputBins {
    /// A series that starts at `now_ms`.
    pub fn starting_at(now_ms: u64) -> ThroughputBins {
        let t = ThroughputBins::default();
        t.start_s
            .store(now_ms / 1000, std::sync::atomic::Ordering::Relaxed);
        t
    }

    /// Counts `txs` transactions in `blocks` blocks committed at `now_ms`.
    pub fn record(&self, now_ms: u64, txs: u64, blocks: u64) {
        let second = now_ms / 1000;
        let mut bins = self.bins.lock().unwrap_or_else(|e| e.into_inner());
        match bins.back_mut() {
            Some(last) if last.0 == second => {
                last.1 += txs;
                last.2 += blocks;
            }
            // A clock that stepped back: counted in the latest second.
            Some(last) if last.0 > second => {
                last.1 += txs;
                last.2 += blocks;
            }
            _ => bins.push_back((second, txs, blocks)),
        }
        let window = cairn_rpc::THROUGHPUT_BINS_MAX as u64;
        while bins
            .front()
            .is_some_and(|b| b.0.saturating_add(window) < second)
        {
            bins.pop_front();
        }
    }

    /// Every whole second of the window before `now_ms`'s second, from the later of the
    /// window's start and the series' start, zero bins included.
    pub fn series(&self, now_ms: u64) -> cairn_rpc::Throughput {
        let current = now_ms / 1000;
        let window = cairn_rpc::THROUGHPUT_BINS_MAX as u64;
        let first = current
            .saturating_sub(window)
            .max(self.start_s.load(std::sync::atomic::Ordering::Relaxed));
        let bins = self.bins.lock().unwrap_or_else(|e| e.into_inner());
        let mut counted = bins.iter().peekable();
        let mut out = Vec::with_capacity(current.saturating_sub(first) as usize);
        for second in first..current {
            while counted.peek().is_some_and(|b| b.0 < second) {
                counted.next();
            }
            let (txs, blocks) = match counted.peek() {
                Some(b) if b.0 == second => (b.1, b.2),
                _ => (0, 0),
            };
            out.push(cairn_rpc::ThroughputBin {
                start_ms: second * 1000,
                txs,
                blocks,
            });
        }
        cairn_rpc::Throughput {
            bin_ms: 1000,
            bins: out,
        }
    }
}

/// All node metrics. Cheap to clone handles out of; updated by the driver.
pub struct Metrics {
    registry: Registry,
    /// gossipsub's own registry (`cairn_gossipsub_*`), encoded after `registry`; set once by
    /// [`Metrics::with_gossip`].
    gossip: Option<std::sync::Arc<Registry>>,
    /// Transactions and blocks committed per second lately (not exported to Prometheus,
    /// which has `txs_finalized` and `blocks_finalized`; served by `getThroughput`).
    pub throughput: ThroughputBins,
    /// RocksDB's write-stall and compaction figures (`cairn_rocksdb_*`), brought up to date
    /// on each `GET /metrics` ([`Metrics::catch_up_rocksdb`]).
    pub rocksdb: RocksDbMetrics,
    /// Open WebSocket connections (`GET /ws`).
    pub ws_connections: Gauge<i64, AtomicI64>,
    /// Open WebSocket subscriptions, over all connections.
    pub ws_subscriptions: Gauge<i64, AtomicI64>,
    /// WebSocket connections accepted since start.
    pub ws_connections_accepted: Counter<u64, AtomicU64>,
    /// WebSocket upgrades refused because `rpc.ws_connections_max` were open.
    pub ws_connections_refused: Counter<u64, AtomicU64>,
    /// WebSocket connections closed because their consumer fell behind (send queue full or
    /// finalized blocks missed).
    pub ws_lag_disconnects: Counter<u64, AtomicU64>,
    /// Finalized head height.
    pub height: Gauge<i64, AtomicI64>,
    /// Current consensus view (views restart at 0 in every epoch).
    pub view: Gauge<i64, AtomicI64>,
    /// Current epoch (validator-set changes so far).
    pub epoch: Gauge<i64, AtomicI64>,
    /// Transactions in the mempool.
    pub mempool_txs: Gauge<i64, AtomicI64>,
    /// Finality latency of the latest block this node finalized through consensus, ms:
    /// its wall clock at the commit minus the block header's `timestamp_ms` (the
    /// proposer's clock), 0 if negative. -1 until the first such block since start (synced
    /// blocks do not count). Measured in `driver::commit`; also `getStatus`'s
    /// `finalityLatencyMs`.
    pub finality_latency_ms: Gauge<i64, AtomicI64>,
    /// Connected peers.
    pub peers: Gauge<i64, AtomicI64>,
    /// Blocks finalized (committed) since start.
    pub blocks_finalized: Counter<u64, AtomicU64>,
    /// Transactions finalized since start.
    pub txs_finalized: Counter<u64, AtomicU64>,
    /// Bytes of block sync responses received (ranges of finalized blocks) since start.
    pub sync_bytes_received: Counter<u64, AtomicU64>,
    /// Bytes received by state sync at start (offers and chunks, bad ones included).
    pub state_sync_bytes_received: Counter<u64, AtomicU64>,
    /// Height of the snapshot this node joined by state sync at start (0: none).
    pub state_sync_height: Gauge<i64, AtomicI64>,
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
    /// Sync requests this node held back to stay within its own pacing of a peer.
    pub sync_requests_paced: Counter<u64, AtomicU64>,
    /// Sync requests not sent because pacing would have held them back too long.
    pub sync_requests_paced_refused: Counter<u64, AtomicU64>,
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
    /// Gossip messages and sync requests from peers not (yet) admitted, dropped
    /// (`NetworkStats::unadmitted_dropped`).
    pub unadmitted_dropped: Counter<u64, AtomicU64>,
    /// Admitted non-validator peers disconnected for a gossipsub score below
    /// `SCORE_DISCONNECT` (bans included) (`NetworkStats::peers_disconnected_score`).
    pub peers_disconnected_score: Counter<u64, AtomicU64>,
    /// Connections of banned peers closed as soon as they were established
    /// (`NetworkStats::connections_refused_banned`).
    pub connections_refused_banned: Counter<u64, AtomicU64>,
    /// IP addresses banned for carrying more than `banned_identities_per_ip_max` banned
    /// identities (`NetworkStats::ips_banned`).
    pub ips_banned: Counter<u64, AtomicU64>,
    /// Connections of non-validator peers from banned IP addresses closed at once
    /// (`NetworkStats::connections_refused_banned_ip`).
    pub connections_refused_banned_ip: Counter<u64, AtomicU64>,
    /// Connections closed because `connections_max` was reached
    /// (`NetworkStats::connections_closed_limit`).
    pub connections_closed_limit: Counter<u64, AtomicU64>,
    /// Connections closed because their peer had `connections_per_peer_max` already
    /// (`NetworkStats::connections_closed_peer_limit`).
    pub connections_closed_peer_limit: Counter<u64, AtomicU64>,
    /// Connections closed because their IP address had `connections_per_ip_max` already
    /// (`NetworkStats::connections_closed_ip_limit`).
    pub connections_closed_ip_limit: Counter<u64, AtomicU64>,
    /// Proofs of work this node solved while running, for a higher difficulty or after
    /// leaving the validator set (`NetworkStats::admission_proofs_solved`).
    pub admission_proofs_solved: Counter<u64, AtomicU64>,
    /// Per-block execution and commit time ([`BlockTimings`]), shared with the chain.
    pub block_timings: BlockTimings,
    /// Refusals of this node's proof demanding more bits that started no solve (untrusted
    /// peer, or above 32 bits) (`NetworkStats::admission_claims_ignored`).
    pub admission_claims_ignored: Counter<u64, AtomicU64>,
    /// Connected peers whose admission exemption was withdrawn (they left the validator
    /// set) (`NetworkStats::admission_exemptions_withdrawn`).
    pub admission_exemptions_withdrawn: Counter<u64, AtomicU64>,
    /// Peer discovery (`docs/network.md`, "Metrics").
    pub discovery: DiscoveryMetrics,
    /// NAT traversal: AutoNAT, relay, hole punching (`docs/network.md`, "NAT traversal").
    pub nat: NatMetrics,
    /// The lowest height whose block body the node holds (0: nothing pruned;
    /// `[storage] retain_blocks`, `docs/operations.md`).
    pub lowest_retained_height: Gauge<i64, AtomicI64>,
    /// Block bodies pruned since start.
    pub blocks_pruned: Counter<u64, AtomicU64>,
    /// Transactions pruned (with their blocks' bodies) since start.
    pub txs_pruned: Counter<u64, AtomicU64>,
    /// Sync range requests of peers answered `Pruned` (below the lowest retained height).
    pub sync_requests_pruned: Counter<u64, AtomicU64>,
    /// Sync requests of peers served (answered from the store or the driver's memory).
    pub sync_requests_served: Counter<u64, AtomicU64>,
    /// Sync requests of peers refused for going over the peer's rate (answered
    /// `rate limited`; at most one in each 100 ms also counted against the peer).
    pub sync_requests_rate_limited: Counter<u64, AtomicU64>,
    /// Sync range requests of peers answered with at least one block.
    pub sync_ranges_served: Counter<u64, AtomicU64>,
    /// 1 while this node is behind and every peer that is ahead has pruned the next block
    /// (block sync cannot go on; only a fresh node joins pruned peers, by state sync), else 0.
    pub sync_blocked_pruned: Gauge<i64, AtomicI64>,
    /// The live Rust heap, bytes ([`crate::heap::allocated_bytes`], set on each render);
    /// exported only with the profiling feature `heap-stats`, which installs the counting
    /// allocator.
    pub heap_allocated_bytes: Gauge<i64, AtomicI64>,
}

/// Peer discovery's counters and gauges (`cairn_discovery_*`, `cairn_peers_connected`,
/// `cairn_kad_requests_refused`, `cairn_connections_closed_peers_max`), brought up to the
/// network layer's [`NetworkStats`] on each `GET /metrics` ([`Metrics::catch_up_network`]).
#[derive(Debug, Default)]
pub struct DiscoveryMetrics {
    /// Random walks (and validator lookups) started (`NetworkStats::discovery_walks`).
    pub walks: Counter<u64, AtomicU64>,
    /// Dials of discovered peers started (`NetworkStats::discovery_dials`).
    pub dials: Counter<u64, AtomicU64>,
    /// Dials of discovered peers that failed (`NetworkStats::discovery_dial_failures`).
    pub dial_failures: Counter<u64, AtomicU64>,
    /// New dial candidates learned, by `found` = `kademlia` | `identify`
    /// (`NetworkStats::discovery_found_*`).
    pub peers_found: Family<FoundLabel, Counter<u64, AtomicU64>>,
    /// Peers connected (first connection), by `found` = `configured` | `kademlia` |
    /// `identify` | `inbound` (`NetworkStats::peers_connected_*`).
    pub peers_connected: Family<FoundLabel, Counter<u64, AtomicU64>>,
    /// Peers in the Kademlia routing table at the last discovery tick.
    pub routing_table_peers: Gauge<i64, AtomicI64>,
    /// Dial candidates at the last discovery tick (at most 256).
    pub candidates: Gauge<i64, AtomicI64>,
    /// Kademlia requests never served (`NetworkStats::kad_requests_refused`).
    pub kad_requests_refused: Counter<u64, AtomicU64>,
    /// Connections of new peers closed at `p2p.peers_max`
    /// (`NetworkStats::connections_closed_peers_max`).
    pub connections_closed_peers_max: Counter<u64, AtomicU64>,
}

impl DiscoveryMetrics {
    fn register(r: &mut Registry) -> DiscoveryMetrics {
        let m = DiscoveryMetrics::default();
        // Every label value exists from the start (at 0), so a scrape shows the series.
        for s in [PeerSource::Kademlia, PeerSource::Identify] {
            let _created = m.peers_found.get_or_create(&found(s));
        }
        for s in [
            PeerSource::Configured,
            PeerSource::Kademlia,
            PeerSource::Identify,
            PeerSource::Inbound,
        ] {
            let _created = m.peers_connected.get_or_create(&found(s));
        }
        r.register(
            "discovery_walks",
            "Kademlia random walks and validator lookups started",
            m.walks.clone(),
        );
        r.register(
            "discovery_dials",
            "Dials of discovered peers started",
            m.dials.clone(),
        );
        r.register(
            "discovery_dial_failures",
            "Dials of discovered peers that failed",
            m.dial_failures.clone(),
        );
        r.register(
            "discovery_peers_found",
            "New dial candidates learned, by how they were found (kademlia, identify)",
            m.peers_found.clone(),
        );
        r.register(
            "peers_connected",
            "Peers connected (first connection), by how they were found (configured, kademlia, identify, inbound)",
            m.peers_connected.clone(),
        );
        r.register(
            "discovery_routing_table_peers",
            "Peers in the Kademlia routing table at the last discovery tick",
            m.routing_table_peers.clone(),
        );
        r.register(
            "discovery_candidates",
            "Dial candidates at the last discovery tick",
            m.candidates.clone(),
        );
        r.register(
            "kad_requests_refused",
            "Kademlia requests never served (record requests, unadmitted or refused peers)",
            m.kad_requests_refused.clone(),
        );
        r.register(
            "connections_closed_peers_max",
            "Connections of new peers closed at p2p.peers_max",
            m.connections_closed_peers_max.clone(),
        );
        m
    }

    /// Brings every discovery metric up to `stats` (counters never decrease; gauges set).
    fn catch_up(&self, stats: &NetworkStats) {
        Metrics::catch_up(&self.walks, stats.discovery_walks);
        Metrics::catch_up(&self.dials, stats.discovery_dials);
        Metrics::catch_up(&self.dial_failures, stats.discovery_dial_failures);
        for (s, v) in [
            (PeerSource::Kademlia, stats.discovery_found_kademlia),
            (PeerSource::Identify, stats.discovery_found_identify),
        ] {
            Metrics::catch_up(&self.peers_found.get_or_create(&found(s)), v);
        }
        for (s, v) in [
            (PeerSource::Configured, stats.peers_connected_configured),
            (PeerSource::Kademlia, stats.peers_connected_kademlia),
            (PeerSource::Identify, stats.peers_connected_identify),
            (PeerSource::Inbound, stats.peers_connected_inbound),
        ] {
            Metrics::catch_up(&self.peers_connected.get_or_create(&found(s)), v);
        }
        let g = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.routing_table_peers
            .set(g(stats.discovery_routing_table_peers));
        self.candidates.set(g(stats.discovery_candidates));
        Metrics::catch_up(&self.kad_requests_refused, stats.kad_requests_refused);
        Metrics::catch_up(
            &self.connections_closed_peers_max,
            stats.connections_closed_peers_max,
        );
    }
}

/// NAT traversal metrics (`cairn_nat_*`, `cairn_relay_*`, `cairn_dcutr_*`), brought up to
/// the network layer's [`NetworkStats`] on each scrape.
#[derive(Debug, Default)]
pub struct NatMetrics {
    /// What AutoNAT concluded: 0 unknown, 1 public, 2 private (`NetworkStats::nat_status`).
    pub status: Gauge<i64, AtomicI64>,
    /// Reservations this node holds on relays now.
    pub reservations_held: Gauge<i64, AtomicI64>,
    /// Reservations this node's relay service accepted (new or renewed).
    pub reservations_served: Counter<u64, AtomicU64>,
    /// Reservations this node's relay service denied (unadmitted peer, limits).
    pub reservations_denied: Counter<u64, AtomicU64>,
    /// Circuits this node's relay service opened.
    pub circuits_served: Counter<u64, AtomicU64>,
    /// Circuits this node's relay service denied (unadmitted source, no reservation, limits).
    pub circuits_denied: Counter<u64, AtomicU64>,
    /// Relayed connections hole punching (DCUtR) upgraded to direct ones.
    pub dcutr_upgrades: Counter<u64, AtomicU64>,
    /// Hole-punching attempts that failed (the connection stays relayed).
    pub dcutr_failures: Counter<u64, AtomicU64>,
}

impl NatMetrics {
    fn register(r: &mut Registry) -> NatMetrics {
        let m = NatMetrics::default();
        r.register(
            "nat_status",
            "AutoNAT's conclusion about this node's reachability: 0 unknown, 1 public, 2 private",
            m.status.clone(),
        );
        r.register(
            "relay_reservations_held",
            "Reservations this node holds on relays (p2p.relays)",
            m.reservations_held.clone(),
        );
        r.register(
            "relay_reservations_served",
            "Reservations this node's relay service accepted (new or renewed)",
            m.reservations_served.clone(),
        );
        r.register(
            "relay_reservations_denied",
            "Reservations this node's relay service denied (unadmitted peer, limits reached)",
            m.reservations_denied.clone(),
        );
        r.register(
            "relay_circuits_served",
            "Circuits this node's relay service opened",
            m.circuits_served.clone(),
        );
        r.register(
            "relay_circuits_denied",
            "Circuits this node's relay service denied (unadmitted source, no reservation, limits)",
            m.circuits_denied.clone(),
        );
        r.register(
            "dcutr_upgrades",
            "Relayed connections that hole punching (DCUtR) upgraded to direct ones",
            m.dcutr_upgrades.clone(),
        );
        r.register(
            "dcutr_failures",
            "Hole-punching attempts that failed (the connection stays relayed)",
            m.dcutr_failures.clone(),
        );
        m
    }

    /// Brings every NAT metric up to `stats` (counters never decrease; gauges set).
    fn catch_up(&self, stats: &NetworkStats) {
        let g = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.status.set(g(stats.nat_status));
        self.reservations_held.set(g(stats.relay_reservations_held));
        Metrics::catch_up(&self.reservations_served, stats.relay_reservations_served);
        Metrics::catch_up(&self.reservations_denied, stats.relay_reservations_denied);
        Metrics::catch_up(&self.circuits_served, stats.relay_circuits_served);
        Metrics::catch_up(&self.circuits_denied, stats.relay_circuits_denied);
        Metrics::catch_up(&self.dcutr_upgrades, stats.dcutr_upgrades);
        Metrics::catch_up(&self.dcutr_failures, stats.dcutr_failures);
    }
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
            ws_connections: Gauge::default(),
            ws_subscriptions: Gauge::default(),
            ws_connections_accepted: Counter::default(),
            ws_connections_refused: Counter::default(),
            ws_lag_disconnects: Counter::default(),
            height: Gauge::default(),
            view: Gauge::default(),
            epoch: Gauge::default(),
            mempool_txs: Gauge::default(),
            finality_latency_ms: Gauge::default(),
            peers: Gauge::default(),
            blocks_finalized: Counter::default(),
            txs_finalized: Counter::default(),
            sync_bytes_received: Counter::default(),
            state_sync_bytes_received: Counter::default(),
            state_sync_height: Gauge::default(),
            txs_rejected: Counter::default(),
            blocks_synced: Counter::default(),
            gossip_rejected: Counter::default(),
            peers_admitted: Counter::default(),
            peers_refused: Counter::default(),
            peers_banned: Counter::default(),
            peer_faults: Counter::default(),
            sync_requests_paced: Counter::default(),
            sync_requests_paced_refused: Counter::default(),
            evidence: Counter::default(),
            compact_blocks_rebuilt: Counter::default(),
            compact_blocks_waited: Counter::default(),
            compact_block_fetches: Counter::default(),
            proposals_forged: Counter::default(),
            block_bodies_refused: Counter::default(),
            sync_requests_dropped: Counter::default(),
            proposals_refused: Counter::default(),
            unadmitted_dropped: Counter::default(),
            peers_disconnected_score: Counter::default(),
            connections_refused_banned: Counter::default(),
            ips_banned: Counter::default(),
            connections_refused_banned_ip: Counter::default(),
            connections_closed_limit: Counter::default(),
            connections_closed_peer_limit: Counter::default(),
            connections_closed_ip_limit: Counter::default(),
            admission_proofs_solved: Counter::default(),
            block_timings: BlockTimings::default(),
            admission_claims_ignored: Counter::default(),
            admission_exemptions_withdrawn: Counter::default(),
            registry: Registry::default(),
            gossip: None,
            throughput: ThroughputBins::starting_at(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64),
            ),
            rocksdb: RocksDbMetrics::default(),
            discovery: DiscoveryMetrics::default(),
            nat: NatMetrics::default(),
            lowest_retained_height: Gauge::default(),
            blocks_pruned: Counter::default(),
            txs_pruned: Counter::default(),
            sync_requests_pruned: Counter::default(),
            sync_requests_served: Counter::default(),
            sync_requests_rate_limited: Counter::default(),
            sync_ranges_served: Counter::default(),
            sync_blocked_pruned: Gauge::default(),
            heap_allocated_bytes: Gauge::default(),
        };
        registry.register("height", "Finalized head height", m.height.clone());
        registry.register(
            "ws_connections",
            "Open WebSocket connections",
            m.ws_connections.clone(),
        );
        registry.register(
            "ws_subscriptions",
            "Open WebSocket subscriptions",
            m.ws_subscriptions.clone(),
        );
        registry.register(
            "ws_connections_accepted",
            "WebSocket connections accepted",
            m.ws_connections_accepted.clone(),
        );
        registry.register(
            "ws_connections_refused",
            "WebSocket upgrades refused at rpc.ws_connections_max",
            m.ws_connections_refused.clone(),
        );
        registry.register(
            "ws_lag_disconnects",
            "WebSocket connections closed because the consumer fell behind",
            m.ws_lag_disconnects.clone(),
        );
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
        m.finality_latency_ms.set(-1);
        registry.register(
            "finality_latency_ms",
            "Finality latency of the latest block finalized through consensus, ms from its header timestamp to the local commit (-1: none yet)",
            m.finality_latency_ms.clone(),
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
            "sync_bytes_received",
            "Bytes of block sync range responses received since start",
            m.sync_bytes_received.clone(),
        );
        registry.register(
            "state_sync_bytes_received",
            "Bytes received by state sync at start (offers and chunks)",
            m.state_sync_bytes_received.clone(),
        );
        registry.register(
            "state_sync_height",
            "Height of the snapshot this node joined by state sync (0: none)",
            m.state_sync_height.clone(),
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
            "sync_requests_paced",
            "Sync requests held back before sending to stay within this node's pacing of the peer (below the peers' sync-server rate)",
            m.sync_requests_paced.clone(),
        );
        registry.register(
            "sync_requests_paced_refused",
            "Sync requests not sent because this node's pacing would have held them back longer than 2 s",
            m.sync_requests_paced_refused.clone(),
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
        registry.register(
            "unadmitted_dropped",
            "Gossip messages and sync requests from unadmitted peers dropped",
            m.unadmitted_dropped.clone(),
        );
        registry.register(
            "peers_disconnected_score",
            "Peers disconnected for a low score (bans included)",
            m.peers_disconnected_score.clone(),
        );
        registry.register(
            "connections_refused_banned",
            "Connections of banned peers closed at once",
            m.connections_refused_banned.clone(),
        );
        registry.register(
            "ips_banned",
            "IP addresses banned for carrying too many banned identities",
            m.ips_banned.clone(),
        );
        registry.register(
            "connections_refused_banned_ip",
            "Connections from banned IP addresses closed at once",
            m.connections_refused_banned_ip.clone(),
        );
        registry.register(
            "connections_closed_limit",
            "Connections closed at the overall connection limit",
            m.connections_closed_limit.clone(),
        );
        registry.register(
            "connections_closed_peer_limit",
            "Connections closed at the per-peer connection limit",
            m.connections_closed_peer_limit.clone(),
        );
        registry.register(
            "connections_closed_ip_limit",
            "Connections closed at the per-IP connection limit",
            m.connections_closed_ip_limit.clone(),
        );
        registry.register(
            "admission_proofs_solved",
            "Admission proofs of work solved while running",
            m.admission_proofs_solved.clone(),
        );
        registry.register(
            "blocks_executed",
            "Blocks executed (built as leader, validated as pending, or validated by block sync)",
            m.block_timings.executed.clone(),
        );
        registry.register(
            "block_execute_micros",
            "Microseconds spent executing blocks (see cairn_blocks_executed_total): state reads, transfers and the state hash update",
            m.block_timings.execute_micros.clone(),
        );
        registry.register(
            "blocks_committed",
            "Blocks written to the store (one synced RocksDB WriteBatch each)",
            m.block_timings.committed.clone(),
        );
        registry.register(
            "block_commit_micros",
            "Microseconds spent writing committed blocks to the store (see cairn_blocks_committed_total)",
            m.block_timings.commit_micros.clone(),
        );
        registry.register(
            "admission_claims_ignored",
            "Demands for a stronger admission proof ignored (untrusted peer or out of range)",
            m.admission_claims_ignored.clone(),
        );
        registry.register(
            "admission_exemptions_withdrawn",
            "Connected peers whose admission exemption was withdrawn",
            m.admission_exemptions_withdrawn.clone(),
        );
        registry.register(
            "lowest_retained_height",
            "Lowest height whose block body the node holds (0: nothing pruned)",
            m.lowest_retained_height.clone(),
        );
        registry.register(
            "blocks_pruned",
            "Block bodies pruned since start (storage.retain_blocks)",
            m.blocks_pruned.clone(),
        );
        registry.register(
            "txs_pruned",
            "Transactions pruned with their blocks' bodies since start",
            m.txs_pruned.clone(),
        );
        registry.register(
            "sync_requests_served",
            "Sync requests of peers served",
            m.sync_requests_served.clone(),
        );
        registry.register(
            "sync_requests_rate_limited",
            "Sync requests of peers refused for going over the peer's rate (serve_requests_per_sec)",
            m.sync_requests_rate_limited.clone(),
        );
        registry.register(
            "sync_requests_pruned",
            "Sync range requests of peers answered pruned (below the lowest retained height)",
            m.sync_requests_pruned.clone(),
        );
        registry.register(
            "sync_ranges_served",
            "Sync range requests of peers answered with at least one block",
            m.sync_ranges_served.clone(),
        );
        registry.register(
            "sync_blocked_pruned",
            "1 while this node is behind and every peer ahead has pruned the next block",
            m.sync_blocked_pruned.clone(),
        );
        if cfg!(feature = "heap-stats") {
            registry.register(
                "heap_allocated_bytes",
                "Live Rust heap: bytes allocated and not yet freed (feature heap-stats)",
                m.heap_allocated_bytes.clone(),
            );
        }
        let rocksdb = RocksDbMetrics::register(registry.sub_registry_with_prefix("rocksdb"));
        let discovery = DiscoveryMetrics::register(&mut registry);
        let nat = NatMetrics::register(&mut registry);
        Metrics {
            registry,
            rocksdb,
            discovery,
            nat,
            ..m
        }
    }

    /// These metrics with gossipsub's registry (`NetworkHandle::gossip_registry`) encoded
    /// after the node's own.
    pub fn with_gossip(self, gossip: std::sync::Arc<Registry>) -> Metrics {
        Metrics {
            gossip: Some(gossip),
            ..self
        }
    }

    /// Brings the `cairn_rocksdb_*` metrics up to `f` (read from the store on each
    /// `GET /metrics`): counters never decrease, gauges are set.
    pub fn catch_up_rocksdb(&self, f: &cairn_ledger::RocksDbFigures) {
        let r = &self.rocksdb;
        Self::catch_up(&r.stall_micros, f.stall_micros);
        Self::catch_up(&r.compaction_read_bytes, f.compaction_read_bytes);
        Self::catch_up(&r.compaction_write_bytes, f.compaction_write_bytes);
        Self::catch_up(&r.flush_write_bytes, f.flush_write_bytes);
        let g = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        r.write_stopped.set(i64::from(f.write_stopped));
        r.delayed_write_rate_bytes_per_s
            .set(g(f.delayed_write_rate_bytes_per_s));
        r.running_compactions.set(g(f.running_compactions));
        r.running_flushes.set(g(f.running_flushes));
        r.pending_compaction_bytes
            .set(g(f.pending_compaction_bytes));
        r.immutable_memtables.set(g(f.immutable_memtables));
        r.table_readers_bytes.set(g(f.table_readers_bytes));
        r.block_cache_bytes.set(g(f.block_cache_bytes));
    }

    /// Brings a counter up to `total` (a monotonic count kept elsewhere, e.g. in
    /// `NetworkStats`); never decreases it.
    pub fn catch_up(counter: &Counter<u64, AtomicU64>, total: u64) {
        let now = counter.get();
        if total > now {
            counter.inc_by(total - now);
        }
    }

    /// Brings every counter kept in [`NetworkStats`] (admission, reputation, connection
    /// limits and discovery, [`DiscoveryMetrics`]) up to `stats`; called on each
    /// `GET /metrics`.
    pub fn catch_up_network(&self, stats: &NetworkStats) {
        self.discovery.catch_up(stats);
        self.nat.catch_up(stats);
        Self::catch_up(&self.peers_admitted, stats.peers_admitted);
        Self::catch_up(&self.peers_refused, stats.peers_refused);
        Self::catch_up(&self.peer_faults, stats.peer_faults);
        Self::catch_up(&self.sync_requests_paced, stats.requests_paced);
        Self::catch_up(
            &self.sync_requests_paced_refused,
            stats.requests_paced_refused,
        );
        Self::catch_up(&self.peers_banned, stats.peers_banned);
        Self::catch_up(&self.unadmitted_dropped, stats.unadmitted_dropped);
        Self::catch_up(
            &self.peers_disconnected_score,
            stats.peers_disconnected_score,
        );
        Self::catch_up(
            &self.connections_refused_banned,
            stats.connections_refused_banned,
        );
        Self::catch_up(&self.ips_banned, stats.ips_banned);
        Self::catch_up(
            &self.connections_refused_banned_ip,
            stats.connections_refused_banned_ip,
        );
        Self::catch_up(
            &self.connections_closed_limit,
            stats.connections_closed_limit,
        );
        Self::catch_up(
            &self.connections_closed_peer_limit,
            stats.connections_closed_peer_limit,
        );
        Self::catch_up(
            &self.connections_closed_ip_limit,
            stats.connections_closed_ip_limit,
        );
        Self::catch_up(&self.admission_proofs_solved, stats.admission_proofs_solved);
        Self::catch_up(
            &self.admission_claims_ignored,
            stats.admission_claims_ignored,
        );
        Self::catch_up(
            &self.admission_exemptions_withdrawn,
            stats.admission_exemptions_withdrawn,
        );
    }

    /// Brings the WebSocket gauges and counters up to `stats` (kept by the RPC server);
    /// called on each `GET /metrics`.
    pub fn catch_up_ws(&self, stats: &cairn_rpc::WsStats) {
        self.ws_connections
            .set(i64::try_from(stats.connections()).unwrap_or(i64::MAX));
        self.ws_subscriptions
            .set(i64::try_from(stats.subscriptions()).unwrap_or(i64::MAX));
        Self::catch_up(&self.ws_connections_accepted, stats.connections_total());
        Self::catch_up(&self.ws_connections_refused, stats.connections_refused());
        Self::catch_up(&self.ws_lag_disconnects, stats.lag_disconnects());
    }

    /// OpenMetrics text exposition format (ends with `# EOF`).
    pub fn render(&self) -> String {
        self.heap_allocated_bytes
            .set(i64::try_from(crate::heap::allocated_bytes()).unwrap_or(i64::MAX));
        let mut out = String::new();
        encode_registry(&mut out, &self.registry).expect("writing to a String cannot fail");
        if let Some(gossip) = &self.gossip {
            encode_registry(&mut out, gossip).expect("writing to a String cannot fail");
        }
        encode_eof(&mut out).expect("writing to a String cannot fail");
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

/// RocksDB's write-stall and compaction figures ([`cairn_ledger::RocksDbFigures`] has their
/// sources), exported as `cairn_rocksdb_<name>` (counters with `_total`).
#[derive(Debug, Default)]
pub struct RocksDbMetrics {
    /// Time writes were delayed or stopped by RocksDB's write controller, µs.
    pub stall_micros: Counter<u64, AtomicU64>,
    /// Bytes read by compactions.
    pub compaction_read_bytes: Counter<u64, AtomicU64>,
    /// Bytes written by compactions.
    pub compaction_write_bytes: Counter<u64, AtomicU64>,
    /// Bytes written by memtable flushes.
    pub flush_write_bytes: Counter<u64, AtomicU64>,
    /// 1 while writes are stopped.
    pub write_stopped: Gauge<i64, AtomicI64>,
    /// The delayed write rate in force, bytes/s (0: not delayed).
    pub delayed_write_rate_bytes_per_s: Gauge<i64, AtomicI64>,
    /// Compactions running.
    pub running_compactions: Gauge<i64, AtomicI64>,
    /// Memtable flushes running.
    pub running_flushes: Gauge<i64, AtomicI64>,
    /// Estimated bytes compaction must rewrite, all column families.
    pub pending_compaction_bytes: Gauge<i64, AtomicI64>,
    /// Immutable memtables waiting for a flush, all column families.
    pub immutable_memtables: Gauge<i64, AtomicI64>,
    /// Bytes open table files hold outside the block cache (the state's index and filters).
    pub table_readers_bytes: Gauge<i64, AtomicI64>,
    /// Bytes in RocksDB's shared block cache.
    pub block_cache_bytes: Gauge<i64, AtomicI64>,
}

impl RocksDbMetrics {
    fn register(r: &mut Registry) -> RocksDbMetrics {
        let m = RocksDbMetrics::default();
        r.register(
            "stall_micros",
            "Time RocksDB delayed or stopped writes (write stalls), microseconds",
            m.stall_micros.clone(),
        );
        r.register(
            "compaction_read_bytes",
            "Bytes read by RocksDB compactions",
            m.compaction_read_bytes.clone(),
        );
        r.register(
            "compaction_write_bytes",
            "Bytes written by RocksDB compactions",
            m.compaction_write_bytes.clone(),
        );
        r.register(
            "flush_write_bytes",
            "Bytes written by RocksDB memtable flushes",
            m.flush_write_bytes.clone(),
        );
        r.register(
            "write_stopped",
            "1 while RocksDB has stopped writes",
            m.write_stopped.clone(),
        );
        r.register(
            "delayed_write_rate_bytes_per_s",
            "RocksDB's delayed write rate in force, bytes per second (0: not delayed)",
            m.delayed_write_rate_bytes_per_s.clone(),
        );
        r.register(
            "running_compactions",
            "RocksDB compactions running",
            m.running_compactions.clone(),
        );
        r.register(
            "running_flushes",
            "RocksDB memtable flushes running",
            m.running_flushes.clone(),
        );
        r.register(
            "pending_compaction_bytes",
            "Estimated bytes RocksDB compaction must rewrite, all column families",
            m.pending_compaction_bytes.clone(),
        );
        r.register(
            "immutable_memtables",
            "RocksDB immutable memtables waiting for a flush, all column families",
            m.immutable_memtables.clone(),
        );
        r.register(
            "table_readers_bytes",
            "Bytes RocksDB's open table files hold outside the block cache (index and filter blocks), all column families",
            m.table_readers_bytes.clone(),
        );
        r.register(
            "block_cache_bytes",
            "Bytes in RocksDB's block cache, shared by every column family",
            m.block_cache_bytes.clone(),
        );
        m
    }
}

/// The exported names (without `_total`) of the `NetworkStats` counters, in the order of
/// [`Metrics::catch_up_network`] (documented in `docs/admission.md`, "Metrics").
pub const ADMISSION_METRICS: [&str; 15] = [
    "cairn_peers_admitted",
    "cairn_peers_refused",
    "cairn_peer_faults",
    "cairn_peers_banned",
    "cairn_unadmitted_dropped",
    "cairn_peers_disconnected_score",
    "cairn_connections_refused_banned",
    "cairn_ips_banned",
    "cairn_connections_refused_banned_ip",
    "cairn_connections_closed_limit",
    "cairn_connections_closed_peer_limit",
    "cairn_connections_closed_ip_limit",
    "cairn_admission_proofs_solved",
    "cairn_admission_claims_ignored",
    "cairn_admission_exemptions_withdrawn",
];

/// The exported discovery metric names (counters without `_total`; the labelled families
/// carry `found`), documented in `docs/network.md`, "Metrics".
pub const DISCOVERY_METRICS: [&str; 9] = [
    "cairn_discovery_walks",
    "cairn_discovery_dials",
    "cairn_discovery_dial_failures",
    "cairn_discovery_peers_found",
    "cairn_peers_connected",
    "cairn_discovery_routing_table_peers",
    "cairn_discovery_candidates",
    "cairn_kad_requests_refused",
    "cairn_connections_closed_peers_max",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heap_gauge_is_exported_only_with_the_counting_allocator() {
        // Without `heap-stats` the counter is not the global allocator's and stays zero:
        // exporting it would report a heap of 0 bytes.
        let text = Metrics::new().render();
        assert_eq!(
            text.contains("cairn_heap_allocated_bytes "),
            cfg!(feature = "heap-stats"),
            "{text}"
        );
    }

    #[test]
    fn throughput_bins_cover_whole_seconds_of_the_window() {
        let start_ms = 1_000_000_000;
        let t = ThroughputBins::starting_at(start_ms);
        t.record(start_ms + 100, 5, 1);
        t.record(start_ms + 900, 7, 2);
        t.record(start_ms + 2_500, 3, 1);
        // A clock step back lands in the latest second.
        t.record(start_ms + 1_500, 1, 1);
        let s = t.series(start_ms + 3_200);
        assert_eq!(s.bin_ms, 1000);
        let got: Vec<(u64, u64, u64)> = s
            .bins
            .iter()
            .map(|b| (b.start_ms, b.txs, b.blocks))
            .collect();
        // The current second (3) is incomplete: not served.
        assert_eq!(
            got,
            [
                (start_ms, 12, 3),
                (start_ms + 1000, 0, 0),
                (start_ms + 2000, 4, 2)
            ]
        );
        // Far later: the window's last 300 seconds, all zero, and old entries dropped.
        let later = start_ms + 1_000_000;
        t.record(later, 2, 1);
        let s = t.series(later + 1_000);
        assert_eq!(s.bins.len(), cairn_rpc::THROUGHPUT_BINS_MAX);
        assert_eq!(s.bins.last().map(|b| (b.start_ms, b.txs)), Some((later, 2)));
        assert_eq!(s.bins.iter().map(|b| b.txs).sum::<u64>(), 2);
        assert_eq!(t.bins.lock().unwrap().len(), 1, "bounded by the window");
    }

    #[test]
    fn rocksdb_figures_are_exported_under_their_names() {
        let m = Metrics::new();
        m.catch_up_rocksdb(&cairn_ledger::RocksDbFigures {
            stall_micros: 1234,
            flush_write_bytes: 99,
            write_stopped: true,
            pending_compaction_bytes: 4096,
            table_readers_bytes: 777,
            block_cache_bytes: 8192,
            ..Default::default()
        });
        let text = m.render();
        for line in [
            "cairn_rocksdb_stall_micros_total 1234",
            "cairn_rocksdb_flush_write_bytes_total 99",
            "cairn_rocksdb_compaction_write_bytes_total 0",
            "cairn_rocksdb_write_stopped 1",
            "cairn_rocksdb_pending_compaction_bytes 4096",
            "cairn_rocksdb_delayed_write_rate_bytes_per_s 0",
            "cairn_rocksdb_table_readers_bytes 777",
            "cairn_rocksdb_block_cache_bytes 8192",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing in:\n{text}"
            );
        }
        // Counters never go back (a reopened database restarts its tickers at 0).
        m.catch_up_rocksdb(&cairn_ledger::RocksDbFigures::default());
        assert!(
            m.render()
                .lines()
                .any(|l| l == "cairn_rocksdb_stall_micros_total 1234")
        );
    }

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
            text.contains("cairn_finality_latency_ms -1\n"),
            "no latency measured yet: {text}"
        );
        m.finality_latency_ms.set(412);
        assert!(m.render().contains("cairn_finality_latency_ms 412\n"));
        assert!(
            text.ends_with("# EOF\n"),
            "OpenMetrics text ends with # EOF: {text}"
        );
    }

    /// Every admission, reputation and connection-limit counter of `NetworkStats` is
    /// exported, with its help text, and follows the network layer's count.
    #[test]
    fn network_admission_counters_are_exported() {
        let m = Metrics::new();
        let stats = NetworkStats {
            peers_admitted: 1,
            peers_refused: 2,
            peer_faults: 3,
            peers_banned: 4,
            unadmitted_dropped: 5,
            peers_disconnected_score: 6,
            connections_refused_banned: 7,
            ips_banned: 8,
            connections_refused_banned_ip: 9,
            connections_closed_limit: 10,
            connections_closed_peer_limit: 11,
            connections_closed_ip_limit: 12,
            admission_proofs_solved: 13,
            admission_claims_ignored: 14,
            admission_exemptions_withdrawn: 15,
            ..NetworkStats::default()
        };
        m.catch_up_network(&stats);
        // Twice: a counter is brought up to the count, never past it.
        m.catch_up_network(&stats);
        let text = m.render();
        for (i, name) in ADMISSION_METRICS.iter().enumerate() {
            let sample = format!("{name}_total {}\n", i + 1);
            assert!(text.contains(&sample), "{sample:?} missing: {text}");
            let help = format!("# HELP {name} ");
            assert!(text.contains(&help), "{help:?} missing: {text}");
            let kind = format!("# TYPE {name} counter\n");
            assert!(text.contains(&kind), "{kind:?} missing: {text}");
        }
    }

    /// Every discovery counter and gauge is exported under its name, labelled families by
    /// `found`, and follows the network layer's figures.
    #[test]
    fn discovery_figures_are_exported() {
        let m = Metrics::new();
        let text = m.render();
        for name in DISCOVERY_METRICS {
            assert!(text.contains(&format!("# HELP {name} ")), "{name}: {text}");
        }
        assert!(text.contains("cairn_peers_connected_total{found=\"inbound\"} 0\n"));
        m.catch_up_network(&NetworkStats {
            discovery_walks: 3,
            discovery_dials: 4,
            discovery_dial_failures: 1,
            discovery_found_kademlia: 5,
            discovery_found_identify: 2,
            peers_connected_configured: 1,
            peers_connected_kademlia: 6,
            peers_connected_identify: 7,
            peers_connected_inbound: 8,
            discovery_routing_table_peers: 9,
            discovery_candidates: 10,
            kad_requests_refused: 11,
            connections_closed_peers_max: 12,
            ..NetworkStats::default()
        });
        let text = m.render();
        for line in [
            "cairn_discovery_walks_total 3",
            "cairn_discovery_dials_total 4",
            "cairn_discovery_dial_failures_total 1",
            "cairn_discovery_peers_found_total{found=\"kademlia\"} 5",
            "cairn_discovery_peers_found_total{found=\"identify\"} 2",
            "cairn_peers_connected_total{found=\"configured\"} 1",
            "cairn_peers_connected_total{found=\"kademlia\"} 6",
            "cairn_peers_connected_total{found=\"identify\"} 7",
            "cairn_peers_connected_total{found=\"inbound\"} 8",
            "cairn_discovery_routing_table_peers 9",
            "cairn_discovery_candidates 10",
            "cairn_kad_requests_refused_total 11",
            "cairn_connections_closed_peers_max_total 12",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing in:\n{text}"
            );
        }
    }

    /// Every NAT-traversal figure is exported under its name and follows the network
    /// layer's figures (the gauges are set, the counters caught up).
    #[test]
    fn nat_figures_are_exported() {
        let m = Metrics::new();
        m.catch_up_network(&NetworkStats {
            nat_status: 2,
            relay_reservations_held: 1,
            relay_reservations_served: 3,
            relay_reservations_denied: 4,
            relay_circuits_served: 5,
            relay_circuits_denied: 6,
            dcutr_upgrades: 7,
            dcutr_failures: 8,
            ..NetworkStats::default()
        });
        let text = m.render();
        for line in [
            "cairn_nat_status 2",
            "cairn_relay_reservations_held 1",
            "cairn_relay_reservations_served_total 3",
            "cairn_relay_reservations_denied_total 4",
            "cairn_relay_circuits_served_total 5",
            "cairn_relay_circuits_denied_total 6",
            "cairn_dcutr_upgrades_total 7",
            "cairn_dcutr_failures_total 8",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing in:\n{text}"
            );
        }
    }
}

/// Time spent executing and committing blocks: counters a scraper differences over an
/// interval to get the mean per block (`cairn_block_execute_micros_total /
/// cairn_blocks_executed_total`, and the same for commits). Cheap clones of shared
/// counters; the chain adds to them ([`crate::chain::Chain::set_timings`]).
#[derive(Clone, Debug, Default)]
pub struct BlockTimings {
    /// Blocks executed.
    pub executed: Counter<u64, AtomicU64>,
    /// Microseconds spent executing them.
    pub execute_micros: Counter<u64, AtomicU64>,
    /// Blocks committed to the store.
    pub committed: Counter<u64, AtomicU64>,
    /// Microseconds spent committing them.
    pub commit_micros: Counter<u64, AtomicU64>,
}

impl BlockTimings {
    /// Counts one execution that took `elapsed`.
    pub fn executed(&self, elapsed: std::time::Duration) {
        self.executed.inc();
        self.execute_micros
            .inc_by(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX));
    }

    /// Counts one commit that took `elapsed`.
    pub fn committed(&self, elapsed: std::time::Duration) {
        self.committed.inc();
        self.commit_micros
            .inc_by(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX));
    }
}
