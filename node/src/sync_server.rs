//! The sync server: answers peers' sync requests ([`crate::sync`]) on its own task, over
//! the store, so that serving a catching-up peer never delays the driver task that handles
//! votes.
//!
//! - **Off the driver.** Finalized data (the head, ranges of blocks with their
//!   certificates, blocks and transactions by hash) is read from RocksDB on a blocking
//!   thread. Only blocks the driver holds in memory (pending, or received and sealed, not
//!   finalized yet) are asked of the driver, through a bounded queue
//!   ([`LOOKUP_QUEUE_MAX`]): a hash-map lookup there, never a store read.
//! - **Per-peer limits** ([`RequestLimiter`], pure state): each peer has a token bucket
//!   (`[sync] serve_requests_per_sec`, burst `serve_burst`) and at most
//!   `serve_in_flight_per_peer_max` requests being served; all peers together at most
//!   `serve_in_flight_max`. A request beyond a peer's rate or concurrency is answered
//!   `Error("rate limited")` at once, and a peer that went over its rate is penalized
//!   ([`PeerFault::AbusiveRequests`]) at most once per [`PENALTY_INTERVAL_MS`], so a
//!   flooder is disconnected within about a second and then banned, while an honest peer
//!   that bursts past the limit once loses little. The limiter remembers at most [`LIMITER_PEERS_MAX`] peers.
//! - **Bounded queue in.** The driver forwards requests with `try_send` into a queue of
//!   [`REQUEST_QUEUE_MAX`]; when it is full the request is dropped unanswered (the requester
//!   sees no response), costing the driver nothing.
//!
//! What is served is what this node verified: finalized blocks and certificates it stored
//! (bodies sealed, certificates verified), and in-memory blocks the driver sealed.
//!
//! A node with `[storage] retain_blocks` has pruned old block bodies: its status answer
//! carries the lowest height whose body it holds, and a range request from below it is
//! answered [`SyncResponse::Pruned`] (counted in `cairn_sync_requests_pruned_total`), which is
//! nobody's fault: the requester asks a peer that holds the range.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use cairn_ledger::{Block, Hash, SignedTransaction, Store};
use libp2p::PeerId;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tracing::{debug, warn};

use crate::network::{NetworkHandle, PeerFault, ResponseToken};
pub use crate::sync::{BLOCKS_PER_TOKEN, SNAPSHOT_CHUNK_COST, request_cost};
use crate::sync::{SYNC_BLOCKS_MAX, SyncRequest, SyncResponse, SyncedBlock, TX_FETCH_MAX};

/// Requests waiting for the sync server; beyond it the driver drops them unanswered.
pub const REQUEST_QUEUE_MAX: usize = 256;
/// Lookups of in-memory blocks waiting for the driver.
pub const LOOKUP_QUEUE_MAX: usize = 64;
/// Most peers the limiter remembers; when full, the peer least recently seen is dropped.
pub const LIMITER_PEERS_MAX: usize = 4096;
/// Least time between two [`PeerFault::AbusiveRequests`] penalties of one peer, ms: a peer
/// that keeps sending over its rate loses at most 100 points a second, so a flooder is
/// disconnected within about a second and banned within a few, while a peer that goes over
/// once loses 10. (An honest node stays far below the rate: one range request in flight
/// while catching up, about one transactions request per compact block.)
pub const PENALTY_INTERVAL_MS: u64 = 100;

/// Limits of the sync server (from `[sync]` in the node config).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncServerLimits {
    /// Sustained requests per second per peer (token refill rate), ≥ 1.
    pub requests_per_sec: u32,
    /// Bucket size: requests a peer may send at once after being idle, ≥ 1.
    pub burst: u32,
    /// Requests of one peer being served at once, ≥ 1.
    pub in_flight_per_peer_max: u32,
    /// Requests of all peers being served at once, ≥ 1.
    pub in_flight_max: u32,
}

