//! Wire and persistence types: digests, proposals, votes, certificates,
//! messages and WAL entries, plus signing and verification.

use std::fmt;

use borsh::{BorshDeserialize, BorshSerialize};
use ed25519_dalek::{Signature, Signer, SigningKey};

use crate::error::MessageError;
use crate::validators::{MAX_VALIDATORS, ValidatorSet};

/// A consensus view (round) number. Genesis / the anchor of a fresh chain is
/// view 0; the first view in which a block is proposed is view 1.
///
/// The value `u64::MAX` is never a valid view of a vote or certificate
/// (entering the next view would overflow); messages carrying it are
/// rejected as [`MessageError::Malformed`].
pub type View = u64;

/// Position of a validator in the [`ValidatorSet`] (0-based, `< set.len()`).
pub type ValidatorIndex = u16;

/// Domain-separation context for vote signatures (blake3 `derive_key`).
pub const VOTE_CONTEXT: &str = "cairn consensus vote v1";

/// A 32-byte digest (a block / payload hash, or the chain namespace).
///
/// `Display` renders 64 lowercase hex characters.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, BorshSerialize, BorshDeserialize,
)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// The all-zero digest.
    pub const ZERO: Digest = Digest([0u8; 32]);

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl From<[u8; 32]> for Digest {
    fn from(bytes: [u8; 32]) -> Self {
        Digest(bytes)
    }
}

/// A leader's proposal for `view`: a block whose content hash is `payload`,
/// extending the block `parent` proposed (and notarized) in `parent_view`.
///
/// Well-formed iff `parent_view < view < u64::MAX`. The genesis anchor is
/// referenced as `parent_view = 0, parent = <genesis payload>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, BorshSerialize, BorshDeserialize)]
pub struct Proposal {
    /// View in which the block is proposed.
    pub view: View,
    /// View of the parent block (strictly smaller than `view`).
    pub parent_view: View,
    /// Payload digest of the parent block.
    pub parent: Digest,
    /// Payload digest of this block (opaque to consensus; chosen by the application).
    pub payload: Digest,
}

impl Proposal {
    fn check(&self) -> Result<(), MessageError> {
        if self.view == View::MAX {
            return Err(MessageError::Malformed {
                reason: "view u64::MAX is reserved".into(),
            });
        }
        if self.parent_view >= self.view {
            return Err(MessageError::Malformed {
                reason: format!(
                    "proposal parent_view {} is not below view {}",
                    self.parent_view, self.view
                ),
            });
        }
        Ok(())
    }
}

fn check_view(view: View) -> Result<(), MessageError> {
    if view == View::MAX {
        return Err(MessageError::Malformed {
            reason: "view u64::MAX is reserved".into(),
        });
    }
    Ok(())
}

/// What a vote attests to. The signature covers exactly
/// [`signing_digest`]`(namespace, kind)`.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub enum VoteKind {
    /// "This proposal is valid and extends a notarized chain." The leader's own
    /// Notarize vote for its view *is* the proposal message.
    Notarize(Proposal),
    /// "I gave up on this view" (timeout).
    Nullify(View),
    /// "I saw this proposal notarized and never nullified its view."
    Finalize(Proposal),
}

impl VoteKind {
    /// The view the vote belongs to.
    pub fn view(&self) -> View {
        match self {
            VoteKind::Notarize(p) | VoteKind::Finalize(p) => p.view,
            VoteKind::Nullify(v) => *v,
        }
    }

    /// Structural validity (no signature or membership checks).
    ///
    /// # Errors
    /// [`MessageError::Malformed`] if the view is `u64::MAX` or a proposal has
    /// `parent_view >= view`.
    pub fn check(&self) -> Result<(), MessageError> {
        match self {
            VoteKind::Notarize(p) | VoteKind::Finalize(p) => p.check(),
            VoteKind::Nullify(v) => check_view(*v),
        }
    }
}

/// The 32-byte message actually signed for a vote:
/// `blake3::derive_key("cairn consensus vote v1", namespace ‖ borsh(kind))`.
///
/// `namespace` is the chain's 32-byte namespace (its genesis hash), so votes
/// cannot be replayed across chains.
pub fn signing_digest(namespace: &[u8; 32], kind: &VoteKind) -> [u8; 32] {
    let mut material = Vec::with_capacity(32 + 90);
    material.extend_from_slice(namespace);
    kind.serialize(&mut material)
        .expect("serializing into a Vec cannot fail");
    blake3::derive_key(VOTE_CONTEXT, &material)
}

