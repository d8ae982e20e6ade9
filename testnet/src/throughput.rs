//! The throughput load generator (`cairn-testnet load DIR --rate R --duration D [--json]`).
//!
//! An **open-loop** load: transactions are offered at a target rate whatever the nodes do, so
//! the report shows what the chain finalizes and how latency grows, not how fast a
//! closed-loop client waits. Phases:
//!
//! 1. **Senders.** `senders` fresh accounts derived from the seed (so a run never collides
//!    with an earlier one when seeds differ) are funded from the testnet's demo accounts in
//!    rounds of at most [`FUNDING_ROUND_TXS_MAX`] transfers per demo account (the mempool
//!    keeps at most `mempool_sender_future_max` transactions per sender), each round waited
//!    to finality.
//! 2. **Pre-signing.** All `rate × duration` transfers (at most [`TXS_MAX`]) are signed
//!    before the clock starts, on all cores, so signing does not compete with the nodes
//!    during the measurement. Transfer `k` is sent by sender `k mod senders` with that
//!    sender's next nonce, so each sender's nonces are offered in order and at most
//!    `rate × latency / senders` of them are in flight at once.
//! 3. **Offering.** Every [`TICK`], the transfers due by then are cut into
//!    `sendTransactions` batches of at most `batch_txs_max`, spread round-robin over every
//!    node's RPC, with at most `in_flight_max` requests outstanding (more due transfers wait
//!    and go out late: every transfer is offered, and the report's `duration_s` and
//!    `offered_tps` show the rate actually offered). A progress line goes to stderr every
//!    [`PROGRESS_EVERY`]. Offering ends when every transfer has been offered, no re-offer is
//!    queued and no call is in flight (an answer on its way may still refuse transfers for
//!    load), or at `duration + drain` at the latest.
//!
//!    A transfer refused for load ([`RETRY_CODES`]: `overloaded`, a full mempool, and
//!    `too_far_ahead`, its sender's window of unfinalized nonces is full), or sent in a call
//!    that failed transiently (counted `rpc_error`), is offered again
//!    [`RETRY_AFTER`] later, as a wallet would, until the drain ends; re-offers go out
//!    before new transfers. Without this, one refused nonce would strand every later
//!    transfer of its sender behind a nonce gap (they could never execute), and a short
//!    overload would turn into a collapse that measures the generator, not the chain. A
//!    transfer's latency counts from its first offer; `rejected` counts every refusal,
//!    re-offers' included, and `reoffered` the re-offers. A node that refuses a whole call
//!    for load (-32005: its mempool is full, so it did not even decode the call) gets no
//!    call for [`RETRY_AFTER`]; its share goes to the other nodes in turn, or waits while
//!    every node is paused, as clients honouring a Retry-After would.
//! 4. **Following.** One node's finalized blocks are read as they appear (`getBlock`); each
//!    transfer's latency is the time from the moment its batch was sent to the moment the
//!    follower saw its block (so it includes up to one follower poll, [`FOLLOW_POLL`]).
//! 5. **Drain.** After `duration`, nothing more is offered; the follower keeps reading until
//!    every accepted transfer is final or `drain` has passed.
//!
//! `finalized_tps` = transfers of this run finalized ÷ (time of the last finalization − start
//! of offering): the sustained rate the chain delivered for this load. A node that falls
//! behind shows as `finalized_tps` below `offered_tps` and growing latency.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cairn_ledger::{Address, Hash, SignedTransaction, TransactionBody};
use cairn_rpc::{RpcClient, SEND_TRANSACTIONS_MAX, SubmitResult};
use cairn_wallet::{KeyFile, build_transfer};
use serde::Serialize;
use serde_json::json;
use tokio::sync::{Semaphore, watch};

use crate::Manifest;

/// Most transfers one run pre-signs: about 300 bytes each in memory (the encoded transfer,
/// its hash in the index, its timestamps), so at most about 12 GB (a 60-minute soak at
/// 11,000 tx/s).
pub const TXS_MAX: usize = 40_000_000;
/// Shortest reporting window ([`ThroughputConfig::window`]).
pub const WINDOW_MIN: Duration = Duration::from_secs(10);
/// Most sender accounts.
pub const SENDERS_MAX: usize = 50_000;
/// Highest target rate, transfers per second.
pub const RATE_MAX: f64 = 200_000.0;
/// Longest offering phase.
pub const DURATION_MAX: Duration = Duration::from_secs(3600);
/// Most funding transfers a demo account has in flight per round (below the default
/// `mempool_sender_future_max` of 64).
pub const FUNDING_ROUND_TXS_MAX: usize = 48;
/// How often due transfers are dispatched.
pub const TICK: Duration = Duration::from_millis(10);
/// Refusal codes that mean "not now" (the node is loaded), whose transfer is offered again.
pub const RETRY_CODES: [&str; 2] = ["overloaded", "too_far_ahead"];
/// How long after a refusal for load a transfer is offered again.
pub const RETRY_AFTER: Duration = Duration::from_millis(200);
/// How often the follower asks for new blocks.
pub const FOLLOW_POLL: Duration = Duration::from_millis(20);
/// How often the progress line is printed.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(2);
/// Amount and fee of each load transfer, base units.
const AMOUNT: u64 = 1;
const FEE: u64 = 1;
/// Most rounds of funding before giving up.
const FUNDING_ROUNDS_MAX: usize = 2_000;

/// How the load runs.
#[derive(Clone, Debug)]
pub struct ThroughputConfig {
    /// Target rate, transfers per second, in (0, [`RATE_MAX`]].
    pub rate: f64,
    /// Offering phase, at most [`DURATION_MAX`].
    pub duration: Duration,
    /// Sender accounts (1..=[`SENDERS_MAX`]); `None`: `clamp(rate / 4, 64, SENDERS_MAX)`.
    pub senders: Option<usize>,
    /// Transfers per `sendTransactions` call (1..=[`SEND_TRANSACTIONS_MAX`]).
    pub batch_txs_max: usize,
    /// Outstanding RPC requests at most (1..=1024).
    pub in_flight_max: usize,
    /// After offering, how long to wait for accepted transfers to be final.
    pub drain: Duration,
    /// Seed of the sender keys.
    pub seed: u64,
    /// Bound on each RPC call.
    pub rpc_timeout: Duration,
    /// Print progress lines on stderr.
    pub progress: bool,
    /// Indices (into the manifest's nodes) of the nodes to send to and follow; `None`: all.
    /// A node that is down must be left out: a batch it does not take leaves nonce gaps that
    /// hold back its senders' later transfers.
    pub nodes: Option<Vec<usize>>,
    /// Draw senders and recipients from the genesis's generated accounts with this
    /// distribution (the manifest must have them; no funding phase, `senders` is ignored);
    /// `None`: fresh senders funded from the demo accounts (module docs).
    pub distribution: Option<crate::sample::Distribution>,
    /// Also report the run in consecutive windows of this length (at least [`WINDOW_MIN`],
    /// at most `duration`): each window's offered and finalized rate and its transfers'
    /// latency ([`ThroughputReport::windows`]), to see drift over a long run.
    pub window: Option<Duration>,
}

