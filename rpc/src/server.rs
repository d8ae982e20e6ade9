//! The HTTP server: configuration, connection handling, router, JSON-RPC 2.0 framing, limits.
//!
//! Connections are accepted by a loop this module owns ([`serve_listener`]): it caps open
//! connections per client IP and in total, and serves each connection with hyper's HTTP/1
//! server under a header read timeout and an idle timeout. Inside, `POST /` reads the whole
//! body under its own timeout before it takes a load-shedding permit, so clients that send
//! slowly (or not at all) never hold the permits that finished requests need.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::RpcBackend;
use crate::error::{ErrorObject, RpcError, codes};
use crate::methods::{Params, dispatch};
use crate::ws::{
    WS_MESSAGE_BYTES_RANGE, WS_SEND_QUEUE_LIMIT, WS_SUBSCRIPTIONS_LIMIT, WsHub, WsStats,
};

/// Smallest accepted [`RpcServerConfig::body_bytes_max`]: room for the largest transaction
/// in hex plus the JSON-RPC envelope.
pub const BODY_BYTES_MIN: usize = 4 * 1024;
/// Largest accepted [`RpcServerConfig::body_bytes_max`].
pub const BODY_BYTES_LIMIT: usize = 64 * 1024 * 1024;
/// Largest accepted [`RpcServerConfig::batch_requests_max`].
pub const BATCH_REQUESTS_LIMIT: usize = 10_000;
/// Largest accepted [`RpcServerConfig::concurrency_max`].
pub const CONCURRENCY_LIMIT: usize = 100_000;
/// Accepted range of [`RpcServerConfig::request_timeout_ms`].
pub const REQUEST_TIMEOUT_MS_RANGE: std::ops::RangeInclusive<u64> = 100..=600_000;
/// Accepted range of [`RpcServerConfig::header_read_timeout_ms`] and
/// [`RpcServerConfig::body_read_timeout_ms`].
pub const READ_TIMEOUT_MS_RANGE: std::ops::RangeInclusive<u64> = 50..=600_000;
/// Accepted range of [`RpcServerConfig::idle_timeout_ms`].
pub const IDLE_TIMEOUT_MS_RANGE: std::ops::RangeInclusive<u64> = 50..=3_600_000;
/// Largest accepted [`RpcServerConfig::connections_max`]. The node lowers it further to fit
/// the process's file-descriptor limit ([`RpcServerConfig::fit_connections_to`]).
pub const CONNECTIONS_LIMIT: usize = 1_000_000;
/// Most entries in [`RpcServerConfig::cors_allowed_origins`].
pub const CORS_ORIGINS_MAX: usize = 64;
/// Longest accepted origin in [`RpcServerConfig::cors_allowed_origins`], bytes.
pub const CORS_ORIGIN_BYTES_MAX: usize = 256;
/// Content type of the OpenMetrics 1.0.0 text format (what `prometheus-client` writes), for
/// the node's `GET /metrics`.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// How long browsers may cache a CORS preflight answer.
const CORS_MAX_AGE: Duration = Duration::from_secs(600);
/// After an accept error (e.g. out of file descriptors) the accept loop waits this long
/// before accepting again, so it does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// RPC server settings. Serde form (for the node's TOML config) uses these field names;
/// missing fields take the defaults, unknown fields are an error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RpcServerConfig {
    /// Address to listen on (port 0: any free port; see [`bind`]). Default `127.0.0.1:8545`.
    pub listen: SocketAddr,
    /// Largest request body in bytes; larger bodies get HTTP 413. Default 1 MiB.
    pub body_bytes_max: usize,
    /// Most requests in one batch; larger batches get one -32600 error. Default 100.
    pub batch_requests_max: usize,
    /// Most HTTP requests processed at once on `POST /`, counting only requests whose body
    /// has fully arrived; requests beyond it are shed at once with HTTP 503 and a -32005
    /// error (no queueing). Default 64.
    pub concurrency_max: usize,
    /// Bound on one HTTP exchange (reading the body and running every call in it); past
    /// it the server answers HTTP 503 with an empty body. Default 10 000.
    pub request_timeout_ms: u64,
    /// Time a client has to send a request's line and headers, from the first read of that
    /// request; past it the connection is closed. Range [`READ_TIMEOUT_MS_RANGE`].
    /// Default 5 000.
    pub header_read_timeout_ms: u64,
    /// Time a client has to send the whole body of a `POST /` once its headers arrived;
    /// past it the server answers HTTP 408 and closes the connection. Range
    /// [`READ_TIMEOUT_MS_RANGE`]. Default 5 000.
    pub body_read_timeout_ms: u64,
    /// A connection with no request in progress for this long is closed. Range
    /// [`IDLE_TIMEOUT_MS_RANGE`]. Default 30 000.
    pub idle_timeout_ms: u64,
    /// Most open connections in total; further connections are accepted and closed at
    /// once. Must sit below the process's file-descriptor limit (see
    /// [`RpcServerConfig::fit_connections_to`]). Range 1..=[`CONNECTIONS_LIMIT`].
    /// Default 1 024.
    pub connections_max: usize,
    /// Most open connections from one client IP address; further ones are accepted and
    /// closed at once. Range 1..=`connections_max`. Default 256.
    pub connections_per_ip_max: usize,
    /// Origins (`scheme://host[:port]`) that browsers may call the server from (CORS).
    /// Empty (the default): no CORS headers, so browsers refuse cross-origin reads;
    /// `["*"]`: any origin. At most [`CORS_ORIGINS_MAX`] entries; `"*"` only alone.
    pub cors_allowed_origins: Vec<String>,
    /// Most open WebSocket connections (`GET /ws`); further upgrade requests get HTTP 503
    /// with a -32005 error (`data.reason` `too_many_connections`). They also count against
    /// `connections_max` and `connections_per_ip_max`. 0 turns WebSocket subscriptions
    /// off. Range 0..=[`WS_SUBSCRIPTIONS_LIMIT`]. Default 256.
    pub ws_connections_max: usize,
    /// Most open subscriptions on one WebSocket connection; a `subscribe` beyond it gets a
    /// -32005 error (`data.reason` `too_many_subscriptions`). Range
    /// 1..=[`WS_SUBSCRIPTIONS_LIMIT`]. Default 1 024.
    pub ws_subscriptions_per_connection_max: usize,
    /// Most open subscriptions over all WebSocket connections; as above beyond it. Range
    /// 1..=[`WS_SUBSCRIPTIONS_LIMIT`]. Default 10 000.
    pub ws_subscriptions_max: usize,
    /// Most messages (answers and notifications) waiting to be sent on one WebSocket
    /// connection. A connection whose queue is full is told why (`closing` notification,
    /// reason `send_queue_full`) and disconnected. Range 1..=[`WS_SEND_QUEUE_LIMIT`].
    /// Default 4 096.
    pub ws_send_queue_max: usize,
    /// Largest WebSocket message (and frame) a client may send, bytes, checked from the
    /// frame header before the message is read: a larger one closes the connection (code
    /// 1009, reason `message_too_big`). Range [`WS_MESSAGE_BYTES_RANGE`]. Default 65 536.
    pub ws_message_bytes_max: usize,
}

