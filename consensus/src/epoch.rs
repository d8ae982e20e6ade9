//! # Epochs: validator-set reconfiguration on a live chain
//!
//! Governed membership changes the validator set by governance transactions
//! executed in blocks. Consensus handles it with **epochs**: one Simplex
//! instance ([`Consensus`]) per epoch, each with a fixed validator set. This
//! module is the spec (below), the wire envelope ([`EpochMessage`]), the
//! namespace derivation ([`epoch_namespace`]), the proof that an epoch ended
//! ([`EpochProof`]), and [`Epochs`], a pure, sans-I/O multi-epoch driver
//! around [`Consensus`].
//!
//! Designs compared: commonware's `consensus::simplex` runs one engine per
//! epoch and tags every message with its epoch (its `reshare` example ends
//! an epoch at a fixed height and has leaders *re-propose* the last block
//! until it is final); Aptos ends an epoch with a *reconfiguration block*
//! followed by a *reconfiguration suffix* of empty blocks that only exist to
//! finalize it (AIP-8 / `aptos-core` `consensus/src/block_storage`); CometBFT
//! applies `ValidatorUpdates` returned by `EndBlock`/`FinalizeBlock` of height
//! `h` from height `h + 2`, a fixed delay instead of an epoch switch. Cairn
//! follows the Aptos shape (boundary + empty suffix) inside the commonware
//! shape (one instance per epoch, epoch-tagged messages, per-epoch
//! namespace).
//!
//! ## Spec
//!
//! * **E1 — epoch = instance.** Epoch `e` has validator set `S_e` and
//!   namespace `N_e`. `N_0` is the chain namespace (the genesis hash, so
//!   everything signed before epochs existed stays valid); for `e >= 1`,
//!   `N_e = blake3::derive_key("cairn consensus epoch v1", namespace ‖
//!   e as u64 LE)` ([`epoch_namespace`]). Every vote signs its namespace
//!   (R13), so a vote or certificate of epoch `e` verifies only against
//!   `S_e` under `N_e`. Messages travel in an [`EpochMessage`] `{ epoch,
//!   message }` so hosts route them to the right instance.
//! * **E2 — boundary.** When the application validates or builds a block it
//!   tells consensus its [`BlockKind`]: `Boundary` if executing it changed the
//!   next validator set (it *decides a set change*). The first boundary
//!   block `L` on a chain in epoch `e` is the epoch's **boundary**. Every
//!   descendant of `L` in epoch `e` is a `Suffix` block: empty (no
//!   transactions, no state change). The application enforces emptiness;
//!   [`Epochs`] additionally refuses (votes `valid: false` on) a child of a
//!   boundary/suffix block that is not `Suffix`, a `Suffix` block whose
//!   parent is `Ordinary`, and a suffix longer than [`SUFFIX_BLOCKS_MAX`],
//!   whenever it knows the parent.
//! * **Why suffix blocks exist.** Simplex finalizes a block either directly
//!   (a Finalization of its own view) or implicitly (a Finalization of a
//!   descendant, R9). A Byzantine minority can leave `L`'s view notarized
//!   but neither finalized nor nullified: it withholds its Finalize votes
//!   while some honest validators, whose notarization arrived after their
//!   timeout, already voted Nullify (so they never Finalize, I3). Honest
//!   power alone is then short of a finalization quorum for `L`'s view
//!   forever, and since the view is notarized no nullification can form
//!   from honest votes either. If children of `L` were forbidden, no later
//!   view could ever finalize `L` and the epoch would stall. With suffix
//!   blocks, the next honest leader after GST extends `L` (or its suffix);
//!   that view is finalized directly (Simplex liveness), which finalizes
//!   `L` implicitly.
//! * **E3 — epoch switch.** Epoch `e` ends when `L` is final: a
//!   Finalization (epoch `e`) of `L` or of any descendant of `L` is known.
//!   The canonical last block of epoch `e` is `L` itself, not the finalized
//!   suffix block (different nodes may see different suffix finalizations
//!   first; all of them imply the same `L`). The ledger commits up to `L`;
//!   suffix blocks are never committed. Epoch `e + 1` is a new instance with
//!   `Anchor { view: 0, payload: L }`, set `S_{e+1}` (computed by the
//!   application from the state after `L`; [`Epochs`] never starts `e + 1`
//!   without it) and namespace `N_{e+1}`.
//! * **E4 — proof.** The proof that epoch `e` ended ([`EpochProof`]) is the
//!   Finalization of some block `D` at or after `L` plus the ids of the
//!   blocks from `D` down to `L` (at most [`SUFFIX_BLOCKS_MAX`] suffix
//!   blocks, so at most `SUFFIX_BLOCKS_MAX + 1` ids). A proposal that would
//!   make the suffix longer is invalid: the leader whose parent is the
//!   64th suffix block does not propose ([`Epochs`] swallows its
//!   `BuildProposal`), honest replicas refuse such a block, and the view is
//!   nullified. *Liveness:* the suffix grows only by views that are
//!   notarized but finalized by nobody. After GST a view led by an honest
//!   leader is finalized (all honest validators notarize in time and none
//!   of them nullifies), and round-robin leadership puts an honest leader
//!   at least once in every `b + 1` consecutive views (`b` = the number of
//!   Byzantine validators, `< n`), so after GST the suffix grows by at
//!   most `b` blocks before it is finalized. The epoch therefore ends if
//!   fewer than `SUFFIX_BLOCKS_MAX - b` suffix blocks were
//!   notarized-but-unfinalized before GST (the simulator's longest suffix
//!   is reported as `max suffix`). Beyond that (an adversary that
//!   controls message delays for 60+ views in a row) the epoch halts
//!   *safely*: no fork, no switch, but no progress either; this is the price
//!   of a bounded proof.
//! * **E5 — laggards and new members.** A node not in `S_e` follows epoch
//!   `e` as an observer (`signer: None`). [`Epochs`] keeps the previous
//!   epoch's instance read-only ([`Epochs::previous_instance`]) and the
//!   proofs of the last [`EPOCH_PROOFS_KEPT`] ended epochs; a message tagged
//!   with an ended epoch is answered by re-broadcasting that epoch's
//!   finalization (at most once per `nullify_retry_ms` per epoch), and a
//!   message tagged with any later epoch makes it emit
//!   [`EpochOutput::CatchUp`] (same rate) so the host can fetch the missing
//!   finalization. Messages for epoch `current + 1` are **buffered**, at
//!   most [`FUTURE_MESSAGES_MAX`] (later ones are dropped, and re-obtained
//!   from the peers' retries, R7), and fed to the instance when it starts;
//!   messages for later epochs are dropped.
//!
//! ## Safety argument
//!
//! *Assumptions:* while epoch `e` runs, Byzantine power in `S_e` is below a
//! third of `S_e`'s total (the per-epoch Simplex assumption); honest
//! applications compute [`BlockKind`] and `S_{e+1}` deterministically from
//! the chain; `S_0` and the genesis are common knowledge.
//!
//! 1. *Within an epoch* it is Simplex: under the assumption, no two honest
//!    nodes finalize different blocks at one height of epoch `e` (the
//!    finalized chains are prefixes of each other).
//! 2. *Same `L`:* a finalized block is valid (at least one honest validator
//!    validated it), so the finalized chain obeys E2: the first boundary
//!    on it is unique and every later block is a suffix block. Two honest
//!    nodes that end epoch `e` hold finalizations of `D1`, `D2` on one chain
//!    (1), both at or after a boundary; the first boundary of that chain is
//!    the same block `L` for both.
//! 3. *Same `S_{e+1}` and anchor:* the ledger commits exactly the chain up to
//!    `L` (suffix blocks change nothing), so the state after `L` and hence
//!    `S_{e+1}` are equal at every honest node, and so is the anchor
//!    `(view 0, L)`.
//! 4. *No cross-epoch certificates:* votes of epoch `e + 1` sign `N_{e+1}`,
//!    which differs from every other `N_{e'}` (blake3 `derive_key` is a PRF
//!    over distinct inputs; `N_0` is the genesis hash), so neither `S_e`'s
//!    keys nor old certificates can form or replace a certificate of
//!    `e + 1`, even for a validator whose key is in both sets.
//! 5. By induction over `e`, every honest node runs the same sequence of
//!    instances and commits the same chain.
//!
//! *Limits.* Long-range attacks: once an epoch is over, its set's keys no
//! longer protect anything, and a quorum of *retired* keys can sign a
//! conflicting history of that old epoch; retired keys must be treated as
//! compromised-able and a syncing node must verify epochs **in order**, from
//! genesis or a trusted checkpoint, checking each [`EpochProof`] against the
//! set it derived for that epoch (never a set taken from the proof's
//! sender). Liveness of the switch needs the suffix bound above. A
//! laggard more than [`EPOCH_PROOFS_KEPT`] epochs behind gets no automatic
//! re-broadcast. Its [`EpochOutput::CatchUp`] must be answered by a peer's
//! host from the ledger, which should keep every epoch's proof, or by
//! state sync (outside this crate). Otherwise an honest laggard whose power
//! an epoch's quorum needs can halt that epoch; the simulator found this.
//!
//! ## Bounds
//!
//! * One running instance, plus one previous instance kept read-only.
//! * [`EPOCH_PROOFS_KEPT`] proofs of ended epochs, each at most
//!   `SUFFIX_BLOCKS_MAX + 1` ids and one certificate.
//! * [`FUTURE_MESSAGES_MAX`] buffered messages of the next epoch.
//! * [`BLOCKS_KEPT_MAX`] block records (parent links and kinds) of the
//!   running epoch; records below the last finalized view are pruned.
//! * [`EpochMessage::BYTES_MAX`] bytes per envelope, checked before decoding.

