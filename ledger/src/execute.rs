//! Transaction and block execution, and full block validation.
//!
//! # Transaction rules
//!
//! A transaction `tx` executed in a block with context ([`BlockContext`]) `chain_id`,
//! `height`, `proposer` is valid iff, checked in this order against the state *after* the
//! block's earlier transactions:
//!
//! 1. `tx.chain_id == chain_id`, else [`LedgerError::WrongChain`];
//! 2. `height <= tx.expiry_height`, else [`LedgerError::Expired`];
//! 3. `tx.nonce == sender.nonce`, else [`LedgerError::StaleNonce`] (lower) or
//!    [`LedgerError::FutureNonce`] (higher); `sender.nonce < u64::MAX`, else
//!    [`LedgerError::NonceExhausted`];
//! 4. `amount + fee` (computed in u128, so it cannot overflow) `<= sender.balance`, else
//!    [`LedgerError::InsufficientBalance`];
//! 5. crediting the recipient, then the proposer, does not overflow u64, else
//!    [`LedgerError::BalanceOverflow`].
//!
//! 6. a transfer under the `permissioned` accounts policy: the sender holds the `transact`
//!    permission, else [`LedgerError::NotPermitted`]; a governance propose or approve:
//!    the governance rules accept it ([`crate::governance`]), else
//!    [`LedgerError::Governance`] naming the rule.
//!
//! Effect, applied in this order: `sender.balance -= amount + fee; sender.nonce += 1;
//! recipient.balance += amount; proposer.balance += fee` (a governance transaction moves no
//! amount; its effect on the governance record and on permissions is the governance
//! rules'). Because each step reads the
//! result of the previous one, `sender == recipient` (a self-transfer: pays only the fee)
//! and `proposer ∈ {sender, recipient}` are handled correctly. Total supply (the sum of all
//! balances) is conserved by every transaction.
//!
//! Signatures are *not* checked by [`BlockBuilder`] or [`execute_block`]: the node verifies
//! each transaction once with [`SignedTransaction::verify`] (mempool admission), and
//! [`validate_block_with`] lets callers choose for blocks from peers.

use std::collections::BTreeMap;

use std::sync::Arc;

use crate::governance::{
    AccountsPolicy, GovContext, GovError, Governance, Permission, PermissionStore, Permissions,
};
use crate::tx::Action;
use crate::{
    Account, Address, Block, BlockHeader, Hash, LedgerError, LtHash, SignedTransaction, StateDiff,
    StateReader,
};

/// What a block's execution depends on besides its transactions (taken from its header).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockContext {
    /// Chain id every transaction must carry.
    pub chain_id: String,
    /// Height of the block being built or executed (compared to `expiry_height`).
    pub height: u64,
    /// Receives the fees.
    pub proposer: Address,
}

impl BlockContext {
    /// The context of a block with this header.
    pub fn of_header(header: &BlockHeader) -> BlockContext {
        BlockContext {
            chain_id: header.chain_id.clone(),
            height: header.height,
            proposer: header.proposer,
        }
    }
}

/// Bounds on a block's contents. The node passes the genesis values: they are also the
/// transport bounds its codecs were sized with, so they are ceilings. On a chain with
/// governance the limits in force for a block are those of its parent's state, each capped
/// by the ceiling ([`BlockLimits::governed`]); block validation applies them itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BlockLimits {
    /// Most transactions in one block.
    pub block_txs_max: usize,
    /// Largest encoded block ([`Block::encode`], header included), in bytes.
    pub block_bytes_max: usize,
}

impl BlockLimits {
    /// The limits in force for a child of a state whose governance record is `governance`
    /// (`None`: a chain without governance, `self` unchanged): each limit is the smaller
    /// of `self` (the genesis ceiling) and the governed `ChainParams` value, so a
    /// `set_params` can lower the limits and raise them back up to genesis's, never above
    /// (the transport bounds are sized from genesis when a node starts). Deterministic in
    /// the parent state: every validator computes the same limits for the same block.
    pub fn governed(&self, governance: Option<&crate::governance::Governance>) -> BlockLimits {
        let Some(g) = governance else {
            return *self;
        };
        let cap = |governed: u64, ceiling: usize| {
            usize::try_from(governed).map_or(ceiling, |v| v.min(ceiling))
        };
        BlockLimits {
            block_txs_max: cap(g.params.block_txs_max, self.block_txs_max),
            block_bytes_max: cap(g.params.block_bytes_max, self.block_bytes_max),
        }
    }

