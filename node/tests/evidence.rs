//! Equivocation evidence: a record stored by the driver is served by `getEvidence` and
//! verifies; and it travels by gossip: a running node (started with `node::run`, as the binary
//! does) accepts a valid record published on the evidence topic, stores it and serves it; it
//! rejects a forged or malformed record (counted in `cairn_gossip_rejected_total`) and stores
//! nothing for it.

use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32};
use std::time::{Duration, Instant};

use cairn_consensus::{Digest, Evidence, Proposal, Vote, VoteKind};
use cairn_genesis::{ChainParams, Genesis, GenesisAccount, GenesisValidator};
use cairn_ledger::{Address, Store};
use cairn_node::config::NodeConfig;
use cairn_node::driver::{EVIDENCE_KEY_PREFIX, Shared};
use cairn_node::metrics::Metrics;
use cairn_node::network::{self, NetworkConfig, Topic};
use cairn_node::rpc_backend::NodeBackend;
use cairn_rpc::{RpcBackend, RpcClient};
use ed25519_dalek::SigningKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Four validators with keys `[1; 32]`..`[4; 32]` (validator `i` signs with `keys[i]`) and
/// one funded account.
fn four_validators(chain_id: &str) -> (Vec<SigningKey>, Genesis) {
    let keys: Vec<SigningKey> = (1..=4u8)
        .map(|i| SigningKey::from_bytes(&[i; 32]))
        .collect();
    let genesis = Genesis {
        chain_id: chain_id.into(),
        genesis_time_ms: 1,
        validators: keys
            .iter()
            .enumerate()
            .map(|(i, k)| GenesisValidator {
                name: format!("v{i}"),
                consensus_key: Address::from_public_key(&k.verifying_key()),
                peer_id: cairn_node::keys::libp2p_keypair([i as u8 + 10; 32])
                    .public()
                    .to_peer_id()
                    .to_string(),
                voting_power: 1,
            })
            .collect(),
        accounts: vec![GenesisAccount {
            address: Address([9; 32]),
            balance: 5,
        }],
        params: ChainParams::default(),
    };
    genesis.validate().unwrap();
    (keys, genesis)
}

#[tokio::test]
async fn stored_evidence_is_served_and_verifies() {
    let (keys, genesis) = four_validators("cairn-evidence");
    let ns = genesis.hash().0;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path(), genesis.hash()).unwrap());
    store
        .init_genesis(&genesis.genesis_block(), &genesis.initial_accounts())
        .unwrap();

    // Validator 2 signs two different proposals in view 7.
    let p = |payload: u8| Proposal {
        view: 7,
        parent_view: 6,
        parent: Digest([1; 32]),
        payload: Digest([payload; 32]),
    };
    let a = Vote::sign(&ns, VoteKind::Notarize(p(2)), 2, &keys[2]);
    let b = Vote::sign(&ns, VoteKind::Notarize(p(3)), 2, &keys[2]);
    let ev = Evidence::new(a, b).unwrap();
    store
        .meta_put(
            &format!("{EVIDENCE_KEY_PREFIX}{:020}/{:05}", 7, 2),
            &ev.encode(),
        )
        .unwrap();

    let (net, _events) = network::spawn(NetworkConfig {
        keypair: cairn_node::keys::libp2p_keypair([42; 32]),
        listen: "/ip4/127.0.0.1/tcp/0".parse().unwrap(),
        bootstrap: vec![],
        namespace: "evidence-test".into(),
        gossip_bytes_max: 1 << 20,
        sync_request_bytes_max: 256,
        sync_response_bytes_max: 1 << 20,
        sync_request_timeout_ms: 1000,
        event_queue_max: 64,
        command_queue_max: 64,
        redial_interval_ms: 1000,
        connections_max: 8,
    })
    .await
    .unwrap();
    let validators = genesis.validator_set();
    let shared = Arc::new(Shared {
        store,
        genesis: Arc::new(genesis),
        peer_count: AtomicU32::new(0),
        syncing: AtomicBool::new(false),
        metrics: Metrics::new(),
        moniker: "t".into(),
        validator_name: None,
        verifier: cairn_node::verifier::Verifier::spawn("t".into(), 1),
        mempool_full: AtomicBool::new(false),
    });
    let (tx, _rx) = tokio::sync::mpsc::channel(1);
    let backend = NodeBackend {
        shared,
        commands: tx,
        net,
    };
    let served = backend.evidence().await.unwrap();
    assert_eq!(served.len(), 1);
    let e = &served[0];
    assert_eq!(
        (
            e.validator.as_str(),
            e.validator_index,
            e.view,
            e.kind.as_str()
        ),
        ("v2", 2, 7, "notarize/notarize")
    );
    let decoded = Evidence::decode(&hex::decode(&e.evidence).unwrap()).unwrap();
    decoded.verify(&ns, &validators).unwrap();
    assert!(
        decoded.verify(&[0u8; 32], &validators).is_err(),
        "evidence must be bound to the chain namespace"
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn metric(rpc_port: u16, name: &str) -> u64 {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", rpc_port))
        .await
        .unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).await.unwrap();
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("metric {name} missing from /metrics"))
}