/// What the limiter says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Serve it (the caller must call [`RequestLimiter::done`] when finished).
    Serve,
    /// Over the peer's rate: refuse; `penalize` is true at most once per
    /// [`PENALTY_INTERVAL_MS`] per peer.
    OverRate {
        /// Whether to count it against the peer's score now.
        penalize: bool,
    },
    /// The peer (or all peers together) has as many requests in flight as allowed: refuse,
    /// without penalty (a slow server is not the peer's fault).
    Busy,
}

#[derive(Debug, Clone)]
struct PeerBucket {
    tokens: f64,
    last_ms: u64,
    in_flight: u32,
    last_penalty_ms: Option<u64>,
}

/// Per-peer token buckets and in-flight counts. Pure state: the caller passes the clock.
#[derive(Debug)]
pub struct RequestLimiter {
    limits: SyncServerLimits,
    peers: HashMap<PeerId, PeerBucket>,
    in_flight: u32,
}

impl RequestLimiter {
    /// A limiter with `limits`.
    ///
    /// # Panics
    /// If a limit is zero (config validation refuses that).
    pub fn new(limits: SyncServerLimits) -> RequestLimiter {
        assert!(
            limits.requests_per_sec >= 1
                && limits.burst >= 1
                && limits.in_flight_per_peer_max >= 1
                && limits.in_flight_max >= 1,
            "sync server limits must be positive: {limits:?}"
        );
        RequestLimiter {
            limits,
            peers: HashMap::new(),
            in_flight: 0,
        }
    }

    /// Requests being served, all peers.
    pub fn in_flight(&self) -> u32 {
        self.in_flight
    }

    /// Decides on one request of `peer` at `now_ms` that costs `cost` tokens (≥ 1; see
    /// [`request_cost`]).
    pub fn admit(&mut self, peer: PeerId, now_ms: u64, cost: u32) -> Admission {
        let cost = f64::from(cost.max(1));
        if !self.peers.contains_key(&peer) && self.peers.len() >= LIMITER_PEERS_MAX {
            // Drop the idlest peer without work in flight (its bucket refills to full anyway
            // once idle for burst / rate seconds).
            let idlest = self
                .peers
                .iter()
                .filter(|(_, b)| b.in_flight == 0)
                .min_by_key(|(_, b)| b.last_ms)
                .map(|(p, _)| *p);
            match idlest {
                Some(p) => {
                    self.peers.remove(&p);
                }
                None => return Admission::Busy,
            }
        }
        let limits = self.limits;
        let bucket = self.peers.entry(peer).or_insert(PeerBucket {
            tokens: limits.burst as f64,
            last_ms: now_ms,
            in_flight: 0,
            last_penalty_ms: None,
        });
        let elapsed_ms = now_ms.saturating_sub(bucket.last_ms);
        bucket.tokens = (bucket.tokens
            + elapsed_ms as f64 * limits.requests_per_sec as f64 / 1000.0)
            .min(limits.burst as f64);
        bucket.last_ms = now_ms;
        if bucket.tokens < cost {
            let penalize = bucket
                .last_penalty_ms
                .is_none_or(|t| now_ms.saturating_sub(t) >= PENALTY_INTERVAL_MS);
            if penalize {
                bucket.last_penalty_ms = Some(now_ms);
            }
            return Admission::OverRate { penalize };
        }
        if bucket.in_flight >= limits.in_flight_per_peer_max
            || self.in_flight >= limits.in_flight_max
        {
            return Admission::Busy;
        }
        bucket.tokens -= cost;
        bucket.in_flight += 1;
        self.in_flight += 1;
        Admission::Serve
    }

    /// A request of `peer` admitted with [`Admission::Serve`] finished.
    pub fn done(&mut self, peer: PeerId) {
        assert!(self.in_flight > 0, "done without a request in flight");
        self.in_flight -= 1;
        if let Some(b) = self.peers.get_mut(&peer) {
            assert!(
                b.in_flight > 0,
                "done for a peer without a request in flight"
            );
            b.in_flight -= 1;
        }
    }
}

