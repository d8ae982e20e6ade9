//! Fuzzing entry points for the consensus wire types a peer can send: [`Message`] (consensus
//! topic), [`Certificate`] (borsh, as stored with synced blocks and checked by the node) and
//! [`Evidence`] (evidence topic).
//!
//! Not part of the API: called by the cargo-fuzz targets in `fuzz/` (one target per
//! function, same name) and by `tests/fuzz_corpus.rs`, which replays the committed corpus
//! `fuzz/corpus/<target>/` on stable. Each function takes arbitrary bytes, never panics on
//! any input, and `assert!`s the properties in its docs. Signatures are checked against a
//! fixed set of four validators ([`validator_keys`], power 1 each, quorum 3) under
//! [`NAMESPACE`]; the seeds ([`seeds`]) are signed by those keys, so mutations start from
//! messages that verify. See `docs/fuzzing.md`.

use std::sync::OnceLock;

use borsh::BorshDeserialize;
use ed25519_dalek::SigningKey;

use crate::{
    Certificate, CertificateKind, Digest, Equivocation, Evidence, EvidenceError, Message,
    MessageError, Proposal, Validator, ValidatorSet, Vote, VoteKind,
};

/// Chain namespace the fuzzing validator set signs under.
pub const NAMESPACE: [u8; 32] = [7; 32];

/// The four fixed signing keys (seeds `[1; 32]` … `[4; 32]`).
pub fn validator_keys() -> &'static [SigningKey] {
    static KEYS: OnceLock<Vec<SigningKey>> = OnceLock::new();
    KEYS.get_or_init(|| {
        (1u8..=4)
            .map(|i| SigningKey::from_bytes(&[i; 32]))
            .collect()
    })
}

/// The validator set of [`validator_keys`], power 1 each.
pub fn validator_set() -> &'static ValidatorSet {
    static SET: OnceLock<ValidatorSet> = OnceLock::new();
    SET.get_or_init(|| {
        ValidatorSet::new(
            validator_keys()
                .iter()
                .map(|k| Validator {
                    public_key: k.verifying_key(),
                    voting_power: 1,
                })
                .collect(),
        )
        .expect("four distinct keys form a set")
    })
}

/// Asserts what a certificate that passed [`Certificate::verify`] must satisfy.
fn check_verified_certificate(cert: &Certificate) {
    let set = validator_set();
    assert!(
        cert.kind.vote_kind().check().is_ok(),
        "verified a malformed kind"
    );
    assert!(cert.signatures.len() <= set.len());
    assert!(
        cert.signatures.windows(2).all(|w| w[0].0 < w[1].0),
        "verified certificate signers not strictly ascending"
    );
    let power: u64 = cert.signatures.iter().map(|(s, _)| set.power_of(*s)).sum();
    assert!(
        power >= set.quorum_power(),
        "verified certificate below quorum"
    );
}

/// `Message::decode` (the consensus topic): refuses input over [`Message::BYTES_MAX`] as
/// `Oversize` (checked once per process with a `BYTES_MAX + 1`-byte input); a decoded
/// message re-encodes to exactly the input (borsh is canonical here) and decodes again to
/// the same value; a byte appended is refused; `view()` never panics; verifying a vote or
/// certificate against the fixed set never panics, and one that verifies is well-formed
/// (view below `u64::MAX`, `parent_view < view`, signer known; certificate signers
/// strictly ascending with quorum power).
pub fn consensus_message(data: &[u8]) {
    static OVERSIZE: std::sync::Once = std::sync::Once::new();
    OVERSIZE.call_once(|| {
        assert!(matches!(
            Message::decode(&vec![0u8; Message::BYTES_MAX + 1]),
            Err(MessageError::Oversize { .. })
        ));
    });
    let decoded = Message::decode(data);
    if data.len() > Message::BYTES_MAX {
        assert!(matches!(decoded, Err(MessageError::Oversize { .. })));
        return;
    }
    let Ok(message) = decoded else { return };
    let bytes = message.encode();
    assert_eq!(bytes, data, "decode→encode is not the identity");
    assert_eq!(Message::decode(&bytes).as_ref(), Ok(&message));
    let mut longer = data.to_vec();
    longer.push(0);
    assert!(Message::decode(&longer).is_err(), "trailing byte accepted");
    let view = message.view();
    match &message {
        Message::Vote(vote) => {
            if vote.verify(&NAMESPACE, validator_set()).is_ok() {
                assert!(vote.kind.check().is_ok());
                assert!(view < u64::MAX);
                assert!(usize::from(vote.signer) < validator_set().len());
            }
        }
        Message::Certificate(cert) => {
            if cert.verify(&NAMESPACE, validator_set()).is_ok() {
                check_verified_certificate(cert);
            }
        }
    }
}

