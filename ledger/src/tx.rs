//! Transfer transactions: body, signing digest, signature rule and hash.
//!
//! Wire format (exact bytes in `docs/wire-format.md`): a [`SignedTransaction`] is the borsh
//! encoding of its [`TransactionBody`] followed by the 64-byte ed25519 signature.
//!
//! - **Signing digest** = blake3 derive-key mode, context `"cairn transaction v1"`, over
//!   `borsh(body)`. The signature is ed25519 (RFC 8032) over those 32 bytes.
//! - **Transaction hash** = the signing digest. It does not cover the signature, so a
//!   transaction cannot be re-identified by mauling its signature.
//! - **Signature rule**: `ed25519_dalek::VerifyingKey::verify_strict` everywhere (rejects
//!   non-canonical and small-order `R` and public keys, cofactorless equation). Every
//!   component that accepts transactions uses [`SignedTransaction::verify`], so all nodes
//!   agree on validity.

use borsh::{BorshDeserialize, BorshSerialize};
use ed25519_dalek::{Signer, SigningKey};

use crate::{Address, Hash, LedgerError, context};

/// Largest chain id, in bytes of UTF-8.
pub const CHAIN_ID_BYTES_MAX: usize = 32;

/// Largest encoded [`SignedTransaction`], in bytes. Checked before decoding.
///
/// A body with a 32-byte chain id encodes to 4 + 32 + 32 + 32 + 4 × 8 = 132 bytes; with
/// the signature, 196. 256 leaves headroom without admitting garbage.
pub const TX_BYTES_MAX: usize = 256;

/// The signed content of a transfer.
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
pub struct TransactionBody {
    /// Chain id from genesis; a transaction for another chain is invalid.
    pub chain_id: String,
    /// Paying account; must be the signer.
    pub sender: Address,
    /// Receiving account (created on first credit).
    pub recipient: Address,
    /// Base units moved from sender to recipient.
    pub amount: u64,
    /// Base units paid to the block's proposer.
    pub fee: u64,
    /// Must equal the sender's account nonce when executed; the nonce then increments.
    pub nonce: u64,
    /// Last block height at which the transaction may be included (inclusive).
    pub expiry_height: u64,
}

impl TransactionBody {
    /// The signing digest, which is also the transaction hash.
    pub fn hash(&self) -> Hash {
        let bytes = borsh::to_vec(self).expect("borsh to Vec never fails");
        Hash::derive(context::TRANSACTION, &[&bytes])
    }

    /// Signs this body with `key`. The sender field is not changed: callers set it to the
    /// key's address (verification fails otherwise).
    pub fn sign(self, key: &SigningKey) -> SignedTransaction {
        let digest = self.hash();
        let signature = key.sign(digest.as_bytes()).to_bytes();
        SignedTransaction {
            body: self,
            signature,
        }
    }
}

/// A transfer with its ed25519 signature.
#[derive(Clone, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize)]
pub struct SignedTransaction {
    /// What was signed.
    pub body: TransactionBody,
    /// RFC 8032 signature by `body.sender` over `body.hash()`.
    pub signature: [u8; 64],
}

impl SignedTransaction {
    /// The transaction hash (= signing digest of the body).
    pub fn hash(&self) -> Hash {
        self.body.hash()
    }

    /// Encodes to the wire format (at most [`TX_BYTES_MAX`] bytes for a valid chain id).
    pub fn encode(&self) -> Vec<u8> {
        borsh::to_vec(self).expect("borsh to Vec never fails")
    }

    /// Decodes the wire format. The length is checked against [`TX_BYTES_MAX`] before any
    /// decoding; trailing bytes are an error.
    pub fn decode(bytes: &[u8]) -> Result<SignedTransaction, LedgerError> {
        if bytes.len() > TX_BYTES_MAX {
            return Err(LedgerError::Oversize {
                what: "transaction",
                len: bytes.len(),
                max: TX_BYTES_MAX,
            });
        }
        borsh::from_slice(bytes).map_err(|e| LedgerError::Malformed {
            what: "transaction",
            reason: e.to_string(),
        })
    }

    /// Checks what can be checked without state: chain id, size of the chain id, and the
    /// signature under the one rule (`verify_strict`). Costs one signature verification.
    pub fn verify(&self, chain_id: &str) -> Result<(), LedgerError> {
        self.check_stateless_fields(chain_id)?;
        let key = self
            .body
            .sender
            .public_key()
            .map_err(|_| LedgerError::BadSignature { tx: self.hash() })?;
        let sig = ed25519_dalek::Signature::from_bytes(&self.signature);
        key.verify_strict(self.hash().as_bytes(), &sig)
            .map_err(|_| LedgerError::BadSignature { tx: self.hash() })
    }

    /// The cheap stateless checks of [`Self::verify`], without the signature.
    pub fn check_stateless_fields(&self, chain_id: &str) -> Result<(), LedgerError> {
        if self.body.chain_id.len() > CHAIN_ID_BYTES_MAX {
            return Err(LedgerError::Malformed {
                what: "transaction",
                reason: "chain id longer than 32 bytes".into(),
            });
        }
        if self.body.chain_id != chain_id {
            return Err(LedgerError::WrongChain {
                tx: self.hash(),
                expected: chain_id.to_string(),
                got: self.body.chain_id.clone(),
            });
        }
        Ok(())
    }
}

/// The full stateless check ([`SignedTransaction::verify`]: fields, chain id, `verify_strict`
/// signature) of any number of transactions; one result per transaction, in order.
///
/// One `verify_strict` per transaction: [`crate::verify_batch`] gives the same verdicts but,
/// measured on this project's reference machine, costs about twice as much, because keeping
/// batch verdicts identical to `verify_strict` needs a subgroup check per signature (see
/// `docs/benchmarks.md`, `ledger::tx_verify`). Callers run this off latency-sensitive tasks.
pub fn verify_transactions(
    txs: &[SignedTransaction],
    chain_id: &str,
) -> Vec<Result<(), LedgerError>> {
    txs.iter().map(|t| t.verify(chain_id)).collect()
}
