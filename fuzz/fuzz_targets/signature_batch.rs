#![no_main]
//! Fuzz target: `cairn_ledger::fuzzing::signature_batch` with the ZIP-215 reference
//! implementation (ed25519-consensus) as the oracle (see docs/fuzzing.md).

fn zip215(key: &[u8; 32], sig: &[u8; 64], msg: &[u8; 32]) -> bool {
    ed25519_consensus::VerificationKey::try_from(*key).is_ok_and(|vk| {
        vk.verify(&ed25519_consensus::Signature::from(*sig), msg)
            .is_ok()
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cairn_ledger::fuzzing::signature_batch(data, zip215);
});
