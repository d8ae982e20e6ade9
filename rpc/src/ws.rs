//! WebSocket subscriptions at `GET /ws`: JSON-RPC 2.0 `subscribe` / `unsubscribe` over text
//! messages, and the notifications they produce (docs/wire-format.md, "WebSocket
//! subscriptions", is the contract; the crate docs summarize it).
//!
//! Each connection runs two tasks that never wait on each other:
//!
//! - the *pump* reads the client's requests and the node's finalized blocks (a
//!   [`FinalizedBlocks`] broadcast receiver, [`RpcBackend::finalized_blocks`]), answers
//!   requests and turns blocks into notifications, and puts every outgoing message on the
//!   connection's bounded send queue (`ws_send_queue_max` messages) with `try_send`;
//! - the *writer* takes messages off that queue and writes them to the socket.
//!
//! So a client that reads slowly only fills its own queue. When the queue is full, or the
//! pump fell so far behind that the broadcast dropped blocks it had not read yet (the
//! broadcast's own bound, set by the node), the connection is closed: the writer drops what
//! is still queued, sends a final `closing` notification naming the reason and a Close
//! frame (code 1013), waiting at most [`WS_CLOSE_GRACE_MS`] for the client to take them,
//! and disconnects. Nothing here ever waits for a client on the node's behalf: the node's
//! broadcast send does not block, and every per-connection bound is enforced by this crate.

use std::collections::{BTreeMap, HashMap};
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cairn_ledger::{Address, Block, BlockHeader, Hash};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast, mpsc, oneshot};

use crate::error::{ErrorObject, codes};
use crate::methods::Params;
use crate::server::{
    ConnContext, ServerState, echo_id, http_error_reason as http_error, parse_call, raw_response,
};
use crate::{RpcBackend, TxStatus};

/// Largest accepted `ws_connections_max`, `ws_subscriptions_max` and
/// `ws_subscriptions_per_connection_max`.
pub const WS_SUBSCRIPTIONS_LIMIT: usize = 1_000_000;
/// Largest accepted `ws_send_queue_max`, messages.
pub const WS_SEND_QUEUE_LIMIT: usize = 1 << 20;
/// Accepted range of `ws_message_bytes_max`, bytes.
pub const WS_MESSAGE_BYTES_RANGE: RangeInclusive<usize> = 1024..=(16 << 20);
/// How long a closing connection waits for the client to take its final `closing`
/// notification and Close frame before it disconnects anyway, ms.
pub const WS_CLOSE_GRACE_MS: u64 = 5_000;
/// A transaction subscription still pending asks the backend for the transaction's status
/// once every this many finalized blocks (to see a rejection, which no block carries).
pub const TX_STATUS_RECHECK_BLOCKS: u64 = 4;
/// Close code for a consumer that fell behind (RFC 6455 registry: "Try Again Later").
pub const CLOSE_LAGGED: u16 = 1013;
/// Close code for a message over `ws_message_bytes_max` (RFC 6455: "Message Too Big").
pub const CLOSE_TOO_BIG: u16 = 1009;
/// Close code when the server shuts down (RFC 6455: "Going Away").
pub const CLOSE_SHUTDOWN: u16 = 1001;

/// The receiving end of the node's finalized-block broadcast
/// ([`RpcBackend::finalized_blocks`]).
pub type FinalizedBlocks = broadcast::Receiver<Arc<FinalizedBlock>>;

/// A block the node finalized, as published to WebSocket subscribers: what the
/// subscriptions need and nothing more, so the node builds it cheaply on its commit path.
#[derive(Debug)]
pub struct FinalizedBlock {
    hash: Hash,
    header: BlockHeader,
    tx_hashes: Vec<Hash>,
    accounts: Vec<Address>,
    /// Transaction hash → index, built by the first subscriber that needs it.
    tx_index: OnceLock<HashMap<Hash, u32>>,
    /// The `blocks` notification results, serialized once for every subscriber.
    header_json: OnceLock<Box<RawValue>>,
    hashes_json: OnceLock<Box<RawValue>>,
}

impl FinalizedBlock {
    /// A finalized block: its hash, header, transaction hashes (ids) in block order, and
    /// the accounts it may have changed (see [`touched_accounts`]; sorted and deduplicated
    /// here).
    pub fn new(
        hash: Hash,
        header: BlockHeader,
        tx_hashes: Vec<Hash>,
        mut accounts: Vec<Address>,
    ) -> FinalizedBlock {
        accounts.sort_unstable();
        accounts.dedup();
        FinalizedBlock {
            hash,
            header,
            tx_hashes,
            accounts,
            tx_index: OnceLock::new(),
            header_json: OnceLock::new(),
            hashes_json: OnceLock::new(),
        }
    }

