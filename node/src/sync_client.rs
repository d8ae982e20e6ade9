//! The block sync client: asks peers for their finalized head, requests ranges of finalized
//! blocks from a peer that is ahead, and checks each response off the driver task (every
//! body sealed, every certificate verified, and with `[sync] reverify_signatures` every
//! signature) before the driver commits it. The serving side is [`crate::sync_server`].
//!
//! One range request is in flight at a time; the next range is requested as soon as one
//! arrives (pipelining: its transfer and checks overlap this range's commit). Results come
//! back to the driver as [`SyncEvent`]s through a bounded queue ([`SYNC_EVENTS_MAX`]).
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
use crate::verifier::verify_parallel;

/// Most sync results waiting for the driver. Each comes from one request task; at most one
/// range request and one status poll per peer are started per sync interval, so the
/// senders wait only under a backlog.
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

/// A peer's last status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PeerHead {
    /// Its finalized height.
    height: u64,
    /// The lowest height whose body it holds (0: all).
    lowest_retained_height: u64,
}

impl PeerHead {
    fn serves_from(&self, from_height: u64) -> bool {
        SyncResponse::serves_from(self.height, self.lowest_retained_height, from_height)
    }
}

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
    /// Blocks per range request.
    pub batch_blocks_max: u16,
    /// Re-check transaction signatures of certified synced blocks.
    pub reverify_signatures: bool,
    /// Sync response byte bound.
    pub response_bytes_max: usize,
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
        /// The peer.
        peer: PeerId,
        /// Its lowest retained height now.
        lowest_retained_height: u64,
    },
    /// A range arrived from `peer` and was checked ([`check_synced`]).
    Blocks {
        /// The peer that served it.
        peer: PeerId,
        /// The checked response.
        checked: CheckedSync,
    },
    /// A status (`what == "status"`) or range (`"sync"`) request failed.
    Failed {
        /// Which request.
        what: &'static str,
        /// The peer asked.
        peer: PeerId,
        /// Why.
        reason: String,
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
    in_flight: bool,
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
        (
            SyncClient {
                params,
                net,
                shared,
                events,
                in_flight: false,
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

    /// True while a range request is in flight.
    pub fn in_flight(&self) -> bool {
        self.in_flight
    }

    /// A new peer: a node that was down learns how far behind it is from its first peer,
    /// not one `sync.interval_ms` later.
    pub fn on_peer_connected(&mut self, peer: PeerId) {
        if !self.in_flight {
            self.poll_status(peer);
        }
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
    /// node's finalized head is `head`. Starts a range request if the peer (or another
    /// whose status is known) is ahead and holds the next block.
    pub fn on_status(&mut self, peer: PeerId, height: u64, lowest_retained_height: u64, head: u64) {
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
        if height > head && !self.in_flight {
            self.request_next(head, Some(peer));
        } else if !self.peer_heads.values().any(|h| h.height > head) {
            // Caught up (by consensus or sync): nothing is blocked any more.
            self.set_blocked(false, head);
        }
    }

    /// `peer` answered [`SyncResponse::Pruned`]: records its lowest retained height and asks
    /// another peer that holds block `head + 1`, if one is known.
    pub fn on_pruned(&mut self, peer: PeerId, lowest_retained_height: u64, head: u64) {
        self.in_flight = false;
        debug!(%peer, lowest_retained_height, head, "peer pruned the blocks asked for; asking another");
        if let Some(h) = self.peer_heads.get_mut(&peer) {
            h.lowest_retained_height = lowest_retained_height;
        }
        self.request_next(head, None);
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

    /// Requests the range from `head + 1` of a peer that holds it ([`Self::holder`]); if
    /// peers are ahead but none holds it, says so (module docs, "Pruned peers").
    fn request_next(&mut self, head: u64, preferred: Option<PeerId>) {
        if self.in_flight {
            return;
        }
        match holder(&self.peer_heads, head, preferred) {
            Some(peer) => {
                self.set_blocked(false, head);
                self.request_blocks(peer, head + 1);
            }
            None => {
                let ahead = self.peer_heads.values().any(|h| h.height > head);
                self.set_blocked(ahead, head);
            }
        }
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

    /// A checked range arrived: penalizes a faulty responder and requests the next range
    /// at once (pipelining; if this range is refused, the next does not link to the head
    /// and is refused too; the periodic status poll starts over from the head). Returns the
    /// blocks to commit, if any ([`prepare_synced`]).
    pub fn on_blocks(&mut self, peer: PeerId, checked: CheckedSync) -> Option<SyncedRange> {
        if let Some(reason) = &checked.fault {
            warn!(%peer, reason, "bad sync response");
            self.net.penalize(peer, PeerFault::BadSyncResponse);
        }
        self.in_flight = false;
        // No pipelining past an epoch's boundary: the next range is checked against the next
        // epoch's set, which the driver sets once it committed the boundary (`after_commit`).
        if checked.fault.is_none()
            && !checked.boundary
            && let Some((last, _)) = checked.blocks.last()
        {
            let next = last.header().height + 1;
            if self.best_peer_height >= next {
                self.request_blocks(peer, next);
            }
        }
        prepare_synced(peer, checked)
    }

    /// After committing a range from `peer`: updates the syncing flag and asks for more if
    /// a peer is still ahead of `head` (`peer` itself, or another that holds the blocks).
    pub fn after_commit(&mut self, peer: PeerId, head: u64) {
        self.shared
            .syncing
            .store(self.best_peer_height > head + 1, Ordering::Relaxed);
        if self.best_peer_height > head {
            if self.peer_heads.contains_key(&peer) {
                self.request_next(head, Some(peer));
            } else {
                // Its status is not known (any more): it served up to `head`, so it holds
                // the next blocks unless it pruned them, which it would answer.
                self.request_blocks(peer, head + 1);
            }
        }
    }

    /// A request failed: a range request may be retried; a status poll is retried (any
    /// peer) in [`STATUS_RETRY_MS`], not a whole sync interval later.
    pub fn on_failed(&mut self, what: &'static str, peer: PeerId, reason: &str, now_ms: u64) {
        if what == "sync" {
            self.in_flight = false;
        }
        if what == "status" {
            self.last_poll_ms = now_ms
                .saturating_sub(self.params.interval_ms)
                .saturating_add(STATUS_RETRY_MS);
        }
        debug!(%peer, what, reason, "request failed");
    }

    /// Asks `peer` for its finalized head; the answer arrives as
    /// [`SyncEvent::PeerStatus`].
    pub fn poll_status(&self, peer: PeerId) {
        let net = self.net.clone();
        let out = self.events.clone();
        tokio::spawn(async move {
            let failed = |reason: String| SyncEvent::Failed {
                what: "status",
                peer,
                reason,
            };
            let msg = match net
                .request(peer, SyncRequest::Status.encode(), SyncRequest::Status.cost())
                .await {
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
    /// servers end a response at an epoch's boundary block).
    pub fn set_epoch(&mut self, epoch: cairn_consensus::Epoch, validators: ValidatorSet) {
        self.params.epoch = epoch;
        self.params.namespace =
            cairn_consensus::epoch_namespace(&self.params.chain_namespace, epoch);
        self.params.validators = validators;
    }

    /// Requests `batch_blocks_max` blocks from `from_height` of `peer` (unless a range
    /// request is in flight); the checked answer arrives as [`SyncEvent::Blocks`].
    pub fn request_blocks(&mut self, peer: PeerId, from_height: u64) {
        if self.in_flight {
            return;
        }
        self.in_flight = true;
        let net = self.net.clone();
        let out = self.events.clone();
        let p = self.params.clone();
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let req = SyncRequest::Blocks {
                from_height,
                count: p.batch_blocks_max,
            };
            let res = net.request(peer, req.encode(), req.cost()).await;
            if let Ok(bytes) = &res {
                shared
                    .metrics
                    .sync_bytes_received
                    .inc_by(bytes.len() as u64);
            }
            let failed = |reason: String| SyncEvent::Failed {
                what: "sync",
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
                        Ok(checked) => SyncEvent::Blocks { peer, checked },
                        Err(e) => failed(format!("verification task failed: {e}")),
                    }
                }
                Ok(SyncResponse::Pruned {
                    lowest_retained_height,
                }) => SyncEvent::Pruned {
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

/// The peer to ask for the range from `head + 1`, by the last statuses `heads`: `preferred`
/// if it holds that block, else the peer with the highest head among those that hold it
/// (ties: the lowest peer id, so the choice does not depend on map order).
fn holder(
    heads: &HashMap<PeerId, PeerHead>,
    head: u64,
    preferred: Option<PeerId>,
) -> Option<PeerId> {
    let from = head + 1;
    let holds = |p: &PeerId| heads.get(p).is_some_and(|h| h.serves_from(from));
    preferred.filter(holds).or_else(|| {
        heads
            .iter()
            .filter(|(_, h)| h.serves_from(from))
            .max_by_key(|(p, h)| (h.height, std::cmp::Reverse(**p)))
            .map(|(p, _)| *p)
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn head(height: u64, lowest_retained_height: u64) -> PeerHead {
        PeerHead {
            height,
            lowest_retained_height,
        }
    }

    /// A range is asked only of a peer that holds its first block: the preferred one if it
    /// does, else the highest holder; none if every peer ahead pruned it.
    #[test]
    fn ranges_go_only_to_peers_that_hold_them() {
        let (full, pruned, behind) = (PeerId::random(), PeerId::random(), PeerId::random());
        let mut heads = HashMap::new();
        heads.insert(pruned, head(3000, 1977));
        heads.insert(behind, head(50, 0));
        // Only pruned and short peers: from genesis nobody holds block 1 and is ahead...
        assert_eq!(
            holder(&heads, 0, Some(pruned)),
            Some(behind),
            "behind holds 1..=50"
        );
        assert_eq!(
            holder(&heads, 50, Some(pruned)),
            None,
            "51 is pruned at the only peer ahead"
        );
        // ... until a full peer reports.
        heads.insert(full, head(2990, 0));
        assert_eq!(holder(&heads, 50, Some(pruned)), Some(full));
        assert_eq!(holder(&heads, 50, None), Some(full));
        // From the pruned peer's lowest retained height on, it holds the range: preferred
        // if named, else the highest holder.
        assert_eq!(holder(&heads, 1976, Some(pruned)), Some(pruned));
        assert_eq!(holder(&heads, 1976, Some(full)), Some(full));
        assert_eq!(holder(&heads, 1976, None), Some(pruned), "the highest head");
        // Nobody ahead: nothing to ask.
        assert_eq!(holder(&heads, 3000, None), None);
    }
}
