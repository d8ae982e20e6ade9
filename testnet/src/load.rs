//! A bounded load of wallet-signed transfers (used by `cairn-testnet load` and `chaos`).
//!
//! Every demo account of the manifest is a sender; each signs transfers with the wallet
//! library's [`cairn_wallet::build_transfer`] in nonce order (starting at its on-chain nonce)
//! to the other demo accounts and a few fresh addresses, and submits them with
//! `sendTransaction`, round-robin over the nodes, at a global rate. Bounds: `transfers` in
//! count, `duration_max` for the submission phase, `drain_timeout` for waiting on finality,
//! at most `window` unfinalized transfers per sender, and every RPC call bounded by
//! `rpc_timeout`.
//!
//! Each transfer a node acknowledges (a successful `sendTransaction`) is appended at once to
//! [`ACKED_FILE`] in the testnet directory (one JSON object per line, [`AckRecord`]); the
//! invariant checker ([`crate::check`]) requires each to be finalized exactly once.
//!
//! Like a wallet, the load copes with a node that goes away: a submission that gets no answer
//! is retried (same signed bytes) on the next node, and a node that failed is avoided for a
//! few seconds. The mempool is not durable (a node killed right after acknowledging a transfer
//! may not have gossiped it yet), so an acknowledged transfer that is not final after
//! `resubmit_after` is re-sent, same bytes, to another node; the report counts these
//! re-submissions. Finality is followed block by block over `getBlock`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cairn_ledger::{Address, Hash, SignedTransaction};
use cairn_rpc::{ClientError, RpcClient, TxStatus};
use cairn_wallet::{KeyFile, build_transfer};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::Manifest;

/// Acknowledged transfers, in the testnet directory.
pub const ACKED_FILE: &str = "acked.jsonl";
/// Most transfers one load run submits.
pub const TRANSFERS_MAX: usize = 10_000_000;
/// Most times one transfer is re-submitted.
pub const RESUBMITS_PER_TX_MAX: u32 = 50;
/// Most re-submissions per second, over all transfers.
pub const RESUBMITS_PER_ROUND_MAX: usize = 200;
/// How long a node that failed to answer is avoided.
pub const SUSPECT_FOR: Duration = Duration::from_secs(5);
/// Blocks fetched per follower round.
const FOLLOW_BLOCKS_PER_ROUND: u64 = 256;
/// Rejections of one transfer before its sender is abandoned.
const REJECTIONS_PER_TX_MAX: u32 = 30;

/// One acknowledged transfer (a line of [`ACKED_FILE`]).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AckRecord {
    /// Transaction hash.
    pub hash: Hash,
    /// Sender.
    pub sender: Address,
    /// Sender nonce.
    pub nonce: u64,
    /// The node that acknowledged it.
    pub node: String,
    /// When, ms since the Unix epoch.
    pub unix_ms: u64,
}

/// Reads `DIR/acked.jsonl` (empty if absent). A torn last line (a crash mid-write) is skipped.
pub fn read_acked(dir: &Path) -> Result<Vec<AckRecord>> {
    let p = dir.join(ACKED_FILE);
    let text = match std::fs::read_to_string(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", p.display())),
    };
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut out = Vec::with_capacity(lines.len());
    for (i, l) in lines.iter().enumerate() {
        match serde_json::from_str(l) {
            Ok(r) => out.push(r),
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => {}
            Err(e) => bail!("{} line {}: {e}", p.display(), i + 1),
        }
    }
    Ok(out)
}

/// What to submit.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    /// Transfers to submit (1..=[`TRANSFERS_MAX`]).
    pub transfers: usize,
    /// Submissions per second, over all senders.
    pub rate: f64,
    /// Bound on the submission phase.
    pub duration_max: Duration,
    /// Bound on waiting for the acknowledged transfers to be final afterwards.
    pub drain_timeout: Duration,
    /// Re-send an acknowledged transfer not final after this long; zero: never.
    pub resubmit_after: Duration,
    /// Most unfinalized transfers per sender (keep it at most the genesis
    /// `mempool_sender_future_max`).
    pub window: u64,
    /// Seed for recipients and amounts.
    pub seed: u64,
    /// Append acknowledged transfers to this file (normally `DIR/acked.jsonl`).
    pub record: Option<PathBuf>,
    /// Bound on each RPC call.
    pub rpc_timeout: Duration,
    /// Print progress every this long (zero: quiet).
    pub progress_every: Duration,
}