impl Default for ThroughputConfig {
    fn default() -> Self {
        ThroughputConfig {
            rate: 1000.0,
            duration: Duration::from_secs(60),
            senders: None,
            batch_txs_max: 500,
            in_flight_max: 32,
            drain: Duration::from_secs(30),
            seed: 0,
            rpc_timeout: Duration::from_secs(20),
            progress: true,
            nodes: None,
            distribution: None,
            window: None,
        }
    }
}

impl ThroughputConfig {
    /// Checks every bound; returns the transfer count and sender count.
    ///
    /// # Errors
    /// A message naming the setting out of range.
    pub fn validate(&self) -> Result<(usize, usize)> {
        if !(self.rate > 0.0 && self.rate <= RATE_MAX) {
            bail!("rate must be in (0, {RATE_MAX}], got {}", self.rate);
        }
        if self.duration.is_zero() || self.duration > DURATION_MAX {
            bail!("duration must be in (0, {}s]", DURATION_MAX.as_secs());
        }
        let txs = (self.rate * self.duration.as_secs_f64()).ceil() as usize;
        if txs == 0 || txs > TXS_MAX {
            bail!("rate × duration is {txs} transfers; at most {TXS_MAX} per run");
        }
        let senders = self
            .senders
            .unwrap_or_else(|| ((self.rate / 4.0) as usize).clamp(64, SENDERS_MAX));
        if senders == 0 || senders > SENDERS_MAX {
            bail!("senders must be 1..={SENDERS_MAX}, got {senders}");
        }
        if self.batch_txs_max == 0 || self.batch_txs_max > SEND_TRANSACTIONS_MAX {
            bail!("batch size must be 1..={SEND_TRANSACTIONS_MAX}");
        }
        if self.in_flight_max == 0 || self.in_flight_max > 1024 {
            bail!("in-flight requests must be 1..=1024");
        }
        if let Some(w) = self.window
            && (w < WINDOW_MIN || w > self.duration)
        {
            bail!(
                "window must be {}s..=duration ({}s), got {:?}",
                WINDOW_MIN.as_secs(),
                self.duration.as_secs(),
                w
            );
        }
        Ok((txs, senders.min(txs)))
    }
}

/// Latency percentiles, ms.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Latency {
    /// Median.
    pub p50_ms: u64,
    /// 90th percentile.
    pub p90_ms: u64,
    /// 99th percentile.
    pub p99_ms: u64,
    /// Largest.
    pub max_ms: u64,
}

impl Latency {
    /// Nearest-rank percentiles of `samples` (sorted in place); zeros when empty.
    pub fn of(samples: &mut [u64]) -> Latency {
        if samples.is_empty() {
            return Latency::default();
        }
        samples.sort_unstable();
        let at = |q: f64| {
            let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
            samples[rank - 1]
        };
        Latency {
            p50_ms: at(0.50),
            p90_ms: at(0.90),
            p99_ms: at(0.99),
            max_ms: *samples.last().expect("not empty"),
        }
    }
}

/// What a run measured. Serialized (snake_case) as the `--json` output.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ThroughputReport {
    /// Target rate, transfers per second.
    pub target_rate: f64,
    /// Rate actually offered (sent ÷ offering time), transfers per second.
    pub offered_tps: f64,
    /// Finalized transfers of this run per second (see the module docs).
    pub finalized_tps: f64,
    /// Offering phase, seconds: the configured duration, or longer when the last new
    /// transfers went out late (every request slot was busy).
    pub duration_s: f64,
    /// Sender accounts (distinct senders drawn, with generated accounts).
    pub senders: usize,
    /// Accounts senders and recipients were drawn from: the generated accounts' count, or
    /// the fresh senders'.
    pub accounts: u64,
    /// How they were drawn: `uniform`, `zipf:S`, or `fresh` (funded fresh senders, each
    /// paying the next).
    pub distribution: String,
    /// Transfers sent (in `sendTransactions` calls that were answered or timed out), each
    /// counted once.
    pub sent: u64,
    /// Re-offers of transfers refused for load (see the module docs).
    pub reoffered: u64,
    /// Accepted into a mempool.
    pub accepted: u64,
    /// Refused, in total.
    pub rejected: u64,
    /// Refusals by reason code (`overloaded`, `too_far_ahead`, …; `rpc_error` for calls that
    /// failed as a whole).
    pub rejections: BTreeMap<String, u64>,
    /// Transfers of this run seen in finalized blocks.
    pub finalized: u64,
    /// Accepted transfers not final by the end of the drain.
    pub unfinalized: u64,
    /// Submit-to-finalized latency of the finalized transfers.
    pub latency: Latency,
    /// Finalized height when offering started and when the run ended.
    pub start_height: u64,
    /// Last height followed.
    pub end_height: u64,
    /// Seconds spent funding senders and pre-signing (before the clock).
    pub setup_s: f64,
    /// Stopped early (Ctrl-C).
    pub interrupted: bool,
    /// The run cut into [`ThroughputConfig::window`]-long windows from the start of
    /// offering (empty without a window); the last window may be partial (drain included).
    pub windows: Vec<Window>,
}

/// One window of a run ([`ThroughputConfig::window`]).
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Window {
    /// Start of the window, s after offering began.
    pub start_s: f64,
    /// Length of the window, s.
    pub length_s: f64,
    /// Transfers first offered in the window, per second.
    pub offered_tps: f64,
    /// Transfers of the run finalized in the window (by the follower's clock), per second.
    pub finalized_tps: f64,
    /// Submit-to-finalized latency of the transfers first offered in the window.
    pub latency: Latency,
}

