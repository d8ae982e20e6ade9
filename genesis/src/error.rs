//! Genesis errors: each variant names the exact problem and where it is.

use std::path::PathBuf;

use cairn_ledger::Address;

/// Every way a genesis file is refused.
///
/// Positions are given as JSON line/column (1-based) for parse errors and as
/// `validators[i]` / `accounts[i]` indices (0-based, file order) for validation errors.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum GenesisError {
    /// The file could not be read.
    #[error("cannot read genesis file {}: {reason}", path.display())]
    Io {
        /// The path given.
        path: PathBuf,
        /// The operating system's error.
        reason: String,
    },
    /// The file is larger than [`crate::GENESIS_FILE_BYTES_MAX`].
    #[error("genesis file {} is {len} bytes, more than the limit of {max}", path.display())]
    FileTooLarge {
        /// The path given.
        path: PathBuf,
        /// Size seen (a lower bound if the file grew while being read).
        len: u64,
        /// The limit.
        max: u64,
    },
    /// A field the format does not define (`deny_unknown_fields`).
    #[error("genesis JSON: unknown field `{field}` at line {line} column {column}: {message}")]
    UnknownField {
        /// The unknown field's name.
        field: String,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// serde's full message (lists the expected fields).
        message: String,
    },
    /// Malformed JSON, a missing field, a value of the wrong type, or an unparsable
    /// address. `message` is serde's, and ends with the position.
    #[error("genesis JSON: {message}")]
    Json {
        /// 1-based line of the error (0 if unknown).
        line: usize,
        /// 1-based column of the error (0 if unknown).
        column: usize,
        /// serde's message, including the position.
        message: String,
    },
    /// `chain_id` is empty.
    #[error("chain_id is empty")]
    EmptyChainId,
    /// `chain_id` is longer than [`cairn_ledger::CHAIN_ID_BYTES_MAX`] bytes.
    #[error("chain_id `{chain_id}` is {len} bytes, more than the limit of {max}")]
    ChainIdTooLong {
        /// The chain id (as given).
        chain_id: String,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// `chain_id` has a character outside `[a-z0-9-_.]`.
    #[error(
        "chain_id `{chain_id}` has invalid character {ch:?} at byte {position}; allowed: a-z 0-9 - _ ."
    )]
    ChainIdInvalidChar {
        /// The chain id.
        chain_id: String,
        /// The offending character.
        ch: char,
        /// Its byte offset.
        position: usize,
    },
    /// `validators` is empty.
    #[error("validators is empty: a chain needs at least one validator")]
    NoValidators,
    /// More validators than [`crate::VALIDATORS_MAX`].
    #[error("{count} validators, more than the limit of {max}")]
    TooManyValidators {
        /// Number of validators in the file.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A validator name is empty, too long or has a character outside `[A-Za-z0-9-_.]`.
    #[error("validators[{index}]: invalid name `{name}`: {reason}")]
    InvalidValidatorName {
        /// Index in `validators`.
        index: usize,
        /// The name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Two validators have the same name.
    #[error("validators[{index}]: name `{name}` already used by validators[{first}]")]
    DuplicateValidatorName {
        /// Index of the later validator.
        index: usize,
        /// Index of the first validator with that name.
        first: usize,
        /// The name.
        name: String,
    },
    /// Two validators have the same consensus key.
    #[error(
        "validators[{index}] ({name}): consensus_key {key} already used by validators[{first}]"
    )]
    DuplicateConsensusKey {
        /// Index of the later validator.
        index: usize,
        /// Index of the first validator with that key.
        first: usize,
        /// The later validator's name.
        name: String,
        /// The key.
        key: Address,
    },
    /// Two validators have the same libp2p peer id.
    #[error("validators[{index}] ({name}): peer_id {peer_id} already used by validators[{first}]")]
    DuplicatePeerId {
        /// Index of the later validator.
        index: usize,
        /// Index of the first validator with that peer id.
        first: usize,
        /// The later validator's name.
        name: String,
        /// The peer id.
        peer_id: String,
    },
    /// A validator has voting power 0.
    #[error("validators[{index}] ({name}): voting_power is 0")]
    ZeroVotingPower {
        /// Index in `validators`.
        index: usize,
        /// The validator's name.
        name: String,
    },
    /// The sum of voting powers does not fit in a u64.
    #[error("validators[{index}] ({name}): total voting power overflows u64")]
    VotingPowerOverflow {
        /// Index of the validator whose power made the sum overflow.
        index: usize,
        /// Its name.
        name: String,
    },
    /// A consensus key is not a valid ed25519 point, or is weak (small order).
    #[error("validators[{index}] ({name}): consensus_key {key} is not usable: {reason}")]
    BadConsensusKey {
        /// Index in `validators`.
        index: usize,
        /// The validator's name.
        name: String,
        /// The key as given.
        key: Address,
        /// Why it is refused.
        reason: String,
    },
    /// A peer id does not parse, or is not in canonical base58 form.
    #[error("validators[{index}] ({name}): invalid peer_id `{peer_id}`: {reason}")]
    BadPeerId {
        /// Index in `validators`.
        index: usize,
        /// The validator's name.
        name: String,
        /// The peer id as given.
        peer_id: String,
        /// The parser's message.
        reason: String,
    },
    /// The consensus crate refused the validator set (a rule not covered above).
    #[error("validator set refused by consensus: {reason}")]
    ValidatorSet {
        /// The consensus crate's message.
        reason: String,
    },
    /// Two accounts have the same address.
    #[error("accounts[{index}]: address {address} already funded by accounts[{first}]")]
    DuplicateAccount {
        /// Index of the later account.
        index: usize,
        /// Index of the first account with that address.
        first: usize,
        /// The address.
        address: Address,
    },
    /// An account has balance 0 (it would not exist in the state).
    #[error("accounts[{index}]: address {address} has balance 0")]
    ZeroBalance {
        /// Index in `accounts`.
        index: usize,
        /// The address.
        address: Address,
    },
    /// The sum of balances does not fit in a u64.
    #[error("accounts[{index}]: total balance overflows u64")]
    BalanceOverflow {
        /// Index of the account whose balance made the sum overflow.
        index: usize,
        /// Its address.
        address: Address,
    },
    /// `generated_accounts.count` is 0 or above [`crate::GENERATED_ACCOUNTS_MAX`].
    #[error("generated_accounts.count = {count} is out of range 1..={max}")]
    GeneratedAccountsCount {
        /// The count given.
        count: u64,
        /// The limit.
        max: u64,
    },
    /// `generated_accounts.balance` is 0.
    #[error("generated_accounts.balance is 0; each account needs at least 1 base unit")]
    GeneratedAccountsZeroBalance,
    /// `count × balance` of the generated accounts, plus the listed accounts' balances,
    /// does not fit in a u64.
    #[error(
        "generated_accounts: {count} accounts × {balance} base units (plus the listed accounts) overflows u64"
    )]
    GeneratedAccountsBalanceOverflow {
        /// The count given.
        count: u64,
        /// The balance given.
        balance: u64,
    },
    /// The `governance` section breaks a rule (members, threshold, ttl, a repeated
    /// `transact` account), or the genesis validators break a governance rule (a peer id
    /// that is not an ed25519 key's).
    #[error("governance: {reason}")]
    Governance {
        /// Which rule, with the values.
        reason: String,
    },
    /// A chain parameter is outside its allowed range.
    #[error("params.{field} = {value} is out of range {min}..={max}")]
    ParamOutOfRange {
        /// The parameter's field name in `params`.
        field: &'static str,
        /// The value given.
        value: u64,
        /// Smallest allowed value.
        min: u64,
        /// Largest allowed value.
        max: u64,
    },
}

impl From<cairn_ledger::params::ParamError> for GenesisError {
    fn from(e: cairn_ledger::params::ParamError) -> Self {
        GenesisError::ParamOutOfRange {
            field: e.field,
            value: e.value,
            min: e.min,
            max: e.max,
        }
    }
}
