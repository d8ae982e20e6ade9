//! The wide-area finality projection (`testing::wan`, docs/scaling.md) in
//! CI: a 4-validator run on the region matrix finalizes every height, no
//! block is finalized faster than the exact good-case bound, and the median
//! stays within 1.25 times the bound's; without jitter a 16-validator run
//! meets the bound exactly; with 10 % loss it still finalizes; the same
//! seed gives the same figures. Virtual time only: nothing here is timed.

use cairn_consensus::testing::wan::{
    GoodCaseBound, REGIONS, WanConfig, WanReport, median_one_way_ms, one_way_ms, placement, run_wan,
};

fn run_ok(cfg: &WanConfig) -> WanReport {
    let r = run_wan(cfg);
    assert!(
        r.ok(),
        "n={} loss={}‰: {:?} (heights {} of {})",
        cfg.validators,
        cfg.loss_permille,
        r.violation,
        r.min_height,
        cfg.heights
    );
    assert_eq!(
        r.samples.len() as u64,
        cfg.heights * cfg.validators as u64,
        "one sample per height and validator"
    );
    r
}

#[test]
fn four_validators_finalize_within_a_factor_of_the_bound() {
    let cfg = WanConfig {
        heights: 20,
        ..WanConfig::new(1, 4)
    };
    let r = run_ok(&cfg);
    assert_eq!(r.quorum, 3);
    assert_eq!(r.placement, vec![0, 1, 2, 3]);
    assert_eq!(
        r.implicit, 0,
        "every block finalized by its own certificate"
    );
    for s in &r.samples {
        assert!(s.latency_ms >= s.bound_ms, "faster than the bound: {s:?}");
    }
    assert_eq!(r.below_bound, 0);
    assert!(
        r.latency.p50 >= r.bound.p50,
        "{:?} {:?}",
        r.latency,
        r.bound
    );
    assert!(
        r.latency.p50 as f64 <= 1.25 * r.bound.p50 as f64,
        "median {} ms more than 1.25 x the bound's {} ms",
        r.latency.p50,
        r.bound.p50
    );
    // The bound itself: three one-way delays' worth on this matrix, within
    // a factor of two of 3δ either way.
    let delta = median_one_way_ms(&one_way_ms(&placement(4)));
    assert_eq!(r.median_one_way_ms, delta);
    let b = r.bound.p50 as f64;
    assert!(
        b > 1.5 * delta && b < 6.0 * delta,
        "bound {b} ms, δ {delta} ms"
    );
    assert_eq!(r.skipped_views, 0);
    assert_eq!(r.timeouts, 0, "no view timed out in the good case");
}

#[test]
fn without_jitter_sixteen_validators_meet_the_bound_exactly() {
    let cfg = WanConfig {
        heights: 10,
        jitter_ms: 0,
        ..WanConfig::new(3, 16)
    };
    let r = run_ok(&cfg);
    // Every region holds two or three of them.
    for region in 0..REGIONS.len() {
        let k = r.placement.iter().filter(|p| **p == region).count();
        assert!((2..=3).contains(&k), "region {region}: {k}");
    }
    for s in &r.samples {
        assert_eq!(s.latency_ms, s.bound_ms, "{s:?}");
    }
}

#[test]
fn with_loss_it_still_finalizes_and_never_beats_the_bound() {
    let cfg = WanConfig {
        heights: 20,
        loss_permille: 100,
        ..WanConfig::new(5, 4)
    };
    let r = run_ok(&cfg);
    assert!(r.lost > 0, "nothing was lost");
    assert!(r.latency.p50 >= r.bound.p50);
    assert!(
        r.latency.p99 > r.bound.p99,
        "loss left no trace in the tail"
    );
    for s in r.samples.iter().filter(|s| !s.implicit) {
        assert!(s.latency_ms >= s.bound_ms, "{s:?}");
    }
}

#[test]
fn same_seed_same_figures() {
    let cfg = WanConfig {
        heights: 10,
        loss_permille: 20,
        ..WanConfig::new(7, 4)
    };
    let a = run_ok(&cfg);
    let b = run_ok(&cfg);
    assert_eq!(a.event_hash, b.event_hash);
    assert_eq!(a.samples, b.samples);
    assert_eq!(a.latency, b.latency);
    let c = run_ok(&WanConfig { seed: 8, ..cfg });
    assert_ne!(
        a.event_hash, c.event_hash,
        "the seed drives jitter and loss"
    );
}

#[test]
fn bound_for_the_region_matrix_grows_with_the_quorum_not_with_n() {
    // 64 and 128 validators spread evenly over the same regions need the
    // same fraction of them, so their bounds agree within a few ms.
    let median = |n: usize| {
        let m = one_way_ms(&placement(n));
        let q = n * 2 / 3 + 1;
        let bound = GoodCaseBound::new(m, q, 1);
        let mut all: Vec<u64> = (0..REGIONS.len())
            .flat_map(|leader| bound.finalized_ms(leader))
            .collect();
        all.sort_unstable();
        all[all.len() / 2]
    };
    let (b64, b128) = (median(64), median(128));
    assert!(b64.abs_diff(b128) <= 5, "{b64} vs {b128}");
}
