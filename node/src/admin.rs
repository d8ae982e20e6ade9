//! The admin endpoint: a Unix socket `<home>/admin.sock` through which the operator's own
//! tools ask the running node for what only the process that holds the database can do
//! (RocksDB admits one process): a consistent checkpoint of the database (`cairn-node
//! backup`) and database statistics (`cairn-node db stats`).
//!
//! # Who can use it
//!
//! Only processes of the node's own user: the socket file is created with mode 0600 (so the
//! kernel refuses other users' `connect`), and every accepted connection's peer credentials
//! (`SO_PEERCRED`) are checked, its uid must equal the node's effective uid, else the
//! connection is answered `forbidden` and closed (a defence should the file's mode be
//! changed, or the socket be reached through an open descriptor). `root` is not admitted
//! unless the node itself runs as root. Nothing is served over the network.
//!
//! # Protocol
//!
//! JSON lines: one request object per line, one response object per line, in order.
//!
//! - `{"command":"checkpoint","to":"/abs/new/dir"}` → `{"ok":true,"result":`[`DbHead`]`}`:
//!   [`Store::checkpoint`] into `to` (absolute, new, its parent must exist; the node's user
//!   writes it).
//! - `{"command":"dbStats"}` → `{"ok":true,"result":`[`DbStats`]`}` ([`Store::stats`]).
//! - Errors: `{"ok":false,"error":{"code":"…","message":"…"}}` with codes `bad_request`
//!   (not JSON, unknown command or field), `too_large` (a line over
//!   [`ADMIN_REQUEST_BYTES_MAX`]; the connection is closed), `too_many_requests` (more than
//!   [`ADMIN_REQUESTS_PER_CONNECTION_MAX`] on one connection; closed), `busy` (more than
//!   [`ADMIN_CONNECTIONS_MAX`] connections; closed), `forbidden` (another uid; closed),
//!   `checkpoint_failed`, `stats_failed` (the
//!   [`BackupError`](cairn_ledger::backup::BackupError) as the message).
//!
//! # Bounds
//!
//! At most [`ADMIN_CONNECTIONS_MAX`] connections at once, [`ADMIN_REQUESTS_PER_CONNECTION_MAX`]
//! requests per connection, [`ADMIN_REQUEST_BYTES_MAX`] bytes per request line (checked
//! before parsing), [`ADMIN_IDLE_TIMEOUT_MS`] to send a request line; one checkpoint or stats
//! scan runs at a time (on a blocking thread, never on the driver). Responses read by
//! [`request`] are bounded by [`ADMIN_RESPONSE_BYTES_MAX`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cairn_ledger::Store;
use cairn_ledger::backup::{DbHead, DbStats};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Mutex, Semaphore};
use tracing::{debug, info, warn};

/// File name of the admin socket in the node's home directory.
pub const ADMIN_SOCKET: &str = "admin.sock";
/// Most bytes of one request line, newline included.
pub const ADMIN_REQUEST_BYTES_MAX: usize = 4096;
/// Most bytes of one response line [`request`] reads.
pub const ADMIN_RESPONSE_BYTES_MAX: usize = 1 << 20;
/// Most requests served on one connection.
pub const ADMIN_REQUESTS_PER_CONNECTION_MAX: u32 = 16;
/// Most connections served at once.
pub const ADMIN_CONNECTIONS_MAX: usize = 4;
/// Longest wait for a client's next request line, milliseconds.
pub const ADMIN_IDLE_TIMEOUT_MS: u64 = 30_000;
/// Longest wait of [`request`] for the node's answer, milliseconds (a checkpoint to another
/// file system copies the whole database).
pub const ADMIN_RESPONSE_TIMEOUT_MS: u64 = 3_600_000;

/// The admin socket path of the home directory `home`.
pub fn socket_path(home: &Path) -> PathBuf {
    home.join(ADMIN_SOCKET)
}

/// A request (one JSON line).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "camelCase", deny_unknown_fields)]
pub enum AdminRequest {
    /// Write a checkpoint of the database into the new directory `to` (absolute).
    Checkpoint {
        /// Target directory: absolute, must not exist, its parent must.
        to: PathBuf,
    },
    /// Database statistics.
    DbStats {},
}

/// An error answer's body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminErrorBody {
    /// Stable code (module docs).
    pub code: String,
    /// Human-readable detail.
    pub message: String,
}

/// A response (one JSON line).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AdminResponse {
    /// Whether the request succeeded.
    pub ok: bool,
    /// The result (`ok`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    /// The error (not `ok`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<AdminErrorBody>,
}

impl AdminResponse {
    fn error(code: &str, message: impl Into<String>) -> Self {
        AdminResponse {
            ok: false,
            result: None,
            error: Some(AdminErrorBody {
                code: code.into(),
                message: message.into(),
            }),
        }
    }

