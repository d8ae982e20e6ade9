//! The fault simulator in CI (see SIMULATOR.md): 200 seeds with n = 4
//! (f = 1) and 50 seeds with n = 7 (f = 2), each to at least 50 finalized
//! heights with at least one partition, random loss up to 30 %, crashes and
//! Byzantine validators, and zero invariant violations; determinism of the
//! event hash; and three deliberately broken protocol variants that the
//! simulator must catch within 1,000 seeds.
//!
//! Seeds are split into chunks so the test harness runs them in parallel.
//! A failure prints the seed and the one-line replay command.

use std::collections::BTreeSet;
use std::ops::Range;

use cairn_consensus::testing::BrokenVariant;
use cairn_consensus::testing::sim::{
    Behaviour, DEFAULT_MAX_LOSS_PERMILLE, SimConfig, Summary, ViolationKind, run_seed,
};

/// Runs `seeds` with `n` validators and asserts every per-seed requirement;
/// returns the summary for coverage checks.
fn run_chunk(n: usize, seeds: Range<u64>) -> Summary {
    let mut summary = Summary::default();
    for seed in seeds {
        let report = run_seed(&SimConfig::new(seed, n));
        assert!(report.ok(), "{}", report.failure_message());
        let line = report.one_line();
        assert!(report.min_height >= 50, "too few heights: {line}");
        assert!(report.stats.partitions >= 1, "no partition: {line}");
        assert!(report.stats.crashes >= 1, "no crash: {line}");
        assert!(report.stats.restarts >= 1, "no restart: {line}");
        assert!(
            report.scenario.loss_permille <= DEFAULT_MAX_LOSS_PERMILLE,
            "{line}"
        );
        assert!(
            report.scenario.faulty.len() <= (n - 1) / 3,
            "more than f faulty: {line}"
        );
        let powers: BTreeSet<u64> = report.scenario.powers.iter().copied().collect();
        assert!(powers.len() > 1, "equal voting power: {line}");
        summary.add(&report);
    }
    println!("{summary}");
    summary
}

/// Over a chunk, every kind of fault was exercised.
fn assert_coverage(s: &Summary) {
    for b in Behaviour::ALL {
        assert!(
            s.behaviours.get(&b).copied().unwrap_or(0) > 0,
            "{b:?} never ran"
        );
    }
    let st = &s.stats;
    assert!(st.crashes_mid_batch > 0, "no mid-batch crash");
    assert!(st.dropped_loss > 0 && st.dropped_partition > 0);
    assert!(st.duplicated > 0 && st.reordered > 0);
    assert!(st.byzantine_messages > 0 && st.outsider_messages > 0);
    assert!(st.rejected > 0, "no bad message was rejected");
    assert!(st.evidence > 0, "no equivocation evidence");
    assert_eq!(s.failed(), 0);
}

#[test]
fn n4_seeds_0_to_49() {
    assert_coverage(&run_chunk(4, 0..50));
}

#[test]
fn n4_seeds_50_to_99() {
    assert_coverage(&run_chunk(4, 50..100));
}

#[test]
fn n4_seeds_100_to_149() {
    assert_coverage(&run_chunk(4, 100..150));
}

#[test]
fn n4_seeds_150_to_199() {
    assert_coverage(&run_chunk(4, 150..200));
}

#[test]
fn n7_seeds_0_to_24() {
    assert_coverage(&run_chunk(7, 0..25));
}

#[test]
fn n7_seeds_25_to_49() {
    assert_coverage(&run_chunk(7, 25..50));
}

#[test]
fn same_seed_same_event_hash() {
    for (seed, n) in [(3, 4), (11, 7)] {
        let a = run_seed(&SimConfig::new(seed, n));
        let b = run_seed(&SimConfig::new(seed, n));
        assert!(a.ok() && b.ok(), "{}", a.failure_message());
        assert_eq!(
            a.event_hash, b.event_hash,
            "seed {seed} n={n} is not deterministic"
        );
        assert_eq!(a.stats, b.stats);
        assert_eq!(a.time_ms, b.time_ms);
        let other = run_seed(&SimConfig::new(seed + 1, n));
        assert_ne!(a.event_hash, other.event_hash);
    }
}

/// Runs seeds 0.. until `variant` is caught (at most 1,000); asserts it was
/// caught by a safety invariant in `expected`, deterministically, and that
/// the failure message carries the replay command.
fn caught_within_1000_seeds(variant: BrokenVariant, expected: &[ViolationKind]) -> u64 {
    for seed in 0..1000 {
        let cfg = SimConfig {
            broken: Some(variant),
            ..SimConfig::new(seed, 4)
        };
        let report = run_seed(&cfg);
        let Some(v) = &report.violation else {
            continue;
        };
        let message = report.failure_message();
        println!("{variant:?} caught at seed {seed}: {message}");
        assert!(
            expected.contains(&v.kind),
            "{variant:?}: unexpected {message}"
        );
        assert!(message.contains(&format!("--seed {seed} ")), "{message}");
        assert!(message.contains("--broken"), "{message}");
        let again = run_seed(&cfg);
        assert_eq!(again.violation, report.violation, "replay differs");
        assert_eq!(again.event_hash, report.event_hash);
        return seed;
    }
    panic!("{variant:?} was not caught within 1000 seeds");
}

#[test]
fn broken_weak_quorum_is_caught() {
    caught_within_1000_seeds(
        BrokenVariant::WeakQuorum,
        &[ViolationKind::ConflictingFinalization],
    );
}

#[test]
fn broken_vote_not_persisted_is_caught() {
    caught_within_1000_seeds(
        BrokenVariant::VoteNotPersisted,
        &[ViolationKind::DoubleSign],
    );
}

#[test]
fn broken_parent_rule_is_caught() {
    caught_within_1000_seeds(
        BrokenVariant::IgnoreParentRule,
        &[ViolationKind::ConflictingFinalization],
    );
}
