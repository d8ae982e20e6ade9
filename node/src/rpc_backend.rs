//! The node's implementation of the RPC server's [`RpcBackend`].
//!
//! Reads of finalized data go straight to RocksDB (the `Store` is safe to share); anything
//! touching the mempool goes to the driver task through its bounded command queue, so the
//! mempool has exactly one owner.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use async_trait::async_trait;
use cairn_ledger::{Address, Block, Hash, HashedTx, SignedTransaction, StateReader};
use cairn_rpc::{
    AccountInfo, EVIDENCE_RESULTS_MAX, EvidenceInfo, FinalizationInfo, LeaderInfo, PeerInfo,
    RpcBackend, RpcError, Status, TxStatus, UPCOMING_LEADERS_MAX, ValidatorInfo,
};
use tokio::sync::{mpsc, oneshot};

use crate::driver::{Command, LocalTxStatus, Shared, SubmitError};
use crate::network::NetworkHandle;

/// RPC backend over the shared node state and the driver's command queue.
pub struct NodeBackend {
    /// Shared state.
    pub shared: Arc<Shared>,
    /// Driver commands.
    pub commands: mpsc::Sender<Command>,
    /// Network handle (peer list).
    pub net: NetworkHandle,
}

fn internal(e: impl std::fmt::Display) -> RpcError {
    RpcError::Internal {
        message: e.to_string(),
    }
}

fn validator_infos(validators: &[cairn_ledger::governance::ValidatorInfo]) -> Vec<ValidatorInfo> {
    validators
        .iter()
        .map(|v| ValidatorInfo {
            name: v.name.clone(),
            address: v.consensus_key,
            peer_id: v.peer_id.clone(),
            voting_power: v.voting_power,
        })
        .collect()
}

impl NodeBackend {
    /// Refuses, from the sender's committed nonce, the transactions of `txs` outside their
    /// sender's nonce window ([`crate::mempool::check_nonce_window`]), recording each
    /// refusal for `getTransaction`. Returns the transactions that pass, in order, and one
    /// slot per submitted transaction: `Some(refusal)` for those refused here, `None` for
    /// those passed on. One state read per distinct sender: the senders the store's account
    /// cache lacks are read first in one batched `MultiGet`
    /// ([`cairn_ledger::Store::prefetch_accounts`]), so a call of 500 transfers from senders
    /// drawn out of millions of accounts costs one sorted batch, not 500 point reads.
    ///
    /// Errors: [`RpcError::Internal`] if the store cannot be read.
    #[allow(clippy::type_complexity)]
    fn nonce_precheck(
        &self,
        txs: Vec<HashedTx>,
    ) -> Result<(Vec<HashedTx>, Vec<Option<Result<Hash, RpcError>>>), RpcError> {
        let future_max = self.shared.sender_future_max.load(Ordering::Relaxed);
        let mut nonces: std::collections::HashMap<Address, u64> = Default::default();
        if txs.len() > 1 {
            let senders: Vec<Address> = txs.iter().map(|tx| tx.tx().body.sender).collect();
            // A warm-up only: a failed read is met again below, and reported there.
            if let Err(e) = self.shared.store.prefetch_accounts(&senders) {
                tracing::debug!(error = %e, "sender prefetch failed");
            }
        }
        let mut pass = Vec::with_capacity(txs.len());
        let mut slots = Vec::with_capacity(txs.len());
        for tx in txs {
            let body = &tx.tx().body;
            let account_nonce = match nonces.get(&body.sender) {
                Some(n) => *n,
                None => {
                    let n = self
                        .shared
                        .store
                        .account(&body.sender)
                        .map_err(internal)?
                        .nonce;
                    nonces.insert(body.sender, n);
                    n
                }
            };
            match crate::mempool::check_nonce_window(tx.id(), account_nonce, body.nonce, future_max)
            {
                Ok(()) => {
                    slots.push(None);
                    pass.push(tx);
                }
                Err(e) => {
                    self.shared
                        .refusals()
                        .record(tx.id(), e.code(), e.to_string());
                    slots.push(Some(Err(RpcError::Rejected {
                        code: e.code().into(),
                        message: e.to_string(),
                    })));
                }
            }
        }
        Ok((pass, slots))
    }

