//! Hostile peers against a real node (`node::run`, as the binary does) on loopback, played by
//! bare network peers that hold the genesis validators' keys where a test needs certified
//! data. Each test is one attack from issue 13's list and checks that the node refuses the
//! forged part, stores nothing unverified, penalizes the sender, and still makes progress
//! from honest peers:
//!
//! - a sync server that serves a certified chain with one signature byte flipped;
//! - a sync server that serves a chain whose intermediate certificate is forged;
//! - a relay that serves a proposal's body with one signature byte flipped to a validator
//!   that must fetch it: the validator still notarizes the proposal (no nullification);
//! - a peer that gossips compact blocks naming the view's leader without its signature: none
//!   is kept or forwarded, the forger is banned, and a real proposal is still taken.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use cairn_consensus::{Certificate, Digest, EpochMessage, Message, VoteKind};
use cairn_genesis::{ChainParams, Genesis};
use cairn_ledger::{Address, Block, BlockLimits, Hash, SignedTransaction, Store, TransactionBody};
use cairn_node::chain::Chain;
use cairn_node::network::{NetworkEvent, NetworkHandle, Topic};
use cairn_node::sync::{SyncRequest, SyncResponse, SyncedBlock};
use cairn_node::txgossip::encode_batch;
use cairn_rpc::RpcClient;
use ed25519_dalek::SigningKey;
use tokio::sync::mpsc;

const CHAIN_ID: &str = "cairn-byzantine";

fn sender() -> SigningKey {
    SigningKey::from_bytes(&[42; 32])
}

fn sender_address() -> Address {
    Address::from_public_key(&sender().verifying_key())
}

/// Four validators (none running; the test signs with their keys) and a funded sender.
fn genesis() -> (Vec<SigningKey>, Genesis) {
    common::four_validators(CHAIN_ID, &[(sender_address(), 1_000_000)])
}

/// A transfer of the funded sender with nonce `nonce`.
fn transfer(nonce: u64) -> SignedTransaction {
    let key = sender();
    TransactionBody {
        chain_id: CHAIN_ID.into(),
        sender: sender_address(),
        fee: 1,
        nonce,
        expiry_height: 1_000,
        action: cairn_ledger::Action::Transfer {
            recipient: Address([9; 32]),
            amount: 10,
        },
    }
    .sign(&key)
}

/// A chain on `genesis` built as the node builds it.
fn chain_on(genesis: &Genesis) -> (tempfile::TempDir, Chain) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path(), genesis.hash()).unwrap());
    genesis.init_store(&store).unwrap();
    let chain = Chain::open(
        store,
        genesis.chain_id.clone(),
        BlockLimits {
            block_txs_max: 100,
            block_bytes_max: 1 << 20,
        },
    )
    .unwrap();
    (dir, chain)
}

/// `n` valid blocks (block `h` in view `h`, by its leader, with one transfer each), each with
/// a finalization certificate by a quorum.
fn certified_chain(keys: &[SigningKey], genesis: &Genesis, n: u64) -> Vec<SyncedBlock> {
    let (_dir, mut chain) = chain_on(genesis);
    let mut parent = chain.head_hash();
    let mut out = Vec::new();
    for h in 1..=n {
        let leader = genesis.validators[genesis.validator_set().leader(h) as usize].consensus_key;
        let tx = transfer(h - 1);
        let block = chain
            .build(&parent, h, leader, 1 + h, |b| {
                b.apply(&tx).unwrap();
                vec![tx.clone()]
            })
            .unwrap();
        let cert = common::finalization(keys, genesis, &block, h, h - 1);
        parent = block.hash();
        out.push(SyncedBlock {
            block,
            certificate: Some(borsh::to_vec(&cert).unwrap()),
            epoch_proof: None,
        });
    }
    out
}

/// `block` with one bit of its first transaction's signature flipped: the same header (and
/// so the same hash and certificate), a body that is not the header's.
fn mangled(block: &Block) -> Block {
    let mut b = block.clone();
    b.transactions[0].signature[40] ^= 0x01;
    assert_eq!(b.hash(), block.hash());
    assert!(b.check_body().is_err());
    b
}

