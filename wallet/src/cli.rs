//! Command-line surface of the `cairn` binary (clap derive).

use std::path::PathBuf;

use cairn_ledger::governance::Permission;
use cairn_ledger::{Address, Hash};
use clap::{ArgGroup, Args, Parser, Subcommand};

/// Default node URL.
pub const DEFAULT_RPC: &str = "http://127.0.0.1:8545";
/// Default key file (`~` is the home directory).
pub const DEFAULT_KEYFILE: &str = "~/.cairn/key.json";
/// Default fee of `transfer`, in base units.
pub const DEFAULT_FEE: u64 = 1;
/// `transfer` default expiry: the latest height plus this.
pub const DEFAULT_EXPIRY_DELTA: u64 = 1000;
/// Default `--wait-timeout-ms`.
pub const DEFAULT_WAIT_TIMEOUT_MS: u64 = 30_000;

/// Cairn wallet: keys, balances and transfers against a Cairn node's JSON-RPC.
#[derive(Parser, Debug, Clone)]
#[command(name = "cairn", version, propagate_version = true)]
pub struct Cli {
    /// Node JSON-RPC URL.
    #[arg(long, global = true, help_heading = "Global options", env = "CAIRN_RPC", default_value = DEFAULT_RPC, value_name = "URL")]
    pub rpc: String,

    /// Machine-readable output: one JSON object on stdout (errors too, as {"error": {...}}).
    #[arg(long, global = true, help_heading = "Global options")]
    pub json: bool,

    /// Key file to sign with (and whose address is the default account).
    #[arg(long, global = true, help_heading = "Global options", env = "CAIRN_KEYFILE", default_value = DEFAULT_KEYFILE, value_name = "PATH")]
    pub keyfile: PathBuf,

    /// File whose first line is the key file's passphrase [default: env CAIRN_PASSWORD, else
    /// a prompt]. For `key new`/`import` it is the new file's passphrase.
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        value_name = "FILE"
    )]
    pub password_file: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Create a new ed25519 key and write it to a key file (mode 0600), encrypted with a
    /// passphrase; the same as `cairn key new`.
    Keygen(KeyWriteArgs),
    /// Key files: create, import, export, list, change the passphrase.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Print the address of the key file.
    Address,
    /// Show an account's balance and nonce.
    Balance {
        /// Account address [default: the key file's address].
        #[arg(value_name = "ADDR")]
        address: Option<Address>,
    },
    /// Sign a transfer with the key file and submit it.
    Transfer(TransferArgs),
    /// Show a transaction's status; with --follow, every change until it is final.
    Tx {
        /// Transaction hash (64 hex characters).
        #[arg(value_name = "HASH", value_parser = parse_hash)]
        hash: Hash,
        /// Follow the status until the transaction is finalized or rejected, printing each
        /// change (over the node's WebSocket; by polling when it has none).
        #[arg(long)]
        follow: bool,
        /// How long --follow follows, in milliseconds.
        #[arg(long, value_name = "MS", default_value_t = DEFAULT_WAIT_TIMEOUT_MS, requires = "follow")]
        wait_timeout_ms: u64,
    },
    /// Show the node's status.
    Status,
    /// Show a finalized block.
    Block {
        /// Block height or hash [default: the latest block].
        #[arg(value_name = "HEIGHT|HASH", value_parser = parse_block_id)]
        id: Option<BlockId>,
    },
    /// Broadcast a signed transaction (e.g. from `transfer --offline`).
    Send {
        /// A file holding the transaction hex, the hex itself, or `-` for stdin.
        #[arg(value_name = "FILE|HEX")]
        input: String,
        /// Wait until the transaction is finalized (or rejected) and print where.
        #[arg(long)]
        wait: bool,
        /// How long --wait waits, in milliseconds.
        #[arg(long, value_name = "MS", default_value_t = DEFAULT_WAIT_TIMEOUT_MS)]
        wait_timeout_ms: u64,
    },
    /// Show every field of a signed transaction, its hash, and whether its signature
    /// verifies (offline).
    Decode {
        /// A file holding the transaction hex, the hex itself, or `-` for stdin.
        #[arg(value_name = "FILE|HEX")]
        input: String,
    },
    /// Print a shell completion script (e.g. `cairn completions bash > /etc/bash_completion.d/cairn`).
    Completions {
        /// The shell.
        #[arg(value_enum, value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff; e.g. `cairn man > cairn.1; man ./cairn.1`).
    Man,
    /// Governance: propose and approve membership, permission and parameter changes; show
    /// the chain's governance record.
    #[command(subcommand)]
    Gov(GovCommand),
}

