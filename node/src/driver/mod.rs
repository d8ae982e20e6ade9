//! The consensus driver: one task that owns the consensus state machine, the chain (finalized
//! ledger + pending blocks) and the mempool, and performs the effects consensus asks for.
//!
//! Effects are performed in the order the state machine emits them; a `Persist` is written to
//! RocksDB with a synced write before any later output of the same batch is performed, so a
//! vote is durable before it is sent.
//!
//! Inputs, all through bounded channels: network events, RPC commands, results of work
//! done off this task (signature verification of gossiped transactions, block fetches and
//! sync responses), the single consensus timer, and a periodic tick.
//!
//! The driver is the consensus host: it persists, broadcasts, keeps the timer, executes
//! (validates and builds blocks) and commits. The rest lives in its own modules, as state
//! the driver owns: block bodies waiting for consensus in the [`crate::block_buffer`] (pure
//! state), transaction admission in [`crate::ingress`] (one path for RPC and gossip), and
//! the block sync client in [`crate::sync_client`] (the server is a task of its own,
//! [`crate::sync_server`]).
//!
//! The code is split by concern, every part an `impl Driver` over the one state defined
//! here (one task, so no locks):
//! - this module: the types shared with the rest of the node ([`Shared`], [`Command`],
//!   [`DriverParams`], ...), the task loop ([`Driver::run`]), the consensus loop (`drain`
//!   feeds queued inputs, `perform` / `perform_one` carry out the outputs in order), RPC
//!   commands, results of work done off this task, and the housekeeping tick;
//! - `gossip.rs`: network events (gossip by topic, peers, sync requests forwarded to the
//!   sync server), gossiped transactions sent for verification;
//! - `proposals.rs`: building and publishing this node's proposals, compact blocks and
//!   block bodies (sealed into the block buffer), validation of proposals;
//! - `fetch.rs`: fetches of blocks and transactions from peers, and the sync server's
//!   lookups of blocks held in memory;
//! - `commit.rs`: committing finalized and synced blocks, and what follows a commit
//!   (governed parameters among it);
//! - `epochs.rs`: epoch sets and switches, the WAL's epoch tag, equivocation evidence.

mod commit;
mod epochs;
mod fetch;
mod gossip;
mod proposals;

use epochs::EpochWalEntry;
pub use epochs::{EpochEvidence, EpochSet};

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cairn_consensus::{
    Anchor, Certificate, CertificateKind, Digest, Epoch, EpochInput, EpochMessage, EpochOutput,
    EpochParams, EpochProof, Epochs, Message, Output, Proposal, SigningKey, ValidatorSet, View,
    WalEntry, epoch_namespace,
};
use cairn_genesis::Genesis;
use cairn_ledger::{
    Address, Block, Hash, LedgerError, SealedBlock, SignedTransaction, Store, VerifiedTx,
};
use libp2p::PeerId;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::block_buffer::BlockBuffer;
pub use crate::block_buffer::FETCHES_IN_FLIGHT_MAX;
use crate::chain::Chain;
use crate::compact::{PARTIAL_WAIT_MS, RebuiltBlock};
use crate::ingress::TxOrigin;
use crate::mempool::{GAP_GRACE_BLOCKS, Mempool, MempoolError};
use crate::metrics::Metrics;
use crate::network::{MessageId, NetworkEvent, NetworkHandle, PeerFault, Topic};
use crate::sync::StoredEpochProof;
use crate::sync_client::{SyncClient, SyncEvent, SyncParams};
use crate::sync_server::{Lookup, ServeRequest};

/// Proposals waiting for their body or parent.
pub const AWAITING_VALIDATION_MAX: usize = 64;
/// Finalization certificates waiting for their block (or its ancestors).
pub const FINALIZED_WAITING_MAX: usize = 64;
/// Rejected transaction hashes remembered for `getTransaction` ([`Shared::refusals`]).
pub const REJECTED_REMEMBERED_MAX: usize = crate::refusals::REFUSALS_MAX;
/// Gossiped transactions being signature-checked off the driver task at once.
pub const VERIFY_IN_FLIGHT_MAX: usize = 16_384;
/// A block with at least this many transactions the node has not verified has them
/// verified together on a blocking thread, off the driver task (fewer are verified inline).
pub const BLOCK_BATCH_VERIFY_MIN: usize = 16;
/// Driver command queue bound.
pub const COMMAND_QUEUE_MAX: usize = 4096;
/// Internal result queue bound.
pub const INTERNAL_QUEUE_MAX: usize = 8192;
/// Store metadata key prefix of equivocation evidence records (`<prefix><view>/<signer>`).
pub const EVIDENCE_KEY_PREFIX: &str = "evidence/";
/// Period of the driver's housekeeping tick, ms.
pub const TICK_MS: u64 = 100;
/// Longest a leader waits for transactions before proposing an empty block, ms (capped at
/// half the leader timeout so replicas never time out a patient leader).
pub const EMPTY_BLOCK_WAIT_MS: u64 = 1000;
/// Finalized blocks between two passes dropping mempool transactions stranded behind nonce
/// gaps (each pass reads every pooled sender's account once).
pub const GAP_CHECK_EVERY_BLOCKS: u64 = 32;
/// Largest accepted skew of a proposal's timestamp ahead of the local wall clock, ms.
pub const CLOCK_SKEW_MAX_MS: u64 = 30_000;
/// Store metadata key prefix of ended epochs' proofs (`<prefix><epoch u64 as 20 digits>`,
/// borsh [`StoredEpochProof`]).
pub const EPOCH_PROOF_KEY_PREFIX: &str = "epoch_proof/";

