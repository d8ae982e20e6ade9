//! Node assembly: home directory layout, `init`, and `run` (wires storage, chain, mempool,
//! network, consensus driver and RPC server together).
//!
//! Home directory layout:
//! ```text
//! <home>/config.toml          node configuration (see `config`)
//! <home>/genesis.json         the chain's genesis (same file on every node)
//! <home>/node_key.json        libp2p identity (0600)
//! <home>/validator_key.json   consensus key (0600)
//! <home>/admission_pow.json   proof-of-work identity (non-validators, when required)
//! <home>/data/                RocksDB
//! <home>/snapshots/<height>/  state snapshots served to joining nodes (see `snapshots`)
//! <home>/admin.sock           admin socket (0600, the node's user only; see `admin`), while running
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32};

use cairn_consensus::ValidatorSet;
use cairn_genesis::Genesis;
use cairn_ledger::{Address, BlockLimits, Store};
use tokio::sync::mpsc;
use tracing::info;

use crate::chain::Chain;
use crate::config::{ConfigError, NodeConfig};
use crate::driver::{COMMAND_QUEUE_MAX, Driver, DriverParams, Shared};
use crate::keys::{self, KeyError};
use crate::mempool::{Mempool, MempoolConfig};
use crate::metrics::Metrics;
use crate::network::{self, NetworkConfig};
use crate::rpc_backend::NodeBackend;
use crate::verifier::Verifier;

/// Store meta key prefix of persisted peer bans (`ban/<peer id>` → expiry, u64 LE ms since
/// the Unix epoch).
pub const BAN_KEY_PREFIX: &str = "ban/";

/// Store meta key prefix of persisted IP bans (`banip/<ip address>` → expiry, u64 LE ms
/// since the Unix epoch).
pub const IP_BAN_KEY_PREFIX: &str = "banip/";

/// File descriptors the node keeps for everything but RPC connections: RocksDB's open
/// files (at most 256, `ledger/src/store.rs`), listeners, logs, the runtime's own, with
/// room to spare. Peer connections are added on top (`p2p.connections_max`).
pub const DESCRIPTORS_RESERVED: u64 = 512;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns the soft limit now in
/// force (`None` if it cannot be read). Failing to raise it leaves it as it was.
// `rlim_t` is `u64` on Linux but not on every target this compiles for.
#[allow(clippy::useless_conversion)]
pub fn raise_descriptor_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the rlimit we own; no other memory is touched.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        tracing::warn!(error = %std::io::Error::last_os_error(), "cannot read RLIMIT_NOFILE");
        return None;
    }
    let before = limit.rlim_cur;
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit only reads the rlimit we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit.rlim_cur = limit.rlim_max;
        } else {
            tracing::warn!(
                error = %std::io::Error::last_os_error(),
                soft = before,
                hard = limit.rlim_max,
                "cannot raise the file-descriptor limit"
            );
        }
    }
    let soft = u64::try_from(limit.rlim_cur).unwrap_or(u64::MAX);
    info!(
        before = u64::try_from(before).unwrap_or(u64::MAX),
        now = soft,
        hard = u64::try_from(limit.rlim_max).unwrap_or(u64::MAX),
        "file-descriptor limit (RLIMIT_NOFILE)"
    );
    Some(soft)
}

/// Raises the descriptor limit and lowers `rpc.connections_max` to what it leaves after
/// [`DESCRIPTORS_RESERVED`] and the peer connections, logging any change; refuses to
/// start if nothing is left for RPC.
fn fit_rpc_connections(
    rpc: &mut cairn_rpc::RpcServerConfig,
    p2p_connections_max: u32,
) -> Result<(), NodeError> {
    let Some(soft) = raise_descriptor_limit() else {
        return Ok(());
    };
    let available = soft
        .saturating_sub(DESCRIPTORS_RESERVED)
        .saturating_sub(u64::from(p2p_connections_max));
    match rpc.fit_connections_to(available) {
        Ok(None) => Ok(()),
        Ok(Some(configured)) => {
            tracing::warn!(
                configured,
                now = rpc.connections_max,
                connections_per_ip_max = rpc.connections_per_ip_max,
                descriptor_limit = soft,
                "rpc.connections_max lowered to fit the file-descriptor limit"
            );
            Ok(())
        }
        Err(e) => Err(NodeError::Rpc(format!(
            "{e} (descriptor limit {soft}, {DESCRIPTORS_RESERVED} reserved, p2p.connections_max {p2p_connections_max})"
        ))),
    }
}

