//! # cairn-wallet
//!
//! The `cairn` command-line wallet: creates keys, shows balances, blocks and node status,
//! and signs and submits transfers and governance transactions through a node's JSON-RPC
//! (`cairn-rpc`). This library
//! holds all of its logic (key files, command-line parsing, commands, error reporting);
//! `src/main.rs` only prints.
//!
//! ## Usage
//!
//! ```text
//! cairn [--rpc URL] [--keyfile PATH] [--password-file FILE] [--json] <COMMAND>
//!
//!   key new [--out PATH] [--force] [--insecure-plaintext]
//!                                   new ed25519 key; writes an encrypted key file (0600)
//!   keygen …                        the same as `key new`
//!   key import [--from FILE | --secret-file FILE] [--out PATH] [--force] [--insecure-plaintext]
//!   key export (--print-secret | --out FILE [--force])
//!   key list [DIR]                  key files in DIR (default: the --keyfile's directory)
//!   key change-password [--new-password-file FILE]
//!   address                         address of the key file
//!   balance [ADDR]                  balance and nonce (default: the key file's address)
//!   transfer --to ADDR --amount N   sign and submit a transfer; prints its hash
//!            [--fee N]              fee in base units (default 1)
//!            [--nonce N]            default: the account's nonce (getAccount)
//!            [--expiry-height H]    default: latest height + 1000 (getStatus)
//!            [--chain-id ID]        default: the node's chain id (getStatus)
//!            [--wait]               wait for finality and print the height
//!            [--wait-timeout-ms MS] default 30000
//!            [--offline [--out FILE]] sign only (needs --nonce, --chain-id,
//!                                   --expiry-height); print or write the hex
//!   send FILE|HEX [--wait] [--wait-timeout-ms MS]   broadcast a signed transaction
//!   decode FILE|HEX                 every field, the hash, whether the signature verifies
//!   completions SHELL               bash, zsh, fish, elvish, powershell
//!   man                             the man page (roff)
//!   tx HASH                         status of a transaction
//!   status                          node status
//!   block [HEIGHT|HASH]             a finalized block (default: the latest)
//!   gov show [ID]                   governance record, or one open proposal
//!   gov propose ACTION [options]    propose (a member's key file); ACTION is one of
//!       add-validator --name N --consensus-key ADDR --peer-id ID [--power N]
//!       remove-validator --consensus-key ADDR
//!       set-power --consensus-key ADDR --power N
//!       rotate-key --consensus-key ADDR --new-key ADDR --signature HEX
//!       set-members --member ADDR [--member ADDR …] --threshold K
//!       grant --account ADDR [--permission transact]
//!       revoke --account ADDR [--permission transact]
//!       set-params [--block-txs-max N] [--leader-timeout-ms MS] …
//!   gov approve ID [options]        approve an open proposal (a member's key file)
//!   gov sign-rotation --new-key ADDR  sign a key rotation with the CURRENT validator key
//! ```
//!
//! `transfer`, `gov propose` and `gov approve` take the same transaction options
//! (`--fee`, `--nonce`, `--expiry-height`, `--chain-id`, `--wait`, `--wait-timeout-ms`).
//!
//! Global flags go before or after the command:
//!
//! | flag | env | default |
//! |---|---|---|
//! | `--rpc URL` | `CAIRN_RPC` | `http://127.0.0.1:8545` (`http://` assumed if no scheme; no TLS) |
//! | `--keyfile PATH` | `CAIRN_KEYFILE` | `~/.cairn/key.json` |
//! | `--password-file FILE` | `CAIRN_PASSWORD` (the passphrase itself) | a prompt |
//! | `--json` | | off |
//!
//! A typical session:
//!
//! ```text
//! $ cairn keygen
//! address:  cairn1…
//! key file: /home/me/.cairn/key.json
//! $ cairn balance
//! $ cairn transfer --to cairn1… --amount 250 --wait
//! transaction 3f1c… submitted
//!   cairn1… -> cairn1…
//!   amount 250 fee 1 nonce 0 expiry height 1012 chain cairn-dev
//! finalized at height 13 (index 0, block 9ab0…)
//! ```
//!
//! ## Key file
//!
//! New key files are encrypted: a `cairn-keystore` version-1 JSON file, the 32-byte ed25519
//! seed sealed with XChaCha20-Poly1305 under an scrypt key (log_n 17, r 8, p 1), the
//! address in clear and bound as associated data (see [`keystore`] and `docs/keystore.md`).
//! The plaintext format `{"address": "cairn1…", "secret_key": "<64 hex>"}` (testnet demo
//! accounts, `cairn-node` keys, `--insecure-plaintext`) is read everywhere without a
//! passphrase. The passphrase comes from `--password-file`, `CAIRN_PASSWORD`, or a prompt
//! (twice for a new one). Files are created with mode 0600 (a created directory 0700);
//! `key new` refuses to replace an existing file unless `--force`; a forced write goes
//! through a temporary file and a rename, so the result is 0600 whatever the old file was.
//! Loading checks that `address` matches the secret and warns on stderr if the file is
//! readable by group or others.
//!
//! ## Output and errors
//!
//! Without `--json`, results are text on stdout and errors are one line on stderr,
//! `error: …`, e.g. `error: cannot reach node at http://127.0.0.1:8545/: connection
//! refused` or `error: transaction rejected: insufficient_balance: transaction …: amount +
//! fee = 1001 exceeds balance 1000`.
//!
//! With `--json`, stdout holds exactly one JSON object — the result on success, and
//! `{"error": {"kind", "message", "exitCode", …}}` on failure (see [`error_json`]); nothing
//! is printed on stderr except warnings. Usage errors (bad flags) are clap's, on stderr.
//!
//! | exit | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | other failure (key file, RPC error, no such block, …) |
//! | 2 | usage error |
//! | 3 | node unreachable (connection, timeout, HTTP error) |
//! | 4 | transaction rejected (at submission, or while `--wait`ing) |
//! | 5 | `--wait` timed out before the transaction was final |

pub mod cli;
pub mod commands;
pub mod gov;
pub mod keycmd;
pub mod keyfile;
pub mod keystore;
pub mod offline;
pub mod passphrase;
pub mod shell;

pub use cli::{
    BlockId, Cli, Command, GovCommand, KeyCommand, KeyWriteArgs, ProposeAction, TransferArgs,
    TxArgs,
};
pub use commands::{
    EXIT_FAILURE, EXIT_OK, EXIT_REJECTED, EXIT_TIMEOUT, EXIT_UNREACHABLE, EXIT_USAGE, Output,
    TxRejected, build_transfer, error_json, exit_code, run,
};
pub use keyfile::{KeyFile, KeyFileError, KeyFileFormat, ParsedKeyFile};
pub use keystore::KdfParams;
