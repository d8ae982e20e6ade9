//! Governance: who may change the chain's membership and parameters on a live chain, and
//! the rules every node applies when such a change executes.
//!
//! # Model
//!
//! The chain's state holds one [`Governance`] record (it starts from the genesis file's
//! `governance` section and the genesis validators and parameters):
//!
//! - **members**: the accounts that may propose and approve governance actions (sorted,
//!   unique, at most [`MEMBERS_MAX`]; none means governance is disabled and the chain's
//!   membership is frozen, as before governance existed);
//! - **threshold** `k`: approvals (by distinct members) an action needs, `1 ..= m`;
//! - **accounts policy** ([`AccountsPolicy`]): `open` (anyone may send) or `permissioned`
//!   (only accounts holding [`Permission::Transact`] may send transfers);
//! - **validators**: the validator set the chain has decided, in set order. A change takes
//!   effect in consensus only at the next epoch boundary (see `cairn-consensus`'s `epoch`
//!   module); [`Governance::epoch`] counts the blocks that changed it;
//! - **params**: the [`ChainParams`] in force;
//! - **open proposals**: at most [`PROPOSALS_OPEN_MAX`], each with the approving members
//!   and the last height at which it may still execute.
//!
//! A *governance proposal* (so named to keep it apart from a consensus proposal, which is
//! a block) moves through two transaction kinds:
//!
//! 1. **propose** by a member: the action is checked against the current state
//!    ([`Governance::check_action`]); it gets the next id, the proposer's approval, and expiry
//!    height `height + proposal_ttl_blocks`;
//! 2. **approve** by another member. When approvals reach the threshold (at once for
//!    `k = 1`), the action executes in that same transaction, after being checked again
//!    against the state of that moment (an earlier action may have made it invalid: then
//!    the approval is refused and nothing changes). Executed proposals are removed; a
//!    proposal past its expiry can no longer be approved and is removed the next time a
//!    governance transaction executes.
//!
//! Every refusal ([`GovernanceError`]) leaves the state as it was: the rules work on a
//! copy and the caller keeps it only on success.
//!
//! # Validator-set safety
//!
//! A validator-set change is refused if the resulting set would be structurally invalid
//! (empty, more than [`VALIDATORS_MAX`], a duplicate name, consensus key or peer id, a key
//! that is not a valid non-weak ed25519 point, zero power, total power overflowing u64),
//! if a removal would leave fewer than [`VALIDATORS_MIN`] validators, or if the resulting
//! set has at least [`VALIDATORS_MIN`] validators and one validator holds a third or more
//! of the total voting power (then that one validator's fault alone exceeds the `f` that
//! `n ≥ 3f + 1` tolerates, counted by power). Sets smaller than [`VALIDATORS_MIN`] (a
//! genesis may start with one validator) may grow one validator at a time.
//!
//! A key rotation must be signed by the validator's current consensus key over
//! [`rotation_digest`], so a member majority alone cannot move a validator's identity to
//! a key its operator does not hold.
//!
//! Designs learned from: Besu's QBFT validator votes, Hyperledger Iroha 2's permission
//! instructions, CometBFT's validator updates (power changes, removal by power 0).

use std::collections::BTreeSet;

use borsh::{BorshDeserialize, BorshSerialize};

use crate::{Address, ChainParams, Hash, ParamError, context};

/// Most governance members.
pub const MEMBERS_MAX: usize = 24;
/// Most open governance proposals at once; a propose beyond it is refused
/// ([`GovernanceError::TooManyProposals`]).
pub const PROPOSALS_OPEN_MAX: usize = 64;
/// Most validators in a set (the genesis bound).
pub const VALIDATORS_MAX: usize = 1024;
/// Fewest validators a removal may leave, and the size from which no validator may hold a
/// third of the voting power.
pub const VALIDATORS_MIN: usize = 4;
/// Longest validator name, in bytes.
pub const VALIDATOR_NAME_BYTES_MAX: usize = 64;
/// Longest peer id text, in bytes (an ed25519 libp2p peer id is 52 characters).
pub const PEER_ID_BYTES_MAX: usize = 64;
/// Default [`Governance::proposal_ttl_blocks`].
pub const PROPOSAL_TTL_BLOCKS_DEFAULT: u64 = 100_000;
/// Largest [`Governance::proposal_ttl_blocks`].
pub const PROPOSAL_TTL_BLOCKS_MAX: u64 = 100_000_000;

/// Who may send transfers.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    BorshSerialize,
    BorshDeserialize,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
#[borsh(use_discriminant = true)]
pub enum AccountsPolicy {
    /// Any account with a balance may send (borsh tag 0).
    #[default]
    Open = 0,
    /// Only accounts holding [`Permission::Transact`] may send transfers (borsh tag 1).
    Permissioned = 1,
}

/// One permission an account may hold.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    BorshSerialize,
    BorshDeserialize,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
#[borsh(use_discriminant = true)]
pub enum Permission {
    /// May send transfers under [`AccountsPolicy::Permissioned`] (bit 0, borsh tag 0).
    Transact = 0,
}

impl Permission {
    /// Every permission, in bit order.
    pub const ALL: [Permission; 1] = [Permission::Transact];

