//! The Simplex state machine (see the crate docs for the rules R1..R14).

use std::collections::BTreeMap;

use ed25519_dalek::SigningKey;

use crate::config::{
    Config, JUSTIFICATION_BATCH_MAX, JUSTIFICATION_VIEWS_MAX, Timeouts, VIEWS_KEPT,
};
use crate::error::{ConfigError, MessageError};
use crate::evidence::Evidence;
use crate::facts::{Facts, ParentStatus};
use crate::round::{ProposalState, Round};
use crate::types::{
    Anchor, Certificate, CertificateKind, Digest, Message, Proposal, ValidatorIndex, View, Vote,
    VoteKind, WalEntry,
};
use crate::validators::ValidatorSet;

/// An event the host feeds into [`Consensus::handle`]. `now_ms` is the host's
/// monotonic clock in milliseconds; it is the only source of time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// A message received from a peer (already decoded, not yet verified).
    Message {
        /// The message.
        message: Message,
        /// Current time (ms).
        now_ms: u64,
    },
    /// The timer set by the last [`Output::SetTimer`] fired (`now_ms >= deadline_ms`).
    Timeout {
        /// Current time (ms).
        now_ms: u64,
    },
    /// The application built the block requested by [`Output::BuildProposal`]
    /// for `view`; `payload` is its digest.
    Proposed {
        /// The view from the `BuildProposal`.
        view: View,
        /// Digest of the built block.
        payload: Digest,
        /// Current time (ms).
        now_ms: u64,
    },
    /// The application's verdict on a proposal requested by [`Output::Validate`].
    Validated {
        /// The proposal from the `Validate` output, unchanged.
        proposal: Proposal,
        /// Whether the block is valid (and available).
        valid: bool,
        /// Current time (ms).
        now_ms: u64,
    },
}

impl Input {
    /// The input's `now_ms`.
    pub fn now_ms(&self) -> u64 {
        match self {
            Input::Message { now_ms, .. }
            | Input::Timeout { now_ms }
            | Input::Proposed { now_ms, .. }
            | Input::Validated { now_ms, .. } => *now_ms,
        }
    }
}

/// An effect the host must perform, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Durably append this entry to the WAL. The host MUST make it durable
    /// before performing any later output of the same batch (in particular the
    /// `Broadcast` of the vote it records, which always follows it).
    Persist(WalEntry),
    /// Send to every other validator (and observers, if desired). Never
    /// includes a copy for this node itself.
    Broadcast(Message),
    /// Arm the single timer: replaces any earlier deadline. When the host's
    /// clock reaches `deadline_ms` it must call `handle(Input::Timeout)`.
    SetTimer {
        /// Absolute deadline in host ms.
        deadline_ms: u64,
    },
    /// (Leader only.) Build a block for `view` extending `parent` (the payload
    /// of the block notarized in `parent_view`) and answer with
    /// [`Input::Proposed`].
    BuildProposal {
        /// The view to propose in.
        view: View,
        /// View of the parent block.
        parent_view: View,
        /// Payload digest of the parent block.
        parent: Digest,
    },
    /// Check the proposed block (fetch it if needed, execute it on top of
    /// `parent`) and answer with [`Input::Validated`].
    Validate(Proposal),
    /// A notarization certificate was formed or received (kind = Notarization).
    /// Emitted at most once per view.
    Notarized(Certificate),
    /// A finalization certificate (kind = Finalization) for a view above the
    /// previous last finalized view. Its proposal and all ancestors are final;
    /// the host walks the parents. Views are strictly increasing across outputs.
    Finalized(Certificate),
    /// The machine entered `view` (informational, e.g. metrics).
    ViewChanged {
        /// The new current view.
        view: View,
    },
    /// A validator signed two conflicting votes in one view (R15): a
    /// verified, canonical [`Evidence`] record. Informational — the machine
    /// has already applied R12 (the second vote is not counted) and needs
    /// nothing back; the host may gossip, store and serve it (check it with
    /// [`Evidence::verify`], deduplicate by [`Evidence::encode`]). Emitted at
    /// most once per (validator, view, [`crate::Equivocation`]) while the
    /// view's vote state is kept.
    Evidence(Evidence),
}

/// Deliberately broken protocol variants (feature `testing` only, set with
/// `Consensus::set_broken_variant`): they exist so tests can show that the
/// simulator (`testing::sim`) catches real bugs. Never used unless
/// set explicitly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(not(any(test, feature = "testing")), allow(dead_code))]
pub enum BrokenVariant {
    /// Certificates form (and are accepted) with `quorum_power - 1` — "2f
    /// instead of 2f+1" for equal powers.
    WeakQuorum,
    /// Own votes are broadcast without a preceding `Persist` (never
    /// persisted), so a restart forgets them.
    VoteNotPersisted,
    /// The parent rule is ignored: a leader extends the last finalized block
    /// instead of the R2 parent, and replicas only check that the parent is
    /// notarized (not that the views in between are nullified).
    IgnoreParentRule,
    /// Epochs (`crate::epoch`): the instance of epoch `e + 1` also accepts
    /// certificates that verify under epoch `e`'s validator set and
    /// namespace ("the new epoch accepts old certificates").
    AcceptPreviousEpochCertificates,
    /// Epochs (`crate::epoch`): the wrapper ends an epoch when its boundary
    /// block is *notarized* instead of final (a set change applied before
    /// its block is final). Ignored by `Consensus` itself.
    SwitchOnNotarization,
}