/// A lookup of an in-memory (pending or received) block, answered by the driver.
#[derive(Debug)]
pub enum Lookup {
    /// The block with this hash, if the driver holds it in memory.
    Block {
        /// Block hash.
        hash: Hash,
        /// The answer.
        reply: oneshot::Sender<Option<Block>>,
    },
    /// The transactions at `indices` of the in-memory block `block` (`None` if the block
    /// is not held or an index is out of range).
    Transactions {
        /// Block hash.
        block: Hash,
        /// Positions, at most [`TX_FETCH_MAX`].
        indices: Vec<u32>,
        /// The answer.
        reply: oneshot::Sender<Option<Vec<SignedTransaction>>>,
    },
}

/// One request for the sync server.
#[derive(Debug)]
pub struct ServeRequest {
    /// The requesting peer.
    pub peer: PeerId,
    /// The request bytes (bounded by the network layer).
    pub data: Vec<u8>,
    /// Where the answer goes.
    pub token: ResponseToken,
}

/// Runs the sync server until `requests` closes. `lookups` reaches the driver;
/// `response_bytes_max` bounds a `Blocks` response; `counters` count requests served,
/// refused over the rate, range requests answered [`SyncResponse::Pruned`] and those
/// answered with blocks; `snapshots` serves state snapshots (`None`: none are offered); `corrupt_ranges`
/// (Byzantine test nodes only, `--byzantine corrupt-ranges`) flips a bit of every served
/// block's state root, so no certificate of the range verifies.
// Each argument is one of the server's separate inputs, wired once in `node::run`.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    store: Arc<Store>,
    net: NetworkHandle,
    mut requests: mpsc::Receiver<ServeRequest>,
    lookups: mpsc::Sender<Lookup>,
    limits: SyncServerLimits,
    response_bytes_max: usize,
    counters: ServerCounters,
    snapshots: Option<Arc<crate::snapshots::SnapshotServe>>,
    corrupt_ranges: bool,
) {
    let started = Instant::now();
    let mut limiter = RequestLimiter::new(limits);
    let permits = Arc::new(Semaphore::new(limits.in_flight_max as usize));
    let (done_tx, mut done_rx) = mpsc::channel::<PeerId>(limits.in_flight_max as usize);
    loop {
        tokio::select! {
            Some(peer) = done_rx.recv() => limiter.done(peer),
            req = requests.recv() => {
                let Some(ServeRequest { peer, data, token }) = req else { break };
                let now_ms = started.elapsed().as_millis() as u64;
                // Decoding is cheap (at most SYNC_REQUEST_BYTES_MAX, checked by the network
                // layer); the cost depends on what is asked.
                let request = match SyncRequest::decode(&data) {
                    Ok(r) => r,
                    Err(e) => {
                        debug!(%peer, error = %e, "undecodable sync request");
                        net.penalize(peer, PeerFault::AbusiveRequests);
                        let net = net.clone();
                        tokio::spawn(async move {
                            net.respond(token, SyncResponse::Error(e.to_string()).encode()).await;
                        });
                        continue;
                    }
                };
                match limiter.admit(peer, now_ms, request_cost(&request)) {
                    Admission::Serve => {}
                    refused => {
                        if let Admission::OverRate { .. } = refused {
                            counters.rate_limited.inc();
                        }
                        if let Admission::OverRate { penalize: true } = refused {
                            warn!(%peer, "peer sends sync requests faster than its rate");
                            net.penalize(peer, PeerFault::AbusiveRequests);
                        }
                        let net = net.clone();
                        tokio::spawn(async move {
                            net.respond(token, SyncResponse::Error("rate limited".into()).encode()).await;
                        });
                        continue;
                    }
                }
                let permit = permits.clone().acquire_owned().await.expect("never closed");
                let (store, net, lookups, done_tx, snapshots) =
                    (store.clone(), net.clone(), lookups.clone(), done_tx.clone(), snapshots.clone());
                let (pruned_answers, ranges_served) = (counters.pruned.clone(), counters.ranges_served.clone());
                counters.served.inc();
                tokio::spawn(async move {
                    let mut response = match request {
                        SyncRequest::SnapshotOffer { .. } | SyncRequest::SnapshotChunk { .. } => {
                            answer_snapshot(snapshots, request).await
                        }
                        request => answer(&store, &lookups, request, response_bytes_max).await,
                    };
                    if let SyncResponse::Blocks(blocks) = &mut response
                        && !blocks.is_empty()
                    {
                        ranges_served.inc();
                        if corrupt_ranges {
                            for b in blocks.iter_mut() {
                                b.block.header.state_root.0[0] ^= 1;
                            }
                        }
                    }
                    if let SyncResponse::Pruned { lowest_retained_height } = &response {
                        debug!(%peer, lowest_retained_height, "sync range below the lowest retained height: answered pruned");
                        pruned_answers.inc();
                    }
                    net.respond(token, response.encode()).await;
                    drop(permit);
                    let _ = done_tx.send(peer).await;
                });
            }
        }
    }
}

