//! Chain parameters: consensus timeouts, block limits, mempool limits and peer admission.
//!
//! They start in the genesis file (`cairn-genesis` parses them) and live in the chain's
//! governance state afterwards ([`crate::governance`]), where a governance proposal may
//! change them on a live chain; both paths check the same ranges ([`ChainParams::validate`]).

use borsh::{BorshDeserialize, BorshSerialize};

/// Chain-wide parameters every node must agree on (they are part of the genesis hash).
///
/// Every field has a serde default ([`ChainParams::default`]), so `params` may be omitted
/// or partial in `genesis.json`; unknown fields are errors. Ranges are checked by
/// [`ChainParams::validate`] and listed on each field (all bounds inclusive).
#[derive(
    Clone,
    Debug,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    BorshSerialize,
    BorshDeserialize,
)]
#[serde(deny_unknown_fields, default)]
pub struct ChainParams {
    /// How long a validator waits for the view leader's proposal before voting to nullify
    /// the view, in ms. Range 1..=600_000 and at most `notarization_timeout_ms`.
    /// Default 1000.
    pub leader_timeout_ms: u64,
    /// How long a validator waits for a view to be notarized before voting to nullify it,
    /// in ms. Range 1..=600_000. Default 2000.
    pub notarization_timeout_ms: u64,
    /// Interval at which nullify votes are re-broadcast while a view is stuck, in ms.
    /// Range 1..=600_000. Default 1000.
    pub nullify_retry_ms: u64,
    /// Most transactions in one block. Range 1..=1_000_000. Default 10_000.
    pub block_txs_max: u64,
    /// Most bytes of one encoded block (header and transactions). Range 1 KiB..=64 MiB.
    /// Default 4 MiB.
    pub block_bytes_max: u64,
    /// Least time between a block's timestamp and the proposal of its child, in ms; 0
    /// proposes as soon as the parent is notarized. Range 0..`leader_timeout_ms` (a leader
    /// waiting longer would time out its own view). Default 0.
    pub block_interval_ms: u64,
    /// Most transactions held in a node's mempool. Range 1..=10_000_000. Default 100_000.
    /// (A node takes submissions from its RPC clients up to 75% of this and of
    /// `mempool_bytes_max`; gossip from other validators may fill the rest.)
    pub mempool_txs_max: u64,
    /// Most bytes (sum of encoded transactions) held in a node's mempool.
    /// Range 1 KiB..=4 GiB. Default 32 MiB.
    pub mempool_bytes_max: u64,
    /// How far ahead of its account nonce a sender's pooled transaction may be: a
    /// transaction is admitted only if `nonce <= account_nonce + mempool_sender_future_max`.
    /// Range 1..=4096. Default 64.
    pub mempool_sender_future_max: u64,
    /// Proof-of-work bits a non-validator peer's identity must carry to be admitted to
    /// the p2p mesh (see the node's `docs/admission.md`); 0 disables admission.
    /// Range 0..=32. Default 0.
    pub admission_difficulty_bits: u8,
}

/// Longest timeout any `*_ms` parameter may have (10 minutes).
pub const TIMEOUT_MS_MAX: u64 = 600_000;
/// Smallest allowed `block_bytes_max` (1 KiB).
pub const BLOCK_BYTES_MIN: u64 = 1024;
/// Largest allowed `block_bytes_max` (64 MiB).
pub const BLOCK_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// Largest allowed `block_txs_max`.
pub const BLOCK_TXS_MAX: u64 = 1_000_000;
/// Largest allowed `mempool_txs_max`.
pub const MEMPOOL_TXS_MAX: u64 = 10_000_000;
/// Smallest allowed `mempool_bytes_max` (1 KiB).
pub const MEMPOOL_BYTES_MIN: u64 = 1024;
/// Largest allowed `mempool_bytes_max` (4 GiB).
pub const MEMPOOL_BYTES_MAX: u64 = 4 * 1024 * 1024 * 1024;
/// Largest allowed `mempool_sender_future_max`.
pub const MEMPOOL_SENDER_FUTURE_MAX: u64 = 4096;
/// Largest allowed `admission_difficulty_bits`.
pub const ADMISSION_DIFFICULTY_BITS_MAX: u8 = 32;

impl Default for ChainParams {
    fn default() -> Self {
        ChainParams {
            leader_timeout_ms: 1000,
            notarization_timeout_ms: 2000,
            nullify_retry_ms: 1000,
            block_txs_max: 10_000,
            block_bytes_max: 4 * 1024 * 1024,
            block_interval_ms: 0,
            mempool_txs_max: 100_000,
            mempool_bytes_max: 32 * 1024 * 1024,
            mempool_sender_future_max: 64,
            admission_difficulty_bits: 0,
        }
    }
}

impl ChainParams {
    /// Checks every field against its range (see the field docs).
    ///
    /// Errors: [`ParamError`] naming the first field out of range, in declaration order.
    pub fn validate(&self) -> Result<(), ParamError> {
        fn range(field: &'static str, value: u64, min: u64, max: u64) -> Result<(), ParamError> {
            if value < min || value > max {
                return Err(ParamError {
                    field,
                    value,
                    min,
                    max,
                });
            }
            Ok(())
        }
        range(
            "leader_timeout_ms",
            self.leader_timeout_ms,
            1,
            TIMEOUT_MS_MAX,
        )?;
        range(
            "notarization_timeout_ms",
            self.notarization_timeout_ms,
            1,
            TIMEOUT_MS_MAX,
        )?;
        range("nullify_retry_ms", self.nullify_retry_ms, 1, TIMEOUT_MS_MAX)?;
        // Consensus waits for the proposal no longer than for the notarization (its own
        // config check): a governed change breaking this would stop every node applying it.
        range(
            "leader_timeout_ms",
            self.leader_timeout_ms,
            1,
            self.notarization_timeout_ms,
        )?;
        range("block_txs_max", self.block_txs_max, 1, BLOCK_TXS_MAX)?;
        range(
            "block_bytes_max",
            self.block_bytes_max,
            BLOCK_BYTES_MIN,
            BLOCK_BYTES_MAX,
        )?;
        // A leader waiting out the interval must still propose before its view times out.
        range(
            "block_interval_ms",
            self.block_interval_ms,
            0,
            self.leader_timeout_ms.saturating_sub(1).min(TIMEOUT_MS_MAX),
        )?;
        range("mempool_txs_max", self.mempool_txs_max, 1, MEMPOOL_TXS_MAX)?;
        range(
            "mempool_bytes_max",
            self.mempool_bytes_max,
            MEMPOOL_BYTES_MIN,
            MEMPOOL_BYTES_MAX,
        )?;
        range(
            "mempool_sender_future_max",
            self.mempool_sender_future_max,
            1,
            MEMPOOL_SENDER_FUTURE_MAX,
        )?;
        range(
            "admission_difficulty_bits",
            u64::from(self.admission_difficulty_bits),
            0,
            u64::from(ADMISSION_DIFFICULTY_BITS_MAX),
        )?;
        Ok(())
    }
}

/// A chain parameter outside its allowed range (from [`ChainParams::validate`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("params.{field} = {value} is out of range {min}..={max}")]
pub struct ParamError {
    /// The parameter's field name in `params`.
    pub field: &'static str,
    /// The value given.
    pub value: u64,
    /// Smallest allowed value.
    pub min: u64,
    /// Largest allowed value.
    pub max: u64,
}
