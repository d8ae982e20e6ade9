//! JSON shapes of the RPC results.
//!
//! Every type serializes with camelCase keys (a block header too: [`BlockInfo::header`];
//! only `getGovernance`'s record keeps `cairn-ledger`'s snake_case form). `u64` values are JSON numbers; they are exact in any JSON
//! parser that keeps integers exact (Rust, Go, Python). JavaScript loses precision above
//! 2^53 − 1.

use cairn_ledger::governance::Permissions;
use cairn_ledger::{Action, Address, Block, BlockHeader, Hash, SignedTransaction};
use serde::{Deserialize, Serialize};

/// The node's view of the chain (`getStatus`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// Chain id from genesis; transactions must carry it.
    pub chain_id: String,
    /// Hash of the genesis block.
    pub genesis_hash: Hash,
    /// Height of the latest finalized block.
    pub latest_height: u64,
    /// Hash of the latest finalized block.
    pub latest_hash: Hash,
    /// State root after the latest finalized block.
    pub latest_state_root: Hash,
    /// Number of connected peers.
    pub peer_count: u32,
    /// True while the node is catching up with its peers (its state may be stale).
    pub syncing: bool,
    /// Version of the node software (`cairn-node` crate version).
    pub node_version: String,
    /// Version of this JSON-RPC interface ([`crate::RPC_VERSION`]); absent (read as 1)
    /// from nodes before version 2.
    #[serde(default = "rpc_version_1")]
    pub rpc_version: u32,
    /// The validator this node runs as, if its consensus key is in the running epoch's set
    /// (it changes with governance, without a restart).
    #[serde(default)]
    pub validator_name: Option<String>,
    /// The running epoch (validator-set changes so far).
    #[serde(default)]
    pub epoch: u64,
    /// The node's current consensus view in the running epoch (views restart at 0 in every
    /// epoch).
    #[serde(default)]
    pub view: u64,
    /// Transactions in the node's mempool (pending, not yet finalized).
    #[serde(default)]
    pub mempool_txs: u64,
    /// Finality latency of the latest block this node finalized through consensus, ms: its
    /// wall clock at the commit minus the block header's `timestamp_ms` (the proposer's wall
    /// clock when it built the block), 0 if negative. Spans proposal, voting and execution;
    /// across machines it includes their clock skew. `null` until the node has finalized a
    /// block through consensus since it started (blocks it synced do not count). Also the
    /// `cairn_finality_latency_ms` metric.
    #[serde(default)]
    pub finality_latency_ms: Option<u64>,
    /// Leaders of the current view and the views after it, in view order, at most
    /// [`UPCOMING_LEADERS_MAX`] (fewer with fewer validators): round-robin over the
    /// running epoch's set (`getValidators`), view `v` led by validator `v mod n`. A view
    /// that ends without a block moves the round on.
    #[serde(default)]
    pub upcoming_leaders: Vec<LeaderInfo>,
    /// The lowest height whose block body (transactions) this node holds: `getBlock` serves
    /// every finalized height from it (and the genesis block); below it the node pruned the
    /// bodies (`[storage] retain_blocks`) and answers -32004 `pruned`. 0: nothing pruned
    /// (absent from older nodes: read as 0).
    #[serde(default)]
    pub lowest_retained_height: u64,
}

/// Most entries in [`Status::upcoming_leaders`].
pub const UPCOMING_LEADERS_MAX: usize = 8;

/// The leader of one consensus view ([`Status::upcoming_leaders`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaderInfo {
    /// The view (of the running epoch).
    pub view: u64,
    /// The leader's name.
    pub name: String,
    /// The leader's consensus key, as an address.
    pub address: Address,
}

/// Most one-second bins in a [`Throughput`] (`getThroughput`): five minutes.
pub const THROUGHPUT_BINS_MAX: usize = 300;

/// What the node finalized per second lately (`getThroughput`), by its own clock: one bin
/// per whole second, oldest first, ending with the last complete second; seconds without
/// blocks have zero bins. At most [`THROUGHPUT_BINS_MAX`] bins, fewer after a start (none
/// before the node started).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Throughput {
    /// Width of a bin, ms (1000).
    pub bin_ms: u64,
    /// The bins.
    pub bins: Vec<ThroughputBin>,
}