/// `EpochMessage::decode` (the consensus topic's payload since epochs): refuses input over
/// `EpochMessage::BYTES_MAX` as `Oversize`; a decoded envelope re-encodes to exactly the
/// input, a byte appended is refused, and the inner message passes [`consensus_message`]'s
/// checks; a vote or certificate verifies against the fixed set under its epoch's
/// namespace (`epoch_namespace(NAMESPACE, epoch)`) only if it is well-formed.
pub fn epoch_message(data: &[u8]) {
    use crate::{EpochMessage, epoch_namespace};
    let decoded = EpochMessage::decode(data);
    if data.len() > EpochMessage::BYTES_MAX {
        assert!(matches!(decoded, Err(MessageError::Oversize { .. })));
        return;
    }
    let Ok(envelope) = decoded else { return };
    let bytes = envelope.encode();
    assert_eq!(bytes, data, "decode→encode is not the identity");
    let mut longer = data.to_vec();
    longer.push(0);
    assert!(
        EpochMessage::decode(&longer).is_err(),
        "trailing byte accepted"
    );
    consensus_message(&envelope.message.encode());
    let namespace = epoch_namespace(&NAMESPACE, envelope.epoch);
    match &envelope.message {
        Message::Vote(vote) => {
            if vote.verify(&namespace, validator_set()).is_ok() {
                assert!(vote.kind.check().is_ok());
            }
        }
        Message::Certificate(cert) => {
            if cert.verify(&namespace, validator_set()).is_ok() {
                check_verified_certificate(cert);
            }
        }
    }
}

/// A [`Certificate`] from borsh, as the node decodes one stored with a synced block
/// (`borsh::from_slice`, inside a size-bounded sync response): a decoded certificate
/// re-encodes to exactly the input; `verify` against the fixed set never panics and
/// accepts only well-formed certificates (see [`consensus_message`]); a verified
/// certificate still verifies after a re-encoding round trip.
pub fn certificate(data: &[u8]) {
    let Ok(cert) = borsh::from_slice::<Certificate>(data) else {
        return;
    };
    let bytes = borsh::to_vec(&cert).expect("borsh to Vec never fails");
    assert_eq!(bytes, data, "decode→encode is not the identity");
    let again = Certificate::try_from_slice(&bytes).expect("re-decodes");
    assert_eq!(again, cert);
    let _ = cert.view();
    if cert.verify(&NAMESPACE, validator_set()).is_ok() {
        check_verified_certificate(&cert);
        assert!(again.verify(&NAMESPACE, validator_set()).is_ok());
    }
}