/// Certificates held for one view of the justification window.
#[derive(Clone, Debug, Default)]
struct Justification {
    /// Notarization, or Finalization (which implies it).
    notarization: Option<Certificate>,
    nullification: Option<Certificate>,
}

/// The Simplex consensus state machine for one node. Pure: no I/O, no clock,
/// no randomness. See the crate docs for the contract.
pub struct Consensus {
    namespace: [u8; 32],
    set: ValidatorSet,
    signer: Option<(ValidatorIndex, SigningKey)>,
    leader_timeout_ms: u64,
    notarization_timeout_ms: u64,
    nullify_retry_ms: u64,
    views_ahead_max: u64,

    started: bool,
    view: View,
    last_finalized: Anchor,
    facts: Facts,
    /// Vote state for views in `[low_view(), view + views_ahead_max]`.
    rounds: BTreeMap<View, Round>,
    /// The highest-view certificate held (re-broadcast on nullify retries).
    highest_cert: Option<Certificate>,
    /// Certificates justifying the current view's parent (R2/R3): for views
    /// in `[parent view, current view)` (and `>=` the last finalized view) the
    /// notarization / finalization and nullification learned. Re-broadcast
    /// in batches (R7, R2) so nodes that missed them can check the parent
    /// rule. At most [`JUSTIFICATION_VIEWS_MAX`] views.
    justifications: BTreeMap<View, Justification>,
    /// Rotation point of the next justification batch.
    justification_cursor: View,
    /// Deadlines of the current view (absolute ms).
    leader_deadline: u64,
    notarization_deadline: u64,
    retry_deadline: u64,
    /// Deadline of the last `SetTimer` that has not fired yet.
    armed: Option<u64>,
    #[cfg(any(test, feature = "testing"))]
    broken: Option<BrokenVariant>,
    /// [`BrokenVariant::AcceptPreviousEpochCertificates`]: the previous
    /// epoch's namespace and set.
    #[cfg(any(test, feature = "testing"))]
    fallback_verifier: Option<([u8; 32], ValidatorSet)>,
}

impl std::fmt::Debug for Consensus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consensus")
            .field("me", &self.me())
            .field("view", &self.view)
            .field("last_finalized", &self.last_finalized)
            .field("rounds", &self.rounds.len())
            .finish()
    }
}

impl Consensus {
    /// Builds the machine from its config, the last finalized block and the
    /// WAL.
    ///
    /// `wal`: every entry previously emitted by [`Output::Persist`], in order;
    /// the machine replays them so it never signs a conflicting vote after a
    /// crash, and resumes at `max(anchor.view + 1, highest voted view,
    /// highest Finalize-voted view + 1)` (a Finalize vote proves the view was
    /// notarized, so the node had already left it). Entries with a view
    /// `<= anchor.view` are ignored.
    ///
    /// # Errors
    /// Any [`Config::validate`] error; [`ConfigError::AnchorViewTooLarge`];
    /// [`ConfigError::WalForeignSigner`], [`ConfigError::WalMalformed`] or
    /// [`ConfigError::WalConflict`] for a WAL that this node cannot have written.
    pub fn new(config: Config, anchor: Anchor, wal: &[WalEntry]) -> Result<Self, ConfigError> {
        config.validate()?;
        if anchor.view == View::MAX {
            return Err(ConfigError::AnchorViewTooLarge { view: anchor.view });
        }
        let me = config.signer_index()?;
        let mut facts = Facts::new(anchor);
        let mut rounds: BTreeMap<View, Round> = BTreeMap::new();
        let mut resume = anchor.view + 1;
        for entry in wal {
            let WalEntry::Voted(vote) = entry;
            let w = vote.kind.view();
            if me != Some(vote.signer) {
                return Err(ConfigError::WalForeignSigner {
                    view: w,
                    signer: vote.signer,
                });
            }
            if vote.kind.check().is_err() {
                return Err(ConfigError::WalMalformed { view: w });
            }
            if w <= anchor.view {
                continue;
            }
            let round = rounds
                .entry(w)
                .or_insert_with(|| Round::new(config.validators.leader(w)));
            let conflict = match &vote.kind {
                VoteKind::Notarize(_) => round.my_notarize.as_ref().is_some_and(|m| m != vote),
                VoteKind::Nullify(_) => round.my_finalize.is_some(),
                VoteKind::Finalize(_) => {
                    round.my_nullify.is_some()
                        || round.my_finalize.as_ref().is_some_and(|m| m != vote)
                }
            };
            if conflict {
                return Err(ConfigError::WalConflict { view: w });
            }
            if round.has_vote(&vote.kind, vote.signer) {
                continue; // exact duplicate entry
            }
            round.add_vote(vote, config.validators.power_of(vote.signer));
            round.record_mine(vote);
            resume = resume.max(w);
            match &vote.kind {
                VoteKind::Notarize(p) => {
                    // My Notarize is either my own proposal or the leader's
                    // proposal I validated: never validate or vote again.
                    round.proposal = Some(*p);
                    round.proposal_state = ProposalState::Valid;
                }
                VoteKind::Finalize(p) => {
                    // I only sign Finalize after seeing a valid notarization.
                    round.notarized = Some(*p);
                    facts.add_notarized(w, p.payload);
                    resume = resume.max(w + 1); // w < u64::MAX (checked)
                }
                VoteKind::Nullify(_) => {}
            }
        }
        let signer = match (me, config.signer) {
            (Some(i), Some(k)) => Some((i, k)),
            _ => None,
        };
        let mut machine = Consensus {
            namespace: config.namespace,
            set: config.validators,
            signer,
            leader_timeout_ms: config.leader_timeout_ms,
            notarization_timeout_ms: config.notarization_timeout_ms,
            nullify_retry_ms: config.nullify_retry_ms,
            views_ahead_max: config.views_ahead_max,
            started: false,
            view: resume,
            last_finalized: anchor,
            facts,
            rounds,
            highest_cert: None,
            justifications: BTreeMap::new(),
            justification_cursor: 0,
            leader_deadline: 0,
            notarization_deadline: 0,
            retry_deadline: 0,
            armed: None,
            #[cfg(any(test, feature = "testing"))]
            broken: None,
            #[cfg(any(test, feature = "testing"))]
            fallback_verifier: None,
        };
        machine.prune();
        let leader = machine.set.leader(resume);
        machine
            .rounds
            .entry(resume)
            .or_insert_with(|| Round::new(leader));
        Ok(machine)
    }

