//! Transactions with their hashes computed once: [`HashedTx`] (id computed, signature not
//! checked) and [`VerifiedTx`] (signature checked by this node, id and signed hash carried).
//!
//! A transaction is hashed when it enters a node (RPC decode, gossip batch decode) and its
//! signature is checked once ([`verify_hashed`]); from then on the node passes a
//! [`VerifiedTx`] around (mempool, proposal building, [`crate::SealedBlock::assemble`],
//! [`crate::Store::commit_sealed`]) and never hashes the transaction again.

use crate::{Hash, LedgerError, SignedTransaction};

/// A transaction and its id ([`SignedTransaction::hash`]), computed once by
/// [`HashedTx::new`]. Its signature is not checked.
///
/// Invariant: `id == tx.hash()`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashedTx {
    tx: SignedTransaction,
    id: Hash,
}

impl HashedTx {
    /// Hashes `tx` (one blake3 hash of its body).
    pub fn new(tx: SignedTransaction) -> HashedTx {
        let id = tx.hash();
        HashedTx { tx, id }
    }

    /// Pairs `tx` with an id known to be its own (a sealed block's ids, which
    /// [`crate::SealedBlock`]'s invariant guarantees). Crate-internal, so the invariant
    /// holds by construction (not re-checked: that would hash again).
    pub(crate) fn with_id(tx: SignedTransaction, id: Hash) -> HashedTx {
        HashedTx { tx, id }
    }

    /// The transaction.
    pub fn tx(&self) -> &SignedTransaction {
        &self.tx
    }

    /// Its id (computed once).
    pub fn id(&self) -> Hash {
        self.id
    }

    /// The transaction, without its id.
    pub fn into_tx(self) -> SignedTransaction {
        self.tx
    }
}

/// A transaction whose stateless checks (chain id, signature under the ledger's rule) this
/// node made, with its id and signed hash ([`SignedTransaction::signed_hash`]), each
/// computed once.
///
/// Only a signature check makes one ([`verify_hashed`], [`VerifiedTx::verify`]), so holding
/// one is proof that this node checked exactly these signature bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedTx {
    tx: SignedTransaction,
    id: Hash,
    signed_hash: Hash,
}

impl VerifiedTx {
    /// Checks one transaction ([`SignedTransaction::verify`]) and keeps its hashes.
    ///
    /// Errors: those of [`SignedTransaction::verify`].
    pub fn verify(tx: HashedTx, chain_id: &str) -> Result<VerifiedTx, LedgerError> {
        verify_hashed(vec![tx], chain_id)
            .pop()
            .expect("one verdict per transaction")
    }

    /// The transaction.
    pub fn tx(&self) -> &SignedTransaction {
        &self.tx
    }

    /// Its id ([`SignedTransaction::hash`], computed once).
    pub fn id(&self) -> Hash {
        self.id
    }

    /// Its signed hash ([`SignedTransaction::signed_hash`], computed once).
    pub fn signed_hash(&self) -> Hash {
        self.signed_hash
    }

    /// The transaction, without its hashes.
    pub fn into_tx(self) -> SignedTransaction {
        self.tx
    }
}

impl std::ops::Deref for VerifiedTx {
    type Target = SignedTransaction;

    /// The transaction (read-only: a `VerifiedTx` cannot be changed after its check).
    fn deref(&self) -> &SignedTransaction {
        &self.tx
    }
}

/// The stateless checks of [`crate::verify_transactions`] (same verdicts, same batching)
/// over transactions whose ids are known, without hashing their bodies again. Each valid
/// one comes back as a [`VerifiedTx`] (its signed hash computed here, once); each invalid
/// one as its error. One verdict per input, in order.
pub fn verify_hashed(txs: Vec<HashedTx>, chain_id: &str) -> Vec<Result<VerifiedTx, LedgerError>> {
    let (txs, ids): (Vec<SignedTransaction>, Vec<Hash>) =
        txs.into_iter().map(|h| (h.tx, h.id)).unzip();
    let results = crate::signature::verify_with_ids(&txs, &ids, chain_id);
    assert_eq!(results.len(), txs.len(), "one verdict per transaction");
    txs.into_iter()
        .zip(ids)
        .zip(results)
        .map(|((tx, id), r)| {
            r.map(|()| {
                let signed_hash = tx.signed_hash();
                VerifiedTx {
                    tx,
                    id,
                    signed_hash,
                }
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Address, TransactionBody};
    use ed25519_dalek::SigningKey;

    #[test]
    fn verified_txs_carry_their_hashes_and_bad_ones_are_refused() {
        let key = SigningKey::from_bytes(&[5; 32]);
        let good = TransactionBody {
            chain_id: "c".into(),
            sender: Address::from_public_key(&key.verifying_key()),
            fee: 1,
            nonce: 0,
            expiry_height: 9,
            action: crate::Action::Transfer {
                recipient: Address([9; 32]),
                amount: 1,
            },
        }
        .sign(&key);
        let mut bad = good.clone();
        bad.signature[40] ^= 1;
        let out = verify_hashed(vec![HashedTx::new(good.clone()), HashedTx::new(bad)], "c");
        let v = out[0].as_ref().unwrap();
        assert_eq!(v.id(), good.hash());
        assert_eq!(v.signed_hash(), good.signed_hash());
        assert!(matches!(out[1], Err(LedgerError::BadSignature { .. })));
        assert!(VerifiedTx::verify(HashedTx::new(good), "other").is_err());
    }
}
