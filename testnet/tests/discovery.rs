//! End-to-end peer discovery: 4 validators and 12 full nodes, real `cairn-node` processes on
//! 127.0.0.1, in a line (each node's `p2p.bootstrap` names only its predecessor; the first
//! names nobody). Through Kademlia over admitted peers they reach full peer sets (every
//! node at least `min(peers_target, n - 1)` connected peers, so its gossip mesh of 6 can
//! fill), the validators find each other, and the chain finalizes. Every wait is bounded.
//!
//! Needs the `cairn-node` binary built (`cargo build --bins`).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use cairn_node::config::NodeConfig;
use cairn_rpc::RpcClient;
use cairn_testnet::{LocalTestnet, find_node_binary, free_port_ranges, generate, test_options};

const VALIDATORS: usize = 4;
const FULL_NODES: usize = 12;
const PEERS_TARGET: u32 = 8;
const WAIT_MAX: Duration = Duration::from_secs(180);

async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

async fn height(c: &RpcClient) -> u64 {
    c.status().await.map(|s| s.latest_height).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_of_sixteen_nodes_reaches_full_meshes_and_finalizes() {
    let n = VALIDATORS + FULL_NODES;
    let dir = tempfile::tempdir().unwrap();
    let mut opts = test_options(dir.path().join("net"), "cairn-discovery", 2);
    let (p2p_port, rpc_port) = free_port_ranges(n);
    opts.p2p_port = p2p_port;
    opts.rpc_port = rpc_port;
    opts.full_nodes = FULL_NODES;
    let manifest = generate(&opts).unwrap();
    assert_eq!(manifest.nodes.len(), n);

    // A line: node i names only node i - 1.
    for (i, node) in manifest.nodes.iter().enumerate() {
        let path = node.home.join("config.toml");
        let mut config = NodeConfig::load(&path).unwrap();
        config.p2p.bootstrap = if i == 0 {
            vec![]
        } else {
            vec![manifest.nodes[i - 1].p2p_addr.clone()]
        };
        config.p2p.discovery = true;
        config.p2p.peers_target = PEERS_TARGET;
        config.p2p.discovery_interval_ms = 500;
        config.validate().unwrap();
        std::fs::write(&path, config.to_toml()).unwrap();
    }
    let clients: Vec<RpcClient> = manifest
        .nodes
        .iter()
        .map(|node| RpcClient::new(&node.rpc_url).unwrap())
        .collect();
    let started = Instant::now();
    let _net = LocalTestnet::start(manifest.clone(), find_node_binary()).unwrap();

    let want = (PEERS_TARGET as usize).min(n - 1);
    for (i, c) in clients.iter().enumerate() {
        wait_until(
            &format!("node {i} to have {want} peers"),
            WAIT_MAX,
            || async { c.peers().await.map(|p| p.len()).unwrap_or(0) >= want },
        )
        .await;
    }
    let meshes_at = started.elapsed();

    // Validators find each other although each named only its predecessor.
    let validator_ids: Vec<String> = manifest.validators().map(|v| v.peer_id.clone()).collect();
    for (i, c) in clients.iter().enumerate().take(VALIDATORS) {
        let others: HashSet<String> = validator_ids
            .iter()
            .filter(|id| **id != manifest.nodes[i].peer_id)
            .cloned()
            .collect();
        wait_until(
            &format!("validator {i} to be connected to the other validators"),
            WAIT_MAX,
            || async {
                let peers: HashSet<String> = c
                    .peers()
                    .await
                    .unwrap_or_default()
                    .into_iter()
                    .map(|p| p.peer_id)
                    .collect();
                others.is_subset(&peers)
            },
        )
        .await;
    }

    // How each peer was found: only the predecessor is configured; the rest came from the
    // DHT, from identify, or dialed in.
    let mut discovered = 0;
    for (i, c) in clients.iter().enumerate() {
        let peers = c.peers().await.unwrap();
        for p in &peers {
            let found = p.found.as_deref().expect("found is reported");
            assert!(
                matches!(found, "configured" | "kademlia" | "identify" | "inbound"),
                "{found}"
            );
            let predecessor = i > 0 && p.peer_id == manifest.nodes[i - 1].peer_id;
            if found == "configured" {
                assert!(predecessor, "node {i}: {p:?} is not in its config");
            }
            if matches!(found, "kademlia" | "identify") {
                discovered += 1;
            }
        }
    }
    assert!(
        discovered >= n,
        "only {discovered} connections were dialed through discovery"
    );

    // Everyone finalizes: every node reaches the same new heights.
    let base = height(&clients[0]).await;
    for (i, c) in clients.iter().enumerate() {
        wait_until(
            &format!("node {i} to finalize height {}", base + 3),
            WAIT_MAX,
            || async { height(c).await >= base + 3 },
        )
        .await;
    }
    let h = base + 3;
    let reference = clients[0]
        .block_by_height(h)
        .await
        .unwrap()
        .expect("block")
        .hash;
    for (i, c) in clients.iter().enumerate() {
        let hash = c.block_by_height(h).await.unwrap().expect("block").hash;
        assert_eq!(hash, reference, "node {i} disagrees at height {h}");
    }
    eprintln!(
        "line of {n}: every node had {want} peers after {:.1} s; height {h} reached by all after {:.1} s",
        meshes_at.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}
