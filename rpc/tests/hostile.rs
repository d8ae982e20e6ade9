//! The server against hostile clients, over real TCP sockets on loopback: slow bodies, slow
//! headers, idle sockets, connection floods, odd ids, missing `Host`, non-JSON bodies and
//! CORS. Each attack is held while a well-behaved client must still be served promptly.
//!
//! Every loop is bounded in count and every wait in time.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cairn_ledger::{Address, Block, Hash, SignedTransaction};
use cairn_rpc::{
    AccountInfo, PeerInfo, RpcBackend, RpcError, RpcServerConfig, RpcServerHandle, Status,
    TxStatus, ValidatorInfo, async_trait, codes,
};
use serde_json::Value;
use serde_json::value::RawValue;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A well-behaved call must be answered within this, attack or not.
const PROMPT: Duration = Duration::from_millis(100);

/// A backend that counts calls and answers `getStatus`.
struct Stub {
    calls: AtomicUsize,
}

#[async_trait]
impl RpcBackend for Stub {
    async fn status(&self) -> Result<Status, RpcError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(Status {
            chain_id: "cairn-hostile".into(),
            genesis_hash: Hash([1; 32]),
            latest_height: 7,
            latest_hash: Hash([2; 32]),
            latest_state_root: Hash([3; 32]),
            peer_count: 0,
            syncing: false,
            node_version: "0.1.0".into(),
            rpc_version: cairn_rpc::RPC_VERSION,
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
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(AccountInfo {
            address,
            balance: 0,
            nonce: 0,
            next_nonce: 0,
            permissions: Default::default(),
        })
    }
    async fn submit_transaction(&self, _tx: SignedTransaction) -> Result<Hash, RpcError> {
        Err(RpcError::internal("not in this test"))
    }
    async fn transaction(&self, _hash: Hash) -> Result<TxStatus, RpcError> {
        Ok(TxStatus::Unknown)
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
}

fn config() -> RpcServerConfig {
    RpcServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..RpcServerConfig::default()
    }
}

async fn start(config: RpcServerConfig) -> (RpcServerHandle, Arc<Stub>) {
    let stub = Arc::new(Stub {
        calls: AtomicUsize::new(0),
    });
    let handle = cairn_rpc::spawn(config, stub.clone())
        .await
        .expect("server starts");
    (handle, stub)
}

fn loopback(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// A TCP connection to `server` from the loopback address `from`.
async fn connect_from(from: IpAddr, server: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    tokio::time::timeout(Duration::from_secs(2), socket.connect(server))
        .await
        .expect("connect in time")
        .expect("connect")
}

/// A complete `POST /` of `body` with `Connection: close`.
fn post_request(body: &str) -> String {
    format!(
        "POST / HTTP/1.1\r\nHost: cairn.test\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Sends `request` on a new connection from `from` and reads until the server closes
/// (at most 2 s). Returns the raw response and the time from connect to the last byte.
async fn exchange(server: SocketAddr, from: IpAddr, request: &str) -> (String, Duration) {
    let started = Instant::now();
    let mut stream = connect_from(from, server).await;
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut response))
        .await
        .expect("response in time")
        .expect("read response");
    (
        String::from_utf8_lossy(&response).into_owned(),
        started.elapsed(),
    )
}

/// The well-behaved client: one `getStatus` from `from`; asserts it is answered with the
/// status within [`PROMPT`].
async fn assert_served_promptly(server: SocketAddr, from: IpAddr, what: &str) {
    let (response, elapsed) = exchange(
        server,
        from,
        &post_request(r#"{"jsonrpc":"2.0","id":1,"method":"getStatus"}"#),
    )
    .await;
    assert!(
        response.starts_with("HTTP/1.1 200"),
        "{what}: good client not served: {response}"
    );
    assert!(
        response.contains(r#""latestHeight":7"#),
        "{what}: {response}"
    );
    assert!(
        elapsed < PROMPT,
        "{what}: good client served after {elapsed:?}, more than {PROMPT:?}"
    );
}

/// How a held attack connection ended.
#[derive(Debug)]
struct Closed {
    /// Bytes the server sent before closing.
    response: String,
    /// From `since` to the close.
    after: Duration,
}

/// Reads `stream` until the server closes it (EOF or reset), at most `limit` after `since`;
/// `None` if it was still open then.
async fn wait_closed(stream: &mut TcpStream, since: Instant, limit: Duration) -> Option<Closed> {
    let mut response = Vec::new();
    let deadline = tokio::time::Instant::from_std(since + limit);
    let mut buf = [0u8; 4096];
    // Bounded: each pass either reads bytes (at most the server's response) or ends.
    for _ in 0..1024 {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => {
                return Some(Closed {
                    response: String::from_utf8_lossy(&response).into_owned(),
                    after: since.elapsed(),
                });
            }
            Ok(Ok(n)) => response.extend_from_slice(&buf[..n]),
        }
    }
    panic!("server kept sending on an attack connection");
}

#[tokio::test]
async fn slow_bodies_do_not_take_the_load_shedding_permits() {
    let body_read_timeout_ms = 600;
    let (server, stub) = start(RpcServerConfig {
        concurrency_max: 2,
        body_read_timeout_ms,
        ..config()
    })
    .await;
    let addr = server.local_addr();
    // More slow senders than permits: headers and part of the body, then silence.
    let attack_started = Instant::now();
    let mut attackers = Vec::new();
    for _ in 0..12 {
        let mut s = connect_from(loopback(1), addr).await;
        s.write_all(
            b"POST / HTTP/1.1\r\nHost: cairn.test\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{\"jsonrpc\":\"2.0\",",
        )
        .await
        .unwrap();
        attackers.push(s);
    }
    // Let every attack request reach its handler.
    tokio::time::sleep(Duration::from_millis(100)).await;
    for round in 0..3 {
        assert_served_promptly(addr, loopback(1), &format!("slow bodies, round {round}")).await;
    }
    assert_eq!(stub.calls.load(Ordering::SeqCst), 3);
    // Each attack connection gets 408 and is closed once its body timeout passes.
    for (i, s) in attackers.iter_mut().enumerate() {
        let closed = wait_closed(s, attack_started, Duration::from_secs(3))
            .await
            .unwrap_or_else(|| panic!("slow-body connection {i} still open after 3 s"));
        assert!(
            closed.response.starts_with("HTTP/1.1 408"),
            "connection {i}: {closed:?}"
        );
        assert!(
            closed.after >= Duration::from_millis(body_read_timeout_ms - 50),
            "connection {i} closed before its body timeout: {closed:?}"
        );
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn slow_headers_and_silent_sockets_are_closed_after_the_header_timeout() {
    let header_read_timeout_ms = 500;
    let (server, _stub) = start(RpcServerConfig {
        header_read_timeout_ms,
        // Far longer, so the header timeout is what closes them.
        idle_timeout_ms: 60_000,
        ..config()
    })
    .await;
    let addr = server.local_addr();
    let attack_started = Instant::now();
    let mut partial = Vec::new();
    for _ in 0..20 {
        let mut s = connect_from(loopback(1), addr).await;
        s.write_all(b"POST / HTTP/1.1\r\nHost: cairn.test\r\nContent-Ty")
            .await
            .unwrap();
        partial.push(s);
    }
    let mut request_line_only = Vec::new();
    for _ in 0..5 {
        let mut s = connect_from(loopback(1), addr).await;
        s.write_all(b"GET /hea").await.unwrap();
        request_line_only.push(s);
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    for round in 0..3 {
        assert_served_promptly(addr, loopback(1), &format!("slow headers, round {round}")).await;
    }
    for (i, s) in partial
        .iter_mut()
        .chain(request_line_only.iter_mut())
        .enumerate()
    {
        let closed = wait_closed(s, attack_started, Duration::from_secs(3))
            .await
            .unwrap_or_else(|| panic!("slow-header connection {i} still open after 3 s"));
        assert!(
            closed.after >= Duration::from_millis(header_read_timeout_ms - 50),
            "connection {i} closed before its header timeout: {closed:?}"
        );
        assert!(
            !closed.response.contains("200 OK"),
            "connection {i} was served: {closed:?}"
        );
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    let idle_timeout_ms = 500;
    let (server, _stub) = start(RpcServerConfig {
        idle_timeout_ms,
        header_read_timeout_ms: 60_000,
        ..config()
    })
    .await;
    let addr = server.local_addr();
    // Silent from the start.
    let opened = Instant::now();
    let mut silent = Vec::new();
    for _ in 0..10 {
        silent.push(connect_from(loopback(1), addr).await);
    }
    // Keep-alive: one request answered, then silence.
    let mut kept = connect_from(loopback(1), addr).await;
    let request = post_request(r#"{"jsonrpc":"2.0","id":1,"method":"getStatus"}"#)
        .replace("Connection: close\r\n", "");
    kept.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 8192];
    let n = tokio::time::timeout(Duration::from_secs(2), kept.read(&mut buf))
        .await
        .expect("answer in time")
        .unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    let answered = Instant::now();
    assert_served_promptly(addr, loopback(1), "idle sockets held").await;
    let closed = wait_closed(&mut kept, answered, Duration::from_secs(3))
        .await
        .expect("keep-alive connection closed when idle");
    assert!(
        closed.after >= Duration::from_millis(idle_timeout_ms - 50),
        "{closed:?}"
    );
    for (i, s) in silent.iter_mut().enumerate() {
        let closed = wait_closed(s, opened, Duration::from_secs(3))
            .await
            .unwrap_or_else(|| panic!("silent connection {i} still open after 3 s"));
        assert!(
            closed.after >= Duration::from_millis(idle_timeout_ms - 50),
            "silent connection {i}: {closed:?}"
        );
    }
    server.shutdown().await.unwrap();
}

/// Of `streams`, how many the server closes within `window` (the rest stay open).
async fn count_closed(streams: &mut [TcpStream], window: Duration) -> usize {
    let since = Instant::now();
    let mut closed = 0;
    for s in streams.iter_mut() {
        let left = window.saturating_sub(since.elapsed());
        if wait_closed(s, Instant::now(), left).await.is_some() {
            closed += 1;
        }
    }
    closed
}

#[tokio::test]
async fn connection_caps_per_ip_and_in_total() {
    let idle_timeout_ms = 2_000;
    let (server, _stub) = start(RpcServerConfig {
        connections_per_ip_max: 4,
        connections_max: 8,
        idle_timeout_ms,
        header_read_timeout_ms: 60_000,
        ..config()
    })
    .await;
    let addr = server.local_addr();
    // One IP floods: only 4 of its 10 connections are kept.
    let flood_started = Instant::now();
    let mut flood = Vec::new();
    for _ in 0..10 {
        flood.push(connect_from(loopback(2), addr).await);
    }
    let closed = count_closed(&mut flood, Duration::from_millis(300)).await;
    assert_eq!(
        closed, 6,
        "connections beyond connections_per_ip_max are closed"
    );
    // Another IP is unaffected.
    assert_served_promptly(addr, loopback(1), "one IP at its cap").await;
    // Its connection's slot is released just after the client sees the close.
    tokio::time::sleep(Duration::from_millis(50)).await;
    // A second IP takes the remaining 4 of the total of 8; the third IP is refused.
    let mut second = Vec::new();
    for _ in 0..4 {
        second.push(connect_from(loopback(3), addr).await);
    }
    assert_eq!(
        count_closed(&mut second, Duration::from_millis(100)).await,
        0
    );
    let mut third = connect_from(loopback(4), addr).await;
    assert!(
        wait_closed(&mut third, Instant::now(), Duration::from_millis(300))
            .await
            .is_some(),
        "a connection beyond connections_max is closed"
    );
    // The held connections time out as idle, and the slots come back.
    for (i, s) in flood.iter_mut().chain(second.iter_mut()).enumerate() {
        if let Some(c) = wait_closed(s, flood_started, Duration::from_secs(5)).await {
            assert!(c.response.is_empty(), "{c:?}");
        } else {
            panic!("held connection {i} still open after 5 s");
        }
    }
    assert!(flood_started.elapsed() >= Duration::from_millis(idle_timeout_ms - 50));
    // The per-IP count is released with the connection: the flooding IP is served again.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_served_promptly(addr, loopback(4), "after the flood (fresh IP)").await;
    assert_served_promptly(addr, loopback(2), "after the flood (flooding IP)").await;
    server.shutdown().await.unwrap();
}

/// The `id` of a response body, as its exact JSON text.
fn id_text(response: &str) -> String {
    #[derive(serde::Deserialize)]
    struct Id<'a> {
        #[serde(borrow)]
        id: &'a RawValue,
    }
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_else(|| panic!("no body: {response}"));
    serde_json::from_str::<Id>(body)
        .unwrap_or_else(|e| panic!("{e}: {body}"))
        .id
        .get()
        .to_owned()
}

#[tokio::test]
async fn ids_are_echoed_byte_for_byte() {
    let (server, _stub) = start(config()).await;
    let addr = server.local_addr();
    let ids = [
        "123456789012345678901234567890",
        "-123456789012345678901234567890",
        "18446744073709551616",
        "1.5e300",
        "1.50",
        "1E+2",
        "0.1",
        "-0",
        r#""plain""#,
        r#""a\u00e9\"b\/c""#,
        "null",
        "7",
    ];
    for id in ids {
        // A successful call, a failing call (unknown method) and a call with bad params.
        for (method, params) in [
            ("getStatus", "[]"),
            ("noSuchMethod", "[]"),
            ("getBalance", r#"["not an address"]"#),
        ] {
            let body = format!(
                r#"{{"jsonrpc":"2.0","method":"{method}","params":{params},"id" :  {id} }}"#
            );
            let (response, _) = exchange(addr, loopback(1), &post_request(&body)).await;
            assert!(response.starts_with("HTTP/1.1 200"), "{response}");
            assert_eq!(id_text(&response), id, "{method}: {response}");
        }
    }
    // In a batch, each response carries its own request's id.
    let body = format!(
        r#"[{{"jsonrpc":"2.0","method":"getStatus","id":{}}},{{"jsonrpc":"2.0","method":"nope","id":{}}}]"#,
        ids[0], ids[3]
    );
    let (response, _) = exchange(addr, loopback(1), &post_request(&body)).await;
    let batch = response.split_once("\r\n\r\n").unwrap().1;
    let items: Vec<&RawValue> = serde_json::from_str(batch).unwrap();
    assert_eq!(items.len(), 2, "{batch}");
    for (item, id) in items.iter().zip([ids[0], ids[3]]) {
        assert_eq!(id_text(&format!("\r\n\r\n{}", item.get())), id, "{batch}");
    }
    // An invalid request with a valid id still echoes it exactly.
    let body = format!(
        r#"{{"jsonrpc":"1.0","method":"getStatus","id":{}}}"#,
        ids[0]
    );
    let (response, _) = exchange(addr, loopback(1), &post_request(&body)).await;
    assert!(response.contains(r#""code":-32600"#), "{response}");
    assert_eq!(id_text(&response), ids[0]);
    server.shutdown().await.unwrap();
}

/// The status code of a raw HTTP/1.x response.
fn status_code(response: &str) -> Option<u16> {
    let line = response.lines().next()?;
    let rest = line
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| line.strip_prefix("HTTP/1.0 "))?;
    rest.get(..3)?.parse().ok()
}

#[tokio::test]
async fn requests_without_host_get_400() {
    let (server, stub) = start(config()).await;
    let addr = server.local_addr();
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"getStatus"}"#;
    let without_host = format!(
        "POST / HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let (response, _) = exchange(addr, loopback(1), &without_host).await;
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    assert!(response.contains(r#""code":-32600"#), "{response}");
    for other in [
        "GET /health HTTP/1.1\r\nConnection: close\r\n\r\n",
        "GET /health HTTP/1.0\r\n\r\n",
        "GET /health HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n",
    ] {
        let (response, _) = exchange(addr, loopback(1), other).await;
        assert_eq!(status_code(&response), Some(400), "{other:?}: {response}");
    }
    assert_eq!(stub.calls.load(Ordering::SeqCst), 0);
    // The same requests with a Host header are served.
    let (response, _) = exchange(addr, loopback(1), &post_request(body)).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let (response, _) =
        exchange(addr, loopback(1), "GET /health HTTP/1.0\r\nHost: x\r\n\r\n").await;
    assert_eq!(status_code(&response), Some(200), "{response}");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn non_json_content_types_get_415() {
    let (server, stub) = start(config()).await;
    let url = server.url();
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"getStatus"}"#;
    let http = reqwest::Client::new();
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/jsonp"),
        None,
    ] {
        let mut request = http.post(&url).body(body);
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), 415, "{content_type:?}");
        let v: Value = response.json().await.unwrap();
        assert_eq!(v["error"]["code"], codes::INVALID_REQUEST, "{v}");
        assert_eq!(v["id"], Value::Null, "{v}");
    }
    assert_eq!(stub.calls.load(Ordering::SeqCst), 0, "no call ran");
    for content_type in [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON",
    ] {
        let response = http
            .post(&url)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "{content_type}");
    }
    assert_eq!(stub.calls.load(Ordering::SeqCst), 3);
    server.shutdown().await.unwrap();
}

/// A `POST /` with `Origin: origin`; returns the Access-Control-Allow-Origin it got.
async fn post_with_origin(url: &str, origin: &str) -> Option<String> {
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("origin", origin)
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"getStatus"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    response
        .headers()
        .get("access-control-allow-origin")
        .map(|v| v.to_str().unwrap().to_owned())
}

/// A CORS preflight for `POST /` with a JSON content type from `origin`; returns the
/// status and the response headers.
async fn preflight(url: &str, origin: &str) -> (u16, reqwest::header::HeaderMap) {
    let response = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, url)
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.headers().clone())
}

#[tokio::test]
async fn cors_headers_only_for_allowed_origins() {
    // Default: no CORS headers for anyone.
    let (server, _stub) = start(config()).await;
    let url = server.url();
    assert_eq!(post_with_origin(&url, "https://wallet.example").await, None);
    let (_, headers) = preflight(&url, "https://wallet.example").await;
    assert!(
        headers.get("access-control-allow-origin").is_none(),
        "{headers:?}"
    );
    server.shutdown().await.unwrap();

    // A list: those origins only.
    let (server, _stub) = start(RpcServerConfig {
        cors_allowed_origins: vec![
            "https://wallet.example".into(),
            "http://localhost:3000".into(),
        ],
        ..config()
    })
    .await;
    let url = server.url();
    for origin in ["https://wallet.example", "http://localhost:3000"] {
        assert_eq!(
            post_with_origin(&url, origin).await.as_deref(),
            Some(origin)
        );
        let (status, headers) = preflight(&url, origin).await;
        assert_eq!(status, 200, "{headers:?}");
        assert_eq!(headers["access-control-allow-origin"], origin);
        let methods = headers["access-control-allow-methods"].to_str().unwrap();
        assert!(methods.contains("POST"), "{methods}");
        let allowed = headers["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .to_ascii_lowercase();
        assert!(allowed.contains("content-type"), "{allowed}");
    }
    for origin in [
        "https://evil.example",
        "https://wallet.example.evil",
        "null",
    ] {
        assert_eq!(post_with_origin(&url, origin).await, None, "{origin}");
        let (_, headers) = preflight(&url, origin).await;
        assert!(
            headers.get("access-control-allow-origin").is_none(),
            "{origin}: {headers:?}"
        );
    }
    server.shutdown().await.unwrap();

    // "*": any origin.
    let (server, _stub) = start(RpcServerConfig {
        cors_allowed_origins: vec!["*".into()],
        ..config()
    })
    .await;
    let url = server.url();
    assert_eq!(
        post_with_origin(&url, "https://anyone.example")
            .await
            .as_deref(),
        Some("*")
    );
    let (status, headers) = preflight(&url, "https://anyone.example").await;
    assert_eq!(status, 200);
    assert_eq!(headers["access-control-allow-origin"], "*");
    server.shutdown().await.unwrap();

    // Malformed lists are refused at start.
    for bad in [
        vec!["*".to_string(), "https://a.example".into()],
        vec!["wallet.example".into()],
        vec!["https://a.example/path".into()],
        vec!["https://".into()],
    ] {
        let err = cairn_rpc::spawn(
            RpcServerConfig {
                cors_allowed_origins: bad.clone(),
                ..config()
            },
            Arc::new(Stub {
                calls: AtomicUsize::new(0),
            }),
        )
        .await
        .unwrap_err();
        assert!(
            err.to_string().contains("cors_allowed_origins"),
            "{bad:?}: {err}"
        );
    }
}
