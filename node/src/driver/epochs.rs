//! Epochs (one validator set each, `cairn_consensus::Epochs` holding one consensus
//! instance per epoch): the sets the driver uses ([`EpochSet`]), the epoch tag of consensus
//! WAL entries ([`EpochWalEntry`]), the switch from an ended epoch to the next, and
//! equivocation evidence (stored, and gossiped with its epoch: [`EpochEvidence`]).
//!
//! Invariants:
//! - A finalization covering the boundary ends the epoch; the driver commits up to the
//!   boundary, never past it (`try_end_epoch`, waiting while the boundary's ancestors are
//!   missing), storing the epoch's proof with its suffix headers before the boundary is
//!   committed, then starts the next epoch with the set the store recorded at the boundary
//!   (`start_epoch_after_boundary`, rule E3; also after a synced boundary).
//! - Views restart in every epoch: the WAL (keyed by view) tags each entry with its epoch,
//!   only the running epoch's entries are replayed on a restart, and the WAL is emptied when
//!   an epoch starts.
//! - At most one evidence record is stored per (epoch, view, signer, kind of conflict), so
//!   only a validator that signed conflicting votes adds any; gossiped evidence is verified
//!   against its own epoch's set before it is stored and forwarded (another epoch's is
//!   neither kept nor forwarded).

use cairn_consensus::{Anchor, Epoch, EpochOutput, Epochs, Evidence, ValidatorSet, WalEntry};
use cairn_ledger::Address;
use libp2p::PeerId;
use tracing::{debug, error, warn};

use super::{Driver, EPOCH_PROOF_KEY_PREFIX, EVIDENCE_KEY_PREFIX, FatalError, digest, hash};
use crate::chain::ChainError;
use crate::network::Acceptance;
use crate::sync::StoredEpochProof;

/// A consensus WAL entry with the epoch of the instance that wrote it (the store's WAL
/// is keyed by view, and views restart in every epoch). On a restart only entries of the
/// running epoch are replayed; the WAL is emptied when an epoch starts.
#[derive(borsh::BorshSerialize, borsh::BorshDeserialize)]
pub(super) struct EpochWalEntry {
    pub(super) epoch: Epoch,
    pub(super) entry: WalEntry,
}

/// The payload of the evidence topic (`/cairn/{namespace}/evidence/2`): the epoch (u64 little
/// endian) whose set signed the conflicting votes, then the [`Evidence`] encoding; at most
/// [`EpochEvidence::BYTES_MAX`] bytes, checked before decoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochEvidence {
    /// The epoch of the votes (they verify under its namespace and set only).
    pub epoch: Epoch,
    /// The two conflicting votes.
    pub evidence: Evidence,
}

impl EpochEvidence {
    /// Largest valid encoding: 8 + [`Evidence::BYTES_MAX`].
    pub const BYTES_MAX: usize = 8 + Evidence::BYTES_MAX;

    /// The epoch's 8 bytes then the evidence's own encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.epoch.to_le_bytes().to_vec();
        out.extend(self.evidence.encode());
        out
    }

    /// Decodes (size checked first); verifies nothing.
    ///
    /// # Errors
    /// Oversize, shorter than 8 bytes, or evidence that does not decode (the sender's
    /// fault).
    pub fn decode(bytes: &[u8]) -> Result<EpochEvidence, String> {
        if bytes.len() > Self::BYTES_MAX {
            return Err(format!(
                "evidence of {} bytes exceeds {}",
                bytes.len(),
                Self::BYTES_MAX
            ));
        }
        let Some((epoch, rest)) = bytes.split_first_chunk::<8>() else {
            return Err("evidence shorter than its epoch".into());
        };
        let evidence = Evidence::decode(rest).map_err(|e| e.to_string())?;
        Ok(EpochEvidence {
            epoch: u64::from_le_bytes(*epoch),
            evidence,
        })
    }
}

/// The validator set of one epoch as the driver uses it.
pub struct EpochSet {
    /// The epoch.
    pub epoch: Epoch,
    /// Its consensus validator set.
    pub validators: ValidatorSet,
    /// Addresses of the validators' consensus keys, by index.
    pub addresses: Vec<Address>,
    /// The validators' libp2p peer ids, by index (`None` if one does not parse).
    pub peers: Vec<Option<PeerId>>,
}