use std::collections::{BTreeMap, VecDeque};

use borsh::{BorshDeserialize, BorshSerialize};
use ed25519_dalek::SigningKey;
use thiserror::Error;

use crate::config::Config;
use crate::error::{ConfigError, MessageError};
use crate::machine::{BrokenVariant, Consensus, Input, Output};
use crate::types::{
    Anchor, Certificate, CertificateKind, Digest, Message, Proposal, View, WalEntry,
};
use crate::validators::ValidatorSet;

/// An epoch number: 0 for the genesis set, `+1` per validator-set change.
pub type Epoch = u64;

/// Domain-separation context of [`epoch_namespace`] (blake3 `derive_key`).
pub const EPOCH_CONTEXT: &str = "cairn consensus epoch v1";

/// Most suffix blocks after a boundary (E4): a proposal that would be the
/// `SUFFIX_BLOCKS_MAX + 1`-th is invalid. An [`EpochProof`] carries at most
/// `SUFFIX_BLOCKS_MAX + 1` block ids.
pub const SUFFIX_BLOCKS_MAX: usize = 64;

/// Ended epochs whose [`EpochProof`] [`Epochs`] keeps for laggards.
pub const EPOCH_PROOFS_KEPT: usize = 16;

/// Buffered messages for the next epoch (E5); further ones are dropped.
pub const FUTURE_MESSAGES_MAX: usize = 4_096;

/// Block records (parent link + kind) kept for the running epoch. Records
/// only come from this node's application, verified certificates and the
/// host, never from unverified peer data.
pub const BLOCKS_KEPT_MAX: usize = 8_192;

/// The namespace epoch `epoch` signs under (E1): the chain namespace itself
/// for epoch 0, else `blake3::derive_key(EPOCH_CONTEXT, chain_namespace ‖
/// epoch as u64 little endian)`.
pub fn epoch_namespace(chain_namespace: &[u8; 32], epoch: Epoch) -> [u8; 32] {
    if epoch == 0 {
        return *chain_namespace;
    }
    let mut material = [0u8; 40];
    material[..32].copy_from_slice(chain_namespace);
    material[32..].copy_from_slice(&epoch.to_le_bytes());
    blake3::derive_key(EPOCH_CONTEXT, &material)
}

/// A consensus message tagged with its epoch: what travels on the wire once
/// epochs are in use. Borsh: `epoch` (u64 LE) then the [`Message`].
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct EpochMessage {
    /// The epoch whose instance must handle the message.
    pub epoch: Epoch,
    /// The message (verified by that epoch's instance).
    pub message: Message,
}

impl EpochMessage {
    /// Largest valid encoding in bytes: [`Message::BYTES_MAX`] + 8.
    pub const BYTES_MAX: usize = Message::BYTES_MAX + 8;

    /// Decodes an envelope; the length is checked before any decoding and
    /// trailing bytes are rejected. Verifies nothing.
    ///
    /// # Errors
    /// [`MessageError::Oversize`] if `bytes.len() > BYTES_MAX`,
    /// [`MessageError::Malformed`] if it is not exactly one encoding.
    pub fn decode(bytes: &[u8]) -> Result<EpochMessage, MessageError> {
        if bytes.len() > Self::BYTES_MAX {
            return Err(MessageError::Oversize {
                len: bytes.len(),
                max: Self::BYTES_MAX,
            });
        }
        borsh::from_slice(bytes).map_err(|e| MessageError::Malformed {
            reason: format!("decode: {e}"),
        })
    }

    /// Borsh encoding (inverse of [`EpochMessage::decode`]).
    pub fn encode(&self) -> Vec<u8> {
        borsh::to_vec(self).expect("serializing into a Vec cannot fail")
    }
}

/// What the application says about a block it built or validated (E2).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, BorshSerialize, BorshDeserialize)]
pub enum BlockKind {
    /// Does not change the next validator set.
    Ordinary,
    /// Its execution changed the next validator set (decides a set change).
    Boundary,
    /// An empty block after the boundary (no transactions, no state change).
    Suffix,
}

/// Why an [`EpochProof`] or an [`Epochs`] call was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EpochError {
    /// The machine of the addressed epoch rejected the input.
    #[error("epoch {epoch}: {source}")]
    Message {
        /// The epoch whose instance rejected it.
        epoch: Epoch,
        /// Why.
        #[source]
        source: MessageError,
    },
    /// The instance of a new epoch could not be built.
    #[error("epoch {epoch}: {source}")]
    Config {
        /// The epoch being started.
        epoch: Epoch,
        /// Why.
        #[source]
        source: ConfigError,
    },
    /// [`Epochs::start_next_epoch`] for an epoch other than `current + 1`.
    #[error("cannot start epoch {got}: the next epoch is {expected}")]
    WrongEpoch {
        /// `current + 1`.
        expected: Epoch,
        /// Requested.
        got: Epoch,
    },
    /// [`Epochs::start_next_epoch`] before the running epoch ended.
    #[error("epoch {epoch} has not ended")]
    NotEnded {
        /// The running epoch.
        epoch: Epoch,
    },
    /// The proof's certificate is not a Finalization.
    #[error("epoch proof certificate is not a finalization")]
    ProofNotFinalization,
    /// The proof's block list is empty or longer than `SUFFIX_BLOCKS_MAX + 1`.
    #[error("epoch proof lists {len} blocks, expected 1..={max}")]
    ProofLength {
        /// Listed ids.
        len: usize,
        /// `SUFFIX_BLOCKS_MAX + 1`.
        max: usize,
    },
    /// `blocks[0]` is not the finalized payload.
    #[error("epoch proof does not start at the finalized block")]
    ProofStart,
    /// `blocks[index + 1]` is not the parent of `blocks[index]`, or the
    /// block is unknown to the verifier.
    #[error("epoch proof link {index} does not hold")]
    ProofLink {
        /// Position in `blocks`.
        index: usize,
    },
    /// The last block is not a boundary or an earlier one is not a suffix.
    #[error("epoch proof block {index} has the wrong kind")]
    ProofKind {
        /// Position in `blocks`.
        index: usize,
    },
    /// The finalization does not verify under the epoch's set and namespace.
    #[error("epoch proof certificate: {0}")]
    ProofCertificate(#[source] MessageError),
}

