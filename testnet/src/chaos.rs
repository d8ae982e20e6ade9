//! Fault injection on a Docker testnet (`cairn-testnet chaos DIR`) while a bounded transfer
//! load ([`crate::load`]) runs, then the invariant checker ([`crate::check`]).
//!
//! ## Perturbations
//!
//! | name | applied with | healed with |
//! |---|---|---|
//! | `kill` | `docker kill --signal KILL` (a crash; the restart policy does not apply to `docker kill`) | `docker start` |
//! | `pause` | `docker pause` (cgroup freezer: the process stops, its sockets stay) | `docker unpause` |
//! | `disconnect` | `docker network disconnect` from both networks | `docker network connect --ip` (same addresses) |
//! | `partition` | the listed nodes form one side, all others the other: the listed ones are detached from `main`, the others from `side` | reattached with their addresses |
//! | `wipe` | `docker rm -f`, `docker volume rm` of its data volume | `compose up -d --no-deps` (fresh volume; the node resyncs from genesis) |
//!
//! A partition needs no shell or iptables in the containers (the image has neither): every
//! node sits on two bridge networks and bootstraps to every peer's address on both (see
//! [`crate::docker`]). Detaching side A from `side` and side B from `main` leaves each side one
//! network of its own; Docker does not route between bridge networks, `side` is internal.
//!
//! ## Schedules
//!
//! Explicit, one `--fault KIND:TARGETS@AT+DURATION` each, e.g. `kill:validator-1@5s+8s`,
//! `partition:validator-2,validator-3@30s+10s` (targets are node names or indices). Or
//! random from a seed ([`random_schedule`]): one fault at a time, a random kind among those
//! enabled, random targets (a partition splits the validators into two non-empty groups, the
//! full nodes join either side), random duration and gap. Faults run one after another in
//! start order; a fault whose start has passed starts when the previous one is healed.
//!
//! After the schedule and the load, every container is restored ([`restore_all`]: started,
//! unpaused, attached to both networks) whatever happened, then the checker runs.

use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use tokio::sync::watch;

use crate::Manifest;
use crate::check::{CheckOptions, CheckReport};
use crate::docker::{Compose, DockerManifest, container_state, docker, docker_manifest};
use crate::load::{LoadConfig, LoadReport};

/// Report file written in the testnet directory.
pub const REPORT_FILE: &str = "chaos-report.json";
/// Longest chaos run.
pub const DURATION_MAX: Duration = Duration::from_secs(7 * 24 * 3600);

/// Parses `500ms`, `10s`, `5m`, `1h30m`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let s = s.trim();
    if let Ok(n) = s.parse::<f64>() {
        if !(n.is_finite() && n >= 0.0) {
            bail!("bad duration `{s}`");
        }
        return Ok(Duration::from_secs_f64(n));
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    if rest.is_empty() {
        bail!("empty duration");
    }
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| anyhow!("duration `{s}` lacks a unit (ms, s, m, h)"))?;
        if num_end == 0 {
            bail!("bad duration `{s}`");
        }
        let n: f64 = rest[..num_end]
            .parse()
            .with_context(|| format!("duration `{s}`"))?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_end];
        rest = &rest[unit_end..];
        let secs = match unit {
            "ms" => n / 1000.0,
            "s" => n,
            "m" | "min" => n * 60.0,
            "h" => n * 3600.0,
            _ => bail!("duration `{s}`: unknown unit `{unit}` (ms, s, m, h)"),
        };
        total += Duration::from_secs_f64(secs);
    }
    Ok(total)
}

fn fmt_dur(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 60.0 {
        format!("{}m{:02}s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else {
        format!("{s:.1}s")
    }
}

/// A named perturbation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FaultKind {
    /// SIGKILL the container, start it again after the duration.
    Kill,
    /// Freeze the container, thaw it after the duration.
    Pause,
    /// Detach the container from both networks, reattach after the duration.
    Disconnect,
    /// Split the nodes into the targets and the rest.
    Partition,
    /// Remove the container and its data volume; recreate it after the duration.
    Wipe,
}

