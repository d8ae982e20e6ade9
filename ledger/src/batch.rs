//! Batch signature verification of transactions, with exactly the verdicts of
//! [`SignedTransaction::verify`].
//!
//! [`verify_batch`] returns, for every transaction, the same `Ok`/`Err` as
//! [`SignedTransaction::verify`] would (same error values), so a caller can find exactly
//! which transactions are bad. It is only a faster way to reach those verdicts when most
//! signatures are good.
//!
//! # Why batch verification needs guarding here
//!
//! The ledger's signature rule is `verify_strict`: the cofactorless equation
//! `R == [s]B - [k]A` checked on encodings, rejecting small-order `A` and `R`, a
//! non-canonical `S` and (by comparing encodings) a non-canonical `R`.
//! `ed25519_dalek::verify_batch` checks one random linear combination
//! `Σ zᵢ([sᵢ]B - Rᵢ - [kᵢ]Aᵢ) == 0` with 128-bit `zᵢ` derived deterministically from the
//! batch's contents. It differs from `verify_strict` on adversarial inputs:
//!
//! - it does not reject small-order `A` or `R`, nor a non-canonical encoding of `R`;
//! - when `A` or `R` has a torsion component (a *mixed-order* point, which the small-order
//!   check does not catch), a signature `verify_strict` rejects leaves a defect of order 2,
//!   4 or 8, which `zᵢ` annihilates with probability 1/2 to 1/8. As `zᵢ` depends on the
//!   whole batch, the same transaction could pass in one batch and fail in another, and a
//!   signer can grind for a passing batch: nodes batching differently would disagree.
//!
//! So a transaction goes into a batch only if `verify_strict` and the batch equation
//! provably agree on it: its sender key decodes, is not small-order and is torsion-free
//! (in the prime-order subgroup), `R` is canonically encoded, decodes, is not small-order
//! and is torsion-free, and `S` is canonical (`< ℓ`). For such transactions every defect lies in
//! the prime-order subgroup, where the random combination is sound (a false accept needs
//! to predict the transcript-derived `zᵢ`, ~2⁻¹²⁸), and a zero defect with canonical `R`
//! is exactly `verify_strict` acceptance. Every other transaction, and every transaction of
//! a batch that fails, is verified alone with [`SignedTransaction::verify`]. Honest
//! signers (keys and nonces are multiples of the base point) always take the batch path.
//!
//! # Cost
//!
//! The torsion checks cost one scalar multiplication by `ℓ` per `R` and per distinct
//! sender key in the call, each about what a single verification costs. Measured
//! (`ledger::tx_verify` in `docs/benchmarks.md`), this makes [`verify_batch`] about **half as
//! fast** as calling [`SignedTransaction::verify`] on each transaction (the unguarded batch
//! equation alone would be ~3× faster, but is not consensus-safe). Under the `verify_strict`
//! rule, verifying one by one stays the fastest exact method; a real batch speed-up needs a
//! signature rule that batch verification matches exactly (e.g. ZIP-215's cofactored
//! equation), which would change transaction validity. A bad signature makes its whole
//! chunk (at most [`VERIFY_BATCH_CHUNK`] transactions) fall back to single verification.

use std::collections::HashMap;

use ed25519_dalek::{Signature, VerifyingKey};

use crate::{Address, LedgerError, SignedTransaction};

/// Most transactions one [`verify_batch`] call accepts (at least the default
/// `block_txs_max` of 10,000, so a default block is verified in one call).
pub const VERIFY_BATCH_MAX: usize = 16_384;

/// Most signatures checked in one batch equation inside [`verify_batch`]. Bounds the work
/// redone one by one when a batch contains a bad signature.
pub const VERIFY_BATCH_CHUNK: usize = 256;

/// Why [`verify_batch`] refused to run (nothing was verified).
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum BatchVerifyError {
    /// More transactions than [`VERIFY_BATCH_MAX`]; split the input.
    #[error("batch of {len} transactions is larger than the limit of {max}")]
    TooLarge {
        /// Number of transactions given.
        len: usize,
        /// The bound, [`VERIFY_BATCH_MAX`].
        max: usize,
    },
}

