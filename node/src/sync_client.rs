//! The block sync client: asks peers for their finalized head, requests ranges of finalized
//! blocks from peers that are ahead, and checks each response off the driver task (every
//! body sealed, every certificate verified, and with `[sync] reverify_signatures` every
//! signature) before the driver commits it. The serving side is [`crate::sync_server`].
//!
//! **Several peers at once.** Consecutive ranges go to every peer whose last status says it
//! holds them, at most `[sync] range_in_flight_per_peer_max` to one peer and
//! `range_in_flight_max` over all; each has a deadline (`range_timeout_ms`). Answers are
//! committed in order: one that arrives early waits in a bounded reorder buffer. A range
//! that fails its checks is its server's fault ([`PeerFault::BadSyncResponse`]) and is
//! asked of another peer; a timeout, a failed request or a `Pruned` answer is nobody's
//! fault (that peer is only skipped for a moment). The scheduling state is pure and lives in
//! [`crate::sync_schedule`]. Results come back to the driver as [`SyncEvent`]s through a
//! bounded queue ([`SYNC_EVENTS_MAX`]).
//!
//! **Pruned peers.** Each peer's last status says up to which height it has finalized and
//! from which height it holds block bodies (a node with `[storage] retain_blocks` pruned
//! the older ones). The client remembers the last status of each connected peer (at most
//! [`PEER_HEADS_MAX`]) and asks for a range only a peer that holds its first block
//! ([`SyncResponse::serves_from`]). A peer that answers [`SyncResponse::Pruned`] (it pruned
//! since its last status) is not at fault: its entry is updated and another holder is
//! asked. When every peer that is ahead has pruned the next block, block sync cannot go on
//! (a fresh node joins pruned peers by state sync at start, [`crate::state_sync`], but a
//! node that already holds blocks cannot): the client says so in
//! a warning (at most every [`BLOCKED_WARN_INTERVAL`]) and the gauge
//! `cairn_sync_blocked_pruned`, and resumes as soon as a peer that holds the block reports.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use cairn_consensus::{Certificate, CertificateKind, ValidatorSet};
use cairn_ledger::{Hash, SealedBlock, VerifiedTx};
use libp2p::PeerId;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::driver::Shared;
use crate::network::{NetworkHandle, PeerFault};
use crate::sync::{StoredEpochProof, SyncRequest, SyncResponse, SyncedBlock};
use crate::sync_schedule::{PeerHead, RETRY_AVOID_MS, RangeLimits, RangeRequest, RangeScheduler};
use crate::verifier::verify_parallel;

/// Most sync results waiting for the driver. Each comes from one request task; at most
/// `[sync] range_in_flight_max` range requests are in flight and one status poll is started
/// per sync interval, so the senders wait only under a backlog.
pub const SYNC_EVENTS_MAX: usize = 64;
/// After a failed head (status) request, the next one goes out this much later (ms) rather
/// than a whole `sync.interval_ms` later.
pub const STATUS_RETRY_MS: u64 = 100;
/// Byte bound of a status response.
pub const STATUS_RESPONSE_BYTES_MAX: usize = 1024;
/// Peers whose last status the client remembers (entries of disconnected peers are
/// dropped; when full, the entry with the lowest head makes room).
pub const PEER_HEADS_MAX: usize = 1024;
/// Least time between two warnings that every peer ahead pruned the next block.
pub const BLOCKED_WARN_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);

/// Sync client parameters (from genesis and config).
#[derive(Clone)]
pub struct SyncParams {
    /// Chain id (for signature re-checks).
    pub chain_id: String,
    /// The chain namespace (genesis hash).
    pub chain_namespace: [u8; 32],
    /// The running epoch: responses are checked as blocks of it.
    pub epoch: cairn_consensus::Epoch,
    /// The running epoch's consensus namespace: certificates verify under it.
    pub namespace: [u8; 32],
    /// The running epoch's validator set.
    pub validators: ValidatorSet,
    /// How often to poll a peer's head, ms.
    pub interval_ms: u64,
    /// Re-check transaction signatures of certified synced blocks.
    pub reverify_signatures: bool,
    /// Sync response byte bound.
    pub response_bytes_max: usize,
    /// Bounds of the range requests (`[sync] range_*` and `batch_blocks_max`).
    pub range_limits: RangeLimits,
}

