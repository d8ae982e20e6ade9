//! Typed JSON-RPC client (reqwest, plain HTTP).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cairn_ledger::{Address, Hash, SignedTransaction};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::error::codes;
use crate::{AccountInfo, BlockHashesInfo, BlockInfo, PeerInfo, Status, TxStatus, ValidatorInfo};

/// Default bound on one HTTP exchange.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest response body the client reads (a node answering more is treated as malformed).
pub const RESPONSE_BYTES_MAX: usize = 32 * 1024 * 1024;
/// Shortest poll interval [`RpcClient::wait_for_finality`] uses.
pub const POLL_MS_MIN: u64 = 10;

/// Why a client call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The URL given to [`RpcClient::new`] is unusable.
    #[error("invalid RPC URL `{url}`: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No answer: connection refused or reset, DNS failure, timeout. Transient.
    #[error("cannot reach node at {url}: {message}")]
    Transport {
        /// The node URL.
        url: String,
        /// The underlying failure, innermost cause last.
        message: String,
    },
    /// The node answered with an HTTP error and no JSON-RPC body (413 body too large,
    /// 503 timed out, 404 wrong URL, …).
    #[error("node at {url} answered HTTP {status}: {message}")]
    Http {
        /// The node URL.
        url: String,
        /// HTTP status code.
        status: u16,
        /// Reason phrase and the start of the body, if any.
        message: String,
    },
    /// The node answered with a JSON-RPC error object.
    #[error("{}", rpc_display(*.code, .message))]
    Rpc {
        /// JSON-RPC error code (see [`crate::codes`]).
        code: i64,
        /// The node's message.
        message: String,
        /// The node's structured detail (for a rejection: `{"reason": code}`).
        data: Option<Value>,
    },
    /// The answer is not a JSON-RPC 2.0 response of the expected shape.
    #[error("malformed response from {url}: {message}")]
    Malformed {
        /// The node URL.
        url: String,
        /// What is wrong with it.
        message: String,
    },
    /// [`RpcClient::wait_for_finality`] ran out of time.
    #[error("transaction {hash} not final after {timeout_ms} ms (last status: {last_status})")]
    FinalityTimeout {
        /// The transaction.
        hash: Hash,
        /// How long it waited.
        timeout_ms: u64,
        /// The last status seen (`pending`, `unknown`) or the last transient error.
        last_status: String,
    },
}

/// [`ClientError::InvalidUrl`] for `url`.
pub(crate) fn invalid_url(url: &str, reason: &str) -> ClientError {
    ClientError::InvalidUrl {
        url: url.to_string(),
        reason: reason.to_string(),
    }
}

/// Parses a node URL as given by a user, `http://` assumed when no scheme is given.
pub(crate) fn parse_url(url: &str) -> Result<reqwest::Url, ClientError> {
    let trimmed = url.trim();
    let full = if trimmed.contains("://") {
        trimmed.to_string()
    } else {
        format!("http://{trimmed}")
    };
    reqwest::Url::parse(&full).map_err(|e| invalid_url(url, &e.to_string()))
}

fn rpc_display(code: i64, message: &str) -> String {
    if code == codes::REJECTED {
        message.to_string()
    } else {
        format!("node error {code}: {message}")
    }
}

