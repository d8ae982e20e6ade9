//! Typed client for the node's WebSocket subscriptions (`GET /ws`; docs/wire-format.md,
//! "WebSocket subscriptions", is the contract), and [`RpcClient::follow_transaction`], which
//! follows a transaction to a terminal status over WebSocket and falls back to polling
//! `getTransaction` when the node offers no WebSocket.
//!
//! A [`WsClient`] owns one connection. Requests (`subscribe`, `unsubscribe`) are answered in
//! order on the same socket as notifications, so notifications that arrive while a request
//! waits for its answer are kept, up to [`WS_PENDING_NOTIFICATIONS_MAX`], and handed out by
//! [`WsClient::next`] first. Every message the client reads is bounded by
//! [`RESPONSE_BYTES_MAX`], checked from the frame header before it is read.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use cairn_ledger::{Address, Hash};
use futures::{SinkExt, StreamExt};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::client::{
    ClientError, POLL_MS_MIN, RESPONSE_BYTES_MAX, RpcClient, invalid_url, parse_url,
};
use crate::error::codes;
use crate::{AccountNotification, BlockNotification, TxStatus};

/// Most notifications a [`WsClient`] keeps while it waits for the answer to a request; a
/// node that sends more before answering is treated as malformed.
pub const WS_PENDING_NOTIFICATIONS_MAX: usize = 4096;

/// What a subscription was made for; decides how its notifications are decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubscriptionKind {
    /// Finalized blocks.
    Blocks,
    /// One transaction's status.
    Transaction,
    /// One account's balance and nonce.
    Account,
}

/// One message from the node that is not an answer to a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notification {
    /// A finalized block, for a `blocks` subscription.
    Block {
        /// The subscription id `subscribe` returned.
        subscription: String,
        /// The block's hash, header, transaction count and (if asked) hashes (boxed: the
        /// header is large next to the other variants).
        block: Box<BlockNotification>,
    },
    /// A transaction's status, for a `transaction` subscription. After a terminal status
    /// (finalized, rejected) the subscription has ended on the node's side.
    Transaction {
        /// The subscription id.
        subscription: String,
        /// The status, as `getTransaction` returns it.
        status: TxStatus,
    },
    /// An account's state, for an `account` subscription.
    Account {
        /// The subscription id.
        subscription: String,
        /// Balance and nonce as of a finalized height.
        account: AccountNotification,
    },
    /// The node is closing the connection (`reason`: `send_queue_full`, `lagged`,
    /// `message_too_big`, `shutdown`); nothing follows.
    Closing {
        /// The stable reason code.
        reason: String,
        /// The node's explanation.
        message: String,
    },
}

/// A WebSocket connection to one node's `/ws`.
pub struct WsClient {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    url: String,
    timeout: Duration,
    next_id: u64,
    kinds: HashMap<String, SubscriptionKind>,
    pending: VecDeque<Notification>,
}

impl std::fmt::Debug for WsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsClient")
            .field("url", &self.url)
            .field("subscriptions", &self.kinds.len())
            .finish_non_exhaustive()
    }
}

/// The WebSocket URL of a node's RPC URL: `http://h:p/…` → `ws://h:p/ws`.
///
/// # Errors
/// [`ClientError::InvalidUrl`] for a URL that is not `http://` or `ws://`.
pub fn ws_url(rpc_url: &str) -> Result<String, ClientError> {
    let bad = |reason: &str| invalid_url(rpc_url, reason);
    let mut url = parse_url(rpc_url)?;
    match url.scheme() {
        "http" | "ws" => {}
        other => {
            return Err(bad(&format!(
                "scheme `{other}` is not supported for WebSocket; use http:// or ws://"
            )));
        }
    }
    url.set_scheme("ws").map_err(|()| bad("cannot use ws://"))?;
    url.set_path("/ws");
    url.set_query(None);
    url.set_fragment(None);
    Ok(url.to_string())
}