/// A result of the sync client's requests, for the driver.
pub enum SyncEvent {
    /// `peer` reported its finalized head `height`.
    PeerStatus {
        /// The peer.
        peer: PeerId,
        /// Its finalized height.
        height: u64,
        /// The lowest height whose block body it holds (0: all).
        lowest_retained_height: u64,
    },
    /// `peer` answered a range request [`SyncResponse::Pruned`]: it no longer holds the
    /// range's first block (not its fault).
    Pruned {
        /// The request's id ([`RangeRequest::id`]).
        id: u64,
        /// The range's first height.
        from_height: u64,
        /// The peer.
        peer: PeerId,
        /// Its lowest retained height now.
        lowest_retained_height: u64,
    },
    /// A range arrived and was checked ([`check_synced`]); the scheduler knows who served
    /// it.
    Blocks {
        /// The request's id ([`RangeRequest::id`]).
        id: u64,
        /// The range's first height.
        from_height: u64,
        /// The checked response.
        checked: CheckedSync,
    },
    /// A status or range request failed (not the peer's fault).
    Failed {
        /// Which request.
        what: Failed,
        /// The peer asked.
        peer: PeerId,
        /// Why.
        reason: String,
    },
}

/// Which request failed ([`SyncEvent::Failed`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failed {
    /// A head (status) poll.
    Status,
    /// Range request `id` from `from_height`.
    Range {
        /// The request's id ([`RangeRequest::id`]).
        id: u64,
        /// The range's first height.
        from_height: u64,
    },
}

/// A sync response after [`check_synced`].
pub struct CheckedSync {
    /// The blocks up to the first bad one, sealed, with their certificates.
    pub blocks: Vec<(SealedBlock, Option<Vec<u8>>)>,
    /// Per block: it carries a certificate, and the certificate verifies.
    pub certified: Vec<bool>,
    /// Signed hashes of transactions whose signatures verified (only with `reverify`).
    pub verified: HashSet<Hash>,
    /// Why the response was cut short: the responder's fault.
    pub fault: Option<String>,
    /// The last block is its epoch's boundary, proven by the [`StoredEpochProof`] kept in
    /// `epoch_proof` (its certificate flag is set when the proof verified).
    pub boundary: bool,
    /// The verified epoch proof of the last block (borsh), when `boundary`.
    pub epoch_proof: Option<Vec<u8>>,
}

/// A checked range ready to commit ([`prepare_synced`]): blocks up to the last certified
/// one, hash-linked, with the certificates that verified.
pub struct SyncedRange {
    /// `(block, verified certificate)`, oldest first.
    pub blocks: Vec<(SealedBlock, Option<Vec<u8>>)>,
    /// The verified epoch proof of the last block (borsh [`StoredEpochProof`]) when it is
    /// its epoch's boundary block.
    pub epoch_proof: Option<Vec<u8>>,
    /// As [`CheckedSync::verified`].
    pub verified: HashSet<Hash>,
}

/// The sync client's state (owned by the driver task; requests run on their own tasks).
pub struct SyncClient {
    params: SyncParams,
    net: NetworkHandle,
    shared: Arc<Shared>,
    events: mpsc::Sender<SyncEvent>,
    /// Which ranges are in flight to whom, and the checked answers waiting to commit.
    ranges: RangeScheduler<CheckedSync>,
    best_peer_height: u64,
    last_poll_ms: u64,
    /// The last status of each connected peer, at most [`PEER_HEADS_MAX`].
    peer_heads: HashMap<PeerId, PeerHead>,
    /// When the client last warned that every peer ahead pruned the next block.
    blocked_warned: Option<std::time::Instant>,
}

impl SyncClient {
    /// A client whose results arrive on the returned receiver (bounded:
    /// [`SYNC_EVENTS_MAX`]).
    pub fn new(
        params: SyncParams,
        net: NetworkHandle,
        shared: Arc<Shared>,
    ) -> (SyncClient, mpsc::Receiver<SyncEvent>) {
        let (events, rx) = mpsc::channel(SYNC_EVENTS_MAX);
        let ranges = RangeScheduler::new(params.range_limits, params.epoch);
        (
            SyncClient {
                params,
                net,
                shared,
                events,
                ranges,
                best_peer_height: 0,
                last_poll_ms: 0,
                peer_heads: HashMap::new(),
                blocked_warned: None,
            },
            rx,
        )
    }

