//! Step-table tests: each test drives one instance with a table of
//! `(input → exact expected outputs)` steps, using hand-made signed messages
//! from the other validators (signatures are deterministic, so expected
//! outputs include this node's own exact votes).

use crate::testing::{Fixture, genesis, genesis_payload, mock_proposal};
use crate::*;

type Expect = Result<Vec<Output>, MessageError>;

/// Runs `steps` on `m`, failing with the step index on the first mismatch.
fn run(m: &mut Consensus, steps: Vec<(Input, Expect)>) {
    for (i, (input, expected)) in steps.into_iter().enumerate() {
        let got = m.handle(input.clone());
        assert_eq!(
            got, expected,
            "step {i}: input {input:?}\n  got      {got:#?}\n  expected {expected:#?}"
        );
    }
}

fn msg(message: Message, now_ms: u64) -> Input {
    Input::Message { message, now_ms }
}

fn timeout(now_ms: u64) -> Input {
    Input::Timeout { now_ms }
}

fn ok(outputs: Vec<Output>) -> Expect {
    Ok(outputs)
}

fn persist_and_send(v: &Vote) -> Vec<Output> {
    vec![
        Output::Persist(WalEntry::Voted(v.clone())),
        Output::Broadcast(Message::Vote(v.clone())),
    ]
}

fn send_cert(c: &Certificate) -> Output {
    Output::Broadcast(Message::Certificate(c.clone()))
}

fn timer(deadline_ms: u64) -> Output {
    Output::SetTimer { deadline_ms }
}

fn changed(view: View) -> Output {
    Output::ViewChanged { view }
}

fn g() -> Digest {
    genesis_payload()
}

fn notarize(p: Proposal) -> VoteKind {
    VoteKind::Notarize(p)
}

fn finalize(p: Proposal) -> VoteKind {
    VoteKind::Finalize(p)
}

fn nullify(v: View) -> VoteKind {
    VoteKind::Nullify(v)
}

fn evidence(a: Vote, b: Vote) -> Output {
    Output::Evidence(Evidence::new(a, b).expect("conflicting"))
}

fn concat(parts: Vec<Vec<Output>>) -> Vec<Output> {
    parts.into_iter().flatten().collect()
}

// ---------------------------------------------------------------- R1, R2, R5, R9

#[test]
fn r2_propose_as_leader_then_notarize_finalize() {
    let f = Fixture::new(&[1, 1, 1, 1]);
    let (mut m, start) = f.machine(Some(1), 0);
    assert_eq!(
        start,
        vec![
            changed(1),
            Output::BuildProposal {
                view: 1,
                parent_view: 0,
                parent: g()
            },
            timer(1000)
        ]
    );
    let p1 = mock_proposal(1, 0, g());
    let my_notarize = f.vote(1, notarize(p1));
    let my_finalize = f.vote(1, finalize(p1));
    let n1 = f.cert(CertificateKind::Notarization(p1), &[0, 1, 2]);
    let f1 = f.cert(CertificateKind::Finalization(p1), &[0, 1, 3]);
    run(
        &mut m,
        vec![
            (
                Input::Proposed {
                    view: 1,
                    payload: p1.payload,
                    now_ms: 5,
                },
                ok(concat(vec![
                    persist_and_send(&my_notarize),
                    vec![timer(2000)],
                ])),
            ),
            (msg(f.vote_msg(0, notarize(p1)), 10), ok(vec![])),
            (
                msg(f.vote_msg(2, notarize(p1)), 12),
                ok(concat(vec![
                    vec![send_cert(&n1), Output::Notarized(n1.clone())],
                    persist_and_send(&my_finalize),
                    vec![changed(2), timer(1012)],
                ])),
            ),
            (msg(f.vote_msg(0, finalize(p1)), 13), ok(vec![])),
            (
                msg(f.vote_msg(3, finalize(p1)), 14),
                ok(vec![send_cert(&f1), Output::Finalized(f1.clone())]),
            ),
        ],
    );
    assert_eq!(
        m.last_finalized(),
        Anchor {
            view: 1,
            payload: p1.payload
        }
    );
    assert_eq!(m.view(), 2);
}

#[test]
fn r2_leader_builds_on_highest_notarized_across_nullified_views() {
    // me = 3 leads view 3. View 1 notarized, view 2 nullified → parent is view 1.
    let f = Fixture::new(&[1, 1, 1, 1]);
    let (mut m, _) = f.machine(Some(3), 0);
    let p1 = mock_proposal(1, 0, g());
    let n1 = f.cert(CertificateKind::Notarization(p1), &[0, 1, 2]);
    let z2 = f.cert(CertificateKind::Nullification(2), &[0, 1, 2]);
    run(
        &mut m,
        vec![
            (
                msg(Message::Certificate(n1.clone()), 10),
                ok(concat(vec![
                    vec![send_cert(&n1), Output::Notarized(n1.clone())],
                    persist_and_send(&f.vote(3, finalize(p1))),
                    vec![changed(2), timer(1010)],
                ])),
            ),
            (
                msg(Message::Certificate(z2.clone()), 20),
                ok(vec![
                    send_cert(&z2),
                    changed(3),
                    Output::BuildProposal {
                        view: 3,
                        parent_view: 1,
                        parent: p1.payload,
                    },
                    timer(1020),
                ]),
            ),
        ],
    );
}

#[test]
fn r2_leader_waits_for_missing_certificate_after_jump() {
    // me = 3 jumps to view 3 via a nullification of 2, view 1 unknown: no
    // BuildProposal until view 1's certificate arrives.
    let f = Fixture::new(&[1, 1, 1, 1]);
    let (mut m, _) = f.machine(Some(3), 0);
    let z2 = f.cert(CertificateKind::Nullification(2), &[0, 1, 2]);
    let z1 = f.cert(CertificateKind::Nullification(1), &[0, 1, 2]);
    run(
        &mut m,
        vec![
            (
                msg(Message::Certificate(z2.clone()), 10),
                ok(vec![send_cert(&z2), changed(3), timer(1010)]),
            ),
            (
                msg(Message::Certificate(z1.clone()), 20),
                ok(vec![
                    send_cert(&z1),
                    Output::BuildProposal {
                        view: 3,
                        parent_view: 0,
                        parent: g(),
                    },
                ]),
            ),
        ],
    );
}

// ---------------------------------------------------------------- R3, R4

#[test]
fn r4_replica_votes_on_valid_proposal_and_r5_finalizes() {
    let f = Fixture::new(&[1, 1, 1, 1]);
    let (mut m, start) = f.machine(Some(0), 0);
    assert_eq!(start, vec![changed(1), timer(1000)]);
    let p1 = mock_proposal(1, 0, g());
    let n1 = f.cert(CertificateKind::Notarization(p1), &[0, 1, 2]);
    run(
        &mut m,
        vec![
            (
                msg(f.vote_msg(1, notarize(p1)), 3),
                ok(vec![Output::Validate(p1), timer(2000)]),
            ),
            // Duplicate proposal: dropped.
            (msg(f.vote_msg(1, notarize(p1)), 4), ok(vec![])),
            (
                Input::Validated {
                    proposal: p1,
                    valid: true,
                    now_ms: 8,
                },
                ok(persist_and_send(&f.vote(0, notarize(p1)))),
            ),
            (
                msg(f.vote_msg(2, notarize(p1)), 9),
                ok(concat(vec![
                    vec![send_cert(&n1), Output::Notarized(n1.clone())],
                    persist_and_send(&f.vote(0, finalize(p1))),
                    vec![changed(2), timer(1009)],
                ])),
            ),
        ],
    );
}