    /// The permission's bit in [`Permissions`].
    pub fn bit(self) -> u8 {
        1 << (self as u8)
    }

    /// The permission's name (`"transact"`), as in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Permission::Transact => "transact",
        }
    }
}

/// The set of permissions an account holds: a bit set (bit `i` = the permission with
/// borsh tag `i`). Borsh: one byte; bits without a permission must be zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize)]
pub struct Permissions(pub u8);

impl Permissions {
    /// True if `p` is held.
    pub fn contains(self, p: Permission) -> bool {
        self.0 & p.bit() != 0
    }

    /// With `p` added.
    pub fn with(self, p: Permission) -> Permissions {
        Permissions(self.0 | p.bit())
    }

    /// With `p` removed.
    pub fn without(self, p: Permission) -> Permissions {
        Permissions(self.0 & !p.bit())
    }

    /// True if no permission is held (the default: such an entry is absent from state).
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The held permissions, in bit order.
    pub fn list(self) -> Vec<Permission> {
        Permission::ALL
            .into_iter()
            .filter(|p| self.contains(*p))
            .collect()
    }

    /// True if no bit outside the known permissions is set.
    pub fn is_known(self) -> bool {
        let known = Permission::ALL.iter().fold(0u8, |m, p| m | p.bit());
        self.0 & !known == 0
    }
}

impl serde::Serialize for Permissions {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.list())
    }
}

impl<'de> serde::Deserialize<'de> for Permissions {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let list = <Vec<Permission> as serde::Deserialize>::deserialize(d)?;
        Ok(list
            .into_iter()
            .fold(Permissions::default(), Permissions::with))
    }
}

/// One validator as the chain records it.
#[derive(
    Clone,
    Debug,
    PartialEq,
    Eq,
    Hash,
    BorshSerialize,
    BorshDeserialize,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(deny_unknown_fields)]
pub struct ValidatorInfo {
    /// Unique name: 1..=[`VALIDATOR_NAME_BYTES_MAX`] bytes of `[A-Za-z0-9-_.]`.
    pub name: String,
    /// ed25519 consensus public key (bech32m `cairn1…` in JSON); a valid, non-weak point.
    pub consensus_key: Address,
    /// libp2p peer id of the validator's ed25519 network key, canonical base58
    /// (`12D3KooW…`, at most [`PEER_ID_BYTES_MAX`] bytes).
    pub peer_id: String,
    /// Voting power, ≥ 1.
    pub voting_power: u64,
}

/// Changes to the chain parameters: each `Some` field replaces the current value; the
/// result must pass [`ChainParams::validate`].
#[derive(
    Clone,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    BorshSerialize,
    BorshDeserialize,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(deny_unknown_fields, default)]
pub struct ParamsUpdate {
    /// New [`ChainParams::leader_timeout_ms`].
    pub leader_timeout_ms: Option<u64>,
    /// New [`ChainParams::notarization_timeout_ms`].
    pub notarization_timeout_ms: Option<u64>,
    /// New [`ChainParams::nullify_retry_ms`].
    pub nullify_retry_ms: Option<u64>,
    /// New [`ChainParams::block_txs_max`].
    pub block_txs_max: Option<u64>,
    /// New [`ChainParams::block_bytes_max`].
    pub block_bytes_max: Option<u64>,
    /// New [`ChainParams::block_interval_ms`].
    pub block_interval_ms: Option<u64>,
    /// New [`ChainParams::mempool_txs_max`].
    pub mempool_txs_max: Option<u64>,
    /// New [`ChainParams::mempool_bytes_max`].
    pub mempool_bytes_max: Option<u64>,
    /// New [`ChainParams::mempool_sender_future_max`].
    pub mempool_sender_future_max: Option<u64>,
    /// New [`ChainParams::admission_difficulty_bits`].
    pub admission_difficulty_bits: Option<u8>,
}

impl ParamsUpdate {
    /// `params` with this update applied (not validated).
    pub fn apply(&self, params: &ChainParams) -> ChainParams {
        let mut p = params.clone();
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = self.$f { p.$f = v; } )* };
        }
        set!(
            leader_timeout_ms,
            notarization_timeout_ms,
            nullify_retry_ms,
            block_txs_max,
            block_bytes_max,
            block_interval_ms,
            mempool_txs_max,
            mempool_bytes_max,
            mempool_sender_future_max,
            admission_difficulty_bits
        );
        p
    }
}

