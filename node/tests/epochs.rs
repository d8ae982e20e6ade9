//! Governed membership on running nodes (issue 14): validators added and removed by
//! governance transactions take part from the next epoch on, a node synced from genesis
//! afterwards crosses every epoch change by verifying its proof, and `getValidators` /
//! `getEpochProof` serve each epoch's set and proof.
//!
//! Nodes run in-process (`node::run` on their own runtime threads) on loopback ports.

mod common;

use std::time::Duration;

use cairn_consensus::{Digest, EpochMessage, Message, Proposal, Vote, VoteKind, epoch_namespace};
use cairn_genesis::{ChainParams, Genesis, GenesisAccount, GenesisGovernance, GenesisValidator};
use cairn_ledger::governance::{AccountsPolicy, GovAction, Permission, ValidatorInfo};
use cairn_ledger::{Action, Address, Hash, SignedTransaction, TransactionBody};
use cairn_node::keys;
use cairn_node::network::{self, NetworkConfig, NetworkHandle, Topic};
use cairn_node::sync::StoredEpochProof;
use cairn_rpc::{ClientError, ValidatorsAt};
use common::cluster::{self, Cluster, Homes};
use ed25519_dalek::SigningKey;
use libp2p::Multiaddr;
use tokio::time::{Instant, sleep};

/// Upper bound of every "eventually" wait.
const WAIT: Duration = Duration::from_secs(60);
/// Poll step of every wait.
const POLL: Duration = Duration::from_millis(100);
/// Validators in genesis.
const GENESIS_VALIDATORS: usize = 4;

/// Loopback nodes: the first [`GENESIS_VALIDATORS`] are genesis validators, the others
/// start as full nodes with a consensus key of their own (validators-to-be). Derefs to the
/// shared [`Cluster`] (homes, configs, each node's consensus key, RPC clients, running nodes).
struct Net {
    cluster: Cluster,
    /// Each node's consensus key (as governance names it) and libp2p peer id.
    infos: Vec<ValidatorInfo>,
    /// Governance members (2 of 3 approve).
    members: Vec<SigningKey>,
    /// Next nonce per member.
    nonces: Vec<u64>,
}

impl std::ops::Deref for Net {
    type Target = Cluster;
    fn deref(&self) -> &Cluster {
        &self.cluster
    }
}

impl std::ops::DerefMut for Net {
    fn deref_mut(&mut self) -> &mut Cluster {
        &mut self.cluster
    }
}

impl Net {
    fn generate(total: usize) -> Net {
        Net::generate_with(total, AccountsPolicy::Open)
    }

    /// `total` nodes on a chain whose accounts policy is `accounts`.
    fn generate_with(total: usize, accounts: AccountsPolicy) -> Net {
        let homes = Homes::generate(total, GENESIS_VALIDATORS, |_| {});
        let infos: Vec<ValidatorInfo> = (0..total)
            .map(|i| ValidatorInfo {
                name: format!("validator-{i}"),
                consensus_key: homes.validator_addresses[i],
                peer_id: homes.peer_ids[i].to_string(),
                voting_power: 1,
            })
            .collect();
        let members: Vec<SigningKey> = (0..3u8)
            .map(|i| SigningKey::from_bytes(&[200 + i; 32]))
            .collect();
        let member_addresses: Vec<Address> = members
            .iter()
            .map(|k| Address(k.verifying_key().to_bytes()))
            .collect();
        let genesis = Genesis {
            chain_id: "cairn-epochs".into(),
            genesis_time_ms: cluster::now_ms(),
            validators: infos[..GENESIS_VALIDATORS]
                .iter()
                .map(|v| GenesisValidator {
                    name: v.name.clone(),
                    consensus_key: v.consensus_key,
                    peer_id: v.peer_id.clone(),
                    voting_power: 1,
                })
                .collect(),
            accounts: member_addresses
                .iter()
                .map(|a| GenesisAccount {
                    address: *a,
                    balance: 1_000_000,
                })
                .collect(),
            params: ChainParams {
                // Validators added later are not exempt from admission at nodes started
                // before them; no proof-of-work keeps this test about consensus.
                admission_difficulty_bits: 0,
                ..cluster::fast_params()
            },
            governance: GenesisGovernance {
                members: member_addresses,
                threshold: 2,
                accounts,
                ..GenesisGovernance::default()
            },
            generated_accounts: None,
        };
        Net {
            cluster: homes.with_genesis(genesis, WAIT),
            infos,
            members,
            nonces: vec![0; 3],
        }
    }