/// The directory of this node's state snapshots, under its home.
pub const SNAPSHOTS_DIR: &str = "snapshots";

/// Room above `block_bytes_max` for gossip framing, bytes.
const GOSSIP_OVERHEAD_BYTES: usize = 64 * 1024;

/// Node start-up and run failures.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Configuration problem.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Key file problem.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Genesis problem.
    #[error("genesis: {0}")]
    Genesis(String),
    /// Storage problem (includes a database made under another genesis).
    #[error("storage: {0}")]
    Storage(String),
    /// Networking could not start.
    #[error("network: {0}")]
    Network(String),
    /// RPC server could not start.
    #[error("rpc: {0}")]
    Rpc(String),
    /// File system problem.
    #[error("{path}: {reason}")]
    Io { path: PathBuf, reason: String },
    /// Consensus failed fatally.
    #[error("{0}")]
    Fatal(String),
}

/// Identities created by [`init_home`].
#[derive(Debug, Clone)]
pub struct InitInfo {
    /// libp2p peer id.
    pub peer_id: libp2p::PeerId,
    /// Consensus key as an address.
    pub validator_address: Address,
}

/// Creates a home directory: `config.toml` and both key files (from `seeds` if given, else
/// random). Refuses to overwrite existing key files. The genesis file is written separately.
pub fn init_home(
    home: &Path,
    config: &NodeConfig,
    seeds: Option<([u8; 32], [u8; 32])>,
) -> Result<InitInfo, NodeError> {
    config.validate()?;
    std::fs::create_dir_all(home).map_err(|e| NodeError::Io {
        path: home.into(),
        reason: e.to_string(),
    })?;
    let (node_seed, validator_seed) =
        seeds.unwrap_or_else(|| (keys::random_seed(), keys::random_seed()));
    let peer_id =
        keys::write_node_key(&NodeConfig::resolve(home, &config.node_key_file), node_seed)?;
    let validator_address = keys::write_validator_key(
        &NodeConfig::resolve(home, &config.validator_key_file),
        validator_seed,
    )?;
    let cfg_path = home.join("config.toml");
    std::fs::write(&cfg_path, config.to_toml()).map_err(|e| NodeError::Io {
        path: cfg_path,
        reason: e.to_string(),
    })?;
    Ok(InitInfo {
        peer_id,
        validator_address,
    })
}