impl ClientError {
    /// The JSON-RPC error code, for [`ClientError::Rpc`].
    pub fn rpc_code(&self) -> Option<i64> {
        match self {
            ClientError::Rpc { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The stable reason code of a JSON-RPC error (`data.reason`, which every error of a
    /// current node carries: `invalid_params`, `bad_hex`, `overloaded`, …).
    pub fn reason(&self) -> Option<&str> {
        match self {
            ClientError::Rpc {
                data: Some(data), ..
            } => data.get("reason").and_then(Value::as_str),
            _ => None,
        }
    }

    /// For a rejected transaction (code -32010): the stable reason code from
    /// `data.reason`, e.g. `insufficient_balance`.
    pub fn rejection_reason(&self) -> Option<&str> {
        match self {
            ClientError::Rpc {
                code,
                data: Some(data),
                ..
            } if *code == codes::REJECTED => data.get("reason").and_then(Value::as_str),
            _ => None,
        }
    }

    /// Worth retrying: transport failures, HTTP 408/429/502/503/504, and -32005
    /// (overloaded).
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Transport { .. } => true,
            ClientError::Http { status, .. } => matches!(status, 408 | 429 | 502 | 503 | 504),
            ClientError::Rpc { code, .. } => *code == codes::OVERLOADED,
            _ => false,
        }
    }
}

/// A JSON-RPC client for one node. Cheap to share: calls take `&self`.
#[derive(Debug)]
pub struct RpcClient {
    http: reqwest::Client,
    url: String,
    timeout: Duration,
    next_id: AtomicU64,
}

impl RpcClient {
    /// A client for `url` (e.g. `http://127.0.0.1:8545`; `http://` is assumed when no
    /// scheme is given) with [`DEFAULT_TIMEOUT`].
    pub fn new(url: &str) -> Result<RpcClient, ClientError> {
        RpcClient::with_timeout(url, DEFAULT_TIMEOUT)
    }

    /// A client whose every HTTP exchange is bounded by `timeout`.
    pub fn with_timeout(url: &str, timeout: Duration) -> Result<RpcClient, ClientError> {
        let bad = |reason: &str| invalid_url(url, reason);
        let parsed = parse_url(url)?;
        match parsed.scheme() {
            "http" => {}
            "https" => {
                return Err(bad(
                    "https is not supported (this build has no TLS); use http://",
                ));
            }
            other => {
                return Err(bad(&format!(
                    "scheme `{other}` is not supported; use http://"
                )));
            }
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(bad("no host"));
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| bad(&format!("cannot build HTTP client: {e}")))?;
        Ok(RpcClient {
            http,
            url: parsed.to_string(),
            timeout,
            next_id: AtomicU64::new(1),
        })
    }

    /// The node URL (normalized).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The per-exchange timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Calls `method` with `params` (a JSON array or object, or `Value::Null` for none)
    /// and decodes the result.
    pub async fn call<R: DeserializeOwned>(
        &self,
        method: &str,
        params: Value,
    ) -> Result<R, ClientError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut request = json!({ "jsonrpc": "2.0", "method": method, "id": id });
        if !params.is_null() {
            request["params"] = params;
        }
        let response = self
            .http
            .post(&self.url)
            .json(&request)
            .send()
            .await
            .map_err(|e| self.transport(&e))?;
        let status = response.status();
        let body = self.read_body(response).await?;
        let parsed: Option<Value> = serde_json::from_slice(&body).ok();
        let Some(Value::Object(obj)) = parsed else {
            if !status.is_success() {
                return Err(ClientError::Http {
                    url: self.url.clone(),
                    status: status.as_u16(),
                    message: http_message(status, &body),
                });
            }
            return Err(self.malformed(format!("not a JSON object: {}", snippet(&body))));
        };
        if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
            return Err(self.malformed("missing `jsonrpc: \"2.0\"`".into()));
        }
        if let Some(err) = obj.get("error").filter(|e| !e.is_null()) {
            let code = err.get("code").and_then(Value::as_i64);
            let message = err.get("message").and_then(Value::as_str);
            let (Some(code), Some(message)) = (code, message) else {
                return Err(self.malformed(format!("bad error object: {err}")));
            };
            return Err(ClientError::Rpc {
                code,
                message: message.to_string(),
                data: err.get("data").cloned(),
            });
        }
        if obj.get("id") != Some(&json!(id)) {
            return Err(self.malformed(format!(
                "response id {:?} does not match request id {id}",
                obj.get("id")
            )));
        }
        let Some(result) = obj.get("result") else {
            return Err(self.malformed("neither `result` nor `error`".into()));
        };
        R::deserialize(result)
            .map_err(|e| self.malformed(format!("unexpected result for {method}: {e}")))
    }

    /// `getStatus`.
    pub async fn status(&self) -> Result<Status, ClientError> {
        self.call("getStatus", Value::Null).await
    }

    /// `getAccount`.
    pub async fn account(&self, address: &Address) -> Result<AccountInfo, ClientError> {
        self.call("getAccount", json!({ "address": address })).await
    }

    /// `getBalance`.
    pub async fn balance(&self, address: &Address) -> Result<u64, ClientError> {
        self.call("getBalance", json!({ "address": address })).await
    }

    /// `sendTransaction`. Checks that the node's hash is the transaction's hash.
    pub async fn send_transaction(&self, tx: &SignedTransaction) -> Result<Hash, ClientError> {
        let hash: Hash = self
            .call("sendTransaction", json!({ "tx": hex::encode(tx.encode()) }))
            .await?;
        if hash != tx.hash() {
            return Err(self.malformed(format!(
                "node returned hash {hash} for transaction {}",
                tx.hash()
            )));
        }
        Ok(hash)
    }