    /// The highest finalized height a peer reported.
    pub fn best_peer_height(&self) -> u64 {
        self.best_peer_height
    }

    /// Range requests in flight.
    pub fn in_flight(&self) -> usize {
        self.ranges.in_flight()
    }

    /// A new peer: a node that was down learns how far behind it is from its first peer,
    /// not one `sync.interval_ms` later.
    pub fn on_peer_connected(&mut self, peer: PeerId) {
        self.poll_status(peer);
    }

    /// True (and counted as polled now) if `sync.interval_ms` passed since the last head
    /// poll: the caller then polls the next peer ([`Self::poll_status`]).
    pub fn poll_due(&mut self, now_ms: u64) -> bool {
        if now_ms.saturating_sub(self.last_poll_ms) >= self.params.interval_ms {
            self.last_poll_ms = now_ms;
            true
        } else {
            false
        }
    }

    /// Polls at the next tick (e.g. a finalized block whose parent is unknown).
    pub fn request_now(&mut self) {
        self.last_poll_ms = 0;
    }

    /// `peer` disconnected: its status is forgotten.
    pub fn on_peer_disconnected(&mut self, peer: PeerId) {
        self.peer_heads.remove(&peer);
    }

    /// `peer` is at `height` and holds block bodies from `lowest_retained_height`; this
    /// node's finalized head is `head`. Asks for ranges of the peers ahead that hold them.
    pub fn on_status(
        &mut self,
        peer: PeerId,
        height: u64,
        lowest_retained_height: u64,
        head: u64,
        now_ms: u64,
    ) {
        self.best_peer_height = self.best_peer_height.max(height);
        self.shared
            .syncing
            .store(height > head + 1, Ordering::Relaxed);
        self.remember(
            peer,
            PeerHead {
                height,
                lowest_retained_height,
            },
        );
        self.schedule(head, now_ms);
    }

    /// `peer` answered request `id` (from `from_height`) [`SyncResponse::Pruned`]: records
    /// its lowest retained height and asks another peer that holds the range.
    pub fn on_pruned(
        &mut self,
        id: u64,
        from_height: u64,
        peer: PeerId,
        lowest_retained_height: u64,
        head: u64,
        now_ms: u64,
    ) {
        debug!(%peer, lowest_retained_height, from_height, "peer pruned the blocks asked for; asking another");
        if let Some(h) = self.peer_heads.get_mut(&peer) {
            h.lowest_retained_height = lowest_retained_height;
        }
        self.ranges.failed(id, from_height, now_ms);
        self.schedule(head, now_ms);
    }

    /// Remembers `peer`'s status (bounded: [`PEER_HEADS_MAX`]).
    fn remember(&mut self, peer: PeerId, head: PeerHead) {
        if !self.peer_heads.contains_key(&peer) && self.peer_heads.len() >= PEER_HEADS_MAX {
            let lowest = self
                .peer_heads
                .iter()
                .min_by_key(|(_, h)| h.height)
                .map(|(p, _)| *p);
            if let Some(p) = lowest {
                self.peer_heads.remove(&p);
            }
        }
        self.peer_heads.insert(peer, head);
    }

    /// Forgets range requests that timed out and asks for what is missing
    /// ([`RangeScheduler::schedule`]); if peers are ahead but none holds the next block,
    /// says so (module docs, "Pruned peers").
    pub fn schedule(&mut self, head: u64, now_ms: u64) {
        for late in self.ranges.expire(now_ms) {
            debug!(peer = %late.peer, from_height = late.from_height, "range request timed out; asking another peer");
        }
        for req in self.ranges.schedule(head, &self.peer_heads, now_ms) {
            self.request_blocks(req);
        }
        let ahead = self.peer_heads.values().any(|h| h.height > head);
        let held = self.peer_heads.values().any(|h| h.serves_from(head + 1));
        self.set_blocked(ahead && !held && !self.ranges.covers(head + 1), head);
    }