    /// Starts (or restarts) the machine at its current view: emits
    /// `ViewChanged`, re-broadcasts every vote this node signed that is still
    /// in the kept window (they are already durable), requests a proposal if
    /// this node leads the view, and arms the timer. Must be called once
    /// before [`Consensus::handle`]; calling it again re-emits the same.
    pub fn start(&mut self, now_ms: u64) -> Vec<Output> {
        let mut out = Vec::new();
        self.started = true;
        self.set_deadlines(now_ms);
        out.push(Output::ViewChanged { view: self.view });
        if self.signer.is_some() {
            for round in self.rounds.values() {
                for vote in round.my_votes() {
                    out.push(Output::Broadcast(Message::Vote(vote.clone())));
                }
            }
        }
        self.armed = None;
        self.progress(now_ms, &mut out);
        self.rearm(&mut out);
        out
    }

    /// Feeds one input; returns the outputs to perform, in order.
    ///
    /// # Errors
    /// For messages: see [`MessageError`] (peer faults, `Stale`,
    /// `TooFarAhead`). For `Proposed` / `Validated` the machine never asked
    /// for: [`MessageError::InvalidInput`]; late answers for views already
    /// left are ignored (`Ok(vec![])`). Calling before [`Consensus::start`]
    /// is `InvalidInput`. An error never changes state.
    pub fn handle(&mut self, input: Input) -> Result<Vec<Output>, MessageError> {
        if !self.started {
            return Err(MessageError::InvalidInput {
                reason: "handle called before start",
            });
        }
        let mut out = Vec::new();
        let now = input.now_ms();
        match input {
            Input::Message { message, now_ms } => match message {
                Message::Vote(vote) => self.on_vote(vote, now_ms, &mut out)?,
                Message::Certificate(cert) => self.on_certificate(cert, now_ms, &mut out)?,
            },
            Input::Timeout { now_ms } => self.on_timeout(now_ms, &mut out),
            Input::Proposed {
                view,
                payload,
                now_ms,
            } => self.on_proposed(view, payload, now_ms, &mut out)?,
            Input::Validated {
                proposal,
                valid,
                now_ms,
            } => self.on_validated(proposal, valid, now_ms, &mut out)?,
        }
        self.progress(now, &mut out);
        self.rearm(&mut out);
        Ok(out)
    }

    /// Replaces the timings (a governance `set_params`, say). Deadlines already set keep
    /// their values; every deadline set from now on (the next view entered, the next
    /// nullify retry) uses the new ones. Liveness only: see [`Timeouts`].
    ///
    /// # Errors
    /// [`Timeouts::validate`]'s; on error nothing changes.
    pub fn set_timeouts(&mut self, timeouts: Timeouts) -> Result<(), ConfigError> {
        timeouts.validate()?;
        self.leader_timeout_ms = timeouts.leader_timeout_ms;
        self.notarization_timeout_ms = timeouts.notarization_timeout_ms;
        self.nullify_retry_ms = timeouts.nullify_retry_ms;
        Ok(())
    }

    /// The timings in force.
    pub fn timeouts(&self) -> Timeouts {
        Timeouts {
            leader_timeout_ms: self.leader_timeout_ms,
            notarization_timeout_ms: self.notarization_timeout_ms,
            nullify_retry_ms: self.nullify_retry_ms,
        }
    }

    /// The current view.
    pub fn view(&self) -> View {
        self.view
    }

    /// The last finalized block (the anchor until something is finalized).
    pub fn last_finalized(&self) -> Anchor {
        self.last_finalized
    }

    /// This node's validator index (`None` for an observer).
    pub fn me(&self) -> Option<ValidatorIndex> {
        self.signer.as_ref().map(|(i, _)| *i)
    }

    /// The validator set.
    pub fn validators(&self) -> &ValidatorSet {
        &self.set
    }

    /// Lowest view whose vote state is kept; messages below are `Stale`.
    pub fn low_view(&self) -> View {
        (self.last_finalized.view + 1).max(self.view.saturating_sub(VIEWS_KEPT))
    }

    /// Number of per-view vote states currently held (bounded by
    /// `VIEWS_KEPT + 1 + views_ahead_max`).
    pub fn rounds_held(&self) -> usize {
        self.rounds.len()
    }