    /// [`FinalizedBlock::new`] from a whole block (hashes the header and every
    /// transaction; the node passes the hashes it already has instead).
    pub fn from_block(block: &Block) -> FinalizedBlock {
        FinalizedBlock::new(
            block.hash(),
            block.header.clone(),
            block.transactions.iter().map(|t| t.hash()).collect(),
            touched_accounts(block),
        )
    }

    /// The block hash.
    pub fn hash(&self) -> Hash {
        self.hash
    }

    /// The header.
    pub fn header(&self) -> &BlockHeader {
        &self.header
    }

    /// The transaction hashes, in block order.
    pub fn tx_hashes(&self) -> &[Hash] {
        &self.tx_hashes
    }

    /// The accounts the block may have changed, sorted.
    pub fn accounts(&self) -> &[Address] {
        &self.accounts
    }

    fn position(&self, tx: &Hash) -> Option<u32> {
        if self.tx_hashes.len() <= 16 {
            return self
                .tx_hashes
                .iter()
                .position(|h| h == tx)
                .map(|i| i as u32);
        }
        let index = self.tx_index.get_or_init(|| {
            (self.tx_hashes.iter().enumerate())
                .map(|(i, h)| (*h, i as u32))
                .collect()
        });
        index.get(tx).copied()
    }

    /// The `blocks` notification result, with or without the transaction hashes.
    fn result_json(&self, with_hashes: bool) -> &RawValue {
        let cell = if with_hashes {
            &self.hashes_json
        } else {
            &self.header_json
        };
        cell.get_or_init(|| {
            raw_response(&BlockNotification {
                hash: self.hash,
                header: self.header.clone(),
                transaction_count: self.tx_hashes.len() as u64,
                transaction_hashes: with_hashes.then(|| self.tx_hashes.clone()),
            })
        })
    }
}

/// The accounts `block` may have changed: every sender (fee and nonce), every transfer's
/// recipient, and the proposer (fees) if the block has a transaction.
pub fn touched_accounts(block: &Block) -> Vec<Address> {
    let mut out = Vec::with_capacity(2 * block.transactions.len() + 1);
    for tx in &block.transactions {
        out.extend(tx.body.touched_accounts());
    }
    if !block.transactions.is_empty() {
        out.push(block.header.proposer);
    }
    out
}

/// Result of a `blocks` subscription's notification: the block's hash and header (as
/// `getBlock` gives them), its transaction count and, if asked for
/// (`"transactions": "hashes"`), its transactions' hashes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockNotification {
    /// Block hash.
    pub hash: Hash,
    /// The header, in the same form as `getBlock`'s (camelCase keys).
    #[serde(with = "crate::types::header_camel_case")]
    pub header: BlockHeader,
    /// Number of transactions in the block.
    pub transaction_count: u64,
    /// The transactions' hashes in block order; only when the subscription asked for them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_hashes: Option<Vec<Hash>>,
}

/// Result of an `account` subscription's notification: the account's balance and nonce as
/// of finalized height `height` (the subscription's first notification: the head when it
/// was made) or a later finalized block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountNotification {
    /// The account.
    pub address: Address,
    /// Balance in base units.
    pub balance: u64,
    /// The account's nonce (the nonce of its next transaction to execute).
    pub nonce: u64,
    /// The finalized block that changed it (for the first notification: the finalized head
    /// when the subscription was made).
    pub height: u64,
}

/// Live counters of the WebSocket server, for the node's metrics. Shared between the server
/// (which updates them) and whoever reads them.
#[derive(Debug, Default)]
pub struct WsStats {
    connections: AtomicU64,
    subscriptions: AtomicUsize,
    connections_total: AtomicU64,
    connections_refused: AtomicU64,
    lag_disconnects: AtomicU64,
}

impl WsStats {
    /// WebSocket connections open now.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// Subscriptions open now, over all connections.
    pub fn subscriptions(&self) -> u64 {
        self.subscriptions.load(Ordering::Relaxed) as u64
    }

    /// WebSocket connections accepted since start.
    pub fn connections_total(&self) -> u64 {
        self.connections_total.load(Ordering::Relaxed)
    }

    /// Upgrade requests refused since start because `ws_connections_max` were open.
    pub fn connections_refused(&self) -> u64 {
        self.connections_refused.load(Ordering::Relaxed)
    }

    /// Connections closed since start because their consumer fell behind (send queue full,
    /// or finalized blocks missed).
    pub fn lag_disconnects(&self) -> u64 {
        self.lag_disconnects.load(Ordering::Relaxed)
    }
}

/// The WebSocket side of the server: its bounds, counters and the backend.
pub(crate) struct WsHub {
    backend: Arc<dyn RpcBackend>,
    connections: Arc<Semaphore>,
    connections_max: usize,
    subscriptions_max: usize,
    per_connection_max: usize,
    send_queue_max: usize,
    message_bytes_max: usize,
    cors_allowed_origins: Vec<String>,
    stats: Arc<WsStats>,
}

