//! # cairn-genesis
//!
//! Owns the genesis file, `genesis.json`: the chain id, the initial validator set, the
//! funded accounts and the chain parameters. It parses and validates the file, computes
//! the **genesis hash** that identifies the chain, and derives what the node starts from:
//! the consensus [`ValidatorSet`](cairn_consensus::ValidatorSet), the initial account
//! state and the genesis [`Block`].
//!
//! ## File format
//!
//! JSON, snake_case field names, every object `deny_unknown_fields` (a misspelt field is
//! an error, never silently ignored). A full example (also `testdata/genesis.example.json`;
//! a test checks that both parse to the same genesis):
//!
//! ```json
//! {
//!   "chain_id": "cairn-testnet",
//!   "genesis_time_ms": 1764000000000,
//!   "validators": [
//!     {
//!       "name": "validator-0",
//!       "consensus_key": "cairn132yw8ht5p8cetl2jmvknewjawt9xwzdlrk2pyxlnwjyqrdq0dawqk9dx6l",
//!       "peer_id": "12D3KooWQESzG5JVc63XV9t8JiMDhjDEVNo4gWxWnMS7PD6T6MiP",
//!       "voting_power": 1
//!     }
//!   ],
//!   "accounts": [
//!     {
//!       "address": "cairn1eryv3jxgeryv3jxgeryv3jxgeryv3jxgeryv3jxgeryv3jxgeryqd0mzjx",
//!       "balance": 1000000000
//!     }
//!   ],
//!   "params": {
//!     "leader_timeout_ms": 1000,
//!     "notarization_timeout_ms": 2000,
//!     "nullify_retry_ms": 1000,
//!     "block_txs_max": 10000,
//!     "block_bytes_max": 4194304,
//!     "block_interval_ms": 0,
//!     "mempool_txs_max": 100000,
//!     "mempool_bytes_max": 33554432,
//!     "mempool_sender_future_max": 64,
//!     "admission_difficulty_bits": 0
//!   },
//!   "governance": {
//!     "members": [
//!       "cairn1eryv3jxgeryv3jxgeryv3jxgeryv3jxgeryv3jxgeryv3jxgeryqd0mzjx"
//!     ],
//!     "threshold": 1,
//!     "accounts": "open",
//!     "transact": [],
//!     "proposal_ttl_blocks": 100000
//!   }
//! }
//! ```
//!
//! - `chain_id`: 1..=32 bytes of `[a-z0-9-_.]`; every transaction and block names it.
//! - `genesis_time_ms`: ms since the Unix epoch; the genesis block's timestamp.
//! - `validators` (at least one, at most [`VALIDATORS_MAX`]; order is the validator
//!   set's order): `name` (unique, 1..=64 bytes of `[A-Za-z0-9-_.]`), `consensus_key`
//!   (unique; the bech32m [`Address`] form of the validator's ed25519 consensus public
//!   key, which must be a valid, non-weak point), `peer_id` (unique; the libp2p peer id of
//!   the validator's network key, canonical base58), `voting_power` (≥ 1; the sum must fit
//!   in a u64).
//! - `accounts` (may be empty): `address` (unique, bech32m) and `balance` (≥ 1 base unit;
//!   the sum must fit in a u64). Each starts with nonce 0.
//! - `params`: optional; each field optional, see [`ChainParams`] for meanings, defaults
//!   and ranges.
//! - `governance`: optional, each field optional ([`GenesisGovernance`]): `members`
//!   (0..=24 distinct accounts that may propose and approve governance actions; none
//!   freezes membership), `threshold` (approvals an action needs, `1..=members`, 0 with no
//!   members), `accounts` (`"open"`, the default, or `"permissioned"`: only accounts
//!   holding `transact` may send transfers), `transact` (distinct accounts holding
//!   `transact` at genesis), `proposal_ttl_blocks` (1..=100,000,000, default 100,000).
//!   The genesis validators must also satisfy the governance record's rules (peer ids of
//!   ed25519 keys). See `docs/governance.md`.
//! - `generated_accounts`: optional, `{"count": N, "balance": B, "seed": "<64 hex>"}`:
//!   `N` (1..=[`GENERATED_ACCOUNTS_MAX`]) accounts funded with `B` (≥ 1) each, whose keys
//!   derive from the seed ([`GeneratedAccounts`]). **Test and benchmark chains only**: the
//!   keys are public. Lets a benchmark start from millions of accounts with a small file.
//!
//! [`Genesis::load`] reads at most [`GENESIS_FILE_BYTES_MAX`] bytes.
//!
//! ## Genesis hash
//!
//! [`Genesis::hash`] = blake3 in derive-key mode with context [`GENESIS_HASH_CONTEXT`]
//! (`"cairn genesis v2"`; v2 added `governance`) over the borsh encoding of the canonical
//! genesis: the [`Genesis`] struct with its fields in declaration order — `chain_id` (borsh string),
//! `genesis_time_ms` (u64), `validators` (u32 count, then per validator `name` string,
//! `consensus_key` 32 raw bytes, `peer_id` string, `voting_power` u64) **in file order**
//! (the order is part of the validator set), `accounts` (u32 count, then per account
//! `address` 32 raw bytes and `balance` u64) **sorted by address bytes** (the initial state
//! does not depend on their order), and `params` (each field in declaration order, u64
//! little-endian; `admission_difficulty_bits` one byte), and `governance` (`members` u32
//! count then 32 raw bytes each, **sorted**; `threshold` u32; `accounts` one byte, 0 open
//! and 1 permissioned; `transact` u32 count then 32 raw bytes each, **sorted**;
//! `proposal_ttl_blocks` u64), then, only when the file has a `generated_accounts` section,
//! that section's borsh encoding (`count` u64, `balance` u64, `seed` 32 raw bytes): a file
//! without it keeps the hash it had before the section existed.
//!
//! The hash therefore does not depend on JSON whitespace, key order, number formatting or
//! account order, but changes with any value, with the validator order, and with any
//! parameter (including one left at its default: the default is hashed, not its absence).
//! It is the genesis block's `parent_hash`, so two nodes with different genesis files
//! never agree on a block.