/// `cairn gov …`.
#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum GovCommand {
    /// Propose a governance action, signed with the key file (a member's); your approval
    /// counts, and the action executes once approvals reach the threshold.
    Propose {
        /// The action.
        #[command(subcommand)]
        action: ProposeAction,
        /// Transaction options.
        #[command(flatten)]
        tx: TxArgs,
    },
    /// Approve open proposal ID, signed with the key file (a member's).
    Approve {
        /// The proposal's id (see `cairn gov show`).
        #[arg(value_name = "ID")]
        id: u64,
        /// Transaction options.
        #[command(flatten)]
        tx: TxArgs,
    },
    /// Show the governance record (members, threshold, policy, validators, parameters,
    /// open proposals), or one open proposal.
    Show {
        /// Only this proposal.
        #[arg(value_name = "ID")]
        id: Option<u64>,
    },
    /// Sign a key rotation with the key file, which must hold the validator's CURRENT
    /// consensus key (e.g. the node's validator_key.json); prints the signature for
    /// `cairn gov propose rotate-key --signature`.
    SignRotation {
        /// The validator's new consensus key (address form).
        #[arg(long, value_name = "ADDR")]
        new_key: Address,
        /// Chain id to sign for [default: the node's, via getStatus].
        #[arg(long, value_name = "ID")]
        chain_id: Option<String>,
    },
}

/// Where and how `key new`, `keygen` and `key import` write the key file.
#[derive(Args, Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyWriteArgs {
    /// Where to write the key file [default: the --keyfile path].
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
    /// Replace an existing key file (its key is lost unless backed up).
    #[arg(long)]
    pub force: bool,
    /// Write the secret UNENCRYPTED (the old format; for tests and throwaway demo keys).
    #[arg(long)]
    pub insecure_plaintext: bool,
}

/// `cairn key …`.
#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum KeyCommand {
    /// Create a new key; the file is encrypted with a passphrase (asked twice) unless
    /// --insecure-plaintext.
    New(KeyWriteArgs),
    /// Import a key from a plaintext key file or a hex secret (from a file, or typed at a
    /// hidden prompt) into a new, encrypted, key file.
    #[command(group(ArgGroup::new("import_from").args(["from", "secret_file"])))]
    Import {
        /// A plaintext key file to import.
        #[arg(long, value_name = "FILE")]
        from: Option<PathBuf>,
        /// A file whose first line is the 64-hex-character secret (`-`: stdin) [default: ask
        /// at a hidden prompt].
        #[arg(long, value_name = "FILE")]
        secret_file: Option<PathBuf>,
        /// Output options.
        #[command(flatten)]
        write: KeyWriteArgs,
    },
    /// Export the --keyfile's secret: print it (--print-secret) or write a plaintext key
    /// file (--out). Anyone who sees it controls the account.
    #[command(group(ArgGroup::new("export_to").required(true).args(["print_secret", "out"])))]
    Export {
        /// Print the secret key (64 hex characters) on stdout.
        #[arg(long)]
        print_secret: bool,
        /// Write an UNENCRYPTED key file here (mode 0600).
        #[arg(long, value_name = "PATH")]
        out: Option<PathBuf>,
        /// Replace an existing --out file.
        #[arg(long)]
        force: bool,
    },
    /// List the key files (*.json) in a directory: address, format, path. Needs no
    /// passphrase.
    List {
        /// The directory [default: the --keyfile's directory, `~/.cairn`].
        #[arg(value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Re-encrypt the --keyfile under a new passphrase (a plaintext file gets encrypted).
    ChangePassword {
        /// File whose first line is the new passphrase [default: env CAIRN_NEW_PASSWORD,
        /// else a prompt, twice].
        #[arg(long, value_name = "FILE")]
        new_password_file: Option<PathBuf>,
    },
}