    /// Sets the `cairn_sync_blocked_pruned` gauge and warns (at most every
    /// [`BLOCKED_WARN_INTERVAL`]) while blocked.
    fn set_blocked(&mut self, blocked: bool, head: u64) {
        self.shared
            .metrics
            .sync_blocked_pruned
            .set(i64::from(blocked));
        if !blocked {
            self.blocked_warned = None;
            return;
        }
        if self
            .blocked_warned
            .is_some_and(|t| t.elapsed() < BLOCKED_WARN_INTERVAL)
        {
            return;
        }
        self.blocked_warned = Some(std::time::Instant::now());
        let lowest: Vec<(String, u64, u64)> = self
            .peer_heads
            .iter()
            .filter(|(_, h)| h.height > head)
            .take(8)
            .map(|(p, h)| (p.to_string(), h.height, h.lowest_retained_height))
            .collect();
        warn!(
            head,
            next = head + 1,
            peers_ahead = ?lowest,
            "cannot catch up: every peer that is ahead pruned block {} ((peer, height, lowest retained height) above); \
             only a fresh node (an empty data directory) joins pruned peers, by state sync. \
             Connect it to a peer that keeps every block ([storage] retain_blocks = 0) or one whose lowest \
             retained height is at most {}",
            head + 1,
            head + 1
        );
    }

    /// The checked answer to range request `id` (from `from_height`) arrived: it waits
    /// until it is the next to commit ([`Self::next_range`]). A late answer (its request
    /// timed out) or one checked under an epoch that ended is dropped, nobody's fault.
    pub fn on_blocks(&mut self, id: u64, from_height: u64, checked: CheckedSync, now_ms: u64) {
        // A faulty answer is judged in turn even if no block of it passed its checks: it
        // then stands for its first height.
        let last = match checked.blocks.last() {
            Some((b, _)) => Some(b.header().height),
            None if checked.fault.is_some() => Some(from_height),
            None => None,
        };
        let boundary = checked.boundary;
        if !self
            .ranges
            .arrived(id, from_height, last, boundary, checked, now_ms)
        {
            debug!(
                id,
                from_height,
                "range answer dropped (timed out, empty, or checked under an ended epoch)"
            );
        }
    }

    /// The next checked range to commit above `head`, with the peer that served it, if it
    /// arrived. A range that failed its checks is judged here, when it is the next to
    /// commit under the epoch it was checked under: its peer is penalized
    /// ([`PeerFault::BadSyncResponse`]) and not asked again, the blocks before the bad one
    /// are still returned (each is covered by a verified certificate), and the rest is
    /// asked of another peer. `None` inside: nothing of it can be committed.
    pub fn next_range(&mut self, head: u64, now_ms: u64) -> Option<(PeerId, Option<SyncedRange>)> {
        let arrived = self.ranges.pop_ready(head)?;
        let peer = arrived.peer;
        if let Some(reason) = &arrived.payload.fault {
            warn!(%peer, from_height = arrived.from_height, reason, "bad sync response");
            self.net.penalize(peer, PeerFault::BadSyncResponse);
            self.ranges.penalized(peer, now_ms);
        }
        let range = prepare_synced(peer, arrived.payload);
        if range.is_none() {
            self.ranges
                .avoid(peer, now_ms.saturating_add(RETRY_AVOID_MS));
        }
        Some((peer, range))
    }

    /// After committing: updates the syncing flag and asks for more if a peer is still
    /// ahead of `head`.
    pub fn after_commit(&mut self, head: u64, now_ms: u64) {
        self.shared
            .syncing
            .store(self.best_peer_height > head + 1, Ordering::Relaxed);
        self.schedule(head, now_ms);
    }

    /// A request failed: a range (request `id` from `from_height`) is asked of another
    /// peer, not counted against this one; a status poll is retried (any peer) in
    /// [`STATUS_RETRY_MS`], not a whole sync interval later.
    pub fn on_failed(
        &mut self,
        failed: Failed,
        peer: PeerId,
        reason: &str,
        head: u64,
        now_ms: u64,
    ) {
        match failed {
            Failed::Range { id, from_height } => {
                debug!(%peer, from_height, reason, "range request failed");
                self.ranges.failed(id, from_height, now_ms);
                self.schedule(head, now_ms);
            }
            Failed::Status => {
                debug!(%peer, reason, "status request failed");
                self.last_poll_ms = now_ms
                    .saturating_sub(self.params.interval_ms)
                    .saturating_add(STATUS_RETRY_MS);
            }
        }
    }

