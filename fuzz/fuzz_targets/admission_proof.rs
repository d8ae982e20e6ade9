#![no_main]
//! Fuzz target: `cairn_node::fuzzing::admission_proof` (see docs/fuzzing.md).
libfuzzer_sys::fuzz_target!(|data: &[u8]| cairn_node::fuzzing::admission_proof(data));