mod error;
#[doc(hidden)]
pub mod fuzzing;

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::str::FromStr;

use borsh::BorshSerialize;
use cairn_ledger::governance::{
    AccountsPolicy, Governance, PROPOSAL_TTL_BLOCKS_DEFAULT, Permission, Permissions, ValidatorInfo,
};
use cairn_ledger::{
    Account, Address, Block, BlockHeader, CHAIN_ID_BYTES_MAX, Hash, InitialState, LedgerError,
    LtHash, Store, txs_root,
};

pub use cairn_ledger::params::{
    ADMISSION_DIFFICULTY_BITS_MAX, BLOCK_BYTES_MAX, BLOCK_BYTES_MIN, BLOCK_TXS_MAX, ChainParams,
    MEMPOOL_BYTES_MAX, MEMPOOL_BYTES_MIN, MEMPOOL_SENDER_FUTURE_MAX, MEMPOOL_TXS_MAX,
    TIMEOUT_MS_MAX,
};
pub use error::GenesisError;

/// blake3 derive-key context of [`Genesis::hash`]. Changing it changes every chain's id.
pub const GENESIS_HASH_CONTEXT: &str = "cairn genesis v2";

/// Largest genesis file [`Genesis::load`] reads, in bytes (16 MiB).
pub const GENESIS_FILE_BYTES_MAX: u64 = 16 * 1024 * 1024;

/// Most validators a genesis file may list.
pub const VALIDATORS_MAX: usize = 1024;

/// Longest validator name, in bytes.
pub const VALIDATOR_NAME_BYTES_MAX: usize = 64;

/// A parsed genesis file. Obtain one with [`Genesis::from_json`] or [`Genesis::load`],
/// which validate it; a value built by hand should be checked with [`Genesis::validate`]
/// before use.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, BorshSerialize)]
#[serde(deny_unknown_fields)]
pub struct Genesis {
    /// Chain id: 1..=32 bytes of `[a-z0-9-_.]`.
    pub chain_id: String,
    /// Genesis block timestamp, ms since the Unix epoch.
    pub genesis_time_ms: u64,
    /// Initial validators, in validator-set order. At least 1, at most [`VALIDATORS_MAX`].
    pub validators: Vec<GenesisValidator>,
    /// Funded accounts (nonce 0). Addresses unique; order does not matter.
    pub accounts: Vec<GenesisAccount>,
    /// Chain parameters; defaults apply to omitted fields.
    #[serde(default)]
    pub params: ChainParams,
    /// Who governs the chain and who may transact; omitted: no members (membership
    /// frozen) and open accounts.
    #[serde(default)]
    pub governance: GenesisGovernance,
    /// Accounts generated from a seed instead of listed (test and benchmark chains only:
    /// their secret keys are public, see [`GeneratedAccounts`]); omitted: none. Hashed after
    /// the rest (see [`Genesis::hash`]), so a file without it keeps its hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[borsh(skip)]
    pub generated_accounts: Option<GeneratedAccounts>,
}