/// Why a submitted transaction was not accepted.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SubmitError {
    /// Refused by stateless checks (signature, chain id, encoding).
    #[error("{0}")]
    Invalid(LedgerError),
    /// Refused by the mempool (nonce, balance, expiry, duplicate, full).
    #[error("{0}")]
    Mempool(MempoolError),
    /// The node is shutting down or overloaded.
    #[error("node unavailable: {0}")]
    Unavailable(String),
}

impl SubmitError {
    /// Stable reason code.
    pub fn code(&self) -> String {
        match self {
            SubmitError::Invalid(e) => e.code().to_string(),
            SubmitError::Mempool(e) => e.code().to_string(),
            SubmitError::Unavailable(_) => "unavailable".into(),
        }
    }
}

/// What the driver knows about a transaction that is not finalized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalTxStatus {
    /// In the mempool.
    Pending,
    /// Refused or dropped, with its reason code and message.
    Rejected { code: String, reason: String },
    /// Never seen (or forgotten).
    Unknown,
}

/// Requests from the RPC server.
pub enum Command {
    /// Admit a batch of transactions whose signatures and chain id this node checked (at
    /// most `cairn_rpc::SEND_TRANSACTIONS_MAX`); one result per transaction, in order.
    SubmitBatch {
        txs: Vec<VerifiedTx>,
        reply: oneshot::Sender<Vec<Result<Hash, SubmitError>>>,
    },
    /// Mempool / rejection status of a transaction: `Pending` while pooled, else its
    /// refusal from [`Shared::refusals`], else `Unknown`.
    TxStatus {
        hash: Hash,
        reply: oneshot::Sender<LocalTxStatus>,
    },
    /// The nonce `address`'s next transaction should carry: its account nonce in the state
    /// the next block builds on plus its gap-free run of pooled transactions
    /// ([`Mempool::next_nonce`]); a storage failure is a message.
    NextNonce {
        address: Address,
        reply: oneshot::Sender<Result<u64, String>>,
    },
}

/// State shared with the RPC server (read-only there).
pub struct Shared {
    /// The ledger.
    pub store: Arc<Store>,
    /// The genesis.
    pub genesis: Arc<Genesis>,
    /// Connected peers.
    pub peer_count: AtomicU32,
    /// True while a peer reports a finalized head more than one block ahead.
    pub syncing: AtomicBool,
    /// Metrics.
    pub metrics: Metrics,
    /// Node name.
    pub moniker: String,
    /// This node's consensus key, if it has one (`getStatus` names the validator it is in
    /// the running epoch's set, if any).
    pub validator_key: Option<Address>,
    /// Signature checks of received transactions (RPC and gossip), coalesced into batches.
    pub verifier: crate::verifier::Verifier,
    /// True while the mempool takes no more submissions to this node
    /// ([`Mempool::is_full_for_local`]: its local share is used; gossip may still fill the
    /// rest); set by the driver whenever the pool changes. The RPC server then refuses
    /// submissions as `overloaded` before spending signature checks on them.
    pub mempool_full: AtomicBool,
    /// The mempool's per-sender window (`mempool_sender_future_max` of the chain parameters
    /// in force; the driver updates it when governance changes them). The RPC server refuses
    /// a submission whose nonce is outside `account_nonce ..= account_nonce + window` from one
    /// state read, before spending a signature check on it.
    pub sender_future_max: std::sync::atomic::AtomicU64,
    /// Recent refusals (at most [`crate::refusals::REFUSALS_MAX`], oldest forgotten first):
    /// written by the RPC backend (refused before the mempool) and the driver (mempool
    /// refusals and drops), read by `getTransaction`.
    pub refusals: std::sync::Mutex<crate::refusals::RefusalLog>,
    /// Finalized blocks for the RPC server's WebSocket subscribers
    /// ([`cairn_rpc::RpcBackend::finalized_blocks`]): the driver sends each committed block
    /// (never waiting: a broadcast of [`FINALIZED_BROADCAST_MAX`] blocks, whose receivers
    /// that fall further behind see `Lagged`).
    pub finalized_blocks: tokio::sync::broadcast::Sender<Arc<cairn_rpc::FinalizedBlock>>,
    /// The finalized head height, published by the driver after each commit (a `watch`:
    /// a send never waits, readers see the latest); the pruner ([`crate::pruner`]) follows it.
    pub committed_height: tokio::sync::watch::Sender<u64>,
    /// The snapshot maker's trigger (`None`: this node makes no state snapshots); the commit
    /// path hands it each new head height ([`crate::snapshots`]).
    pub snapshots: Option<crate::snapshots::SnapshotTrigger>,
}