/// Proof that epoch `epoch` ended (E4): a Finalization (epoch `epoch`) of a
/// block `D` and the ids `blocks = [D, …, L]` from `D` down to the boundary
/// `L` (`1 ..= SUFFIX_BLOCKS_MAX + 1` ids).
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct EpochProof {
    /// The epoch that ended.
    pub epoch: Epoch,
    /// Finalization of `blocks[0]`, signed by `S_epoch` under `N_epoch`.
    pub finalization: Certificate,
    /// `D` first, the boundary `L` last; every id in between is a suffix block.
    pub blocks: Vec<Digest>,
}

impl EpochProof {
    /// The boundary `L`: the canonical last block of the epoch.
    pub fn last_block(&self) -> Digest {
        *self
            .blocks
            .last()
            .expect("a proof lists at least one block")
    }

    /// Checks the proof against the epoch's set `set` (which the verifier
    /// derived itself, epochs in order) and `block(id) = (parent, kind)`,
    /// the verifier's own knowledge of the blocks (headers). Returns `L`.
    ///
    /// # Errors
    /// [`EpochError::ProofNotFinalization`], [`EpochError::ProofLength`],
    /// [`EpochError::ProofStart`], [`EpochError::ProofLink`],
    /// [`EpochError::ProofKind`], [`EpochError::ProofCertificate`].
    pub fn verify(
        &self,
        chain_namespace: &[u8; 32],
        set: &ValidatorSet,
        block: impl Fn(&Digest) -> Option<(Digest, BlockKind)>,
    ) -> Result<Digest, EpochError> {
        let CertificateKind::Finalization(p) = &self.finalization.kind else {
            return Err(EpochError::ProofNotFinalization);
        };
        if self.blocks.is_empty() || self.blocks.len() > SUFFIX_BLOCKS_MAX + 1 {
            return Err(EpochError::ProofLength {
                len: self.blocks.len(),
                max: SUFFIX_BLOCKS_MAX + 1,
            });
        }
        if self.blocks[0] != p.payload {
            return Err(EpochError::ProofStart);
        }
        let last = self.blocks.len() - 1;
        for (index, id) in self.blocks.iter().enumerate() {
            let (parent, kind) = block(id).ok_or(EpochError::ProofLink { index })?;
            let expected = if index == last {
                BlockKind::Boundary
            } else {
                BlockKind::Suffix
            };
            if kind != expected {
                return Err(EpochError::ProofKind { index });
            }
            if index < last && self.blocks[index + 1] != parent {
                return Err(EpochError::ProofLink { index });
            }
        }
        self.finalization
            .verify(&epoch_namespace(chain_namespace, self.epoch), set)
            .map_err(EpochError::ProofCertificate)?;
        Ok(self.last_block())
    }
}

/// Timings shared by every epoch's instance (see [`Config`] for each).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochParams {
    /// The chain namespace (genesis hash) = `N_0`.
    pub chain_namespace: [u8; 32],
    /// [`Config::leader_timeout_ms`].
    pub leader_timeout_ms: u64,
    /// [`Config::notarization_timeout_ms`].
    pub notarization_timeout_ms: u64,
    /// [`Config::nullify_retry_ms`]; also the minimum interval between two
    /// re-broadcasts of an ended epoch's finalization, and between two
    /// [`EpochOutput::CatchUp`]s.
    pub nullify_retry_ms: u64,
    /// [`Config::views_ahead_max`].
    pub views_ahead_max: u64,
}

impl EpochParams {
    /// The timings of `config` (its namespace is taken as the chain
    /// namespace; its set and signer are ignored).
    pub fn from_config(config: &Config) -> EpochParams {
        EpochParams {
            chain_namespace: config.namespace,
            leader_timeout_ms: config.leader_timeout_ms,
            notarization_timeout_ms: config.notarization_timeout_ms,
            nullify_retry_ms: config.nullify_retry_ms,
            views_ahead_max: config.views_ahead_max,
        }
    }

    /// The [`Config`] of epoch `epoch`: namespace `N_epoch`, set `set`, and
    /// `signer` only if its key is in `set` (otherwise an observer).
    pub fn config(&self, epoch: Epoch, set: ValidatorSet, signer: Option<SigningKey>) -> Config {
        let signer = signer.filter(|k| set.index_of(&k.verifying_key()).is_some());
        Config {
            namespace: epoch_namespace(&self.chain_namespace, epoch),
            validators: set,
            signer,
            leader_timeout_ms: self.leader_timeout_ms,
            notarization_timeout_ms: self.notarization_timeout_ms,
            nullify_retry_ms: self.nullify_retry_ms,
            views_ahead_max: self.views_ahead_max,
        }
    }
}

/// An input to [`Epochs::handle`]; answers name the epoch they belong to
/// (answers for another epoch than the running one are ignored).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EpochInput {
    /// A message from a peer (decoded with [`EpochMessage::decode`]).
    Message {
        /// The envelope.
        message: EpochMessage,
        /// Current time (ms).
        now_ms: u64,
    },
    /// The timer of the last `SetTimer` fired.
    Timeout {
        /// Current time (ms).
        now_ms: u64,
    },
    /// Answer to `BuildProposal`: the built block and its kind.
    Proposed {
        /// Epoch of the `BuildProposal`.
        epoch: Epoch,
        /// View of the `BuildProposal`.
        view: View,
        /// The block's digest.
        payload: Digest,
        /// What executing it did (E2).
        kind: BlockKind,
        /// Current time (ms).
        now_ms: u64,
    },
    /// Answer to `Validate`: `Some(kind)` if valid, `None` if invalid.
    Validated {
        /// Epoch of the `Validate`.
        epoch: Epoch,
        /// The proposal, unchanged.
        proposal: Proposal,
        /// `None` = invalid; otherwise the block's kind (E2).
        verdict: Option<BlockKind>,
        /// Current time (ms).
        now_ms: u64,
    },
    /// A block's parent link and kind, known to the host (e.g. fetched after
    /// [`EpochOutput::BlockNeeded`]). The host vouches for it.
    Block {
        /// Its epoch.
        epoch: Epoch,
        /// The block as a proposal (view, parent view, parent, payload).
        proposal: Proposal,
        /// Its kind.
        kind: BlockKind,
    },
}

/// An effect of [`Epochs`], tagged with its epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EpochOutput {
    /// An output of epoch `epoch`'s instance, to perform as [`Output`]
    /// documents; `Broadcast(m)` is sent as `EpochMessage { epoch, m }`,
    /// `Persist` goes to that epoch's WAL. The host commits a `Finalized`
    /// block's ancestry but never a `Suffix` block.
    Consensus {
        /// The instance's epoch.
        epoch: Epoch,
        /// The output.
        output: Output,
    },
    /// Epoch `epoch` ended (E3): commit up to `last_block`, compute
    /// `S_{epoch+1}` from the state after it and call
    /// [`Epochs::start_next_epoch`].
    EpochEnded {
        /// The ended epoch.
        epoch: Epoch,
        /// The boundary `L`.
        last_block: Digest,
        /// Why.
        proof: EpochProof,
    },
    /// Epoch `epoch` started from `anchor` (`view 0`, payload `L`).
    EpochStarted {
        /// The new epoch.
        epoch: Epoch,
        /// Its anchor.
        anchor: Anchor,
        /// Whether this node votes in it (else an observer).
        voting: bool,
    },
    /// Deciding whether the epoch ended needs this block's parent and kind:
    /// answer with [`EpochInput::Block`].
    BlockNeeded {
        /// Epoch of the block.
        epoch: Epoch,
        /// The block's digest.
        payload: Digest,
    },
    /// A peer is already in a later epoch: fetch the [`EpochProof`] of
    /// `epoch` (e.g. from [`Epochs::proof`] of a peer) and feed its
    /// finalization as a message of `epoch`.
    CatchUp {
        /// The running epoch, which this node cannot yet end.
        epoch: Epoch,
    },
}