/// The actions of `cairn gov propose`.
#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum ProposeAction {
    /// Add a validator at the end of the set (takes effect at the next epoch).
    AddValidator {
        /// Unique name, 1..=64 bytes of [A-Za-z0-9-_.].
        #[arg(long)]
        name: String,
        /// The validator's consensus public key (address form, cairn1…).
        #[arg(long, value_name = "ADDR")]
        consensus_key: Address,
        /// The libp2p peer id of its node (12D3KooW…).
        #[arg(long, value_name = "PEER_ID")]
        peer_id: String,
        /// Voting power.
        #[arg(long, value_name = "N", default_value_t = 1)]
        power: u64,
    },
    /// Remove a validator (it keeps running as a full node).
    RemoveValidator {
        /// The validator's consensus key.
        #[arg(long, value_name = "ADDR")]
        consensus_key: Address,
    },
    /// Set a validator's voting power.
    SetPower {
        /// The validator's consensus key.
        #[arg(long, value_name = "ADDR")]
        consensus_key: Address,
        /// New voting power (≥ 1).
        #[arg(long, value_name = "N")]
        power: u64,
    },
    /// Replace a validator's consensus key (needs the current key's signature, from
    /// `cairn gov sign-rotation`).
    RotateKey {
        /// The validator's current consensus key.
        #[arg(long, value_name = "ADDR")]
        consensus_key: Address,
        /// The new consensus key.
        #[arg(long, value_name = "ADDR")]
        new_key: Address,
        /// 128 hex characters from `cairn gov sign-rotation`.
        #[arg(long, value_name = "HEX", value_parser = parse_signature)]
        signature: Signature64,
    },
    /// Replace the governance members and the threshold.
    SetMembers {
        /// A member (repeat for each, 1..=24).
        #[arg(long = "member", value_name = "ADDR", required = true)]
        members: Vec<Address>,
        /// Approvals an action needs (1..=members).
        #[arg(long, value_name = "K")]
        threshold: u32,
    },
    /// Grant an account a permission (`transact`: may send transfers on a permissioned
    /// chain).
    Grant {
        /// The account.
        #[arg(long, value_name = "ADDR")]
        account: Address,
        /// The permission.
        #[arg(long, value_name = "NAME", default_value = "transact", value_parser = parse_permission)]
        permission: Permission,
    },
    /// Revoke an account's permission.
    Revoke {
        /// The account.
        #[arg(long, value_name = "ADDR")]
        account: Address,
        /// The permission.
        #[arg(long, value_name = "NAME", default_value = "transact", value_parser = parse_permission)]
        permission: Permission,
    },
    /// Change chain parameters (only the ones given).
    SetParams(ParamsArgs),
}

/// The parameters `cairn gov propose set-params` may change (see the genesis docs for
/// meanings and ranges).
#[derive(Args, Debug, Clone, PartialEq, Eq, Default)]
pub struct ParamsArgs {
    /// Leader timeout, ms.
    #[arg(long, value_name = "MS")]
    pub leader_timeout_ms: Option<u64>,
    /// Notarization timeout, ms.
    #[arg(long, value_name = "MS")]
    pub notarization_timeout_ms: Option<u64>,
    /// Nullify re-broadcast interval, ms.
    #[arg(long, value_name = "MS")]
    pub nullify_retry_ms: Option<u64>,
    /// Most transactions per block.
    #[arg(long, value_name = "N")]
    pub block_txs_max: Option<u64>,
    /// Most bytes per block.
    #[arg(long, value_name = "BYTES")]
    pub block_bytes_max: Option<u64>,
    /// Least time between blocks, ms.
    #[arg(long, value_name = "MS")]
    pub block_interval_ms: Option<u64>,
    /// Most transactions in a mempool.
    #[arg(long, value_name = "N")]
    pub mempool_txs_max: Option<u64>,
    /// Most bytes in a mempool.
    #[arg(long, value_name = "BYTES")]
    pub mempool_bytes_max: Option<u64>,
    /// How far ahead of its nonce a sender's pooled transactions may be.
    #[arg(long, value_name = "N")]
    pub mempool_sender_future_max: Option<u64>,
    /// Admission proof-of-work bits for non-validator peers.
    #[arg(long, value_name = "BITS")]
    pub admission_difficulty_bits: Option<u8>,
}

/// A 64-byte signature given as hex.
pub type Signature64 = [u8; 64];

/// Parses 128 hex characters (optional `0x`).
pub fn parse_signature(s: &str) -> Result<Signature64, String> {
    let s = s.trim();
    let bytes = hex::decode(s.strip_prefix("0x").unwrap_or(s)).map_err(|e| e.to_string())?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| format!("{} bytes, expected 64", b.len()))
}

/// Parses a permission name (`transact`).
pub fn parse_permission(s: &str) -> Result<Permission, String> {
    Permission::ALL
        .into_iter()
        .find(|p| p.name() == s)
        .ok_or_else(|| format!("unknown permission `{s}` (known: transact)"))
}

