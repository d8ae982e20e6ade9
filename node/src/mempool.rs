//! The transaction pool: verified transactions waiting to be proposed.
//!
//! The node verifies every transaction's signature
//! ([`cairn_ledger::SignedTransaction::verify`]) *before* [`Mempool::insert`]; the mempool
//! never re-verifies. It checks everything that depends on state (nonce window,
//! affordability, expiry) and enforces its bounds.
//!
//! # Bounds
//!
//! - at most [`MempoolConfig::txs_max`] transactions and [`MempoolConfig::bytes_max`] bytes,
//!   where a transaction's size is its encoded length
//!   ([`cairn_ledger::SignedTransaction::encode`], at most [`TX_BYTES_MAX`]). A full pool
//!   rejects ([`MempoolError::Full`]); it never evicts silently.
//! - per sender, only nonces in `account_nonce ..= account_nonce + sender_future_max`
//!   are admitted, so one sender holds at most `sender_future_max + 1` live entries.
//! - one transaction per `(sender, nonce)`: no replace-by-fee (a second, different
//!   transaction with a pooled `(sender, nonce)` is rejected as [`MempoolError::Duplicate`];
//!   [`Mempool::pooled_hash`] names the pooled one). A stuck transaction leaves the pool
//!   when it expires.
//! - a transaction behind a nonce gap (some lower nonce of its sender is neither executed
//!   nor pooled, e.g. refused when the pool was full) cannot execute until the gap fills;
//!   [`Mempool::evict_gapped`] drops those that waited [`GAP_GRACE_BLOCKS`], so they do not
//!   hold the pool until their expiry.
//!
//! # Data structures
//!
//! `by_hash` (`HashMap<Hash, Box<Entry>>`) owns the transactions; `by_sender`
//! (`HashMap<Address, SenderQueue>`) orders each sender's transactions by nonce
//! (`BTreeMap<nonce, Pooled>`), keeping each one's hash and cost (`amount + fee`) beside
//! its nonce and the sum of those costs, so the affordability check of
//! [`Mempool::insert`] reads only the sender's queue; `by_expiry`
//! (`BTreeSet<(expiry_height, Hash)>`) makes expiry pruning proportional to what it
//! removes. `bytes` is the sum of the pooled encoded lengths. All three indices always hold
//! exactly the same transactions: every transaction enters through [`Mempool::insert`] and
//! leaves through [`Mempool::remove`], which keep them (and the cost sums) in step.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque, btree_map};

use cairn_ledger::{
    Address, BlockBuilder, Hash, LedgerError, StateReader, TX_BYTES_MAX, VerifiedTx,
};

/// Blocks a transaction may wait behind a nonce gap before [`Mempool::evict_gapped`] drops
/// it (seconds to a minute at this chain's block rates).
pub const GAP_GRACE_BLOCKS: u64 = 64;

/// Most transactions [`Mempool::new`] reserves room for in its hash index up front
/// (`min(txs_max, this)`); a larger pool grows the index as it fills (`txs_max` may be up
/// to 10,000,000, whose table alone would reserve 656 MiB).
///
/// Reserving avoids rehashing the index, with the page faults of each new, larger table,
/// while the pool fills under load. The cost: the table for 100,000 entries (the default
/// `mempool_txs_max`) has 131,072 buckets of 40 bytes (a hash and a `Box<Entry>`) plus one
/// control byte each, 5.1 MiB of address space, whatever the pool holds. Only the control
/// bytes (128 KiB) are written at once; a bucket's page is touched when an entry first
/// lands on it, so a lightly used pool touches most of the 5.1 MiB, where a growing table
/// would stay smaller. The entries themselves (416 bytes each on x86-64 today) are
/// allocated one by one as transactions arrive and freed as they leave. Inline entries
/// would make the reserved table 52 MiB, most of it touched by a few tens of thousands of
/// transactions spread over it. Smaller `txs_max` reserve proportionally less.
pub const PRESIZE_TXS_MAX: usize = 100_000;

/// Share of the mempool's bounds (percent) that transactions submitted to this node over RPC
/// may fill; the rest is kept for transactions gossiped by other validators.
///
/// Why: a leader proposes from its own pool, and a validator rebuilds the proposal from its
/// pool (compact blocks). If RPC submissions could fill every pool to the brim, each pool
/// would hold a different set under overload, a full pool would drop the transactions other
/// validators gossip, and nearly every proposal would have to be fetched and its signatures
/// checked on the critical path: issue 17 measured 20 of 26 blocks fetched and the chain
/// finalizing half its capacity at twice the saturation rate. With the headroom, local
/// admission stops first everywhere while gossip still fits, so pools converge on the same
/// transactions.
pub const LOCAL_SHARE_PERCENT: usize = 75;

/// Bounds of a [`Mempool`]. Usually taken from the chain parameters
/// ([`MempoolConfig::from_params`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MempoolConfig {
    /// Most transactions pooled at once; ≥ 1.
    pub txs_max: usize,
    /// Most bytes pooled at once (sum of encoded transaction lengths); ≥ [`TX_BYTES_MAX`].
    pub bytes_max: usize,
    /// How far ahead of its account nonce a sender's transaction may be: admitted iff
    /// `nonce <= account_nonce + sender_future_max`; ≥ 1.
    pub sender_future_max: usize,
}

impl MempoolConfig {
    /// The mempool bounds of the chain parameters (`mempool_txs_max`, `mempool_bytes_max`,
    /// `mempool_sender_future_max`), saturating at `usize::MAX` on narrow targets.
    pub fn from_params(params: &cairn_genesis::ChainParams) -> MempoolConfig {
        let size = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        MempoolConfig {
            txs_max: size(params.mempool_txs_max),
            bytes_max: size(params.mempool_bytes_max),
            sender_future_max: size(params.mempool_sender_future_max),
        }
    }

    /// Checks the bounds: `txs_max ≥ 1`, `bytes_max ≥ TX_BYTES_MAX` (room for one
    /// transaction), `sender_future_max ≥ 1`.
    ///
    /// Errors: [`MempoolError::InvalidConfig`] naming the first bad field.
    pub fn validate(&self) -> Result<(), MempoolError> {
        let bad = |field: &'static str, reason: String| {
            Err(MempoolError::InvalidConfig { field, reason })
        };
        if self.txs_max == 0 {
            return bad("txs_max", "must be at least 1".into());
        }
        if self.bytes_max < TX_BYTES_MAX {
            return bad(
                "bytes_max",
                format!(
                    "{} is less than one transaction ({TX_BYTES_MAX} bytes)",
                    self.bytes_max
                ),
            );
        }
        if self.sender_future_max == 0 {
            return bad("sender_future_max", "must be at least 1".into());
        }
        Ok(())
    }
}

impl Default for MempoolConfig {
    /// The bounds of [`cairn_genesis::ChainParams::default`].
    fn default() -> Self {
        MempoolConfig::from_params(&cairn_genesis::ChainParams::default())
    }
}

/// Why [`Mempool::insert`] (or [`MempoolConfig::validate`]) refused.
///
/// Only [`MempoolError::WrongChain`] is a peer's fault ([`MempoolError::is_peer_fault`]);
/// the others depend on state or on the pool's occupancy and may be valid elsewhere or later.
/// The per-sender nonce window: transaction `tx` with `nonce` is admissible only if
/// `account_nonce <= nonce <= account_nonce + future_max`. The mempool's own check, also run
/// by the RPC server before any signature check (the sender's nonce only grows, so a
/// transaction it refuses as stale stays refused; one too far ahead may be sent again later).
///
/// Errors: [`MempoolError::StaleNonce`], [`MempoolError::TooFarAhead`].
pub fn check_nonce_window(
    tx: Hash,
    account_nonce: u64,
    nonce: u64,
    future_max: u64,
) -> Result<(), MempoolError> {
    if nonce < account_nonce {
        return Err(MempoolError::StaleNonce {
            tx,
            account_nonce,
            got: nonce,
        });
    }
    let max = account_nonce.saturating_add(future_max);
    if nonce > max {
        return Err(MempoolError::TooFarAhead {
            tx,
            account_nonce,
            got: nonce,
            max,
        });
    }
    Ok(())
}

