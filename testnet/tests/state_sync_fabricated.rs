//! State sync on a fabricated history ([`cairn_testnet::fabricate`]): 4 validators and a
//! full node serving corrupt snapshot chunks start on a chain built offline and finalize on
//! top of it; fresh full nodes join it by state sync from 3 peers, from 1 peer, and by full
//! replay with every signature re-verified ([`cairn_testnet::state_sync_bench::run`], which
//! checks that each reaches the tip and agrees on the head's hash and state root, and that
//! the corrupt peer is banned).
//!
//! The small case (2,000 blocks of 10 transfers: 20,000 fabricated accounts) runs in CI.
//! The case, 100,000 blocks of 10 transfers (1,000,000 accounts), is `#[ignore]`d:
//! run it with `cargo test --workspace --test state_sync_fabricated -- --ignored --nocapture`
//! or, faster, with the release binaries (docs/network.md, "State sync").
//!
//! Needs the binaries built (`cargo build --workspace --bins --features cairn-node/byzantine`).

use std::time::Duration;

use cairn_testnet::state_sync_bench::{BenchOptions, run};

async fn bench(blocks: u64, wait_max: Duration) {
    let dir = tempfile::tempdir().unwrap();
    let opts = BenchOptions {
        out: dir.path().join("net"),
        blocks,
        transfers_per_block: 10,
        snapshot_interval_blocks: 20,
        wait_max,
        ..BenchOptions::default()
    };
    let report = match run(&opts).await {
        Ok(r) => r,
        Err(e) => {
            // Kept for the nodes' logs.
            let kept = dir.keep();
            panic!("{e:#} (testnet kept in {})", kept.display());
        }
    };
    eprintln!("{}", report.table());
    assert_eq!(report.fabricated.head_height, blocks);
    assert_eq!(report.fabricated.transfers_written, blocks * 10);
    assert!(report.chain_height > blocks, "no block finalized on top");
    assert_eq!(report.joins.len(), 3);
    for j in &report.joins[..2] {
        assert!(j.snapshot_height > blocks, "{j:?}");
        assert!(j.state_sync_bytes > 0, "{j:?}");
    }
    // The replay node fetched every block, the state-syncing ones only those after their
    // snapshot.
    let replay = &report.joins[2];
    assert_eq!(replay.snapshot_height, 0);
    assert!(replay.block_sync_bytes > report.joins[1].block_sync_bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_node_joins_a_fabricated_chain_by_state_sync_and_by_replay() {
    bench(2_000, Duration::from_secs(600)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "1,000,000 accounts, 100,000 blocks: tens of minutes (docs/network.md)"]
async fn a_fresh_node_joins_a_million_account_chain() {
    bench(100_000, Duration::from_secs(7200)).await;
}