/// Most accounts a genesis `generated_accounts` section may create.
pub const GENERATED_ACCOUNTS_MAX: u64 = 20_000_000;

/// blake3 derive-key context of a generated account's secret key
/// ([`GeneratedAccounts::secret_key`]).
pub const GENERATED_ACCOUNT_KEY_CONTEXT: &str = "cairn generated account v1";

/// Generated accounts handed to the store per step of [`Genesis::init_store_with_progress`]
/// (derived in parallel, then written in one or more bounded WriteBatches).
pub const GENERATED_ACCOUNTS_STEP: u64 = 65_536;

/// The genesis file's optional `generated_accounts` section: `count` accounts, each
/// funded with `balance` base units (nonce 0), whose ed25519 secret key `i` (0-based) is
/// `blake3::derive_key("cairn generated account v1", seed ‖ i as u64 LE)` (RFC 8032 secret
/// key bytes) and whose address is that key's public key.
///
/// **For test and benchmark chains only**: anyone holding the genesis file can sign for
/// every generated account. A node logs a warning at start when its genesis has them.
///
/// It lets a benchmark start from millions of funded accounts without a genesis file of
/// hundreds of MiB ([`GENESIS_FILE_BYTES_MAX`] bounds the file): the node derives the
/// accounts at first start ([`Genesis::init_store`]), in parallel and in bounded batches,
/// and the load generator derives the same keys to sign for any of them.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, BorshSerialize,
)]
#[serde(deny_unknown_fields)]
pub struct GeneratedAccounts {
    /// Accounts, 1..=[`GENERATED_ACCOUNTS_MAX`].
    pub count: u64,
    /// Initial balance of each, base units, ≥ 1; `count × balance` plus the listed
    /// accounts' balances must fit in a u64.
    pub balance: u64,
    /// Key derivation seed (64 hex characters in JSON).
    pub seed: Hash,
}

impl GeneratedAccounts {
    /// Secret key bytes of account `index` (see the type's docs).
    pub fn secret_key(&self, index: u64) -> [u8; 32] {
        let mut material = [0u8; 40];
        material[..32].copy_from_slice(&self.seed.0);
        material[32..].copy_from_slice(&index.to_le_bytes());
        blake3::derive_key(GENERATED_ACCOUNT_KEY_CONTEXT, &material)
    }

    /// Signing key of account `index`.
    pub fn signing_key(&self, index: u64) -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&self.secret_key(index))
    }

    /// Address (public key) of account `index`.
    pub fn address(&self, index: u64) -> Address {
        Address::from_public_key(&self.signing_key(index).verifying_key())
    }

    /// Account `index` with its initial state.
    pub fn account(&self, index: u64) -> (Address, Account) {
        (
            self.address(index),
            Account {
                balance: self.balance,
                nonce: 0,
            },
        )
    }

    /// Accounts `range` with their state hash, derived on up to `threads` threads (each
    /// a contiguous part of the range), in index order.
    pub fn derive_range(
        &self,
        range: std::ops::Range<u64>,
        threads: usize,
    ) -> (Vec<(Address, Account)>, LtHash) {
        let len = range.end.saturating_sub(range.start);
        let threads = (threads.max(1) as u64).min(len.max(1));
        let per = len.div_ceil(threads).max(1);
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let from = range.start + t * per;
                    let to = (from + per).min(range.end);
                    scope.spawn(move || {
                        let mut h = LtHash::zero();
                        let part: Vec<(Address, Account)> = (from..to)
                            .map(|i| {
                                let (a, acc) = self.account(i);
                                h.add(&LtHash::of_account(&a, &acc));
                                (a, acc)
                            })
                            .collect();
                        (part, h)
                    })
                })
                .collect();
            let mut all = Vec::with_capacity(len as usize);
            let mut sum = LtHash::zero();
            for handle in handles {
                let (part, h) = handle.join().expect("account derivation thread panicked");
                all.extend(part);
                sum.add(&h);
            }
            (all, sum)
        })
    }

    /// The state hash of all the generated accounts, derived in steps of
    /// [`GENERATED_ACCOUNTS_STEP`] on every core (memory bounded by one step).
    pub fn lthash(&self) -> LtHash {
        let threads = derive_threads();
        let mut sum = LtHash::zero();
        let mut from = 0;
        while from < self.count {
            let to = (from + GENERATED_ACCOUNTS_STEP).min(self.count);
            sum.add(&self.derive_range(from..to, threads).1);
            from = to;
        }
        sum
    }
}