    /// [`Self::governed`] with the governance record read from `parent` (held in memory by
    /// every [`StateReader`] the node uses). Errors: the reader's fatal storage error.
    pub fn at(&self, parent: &dyn StateReader) -> Result<BlockLimits, LedgerError> {
        Ok(self.governed(parent.governance()?.as_deref()))
    }
}

/// Applies transactions one at a time on top of a parent state. Does NOT verify signatures:
/// callers pass only transactions that passed [`SignedTransaction::verify`] (the node
/// verifies each once). It does check chain id, expiry, nonce, balance (see the
/// [module docs](self) for the exact rules).
///
/// Proposers use it to fill a block (apply candidates, skip the ones that fail); validators
/// use it through [`execute_block`]. Memory and work are proportional to the accounts
/// touched; the parent is read at most once per touched account.
pub struct BlockBuilder<'a> {
    parent: &'a dyn StateReader,
    parent_lthash: LtHash,
    ctx: BlockContext,
    /// Parent value of every account read so far.
    original: BTreeMap<Address, Account>,
    /// Current value of every account changed so far.
    changed: BTreeMap<Address, Account>,
    /// Parent value of every permissions entry read so far.
    perms_original: BTreeMap<Address, Permissions>,
    /// Current value of every permissions entry changed so far.
    perms_changed: BTreeMap<Address, Permissions>,
    /// The parent's governance record, read on first use (`Some(None)`: the parent has
    /// none).
    parent_governance: Option<Option<Arc<Governance>>>,
    /// The governance record after the transactions applied so far, if one changed it.
    governance: Option<Arc<Governance>>,
    validators_changed: bool,
    applied: usize,
}

impl<'a> BlockBuilder<'a> {
    /// A builder for the block described by `ctx` on top of `parent`, whose state hash is
    /// `parent_lthash` (not checked: it must be the hash of exactly the state `parent` reads).
    pub fn new(parent: &'a dyn StateReader, parent_lthash: LtHash, ctx: BlockContext) -> Self {
        BlockBuilder {
            parent,
            parent_lthash,
            ctx,
            original: BTreeMap::new(),
            changed: BTreeMap::new(),
            perms_original: BTreeMap::new(),
            perms_changed: BTreeMap::new(),
            parent_governance: None,
            governance: None,
            validators_changed: false,
            applied: 0,
        }
    }

    /// The block context this builder executes in.
    pub fn context(&self) -> &BlockContext {
        &self.ctx
    }

