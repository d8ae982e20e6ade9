//! The ledger's one signature rule, checked singly ([`verify_signature`]) or in batches
//! ([`verify_transactions`]) with identical verdicts.
//!
//! # The rule: ZIP-215, and no small-order sender keys
//!
//! A transaction's 64-byte signature `R ‖ S` by sender key `A` (the 32 address bytes) over the
//! 32-byte signing digest `M` ([`crate::TransactionBody::hash`]) is valid iff
//!
//! 1. `A` decodes to a point of the twisted Edwards curve (non-canonical encodings of `y`
//!    accepted) and that point is **not of small order** (not one of the 8 torsion points);
//! 2. `S` is canonical: `S < ℓ`;
//! 3. `R` decodes to a curve point (non-canonical encodings accepted);
//! 4. the **cofactored** equation `[8]([S]B − R − [k]A) = 0` holds, with
//!    `k = SHA-512(R ‖ A ‖ M) mod ℓ` over the bytes as given.
//!
//! Rules 2–4 are [ZIP-215](https://zips.z.cash/zip-0215) (the validation rule Zcash and
//! CometBFT-era consensus code adopted for exactly this reason); every signature made by an
//! RFC 8032 signer (the wallet's `ed25519-dalek`) satisfies them. Rule 1 is Cairn's: under a
//! cofactored equation anyone can forge a signature for a small-order key, so an account at
//! such an address would be spendable by anyone; refusing the key leaves it unspendable.
//!
//! ## Why this rule
//!
//! Batch verification (one random linear combination `Σ zᵢ(...)` of many equations, one
//! multi-scalar multiplication) is about three times cheaper per signature than checking
//! each alone, and signature checks bound this ledger's throughput. Under the cofactored
//! equation a batch accepts exactly the set of signatures that each pass alone (a forged
//! member survives only if the 128-bit random `zᵢ` hit a ~2⁻¹²⁸ event), whatever the
//! grouping, so nodes that batch differently never disagree. Under the cofactorless
//! `verify_strict` rule this holds only with a per-signature subgroup check, which costs more
//! than the batch saves (measured in session 2: 2× slower than one-by-one). See
//! Henry de Valence, "It's 255:19AM. Do you know what your validation criteria are?" (2020),
//! and Chalkias et al., "Taming the many EdDSAs" (SSR 2020).
//!
//! ## Implementation
//!
//! Both paths are written on `curve25519-dalek` 4 primitives (decompression, the
//! vartime double-base and multi-scalar multiplications, which pick the AVX2 backend at run
//! time); `ed25519-consensus` — the reference ZIP-215 implementation, on a slower portable
//! backend — is the oracle of this module's tests, which check that both paths give its
//! verdicts on valid, tampered and adversarial (small-order, mixed-order, non-canonical)
//! inputs.

use std::collections::{HashMap, HashSet};
use std::sync::{LazyLock, Mutex};

use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use rand::RngCore;
use sha2::{Digest, Sha512};

use crate::{Hash, LedgerError, SignedTransaction};

/// Most signatures in one batch equation inside [`verify_transactions`]. Larger batches
/// are cheaper per signature (Pippenger's multi-scalar multiplication); this bound limits
/// the work redone one by one when a batch holds a bad signature (at most this many single
/// checks per bad signature found).
pub const VERIFY_BATCH_CHUNK: usize = 256;

/// Most decoded sender keys [`verify_transactions`] keeps between calls (process-wide, about
/// 200 bytes each, so at most ~13 MiB). Decompressing a key costs about half a batched
/// signature check (a field exponentiation; measured as the largest single item in a
/// loaded node's profile besides the multi-scalar multiplication), and accounts send
/// again and again. When full, the cache is emptied and refills.
pub const SENDER_KEY_CACHE_MAX: usize = 65_536;