/// Serves `chain` to sync requests: head polls report its tip while `honest` (or, when
/// `None`, always); ranges and blocks by hash come from `serve(chain)`. Returns how many
/// range and by-hash requests were answered.
fn serve_chain(
    net: NetworkHandle,
    events: mpsc::Receiver<NetworkEvent>,
    chain: Vec<SyncedBlock>,
    active: Option<Arc<AtomicBool>>,
) -> Arc<AtomicU64> {
    let answered = Arc::new(AtomicU64::new(0));
    let counter = answered.clone();
    let tip = chain.last().unwrap().block.clone();
    common::serve_requests(net, events, move |request| {
        let on = active.as_ref().is_none_or(|a| a.load(Ordering::SeqCst));
        match request {
            SyncRequest::Status if on => SyncResponse::Status {
                height: tip.header.height,
                hash: tip.hash(),
                lowest_retained_height: 0,
            },
            SyncRequest::Status => SyncResponse::Status {
                height: 0,
                hash: Hash::ZERO,
                lowest_retained_height: 0,
            },
            SyncRequest::Blocks { from_height, count } if on => {
                counter.fetch_add(1, Ordering::SeqCst);
                SyncResponse::Blocks(
                    chain
                        .iter()
                        .filter(|b| b.block.header.height >= from_height)
                        .take(count as usize)
                        .cloned()
                        .collect(),
                )
            }
            SyncRequest::BlockByHash(h) if on => {
                counter.fetch_add(1, Ordering::SeqCst);
                SyncResponse::Block(
                    chain
                        .iter()
                        .find(|b| b.block.hash() == h)
                        .map(|b| b.block.clone()),
                )
            }
            other => SyncResponse::Error(format!("not served here: {other:?}")),
        }
    });
    answered
}

/// A full node between two sync servers: a liar serving `forged` from the start, and an
/// honest one serving `chain` once `honest_on` is set (until then it reports height 0).
struct SyncDuel {
    node: common::FullNode,
    client: RpcClient,
    liar: NetworkHandle,
    honest: NetworkHandle,
    honest_on: Arc<AtomicBool>,
    liar_served: Arc<AtomicU64>,
}

/// Starts a [`SyncDuel`] and waits until the node has caught the liar (a peer fault).
async fn sync_duel(
    genesis: &Genesis,
    forged: Vec<SyncedBlock>,
    chain: Vec<SyncedBlock>,
) -> SyncDuel {
    let (liar, liar_events, liar_addr, liar_id) = common::spawn_peer(genesis, 77).await;
    let liar_served = serve_chain(liar.clone(), liar_events, forged, None);
    let honest_on = Arc::new(AtomicBool::new(false));
    let (honest, honest_events, honest_addr, honest_id) = common::spawn_peer(genesis, 78).await;
    serve_chain(
        honest.clone(),
        honest_events,
        chain,
        Some(honest_on.clone()),
    );
    let node = common::FullNode::start_with(genesis, &liar_addr, &liar_id, |c| {
        c.sync.interval_ms = 200;
        c.p2p
            .bootstrap
            .push(format!("{honest_addr}/p2p/{honest_id}"));
    });
    let client = RpcClient::new(&node.rpc_url()).unwrap();
    common::wait_until(Duration::from_secs(20), "node RPC up", || async {
        client.status().await.is_ok()
    })
    .await;
    common::wait_until(Duration::from_secs(20), "the liar caught", || async {
        common::metric(node.rpc_port, "cairn_peer_faults_total").await >= 1
    })
    .await;
    SyncDuel {
        node,
        client,
        liar,
        honest,
        honest_on,
        liar_served,
    }
}

/// A sync server that flips one signature byte in block 2 of a certified chain: the node
/// refuses the body (the header commits to the signature bytes), penalizes the server,
/// stores nothing from it past block 1, and catches up from an honest server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_server_that_flips_signature_bytes_is_refused_and_the_node_catches_up_elsewhere() {
    let (keys, genesis) = genesis();
    let chain = certified_chain(&keys, &genesis, 3);
    let mut forged = chain.clone();
    forged[1].block = mangled(&chain[1].block);

    let SyncDuel {
        node,
        client,
        honest,
        honest_on,
        liar_served,
        ..
    } = sync_duel(&genesis, forged, chain.clone()).await;
    assert!(liar_served.load(Ordering::SeqCst) >= 1);
    let status = client.status().await.unwrap();
    assert!(
        status.latest_height <= 1,
        "committed past the mangled block: height {}",
        status.latest_height
    );

    honest_on.store(true, Ordering::SeqCst);
    common::wait_until(
        Duration::from_secs(20),
        "caught up from the honest peer",
        || async {
            client
                .status()
                .await
                .is_ok_and(|s| s.latest_height == 3 && s.latest_hash == chain[2].block.hash())
        },
    )
    .await;
    // What the node stores and serves is exactly the certified bytes.
    let served = common::request_block(&honest, node.peer_id, chain[1].block.hash()).await;
    assert_eq!(served.as_ref(), Some(&chain[1].block));
    node.stop().await;
}