/// Runs a node from its home directory until `shutdown` resolves.
pub async fn run(
    home: &Path,
    config: NodeConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), NodeError> {
    config.validate()?;
    let genesis = Genesis::load(&NodeConfig::resolve(home, &config.genesis_file))
        .map_err(|e| NodeError::Genesis(e.to_string()))?;
    let genesis = Arc::new(genesis);
    let genesis_hash = genesis.hash();
    let params = &genesis.params;

    let node_key = keys::read_node_key(&NodeConfig::resolve(home, &config.node_key_file))?;
    let validator_key_path = NodeConfig::resolve(home, &config.validator_key_file);
    let validator_key = if validator_key_path.exists() {
        let password_file = config
            .validator_key_password_file
            .as_ref()
            .map(|p| NodeConfig::resolve(home, p));
        Some(keys::read_validator_key_with(
            &validator_key_path,
            password_file.as_deref(),
        )?)
    } else {
        None
    };

    let validators: ValidatorSet = genesis.validator_set();
    let validator_addresses: Vec<Address> =
        genesis.validators.iter().map(|v| v.consensus_key).collect();
    let db_path = NodeConfig::resolve(home, &config.db_dir);
    let store = Store::open_with(&db_path, genesis_hash, &config.storage.store_options())
        .map_err(|e| NodeError::Storage(e.to_string()))?;
    if let Some(g) = &genesis.generated_accounts {
        tracing::warn!(
            count = g.count,
            "the genesis has generated accounts: their secret keys follow from the genesis file, so anyone can spend them (test and benchmark chains only)"
        );
    }
    init_genesis_store(&genesis, &store)?;
    warm_account_cache(&store)?;
    let store = Arc::new(store);
    // The parameters in force: genesis's, as changed by governance (`set_params`). Block
    // limits and transport bounds stay genesis's here: they are ceilings (the ledger applies
    // the governed limits per block, `BlockLimits::at`); the rest follows the stored state
    // and, while running, each commit (`Driver::apply_governed_params`).
    let runtime_params: cairn_genesis::ChainParams = {
        use cairn_ledger::StateReader as _;
        store
            .governance()
            .map_err(|e| NodeError::Storage(e.to_string()))?
            .map_or_else(|| genesis.params.clone(), |g| g.params.clone())
    };

    // The validator set of the running epoch (governance changes it; epoch 0 is genesis's).
    let head_height = store
        .head()
        .map_err(|e| NodeError::Storage(e.to_string()))?
        .map_or(0, |h| h.height);
    let epoch_record = store
        .epoch_at_height(head_height.saturating_add(1))
        .map_err(|e| NodeError::Storage(e.to_string()))?;
    let current_names: Vec<(Address, String)> = match &epoch_record {
        Some(r) => r
            .validators
            .iter()
            .map(|v| (v.consensus_key, v.name.clone()))
            .collect(),
        None => genesis
            .validators
            .iter()
            .map(|v| (v.consensus_key, v.name.clone()))
            .collect(),
    };
    // The consensus key signs in every epoch whose set holds it (the driver filters), so a
    // node added by governance starts voting at its first epoch without a restart.
    let me = validator_key
        .as_ref()
        .map(|k| Address(k.verifying_key().to_bytes()));
    let validator_name = me.and_then(|a| {
        current_names
            .iter()
            .find(|(k, _)| *k == a)
            .map(|(_, n)| n.clone())
    });
    let signer = validator_key;
    match &validator_name {
        Some(name) => info!(validator = %name, "running as validator"),
        None => info!(
            "consensus key is not in the current validator set: running as a full node until a governance change adds it"
        ),
    }
    let limits = BlockLimits {
        block_txs_max: params.block_txs_max as usize,
        block_bytes_max: params.block_bytes_max as usize,
    };
    let chain = Chain::open(store.clone(), genesis.chain_id.clone(), limits)
        .map_err(|e| NodeError::Storage(e.to_string()))?;
    info!(height = chain.head().height, hash = %chain.head_hash(), genesis = %genesis_hash, "ledger opened");

    let block_bytes_max = params.block_bytes_max as usize;
    // Room for 4 blocks, and for the largest snapshot chunk or manifest (state sync).
    let sync_response_bytes_max = ((block_bytes_max + GOSSIP_OVERHEAD_BYTES) * 4)
        .max(cairn_ledger::snapshot::CHUNK_BYTES_MAX + GOSSIP_OVERHEAD_BYTES)
        .max(cairn_ledger::snapshot::MANIFEST_BYTES_MAX + GOSSIP_OVERHEAD_BYTES);
    let net_config = NetworkConfig {
        keypair: node_key,
        listen: config
            .p2p
            .listen
            .parse()
            .map_err(|e| NodeError::Network(format!("p2p.listen: {e}")))?,
        bootstrap: config
            .p2p
            .bootstrap
            .iter()
            .map(|b| b.parse())
            .collect::<Result<_, _>>()
            .map_err(|e| NodeError::Network(format!("p2p.bootstrap: {e}")))?,
        namespace: genesis_hash.to_hex()[..16].to_string(),
        gossip_bytes_max: block_bytes_max + GOSSIP_OVERHEAD_BYTES,
        sync_request_bytes_max: crate::sync::SYNC_REQUEST_BYTES_MAX,
        sync_response_bytes_max,
        sync_request_timeout_ms: config.p2p.sync_request_timeout_ms,
        event_queue_max: config.p2p.event_queue_max,
        command_queue_max: config.p2p.command_queue_max,
        redial_interval_ms: config.p2p.redial_interval_ms,
        connections_max: config.p2p.connections_max,
        discovery: config.p2p.discovery_config(),
        request_pacing: config.sync.request_pacing(),
        nat: config
            .p2p
            .nat_config()
            .map_err(|e| NodeError::Network(e.to_string()))?,
    };
    let local_peer = net_config.keypair.public().to_peer_id();
    // The running epoch's validators (genesis's in epoch 0) are exempt from admission; the
    // driver replaces them with each new epoch's set (`NetworkHandle::exempt`), so a
    // validator removed by governance loses its exemption.
    let mut exempt_validators = std::collections::HashSet::new();
    let validator_peers: Vec<(String, String)> = match &epoch_record {
        Some(r) => r
            .validators
            .iter()
            .map(|v| (v.name.clone(), v.peer_id.clone()))
            .collect(),
        None => genesis
            .validators
            .iter()
            .map(|v| (v.name.clone(), v.peer_id.clone()))
            .collect(),
    };
    for (name, peer_id) in validator_peers {
        match peer_id.parse::<libp2p::PeerId>() {
            Ok(p) => {
                exempt_validators.insert(p);
            }
            Err(e) => {
                tracing::warn!(validator = %name, error = %e, "validator peer id does not parse; not exempt from admission")
            }
        }
    }
    let difficulty_bits = runtime_params.admission_difficulty_bits;
    let own_nonce = if difficulty_bits == 0 || exempt_validators.contains(&local_peer) {
        None
    } else {
        let path = home.join(crate::admission::POW_FILE);
        let genesis_bytes = genesis_hash.0;
        tokio::task::spawn_blocking(move || {
            crate::admission::load_or_solve(&path, &genesis_bytes, &local_peer, difficulty_bits)
        })
        .await
        .map_err(|e| NodeError::Fatal(format!("admission solver: {e}")))?
        .map_err(|e| NodeError::Fatal(format!("admission proof of work: {e}")))?
    };
    // Bans survive restarts: `ban/<peer id>` → expiry (u64 LE, ms since the Unix epoch).
    let mut initial_bans = Vec::new();
    for (key, value) in store
        .meta_scan(BAN_KEY_PREFIX, network::BANS_MAX)
        .map_err(|e| NodeError::Storage(e.to_string()))?
    {
        let peer = key
            .strip_prefix(BAN_KEY_PREFIX)
            .and_then(|p| p.parse::<libp2p::PeerId>().ok());
        let until = <[u8; 8]>::try_from(value.as_slice())
            .ok()
            .map(u64::from_le_bytes);
        match (peer, until) {
            (Some(peer), Some(until)) => initial_bans.push((peer, until)),
            _ => tracing::warn!(%key, "malformed stored ban; ignoring"),
        }
    }
    if !initial_bans.is_empty() {
        info!(bans = initial_bans.len(), "loaded peer bans");
    }
    let ban_store = store.clone();
    let ban_sink: network::BanSink = Arc::new(move |peer, until: u64| {
        let key = format!("{BAN_KEY_PREFIX}{peer}");
        if let Err(e) = ban_store.meta_put(&key, &until.to_le_bytes()) {
            tracing::warn!(%peer, error = %e, "cannot persist peer ban");
        }
    });
    // IP bans too: `banip/<ip>` → expiry (u64 LE, ms since the Unix epoch).
    let mut initial_ip_bans = Vec::new();
    for (key, value) in store
        .meta_scan(IP_BAN_KEY_PREFIX, network::IP_BANS_MAX)
        .map_err(|e| NodeError::Storage(e.to_string()))?
    {
        let ip = key
            .strip_prefix(IP_BAN_KEY_PREFIX)
            .and_then(|a| a.parse::<std::net::IpAddr>().ok());
        let until = <[u8; 8]>::try_from(value.as_slice())
            .ok()
            .map(u64::from_le_bytes);
        match (ip, until) {
            (Some(ip), Some(until)) => initial_ip_bans.push((ip, until)),
            _ => tracing::warn!(%key, "malformed stored IP ban; ignoring"),
        }
    }
    if !initial_ip_bans.is_empty() {
        info!(ip_bans = initial_ip_bans.len(), "loaded IP bans");
    }
    let ip_ban_store = store.clone();
    let ip_ban_sink: network::IpBanSink = Arc::new(move |ip, until: u64| {
        let key = format!("{IP_BAN_KEY_PREFIX}{ip}");
        if let Err(e) = ip_ban_store.meta_put(&key, &until.to_le_bytes()) {
            tracing::warn!(%ip, error = %e, "cannot persist IP ban");
        }
    });
    let admission = network::AdmissionConfig {
        difficulty_bits,
        genesis_hash: genesis_hash.0,
        exempt: Default::default(),
        validators: exempt_validators,
        own_nonce,
        pow_file: Some(home.join(crate::admission::POW_FILE)),
        solve_on_demand: true,
        deadline_ms: config.p2p.admission_deadline_ms,
        ban_duration_ms: config.p2p.ban_duration_ms,
        initial_bans,
        ban_sink: Some(ban_sink),
        connections_per_peer_max: config.p2p.connections_per_peer_max,
        connections_per_ip_max: config.p2p.connections_per_ip_max,
        banned_identities_per_ip_max: config.p2p.banned_identities_per_ip_max,
        initial_ip_bans,
        ip_ban_sink: Some(ip_ban_sink),
    };
    let (net, mut net_events) = network::spawn_with_admission(net_config, admission)
        .await
        .map_err(|e| NodeError::Network(e.to_string()))?;
    info!(peer_id = %net.local_peer_id(), addrs = ?net.listen_addrs().await, "p2p listening");

    // A node that holds only its genesis may join by state sync (`crate::state_sync`)
    // before the driver starts; the chain, parameters in force and mempool are then read
    // again from the installed state.
    let mut joined: Option<crate::state_sync::StateSyncReport> = None;
    if config.sync.state_sync && chain.head().height == 0 && !config.p2p.bootstrap.is_empty() {
        let params = crate::state_sync::StateSyncParams {
            chain_id: genesis.chain_id.clone(),
            namespace: genesis_hash.0,
            validators: validators.clone(),
            min_gap_blocks: config.sync.state_sync_min_gap_blocks,
            peers_min: config.sync.state_sync_peers_min as usize,
            in_flight_per_peer_max: config.sync.state_sync_in_flight_per_peer_max as usize,
            wait_ms: config.sync.state_sync_wait_ms,
            response_bytes_max: sync_response_bytes_max,
        };
        match crate::state_sync::run(&store, &net, &mut net_events, &params).await {
            Ok(Some(report)) => {
                info!(
                    height = report.height,
                    chunks = report.chunks,
                    bytes_received = report.bytes_received,
                    providers = report.providers,
                    bad_peers = report.bad_peers.len(),
                    ms = report.elapsed_ms,
                    "joined by state sync"
                );
                joined = Some(report);
            }
            Ok(None) => {}
            Err(e) if e.is_fatal() => return Err(NodeError::Storage(e.to_string())),
            Err(e) => {
                tracing::warn!(error = %e, "state sync failed; block sync from genesis");
                // A wiped install leaves an empty store: write the genesis again.
                init_genesis_store(&genesis, &store)?;
            }
        }
        // The connection events drained meanwhile are announced to the driver again.
        net_events =
            crate::state_sync::resume_events(&net, net_events, config.p2p.event_queue_max).await;
    }
    let runtime_params: cairn_genesis::ChainParams = {
        use cairn_ledger::StateReader as _;
        store
            .governance()
            .map_err(|e| NodeError::Storage(e.to_string()))?
            .map_or_else(|| genesis.params.clone(), |g| g.params.clone())
    };
    let mut chain = Chain::open(store.clone(), genesis.chain_id.clone(), limits)
        .map_err(|e| NodeError::Storage(e.to_string()))?;
    let mempool_config = MempoolConfig::from_params(&runtime_params);
    mempool_config
        .validate()
        .map_err(|e| NodeError::Genesis(e.to_string()))?;
    let mempool = Mempool::new(mempool_config);

    #[cfg(all(feature = "byzantine", debug_assertions))]
    let byzantine_key = signer.clone();
    // The genesis epoch's config; the driver builds every epoch's from it, with the set the
    // store recorded and `signer` only where that set holds it.
    let genesis_signer = signer
        .clone()
        .filter(|k| validators.index_of(&k.verifying_key()).is_some());
    let consensus_config = cairn_consensus::Config {
        namespace: genesis_hash.0,
        validators: validators.clone(),
        signer: genesis_signer,
        leader_timeout_ms: runtime_params.leader_timeout_ms,
        notarization_timeout_ms: runtime_params.notarization_timeout_ms,
        nullify_retry_ms: runtime_params.nullify_retry_ms,
        views_ahead_max: 1024,
    };
    consensus_config
        .validate()
        .map_err(|e| NodeError::Genesis(e.to_string()))?;

    let shared = Arc::new(Shared {
        store: store.clone(),
        genesis: genesis.clone(),
        peer_count: AtomicU32::new(0),
        syncing: AtomicBool::new(false),
        metrics: Metrics::new().with_gossip(net.gossip_registry()),
        moniker: config.moniker.clone(),
        validator_key: me,
        verifier: Verifier::spawn_with_store(
            genesis.chain_id.clone(),
            std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(crate::verifier::VERIFY_THREADS_MAX),
            store.clone(),
        ),
        mempool_full: AtomicBool::new(false),
        sender_future_max: std::sync::atomic::AtomicU64::new(
            runtime_params.mempool_sender_future_max,
        ),
        refusals: Default::default(),
        finalized_blocks: Shared::finalized_blocks_channel(),
        committed_height: tokio::sync::watch::Sender::new(chain.head().height),
        snapshots: crate::snapshots::spawn_maker(
            store.clone(),
            home.join(SNAPSHOTS_DIR),
            config.sync.snapshot_interval_blocks,
            config.sync.snapshots_kept as usize,
            config.sync.snapshot_chunk_bytes as usize,
        ),
    });
    shared.metrics.height.set(chain.head().height as i64);
    chain.set_timings(shared.metrics.block_timings.clone());
    shared
        .metrics
        .lowest_retained_height
        .set(i64::try_from(store.lowest_retained_height()).unwrap_or(i64::MAX));
    if let Some(report) = &joined {
        shared
            .metrics
            .state_sync_bytes_received
            .inc_by(report.bytes_received);
        shared.metrics.state_sync_height.set(report.height as i64);
    }

    let (cmd_tx, cmd_rx) = mpsc::channel(COMMAND_QUEUE_MAX);
    let driver_params = DriverParams {
        chain_id: genesis.chain_id.clone(),
        namespace: genesis_hash.0,
        validators: validators.clone(),
        validator_addresses,
        validator_peers: genesis
            .validators
            .iter()
            .map(|v| v.peer_id.parse().ok())
            .collect(),
        me,
        block_txs_max: params.block_txs_max as usize,
        block_bytes_max,
        leader_timeout_ms: runtime_params.leader_timeout_ms,
        block_interval_ms: runtime_params.block_interval_ms,
        params_in_force: runtime_params.clone(),
        sync_interval_ms: config.sync.interval_ms,
        sync_range_limits: crate::sync_schedule::RangeLimits {
            in_flight_max: config.sync.range_in_flight_max as usize,
            in_flight_per_peer_max: config.sync.range_in_flight_per_peer_max as usize,
            timeout_ms: config.sync.range_timeout_ms,
            batch_blocks: u64::from(config.sync.batch_blocks_max),
        },
        sync_reverify_signatures: config.sync.reverify_signatures,
        sync_response_bytes_max,
    };
    // The sync server answers peers' sync requests on its own task, over the store; the
    // driver forwards them and answers its lookups of in-memory blocks.
    let (sync_tx, sync_rx) = mpsc::channel(crate::sync_server::REQUEST_QUEUE_MAX);
    let (lookup_tx, lookup_rx) = mpsc::channel(crate::sync_server::LOOKUP_QUEUE_MAX);
    #[cfg(all(feature = "byzantine", debug_assertions))]
    let corrupt_chunks = config
        .byzantine
        .as_ref()
        .is_some_and(crate::byzantine::Plan::corrupt_chunks);
    #[cfg(not(all(feature = "byzantine", debug_assertions)))]
    let corrupt_chunks = false;
    #[cfg(all(feature = "byzantine", debug_assertions))]
    let corrupt_ranges = config
        .byzantine
        .as_ref()
        .is_some_and(crate::byzantine::Plan::corrupt_ranges);
    #[cfg(not(all(feature = "byzantine", debug_assertions)))]
    let corrupt_ranges = false;
    tokio::spawn(crate::sync_server::run(
        store.clone(),
        net.clone(),
        sync_rx,
        lookup_tx,
        config.sync.server_limits(),
        sync_response_bytes_max,
        crate::sync_server::ServerCounters {
            served: shared.metrics.sync_requests_served.clone(),
            rate_limited: shared.metrics.sync_requests_rate_limited.clone(),
            pruned: shared.metrics.sync_requests_pruned.clone(),
            ranges_served: shared.metrics.sync_ranges_served.clone(),
        },
        Some(Arc::new(crate::snapshots::SnapshotServe::new(
            home.join(SNAPSHOTS_DIR),
            store.clone(),
            corrupt_chunks,
        ))),
        corrupt_ranges,
    ));
    let driver = Driver::new(
        driver_params,
        consensus_config,
        signer,
        chain,
        mempool,
        net.clone(),
        shared.clone(),
        sync_tx,
        lookup_rx,
    )
    .map_err(|e| NodeError::Fatal(e.to_string()))?;
    #[cfg(all(feature = "byzantine", debug_assertions))]
    let driver = {
        let mut driver = driver;
        if let Some(plan) = config
            .byzantine
            .clone()
            .filter(crate::byzantine::Plan::has_consensus_behaviours)
        {
            let me_index = byzantine_key
                .as_ref()
                .and_then(|k| validators.index_of(&k.verifying_key()));
            let (Some(index), Some(key)) = (me_index, byzantine_key) else {
                return Err(NodeError::Config(ConfigError::Invalid {
                    field: "byzantine",
                    reason: "only a validator (its key in the genesis set) can be Byzantine".into(),
                }));
            };
            driver.set_byzantine(crate::byzantine::Byzantine::new(
                plan,
                genesis_hash.0,
                index,
                key,
            ));
        }
        driver
    };

    // RPC server, with /metrics beside it.
    let mut rpc_config = config.rpc.to_server_config();
    fit_rpc_connections(&mut rpc_config, config.p2p.connections_max)?;
    let backend = Arc::new(NodeBackend {
        shared: shared.clone(),
        commands: cmd_tx,
        net: net.clone(),
    });
    let metrics_shared = shared.clone();
    let metrics_net = net.clone();
    let ws_stats = Arc::new(cairn_rpc::WsStats::default());
    let metrics_ws = ws_stats.clone();
    let metrics_route = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let s = metrics_shared.clone();
            let stats = metrics_net.stats();
            let ws = metrics_ws.clone();
            async move {
                s.metrics.catch_up_network(&stats);
                // A property RocksDB fails to read leaves the last figures in place.
                if let Ok(f) = s.store.rocksdb_figures() {
                    s.metrics.catch_up_rocksdb(&f);
                }
                s.metrics.catch_up_ws(&ws);
                s.metrics.response()
            }
        }),
    );
    // Merged before the server's layers, so /metrics gets the Host check, timeout and CORS.
    let router = cairn_rpc::router_with_ws_stats(&rpc_config, backend, metrics_route, ws_stats);
    let listener = tokio::net::TcpListener::bind(rpc_config.listen)
        .await
        .map_err(|e| NodeError::Rpc(format!("cannot listen on {}: {e}", rpc_config.listen)))?;
    let rpc_addr = listener
        .local_addr()
        .map_err(|e| NodeError::Rpc(e.to_string()))?;
    info!(%rpc_addr, "rpc listening");

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    // The admin socket (backups, database statistics); a node without one still runs.
    let admin_path = crate::admin::socket_path(home);
    let admin_task = match crate::admin::bind(&admin_path) {
        Ok(listener) => Some(tokio::spawn(crate::admin::serve(
            listener,
            admin_path.clone(),
            store.clone(),
            stop_rx.clone(),
        ))),
        Err(e) => {
            tracing::warn!(error = %e, "admin socket unavailable: `cairn-node backup` and `db stats` cannot reach this node");
            None
        }
    };
    let mut rpc_stop = stop_rx.clone();
    let rpc_task = tokio::spawn(async move {
        cairn_rpc::serve_listener(listener, &rpc_config, router, async move {
            let _ = rpc_stop.wait_for(|v| *v).await;
        })
        .await
    });
    // Block body pruning (`[storage] retain_blocks`) on its own task; a storage failure
    // there stops the node like one on the driver.
    let (prune_stop_tx, prune_stop_rx) = tokio::sync::watch::channel(false);
    let (prune_failed_tx, prune_failed_rx) = tokio::sync::oneshot::channel::<String>();
    let pruner = if config.storage.retain_blocks > 0 {
        let shared = shared.clone();
        let retain_blocks = config.storage.retain_blocks;
        Some(tokio::spawn(async move {
            let result = crate::pruner::run(shared, retain_blocks, prune_stop_rx).await;
            if let Err(e) = &result {
                let _ = prune_failed_tx.send(e.to_string());
            }
            result
        }))
    } else {
        drop(prune_failed_tx);
        None
    };
    let mut driver_stop = stop_rx.clone();
    let result = driver
        .run(net_events, cmd_rx, async move {
            tokio::select! {
                _ = driver_stop.wait_for(|v| *v) => {}
                Ok(reason) = prune_failed_rx => {
                    tracing::error!(%reason, "pruning block bodies failed; stopping");
                }
            }
        })
        .await;
    let _ = prune_stop_tx.send(true);
    let prune_result = match pruner {
        // Its step (on a blocking thread) finishes first: nothing holds the store after.
        Some(task) => task
            .await
            .map_err(|e| NodeError::Fatal(format!("pruning task: {e}")))
            .and_then(|r| r.map_err(|e| NodeError::Fatal(format!("pruning block bodies: {e}")))),
        None => Ok(()),
    };
    net.shutdown().await;
    let _ = rpc_task.await;
    if let Some(task) = admin_task {
        // Ends its connections too, so nothing holds the store after `run` returns.
        task.abort();
        let _ = task.await;
        let _ = std::fs::remove_file(&admin_path);
    }
    drop(store); // every commit was a synced WriteBatch; nothing to flush
    info!("stopped");
    result.map_err(|e| NodeError::Fatal(e.to_string()))?;
    prune_result
}