impl FaultKind {
    /// Every kind.
    pub const ALL: [FaultKind; 5] = [
        FaultKind::Kill,
        FaultKind::Pause,
        FaultKind::Disconnect,
        FaultKind::Partition,
        FaultKind::Wipe,
    ];

    /// The name used on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Pause => "pause",
            FaultKind::Disconnect => "disconnect",
            FaultKind::Partition => "partition",
            FaultKind::Wipe => "wipe",
        }
    }
}

impl FromStr for FaultKind {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<FaultKind> {
        FaultKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                anyhow!("unknown fault `{s}` (kill, pause, disconnect, partition, wipe)")
            })
    }
}

/// One scheduled fault.
#[derive(Clone, Debug, Serialize)]
pub struct Fault {
    /// What.
    pub kind: FaultKind,
    /// Node names or indices (for a partition: one side).
    pub targets: Vec<String>,
    /// Start, from the beginning of the run.
    #[serde(serialize_with = "ser_secs")]
    pub at: Duration,
    /// How long it lasts before it is healed.
    #[serde(serialize_with = "ser_secs")]
    pub duration: Duration,
}

fn ser_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl FromStr for Fault {
    type Err = anyhow::Error;
    /// `KIND:TARGET[,TARGET…][@AT][+DURATION]`; AT defaults to 0, DURATION to 10s.
    fn from_str(s: &str) -> Result<Fault> {
        let (kind, rest) = s
            .split_once(':')
            .ok_or_else(|| anyhow!("fault `{s}` must look like kill:validator-1@5s+8s"))?;
        let kind: FaultKind = kind.trim().parse()?;
        let (rest, duration) = match rest.split_once('+') {
            Some((r, d)) => (r, parse_duration(d)?),
            None => (rest, Duration::from_secs(10)),
        };
        let (targets, at) = match rest.split_once('@') {
            Some((t, a)) => (t, parse_duration(a)?),
            None => (rest, Duration::ZERO),
        };
        let targets: Vec<String> = targets
            .split(',')
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect();
        if targets.is_empty() {
            bail!("fault `{s}` names no target");
        }
        if duration.is_zero() {
            bail!("fault `{s}`: duration must be positive");
        }
        Ok(Fault {
            kind,
            targets,
            at,
            duration,
        })
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}@{}+{}",
            self.kind.name(),
            self.targets.join(","),
            fmt_dur(self.at),
            fmt_dur(self.duration)
        )
    }
}

/// A random plan.
#[derive(Clone, Debug)]
pub struct RandomPlan {
    /// Seed (the same seed and testnet give the same schedule).
    pub seed: u64,
    /// Kinds to draw from.
    pub kinds: Vec<FaultKind>,
    /// Fault duration range.
    pub fault_min: Duration,
    /// Fault duration range.
    pub fault_max: Duration,
    /// Quiet time between faults.
    pub gap_min: Duration,
    /// Quiet time between faults.
    pub gap_max: Duration,
}

impl Default for RandomPlan {
    fn default() -> Self {
        RandomPlan {
            seed: 1,
            kinds: FaultKind::ALL.to_vec(),
            fault_min: Duration::from_secs(5),
            fault_max: Duration::from_secs(20),
            gap_min: Duration::from_secs(10),
            gap_max: Duration::from_secs(30),
        }
    }
}

fn rand_dur(rng: &mut ChaCha8Rng, lo: Duration, hi: Duration) -> Duration {
    if hi <= lo {
        lo
    } else {
        Duration::from_millis(rng.gen_range(lo.as_millis() as u64..=hi.as_millis() as u64))
    }
}

