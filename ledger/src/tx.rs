//! Transactions: body, signing digest, signature rule and hash.
//!
//! Wire format (exact bytes in `docs/wire-format.md`): a [`SignedTransaction`] is the borsh
//! encoding of its [`TransactionBody`] followed by the 64-byte ed25519 signature. Body
//! version 2 (signing context `"cairn transaction v2"`) carries an [`Action`]: a transfer,
//! or a governance propose or approve ([`crate::governance`]); version 1 carried only
//! transfers and is no longer accepted.
//!
//! - **Signing digest** = blake3 derive-key mode, context `"cairn transaction v2"`, over
//!   `borsh(body)`. The signature is ed25519 (RFC 8032) over those 32 bytes.
//! - **Transaction hash** = the signing digest. It does not cover the signature, so a
//!   transaction cannot be re-identified by mauling its signature.
//! - **Signature rule**: ZIP-215 (cofactored equation, canonical `S`) and a sender key that
//!   decodes and is not of small order; specified in [`crate::signature`]. Every component
//!   that accepts transactions uses [`SignedTransaction::verify`] or
//!   [`crate::verify_transactions`] (the batch path, same verdicts), so all nodes agree on
//!   validity.

use borsh::{BorshDeserialize, BorshSerialize};
use ed25519_dalek::{Signer, SigningKey};

use crate::governance::GovAction;
use crate::{Address, Hash, LedgerError, context};

/// Largest chain id, in bytes of UTF-8.
pub const CHAIN_ID_BYTES_MAX: usize = 32;

/// Largest encoded [`SignedTransaction`], in bytes. Checked before decoding.
///
/// A transfer with a 32-byte chain id encodes to 4 + 32 + 32 + 3 × 8 + 1 + 32 + 8 = 133
/// bytes; with the signature, 197. The largest governance action, a member list of
/// [`crate::governance::MEMBERS_MAX`] = 24 accounts, encodes to about 900 bytes; 1024 leaves
/// headroom without admitting garbage.
pub const TX_BYTES_MAX: usize = 1024;

/// The signed content of a transaction (body version 2).
///
/// Borsh: `chain_id` (u32 length + UTF-8), `sender` (32), `fee`, `nonce`, `expiry_height`
/// (u64 LE each), then the [`Action`] (one tag byte and its fields).
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
    /// Base units paid to the block's proposer.
    pub fee: u64,
    /// Must equal the sender's account nonce when executed; the nonce then increments.
    pub nonce: u64,
    /// Last block height at which the transaction may be included (inclusive).
    pub expiry_height: u64,
    /// What the transaction does.
    pub action: Action,
}

/// What a transaction does.
///
/// Borsh: a one-byte tag (0 transfer, 1 propose, 2 approve) then the variant's fields.
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
pub enum Action {
    /// Moves `amount` base units from the sender to `recipient` (tag 0).
    Transfer {
        /// Receiving account (created on first credit).
        recipient: Address,
        /// Base units moved.
        amount: u64,
    },
    /// Opens a governance proposal; the sender must be a governance member (tag 1).
    Propose(GovAction),
    /// Approves open governance proposal `proposal_id`; the sender must be a governance
    /// member (tag 2).
    Approve {
        /// The proposal's id.
        proposal_id: u64,
    },
}

impl Action {
    /// The action's kind: `"transfer"`, `"propose"` or `"approve"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Transfer { .. } => "transfer",
            Action::Propose(_) => "propose",
            Action::Approve { .. } => "approve",
        }
    }
}

impl TransactionBody {
    /// A transfer body.
    pub fn transfer(
        chain_id: impl Into<String>,
        sender: Address,
        recipient: Address,
        amount: u64,
        fee: u64,
        nonce: u64,
        expiry_height: u64,
    ) -> TransactionBody {
        TransactionBody {
            chain_id: chain_id.into(),
            sender,
            fee,
            nonce,
            expiry_height,
            action: Action::Transfer { recipient, amount },
        }
    }

    /// The transfer's recipient, if the action is a transfer.
    pub fn recipient(&self) -> Option<Address> {
        match self.action {
            Action::Transfer { recipient, .. } => Some(recipient),
            _ => None,
        }
    }

    /// The accounts executing this transaction reads and writes: the sender, then the
    /// recipient of a transfer (one or two addresses, possibly equal). The block's proposer,
    /// credited the fees, is the block's; governance actions touch other state too
    /// (permissions, the governance record), not other accounts.
    pub fn touched_accounts(&self) -> impl Iterator<Item = Address> {
        std::iter::once(self.sender).chain(self.recipient())
    }

    /// Base units moved to the recipient (0 unless the action is a transfer).
    pub fn amount(&self) -> u64 {
        match self.action {
            Action::Transfer { amount, .. } => amount,
            _ => 0,
        }
    }

    /// What the sender pays if the transaction executes: amount plus fee, in u128 so it
    /// cannot overflow.
    pub fn spend(&self) -> u128 {
        u128::from(self.amount()) + u128::from(self.fee)
    }