#[test]
fn r4_refuses_invalid_validation_and_nullifies_at_once() {
    let f = Fixture::new(&[1, 1, 1, 1]);
    let (mut m, _) = f.machine(Some(0), 0);
    let p1 = mock_proposal(1, 0, g());
    run(
        &mut m,
        vec![
            (
                msg(f.vote_msg(1, notarize(p1)), 3),
                ok(vec![Output::Validate(p1), timer(2000)]),
            ),
            // Invalid: no Notarize, and the view is nullified at once (R7).
            (
                Input::Validated {
                    proposal: p1,
                    valid: false,
                    now_ms: 8,
                },
                ok(concat(vec![
                    persist_and_send(&f.vote(0, nullify(1))),
                    vec![timer(508)],
                ])),
            ),
            // A duplicate verdict is ignored.
            (
                Input::Validated {
                    proposal: p1,
                    valid: true,
                    now_ms: 9,
                },
                ok(vec![]),
            ),
            // Early (stale) timer: re-armed at the retry deadline.
            (timeout(300), ok(vec![timer(508)])),
            (
                timeout(508),
                ok(vec![
                    Output::Broadcast(Message::Vote(f.vote(0, nullify(1)))),
                    timer(1008),
                ]),
            ),
        ],
    );
}

#[test]
fn r3_proposal_with_bad_parent_is_never_validated() {
    let f = Fixture::new(&[1, 1, 1, 1]);
    let (mut m, _) = f.machine(Some(0), 0);
    let wrong_parent = Proposal {
        view: 1,
        parent_view: 0,
        parent: Digest([9; 32]),
        payload: Digest([1; 32]),
    };
    run(
        &mut m,
        vec![(
            // Conflicts with the genesis anchor: rejected for good, so the
            // view is nullified at once (R7).
            msg(f.vote_msg(1, notarize(wrong_parent)), 3),
            ok(concat(vec![
                persist_and_send(&f.vote(0, nullify(1))),
                vec![timer(503)],
            ])),
        )],
    );
    // Malformed: parent_view >= view is a peer fault.
    let malformed = Proposal {
        parent_view: 1,
        ..wrong_parent
    };
    let err = m
        .handle(msg(f.vote_msg(1, notarize(malformed)), 4))
        .unwrap_err();
    assert!(matches!(err, MessageError::Malformed { .. }));
    assert!(err.is_peer_fault());
}

#[test]
fn r3_missing_nullification_keeps_proposal_pending_until_it_arrives() {
    let f = Fixture::new(&[1, 1, 1, 1]);
    let (mut m, _) = f.machine(Some(0), 0);
    let z2 = f.cert(CertificateKind::Nullification(2), &[1, 2, 3]);
    let z1 = f.cert(CertificateKind::Nullification(1), &[1, 2, 3]);
    let p3 = mock_proposal(3, 0, g());
    run(
        &mut m,
        vec![
            (
                msg(Message::Certificate(z2.clone()), 5),
                ok(vec![send_cert(&z2), changed(3), timer(1005)]),
            ),
            // Parent (0, genesis) needs views 1 and 2 nullified; 1 is unknown.
            (msg(f.vote_msg(3, notarize(p3)), 6), ok(vec![timer(2005)])),
            (
                msg(Message::Certificate(z1.clone()), 7),
                ok(vec![send_cert(&z1), Output::Validate(p3)]),
            ),
            (
                Input::Validated {
                    proposal: p3,
                    valid: true,
                    now_ms: 8,
                },
                ok(persist_and_send(&f.vote(0, notarize(p3)))),
            ),
        ],
    );
}

#[test]
fn r3_future_proposal_is_validated_on_entering_its_view() {
    let f = Fixture::new(&[1, 1, 1, 1]);
    let (mut m, _) = f.machine(Some(0), 0);
    let p1 = mock_proposal(1, 0, g());
    let p2 = mock_proposal(2, 1, p1.payload);
    let n1 = f.cert(CertificateKind::Notarization(p1), &[1, 2, 3]);
    run(
        &mut m,
        vec![
            (msg(f.vote_msg(2, notarize(p2)), 5), ok(vec![])),
            (
                msg(Message::Certificate(n1.clone()), 6),
                ok(concat(vec![
                    vec![send_cert(&n1), Output::Notarized(n1.clone())],
                    persist_and_send(&f.vote(0, finalize(p1))),
                    vec![changed(2), Output::Validate(p2), timer(2006)],
                ])),
            ),
        ],
    );
}

// ---------------------------------------------------------------- R7, R8

#[test]
fn r7_timeout_nullifies_and_retries_with_highest_certificate() {
    let f = Fixture::new(&[1, 1, 1, 1]);
    let (mut m, _) = f.machine(Some(0), 0);
    let p1 = mock_proposal(1, 0, g());
    let n1 = f.cert(CertificateKind::Notarization(p1), &[1, 2, 3]);
    let null2 = f.vote(0, nullify(2));
    let z2 = f.cert(CertificateKind::Nullification(2), &[0, 1, 2]);
    run(
        &mut m,
        vec![
            (
                msg(Message::Certificate(n1.clone()), 10),
                ok(concat(vec![
                    vec![send_cert(&n1), Output::Notarized(n1.clone())],
                    persist_and_send(&f.vote(0, finalize(p1))),
                    vec![changed(2), timer(1010)],
                ])),
            ),
            (
                timeout(1010),
                ok(concat(vec![persist_and_send(&null2), vec![timer(1510)]])),
            ),
            (
                timeout(1510),
                ok(vec![
                    Output::Broadcast(Message::Vote(null2.clone())),
                    send_cert(&n1),
                    timer(2010),
                ]),
            ),
            (
                timeout(2010),
                ok(vec![
                    Output::Broadcast(Message::Vote(null2.clone())),
                    send_cert(&n1),
                    timer(2510),
                ]),
            ),
            // R8: Nullify quorum (mine + 1 + 2) → Nullification → view 3.
            (msg(f.vote_msg(1, nullify(2)), 2100), ok(vec![])),
            (
                msg(f.vote_msg(2, nullify(2)), 2101),
                ok(vec![send_cert(&z2), changed(3), timer(3101)]),
            ),
        ],
    );
}

#[test]
fn r7_timeout_without_any_certificate_rebroadcasts_only_the_vote() {
    let f = Fixture::new(&[1, 1, 1, 1]);
    let (mut m, _) = f.machine(Some(0), 0);
    let null1 = f.vote(0, nullify(1));
    run(
        &mut m,
        vec![
            (timeout(999), ok(vec![timer(1000)])),
            (
                timeout(1000),
                ok(concat(vec![persist_and_send(&null1), vec![timer(1500)]])),
            ),
            (
                timeout(1500),
                ok(vec![
                    Output::Broadcast(Message::Vote(null1.clone())),
                    timer(2000),
                ]),
            ),
        ],
    );
}

#[test]
fn timeouts_set_at_runtime_apply_to_the_next_deadlines_and_bad_ones_change_nothing() {
    let f = Fixture::new(&[1, 1, 1, 1]);
    let (mut m, _) = f.machine(Some(0), 0);
    let before = m.timeouts();
    // Leader timeout above the notarization timeout: refused, nothing changes.
    let bad = crate::Timeouts {
        leader_timeout_ms: 700,
        notarization_timeout_ms: 600,
        nullify_retry_ms: 100,
    };
    assert!(matches!(
        m.set_timeouts(bad),
        Err(ConfigError::LeaderTimeoutTooLong { .. })
    ));
    let zero = crate::Timeouts {
        nullify_retry_ms: 0,
        ..before
    };
    assert!(matches!(
        m.set_timeouts(zero),
        Err(ConfigError::ZeroDuration {
            field: "nullify_retry_ms"
        })
    ));
    assert_eq!(m.timeouts(), before);
    let new = crate::Timeouts {
        leader_timeout_ms: 300,
        notarization_timeout_ms: 600,
        nullify_retry_ms: 100,
    };
    m.set_timeouts(new).unwrap();
    assert_eq!(m.timeouts(), new);
    let z1 = f.cert(CertificateKind::Nullification(1), &[1, 2, 3]);
    let null2 = f.vote(0, nullify(2));
    run(
        &mut m,
        vec![
            (msg(f.vote_msg(1, nullify(1)), 10), ok(vec![])),
            (msg(f.vote_msg(2, nullify(1)), 11), ok(vec![])),
            // View 2 is entered with the new leader timeout: 12 + 300.
            (
                msg(f.vote_msg(3, nullify(1)), 12),
                ok(vec![send_cert(&z1), changed(2), timer(312)]),
            ),
            // ... and its nullify is retried at the new interval: 312 + 100.
            (
                timeout(312),
                ok(concat(vec![persist_and_send(&null2), vec![timer(412)]])),
            ),
        ],
    );
}

