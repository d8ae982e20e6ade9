//! Error types.

use thiserror::Error;

use crate::types::{ValidatorIndex, View};

/// Why a [`crate::ValidatorSet`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ValidatorSetError {
    /// No validators given.
    #[error("validator set is empty")]
    Empty,
    /// A validator has zero voting power.
    #[error("validator {index} has zero voting power")]
    ZeroPower {
        /// Offending index.
        index: ValidatorIndex,
    },
    /// A public key appears twice (index of the second occurrence).
    #[error("validator {index} duplicates an earlier public key")]
    DuplicateKey {
        /// Offending index.
        index: ValidatorIndex,
    },
    /// The total voting power exceeds `u64::MAX`.
    #[error("total voting power overflows u64")]
    PowerOverflow,
    /// More validators than [`crate::MAX_VALIDATORS`].
    #[error("{count} validators exceed the maximum of {max}")]
    TooMany {
        /// Number given.
        count: usize,
        /// Maximum allowed (`u16::MAX`).
        max: usize,
    },
}

/// Why a [`crate::Config`], anchor or WAL was rejected by
/// [`crate::Config::validate`] / [`crate::Consensus::new`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// `signer` is `Some` but its public key is not in the validator set.
    #[error("signing key is not in the validator set")]
    SignerNotInSet,
    /// A timeout / retry interval is zero.
    #[error("{field} must be > 0")]
    ZeroDuration {
        /// Name of the config field.
        field: &'static str,
    },
    /// `leader_timeout_ms > notarization_timeout_ms`.
    #[error("leader_timeout_ms ({leader}) exceeds notarization_timeout_ms ({notarization})")]
    LeaderTimeoutTooLong {
        /// `leader_timeout_ms`.
        leader: u64,
        /// `notarization_timeout_ms`.
        notarization: u64,
    },
    /// `views_ahead_max` is 0 or above [`crate::VIEWS_AHEAD_LIMIT`].
    #[error("views_ahead_max {value} is outside 1..={max}")]
    ViewsAheadOutOfRange {
        /// Configured value.
        value: u64,
        /// Largest accepted value.
        max: u64,
    },
    /// The anchor view is `u64::MAX` (no next view exists).
    #[error("anchor view {view} is too large")]
    AnchorViewTooLarge {
        /// The anchor view.
        view: View,
    },
    /// A WAL vote was not signed by this node's validator index (or the node
    /// is an observer).
    #[error("WAL entry for view {view} was signed by {signer}, not by this node")]
    WalForeignSigner {
        /// View of the entry.
        view: View,
        /// Signer recorded in the entry.
        signer: ValidatorIndex,
    },
    /// The WAL records two conflicting votes for one view (corruption): two
    /// different Notarize / Finalize, or Finalize together with Nullify.
    #[error("WAL holds conflicting votes for view {view}")]
    WalConflict {
        /// View of the conflict.
        view: View,
    },
    /// A WAL vote is structurally malformed.
    #[error("WAL entry for view {view} is malformed")]
    WalMalformed {
        /// View of the entry.
        view: View,
    },
}

/// Why a message or input was rejected by [`crate::Consensus::handle`] (or
/// by decoding / verification). Returning an error never changes state.
///
/// [`MessageError::is_peer_fault`] separates provable peer misbehaviour from
/// harmless, state-dependent rejections and host misuse.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MessageError {
    /// Peer fault: a signature does not verify (ed25519 `verify_strict`).
    #[error("bad signature from validator {signer}")]
    BadSignature {
        /// Claimed signer.
        signer: ValidatorIndex,
    },
    /// Peer fault: the signer index is not in the validator set.
    #[error("unknown signer {signer}")]
    UnknownSigner {
        /// Claimed signer.
        signer: ValidatorIndex,
    },
    /// Peer fault: undecodable or structurally invalid message.
    #[error("malformed message: {reason}")]
    Malformed {
        /// Human-readable cause.
        reason: String,
    },
    /// Peer fault: encoded message longer than [`crate::Message::BYTES_MAX`].
    #[error("message of {len} bytes exceeds {max}")]
    Oversize {
        /// Received length in bytes.
        len: usize,
        /// Limit in bytes.
        max: usize,
    },
    /// Peer fault: a certificate's signers hold less than the quorum power.
    #[error("certificate power {power} below quorum {needed}")]
    InsufficientQuorum {
        /// Power of the listed signers.
        power: u64,
        /// Quorum power required.
        needed: u64,
    },
    /// Peer fault: a certificate lists a signer twice.
    #[error("duplicate signer {signer} in certificate")]
    DuplicateSigner {
        /// Repeated signer.
        signer: ValidatorIndex,
    },
    /// Harmless: the message is for a view whose state was already pruned
    /// (finalized, or more than [`crate::VIEWS_KEPT`] views behind).
    #[error("message for view {view} is stale (current view {current})")]
    Stale {
        /// View of the message.
        view: View,
        /// Current view of the machine.
        current: View,
    },
    /// Harmless: a vote for a view more than `views_ahead_max` ahead.
    #[error("vote for view {view} is too far ahead (current view {current})")]
    TooFarAhead {
        /// View of the message.
        view: View,
        /// Current view of the machine.
        current: View,
    },
    /// Host misuse (not a peer fault): an `Input::Proposed` / `Input::Validated`
    /// that the machine never asked for (wrong leader, future view, unknown
    /// proposal, or the node is an observer). Late answers for views already
    /// left are *not* errors; they are ignored.
    #[error("invalid host input: {reason}")]
    InvalidInput {
        /// Human-readable cause.
        reason: &'static str,
    },
}

impl MessageError {
    /// `true` when the error proves the sending peer misbehaved (bad or
    /// malformed data); `false` for stale / far-ahead messages and host misuse.
    pub fn is_peer_fault(&self) -> bool {
        match self {
            MessageError::BadSignature { .. }
            | MessageError::UnknownSigner { .. }
            | MessageError::Malformed { .. }
            | MessageError::Oversize { .. }
            | MessageError::InsufficientQuorum { .. }
            | MessageError::DuplicateSigner { .. } => true,
            MessageError::Stale { .. }
            | MessageError::TooFarAhead { .. }
            | MessageError::InvalidInput { .. } => false,
        }
    }
}

/// Why an [`crate::Evidence`] record was rejected by [`crate::Evidence::new`],
/// [`crate::Evidence::verify`] or [`crate::Evidence::decode`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EvidenceError {
    /// The two votes name different signers.
    #[error("votes are signed by different validators ({first} and {second})")]
    DifferentSigners {
        /// Signer of the first vote.
        first: ValidatorIndex,
        /// Signer of the second vote.
        second: ValidatorIndex,
    },
    /// The votes are in different views, or are not a conflicting pair.
    #[error("votes do not conflict")]
    NotConflicting,
    /// The votes are not in canonical order (`first`'s kind must sort first).
    #[error("evidence votes are not in canonical order")]
    NotCanonical,
    /// A vote is malformed, names an unknown signer or carries a bad
    /// signature (or the record's bytes are oversize / undecodable).
    #[error("invalid evidence: {0}")]
    Vote(#[from] MessageError),
}