/// The sync server's counters (the node's `cairn_sync_requests_*` metrics).
#[derive(Clone, Debug, Default)]
pub struct ServerCounters {
    /// Requests served.
    pub served: Counter<u64, AtomicU64>,
    /// Requests refused for going over the peer's rate.
    pub rate_limited: Counter<u64, AtomicU64>,
    /// Range requests answered `Pruned`.
    pub pruned: Counter<u64, AtomicU64>,
    /// Range requests answered with at least one block.
    pub ranges_served: Counter<u64, AtomicU64>,
}

/// Answers one request.
async fn answer(
    store: &Arc<Store>,
    lookups: &mpsc::Sender<Lookup>,
    request: SyncRequest,
    response_bytes_max: usize,
) -> SyncResponse {
    match request {
        SyncRequest::BlockTransactions { indices, .. } if indices.len() > TX_FETCH_MAX => {
            SyncResponse::Error(format!(
                "{} transactions asked for, at most {TX_FETCH_MAX}",
                indices.len()
            ))
        }
        SyncRequest::BlockByHash(hash) => {
            let (reply, rx) = oneshot::channel();
            if lookups.try_send(Lookup::Block { hash, reply }).is_ok()
                && let Ok(Some(b)) = rx.await
            {
                return SyncResponse::Block(Some(b));
            }
            let store = store.clone();
            blocking(move || store.block_by_hash(&hash).map(SyncResponse::Block)).await
        }
        SyncRequest::BlockTransactions { block, indices } => {
            let (reply, rx) = oneshot::channel();
            let request = Lookup::Transactions {
                block,
                indices: indices.clone(),
                reply,
            };
            if lookups.try_send(request).is_ok()
                && let Ok(Some(txs)) = rx.await
            {
                return SyncResponse::Transactions(txs);
            }
            let store = store.clone();
            blocking(move || {
                let txs = store
                    .block_by_hash(&block)?
                    .and_then(|b| pick(&b, &indices));
                Ok(SyncResponse::Transactions(txs.unwrap_or_default()))
            })
            .await
        }
        SyncRequest::Status => {
            let store = store.clone();
            blocking(move || {
                let head = store
                    .head()?
                    .ok_or_else(|| cairn_ledger::LedgerError::Corrupt {
                        reason: "store has no head".into(),
                    })?;
                Ok(SyncResponse::Status {
                    height: head.height,
                    hash: head.hash(),
                    lowest_retained_height: store.lowest_retained_height(),
                })
            })
            .await
        }
        SyncRequest::Blocks { from_height, count } => {
            let store = store.clone();
            blocking(move || blocks(&store, from_height, count, response_bytes_max)).await
        }
        SyncRequest::SnapshotOffer { .. } | SyncRequest::SnapshotChunk { .. } => {
            unreachable!("snapshot requests are answered by answer_snapshot")
        }
    }
}

