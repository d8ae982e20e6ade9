//! Static configuration of one consensus instance, and the protocol bounds.

use std::fmt;

use ed25519_dalek::SigningKey;

use crate::error::ConfigError;
use crate::types::ValidatorIndex;
use crate::validators::ValidatorSet;

/// Views of vote state kept *below* the current view: votes and certificates
/// for views `< current - VIEWS_KEPT` (or `<=` the last finalized view) are
/// pruned and later messages for them are rejected as
/// [`crate::MessageError::Stale`]. Lets late Finalize votes still complete a
/// finalization a few views back.
pub const VIEWS_KEPT: u64 = 32;

/// Upper bound accepted for [`Config::views_ahead_max`]; together with
/// [`VIEWS_KEPT`] it bounds the number of per-view vote states held at once
/// (`VIEWS_KEPT + 1 + views_ahead_max`), each holding at most one vote per
/// validator per kind.
pub const VIEWS_AHEAD_LIMIT: u64 = 1_024;

/// At most this many views of certificates are kept to justify the current
/// view's parent (its notarization and the nullifications of the views in
/// between), for re-broadcast to nodes that missed them: at most two
/// certificates per view. A nullification streak longer than this cannot be
/// re-justified by re-broadcasts alone.
pub const JUSTIFICATION_VIEWS_MAX: usize = 1_024;

/// At most this many justification certificates are re-broadcast at once (on
/// a nullify retry, or with a proposal after skipped views); larger sets are
/// sent in rotating batches.
pub const JUSTIFICATION_BATCH_MAX: usize = 16;

/// Suggested [`Config::leader_timeout_ms`].
pub const DEFAULT_LEADER_TIMEOUT_MS: u64 = 1_000;
/// Suggested [`Config::notarization_timeout_ms`].
pub const DEFAULT_NOTARIZATION_TIMEOUT_MS: u64 = 2_000;
/// Suggested [`Config::nullify_retry_ms`].
pub const DEFAULT_NULLIFY_RETRY_MS: u64 = 1_000;
/// Suggested [`Config::views_ahead_max`].
pub const DEFAULT_VIEWS_AHEAD_MAX: u64 = 16;

/// Configuration of one consensus instance. All durations are milliseconds of
/// the host's clock (as passed in `now_ms`).
#[derive(Clone)]
pub struct Config {
    /// Chain namespace (the genesis hash); mixed into every signed vote so
    /// votes cannot be replayed across chains.
    pub namespace: [u8; 32],
    /// The validator set (fixed for the lifetime of the instance).
    pub validators: ValidatorSet,
    /// This node's signing key; `None` runs a non-voting observer. If `Some`,
    /// its public key must be in `validators`.
    pub signer: Option<SigningKey>,
    /// After entering a view, how long to wait for the leader's proposal
    /// before voting Nullify. `> 0` and `<= notarization_timeout_ms`.
    pub leader_timeout_ms: u64,
    /// After entering a view, how long to wait for a notarization before
    /// voting Nullify (applies once a proposal arrived). `> 0`.
    pub notarization_timeout_ms: u64,
    /// After voting Nullify, re-broadcast it (and the highest certificate
    /// held) every this many ms until the view ends. `> 0`.
    pub nullify_retry_ms: u64,
    /// Votes for views more than this far above the current view are
    /// rejected as [`crate::MessageError::TooFarAhead`]. `1 ..= VIEWS_AHEAD_LIMIT`.
    pub views_ahead_max: u64,
}

/// The timings of a [`Config`]: the only part of it that may change while an instance
/// runs ([`crate::Consensus::set_timeouts`]). Timeouts decide liveness only, never
/// safety (no vote's validity depends on when it was cast), so validators may apply a
/// change at different moments. Milliseconds of the host's clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// [`Config::leader_timeout_ms`].
    pub leader_timeout_ms: u64,
    /// [`Config::notarization_timeout_ms`].
    pub notarization_timeout_ms: u64,
    /// [`Config::nullify_retry_ms`].
    pub nullify_retry_ms: u64,
}

impl Timeouts {
    /// Each timing `> 0` and `leader_timeout_ms <= notarization_timeout_ms`.
    ///
    /// # Errors
    /// [`ConfigError::ZeroDuration`], [`ConfigError::LeaderTimeoutTooLong`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (field, value) in [
            ("leader_timeout_ms", self.leader_timeout_ms),
            ("notarization_timeout_ms", self.notarization_timeout_ms),
            ("nullify_retry_ms", self.nullify_retry_ms),
        ] {
            if value == 0 {
                return Err(ConfigError::ZeroDuration { field });
            }
        }
        if self.leader_timeout_ms > self.notarization_timeout_ms {
            return Err(ConfigError::LeaderTimeoutTooLong {
                leader: self.leader_timeout_ms,
                notarization: self.notarization_timeout_ms,
            });
        }
        Ok(())
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("namespace", &hex::encode(self.namespace))
            .field("validators", &self.validators.len())
            .field(
                "signer",
                &self
                    .signer
                    .as_ref()
                    .map(|k| hex::encode(k.verifying_key().as_bytes())),
            )
            .field("leader_timeout_ms", &self.leader_timeout_ms)
            .field("notarization_timeout_ms", &self.notarization_timeout_ms)
            .field("nullify_retry_ms", &self.nullify_retry_ms)
            .field("views_ahead_max", &self.views_ahead_max)
            .finish()
    }
}

impl Config {
    /// A config with the `DEFAULT_*` timings.
    pub fn with_defaults(
        namespace: [u8; 32],
        validators: ValidatorSet,
        signer: Option<SigningKey>,
    ) -> Config {
        Config {
            namespace,
            validators,
            signer,
            leader_timeout_ms: DEFAULT_LEADER_TIMEOUT_MS,
            notarization_timeout_ms: DEFAULT_NOTARIZATION_TIMEOUT_MS,
            nullify_retry_ms: DEFAULT_NULLIFY_RETRY_MS,
            views_ahead_max: DEFAULT_VIEWS_AHEAD_MAX,
        }
    }

    /// The instance's timings.
    pub fn timeouts(&self) -> Timeouts {
        Timeouts {
            leader_timeout_ms: self.leader_timeout_ms,
            notarization_timeout_ms: self.notarization_timeout_ms,
            nullify_retry_ms: self.nullify_retry_ms,
        }
    }

    /// Checks the field constraints documented on each field.
    ///
    /// # Errors
    /// [`ConfigError::SignerNotInSet`], [`ConfigError::ZeroDuration`],
    /// [`ConfigError::LeaderTimeoutTooLong`], [`ConfigError::ViewsAheadOutOfRange`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.signer_index()?;
        self.timeouts().validate()?;
        if self.views_ahead_max == 0 || self.views_ahead_max > VIEWS_AHEAD_LIMIT {
            return Err(ConfigError::ViewsAheadOutOfRange {
                value: self.views_ahead_max,
                max: VIEWS_AHEAD_LIMIT,
            });
        }
        Ok(())
    }

    /// Index of `signer` in the set (`None` for an observer).
    pub(crate) fn signer_index(&self) -> Result<Option<ValidatorIndex>, ConfigError> {
        match &self.signer {
            None => Ok(None),
            Some(key) => self
                .validators
                .index_of(&key.verifying_key())
                .map(Some)
                .ok_or(ConfigError::SignerNotInSet),
        }
    }
}