    fn result(value: impl Serialize) -> Self {
        match serde_json::to_value(value) {
            Ok(v) => AdminResponse {
                ok: true,
                result: Some(v),
                error: None,
            },
            Err(e) => Self::error("internal", e.to_string()),
        }
    }
}

/// Admin socket failures (server side: binding; client side: talking to the node).
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// A socket operation failed.
    #[error("{path}: {reason}")]
    Io {
        /// The socket path.
        path: PathBuf,
        /// What the OS reported.
        reason: String,
    },
    /// Another process answers on the socket already.
    #[error("{path} is in use by a running process")]
    InUse {
        /// The socket path.
        path: PathBuf,
    },
    /// The node answered with an error.
    #[error("the node refused: {code}: {message}")]
    Refused {
        /// Error code (module docs).
        code: String,
        /// Detail.
        message: String,
    },
    /// The node's answer was not a valid response.
    #[error("bad answer from the node: {reason}")]
    Protocol {
        /// What was wrong.
        reason: String,
    },
    /// No answer in time.
    #[error("no answer from the node within {timeout_ms} ms")]
    Timeout {
        /// The limit, milliseconds.
        timeout_ms: u64,
    },
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> AdminError {
    AdminError::Io {
        path: path.into(),
        reason: e.to_string(),
    }
}

/// Whether a process answers on `path` (a node runs on this home).
pub fn is_listening(path: &Path) -> bool {
    std::os::unix::net::UnixStream::connect(path).is_ok()
}

/// Binds the admin socket at `path` with mode 0600, replacing a stale socket file (one no
/// process answers on).
///
/// # Errors
/// [`AdminError::InUse`] if a process answers on `path`; [`AdminError::Io`] if binding or
/// setting the mode fails (a path over the OS limit of about 107 bytes, a read-only home).
pub fn bind(path: &Path) -> Result<UnixListener, AdminError> {
    use std::os::unix::fs::PermissionsExt;
    if path.symlink_metadata().is_ok() {
        if is_listening(path) {
            return Err(AdminError::InUse { path: path.into() });
        }
        std::fs::remove_file(path).map_err(|e| io_err(path, e))?;
    }
    let listener = UnixListener::bind(path).map_err(|e| io_err(path, e))?;
    // Until this completes the file has the umask's mode; the uid check below covers it.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| io_err(path, e))?;
    Ok(listener)
}