/// A sync server whose range carries a forged certificate for block 1 (signed by keys that
/// are not the validators') and a valid one for block 2: the node stores neither block from
/// it (the response is cut at the first forged certificate), penalizes it, syncs from an
/// honest server, and every certificate it then serves verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_intermediate_certificate_is_never_stored() {
    let (keys, genesis) = genesis();
    let chain = certified_chain(&keys, &genesis, 2);
    let strangers: Vec<SigningKey> = (60..64u8)
        .map(|i| SigningKey::from_bytes(&[i; 32]))
        .collect();
    let mut forged = chain.clone();
    let bad = common::finalization(&strangers, &genesis, &chain[0].block, 1, 0);
    forged[0].certificate = Some(borsh::to_vec(&bad).unwrap());

    let SyncDuel {
        node,
        client,
        honest_on,
        liar,
        ..
    } = sync_duel(&genesis, forged, chain.clone()).await;
    assert_eq!(
        client.status().await.unwrap().latest_height,
        0,
        "a block certified only by the liar's word was committed"
    );
    assert!(client.finalization(1).await.unwrap().is_none());

    honest_on.store(true, Ordering::SeqCst);
    common::wait_until(Duration::from_secs(20), "caught up", || async {
        client.status().await.is_ok_and(|s| s.latest_height == 2)
    })
    .await;
    for height in 1..=2 {
        if let Some(f) = client.finalization(height).await.unwrap() {
            let bytes = hex::decode(&f.certificate).unwrap();
            let cert: Certificate = borsh::from_slice(&bytes).unwrap();
            cert.verify(&genesis.hash().0, &genesis.validator_set())
                .unwrap_or_else(|e| panic!("stored certificate {height} does not verify: {e}"));
        }
    }
    drop(liar);
    node.stop().await;
}

/// The node under test as validator 0 of four (keys: node seed `[50; 32]`, consensus seed
/// `[51; 32]`, as `FullNode` writes them); the others are the test's keys `[2; 32]`..
/// `[4; 32]`. Returns every validator's signing key by index, and the genesis.
fn genesis_with_node_as_validator() -> (Vec<SigningKey>, Genesis) {
    common::validators_genesis(
        CHAIN_ID,
        &[[51; 32], [2; 32], [3; 32], [4; 32]],
        &[[50; 32], [11; 32], [12; 32], [13; 32]],
        &[(sender_address(), 1_000_000)],
        ChainParams {
            // Room for the body fetch (after 300 ms) and a second one.
            leader_timeout_ms: 5_000,
            notarization_timeout_ms: 10_000,
            ..ChainParams::default()
        },
    )
}

