//! `cairn-node`: the Cairn validator daemon.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use cairn_genesis::{ChainParams, Genesis, GenesisAccount, GenesisValidator};
use cairn_node::config::NodeConfig;
use cairn_node::keys;
use cairn_node::node::{self, init_home};
use clap::{Args, Parser, Subcommand};

mod ops;

/// mimalloc instead of glibc's malloc: a loaded node makes many small, short-lived
/// allocations on several threads (transactions, gossip, RPC), and glibc's malloc and free
/// were about 8% of its CPU profile (`docs/throughput.md`). The profiling feature
/// `system-allocator` leaves glibc's malloc in place, so that heap profilers which interpose
/// `malloc` (heaptrack, valgrind's massif) see the node's own allocations too.
/// With the profiling feature `heap-stats`, either allocator is wrapped in
/// `cairn_node::heap::Counting`, which keeps the live heap for `cairn_heap_allocated_bytes`.
#[cfg(not(any(feature = "system-allocator", feature = "heap-stats")))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
#[cfg(all(not(feature = "system-allocator"), feature = "heap-stats"))]
#[global_allocator]
static GLOBAL: cairn_node::heap::Counting<mimalloc::MiMalloc> =
    cairn_node::heap::Counting(mimalloc::MiMalloc);
#[cfg(all(feature = "system-allocator", feature = "heap-stats"))]
#[global_allocator]
static GLOBAL: cairn_node::heap::Counting<std::alloc::System> =
    cairn_node::heap::Counting(std::alloc::System);

/// Cairn validator node.
#[derive(Parser)]
#[command(name = "cairn-node", version, about = "Cairn permissioned ledger node")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a home directory: config.toml, node_key.json and validator_key.json.
    Init {
        /// Home directory.
        #[arg(long, env = "CAIRN_HOME")]
        home: PathBuf,
        /// Node name.
        #[arg(long, default_value = "cairn-node")]
        moniker: String,
        /// Copy this genesis file into the home directory.
        #[arg(long)]
        genesis: Option<PathBuf>,
        /// Print the created identities as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run a node from its home directory.
    Run {
        /// Home directory.
        #[arg(long, env = "CAIRN_HOME")]
        home: PathBuf,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// One command to a local single-validator chain with a funded dev account.
    Dev {
        /// Home directory (created on first use, reused after).
        #[arg(long, env = "CAIRN_HOME", default_value = ".cairn-dev")]
        home: PathBuf,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Write a consistent copy of the home's database to a new directory (a RocksDB
    /// checkpoint; a running node makes it through its admin socket). See
    /// docs/operations.md.
    Backup {
        /// Home directory.
        #[arg(long, env = "CAIRN_HOME")]
        home: PathBuf,
        /// New directory to write the backup to.
        #[arg(long)]
        to: PathBuf,
        /// Print the result as JSON (progress still goes to stderr).
        #[arg(long)]
        json: bool,
    },
    /// Put a backup in place as the home's database (the node must be stopped).
    Restore {
        /// Home directory (its genesis must be the backup's).
        #[arg(long, env = "CAIRN_HOME")]
        home: PathBuf,
        /// Backup directory (written by `cairn-node backup`).
        #[arg(long)]
        from: PathBuf,
        /// Replace a database already in the home.
        #[arg(long)]
        force: bool,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Database tools.
    Db {
        #[command(subcommand)]
        command: DbCmd,
    },
    /// Exit 0 if the node's RPC answers `GET /health` (for container health checks).
    Healthcheck {
        /// RPC URL.
        #[arg(long, env = "CAIRN_RPC", default_value = "http://127.0.0.1:8545")]
        rpc: String,
    },
}

#[derive(Subcommand)]
enum DbCmd {
    /// Finalized head, sizes and key counts per column family (from the running node through
    /// its admin socket, else from the database opened read-only).
    Stats {
        /// Home directory.
        #[arg(long, env = "CAIRN_HOME")]
        home: PathBuf,
        /// Print the statistics as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Flags that override config.toml (each also readable from the environment).
#[derive(Args, Clone, Default)]
struct Overrides {
    /// p2p listen multiaddr.
    #[arg(long = "p2p.listen", env = "CAIRN_P2P_LISTEN")]
    p2p_listen: Option<String>,
    /// Bootstrap peers (repeat, or comma-separated in the env var).
    #[arg(
        long = "p2p.bootstrap",
        env = "CAIRN_P2P_BOOTSTRAP",
        value_delimiter = ','
    )]
    p2p_bootstrap: Option<Vec<String>>,
    /// RPC listen address.
    #[arg(long = "rpc.listen", env = "CAIRN_RPC_LISTEN")]
    rpc_listen: Option<std::net::SocketAddr>,
    /// Passphrase file of an encrypted validator key file (`validator_key_password_file`).
    #[arg(long = "key-password-file", env = "CAIRN_KEY_PASSWORD_FILE")]
    key_password_file: Option<std::path::PathBuf>,
    /// Log filter (tracing env-filter syntax); RUST_LOG wins.
    #[arg(long = "log.filter", env = "CAIRN_LOG")]
    log_filter: Option<String>,
    /// Log format: text or json.
    #[arg(long = "log.format", env = "CAIRN_LOG_FORMAT")]
    log_format: Option<String>,
    /// Re-check transaction signatures of certified blocks during catch-up (`[sync]
    /// reverify_signatures`; true or false).
    #[arg(
        long = "sync.reverify-signatures",
        env = "CAIRN_SYNC_REVERIFY_SIGNATURES"
    )]
    sync_reverify_signatures: Option<bool>,
    /// RocksDB's block cache, MiB (`[storage] block_cache_mib`; 4..=65536).
    #[arg(
        long = "storage.block-cache-mib",
        env = "CAIRN_STORAGE_BLOCK_CACHE_MIB"
    )]
    storage_block_cache_mib: Option<u32>,
    /// Most accounts kept decoded in memory (`[storage] account_cache_max`;
    /// 131072..=268435456); twice the account count keeps the whole state in memory.
    #[arg(
        long = "storage.account-cache-max",
        env = "CAIRN_STORAGE_ACCOUNT_CACHE_MAX"
    )]
    storage_account_cache_max: Option<usize>,
    /// Test builds only (feature `byzantine`, debug build): make this validator Byzantine,
    /// e.g. `equivocate,withhold,invalid` (behaviours take turns by view; see
    /// `cairn_node::byzantine`).
    #[cfg(all(feature = "byzantine", debug_assertions))]
    #[arg(long = "byzantine", env = "CAIRN_BYZANTINE")]
    byzantine: Option<cairn_node::byzantine::Plan>,
}

