//! Fuzzing entry points for the ledger's decoders and its batch signature verification.
//!
//! Not part of the API: called by the cargo-fuzz targets in `fuzz/` (one target per
//! function, same name) and by `tests/fuzz_corpus.rs`, which replays the committed corpus
//! `fuzz/corpus/<target>/` on stable. Each function takes arbitrary bytes, never panics on
//! any input, and `assert!`s the properties in its docs (a failed assertion is a finding).
//! See `docs/fuzzing.md`.

use curve25519_dalek::constants::EIGHT_TORSION;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use ed25519_dalek::SigningKey;
use sha2::{Digest, Sha512};

use crate::{
    Address, Block, BlockHeader, Hash, LedgerError, SignedTransaction, TX_BYTES_MAX,
    TransactionBody, txs_root, verify_signature, verify_transactions,
};

/// Bound given to [`Block::decode`] by [`block`]: the genesis default `block_bytes_max`
/// (4 MiB, `cairn_genesis::ChainParams`).
pub const BLOCK_BYTES_BOUND: usize = 4 * 1024 * 1024;

/// Chain id of the transactions [`signature_batch`] builds.
pub const FUZZ_CHAIN: &str = "cairn-fuzz";

/// Most transactions [`signature_batch`] puts in one batch (keeps an execution cheap).
pub const SIGNATURE_BATCH_TXS_MAX: usize = 64;

/// `SignedTransaction::decode`: refuses anything over [`TX_BYTES_MAX`] as `Oversize`; a
/// decoded transaction re-encodes to exactly the input bytes (the encoding is canonical)
/// and decodes again to the same value; a byte appended is refused; hashing and the
/// signature checks (single and batch, which must agree) never panic.
pub fn signed_transaction(data: &[u8]) {
    let decoded = SignedTransaction::decode(data);
    if data.len() > TX_BYTES_MAX {
        assert!(
            matches!(decoded, Err(LedgerError::Oversize { .. })),
            "{} bytes accepted past TX_BYTES_MAX",
            data.len()
        );
        return;
    }
    let Ok(tx) = decoded else { return };
    let bytes = tx.encode();
    assert_eq!(bytes, data, "decode→encode is not the identity");
    assert_eq!(SignedTransaction::decode(&bytes).as_ref(), Ok(&tx));
    let mut longer = data.to_vec();
    longer.push(0);
    assert!(
        SignedTransaction::decode(&longer).is_err(),
        "trailing byte accepted"
    );
    let single = tx.verify(&tx.body.chain_id.clone());
    let batch = verify_transactions(std::slice::from_ref(&tx), &tx.body.chain_id);
    assert_eq!(batch, vec![single], "batch and single verdicts differ");
    assert_eq!(tx.hash(), tx.body.hash());
}

/// `Block::decode` with the bound [`BLOCK_BYTES_BOUND`]: refuses input longer than the
/// bound it is given (checked by asking for one byte less than the input); a decoded block
/// re-encodes to exactly the input and decodes again to the same value; every transaction
/// in it is within [`TX_BYTES_MAX`] when re-encoded or is refused by
/// `SignedTransaction::decode` (the block decoder has no per-transaction bound of its own,
/// so this is only recorded, not asserted); hashing never panics; a block that passes
/// `check_body` has the ids of its transactions and their root in its header.
pub fn block(data: &[u8]) {
    if !data.is_empty() {
        assert!(
            matches!(
                Block::decode(data, data.len() - 1),
                Err(LedgerError::Oversize { .. })
            ),
            "block accepted past its bound"
        );
    }
    let Ok(block) = Block::decode(data, BLOCK_BYTES_BOUND) else {
        return;
    };
    let bytes = block.encode();
    assert_eq!(bytes, data, "decode→encode is not the identity");
    assert_eq!(Block::decode(&bytes, bytes.len()).as_ref(), Ok(&block));
    let ids: Vec<Hash> = block
        .transactions
        .iter()
        .map(SignedTransaction::hash)
        .collect();
    let _ = block.hash();
    // The body check every node makes before keeping a block: when it passes, the ids it
    // returns are the transactions' and their root is the header's.
    if let Ok(checked) = block.check_body() {
        assert_eq!(checked, ids);
        assert_eq!(txs_root(&ids), block.header.txs_root);
    }
    for tx in &block.transactions {
        let tx_bytes = tx.encode();
        if tx_bytes.len() <= TX_BYTES_MAX {
            assert_eq!(SignedTransaction::decode(&tx_bytes).as_ref(), Ok(tx));
        }
    }
}