/// Cuts a run into windows of `window_ms`: `sent_ms[i]` / `final_ms[i]` are transfer `i`'s
/// first offer and finalization, ms after the start (`u64::MAX`: never); `end_ms` is the end
/// of the run. Bounded: `end_ms / window_ms + 1` windows.
pub fn windows_of(sent_ms: &[u64], final_ms: &[u64], window_ms: u64, end_ms: u64) -> Vec<Window> {
    assert!(window_ms > 0, "a window has a length");
    assert_eq!(sent_ms.len(), final_ms.len());
    let count = (end_ms / window_ms + 1) as usize;
    let mut offered = vec![0u64; count];
    let mut finalized = vec![0u64; count];
    let mut latencies: Vec<Vec<u64>> = vec![Vec::new(); count];
    for (&s, &f) in sent_ms.iter().zip(final_ms) {
        if s != u64::MAX {
            let w = ((s / window_ms) as usize).min(count - 1);
            offered[w] += 1;
            if f != u64::MAX {
                latencies[w].push(f.saturating_sub(s));
            }
        }
        if f != u64::MAX {
            finalized[((f / window_ms) as usize).min(count - 1)] += 1;
        }
    }
    (0..count)
        .map(|w| {
            let start_ms = w as u64 * window_ms;
            let length_ms = if w + 1 == count {
                end_ms.saturating_sub(start_ms).max(1)
            } else {
                window_ms
            };
            let length_s = length_ms as f64 / 1000.0;
            Window {
                start_s: start_ms as f64 / 1000.0,
                length_s,
                offered_tps: offered[w] as f64 / length_s,
                finalized_tps: finalized[w] as f64 / length_s,
                latency: Latency::of(&mut latencies[w]),
            }
        })
        .collect()
}

impl ThroughputReport {
    /// The report for humans.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "offered {:.0} tx/s (target {:.0}) for {:.1} s from {} senders ({} of {} accounts): sent {}, accepted {}, rejected {}, re-offered {}\n",
            self.offered_tps,
            self.target_rate,
            self.duration_s,
            self.senders,
            self.distribution,
            self.accounts,
            self.sent,
            self.accepted,
            self.rejected,
            self.reoffered
        );
        for (code, n) in &self.rejections {
            s.push_str(&format!("  rejected {code}: {n}\n"));
        }
        s.push_str(&format!(
            "finalized {} ({} accepted not final): {:.0} tx/s, heights {}..={}\n",
            self.finalized,
            self.unfinalized,
            self.finalized_tps,
            self.start_height,
            self.end_height
        ));
        s.push_str(&format!(
            "latency submit→finalized: p50 {} ms, p90 {} ms, p99 {} ms, max {} ms\n",
            self.latency.p50_ms, self.latency.p90_ms, self.latency.p99_ms, self.latency.max_ms
        ));
        for w in &self.windows {
            s.push_str(&format!(
                "  window {:>7.0}..{:<7.0} s: offered {:>7.0} tx/s, finalized {:>7.0} tx/s, p50 {} ms, p99 {} ms\n",
                w.start_s,
                w.start_s + w.length_s,
                w.offered_tps,
                w.finalized_tps,
                w.latency.p50_ms,
                w.latency.p99_ms
            ));
        }
        if self.interrupted {
            s.push_str("interrupted before the end\n");
        }
        s
    }
}

/// Sender `i`'s key for `seed`: a key derived with blake3 so runs with different seeds use
/// disjoint accounts.
fn sender_key(seed: u64, i: usize) -> KeyFile {
    let mut material = [0u8; 16];
    material[..8].copy_from_slice(&seed.to_le_bytes());
    material[8..].copy_from_slice(&(i as u64).to_le_bytes());
    KeyFile::from_seed(&blake3::derive_key("cairn load sender v1", &material))
}

/// State shared by the offering tasks and the follower.
struct Track {
    /// Transaction hash → index in the run.
    index: HashMap<Hash, u32>,
    /// Per transfer: ms after the start when its batch was sent (u64::MAX: not sent).
    sent_at_ms: Vec<AtomicU64>,
    /// Per transfer: accepted by a node.
    accepted: Vec<std::sync::atomic::AtomicBool>,
    /// Per transfer: finalized (ms after the start), u64::MAX if not.
    final_at_ms: Vec<AtomicU64>,
    sent: AtomicU64,
    reoffered: AtomicU64,
    /// Transfers refused for load, with when (ms after the start) to offer them again. Each
    /// transfer is here at most once, so at most the run's transfer count.
    retry: Mutex<std::collections::VecDeque<(u64, usize)>>,
    accepted_count: AtomicU64,
    finalized_count: AtomicU64,
    rejections: Mutex<BTreeMap<String, u64>>,
    height: AtomicU64,
    /// Per node (index into the clients): ms after the start before which no call goes to
    /// it, set when it refused a whole call for load ([`RETRY_AFTER`] later).
    paused_until_ms: Vec<AtomicU64>,
}