/// Verifies the stateless validity and signatures of up to [`VERIFY_BATCH_MAX`]
/// transactions for chain `chain_id`.
///
/// Returns one verdict per transaction, in input order (`result.len() == txs.len()`):
/// `result[i]` equals `txs[i].verify(chain_id)` — `Ok(())`, or the same
/// [`LedgerError::WrongChain`], [`LedgerError::Malformed`] (chain id too long) or
/// [`LedgerError::BadSignature`]. The verdicts do not depend on how transactions are
/// grouped (see the [module docs](self) for how this is ensured). An empty input gives an
/// empty vector.
///
/// Work: per transaction, about two scalar multiplications (torsion checks of `R` and of
/// each distinct sender key) plus its share of a batch equation over at most
/// [`VERIFY_BATCH_CHUNK`] transactions — measured at about twice the cost of
/// [`SignedTransaction::verify`] (see the [module docs](self#cost)); one more single
/// verification per transaction of a chunk holding a bad signature. Memory: O(`txs.len()`).
///
/// Errors: [`BatchVerifyError::TooLarge`] if `txs.len() > VERIFY_BATCH_MAX`.
pub fn verify_batch(
    txs: &[SignedTransaction],
    chain_id: &str,
) -> Result<Vec<Result<(), LedgerError>>, BatchVerifyError> {
    if txs.len() > VERIFY_BATCH_MAX {
        return Err(BatchVerifyError::TooLarge {
            len: txs.len(),
            max: VERIFY_BATCH_MAX,
        });
    }
    let mut results: Vec<Result<(), LedgerError>> = Vec::with_capacity(txs.len());
    // Batchable sender keys seen in this call (`None`: not batchable).
    let mut keys: HashMap<Address, Option<VerifyingKey>> = HashMap::new();
    // Indices (into `txs`) and inputs of the current chunk.
    let mut chunk = Chunk::default();

    for (i, tx) in txs.iter().enumerate() {
        if let Err(e) = tx.check_stateless_fields(chain_id) {
            results.push(Err(e));
            continue;
        }
        let key = *keys
            .entry(tx.body.sender)
            .or_insert_with(|| batchable_key(&tx.body.sender));
        let signature = Signature::from_bytes(&tx.signature);
        match key {
            Some(key) if batchable_signature(&signature) => {
                results.push(Ok(())); // provisional: settled when the chunk is checked
                chunk.push(i, tx, key, signature);
                if chunk.len() == VERIFY_BATCH_CHUNK {
                    chunk.settle(txs, chain_id, &mut results);
                }
            }
            _ => results.push(tx.verify(chain_id)),
        }
    }
    chunk.settle(txs, chain_id, &mut results);
    Ok(results)
}

/// Transactions waiting for one batch equation.
#[derive(Default)]
struct Chunk {
    indices: Vec<usize>,
    digests: Vec<[u8; 32]>,
    keys: Vec<VerifyingKey>,
    signatures: Vec<Signature>,
}

impl Chunk {
    fn len(&self) -> usize {
        self.indices.len()
    }

    fn push(&mut self, i: usize, tx: &SignedTransaction, key: VerifyingKey, sig: Signature) {
        self.indices.push(i);
        self.digests.push(tx.hash().0);
        self.keys.push(key);
        self.signatures.push(sig);
    }

    /// Checks the chunk's batch equation; on failure re-verifies each transaction alone
    /// and overwrites its provisional `Ok`. Leaves the chunk empty.
    fn settle(
        &mut self,
        txs: &[SignedTransaction],
        chain_id: &str,
        results: &mut [Result<(), LedgerError>],
    ) {
        if self.indices.is_empty() {
            return;
        }
        let messages: Vec<&[u8]> = self.digests.iter().map(|d| &d[..]).collect();
        if ed25519_dalek::verify_batch(&messages, &self.signatures, &self.keys).is_err() {
            for &i in &self.indices {
                results[i] = txs[i].verify(chain_id);
            }
        }
        self.indices.clear();
        self.digests.clear();
        self.keys.clear();
        self.signatures.clear();
    }
}

/// The sender's key if the batch equation agrees with `verify_strict` for it: it decodes,
/// is not small-order (the identity is torsion-free but weak) and lies in the prime-order
/// subgroup.
fn batchable_key(sender: &Address) -> Option<VerifyingKey> {
    let key = sender.public_key().ok()?;
    (!key.is_weak() && key.to_edwards().is_torsion_free()).then_some(key)
}

/// True if the batch equation agrees with `verify_strict` on this signature's encoding:
/// `S` canonical, `R` canonically encoded, decodable, not small-order and in the
/// prime-order subgroup.
fn batchable_signature(sig: &Signature) -> bool {
    if !scalar_is_canonical(sig.s_bytes()) || !y_is_canonical(sig.r_bytes()) {
        return false;
    }
    match VerifyingKey::from_bytes(sig.r_bytes()) {
        Ok(r) => !r.is_weak() && r.to_edwards().is_torsion_free(),
        Err(_) => false,
    }
}

/// ℓ = 2²⁵² + 27742317777372353535851937790883648493, little-endian.
const GROUP_ORDER: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// `s < ℓ` for a little-endian 32-byte scalar (what `verify_strict` requires of `S`).
fn scalar_is_canonical(s: &[u8; 32]) -> bool {
    for i in (0..32).rev() {
        if s[i] != GROUP_ORDER[i] {
            return s[i] < GROUP_ORDER[i];
        }
    }
    false // equal to ℓ
}