/// An action a governance proposal executes once approved.
///
/// Borsh: a one-byte tag (the variant's position, from 0) then the fields in order.
#[derive(
    Clone,
    Debug,
    PartialEq,
    Eq,
    Hash,
    BorshSerialize,
    BorshDeserialize,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum GovAction {
    /// Adds a validator at the end of the set (tag 0).
    AddValidator(ValidatorInfo),
    /// Removes the validator with this consensus key (tag 1).
    RemoveValidator {
        /// The validator's current consensus key.
        consensus_key: Address,
    },
    /// Sets a validator's voting power (tag 2).
    SetVotingPower {
        /// The validator's current consensus key.
        consensus_key: Address,
        /// New power, ≥ 1 (remove a validator with [`GovAction::RemoveValidator`]).
        voting_power: u64,
    },
    /// Replaces a validator's consensus key, keeping its place, name, peer id and power
    /// (tag 3).
    RotateKey {
        /// The validator's current consensus key.
        consensus_key: Address,
        /// The new consensus key: a valid, non-weak ed25519 point no validator uses.
        new_key: Address,
        /// ed25519 signature by `consensus_key` over [`rotation_digest`]`(chain_id,
        /// consensus_key, new_key)` (strict RFC 8032 verification).
        #[serde(with = "hex_64")]
        signature: [u8; 64],
    },
    /// Replaces the members and the threshold (tag 4).
    SetMembers {
        /// New members: 1..=[`MEMBERS_MAX`] distinct accounts.
        members: Vec<Address>,
        /// New threshold: `1 ..= members.len()`.
        threshold: u32,
    },
    /// Grants `permission` to `account` (tag 5).
    Grant {
        /// The account.
        account: Address,
        /// The permission.
        permission: Permission,
    },
    /// Revokes `permission` from `account` (tag 6).
    Revoke {
        /// The account.
        account: Address,
        /// The permission.
        permission: Permission,
    },
    /// Changes chain parameters (tag 7).
    SetParams(ParamsUpdate),
}

mod hex_64 {
    pub fn serialize<S: serde::Serializer>(v: &[u8; 64], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<[u8; 64], D::Error> {
        let s = <String as serde::Deserialize>::deserialize(d)?;
        let bytes = hex::decode(&s).map_err(serde::de::Error::custom)?;
        bytes
            .try_into()
            .map_err(|_| serde::de::Error::custom("signature must be 64 bytes of hex"))
    }
}

/// The digest a validator's current consensus key signs to authorise
/// [`GovAction::RotateKey`]: blake3 derive-key with context [`context::KEY_ROTATION`]
/// over `borsh(chain_id) ‖ current key (32 bytes) ‖ new key (32 bytes)`.
pub fn rotation_digest(chain_id: &str, current: &Address, new_key: &Address) -> Hash {
    let chain = borsh::to_vec(chain_id).expect("borsh to Vec never fails");
    Hash::derive(context::KEY_ROTATION, &[&chain, &current.0, &new_key.0])
}

impl GovAction {
    /// True if executing the action changes the validator set (and so ends the epoch).
    pub fn changes_validators(&self) -> bool {
        matches!(
            self,
            GovAction::AddValidator(_)
                | GovAction::RemoveValidator { .. }
                | GovAction::SetVotingPower { .. }
                | GovAction::RotateKey { .. }
        )
    }

    /// The action's name, as in JSON and the CLI (`"add_validator"`, …).
    pub fn name(&self) -> &'static str {
        match self {
            GovAction::AddValidator(_) => "add_validator",
            GovAction::RemoveValidator { .. } => "remove_validator",
            GovAction::SetVotingPower { .. } => "set_voting_power",
            GovAction::RotateKey { .. } => "rotate_key",
            GovAction::SetMembers { .. } => "set_members",
            GovAction::Grant { .. } => "grant",
            GovAction::Revoke { .. } => "revoke",
            GovAction::SetParams(_) => "set_params",
        }
    }
}

/// An open governance proposal.
#[derive(
    Clone,
    Debug,
    PartialEq,
    Eq,
    Hash,
    BorshSerialize,
    BorshDeserialize,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct GovProposal {
    /// Sequential id, from 1.
    pub id: u64,
    /// The member that proposed it (its first approval).
    pub proposer: Address,
    /// What executes once approved.
    pub action: GovAction,
    /// Members that approved it, sorted, distinct.
    pub approvals: Vec<Address>,
    /// Height of the block that opened it.
    pub created_height: u64,
    /// Last height at which it may still be approved and execute (inclusive).
    pub expiry_height: u64,
}

/// The chain's governance state (see the [module docs](self)).
///
/// Invariants ([`Governance::validate`]): members sorted, distinct, at most
/// [`MEMBERS_MAX`]; `threshold` in `1..=members.len()`, or 0 with no members;
/// `proposal_ttl_blocks` in `1..=PROPOSAL_TTL_BLOCKS_MAX`; validators structurally valid;
/// params in range; open proposals at most [`PROPOSALS_OPEN_MAX`], ids ascending and below
/// `next_proposal_id`, each approved only by members.
#[derive(
    Clone,
    Debug,
    PartialEq,
    Eq,
    BorshSerialize,
    BorshDeserialize,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Governance {
    /// Accounts that may propose and approve; sorted, distinct.
    pub members: Vec<Address>,
    /// Approvals an action needs.
    pub threshold: u32,
    /// Who may send transfers.
    pub accounts: AccountsPolicy,
    /// Blocks a proposal stays open: it expires at `created_height + proposal_ttl_blocks`.
    pub proposal_ttl_blocks: u64,
    /// Number of blocks that changed the validator set so far (0 at genesis): the epoch in
    /// which [`Self::validators`] vote.
    pub epoch: u64,
    /// The validator set the chain decided, in set order.
    pub validators: Vec<ValidatorInfo>,
    /// Chain parameters in force.
    pub params: ChainParams,
    /// Open proposals, ascending id.
    pub proposals: Vec<GovProposal>,
    /// Id the next proposal gets.
    pub next_proposal_id: u64,
}