/// Runs the load against the nodes of `m`.
///
/// # Errors
/// Bad settings, no demo accounts, no node answering, funding that does not finalize.
pub async fn run(
    m: &Manifest,
    cfg: &ThroughputConfig,
    stop: watch::Receiver<bool>,
) -> Result<ThroughputReport> {
    let (tx_count, sender_count) = cfg.validate()?;
    if m.accounts.is_empty() && cfg.distribution.is_none() {
        bail!("the testnet has no demo accounts to fund senders from");
    }
    let setup_started = Instant::now();
    let targets: Vec<usize> = match &cfg.nodes {
        Some(v) => v.clone(),
        None => (0..m.nodes.len()).collect(),
    };
    if targets.is_empty() || targets.iter().any(|&i| i >= m.nodes.len()) {
        bail!(
            "node indices {targets:?} do not fit the {} nodes",
            m.nodes.len()
        );
    }
    let clients: Vec<Arc<RpcClient>> = targets
        .iter()
        .map(|&i| RpcClient::with_timeout(&m.nodes[i].rpc_url, cfg.rpc_timeout).map(Arc::new))
        .collect::<Result<_, _>>()?;
    let first = &m.nodes[targets[0]];
    let follower_client = clients[0].clone();
    let status = follower_client
        .status()
        .await
        .with_context(|| format!("getStatus on {}", first.rpc_url))?;
    if status.chain_id != m.chain_id {
        bail!(
            "node {} serves chain {}, the manifest says {}",
            first.name,
            status.chain_id,
            m.chain_id
        );
    }

    let chain_id = m.chain_id.clone();
    let expiry = status.latest_height + 10_000_000;
    let (txs, sender_count, accounts, distribution) = match cfg.distribution {
        None => {
            // 1. Senders and their funding.
            let senders: Vec<KeyFile> =
                (0..sender_count).map(|i| sender_key(cfg.seed, i)).collect();
            let per_sender = tx_count.div_ceil(sender_count) as u64;
            let need = per_sender * (AMOUNT + FEE);
            let nonces = fund(m, &clients, &senders, need, cfg).await?;

            // 2. Pre-signing on all cores.
            let txs = presign(&senders, &nonces, tx_count, &chain_id, expiry, cfg.progress).await?;
            (txs, sender_count, sender_count as u64, "fresh".to_string())
        }
        Some(d) => {
            let generated = m.generated_accounts.with_context(|| {
                "the testnet has no generated accounts (generate it with --generated-accounts N)"
            })?;
            let (txs, distinct) = presign_generated(
                &follower_client,
                generated,
                d,
                tx_count,
                &chain_id,
                expiry,
                cfg,
            )
            .await?;
            (txs, distinct, generated.count, d.to_string())
        }
    };
    let index: HashMap<Hash, u32> = txs
        .iter()
        .enumerate()
        .map(|(i, t)| (t.0, i as u32))
        .collect();
    let encoded: Vec<Box<[u8]>> = txs.into_iter().map(|(_, bytes)| bytes).collect();
    let setup_s = setup_started.elapsed().as_secs_f64();
    let start_height = follower_client.status().await?.latest_height;

    let track = Arc::new(Track {
        index,
        sent_at_ms: (0..tx_count).map(|_| AtomicU64::new(u64::MAX)).collect(),
        accepted: (0..tx_count)
            .map(|_| std::sync::atomic::AtomicBool::new(false))
            .collect(),
        final_at_ms: (0..tx_count).map(|_| AtomicU64::new(u64::MAX)).collect(),
        sent: AtomicU64::new(0),
        reoffered: AtomicU64::new(0),
        retry: Mutex::new(std::collections::VecDeque::new()),
        accepted_count: AtomicU64::new(0),
        finalized_count: AtomicU64::new(0),
        rejections: Mutex::new(BTreeMap::new()),
        height: AtomicU64::new(start_height),
        paused_until_ms: clients.iter().map(|_| AtomicU64::new(0)).collect(),
    });
    let encoded = Arc::new(encoded);
    let started = Instant::now();
    let (done_tx, done_rx) = watch::channel(false);
    let follower = tokio::spawn(follow(
        follower_client.clone(),
        track.clone(),
        started,
        start_height,
        done_rx,
    ));
    // A bar of finalized transfers on a terminal; a line every PROGRESS_EVERY otherwise.
    let bar = crate::progress::Progress::new(cfg.progress, "load", Some(tx_count as u64));
    let progress = cfg.progress.then(|| {
        let (track, bar) = (track.clone(), bar.clone());
        let rate = cfg.rate;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(PROGRESS_EVERY).await;
                let t = started.elapsed().as_secs_f64();
                let sent = track.sent.load(Ordering::Relaxed);
                let fin = track.finalized_count.load(Ordering::Relaxed);
                let rej: u64 = track.rejections.lock().expect("poisoned").values().sum();
                bar.set_position(fin);
                bar.message(format!(
                    "[{t:>6.1}s] target {rate:.0}/s  sent {sent} ({:.0}/s)  accepted {}  rejected {rej}  finalized {fin} ({:.0}/s)  height {}",
                    sent as f64 / t,
                    track.accepted_count.load(Ordering::Relaxed),
                    fin as f64 / t,
                    track.height.load(Ordering::Relaxed)
                ));
            }
        })
    });

    // 3. Offering, open loop.
    let permits = Arc::new(Semaphore::new(cfg.in_flight_max));
    let mut next = 0usize;
    let mut rr = 0usize;
    let mut interrupted = false;
    let mut offered_all_at: Option<Duration> = None;
    let mut tasks = tokio::task::JoinSet::new();
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        ticker.tick().await;
        if *stop.borrow() {
            interrupted = true;
            break;
        }
        let elapsed = started.elapsed();
        while tasks.try_join_next().is_some() {}
        // Done when every transfer has been offered and none can come back for a re-offer:
        // the re-offer queue is empty and no call is in flight (an answer still on its way
        // may refuse transfers for load and queue them again). Bounded by `duration + drain`
        // whatever the nodes answer.
        let retrying = !track.retry.lock().expect("poisoned").is_empty() || !tasks.is_empty();
        if next >= tx_count && !retrying {
            break;
        }
        if elapsed > cfg.duration + cfg.drain {
            break;
        }
        let now_ms = elapsed.as_millis() as u64;
        // Transfer k is due at k / rate; one not offered on time (every request slot busy)
        // goes out late, and the report's `duration_s` and `offered_tps` show it.
        let due = ((cfg.rate * elapsed.as_secs_f64()) as usize).min(tx_count);
        loop {
            // Re-offers first (they are older), then new transfers.
            let mut batch: Vec<usize> = {
                let mut retry = track.retry.lock().expect("poisoned");
                let mut b = Vec::new();
                while b.len() < cfg.batch_txs_max
                    && retry.front().is_some_and(|&(at, _)| at <= now_ms)
                {
                    b.push(retry.pop_front().expect("checked").1);
                }
                b
            };
            let reoffers = batch.len();
            let end = (next + cfg.batch_txs_max - reoffers).min(due.max(next));
            batch.extend(next..end);
            if batch.is_empty() {
                break;
            }
            // The next node in turn that has not refused a whole call in the last RETRY_AFTER.
            let node = (0..clients.len())
                .map(|k| (rr + k) % clients.len())
                .find(|&n| track.paused_until_ms[n].load(Ordering::Relaxed) <= now_ms);
            let permit = match node {
                Some(_) => permits.clone().try_acquire_owned().ok(),
                None => None,
            };
            let (Some(node), Some(permit)) = (node, permit) else {
                // Every request slot is busy, or every node said it is full: the rest waits
                // for the next tick.
                let mut retry = track.retry.lock().expect("poisoned");
                for &i in batch[..reoffers].iter().rev() {
                    retry.push_front((now_ms, i));
                }
                break;
            };
            next = end;
            if next >= tx_count && offered_all_at.is_none() {
                offered_all_at = Some(elapsed);
            }
            let client = clients[node].clone();
            rr = node + 1;
            let (track, encoded) = (track.clone(), encoded.clone());
            tasks.spawn(async move {
                send_batch(&client, node, &track, &encoded, batch, started).await;
                drop(permit);
            });
        }
    }
    // The offering phase lasted `duration`, or longer when transfers went out late.
    let offering_s = offered_all_at
        .map_or_else(|| started.elapsed(), |t| t.max(cfg.duration))
        .max(TICK)
        .as_secs_f64();
    while tasks.join_next().await.is_some() {}

    // 5. Drain.
    let drain_deadline = Instant::now() + cfg.drain;
    while Instant::now() < drain_deadline && !*stop.borrow() {
        let accepted = track.accepted_count.load(Ordering::Relaxed);
        if track.finalized_count.load(Ordering::Relaxed) >= accepted {
            break;
        }
        tokio::time::sleep(FOLLOW_POLL).await;
    }
    let _ = done_tx.send(true);
    let end_height = follower.await.context("follower task")??;
    if let Some(p) = progress {
        p.abort();
    }
    bar.finish(format!(
        "{} of {tx_count} finalized",
        track.finalized_count.load(Ordering::Relaxed)
    ));

    let mut latencies = Vec::new();
    let mut last_final_ms = 0u64;
    let mut unfinalized = 0u64;
    for i in 0..tx_count {
        let f = track.final_at_ms[i].load(Ordering::Relaxed);
        let s = track.sent_at_ms[i].load(Ordering::Relaxed);
        if f != u64::MAX {
            last_final_ms = last_final_ms.max(f);
            if s != u64::MAX {
                latencies.push(f.saturating_sub(s));
            }
        } else if track.accepted[i].load(Ordering::Relaxed) {
            unfinalized += 1;
        }
    }
    let windows = match cfg.window {
        Some(w) => {
            let load = |v: &[AtomicU64]| -> Vec<u64> {
                v.iter().map(|a| a.load(Ordering::Relaxed)).collect()
            };
            let end_ms = started.elapsed().as_millis() as u64;
            windows_of(
                &load(&track.sent_at_ms),
                &load(&track.final_at_ms),
                w.as_millis() as u64,
                end_ms,
            )
        }
        None => Vec::new(),
    };
    let finalized = track.finalized_count.load(Ordering::Relaxed);
    let sent = track.sent.load(Ordering::Relaxed);
    let rejections = track.rejections.lock().expect("poisoned").clone();
    Ok(ThroughputReport {
        target_rate: cfg.rate,
        offered_tps: sent as f64 / offering_s,
        finalized_tps: if last_final_ms == 0 {
            0.0
        } else {
            finalized as f64 / (last_final_ms as f64 / 1000.0)
        },
        duration_s: offering_s,
        senders: sender_count,
        accounts,
        distribution,
        sent,
        reoffered: track.reoffered.load(Ordering::Relaxed),
        accepted: track.accepted_count.load(Ordering::Relaxed),
        rejected: rejections.values().sum(),
        rejections,
        finalized,
        unfinalized,
        latency: Latency::of(&mut latencies),
        start_height,
        end_height,
        setup_s,
        interrupted,
        windows,
    })
}

