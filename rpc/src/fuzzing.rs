//! Fuzzing entry points for what a JSON-RPC client can send: a request body through the
//! real router ([`crate::router`]: body limit, JSON parse, batch and request validation,
//! dispatch), and one method's params through the dispatcher.
//!
//! Not part of the API: called by the cargo-fuzz targets `rpc_body` and `rpc_params` in
//! `fuzz/` and by `tests/fuzz_corpus.rs`, which replays the committed corpus
//! `fuzz/corpus/<target>/` on stable. Both never panic on any input and `assert!` the
//! properties in their docs. The backend is an in-memory stub that never fails, so an
//! internal error (-32603) is always a finding. See `docs/fuzzing.md`.

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use cairn_ledger::{Address, Block, Hash, SignedTransaction};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::methods::{Params, TX_HEX_CHARS_MAX, dispatch};
use crate::{
    AccountInfo, METHODS, PeerInfo, RpcBackend, RpcError, RpcServerConfig, SEND_TRANSACTIONS_MAX,
    Status, TxStatus, ValidatorInfo, codes,
};

/// `body_bytes_max` of the fuzzed router: [`crate::BODY_BYTES_MIN`] (4 KiB), so the fuzzer
/// reaches the bound.
pub const FUZZ_BODY_BYTES_MAX: usize = crate::BODY_BYTES_MIN;

/// `batch_requests_max` of the fuzzed router (small, so the fuzzer reaches the bound).
pub const FUZZ_BATCH_REQUESTS_MAX: usize = 8;

/// A backend that answers from constants and never fails.
struct Stub {
    block: Block,
}

#[async_trait]
impl RpcBackend for Stub {
    async fn status(&self) -> Result<Status, RpcError> {
        Ok(Status {
            chain_id: "cairn-fuzz".into(),
            genesis_hash: Hash([1; 32]),
            latest_height: 1,
            latest_hash: self.block.hash(),
            latest_state_root: Hash([2; 32]),
            peer_count: 0,
            syncing: false,
            node_version: "fuzz".into(),
            rpc_version: crate::RPC_VERSION,
            validator_name: None,
            epoch: 0,
            view: 0,
            mempool_txs: 0,
            finality_latency_ms: None,
            lowest_retained_height: 0,
            upcoming_leaders: Vec::new(),
        })
    }
    async fn account(&self, address: Address) -> Result<AccountInfo, RpcError> {
        Ok(AccountInfo {
            address,
            balance: 5,
            nonce: 1,
            next_nonce: 1,
            permissions: Default::default(),
        })
    }
    async fn submit_transaction(&self, tx: SignedTransaction) -> Result<Hash, RpcError> {
        Ok(tx.hash())
    }
    async fn transaction(&self, _hash: Hash) -> Result<TxStatus, RpcError> {
        Ok(TxStatus::Unknown)
    }
    /// The one block at every height up to the head (1), so that `getBlockSummaries`
    /// finds every block it asks for.
    async fn block_by_height(&self, height: u64) -> Result<Option<Block>, RpcError> {
        Ok((height <= 1).then(|| self.block.clone()))
    }
    async fn block_by_hash(&self, hash: Hash) -> Result<Option<Block>, RpcError> {
        Ok((hash == self.block.hash()).then(|| self.block.clone()))
    }
    async fn validators(&self) -> Result<Vec<ValidatorInfo>, RpcError> {
        Ok(vec![ValidatorInfo {
            name: "v0".into(),
            address: Address([3; 32]),
            peer_id: "12D3KooW".into(),
            voting_power: 1,
        }])
    }
    async fn peers(&self) -> Result<Vec<PeerInfo>, RpcError> {
        Ok(Vec::new())
    }
}

fn stub() -> Arc<Stub> {
    static STUB: OnceLock<Arc<Stub>> = OnceLock::new();
    STUB.get_or_init(|| {
        let tx = cairn_ledger::fuzzing::seeds("signed_transaction")
            .first()
            .and_then(|b| SignedTransaction::decode(b).ok());
        Arc::new(Stub {
            block: cairn_ledger::fuzzing::sample_block(tx.into_iter().collect()),
        })
    })
    .clone()
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a current-thread runtime")
    })
}

fn router() -> axum::Router {
    static ROUTER: OnceLock<axum::Router> = OnceLock::new();
    ROUTER
        .get_or_init(|| {
            let config = RpcServerConfig {
                body_bytes_max: FUZZ_BODY_BYTES_MAX,
                batch_requests_max: FUZZ_BATCH_REQUESTS_MAX,
                ..RpcServerConfig::default()
            };
            crate::router(&config, stub())
        })
        .clone()
}

