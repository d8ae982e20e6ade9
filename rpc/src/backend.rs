//! The interface the node implements to serve RPC.

use async_trait::async_trait;
use cairn_ledger::{Address, Block, Hash, SignedTransaction};

use crate::{
    AccountInfo, EvidenceInfo, FinalizationInfo, PeerInfo, RpcError, Status, TxStatus,
    ValidatorInfo,
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

    /// Stored equivocation evidence, oldest view first, at most
    /// [`crate::EVIDENCE_RESULTS_MAX`] records. Default: none (a backend that keeps none).
    async fn evidence(&self) -> Result<Vec<EvidenceInfo>, RpcError> {
        Ok(Vec::new())
    }
}
