#![no_main]
//! Fuzz target: `cairn_node::fuzzing::tx_batch` (see docs/fuzzing.md).
libfuzzer_sys::fuzz_target!(|data: &[u8]| cairn_node::fuzzing::tx_batch(data));