impl Shared {
    /// The refusal log, locked (a poisoned lock is taken over: the log stays consistent
    /// after every single operation).
    pub fn refusals(&self) -> std::sync::MutexGuard<'_, crate::refusals::RefusalLog> {
        self.refusals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Capacity of [`Shared::finalized_blocks`], blocks: a WebSocket connection more than this
/// many blocks behind is closed (reason `lagged`).
pub const FINALIZED_BROADCAST_MAX: usize = 256;

impl Shared {
    /// A new [`Shared::finalized_blocks`] sender of capacity [`FINALIZED_BROADCAST_MAX`].
    pub fn finalized_blocks_channel()
    -> tokio::sync::broadcast::Sender<Arc<cairn_rpc::FinalizedBlock>> {
        tokio::sync::broadcast::channel(FINALIZED_BROADCAST_MAX).0
    }
}

/// Results of work done off the driver task (bounded queue: [`INTERNAL_QUEUE_MAX`]).
// A fetched block travels by value once from its request task to the driver; boxing it
// would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum Internal {
    TxBatchVerified {
        /// Ids of the transactions sent for verification (counted in `verify_in_flight`,
        /// listed in `verifying`).
        ids: Vec<Hash>,
        /// One verdict per transaction sent (empty if the verifier stopped).
        results: Vec<Result<VerifiedTx, LedgerError>>,
        source: PeerId,
        message_id: MessageId,
    },
    Fetched {
        hash: Hash,
        block: Option<Block>,
        /// The peer that answered (blamed for a body that is not the block asked for).
        peer: PeerId,
    },
    /// Answer to a request for a waiting compact block's missing transactions.
    FetchedTxs {
        block: Hash,
        view: View,
        indices: Vec<u32>,
        /// The transactions, or why the request failed.
        txs: Result<Vec<SignedTransaction>, String>,
    },
    RequestFailed {
        what: &'static str,
        peer: PeerId,
        reason: String,
    },
}

/// Where a block body came from, which says who is at fault if it is not the block its
/// header commits to.
#[derive(Debug, Clone, Copy)]
pub(crate) enum BodyOrigin {
    /// Rebuilt from transactions this node holds (compact block reassembly), for a block
    /// proposed in `view` (compact block from `peer`, if known): nobody is provably at fault.
    Rebuilt { view: View, peer: Option<PeerId> },
    /// Served whole by `peer` (a fetch by hash): the peer is at fault.
    Fetched { peer: PeerId, view: Option<View> },
}

/// A block body before it is sealed.
enum Body {
    /// Rebuilt from a compact block (transactions from the mempool, the verifier or a
    /// transaction fetch).
    Rebuilt(RebuiltBlock),
    /// Served whole by a peer.
    Fetched(Block),
}

/// Driver parameters derived from genesis and config.
pub struct DriverParams {
    /// Chain id.
    pub chain_id: String,
    /// Consensus namespace (genesis hash).
    pub namespace: [u8; 32],
    /// Validator set.
    pub validators: ValidatorSet,
    /// Addresses of the validators' consensus keys, by index.
    pub validator_addresses: Vec<Address>,
    /// The validators' libp2p peer ids from genesis, by index (`None` if one does not
    /// parse); a block is fetched from the peer of the validator that proposed it.
    pub validator_peers: Vec<Option<PeerId>>,
    /// This node's address, if a validator.
    pub me: Option<Address>,
    /// Per-block transaction bound.
    pub block_txs_max: usize,
    /// Per-block byte bound.
    pub block_bytes_max: usize,
    /// Leader timeout (bounds the empty-block wait).
    pub leader_timeout_ms: u64,
    /// Least time between a block's timestamp and the proposal of its child, ms (genesis
    /// `block_interval_ms`; 0: propose as soon as the parent is notarized).
    pub block_interval_ms: u64,
    /// How often to poll a peer's head, ms.
    pub sync_interval_ms: u64,
    /// Block-sync range bounds: blocks per request (`[sync] batch_blocks_max`), requests in
    /// flight in all and per peer, and their deadline (`[sync] range_*`).
    pub sync_range_limits: crate::sync_schedule::RangeLimits,
    /// Re-check transaction signatures of certified synced blocks (`[sync]
    /// reverify_signatures`).
    pub sync_reverify_signatures: bool,
    /// Sync response byte bound.
    pub sync_response_bytes_max: usize,
    /// The chain parameters in force when the driver starts (genesis's as changed by
    /// governance); [`Driver`] re-reads them after each commit.
    pub params_in_force: cairn_genesis::ChainParams,
}

