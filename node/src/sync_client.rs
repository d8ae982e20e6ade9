//! The block sync client: asks peers for their finalized head, requests ranges of finalized
//! blocks from a peer that is ahead, and checks each response off the driver task (every
//! body sealed, every certificate verified, and with `[sync] reverify_signatures` every
//! signature) before the driver commits it. The serving side is [`crate::sync_server`].
//!
//! One range request is in flight at a time; the next range is requested as soon as one
//! arrives (pipelining: its transfer and checks overlap this range's commit). Results come
//! back to the driver as [`SyncEvent`]s through a bounded queue ([`SYNC_EVENTS_MAX`]).

use std::collections::HashSet;
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

    /// `peer` is at `height`; this node's finalized head is `head`. Starts a range request
    /// if the peer is ahead.
    pub fn on_status(&mut self, peer: PeerId, height: u64, head: u64) {
        self.best_peer_height = self.best_peer_height.max(height);
        self.shared
            .syncing
            .store(height > head + 1, Ordering::Relaxed);
        if height > head && !self.in_flight {
            self.request_blocks(peer, head + 1);
        }
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

    /// After committing a range: updates the syncing flag and asks for more if a peer is
    /// still ahead of `head`.
    pub fn after_commit(&mut self, peer: PeerId, head: u64) {
        self.shared
            .syncing
            .store(self.best_peer_height > head + 1, Ordering::Relaxed);
        if self.best_peer_height > head {
            self.request_blocks(peer, head + 1);
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
            let msg = match net.request(peer, SyncRequest::Status.encode()).await {
                Ok(b) => match SyncResponse::decode(&b, STATUS_RESPONSE_BYTES_MAX) {
                    Ok(SyncResponse::Status { height, .. }) => {
                        SyncEvent::PeerStatus { peer, height }
                    }
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
        tokio::spawn(async move {
            let req = SyncRequest::Blocks {
                from_height,
                count: p.batch_blocks_max,
            };
            let res = net.request(peer, req.encode()).await;
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
                Ok(other) => failed(format!("unexpected response {other:?}")),
                Err(reason) => failed(reason),
            };
            let _ = out.send(msg).await;
        });
    }
}

/// True if `bytes` is a borsh finalization certificate for `block_hash` that verifies
/// against `validators` under `namespace`.
fn check_finalization(
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