/// Threads used to derive generated accounts: the available parallelism, 1..=16.
fn derive_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 16)
}

/// The genesis file's `governance` section (see [`cairn_ledger::governance`]).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, BorshSerialize)]
#[serde(deny_unknown_fields, default)]
pub struct GenesisGovernance {
    /// Accounts that may propose and approve governance actions: 0..=24, distinct
    /// (none: governance disabled).
    pub members: Vec<Address>,
    /// Approvals an action needs: `1..=members.len()`, or 0 with no members.
    pub threshold: u32,
    /// `"open"` (anyone may send, the default) or `"permissioned"` (only accounts holding
    /// `transact`).
    pub accounts: AccountsPolicy,
    /// Accounts that hold the `transact` permission at genesis; distinct.
    pub transact: Vec<Address>,
    /// Blocks a governance proposal stays open, 1..=100,000,000. Default 100,000.
    pub proposal_ttl_blocks: u64,
}

impl Default for GenesisGovernance {
    fn default() -> Self {
        GenesisGovernance {
            members: Vec::new(),
            threshold: 0,
            accounts: AccountsPolicy::Open,
            transact: Vec::new(),
            proposal_ttl_blocks: PROPOSAL_TTL_BLOCKS_DEFAULT,
        }
    }
}

/// One validator in the genesis file.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, BorshSerialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisValidator {
    /// Human-readable name, unique: 1..=64 bytes of `[A-Za-z0-9-_.]`.
    pub name: String,
    /// ed25519 consensus public key, as an address (bech32m `cairn1…` in JSON). Must be a
    /// valid, non-weak point; unique.
    pub consensus_key: Address,
    /// libp2p peer id of the validator's network key (canonical base58, `12D3KooW…`);
    /// unique.
    pub peer_id: String,
    /// Voting weight, ≥ 1.
    pub voting_power: u64,
}

impl GenesisValidator {
    /// The consensus public key.
    ///
    /// Errors: [`GenesisError::BadConsensusKey`] (with `index` 0 and this validator's
    /// name) if the key is not a valid point or is weak.
    pub fn consensus_public_key(&self) -> Result<ed25519_dalek::VerifyingKey, GenesisError> {
        check_consensus_key(0, self)
    }

    /// This validator as the ledger's governance record holds it (the genesis set's records in
    /// [`Genesis::governance_record`]).
    pub fn info(&self) -> ValidatorInfo {
        ValidatorInfo {
            name: self.name.clone(),
            consensus_key: self.consensus_key,
            peer_id: self.peer_id.clone(),
            voting_power: self.voting_power,
        }
    }
}

/// One funded account in the genesis file.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, BorshSerialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisAccount {
    /// The account (bech32m `cairn1…` in JSON).
    pub address: Address,
    /// Initial balance in base units, ≥ 1.
    pub balance: u64,
}

impl Genesis {
    /// Parses `genesis.json` text and validates it ([`Genesis::validate`]).
    ///
    /// Errors: [`GenesisError::UnknownField`] or [`GenesisError::Json`] (with line and
    /// column) if the text does not match the format, else any validation error.
    pub fn from_json(text: &str) -> Result<Genesis, GenesisError> {
        let genesis: Genesis = serde_json::from_str(text).map_err(json_error)?;
        genesis.validate()?;
        Ok(genesis)
    }