fn verify_signature(
    namespace: &[u8; 32],
    kind: &VoteKind,
    signer: ValidatorIndex,
    signature: &[u8; 64],
    set: &ValidatorSet,
) -> Result<(), MessageError> {
    let validator = set
        .get(signer)
        .ok_or(MessageError::UnknownSigner { signer })?;
    let msg = signing_digest(namespace, kind);
    validator
        .public_key
        .verify_strict(&msg, &Signature::from_bytes(signature))
        .map_err(|_| MessageError::BadSignature { signer })
}

/// A signed vote by validator `signer` (an index into the [`ValidatorSet`]).
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct Vote {
    /// What is voted for.
    pub kind: VoteKind,
    /// Index of the signing validator.
    pub signer: ValidatorIndex,
    /// Ed25519 signature over [`signing_digest`]`(namespace, &kind)`.
    pub signature: [u8; 64],
}

impl Vote {
    /// Signs `kind` as validator `signer` with `key`. Does not check that
    /// `key` belongs to `signer` (the state machine guarantees it).
    pub fn sign(
        namespace: &[u8; 32],
        kind: VoteKind,
        signer: ValidatorIndex,
        key: &SigningKey,
    ) -> Vote {
        let signature = key.sign(&signing_digest(namespace, &kind)).to_bytes();
        Vote {
            kind,
            signer,
            signature,
        }
    }

    /// Full validity check: structure, membership of `signer` in `set`, and
    /// the signature (ed25519 `verify_strict`).
    ///
    /// # Errors
    /// [`MessageError::Malformed`], [`MessageError::UnknownSigner`] or
    /// [`MessageError::BadSignature`] (all peer faults).
    pub fn verify(&self, namespace: &[u8; 32], set: &ValidatorSet) -> Result<(), MessageError> {
        self.kind.check()?;
        verify_signature(namespace, &self.kind, self.signer, &self.signature, set)
    }
}

/// What a certificate proves: 2f+1 voting power signed the matching
/// [`VoteKind`] (Notarization ↔ Notarize, Nullification ↔ Nullify,
/// Finalization ↔ Finalize).
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub enum CertificateKind {
    /// The proposal is notarized.
    Notarization(Proposal),
    /// The view is nullified (skipped).
    Nullification(View),
    /// The proposal (and, implicitly, all its ancestors) is final.
    Finalization(Proposal),
}

impl CertificateKind {
    /// The view the certificate belongs to.
    pub fn view(&self) -> View {
        self.vote_kind().view()
    }

    /// The vote kind each signature in the certificate signs.
    pub fn vote_kind(&self) -> VoteKind {
        match self {
            CertificateKind::Notarization(p) => VoteKind::Notarize(*p),
            CertificateKind::Nullification(v) => VoteKind::Nullify(*v),
            CertificateKind::Finalization(p) => VoteKind::Finalize(*p),
        }
    }
}

/// A quorum certificate: signatures of distinct validators, sorted by strictly
/// ascending signer index, whose voting power sums to at least
/// [`ValidatorSet::quorum_power`]. At most [`MAX_VALIDATORS`] entries.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct Certificate {
    /// What is certified.
    pub kind: CertificateKind,
    /// `(signer, signature)` pairs, strictly ascending by signer.
    pub signatures: Vec<(ValidatorIndex, [u8; 64])>,
}

impl Certificate {
    /// The view the certificate belongs to.
    pub fn view(&self) -> View {
        self.kind.view()
    }

    /// Checks the certificate against `set`: well-formed kind, no more
    /// signatures than validators, signers known, strictly ascending and
    /// distinct, total power ≥ quorum, and every signature valid. Cheap checks
    /// run before any signature is verified.
    ///
    /// # Errors
    /// All are peer faults: [`MessageError::Malformed`] (bad kind, too many
    /// signatures, unsorted), [`MessageError::UnknownSigner`],
    /// [`MessageError::DuplicateSigner`], [`MessageError::InsufficientQuorum`],
    /// [`MessageError::BadSignature`].
    pub fn verify(&self, namespace: &[u8; 32], set: &ValidatorSet) -> Result<(), MessageError> {
        self.verify_with_quorum(namespace, set, set.quorum_power())
    }