impl Default for RpcServerConfig {
    fn default() -> Self {
        RpcServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8545)),
            body_bytes_max: 1024 * 1024,
            batch_requests_max: 100,
            concurrency_max: 64,
            request_timeout_ms: 10_000,
            header_read_timeout_ms: 5_000,
            body_read_timeout_ms: 5_000,
            idle_timeout_ms: 30_000,
            connections_max: 1024,
            connections_per_ip_max: 256,
            cors_allowed_origins: Vec::new(),
            ws_connections_max: 256,
            ws_subscriptions_per_connection_max: 1024,
            ws_subscriptions_max: 10_000,
            ws_send_queue_max: 4096,
            ws_message_bytes_max: 64 * 1024,
        }
    }
}

impl RpcServerConfig {
    /// Checks every bound; the error names the field and the accepted range.
    pub fn validate(&self) -> Result<(), RpcServerError> {
        fn bad(field: &'static str, reason: String) -> Result<(), RpcServerError> {
            Err(RpcServerError::InvalidConfig { field, reason })
        }
        fn in_range<T: PartialOrd + std::fmt::Display>(
            field: &'static str,
            value: T,
            range: std::ops::RangeInclusive<T>,
        ) -> Result<(), RpcServerError> {
            if range.contains(&value) {
                return Ok(());
            }
            bad(
                field,
                format!("{value} is outside {}..={}", range.start(), range.end()),
            )
        }
        in_range(
            "body_bytes_max",
            self.body_bytes_max,
            BODY_BYTES_MIN..=BODY_BYTES_LIMIT,
        )?;
        in_range(
            "batch_requests_max",
            self.batch_requests_max,
            1..=BATCH_REQUESTS_LIMIT,
        )?;
        in_range(
            "concurrency_max",
            self.concurrency_max,
            1..=CONCURRENCY_LIMIT,
        )?;
        in_range(
            "request_timeout_ms",
            self.request_timeout_ms,
            REQUEST_TIMEOUT_MS_RANGE,
        )?;
        in_range(
            "header_read_timeout_ms",
            self.header_read_timeout_ms,
            READ_TIMEOUT_MS_RANGE,
        )?;
        in_range(
            "body_read_timeout_ms",
            self.body_read_timeout_ms,
            READ_TIMEOUT_MS_RANGE,
        )?;
        in_range(
            "idle_timeout_ms",
            self.idle_timeout_ms,
            IDLE_TIMEOUT_MS_RANGE,
        )?;
        in_range(
            "connections_max",
            self.connections_max,
            1..=CONNECTIONS_LIMIT,
        )?;
        in_range(
            "connections_per_ip_max",
            self.connections_per_ip_max,
            1..=self.connections_max,
        )?;
        in_range(
            "ws_connections_max",
            self.ws_connections_max,
            0..=WS_SUBSCRIPTIONS_LIMIT,
        )?;
        in_range(
            "ws_subscriptions_per_connection_max",
            self.ws_subscriptions_per_connection_max,
            1..=WS_SUBSCRIPTIONS_LIMIT,
        )?;
        in_range(
            "ws_subscriptions_max",
            self.ws_subscriptions_max,
            1..=WS_SUBSCRIPTIONS_LIMIT,
        )?;
        in_range(
            "ws_send_queue_max",
            self.ws_send_queue_max,
            1..=WS_SEND_QUEUE_LIMIT,
        )?;
        in_range(
            "ws_message_bytes_max",
            self.ws_message_bytes_max,
            WS_MESSAGE_BYTES_RANGE,
        )?;
        cors_allow_origin(&self.cors_allowed_origins).map_err(|reason| {
            RpcServerError::InvalidConfig {
                field: "cors_allowed_origins",
                reason,
            }
        })?;
        Ok(())
    }