/// One second of [`Throughput`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThroughputBin {
    /// Start of the second, ms since the Unix epoch (node's clock).
    pub start_ms: u64,
    /// Transactions in the blocks the node committed (finalized or synced) in it.
    pub txs: u64,
    /// Blocks the node committed in it.
    pub blocks: u64,
}

/// Most blocks one `getBlockSummaries` call returns.
pub const BLOCK_SUMMARIES_MAX: u64 = 256;

/// One finalized block in brief (`getBlockSummaries`): enough to chart throughput and see
/// who proposed and who signed, without the transactions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockSummary {
    /// Height.
    pub height: u64,
    /// Block hash.
    pub hash: Hash,
    /// Consensus view the block was proposed in.
    pub view: u64,
    /// Proposer's consensus key, as an address (the all-zero address for genesis).
    pub proposer: Address,
    /// Proposer's wall clock when it built the block, ms since the Unix epoch.
    pub timestamp_ms: u64,
    /// Number of transactions in the block.
    pub tx_count: u64,
    /// Consensus keys (as addresses) of the validators whose Finalize votes the block's
    /// stored finalization certificate carries (at least a 2f+1 quorum of the set that
    /// finalized it, in index order), or `null` when no certificate is stored for exactly
    /// this height (see `getFinalization`). A quorum certificate holds the first votes to
    /// arrive, so a validator missing from one may still have voted.
    pub signers: Option<Vec<Address>>,
}

fn rpc_version_1() -> u32 {
    1
}

/// An account as of the latest finalized block (`getAccount`), and the nonce its next
/// transaction should carry.
///
/// An address that never received funds has balance 0 and nonce 0.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountInfo {
    /// The account.
    pub address: Address,
    /// Balance in base units.
    pub balance: u64,
    /// The account's nonce as of the latest finalized block: the nonce of the next
    /// transaction to execute.
    pub nonce: u64,
    /// The nonce to give a new transaction: `nonce` plus the account's transactions in the
    /// node's mempool with nonces `nonce, nonce + 1, …` without a gap (a transaction beyond
    /// a gap does not count). Equals `nonce` when nothing is pooled. Absent from nodes
    /// before RPC version 2 (then read as 0: use `nonce`).
    #[serde(default)]
    pub next_nonce: u64,
    /// Permissions the account holds, by name (`["transact"]`); empty if none. Under the
    /// `permissioned` accounts policy, only holders of `transact` may send transfers.
    #[serde(default)]
    pub permissions: Permissions,
}

/// Where a transaction is (`getTransaction`). JSON: an object tagged by `status`, e.g.
/// `{"status":"finalized","height":7,"index":0,"blockHash":"…"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "status",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum TxStatus {
    /// Accepted into the mempool, not yet in a finalized block.
    Pending,
    /// In a finalized block: final, never reverted.
    Finalized {
        /// Height of the block.
        height: u64,
        /// Position of the transaction in the block.
        index: u32,
        /// Hash of the block.
        block_hash: Hash,
    },
    /// Refused at submission (by this node: at most the last 16,384 refusals are kept), or
    /// accepted and later dropped without being included (`nonce_gap`). `reason` is the
    /// stable code the submission's error carried in `data.reason`.
    Rejected {
        /// Stable reason code, e.g. `bad_signature`, `stale_nonce`, `nonce_gap`.
        reason: String,
        /// Human-readable explanation.
        message: String,
    },
    /// The node knows nothing of this hash.
    Unknown,
}

impl TxStatus {
    /// Finalized or rejected: the status will not change any more.
    pub fn is_terminal(&self) -> bool {
        matches!(self, TxStatus::Finalized { .. } | TxStatus::Rejected { .. })
    }

    /// The lowercase tag used in JSON (`pending`, `finalized`, `rejected`, `unknown`).
    pub fn label(&self) -> &'static str {
        match self {
            TxStatus::Pending => "pending",
            TxStatus::Finalized { .. } => "finalized",
            TxStatus::Rejected { .. } => "rejected",
            TxStatus::Unknown => "unknown",
        }
    }
}

