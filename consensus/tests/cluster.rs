//! In-memory multi-instance tests: n consensus instances exchange messages
//! through the deterministic [`Cluster`] queue (virtual time, seeded jitter),
//! with a mock app whose blocks are `payload = blake3(view, parent)`.

use std::collections::BTreeMap;

use cairn_consensus::testing::{Cluster, genesis_payload, payload_for};
use cairn_consensus::{Digest, View};

/// Asserts agreement, absence of peer faults, and that each node's finalized
/// chain links up: every block's payload is the mock app's digest of its view
/// and its predecessor in the chain.
fn assert_consistent(c: &Cluster, live: &[usize]) {
    c.check_safety().expect("safety");
    assert!(c.peer_faults().is_empty(), "{:?}", c.peer_faults());
    for &i in live {
        let chain = &c.nodes[i].finalized;
        let mut prev: (View, Digest) = (0, genesis_payload());
        for (&v, &d) in chain {
            assert_eq!(
                d,
                payload_for(v, prev.0, prev.1),
                "node {i}: view {v} does not extend view {}",
                prev.0
            );
            prev = (v, d);
        }
    }
}

fn finalized_views(c: &Cluster, i: usize) -> Vec<View> {
    c.nodes[i].finalized.keys().copied().collect()
}

#[test]
fn four_validators_finalize_thirty_views_identically() {
    let mut c = Cluster::new(&[1, 1, 1, 1], 42);
    c.start_all(&[]);
    let all = [0, 1, 2, 3];
    assert!(
        c.run_until(60_000, |c| c.min_finalized_view(&all) >= 30),
        "stalled at {}",
        c.min_finalized_view(&all)
    );
    assert_consistent(&c, &all);
    // Synchronous, all honest: every view 1..=30 carries a finalized block,
    // and all nodes hold the very same payload for it.
    let reference: BTreeMap<View, Digest> = c.nodes[0]
        .finalized
        .range(..=30)
        .map(|(v, d)| (*v, *d))
        .collect();
    assert_eq!(
        reference.keys().copied().collect::<Vec<_>>(),
        (1..=30).collect::<Vec<_>>()
    );
    for i in 1..4 {
        let mine: BTreeMap<View, Digest> = c.nodes[i]
            .finalized
            .range(..=30)
            .map(|(v, d)| (*v, *d))
            .collect();
        assert_eq!(mine, reference, "node {i}");
        assert!(c.nodes[i].finalized_outputs >= 30);
    }
    // No view needed a timeout: far below the 1 s leader timeout per view.
    assert!(c.now < 30 * 100, "took {} ms", c.now);
}

#[test]
fn silent_validator_views_are_nullified_and_the_rest_finalize() {
    let mut c = Cluster::new(&[1, 1, 1, 1], 7);
    c.start_all(&[3]); // validator 3 never starts (crashed)
    let live = [0, 1, 2];
    assert!(
        c.run_until(200_000, |c| c.min_finalized_view(&live) >= 40),
        "stalled at {}",
        c.min_finalized_view(&live)
    );
    assert_consistent(&c, &live);
    let expected: Vec<View> = (1..=40).filter(|v| v % 4 != 3).collect();
    for &i in &live {
        let got: Vec<View> = finalized_views(&c, i)
            .into_iter()
            .filter(|v| *v <= 40)
            .collect();
        assert_eq!(got, expected, "node {i}: views led by 3 must be skipped");
        assert!(got.len() >= 30);
    }
    // Each of the 10 silent-leader views cost a leader timeout (1 s).
    assert!(c.now >= 10 * 1_000, "only {} ms elapsed", c.now);
}

#[test]
fn seven_validators_with_unequal_power() {
    let powers = [1, 2, 3, 4, 5, 6, 7]; // total 28, quorum 19
    let mut c = Cluster::new(&powers, 99);
    c.start_all(&[]);
    let all: Vec<usize> = (0..7).collect();
    assert!(c.run_until(60_000, |c| c.min_finalized_view(&all) >= 30));
    assert_consistent(&c, &all);
    for &i in &all {
        let got: Vec<View> = finalized_views(&c, i)
            .into_iter()
            .filter(|v| *v <= 30)
            .collect();
        assert_eq!(got, (1..=30).collect::<Vec<_>>(), "node {i}");
    }
}

