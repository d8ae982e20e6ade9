//! The weighted validator set: membership, voting power, quorum and leaders.

use std::collections::BTreeMap;

use ed25519_dalek::VerifyingKey;

use crate::error::ValidatorSetError;
use crate::types::{ValidatorIndex, View};

/// Maximum number of validators in a set (`u16::MAX`), so every index fits a
/// [`ValidatorIndex`] and certificates stay below [`crate::Message::BYTES_MAX`].
pub const MAX_VALIDATORS: usize = u16::MAX as usize;

/// One validator: its ed25519 public key and its voting power (> 0).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validator {
    /// Key that signs this validator's votes.
    pub public_key: VerifyingKey,
    /// Voting power (weight); must be non-zero. The set's total must fit `u64`.
    pub voting_power: u64,
}

/// An ordered, validated validator set. Index `i` (a [`ValidatorIndex`]) is the
/// position in the vector given to [`ValidatorSet::new`].
///
/// Invariants: 1 ..= [`MAX_VALIDATORS`] validators, distinct keys, every power
/// non-zero, total power fits `u64`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatorSet {
    validators: Vec<Validator>,
    by_key: BTreeMap<[u8; 32], ValidatorIndex>,
    total_power: u64,
    quorum_power: u64,
}

impl ValidatorSet {
    /// Builds a set, keeping the given order.
    ///
    /// # Errors
    /// [`ValidatorSetError::Empty`], [`ValidatorSetError::TooMany`] (more than
    /// [`MAX_VALIDATORS`]), [`ValidatorSetError::ZeroPower`],
    /// [`ValidatorSetError::DuplicateKey`] (index of the second occurrence),
    /// [`ValidatorSetError::PowerOverflow`] (total exceeds `u64::MAX`).
    pub fn new(validators: Vec<Validator>) -> Result<Self, ValidatorSetError> {
        if validators.is_empty() {
            return Err(ValidatorSetError::Empty);
        }
        if validators.len() > MAX_VALIDATORS {
            return Err(ValidatorSetError::TooMany {
                count: validators.len(),
                max: MAX_VALIDATORS,
            });
        }
        let mut by_key = BTreeMap::new();
        let mut total: u64 = 0;
        for (i, v) in validators.iter().enumerate() {
            let index = i as ValidatorIndex; // < MAX_VALIDATORS = u16::MAX
            if v.voting_power == 0 {
                return Err(ValidatorSetError::ZeroPower { index });
            }
            if by_key.insert(*v.public_key.as_bytes(), index).is_some() {
                return Err(ValidatorSetError::DuplicateKey { index });
            }
            total = total
                .checked_add(v.voting_power)
                .ok_or(ValidatorSetError::PowerOverflow)?;
        }
        let quorum = (total as u128 * 2 / 3 + 1) as u64; // <= total, fits u64
        Ok(ValidatorSet {
            validators,
            by_key,
            total_power: total,
            quorum_power: quorum,
        })
    }

    /// Number of validators (≥ 1).
    pub fn len(&self) -> usize {
        self.validators.len()
    }

    /// Always `false` (a set is never empty); provided for API symmetry.
    pub fn is_empty(&self) -> bool {
        self.validators.is_empty()
    }

    /// Sum of all voting power.
    pub fn total_power(&self) -> u64 {
        self.total_power
    }

    /// Smallest power that is more than 2/3 of the total:
    /// `total_power * 2 / 3 + 1` (computed in u128).
    pub fn quorum_power(&self) -> u64 {
        self.quorum_power
    }

    /// The validator at index `i`, if any.
    pub fn get(&self, i: ValidatorIndex) -> Option<&Validator> {
        self.validators.get(i as usize)
    }

    /// Voting power of validator `i` (0 if unknown).
    pub fn power_of(&self, i: ValidatorIndex) -> u64 {
        self.get(i).map_or(0, |v| v.voting_power)
    }

    /// Index of the validator with this public key.
    pub fn index_of(&self, key: &VerifyingKey) -> Option<ValidatorIndex> {
        self.by_key.get(key.as_bytes()).copied()
    }

    /// Leader of `view`: round-robin `view mod len()`, ignoring voting power
    /// (weighted leader selection is future work).
    pub fn leader(&self, view: View) -> ValidatorIndex {
        (view % self.validators.len() as u64) as ValidatorIndex
    }

    /// Validators in index order.
    pub fn iter(&self) -> impl Iterator<Item = &Validator> {
        self.validators.iter()
    }
}
