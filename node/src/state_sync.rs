//! The state-sync client: a node whose store holds only its genesis joins a long chain by
//! taking a snapshot of the state from its peers ([`cairn_ledger::snapshot`]) instead of
//! replaying every block, then block-syncs from the snapshot's height as usual.
//!
//! It runs in [`crate::node::run`] after the network starts and before the driver does
//! ([`run`]), draining network events meanwhile (gossip ignored, sync requests answered
//! `Error`), and:
//!
//! 1. waits (at most `sync.state_sync_wait_ms`) for `sync.state_sync_peers_min` admitted
//!    peers, asks each for its head and stops (block sync) unless the best is more than
//!    `sync.state_sync_min_gap_blocks` ahead;
//! 2. asks each peer for its newest snapshot ([`SyncRequest::SnapshotOffer`]), and for the
//!    heights other peers offered; keeps only offers whose manifest decodes within its
//!    bounds, names this chain, lies in the genesis epoch (the only validator set this node
//!    knows without replaying: see *Limits*) and whose block's finalization certificate
//!    verifies against the genesis set (an offer that fails is its sender's fault,
//!    [`PeerFault::BadSnapshotChunk`]); picks the highest manifest id offered by at least
//!    `state_sync_peers_min` peers, its *providers*;
//! 3. fetches the chunks from all providers at once, striped: a queue of missing chunks,
//!    each provider given the next one whenever it has fewer than
//!    `sync.state_sync_in_flight_per_peer_max` in flight (so faster peers serve more), each
//!    request bounded by the network's sync request timeout; every chunk is checked on
//!    arrival ([`verify_chunk`], off the async task) and written into the install
//!    ([`cairn_ledger::snapshot::SnapshotInstall`]), whose state hash grows with it. A
//!    chunk that fails its check is its server's fault: the peer is penalized
//!    ([`PeerFault::BadSnapshotChunk`], a ban), dropped as a provider, and the chunk goes
//!    back in the queue for another. A peer that does not answer, answers `None` or errs
//!    (transient) gets the chunk requeued, and is dropped after
//!    [`PEER_FAILURES_MAX`] failures in a row;
//! 4. completes the install only if the state's root equals the certified header's
//!    (`SnapshotInstall::finish`); otherwise (or when no provider is left) the store is
//!    wiped, the genesis written again, and the node falls back to block sync.
//!
//! # Limits
//!
//! The LtHash root commits to the whole state but cannot prove one record (no membership
//! proofs), so a node cannot learn a later epoch's validator set without replaying the
//! boundary block: state sync accepts only snapshots in epoch 0 (no validator-set change
//! yet). A chain past an epoch boundary is joined by block sync.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_consensus::ValidatorSet;
use cairn_ledger::snapshot::{SnapshotError, SnapshotManifest, verify_chunk};
use cairn_ledger::{Hash, Store};
use libp2p::PeerId;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::network::{Acceptance, NetworkEvent, NetworkHandle, PeerFault};
use crate::sync::{SNAPSHOT_CERTIFICATE_BYTES_MAX, SnapshotOffer, SyncRequest, SyncResponse};

/// Failures in a row (timeouts, `None`, errors) after which a provider is dropped.
pub const PEER_FAILURES_MAX: u32 = 3;
/// Most peers asked for heads and offers.
pub const PEERS_ASKED_MAX: usize = 32;
/// How often the client looks for admitted peers while waiting, ms.
const PEER_POLL_MS: u64 = 200;

/// State-sync parameters (from genesis and `[sync]`).
#[derive(Clone, Debug)]
pub struct StateSyncParams {
    /// The chain id (a manifest of another chain is refused).
    pub chain_id: String,
    /// The genesis hash: epoch 0's consensus namespace.
    pub namespace: [u8; 32],
    /// The genesis validator set.
    pub validators: ValidatorSet,
    /// `sync.state_sync_min_gap_blocks`.
    pub min_gap_blocks: u64,
    /// `sync.state_sync_peers_min`.
    pub peers_min: usize,
    /// `sync.state_sync_in_flight_per_peer_max`.
    pub in_flight_per_peer_max: usize,
    /// `sync.state_sync_wait_ms`.
    pub wait_ms: u64,
    /// Byte bound of a sync response (the network's).
    pub response_bytes_max: usize,
}