#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum MempoolError {
    /// Already pooled (or already finalized, when the caller checks that): the same
    /// transaction, or another transaction with the same sender and nonce (no
    /// replace-by-fee; [`Mempool::pooled_hash`] finds that one).
    #[error(
        "transaction {tx}: already pooled, or another transaction with its sender and nonce is"
    )]
    Duplicate {
        /// The refused transaction.
        tx: Hash,
    },
    /// The nonce was already used: `got < account_nonce`.
    #[error("transaction {tx}: nonce {got} already used (account nonce is {account_nonce})")]
    StaleNonce {
        /// The refused transaction.
        tx: Hash,
        /// The sender's nonce in the state the next block builds on.
        account_nonce: u64,
        /// The transaction's nonce.
        got: u64,
    },
    /// The nonce is beyond the sender's window: `got > max = account_nonce + sender_future_max`.
    #[error(
        "transaction {tx}: nonce {got} is too far ahead of account nonce {account_nonce} (at most {max})"
    )]
    TooFarAhead {
        /// The refused transaction.
        tx: Hash,
        /// The sender's nonce in the state the next block builds on.
        account_nonce: u64,
        /// The transaction's nonce.
        got: u64,
        /// Highest nonce admitted now.
        max: u64,
    },
    /// The sender cannot pay `amount + fee` of this transaction on top of its pooled
    /// lower-nonce transactions: `needed` (their sum, in u128) exceeds `balance`.
    #[error(
        "transaction {tx}: needs {needed} with the sender's pooled transactions, balance is {balance}"
    )]
    InsufficientBalance {
        /// The refused transaction.
        tx: Hash,
        /// The sender's balance in the state the next block builds on.
        balance: u64,
        /// `amount + fee` of this and the pooled transactions it must follow.
        needed: u128,
    },
    /// Cannot be included in the next block: `expiry_height < height`.
    #[error("transaction {tx}: expired at height {expiry_height}, next block is {height}")]
    Expired {
        /// The refused transaction.
        tx: Hash,
        /// Its last includable height.
        expiry_height: u64,
        /// Height of the next block.
        height: u64,
    },
    /// For another chain.
    #[error("transaction {tx}: chain id `{got}`, expected `{expected}`")]
    WrongChain {
        /// The refused transaction.
        tx: Hash,
        /// This node's chain id.
        expected: String,
        /// The transaction's chain id.
        got: String,
    },
    /// Admitting the transaction would exceed the count or byte bound.
    #[error("mempool full: {txs}/{txs_max} transactions, {bytes}/{bytes_max} bytes")]
    Full {
        /// Transactions pooled now.
        txs: usize,
        /// Bytes pooled now.
        bytes: usize,
        /// The count bound.
        txs_max: usize,
        /// The byte bound.
        bytes_max: usize,
    },
    /// Reading the sender's account failed (a storage failure; fatal for the node).
    #[error("transaction {tx}: cannot read sender state: {error}")]
    State {
        /// The transaction being admitted.
        tx: Hash,
        /// The reader's error.
        error: LedgerError,
    },
    /// Under the `permissioned` accounts policy, the sender of a transfer does not hold
    /// `transact`.
    #[error("transaction {tx}: {sender} may not send transfers (no transact permission)")]
    NotPermitted {
        /// The refused transaction.
        tx: Hash,
        /// Its sender.
        sender: cairn_ledger::Address,
    },
    /// The sender of a governance transaction is not a governance member.
    #[error("transaction {tx}: {sender} is not a governance member")]
    NotMember {
        /// The refused transaction.
        tx: Hash,
        /// Its sender.
        sender: cairn_ledger::Address,
    },
    /// A [`MempoolConfig`] bound is invalid.
    #[error("invalid mempool config: {field} {reason}")]
    InvalidConfig {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

impl MempoolError {
    /// Stable snake_case code for RPC and metrics: `duplicate`, `stale_nonce`,
    /// `too_far_ahead`, `insufficient_balance`, `expired`, `wrong_chain`, `mempool_full`,
    /// `state_unavailable`, `not_permitted`, `not_member`, `invalid_config`.
    pub fn code(&self) -> &'static str {
        match self {
            MempoolError::Duplicate { .. } => "duplicate",
            MempoolError::StaleNonce { .. } => "stale_nonce",
            MempoolError::TooFarAhead { .. } => "too_far_ahead",
            MempoolError::InsufficientBalance { .. } => "insufficient_balance",
            MempoolError::Expired { .. } => "expired",
            MempoolError::WrongChain { .. } => "wrong_chain",
            MempoolError::Full { .. } => "mempool_full",
            MempoolError::State { .. } => "state_unavailable",
            MempoolError::NotPermitted { .. } => "not_permitted",
            MempoolError::NotMember { .. } => "not_member",
            MempoolError::InvalidConfig { .. } => "invalid_config",
        }
    }

    /// True if the transaction is invalid everywhere, so a peer that gossiped it is at
    /// fault: only [`MempoolError::WrongChain`]. State-dependent refusals are not.
    pub fn is_peer_fault(&self) -> bool {
        matches!(self, MempoolError::WrongChain { .. })
    }

    /// The refused transaction's hash (`None` for [`MempoolError::Full`] and
    /// [`MempoolError::InvalidConfig`]).
    pub fn tx(&self) -> Option<Hash> {
        match self {
            MempoolError::Duplicate { tx, .. }
            | MempoolError::StaleNonce { tx, .. }
            | MempoolError::TooFarAhead { tx, .. }
            | MempoolError::InsufficientBalance { tx, .. }
            | MempoolError::Expired { tx, .. }
            | MempoolError::WrongChain { tx, .. }
            | MempoolError::NotPermitted { tx, .. }
            | MempoolError::NotMember { tx, .. }
            | MempoolError::State { tx, .. } => Some(*tx),
            MempoolError::Full { .. } | MempoolError::InvalidConfig { .. } => None,
        }
    }
}

struct Entry {
    tx: VerifiedTx,
    /// Encoded length.
    bytes: usize,
    /// Arrival order (for fair interleaving of senders in [`Mempool::reap`]).
    seq: u64,
    /// Height of the block the pool was filling when this arrived (`next_height` at insert).
    admitted_height: u64,
}

/// A pooled transaction as its sender's queue holds it: its hash and its cost (`amount +
/// fee`, [`cairn_ledger::TransactionBody::spend`]), so the affordability check needs no
/// `by_hash` lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Pooled {
    hash: Hash,
    cost: u128,
}

/// One sender's pooled transactions by nonce, and the sum of their costs.
#[derive(Debug, Default)]
struct SenderQueue {
    txs: BTreeMap<u64, Pooled>,
    /// Sum of `cost` over `txs`. At most `(sender_future_max + 1) · 2 · u64::MAX` in
    /// practice, and never more than `txs.len() · 2 · u64::MAX`: no overflow in u128.
    cost_sum: u128,
}

impl SenderQueue {
    /// Sum of the costs of the pooled nonces in `from..to`. Panics unless `from <= to`.
    ///
    /// Sums whichever is shorter, that range or the rest of the queue (subtracted from
    /// `cost_sum`), stepping through both at once: work is proportional to the smaller of
    /// the two, so a deep queue filled in nonce order costs O(1) per insert, not O(depth).
    fn cost_in(&self, from: u64, to: u64) -> u128 {
        let mut inside = self.txs.range(from..to).map(|(_, p)| p.cost);
        let mut outside = self
            .txs
            .range(..from)
            .chain(self.txs.range(to..))
            .map(|(_, p)| p.cost);
        let (mut sum_in, mut sum_out) = (0u128, 0u128);
        loop {
            let Some(cost) = inside.next() else {
                return sum_in;
            };
            sum_in += cost;
            let Some(cost) = outside.next() else {
                // `sum_out` is the whole rest of the queue.
                return self.cost_sum - sum_out;
            };
            sum_out += cost;
        }
    }

    /// Adds a transaction at a nonce not pooled yet.
    fn insert(&mut self, nonce: u64, pooled: Pooled) {
        let replaced = self.txs.insert(nonce, pooled);
        debug_assert!(replaced.is_none(), "one transaction per (sender, nonce)");
        self.cost_sum += pooled.cost;
    }

    /// Removes the transaction at `nonce`, if any.
    fn remove(&mut self, nonce: u64) -> Option<Pooled> {
        let pooled = self.txs.remove(&nonce)?;
        self.cost_sum -= pooled.cost;
        Some(pooled)
    }
}

/// A bounded pool of signature-verified transactions. See the [module docs](self) for the
/// bounds and data structures. Not thread-safe by itself: the node owns it behind a lock.
pub struct Mempool {
    config: MempoolConfig,
    /// Boxed: the table moves and reserves 40-byte buckets, not whole transactions
    /// ([`PRESIZE_TXS_MAX`]).
    by_hash: HashMap<Hash, Box<Entry>>,
    by_sender: HashMap<Address, SenderQueue>,
    by_expiry: BTreeSet<(u64, Hash)>,
    bytes: usize,
    next_seq: u64,
}

impl Mempool {
    /// An empty pool with these bounds. The config should pass [`MempoolConfig::validate`];
    /// an invalid one does not panic (a zero bound simply admits nothing).
    ///
    /// Reserves room for `min(txs_max, PRESIZE_TXS_MAX)` transactions in the hash index
    /// ([`PRESIZE_TXS_MAX`] states the memory); that costs one allocation of at most
    /// 5.1 MiB and writing one control byte per bucket (128 KiB at the default bound), so
    /// pools stay cheap to make.
    pub fn new(config: MempoolConfig) -> Mempool {
        Mempool {
            config,
            by_hash: HashMap::with_capacity(config.txs_max.min(PRESIZE_TXS_MAX)),
            by_sender: HashMap::new(),
            by_expiry: BTreeSet::new(),
            bytes: 0,
            next_seq: 0,
        }
    }

    /// The bounds this pool enforces.
    pub fn config(&self) -> &MempoolConfig {
        &self.config
    }

    /// Replaces the bounds (a governance `set_params`). Nothing pooled is dropped: a pool
    /// above a lowered bound admits nothing until removals bring it below (and a sender's
    /// transactions beyond a lowered `sender_future_max` stay until included or expired).
    /// The config should pass [`MempoolConfig::validate`].
    pub fn set_config(&mut self, config: MempoolConfig) {
        self.config = config;
    }