/// Options of every signed transaction (`transfer`, `gov propose`, `gov approve`).
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct TxArgs {
    /// Fee in base units, paid to the block proposer.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_FEE, global = true)]
    pub fee: u64,
    /// Sender nonce [default: the account's next nonce, via getAccount `nextNonce`: its nonce plus
    /// its transactions the node pools, so back-to-back transfers need no --nonce].
    #[arg(long, value_name = "N", global = true)]
    pub nonce: Option<u64>,
    /// Last height at which the transaction may be included [default: latest height + 1000].
    #[arg(long, value_name = "H", global = true)]
    pub expiry_height: Option<u64>,
    /// Chain id to sign for [default: the node's, via getStatus].
    #[arg(long, value_name = "ID", global = true)]
    pub chain_id: Option<String>,
    /// Wait until the transaction is finalized (or rejected) and print where.
    #[arg(long, global = true)]
    pub wait: bool,
    /// How long --wait waits, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = DEFAULT_WAIT_TIMEOUT_MS, global = true)]
    pub wait_timeout_ms: u64,
}

/// Arguments of `cairn transfer`.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct TransferArgs {
    /// Recipient address (cairn1…).
    #[arg(long, value_name = "ADDR")]
    pub to: Address,
    /// Amount in base units.
    #[arg(long, value_name = "N")]
    pub amount: u64,
    /// Sign without contacting a node: print the signed transaction's hex (or write it to
    /// --out) for `cairn send`. Needs --nonce, --chain-id and --expiry-height.
    #[arg(
        long,
        requires = "nonce",
        requires = "chain_id",
        requires = "expiry_height",
        conflicts_with = "wait"
    )]
    pub offline: bool,
    /// With --offline: write the hex to this file (not replaced if it exists).
    #[arg(long, value_name = "FILE", requires = "offline")]
    pub out: Option<PathBuf>,
    /// Transaction options.
    #[command(flatten)]
    pub tx: TxArgs,
}

/// A block named by height or hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockId {
    /// By height.
    Height(u64),
    /// By hash.
    Hash(Hash),
}

/// Parses a 64-hex-character hash (optional `0x`).
pub fn parse_hash(s: &str) -> Result<Hash, String> {
    Hash::from_hex(s.trim()).map_err(|e| e.to_string())
}