/// One fault at a time from `plan.seed`, every fault healed before `total` ends.
pub fn random_schedule(m: &Manifest, plan: &RandomPlan, total: Duration) -> Result<Vec<Fault>> {
    if plan.kinds.is_empty() {
        bail!("no fault kinds enabled");
    }
    let validators: Vec<String> = m.validators().map(|n| n.name.clone()).collect();
    let full: Vec<String> = m
        .nodes
        .iter()
        .filter(|n| n.full_node)
        .map(|n| n.name.clone())
        .collect();
    let kinds: Vec<FaultKind> = plan
        .kinds
        .iter()
        .copied()
        .filter(|k| *k != FaultKind::Partition || m.nodes.len() >= 2)
        .collect();
    if kinds.is_empty() {
        bail!("a partition needs at least two nodes");
    }
    let all: Vec<String> = m.nodes.iter().map(|n| n.name.clone()).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(plan.seed);
    let mut t = rand_dur(&mut rng, plan.gap_min, plan.gap_max);
    let mut out = Vec::new();
    while out.len() < 100_000 {
        let kind = kinds[rng.gen_range(0..kinds.len())];
        let duration = rand_dur(&mut rng, plan.fault_min, plan.fault_max);
        if t + duration > total {
            break;
        }
        let targets = if kind == FaultKind::Partition {
            let mut v = validators.clone();
            v.shuffle(&mut rng);
            let split = if v.len() >= 2 {
                rng.gen_range(1..v.len())
            } else {
                1
            };
            let mut side: Vec<String> = v[..split.min(v.len())].to_vec();
            for f in &full {
                if rng.gen_bool(0.5) {
                    side.push(f.clone());
                }
            }
            if side.len() == all.len() {
                side.pop();
            }
            side
        } else {
            vec![all[rng.gen_range(0..all.len())].clone()]
        };
        out.push(Fault {
            kind,
            targets,
            at: t,
            duration,
        });
        t += duration + rand_dur(&mut rng, plan.gap_min, plan.gap_max);
    }
    Ok(out)
}

/// What the run does.
#[derive(Clone, Debug)]
pub struct ChaosOptions {
    /// The schedule.
    pub faults: Vec<Fault>,
    /// Whole run (faults must be healed by then; the load's submission bound).
    pub duration: Duration,
    /// The load, if any.
    pub load: Option<LoadConfig>,
    /// The check afterwards, if any.
    pub check: Option<CheckOptions>,
    /// How long to wait for the testnet to be ready first.
    pub ready_wait: Duration,
}

/// One fault as it happened.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultRecord {
    /// The fault.
    pub fault: String,
    /// Started, seconds from the beginning of the run.
    pub started_s: f64,
    /// Healed, seconds from the beginning.
    pub healed_s: Option<f64>,
    /// Errors applying or healing it.
    pub errors: Vec<String>,
}

/// The run's report (also written to `DIR/chaos-report.json`).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChaosReport {
    /// The schedule.
    pub schedule: Vec<Fault>,
    /// What happened.
    pub faults: Vec<FaultRecord>,
    /// The load.
    pub load: Option<LoadReport>,
    /// Nodes restored afterwards, and how.
    pub restored: Vec<String>,
    /// The check.
    pub check: Option<CheckReport>,
    /// Whole run, ms.
    pub elapsed_ms: u64,
    /// Interrupted by Ctrl-C.
    pub interrupted: bool,
    /// Faults applied and healed without error, load without loss, check without violation.
    pub ok: bool,
}

