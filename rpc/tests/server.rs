//! The server and the client over real HTTP on 127.0.0.1:0, against a mock backend.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use cairn_ledger::{
    Address, Block, BlockHeader, Hash, SignedTransaction, TX_BYTES_MAX, TransactionBody, txs_root,
};
use cairn_rpc::{
    AccountInfo, BlockInfo, ClientError, EpochProofInfo, PeerInfo, RpcBackend, RpcClient, RpcError,
    RpcServerConfig, RpcServerHandle, Status, TX_HEX_CHARS_MAX, TxStatus, ValidatorInfo,
    ValidatorsAt, async_trait, codes,
};
use ed25519_dalek::SigningKey;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CHAIN: &str = "cairn-test";
/// `getAccount` of this address fails with an internal error.
const BROKEN: Address = Address([0xEE; 32]);
/// `getAccount` of this address fails with not found.
const MISSING: Address = Address([0xDD; 32]);
/// `getTransaction` of this hash is pending for two polls, then finalized.
const SLOW_FINAL: Hash = Hash([0x51; 32]);
/// `getTransaction` of this hash is always pending.
const STUCK: Hash = Hash([0x52; 32]);
/// `getTransaction` of this hash is rejected.
const DROPPED: Hash = Hash([0x53; 32]);
/// Amounts that make `submit_transaction` refuse.
const AMOUNT_REJECTED: u64 = 666;
const AMOUNT_OVERLOADED: u64 = 777;
/// The mock chain's epochs: 0 ended at height 1 (its proof is served), 1 is running; no
/// other epoch exists.
const RUNNING_EPOCH: u64 = 1;

struct Mock {
    submits: AtomicUsize,
    calls: AtomicUsize,
    polls: AtomicUsize,
    /// Milliseconds `getPeers` sleeps.
    peers_delay_ms: AtomicU64,
    block: Block,
    /// Every `validators_at` and `epoch_proof` call, in order.
    epoch_calls: std::sync::Mutex<Vec<String>>,
    /// What `submissions_open` answers.
    open: std::sync::atomic::AtomicBool,
}

impl Mock {
    fn new() -> Arc<Mock> {
        let tx = signed(1, 10);
        let header = BlockHeader {
            chain_id: CHAIN.into(),
            height: 1,
            view: 1,
            parent_hash: Hash([9; 32]),
            proposer: Address([4; 32]),
            timestamp_ms: 1_700_000_000_000,
            txs_root: txs_root(&[tx.hash()]),
            signed_txs_root: cairn_ledger::signed_txs_root_of(std::slice::from_ref(&tx)),
            state_root: Hash([8; 32]),
        };
        Arc::new(Mock {
            submits: AtomicUsize::new(0),
            calls: AtomicUsize::new(0),
            polls: AtomicUsize::new(0),
            peers_delay_ms: AtomicU64::new(0),
            block: Block {
                header,
                transactions: vec![tx],
            },
            epoch_calls: std::sync::Mutex::new(Vec::new()),
            open: std::sync::atomic::AtomicBool::new(true),
        })
    }

    fn alice() -> ValidatorInfo {
        ValidatorInfo {
            name: "alice".into(),
            address: Address([4; 32]),
            peer_id: "12D3KooWalice".into(),
            voting_power: 1,
        }
    }

    fn bob() -> ValidatorInfo {
        ValidatorInfo {
            name: "bob".into(),
            address: Address([5; 32]),
            peer_id: "12D3KooWbob".into(),
            voting_power: 1,
        }
    }

    /// Epoch 0's proof: it ended at the mock's block (height 1); epoch 1 added bob.
    fn epoch_0_proof(&self) -> EpochProofInfo {
        EpochProofInfo {
            epoch: 0,
            boundary_height: 1,
            boundary_hash: self.block.hash(),
            validators: vec![Mock::alice()],
            next_validators: vec![Mock::alice(), Mock::bob()],
            proof: "00ff".into(),
        }
    }

    fn epoch_calls(&self) -> Vec<String> {
        self.epoch_calls.lock().unwrap().clone()
    }

    fn status_value(&self) -> Status {
        Status {
            chain_id: CHAIN.into(),
            genesis_hash: Hash([1; 32]),
            latest_height: 1,
            latest_hash: self.block.hash(),
            latest_state_root: Hash([8; 32]),
            peer_count: 1,
            syncing: false,
            node_version: "0.1.0".into(),
            rpc_version: cairn_rpc::RPC_VERSION,
            validator_name: Some("alice".into()),
            epoch: RUNNING_EPOCH,
            view: 4,
            mempool_txs: 2,
            finality_latency_ms: Some(350),
            lowest_retained_height: 0,
            upcoming_leaders: Vec::new(),
        }
    }
}

#[async_trait]
impl RpcBackend for Mock {
    fn submissions_open(&self) -> bool {
        self.open.load(Ordering::SeqCst)
    }