/// Answers a snapshot request from this node's snapshot files, on a blocking thread.
async fn answer_snapshot(
    snapshots: Option<Arc<crate::snapshots::SnapshotServe>>,
    request: SyncRequest,
) -> SyncResponse {
    let Some(serve) = snapshots else {
        return match request {
            SyncRequest::SnapshotChunk { .. } => SyncResponse::SnapshotChunk(None),
            _ => SyncResponse::SnapshotOffer(None),
        };
    };
    let read = tokio::task::spawn_blocking(move || match request {
        SyncRequest::SnapshotOffer { height } => {
            serve.offer(height).map(SyncResponse::SnapshotOffer)
        }
        SyncRequest::SnapshotChunk { manifest, index } => serve
            .chunk(manifest, index)
            .map(SyncResponse::SnapshotChunk),
        _ => unreachable!("only snapshot requests are passed here"),
    })
    .await;
    match read {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            warn!(error = %e, "sync server: snapshot read failed");
            SyncResponse::Error("snapshot unavailable".into())
        }
        Err(e) => {
            debug!(error = %e, "sync server: snapshot task failed");
            SyncResponse::Error("internal error".into())
        }
    }
}

/// The transactions at `indices` of `b`, or `None` if an index is out of range.
pub fn pick(b: &Block, indices: &[u32]) -> Option<Vec<SignedTransaction>> {
    indices
        .iter()
        .map(|&i| b.transactions.get(i as usize).cloned())
        .collect()
}

/// Up to `count` (≤ [`SYNC_BLOCKS_MAX`]) finalized blocks from `from_height` with their
/// certificates, stopping early to stay under `response_bytes_max` (less 4 KiB of room);
/// [`SyncResponse::Pruned`] if the body at `from_height` was pruned (a range that reaches
/// bodies pruned while it is read ends before them).
pub fn blocks(
    store: &Store,
    from_height: u64,
    count: u16,
    response_bytes_max: usize,
) -> Result<SyncResponse, cairn_ledger::LedgerError> {
    let count = count.min(SYNC_BLOCKS_MAX) as u64;
    let budget = response_bytes_max.saturating_sub(4096);
    let mut out = Vec::new();
    let mut bytes = 0usize;
    if store.is_pruned(from_height) {
        return Ok(SyncResponse::Pruned {
            lowest_retained_height: store.lowest_retained_height(),
        });
    }
    for height in from_height..from_height.saturating_add(count) {
        let Some(block) = store.block_by_height(height)? else {
            if out.is_empty() && store.is_pruned(height) {
                return Ok(SyncResponse::Pruned {
                    lowest_retained_height: store.lowest_retained_height(),
                });
            }
            break;
        };
        let certificate = store.certificate(height)?;
        let size = block.encode().len() + certificate.as_ref().map_or(0, |c| c.len()) + 16;
        if bytes + size > budget && !out.is_empty() {
            break;
        }
        bytes += size;
        // An epoch's boundary block ends the response, with the proof that the epoch ended
        // (the requester checks the next blocks against the next epoch's set, which it
        // learns by executing this one).
        let boundary = store
            .epoch_at_height(height + 1)?
            .filter(|r| r.epoch > 0 && r.first_height == height + 1);
        let epoch_proof = match &boundary {
            Some(r) => store.meta_get(&format!(
                "{}{:020}",
                crate::driver::EPOCH_PROOF_KEY_PREFIX,
                r.epoch - 1
            ))?,
            None => None,
        };
        out.push(SyncedBlock {
            block,
            certificate,
            epoch_proof,
        });
        if boundary.is_some() {
            break;
        }
    }
    Ok(SyncResponse::Blocks(out))
}

