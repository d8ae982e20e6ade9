//! Block body pruning (`[storage] retain_blocks`) with real nodes (`node::run`) on loopback:
//! a validator keeps every block; a full node keeps the last `RETAIN_BLOCKS_MIN` bodies.
//!
//! 1. Under a load of one transfer per block the chain passes 1,024 + 576 blocks; the pruned
//!    node follows and prunes behind it, serves the blocks it keeps (JSON-RPC and block
//!    sync), answers `pruned` for the older ones (JSON-RPC -32004 `pruned`, sync
//!    `Pruned`, not counted against the asking peer) and runs on.
//! 2. A fresh full node bootstrapped to both the pruned node and the validator joins: it
//!    takes the old ranges from the validator only (the pruned node answers no range
//!    request `Pruned`) and agrees on every block hash.
//! 3. A fresh full node that knows only the pruned node cannot catch up (state sync off):
//!    it stays at genesis and says so (`cairn_sync_blocked_pruned` is 1).
//!
//! A second test (`a_fresh_node_joins_pruned_only_validators_by_state_sync`) has only
//! pruned validators: a fresh node joins them by state sync.
//!
//! Every wait is bounded.

mod common;

use std::time::Duration;

use cairn_ledger::{Action, Address, SignedTransaction, TransactionBody};
use cairn_node::config::RETAIN_BLOCKS_MIN;
use cairn_node::network::{self, NetworkConfig};
use cairn_node::sync::{SyncRequest, SyncResponse};
use common::cluster::{self, Homes};
use common::{metric, wait_until};
use ed25519_dalek::SigningKey;

/// Bound of every wait.
const WAIT: Duration = Duration::from_secs(300);
const CHAIN_ID: &str = "cairn-pruning";
/// Funded senders, and transfers each: one transfer per block.
const SENDERS: u8 = 4;
const TXS_PER_SENDER: u64 = 400;

fn sender(i: u8) -> SigningKey {
    SigningKey::from_bytes(&[100 + i; 32])
}