/// What a governance transaction did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GovOutcome {
    /// The proposal proposed or approved.
    pub proposal_id: u64,
    /// True if its action executed in this transaction.
    pub executed: bool,
    /// True if the execution changed the validator set.
    pub validators_changed: bool,
}

/// Access to account permissions while a governance transaction executes (permissions
/// live with the accounts, outside [`Governance`]).
pub trait PermissionStore {
    /// The permissions `account` holds.
    ///
    /// Errors: only fatal storage errors.
    fn permissions(&mut self, account: &Address) -> Result<Permissions, crate::LedgerError>;
    /// Sets `account`'s permissions.
    fn set_permissions(&mut self, account: Address, permissions: Permissions);
}

impl PermissionStore for std::collections::BTreeMap<Address, Permissions> {
    fn permissions(&mut self, account: &Address) -> Result<Permissions, crate::LedgerError> {
        Ok(self.get(account).copied().unwrap_or_default())
    }
    fn set_permissions(&mut self, account: Address, permissions: Permissions) {
        if permissions.is_empty() {
            self.remove(&account);
        } else {
            self.insert(account, permissions);
        }
    }
}

/// Why a governance transaction or record was refused. Each variant has a stable
/// [`GovernanceError::code`] for RPC and CLI.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GovernanceError {
    /// The chain has no governance members: membership is frozen.
    #[error("governance is disabled on this chain (no members)")]
    Disabled,
    /// The sender is not a member.
    #[error("{account} is not a governance member")]
    NotMember {
        /// The sender.
        account: Address,
    },
    /// No open proposal has this id (never existed, executed, or pruned after expiry).
    #[error("no open governance proposal {id}")]
    UnknownProposal {
        /// The id given.
        id: u64,
    },
    /// The proposal's expiry height has passed.
    #[error("governance proposal {id} expired at height {expiry_height} (now {height})")]
    Expired {
        /// The proposal.
        id: u64,
        /// Its last height.
        expiry_height: u64,
        /// The height of the block executing the approval.
        height: u64,
    },
    /// The member already approved this proposal.
    #[error("{member} already approved governance proposal {id}")]
    AlreadyApproved {
        /// The proposal.
        id: u64,
        /// The member.
        member: Address,
    },
    /// [`PROPOSALS_OPEN_MAX`] proposals are open.
    #[error("{max} governance proposals are open; approve or let some expire first")]
    TooManyProposals {
        /// The bound.
        max: usize,
    },
    /// A removal would leave fewer than [`VALIDATORS_MIN`] validators.
    #[error("the change would leave {count} validators, fewer than {min}")]
    TooFewValidators {
        /// Validators after the change.
        count: usize,
        /// The bound.
        min: usize,
    },
    /// More than [`VALIDATORS_MAX`] validators.
    #[error("the change would make {count} validators, more than {max}")]
    TooManyValidators {
        /// Validators after the change.
        count: usize,
        /// The bound.
        max: usize,
    },
    /// One validator would hold a third or more of the voting power (`n ≥ 3f + 1` by power
    /// would fail for `f ≥ 1`).
    #[error(
        "validator {name} would hold {power} of {total} voting power, a third or more: one fault would exceed what BFT tolerates"
    )]
    PowerConcentrated {
        /// The validator.
        name: String,
        /// Its power after the change.
        power: u64,
        /// Total power after the change.
        total: u64,
    },
    /// Total voting power would overflow u64.
    #[error("total voting power would overflow u64")]
    PowerOverflow,
    /// A voting power of zero.
    #[error("voting power must be at least 1")]
    ZeroPower,
    /// The consensus key is already a validator's.
    #[error("consensus key {key} is already a validator's")]
    DuplicateKey {
        /// The key.
        key: Address,
    },
    /// The name is already a validator's.
    #[error("validator name `{name}` is taken")]
    DuplicateName {
        /// The name.
        name: String,
    },
    /// The peer id is already a validator's.
    #[error("peer id {peer_id} is already a validator's")]
    DuplicatePeerId {
        /// The peer id.
        peer_id: String,
    },
    /// No validator has this consensus key.
    #[error("no validator has consensus key {key}")]
    UnknownValidator {
        /// The key.
        key: Address,
    },
    /// The key is not a valid, non-weak ed25519 point.
    #[error("{key} is not a valid ed25519 consensus key (not a point, or of small order)")]
    BadKey {
        /// The key.
        key: Address,
    },
    /// A validator name or peer id is malformed.
    #[error("invalid {field}: {reason}")]
    BadField {
        /// `"name"` or `"peer_id"`.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The rotation is not signed by the validator's current key.
    #[error("the key rotation is not signed by the validator's current key {key}")]
    BadRotationSignature {
        /// The current key.
        key: Address,
    },
    /// The member list is empty, too long or repeats an account, or the threshold does
    /// not fit it.
    #[error("invalid members: {reason}")]
    BadMembers {
        /// What is wrong.
        reason: String,
    },
    /// A parameter out of its range.
    #[error(transparent)]
    Param(#[from] ParamError),
    /// The action would change nothing (a grant of a held permission, an empty update, a
    /// power equal to the current one, …).
    #[error("the action changes nothing: {what}")]
    NoChange {
        /// Why.
        what: String,
    },
    /// A stored governance record breaks an invariant (a corrupt store or a bad genesis).
    #[error("governance record invalid: {reason}")]
    Invalid {
        /// Which invariant.
        reason: String,
    },
}

impl GovernanceError {
    /// Stable snake_case code (RPC `data.reason`, CLI `--json`).
    pub fn code(&self) -> &'static str {
        match self {
            GovernanceError::Disabled => "governance_disabled",
            GovernanceError::NotMember { .. } => "not_member",
            GovernanceError::UnknownProposal { .. } => "unknown_proposal",
            GovernanceError::Expired { .. } => "proposal_expired",
            GovernanceError::AlreadyApproved { .. } => "already_approved",
            GovernanceError::TooManyProposals { .. } => "too_many_proposals",
            GovernanceError::TooFewValidators { .. } => "too_few_validators",
            GovernanceError::TooManyValidators { .. } => "too_many_validators",
            GovernanceError::PowerConcentrated { .. } => "power_concentrated",
            GovernanceError::PowerOverflow => "power_overflow",
            GovernanceError::ZeroPower => "zero_power",
            GovernanceError::DuplicateKey { .. } => "duplicate_key",
            GovernanceError::DuplicateName { .. } => "duplicate_name",
            GovernanceError::DuplicatePeerId { .. } => "duplicate_peer_id",
            GovernanceError::UnknownValidator { .. } => "unknown_validator",
            GovernanceError::BadKey { .. } => "bad_key",
            GovernanceError::BadField { .. } => "bad_field",
            GovernanceError::BadRotationSignature { .. } => "bad_rotation_signature",
            GovernanceError::BadMembers { .. } => "bad_members",
            GovernanceError::Param(_) => "param_out_of_range",
            GovernanceError::NoChange { .. } => "no_change",
            GovernanceError::Invalid { .. } => "invalid_governance",
        }
    }
}