    /// Lowers [`connections_max`](Self::connections_max) (and `connections_per_ip_max`
    /// with it) to `connections_available`, the connections the process can still open
    /// within its file-descriptor limit. Returns the previous cap if it was lowered, `None`
    /// if it already fit; an error if `connections_available` is 0.
    pub fn fit_connections_to(
        &mut self,
        connections_available: u64,
    ) -> Result<Option<usize>, RpcServerError> {
        if connections_available == 0 {
            return Err(RpcServerError::InvalidConfig {
                field: "connections_max",
                reason: "the file-descriptor limit leaves no room for RPC connections".into(),
            });
        }
        let available = usize::try_from(connections_available).unwrap_or(usize::MAX);
        if self.connections_max <= available {
            return Ok(None);
        }
        let before = self.connections_max;
        self.connections_max = available;
        self.connections_per_ip_max = self.connections_per_ip_max.min(available);
        Ok(Some(before))
    }
}

/// The CORS origin rule for `origins` (see [`RpcServerConfig::cors_allowed_origins`]):
/// `None` for no CORS headers; an error names what is wrong.
fn cors_allow_origin(origins: &[String]) -> Result<Option<AllowOrigin>, String> {
    if origins.is_empty() {
        return Ok(None);
    }
    if origins.len() > CORS_ORIGINS_MAX {
        return Err(format!(
            "{} origins, more than the limit of {CORS_ORIGINS_MAX}",
            origins.len()
        ));
    }
    if origins.iter().any(|o| o == "*") {
        if origins.len() > 1 {
            return Err("\"*\" must be the only entry".into());
        }
        return Ok(Some(AllowOrigin::any()));
    }
    let mut values = Vec::with_capacity(origins.len());
    for o in origins {
        let well_formed = o.len() <= CORS_ORIGIN_BYTES_MAX
            && ["http://", "https://"].iter().any(|scheme| {
                o.strip_prefix(scheme)
                    .is_some_and(|host| !host.is_empty() && !host.contains(['/', '?', '#', ' ']))
            });
        let value = HeaderValue::from_str(o).ok().filter(|_| well_formed);
        let Some(value) = value else {
            return Err(format!(
                "`{o}` is not an origin `http(s)://host[:port]` of at most {CORS_ORIGIN_BYTES_MAX} bytes, nor \"*\""
            ));
        };
        values.push(value);
    }
    Ok(Some(AllowOrigin::list(values)))
}

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RpcServerError {
    /// A config value is out of range.
    #[error("invalid RPC config: {field}: {reason}")]
    InvalidConfig {
        /// Field name as in [`RpcServerConfig`].
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The listen address could not be bound.
    #[error("cannot listen for RPC on {addr}: {source}")]
    Bind {
        /// Address asked for.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Accepting or serving connections failed.
    #[error("RPC server failed: {source}")]
    Serve {
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

pub(crate) struct ServerState {
    backend: Arc<dyn RpcBackend>,
    /// WebSocket subscriptions (`GET /ws`).
    pub(crate) ws: Arc<WsHub>,
    batch_requests_max: usize,
    /// Load-shedding permits, taken once a request's body has fully arrived.
    permits: Arc<Semaphore>,
    body_read_timeout: Duration,
}

/// The HTTP routes: `POST /` (JSON-RPC 2.0), `GET /ws` (WebSocket subscriptions, see
/// [`crate::ws`]), `GET /health` (`{"status":"ok"}`) and the dashboard (`GET /dashboard`
/// and its two assets, [`crate::dashboard`]), with the
/// `Host` check (400), the body limit (413), the timeout (503), CORS (if configured) and,
/// on `POST /`, the content-type check (415), the body read timeout (408) and the
/// concurrency limit (503 with a -32005 error). Routes added to the result afterwards get
/// none of these layers: use [`router_with_routes`] for more routes.
///
/// `config` should have passed [`RpcServerConfig::validate`]; values are used as given
/// (the concurrency limit is clamped to at least 1, invalid CORS origins are ignored).
/// `config.listen` and the connection settings are not used here but by
/// [`serve_listener`].
pub fn router(config: &RpcServerConfig, backend: Arc<dyn RpcBackend>) -> Router {
    router_with_routes(config, backend, Router::new())
}

/// [`router`] with `extra` routes (e.g. the node's `GET /metrics`) merged in before the
/// layers, so they get the same `Host` check, body limit, timeout and CORS policy.
pub fn router_with_routes(
    config: &RpcServerConfig,
    backend: Arc<dyn RpcBackend>,
    extra: Router,
) -> Router {
    router_with_ws_stats(config, backend, extra, Arc::new(WsStats::default()))
}

/// [`router_with_routes`] whose WebSocket server updates `ws_stats` (open connections and
/// subscriptions, lag disconnects), for the node's metrics and for tests.
pub fn router_with_ws_stats(
    config: &RpcServerConfig,
    backend: Arc<dyn RpcBackend>,
    extra: Router,
    ws_stats: Arc<WsStats>,
) -> Router {
    let state = Arc::new(ServerState {
        ws: Arc::new(WsHub::new(config, backend.clone(), ws_stats)),
        backend,
        batch_requests_max: config.batch_requests_max,
        permits: Arc::new(Semaphore::new(
            config.concurrency_max.clamp(1, Semaphore::MAX_PERMITS),
        )),
        body_read_timeout: Duration::from_millis(config.body_read_timeout_ms),
    });
    let router = Router::new()
        .route("/", post(handle_rpc))
        .route("/health", get(health))
        .route("/ws", get(crate::ws::upgrade))
        .with_state(state)
        .merge(crate::dashboard::routes())
        .merge(extra)
        // The limit layer below enforces the bound; axum's own 2 MiB default would otherwise
        // also apply to the `Bytes` extractor.
        .layer(DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(config.body_bytes_max))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_millis(config.request_timeout_ms),
        ));
    let router = match cors_allow_origin(&config.cors_allowed_origins) {
        Ok(Some(origins)) => router.layer(
            CorsLayer::new()
                .allow_origin(origins)
                .allow_methods([Method::GET, Method::POST])
                .allow_headers([header::CONTENT_TYPE])
                .max_age(CORS_MAX_AGE),
        ),
        Ok(None) => router,
        Err(reason) => {
            tracing::warn!(%reason, "rpc cors_allowed_origins ignored");
            router
        }
    };
    router
        .layer(middleware::from_fn(require_host))
        .layer(TraceLayer::new_for_http())
}

/// Binds `config.listen`. Returns the listener and the address actually bound (which tells
/// the port when `config.listen` has port 0).
pub async fn bind(config: &RpcServerConfig) -> Result<(TcpListener, SocketAddr), RpcServerError> {
    let addr = config.listen;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| RpcServerError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| RpcServerError::Bind { addr, source })?;
    Ok((listener, local))
}

/// Validates `config`, binds it and serves until `shutdown` completes, then stops
/// accepting and waits for in-flight requests to finish.
pub async fn serve(
    config: RpcServerConfig,
    backend: Arc<dyn RpcBackend>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RpcServerError> {
    config.validate()?;
    let (listener, addr) = bind(&config).await?;
    tracing::info!(%addr, "RPC server listening");
    let app = router(&config, backend);
    serve_listener(listener, &config, app, shutdown).await
}

/// Open-connection accounting: a total semaphore and a count per client IP.
#[derive(Clone)]
struct ConnectionLimits {
    total: Arc<Semaphore>,
    per_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
    per_ip_max: usize,
}

/// One admitted connection's share of [`ConnectionLimits`]; released on drop (by the last
/// holder: a WebSocket upgraded from the connection keeps it).
pub(crate) struct ConnectionSlot {
    _permit: OwnedSemaphorePermit,
    ip: IpAddr,
    per_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl ConnectionLimits {
    /// A slot for a new connection from `ip`, or why there is none.
    fn admit(&self, ip: IpAddr) -> Result<ConnectionSlot, &'static str> {
        let permit = self
            .total
            .clone()
            .try_acquire_owned()
            .map_err(|_| "connections_max reached")?;
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        let open = per_ip.entry(ip).or_insert(0);
        if *open >= self.per_ip_max {
            return Err("connections_per_ip_max reached");
        }
        *open += 1;
        Ok(ConnectionSlot {
            _permit: permit,
            ip,
            per_ip: self.per_ip.clone(),
        })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(open) = per_ip.get_mut(&self.ip) {
            *open -= 1;
            if *open == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}

/// Per-connection timing given to each connection task.
#[derive(Clone, Copy)]
struct ConnectionTimeouts {
    header_read: Duration,
    idle: Duration,
    /// How long shutdown waits for in-flight requests.
    drain: Duration,
}

/// Serves `app` (normally [`router`], perhaps with more routes) on an already bound
/// listener until `shutdown` completes; then stops accepting, closes idle connections and
/// waits for in-flight requests (at most `request_timeout_ms` and a second more).
///
/// Uses `config`'s connection settings: `connections_max`, `connections_per_ip_max`
/// (connections beyond them are accepted and closed at once), `header_read_timeout_ms`
/// and `idle_timeout_ms`. HTTP/1.1 only.
pub async fn serve_listener(
    listener: TcpListener,
    config: &RpcServerConfig,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RpcServerError> {
    let connections_max = config.connections_max.clamp(1, Semaphore::MAX_PERMITS);
    let limits = ConnectionLimits {
        total: Arc::new(Semaphore::new(connections_max)),
        per_ip: Arc::new(Mutex::new(HashMap::new())),
        per_ip_max: config.connections_per_ip_max.max(1),
    };
    let timeouts = ConnectionTimeouts {
        header_read: Duration::from_millis(config.header_read_timeout_ms),
        idle: Duration::from_millis(config.idle_timeout_ms),
        drain: Duration::from_millis(config.request_timeout_ms) + Duration::from_secs(1),
    };
    let (closing_tx, closing_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut refused: u64 = 0;
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        // Reap finished connection tasks so the set stays bounded by `connections_max`.
        while connections.try_join_next().is_some() {}
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Per-connection errors (reset before accept) and resource exhaustion
                // (EMFILE) alike: log, pause briefly, go on.
                tracing::warn!(error = %e, "RPC accept failed");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        match limits.admit(peer.ip()) {
            Ok(slot) => {
                connections.spawn(serve_connection(
                    stream,
                    app.clone(),
                    timeouts,
                    closing_rx.clone(),
                    slot,
                ));
            }
            Err(why) => {
                refused += 1;
                // Logged at debug per connection; a flood is visible at warn every 1024.
                tracing::debug!(%peer, why, "RPC connection refused");
                if refused.is_power_of_two() || refused % 1024 == 0 {
                    tracing::warn!(%peer, why, refused, "RPC connections refused");
                }
                drop(stream);
            }
        }
    }
    drop(listener);
    let _ = closing_tx.send(true);
    let drained = tokio::time::timeout(timeouts.drain, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = connections.len(),
            "RPC connections still open at shutdown; closing them"
        );
        connections.shutdown().await;
    }
    Ok(())
}

/// Requests in progress on one connection and when the last one started or ended.
struct Activity {
    started: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds after `started`.
    last_ms: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// When the connection will have been idle for `idle`, if nothing happens before.
    fn idle_deadline(&self, idle: Duration) -> tokio::time::Instant {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return tokio::time::Instant::now() + idle;
        }
        let last = self.started + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        tokio::time::Instant::from_std(last + idle)
    }
}

/// Marks one request in progress on its connection; ends it on drop.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn start(activity: &Arc<Activity>) -> InFlight {
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        activity.touch();
        InFlight(activity.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What a request knows of its connection (a request extension): the server's shutdown
/// signal and the connection's slot, which a WebSocket upgraded from it keeps, so open
/// WebSockets count against the connection bounds and close on shutdown.
#[derive(Clone)]
pub(crate) struct ConnContext {
    /// Becomes `true` when the server shuts down.
    pub(crate) closing: watch::Receiver<bool>,
    _slot: Arc<ConnectionSlot>,
}

/// Serves one connection until the client closes it, a timeout closes it, or shutdown.
async fn serve_connection(
    stream: TcpStream,
    app: Router,
    timeouts: ConnectionTimeouts,
    mut closing: watch::Receiver<bool>,
    slot: ConnectionSlot,
) {
    let _ = stream.set_nodelay(true);
    let slot = Arc::new(slot);
    let context = ConnContext {
        closing: closing.clone(),
        _slot: slot.clone(),
    };
    let activity = Arc::new(Activity {
        started: Instant::now(),
        in_flight: AtomicUsize::new(0),
        last_ms: AtomicU64::new(0),
    });
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            let in_flight = InFlight::start(&activity);
            let app = app.clone();
            request.extensions_mut().insert(context.clone());
            async move {
                let response =
                    tower::ServiceExt::oneshot(app, request.map(axum::body::Body::new)).await;
                drop(in_flight);
                response
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(timeouts.header_read)
        .keep_alive(true);
    // With upgrades: `GET /ws` hands the connection over to a WebSocket, which then holds
    // the connection's slot (`ConnContext`) until it closes.
    let connection = builder
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(connection);
    let mut shutting_down = false;
    loop {
        let idle_deadline = activity.idle_deadline(timeouts.idle);
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(ip = %slot.ip, error = %e, "RPC connection ended");
                }
                break;
            }
            _ = closing.changed(), if !shutting_down => {
                shutting_down = true;
                connection.as_mut().graceful_shutdown();
            }
            () = tokio::time::sleep_until(idle_deadline) => {
                if activity.in_flight.load(Ordering::Relaxed) == 0
                    && tokio::time::Instant::now() >= activity.idle_deadline(timeouts.idle)
                {
                    tracing::debug!(ip = %slot.ip, "RPC connection idle; closing");
                    break;
                }
            }
        }
    }
    drop(slot);
}

/// A server running on a tokio task (see [`spawn`]). Dropping the handle also shuts the
/// server down.
#[derive(Debug)]
pub struct RpcServerHandle {
    local_addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), RpcServerError>>>,
}

impl RpcServerHandle {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http://` URL of the server, for [`crate::RpcClient::new`].
    pub fn url(&self) -> String {
        format!("http://{}", self.local_addr)
    }

    /// Stops accepting, waits for in-flight requests, and returns how the server ended.
    pub async fn shutdown(mut self) -> Result<(), RpcServerError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.task.take() {
            Some(task) => task.await.unwrap_or_else(|e| {
                Err(RpcServerError::Serve {
                    source: std::io::Error::other(format!("server task failed: {e}")),
                })
            }),
            None => Ok(()),
        }
    }
}