    /// The highest-view certificate held, if any.
    pub fn highest_certificate(&self) -> Option<&Certificate> {
        self.highest_cert.as_ref()
    }

    /// Turns this instance into a deliberately broken one (`None` restores
    /// the correct protocol). Test-only (feature `testing`): used to show
    /// that the simulator catches real bugs.
    #[cfg(any(test, feature = "testing"))]
    pub fn set_broken_variant(&mut self, variant: Option<BrokenVariant>) {
        self.broken = variant;
    }

    /// For [`BrokenVariant::AcceptPreviousEpochCertificates`]: the other
    /// epoch's namespace and set whose certificates the broken instance
    /// also accepts. Test-only (feature `testing`).
    #[cfg(any(test, feature = "testing"))]
    pub fn set_fallback_verifier(&mut self, fallback: Option<([u8; 32], ValidatorSet)>) {
        self.fallback_verifier = fallback;
    }

    /// Whether the broken variant accepts `cert` under the fallback set.
    fn fallback_accepts(&self, cert: &Certificate) -> bool {
        #[cfg(any(test, feature = "testing"))]
        {
            if self.broken == Some(BrokenVariant::AcceptPreviousEpochCertificates) {
                if let Some((namespace, set)) = &self.fallback_verifier {
                    return cert.verify(namespace, set).is_ok();
                }
            }
            false
        }
        #[cfg(not(any(test, feature = "testing")))]
        {
            let _ = cert;
            false
        }
    }

    #[inline(always)]
    fn broken(&self) -> Option<BrokenVariant> {
        #[cfg(any(test, feature = "testing"))]
        {
            self.broken
        }
        #[cfg(not(any(test, feature = "testing")))]
        {
            None
        }
    }

    /// The power a certificate needs (`quorum_power`, unless a broken
    /// variant is under test).
    fn quorum(&self) -> u64 {
        let q = self.set.quorum_power();
        if self.broken() == Some(BrokenVariant::WeakQuorum) {
            return q.saturating_sub(1).max(1);
        }
        q
    }

    // ----- inputs -------------------------------------------------------

    fn on_vote(&mut self, vote: Vote, now: u64, out: &mut Vec<Output>) -> Result<(), MessageError> {
        vote.kind.check()?;
        let w = vote.kind.view();
        if self.set.get(vote.signer).is_none() {
            return Err(MessageError::UnknownSigner {
                signer: vote.signer,
            });
        }
        if w < self.low_view() {
            return Err(MessageError::Stale {
                view: w,
                current: self.view,
            });
        }
        if w > self.view.saturating_add(self.views_ahead_max) {
            return Err(MessageError::TooFarAhead {
                view: w,
                current: self.view,
            });
        }
        let mut verified = false;
        if let Some(round) = self.rounds.get(&w) {
            // R15: a vote conflicting with one this signer already cast here
            // is verified once and reported as evidence.
            if let Some((equivocation, prior)) = round.conflict_with(&vote) {
                vote.verify(&self.namespace, &self.set)?;
                verified = true;
                // ---- state changes only below this line ----
                let signer = vote.signer;
                let evidence = Evidence::new(prior, vote.clone())
                    .expect("conflict_with returns a conflicting vote of the same signer");
                self.round_mut(w).mark_reported(signer, equivocation);
                out.push(Output::Evidence(evidence));
            }
            let round = self.rounds.get(&w).expect("checked above");
            // Duplicates and equivocations (a second, different vote of the
            // same kind: R12) are dropped without verification; so are votes
            // whose certificate is already known.
            let settled = match vote.kind {
                VoteKind::Notarize(_) => round.notarized.is_some(),
                VoteKind::Nullify(_) => round.nullified,
                VoteKind::Finalize(_) => false,
            };
            if settled || round.has_vote(&vote.kind, vote.signer) {
                return Ok(());
            }
        }
        if !verified {
            vote.verify(&self.namespace, &self.set)?;
        }
        // ---- state changes only below this line ----
        let power = self.set.power_of(vote.signer);
        let is_me = self.me() == Some(vote.signer);
        let round = self.round_mut(w);
        round.add_vote(&vote, power);
        if is_me {
            // A vote of mine I had no record of (e.g. a lost WAL): remember
            // it so I never sign a conflicting one.
            round.record_mine(&vote);
        }
        if let VoteKind::Notarize(p) = vote.kind {
            if vote.signer == round.leader && round.proposal.is_none() {
                round.proposal = Some(p);
            }
        }
        self.check_quorum(&vote.kind, now, out);
        Ok(())
    }

    fn on_certificate(
        &mut self,
        cert: Certificate,
        now: u64,
        out: &mut Vec<Output>,
    ) -> Result<(), MessageError> {
        cert.kind.vote_kind().check()?;
        let w = cert.view();
        if w <= self.last_finalized.view {
            return Err(MessageError::Stale {
                view: w,
                current: self.view,
            });
        }
        let known = match &cert.kind {
            // Known from the WAL only (no certificate held): take it, so it
            // can be re-broadcast as justification.
            CertificateKind::Notarization(_) => {
                self.facts.notarized(w).is_some()
                    && (w < self.justification_base()
                        || self
                            .justifications
                            .get(&w)
                            .is_some_and(|j| j.notarization.is_some()))
            }
            CertificateKind::Nullification(_) => self.facts.is_nullified(w),
            CertificateKind::Finalization(_) => false,
        };
        if known {
            return Ok(());
        }
        if let Err(e) = cert.verify_with_quorum(&self.namespace, &self.set, self.quorum()) {
            if !self.fallback_accepts(&cert) {
                return Err(e);
            }
        }
        // ---- state changes only below this line ----
        self.evidence_from_certificate(&cert, out);
        match cert.kind {
            CertificateKind::Notarization(p) => self.learn_notarization(p, cert, now, out),
            CertificateKind::Nullification(v) => self.learn_nullification(v, cert, now, out),
            CertificateKind::Finalization(p) => self.learn_finalization(p, cert, now, out),
        }
        Ok(())
    }

