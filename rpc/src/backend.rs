//! The interface the node implements to serve RPC.

use async_trait::async_trait;
use cairn_ledger::{Address, Block, Hash, SignedTransaction};

use crate::{
    AccountInfo, BlockSummary, EvidenceInfo, FinalizationInfo, PeerInfo, RpcError, Status,
    TxStatus, ValidatorInfo, ValidatorsAt,
};

/// What the RPC server needs from the node. Implemented by `cairn-node`; tests use mocks.
///
/// The server does the JSON-RPC framing and the stateless input checks (hex, sizes,
/// decoding, address and hash syntax) before calling a method, so implementations receive
/// well-formed values only. Everything else — signature, chain id, nonce, balance,
/// mempool admission — is the backend's call.
///
/// Calls may be cancelled (their future dropped) when a request exceeds
/// [`crate::RpcServerConfig::request_timeout_ms`]: implementations must be cancellation-safe
/// (e.g. hand the transaction to the mempool task through a channel rather than holding a
/// lock across an await that leaves shared state half-updated).
#[async_trait]
pub trait RpcBackend: Send + Sync + 'static {
    /// The node's view of the chain.
    async fn status(&self) -> Result<Status, RpcError>;

    /// An account as of the latest finalized block (balance 0, nonce 0 if it never existed).
    async fn account(&self, address: Address) -> Result<AccountInfo, RpcError>;

    /// Submits a decoded transaction. Returns its hash once admitted to the mempool, or
    /// [`RpcError::Rejected`] with a stable reason code (e.g. [`cairn_ledger::LedgerError::code`]).
    async fn submit_transaction(&self, tx: SignedTransaction) -> Result<Hash, RpcError>;

    /// Submits a batch of decoded transactions (at most [`crate::SEND_TRANSACTIONS_MAX`]):
    /// one result per transaction, in order, each as [`RpcBackend::submit_transaction`]
    /// would give it. An `Err` of the whole call means none was looked at. Default: one
    /// `submit_transaction` after another; the node overrides it to verify signatures in a
    /// batch and admit all in one step.
    async fn submit_transactions(
        &self,
        txs: Vec<SignedTransaction>,
    ) -> Result<Vec<Result<Hash, RpcError>>, RpcError> {
        let mut out = Vec::with_capacity(txs.len());
        for tx in txs {
            out.push(self.submit_transaction(tx).await);
        }
        Ok(out)
    }

    /// False while the backend would refuse every submission for load (the node: its
    /// mempool's share for local submissions is full). The server then answers
    /// `sendTransaction` and `sendTransactions` with -32005 `overloaded` for the whole call
    /// before it decodes the params, so a refusal under overload costs a scan of the
    /// request, not a decode per transaction. Must be cheap (an atomic load): it is asked
    /// once per submission call. Default: always open.
    fn submissions_open(&self) -> bool {
        true
    }

    /// Where a transaction is.
    async fn transaction(&self, hash: Hash) -> Result<TxStatus, RpcError>;

    /// The finalized block at `height`, if any.
    async fn block_by_height(&self, height: u64) -> Result<Option<Block>, RpcError>;

    /// The finalized block with this hash, if any.
    async fn block_by_hash(&self, hash: Hash) -> Result<Option<Block>, RpcError>;

    /// The validator set.
    async fn validators(&self) -> Result<Vec<ValidatorInfo>, RpcError>;

    /// The validator set at `at` (`getValidators` with params): `None` for an epoch the
    /// chain has not reached. Default: the current set for [`crate::ValidatorsAt::Current`],
    /// `None` otherwise (a backend without epochs).
    async fn validators_at(
        &self,
        at: crate::ValidatorsAt,
    ) -> Result<Option<Vec<ValidatorInfo>>, RpcError> {
        match at {
            crate::ValidatorsAt::Current => self.validators().await.map(Some),
            _ => Ok(None),
        }
    }

    /// The proof that epoch `epoch` ended (`getEpochProof`), if it did and the backend
    /// holds it. Default: none.
    async fn epoch_proof(&self, epoch: u64) -> Result<Option<crate::EpochProofInfo>, RpcError> {
        let _ = epoch;
        Ok(None)
    }

    /// Connected peers.
    async fn peers(&self) -> Result<Vec<PeerInfo>, RpcError>;

    /// The finalization certificate of the block at `height`, if one is stored for exactly
    /// that height (a block finalized together with a descendant has none of its own: the
    /// descendant's certificate implies it). Default: none.
    async fn finalization(&self, height: u64) -> Result<Option<FinalizationInfo>, RpcError> {
        let _ = height;
        Ok(None)
    }

    /// The governance record as of the latest finalized block (`getGovernance`): members,
    /// threshold, accounts policy, validator set, parameters and open proposals. `None` for
    /// a chain without one. Default: none.
    async fn governance(&self) -> Result<Option<cairn_ledger::governance::Governance>, RpcError> {
        Ok(None)
    }

    /// Summaries of consecutive finalized blocks in ascending height order
    /// (`getBlockSummaries`): from height `from` (`None`: the latest `count` blocks, ending
    /// at the head) up to `count` blocks or the head, whichever comes first; empty if `from`
    /// is above the head. The server bounds `count` to 1..=[`crate::BLOCK_SUMMARIES_MAX`].
    ///
    /// Default: built from [`RpcBackend::status`], [`RpcBackend::block_by_height`],
    /// [`RpcBackend::finalization`] and [`RpcBackend::validators_at`] (the signers' indices
    /// mapped to the addresses of the set that finalized each block). A block missing
    /// below the head is an internal error.
    async fn block_summaries(
        &self,
        from: Option<u64>,
        count: u64,
    ) -> Result<Vec<BlockSummary>, RpcError> {
        let head = self.status().await?.latest_height;
        let count = count.min(crate::BLOCK_SUMMARIES_MAX);
        let (first, last) = match from {
            Some(from) if from > head => return Ok(Vec::new()),
            Some(from) => (from, head.min(from.saturating_add(count.saturating_sub(1)))),
            None => (head.saturating_sub(count.saturating_sub(1)), head),
        };
        let mut out = Vec::with_capacity((last - first + 1) as usize);
        for height in first..=last {
            let block = self.block_by_height(height).await?.ok_or_else(|| {
                RpcError::internal(format!("finalized block {height} is missing"))
            })?;
            let signers = match self.finalization(height).await? {
                Some(f) => {
                    let set = self
                        .validators_at(ValidatorsAt::Height(height))
                        .await?
                        .unwrap_or_default();
                    Some(
                        f.signers
                            .iter()
                            .filter_map(|&i| set.get(usize::from(i)).map(|v| v.address))
                            .collect(),
                    )
                }
                None => None,
            };
            out.push(BlockSummary {
                height,
                hash: block.hash(),
                view: block.header.view,
                proposer: block.header.proposer,
                timestamp_ms: block.header.timestamp_ms,
                tx_count: block.transactions.len() as u64,
                signers,
            });
        }
        Ok(out)
    }

    /// What the node finalized per second over the last minutes (`getThroughput`).
    /// Default: no bins (a backend that does not count).
    async fn throughput(&self) -> Result<crate::Throughput, RpcError> {
        Ok(crate::Throughput {
            bin_ms: 1000,
            bins: Vec::new(),
        })
    }

    /// A new receiver of the node's finalized blocks, for WebSocket subscriptions
    /// ([`crate::ws`]): every block the node commits, in height order, published by the
    /// node's commit path on a bounded `tokio::sync::broadcast` channel without ever
    /// waiting (a receiver that falls more than the channel's capacity behind sees
    /// `Lagged` and its connection is closed with reason `lagged`). Each call subscribes
    /// anew (the receiver sees blocks committed after the call). `None` (the default): the
    /// backend publishes none, and `subscribe` answers -32603.
    fn finalized_blocks(&self) -> Option<crate::FinalizedBlocks> {
        None
    }

    /// Stored equivocation evidence, oldest view first, at most
    /// [`crate::EVIDENCE_RESULTS_MAX`] records. Default: none (a backend that keeps none).
    async fn evidence(&self) -> Result<Vec<EvidenceInfo>, RpcError> {
        Ok(Vec::new())
    }
}
