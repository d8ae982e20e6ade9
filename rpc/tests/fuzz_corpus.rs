//! Replays the committed fuzz corpora of the RPC targets (`fuzz/corpus/<target>/`, see
//! docs/fuzzing.md) through the same entry points the fuzzer calls, on stable.
//! `CAIRN_FUZZ_WRITE_SEEDS=1` also writes the seeds into the corpus.

#[path = "../../fuzz/replay.rs"]
mod replay;

use cairn_rpc::fuzzing;

#[test]
fn rpc_body_corpus() {
    let seeds = fuzzing::seeds("rpc_body");
    assert!(replay::replay("rpc_body", &seeds, fuzzing::rpc_body) > 0);
}

#[test]
fn rpc_params_corpus() {
    let seeds = fuzzing::seeds("rpc_params");
    assert!(replay::replay("rpc_params", &seeds, fuzzing::rpc_params) > 0);
}

#[test]
fn oversize_body_is_refused() {
    // The body bound check of the entry point runs (413 expected past the limit).
    fuzzing::rpc_body(&vec![b' '; fuzzing::FUZZ_BODY_BYTES_MAX + 1]);
}
