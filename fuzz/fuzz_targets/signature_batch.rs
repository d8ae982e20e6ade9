#![no_main]
//! Fuzz target: `cairn_ledger::fuzzing::signature_batch` with the ZIP-215 reference
//! implementation (ed25519-consensus) as the oracle (see docs/fuzzing.md).
//!
//! One execution checks a batch of up to `SIGNATURE_BATCH_TXS_MAX` transactions; every
//! 2^14 executions the target prints to stderr how many batches and transactions it has
//! checked against the oracle so far (the last such line is the run's count of cases).

use std::sync::atomic::{AtomicU64, Ordering};

use cairn_ledger::fuzzing::SIGNATURE_BATCH_TXS_MAX;

static BATCHES: AtomicU64 = AtomicU64::new(0);
static TRANSACTIONS: AtomicU64 = AtomicU64::new(0);

fn zip215(key: &[u8; 32], sig: &[u8; 64], msg: &[u8; 32]) -> bool {
    ed25519_consensus::VerificationKey::try_from(*key).is_ok_and(|vk| {
        vk.verify(&ed25519_consensus::Signature::from(*sig), msg)
            .is_ok()
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cairn_ledger::fuzzing::signature_batch(data, zip215);
    // The batch size, as `signature_batch` reads it: the first byte (0 if none) modulo
    // SIGNATURE_BATCH_TXS_MAX + 1.
    let txs = u64::from(data.first().copied().unwrap_or(0)) % (SIGNATURE_BATCH_TXS_MAX as u64 + 1);
    let total = TRANSACTIONS.fetch_add(txs, Ordering::Relaxed) + txs;
    let batches = BATCHES.fetch_add(1, Ordering::Relaxed) + 1;
    if batches % (1 << 14) == 0 {
        eprintln!("signature_batch: {batches} batches, {total} transactions checked against ed25519-consensus");
    }
});
