#![no_main]
//! Fuzz target: `cairn_rpc::fuzzing::rpc_body` (see docs/fuzzing.md).
libfuzzer_sys::fuzz_target!(|data: &[u8]| cairn_rpc::fuzzing::rpc_body(data));
