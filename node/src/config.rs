//! Node configuration: `config.toml` in the node's home directory.
//!
//! Precedence: command-line flags over environment variables (`CAIRN_*`, handled by the
//! binary's clap definitions) over `config.toml` over the defaults documented here. Chain-wide
//! parameters (timeouts, block and mempool limits) live in the genesis file, not here, so
//! every validator runs them identically.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Largest `config.toml` read, in bytes (checked before parsing).
pub const CONFIG_BYTES_MAX: u64 = 1024 * 1024;

/// Errors loading or validating a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    /// The file is larger than [`CONFIG_BYTES_MAX`].
    #[error("{path} is {len} bytes, more than the limit of {max}")]
    TooLarge { path: PathBuf, len: u64, max: u64 },
    /// TOML syntax or an unknown field.
    #[error("invalid {path}: {reason}")]
    Parse { path: PathBuf, reason: String },
    /// A value is out of range.
    #[error("invalid configuration: {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
}

/// The whole node configuration.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// Human-readable node name, shown in logs and `getStatus`.
    pub moniker: String,
    /// Genesis file, relative to the home directory unless absolute.
    pub genesis_file: PathBuf,
    /// libp2p identity key file (relative to home).
    pub node_key_file: PathBuf,
    /// Consensus signing key file (relative to home). A node whose key is not in the
    /// genesis validator set runs as a non-voting full node.
    pub validator_key_file: PathBuf,
    /// File whose first line is the passphrase of an encrypted validator key file
    /// (docs/keystore.md; relative to home). Unset: the key file must be plaintext.
    pub validator_key_password_file: Option<PathBuf>,
    /// RocksDB directory (relative to home).
    pub db_dir: PathBuf,
    /// Peer-to-peer settings.
    pub p2p: P2pConfig,
    /// JSON-RPC server settings.
    pub rpc: RpcConfig,
    /// Block sync settings.
    pub sync: SyncConfig,
    /// Storage settings (pruning).
    pub storage: StorageConfig,
    /// Logging.
    pub log: LogConfig,
    /// Test builds only ([`crate::byzantine`]): make this validator Byzantine. Set by
    /// `cairn-node run --byzantine`, never read from a file.
    #[cfg(all(feature = "byzantine", debug_assertions))]
    #[serde(skip)]
    pub byzantine: Option<crate::byzantine::Plan>,
}

/// Peer-to-peer settings.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct P2pConfig {
    /// libp2p listen multiaddr. Default `/ip4/0.0.0.0/tcp/26656`.
    pub listen: String,
    /// Peers to dial at start and redial while disconnected; multiaddrs ending in `/p2p/<peer id>`.
    pub bootstrap: Vec<String>,
    /// Redial period for disconnected bootstrap peers, ms. Default 2000.
    pub redial_interval_ms: u64,
    /// Maximum simultaneous connections. Default 64.
    pub connections_max: u32,
    /// Bounded queue of network events to the node, entries. Default 4096.
    pub event_queue_max: usize,
    /// Bounded queue of commands to the network task, entries. Default 4096.
    pub command_queue_max: usize,
    /// Timeout of one sync request, ms. Default 10000.
    pub sync_request_timeout_ms: u64,
    /// How long a connected non-validator peer has to prove its proof-of-work identity
    /// before it is disconnected, ms (only when genesis `admission_difficulty_bits` > 0).
    /// Default 5000.
    pub admission_deadline_ms: u64,
    /// How long a peer banned for a low score stays banned (persisted across restarts), ms.
    /// Default 3600000 (1 hour).
    pub ban_duration_ms: u64,
    /// Most established connections of one non-validator peer; further ones are closed at
    /// once. Genesis validators and bootstrap peers are exempt. Range 1..=64. Default 2.
    pub connections_per_peer_max: u32,
    /// Most established connections of non-validator peers from one IP address; further
    /// ones are closed at once. Genesis validators and bootstrap peers are exempt and not
    /// counted. Range 1..=10000. Default 16.
    pub connections_per_ip_max: u32,
    /// When more than this many identities seen on one IP address have been banned, the IP
    /// address is banned for `ban_duration_ms` too (persisted across restarts). The address
    /// of a genesis validator or bootstrap peer is never banned. Range 1..=1000. Default 3.
    pub banned_identities_per_ip_max: u32,
    /// Peer discovery (docs/network.md): Kademlia over admitted peers, identify address
    /// learning, random walks, dials of discovered peers up to `peers_target`. `false`: the
    /// node reaches only its bootstrap peers and those that dial it. Default `true`.
    pub discovery: bool,
    /// Connected peers discovery looks for; at or above it, no discovery dials and random
    /// walks back off. Range 0..=`peers_max`. Default 8 (the gossip mesh degree is 6).
    pub peers_target: u32,
    /// Most connected peers; a new peer's connection beyond it is closed at once unless it
    /// is a bootstrap peer or a validator of the current set. Range 1..=`connections_max`.
    /// Default 32.
    pub peers_max: u32,
    /// Discovery tick, ms: at most one random walk and 4 discovery dials per tick (walks back
    /// off up to 32 ticks apart once `peers_target` is met). Range 100..=600000. Default 1000.
    pub discovery_interval_ms: u64,
    /// AutoNAT v1 (docs/network.md, "NAT traversal"): learn whether this node is publicly
    /// reachable by asking peers to dial it back, and answer their requests (at most 30
    /// dial-backs per second, 3 per peer). Default `true`.
    pub autonat: bool,
    /// Serve as a circuit relay v2 for admitted peers (reservations and circuits within the
    /// `relay_*` bounds below). Default `false`: validators should not relay.
    pub relay_service: bool,
    /// Relay service: reservations held at once. Range 1..=4096. Default 32.
    pub relay_reservations_max: u32,
    /// Relay service: life of a reservation before it must be renewed, ms. Range
    /// 1000..=86400000. Default 3600000 (1 hour).
    pub relay_reservation_duration_ms: u64,
    /// Relay service: circuits relayed at once. Range 1..=4096. Default 16.
    pub relay_circuits_max: u32,
    /// Relay service: longest life of one circuit, ms (then closed; the peers reconnect).
    /// Range 1000..=86400000. Default 3600000 (1 hour).
    pub relay_circuit_duration_ms: u64,
    /// Relay service: most bytes over one circuit, both directions (then closed), bytes.
    /// Range 1..=2^40. Default 1073741824 (1 GiB).
    pub relay_circuit_bytes_max: u64,
    /// Relays to reserve a slot on (a node behind a NAT): multiaddrs ending in
    /// `/p2p/<relay id>`, at most 8. The node is then reachable at
    /// `<relay>/p2p-circuit/p2p/<own id>`. Default empty.
    pub relays: Vec<String>,
    /// DCUtR hole punching: upgrade relayed connections to direct ones. Default `true`.
    pub hole_punching: bool,
    /// Addresses announced as this node's own public addresses (`/ip4|ip6/<ip>/tcp/<port>`,
    /// at most 8); a relay's reservations carry them, so a relay needs one unless AutoNAT
    /// confirms its address. Default empty.
    pub external_addresses: Vec<String>,
}

