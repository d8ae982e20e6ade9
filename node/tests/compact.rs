//! Compact blocks against a running node (started with `node::run`, as the binary does): a
//! bare network peer gossips some transactions, then a compact block listing those and two
//! more. The node rebuilds what it can from its mempool, asks the peer (its only peer) for
//! exactly the two missing transactions by index, completes the block from the answer and
//! then serves it whole by hash. Compact blocks that fail a check (hash list against
//! `txs_root`, proposer not the view's leader, garbage) are rejected as the sender's fault.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_genesis::Genesis;
use cairn_ledger::{Address, Block, BlockHeader, Hash, SignedTransaction, TransactionBody};
use cairn_node::compact::CompactBlock;
use cairn_node::network::{NetworkEvent, NetworkHandle, Topic};
use cairn_node::sync::{SyncRequest, SyncResponse};
use cairn_node::txgossip::encode_batch;
use cairn_rpc::{RpcClient, TxStatus};
use ed25519_dalek::SigningKey;
use tokio::sync::mpsc;

const CHAIN_ID: &str = "cairn-compact";

fn sender() -> SigningKey {
    SigningKey::from_bytes(&[42; 32])
}

/// Four validators (none of them running: the chain stays at genesis; the test signs with
/// their keys) and a funded sender.
fn genesis() -> (Vec<SigningKey>, Genesis) {
    let sender = Address::from_public_key(&sender().verifying_key());
    common::four_validators(CHAIN_ID, &[(sender, 1_000_000)])
}

fn transfers(n: u64) -> Vec<SignedTransaction> {
    let key = sender();
    (0..n)
        .map(|nonce| {
            TransactionBody {
                chain_id: CHAIN_ID.into(),
                sender: Address::from_public_key(&key.verifying_key()),
                fee: 1,
                nonce,
                expiry_height: 1_000,
                action: cairn_ledger::Action::Transfer {
                    recipient: Address([9; 32]),
                    amount: 10,
                },
            }
            .sign(&key)
        })
        .collect()
}

/// A block at height 1 in `view` on top of genesis, proposed by `proposer`. The full node
/// under test never executes it (only validators validate proposals), so the state root is
/// arbitrary.
fn block(genesis: &Genesis, view: u64, proposer: Address, txs: Vec<SignedTransaction>) -> Block {
    let hashes: Vec<Hash> = txs.iter().map(|t| t.hash()).collect();
    Block {
        header: BlockHeader {
            chain_id: CHAIN_ID.into(),
            height: 1,
            view,
            parent_hash: genesis.genesis_block().hash(),
            proposer,
            timestamp_ms: 2,
            txs_root: cairn_ledger::txs_root(&hashes),
            signed_txs_root: cairn_ledger::signed_txs_root_of(&txs),
            state_root: Hash([3; 32]),
        },
        transactions: txs,
    }
}