/// Validates `config`, binds it and serves on a new tokio task. For tests and embedders
/// that want the bound address (listen on port 0) and a handle to stop the server.
pub async fn spawn(
    config: RpcServerConfig,
    backend: Arc<dyn RpcBackend>,
) -> Result<RpcServerHandle, RpcServerError> {
    spawn_with_ws_stats(config, backend, Arc::new(WsStats::default())).await
}

/// [`spawn`] whose WebSocket server updates `ws_stats` ([`router_with_ws_stats`]).
pub async fn spawn_with_ws_stats(
    config: RpcServerConfig,
    backend: Arc<dyn RpcBackend>,
    ws_stats: Arc<WsStats>,
) -> Result<RpcServerHandle, RpcServerError> {
    config.validate()?;
    let (listener, local_addr) = bind(&config).await?;
    let app = router_with_ws_stats(&config, backend, Router::new(), ws_stats);
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        serve_listener(listener, &config, app, async move {
            // Fires on an explicit shutdown and when the handle (sender) is dropped.
            let _ = rx.await;
        })
        .await
    });
    tracing::info!(addr = %local_addr, "RPC server listening");
    Ok(RpcServerHandle {
        local_addr,
        shutdown: Some(tx),
        task: Some(task),
    })
}

async fn health() -> impl IntoResponse {
    axum::Json(json!({ "status": "ok" }))
}