#[test]
fn r8_nullification_by_others_changes_view_without_my_vote() {
    let f = Fixture::new(&[1, 1, 1, 1]);
    let (mut m, _) = f.machine(Some(0), 0);
    let z1 = f.cert(CertificateKind::Nullification(1), &[1, 2, 3]);
    run(
        &mut m,
        vec![
            (msg(f.vote_msg(1, nullify(1)), 10), ok(vec![])),
            (msg(f.vote_msg(2, nullify(1)), 11), ok(vec![])),
            (
                msg(f.vote_msg(3, nullify(1)), 12),
                ok(vec![send_cert(&z1), changed(2), timer(1012)]),
            ),
        ],
    );
}

// ---------------------------------------------------------------- R6, I3

#[test]
fn r6_no_finalize_vote_after_nullify() {
    let f = Fixture::new(&[1, 1, 1, 1]);
    let (mut m, _) = f.machine(Some(0), 0);
    let p1 = mock_proposal(1, 0, g());
    let n1 = f.cert(CertificateKind::Notarization(p1), &[1, 2, 3]);
    let f1 = f.cert(CertificateKind::Finalization(p1), &[1, 2, 3]);
    run(
        &mut m,
        vec![
            (
                timeout(1000),
                ok(concat(vec![
                    persist_and_send(&f.vote(0, nullify(1))),
                    vec![timer(1500)],
                ])),
            ),
            (
                msg(Message::Certificate(n1.clone()), 1100),
                ok(vec![
                    send_cert(&n1),
                    Output::Notarized(n1.clone()),
                    changed(2),
                    timer(2100),
                ]),
            ),
            (msg(f.vote_msg(1, finalize(p1)), 1101), ok(vec![])),
            (msg(f.vote_msg(2, finalize(p1)), 1102), ok(vec![])),
            (
                msg(f.vote_msg(3, finalize(p1)), 1103),
                ok(vec![send_cert(&f1), Output::Finalized(f1.clone())]),
            ),
        ],
    );
}

#[test]
fn r6_notarize_then_nullify_is_allowed_but_then_no_finalize() {
    let f = Fixture::new(&[1, 1, 1, 1]);
    let (mut m, _) = f.machine(Some(0), 0);
    let p1 = mock_proposal(1, 0, g());
    let n1 = f.cert(CertificateKind::Notarization(p1), &[0, 1, 2]);
    run(
        &mut m,
        vec![
            (
                msg(f.vote_msg(1, notarize(p1)), 1),
                ok(vec![Output::Validate(p1), timer(2000)]),
            ),
            (
                Input::Validated {
                    proposal: p1,
                    valid: true,
                    now_ms: 2,
                },
                ok(persist_and_send(&f.vote(0, notarize(p1)))),
            ),
            (
                timeout(2000),
                ok(concat(vec![
                    persist_and_send(&f.vote(0, nullify(1))),
                    vec![timer(2500)],
                ])),
            ),
            (
                msg(f.vote_msg(2, notarize(p1)), 2001),
                ok(vec![
                    send_cert(&n1),
                    Output::Notarized(n1.clone()),
                    changed(2),
                    timer(3001),
                ]),
            ),
        ],
    );
}

// ---------------------------------------------------------------- R10

#[test]
fn r10_certificate_jump_for_lagging_node() {
    let f = Fixture::new(&[1, 1, 1, 1]);
    let (mut m, _) = f.machine(Some(0), 0);
    let p5 = mock_proposal(5, 4, Digest([4; 32]));
    let n5 = f.cert(CertificateKind::Notarization(p5), &[1, 2, 3]);
    let p9 = mock_proposal(9, 8, Digest([8; 32]));
    let f9 = f.cert(CertificateKind::Finalization(p9), &[1, 2, 3]);
    let z30 = f.cert(CertificateKind::Nullification(30), &[1, 2, 3]);
    run(
        &mut m,
        vec![
            (
                msg(Message::Certificate(n5.clone()), 50),
                ok(concat(vec![
                    vec![send_cert(&n5), Output::Notarized(n5.clone())],
                    persist_and_send(&f.vote(0, finalize(p5))),
                    vec![changed(6), timer(1050)],
                ])),
            ),
            // Same certificate again: dropped without effect.
            (msg(Message::Certificate(n5.clone()), 51), ok(vec![])),
            (
                msg(Message::Certificate(f9.clone()), 60),
                ok(vec![
                    send_cert(&f9),
                    Output::Finalized(f9.clone()),
                    changed(10),
                    timer(1060),
                ]),
            ),
            // Certificates are accepted beyond views_ahead_max (they carry a quorum).
            (
                msg(Message::Certificate(z30.clone()), 70),
                ok(vec![send_cert(&z30), changed(31), timer(1070)]),
            ),
        ],
    );
    assert_eq!(m.last_finalized().view, 9);
}

// ---------------------------------------------------------------- R11, bounds

#[test]
fn r11_future_votes_bounded_and_form_certificates() {
    let f = Fixture::new(&[1, 1, 1, 1]);
    let (mut m, _) = f.machine(Some(0), 0);
    // views_ahead_max = 10 in test_config.
    let z11 = f.cert(CertificateKind::Nullification(11), &[1, 2, 3]);
    run(
        &mut m,
        vec![
            (
                msg(f.vote_msg(1, nullify(12)), 5),
                Err(MessageError::TooFarAhead {
                    view: 12,
                    current: 1,
                }),
            ),
            (msg(f.vote_msg(1, nullify(11)), 5), ok(vec![])),
            (msg(f.vote_msg(2, nullify(11)), 6), ok(vec![])),
            (
                msg(f.vote_msg(3, nullify(11)), 7),
                ok(vec![send_cert(&z11), changed(12), timer(1007)]),
            ),
        ],
    );
    assert!(
        !MessageError::TooFarAhead {
            view: 0,
            current: 0
        }
        .is_peer_fault()
    );
    assert!(m.rounds_held() as u64 <= VIEWS_KEPT + 1 + 10);
}

#[test]
fn bounds_rounds_stay_bounded_over_many_views() {
    let f = Fixture::new(&[1, 1, 1, 1]);
    let (mut m, _) = f.machine(Some(0), 0);
    for v in 1..200u64 {
        // A future vote far in the window, then the nullification of v.
        let _ = m
            .handle(msg(f.vote_msg(1, nullify(v + 10)), v))
            .expect("within window");
        let z = f.cert_msg(CertificateKind::Nullification(v), &[1, 2, 3]);
        m.handle(msg(z, v)).expect("valid certificate");
        assert_eq!(m.view(), v + 1);
        assert!(m.rounds_held() as u64 <= VIEWS_KEPT + 1 + 10);
    }
}

