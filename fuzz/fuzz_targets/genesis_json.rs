#![no_main]
//! Fuzz target: `cairn_genesis::fuzzing::genesis_json` (see docs/fuzzing.md).
libfuzzer_sys::fuzz_target!(|data: &[u8]| cairn_genesis::fuzzing::genesis_json(data));
