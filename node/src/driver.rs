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

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cairn_consensus::{
    Anchor, BlockKind, Certificate, CertificateKind, Digest, Epoch, EpochError, EpochInput,
    EpochMessage, EpochOutput, EpochParams, EpochProof, Epochs, Evidence, Message, Output,
    Proposal, SigningKey, ValidatorSet, View, Vote, VoteKind, WalEntry, epoch_namespace,
};
use cairn_genesis::Genesis;
use cairn_ledger::{
    Address, Block, Hash, HashedTx, LedgerError, SealedBlock, SignedTransaction, Store, VerifiedTx,
};
use libp2p::PeerId;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, info, warn};

pub use crate::block_buffer::FETCHES_IN_FLIGHT_MAX;
use crate::block_buffer::{BlockBuffer, Insert, Origin};
use crate::chain::{Chain, ChainError};
use crate::compact::{CompactBlock, MissingRequest, PARTIAL_WAIT_MS, Reassembly, RebuiltBlock};
use crate::ingress::TxOrigin;
use crate::mempool::{GAP_GRACE_BLOCKS, Mempool, MempoolError};
use crate::metrics::Metrics;
use crate::network::{Acceptance, MessageId, NetworkEvent, NetworkHandle, PeerFault, Topic};
use crate::sync::{StoredEpochProof, SyncRequest, SyncResponse};
use crate::sync_client::{SyncClient, SyncEvent, SyncParams, SyncedRange};
use crate::sync_server::{Lookup, ServeRequest, pick};
use crate::txgossip::decode_batch;
use crate::verifier::verify_parallel;
/// Proposals waiting for their body or parent.
pub const AWAITING_VALIDATION_MAX: usize = 64;
/// Finalization certificates waiting for their block (or its ancestors).
pub const FINALIZED_WAITING_MAX: usize = 64;
/// Rejected transaction hashes remembered for `getTransaction`.
pub const REJECTED_REMEMBERED_MAX: usize = 16_384;
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

/// A consensus WAL entry with the epoch of the instance that wrote it (the store's WAL
/// is keyed by view, and views restart in every epoch). On a restart only entries of the
/// running epoch are replayed; the WAL is emptied when an epoch starts.
#[derive(borsh::BorshSerialize, borsh::BorshDeserialize)]
struct EpochWalEntry {
    epoch: Epoch,
    entry: WalEntry,
}

/// The payload of the evidence topic (`/cairn/{namespace}/evidence/2`): the epoch (u64 little
/// endian) whose set signed the conflicting votes, then the [`Evidence`] encoding; at most
/// [`EpochEvidence::BYTES_MAX`] bytes, checked before decoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochEvidence {
    /// The epoch of the votes (they verify under its namespace and set only).
    pub epoch: Epoch,
    /// The two conflicting votes.
    pub evidence: Evidence,
}

impl EpochEvidence {
    /// Largest valid encoding: 8 + [`Evidence::BYTES_MAX`].
    pub const BYTES_MAX: usize = 8 + Evidence::BYTES_MAX;

    /// The epoch's 8 bytes then the evidence's own encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.epoch.to_le_bytes().to_vec();
        out.extend(self.evidence.encode());
        out
    }

    /// Decodes (size checked first); verifies nothing.
    ///
    /// # Errors
    /// Oversize, shorter than 8 bytes, or evidence that does not decode (the sender's
    /// fault).
    pub fn decode(bytes: &[u8]) -> Result<EpochEvidence, String> {
        if bytes.len() > Self::BYTES_MAX {
            return Err(format!(
                "evidence of {} bytes exceeds {}",
                bytes.len(),
                Self::BYTES_MAX
            ));
        }
        let Some((epoch, rest)) = bytes.split_first_chunk::<8>() else {
            return Err("evidence shorter than its epoch".into());
        };
        let evidence = Evidence::decode(rest).map_err(|e| e.to_string())?;
        Ok(EpochEvidence {
            epoch: u64::from_le_bytes(*epoch),
            evidence,
        })
    }
}

/// The validator set of one epoch as the driver uses it.
pub struct EpochSet {
    /// The epoch.
    pub epoch: Epoch,
    /// Its consensus validator set.
    pub validators: ValidatorSet,
    /// Addresses of the validators' consensus keys, by index.
    pub addresses: Vec<Address>,
    /// The validators' libp2p peer ids, by index (`None` if one does not parse).
    pub peers: Vec<Option<PeerId>>,
}

impl EpochSet {
    /// The set of `record` (an epoch the store recorded).
    ///
    /// # Errors
    /// The recorded set is not a valid consensus set (a corrupt store: fatal).
    pub fn of_record(record: &cairn_ledger::EpochRecord) -> Result<EpochSet, FatalError> {
        let validators = ValidatorSet::new(
            record
                .validators
                .iter()
                .map(|v| {
                    let key = cairn_consensus::VerifyingKey::from_bytes(&v.consensus_key.0)
                        .map_err(|e| {
                            FatalError(format!("epoch {}: validator {}: {e}", record.epoch, v.name))
                        })?;
                    Ok(cairn_consensus::Validator {
                        public_key: key,
                        voting_power: v.voting_power,
                    })
                })
                .collect::<Result<Vec<_>, FatalError>>()?,
        )
        .map_err(|e| FatalError(format!("epoch {}: validator set: {e}", record.epoch)))?;
        Ok(EpochSet {
            epoch: record.epoch,
            validators,
            addresses: record.validators.iter().map(|v| v.consensus_key).collect(),
            peers: record
                .validators
                .iter()
                .map(|v| v.peer_id.parse().ok())
                .collect(),
        })
    }
}

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
    /// Mempool / rejection status of a transaction.
    TxStatus {
        hash: Hash,
        reply: oneshot::Sender<LocalTxStatus>,
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
    /// True while the mempool cannot take another transaction ([`Mempool::is_full`]); set
    /// by the driver whenever the pool changes. The RPC server then refuses submissions as
    /// `overloaded` before spending signature checks on them.
    pub mempool_full: AtomicBool,
}

