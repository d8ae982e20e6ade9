//! Replays the committed fuzz corpora of the consensus targets (`fuzz/corpus/<target>/`,
//! see docs/fuzzing.md) through the same entry points the fuzzer calls, on stable, and
//! checks that the seeds are valid, verifying messages. `CAIRN_FUZZ_WRITE_SEEDS=1` also
//! writes the seeds into the corpus.

#[path = "../../fuzz/replay.rs"]
mod replay;

use cairn_consensus::fuzzing::{self, NAMESPACE, validator_set};
use cairn_consensus::{Certificate, Evidence, Message};

#[test]
fn consensus_message_corpus() {
    let seeds = fuzzing::seeds("consensus_message");
    for s in &seeds {
        let ok = match Message::decode(s).expect("seed decodes") {
            Message::Vote(v) => v.verify(&NAMESPACE, validator_set()).is_ok(),
            Message::Certificate(c) => c.verify(&NAMESPACE, validator_set()).is_ok(),
        };
        assert!(ok, "seed does not verify");
    }
    assert!(replay::replay("consensus_message", &seeds, fuzzing::consensus_message) > 0);
}

#[test]
fn epoch_message_corpus() {
    let seeds = fuzzing::seeds("epoch_message");
    for s in &seeds {
        let envelope = cairn_consensus::EpochMessage::decode(s).expect("seed decodes");
        // Epoch 0 signs under the chain namespace itself.
        let ok = match envelope.message {
            Message::Vote(v) => v.verify(&NAMESPACE, validator_set()).is_ok(),
            Message::Certificate(c) => c.verify(&NAMESPACE, validator_set()).is_ok(),
        };
        assert!(ok, "seed does not verify");
    }
    assert!(replay::replay("epoch_message", &seeds, fuzzing::epoch_message) > 0);
}

#[test]
fn certificate_corpus() {
    let seeds = fuzzing::seeds("certificate");
    for s in &seeds {
        let c: Certificate = borsh::from_slice(s).expect("seed decodes");
        assert!(
            c.verify(&NAMESPACE, validator_set()).is_ok(),
            "seed does not verify"
        );
    }
    assert!(replay::replay("certificate", &seeds, fuzzing::certificate) > 0);
}

#[test]
fn evidence_corpus() {
    let seeds = fuzzing::seeds("evidence");
    for s in &seeds {
        let e = Evidence::decode(s).expect("seed decodes");
        assert!(
            e.verify(&NAMESPACE, validator_set()).is_ok(),
            "seed does not verify"
        );
    }
    assert!(replay::replay("evidence", &seeds, fuzzing::evidence) > 0);
}