/// A transaction inside a [`BlockInfo`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TxInfo {
    /// Transaction hash.
    pub hash: Hash,
    /// Paying account (the signer).
    pub sender: Address,
    /// `"transfer"`, `"propose"` or `"approve"` (the body's action).
    pub kind: String,
    /// Receiving account of a transfer; absent (`null`) for governance transactions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<Address>,
    /// Base units moved (0 for governance transactions).
    pub amount: u64,
    /// The governance action or approval, for `propose` and `approve` transactions (the
    /// body's action in its JSON form); absent for transfers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    /// Base units paid to the proposer.
    pub fee: u64,
    /// Sender nonce the transaction consumed.
    pub nonce: u64,
    /// Last height at which it could have been included.
    pub expiry_height: u64,
    /// Chain id it was signed for.
    pub chain_id: String,
    /// The sender's Ed25519 signature over the transaction hash, 128 hex characters.
    pub signature: String,
    /// The signed transaction's wire bytes (docs/wire-format.md, `SignedTransaction`) as
    /// hex: decode it to re-check the signature and the block's `signedTxsRoot`.
    pub raw: String,
}

impl From<&SignedTransaction> for TxInfo {
    fn from(tx: &SignedTransaction) -> TxInfo {
        let b = &tx.body;
        TxInfo {
            hash: tx.hash(),
            sender: b.sender,
            kind: b.action.kind().to_string(),
            recipient: b.recipient(),
            amount: b.amount(),
            action: match b.action {
                Action::Transfer { .. } => None,
                ref governance => Some(governance.clone()),
            },
            fee: b.fee,
            nonce: b.nonce,
            expiry_height: b.expiry_height,
            chain_id: b.chain_id.clone(),
            signature: hex::encode(tx.signature),
            raw: hex::encode(tx.encode()),
        }
    }
}

/// Serde form of a [`BlockHeader`] in RPC results: the same fields with camelCase keys
/// (`chainId`, `height`, `view`, `parentHash`, `proposer`, `timestampMs`, `txsRoot`,
/// `signedTxsRoot`, `stateRoot`); hashes are hex, the proposer a bech32m address.
pub(crate) mod header_camel_case {
    use cairn_ledger::{Address, BlockHeader, Hash};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct HeaderJson {
        chain_id: String,
        height: u64,
        view: u64,
        parent_hash: Hash,
        proposer: Address,
        timestamp_ms: u64,
        txs_root: Hash,
        signed_txs_root: Hash,
        state_root: Hash,
    }

    pub fn serialize<S: Serializer>(h: &BlockHeader, s: S) -> Result<S::Ok, S::Error> {
        HeaderJson {
            chain_id: h.chain_id.clone(),
            height: h.height,
            view: h.view,
            parent_hash: h.parent_hash,
            proposer: h.proposer,
            timestamp_ms: h.timestamp_ms,
            txs_root: h.txs_root,
            signed_txs_root: h.signed_txs_root,
            state_root: h.state_root,
        }
        .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BlockHeader, D::Error> {
        let h = HeaderJson::deserialize(d)?;
        Ok(BlockHeader {
            chain_id: h.chain_id,
            height: h.height,
            view: h.view,
            parent_hash: h.parent_hash,
            proposer: h.proposer,
            timestamp_ms: h.timestamp_ms,
            txs_root: h.txs_root,
            signed_txs_root: h.signed_txs_root,
            state_root: h.state_root,
        })
    }
}

/// A finalized block (`getBlock`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockInfo {
    /// Block hash (hash of the header).
    pub hash: Hash,
    /// The header, camelCase keys (`parentHash`, `timestampMs`, `txsRoot`,
    /// `signedTxsRoot`, `stateRoot`, …); its borsh encoding hashes to `hash`.
    #[serde(with = "header_camel_case")]
    pub header: BlockHeader,
    /// The transactions, in execution order.
    pub transactions: Vec<TxInfo>,
}

impl From<&Block> for BlockInfo {
    fn from(block: &Block) -> BlockInfo {
        BlockInfo {
            hash: block.hash(),
            header: block.header.clone(),
            transactions: block.transactions.iter().map(TxInfo::from).collect(),
        }
    }
}

