//! History fabricator: builds a long, valid, certified chain offline, straight into the
//! validators' data directories of a generated testnet ([`crate::generate`]), so that a
//! chain of 100,000 blocks exists in minutes instead of the hours a live testnet needs on a
//! small machine. The validators then start on it and go on finalizing new blocks (the
//! proof that the chain is one they accept), and a node replaying it checks every
//! certificate and, with `sync.reverify_signatures`, every transaction signature.
//!
//! What it writes is exactly what the node's driver writes for a finalized block
//! (`node/src/driver/commit.rs`): each block is built and executed by the node's own
//! [`Chain::build`] (the ledger's execution code), then committed by [`Chain::finalize`]
//! ([`cairn_ledger::Store::commit_sealed`], one synced write) together with its
//! finalization certificate: the borsh encoding of a [`Certificate`] over
//! `Finalization(Proposal { view, parent_view, parent, payload })`, signed by a quorum of the
//! validators' consensus keys (read from their homes) under the chain's namespace (the
//! genesis hash; epoch 0). Block at height `h` is proposed in view `h` by its leader
//! (`view mod n`), so views and leaders are those of a chain that never skipped a view.
//! Nothing else is needed to restart on it: the driver anchors consensus at the head's view
//! and hash (`Driver::new`), and the consensus WAL stays empty (nothing was voted beyond the
//! head). Timestamps spread evenly from the genesis time to the moment fabrication started,
//! so new blocks are never earlier than their parents nor in the future.
//!
//! Each block carries `transfers_per_block` signed transfers from the testnet's funded demo
//! accounts (round robin, consecutive nonces) to fresh accounts (address
//! `blake3("cairn fabricated account" ‖ index)`, index `height × transfers_per_block + j`),
//! so `blocks × transfers_per_block` accounts are funded. Transactions are signed on a
//! separate thread, at most [`SIGNED_BLOCKS_AHEAD`] blocks ahead (a bounded channel);
//! nothing else of the chain is kept in memory (the store's account cache is bounded).
//!
//! Only governance-free chains are fabricated (epoch 0: no transaction here changes the
//! validator set). Fabrication continues from the store's head, so an interrupted run can be
//! resumed with the same options. Validator 0's store is written, then copied to every
//! other validator and to the full nodes named in [`FabricateOptions::copy_to`] as a RocksDB
//! checkpoint ([`cairn_ledger::Store::checkpoint`]), replacing their data directories (which
//! must not be in use). Other full nodes are left at genesis.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use cairn_consensus::{
    Certificate, CertificateKind, Digest, Proposal, ValidatorSet, Vote, VoteKind,
};
use cairn_genesis::Genesis;
use cairn_ledger::{
    Address, BlockLimits, Hash, SignedTransaction, StateReader, Store, TransactionBody,
};
use cairn_node::chain::Chain;
use cairn_node::config::NodeConfig;
use cairn_node::keys;
use ed25519_dalek::SigningKey;

use crate::Manifest;
use crate::progress::Progress;

/// Blocks of signed transactions the signing thread may be ahead of execution.
pub const SIGNED_BLOCKS_AHEAD: usize = 64;
/// Most blocks one fabrication writes.
pub const BLOCKS_MAX: u64 = 10_000_000;
/// Amount of each fabricated transfer, base units.
pub const TRANSFER_AMOUNT: u64 = 1_000;
/// Fee of each fabricated transfer, base units (paid to the block's proposer).
pub const TRANSFER_FEE: u64 = 1;

/// What to fabricate.
#[derive(Clone, Debug)]
pub struct FabricateOptions {
    /// The testnet directory (`cairn-testnet generate --out`).
    pub dir: PathBuf,
    /// Height to build up to (blocks already in validator 0's store count), 1..=[`BLOCKS_MAX`].
    pub blocks: u64,
    /// Transfers in each block (1..= the genesis `block_txs_max`).
    pub transfers_per_block: u32,
    /// Full nodes (indices into the manifest's nodes) that get a copy of the store too;
    /// the others stay at genesis.
    pub copy_to: Vec<usize>,
    /// Report progress on stderr ([`Progress`]).
    pub progress: bool,
}

impl FabricateOptions {
    /// Checks the bounds that need no files.
    ///
    /// # Errors
    /// `blocks` outside 1..=[`BLOCKS_MAX`], `transfers_per_block` zero.
    pub fn validate(&self) -> Result<()> {
        if self.blocks == 0 || self.blocks > BLOCKS_MAX {
            bail!("blocks must be 1..={BLOCKS_MAX}, got {}", self.blocks);
        }
        if self.transfers_per_block == 0 {
            bail!("transfers per block must be at least 1");
        }
        Ok(())
    }
}