#[test]
fn stale_messages_are_rejected_harmlessly() {
    let f = Fixture::new(&[1, 1, 1, 1]);
    let (mut m, _) = f.machine(Some(0), 0);
    let p1 = mock_proposal(1, 0, g());
    let f1 = f.cert(CertificateKind::Finalization(p1), &[1, 2, 3]);
    m.handle(msg(Message::Certificate(f1.clone()), 5)).unwrap();
    assert_eq!(m.view(), 2);
    let stale = MessageError::Stale {
        view: 1,
        current: 2,
    };
    run(
        &mut m,
        vec![
            (msg(f.vote_msg(1, nullify(1)), 6), Err(stale.clone())),
            (msg(Message::Certificate(f1.clone()), 6), Err(stale.clone())),
            (
                msg(f.cert_msg(CertificateKind::Notarization(p1), &[1, 2, 3]), 6),
                Err(stale.clone()),
            ),
        ],
    );
    assert!(!stale.is_peer_fault());
    // More than VIEWS_KEPT views behind (but above the finalized view): stale.
    m.handle(msg(
        f.cert_msg(CertificateKind::Nullification(99), &[1, 2, 3]),
        7,
    ))
    .unwrap();
    assert_eq!(m.view(), 100);
    assert_eq!(
        m.handle(msg(f.vote_msg(1, nullify(50)), 8)),
        Err(MessageError::Stale {
            view: 50,
            current: 100
        })
    );
    assert_eq!(m.handle(msg(f.vote_msg(1, nullify(70)), 8)), Ok(vec![]));
}

// ---------------------------------------------------------------- R13: peer faults

#[test]
fn r13_bad_certificates_and_votes_are_peer_faults_and_change_nothing() {
    let f = Fixture::new(&[1, 1, 1, 1]);
    let (mut m, _) = f.machine(Some(0), 0);
    let p1 = mock_proposal(1, 0, g());
    let good = f.cert(CertificateKind::Notarization(p1), &[1, 2, 3]);

    let mut bad_sig = good.clone();
    bad_sig.signatures[1].1 = [0u8; 64];
    let mut unknown = good.clone();
    unknown.signatures[2].0 = 9;
    let mut dup = good.clone();
    dup.signatures[1] = dup.signatures[0];
    let insufficient = f.cert(CertificateKind::Notarization(p1), &[1, 2]);
    let mut too_many = good.clone();
    too_many.signatures = vec![good.signatures[0]; 5];
    let mut unsorted = good.clone();
    unsorted.signatures.swap(0, 1);
    let mut wrong_kind = good.clone();
    wrong_kind.kind = CertificateKind::Finalization(p1);

    let other_ns = Vote::sign(&[8u8; 32], nullify(1), 1, &f.keys[1]);
    let mut forged = f.vote(2, nullify(1));
    forged.signer = 3;
    let unknown_vote = Vote::sign(&f.namespace, nullify(1), 7, &f.keys[1]);

    let cases: Vec<(Message, MessageError)> = vec![
        (
            Message::Certificate(bad_sig),
            MessageError::BadSignature { signer: 2 },
        ),
        (
            Message::Certificate(unknown),
            MessageError::UnknownSigner { signer: 9 },
        ),
        (
            Message::Certificate(dup),
            MessageError::DuplicateSigner { signer: 1 },
        ),
        (
            Message::Certificate(insufficient),
            MessageError::InsufficientQuorum {
                power: 2,
                needed: 3,
            },
        ),
        (
            Message::Certificate(wrong_kind),
            MessageError::BadSignature { signer: 1 },
        ),
        (
            Message::Vote(other_ns),
            MessageError::BadSignature { signer: 1 },
        ),
        (
            Message::Vote(forged),
            MessageError::BadSignature { signer: 3 },
        ),
        (
            Message::Vote(unknown_vote),
            MessageError::UnknownSigner { signer: 7 },
        ),
    ];
    for (i, (message, expected)) in cases.into_iter().enumerate() {
        let err = m.handle(msg(message, 10)).unwrap_err();
        assert_eq!(err, expected, "case {i}");
        assert!(err.is_peer_fault(), "case {i}");
        assert_eq!(m.view(), 1, "case {i}: state changed");
    }
    for message in [
        Message::Certificate(too_many),
        Message::Certificate(unsorted),
    ] {
        let err = m.handle(msg(message, 10)).unwrap_err();
        assert!(matches!(err, MessageError::Malformed { .. }), "{err:?}");
        assert!(err.is_peer_fault());
    }
    // The genuine certificate still has its full effect: nothing was recorded.
    run(
        &mut m,
        vec![(
            msg(Message::Certificate(good.clone()), 20),
            ok(concat(vec![
                vec![send_cert(&good), Output::Notarized(good.clone())],
                persist_and_send(&f.vote(0, finalize(p1))),
                vec![changed(2), timer(1020)],
            ])),
        )],
    );
}

#[test]
fn r12_equivocating_leader_second_proposal_ignored() {
    let f = Fixture::new(&[1, 1, 1, 1]);
    let (mut m, _) = f.machine(Some(0), 0);
    let p1 = mock_proposal(1, 0, g());
    let p1b = Proposal {
        payload: Digest([0xbb; 32]),
        ..p1
    };
    run(
        &mut m,
        vec![
            (
                msg(f.vote_msg(1, notarize(p1)), 1),
                ok(vec![Output::Validate(p1), timer(2000)]),
            ),
            // R15: the second proposal is evidence, and is not counted (R12).
            (
                msg(f.vote_msg(1, notarize(p1b)), 2),
                ok(vec![evidence(
                    f.vote(1, notarize(p1)),
                    f.vote(1, notarize(p1b)),
                )]),
            ),
            // Reported once only.
            (msg(f.vote_msg(1, notarize(p1b)), 2), ok(vec![])),
            // Votes for the other proposal from 2 and 3 alone (the leader's
            // second vote does not count) are not a quorum.
            (msg(f.vote_msg(2, notarize(p1b)), 3), ok(vec![])),
            (msg(f.vote_msg(3, notarize(p1b)), 4), ok(vec![])),
            (
                Input::Validated {
                    proposal: p1b,
                    valid: true,
                    now_ms: 5,
                },
                Err(MessageError::InvalidInput {
                    reason: "Validated for a proposal that was not requested",
                }),
            ),
        ],
    );
    assert_eq!(m.view(), 1);
}

// ---------------------------------------------------------------- R14: WAL

#[test]
fn r14_wal_replay_prevents_double_vote_after_restart() {
    let f = Fixture::new(&[1, 1, 1, 1]);
    let (mut m, _) = f.machine(Some(0), 0);
    let p1 = mock_proposal(1, 0, g());
    let mut wal = Vec::new();
    let mut collect = |out: Vec<Output>| {
        for o in out {
            if let Output::Persist(e) = o {
                wal.push(e);
            }
        }
    };
    collect(m.handle(msg(f.vote_msg(1, notarize(p1)), 1)).unwrap());
    collect(
        m.handle(Input::Validated {
            proposal: p1,
            valid: true,
            now_ms: 2,
        })
        .unwrap(),
    );
    let n0 = f.vote(0, notarize(p1));
    assert_eq!(wal, vec![WalEntry::Voted(n0.clone())]);

    // Crash; restart from the WAL.
    let mut m = Consensus::new(f.config(Some(0)), genesis(), &wal).unwrap();
    assert_eq!(m.view(), 1);
    assert_eq!(
        m.start(100),
        vec![
            changed(1),
            Output::Broadcast(Message::Vote(n0.clone())),
            timer(2100)
        ]
    );
    // The leader equivocates: its different proposal is never validated, so
    // no second Notarize can be signed.
    let p1b = Proposal {
        payload: Digest([0xbb; 32]),
        ..p1
    };
    let null0 = f.vote(0, nullify(1));
    run(
        &mut m,
        vec![
            (msg(f.vote_msg(1, notarize(p1b)), 101), ok(vec![])),
            (
                msg(f.vote_msg(1, notarize(p1)), 102),
                ok(vec![evidence(
                    f.vote(1, notarize(p1b)),
                    f.vote(1, notarize(p1)),
                )]),
            ),
            (
                timeout(2100),
                ok(concat(vec![persist_and_send(&null0), vec![timer(2600)]])),
            ),
        ],
    );
    wal.push(WalEntry::Voted(null0.clone()));

    // Crash again: after replaying Nullify, a notarization yields no Finalize.
    let mut m = Consensus::new(f.config(Some(0)), genesis(), &wal).unwrap();
    assert_eq!(
        m.start(3000),
        vec![
            changed(1),
            Output::Broadcast(Message::Vote(n0.clone())),
            Output::Broadcast(Message::Vote(null0.clone())),
            timer(3500)
        ]
    );
    let n1 = f.cert(CertificateKind::Notarization(p1), &[1, 2, 3]);
    run(
        &mut m,
        vec![(
            msg(Message::Certificate(n1.clone()), 3001),
            ok(vec![
                send_cert(&n1),
                Output::Notarized(n1.clone()),
                changed(2),
                timer(4001),
            ]),
        )],
    );
}