    /// `sendTransactions`: submits up to [`crate::SEND_TRANSACTIONS_MAX`] transactions in one
    /// call; one [`crate::SubmitResult`] per transaction, in order. Checks that the node
    /// answered for exactly these transactions (same count, same hashes).
    pub async fn send_transactions(
        &self,
        txs: &[SignedTransaction],
    ) -> Result<Vec<crate::SubmitResult>, ClientError> {
        let hexes: Vec<String> = txs.iter().map(|t| hex::encode(t.encode())).collect();
        let results: Vec<crate::SubmitResult> = self
            .call("sendTransactions", json!({ "txs": hexes }))
            .await?;
        if results.len() != txs.len() {
            return Err(self.malformed(format!(
                "node answered {} results for {} transactions",
                results.len(),
                txs.len()
            )));
        }
        if let Some((r, t)) = results.iter().zip(txs).find(|(r, t)| r.hash != t.hash()) {
            return Err(self.malformed(format!(
                "node returned hash {} for transaction {}",
                r.hash,
                t.hash()
            )));
        }
        Ok(results)
    }

    /// `getFinalization`: the finalization certificate of the block at `height`, or `None`.
    pub async fn finalization(
        &self,
        height: u64,
    ) -> Result<Option<crate::FinalizationInfo>, ClientError> {
        self.call("getFinalization", json!({ "height": height }))
            .await
    }

    /// `getTransaction`.
    pub async fn transaction(&self, hash: &Hash) -> Result<TxStatus, ClientError> {
        self.call("getTransaction", json!({ "hash": hash })).await
    }

    /// `getBlock` by height (`None`: no such block yet).
    pub async fn block_by_height(&self, height: u64) -> Result<Option<BlockInfo>, ClientError> {
        self.call("getBlock", json!({ "height": height })).await
    }

    /// `getBlock` by height with transaction hashes only (`None`: no such finalized block).
    pub async fn block_hashes_by_height(
        &self,
        height: u64,
    ) -> Result<Option<BlockHashesInfo>, ClientError> {
        self.call(
            "getBlock",
            json!({ "height": height, "transactions": "hashes" }),
        )
        .await
    }

    /// `getBlock` by hash (`None`: unknown).
    pub async fn block_by_hash(&self, hash: &Hash) -> Result<Option<BlockInfo>, ClientError> {
        self.call("getBlock", json!({ "hash": hash })).await
    }

    /// `getBlockSummaries`: up to `count` (1..=[`crate::BLOCK_SUMMARIES_MAX`]) finalized
    /// blocks in brief, ascending, from height `from` (`None`: the latest ones).
    pub async fn block_summaries(
        &self,
        from: Option<u64>,
        count: u64,
    ) -> Result<Vec<crate::BlockSummary>, ClientError> {
        self.call(
            "getBlockSummaries",
            json!({ "count": count, "fromHeight": from }),
        )
        .await
    }

    /// `getThroughput`.
    pub async fn throughput(&self) -> Result<crate::Throughput, ClientError> {
        self.call("getThroughput", Value::Null).await
    }

    /// `getValidators`.
    pub async fn validators(&self) -> Result<Vec<ValidatorInfo>, ClientError> {
        self.call("getValidators", Value::Null).await
    }

    /// `getValidators` at a height or epoch (`None`: an epoch the chain has not reached).
    pub async fn validators_at(
        &self,
        at: crate::ValidatorsAt,
    ) -> Result<Option<Vec<ValidatorInfo>>, ClientError> {
        let params = match at {
            crate::ValidatorsAt::Current => Value::Null,
            crate::ValidatorsAt::Height(height) => json!({ "height": height }),
            crate::ValidatorsAt::Epoch(epoch) => json!({ "epoch": epoch }),
        };
        self.call("getValidators", params).await
    }

    /// `getEpochProof` (`None`: the epoch has not ended, or the node lacks its proof).
    pub async fn epoch_proof(
        &self,
        epoch: u64,
    ) -> Result<Option<crate::EpochProofInfo>, ClientError> {
        self.call("getEpochProof", json!({ "epoch": epoch })).await
    }

