//! # cairn-consensus — Simplex BFT as a pure, sans-I/O state machine
//!
//! Implements Simplex (Benjamin Y. Chan and Rafael Pass, *"Simplex Consensus:
//! A Simple and Fast Consensus Protocol"*, TCC 2023, <https://eprint.iacr.org/2023/463>)
//! in the form used by commonware's `consensus::simplex`: the leader's
//! Notarize vote doubles as its proposal, and an explicit Finalize vote turns
//! a notarization into finality.
//!
//! The crate performs no I/O, reads no clock and uses no randomness. The host
//! feeds [`Input`]s (network messages, timer expiries, application answers),
//! each carrying `now_ms`, into [`Consensus::handle`] and performs the returned
//! [`Output`]s in order.
//!
//! ## Model
//!
//! * Validators have voting power; `total = Σ power`, and a *quorum* is
//!   any set of distinct validators with power `>= quorum_power = total * 2 / 3 + 1`
//!   (strictly more than 2/3). Safety holds while Byzantine power is `< total / 3`.
//! * Views `v = 1, 2, …`. The [`Anchor`] (genesis = view 0, or the last finalized
//!   block on restart) is treated as notarized and finalized.
//! * A certificate for view `w` is a quorum of signatures over the same
//!   [`VoteKind`]: Notarization (Notarize votes for one proposal), Nullification
//!   (Nullify votes), Finalization (Finalize votes for one proposal).
//!
//! ## Rules
//!
//! * **R1 — views and leaders.** The leader of view `v` is
//!   `validators[v mod n]` (round-robin by index; weighted leader selection is
//!   future work). On entering `v` the machine emits `ViewChanged`, arms the
//!   timer at `now + leader_timeout_ms` (waiting for the proposal) and
//!   remembers the notarization deadline `now + notarization_timeout_ms`; once
//!   the proposal is seen the timer moves to the notarization deadline.
//! * **R2 — propose.** The leader of `v` emits `BuildProposal { view: v,
//!   parent_view, parent }` where `(parent_view, parent)` is the highest-view
//!   notarized block below `v` (or the anchor) such that every view strictly
//!   between `parent_view` and `v` is nullified. Without certificate jumps
//!   (R10) this is always the highest notarized view; after a jump a view in
//!   between may be unknown, and the leader then waits (re-checking after every
//!   input) until the missing certificates arrive or the view times out. On
//!   `Input::Proposed` the leader persists and broadcasts its Notarize vote for
//!   the proposal — that vote *is* the proposal message. If `parent_view <
//!   v - 1` it first broadcasts a batch of the parent's justification (the
//!   parent's notarization and the nullifications of the views in between,
//!   see R7), so replicas that missed some can check R3.
//! * **R3 — parent rule.** On the first Notarize vote of view `v`'s leader for
//!   `v` (the proposal), a replica in view `v` checks: `parent_view < v`;
//!   `(parent_view, parent)` is notarized (a held notarization, or the last
//!   finalized block); every view in `(parent_view, v)` has a held
//!   nullification. If it holds it emits `Validate(proposal)`. If a certificate
//!   is missing the proposal stays pending and is re-checked whenever new
//!   certificates arrive. A proposal whose parent is below the last finalized
//!   view, or conflicts with a known notarization, is rejected for good and
//!   the node nullifies the view at once (R7).
//!   Proposals received for a future view are checked on entering it.
//! * **R4 — notarize.** On `Input::Validated { valid: true }` for the current
//!   view's proposal, if this node has neither voted Nullify nor Notarize in
//!   that view, it persists and broadcasts `Notarize(proposal)`. With
//!   `valid: false` it never votes for that proposal and nullifies the view at
//!   once (R7) — honest votes cannot notarize it.
//! * **R5 — notarization.** Notarize votes of a quorum for the same proposal
//!   form a Notarization: broadcast it, emit `Notarized`, cast the Finalize
//!   vote (R6), then enter `v + 1`.
//! * **R6 — finalize vote.** When a view in the kept window is notarized and
//!   this node did not vote Nullify there (nor Notarize for a different
//!   proposal), it persists and broadcasts `Finalize(proposal)` — also for
//!   views it jumped over or already left.
//! * **R7 — timeout.** When the timer fires in view `v` (no proposal by the
//!   leader deadline, or no notarization by the notarization deadline) — or
//!   at once when the view's proposal is rejected (R3, R4) — the node
//!   persists and broadcasts `Nullify(v)`, then every `nullify_retry_ms`
//!   re-broadcasts that vote, the highest-view certificate it holds, up to
//!   [`JUSTIFICATION_BATCH_MAX`] certificates justifying the current view's
//!   parent (rotating through them), and its own votes in views from that
//!   parent up to `v` for which it holds no certificate — so laggards catch
//!   up, nodes that missed a nullification inside the parent gap can check
//!   R3, and votes that only a restarted node's WAL remembers reach the peers
//!   that need them to certify a view.
//! * **R8 — nullification.** Nullify votes of a quorum for `v` form a
//!   Nullification: broadcast it, enter `v + 1`.
//! * **R9 — finalization.** Finalize votes of a quorum for the same proposal
//!   form a Finalization: broadcast it and emit `Finalized`. Finalizing a block
//!   implicitly finalizes its ancestors; the host walks the parents.
//! * **R10 — certificates from peers.** A received certificate is verified
//!   (distinct known signers, sorted, quorum power, every signature). A
//!   Notarization or Nullification of any view `w >= current` makes the node
//!   enter `w + 1`; a Finalization of `w` (which implies a notarization of `w`)
//!   likewise. Every newly learned certificate is recorded and forwarded once.
//!   Certificates already known are dropped unverified (except a
//!   notarization known only from the WAL, which is taken once so it can be
//!   re-broadcast as justification).
//! * **R11 — future votes.** Votes for views up to `current + views_ahead_max`
//!   are collected; if they reach a quorum the certificate is formed at once
//!   (and R10 applies).
//! * **R12 — one vote per kind.** Only the first Notarize, Nullify and
//!   Finalize of each signer per view counts; a second, different one
//!   (equivocation, including a second proposal from the leader) is not
//!   counted (but see R15).
//! * **R13 — signatures.** Votes are ed25519 signatures (`verify_strict`) over
//!   [`signing_digest`] = `blake3::derive_key("cairn consensus vote v1",
//!   namespace ‖ borsh(VoteKind))`; the namespace is the chain's genesis hash,
//!   so votes do not replay across chains.
//! * **R14 — crash recovery.** Every own vote is emitted as `Persist` before
//!   its `Broadcast`; [`Consensus::new`] replays the WAL so the node never signs
//!   a conflicting vote, resumes at `max(anchor.view + 1, highest voted view,
//!   highest Finalize-voted view + 1)`, and [`Consensus::start`] re-broadcasts
//!   those votes.
//! * **R15 — equivocation evidence.** A vote conflicting with one the same
//!   validator already cast in a kept view — two Notarize for different
//!   proposals, two Finalize for different proposals, or Nullify and Finalize
//!   ([`Equivocation`]) — is verified and emitted as
//!   [`Output::Evidence`]: a canonical, borsh-encoded [`Evidence`] record that
//!   anyone can check with [`Evidence::verify`]`(namespace, set)`. Signatures
//!   inside a newly verified certificate are checked against held votes the
//!   same way. At most one record per (validator, view, kind).
//!
//! ## Invariants
//!
//! Asserted (`assert!`) immediately before every signature — an honest
//! validator never signs:
//! * **I1** two Notarize votes in one view;
//! * **I2** a Notarize after its own Nullify in that view (Notarize *then*
//!   Nullify is allowed);
//! * **I3** both Finalize and Nullify in one view (either order);
//! * **I4** two Finalize votes in one view.
//!
//! Also: `Finalized` outputs have strictly increasing views; an `Err` from
//! [`Consensus::handle`] never changes state; the machine never panics on
//! peer input (the asserts guard decisions the machine makes itself).
//!
//! ## Bounds
//!
//! * [`MAX_VALIDATORS`] = `u16::MAX` validators; [`Message::BYTES_MAX`] bytes
//!   per message, checked before decoding.
//! * Per-view vote state only for views in `[max(last_finalized + 1, current -
//!   VIEWS_KEPT), current + views_ahead_max]` ([`VIEWS_KEPT`],
//!   [`Config::views_ahead_max`] `<= VIEWS_AHEAD_LIMIT`); older messages are
//!   [`MessageError::Stale`], votes further ahead [`MessageError::TooFarAhead`].
//! * At most one vote per validator per kind per view (so `<= n` per kind);
//!   certificates with more signatures than validators or a repeated signer
//!   are rejected.
//! * Compact chain knowledge (notarized payloads, nullified view ranges) is
//!   kept only above the last finalized view; a nullification streak costs one
//!   range entry.
//! * Justification certificates (R7): at most two per view for the views
//!   from the current view's parent up, at most [`JUSTIFICATION_VIEWS_MAX`]
//!   views (a longer nullification streak cannot be fully re-justified);
//!   at most [`JUSTIFICATION_BATCH_MAX`] re-broadcast at once.
//! * Evidence: at most 3 records per validator per kept view.
//!
//! ## The sans-I/O contract
//!
//! * **Inputs.** `Message` (decoded with [`Message::decode`]; the machine
//!   verifies it), `Timeout` (the single timer fired), `Proposed` (answer to
//!   `BuildProposal`), `Validated` (answer to `Validate`). Time enters only via
//!   `now_ms`.
//! * **Outputs, in order.** `Persist` must be durable before any later output
//!   of the same batch is performed; a `Persist` always precedes the
//!   `Broadcast` of the vote it records. `Broadcast` goes to every other
//!   node. `SetTimer` replaces the single timer. `BuildProposal` / `Validate`
//!   expect exactly one answer each (late answers for views already left are
//!   ignored; unrequested ones are [`MessageError::InvalidInput`]).
//!   `Notarized` / `Finalized` / `ViewChanged` / `Evidence` are notifications.
//! * **Batches.** Perform all outputs of one call before feeding the next
//!   input; answers to `BuildProposal` / `Validate` are *new* inputs (feeding
//!   them mid-batch would let a stale `SetTimer` of the old batch override a
//!   newer one).
//! * **Observers** (`signer: None`) never persist, broadcast, set timers,
//!   build or validate; they follow certificates and emit `Notarized`,
//!   `Finalized` and `ViewChanged`.
//! * **Not done here:** fetching missing blocks or certificates (a node that
//!   jumped may lack a nullification needed by R3 and gets it from peers'
//!   re-broadcasts, R2/R7), gossiping / storing / serving evidence (the
//!   host's job). Validator-set changes are handled one level up, by
//!   [`epoch::Epochs`] (next section).
//!
//! ## Epochs (validator-set changes)
//!
//! Spec, safety argument and bounds in [`epoch`]; in short:
//!
//! * **E1.** Epoch `e` = one [`Consensus`] instance with set `S_e` and
//!   namespace `N_e` = [`epoch_namespace`]`(chain, e)` (`N_0` = the chain
//!   namespace, so existing vectors stay valid). Votes sign their namespace,
//!   so a certificate of epoch `e` verifies only under `S_e`/`N_e`. Messages
//!   travel as [`EpochMessage`] `{ epoch, message }`
//!   (≤ [`Message::BYTES_MAX`] + 8 bytes, checked before decoding).
//! * **E2.** The application tags each block it builds or validates with a
//!   [`BlockKind`]: the first block whose execution changes the next set is
//!   the epoch's **boundary** `L`; its descendants in the epoch are empty
//!   **suffix** blocks, which exist only so `L` can be finalized implicitly
//!   when its own view is notarized but never finalized.
//! * **E3.** Epoch `e` ends when a Finalization of `L` or of a descendant is
//!   known; `L` (never a suffix block) is the last block committed in `e`;
//!   epoch `e + 1` starts from `Anchor { view: 0, payload: L }` with the set
//!   the application computes from the state after `L`.
//! * **E4.** [`EpochProof`] = that finalization + the ≤
//!   [`SUFFIX_BLOCKS_MAX`] suffix ids down to `L`; a longer suffix is
//!   invalid (the view is nullified).
//! * **E5.** Observers follow epochs they are not in; the previous instance
//!   and the last proofs are kept to answer laggards; next-epoch messages are
//!   buffered (bounded).
//!
//! Safety: Simplex within each epoch (< 1/3 Byzantine power of `S_e` while
//! `e` runs) makes every honest node finalize the same chain in `e`, hence
//! the same `L`, the same `S_{e+1}` and the same anchor; `N_{e+1}` keeps
//! `S_e`'s keys and old certificates out of epoch `e + 1`. Limits
//! (long-range attacks with retired keys; syncing nodes verify epochs in
//! order) are in [`epoch`]. Designs compared: commonware simplex epochs,
//! Aptos reconfiguration suffix, CometBFT validator updates.
//!
//! ## Testing
//!
//! * `src/tests.rs`: step tables — exact outputs for hand-made inputs — for
//!   every rule above (test names start with the rule, e.g. `r7_…`).
//! * `tests/cluster.rs`, `tests/props.rs`: multi-instance runs and property
//!   tests on the `testing::Cluster` harness.
//! * `tests/sim.rs` and `testing::sim` (feature `testing`): the
//!   deterministic fault simulator — seeded schedule, virtual time, latency,
//!   jitter, loss, reordering, duplication, partitions, crash/restart from
//!   the WAL, unequal power, Byzantine validators (equivocating leader,
//!   double voting, silent leader, invalid/unknown blocks and bad signatures,
//!   Twins), invariants after every step and a liveness bound after healing.
//!   CI runs 200 seeds with n = 4 and 50 with n = 7, a determinism check, and
//!   shows that three deliberately broken variants are caught.
//!   `tests/reconfig.rs` and `testing::reconfig` run the same faults through
//!   validator-set changes (add, remove, power, key rotation, removing the
//!   boundary's proposer, 50 epochs of churn) on the [`Epochs`] driver,
//!   200 seeds in CI plus two epoch-specific broken variants. The long run:
//!
//!   ```text
//!   cargo run -p cairn-consensus --release --features testing --example sim -- --seeds 5000 [--validators 7]
//!   ```
//!
//!   A failing seed prints a one-line replay command (`--seed N`, add
//!   `--trace` for every event). See `consensus/SIMULATOR.md`.
//!
//! ## Example
//!
//! A one-validator chain driven by a minimal host loop (a real host sends
//! `Broadcast`s to peers, fsyncs `Persist`s and runs a timer):
//!
//! ```
//! use std::collections::VecDeque;
//! use cairn_consensus::*;
//!
//! let key = SigningKey::from_bytes(&[1u8; 32]);
//! let set = ValidatorSet::new(vec![Validator {
//!     public_key: key.verifying_key(),
//!     voting_power: 10,
//! }])
//! .unwrap();
//! let config = Config::with_defaults([9u8; 32], set, Some(key));
//! let genesis = Anchor { view: 0, payload: Digest([0u8; 32]) };
//! let mut node = Consensus::new(config.clone(), genesis, &[]).unwrap();
//!
//! let mut wal: Vec<WalEntry> = Vec::new();
//! let mut inputs: VecDeque<Input> = VecDeque::new();
//! let mut outputs = node.start(0);
//! let mut now = 0;
//! while node.last_finalized().view < 3 {
//!     for output in outputs.drain(..) {
//!         match output {
//!             Output::Persist(entry) => wal.push(entry), // durable before going on
//!             Output::Broadcast(message) => drop(message.encode()), // to every peer
//!             Output::BuildProposal { view, .. } => inputs.push_back(Input::Proposed {
//!                 view,
//!                 payload: Digest([view as u8; 32]),
//!                 now_ms: now,
//!             }),
//!             Output::Validate(proposal) => inputs.push_back(Input::Validated {
//!                 proposal,
//!                 valid: true,
//!                 now_ms: now,
//!             }),
//!             Output::Finalized(cert) => println!("finalized view {}", cert.view()),
//!             Output::Evidence(evidence) => drop(evidence.encode()), // gossip / store
//!             Output::SetTimer { .. } | Output::Notarized(_) | Output::ViewChanged { .. } => {}
//!         }
//!     }
//!     now += 1;
//!     let input = inputs.pop_front().expect("the app always answers");
//!     outputs = node.handle(input).unwrap();
//! }
//! assert_eq!(node.view(), 4);
//!
//! // After a crash: replaying the WAL restores what was signed.
//! let restarted = Consensus::new(config, node.last_finalized(), &wal).unwrap();
//! assert_eq!(restarted.view(), 4);
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod config;
pub mod epoch;
mod error;
mod evidence;
mod facts;
#[doc(hidden)]
pub mod fuzzing;
mod machine;
mod round;
mod types;
mod validators;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

