//! WebSocket subscriptions (`GET /ws`) over real sockets on 127.0.0.1:0, against a mock
//! backend whose finalized blocks the test publishes itself. Every wait is bounded.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_ledger::{Address, Block, BlockHeader, Hash, SignedTransaction};
use cairn_rpc::{
    AccountInfo, FinalizedBlock, FinalizedBlocks, PeerInfo, RpcBackend, RpcError, RpcServerConfig,
    RpcServerHandle, Status, TxStatus, ValidatorInfo, WsStats, async_trait,
};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Upper bound of every wait.
const WAIT: Duration = Duration::from_secs(20);
const ALICE: Address = Address([0xA1; 32]);

struct Mock {
    blocks: broadcast::Sender<Arc<FinalizedBlock>>,
    txs: Mutex<HashMap<Hash, TxStatus>>,
    accounts: Mutex<HashMap<Address, (u64, u64)>>,
    height: Mutex<u64>,
}

#[async_trait]
impl RpcBackend for Mock {
    async fn status(&self) -> Result<Status, RpcError> {
        // From JSON: fields this test does not need take their defaults.
        let status = json!({
            "chainId": "ws-test",
            "genesisHash": Hash::ZERO,
            "latestHeight": *self.height.lock().unwrap(),
            "latestHash": Hash::ZERO,
            "latestStateRoot": Hash::ZERO,
            "peerCount": 0,
            "syncing": false,
            "nodeVersion": "0",
        });
        serde_json::from_value(status).map_err(|e| RpcError::internal(e.to_string()))
    }
    async fn account(&self, address: Address) -> Result<AccountInfo, RpcError> {
        let (balance, nonce) =
            (self.accounts.lock().unwrap().get(&address).copied()).unwrap_or((0, 0));
        Ok(AccountInfo {
            address,
            balance,
            nonce,
            next_nonce: nonce,
            permissions: Default::default(),
        })
    }
    async fn submit_transaction(&self, _tx: SignedTransaction) -> Result<Hash, RpcError> {
        Err(RpcError::internal("not in this test"))
    }
    async fn transaction(&self, hash: Hash) -> Result<TxStatus, RpcError> {
        Ok((self.txs.lock().unwrap().get(&hash).cloned()).unwrap_or(TxStatus::Unknown))
    }
    async fn block_by_height(&self, _height: u64) -> Result<Option<Block>, RpcError> {
        Ok(None)
    }
    async fn block_by_hash(&self, _hash: Hash) -> Result<Option<Block>, RpcError> {
        Ok(None)
    }
    async fn validators(&self) -> Result<Vec<ValidatorInfo>, RpcError> {
        Ok(Vec::new())
    }
    async fn peers(&self) -> Result<Vec<PeerInfo>, RpcError> {
        Ok(Vec::new())
    }
    fn finalized_blocks(&self) -> Option<FinalizedBlocks> {
        Some(self.blocks.subscribe())
    }
}

impl Mock {
    /// What `getTransaction` answers for `hash` from now on.
    fn set_tx(&self, hash: Hash, status: TxStatus) {
        self.txs.lock().unwrap().insert(hash, status);
    }

    /// Publishes finalized block `height` with `txs` and `accounts`, as the node does.
    fn publish(&self, height: u64, txs: Vec<Hash>, accounts: Vec<Address>) {
        *self.height.lock().unwrap() = height;
        let header = BlockHeader {
            chain_id: "ws-test".into(),
            height,
            view: height,
            parent_hash: Hash::ZERO,
            proposer: Address([4; 32]),
            timestamp_ms: 1_700_000_000_000 + height,
            txs_root: Hash::ZERO,
            signed_txs_root: Hash::ZERO,
            state_root: Hash::ZERO,
        };
        let hash = header.hash();
        let _ = self
            .blocks
            .send(Arc::new(FinalizedBlock::new(hash, header, txs, accounts)));
    }
}

struct Server {
    handle: RpcServerHandle,
    mock: Arc<Mock>,
    stats: Arc<WsStats>,
}