impl From<Block> for BlockInfo {
    fn from(block: Block) -> BlockInfo {
        BlockInfo::from(&block)
    }
}

/// A finalized block with its transactions' hashes only (`getBlock` with `"transactions":
/// "hashes"`, as Ethereum's `eth_getBlockByNumber(n, false)`): for clients that follow the
/// chain and match transactions they already know, at a fraction of the full form's
/// encoding cost.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockHashesInfo {
    /// Block hash (hash of the header).
    pub hash: Hash,
    /// The header, as in [`BlockInfo::header`] (camelCase keys).
    #[serde(with = "header_camel_case")]
    pub header: BlockHeader,
    /// The transactions' hashes, in execution order.
    pub transaction_hashes: Vec<Hash>,
}

impl From<&Block> for BlockHashesInfo {
    fn from(block: &Block) -> BlockHashesInfo {
        BlockHashesInfo {
            hash: block.hash(),
            header: block.header.clone(),
            transaction_hashes: block.transactions.iter().map(|t| t.hash()).collect(),
        }
    }
}

/// A member of the validator set (`getValidators`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidatorInfo {
    /// Name from genesis.
    pub name: String,
    /// Consensus public key, as an address.
    pub address: Address,
    /// libp2p peer id (base58).
    pub peer_id: String,
    /// Voting power.
    pub voting_power: u64,
}

/// Which validator set `getValidators` returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValidatorsAt {
    /// The running epoch's (no params).
    Current,
    /// The set that finalized the block at this height (`{height}`).
    Height(u64),
    /// The set of this epoch (`{epoch}`).
    Epoch(u64),
}

/// An ended epoch and the proof that it ended (`getEpochProof`). A client that knows
/// epoch `epoch`'s set checks `proof` (hex of borsh `StoredEpochProof`,
/// docs/wire-format.md) against it: the finalization verifies under the epoch's namespace
/// and set, the suffix headers link down to `boundaryHash`, which is the block at
/// `boundaryHeight`. `nextValidators` is the set that block's execution decided: a node
/// verifies it by executing the chain; the header does not commit to it separately.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EpochProofInfo {
    /// The ended epoch.
    pub epoch: u64,
    /// Height of its boundary block (its last block).
    pub boundary_height: u64,
    /// Hash of its boundary block.
    pub boundary_hash: Hash,
    /// The set of `epoch` (which signed the proof).
    pub validators: Vec<ValidatorInfo>,
    /// The set of `epoch + 1`.
    pub next_validators: Vec<ValidatorInfo>,
    /// Hex of the borsh `StoredEpochProof` (finalization, listed ids, suffix headers).
    pub proof: String,
}

/// A connected peer (`getPeers`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerInfo {
    /// libp2p peer id (base58).
    pub peer_id: String,
    /// Remote multiaddr, if known.
    #[serde(default)]
    pub address: Option<String>,
    /// True if the peer is a member of the validator set.
    pub is_validator: bool,
    /// `inbound` or `outbound`, if known.
    #[serde(default)]
    pub direction: Option<String>,
    /// Admission state: `disabled`, `exempt` (validator), `admitted`, `pending` or
    /// `refused`; absent from older nodes.
    #[serde(default)]
    pub admission: Option<String>,
    /// The node's score of the peer (gossipsub score including admission), if known;
    /// absent from older nodes.
    #[serde(default)]
    pub score: Option<f64>,
    /// How the peer was found: `configured` (named in `p2p.bootstrap`), `kademlia` (dialed
    /// at an address the DHT gave), `identify` (dialed at an address the peer announced on
    /// an earlier connection) or `inbound` (it dialed us); absent from older nodes.
    #[serde(default)]
    pub found: Option<String>,
    /// `direct` (some open connection to it goes without a relay) or `relayed` (every one
    /// goes through a circuit relay); absent from older nodes.
    #[serde(default)]
    pub path: Option<String>,
}

/// Most evidence records one `getEvidence` call returns.
pub const EVIDENCE_RESULTS_MAX: usize = 1000;