    /// The genesis set as RPC records (a chain without governance never changes it).
    fn genesis_validators(&self) -> Vec<ValidatorInfo> {
        let set: Vec<_> = (self.shared.genesis.validators.iter())
            .map(cairn_genesis::GenesisValidator::info)
            .collect();
        validator_infos(&set)
    }

    /// The set of the epoch running after the finalized head.
    fn current_validators(&self) -> Result<Vec<ValidatorInfo>, RpcError> {
        let store = &self.shared.store;
        let head = store.head().map_err(internal)?.map_or(0, |h| h.height);
        self.validators_after(head)
    }

    /// The set of the epoch of the block after `head`.
    fn validators_after(&self, head: u64) -> Result<Vec<ValidatorInfo>, RpcError> {
        let store = &self.shared.store;
        Ok(match store.epoch_at_height(head + 1).map_err(internal)? {
            Some(r) => validator_infos(&r.validators),
            None => self.genesis_validators(),
        })
    }
}

/// The leaders of `view` and the views after it (at most [`UPCOMING_LEADERS_MAX`], no more
/// than the set's size): consensus's round-robin
/// ([`cairn_consensus::ValidatorSet::leader`]: view `v` is led by validator `v mod n`, in
/// the set's order, which is the epoch record's).
fn upcoming_leaders(validators: &[ValidatorInfo], view: u64) -> Vec<LeaderInfo> {
    let n = validators.len() as u64;
    (0..n.min(UPCOMING_LEADERS_MAX as u64))
        .map_while(|k| view.checked_add(k))
        .map(|v| {
            let leader = &validators[(v % n) as usize];
            LeaderInfo {
                view: v,
                name: leader.name.clone(),
                address: leader.address,
            }
        })
        .collect()
}

/// Maps a driver's refusal to the RPC error `sendTransaction` returns.
fn submit_error(e: SubmitError) -> RpcError {
    match e {
        SubmitError::Unavailable(m) => RpcError::Overloaded { message: m },
        SubmitError::Mempool(e @ crate::mempool::MempoolError::Full { .. }) => {
            RpcError::Overloaded {
                message: e.to_string(),
            }
        }
        other => RpcError::Rejected {
            code: other.code(),
            message: other.to_string(),
        },
    }
}

impl NodeBackend {
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, RpcError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .try_send(make(tx))
            .map_err(|_| RpcError::Overloaded {
                message: "node command queue is full; retry later".into(),
            })?;
        rx.await.map_err(|_| RpcError::Internal {
            message: "node is shutting down".into(),
        })
    }
}

impl NodeBackend {
    /// `Finalized` if the store indexes `hash` in a finalized block.
    fn finalized_status(&self, hash: &Hash) -> Result<Option<TxStatus>, RpcError> {
        let Some(loc) = self.shared.store.tx_location(hash).map_err(internal)? else {
            return Ok(None);
        };
        // The header: held even if the body was pruned since the index was read.
        let header = self
            .shared
            .store
            .header_by_height(loc.height)
            .map_err(internal)?
            .ok_or_else(|| internal("indexed block missing"))?;
        Ok(Some(TxStatus::Finalized {
            height: loc.height,
            index: loc.index,
            block_hash: header.hash(),
        }))
    }

    /// `Err(Pruned)` if the finalized block at `height` was not found because its body was
    /// pruned, else `block` (read before: the lowest retained height only rises).
    fn unless_pruned(&self, height: u64, block: Option<Block>) -> Result<Option<Block>, RpcError> {
        let store = &self.shared.store;
        if block.is_none() && store.is_pruned(height) {
            return Err(RpcError::Pruned {
                height,
                lowest_retained_height: store.lowest_retained_height(),
            });
        }
        Ok(block)
    }
}