/// What [`Epochs`] knows about a block of the running epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct BlockInfo {
    view: View,
    parent: Digest,
    kind: Option<BlockKind>,
}

/// An ended epoch kept for laggards.
#[derive(Clone, Debug)]
struct Ended {
    proof: EpochProof,
    last_sent_ms: Option<u64>,
}

/// The running epoch.
struct Running {
    epoch: Epoch,
    machine: Consensus,
    /// The epoch's anchor (`L` of the previous epoch, or genesis).
    anchor: Anchor,
    blocks: BTreeMap<Digest, BlockInfo>,
    /// `BuildProposal` parents by view (at most one open build).
    build: Option<(View, View, Digest)>,
    /// Highest finalization whose walk to a boundary is incomplete.
    pending: Option<Certificate>,
    last_catch_up_ms: Option<u64>,
}

/// A pure, sans-I/O driver of consecutive epochs (see the module docs):
/// routes [`EpochMessage`]s, tracks block kinds, detects the end of the
/// running epoch (E3) and starts the next one once the host supplies its
/// set.
pub struct Epochs {
    params: EpochParams,
    current: Running,
    /// `Some` once the running epoch ended, until the next one starts.
    ended: Option<EpochProof>,
    /// The previous epoch's instance, read-only.
    previous: Option<(Epoch, Consensus)>,
    /// Proofs of the last [`EPOCH_PROOFS_KEPT`] ended epochs (oldest first).
    proofs: VecDeque<Ended>,
    /// Messages of epoch `current + 1` (at most [`FUTURE_MESSAGES_MAX`]).
    future: VecDeque<EpochMessage>,
    broken: Option<BrokenVariant>,
}

impl std::fmt::Debug for Epochs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Epochs")
            .field("epoch", &self.current.epoch)
            .field("machine", &self.current.machine)
            .field("ended", &self.ended.is_some())
            .finish()
    }
}

impl Epochs {
    /// Builds the driver in epoch `epoch` with set `set`, starting from
    /// `anchor` (the epoch's anchor, or the last block finalized in it on a
    /// restart; `epoch_anchor` is the epoch's own anchor `(0, L_{epoch-1})`)
    /// and that epoch's WAL. `signer` votes only if its key is in `set`.
    ///
    /// # Errors
    /// [`EpochError::Config`] as for [`Consensus::new`].
    pub fn new(
        params: EpochParams,
        epoch: Epoch,
        set: ValidatorSet,
        signer: Option<SigningKey>,
        epoch_anchor: Anchor,
        anchor: Anchor,
        wal: &[WalEntry],
    ) -> Result<Epochs, EpochError> {
        let config = params.config(epoch, set, signer);
        let machine = Consensus::new(config, anchor, wal)
            .map_err(|source| EpochError::Config { epoch, source })?;
        Ok(Epochs {
            params,
            current: Running::new(epoch, machine, epoch_anchor),
            ended: None,
            previous: None,
            proofs: VecDeque::new(),
            future: VecDeque::new(),
            broken: None,
        })
    }

    /// Starts the running instance ([`Consensus::start`]); call once after
    /// [`Epochs::new`].
    pub fn start(&mut self, now_ms: u64) -> Vec<EpochOutput> {
        let epoch = self.current.epoch;
        let mut out = vec![EpochOutput::EpochStarted {
            epoch,
            anchor: self.current.anchor,
            voting: self.current.machine.me().is_some(),
        }];
        let outputs = self.current.machine.start(now_ms);
        self.absorb(outputs, now_ms, &mut out);
        out
    }

    /// The running epoch.
    pub fn epoch(&self) -> Epoch {
        self.current.epoch
    }

    /// Whether the running epoch ended and waits for its successor's set.
    pub fn has_ended(&self) -> bool {
        self.ended.is_some()
    }

    /// Replaces the timings of the running epoch's instance and of every epoch started
    /// after it ([`Consensus::set_timeouts`]; liveness only, see [`crate::Timeouts`]).
    ///
    /// # Errors
    /// [`crate::Timeouts::validate`]'s; on error nothing changes.
    pub fn set_timeouts(&mut self, timeouts: crate::Timeouts) -> Result<(), ConfigError> {
        self.current.machine.set_timeouts(timeouts)?;
        self.params.leader_timeout_ms = timeouts.leader_timeout_ms;
        self.params.notarization_timeout_ms = timeouts.notarization_timeout_ms;
        self.params.nullify_retry_ms = timeouts.nullify_retry_ms;
        Ok(())
    }

    /// The running epoch's instance.
    pub fn instance(&self) -> &Consensus {
        &self.current.machine
    }

    /// The previous epoch's instance (read-only) and its epoch.
    pub fn previous_instance(&self) -> Option<(Epoch, &Consensus)> {
        self.previous.as_ref().map(|(e, m)| (*e, m))
    }

    /// The proof that `epoch` ended, if kept.
    pub fn proof(&self, epoch: Epoch) -> Option<&EpochProof> {
        self.ended
            .iter()
            .chain(self.proofs.iter().map(|e| &e.proof))
            .find(|p| p.epoch == epoch)
    }

    /// Keeps `proof` (e.g. restored after a restart) for laggards.
    pub fn remember_proof(&mut self, proof: EpochProof) {
        if self.proof(proof.epoch).is_some() || proof.epoch >= self.current.epoch {
            return;
        }
        self.proofs.push_back(Ended {
            proof,
            last_sent_ms: None,
        });
        while self.proofs.len() > EPOCH_PROOFS_KEPT {
            self.proofs.pop_front();
        }
    }

    /// Number of buffered next-epoch messages (`<= FUTURE_MESSAGES_MAX`).
    pub fn buffered(&self) -> usize {
        self.future.len()
    }

    /// Test-only (feature `testing`): run a broken variant in every epoch's
    /// instance and in the driver.
    #[cfg(any(test, feature = "testing"))]
    pub fn set_broken_variant(&mut self, variant: Option<BrokenVariant>) {
        self.broken = variant;
        self.current.machine.set_broken_variant(variant);
    }

    /// Test-only: the namespace and set of the epoch before the running one,
    /// for [`BrokenVariant::AcceptPreviousEpochCertificates`].
    #[cfg(any(test, feature = "testing"))]
    pub fn set_previous_verifier(&mut self, verifier: Option<([u8; 32], ValidatorSet)>) {
        self.current.machine.set_fallback_verifier(verifier);
    }