#[test]
fn seven_unequal_validators_survive_the_heaviest_going_silent() {
    // Without validator 6 (power 7) 21 >= 19 power remains.
    let powers = [1, 2, 3, 4, 5, 6, 7];
    let mut c = Cluster::new(&powers, 5);
    c.start_all(&[6]);
    let live: Vec<usize> = (0..6).collect();
    assert!(c.run_until(200_000, |c| c.min_finalized_view(&live) >= 35));
    assert_consistent(&c, &live);
    for &i in &live {
        let got: Vec<View> = finalized_views(&c, i)
            .into_iter()
            .filter(|v| *v <= 35)
            .collect();
        assert_eq!(
            got,
            (1..=35).filter(|v| v % 7 != 6).collect::<Vec<_>>(),
            "node {i}"
        );
    }
}

#[test]
fn crashed_validator_restarts_from_wal_and_catches_up() {
    let mut c = Cluster::new(&[1, 1, 1, 1], 11);
    c.start_all(&[]);
    let all = [0, 1, 2, 3];
    assert!(c.run_until(60_000, |c| c.min_finalized_view(&all) >= 10));
    c.crash(1);
    let others = [0, 2, 3];
    assert!(c.run_until(200_000, |c| c.min_finalized_view(&others) >= 25));
    let anchor_before = c.nodes[1].anchor.view;
    assert!(anchor_before < 25);
    assert!(!c.nodes[1].wal.is_empty());
    c.restart(1);
    assert!(
        c.run_until(400_000, |c| c.min_finalized_view(&all) >= 40),
        "restarted node stuck at {}",
        c.nodes[1].anchor.view
    );
    assert_consistent(&c, &all);
    // The restarted node's host-walked chain agrees with everyone's.
    for v in 1..=40 {
        let d0 = c.nodes[0].finalized.get(&v);
        assert_eq!(c.nodes[1].finalized.get(&v), d0, "view {v}");
    }
}

#[test]
fn lossy_network_still_finalizes() {
    // 10% of message copies dropped, 10..30 ms latency; nullify retries
    // re-broadcast votes and the highest certificate.
    for seed in 0..5u64 {
        let mut c = Cluster::new(&[1, 1, 1, 1], seed);
        c.link = Box::new(|_, _, _, _, rng| {
            if rng.below(100) < 10 {
                None
            } else {
                Some(10 + rng.below(21))
            }
        });
        c.start_all(&[]);
        let all = [0, 1, 2, 3];
        assert!(
            c.run_until(600_000, |c| c.min_finalized_view(&all) >= 40),
            "seed {seed}: stalled at {}",
            c.min_finalized_view(&all)
        );
        assert_consistent(&c, &all);
    }
}

#[test]
fn stalled_network_recovers_when_crashed_validators_restart() {
    let mut c = Cluster::new(&[1, 1, 1, 1], 3);
    c.start_all(&[]);
    let all = [0, 1, 2, 3];
    assert!(c.run_until(60_000, |c| c.min_finalized_view(&all) >= 10));
    c.crash(2);
    let t = c.now;
    c.run_until(t + 3_000, |_| false);
    c.crash(3); // only half the power left: no certificate can form
    let t = c.now;
    c.run_until(t + 20_000, |_| false);
    let stalled_at = c.nodes[0].anchor.view;
    assert_eq!(c.nodes[1].anchor.view, stalled_at);
    let t = c.now;
    c.run_until(t + 20_000, |_| false);
    assert_eq!(
        c.nodes[0].anchor.view, stalled_at,
        "progress without quorum"
    );
    c.restart(2);
    c.restart(3);
    let target = stalled_at + 20;
    assert!(
        c.run_until(c.now + 600_000, |c| c.min_finalized_view(&all) >= target),
        "no recovery: {:?}",
        c.nodes.iter().map(|n| n.anchor.view).collect::<Vec<_>>()
    );
    assert_consistent(&c, &all);
}