/// Loads stored accounts into the store's account cache until half of it is full
/// (`[storage] account_cache_max`), logging about every million accounts and the outcome.
fn warm_account_cache(store: &Store) -> Result<(), NodeError> {
    let started = std::time::Instant::now();
    let mut logged = 0u64;
    let warm = store
        .warm_account_cache(&mut |loaded| {
            if loaded - logged >= 1_000_000 {
                logged = loaded;
                tracing::info!(
                    loaded,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "account cache: warming"
                );
            }
        })
        .map_err(|e| NodeError::Storage(e.to_string()))?;
    tracing::info!(
        accounts = warm.accounts,
        whole_state = warm.whole_state,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "account cache warmed"
    );
    Ok(())
}

/// Writes the genesis to a new store (no-op if it is there), logging the progress of
/// generated accounts (about every tenth of them, and at the end).
fn init_genesis_store(genesis: &cairn_genesis::Genesis, store: &Store) -> Result<(), NodeError> {
    let started = std::time::Instant::now();
    let mut logged = 0u64;
    genesis
        .init_store_with_progress(store, &mut |done, total| {
            if done == total || done - logged >= total.div_ceil(10) {
                logged = done;
                tracing::info!(
                    done,
                    total,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "genesis: generated accounts written"
                );
            }
        })
        .map_err(|e| NodeError::Storage(e.to_string()))
}