    /// Applies `tx` if valid against the current (parent + already applied) state; on error
    /// nothing changes.
    ///
    /// Errors: [`LedgerError::WrongChain`], [`LedgerError::Expired`],
    /// [`LedgerError::StaleNonce`], [`LedgerError::FutureNonce`],
    /// [`LedgerError::NonceExhausted`], [`LedgerError::InsufficientBalance`],
    /// [`LedgerError::BalanceOverflow`], [`LedgerError::NotPermitted`],
    /// [`LedgerError::Governance`]; or a fatal storage error from the parent reader.
    pub fn apply(&mut self, tx: &SignedTransaction) -> Result<(), LedgerError> {
        let body = &tx.body;
        if body.chain_id != self.ctx.chain_id {
            return Err(LedgerError::WrongChain {
                tx: tx.hash(),
                expected: self.ctx.chain_id.clone(),
                got: body.chain_id.clone(),
            });
        }
        if self.ctx.height > body.expiry_height {
            return Err(LedgerError::Expired {
                tx: tx.hash(),
                expiry_height: body.expiry_height,
                height: self.ctx.height,
            });
        }

        // Stage the writes locally; commit only if every check passes.
        let mut staged: Vec<(Address, Account)> = Vec::with_capacity(3);
        let mut sender = self.current(&body.sender)?;
        if body.nonce < sender.nonce {
            return Err(LedgerError::StaleNonce {
                tx: tx.hash(),
                expected: sender.nonce,
                got: body.nonce,
            });
        }
        if body.nonce > sender.nonce {
            return Err(LedgerError::FutureNonce {
                tx: tx.hash(),
                expected: sender.nonce,
                got: body.nonce,
            });
        }
        let next_nonce =
            sender
                .nonce
                .checked_add(1)
                .ok_or_else(|| LedgerError::NonceExhausted {
                    tx: tx.hash(),
                    address: body.sender,
                })?;
        let needed = body.spend();
        if needed > u128::from(sender.balance) {
            return Err(LedgerError::InsufficientBalance {
                tx: tx.hash(),
                balance: sender.balance,
                needed,
            });
        }
        sender.nonce = next_nonce;
        // `needed <= balance <= u64::MAX`, so this neither truncates nor underflows.
        sender.balance -= needed as u64;
        staged.push((body.sender, sender));

        let (recipient, amount) = match &body.action {
            Action::Transfer { recipient, amount } => {
                if self.accounts_policy()? == AccountsPolicy::Permissioned
                    && !self
                        .current_permissions(&body.sender)?
                        .contains(Permission::Transact)
                {
                    return Err(LedgerError::NotPermitted {
                        tx: tx.hash(),
                        address: body.sender,
                    });
                }
                (Some(*recipient), *amount)
            }
            Action::Propose(_) | Action::Approve { .. } => (None, 0),
        };
        let recipient_credit = recipient.map(|r| (r, amount));
        for (address, credit) in recipient_credit
            .into_iter()
            .chain([(self.ctx.proposer, body.fee)])
        {
            let mut account = match staged.iter().rev().find(|(a, _)| *a == address) {
                Some((_, acc)) => *acc,
                None => self.current(&address)?,
            };
            account.balance = account.balance.checked_add(credit).ok_or_else(|| {
                LedgerError::BalanceOverflow {
                    tx: tx.hash(),
                    address,
                }
            })?;
            staged.push((address, account));
        }

        // Governance last: its rules work on a copy, kept only if everything passed.
        if let Action::Propose(_) | Action::Approve { .. } = &body.action {
            self.apply_governance(tx)?;
        }

        for (address, account) in staged {
            self.changed.insert(address, account);
        }
        self.applied += 1;
        Ok(())
    }

    /// Runs a propose or approve through the governance rules on a copy of the current
    /// record and permissions; keeps the result only on success.
    fn apply_governance(&mut self, tx: &SignedTransaction) -> Result<(), LedgerError> {
        let body = &tx.body;
        let current = self.current_governance()?;
        let refuse = |error| LedgerError::Governance {
            tx: tx.hash(),
            error: Box::new(error),
        };
        let Some(current) = current else {
            return Err(refuse(crate::governance::GovernanceError::Disabled));
        };
        let mut next = (*current).clone();
        let chain_id = self.ctx.chain_id.clone();
        let ctx = GovContext {
            chain_id: &chain_id,
            height: self.ctx.height,
        };
        let mut perms = StagedPermissions {
            builder: self,
            staged: BTreeMap::new(),
        };
        let result = match &body.action {
            Action::Propose(action) => next.propose(ctx, body.sender, action.clone(), &mut perms),
            Action::Approve { proposal_id } => {
                next.approve(ctx, body.sender, *proposal_id, &mut perms)
            }
            Action::Transfer { .. } => unreachable!("only governance actions come here"),
        };
        let staged = perms.staged;
        match result {
            Ok(outcome) => {
                self.perms_changed.extend(staged);
                if outcome.validators_changed && !self.validators_changed {
                    // The block is its epoch's boundary: the decided set votes from the next
                    // epoch on (one bump per block, however many changes it executes).
                    next.epoch = next
                        .epoch
                        .checked_add(1)
                        .expect("fewer than 2^64 validator-set changes");
                }
                self.validators_changed |= outcome.validators_changed;
                self.governance = Some(Arc::new(next));
                Ok(())
            }
            Err(GovError::Refused(error)) => Err(refuse(error)),
            Err(GovError::Fatal(e)) => Err(e),
        }
    }

