//! Replays the committed fuzz corpora of the node's targets (`fuzz/corpus/<target>/`, see
//! docs/fuzzing.md) through the same entry points the fuzzer calls, on stable, and checks
//! that the seeds are valid encodings. `CAIRN_FUZZ_WRITE_SEEDS=1` also writes the seeds
//! into the corpus (after a format change: compact block and block seeds follow the types).

#[path = "../../fuzz/replay.rs"]
mod replay;

use cairn_node::compact::CompactBlock;
use cairn_node::fuzzing::{self, block_bytes_max, block_txs_max, sync_response_bytes_max};
use cairn_node::sync::{SyncRequest, SyncResponse};

#[test]
fn compact_block_corpus() {
    let seeds = fuzzing::seeds("compact_block");
    for s in &seeds {
        CompactBlock::decode(s, block_bytes_max(), block_txs_max()).expect("seed decodes");
    }
    assert!(replay::replay("compact_block", &seeds, fuzzing::compact_block) > 0);
}

#[test]
fn tx_batch_corpus() {
    let seeds = fuzzing::seeds("tx_batch");
    for s in &seeds {
        cairn_node::txgossip::decode_batch(s).expect("seed decodes");
    }
    assert!(replay::replay("tx_batch", &seeds, fuzzing::tx_batch) > 0);
}

#[test]
fn sync_request_corpus() {
    let seeds = fuzzing::seeds("sync_request");
    for s in &seeds {
        SyncRequest::decode(s).expect("seed decodes");
    }
    assert!(replay::replay("sync_request", &seeds, fuzzing::sync_request) > 0);
}

#[test]
fn sync_response_corpus() {
    let seeds = fuzzing::seeds("sync_response");
    for s in &seeds {
        SyncResponse::decode(s, sync_response_bytes_max()).expect("seed decodes");
    }
    assert!(replay::replay("sync_response", &seeds, fuzzing::sync_response) > 0);
}

#[test]
fn sync_frame_corpus() {
    let seeds = fuzzing::seeds("sync_frame");
    assert!(replay::replay("sync_frame", &seeds, fuzzing::sync_frame) > 0);
}

#[test]
fn admission_proof_corpus() {
    let seeds = fuzzing::seeds("admission_proof");
    assert!(replay::replay("admission_proof", &seeds, fuzzing::admission_proof) > 0);
}
