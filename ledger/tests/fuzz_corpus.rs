//! Replays the committed fuzz corpora of the ledger's targets (`fuzz/corpus/<target>/`, see
//! docs/fuzzing.md) through the same entry points the fuzzer calls, on stable, and checks
//! that the seed inputs are valid encodings. `CAIRN_FUZZ_WRITE_SEEDS=1` also writes the
//! seeds into the corpus (after a format change).

#[path = "../../fuzz/replay.rs"]
mod replay;

use cairn_ledger::fuzzing::{self, BLOCK_BYTES_BOUND};
use cairn_ledger::{Block, SignedTransaction};

/// The ZIP-215 reference verdict (ed25519-consensus), the oracle of `signature_batch`.
fn zip215(key: &[u8; 32], sig: &[u8; 64], msg: &[u8; 32]) -> bool {
    ed25519_consensus::VerificationKey::try_from(*key).is_ok_and(|vk| {
        vk.verify(&ed25519_consensus::Signature::from(*sig), msg)
            .is_ok()
    })
}

#[test]
fn signed_transaction_corpus() {
    let seeds = fuzzing::seeds("signed_transaction");
    for s in &seeds {
        assert!(SignedTransaction::decode(s).is_ok(), "seed does not decode");
    }
    assert!(replay::replay("signed_transaction", &seeds, fuzzing::signed_transaction) > 0);
}

#[test]
fn block_corpus() {
    let seeds = fuzzing::seeds("block");
    for s in &seeds {
        let block = Block::decode(s, BLOCK_BYTES_BOUND).expect("seed decodes");
        assert!(
            block.check_body().is_ok(),
            "seed body does not match its header"
        );
    }
    assert!(replay::replay("block", &seeds, fuzzing::block) > 0);
}

#[test]
fn signature_batch_corpus() {
    let seeds = fuzzing::seeds("signature_batch");
    assert!(
        replay::replay("signature_batch", &seeds, |d| {
            fuzzing::signature_batch(d, zip215);
        }) > 0
    );
}

#[test]
fn each_adversarial_kind_gets_the_verdict_it_is_built_for() {
    // One transaction per batch: op byte, key, special point (index 0 is a small-order
    // point: the identity), then 64 bytes for the rest. The builder is only useful if its
    // valid-under-ZIP-215 kinds really are accepted and its invalid ones refused.
    let one = |op: u8, point: u8| {
        let mut data = vec![1, op, 1, point];
        data.extend_from_slice(&[0x11; 64]);
        fuzzing::signature_batch(&data, zip215)
    };
    assert_eq!(one(0, 0), 1, "honest signature");
    assert_eq!(one(1, 0), 0, "flipped byte");
    assert_eq!(
        one(2, 0),
        0,
        "small-order sender forgery (ZIP-215 alone accepts it)"
    );
    assert_eq!(one(3, 0), 1, "small-order R with S = k·a");
    assert_eq!(one(4, 0), 1, "mixed-order R, honest S");
    assert_eq!(one(5, 0), 1, "mixed-order sender key, honest S");
    assert_eq!(one(6, 0), 0, "non-canonical S");
    assert_eq!(one(8, 0), 0, "identity sender, zero signature");
    // Non-canonical encodings of the identity as R (y = p + 1; sign bit with x = 0): still
    // small-order, still accepted under ZIP-215 with S = k·a.
    let mut accepted_non_canonical_r = 0;
    for point in 8u8..84 {
        accepted_non_canonical_r += one(3, point);
    }
    assert!(accepted_non_canonical_r >= 2, "no non-canonical R accepted");
}

#[test]
fn oversize_transaction_is_refused_by_the_entry_point_check() {
    // The entry point's bound check must itself be able to fail: a 257-byte input reaches
    // it (and passes, because the decoder refuses it).
    fuzzing::signed_transaction(&[0u8; cairn_ledger::TX_BYTES_MAX + 1]);
    assert!(SignedTransaction::decode(&[0u8; cairn_ledger::TX_BYTES_MAX + 1]).is_err());
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]
    /// Batch verification gives exactly the one-by-one ZIP-215 verdicts (plus the ledger's
    /// small-order-key rule) on batches built from random bytes: honest signatures, flipped
    /// bytes, small-order and non-canonical keys and R encodings, mixed-order R and keys,
    /// non-canonical S, wrong chain ids and raw bytes (see `fuzzing::signature_batch`).
    #[test]
    fn batch_verdicts_equal_zip215_one_by_one(
        data in proptest::collection::vec(proptest::num::u8::ANY, 0..2048)
    ) {
        fuzzing::signature_batch(&data, zip215);
    }

    /// Every adversarial kind, many per batch: the op byte of each transaction is chosen
    /// from the adversarial kinds only (not raw bytes).
    #[test]
    fn adversarial_batches_equal_zip215_one_by_one(
        items in proptest::collection::vec((0u8..9, proptest::num::u8::ANY, proptest::num::u8::ANY, proptest::collection::vec(proptest::num::u8::ANY, 64)), 1..40)
    ) {
        let mut data = vec![items.len() as u8];
        for (op, key, point, rest) in items {
            data.extend_from_slice(&[op, key, point]);
            data.extend_from_slice(&rest);
        }
        fuzzing::signature_batch(&data, zip215);
    }
}