    /// [`Certificate::verify`] with an explicit power threshold (the state
    /// machine passes `quorum_power`, or less for a test-only broken variant).
    pub(crate) fn verify_with_quorum(
        &self,
        namespace: &[u8; 32],
        set: &ValidatorSet,
        needed: u64,
    ) -> Result<(), MessageError> {
        let vote_kind = self.kind.vote_kind();
        vote_kind.check()?;
        if self.signatures.len() > set.len() {
            return Err(MessageError::Malformed {
                reason: format!(
                    "certificate has {} signatures but the set has {} validators",
                    self.signatures.len(),
                    set.len()
                ),
            });
        }
        let mut seen = vec![false; set.len()];
        let mut power: u64 = 0;
        let mut previous: Option<ValidatorIndex> = None;
        for (signer, _) in &self.signatures {
            let validator = set
                .get(*signer)
                .ok_or(MessageError::UnknownSigner { signer: *signer })?;
            if std::mem::replace(&mut seen[*signer as usize], true) {
                return Err(MessageError::DuplicateSigner { signer: *signer });
            }
            if previous.is_some_and(|p| p > *signer) {
                return Err(MessageError::Malformed {
                    reason: "certificate signers are not sorted".into(),
                });
            }
            previous = Some(*signer);
            // Distinct validators: the sum is bounded by total_power, which fits u64.
            power = power.saturating_add(validator.voting_power);
        }
        if power < needed {
            return Err(MessageError::InsufficientQuorum { power, needed });
        }
        for (signer, signature) in &self.signatures {
            verify_signature(namespace, &vote_kind, *signer, signature, set)?;
        }
        Ok(())
    }
}

/// A consensus network message.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub enum Message {
    /// A single signed vote (a leader's Notarize vote is its proposal).
    Vote(Vote),
    /// A quorum certificate.
    Certificate(Certificate),
}

/// Borsh size of a [`Proposal`]: view + parent_view + parent + payload.
const PROPOSAL_BYTES: usize = 8 + 8 + 32 + 32;

impl Message {
    /// Largest encoding of any valid message, in bytes: a certificate over a
    /// proposal carrying [`MAX_VALIDATORS`] `(u16, [u8; 64])` signatures
    /// (1 message tag + 1 kind tag + 80 proposal + 4 length + 66 per entry
    /// ≈ 4.3 MiB). [`Message::decode`] rejects anything longer before decoding.
    /// Hosts with small validator sets may enforce a tighter transport limit.
    pub const BYTES_MAX: usize = 1 + 1 + PROPOSAL_BYTES + 4 + MAX_VALIDATORS * (2 + 64);

    /// Decodes a borsh-encoded message. The length check happens before any
    /// decoding; trailing bytes are rejected. Does not verify signatures (the
    /// state machine does, against its validator set).
    ///
    /// # Errors
    /// [`MessageError::Oversize`] if `bytes.len() > BYTES_MAX`,
    /// [`MessageError::Malformed`] if it is not exactly one valid encoding.
    pub fn decode(bytes: &[u8]) -> Result<Message, MessageError> {
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

    /// Borsh encoding (inverse of [`Message::decode`]).
    pub fn encode(&self) -> Vec<u8> {
        borsh::to_vec(self).expect("serializing into a Vec cannot fail")
    }

    /// The view the message belongs to.
    pub fn view(&self) -> View {
        match self {
            Message::Vote(v) => v.kind.view(),
            Message::Certificate(c) => c.view(),
        }
    }
}

/// The last finalized block the machine starts from (a fresh chain: view 0
/// and the genesis payload). Treated as notarized and finalized.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, BorshSerialize, BorshDeserialize)]
pub struct Anchor {
    /// View in which the block was finalized (0 for genesis).
    pub view: View,
    /// The block's payload digest.
    pub payload: Digest,
}

/// One write-ahead-log record emitted through `Output::Persist`. Replaying all
/// of them into [`crate::Consensus::new`] restores "what I signed".
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum WalEntry {
    /// I signed this vote (it may or may not have been sent).
    Voted(Vote),
}

impl WalEntry {
    /// The view of the recorded vote. A host may discard entries whose view
    /// is `<=` the view of the [`Anchor`] it will pass on restart.
    pub fn view(&self) -> View {
        match self {
            WalEntry::Voted(v) => v.kind.view(),
        }
    }
}