impl DriverParams {
    /// Switches to epoch `set.epoch`'s validator set (leader schedule, addresses, peers).
    pub fn set_epoch(&mut self, set: EpochSet) {
        self.validators = set.validators;
        self.validator_addresses = set.addresses;
        self.validator_peers = set.peers;
    }

    /// The namespace epoch `epoch`'s votes sign (`cairn_consensus::epoch_namespace`).
    pub fn namespace_of(&self, epoch: Epoch) -> [u8; 32] {
        epoch_namespace(&self.namespace, epoch)
    }
}

/// The driver task's state.
pub struct Driver {
    pub(crate) params: DriverParams,
    /// The consensus instances, one per epoch (`cairn_consensus::epoch`).
    epochs: Epochs,
    epoch_params: EpochParams,
    /// This node's consensus key, if it has one (it votes in the epochs whose set holds it).
    signer: Option<SigningKey>,
    /// An ended epoch whose boundary block cannot be committed yet (ancestors missing).
    epoch_end_waiting: Option<(Epoch, Hash, EpochProof)>,
    pub(crate) chain: Chain,
    pub(crate) mempool: Mempool,
    pub(crate) net: NetworkHandle,
    pub(crate) shared: Arc<Shared>,
    started: Instant,
    timer_deadline_ms: Option<u64>,
    inputs: VecDeque<EpochInput>,
    /// Received (sealed) bodies, compact blocks waiting for transactions, fetches in
    /// flight: pure state with its own bounds ([`crate::block_buffer`]).
    pub(crate) buffer: BlockBuffer,
    /// Proposals waiting for their body or parent (at most [`AWAITING_VALIDATION_MAX`]),
    /// with when they started waiting (ms, driver clock).
    awaiting: HashMap<Hash, (Proposal, u64)>,
    pub(crate) pending_build: Option<(View, Hash)>,
    /// The block this node built for a view, until its own Notarize vote for it (the signed
    /// proposal) comes out of consensus and is published with the compact block.
    proposing: Option<(View, SealedBlock)>,
    /// Verified finalization certificates waiting for their block (at most
    /// [`FINALIZED_WAITING_MAX`]).
    finalized_waiting: HashMap<Hash, Certificate>,
    peers: Vec<PeerId>,
    /// Gossiped transactions being verified (at most [`VERIFY_IN_FLIGHT_MAX`]).
    verify_in_flight: usize,
    /// Ids of the gossiped transactions being verified (at most [`VERIFY_IN_FLIGHT_MAX`]
    /// entries: a subset of `verify_in_flight`'s), so a compact block that lacks only these
    /// waits for their verdicts instead of fetching them (`PartialBlocks::due`).
    verifying: HashSet<Hash>,
    /// The block sync client (requests and checks; the driver commits).
    sync: SyncClient,
    sync_events: mpsc::Receiver<SyncEvent>,
    /// Finalized height at the last [`Mempool::evict_gapped`] pass.
    gap_check_height: u64,
    rr: usize,
    /// Locally admitted transactions waiting to be gossiped as one batch (at most
    /// `TX_BATCH_TXS_MAX`), and when the oldest arrived (ms, driver clock).
    pub(crate) tx_outbox: Vec<SignedTransaction>,
    pub(crate) tx_outbox_since_ms: u64,
    internal_tx: mpsc::Sender<Internal>,
    internal_rx: mpsc::Receiver<Internal>,
    /// Sync requests forwarded to the sync server (bounded:
    /// [`crate::sync_server::REQUEST_QUEUE_MAX`]).
    sync_requests: mpsc::Sender<ServeRequest>,
    /// The sync server's lookups of in-memory blocks (bounded:
    /// [`crate::sync_server::LOOKUP_QUEUE_MAX`]).
    lookups: mpsc::Receiver<Lookup>,
    /// A test build's deliberately Byzantine behaviour ([`crate::byzantine`]); never in a
    /// release binary.
    #[cfg(all(feature = "byzantine", debug_assertions))]
    byzantine: Option<crate::byzantine::Byzantine>,
}