/// A relay serves the body of view 1's proposal with one signature byte flipped. The
/// validator under test, which has the leader's signed proposal (its Notarize vote) but not
/// the body, fetches it, refuses the relay's copy as the relay's fault (penalized), gets the
/// real one from another peer and votes Notarize: the bad copy never becomes a verdict on
/// the proposal (it never votes Nullify for view 1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mangled_relayed_body_does_not_cost_the_view() {
    let (keys, genesis) = genesis_with_node_as_validator();
    let (_dir, mut chain) = chain_on(&genesis);
    let leader = genesis.validator_set().leader(1);
    assert_ne!(leader, 0, "view 1's leader must not be the node under test");
    let parent = chain.head_hash();
    let tx = transfer(0);
    let block = chain
        .build(
            &parent,
            1,
            genesis.validators[leader as usize].consensus_key,
            2,
            |b| {
                b.apply(&tx).unwrap();
                vec![tx.clone()]
            },
        )
        .unwrap();
    let bad = mangled(&block);

    // The relay answers block requests with the mangled body; the honest peer, with the
    // real one. Neither is the leader's peer, so the node asks them round-robin.
    let (relay, relay_events, relay_addr, relay_id) = common::spawn_peer(&genesis, 77).await;
    let relay_asked = Arc::new(AtomicU64::new(0));
    {
        let asked = relay_asked.clone();
        let (bad, hash) = (bad.clone(), block.hash());
        common::serve_requests(relay.clone(), relay_events, move |r| match r {
            SyncRequest::BlockByHash(h) if h == hash => {
                asked.fetch_add(1, Ordering::SeqCst);
                SyncResponse::Block(Some(bad.clone()))
            }
            SyncRequest::Status => SyncResponse::Status {
                height: 0,
                hash: Hash::ZERO,
                lowest_retained_height: 0,
            },
            other => SyncResponse::Error(format!("not served: {other:?}")),
        });
    }
    let (honest, mut honest_events, honest_addr, honest_id) =
        common::spawn_peer(&genesis, 78).await;
    let node = common::FullNode::start_with(&genesis, &relay_addr, &relay_id, |c| {
        c.p2p
            .bootstrap
            .push(format!("{honest_addr}/p2p/{honest_id}"));
    });
    common::wait_until(
        Duration::from_secs(20),
        "honest peer in the consensus mesh",
        || {
            let honest = honest.clone();
            async move { !honest.mesh_peers(Topic::Consensus).await.is_empty() }
        },
    )
    .await;

    // The leader's proposal (its Notarize vote) on the consensus topic only: the node must
    // fetch the body.
    let vote = common::notarize_vote(&genesis, &block, leader, &keys[leader as usize]);
    honest
        .publish(
            Topic::Consensus,
            EpochMessage {
                epoch: 0,
                message: Message::Vote(vote),
            }
            .encode(),
        )
        .await
        .unwrap();

    // The honest peer serves the real body, and watches the node's votes.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut notarized = false;
    while !notarized {
        let ev = tokio::time::timeout_at(deadline, honest_events.recv())
            .await
            .expect("the node never notarized view 1's proposal within 20 s")
            .expect("peer stopped");
        match ev {
            NetworkEvent::Request { data, token, .. } => {
                let resp = match SyncRequest::decode(&data).unwrap() {
                    // Until the relay has been asked, the honest peer does not have the
                    // body either, so the node's fetch must reach the relay.
                    SyncRequest::BlockByHash(h) if h == block.hash() => {
                        if relay_asked.load(Ordering::SeqCst) == 0 {
                            SyncResponse::Block(None)
                        } else {
                            SyncResponse::Block(Some(block.clone()))
                        }
                    }
                    SyncRequest::Status => SyncResponse::Status {
                        height: 0,
                        hash: Hash::ZERO,
                        lowest_retained_height: 0,
                    },
                    other => SyncResponse::Error(format!("not served: {other:?}")),
                };
                honest.respond(token, resp.encode()).await;
            }
            NetworkEvent::Gossip {
                topic: Topic::Consensus,
                data,
                message_id,
                source,
            } => {
                honest
                    .report(message_id, source, cairn_node::network::Acceptance::Ignore)
                    .await;
                if let Ok(EpochMessage {
                    message: Message::Vote(v),
                    ..
                }) = EpochMessage::decode(&data)
                    && v.signer == 0
                {
                    match v.kind {
                        VoteKind::Nullify(1) => {
                            panic!("the node nullified view 1 over a relay's bad copy")
                        }
                        VoteKind::Notarize(p) if p.view == 1 => {
                            assert_eq!(p.payload, Digest(block.hash().0));
                            notarized = true;
                        }
                        _ => {}
                    }
                }
            }
            NetworkEvent::Gossip {
                message_id, source, ..
            } => {
                honest
                    .report(message_id, source, cairn_node::network::Acceptance::Ignore)
                    .await;
            }
            _ => {}
        }
    }
    // The relay was asked (else this test proves nothing) and penalized.
    assert!(
        relay_asked.load(Ordering::SeqCst) >= 1,
        "the relay was never asked for the body"
    );
    assert!(common::metric(node.rpc_port, "cairn_peer_faults_total").await >= 1);
    assert!(common::metric(node.rpc_port, "cairn_block_bodies_refused_total").await >= 1);
    node.stop().await;
}