/// Where a governance transaction executes.
#[derive(Clone, Copy, Debug)]
pub struct GovContext<'a> {
    /// The chain id (signed into key rotations).
    pub chain_id: &'a str,
    /// Height of the block executing the transaction.
    pub height: u64,
}

impl Governance {
    /// The record a chain starts from. Genesis is authoritative about its validators:
    /// only the structural checks apply to them (a chain may start with one validator).
    ///
    /// Errors: as [`Self::validate`].
    pub fn genesis(
        mut members: Vec<Address>,
        threshold: u32,
        accounts: AccountsPolicy,
        proposal_ttl_blocks: u64,
        validators: Vec<ValidatorInfo>,
        params: ChainParams,
    ) -> Result<Governance, GovernanceError> {
        members.sort();
        let g = Governance {
            members,
            threshold,
            accounts,
            proposal_ttl_blocks,
            epoch: 0,
            validators,
            params,
            proposals: Vec::new(),
            next_proposal_id: 1,
        };
        g.validate()?;
        Ok(g)
    }

    /// Checks every invariant listed on [`Governance`].
    ///
    /// Errors: [`GovernanceError::BadMembers`], [`GovernanceError::Param`],
    /// the structural validator-set errors, or [`GovernanceError::Invalid`].
    pub fn validate(&self) -> Result<(), GovernanceError> {
        check_members(&self.members, self.threshold, true)?;
        if self.proposal_ttl_blocks == 0 || self.proposal_ttl_blocks > PROPOSAL_TTL_BLOCKS_MAX {
            return Err(GovernanceError::Invalid {
                reason: format!(
                    "proposal_ttl_blocks {} is out of range 1..={PROPOSAL_TTL_BLOCKS_MAX}",
                    self.proposal_ttl_blocks
                ),
            });
        }
        check_set_structure(&self.validators)?;
        self.params.validate()?;
        if self.proposals.len() > PROPOSALS_OPEN_MAX {
            return Err(GovernanceError::Invalid {
                reason: format!("{} open proposals", self.proposals.len()),
            });
        }
        let mut last_id = 0;
        for p in &self.proposals {
            if p.id <= last_id || p.id >= self.next_proposal_id {
                return Err(GovernanceError::Invalid {
                    reason: format!("proposal id {} out of order", p.id),
                });
            }
            last_id = p.id;
            if !p.approvals.windows(2).all(|w| w[0] < w[1])
                || p.approvals.iter().any(|a| !self.is_member(a))
            {
                return Err(GovernanceError::Invalid {
                    reason: format!("proposal {} has invalid approvals", p.id),
                });
            }
        }
        Ok(())
    }

    /// True if `account` is a member.
    pub fn is_member(&self, account: &Address) -> bool {
        self.members.binary_search(account).is_ok()
    }

    /// The open proposal `id`, if any (it may have expired but not been pruned yet).
    pub fn proposal(&self, id: u64) -> Option<&GovProposal> {
        self.proposals.iter().find(|p| p.id == id)
    }