/// What a completed state sync did, for logs, metrics and the tests' figures.
#[derive(Clone, Debug, Default)]
pub struct StateSyncReport {
    /// The snapshot's height.
    pub height: u64,
    /// Its manifest id.
    pub manifest: Hash,
    /// Chunks installed.
    pub chunks: usize,
    /// Bytes received: the manifest offers and every chunk answer, bad ones included.
    pub bytes_received: u64,
    /// Providers at the start.
    pub providers: usize,
    /// Chunks installed per provider.
    pub chunks_by_peer: HashMap<PeerId, usize>,
    /// Peers that served a bad chunk or a bad offer (penalized).
    pub bad_peers: Vec<PeerId>,
    /// Wall time from the first request to the install, ms.
    pub elapsed_ms: u64,
}

/// Why state sync did not complete (the node then block-syncs).
#[derive(Debug, thiserror::Error)]
pub enum StateSyncError {
    /// No snapshot offered by enough peers.
    #[error("no snapshot offered by {peers_min} peers ({offers} usable offers)")]
    NoSnapshot {
        /// Peers needed.
        peers_min: usize,
        /// Offers that passed their checks.
        offers: usize,
    },
    /// Every provider failed or misbehaved before all chunks arrived.
    #[error("no provider left with {missing} chunks missing")]
    ProvidersExhausted {
        /// Chunks still missing.
        missing: usize,
    },
    /// The snapshot failed as a whole (a wrong manifest) or the store refused it.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
}

impl StateSyncError {
    /// Whether the node cannot go on (a storage failure).
    pub fn is_fatal(&self) -> bool {
        matches!(self, StateSyncError::Snapshot(e) if e.is_fatal())
    }
}

/// Runs state sync if it applies (module docs), draining `events` meanwhile. `Ok(None)`:
/// not needed (peers not far enough ahead, or too few peers within the wait). On an error
/// the store is left holding its genesis again (the caller reinitialises it if it is
/// empty) and the node should block-sync.
pub async fn run(
    store: &Arc<Store>,
    net: &NetworkHandle,
    events: &mut mpsc::Receiver<NetworkEvent>,
    params: &StateSyncParams,
) -> Result<Option<StateSyncReport>, StateSyncError> {
    let work = sync(store, net, params);
    tokio::pin!(work);
    loop {
        tokio::select! {
            result = &mut work => return result,
            Some(event) = events.recv() => drain(store, net, event),
        }
    }
}

/// The network events for the driver after state sync ran: the connection events drained
/// meanwhile are lost, so this announces every peer connected now
/// ([`NetworkEvent::PeerConnected`]) and then forwards `events`, through a new queue of
/// `queue_max` (at least the peers announced plus one) fed by a forwarding task that ends
/// when either side closes.
pub async fn resume_events(
    net: &NetworkHandle,
    mut events: mpsc::Receiver<NetworkEvent>,
    queue_max: usize,
) -> mpsc::Receiver<NetworkEvent> {
    let peers = net.peers().await;
    let (tx, rx) = mpsc::channel(queue_max.max(peers.len() + 1));
    for p in peers {
        tx.try_send(NetworkEvent::PeerConnected { peer: p.peer_id })
            .expect("the queue holds every connected peer");
    }
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if tx.send(event).await.is_err() {
                break;
            }
        }
    });
    rx
}

/// Answers what the driver would while it has not started: gossip is ignored, a head
/// request is answered with this node's head (so that nodes starting a chain together see
/// at once that nobody is ahead), other sync requests with `Error`.
fn drain(store: &Arc<Store>, net: &NetworkHandle, event: NetworkEvent) {
    match event {
        NetworkEvent::Gossip {
            source, message_id, ..
        } => {
            let net = net.clone();
            tokio::spawn(async move { net.report(message_id, source, Acceptance::Ignore).await });
        }
        NetworkEvent::Request { token, data, .. } => {
            let response = match (SyncRequest::decode(&data), store.head()) {
                (Ok(SyncRequest::Status), Ok(Some(head))) => SyncResponse::Status {
                    height: head.height,
                    hash: head.hash(),
                    lowest_retained_height: store.lowest_retained_height(),
                },
                _ => SyncResponse::Error("state syncing".into()),
            };
            let net = net.clone();
            tokio::spawn(async move { net.respond(token, response.encode()).await });
        }
        NetworkEvent::PeerConnected { .. } | NetworkEvent::PeerDisconnected { .. } => {}
    }
}

async fn admitted_peers(net: &NetworkHandle) -> Vec<PeerId> {
    let mut peers: Vec<PeerId> = net
        .peers()
        .await
        .into_iter()
        .filter(|p| p.admission.is_admitted())
        .map(|p| p.peer_id)
        .collect();
    peers.sort();
    peers.dedup();
    peers.truncate(PEERS_ASKED_MAX);
    peers
}