/// The 32-byte encodings the adversarial transactions of [`signature_batch`] draw points
/// from: the eight small-order points (canonical), every `y + p` non-canonical encoding
/// (`y < 19`, the only `y` values that have one) and every `y < 19` canonical one, each
/// with both sign bits (a set sign bit with `x = 0` is non-canonical too). Not all decode.
fn special_points() -> &'static [[u8; 32]] {
    static POINTS: std::sync::OnceLock<Vec<[u8; 32]>> = std::sync::OnceLock::new();
    POINTS.get_or_init(|| {
        let mut out: Vec<[u8; 32]> = EIGHT_TORSION
            .iter()
            .map(|p| p.compress().to_bytes())
            .collect();
        for y in 0u8..19 {
            for sign in [0u8, 0x80] {
                // y + p, p = 2^255 - 19: low byte 0xed + y, then 0xff…, top byte 0x7f.
                let mut non_canonical = [0xffu8; 32];
                non_canonical[0] = 0xed + y;
                non_canonical[31] = 0x7f | sign;
                out.push(non_canonical);
                let mut canonical = [0u8; 32];
                canonical[0] = y;
                canonical[31] = sign;
                out.push(canonical);
            }
        }
        out
    })
}

/// Fixed signing keys of [`signature_batch`] (deriving a key costs a scalar multiplication).
fn keys() -> &'static [SigningKey] {
    static KEYS: std::sync::OnceLock<Vec<SigningKey>> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        (1u8..=4)
            .map(|i| SigningKey::from_bytes(&[i; 32]))
            .collect()
    })
}

/// Reads fuzzer bytes; past the end it yields zeros.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        for x in &mut b {
            *x = self.byte();
        }
        u64::from_le_bytes(b)
    }
    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut b = [0u8; N];
        for x in &mut b {
            *x = self.byte();
        }
        b
    }
}

/// `S = r + k·a`, `k = SHA-512(R ‖ A ‖ M) mod ℓ` over the bytes given: the RFC 8032
/// signing equation with a caller-chosen `R` encoding and `A` encoding.
fn sign_with(r: Scalar, r_bytes: [u8; 32], a: Scalar, a_bytes: [u8; 32], msg: &Hash) -> [u8; 64] {
    let k = Scalar::from_hash(
        Sha512::new()
            .chain_update(r_bytes)
            .chain_update(a_bytes)
            .chain_update(msg.as_bytes()),
    );
    let s = r + k * a;
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(&r_bytes);
    sig[32..].copy_from_slice(s.as_bytes());
    sig
}

