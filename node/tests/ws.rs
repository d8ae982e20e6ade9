//! WebSocket subscriptions against a real single-validator chain (`node::run` in process,
//! as `cairn-node dev` runs it): 1,000 subscribers under a transfer load see the same
//! finalized blocks in order; a consumer that stops reading is disconnected with its reason
//! while the others go on and the node's finalization rate stays within 10% of the rate
//! before it came; a transaction subscription sees pending, then finalized. Every wait is
//! bounded.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use cairn_genesis::{ChainParams, Genesis, GenesisAccount, GenesisValidator};
use cairn_ledger::{Action, Address, TransactionBody};
use common::cluster::{self, Cluster, Homes};
use ed25519_dalek::SigningKey;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{Instant, timeout};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Bound of every wait.
const WAIT: Duration = Duration::from_secs(120);
const CHAIN_ID: &str = "cairn-ws";

fn account_key() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

fn account() -> Address {
    Address::from_public_key(&account_key().verifying_key())
}

/// A one-validator chain (like `cairn-node dev`) with a funded account; blocks every
/// 200 ms. `tweak` adjusts the node's config.
async fn dev_chain(tweak: impl Fn(&mut cairn_node::config::NodeConfig)) -> Cluster {
    let homes = Homes::generate(1, 0, tweak);
    let genesis = Genesis {
        chain_id: CHAIN_ID.into(),
        genesis_time_ms: cluster::now_ms(),
        validators: vec![GenesisValidator {
            name: "dev".into(),
            consensus_key: homes.validator_addresses[0],
            peer_id: homes.peer_ids[0].to_string(),
            voting_power: 1,
        }],
        accounts: vec![GenesisAccount {
            address: account(),
            balance: 1_000_000_000,
        }],
        params: ChainParams {
            block_interval_ms: 200,
            ..cluster::fast_params()
        },
        governance: Default::default(),
        generated_accounts: None,
    };
    let mut chain = homes.with_genesis(genesis, WAIT);
    chain.start(0);
    chain.wait_height(0, 1).await;
    chain
}

fn ws_url(chain: &Cluster) -> String {
    format!("ws://{}/ws", chain.rpc_addrs[0])
}

async fn connect(url: &str) -> Ws {
    timeout(WAIT, tokio_tungstenite::connect_async(url))
        .await
        .expect("connect in time")
        .expect("upgrade")
        .0
}