/// Decoded sender keys (`None`: rule 1 fails). A pure function's results: sharing them
/// cannot change a verdict.
static SENDER_KEYS: LazyLock<Mutex<HashMap<[u8; 32], Option<EdwardsPoint>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The decoded keys of every distinct sender in `txs`, from [`SENDER_KEYS`] or decompressed
/// (outside the lock) and added to it.
fn sender_keys(txs: &[SignedTransaction]) -> HashMap<[u8; 32], Option<EdwardsPoint>> {
    let mut keys: HashMap<[u8; 32], Option<EdwardsPoint>> = HashMap::new();
    // A set, not a list: with many distinct senders (a large state drawn uniformly) nearly
    // every sender misses, and a list's `contains` made this quadratic in the batch.
    let mut missing: HashSet<[u8; 32]> = HashSet::new();
    {
        let cache = SENDER_KEYS.lock().expect("sender key cache poisoned");
        for tx in txs {
            let a = tx.body.sender.0;
            if keys.contains_key(&a) || missing.contains(&a) {
                continue;
            }
            match cache.get(&a) {
                Some(&k) => {
                    keys.insert(a, k);
                }
                None => {
                    missing.insert(a);
                }
            }
        }
    }
    if missing.is_empty() {
        return keys;
    }
    let decoded: Vec<([u8; 32], Option<EdwardsPoint>)> =
        missing.into_iter().map(|a| (a, sender_key(&a))).collect();
    let mut cache = SENDER_KEYS.lock().expect("sender key cache poisoned");
    if cache.len() + decoded.len() > SENDER_KEY_CACHE_MAX {
        cache.clear();
    }
    for &(a, k) in decoded.iter().take(SENDER_KEY_CACHE_MAX) {
        cache.insert(a, k);
    }
    drop(cache);
    keys.extend(decoded);
    keys
}

/// A signature's parts, decoded once, with its challenge `k`.
struct Prepared {
    /// `A` as given (the address bytes): the key of its batch coefficient.
    a_bytes: [u8; 32],
    a: EdwardsPoint,
    r: EdwardsPoint,
    s: Scalar,
    k: Scalar,
}

/// Decodes and checks rules 1–3 for `tx`; `None` if any fails. `key` is the sender's
/// decoded key if already known (rule 1 checked).
fn prepare(tx: &SignedTransaction, id: &Hash, key: Option<EdwardsPoint>) -> Option<Prepared> {
    let a_bytes = tx.body.sender.0;
    let a = match key {
        Some(a) => a,
        None => sender_key(&a_bytes)?,
    };
    let mut r_bytes = [0u8; 32];
    r_bytes.copy_from_slice(&tx.signature[..32]);
    let mut s_bytes = [0u8; 32];
    s_bytes.copy_from_slice(&tx.signature[32..]);
    let s: Scalar = Option::from(Scalar::from_canonical_bytes(s_bytes))?;
    let r = CompressedEdwardsY(r_bytes).decompress()?;
    let k = Scalar::from_hash(
        Sha512::new()
            .chain_update(r_bytes)
            .chain_update(a_bytes)
            .chain_update(id.as_bytes()),
    );
    Some(Prepared {
        a_bytes,
        a,
        r,
        s,
        k,
    })
}

/// Rule 1: the sender key decodes (non-canonical `y` accepted, as ZIP-215 does for `A`) and
/// is not of small order.
fn sender_key(bytes: &[u8; 32]) -> Option<EdwardsPoint> {
    let a = CompressedEdwardsY(*bytes).decompress()?;
    (!a.is_small_order()).then_some(a)
}

/// Rule 4 for one signature: `[8](R − ([S]B − [k]A)) = 0`.
fn single_equation(p: &Prepared) -> bool {
    let r_prime = EdwardsPoint::vartime_double_scalar_mul_basepoint(&p.k, &-p.a, &p.s);
    (p.r - r_prime).mul_by_cofactor().is_identity()
}

/// Checks the signature of `tx` under the rule in the [module docs](self), alone. One
/// double-base scalar multiplication (~one `verify_strict`).
///
/// Errors: [`LedgerError::BadSignature`] (carrying the transaction hash) for any failure of
/// rules 1–4. Does not check the chain id; [`SignedTransaction::verify`] does both.
pub fn verify_signature(tx: &SignedTransaction) -> Result<(), LedgerError> {
    let id = tx.hash();
    match prepare(tx, &id, None) {
        Some(p) if single_equation(&p) => Ok(()),
        _ => Err(LedgerError::BadSignature { tx: id }),
    }
}