/// Runs a store read on a blocking thread; a storage error is answered as `Error` (and
/// logged: the driver, which writes the store, stops the node on a fatal one).
async fn blocking(
    f: impl FnOnce() -> Result<SyncResponse, cairn_ledger::LedgerError> + Send + 'static,
) -> SyncResponse {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            warn!(error = %e, "sync server: store read failed");
            SyncResponse::Error("storage error".into())
        }
        Err(e) => {
            debug!(error = %e, "sync server: read task failed");
            SyncResponse::Error("internal error".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> SyncServerLimits {
        SyncServerLimits {
            requests_per_sec: 10,
            burst: 5,
            in_flight_per_peer_max: 2,
            in_flight_max: 3,
        }
    }

    fn peer(i: u8) -> PeerId {
        crate::keys::libp2p_keypair([i; 32]).public().to_peer_id()
    }

    #[test]
    fn a_peer_gets_its_burst_then_its_rate_and_is_penalized_at_most_once_an_interval() {
        let mut l = RequestLimiter::new(limits());
        let p = peer(1);
        for _ in 0..5 {
            assert_eq!(l.admit(p, 0, 1), Admission::Serve);
            l.done(p);
        }
        assert_eq!(l.admit(p, 0, 1), Admission::OverRate { penalize: true });
        assert_eq!(l.admit(p, 10, 1), Admission::OverRate { penalize: false });
        // 10 per second: one token per 100 ms.
        assert_eq!(l.admit(p, 100, 1), Admission::Serve);
        l.done(p);
        // Over again after the penalty interval: penalized again.
        assert_eq!(l.admit(p, 150, 1), Admission::OverRate { penalize: true });
        assert_eq!(l.admit(p, 1000, 1), Admission::Serve);
        l.done(p);
        // Still over its rate a second later: penalized once more, not once per request.
        let mut penalties = 0;
        for _ in 0..10 {
            match l.admit(p, 1001, 1) {
                Admission::Serve => l.done(p),
                Admission::OverRate { penalize } => penalties += usize::from(penalize),
                Admission::Busy => panic!("nothing in flight"),
            }
        }
        assert_eq!(penalties, 1);
        assert_eq!(l.admit(p, 1002, 1), Admission::OverRate { penalize: false });
        assert_eq!(l.admit(p, 1001 + PENALTY_INTERVAL_MS, 1), Admission::Serve);
        // Another peer is unaffected by the first one's flood.
        assert_eq!(l.admit(peer(2), 1002, 1), Admission::Serve);
    }

    #[test]
    fn a_range_costs_by_its_length() {
        assert_eq!(request_cost(&SyncRequest::Status), 1);
        let blocks = |count| SyncRequest::Blocks {
            from_height: 1,
            count,
        };
        assert_eq!(request_cost(&blocks(1)), 1);
        assert_eq!(request_cost(&blocks(64)), 2);
        assert_eq!(request_cost(&blocks(1024)), 17);
        assert_eq!(
            request_cost(&blocks(u16::MAX)),
            17,
            "capped at SYNC_BLOCKS_MAX"
        );
        let mut l = RequestLimiter::new(limits());
        let p = peer(3);
        // Burst 5: one 64-block range (2) and three status requests (1 each).
        assert_eq!(l.admit(p, 0, request_cost(&blocks(64))), Admission::Serve);
        l.done(p);
        for _ in 0..3 {
            assert_eq!(l.admit(p, 0, 1), Admission::Serve);
            l.done(p);
        }
        assert_eq!(
            l.admit(p, 0, request_cost(&blocks(64))),
            Admission::OverRate { penalize: true }
        );
    }

    #[test]
    fn in_flight_is_bounded_per_peer_and_in_total_without_penalty() {
        let mut l = RequestLimiter::new(limits());
        let (a, b) = (peer(1), peer(2));
        assert_eq!(l.admit(a, 0, 1), Admission::Serve);
        assert_eq!(l.admit(a, 0, 1), Admission::Serve);
        assert_eq!(l.admit(a, 0, 1), Admission::Busy);
        assert_eq!(l.admit(b, 0, 1), Admission::Serve);
        assert_eq!(l.admit(b, 0, 1), Admission::Busy, "total bound of 3");
        assert_eq!(l.in_flight(), 3);
        l.done(a);
        assert_eq!(l.admit(b, 0, 1), Admission::Serve);
        assert_eq!(l.in_flight(), 3);
    }

    #[test]
    fn the_limiter_remembers_a_bounded_number_of_peers() {
        let mut l = RequestLimiter::new(SyncServerLimits {
            in_flight_max: 10_000,
            ..limits()
        });
        for i in 0..(LIMITER_PEERS_MAX as u32 + 10) {
            let p = PeerId::random();
            assert_eq!(l.admit(p, i as u64, 1), Admission::Serve);
            l.done(p);
            assert!(l.peers.len() <= LIMITER_PEERS_MAX);
        }
    }
}