fn transfer(from: u8, nonce: u64) -> SignedTransaction {
    let key = sender(from);
    TransactionBody {
        chain_id: CHAIN_ID.into(),
        sender: Address::from_public_key(&key.verifying_key()),
        fee: 1,
        nonce,
        expiry_height: 1_000_000,
        action: Action::Transfer {
            recipient: Address([7; 32]),
            amount: 1,
        },
    }
    .sign(&key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pruned_node_serves_what_it_keeps_and_a_new_node_joins_from_the_full_one() {
    // Node 0: the validator (every block). Node 1: pruned, bootstraps to node 0. Node 2:
    // joins later from nodes 1 and 0. Node 3: joins later from node 1 only. Discovery off:
    // each node knows exactly the peers it names.
    let homes = Homes::generate(4, 1, |config| {
        config.p2p.discovery = false;
    });
    let mut configs = homes.configs.clone();
    configs[1].storage.retain_blocks = RETAIN_BLOCKS_MIN;
    configs[2].p2p.bootstrap = vec![homes.addrs[1].to_string(), homes.addrs[0].to_string()];
    configs[3].p2p.bootstrap = vec![homes.addrs[1].to_string()];
    let funded: Vec<(Address, u64)> = (0..SENDERS)
        .map(|i| {
            (
                Address::from_public_key(&sender(i).verifying_key()),
                1_000_000,
            )
        })
        .collect();
    let genesis = homes.genesis(
        CHAIN_ID,
        1,
        &funded,
        cairn_genesis::ChainParams {
            block_txs_max: 1,
            mempool_sender_future_max: TXS_PER_SENDER,
            ..cluster::fast_params()
        },
    );
    let mut net = homes.with_genesis(genesis, WAIT);
    net.configs = configs;
    net.start(0);
    net.start(1);

    // 1. One transfer per block: the chain grows past 1,024 + 576 blocks.
    net.wait_height(0, 1).await;
    let txs: Vec<SignedTransaction> = (0..TXS_PER_SENDER)
        .flat_map(|n| (0..SENDERS).map(move |s| transfer(s, n)))
        .collect();
    let submit =
        cairn_rpc::RpcClient::with_timeout(&format!("http://{}", net.rpc_addrs[0]), WAIT).unwrap();
    for chunk in txs.chunks(200) {
        for r in submit.send_transactions(chunk).await.unwrap() {
            assert!(r.accepted, "{r:?}");
        }
    }
    let target = txs.len() as u64;
    net.wait_height(0, target).await;
    net.wait_height(1, target).await;
    let keep_from = target + 1 - RETAIN_BLOCKS_MIN;
    wait_until(
        WAIT,
        "node 1 prunes up to the last 1,024 blocks",
        || async {
            net.rpc[1]
                .status()
                .await
                .is_ok_and(|s| s.lowest_retained_height >= keep_from)
        },
    )
    .await;
    let status = net.rpc[1].status().await.unwrap();
    let lowest = status.lowest_retained_height;
    assert!(lowest >= keep_from && lowest <= status.latest_height + 1 - RETAIN_BLOCKS_MIN);
    assert_eq!(net.rpc[0].status().await.unwrap().lowest_retained_height, 0);
    assert!(metric(net.rpc_port(1), "cairn_blocks_pruned_total").await >= keep_from - 1);
    assert_eq!(
        metric(net.rpc_port(1), "cairn_lowest_retained_height").await,
        lowest
    );

    // It serves what it keeps, the genesis block too, ...
    for h in [0, lowest, status.latest_height] {
        let kept = net.rpc[1].block_by_height(h).await.unwrap().expect("kept");
        let full = net.rpc[0].block_by_height(h).await.unwrap().expect("full");
        assert_eq!(kept.hash, full.hash, "height {h}");
    }
    // The newest block with a transfer (the chain goes on with empty blocks once the load is
    // final, every 500 ms, so on a slow machine the head itself may be empty) is kept whole.
    let mut with_transfer = None;
    for h in (lowest..=status.latest_height)
        .rev()
        .take(RETAIN_BLOCKS_MIN as usize)
    {
        let full = net.rpc[0].block_by_height(h).await.unwrap().expect("full");
        if !full.transactions.is_empty() {
            with_transfer = Some(full);
            break;
        }
    }
    let full = with_transfer.expect("a kept block carries a transfer");
    let kept = net.rpc[1]
        .block_by_height(full.header.height)
        .await
        .unwrap()
        .expect("kept");
    assert_eq!(kept.transactions.len(), 1, "the kept body has its transfer");
    assert_eq!(kept.transactions, full.transactions);
    // ... and answers `pruned` for older bodies, by height or by hash.
    let old = net.rpc[0].block_by_height(1).await.unwrap().unwrap();
    for result in [
        net.rpc[1].block_by_height(1).await,
        net.rpc[1].block_by_hash(&old.hash).await,
    ] {
        match result {
            Err(cairn_rpc::ClientError::Rpc { code, data, .. }) => {
                assert_eq!(code, -32004);
                let data = data.unwrap();
                assert_eq!(data["reason"], "pruned");
                assert_eq!(data["height"], 1);
                assert!(data["lowestRetainedHeight"].as_u64().unwrap() >= lowest);
            }
            other => panic!("expected a pruned error, got {other:?}"),
        }
    }
    // Block sync: the status carries the lowest retained height; a range from below it is
    // answered `Pruned`, one from it is served, and the asking peer is not penalized.
    let (peer, _events) = network::spawn(NetworkConfig {
        keypair: cairn_node::keys::libp2p_keypair([77; 32]),
        listen: "/ip4/127.0.0.1/tcp/0".parse().unwrap(),
        bootstrap: vec![net.addrs[1].clone()],
        namespace: net.genesis.hash().to_hex()[..16].to_string(),
        gossip_bytes_max: 1 << 20,
        sync_request_bytes_max: cairn_node::sync::SYNC_REQUEST_BYTES_MAX,
        sync_response_bytes_max: 1 << 22,
        sync_request_timeout_ms: 5000,
        event_queue_max: 64,
        command_queue_max: 64,
        redial_interval_ms: 200,
        connections_max: 8,
        discovery: network::DiscoveryConfig::disabled(),
        nat: network::NatConfig::disabled(),
        request_pacing: Default::default(),
    })
    .await
    .unwrap();
    let ask = |request: SyncRequest| {
        let peer = peer.clone();
        let node = net.peer_ids[1];
        async move {
            let mut last = None;
            for _ in 0..50 {
                match peer.request(node, request.encode(), request.cost()).await {
                    Ok(bytes) => return SyncResponse::decode(&bytes, 1 << 22).unwrap(),
                    Err(e) => last = Some(e),
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("node 1 never answered: {last:?}");
        }
    };
    match ask(SyncRequest::Status).await {
        SyncResponse::Status {
            lowest_retained_height,
            ..
        } => assert!(lowest_retained_height >= lowest),
        other => panic!("{other:?}"),
    }
    let faults = metric(net.rpc_port(1), "cairn_peer_faults_total").await;
    let pruned_answers = metric(net.rpc_port(1), "cairn_sync_requests_pruned_total").await;
    match ask(SyncRequest::Blocks {
        from_height: 1,
        count: 8,
    })
    .await
    {
        SyncResponse::Pruned {
            lowest_retained_height,
        } => assert!(lowest_retained_height >= lowest),
        other => panic!("{other:?}"),
    }
    let from = net.rpc[1].status().await.unwrap().lowest_retained_height + 8;
    match ask(SyncRequest::Blocks {
        from_height: from,
        count: 8,
    })
    .await
    {
        SyncResponse::Blocks(blocks) => {
            assert_eq!(blocks.len(), 8);
            assert_eq!(blocks[0].block.header.height, from);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        metric(net.rpc_port(1), "cairn_sync_requests_pruned_total").await,
        pruned_answers + 1
    );
    assert_eq!(
        metric(net.rpc_port(1), "cairn_peer_faults_total").await,
        faults,
        "asking for pruned blocks is nobody's fault"
    );
    peer.shutdown().await;
    // It runs on: the chain grows (empty blocks now) and it prunes behind it.
    let head = net.height(0).await.unwrap();
    net.wait_height(1, head + 4).await;
    wait_until(WAIT, "node 1 prunes further", || async {
        net.rpc[1]
            .status()
            .await
            .is_ok_and(|s| s.lowest_retained_height > lowest)
    })
    .await;

    // 2. A fresh full node that knows the pruned node first and the validator second takes
    //    the old ranges from the validator only.
    let pruned_answers = metric(net.rpc_port(1), "cairn_sync_requests_pruned_total").await;
    net.start(2);
    let head = net.height(0).await.unwrap();
    net.wait_height(2, head).await;
    assert_eq!(
        metric(net.rpc_port(1), "cairn_sync_requests_pruned_total").await,
        pruned_answers,
        "the joining node asked the pruned node for no range it had pruned"
    );
    assert!(metric(net.rpc_port(2), "cairn_blocks_synced_total").await >= lowest);
    for h in [1, lowest / 2, lowest, head] {
        let joined = net.rpc[2].block_by_height(h).await.unwrap().unwrap();
        let full = net.rpc[0].block_by_height(h).await.unwrap().unwrap();
        assert_eq!(joined.hash, full.hash, "height {h}");
    }
    assert_eq!(net.rpc[2].status().await.unwrap().lowest_retained_height, 0);

    // 3. A fresh full node that knows only the pruned node cannot replay from genesis: it
    //    says so and stays at genesis rather than hanging silently.
    net.start(3);
    wait_until(
        WAIT,
        "node 3 reports that block sync is blocked",
        || async {
            let port = net.rpc_port(3);
            net.rpc[3].status().await.is_ok()
                && metric(port, "cairn_sync_blocked_pruned").await == 1
        },
    )
    .await;
    let s3 = net.rpc[3].status().await.unwrap();
    assert_eq!(s3.latest_height, 0);
    assert!(s3.syncing);
    assert_eq!(
        metric(net.rpc_port(1), "cairn_sync_requests_pruned_total").await,
        pruned_answers,
        "it never asked for a range the pruned node does not hold"
    );

    net.stop_all().await;
}

/// Issue 16: validators that keep only the last `RETAIN_BLOCKS_MIN` bodies run until their
/// lowest retained height is above 0; a fresh full node with state sync on joins from them
/// (it cannot replay: block 1 is gone everywhere), reaches the tip and agrees on the state
/// root; a fresh node with state sync off says block sync is blocked. The chain runs at its
/// fastest honest pace on loopback: two validators, no transactions, a 100 ms leader
/// timeout (an empty leader waits half of it for transactions).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_node_joins_pruned_only_validators_by_state_sync() {
    // Nodes 0 and 1: validators, pruned, snapshotting. Node 2: fresh, state sync on.
    // Node 3: fresh, state sync off. Every node names both validators.
    let homes = Homes::generate(4, 2, |config| {
        config.p2p.discovery = false;
        config.sync.snapshot_interval_blocks = 100;
    });
    let mut configs = homes.configs.clone();
    for v in [0, 1] {
        configs[v].storage.retain_blocks = RETAIN_BLOCKS_MIN;
    }
    configs[2].sync.state_sync = true;
    configs[2].sync.state_sync_min_gap_blocks = 100;
    configs[2].sync.state_sync_peers_min = 2;
    let genesis = homes.genesis(
        "cairn-pruned-join",
        2,
        &[(
            Address::from_public_key(&sender(0).verifying_key()),
            1_000_000,
        )],
        cairn_genesis::ChainParams {
            leader_timeout_ms: 100,
            notarization_timeout_ms: 400,
            nullify_retry_ms: 100,
            ..cluster::fast_params()
        },
    );
    let mut net = homes.with_genesis(genesis, Duration::from_secs(600));
    net.configs = configs;
    net.start(0);
    net.start(1);
    let started = std::time::Instant::now();
    wait_until(
        Duration::from_secs(600),
        "both validators prune past block 1",
        || async {
            let mut all = true;
            for v in [0, 1] {
                all &= net.rpc[v]
                    .status()
                    .await
                    .is_ok_and(|s| s.lowest_retained_height > 1);
            }
            all
        },
    )
    .await;
    let head = net.height(0).await.unwrap();
    eprintln!(
        "validators pruned past block 1 at height {head} after {:.0} s",
        started.elapsed().as_secs_f64()
    );

    // The fresh node with state sync joins, reaches the tip and agrees on the state root.
    net.start(2);
    let head = net.height(0).await.unwrap();
    net.wait_height(2, head).await;
    let snapshot_height = metric(net.rpc_port(2), "cairn_state_sync_height").await;
    assert!(
        snapshot_height > 0,
        "node 2 reached the tip without state sync (snapshot height 0)"
    );
    let lowest = net.rpc[0].status().await.unwrap().lowest_retained_height;
    eprintln!(
        "node 2 state-synced at height {snapshot_height}; validator 0 keeps bodies from {lowest}"
    );
    assert!(lowest > 1, "the validators pruned block 1");
    let mut agreed = false;
    for _ in 0..100 {
        let (a, b) = (net.rpc[0].status().await, net.rpc[2].status().await);
        if let (Ok(a), Ok(b)) = (a, b)
            && a.latest_height == b.latest_height
        {
            assert_eq!(a.latest_hash, b.latest_hash, "height {}", a.latest_height);
            assert_eq!(
                a.latest_state_root, b.latest_state_root,
                "height {}",
                a.latest_height
            );
            agreed = true;
            break;
        }
        // Compare a fixed height instead while the heads move.
        let h = snapshot_height + 1;
        let joined = net.rpc[2].block_by_height(h).await.unwrap().unwrap();
        let full = net.rpc[0].block_by_height(h).await.unwrap().unwrap();
        assert_eq!(joined.hash, full.hash, "height {h}");
        assert_eq!(joined.header.state_root, full.header.state_root);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        agreed,
        "node 2 and validator 0 never reported the same head"
    );

    // The fresh node without state sync cannot replay from genesis and says so.
    net.start(3);
    wait_until(
        Duration::from_secs(120),
        "node 3 reports that block sync is blocked",
        || async {
            let port = net.rpc_port(3);
            net.rpc[3].status().await.is_ok()
                && metric(port, "cairn_sync_blocked_pruned").await == 1
        },
    )
    .await;
    assert_eq!(net.rpc[3].status().await.unwrap().latest_height, 0);
    net.stop_all().await;
}