#[test]
fn r14_wal_resume_view_and_rejections() {
    let f = Fixture::new(&[1, 1, 1, 1]);
    let p5 = mock_proposal(5, 0, g());
    let wal = vec![
        WalEntry::Voted(f.vote(0, nullify(3))),
        WalEntry::Voted(f.vote(0, finalize(p5))),
    ];
    let m = Consensus::new(f.config(Some(0)), genesis(), &wal).unwrap();
    assert_eq!(m.view(), 6, "a Finalize vote for 5 means view 5 was left");
    // Anchor above the WAL: entries are ignored.
    let anchor = Anchor {
        view: 10,
        payload: Digest([1; 32]),
    };
    let m = Consensus::new(f.config(Some(0)), anchor, &wal).unwrap();
    assert_eq!(m.view(), 11);
    assert!(matches!(
        Consensus::new(f.config(Some(1)), genesis(), &wal),
        Err(ConfigError::WalForeignSigner { signer: 0, .. })
    ));
    assert!(matches!(
        Consensus::new(f.config(None), genesis(), &wal),
        Err(ConfigError::WalForeignSigner { .. })
    ));
    let conflicting = vec![
        WalEntry::Voted(f.vote(0, finalize(p5))),
        WalEntry::Voted(f.vote(0, nullify(5))),
    ];
    assert_eq!(
        Consensus::new(f.config(Some(0)), genesis(), &conflicting).unwrap_err(),
        ConfigError::WalConflict { view: 5 }
    );
}

// ---------------------------------------------------------------- weights

#[test]
fn weighted_voting_power_quorum() {
    // Powers [1,1,1,5]: total 8, quorum 8*2/3+1 = 6.
    let f = Fixture::new(&[1, 1, 1, 5]);
    assert_eq!(f.set.total_power(), 8);
    assert_eq!(f.set.quorum_power(), 6);
    let (mut m, _) = f.machine(Some(0), 0);
    let z1 = f.cert(CertificateKind::Nullification(1), &[0, 3]);
    let p2 = mock_proposal(2, 0, g());
    run(
        &mut m,
        vec![
            // Three light validators (power 3) cannot certify anything.
            (
                msg(f.cert_msg(CertificateKind::Nullification(1), &[0, 1, 2]), 1),
                Err(MessageError::InsufficientQuorum {
                    power: 3,
                    needed: 6,
                }),
            ),
            (msg(f.vote_msg(1, nullify(1)), 2), ok(vec![])),
            (msg(f.vote_msg(2, nullify(1)), 3), ok(vec![])),
            (
                timeout(1000),
                ok(concat(vec![
                    persist_and_send(&f.vote(0, nullify(1))),
                    vec![timer(1500)],
                ])),
            ),
            // The heavy validator tips it: signers {0,1,2,3}.
            (
                msg(f.vote_msg(3, nullify(1)), 1001),
                ok(vec![
                    send_cert(&f.cert(CertificateKind::Nullification(1), &[0, 1, 2, 3])),
                    changed(2),
                    timer(2001),
                ]),
            ),
        ],
    );
    // Two signers (1 + 5 = 6) suffice for a certificate.
    let (mut m2, _) = f.machine(Some(1), 0);
    run(
        &mut m2,
        vec![(
            msg(Message::Certificate(z1.clone()), 5),
            ok(vec![send_cert(&z1), changed(2), timer(1005)]),
        )],
    );
    // Leader of view 2 is validator 2; heavy validator 3 + me (1) notarize.
    run(
        &mut m2,
        vec![
            (
                msg(f.vote_msg(2, notarize(p2)), 6),
                ok(vec![Output::Validate(p2), timer(2005)]),
            ),
            // Leader (1) + heavy validator (5) = 6 = quorum: notarized
            // before my own validation finishes.
            (
                msg(f.vote_msg(3, notarize(p2)), 7),
                ok(concat(vec![
                    {
                        let n2 = f.cert(CertificateKind::Notarization(p2), &[2, 3]);
                        vec![send_cert(&n2), Output::Notarized(n2)]
                    },
                    persist_and_send(&f.vote(1, finalize(p2))),
                    vec![changed(3), timer(1007)],
                ])),
            ),
            // The late verdict is ignored.
            (
                Input::Validated {
                    proposal: p2,
                    valid: true,
                    now_ms: 8,
                },
                ok(vec![]),
            ),
        ],
    );
}

// ---------------------------------------------------------------- host contract

#[test]
fn single_validator_finalizes_alone() {
    let f = Fixture::new(&[3]);
    let (mut m, start) = f.machine(Some(0), 0);
    assert_eq!(
        start,
        vec![
            changed(1),
            Output::BuildProposal {
                view: 1,
                parent_view: 0,
                parent: g()
            },
            timer(1000)
        ]
    );
    let mut parent = (0, g());
    for v in 1..=5u64 {
        let p = mock_proposal(v, parent.0, parent.1);
        let n = f.cert(CertificateKind::Notarization(p), &[0]);
        let fin = f.cert(CertificateKind::Finalization(p), &[0]);
        let out = m
            .handle(Input::Proposed {
                view: v,
                payload: p.payload,
                now_ms: v * 10,
            })
            .unwrap();
        assert_eq!(
            out,
            concat(vec![
                persist_and_send(&f.vote(0, notarize(p))),
                vec![send_cert(&n), Output::Notarized(n.clone())],
                persist_and_send(&f.vote(0, finalize(p))),
                vec![send_cert(&fin), Output::Finalized(fin.clone())],
                vec![
                    changed(v + 1),
                    Output::BuildProposal {
                        view: v + 1,
                        parent_view: v,
                        parent: p.payload
                    },
                    timer(v * 10 + 1000)
                ],
            ])
        );
        parent = (v, p.payload);
    }
    assert_eq!(m.last_finalized().view, 5);
}

#[test]
fn observer_follows_without_acting() {
    let f = Fixture::new(&[1, 1, 1, 1]);
    let (mut m, start) = f.machine(None, 0);
    assert_eq!(start, vec![changed(1)]);
    assert_eq!(m.me(), None);
    let p1 = mock_proposal(1, 0, g());
    let n1 = f.cert(CertificateKind::Notarization(p1), &[0, 1, 2]);
    let f1 = f.cert(CertificateKind::Finalization(p1), &[1, 2, 3]);
    run(
        &mut m,
        vec![
            (msg(f.vote_msg(1, notarize(p1)), 1), ok(vec![])),
            (msg(f.vote_msg(0, notarize(p1)), 2), ok(vec![])),
            (
                msg(f.vote_msg(2, notarize(p1)), 3),
                ok(vec![Output::Notarized(n1.clone()), changed(2)]),
            ),
            (timeout(5000), ok(vec![])),
            (
                msg(Message::Certificate(f1.clone()), 6),
                ok(vec![Output::Finalized(f1.clone())]),
            ),
            (
                Input::Proposed {
                    view: 2,
                    payload: Digest::ZERO,
                    now_ms: 7,
                },
                Err(MessageError::InvalidInput {
                    reason: "observer cannot propose",
                }),
            ),
        ],
    );
}