    /// Asks `peer` for its finalized head; the answer arrives as
    /// [`SyncEvent::PeerStatus`].
    pub fn poll_status(&self, peer: PeerId) {
        let net = self.net.clone();
        let out = self.events.clone();
        tokio::spawn(async move {
            let failed = |reason: String| SyncEvent::Failed {
                what: Failed::Status,
                peer,
                reason,
            };
            let msg = match net
                .request(
                    peer,
                    SyncRequest::Status.encode(),
                    SyncRequest::Status.cost(),
                )
                .await
            {
                Ok(b) => match SyncResponse::decode(&b, STATUS_RESPONSE_BYTES_MAX) {
                    Ok(SyncResponse::Status {
                        height,
                        lowest_retained_height,
                        ..
                    }) => SyncEvent::PeerStatus {
                        peer,
                        height,
                        lowest_retained_height,
                    },
                    Ok(_) => failed("unexpected".into()),
                    Err(e) => failed(e.to_string()),
                },
                Err(e) => failed(e.to_string()),
            };
            let _ = out.send(msg).await;
        });
    }

    /// Checks later responses as blocks of `epoch`, whose set is `validators` (honest
    /// servers end a response at an epoch's boundary block); answers waiting that were
    /// checked under the old epoch are dropped.
    pub fn set_epoch(&mut self, epoch: cairn_consensus::Epoch, validators: ValidatorSet) {
        self.params.epoch = epoch;
        self.params.namespace =
            cairn_consensus::epoch_namespace(&self.params.chain_namespace, epoch);
        self.params.validators = validators;
        self.ranges.set_epoch(epoch);
    }

    /// Sends range request `req`; the checked answer arrives as [`SyncEvent::Blocks`].
    fn request_blocks(&mut self, req: RangeRequest) {
        let RangeRequest {
            id,
            peer,
            from_height,
            count,
            epoch,
        } = req;
        debug_assert_eq!(
            epoch, self.params.epoch,
            "checked under the scheduler's epoch"
        );
        let net = self.net.clone();
        let out = self.events.clone();
        let p = self.params.clone();
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let req = SyncRequest::Blocks { from_height, count };
            let res = net.request(peer, req.encode(), req.cost()).await;
            if let Ok(bytes) = &res {
                shared
                    .metrics
                    .sync_bytes_received
                    .inc_by(bytes.len() as u64);
            }
            let failed = |reason: String| SyncEvent::Failed {
                what: Failed::Range { id, from_height },
                peer,
                reason,
            };
            let msg = match res.map_err(|e| e.to_string()).and_then(|b| {
                SyncResponse::decode(&b, p.response_bytes_max).map_err(|e| e.to_string())
            }) {
                Ok(SyncResponse::Blocks(blocks)) => {
                    // Seal every body (check it against its header), verify every
                    // certificate and, if asked, every transaction signature here, on a
                    // blocking thread off the driver task, so catch-up replay is bounded by
                    // execution and commit, not by checks on the task that runs consensus.
                    let verify = tokio::task::spawn_blocking(move || check_synced(blocks, &p));
                    match verify.await {
                        Ok(checked) => SyncEvent::Blocks {
                            id,
                            from_height,
                            checked,
                        },
                        Err(e) => failed(format!("verification task failed: {e}")),
                    }
                }
                Ok(SyncResponse::Pruned {
                    lowest_retained_height,
                }) => SyncEvent::Pruned {
                    id,
                    from_height,
                    peer,
                    lowest_retained_height,
                },
                Ok(other) => failed(format!("unexpected response {other:?}")),
                Err(reason) => failed(reason),
            };
            let _ = out.send(msg).await;
        });
    }
}

/// True if `bytes` is a borsh finalization certificate for `block_hash` that verifies
/// against `validators` under `namespace`.
pub(crate) fn check_finalization(
    bytes: &[u8],
    block_hash: Hash,
    namespace: &[u8; 32],
    validators: &ValidatorSet,
) -> bool {
    let Ok(cert) = borsh::from_slice::<Certificate>(bytes) else {
        return false;
    };
    match &cert.kind {
        CertificateKind::Finalization(p) if Hash(p.payload.0) == block_hash => {
            cert.verify(namespace, validators).is_ok()
        }
        _ => false,
    }
}