/// The full stateless check ([`SignedTransaction::verify`]: chain id, its size, signature) of
/// any number of transactions, batching signatures in equal chunks of at most
/// [`VERIFY_BATCH_CHUNK`].
///
/// Returns one verdict per transaction, in input order: `result[i] == txs[i].verify(chain_id)`
/// (same error values), whatever the grouping — the rule makes batch and single verdicts
/// identical (see the [module docs](self)). A batch whose equation fails is re-checked one
/// transaction at a time to find the bad ones. An empty input gives an empty vector.
///
/// Work: per good transaction about a third of a single verification plus one SHA-512 and
/// one blake3 digest; memory O(`txs.len()`). Uses the thread-local CSPRNG for the batch
/// coefficients (verdicts do not depend on it except with probability ~2⁻¹²⁸ per batch).
/// Callers run this off latency-sensitive tasks.
pub fn verify_transactions(
    txs: &[SignedTransaction],
    chain_id: &str,
) -> Vec<Result<(), LedgerError>> {
    let ids: Vec<Hash> = txs.iter().map(SignedTransaction::hash).collect();
    verify_with_ids(txs, &ids, chain_id)
}

/// [`verify_transactions`] for transactions whose ids the caller computed:
/// `ids[i] == txs[i].hash()` (asserted in debug builds), the digest each signature is
/// checked over. Crate-internal: only [`crate::HashedTx`] (whose id is computed by its
/// constructor) and [`verify_transactions`] supply ids, so a verdict is never over another
/// digest than the body's.
pub(crate) fn verify_with_ids(
    txs: &[SignedTransaction],
    ids: &[Hash],
    chain_id: &str,
) -> Vec<Result<(), LedgerError>> {
    assert_eq!(txs.len(), ids.len(), "one id per transaction");
    let mut results: Vec<Result<(), LedgerError>> = Vec::with_capacity(txs.len());
    // Decoded sender keys (`None`: rule 1 fails), each decompressed once per process while
    // it stays in the cache.
    let keys = sender_keys(txs);
    // Equal chunks of at most VERIFY_BATCH_CHUNK: 300 signatures go as 150 + 150, not
    // 256 + 44 (a small batch costs more per signature).
    let chunks = txs.len().div_ceil(VERIFY_BATCH_CHUNK).max(1);
    let chunk = txs.len().div_ceil(chunks).max(1);
    assert!(chunk <= VERIFY_BATCH_CHUNK);
    let mut batch = Batch::default();
    for (i, (tx, id)) in txs.iter().zip(ids).enumerate() {
        if let Err(e) = tx.check_stateless_fields(chain_id) {
            results.push(Err(e));
            continue;
        }
        let key = keys[&tx.body.sender.0];
        match key.and_then(|a| prepare(tx, id, Some(a))) {
            Some(p) => {
                results.push(Ok(())); // provisional: settled with the batch
                batch.push(i, p);
                if batch.len() == chunk {
                    batch.settle(ids, &mut results);
                }
            }
            None => results.push(Err(LedgerError::BadSignature { tx: *id })),
        }
    }
    batch.settle(ids, &mut results);
    debug_assert_eq!(results.len(), txs.len());
    results
}

/// Prepared signatures waiting for one batch equation.
#[derive(Default)]
struct Batch {
    indices: Vec<usize>,
    items: Vec<Prepared>,
}

impl Batch {
    fn len(&self) -> usize {
        self.indices.len()
    }

    fn push(&mut self, i: usize, p: Prepared) {
        self.indices.push(i);
        self.items.push(p);
    }

    /// Checks the batch equation; if it fails, checks each signature alone and overwrites
    /// the provisional `Ok` of the bad ones. Leaves the batch empty.
    fn settle(&mut self, ids: &[Hash], results: &mut [Result<(), LedgerError>]) {
        if self.items.is_empty() {
            return;
        }
        if !batch_equation(&self.items) {
            for (&i, p) in self.indices.iter().zip(&self.items) {
                if !single_equation(p) {
                    results[i] = Err(LedgerError::BadSignature { tx: ids[i] });
                }
            }
        }
        self.indices.clear();
        self.items.clear();
    }
}