#[cfg(test)]
mod tests;

pub use config::{
    Config, DEFAULT_LEADER_TIMEOUT_MS, DEFAULT_NOTARIZATION_TIMEOUT_MS, DEFAULT_NULLIFY_RETRY_MS,
    DEFAULT_VIEWS_AHEAD_MAX, JUSTIFICATION_BATCH_MAX, JUSTIFICATION_VIEWS_MAX, Timeouts,
    VIEWS_AHEAD_LIMIT, VIEWS_KEPT,
};
pub use epoch::{
    BlockKind, EPOCH_CONTEXT, EPOCH_PROOFS_KEPT, Epoch, EpochError, EpochInput, EpochMessage,
    EpochOutput, EpochParams, EpochProof, Epochs, SUFFIX_BLOCKS_MAX, epoch_namespace,
};
pub use error::{ConfigError, EvidenceError, MessageError, ValidatorSetError};
pub use evidence::{Equivocation, Evidence};
pub use machine::{Consensus, Input, Output};
pub use types::{
    Anchor, Certificate, CertificateKind, Digest, Message, Proposal, VOTE_CONTEXT, ValidatorIndex,
    View, Vote, VoteKind, WalEntry, signing_digest,
};
pub use validators::{MAX_VALIDATORS, Validator, ValidatorSet};

// Re-exported so hosts use the exact key types of this crate's dependency.
pub use ed25519_dalek::{SigningKey, VerifyingKey};