/// Checks a sync response off the driver task: every body against its header (sealing it)
/// and every certificate it carries (an honest node stores and serves only verified ones).
/// The response is cut before the first block that fails either check, and the failure is
/// the responder's fault. With `reverify`, also verifies every transaction signature.
pub fn check_synced(blocks: Vec<SyncedBlock>, p: &SyncParams) -> CheckedSync {
    let (namespace, validators) = (&p.namespace, &p.validators);
    let (reverify, chain_id) = (p.reverify_signatures, p.chain_id.as_str());
    let mut out = Vec::with_capacity(blocks.len());
    let mut certified = Vec::with_capacity(blocks.len());
    let mut fault = None;
    let mut epoch_proof = None;
    for sb in blocks {
        let height = sb.block.header.height;
        if epoch_proof.is_some() {
            fault = Some(format!(
                "block at height {height} follows its epoch's boundary block in one response"
            ));
            break;
        }
        let sealed = match SealedBlock::seal(sb.block) {
            Ok(sealed) => sealed,
            Err(e) => {
                fault = Some(format!("block at height {height}: {e}"));
                break;
            }
        };
        let mut cert_ok = match &sb.certificate {
            None => false,
            Some(bytes) if check_finalization(bytes, sealed.hash(), namespace, validators) => true,
            Some(_) => {
                fault = Some(format!(
                    "block at height {height}: its finalization certificate does not verify"
                ));
                break;
            }
        };
        if let Some(bytes) = &sb.epoch_proof {
            let checked = borsh::from_slice::<StoredEpochProof>(bytes)
                .map_err(|e| format!("does not decode: {e}"))
                .and_then(|proof| {
                    proof.verify(
                        sealed.header(),
                        sealed.hash(),
                        &p.chain_namespace,
                        p.epoch,
                        validators,
                    )
                });
            if let Err(reason) = checked {
                fault = Some(format!("block at height {height}: epoch proof: {reason}"));
                break;
            }
            cert_ok = true;
            epoch_proof = Some(bytes.clone());
        }
        certified.push(cert_ok);
        out.push((sealed, sb.certificate));
    }
    let verified = if reverify {
        let txs = out
            .iter()
            .flat_map(|(b, _)| b.hashed_txs(|_, _| true))
            .collect();
        verify_parallel(txs, chain_id)
            .into_iter()
            .filter_map(Result::ok)
            .map(|t: VerifiedTx| t.signed_hash())
            .collect()
    } else {
        // Transaction validity rests on the finalization certificate and the sealed bodies
        // (`SyncConfig::reverify_signatures`).
        HashSet::new()
    };
    CheckedSync {
        blocks: out,
        certified,
        verified,
        fault,
        boundary: epoch_proof.is_some(),
        epoch_proof,
    }
}

/// The part of a checked response the driver may commit: up to the last block whose
/// certificate verified (`None` if there is none, or if the blocks up to it do not link by
/// parent hash), each with its certificate only if that verified. Every block kept is
/// covered by the certificate at the end (hash-linked) and sealed.
pub fn prepare_synced(peer: PeerId, checked: CheckedSync) -> Option<SyncedRange> {
    let CheckedSync {
        blocks,
        certified,
        verified,
        epoch_proof,
        ..
    } = checked;
    assert_eq!(
        blocks.len(),
        certified.len(),
        "one verdict per synced block"
    );
    let Some(last) = certified.iter().rposition(|c| *c) else {
        debug!(%peer, count = blocks.len(), "sync response carries no valid finalization certificate");
        return None;
    };
    // Check the hash chain down from the certified block before executing anything.
    for i in (1..=last).rev() {
        if blocks[i].0.header().parent_hash != blocks[i - 1].0.hash() {
            warn!(%peer, "sync response blocks do not link");
            return None;
        }
    }
    // The proof belongs to the last block of the response; it is kept only if that block is.
    let epoch_proof = epoch_proof.filter(|_| last + 1 == blocks.len());
    let blocks = blocks
        .into_iter()
        .zip(certified)
        .take(last + 1)
        // A certificate that did not verify is never stored (`certified` is false only for
        // blocks without one: a bad one cut the response).
        .map(|((block, cert), ok)| (block, cert.filter(|_| ok)))
        .collect();
    Some(SyncedRange {
        blocks,
        epoch_proof,
        verified,
    })
}