/// An HTTP error status with a JSON-RPC error body (`id: null`).
fn http_error(status: StatusCode, code: i64, message: impl Into<String>) -> Response {
    let err = ErrorObject::new(code, message);
    (status, axum::Json(error_response(Value::Null, err))).into_response()
}

/// [`http_error`] with `data: {"reason": reason}`.
pub(crate) fn http_error_reason(
    status: StatusCode,
    code: i64,
    reason: &str,
    message: impl Into<String>,
) -> Response {
    let err = ErrorObject {
        code,
        message: message.into(),
        data: Some(json!({ "reason": reason })),
    };
    (status, axum::Json(error_response(Value::Null, err))).into_response()
}

/// Refuses a request without exactly one `Host` header with HTTP 400 (RFC 9112 §3.2).
async fn require_host(request: Request, next: Next) -> Response {
    if request.headers().get_all(header::HOST).iter().count() != 1 {
        return http_error(
            StatusCode::BAD_REQUEST,
            codes::INVALID_REQUEST,
            "invalid request: exactly one Host header is required",
        );
    }
    next.run(request).await
}

/// True if the `Content-Type` is `application/json` (any parameters, any case).
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return false;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let media_type = value.split(';').next().unwrap_or("").trim();
    media_type.eq_ignore_ascii_case("application/json")
}