impl ChaosReport {
    /// Text summary.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!(
            "chaos: {} faults in {}\n",
            self.faults.len(),
            fmt_dur(Duration::from_millis(self.elapsed_ms))
        ));
        for f in &self.faults {
            s.push_str(&format!(
                "  {:>8.1}s .. {:>8}  {}{}\n",
                f.started_s,
                f.healed_s
                    .map(|h| format!("{h:.1}s"))
                    .unwrap_or_else(|| "-".into()),
                f.fault,
                if f.errors.is_empty() {
                    String::new()
                } else {
                    format!("  ERRORS: {}", f.errors.join("; "))
                }
            ));
        }
        if !self.restored.is_empty() {
            s.push_str(&format!(
                "restored afterwards: {}\n",
                self.restored.join(", ")
            ));
        }
        if let Some(l) = &self.load {
            s.push_str(&l.summary());
            s.push('\n');
        }
        if let Some(c) = &self.check {
            s.push_str(&c.summary());
        }
        s.push_str(if self.ok {
            "chaos: OK\n"
        } else if self.interrupted {
            "chaos: INTERRUPTED (containers restored, check skipped: run `cairn-testnet check DIR`)\n"
        } else {
            "chaos: FAILED\n"
        });
        s
    }
}

/// Docker names of the two networks (by Compose labels, else `<project>_main` / `_side`).
pub async fn networks(dm: &DockerManifest) -> (String, String) {
    let mut out = Vec::new();
    for (net, fallback) in [("main", dm.main_network()), ("side", dm.side_network())] {
        let f1 = format!("label=com.docker.compose.project={}", dm.project);
        let f2 = format!("label=com.docker.compose.network={net}");
        let name = docker(&[
            "network",
            "ls",
            "--filter",
            &f1,
            "--filter",
            &f2,
            "--format",
            "{{.Name}}",
        ])
        .await
        .ok()
        .and_then(|s| s.lines().next().map(str::to_string));
        out.push(name.filter(|n| !n.is_empty()).unwrap_or(fallback));
    }
    (out[0].clone(), out[1].clone())
}

struct Ctx<'a> {
    m: &'a Manifest,
    dm: &'a DockerManifest,
    compose: Compose,
    main_net: String,
    side_net: String,
}

fn benign(e: &anyhow::Error) -> bool {
    let t = format!("{e:#}");
    t.contains("already exists")
        || t.contains("is not paused")
        || t.contains("is not connected")
        || t.contains("already connected")
}

impl Ctx<'_> {
    async fn connect(&self, k: usize, main: bool) -> Result<()> {
        let (net, ip) = if main {
            (&self.main_net, self.dm.nodes[k].main_ip)
        } else {
            (&self.side_net, self.dm.nodes[k].side_ip)
        };
        match docker(&[
            "network",
            "connect",
            "--ip",
            &ip.to_string(),
            net,
            &self.dm.nodes[k].container,
        ])
        .await
        {
            Err(e) if !benign(&e) => Err(e),
            _ => Ok(()),
        }
    }

    async fn disconnect(&self, k: usize, main: bool) -> Result<()> {
        let net = if main { &self.main_net } else { &self.side_net };
        match docker(&[
            "network",
            "disconnect",
            "--force",
            net,
            &self.dm.nodes[k].container,
        ])
        .await
        {
            Err(e) if !benign(&e) => Err(e),
            _ => Ok(()),
        }
    }

    async fn apply(&self, kind: FaultKind, targets: &[usize]) -> Vec<String> {
        let mut errs = Vec::new();
        let others: Vec<usize> = (0..self.m.nodes.len())
            .filter(|k| !targets.contains(k))
            .collect();
        for &k in targets {
            let c = &self.dm.nodes[k].container;
            let r = match kind {
                FaultKind::Kill => docker(&["kill", "--signal", "KILL", c]).await.map(drop),
                FaultKind::Pause => docker(&["pause", c]).await.map(drop),
                FaultKind::Disconnect => match self.disconnect(k, true).await {
                    Ok(()) => self.disconnect(k, false).await,
                    e => e,
                },
                FaultKind::Partition => self.disconnect(k, true).await,
                FaultKind::Wipe => match docker(&["rm", "--force", c]).await {
                    Ok(_) => docker(&["volume", "rm", &self.dm.nodes[k].volume])
                        .await
                        .map(drop),
                    Err(e) => Err(e),
                },
            };
            if let Err(e) = r {
                errs.push(format!("{}: {e:#}", self.m.nodes[k].name));
            }
        }
        if kind == FaultKind::Partition {
            for k in others {
                if let Err(e) = self.disconnect(k, false).await {
                    errs.push(format!("{}: {e:#}", self.m.nodes[k].name));
                }
            }
        }
        errs
    }

    async fn heal(&self, kind: FaultKind, targets: &[usize]) -> Vec<String> {
        let mut errs = Vec::new();
        let others: Vec<usize> = (0..self.m.nodes.len())
            .filter(|k| !targets.contains(k))
            .collect();
        for &k in targets {
            let c = &self.dm.nodes[k].container;
            let r = match kind {
                FaultKind::Kill => docker(&["start", c]).await.map(drop),
                FaultKind::Pause => match docker(&["unpause", c]).await {
                    Err(e) if !benign(&e) => Err(e),
                    _ => Ok(()),
                },
                FaultKind::Disconnect => match self.connect(k, true).await {
                    Ok(()) => self.connect(k, false).await,
                    e => e,
                },
                FaultKind::Partition => self.connect(k, true).await,
                FaultKind::Wipe => self
                    .compose
                    .run(
                        &["up", "-d", "--no-deps", &self.dm.nodes[k].service],
                        Duration::from_secs(180),
                    )
                    .await
                    .map(drop),
            };
            if let Err(e) = r {
                errs.push(format!("{}: {e:#}", self.m.nodes[k].name));
            }
        }
        if kind == FaultKind::Partition {
            for k in others {
                if let Err(e) = self.connect(k, false).await {
                    errs.push(format!("{}: {e:#}", self.m.nodes[k].name));
                }
            }
        }
        errs
    }
}