/// The y coordinate of a compressed Edwards point (low 255 bits) is `< p = 2²⁵⁵ - 19`.
///
/// Decompression reduces `y` mod p, so `y ≥ p` decodes to the same point as `y - p`; such an
/// `R` never equals the canonical encoding `verify_strict` compares against. (The other
/// non-canonical form, a sign bit on `x = 0`, only occurs for small-order points.)
fn y_is_canonical(bytes: &[u8; 32]) -> bool {
    let top_is_max = bytes[31] & 0x7f == 0x7f;
    let middle_is_max = bytes[1..31].iter().all(|&b| b == 0xff);
    !(top_is_max && middle_is_max && bytes[0] >= 0xed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TransactionBody;
    use ed25519_dalek::SigningKey;

    const CHAIN: &str = "cairn-batch-test";

    fn tx(seed: u64) -> SignedTransaction {
        let mut secret = [0u8; 32];
        secret[..8].copy_from_slice(&seed.to_le_bytes());
        secret[31] = 0x5a;
        let key = SigningKey::from_bytes(&secret);
        TransactionBody {
            chain_id: CHAIN.into(),
            sender: Address::from_public_key(&key.verifying_key()),
            recipient: Address([7; 32]),
            amount: seed,
            fee: 1,
            nonce: seed,
            expiry_height: 100,
        }
        .sign(&key)
    }

    fn txs(n: u64) -> Vec<SignedTransaction> {
        (0..n).map(tx).collect()
    }

    /// Every verdict equals the single verification's.
    fn assert_matches_single(txs: &[SignedTransaction]) -> Vec<Result<(), LedgerError>> {
        let got = verify_batch(txs, CHAIN).unwrap();
        assert_eq!(got.len(), txs.len());
        for (i, (tx, verdict)) in txs.iter().zip(&got).enumerate() {
            assert_eq!(*verdict, tx.verify(CHAIN), "transaction {i}");
        }
        got
    }

    fn bad_indices(verdicts: &[Result<(), LedgerError>]) -> Vec<usize> {
        verdicts
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.is_err().then_some(i))
            .collect()
    }

    #[test]
    fn empty_batch_is_empty() {
        assert_eq!(verify_batch(&[], CHAIN), Ok(vec![]));
    }

    #[test]
    fn all_valid() {
        let txs = txs(VERIFY_BATCH_CHUNK as u64 + 3);
        let got = assert_matches_single(&txs);
        assert!(got.iter().all(Result::is_ok));
    }

    #[test]
    fn one_bad_signature_anywhere_is_identified() {
        // Two chunks and a partial one; the bad transaction at the edges and in the middle.
        let n = 2 * VERIFY_BATCH_CHUNK + 5;
        let good = txs(n as u64);
        for bad in [
            0,
            1,
            VERIFY_BATCH_CHUNK - 1,
            VERIFY_BATCH_CHUNK,
            n / 2,
            n - 1,
        ] {
            let mut batch = good.clone();
            batch[bad].signature[5] ^= 1;
            let got = assert_matches_single(&batch);
            assert_eq!(bad_indices(&got), vec![bad], "bad transaction at {bad}");
            assert_eq!(
                got[bad],
                Err(LedgerError::BadSignature {
                    tx: batch[bad].hash()
                })
            );
        }
    }

    #[test]
    fn tampered_body_and_wrong_chain_are_identified() {
        let mut batch = txs(20);
        batch[3].body.amount += 1; // signature no longer matches the body
        batch[11].body.chain_id = "other-chain".into();
        batch[11] = batch[11]
            .body
            .clone()
            .sign(&SigningKey::from_bytes(&[9; 32]));
        let got = assert_matches_single(&batch);
        assert_eq!(bad_indices(&got), vec![3, 11]);
        assert!(matches!(got[11], Err(LedgerError::WrongChain { .. })));
    }

    #[test]
    fn too_large_is_refused() {
        let one = tx(1);
        let batch = vec![one; VERIFY_BATCH_MAX + 1];
        assert_eq!(
            verify_batch(&batch, CHAIN),
            Err(BatchVerifyError::TooLarge {
                len: VERIFY_BATCH_MAX + 1,
                max: VERIFY_BATCH_MAX
            })
        );
        assert!(verify_batch(&batch[..VERIFY_BATCH_MAX], CHAIN).is_ok());
    }

    /// Adds ℓ to S (little-endian), giving a non-canonical S for the same signature.
    fn add_group_order(s: &mut [u8]) {
        let mut carry = 0u16;
        for (b, l) in s.iter_mut().zip(GROUP_ORDER) {
            let sum = u16::from(*b) + u16::from(l) + carry;
            *b = sum as u8;
            carry = sum >> 8;
        }
    }

    #[test]
    fn non_canonical_s_is_rejected_like_verify_strict() {
        let mut batch = txs(10);
        // S < 2^253 for a real signature, so S + ℓ < 2^256 fits without overflow.
        add_group_order(&mut batch[4].signature[32..]);
        let sig = Signature::from_bytes(&batch[4].signature);
        assert!(!scalar_is_canonical(sig.s_bytes()));
        let got = assert_matches_single(&batch);
        assert_eq!(bad_indices(&got), vec![4]);
    }

    #[test]
    fn scalar_and_y_canonical_bounds() {
        let mut l_minus_1 = GROUP_ORDER;
        l_minus_1[0] -= 1;
        assert!(scalar_is_canonical(&l_minus_1));
        assert!(!scalar_is_canonical(&GROUP_ORDER));
        assert!(!scalar_is_canonical(&[0xff; 32]));
        assert!(scalar_is_canonical(&[0; 32]));

        let mut p = [0xff; 32];
        p[0] = 0xed;
        p[31] = 0x7f;
        assert!(!y_is_canonical(&p)); // y = p
        let mut p_minus_1 = p;
        p_minus_1[0] = 0xec;
        assert!(y_is_canonical(&p_minus_1));
        let mut p_signed = p;
        p_signed[31] = 0xff; // sign bit does not matter
        assert!(!y_is_canonical(&p_signed));
    }

    /// The order-2 point (0, -1), compressed: y = p - 1.
    fn order_two_point() -> [u8; 32] {
        let mut b = [0xff; 32];
        b[0] = 0xec;
        b[31] = 0x7f;
        b
    }

    #[test]
    fn small_order_sender_is_rejected() {
        // The identity (y = 1) as a sender key: verify_strict rejects it.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let mut batch = txs(4);
        batch[2].body.sender = Address(identity);
        assert!(batchable_key(&Address(identity)).is_none());
        let got = assert_matches_single(&batch);
        assert_eq!(bad_indices(&got), vec![2]);
    }

    #[test]
    fn small_order_r_is_not_batched_and_rejected() {
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let mut batch = txs(6);
        batch[1].signature[..32].copy_from_slice(&identity);
        batch[3].signature[..32].copy_from_slice(&order_two_point());
        for i in [1, 3] {
            assert!(!batchable_signature(&Signature::from_bytes(
                &batch[i].signature
            )));
        }
        let got = assert_matches_single(&batch);
        assert_eq!(bad_indices(&got), vec![1, 3]);
    }

    #[test]
    fn mixed_order_r_is_not_batched_and_rejected() {
        // R' = R + T₂ (T₂ of order 2): not small-order, but has a torsion component. The
        // batch equation would accept it whenever its z is even; verify_strict never does.
        let mut batch = txs(8);
        let sig = Signature::from_bytes(&batch[5].signature);
        let r = VerifyingKey::from_bytes(sig.r_bytes())
            .unwrap()
            .to_edwards();
        let t2 = VerifyingKey::from_bytes(&order_two_point())
            .unwrap()
            .to_edwards();
        let mixed = VerifyingKey::from(r + t2);
        assert!(!mixed.is_weak());
        batch[5].signature[..32].copy_from_slice(&mixed.to_bytes());
        assert!(!batchable_signature(&Signature::from_bytes(
            &batch[5].signature
        )));
        let got = assert_matches_single(&batch);
        assert_eq!(bad_indices(&got), vec![5]);
    }

    #[test]
    fn mixed_order_sender_falls_back_to_verify_strict() {
        // A sender key A' = A + T₂ (T₂ of order 2) is not small-order, so verify_strict
        // accepts signatures under it whose k is even; it must never be batched, and its
        // verdicts must be exactly verify_strict's. (Signing under A' itself needs the
        // `hazmat` feature, so these signatures are made under A and are rejected; the
        // point is that the key takes the single path.)
        let secret = SigningKey::from_bytes(&[3; 32]);
        let a = secret.verifying_key().to_edwards();
        let t2 = VerifyingKey::from_bytes(&order_two_point())
            .unwrap()
            .to_edwards();
        let mixed = Address(VerifyingKey::from(a + t2).to_bytes());
        assert!(batchable_key(&mixed).is_none());
        let batch: Vec<SignedTransaction> = (0..16)
            .map(|nonce| {
                let mut tx = tx(nonce);
                tx.body.sender = mixed;
                tx.body.clone().sign(&secret)
            })
            .collect();
        assert_matches_single(&batch);
    }
}