async fn start(tweak: impl FnOnce(&mut RpcServerConfig), broadcast_max: usize) -> Server {
    let mut config = RpcServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..RpcServerConfig::default()
    };
    tweak(&mut config);
    let mock = Arc::new(Mock {
        blocks: broadcast::channel(broadcast_max).0,
        txs: Mutex::new(HashMap::new()),
        accounts: Mutex::new(HashMap::new()),
        height: Mutex::new(0),
    });
    let stats = Arc::new(WsStats::default());
    let handle = cairn_rpc::spawn_with_ws_stats(config, mock.clone(), stats.clone())
        .await
        .expect("server starts");
    Server {
        handle,
        mock,
        stats,
    }
}

impl Server {
    fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.handle.local_addr())
    }

    async fn connect(&self) -> Ws {
        let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(self.ws_url()))
            .await
            .expect("connect in time")
            .expect("upgrade");
        ws
    }
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

/// The next text message as JSON (pings skipped); panics on close or after [`WAIT`].
async fn recv(ws: &mut Ws) -> Value {
    loop {
        let m = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a message in time")
            .expect("connection open")
            .expect("read");
        match m {
            Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

async fn call(ws: &mut Ws, id: u64, method: &str, params: Value) -> Value {
    send(
        ws,
        json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}),
    )
    .await;
    let r = recv(ws).await;
    assert_eq!(r["id"], json!(id), "{r}");
    r
}

async fn subscribe(ws: &mut Ws, id: u64, params: Value) -> String {
    let r = call(ws, id, "subscribe", params).await;
    r["result"]
        .as_str()
        .unwrap_or_else(|| panic!("subscribe failed: {r}"))
        .to_string()
}

fn notification_of(v: &Value, sub: &str) -> Value {
    assert_eq!(v["method"], json!("subscription"), "{v}");
    assert_eq!(v["params"]["subscription"], json!(sub), "{v}");
    v["params"]["result"].clone()
}

#[tokio::test]
async fn blocks_subscribe_notify_unsubscribe() {
    let server = start(|_| {}, 64).await;
    let mut ws = server.connect().await;
    let with = subscribe(
        &mut ws,
        1,
        json!({"kind": "blocks", "transactions": "hashes"}),
    )
    .await;
    let without = subscribe(&mut ws, 2, json!(["blocks"])).await;
    assert_ne!(with, without);
    assert_eq!(server.stats.subscriptions(), 2);
    let txs = vec![Hash([1; 32]), Hash([2; 32])];
    server.mock.publish(7, txs.clone(), vec![]);
    let a = notification_of(&recv(&mut ws).await, &with);
    assert_eq!(a["header"]["height"], json!(7));
    // The header in `getBlock`'s form: camelCase keys.
    assert!(a["header"].get("parentHash").is_some(), "{a}");
    assert!(a["header"].get("parent_hash").is_none(), "{a}");
    assert_eq!(a["transactionCount"], json!(2));
    assert_eq!(
        a["transactionHashes"],
        json!([txs[0].to_hex(), txs[1].to_hex()])
    );
    let b = notification_of(&recv(&mut ws).await, &without);
    assert_eq!(b["hash"], a["hash"]);
    assert!(b.get("transactionHashes").is_none(), "{b}");

    let r = call(&mut ws, 3, "unsubscribe", json!([with])).await;
    assert_eq!(r["result"], json!(true));
    let r = call(&mut ws, 4, "unsubscribe", json!({"subscription": with})).await;
    assert_eq!(r["result"], json!(false));
    assert_eq!(server.stats.subscriptions(), 1);
    // Only the remaining subscription hears the next block.
    server.mock.publish(8, vec![], vec![]);
    let n = notification_of(&recv(&mut ws).await, &without);
    assert_eq!(n["header"]["height"], json!(8));
    let r = call(&mut ws, 5, "unsubscribe", json!([without])).await;
    assert_eq!(r["result"], json!(true));
    server.mock.publish(9, vec![], vec![]);
    // Nothing for block 9: the next message is the answer to this request.
    let r = call(&mut ws, 6, "unsubscribe", json!(["0x99"])).await;
    assert_eq!(r["result"], json!(false));
    assert_eq!(server.stats.subscriptions(), 0);
    drop(ws);
    server.handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn transaction_status_pending_then_finalized_then_ends() {
    let server = start(|_| {}, 64).await;
    let tx = Hash([0x77; 32]);
    server.mock.set_tx(tx, TxStatus::Pending);
    let mut ws = server.connect().await;
    let sub = subscribe(
        &mut ws,
        1,
        json!({"kind": "transaction", "hash": tx.to_hex()}),
    )
    .await;
    let first = notification_of(&recv(&mut ws).await, &sub);
    assert_eq!(first, json!({"status": "pending"}));
    server.mock.publish(3, vec![Hash([1; 32])], vec![]);
    server.mock.publish(4, vec![Hash([2; 32]), tx], vec![]);
    let fin = notification_of(&recv(&mut ws).await, &sub);
    assert_eq!(fin["status"], json!("finalized"), "{fin}");
    assert_eq!(fin["height"], json!(4));
    assert_eq!(fin["index"], json!(1));
    // The subscription ended with its terminal status.
    let r = call(&mut ws, 2, "unsubscribe", json!([sub])).await;
    assert_eq!(r["result"], json!(false));
    assert_eq!(server.stats.subscriptions(), 0);

    // A rejected transaction: its first status is terminal, and nothing stays open.
    let bad = Hash([0x78; 32]);
    server.mock.txs.lock().unwrap().insert(
        bad,
        serde_json::from_value(json!({"status": "pending"})).unwrap(),
    );
    let sub = subscribe(&mut ws, 3, json!(["transaction", bad.to_hex()])).await;
    assert_eq!(
        notification_of(&recv(&mut ws).await, &sub)["status"],
        json!("pending")
    );
    // The status the backend reports once the transaction is dropped (unknown fields are
    // ignored, so this reads under either name of the reason field).
    let rejected: TxStatus = serde_json::from_value(
        json!({"status": "rejected", "code": "expired", "reason": "expired", "message": "expired"}),
    )
    .unwrap();
    server.mock.txs.lock().unwrap().insert(bad, rejected);
    // Re-checked within TX_STATUS_RECHECK_BLOCKS blocks.
    for h in 10..10 + cairn_rpc::ws::TX_STATUS_RECHECK_BLOCKS {
        server.mock.publish(h, vec![], vec![]);
    }
    let end = notification_of(&recv(&mut ws).await, &sub);
    assert_eq!(end["status"], json!("rejected"), "{end}");
    let r = call(&mut ws, 4, "unsubscribe", json!([sub])).await;
    assert_eq!(r["result"], json!(false));
    server.handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn account_changes_are_notified() {
    let server = start(|_| {}, 64).await;
    server.mock.accounts.lock().unwrap().insert(ALICE, (100, 0));
    *server.mock.height.lock().unwrap() = 5;
    let mut ws = server.connect().await;
    let sub = subscribe(
        &mut ws,
        1,
        json!({"kind": "account", "address": ALICE.to_string()}),
    )
    .await;
    let first = notification_of(&recv(&mut ws).await, &sub);
    assert_eq!(
        first,
        json!({"address": ALICE.to_string(), "balance": 100, "nonce": 0, "height": 5})
    );
    // A block that does not touch the account, then one that does.
    server.mock.publish(6, vec![], vec![Address([3; 32])]);
    server.mock.accounts.lock().unwrap().insert(ALICE, (90, 1));
    server
        .mock
        .publish(7, vec![Hash([1; 32])], vec![Address([3; 32]), ALICE]);
    let change = notification_of(&recv(&mut ws).await, &sub);
    assert_eq!(
        change,
        json!({"address": ALICE.to_string(), "balance": 90, "nonce": 1, "height": 7})
    );
    server.handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn bounds_are_refused_with_clear_errors() {
    let server = start(
        |c| {
            c.ws_connections_max = 2;
            c.ws_subscriptions_per_connection_max = 2;
            c.ws_subscriptions_max = 3;
        },
        64,
    )
    .await;
    let mut a = server.connect().await;
    let mut b = server.connect().await;
    // A third connection is refused before the upgrade.
    match tokio_tungstenite::connect_async(server.ws_url()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 503);
            let body: Value = serde_json::from_slice(response.body().as_deref().unwrap()).unwrap();
            assert_eq!(body["error"]["code"], json!(-32005));
            assert_eq!(
                body["error"]["data"]["reason"],
                json!("too_many_connections")
            );
        }
        other => panic!("third connection not refused: {other:?}"),
    }
    assert_eq!(server.stats.connections_refused(), 1);
    subscribe(&mut a, 1, json!({"kind": "blocks"})).await;
    subscribe(&mut a, 2, json!({"kind": "blocks"})).await;
    let r = call(&mut a, 3, "subscribe", json!({"kind": "blocks"})).await;
    assert_eq!(r["error"]["code"], json!(-32005), "{r}");
    assert_eq!(
        r["error"]["data"]["reason"],
        json!("too_many_subscriptions")
    );
    assert_eq!(
        r["error"]["data"]["bound"],
        json!("ws_subscriptions_per_connection_max")
    );
    subscribe(&mut b, 1, json!({"kind": "blocks"})).await;
    let r = call(&mut b, 2, "subscribe", json!({"kind": "blocks"})).await;
    assert_eq!(
        r["error"]["data"]["bound"],
        json!("ws_subscriptions_max"),
        "{r}"
    );
    assert_eq!(server.stats.subscriptions(), 3);
    // Closing a connection gives its subscriptions back.
    a.close(None).await.unwrap();
    drop(a);
    let deadline = tokio::time::Instant::now() + WAIT;
    while server.stats.subscriptions() != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "subscriptions not released"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    subscribe(&mut b, 3, json!({"kind": "blocks"})).await;
    server.handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn bad_requests_get_errors_and_the_connection_survives() {
    let server = start(|_| {}, 64).await;
    let mut ws = server.connect().await;
    ws.send(Message::Text("{not json".into())).await.unwrap();
    let r = recv(&mut ws).await;
    assert_eq!(r["error"]["code"], json!(-32700), "{r}");
    assert_eq!(r["id"], Value::Null);
    send(
        &mut ws,
        json!([{"jsonrpc": "2.0", "id": 1, "method": "subscribe"}]),
    )
    .await;
    assert_eq!(recv(&mut ws).await["error"]["code"], json!(-32600));
    send(
        &mut ws,
        json!({"jsonrpc": "1.0", "id": 2, "method": "subscribe"}),
    )
    .await;
    let r = recv(&mut ws).await;
    assert_eq!(
        (r["error"]["code"].clone(), r["id"].clone()),
        (json!(-32600), json!(2))
    );
    let r = call(&mut ws, 3, "getStatus", json!([])).await;
    assert_eq!(r["error"]["code"], json!(-32601), "{r}");
    for (i, params) in [
        json!({"kind": "heads"}),
        json!({"kind": "transaction", "hash": "xyz"}),
        json!({"kind": "account", "address": "cairn1bad"}),
        json!({"kind": "blocks", "transactions": "full"}),
        json!({}),
    ]
    .into_iter()
    .enumerate()
    {
        let r = call(&mut ws, 10 + i as u64, "subscribe", params.clone()).await;
        assert_eq!(r["error"]["code"], json!(-32602), "{params}: {r}");
        assert!(r["error"]["data"]["reason"].is_string(), "{params}: {r}");
    }
    ws.send(Message::Binary(vec![1, 2, 3].into()))
        .await
        .unwrap();
    assert_eq!(recv(&mut ws).await["error"]["code"], json!(-32600));
    // Still serving.
    let sub = subscribe(&mut ws, 20, json!({"kind": "blocks"})).await;
    server.mock.publish(1, vec![], vec![]);
    notification_of(&recv(&mut ws).await, &sub);
    assert_eq!(server.stats.subscriptions(), 1);
    server.handle.shutdown().await.unwrap();
}

/// The final frames of a closing connection: the `closing` notification's params and the
/// Close frame's code.
async fn closing_of(ws: &mut Ws) -> (Value, Option<CloseCode>) {
    let mut note = Value::Null;
    loop {
        let m = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("closed in time");
        match m {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if v["method"] == json!("closing") {
                    note = v["params"].clone();
                }
            }
            Some(Ok(Message::Close(frame))) => return (note, frame.map(|f| f.code)),
            Some(Ok(_)) => {}
            None | Some(Err(_)) => return (note, None),
        }
    }
}

#[tokio::test]
async fn oversize_message_closes_with_its_reason() {
    let server = start(|c| c.ws_message_bytes_max = 1024, 64).await;
    let mut ws = server.connect().await;
    // Exactly at the bound: served (a -32602, not a disconnect).
    let pad = "x".repeat(
        1024 - r#"{"jsonrpc":"2.0","id":1,"method":"subscribe","params":{"kind":""}}"#.len(),
    );
    let at_bound =
        format!(r#"{{"jsonrpc":"2.0","id":1,"method":"subscribe","params":{{"kind":"{pad}"}}}}"#);
    assert_eq!(at_bound.len(), 1024);
    ws.send(Message::Text(at_bound.into())).await.unwrap();
    assert_eq!(recv(&mut ws).await["error"]["code"], json!(-32602));
    ws.send(Message::Text("y".repeat(1025).into()))
        .await
        .unwrap();
    let (note, code) = closing_of(&mut ws).await;
    assert_eq!(note["reason"], json!("message_too_big"), "{note}");
    assert_eq!(code, Some(CloseCode::Size));
    server.handle.shutdown().await.unwrap();
}

/// Runs on one thread: the server's tasks do not run while the test publishes, so the
/// connection's broadcast receiver falls behind deterministically.
#[tokio::test(flavor = "current_thread")]
async fn a_connection_behind_the_broadcast_is_told_and_closed() {
    let server = start(|_| {}, 4).await;
    let mut ws = server.connect().await;
    subscribe(&mut ws, 1, json!({"kind": "blocks"})).await;
    for h in 1..=10 {
        server.mock.publish(h, vec![], vec![]);
    }
    let (note, code) = closing_of(&mut ws).await;
    assert_eq!(note["reason"], json!("lagged"), "{note}");
    assert_eq!(code, Some(CloseCode::Again));
    assert_eq!(server.stats.lag_disconnects(), 1);
    assert_eq!(server.stats.subscriptions(), 0);
    server.handle.shutdown().await.unwrap();
}

/// Connects with a small receive buffer, so a client that does not read fills the
/// server's queue soon.
async fn connect_small_buffer(server: &Server) -> Ws {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(server.handle.local_addr()).await.unwrap();
    let (ws, _) = tokio_tungstenite::client_async(
        server.ws_url(),
        tokio_tungstenite::MaybeTlsStream::Plain(stream),
    )
    .await
    .unwrap();
    ws
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_is_disconnected_and_the_others_keep_up() {
    let server = start(|c| c.ws_send_queue_max = 8, 1024).await;
    let mut slow = connect_small_buffer(&server).await;
    let slow_sub = subscribe(
        &mut slow,
        1,
        json!({"kind": "blocks", "transactions": "hashes"}),
    )
    .await;
    let mut fast = server.connect().await;
    let fast_sub = subscribe(
        &mut fast,
        1,
        json!({"kind": "blocks", "transactions": "hashes"}),
    )
    .await;
    // Big notifications (500 hashes, about 33 kB each) fill the slow client's socket soon.
    let txs: Vec<Hash> = (0..500u32)
        .map(|i| {
            let mut h = [0u8; 32];
            h[..4].copy_from_slice(&i.to_be_bytes());
            Hash(h)
        })
        .collect();
    let mut height = 0;
    while server.stats.lag_disconnects() == 0 {
        height += 1;
        assert!(height <= 5000, "the slow consumer was never disconnected");
        server.mock.publish(height, txs.clone(), vec![]);
        // The fast consumer receives every block, in order.
        let n = notification_of(&recv(&mut fast).await, &fast_sub);
        assert_eq!(n["header"]["height"], json!(height));
    }
    // The slow one now reads: blocks in order from 1, then why it was closed.
    let mut expected = 1;
    let (note, code) = loop {
        let m = tokio::time::timeout(WAIT, slow.next())
            .await
            .expect("in time");
        match m {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if v["method"] == json!("closing") {
                    break (v["params"].clone(), None);
                }
                let n = notification_of(&v, &slow_sub);
                assert_eq!(n["header"]["height"], json!(expected));
                expected += 1;
            }
            Some(Ok(Message::Close(f))) => break (Value::Null, f.map(|f| f.code)),
            Some(Ok(_)) => {}
            None | Some(Err(_)) => break (Value::Null, None),
        }
    };
    assert_eq!(note["reason"], json!("send_queue_full"), "{note} {code:?}");
    assert!(expected > 1 && expected <= height, "{expected} of {height}");
    // The fast consumer goes on.
    for _ in 0..5 {
        height += 1;
        server.mock.publish(height, vec![], vec![]);
        let n = notification_of(&recv(&mut fast).await, &fast_sub);
        assert_eq!(n["header"]["height"], json!(height));
    }
    assert_eq!(server.stats.lag_disconnects(), 1);
    assert_eq!(server.stats.connections(), 1);
    server.handle.shutdown().await.unwrap();
}

// ---- The typed client (`WsClient`) and `RpcClient::follow_transaction` ----

fn http_url(server: &Server) -> String {
    format!("http://{}", server.handle.local_addr())
}

#[tokio::test]
async fn ws_client_subscribes_and_decodes_every_kind() {
    use cairn_rpc::{Notification, WsClient};
    let server = start(|_| {}, 64).await;
    let tx = Hash([0x55; 32]);
    server.mock.set_tx(tx, TxStatus::Pending);
    server.mock.accounts.lock().unwrap().insert(ALICE, (90, 2));
    let mut ws = WsClient::connect(&http_url(&server), WAIT).await.unwrap();
    assert_eq!(ws.url(), server.ws_url());
    let blocks = ws.subscribe_blocks(true).await.unwrap();
    let txsub = ws.subscribe_transaction(&tx).await.unwrap();
    let acct = ws.subscribe_account(&ALICE).await.unwrap();
    assert_eq!(
        ws.next(WAIT).await.unwrap(),
        Some(Notification::Transaction {
            subscription: txsub.clone(),
            status: TxStatus::Pending
        })
    );
    match ws.next(WAIT).await.unwrap() {
        Some(Notification::Account {
            subscription,
            account,
        }) => {
            assert_eq!(subscription, acct);
            assert_eq!(
                (account.address, account.balance, account.nonce),
                (ALICE, 90, 2)
            );
        }
        other => panic!("expected the account's state, got {other:?}"),
    }
    server.mock.publish(7, vec![tx], vec![]);
    // The block and the transaction's finality, in the order the node sent them.
    let mut seen_block = false;
    let mut seen_final = false;
    while !(seen_block && seen_final) {
        match ws.next(WAIT).await.unwrap().expect("in time") {
            Notification::Block {
                subscription,
                block,
            } => {
                assert_eq!(subscription, blocks);
                assert_eq!(block.header.height, 7);
                assert_eq!(block.transaction_hashes, Some(vec![tx]));
                seen_block = true;
            }
            Notification::Transaction {
                subscription,
                status,
            } => {
                assert_eq!(subscription, txsub);
                assert!(
                    matches!(
                        status,
                        TxStatus::Finalized {
                            height: 7,
                            index: 0,
                            ..
                        }
                    ),
                    "{status:?}"
                );
                seen_final = true;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    // Nothing else is due: `next` says so when its time is up.
    assert_eq!(ws.next(Duration::from_millis(50)).await.unwrap(), None);
    assert!(ws.unsubscribe(&blocks).await.unwrap());
    assert!(!ws.unsubscribe(&txsub).await.unwrap(), "ended by itself");
    // A bad request is the node's JSON-RPC error, and the connection stays usable.
    let err = ws
        .request::<String>("subscribe", json!({"kind": "nonsense"}))
        .await
        .unwrap_err();
    assert_eq!(err.rpc_code(), Some(-32602), "{err}");
    assert!(ws.unsubscribe(&acct).await.unwrap());
    server.handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn ws_client_reports_a_refused_upgrade_and_a_closing_node() {
    use cairn_rpc::{ClientError, Notification, WsClient};
    // WebSocket turned off: the upgrade is refused with HTTP 503.
    let off = start(|c| c.ws_connections_max = 0, 64).await;
    match WsClient::connect(&http_url(&off), WAIT).await {
        Err(ClientError::Http { status, .. }) => assert_eq!(status, 503),
        other => panic!("expected HTTP 503, got {other:?}"),
    }
    off.handle.shutdown().await.unwrap();
    // Nothing listening: a transport error.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    match WsClient::connect(&format!("http://{addr}"), WAIT).await {
        Err(e @ ClientError::Transport { .. }) => assert!(e.is_transient()),
        other => panic!("expected a transport error, got {other:?}"),
    }
    // A node that shuts down says so, then the connection ends.
    let server = start(|_| {}, 64).await;
    let mut ws = WsClient::connect(&http_url(&server), WAIT).await.unwrap();
    ws.subscribe_blocks(false).await.unwrap();
    // Shutdown waits (a bounded while) for the client to take its Close frame: read meanwhile.
    let stopping = tokio::spawn(server.handle.shutdown());
    match ws.next(WAIT).await {
        Ok(Some(Notification::Closing { reason, .. })) => assert_eq!(reason, "shutdown"),
        other => panic!("expected a closing notification, got {other:?}"),
    }
    assert!(matches!(
        ws.next(WAIT).await,
        Err(ClientError::Transport { .. })
    ));
    stopping.await.unwrap().unwrap();
}

#[tokio::test]
async fn follow_transaction_uses_the_websocket_and_reports_each_change() {
    use cairn_rpc::{FollowedVia, RpcClient};
    let server = start(|_| {}, 64).await;
    let tx = Hash([0x66; 32]);
    server.mock.set_tx(tx, TxStatus::Pending);
    let client = RpcClient::new(&http_url(&server)).unwrap();
    let mock = server.mock.clone();
    let stats = server.stats.clone();
    let finalizer = tokio::spawn(async move {
        // Finalize once the subscription is open (the status is then learned from the block).
        while stats.subscriptions() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        mock.publish(9, vec![Hash([1; 32]), tx], vec![]);
    });
    let mut seen = Vec::new();
    let (status, via) = client
        .follow_transaction(
            &tx,
            WAIT.as_millis() as u64,
            10,
            |s| seen.push(s.label()),
            |e| panic!("fell back to polling: {e}"),
        )
        .await
        .unwrap();
    finalizer.await.unwrap();
    assert_eq!(via, FollowedVia::WebSocket);
    assert!(
        matches!(
            status,
            TxStatus::Finalized {
                height: 9,
                index: 1,
                ..
            }
        ),
        "{status:?}"
    );
    assert_eq!(seen, ["pending", "finalized"]);
    server.handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn follow_transaction_falls_back_to_polling_without_websocket() {
    use cairn_rpc::{ClientError, FollowedVia, RpcClient};
    let server = start(|c| c.ws_connections_max = 0, 64).await;
    let tx = Hash([0x67; 32]);
    server.mock.set_tx(tx, TxStatus::Pending);
    let client = RpcClient::new(&http_url(&server)).unwrap();
    let mock = server.mock.clone();
    let finalizer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let status = TxStatus::Finalized {
            height: 3,
            index: 0,
            block_hash: Hash([3; 32]),
        };
        mock.set_tx(tx, status);
    });
    let mut seen = Vec::new();
    let mut fallbacks = Vec::new();
    let (status, via) = client
        .follow_transaction(
            &tx,
            WAIT.as_millis() as u64,
            10,
            |s| seen.push(s.label()),
            |e| fallbacks.push(e.to_string()),
        )
        .await
        .unwrap();
    finalizer.await.unwrap();
    assert_eq!(via, FollowedVia::Polling);
    assert!(matches!(status, TxStatus::Finalized { height: 3, .. }));
    assert_eq!(seen, ["pending", "finalized"], "each change once");
    assert_eq!(fallbacks.len(), 1);
    assert!(fallbacks[0].contains("503"), "{}", fallbacks[0]);

    // A transaction that never becomes final: the timeout names the last status.
    let stuck = Hash([0x68; 32]);
    server.mock.set_tx(stuck, TxStatus::Pending);
    match client
        .follow_transaction(&stuck, 200, 20, |_| {}, |_| {})
        .await
    {
        Err(ClientError::FinalityTimeout {
            timeout_ms,
            last_status,
            ..
        }) => {
            assert_eq!(timeout_ms, 200);
            assert_eq!(last_status, "pending");
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    server.handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn follow_transaction_times_out_over_the_websocket_too() {
    use cairn_rpc::{ClientError, RpcClient};
    let server = start(|_| {}, 64).await;
    let stuck = Hash([0x69; 32]);
    server.mock.set_tx(stuck, TxStatus::Pending);
    let client = RpcClient::new(&http_url(&server)).unwrap();
    match client
        .follow_transaction(&stuck, 300, 20, |_| {}, |e| panic!("fell back: {e}"))
        .await
    {
        Err(ClientError::FinalityTimeout { last_status, .. }) => {
            assert_eq!(last_status, "pending")
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    server.handle.shutdown().await.unwrap();
}