/// One transaction of a [`signature_batch`], built from fuzzer bytes.
fn adversarial_tx(input: &mut Reader<'_>) -> SignedTransaction {
    let op = input.byte();
    let key = &keys()[usize::from(input.byte()) % keys().len()];
    let points = special_points();
    let point = points[usize::from(input.byte()) % points.len()];
    let body = TransactionBody {
        chain_id: if op & 0x80 != 0 && op & 0x40 != 0 {
            "other-chain".into()
        } else {
            FUZZ_CHAIN.into()
        },
        sender: Address::from_public_key(&key.verifying_key()),
        fee: 1,
        nonce: u64::from(input.byte()),
        expiry_height: 100,
        action: crate::Action::Transfer {
            recipient: Address(input.array()),
            amount: input.u64(),
        },
    };
    let a = key.to_scalar();
    let a_bytes = body.sender.0;
    let r = Scalar::from(input.u64()) + Scalar::ONE;
    let mut tx = match op % 10 {
        // An honest RFC 8032 signature.
        0 => body.sign(key),
        // An honest signature, then one byte of signature or body flipped.
        1 => {
            let mut tx = body.sign(key);
            let at = usize::from(input.byte()) % 96;
            let mask = input.byte().max(1);
            if at < 64 {
                tx.signature[at] ^= mask;
            } else if let crate::Action::Transfer { recipient, .. } = &mut tx.body.action {
                recipient.0[at - 64] ^= mask;
            }
            tx
        }
        // A small-order (or undecodable, or non-canonical) sender key with the forgery
        // R = [s]B, S = s that the cofactored equation accepts for any small-order key.
        2 => {
            let mut body = body;
            body.sender = Address(point);
            let s = r;
            let mut sig = [0u8; 64];
            sig[..32].copy_from_slice(&EdwardsPoint::mul_base(&s).compress().to_bytes());
            sig[32..].copy_from_slice(s.as_bytes());
            SignedTransaction {
                body,
                signature: sig,
            }
        }
        // R a special encoding (small-order: S = k·a makes the cofactored equation hold).
        3 => {
            let hash = body.hash();
            let sig = sign_with(Scalar::ZERO, point, a, a_bytes, &hash);
            SignedTransaction {
                body,
                signature: sig,
            }
        }
        // Mixed-order R = [r]B + T, honest S = r + k·a: ZIP-215 accepts.
        4 => {
            let t = EIGHT_TORSION[usize::from(input.byte()) % 8];
            let r_bytes = (EdwardsPoint::mul_base(&r) + t).compress().to_bytes();
            let hash = body.hash();
            let sig = sign_with(r, r_bytes, a, a_bytes, &hash);
            SignedTransaction {
                body,
                signature: sig,
            }
        }
        // Mixed-order sender A' = A + T signed with a's secret over A' bytes: the
        // cofactored equation holds.
        5 => {
            let t = EIGHT_TORSION[usize::from(input.byte()) % 8];
            let a_point = CompressedEdwardsY(a_bytes)
                .decompress()
                .expect("a real key");
            let mut body = body;
            body.sender = Address((a_point + t).compress().to_bytes());
            let hash = body.hash();
            let r_bytes = EdwardsPoint::mul_base(&r).compress().to_bytes();
            let sig = sign_with(r, r_bytes, a, body.sender.0, &hash);
            SignedTransaction {
                body,
                signature: sig,
            }
        }
        // Non-canonical S: an honest signature with ℓ (or a multiple's worth of high bits)
        // added to S.
        6 => {
            let mut tx = body.sign(key);
            let mut s = [0u8; 32];
            s.copy_from_slice(&tx.signature[32..]);
            let bump = input.byte();
            if bump & 1 == 0 {
                // S + ℓ (S < 2^253 for an honest S, so no overflow of 256 bits).
                let l = Scalar::ZERO - Scalar::ONE; // ℓ − 1
                let mut carry = 1u16; // + 1 gives ℓ
                for (b, lb) in s.iter_mut().zip(l.as_bytes()) {
                    let sum = u16::from(*b) + u16::from(*lb) + carry;
                    *b = sum as u8;
                    carry = sum >> 8;
                }
            } else {
                s[31] |= 0x10 | (bump & 0xe0);
            }
            tx.signature[32..].copy_from_slice(&s);
            tx
        }
        // Non-canonical or special sender encoding with an honest-looking signature by key.
        7 => {
            let mut body = body;
            body.sender = Address(point);
            let hash = body.hash();
            let r_bytes = EdwardsPoint::mul_base(&r).compress().to_bytes();
            let sig = sign_with(r, r_bytes, a, point, &hash);
            SignedTransaction {
                body,
                signature: sig,
            }
        }
        // Identity sender with S = 0 and R = identity (or its non-canonical encodings).
        8 => {
            let mut body = body;
            body.sender = Address(point);
            let mut sig = [0u8; 64];
            sig[..32].copy_from_slice(&points[usize::from(input.byte()) % points.len()]);
            SignedTransaction {
                body,
                signature: sig,
            }
        }
        // Raw fuzzer bytes for sender and signature.
        _ => {
            let mut body = body;
            body.sender = Address(input.array());
            let signature = {
                let mut sig = [0u8; 64];
                sig[..32].copy_from_slice(&input.array::<32>());
                sig[32..].copy_from_slice(&input.array::<32>());
                sig
            };
            SignedTransaction { body, signature }
        }
    };
    // Sometimes the signature is moved to another transaction's body afterwards.
    if op & 0x80 != 0 && op & 0x40 == 0 {
        tx.body.fee += 1;
    }
    tx
}