#[async_trait]
impl RpcBackend for NodeBackend {
    async fn status(&self) -> Result<Status, RpcError> {
        let head = self
            .shared
            .store
            .head()
            .map_err(internal)?
            .ok_or_else(|| internal("no genesis block"))?;
        let metrics = &self.shared.metrics;
        let validators = self.validators_after(head.height)?;
        let view = u64::try_from(metrics.view.get()).unwrap_or(0);
        let latency_ms = metrics.finality_latency_ms.get();
        Ok(Status {
            chain_id: self.shared.genesis.chain_id.clone(),
            genesis_hash: self.shared.genesis.hash(),
            latest_height: head.height,
            latest_hash: head.hash(),
            latest_state_root: head.state_root,
            peer_count: self.shared.peer_count.load(Ordering::Relaxed),
            syncing: self.shared.syncing.load(Ordering::Relaxed),
            node_version: env!("CARGO_PKG_VERSION").to_string(),
            rpc_version: cairn_rpc::RPC_VERSION,
            validator_name: match self.shared.validator_key {
                Some(key) => validators
                    .iter()
                    .find(|v| v.address == key)
                    .map(|v| v.name.clone()),
                None => None,
            },
            epoch: u64::try_from(metrics.epoch.get()).unwrap_or(0),
            view,
            mempool_txs: u64::try_from(metrics.mempool_txs.get()).unwrap_or(0),
            finality_latency_ms: u64::try_from(latency_ms).ok(),
            upcoming_leaders: upcoming_leaders(&validators, view),
            lowest_retained_height: self.shared.store.lowest_retained_height(),
        })
    }

    /// Closed while the mempool's local share is full (`Shared::mempool_full`, kept by the
    /// driver after every admission and every block).
    fn submissions_open(&self) -> bool {
        !self.shared.mempool_full.load(Ordering::Relaxed)
    }

    async fn account(&self, address: Address) -> Result<AccountInfo, RpcError> {
        let a = self.shared.store.account(&address).map_err(internal)?;
        let permissions = self.shared.store.permissions(&address).map_err(internal)?;
        // Asked after the store read: a block committed in between only raises the driver's
        // answer, so `nextNonce >= nonce` (the max guards it anyway).
        let pooled_next = self
            .ask(|reply| Command::NextNonce { address, reply })
            .await?
            .map_err(internal)?;
        Ok(AccountInfo {
            address,
            balance: a.balance,
            nonce: a.nonce,
            next_nonce: pooled_next.max(a.nonce),
            permissions,
        })
    }

    async fn governance(&self) -> Result<Option<cairn_ledger::governance::Governance>, RpcError> {
        let g = self.shared.store.governance().map_err(internal)?;
        Ok(g.map(|g| (*g).clone()))
    }

    async fn submit_transaction(&self, tx: SignedTransaction) -> Result<Hash, RpcError> {
        // A batch of one: the same verifier (the one signature check this transaction gets
        // on this node) and the same admission path.
        self.submit_transactions(vec![tx])
            .await?
            .pop()
            .unwrap_or_else(|| Err(internal("no result for the transaction")))
    }

