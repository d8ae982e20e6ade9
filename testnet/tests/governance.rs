//! End to end, real `cairn-node` processes on 127.0.0.1 (issue 14): 4 validators; a 5th, 6th
//! and 7th added by governance while a transfer load runs; one of the original 4 removed by
//! governance and its process killed. The chain never stops finalizing, every node agrees
//! on every block and on the validator set at every height, every acknowledged transfer is
//! final, a fresh node synced from genesis afterwards verifies each epoch change, and the
//! invariant checker (`cairn-testnet check`, epoch-aware) finds no violation.
//!
//! Needs the `cairn-node` binary built (`cargo build --bins`); the test suite script does
//! that first.

use std::time::{Duration, Instant};

use cairn_ledger::governance::GovAction;
use cairn_rpc::{RpcClient, ValidatorsAt};
use cairn_testnet::check::{self, CheckOptions};
use cairn_testnet::load::{self, LoadConfig};
use cairn_testnet::{LocalTestnet, find_node_binary, generate, govern, test_options};

/// Bound of every wait for the chain.
const WAIT_MAX: Duration = Duration::from_secs(120);

async fn height(c: &RpcClient) -> u64 {
    c.status().await.map(|s| s.latest_height).unwrap_or(0)
}

async fn wait_height(c: &RpcClient, target: u64, what: &str) {
    let start = Instant::now();
    loop {
        let h = height(c).await;
        if h >= target {
            return;
        }
        assert!(
            start.elapsed() < WAIT_MAX,
            "{what}: height {h}, waited for {target}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validators_join_and_leave_under_load_and_a_fresh_node_verifies_every_epoch() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("net");
    // 3 governance members (accounts 0..3) and 3 load senders (accounts 3..6).
    let mut opts = test_options(dir.clone(), "cairn-gov-e2e", 6);
    // Nodes added later are exempt from admission only at nodes started after them.
    opts.params.admission_difficulty_bits = 0;
    let m = generate(&opts).unwrap();
    let mut net = LocalTestnet::start(m.clone(), find_node_binary()).unwrap();
    // Node 0 is removed later: governance goes through node 1.
    let rpc = RpcClient::new(&m.nodes[1].rpc_url).unwrap();
    wait_height(&rpc, 2, "testnet start").await;

    // A bounded transfer load from the non-member accounts while the set changes.
    let mut load_manifest = m.clone();
    load_manifest.accounts = m.accounts[3..].to_vec();
    // Runs to the end (12 s of submissions, then every acknowledged transfer waited for).
    let (_stop_load, stop_rx) = tokio::sync::watch::channel(false);
    let load = tokio::spawn(async move {
        let cfg = LoadConfig {
            transfers: 300,
            rate: 25.0,
            duration_max: Duration::from_secs(240),
            drain_timeout: Duration::from_secs(90),
            progress_every: Duration::ZERO,
            ..LoadConfig::default()
        };
        load::run(&load_manifest, &cfg, stop_rx).await
    });

    // Add three validators, one epoch each.
    let mut sizes = Vec::new();
    for k in 0..3 {
        let name = format!("validator-{}", 4 + k);
        let (manifest, index) = govern::add_node(&dir, &name).unwrap();
        let entry = manifest.nodes[index].clone();
        assert_eq!(net.push_node(entry.clone()), index);
        net.start_node(index).unwrap();
        let own = RpcClient::new(&entry.rpc_url).unwrap();
        govern::wait_caught_up(&own, &rpc, 2, WAIT_MAX)
            .await
            .unwrap();
        let action = GovAction::AddValidator(govern::validator_info(&entry, 1));
        govern::propose_and_approve(&manifest, &rpc, action)
            .await
            .unwrap();
        let key = entry.validator_address;
        let set = govern::wait_for_set(&rpc, WAIT_MAX, |s| s.iter().any(|v| v.address == key))
            .await
            .unwrap();
        sizes.push(set.len());
    }
    assert_eq!(sizes, [5, 6, 7]);

    // Remove validator-0 and kill its process: 6 remain, the chain goes on.
    let manifest = cairn_testnet::Manifest::load(&dir).unwrap();
    let removed = manifest.nodes[0].validator_address;
    govern::propose_and_approve(
        &manifest,
        &rpc,
        GovAction::RemoveValidator {
            consensus_key: removed,
        },
    )
    .await
    .unwrap();
    let set = govern::wait_for_set(&rpc, WAIT_MAX, |s| s.iter().all(|v| v.address != removed))
        .await
        .unwrap();
    assert_eq!(set.len(), 6);
    net.kill_node(0).unwrap();
    let h = height(&rpc).await;
    wait_height(&rpc, h + 5, "after removing validator-0").await;

    let report = load.await.unwrap().unwrap();
    assert!(
        report.acked >= 250,
        "the load was refused: {}",
        report.summary()
    );
    assert_eq!(
        report.acked_unfinalized_count,
        0,
        "acknowledged transfers lost: {}",
        report.summary()
    );

    // Every epoch ended with a proof; the sets are the ones governance decided.
    for (epoch, size) in [(0, 4), (1, 5), (2, 6), (3, 7), (4, 6)] {
        let served = rpc
            .validators_at(ValidatorsAt::Epoch(epoch))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no set for epoch {epoch}"));
        assert_eq!(served.len(), size, "epoch {epoch}");
        if epoch < 4 {
            let proof = rpc.epoch_proof(epoch).await.unwrap();
            assert!(proof.is_some(), "no proof that epoch {epoch} ended");
        }
    }

    // A fresh node syncs from genesis across the four epoch changes.
    let (manifest, fresh) = govern::add_node(&dir, "fresh").unwrap();
    assert_eq!(net.push_node(manifest.nodes[fresh].clone()), fresh);
    net.start_node(fresh).unwrap();
    let fresh_rpc = RpcClient::new(&manifest.nodes[fresh].rpc_url).unwrap();
    let target = height(&rpc).await;
    wait_height(&fresh_rpc, target, "fresh node sync").await;
    assert_eq!(fresh_rpc.validators().await.unwrap(), set);

    // All running nodes agree on every block and on the set at every height.
    let clients: Vec<RpcClient> = manifest.nodes[1..]
        .iter()
        .map(|n| RpcClient::new(&n.rpc_url).unwrap())
        .collect();
    let mut top = u64::MAX;
    for c in &clients {
        top = top.min(height(c).await);
    }
    for h in 1..=top {
        let first = clients[0].block_by_height(h).await.unwrap().unwrap().hash;
        let set = clients[0]
            .validators_at(ValidatorsAt::Height(h))
            .await
            .unwrap();
        for c in &clients[1..] {
            assert_eq!(
                c.block_by_height(h).await.unwrap().unwrap().hash,
                first,
                "height {h}"
            );
            assert_eq!(
                c.validators_at(ValidatorsAt::Height(h)).await.unwrap(),
                set,
                "set at height {h}"
            );
        }
    }

    // The invariant checker, epoch by epoch, on every running node (validator-0 was removed
    // and killed). First let the last epoch run long enough (3 leader rotations of its 6
    // validators, and some) that the validators added later must have proposed and signed.
    let boundary = rpc.epoch_proof(3).await.unwrap().unwrap().boundary_height;
    wait_height(&rpc, boundary + 3 * 6 + 6, "the last epoch running").await;
    let mut checked = manifest.clone();
    checked.nodes.remove(0);
    let rep = check::check(
        &dir,
        &checked,
        &CheckOptions {
            wait: Duration::from_secs(60),
            ..CheckOptions::default()
        },
    )
    .await
    .unwrap();
    eprintln!("{}", rep.summary());
    assert!(rep.ok, "{}", rep.summary());
    assert_eq!(rep.epochs, 5, "{}", rep.summary());
    assert!(rep.epoch_proofs_checked >= 4, "{}", rep.summary());
    assert!(
        rep.epoch_sets_checked >= 5 * clients.len() as u64,
        "{}",
        rep.summary()
    );
    // Every height has its own certificate, was finalized with a descendant, or by its
    // epoch's proof that it ended.
    assert_eq!(
        rep.certificates_checked
            + rep.heights_finalized_by_descendant
            + rep.heights_finalized_by_epoch_proof
            + 1,
        rep.heights_checked,
        "{}",
        rep.summary()
    );
    // Every validator, the removed one and the added ones too, proposed and signed.
    for k in 0..7 {
        let name = format!("validator-{k}");
        assert!(rep.proposers[&name] > 0, "{name}: {}", rep.summary());
        assert!(rep.signers[&name] > 0, "{name}: {}", rep.summary());
    }
    net.stop_all();
}