/// `POST /`: content type, then the body under its own timeout, then a load-shedding
/// permit (a request that finds none is answered at once), then the calls.
async fn handle_rpc(State(state): State<Arc<ServerState>>, request: Request) -> Response {
    if !is_json(request.headers()) {
        return http_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            codes::INVALID_REQUEST,
            "invalid request: Content-Type must be application/json",
        );
    }
    let body = match tokio::time::timeout(
        state.body_read_timeout,
        Bytes::from_request(request, &()),
    )
    .await
    {
        Ok(Ok(body)) => body,
        Ok(Err(rejection)) => return rejection.into_response(),
        Err(_) => {
            tracing::debug!("RPC request body not received in time");
            let mut response = http_error(
                StatusCode::REQUEST_TIMEOUT,
                codes::INVALID_REQUEST,
                format!(
                    "invalid request: body not received within {} ms",
                    state.body_read_timeout.as_millis()
                ),
            );
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return response;
        }
    };
    let Ok(permit) = state.permits.clone().try_acquire_owned() else {
        tracing::debug!("RPC request shed: concurrency limit reached");
        return http_error(
            StatusCode::SERVICE_UNAVAILABLE,
            codes::OVERLOADED,
            "server busy: too many requests in flight, retry later",
        );
    };
    let response = handle_body(&state, &body).await;
    drop(permit);
    response
}

/// Runs a whole body: one request object or a batch.
async fn handle_body(state: &ServerState, body: &[u8]) -> Response {
    let parse_error = |e: serde_json::Error| {
        let err = ErrorObject::new(codes::PARSE_ERROR, format!("parse error: {e}"));
        reply(Some(raw_response(&error_response(Value::Null, err))))
    };
    let is_batch = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
    if !is_batch {
        return match serde_json::from_slice::<&RawValue>(body) {
            Ok(item) => reply(handle_one(state, item).await),
            Err(e) => parse_error(e),
        };
    }
    let items: Vec<&RawValue> = match serde_json::from_slice(body) {
        Ok(items) => items,
        Err(e) => return parse_error(e),
    };
    if items.is_empty() {
        let err = ErrorObject::new(codes::INVALID_REQUEST, "invalid request: empty batch");
        return reply(Some(raw_response(&error_response(Value::Null, err))));
    }
    if items.len() > state.batch_requests_max {
        let err = ErrorObject::new(
            codes::INVALID_REQUEST,
            format!(
                "invalid request: batch of {} requests is more than the limit of {}",
                items.len(),
                state.batch_requests_max
            ),
        );
        return reply(Some(raw_response(&error_response(Value::Null, err))));
    }
    // Sequential on purpose: a batch counts once against the concurrency limit.
    let mut responses = Vec::with_capacity(items.len());
    for item in items {
        if let Some(r) = handle_one(state, item).await {
            responses.push(r);
        }
    }
    if responses.is_empty() {
        return reply(None);
    }
    axum::Json(responses).into_response()
}

/// A JSON body with 200, or 204 with no body when every request was a notification.
fn reply(body: Option<Box<RawValue>>) -> Response {
    match body {
        Some(v) => axum::Json(v).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    }
}

/// A response value as JSON text (serializing a `Value` cannot fail).
pub(crate) fn raw_response(response: &impl Serialize) -> Box<RawValue> {
    serde_json::value::to_raw_value(response).unwrap_or_else(|e| {
        tracing::error!(error = %e, "RPC response not serializable");
        RawValue::from_string("null".into()).expect("`null` is JSON")
    })
}

pub(crate) struct Call {
    /// `None` for a notification.
    pub(crate) id: Option<Value>,
    pub(crate) method: String,
    pub(crate) params: Params,
}

/// The `id` member's JSON text, as the client sent it (`None` if absent or `null`).
#[derive(Deserialize)]
struct IdText<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
}

/// The id to answer with: the client's exact JSON text for a string or number id (so ids
/// beyond 64-bit integers and floats come back byte for byte), `null` otherwise.
pub(crate) fn echo_id(id: &Value, item: &RawValue) -> Box<RawValue> {
    if matches!(id, Value::String(_) | Value::Number(_)) {
        if let Ok(IdText { id: Some(raw) }) = serde_json::from_str::<IdText>(item.get()) {
            if let Ok(raw) = RawValue::from_string(raw.get().to_owned()) {
                return raw;
            }
        }
    }
    // Null, or a duplicate `id` member (the last one counts, as in parsing).
    raw_response(id)
}

/// One JSON-RPC response object, with the id as raw JSON text.
#[derive(Serialize)]
struct ResponseObject<'a> {
    jsonrpc: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a ErrorObject>,
    id: &'a RawValue,
}