/// One request, decoded within `bytes_max`; counts the bytes received.
async fn ask(
    net: &NetworkHandle,
    peer: PeerId,
    request: SyncRequest,
    bytes_max: usize,
) -> (u64, Result<SyncResponse, String>) {
    match net.request(peer, request.encode(), request.cost()).await {
        Ok(bytes) => (
            bytes.len() as u64,
            SyncResponse::decode(&bytes, bytes_max).map_err(|e| e.to_string()),
        ),
        Err(e) => (0, Err(e.to_string())),
    }
}

/// A checked offer.
struct Offer {
    manifest: Arc<SnapshotManifest>,
    id: Hash,
    certificate: Vec<u8>,
}

/// Checks an offer (module docs, step 2). `Err` is the sender's fault.
fn check_offer(offer: SnapshotOffer, p: &StateSyncParams) -> Result<Offer, String> {
    if offer.certificate.len() > SNAPSHOT_CERTIFICATE_BYTES_MAX {
        return Err(format!("certificate of {} bytes", offer.certificate.len()));
    }
    let manifest = SnapshotManifest::decode(&offer.manifest).map_err(|e| e.to_string())?;
    if manifest.header.chain_id != p.chain_id {
        return Err(format!("manifest of chain {}", manifest.header.chain_id));
    }
    if manifest.epochs.len() > 1 {
        // Not a fault: a snapshot past an epoch boundary, which this node cannot check.
        return Err(String::new());
    }
    if !crate::sync_client::check_finalization(
        &offer.certificate,
        manifest.block_hash(),
        &p.namespace,
        &p.validators,
    ) {
        return Err("the certificate does not finalize the manifest's block".into());
    }
    Ok(Offer {
        id: manifest.id(),
        manifest: Arc::new(manifest),
        certificate: offer.certificate,
    })
}

