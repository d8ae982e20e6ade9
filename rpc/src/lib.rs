//! # cairn-rpc
//!
//! The node's JSON-RPC 2.0 interface over HTTP: an axum server that frames requests,
//! checks their input and calls an [`RpcBackend`] (implemented by `cairn-node`), and a
//! typed [`RpcClient`] (used by the `cairn` wallet and the testnet harness), and a typed
//! [`WsClient`] for the WebSocket subscriptions ([`RpcClient::follow_transaction`] follows a
//! transaction to finality over it and falls back to polling `getTransaction`).
//!
//! This crate owns the wire contract — method names, params, result shapes
//! ([`Status`], [`AccountInfo`], [`TxStatus`], [`BlockInfo`], [`ValidatorInfo`],
//! [`PeerInfo`]), error codes ([`codes`]) and HTTP limits ([`RpcServerConfig`]). It owns no
//! chain state: every answer comes from the backend. The server does the stateless input
//! checks (JSON-RPC framing, hex, sizes, wire decoding, address and hash syntax), so
//! malformed input never reaches the backend; signature, chain id, nonce and balance
//! checks are the backend's.
//!
//! ## Transport
//!
//! | route | |
//! |---|---|
//! | `POST /` | JSON-RPC 2.0: one request object, or a batch (array of at most `batch_requests_max`). `Content-Type: application/json` is required. |
//! | `GET /health` | `200 {"status":"ok"}` while the server runs. |
//! | `GET /dashboard` | the built-in live dashboard, an HTML page with its script and style sheet at `/dashboard/dashboard.{js,css}` ([`dashboard`]). |
//! | `GET /ws` | WebSocket subscriptions ([`ws`]): JSON-RPC 2.0 `subscribe` / `unsubscribe` for finalized blocks, a transaction's status and an account's balance and nonce; bounded by the `ws_*` fields of [`RpcServerConfig`]. Protocol: docs/wire-format.md, "WebSocket subscriptions". |
//!
//! HTTP/1.1 (and 1.0). Every answer below that is not 200/204 carries a JSON-RPC error
//! object with `id: null` unless noted.
//!
//! - A request without exactly one `Host` header gets **HTTP 400**.
//! - `POST /` with a `Content-Type` other than `application/json` (parameters such as
//!   `charset` allowed), or none, gets **HTTP 415**: a web page cannot send it without a
//!   CORS preflight.
//! - A body over `body_bytes_max` (default 1 MiB) gets **HTTP 413** (plain text).
//! - A body not fully received within `body_read_timeout_ms` (default 5 s) of its headers
//!   gets **HTTP 408** and the connection is closed.
//! - More than `concurrency_max` requests in flight on `POST /`: the extra request gets
//!   **HTTP 503** with a -32005 error at once (load shedding, no queue). Only requests whose
//!   body has fully arrived count, so slow senders cannot take every slot.
//! - An exchange taking longer than `request_timeout_ms` gets **HTTP 503**, empty body.
//! - A notification (request without `id`) is executed and not answered; a request or
//!   batch of notifications only gets **HTTP 204**, no body. `"id": null` is a request
//!   (answered with `id: null`).
//! - Otherwise HTTP 200 with the JSON-RPC response(s), errors included. A string or number
//!   `id` is echoed as the exact JSON text the client sent (integers beyond 64 bits,
//!   `1.5e300`, escapes in strings); a body containing a number beyond the `f64` range
//!   (e.g. `1e400`) is a parse error.
//!
//! Connections ([`serve_listener`]):
//!
//! - A request line and headers not received within `header_read_timeout_ms` (default
//!   5 s) of the first read: the connection is closed without an answer.
//! - A connection with no request in progress for `idle_timeout_ms` (default 30 s) is
//!   closed.
//! - At most `connections_max` (default 1024) connections are open in total and at most
//!   `connections_per_ip_max` (default 256) from one client IP; further connections are
//!   accepted and closed at once. The node lowers `connections_max` to fit its
//!   file-descriptor limit ([`RpcServerConfig::fit_connections_to`]).
//!
//! CORS: `cors_allowed_origins` (default empty) lists the origins
//! (`https://wallet.example:8443`) whose pages may call the server; responses to them carry
//! `Access-Control-Allow-Origin` and preflight `OPTIONS` requests are answered (methods
//! `GET`, `POST`; header `Content-Type`). `["*"]` allows every origin. Empty: no CORS
//! headers at all, so browsers refuse cross-origin calls (the 415 above stops the
//! preflight-free ones).
//!
//! `GET /metrics` (added by the node) serves OpenMetrics text as
//! [`OPENMETRICS_CONTENT_TYPE`].
//!
//! ## Methods
//!
//! Params may be positional (array) or named (object); positional params follow the
//! order of the named ones. Unknown named params are an error (-32602). Hashes are 64 hex
//! characters (optional `0x`), addresses are bech32m `cairn1…` (or all uppercase; never
//! hex), amounts and heights are JSON integers.
//!
//! | method | params | result | errors (besides -32602 for bad params) |
//! |---|---|---|---|
//! | `getStatus` | none | [`Status`] `{chainId, genesisHash, latestHeight, latestHash, latestStateRoot, peerCount, syncing, nodeVersion, rpcVersion ([`RPC_VERSION`]), validatorName, epoch, view, mempoolTxs, finalityLatencyMs, upcomingLeaders: [{view, name, address}]}` | -32603 |
//! | `getAccount` | `{address}` / `[address]` | [`AccountInfo`] `{address, balance, nonce, nextNonce, permissions}` (unknown account: 0, 0, 0) | -32603 |
//! | `getBalance` | `{address}` / `[address]` | balance, a number | -32603 |
//! | `sendTransaction` | `{tx}` / `[tx]`: hex of [`cairn_ledger::SignedTransaction::encode`] | transaction hash (hex string) | -32602 if longer than [`TX_HEX_CHARS_MAX`] hex characters (checked before decoding, reason `oversize`), not hex (`bad_hex`), or not a well-formed transaction (`malformed`: wire format, chain id over 32 bytes); -32010 rejected by the node, `data: {"reason": code}` (`bad_signature`, `wrong_chain`, `stale_nonce`, `too_far_ahead`, `insufficient_balance`, `expired`, `duplicate`, …); -32005 mempool full; -32603 |
//! | `getTransaction` | `{hash}` / `[hash]` | [`TxStatus`]: `{"status":"pending"}`, `{"status":"finalized","height","index","blockHash"}`, `{"status":"rejected","reason","message"}`, `{"status":"unknown"}` | -32603 |
//! | `getBlock` | `{height}` / `{hash}` / `[height]` (number) / `[hash]` (string); optional `transactions`: `"full"` (default) or `"hashes"` (named, or a second positional param) | [`BlockInfo`] `{hash, header, transactions: [TxInfo]}` (camelCase header; each transaction with its `signature` and `raw` signed bytes as hex), with `"hashes"` [`BlockHashesInfo`] `{hash, header, transactionHashes}`; `null` if no such finalized block | -32602 bad selector or `transactions` value; -32603 |
//! | `getValidators` | none, `{height}` / `[height]`, or `{epoch}` | `[`[`ValidatorInfo`]`]` `{name, address, peerId, votingPower}`: the running epoch's set, the set that finalized the block at `height`, or epoch `epoch`'s set; `null` for an epoch not reached | -32602 both `height` and `epoch`; -32603 |
//! | `getEpochProof` | `{epoch}` / `[epoch]` | [`EpochProofInfo`] `{epoch, boundaryHeight, boundaryHash, validators, nextValidators, proof}`, or `null` if epoch `epoch` has not ended (or the node does not hold its proof) | -32603 |
//! | `getPeers` | none | `[`[`PeerInfo`]`]` `{peerId, address, isValidator, direction, admission, score, found, path}` | -32603 |
//! | `sendTransactions` | `{txs}` / `[txs]`: array of at most [`SEND_TRANSACTIONS_MAX`] transaction hex strings | `[`[`SubmitResult`]`]` `{hash, accepted, reason?, message?}` in request order: each transaction admitted or refused on its own (`reason` as `sendTransaction`'s `data.reason`, `overloaded` when full) | -32602 if the array is too long (`oversize`, checked before decoding) or any element is not a well-formed transaction (then none is submitted); -32005 `overloaded` for the whole call, before its params are decoded, while [`RpcBackend::submissions_open`] is false (also `sendTransaction`); -32603 |
//! | `getFinalization` | `{height}` / `[height]` | [`FinalizationInfo`] `{height, blockHash, view, signers, certificate}`, or `null` if no certificate is stored for exactly this height: not finalized, or finalized together with a descendant (whose certificate, at a later height, implies it) | -32603 |
//! | `getGovernance` | none | the governance record ([`cairn_ledger::governance::Governance`]) `{members, threshold, accounts, proposal_ttl_blocks, epoch, validators, params, proposals, next_proposal_id}` (snake_case keys), or `null` | -32603 |
//! | `getBlockSummaries` | `{count, fromHeight?}` / `[count, fromHeight]`: `count` in 1..=[`BLOCK_SUMMARIES_MAX`] | `[`[`BlockSummary`]`]` `{height, hash, view, proposer, timestampMs, txCount, signers}` ascending: from `fromHeight` up to `count` blocks or the head, or without `fromHeight` the latest `count` blocks ending at the head; `[]` if `fromHeight` is above the head. `signers`: addresses of the validators in the block's own finalization certificate, `null` if it has none | -32602 `count` missing or out of range; -32603 |
//! | `getThroughput` | none | [`Throughput`] `{binMs, bins: [{startMs, txs, blocks}]}`: what the node committed in each whole second of the last [`THROUGHPUT_BINS_MAX`] (its clock), oldest first | -32603 |
//! | `getEvidence` | none | `[`[`EvidenceInfo`]`]` `{validator, validatorIndex, view, kind, evidence}` (at most [`EVIDENCE_RESULTS_MAX`]) | -32603 |
//!
//! "none" accepts an absent or `null` `params`, `[]` and `{}`.
//!
//! ## Errors
//!
//! Every error object carries `data.reason`, a stable snake_case string ([`codes::default_reason`]
//! unless a more specific one applies: [`reasons`] for undecodable input, the ledger's and
//! mempool's codes for -32010). docs/wire-format.md (JSON-RPC) lists every reason in one
//! table.
//!
//! | code | meaning |
//! |---|---|
//! | -32700 | parse error: the body is not JSON (`id: null`) |
//! | -32600 | invalid request: not an object, `jsonrpc` not `"2.0"`, `method` not a string, `params` not array/object, `id` not string/number/null; empty batch; batch over `batch_requests_max` |
//! | -32601 | method not found |
//! | -32602 | invalid params; the message names the param and the problem |
//! | -32603 | internal error in the node |
//! | -32004 | not found (`data: {"reason": "not_found", "what": …}`) |
//! | -32005 | overloaded, retry later |
//! | -32010 | transaction rejected, `data: {"reason": code}` with a stable code |
//!
//! ## Example
//!
//! ```text
//! $ curl -s localhost:8545 -H 'content-type: application/json' \
//!        -d '{"jsonrpc":"2.0","id":1,"method":"getBalance","params":["cairn1…"]}'
//! {"jsonrpc":"2.0","result":1000,"id":1}
//! ```

