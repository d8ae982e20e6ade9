//! Block sync and `[sync] reverify_signatures`: a peer serves a finalized block whose one
//! transfer carries a forged signature, with a valid finalization certificate (three of the
//! four genesis validators signed it). A node that re-checks the signatures of certified
//! blocks refuses the block and stays at genesis; a node that trusts the certificate (the
//! default) commits it, which shows the block is otherwise valid, so the refusal is the
//! signature check's.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cairn_genesis::Genesis;
use cairn_ledger::{Address, Block, BlockLimits, SignedTransaction, Store, TransactionBody};
use cairn_node::chain::Chain;
use cairn_node::network::{NetworkEvent, NetworkHandle};
use cairn_node::sync::{SyncRequest, SyncResponse, SyncedBlock};
use cairn_rpc::RpcClient;
use ed25519_dalek::SigningKey;
use tokio::sync::mpsc;

const CHAIN_ID: &str = "cairn-sync-reverify";

fn sender() -> SigningKey {
    SigningKey::from_bytes(&[42; 32])
}

/// Four validators (none running) and a funded sender; the validators' keys.
fn genesis() -> (Vec<SigningKey>, Genesis) {
    let sender = Address::from_public_key(&sender().verifying_key());
    common::four_validators(CHAIN_ID, &[(sender, 1_000_000)])
}

/// Block 1 (view 1, by view 1's leader) holding one transfer whose signature is flipped in
/// one bit, with the right state root, and a finalization certificate for it signed by
/// validators 0, 1 and 2.
fn forged_block(keys: &[SigningKey], genesis: &Genesis) -> SyncedBlock {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path(), genesis.hash()).unwrap());
    genesis.init_store(&store).unwrap();
    let mut chain = Chain::open(
        store,
        CHAIN_ID.into(),
        BlockLimits {
            block_txs_max: 10,
            block_bytes_max: 1 << 20,
        },
    )
    .unwrap();
    let key = sender();
    let mut tx: SignedTransaction = TransactionBody {
        chain_id: CHAIN_ID.into(),
        sender: Address::from_public_key(&key.verifying_key()),
        fee: 1,
        nonce: 0,
        expiry_height: 1_000,
        action: cairn_ledger::Action::Transfer {
            recipient: Address([9; 32]),
            amount: 10,
        },
    }
    .sign(&key);
    tx.signature[33] ^= 0x10;
    assert!(tx.verify(CHAIN_ID).is_err(), "the signature must be forged");
    let leader = genesis.validators[genesis.validator_set().leader(1) as usize].consensus_key;
    let parent = chain.head_hash();
    let block: Block = chain
        .build(&parent, 1, leader, 2, |b| {
            // The builder does not check signatures (the node checks them before).
            b.apply(&tx).unwrap();
            vec![tx.clone()]
        })
        .unwrap();
    let certificate = common::finalization(keys, genesis, &block, 1, 0);
    SyncedBlock {
        block,
        certificate: Some(borsh::to_vec(&certificate).unwrap()),
        epoch_proof: None,
    }
}

/// Serves head polls (height 1) and range requests (the forged block) in the background;
/// returns how many range requests were served.
fn serve(
    net: NetworkHandle,
    events: mpsc::Receiver<NetworkEvent>,
    synced: SyncedBlock,
) -> Arc<AtomicU64> {
    let ranges = Arc::new(AtomicU64::new(0));
    let counter = ranges.clone();
    common::serve_requests(net, events, move |request| match request {
        SyncRequest::Status => SyncResponse::Status {
            height: 1,
            hash: synced.block.hash(),
            lowest_retained_height: 0,
        },
        SyncRequest::Blocks { from_height: 1, .. } => {
            counter.fetch_add(1, Ordering::SeqCst);
            SyncResponse::Blocks(vec![synced.clone()])
        }
        other => SyncResponse::Error(format!("not served here: {other:?}")),
    });
    ranges
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reverify_mode_refuses_a_certified_block_with_a_forged_signature() {
    let (keys, genesis) = genesis();
    let synced = forged_block(&keys, &genesis);
    let (net, events, peer_addr, peer_id) = common::spawn_peer(&genesis, 77).await;
    let ranges = serve(net.clone(), events, synced.clone());

    // Re-checking node: receives the block (at least twice: it stays behind, so it asks
    // again at the next poll) and never commits it.
    let node = common::FullNode::start_with(&genesis, &peer_addr, &peer_id, |c| {
        c.sync.reverify_signatures = true;
        c.sync.interval_ms = 200;
    });
    let client = RpcClient::new(&node.rpc_url()).unwrap();
    common::wait_until(
        Duration::from_secs(20),
        "the block served twice",
        || async { ranges.load(Ordering::SeqCst) >= 2 },
    )
    .await;
    let status = client.status().await.unwrap();
    assert_eq!(status.latest_height, 0, "a forged signature was committed");
    node.stop().await;

    // Trusting node (default): commits the same block on the strength of its certificate.
    let node = common::FullNode::start_with(&genesis, &peer_addr, &peer_id, |c| {
        c.sync.interval_ms = 200;
    });
    let client = RpcClient::new(&node.rpc_url()).unwrap();
    common::wait_until(Duration::from_secs(20), "block 1 committed", || async {
        client
            .status()
            .await
            .is_ok_and(|s| s.latest_height == 1 && s.latest_hash == synced.block.hash())
    })
    .await;
    node.stop().await;
}
