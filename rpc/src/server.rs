//! The HTTP server: configuration, router, JSON-RPC 2.0 framing, limits.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, oneshot};
use tokio::task::JoinHandle;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::RpcBackend;
use crate::error::{ErrorObject, codes};
use crate::methods::{Params, dispatch};

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
    /// Most HTTP requests processed at once on `POST /`; requests beyond it are shed at
    /// once with HTTP 503 and a -32005 error (no queueing). Default 64.
    pub concurrency_max: usize,
    /// Bound on one HTTP exchange (reading the body and running every call in it); past
    /// it the server answers HTTP 503 with an empty body. Default 10 000.
    pub request_timeout_ms: u64,
}

impl Default for RpcServerConfig {
    fn default() -> Self {
        RpcServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8545)),
            body_bytes_max: 1024 * 1024,
            batch_requests_max: 100,
            concurrency_max: 64,
            request_timeout_ms: 10_000,
        }
    }
}

impl RpcServerConfig {
    /// Checks every bound; the error names the field and the accepted range.
    pub fn validate(&self) -> Result<(), RpcServerError> {
        fn bad(field: &'static str, reason: String) -> Result<(), RpcServerError> {
            Err(RpcServerError::InvalidConfig { field, reason })
        }
        if !(BODY_BYTES_MIN..=BODY_BYTES_LIMIT).contains(&self.body_bytes_max) {
            return bad(
                "body_bytes_max",
                format!(
                    "{} is outside {BODY_BYTES_MIN}..={BODY_BYTES_LIMIT}",
                    self.body_bytes_max
                ),
            );
        }
        if !(1..=BATCH_REQUESTS_LIMIT).contains(&self.batch_requests_max) {
            return bad(
                "batch_requests_max",
                format!(
                    "{} is outside 1..={BATCH_REQUESTS_LIMIT}",
                    self.batch_requests_max
                ),
            );
        }
        if !(1..=CONCURRENCY_LIMIT).contains(&self.concurrency_max) {
            return bad(
                "concurrency_max",
                format!(
                    "{} is outside 1..={CONCURRENCY_LIMIT}",
                    self.concurrency_max
                ),
            );
        }
        if !REQUEST_TIMEOUT_MS_RANGE.contains(&self.request_timeout_ms) {
            return bad(
                "request_timeout_ms",
                format!(
                    "{} is outside {}..={}",
                    self.request_timeout_ms,
                    REQUEST_TIMEOUT_MS_RANGE.start(),
                    REQUEST_TIMEOUT_MS_RANGE.end()
                ),
            );
        }
        Ok(())
    }
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

struct ServerState {
    backend: Arc<dyn RpcBackend>,
    batch_requests_max: usize,
}

/// The HTTP routes: `POST /` (JSON-RPC 2.0) and `GET /health` (`{"status":"ok"}`), with the
/// body limit (413), the timeout (503) and, on `POST /`, the concurrency limit (503 with a
/// -32005 error). The node may merge more routes (e.g. `/metrics`) into it.
///
/// `config` should have passed [`RpcServerConfig::validate`]; values are used as given
/// (the concurrency limit is clamped to at least 1). `config.listen` is not used here.
pub fn router(config: &RpcServerConfig, backend: Arc<dyn RpcBackend>) -> Router {
    let state = Arc::new(ServerState {
        backend,
        batch_requests_max: config.batch_requests_max,
    });
    let permits = Arc::new(Semaphore::new(
        config.concurrency_max.clamp(1, Semaphore::MAX_PERMITS),
    ));
    let rpc = post(handle_rpc).layer(middleware::from_fn_with_state(permits, shed_load));
    Router::new()
        .route("/", rpc)
        .route("/health", get(health))
        .with_state(state)
        // The limit layer below enforces the bound; axum's own 2 MiB default would otherwise
        // also apply to the `Bytes` extractor.
        .layer(DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(config.body_bytes_max))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_millis(config.request_timeout_ms),
        ))
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
    serve_listener(listener, router(&config, backend), shutdown).await
}

/// Serves `app` (normally [`router`], perhaps with more routes) on an already bound
/// listener until `shutdown` completes.
pub async fn serve_listener(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RpcServerError> {
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|source| RpcServerError::Serve { source })
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
    config.validate()?;
    let (listener, local_addr) = bind(&config).await?;
    let app = router(&config, backend);
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(serve_listener(listener, app, async move {
        // Fires on an explicit shutdown and when the handle (sender) is dropped.
        let _ = rx.await;
    }));
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

/// Load shedding: a request that finds no free permit is answered at once.
async fn shed_load(
    State(permits): State<Arc<Semaphore>>,
    request: Request,
    next: Next,
) -> Response {
    let Ok(permit) = permits.try_acquire_owned() else {
        tracing::debug!("RPC request shed: concurrency limit reached");
        let err = ErrorObject::new(
            codes::OVERLOADED,
            "server busy: too many requests in flight, retry later",
        );
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(error_response(Value::Null, err)),
        )
            .into_response();
    };
    let response = next.run(request).await;
    drop(permit);
    response
}

async fn handle_rpc(State(state): State<Arc<ServerState>>, body: Bytes) -> Response {
    let value: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            let err = ErrorObject::new(codes::PARSE_ERROR, format!("parse error: {e}"));
            return reply(Some(error_response(Value::Null, err)));
        }
    };
    match value {
        Value::Array(items) => {
            if items.is_empty() {
                let err = ErrorObject::new(codes::INVALID_REQUEST, "invalid request: empty batch");
                return reply(Some(error_response(Value::Null, err)));
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
                return reply(Some(error_response(Value::Null, err)));
            }
            // Sequential on purpose: a batch counts once against the concurrency limit.
            let mut responses = Vec::with_capacity(items.len());
            for item in items {
                if let Some(r) = handle_one(&state, item).await {
                    responses.push(r);
                }
            }
            reply((!responses.is_empty()).then_some(Value::Array(responses)))
        }
        single => reply(handle_one(&state, single).await),
    }
}

/// A JSON body with 200, or 204 with no body when every request was a notification.
fn reply(body: Option<Value>) -> Response {
    match body {
        Some(v) => axum::Json(v).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    }
}

struct Call {
    /// `None` for a notification.
    id: Option<Value>,
    method: String,
    params: Params,
}

/// Runs one request object. `None` for a valid notification (executed, not answered).
async fn handle_one(state: &ServerState, item: Value) -> Option<Value> {
    let call = match parse_call(item) {
        Ok(c) => c,
        Err((id, err)) => return Some(error_response(id, err)),
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
    Some(match result {
        Ok(v) => json!({ "jsonrpc": "2.0", "result": v, "id": id }),
        Err(e) => error_response(id, e),
    })
}

fn error_response(id: Value, err: ErrorObject) -> Value {
    json!({ "jsonrpc": "2.0", "error": err, "id": id })
}

/// Validates the request object. On error returns the id to answer with (the request's
/// own id when it is valid, else null) and a -32600 error.
fn parse_call(item: Value) -> Result<Call, (Value, ErrorObject)> {
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
        let cases: [(&str, RpcServerConfig); 5] = [
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
        ];
        for (field, cfg) in cases {
            match cfg.validate() {
                Err(RpcServerError::InvalidConfig { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
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