/// Version of this JSON-RPC interface, reported by `getStatus` as `rpcVersion`. Any change
/// of method names, params, result or error shapes bumps it; docs/wire-format.md
/// (JSON-RPC) records what each version changed. Version 1 had no `rpcVersion`.
pub const RPC_VERSION: u32 = 2;

mod backend;
mod client;
pub mod dashboard;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod methods;
mod server;
mod types;
pub mod ws;
mod ws_client;

pub use backend::RpcBackend;
pub use client::{ClientError, DEFAULT_TIMEOUT, POLL_MS_MIN, RESPONSE_BYTES_MAX, RpcClient};
pub use error::{ErrorObject, RpcError, codes, reasons};
pub use methods::{METHODS, TX_HEX_CHARS_MAX};
pub use server::{
    BATCH_REQUESTS_LIMIT, BODY_BYTES_LIMIT, BODY_BYTES_MIN, CONCURRENCY_LIMIT, CONNECTIONS_LIMIT,
    CORS_ORIGIN_BYTES_MAX, CORS_ORIGINS_MAX, IDLE_TIMEOUT_MS_RANGE, OPENMETRICS_CONTENT_TYPE,
    READ_TIMEOUT_MS_RANGE, REQUEST_TIMEOUT_MS_RANGE, RpcServerConfig, RpcServerError,
    RpcServerHandle, bind, router, router_with_routes, router_with_ws_stats, serve, serve_listener,
    spawn, spawn_with_ws_stats,
};
pub use types::{
    AccountInfo, BLOCK_SUMMARIES_MAX, BlockHashesInfo, BlockInfo, BlockSummary,
    EVIDENCE_RESULTS_MAX, EpochProofInfo, EvidenceInfo, FinalizationInfo, LeaderInfo, PeerInfo,
    SEND_TRANSACTIONS_MAX, Status, SubmitResult, THROUGHPUT_BINS_MAX, Throughput, ThroughputBin,
    TxInfo, TxStatus, UPCOMING_LEADERS_MAX, ValidatorInfo, ValidatorsAt,
};
pub use ws::{
    AccountNotification, BlockNotification, FinalizedBlock, FinalizedBlocks, WsStats,
    touched_accounts,
};
pub use ws_client::{
    FollowedVia, Notification, SubscriptionKind, WS_PENDING_NOTIFICATIONS_MAX, WsClient, ws_url,
};

/// Re-exported so backends and clients name the same `async_trait`.
pub use async_trait::async_trait;