    /// `getPeers`.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>, ClientError> {
        self.call("getPeers", Value::Null).await
    }

    /// `getGovernance`: the governance record at the latest finalized block (`None` for a
    /// chain without one).
    pub async fn governance(
        &self,
    ) -> Result<Option<cairn_ledger::governance::Governance>, ClientError> {
        self.call("getGovernance", Value::Null).await
    }

    /// `getEvidence`.
    pub async fn evidence(&self) -> Result<Vec<crate::EvidenceInfo>, ClientError> {
        self.call("getEvidence", Value::Null).await
    }

    /// Polls `getTransaction` every `poll_ms` (at least [`POLL_MS_MIN`]) until the status
    /// is terminal (finalized or rejected) and returns it. Transient errors are retried
    /// until the deadline; other errors are returned at once. After `timeout_ms`:
    /// [`ClientError::FinalityTimeout`].
    pub async fn wait_for_finality(
        &self,
        hash: &Hash,
        timeout_ms: u64,
        poll_ms: u64,
    ) -> Result<TxStatus, ClientError> {
        let start = tokio::time::Instant::now();
        let deadline = start + Duration::from_millis(timeout_ms);
        let poll = Duration::from_millis(poll_ms.max(POLL_MS_MIN));
        let mut last_status = "none yet".to_string();
        loop {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(remaining, self.transaction(hash)).await {
                Ok(Ok(status)) if status.is_terminal() => return Ok(status),
                Ok(Ok(status)) => last_status = status.label().to_string(),
                Ok(Err(e)) if e.is_transient() => last_status = e.to_string(),
                Ok(Err(e)) => return Err(e),
                Err(_elapsed) => {}
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(ClientError::FinalityTimeout {
                    hash: *hash,
                    timeout_ms,
                    last_status,
                });
            }
            tokio::time::sleep(poll.min(deadline - now)).await;
        }
    }

    async fn read_body(&self, mut response: reqwest::Response) -> Result<Vec<u8>, ClientError> {
        if response
            .content_length()
            .is_some_and(|n| n > RESPONSE_BYTES_MAX as u64)
        {
            return Err(self.malformed(format!("response larger than {RESPONSE_BYTES_MAX} bytes")));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.transport(&e))? {
            if body.len() + chunk.len() > RESPONSE_BYTES_MAX {
                return Err(
                    self.malformed(format!("response larger than {RESPONSE_BYTES_MAX} bytes"))
                );
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    fn transport(&self, e: &reqwest::Error) -> ClientError {
        let message = if e.is_timeout() {
            format!("timed out after {} ms", self.timeout.as_millis())
        } else {
            // reqwest's own text is generic ("error sending request"); the innermost
            // cause says what happened ("Connection refused (os error 111)").
            let mut cause: &dyn std::error::Error = e;
            while let Some(next) = cause.source() {
                cause = next;
            }
            strip_os_error(&cause.to_string()).to_lowercase()
        };
        ClientError::Transport {
            url: self.url.clone(),
            message,
        }
    }

    fn malformed(&self, message: String) -> ClientError {
        ClientError::Malformed {
            url: self.url.clone(),
            message,
        }
    }
}

/// `"Connection refused (os error 111)"` → `"Connection refused"`.
fn strip_os_error(s: &str) -> &str {
    match s.rfind(" (os error ") {
        Some(pos) if s.ends_with(')') => &s[..pos],
        _ => s,
    }
}

fn snippet(body: &[u8]) -> String {
    const MAX: usize = 200;
    let text = String::from_utf8_lossy(&body[..body.len().min(MAX)]);
    let text = text.trim();
    if text.is_empty() {
        "empty body".to_string()
    } else if body.len() > MAX {
        format!("{text}…")
    } else {
        text.to_string()
    }
}

fn http_message(status: reqwest::StatusCode, body: &[u8]) -> String {
    let reason = status.canonical_reason().unwrap_or("unknown status");
    if body.is_empty() {
        reason.to_string()
    } else {
        format!("{reason}: {}", snippet(body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_normalization_and_rejection() {
        assert_eq!(
            RpcClient::new("127.0.0.1:8545").unwrap().url(),
            "http://127.0.0.1:8545/"
        );
        assert_eq!(
            RpcClient::new("http://localhost:1/").unwrap().url(),
            "http://localhost:1/"
        );
        for bad in ["https://x:1", "ftp://x", "http://", "http://[::1"] {
            assert!(
                matches!(RpcClient::new(bad), Err(ClientError::InvalidUrl { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn error_helpers() {
        let rej = ClientError::Rpc {
            code: codes::REJECTED,
            message: "transaction rejected: stale_nonce: x".into(),
            data: Some(json!({"reason": "stale_nonce"})),
        };
        assert_eq!(rej.rejection_reason(), Some("stale_nonce"));
        assert_eq!(rej.to_string(), "transaction rejected: stale_nonce: x");
        assert!(!rej.is_transient());
        let other = ClientError::Rpc {
            code: -32602,
            message: "bad".into(),
            data: Some(json!({"reason": "x"})),
        };
        assert_eq!(other.rejection_reason(), None);
        assert_eq!(other.reason(), Some("x"));
        assert_eq!(rej.reason(), Some("stale_nonce"));
        assert_eq!(other.to_string(), "node error -32602: bad");
        assert!(
            ClientError::Rpc {
                code: codes::OVERLOADED,
                message: String::new(),
                data: None
            }
            .is_transient()
        );
        assert!(
            ClientError::Transport {
                url: "u".into(),
                message: "m".into()
            }
            .is_transient()
        );
        assert!(
            ClientError::Http {
                url: "u".into(),
                status: 503,
                message: "m".into()
            }
            .is_transient()
        );
        assert!(
            !ClientError::Http {
                url: "u".into(),
                status: 413,
                message: "m".into()
            }
            .is_transient()
        );
    }
}