/// What [`fabricate`] did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FabricateReport {
    /// Height of the chain's head after fabrication.
    pub head_height: u64,
    /// Hash of the head.
    pub head_hash: Hash,
    /// State root of the head.
    pub state_root: Hash,
    /// Blocks written by this run.
    pub blocks_written: u64,
    /// Transfers written by this run.
    pub transfers_written: u64,
    /// Seconds spent building and committing blocks.
    pub build_secs: f64,
    /// Seconds spent copying the store to the other validators.
    pub copy_secs: f64,
    /// Size of validator 0's database directory afterwards, bytes.
    pub db_bytes: u64,
}

/// The address of fabricated account `index`.
pub fn fabricated_account(index: u64) -> Address {
    let mut h = blake3::Hasher::new_derive_key("cairn fabricated account");
    h.update(&index.to_le_bytes());
    Address(*h.finalize().as_bytes())
}

/// Builds the chain described by `opts` (module docs). Validators' nodes must be stopped.
///
/// # Errors
/// Bad options, a testnet without demo accounts or with a governance-changed validator set,
/// unreadable keys, a transfer the ledger refuses (e.g. a demo account out of funds), storage
/// failures.
pub fn fabricate(opts: &FabricateOptions) -> Result<FabricateReport> {
    opts.validate()?;
    let manifest = Manifest::load(&opts.dir)?;
    let genesis = Genesis::load(&opts.dir.join("genesis.json"))
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("reading genesis.json")?;
    let genesis_hash = genesis.hash();
    if genesis_hash != manifest.genesis_hash {
        bail!("genesis.json does not match testnet.json's genesis hash");
    }
    if u64::from(opts.transfers_per_block) > genesis.params.block_txs_max {
        bail!(
            "{} transfers per block exceed the genesis block_txs_max {}",
            opts.transfers_per_block,
            genesis.params.block_txs_max
        );
    }
    if manifest.accounts.is_empty() {
        bail!("the testnet has no funded demo accounts to send from");
    }
    let set: ValidatorSet = genesis.validator_set();
    // Every validator's consensus key, by its index in the set.
    let mut signers: Vec<(u16, SigningKey)> = Vec::new();
    let validators: Vec<_> = manifest.validators().cloned().collect();
    for v in &validators {
        let config = NodeConfig::load(&v.home.join("config.toml"))
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("{}'s config", v.name))?;
        let password = config
            .validator_key_password_file
            .as_ref()
            .map(|p| NodeConfig::resolve(&v.home, p));
        let key = keys::read_validator_key_with(
            &NodeConfig::resolve(&v.home, &config.validator_key_file),
            password.as_deref(),
        )
        .with_context(|| format!("{}'s validator key", v.name))?;
        let Some(index) = set.iter().position(|x| x.public_key == key.verifying_key()) else {
            bail!("{}'s key is not in the genesis validator set", v.name);
        };
        signers.push((index as u16, key));
    }
    signers.sort_by_key(|(i, _)| *i);
    // A quorum: validators in index order until their power reaches it.
    let mut quorum = Vec::new();
    let mut power = 0u64;
    for (i, key) in &signers {
        if power >= set.quorum_power() {
            break;
        }
        power += set.get(*i).map_or(0, |v| v.voting_power);
        quorum.push((*i, key.clone()));
    }
    if power < set.quorum_power() {
        bail!(
            "the testnet's homes hold validator keys of power {power}, below the quorum {}",
            set.quorum_power()
        );
    }
    let leaders: Vec<Address> = set
        .iter()
        .map(|v| Address(v.public_key.to_bytes()))
        .collect();

    let first = &validators[0];
    let first_config =
        NodeConfig::load(&first.home.join("config.toml")).map_err(|e| anyhow::anyhow!("{e}"))?;
    let db_path = NodeConfig::resolve(&first.home, &first_config.db_dir);
    let store = Arc::new(
        Store::open(&db_path, genesis_hash)
            .with_context(|| format!("opening {} (is the node running?)", db_path.display()))?,
    );
    genesis.init_store(&store)?;
    let limits = BlockLimits {
        block_txs_max: genesis.params.block_txs_max as usize,
        block_bytes_max: genesis.params.block_bytes_max as usize,
    };
    let mut chain = Chain::open(store.clone(), genesis.chain_id.clone(), limits)?;
    if store
        .epoch_at_height(chain.head().height + 1)?
        .is_some_and(|r| r.epoch != 0)
    {
        bail!("the store's validator set was changed by governance: only epoch 0 is fabricated");
    }
    let start_height = chain.head().height;
    let namespace = genesis_hash.0;

    // Sender keys and their next nonces (read from the state, so a resumed run continues).
    let mut senders = Vec::new();
    for a in &manifest.accounts {
        let key = keys::read_validator_key(&a.key_file)
            .with_context(|| format!("reading {}", a.key_file.display()))?;
        let nonce = store.account(&a.address)?.nonce;
        senders.push((key, a.address, nonce));
    }

    let started = Instant::now();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as u64;
    let first_ts = chain.head().timestamp_ms.max(genesis.genesis_time_ms);
    let span_ms = now_ms.saturating_sub(first_ts);
    let to_build = opts.blocks.saturating_sub(start_height);
    let progress = Progress::new(opts.progress, "fabricating blocks", Some(to_build));

    // The signing thread: one Vec of signed transfers per block, in height order.
    let (tx, rx) = mpsc::sync_channel::<Vec<SignedTransaction>>(SIGNED_BLOCKS_AHEAD);
    let k = u64::from(opts.transfers_per_block);
    let chain_id = genesis.chain_id.clone();
    let (first_height, last_height) = (start_height + 1, opts.blocks);
    let signer_thread = std::thread::spawn(move || {
        let mut next = 0usize;
        let n = senders.len();
        for height in first_height..=last_height {
            let mut txs = Vec::with_capacity(k as usize);
            for j in 0..k {
                let (key, sender, nonce) = &mut senders[next];
                next = (next + 1) % n;
                let body = TransactionBody::transfer(
                    chain_id.clone(),
                    *sender,
                    fabricated_account(height * k + j),
                    TRANSFER_AMOUNT,
                    TRANSFER_FEE,
                    *nonce,
                    u64::MAX,
                );
                *nonce += 1;
                txs.push(body.sign(key));
            }
            if tx.send(txs).is_err() {
                return;
            }
        }
    });

    let mut written = 0u64;
    for txs in rx.iter() {
        let parent = chain.head().clone();
        let parent_hash = chain.head_hash();
        let height = parent.height + 1;
        let view = height;
        let proposer = leaders[set.leader(view) as usize];
        let timestamp_ms = first_ts
            + (span_ms as u128 * u128::from(height - start_height) / u128::from(to_build.max(1)))
                as u64;
        let mut refused = None;
        let block = chain
            .build(&parent_hash, view, proposer, timestamp_ms, |b| {
                let mut applied = Vec::with_capacity(txs.len());
                for t in txs {
                    match b.apply(&t) {
                        Ok(()) => applied.push(t),
                        Err(e) => {
                            refused = Some(e);
                            break;
                        }
                    }
                }
                applied
            })
            .map_err(|e| anyhow::anyhow!("building block {height}: {e}"))?;
        if let Some(e) = refused {
            bail!("block {height}: the ledger refused a fabricated transfer: {e}");
        }
        let hash = block.hash();
        let kind = CertificateKind::Finalization(Proposal {
            view,
            parent_view: parent.view,
            parent: Digest(parent_hash.0),
            payload: Digest(hash.0),
        });
        let vote_kind: VoteKind = kind.vote_kind();
        let signatures = quorum
            .iter()
            .map(|(i, key)| {
                (
                    *i,
                    Vote::sign(&namespace, vote_kind.clone(), *i, key).signature,
                )
            })
            .collect();
        let certificate = Certificate { kind, signatures };
        debug_assert!(certificate.verify(&namespace, &set).is_ok());
        let bytes = borsh::to_vec(&certificate).expect("borsh to Vec never fails");
        let committed = chain
            .finalize(&hash, Some(&bytes))
            .map_err(|e| anyhow::anyhow!("committing block {height}: {e}"))?;
        if committed.len() != 1 {
            bail!(
                "block {height}: committed {} blocks, expected 1",
                committed.len()
            );
        }
        written += 1;
        progress.inc(1);
    }
    signer_thread
        .join()
        .map_err(|_| anyhow::anyhow!("the signing thread panicked"))?;
    let build_secs = started.elapsed().as_secs_f64();
    let head = chain.head().clone();
    let head_hash = chain.head_hash();
    progress.finish(format!(
        "height {}, {written} blocks in {build_secs:.1} s",
        head.height
    ));
    if head.height != opts.blocks.max(start_height) {
        bail!(
            "fabrication stopped at height {}, expected {}",
            head.height,
            opts.blocks
        );
    }

    // Copy to the other validators and the full nodes named (their stores must not be open).
    let copy_started = Instant::now();
    let mut targets: Vec<&crate::NodeEntry> = validators[1..].iter().collect();
    for &i in &opts.copy_to {
        match manifest.nodes.get(i) {
            Some(n) if n.full_node => targets.push(n),
            _ => bail!("node {i} is not a full node of the testnet"),
        }
    }
    for v in targets {
        let config =
            NodeConfig::load(&v.home.join("config.toml")).map_err(|e| anyhow::anyhow!("{e}"))?;
        let path = std::path::absolute(NodeConfig::resolve(&v.home, &config.db_dir))?;
        if path.exists() {
            // Opening it takes RocksDB's lock: it fails if the node is running.
            drop(
                Store::open(&path, genesis_hash).with_context(|| {
                    format!("opening {} (is the node running?)", path.display())
                })?,
            );
            std::fs::remove_dir_all(&path)
                .with_context(|| format!("removing {}", path.display()))?;
        }
        store
            .checkpoint(&path)
            .with_context(|| format!("copying the store to {}", path.display()))?;
    }
    let copy_secs = copy_started.elapsed().as_secs_f64();
    drop(chain);
    drop(store);
    let db_bytes = cairn_ledger::backup::dir_bytes(&db_path)?;
    Ok(FabricateReport {
        head_height: head.height,
        head_hash,
        state_root: head.state_root,
        blocks_written: written,
        transfers_written: written * k,
        build_secs,
        copy_secs,
        db_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{GenerateOptions, generate};

    fn options(dir: &std::path::Path, blocks: u64) -> FabricateOptions {
        FabricateOptions {
            dir: dir.to_path_buf(),
            blocks,
            transfers_per_block: 3,
            copy_to: vec![4],
            progress: false,
        }
    }

    /// Every validator's copy and the full node named get the same chain, every block with a
    /// finalization certificate that verifies and names it, the state recomputed from the
    /// stored accounts matches the head's root, each fabricated account holds its transfer,
    /// and a second run continues the chain.
    #[test]
    fn fabricates_a_certified_chain_and_continues_it() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("net");
        let manifest = generate(&GenerateOptions {
            out: out.clone(),
            accounts: 2,
            full_nodes: 2,
            ..GenerateOptions::default()
        })
        .unwrap();
        let r = fabricate(&options(&out, 30)).unwrap();
        assert_eq!(
            (r.head_height, r.blocks_written, r.transfers_written),
            (30, 30, 90)
        );
        let r = fabricate(&options(&out, 40)).unwrap();
        assert_eq!((r.head_height, r.blocks_written), (40, 10));
        // A full node not named stays without a store.
        assert!(!manifest.nodes[5].home.join("data").exists());
        let genesis = Genesis::load(&out.join("genesis.json")).unwrap();
        let set = genesis.validator_set();
        for i in [1, 3, 4] {
            let store = Store::open(&manifest.nodes[i].home.join("data"), genesis.hash()).unwrap();
            let head = store.head().unwrap().unwrap();
            assert_eq!((head.height, head.hash()), (40, r.head_hash));
            assert_eq!(store.recompute_lthash().unwrap().root(), head.state_root);
            for h in 1..=40 {
                let block = store.block_by_height(h).unwrap().unwrap();
                let bytes = store.certificate(h).unwrap().unwrap();
                let cert: Certificate = borsh::from_slice(&bytes).unwrap();
                cert.verify(&genesis.hash().0, &set).unwrap();
                let CertificateKind::Finalization(p) = cert.kind else {
                    panic!("block {h}: not a finalization");
                };
                assert_eq!((p.view, p.payload), (h, Digest(block.hash().0)));
                assert_eq!(
                    block.header.proposer,
                    Address(set.get(set.leader(h)).unwrap().public_key.to_bytes())
                );
                assert_eq!(block.transactions.len(), 3);
                for j in 0..3 {
                    let a = store.account(&fabricated_account(h * 3 + j)).unwrap();
                    assert_eq!(a.balance, TRANSFER_AMOUNT);
                }
            }
        }
    }

    #[test]
    fn refuses_bad_options() {
        let tmp = tempfile::tempdir().unwrap();
        let mut o = options(tmp.path(), 0);
        assert!(o.validate().is_err());
        o.blocks = 1;
        o.transfers_per_block = 0;
        assert!(o.validate().is_err());
        // No testnet there.
        o.transfers_per_block = 1;
        assert!(fabricate(&o).is_err());
    }
}