fn vote(ns: &[u8; 32], key: &SigningKey, signer: u16, view: u64, payload: u8) -> Vote {
    let p = Proposal {
        view,
        parent_view: view - 1,
        parent: Digest([1; 32]),
        payload: Digest([payload; 32]),
    };
    Vote::sign(ns, VoteKind::Notarize(p), signer, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossiped_evidence_is_verified_stored_and_served() {
    let (keys, genesis) = four_validators("cairn-evidence-gossip");
    let ns = genesis.hash().0;

    // The publishing peer: a bare network endpoint (not a validator), listening first so the
    // node can bootstrap to it.
    let peer_keypair = cairn_node::keys::libp2p_keypair([77; 32]);
    let peer_id = peer_keypair.public().to_peer_id();
    let (net, _events) = network::spawn(NetworkConfig {
        keypair: peer_keypair,
        listen: "/ip4/127.0.0.1/tcp/0".parse().unwrap(),
        bootstrap: vec![],
        namespace: genesis.hash().to_hex()[..16].to_string(),
        gossip_bytes_max: 1 << 20,
        sync_request_bytes_max: 256,
        sync_response_bytes_max: 1 << 20,
        sync_request_timeout_ms: 1000,
        event_queue_max: 64,
        command_queue_max: 64,
        redial_interval_ms: 1000,
        connections_max: 8,
    })
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let peer_addr = loop {
        if let Some(a) = net.listen_addrs().await.into_iter().next() {
            break a;
        }
        assert!(Instant::now() < deadline, "peer never listened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    // The node under test: a full node (its consensus key is not in genesis).
    let home = tempfile::tempdir().unwrap();
    let rpc_port = free_port();
    let mut config = NodeConfig::default();
    config.p2p.listen = "/ip4/127.0.0.1/tcp/0".into();
    config.p2p.bootstrap = vec![format!("{peer_addr}/p2p/{peer_id}")];
    config.rpc.listen = format!("127.0.0.1:{rpc_port}").parse().unwrap();
    cairn_node::node::init_home(home.path(), &config, Some(([50; 32], [51; 32]))).unwrap();
    std::fs::write(home.path().join("genesis.json"), genesis.to_json_pretty()).unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let home_path = home.path().to_path_buf();
    // `node::run` is driven on its own runtime, as the binary's `main` does.
    let node = std::thread::spawn(move || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(cairn_node::node::run(&home_path, config, async {
                let _ = stop_rx.await;
            }))
    });

    let client = RpcClient::new(&format!("http://127.0.0.1:{rpc_port}")).unwrap();
    wait_until(
        Duration::from_secs(20),
        "node subscribed to the evidence topic",
        || {
            let net = net.clone();
            async move { !net.mesh_peers(Topic::Evidence).await.is_empty() }
        },
    )
    .await;
    assert!(client.evidence().await.unwrap().is_empty());

    // A forged record (validator 2's votes signed with validator 3's key) and a malformed one
    // are rejected and store nothing.
    let forged = Evidence::new(vote(&ns, &keys[3], 2, 5, 2), vote(&ns, &keys[3], 2, 5, 3)).unwrap();
    let rejected_before = metric(rpc_port, "cairn_gossip_rejected_total").await;
    net.publish(Topic::Evidence, forged.encode()).await.unwrap();
    net.publish(Topic::Evidence, vec![0xff; 40]).await.unwrap();
    wait_until(
        Duration::from_secs(10),
        "both bad records rejected",
        || async { metric(rpc_port, "cairn_gossip_rejected_total").await >= rejected_before + 2 },
    )
    .await;
    assert!(client.evidence().await.unwrap().is_empty());

    // Validator 2 signs two different proposals in view 7: a valid record.
    let ev = Evidence::new(vote(&ns, &keys[2], 2, 7, 2), vote(&ns, &keys[2], 2, 7, 3)).unwrap();
    net.publish(Topic::Evidence, ev.encode()).await.unwrap();
    wait_until(Duration::from_secs(10), "evidence served", || {
        let client = &client;
        async move { !client.evidence().await.unwrap().is_empty() }
    })
    .await;
    let served = client.evidence().await.unwrap();
    assert_eq!(served.len(), 1);
    assert_eq!(
        (
            served[0].validator.as_str(),
            served[0].view,
            served[0].kind.as_str()
        ),
        ("v2", 7, "notarize/notarize")
    );
    let decoded = Evidence::decode(&hex::decode(&served[0].evidence).unwrap()).unwrap();
    assert_eq!(decoded, ev);
    assert_eq!(metric(rpc_port, "cairn_evidence_total").await, 1);

    stop_tx.send(()).unwrap();
    tokio::task::spawn_blocking(move || node.join().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_store_closed(home.path());
}

/// The node shut down cleanly: its RocksDB lock is released, so the store opens again.
fn assert_store_closed(home: &Path) {
    let genesis = Genesis::load(&home.join("genesis.json")).unwrap();
    let db = NodeConfig::resolve(home, &NodeConfig::default().db_dir);
    cairn_ledger::Store::open(&db, genesis.hash()).expect("store reopens after shutdown");
}

async fn wait_until<F, Fut>(limit: Duration, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