impl WsHub {
    pub(crate) fn new(
        config: &crate::RpcServerConfig,
        backend: Arc<dyn RpcBackend>,
        stats: Arc<WsStats>,
    ) -> WsHub {
        WsHub {
            backend,
            connections: Arc::new(Semaphore::new(
                config.ws_connections_max.min(Semaphore::MAX_PERMITS),
            )),
            connections_max: config.ws_connections_max,
            subscriptions_max: config.ws_subscriptions_max,
            per_connection_max: config.ws_subscriptions_per_connection_max,
            send_queue_max: config.ws_send_queue_max.max(1),
            message_bytes_max: config.ws_message_bytes_max,
            cors_allowed_origins: config.cors_allowed_origins.clone(),
            stats,
        }
    }

    /// A browser's `Origin` may open a WebSocket only if it is the server's own origin
    /// (`Origin` host equal to `Host`, as for the node's dashboard) or listed in
    /// `cors_allowed_origins`; clients that send no `Origin` (not browsers) always may.
    fn origin_allowed(&self, headers: &HeaderMap) -> bool {
        let Some(origin) = headers.get(header::ORIGIN) else {
            return true;
        };
        let Ok(origin) = origin.to_str() else {
            return false;
        };
        if (self.cors_allowed_origins.iter()).any(|o| o == "*" || o.eq_ignore_ascii_case(origin)) {
            return true;
        }
        let origin_host = ["http://", "https://"]
            .iter()
            .find_map(|scheme| origin.strip_prefix(scheme));
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
    }

    /// Reserves one subscription against the total bound.
    fn reserve(&self) -> bool {
        self.stats
            .subscriptions
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < self.subscriptions_max).then_some(n + 1)
            })
            .is_ok()
    }

    fn release(&self, n: usize) {
        if n > 0 {
            self.stats.subscriptions.fetch_sub(n, Ordering::Relaxed);
        }
    }
}

/// `GET /ws`: the origin check (403), the connection bound (503 with a -32005 error), then
/// the upgrade with the message size bound.
pub(crate) async fn upgrade(State(state): State<Arc<ServerState>>, request: Request) -> Response {
    let hub = state.ws.clone();
    if !hub.origin_allowed(request.headers()) {
        return http_error(
            StatusCode::FORBIDDEN,
            codes::INVALID_REQUEST,
            "origin_not_allowed",
            "WebSocket from this Origin is not allowed (cors_allowed_origins)",
        );
    }
    let context = request.extensions().get::<ConnContext>().cloned();
    let (mut parts, _body) = request.into_parts();
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(u) => u,
        Err(rejection) => return rejection.into_response(),
    };
    let Ok(permit) = hub.connections.clone().try_acquire_owned() else {
        hub.stats
            .connections_refused
            .fetch_add(1, Ordering::Relaxed);
        return http_error(
            StatusCode::SERVICE_UNAVAILABLE,
            codes::OVERLOADED,
            "too_many_connections",
            format!(
                "WebSocket connection limit reached (ws_connections_max = {}); retry later",
                hub.connections_max
            ),
        );
    };
    let bytes_max = hub.message_bytes_max;
    upgrade
        .max_message_size(bytes_max)
        .max_frame_size(bytes_max)
        .on_upgrade(move |socket| run_connection(hub, socket, permit, context))
}

/// Why a connection ends.
#[derive(Debug)]
enum Closing {
    /// The client closed it, or the socket failed: nothing to tell.
    Client,
    /// The server is shutting down.
    Shutdown,
    /// The send queue was full.
    QueueFull { queue_max: usize },
    /// The broadcast dropped blocks this connection had not read.
    Lagged { missed: u64 },
    /// A message over the size bound.
    TooBig { limit: usize },
}

impl Closing {
    /// `(reason, message, close code)` of the final `closing` notification, if any.
    fn notice(&self) -> Option<(&'static str, String, u16)> {
        match self {
            Closing::Client => None,
            Closing::Shutdown => Some((
                "shutdown",
                "the server is shutting down".into(),
                CLOSE_SHUTDOWN,
            )),
            Closing::QueueFull { queue_max } => Some((
                "send_queue_full",
                format!(
                    "{queue_max} messages were waiting to be sent: the client reads too slowly (ws_send_queue_max)"
                ),
                CLOSE_LAGGED,
            )),
            Closing::Lagged { missed } => Some((
                "lagged",
                format!("the connection fell {missed} finalized blocks behind the node"),
                CLOSE_LAGGED,
            )),
            Closing::TooBig { limit } => Some((
                "message_too_big",
                format!("a message was over the limit of {limit} bytes (ws_message_bytes_max)"),
                CLOSE_TOO_BIG,
            )),
        }
    }

    fn is_lag(&self) -> bool {
        matches!(self, Closing::QueueFull { .. } | Closing::Lagged { .. })
    }
}