#[test]
fn host_misuse_is_reported_and_late_answers_ignored() {
    let f = Fixture::new(&[1, 1, 1, 1]);
    let mut fresh = Consensus::new(f.config(Some(0)), genesis(), &[]).unwrap();
    assert!(matches!(
        fresh.handle(timeout(0)),
        Err(MessageError::InvalidInput { .. })
    ));
    let (mut m, _) = f.machine(Some(0), 0);
    let p1 = mock_proposal(1, 0, g());
    for input in [
        Input::Proposed {
            view: 1,
            payload: p1.payload,
            now_ms: 1,
        },
        Input::Proposed {
            view: 3,
            payload: p1.payload,
            now_ms: 1,
        },
        Input::Validated {
            proposal: p1,
            valid: true,
            now_ms: 1,
        },
    ] {
        let err = m.handle(input).unwrap_err();
        assert!(matches!(err, MessageError::InvalidInput { .. }));
        assert!(!err.is_peer_fault());
    }
    // Leader 1: a second Proposed and a Proposed for a view already left are ignored.
    let (mut l, _) = f.machine(Some(1), 0);
    l.handle(Input::Proposed {
        view: 1,
        payload: p1.payload,
        now_ms: 1,
    })
    .unwrap();
    assert_eq!(
        l.handle(Input::Proposed {
            view: 1,
            payload: Digest([5; 32]),
            now_ms: 2,
        }),
        Ok(vec![])
    );
    l.handle(msg(
        f.cert_msg(CertificateKind::Nullification(1), &[0, 2, 3]),
        3,
    ))
    .unwrap();
    assert_eq!(
        l.handle(Input::Proposed {
            view: 1,
            payload: p1.payload,
            now_ms: 4,
        }),
        Ok(vec![])
    );
}

// ---------------------------------------------------------------- types

#[test]
fn message_codec_roundtrip_and_limits() {
    let f = Fixture::new(&[1, 1, 1, 1]);
    let p1 = mock_proposal(1, 0, g());
    for m in [
        f.vote_msg(2, notarize(p1)),
        f.vote_msg(2, nullify(7)),
        f.cert_msg(CertificateKind::Finalization(p1), &[0, 1, 2]),
    ] {
        let bytes = m.encode();
        assert!(bytes.len() <= Message::BYTES_MAX);
        assert_eq!(Message::decode(&bytes).unwrap(), m);
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(matches!(
            Message::decode(&trailing),
            Err(MessageError::Malformed { .. })
        ));
        assert!(matches!(
            Message::decode(&bytes[..bytes.len() - 1]),
            Err(MessageError::Malformed { .. })
        ));
    }
    let huge = vec![0u8; Message::BYTES_MAX + 1];
    assert_eq!(
        Message::decode(&huge),
        Err(MessageError::Oversize {
            len: Message::BYTES_MAX + 1,
            max: Message::BYTES_MAX
        })
    );
    assert!(matches!(
        Message::decode(&[9, 9, 9]),
        Err(MessageError::Malformed { .. })
    ));
    // A maximal certificate fits BYTES_MAX exactly.
    let max_cert = Message::Certificate(Certificate {
        kind: CertificateKind::Notarization(p1),
        signatures: vec![(0, [0u8; 64]); MAX_VALIDATORS],
    });
    assert_eq!(max_cert.encode().len(), Message::BYTES_MAX);
}

#[test]
fn digest_displays_lowercase_hex() {
    let mut b = [0u8; 32];
    b[0] = 0xAB;
    b[31] = 0x01;
    let s = Digest(b).to_string();
    assert_eq!(s.len(), 64);
    assert!(s.starts_with("ab00"));
    assert!(s.ends_with("01"));
}

#[test]
fn validator_set_rules() {
    let keys = crate::testing::keys(3);
    let v = |i: usize, p: u64| Validator {
        public_key: keys[i].verifying_key(),
        voting_power: p,
    };
    assert_eq!(
        ValidatorSet::new(vec![]).unwrap_err(),
        ValidatorSetError::Empty
    );
    assert_eq!(
        ValidatorSet::new(vec![v(0, 1), v(1, 0)]).unwrap_err(),
        ValidatorSetError::ZeroPower { index: 1 }
    );
    assert_eq!(
        ValidatorSet::new(vec![v(0, 1), v(1, 1), v(0, 2)]).unwrap_err(),
        ValidatorSetError::DuplicateKey { index: 2 }
    );
    assert_eq!(
        ValidatorSet::new(vec![v(0, u64::MAX), v(1, 1)]).unwrap_err(),
        ValidatorSetError::PowerOverflow
    );
    let too_many = vec![v(0, 1); MAX_VALIDATORS + 1];
    assert_eq!(
        ValidatorSet::new(too_many).unwrap_err(),
        ValidatorSetError::TooMany {
            count: MAX_VALIDATORS + 1,
            max: MAX_VALIDATORS
        }
    );
    let set = ValidatorSet::new(vec![v(0, 1), v(1, 2), v(2, 3)]).unwrap();
    assert_eq!(set.len(), 3);
    assert!(!set.is_empty());
    assert_eq!(set.total_power(), 6);
    assert_eq!(set.quorum_power(), 5);
    assert_eq!(set.leader(0), 0);
    assert_eq!(set.leader(4), 1);
    assert_eq!(set.index_of(&keys[2].verifying_key()), Some(2));
    assert_eq!(set.get(3), None);
    assert_eq!(set.iter().map(|v| v.voting_power).sum::<u64>(), 6);
    // Quorum is strictly more than 2/3 for assorted totals.
    for total in [1u64, 2, 3, 4, 5, 6, 7, 8, 100, 3_000_000_001] {
        let s = ValidatorSet::new(vec![v(0, total)]).unwrap();
        let q = s.quorum_power() as u128;
        assert!(3 * q > 2 * total as u128 && 3 * (q - 1) <= 2 * total as u128);
    }
    let big = ValidatorSet::new(vec![v(0, u64::MAX)]).unwrap();
    assert!(big.quorum_power() <= big.total_power());
}

#[test]
fn config_validation() {
    let f = Fixture::new(&[1, 1]);
    assert!(f.config(Some(0)).validate().is_ok());
    let mut c = f.config(Some(0));
    c.signer = Some(crate::testing::keys(3)[2].clone());
    assert_eq!(c.validate(), Err(ConfigError::SignerNotInSet));
    let mut c = f.config(None);
    c.nullify_retry_ms = 0;
    assert_eq!(
        c.validate(),
        Err(ConfigError::ZeroDuration {
            field: "nullify_retry_ms"
        })
    );
    let mut c = f.config(None);
    c.leader_timeout_ms = 5_000;
    assert!(matches!(
        c.validate(),
        Err(ConfigError::LeaderTimeoutTooLong { .. })
    ));
    let mut c = f.config(None);
    c.views_ahead_max = VIEWS_AHEAD_LIMIT + 1;
    assert!(matches!(
        c.validate(),
        Err(ConfigError::ViewsAheadOutOfRange { .. })
    ));
    let anchor = Anchor {
        view: u64::MAX,
        payload: Digest::ZERO,
    };
    assert!(matches!(
        Consensus::new(f.config(None), anchor, &[]),
        Err(ConfigError::AnchorViewTooLarge { .. })
    ));
    let dbg = format!("{:?}", f.config(Some(0)));
    assert!(dbg.contains("leader_timeout_ms"));
}

// ---------------------------------------------------------------- R1