async fn sync(
    store: &Arc<Store>,
    net: &NetworkHandle,
    p: &StateSyncParams,
) -> Result<Option<StateSyncReport>, StateSyncError> {
    let head = store
        .head()
        .map_err(SnapshotError::from)?
        .map_or(0, |h| h.height);
    if head != 0 {
        return Ok(None);
    }
    // 1. Peers and their heads: as soon as a peer answers that is not far enough ahead,
    // there is nothing to do (a chain starting up); otherwise wait for enough peers.
    let started = Instant::now();
    let deadline = started + Duration::from_millis(p.wait_ms);
    let mut report = StateSyncReport::default();
    let mut heads: HashMap<PeerId, u64> = HashMap::new();
    let peers = loop {
        let peers = admitted_peers(net).await;
        let unasked: Vec<PeerId> = peers
            .iter()
            .copied()
            .filter(|p| !heads.contains_key(p))
            .collect();
        let answers = futures::future::join_all(unasked.iter().map(|&peer| async move {
            let max = crate::sync_client::STATUS_RESPONSE_BYTES_MAX;
            let (bytes, r) = ask(net, peer, SyncRequest::Status, max).await;
            (peer, bytes, r)
        }))
        .await;
        for (peer, bytes, r) in answers {
            report.bytes_received += bytes;
            if let Ok(SyncResponse::Status { height, .. }) = r {
                heads.insert(peer, height);
            }
        }
        let best = heads.values().copied().max();
        if best.is_some_and(|b| b <= head.saturating_add(p.min_gap_blocks)) {
            info!(
                best,
                min_gap = p.min_gap_blocks,
                "state sync: peers are not far enough ahead; block sync"
            );
            return Ok(None);
        }
        let ready: Vec<PeerId> = peers
            .into_iter()
            .filter(|p| heads.contains_key(p))
            .collect();
        if ready.len() >= p.peers_min {
            break ready;
        }
        if Instant::now() >= deadline {
            info!(
                peers = ready.len(),
                needed = p.peers_min,
                "state sync: too few peers; block sync instead"
            );
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(PEER_POLL_MS)).await;
    };

    // 2. Offers: each peer's newest, then the heights others offered.
    let mut offers: HashMap<PeerId, Vec<Offer>> = HashMap::new();
    let mut bad: HashSet<PeerId> = HashSet::new();
    let mut asked: HashSet<(PeerId, u64)> = HashSet::new();
    let mut heights: Vec<u64> = vec![0];
    let mut queued: HashSet<u64> = HashSet::new();
    while let Some(height) = heights.pop() {
        let todo: Vec<PeerId> = peers
            .iter()
            .copied()
            .filter(|peer| !bad.contains(peer) && asked.insert((*peer, height)))
            .collect();
        let answers = futures::future::join_all(todo.iter().map(|&peer| async move {
            let req = SyncRequest::SnapshotOffer { height };
            let (bytes, r) = ask(net, peer, req, p.response_bytes_max).await;
            (peer, bytes, r)
        }))
        .await;
        for (peer, bytes, r) in answers {
            report.bytes_received += bytes;
            match r {
                Ok(SyncResponse::SnapshotOffer(Some(offer))) => match check_offer(offer, p) {
                    Ok(o) => {
                        let h = o.manifest.height();
                        asked.insert((peer, h));
                        if height == 0 && queued.insert(h) {
                            heights.push(h);
                        }
                        offers.entry(peer).or_default().push(o);
                    }
                    Err(reason) if reason.is_empty() => {
                        debug!(%peer, "state sync: offer past an epoch boundary; not usable")
                    }
                    Err(reason) => {
                        warn!(%peer, reason, "state sync: bad snapshot offer");
                        net.penalize(peer, PeerFault::BadSnapshotChunk);
                        bad.insert(peer);
                        report.bad_peers.push(peer);
                    }
                },
                Ok(SyncResponse::SnapshotOffer(None)) => {}
                Ok(other) => {
                    debug!(%peer, ?other, "state sync: unexpected answer to an offer request")
                }
                Err(e) => debug!(%peer, error = %e, "state sync: offer request failed"),
            }
        }
    }
    // Manifest id → (manifest, [(provider, its certificate)]).
    type Offered = (Arc<SnapshotManifest>, Vec<(PeerId, Vec<u8>)>);
    let mut by_id: HashMap<Hash, Offered> = HashMap::new();
    let mut usable = 0;
    for (peer, list) in offers {
        if bad.contains(&peer) {
            continue;
        }
        for o in list {
            usable += 1;
            let entry = by_id
                .entry(o.id)
                .or_insert_with(|| (o.manifest.clone(), Vec::new()));
            if !entry.1.iter().any(|(p, _)| *p == peer) {
                entry.1.push((peer, o.certificate));
            }
        }
    }
    let Some((id, (manifest, providers))) = by_id
        .into_iter()
        .filter(|(_, (_, prov))| prov.len() >= p.peers_min)
        .max_by_key(|(id, (m, prov))| (m.height(), prov.len(), *id))
    else {
        return Err(StateSyncError::NoSnapshot {
            peers_min: p.peers_min,
            offers: usable,
        });
    };
    let certificate = providers[0].1.clone();
    let mut providers: Vec<PeerId> = providers.into_iter().map(|(peer, _)| peer).collect();
    providers.sort();
    report.height = manifest.height();
    report.manifest = id;
    report.providers = providers.len();
    info!(
        height = manifest.height(),
        %id,
        chunks = manifest.chunks.len(),
        bytes = manifest.chunk_bytes_total(),
        providers = providers.len(),
        "state sync: fetching snapshot"
    );

    // 3. Chunks, striped over the providers.
    let mut install = store.begin_snapshot_install((*manifest).clone())?;
    let fetched = fetch_chunks(
        net,
        p,
        &manifest,
        id,
        &mut install,
        &mut providers,
        &mut report,
    )
    .await;
    if let Err(e) = fetched {
        install.abort()?;
        return Err(e);
    }
    // 4. The root.
    if let Err(e) = install.finish(Some(&certificate)) {
        warn!(error = %e, "state sync: the snapshot does not match its certified root");
        install.abort()?;
        return Err(e.into());
    }
    report.chunks = manifest.chunks.len();
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    info!(
        height = report.height,
        chunks = report.chunks,
        bytes_received = report.bytes_received,
        ms = report.elapsed_ms,
        bad_peers = report.bad_peers.len(),
        "state sync: snapshot installed"
    );
    Ok(Some(report))
}

/// Result of one chunk request.
struct ChunkAnswer {
    peer: PeerId,
    index: u32,
    bytes_received: u64,
    result: Result<Option<Vec<u8>>, String>,
}

