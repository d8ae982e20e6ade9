//! Property tests: arbitrary peer input never panics the machine, errors
//! never change state, and the votes it signs (its WAL) never conflict.

use cairn_consensus::testing::{Cluster, Fixture, genesis, genesis_payload, mock_proposal};
use cairn_consensus::{
    CertificateKind, Consensus, Digest, Input, Message, Output, Proposal, VoteKind, WalEntry,
};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Vote {
        signer: u16,
        kind: u8,
        view: u64,
        variant: u8,
    },
    Cert {
        kind: u8,
        view: u64,
        variant: u8,
        signers: u8,
    },
    Timeout {
        dt: u64,
    },
    Validated {
        valid: bool,
    },
    Proposed {
        variant: u8,
    },
    Garbage {
        bytes: Vec<u8>,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u16..5, 0u8..3, 0u64..10, 0u8..3)
            .prop_map(|(signer, kind, view, variant)| Op::Vote { signer, kind, view, variant }),
        2 => (0u8..3, 0u64..10, 0u8..3, any::<u8>())
            .prop_map(|(kind, view, variant, signers)| Op::Cert { kind, view, variant, signers }),
        2 => (0u64..3_000).prop_map(|dt| Op::Timeout { dt }),
        1 => any::<bool>().prop_map(|valid| Op::Validated { valid }),
        1 => (0u8..3).prop_map(|variant| Op::Proposed { variant }),
        1 => proptest::collection::vec(any::<u8>(), 0..200).prop_map(|bytes| Op::Garbage { bytes }),
    ]
}

/// A small family of proposals per view: the "honest" one and two others.
fn proposal(view: u64, variant: u8) -> Proposal {
    let view = view.max(1);
    match variant {
        0 => mock_proposal(view, view - 1, Digest([(view - 1) as u8; 32])),
        1 => mock_proposal(view, 0, genesis_payload()),
        _ => Proposal {
            view,
            parent_view: 0,
            parent: genesis_payload(),
            payload: Digest([0xee; 32]),
        },
    }
}

fn vote_kind(kind: u8, view: u64, variant: u8) -> VoteKind {
    match kind {
        0 => VoteKind::Notarize(proposal(view, variant)),
        1 => VoteKind::Nullify(view),
        _ => VoteKind::Finalize(proposal(view, variant)),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_input_never_panics_and_never_signs_conflicts(
        me in 0u16..4,
        ops in proptest::collection::vec(op(), 1..60),
    ) {
        let f = Fixture::new(&[1, 1, 1, 2]);
        let (mut m, start) = f.machine(Some(me), 0);
        let mut wal: Vec<WalEntry> = Vec::new();
        let mut pending_validate: Option<Proposal> = None;
        let mut pending_build: Option<(u64, u64, Digest)> = None;
        let mut now = 0u64;
        let absorb = |out: &[Output], wal: &mut Vec<WalEntry>,
                          pv: &mut Option<Proposal>, pb: &mut Option<(u64, u64, Digest)>| {
            for o in out {
                match o {
                    Output::Persist(e) => wal.push(e.clone()),
                    Output::Validate(p) => *pv = Some(*p),
                    Output::BuildProposal { view, parent_view, parent } => {
                        *pb = Some((*view, *parent_view, *parent))
                    }
                    _ => {}
                }
            }
        };
        absorb(&start, &mut wal, &mut pending_validate, &mut pending_build);
        for op in ops {
            now += 1;
            let input = match op {
                Op::Vote { signer, kind, view, variant } => {
                    let v = if signer < 4 {
                        f.vote(signer, vote_kind(kind, view, variant))
                    } else {
                        // Bad signature.
                        let mut v = f.vote(1, vote_kind(kind, view, variant));
                        v.signature[0] ^= 1;
                        v
                    };
                    Input::Message { message: Message::Vote(v), now_ms: now }
                }
                Op::Cert { kind, view, variant, signers } => {
                    let ids: Vec<u16> = (0..4).filter(|i| signers & (1 << i) != 0).collect();
                    let kind = match kind {
                        0 => CertificateKind::Notarization(proposal(view, variant)),
                        1 => CertificateKind::Nullification(view),
                        _ => CertificateKind::Finalization(proposal(view, variant)),
                    };
                    Input::Message { message: f.cert_msg(kind, &ids), now_ms: now }
                }
                Op::Timeout { dt } => {
                    now += dt;
                    Input::Timeout { now_ms: now }
                }
                Op::Validated { valid } => match pending_validate {
                    Some(p) => Input::Validated { proposal: p, valid, now_ms: now },
                    None => Input::Timeout { now_ms: now },
                },
                Op::Proposed { variant } => match pending_build {
                    Some((view, _, _)) => Input::Proposed {
                        view,
                        payload: Digest([variant; 32]),
                        now_ms: now,
                    },
                    None => Input::Timeout { now_ms: now },
                },
                Op::Garbage { bytes } => match Message::decode(&bytes) {
                    Ok(message) => Input::Message { message, now_ms: now },
                    Err(e) => {
                        prop_assert!(e.is_peer_fault());
                        continue;
                    }
                },
            };
            let view_before = m.view();
            let finalized_before = m.last_finalized();
            match m.handle(input) {
                Ok(out) => {
                    // Persist always directly precedes the broadcast of its vote.
                    for (i, o) in out.iter().enumerate() {
                        if let Output::Persist(WalEntry::Voted(v)) = o {
                            prop_assert_eq!(
                                out.get(i + 1),
                                Some(&Output::Broadcast(Message::Vote(v.clone())))
                            );
                        }
                    }
                    absorb(&out, &mut wal, &mut pending_validate, &mut pending_build);
                    prop_assert!(m.view() >= view_before);
                    prop_assert!(m.last_finalized().view >= finalized_before.view);
                }
                Err(_) => {
                    prop_assert_eq!(m.view(), view_before);
                    prop_assert_eq!(m.last_finalized(), finalized_before);
                }
            }
        }
        // The WAL replays cleanly: no two conflicting votes were ever signed.
        let replay = Consensus::new(f.config(Some(me)), genesis(), &wal);
        prop_assert!(replay.is_ok(), "{:?}", replay.err());
    }

    #[test]
    fn clusters_agree_under_random_loss_and_latency(
        seed in any::<u64>(),
        loss_pct in 0u64..20,
        max_latency in 1u64..200,
    ) {
        let mut c = Cluster::new(&[1, 1, 1, 1], seed);
        c.link = Box::new(move |_, _, _, _, rng| {
            if rng.below(100) < loss_pct { None } else { Some(1 + rng.below(max_latency)) }
        });
        c.start_all(&[]);
        let all = [0, 1, 2, 3];
        let done = c.run_until(1_000_000, |c| c.min_finalized_view(&all) >= 15);
        prop_assert!(done, "stalled at {}", c.min_finalized_view(&all));
        prop_assert!(c.check_safety().is_ok(), "{:?}", c.check_safety());
        prop_assert!(c.peer_faults().is_empty());
    }
}