impl Overrides {
    fn apply(self, c: &mut NodeConfig) {
        if let Some(v) = self.p2p_listen {
            c.p2p.listen = v;
        }
        if let Some(v) = self.p2p_bootstrap {
            c.p2p.bootstrap = v.into_iter().filter(|s| !s.is_empty()).collect();
        }
        if let Some(v) = self.rpc_listen {
            c.rpc.listen = v;
        }
        if let Some(v) = self.key_password_file {
            c.validator_key_password_file = Some(v);
        }
        if let Some(v) = self.log_filter {
            c.log.filter = v;
        }
        if let Some(v) = self.log_format {
            c.log.format = v;
        }
        if let Some(v) = self.sync_reverify_signatures {
            c.sync.reverify_signatures = v;
        }
        if let Some(v) = self.storage_block_cache_mib {
            c.storage.block_cache_mib = v;
        }
        if let Some(v) = self.storage_account_cache_max {
            c.storage.account_cache_max = v;
        }
        #[cfg(all(feature = "byzantine", debug_assertions))]
        if self.byzantine.is_some() {
            c.byzantine = self.byzantine;
        }
    }
}

fn init_tracing(c: &NodeConfig) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&c.log.filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if c.log.format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutdown signal received");
}

fn load_config(home: &Path, overrides: Overrides) -> Result<NodeConfig> {
    let path = home.join("config.toml");
    let mut c = NodeConfig::load(&path)
        .with_context(|| format!("loading {} (run `cairn-node init` first?)", path.display()))?;
    overrides.apply(&mut c);
    c.validate()?;
    Ok(c)
}

/// Creates the dev home on first use: a single validator and a funded dev account.
fn prepare_dev_home(home: &Path) -> Result<PathBuf> {
    let dev_key = home.join("dev_account.json");
    if home.join("config.toml").exists() {
        return Ok(dev_key);
    }
    let mut config = NodeConfig {
        moniker: "dev".into(),
        ..NodeConfig::default()
    };
    config.p2p.listen = "/ip4/127.0.0.1/tcp/0".into();
    let info = init_home(home, &config, None)?;
    let account = keys::write_validator_key(&dev_key, keys::random_seed())?;
    let genesis = Genesis {
        chain_id: "cairn-dev".into(),
        genesis_time_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis() as u64,
        validators: vec![GenesisValidator {
            name: "dev".into(),
            consensus_key: info.validator_address,
            peer_id: info.peer_id.to_string(),
            voting_power: 1,
        }],
        accounts: vec![GenesisAccount {
            address: account,
            balance: 1_000_000_000_000,
        }],
        params: ChainParams::default(),
        governance: Default::default(),
        generated_accounts: None,
    };
    genesis.validate()?;
    let path = home.join("genesis.json");
    std::fs::write(&path, genesis.to_json_pretty())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(dev_key)
}

