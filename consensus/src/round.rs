//! Per-view vote state.

use std::collections::{BTreeMap, BTreeSet};

use crate::evidence::Equivocation;
use crate::types::{Certificate, CertificateKind, Proposal, ValidatorIndex, Vote, VoteKind};

/// Where the (replica's view of the) leader's proposal stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ProposalState {
    /// No proposal, or not yet looked at.
    Unchecked,
    /// Parent rule not yet satisfiable: waiting for certificates.
    Pending,
    /// `Output::Validate` emitted, waiting for `Input::Validated`.
    Validating,
    /// Valid (validated by the app, or our own proposal).
    Valid,
    /// Parent rule violated or the app rejected it; never vote for it.
    Invalid,
}

/// Vote state of one view. Holds at most one vote per validator per kind
/// (the first one received), hence at most `3 * n` votes.
#[derive(Clone, Debug)]
pub(crate) struct Round {
    pub(crate) leader: ValidatorIndex,
    /// The leader's first Notarize vote (its proposal).
    pub(crate) proposal: Option<Proposal>,
    pub(crate) proposal_state: ProposalState,
    /// As leader: the parent passed in `BuildProposal`.
    pub(crate) build_parent: Option<(u64, crate::types::Digest)>,
    notarizes: BTreeMap<ValidatorIndex, (Proposal, [u8; 64])>,
    /// Power per distinct proposal (at most n entries; usually one).
    notarize_power: Vec<(Proposal, u64)>,
    nullifies: BTreeMap<ValidatorIndex, [u8; 64]>,
    nullify_power: u64,
    finalizes: BTreeMap<ValidatorIndex, (Proposal, [u8; 64])>,
    finalize_power: Vec<(Proposal, u64)>,
    /// Notarized proposal, once a notarization (or finalization) is known.
    pub(crate) notarized: Option<Proposal>,
    /// A nullification is known.
    pub(crate) nullified: bool,
    /// My own signed votes in this view.
    pub(crate) my_notarize: Option<Vote>,
    pub(crate) my_nullify: Option<Vote>,
    pub(crate) my_finalize: Option<Vote>,
    /// Equivocations already reported as evidence (at most 3 per validator).
    evidence_reported: BTreeSet<(ValidatorIndex, Equivocation)>,
}

impl Round {
    pub(crate) fn new(leader: ValidatorIndex) -> Round {
        Round {
            leader,
            proposal: None,
            proposal_state: ProposalState::Unchecked,
            build_parent: None,
            notarizes: BTreeMap::new(),
            notarize_power: Vec::new(),
            nullifies: BTreeMap::new(),
            nullify_power: 0,
            finalizes: BTreeMap::new(),
            finalize_power: Vec::new(),
            notarized: None,
            nullified: false,
            my_notarize: None,
            my_nullify: None,
            my_finalize: None,
            evidence_reported: BTreeSet::new(),
        }
    }

    /// A vote by `vote.signer` held here that conflicts with `vote` and was
    /// not reported yet (R15), with the kind of equivocation.
    pub(crate) fn conflict_with(&self, vote: &Vote) -> Option<(Equivocation, Vote)> {
        let s = vote.signer;
        let held = |kind: VoteKind, signature: [u8; 64]| Vote {
            kind,
            signer: s,
            signature,
        };
        let candidates = [
            self.notarizes
                .get(&s)
                .map(|(p, sig)| held(VoteKind::Notarize(*p), *sig)),
            self.nullifies
                .get(&s)
                .map(|sig| held(VoteKind::Nullify(vote.kind.view()), *sig)),
            self.finalizes
                .get(&s)
                .map(|(p, sig)| held(VoteKind::Finalize(*p), *sig)),
        ];
        candidates.into_iter().flatten().find_map(|prior| {
            let kind = Equivocation::of(&prior.kind, &vote.kind)?;
            (!self.evidence_reported.contains(&(s, kind))).then_some((kind, prior))
        })
    }

    /// Remembers that this equivocation was reported.
    pub(crate) fn mark_reported(&mut self, signer: ValidatorIndex, kind: Equivocation) {
        self.evidence_reported.insert((signer, kind));
    }