async fn fetch_chunks(
    net: &NetworkHandle,
    p: &StateSyncParams,
    manifest: &Arc<SnapshotManifest>,
    id: Hash,
    install: &mut cairn_ledger::snapshot::SnapshotInstall<'_>,
    providers: &mut Vec<PeerId>,
    report: &mut StateSyncReport,
) -> Result<(), StateSyncError> {
    let count = manifest.chunks.len();
    let mut queue: VecDeque<u32> = (0..count as u32).collect();
    let mut in_flight: HashMap<PeerId, usize> = providers.iter().map(|p| (*p, 0)).collect();
    let mut failures: HashMap<PeerId, u32> = HashMap::new();
    // Bounded by providers × in-flight per peer (every sender holds a slot).
    let (tx, mut rx) = mpsc::channel::<ChunkAnswer>(providers.len() * p.in_flight_per_peer_max);
    let mut outstanding = 0usize;
    let mut next_provider = 0usize;
    while install.missing() > 0 {
        // Hand out chunks: round-robin over providers with a free slot (striping).
        let mut stalled = 0;
        while !queue.is_empty() && !providers.is_empty() && stalled < providers.len() {
            let peer = providers[next_provider % providers.len()];
            next_provider = next_provider.wrapping_add(1);
            let slots = in_flight.entry(peer).or_insert(0);
            if *slots >= p.in_flight_per_peer_max {
                stalled += 1;
                continue;
            }
            stalled = 0;
            let index = queue.pop_front().expect("not empty");
            *slots += 1;
            outstanding += 1;
            let (net, tx, bytes_max) = (net.clone(), tx.clone(), p.response_bytes_max);
            tokio::spawn(async move {
                let (bytes_received, r) = ask(
                    &net,
                    peer,
                    SyncRequest::SnapshotChunk {
                        manifest: id,
                        index,
                    },
                    bytes_max,
                )
                .await;
                let result = match r {
                    Ok(SyncResponse::SnapshotChunk(c)) => Ok(c),
                    Ok(other) => Err(format!("unexpected answer {}", short(&other))),
                    Err(e) => Err(e),
                };
                let _ = tx
                    .send(ChunkAnswer {
                        peer,
                        index,
                        bytes_received,
                        result,
                    })
                    .await;
            });
        }
        if outstanding == 0 {
            return Err(StateSyncError::ProvidersExhausted {
                missing: install.missing(),
            });
        }
        let answer = rx.recv().await.expect("a sender is held by every request");
        outstanding -= 1;
        report.bytes_received += answer.bytes_received;
        let peer = answer.peer;
        if let Some(slots) = in_flight.get_mut(&peer) {
            *slots = slots.saturating_sub(1);
        }
        let bytes = match answer.result {
            Ok(Some(bytes)) => bytes,
            other => {
                let reason = match other {
                    Err(e) => e,
                    _ => "not held".to_string(),
                };
                debug!(%peer, index = answer.index, reason, "state sync: chunk request failed");
                queue.push_back(answer.index);
                let n = failures.entry(peer).or_insert(0);
                *n += 1;
                if *n >= PEER_FAILURES_MAX {
                    warn!(%peer, "state sync: provider dropped after repeated failures");
                    providers.retain(|p| *p != peer);
                }
                continue;
            }
        };
        if install.has(answer.index) {
            continue;
        }
        let (m, index) = (manifest.clone(), answer.index);
        let checked = tokio::task::spawn_blocking(move || verify_chunk(&m, id, index, &bytes))
            .await
            .map_err(|e| SnapshotError::Io {
                path: "chunk check".into(),
                reason: e.to_string(),
            })?;
        match checked {
            Ok(chunk) => {
                failures.insert(peer, 0);
                install.add_chunk(chunk)?;
                *report.chunks_by_peer.entry(peer).or_insert(0) += 1;
            }
            Err(e) => {
                warn!(%peer, index, error = %e, "state sync: bad chunk; peer penalized, chunk fetched elsewhere");
                net.penalize(peer, PeerFault::BadSnapshotChunk);
                if !report.bad_peers.contains(&peer) {
                    report.bad_peers.push(peer);
                }
                providers.retain(|p| *p != peer);
                queue.push_back(index);
            }
        }
    }
    Ok(())
}

fn short(r: &SyncResponse) -> &'static str {
    match r {
        SyncResponse::Status { .. } => "Status",
        SyncResponse::Blocks(_) => "Blocks",
        SyncResponse::Block(_) => "Block",
        SyncResponse::Error(_) => "Error",
        SyncResponse::Transactions(_) => "Transactions",
        SyncResponse::Pruned { .. } => "Pruned",
        SyncResponse::SnapshotOffer(_) => "SnapshotOffer",
        SyncResponse::SnapshotChunk(_) => "SnapshotChunk",
    }
}