impl Default for LoadConfig {
    fn default() -> Self {
        LoadConfig {
            transfers: 1000,
            rate: 20.0,
            duration_max: Duration::from_secs(600),
            drain_timeout: Duration::from_secs(120),
            resubmit_after: Duration::from_secs(5),
            window: 32,
            seed: 1,
            record: None,
            rpc_timeout: Duration::from_secs(3),
            progress_every: Duration::from_secs(10),
        }
    }
}

/// What happened.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadReport {
    /// Transfers planned.
    pub planned: usize,
    /// Transfers signed and sent at least once.
    pub signed: u64,
    /// Acknowledged by `sendTransaction` (and recorded).
    pub acked: u64,
    /// Acknowledgements per node.
    pub acked_by_node: BTreeMap<String, u64>,
    /// Sent transfers seen final (acknowledged or not).
    pub finalized: u64,
    /// Acknowledged transfers seen final.
    pub acked_finalized: u64,
    /// Re-submissions of unfinalized transfers.
    pub resubmissions: u64,
    /// Transfers that were final only after at least one re-submission.
    pub finalized_after_resubmission: u64,
    /// Submissions that got no answer (node down, paused, cut off), retried elsewhere.
    pub unanswered: u64,
    /// Refusals by code (`duplicate` after a lost answer, `too_far_ahead` from a lagging node, …).
    pub rejections: BTreeMap<String, u64>,
    /// Acknowledged transfers not seen final by the end of the drain (at most 100 listed).
    pub acked_unfinalized: Vec<Hash>,
    /// Count of acknowledged transfers not seen final.
    pub acked_unfinalized_count: u64,
    /// Senders given up on, with the reason.
    pub abandoned_senders: Vec<String>,
    /// Height when the load started and when it ended (as followed).
    pub start_height: u64,
    /// Last height followed.
    pub end_height: u64,
    /// Submission phase, ms.
    pub submit_ms: u64,
    /// Whole run including the drain, ms.
    pub elapsed_ms: u64,
    /// Stopped early (Ctrl-C).
    pub interrupted: bool,
}

impl LoadReport {
    /// A few lines for humans.
    pub fn summary(&self) -> String {
        let secs = self.submit_ms as f64 / 1000.0;
        format!(
            "load: {} planned, {} signed, {} acknowledged in {:.1}s ({:.1}/s), {} acknowledged final, {} not final; \
             {} re-submissions ({} final only after one), {} unanswered submissions, rejections {:?}; heights {}..{}{}",
            self.planned,
            self.signed,
            self.acked,
            secs,
            if secs > 0.0 {
                self.acked as f64 / secs
            } else {
                0.0
            },
            self.acked_finalized,
            self.acked_unfinalized_count,
            self.resubmissions,
            self.finalized_after_resubmission,
            self.unanswered,
            self.rejections,
            self.start_height,
            self.end_height,
            if self.abandoned_senders.is_empty() {
                String::new()
            } else {
                format!("; abandoned senders: {:?}", self.abandoned_senders)
            },
        )
    }
}

struct Pending {
    tx: SignedTransaction,
    sender: usize,
    /// Sent and either acknowledged or known to be pooled somewhere.
    tracked: bool,
    acked: bool,
    last_sent: Instant,
    last_node: usize,
    resubmits: u32,
}