/// Batch signature verification against the ZIP-215 reference, one transaction at a time.
///
/// Builds up to [`SIGNATURE_BATCH_TXS_MAX`] transactions from `data`, mixing honest
/// signatures, flipped bytes, small-order and non-canonical sender keys and `R` encodings,
/// mixed-order `R` and sender keys with signatures that satisfy the cofactored equation,
/// non-canonical `S`, wrong chain ids and raw bytes, and asserts for each transaction `i`:
///
/// - `verify_transactions(batch)[i] == batch[i].verify(FUZZ_CHAIN)` (batch = single);
/// - `verify_transactions(batch)[i].is_ok()` iff the chain id is [`FUZZ_CHAIN`], the
///   sender key does not decode to a small-order point (the ledger's rule 1), and
///   `zip215(sender, signature, hash)` — the reference verdict, e.g. `ed25519_consensus`'s
///   `VerificationKey::try_from(sender)?.verify(&signature.into(), hash)`. The oracle is
///   passed in because `ed25519-consensus` is only a dev-dependency of this crate.
///
/// Returns how many transactions of the batch were accepted.
pub fn signature_batch(
    data: &[u8],
    zip215: impl Fn(&[u8; 32], &[u8; 64], &[u8; 32]) -> bool,
) -> usize {
    let mut input = Reader(data);
    let count = usize::from(input.byte()) % (SIGNATURE_BATCH_TXS_MAX + 1);
    let txs: Vec<SignedTransaction> = (0..count).map(|_| adversarial_tx(&mut input)).collect();
    let verdicts = verify_transactions(&txs, FUZZ_CHAIN);
    assert_eq!(verdicts.len(), txs.len());
    for (i, (tx, verdict)) in txs.iter().zip(&verdicts).enumerate() {
        assert_eq!(
            *verdict,
            tx.verify(FUZZ_CHAIN),
            "batch vs single, transaction {i}"
        );
        let small_order = CompressedEdwardsY(tx.body.sender.0)
            .decompress()
            .is_some_and(|a| a.is_small_order());
        let expected = tx.body.chain_id == FUZZ_CHAIN
            && !small_order
            && zip215(&tx.body.sender.0, &tx.signature, tx.hash().as_bytes());
        assert_eq!(
            verdict.is_ok(),
            expected,
            "ours vs the ZIP-215 oracle, transaction {i}: {tx:?}"
        );
        if tx.body.chain_id == FUZZ_CHAIN {
            assert_eq!(verify_signature(tx).is_ok(), verdict.is_ok());
        }
    }
    verdicts.iter().filter(|v| v.is_ok()).count()
}

/// Valid encodings to seed the corpus of `target` (a function of this module): honest
/// transactions of several sizes, blocks of 0, 1 and 3 transactions, and one batch of each
/// adversarial kind. Built from the types, not fixed bytes, so they follow format changes:
/// `tests/fuzz_corpus.rs` writes them to `fuzz/corpus/<target>/seed-*` when run with
/// `CAIRN_FUZZ_WRITE_SEEDS=1`.
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    let txs = |n: u64| -> Vec<SignedTransaction> {
        (0..n)
            .map(|i| {
                let key = &keys()[(i % 4) as usize];
                TransactionBody {
                    chain_id: if i % 2 == 0 {
                        FUZZ_CHAIN.into()
                    } else {
                        "cairn-chain-id-of-32-bytes-xxxxx".into()
                    },
                    sender: Address::from_public_key(&key.verifying_key()),
                    fee: i,
                    nonce: i,
                    expiry_height: u64::MAX - i,
                    action: crate::Action::Transfer {
                        recipient: Address([i as u8; 32]),
                        amount: 1_000 * i + 1,
                    },
                }
                .sign(key)
            })
            .collect()
    };
    match target {
        "signed_transaction" => txs(4).iter().map(SignedTransaction::encode).collect(),
        "block" => [0, 1, 3]
            .into_iter()
            .map(|n| sample_block(txs(n)).encode())
            .collect(),
        "signature_batch" => (0u8..10)
            .map(|op| {
                let mut bytes = vec![3u8];
                for i in 0..3u8 {
                    bytes.extend_from_slice(&[op, i, i * 7]);
                    bytes.extend_from_slice(&[i; 32]);
                    bytes.extend_from_slice(&[0x55; 24]);
                }
                bytes
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// A block carrying `transactions`, its header built by decoding zeros (whatever fields the
/// header has) and then setting the fields this module knows; both transaction roots are
/// correct, so the block passes `Block::check_body`.
pub fn sample_block(transactions: Vec<SignedTransaction>) -> Block {
    let mut header = sample_header();
    header.txs_root = txs_root(
        &transactions
            .iter()
            .map(SignedTransaction::hash)
            .collect::<Vec<_>>(),
    );
    header.signed_txs_root = crate::signed_txs_root_of(&transactions);
    Block {
        header,
        transactions,
    }
}

/// A header at height 7 of chain [`FUZZ_CHAIN`]: every other field from decoding zeros (so
/// it compiles whatever fields are added), then height, view, parent, proposer, timestamp
/// and roots set to non-trivial values.
pub fn sample_header() -> BlockHeader {
    let zeros = [0u8; 4096];
    let mut header: BlockHeader =
        borsh::BorshDeserialize::deserialize(&mut &zeros[..]).expect("zeros decode to a header");
    header.chain_id = FUZZ_CHAIN.into();
    header.height = 7;
    header.view = 9;
    header.parent_hash = Hash::derive("cairn fuzz parent", &[]);
    header.proposer = Address::from_public_key(&keys()[0].verifying_key());
    header.timestamp_ms = 1_700_000_000_000;
    header.txs_root = txs_root(&[]);
    header.state_root = Hash::derive("cairn fuzz state", &[]);
    header
}