    /// The signing digest, which is also the transaction hash: blake3 derive-key mode,
    /// context [`context::TRANSACTION`], over `borsh(self)`.
    ///
    /// On every hot path (mempool, gossip, blocks, execution), so it encodes into a stack
    /// buffer (no allocation) and reuses the context key, hashed once per process
    /// (`blake3::hazmat`); the result equals `Hash::derive(context::TRANSACTION, borsh)`.
    pub fn hash(&self) -> Hash {
        static CONTEXT_KEY: std::sync::OnceLock<blake3::hazmat::ContextKey> =
            std::sync::OnceLock::new();
        #[cfg(feature = "count-hashes")]
        hash_counts::bump(|c| c.ids += 1);
        derive_borsh(&CONTEXT_KEY, context::TRANSACTION, self)
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

/// blake3 derive-key mode with `context` over `borsh(value)`, equal to
/// `Hash::derive(context, &[&borsh(value)])`.
///
/// On every hot path (mempool, gossip, blocks, execution), so it encodes into a stack
/// buffer (no allocation) and reuses the context key, hashed once per process
/// (`blake3::hazmat`, cached in `key`). One `update` over a stack buffer beats many small
/// ones (measured ~15%); a value too long for it (only possible before size checks)
/// streams instead.
fn derive_borsh<T: BorshSerialize>(
    key: &std::sync::OnceLock<blake3::hazmat::ContextKey>,
    context: &str,
    value: &T,
) -> Hash {
    use blake3::hazmat::HasherExt;
    let key = key.get_or_init(|| blake3::hazmat::hash_derive_key_context(context));
    let mut hasher = blake3::Hasher::new_from_context_key(key);
    let mut buf = [0u8; TX_BYTES_MAX];
    let mut w = &mut buf[..];
    if BorshSerialize::serialize(value, &mut w).is_ok() {
        let len = TX_BYTES_MAX - w.len();
        hasher.update(&buf[..len]);
    } else {
        hasher = blake3::Hasher::new_from_context_key(key);
        BorshSerialize::serialize(value, &mut hasher).expect("writing to a hasher never fails");
    }
    Hash(*hasher.finalize().as_bytes())
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
    /// The transaction hash (= signing digest of the body): the transaction's id, the same
    /// for every signature over the body.
    pub fn hash(&self) -> Hash {
        self.body.hash()
    }

    /// The signed-transaction hash: blake3 derive-key mode, context
    /// [`context::SIGNED_TRANSACTION`], over the whole wire encoding (`borsh(self)`: body
    /// and signature). Two copies of one transaction with different signature bytes have
    /// the same [`Self::hash`] but different signed hashes; the block header's
    /// `signed_txs_root` is built from these, so it commits to every byte of the body
    /// (the role of Bitcoin's witness commitment, BIP 141).
    pub fn signed_hash(&self) -> Hash {
        static CONTEXT_KEY: std::sync::OnceLock<blake3::hazmat::ContextKey> =
            std::sync::OnceLock::new();
        #[cfg(feature = "count-hashes")]
        hash_counts::bump(|c| c.signed += 1);
        derive_borsh(&CONTEXT_KEY, context::SIGNED_TRANSACTION, self)
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
    /// signature under the ledger's rule ([`crate::signature`]). Costs one signature
    /// verification; [`crate::verify_transactions`] checks many at about a third of the cost.
    pub fn verify(&self, chain_id: &str) -> Result<(), LedgerError> {
        self.check_stateless_fields(chain_id)?;
        crate::verify_signature(self)
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

/// Counts of the blake3 hashes of transactions computed on the calling thread (test
/// instrumentation, cargo feature `count-hashes`; never in a normal build): how many times
/// a transaction is hashed on its way through a node.
#[cfg(feature = "count-hashes")]
pub mod hash_counts {
    use std::cell::Cell;

    /// Hashes of transactions computed on one thread since its last [`reset`].
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct TxHashCounts {
        /// [`super::TransactionBody::hash`] (the id, which is also the signing digest).
        pub ids: u64,
        /// [`super::SignedTransaction::signed_hash`].
        pub signed: u64,
    }

    thread_local! {
        static COUNTS: Cell<TxHashCounts> = const { Cell::new(TxHashCounts { ids: 0, signed: 0 }) };
    }

    pub(crate) fn bump(f: impl FnOnce(&mut TxHashCounts)) {
        COUNTS.with(|c| {
            let mut v = c.get();
            f(&mut v);
            c.set(v);
        });
    }

    /// This thread's counts since the last [`reset`].
    pub fn get() -> TxHashCounts {
        COUNTS.with(Cell::get)
    }

    /// Sets this thread's counts to zero.
    pub fn reset() {
        COUNTS.with(|c| c.set(TxHashCounts::default()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The streamed, cached-context hashes (id and signed hash) equal the plain
        /// derive-key definitions.
        #[test]
        fn hash_equals_the_derive_key_definition(
            // Up to 300 bytes: past the stack buffer, to cover the streaming fallback.
            chain_id in "[a-z0-9-]{0,300}",
            sender: [u8; 32],
            recipient: [u8; 32],
            amount: u64,
            fee: u64,
            nonce: u64,
            expiry_height: u64,
        ) {
            let body = TransactionBody {
                chain_id,
                sender: Address(sender),
                fee,
                nonce,
                expiry_height,
                action: crate::Action::Transfer { recipient: Address(recipient), amount },
            };
            let bytes = borsh::to_vec(&body).unwrap();
            proptest::prop_assert_eq!(body.hash(), Hash::derive(context::TRANSACTION, &[&bytes]));
            let signed = SignedTransaction { body, signature: [7u8; 64] };
            let signed_bytes = borsh::to_vec(&signed).unwrap();
            proptest::prop_assert_eq!(
                signed.signed_hash(),
                Hash::derive(context::SIGNED_TRANSACTION, &[&signed_bytes])
            );
        }
    }

    #[test]
    fn a_transfer_touches_its_sender_and_recipient_a_vote_only_its_sender() {
        let mut body =
            TransactionBody::transfer("t", Address([1; 32]), Address([2; 32]), 5, 1, 0, 0);
        let touched: Vec<Address> = body.touched_accounts().collect();
        assert_eq!(touched, vec![Address([1; 32]), Address([2; 32])]);
        body.action = crate::Action::Approve { proposal_id: 3 };
        let touched: Vec<Address> = body.touched_accounts().collect();
        assert_eq!(touched, vec![Address([1; 32])]);
    }
}