    /// The governance record after the transactions applied so far (`None`: the state has
    /// none).
    fn current_governance(&mut self) -> Result<Option<Arc<Governance>>, LedgerError> {
        if let Some(g) = &self.governance {
            return Ok(Some(g.clone()));
        }
        if self.parent_governance.is_none() {
            self.parent_governance = Some(self.parent.governance()?);
        }
        Ok(self.parent_governance.clone().flatten())
    }

    /// The accounts policy in force (open without a governance record). On every
    /// transfer, so it reads the parent's record once and clones nothing.
    fn accounts_policy(&mut self) -> Result<AccountsPolicy, LedgerError> {
        if let Some(g) = &self.governance {
            return Ok(g.accounts);
        }
        if self.parent_governance.is_none() {
            self.parent_governance = Some(self.parent.governance()?);
        }
        Ok(self
            .parent_governance
            .as_ref()
            .and_then(Option::as_ref)
            .map_or(AccountsPolicy::Open, |g| g.accounts))
    }

    /// The current permissions of `a`, remembering the parent value (for the hash update).
    fn current_permissions(&mut self, a: &Address) -> Result<Permissions, LedgerError> {
        if let Some(p) = self
            .perms_changed
            .get(a)
            .or_else(|| self.perms_original.get(a))
        {
            return Ok(*p);
        }
        let p = self.parent.permissions(a)?;
        self.perms_original.insert(*a, p);
        Ok(p)
    }

    /// The permissions `a` holds (parent state plus the transactions applied so far).
    ///
    /// Errors: only fatal storage errors from the parent reader.
    pub fn permissions(&self, a: &Address) -> Result<Permissions, LedgerError> {
        if let Some(p) = self
            .perms_changed
            .get(a)
            .or_else(|| self.perms_original.get(a))
        {
            return Ok(*p);
        }
        self.parent.permissions(a)
    }

    /// Number of transactions applied so far.
    pub fn applied(&self) -> usize {
        self.applied
    }

    /// The current value of `a` (parent state plus the transactions applied so far).
    ///
    /// Errors: only fatal storage errors from the parent reader.
    pub fn account(&self, a: &Address) -> Result<Account, LedgerError> {
        if let Some(acc) = self.changed.get(a).or_else(|| self.original.get(a)) {
            return Ok(*acc);
        }
        self.parent.account(a)
    }

    /// The state hash of the current state (parent + applied transactions). Costs two
    /// element computations per changed account.
    pub fn lthash(&self) -> LtHash {
        let mut h = self.parent_lthash.clone();
        for (address, new) in &self.changed {
            let old = self.original.get(address).copied().unwrap_or_default();
            h.update(address, &old, new);
        }
        for (address, new) in &self.perms_changed {
            let old = self
                .perms_original
                .get(address)
                .copied()
                .unwrap_or_default();
            h.update_permissions(address, old, *new);
        }
        if let Some(new) = &self.governance {
            let old = self.parent_governance.clone().flatten();
            h.update_governance(old.as_deref(), Some(&**new));
        }
        h
    }

    /// Ends the block: the changed accounts and the state hash after it.
    pub fn finish(self) -> StateDiff {
        let lthash = self.lthash();
        let accounts = self
            .changed
            .into_iter()
            .filter(|(a, acc)| self.original.get(a) != Some(acc))
            .collect();
        let permissions = self
            .perms_changed
            .into_iter()
            .filter(|(a, p)| self.perms_original.get(a) != Some(p))
            .collect();
        let governance = match (&self.governance, self.parent_governance.flatten()) {
            (Some(new), Some(old)) if **new == *old => None,
            (new, _) => new.clone(),
        };
        StateDiff {
            accounts,
            permissions,
            governance,
            validators_changed: self.validators_changed,
            lthash,
        }
    }

    /// The current value of `a`, remembering its parent value (for the hash update).
    fn current(&mut self, a: &Address) -> Result<Account, LedgerError> {
        if let Some(acc) = self.changed.get(a) {
            return Ok(*acc);
        }
        if let Some(acc) = self.original.get(a) {
            return Ok(*acc);
        }
        let acc = self.parent.account(a)?;
        self.original.insert(*a, acc);
        Ok(acc)
    }
}