/// `[8]([−Σzᵢsᵢ]B + Σ[zᵢ]Rᵢ + Σ[zᵢkᵢ]Aᵢ) = 0` with independent random 128-bit `zᵢ`; the
/// `zᵢkᵢ` of one key are summed so a sender with many signatures adds one point, not many.
/// True iff (but for probability ~2⁻¹²⁸) every item passes [`single_equation`].
fn batch_equation(items: &[Prepared]) -> bool {
    let mut rng = rand::thread_rng();
    let mut b_coeff = Scalar::ZERO;
    let mut scalars: Vec<Scalar> = Vec::with_capacity(2 * items.len() + 1);
    let mut points: Vec<EdwardsPoint> = Vec::with_capacity(2 * items.len() + 1);
    // Key (compressed) -> index of its coefficient in `scalars`/`points`.
    let mut key_slots: HashMap<[u8; 32], usize> = HashMap::with_capacity(items.len());
    for p in items {
        let mut z_bytes = [0u8; 32];
        rng.fill_bytes(&mut z_bytes[..16]);
        let z = Scalar::from_bytes_mod_order(z_bytes);
        b_coeff -= z * p.s;
        scalars.push(z);
        points.push(p.r);
        let zk = z * p.k;
        // Keyed by the bytes given, not a re-compression (which costs an inversion).
        match key_slots.get(&p.a_bytes) {
            Some(&slot) => scalars[slot] += zk,
            None => {
                key_slots.insert(p.a_bytes, scalars.len());
                scalars.push(zk);
                points.push(p.a);
            }
        }
    }
    scalars.push(b_coeff);
    points.push(curve25519_dalek::constants::ED25519_BASEPOINT_POINT);
    // The equation is written as Σ[zᵢ](Rᵢ + [kᵢ]Aᵢ − [sᵢ]B) = 0, the negation of the
    // single equation's R − ([S]B − [k]A) summed with weights zᵢ.
    EdwardsPoint::vartime_multiscalar_mul(&scalars, &points)
        .mul_by_cofactor()
        .is_identity()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Address, TransactionBody};
    use ed25519_dalek::SigningKey;

    const CHAIN: &str = "cairn-signature-test";

    fn tx(seed: u64) -> SignedTransaction {
        let mut secret = [0u8; 32];
        secret[..8].copy_from_slice(&seed.to_le_bytes());
        secret[31] = 0x5a;
        let key = SigningKey::from_bytes(&secret);
        TransactionBody {
            chain_id: CHAIN.into(),
            sender: Address::from_public_key(&key.verifying_key()),
            fee: 1,
            nonce: seed,
            expiry_height: 100,
            action: crate::Action::Transfer {
                recipient: Address([7; 32]),
                amount: seed,
            },
        }
        .sign(&key)
    }

    fn txs(n: u64) -> Vec<SignedTransaction> {
        (0..n).map(tx).collect()
    }

    /// The reference ZIP-215 verdict (ed25519-consensus) plus rule 1.
    fn oracle(tx: &SignedTransaction) -> bool {
        let small_order = CompressedEdwardsY(tx.body.sender.0)
            .decompress()
            .is_some_and(|a| a.is_small_order());
        let Ok(vk) = ed25519_consensus::VerificationKey::try_from(tx.body.sender.0) else {
            return false;
        };
        !small_order
            && vk
                .verify(
                    &ed25519_consensus::Signature::from(tx.signature),
                    tx.hash().as_bytes(),
                )
                .is_ok()
    }

    /// Batch verdicts equal single verdicts equal the oracle's; returns the bad indices.
    fn check_all(txs: &[SignedTransaction]) -> Vec<usize> {
        let batch = verify_transactions(txs, CHAIN);
        assert_eq!(batch.len(), txs.len());
        let mut bad = vec![];
        for (i, (tx, verdict)) in txs.iter().zip(&batch).enumerate() {
            assert_eq!(
                *verdict,
                tx.verify(CHAIN),
                "batch vs single, transaction {i}"
            );
            assert_eq!(
                verdict.is_ok(),
                oracle(tx),
                "ours vs ZIP-215 oracle, transaction {i}"
            );
            if verdict.is_err() {
                bad.push(i);
            }
        }
        bad
    }

    /// The order-2 point (0, -1), compressed: y = p - 1.
    fn order_two_bytes() -> [u8; 32] {
        let mut b = [0xff; 32];
        b[0] = 0xec;
        b[31] = 0x7f;
        b
    }

    fn point(bytes: [u8; 32]) -> EdwardsPoint {
        CompressedEdwardsY(bytes).decompress().unwrap()
    }

    #[test]
    fn cached_sender_keys_give_the_same_verdicts() {
        // The second call finds every key (good and small-order) in the process-wide cache.
        let mut batch = txs(30);
        let mut identity = [0u8; 32];
        identity[0] = 1;
        batch[7].body.sender = Address(identity);
        batch[12].signature[50] ^= 2;
        let first = verify_transactions(&batch, CHAIN);
        {
            let cache = SENDER_KEYS.lock().unwrap();
            for t in &batch {
                let cached = cache.get(&t.body.sender.0).copied();
                assert_eq!(
                    cached,
                    Some(sender_key(&t.body.sender.0)),
                    "key cached as decoded"
                );
            }
        }
        assert_eq!(verify_transactions(&batch, CHAIN), first);
        assert_eq!(check_all(&batch), vec![7, 12]);
    }

    #[test]
    fn empty_input_gives_no_verdicts() {
        assert!(verify_transactions(&[], CHAIN).is_empty());
    }

    #[test]
    fn all_valid_across_chunks() {
        let txs = txs(VERIFY_BATCH_CHUNK as u64 * 2 + 3);
        assert_eq!(check_all(&txs), Vec::<usize>::new());
    }

    #[test]
    fn wallet_signatures_are_valid_and_strict_valid_ones_too() {
        // Every RFC 8032 signature that verify_strict accepts is valid under the rule.
        for t in txs(50) {
            let key = t.body.sender.public_key().unwrap();
            let sig = ed25519_dalek::Signature::from_bytes(&t.signature);
            assert!(key.verify_strict(t.hash().as_bytes(), &sig).is_ok());
            assert_eq!(verify_signature(&t), Ok(()));
        }
    }

    #[test]
    fn one_bad_signature_anywhere_is_identified() {
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
            batch[bad].signature[40] ^= 1;
            assert_eq!(check_all(&batch), vec![bad], "bad transaction at {bad}");
            assert_eq!(
                verify_transactions(&batch, CHAIN)[bad],
                Err(LedgerError::BadSignature {
                    tx: batch[bad].hash()
                })
            );
        }
    }

    #[test]
    fn tampered_body_and_wrong_chain_are_identified() {
        let mut batch = txs(20);
        batch[3].body.fee += 1; // signature no longer matches the body
        batch[11].body.chain_id = "other-chain".into();
        batch[11] = batch[11]
            .body
            .clone()
            .sign(&SigningKey::from_bytes(&[9; 32]));
        let got = verify_transactions(&batch, CHAIN);
        assert_eq!(
            got.iter()
                .enumerate()
                .filter_map(|(i, v)| v.is_err().then_some(i))
                .collect::<Vec<_>>(),
            vec![3, 11]
        );
        assert!(matches!(got[11], Err(LedgerError::WrongChain { .. })));
        for (t, v) in batch.iter().zip(&got) {
            assert_eq!(*v, t.verify(CHAIN));
        }
    }

    #[test]
    fn many_signatures_by_one_sender_share_a_coefficient() {
        let key = SigningKey::from_bytes(&[4; 32]);
        let mut batch: Vec<SignedTransaction> = (0..40)
            .map(|nonce| {
                TransactionBody {
                    chain_id: CHAIN.into(),
                    sender: Address::from_public_key(&key.verifying_key()),
                    fee: 1,
                    nonce,
                    expiry_height: 9,
                    action: crate::Action::Transfer {
                        recipient: Address([8; 32]),
                        amount: 1,
                    },
                }
                .sign(&key)
            })
            .collect();
        assert!(check_all(&batch).is_empty());
        batch[17].signature[0] ^= 4;
        assert_eq!(check_all(&batch), vec![17]);
    }

    #[test]
    fn non_canonical_s_is_rejected() {
        // ℓ, little-endian: S + ℓ is the same residue but not canonical.
        const L: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let mut batch = txs(10);
        let mut carry = 0u16;
        for (b, l) in batch[4].signature[32..].iter_mut().zip(L) {
            let sum = u16::from(*b) + u16::from(l) + carry;
            *b = sum as u8;
            carry = sum >> 8;
        }
        assert_eq!(carry, 0, "S < 2^253 for a real signature");
        assert_eq!(check_all(&batch), vec![4]);
    }

    #[test]
    fn small_order_sender_is_rejected_though_zip215_alone_accepts() {
        // With A of small order, [8][k]A = 0, so R = [S]B passes the cofactored equation for
        // any message: a forgery anyone can make. ed25519-consensus accepts it; rule 1 refuses.
        let identity = {
            let mut b = [0u8; 32];
            b[0] = 1;
            b
        };
        for a in [identity, order_two_bytes()] {
            let mut forged = tx(1);
            forged.body.sender = Address(a);
            let s = Scalar::from(12345u64);
            let r = EdwardsPoint::mul_base(&s).compress().to_bytes();
            forged.signature[..32].copy_from_slice(&r);
            forged.signature[32..].copy_from_slice(s.as_bytes());
            let vk = ed25519_consensus::VerificationKey::try_from(a).unwrap();
            assert!(
                vk.verify(
                    &ed25519_consensus::Signature::from(forged.signature),
                    forged.hash().as_bytes()
                )
                .is_ok(),
                "the forgery is ZIP-215-valid"
            );
            assert!(verify_signature(&forged).is_err());
            let mut batch = txs(5);
            batch.insert(2, forged);
            assert_eq!(check_all(&batch), vec![2]);
        }
    }

    #[test]
    fn mixed_order_r_is_accepted_like_zip215_though_verify_strict_refuses() {
        // A signer may choose R' = [r]B + T₂ (T₂ of order 2) and sign honestly with it:
        // S = r + k·a, k = H(R' ‖ A ‖ M). Then R' − ([S]B − [k]A) = T₂, which the cofactored
        // equation ignores and the cofactorless one does not. ZIP-215 accepts; batch and
        // single must agree on that in any grouping, whatever the random coefficients.
        let key = SigningKey::from_bytes(&[6; 32]);
        let a = key.to_scalar();
        let mut t = tx(3);
        t.body.sender = Address::from_public_key(&key.verifying_key());
        let r = Scalar::from(987_654_321u64);
        let r_mixed = (EdwardsPoint::mul_base(&r) + point(order_two_bytes()))
            .compress()
            .to_bytes();
        let k = Scalar::from_hash(
            Sha512::new()
                .chain_update(r_mixed)
                .chain_update(t.body.sender.0)
                .chain_update(t.hash().as_bytes()),
        );
        let s = r + k * a;
        t.signature[..32].copy_from_slice(&r_mixed);
        t.signature[32..].copy_from_slice(s.as_bytes());
        let strict = key.verifying_key().verify_strict(
            t.hash().as_bytes(),
            &ed25519_dalek::Signature::from_bytes(&t.signature),
        );
        assert!(strict.is_err(), "verify_strict refuses a mixed-order R");
        assert_eq!(verify_signature(&t), Ok(()));
        let mut batch = txs(8);
        batch.insert(5, t);
        assert!(check_all(&batch).is_empty());
        for _ in 0..20 {
            // Fresh random coefficients each time: the verdict must not depend on them.
            assert!(verify_transactions(&batch, CHAIN).iter().all(Result::is_ok));
        }
    }

    #[test]
    fn small_order_r_with_bad_equation_is_rejected() {
        let mut batch = txs(6);
        let mut identity = [0u8; 32];
        identity[0] = 1;
        batch[1].signature[..32].copy_from_slice(&identity);
        batch[3].signature[..32].copy_from_slice(&order_two_bytes());
        assert_eq!(check_all(&batch), vec![1, 3]);
    }

    #[test]
    fn mixed_order_sender_agrees_with_oracle() {
        // A' = A + T₂ is not small-order, so rule 1 lets it through; signatures made with A's
        // secret are checked against A' (k is hashed over A' bytes). Whatever the verdict,
        // batch, single and the oracle must agree on it.
        let secret = SigningKey::from_bytes(&[3; 32]);
        let a = point(secret.verifying_key().to_bytes());
        let mixed = Address((a + point(order_two_bytes())).compress().to_bytes());
        let batch: Vec<SignedTransaction> = (0..16)
            .map(|nonce| {
                let mut t = tx(nonce);
                t.body.sender = mixed;
                t.body.clone().sign(&secret)
            })
            .collect();
        check_all(&batch);
    }

    #[test]
    fn undecodable_sender_or_r_is_rejected() {
        // y = 2 is not the y of any curve point (x² = (y²−1)/(dy²+1) has no root).
        let mut off_curve = [0u8; 32];
        off_curve[0] = 2;
        assert!(CompressedEdwardsY(off_curve).decompress().is_none());
        let mut batch = txs(6);
        batch[0].body.sender = Address(off_curve);
        batch[4].signature[..32].copy_from_slice(&off_curve);
        assert_eq!(check_all(&batch), vec![0, 4]);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Random single-byte corruptions anywhere in the signature or body: batch, single
        /// and oracle verdicts always agree.
        #[test]
        fn corruptions_agree_with_oracle(
            flips in proptest::collection::vec((0usize..40, 0usize..64, 1u8..=255), 1..6)
        ) {
            let mut batch = txs(40);
            for (i, byte, mask) in flips {
                batch[i].signature[byte] ^= mask;
            }
            check_all(&batch);
        }
    }
}
