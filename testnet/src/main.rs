//! `cairn-testnet`: generate and run local Cairn testnets, in processes or in Docker, with
//! fault injection, a bounded transfer load and an invariant checker.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use cairn_testnet::bench::{self, BenchOptions};
use cairn_testnet::chaos::{self, ChaosOptions, Fault, FaultKind, RandomPlan, parse_duration};
use cairn_testnet::check::{self, CheckOptions};
use cairn_testnet::docker::{self, DockerOptions, ImageOptions, Subnet};
use cairn_testnet::load::{self, ACKED_FILE, LoadConfig};
use cairn_testnet::throughput::{self, ThroughputConfig};
use cairn_testnet::{GenerateOptions, LocalTestnet, Manifest, find_node_binary, generate, govern};
use clap::{Args, Parser, Subcommand};

/// mimalloc, as in `cairn-node`: the load generator shares the machine with the nodes it
/// measures, so its allocation cost is taken from theirs.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "cairn-testnet",
    version,
    about = "Generate and run local Cairn testnets"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Write keys, configs and one shared genesis with funded demo accounts.
    Generate {
        /// Number of validators.
        #[arg(long, default_value_t = 4)]
        validators: usize,
        /// Output directory.
        #[arg(long, default_value = "testnet")]
        out: PathBuf,
        /// Chain id.
        #[arg(long, default_value = "cairn-local")]
        chain_id: String,
        /// Funded demo accounts.
        #[arg(long, default_value_t = 10)]
        accounts: usize,
        /// Balance of each demo account, base units.
        #[arg(long, default_value_t = 1_000_000_000_000)]
        balance: u64,
        /// First p2p port (validator i uses port + i).
        #[arg(long, default_value_t = 26656)]
        p2p_port: u16,
        /// First RPC port (validator i uses port + i).
        #[arg(long, default_value_t = 8545)]
        rpc_port: u16,
        /// Non-voting full nodes besides the validators.
        #[arg(long, default_value_t = 0)]
        full_nodes: usize,
        /// Accounts the genesis generates from a random seed (test chains only: their keys
        /// follow from the genesis file), each funded with 10^9 base units; 0: none.
        #[arg(long, default_value_t = 0)]
        generated_accounts: u64,
        /// Also write docker-compose.yml (one service per node, private networks, RPC published
        /// on 127.0.0.1:<rpc-port + i>).
        #[arg(long)]
        docker: bool,
        /// Compose project name (default: cairn-<directory name>).
        #[arg(long, requires = "docker")]
        project: Option<String>,
        /// Image the services run (`--docker`, `--swarm`, `--k8s`).
        #[arg(long, default_value = docker::DEFAULT_IMAGE)]
        image: String,
        /// Also write a Docker Swarm stack (`swarm-stack.yml`: overlay network, one service per
        /// node, keys as secrets, peers by service name; docs/deploy.md).
        #[arg(long)]
        swarm: bool,
        /// Also write Kubernetes manifests (`k8s/cairn.yaml`: a StatefulSet per node, keys
        /// from Secrets, a headless Service for p2p; docs/deploy.md).
        #[arg(long)]
        k8s: bool,
        /// Subnet of the main network, e.g. 172.28.0.0/24 (the side network takes the next one);
        /// default: the first free 172.28.X.0/24 pair.
        #[arg(long, requires = "docker")]
        subnet: Option<Subnet>,
        /// Print the manifest as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Build the offline image: host-built binaries + exactly their shared libraries, FROM scratch.
    Image {
        /// Cargo profile: release (smaller, faster; builds RocksDB in release the first time) or dev.
        #[arg(long, default_value = "release")]
        profile: String,
        /// Image tag.
        #[arg(long, default_value = docker::DEFAULT_IMAGE)]
        tag: String,
        /// Use the binaries already built instead of running `cargo build`.
        #[arg(long)]
        no_build: bool,
        /// Directory holding cairn-node and cairn (default: the cargo target directory of the profile).
        #[arg(long)]
        bin_dir: Option<PathBuf>,
        /// Strip debug info from the copies in the image.
        #[arg(long)]
        strip: bool,
    },
    /// Build a long, valid, certified chain offline into the validators' data directories
    /// of a generated testnet (stopped): blocks of signed transfers from the demo accounts to
    /// fresh accounts, executed by the ledger, each with a quorum-signed finalization
    /// certificate; validator 0's store is copied to the others (docs/network.md).
    Fabricate {
        /// Testnet directory (`generate --out`).
        dir: PathBuf,
        /// Height to build up to (a store already past genesis is continued).
        #[arg(long, default_value_t = 100_000)]
        blocks: u64,
        /// Transfers in each block (each funds a fresh account).
        #[arg(long, default_value_t = 10)]
        transfers_per_block: u32,
        /// Full nodes (by index in testnet.json's nodes) that get a copy of the chain too.
        #[arg(long, value_delimiter = ',')]
        copy_to: Vec<usize>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// A fresh node joins a fabricated chain three ways, one after another: by state sync
    /// from 3 peers (a full node among them serving corrupt chunks: needs a `cairn-node` with
    /// debug assertions and the `byzantine` feature), by state sync from 1 peer, and by full
    /// replay; reports time and bytes.
    StateSyncBench {
        /// Output directory for the testnet (must not hold one).
        #[arg(long)]
        out: PathBuf,
        /// Blocks to fabricate.
        #[arg(long, default_value_t = 100_000)]
        blocks: u64,
        /// Transfers per fabricated block.
        #[arg(long, default_value_t = 10)]
        transfers_per_block: u32,
        /// Snapshot interval of the validators, blocks.
        #[arg(long, default_value_t = 20)]
        snapshot_interval_blocks: u64,
        /// Snapshot chunk target, bytes (small enough that every provider serves chunks).
        #[arg(long, default_value_t = 128 * 1024)]
        snapshot_chunk_bytes: u32,
        /// How long to wait for each node to reach the tip.
        #[arg(long, default_value = "3600s", value_parser = parse_duration)]
        wait: Duration,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Start a Docker testnet (`compose up -d`) and wait until every node answers.
    Up {
        /// Testnet directory.
        dir: PathBuf,
        /// How long to wait for the nodes (0: do not wait).
        #[arg(long, default_value = "120s", value_parser = parse_duration)]
        wait: Duration,
    },
    /// Stop a Docker testnet and remove its containers and networks (`compose down`).
    Down {
        /// Testnet directory.
        dir: PathBuf,
        /// Also remove the data volumes.
        #[arg(long, short = 'v')]
        volumes: bool,
    },
    /// Per node: container state and health, height, finalized hash, peers.
    Status {
        /// Testnet directory.
        dir: PathBuf,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Container logs (`compose logs`).
    Logs {
        /// Testnet directory.
        dir: PathBuf,
        /// Follow.
        #[arg(long, short = 'f')]
        follow: bool,
        /// Lines per container from the end.
        #[arg(long, default_value = "200")]
        tail: String,
        /// Services (node names); default all.
        services: Vec<String>,
    },
    /// Open-loop throughput load: funds fresh senders, offers signed transfers at a target rate
    /// over every node's RPC (sendTransactions), reports finalized TPS and latency.
    Load {
        /// Testnet directory (local or Docker).
        dir: PathBuf,
        /// Target rate, transfers per second.
        #[arg(long, default_value_t = 1000.0)]
        rate: f64,
        /// How long to offer load.
        #[arg(long, default_value = "60s", value_parser = parse_duration)]
        duration: Duration,
        /// Sender accounts (default: rate / 4, at least 64).
        #[arg(long)]
        senders: Option<usize>,
        /// Transfers per sendTransactions call.
        #[arg(long, default_value_t = 500)]
        batch: usize,
        /// Outstanding RPC requests at most.
        #[arg(long, default_value_t = 32)]
        in_flight: usize,
        /// After offering, how long to wait for accepted transfers to be final.
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        drain: Duration,
        /// Seed of the sender keys (default: from the clock, so runs use fresh senders).
        #[arg(long)]
        seed: Option<u64>,
        /// Draw senders and recipients from the genesis's generated accounts (uniform, zipf
        /// or zipf:S) instead of funding fresh senders.
        #[arg(long)]
        distribution: Option<cairn_testnet::sample::Distribution>,
        /// Also report the run in windows of this length (at least 10s): each window's
        /// offered and finalized rate and latency, to see drift over a long run.
        #[arg(long, value_parser = parse_duration)]
        window: Option<Duration>,
        /// One JSON object on stdout (field `finalized_tps`: finalized transfers per second).
        #[arg(long)]
        json: bool,
    },
    /// Benchmark: a fresh local testnet, a saturation search, a sustained run at saturation and
    /// a latency run at half of it; writes a results file.
    Bench {
        /// Validators.
        #[arg(long, default_value_t = 4)]
        validators: usize,
        /// Rates of the saturation search, transfers per second, comma-separated, ascending.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "1000,2000,4000,6000,8000,12000,16000,24000,32000"
        )]
        rates: Vec<f64>,
        /// Length of each search step.
        #[arg(long, default_value = "15s", value_parser = parse_duration)]
        step: Duration,
        /// Length of the sustained run at the saturation rate.
        #[arg(long, default_value = "60s", value_parser = parse_duration)]
        sustain: Duration,
        /// Length of the latency run at half the saturation rate.
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        half: Duration,
        /// Results file (JSON).
        #[arg(long, default_value = "bench-results.json")]
        out: PathBuf,
        /// Testnet directory (default: a fresh one under the system temp dir, removed after).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// cairn-node binary (a release build: `cargo build --release -p cairn-node`).
        #[arg(long, env = "CAIRN_NODE_BIN")]
        node_bin: Option<PathBuf>,
        /// Length of the overload run at twice the saturation rate (0s: skip).
        #[arg(long, default_value = "60s", value_parser = parse_duration)]
        overload: Duration,
        /// Transfers finalized while the last validator is down, then timed catch-up (0: skip).
        #[arg(long, default_value_t = 100_000)]
        catch_up: u64,
        /// A search step whose median submit-to-finalized latency exceeds this many ms
        /// counts as saturated (a queue is building); a large value turns the rule off.
        #[arg(long, default_value_t = cairn_testnet::bench::SATURATED_P50_MS)]
        saturated_p50_ms: u64,
        /// How long to measure this machine's signature bound first (batch signature checks
        /// per second on all cores / validators; every TPS is also reported as a fraction of
        /// it); 0s: skip.
        #[arg(long, default_value = "5s", value_parser = parse_duration)]
        bound: Duration,
        /// Accounts the genesis generates from a seed (0: none, the load funds fresh
        /// senders); every load run then draws senders and recipients from all of them.
        #[arg(long, default_value_t = 0)]
        accounts: u64,
        /// How senders and recipients are drawn from the generated accounts: uniform,
        /// zipf (exponent 1.0) or zipf:S.
        #[arg(long, default_value = "uniform")]
        distribution: cairn_testnet::sample::Distribution,
        /// Soak: after the half-load run, offer --soak-fraction of the saturation rate for
        /// this long (at most 1h), reported in --soak-window windows, sampling each node's
        /// memory and RocksDB stalls every 30 s (0s: skip).
        #[arg(long, default_value = "0s", value_parser = parse_duration)]
        soak: Duration,
        /// Share of the saturation rate the soak offers, in (0, 1].
        #[arg(long, default_value_t = 0.7)]
        soak_fraction: f64,
        /// Window of the soak's report (at least 10s).
        #[arg(long, default_value = "10m", value_parser = parse_duration)]
        soak_window: Duration,
        /// JSON results on stdout too.
        #[arg(long)]
        json: bool,
    },
    /// Submit a bounded load of wallet-signed transfers, one sendTransaction each, with retries
    /// and re-submission; records acknowledged ones in DIR/acked.jsonl for `check`.
    Transfers {
        /// Testnet directory (local or Docker).
        dir: PathBuf,
        #[command(flatten)]
        load: LoadArgs,
        /// Bound on the submission phase.
        #[arg(long, default_value = "10m", value_parser = parse_duration)]
        duration: Duration,
        /// JSON report on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Inject faults on a schedule or at random while a bounded load runs; then restore and check.
    Chaos {
        /// Docker testnet directory.
        dir: PathBuf,
        /// A fault KIND:TARGETS@AT+DURATION (kinds: kill, pause, disconnect, partition, wipe),
        /// e.g. kill:validator-1@5s+8s or partition:validator-2,validator-3@30s+10s. Repeatable.
        #[arg(long = "fault")]
        faults: Vec<Fault>,
        /// Draw faults at random from --seed over --duration instead.
        #[arg(long, conflicts_with = "faults")]
        random: bool,
        /// Seed of the random schedule and of the load.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Length of the run (default: the schedule's end + 20s; required with --random).
        #[arg(long, value_parser = parse_duration)]
        duration: Option<Duration>,
        /// Fault kinds for --random (comma-separated).
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "kill,pause,disconnect,partition,wipe"
        )]
        kinds: Vec<FaultKind>,
        /// Shortest and longest random fault.
        #[arg(long, default_value = "5s", value_parser = parse_duration)]
        fault_min: Duration,
        /// Longest random fault.
        #[arg(long, default_value = "20s", value_parser = parse_duration)]
        fault_max: Duration,
        /// Shortest quiet time between random faults.
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        gap_min: Duration,
        /// Longest quiet time between random faults.
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        gap_max: Duration,
        #[command(flatten)]
        load: LoadArgs,
        /// No load.
        #[arg(long)]
        no_load: bool,
        /// No invariant check afterwards.
        #[arg(long)]
        no_check: bool,
        /// How long the check waits for recovery.
        #[arg(long, default_value = "180s", value_parser = parse_duration)]
        check_wait: Duration,
        /// Only bring every container back (started, unpaused, on both networks) and exit.
        #[arg(long)]
        restore: bool,
        /// JSON report on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Check invariants over JSON-RPC; exits 1 naming node and height on any violation.
    Check {
        /// Testnet directory (local or Docker).
        dir: PathBuf,
        /// How long to wait for the nodes to converge first.
        #[arg(long, default_value = "120s", value_parser = parse_duration)]
        wait: Duration,
        /// JSON report on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Write DIR/dashboard.html, a page showing every node's live dashboard side by side,
    /// and print its URL (then each node's own dashboard URL); also write
    /// DIR/prometheus-targets.json for testnet/monitoring.
    Dashboard {
        /// Testnet directory (local or Docker).
        dir: PathBuf,
    },
    /// Render a `bench` results file's load curve (finalized TPS and p50/p99 latency against
    /// offered load) as a PNG chart; `bench` writes one beside its results itself.
    Chart {
        /// Results file(s) written by `bench` (JSON); several only with --by-accounts or
        /// --by-validators.
        #[arg(required = true)]
        results: Vec<PathBuf>,
        /// PNG to write [default: the (first) results file with a .png extension].
        #[arg(long)]
        out: Option<PathBuf>,
        /// Draw the state-size curve of several results files (TPS and per-block time
        /// against their account counts) instead of one file's load curve.
        #[arg(long, conflicts_with = "by_validators")]
        by_accounts: bool,
        /// Draw the validator-count curve of several results files (sustained TPS, TPS ×
        /// validators, half-load latency and gossip bytes per block against their
        /// validator counts).
        #[arg(long)]
        by_validators: bool,
    },
    /// Run a generated testnet's validators as local processes until Ctrl-C.
    Start {
        /// Testnet directory.
        dir: PathBuf,
        /// cairn-node binary (default: beside this binary, then PATH).
        #[arg(long, env = "CAIRN_NODE_BIN")]
        node_bin: Option<PathBuf>,
    },
    /// Add a validator to a running testnet: generate its node (keys, config, next free
    /// ports), start it, and propose and approve `add_validator` with the testnet's member
    /// accounts. Local testnet: runs the new node until Ctrl-C (`start` runs it with the
    /// others afterwards). Docker testnet: adds its service to the compose file, starts only
    /// that container, and returns once the set holds it.
    AddValidator {
        /// Testnet directory (its other nodes running: `cairn-testnet start` or `up`).
        dir: PathBuf,
        /// The new validator's name (default: `validator-<index>`).
        #[arg(long)]
        name: Option<String>,
        /// Voting power.
        #[arg(long, default_value_t = 1)]
        power: u64,
        /// Node whose RPC takes the governance transactions (name or index).
        #[arg(long, default_value = "0")]
        via: String,
        /// cairn-node binary (default: beside this binary, then PATH; local testnets only).
        #[arg(long, env = "CAIRN_NODE_BIN")]
        node_bin: Option<PathBuf>,
        /// Generate and govern, but do not start the node (start it yourself; on a Docker
        /// testnet `cairn-testnet up DIR` starts its container).
        #[arg(long)]
        no_start: bool,
        /// JSON report on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Remove a validator from a running testnet by governance (`remove_validator` proposed
    /// and approved with the member accounts). Local testnet: its node keeps running as a
    /// full node until you stop it. Docker testnet: once the set lacks it, its container is
    /// stopped and removed and it leaves the manifest and compose file (home and data volume
    /// kept).
    RemoveValidator {
        /// Testnet directory.
        dir: PathBuf,
        /// The validator's name (or node index).
        name: String,
        /// Node whose RPC takes the governance transactions (name or index).
        #[arg(long, default_value = "0")]
        via: String,
        /// JSON report on stdout.
        #[arg(long)]
        json: bool,
    },
}

/// Load settings shared by `load` and `chaos`.
#[derive(Args, Clone, Debug)]
struct LoadArgs {
    /// Transfers to submit (default: rate × duration, at most 1,000,000).
    #[arg(long)]
    transfers: Option<usize>,
    /// Transfers per second.
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// Most unfinalized transfers per sender.
    #[arg(long, default_value_t = 32)]
    window: u64,
    /// Re-send an acknowledged transfer not final after this long (0: never).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    resubmit_after: Duration,
    /// How long to wait for the acknowledged transfers to be final at the end.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    drain: Duration,
}

impl LoadArgs {
    fn config(&self, dir: &std::path::Path, duration: Duration, seed: u64) -> LoadConfig {
        let transfers = self
            .transfers
            .unwrap_or_else(|| ((self.rate * duration.as_secs_f64()) as usize).clamp(1, 1_000_000));
        LoadConfig {
            transfers,
            rate: self.rate,
            duration_max: duration,
            drain_timeout: self.drain,
            resubmit_after: self.resubmit_after,
            window: self.window,
            seed,
            record: Some(dir.join(ACKED_FILE)),
            ..LoadConfig::default()
        }
    }
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM (`kill`, `docker stop`, CI timeouts), so the
/// validators and containers this process started are always stopped or restored.
async fn interrupted() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

fn stop_on_ctrl_c() -> tokio::sync::watch::Receiver<bool> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        interrupted().await;
        eprintln!("interrupted: stopping, restoring containers…");
        let _ = tx.send(true);
        // Keep the sender alive so receivers never see a closed channel as a stop.
        std::future::pending::<()>().await;
    });
    rx
}

fn print_usage_hint(m: &Manifest) {
    println!("chain id:     {}", m.chain_id);
    println!("genesis hash: {}", m.genesis_hash);
    for n in &m.nodes {
        println!(
            "  {:<12} rpc {}  log {}",
            n.name,
            n.rpc_url,
            n.home.join("node.log").display()
        );
    }
    if let (Some(a), Some(b)) = (m.accounts.first(), m.accounts.get(1)) {
        println!();
        println!(
            "funded demo accounts: {} key files in {}",
            m.accounts.len(),
            a.key_file
                .parent()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        );
        println!("send a transfer:");
        println!(
            "  cairn --rpc {} --keyfile {} transfer --to {} --amount 1000 --wait",
            m.nodes[0].rpc_url,
            a.key_file.display(),
            b.address
        );
        println!("  cairn --rpc {} balance {}", m.nodes[0].rpc_url, b.address);
    }
}

/// The RPC client of node `via` (name or index) of `m`.
fn via_rpc(m: &Manifest, via: &str) -> Result<cairn_rpc::RpcClient> {
    let i = m
        .node_index(via)
        .with_context(|| format!("--via {via}: no such node"))?;
    Ok(cairn_rpc::RpcClient::new(&m.nodes[i].rpc_url)?)
}

/// Prints the outcome of `add-validator` / `remove-validator` (on a Docker testnet, with what
/// happened to the container).
fn report_set(
    json: bool,
    what: &str,
    name: &str,
    proposal: u64,
    set: &[cairn_rpc::ValidatorInfo],
    docker: Option<&govern::DockerChange>,
) {
    if json {
        let mut out = serde_json::json!({
            what: name,
            "proposal": proposal,
            "validators": set,
        });
        if let Some(d) = docker {
            out["docker"] = serde_json::to_value(d).expect("serializable");
        }
        println!("{out}");
    } else {
        let names: Vec<&str> = set.iter().map(|v| v.name.as_str()).collect();
        println!(
            "{what} {name} (proposal {proposal}); validators now: {}",
            names.join(", ")
        );
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Generate {
            validators,
            out,
            chain_id,
            accounts,
            balance,
            p2p_port,
            rpc_port,
            full_nodes,
            generated_accounts,
            docker,
            project,
            image,
            subnet,
            swarm,
            k8s,
            json,
        } => {
            let cluster = cairn_testnet::cluster::ClusterOptions {
                image: image.clone(),
                rpc_port,
            };
            let docker = docker.then_some(DockerOptions {
                project,
                image: Some(image),
                subnet,
            });
            let opts = GenerateOptions {
                validators,
                out,
                chain_id,
                accounts,
                balance,
                p2p_port,
                rpc_port,
                full_nodes,
                generated_accounts,
                docker,
                // Progress goes to stderr; `--json` output on stdout stays clean.
                progress: true,
                ..GenerateOptions::default()
            };
            let m = generate(&opts)?;
            let out_dir = std::path::absolute(&opts.out)?;
            if swarm {
                let p = cairn_testnet::cluster::write_swarm(&out_dir, &m, &cluster)?;
                eprintln!("swarm stack: {}", p.display());
            }
            if k8s {
                let p = cairn_testnet::cluster::write_k8s(&out_dir, &m, &cluster)?;
                eprintln!("kubernetes manifests: {}", p.display());
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&m)?);
            } else {
                println!(
                    "generated {} validators and {} full nodes in {}",
                    validators,
                    full_nodes,
                    opts.out.display()
                );
                print_usage_hint(&m);
                if let Some(d) = &m.docker {
                    println!();
                    println!(
                        "docker: project {}, image {}, networks {} and {}",
                        d.project, d.image, d.main_subnet, d.side_subnet
                    );
                    println!(
                        "  cairn-testnet image --tag {}      # once: build the image (no registry needed)",
                        d.image
                    );
                    println!("  cairn-testnet up {}", opts.out.display());
                    println!("  cairn-testnet status {}", opts.out.display());
                }
            }
        }
        Cmd::Image {
            profile,
            tag,
            no_build,
            bin_dir,
            strip,
        } => {
            let info = tokio::task::spawn_blocking(move || {
                docker::build_image(&ImageOptions {
                    profile,
                    tag,
                    build: !no_build,
                    bin_dir,
                    strip,
                })
            })
            .await??;
            println!(
                "built image {} ({:.1} MB)",
                info.tag,
                info.size_bytes as f64 / 1e6
            );
            for b in &info.binaries {
                println!("  binary  {}", b.display());
            }
            for l in &info.libraries {
                println!("  library {}", l.display());
            }
        }
        Cmd::Up { dir, wait } => {
            docker::up(&dir, wait).await?;
            print!("{}", docker::format_status(&docker::status(&dir).await?));
        }
        Cmd::Down { dir, volumes } => {
            docker::down(&dir, volumes).await?;
            println!(
                "stopped{}",
                if volumes {
                    " and removed the data volumes"
                } else {
                    " (data volumes kept; --volumes removes them)"
                }
            );
        }
        Cmd::Status { dir, json } => {
            let rows = docker::status(&dir).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print!("{}", docker::format_status(&rows));
            }
        }
        Cmd::Logs {
            dir,
            follow,
            tail,
            services,
        } => {
            let m = Manifest::load(&dir)?;
            let compose = docker::Compose::detect(&dir, docker::docker_manifest(&m)?).await?;
            let mut args = vec!["logs", "--tail", tail.as_str()];
            if follow {
                args.push("--follow");
            }
            if !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                args.push("--no-color");
            }
            args.extend(services.iter().map(String::as_str));
            let st = compose
                .command(&args)
                .status()
                .context("running compose logs")?;
            if !st.success() {
                bail!("compose logs failed ({st})");
            }
        }
        Cmd::Load {
            dir,
            rate,
            duration,
            senders,
            batch,
            in_flight,
            drain,
            seed,
            distribution,
            window,
            json,
        } => {
            let m = Manifest::load(&dir)?;
            let seed = seed.unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64)
            });
            let cfg = ThroughputConfig {
                rate,
                duration,
                senders,
                batch_txs_max: batch,
                in_flight_max: in_flight,
                drain,
                seed,
                distribution,
                window,
                ..ThroughputConfig::default()
            };
            let report = throughput::run(&m, &cfg, stop_on_ctrl_c()).await?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                print!("{}", report.summary());
            }
        }
        Cmd::Bench {
            validators,
            rates,
            step,
            sustain,
            half,
            out,
            dir,
            node_bin,
            catch_up,
            overload,
            bound,
            saturated_p50_ms,
            accounts,
            distribution,
            soak,
            soak_fraction,
            soak_window,
            json,
        } => {
            let opts = BenchOptions {
                soak_duration: soak,
                soak_fraction,
                soak_window,
                generated_accounts: accounts,
                distribution,
                bound_duration: bound,
                saturated_p50_ms,
                overload_duration: overload,
                catch_up_txs: catch_up,
                validators,
                rates,
                step_duration: step,
                sustain_duration: sustain,
                half_duration: half,
                node_bin: node_bin.unwrap_or_else(find_node_binary),
                keep: dir.is_some(),
                dir: dir.unwrap_or_else(|| {
                    std::env::temp_dir().join(format!("cairn-bench-{}", std::process::id()))
                }),
                params: cairn_genesis::ChainParams::default(),
            };
            let results = bench::run(&opts, stop_on_ctrl_c()).await?;
            let text = serde_json::to_string_pretty(&results)?;
            std::fs::write(&out, &text).with_context(|| format!("writing {}", out.display()))?;
            // The load curve beside the results; a chart that cannot be drawn (no font) is
            // a warning, never a lost benchmark.
            let png = cairn_testnet::charts::png_beside(&out);
            let chart = serde_json::to_value(&results)
                .map_err(anyhow::Error::from)
                .and_then(|v| {
                    let mut c = cairn_testnet::charts::load_curve(&v)?;
                    c.extend(cairn_testnet::charts::soak_curve(&v)?);
                    Ok(c)
                })
                .and_then(|c| Ok(cairn_testnet::charts::write_png(&png, &c)?));
            if let Err(e) = &chart {
                eprintln!("warning: no chart: {e:#}");
            }
            if json {
                println!("{text}");
            } else {
                print!("{}", results.summary());
                println!("results written to {}", out.display());
                if chart.is_ok() {
                    println!("load curve drawn in {}", png.display());
                }
            }
        }
        Cmd::Transfers {
            dir,
            load: la,
            duration,
            json,
        } => {
            let m = Manifest::load(&dir)?;
            let cfg = la.config(&dir, duration, 1);
            let report = load::run(&m, &cfg, stop_on_ctrl_c()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!("{}", report.summary());
            }
            if report.acked_unfinalized_count > 0 {
                std::process::exit(1);
            }
        }
        Cmd::Chaos {
            dir,
            faults,
            random,
            seed,
            duration,
            kinds,
            fault_min,
            fault_max,
            gap_min,
            gap_max,
            load: la,
            no_load,
            no_check,
            check_wait,
            restore,
            json,
        } => {
            let m = Manifest::load(&dir)?;
            if restore {
                for line in chaos::restore_all(&dir, &m).await? {
                    println!("{line}");
                }
                println!("every container is running and attached to both networks");
                return Ok(());
            }
            let (faults, duration) = if random {
                let Some(d) = duration else {
                    bail!("--random needs --duration (e.g. 30m)")
                };
                let plan = RandomPlan {
                    seed,
                    kinds,
                    fault_min,
                    fault_max,
                    gap_min,
                    gap_max,
                };
                (chaos::random_schedule(&m, &plan, d)?, d)
            } else {
                let end = faults
                    .iter()
                    .map(|f| f.at + f.duration)
                    .max()
                    .unwrap_or_default();
                (faults, duration.unwrap_or(end + Duration::from_secs(20)))
            };
            let opts = ChaosOptions {
                faults,
                duration,
                load: (!no_load).then(|| la.config(&dir, duration, seed)),
                check: (!no_check).then(|| CheckOptions {
                    wait: check_wait,
                    ..CheckOptions::default()
                }),
                ready_wait: Duration::from_secs(120),
            };
            let report = chaos::run(&dir, &m, &opts, stop_on_ctrl_c()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.summary());
                println!("report: {}", dir.join(chaos::REPORT_FILE).display());
            }
            if !report.ok {
                std::process::exit(1);
            }
        }
        Cmd::Check { dir, wait, json } => {
            let m = Manifest::load(&dir)?;
            let report = check::check(
                &dir,
                &m,
                &CheckOptions {
                    wait,
                    ..CheckOptions::default()
                },
            )
            .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.summary());
            }
            if !report.ok {
                std::process::exit(1);
            }
        }
        Cmd::AddValidator {
            dir,
            name,
            power,
            via,
            node_bin,
            no_start,
            json,
        } => {
            let m = Manifest::load(&dir)?;
            if m.docker.is_some() {
                if node_bin.is_some() {
                    eprintln!(
                        "--node-bin is ignored: a Docker testnet runs the image's cairn-node"
                    );
                }
                let out = govern::docker_add_validator(
                    &dir,
                    name.as_deref(),
                    power,
                    &via,
                    !no_start,
                    &govern::DockerMembership::default(),
                )
                .await?;
                report_set(
                    json,
                    "added",
                    &out.node.name,
                    out.proposal,
                    &out.validators,
                    Some(&out.docker),
                );
                if !json {
                    println!(
                        "container {} {} (RPC {}); `cairn-testnet status {}` shows it",
                        out.docker.container,
                        out.docker.container_state,
                        out.docker.rpc_url,
                        dir.display()
                    );
                }
                return Ok(());
            }
            let rpc = via_rpc(&m, &via)?;
            let name = name.unwrap_or_else(|| govern::default_name(&m));
            let (m, index) = govern::add_node(&dir, &name)?;
            let node = m.nodes[index].clone();
            eprintln!("generated {} in {}", node.name, node.home.display());
            let mut local = LocalTestnet::new(m.clone(), node_bin.unwrap_or_else(find_node_binary));
            if !no_start {
                local.start_node(index)?;
                eprintln!(
                    "started {} (log: {}); waiting for it to catch up",
                    node.name,
                    node.home.join("node.log").display()
                );
                // Governance counts on the new validator's votes from the next epoch: it
                // must be running and synced first.
                let own = cairn_rpc::RpcClient::new(&node.rpc_url)?;
                govern::wait_caught_up(&own, &rpc, 2, Duration::from_secs(120))
                    .await
                    .with_context(|| {
                        format!("{} did not start or catch up (see its node.log)", node.name)
                    })?;
            }
            let action = cairn_ledger::governance::GovAction::AddValidator(govern::validator_info(
                &node, power,
            ));
            let id = govern::propose_and_approve(&m, &rpc, action).await?;
            eprintln!("proposal {id} executed; waiting for the next epoch");
            let key = node.validator_address;
            let set = govern::wait_for_set(&rpc, Duration::from_secs(120), |s| {
                s.iter().any(|v| v.address == key)
            })
            .await?;
            report_set(json, "added", &node.name, id, &set, None);
            if !no_start {
                eprintln!("running {} until Ctrl-C", node.name);
                interrupted().await;
                local.stop_all();
            }
        }
        Cmd::RemoveValidator {
            dir,
            name,
            via,
            json,
        } => {
            let m = Manifest::load(&dir)?;
            if m.docker.is_some() {
                let out = govern::docker_remove_validator(
                    &dir,
                    &name,
                    &via,
                    &govern::DockerMembership::default(),
                )
                .await?;
                report_set(
                    json,
                    "removed",
                    &out.node.name,
                    out.proposal,
                    &out.validators,
                    Some(&out.docker),
                );
                if !json {
                    println!(
                        "stopped and removed container {}; kept its home {} and data volume {}",
                        out.docker.container,
                        out.docker.home.display(),
                        out.docker.volume
                    );
                }
                return Ok(());
            }
            let rpc = via_rpc(&m, &via)?;
            let index = m
                .node_index(&name)
                .with_context(|| format!("no node {name} in {}", dir.display()))?;
            let node = &m.nodes[index];
            let key = node.validator_address;
            let action =
                cairn_ledger::governance::GovAction::RemoveValidator { consensus_key: key };
            let id = govern::propose_and_approve(&m, &rpc, action).await?;
            eprintln!("proposal {id} executed; waiting for the next epoch");
            let set = govern::wait_for_set(&rpc, Duration::from_secs(120), |s| {
                s.iter().all(|v| v.address != key)
            })
            .await?;
            report_set(json, "removed", &node.name, id, &set, None);
        }
        Cmd::Fabricate {
            dir,
            blocks,
            transfers_per_block,
            copy_to,
            json,
        } => {
            let r =
                cairn_testnet::fabricate::fabricate(&cairn_testnet::fabricate::FabricateOptions {
                    dir,
                    blocks,
                    transfers_per_block,
                    copy_to,
                    progress: !json,
                })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!(
                    "head {} ({}), state root {}; wrote {} blocks and {} transfers in {:.1} s, \
                     copied in {:.1} s; validator 0's database {} bytes",
                    r.head_height,
                    r.head_hash,
                    r.state_root,
                    r.blocks_written,
                    r.transfers_written,
                    r.build_secs,
                    r.copy_secs,
                    r.db_bytes
                );
            }
        }
        Cmd::StateSyncBench {
            out,
            blocks,
            transfers_per_block,
            snapshot_interval_blocks,
            snapshot_chunk_bytes,
            wait,
            json,
        } => {
            let opts = cairn_testnet::state_sync_bench::BenchOptions {
                out,
                blocks,
                transfers_per_block,
                snapshot_interval_blocks,
                snapshot_chunk_bytes,
                wait_max: wait,
                progress: !json,
                ..Default::default()
            };
            let report = cairn_testnet::state_sync_bench::run(&opts).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!("{}", report.table());
            }
        }
        Cmd::Chart {
            results,
            out,
            by_accounts,
            by_validators,
        } => {
            if results.len() > 1 && !by_accounts && !by_validators {
                bail!("several results files need --by-accounts or --by-validators");
            }
            let mut values = Vec::new();
            for path in &results {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                let v: serde_json::Value = serde_json::from_str(&text)
                    .with_context(|| format!("{} is not JSON", path.display()))?;
                values.push(v);
            }
            let out = out.unwrap_or_else(|| cairn_testnet::charts::png_beside(&results[0]));
            let charts = if by_accounts {
                cairn_testnet::charts::state_size_curve(&values)?
            } else if by_validators {
                cairn_testnet::charts::validator_curve(&values)?
            } else {
                let mut c = cairn_testnet::charts::load_curve(&values[0])?;
                c.extend(cairn_testnet::charts::soak_curve(&values[0])?);
                c
            };
            cairn_testnet::charts::write_png(&out, &charts)?;
            println!("{}", out.display());
        }
        Cmd::Dashboard { dir } => {
            let m = Manifest::load(&dir)?;
            let page = cairn_testnet::dashboard::write_page(&dir, &m)?;
            let targets = cairn_testnet::dashboard::write_prometheus_targets(&dir, &m)?;
            println!("{}", cairn_testnet::dashboard::file_url(&page));
            for n in &m.nodes {
                println!(
                    "  {:<14} {}/dashboard",
                    n.name,
                    n.rpc_url.trim_end_matches('/')
                );
            }
            eprintln!(
                "Prometheus targets: {} (CAIRN_PROMETHEUS_TARGETS for testnet/monitoring/docker-compose.yml)",
                targets.display()
            );
        }
        Cmd::Start { dir, node_bin } => {
            let m = Manifest::load(&dir)?;
            let bin = node_bin.unwrap_or_else(find_node_binary);
            let mut t = LocalTestnet::start(m.clone(), bin).context("starting validators")?;
            println!("started {} validators (Ctrl-C stops them)", m.nodes.len());
            print_usage_hint(&m);
            let mut check = tokio::time::interval(Duration::from_secs(2));
            let stop = interrupted();
            tokio::pin!(stop);
            loop {
                tokio::select! {
                    _ = &mut stop => break,
                    _ = check.tick() => {
                        for i in 0..m.nodes.len() {
                            if !t.is_running(i) {
                                eprintln!("{} exited; see {}", m.nodes[i].name, m.nodes[i].home.join("node.log").display());
                            }
                        }
                    }
                }
            }
            println!("stopping validators...");
            t.stop_all();
            println!("stopped");
        }
    }
    Ok(())
}