impl P2pConfig {
    /// The network layer's NAT traversal settings.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] if an address does not parse or a value is out of range.
    pub fn nat_config(&self) -> Result<crate::network::NatConfig, ConfigError> {
        let parse = |field: &'static str, list: &[String]| {
            list.iter()
                .map(|a| {
                    a.parse::<libp2p::Multiaddr>()
                        .map_err(|e| ConfigError::Invalid {
                            field,
                            reason: format!("`{a}`: {e}"),
                        })
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let nat = crate::network::NatConfig {
            autonat: self.autonat,
            relay_service: self.relay_service,
            relay_limits: crate::network::RelayLimits {
                reservations_max: self.relay_reservations_max,
                reservation_duration_ms: self.relay_reservation_duration_ms,
                circuits_max: self.relay_circuits_max,
                circuit_duration_ms: self.relay_circuit_duration_ms,
                circuit_bytes_max: self.relay_circuit_bytes_max,
            },
            relays: parse("p2p.relays", &self.relays)?,
            hole_punching: self.hole_punching,
            external_addresses: parse("p2p.external_addresses", &self.external_addresses)?,
        };
        range(
            "p2p.relay_circuit_bytes_max",
            self.relay_circuit_bytes_max,
            1,
            1 << 40,
        )?;
        nat.validate().map_err(|e| ConfigError::Invalid {
            field: "p2p (NAT traversal)",
            reason: e.to_string(),
        })?;
        Ok(nat)
    }

    /// The network layer's discovery settings.
    pub fn discovery_config(&self) -> crate::network::DiscoveryConfig {
        crate::network::DiscoveryConfig {
            enabled: self.discovery,
            peers_target: self.peers_target,
            peers_max: self.peers_max,
            interval_ms: self.discovery_interval_ms,
        }
    }
}

/// JSON-RPC server settings.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RpcConfig {
    /// Listen address. Default `127.0.0.1:8545`.
    pub listen: SocketAddr,
    /// Largest request body, bytes. Default 1 MiB.
    pub body_bytes_max: usize,
    /// Largest JSON-RPC batch, requests. Default 100.
    pub batch_requests_max: usize,
    /// Requests served at once. Default 256.
    pub concurrency_max: usize,
    /// Per-request timeout, ms. Default 10000.
    pub request_timeout_ms: u64,
    /// Time a client has to send a request's line and headers, ms; then the connection is
    /// closed. Range 50..=600000. Default 5000.
    pub header_read_timeout_ms: u64,
    /// Time a client has to send a `POST /` body after its headers, ms; then HTTP 408 and
    /// the connection is closed. Range 50..=600000. Default 5000.
    pub body_read_timeout_ms: u64,
    /// A connection with no request in progress this long is closed, ms. Range
    /// 50..=3600000. Default 30000.
    pub idle_timeout_ms: u64,
    /// Most open RPC connections; lowered at start-up to fit the file-descriptor limit
    /// (logged). Range 1..=1000000. Default 1024.
    pub connections_max: usize,
    /// Most open RPC connections from one client IP. Range 1..=`connections_max`.
    /// Default 256.
    pub connections_per_ip_max: usize,
    /// Origins whose web pages may call the RPC server (CORS), e.g.
    /// `["https://wallet.example"]`; `["*"]` for any. Default empty: no CORS headers.
    pub cors_allowed_origins: Vec<String>,
    /// Most open WebSocket connections (`GET /ws`, subscriptions); 0 turns them off. They
    /// count against `connections_max` too. Range 0..=1000000. Default 256.
    pub ws_connections_max: usize,
    /// Most subscriptions on one WebSocket connection. Range 1..=1000000. Default 1024.
    pub ws_subscriptions_per_connection_max: usize,
    /// Most subscriptions over all WebSocket connections. Range 1..=1000000. Default 10000.
    pub ws_subscriptions_max: usize,
    /// Most messages waiting to be sent on one WebSocket connection; a consumer whose queue
    /// is full is told why and disconnected. Range 1..=1048576. Default 4096.
    pub ws_send_queue_max: usize,
    /// Largest WebSocket message a client may send, bytes (checked before it is read).
    /// Range 1024..=16777216. Default 65536.
    pub ws_message_bytes_max: usize,
}

impl RpcConfig {
    /// The RPC server's settings.
    pub fn to_server_config(&self) -> cairn_rpc::RpcServerConfig {
        cairn_rpc::RpcServerConfig {
            listen: self.listen,
            body_bytes_max: self.body_bytes_max,
            batch_requests_max: self.batch_requests_max,
            concurrency_max: self.concurrency_max,
            request_timeout_ms: self.request_timeout_ms,
            header_read_timeout_ms: self.header_read_timeout_ms,
            body_read_timeout_ms: self.body_read_timeout_ms,
            idle_timeout_ms: self.idle_timeout_ms,
            connections_max: self.connections_max,
            connections_per_ip_max: self.connections_per_ip_max,
            cors_allowed_origins: self.cors_allowed_origins.clone(),
            ws_connections_max: self.ws_connections_max,
            ws_subscriptions_per_connection_max: self.ws_subscriptions_per_connection_max,
            ws_subscriptions_max: self.ws_subscriptions_max,
            ws_send_queue_max: self.ws_send_queue_max,
            ws_message_bytes_max: self.ws_message_bytes_max,
        }
    }
}

/// Block sync settings.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SyncConfig {
    /// How often to ask a peer for its head, ms. Default 1000.
    pub interval_ms: u64,
    /// Blocks asked for in one request. Default 64.
    pub batch_blocks_max: u16,
    /// Re-check every transaction signature of synced blocks. Default `false`: a synced
    /// block is accepted only under a finalization certificate of a quorum of the genesis
    /// validator set (verified here), whose honest members checked every signature before
    /// voting, and the block hash binds the transactions; so under the fault assumption
    /// consensus itself rests on (at most f faulty), re-checking finds nothing and only costs
    /// catch-up speed (about 3x; `docs/throughput.md`). Blocks are always re-executed.
    /// Set `true` to trust no quorum with transaction validity.
    pub reverify_signatures: bool,
    /// Block-sync range requests in flight at once, over all peers
    /// (`crate::sync_schedule`). Ranges that arrive before the one the head needs wait for
    /// it; ranges in flight and waiting together are at most twice this. Range 1..=32.
    /// Default 8.
    pub range_in_flight_max: u32,
    /// Block-sync range requests in flight to one peer. Range 1..=16. Default 2 (below the
    /// sync server's default `serve_in_flight_per_peer_max` of 4).
    pub range_in_flight_per_peer_max: u32,
    /// How long a range request may take, from sending it to its checked answer, ms; then
    /// it is asked of another peer (a timeout is not the peer's fault). Range
    /// 100..=600000. Default 15000 (above `p2p.sync_request_timeout_ms`' default 10000).
    pub range_timeout_ms: u64,
    /// Sync requests one peer may send per second, sustained (the sync server's token
    /// bucket refill rate). Range 1..=10000. Default 50: a catching-up node sends a few
    /// ranges a second, a validator one transactions request per compact block.
    pub serve_requests_per_sec: u32,
    /// Sync requests one peer may send at once after being idle (bucket size). Range
    /// 1..=10000. Default 100.
    pub serve_burst: u32,
    /// Sync requests of one peer served at once. Range 1..=64. Default 4.
    pub serve_in_flight_per_peer_max: u32,
    /// Sync request tokens this node sends one peer per second, sustained
    /// (`crate::network::pacer`: requests wait for their tokens before they are sent, each
    /// costing what the peer's server charges, `crate::sync::request_cost`). Keep it below
    /// the peers' `serve_requests_per_sec`, or they count this node's requests against it.
    /// Range 1..=10000. Default 40.
    pub send_requests_per_sec: u32,
    /// Sync request tokens this node may send one peer at once after being idle. Keep it
    /// below the peers' `serve_burst`. Range 17 (the costliest request,
    /// `crate::sync::REQUEST_COST_MAX`)..=10000. Default 40.
    pub send_burst: u32,
    /// Sync requests of all peers served at once. Range 1..=1024. Default 32.
    pub serve_in_flight_max: u32,
    /// Join by state sync (`crate::state_sync`): a node whose store holds only its genesis
    /// takes a snapshot of the state from its peers instead of replaying every block, when
    /// they are more than `state_sync_min_gap_blocks` ahead. Default `true`; `false`
    /// always replays.
    pub state_sync: bool,
    /// How far ahead (blocks) the best peer's head must be for state sync. Range
    /// 1..=10^9. Default 1000.
    pub state_sync_min_gap_blocks: u64,
    /// Peers that must offer the same snapshot (same manifest id) before it is fetched; the
    /// chunks are fetched from all of them. Range 1..=16. Default 2.
    pub state_sync_peers_min: u32,
    /// Chunk requests in flight per peer. Range 1..=16. Default 2.
    pub state_sync_in_flight_per_peer_max: u32,
    /// How long a joining node waits for `state_sync_peers_min` admitted peers before it
    /// falls back to block sync, ms. Range 0..=600000. Default 15000.
    pub state_sync_wait_ms: u64,
    /// Make a state snapshot every this many blocks (0: never). Range 0..=10^9. Default
    /// 1000.
    pub snapshot_interval_blocks: u64,
    /// Snapshots kept on disk (the newest). Range 1..=64. Default 2.
    pub snapshots_kept: u32,
    /// Chunk size target of the snapshots this node makes, bytes. Range
    /// 1024..=1048576 (`cairn_ledger::snapshot::CHUNK_BYTES_MAX`). Default 1048576.
    pub snapshot_chunk_bytes: u32,
}