#[test]
fn r1_round_robin_leaders_view_changes_and_deadlines() {
    // me = 2 of 4: leads views 2 and 6 only; a replica's timer starts at the
    // leader timeout and moves to the notarization deadline once the
    // proposal is seen.
    let f = Fixture::new(&[1, 1, 1, 1]);
    let (mut m, start) = f.machine(Some(2), 0);
    assert_eq!(start, vec![changed(1), timer(1000)]);
    for v in 1..=8u64 {
        assert_eq!(f.set.leader(v), (v % 4) as ValidatorIndex);
    }
    let p1 = mock_proposal(1, 0, g());
    let z1 = f.cert(CertificateKind::Nullification(1), &[0, 1, 3]);
    let z2 = f.cert(CertificateKind::Nullification(2), &[0, 1, 3]);
    run(
        &mut m,
        vec![
            // Proposal of leader 1 at t=300: deadline = entry (0) + 2000.
            (
                msg(f.vote_msg(1, notarize(p1)), 300),
                ok(vec![Output::Validate(p1), timer(2000)]),
            ),
            // Nullified anyway: view 2 is mine → BuildProposal, timer at 400 + 1000.
            (
                msg(Message::Certificate(z1.clone()), 400),
                ok(vec![
                    send_cert(&z1),
                    changed(2),
                    Output::BuildProposal {
                        view: 2,
                        parent_view: 0,
                        parent: g(),
                    },
                    timer(1400),
                ]),
            ),
            // View 3 is led by 3: no BuildProposal.
            (
                msg(Message::Certificate(z2.clone()), 500),
                ok(vec![send_cert(&z2), changed(3), timer(1500)]),
            ),
        ],
    );
}

// ---------------------------------------------------------------- R6 (view already left)

#[test]
fn r6_finalize_vote_for_a_view_already_left_without_nullifying() {
    // me = 0 notarizes view 1, others nullify it (I did not): later the
    // notarization of view 1 arrives and I still cast Finalize for it.
    let f = Fixture::new(&[1, 1, 1, 1]);
    let (mut m, _) = f.machine(Some(0), 0);
    let p1 = mock_proposal(1, 0, g());
    let z1 = f.cert(CertificateKind::Nullification(1), &[1, 2, 3]);
    let n1 = f.cert(CertificateKind::Notarization(p1), &[0, 1, 2]);
    run(
        &mut m,
        vec![
            (
                msg(f.vote_msg(1, notarize(p1)), 1),
                ok(vec![Output::Validate(p1), timer(2000)]),
            ),
            (
                Input::Validated {
                    proposal: p1,
                    valid: true,
                    now_ms: 2,
                },
                ok(persist_and_send(&f.vote(0, notarize(p1)))),
            ),
            (
                msg(Message::Certificate(z1.clone()), 3),
                ok(vec![send_cert(&z1), changed(2), timer(1003)]),
            ),
            (
                msg(Message::Certificate(n1.clone()), 4),
                ok(concat(vec![
                    vec![send_cert(&n1), Output::Notarized(n1.clone())],
                    persist_and_send(&f.vote(0, finalize(p1))),
                ])),
            ),
        ],
    );
    assert_eq!(m.view(), 2);
}

// ---------------------------------------------------------------- R7 / R2: justification (liveness fixes)

#[test]
fn r7_retry_rebroadcasts_the_parent_justification() {
    // Found by the simulator: a node that missed a nullification between the
    // parent and the current view can never validate a proposal, and used to
    // get only the *highest* certificate on retries. Now retries also carry
    // every certificate justifying the current view's parent.
    let f = Fixture::new(&[1, 1, 1, 1]);
    let (mut m, _) = f.machine(Some(0), 0);
    let z1 = f.cert(CertificateKind::Nullification(1), &[1, 2, 3]);
    let z2 = f.cert(CertificateKind::Nullification(2), &[1, 2, 3]);
    let null3 = f.vote(0, nullify(3));
    run(
        &mut m,
        vec![
            (
                msg(Message::Certificate(z1.clone()), 10),
                ok(vec![send_cert(&z1), changed(2), timer(1010)]),
            ),
            (
                msg(Message::Certificate(z2.clone()), 20),
                ok(vec![send_cert(&z2), changed(3), timer(1020)]),
            ),
            (
                timeout(1020),
                ok(concat(vec![persist_and_send(&null3), vec![timer(1520)]])),
            ),
            // Retry: my Nullify, the highest certificate (z2), then the rest
            // of the justification of view 3's parent (genesis): z1.
            (
                timeout(1520),
                ok(vec![
                    Output::Broadcast(Message::Vote(null3.clone())),
                    send_cert(&z2),
                    send_cert(&z1),
                    timer(2020),
                ]),
            ),
        ],
    );
}

#[test]
fn r7_retry_rebroadcasts_uncertified_votes_after_restart() {
    // Found by the simulator: after a restart the WAL restores my votes but
    // no certificate; resumed past a view I Finalize-voted, I could not help
    // peers still stuck in it (they need my Notarize to form its
    // notarization). Retries now re-send my votes of uncertified views.
    let f = Fixture::new(&[1, 1, 1, 1]);
    let p1 = mock_proposal(1, 0, g());
    let n0 = f.vote(0, notarize(p1));
    let f0 = f.vote(0, finalize(p1));
    let wal = vec![WalEntry::Voted(n0.clone()), WalEntry::Voted(f0.clone())];
    let mut m = Consensus::new(f.config(Some(0)), genesis(), &wal).unwrap();
    assert_eq!(m.view(), 2);
    assert_eq!(
        m.start(100),
        vec![
            changed(2),
            Output::Broadcast(Message::Vote(n0.clone())),
            Output::Broadcast(Message::Vote(f0.clone())),
            timer(1100)
        ]
    );
    let null2 = f.vote(0, nullify(2));
    let n1 = f.cert(CertificateKind::Notarization(p1), &[0, 1, 2]);
    run(
        &mut m,
        vec![
            (
                timeout(1100),
                ok(concat(vec![persist_and_send(&null2), vec![timer(1600)]])),
            ),
            (
                timeout(1600),
                ok(vec![
                    Output::Broadcast(Message::Vote(null2.clone())),
                    Output::Broadcast(Message::Vote(n0.clone())),
                    Output::Broadcast(Message::Vote(f0.clone())),
                    timer(2100),
                ]),
            ),
            // Once the certificate of view 1 is held, it replaces the votes.
            (
                msg(Message::Certificate(n1.clone()), 1700),
                ok(vec![send_cert(&n1), Output::Notarized(n1.clone())]),
            ),
            (
                timeout(2100),
                ok(vec![
                    Output::Broadcast(Message::Vote(null2.clone())),
                    send_cert(&n1),
                    timer(2600),
                ]),
            ),
        ],
    );
}

#[test]
fn r7_retry_rebroadcasts_my_current_notarize() {
    let f = Fixture::new(&[1, 1, 1, 1]);
    let (mut m, _) = f.machine(Some(0), 0);
    let p1 = mock_proposal(1, 0, g());
    let my_n = f.vote(0, notarize(p1));
    let my_z = f.vote(0, nullify(1));
    run(
        &mut m,
        vec![
            (
                msg(f.vote_msg(1, notarize(p1)), 1),
                ok(vec![Output::Validate(p1), timer(2000)]),
            ),
            (
                Input::Validated {
                    proposal: p1,
                    valid: true,
                    now_ms: 2,
                },
                ok(persist_and_send(&my_n)),
            ),
            (
                timeout(2000),
                ok(concat(vec![persist_and_send(&my_z), vec![timer(2500)]])),
            ),
            (
                timeout(2500),
                ok(vec![
                    Output::Broadcast(Message::Vote(my_z.clone())),
                    Output::Broadcast(Message::Vote(my_n.clone())),
                    timer(3000),
                ]),
            ),
        ],
    );
}

#[test]
fn r2_leader_sends_parent_justification_with_a_proposal_after_skipped_views() {
    let f = Fixture::new(&[1, 1, 1, 1]);
    let (mut m, _) = f.machine(Some(3), 0);
    let p1 = mock_proposal(1, 0, g());
    let n1 = f.cert(CertificateKind::Notarization(p1), &[0, 1, 2]);
    let z2 = f.cert(CertificateKind::Nullification(2), &[0, 1, 2]);
    m.handle(msg(Message::Certificate(n1.clone()), 10)).unwrap();
    m.handle(msg(Message::Certificate(z2.clone()), 20)).unwrap();
    let p3 = mock_proposal(3, 1, p1.payload);
    run(
        &mut m,
        vec![(
            Input::Proposed {
                view: 3,
                payload: p3.payload,
                now_ms: 25,
            },
            ok(concat(vec![
                vec![send_cert(&n1), send_cert(&z2)],
                persist_and_send(&f.vote(3, notarize(p3))),
                vec![timer(2020)],
            ])),
        )],
    );
    // Without skipped views, a proposal goes out alone (see r2_propose_*).
}