    /// R15: a verified certificate may carry a signature conflicting with a
    /// vote held for the same signer in that view.
    fn evidence_from_certificate(&mut self, cert: &Certificate, out: &mut Vec<Output>) {
        let Some(round) = self.rounds.get_mut(&cert.view()) else {
            return;
        };
        let kind = cert.kind.vote_kind();
        for (signer, signature) in &cert.signatures {
            let vote = Vote {
                kind: kind.clone(),
                signer: *signer,
                signature: *signature,
            };
            if let Some((equivocation, prior)) = round.conflict_with(&vote) {
                round.mark_reported(*signer, equivocation);
                let evidence = Evidence::new(prior, vote)
                    .expect("conflict_with returns a conflicting vote of the same signer");
                out.push(Output::Evidence(evidence));
            }
        }
    }

    fn on_timeout(&mut self, now: u64, out: &mut Vec<Output>) {
        self.armed = None; // the host's timer fired
        if self.signer.is_none() {
            return;
        }
        let Some(deadline) = self.deadline() else {
            return;
        };
        if now < deadline {
            return; // early / stale timer: rearm() re-emits the deadline
        }
        let v = self.view;
        let round = self.rounds.get(&v).expect("current round exists");
        if round.my_finalize.is_some() {
            // Only reachable if a Finalize of mine for this view was learned
            // from the network (lost WAL): never nullify, wait for certificates.
            self.retry_deadline = now.saturating_add(self.nullify_retry_ms);
            return;
        }
        if let Some(vote) = round.my_nullify.clone() {
            // R7 retry: re-broadcast my Nullify, the highest certificate and
            // a batch of the current view's justification.
            out.push(Output::Broadcast(Message::Vote(vote)));
            if let Some(cert) = &self.highest_cert {
                out.push(Output::Broadcast(Message::Certificate(cert.clone())));
            }
            self.broadcast_justification(false, out);
            self.rebroadcast_uncertified_votes(out);
            self.retry_deadline = now.saturating_add(self.nullify_retry_ms);
        } else {
            // R7: give up on the view.
            self.nullify_current(now, out);
        }
    }

    /// R7 (also R3/R4 for a proposal that can never be voted for): sign
    /// Nullify for the current view, unless already done or forbidden (I3).
    fn nullify_current(&mut self, now: u64, out: &mut Vec<Output>) {
        let v = self.view;
        let round = self.rounds.get(&v).expect("current round exists");
        if round.my_nullify.is_some() || round.my_finalize.is_some() {
            return;
        }
        self.retry_deadline = now.saturating_add(self.nullify_retry_ms);
        let kind = VoteKind::Nullify(v);
        self.sign(kind.clone(), out);
        self.check_quorum(&kind, now, out);
    }

    fn on_proposed(
        &mut self,
        view: View,
        payload: Digest,
        now: u64,
        out: &mut Vec<Output>,
    ) -> Result<(), MessageError> {
        let Some(me) = self.me() else {
            return Err(MessageError::InvalidInput {
                reason: "observer cannot propose",
            });
        };
        if view < self.view {
            return Ok(()); // late answer: view already left
        }
        if view > self.view {
            return Err(MessageError::InvalidInput {
                reason: "Proposed for a future view",
            });
        }
        let round = self.rounds.get_mut(&view).expect("current round exists");
        if round.leader != me {
            return Err(MessageError::InvalidInput {
                reason: "Proposed for a view this node does not lead",
            });
        }
        let Some((parent_view, parent)) = round.build_parent else {
            return Err(MessageError::InvalidInput {
                reason: "Proposed without a BuildProposal",
            });
        };
        if round.my_notarize.is_some() || round.my_nullify.is_some() {
            return Ok(()); // duplicate answer, or the view already timed out
        }
        let proposal = Proposal {
            view,
            parent_view,
            parent,
            payload,
        };
        round.proposal = Some(proposal);
        round.proposal_state = ProposalState::Valid;
        if parent_view + 1 < view {
            // R2: after skipped views, send what justifies the parent first.
            self.broadcast_justification(true, out);
        }
        // R2: the leader's Notarize vote is the proposal.
        let kind = VoteKind::Notarize(proposal);
        self.sign(kind.clone(), out);
        self.check_quorum(&kind, now, out);
        Ok(())
    }