struct Shared {
    clients: Vec<RpcClient>,
    names: Vec<String>,
    validators: Vec<usize>,
    suspect_until: Mutex<Vec<Option<Instant>>>,
    rr: AtomicUsize,
    pending: Mutex<HashMap<Hash, Pending>>,
    finalized: Mutex<HashSet<Hash>>,
    /// Per sender: one past the highest nonce of ours seen final.
    final_nonce: Mutex<Vec<u64>>,
    report: Mutex<LoadReport>,
    record: Mutex<Option<std::fs::File>>,
    submitting_done: AtomicBool,
    stop: watch::Receiver<bool>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Shared {
    fn stopped(&self) -> bool {
        *self.stop.borrow()
    }

    /// Next node round-robin, avoiding recently failed ones (unless all are).
    fn pick(&self, among: &[usize], avoid: Option<usize>) -> usize {
        let sus = self.suspect_until.lock().expect("lock");
        let now = Instant::now();
        let start = self.rr.fetch_add(1, Ordering::Relaxed);
        for k in 0..among.len() {
            let i = among[(start + k) % among.len()];
            if Some(i) != avoid && sus[i].is_none_or(|t| t <= now) {
                return i;
            }
        }
        among[start % among.len()]
    }

    fn suspect(&self, i: usize) {
        self.suspect_until.lock().expect("lock")[i] = Some(Instant::now() + SUSPECT_FOR);
    }

    fn reject(&self, code: &str) {
        *self
            .report
            .lock()
            .expect("lock")
            .rejections
            .entry(code.to_string())
            .or_default() += 1;
    }

    fn record_ack(&self, hash: Hash, tx: &SignedTransaction, node: usize) {
        let rec = AckRecord {
            hash,
            sender: tx.body.sender,
            nonce: tx.body.nonce,
            node: self.names[node].clone(),
            unix_ms: now_ms(),
        };
        if let Some(f) = self.record.lock().expect("lock").as_mut() {
            let line = serde_json::to_string(&rec).expect("serializes") + "\n";
            if let Err(e) = f.write_all(line.as_bytes()).and_then(|_| f.flush()) {
                eprintln!("warning: cannot record acknowledged transfer {hash}: {e}");
            }
        }
        let mut r = self.report.lock().expect("lock");
        r.acked += 1;
        *r.acked_by_node.entry(self.names[node].clone()).or_default() += 1;
    }

    /// Is `hash` pooled or final on node `i`?
    async fn known_to(&self, i: usize, hash: &Hash) -> bool {
        matches!(
            self.clients[i].transaction(hash).await,
            Ok(TxStatus::Pending | TxStatus::Finalized { .. })
        )
    }
}

/// Runs the load against the nodes of `m` until done, `stop` turns true, or the bounds.
pub async fn run(
    m: &Manifest,
    cfg: &LoadConfig,
    stop: watch::Receiver<bool>,
) -> Result<LoadReport> {
    if cfg.transfers == 0 || cfg.transfers > TRANSFERS_MAX {
        bail!(
            "transfers must be 1..={TRANSFERS_MAX}, got {}",
            cfg.transfers
        );
    }
    if !(cfg.rate > 0.0 && cfg.rate <= 100_000.0) {
        bail!("rate must be in (0, 100000], got {}", cfg.rate);
    }
    if cfg.window == 0 {
        bail!("window must be at least 1");
    }
    if m.accounts.is_empty() {
        bail!("the testnet has no demo accounts to send from");
    }
    let started = Instant::now();
    let clients: Vec<RpcClient> = m
        .nodes
        .iter()
        .map(|n| RpcClient::with_timeout(&n.rpc_url, cfg.rpc_timeout))
        .collect::<Result<_, _>>()?;
    let keys: Vec<KeyFile> = m
        .accounts
        .iter()
        .map(|a| {
            KeyFile::load(&a.key_file).with_context(|| format!("loading {}", a.key_file.display()))
        })
        .collect::<Result<_>>()?;

    // Starting point from any node that answers.
    let mut start = None;
    for c in &clients {
        if let Ok(s) = c.status().await {
            start = Some((s.latest_height, c));
            break;
        }
    }
    let Some((start_height, c0)) = start else {
        bail!("no node answers getStatus")
    };
    let mut nonces = Vec::new();
    for k in &keys {
        nonces.push(
            c0.account(&k.address())
                .await
                .with_context(|| format!("getAccount {}", k.address()))?
                .nonce,
        );
    }
    let record = match &cfg.record {
        Some(p) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .with_context(|| format!("opening {}", p.display()))?,
        ),
        None => None,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut recipients: Vec<Address> = keys.iter().map(KeyFile::address).collect();
    for _ in 0..8 {
        recipients.push(Address(rng.r#gen()));
    }
    let sh = Arc::new(Shared {
        names: m.nodes.iter().map(|n| n.name.clone()).collect(),
        validators: m
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| !n.full_node)
            .map(|(i, _)| i)
            .collect(),
        suspect_until: Mutex::new(vec![None; clients.len()]),
        clients,
        rr: AtomicUsize::new(0),
        pending: Mutex::new(HashMap::new()),
        finalized: Mutex::new(HashSet::new()),
        final_nonce: Mutex::new(nonces.clone()),
        report: Mutex::new(LoadReport {
            planned: cfg.transfers,
            start_height,
            end_height: start_height,
            ..LoadReport::default()
        }),
        record: Mutex::new(record),
        submitting_done: AtomicBool::new(false),
        stop,
    });
    let deadline = started + cfg.duration_max;
    let tickets = Arc::new(AtomicUsize::new(0));
    let expiry = start_height + 1_000_000;

    let follower = tokio::spawn(follow(sh.clone(), start_height, cfg.drain_timeout));
    let resubmitter = (!cfg.resubmit_after.is_zero())
        .then(|| tokio::spawn(resubmit(sh.clone(), cfg.resubmit_after)));
    let progress = (!cfg.progress_every.is_zero())
        .then(|| tokio::spawn(progress(sh.clone(), cfg.progress_every)));

    let mut workers = tokio::task::JoinSet::new();
    for (s, key) in keys.into_iter().enumerate() {
        let w = Worker {
            sh: sh.clone(),
            s,
            key,
            nonce: nonces[s],
            chain_id: m.chain_id.clone(),
            recipients: recipients.clone(),
            rng: ChaCha8Rng::seed_from_u64(
                cfg.seed ^ (s as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            ),
            tickets: tickets.clone(),
            started,
            deadline,
            cfg: cfg.clone(),
            expiry,
        };
        workers.spawn(w.run());
    }
    while let Some(r) = workers.join_next().await {
        r.context("load worker panicked")?;
    }
    sh.submitting_done.store(true, Ordering::SeqCst);
    sh.report.lock().expect("lock").submit_ms = started.elapsed().as_millis() as u64;
    follower.await.context("follower panicked")?;
    if let Some(r) = resubmitter {
        r.abort();
    }
    if let Some(p) = progress {
        p.abort();
    }
    let mut report = sh.report.lock().expect("lock").clone();
    let pending = sh.pending.lock().expect("lock");
    let mut unfinal: Vec<Hash> = pending
        .iter()
        .filter(|(_, p)| p.acked)
        .map(|(h, _)| *h)
        .collect();
    unfinal.sort();
    report.acked_unfinalized_count = unfinal.len() as u64;
    unfinal.truncate(100);
    report.acked_unfinalized = unfinal;
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    report.interrupted = sh.stopped();
    Ok(report)
}

struct Worker {
    sh: Arc<Shared>,
    s: usize,
    key: KeyFile,
    nonce: u64,
    chain_id: String,
    recipients: Vec<Address>,
    rng: ChaCha8Rng,
    tickets: Arc<AtomicUsize>,
    started: Instant,
    deadline: Instant,
    cfg: LoadConfig,
    expiry: u64,
}

impl Worker {
    fn over(&self) -> bool {
        self.sh.stopped() || Instant::now() >= self.deadline
    }

    fn abandon(&self, why: String) {
        let who = self.key.address().to_string();
        self.sh
            .report
            .lock()
            .expect("lock")
            .abandoned_senders
            .push(format!("{who}: {why}"));
    }

    async fn run(mut self) {
        let all: Vec<usize> = (0..self.sh.clients.len()).collect();
        'outer: loop {
            if self.over() {
                break;
            }
            let t = self.tickets.fetch_add(1, Ordering::Relaxed);
            if t >= self.cfg.transfers {
                break;
            }
            let at = self.started + Duration::from_secs_f64(t as f64 / self.cfg.rate);
            while Instant::now() < at {
                if self.over() {
                    break 'outer;
                }
                tokio::time::sleep(
                    at.saturating_duration_since(Instant::now())
                        .min(Duration::from_millis(200)),
                )
                .await;
            }
            // Flow control: at most `window` of this sender's transfers unfinalized.
            while self
                .nonce
                .saturating_sub(self.sh.final_nonce.lock().expect("lock")[self.s])
                >= self.cfg.window
            {
                if self.over() {
                    break 'outer;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let me = self.key.address();
            let mut to = self.recipients[self.rng.gen_range(0..self.recipients.len())];
            if to == me {
                to = *self.recipients.last().expect("fresh recipients");
            }
            let amount = self.rng.gen_range(1..=1000u64);
            let fee = self.rng.gen_range(1..=3u64);
            let tx = build_transfer(
                &self.key,
                &self.chain_id,
                to,
                amount,
                fee,
                self.nonce,
                self.expiry,
            );
            let hash = tx.hash();
            self.sh.pending.lock().expect("lock").insert(
                hash,
                Pending {
                    tx: tx.clone(),
                    sender: self.s,
                    tracked: false,
                    acked: false,
                    last_sent: Instant::now(),
                    last_node: 0,
                    resubmits: 0,
                },
            );
            self.sh.report.lock().expect("lock").signed += 1;
            let mut rejections = 0u32;
            let mut last = None;
            loop {
                if self.over() {
                    // Never answered: it may still be pooled somewhere; keep following it.
                    break 'outer;
                }
                let i = self.sh.pick(&all, last);
                last = Some(i);
                if let Some(p) = self.sh.pending.lock().expect("lock").get_mut(&hash) {
                    p.last_sent = Instant::now();
                    p.last_node = i;
                }
                match self.sh.clients[i].send_transaction(&tx).await {
                    Ok(_) => {
                        self.sh.record_ack(hash, &tx, i);
                        let mut pend = self.sh.pending.lock().expect("lock");
                        if let Some(p) = pend.get_mut(&hash) {
                            p.tracked = true;
                            p.acked = true;
                        } else if self.sh.finalized.lock().expect("lock").contains(&hash) {
                            self.sh.report.lock().expect("lock").acked_finalized += 1;
                        }
                        break;
                    }
                    Err(e) => {
                        if let Some(code) = e.rejection_reason() {
                            self.sh.reject(code);
                            if matches!(code, "duplicate" | "stale_nonce") {
                                // An earlier attempt whose answer was lost may have landed, or another
                                // transaction holds this nonce.
                                if self.sh.known_to(i, &hash).await {
                                    if let Some(p) =
                                        self.sh.pending.lock().expect("lock").get_mut(&hash)
                                    {
                                        p.tracked = true;
                                    }
                                    break;
                                }
                                self.sh.pending.lock().expect("lock").remove(&hash);
                                self.abandon(format!(
                                    "nonce {} is taken by another transaction ({code})",
                                    self.nonce
                                ));
                                break 'outer;
                            }
                            rejections += 1;
                            if rejections >= REJECTIONS_PER_TX_MAX {
                                self.sh.pending.lock().expect("lock").remove(&hash);
                                self.abandon(format!(
                                    "nonce {} refused {rejections} times, last: {e}",
                                    self.nonce
                                ));
                                break 'outer;
                            }
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        } else {
                            if is_unanswered(&e) {
                                self.sh.report.lock().expect("lock").unanswered += 1;
                            } else {
                                self.sh.reject(&format!(
                                    "rpc_{}",
                                    e.rpc_code()
                                        .map(|c| c.to_string())
                                        .unwrap_or_else(|| "error".into())
                                ));
                            }
                            self.sh.suspect(i);
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            }
            self.nonce += 1;
        }
    }
}

fn is_unanswered(e: &ClientError) -> bool {
    matches!(e, ClientError::Transport { .. } | ClientError::Http { .. }) || e.is_transient()
}

/// Follows finalized blocks from `start_height + 1`, marking our transfers final.
async fn follow(sh: Arc<Shared>, start_height: u64, drain_timeout: Duration) {
    let mut next = start_height + 1;
    let mut drain_deadline: Option<Instant> = None;
    let all: Vec<usize> = (0..sh.clients.len()).collect();
    let mut node = sh.pick(&all, None);
    loop {
        if sh.stopped() {
            break;
        }
        if sh.submitting_done.load(Ordering::SeqCst) {
            let d = *drain_deadline.get_or_insert_with(|| Instant::now() + drain_timeout);
            let waiting = sh.pending.lock().expect("lock").values().any(|p| p.tracked);
            if !waiting || Instant::now() >= d {
                break;
            }
        }
        let c = &sh.clients[node];
        let tip = match c.status().await {
            Ok(s) => s.latest_height,
            Err(_) => {
                sh.suspect(node);
                node = sh.pick(&all, Some(node));
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let mut failed = false;
        let mut fetched = 0;
        while next <= tip && fetched < FOLLOW_BLOCKS_PER_ROUND {
            fetched += 1;
            let b = match c.block_by_height(next).await {
                Ok(Some(b)) => b,
                Ok(None) | Err(_) => {
                    failed = true;
                    break;
                }
            };
            {
                let mut pend = sh.pending.lock().expect("lock");
                let mut fin = sh.finalized.lock().expect("lock");
                let mut fnonce = sh.final_nonce.lock().expect("lock");
                let mut r = sh.report.lock().expect("lock");
                for t in &b.transactions {
                    if let Some(p) = pend.remove(&t.hash) {
                        fin.insert(t.hash);
                        r.finalized += 1;
                        if p.acked {
                            r.acked_finalized += 1;
                        }
                        if p.resubmits > 0 {
                            r.finalized_after_resubmission += 1;
                        }
                        let f = &mut fnonce[p.sender];
                        *f = (*f).max(t.nonce + 1);
                    }
                }
                r.end_height = next;
            }
            next += 1;
        }
        if failed {
            node = sh.pick(&all, Some(node));
        }
        if next > tip {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

/// Re-sends tracked transfers that are not final after `after`, each time to another node
/// (validators preferred: a full node never proposes).
async fn resubmit(sh: Arc<Shared>, after: Duration) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if sh.stopped() {
            return;
        }
        let now = Instant::now();
        let due: Vec<(Hash, SignedTransaction, usize)> = {
            let pend = sh.pending.lock().expect("lock");
            let mut v: Vec<_> = pend
                .iter()
                .filter(|(_, p)| {
                    p.tracked
                        && p.resubmits < RESUBMITS_PER_TX_MAX
                        && now.duration_since(p.last_sent) >= after
                })
                .map(|(h, p)| (*h, p.tx.clone(), p.last_node, p.tx.body.nonce))
                .collect();
            // Lowest nonces first: a later transfer of a sender waits on the earlier ones.
            v.sort_by_key(|x| x.3);
            v.truncate(RESUBMITS_PER_ROUND_MAX);
            v.into_iter().map(|(h, t, n, _)| (h, t, n)).collect()
        };
        for (hash, tx, last) in due {
            if sh.stopped() {
                return;
            }
            let among = if sh.validators.is_empty() {
                (0..sh.clients.len()).collect()
            } else {
                sh.validators.clone()
            };
            let i = sh.pick(&among, Some(last));
            let r = sh.clients[i].send_transaction(&tx).await;
            if let Err(e) = &r
                && is_unanswered(e)
            {
                sh.suspect(i);
            }
            let mut pend = sh.pending.lock().expect("lock");
            if let Some(p) = pend.get_mut(&hash) {
                p.resubmits += 1;
                p.last_sent = Instant::now();
                p.last_node = i;
                sh.report.lock().expect("lock").resubmissions += 1;
            }
        }
    }
}

/// Reports the run every `every`: a spinner line on a terminal, a plain line otherwise.
async fn progress(sh: Arc<Shared>, every: Duration) {
    let start = Instant::now();
    let bar = crate::progress::Progress::new(true, "load", None);
    loop {
        tokio::time::sleep(every).await;
        let pending = sh.pending.lock().expect("lock").len();
        let r = sh.report.lock().expect("lock").clone();
        bar.message(format!(
            "[{:>6.1}s] {} acknowledged, {} final, {} in flight, {} re-submitted, {} unanswered, height {}",
            start.elapsed().as_secs_f64(),
            r.acked,
            r.finalized,
            pending,
            r.resubmissions,
            r.unanswered,
            r.end_height
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acked_file_round_trips_and_tolerates_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_acked(dir.path()).unwrap().is_empty());
        let r = AckRecord {
            hash: Hash([1; 32]),
            sender: Address([2; 32]),
            nonce: 3,
            node: "validator-0".into(),
            unix_ms: 5,
        };
        let line = serde_json::to_string(&r).unwrap();
        std::fs::write(
            dir.path().join(ACKED_FILE),
            format!("{line}\n{line}\n{{\"hash\":\"01"),
        )
        .unwrap();
        assert_eq!(read_acked(dir.path()).unwrap(), vec![r.clone(), r]);
        std::fs::write(dir.path().join(ACKED_FILE), "garbage\n{}\n").unwrap();
        assert!(read_acked(dir.path()).is_err());
    }
}
