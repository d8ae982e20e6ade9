//! Block sync from several peers at once (`cairn_node::sync_schedule`) with real nodes
//! (`node::run`) on loopback. One validator makes a few hundred empty blocks quickly (short
//! timeouts: an empty leader waits half its leader timeout); two full nodes follow it.
//!
//! 1. A fresh full node that knows all three (state sync off, 16-block ranges) syncs to
//!    the head, and each of the three served it ranges (`cairn_sync_ranges_served_total`
//!    on each server); its blocks are the validator's.
//! 2. (Test builds with the `byzantine` feature.) One full node restarts serving corrupt
//!    ranges (`--byzantine corrupt-ranges`: every block's state root flipped, so no
//!    certificate verifies). A second fresh node that knows all three still syncs to the
//!    head with the validator's blocks, and penalizes the corrupt server
//!    (`cairn_peer_faults_total`), which did serve it ranges.
//!
//! Every wait is bounded.

mod common;

use std::time::Duration;

use common::cluster::{self, Homes};
use common::{metric, wait_until};

/// Bound of every wait.
const WAIT: Duration = Duration::from_secs(300);
/// Blocks the chain has before the first fresh node starts.
const BLOCKS: u64 = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_node_syncs_ranges_from_three_peers_and_survives_a_corrupt_one() {
    // Node logs with RUST_LOG (e.g. `cairn_node::sync_client=debug`); none by default.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    // Node 0: the validator. Nodes 1 and 2: full nodes following it. Nodes 3 and 4: fresh
    // nodes that know nodes 0, 1 and 2. Discovery off: each node knows the peers it names.
    let homes = Homes::generate(5, 1, |config| {
        config.p2p.discovery = false;
    });
    let mut configs = homes.configs.clone();
    let servers: Vec<String> = (0..3).map(|i| homes.addrs[i].to_string()).collect();
    for fresh in [3, 4] {
        configs[fresh].p2p.bootstrap = servers.clone();
        configs[fresh].sync.batch_blocks_max = 16;
    }
    // Smaller ranges: the corrupt server is asked for some even if it answers its first
    // status late (not so small that the servers' request rate limit is reached).
    configs[4].sync.batch_blocks_max = 8;
    let genesis = homes.genesis(
        "cairn-block-sync",
        1,
        &[],
        cairn_genesis::ChainParams {
            // An empty leader waits min(500, leader_timeout_ms / 2) ms for transactions.
            leader_timeout_ms: 100,
            notarization_timeout_ms: 400,
            nullify_retry_ms: 100,
            ..cluster::fast_params()
        },
    );
    let mut net = homes.with_genesis(genesis, WAIT);
    net.configs = configs;
    for i in 0..3 {
        net.start(i);
    }
    net.wait_height(0, BLOCKS).await;
    net.wait_height(1, BLOCKS).await;
    net.wait_height(2, BLOCKS).await;

    // 1. Three honest servers.
    let served = |net: &cluster::Cluster| {
        let ports: Vec<u16> = (0..3).map(|i| net.rpc_port(i)).collect();
        async move {
            let mut v = Vec::new();
            for p in ports {
                v.push(metric(p, "cairn_sync_ranges_served_total").await);
            }
            v
        }
    };
    let before = served(&net).await;
    net.start(3);
    let head = net.height(0).await.unwrap();
    net.wait_height(3, head).await;
    let after = served(&net).await;
    eprintln!("ranges served to node 3 by nodes 0, 1, 2: before {before:?}, after {after:?}");
    for i in 0..3 {
        assert!(
            after[i] > before[i],
            "node {i} served node 3 no range (before {before:?}, after {after:?})"
        );
    }
    assert!(metric(net.rpc_port(3), "cairn_blocks_synced_total").await >= BLOCKS);
    assert_eq!(metric(net.rpc_port(3), "cairn_peer_faults_total").await, 0);
    for h in [1, BLOCKS / 2, head] {
        let synced = net.rpc[3].block_by_height(h).await.unwrap().unwrap();
        let full = net.rpc[0].block_by_height(h).await.unwrap().unwrap();
        assert_eq!(synced.hash, full.hash, "height {h}");
    }

    // 2. Node 2 serves corrupt ranges.
    #[cfg(all(feature = "byzantine", debug_assertions))]
    {
        net.stop(2).await;
        net.configs[2].byzantine = Some("corrupt-ranges".parse().unwrap());
        net.start(2);
        let head = net.height(0).await.unwrap();
        net.wait_height(2, head).await;
        let bad_before = metric(net.rpc_port(2), "cairn_sync_ranges_served_total").await;
        net.start(4);
        let head = net.height(0).await.unwrap();
        net.wait_height(4, head).await;
        let bad_after = metric(net.rpc_port(2), "cairn_sync_ranges_served_total").await;
        let faults = metric(net.rpc_port(4), "cairn_peer_faults_total").await;
        eprintln!(
            "node 2 (corrupt) served node 4 {} ranges; node 4 recorded {faults} peer faults",
            bad_after - bad_before
        );
        assert!(bad_after > bad_before, "node 2 served node 4 no range");
        assert!(faults >= 1, "node 4 did not penalize the corrupt server");
        for h in [1, BLOCKS / 2, head] {
            let synced = net.rpc[4].block_by_height(h).await.unwrap().unwrap();
            let full = net.rpc[0].block_by_height(h).await.unwrap().unwrap();
            assert_eq!(synced.hash, full.hash, "height {h}");
        }
        // It keeps following the chain.
        let head = net.height(0).await.unwrap();
        net.wait_height(4, head + 20).await;
    }
    wait_until(WAIT, "node 3 follows the head", || async {
        let head = net.height(0).await.unwrap_or(0);
        net.height(3).await.is_some_and(|h| h + 5 >= head)
    })
    .await;
    net.stop_all().await;
}