/// `Evidence::decode` (the evidence topic): refuses input over [`Evidence::BYTES_MAX`]; a
/// decoded record re-encodes to exactly the input and decodes again to the same value; a
/// byte appended is refused; `verify` against the fixed set never panics, and a record that
/// verifies has one signer, a conflicting pair of kinds in one view (its
/// [`Evidence::equivocation`]), is in canonical order, and is what [`Evidence::new`] builds
/// from its two votes in either order.
pub fn evidence(data: &[u8]) {
    let decoded = Evidence::decode(data);
    if data.len() > Evidence::BYTES_MAX {
        assert!(matches!(
            decoded,
            Err(EvidenceError::Vote(MessageError::Oversize { .. }))
        ));
        return;
    }
    let Ok(record) = decoded else { return };
    let bytes = record.encode();
    assert_eq!(bytes, data, "decode→encode is not the identity");
    assert_eq!(Evidence::decode(&bytes).as_ref(), Ok(&record));
    let mut longer = data.to_vec();
    longer.push(0);
    assert!(Evidence::decode(&longer).is_err(), "trailing byte accepted");
    let _ = (record.signer(), record.view(), record.equivocation());
    if let Ok(kind) = record.verify(&NAMESPACE, validator_set()) {
        assert_eq!(record.first.signer, record.second.signer);
        assert_eq!(record.first.kind.view(), record.second.kind.view());
        assert_eq!(record.equivocation(), Some(kind));
        assert_eq!(
            Equivocation::of(&record.second.kind, &record.first.kind),
            Some(kind),
            "equivocation is symmetric"
        );
        let built = Evidence::new(record.second.clone(), record.first.clone())
            .expect("a verified record's votes package");
        assert_eq!(built, record, "verified record is not canonical");
    }
}

fn proposal(view: u64, tag: u8) -> Proposal {
    Proposal {
        view,
        parent_view: view - 1,
        parent: Digest([tag; 32]),
        payload: Digest([tag.wrapping_add(1); 32]),
    }
}

fn vote(signer: u16, kind: VoteKind) -> Vote {
    Vote::sign(
        &NAMESPACE,
        kind,
        signer,
        &validator_keys()[usize::from(signer)],
    )
}

fn cert(kind: CertificateKind, signers: &[u16]) -> Certificate {
    let vote_kind = kind.vote_kind();
    Certificate {
        kind,
        signatures: signers
            .iter()
            .map(|&s| (s, vote(s, vote_kind.clone()).signature))
            .collect(),
    }
}

/// Valid encodings, signed by [`validator_keys`], to seed the corpus of `target` (a function
/// of this module): votes of each kind, certificates of each kind with 3 and 4 signers,
/// evidence of each equivocation. `tests/fuzz_corpus.rs` writes them to
/// `fuzz/corpus/<target>/seed-*` when run with `CAIRN_FUZZ_WRITE_SEEDS=1`.
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    let votes = || {
        vec![
            vote(0, VoteKind::Notarize(proposal(5, 1))),
            vote(1, VoteKind::Nullify(5)),
            vote(3, VoteKind::Finalize(proposal(6, 2))),
        ]
    };
    let certs = || {
        vec![
            cert(CertificateKind::Notarization(proposal(5, 1)), &[0, 1, 2]),
            cert(CertificateKind::Nullification(8), &[1, 2, 3]),
            cert(CertificateKind::Finalization(proposal(6, 2)), &[0, 1, 2, 3]),
        ]
    };
    match target {
        "consensus_message" => votes()
            .into_iter()
            .map(Message::Vote)
            .chain(certs().into_iter().map(Message::Certificate))
            .map(|m| m.encode())
            .collect(),
        "epoch_message" => votes()
            .into_iter()
            .map(Message::Vote)
            .chain(certs().into_iter().map(Message::Certificate))
            .map(|m| {
                crate::EpochMessage {
                    epoch: 0,
                    message: m,
                }
                .encode()
            })
            .collect(),
        "certificate" => certs()
            .iter()
            .map(|c| borsh::to_vec(c).expect("borsh to Vec never fails"))
            .collect(),
        "evidence" => [
            (
                VoteKind::Notarize(proposal(5, 1)),
                VoteKind::Notarize(proposal(5, 9)),
            ),
            (
                VoteKind::Finalize(proposal(5, 1)),
                VoteKind::Finalize(proposal(5, 9)),
            ),
            (VoteKind::Nullify(5), VoteKind::Finalize(proposal(5, 1))),
        ]
        .into_iter()
        .map(|(a, b)| {
            Evidence::new(vote(2, a), vote(2, b))
                .expect("conflicting votes")
                .encode()
        })
        .collect(),
        _ => Vec::new(),
    }
}