    /// Node `i`'s finalized height (0 if it does not answer).
    async fn height(&self, i: usize) -> u64 {
        self.cluster.height(i).await.unwrap_or(0)
    }

    /// A governance transaction from member `m`, submitted at node 0.
    async fn submit(&mut self, m: usize, action: Action) {
        self.send(m, action).await.unwrap();
    }

    /// A transaction of member `m`'s account carrying `action`, submitted at node 0 (the
    /// nonce advances only if it is accepted).
    async fn send(&mut self, m: usize, action: Action) -> Result<Hash, ClientError> {
        let height = self.height(0).await;
        let tx: SignedTransaction = TransactionBody {
            chain_id: self.genesis.chain_id.clone(),
            sender: Address(self.members[m].verifying_key().to_bytes()),
            fee: 1,
            nonce: self.nonces[m],
            expiry_height: height + 1000,
            action,
        }
        .sign(&self.members[m]);
        let hash = self.rpc[0].send_transaction(&tx).await?;
        self.nonces[m] += 1;
        Ok(hash)
    }

    /// Member `m`'s account as node 0 serves it.
    async fn account(&self, m: usize) -> cairn_rpc::AccountInfo {
        let address = Address(self.members[m].verifying_key().to_bytes());
        self.rpc[0].account(&address).await.unwrap()
    }

    /// Proposes `action` (member 0), approves it (member 1) and waits until `done` holds
    /// for member `m`'s account.
    async fn govern_account(
        &mut self,
        proposal_id: u64,
        action: GovAction,
        m: usize,
        done: impl Fn(&cairn_rpc::AccountInfo) -> bool,
    ) {
        self.submit(0, Action::Propose(action)).await;
        self.submit(1, Action::Approve { proposal_id }).await;
        let start = Instant::now();
        while !done(&self.account(m).await) {
            assert!(
                start.elapsed() < WAIT,
                "proposal {proposal_id} never executed"
            );
            sleep(POLL).await;
        }
    }

    /// Proposes `action` (member 0) and approves it (member 1); returns once every running
    /// node serves the changed set `expected` as its current validators.
    async fn govern(&mut self, proposal_id: u64, action: GovAction, expected: usize) {
        self.submit(0, Action::Propose(action)).await;
        self.submit(1, Action::Approve { proposal_id }).await;
        let start = Instant::now();
        for i in 0..self.running.len() {
            if self.running[i].is_none() {
                continue;
            }
            loop {
                let n = self.rpc[i].validators().await.map(|v| v.len()).unwrap_or(0);
                if n == expected {
                    break;
                }
                assert!(
                    start.elapsed() < WAIT,
                    "node {i} never switched to {expected} validators (serves {n})"
                );
                sleep(POLL).await;
            }
        }
    }

    /// Every pair of running nodes agrees on the block at every height both finalized.
    async fn assert_agree(&self, nodes: &[usize]) {
        let top = {
            let mut top = u64::MAX;
            for i in nodes {
                top = top.min(self.height(*i).await);
            }
            top
        };
        for h in 1..=top {
            let first = self.rpc[nodes[0]]
                .block_by_height(h)
                .await
                .unwrap()
                .unwrap()
                .hash;
            for i in &nodes[1..] {
                let other = self.rpc[*i].block_by_height(h).await.unwrap().unwrap().hash;
                assert_eq!(
                    first, other,
                    "nodes {} and {i} differ at height {h}",
                    nodes[0]
                );
            }
        }
    }
}