impl SyncConfig {
    /// This node's pacing of the sync requests it sends each peer.
    pub fn request_pacing(&self) -> crate::network::pacer::RequestPacing {
        crate::network::pacer::RequestPacing {
            requests_per_sec: self.send_requests_per_sec,
            burst: self.send_burst,
        }
    }

    /// The sync server's limits.
    pub fn server_limits(&self) -> crate::sync_server::SyncServerLimits {
        crate::sync_server::SyncServerLimits {
            requests_per_sec: self.serve_requests_per_sec,
            burst: self.serve_burst,
            in_flight_per_peer_max: self.serve_in_flight_per_peer_max,
            in_flight_max: self.serve_in_flight_max,
        }
    }
}

/// The least non-zero `[storage] retain_blocks`: one full sync range
/// ([`crate::sync::SYNC_BLOCKS_MAX`], the most blocks one request may ask for and the
/// largest `sync.batch_blocks_max`). A node keeps at least the bodies a peer that fell behind
/// by up to one range asks for in one request, so validators that miss a few minutes (and
/// the consensus path's own fetches of recent blocks, always near the head) are served by
/// pruned nodes too. Cairn's epochs have no fixed length (governance ends them), so no
/// epoch bound applies: a range stops at an epoch's boundary block either way.
pub const RETAIN_BLOCKS_MIN: u64 = crate::sync::SYNC_BLOCKS_MAX as u64;