/// Runs one request object. `None` for a valid notification (executed, not answered).
async fn handle_one(state: &ServerState, item: &RawValue) -> Option<Box<RawValue>> {
    let respond = |id: &Value, result: Result<&Value, &ErrorObject>| {
        let id = echo_id(id, item);
        let (result, error) = match result {
            Ok(v) => (Some(v), None),
            Err(e) => (None, Some(e)),
        };
        raw_response(&ResponseObject {
            jsonrpc: "2.0",
            result,
            error,
            id: &id,
        })
    };
    if !state.backend.submissions_open() {
        if let Some(id) = submission_call_id(item) {
            // Refused whole, before the params are decoded: under overload a client offers
            // far more transactions than the node can take, and decoding each one only to
            // refuse it cost more than the work the node could still do.
            let err: ErrorObject = RpcError::Overloaded {
                message: "mempool full; retry the whole call later".into(),
            }
            .into();
            return id.map(|id| respond(&id, Err(&err)));
        }
    }
    let value: Value = match serde_json::from_str(item.get()) {
        Ok(v) => v,
        Err(e) => {
            let err = ErrorObject::new(codes::PARSE_ERROR, format!("parse error: {e}"));
            return Some(respond(&Value::Null, Err(&err)));
        }
    };
    let call = match parse_call(value) {
        Ok(c) => c,
        Err((id, err)) => return Some(respond(&id, Err(&err))),
    };
    let result = dispatch(state.backend.as_ref(), &call.method, call.params).await;
    if let Err(e) = &result {
        if e.code == codes::INTERNAL_ERROR {
            tracing::warn!(method = %call.method, error = %e.message, "RPC call failed");
        } else {
            tracing::debug!(method = %call.method, code = e.code, error = %e.message, "RPC call refused");
        }
    }
    let id = call.id?;
    Some(respond(&id, result.as_ref()))
}

/// The envelope of a request, read without decoding its params (serde skips them: a scan,
/// no allocation per element).
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    jsonrpc: Option<&'a str>,
    #[serde(borrow, default)]
    method: Option<&'a str>,
    #[serde(default)]
    id: IdMember,
}

/// The `id` member as sent: absent (`None`, a notification) or present, `null` included
/// (a plain `Option<Value>` would read `"id": null` as absent).
#[derive(Default)]
struct IdMember(Option<Value>);

impl<'de> Deserialize<'de> for IdMember {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<IdMember, D::Error> {
        Value::deserialize(d).map(|v| IdMember(Some(v)))
    }
}

/// For a well-formed `sendTransaction` or `sendTransactions` request: `Some(Some(id))`, or
/// `Some(None)` for a notification. `None` for any other method or anything the full parse
/// must judge (bad envelope, escaped strings, a non-scalar id): those take the normal path.
fn submission_call_id(item: &RawValue) -> Option<Option<Value>> {
    let e: Envelope<'_> = serde_json::from_str(item.get()).ok()?;
    if e.jsonrpc != Some("2.0") || !matches!(e.method, Some("sendTransaction" | "sendTransactions"))
    {
        return None;
    }
    match e.id.0 {
        None => Some(None),
        Some(id @ (Value::String(_) | Value::Number(_) | Value::Null)) => Some(Some(id)),
        Some(_) => None,
    }
}

fn error_response(id: Value, err: ErrorObject) -> Value {
    json!({ "jsonrpc": "2.0", "error": err, "id": id })
}

