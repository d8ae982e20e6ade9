//! Criterion micro-benchmarks of the consensus state machine's message handling: one vote,
//! one quorum of votes forming a certificate, one certificate from a peer.
//!
//! ```text
//! cargo bench -p cairn-consensus --bench consensus -- --warm-up-time 1 --measurement-time 3
//! ```

use std::hint::black_box;

use cairn_consensus::testing::{Fixture, mock_proposal};
use cairn_consensus::*;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

const SIZES: [usize; 3] = [4, 16, 64];

fn msg(message: Message) -> Input {
    Input::Message {
        message,
        now_ms: 10,
    }
}

/// Quorum of equal-power validators excluding validator 0 (the machine itself).
fn quorum_signers(n: usize) -> Vec<ValidatorIndex> {
    let quorum = n * 2 / 3 + 1;
    (1..=quorum as ValidatorIndex).collect()
}

fn handle_vote(c: &mut Criterion) {
    let mut g = c.benchmark_group("consensus::handle_vote");
    g.throughput(Throughput::Elements(1));
    for n in SIZES {
        let f = Fixture::new(&vec![1; n]);
        let vote = f.vote_msg(1, VoteKind::Nullify(1));
        // One Nullify vote for the current view from another validator (verify + record;
        // no quorum yet). Fresh machine per iteration (built outside the timing).
        g.bench_function(format!("validators={n}"), |b| {
            b.iter_batched(
                || (f.machine(Some(0), 0).0, msg(vote.clone())),
                |(mut m, input)| black_box(m.handle(input).unwrap()),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

fn handle_quorum(c: &mut Criterion) {
    let mut g = c.benchmark_group("consensus::handle_quorum");
    for n in SIZES {
        let f = Fixture::new(&vec![1; n]);
        let p1 = mock_proposal(1, 0, testing::genesis_payload());
        let signers = quorum_signers(n);
        let votes: Vec<Input> = signers
            .iter()
            .map(|&s| msg(f.vote_msg(s, VoteKind::Notarize(p1))))
            .collect();
        g.throughput(Throughput::Elements(votes.len() as u64));
        // A quorum of Notarize votes for view 1 (the leader's first): verify each, form
        // the notarization, cast Finalize, enter view 2. Throughput counts votes.
        g.bench_function(format!("validators={n}"), |b| {
            b.iter_batched(
                || (f.machine(Some(0), 0).0, votes.clone()),
                |(mut m, votes)| {
                    for input in votes {
                        black_box(m.handle(input).unwrap());
                    }
                    assert_eq!(m.view(), 2);
                    m
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

fn handle_certificate(c: &mut Criterion) {
    let mut g = c.benchmark_group("consensus::handle_certificate");
    g.throughput(Throughput::Elements(1));
    for n in SIZES {
        let f = Fixture::new(&vec![1; n]);
        let cert = f.cert_msg(CertificateKind::Nullification(1), &quorum_signers(n));
        // A nullification of the current view from a peer: verify every signature,
        // record, forward, enter view 2.
        g.bench_function(format!("validators={n}"), |b| {
            b.iter_batched(
                || (f.machine(Some(0), 0).0, msg(cert.clone())),
                |(mut m, input)| black_box(m.handle(input).unwrap()),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

fn decode(c: &mut Criterion) {
    let f = Fixture::new(&[1; 4]);
    let bytes = f.vote_msg(1, VoteKind::Nullify(1)).encode();
    let mut g = c.benchmark_group("consensus::decode_vote");
    g.throughput(Throughput::Elements(1));
    g.bench_function("single", |b| {
        b.iter(|| Message::decode(black_box(&bytes)).unwrap())
    });
    g.finish();
}

criterion_group!(
    benches,
    handle_vote,
    handle_quorum,
    handle_certificate,
    decode
);
criterion_main!(benches);