    /// True if `account` may send transfers: always under [`AccountsPolicy::Open`], with
    /// [`Permission::Transact`] under [`AccountsPolicy::Permissioned`].
    pub fn may_transact(&self, permissions: Permissions) -> bool {
        match self.accounts {
            AccountsPolicy::Open => true,
            AccountsPolicy::Permissioned => permissions.contains(Permission::Transact),
        }
    }

    /// Executes a *propose* by `proposer`: prunes expired proposals, checks membership,
    /// room and the action, opens the proposal with the proposer's approval, and executes
    /// it at once if that reaches the threshold. On error `self` and `perms` are unchanged.
    ///
    /// Errors: [`GovernanceError::Disabled`], [`GovernanceError::NotMember`],
    /// [`GovernanceError::TooManyProposals`], any error of [`Self::check_action`]; fatal
    /// storage errors from `perms` come back as `Err(Err(_))`.
    pub fn propose(
        &mut self,
        ctx: GovContext<'_>,
        proposer: Address,
        action: GovAction,
        perms: &mut dyn PermissionStore,
    ) -> Result<GovOutcome, GovError> {
        let mut next = self.clone();
        next.prune_expired(ctx.height);
        next.check_member(&proposer)?;
        if next.proposals.len() >= PROPOSALS_OPEN_MAX {
            return Err(GovernanceError::TooManyProposals {
                max: PROPOSALS_OPEN_MAX,
            }
            .into());
        }
        next.check_action(ctx, &action, perms)?;
        let id = next.next_proposal_id;
        next.next_proposal_id += 1;
        next.proposals.push(GovProposal {
            id,
            proposer,
            action,
            approvals: vec![proposer],
            created_height: ctx.height,
            expiry_height: ctx.height.saturating_add(next.proposal_ttl_blocks),
        });
        let outcome = next.maybe_execute(ctx, id, perms)?;
        *self = next;
        Ok(outcome)
    }

    /// Executes an *approve* of proposal `id` by `member`, and the proposal's action if
    /// this approval reaches the threshold (checked again first). On error `self` and
    /// `perms` are unchanged.
    ///
    /// Errors: [`GovernanceError::Disabled`], [`GovernanceError::NotMember`],
    /// [`GovernanceError::UnknownProposal`], [`GovernanceError::Expired`],
    /// [`GovernanceError::AlreadyApproved`], any error of [`Self::check_action`].
    pub fn approve(
        &mut self,
        ctx: GovContext<'_>,
        member: Address,
        id: u64,
        perms: &mut dyn PermissionStore,
    ) -> Result<GovOutcome, GovError> {
        let mut next = self.clone();
        next.check_member(&member)?;
        let proposal = next
            .proposals
            .iter_mut()
            .find(|p| p.id == id)
            .ok_or(GovernanceError::UnknownProposal { id })?;
        if proposal.expiry_height < ctx.height {
            return Err(GovernanceError::Expired {
                id,
                expiry_height: proposal.expiry_height,
                height: ctx.height,
            }
            .into());
        }
        match proposal.approvals.binary_search(&member) {
            Ok(_) => return Err(GovernanceError::AlreadyApproved { id, member }.into()),
            Err(at) => proposal.approvals.insert(at, member),
        }
        next.prune_expired(ctx.height);
        let outcome = next.maybe_execute(ctx, id, perms)?;
        *self = next;
        Ok(outcome)
    }

    /// Checks that `action` could execute now: every refusal reason of the action, without
    /// changing anything.
    ///
    /// Errors: per action, see [`GovernanceError`]'s variants.
    pub fn check_action(
        &self,
        ctx: GovContext<'_>,
        action: &GovAction,
        perms: &mut dyn PermissionStore,
    ) -> Result<(), GovError> {
        let mut scratch = self.clone();
        scratch.apply_to_record(ctx, action)?;
        if let GovAction::Grant {
            account,
            permission,
        }
        | GovAction::Revoke {
            account,
            permission,
        } = action
        {
            let held = perms.permissions(account).map_err(GovError::Fatal)?;
            let grant = matches!(action, GovAction::Grant { .. });
            if held.contains(*permission) == grant {
                return Err(GovernanceError::NoChange {
                    what: format!(
                        "{account} {} `{}`",
                        if grant {
                            "already holds"
                        } else {
                            "does not hold"
                        },
                        permission.name()
                    ),
                }
                .into());
            }
        }
        Ok(())
    }

    fn check_member(&self, account: &Address) -> Result<(), GovernanceError> {
        if self.members.is_empty() {
            return Err(GovernanceError::Disabled);
        }
        if !self.is_member(account) {
            return Err(GovernanceError::NotMember { account: *account });
        }
        Ok(())
    }

    /// Removes proposals whose expiry height is below `height`.
    fn prune_expired(&mut self, height: u64) {
        self.proposals.retain(|p| p.expiry_height >= height);
    }