    async fn status(&self) -> Result<Status, RpcError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(self.status_value())
    }

    async fn account(&self, address: Address) -> Result<AccountInfo, RpcError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if address == BROKEN {
            return Err(RpcError::internal("disk on fire"));
        }
        if address == MISSING {
            return Err(RpcError::NotFound {
                what: format!("account {address}"),
            });
        }
        Ok(AccountInfo {
            address,
            balance: 1000,
            nonce: 3,
            next_nonce: 3,
            permissions: Default::default(),
        })
    }

    async fn submit_transaction(&self, tx: SignedTransaction) -> Result<Hash, RpcError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.submits.fetch_add(1, Ordering::SeqCst);
        tx.verify(CHAIN)?;
        match tx.body.amount() {
            AMOUNT_REJECTED => Err(RpcError::Rejected {
                code: "insufficient_balance".into(),
                message: "amount + fee = 667 exceeds balance 5".into(),
            }),
            AMOUNT_OVERLOADED => Err(RpcError::Overloaded {
                message: "mempool full".into(),
            }),
            _ => Ok(tx.hash()),
        }
    }

    async fn transaction(&self, hash: Hash) -> Result<TxStatus, RpcError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let finalized = TxStatus::Finalized {
            height: 1,
            index: 0,
            block_hash: self.block.hash(),
        };
        Ok(match hash {
            SLOW_FINAL => {
                if self.polls.fetch_add(1, Ordering::SeqCst) < 2 {
                    TxStatus::Pending
                } else {
                    finalized
                }
            }
            STUCK => TxStatus::Pending,
            DROPPED => TxStatus::Rejected {
                reason: "expired".into(),
                message: "expired at height 5".into(),
            },
            h if h == self.block.transactions[0].hash() => finalized,
            _ => TxStatus::Unknown,
        })
    }

    async fn block_by_height(&self, height: u64) -> Result<Option<Block>, RpcError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok((height == 1).then(|| self.block.clone()))
    }

    async fn block_by_hash(&self, hash: Hash) -> Result<Option<Block>, RpcError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok((hash == self.block.hash()).then(|| self.block.clone()))
    }

    async fn validators(&self) -> Result<Vec<ValidatorInfo>, RpcError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(vec![Mock::alice()])
    }

    async fn validators_at(
        &self,
        at: ValidatorsAt,
    ) -> Result<Option<Vec<ValidatorInfo>>, RpcError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.epoch_calls.lock().unwrap().push(format!("{at:?}"));
        let epoch = match at {
            ValidatorsAt::Current => RUNNING_EPOCH,
            // Block 1, the boundary, is epoch 0's last; later heights are not final.
            ValidatorsAt::Height(h) if h <= 1 => 0,
            ValidatorsAt::Height(_) => return Ok(None),
            ValidatorsAt::Epoch(e) => e,
        };
        Ok(match epoch {
            0 => Some(vec![Mock::alice()]),
            RUNNING_EPOCH => Some(vec![Mock::alice(), Mock::bob()]),
            _ => None,
        })
    }

    async fn epoch_proof(&self, epoch: u64) -> Result<Option<EpochProofInfo>, RpcError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.epoch_calls
            .lock()
            .unwrap()
            .push(format!("epoch_proof({epoch})"));
        Ok((epoch == 0).then(|| self.epoch_0_proof()))
    }

    /// Block 1's certificate carries validators 0 (alice) and 3 (not in the set).
    async fn finalization(
        &self,
        height: u64,
    ) -> Result<Option<cairn_rpc::FinalizationInfo>, RpcError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok((height == 1).then(|| cairn_rpc::FinalizationInfo {
            height,
            block_hash: self.block.hash(),
            view: 1,
            signers: vec![0, 3],
            certificate: "00".into(),
        }))
    }

    async fn peers(&self) -> Result<Vec<PeerInfo>, RpcError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let delay = self.peers_delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        Ok(vec![PeerInfo {
            peer_id: "12D3KooWbob".into(),
            address: Some("/ip4/127.0.0.1/tcp/7000".into()),
            is_validator: true,
            direction: Some("outbound".into()),
            admission: None,
            score: None,
            found: Some("configured".into()),
            path: Some("direct".into()),
        }])
    }
}

fn key() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

fn signed(nonce: u64, amount: u64) -> SignedTransaction {
    let k = key();
    TransactionBody {
        chain_id: CHAIN.into(),
        sender: Address::from_public_key(&k.verifying_key()),
        fee: 1,
        nonce,
        expiry_height: 100,
        action: cairn_ledger::Action::Transfer {
            recipient: Address([2; 32]),
            amount,
        },
    }
    .sign(&k)
}

fn test_config() -> RpcServerConfig {
    RpcServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..RpcServerConfig::default()
    }
}

async fn start_with(config: RpcServerConfig) -> (RpcServerHandle, Arc<Mock>, RpcClient) {
    let mock = Mock::new();
    let handle = cairn_rpc::spawn(config, mock.clone())
        .await
        .expect("server starts");
    let client = RpcClient::new(&handle.url()).unwrap();
    (handle, mock, client)
}

async fn start() -> (RpcServerHandle, Arc<Mock>, RpcClient) {
    start_with(test_config()).await
}

/// POSTs `body` as is; returns the status and the body parsed as JSON (Null if empty).
async fn post_raw(url: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("request sent");
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.unwrap();
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    (status, value)
}