impl EpochSet {
    /// The set of `record` (an epoch the store recorded).
    ///
    /// # Errors
    /// The recorded set is not a valid consensus set (a corrupt store: fatal).
    pub fn of_record(record: &cairn_ledger::EpochRecord) -> Result<EpochSet, FatalError> {
        let validators = ValidatorSet::new(
            record
                .validators
                .iter()
                .map(|v| {
                    let key = cairn_consensus::VerifyingKey::from_bytes(&v.consensus_key.0)
                        .map_err(|e| {
                            FatalError(format!("epoch {}: validator {}: {e}", record.epoch, v.name))
                        })?;
                    Ok(cairn_consensus::Validator {
                        public_key: key,
                        voting_power: v.voting_power,
                    })
                })
                .collect::<Result<Vec<_>, FatalError>>()?,
        )
        .map_err(|e| FatalError(format!("epoch {}: validator set: {e}", record.epoch)))?;
        Ok(EpochSet {
            epoch: record.epoch,
            validators,
            addresses: record.validators.iter().map(|v| v.consensus_key).collect(),
            peers: record
                .validators
                .iter()
                .map(|v| v.peer_id.parse().ok())
                .collect(),
        })
    }
}

impl Driver {
    /// Commits the ended epoch's boundary block and starts the next epoch with the set its
    /// execution decided (rule E3). Waits (returns nothing) while the boundary's ancestors
    /// are missing; they are fetched or synced, and this is retried.
    pub(super) async fn try_end_epoch(&mut self) -> Result<Vec<EpochOutput>, FatalError> {
        let Some((epoch, last, proof)) = self.epoch_end_waiting.clone() else {
            return Ok(Vec::new());
        };
        if epoch != self.epoch() {
            self.epoch_end_waiting = None; // the chain moved past it by sync
            return Ok(Vec::new());
        }
        let committed = self
            .chain
            .store()
            .height_of(&last)
            .map_err(|e| FatalError(e.to_string()))?
            .is_some();
        // The suffix headers, while the suffix blocks are still pending. The proof is stored
        // before the boundary is committed: a node serves every boundary it holds with its
        // proof (a crash in between leaves a proof of an uncommitted block, which is inert).
        let suffix: Option<Vec<cairn_ledger::BlockHeader>> = proof.blocks[..proof.blocks.len() - 1]
            .iter()
            .map(|d| {
                self.chain
                    .pending(&hash(*d))
                    .map(|p| p.block.header().clone())
            })
            .collect();
        let key = format!("{EPOCH_PROOF_KEY_PREFIX}{epoch:020}");
        match suffix {
            Some(suffix) => {
                let stored = StoredEpochProof {
                    proof: proof.clone(),
                    suffix,
                };
                self.chain
                    .store()
                    .meta_put(
                        &key,
                        &borsh::to_vec(&stored).expect("borsh to Vec never fails"),
                    )
                    .map_err(|e| FatalError(e.to_string()))?;
            }
            None => {
                // Every listed block's kind came from a block this node holds, so this
                // cannot happen while the suffix is pending; without the proof this node
                // cannot serve the boundary to a syncing peer (others can).
                warn!(
                    epoch,
                    "the ended epoch's suffix blocks are not held: its proof is not stored"
                );
            }
        }
        if !committed {
            if !self.chain.can_extend(&last) {
                if let Some(b) = self.buffer.get(&last).cloned() {
                    self.insert_block(b).await?;
                }
            }
            // The boundary's own certificate is the proof's finalization when it finalized
            // the boundary itself; a suffix finalization is kept with the proof instead.
            let direct = proof.blocks.len() == 1;
            let cert = direct
                .then(|| borsh::to_vec(&proof.finalization).expect("borsh to Vec never fails"));
            match self.chain.finalize(&last, cert.as_deref()) {
                Ok(blocks) => {
                    let view = proof.finalization.view();
                    self.after_commit(blocks, Some(view))?;
                }
                Err(ChainError::UnknownParent { .. }) => {
                    self.fetch(last, None);
                    self.sync.request_now();
                    return Ok(Vec::new());
                }
                Err(ChainError::Storage(e)) => return Err(FatalError(e.to_string())),
                Err(e) => {
                    error!(block = %last, error = %e, "an epoch's boundary block does not apply: more than f validators are faulty or this node is broken");
                    return Ok(Vec::new());
                }
            }
        }
        self.epoch_end_waiting = None;
        self.start_epoch_after_boundary(true)
    }