/// Storage settings.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Keep only the bodies (transactions) of the last `retain_blocks` finalized blocks,
    /// pruning older ones in the background (at most 64 blocks and about 16,384
    /// transactions per step, one step per commit); headers, finalization certificates,
    /// the block hash index and account state stay, and the genesis block. 0: keep every
    /// block (the default). Otherwise at least [`RETAIN_BLOCKS_MIN`] (1,024). A pruned node
    /// serves block sync only from its lowest retained height (docs/operations.md).
    pub retain_blocks: u64,
    /// RocksDB's block cache, MiB, shared by every column family
    /// ([`cairn_ledger::StoreOptions::block_cache_bytes`]): 16 by default, within
    /// [`BLOCK_CACHE_MIB_MIN`]..=[`BLOCK_CACHE_MIB_MAX`]. A node whose state is much larger
    /// than the cache reads most accounts from disk blocks (docs/operations.md, "Memory").
    pub block_cache_mib: u32,
    /// Most accounts the store keeps decoded in memory
    /// ([`cairn_ledger::StoreOptions::account_cache_max`]): 262,144 by default (about
    /// 25 MiB), within [`cairn_ledger::ACCOUNT_CACHE_MAX_MIN`]..=
    /// [`cairn_ledger::ACCOUNT_CACHE_MAX_MAX`]; about 100 bytes per account. At start the
    /// node loads stored accounts into it until half of it is full
    /// ([`cairn_ledger::Store::warm_account_cache`]), so a value of at least twice the
    /// account count keeps the whole state in memory and no transfer reads RocksDB for an
    /// account (docs/operations.md, "Memory").
    pub account_cache_max: usize,
}

/// Least `[storage] block_cache_mib` ([`cairn_ledger::store::BLOCK_CACHE_BYTES_MIN`]).
pub const BLOCK_CACHE_MIB_MIN: u32 = (cairn_ledger::store::BLOCK_CACHE_BYTES_MIN >> 20) as u32;

/// Most `[storage] block_cache_mib` ([`cairn_ledger::store::BLOCK_CACHE_BYTES_MAX`]).
pub const BLOCK_CACHE_MIB_MAX: u32 = (cairn_ledger::store::BLOCK_CACHE_BYTES_MAX >> 20) as u32;

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            retain_blocks: 0,
            block_cache_mib: (cairn_ledger::store::BLOCK_CACHE_BYTES >> 20) as u32,
            account_cache_max: cairn_ledger::ACCOUNT_CACHE_MAX,
        }
    }
}

impl StorageConfig {
    /// The ledger's store options these settings give.
    pub fn store_options(&self) -> cairn_ledger::StoreOptions {
        cairn_ledger::StoreOptions {
            block_cache_bytes: (self.block_cache_mib as usize) << 20,
            account_cache_max: self.account_cache_max,
        }
    }
}

