//! Equivocation evidence stored by the driver is served by `getEvidence` and verifies.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32};

use cairn_consensus::{Digest, Evidence, Proposal, Vote, VoteKind};
use cairn_genesis::{ChainParams, Genesis, GenesisAccount, GenesisValidator};
use cairn_ledger::{Address, Store};
use cairn_node::driver::{EVIDENCE_KEY_PREFIX, Shared};
use cairn_node::metrics::Metrics;
use cairn_node::network::{self, NetworkConfig};
use cairn_node::rpc_backend::NodeBackend;
use cairn_rpc::RpcBackend;
use ed25519_dalek::SigningKey;

#[tokio::test]
async fn stored_evidence_is_served_and_verifies() {
    let keys: Vec<SigningKey> = (1..=4u8)
        .map(|i| SigningKey::from_bytes(&[i; 32]))
        .collect();
    let genesis = Genesis {
        chain_id: "cairn-evidence".into(),
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