/// Asserts that `v` is one JSON-RPC 2.0 response object answering a request, and returns
/// its error code if it is an error.
fn check_response(v: &Value) -> Option<i64> {
    let obj = v.as_object().expect("a response is an object");
    assert_eq!(obj.get("jsonrpc"), Some(&json!("2.0")));
    assert!(obj.contains_key("id"), "response without id");
    let id = &obj["id"];
    assert!(
        id.is_null() || id.is_string() || id.is_number(),
        "bad id {id}"
    );
    match (obj.get("result"), obj.get("error")) {
        (Some(_), None) => None,
        (None, Some(e)) => {
            let code = e["code"].as_i64().expect("error code is an integer");
            assert!(e["message"].is_string(), "error without message");
            // One error shape everywhere: a stable snake_case `data.reason`.
            assert!(
                e["data"]["reason"].as_str().is_some_and(|r| !r.is_empty()
                    && r.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')),
                "error without a snake_case data.reason: {v}"
            );
            assert!(
                [
                    codes::PARSE_ERROR,
                    codes::INVALID_REQUEST,
                    codes::METHOD_NOT_FOUND,
                    codes::INVALID_PARAMS,
                    codes::NOT_FOUND,
                    codes::REJECTED,
                ]
                .contains(&code),
                "unexpected error code {code}: {v}"
            );
            Some(code)
        }
        _ => panic!("response must have exactly one of result and error: {v}"),
    }
}

/// A request body `POST /` through the real router (body limit [`FUZZ_BODY_BYTES_MAX`],
/// batch limit [`FUZZ_BATCH_REQUESTS_MAX`]).
///
/// A body over the limit gets 413 (never parsed); otherwise the answer is 200 with a JSON
/// body or 204 with none (all notifications). Not JSON → one -32700 error with id null.
/// An array → an array of at most as many well-formed responses (empty or over the limit:
/// one -32600 error). Anything else → one well-formed response (or 204 for a notification).
/// No answer is ever -32603 (the stub backend never fails) or any code outside the
/// documented ones.
pub fn rpc_body(data: &[u8]) {
    let request = Request::builder()
        .method("POST")
        .uri("/")
        .header("host", "127.0.0.1:8545")
        .header("content-type", "application/json")
        .body(Body::from(data.to_vec()))
        .expect("a valid request");
    let (status, body) = runtime().block_on(async {
        let response = router().oneshot(request).await.expect("infallible");
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 24)
            .await
            .expect("a response body");
        (status, body)
    });
    if data.len() > FUZZ_BODY_BYTES_MAX {
        assert_eq!(
            status,
            StatusCode::PAYLOAD_TOO_LARGE,
            "body past the limit served"
        );
        return;
    }
    // Syntax only (numbers are not converted): valid JSON that `Value` cannot hold (a
    // number like 1e400) is still JSON, and a server may answer it either way.
    let syntactic = serde_json::from_slice::<serde::de::IgnoredAny>(data).is_ok();
    let parsed: Option<Value> = serde_json::from_slice(data).ok();
    if status == StatusCode::NO_CONTENT {
        assert!(body.is_empty());
        assert!(syntactic, "a parse error must be answered");
        return;
    }
    assert_eq!(
        status,
        StatusCode::OK,
        "unexpected status for {} bytes",
        data.len()
    );
    let Ok(answer) = serde_json::from_slice::<Value>(&body) else {
        // Only an echoed id that `Value` cannot hold (e.g. 1e400) makes the answer so.
        assert!(
            serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_ok(),
            "the answer is not JSON"
        );
        assert!(
            parsed.is_none(),
            "an answer to plain JSON must be plain JSON"
        );
        return;
    };
    if !syntactic {
        assert_eq!(check_response(&answer), Some(codes::PARSE_ERROR));
        assert!(answer["id"].is_null());
        return;
    }
    if parsed.is_none() && check_response_code(&answer) == Some(codes::PARSE_ERROR) {
        return; // a server that parses into `Value` refuses out-of-range numbers
    }
    let is_batch = data.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
    if is_batch {
        let items = serde_json::from_slice::<Vec<serde::de::IgnoredAny>>(data)
            .expect("a syntactically valid array")
            .len();
        if items == 0 || items > FUZZ_BATCH_REQUESTS_MAX {
            assert_eq!(check_response(&answer), Some(codes::INVALID_REQUEST));
        } else {
            let answers = answer.as_array().expect("a batch is answered by an array");
            assert!(!answers.is_empty() && answers.len() <= items);
            for a in answers {
                check_response(a);
            }
        }
    } else {
        check_response(&answer);
    }
}

/// The error code of `v` if it is a single error response object.
fn check_response_code(v: &Value) -> Option<i64> {
    v.as_object()?.get("error")?.get("code")?.as_i64()
}

