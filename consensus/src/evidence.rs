//! Equivocation evidence (R15): two conflicting votes signed by one
//! validator, packaged so that anyone holding the chain namespace and the
//! validator set can check them.

use borsh::{BorshDeserialize, BorshSerialize};

use crate::error::{EvidenceError, MessageError};
use crate::types::{ValidatorIndex, View, Vote, VoteKind};
use crate::validators::ValidatorSet;

/// Which pair of votes an honest validator never signs in one view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Equivocation {
    /// Two Notarize votes for different proposals (for the view's leader:
    /// two different proposals — its Notarize vote *is* its proposal).
    Notarize,
    /// Two Finalize votes for different proposals.
    Finalize,
    /// A Nullify and a Finalize vote (invariant I3).
    NullifyFinalize,
}

impl Equivocation {
    /// Classifies two vote kinds: `Some` iff one validator signing both in
    /// one view is an equivocation. Symmetric.
    pub fn of(a: &VoteKind, b: &VoteKind) -> Option<Equivocation> {
        if a.view() != b.view() {
            return None;
        }
        match (a, b) {
            (VoteKind::Notarize(p), VoteKind::Notarize(q)) if p != q => {
                Some(Equivocation::Notarize)
            }
            (VoteKind::Finalize(p), VoteKind::Finalize(q)) if p != q => {
                Some(Equivocation::Finalize)
            }
            (VoteKind::Nullify(_), VoteKind::Finalize(_))
            | (VoteKind::Finalize(_), VoteKind::Nullify(_)) => Some(Equivocation::NullifyFinalize),
            _ => None,
        }
    }
}

/// Proof that validator [`Evidence::signer`] equivocated in
/// [`Evidence::view`]: two votes it signed that conflict (see
/// [`Equivocation`]).
///
/// Canonical form: `first` and `second` have the same signer and view, and
/// `borsh(first.kind) < borsh(second.kind)` (so a given pair of votes has
/// exactly one encoding, whatever order they were seen in — hosts can
/// deduplicate by bytes). Built with [`Evidence::new`], checked with
/// [`Evidence::verify`], carried as borsh ([`Evidence::encode`] /
/// [`Evidence::decode`]).
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct Evidence {
    /// The vote whose kind sorts first.
    pub first: Vote,
    /// The conflicting vote.
    pub second: Vote,
}

/// Largest borsh encoding of a [`Vote`]: kind tag + proposal (80) + signer
/// (2) + signature (64).
const VOTE_BYTES_MAX: usize = 1 + 80 + 2 + 64;

impl Evidence {
    /// Largest encoding of an [`Evidence`] record, in bytes (two votes).
    pub const BYTES_MAX: usize = 2 * VOTE_BYTES_MAX;

    /// Packages two conflicting votes (in either order) in canonical form.
    /// Checks structure only — signatures are checked by [`Evidence::verify`].
    ///
    /// # Errors
    /// [`EvidenceError::DifferentSigners`], [`EvidenceError::NotConflicting`]
    /// (including different views), or [`EvidenceError::Vote`] for a
    /// malformed vote kind.
    pub fn new(a: Vote, b: Vote) -> Result<Evidence, EvidenceError> {
        a.kind.check()?;
        b.kind.check()?;
        if a.signer != b.signer {
            return Err(EvidenceError::DifferentSigners {
                first: a.signer,
                second: b.signer,
            });
        }
        if Equivocation::of(&a.kind, &b.kind).is_none() {
            return Err(EvidenceError::NotConflicting);
        }
        Ok(if kind_bytes(&a.kind) < kind_bytes(&b.kind) {
            Evidence {
                first: a,
                second: b,
            }
        } else {
            Evidence {
                first: b,
                second: a,
            }
        })
    }

    /// The accused validator.
    pub fn signer(&self) -> ValidatorIndex {
        self.first.signer
    }

    /// The view both votes belong to.
    pub fn view(&self) -> View {
        self.first.kind.view()
    }

    /// What kind of equivocation this is (`None` only for a record that
    /// [`Evidence::verify`] would reject as not conflicting).
    pub fn equivocation(&self) -> Option<Equivocation> {
        Equivocation::of(&self.first.kind, &self.second.kind)
    }

    /// Full check against the chain's `namespace` and validator `set`: same
    /// signer, conflicting kinds in one view, canonical order, and both
    /// signatures valid (ed25519 `verify_strict` over [`crate::signing_digest`]).
    ///
    /// # Errors
    /// [`EvidenceError::DifferentSigners`], [`EvidenceError::NotConflicting`],
    /// [`EvidenceError::NotCanonical`], or [`EvidenceError::Vote`] wrapping
    /// the vote's [`MessageError`] (malformed, unknown signer, bad signature).
    pub fn verify(
        &self,
        namespace: &[u8; 32],
        set: &ValidatorSet,
    ) -> Result<Equivocation, EvidenceError> {
        if self.first.signer != self.second.signer {
            return Err(EvidenceError::DifferentSigners {
                first: self.first.signer,
                second: self.second.signer,
            });
        }
        self.first.kind.check()?;
        self.second.kind.check()?;
        let kind = self.equivocation().ok_or(EvidenceError::NotConflicting)?;
        if kind_bytes(&self.first.kind) >= kind_bytes(&self.second.kind) {
            return Err(EvidenceError::NotCanonical);
        }
        self.first.verify(namespace, set)?;
        self.second.verify(namespace, set)?;
        Ok(kind)
    }

    /// Borsh encoding (inverse of [`Evidence::decode`]).
    pub fn encode(&self) -> Vec<u8> {
        borsh::to_vec(self).expect("serializing into a Vec cannot fail")
    }

    /// Decodes a borsh-encoded record; the length is checked first and
    /// trailing bytes are rejected. Does not verify (see [`Evidence::verify`]).
    ///
    /// # Errors
    /// [`EvidenceError::Vote`] wrapping [`MessageError::Oversize`] or
    /// [`MessageError::Malformed`].
    pub fn decode(bytes: &[u8]) -> Result<Evidence, EvidenceError> {
        if bytes.len() > Self::BYTES_MAX {
            return Err(MessageError::Oversize {
                len: bytes.len(),
                max: Self::BYTES_MAX,
            }
            .into());
        }
        borsh::from_slice(bytes).map_err(|e| {
            MessageError::Malformed {
                reason: format!("decode evidence: {e}"),
            }
            .into()
        })
    }
}

fn kind_bytes(kind: &VoteKind) -> Vec<u8> {
    borsh::to_vec(kind).expect("serializing into a Vec cannot fail")
}