    /// Feeds one input.
    ///
    /// # Errors
    /// [`EpochError::Message`] when the running instance rejects it (as
    /// [`Consensus::handle`]). Messages for other epochs, and answers for an
    /// epoch that is not running (or already ended), are never errors.
    pub fn handle(&mut self, input: EpochInput) -> Result<Vec<EpochOutput>, EpochError> {
        let mut out = Vec::new();
        let epoch = self.current.epoch;
        let running = self.ended.is_none();
        let wrap = |source| EpochError::Message { epoch, source };
        match input {
            EpochInput::Message { message, now_ms } => {
                let EpochMessage { epoch: e, message } = message;
                if e == epoch && running {
                    let outputs = self
                        .current
                        .machine
                        .handle(Input::Message { message, now_ms })
                        .map_err(wrap)?;
                    self.absorb(outputs, now_ms, &mut out);
                } else if e <= epoch {
                    self.answer_laggard(e, now_ms, &mut out);
                } else {
                    if e == epoch + 1 && self.future.len() < FUTURE_MESSAGES_MAX {
                        self.future.push_back(EpochMessage { epoch: e, message });
                    }
                    if running {
                        self.catch_up(now_ms, &mut out);
                    }
                }
            }
            EpochInput::Timeout { now_ms } => {
                if running {
                    let outputs = self
                        .current
                        .machine
                        .handle(Input::Timeout { now_ms })
                        .map_err(wrap)?;
                    self.absorb(outputs, now_ms, &mut out);
                }
            }
            EpochInput::Proposed {
                epoch: e,
                view,
                payload,
                kind,
                now_ms,
            } => {
                if e != epoch || !running {
                    return Ok(out);
                }
                if let Some((v, parent_view, parent)) = self.current.build {
                    if v == view {
                        self.current.record(
                            Proposal {
                                view,
                                parent_view,
                                parent,
                                payload,
                            },
                            Some(kind),
                        );
                    }
                }
                let outputs = self
                    .current
                    .machine
                    .handle(Input::Proposed {
                        view,
                        payload,
                        now_ms,
                    })
                    .map_err(wrap)?;
                self.absorb(outputs, now_ms, &mut out);
            }
            EpochInput::Validated {
                epoch: e,
                proposal,
                verdict,
                now_ms,
            } => {
                if e != epoch || !running {
                    return Ok(out);
                }
                let verdict = verdict.filter(|kind| self.current.kind_allowed(&proposal, *kind));
                if verdict.is_some() {
                    self.current.record(proposal, verdict);
                }
                let outputs = self
                    .current
                    .machine
                    .handle(Input::Validated {
                        proposal,
                        valid: verdict.is_some(),
                        now_ms,
                    })
                    .map_err(wrap)?;
                self.absorb(outputs, now_ms, &mut out);
            }
            EpochInput::Block {
                epoch: e,
                proposal,
                kind,
            } => {
                if e == epoch && running {
                    self.current.record(proposal, Some(kind));
                    self.try_end(&mut out);
                }
            }
        }
        Ok(out)
    }

    /// Starts epoch `epoch = current + 1` with the set the application
    /// computed from the state after the ended epoch's boundary; `signer`
    /// votes only if its key is in `set` (a rotated key is simply the new
    /// key). Feeds the buffered messages of the new epoch.
    ///
    /// # Errors
    /// [`EpochError::NotEnded`], [`EpochError::WrongEpoch`],
    /// [`EpochError::Config`]. Nothing changes on error.
    pub fn start_next_epoch(
        &mut self,
        epoch: Epoch,
        set: ValidatorSet,
        signer: Option<SigningKey>,
        now_ms: u64,
    ) -> Result<Vec<EpochOutput>, EpochError> {
        let Some(proof) = &self.ended else {
            return Err(EpochError::NotEnded {
                epoch: self.current.epoch,
            });
        };
        let expected = self.current.epoch + 1;
        if epoch != expected {
            return Err(EpochError::WrongEpoch {
                expected,
                got: epoch,
            });
        }
        let anchor = Anchor {
            view: 0,
            payload: proof.last_block(),
        };
        let config = self.params.config(epoch, set, signer);
        #[allow(unused_mut)]
        let mut machine = Consensus::new(config, anchor, &[])
            .map_err(|source| EpochError::Config { epoch, source })?;
        // ---- state changes only below this line ----
        #[cfg(any(test, feature = "testing"))]
        {
            machine.set_broken_variant(self.broken);
            machine.set_fallback_verifier(Some((
                epoch_namespace(&self.params.chain_namespace, self.current.epoch),
                self.current.machine.validators().clone(),
            )));
        }
        let proof = self.ended.take().expect("checked above");
        self.proofs.push_back(Ended {
            proof,
            last_sent_ms: None,
        });
        while self.proofs.len() > EPOCH_PROOFS_KEPT {
            self.proofs.pop_front();
        }
        let old = std::mem::replace(&mut self.current, Running::new(epoch, machine, anchor));
        self.previous = Some((old.epoch, old.machine));
        let mut out = self.start(now_ms);
        for message in std::mem::take(&mut self.future) {
            if message.epoch != epoch || self.ended.is_some() {
                continue;
            }
            // Buffered messages were never verified: a rejection is the
            // sender's fault and is dropped here like any bad message.
            if let Ok(outputs) = self.current.machine.handle(Input::Message {
                message: message.message,
                now_ms,
            }) {
                self.absorb(outputs, now_ms, &mut out);
            }
        }
        Ok(out)
    }

    /// Wraps the running instance's outputs, records block links from
    /// them, and detects the end of the epoch.
    fn absorb(&mut self, outputs: Vec<Output>, _now_ms: u64, out: &mut Vec<EpochOutput>) {
        let epoch = self.current.epoch;
        let mut check_end = false;
        for output in outputs {
            match &output {
                Output::BuildProposal {
                    view,
                    parent_view,
                    parent,
                } => {
                    // E4: never build past the suffix bound; the view times out.
                    if self
                        .current
                        .suffix_depth(parent)
                        .is_some_and(|d| d >= SUFFIX_BLOCKS_MAX)
                    {
                        continue;
                    }
                    self.current.build = Some((*view, *parent_view, *parent));
                }
                Output::Validate(p) => self.current.record(*p, None),
                Output::Notarized(cert) => {
                    if let CertificateKind::Notarization(p) = cert.kind {
                        self.current.record(p, None);
                        if self.broken == Some(BrokenVariant::SwitchOnNotarization)
                            && self.current.pending.is_none()
                        {
                            self.current.pending = Some(cert.clone());
                            check_end = true;
                        }
                    }
                }
                Output::Finalized(cert) => {
                    if let CertificateKind::Finalization(p) = cert.kind {
                        self.current.record(p, None);
                        self.current.pending = Some(cert.clone());
                        check_end = true;
                    }
                }
                _ => {}
            }
            out.push(EpochOutput::Consensus { epoch, output });
        }
        if check_end {
            self.try_end(out);
        }
    }

    /// E3: if the pending finalization's block is at or after a boundary,
    /// the epoch ends.
    fn try_end(&mut self, out: &mut Vec<EpochOutput>) {
        if self.ended.is_some() {
            return;
        }
        let Some(cert) = self.current.pending.clone() else {
            return;
        };
        let (CertificateKind::Finalization(d) | CertificateKind::Notarization(d)) = cert.kind
        else {
            return;
        };
        let epoch = self.current.epoch;
        let mut blocks = vec![d.payload];
        let mut cur = d.payload;
        loop {
            if cur == self.current.anchor.payload {
                self.current.pending = None; // no boundary above the anchor
                self.current.prune();
                return;
            }
            let Some(kind) = self.current.blocks.get(&cur).and_then(|b| b.kind) else {
                out.push(EpochOutput::BlockNeeded {
                    epoch,
                    payload: cur,
                });
                return;
            };
            match kind {
                BlockKind::Ordinary => {
                    self.current.pending = None;
                    self.current.prune();
                    return;
                }
                BlockKind::Boundary => break,
                BlockKind::Suffix => {
                    if blocks.len() > SUFFIX_BLOCKS_MAX {
                        // Impossible under the assumptions (honest
                        // validators refuse longer suffixes): wait.
                        return;
                    }
                    let parent = self.current.blocks[&cur].parent;
                    blocks.push(parent);
                    cur = parent;
                }
            }
        }
        let proof = EpochProof {
            epoch,
            finalization: cert,
            blocks,
        };
        let last_block = proof.last_block();
        self.current.pending = None;
        self.ended = Some(proof.clone());
        out.push(EpochOutput::EpochEnded {
            epoch,
            last_block,
            proof,
        });
    }