    /// Executes proposal `id` if its approvals reach the threshold.
    fn maybe_execute(
        &mut self,
        ctx: GovContext<'_>,
        id: u64,
        perms: &mut dyn PermissionStore,
    ) -> Result<GovOutcome, GovError> {
        let at = self
            .proposals
            .iter()
            .position(|p| p.id == id)
            .expect("the proposal was just opened or approved");
        let approvals = self.proposals[at].approvals.len();
        if approvals < self.threshold as usize {
            return Ok(GovOutcome {
                proposal_id: id,
                executed: false,
                validators_changed: false,
            });
        }
        let action = self.proposals[at].action.clone();
        self.check_action(ctx, &action, perms)?;
        self.proposals.remove(at);
        let validators_before = self.validators.clone();
        self.apply_to_record(ctx, &action)?;
        match action {
            GovAction::Grant {
                account,
                permission,
            } => {
                let held = perms.permissions(&account).map_err(GovError::Fatal)?;
                perms.set_permissions(account, held.with(permission));
            }
            GovAction::Revoke {
                account,
                permission,
            } => {
                let held = perms.permissions(&account).map_err(GovError::Fatal)?;
                perms.set_permissions(account, held.without(permission));
            }
            _ => {}
        }
        let validators_changed = self.validators != validators_before;
        // A member set change may leave approvals by former members on other proposals:
        // they no longer count.
        let members = self.members.clone();
        for p in &mut self.proposals {
            p.approvals.retain(|a| members.binary_search(a).is_ok());
        }
        Ok(GovOutcome {
            proposal_id: id,
            executed: true,
            validators_changed,
        })
    }

    /// Applies `action`'s effect on this record (validators, members, params), with every
    /// check of it; permissions are not touched here.
    fn apply_to_record(
        &mut self,
        ctx: GovContext<'_>,
        action: &GovAction,
    ) -> Result<(), GovernanceError> {
        match action {
            GovAction::AddValidator(v) => {
                let mut set = self.validators.clone();
                set.push(v.clone());
                check_change(&set, false)?;
                self.validators = set;
            }
            GovAction::RemoveValidator { consensus_key } => {
                let at = self.validator_index(consensus_key)?;
                let mut set = self.validators.clone();
                set.remove(at);
                check_change(&set, true)?;
                self.validators = set;
            }
            GovAction::SetVotingPower {
                consensus_key,
                voting_power,
            } => {
                let at = self.validator_index(consensus_key)?;
                if self.validators[at].voting_power == *voting_power {
                    return Err(GovernanceError::NoChange {
                        what: format!("{} already has power {voting_power}", consensus_key),
                    });
                }
                let mut set = self.validators.clone();
                set[at].voting_power = *voting_power;
                check_change(&set, false)?;
                self.validators = set;
            }
            GovAction::RotateKey {
                consensus_key,
                new_key,
                signature,
            } => {
                let at = self.validator_index(consensus_key)?;
                let current = consensus_key
                    .public_key()
                    .map_err(|_| GovernanceError::BadKey {
                        key: *consensus_key,
                    })?;
                let digest = rotation_digest(ctx.chain_id, consensus_key, new_key);
                let sig = ed25519_dalek::Signature::from_bytes(signature);
                current
                    .verify_strict(digest.as_bytes(), &sig)
                    .map_err(|_| GovernanceError::BadRotationSignature {
                        key: *consensus_key,
                    })?;
                let mut set = self.validators.clone();
                set[at].consensus_key = *new_key;
                check_change(&set, false)?;
                self.validators = set;
            }
            GovAction::SetMembers { members, threshold } => {
                let mut sorted = members.clone();
                sorted.sort();
                check_members(&sorted, *threshold, false)?;
                if sorted == self.members && *threshold == self.threshold {
                    return Err(GovernanceError::NoChange {
                        what: "the same members and threshold".into(),
                    });
                }
                self.members = sorted;
                self.threshold = *threshold;
            }
            GovAction::Grant { .. } | GovAction::Revoke { .. } => {}
            GovAction::SetParams(update) => {
                let params = update.apply(&self.params);
                params.validate()?;
                if params == self.params {
                    return Err(GovernanceError::NoChange {
                        what: "the parameters already have these values".into(),
                    });
                }
                self.params = params;
            }
        }
        Ok(())
    }

    fn validator_index(&self, key: &Address) -> Result<usize, GovernanceError> {
        self.validators
            .iter()
            .position(|v| v.consensus_key == *key)
            .ok_or(GovernanceError::UnknownValidator { key: *key })
    }
}