/// True if `mempool` holds transaction `id` with exactly `tx`'s signature bytes: its
/// signature was checked on admission. The same id with other signature bytes (the sender
/// signed the body twice, or someone mangled a copy) was not.
fn holds_verified(mempool: &Mempool, id: &Hash, tx: &SignedTransaction) -> bool {
    mempool
        .get(id)
        .is_some_and(|held| held.signature == tx.signature)
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn digest(h: Hash) -> Digest {
    Digest(h.0)
}
fn hash(d: Digest) -> Hash {
    Hash(d.0)
}

/// A fatal driver failure: storage broke; the node must stop.
#[derive(Debug, thiserror::Error)]
#[error("fatal: {0}")]
pub struct FatalError(pub String);

impl Driver {
    /// Builds the driver in the newest epoch the store records (its set, anchor and WAL
    /// entries): `consensus_config` gives the chain namespace and timings, `signer` the
    /// consensus key, which votes in every epoch whose set holds it. Sync requests go to
    /// `sync_requests` (the sync server); its lookups of in-memory blocks come in on
    /// `lookups`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        params: DriverParams,
        consensus_config: cairn_consensus::Config,
        signer: Option<SigningKey>,
        chain: Chain,
        mempool: Mempool,
        net: NetworkHandle,
        shared: Arc<Shared>,
        sync_requests: mpsc::Sender<ServeRequest>,
        lookups: mpsc::Receiver<Lookup>,
    ) -> Result<Driver, FatalError> {
        let mut params = params;
        let head = chain.head().clone();
        // The running epoch: the newest the store recorded (a chain without governance
        // stays in epoch 0 with the genesis set).
        let record = chain
            .store()
            .epoch_at_height(head.height.saturating_add(1))
            .map_err(|e| FatalError(e.to_string()))?;
        let epoch = match &record {
            Some(record) => {
                let set = EpochSet::of_record(record)?;
                let epoch = set.epoch;
                params.set_epoch(set);
                epoch
            }
            None => 0,
        };
        let epoch_anchor = Anchor {
            view: 0,
            payload: digest(chain.epoch_anchor()),
        };
        let anchor = if chain.head_hash() == chain.epoch_anchor() {
            epoch_anchor
        } else {
            Anchor {
                view: head.view,
                payload: digest(chain.head_hash()),
            }
        };
        let mut wal = Vec::new();
        for (view, bytes) in chain
            .store()
            .wal_entries()
            .map_err(|e| FatalError(e.to_string()))?
        {
            let entry: EpochWalEntry = borsh::from_slice(&bytes).map_err(|e| {
                FatalError(format!(
                    "consensus WAL entry at view {view} does not decode: {e}"
                ))
            })?;
            // Entries of ended epochs are left by a crash between the epoch switch and the
            // WAL clear: they can never matter again.
            if entry.epoch == epoch {
                wal.push(entry.entry);
            }
        }
        let epoch_params = EpochParams::from_config(&consensus_config);
        if let Some(key) = &signer {
            params.me = Some(Address(key.verifying_key().to_bytes()));
        }
        let mut epochs = Epochs::new(
            epoch_params.clone(),
            epoch,
            params.validators.clone(),
            signer.clone(),
            epoch_anchor,
            anchor,
            &wal,
        )
        .map_err(|e| FatalError(e.to_string()))?;
        for (_, bytes) in chain
            .store()
            .meta_scan(
                EPOCH_PROOF_KEY_PREFIX,
                cairn_consensus::EPOCH_PROOFS_KEPT * 64,
            )
            .map_err(|e| FatalError(e.to_string()))?
        {
            if let Ok(stored) = borsh::from_slice::<StoredEpochProof>(&bytes) {
                epochs.remember_proof(stored.proof);
            }
        }
        let (internal_tx, internal_rx) = mpsc::channel(INTERNAL_QUEUE_MAX);
        let (sync, sync_events) = SyncClient::new(
            SyncParams {
                chain_id: params.chain_id.clone(),
                chain_namespace: params.namespace,
                epoch,
                namespace: params.namespace_of(epoch),
                validators: params.validators.clone(),
                interval_ms: params.sync_interval_ms,
                range_limits: params.sync_range_limits,
                reverify_signatures: params.sync_reverify_signatures,
                response_bytes_max: params.sync_response_bytes_max,
            },
            net.clone(),
            shared.clone(),
        );
        Ok(Driver {
            params,
            epochs,
            epoch_params,
            signer,
            epoch_end_waiting: None,
            chain,
            mempool,
            net,
            shared,
            started: Instant::now(),
            timer_deadline_ms: None,
            inputs: VecDeque::new(),
            buffer: BlockBuffer::new(),
            awaiting: HashMap::new(),
            pending_build: None,
            proposing: None,
            finalized_waiting: HashMap::new(),
            peers: Vec::new(),
            verify_in_flight: 0,
            verifying: HashSet::new(),
            sync,
            sync_events,
            gap_check_height: 0,
            rr: 0,
            tx_outbox: Vec::new(),
            tx_outbox_since_ms: 0,
            internal_tx,
            internal_rx,
            sync_requests,
            lookups,
            #[cfg(all(feature = "byzantine", debug_assertions))]
            byzantine: None,
        })
    }

    /// Makes this validator Byzantine (test builds only: [`crate::byzantine`]).
    #[cfg(all(feature = "byzantine", debug_assertions))]
    pub fn set_byzantine(&mut self, byzantine: crate::byzantine::Byzantine) {
        warn!(
            "BYZANTINE TEST MODE: this validator will equivocate, withhold or propose invalid blocks"
        );
        self.byzantine = Some(byzantine);
    }

    pub(crate) fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Runs until `shutdown` resolves or a fatal error.
    pub async fn run(
        mut self,
        mut net_events: mpsc::Receiver<NetworkEvent>,
        mut commands: mpsc::Receiver<Command>,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), FatalError> {
        tokio::pin!(shutdown);
        let outputs = self.epochs.start(self.now_ms());
        self.perform(outputs).await?;
        self.drain().await?;
        let mut tick = tokio::time::interval(Duration::from_millis(TICK_MS));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let timer = self.timer_deadline_ms.map(|d| {
                let now = self.now_ms();
                tokio::time::Instant::now() + Duration::from_millis(d.saturating_sub(now))
            });
            let outbox_due = self.tx_outbox_due_ms().map(|due| {
                tokio::time::Instant::now()
                    + Duration::from_millis(due.saturating_sub(self.now_ms()))
            });
            let partials_due = self
                .buffer
                .partials
                .next_due_ms(PARTIAL_WAIT_MS)
                .map(|due| {
                    tokio::time::Instant::now()
                        + Duration::from_millis(due.saturating_sub(self.now_ms()))
                });
            tokio::select! {
                _ = &mut shutdown => { info!("driver stopping"); return Ok(()); }
                ev = net_events.recv() => match ev {
                    Some(ev) => self.on_network(ev).await?,
                    None => return Err(FatalError("network task ended".into())),
                },
                Some(cmd) = commands.recv() => self.on_command(cmd).await?,
                Some(res) = self.internal_rx.recv() => self.on_internal(res).await?,
                Some(event) = self.sync_events.recv() => self.on_sync_event(event).await?,
                Some(lookup) = self.lookups.recv() => self.on_lookup(lookup),
                _ = async { tokio::time::sleep_until(timer.expect("guarded")).await }, if timer.is_some() => {
                    self.timer_deadline_ms = None;
                    let now_ms = self.now_ms();
                    self.inputs.push_back(EpochInput::Timeout { now_ms });
                }
                _ = async { tokio::time::sleep_until(outbox_due.expect("guarded")).await }, if outbox_due.is_some() => {
                    self.flush_tx_outbox().await
                }
                _ = async { tokio::time::sleep_until(partials_due.expect("guarded")).await }, if partials_due.is_some() => {
                    self.request_missing_txs()
                }
                _ = tick.tick() => self.on_tick().await?,
            }
            self.drain().await?;
        }
    }

    /// Feeds queued inputs to consensus and performs the outputs until quiescent.
    async fn drain(&mut self) -> Result<(), FatalError> {
        // Bounded: each input yields finitely many outputs, and outputs enqueue at most one
        // input each (Validated / Proposed), which do not recurse without new network input.
        let mut steps = 0usize;
        while let Some(input) = self.inputs.pop_front() {
            steps += 1;
            assert!(steps < 100_000, "consensus input loop does not quiesce");
            match self.epochs.handle(input) {
                Ok(outputs) => self.perform(outputs).await?,
                Err(e) => debug!(error = %e, "consensus refused a local input"),
            }
        }
        self.shared
            .metrics
            .view
            .set(self.epochs.instance().view() as i64);
        Ok(())
    }

    /// The running epoch.
    pub(crate) fn epoch(&self) -> Epoch {
        self.epochs.epoch()
    }

    /// Performs the outputs of [`Epochs`] in order; an epoch switch's own outputs are
    /// performed after the ones already queued.
    async fn perform(&mut self, outputs: Vec<EpochOutput>) -> Result<(), FatalError> {
        let mut queue: VecDeque<EpochOutput> = outputs.into();
        // Bounded: only an epoch switch adds outputs, and it happens once per epoch.
        while let Some(out) = queue.pop_front() {
            match out {
                EpochOutput::Consensus { epoch, output } => self.perform_one(epoch, output).await?,
                EpochOutput::EpochEnded {
                    epoch,
                    last_block,
                    proof,
                } => {
                    info!(epoch, last_block = %hash(last_block), "epoch ended");
                    self.epoch_end_waiting = Some((epoch, hash(last_block), proof));
                    queue.extend(self.try_end_epoch().await?);
                }
                EpochOutput::EpochStarted {
                    epoch,
                    anchor,
                    voting,
                } => {
                    info!(epoch, anchor = %hash(anchor.payload), voting, validators = self.params.validators.len(), "epoch started");
                    self.shared.metrics.epoch.set(epoch as i64);
                }
                EpochOutput::BlockNeeded { epoch, payload } => {
                    let h = hash(payload);
                    if let Some(input) = self.block_input(epoch, &h) {
                        self.inputs.push_back(input);
                    } else if !self.buffer.contains(&h) {
                        self.fetch(h, None);
                    }
                }
                EpochOutput::CatchUp { epoch } => {
                    debug!(epoch, "a peer is in a later epoch: syncing");
                    self.sync.request_now();
                }
            }
        }
        Ok(())
    }

    /// Performs one output of epoch `epoch`'s instance.
    async fn perform_one(&mut self, epoch: Epoch, out: Output) -> Result<(), FatalError> {
        {
            match out {
                Output::Persist(entry) => {
                    let WalEntry::Voted(vote) = &entry;
                    let view = vote.kind.view();
                    let bytes = borsh::to_vec(&EpochWalEntry { epoch, entry })
                        .expect("borsh to Vec never fails");
                    self.chain
                        .store()
                        .wal_append(view, &bytes)
                        .map_err(|e| FatalError(format!("consensus WAL write failed: {e}")))?;
                }
                Output::Broadcast(msg) => {
                    #[cfg(all(feature = "byzantine", debug_assertions))]
                    if self.byzantine.is_some() {
                        self.byzantine_broadcast(epoch, msg).await;
                        return Ok(());
                    }
                    if let Message::Vote(vote) = &msg {
                        self.publish_own_proposal(epoch, vote).await;
                    }
                    let envelope = EpochMessage {
                        epoch,
                        message: msg,
                    };
                    if let Err(e) = self.net.publish(Topic::Consensus, envelope.encode()).await {
                        warn!(error = %e, "publishing a consensus message failed");
                    }
                }
                Output::SetTimer { deadline_ms } => self.timer_deadline_ms = Some(deadline_ms),
                Output::BuildProposal { view, parent, .. } => {
                    self.pending_build = Some((view, hash(parent)));
                    self.try_build().await?;
                }
                Output::Validate(proposal) => self.try_validate(proposal).await?,
                Output::Notarized(cert) => {
                    if let CertificateKind::Notarization(p) = &cert.kind {
                        let h = hash(p.payload);
                        if !self.chain.can_extend(&h) && !self.buffer.contains(&h) {
                            self.fetch(h, Some(p.view));
                        }
                    }
                }
                Output::Finalized(cert) => {
                    if epoch == self.epoch() {
                        self.on_finalized(cert).await?
                    }
                }
                Output::Evidence(evidence) => {
                    warn!(
                        signer = evidence.signer(),
                        view = evidence.view(),
                        "equivocation evidence"
                    );
                    if self.store_evidence(epoch, &evidence)? {
                        // Gossip it so every node holds the proof, also those that never saw
                        // both conflicting votes (R15). Publishing can fail with no peers;
                        // the record is stored either way.
                        let bytes = EpochEvidence { epoch, evidence }.encode();
                        if let Err(e) = self.net.publish(Topic::Evidence, bytes).await {
                            debug!(error = %e, "publishing evidence failed");
                        }
                    }
                }
                Output::ViewChanged { view } => {
                    self.shared.metrics.view.set(view as i64);
                    if let Some((v, _)) = &self.proposing
                        && *v < view
                    {
                        self.proposing = None;
                    }
                    if let Some((v, _)) = self.pending_build
                        && v < view
                    {
                        self.pending_build = None;
                    }
                }
            }
        }
        Ok(())
    }

    async fn on_command(&mut self, cmd: Command) -> Result<(), FatalError> {
        match cmd {
            Command::SubmitBatch { txs, reply } => {
                let results = self.admit_batch(txs, TxOrigin::Local).await?;
                let _ = reply.send(
                    results
                        .into_iter()
                        .map(|r| r.map_err(SubmitError::Mempool))
                        .collect(),
                );
            }
            Command::TxStatus { hash, reply } => {
                let s = if self.mempool.contains(&hash) {
                    LocalTxStatus::Pending
                } else if let Some(r) = self.shared.refusals().get(&hash) {
                    LocalTxStatus::Rejected {
                        code: r.reason.clone(),
                        reason: r.message.clone(),
                    }
                } else {
                    LocalTxStatus::Unknown
                };
                let _ = reply.send(s);
            }
            Command::NextNonce { address, reply } => {
                let store = self.chain.store().clone();
                let next = self
                    .mempool
                    .next_nonce(&address, store.as_ref())
                    .map_err(|e| e.to_string());
                let _ = reply.send(next);
            }
        }
        Ok(())
    }

    async fn on_internal(&mut self, res: Internal) -> Result<(), FatalError> {
        match res {
            Internal::TxBatchVerified {
                ids,
                results,
                source,
                message_id,
            } => {
                self.verify_in_flight -= ids.len();
                for id in &ids {
                    self.verifying.remove(id);
                }
                let invalid = results.iter().any(Result::is_err);
                let txs: Vec<VerifiedTx> = results.into_iter().filter_map(Result::ok).collect();
                let origin = TxOrigin::Gossip {
                    source,
                    message_id,
                    invalid,
                };
                self.admit_batch(txs, origin).await?;
            }
            Internal::FetchedTxs {
                block,
                view,
                indices,
                txs,
            } => {
                self.buffer.end_tx_fetch();
                if !self.buffer.partials.contains(&block) {
                    return Ok(()); // completed or dropped meanwhile
                }
                match txs.and_then(|txs| self.buffer.partials.fill(&block, &indices, txs)) {
                    Ok(Some(b)) => {
                        self.on_rebuilt(b, BodyOrigin::Rebuilt { view, peer: None })
                            .await?
                    }
                    Ok(None) => {}
                    Err(reason) => {
                        // Fall back to the whole block (any peer).
                        debug!(%block, reason, "fetching a compact block's transactions failed");
                        self.fetch(block, Some(view));
                    }
                }
            }
            Internal::Fetched { hash, block, peer } => match block {
                Some(b) if b.hash() == hash => {
                    let view = Some(b.header.view);
                    self.on_block_body(Body::Fetched(b), BodyOrigin::Fetched { peer, view })
                        .await?;
                }
                Some(b) => {
                    // Asked for one block, served another: never honest.
                    warn!(%peer, asked = %hash, served = %b.hash(), "peer served another block than the one asked for");
                    self.net.penalize(peer, PeerFault::BadBlockBody);
                    self.buffer.end_fetch(&hash);
                    self.fetch_avoiding(hash, None, Some(peer));
                }
                None => {
                    self.buffer.end_fetch(&hash);
                }
            },
            Internal::RequestFailed { what, peer, reason } => {
                debug!(%peer, what, reason, "request failed");
            }
        }
        Ok(())
    }

    async fn on_tick(&mut self) -> Result<(), FatalError> {
        let now = self.now_ms();
        if self.pending_build.is_some() {
            self.try_build().await?;
        }
        // Ask for bodies of proposals that did not arrive by gossip.
        let missing: Vec<(Hash, View)> = self
            .awaiting
            .iter()
            .filter(|(h, (_, since))| now.saturating_sub(*since) > 300 && !self.buffer.contains(h))
            .map(|(h, (p, _))| (*h, p.view))
            .collect();
        for (h, view) in missing {
            self.fetch(h, Some(view));
        }
        self.buffer.partials.prune(self.chain.head().height);
        // Forget proposals for views long gone.
        let view = self.epochs.instance().view();
        self.awaiting.retain(|_, (p, _)| p.view + 16 >= view);
        if self.sync.poll_due(now)
            && let Some(peer) = self.next_peer()
        {
            self.sync.poll_status(peer);
        }
        // Range requests past their deadline go to other peers; peers skipped for a moment
        // are asked again.
        let head = self.chain.head().height;
        if self.sync.best_peer_height() > head {
            self.sync.schedule(head, now);
        }
        let height = self.chain.head().height;
        if height % 64 == 0 {
            self.mempool.prune_expired(height + 1);
        }
        // Transactions stranded behind a nonce gap (e.g. a lower nonce refused while the pool
        // was full) would otherwise hold the pool until they expire.
        if height >= self.gap_check_height.saturating_add(GAP_CHECK_EVERY_BLOCKS) {
            self.gap_check_height = height;
            let store = self.chain.store().clone();
            let evicted = self
                .mempool
                .evict_gapped(store.as_ref(), height + 1, GAP_GRACE_BLOCKS);
            if !evicted.is_empty() {
                debug!(
                    count = evicted.len(),
                    height, "dropped transactions behind nonce gaps"
                );
                self.mempool_changed();
            }
            for (h, missing) in evicted {
                self.remember_rejected(
                    h,
                    "nonce_gap".into(),
                    format!(
                        "dropped from the mempool after {GAP_GRACE_BLOCKS} blocks waiting for the sender's nonce {missing}"
                    ),
                );
            }
        }
        Ok(())
    }
}