/// The builder's permissions during one governance transaction: reads go through the
/// builder (remembering parent values), writes are staged and kept only on success.
struct StagedPermissions<'b, 'a> {
    builder: &'b mut BlockBuilder<'a>,
    staged: BTreeMap<Address, Permissions>,
}

impl PermissionStore for StagedPermissions<'_, '_> {
    fn permissions(&mut self, account: &Address) -> Result<Permissions, LedgerError> {
        match self.staged.get(account) {
            Some(p) => Ok(*p),
            None => self.builder.current_permissions(account),
        }
    }

    fn set_permissions(&mut self, account: Address, permissions: Permissions) {
        self.staged.insert(account, permissions);
    }
}

/// Executes a whole block (all-or-nothing) on top of `parent` (whose state hash is
/// `parent_lthash`), in the context of its header. Does not verify signatures, the header's
/// roots or limits (see [`validate_block`]).
///
/// Errors: `Err((index, error))` on the first invalid transaction (0-based index). A fatal
/// `error` ([`LedgerError::is_fatal`]) means storage failed, not that the block is invalid.
pub fn execute_block(
    parent: &dyn StateReader,
    parent_lthash: LtHash,
    block: &Block,
) -> Result<StateDiff, (usize, LedgerError)> {
    let mut builder = BlockBuilder::new(
        parent,
        parent_lthash,
        BlockContext::of_header(&block.header),
    );
    for (i, tx) in block.transactions.iter().enumerate() {
        builder.apply(tx).map_err(|e| (i, e))?;
    }
    Ok(builder.finish())
}

/// Which transaction signatures [`validate_block_with`] verifies.
#[derive(Clone, Copy)]
pub enum SignatureCheck<'a> {
    /// Verify every transaction ([`SignedTransaction::verify`]): blocks from peers.
    All,
    /// Verify none: the caller verified every transaction already (e.g. a block it built).
    Skip,
    /// Verify the transactions the predicate does NOT report as already verified; it gets
    /// each transaction's hash (id) and the transaction itself. A predicate backed by a
    /// cache keyed by id (e.g. a mempool) must also compare the signature bytes: one body
    /// can carry several signatures, and only the one that was checked counts.
    SkipVerified(&'a dyn Fn(&Hash, &SignedTransaction) -> bool),
}

impl std::fmt::Debug for SignatureCheck<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SignatureCheck::All => f.write_str("All"),
            SignatureCheck::Skip => f.write_str("Skip"),
            SignatureCheck::SkipVerified(_) => f.write_str("SkipVerified(..)"),
        }
    }
}

/// Full block check against its parent header, including every transaction signature
/// (`validate_block_with(.., SignatureCheck::All)`): chain id, height = parent+1,
/// parent_hash, count/bytes limits, the body against `txs_root` and `signed_txs_root`
/// ([`Block::check_body`]), every tx valid in order, state_root == diff.state_root().
/// Returns the diff.
///
/// Not checked here (consensus's job): `view`, `proposer` (who may propose) and
/// `timestamp_ms`.
///
/// Errors: [`LedgerError::BodyMismatch`] for a body that is not the header's (the sender's
/// fault, not the block's); [`LedgerError::InvalidBlock`] for a header, limit or state
/// root mismatch;
/// [`LedgerError::InvalidBlockTx`] (with the index and the transaction's own error) for an
/// invalid transaction; fatal storage errors from `parent` are returned unwrapped.
pub fn validate_block(
    parent_header: &BlockHeader,
    parent: &dyn StateReader,
    parent_lthash: LtHash,
    block: &Block,
    limits: &BlockLimits,
) -> Result<StateDiff, LedgerError> {
    validate_block_with(
        parent_header,
        parent,
        parent_lthash,
        block,
        limits,
        SignatureCheck::All,
    )
}

/// [`validate_block`] with a choice of which signatures to verify (see [`SignatureCheck`]).
/// Checks run cheapest first: header fields, limits, both body roots, then each transaction in
/// order (signature, then execution), then `state_root`.
pub fn validate_block_with(
    parent_header: &BlockHeader,
    parent: &dyn StateReader,
    parent_lthash: LtHash,
    block: &Block,
    limits: &BlockLimits,
    signatures: SignatureCheck<'_>,
) -> Result<StateDiff, LedgerError> {
    // Both roots: the body must be exactly the one the header commits to.
    let hashes: Vec<Hash> = block.check_body()?;
    validate_checked(
        parent_header,
        parent,
        parent_lthash,
        block,
        block.hash(),
        &hashes,
        limits,
        signatures,
    )
}