impl WsClient {
    /// Connects to the WebSocket endpoint of the node whose RPC URL is `rpc_url` (see
    /// [`ws_url`]). `timeout` bounds the connection and every request's answer.
    ///
    /// # Errors
    /// [`ClientError::InvalidUrl`]; [`ClientError::Transport`] when the node cannot be
    /// reached or the connection times out; [`ClientError::Http`] when the node refuses the
    /// upgrade (404 from a node without WebSocket, 503 when `ws_connections_max` is reached
    /// or WebSocket is off, 403 for a refused origin).
    pub async fn connect(rpc_url: &str, timeout: Duration) -> Result<WsClient, ClientError> {
        let url = ws_url(rpc_url)?;
        let mut config = WebSocketConfig::default();
        config.max_message_size = Some(RESPONSE_BYTES_MAX);
        config.max_frame_size = Some(RESPONSE_BYTES_MAX);
        let connecting =
            tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config), false);
        let (socket, _response) = match tokio::time::timeout(timeout, connecting).await {
            Err(_elapsed) => {
                return Err(ClientError::Transport {
                    url,
                    message: format!("timed out after {} ms", timeout.as_millis()),
                });
            }
            Ok(Err(e)) => return Err(connect_error(&url, e)),
            Ok(Ok(pair)) => pair,
        };
        Ok(WsClient {
            socket,
            url,
            timeout,
            next_id: 1,
            kinds: HashMap::new(),
            pending: VecDeque::new(),
        })
    }

    /// The `ws://` URL this client is connected to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Subscribes to finalized blocks (with their transactions' hashes if
    /// `transaction_hashes`); returns the subscription id.
    ///
    /// # Errors
    /// As [`WsClient::request`].
    pub async fn subscribe_blocks(
        &mut self,
        transaction_hashes: bool,
    ) -> Result<String, ClientError> {
        let params = if transaction_hashes {
            json!({"kind": "blocks", "transactions": "hashes"})
        } else {
            json!({"kind": "blocks"})
        };
        self.subscribe(SubscriptionKind::Blocks, params).await
    }

    /// Subscribes to a transaction's status; the node sends the current status at once.
    ///
    /// # Errors
    /// As [`WsClient::request`].
    pub async fn subscribe_transaction(&mut self, hash: &Hash) -> Result<String, ClientError> {
        let params = json!({"kind": "transaction", "hash": hash.to_hex()});
        self.subscribe(SubscriptionKind::Transaction, params).await
    }

    /// Subscribes to an account's balance and nonce; the node sends the current state at
    /// once.
    ///
    /// # Errors
    /// As [`WsClient::request`].
    pub async fn subscribe_account(&mut self, address: &Address) -> Result<String, ClientError> {
        let params = json!({"kind": "account", "address": address.to_string()});
        self.subscribe(SubscriptionKind::Account, params).await
    }

    /// Ends a subscription; `true` if it was open.
    ///
    /// # Errors
    /// As [`WsClient::request`].
    pub async fn unsubscribe(&mut self, subscription: &str) -> Result<bool, ClientError> {
        let open = self
            .request("unsubscribe", json!({"subscription": subscription}))
            .await?;
        self.kinds.remove(subscription);
        Ok(open)
    }

    async fn subscribe(
        &mut self,
        kind: SubscriptionKind,
        params: Value,
    ) -> Result<String, ClientError> {
        let id: String = self.request("subscribe", params).await?;
        self.kinds.insert(id.clone(), kind);
        Ok(id)
    }

    /// Sends one JSON-RPC request and waits (at most the client's timeout) for its answer,
    /// keeping notifications that arrive meanwhile for [`WsClient::next`].
    ///
    /// # Errors
    /// [`ClientError::Rpc`] for the node's error object; [`ClientError::Transport`] when the
    /// connection fails, closes or the answer does not come in time;
    /// [`ClientError::Malformed`] for an answer of the wrong shape or too many
    /// notifications before it.
    pub async fn request<R: DeserializeOwned>(
        &mut self,
        method: &str,
        params: Value,
    ) -> Result<R, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.socket
            .send(Message::Text(body.to_string().into()))
            .await
            .map_err(|e| self.transport(&e.to_string()))?;
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            let v = self.read_json(deadline).await.map_err(|e| match e {
                ReadError::Client(e) => e,
                ReadError::TimedOut => self.transport(&format!(
                    "no answer to {method} within {} ms",
                    self.timeout.as_millis()
                )),
            })?;
            if v.get("id").and_then(Value::as_u64) == Some(id) {
                if let Some(error) = v.get("error") {
                    return Err(rpc_error(error));
                }
                let result = v
                    .get("result")
                    .cloned()
                    .ok_or_else(|| self.malformed("answer without result or error"))?;
                return serde_json::from_value(result)
                    .map_err(|e| self.malformed(&format!("unexpected {method} result: {e}")));
            }
            if v.get("id").is_some() {
                // An answer to a request made without waiting for it (none today) or an
                // error for an unreadable message (id null): the request still waits.
                if v.get("id") == Some(&Value::Null) {
                    if let Some(error) = v.get("error") {
                        return Err(rpc_error(error));
                    }
                }
                continue;
            }
            let note = self.notification(&v)?;
            if self.pending.len() >= WS_PENDING_NOTIFICATIONS_MAX {
                return Err(self.malformed(&format!(
                    "more than {WS_PENDING_NOTIFICATIONS_MAX} notifications before the answer to {method}"
                )));
            }
            self.pending.push_back(note);
        }
    }

    /// The next notification, waiting at most `timeout` (`Ok(None)` when none came in
    /// time). A `Closing` notification is the last; after it (or when the node closes the
    /// connection without one) this returns [`ClientError::Transport`].
    ///
    /// # Errors
    /// [`ClientError::Transport`] when the connection fails or closes;
    /// [`ClientError::Malformed`] for a message of the wrong shape.
    pub async fn next(&mut self, timeout: Duration) -> Result<Option<Notification>, ClientError> {
        if let Some(note) = self.pending.pop_front() {
            return Ok(Some(note));
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let v = match self.read_json(deadline).await {
                Ok(v) => v,
                Err(ReadError::TimedOut) => return Ok(None),
                Err(ReadError::Client(e)) => return Err(e),
            };
            if v.get("id").is_some() {
                continue;
            }
            return self.notification(&v).map(Some);
        }
    }

    /// Reads the next JSON text message before `deadline`.
    async fn read_json(&mut self, deadline: tokio::time::Instant) -> Result<Value, ReadError> {
        loop {
            let next = tokio::time::timeout_at(deadline, self.socket.next()).await;
            let message = match next {
                Err(_elapsed) => return Err(ReadError::TimedOut),
                Ok(None) => return Err(self.transport("the node closed the connection").into()),
                Ok(Some(Err(e))) => return Err(self.transport(&e.to_string()).into()),
                Ok(Some(Ok(m))) => m,
            };
            match message {
                Message::Text(text) => {
                    return serde_json::from_str(text.as_str())
                        .map_err(|e| self.malformed(&format!("not JSON: {e}")).into());
                }
                Message::Close(frame) => {
                    let why = frame.map_or_else(String::new, |f| {
                        format!(" (code {}: {})", u16::from(f.code), f.reason)
                    });
                    return Err(self
                        .transport(&format!("the node closed the connection{why}"))
                        .into());
                }
                Message::Binary(_) => {
                    return Err(self.malformed("binary message").into());
                }
                // tungstenite answers pings itself.
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
            }
        }
    }

    fn notification(&self, v: &Value) -> Result<Notification, ClientError> {
        let method = v.get("method").and_then(Value::as_str);
        let params = v.get("params").cloned().unwrap_or(Value::Null);
        match method {
            Some("closing") => Ok(Notification::Closing {
                reason: str_field(&params, "reason"),
                message: str_field(&params, "message"),
            }),
            Some("subscription") => {
                let subscription = params
                    .get("subscription")
                    .and_then(Value::as_str)
                    .ok_or_else(|| self.malformed("notification without a subscription id"))?
                    .to_string();
                let result = params.get("result").cloned().unwrap_or(Value::Null);
                let kind = self.kinds.get(&subscription).copied().ok_or_else(|| {
                    self.malformed(&format!(
                        "notification for unknown subscription {subscription}"
                    ))
                })?;
                let bad = |e: serde_json::Error| {
                    self.malformed(&format!("bad {kind:?} notification: {e}"))
                };
                Ok(match kind {
                    SubscriptionKind::Blocks => Notification::Block {
                        subscription,
                        block: Box::new(serde_json::from_value(result).map_err(bad)?),
                    },
                    SubscriptionKind::Transaction => Notification::Transaction {
                        subscription,
                        status: serde_json::from_value(result).map_err(bad)?,
                    },
                    SubscriptionKind::Account => Notification::Account {
                        subscription,
                        account: serde_json::from_value(result).map_err(bad)?,
                    },
                })
            }
            _ => Err(self.malformed("message is neither an answer nor a notification")),
        }
    }

    fn transport(&self, message: &str) -> ClientError {
        ClientError::Transport {
            url: self.url.clone(),
            message: message.to_string(),
        }
    }

    fn malformed(&self, message: &str) -> ClientError {
        ClientError::Malformed {
            url: self.url.clone(),
            message: message.to_string(),
        }
    }
}