/// A peer gossips compact blocks for the current and future views that name each view's
/// leader as proposer but carry no valid leader signature (the forger signs with its own
/// key). The node keeps and forwards none of them (an observer peer receives none, and the
/// node does not serve them), bans the forger, and still takes a real proposal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_compact_blocks_are_neither_kept_nor_forwarded_and_the_forger_is_banned() {
    let (keys, genesis) = genesis();
    let (forger, forger_events, forger_addr, forger_id) = common::spawn_peer(&genesis, 77).await;
    common::serve_requests(forger.clone(), forger_events, |_| {
        SyncResponse::Error("no".into())
    });
    let (observer, mut observer_events, observer_addr, observer_id) =
        common::spawn_peer(&genesis, 78).await;
    let node = common::FullNode::start_with(&genesis, &forger_addr, &forger_id, |c| {
        c.p2p
            .bootstrap
            .push(format!("{observer_addr}/p2p/{observer_id}"));
    });
    for net in [&forger, &observer] {
        common::wait_until(Duration::from_secs(20), "peer in the block mesh", || {
            let net = (*net).clone();
            async move { !net.mesh_peers(Topic::Blocks).await.is_empty() }
        })
        .await;
    }

    // Everything the observer receives on the block topic.
    let (blocks_tx, mut blocks_rx) = mpsc::channel::<Hash>(64);
    {
        let observer = observer.clone();
        tokio::spawn(async move {
            while let Some(ev) = observer_events.recv().await {
                match ev {
                    NetworkEvent::Gossip {
                        topic,
                        data,
                        message_id,
                        source,
                    } => {
                        observer
                            .report(message_id, source, cairn_node::network::Acceptance::Ignore)
                            .await;
                        if topic == Topic::Blocks
                            && let Ok(c) =
                                cairn_node::compact::CompactBlock::decode(&data, 1 << 20, 1000)
                        {
                            let _ = blocks_tx.try_send(c.header.hash());
                        }
                    }
                    NetworkEvent::Request { token, .. } => {
                        observer
                            .respond(token, SyncResponse::Error("no".into()).encode())
                            .await;
                    }
                    _ => {}
                }
            }
        });
    }

    let (_dir, mut chain) = chain_on(&genesis);
    let genesis_hash = chain.head_hash();
    let forger_key = SigningKey::from_bytes(&[99; 32]);
    let mut forged = Vec::new();
    for view in 1..=4u64 {
        let leader = genesis.validator_set().leader(view);
        let b = chain
            .build(
                &genesis_hash,
                view,
                genesis.validators[leader as usize].consensus_key,
                2,
                |_| vec![],
            )
            .unwrap();
        // The leader's index, the forger's signature.
        let c = common::signed_compact(&genesis, &b, leader, &forger_key);
        forger.publish(Topic::Blocks, c.encode()).await.unwrap();
        forged.push(b.hash());
    }
    common::wait_until(Duration::from_secs(10), "forgeries refused", || async {
        common::metric(node.rpc_port, "cairn_proposals_forged_total").await >= 1
    })
    .await;
    // One forgery graylists the forger at gossipsub (its later ones are not even read) and
    // costs it a disconnect; its score survives reconnects, so it is banned at the third.
    common::wait_until(Duration::from_secs(30), "the forger banned", || async {
        common::metric(node.rpc_port, "cairn_peers_banned_total").await >= 1
    })
    .await;
    for h in &forged {
        assert_eq!(
            common::request_block(&observer, node.peer_id, *h).await,
            None,
            "the node kept a forged block"
        );
    }

    // A real proposal for view 1, signed by its leader, published by the observer: taken
    // (rebuilt at once: it has no transactions) and served.
    let leader = genesis.validator_set().leader(1);
    let real = chain
        .build(
            &genesis_hash,
            1,
            genesis.validators[leader as usize].consensus_key,
            3,
            |b| {
                let tx = transfer(0);
                b.apply(&tx).unwrap();
                vec![tx]
            },
        )
        .unwrap();
    observer
        .publish(Topic::Transactions, encode_batch(&real.transactions))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let c = common::signed_compact(&genesis, &real, leader, &keys[leader as usize]);
    observer.publish(Topic::Blocks, c.encode()).await.unwrap();
    common::wait_until(Duration::from_secs(10), "the real block served", || {
        let observer = observer.clone();
        let real = real.clone();
        let node = node.peer_id;
        async move { common::request_block(&observer, node, real.hash()).await == Some(real) }
    })
    .await;

    // Nothing the forger sent reached the observer.
    while let Ok(h) = blocks_rx.try_recv() {
        assert!(!forged.contains(&h), "the node forwarded a forged block");
    }
    node.stop().await;
}