/// One equivocation: two conflicting votes signed by the same validator in one view.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EvidenceInfo {
    /// Name of the equivocating validator (in the validator set of the epoch the votes
    /// were cast in).
    pub validator: String,
    /// Its index in that epoch's validator set (the genesis set in epoch 0).
    pub validator_index: u16,
    /// The view of both votes.
    pub view: u64,
    /// What conflicts, e.g. `notarize/notarize` (two proposals) or `nullify/finalize`.
    pub kind: String,
    /// Hex of the borsh-encoded evidence record (`cairn_consensus::Evidence`): both signed
    /// votes, signed under their epoch's namespace (`epoch_namespace`, docs/wire-format.md)
    /// and verifiable by anyone holding that epoch's validator set.
    pub evidence: String,
}

/// The finalization certificate of a block (`getFinalization`): which validators signed
/// Finalize votes for it. The certificate itself is included so a client holding the
/// validator set of the block's epoch (the genesis set in epoch 0; later sets are reached
/// with `getEpochProof`) can verify it without trusting the node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FinalizationInfo {
    /// Height of the finalized block.
    pub height: u64,
    /// Hash of the finalized block (the certificate's proposal payload).
    pub block_hash: Hash,
    /// Consensus view the block was finalized in.
    pub view: u64,
    /// Indices (ascending) into the validator set of the certificate's epoch (the epoch
    /// holding `height`: `getValidators {"height": height}`, the genesis set only in epoch
    /// 0) of the validators whose Finalize votes the certificate carries: at least a 2f+1
    /// quorum of that set's voting power.
    pub signers: Vec<u16>,
    /// Hex of the borsh-encoded `cairn_consensus::Certificate`.
    pub certificate: String,
}

/// Most transactions one `sendTransactions` call may carry; checked before any is decoded.
/// 1,000 wallet transfers are about 310 kB of hex, within the default 1 MiB body limit.
pub const SEND_TRANSACTIONS_MAX: usize = 1000;