fn leader(genesis: &Genesis, view: u64) -> Address {
    genesis.validators[genesis.validator_set().leader(view) as usize].consensus_key
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compact_block_is_rebuilt_from_the_mempool_and_its_missing_transactions_fetched() {
    let (keys, genesis) = genesis();
    let (net, events, peer_addr, peer_id) = common::spawn_peer(&genesis, 77).await;
    let serve = Arc::new(Mutex::new(None));
    let mut fetches = respond(net.clone(), events, genesis.clone(), serve.clone());
    let node = common::FullNode::start(&genesis, &peer_addr, &peer_id);
    let rpc_port = node.rpc_port;
    let client = RpcClient::new(&node.rpc_url()).unwrap();
    common::wait_until(
        Duration::from_secs(20),
        "node in the block and tx meshes",
        || {
            let net = net.clone();
            async move {
                !net.mesh_peers(Topic::Blocks).await.is_empty()
                    && !net.mesh_peers(Topic::Transactions).await.is_empty()
            }
        },
    )
    .await;

    // The node holds transactions 0..3 of 5.
    let txs = transfers(5);
    net.publish(Topic::Transactions, encode_batch(&txs[..3]))
        .await
        .unwrap();
    for tx in &txs[..3] {
        common::wait_until(
            Duration::from_secs(10),
            "gossiped transaction pending",
            || {
                let client = &client;
                async move { matches!(client.transaction(&tx.hash()).await, Ok(TxStatus::Pending)) }
            },
        )
        .await;
    }

    // Bad compact blocks are rejected: a swapped hash list (root mismatch) and a block not by
    // view 1's leader. (Two rejections keep the peer above gossipsub's graylist threshold.)
    let b = block(&genesis, 1, leader(&genesis, 1), txs.clone());
    let l1 = genesis.validator_set().leader(1);
    let signed = |b: &Block| common::signed_compact(&genesis, b, l1, &keys[l1 as usize]);
    let rejected_before = common::metric(rpc_port, "cairn_gossip_rejected_total").await;
    let mut swapped: CompactBlock = signed(&b);
    swapped.tx_hashes.swap(0, 1);
    net.publish(Topic::Blocks, swapped.encode()).await.unwrap();
    let usurper = block(&genesis, 1, leader(&genesis, 2), txs.clone());
    net.publish(Topic::Blocks, signed(&usurper).encode())
        .await
        .unwrap();
    common::wait_until(
        Duration::from_secs(10),
        "both bad compact blocks rejected",
        || async {
            common::metric(rpc_port, "cairn_gossip_rejected_total").await >= rejected_before + 2
        },
    )
    .await;
    let node_peer = net.peers().await[0].peer_id;
    assert_eq!(common::request_block(&net, node_peer, b.hash()).await, None);
    assert!(
        fetches.try_recv().is_err(),
        "nothing fetched for bad blocks"
    );

    // The valid compact block: the node asks for exactly positions 3 and 4, completes the
    // block from the answer, and serves it whole.
    *serve.lock().unwrap() = Some(b.clone());
    net.publish(Topic::Blocks, signed(&b).encode())
        .await
        .unwrap();
    let (block_hash, indices) = tokio::time::timeout(Duration::from_secs(10), fetches.recv())
        .await
        .expect("no request for the missing transactions within 10 s")
        .expect("responder ended");
    assert_eq!((block_hash, indices), (b.hash(), vec![3, 4]));
    common::wait_until(
        Duration::from_secs(10),
        "node serves the rebuilt block",
        || {
            let net = net.clone();
            let b = b.clone();
            async move { common::request_block(&net, node_peer, b.hash()).await == Some(b) }
        },
    )
    .await;
    assert!(common::metric(rpc_port, "cairn_compact_blocks_waited_total").await >= 1);
    assert!(common::metric(rpc_port, "cairn_compact_block_fetches_total").await >= 1);

    node.stop().await;
}

/// Answers the node's requests in the background: head polls with genesis, transaction
/// fetches from the block in `serve` (reported on the returned channel), anything else with
/// an error.
fn respond(
    net: NetworkHandle,
    events: mpsc::Receiver<NetworkEvent>,
    genesis: Genesis,
    serve: Arc<Mutex<Option<Block>>>,
) -> mpsc::Receiver<(Hash, Vec<u32>)> {
    let (fetched_tx, fetched_rx) = mpsc::channel(16);
    common::serve_requests(net, events, move |request| match request {
        SyncRequest::Status => SyncResponse::Status {
            height: 0,
            hash: genesis.genesis_block().hash(),
            lowest_retained_height: 0,
        },
        SyncRequest::BlockTransactions { block, indices } => {
            let held = serve.lock().unwrap().clone();
            let txs = held
                .filter(|b| b.hash() == block)
                .map(|b| {
                    indices
                        .iter()
                        .map(|&i| b.transactions[i as usize].clone())
                        .collect()
                })
                .unwrap_or_default();
            fetched_tx
                .try_send((block, indices))
                .expect("the test reads every fetch");
            SyncResponse::Transactions(txs)
        }
        other => SyncResponse::Error(format!("not served here: {other:?}")),
    });
    fetched_rx
}