    /// Reads and validates a genesis file of at most [`GENESIS_FILE_BYTES_MAX`] bytes.
    ///
    /// Errors: [`GenesisError::Io`] if it cannot be read or is not UTF-8,
    /// [`GenesisError::FileTooLarge`], else as [`Genesis::from_json`].
    pub fn load(path: &Path) -> Result<Genesis, GenesisError> {
        let io_err = |e: std::io::Error| GenesisError::Io {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        let file = std::fs::File::open(path).map_err(io_err)?;
        let len = file.metadata().map_err(io_err)?.len();
        let too_large = |len| GenesisError::FileTooLarge {
            path: path.to_path_buf(),
            len,
            max: GENESIS_FILE_BYTES_MAX,
        };
        if len > GENESIS_FILE_BYTES_MAX {
            return Err(too_large(len));
        }
        // The file may grow between stat and read: never read more than the bound + 1.
        let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        file.take(GENESIS_FILE_BYTES_MAX + 1)
            .read_to_end(&mut bytes)
            .map_err(io_err)?;
        if bytes.len() as u64 > GENESIS_FILE_BYTES_MAX {
            return Err(too_large(bytes.len() as u64));
        }
        let text = String::from_utf8(bytes).map_err(|e| GenesisError::Io {
            path: path.to_path_buf(),
            reason: format!("not UTF-8: {e}"),
        })?;
        Genesis::from_json(&text)
    }

    /// Pretty-printed JSON (two-space indent, fields in declaration order, trailing
    /// newline). [`Genesis::from_json`] of the result yields an equal value.
    pub fn to_json_pretty(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("genesis serializes to JSON");
        s.push('\n');
        s
    }

    /// Checks every rule of the format (see the crate docs), in order: chain id, params,
    /// validators (count, then each validator: name, key, peer id, power, duplicates, power
    /// sum), the consensus crate's own validator-set rules, then accounts (duplicates,
    /// zero balance, balance sum).
    ///
    /// Errors: the first problem found, naming the field and index.
    pub fn validate(&self) -> Result<(), GenesisError> {
        validate_chain_id(&self.chain_id)?;
        self.params.validate().map_err(GenesisError::from)?;
        self.validate_validators()?;
        self.build_validator_set()?;
        self.validate_accounts()?;
        self.validate_generated()?;
        self.build_governance()?;
        let mut seen = std::collections::BTreeSet::new();
        for (index, a) in self.governance.transact.iter().enumerate() {
            if !seen.insert(*a) {
                return Err(GenesisError::Governance {
                    reason: format!("governance.transact[{index}]: {a} is listed twice"),
                });
            }
        }
        Ok(())
    }

    fn build_governance(&self) -> Result<Governance, GenesisError> {
        let g = &self.governance;
        Governance::genesis(
            g.members.clone(),
            g.threshold,
            g.accounts,
            g.proposal_ttl_blocks,
            self.validators.iter().map(GenesisValidator::info).collect(),
            self.params.clone(),
        )
        .map_err(|e| GenesisError::Governance {
            reason: e.to_string(),
        })
    }

    /// The initial governance record: members, threshold, policy, the genesis validators
    /// and parameters.
    ///
    /// Panics if the genesis is invalid (a validated genesis never is).
    pub fn governance_record(&self) -> Governance {
        self.build_governance()
            .unwrap_or_else(|e| panic!("governance_record() on an invalid genesis: {e}"))
    }

    /// The initial permission entries: `transact` for each account in
    /// `governance.transact`, in file order.
    pub fn initial_permissions(&self) -> Vec<(Address, Permissions)> {
        self.governance
            .transact
            .iter()
            .map(|a| (*a, Permissions::default().with(Permission::Transact)))
            .collect()
    }

    /// Writes the genesis block and the whole initial state (accounts, permissions,
    /// governance record) to a new store; no-op if this genesis is already stored.
    ///
    /// Errors: as [`Store::init_genesis_state`] (e.g. [`LedgerError::GenesisMismatch`]).
    ///
    /// With `generated_accounts`, the generated accounts are derived on every core and
    /// written in bounded batches first ([`Genesis::init_store_with_progress`]); a store
    /// that already holds this genesis (its block 0 names [`Genesis::hash`] as parent) is
    /// not derived again.
    pub fn init_store(&self, store: &Store) -> Result<(), LedgerError> {
        self.init_store_with_progress(store, &mut |_, _| {})
    }

    /// [`Genesis::init_store`], calling `progress(done, count)` after each step of
    /// [`GENERATED_ACCOUNTS_STEP`] generated accounts written (never without them). The
    /// generated accounts are then compacted ([`Store::compact_accounts`]) before the genesis
    /// block is written.
    ///
    /// Errors: as [`Genesis::init_store`]; [`LedgerError::Malformed`] if a generated account
    /// is also listed in `accounts`; [`LedgerError::GenesisMismatch`] if the store holds
    /// another genesis.
    pub fn init_store_with_progress(
        &self,
        store: &Store,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<(), LedgerError> {
        let Some(generated) = &self.generated_accounts else {
            return self.init_store_listed(store);
        };
        let genesis_hash = self.hash();
        if let Some(stored) = store.block_by_height(0)? {
            // The genesis hash covers the generated section, so it fixes the state: the
            // stored genesis is this one if it names this hash.
            return if stored.header.parent_hash == genesis_hash {
                Ok(())
            } else {
                Err(LedgerError::GenesisMismatch {
                    expected: genesis_hash,
                    found: stored.header.parent_hash,
                })
            };
        }
        let listed: std::collections::HashSet<Address> =
            self.accounts.iter().map(|a| a.address).collect();
        let threads = derive_threads();
        let mut bulk = LtHash::zero();
        let mut from = 0;
        while from < generated.count {
            let to = (from + GENERATED_ACCOUNTS_STEP).min(generated.count);
            let (accounts, h) = generated.derive_range(from..to, threads);
            if let Some((a, _)) = accounts.iter().find(|(a, _)| listed.contains(a)) {
                return Err(LedgerError::Malformed {
                    what: "genesis",
                    reason: format!("account {a} is both listed and generated"),
                });
            }
            store.put_genesis_accounts(&accounts)?;
            bulk.add(&h);
            from = to;
            progress(to, generated.count);
        }
        // Millions of accounts written in random key order leave a deep stack of overlapping
        // files: reads cost about twice as much until RocksDB has compacted them, and that
        // compaction would run during the chain's first blocks (measured: docs/scaling.md,
        // "State size"). Paid here instead, once.
        store.compact_accounts();
        let accounts = self.initial_accounts();
        let permissions = self.initial_permissions();
        let governance = self.governance_record();
        let state = InitialState {
            accounts: &accounts,
            permissions: &permissions,
            governance: Some(&governance),
        };
        let mut lthash = state.lthash();
        lthash.add(&bulk);
        store.init_genesis_state_bulk(&self.genesis_block_with_root(lthash.root()), state, &bulk)
    }

    fn init_store_listed(&self, store: &Store) -> Result<(), LedgerError> {
        let accounts = self.initial_accounts();
        let permissions = self.initial_permissions();
        let governance = self.governance_record();
        store.init_genesis_state(
            &self.genesis_block(),
            InitialState {
                accounts: &accounts,
                permissions: &permissions,
                governance: Some(&governance),
            },
        )
    }

    fn validate_validators(&self) -> Result<(), GenesisError> {
        if self.validators.is_empty() {
            return Err(GenesisError::NoValidators);
        }
        if self.validators.len() > VALIDATORS_MAX {
            return Err(GenesisError::TooManyValidators {
                count: self.validators.len(),
                max: VALIDATORS_MAX,
            });
        }
        let mut names: HashMap<&str, usize> = HashMap::new();
        let mut keys: HashMap<Address, usize> = HashMap::new();
        let mut peers: HashMap<libp2p_identity::PeerId, usize> = HashMap::new();
        let mut total: u64 = 0;
        for (index, v) in self.validators.iter().enumerate() {
            validate_validator_name(index, &v.name)?;
            check_consensus_key(index, v)?;
            let peer = parse_peer_id(index, v)?;
            if v.voting_power == 0 {
                return Err(GenesisError::ZeroVotingPower {
                    index,
                    name: v.name.clone(),
                });
            }
            if let Some(&first) = names.get(v.name.as_str()) {
                return Err(GenesisError::DuplicateValidatorName {
                    index,
                    first,
                    name: v.name.clone(),
                });
            }
            names.insert(&v.name, index);
            if let Some(&first) = keys.get(&v.consensus_key) {
                return Err(GenesisError::DuplicateConsensusKey {
                    index,
                    first,
                    name: v.name.clone(),
                    key: v.consensus_key,
                });
            }
            keys.insert(v.consensus_key, index);
            if let Some(&first) = peers.get(&peer) {
                return Err(GenesisError::DuplicatePeerId {
                    index,
                    first,
                    name: v.name.clone(),
                    peer_id: v.peer_id.clone(),
                });
            }
            peers.insert(peer, index);
            total = total.checked_add(v.voting_power).ok_or_else(|| {
                GenesisError::VotingPowerOverflow {
                    index,
                    name: v.name.clone(),
                }
            })?;
        }
        Ok(())
    }

    fn validate_accounts(&self) -> Result<(), GenesisError> {
        let mut seen: HashMap<Address, usize> = HashMap::with_capacity(self.accounts.len());
        let mut total: u64 = 0;
        for (index, a) in self.accounts.iter().enumerate() {
            if let Some(&first) = seen.get(&a.address) {
                return Err(GenesisError::DuplicateAccount {
                    index,
                    first,
                    address: a.address,
                });
            }
            seen.insert(a.address, index);
            if a.balance == 0 {
                return Err(GenesisError::ZeroBalance {
                    index,
                    address: a.address,
                });
            }
            total = total
                .checked_add(a.balance)
                .ok_or(GenesisError::BalanceOverflow {
                    index,
                    address: a.address,
                })?;
        }
        Ok(())
    }

    fn validate_generated(&self) -> Result<(), GenesisError> {
        let Some(g) = &self.generated_accounts else {
            return Ok(());
        };
        if g.count == 0 || g.count > GENERATED_ACCOUNTS_MAX {
            return Err(GenesisError::GeneratedAccountsCount {
                count: g.count,
                max: GENERATED_ACCOUNTS_MAX,
            });
        }
        if g.balance == 0 {
            return Err(GenesisError::GeneratedAccountsZeroBalance);
        }
        let listed: u64 = self.accounts.iter().map(|a| a.balance).sum();
        if g.count
            .checked_mul(g.balance)
            .and_then(|t| t.checked_add(listed))
            .is_none()
        {
            return Err(GenesisError::GeneratedAccountsBalanceOverflow {
                count: g.count,
                balance: g.balance,
            });
        }
        Ok(())
    }

    fn build_validator_set(&self) -> Result<cairn_consensus::ValidatorSet, GenesisError> {
        let validators = self
            .validators
            .iter()
            .enumerate()
            .map(|(index, v)| {
                Ok(cairn_consensus::Validator {
                    public_key: check_consensus_key(index, v)?,
                    voting_power: v.voting_power,
                })
            })
            .collect::<Result<Vec<_>, GenesisError>>()?;
        cairn_consensus::ValidatorSet::new(validators).map_err(|e| GenesisError::ValidatorSet {
            reason: e.to_string(),
        })
    }

    /// The genesis hash: blake3 derive-key ([`GENESIS_HASH_CONTEXT`]) of the borsh encoding
    /// of the canonical genesis (accounts sorted by address, everything else as is). See
    /// the crate docs for the exact layout. Independent of JSON formatting, key order and
    /// account order.
    pub fn hash(&self) -> Hash {
        let mut canonical = self.clone();
        canonical.accounts.sort_by_key(|a| a.address);
        canonical.governance.members.sort();
        canonical.governance.transact.sort();
        let mut bytes = borsh::to_vec(&canonical).expect("borsh to Vec never fails");
        if let Some(g) = &self.generated_accounts {
            // Appended after the rest: a genesis without the section hashes as before, and
            // the borsh encoding above is self-delimiting, so no two files share bytes.
            g.serialize(&mut bytes).expect("borsh to Vec never fails");
        }
        Hash::derive(GENESIS_HASH_CONTEXT, &[&bytes])
    }

    /// The initial consensus validator set, in file order.
    ///
    /// Panics if the genesis is invalid (a value from [`Genesis::from_json`] or
    /// [`Genesis::load`] never is, since validation builds the same set).
    pub fn validator_set(&self) -> cairn_consensus::ValidatorSet {
        self.build_validator_set()
            .unwrap_or_else(|e| panic!("validator_set() on an invalid genesis: {e}"))
    }

    /// The funded accounts with their initial state (balance as given, nonce 0), in file
    /// order.
    pub fn initial_accounts(&self) -> Vec<(Address, Account)> {
        self.accounts
            .iter()
            .map(|a| {
                (
                    a.address,
                    Account {
                        balance: a.balance,
                        nonce: 0,
                    },
                )
            })
            .collect()
    }

    /// The genesis state root: [`LtHash`] summed over [`Genesis::initial_accounts`],
    /// [`Genesis::initial_permissions`] and [`Genesis::governance_record`], compressed with
    /// `root()`.
    pub fn state_root(&self) -> Hash {
        self.state_lthash().root()
    }

    /// The lattice state hash of the initial state (the parent lthash of block 1).
    ///
    /// With `generated_accounts` this derives every generated account (on every core,
    /// bounded memory): seconds per million accounts.
    pub fn state_lthash(&self) -> LtHash {
        let accounts = self.initial_accounts();
        let permissions = self.initial_permissions();
        let governance = self.governance_record();
        let mut h = InitialState {
            accounts: &accounts,
            permissions: &permissions,
            governance: Some(&governance),
        }
        .lthash();
        if let Some(g) = &self.generated_accounts {
            h.add(&g.lthash());
        }
        h
    }

    /// The genesis block: height 0, view 0, `parent_hash` = [`Genesis::hash`], proposer
    /// [`Address::default`] (all zero), `timestamp_ms` = `genesis_time_ms`, no
    /// transactions (`txs_root` of the empty list) and `state_root` =
    /// [`Genesis::state_root`].
    ///
    /// With `generated_accounts` this derives them all ([`Genesis::state_lthash`]).
    pub fn genesis_block(&self) -> Block {
        self.genesis_block_with_root(self.state_root())
    }

    fn genesis_block_with_root(&self, state_root: Hash) -> Block {
        Block {
            header: BlockHeader {
                chain_id: self.chain_id.clone(),
                height: 0,
                view: 0,
                parent_hash: self.hash(),
                proposer: Address::default(),
                timestamp_ms: self.genesis_time_ms,
                txs_root: txs_root(&[]),
                signed_txs_root: cairn_ledger::signed_txs_root_of(&[]),
                state_root,
            },
            transactions: Vec::new(),
        }
    }

    /// The validator whose `peer_id` is `peer_id` (exact string match against the
    /// canonical base58 form), if any.
    pub fn validator_by_peer_id(&self, peer_id: &str) -> Option<&GenesisValidator> {
        self.validators.iter().find(|v| v.peer_id == peer_id)
    }

    /// The validator whose consensus key is `key`, with its index, if any.
    pub fn validator_by_consensus_key(&self, key: &Address) -> Option<(usize, &GenesisValidator)> {
        self.validators
            .iter()
            .enumerate()
            .find(|(_, v)| v.consensus_key == *key)
    }
}

fn json_error(e: serde_json::Error) -> GenesisError {
    let message = e.to_string();
    let (line, column) = (e.line(), e.column());
    if let Some(rest) = message.strip_prefix("unknown field `") {
        if let Some(end) = rest.find('`') {
            return GenesisError::UnknownField {
                field: rest[..end].to_string(),
                line,
                column,
                message,
            };
        }
    }
    GenesisError::Json {
        line,
        column,
        message,
    }
}

fn validate_chain_id(chain_id: &str) -> Result<(), GenesisError> {
    if chain_id.is_empty() {
        return Err(GenesisError::EmptyChainId);
    }
    if chain_id.len() > CHAIN_ID_BYTES_MAX {
        return Err(GenesisError::ChainIdTooLong {
            chain_id: chain_id.to_string(),
            len: chain_id.len(),
            max: CHAIN_ID_BYTES_MAX,
        });
    }
    if let Some((position, ch)) = chain_id
        .char_indices()
        .find(|&(_, c)| !matches!(c, 'a'..='z' | '0'..='9' | '-' | '_' | '.'))
    {
        return Err(GenesisError::ChainIdInvalidChar {
            chain_id: chain_id.to_string(),
            ch,
            position,
        });
    }
    Ok(())
}

fn validate_validator_name(index: usize, name: &str) -> Result<(), GenesisError> {
    let bad = |reason: String| GenesisError::InvalidValidatorName {
        index,
        name: name.to_string(),
        reason,
    };
    if name.is_empty() {
        return Err(bad("empty".into()));
    }
    if name.len() > VALIDATOR_NAME_BYTES_MAX {
        return Err(bad(format!(
            "{} bytes, more than the limit of {VALIDATOR_NAME_BYTES_MAX}",
            name.len()
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(bad(format!(
            "invalid character {c:?}; allowed: A-Z a-z 0-9 - _ ."
        )));
    }
    Ok(())
}

fn check_consensus_key(
    index: usize,
    v: &GenesisValidator,
) -> Result<ed25519_dalek::VerifyingKey, GenesisError> {
    let bad = |reason: &str| GenesisError::BadConsensusKey {
        index,
        name: v.name.clone(),
        key: v.consensus_key,
        reason: reason.to_string(),
    };
    let key = ed25519_dalek::VerifyingKey::from_bytes(&v.consensus_key.0)
        .map_err(|_| bad("not a valid ed25519 point"))?;
    if key.is_weak() {
        return Err(bad("weak key (small-order point)"));
    }
    Ok(key)
}

fn parse_peer_id(
    index: usize,
    v: &GenesisValidator,
) -> Result<libp2p_identity::PeerId, GenesisError> {
    let bad = |reason: String| GenesisError::BadPeerId {
        index,
        name: v.name.clone(),
        peer_id: v.peer_id.clone(),
        reason,
    };
    let peer = libp2p_identity::PeerId::from_str(&v.peer_id).map_err(|e| bad(e.to_string()))?;
    if peer.to_base58() != v.peer_id {
        return Err(bad(format!(
            "not in canonical form (expected `{}`)",
            peer.to_base58()
        )));
    }
    Ok(peer)
}

#[cfg(test)]
mod tests;