async fn run_connection(
    hub: Arc<WsHub>,
    socket: WebSocket,
    permit: OwnedSemaphorePermit,
    context: Option<ConnContext>,
) {
    hub.stats.connections.fetch_add(1, Ordering::Relaxed);
    hub.stats.connections_total.fetch_add(1, Ordering::Relaxed);
    let (sink, stream) = socket.split();
    let (out, queue) = mpsc::channel(hub.send_queue_max);
    let (close_tx, close_rx) = oneshot::channel();
    let writer = tokio::spawn(write_loop(sink, queue, close_rx));
    let mut conn = Conn {
        hub: hub.clone(),
        out,
        subs: BTreeMap::new(),
        next_id: 1,
        blocks: None,
    };
    let shutdown = context.as_ref().map(|c| c.closing.clone());
    let closing = conn.pump(stream, shutdown).await;
    if closing.is_lag() {
        hub.stats.lag_disconnects.fetch_add(1, Ordering::Relaxed);
        tracing::info!(?closing, "WebSocket consumer fell behind; disconnecting");
    } else {
        tracing::debug!(?closing, "WebSocket connection closing");
    }
    drop(conn); // releases its subscriptions
    let _ = close_tx.send(closing);
    let _ = writer.await;
    hub.stats.connections.fetch_sub(1, Ordering::Relaxed);
    drop(permit);
    drop(context); // the connection's slot in the server's connection bounds
}

/// Takes messages off the send queue and writes them; on the close signal drops what is
/// still queued and sends the final notification and Close frame (within the grace time).
async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    mut queue: mpsc::Receiver<Message>,
    mut close: oneshot::Receiver<Closing>,
) {
    let closing = loop {
        let message = tokio::select! {
            biased;
            c = &mut close => break c.unwrap_or(Closing::Client),
            m = queue.recv() => match m {
                Some(m) => m,
                None => break (&mut close).await.unwrap_or(Closing::Client),
            },
        };
        tokio::select! {
            biased;
            c = &mut close => break c.unwrap_or(Closing::Client),
            sent = sink.send(message) => {
                if sent.is_err() {
                    return; // the client is gone
                }
            }
        }
    };
    queue.close();
    drop(queue);
    let grace = Duration::from_millis(WS_CLOSE_GRACE_MS);
    let _ = tokio::time::timeout(grace, async {
        match closing.notice() {
            Some((reason, message, code)) => {
                let note = json!({
                    "jsonrpc": "2.0",
                    "method": "closing",
                    "params": {"reason": reason, "message": message},
                });
                sink.send(Message::Text(note.to_string().into())).await?;
                let mut text = message;
                // A Close frame's reason is at most 123 bytes.
                while text.len() > 123 {
                    text.pop();
                }
                sink.send(Message::Close(Some(CloseFrame {
                    code,
                    reason: text.into(),
                })))
                .await
            }
            None => sink.close().await,
        }
    })
    .await;
}

/// One subscription of a connection.
enum Sub {
    Blocks {
        with_hashes: bool,
    },
    Transaction {
        hash: Hash,
        /// The label of the last status sent.
        last: &'static str,
    },
    Account {
        address: Address,
        balance: u64,
        nonce: u64,
    },
}

/// What `subscribe` asked for.
enum Kind {
    Blocks { with_hashes: bool },
    Transaction(Hash),
    Account(Address),
}

/// A connection's pump state.
struct Conn {
    hub: Arc<WsHub>,
    out: mpsc::Sender<Message>,
    subs: BTreeMap<u64, Sub>,
    next_id: u64,
    /// Finalized blocks, while the connection has a subscription.
    blocks: Option<FinalizedBlocks>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.hub.release(self.subs.len());
    }
}