    /// The head is the running epoch's boundary block (committed by consensus, or by sync):
    /// starts the next epoch with the set the store recorded for it. `ended` says whether
    /// [`Epochs`] saw the epoch end (else, after sync, a fresh instance is built).
    pub(super) fn start_epoch_after_boundary(
        &mut self,
        ended: bool,
    ) -> Result<Vec<EpochOutput>, FatalError> {
        let next = self.epoch() + 1;
        let record = self
            .chain
            .store()
            .epoch_record(next)
            .map_err(|e| FatalError(e.to_string()))?
            .ok_or_else(|| {
                FatalError(format!(
                    "the boundary block of epoch {} left no record of epoch {next}",
                    self.epoch()
                ))
            })?;
        assert_eq!(
            record.anchor,
            self.chain.head_hash(),
            "the next epoch is anchored at the committed boundary"
        );
        let set = EpochSet::of_record(&record)?;
        self.chain.start_epoch();
        self.chain
            .store()
            .wal_prune_below(u64::MAX)
            .map_err(|e| FatalError(format!("consensus WAL prune failed: {e}")))?;
        self.awaiting.clear();
        self.pending_build = None;
        self.proposing = None;
        self.finalized_waiting.clear();
        // Admission exemptions follow the set: the new set's nodes skip admission from now
        // on, and a removed validator's node must prove like any peer (docs/admission.md).
        self.net
            .exempt(set.peers.iter().flatten().copied().collect());
        self.params.set_epoch(set);
        self.sync.set_epoch(next, self.params.validators.clone());
        let now_ms = self.now_ms();
        if ended {
            self.epochs
                .start_next_epoch(
                    next,
                    self.params.validators.clone(),
                    self.signer.clone(),
                    now_ms,
                )
                .map_err(|e| FatalError(e.to_string()))
        } else {
            let anchor = Anchor {
                view: 0,
                payload: digest(self.chain.head_hash()),
            };
            self.epochs = Epochs::new(
                self.epoch_params.clone(),
                next,
                self.params.validators.clone(),
                self.signer.clone(),
                anchor,
                anchor,
                &[],
            )
            .map_err(|e| FatalError(e.to_string()))?;
            Ok(self.epochs.start(now_ms))
        }
    }

    /// Store metadata key of an evidence record: one per (view, signer, kind of conflict), so
    /// at most three per validator and view, and only a validator that signed conflicting
    /// votes adds any (the key space is bounded by misbehaviour, not by peers' traffic).
    fn evidence_key(epoch: Epoch, evidence: &Evidence) -> String {
        let kind = evidence.equivocation().map_or(9, |e| e as u8);
        format!(
            "{EVIDENCE_KEY_PREFIX}{epoch:020}/{:020}/{:05}/{kind}",
            evidence.view(),
            evidence.signer()
        )
    }

    /// Stores a verified evidence record unless one for the same (view, signer, kind) is
    /// already stored. Returns whether it was new.
    ///
    /// # Errors
    /// [`FatalError`] if the store fails.
    pub(super) fn store_evidence(
        &mut self,
        epoch: Epoch,
        evidence: &Evidence,
    ) -> Result<bool, FatalError> {
        let key = Self::evidence_key(epoch, evidence);
        let store = self.chain.store();
        let known = store
            .meta_get(&key)
            .map_err(|e| FatalError(format!("reading evidence failed: {e}")))?
            .is_some();
        if known {
            return Ok(false);
        }
        store
            .meta_put(&key, &evidence.encode())
            .map_err(|e| FatalError(format!("storing evidence failed: {e}")))?;
        self.shared.metrics.evidence.inc();
        Ok(true)
    }

    /// Validates gossiped evidence: size-checked decode, then the full check against the
    /// genesis validator set (both signatures, same signer, conflicting votes, canonical
    /// order). A record failing either is the forwarder's fault (`Reject`); one already
    /// stored is `Ignore`d (state-dependent, not punished); a new valid one is stored and
    /// forwarded (`Accept`).
    pub(super) fn on_gossip_evidence(
        &mut self,
        source: PeerId,
        data: &[u8],
    ) -> Result<Acceptance, FatalError> {
        let EpochEvidence { epoch, evidence } = match EpochEvidence::decode(data) {
            Ok(e) => e,
            Err(e) => {
                debug!(peer = %source, error = %e, "undecodable evidence");
                return Ok(Acceptance::Reject);
            }
        };
        if epoch != self.epoch() {
            // Checkable only against its own epoch's set: neither kept nor forwarded.
            return Ok(Acceptance::Ignore);
        }
        let namespace = self.params.namespace_of(epoch);
        if let Err(e) = evidence.verify(&namespace, &self.params.validators) {
            debug!(peer = %source, error = %e, "invalid evidence");
            return Ok(Acceptance::Reject);
        }
        if self.store_evidence(epoch, &evidence)? {
            warn!(
                signer = evidence.signer(),
                view = evidence.view(),
                peer = %source,
                "equivocation evidence received"
            );
            Ok(Acceptance::Accept)
        } else {
            Ok(Acceptance::Ignore)
        }
    }
}