/// One method's params through the dispatcher: the first byte picks a method of
/// [`METHODS`], the rest is the params as JSON text (`null`/absent, an array or an object;
/// other JSON values and non-JSON are not params and are skipped).
///
/// Every answer is a result or -32602 / -32004 (never "method not found" for a served
/// method, never an internal error with the stub backend); a `sendTransaction` that
/// succeeds had a transaction hex string of at most [`TX_HEX_CHARS_MAX`] characters (after
/// an optional `0x`), and a `sendTransactions` that succeeds had at most
/// [`SEND_TRANSACTIONS_MAX`] of them, each within the same bound.
pub fn rpc_params(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let method = METHODS[usize::from(pick) % METHODS.len()];
    let value: Value = if rest.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(rest) {
            Ok(v) => v,
            Err(_) => return,
        }
    };
    let params = match value.clone() {
        Value::Null => Params::None,
        Value::Array(v) => Params::Positional(v),
        Value::Object(m) => Params::Named(m),
        _ => return,
    };
    let backend = stub();
    let result = runtime().block_on(dispatch(backend.as_ref(), method, params));
    match result {
        Err(e) => assert!(
            [codes::INVALID_PARAMS, codes::NOT_FOUND].contains(&e.code),
            "{method}: unexpected error {} {}",
            e.code,
            e.message
        ),
        Ok(_) => {
            let arg = |name: &str| match &value {
                Value::Array(v) => v.first().cloned(),
                Value::Object(m) => m.get(name).cloned(),
                _ => None,
            };
            let within = |s: &str| s.strip_prefix("0x").unwrap_or(s).len() <= TX_HEX_CHARS_MAX;
            if method == "sendTransaction" {
                let tx = arg("tx").expect("accepted without a tx");
                assert!(within(tx.as_str().expect("tx is a string")));
            }
            if method == "sendTransactions" {
                let txs = arg("txs").expect("accepted without txs");
                let txs = txs.as_array().expect("txs is an array");
                assert!(txs.len() <= SEND_TRANSACTIONS_MAX);
                for t in txs {
                    assert!(within(t.as_str().expect("each tx is a string")));
                }
            }
        }
    }
}

/// Seed inputs for `target` (`rpc_body` or `rpc_params`): a request to every method with
/// valid params (single and batched) for the body target, and valid params of each method
/// for the params target. `tests/fuzz_corpus.rs` writes them to `fuzz/corpus/<target>/`
/// when run with `CAIRN_FUZZ_WRITE_SEEDS=1`.
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    let tx_hex = cairn_ledger::fuzzing::seeds("signed_transaction")
        .first()
        .map(hex::encode)
        .unwrap_or_default();
    let address = Address([3; 32]).to_string();
    let block_hash = stub().block.hash().to_string();
    let params: Vec<(&str, Value)> = vec![
        ("getStatus", Value::Null),
        ("getAccount", json!([address])),
        ("getBalance", json!({ "address": address })),
        ("sendTransaction", json!([tx_hex])),
        (
            "sendTransactions",
            json!({ "txs": [tx_hex, format!("0x{tx_hex}")] }),
        ),
        (
            "getTransaction",
            json!({ "hash": Hash([4; 32]).to_string() }),
        ),
        ("getBlock", json!({ "height": 1, "transactions": "hashes" })),
        ("getBlock", json!([block_hash])),
        ("getValidators", json!([])),
        ("getPeers", json!({})),
        ("getEvidence", Value::Null),
        ("getFinalization", json!([1])),
        ("getBlockSummaries", json!({ "count": 2, "fromHeight": 0 })),
    ];
    match target {
        "rpc_body" => {
            let mut out: Vec<Vec<u8>> = params
                .iter()
                .enumerate()
                .map(|(i, (m, p))| {
                    json!({ "jsonrpc": "2.0", "id": i, "method": m, "params": p })
                        .to_string()
                        .into_bytes()
                })
                .collect();
            out.push(
                json!([
                    { "jsonrpc": "2.0", "id": "a", "method": "getStatus" },
                    { "jsonrpc": "2.0", "method": "getPeers" },
                    { "jsonrpc": "2.0", "id": null, "method": "nope", "params": [] }
                ])
                .to_string()
                .into_bytes(),
            );
            out
        }
        "rpc_params" => params
            .iter()
            .map(|(m, p)| {
                let index = METHODS
                    .iter()
                    .position(|x| x == m)
                    .expect("a served method");
                let mut bytes = vec![index as u8];
                if !p.is_null() {
                    bytes.extend(p.to_string().into_bytes());
                }
                bytes
            })
            .collect(),
        _ => Vec::new(),
    }
}