/// A governance refusal, or a fatal storage failure while reading permissions.
#[derive(Debug, thiserror::Error)]
pub enum GovError {
    /// The transaction is refused; nothing changed.
    #[error(transparent)]
    Refused(#[from] GovernanceError),
    /// Storage failed (fatal).
    #[error(transparent)]
    Fatal(crate::LedgerError),
}

/// Members sorted, distinct, at most [`MEMBERS_MAX`]; threshold `1..=len` (or, if
/// `allow_empty`, no members and threshold 0).
fn check_members(
    members: &[Address],
    threshold: u32,
    allow_empty: bool,
) -> Result<(), GovernanceError> {
    let bad = |reason: String| Err(GovernanceError::BadMembers { reason });
    if members.is_empty() {
        if allow_empty && threshold == 0 {
            return Ok(());
        }
        return bad(if allow_empty {
            format!("threshold {threshold} with no members")
        } else {
            "no members".into()
        });
    }
    if members.len() > MEMBERS_MAX {
        return bad(format!(
            "{} members, more than {MEMBERS_MAX}",
            members.len()
        ));
    }
    if let Some(w) = members.windows(2).find(|w| w[0] >= w[1]) {
        return bad(format!("{} is listed twice", w[1]));
    }
    if threshold == 0 || threshold as usize > members.len() {
        return bad(format!(
            "threshold {threshold} is not in 1..={}",
            members.len()
        ));
    }
    Ok(())
}

/// The structural validator-set checks (also applied to genesis sets).
fn check_set_structure(set: &[ValidatorInfo]) -> Result<u64, GovernanceError> {
    if set.is_empty() {
        return Err(GovernanceError::TooFewValidators { count: 0, min: 1 });
    }
    if set.len() > VALIDATORS_MAX {
        return Err(GovernanceError::TooManyValidators {
            count: set.len(),
            max: VALIDATORS_MAX,
        });
    }
    let (mut names, mut keys, mut peers) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    let mut total: u64 = 0;
    for v in set {
        check_name(&v.name)?;
        check_peer_id(&v.peer_id)?;
        let point = v
            .consensus_key
            .public_key()
            .map_err(|_| GovernanceError::BadKey {
                key: v.consensus_key,
            })?;
        if point.is_weak() {
            return Err(GovernanceError::BadKey {
                key: v.consensus_key,
            });
        }
        if v.voting_power == 0 {
            return Err(GovernanceError::ZeroPower);
        }
        if !names.insert(v.name.as_str()) {
            return Err(GovernanceError::DuplicateName {
                name: v.name.clone(),
            });
        }
        if !keys.insert(v.consensus_key) {
            return Err(GovernanceError::DuplicateKey {
                key: v.consensus_key,
            });
        }
        if !peers.insert(v.peer_id.as_str()) {
            return Err(GovernanceError::DuplicatePeerId {
                peer_id: v.peer_id.clone(),
            });
        }
        total = total
            .checked_add(v.voting_power)
            .ok_or(GovernanceError::PowerOverflow)?;
    }
    Ok(total)
}

/// The checks on a set a governance action produces: structure, the minimum size after a
/// removal, and no validator with a third or more of the power once there are
/// [`VALIDATORS_MIN`] or more.
fn check_change(set: &[ValidatorInfo], removal: bool) -> Result<(), GovernanceError> {
    if removal && set.len() < VALIDATORS_MIN {
        return Err(GovernanceError::TooFewValidators {
            count: set.len(),
            min: VALIDATORS_MIN,
        });
    }
    let total = check_set_structure(set)?;
    if set.len() >= VALIDATORS_MIN {
        for v in set {
            // power ≥ total / 3, in integers without rounding: 3 · power ≥ total.
            if u128::from(v.voting_power) * 3 >= u128::from(total) {
                return Err(GovernanceError::PowerConcentrated {
                    name: v.name.clone(),
                    power: v.voting_power,
                    total,
                });
            }
        }
    }
    Ok(())
}

fn check_name(name: &str) -> Result<(), GovernanceError> {
    let ok = !name.is_empty()
        && name.len() <= VALIDATOR_NAME_BYTES_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(GovernanceError::BadField {
            field: "name",
            reason: format!(
                "`{}` is not 1..={VALIDATOR_NAME_BYTES_MAX} bytes of [A-Za-z0-9-_.]",
                name.chars().take(80).collect::<String>()
            ),
        })
    }
}

/// The libp2p peer id (canonical base58, `12D3KooW…`) of an ed25519 network public key:
/// base58 of the identity multihash `00 24` of the protobuf-encoded key `08 01 12 20 ‖ key`.
/// The only peer-id form [`ValidatorInfo::peer_id`] accepts.
pub fn ed25519_peer_id(public_key: &[u8; 32]) -> String {
    let mut bytes = Vec::with_capacity(38);
    bytes.extend_from_slice(&PEER_ID_PREFIX);
    bytes.extend_from_slice(public_key);
    bs58::encode(bytes).into_string()
}

const PEER_ID_PREFIX: [u8; 6] = [0x00, 0x24, 0x08, 0x01, 0x12, 0x20];

/// A peer id must be the canonical base58 of an identity multihash of an ed25519 libp2p
/// public key: bytes `00 24 08 01 12 20` then the 32-byte key (what libp2p prints as
/// `12D3KooW…`).
fn check_peer_id(peer_id: &str) -> Result<(), GovernanceError> {
    let bad = |reason: &str| {
        Err(GovernanceError::BadField {
            field: "peer_id",
            reason: format!(
                "`{}` {reason}",
                peer_id.chars().take(80).collect::<String>()
            ),
        })
    };
    if peer_id.len() > PEER_ID_BYTES_MAX {
        return bad("is too long");
    }
    let Ok(bytes) = bs58::decode(peer_id).into_vec() else {
        return bad("is not base58");
    };
    if bytes.len() != 38 || bytes[..6] != PEER_ID_PREFIX {
        return bad("is not the peer id of an ed25519 key");
    }
    if bs58::encode(&bytes).into_string() != peer_id {
        return bad("is not in canonical base58");
    }
    Ok(())
}

#[cfg(test)]
mod tests;