// ---------------------------------------------------------------- R15: evidence

#[test]
fn r15_conflicting_votes_become_evidence_once() {
    let f = Fixture::new(&[1, 1, 1, 1]);
    let (mut m, _) = f.machine(Some(0), 0);
    let p1 = mock_proposal(1, 0, g());
    let q1 = Proposal {
        payload: Digest([0xcc; 32]),
        ..p1
    };
    let mut forged = f.vote(2, finalize(q1));
    forged.signature[3] ^= 1;
    run(
        &mut m,
        vec![
            // Nullify then Finalize by 2 (I3 broken by a peer).
            (msg(f.vote_msg(2, nullify(1)), 1), ok(vec![])),
            // A conflicting vote with a bad signature is a peer fault, not evidence.
            (
                msg(Message::Vote(forged), 2),
                Err(MessageError::BadSignature { signer: 2 }),
            ),
            (
                msg(f.vote_msg(2, finalize(p1)), 3),
                ok(vec![evidence(
                    f.vote(2, nullify(1)),
                    f.vote(2, finalize(p1)),
                )]),
            ),
            // Two Finalize votes by 2 (R12: the second is not counted).
            (
                msg(f.vote_msg(2, finalize(q1)), 4),
                ok(vec![evidence(
                    f.vote(2, finalize(p1)),
                    f.vote(2, finalize(q1)),
                )]),
            ),
            // Each kind of equivocation is reported once per signer and view.
            (msg(f.vote_msg(2, nullify(1)), 5), ok(vec![])),
            (msg(f.vote_msg(2, finalize(q1)), 6), ok(vec![])),
            // Two Notarize votes by 3.
            (msg(f.vote_msg(3, notarize(p1)), 7), ok(vec![])),
            (
                msg(f.vote_msg(3, notarize(q1)), 8),
                ok(vec![evidence(
                    f.vote(3, notarize(p1)),
                    f.vote(3, notarize(q1)),
                )]),
            ),
        ],
    );
    // Finalize votes for q1 by 1 and 3: with 2's second vote not counted,
    // no quorum for q1.
    run(
        &mut m,
        vec![
            (msg(f.vote_msg(1, finalize(q1)), 9), ok(vec![])),
            (msg(f.vote_msg(3, finalize(q1)), 10), ok(vec![])),
        ],
    );
    assert_eq!(m.last_finalized(), genesis());
}

#[test]
fn r15_certificate_signature_conflicting_with_a_held_vote_is_evidence() {
    // Twins-style: validator 1 sent me Nullify(1), and a notarization
    // carries its Notarize... that is allowed (Notarize then Nullify), but a
    // Finalization carrying its Finalize is not.
    let f = Fixture::new(&[1, 1, 1, 1]);
    let (mut m, _) = f.machine(Some(0), 0);
    let p1 = mock_proposal(1, 0, g());
    let n1 = f.cert(CertificateKind::Notarization(p1), &[1, 2, 3]);
    let f1 = f.cert(CertificateKind::Finalization(p1), &[1, 2, 3]);
    run(
        &mut m,
        vec![
            (msg(f.vote_msg(1, nullify(1)), 1), ok(vec![])),
            (
                msg(Message::Certificate(n1.clone()), 2),
                ok(concat(vec![
                    vec![send_cert(&n1), Output::Notarized(n1.clone())],
                    persist_and_send(&f.vote(0, finalize(p1))),
                    vec![changed(2), timer(1002)],
                ])),
            ),
            (
                msg(Message::Certificate(f1.clone()), 3),
                ok(vec![
                    evidence(f.vote(1, nullify(1)), f.vote(1, finalize(p1))),
                    send_cert(&f1),
                    Output::Finalized(f1.clone()),
                ]),
            ),
        ],
    );
}

#[test]
fn evidence_record_checks() {
    let f = Fixture::new(&[1, 1, 1, 1]);
    let p1 = mock_proposal(1, 0, g());
    let q1 = Proposal {
        payload: Digest([0xcc; 32]),
        ..p1
    };
    let a = f.vote(2, notarize(p1));
    let b = f.vote(2, notarize(q1));
    // Canonical whatever the order.
    let e = Evidence::new(a.clone(), b.clone()).unwrap();
    assert_eq!(Evidence::new(b.clone(), a.clone()).unwrap(), e);
    assert_eq!(e.verify(&f.namespace, &f.set), Ok(Equivocation::Notarize));
    assert_eq!(e.signer(), 2);
    assert_eq!(e.view(), 1);
    assert_eq!(e.equivocation(), Some(Equivocation::Notarize));
    assert_eq!(Evidence::decode(&e.encode()), Ok(e.clone()));
    assert!(e.encode().len() <= Evidence::BYTES_MAX);
    let z = f.vote(2, nullify(1));
    let fin = f.vote(2, finalize(p1));
    let e2 = Evidence::new(fin.clone(), z.clone()).unwrap();
    assert_eq!(e2.first, z, "Nullify sorts before Finalize");
    assert_eq!(
        e2.verify(&f.namespace, &f.set),
        Ok(Equivocation::NullifyFinalize)
    );
    let e3 = Evidence::new(fin.clone(), f.vote(2, finalize(q1))).unwrap();
    assert_eq!(e3.verify(&f.namespace, &f.set), Ok(Equivocation::Finalize));

    // Rejections.
    assert_eq!(
        Evidence::new(a.clone(), f.vote(3, notarize(q1))),
        Err(EvidenceError::DifferentSigners {
            first: 2,
            second: 3
        })
    );
    assert_eq!(
        Evidence::new(a.clone(), a.clone()),
        Err(EvidenceError::NotConflicting)
    );
    assert_eq!(
        Evidence::new(a.clone(), f.vote(2, nullify(1))),
        Err(EvidenceError::NotConflicting),
        "Notarize then Nullify is allowed"
    );
    assert_eq!(
        Evidence::new(f.vote(2, nullify(2)), fin.clone()),
        Err(EvidenceError::NotConflicting),
        "different views"
    );
    let swapped = Evidence {
        first: e.second.clone(),
        second: e.first.clone(),
    };
    assert_eq!(
        swapped.verify(&f.namespace, &f.set),
        Err(EvidenceError::NotCanonical)
    );
    let mut bad = e.clone();
    bad.second.signature[0] ^= 1;
    assert_eq!(
        bad.verify(&f.namespace, &f.set),
        Err(EvidenceError::Vote(MessageError::BadSignature {
            signer: 2
        }))
    );
    assert_eq!(
        e.verify(&[8u8; 32], &f.set),
        Err(EvidenceError::Vote(MessageError::BadSignature {
            signer: 2
        })),
        "other chain"
    );
    let mut mixed = e.clone();
    mixed.second.signer = 3;
    assert!(matches!(
        mixed.verify(&f.namespace, &f.set),
        Err(EvidenceError::DifferentSigners { .. })
    ));
    let small = Fixture::new(&[1, 1]);
    assert_eq!(
        e.verify(&f.namespace, &small.set),
        Err(EvidenceError::Vote(MessageError::UnknownSigner {
            signer: 2
        }))
    );
    assert!(matches!(
        Evidence::decode(&vec![0u8; Evidence::BYTES_MAX + 1]),
        Err(EvidenceError::Vote(MessageError::Oversize { .. }))
    ));
    let mut trailing = e2.encode();
    trailing.push(0);
    assert!(matches!(
        Evidence::decode(&trailing),
        Err(EvidenceError::Vote(MessageError::Malformed { .. }))
    ));
}