/// Brings every container back: recreated if missing, started if stopped, unpaused if paused,
/// attached to both networks with its addresses. Returns what it did.
pub async fn restore_all(dir: &Path, m: &Manifest) -> Result<Vec<String>> {
    let dm = docker_manifest(m)?;
    let (main_net, side_net) = networks(dm).await;
    let ctx = Ctx {
        m,
        dm,
        compose: Compose::detect(dir, dm).await?,
        main_net,
        side_net,
    };
    restore(&ctx).await
}

async fn restore(ctx: &Ctx<'_>) -> Result<Vec<String>> {
    let mut did = Vec::new();
    for (k, d) in ctx.dm.nodes.iter().enumerate() {
        let name = &ctx.m.nodes[k].name;
        let (state, _) = container_state(&d.container).await;
        match state.as_str() {
            "missing" => {
                ctx.compose
                    .run(
                        &["up", "-d", "--no-deps", &d.service],
                        Duration::from_secs(180),
                    )
                    .await?;
                did.push(format!("{name}: recreated"));
                continue;
            }
            "paused" => {
                docker(&["unpause", &d.container]).await?;
                did.push(format!("{name}: unpaused"));
            }
            "running" => {}
            _ => {
                docker(&["start", &d.container]).await?;
                did.push(format!("{name}: started ({state})"));
            }
        }
        let nets = docker(&[
            "inspect",
            "--format",
            "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
            &d.container,
        ])
        .await?;
        let nets: Vec<&str> = nets.split_whitespace().collect();
        if !nets.contains(&ctx.main_net.as_str()) {
            ctx.connect(k, true).await?;
            did.push(format!("{name}: reattached to {}", ctx.main_net));
        }
        if !nets.contains(&ctx.side_net.as_str()) {
            ctx.connect(k, false).await?;
            did.push(format!("{name}: reattached to {}", ctx.side_net));
        }
    }
    Ok(did)
}