enum ReadError {
    TimedOut,
    Client(ClientError),
}

impl From<ClientError> for ReadError {
    fn from(e: ClientError) -> ReadError {
        ReadError::Client(e)
    }
}

fn str_field(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn rpc_error(error: &Value) -> ClientError {
    ClientError::Rpc {
        code: error.get("code").and_then(Value::as_i64).unwrap_or(0),
        message: str_field(error, "message"),
        data: error.get("data").cloned(),
    }
}

fn connect_error(url: &str, e: tokio_tungstenite::tungstenite::Error) -> ClientError {
    use tokio_tungstenite::tungstenite::Error as WsError;
    match e {
        WsError::Http(response) => {
            let status = response.status();
            let body = response
                .body()
                .as_deref()
                .map(|b| String::from_utf8_lossy(&b[..b.len().min(256)]).into_owned())
                .unwrap_or_default();
            ClientError::Http {
                url: url.to_string(),
                status: status.as_u16(),
                message: format!("{} {body}", status.canonical_reason().unwrap_or("")),
            }
        }
        other => ClientError::Transport {
            url: url.to_string(),
            message: other.to_string(),
        },
    }
}

/// How [`RpcClient::follow_transaction`] learned the statuses it reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FollowedVia {
    /// A `transaction` subscription over WebSocket.
    WebSocket,
    /// Polling `getTransaction` (the node offers no WebSocket, or the connection broke).
    Polling,
}