/// Sends transfers `batch` (indices into `encoded`) in one `sendTransactions` call and
/// records the answers; queues those refused for load ([`RETRY_CODES`]) for a re-offer.
async fn send_batch(
    client: &RpcClient,
    node: usize,
    track: &Track,
    encoded: &[Box<[u8]>],
    batch: Vec<usize>,
    started: Instant,
) {
    let sent_ms = started.elapsed().as_millis() as u64;
    let mut first = 0u64;
    for &i in &batch {
        // Latency counts from the first offer.
        if track.sent_at_ms[i]
            .compare_exchange(u64::MAX, sent_ms, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            first += 1;
        }
    }
    track.sent.fetch_add(first, Ordering::Relaxed);
    track
        .reoffered
        .fetch_add(batch.len() as u64 - first, Ordering::Relaxed);
    let txs: Vec<String> = batch.iter().map(|&i| hex::encode(&encoded[i])).collect();
    let answer: Result<Vec<SubmitResult>, _> =
        client.call("sendTransactions", json!({ "txs": txs })).await;
    match answer {
        Ok(results) if results.len() == batch.len() => {
            let mut ok = 0;
            let mut refused: BTreeMap<String, u64> = BTreeMap::new();
            let mut again = Vec::new();
            for (&i, r) in batch.iter().zip(results) {
                if r.accepted {
                    track.accepted[i].store(true, Ordering::Relaxed);
                    ok += 1;
                } else {
                    let code = r.reason.unwrap_or_else(|| "unknown".into());
                    if RETRY_CODES.contains(&code.as_str()) {
                        again.push(i);
                    }
                    *refused.entry(code).or_default() += 1;
                }
            }
            if !again.is_empty() {
                let at = started.elapsed().as_millis() as u64 + RETRY_AFTER.as_millis() as u64;
                let mut retry = track.retry.lock().expect("poisoned");
                retry.extend(again.into_iter().map(|i| (at, i)));
            }
            track.accepted_count.fetch_add(ok, Ordering::Relaxed);
            let mut rej = track.rejections.lock().expect("poisoned");
            for (code, n) in refused {
                *rej.entry(code).or_default() += n;
            }
        }
        Err(cairn_rpc::ClientError::Rpc { code, .. }) if code == cairn_rpc::codes::OVERLOADED => {
            // The node refused the whole call for load (its mempool is full) before
            // decoding it: every transfer is refused `overloaded` and offered again, and
            // the node gets no call for RETRY_AFTER, as a client honouring a Retry-After
            // would (re-offering at once to a full node only spins both sides' CPU).
            let at = started.elapsed().as_millis() as u64 + RETRY_AFTER.as_millis() as u64;
            track.paused_until_ms[node].fetch_max(at, Ordering::Relaxed);
            *track
                .rejections
                .lock()
                .expect("poisoned")
                .entry("overloaded".into())
                .or_default() += batch.len() as u64;
            let mut retry = track.retry.lock().expect("poisoned");
            retry.extend(batch.into_iter().map(|i| (at, i)));
        }
        other => {
            if let Err(e) = &other {
                tracing::debug!(error = %e, txs = batch.len(), "sendTransactions failed");
            }
            *track
                .rejections
                .lock()
                .expect("poisoned")
                .entry("rpc_error".into())
                .or_default() += batch.len() as u64;
            // A call that failed transiently (connection closed, timed out, node busy) is
            // offered again like a refusal for load: dropping it would leave a nonce gap that
            // strands every later transfer of its senders (`too_far_ahead` forever; a soak
            // collapsed that way). Transfers the node did take come back `duplicate` or
            // `stale_nonce`, harmless.
            if matches!(&other, Err(e) if e.is_transient()) {
                let at = started.elapsed().as_millis() as u64 + RETRY_AFTER.as_millis() as u64;
                let mut retry = track.retry.lock().expect("poisoned");
                retry.extend(batch.into_iter().map(|i| (at, i)));
            }
        }
    }
}