/// The node's answer for one transaction of a `sendTransactions` batch, in request order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubmitResult {
    /// The transaction's hash.
    pub hash: Hash,
    /// True when admitted to the mempool.
    pub accepted: bool,
    /// When refused: the stable reason code, as `sendTransaction` would return it in
    /// `data.reason` (`overloaded` when the mempool or the node is full).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When refused: a human-readable explanation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn tx_status_json_shape() {
        let h = Hash([7; 32]);
        let v = serde_json::to_value(TxStatus::Finalized {
            height: 3,
            index: 1,
            block_hash: h,
        })
        .unwrap();
        assert_eq!(
            v,
            json!({"status": "finalized", "height": 3, "index": 1, "blockHash": h.to_hex()})
        );
        assert_eq!(
            serde_json::to_value(TxStatus::Pending).unwrap(),
            json!({"status": "pending"})
        );
        assert_eq!(
            serde_json::to_value(TxStatus::Unknown).unwrap(),
            json!({"status": "unknown"})
        );
        let r = TxStatus::Rejected {
            reason: "expired".into(),
            message: "too late".into(),
        };
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({"status": "rejected", "reason": "expired", "message": "too late"})
        );
        for s in [
            TxStatus::Pending,
            TxStatus::Unknown,
            r,
            TxStatus::Finalized {
                height: 1,
                index: 0,
                block_hash: h,
            },
        ] {
            let back: TxStatus = serde_json::from_value(serde_json::to_value(&s).unwrap()).unwrap();
            assert_eq!(back, s);
        }
    }

    #[test]
    fn status_and_account_are_camel_case_with_numeric_u64() {
        let s = Status {
            chain_id: "c".into(),
            genesis_hash: Hash::ZERO,
            latest_height: u64::MAX,
            latest_hash: Hash::ZERO,
            latest_state_root: Hash::ZERO,
            peer_count: 2,
            syncing: false,
            node_version: "0.1.0".into(),
            rpc_version: crate::RPC_VERSION,
            validator_name: None,
            epoch: 3,
            view: 9,
            mempool_txs: 4,
            finality_latency_ms: None,
            upcoming_leaders: vec![LeaderInfo {
                view: 9,
                name: "v".into(),
                address: Address([2; 32]),
            }],
            lowest_retained_height: 1025,
        };
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["lowestRetainedHeight"], json!(1025));
        assert_eq!(v["latestHeight"], json!(u64::MAX));
        assert!(v.get("latestStateRoot").is_some() && v.get("validatorName").is_some());
        assert_eq!(v["mempoolTxs"], json!(4));
        assert_eq!(v["finalityLatencyMs"], Value::Null);
        assert_eq!(
            v["upcomingLeaders"],
            json!([{"view": 9, "name": "v", "address": Address([2; 32]).to_bech32()}])
        );
        // A status from an older node, without the figures, still decodes.
        let mut old = v.as_object().unwrap().clone();
        for k in [
            "epoch",
            "view",
            "mempoolTxs",
            "finalityLatencyMs",
            "upcomingLeaders",
        ] {
            old.remove(k);
        }
        let back: Status = serde_json::from_value(Value::Object(old)).unwrap();
        assert_eq!(back.finality_latency_ms, None);
        assert!(back.upcoming_leaders.is_empty());
        assert_eq!(v["rpcVersion"], json!(2));
        // A node before version 2 sent no rpcVersion: read as 1.
        let mut old = v.clone();
        old.as_object_mut().unwrap().remove("rpcVersion");
        assert_eq!(
            serde_json::from_value::<Status>(old).unwrap().rpc_version,
            1
        );
        let a = AccountInfo {
            address: Address([1; 32]),
            balance: 10,
            nonce: 2,
            next_nonce: 5,
            permissions: Default::default(),
        };
        let v = serde_json::to_value(&a).unwrap();
        assert_eq!(
            v,
            json!({"address": Address([1; 32]).to_bech32(), "balance": 10, "nonce": 2, "nextNonce": 5, "permissions": []})
        );
    }

    /// issue 15: `getBlock`'s header is camelCase like the rest of the API, and each full
    /// transaction carries its signature and wire bytes, so a client re-verifies the block.
    #[test]
    fn block_json_is_camel_case_and_carries_signed_transactions() {
        use cairn_ledger::{TransactionBody, signed_txs_root_of, txs_root};
        let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
        let tx = TransactionBody {
            chain_id: "c".into(),
            sender: Address::from_public_key(&key.verifying_key()),
            fee: 1,
            nonce: 0,
            expiry_height: 9,
            action: Action::Transfer {
                recipient: Address([1; 32]),
                amount: 5,
            },
        }
        .sign(&key);
        let block = Block {
            header: BlockHeader {
                chain_id: "c".into(),
                height: 4,
                view: 5,
                parent_hash: Hash([1; 32]),
                proposer: Address([2; 32]),
                timestamp_ms: 6,
                txs_root: txs_root(&[tx.hash()]),
                signed_txs_root: signed_txs_root_of(std::slice::from_ref(&tx)),
                state_root: Hash([3; 32]),
            },
            transactions: vec![tx.clone()],
        };
        let v = serde_json::to_value(BlockInfo::from(&block)).unwrap();
        let header = v["header"].as_object().unwrap();
        let mut keys: Vec<&str> = header.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "chainId",
                "height",
                "parentHash",
                "proposer",
                "signedTxsRoot",
                "stateRoot",
                "timestampMs",
                "txsRoot",
                "view"
            ]
        );
        assert_eq!(v["header"]["parentHash"], json!(Hash([1; 32]).to_hex()));
        assert_eq!(v["header"]["timestampMs"], json!(6));
        let t = &v["transactions"][0];
        assert_eq!(t["signature"], json!(hex::encode(tx.signature)));
        // The raw bytes decode to the transaction, whose signature verifies and whose
        // signed hash is the block's signed-transactions root (one leaf).
        let raw = hex::decode(t["raw"].as_str().unwrap()).unwrap();
        let back = SignedTransaction::decode(&raw).unwrap();
        assert_eq!(back, tx);
        back.verify("c").unwrap();
        assert_eq!(
            signed_txs_root_of(std::slice::from_ref(&back)),
            block.header.signed_txs_root
        );
        // The JSON round trip gives back the header, whose hash is the block hash.
        let info: BlockInfo = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(info.header.hash(), block.hash());
        let hashes = serde_json::to_value(BlockHashesInfo::from(&block)).unwrap();
        assert_eq!(hashes["header"], v["header"]);
    }
}
