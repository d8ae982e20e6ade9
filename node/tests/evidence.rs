//! Equivocation evidence: a record stored by the driver is served by `getEvidence` and
//! verifies; and it travels by gossip: a running node (started with `node::run`, as the binary
//! does) accepts a valid record published on the evidence topic, stores it and serves it; it
//! rejects a forged or malformed record (counted in `cairn_gossip_rejected_total`) and stores
//! nothing for it.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32};
use std::time::Duration;

use cairn_consensus::{Digest, Evidence, Proposal, Vote, VoteKind};
use cairn_genesis::Genesis;
use cairn_ledger::{Address, Store};
use cairn_node::driver::{EVIDENCE_KEY_PREFIX, EpochEvidence, Shared};
use cairn_node::metrics::Metrics;
use cairn_node::network::Topic;
use cairn_node::rpc_backend::NodeBackend;
use cairn_rpc::{RpcBackend, RpcClient};
use ed25519_dalek::SigningKey;

/// Four validators and one funded account.
fn four_validators(chain_id: &str) -> (Vec<SigningKey>, Genesis) {
    common::four_validators(chain_id, &[(Address([9; 32]), 5)])
}

#[tokio::test]
async fn stored_evidence_is_served_and_verifies() {
    let (keys, genesis) = four_validators("cairn-evidence");
    let ns = genesis.hash().0;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path(), genesis.hash()).unwrap());
    genesis.init_store(&store).unwrap();

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
            &format!("{EVIDENCE_KEY_PREFIX}{:020}/{:020}/{:05}/0", 0, 7, 2),
            &ev.encode(),
        )
        .unwrap();

    let (net, _events, _, _) = common::spawn_peer(&genesis, 42).await;
    let validators = genesis.validator_set();
    let shared = Arc::new(Shared {
        store,
        genesis: Arc::new(genesis),
        peer_count: AtomicU32::new(0),
        syncing: AtomicBool::new(false),
        metrics: Metrics::new(),
        moniker: "t".into(),
        validator_key: None,
        verifier: cairn_node::verifier::Verifier::spawn("t".into(), 1),
        mempool_full: AtomicBool::new(false),
        sender_future_max: Default::default(),
        refusals: Default::default(),
        snapshots: None,
        finalized_blocks: Shared::finalized_blocks_channel(),
        committed_height: tokio::sync::watch::Sender::new(0),
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
    // node can bootstrap to it. The node under test: a full node.
    let (net, _events, peer_addr, peer_id) = common::spawn_peer(&genesis, 77).await;
    let node = common::FullNode::start(&genesis, &peer_addr, &peer_id);
    let rpc_port = node.rpc_port;
    let client = RpcClient::new(&node.rpc_url()).unwrap();
    common::wait_until(
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
    let rejected_before = common::metric(rpc_port, "cairn_gossip_rejected_total").await;
    let forged = EpochEvidence {
        epoch: 0,
        evidence: forged,
    };
    net.publish(Topic::Evidence, forged.encode()).await.unwrap();
    net.publish(Topic::Evidence, vec![0xff; 40]).await.unwrap();
    common::wait_until(
        Duration::from_secs(10),
        "both bad records rejected",
        || async {
            common::metric(rpc_port, "cairn_gossip_rejected_total").await >= rejected_before + 2
        },
    )
    .await;
    assert!(client.evidence().await.unwrap().is_empty());

    // Validator 2 signs two different proposals in view 7: a valid record.
    let ev = Evidence::new(vote(&ns, &keys[2], 2, 7, 2), vote(&ns, &keys[2], 2, 7, 3)).unwrap();
    let envelope = EpochEvidence {
        epoch: 0,
        evidence: ev.clone(),
    };
    net.publish(Topic::Evidence, envelope.encode())
        .await
        .unwrap();
    common::wait_until(Duration::from_secs(10), "evidence served", || {
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
    assert_eq!(common::metric(rpc_port, "cairn_evidence_total").await, 1);

    node.stop().await;
}