/// 64 hex characters (optionally `0x`-prefixed) are a block hash, even if all digits;
/// other digit strings are a height.
pub fn parse_block_id(s: &str) -> Result<BlockId, String> {
    let s = s.trim();
    let looks_like_hash = s.strip_prefix("0x").unwrap_or(s).len() == 64;
    if !looks_like_hash && !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse()
            .map(BlockId::Height)
            .map_err(|e| format!("height: {e}"));
    }
    parse_hash(s)
        .map(BlockId::Hash)
        .map_err(|e| format!("not a height or a block hash: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("cairn").chain(args.iter().copied()))
    }

    fn addr() -> String {
        Address([5; 32]).to_bech32()
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn globals_anywhere_and_defaults() {
        // Env vars would change the defaults; this test only runs with them unset.
        if std::env::var_os("CAIRN_RPC").is_some() || std::env::var_os("CAIRN_KEYFILE").is_some() {
            return;
        }
        let c = parse(&["status"]).unwrap();
        assert_eq!(c.rpc, DEFAULT_RPC);
        assert_eq!(c.keyfile, PathBuf::from(DEFAULT_KEYFILE));
        assert!(!c.json);
        let c = parse(&["status", "--json", "--rpc", "http://x:1"]).unwrap();
        assert!(c.json);
        assert_eq!(c.rpc, "http://x:1");
        let c = parse(&["--keyfile", "/k.json", "address"]).unwrap();
        assert_eq!(c.keyfile, PathBuf::from("/k.json"));
        assert_eq!(c.command, Command::Address);
    }

    #[test]
    fn transfer_args() {
        let a = addr();
        let c = parse(&["transfer", "--to", &a, "--amount", "10"]).unwrap();
        let Command::Transfer(t) = c.command else {
            panic!()
        };
        assert_eq!(t.to, Address([5; 32]));
        assert_eq!(
            (
                t.amount,
                t.tx.fee,
                t.tx.nonce,
                t.tx.expiry_height,
                t.tx.chain_id.clone()
            ),
            (10, 1, None, None, None)
        );
        assert!(!t.tx.wait);
        assert_eq!(t.tx.wait_timeout_ms, 30_000);
        let c = parse(&[
            "transfer",
            "--to",
            &a,
            "--amount",
            "10",
            "--fee",
            "0",
            "--nonce",
            "4",
            "--expiry-height",
            "99",
            "--chain-id",
            "x",
            "--wait",
            "--wait-timeout-ms",
            "5",
        ])
        .unwrap();
        let Command::Transfer(t) = c.command else {
            panic!()
        };
        assert_eq!(
            (
                t.tx.fee,
                t.tx.nonce,
                t.tx.expiry_height,
                t.tx.chain_id.as_deref()
            ),
            (0, Some(4), Some(99), Some("x"))
        );
        assert!(t.tx.wait);
        assert_eq!(t.tx.wait_timeout_ms, 5);
    }

    #[test]
    fn bad_input_is_a_usage_error() {
        let a = addr();
        for args in [
            vec!["transfer", "--amount", "1"],
            vec!["transfer", "--to", &a],
            vec!["transfer", "--to", "cairn1bogus", "--amount", "1"],
            vec!["transfer", "--to", &a, "--amount", "-1"],
            vec!["transfer", "--to", &a, "--amount", "18446744073709551616"],
            vec!["tx", "abcd"],
            vec!["block", "xyz"],
            vec!["balance", "notanaddress"],
            vec!["frobnicate"],
            vec![],
        ] {
            assert!(parse(&args).is_err(), "{args:?}");
        }
    }

    #[test]
    fn block_ids_and_misc() {
        let h = Hash([1; 32]);
        assert_eq!(
            parse(&["block"]).unwrap().command,
            Command::Block { id: None }
        );
        assert_eq!(
            parse(&["block", "7"]).unwrap().command,
            Command::Block {
                id: Some(BlockId::Height(7))
            }
        );
        assert_eq!(
            parse(&["block", &h.to_hex()]).unwrap().command,
            Command::Block {
                id: Some(BlockId::Hash(h))
            }
        );
        assert_eq!(
            parse(&["tx", &h.to_hex()]).unwrap().command,
            Command::Tx {
                hash: h,
                follow: false,
                wait_timeout_ms: DEFAULT_WAIT_TIMEOUT_MS
            }
        );
        assert_eq!(
            parse(&["tx", &h.to_hex(), "--follow", "--wait-timeout-ms", "9"])
                .unwrap()
                .command,
            Command::Tx {
                hash: h,
                follow: true,
                wait_timeout_ms: 9
            }
        );
        // The timeout belongs to --follow.
        assert!(parse(&["tx", &h.to_hex(), "--wait-timeout-ms", "9"]).is_err());
        let all_digits = Hash([0x12; 32]);
        assert_eq!(
            parse(&["block", &all_digits.to_hex()]).unwrap().command,
            Command::Block {
                id: Some(BlockId::Hash(all_digits))
            }
        );
        assert_eq!(
            parse(&["block", &format!("0x{}", h.to_hex())])
                .unwrap()
                .command,
            Command::Block {
                id: Some(BlockId::Hash(h))
            }
        );
        assert!(parse(&["block", "99999999999999999999999"]).is_err());
        assert_eq!(
            parse(&["keygen", "--out", "/tmp/k", "--force"])
                .unwrap()
                .command,
            Command::Keygen(KeyWriteArgs {
                out: Some(PathBuf::from("/tmp/k")),
                force: true,
                insecure_plaintext: false,
            })
        );
        assert_eq!(
            parse(&["balance", &addr()]).unwrap().command,
            Command::Balance {
                address: Some(Address([5; 32]))
            }
        );
    }

    #[test]
    fn key_offline_send_decode_completions_parse() {
        let a = addr();
        let c = parse(&["key", "new", "--insecure-plaintext", "--out", "/k"]).unwrap();
        assert_eq!(
            c.command,
            Command::Key(KeyCommand::New(KeyWriteArgs {
                out: Some(PathBuf::from("/k")),
                force: false,
                insecure_plaintext: true,
            }))
        );
        let c = parse(&["key", "list", "--password-file", "/pw"]).unwrap();
        assert_eq!(c.password_file, Some(PathBuf::from("/pw")));
        assert_eq!(c.command, Command::Key(KeyCommand::List { dir: None }));
        assert!(parse(&["key", "export", "--print-secret"]).is_ok());
        // export needs exactly one destination; import takes one source at most.
        for bad in [
            vec!["key", "export"],
            vec!["key", "export", "--print-secret", "--out", "/x"],
            vec!["key", "import", "--from", "/a", "--secret-file", "/b"],
        ] {
            assert!(parse(&bad).is_err(), "{bad:?}");
        }
        let offline = [
            "transfer",
            "--offline",
            "--to",
            &a,
            "--amount",
            "1",
            "--nonce",
            "0",
            "--chain-id",
            "c",
            "--expiry-height",
            "9",
        ];
        let c = parse(&offline).unwrap();
        let Command::Transfer(t) = c.command else {
            panic!()
        };
        assert!(t.offline && t.out.is_none());
        let with_out = [&offline[..], &["--out", "/tx.hex"]].concat();
        assert!(parse(&with_out).is_ok());
        // Each of the three is required with --offline; --wait conflicts; --out needs it.
        for skip in [6, 8, 10] {
            let args: Vec<&str> = offline
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != skip && *i != skip + 1)
                .map(|(_, s)| *s)
                .collect();
            let err = parse(&args).unwrap_err();
            assert_eq!(
                err.kind(),
                clap::error::ErrorKind::MissingRequiredArgument,
                "{args:?}"
            );
        }
        assert!(parse(&[&offline[..], &["--wait"]].concat()).is_err());
        assert!(parse(&["transfer", "--to", &a, "--amount", "1", "--out", "/x"]).is_err());
        assert_eq!(
            parse(&["send", "tx.hex", "--wait"]).unwrap().command,
            Command::Send {
                input: "tx.hex".into(),
                wait: true,
                wait_timeout_ms: DEFAULT_WAIT_TIMEOUT_MS
            }
        );
        assert_eq!(
            parse(&["decode", "abcd"]).unwrap().command,
            Command::Decode {
                input: "abcd".into()
            }
        );
        assert_eq!(
            parse(&["completions", "fish"]).unwrap().command,
            Command::Completions {
                shell: clap_complete::Shell::Fish
            }
        );
        assert!(parse(&["completions", "tcsh"]).is_err());
        assert_eq!(parse(&["man"]).unwrap().command, Command::Man);
    }

    #[test]
    fn gov_commands_parse() {
        let a = addr();
        let c = parse(&["gov", "approve", "7", "--fee", "3", "--wait"]).unwrap();
        let Command::Gov(GovCommand::Approve { id, tx }) = c.command else {
            panic!()
        };
        assert_eq!((id, tx.fee, tx.wait), (7, 3, true));
        // Transaction options go before or after the action.
        for args in [
            vec!["gov", "propose", "--fee", "2", "grant", "--account", &a],
            vec!["gov", "propose", "grant", "--account", &a, "--fee", "2"],
        ] {
            let c = parse(&args).unwrap();
            let Command::Gov(GovCommand::Propose { action, tx }) = c.command else {
                panic!()
            };
            assert_eq!(tx.fee, 2, "{args:?}");
            assert_eq!(
                action,
                ProposeAction::Grant {
                    account: Address([5; 32]),
                    permission: Permission::Transact
                }
            );
        }
        let c = parse(&[
            "gov",
            "propose",
            "set-members",
            "--member",
            &a,
            "--member",
            &a,
            "--threshold",
            "2",
        ])
        .unwrap();
        let Command::Gov(GovCommand::Propose {
            action: ProposeAction::SetMembers { members, threshold },
            ..
        }) = c.command
        else {
            panic!()
        };
        assert_eq!((members.len(), threshold), (2, 2));
        let c = parse(&["gov", "propose", "set-params", "--block-txs-max", "500"]).unwrap();
        let Command::Gov(GovCommand::Propose {
            action: ProposeAction::SetParams(p),
            ..
        }) = c.command
        else {
            panic!()
        };
        assert_eq!(p.block_txs_max, Some(500));
        assert_eq!(p.leader_timeout_ms, None);
        assert_eq!(
            parse(&["gov", "show"]).unwrap().command,
            Command::Gov(GovCommand::Show { id: None })
        );
        for bad in [
            vec![
                "gov",
                "propose",
                "grant",
                "--account",
                &a,
                "--permission",
                "root",
            ],
            vec![
                "gov",
                "propose",
                "rotate-key",
                "--consensus-key",
                &a,
                "--new-key",
                &a,
                "--signature",
                "abcd",
            ],
            vec!["gov", "propose", "set-members", "--threshold", "1"],
            vec!["gov", "approve"],
            vec!["gov", "propose", "add-validator", "--name", "x"],
        ] {
            assert!(parse(&bad).is_err(), "{bad:?}");
        }
    }
}
