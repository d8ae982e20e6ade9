//! Reconfiguration scenarios of the seeded simulator in CI (see
//! SIMULATOR.md): 200 seeds over the six scripts (add, remove, power,
//! rotate, remove-leader, 50-epoch churn) with partitions, loss, crashes
//! with WAL restarts and a Byzantine identity per seed (kept below a third
//! of every epoch's set), zero violations; determinism of the event hash;
//! and the two epoch-specific broken variants caught within 1,000 seeds.

use std::collections::BTreeMap;
use std::ops::Range;

use cairn_consensus::testing::BrokenVariant;
use cairn_consensus::testing::reconfig::{
    ReconfigConfig, ReconfigKind, ReconfigViolationKind, run_reconfig,
};

/// Runs `seeds`; every one must pass, reach its scripted epochs and heights,
/// and exercise faults. Returns per-script counts.
fn run_chunk(seeds: Range<u64>) -> BTreeMap<ReconfigKind, u64> {
    let mut kinds = BTreeMap::new();
    let (mut suffix_ends, mut observers, mut catch_ups, mut restarts) = (0, 0, 0, 0);
    for seed in seeds {
        let report = run_reconfig(&ReconfigConfig::new(seed));
        println!("{}", report.one_line());
        assert!(report.ok(), "{}", report.failure_message());
        let line = report.one_line();
        assert!(
            report.min_epoch >= report.scenario.changes.len() as u64,
            "too few epochs: {line}"
        );
        assert!(
            report.min_height >= report.scenario.min_heights,
            "too few heights: {line}"
        );
        assert!(report.stats.crashes >= 1, "no crash: {line}");
        assert!(report.stats.cross_epoch_checks > 0, "{line}");
        *kinds.entry(report.scenario.kind).or_insert(0) += 1;
        suffix_ends += report.stats.ended_by_suffix;
        observers += report.stats.observer_switches;
        catch_ups += report.stats.catch_ups;
        restarts += report.stats.restarts;
    }
    println!(
        "ended by a suffix finalization: {suffix_ends}, observer switches: {observers}, \
         catch-ups: {catch_ups}, restarts: {restarts}"
    );
    assert!(observers > 0, "no observer ever switched epochs");
    assert!(restarts > 0, "no restart");
    kinds
}

#[test]
fn reconfig_seeds_0_to_49() {
    let kinds = run_chunk(0..50);
    assert_eq!(kinds.len(), ReconfigKind::ALL.len(), "{kinds:?}");
}

#[test]
fn reconfig_seeds_50_to_99() {
    run_chunk(50..100);
}

#[test]
fn reconfig_seeds_100_to_149() {
    run_chunk(100..150);
}

#[test]
fn reconfig_seeds_150_to_199() {
    run_chunk(150..200);
}

#[test]
fn reconfig_same_seed_same_event_hash() {
    for seed in [4, 5, 11] {
        let a = run_reconfig(&ReconfigConfig::new(seed));
        let b = run_reconfig(&ReconfigConfig::new(seed));
        assert!(a.ok(), "{}", a.failure_message());
        assert_eq!(
            a.event_hash, b.event_hash,
            "seed {seed} is not deterministic"
        );
        assert_eq!(a.stats, b.stats);
        assert_eq!(a.time_ms, b.time_ms);
        let other = run_reconfig(&ReconfigConfig::new(seed + 6));
        assert_ne!(a.event_hash, other.event_hash);
    }
}

/// Runs seeds 0.. until `variant` is caught (at most 1,000); asserts the
/// violation kind, the replay command and a deterministic replay.
fn caught_within_1000_seeds(
    variant: BrokenVariant,
    check_proofs: bool,
    expected: &[ReconfigViolationKind],
) -> u64 {
    for seed in 0..1000 {
        let cfg = ReconfigConfig {
            broken: Some(variant),
            check_proofs,
            ..ReconfigConfig::new(seed)
        };
        let report = run_reconfig(&cfg);
        let Some(v) = &report.violation else {
            continue;
        };
        let message = report.failure_message();
        println!("{variant:?} caught at seed {seed}: {message}");
        assert!(
            expected.contains(&v.kind),
            "{variant:?}: unexpected {message}"
        );
        assert!(message.contains(&format!("--seed {seed}")), "{message}");
        assert!(message.contains("--broken"), "{message}");
        let again = run_reconfig(&cfg);
        assert_eq!(again.violation, report.violation, "replay differs");
        assert_eq!(again.event_hash, report.event_hash);
        // The same seed with the correct protocol passes: the bug, not the
        // scenario, caused the violation.
        let clean = run_reconfig(&ReconfigConfig {
            broken: None,
            ..cfg.clone()
        });
        assert!(clean.ok(), "{}", clean.failure_message());
        return seed;
    }
    panic!("{variant:?} was not caught within 1000 seeds");
}

#[test]
fn broken_accept_previous_epoch_certificates_is_caught() {
    caught_within_1000_seeds(
        BrokenVariant::AcceptPreviousEpochCertificates,
        true,
        &[
            ReconfigViolationKind::WrongEpochCertificate,
            ReconfigViolationKind::ConflictingFinalization,
        ],
    );
}

/// The switch's proof is a notarization, not a finalization: the proof
/// check rejects it at once.
#[test]
fn broken_switch_on_notarization_is_caught_by_the_proof_check() {
    caught_within_1000_seeds(
        BrokenVariant::SwitchOnNotarization,
        true,
        &[ReconfigViolationKind::BadEpochProof],
    );
}

/// Without the proof check, the early switch is still caught by what it
/// breaks: a notarized boundary that is never finalized (orphaned) makes
/// nodes disagree on `L`, or commit conflicting blocks.
#[test]
fn broken_switch_on_notarization_is_caught_by_its_effects() {
    caught_within_1000_seeds(
        BrokenVariant::SwitchOnNotarization,
        false,
        &[
            ReconfigViolationKind::EpochDisagreement,
            ReconfigViolationKind::ConflictingFinalization,
            ReconfigViolationKind::BrokenChain,
            ReconfigViolationKind::WrongEpochCertificate,
            ReconfigViolationKind::DoubleSign,
            ReconfigViolationKind::HonestRejected,
            ReconfigViolationKind::Liveness,
        ],
    );
}