/// Logging settings.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `tracing` env-filter directive, e.g. `info` or `info,cairn_node=debug`. `RUST_LOG` wins.
    pub filter: String,
    /// `text` or `json`.
    pub format: String,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            moniker: "cairn-node".into(),
            genesis_file: "genesis.json".into(),
            node_key_file: "node_key.json".into(),
            validator_key_file: "validator_key.json".into(),
            validator_key_password_file: None,
            db_dir: "data".into(),
            p2p: P2pConfig::default(),
            rpc: RpcConfig::default(),
            sync: SyncConfig::default(),
            storage: StorageConfig::default(),
            log: LogConfig::default(),
            #[cfg(all(feature = "byzantine", debug_assertions))]
            byzantine: None,
        }
    }
}

impl Default for P2pConfig {
    fn default() -> Self {
        P2pConfig {
            listen: "/ip4/0.0.0.0/tcp/26656".into(),
            bootstrap: Vec::new(),
            redial_interval_ms: 2000,
            connections_max: 64,
            event_queue_max: 4096,
            command_queue_max: 4096,
            sync_request_timeout_ms: 10_000,
            admission_deadline_ms: 5000,
            ban_duration_ms: 3_600_000,
            connections_per_peer_max: crate::network::DEFAULT_CONNECTIONS_PER_PEER_MAX,
            connections_per_ip_max: crate::network::DEFAULT_CONNECTIONS_PER_IP_MAX,
            banned_identities_per_ip_max: crate::network::DEFAULT_BANNED_IDENTITIES_PER_IP_MAX,
            discovery: true,
            peers_target: 8,
            peers_max: 32,
            discovery_interval_ms: 1000,
            autonat: true,
            relay_service: false,
            relay_reservations_max: 32,
            relay_reservation_duration_ms: 3_600_000,
            relay_circuits_max: 16,
            relay_circuit_duration_ms: 3_600_000,
            relay_circuit_bytes_max: 1 << 30,
            relays: Vec::new(),
            hole_punching: true,
            external_addresses: Vec::new(),
        }
    }
}

impl Default for RpcConfig {
    fn default() -> Self {
        let server = cairn_rpc::RpcServerConfig::default();
        RpcConfig {
            listen: "127.0.0.1:8545".parse().expect("static address"),
            body_bytes_max: 1024 * 1024,
            batch_requests_max: 100,
            concurrency_max: 256,
            request_timeout_ms: 10_000,
            header_read_timeout_ms: server.header_read_timeout_ms,
            body_read_timeout_ms: server.body_read_timeout_ms,
            idle_timeout_ms: server.idle_timeout_ms,
            connections_max: server.connections_max,
            connections_per_ip_max: server.connections_per_ip_max,
            cors_allowed_origins: server.cors_allowed_origins,
            ws_connections_max: server.ws_connections_max,
            ws_subscriptions_per_connection_max: server.ws_subscriptions_per_connection_max,
            ws_subscriptions_max: server.ws_subscriptions_max,
            ws_send_queue_max: server.ws_send_queue_max,
            ws_message_bytes_max: server.ws_message_bytes_max,
        }
    }
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            interval_ms: 1000,
            batch_blocks_max: 64,
            reverify_signatures: false,
            range_in_flight_max: 8,
            range_in_flight_per_peer_max: 2,
            range_timeout_ms: 15_000,
            serve_requests_per_sec: 50,
            serve_burst: 100,
            serve_in_flight_per_peer_max: 4,
            serve_in_flight_max: 32,
            send_requests_per_sec: 40,
            send_burst: 40,
            state_sync: true,
            state_sync_min_gap_blocks: 1000,
            state_sync_peers_min: 2,
            state_sync_in_flight_per_peer_max: 2,
            state_sync_wait_ms: 15_000,
            snapshot_interval_blocks: 1000,
            snapshots_kept: 2,
            snapshot_chunk_bytes: cairn_ledger::snapshot::CHUNK_BYTES_MAX as u32,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            filter: "info".into(),
            format: "text".into(),
        }
    }
}

fn range<T: PartialOrd + std::fmt::Display + Copy>(
    field: &'static str,
    v: T,
    lo: T,
    hi: T,
) -> Result<(), ConfigError> {
    if v < lo || v > hi {
        return Err(ConfigError::Invalid {
            field,
            reason: format!("{v} is outside {lo}..={hi}"),
        });
    }
    Ok(())
}