    /// E5: a message of an ended epoch `e`: re-broadcast its finalization
    /// (rate-limited per epoch).
    fn answer_laggard(&mut self, e: Epoch, now_ms: u64, out: &mut Vec<EpochOutput>) {
        let interval = self.params.nullify_retry_ms;
        let due = |last: Option<u64>| last.is_none_or(|t| now_ms >= t.saturating_add(interval));
        if let Some(proof) = &self.ended {
            if proof.epoch == e {
                if due(self.current.last_catch_up_ms) {
                    self.current.last_catch_up_ms = Some(now_ms);
                    out.push(EpochOutput::Consensus {
                        epoch: e,
                        output: Output::Broadcast(Message::Certificate(proof.finalization.clone())),
                    });
                }
                return;
            }
        }
        if let Some(ended) = self.proofs.iter_mut().find(|x| x.proof.epoch == e) {
            if due(ended.last_sent_ms) {
                ended.last_sent_ms = Some(now_ms);
                out.push(EpochOutput::Consensus {
                    epoch: e,
                    output: Output::Broadcast(Message::Certificate(
                        ended.proof.finalization.clone(),
                    )),
                });
            }
        }
    }

    /// E5: a peer is in the next epoch while this one runs.
    fn catch_up(&mut self, now_ms: u64, out: &mut Vec<EpochOutput>) {
        let interval = self.params.nullify_retry_ms;
        if self
            .current
            .last_catch_up_ms
            .is_none_or(|t| now_ms >= t.saturating_add(interval))
        {
            self.current.last_catch_up_ms = Some(now_ms);
            out.push(EpochOutput::CatchUp {
                epoch: self.current.epoch,
            });
        }
    }
}

impl Running {
    fn new(epoch: Epoch, machine: Consensus, epoch_anchor: Anchor) -> Running {
        let mut blocks = BTreeMap::new();
        // The epoch's anchor starts the epoch: its children are ordinary.
        blocks.insert(
            epoch_anchor.payload,
            BlockInfo {
                view: epoch_anchor.view,
                parent: Digest::ZERO,
                kind: Some(BlockKind::Ordinary),
            },
        );
        Running {
            epoch,
            machine,
            anchor: epoch_anchor,
            blocks,
            build: None,
            pending: None,
            last_catch_up_ms: None,
        }
    }

    /// Records `p`'s parent link, and its kind if given (a known kind is
    /// never overwritten by `None`).
    fn record(&mut self, p: Proposal, kind: Option<BlockKind>) {
        if p.payload == self.anchor.payload {
            return;
        }
        let entry = self.blocks.entry(p.payload).or_insert(BlockInfo {
            view: p.view,
            parent: p.parent,
            kind: None,
        });
        if entry.kind.is_none() {
            entry.kind = kind;
        }
        if self.blocks.len() > BLOCKS_KEPT_MAX {
            self.prune();
            while self.blocks.len() > BLOCKS_KEPT_MAX {
                let oldest = self
                    .blocks
                    .iter()
                    .filter(|(d, _)| **d != self.anchor.payload)
                    .min_by_key(|(_, b)| b.view)
                    .map(|(d, _)| *d)
                    .expect("more than one record");
                self.blocks.remove(&oldest);
            }
        }
    }

    /// Drops records below the last finalized view (keeping the anchor).
    fn prune(&mut self) {
        let floor = self.machine.last_finalized().view;
        let anchor = self.anchor.payload;
        self.blocks.retain(|d, b| *d == anchor || b.view >= floor);
    }

    /// Number of suffix blocks from `block` down to its boundary (`0` for
    /// the boundary itself); `None` if `block` is ordinary or unknown.
    fn suffix_depth(&self, block: &Digest) -> Option<usize> {
        let mut cur = *block;
        let mut depth = 0;
        loop {
            let info = self.blocks.get(&cur)?;
            match info.kind? {
                BlockKind::Ordinary => return None,
                BlockKind::Boundary => return Some(depth),
                BlockKind::Suffix => {
                    depth += 1;
                    if depth > SUFFIX_BLOCKS_MAX + 1 {
                        return Some(depth);
                    }
                    cur = info.parent;
                }
            }
        }
    }