    /// Admits a transaction whose signature the caller has verified. Returns its hash.
    ///
    /// `state` is the state the next block will build on and `next_height` that block's
    /// height. Checks, in order: chain id, duplicate hash, expiry (`next_height <=
    /// expiry_height`), nonce window (`account_nonce <= nonce <= account_nonce +
    /// sender_future_max`), one transaction per `(sender, nonce)`, affordability (`amount +
    /// fee` of this transaction plus that of the sender's pooled transactions with nonces in
    /// `account_nonce..nonce`, summed in u128, `<= balance`), who may send (a transfer under
    /// the `permissioned` policy needs `transact`; a governance transaction needs a member),
    /// then the count and byte bounds.
    /// Reads the sender's account once.
    ///
    /// Admitting a lower nonce never evicts higher pooled ones, even if they become
    /// unaffordable: [`Mempool::reap`] skips what fails and expiry removes it.
    ///
    /// Errors: [`MempoolError::WrongChain`], [`MempoolError::Duplicate`],
    /// [`MempoolError::Expired`], [`MempoolError::StaleNonce`],
    /// [`MempoolError::TooFarAhead`], [`MempoolError::InsufficientBalance`],
    /// [`MempoolError::Full`], [`MempoolError::State`]. On error the pool is unchanged.
    pub fn insert(
        &mut self,
        tx: VerifiedTx,
        state: &dyn StateReader,
        chain_id: &str,
        next_height: u64,
    ) -> Result<Hash, MempoolError> {
        // The id was computed once, when the transaction entered this node.
        let hash = tx.id();
        let body = &tx.tx().body;
        if body.chain_id != chain_id {
            return Err(MempoolError::WrongChain {
                tx: hash,
                expected: chain_id.to_string(),
                got: body.chain_id.clone(),
            });
        }
        if self.by_hash.contains_key(&hash) {
            return Err(MempoolError::Duplicate { tx: hash });
        }
        if body.expiry_height < next_height {
            return Err(MempoolError::Expired {
                tx: hash,
                expiry_height: body.expiry_height,
                height: next_height,
            });
        }
        let account = state
            .account(&body.sender)
            .map_err(|error| MempoolError::State { tx: hash, error })?;
        let future_max = u64::try_from(self.config.sender_future_max).unwrap_or(u64::MAX);
        check_nonce_window(hash, account.nonce, body.nonce, future_max)?;
        // Who may send: cheap state reads (the governance record is held in memory), so a
        // refused sender costs no pool space. Execution checks the same rules again.
        let governance = state
            .governance()
            .map_err(|error| MempoolError::State { tx: hash, error })?;
        if let Some(g) = governance {
            let sender = body.sender;
            match &body.action {
                cairn_ledger::Action::Transfer { .. } => {
                    // Open chains (the common case) read no permissions.
                    let permitted = g.accounts == cairn_ledger::governance::AccountsPolicy::Open
                        || g.may_transact(
                            state
                                .permissions(&sender)
                                .map_err(|error| MempoolError::State { tx: hash, error })?,
                        );
                    if !permitted {
                        return Err(MempoolError::NotPermitted { tx: hash, sender });
                    }
                }
                _ if !g.is_member(&sender) => {
                    return Err(MempoolError::NotMember { tx: hash, sender });
                }
                _ => {}
            }
        }
        let cost = body.spend();
        let mut needed = cost;
        if let Some(queue) = self.by_sender.get(&body.sender) {
            if queue.txs.contains_key(&body.nonce) {
                return Err(MempoolError::Duplicate { tx: hash });
            }
            // Pooled nonces in `account.nonce..body.nonce` (`account.nonce <= body.nonce`
            // was checked above), from the sender's queue alone.
            needed += queue.cost_in(account.nonce, body.nonce);
        }
        if needed > u128::from(account.balance) {
            return Err(MempoolError::InsufficientBalance {
                tx: hash,
                balance: account.balance,
                needed,
            });
        }
        let bytes = borsh::object_length(tx.tx()).expect("counting borsh length never fails");
        if self.by_hash.len() >= self.config.txs_max
            || self.bytes.saturating_add(bytes) > self.config.bytes_max
        {
            return Err(MempoolError::Full {
                txs: self.by_hash.len(),
                bytes: self.bytes,
                txs_max: self.config.txs_max,
                bytes_max: self.config.bytes_max,
            });
        }

        self.by_sender
            .entry(body.sender)
            .or_default()
            .insert(body.nonce, Pooled { hash, cost });
        self.by_expiry.insert((body.expiry_height, hash));
        self.bytes += bytes;
        let seq = self.next_seq;
        self.next_seq += 1;
        self.by_hash.insert(
            hash,
            Box::new(Entry {
                tx,
                bytes,
                seq,
                admitted_height: next_height,
            }),
        );
        Ok(hash)
    }

    /// True if the pool cannot take one more transaction of the largest size
    /// ([`TX_BYTES_MAX`]): at the count bound, or fewer than that many bytes left.
    pub fn is_full(&self) -> bool {
        self.by_hash.len() >= self.config.txs_max
            || self.config.bytes_max.saturating_sub(self.bytes) < TX_BYTES_MAX
    }

    /// The count and byte bounds for transactions submitted to this node (RPC):
    /// [`LOCAL_SHARE_PERCENT`] of `txs_max` and `bytes_max`, at least one transaction.
    pub fn local_bounds(&self) -> (usize, usize) {
        let share = |v: usize| v / 100 * LOCAL_SHARE_PERCENT + v % 100 * LOCAL_SHARE_PERCENT / 100;
        (
            share(self.config.txs_max).max(1),
            share(self.config.bytes_max).max(TX_BYTES_MAX),
        )
    }

    /// True if the pool takes no more transactions submitted to this node: it holds
    /// [`Self::local_bounds`] or more (or cannot take a largest transaction within them).
    /// Gossiped transactions are still taken up to the full bounds ([`Self::is_full`]).
    pub fn is_full_for_local(&self) -> bool {
        let (txs_max, bytes_max) = self.local_bounds();
        self.by_hash.len() >= txs_max || bytes_max.saturating_sub(self.bytes) < TX_BYTES_MAX
    }

    /// `Err(Full)` (with the local bounds) if [`Self::is_full_for_local`]: the refusal of a
    /// transaction submitted to this node, decided before any other check.
    pub fn check_local_room(&self) -> Result<(), MempoolError> {
        if !self.is_full_for_local() {
            return Ok(());
        }
        let (txs_max, bytes_max) = self.local_bounds();
        Err(MempoolError::Full {
            txs: self.by_hash.len(),
            bytes: self.bytes,
            txs_max,
            bytes_max,
        })
    }

    /// True if a transaction with this hash is pooled.
    pub fn contains(&self, hash: &Hash) -> bool {
        self.by_hash.contains_key(hash)
    }

    /// The pooled transaction with this hash.
    pub fn get(&self, hash: &Hash) -> Option<&VerifiedTx> {
        self.by_hash.get(hash).map(|e| &e.tx)
    }

    /// Number of pooled transactions (≤ `txs_max`).
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// Sum of the pooled transactions' encoded lengths, in bytes (≤ `bytes_max`).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// True if nothing is pooled.
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// Number of transactions pooled for `sender` (live or not yet pruned).
    pub fn sender_len(&self, sender: &Address) -> usize {
        self.by_sender.get(sender).map_or(0, |q| q.txs.len())
    }

    /// The nonce `sender`'s next transaction should carry (`getAccount`'s `nextNonce`): its
    /// account nonce in `state` (the state the next block builds on) plus the number of its
    /// pooled transactions with nonces `account_nonce, account_nonce + 1, …` without a gap.
    /// A pooled nonce beyond a gap does not count (the gap must be filled first). Work is
    /// bounded by the sender's pooled transactions (at most `sender_future_max + 1` live).
    ///
    /// Errors: the state's error if the account cannot be read.
    pub fn next_nonce(
        &self,
        sender: &Address,
        state: &dyn StateReader,
    ) -> Result<u64, LedgerError> {
        let mut next = state.account(sender)?.nonce;
        if let Some(queue) = self.by_sender.get(sender) {
            for &nonce in queue.txs.range(next..).map(|(n, _)| n) {
                if nonce != next {
                    break;
                }
                next = match next.checked_add(1) {
                    Some(n) => n,
                    None => break,
                };
            }
        }
        Ok(next)
    }

    /// Hash of the pooled transaction of `sender` with `nonce`, if any (at most one exists).
    pub fn pooled_hash(&self, sender: &Address, nonce: u64) -> Option<Hash> {
        self.by_sender.get(sender)?.txs.get(&nonce).map(|p| p.hash)
    }

    /// Removes one transaction by hash, returning it.
    pub fn remove(&mut self, hash: &Hash) -> Option<VerifiedTx> {
        let entry = self.by_hash.remove(hash)?;
        let body = &entry.tx.tx().body;
        if let Some(queue) = self.by_sender.get_mut(&body.sender) {
            let pooled = queue.remove(body.nonce);
            debug_assert_eq!(pooled.map(|p| p.hash), Some(*hash));
            if queue.txs.is_empty() {
                self.by_sender.remove(&body.sender);
            }
        }
        self.by_expiry.remove(&(body.expiry_height, *hash));
        self.bytes -= entry.bytes;
        Some(entry.tx)
    }

    /// True if a block built on `state` would take at least one pooled transaction by its
    /// nonce: some sender's pooled transactions include its next nonce there. False when
    /// every pooled transaction waits behind a nonce gap or is already in a pending block
    /// on the way to `state`. A sender whose state cannot be read counts as ready (the
    /// builder decides). Stops at the first ready sender; at most one state read per sender.
    pub fn has_ready(&self, state: &dyn StateReader) -> bool {
        self.by_sender
            .iter()
            .any(|(sender, queue)| match state.account(sender) {
                Ok(account) => queue.txs.contains_key(&account.nonce),
                Err(_) => true,
            })
    }