    async fn submit_transactions(
        &self,
        txs: Vec<SignedTransaction>,
    ) -> Result<Vec<Result<Hash, RpcError>>, RpcError> {
        // Load shedding: a full mempool would refuse every one of them after their signature
        // checks; refuse them before, so overload does not also cost the verifier's time.
        if self.shared.mempool_full.load(Ordering::Relaxed) {
            let message = "mempool full; retry later";
            let mut refusals = self.shared.refusals();
            return Ok(txs
                .iter()
                .map(|tx| {
                    refusals.record(tx.hash(), "overloaded", message);
                    Err(RpcError::Overloaded {
                        message: message.into(),
                    })
                })
                .collect());
        }
        // The nonce window from one (cached) state read per sender, before any signature is
        // checked: under overload most refusals are senders running ahead of their window
        // (`too_far_ahead`), and refusing those after a signature check cost as much as
        // admitting them. The mempool checks the same window again after verification.
        let hashed: Vec<HashedTx> = txs.into_iter().map(HashedTx::new).collect();
        let (hashed, early) = self.nonce_precheck(hashed)?;
        if hashed.is_empty() {
            // Every one refused by its nonce: nothing for the verifier or the driver.
            return Ok(early
                .into_iter()
                .map(|slot| slot.unwrap_or_else(|| Err(internal("no result for the transaction"))))
                .collect());
        }
        // Stateless checks for the rest of the batch in the verifier (on a blocking thread,
        // shared with other submissions and gossip), then one driver command admits every
        // transaction that passed.
        let hashes: Vec<Hash> = hashed.iter().map(HashedTx::id).collect();
        let v = self
            .shared
            .verifier
            .verify(hashed)
            .await
            .map_err(|e| SubmitError::Unavailable(e.to_string()))
            .map_err(submit_error)?;
        let checks = v.results;
        let mut out: Vec<Option<Result<Hash, RpcError>>> = Vec::with_capacity(checks.len());
        let mut valid = Vec::with_capacity(checks.len());
        for (check, hash) in checks.into_iter().zip(&hashes) {
            match check {
                Ok(tx) => {
                    out.push(None);
                    valid.push(tx);
                }
                Err(e) => {
                    // Refused before the mempool: remembered here, for `getTransaction`.
                    self.shared
                        .refusals()
                        .record(*hash, e.code(), e.to_string());
                    out.push(Some(Err(RpcError::Rejected {
                        code: e.code().into(),
                        message: e.to_string(),
                    })));
                }
            }
        }
        let valid_hashes: Vec<Hash> = valid.iter().map(|t| t.id()).collect();
        let mut admitted = if valid.is_empty() {
            Vec::new()
        } else {
            match self
                .ask(|reply| Command::SubmitBatch { txs: valid, reply })
                .await
            {
                Ok(results) => results,
                Err(e) => {
                    if let RpcError::Overloaded { message } = &e {
                        let mut refusals = self.shared.refusals();
                        for h in valid_hashes {
                            refusals.record(h, "overloaded", message.clone());
                        }
                    }
                    return Err(e);
                }
            }
        }
        .into_iter();
        let mut checked = out.into_iter().map(|slot| match slot {
            Some(refused) => refused,
            None => admitted
                .next()
                .unwrap_or_else(|| Err(SubmitError::Unavailable("no answer".into())))
                .map_err(submit_error),
        });
        // Back in submission order: the early refusals in their places, the rest in order.
        Ok(early
            .into_iter()
            .map(|slot| {
                slot.unwrap_or_else(|| {
                    checked
                        .next()
                        .unwrap_or_else(|| Err(internal("no result for the transaction")))
                })
            })
            .collect())
    }

    /// Store, then the driver (mempool and refusals), then the store again: the driver
    /// commits a block to the store before it removes the block's transactions from the
    /// mempool, and answers only between those steps or after both, so a transaction it no
    /// longer pools because it was just committed is in the store by the time it answers.
    /// An accepted transaction therefore reads `pending` until it reads `finalized`, never
    /// `unknown` in between.
    async fn transaction(&self, hash: Hash) -> Result<TxStatus, RpcError> {
        if let Some(status) = self.finalized_status(&hash)? {
            return Ok(status);
        }
        let local = self.ask(|reply| Command::TxStatus { hash, reply }).await?;
        if local != LocalTxStatus::Pending
            && let Some(status) = self.finalized_status(&hash)?
        {
            return Ok(status);
        }
        Ok(match local {
            LocalTxStatus::Pending => TxStatus::Pending,
            LocalTxStatus::Rejected { code, reason } => TxStatus::Rejected {
                reason: code,
                message: reason,
            },
            LocalTxStatus::Unknown => TxStatus::Unknown,
        })
    }

    async fn block_by_height(&self, height: u64) -> Result<Option<Block>, RpcError> {
        let block = self
            .shared
            .store
            .block_by_height(height)
            .map_err(internal)?;
        self.unless_pruned(height, block)
    }

