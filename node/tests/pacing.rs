//! Honest nodes stay within their peers' sync rate limits under load.
//!
//! Every sync server counts a peer that sends requests faster than its token bucket allows
//! (`[sync] serve_requests_per_sec`) against the peer's score, so that a flooder is banned.
//! Under load, full nodes following a busy validator used to fetch the missing transactions
//! of compact blocks (and whole blocks) from it faster than that and were penalized as
//! abusive. Since then every node paces the sync requests it sends each peer below the
//! servers' default rate (`node/src/network/pacer.rs`).
//!
//! The test: one validator (it builds every block, so full nodes ask it for everything) and
//! two full nodes that know only the validator, all on defaults (no block interval: a block
//! as soon as the previous one is final), under a bounded load of [`ROUNDS`] × [`SENDERS`]
//! transfers submitted to the validator [`BATCH`] at a time at about [`RATE_TX_PER_S`], so
//! that it makes many small blocks. The full nodes must
//! reach the validator's tip and the validator must have recorded no fault of any peer.
//! With pacing turned off (`CAIRN_TEST_UNPACED=1` sets a send rate far above the servers')
//! the same test shows the penalty (`cargo test --workspace --test pacing -- --nocapture`
//! prints the counts either way).

mod common;

use std::time::Duration;

use cairn_ledger::{Address, SignedTransaction};
use common::cluster::{self, Homes};
use ed25519_dalek::SigningKey;
use tokio::time::{Instant, sleep};

const CHAIN_ID: &str = "cairn-pacing";
/// Senders; each sends one transfer a round (the mempool admits up to 64 future nonces a
/// sender, so rounds never outrun it).
const SENDERS: usize = 64;
/// Rounds of load.
const ROUNDS: u64 = 60;
/// Transfers per `sendTransactions` call.
const BATCH: usize = 4;
/// Offered load, transfers per second.
const RATE_TX_PER_S: u64 = 400;
/// Bound of every wait.
const WAIT: Duration = Duration::from_secs(90);

fn sender(i: usize) -> SigningKey {
    SigningKey::from_bytes(&[100 + i as u8; 32])
}

fn transfer(i: usize, nonce: u64) -> SignedTransaction {
    common::signed_transfer(&sender(i), CHAIN_ID, nonce, Address([7; 32]), 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_nodes_following_a_busy_validator_stay_within_its_sync_rate() {
    let unpaced = std::env::var_os("CAIRN_TEST_UNPACED").is_some();
    let homes = Homes::generate(3, 1, |config| {
        if unpaced {
            // The negative control: a send rate far above the servers' 50 a second.
            config.sync.send_requests_per_sec = 10_000;
            config.sync.send_burst = 10_000;
        }
    });
    let funded: Vec<(Address, u64)> = (0..SENDERS)
        .map(|i| {
            (
                Address::from_public_key(&sender(i).verifying_key()),
                1_000_000,
            )
        })
        .collect();
    let genesis = homes.genesis(CHAIN_ID, 1, &funded, cluster::fast_params());
    assert_eq!(
        genesis.params.block_interval_ms, 0,
        "the default: no interval"
    );
    let mut net = homes.with_genesis(genesis, WAIT);
    net.start_all();
    for i in 0..3 {
        net.wait_height(i, 2).await;
    }

    // Bounded load: ROUNDS rounds of one transfer per sender, submitted BATCH at a time so
    // that the validator (which proposes as soon as it holds transactions) makes many small
    // blocks, paced to RATE_TX_PER_S.
    let all: Vec<SignedTransaction> = (0..ROUNDS)
        .flat_map(|nonce| (0..SENDERS).map(move |i| transfer(i, nonce)))
        .collect();
    let step = Duration::from_micros(1_000_000 * BATCH as u64 / RATE_TX_PER_S);
    let start = Instant::now();
    let mut accepted = 0usize;
    for (k, batch) in all.chunks(BATCH).enumerate() {
        let results = net.rpc[0]
            .send_transactions(batch)
            .await
            .expect("submitted");
        accepted += results.iter().filter(|r| r.accepted).count();
        let next = start + step * (k as u32 + 1);
        sleep(next.saturating_duration_since(Instant::now())).await;
    }
    assert!(
        accepted as u64 >= ROUNDS * SENDERS as u64 * 9 / 10,
        "the validator accepted only {accepted} transfers"
    );

    // Every transfer final at the validator, and the full nodes at its tip.
    let total = ROUNDS;
    let deadline = Instant::now() + WAIT;
    let tip = loop {
        let done = net.rpc[0]
            .account(&Address::from_public_key(
                &sender(SENDERS - 1).verifying_key(),
            ))
            .await
            .map(|a| a.nonce >= total)
            .unwrap_or(false);
        if done {
            break net.height(0).await.expect("validator answers");
        }
        assert!(Instant::now() < deadline, "the load never became final");
        sleep(Duration::from_millis(100)).await;
    };
    for i in 1..3 {
        net.wait_height(i, tip).await;
    }

    let faults = common::metric(net.rpc_port(0), "cairn_peer_faults_total").await;
    let served = common::metric(net.rpc_port(0), "cairn_sync_requests_served_total").await;
    let limited = common::metric(net.rpc_port(0), "cairn_sync_requests_rate_limited_total").await;
    let mut synced = 0;
    let mut fetches = 0;
    let mut paced = 0;
    for i in 1..3 {
        fetches += common::metric(net.rpc_port(i), "cairn_compact_block_fetches_total").await;
        paced += common::metric(net.rpc_port(i), "cairn_sync_requests_paced_total").await;
        synced += common::metric(net.rpc_port(i), "cairn_blocks_synced_total").await;
    }
    println!(
        "pacing {}: {accepted} transfers accepted, tip {tip}; full nodes: {fetches} \
         transaction fetches, {synced} blocks synced, {paced} requests held back by pacing; \
         validator: {served} requests served, {limited} rate-limited, {faults} peer faults",
        if unpaced { "off" } else { "on" }
    );
    assert_eq!(
        faults, 0,
        "the validator counted {faults} faults against honest full nodes"
    );
    net.stop_all().await;
}