    /// E2, where the parent is known: children of a boundary or suffix
    /// block are suffix blocks (at most `SUFFIX_BLOCKS_MAX`), children of
    /// an ordinary block are not.
    fn kind_allowed(&self, p: &Proposal, kind: BlockKind) -> bool {
        let Some(parent) = self.blocks.get(&p.parent).and_then(|b| b.kind) else {
            return true; // unknown parent: the application's check stands
        };
        match parent {
            BlockKind::Ordinary => kind != BlockKind::Suffix,
            BlockKind::Boundary | BlockKind::Suffix => {
                kind == BlockKind::Suffix
                    && self
                        .suffix_depth(&p.parent)
                        .is_none_or(|d| d < SUFFIX_BLOCKS_MAX)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Step tables for the epoch driver: exact outputs for hand-made inputs
    //! (test names start with the spec rule, e.g. `e3_…`).

    use super::*;
    use crate::testing::{Fixture, TEST_NAMESPACE, genesis, genesis_payload};
    use crate::{Validator, VoteKind};

    type Step = (EpochInput, Result<Vec<EpochOutput>, EpochError>);

    fn run(d: &mut Epochs, steps: Vec<Step>) {
        for (i, (input, expected)) in steps.into_iter().enumerate() {
            let got = d.handle(input.clone());
            assert_eq!(
                got, expected,
                "step {i}: input {input:?}\n  got      {got:#?}\n  expected {expected:#?}"
            );
        }
    }

    fn fx(epoch: Epoch) -> Fixture {
        Fixture {
            namespace: epoch_namespace(&TEST_NAMESPACE, epoch),
            ..Fixture::new(&[1, 1, 1, 1])
        }
    }

    fn driver(f: &Fixture, me: Option<u16>) -> (Epochs, Vec<EpochOutput>) {
        let config = f.config(me);
        let mut d = Epochs::new(
            EpochParams::from_config(&config),
            0,
            config.validators.clone(),
            config.signer.clone(),
            genesis(),
            genesis(),
            &[],
        )
        .expect("valid");
        let out = d.start(0);
        (d, out)
    }

    fn digest(b: u8) -> Digest {
        Digest([b; 32])
    }

    fn prop(view: View, parent_view: View, parent: Digest, payload: Digest) -> Proposal {
        Proposal {
            view,
            parent_view,
            parent,
            payload,
        }
    }

    fn msg(epoch: Epoch, message: Message, now_ms: u64) -> EpochInput {
        EpochInput::Message {
            message: EpochMessage { epoch, message },
            now_ms,
        }
    }

    fn block(p: Proposal, kind: BlockKind) -> EpochInput {
        EpochInput::Block {
            epoch: 0,
            proposal: p,
            kind,
        }
    }

    fn c(epoch: Epoch, output: Output) -> EpochOutput {
        EpochOutput::Consensus { epoch, output }
    }

    fn fin(f: &Fixture, p: Proposal) -> Certificate {
        f.cert(CertificateKind::Finalization(p), &[0, 1, 2])
    }

    #[test]
    fn e1_epoch_namespace_is_the_chain_namespace_at_0_and_distinct_after() {
        let ns = TEST_NAMESPACE;
        assert_eq!(epoch_namespace(&ns, 0), ns);
        let mut material = ns.to_vec();
        material.extend_from_slice(&1u64.to_le_bytes());
        assert_eq!(
            epoch_namespace(&ns, 1),
            blake3::derive_key(EPOCH_CONTEXT, &material)
        );
        let all: std::collections::BTreeSet<[u8; 32]> =
            (0..100).map(|e| epoch_namespace(&ns, e)).collect();
        assert_eq!(all.len(), 100);
        assert_ne!(epoch_namespace(&[1; 32], 1), epoch_namespace(&ns, 1));
    }

    #[test]
    fn e1_certificate_verifies_only_under_its_epoch() {
        let p = prop(1, 0, genesis_payload(), digest(1));
        let f1 = fx(1);
        let cert = fin(&f1, p);
        assert_eq!(cert.verify(&f1.namespace, &f1.set), Ok(()));
        for e in [0, 2, 3] {
            assert!(matches!(
                cert.verify(&epoch_namespace(&TEST_NAMESPACE, e), &f1.set),
                Err(MessageError::BadSignature { .. })
            ));
        }
        // Same namespace, another set (a rotated key at index 1).
        let mut validators: Vec<Validator> = f1.set.iter().cloned().collect();
        validators[1].public_key = SigningKey::from_bytes(&[42; 32]).verifying_key();
        let rotated = ValidatorSet::new(validators).expect("valid");
        assert_eq!(
            cert.verify(&f1.namespace, &rotated),
            Err(MessageError::BadSignature { signer: 1 })
        );
    }

    #[test]
    fn e1_envelope_round_trip_and_size_check_before_decoding() {
        let f = fx(0);
        let m = EpochMessage {
            epoch: 7,
            message: f.vote_msg(2, VoteKind::Nullify(3)),
        };
        let bytes = m.encode();
        assert_eq!(EpochMessage::decode(&bytes), Ok(m.clone()));
        assert_eq!(&bytes[..8], &7u64.to_le_bytes());
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(matches!(
            EpochMessage::decode(&trailing),
            Err(MessageError::Malformed { .. })
        ));
        let huge = vec![0u8; EpochMessage::BYTES_MAX + 1];
        assert_eq!(
            EpochMessage::decode(&huge),
            Err(MessageError::Oversize {
                len: EpochMessage::BYTES_MAX + 1,
                max: EpochMessage::BYTES_MAX
            })
        );
        assert_eq!(EpochMessage::BYTES_MAX, Message::BYTES_MAX + 8);
    }

    /// An observer learns a boundary's finalization; the host supplies the
    /// kind; the epoch ends at once; the next epoch waits for its set.
    #[test]
    fn e3_boundary_finalized_directly_ends_the_epoch() {
        let f = fx(0);
        let (mut d, out) = driver(&f, None);
        assert_eq!(
            out,
            vec![
                EpochOutput::EpochStarted {
                    epoch: 0,
                    anchor: genesis(),
                    voting: false
                },
                c(0, Output::ViewChanged { view: 1 }),
            ]
        );
        let l = prop(1, 0, genesis_payload(), digest(1));
        let cert = fin(&f, l);
        let proof = EpochProof {
            epoch: 0,
            finalization: cert.clone(),
            blocks: vec![l.payload],
        };
        run(
            &mut d,
            vec![
                (
                    msg(0, Message::Certificate(cert.clone()), 10),
                    Ok(vec![
                        c(0, Output::Finalized(cert.clone())),
                        c(0, Output::ViewChanged { view: 2 }),
                        EpochOutput::BlockNeeded {
                            epoch: 0,
                            payload: l.payload,
                        },
                    ]),
                ),
                (
                    block(l, BlockKind::Boundary),
                    Ok(vec![EpochOutput::EpochEnded {
                        epoch: 0,
                        last_block: l.payload,
                        proof: proof.clone(),
                    }]),
                ),
                // A vote of the ended epoch: re-broadcast its finalization,
                // then not again within nullify_retry_ms (500 ms).
                (
                    msg(0, f.vote_msg(3, VoteKind::Nullify(2)), 20),
                    Ok(vec![c(
                        0,
                        Output::Broadcast(Message::Certificate(cert.clone())),
                    )]),
                ),
                (msg(0, f.vote_msg(3, VoteKind::Nullify(2)), 30), Ok(vec![])),
                (
                    msg(0, f.vote_msg(3, VoteKind::Nullify(2)), 520),
                    Ok(vec![c(
                        0,
                        Output::Broadcast(Message::Certificate(cert.clone())),
                    )]),
                ),
            ],
        );
        assert!(d.has_ended());
        assert_eq!(d.proof(0), Some(&proof));
        let f1 = fx(1);
        assert_eq!(
            d.start_next_epoch(2, f1.set.clone(), None, 40),
            Err(EpochError::WrongEpoch {
                expected: 1,
                got: 2
            })
        );
        // Epoch 1 with this node's key in the set: it votes.
        let out = d
            .start_next_epoch(1, f1.set.clone(), Some(f1.keys[2].clone()), 50)
            .expect("starts");
        let anchor = Anchor {
            view: 0,
            payload: l.payload,
        };
        assert_eq!(
            out,
            vec![
                EpochOutput::EpochStarted {
                    epoch: 1,
                    anchor,
                    voting: true
                },
                c(1, Output::ViewChanged { view: 1 }),
                c(1, Output::SetTimer { deadline_ms: 1_050 }),
            ]
        );
        assert_eq!(d.epoch(), 1);
        assert_eq!(d.previous_instance().map(|(e, _)| e), Some(0));
        assert_eq!(d.instance().last_finalized(), anchor);
        // An epoch-0 certificate replayed as epoch 1 does not verify.
        assert!(matches!(
            d.handle(msg(1, Message::Certificate(cert), 60)),
            Err(EpochError::Message {
                epoch: 1,
                source: MessageError::BadSignature { .. }
            })
        ));
    }

    #[test]
    fn e3_suffix_finalization_ends_the_epoch_at_the_boundary() {
        let f = fx(0);
        let (mut d, _) = driver(&f, None);
        let l = prop(1, 0, genesis_payload(), digest(1));
        let s1 = prop(2, 1, l.payload, digest(2));
        let s2 = prop(4, 2, s1.payload, digest(3));
        let cert = fin(&f, s2);
        run(
            &mut d,
            vec![
                (block(l, BlockKind::Boundary), Ok(vec![])),
                (block(s1, BlockKind::Suffix), Ok(vec![])),
                (block(s2, BlockKind::Suffix), Ok(vec![])),
                (
                    msg(0, Message::Certificate(cert.clone()), 10),
                    Ok(vec![
                        c(0, Output::Finalized(cert.clone())),
                        c(0, Output::ViewChanged { view: 5 }),
                        EpochOutput::EpochEnded {
                            epoch: 0,
                            last_block: l.payload,
                            proof: EpochProof {
                                epoch: 0,
                                finalization: cert,
                                blocks: vec![s2.payload, s1.payload, l.payload],
                            },
                        },
                    ]),
                ),
            ],
        );
        // The proof verifies against the set and the blocks; not against
        // another epoch's namespace, a broken link or a wrong kind.
        let proof = d.proof(0).expect("kept").clone();
        let kinds = [
            (l.payload, (l.parent, BlockKind::Boundary)),
            (s1.payload, (s1.parent, BlockKind::Suffix)),
            (s2.payload, (s2.parent, BlockKind::Suffix)),
        ];
        let lookup = |d: &Digest| kinds.iter().find(|(k, _)| k == d).map(|(_, v)| *v);
        assert_eq!(proof.verify(&TEST_NAMESPACE, &f.set, lookup), Ok(l.payload));
        let mut shifted = proof.clone();
        shifted.epoch = 1;
        assert!(matches!(
            shifted.verify(&TEST_NAMESPACE, &f.set, lookup),
            Err(EpochError::ProofCertificate(_))
        ));
        let mut skipped = proof.clone();
        skipped.blocks.remove(1);
        assert_eq!(
            skipped.verify(&TEST_NAMESPACE, &f.set, lookup),
            Err(EpochError::ProofLink { index: 0 })
        );
        let all_suffix = |d: &Digest| lookup(d).map(|(p, _)| (p, BlockKind::Suffix));
        assert_eq!(
            proof.verify(&TEST_NAMESPACE, &f.set, all_suffix),
            Err(EpochError::ProofKind { index: 2 })
        );
        let mut long = proof.clone();
        long.blocks = vec![s2.payload; SUFFIX_BLOCKS_MAX + 2];
        assert_eq!(
            long.verify(&TEST_NAMESPACE, &f.set, lookup),
            Err(EpochError::ProofLength {
                len: SUFFIX_BLOCKS_MAX + 2,
                max: SUFFIX_BLOCKS_MAX + 1
            })
        );
    }

    #[test]
    fn e3_ordinary_finalization_does_not_end_and_start_next_is_refused() {
        let f = fx(0);
        let (mut d, _) = driver(&f, None);
        let p = prop(1, 0, genesis_payload(), digest(1));
        let cert = fin(&f, p);
        run(
            &mut d,
            vec![
                (block(p, BlockKind::Ordinary), Ok(vec![])),
                (
                    msg(0, Message::Certificate(cert.clone()), 10),
                    Ok(vec![
                        c(0, Output::Finalized(cert)),
                        c(0, Output::ViewChanged { view: 2 }),
                    ]),
                ),
            ],
        );
        assert!(!d.has_ended());
        assert_eq!(
            d.start_next_epoch(1, f.set.clone(), None, 20).map(|_| ()),
            Err(EpochError::NotEnded { epoch: 0 })
        );
    }

    /// E3 is about finality: a notarized boundary does not end the epoch.
    #[test]
    fn e3_notarized_boundary_does_not_end_the_epoch() {
        let f = fx(0);
        let (mut d, _) = driver(&f, None);
        let l = prop(1, 0, genesis_payload(), digest(1));
        let cert = f.cert(CertificateKind::Notarization(l), &[0, 1, 2]);
        run(
            &mut d,
            vec![
                (block(l, BlockKind::Boundary), Ok(vec![])),
                (
                    msg(0, Message::Certificate(cert.clone()), 10),
                    Ok(vec![
                        c(0, Output::Notarized(cert)),
                        c(0, Output::ViewChanged { view: 2 }),
                    ]),
                ),
            ],
        );
        assert!(!d.has_ended());
    }

    /// E2: a replica refuses an ordinary child of a boundary (nullifies).
    #[test]
    fn e2_replica_refuses_a_non_suffix_child_of_the_boundary() {
        let f = fx(0);
        let (mut d, _) = driver(&f, Some(3));
        let l = prop(1, 0, genesis_payload(), digest(1));
        let child = prop(2, 1, l.payload, digest(2));
        let notarization = f.cert(CertificateKind::Notarization(l), &[0, 1, 2]);
        d.handle(block(l, BlockKind::Boundary)).expect("ok");
        d.handle(msg(0, Message::Certificate(notarization), 10))
            .expect("ok");
        let out = d
            .handle(msg(0, f.vote_msg(2, VoteKind::Notarize(child)), 20))
            .expect("ok");
        assert_eq!(
            out,
            vec![
                c(0, Output::Validate(child)),
                c(0, Output::SetTimer { deadline_ms: 2_010 }),
            ]
        );
        let out = d
            .handle(EpochInput::Validated {
                epoch: 0,
                proposal: child,
                verdict: Some(BlockKind::Ordinary),
                now_ms: 30,
            })
            .expect("ok");
        let nullify = f.vote(3, VoteKind::Nullify(2));
        assert_eq!(
            out,
            vec![
                c(0, Output::Persist(WalEntry::Voted(nullify.clone()))),
                c(0, Output::Broadcast(Message::Vote(nullify))),
                c(0, Output::SetTimer { deadline_ms: 530 }),
            ]
        );
        // The same child as a suffix block is voted for.
        let (mut d, _) = driver(&f, Some(3));
        d.handle(block(l, BlockKind::Boundary)).expect("ok");
        d.handle(msg(
            0,
            Message::Certificate(f.cert(CertificateKind::Notarization(l), &[0, 1, 2])),
            10,
        ))
        .expect("ok");
        d.handle(msg(0, f.vote_msg(2, VoteKind::Notarize(child)), 20))
            .expect("ok");
        let out = d
            .handle(EpochInput::Validated {
                epoch: 0,
                proposal: child,
                verdict: Some(BlockKind::Suffix),
                now_ms: 30,
            })
            .expect("ok");
        let notarize = f.vote(3, VoteKind::Notarize(child));
        assert_eq!(
            out[..2],
            [
                c(0, Output::Persist(WalEntry::Voted(notarize.clone()))),
                c(0, Output::Broadcast(Message::Vote(notarize))),
            ]
        );
    }

    /// E4: the leader whose parent ends a suffix of `SUFFIX_BLOCKS_MAX`
    /// blocks does not propose; one block shorter, it does.
    #[test]
    fn e4_leader_does_not_build_past_the_suffix_bound() {
        for (suffix, builds) in [(SUFFIX_BLOCKS_MAX - 1, true), (SUFFIX_BLOCKS_MAX, false)] {
            let f = fx(0);
            let (mut d, _) = driver(&f, Some(2));
            let l = prop(1, 0, genesis_payload(), Digest([0xB0; 32]));
            d.handle(block(l, BlockKind::Boundary)).expect("ok");
            let mut parent = l.payload;
            for k in 0..suffix {
                let mut id = [0u8; 32];
                id[..8].copy_from_slice(&(k as u64 + 1).to_le_bytes());
                let s = prop(1, 0, parent, Digest(id));
                d.handle(block(s, BlockKind::Suffix)).expect("ok");
                parent = s.payload;
            }
            // `parent` is notarized in view 1; this node leads view 2.
            let tip = prop(1, 0, genesis_payload(), parent);
            let out = d
                .handle(msg(
                    0,
                    Message::Certificate(f.cert(CertificateKind::Notarization(tip), &[0, 1, 3])),
                    10,
                ))
                .expect("ok");
            let built = out.iter().any(|o| {
                matches!(
                    o,
                    EpochOutput::Consensus {
                        output: Output::BuildProposal { .. },
                        ..
                    }
                )
            });
            assert_eq!(built, builds, "suffix of {suffix}: {out:#?}");
        }
    }

    /// E5: next-epoch messages are buffered (bounded) and replayed when the
    /// epoch starts; they also ask the host to catch up (rate-limited).
    #[test]
    fn e5_future_messages_are_buffered_and_trigger_catch_up() {
        let f = fx(0);
        let f1 = fx(1);
        let (mut d, _) = driver(&f, None);
        let p1 = prop(1, 0, genesis_payload(), digest(9));
        let l = prop(1, 0, genesis_payload(), digest(1));
        let p1 = Proposal {
            parent: l.payload,
            ..p1
        };
        let n1 = f1.cert(CertificateKind::Notarization(p1), &[0, 1, 2]);
        run(
            &mut d,
            vec![
                (
                    msg(1, Message::Certificate(n1.clone()), 10),
                    Ok(vec![EpochOutput::CatchUp { epoch: 0 }]),
                ),
                (msg(1, Message::Certificate(n1.clone()), 20), Ok(vec![])),
                (
                    msg(2, f.vote_msg(0, VoteKind::Nullify(1)), 600),
                    Ok(vec![EpochOutput::CatchUp { epoch: 0 }]),
                ),
            ],
        );
        assert_eq!(d.buffered(), 2); // epoch 2 is not buffered
        for _ in 0..FUTURE_MESSAGES_MAX {
            d.handle(msg(1, Message::Certificate(n1.clone()), 700))
                .expect("ok");
        }
        assert_eq!(d.buffered(), FUTURE_MESSAGES_MAX);
        let cert = fin(&f, l);
        d.handle(block(l, BlockKind::Boundary)).expect("ok");
        d.handle(msg(0, Message::Certificate(cert), 800))
            .expect("ok");
        assert!(d.has_ended());
        let out = d
            .start_next_epoch(1, f1.set.clone(), None, 900)
            .expect("starts");
        assert_eq!(
            out,
            vec![
                EpochOutput::EpochStarted {
                    epoch: 1,
                    anchor: Anchor {
                        view: 0,
                        payload: l.payload
                    },
                    voting: false
                },
                c(1, Output::ViewChanged { view: 1 }),
                c(1, Output::Notarized(n1)),
                c(1, Output::ViewChanged { view: 2 }),
            ]
        );
        assert_eq!(d.buffered(), 0);
    }
}