/// `rpc.<field>` for a field name of [`cairn_rpc::RpcServerConfig`].
fn rpc_field(field: &'static str) -> &'static str {
    match field {
        "listen" => "rpc.listen",
        "body_bytes_max" => "rpc.body_bytes_max",
        "batch_requests_max" => "rpc.batch_requests_max",
        "concurrency_max" => "rpc.concurrency_max",
        "request_timeout_ms" => "rpc.request_timeout_ms",
        "header_read_timeout_ms" => "rpc.header_read_timeout_ms",
        "body_read_timeout_ms" => "rpc.body_read_timeout_ms",
        "idle_timeout_ms" => "rpc.idle_timeout_ms",
        "connections_max" => "rpc.connections_max",
        "connections_per_ip_max" => "rpc.connections_per_ip_max",
        "cors_allowed_origins" => "rpc.cors_allowed_origins",
        "ws_connections_max" => "rpc.ws_connections_max",
        "ws_subscriptions_per_connection_max" => "rpc.ws_subscriptions_per_connection_max",
        "ws_subscriptions_max" => "rpc.ws_subscriptions_max",
        "ws_send_queue_max" => "rpc.ws_send_queue_max",
        "ws_message_bytes_max" => "rpc.ws_message_bytes_max",
        _ => "rpc",
    }
}

impl NodeConfig {
    /// Reads `path` (bounded by [`CONFIG_BYTES_MAX`]), parses TOML, validates.
    pub fn load(path: &Path) -> Result<NodeConfig, ConfigError> {
        let meta = std::fs::metadata(path).map_err(|e| ConfigError::Read {
            path: path.into(),
            reason: e.to_string(),
        })?;
        if meta.len() > CONFIG_BYTES_MAX {
            return Err(ConfigError::TooLarge {
                path: path.into(),
                len: meta.len(),
                max: CONFIG_BYTES_MAX,
            });
        }
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.into(),
            reason: e.to_string(),
        })?;
        let config: NodeConfig = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.into(),
            reason: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// TOML text of this configuration.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config serializes")
    }

    /// Checks every field's range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.moniker.is_empty() || self.moniker.len() > 64 {
            return Err(ConfigError::Invalid {
                field: "moniker",
                reason: "must be 1..=64 bytes".into(),
            });
        }
        self.p2p
            .listen
            .parse::<libp2p::Multiaddr>()
            .map_err(|e| ConfigError::Invalid {
                field: "p2p.listen",
                reason: e.to_string(),
            })?;
        self.p2p.nat_config()?;
        if self.p2p.bootstrap.len() > 256 {
            return Err(ConfigError::Invalid {
                field: "p2p.bootstrap",
                reason: "more than 256 entries".into(),
            });
        }
        for b in &self.p2p.bootstrap {
            let addr: libp2p::Multiaddr = b.parse().map_err(|e| ConfigError::Invalid {
                field: "p2p.bootstrap",
                reason: format!("`{b}`: {e}"),
            })?;
            if !addr
                .iter()
                .any(|p| matches!(p, libp2p::multiaddr::Protocol::P2p(_)))
            {
                return Err(ConfigError::Invalid {
                    field: "p2p.bootstrap",
                    reason: format!("`{b}` must end with /p2p/<peer id>"),
                });
            }
        }
        range(
            "p2p.redial_interval_ms",
            self.p2p.redial_interval_ms,
            100,
            600_000,
        )?;
        range("p2p.connections_max", self.p2p.connections_max, 1, 10_000)?;
        range("p2p.event_queue_max", self.p2p.event_queue_max, 16, 1 << 20)?;
        range(
            "p2p.command_queue_max",
            self.p2p.command_queue_max,
            16,
            1 << 20,
        )?;
        range(
            "p2p.sync_request_timeout_ms",
            self.p2p.sync_request_timeout_ms,
            100,
            600_000,
        )?;
        range(
            "p2p.admission_deadline_ms",
            self.p2p.admission_deadline_ms,
            100,
            600_000,
        )?;
        range(
            "p2p.ban_duration_ms",
            self.p2p.ban_duration_ms,
            1000,
            30 * 24 * 3_600_000,
        )?;
        range(
            "p2p.connections_per_peer_max",
            self.p2p.connections_per_peer_max,
            1,
            64,
        )?;
        range(
            "p2p.connections_per_ip_max",
            self.p2p.connections_per_ip_max,
            1,
            10_000,
        )?;
        range(
            "p2p.banned_identities_per_ip_max",
            self.p2p.banned_identities_per_ip_max,
            1,
            1000,
        )?;
        range(
            "p2p.peers_max",
            self.p2p.peers_max,
            1,
            self.p2p.connections_max,
        )?;
        range(
            "p2p.peers_target",
            self.p2p.peers_target,
            0,
            self.p2p.peers_max,
        )?;
        range(
            "p2p.discovery_interval_ms",
            self.p2p.discovery_interval_ms,
            100,
            600_000,
        )?;
        range(
            "rpc.body_bytes_max",
            self.rpc.body_bytes_max,
            1024,
            64 << 20,
        )?;
        range(
            "rpc.batch_requests_max",
            self.rpc.batch_requests_max,
            1,
            10_000,
        )?;
        range("rpc.concurrency_max", self.rpc.concurrency_max, 1, 100_000)?;
        range(
            "rpc.request_timeout_ms",
            self.rpc.request_timeout_ms,
            100,
            600_000,
        )?;
        // Every remaining RPC bound (timeouts, connection caps, CORS origins) is the server's.
        match self.rpc.to_server_config().validate() {
            Ok(()) => {}
            Err(cairn_rpc::RpcServerError::InvalidConfig { field, reason }) => {
                return Err(ConfigError::Invalid {
                    field: rpc_field(field),
                    reason,
                });
            }
            Err(other) => {
                return Err(ConfigError::Invalid {
                    field: "rpc",
                    reason: other.to_string(),
                });
            }
        }
        range("sync.interval_ms", self.sync.interval_ms, 50, 600_000)?;
        range("sync.batch_blocks_max", self.sync.batch_blocks_max, 1, 1024)?;
        range(
            "sync.range_in_flight_max",
            self.sync.range_in_flight_max,
            1,
            crate::sync_schedule::RANGES_IN_FLIGHT_MAX,
        )?;
        range(
            "sync.range_in_flight_per_peer_max",
            self.sync.range_in_flight_per_peer_max,
            1,
            16,
        )?;
        range(
            "sync.range_timeout_ms",
            self.sync.range_timeout_ms,
            100,
            600_000,
        )?;
        range(
            "sync.serve_requests_per_sec",
            self.sync.serve_requests_per_sec,
            1,
            10_000,
        )?;
        range("sync.serve_burst", self.sync.serve_burst, 1, 10_000)?;
        range(
            "sync.send_requests_per_sec",
            self.sync.send_requests_per_sec,
            1,
            10_000,
        )?;
        range(
            "sync.send_burst",
            self.sync.send_burst,
            crate::sync::REQUEST_COST_MAX,
            10_000,
        )?;
        range(
            "sync.serve_in_flight_per_peer_max",
            self.sync.serve_in_flight_per_peer_max,
            1,
            64,
        )?;
        range(
            "sync.serve_in_flight_max",
            self.sync.serve_in_flight_max,
            1,
            1024,
        )?;
        if self.storage.retain_blocks != 0 && self.storage.retain_blocks < RETAIN_BLOCKS_MIN {
            return Err(ConfigError::Invalid {
                field: "storage.retain_blocks",
                reason: format!(
                    "{} is below the minimum of {RETAIN_BLOCKS_MIN} (one full sync range, so \
                     a peer that fell that far behind can still catch up from this node); \
                     0 keeps every block",
                    self.storage.retain_blocks
                ),
            });
        }
        range(
            "storage.block_cache_mib",
            self.storage.block_cache_mib,
            BLOCK_CACHE_MIB_MIN,
            BLOCK_CACHE_MIB_MAX,
        )?;
        range(
            "storage.account_cache_max",
            self.storage.account_cache_max,
            cairn_ledger::ACCOUNT_CACHE_MAX_MIN,
            cairn_ledger::ACCOUNT_CACHE_MAX_MAX,
        )?;
        range(
            "sync.state_sync_min_gap_blocks",
            self.sync.state_sync_min_gap_blocks,
            1,
            1_000_000_000,
        )?;
        range(
            "sync.state_sync_peers_min",
            self.sync.state_sync_peers_min,
            1,
            16,
        )?;
        range(
            "sync.state_sync_in_flight_per_peer_max",
            self.sync.state_sync_in_flight_per_peer_max,
            1,
            16,
        )?;
        range(
            "sync.state_sync_wait_ms",
            self.sync.state_sync_wait_ms,
            0,
            600_000,
        )?;
        range(
            "sync.snapshot_interval_blocks",
            self.sync.snapshot_interval_blocks,
            0,
            1_000_000_000,
        )?;
        range("sync.snapshots_kept", self.sync.snapshots_kept, 1, 64)?;
        range(
            "sync.snapshot_chunk_bytes",
            self.sync.snapshot_chunk_bytes,
            1024,
            cairn_ledger::snapshot::CHUNK_BYTES_MAX as u32,
        )?;
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return Err(ConfigError::Invalid {
                field: "log.format",
                reason: "must be `text` or `json`".into(),
            });
        }
        Ok(())
    }

    /// `p` resolved against `home` unless absolute.
    pub fn resolve(home: &Path, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            home.join(p)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_round_trips_and_validates() {
        let c = NodeConfig::default();
        c.validate().unwrap();
        let back: NodeConfig = toml::from_str(&c.to_toml()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn retain_blocks_is_zero_or_at_least_one_sync_range() {
        let with = |n: u64| {
            let mut c = NodeConfig::default();
            c.storage.retain_blocks = n;
            c
        };
        assert_eq!(NodeConfig::default().storage.retain_blocks, 0, "keep all");
        with(0).validate().unwrap();
        with(RETAIN_BLOCKS_MIN).validate().unwrap();
        with(1_000_000).validate().unwrap();
        for n in [1, 64, RETAIN_BLOCKS_MIN - 1] {
            let err = with(n).validate().unwrap_err();
            assert!(
                matches!(
                    err,
                    ConfigError::Invalid {
                        field: "storage.retain_blocks",
                        ..
                    }
                ),
                "{err}"
            );
        }
        let c: NodeConfig = toml::from_str("[storage]\nretain_blocks = 5000\n").unwrap();
        assert_eq!(c.storage.retain_blocks, 5000);
    }

    #[test]
    fn block_cache_mib_is_bounded_and_sizes_the_store_cache() {
        let d = NodeConfig::default();
        assert_eq!(d.storage.block_cache_mib, 16);
        assert_eq!(
            d.storage.store_options(),
            cairn_ledger::StoreOptions::default(),
            "the node's default is the ledger's"
        );
        let c: NodeConfig = toml::from_str("[storage]\nblock_cache_mib = 256\n").unwrap();
        c.validate().unwrap();
        assert_eq!(c.storage.store_options().block_cache_bytes, 256 << 20);
        c.storage.store_options().validate().unwrap();
        for mib in [BLOCK_CACHE_MIB_MIN, BLOCK_CACHE_MIB_MAX] {
            let mut c = NodeConfig::default();
            c.storage.block_cache_mib = mib;
            c.validate().unwrap();
            c.storage.store_options().validate().unwrap();
        }
        for mib in [0, BLOCK_CACHE_MIB_MIN - 1, BLOCK_CACHE_MIB_MAX + 1] {
            let mut c = NodeConfig::default();
            c.storage.block_cache_mib = mib;
            assert_invalid(&c, "storage.block_cache_mib");
        }
    }

    #[test]
    fn account_cache_max_is_bounded_and_sizes_the_store_cache() {
        let d = NodeConfig::default();
        assert_eq!(d.storage.account_cache_max, cairn_ledger::ACCOUNT_CACHE_MAX);
        let c: NodeConfig = toml::from_str("[storage]\naccount_cache_max = 20000000\n").unwrap();
        c.validate().unwrap();
        assert_eq!(c.storage.store_options().account_cache_max, 20_000_000);
        c.storage.store_options().validate().unwrap();
        for n in [
            cairn_ledger::ACCOUNT_CACHE_MAX_MIN,
            cairn_ledger::ACCOUNT_CACHE_MAX_MAX,
        ] {
            let mut c = NodeConfig::default();
            c.storage.account_cache_max = n;
            c.validate().unwrap();
            c.storage.store_options().validate().unwrap();
        }
        for n in [
            0,
            cairn_ledger::ACCOUNT_CACHE_MAX_MIN - 1,
            cairn_ledger::ACCOUNT_CACHE_MAX_MAX + 1,
        ] {
            let mut c = NodeConfig::default();
            c.storage.account_cache_max = n;
            assert_invalid(&c, "storage.account_cache_max");
        }
    }

    /// `c` fails validation with `Invalid` naming `field`.
    fn assert_invalid(c: &NodeConfig, field: &str) {
        match c.validate() {
            Err(ConfigError::Invalid { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn unknown_field_is_refused() {
        let err = toml::from_str::<NodeConfig>("mooniker = \"x\"\n").unwrap_err();
        assert!(err.to_string().contains("mooniker"), "{err}");
    }

    #[test]
    fn out_of_range_names_field() {
        let mut c = NodeConfig::default();
        c.rpc.batch_requests_max = 0;
        match c.validate() {
            Err(ConfigError::Invalid { field, .. }) => assert_eq!(field, "rpc.batch_requests_max"),
            other => panic!("expected Invalid, got {other:?}"),
        }
        for field in [
            "p2p.connections_per_peer_max",
            "p2p.connections_per_ip_max",
            "p2p.banned_identities_per_ip_max",
        ] {
            let mut c = NodeConfig::default();
            match field {
                "p2p.connections_per_peer_max" => c.p2p.connections_per_peer_max = 0,
                "p2p.connections_per_ip_max" => c.p2p.connections_per_ip_max = 0,
                _ => c.p2p.banned_identities_per_ip_max = 0,
            }
            match c.validate() {
                Err(ConfigError::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: expected Invalid, got {other:?}"),
            }
        }
        let mut c = NodeConfig::default();
        c.rpc.connections_per_ip_max = c.rpc.connections_max + 1;
        assert!(matches!(
            c.validate(),
            Err(ConfigError::Invalid {
                field: "rpc.connections_per_ip_max",
                ..
            })
        ));
        let mut c = NodeConfig::default();
        c.rpc.cors_allowed_origins = vec!["*".into(), "https://a.example".into()];
        assert!(matches!(
            c.validate(),
            Err(ConfigError::Invalid {
                field: "rpc.cors_allowed_origins",
                ..
            })
        ));
        let mut c = NodeConfig::default();
        c.rpc.header_read_timeout_ms = 0;
        assert!(matches!(
            c.validate(),
            Err(ConfigError::Invalid {
                field: "rpc.header_read_timeout_ms",
                ..
            })
        ));
        for (field, mutate) in [
            (
                "p2p.peers_max",
                (|c| c.p2p.peers_max = 0) as fn(&mut NodeConfig),
            ),
            ("p2p.peers_max", |c| {
                c.p2p.peers_max = c.p2p.connections_max + 1
            }),
            ("p2p.peers_target", |c| {
                c.p2p.peers_target = c.p2p.peers_max + 1
            }),
            ("p2p.discovery_interval_ms", |c| {
                c.p2p.discovery_interval_ms = 99
            }),
            ("sync.range_in_flight_max", |c| {
                c.sync.range_in_flight_max = 0
            }),
            ("sync.range_in_flight_max", |c| {
                c.sync.range_in_flight_max = 33
            }),
            ("sync.range_in_flight_per_peer_max", |c| {
                c.sync.range_in_flight_per_peer_max = 0
            }),
            ("sync.range_timeout_ms", |c| c.sync.range_timeout_ms = 99),
        ] {
            let mut c = NodeConfig::default();
            mutate(&mut c);
            match c.validate() {
                Err(ConfigError::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: expected Invalid, got {other:?}"),
            }
        }
        // Discovery can be switched off; the target may be 0.
        let mut c = NodeConfig::default();
        c.p2p.discovery = false;
        c.p2p.peers_target = 0;
        c.validate().unwrap();
        assert!(!c.p2p.discovery_config().enabled);
        let mut c = NodeConfig::default();
        c.p2p.bootstrap = vec!["/ip4/127.0.0.1/tcp/1".into()];
        assert!(matches!(
            c.validate(),
            Err(ConfigError::Invalid {
                field: "p2p.bootstrap",
                ..
            })
        ));
    }
}