/// A bare network endpoint of this chain dialing `bootstrap`, once it shares the consensus
/// topic's mesh with it.
async fn raw_peer(genesis: &Genesis, bootstrap: &Multiaddr) -> NetworkHandle {
    let keypair = keys::libp2p_keypair([77; 32]);
    let (net, _events) = network::spawn(NetworkConfig {
        keypair,
        listen: "/ip4/127.0.0.1/tcp/0".parse().unwrap(),
        bootstrap: vec![bootstrap.clone()],
        namespace: genesis.hash().to_hex()[..16].to_string(),
        gossip_bytes_max: 1 << 20,
        sync_request_bytes_max: cairn_node::sync::SYNC_REQUEST_BYTES_MAX,
        sync_response_bytes_max: 1 << 20,
        sync_request_timeout_ms: 2000,
        event_queue_max: 1024,
        command_queue_max: 64,
        redial_interval_ms: 500,
        connections_max: 8,
        discovery: cairn_node::network::DiscoveryConfig::disabled(),
        nat: network::NatConfig::disabled(),
        request_pacing: Default::default(),
    })
    .await
    .unwrap();
    // The event stream must be drained or the network task stalls.
    let mut events = _events;
    tokio::spawn(async move { while events.recv().await.is_some() {} });
    let start = Instant::now();
    while net.mesh_peers(Topic::Consensus).await.is_empty() {
        assert!(
            start.elapsed() < WAIT,
            "the raw peer never joined the consensus mesh"
        );
        sleep(POLL).await;
    }
    net
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validators_join_and_leave_by_governance_and_a_fresh_node_syncs_across_epochs() {
    // Nodes 0..4: genesis validators; 4: a validator-to-be; 5: a fresh node started last.
    let mut net = Net::generate(6);
    for i in 0..5 {
        net.start(i);
    }
    net.wait_height(0, 3).await;
    assert_eq!(net.rpc[0].validators().await.unwrap().len(), 4);
    assert!(
        net.rpc[0].epoch_proof(0).await.unwrap().is_none(),
        "epoch 0 has not ended"
    );

    // Add node 4 (epoch 1).
    let added = net.infos[4].clone();
    net.govern(1, GovAction::AddValidator(added.clone()), 5)
        .await;
    let proof = net.rpc[0]
        .epoch_proof(0)
        .await
        .unwrap()
        .expect("epoch 0 ended: its proof is served");
    assert_eq!(
        (proof.validators.len(), proof.next_validators.len()),
        (4, 5)
    );
    let stored: StoredEpochProof = borsh::from_slice(&hex::decode(&proof.proof).unwrap()).unwrap();
    assert_eq!(stored.proof.epoch, 0);
    assert_eq!(stored.suffix.len() + 1, stored.proof.blocks.len());
    let boundary = net.rpc[0]
        .block_by_height(proof.boundary_height)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(boundary.hash, proof.boundary_hash);
    // Per-height and per-epoch sets.
    let at_boundary = net.rpc[0]
        .validators_at(ValidatorsAt::Height(proof.boundary_height))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        at_boundary.len(),
        4,
        "the boundary block is the old set's last"
    );
    let epoch1 = net.rpc[0]
        .validators_at(ValidatorsAt::Epoch(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(epoch1.last().unwrap().address, added.consensus_key);
    assert!(
        net.rpc[0]
            .validators_at(ValidatorsAt::Epoch(2))
            .await
            .unwrap()
            .is_none()
    );

    // Its node names itself a validator now, without a restart.
    let name = net.rpc[4].status().await.unwrap().validator_name;
    assert_eq!(name.as_deref(), Some("validator-4"));

    // The new validator's votes are needed: with validator 3 stopped, the four left (of
    // five, equal power) reach a quorum only with node 4's votes.
    net.stop(3).await;
    let h = net.height(0).await;
    net.wait_height(0, h + 3).await;
    net.wait_height(4, h + 3).await;
    let mut signed_by_new = false;
    for height in (proof.boundary_height + 1)..=net.height(0).await {
        if let Some(f) = net.rpc[0].finalization(height).await.unwrap() {
            signed_by_new |= f.signers.contains(&4);
        }
    }
    assert!(
        signed_by_new,
        "no finalization of epoch 1 carries validator 4's vote"
    );
    net.start(3);

    // Remove genesis validator 0 (epoch 2), then stop its node: the chain goes on.
    let removed = net.infos[0].consensus_key;
    net.govern(
        2,
        GovAction::RemoveValidator {
            consensus_key: removed,
        },
        4,
    )
    .await;
    let current = net.rpc[1].validators().await.unwrap();
    assert!(current.iter().all(|v| v.address != removed));
    let start = Instant::now();
    while net.rpc[0].status().await.unwrap().validator_name.is_some() {
        assert!(
            start.elapsed() < WAIT,
            "the removed node still names itself a validator"
        );
        sleep(POLL).await;
    }
    net.stop(0).await;

    // The removed validator's key tries to vote in epoch 2, under its old index and under
    // an index past the set: node 1 refuses both as forgeries (they verify against epoch
    // 2's set only) and the chain goes on.
    let peer = raw_peer(&net.genesis, &net.addrs[1]).await;
    let rejected = common::metric(net.rpc_port(1), "cairn_gossip_rejected_total").await;
    let view = common::metric(net.rpc_port(1), "cairn_view").await;
    let namespace = epoch_namespace(&net.genesis.hash().0, 2);
    for signer in [0u16, 4] {
        let kind = VoteKind::Notarize(Proposal {
            view: view + 1,
            parent_view: view,
            parent: Digest([1; 32]),
            payload: Digest([2; 32]),
        });
        let vote = Vote::sign(&namespace, kind, signer, &net.keys[0]);
        let message = EpochMessage {
            epoch: 2,
            message: Message::Vote(vote),
        };
        peer.publish(Topic::Consensus, message.encode())
            .await
            .unwrap();
    }
    let start = Instant::now();
    while common::metric(net.rpc_port(1), "cairn_gossip_rejected_total").await < rejected + 2 {
        assert!(
            start.elapsed() < WAIT,
            "the removed validator's votes were not refused"
        );
        sleep(POLL).await;
    }
    let h = net.height(1).await;
    net.wait_height(1, h + 3).await;

    // A fresh node syncs from genesis across both epoch changes (it checks each epoch's
    // proof against the set it derived itself) and agrees with the others.
    net.start(5);
    let target = net.height(1).await;
    net.wait_height(5, target).await;
    assert_eq!(net.rpc[5].validators().await.unwrap(), current);
    assert!(net.rpc[5].epoch_proof(1).await.unwrap().is_some());
    net.assert_agree(&[1, 2, 3, 4, 5]).await;

    for i in 1..6 {
        net.stop(i).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissioned_transfers_follow_grants_and_revokes_on_running_nodes() {
    let mut net = Net::generate_with(GENESIS_VALIDATORS, AccountsPolicy::Permissioned);
    for i in 0..GENESIS_VALIDATORS {
        net.start(i);
    }
    net.wait_height(0, 2).await;
    let to = Address([9; 32]);
    let transfer = Action::Transfer {
        recipient: to,
        amount: 10,
    };
    // Member 2's account holds no `transact`: refused with `not_permitted`, nothing changes.
    let before = net.account(2).await;
    assert!(!before.permissions.contains(Permission::Transact));
    let err = net.send(2, transfer.clone()).await.unwrap_err();
    assert_eq!(err.rejection_reason(), Some("not_permitted"), "{err}");
    let h = net.height(0).await;
    net.wait_height(0, h + 2).await;
    assert_eq!(net.account(2).await, before);

    // Granted: accepted and final.
    let account = Address(net.members[2].verifying_key().to_bytes());
    let grant = GovAction::Grant {
        account,
        permission: Permission::Transact,
    };
    net.govern_account(1, grant, 2, |a| {
        a.permissions.contains(Permission::Transact)
    })
    .await;
    let hash = net.send(2, transfer.clone()).await.unwrap();
    let status = net.rpc[0]
        .wait_for_finality(&hash, 30_000, 100)
        .await
        .unwrap();
    assert!(
        matches!(status, cairn_rpc::TxStatus::Finalized { .. }),
        "{status:?}"
    );
    assert_eq!(net.rpc[0].balance(&to).await.unwrap(), 10);

    // Revoked: refused again, nothing changes.
    let revoke = GovAction::Revoke {
        account,
        permission: Permission::Transact,
    };
    net.govern_account(2, revoke, 2, |a| {
        !a.permissions.contains(Permission::Transact)
    })
    .await;
    let before = net.account(2).await;
    let err = net.send(2, transfer).await.unwrap_err();
    assert_eq!(err.rejection_reason(), Some("not_permitted"), "{err}");
    let h = net.height(0).await;
    net.wait_height(0, h + 2).await;
    assert_eq!(net.account(2).await, before);
    assert_eq!(net.rpc[0].balance(&to).await.unwrap(), 10);
    for i in 0..GENESIS_VALIDATORS {
        net.stop(i).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn governed_parameters_apply_on_running_nodes_and_after_a_restart() {
    let mut net = Net::generate(GENESIS_VALIDATORS);
    for i in 0..GENESIS_VALIDATORS {
        net.start(i);
    }
    net.wait_height(0, 2).await;
    // Blocks of at most 2 transactions, a pool of at most 3, a 900 ms block interval (the
    // pool fills between blocks) and a shorter nullify retry (the timeouts path).
    let update = cairn_ledger::governance::ParamsUpdate {
        block_txs_max: Some(2),
        mempool_txs_max: Some(3),
        block_interval_ms: Some(900),
        nullify_retry_ms: Some(400),
        ..Default::default()
    };
    net.submit(0, Action::Propose(GovAction::SetParams(update)))
        .await;
    net.submit(1, Action::Approve { proposal_id: 1 }).await;
    let start = Instant::now();
    let changed_at = loop {
        let g = net.rpc[0]
            .governance()
            .await
            .unwrap()
            .expect("a governed chain");
        if g.params.block_txs_max == 2 {
            assert_eq!(g.params.mempool_txs_max, 3);
            break net.height(0).await;
        }
        assert!(start.elapsed() < WAIT, "set_params never executed");
        sleep(POLL).await;
    };

    // Eight transfers back to back at node 0: its pool holds at most 3, of which RPC
    // submissions may fill 2 (`LOCAL_SHARE_PERCENT`; the rest is kept for gossip), and a
    // block (one per 900 ms at most) takes at most 2, so some are refused as full.
    let to = Address([9; 32]);
    let mut accepted = Vec::new();
    let mut full = 0;
    for _ in 0..8 {
        let transfer = Action::Transfer {
            recipient: to,
            amount: 1,
        };
        match net.send(2, transfer).await {
            Ok(h) => accepted.push(h),
            // A full pool answers -32005 (overloaded: retry later).
            Err(ClientError::Rpc { code, .. }) if code == cairn_rpc::codes::OVERLOADED => full += 1,
            Err(e) => panic!("unexpected refusal: {e}"),
        }
    }
    assert!(full >= 1, "the lowered pool bound refused nothing");
    let local_max = 3 * cairn_node::mempool::LOCAL_SHARE_PERCENT / 100;
    assert_eq!(local_max, 2);
    assert!(accepted.len() >= local_max, "accepted {accepted:?}");
    for h in &accepted {
        let status = net.rpc[0].wait_for_finality(h, 30_000, 100).await.unwrap();
        assert!(
            matches!(status, cairn_rpc::TxStatus::Finalized { .. }),
            "{status:?}"
        );
    }
    assert_eq!(
        net.rpc[0].balance(&to).await.unwrap(),
        accepted.len() as u64
    );
    // Every block since the change holds at most 2 transactions; together they hold all.
    let head = net.height(0).await;
    let mut txs = 0;
    for height in changed_at + 1..=head {
        let block = net.rpc[0].block_by_height(height).await.unwrap().unwrap();
        assert!(
            block.transactions.len() <= 2,
            "block {height} holds {} transactions",
            block.transactions.len()
        );
        txs += block.transactions.len();
    }
    assert_eq!(txs, accepted.len());

    // A restarted node runs with the stored parameters and keeps finalizing with the rest.
    net.stop(3).await;
    net.start(3);
    let h = net.height(0).await;
    net.wait_height(3, h + 2).await;
    net.assert_agree(&[0, 1, 2, 3]).await;
    for i in 0..GENESIS_VALIDATORS {
        net.stop(i).await;
    }
}