    fn on_validated(
        &mut self,
        proposal: Proposal,
        valid: bool,
        now: u64,
        out: &mut Vec<Output>,
    ) -> Result<(), MessageError> {
        if self.signer.is_none() {
            return Err(MessageError::InvalidInput {
                reason: "observer never validates",
            });
        }
        let view = proposal.view;
        if view < self.view {
            return Ok(()); // late answer
        }
        if view > self.view {
            return Err(MessageError::InvalidInput {
                reason: "Validated for a future view",
            });
        }
        let round = self.rounds.get_mut(&view).expect("current round exists");
        if round.proposal != Some(proposal) {
            return Err(MessageError::InvalidInput {
                reason: "Validated for a proposal that was not requested",
            });
        }
        match round.proposal_state {
            ProposalState::Validating => {}
            ProposalState::Valid | ProposalState::Invalid => return Ok(()), // duplicate
            ProposalState::Unchecked | ProposalState::Pending => {
                return Err(MessageError::InvalidInput {
                    reason: "Validated before Validate was emitted",
                });
            }
        }
        if !valid {
            // R4: never vote for it, and give up on the view at once (R7):
            // honest votes cannot notarize it.
            round.proposal_state = ProposalState::Invalid;
            if round.my_notarize.is_none() {
                self.nullify_current(now, out);
            }
            return Ok(());
        }
        round.proposal_state = ProposalState::Valid;
        if round.my_nullify.is_none() && round.my_notarize.is_none() {
            let kind = VoteKind::Notarize(proposal);
            self.sign(kind.clone(), out);
            self.check_quorum(&kind, now, out);
        }
        Ok(())
    }

    // ----- certificates ---------------------------------------------------

    /// Forms a certificate if `kind`'s view now has a quorum for it (R5, R8, R9, R11).
    fn check_quorum(&mut self, kind: &VoteKind, now: u64, out: &mut Vec<Output>) {
        let w = kind.view();
        let quorum = self.quorum();
        let Some(round) = self.rounds.get(&w) else {
            return;
        };
        match kind {
            VoteKind::Notarize(p) => {
                if round.notarized.is_none() {
                    if let Some(cert) = round.notarization(p, quorum) {
                        self.learn_notarization(*p, cert, now, out);
                    }
                }
            }
            VoteKind::Nullify(_) => {
                if !round.nullified {
                    if let Some(cert) = round.nullification(w, quorum) {
                        self.learn_nullification(w, cert, now, out);
                    }
                }
            }
            VoteKind::Finalize(p) => {
                if w > self.last_finalized.view {
                    if let Some(cert) = round.finalization(p, quorum) {
                        self.learn_finalization(*p, cert, now, out);
                    }
                }
            }
        }
    }

    /// Keeps `cert` (a notarization, finalization or nullification of a
    /// view above the last finalized one) for re-broadcast.
    fn keep_justification(&mut self, cert: &Certificate) {
        let w = cert.view();
        if w < self.last_finalized.view {
            return;
        }
        let slot = self.justifications.entry(w).or_default();
        match cert.kind {
            CertificateKind::Nullification(_) => {
                if slot.nullification.is_none() {
                    slot.nullification = Some(cert.clone());
                }
            }
            CertificateKind::Finalization(_) => slot.notarization = Some(cert.clone()),
            CertificateKind::Notarization(_) => {
                if slot.notarization.is_none() {
                    slot.notarization = Some(cert.clone());
                }
            }
        }
        self.prune_justifications();
    }

    /// The parent view of the current view (the last finalized view if
    /// unknown): the lowest view whose certificates justify the current one.
    fn justification_base(&self) -> View {
        let floor = self.last_finalized.view;
        self.facts
            .parent_for(self.view)
            .map_or(floor, |(u, _)| u)
            .max(floor)
    }

    /// Keeps only views in `[parent of the current view, current view)` (the
    /// last finalized view if the parent is unknown), at most
    /// [`JUSTIFICATION_VIEWS_MAX`] of them (the newest).
    fn prune_justifications(&mut self) {
        let base = self.justification_base();
        if self
            .justifications
            .first_key_value()
            .is_some_and(|(w, _)| *w < base)
        {
            self.justifications = self.justifications.split_off(&base);
        }
        while self.justifications.len() > JUSTIFICATION_VIEWS_MAX {
            self.justifications.pop_first();
        }
    }

    /// Broadcasts up to [`JUSTIFICATION_BATCH_MAX`] held justification
    /// certificates for the current view, oldest first, rotating through
    /// them across calls. Without `with_highest` the highest certificate is
    /// left out (the caller sends it anyway).
    fn broadcast_justification(&mut self, with_highest: bool, out: &mut Vec<Output>) {
        if self.signer.is_none() {
            return;
        }
        let certs: Vec<(View, &Certificate)> = self
            .justifications
            .range(..self.view)
            .flat_map(|(w, j)| {
                j.notarization
                    .iter()
                    .chain(j.nullification.iter())
                    .map(move |c| (*w, c))
            })
            .filter(|(_, c)| with_highest || Some(*c) != self.highest_cert.as_ref())
            .collect();
        if certs.is_empty() {
            return;
        }
        let start = if certs.len() <= JUSTIFICATION_BATCH_MAX {
            0
        } else {
            certs
                .iter()
                .position(|(w, _)| *w >= self.justification_cursor)
                .unwrap_or(0)
        };
        let batch: Vec<(View, Certificate)> = certs
            .iter()
            .cycle()
            .skip(start)
            .take(certs.len().min(JUSTIFICATION_BATCH_MAX))
            .map(|(w, c)| (*w, (*c).clone()))
            .collect();
        if let Some((last, _)) = batch.last() {
            self.justification_cursor = last + 1;
        }
        for (_, cert) in batch {
            out.push(Output::Broadcast(Message::Certificate(cert)));
        }
    }