    async fn block_by_hash(&self, hash: Hash) -> Result<Option<Block>, RpcError> {
        let store = &self.shared.store;
        let block = store.block_by_hash(&hash).map_err(internal)?;
        match (&block, store.height_of(&hash).map_err(internal)?) {
            (None, Some(height)) => self.unless_pruned(height, None),
            _ => Ok(block),
        }
    }

    async fn validators(&self) -> Result<Vec<ValidatorInfo>, RpcError> {
        self.current_validators()
    }

    async fn validators_at(
        &self,
        at: cairn_rpc::ValidatorsAt,
    ) -> Result<Option<Vec<ValidatorInfo>>, RpcError> {
        let store = &self.shared.store;
        let record = match at {
            cairn_rpc::ValidatorsAt::Current => return self.current_validators().map(Some),
            cairn_rpc::ValidatorsAt::Height(h) => {
                let head = store.head().map_err(internal)?.map_or(0, |h| h.height);
                if h > head {
                    return Ok(None); // not finalized yet: its set is not settled
                }
                store.epoch_at_height(h).map_err(internal)?
            }
            cairn_rpc::ValidatorsAt::Epoch(e) => {
                let record = store.epoch_record(e).map_err(internal)?;
                if record.is_none() && e == 0 {
                    return Ok(Some(self.genesis_validators()));
                }
                return Ok(record.map(|r| validator_infos(&r.validators)));
            }
        };
        Ok(Some(match record {
            Some(r) => validator_infos(&r.validators),
            None => self.genesis_validators(),
        }))
    }

    async fn epoch_proof(&self, epoch: u64) -> Result<Option<cairn_rpc::EpochProofInfo>, RpcError> {
        let store = &self.shared.store;
        // `u64::MAX` has no next epoch (and never ended).
        let Some(next_epoch) = epoch.checked_add(1) else {
            return Ok(None);
        };
        let (Some(this), Some(next)) = (
            store.epoch_record(epoch).map_err(internal)?,
            store.epoch_record(next_epoch).map_err(internal)?,
        ) else {
            return Ok(None);
        };
        let Some(bytes) = store
            .meta_get(&format!(
                "{}{epoch:020}",
                crate::driver::EPOCH_PROOF_KEY_PREFIX
            ))
            .map_err(internal)?
        else {
            return Ok(None);
        };
        Ok(Some(cairn_rpc::EpochProofInfo {
            epoch,
            boundary_height: next.first_height - 1,
            boundary_hash: next.anchor,
            validators: validator_infos(&this.validators),
            next_validators: validator_infos(&next.validators),
            proof: hex::encode(&bytes),
        }))
    }

    async fn peers(&self) -> Result<Vec<PeerInfo>, RpcError> {
        let peers = self.net.peers().await;
        Ok(peers
            .into_iter()
            .map(|p| {
                let id = p.peer_id.to_string();
                PeerInfo {
                    is_validator: self.shared.genesis.validator_by_peer_id(&id).is_some(),
                    peer_id: id,
                    address: p.address.map(|a| a.to_string()),
                    direction: Some(if p.outbound { "outbound" } else { "inbound" }.into()),
                    admission: Some(p.admission.as_str().into()),
                    score: p.score,
                    found: Some(p.found.as_str().into()),
                    path: Some(p.path.as_str().into()),
                }
            })
            .collect())
    }

    async fn finalization(&self, height: u64) -> Result<Option<FinalizationInfo>, RpcError> {
        let Some(bytes) = self.shared.store.certificate(height).map_err(internal)? else {
            return Ok(None);
        };
        let cert: cairn_consensus::Certificate = borsh::from_slice(&bytes)
            .map_err(|e| internal(format!("stored certificate at height {height}: {e}")))?;
        let cairn_consensus::CertificateKind::Finalization(p) = &cert.kind else {
            return Err(internal(format!(
                "stored certificate at height {height} is not a finalization"
            )));
        };
        Ok(Some(FinalizationInfo {
            height,
            block_hash: Hash(p.payload.0),
            view: p.view,
            signers: cert.signatures.iter().map(|(i, _)| *i).collect(),
            certificate: hex::encode(&bytes),
        }))
    }

