//! `cairn-testnet`: generate and run local Cairn testnets.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use cairn_testnet::{GenerateOptions, LocalTestnet, Manifest, find_node_binary, generate};
use clap::{Parser, Subcommand};

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
        /// Print the manifest as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run a generated testnet's validators as local processes until Ctrl-C.
    Start {
        /// Testnet directory.
        dir: PathBuf,
        /// cairn-node binary (default: beside this binary, then PATH).
        #[arg(long, env = "CAIRN_NODE_BIN")]
        node_bin: Option<PathBuf>,
    },
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
            json,
        } => {
            let opts = GenerateOptions {
                validators,
                out,
                chain_id,
                accounts,
                balance,
                p2p_port,
                rpc_port,
                ..GenerateOptions::default()
            };
            let m = generate(&opts)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&m)?);
            } else {
                println!(
                    "generated {} validators in {}",
                    m.nodes.len(),
                    opts.out.display()
                );
                print_usage_hint(&m);
            }
        }
        Cmd::Start { dir, node_bin } => {
            let m = Manifest::load(&dir)?;
            let bin = node_bin.unwrap_or_else(find_node_binary);
            let mut t = LocalTestnet::start(m.clone(), bin).context("starting validators")?;
            println!("started {} validators (Ctrl-C stops them)", m.nodes.len());
            print_usage_hint(&m);
            let mut check = tokio::time::interval(Duration::from_secs(2));
            loop {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => break,
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