/// The effective uid of this process.
fn own_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Serves `listener` (from [`bind`] at `path`) for `store` until `stop` turns true, then
/// removes the socket file.
pub async fn serve(
    listener: UnixListener,
    path: PathBuf,
    store: Arc<Store>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let connections = Arc::new(Semaphore::new(ADMIN_CONNECTIONS_MAX));
    // One checkpoint or stats scan at a time.
    let work = Arc::new(Mutex::new(()));
    let uid = own_uid();
    // Connection tasks; dropping the set (when this task ends or is aborted) aborts them, so
    // none keeps the store open after the node stops.
    let mut tasks = tokio::task::JoinSet::new();
    info!(path = %path.display(), "admin socket listening");
    loop {
        tokio::select! {
            () = async { let _ = stop.wait_for(|v| *v).await; } => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let permit = connections.clone().try_acquire_owned();
                    let store = store.clone();
                    let work = work.clone();
                    tasks.spawn(async move {
                        let mut stream = stream;
                        let Ok(_permit) = permit else {
                            reply(&mut stream, &AdminResponse::error("busy", format!("at most {ADMIN_CONNECTIONS_MAX} admin connections at once"))).await;
                            return;
                        };
                        match stream.peer_cred() {
                            Ok(cred) if cred.uid() == uid => {}
                            Ok(cred) => {
                                warn!(peer_uid = cred.uid(), "admin connection from another user refused");
                                reply(&mut stream, &AdminResponse::error("forbidden", "only the node's user may use the admin socket")).await;
                                return;
                            }
                            Err(e) => {
                                warn!(error = %e, "admin connection without peer credentials refused");
                                return;
                            }
                        }
                        connection(stream, store, work).await;
                    });
                }
                Err(e) => {
                    warn!(error = %e, "admin socket accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    drop(listener);
    let _ = std::fs::remove_file(&path);
    tasks.shutdown().await;
}

async fn reply(stream: &mut UnixStream, response: &AdminResponse) -> bool {
    let mut line = serde_json::to_vec(response).unwrap_or_else(|_| b"{\"ok\":false}".to_vec());
    line.push(b'\n');
    stream.write_all(&line).await.is_ok()
}

async fn connection(stream: UnixStream, store: Arc<Store>, work: Arc<Mutex<()>>) {
    let mut stream = BufReader::new(stream);
    for served in 0..=ADMIN_REQUESTS_PER_CONNECTION_MAX {
        let mut line = Vec::new();
        let read = tokio::time::timeout(
            Duration::from_millis(ADMIN_IDLE_TIMEOUT_MS),
            (&mut stream)
                .take(ADMIN_REQUEST_BYTES_MAX as u64)
                .read_until(b'\n', &mut line),
        )
        .await;
        match read {
            Ok(Ok(0)) | Err(_) => return,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                debug!(error = %e, "admin connection read failed");
                return;
            }
        }
        if line.last() != Some(&b'\n') {
            // Either the line is over the bound or the client closed mid-line.
            if line.len() >= ADMIN_REQUEST_BYTES_MAX {
                reply(
                    stream.get_mut(),
                    &AdminResponse::error(
                        "too_large",
                        format!("a request line is at most {ADMIN_REQUEST_BYTES_MAX} bytes"),
                    ),
                )
                .await;
            }
            return;
        }
        if served == ADMIN_REQUESTS_PER_CONNECTION_MAX {
            reply(
                stream.get_mut(),
                &AdminResponse::error(
                    "too_many_requests",
                    format!("at most {ADMIN_REQUESTS_PER_CONNECTION_MAX} requests per connection"),
                ),
            )
            .await;
            return;
        }
        let response = match serde_json::from_slice::<AdminRequest>(&line) {
            Ok(request) => handle(request, &store, &work).await,
            Err(e) => AdminResponse::error("bad_request", e.to_string()),
        };
        if !reply(stream.get_mut(), &response).await {
            return;
        }
    }
}

async fn handle(request: AdminRequest, store: &Arc<Store>, work: &Mutex<()>) -> AdminResponse {
    let _running = work.lock().await;
    let store = store.clone();
    match request {
        AdminRequest::Checkpoint { to } => {
            info!(to = %to.display(), "admin: checkpoint");
            let done = tokio::task::spawn_blocking(move || store.checkpoint(&to)).await;
            match done {
                Ok(Ok(head)) => AdminResponse::result(head),
                Ok(Err(e)) => AdminResponse::error("checkpoint_failed", e.to_string()),
                Err(e) => AdminResponse::error("checkpoint_failed", e.to_string()),
            }
        }
        AdminRequest::DbStats {} => {
            let done = tokio::task::spawn_blocking(move || store.stats()).await;
            match done {
                Ok(Ok(stats)) => AdminResponse::result(stats),
                Ok(Err(e)) => AdminResponse::error("stats_failed", e.to_string()),
                Err(e) => AdminResponse::error("stats_failed", e.to_string()),
            }
        }
    }
}

/// Sends `request` to the node whose admin socket is `path` and returns its result.
///
/// # Errors
/// [`AdminError::Io`] (no node listening: connection refused or no socket file),
/// [`AdminError::Refused`] (the node's error answer), [`AdminError::Protocol`],
/// [`AdminError::Timeout`] (after [`ADMIN_RESPONSE_TIMEOUT_MS`]).
pub async fn request(path: &Path, request: &AdminRequest) -> Result<serde_json::Value, AdminError> {
    let exchange = async {
        let mut stream = UnixStream::connect(path)
            .await
            .map_err(|e| io_err(path, e))?;
        let mut line = serde_json::to_vec(request).map_err(|e| AdminError::Protocol {
            reason: e.to_string(),
        })?;
        line.push(b'\n');
        stream.write_all(&line).await.map_err(|e| io_err(path, e))?;
        let mut reader = BufReader::new(stream);
        let mut answer = Vec::new();
        (&mut reader)
            .take(ADMIN_RESPONSE_BYTES_MAX as u64)
            .read_until(b'\n', &mut answer)
            .await
            .map_err(|e| io_err(path, e))?;
        if answer.last() != Some(&b'\n') {
            return Err(AdminError::Protocol {
                reason: format!(
                    "no complete answer line ({} bytes, at most {ADMIN_RESPONSE_BYTES_MAX})",
                    answer.len()
                ),
            });
        }
        let response: AdminResponse =
            serde_json::from_slice(&answer).map_err(|e| AdminError::Protocol {
                reason: e.to_string(),
            })?;
        match (response.ok, response.result, response.error) {
            (true, Some(result), _) => Ok(result),
            (false, _, Some(e)) => Err(AdminError::Refused {
                code: e.code,
                message: e.message,
            }),
            _ => Err(AdminError::Protocol {
                reason: "neither a result nor an error".into(),
            }),
        }
    };
    tokio::time::timeout(Duration::from_millis(ADMIN_RESPONSE_TIMEOUT_MS), exchange)
        .await
        .map_err(|_| AdminError::Timeout {
            timeout_ms: ADMIN_RESPONSE_TIMEOUT_MS,
        })?
}

/// [`request`] for a checkpoint into `to`.
pub async fn checkpoint(path: &Path, to: &Path) -> Result<DbHead, AdminError> {
    let v = request(path, &AdminRequest::Checkpoint { to: to.into() }).await?;
    serde_json::from_value(v).map_err(|e| AdminError::Protocol {
        reason: e.to_string(),
    })
}

/// [`request`] for the database statistics.
pub async fn db_stats(path: &Path) -> Result<DbStats, AdminError> {
    let v = request(path, &AdminRequest::DbStats {}).await?;
    serde_json::from_value(v).map_err(|e| AdminError::Protocol {
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_ledger::{Block, BlockHeader, Hash, LtHash, signed_txs_root_of, txs_root};

    fn store(dir: &Path) -> Arc<Store> {
        let genesis_hash = Hash::derive("admin test", &[]);
        let store = Store::open(&dir.join("db"), genesis_hash).unwrap();
        let block = Block {
            header: BlockHeader {
                chain_id: "admin-test".into(),
                height: 0,
                view: 0,
                parent_hash: genesis_hash,
                proposer: Default::default(),
                timestamp_ms: 0,
                txs_root: txs_root(&[]),
                signed_txs_root: signed_txs_root_of(&[]),
                state_root: LtHash::zero().root(),
            },
            transactions: vec![],
        };
        store.init_genesis(&block, &[]).unwrap();
        Arc::new(store)
    }

    async fn raw(path: &Path, bytes: &[u8]) -> Vec<AdminResponse> {
        let mut s = UnixStream::connect(path).await.unwrap();
        s.write_all(bytes).await.unwrap();
        s.shutdown().await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn serves_checkpoints_and_stats_and_refuses_bad_requests() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let path = socket_path(dir.path());
        let listener = bind(&path).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // A second bind while it is served is refused.
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let server = tokio::spawn(serve(listener, path.clone(), store.clone(), stop_rx));
        assert!(matches!(bind(&path), Err(AdminError::InUse { .. })));

        let stats = db_stats(&path).await.unwrap();
        assert_eq!(stats.head.finalized_height, Some(0));
        assert_eq!(stats.head.chain_id.as_deref(), Some("admin-test"));

        let to = dir.path().join("copy");
        let head = checkpoint(&path, &to).await.unwrap();
        assert_eq!(head, stats.head);
        assert!(to.join("CURRENT").is_file());
        // The same target again: refused with the ledger's reason.
        match checkpoint(&path, &to).await {
            Err(AdminError::Refused { code, message }) => {
                assert_eq!(code, "checkpoint_failed");
                assert!(message.contains("already exists"), "{message}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        match checkpoint(&path, Path::new("relative")).await {
            Err(AdminError::Refused { code, .. }) => assert_eq!(code, "checkpoint_failed"),
            other => panic!("expected a refusal, got {other:?}"),
        }

        // Garbage, unknown commands and extra fields: bad_request, and the connection goes on.
        let answers = raw(
            &path,
            b"not json\n{\"command\":\"drop\"}\n{\"command\":\"dbStats\",\"x\":1}\n{\"command\":\"dbStats\"}\n",
        )
        .await;
        let codes: Vec<_> = answers
            .iter()
            .map(|a| a.error.as_ref().map(|e| e.code.as_str()))
            .collect();
        assert_eq!(
            codes,
            vec![
                Some("bad_request"),
                Some("bad_request"),
                Some("bad_request"),
                None
            ]
        );
        assert!(answers[3].ok);

        // An oversized line: too_large, then closed.
        let mut big = vec![b'x'; ADMIN_REQUEST_BYTES_MAX + 10];
        big.push(b'\n');
        let answers = raw(&path, &big).await;
        assert_eq!(answers.len(), 1);
        assert_eq!(answers[0].error.as_ref().unwrap().code, "too_large");

        // More requests than the bound: the extra one is refused and the connection closed.
        let many =
            "{\"command\":\"dbStats\"}\n".repeat(ADMIN_REQUESTS_PER_CONNECTION_MAX as usize + 3);
        let answers = raw(&path, many.as_bytes()).await;
        assert_eq!(
            answers.len(),
            ADMIN_REQUESTS_PER_CONNECTION_MAX as usize + 1
        );
        assert!(
            answers[..ADMIN_REQUESTS_PER_CONNECTION_MAX as usize]
                .iter()
                .all(|a| a.ok),
            "{answers:?}"
        );
        assert_eq!(
            answers.last().unwrap().error.as_ref().unwrap().code,
            "too_many_requests"
        );

        stop_tx.send(true).unwrap();
        server.await.unwrap();
        assert!(!path.exists(), "the socket file is removed on stop");
        assert!(!is_listening(&path));
    }

    #[tokio::test]
    async fn a_stale_socket_file_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = socket_path(dir.path());
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists() && !is_listening(&path));
        let listener = bind(&path).unwrap();
        assert!(is_listening(&path));
        drop(listener);
    }
}
