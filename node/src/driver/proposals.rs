//! Proposals and block bodies: building this node's block as leader and publishing it with
//! its signed Notarize vote (a compact block), checking gossiped compact blocks and
//! rebuilding them from the mempool, sealing bodies into the block buffer, and answering
//! consensus's `Validate` requests (validate now, or park until the body or parent arrives).
//!
//! Invariants:
//! - This node's block is published only once consensus has signed and persisted its
//!   Notarize vote for it (`publish_own_proposal`, called before that vote is broadcast).
//! - A compact block is kept or forwarded only if it carries the view leader's signed
//!   Notarize vote for its header; a body is kept only once sealed (exactly the block its
//!   header commits to). A body that fails to seal is never a verdict on the proposal: a
//!   fetched one is its sender's fault, a rebuilt one is fetched whole.
//! - Only a sealed block reaches validation, so an invalid one is its leader's fault: the
//!   verdict goes to consensus (`decide`).
//! - A block's transactions the mempool holds with the same signature bytes are not
//!   checked again; at least [`BLOCK_BATCH_VERIFY_MIN`] unverified ones are checked together
//!   off this task.
//! - Proposals waiting for their body or parent are bounded ([`AWAITING_VALIDATION_MAX`]).

use std::collections::HashSet;

use cairn_consensus::{
    BlockKind, Certificate, Epoch, EpochInput, EpochMessage, Message, Proposal, View, Vote,
    VoteKind,
};
use cairn_ledger::{Address, Block, Hash, HashedTx, SealedBlock};
use libp2p::PeerId;
use tracing::{debug, info, warn};

use super::{
    AWAITING_VALIDATION_MAX, BLOCK_BATCH_VERIFY_MIN, Body, BodyOrigin, CLOCK_SKEW_MAX_MS, Driver,
    EMPTY_BLOCK_WAIT_MS, FatalError, digest, hash, holds_verified, wall_ms,
};
use crate::block_buffer::{Insert, Origin};
use crate::chain::ChainError;
use crate::compact::{CompactBlock, Reassembly, RebuiltBlock};
use crate::network::{Acceptance, PeerFault, Topic};
use crate::verifier::verify_parallel;

impl Driver {
    /// The [`EpochInput::Block`] telling [`Epochs`](cairn_consensus::Epochs) the kind and
    /// parent link of block `h`, if the chain holds it as pending (epoch `epoch` must be the
    /// running one).
    pub(super) fn block_input(&self, epoch: Epoch, h: &Hash) -> Option<EpochInput> {
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
        // Nothing to include: an empty mempool, or one whose transactions all wait behind a
        // nonce gap or are already in the pending blocks up to `parent`. (Without the second
        // half, a single validator holding a stranded transaction proposed, finalized and
        // proposed again in one drain of the consensus loop without end, and served no other
        // command.)
        if !suffix
            && now < parent_ts.saturating_add(wait_ms)
            && (self.mempool.is_empty()
                || !self
                    .chain
                    .with_state_at(&parent, |state| self.mempool.has_ready(state))
                    .unwrap_or(true))
        {
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
    pub(super) async fn publish_own_proposal(&mut self, epoch: Epoch, vote: &Vote) {
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
    pub(super) async fn byzantine_broadcast(&mut self, epoch: Epoch, msg: Message) {
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
    pub(super) async fn try_validate(&mut self, proposal: Proposal) -> Result<(), FatalError> {
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
    pub(super) async fn insert_block(
        &mut self,
        block: SealedBlock,
    ) -> Result<Option<bool>, FatalError> {
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

    /// Retries parked work after the chain changed.
    pub(super) async fn retry_parked(&mut self) -> Result<(), FatalError> {
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

    /// Checks a gossiped compact block (decode bounds, hash list against `txs_root`, chain
    /// id, proposer = the view's leader, and the leader's signed Notarize vote for it) and
    /// rebuilds it from the mempool, or parks it until its missing transactions arrive.
    /// Every check is deterministic given genesis, so a failure is the forwarder's fault
    /// (`Reject`, and a forged proposal is also penalized); only a block its leader signed
    /// is kept or forwarded (`Accept`), whether or not this node holds all its transactions
    /// yet. The leader's vote is also fed to consensus (it is the proposal).
    pub(super) async fn on_gossip_block(
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
    pub(super) async fn on_block_body(
        &mut self,
        body: Body,
        origin: BodyOrigin,
    ) -> Result<(), FatalError> {
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
}
