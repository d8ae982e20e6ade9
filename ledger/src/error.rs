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
    BadHex {
        /// What the hex decoder reported.
        reason: String,
    },
    /// A fixed-size value had the wrong length.
    #[error("{what} must be {expected} bytes, got {got}")]
    BadLength {
        /// Which value (`"hash"`, `"lthash"`, ...).
        what: &'static str,
        /// Required length in bytes.
        expected: usize,
        /// Length given, in bytes.
        got: usize,
    },
    /// Address text failed to parse.
    #[error("invalid address `{input}`: {reason}")]
    BadAddress {
        /// The input (first 100 characters).
        input: String,
        /// Bad checksum or encoding, wrong prefix, wrong length.
        reason: String,
    },
    /// The address is not a valid ed25519 public key.
    #[error("address {address} is not a valid ed25519 public key")]
    BadPublicKey {
        /// The offending address.
        address: Address,
    },
    /// Encoded input longer than its bound (checked before decoding).
    #[error("{what} is {len} bytes, more than the limit of {max}")]
    Oversize {
        /// `"transaction"` or `"block"`.
        what: &'static str,
        /// Length given, in bytes.
        len: usize,
        /// The bound, in bytes.
        max: usize,
    },
    /// Bytes that do not decode (truncated, trailing bytes, invalid UTF-8, bad field).
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// `"transaction"` or `"block"`.
        what: &'static str,
        /// What the decoder reported.
        reason: String,
    },
    /// Signature invalid under the ledger's rule (`signature` module: ZIP-215, sender key
    /// decodable and not of small order).
    #[error("transaction {tx}: bad signature")]
    BadSignature {
        /// The transaction hash.
        tx: Hash,
    },
    /// Transaction for another chain.
    #[error("transaction {tx}: chain id `{got}`, expected `{expected}`")]
    WrongChain {
        /// The transaction hash.
        tx: Hash,
        /// This chain's id.
        expected: String,
        /// The transaction's chain id.
        got: String,
    },
    /// Nonce below the account's nonce (already used).
    #[error("transaction {tx}: nonce {got} already used (account nonce is {expected})")]
    StaleNonce {
        /// The transaction hash.
        tx: Hash,
        /// The sender's current nonce.
        expected: u64,
        /// The transaction's nonce.
        got: u64,
    },
    /// Nonce above the account's nonce (a gap).
    #[error("transaction {tx}: nonce {got} is ahead of account nonce {expected}")]
    FutureNonce {
        /// The transaction hash.
        tx: Hash,
        /// The sender's current nonce.
        expected: u64,
        /// The transaction's nonce.
        got: u64,
    },
    /// amount + fee exceeds the sender's balance (computed in u128, so no overflow).
    #[error("transaction {tx}: amount + fee = {needed} exceeds balance {balance}")]
    InsufficientBalance {
        /// The transaction hash.
        tx: Hash,
        /// The sender's balance, base units.
        balance: u64,
        /// amount + fee, base units.
        needed: u128,
    },
    /// Crediting would overflow a u64 balance.
    #[error("transaction {tx}: balance overflow crediting {address}")]
    BalanceOverflow {
        /// The transaction hash.
        tx: Hash,
        /// The account (recipient or proposer) whose balance would overflow.
        address: Address,
    },
    /// The sender's nonce is `u64::MAX` and cannot be incremented (only reachable through a
    /// genesis account with that nonce); the account can never send again.
    #[error("transaction {tx}: nonce of {address} is exhausted")]
    NonceExhausted {
        /// The transaction hash.
        tx: Hash,
        /// The sender.
        address: Address,
    },
    /// expiry_height below the block height.
    #[error("transaction {tx}: expired at height {expiry_height}, block height is {height}")]
    Expired {
        /// The transaction hash.
        tx: Hash,
        /// The transaction's last valid height.
        expiry_height: u64,
        /// The height of the block it was executed in.
        height: u64,
    },
    /// Under the `permissioned` accounts policy, the sender of a transfer does not hold the
    /// `transact` permission.
    #[error("transaction {tx}: {address} may not send transfers (no `transact` permission)")]
    NotPermitted {
        /// The transaction hash.
        tx: Hash,
        /// The sender.
        address: Address,
    },
    /// A governance transaction (propose or approve) was refused by the governance rules;
    /// `error` names the rule ([`crate::governance::GovernanceError::code`]).
    #[error("transaction {tx}: {error}")]
    Governance {
        /// The transaction hash.
        tx: Hash,
        /// Why the governance rules refused it (boxed: it is large and rare, and every
        /// `Result` of the ledger carries this enum).
        error: Box<crate::governance::GovernanceError>,
    },
    /// A block failed validation (header fields, limits, roots, genesis rules).
    #[error("invalid block {block} at height {height}: {reason}")]
    InvalidBlock {
        /// The block hash ([`Hash::ZERO`] when there is no block, e.g. a missing height).
        block: Hash,
        /// The block's height.
        height: u64,
        /// Which check failed, with the values.
        reason: String,
    },
    /// A block body is not the one its header commits to (`txs_root` or `signed_txs_root`
    /// differs). This says nothing about the proposal the header belongs to: it is the fault
    /// of whoever sent this copy (a relay, a sync server), and a correct copy may exist.
    #[error("block {block}: body does not match its header: {reason}")]
    BodyMismatch {
        /// The block (header) hash.
        block: Hash,
        /// Which root differs, with both values.
        reason: String,
    },
    /// A block is invalid because its transaction number `index` (0-based) is; `error` says
    /// why (any transaction-level variant, e.g. `StaleNonce` or `BadSignature`).
    #[error("invalid block {block} at height {height}: transaction {index}: {error}")]
    InvalidBlockTx {
        /// The block hash.
        block: Hash,
        /// The block's height.
        height: u64,
        /// 0-based position of the first invalid transaction.
        index: usize,
        /// Why that transaction is invalid (never a fatal error).
        error: Box<LedgerError>,
    },
    /// The database belongs to another chain (or a different genesis block is stored).
    #[error("database was created for genesis {found}, this node runs genesis {expected}")]
    GenesisMismatch {
        /// The genesis (file or block) hash this node runs.
        expected: Hash,
        /// The one the database holds.
        found: Hash,
    },
    /// RocksDB or I/O failure. Fatal.
    #[error("storage failure: {reason}")]
    Storage {
        /// RocksDB's message.
        reason: String,
    },
    /// A [`crate::StoreOptions`] field is out of its stated bound (an operator's
    /// configuration error: nothing was opened).
    #[error("invalid store option `{field}`: {reason}")]
    InvalidOptions {
        /// The field, e.g. `block_cache_bytes`.
        field: &'static str,
        /// The value and the bound it breaks.
        reason: String,
    },
    /// Stored data does not decode or breaks an invariant. Fatal.
    #[error("corrupt database: {reason}")]
    Corrupt {
        /// What is corrupt and how.
        reason: String,
    },
}

impl LedgerError {
    /// The input is invalid regardless of state (a peer that sent it is at fault).
    ///
    /// Block-level errors ([`Self::InvalidBlock`], [`Self::InvalidBlockTx`]) are not
    /// stateless: they are judged against a parent block and state.
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
            LedgerError::NotPermitted { .. } => "not_permitted",
            LedgerError::Governance { error, .. } => error.code(),
            LedgerError::InvalidBlock { .. } => "invalid_block",
            LedgerError::BodyMismatch { .. } => "body_mismatch",
            LedgerError::InvalidBlockTx { .. } => "invalid_block_tx",
            LedgerError::GenesisMismatch { .. } => "genesis_mismatch",
            LedgerError::InvalidOptions { .. } => "invalid_options",
            LedgerError::Storage { .. } => "storage",
            LedgerError::Corrupt { .. } => "corrupt",
        }
    }
}