async fn recv(ws: &mut Ws) -> Value {
    loop {
        match timeout(WAIT, ws.next()).await.expect("a message in time") {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(t.as_str()).unwrap(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

async fn subscribe(ws: &mut Ws, params: Value) -> String {
    let request = json!({"jsonrpc": "2.0", "id": 1, "method": "subscribe", "params": params});
    ws.send(Message::Text(request.to_string().into()))
        .await
        .unwrap();
    // Notifications of earlier subscriptions may come first.
    let r = loop {
        let v = recv(ws).await;
        if v.get("id").is_some() {
            break v;
        }
    };
    r["result"]
        .as_str()
        .unwrap_or_else(|| panic!("subscribe failed: {r}"))
        .to_string()
}

/// `(height, hash)` of a `blocks` notification.
fn block_of(v: &Value) -> (u64, String) {
    assert_eq!(v["method"], json!("subscription"), "{v}");
    let r = &v["params"]["result"];
    (
        r["header"]["height"].as_u64().unwrap(),
        r["hash"].as_str().unwrap().to_string(),
    )
}

/// One sample of the node's `/metrics` (0 if absent).
async fn metric(chain: &Cluster, name: &str) -> f64 {
    let Ok(Ok(mut stream)) = timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect(chain.rpc_addrs[0]),
    )
    .await
    else {
        return 0.0;
    };
    let request = "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n";
    if stream.write_all(request.as_bytes()).await.is_err() {
        return 0.0;
    }
    let mut body = String::new();
    let _ = timeout(Duration::from_secs(5), stream.read_to_string(&mut body)).await;
    body.lines()
        .find_map(|l| {
            let mut parts = l.split_whitespace();
            (parts.next() == Some(name))
                .then(|| parts.next().and_then(|v| v.parse().ok()))
                .flatten()
        })
        .unwrap_or(0.0)
}

const SUBSCRIBERS: usize = 1000;
const BLOCKS_EACH: usize = 10;
/// Transfers the load task submits during the 1,000-subscriber test (bounded).
const LOAD_TXS: u64 = 640;
/// Transfers per `sendTransactions` call of the load task; with what is pooled, within the
/// chain's `mempool_sender_future_max` (64) of the finalized nonce.
const LOAD_BATCH: u64 = 32;

/// The two tests below each run a chain and measure it: one at a time, so neither's
/// figures include the other's work.
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_subscribers_receive_every_block_in_order() {
    let _one_at_a_time = HEAVY.lock().await;
    let mut chain = dev_chain(|c| {
        c.rpc.ws_connections_max = SUBSCRIBERS + 10;
        c.rpc.connections_max = SUBSCRIBERS + 50;
        c.rpc.connections_per_ip_max = SUBSCRIBERS + 50;
    })
    .await;
    let url = ws_url(&chain);
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(SUBSCRIBERS);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..SUBSCRIBERS {
        let url = url.clone();
        let ready = ready_tx.clone();
        tasks.spawn(async move {
            let mut ws = connect(&url).await;
            let sub = subscribe(&mut ws, json!({"kind": "blocks"})).await;
            ready.send(()).await.unwrap();
            let mut seen: Vec<(u64, String)> = Vec::with_capacity(BLOCKS_EACH);
            while seen.len() < BLOCKS_EACH {
                let v = recv(&mut ws).await;
                assert_eq!(v["params"]["subscription"], json!(sub), "{v}");
                let (h, hash) = block_of(&v);
                if let Some((prev, _)) = seen.last() {
                    assert_eq!(h, prev + 1, "blocks out of order or missed");
                }
                seen.push((h, hash));
            }
            seen
        });
    }
    drop(ready_tx);
    let started = Instant::now();
    for _ in 0..SUBSCRIBERS {
        timeout(WAIT, ready_rx.recv())
            .await
            .expect("subscribers connected in time")
            .expect("a subscriber failed");
    }
    eprintln!(
        "{SUBSCRIBERS} subscribers connected in {} ms",
        started.elapsed().as_millis()
    );
    // Load while they listen: transfers in batches, bounded in count.
    let loader = chain.rpc[0].url().to_string();
    let load = tokio::spawn(async move {
        let client = cairn_rpc::RpcClient::new(&loader).unwrap();
        let mut accepted = 0u64;
        for first in (0..LOAD_TXS).step_by(LOAD_BATCH as usize) {
            // One sender: keep its pooled run within the mempool's per-sender window.
            let limit = Instant::now() + WAIT;
            while client.account(&account()).await.unwrap().nonce + 64 < first + LOAD_BATCH {
                assert!(Instant::now() < limit, "the load stalled at nonce {first}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let batch: Vec<_> = (first..first + LOAD_BATCH).map(transfer).collect();
            let results = client.send_transactions(&batch).await.expect("submitted");
            accepted += results.iter().filter(|r| r.accepted).count() as u64;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        accepted
    });
    assert!(metric(&chain, "cairn_ws_connections").await >= SUBSCRIBERS as f64);
    assert!(metric(&chain, "cairn_ws_subscriptions").await >= SUBSCRIBERS as f64);
    // Every subscriber saw consecutive blocks; all agree with each other and the chain.
    let mut by_height: BTreeMap<u64, String> = BTreeMap::new();
    while let Some(seen) = timeout(WAIT, tasks.join_next()).await.expect("in time") {
        for (h, hash) in seen.expect("subscriber task") {
            let known = by_height.entry(h).or_insert_with(|| hash.clone());
            assert_eq!(*known, hash, "subscribers disagree at height {h}");
        }
    }
    for (h, hash) in &by_height {
        let block = chain.rpc[0].block_by_height(*h).await.unwrap().unwrap();
        assert_eq!(block.hash.to_hex(), *hash, "height {h}");
    }
    assert_eq!(metric(&chain, "cairn_ws_lag_disconnects_total").await, 0.0);
    // The load was real: transfers were accepted and finalized while the subscribers read.
    let accepted = timeout(WAIT, load).await.expect("load in time").unwrap();
    assert_eq!(accepted, LOAD_TXS, "every load transfer accepted");
    let finalized = chain.rpc[0].account(&account()).await.unwrap().nonce;
    assert!(finalized > 0, "no load transfer finalized");
    eprintln!("{finalized} of {LOAD_TXS} load transfers finalized during the test");
    chain.stop_all().await;
}

/// Blocks per second between the first and last `blocks` notification of `notes`, by the
/// blocks' own timestamps (the node's clock, so the test's scheduling does not count).
fn rate_of(notes: &[Value]) -> f64 {
    let ts = |v: &Value| {
        v["params"]["result"]["header"]["timestampMs"]
            .as_u64()
            .unwrap()
    };
    let (first, last) = (notes.first().unwrap(), notes.last().unwrap());
    let span_ms = ts(last).saturating_sub(ts(first)).max(1);
    (notes.len() - 1) as f64 * 1000.0 / span_ms as f64
}

/// Blocks in each of the two windows the slow-consumer test compares.
const RATE_WINDOW_BLOCKS: usize = 25;

/// A transfer from the funded account.
fn transfer(nonce: u64) -> cairn_ledger::SignedTransaction {
    TransactionBody {
        chain_id: CHAIN_ID.into(),
        sender: account(),
        fee: 1,
        nonce,
        expiry_height: 100_000,
        action: Action::Transfer {
            recipient: Address([9; 32]),
            amount: 10,
        },
    }
    .sign(&account_key())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_is_dropped_while_the_rest_go_on() {
    let _one_at_a_time = HEAVY.lock().await;
    // Each block brings the slow consumer 32 notifications: the queue holds one block's worth.
    let mut chain = dev_chain(|c| c.rpc.ws_send_queue_max = 64).await;
    let url = ws_url(&chain);

    // The finalization rate without a slow consumer: a window of consecutive blocks, with
    // an empty mempool (a leader waits longer for transactions when there are none, so
    // both windows must have the same: the one transfer pair below finalizes in one block).
    let mut fast = connect(&url).await;
    subscribe(&mut fast, json!({"kind": "blocks"})).await;
    let mut baseline = Vec::with_capacity(RATE_WINDOW_BLOCKS);
    while baseline.len() < RATE_WINDOW_BLOCKS {
        baseline.push(recv(&mut fast).await);
    }
    let mut last: Option<u64> = Some(block_of(baseline.last().unwrap()).0);

    // Transaction status: nonce 1 waits behind the gap of nonce 0, so it reads pending.
    let mut tx_ws = connect(&url).await;
    let second = transfer(1);
    chain.rpc[0].send_transaction(&second).await.unwrap();
    let tx_sub = subscribe(
        &mut tx_ws,
        json!({"kind": "transaction", "hash": second.hash().to_hex()}),
    )
    .await;
    let v = recv(&mut tx_ws).await;
    assert_eq!(v["params"]["subscription"], json!(tx_sub));
    assert_eq!(v["params"]["result"], json!({"status": "pending"}));

    // A consumer that never reads, with many subscriptions and a small receive buffer.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(chain.rpc_addrs[0]).await.unwrap();
    let (mut slow, _) = tokio_tungstenite::client_async(
        url.clone(),
        tokio_tungstenite::MaybeTlsStream::Plain(stream),
    )
    .await
    .unwrap();
    for _ in 0..32 {
        subscribe(
            &mut slow,
            json!({"kind": "blocks", "transactions": "hashes"}),
        )
        .await;
    }
    // The same window from the moment the slow consumer subscribed (it is disconnected
    // within it).
    let mut with_slow: Vec<Value> = Vec::with_capacity(RATE_WINDOW_BLOCKS);

    // The first transfer closes the gap: both finalize.
    chain.rpc[0].send_transaction(&transfer(0)).await.unwrap();
    let v = recv(&mut tx_ws).await;
    assert_eq!(v["params"]["result"]["status"], json!("finalized"), "{v}");
    let finalized_at = v["params"]["result"]["height"].as_u64().unwrap();
    let status = chain.rpc[0].transaction(&second.hash()).await.unwrap();
    assert_eq!(
        serde_json::to_value(&status).unwrap()["height"],
        json!(finalized_at)
    );

    // The fast subscriber keeps receiving blocks in order until the slow one is dropped.
    let started = Instant::now();
    while metric(&chain, "cairn_ws_lag_disconnects_total").await < 1.0 {
        assert!(
            started.elapsed() < WAIT,
            "the slow consumer was never disconnected"
        );
        let v = recv(&mut fast).await;
        let (h, _) = block_of(&v);
        if let Some(prev) = last {
            assert_eq!(h, prev + 1);
        }
        last = Some(h);
        if with_slow.len() < RATE_WINDOW_BLOCKS {
            with_slow.push(v);
        }
    }
    let dropped_at = chain.height(0).await.unwrap();
    // The slow consumer reads now: notifications, then why it was closed.
    let reason = loop {
        match timeout(WAIT, slow.next()).await.expect("in time") {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if v["method"] == json!("closing") {
                    break v["params"]["reason"].clone();
                }
            }
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break Value::Null,
            Some(Ok(_)) => {}
        }
    };
    assert_eq!(reason, json!("send_queue_full"));
    // The node keeps finalizing and the fast subscriber keeps up.
    chain.wait_height(0, dropped_at + 5).await;
    loop {
        let v = recv(&mut fast).await;
        let (h, _) = block_of(&v);
        if let Some(prev) = last {
            assert_eq!(h, prev + 1);
        }
        last = Some(h);
        if with_slow.len() < RATE_WINDOW_BLOCKS {
            with_slow.push(v);
        }
        if h >= dropped_at + 5 && with_slow.len() >= RATE_WINDOW_BLOCKS {
            break;
        }
    }
    assert_eq!(metric(&chain, "cairn_ws_lag_disconnects_total").await, 1.0);
    // The slow consumer did not slow the chain: the rate over the window that holds its
    // subscriptions and its disconnection is within 10% of the rate before it came.
    let (before, during) = (rate_of(&baseline), rate_of(&with_slow));
    eprintln!("finalized blocks/s: {before:.2} before the slow consumer, {during:.2} with it");
    assert!(
        during >= before * 0.9,
        "the finalization rate fell from {before:.2} to {during:.2} blocks/s"
    );
    chain.stop_all().await;
}