/// Follows finalized blocks from `from + 1` until `done`, marking this run's transfers final.
/// Returns the last height read.
async fn follow(
    client: Arc<RpcClient>,
    track: Arc<Track>,
    started: Instant,
    from: u64,
    done: watch::Receiver<bool>,
) -> Result<u64> {
    let mut next = from + 1;
    loop {
        let tip = match client.status().await {
            Ok(s) => s.latest_height,
            Err(_) => next - 1,
        };
        while next <= tip {
            // Hashes only: the full form would cost the followed node (and this process)
            // a JSON encoding of every transaction's fields.
            let Ok(Some(block)) = client.block_hashes_by_height(next).await else {
                break;
            };
            let now_ms = started.elapsed().as_millis() as u64;
            let mut mine = 0;
            for h in &block.transaction_hashes {
                if let Some(&i) = track.index.get(h) {
                    // A transfer is final once; a second sighting would be a ledger bug that
                    // the invariant checker reports, not something to count twice here.
                    if track.final_at_ms[i as usize]
                        .compare_exchange(u64::MAX, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                        .is_ok()
                    {
                        mine += 1;
                    }
                }
            }
            track.finalized_count.fetch_add(mine, Ordering::Relaxed);
            track.height.store(next, Ordering::Relaxed);
            next += 1;
        }
        if *done.borrow() {
            return Ok(next - 1);
        }
        tokio::time::sleep(FOLLOW_POLL).await;
    }
}

/// Funds every sender with `need` base units from the demo accounts, in rounds that respect
/// the mempool's per-sender window, each waited to finality. Returns each sender's nonce.
async fn fund(
    m: &Manifest,
    clients: &[Arc<RpcClient>],
    senders: &[KeyFile],
    need: u64,
    cfg: &ThroughputConfig,
) -> Result<Vec<u64>> {
    let c = &clients[0];
    let mut nonces = Vec::with_capacity(senders.len());
    let mut to_fund: Vec<(Address, u64)> = Vec::new();
    for chunk in senders.chunks(NONCE_QUERIES_IN_FLIGHT_MAX) {
        let addresses: Vec<Address> = chunk.iter().map(KeyFile::address).collect();
        // Polled together: sequential awaits would not overlap the round trips.
        let accounts =
            futures::future::join_all(addresses.iter().map(|a| account_with_retry(c, a))).await;
        for (k, a) in chunk.iter().zip(accounts) {
            let a = a.with_context(|| format!("getAccount {}", k.address()))?;
            nonces.push(a.nonce);
            if a.balance < need {
                to_fund.push((k.address(), need - a.balance));
            }
        }
    }
    if to_fund.is_empty() {
        return Ok(nonces);
    }
    let funders: Vec<KeyFile> = m
        .accounts
        .iter()
        .map(|a| {
            KeyFile::load(&a.key_file).with_context(|| format!("loading {}", a.key_file.display()))
        })
        .collect::<Result<_>>()?;
    let total: u64 = to_fund.iter().map(|(_, v)| v + FEE).sum();
    let funding = crate::progress::Progress::new(
        cfg.progress,
        &format!(
            "funding senders ({need} base units each from {} demo accounts)",
            funders.len()
        ),
        Some(to_fund.len() as u64),
    );
    let mut funder_nonce = Vec::with_capacity(funders.len());
    let mut funder_balance = 0u64;
    for f in &funders {
        let a = c.account(&f.address()).await?;
        funder_nonce.push(a.nonce);
        funder_balance = funder_balance.saturating_add(a.balance);
    }
    if funder_balance < total {
        bail!(
            "the demo accounts hold {funder_balance} base units; funding needs {total} (fewer senders, a lower rate or a shorter duration)"
        );
    }
    let mut queue = to_fund.into_iter();
    let mut rounds = 0;
    loop {
        let mut batch: Vec<SignedTransaction> = Vec::new();
        let mut last: Vec<(usize, u64)> = Vec::new();
        for (fi, f) in funders.iter().enumerate() {
            let mut n = 0;
            while n < FUNDING_ROUND_TXS_MAX {
                let Some((to, amount)) = queue.next() else {
                    break;
                };
                batch.push(build_transfer(
                    f,
                    &m.chain_id,
                    to,
                    amount,
                    FEE,
                    funder_nonce[fi],
                    u64::MAX,
                ));
                funder_nonce[fi] += 1;
                n += 1;
            }
            if n > 0 {
                last.push((fi, funder_nonce[fi]));
            }
        }
        if batch.is_empty() {
            break;
        }
        let batch_len = batch.len();
        rounds += 1;
        if rounds > FUNDING_ROUNDS_MAX {
            bail!("funding did not finish in {FUNDING_ROUNDS_MAX} rounds");
        }
        for chunk in batch.chunks(SEND_TRANSACTIONS_MAX) {
            let results = c
                .send_transactions(chunk)
                .await
                .context("funding: sendTransactions")?;
            if let Some(r) = results.iter().find(|r| !r.accepted) {
                bail!(
                    "funding transfer {} refused: {} {}",
                    r.hash,
                    r.reason.clone().unwrap_or_default(),
                    r.message.clone().unwrap_or_default()
                );
            }
        }
        // Wait until every funder's last transfer of the round is final.
        let deadline = Instant::now() + Duration::from_secs(60);
        for (fi, want) in last {
            loop {
                let a = c.account(&funders[fi].address()).await?;
                if a.nonce >= want {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("funding round {rounds} not final after 60 s");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        funding.inc(batch_len as u64);
    }
    funding.finish(format!("funded in {rounds} rounds"));
    Ok(nonces)
}

/// Most `getAccount` calls in flight while reading senders' nonces: well under the node's
/// RPC `concurrency_max` (64) and `connections_per_ip_max` (256), which the run's other
/// clients (the follower, idle pooled connections of an earlier run) share.
const NONCE_QUERIES_IN_FLIGHT_MAX: usize = 32;
/// Attempts of one `getAccount` that fails transiently (connection closed, node busy).
const ACCOUNT_READ_ATTEMPTS_MAX: u32 = 5;

/// `getAccount`, tried again (after 100, 200, 400, 800 ms) when it fails transiently
/// ([`cairn_rpc::ClientError::is_transient`]: the connection failed or closed under it, or
/// the node shed it as busy).
async fn account_with_retry(
    client: &RpcClient,
    address: &Address,
) -> Result<cairn_rpc::AccountInfo, cairn_rpc::ClientError> {
    let mut attempt = 1;
    loop {
        match client.account(address).await {
            Err(e) if attempt < ACCOUNT_READ_ATTEMPTS_MAX && e.is_transient() => {
                tokio::time::sleep(Duration::from_millis(100 << (attempt - 1))).await;
                attempt += 1;
            }
            r => return r,
        }
    }
}

/// Draws `count` (sender, recipient) pairs of generated accounts by `distribution` (seeded
/// by `cfg.seed`), reads each distinct sender's nonce from `client`, and signs the
/// transfers on all cores, each sender's in nonce order. Returns (hash, hex) per transfer
/// and the number of distinct senders. Memory: the pairs (16 bytes each), one key per
/// distinct sender, and the signed transfers, all bounded by [`TXS_MAX`].
async fn presign_generated(
    client: &RpcClient,
    generated: cairn_genesis::GeneratedAccounts,
    distribution: crate::sample::Distribution,
    count: usize,
    chain_id: &str,
    expiry: u64,
    cfg: &ThroughputConfig,
) -> Result<(Vec<(Hash, Box<[u8]>)>, usize)> {
    if generated.count < 2 {
        bail!("the load needs at least 2 generated accounts");
    }
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 16);
    let seed = cfg.seed;
    // Draws, each transfer's sender slot and its place in that sender's sequence.
    let (pairs, slot_of, seq_of, senders) = tokio::task::spawn_blocking(move || {
        let mut sampler = crate::sample::AccountSampler::new(distribution, generated.count, seed);
        let pairs: Vec<(u64, u64)> = (0..count).map(|_| sampler.next_pair()).collect();
        let mut slots: HashMap<u64, u32> = HashMap::new();
        let mut senders: Vec<u64> = Vec::new();
        let mut used: Vec<u32> = Vec::new();
        let mut slot_of = Vec::with_capacity(count);
        let mut seq_of = Vec::with_capacity(count);
        for &(s, _) in &pairs {
            let slot = *slots.entry(s).or_insert_with(|| {
                senders.push(s);
                used.push(0);
                (senders.len() - 1) as u32
            });
            slot_of.push(slot);
            seq_of.push(used[slot as usize]);
            used[slot as usize] += 1;
        }
        (pairs, slot_of, seq_of, senders)
    })
    .await
    .context("drawing accounts")?;
    // Sender keys, derived on all cores.
    let bar = crate::progress::Progress::new(
        cfg.progress,
        &format!(
            "deriving {} sender keys and reading their nonces",
            senders.len()
        ),
        Some(senders.len() as u64),
    );
    let senders = Arc::new(senders);
    let per = senders.len().div_ceil(threads).max(1);
    let mut handles = Vec::new();
    for t in 0..threads {
        let senders = senders.clone();
        handles.push(tokio::task::spawn_blocking(move || {
            let from = (t * per).min(senders.len());
            let to = ((t + 1) * per).min(senders.len());
            senders[from..to]
                .iter()
                .map(|&i| {
                    let key = generated.signing_key(i);
                    let address = Address::from_public_key(&key.verifying_key());
                    (key, address)
                })
                .collect::<Vec<_>>()
        }));
    }
    let mut keys: Vec<(ed25519_dalek::SigningKey, Address)> = Vec::with_capacity(senders.len());
    for h in handles {
        keys.extend(h.await.context("key derivation task")?);
    }
    // Their nonces: the chain's, so an earlier run's finalized transfers are counted.
    let mut nonces: Vec<u64> = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(NONCE_QUERIES_IN_FLIGHT_MAX) {
        let answers =
            futures::future::join_all(chunk.iter().map(|(_, a)| account_with_retry(client, a)))
                .await;
        for ((_, a), r) in chunk.iter().zip(answers) {
            nonces.push(r.with_context(|| format!("getAccount {a}"))?.nonce);
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish(format!("{} senders", keys.len()));
    let distinct = keys.len();
    // Signing on all cores.
    let bar = crate::progress::Progress::new(cfg.progress, "signing transfers", Some(count as u64));
    let shared = Arc::new((keys, nonces, pairs, slot_of, seq_of));
    let per = count.div_ceil(threads).max(1);
    let mut handles = Vec::new();
    for t in 0..threads {
        let (shared, chain_id, bar) = (shared.clone(), chain_id.to_string(), bar.clone());
        handles.push(tokio::task::spawn_blocking(move || {
            let (keys, nonces, pairs, slot_of, seq_of) = &*shared;
            let range = (t * per).min(count)..((t + 1) * per).min(count);
            range
                .map(|k| {
                    if k % 1024 == 1023 {
                        bar.inc(1024);
                    }
                    let slot = slot_of[k] as usize;
                    let (key, sender) = &keys[slot];
                    let tx = TransactionBody {
                        chain_id: chain_id.clone(),
                        sender: *sender,
                        fee: FEE,
                        nonce: nonces[slot] + u64::from(seq_of[k]),
                        expiry_height: expiry,
                        action: cairn_ledger::Action::Transfer {
                            recipient: generated.address(pairs[k].1),
                            amount: AMOUNT,
                        },
                    }
                    .sign(key);
                    (tx.hash(), tx.encode().into_boxed_slice())
                })
                .collect::<Vec<_>>()
        }));
    }
    let mut out = Vec::with_capacity(count);
    for h in handles {
        out.extend(h.await.context("signing task")?);
    }
    bar.set_position(count as u64);
    bar.finish(format!("{count} transfers"));
    Ok((out, distinct))
}

/// Signs `count` transfers (sender `k mod senders`, next nonce), returning (hash, encoding).
async fn presign(
    senders: &[KeyFile],
    nonces: &[u64],
    count: usize,
    chain_id: &str,
    expiry: u64,
    progress: bool,
) -> Result<Vec<(Hash, Box<[u8]>)>> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 16);
    let bar = crate::progress::Progress::new(progress, "signing transfers", Some(count as u64));
    let senders: Arc<Vec<(ed25519_dalek::SigningKey, Address)>> = Arc::new(
        senders
            .iter()
            .map(|k| (k.signing_key().clone(), k.address()))
            .collect(),
    );
    let nonces = Arc::new(nonces.to_vec());
    let chunk = count.div_ceil(threads);
    let mut handles = Vec::new();
    for t in 0..threads {
        let (senders, nonces, chain_id) = (senders.clone(), nonces.clone(), chain_id.to_string());
        let range = (t * chunk)..((t + 1) * chunk).min(count);
        let bar = bar.clone();
        handles.push(tokio::task::spawn_blocking(move || {
            let n = senders.len();
            range
                .map(|k| {
                    // Counted per 1,024 so the shared counter is not a hot spot.
                    if k % 1024 == 1023 {
                        bar.inc(1024);
                    }
                    let s = k % n;
                    let tx = TransactionBody {
                        chain_id: chain_id.clone(),
                        sender: senders[s].1,
                        fee: FEE,
                        nonce: nonces[s] + (k / n) as u64,
                        expiry_height: expiry,
                        action: cairn_ledger::Action::Transfer {
                            recipient: senders[(s + 1) % n].1,
                            amount: AMOUNT,
                        },
                    }
                    .sign(&senders[s].0);
                    (tx.hash(), tx.encode().into_boxed_slice())
                })
                .collect::<Vec<_>>()
        }));
    }
    let mut out = Vec::with_capacity(count);
    for h in handles {
        out.extend(h.await.context("signing task")?);
    }
    bar.set_position(count as u64);
    bar.finish(format!("{count} transfers"));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_count_offers_finalizations_and_latency_where_they_happen() {
        const NEVER: u64 = u64::MAX;
        // Window length 1,000 ms, run end 2,500 ms: windows [0,1000), [1000,2000), [2000,2500].
        let sent = [0, 500, 900, 1_500, 2_100, NEVER];
        let fin = [400, 1_600, NEVER, 1_700, 2_400, NEVER];
        let w = windows_of(&sent, &fin, 1_000, 2_500);
        assert_eq!(w.len(), 3);
        // Offered: 3 in the first window, 1 in the second, 1 in the last (0.5 s long).
        assert_eq!(w[0].offered_tps, 3.0);
        assert_eq!(w[1].offered_tps, 1.0);
        assert_eq!(w[2].length_s, 0.5);
        assert_eq!(w[2].offered_tps, 2.0);
        // Finalized where the finalization fell: 1, 2 (1,600 and 1,700), 1 in 0.5 s.
        assert_eq!(w[0].finalized_tps, 1.0);
        assert_eq!(w[1].finalized_tps, 2.0);
        assert_eq!(w[2].finalized_tps, 2.0);
        // Latency belongs to the window of the offer: 400 and 1,100 ms (900's never final).
        assert_eq!(w[0].latency.max_ms, 1_100);
        assert_eq!(w[1].latency.max_ms, 200);
        assert_eq!(w[2].latency.p50_ms, 300);
    }

    #[test]
    fn a_window_longer_than_the_run_is_refused() {
        let cfg = ThroughputConfig {
            duration: Duration::from_secs(30),
            window: Some(Duration::from_secs(60)),
            ..ThroughputConfig::default()
        };
        assert!(cfg.validate().is_err());
        let cfg = ThroughputConfig {
            window: Some(Duration::from_secs(1)),
            ..cfg
        };
        assert!(cfg.validate().is_err(), "below WINDOW_MIN");
        let cfg = ThroughputConfig {
            window: Some(Duration::from_secs(10)),
            ..cfg
        };
        assert!(cfg.validate().is_ok());
    }

    #[test]
    fn percentiles_nearest_rank() {
        let mut v: Vec<u64> = (1..=100).rev().collect();
        let l = Latency::of(&mut v);
        assert_eq!((l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms), (50, 90, 99, 100));
        assert_eq!(Latency::of(&mut []), Latency::default());
        let mut one = vec![7];
        assert_eq!(Latency::of(&mut one).p99_ms, 7);
    }

    #[test]
    fn config_bounds() {
        let ok = ThroughputConfig::default();
        assert_eq!(ok.validate().unwrap(), (60_000, 250));
        let bad = |f: fn(&mut ThroughputConfig)| {
            let mut c = ThroughputConfig::default();
            f(&mut c);
            c.validate().is_err()
        };
        assert!(bad(|c| c.rate = 0.0));
        assert!(bad(|c| c.rate = RATE_MAX * 2.0));
        assert!(bad(|c| c.duration = Duration::ZERO));
        assert!(bad(|c| c.batch_txs_max = SEND_TRANSACTIONS_MAX + 1));
        assert!(bad(|c| c.senders = Some(0)));
        assert!(bad(|c| {
            c.rate = 100_000.0;
            c.duration = Duration::from_secs(3600)
        }));
    }

    #[test]
    fn sender_keys_depend_on_seed_and_index() {
        assert_eq!(sender_key(1, 2).address(), sender_key(1, 2).address());
        assert_ne!(sender_key(1, 2).address(), sender_key(1, 3).address());
        assert_ne!(sender_key(1, 2).address(), sender_key(2, 2).address());
    }
}