    /// Picks transactions for a block on top of `builder` (a ledger [`BlockBuilder`] on the
    /// parent state, possibly already holding transactions), applying each to it. Returns
    /// them in block order; the caller finishes the builder.
    ///
    /// At most `txs_max` transactions whose encoded lengths sum to at most `bytes_max` (the
    /// caller subtracts the header and length-prefix overhead from the block byte limit).
    ///
    /// Order: senders take turns (round-robin), ordered by the arrival of their
    /// lowest-nonce pooled transaction; each sender's transactions go in nonce order from
    /// its nonce in `builder`'s state (pooled lower nonces, already included in an
    /// unfinalized ancestor, are skipped without being applied). A transaction that fails to
    /// apply or does not fit in the remaining bytes ends its sender's turn for this block
    /// (its later nonces could not execute without it); it stays pooled. Fees do not affect
    /// the order.
    ///
    /// Work: one state read per sender reached, at most one `apply` per transaction.
    pub fn reap(
        &self,
        builder: &mut BlockBuilder<'_>,
        txs_max: usize,
        bytes_max: usize,
    ) -> Vec<VerifiedTx> {
        let mut out = Vec::new();
        if txs_max == 0 {
            return out;
        }
        let mut senders: Vec<(u64, &Address)> = self
            .by_sender
            .iter()
            .filter_map(|(sender, queue)| {
                let (_, first) = queue.txs.first_key_value()?;
                Some((self.by_hash[&first.hash].seq, sender))
            })
            .collect();
        senders.sort_unstable();

        // `None` = not reached yet (its state is read on its first turn).
        let mut ring: VecDeque<(&Address, Option<btree_map::Range<'_, u64, Pooled>>)> = senders
            .into_iter()
            .map(|(_, sender)| (sender, None))
            .collect();
        let mut bytes_used = 0usize;
        while let Some((sender, range)) = ring.pop_front() {
            let mut range = match range {
                Some(range) => range,
                None => match builder.account(sender) {
                    Ok(account) => self.by_sender[sender].txs.range(account.nonce..),
                    Err(error) => {
                        tracing::warn!(%sender, %error, "mempool reap: cannot read sender state; skipping sender");
                        continue;
                    }
                },
            };
            let Some((_, pooled)) = range.next() else {
                continue;
            };
            let entry = &self.by_hash[&pooled.hash];
            if bytes_used + entry.bytes > bytes_max {
                continue;
            }
            if builder.apply(entry.tx.tx()).is_err() {
                continue;
            }
            out.push(entry.tx.clone());
            bytes_used += entry.bytes;
            if out.len() >= txs_max {
                break;
            }
            ring.push_back((sender, Some(range)));
        }
        out
    }

    /// Updates the pool after a block is finalized at `height`, with `state` the new
    /// finalized state: removes the block's transactions (`block_txs`: each one's id and
    /// sender, e.g. from a sealed block, so nothing is hashed), then, for every sender of the
    /// block, its pooled transactions with `nonce < account_nonce` (now unexecutable,
    /// including different transactions with an included nonce), then every transaction
    /// that cannot be included at `height + 1` ([`Mempool::prune_expired`]).
    ///
    /// A sender whose state cannot be read keeps its stale entries (logged); they go when
    /// they expire.
    pub fn remove_finalized<'a>(
        &mut self,
        block_txs: impl IntoIterator<Item = (Hash, &'a Address)>,
        state: &dyn StateReader,
        height: u64,
    ) {
        let mut touched: BTreeSet<Address> = BTreeSet::new();
        for (id, sender) in block_txs {
            self.remove(&id);
            touched.insert(*sender);
        }
        for sender in touched {
            let Some(queue) = self.by_sender.get(&sender) else {
                continue;
            };
            let nonce = match state.account(&sender) {
                Ok(account) => account.nonce,
                Err(error) => {
                    tracing::warn!(%sender, %error, "mempool: cannot read sender state; stale entries stay until expiry");
                    continue;
                }
            };
            let stale: Vec<Hash> = queue.txs.range(..nonce).map(|(_, p)| p.hash).collect();
            for hash in stale {
                self.remove(&hash);
            }
        }
        self.prune_expired(height.saturating_add(1));
    }

    /// Removes every transaction that cannot be included in a block at `height`
    /// (`expiry_height < height`). Returns how many were removed. Work is proportional to
    /// that number (times log of the pool size).
    pub fn prune_expired(&mut self, height: u64) -> usize {
        let mut removed = 0;
        while let Some(&(expiry, hash)) = self.by_expiry.first() {
            if expiry >= height {
                break;
            }
            self.remove(&hash);
            removed += 1;
        }
        removed
    }

    /// Removes transactions that sit behind a nonce gap (a lower nonce of the same sender,
    /// at or above its account nonce in `state`, is not pooled) and were admitted at least
    /// `grace_blocks` before `height`. Returns their hashes with the nonce each waited for.
    ///
    /// Such a transaction cannot execute until the missing one arrives; under overload the
    /// missing one was usually refused (`overloaded`) while later ones were admitted, and
    /// without this they would fill the pool until they expire. Reads each pooled sender's
    /// account once: call it every so many blocks, not per block. A sender whose state cannot
    /// be read keeps its entries.
    pub fn evict_gapped(
        &mut self,
        state: &dyn StateReader,
        height: u64,
        grace_blocks: u64,
    ) -> Vec<(Hash, u64)> {
        let mut evict = Vec::new();
        for (sender, queue) in &self.by_sender {
            let Ok(account) = state.account(sender) else {
                continue;
            };
            let mut expected = account.nonce;
            for (&nonce, pooled) in queue.txs.range(account.nonce..) {
                if nonce == expected {
                    expected += 1;
                    continue;
                }
                // Every later nonce is behind the gap at `expected` too.
                if self.by_hash[&pooled.hash]
                    .admitted_height
                    .saturating_add(grace_blocks)
                    <= height
                {
                    evict.push((pooled.hash, expected));
                }
            }
        }
        for (hash, _) in &evict {
            self.remove(hash);
        }
        evict
    }

    /// Panics unless the indices agree with each other and with the bounds.
    #[cfg(test)]
    fn check_invariants(&self) {
        assert!(self.by_hash.len() <= self.config.txs_max);
        assert!(self.bytes <= self.config.bytes_max);
        assert_eq!(self.by_expiry.len(), self.by_hash.len());
        let in_queues: usize = self.by_sender.values().map(|q| q.txs.len()).sum();
        assert_eq!(in_queues, self.by_hash.len());
        assert_eq!(
            self.by_hash.values().map(|e| e.bytes).sum::<usize>(),
            self.bytes
        );
        for (sender, queue) in &self.by_sender {
            assert!(!queue.txs.is_empty());
            for (nonce, pooled) in &queue.txs {
                let entry = &self.by_hash[&pooled.hash];
                let body = &entry.tx.tx().body;
                assert_eq!((&body.sender, &body.nonce), (sender, nonce));
                assert!(self.by_expiry.contains(&(body.expiry_height, pooled.hash)));
                // The cached cost is this transaction's.
                assert_eq!(pooled.cost, body.spend());
            }
            // The cached sum is the sum of the pooled transactions' own costs.
            let sum: u128 = queue
                .txs
                .values()
                .map(|p| self.by_hash[&p.hash].tx.tx().body.spend())
                .sum();
            assert_eq!(queue.cost_sum, sum, "cost sum of {sender}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_ledger::{Account, BlockContext, HashedTx, LtHash, TransactionBody};
    use ed25519_dalek::SigningKey;
    use rand::{Rng, SeedableRng, rngs::StdRng};

    const CHAIN: &str = "cairn-test";

    type State = HashMap<Address, Account>;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn addr(seed: u8) -> Address {
        Address::from_public_key(&key(seed).verifying_key())
    }

    fn tx_full(seed: u8, nonce: u64, amount: u64, fee: u64, expiry_height: u64) -> VerifiedTx {
        let tx = TransactionBody {
            chain_id: CHAIN.into(),
            sender: addr(seed),
            fee,
            nonce,
            expiry_height,
            action: cairn_ledger::Action::Transfer {
                recipient: Address([0xee; 32]),
                amount,
            },
        }
        .sign(&key(seed));
        VerifiedTx::verify(HashedTx::new(tx), CHAIN).expect("a test transaction verifies")
    }

    fn tx(seed: u8, nonce: u64) -> VerifiedTx {
        tx_full(seed, nonce, 10, 1, 1000)
    }

    #[test]
    fn next_nonce_counts_the_gap_free_run_of_pooled_nonces() {
        let mut state = funded(&[1, 2], 1_000_000);
        let mut pool = pool();
        // Nothing pooled: the account nonce (also for an unknown account).
        assert_eq!(pool.next_nonce(&addr(1), &state).unwrap(), 0);
        assert_eq!(pool.next_nonce(&addr(9), &state).unwrap(), 0);
        for n in [0, 1, 2, 4] {
            pool.insert(tx(1, n), &state, CHAIN, 1).unwrap();
        }
        // 0, 1, 2 without a gap; 4 waits behind the missing 3.
        assert_eq!(pool.next_nonce(&addr(1), &state).unwrap(), 3);
        assert_eq!(pool.next_nonce(&addr(2), &state).unwrap(), 0, "per sender");
        pool.insert(tx(1, 3), &state, CHAIN, 1).unwrap();
        assert_eq!(pool.next_nonce(&addr(1), &state).unwrap(), 5);
        // Nonces 0 and 1 executed: the run starts at the account nonce.
        state.get_mut(&addr(1)).unwrap().nonce = 2;
        let done: Vec<Hash> = [0, 1].iter().map(|&n| tx(1, n).id()).collect();
        for h in &done {
            pool.remove(h);
        }
        assert_eq!(pool.next_nonce(&addr(1), &state).unwrap(), 5);
        // An account nonce past everything pooled.
        state.get_mut(&addr(1)).unwrap().nonce = 7;
        assert_eq!(pool.next_nonce(&addr(1), &state).unwrap(), 7);
    }

    fn funded(seeds: &[u8], balance: u64) -> State {
        seeds
            .iter()
            .map(|&s| (addr(s), Account { balance, nonce: 0 }))
            .collect()
    }

    fn config(txs_max: usize, bytes_max: usize, sender_future_max: usize) -> MempoolConfig {
        MempoolConfig {
            txs_max,
            bytes_max,
            sender_future_max,
        }
    }

    fn pool() -> Mempool {
        Mempool::new(config(1000, 1 << 20, 16))
    }

    fn tx_len() -> usize {
        tx(1, 0).encode().len()
    }

    fn builder<'a>(state: &'a State, height: u64) -> BlockBuilder<'a> {
        BlockBuilder::new(
            state,
            LtHash::of_accounts(state.iter()),
            BlockContext {
                chain_id: CHAIN.into(),
                height,
                proposer: Address([0xaa; 32]),
            },
        )
    }

    /// A state with a governance record: members `members`, `policy`, and the given
    /// permission holders.
    struct GovState {
        accounts: State,
        governance: std::sync::Arc<cairn_ledger::governance::Governance>,
        transact: Vec<Address>,
    }

    impl StateReader for GovState {
        fn account(&self, a: &Address) -> Result<Account, LedgerError> {
            self.accounts.account(a)
        }
        fn permissions(
            &self,
            a: &Address,
        ) -> Result<cairn_ledger::governance::Permissions, LedgerError> {
            let none = cairn_ledger::governance::Permissions::default();
            Ok(if self.transact.contains(a) {
                none.with(cairn_ledger::governance::Permission::Transact)
            } else {
                none
            })
        }
        fn governance(
            &self,
        ) -> Result<Option<std::sync::Arc<cairn_ledger::governance::Governance>>, LedgerError>
        {
            Ok(Some(self.governance.clone()))
        }
    }

    fn gov_state(policy: cairn_ledger::governance::AccountsPolicy) -> GovState {
        let governance = cairn_ledger::governance::Governance::genesis(
            vec![addr(1)],
            1,
            policy,
            10,
            vec![cairn_ledger::governance::ValidatorInfo {
                name: "v0".into(),
                consensus_key: addr(9),
                peer_id: cairn_ledger::governance::ed25519_peer_id(&[7; 32]),
                voting_power: 1,
            }],
            cairn_genesis::ChainParams::default(),
        )
        .unwrap();
        GovState {
            accounts: funded(&[1, 2, 3], 1_000),
            governance: std::sync::Arc::new(governance),
            transact: vec![addr(2)],
        }
    }

    #[test]
    fn who_may_send_is_checked_at_the_door() {
        use cairn_ledger::governance::AccountsPolicy;
        let mut p = pool();
        let state = gov_state(AccountsPolicy::Permissioned);
        // Without `transact`: refused, nothing pooled.
        let e = p.insert(tx(3, 0), &state, CHAIN, 1).unwrap_err();
        assert_eq!(e.code(), "not_permitted");
        assert!(!e.is_peer_fault());
        assert_eq!(p.len(), 0);
        // With it: admitted.
        p.insert(tx(2, 0), &state, CHAIN, 1).unwrap();
        // Governance transactions need a member, whatever the policy.
        let approve = |seed: u8| {
            let t = TransactionBody {
                chain_id: CHAIN.into(),
                sender: addr(seed),
                fee: 1,
                nonce: 0,
                expiry_height: 100,
                action: cairn_ledger::Action::Approve { proposal_id: 1 },
            }
            .sign(&key(seed));
            VerifiedTx::verify(HashedTx::new(t), CHAIN).unwrap()
        };
        let e = p.insert(approve(3), &state, CHAIN, 1).unwrap_err();
        assert_eq!(e.code(), "not_member");
        p.insert(approve(1), &state, CHAIN, 1).unwrap();
        assert_eq!(p.len(), 2);
        // On an open chain anyone with a balance may send.
        let open = gov_state(AccountsPolicy::Open);
        p.insert(tx(3, 0), &open, CHAIN, 1).unwrap();
    }

    #[test]
    fn config_validation() {
        assert!(MempoolConfig::default().validate().is_ok());
        assert_eq!(MempoolConfig::default().sender_future_max, 64);
        let bad = [
            config(0, 1 << 20, 1),
            config(1, TX_BYTES_MAX - 1, 1),
            config(1, TX_BYTES_MAX, 0),
        ];
        let fields = ["txs_max", "bytes_max", "sender_future_max"];
        for (c, field) in bad.iter().zip(fields) {
            match c.validate() {
                Err(e @ MempoolError::InvalidConfig { field: f, .. }) => {
                    assert_eq!(f, field);
                    assert_eq!(e.code(), "invalid_config");
                }
                other => panic!("{c:?}: {other:?}"),
            }
        }
        assert!(config(1, TX_BYTES_MAX, 1).validate().is_ok());
    }

    #[test]
    fn insert_and_lookup() {
        let state = funded(&[1], 1000);
        let mut mp = pool();
        assert!(mp.is_empty());
        let t = tx(1, 0);
        let h = mp.insert(t.clone(), &state, CHAIN, 1).unwrap();
        assert_eq!(h, t.hash());
        assert!(mp.contains(&h));
        assert_eq!(mp.get(&h), Some(&t));
        assert_eq!(mp.len(), 1);
        assert_eq!(mp.bytes(), t.encode().len());
        assert!(!mp.is_empty());
        assert_eq!(mp.remove(&h), Some(t));
        assert!(mp.is_empty() && mp.bytes() == 0);
        mp.check_invariants();
    }

    #[test]
    fn rejection_codes() {
        let mut state = funded(&[1, 2], 100);
        state.insert(
            addr(3),
            Account {
                balance: 100,
                nonce: 5,
            },
        );
        let mut mp = Mempool::new(config(1000, 1 << 20, 4));
        let t0 = tx(1, 0);
        mp.insert(t0.clone(), &state, CHAIN, 1).unwrap();

        let check = |r: Result<Hash, MempoolError>, code: &str, peer_fault: bool| {
            let e = r.unwrap_err();
            assert_eq!(e.code(), code, "{e}");
            assert_eq!(e.is_peer_fault(), peer_fault, "{e}");
            e
        };

        // Same transaction again.
        let e = check(mp.insert(t0.clone(), &state, CHAIN, 1), "duplicate", false);
        assert_eq!(e, MempoolError::Duplicate { tx: t0.hash() });
        // Different transaction, same (sender, nonce).
        let other = tx_full(1, 0, 11, 1, 1000);
        let e = check(
            mp.insert(other.clone(), &state, CHAIN, 1),
            "duplicate",
            false,
        );
        assert_eq!(e, MempoolError::Duplicate { tx: other.hash() });
        assert_eq!(mp.pooled_hash(&addr(1), 0), Some(t0.hash()));
        assert_eq!(mp.pooled_hash(&addr(1), 1), None);
        // Stale.
        let stale = tx(3, 4);
        let e = check(
            mp.insert(stale.clone(), &state, CHAIN, 1),
            "stale_nonce",
            false,
        );
        assert_eq!(
            e,
            MempoolError::StaleNonce {
                tx: stale.hash(),
                account_nonce: 5,
                got: 4
            }
        );
        // Too far ahead: window is 5..=9.
        mp.insert(tx(3, 9), &state, CHAIN, 1).unwrap();
        let far = tx(3, 10);
        let e = check(
            mp.insert(far.clone(), &state, CHAIN, 1),
            "too_far_ahead",
            false,
        );
        assert_eq!(
            e,
            MempoolError::TooFarAhead {
                tx: far.hash(),
                account_nonce: 5,
                got: 10,
                max: 9
            }
        );
        // Insufficient balance: alone.
        let rich = tx_full(2, 0, 100, 1, 1000);
        let e = check(
            mp.insert(rich.clone(), &state, CHAIN, 1),
            "insufficient_balance",
            false,
        );
        assert_eq!(
            e,
            MempoolError::InsufficientBalance {
                tx: rich.hash(),
                balance: 100,
                needed: 101
            }
        );
        // u64::MAX amount + fee does not overflow.
        let huge = tx_full(2, 0, u64::MAX, u64::MAX, 1000);
        let e = check(
            mp.insert(huge.clone(), &state, CHAIN, 1),
            "insufficient_balance",
            false,
        );
        assert_eq!(
            e,
            MempoolError::InsufficientBalance {
                tx: huge.hash(),
                balance: 100,
                needed: 2 * u128::from(u64::MAX)
            }
        );
        // Insufficient balance given pooled lower nonces: 60 + 50 > 100.
        mp.insert(tx_full(2, 0, 59, 1, 1000), &state, CHAIN, 1)
            .unwrap();
        let second = tx_full(2, 1, 49, 1, 1000);
        let e = check(
            mp.insert(second.clone(), &state, CHAIN, 1),
            "insufficient_balance",
            false,
        );
        assert_eq!(
            e,
            MempoolError::InsufficientBalance {
                tx: second.hash(),
                balance: 100,
                needed: 110
            }
        );
        mp.insert(tx_full(2, 1, 39, 1, 1000), &state, CHAIN, 1)
            .unwrap();
        // Expired: expiry 5, next block 6.
        let old = tx_full(1, 1, 1, 1, 5);
        let e = check(mp.insert(old.clone(), &state, CHAIN, 6), "expired", false);
        assert_eq!(
            e,
            MempoolError::Expired {
                tx: old.hash(),
                expiry_height: 5,
                height: 6
            }
        );
        mp.insert(old, &state, CHAIN, 5).unwrap();
        // Wrong chain: the only peer fault.
        let mut body = tx(1, 2).body.clone();
        body.chain_id = "other".into();
        // Verified for its own chain, offered to this one's pool.
        let foreign = VerifiedTx::verify(HashedTx::new(body.sign(&key(1))), "other").unwrap();
        let e = check(
            mp.insert(foreign.clone(), &state, CHAIN, 1),
            "wrong_chain",
            true,
        );
        assert_eq!(
            e,
            MempoolError::WrongChain {
                tx: foreign.hash(),
                expected: CHAIN.into(),
                got: "other".into()
            }
        );
        assert_eq!(e.tx(), Some(foreign.hash()));
        // None of the refusals changed the pool.
        assert_eq!(mp.len(), 5);
        mp.check_invariants();
    }

    #[test]
    fn state_read_failure_is_reported() {
        struct Broken;
        impl StateReader for Broken {
            fn account(&self, _: &Address) -> Result<Account, LedgerError> {
                Err(LedgerError::Storage {
                    reason: "disk on fire".into(),
                })
            }
        }
        let mut mp = pool();
        let e = mp.insert(tx(1, 0), &Broken, CHAIN, 1).unwrap_err();
        assert_eq!(e.code(), "state_unavailable");
        assert!(!e.is_peer_fault());
        assert!(mp.is_empty());
    }

    #[test]
    fn lowered_bounds_keep_what_is_pooled_and_admit_nothing_until_it_drains() {
        let state = funded(&[1, 2, 3, 4], 1000);
        let mut mp = Mempool::new(config(10, 1 << 20, 16));
        for n in 0..4 {
            mp.insert(tx(1, n), &state, CHAIN, 1).unwrap();
        }
        // Governance lowers the count bound below what the pool holds.
        mp.set_config(config(2, 1 << 20, 16));
        assert_eq!(mp.config().txs_max, 2);
        assert_eq!(mp.len(), 4, "nothing pooled is dropped");
        assert!(mp.is_full());
        let e = mp.insert(tx(2, 0), &state, CHAIN, 1).unwrap_err();
        assert_eq!(e.code(), "mempool_full");
        for n in 0..3 {
            mp.remove(&tx(1, n).hash());
        }
        mp.insert(tx(2, 0), &state, CHAIN, 1).unwrap();
        assert_eq!(mp.len(), 2);
        // A lowered nonce window applies to new transactions.
        mp.set_config(config(10, 1 << 20, 1));
        let e = mp.insert(tx(3, 2), &state, CHAIN, 1).unwrap_err();
        assert_eq!(e.code(), "too_far_ahead");
        mp.check_invariants();
    }

    #[test]
    fn full_by_count_and_by_bytes() {
        let state = funded(&[1, 2, 3, 4], 1000);
        let mut mp = Mempool::new(config(3, 1 << 20, 16));
        for n in 0..3 {
            mp.insert(tx(1, n), &state, CHAIN, 1).unwrap();
        }
        let e = mp.insert(tx(2, 0), &state, CHAIN, 1).unwrap_err();
        assert_eq!(e.code(), "mempool_full");
        assert_eq!(
            e,
            MempoolError::Full {
                txs: 3,
                bytes: 3 * tx_len(),
                txs_max: 3,
                bytes_max: 1 << 20
            }
        );
        assert!(!e.is_peer_fault());
        assert_eq!(mp.len(), 3);
        // Nothing was evicted; room comes back only by removal.
        mp.remove(&tx(1, 2).hash());
        mp.insert(tx(2, 0), &state, CHAIN, 1).unwrap();

        let len = tx_len();
        let mut mp = Mempool::new(config(100, 2 * len + len / 2, 16));
        mp.insert(tx(1, 0), &state, CHAIN, 1).unwrap();
        mp.insert(tx(2, 0), &state, CHAIN, 1).unwrap();
        let e = mp.insert(tx(3, 0), &state, CHAIN, 1).unwrap_err();
        assert_eq!(
            e,
            MempoolError::Full {
                txs: 2,
                bytes: 2 * len,
                txs_max: 100,
                bytes_max: 2 * len + len / 2
            }
        );
        assert_eq!(mp.bytes(), 2 * len);
        mp.check_invariants();
    }

    #[test]
    fn future_nonce_window_follows_account_nonce() {
        let mut state = funded(&[1], 1_000_000);
        let mut mp = Mempool::new(config(1000, 1 << 20, 3));
        mp.insert(tx(1, 3), &state, CHAIN, 1).unwrap();
        assert_eq!(
            mp.insert(tx(1, 4), &state, CHAIN, 1).unwrap_err().code(),
            "too_far_ahead"
        );
        state.get_mut(&addr(1)).unwrap().nonce = 1;
        mp.insert(tx(1, 4), &state, CHAIN, 1).unwrap();
        assert_eq!(
            mp.insert(tx(1, 5), &state, CHAIN, 1).unwrap_err().code(),
            "too_far_ahead"
        );
        // Saturates instead of overflowing near u64::MAX.
        state.get_mut(&addr(1)).unwrap().nonce = u64::MAX - 1;
        mp.insert(tx(1, u64::MAX), &state, CHAIN, 1).unwrap();
        mp.check_invariants();
    }

    #[test]
    fn has_ready_is_false_when_every_pooled_nonce_waits_behind_a_gap_or_is_included() {
        let mut state = funded(&[1, 2], 1_000_000);
        let mut mp = pool();
        assert!(!mp.has_ready(&state), "an empty pool has nothing ready");
        // Sender 1 pools nonce 2 only: behind a gap at 0 and 1.
        mp.insert(tx(1, 2), &state, CHAIN, 1).unwrap();
        assert!(!mp.has_ready(&state));
        // Sender 2 pools nonce 0: ready.
        mp.insert(tx(2, 0), &state, CHAIN, 1).unwrap();
        assert!(mp.has_ready(&state));
        // In the state after a pending block that included sender 2's nonce 0 (still pooled
        // until finalized), nothing is ready again.
        state.get_mut(&addr(2)).unwrap().nonce = 1;
        assert!(!mp.has_ready(&state));
        // Sender 1's gap filled in that state: nonce 2 is next, so ready.
        state.get_mut(&addr(1)).unwrap().nonce = 2;
        assert!(mp.has_ready(&state));
    }

    #[test]
    fn reap_orders_each_sender_by_nonce_across_interleaved_inserts() {
        let state = funded(&[1, 2, 3], 1_000_000);
        let mut mp = pool();
        // Interleaved, out of nonce order.
        let inserts = [
            (2, 2),
            (1, 3),
            (2, 0),
            (1, 0),
            (3, 1),
            (1, 2),
            (2, 1),
            (1, 1),
            (3, 0),
        ];
        for (s, n) in inserts {
            mp.insert(tx(s, n), &state, CHAIN, 1).unwrap();
        }
        let mut b = builder(&state, 1);
        let picked = mp.reap(&mut b, 100, usize::MAX);
        assert_eq!(picked.len(), 9);
        assert_eq!(b.applied(), 9);
        for s in [1u8, 2, 3] {
            let nonces: Vec<u64> = picked
                .iter()
                .filter(|t| t.body.sender == addr(s))
                .map(|t| t.body.nonce)
                .collect();
            let expected: Vec<u64> = (0..nonces.len() as u64).collect();
            assert_eq!(nonces, expected, "sender {s}");
        }
        // Round-robin: senders by arrival of their lowest nonce (2 at t2, 1 at t3, 3 at t8).
        let order: Vec<(Address, u64)> = picked
            .iter()
            .map(|t| (t.body.sender, t.body.nonce))
            .collect();
        let expected = [
            (2, 0),
            (1, 0),
            (3, 0),
            (2, 1),
            (1, 1),
            (3, 1),
            (2, 2),
            (1, 2),
            (1, 3),
        ];
        assert_eq!(order, expected.map(|(s, n)| (addr(s), n)));
        // Reaping does not remove.
        assert_eq!(mp.len(), 9);
        // The reaped block executes.
        let diff = b.finish();
        assert_eq!(diff.accounts[&addr(1)].nonce, 4);
    }

    #[test]
    fn reap_respects_count_and_byte_limits() {
        let state = funded(&[1, 2], 1_000_000);
        let mut mp = pool();
        for n in 0..5 {
            mp.insert(tx(1, n), &state, CHAIN, 1).unwrap();
            mp.insert(tx(2, n), &state, CHAIN, 1).unwrap();
        }
        let picked = mp.reap(&mut builder(&state, 1), 3, usize::MAX);
        assert_eq!(picked.len(), 3);
        let picked = mp.reap(&mut builder(&state, 1), 0, usize::MAX);
        assert!(picked.is_empty());
        let len = tx_len();
        let picked = mp.reap(&mut builder(&state, 1), 100, 4 * len + len - 1);
        assert_eq!(picked.len(), 4);
        assert!(picked.iter().map(|t| t.encode().len()).sum::<usize>() < 5 * len);
        let picked = mp.reap(&mut builder(&state, 1), 100, len - 1);
        assert!(picked.is_empty());
    }

    #[test]
    fn reap_skips_failures_and_leaves_them_pooled() {
        let mut state = funded(&[1, 2, 3, 4], 100);
        let mut mp = pool();
        // Sender 1: nonce 0 affordable, nonce 1 affordable at admission...
        mp.insert(tx_full(1, 0, 40, 1, 1000), &state, CHAIN, 1)
            .unwrap();
        mp.insert(tx_full(1, 1, 40, 1, 1000), &state, CHAIN, 1)
            .unwrap();
        mp.insert(tx_full(1, 2, 10, 1, 1000), &state, CHAIN, 1)
            .unwrap();
        // Sender 2: gap at nonce 0.
        mp.insert(tx(2, 1), &state, CHAIN, 1).unwrap();
        // Sender 3: expires before height 5.
        mp.insert(tx_full(3, 0, 1, 1, 4), &state, CHAIN, 1).unwrap();
        // Sender 4: fine.
        mp.insert(tx(4, 0), &state, CHAIN, 1).unwrap();
        // ...but sender 1's balance has since dropped so only nonce 0 is payable.
        state.get_mut(&addr(1)).unwrap().balance = 50;
        let mut b = builder(&state, 5);
        let picked = mp.reap(&mut b, 100, usize::MAX);
        let got: Vec<(Address, u64)> = picked
            .iter()
            .map(|t| (t.body.sender, t.body.nonce))
            .collect();
        assert_eq!(got, vec![(addr(1), 0), (addr(4), 0)]);
        assert_eq!(b.applied(), 2);
        assert_eq!(mp.len(), 6);
        mp.check_invariants();
    }

    #[test]
    fn reap_skips_nonces_already_in_the_builder_state() {
        let state = funded(&[1], 1000);
        let mut mp = pool();
        for n in 0..3 {
            mp.insert(tx(1, n), &state, CHAIN, 1).unwrap();
        }
        // An unfinalized ancestor already included nonce 0.
        let mut b = builder(&state, 1);
        b.apply(&tx(1, 0)).unwrap();
        let picked = mp.reap(&mut b, 100, usize::MAX);
        assert_eq!(
            picked.iter().map(|t| t.body.nonce).collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert_eq!(b.applied(), 3);
    }

    #[test]
    fn remove_finalized_drops_included_stale_and_expired() {
        let state = funded(&[1, 2, 3], 1000);
        let mut mp = pool();
        for n in 0..4 {
            mp.insert(tx(1, n), &state, CHAIN, 1).unwrap();
        }
        mp.insert(tx(2, 0), &state, CHAIN, 1).unwrap();
        mp.insert(tx_full(3, 0, 1, 1, 10), &state, CHAIN, 1)
            .unwrap();
        mp.insert(tx_full(3, 1, 1, 1, 11), &state, CHAIN, 1)
            .unwrap();

        // Block 10 includes sender 1's nonces 0 and 1 — the second one a different
        // transaction than the pooled nonce 1 (e.g. sent to another node).
        let other_1 = tx_full(1, 1, 5, 5, 1000);
        let block = vec![tx(1, 0), other_1];
        let mut b = builder(&state, 10);
        for t in &block {
            b.apply(t).unwrap();
        }
        let diff = b.finish();
        let mut after = state.clone();
        after.extend(diff.accounts.iter().map(|(a, acc)| (*a, *acc)));
        assert_eq!(after[&addr(1)].nonce, 2);

        mp.remove_finalized(block.iter().map(|t| (t.id(), &t.body.sender)), &after, 10);
        assert!(!mp.contains(&tx(1, 0).hash()));
        assert!(!mp.contains(&tx(1, 1).hash()), "stale nonce 1 kept");
        assert!(mp.contains(&tx(1, 2).hash()) && mp.contains(&tx(1, 3).hash()));
        assert!(mp.contains(&tx(2, 0).hash()), "untouched sender lost");
        assert!(
            !mp.contains(&tx_full(3, 0, 1, 1, 10).hash()),
            "expired at 11 kept"
        );
        assert!(mp.contains(&tx_full(3, 1, 1, 1, 11).hash()));
        assert_eq!(mp.len(), 4);
        assert_eq!(mp.sender_len(&addr(1)), 2);
        mp.check_invariants();
    }

    #[test]
    fn transactions_behind_a_nonce_gap_are_evicted_after_the_grace() {
        let mut state = funded(&[1, 2], 1000);
        let mut mp = pool();
        // Sender 1: nonces 0, 1, then a gap at 2, then 3 and 4. Sender 2: 0..3, no gap.
        for n in [0, 1, 3, 4] {
            mp.insert(tx(1, n), &state, CHAIN, 10).unwrap();
        }
        for n in 0..3 {
            mp.insert(tx(2, n), &state, CHAIN, 10).unwrap();
        }
        // Admitted later (height 20): waits its own grace.
        mp.insert(tx(1, 6), &state, CHAIN, 20).unwrap();
        assert!(
            mp.evict_gapped(&state, 10 + GAP_GRACE_BLOCKS - 1, GAP_GRACE_BLOCKS)
                .is_empty()
        );
        let mut evicted = mp.evict_gapped(&state, 10 + GAP_GRACE_BLOCKS, GAP_GRACE_BLOCKS);
        evicted.sort_by_key(|(h, _)| mp_nonce_of(*h));
        assert_eq!(evicted, vec![(tx(1, 3).hash(), 2), (tx(1, 4).hash(), 2)]);
        assert_eq!(mp.sender_len(&addr(1)), 3);
        assert_eq!(mp.sender_len(&addr(2)), 3);
        mp.check_invariants();
        // Sender 1's account moves past 0 and 1 (they finalized): nonce 6 still waits for 2.
        state.get_mut(&addr(1)).unwrap().nonce = 2;
        mp.remove(&tx(1, 0).hash());
        mp.remove(&tx(1, 1).hash());
        assert_eq!(
            mp.evict_gapped(&state, 20 + GAP_GRACE_BLOCKS, GAP_GRACE_BLOCKS),
            vec![(tx(1, 6).hash(), 2)]
        );
        assert_eq!(mp.sender_len(&addr(1)), 0);
        // A contiguous run from the account nonce is never evicted, however old.
        assert!(
            mp.evict_gapped(&state, u64::MAX, GAP_GRACE_BLOCKS)
                .is_empty()
        );
        assert_eq!(mp.len(), 3);
        mp.check_invariants();
    }

    /// Nonce of sender 1's `tx(1, n)` for n in 0..8, by hash (test helper).
    fn mp_nonce_of(h: Hash) -> u64 {
        (0..8)
            .find(|&n| tx(1, n).hash() == h)
            .expect("a sender-1 nonce")
    }

    #[test]
    fn is_full_at_the_count_bound_or_when_a_largest_transaction_no_longer_fits() {
        let state = funded(&[1, 2, 3], 1000);
        let mut by_count = Mempool::new(config(2, 1 << 20, 16));
        by_count.insert(tx(1, 0), &state, CHAIN, 1).unwrap();
        assert!(!by_count.is_full());
        by_count.insert(tx(2, 0), &state, CHAIN, 1).unwrap();
        assert!(by_count.is_full());
        by_count.remove(&tx(2, 0).hash());
        assert!(!by_count.is_full());
        // Room for one largest transaction, and not a byte more.
        let mut by_bytes = Mempool::new(config(100, tx_len() + TX_BYTES_MAX, 16));
        assert!(!by_bytes.is_full());
        by_bytes.insert(tx(1, 0), &state, CHAIN, 1).unwrap();
        assert!(!by_bytes.is_full());
        by_bytes.insert(tx(2, 0), &state, CHAIN, 1).unwrap();
        assert!(by_bytes.is_full());
    }

    #[test]
    fn submissions_fill_only_the_local_share_and_gossip_the_rest() {
        let state = funded(&[1, 2, 3, 4, 5, 6, 7, 8, 9], 1000);
        let mut mp = Mempool::new(config(8, 1 << 20, 16));
        assert_eq!(mp.local_bounds().0, 8 * LOCAL_SHARE_PERCENT / 100);
        assert_eq!(mp.local_bounds().0, 6);
        for sender in 1..=6 {
            mp.check_local_room().unwrap();
            mp.insert(tx(sender, 0), &state, CHAIN, 1).unwrap();
        }
        assert!(mp.is_full_for_local());
        assert!(!mp.is_full(), "the rest is kept for gossip");
        let e = mp.check_local_room().unwrap_err();
        assert_eq!(e.code(), "mempool_full");
        assert!(
            matches!(
                e,
                MempoolError::Full {
                    txs: 6,
                    txs_max: 6,
                    ..
                }
            ),
            "{e:?}"
        );
        // Gossiped transactions (the plain insert) still fit, up to the full bound.
        mp.insert(tx(7, 0), &state, CHAIN, 1).unwrap();
        mp.insert(tx(8, 0), &state, CHAIN, 1).unwrap();
        assert!(mp.is_full());
        assert_eq!(
            mp.insert(tx(9, 0), &state, CHAIN, 1).unwrap_err().code(),
            "mempool_full"
        );
        // Below the local share again, submissions are taken.
        for sender in 1..=3 {
            mp.remove(&tx(sender, 0).hash());
        }
        assert!(!mp.is_full_for_local());
        mp.check_local_room().unwrap();
        // Bytes: the local share of the byte bound, with room for one largest transaction.
        let by_bytes = Mempool::new(config(100, 4 * TX_BYTES_MAX, 16));
        assert_eq!(by_bytes.local_bounds().1, 3 * TX_BYTES_MAX);
        // Tiny bounds still admit one submission.
        assert_eq!(
            Mempool::new(config(1, TX_BYTES_MAX, 16)).local_bounds(),
            (1, TX_BYTES_MAX)
        );
        mp.check_invariants();
    }

    /// The affordability check counts exactly the pooled nonces in
    /// `account_nonce..nonce`, with the costs they have now: after removals, after a
    /// removed nonce comes back as another transaction with another cost, and with stale
    /// entries (below the account nonce) and later nonces pooled. A cached cost or cost sum
    /// that missed any of these would give another `needed`.
    #[test]
    fn affordability_counts_exactly_the_pooled_window_after_removals() {
        let mut state = funded(&[1], 1_000);
        let mut mp = pool();
        let spend = |amount: u64| u128::from(amount) + 1;
        // Nonces 0..5 cost 101, 111, 121, 131, 141 (amount + fee 1).
        let first: Vec<VerifiedTx> = (0..5)
            .map(|n| tx_full(1, n, 100 + 10 * n, 1, 1000))
            .collect();
        for t in &first {
            mp.insert(t.clone(), &state, CHAIN, 1).unwrap();
        }
        let needed = |mp: &mut Mempool, state: &State, nonce: u64, amount: u64| match mp.insert(
            tx_full(1, nonce, amount, 1, 1000),
            state,
            CHAIN,
            1,
        ) {
            Err(MempoolError::InsufficientBalance { needed, .. }) => needed,
            other => panic!("nonce {nonce} amount {amount}: {other:?}"),
        };
        // Nonce 5 follows all five: 101 + 111 + 121 + 131 + 141 = 605.
        assert_eq!(needed(&mut mp, &state, 5, 1_000), 605 + spend(1_000));

        // Nonce 2 leaves; it is no longer counted.
        assert!(mp.remove(&first[2].hash()).is_some());
        mp.check_invariants();
        assert_eq!(needed(&mut mp, &state, 5, 1_000), 484 + spend(1_000));
        // Nonce 2 itself follows only 0 and 1: 101 + 111.
        assert_eq!(needed(&mut mp, &state, 2, 1_000), 212 + spend(1_000));
        // Nonce 2 comes back as another transaction costing 6.
        mp.insert(tx_full(1, 2, 5, 1, 1000), &state, CHAIN, 1)
            .unwrap();
        mp.check_invariants();
        assert_eq!(needed(&mut mp, &state, 5, 1_000), 490 + spend(1_000));

        // A block not yet finalized executed nonce 0: the account nonce is 1, nonce 0 stays
        // pooled (stale) and is not counted: 111 + 6 + 131 + 141 = 389.
        state.get_mut(&addr(1)).unwrap().nonce = 1;
        assert_eq!(needed(&mut mp, &state, 5, 1_000), 389 + spend(1_000));
        // Exactly affordable is admitted, one more is not.
        let one_more = needed(&mut mp, &state, 5, 1_000 - 389);
        assert_eq!(one_more, 1_001);
        mp.insert(tx_full(1, 5, 1_000 - 389 - 1, 1, 1000), &state, CHAIN, 1)
            .unwrap();
        mp.check_invariants();

        // Nonce 4 leaves: a lower nonce re-offered counts only what is below it (1..4 =
        // 111 + 6 + 131), not the stale 0 nor the pooled 5 above it.
        assert!(mp.remove(&first[4].hash()).is_some());
        assert_eq!(needed(&mut mp, &state, 4, 1_000), 248 + spend(1_000));
        // Nonce 1 leaves too (a gap at 1): nonce 4 still counts the pooled 2 and 3.
        assert!(mp.remove(&first[1].hash()).is_some());
        mp.check_invariants();
        assert_eq!(needed(&mut mp, &state, 4, 1_000), 137 + spend(1_000));

        // Finalization: account nonce 3 (nonces 0..3 executed); 0 and 2 are dropped as
        // stale. Nonce 4 then follows only 3: 131.
        state.get_mut(&addr(1)).unwrap().nonce = 3;
        let sender = addr(1);
        mp.remove_finalized([(Hash([0; 32]), &sender)], &state, 1);
        assert_eq!(mp.sender_len(&addr(1)), 2);
        mp.check_invariants();
        assert_eq!(needed(&mut mp, &state, 4, 1_000), 131 + spend(1_000));
        // Expiry and gap eviction go through the same removal: nonce 5 (behind the gap
        // at 4) is evicted, then nothing is pooled and a nonce is judged alone.
        let evicted = mp.evict_gapped(&state, 1 + GAP_GRACE_BLOCKS, GAP_GRACE_BLOCKS);
        assert_eq!(evicted.len(), 1);
        mp.check_invariants();
        assert_eq!(needed(&mut mp, &state, 4, 1_000), 131 + spend(1_000));
        assert_eq!(mp.prune_expired(u64::MAX), 1);
        mp.check_invariants();
        assert_eq!(needed(&mut mp, &state, 5, 1_000), spend(1_000));
        mp.insert(tx_full(1, 5, 999, 1, 1000), &state, CHAIN, 1)
            .unwrap();
        mp.check_invariants();
    }

    /// `SenderQueue::cost_in` equals the plain sum over the range for every range of every
    /// small queue, whichever side it steps through.
    #[test]
    fn cost_in_sums_exactly_the_range() {
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..200 {
            let mut queue = SenderQueue::default();
            for nonce in 0..12u64 {
                if rng.gen_bool(0.6) {
                    let cost = if rng.gen_bool(0.1) {
                        2 * u128::from(u64::MAX)
                    } else {
                        rng.gen_range(0..1_000)
                    };
                    queue.insert(
                        nonce,
                        Pooled {
                            hash: Hash([nonce as u8; 32]),
                            cost,
                        },
                    );
                }
            }
            for from in 0..14 {
                for to in from..14 {
                    let plain: u128 = queue.txs.range(from..to).map(|(_, p)| p.cost).sum();
                    assert_eq!(queue.cost_in(from, to), plain, "{from}..{to}");
                }
            }
            // Removing keeps the sum.
            let nonces: Vec<u64> = queue.txs.keys().copied().collect();
            for n in nonces {
                if rng.gen_bool(0.5) {
                    queue.remove(n);
                }
            }
            assert_eq!(
                queue.cost_sum,
                queue.txs.values().map(|p| p.cost).sum::<u128>()
            );
        }
    }

    #[test]
    fn prune_expired_removes_only_expired() {
        let state = funded(&[1, 2, 3], 1000);
        let mut mp = pool();
        mp.insert(tx_full(1, 0, 1, 1, 3), &state, CHAIN, 1).unwrap();
        mp.insert(tx_full(2, 0, 1, 1, 4), &state, CHAIN, 1).unwrap();
        mp.insert(tx_full(3, 0, 1, 1, 5), &state, CHAIN, 1).unwrap();
        assert_eq!(mp.prune_expired(3), 0);
        assert_eq!(mp.prune_expired(5), 2);
        assert_eq!(mp.len(), 1);
        assert_eq!(mp.prune_expired(5), 0);
        assert_eq!(mp.prune_expired(u64::MAX), 1);
        assert!(mp.is_empty() && mp.bytes() == 0);
        mp.check_invariants();
    }

    /// Random inserts, reaps, finalizations and prunes never break the bounds or the
    /// indices (a seeded property test: `proptest` is not a node dev-dependency).
    #[test]
    fn random_operations_never_exceed_bounds() {
        let (mut admitted, mut full, mut reaped) = (0usize, 0usize, 0usize);
        for seed in 0..20u64 {
            let mut rng = StdRng::seed_from_u64(seed);
            let len = tx_len();
            let cfg = config(
                rng.gen_range(1..40),
                rng.gen_range(len..len * 30),
                rng.gen_range(1..6),
            );
            let mut mp = Mempool::new(cfg);
            let seeds: Vec<u8> = (1..=8).collect();
            let mut state: State = seeds
                .iter()
                .map(|&s| {
                    (
                        addr(s),
                        Account {
                            balance: rng.gen_range(0..500),
                            nonce: 0,
                        },
                    )
                })
                .collect();
            let mut height = 1u64;
            for _ in 0..400 {
                match rng.gen_range(0..10) {
                    0..=6 => {
                        let s = seeds[rng.gen_range(0..seeds.len())];
                        let nonce = state[&addr(s)].nonce.saturating_sub(1) + rng.gen_range(0..8);
                        let t = tx_full(
                            s,
                            nonce,
                            rng.gen_range(0..100),
                            rng.gen_range(0..10),
                            height + rng.gen_range(0..20),
                        );
                        let before = (mp.len(), mp.bytes());
                        match mp.insert(t.clone(), &state, CHAIN, height) {
                            Ok(h) => {
                                admitted += 1;
                                assert_eq!(h, t.hash());
                                assert_eq!(mp.len(), before.0 + 1);
                            }
                            Err(e) => {
                                assert_eq!((mp.len(), mp.bytes()), before, "{e}");
                                if matches!(e, MempoolError::Full { .. }) {
                                    full += 1;
                                    assert!(
                                        before.0 == cfg.txs_max
                                            || before.1 + t.encode().len() > cfg.bytes_max
                                    );
                                }
                            }
                        }
                    }
                    7 | 8 => {
                        let mut b = builder(&state, height);
                        let (txs_max, bytes_max) =
                            (rng.gen_range(0..10), rng.gen_range(0..len * 8));
                        let picked = mp.reap(&mut b, txs_max, bytes_max);
                        reaped += picked.len();
                        assert!(picked.len() <= txs_max);
                        assert!(
                            picked.iter().map(|t| t.encode().len()).sum::<usize>() <= bytes_max
                        );
                        assert_eq!(b.applied(), picked.len());
                        let diff = b.finish();
                        state.extend(diff.accounts.iter().map(|(a, acc)| (*a, *acc)));
                        mp.remove_finalized(
                            picked.iter().map(|t| (t.id(), &t.body.sender)),
                            &state,
                            height,
                        );
                        for t in &picked {
                            assert!(!mp.contains(&t.hash()));
                        }
                        height += 1;
                    }
                    _ => {
                        height += rng.gen_range(0..3);
                        mp.prune_expired(height);
                    }
                }
                mp.check_invariants();
                // Nothing pooled is expired for the next block.
                assert!(mp.by_expiry.first().is_none_or(|&(e, _)| e >= height));
            }
        }
        // The run exercised admission, the bounds and reaping.
        assert!(
            admitted > 100 && full > 10 && reaped > 50,
            "{admitted} {full} {reaped}"
        );
    }

    /// Random inserts with removals of every kind (by hash, finalization, expiry, gap
    /// eviction) and account nonces that move ahead of the pool (blocks not yet finalized):
    /// every refusal for balance names exactly the `needed` a plain sum over the pool gives,
    /// and every admission was affordable by that sum.
    #[test]
    fn random_removals_keep_the_affordability_check_exact() {
        let (mut refused, mut admitted) = (0usize, 0usize);
        for seed in 0..20u64 {
            let mut rng = StdRng::seed_from_u64(1_000 + seed);
            let mut mp = Mempool::new(config(200, 1 << 20, 8));
            let seeds: Vec<u8> = (1..=4).collect();
            let mut state: State = seeds
                .iter()
                .map(|&s| {
                    (
                        addr(s),
                        Account {
                            balance: rng.gen_range(100..600),
                            nonce: 0,
                        },
                    )
                })
                .collect();
            let mut height = 1u64;
            for _ in 0..300 {
                match rng.gen_range(0..12) {
                    0..=6 => {
                        let s = seeds[rng.gen_range(0..seeds.len())];
                        let account = state[&addr(s)];
                        let nonce = account.nonce + rng.gen_range(0..8);
                        let t = tx_full(
                            s,
                            nonce,
                            rng.gen_range(0..120),
                            rng.gen_range(0..5),
                            height + rng.gen_range(0..30),
                        );
                        // The plain sum over every pooled transaction of this sender.
                        let expected = t.body.spend()
                            + mp.by_hash
                                .values()
                                .map(|e| &e.tx.tx().body)
                                .filter(|b| b.sender == addr(s))
                                .filter(|b| (account.nonce..nonce).contains(&b.nonce))
                                .map(|b| b.spend())
                                .sum::<u128>();
                        match mp.insert(t, &state, CHAIN, height) {
                            Ok(_) => {
                                admitted += 1;
                                assert!(expected <= u128::from(account.balance));
                            }
                            Err(MempoolError::InsufficientBalance { needed, .. }) => {
                                refused += 1;
                                assert_eq!(needed, expected);
                                assert!(needed > u128::from(account.balance));
                            }
                            Err(_) => {}
                        }
                    }
                    7 => {
                        // Remove a random pooled transaction.
                        let hashes: Vec<Hash> = mp.by_hash.keys().copied().collect();
                        if !hashes.is_empty() {
                            let h = hashes[rng.gen_range(0..hashes.len())];
                            assert!(mp.remove(&h).is_some());
                        }
                    }
                    8 => {
                        // A block not yet finalized executes a sender's next nonces: its
                        // account nonce moves ahead, the pool keeps the stale entries.
                        let s = seeds[rng.gen_range(0..seeds.len())];
                        state.get_mut(&addr(s)).unwrap().nonce += rng.gen_range(1..3);
                    }
                    9 => {
                        // Finalization of an empty block: stale entries of the touched
                        // senders and expired ones go.
                        let s = addr(seeds[rng.gen_range(0..seeds.len())]);
                        mp.remove_finalized([(Hash([0; 32]), &s)], &state, height);
                        height += 1;
                    }
                    10 => {
                        height += rng.gen_range(0..4);
                        mp.prune_expired(height);
                    }
                    _ => {
                        mp.evict_gapped(&state, height + rng.gen_range(0..3), 2);
                    }
                }
                mp.check_invariants();
            }
        }
        assert!(refused > 50 && admitted > 200, "{refused} {admitted}");
    }
}