/// Results of work done off the driver task (bounded queue: [`INTERNAL_QUEUE_MAX`]).
// A fetched block travels by value once from its request task to the driver; boxing it
// would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum Internal {
    TxBatchVerified {
        /// Transactions sent for verification (counted in `verify_in_flight`).
        count: usize,
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
    /// Blocks per sync request.
    pub sync_batch_blocks_max: u16,
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
    /// Why transactions were refused (at most [`REJECTED_REMEMBERED_MAX`], oldest first).
    pub(crate) rejected: HashMap<Hash, (String, String)>,
    pub(crate) rejected_order: VecDeque<Hash>,
    peers: Vec<PeerId>,
    /// Gossiped transactions being verified (at most [`VERIFY_IN_FLIGHT_MAX`]).
    verify_in_flight: usize,
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
                batch_blocks_max: params.sync_batch_blocks_max,
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
            rejected: HashMap::new(),
            rejected_order: VecDeque::new(),
            peers: Vec::new(),
            verify_in_flight: 0,
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

    /// The [`EpochInput::Block`] telling [`Epochs`] the kind and parent link of block `h`,
    /// if the chain holds it as pending (epoch `epoch` must be the running one).
    fn block_input(&self, epoch: Epoch, h: &Hash) -> Option<EpochInput> {
        if epoch != self.epoch() {
            return None;
        }
        let p = self.chain.pending(h)?;
        let parent = p.block.header().parent_hash;
        let parent_view = if parent == self.chain.epoch_anchor() {
            0
        } else if parent == self.chain.head_hash() {
            self.chain.head().view
        } else {
            self.chain.pending(&parent)?.block.header().view
        };
        Some(EpochInput::Block {
            epoch,
            proposal: Proposal {
                view: p.block.header().view,
                parent_view,
                parent: digest(parent),
                payload: digest(*h),
            },
            kind: p.kind,
        })
    }

    /// Commits the ended epoch's boundary block and starts the next epoch with the set its
    /// execution decided (rule E3). Waits (returns nothing) while the boundary's ancestors
    /// are missing; they are fetched or synced, and this is retried.
    async fn try_end_epoch(&mut self) -> Result<Vec<EpochOutput>, FatalError> {
        let Some((epoch, last, proof)) = self.epoch_end_waiting.clone() else {
            return Ok(Vec::new());
        };
        if epoch != self.epoch() {
            self.epoch_end_waiting = None; // the chain moved past it by sync
            return Ok(Vec::new());
        }
        let committed = self
            .chain
            .store()
            .height_of(&last)
            .map_err(|e| FatalError(e.to_string()))?
            .is_some();
        // The suffix headers, while the suffix blocks are still pending. The proof is stored
        // before the boundary is committed: a node serves every boundary it holds with its
        // proof (a crash in between leaves a proof of an uncommitted block, which is inert).
        let suffix: Option<Vec<cairn_ledger::BlockHeader>> = proof.blocks[..proof.blocks.len() - 1]
            .iter()
            .map(|d| {
                self.chain
                    .pending(&hash(*d))
                    .map(|p| p.block.header().clone())
            })
            .collect();
        let key = format!("{EPOCH_PROOF_KEY_PREFIX}{epoch:020}");
        match suffix {
            Some(suffix) => {
                let stored = StoredEpochProof {
                    proof: proof.clone(),
                    suffix,
                };
                self.chain
                    .store()
                    .meta_put(
                        &key,
                        &borsh::to_vec(&stored).expect("borsh to Vec never fails"),
                    )
                    .map_err(|e| FatalError(e.to_string()))?;
            }
            None => {
                // Every listed block's kind came from a block this node holds, so this
                // cannot happen while the suffix is pending; without the proof this node
                // cannot serve the boundary to a syncing peer (others can).
                warn!(
                    epoch,
                    "the ended epoch's suffix blocks are not held: its proof is not stored"
                );
            }
        }
        if !committed {
            if !self.chain.can_extend(&last) {
                if let Some(b) = self.buffer.get(&last).cloned() {
                    self.insert_block(b).await?;
                }
            }
            // The boundary's own certificate is the proof's finalization when it finalized
            // the boundary itself; a suffix finalization is kept with the proof instead.
            let direct = proof.blocks.len() == 1;
            let cert = direct
                .then(|| borsh::to_vec(&proof.finalization).expect("borsh to Vec never fails"));
            match self.chain.finalize(&last, cert.as_deref()) {
                Ok(blocks) => {
                    let view = proof.finalization.view();
                    self.after_commit(blocks, Some(view))?;
                }
                Err(ChainError::UnknownParent { .. }) => {
                    self.fetch(last, None);
                    self.sync.request_now();
                    return Ok(Vec::new());
                }
                Err(ChainError::Storage(e)) => return Err(FatalError(e.to_string())),
                Err(e) => {
                    error!(block = %last, error = %e, "an epoch's boundary block does not apply: more than f validators are faulty or this node is broken");
                    return Ok(Vec::new());
                }
            }
        }
        self.epoch_end_waiting = None;
        self.start_epoch_after_boundary(true)
    }

    /// The head is the running epoch's boundary block (committed by consensus, or by sync):
    /// starts the next epoch with the set the store recorded for it. `ended` says whether
    /// [`Epochs`] saw the epoch end (else, after sync, a fresh instance is built).
    fn start_epoch_after_boundary(&mut self, ended: bool) -> Result<Vec<EpochOutput>, FatalError> {
        let next = self.epoch() + 1;
        let record = self
            .chain
            .store()
            .epoch_record(next)
            .map_err(|e| FatalError(e.to_string()))?
            .ok_or_else(|| {
                FatalError(format!(
                    "the boundary block of epoch {} left no record of epoch {next}",
                    self.epoch()
                ))
            })?;
        assert_eq!(
            record.anchor,
            self.chain.head_hash(),
            "the next epoch is anchored at the committed boundary"
        );
        let set = EpochSet::of_record(&record)?;
        self.chain.start_epoch();
        self.chain
            .store()
            .wal_prune_below(u64::MAX)
            .map_err(|e| FatalError(format!("consensus WAL prune failed: {e}")))?;
        self.awaiting.clear();
        self.pending_build = None;
        self.proposing = None;
        self.finalized_waiting.clear();
        // The new set's nodes skip admission from now on (as the genesis set's do).
        self.net
            .exempt(set.peers.iter().flatten().copied().collect());
        self.params.set_epoch(set);
        self.sync.set_epoch(next, self.params.validators.clone());
        let now_ms = self.now_ms();
        if ended {
            self.epochs
                .start_next_epoch(
                    next,
                    self.params.validators.clone(),
                    self.signer.clone(),
                    now_ms,
                )
                .map_err(|e| FatalError(e.to_string()))
        } else {
            let anchor = Anchor {
                view: 0,
                payload: digest(self.chain.head_hash()),
            };
            self.epochs = Epochs::new(
                self.epoch_params.clone(),
                next,
                self.params.validators.clone(),
                self.signer.clone(),
                anchor,
                anchor,
                &[],
            )
            .map_err(|e| FatalError(e.to_string()))?;
            Ok(self.epochs.start(now_ms))
        }
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

    fn leader_address(&self, view: View) -> Address {
        self.params.validator_addresses[self.params.validators.leader(view) as usize]
    }

    /// Builds the pending proposal if its parent is known; waits (bounded) for transactions.
    pub(crate) async fn try_build(&mut self) -> Result<(), FatalError> {
        let Some((view, parent)) = self.pending_build else {
            return Ok(());
        };
        let Some(me) = self.params.me else {
            return Ok(());
        };
        if view != self.epochs.instance().view() {
            self.pending_build = None;
            return Ok(());
        }
        if !self.chain.can_extend(&parent) {
            if let Some(b) = self.buffer.get(&parent).cloned() {
                self.insert_block(b).await?;
            }
            if !self.chain.can_extend(&parent) {
                self.fetch(parent, None);
                return Ok(());
            }
        }
        let parent_ts = match self.chain.pending(&parent) {
            Some(p) => p.block.header().timestamp_ms,
            None => self.chain.head().timestamp_ms,
        };
        let wait_ms = EMPTY_BLOCK_WAIT_MS.min(self.params.leader_timeout_ms / 2);
        let now = wall_ms();
        // A suffix block is empty whatever the mempool holds (E2): no reason to wait.
        let suffix = self.chain.child_is_suffix(&parent) == Some(true);
        if !suffix && self.mempool.is_empty() && now < parent_ts.saturating_add(wait_ms) {
            return Ok(()); // retried on tick and on transaction arrival
        }
        if now < parent_ts.saturating_add(self.params.block_interval_ms) {
            return Ok(()); // retried on tick and on transaction arrival
        }
        self.pending_build = None;
        // The limits of the parent's state (governance may have lowered them), less room
        // for the header.
        let limits = match self.chain.limits_at(&parent) {
            Ok(Some(l)) => l,
            Ok(None) => return Ok(()),
            Err(e) => return Err(FatalError(e.to_string())),
        };
        let (txs_max, bytes_max) = (
            limits.block_txs_max,
            limits.block_bytes_max.saturating_sub(1024),
        );
        let mempool = &self.mempool;
        let block = match self.chain.build_verified(&parent, view, me, now, |b| {
            mempool.reap(b, txs_max, bytes_max)
        }) {
            Ok(b) => b,
            Err(ChainError::Storage(e)) => return Err(FatalError(e.to_string())),
            Err(e) => {
                warn!(view, error = %e, "cannot build a proposal");
                return Ok(());
            }
        };
        #[cfg(all(feature = "byzantine", debug_assertions))]
        let block = match &self.byzantine {
            Some(b) if b.in_view(view) == crate::byzantine::Behaviour::Invalid => {
                warn!(view, "byzantine: proposing a block with a wrong state root");
                crate::byzantine::corrupt(block)
            }
            _ => block,
        };
        let h = block.hash();
        let kind = self.chain.kind(&h).unwrap_or(BlockKind::Ordinary);
        info!(view, height = block.header().height, txs = block.tx_ids().len(), hash = %h, ?kind, "proposing");
        // Published with this node's Notarize vote for it, once consensus has signed and
        // persisted that vote (`publish_own_proposal`).
        self.proposing = Some((view, block));
        self.inputs.push_back(EpochInput::Proposed {
            epoch: self.epoch(),
            view,
            payload: digest(h),
            kind,
            now_ms: self.now_ms(),
        });
        Ok(())
    }

    /// If `vote` is this node's Notarize vote for the block it is proposing, publishes that
    /// block's compact form carrying the vote (the signed proposal: peers check it before
    /// they keep or forward the block). Called before the vote itself is broadcast, and
    /// after consensus persisted it.
    async fn publish_own_proposal(&mut self, epoch: Epoch, vote: &Vote) {
        let VoteKind::Notarize(p) = &vote.kind else {
            return;
        };
        let ours = matches!(&self.proposing, Some((view, block))
            if *view == p.view && digest(block.hash()) == p.payload);
        if !ours {
            return;
        }
        let (_, block) = self.proposing.take().expect("checked above");
        // Peers should hold the block's transactions before the block arrives: they rebuild
        // it from the hashes in the compact block (see `compact`).
        self.flush_tx_outbox().await;
        let compact = CompactBlock::of_sealed(epoch, &block, vote.clone()).encode();
        if let Err(e) = self.net.publish(Topic::Blocks, compact).await {
            warn!(error = %e, "publishing a block failed");
        }
    }

    /// Broadcasts one of consensus's outgoing messages the Byzantine way (test builds only:
    /// [`crate::byzantine`]): this validator's own votes are withheld, or sent with a
    /// conflicting twin (as a leader, a second signed block), or sent as they are.
    #[cfg(all(feature = "byzantine", debug_assertions))]
    async fn byzantine_broadcast(&mut self, epoch: Epoch, msg: Message) {
        use crate::byzantine::{Behaviour, twin};
        let byz = self.byzantine.as_ref().expect("called only when Byzantine");
        let (behaviour, view, extra) = match &msg {
            Message::Vote(vote) if byz.is_mine(vote) => {
                let behaviour = byz.in_view(vote.kind.view());
                let mut extra = Vec::new();
                if behaviour == Behaviour::Equivocate {
                    match (&self.proposing, &vote.kind) {
                        (Some((view, block)), VoteKind::Notarize(p))
                            if *view == p.view && digest(block.hash()) == p.payload =>
                        {
                            let second = twin(block);
                            let vote = byz.sign(VoteKind::Notarize(Proposal {
                                payload: digest(second.hash()),
                                ..*p
                            }));
                            extra.push((Some(second), vote));
                        }
                        _ => extra.extend(byz.conflicting(vote).map(|v| (None, v))),
                    }
                }
                (Some(behaviour), vote.kind.view(), extra)
            }
            _ => (None, 0, Vec::new()),
        };
        if behaviour == Some(Behaviour::Withhold) {
            warn!(view, "byzantine: withholding a vote");
            return;
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
        for (block, vote) in extra {
            warn!(
                view = vote.kind.view(),
                proposal = block.is_some(),
                "byzantine: equivocating"
            );
            if let Some(block) = block {
                let compact = CompactBlock::of_sealed(epoch, &block, vote.clone()).encode();
                let _ = self.net.publish(Topic::Blocks, compact).await;
            }
            let envelope = EpochMessage {
                epoch,
                message: Message::Vote(vote),
            };
            let _ = self.net.publish(Topic::Consensus, envelope.encode()).await;
        }
    }

    /// Answers a `Validate` request now if possible, else parks it until the body arrives.
    async fn try_validate(&mut self, proposal: Proposal) -> Result<(), FatalError> {
        let h = hash(proposal.payload);
        let parent = hash(proposal.parent);
        let header_ok = |b: &Block, leader: Address| {
            b.header.view == proposal.view
                && b.header.parent_hash == parent
                && b.header.proposer == leader
                && b.header.timestamp_ms <= wall_ms().saturating_add(CLOCK_SKEW_MAX_MS)
        };
        let leader = self.leader_address(proposal.view);
        if let Some(p) = self.chain.pending(&h) {
            let verdict = header_ok(p.block.block(), leader).then_some(p.kind);
            self.decide(proposal, verdict);
            return Ok(());
        }
        let Some(block) = self.buffer.get(&h).cloned() else {
            self.park(h, proposal);
            return Ok(());
        };
        if !header_ok(block.block(), leader) {
            self.decide(proposal, None);
            return Ok(());
        }
        match self.insert_block(block).await? {
            Some(valid) => {
                let verdict = if valid { self.chain.kind(&h) } else { None };
                self.decide(proposal, verdict)
            }
            None => {
                self.park(h, proposal);
                self.fetch(parent, None);
            }
        }
        Ok(())
    }

    /// Gives consensus the verdict on `proposal` (the leader's signed block: a wrong one is
    /// the leader's fault) and forgets it as awaiting.
    /// `verdict` is the block's kind if it is valid (`None`: invalid).
    fn decide(&mut self, proposal: Proposal, verdict: Option<BlockKind>) {
        self.awaiting.remove(&hash(proposal.payload));
        if verdict.is_none() {
            self.shared.metrics.proposals_refused.inc();
        }
        self.inputs.push_back(EpochInput::Validated {
            epoch: self.epoch(),
            proposal,
            verdict,
            now_ms: self.now_ms(),
        });
    }

    fn park(&mut self, h: Hash, proposal: Proposal) {
        if self.awaiting.len() < AWAITING_VALIDATION_MAX || self.awaiting.contains_key(&h) {
            let now = self.now_ms();
            self.awaiting.entry(h).or_insert((proposal, now));
        }
    }

    /// Validates and inserts a block as pending. `Some(valid)` if decided, `None` if its
    /// parent is unknown. Signatures are checked only for transactions not already verified
    /// (i.e. not in the mempool).
    async fn insert_block(&mut self, block: SealedBlock) -> Result<Option<bool>, FatalError> {
        let h = block.hash();
        if self.chain.pending(&h).is_some() {
            return Ok(Some(true));
        }
        // Transactions this node has not verified yet (not in its mempool: e.g. still in a
        // gossip batch being verified, or never gossiped to us) are verified together on a
        // blocking thread rather than one by one on this task.
        let unverified: Vec<HashedTx> =
            block.hashed_txs(|id, t| !holds_verified(&self.mempool, id, t));
        let verified: HashSet<Hash> = if unverified.len() >= BLOCK_BATCH_VERIFY_MIN {
            let chain_id = self.params.chain_id.clone();
            tokio::task::spawn_blocking(move || {
                // Keyed by signed hash: only these exact bytes were checked.
                verify_parallel(unverified, &chain_id)
                    .into_iter()
                    .filter_map(Result::ok)
                    .map(|t| t.signed_hash())
                    .collect()
            })
            .await
            .map_err(|e| FatalError(format!("verification task failed: {e}")))?
        } else {
            HashSet::new()
        };
        let mempool = &self.mempool;
        // A sealed block's body is the one its leader committed to, so an invalid block here
        // is the leader's fault: a verdict on the proposal.
        match self.chain.insert(block, &|id, t| {
            holds_verified(mempool, id, t)
                || (!verified.is_empty() && verified.contains(&t.signed_hash()))
        }) {
            Ok(_) => {
                // The epoch driver may be waiting for this block's kind (E3).
                if let Some(input) = self.block_input(self.epoch(), &h) {
                    self.inputs.push_back(input);
                }
                Ok(Some(true))
            }
            Err(ChainError::UnknownParent { .. }) => Ok(None),
            Err(ChainError::Invalid(e)) => {
                warn!(block = %h, error = %e, "invalid block");
                Ok(Some(false))
            }
            Err(ChainError::PendingFull { .. } | ChainError::EpochEnded { .. }) => Ok(None),
            Err(ChainError::Storage(e)) => Err(FatalError(e.to_string())),
        }
    }

    async fn on_finalized(&mut self, cert: Certificate) -> Result<(), FatalError> {
        let CertificateKind::Finalization(p) = &cert.kind else {
            return Ok(());
        };
        let h = hash(p.payload);
        if self
            .chain
            .store()
            .height_of(&h)
            .map_err(|e| FatalError(e.to_string()))?
            .is_some()
        {
            return Ok(());
        }
        if !self.chain.can_extend(&h)
            && let Some(b) = self.buffer.get(&h).cloned()
        {
            self.insert_block(b).await?;
        }
        if let Some(kind) = self.chain.kind(&h) {
            // Tell the epoch driver what it is, in case it could not know (an observer).
            if let Some(input) = self.block_input(self.epoch(), &h) {
                self.inputs.push_back(input);
            }
            if kind != BlockKind::Ordinary {
                // A boundary or suffix block ends the epoch: committed up to the boundary
                // when the epoch driver reports the end (`try_end_epoch`), never past it.
                return Ok(());
            }
        }
        let bytes = borsh::to_vec(&cert).expect("borsh to Vec never fails");
        match self.chain.finalize(&h, Some(&bytes)) {
            Ok(blocks) => self.after_commit(blocks, Some(cert.view())),
            Err(ChainError::UnknownParent { .. }) => {
                let view = cert.view();
                if self.finalized_waiting.len() < FINALIZED_WAITING_MAX {
                    self.finalized_waiting.insert(h, cert);
                }
                self.fetch(h, Some(view));
                self.sync.request_now();
                Ok(())
            }
            Err(ChainError::Storage(e)) => Err(FatalError(e.to_string())),
            Err(e) => {
                error!(block = %h, error = %e, "a finalized block does not apply: more than f validators are faulty or this node is broken");
                Ok(())
            }
        }
    }

    /// Housekeeping after `blocks` were committed; `finalized_view` is the view of the
    /// running epoch's finalization that committed them (`None` for synced blocks), below
    /// which the WAL is pruned.
    fn after_commit(
        &mut self,
        blocks: Vec<SealedBlock>,
        finalized_view: Option<View>,
    ) -> Result<(), FatalError> {
        if blocks.is_empty() {
            return Ok(());
        }
        let store = self.chain.store().clone();
        for b in &blocks {
            // The ids the block was sealed with: nothing is hashed again.
            let txs = b
                .tx_ids()
                .iter()
                .copied()
                .zip(b.block().transactions.iter().map(|t| &t.body.sender));
            self.mempool
                .remove_finalized(txs, store.as_ref(), b.header().height);
            self.shared.metrics.blocks_finalized.inc();
            self.shared
                .metrics
                .txs_finalized
                .inc_by(b.tx_ids().len() as u64);
            self.finalized_waiting.remove(&b.hash());
        }
        let head = self.chain.head().clone();
        info!(height = head.height, view = head.view, hash = %self.chain.head_hash(), txs = blocks.iter().map(|b| b.tx_ids().len()).sum::<usize>(), "finalized");
        self.shared.metrics.height.set(head.height as i64);
        self.mempool_changed();
        // Votes below a finalized view of the running epoch can never matter again (views
        // restart in every epoch, so only that epoch's views may prune).
        if let Some(view) = finalized_view
            && self.chain.head_hash() != self.chain.epoch_anchor()
        {
            store
                .wal_prune_below(view.min(head.view))
                .map_err(|e| FatalError(format!("consensus WAL prune failed: {e}")))?;
        }
        self.buffer.prune(head.height);
        self.apply_governed_params()
    }

    /// Applies the chain parameters of the committed head's governance record if a
    /// `set_params` changed them: the mempool bounds (a pool above a lowered bound admits
    /// nothing until it drains), the block interval, the consensus timeouts (from the next
    /// deadline on; liveness only) and the admission difficulty (new proofs only; admitted
    /// peers stay). Block limits need nothing here: validation and the leader read them from
    /// each block's parent state ([`cairn_ledger::BlockLimits::at`]). Every node applies a
    /// change when it commits the block that made it, so the moments differ by the
    /// commit skew, which none of these parameters' safety depends on.
    fn apply_governed_params(&mut self) -> Result<(), FatalError> {
        use cairn_ledger::StateReader as _;
        let Some(governance) = self
            .chain
            .store()
            .governance()
            .map_err(|e| FatalError(e.to_string()))?
        else {
            return Ok(());
        };
        let new = &governance.params;
        let old = &self.params.params_in_force;
        if new == old {
            return Ok(());
        }
        info!(
            height = self.chain.head().height,
            ?old,
            ?new,
            "chain parameters changed by governance: applying"
        );
        let mempool = crate::mempool::MempoolConfig::from_params(new);
        // A governed ChainParams passed `ChainParams::validate`, whose ranges imply the
        // mempool's and the consensus's own checks.
        assert!(
            mempool.validate().is_ok(),
            "governed mempool bounds are valid"
        );
        self.mempool.set_config(mempool);
        self.params.block_interval_ms = new.block_interval_ms;
        self.params.leader_timeout_ms = new.leader_timeout_ms;
        let timeouts = cairn_consensus::Timeouts {
            leader_timeout_ms: new.leader_timeout_ms,
            notarization_timeout_ms: new.notarization_timeout_ms,
            nullify_retry_ms: new.nullify_retry_ms,
        };
        self.epochs
            .set_timeouts(timeouts)
            .map_err(|e| FatalError(format!("governed timeouts refused: {e}")))?;
        self.epoch_params.leader_timeout_ms = timeouts.leader_timeout_ms;
        self.epoch_params.notarization_timeout_ms = timeouts.notarization_timeout_ms;
        self.epoch_params.nullify_retry_ms = timeouts.nullify_retry_ms;
        if new.admission_difficulty_bits != old.admission_difficulty_bits {
            self.net
                .set_admission_difficulty(new.admission_difficulty_bits);
        }
        self.params.params_in_force = new.clone();
        self.mempool_changed();
        Ok(())
    }

    /// Retries parked work after the chain changed.
    async fn retry_parked(&mut self) -> Result<(), FatalError> {
        let waiting: Vec<(Hash, Certificate)> = self
            .finalized_waiting
            .iter()
            .map(|(h, c)| (*h, c.clone()))
            .collect();
        for (h, cert) in waiting {
            if self.chain.can_extend(&h) || self.buffer.contains(&h) {
                self.finalized_waiting.remove(&h);
                self.on_finalized(cert).await?;
            } else if self
                .chain
                .store()
                .height_of(&h)
                .map_err(|e| FatalError(e.to_string()))?
                .is_some()
            {
                self.finalized_waiting.remove(&h);
            }
        }
        let parked: Vec<Proposal> = self.awaiting.values().map(|(p, _)| *p).collect();
        for p in parked {
            if self.buffer.contains(&hash(p.payload)) && self.chain.can_extend(&hash(p.parent)) {
                self.try_validate(p).await?;
            }
        }
        if self.pending_build.is_some() {
            self.try_build().await?;
        }
        if self.epoch_end_waiting.is_some() {
            let outputs = self.try_end_epoch().await?;
            self.perform(outputs).await?;
        }
        Ok(())
    }

    async fn on_network(&mut self, ev: NetworkEvent) -> Result<(), FatalError> {
        match ev {
            NetworkEvent::Gossip {
                topic,
                source,
                message_id,
                data,
            } => match topic {
                Topic::Consensus => {
                    let acceptance = match EpochMessage::decode(&data) {
                        Err(e) => {
                            debug!(peer = %source, error = %e, "undecodable consensus message");
                            Acceptance::Reject
                        }
                        Ok(message) => {
                            let now_ms = self.now_ms();
                            let current = message.epoch == self.epoch();
                            match self.epochs.handle(EpochInput::Message { message, now_ms }) {
                                // Only the running epoch's messages are checked, so only they
                                // are forwarded: others are the sender's to deliver.
                                Ok(outputs) => {
                                    self.perform(outputs).await?;
                                    if current {
                                        Acceptance::Accept
                                    } else {
                                        Acceptance::Ignore
                                    }
                                }
                                Err(EpochError::Message { source: e, .. }) if e.is_peer_fault() => {
                                    debug!(peer = %source, error = %e, "invalid consensus message");
                                    Acceptance::Reject
                                }
                                Err(_) => Acceptance::Ignore,
                            }
                        }
                    };
                    self.report(message_id, source, acceptance).await;
                }
                Topic::Blocks => {
                    let acceptance = self.on_gossip_block(source, &data).await?;
                    self.report(message_id, source, acceptance).await;
                }
                Topic::Transactions => self.on_gossip_tx(source, message_id, data).await,
                Topic::Evidence => {
                    let acceptance = self.on_gossip_evidence(source, &data)?;
                    self.report(message_id, source, acceptance).await;
                }
            },
            NetworkEvent::Request { peer, data, token } => {
                // Served on the sync server's task; a full queue drops the request
                // unanswered (costing this task nothing).
                let request = ServeRequest { peer, data, token };
                if self.sync_requests.try_send(request).is_err() {
                    self.shared.metrics.sync_requests_dropped.inc();
                }
            }
            NetworkEvent::PeerConnected { peer } => {
                if !self.peers.contains(&peer) {
                    self.peers.push(peer);
                    // A node that was down learns how far behind it is from its first peer,
                    // not one `sync.interval_ms` later: catch-up starts at once.
                    self.sync.on_peer_connected(peer);
                }
                self.shared
                    .peer_count
                    .store(self.peers.len() as u32, Ordering::Relaxed);
                self.shared.metrics.peers.set(self.peers.len() as i64);
            }
            NetworkEvent::PeerDisconnected { peer } => {
                self.peers.retain(|p| *p != peer);
                self.shared
                    .peer_count
                    .store(self.peers.len() as u32, Ordering::Relaxed);
                self.shared.metrics.peers.set(self.peers.len() as i64);
            }
        }
        Ok(())
    }

    pub(crate) async fn report(&self, id: MessageId, source: PeerId, acceptance: Acceptance) {
        if matches!(acceptance, Acceptance::Reject) {
            self.shared.metrics.gossip_rejected.inc();
        }
        self.net.report(id, source, acceptance).await;
    }

    /// Checks a gossiped compact block (decode bounds, hash list against `txs_root`, chain
    /// id, proposer = the view's leader, and the leader's signed Notarize vote for it) and
    /// rebuilds it from the mempool, or parks it until its missing transactions arrive.
    /// Every check is deterministic given genesis, so a failure is the forwarder's fault
    /// (`Reject`, and a forged proposal is also penalized); only a block its leader signed
    /// is kept or forwarded (`Accept`), whether or not this node holds all its transactions
    /// yet. The leader's vote is also fed to consensus (it is the proposal).
    async fn on_gossip_block(
        &mut self,
        source: PeerId,
        data: &[u8],
    ) -> Result<Acceptance, FatalError> {
        let compact = match CompactBlock::decode(
            data,
            self.params.block_bytes_max,
            self.params.block_txs_max,
        ) {
            Ok(c) => c,
            Err(e) => {
                debug!(peer = %source, error = %e, "invalid compact block");
                return Ok(Acceptance::Reject);
            }
        };
        if compact.epoch != self.epoch() {
            // Another epoch's proposal: not checkable against this epoch's set, and not a
            // forgery either (a peer ahead or behind). Neither kept nor forwarded.
            return Ok(Acceptance::Ignore);
        }
        let header = &compact.header;
        let leader = self.params.validators.leader(header.view);
        if header.chain_id != self.params.chain_id
            || header.proposer != self.leader_address(header.view)
        {
            debug!(peer = %source, view = header.view, "compact block from another chain or not by the view's leader");
            return Ok(Acceptance::Reject);
        }
        let namespace = self.params.namespace_of(compact.epoch);
        if let Err(e) = compact.verify_leader(&namespace, &self.params.validators, leader) {
            debug!(peer = %source, error = %e, "forged compact block");
            self.shared.metrics.proposals_forged.inc();
            self.net.penalize(source, PeerFault::ForgedProposal);
            return Ok(Acceptance::Reject);
        }
        let h = header.hash();
        if header.height <= self.chain.head().height
            || self.chain.pending(&h).is_some()
            || self.buffer.contains(&h)
        {
            return Ok(Acceptance::Accept);
        }
        // The proposal itself: consensus may not have its vote yet (it travels on another
        // topic). A duplicate or stale vote is refused by consensus without effect.
        let vote = compact.leader_vote.clone();
        let now_ms = self.now_ms();
        let message = EpochMessage {
            epoch: compact.epoch,
            message: Message::Vote(vote),
        };
        match self.epochs.handle(EpochInput::Message { message, now_ms }) {
            Ok(outputs) => self.perform(outputs).await?,
            Err(e) => debug!(error = %e, "leader vote from a compact block not taken"),
        }
        let mempool = &self.mempool;
        let view = compact.header.view;
        let now_ms = self.now_ms();
        match self
            .buffer
            .partials
            .insert(compact, |t| mempool.get(t).cloned(), now_ms)
        {
            Reassembly::Complete(b) => {
                self.shared.metrics.compact_blocks_rebuilt.inc();
                let origin = BodyOrigin::Rebuilt {
                    view,
                    peer: Some(source),
                };
                self.on_rebuilt(*b, origin).await?;
            }
            Reassembly::Waiting { missing } => {
                self.shared.metrics.compact_blocks_waited.inc();
                debug!(block = %h, missing, "compact block waits for transactions");
            }
            Reassembly::AlreadyWaiting | Reassembly::ViewFull => {}
        }
        Ok(Acceptance::Accept)
    }

    /// Keeps a block rebuilt from a compact block ([`Self::on_block_body`]).
    pub(crate) async fn on_rebuilt(
        &mut self,
        b: RebuiltBlock,
        origin: BodyOrigin,
    ) -> Result<(), FatalError> {
        self.on_block_body(Body::Rebuilt(b), origin).await
    }

    /// Keeps a block body for consensus, once it is checked to be exactly the block its
    /// header commits to (sealed: [`SealedBlock::seal`] for a fetched body,
    /// [`RebuiltBlock::seal`] for a rebuilt one, which uses the hashes its verified
    /// transactions carry). A body that is not is never a verdict on the proposal: a
    /// fetched copy is its sender's fault (penalized; the block is fetched again from
    /// another peer), a rebuilt one (the mempool held other signature bytes for a
    /// transaction, or a fetched transaction was mangled) is fetched whole.
    async fn on_block_body(&mut self, body: Body, origin: BodyOrigin) -> Result<(), FatalError> {
        // The header hash, once; `SealedBlock` carries it on.
        let header = match &body {
            Body::Rebuilt(b) => b.header(),
            Body::Fetched(b) => &b.header,
        };
        let (h, height) = (header.hash(), header.height);
        self.buffer.partials.remove(&h);
        if height <= self.chain.head().height || self.chain.pending(&h).is_some() {
            self.buffer.end_fetch(&h);
            return Ok(());
        }
        if self.buffer.contains(&h) {
            self.buffer.end_fetch(&h);
            return self.retry_parked().await;
        }
        let sealed = match body {
            Body::Rebuilt(b) => b.seal(),
            Body::Fetched(b) => SealedBlock::seal(b),
        };
        let sealed = match sealed {
            Ok(sealed) => sealed,
            Err(e) => {
                self.shared.metrics.block_bodies_refused.inc();
                self.buffer.end_fetch(&h);
                match origin {
                    BodyOrigin::Fetched { peer, view } => {
                        warn!(%peer, block = %h, error = %e, "peer served a block body that is not the block's");
                        self.net.penalize(peer, PeerFault::BadBlockBody);
                        self.fetch_avoiding(h, view, Some(peer));
                    }
                    BodyOrigin::Rebuilt { view, .. } => {
                        debug!(block = %h, error = %e, "rebuilt block differs from its header; fetching it whole");
                        self.fetch(h, Some(view));
                    }
                }
                return Ok(());
            }
        };
        let origin = match origin {
            BodyOrigin::Rebuilt { view, peer } => Origin::Rebuilt { view, peer },
            BodyOrigin::Fetched { peer, .. } => Origin::Fetched { peer },
        };
        match self.buffer.insert(sealed, origin) {
            Insert::Kept { evicted } => {
                if !evicted.is_empty() {
                    debug!(block = %h, evicted = evicted.len(), "block buffer full; evicted bodies");
                }
            }
            Insert::Duplicate => {}
            Insert::ViewFull => {
                debug!(block = %h, "more blocks of one view than an honest leader proposes; not kept");
                return Ok(());
            }
        }
        self.retry_parked().await
    }

    async fn on_gossip_tx(&mut self, source: PeerId, message_id: MessageId, data: Vec<u8>) {
        let txs = match decode_batch(&data) {
            Ok(txs) => txs,
            Err(e) => {
                debug!(peer = %source, error = %e, "undecodable transaction batch");
                return self.report(message_id, source, Acceptance::Reject).await;
            }
        };
        // Each transaction is hashed once, here. Those already held were verified when they
        // arrived; verify only the rest.
        let txs: Vec<HashedTx> = txs
            .into_iter()
            .map(HashedTx::new)
            .filter(|tx| !self.mempool.contains(&tx.id()))
            .collect();
        if txs.is_empty() {
            return self.report(message_id, source, Acceptance::Ignore).await;
        }
        if self.verify_in_flight + txs.len() > VERIFY_IN_FLIGHT_MAX {
            // Overloaded: drop without penalty (the sender is not at fault) and let the
            // transactions reach us again in a block.
            return self.report(message_id, source, Acceptance::Ignore).await;
        }
        self.verify_in_flight += txs.len();
        let out = self.internal_tx.clone();
        let verifier = self.shared.verifier.clone();
        // Signature checks are the expensive part: off the driver task, in the verifier's
        // batches shared with other messages and RPC submissions. At most
        // VERIFY_IN_FLIGHT_MAX transactions (so boundedly many tasks) wait here.
        tokio::spawn(async move {
            let count = txs.len();
            let results = match verifier.verify(txs).await {
                Ok(v) => v.results,
                // Shutting down: report nothing admitted (the counter must still drop).
                Err(_) => Vec::new(),
            };
            let _ = out
                .send(Internal::TxBatchVerified {
                    count,
                    results,
                    source,
                    message_id,
                })
                .await;
        });
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
                } else if let Some((code, reason)) = self.rejected.get(&hash) {
                    LocalTxStatus::Rejected {
                        code: code.clone(),
                        reason: reason.clone(),
                    }
                } else {
                    LocalTxStatus::Unknown
                };
                let _ = reply.send(s);
            }
        }
        Ok(())
    }

    async fn on_internal(&mut self, res: Internal) -> Result<(), FatalError> {
        match res {
            Internal::TxBatchVerified {
                count,
                results,
                source,
                message_id,
            } => {
                self.verify_in_flight -= count;
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

    /// Handles a result of the sync client's requests: starts or continues sync, and
    /// commits a checked range.
    async fn on_sync_event(&mut self, event: SyncEvent) -> Result<(), FatalError> {
        match event {
            SyncEvent::PeerStatus { peer, height } => {
                let head = self.chain.head().height;
                self.sync.on_status(peer, height, head);
            }
            SyncEvent::Blocks { peer, checked } => {
                if let Some(range) = self.sync.on_blocks(peer, checked) {
                    self.apply_synced(peer, range).await?;
                }
            }
            SyncEvent::Failed { what, peer, reason } => {
                let now_ms = self.now_ms();
                self.sync.on_failed(what, peer, &reason, now_ms);
            }
        }
        Ok(())
    }

    /// Commits a range the sync client checked off this task and prepared
    /// ([`crate::sync_client::prepare_synced`]: up to the last block carrying a valid
    /// finalization certificate, hash-linked); every block is re-executed by `commit_next`.
    /// Only verified certificates are ever stored.
    async fn apply_synced(&mut self, peer: PeerId, range: SyncedRange) -> Result<(), FatalError> {
        let SyncedRange {
            blocks,
            epoch_proof,
            verified,
        } = range;
        let epoch = self.epoch();
        let mut committed = 0u64;
        let mut last_view = 0;
        // Every block here is covered by the range's last certificate (hash-linked), and its
        // body is the one its header commits to (sealed), so its signatures are the ones the
        // certifying validators checked.
        let trust_certified = !self.params.sync_reverify_signatures;
        for (block, certificate) in blocks {
            let height = block.header().height;
            if height <= self.chain.head().height {
                continue;
            }
            if self.chain.child_is_suffix(&self.chain.head_hash()) == Some(true) {
                // A synced boundary block ended the epoch: later blocks were certified by
                // the next epoch's set, which the sync client did not check them against.
                break;
            }
            last_view = block.header().view;
            let b = block.clone();
            let mempool = &self.mempool;
            match self
                .chain
                .commit_next(block, certificate.as_deref(), &|id, t| {
                    trust_certified
                        || holds_verified(mempool, id, t)
                        || (!verified.is_empty() && verified.contains(&t.signed_hash()))
                }) {
                Ok(()) => {
                    committed += 1;
                    self.shared.metrics.blocks_synced.inc();
                    self.after_commit(vec![b], None)?;
                }
                Err(ChainError::Storage(e)) => return Err(FatalError(e.to_string())),
                Err(e) => {
                    warn!(%peer, height, error = %e, "synced block refused");
                    break;
                }
            }
        }
        if self.chain.child_is_suffix(&self.chain.head_hash()) == Some(true) {
            info!(
                epoch = self.epoch(),
                head = self.chain.head().height,
                "synced an epoch's boundary block"
            );
            // Kept to serve the next node that syncs (it was verified by the sync client).
            if let Some(bytes) = &epoch_proof {
                self.chain
                    .store()
                    .meta_put(&format!("{EPOCH_PROOF_KEY_PREFIX}{epoch:020}"), bytes)
                    .map_err(|e| FatalError(e.to_string()))?;
            }
            self.epoch_end_waiting = None;
            let outputs = self.start_epoch_after_boundary(false)?;
            self.perform(outputs).await?;
        }
        if committed > 0 {
            info!(%peer, committed, head = self.chain.head().height, view = last_view, "synced blocks");
            self.retry_parked().await?;
            self.sync.after_commit(peer, self.chain.head().height);
        }
        Ok(())
    }

    /// Store metadata key of an evidence record: one per (view, signer, kind of conflict), so
    /// at most three per validator and view, and only a validator that signed conflicting
    /// votes adds any (the key space is bounded by misbehaviour, not by peers' traffic).
    fn evidence_key(epoch: Epoch, evidence: &Evidence) -> String {
        let kind = evidence.equivocation().map_or(9, |e| e as u8);
        format!(
            "{EVIDENCE_KEY_PREFIX}{epoch:020}/{:020}/{:05}/{kind}",
            evidence.view(),
            evidence.signer()
        )
    }

    /// Stores a verified evidence record unless one for the same (view, signer, kind) is
    /// already stored. Returns whether it was new.
    ///
    /// # Errors
    /// [`FatalError`] if the store fails.
    fn store_evidence(&mut self, epoch: Epoch, evidence: &Evidence) -> Result<bool, FatalError> {
        let key = Self::evidence_key(epoch, evidence);
        let store = self.chain.store();
        let known = store
            .meta_get(&key)
            .map_err(|e| FatalError(format!("reading evidence failed: {e}")))?
            .is_some();
        if known {
            return Ok(false);
        }
        store
            .meta_put(&key, &evidence.encode())
            .map_err(|e| FatalError(format!("storing evidence failed: {e}")))?;
        self.shared.metrics.evidence.inc();
        Ok(true)
    }

    /// Validates gossiped evidence: size-checked decode, then the full check against the
    /// genesis validator set (both signatures, same signer, conflicting votes, canonical
    /// order). A record failing either is the forwarder's fault (`Reject`); one already
    /// stored is `Ignore`d (state-dependent, not punished); a new valid one is stored and
    /// forwarded (`Accept`).
    fn on_gossip_evidence(
        &mut self,
        source: PeerId,
        data: &[u8],
    ) -> Result<Acceptance, FatalError> {
        let EpochEvidence { epoch, evidence } = match EpochEvidence::decode(data) {
            Ok(e) => e,
            Err(e) => {
                debug!(peer = %source, error = %e, "undecodable evidence");
                return Ok(Acceptance::Reject);
            }
        };
        if epoch != self.epoch() {
            // Checkable only against its own epoch's set: neither kept nor forwarded.
            return Ok(Acceptance::Ignore);
        }
        let namespace = self.params.namespace_of(epoch);
        if let Err(e) = evidence.verify(&namespace, &self.params.validators) {
            debug!(peer = %source, error = %e, "invalid evidence");
            return Ok(Acceptance::Reject);
        }
        if self.store_evidence(epoch, &evidence)? {
            warn!(
                signer = evidence.signer(),
                view = evidence.view(),
                peer = %source,
                "equivocation evidence received"
            );
            Ok(Acceptance::Accept)
        } else {
            Ok(Acceptance::Ignore)
        }
    }

    /// Answers the sync server from the blocks held in memory: pending ones, and received
    /// ones (sealed). A hash-map lookup and a clone; never a store read.
    fn on_lookup(&mut self, lookup: Lookup) {
        let held = |h: &Hash| -> Option<&Block> {
            self.chain
                .pending(h)
                .map(|p| p.block.block())
                .or_else(|| self.buffer.get(h).map(SealedBlock::block))
        };
        match lookup {
            Lookup::Block { hash, reply } => {
                let _ = reply.send(held(&hash).cloned());
            }
            Lookup::Transactions {
                block,
                indices,
                reply,
            } => {
                let _ = reply.send(held(&block).and_then(|b| pick(b, &indices)));
            }
        }
    }

    fn next_peer(&mut self) -> Option<PeerId> {
        if self.peers.is_empty() {
            return None;
        }
        self.rr = (self.rr + 1) % self.peers.len();
        Some(self.peers[self.rr])
    }

    /// The peer to ask for a block proposed in `view`: that view's leader if it is connected
    /// (it built the block, so it holds it; a peer that forwarded the compact block may still
    /// be waiting for its transactions), else the next peer round-robin; never `avoid` (a
    /// peer that just served a bad copy) unless it is the only one.
    fn block_peer(&mut self, view: Option<View>, avoid: Option<PeerId>) -> Option<PeerId> {
        let leader = view.and_then(|v| {
            let index = self.params.validators.leader(v) as usize;
            self.params.validator_peers.get(index).copied().flatten()
        });
        match leader {
            Some(p) if self.peers.contains(&p) && Some(p) != avoid => Some(p),
            _ => {
                let first = self.next_peer()?;
                if Some(first) == avoid && self.peers.len() > 1 {
                    self.next_peer()
                } else {
                    Some(first)
                }
            }
        }
    }

    /// Fetches one block by hash (proposed in `view`, if known) from a peer (bounded
    /// in-flight).
    fn fetch(&mut self, h: Hash, view: Option<View>) {
        self.fetch_avoiding(h, view, None)
    }

    /// [`Self::fetch`] from a peer other than `avoid` if there is one.
    fn fetch_avoiding(&mut self, h: Hash, view: Option<View>, avoid: Option<PeerId>) {
        if !self.buffer.start_fetch(h) {
            return;
        }
        let Some(peer) = self.block_peer(view, avoid) else {
            self.buffer.end_fetch(&h);
            return;
        };
        let net = self.net.clone();
        let out = self.internal_tx.clone();
        let max = self.params.sync_response_bytes_max;
        tokio::spawn(async move {
            let res = net
                .request(peer, SyncRequest::BlockByHash(h).encode())
                .await;
            let msg = match res
                .map_err(|e| e.to_string())
                .and_then(|b| SyncResponse::decode(&b, max).map_err(|e| e.to_string()))
            {
                Ok(SyncResponse::Block(block)) => Internal::Fetched {
                    hash: h,
                    block,
                    peer,
                },
                Ok(_) => Internal::Fetched {
                    hash: h,
                    block: None,
                    peer,
                },
                Err(reason) => {
                    let _ = out
                        .send(Internal::Fetched {
                            hash: h,
                            block: None,
                            peer,
                        })
                        .await;
                    Internal::RequestFailed {
                        what: "fetch",
                        peer,
                        reason,
                    }
                }
            };
            let _ = out.send(msg).await;
        });
    }

    /// Fetches the missing transactions of compact blocks that waited [`PARTIAL_WAIT_MS`]
    /// for them to arrive by gossip (each block once).
    fn request_missing_txs(&mut self) {
        let now_ms = self.now_ms();
        for request in self.buffer.partials.due(now_ms, PARTIAL_WAIT_MS) {
            self.shared.metrics.compact_block_fetches.inc();
            match request {
                MissingRequest::Transactions {
                    block,
                    view,
                    indices,
                } => self.fetch_txs(block, view, indices),
                MissingRequest::Block { block, view } => self.fetch(block, Some(view)),
            }
        }
    }

    /// Asks a peer for the transactions at `indices` of waiting compact block `block`; the
    /// answer arrives as [`Internal::FetchedTxs`].
    /// At most [`FETCHES_IN_FLIGHT_MAX`] at once; beyond that the block is left to the
    /// whole-block fetch of a proposal body that did not arrive.
    fn fetch_txs(&mut self, block: Hash, view: View, indices: Vec<u32>) {
        let Some(peer) = self.block_peer(Some(view), None) else {
            return;
        };
        if !self.buffer.start_tx_fetch() {
            return;
        }
        let net = self.net.clone();
        let out = self.internal_tx.clone();
        let max = self.params.sync_response_bytes_max;
        let request = SyncRequest::BlockTransactions {
            block,
            indices: indices.clone(),
        }
        .encode();
        tokio::spawn(async move {
            let txs = match net
                .request(peer, request)
                .await
                .map_err(|e| e.to_string())
                .and_then(|b| SyncResponse::decode(&b, max).map_err(|e| e.to_string()))
            {
                Ok(SyncResponse::Transactions(txs)) => Ok(txs),
                Ok(SyncResponse::Error(reason)) => Err(reason),
                Ok(_) => Err("unexpected response kind".into()),
                Err(reason) => Err(reason),
            };
            let _ = out
                .send(Internal::FetchedTxs {
                    block,
                    view,
                    indices,
                    txs,
                })
                .await;
        });
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