    /// R7 retry: my votes in views from the current parent up to the
    /// current view for which I hold no certificate (typically after a
    /// restart: the WAL keeps votes, not certificates; or lost copies of my
    /// current Notarize). Peers that missed them may need them to form the
    /// certificate that lets them leave that view. My current Nullify is
    /// sent separately. At most `3 * (VIEWS_KEPT + 1)` votes.
    fn rebroadcast_uncertified_votes(&self, out: &mut Vec<Output>) {
        let base = self.justification_base().max(self.low_view());
        for (w, round) in self.rounds.range(base..=self.view) {
            let certified = self
                .justifications
                .get(w)
                .is_some_and(|j| j.notarization.is_some() || j.nullification.is_some());
            if !certified {
                for vote in round.my_votes() {
                    let current_nullify =
                        *w == self.view && matches!(vote.kind, VoteKind::Nullify(_));
                    if !current_nullify {
                        out.push(Output::Broadcast(Message::Vote(vote.clone())));
                    }
                }
            }
        }
    }

    fn note_highest(&mut self, cert: &Certificate) {
        let replace = match &self.highest_cert {
            None => true,
            Some(h) => {
                cert.view() > h.view()
                    || (cert.view() == h.view()
                        && matches!(cert.kind, CertificateKind::Finalization(_)))
            }
        };
        if replace {
            self.highest_cert = Some(cert.clone());
        }
    }

    fn broadcast_cert(&self, cert: &Certificate, out: &mut Vec<Output>) {
        if self.signer.is_some() {
            out.push(Output::Broadcast(Message::Certificate(cert.clone())));
        }
    }

    /// R5/R10: a new notarization of `p` (formed or received, verified).
    fn learn_notarization(
        &mut self,
        p: Proposal,
        cert: Certificate,
        now: u64,
        out: &mut Vec<Output>,
    ) {
        let w = p.view;
        self.facts.add_notarized(w, p.payload);
        self.note_highest(&cert);
        self.keep_justification(&cert);
        if w >= self.low_view() {
            let round = self.round_mut(w);
            if round.notarized.is_none() {
                round.notarized = Some(p);
            }
        }
        self.broadcast_cert(&cert, out);
        out.push(Output::Notarized(cert));
        self.maybe_finalize(w, now, out);
        if w >= self.view {
            self.enter_view(w + 1, now, out);
        }
    }

    /// R8/R10: a new nullification of `w`.
    fn learn_nullification(&mut self, w: View, cert: Certificate, now: u64, out: &mut Vec<Output>) {
        self.facts.add_nullified(w);
        self.note_highest(&cert);
        self.keep_justification(&cert);
        if let Some(round) = self.rounds.get_mut(&w) {
            round.nullified = true;
        }
        self.broadcast_cert(&cert, out);
        if w >= self.view {
            self.enter_view(w + 1, now, out);
        }
    }

    /// R9/R10: a new finalization of `p` (above the last finalized view).
    fn learn_finalization(
        &mut self,
        p: Proposal,
        cert: Certificate,
        now: u64,
        out: &mut Vec<Output>,
    ) {
        let w = p.view;
        if w <= self.last_finalized.view {
            return;
        }
        self.facts.add_notarized(w, p.payload);
        self.note_highest(&cert);
        if let Some(round) = self.rounds.get_mut(&w) {
            if round.notarized.is_none() {
                round.notarized = Some(p);
            }
        }
        self.broadcast_cert(&cert, out);
        out.push(Output::Finalized(cert.clone()));
        self.last_finalized = Anchor {
            view: w,
            payload: p.payload,
        };
        self.facts.finalize(w, p.payload);
        if w >= self.view {
            self.enter_view(w + 1, now, out);
        }
        self.prune();
        self.keep_justification(&cert);
    }

    // ----- signing --------------------------------------------------------

    /// R6: Finalize a notarized view I did not nullify (and, defensively,
    /// whose notarized proposal is the one I notarized, if any).
    fn maybe_finalize(&mut self, w: View, now: u64, out: &mut Vec<Output>) {
        if self.signer.is_none() || w <= self.last_finalized.view {
            return;
        }
        let Some(round) = self.rounds.get(&w) else {
            return; // pruned: I may have nullified it, never sign there
        };
        let Some(p) = round.notarized else {
            return;
        };
        let my_notarize_matches = round
            .my_notarize
            .as_ref()
            .is_none_or(|v| v.kind == VoteKind::Notarize(p));
        if round.my_nullify.is_none() && round.my_finalize.is_none() && my_notarize_matches {
            let kind = VoteKind::Finalize(p);
            self.sign(kind.clone(), out);
            self.check_quorum(&kind, now, out);
        }
    }