fn main() -> Result<()> {
    // Before the runtime's threads exist, so that no arena page is faulted in as a 2 MiB page
    // (cairn_node::heap::disable_transparent_huge_pages says why).
    let huge_pages = cairn_node::heap::disable_transparent_huge_pages();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run(Cli::parse(), huge_pages))
}

/// Logs what `disable_transparent_huge_pages` did, once tracing is up.
fn log_huge_pages(h: &std::io::Result<cairn_node::heap::HugePages>) {
    match h {
        Ok(h) => tracing::info!(?h, "transparent huge pages"),
        Err(e) => tracing::warn!(error = %e, "cannot turn transparent huge pages off"),
    }
}

async fn run(cli: Cli, huge_pages: std::io::Result<cairn_node::heap::HugePages>) -> Result<()> {
    match cli.command {
        Cmd::Init {
            home,
            moniker,
            genesis,
            json,
        } => {
            let config = NodeConfig {
                moniker,
                ..NodeConfig::default()
            };
            let info = init_home(&home, &config, None)?;
            if let Some(g) = genesis {
                Genesis::load(&g).with_context(|| format!("checking {}", g.display()))?;
                std::fs::copy(&g, home.join("genesis.json"))
                    .with_context(|| format!("copying {}", g.display()))?;
            }
            if json {
                println!(
                    "{}",
                    serde_json::json!({"home": home, "peer_id": info.peer_id.to_string(), "validator_address": info.validator_address})
                );
            } else {
                println!("initialized {}", home.display());
                println!("  peer id:           {}", info.peer_id);
                println!("  validator address: {}", info.validator_address);
                if !home.join("genesis.json").exists() {
                    println!(
                        "next: put the chain's genesis.json in {} and run `cairn-node run --home {}`",
                        home.display(),
                        home.display()
                    );
                }
            }
        }
        Cmd::Run { home, overrides } => {
            let config = load_config(&home, overrides)?;
            init_tracing(&config);
            log_huge_pages(&huge_pages);
            node::run(&home, config, shutdown_signal()).await?;
        }
        Cmd::Dev { home, overrides } => {
            let dev_key = prepare_dev_home(&home)?;
            let config = load_config(&home, overrides)?;
            init_tracing(&config);
            log_huge_pages(&huge_pages);
            let address = keys::read_validator_key(&dev_key)
                .map(|k| cairn_ledger::Address::from_public_key(&k.verifying_key()))?;
            eprintln!("Cairn dev chain in {}", home.display());
            eprintln!("  RPC:         http://{}", config.rpc.listen);
            eprintln!("  dev account: {address} (key file {})", dev_key.display());
            eprintln!(
                "  try:         cairn --keyfile {} --rpc http://{} balance",
                dev_key.display(),
                config.rpc.listen
            );
            node::run(&home, config, shutdown_signal()).await?;
        }
        Cmd::Backup { home, to, json } => ops::backup(&home, &to, json).await?,
        Cmd::Restore {
            home,
            from,
            force,
            json,
        } => ops::restore(&home, &from, force, json).await?,
        Cmd::Db {
            command: DbCmd::Stats { home, json },
        } => ops::db_stats(&home, json).await?,
        Cmd::Healthcheck { rpc } => {
            let url = format!("{}/health", rpc.trim_end_matches('/'));
            let ok = healthcheck(&url).await;
            if !ok {
                bail!("{url} is not healthy");
            }
        }
    }
    Ok(())
}

/// Minimal HTTP/1.1 GET without a client library (the image has no shell or curl).
async fn healthcheck(url: &str) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let (hostport, path) = rest
        .split_once('/')
        .map(|(h, p)| (h, format!("/{p}")))
        .unwrap_or((rest, "/".into()));
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(hostport).await.ok()?;
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .ok()?;
        let mut buf = Vec::with_capacity(256);
        s.take(4096).read_to_end(&mut buf).await.ok()?;
        Some(buf.starts_with(b"HTTP/1.1 200"))
    };
    matches!(
        tokio::time::timeout(std::time::Duration::from_secs(3), fut).await,
        Ok(Some(true))
    )
}