fn resolve(m: &Manifest, f: &Fault) -> Result<Vec<usize>> {
    let mut v = Vec::new();
    for t in &f.targets {
        let k = m.node_index(t).ok_or_else(|| {
            anyhow!(
                "fault {f}: no node `{t}` (nodes: {})",
                m.nodes
                    .iter()
                    .map(|n| n.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
        if !v.contains(&k) {
            v.push(k);
        }
    }
    if f.kind == FaultKind::Partition && v.len() >= m.nodes.len() {
        bail!(
            "fault {f}: a partition's listed side must leave at least one node on the other side"
        );
    }
    Ok(v)
}

/// Sleeps `d` unless `stop` turns true first; returns false if stopped.
async fn sleep_or_stop(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    if *stop.borrow() {
        return false;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = stop.wait_for(|v| *v) => false,
    }
}

/// Runs the schedule and the load together, restores every container, then checks.
/// `stop` (Ctrl-C) ends the schedule and the load early; containers are still restored.
pub async fn run(
    dir: &Path,
    m: &Manifest,
    opts: &ChaosOptions,
    stop: watch::Receiver<bool>,
) -> Result<ChaosReport> {
    let dm = docker_manifest(m)?;
    if opts.duration > DURATION_MAX {
        bail!("duration is limited to {}", fmt_dur(DURATION_MAX));
    }
    let mut schedule = opts.faults.clone();
    schedule.sort_by_key(|f| f.at);
    let resolved: Vec<Vec<usize>> = schedule
        .iter()
        .map(|f| resolve(m, f))
        .collect::<Result<_>>()?;
    for f in &schedule {
        if f.at + f.duration > opts.duration {
            bail!(
                "fault {f} ends after the run's duration {}",
                fmt_dur(opts.duration)
            );
        }
    }
    let (main_net, side_net) = networks(dm).await;
    let ctx = Ctx {
        m,
        dm,
        compose: Compose::detect(dir, dm).await?,
        main_net,
        side_net,
    };
    eprintln!(
        "waiting for every node to answer (up to {})…",
        fmt_dur(opts.ready_wait)
    );
    crate::docker::wait_ready(m, opts.ready_wait)
        .await
        .context("the testnet is not ready; `cairn-testnet up` it first")?;
    eprintln!(
        "schedule ({} faults over {}):",
        schedule.len(),
        fmt_dur(opts.duration)
    );
    for f in &schedule {
        eprintln!("  {f}");
    }

    let start = Instant::now();
    let load_fut = async {
        match &opts.load {
            Some(cfg) => {
                let mut cfg = cfg.clone();
                cfg.duration_max = cfg.duration_max.min(opts.duration);
                Some(crate::load::run(m, &cfg, stop.clone()).await)
            }
            None => None,
        }
    };
    let faults_fut = async {
        let mut stop = stop.clone();
        let mut records = Vec::new();
        for (f, targets) in schedule.iter().zip(&resolved) {
            let wait = (start + f.at).saturating_duration_since(Instant::now());
            if !sleep_or_stop(wait, &mut stop).await {
                break;
            }
            let t0 = start.elapsed().as_secs_f64();
            eprintln!("[{t0:>7.1}s] apply {f}");
            let mut errors = ctx.apply(f.kind, targets).await;
            for e in &errors {
                eprintln!("[{:>7.1}s]   error: {e}", start.elapsed().as_secs_f64());
            }
            sleep_or_stop(f.duration, &mut stop).await;
            let heal_errors = ctx.heal(f.kind, targets).await;
            let t1 = start.elapsed().as_secs_f64();
            eprintln!(
                "[{t1:>7.1}s] healed {} {}",
                f.kind.name(),
                f.targets.join(",")
            );
            for e in &heal_errors {
                eprintln!("[{t1:>7.1}s]   error: {e}");
            }
            errors.extend(heal_errors);
            records.push(FaultRecord {
                fault: f.to_string(),
                started_s: t0,
                healed_s: Some(t1),
                errors,
            });
        }
        records
    };
    let (load, records) = tokio::join!(load_fut, faults_fut);
    let load = load.transpose()?;
    let interrupted = *stop.borrow();
    eprintln!(
        "[{:>7.1}s] restoring every container…",
        start.elapsed().as_secs_f64()
    );
    let restored = restore(&ctx).await.context("restoring the containers")?;
    let check = match &opts.check {
        Some(c) if !interrupted => {
            eprintln!(
                "[{:>7.1}s] checking invariants (waiting up to {} for recovery)…",
                start.elapsed().as_secs_f64(),
                fmt_dur(c.wait)
            );
            Some(crate::check::check(dir, m, c).await?)
        }
        _ => None,
    };
    let ok = !interrupted
        && records.iter().all(|r| r.errors.is_empty())
        && load
            .as_ref()
            .is_none_or(|l| l.acked_unfinalized_count == 0 && !l.interrupted)
        && check.as_ref().is_none_or(|c| c.ok);
    let report = ChaosReport {
        schedule,
        faults: records,
        load,
        restored,
        check,
        elapsed_ms: start.elapsed().as_millis() as u64,
        interrupted,
        ok,
    };
    let p = dir.join(REPORT_FILE);
    std::fs::write(&p, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("writing {}", p.display()))?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("12").unwrap(), Duration::from_secs(12));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn random_schedule_is_seeded_sequential_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let opts = crate::GenerateOptions {
            validators: 4,
            full_nodes: 1,
            accounts: 1,
            out: dir.path().join("net"),
            ..crate::GenerateOptions::default()
        };
        let m = crate::generate(&opts).unwrap();
        let total = Duration::from_secs(1800);
        let plan = RandomPlan {
            seed: 42,
            ..RandomPlan::default()
        };
        let a = random_schedule(&m, &plan, total).unwrap();
        let b = random_schedule(&m, &plan, total).unwrap();
        assert_eq!(
            a.iter().map(Fault::to_string).collect::<Vec<_>>(),
            b.iter().map(Fault::to_string).collect::<Vec<_>>()
        );
        assert!(a.len() >= 30, "{} faults in 30 minutes", a.len());
        let mut end = Duration::ZERO;
        for f in &a {
            assert!(f.at >= end, "{f} overlaps the previous fault");
            end = f.at + f.duration;
            assert!(end <= total);
            let targets = resolve(&m, f).unwrap();
            assert!(!targets.is_empty());
            if f.kind == FaultKind::Partition {
                assert!(targets.len() < m.nodes.len());
                let listed = targets.iter().filter(|&&k| !m.nodes[k].full_node).count();
                assert!(
                    (1..4).contains(&listed),
                    "{f}: the validators must be split"
                );
            }
        }
        for k in FaultKind::ALL {
            assert!(a.iter().any(|f| f.kind == k), "no {k:?} in 30 minutes");
        }
        let other = random_schedule(
            &m,
            &RandomPlan {
                seed: 43,
                ..RandomPlan::default()
            },
            total,
        )
        .unwrap();
        assert_ne!(
            a.iter().map(Fault::to_string).collect::<Vec<_>>(),
            other.iter().map(Fault::to_string).collect::<Vec<_>>()
        );
    }

    #[test]
    fn faults_parse() {
        let f: Fault = "partition:validator-2,validator-3@30s+10s".parse().unwrap();
        assert_eq!(f.kind, FaultKind::Partition);
        assert_eq!(f.targets, vec!["validator-2", "validator-3"]);
        assert_eq!(
            (f.at, f.duration),
            (Duration::from_secs(30), Duration::from_secs(10))
        );
        let f: Fault = "kill:1".parse().unwrap();
        assert_eq!(
            (f.at, f.duration),
            (Duration::ZERO, Duration::from_secs(10))
        );
        assert!("explode:validator-1@1s+1s".parse::<Fault>().is_err());
        assert!("kill:@1s".parse::<Fault>().is_err());
    }
}