    /// Signs `kind` as me, records it, and emits `Persist` then `Broadcast`.
    /// Asserts the honest-signer invariants (I1..I4) first.
    fn sign(&mut self, kind: VoteKind, out: &mut Vec<Output>) {
        let (me, key) = self.signer.as_ref().expect("only validators sign");
        let me = *me;
        let w = kind.view();
        let round = self.rounds.get(&w).expect("signing only in kept views");
        match &kind {
            VoteKind::Notarize(_) => {
                assert!(
                    round.my_notarize.is_none(),
                    "I1: second Notarize in view {w}"
                );
                assert!(
                    round.my_nullify.is_none(),
                    "I2: Notarize after Nullify in view {w}"
                );
            }
            VoteKind::Nullify(_) => {
                assert!(round.my_nullify.is_none(), "second Nullify in view {w}");
                assert!(
                    round.my_finalize.is_none(),
                    "I3: Nullify after Finalize in view {w}"
                );
            }
            VoteKind::Finalize(_) => {
                assert!(
                    round.my_finalize.is_none(),
                    "I4: second Finalize in view {w}"
                );
                assert!(
                    round.my_nullify.is_none(),
                    "I3: Finalize after Nullify in view {w}"
                );
            }
        }
        let vote = Vote::sign(&self.namespace, kind, me, key);
        let power = self.set.power_of(me);
        let round = self.rounds.get_mut(&w).expect("checked above");
        round.record_mine(&vote);
        round.add_vote(&vote, power);
        if self.broken() != Some(BrokenVariant::VoteNotPersisted) {
            out.push(Output::Persist(WalEntry::Voted(vote.clone())));
        }
        out.push(Output::Broadcast(Message::Vote(vote)));
    }

    // ----- views and timers ----------------------------------------------

    fn round_mut(&mut self, w: View) -> &mut Round {
        debug_assert!(w >= self.low_view());
        let leader = self.set.leader(w);
        self.rounds.entry(w).or_insert_with(|| Round::new(leader))
    }

    fn set_deadlines(&mut self, now: u64) {
        self.leader_deadline = now.saturating_add(self.leader_timeout_ms);
        self.notarization_deadline = now.saturating_add(self.notarization_timeout_ms);
        self.retry_deadline = now.saturating_add(self.nullify_retry_ms);
    }

    /// R1/R10: move to `new_view` (no-op unless it is higher).
    fn enter_view(&mut self, new_view: View, now: u64, out: &mut Vec<Output>) {
        if new_view <= self.view {
            return;
        }
        self.view = new_view;
        self.set_deadlines(now);
        self.prune();
        self.prune_justifications();
        self.round_mut(new_view);
        out.push(Output::ViewChanged { view: new_view });
    }

    /// Drops vote state outside `[low_view(), view + views_ahead_max]`.
    fn prune(&mut self) {
        let low = self.low_view();
        self.rounds = self.rounds.split_off(&low);
        let high = self.view.saturating_add(self.views_ahead_max);
        if let Some(above) = high.checked_add(1) {
            self.rounds.split_off(&above);
        }
    }

    /// The deadline the single timer should carry for the current view.
    fn deadline(&self) -> Option<u64> {
        self.signer.as_ref()?;
        let round = self.rounds.get(&self.view)?;
        Some(
            if round.my_nullify.is_some() || round.my_finalize.is_some() {
                self.retry_deadline
            } else if round.proposal.is_some() || round.my_notarize.is_some() {
                self.notarization_deadline
            } else {
                self.leader_deadline
            },
        )
    }

    fn rearm(&mut self, out: &mut Vec<Output>) {
        if let Some(d) = self.deadline() {
            if self.armed != Some(d) {
                self.armed = Some(d);
                out.push(Output::SetTimer { deadline_ms: d });
            }
        }
    }

    /// R1/R3: leader asks for a block once the parent is known; replica
    /// checks the parent rule of the current proposal and asks the app to
    /// validate it. Re-run after every input (new certificates may unblock).
    fn progress(&mut self, now: u64, out: &mut Vec<Output>) {
        let Some(me) = self.me() else {
            return;
        };
        let v = self.view;
        let Some(round) = self.rounds.get(&v) else {
            return;
        };
        if round.my_nullify.is_some() {
            return;
        }
        if round.leader == me {
            if round.build_parent.is_none() && round.my_notarize.is_none() {
                let ignore_rule = self.broken() == Some(BrokenVariant::IgnoreParentRule);
                let parent = if ignore_rule {
                    Some((self.last_finalized.view, self.last_finalized.payload))
                } else {
                    self.facts.parent_for(v)
                };
                if let Some((parent_view, parent)) = parent {
                    // The chosen parent satisfies the parent rule by construction.
                    assert!(
                        ignore_rule
                            || self.facts.parent_status(&Proposal {
                                view: v,
                                parent_view,
                                parent,
                                payload: Digest::ZERO,
                            }) == ParentStatus::Valid,
                        "leader parent for view {v} violates the parent rule"
                    );
                    let round = self.rounds.get_mut(&v).expect("exists");
                    round.build_parent = Some((parent_view, parent));
                    out.push(Output::BuildProposal {
                        view: v,
                        parent_view,
                        parent,
                    });
                }
            }
            return;
        }
        let Some(p) = round.proposal else {
            return;
        };
        if !matches!(
            round.proposal_state,
            ProposalState::Unchecked | ProposalState::Pending
        ) {
            return;
        }
        let status = if self.broken() == Some(BrokenVariant::IgnoreParentRule) {
            self.facts.parent_status_ignoring_gaps(&p)
        } else {
            self.facts.parent_status(&p)
        };
        let round = self.rounds.get_mut(&v).expect("exists");
        match status {
            ParentStatus::Valid => {
                round.proposal_state = ProposalState::Validating;
                out.push(Output::Validate(p));
            }
            ParentStatus::Pending => round.proposal_state = ProposalState::Pending,
            ParentStatus::Invalid => {
                // R3: rejected for good; give up on the view at once (R7).
                round.proposal_state = ProposalState::Invalid;
                self.nullify_current(now, out);
                if self.view != v {
                    self.progress(now, out); // the nullification completed
                }
            }
        }
    }
}