async fn next_block(
    blocks: &mut Option<FinalizedBlocks>,
) -> Result<Arc<FinalizedBlock>, RecvError> {
    match blocks {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The subscription id as sent: `0x` and the per-connection counter in hex.
fn sub_id(id: u64) -> String {
    format!("{id:#x}")
}

impl Conn {
    /// Runs the connection until it ends; returns why.
    async fn pump(
        &mut self,
        mut stream: SplitStream<WebSocket>,
        mut shutdown: Option<tokio::sync::watch::Receiver<bool>>,
    ) -> Closing {
        loop {
            let stopping = async {
                match shutdown.as_mut() {
                    Some(rx) => {
                        let _ = rx.wait_for(|stop| *stop).await;
                    }
                    None => std::future::pending().await,
                }
            };
            let step = tokio::select! {
                biased;
                () = stopping => Err(Closing::Shutdown),
                block = next_block(&mut self.blocks) => match block {
                    Ok(block) => self.on_block(&block).await,
                    Err(RecvError::Lagged(missed)) => Err(Closing::Lagged { missed }),
                    Err(RecvError::Closed) => {
                        // The node stopped publishing (shutting down): no more blocks.
                        self.blocks = None;
                        Ok(())
                    }
                },
                frame = stream.next() => match frame {
                    None | Some(Ok(Message::Close(_))) => Err(Closing::Client),
                    Some(Ok(Message::Text(text))) => self.on_text(text.as_str()).await,
                    Some(Ok(Message::Binary(_))) => self.send_error(
                        Value::Null,
                        None,
                        ErrorObject::new(codes::INVALID_REQUEST, "invalid request: binary messages are not served; send JSON-RPC as text"),
                    ),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => Ok(()),
                    Some(Err(e)) => Err(self.read_error(e)),
                },
            };
            if let Err(closing) = step {
                return closing;
            }
        }
    }

    fn read_error(&self, e: axum::Error) -> Closing {
        use tokio_tungstenite::tungstenite::Error as WsError;
        match e.into_inner().downcast::<WsError>() {
            Ok(e) if matches!(*e, WsError::Capacity(_)) => Closing::TooBig {
                limit: self.hub.message_bytes_max,
            },
            Ok(e) => {
                tracing::debug!(error = %e, "WebSocket read failed");
                Closing::Client
            }
            Err(e) => {
                tracing::debug!(error = %e, "WebSocket read failed");
                Closing::Client
            }
        }
    }

    /// Queues a message; a full queue ends the connection.
    fn send(&self, text: String) -> Result<(), Closing> {
        match self.out.try_send(Message::Text(text.into())) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => Err(Closing::QueueFull {
                queue_max: self.hub.send_queue_max,
            }),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(Closing::Client),
        }
    }

    fn respond(&self, id: &Value, raw: Option<&RawValue>, result: &Value) -> Result<(), Closing> {
        let id = match raw {
            Some(raw) => echo_id(id, raw),
            None => raw_response(id),
        };
        self.send(format!(
            r#"{{"jsonrpc":"2.0","result":{},"id":{}}}"#,
            raw_response(result).get(),
            id.get()
        ))
    }

    fn send_error(
        &self,
        id: Value,
        raw: Option<&RawValue>,
        err: ErrorObject,
    ) -> Result<(), Closing> {
        let id = match raw {
            Some(raw) => echo_id(&id, raw),
            None => raw_response(&id),
        };
        self.send(format!(
            r#"{{"jsonrpc":"2.0","error":{},"id":{}}}"#,
            raw_response(&err).get(),
            id.get()
        ))
    }

    fn notify(&self, id: u64, result: &RawValue) -> Result<(), Closing> {
        self.send(format!(
            r#"{{"jsonrpc":"2.0","method":"subscription","params":{{"subscription":"{}","result":{}}}}}"#,
            sub_id(id),
            result.get()
        ))
    }

    /// One text message: one JSON-RPC request (no batches).
    async fn on_text(&mut self, text: &str) -> Result<(), Closing> {
        if text.len() > self.hub.message_bytes_max {
            // The socket layer refuses these before they are read; kept as a second check.
            return Err(Closing::TooBig {
                limit: self.hub.message_bytes_max,
            });
        }
        if text.trim_start().starts_with('[') {
            return self.send_error(
                Value::Null,
                None,
                ErrorObject::new(
                    codes::INVALID_REQUEST,
                    "invalid request: batches are not served over WebSocket; send one request per message",
                ),
            );
        }
        let raw: &RawValue = match serde_json::from_str(text) {
            Ok(raw) => raw,
            Err(e) => {
                let err = ErrorObject::new(codes::PARSE_ERROR, format!("parse error: {e}"));
                return self.send_error(Value::Null, None, err);
            }
        };
        let value: Value = match serde_json::from_str(raw.get()) {
            Ok(v) => v,
            Err(e) => {
                let err = ErrorObject::new(codes::PARSE_ERROR, format!("parse error: {e}"));
                return self.send_error(Value::Null, None, err);
            }
        };
        let call = match parse_call(value) {
            Ok(call) => call,
            Err((id, err)) => return self.send_error(id, Some(raw), err),
        };
        let outcome = match call.method.as_str() {
            "subscribe" => self.subscribe(call.params).await,
            "unsubscribe" => self.unsubscribe(call.params).map(|r| (r, None)),
            other => Err(ErrorObject::new(
                codes::METHOD_NOT_FOUND,
                format!(
                    "method not found: `{}` (WebSocket serves subscribe and unsubscribe; other methods are at POST /)",
                    other.chars().take(64).collect::<String>()
                ),
            )),
        };
        let Some(id) = call.id else {
            // A notification: executed, not answered (its subscription's notifications
            // still come).
            if let Ok((_, Some((sub, note)))) = outcome {
                return self.notify(sub, &note);
            }
            return Ok(());
        };
        match outcome {
            Ok((result, initial)) => {
                self.respond(&id, Some(raw), &result)?;
                if let Some((sub, note)) = initial {
                    self.notify(sub, &note)?;
                }
                Ok(())
            }
            Err(err) => self.send_error(id, Some(raw), err),
        }
    }

    /// `subscribe`: the result (the subscription id) and the first notification, if the
    /// kind has one.
    async fn subscribe(
        &mut self,
        params: Params,
    ) -> Result<(Value, Option<(u64, Box<RawValue>)>), ErrorObject> {
        let kind = subscribe_params(params)?;
        if self.subs.len() >= self.hub.per_connection_max {
            return Err(too_many(
                "ws_subscriptions_per_connection_max",
                self.hub.per_connection_max,
            ));
        }
        if !self.hub.reserve() {
            return Err(too_many("ws_subscriptions_max", self.hub.subscriptions_max));
        }
        match self.open(kind).await {
            Ok((id, sub, initial)) => {
                match sub {
                    Some(sub) => {
                        self.subs.insert(id, sub);
                    }
                    None => self.hub.release(1), // ended with its first notification
                }
                Ok((Value::String(sub_id(id)), initial.map(|n| (id, n))))
            }
            Err(e) => {
                self.hub.release(1);
                if self.subs.is_empty() {
                    self.blocks = None;
                }
                Err(e)
            }
        }
    }

    /// Opens a reserved subscription: its id, the state to keep (`None` if it already
    /// ended) and its first notification.
    async fn open(
        &mut self,
        kind: Kind,
    ) -> Result<(u64, Option<Sub>, Option<Box<RawValue>>), ErrorObject> {
        if self.blocks.is_none() {
            // Subscribed before any status is read, so no block committed after the read
            // can be missed.
            match self.hub.backend.finalized_blocks() {
                Some(rx) => self.blocks = Some(rx),
                None => {
                    return Err(ErrorObject::new(
                        codes::INTERNAL_ERROR,
                        "this server publishes no finalized blocks",
                    ));
                }
            }
        }
        let backend = self.hub.backend.clone();
        let (sub, initial) = match kind {
            Kind::Blocks { with_hashes } => (Some(Sub::Blocks { with_hashes }), None),
            Kind::Transaction(hash) => {
                let status = backend
                    .transaction(hash)
                    .await
                    .map_err(|e| e.to_error_object())?;
                let sub = (!status.is_terminal()).then(|| Sub::Transaction {
                    hash,
                    last: status.label(),
                });
                (sub, Some(raw_response(&status)))
            }
            Kind::Account(address) => {
                let height = backend
                    .status()
                    .await
                    .map_err(|e| e.to_error_object())?
                    .latest_height;
                let account = backend
                    .account(address)
                    .await
                    .map_err(|e| e.to_error_object())?;
                let note = AccountNotification {
                    address,
                    balance: account.balance,
                    nonce: account.nonce,
                    height,
                };
                let sub = Sub::Account {
                    address,
                    balance: account.balance,
                    nonce: account.nonce,
                };
                (Some(sub), Some(raw_response(&note)))
            }
        };
        let id = self.next_id;
        self.next_id += 1;
        Ok((id, sub, initial))
    }

    /// `unsubscribe`: `true` if the subscription was open on this connection.
    fn unsubscribe(&mut self, params: Params) -> Result<Value, ErrorObject> {
        let value = match params {
            Params::Positional(mut v) if v.len() == 1 => v.remove(0),
            Params::Named(mut m) if m.len() == 1 && m.contains_key("subscription") => {
                m.remove("subscription").expect("checked")
            }
            _ => {
                return Err(invalid_params(
                    "unsubscribe expects {\"subscription\": id} or [id]",
                ));
            }
        };
        let Some(text) = value.as_str() else {
            return Err(invalid_params(
                "subscription: must be the id string subscribe returned",
            ));
        };
        let id = text
            .strip_prefix("0x")
            .and_then(|hex| u64::from_str_radix(hex, 16).ok());
        let removed = id.and_then(|id| self.subs.remove(&id)).is_some();
        if removed {
            self.hub.release(1);
            if self.subs.is_empty() {
                self.blocks = None;
            }
        }
        Ok(Value::Bool(removed))
    }

    /// A finalized block: every subscription it concerns gets its notification.
    async fn on_block(&mut self, block: &FinalizedBlock) -> Result<(), Closing> {
        let height = block.header.height;
        let ids: Vec<u64> = self.subs.keys().copied().collect();
        let mut ended = Vec::new();
        for id in ids {
            let Some(sub) = self.subs.get(&id) else {
                continue;
            };
            match *sub {
                Sub::Blocks { with_hashes } => self.notify(id, block.result_json(with_hashes))?,
                Sub::Transaction { hash, last } => {
                    let status = match block.position(&hash) {
                        Some(index) => TxStatus::Finalized {
                            height,
                            index,
                            block_hash: block.hash,
                        },
                        None if (height.wrapping_add(id)) % TX_STATUS_RECHECK_BLOCKS == 0 => {
                            match self.hub.backend.transaction(hash).await {
                                Ok(status) => status,
                                Err(e) => {
                                    tracing::debug!(error = %e, "transaction status re-check failed");
                                    continue;
                                }
                            }
                        }
                        None => continue,
                    };
                    if status.is_terminal() {
                        ended.push(id);
                    } else if status.label() == last {
                        continue;
                    } else if let Some(Sub::Transaction { last, .. }) = self.subs.get_mut(&id) {
                        *last = status.label();
                    }
                    self.notify(id, &raw_response(&status))?;
                }
                Sub::Account {
                    address,
                    balance,
                    nonce,
                } => {
                    if block.accounts.binary_search(&address).is_err() {
                        continue;
                    }
                    let account = match self.hub.backend.account(address).await {
                        Ok(a) => a,
                        Err(e) => {
                            tracing::debug!(error = %e, "account read for a subscription failed");
                            continue;
                        }
                    };
                    if (account.balance, account.nonce) == (balance, nonce) {
                        continue;
                    }
                    if let Some(Sub::Account { balance, nonce, .. }) = self.subs.get_mut(&id) {
                        (*balance, *nonce) = (account.balance, account.nonce);
                    }
                    let note = AccountNotification {
                        address,
                        balance: account.balance,
                        nonce: account.nonce,
                        height,
                    };
                    self.notify(id, &raw_response(&note))?;
                }
            }
        }
        for id in ended {
            if self.subs.remove(&id).is_some() {
                self.hub.release(1);
            }
        }
        if self.subs.is_empty() {
            self.blocks = None;
        }
        Ok(())
    }
}

fn invalid_params(message: impl Into<String>) -> ErrorObject {
    ErrorObject::new(codes::INVALID_PARAMS, message)
}

/// -32005 for a subscription bound, naming it.
fn too_many(bound: &str, limit: usize) -> ErrorObject {
    ErrorObject {
        code: codes::OVERLOADED,
        message: format!("subscription limit reached: {bound} = {limit}"),
        data: Some(json!({"reason": "too_many_subscriptions", "bound": bound, "limit": limit})),
    }
}

/// `subscribe` params: `{"kind": "blocks", "transactions"?: "hashes" | "none"}`,
/// `{"kind": "transaction", "hash": h}`, `{"kind": "account", "address": a}`, or positional
/// `[kind, argument?]`.
fn subscribe_params(params: Params) -> Result<Kind, ErrorObject> {
    const USAGE: &str = "subscribe expects {\"kind\": \"blocks\", \"transactions\"?: \"hashes\"}, {\"kind\": \"transaction\", \"hash\": h} or {\"kind\": \"account\", \"address\": a} (or [kind, argument])";
    // The kind, and the argument with the name it was given (none when positional).
    let (kind, arg): (Value, Option<(Option<String>, Value)>) = match params {
        Params::Positional(v) if (1..=2).contains(&v.len()) => {
            let mut v = v.into_iter();
            let kind = v.next().expect("len >= 1");
            (kind, v.next().map(|a| (None, a)))
        }
        Params::Named(mut m) if (1..=2).contains(&m.len()) => {
            let Some(kind) = m.remove("kind") else {
                return Err(invalid_params(format!("missing param `kind`; {USAGE}")));
            };
            (kind, m.into_iter().next().map(|(k, v)| (Some(k), v)))
        }
        _ => return Err(invalid_params(USAGE)),
    };
    let Some(kind) = kind.as_str() else {
        return Err(invalid_params(format!("kind: must be a string; {USAGE}")));
    };
    // The argument named `want` (or given by position); `None` if absent.
    let argument = |want: &str| -> Result<Option<Value>, ErrorObject> {
        match &arg {
            Some((Some(name), _)) if name != want => Err(invalid_params(format!(
                "subscribe {kind}: unknown param `{}` (expected: {want})",
                name.chars().take(64).collect::<String>()
            ))),
            Some((_, v)) => Ok(Some(v.clone())),
            None => Ok(None),
        }
    };
    let required_str = |want: &str| -> Result<String, ErrorObject> {
        match argument(want)? {
            Some(Value::String(s)) => Ok(s),
            Some(_) => Err(invalid_params(format!("{want}: must be a string"))),
            None => Err(invalid_params(format!(
                "subscribe {kind}: missing param `{want}`"
            ))),
        }
    };
    match kind {
        "blocks" => {
            let with_hashes = match argument("transactions")? {
                None => false,
                Some(v) => match v.as_str() {
                    Some("hashes") => true,
                    Some("none") => false,
                    _ => {
                        return Err(invalid_params(
                            "transactions: must be \"hashes\" or \"none\"",
                        ));
                    }
                },
            };
            Ok(Kind::Blocks { with_hashes })
        }
        "transaction" => {
            let s = required_str("hash")?;
            let hash = Hash::from_hex(&s).map_err(|e| {
                ErrorObject::with_reason(
                    codes::INVALID_PARAMS,
                    crate::error::reasons::BAD_HASH,
                    format!("hash: {e}"),
                )
            })?;
            Ok(Kind::Transaction(hash))
        }
        "account" => {
            let s = required_str("address")?;
            let address = s.parse::<Address>().map_err(|e| {
                ErrorObject::with_reason(
                    codes::INVALID_PARAMS,
                    crate::error::reasons::BAD_ADDRESS,
                    format!("address: {e}"),
                )
            })?;
            Ok(Kind::Account(address))
        }
        other => Err(invalid_params(format!(
            "kind: unknown subscription kind `{}` (expected blocks, transaction or account)",
            other.chars().take(64).collect::<String>()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(v: Value) -> Params {
        Params::Named(v.as_object().unwrap().clone())
    }

    #[test]
    fn subscribe_params_forms() {
        let h = Hash([7; 32]).to_hex();
        assert!(matches!(
            subscribe_params(named(json!({"kind": "blocks"}))),
            Ok(Kind::Blocks { with_hashes: false })
        ));
        assert!(matches!(
            subscribe_params(named(json!({"kind": "blocks", "transactions": "hashes"}))),
            Ok(Kind::Blocks { with_hashes: true })
        ));
        assert!(matches!(
            subscribe_params(Params::Positional(vec![json!("blocks"), json!("hashes")])),
            Ok(Kind::Blocks { with_hashes: true })
        ));
        match subscribe_params(named(json!({"kind": "transaction", "hash": h}))) {
            Ok(Kind::Transaction(got)) => assert_eq!(got, Hash([7; 32])),
            _ => panic!("transaction by name"),
        }
        assert!(matches!(
            subscribe_params(Params::Positional(vec![json!("transaction"), json!(h)])),
            Ok(Kind::Transaction(_))
        ));
        for bad in [
            Params::None,
            Params::Positional(vec![]),
            named(json!({})),
            named(json!({"kind": 1})),
            named(json!({"kind": "heads"})),
            named(json!({"kind": "blocks", "transactions": "full"})),
            named(json!({"kind": "blocks", "hash": h})),
            named(json!({"kind": "transaction"})),
            named(json!({"kind": "transaction", "hash": "zz"})),
            named(json!({"kind": "transaction", "address": h})),
            named(json!({"kind": "account", "address": "cairn1nope"})),
            named(json!({"kind": "account", "address": 5})),
            named(json!({"hash": h, "address": "x"})),
            Params::Positional(vec![json!("blocks"), json!("hashes"), json!(1)]),
        ] {
            let e = subscribe_params(bad).err().expect("refused");
            assert_eq!(e.code, codes::INVALID_PARAMS);
        }
    }

    #[test]
    fn closing_notices_name_the_reason() {
        let (reason, message, code) = Closing::QueueFull { queue_max: 9 }.notice().unwrap();
        assert_eq!((reason, code), ("send_queue_full", CLOSE_LAGGED));
        assert!(message.contains('9'), "{message}");
        let (reason, _, code) = Closing::Lagged { missed: 3 }.notice().unwrap();
        assert_eq!((reason, code), ("lagged", CLOSE_LAGGED));
        assert!(Closing::Lagged { missed: 3 }.is_lag());
        assert!(!Closing::Shutdown.is_lag());
        assert!(Closing::Client.notice().is_none());
        let (reason, _, code) = Closing::TooBig { limit: 1 }.notice().unwrap();
        assert_eq!((reason, code), ("message_too_big", CLOSE_TOO_BIG));
    }

    #[test]
    fn finalized_block_positions_and_accounts() {
        let header = BlockHeader {
            chain_id: "c".into(),
            height: 5,
            view: 5,
            parent_hash: Hash::ZERO,
            proposer: Address([1; 32]),
            timestamp_ms: 0,
            txs_root: Hash::ZERO,
            signed_txs_root: Hash::ZERO,
            state_root: Hash::ZERO,
        };
        for n in [3u8, 40] {
            let hashes: Vec<Hash> = (0..n).map(|i| Hash([i; 32])).collect();
            let b = FinalizedBlock::new(
                Hash([9; 32]),
                header.clone(),
                hashes,
                vec![Address([3; 32]), Address([2; 32]), Address([3; 32])],
            );
            assert_eq!(b.position(&Hash([2; 32])), Some(2));
            assert_eq!(b.position(&Hash([n; 32])), None);
            assert_eq!(b.accounts(), &[Address([2; 32]), Address([3; 32])]);
            let with: Value = serde_json::from_str(b.result_json(true).get()).unwrap();
            assert_eq!(with["transactionCount"], json!(n));
            assert_eq!(
                with["transactionHashes"].as_array().unwrap().len(),
                n as usize
            );
            let without: Value = serde_json::from_str(b.result_json(false).get()).unwrap();
            assert!(without.get("transactionHashes").is_none());
            assert_eq!(without["hash"], json!(Hash([9; 32]).to_hex()));
        }
    }
}
