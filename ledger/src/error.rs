//! Ledger errors.

use crate::{Address, Hash};

/// Every way the ledger refuses input or fails.
///
/// Classes: a *peer's fault* (the input itself is invalid everywhere: [`Self::is_stateless`]),
/// a *state-dependent* rejection (valid elsewhere or later: stale nonce, balance), and a
/// *fatal* storage failure ([`Self::is_fatal`]), after which the node must stop rather than
/// risk diverging.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum LedgerError {
    /// Input was not valid hex.
    #[error("invalid hex: {reason}")]
    BadHex { reason: String },
    /// A fixed-size value had the wrong length.
    #[error("{what} must be {expected} bytes, got {got}")]
    BadLength {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    /// Address text failed to parse.
    #[error("invalid address `{input}`: {reason}")]
    BadAddress { input: String, reason: String },
    /// The address is not a valid ed25519 public key.
    #[error("address {address} is not a valid ed25519 public key")]
    BadPublicKey { address: Address },
    /// Encoded input longer than its bound.
    #[error("{what} is {len} bytes, more than the limit of {max}")]
    Oversize {
        what: &'static str,
        len: usize,
        max: usize,
    },
    /// Bytes that do not decode.
    #[error("malformed {what}: {reason}")]
    Malformed { what: &'static str, reason: String },
    /// Signature does not verify under `verify_strict`.
    #[error("transaction {tx}: bad signature")]
    BadSignature { tx: Hash },
    /// Transaction or block for another chain.
    #[error("transaction {tx}: chain id `{got}`, expected `{expected}`")]
    WrongChain {
        tx: Hash,
        expected: String,
        got: String,
    },
    /// Nonce below the account's nonce (already used).
    #[error("transaction {tx}: nonce {got} already used (account nonce is {expected})")]
    StaleNonce { tx: Hash, expected: u64, got: u64 },
    /// Nonce above the account's nonce (a gap).
    #[error("transaction {tx}: nonce {got} is ahead of account nonce {expected}")]
    FutureNonce { tx: Hash, expected: u64, got: u64 },
    /// amount + fee exceeds the sender's balance (or overflows u64).
    #[error("transaction {tx}: amount + fee = {needed} exceeds balance {balance}")]
    InsufficientBalance {
        tx: Hash,
        balance: u64,
        needed: u128,
    },
    /// Crediting would overflow a u64 balance.
    #[error("transaction {tx}: balance overflow crediting {address}")]
    BalanceOverflow { tx: Hash, address: Address },
    /// The sender's nonce is `u64::MAX` and cannot be incremented (only reachable through a
    /// genesis account with that nonce); the account can never send again.
    #[error("transaction {tx}: nonce of {address} is exhausted")]
    NonceExhausted { tx: Hash, address: Address },
    /// expiry_height below the block height.
    #[error("transaction {tx}: expired at height {expiry_height}, block height is {height}")]
    Expired {
        tx: Hash,
        expiry_height: u64,
        height: u64,
    },
    /// A block failed validation (header, limits, roots).
    #[error("invalid block {block} at height {height}: {reason}")]
    InvalidBlock {
        block: Hash,
        height: u64,
        reason: String,
    },
    /// A block is invalid because its transaction number `index` (0-based) is; `error` says
    /// why (any transaction-level variant, e.g. `StaleNonce` or `BadSignature`).
    #[error("invalid block {block} at height {height}: transaction {index}: {error}")]
    InvalidBlockTx {
        block: Hash,
        height: u64,
        index: usize,
        error: Box<LedgerError>,
    },
    /// The database belongs to another chain.
    #[error("database was created for genesis {found}, this node runs genesis {expected}")]
    GenesisMismatch { expected: Hash, found: Hash },
    /// RocksDB or I/O failure. Fatal.
    #[error("storage failure: {reason}")]
    Storage { reason: String },
    /// Stored data does not decode or breaks an invariant. Fatal.
    #[error("corrupt database: {reason}")]
    Corrupt { reason: String },
}

impl LedgerError {
    /// The input is invalid regardless of state (a peer that sent it is at fault).
    pub fn is_stateless(&self) -> bool {
        matches!(
            self,
            LedgerError::BadHex { .. }
                | LedgerError::BadLength { .. }
                | LedgerError::BadAddress { .. }
                | LedgerError::BadPublicKey { .. }
                | LedgerError::Oversize { .. }
                | LedgerError::Malformed { .. }
                | LedgerError::BadSignature { .. }
                | LedgerError::WrongChain { .. }
        )
    }

    /// Storage is broken: the node must stop.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            LedgerError::Storage { .. } | LedgerError::Corrupt { .. }
        )
    }

    /// Short stable code for RPC and metrics (`bad_signature`, `stale_nonce`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            LedgerError::BadHex { .. } => "bad_hex",
            LedgerError::BadLength { .. } => "bad_length",
            LedgerError::BadAddress { .. } => "bad_address",
            LedgerError::BadPublicKey { .. } => "bad_public_key",
            LedgerError::Oversize { .. } => "oversize",
            LedgerError::Malformed { .. } => "malformed",
            LedgerError::BadSignature { .. } => "bad_signature",
            LedgerError::WrongChain { .. } => "wrong_chain",
            LedgerError::StaleNonce { .. } => "stale_nonce",
            LedgerError::FutureNonce { .. } => "future_nonce",
            LedgerError::InsufficientBalance { .. } => "insufficient_balance",
            LedgerError::BalanceOverflow { .. } => "balance_overflow",
            LedgerError::NonceExhausted { .. } => "nonce_exhausted",
            LedgerError::Expired { .. } => "expired",
            LedgerError::InvalidBlock { .. } => "invalid_block",
            LedgerError::InvalidBlockTx { .. } => "invalid_block_tx",
            LedgerError::GenesisMismatch { .. } => "genesis_mismatch",
            LedgerError::Storage { .. } => "storage",
            LedgerError::Corrupt { .. } => "corrupt",
        }
    }
}