/// Validates the request object. On error returns the id to answer with (the request's
/// own id when it is valid, else null) and a -32600 error.
pub(crate) fn parse_call(item: Value) -> Result<Call, (Value, ErrorObject)> {
    let invalid = |id: Value, msg: &str| {
        (
            id,
            ErrorObject::new(codes::INVALID_REQUEST, format!("invalid request: {msg}")),
        )
    };
    let Value::Object(mut obj) = item else {
        return Err(invalid(Value::Null, "a request must be a JSON object"));
    };
    let id = match obj.remove("id") {
        None => None,
        Some(id @ (Value::String(_) | Value::Number(_) | Value::Null)) => Some(id),
        Some(_) => {
            return Err(invalid(
                Value::Null,
                "`id` must be a string, a number or null",
            ));
        }
    };
    let reply_id = id.clone().unwrap_or(Value::Null);
    match obj.get("jsonrpc") {
        Some(Value::String(v)) if v == "2.0" => {}
        _ => return Err(invalid(reply_id, "`jsonrpc` must be \"2.0\"")),
    }
    let method = match obj.remove("method") {
        Some(Value::String(m)) => m,
        Some(_) => return Err(invalid(reply_id, "`method` must be a string")),
        None => return Err(invalid(reply_id, "`method` is missing")),
    };
    let params = match obj.remove("params") {
        None | Some(Value::Null) => Params::None,
        Some(Value::Array(v)) => Params::Positional(v),
        Some(Value::Object(m)) => Params::Named(m),
        Some(_) => return Err(invalid(reply_id, "`params` must be an array or an object")),
    };
    Ok(Call { id, method, params })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_default_validates_and_bounds_are_checked() {
        let c = RpcServerConfig::default();
        c.validate().unwrap();
        assert_eq!(c.body_bytes_max, 1 << 20);
        let cases: [(&str, RpcServerConfig); 13] = [
            (
                "body_bytes_max",
                RpcServerConfig {
                    body_bytes_max: 10,
                    ..c.clone()
                },
            ),
            (
                "batch_requests_max",
                RpcServerConfig {
                    batch_requests_max: 0,
                    ..c.clone()
                },
            ),
            (
                "concurrency_max",
                RpcServerConfig {
                    concurrency_max: 0,
                    ..c.clone()
                },
            ),
            (
                "request_timeout_ms",
                RpcServerConfig {
                    request_timeout_ms: 0,
                    ..c.clone()
                },
            ),
            (
                "request_timeout_ms",
                RpcServerConfig {
                    request_timeout_ms: 10_000_000,
                    ..c.clone()
                },
            ),
            (
                "header_read_timeout_ms",
                RpcServerConfig {
                    header_read_timeout_ms: 0,
                    ..c.clone()
                },
            ),
            (
                "body_read_timeout_ms",
                RpcServerConfig {
                    body_read_timeout_ms: 600_001,
                    ..c.clone()
                },
            ),
            (
                "idle_timeout_ms",
                RpcServerConfig {
                    idle_timeout_ms: 10,
                    ..c.clone()
                },
            ),
            (
                "connections_max",
                RpcServerConfig {
                    connections_max: 0,
                    ..c.clone()
                },
            ),
            (
                "connections_max",
                RpcServerConfig {
                    connections_max: CONNECTIONS_LIMIT + 1,
                    connections_per_ip_max: 1,
                    ..c.clone()
                },
            ),
            (
                "connections_per_ip_max",
                RpcServerConfig {
                    connections_per_ip_max: c.connections_max + 1,
                    ..c.clone()
                },
            ),
            (
                "connections_per_ip_max",
                RpcServerConfig {
                    connections_per_ip_max: 0,
                    ..c.clone()
                },
            ),
            (
                "cors_allowed_origins",
                RpcServerConfig {
                    cors_allowed_origins: vec!["https://a.example".into(); CORS_ORIGINS_MAX + 1],
                    ..c.clone()
                },
            ),
        ];
        for (field, cfg) in cases {
            match cfg.validate() {
                Err(RpcServerError::InvalidConfig { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    #[test]
    fn connections_fit_the_descriptor_limit() {
        let mut c = RpcServerConfig {
            connections_max: 1000,
            connections_per_ip_max: 300,
            ..RpcServerConfig::default()
        };
        assert_eq!(c.fit_connections_to(5000).unwrap(), None);
        assert_eq!((c.connections_max, c.connections_per_ip_max), (1000, 300));
        assert_eq!(c.fit_connections_to(500).unwrap(), Some(1000));
        assert_eq!((c.connections_max, c.connections_per_ip_max), (500, 300));
        assert_eq!(c.fit_connections_to(100).unwrap(), Some(500));
        assert_eq!((c.connections_max, c.connections_per_ip_max), (100, 100));
        c.validate().unwrap();
        assert!(matches!(
            c.fit_connections_to(0),
            Err(RpcServerError::InvalidConfig {
                field: "connections_max",
                ..
            })
        ));
    }

    #[test]
    fn cors_origins_are_checked() {
        assert!(cors_allow_origin(&[]).unwrap().is_none());
        assert!(cors_allow_origin(&["*".into()]).unwrap().is_some());
        assert!(
            cors_allow_origin(&["https://a.example".into(), "http://127.0.0.1:3000".into()])
                .unwrap()
                .is_some()
        );
        for bad in [
            vec!["*".to_string(), "*".into()],
            vec!["a.example".into()],
            vec!["ftp://a.example".into()],
            vec!["https://a.example/".into()],
            vec!["https://a.example\n".into()],
            vec![format!("https://{}", "a".repeat(CORS_ORIGIN_BYTES_MAX))],
        ] {
            assert!(cors_allow_origin(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn content_type_must_be_json() {
        let with = |ct: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
            is_json(&h)
        };
        assert!(with("application/json"));
        assert!(with("application/json;charset=UTF-8"));
        assert!(with(" APPLICATION/JSON ; charset=utf-8"));
        assert!(!with("text/plain"));
        assert!(!with("application/json-seq"));
        assert!(!with("application/jsonx; a=b"));
        assert!(!is_json(&HeaderMap::new()));
    }

    #[test]
    fn config_serde_defaults_and_unknown_fields() {
        let c: RpcServerConfig = serde_json::from_value(json!({"listen": "0.0.0.0:1"})).unwrap();
        assert_eq!(c.listen, SocketAddr::from(([0, 0, 0, 0], 1)));
        assert_eq!(c.batch_requests_max, 100);
        assert!(serde_json::from_value::<RpcServerConfig>(json!({"bogus": 1})).is_err());
    }

    #[test]
    fn parse_call_validation() {
        let ok = parse_call(json!({"jsonrpc": "2.0", "method": "m", "id": 1})).unwrap();
        assert_eq!(ok.id, Some(json!(1)));
        let notif = parse_call(json!({"jsonrpc": "2.0", "method": "m"})).unwrap();
        assert!(notif.id.is_none());
        let null_id = parse_call(json!({"jsonrpc": "2.0", "method": "m", "id": null})).unwrap();
        assert_eq!(null_id.id, Some(Value::Null));
        for (bad, echo) in [
            (json!(1), Value::Null),
            (
                json!({"jsonrpc": "2.0", "method": "m", "id": [1]}),
                Value::Null,
            ),
            (
                json!({"jsonrpc": "2.0", "method": "m", "id": {}}),
                Value::Null,
            ),
            (json!({"jsonrpc": "1.0", "method": "m", "id": 5}), json!(5)),
            (json!({"method": "m", "id": "a"}), json!("a")),
            (json!({"jsonrpc": "2.0", "method": 3, "id": 5}), json!(5)),
            (json!({"jsonrpc": "2.0", "id": 5}), json!(5)),
            (
                json!({"jsonrpc": "2.0", "method": "m", "params": 1, "id": 5}),
                json!(5),
            ),
        ] {
            let (id, e) = parse_call(bad.clone())
                .err()
                .unwrap_or_else(|| panic!("accepted {bad}"));
            assert_eq!(e.code, codes::INVALID_REQUEST, "{bad}");
            assert_eq!(id, echo, "{bad}");
        }
    }
}
