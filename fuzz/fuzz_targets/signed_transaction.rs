#![no_main]
//! Fuzz target: `cairn_ledger::fuzzing::signed_transaction` (see docs/fuzzing.md).
libfuzzer_sys::fuzz_target!(|data: &[u8]| cairn_ledger::fuzzing::signed_transaction(data));