/// [`validate_block_with`] for a block whose body was already checked against its header
/// when it was sealed: the same checks and errors, without hashing the body again.
pub fn validate_sealed_block(
    parent_header: &BlockHeader,
    parent: &dyn StateReader,
    parent_lthash: LtHash,
    block: &crate::SealedBlock,
    limits: &BlockLimits,
    signatures: SignatureCheck<'_>,
) -> Result<StateDiff, LedgerError> {
    validate_checked(
        parent_header,
        parent,
        parent_lthash,
        block.block(),
        block.hash(),
        block.tx_ids(),
        limits,
        signatures,
    )
}

/// The checks of [`validate_block_with`] after the body check: `block_hash` and `hashes`
/// (the transaction ids) belong to `block`, whose body matches its header.
#[allow(clippy::too_many_arguments)]
fn validate_checked(
    parent_header: &BlockHeader,
    parent: &dyn StateReader,
    parent_lthash: LtHash,
    block: &Block,
    block_hash: Hash,
    hashes: &[Hash],
    limits: &BlockLimits,
    signatures: SignatureCheck<'_>,
) -> Result<StateDiff, LedgerError> {
    assert_eq!(
        hashes.len(),
        block.transactions.len(),
        "one id per transaction"
    );
    let header = &block.header;
    let invalid = |reason: String| LedgerError::InvalidBlock {
        block: block_hash,
        height: header.height,
        reason,
    };

    if header.chain_id != parent_header.chain_id {
        return Err(invalid(format!(
            "chain id `{}`, parent's is `{}`",
            header.chain_id, parent_header.chain_id
        )));
    }
    if Some(header.height) != parent_header.height.checked_add(1) {
        return Err(invalid(format!(
            "height {}, parent height is {}",
            header.height, parent_header.height
        )));
    }
    let parent_hash = parent_header.hash();
    if header.parent_hash != parent_hash {
        return Err(invalid(format!(
            "parent_hash {}, parent block is {}",
            header.parent_hash, parent_hash
        )));
    }
    // The limits in force are the parent state's governed ones (capped by `limits`).
    let limits = &limits.at(parent)?;
    if block.transactions.len() > limits.block_txs_max {
        return Err(invalid(format!(
            "{} transactions, more than the limit of {}",
            block.transactions.len(),
            limits.block_txs_max
        )));
    }
    let bytes = encoded_len(block);
    if bytes > limits.block_bytes_max {
        return Err(invalid(format!(
            "{bytes} bytes, more than the limit of {}",
            limits.block_bytes_max
        )));
    }
    let tx_error = |index: usize, error: LedgerError| {
        if error.is_fatal() {
            error
        } else {
            LedgerError::InvalidBlockTx {
                block: block_hash,
                height: header.height,
                index,
                error: Box::new(error),
            }
        }
    };
    let mut builder = BlockBuilder::new(parent, parent_lthash, BlockContext::of_header(header));
    for (index, (tx, hash)) in block.transactions.iter().zip(hashes).enumerate() {
        let verify = match signatures {
            SignatureCheck::All => true,
            SignatureCheck::Skip => false,
            SignatureCheck::SkipVerified(known) => !known(hash, tx),
        };
        if verify {
            tx.verify(&header.chain_id)
                .map_err(|e| tx_error(index, e))?;
        }
        builder.apply(tx).map_err(|e| tx_error(index, e))?;
    }
    let diff = builder.finish();
    if header.state_root != diff.state_root() {
        return Err(invalid(format!(
            "state_root {}, execution gives {}",
            header.state_root,
            diff.state_root()
        )));
    }
    Ok(diff)
}

/// `block.encode().len()`, counted without allocating.
fn encoded_len(block: &Block) -> usize {
    borsh::object_length(block).unwrap_or(usize::MAX)
}