    async fn throughput(&self) -> Result<cairn_rpc::Throughput, RpcError> {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Ok(self.shared.metrics.throughput.series(now_ms))
    }

    fn finalized_blocks(&self) -> Option<cairn_rpc::FinalizedBlocks> {
        Some(self.shared.finalized_blocks.subscribe())
    }

    async fn evidence(&self) -> Result<Vec<EvidenceInfo>, RpcError> {
        let records = self
            .shared
            .store
            .meta_scan(crate::driver::EVIDENCE_KEY_PREFIX, EVIDENCE_RESULTS_MAX)
            .map_err(internal)?;
        let mut out = Vec::with_capacity(records.len());
        for (key, bytes) in records {
            let ev = cairn_consensus::Evidence::decode(&bytes)
                .map_err(|e| internal(format!("stored evidence {key}: {e}")))?;
            let index = ev.signer();
            // Key: evidence/<epoch>/<view>/<signer>/<kind>; the signer indexes its epoch's set.
            let epoch: u64 = key
                .strip_prefix(crate::driver::EVIDENCE_KEY_PREFIX)
                .and_then(|rest| rest.split('/').next())
                .and_then(|e| e.parse().ok())
                .unwrap_or(0);
            let names = match self.shared.store.epoch_record(epoch).map_err(internal)? {
                Some(r) => r.validators.iter().map(|v| v.name.clone()).collect(),
                None => self
                    .shared
                    .genesis
                    .validators
                    .iter()
                    .map(|v| v.name.clone())
                    .collect::<Vec<_>>(),
            };
            out.push(EvidenceInfo {
                validator: names.get(index as usize).cloned().unwrap_or_default(),
                validator_index: index,
                view: ev.view(),
                kind: match ev.equivocation() {
                    Some(cairn_consensus::Equivocation::Notarize) => "notarize/notarize",
                    Some(cairn_consensus::Equivocation::Finalize) => "finalize/finalize",
                    Some(cairn_consensus::Equivocation::NullifyFinalize) => "nullify/finalize",
                    None => "unknown",
                }
                .into(),
                evidence: hex::encode(&bytes),
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validator(i: u8) -> ValidatorInfo {
        ValidatorInfo {
            name: format!("v{i}"),
            address: Address([i; 32]),
            peer_id: String::new(),
            voting_power: 1 + u64::from(i),
        }
    }

    /// The leaders `getStatus` announces are the ones consensus elects.
    #[test]
    fn upcoming_leaders_follow_consensus() {
        for n in [1u8, 3, 4, 12] {
            let set: Vec<ValidatorInfo> = (1..=n).map(validator).collect();
            let consensus = cairn_consensus::ValidatorSet::new(
                set.iter()
                    .map(|v| cairn_consensus::Validator {
                        public_key: cairn_consensus::SigningKey::from_bytes(&v.address.0)
                            .verifying_key(),
                        voting_power: v.voting_power,
                    })
                    .collect(),
            )
            .unwrap();
            for view in [0u64, 1, 5, 1_000_003] {
                let leaders = upcoming_leaders(&set, view);
                assert_eq!(leaders.len(), usize::from(n).min(UPCOMING_LEADERS_MAX));
                for (k, l) in leaders.iter().enumerate() {
                    assert_eq!(l.view, view + k as u64);
                    let elected = consensus.leader(l.view);
                    assert_eq!(
                        l.address,
                        set[usize::from(elected)].address,
                        "view {}",
                        l.view
                    );
                    assert_eq!(l.name, set[usize::from(elected)].name);
                }
            }
        }
        // The last views: no overflow, fewer entries.
        let set: Vec<ValidatorInfo> = (1..=4).map(validator).collect();
        assert_eq!(upcoming_leaders(&set, u64::MAX).len(), 1);
        assert!(upcoming_leaders(&[], 3).is_empty());
    }
}