async fn call_raw(url: &str, request: Value) -> Value {
    let (status, body) = post_raw(url, request.to_string()).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// A JSON-RPC error with `code`, a message and a stable snake_case `data.reason` (one error
/// shape everywhere, issue 15).
fn assert_error(resp: &Value, code: i64) {
    assert_eq!(resp["jsonrpc"], "2.0", "{resp}");
    assert_eq!(resp["error"]["code"], code, "{resp}");
    let reason = resp["error"]["data"]["reason"].as_str();
    assert!(
        reason.is_some_and(
            |r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
        ),
        "no snake_case data.reason: {resp}"
    );
    assert!(
        resp["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{resp}"
    );
    assert!(resp.get("result").is_none(), "{resp}");
}

fn req(method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
}

#[tokio::test]
async fn client_round_trips_every_method() {
    let (server, mock, client) = start().await;
    let status = client.status().await.unwrap();
    assert_eq!(status, mock.status_value());

    let addr = Address([3; 32]);
    assert_eq!(
        client.account(&addr).await.unwrap(),
        AccountInfo {
            address: addr,
            balance: 1000,
            nonce: 3,
            next_nonce: 3,
            permissions: Default::default(),
        }
    );
    assert_eq!(client.balance(&addr).await.unwrap(), 1000);

    let tx = signed(3, 5);
    assert_eq!(client.send_transaction(&tx).await.unwrap(), tx.hash());
    assert_eq!(mock.submits.load(Ordering::SeqCst), 1);

    let in_block = mock.block.transactions[0].hash();
    assert_eq!(
        client.transaction(&in_block).await.unwrap(),
        TxStatus::Finalized {
            height: 1,
            index: 0,
            block_hash: mock.block.hash()
        }
    );
    assert_eq!(client.transaction(&STUCK).await.unwrap(), TxStatus::Pending);
    assert_eq!(
        client.transaction(&Hash([0; 32])).await.unwrap(),
        TxStatus::Unknown
    );
    assert!(matches!(
        client.transaction(&DROPPED).await.unwrap(),
        TxStatus::Rejected { .. }
    ));

    let expected = BlockInfo::from(&mock.block);
    assert_eq!(
        client.block_by_height(1).await.unwrap(),
        Some(expected.clone())
    );
    assert_eq!(client.block_by_height(2).await.unwrap(), None);
    assert_eq!(
        client.block_hashes_by_height(1).await.unwrap(),
        Some(cairn_rpc::BlockHashesInfo::from(&mock.block))
    );
    assert_eq!(client.block_hashes_by_height(2).await.unwrap(), None);
    assert_eq!(
        client.block_by_hash(&mock.block.hash()).await.unwrap(),
        Some(expected.clone())
    );
    assert_eq!(client.block_by_hash(&Hash([0; 32])).await.unwrap(), None);
    assert_eq!(expected.transactions[0].hash, in_block);
    assert_eq!(expected.transactions[0].amount, 10);

    assert_eq!(client.validators().await.unwrap()[0].name, "alice");
    assert_eq!(client.peers().await.unwrap()[0].peer_id, "12D3KooWbob");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn result_json_shapes() {
    let (server, mock, _client) = start().await;
    let url = server.url();
    let r = call_raw(&url, req("getStatus", json!(null))).await;
    assert_eq!(r["id"], 1);
    assert_eq!(r["result"]["chainId"], CHAIN);
    assert_eq!(r["result"]["latestHeight"], 1);
    assert_eq!(r["result"]["validatorName"], "alice");

    let r = call_raw(&url, req("getBalance", json!([Address([3; 32])]))).await;
    assert_eq!(r["result"], json!(1000));

    let r = call_raw(&url, req("getBlock", json!({"height": 1}))).await;
    let block = &r["result"];
    assert_eq!(block["hash"], mock.block.hash().to_hex());
    assert_eq!(block["header"]["height"], 1);
    // camelCase header (issue 15), nothing snake_case left.
    assert_eq!(block["header"]["parentHash"], Hash([9; 32]).to_hex());
    assert_eq!(block["header"]["timestampMs"], 1_700_000_000_000u64);
    for key in [
        "parentHash",
        "txsRoot",
        "signedTxsRoot",
        "stateRoot",
        "chainId",
    ] {
        assert!(block["header"].get(key).is_some(), "missing {key}: {block}");
    }
    assert!(block["header"].get("parent_hash").is_none(), "{block}");
    let t = &block["transactions"][0];
    for key in [
        "hash",
        "sender",
        "recipient",
        "amount",
        "fee",
        "nonce",
        "expiryHeight",
        "chainId",
        "signature",
        "raw",
    ] {
        assert!(t.get(key).is_some(), "missing {key} in {t}");
    }
    // The raw bytes are the signed transaction: re-verifiable by the client.
    let raw = hex::decode(t["raw"].as_str().unwrap()).unwrap();
    let back = SignedTransaction::decode(&raw).unwrap();
    assert_eq!(back, mock.block.transactions[0]);
    back.verify(CHAIN).unwrap();
    assert_eq!(t["signature"], hex::encode(back.signature));
    let r = call_raw(&url, req("getBlock", json!([99]))).await;
    assert_eq!(r["result"], Value::Null);
    assert!(r.get("error").is_none());
    // Hashes only, named and positional: the same block, no transaction bodies.
    let tx_hashes: Vec<Value> = mock
        .block
        .transactions
        .iter()
        .map(|t| json!(t.hash().to_hex()))
        .collect();
    assert!(!tx_hashes.is_empty());
    for params in [
        json!({"height": 1, "transactions": "hashes"}),
        json!([1, "hashes"]),
        json!({"hash": mock.block.hash(), "transactions": "hashes"}),
    ] {
        let r = call_raw(&url, req("getBlock", params.clone())).await;
        let block = &r["result"];
        assert_eq!(block["hash"], mock.block.hash().to_hex(), "{params}");
        assert_eq!(
            block["transactionHashes"],
            Value::Array(tx_hashes.clone()),
            "{params}"
        );
        assert!(block.get("transactions").is_none(), "{params}");
    }
    let r = call_raw(&url, req("getBlock", json!([1, "full"]))).await;
    assert_eq!(r["result"]["transactions"][0]["hash"], tx_hashes[0]);

    let r = call_raw(&url, req("getValidators", json!([]))).await;
    assert_eq!(r["result"][0]["votingPower"], 1);
    assert_eq!(r["result"][0]["peerId"], "12D3KooWalice");
    let r = call_raw(&url, req("getPeers", json!({}))).await;
    assert_eq!(r["result"][0]["isValidator"], true);
    assert_eq!(r["result"][0]["direction"], "outbound");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn positional_and_named_params_agree() {
    let (server, mock, _client) = start().await;
    let url = server.url();
    let addr = Address([3; 32]).to_bech32();
    let tx = signed(3, 5);
    let tx_hex = hex::encode(tx.encode());
    let bh = mock.block.hash().to_hex();
    let cases = [
        ("getAccount", json!([addr]), json!({"address": addr})),
        ("getBalance", json!([addr]), json!({"address": addr})),
        ("sendTransaction", json!([tx_hex]), json!({"tx": tx_hex})),
        (
            "sendTransaction",
            json!([format!("0x{tx_hex}")]),
            json!({"tx": tx_hex}),
        ),
        (
            "getTransaction",
            json!([STUCK.to_hex()]),
            json!({"hash": STUCK.to_hex()}),
        ),
        ("getBlock", json!([1]), json!({"height": 1})),
        ("getBlock", json!([bh]), json!({"hash": bh})),
    ];
    for (method, positional, named) in cases {
        let a = call_raw(&url, req(method, positional)).await;
        let b = call_raw(&url, req(method, named)).await;
        assert!(a.get("result").is_some(), "{method}: {a}");
        assert_eq!(a, b, "{method}");
    }
    let r = call_raw(&url, req("sendTransaction", json!([tx_hex]))).await;
    assert_eq!(r["result"], tx.hash().to_hex());
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn standard_error_codes() {
    let (server, mock, _client) = start().await;
    let url = server.url();

    // -32700: not JSON. id is null.
    let (status, r) = post_raw(&url, "{\"jsonrpc\": \"2.0\", ").await;
    assert_eq!(status, 200);
    assert_error(&r, codes::PARSE_ERROR);
    assert_eq!(r["id"], Value::Null);

    // -32600: not a request object.
    for (bad, echo) in [
        (json!(1), Value::Null),
        (json!("getStatus"), Value::Null),
        (
            json!({"jsonrpc": "1.0", "method": "getStatus", "id": 7}),
            json!(7),
        ),
        (json!({"method": "getStatus", "id": 7}), json!(7)),
        (
            json!({"jsonrpc": "2.0", "method": "getStatus", "id": [7]}),
            Value::Null,
        ),
        (
            json!({"jsonrpc": "2.0", "method": "getStatus", "id": true}),
            Value::Null,
        ),
        (json!({"jsonrpc": "2.0", "method": 5, "id": 7}), json!(7)),
        (
            json!({"jsonrpc": "2.0", "method": "getStatus", "params": "x", "id": 7}),
            json!(7),
        ),
        (json!([]), Value::Null),
    ] {
        let r = call_raw(&url, bad.clone()).await;
        assert_error(&r, codes::INVALID_REQUEST);
        assert_eq!(r["id"], echo, "{bad}");
    }

    // -32601
    let r = call_raw(&url, req("getEverything", json!([]))).await;
    assert_error(&r, codes::METHOD_NOT_FOUND);
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("getEverything")
    );

    // -32602
    for (method, params, needle) in [
        ("getStatus", json!([1]), "takes no params"),
        ("getAccount", json!([]), "missing param `address`"),
        ("getAccount", json!(["cairn1qqqq"]), "address"),
        ("getAccount", json!({"addr": "x"}), "unknown param `addr`"),
        ("getAccount", json!([Address([3; 32]), 2]), "at most 1"),
        ("getBalance", json!([42]), "must be a string"),
        ("getTransaction", json!(["abcd"]), "hash"),
        ("getBlock", json!([]), "getBlock expects"),
        ("getBlock", json!([-1]), "non-negative integer"),
        (
            "getBlock",
            json!({"height": 1, "hash": "00"}),
            "getBlock expects",
        ),
        (
            "getBlock",
            json!({"height": 1, "transactions": "bodies"}),
            "transactions: must be",
        ),
        ("getBlock", json!([1, true]), "transactions: must be"),
        ("getBlock", json!([1, "hashes", 3]), "getBlock expects"),
        ("sendTransaction", json!({}), "missing param `tx`"),
    ] {
        let r = call_raw(&url, req(method, params.clone())).await;
        assert_error(&r, codes::INVALID_PARAMS);
        let msg = r["error"]["message"].as_str().unwrap();
        assert!(msg.contains(needle), "{method} {params}: {msg}");
    }

    // -32603 from the backend.
    let r = call_raw(&url, req("getAccount", json!([BROKEN]))).await;
    assert_error(&r, codes::INTERNAL_ERROR);
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("disk on fire")
    );

    // Application codes.
    let r = call_raw(&url, req("getAccount", json!([MISSING]))).await;
    assert_error(&r, codes::NOT_FOUND);
    let r = call_raw(
        &url,
        req(
            "sendTransaction",
            json!([hex::encode(signed(3, AMOUNT_OVERLOADED).encode())]),
        ),
    )
    .await;
    assert_error(&r, codes::OVERLOADED);
    let r = call_raw(
        &url,
        req(
            "sendTransaction",
            json!([hex::encode(signed(3, AMOUNT_REJECTED).encode())]),
        ),
    )
    .await;
    assert_error(&r, codes::REJECTED);
    assert_eq!(
        r["error"]["data"],
        json!({"reason": "insufficient_balance"})
    );
    // The backend's own verdict on a well-formed but wrongly signed transaction.
    let mut forged = signed(3, 5);
    forged.body.fee += 1;
    let r = call_raw(
        &url,
        req("sendTransaction", json!([hex::encode(forged.encode())])),
    )
    .await;
    assert_eq!(r["error"]["data"]["reason"], "bad_signature");
    assert_eq!(mock.submits.load(Ordering::SeqCst), 3);
    server.shutdown().await.unwrap();
}

/// `getValidators` takes `height` or `epoch`, never both; `getEpochProof` needs `epoch`, a
/// non-negative integer. Every bad form is -32602 and never reaches the backend; an epoch
/// that does not exist (not ended, not reached, or past any epoch) is `null`, not an error.
#[tokio::test]
async fn validators_and_epoch_proof_params() {
    let (server, mock, client) = start().await;
    let url = server.url();

    // -32602, the message naming the problem, the backend never asked.
    for (method, params, needle) in [
        (
            "getValidators",
            json!({"height": 1, "epoch": 0}),
            "give `height` or `epoch`, not both",
        ),
        (
            "getValidators",
            json!({"epoch": 0, "height": 1}),
            "give `height` or `epoch`, not both",
        ),
        // Positional params are `[height, epoch]`.
        ("getValidators", json!([1, 0]), "not both"),
        ("getValidators", json!([null, 0]), "not both"),
        (
            "getValidators",
            json!({"height": -1}),
            "height: must be a non-negative integer",
        ),
        (
            "getValidators",
            json!({"height": "1"}),
            "height: must be a non-negative integer",
        ),
        (
            "getValidators",
            json!({"epoch": 1.5}),
            "epoch: must be a non-negative integer",
        ),
        (
            "getValidators",
            json!({"epoch": null}),
            "epoch: must be a non-negative integer",
        ),
        ("getValidators", json!({"view": 1}), "unknown param `view`"),
        (
            "getValidators",
            json!([1, 0, 2]),
            "at most 2 positional params",
        ),
        ("getEpochProof", Value::Null, "missing param `epoch`"),
        ("getEpochProof", json!([]), "missing param `epoch`"),
        ("getEpochProof", json!({}), "missing param `epoch`"),
        (
            "getEpochProof",
            json!({"epoch": "0"}),
            "epoch: must be a non-negative integer",
        ),
        (
            "getEpochProof",
            json!(["0"]),
            "epoch: must be a non-negative integer",
        ),
        (
            "getEpochProof",
            json!({"epoch": -1}),
            "epoch: must be a non-negative integer",
        ),
        (
            "getEpochProof",
            json!({"epoch": 0.5}),
            "epoch: must be a non-negative integer",
        ),
        (
            "getEpochProof",
            json!({"epoch": true}),
            "epoch: must be a non-negative integer",
        ),
        (
            "getEpochProof",
            json!({"epoch": [0]}),
            "epoch: must be a non-negative integer",
        ),
        (
            "getEpochProof",
            json!({"epoch": null}),
            "epoch: must be a non-negative integer",
        ),
        // One past u64::MAX.
        (
            "getEpochProof",
            serde_json::from_str::<Value>(r#"{"epoch": 18446744073709551616}"#).unwrap(),
            "epoch: must be a non-negative integer",
        ),
        (
            "getEpochProof",
            json!({"height": 1}),
            "unknown param `height`",
        ),
        (
            "getEpochProof",
            json!({"epoch": 0, "height": 1}),
            "unknown param `height`",
        ),
        (
            "getEpochProof",
            json!([0, 1]),
            "at most 1 positional params",
        ),
    ] {
        let r = call_raw(&url, req(method, params.clone())).await;
        assert_error(&r, codes::INVALID_PARAMS);
        assert_eq!(r["id"], 1);
        let msg = r["error"]["message"].as_str().unwrap();
        assert!(msg.contains(needle), "{method} {params}: {msg}");
    }
    assert_eq!(
        mock.epoch_calls(),
        Vec::<String>::new(),
        "bad params reached the backend"
    );

    // Epochs that do not exist: `null`, no error.
    for (method, params) in [
        ("getEpochProof", json!({"epoch": RUNNING_EPOCH})),
        ("getEpochProof", json!([7])),
        ("getEpochProof", json!({"epoch": u64::MAX})),
        ("getValidators", json!({"epoch": 7})),
        ("getValidators", json!({"epoch": u64::MAX})),
        ("getValidators", json!({"height": 2})),
    ] {
        let r = call_raw(&url, req(method, params.clone())).await;
        assert!(r.get("error").is_none(), "{method} {params}: {r}");
        assert_eq!(r["result"], Value::Null, "{method} {params}");
    }
    let max = u64::MAX;
    assert_eq!(
        mock.epoch_calls(),
        [
            "epoch_proof(1)".to_string(),
            "epoch_proof(7)".to_string(),
            format!("epoch_proof({max})"),
            "Epoch(7)".to_string(),
            format!("Epoch({max})"),
            "Height(2)".to_string(),
        ]
    );

    // An ended epoch: its proof, the same named and positional; its set by epoch and at
    // its boundary height.
    let named = call_raw(&url, req("getEpochProof", json!({"epoch": 0}))).await;
    let positional = call_raw(&url, req("getEpochProof", json!([0]))).await;
    assert_eq!(named, positional);
    let proof = &named["result"];
    assert_eq!(proof["epoch"], 0);
    assert_eq!(proof["boundaryHeight"], 1);
    assert_eq!(proof["boundaryHash"], mock.block.hash().to_hex());
    assert_eq!(proof["validators"][0]["name"], "alice");
    assert_eq!(proof["nextValidators"][1]["name"], "bob");
    assert_eq!(proof["proof"], "00ff");
    for params in [json!({"epoch": 0}), json!({"height": 1}), json!([1])] {
        let r = call_raw(&url, req("getValidators", params.clone())).await;
        assert_eq!(r["result"], json!([Mock::alice()]), "{params}");
    }
    // No params (or `null` ones): the running epoch's set.
    for params in [Value::Null, json!([]), json!({})] {
        let r = call_raw(&url, req("getValidators", params.clone())).await;
        assert_eq!(r["result"][1]["name"], "bob", "{params}");
    }

    // The typed client: `None` for missing epochs, the error code for bad params.
    assert_eq!(
        client.epoch_proof(0).await.unwrap(),
        Some(mock.epoch_0_proof())
    );
    assert_eq!(client.epoch_proof(RUNNING_EPOCH).await.unwrap(), None);
    assert_eq!(client.epoch_proof(u64::MAX).await.unwrap(), None);
    assert_eq!(
        client.validators_at(ValidatorsAt::Epoch(2)).await.unwrap(),
        None
    );
    assert_eq!(
        client
            .validators_at(ValidatorsAt::Epoch(RUNNING_EPOCH))
            .await
            .unwrap()
            .map(|v| v.len()),
        Some(2)
    );
    let err = client
        .call::<Value>("getValidators", json!({"height": 1, "epoch": 1}))
        .await
        .unwrap_err();
    assert_eq!(err.rpc_code(), Some(codes::INVALID_PARAMS), "{err}");
    let err = client
        .call::<Value>("getEpochProof", json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.rpc_code(), Some(codes::INVALID_PARAMS), "{err}");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn bad_transaction_input_never_reaches_the_backend() {
    let (server, mock, client) = start().await;
    let url = server.url();
    let good = hex::encode(signed(3, 5).encode());
    let mut trailing = good.clone();
    trailing.push_str("00");
    // A chain id over 32 bytes does not decode as a valid transaction either.
    let mut long_chain = signed(3, 5);
    long_chain.body.chain_id = "c".repeat(cairn_ledger::CHAIN_ID_BYTES_MAX + 1);
    let long_chain = long_chain.body.sign(&key());
    let cases = [
        ("z".repeat(10), "not valid hex", "bad_hex"),
        ("abc".to_string(), "not valid hex", "bad_hex"),
        (
            "0".repeat(TX_HEX_CHARS_MAX + 2),
            "more than the limit",
            "oversize",
        ),
        // Oversize and not hex: rejected on length, no decoding attempted.
        (
            "zz".repeat(TX_BYTES_MAX + 1),
            "more than the limit",
            "oversize",
        ),
        ("00".repeat(10), "malformed transaction", "malformed"),
        (
            good[..good.len() - 2].to_string(),
            "malformed transaction",
            "malformed",
        ),
        (trailing, "malformed transaction", "malformed"),
        (String::new(), "malformed transaction", "malformed"),
        (
            hex::encode(long_chain.encode()),
            "chain id of 33 bytes",
            "malformed",
        ),
    ];
    for (hex_str, needle, reason) in cases {
        let r = call_raw(&url, req("sendTransaction", json!([hex_str]))).await;
        assert_error(&r, codes::INVALID_PARAMS);
        assert_eq!(r["error"]["data"], json!({ "reason": reason }), "{r}");
        let msg = r["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains(needle),
            "{}…: {msg}",
            &hex_str[..hex_str.len().min(16)]
        );
    }
    // Non-string tx.
    let r = call_raw(&url, req("sendTransaction", json!([12]))).await;
    assert_error(&r, codes::INVALID_PARAMS);
    assert_eq!(
        mock.submits.load(Ordering::SeqCst),
        0,
        "no bad input reached the backend"
    );

    // The typed client surfaces the same error.
    let err = client
        .call::<Value>("sendTransaction", json!(["zz"]))
        .await
        .unwrap_err();
    assert_eq!(err.rpc_code(), Some(codes::INVALID_PARAMS));
    assert_eq!(err.reason(), Some("bad_hex"));
    assert_eq!(mock.submits.load(Ordering::SeqCst), 0);
    server.shutdown().await.unwrap();
}

/// issue 15: `sendTransactions` items name their refusal `reason` (as `data.reason` of
/// `sendTransaction`), with the same reason codes; `getTransaction`'s rejected status uses
/// `reason` and `message` too; every error carries `data.reason`.
#[tokio::test]
async fn one_error_shape_everywhere() {
    let (server, _mock, _client) = start().await;
    let url = server.url();
    let ok = signed(3, 5);
    let rejected = signed(4, AMOUNT_REJECTED);
    let overloaded = signed(5, AMOUNT_OVERLOADED);
    let txs: Vec<String> = [&ok, &rejected, &overloaded]
        .iter()
        .map(|t| hex::encode(t.encode()))
        .collect();
    let r = call_raw(&url, req("sendTransactions", json!([txs]))).await;
    let items = r["result"].as_array().unwrap_or_else(|| panic!("{r}"));
    assert_eq!(items[0], json!({"hash": ok.hash(), "accepted": true}));
    assert_eq!(items[1]["accepted"], false);
    assert_eq!(items[1]["reason"], "insufficient_balance");
    assert!(items[1]["message"].as_str().unwrap().contains("exceeds"));
    assert_eq!(items[2]["reason"], "overloaded");
    for item in items {
        assert!(item.get("code").is_none(), "no `code` any more: {item}");
    }
    // The same reason as sendTransaction's data.reason.
    let single = call_raw(&url, req("sendTransaction", json!([txs[1]]))).await;
    assert_eq!(single["error"]["data"]["reason"], items[1]["reason"]);

    let r = call_raw(&url, req("getTransaction", json!([DROPPED]))).await;
    assert_eq!(
        r["result"],
        json!({"status": "rejected", "reason": "expired", "message": "expired at height 5"})
    );

    // Every kind of error carries its reason.
    for (request, code, reason) in [
        (
            json!({"jsonrpc": "2.0", "id": 1, "method": "nope"}),
            codes::METHOD_NOT_FOUND,
            "method_not_found",
        ),
        (
            json!({"jsonrpc": "1.0", "id": 1, "method": "getStatus"}),
            codes::INVALID_REQUEST,
            "invalid_request",
        ),
        (
            req("getStatus", json!([1])),
            codes::INVALID_PARAMS,
            "invalid_params",
        ),
        (
            req("getAccount", json!(["cairn1qqqq"])),
            codes::INVALID_PARAMS,
            "bad_address",
        ),
        (
            req("getTransaction", json!(["abcd"])),
            codes::INVALID_PARAMS,
            "bad_hash",
        ),
        (
            req("getAccount", json!([BROKEN])),
            codes::INTERNAL_ERROR,
            "internal",
        ),
        (
            req("getAccount", json!([MISSING])),
            codes::NOT_FOUND,
            "not_found",
        ),
        (
            req(
                "sendTransactions",
                json!([vec!["00"; cairn_rpc::SEND_TRANSACTIONS_MAX + 1]]),
            ),
            codes::INVALID_PARAMS,
            "oversize",
        ),
        (
            req("sendTransactions", json!([[txs[0], "zz"]])),
            codes::INVALID_PARAMS,
            "bad_hex",
        ),
    ] {
        let r = call_raw(&url, request.clone()).await;
        assert_error(&r, code);
        assert_eq!(r["error"]["data"]["reason"], reason, "{request}: {r}");
    }
    let (_, r) = post_raw(&url, "{").await;
    assert_eq!(r["error"]["data"]["reason"], "parse_error", "{r}");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn body_over_the_limit_is_413() {
    let config = RpcServerConfig {
        body_bytes_max: 4096,
        ..test_config()
    };
    let (server, mock, client) = start_with(config).await;
    let url = server.url();
    // With content-length.
    let big = json!({"jsonrpc": "2.0", "id": 1, "method": "getStatus", "params": {"pad": "x".repeat(5000)}});
    let (status, _) = post_raw(&url, big.to_string()).await;
    assert_eq!(status, 413);
    // Just under the limit is processed (and fails on params, not size).
    let ok = json!({"jsonrpc": "2.0", "id": 1, "method": "getStatus", "params": {"pad": "x".repeat(3900)}});
    assert!(ok.to_string().len() < 4096);
    let r = call_raw(&url, ok).await;
    assert_error(&r, codes::INVALID_PARAMS);

    // Chunked, no content-length: the limit applies while reading.
    let addr = server.local_addr();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let chunk = "x".repeat(3000);
    let raw = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{len:x}\r\n{chunk}\r\n{len:x}\r\n{chunk}\r\n0\r\n\r\n",
        len = chunk.len()
    );
    stream.write_all(raw.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response)).await;
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");

    // The typed client reports it as an HTTP error.
    let big_tx_call = client
        .call::<Value>("getStatus", json!({"pad": "x".repeat(5000)}))
        .await
        .unwrap_err();
    assert!(
        matches!(big_tx_call, ClientError::Http { status: 413, .. }),
        "{big_tx_call:?}"
    );
    assert_eq!(mock.calls.load(Ordering::SeqCst), 0);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn batches() {
    let config = RpcServerConfig {
        batch_requests_max: 5,
        ..test_config()
    };
    let (server, mock, _client) = start_with(config).await;
    let url = server.url();
    let tx_hex = hex::encode(signed(3, 5).encode());
    let batch = json!([
        {"jsonrpc": "2.0", "id": "a", "method": "getBalance", "params": [Address([3; 32])]},
        {"jsonrpc": "2.0", "method": "sendTransaction", "params": [tx_hex]},
        7,
        {"jsonrpc": "2.0", "id": 2, "method": "nope"},
        {"jsonrpc": "2.0", "id": null, "method": "getStatus"},
    ]);
    let r = call_raw(&url, batch).await;
    let items = r.as_array().expect("batch answer is an array");
    assert_eq!(items.len(), 4, "{r}");
    assert_eq!(items[0]["id"], "a");
    assert_eq!(items[0]["result"], 1000);
    assert_error(&items[1], codes::INVALID_REQUEST);
    assert_eq!(items[1]["id"], Value::Null);
    assert_error(&items[2], codes::METHOD_NOT_FOUND);
    assert_eq!(items[2]["id"], 2);
    assert_eq!(items[3]["id"], Value::Null);
    assert_eq!(items[3]["result"]["chainId"], CHAIN);
    assert_eq!(
        mock.submits.load(Ordering::SeqCst),
        1,
        "the notification in the batch ran"
    );

    // Only notifications: 204, no body.
    let notes = json!([
        {"jsonrpc": "2.0", "method": "getStatus"},
        {"jsonrpc": "2.0", "method": "getPeers"},
    ]);
    let (status, body) = post_raw(&url, notes.to_string()).await;
    assert_eq!((status, body), (204, Value::Null));

    // Over the bound: one error, nothing executed.
    let before = mock.calls.load(Ordering::SeqCst);
    let big: Vec<Value> = (0..6)
        .map(|i| json!({"jsonrpc": "2.0", "id": i, "method": "getStatus"}))
        .collect();
    let r = call_raw(&url, Value::Array(big)).await;
    assert_error(&r, codes::INVALID_REQUEST);
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("limit of 5")
    );
    assert_eq!(mock.calls.load(Ordering::SeqCst), before);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn notifications_run_but_get_no_body() {
    let (server, mock, _client) = start().await;
    let url = server.url();
    let tx_hex = hex::encode(signed(3, 5).encode());
    let (status, body) = post_raw(
        &url,
        json!({"jsonrpc": "2.0", "method": "sendTransaction", "params": [tx_hex]}).to_string(),
    )
    .await;
    assert_eq!((status, body), (204, Value::Null));
    assert_eq!(mock.submits.load(Ordering::SeqCst), 1);
    // Even a failing notification is silent.
    let (status, body) = post_raw(
        &url,
        json!({"jsonrpc": "2.0", "method": "nope"}).to_string(),
    )
    .await;
    assert_eq!((status, body), (204, Value::Null));
    // A string id is echoed as is.
    let r = call_raw(
        &url,
        json!({"jsonrpc": "2.0", "id": "abc", "method": "getStatus"}),
    )
    .await;
    assert_eq!(r["id"], "abc");
    server.shutdown().await.unwrap();
}

/// While the backend is closed to submissions, a submission call is refused whole with
/// -32005 `overloaded` before its params are decoded (even garbage params), other methods
/// and malformed envelopes take the normal path, and reopening restores submissions.
#[tokio::test]
async fn closed_backend_refuses_submission_calls_before_decoding() {
    let (server, mock, _client) = start().await;
    let url = server.url();
    let tx_hex = hex::encode(signed(3, 5).encode());
    mock.open.store(false, Ordering::SeqCst);

    for (method, params) in [
        ("sendTransactions", json!({"txs": [tx_hex.clone(), "zz"]})),
        ("sendTransaction", json!(["not hex at all"])),
        ("sendTransactions", json!({"txs": [tx_hex.clone()]})),
    ] {
        let r = call_raw(&url, req(method, params)).await;
        assert_error(&r, -32005);
        assert_eq!(r["error"]["data"]["reason"], "overloaded", "{r}");
        assert_eq!(r["id"], 1, "{r}");
    }
    assert_eq!(
        mock.submits.load(Ordering::SeqCst),
        0,
        "nothing reached the backend"
    );

    // A null id is answered with a null id; a notification gets no body.
    let r = call_raw(
        &url,
        json!({"jsonrpc": "2.0", "id": null, "method": "sendTransaction", "params": [tx_hex]}),
    )
    .await;
    assert_error(&r, -32005);
    assert_eq!(r["id"], Value::Null);
    let (status, body) = post_raw(
        &url,
        json!({"jsonrpc": "2.0", "method": "sendTransaction", "params": [tx_hex]}).to_string(),
    )
    .await;
    assert_eq!((status, body), (204, Value::Null));

    // A malformed envelope is still judged as one.
    let r = call_raw(
        &url,
        json!({"jsonrpc": "1.0", "id": 2, "method": "sendTransaction", "params": [tx_hex]}),
    )
    .await;
    assert_error(&r, -32600);

    // In a batch only the submission is refused; other methods run.
    let (status, body) = post_raw(
        &url,
        json!([
            req("sendTransactions", json!({"txs": [tx_hex]})),
            req("getStatus", json!([]))
        ])
        .to_string(),
    )
    .await;
    assert_eq!(status, 200);
    assert_error(&body[0], -32005);
    assert_eq!(body[1]["result"]["chainId"], CHAIN, "{body}");
    assert_eq!(mock.submits.load(Ordering::SeqCst), 0);

    // Open again: the same call is decoded and submitted.
    mock.open.store(true, Ordering::SeqCst);
    let r = call_raw(&url, req("sendTransactions", json!({"txs": [tx_hex]}))).await;
    assert_eq!(r["result"][0]["accepted"], true, "{r}");
    assert_eq!(mock.submits.load(Ordering::SeqCst), 1);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn health_and_routes() {
    let (server, _mock, _client) = start().await;
    let resp = reqwest::get(format!("{}/health", server.url()))
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap(), json!({"status": "ok"}));
    let resp = reqwest::get(server.url()).await.unwrap();
    assert_eq!(resp.status().as_u16(), 405, "GET / is not JSON-RPC");
    let resp = reqwest::Client::new()
        .post(format!("{}/nope", server.url()))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn slow_requests_time_out_with_503() {
    let config = RpcServerConfig {
        request_timeout_ms: 200,
        ..test_config()
    };
    let (server, mock, client) = start_with(config).await;
    mock.peers_delay_ms.store(3000, Ordering::SeqCst);
    let started = std::time::Instant::now();
    let err = client.peers().await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "timed out promptly"
    );
    assert!(
        matches!(err, ClientError::Http { status: 503, .. }),
        "{err:?}"
    );
    assert!(err.is_transient());
    // The server still answers afterwards.
    assert_eq!(client.status().await.unwrap().chain_id, CHAIN);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn requests_over_the_concurrency_limit_are_shed() {
    let config = RpcServerConfig {
        concurrency_max: 1,
        ..test_config()
    };
    let (server, mock, client) = start_with(config).await;
    mock.peers_delay_ms.store(1500, Ordering::SeqCst);
    let client = Arc::new(client);
    let slow = {
        let client = client.clone();
        tokio::spawn(async move { client.peers().await })
    };
    // Wait until the slow call is inside the backend.
    for _ in 0..100 {
        if mock.calls.load(Ordering::SeqCst) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (status, body) = post_raw(&server.url(), req("getStatus", json!([])).to_string()).await;
    assert_eq!(status, 503);
    assert_error(&body, codes::OVERLOADED);
    let err = client.status().await.unwrap_err();
    assert_eq!(err.rpc_code(), Some(codes::OVERLOADED));
    assert!(err.is_transient());
    // Health is not limited.
    assert_eq!(
        reqwest::get(format!("{}/health", server.url()))
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    assert!(slow.await.unwrap().is_ok());
    // With the permit released, calls go through again.
    assert!(client.status().await.is_ok());
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn client_errors_are_classified() {
    let (server, _mock, client) = start().await;
    // Rejection with its reason code.
    let err = client
        .send_transaction(&signed(3, AMOUNT_REJECTED))
        .await
        .unwrap_err();
    assert_eq!(err.rejection_reason(), Some("insufficient_balance"));
    assert_eq!(
        err.to_string(),
        "transaction rejected: insufficient_balance: amount + fee = 667 exceeds balance 5"
    );
    assert!(!err.is_transient());
    // Method not found.
    let err = client.call::<Value>("nope", Value::Null).await.unwrap_err();
    assert_eq!(err.rpc_code(), Some(codes::METHOD_NOT_FOUND));
    assert_eq!(err.rejection_reason(), None);
    server.shutdown().await.unwrap();

    // Nothing listening.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let down = RpcClient::new(&format!("http://127.0.0.1:{port}")).unwrap();
    let err = down.status().await.unwrap_err();
    assert!(matches!(err, ClientError::Transport { .. }), "{err:?}");
    assert!(err.is_transient());
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("cannot reach node at http://127.0.0.1:{port}/: ")),
        "{text}"
    );
    assert!(text.contains("connection refused"), "{text}");
}

#[tokio::test]
async fn client_detects_malformed_responses() {
    use axum::routing::post;
    async fn spawn_fake(answer: &'static str) -> String {
        let app = axum::Router::new().route("/", post(move || async move { answer }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}")
    }
    for (answer, needle) in [
        ("hello", "not a JSON object"),
        (r#"{"jsonrpc":"2.0","result":1,"id":999}"#, "does not match"),
        (r#"{"jsonrpc":"1.0","result":1,"id":1}"#, "jsonrpc"),
        (r#"{"jsonrpc":"2.0","id":1}"#, "neither"),
        (
            r#"{"jsonrpc":"2.0","result":"x","id":1}"#,
            "unexpected result",
        ),
        (
            r#"{"jsonrpc":"2.0","error":{"code":"x"},"id":1}"#,
            "bad error object",
        ),
    ] {
        let client = RpcClient::new(&spawn_fake(answer).await).unwrap();
        let err = client.balance(&Address([1; 32])).await.unwrap_err();
        assert!(
            matches!(err, ClientError::Malformed { .. }),
            "{answer}: {err:?}"
        );
        assert!(err.to_string().contains(needle), "{answer}: {err}");
    }
    // A node answering a different hash for a transaction is caught.
    let url = spawn_fake(r#"{"jsonrpc":"2.0","result":"0000000000000000000000000000000000000000000000000000000000000000","id":1}"#)
        .await;
    let err = RpcClient::new(&url)
        .unwrap()
        .send_transaction(&signed(1, 1))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("returned hash"), "{err}");
}

#[tokio::test]
async fn wait_for_finality_polls_until_terminal_or_timeout() {
    let (server, mock, client) = start().await;
    let status = client
        .wait_for_finality(&SLOW_FINAL, 5_000, 20)
        .await
        .unwrap();
    assert!(matches!(status, TxStatus::Finalized { height: 1, .. }));
    assert_eq!(
        mock.polls.load(Ordering::SeqCst),
        3,
        "two pending polls, then finalized"
    );

    let status = client.wait_for_finality(&DROPPED, 5_000, 20).await.unwrap();
    assert!(matches!(status, TxStatus::Rejected { ref reason, .. } if reason == "expired"));

    let started = std::time::Instant::now();
    let err = client.wait_for_finality(&STUCK, 300, 50).await.unwrap_err();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    match err {
        ClientError::FinalityTimeout {
            hash,
            timeout_ms,
            last_status,
        } => {
            assert_eq!(
                (hash, timeout_ms, last_status.as_str()),
                (STUCK, 300, "pending")
            );
        }
        other => panic!("{other:?}"),
    }
    server.shutdown().await.unwrap();

    // A node that is gone: transient errors are retried until the deadline.
    let err = client.wait_for_finality(&STUCK, 300, 50).await.unwrap_err();
    match err {
        ClientError::FinalityTimeout { last_status, .. } => {
            assert!(last_status.contains("cannot reach"), "{last_status}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn serve_binds_and_stops_on_shutdown() {
    let (listener, addr) = cairn_rpc::bind(&test_config()).await.unwrap();
    assert_ne!(addr.port(), 0);
    let app = cairn_rpc::router(&test_config(), Mock::new());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        cairn_rpc::serve_listener(listener, &test_config(), app, async move {
            let _ = rx.await;
        })
        .await
    });
    let client = RpcClient::new(&format!("http://{addr}")).unwrap();
    assert_eq!(client.status().await.unwrap().chain_id, CHAIN);
    tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(matches!(
        client.status().await.unwrap_err(),
        ClientError::Transport { .. }
    ));

    // `serve` validates first.
    let bad = RpcServerConfig {
        batch_requests_max: 0,
        ..test_config()
    };
    let err = cairn_rpc::serve(bad, Mock::new(), async {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("batch_requests_max"), "{err}");
    // And reports a taken port.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let cfg = RpcServerConfig {
        listen: taken.local_addr().unwrap(),
        ..test_config()
    };
    let err = cairn_rpc::serve(cfg, Mock::new(), async {})
        .await
        .unwrap_err();
    assert!(
        matches!(err, cairn_rpc::RpcServerError::Bind { .. }),
        "{err:?}"
    );
}

/// `getBlockSummaries` through the backend's default implementation: the block in brief
/// with its certificate's signers as addresses; the bounds on `count` and `fromHeight`.
#[tokio::test]
async fn block_summaries() {
    let (server, mock, client) = start().await;
    let url = server.url();
    let latest = client.block_summaries(None, 1).await.unwrap();
    assert_eq!(latest.len(), 1);
    let b = &latest[0];
    assert_eq!(b.height, 1);
    assert_eq!(b.hash, mock.block.hash());
    assert_eq!(b.view, mock.block.header.view);
    assert_eq!(b.proposer, mock.block.header.proposer);
    assert_eq!(b.timestamp_ms, mock.block.header.timestamp_ms);
    assert_eq!(b.tx_count, 1);
    // Index 3 is not in the set that finalized block 1 (alice only): dropped.
    assert_eq!(b.signers, Some(vec![Mock::alice().address]));
    // From height 1, more asked for than exist: up to the head.
    assert_eq!(client.block_summaries(Some(1), 50).await.unwrap(), latest);
    assert!(client.block_summaries(Some(2), 5).await.unwrap().is_empty());
    // JSON shape.
    let r = call_raw(
        &url,
        json!({"jsonrpc": "2.0", "id": 1, "method": "getBlockSummaries", "params": [1, 1]}),
    )
    .await;
    assert_eq!(
        r["result"][0],
        json!({
            "height": 1,
            "hash": mock.block.hash().to_hex(),
            "view": 1,
            "proposer": mock.block.header.proposer.to_bech32(),
            "timestampMs": 1_700_000_000_000u64,
            "txCount": 1,
            "signers": [Mock::alice().address.to_bech32()],
        })
    );
    for params in [
        json!({}),
        json!({"count": 0}),
        json!({"count": cairn_rpc::BLOCK_SUMMARIES_MAX + 1}),
        json!({"count": -1}),
        json!({"count": "5"}),
        json!({"count": 5, "fromHeight": "1"}),
        json!({"count": 5, "fromHeight": -1}),
        json!({"count": 5, "from": 1}),
        json!([1, 1, 1]),
    ] {
        let calls = mock.calls.load(Ordering::SeqCst);
        let r = call_raw(
            &url,
            json!({"jsonrpc": "2.0", "id": 1, "method": "getBlockSummaries", "params": params}),
        )
        .await;
        assert_error(&r, codes::INVALID_PARAMS);
        assert_eq!(
            mock.calls.load(Ordering::SeqCst),
            calls,
            "{params}: refused before the backend"
        );
    }
    server.shutdown().await.unwrap();
}

/// `GET /dashboard` and its assets: served from the binary with a self-only
/// Content-Security-Policy; the page names the methods it calls, which the server serves.
#[tokio::test]
async fn dashboard_is_served_with_a_strict_policy() {
    let (server, _mock, client) = start().await;
    let url = server.url();
    for (path, mime, body) in [
        (
            "/dashboard",
            "text/html",
            cairn_rpc::dashboard::DASHBOARD_HTML,
        ),
        (
            "/dashboard/dashboard.js",
            "text/javascript",
            cairn_rpc::dashboard::DASHBOARD_JS,
        ),
        (
            "/dashboard/dashboard.css",
            "text/css",
            cairn_rpc::dashboard::DASHBOARD_CSS,
        ),
    ] {
        let resp = reqwest::get(format!("{url}{path}")).await.unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{path}");
        let headers = resp.headers().clone();
        assert_eq!(
            headers["content-type"],
            format!("{mime}; charset=utf-8").as_str(),
            "{path}"
        );
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert_eq!(csp, cairn_rpc::dashboard::CONTENT_SECURITY_POLICY);
        assert!(csp.starts_with("default-src 'none';"), "{csp}");
        for directive in csp.split(';').map(str::trim) {
            let mut words = directive.split_whitespace();
            let name = words.next().unwrap();
            for source in words {
                assert!(
                    ["'self'", "'none'", "data:"].contains(&source),
                    "{name} allows {source}"
                );
            }
        }
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(resp.text().await.unwrap(), body, "{path}");
    }
    assert_eq!(
        reqwest::get(format!("{url}/dashboard/nope.js"))
            .await
            .unwrap()
            .status()
            .as_u16(),
        404
    );
    // Every method the page calls exists.
    let js = cairn_rpc::dashboard::DASHBOARD_JS;
    let mut called = 0;
    for part in js.split('"').skip(1).step_by(2) {
        if part.starts_with("get") && part.chars().all(|c| c.is_ascii_alphanumeric()) {
            assert!(cairn_rpc::METHODS.contains(&part), "{part} is not served");
            called += 1;
        }
    }
    assert!(called >= 6, "the page calls {called} methods");
    // getThroughput through the backend's default: no bins.
    let t = client.throughput().await.unwrap();
    assert_eq!((t.bin_ms, t.bins.len()), (1000, 0));
    server.shutdown().await.unwrap();
}