    /// Whether `signer` already has a vote of this kind's type here.
    pub(crate) fn has_vote(&self, kind: &VoteKind, signer: ValidatorIndex) -> bool {
        match kind {
            VoteKind::Notarize(_) => self.notarizes.contains_key(&signer),
            VoteKind::Nullify(_) => self.nullifies.contains_key(&signer),
            VoteKind::Finalize(_) => self.finalizes.contains_key(&signer),
        }
    }

    /// Adds a verified vote (caller checked `!has_vote`) with the signer's power.
    pub(crate) fn add_vote(&mut self, vote: &Vote, power: u64) {
        match &vote.kind {
            VoteKind::Notarize(p) => {
                if self
                    .notarizes
                    .insert(vote.signer, (*p, vote.signature))
                    .is_none()
                {
                    add_power(&mut self.notarize_power, p, power);
                }
            }
            VoteKind::Nullify(_) => {
                if self.nullifies.insert(vote.signer, vote.signature).is_none() {
                    self.nullify_power = self.nullify_power.saturating_add(power);
                }
            }
            VoteKind::Finalize(p) => {
                if self
                    .finalizes
                    .insert(vote.signer, (*p, vote.signature))
                    .is_none()
                {
                    add_power(&mut self.finalize_power, p, power);
                }
            }
        }
    }

    pub(crate) fn record_mine(&mut self, vote: &Vote) {
        let slot = match vote.kind {
            VoteKind::Notarize(_) => &mut self.my_notarize,
            VoteKind::Nullify(_) => &mut self.my_nullify,
            VoteKind::Finalize(_) => &mut self.my_finalize,
        };
        if slot.is_none() {
            *slot = Some(vote.clone());
        }
    }

    /// A `Notarization` certificate for `p` if its Notarize votes reached `quorum`.
    pub(crate) fn notarization(&self, p: &Proposal, quorum: u64) -> Option<Certificate> {
        if power_of(&self.notarize_power, p) < quorum {
            return None;
        }
        Some(Certificate {
            kind: CertificateKind::Notarization(*p),
            signatures: signatures_for(&self.notarizes, p),
        })
    }

    /// A `Nullification` certificate for `view` if nullify votes reached `quorum`.
    pub(crate) fn nullification(&self, view: u64, quorum: u64) -> Option<Certificate> {
        if self.nullify_power < quorum {
            return None;
        }
        Some(Certificate {
            kind: CertificateKind::Nullification(view),
            signatures: self.nullifies.iter().map(|(s, sig)| (*s, *sig)).collect(),
        })
    }

    /// A `Finalization` certificate for `p` if its Finalize votes reached `quorum`.
    pub(crate) fn finalization(&self, p: &Proposal, quorum: u64) -> Option<Certificate> {
        if power_of(&self.finalize_power, p) < quorum {
            return None;
        }
        Some(Certificate {
            kind: CertificateKind::Finalization(*p),
            signatures: signatures_for(&self.finalizes, p),
        })
    }

    /// My votes in this view, in Notarize, Nullify, Finalize order.
    pub(crate) fn my_votes(&self) -> impl Iterator<Item = &Vote> {
        self.my_notarize
            .iter()
            .chain(self.my_nullify.iter())
            .chain(self.my_finalize.iter())
    }
}

fn add_power(tally: &mut Vec<(Proposal, u64)>, p: &Proposal, power: u64) {
    match tally.iter_mut().find(|(q, _)| q == p) {
        // Distinct signers: bounded by the set's total power, which fits u64.
        Some((_, w)) => *w = w.saturating_add(power),
        None => tally.push((*p, power)),
    }
}

fn power_of(tally: &[(Proposal, u64)], p: &Proposal) -> u64 {
    tally.iter().find(|(q, _)| q == p).map_or(0, |(_, w)| *w)
}

/// Signatures of the votes for `p`, ascending by signer.
fn signatures_for(
    votes: &BTreeMap<ValidatorIndex, (Proposal, [u8; 64])>,
    p: &Proposal,
) -> Vec<(ValidatorIndex, [u8; 64])> {
    votes
        .iter()
        .filter(|(_, (q, _))| q == p)
        .map(|(s, (_, sig))| (*s, *sig))
        .collect()
}