impl FollowedVia {
    /// `websocket` or `polling`.
    pub fn label(self) -> &'static str {
        match self {
            FollowedVia::WebSocket => "websocket",
            FollowedVia::Polling => "polling",
        }
    }
}

impl RpcClient {
    /// Follows a transaction until its status is terminal (finalized or rejected) and
    /// returns it, calling `on_status` with every status it sees change (the first one
    /// included). It subscribes over WebSocket (`/ws`); when that is not possible (the node
    /// has no WebSocket or refuses the connection) or the connection breaks, it polls
    /// `getTransaction` every `poll_ms` (at least [`POLL_MS_MIN`]) for the time left,
    /// calling `on_fallback` once with the reason. Transient errors are retried until the
    /// deadline.
    ///
    /// # Errors
    /// [`ClientError::FinalityTimeout`] after `timeout_ms`; a non-transient error of the
    /// node (e.g. [`ClientError::Rpc`] for a malformed hash) at once.
    pub async fn follow_transaction(
        &self,
        hash: &Hash,
        timeout_ms: u64,
        poll_ms: u64,
        mut on_status: impl FnMut(&TxStatus),
        on_fallback: impl FnOnce(&ClientError),
    ) -> Result<(TxStatus, FollowedVia), ClientError> {
        let start = tokio::time::Instant::now();
        let deadline = start + Duration::from_millis(timeout_ms);
        let mut last: Option<TxStatus> = None;
        let mut report = |status: &TxStatus, last: &mut Option<TxStatus>| {
            if last.as_ref() != Some(status) {
                on_status(status);
                *last = Some(status.clone());
            }
        };
        let fallback = match self
            .follow_ws(hash, deadline, &mut |s: &TxStatus| report(s, &mut last))
            .await
        {
            Ok(Some(status)) => return Ok((status, FollowedVia::WebSocket)),
            Ok(None) => {
                return Err(ClientError::FinalityTimeout {
                    hash: *hash,
                    timeout_ms,
                    last_status: last
                        .as_ref()
                        .map_or("none yet", TxStatus::label)
                        .to_string(),
                });
            }
            // The node understood and refused the request (a malformed hash): polling would
            // be refused the same way.
            Err(e) if e.rpc_code() == Some(codes::INVALID_PARAMS) => return Err(e),
            Err(e) => e,
        };
        on_fallback(&fallback);
        let poll = Duration::from_millis(poll_ms.max(POLL_MS_MIN));
        let mut last_error: Option<String> = None;
        loop {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(remaining, self.transaction(hash)).await {
                Ok(Ok(status)) => {
                    report(&status, &mut last);
                    if status.is_terminal() {
                        return Ok((status, FollowedVia::Polling));
                    }
                    last_error = None;
                }
                Ok(Err(e)) if e.is_transient() => last_error = Some(e.to_string()),
                Ok(Err(e)) => return Err(e),
                Err(_elapsed) => {}
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                let last_status = last_error.unwrap_or_else(|| {
                    last.as_ref()
                        .map_or("none yet", TxStatus::label)
                        .to_string()
                });
                return Err(ClientError::FinalityTimeout {
                    hash: *hash,
                    timeout_ms,
                    last_status,
                });
            }
            tokio::time::sleep(poll.min(deadline - now)).await;
        }
    }

    /// The WebSocket half of [`RpcClient::follow_transaction`]: `Ok(Some)` with a terminal
    /// status, `Ok(None)` at the deadline, `Err` when WebSocket is unusable.
    async fn follow_ws(
        &self,
        hash: &Hash,
        deadline: tokio::time::Instant,
        on_status: &mut dyn FnMut(&TxStatus),
    ) -> Result<Option<TxStatus>, ClientError> {
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        let mut ws = WsClient::connect(self.url(), self.timeout().min(remaining)).await?;
        let subscription = ws.subscribe_transaction(hash).await?;
        loop {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            if remaining.is_zero() {
                return Ok(None);
            }
            match ws.next(remaining).await? {
                None => return Ok(None),
                Some(Notification::Transaction {
                    subscription: s,
                    status,
                }) if s == subscription => {
                    on_status(&status);
                    if status.is_terminal() {
                        return Ok(Some(status));
                    }
                }
                Some(Notification::Closing { reason, message }) => {
                    return Err(ClientError::Transport {
                        url: ws.url().to_string(),
                        message: format!("the node closed the subscription ({reason}): {message}"),
                    });
                }
                Some(_) => {}
            }
        }
    }
}
