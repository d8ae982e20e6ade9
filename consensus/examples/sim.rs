//! The consensus fault simulator, from the command line (see SIMULATOR.md).
//!
//! ```text
//! cargo run -p cairn-consensus --release --features testing --example sim -- --seeds 5000
//! cargo run -p cairn-consensus --release --features testing --example sim -- --seed 1234 --validators 7 --trace
//! cargo run -p cairn-consensus --release --features testing --example sim -- --reconfig --seeds 1000
//! cargo run -p cairn-consensus --release --features testing --example sim -- --reconfig --seed 6 --trace
//! cargo run -p cairn-consensus --release --features testing --example sim -- --wan --json wan.json
//! ```

use std::process::ExitCode;

use cairn_consensus::testing::BrokenVariant;
use cairn_consensus::testing::reconfig::{ReconfigConfig, parse_kind, run_reconfig};
use cairn_consensus::testing::sim::{SimConfig, broken_name, parse_broken, run_many, run_seed};
use cairn_consensus::testing::wan::{
    INTRA_REGION_RTT_MS, Percentiles, REGIONS, RTT_MS, RTT_SOURCE, WanConfig, WanReport, run_wan,
};

const USAGE: &str = "\
usage: sim [--seeds N] [--start S] [--seed N] [--validators N] [--threads T]
           [--heights H] [--liveness-heights H] [--liveness-ms MS] [--max-loss PERMILLE]
           [--no-byzantine] [--broken weak-quorum|no-persist|ignore-parent]
           [--stop-on-failure] [--trace] [--verbose]
       sim --reconfig [--seeds N] [--start S] [--seed N] [--threads T]
           [--kind add|remove|power|rotate|remove-leader|churn] [--no-byzantine]
           [--broken wrong-epoch-cert|early-switch] [--no-proof-check]
           [--stop-on-failure] [--trace] [--verbose]
       sim --wan [--validators N[,N...]] [--heights H] [--seed S] [--jitter MS]
           [--loss PERMILLE] [--validate-ms MS] [--block-interval MS]
           [--threads T] [--json PATH] [--trace]

  --seeds N        run seeds S..S+N (default 1000) and print a summary
  --seed N         run exactly one seed and print its report (add --trace for every event)
  --validators N   validators per run (default 4)
  --threads T      worker threads (default: available parallelism)
  --broken V       run a deliberately broken protocol variant on every node
  --verbose        print one line per seed
  --reconfig       run the reconfiguration (epochs) scenarios instead
  --wan            project finality latency over a wide-area network (docs/scaling.md):
                   for each N (default 4,16,64,128) one run without loss and one with
                   --loss PERMILLE (default 10); prints a table, --json writes the figures";

fn main() -> ExitCode {
    match real_main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn real_main() -> Result<ExitCode, String> {
    let mut args = std::env::args().skip(1);
    let mut base = SimConfig::new(0, 4);
    let mut seeds: u64 = 1000;
    let mut start: u64 = 0;
    let mut single: Option<u64> = None;
    let mut threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut stop_on_failure = false;
    let mut verbose = false;
    let mut reconfig = false;
    let mut rcfg = ReconfigConfig::new(0);
    let mut wan = false;
    let mut wan_sizes: Vec<usize> = vec![4, 16, 64, 128];
    let mut wcfg = WanConfig::new(1, 4);
    let mut wan_loss: u64 = 10;
    let mut json: Option<String> = None;
    let num = |v: Option<String>, flag: &str| -> Result<u64, String> {
        v.ok_or(format!("{flag} needs a value"))?
            .parse::<u64>()
            .map_err(|e| format!("{flag}: {e}"))
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seeds" => seeds = num(args.next(), "--seeds")?,
            "--start" => start = num(args.next(), "--start")?,
            "--seed" => {
                let seed = num(args.next(), "--seed")?;
                single = Some(seed);
                wcfg.seed = seed;
            }
            "--validators" => {
                let v = args.next().ok_or("--validators needs a value")?;
                wan_sizes = v
                    .split(',')
                    .map(|x| x.parse::<usize>().map_err(|e| format!("--validators: {e}")))
                    .collect::<Result<_, _>>()?;
                base.validators = wan_sizes[0];
            }
            "--threads" => threads = num(args.next(), "--threads")? as usize,
            "--heights" => {
                base.min_heights = num(args.next(), "--heights")?;
                wcfg.heights = base.min_heights;
            }
            "--liveness-heights" => base.liveness_heights = num(args.next(), "--liveness-heights")?,
            "--liveness-ms" => base.liveness_bound_ms = num(args.next(), "--liveness-ms")?,
            "--max-loss" => base.max_loss_permille = num(args.next(), "--max-loss")?.min(1000),
            "--no-byzantine" => {
                base.byzantine = false;
                rcfg.byzantine = false;
            }
            "--broken" => {
                let name = args.next().ok_or("--broken needs a value")?;
                let variant = match name.as_str() {
                    "wrong-epoch-cert" => BrokenVariant::AcceptPreviousEpochCertificates,
                    "early-switch" => BrokenVariant::SwitchOnNotarization,
                    other => parse_broken(other).ok_or(format!("unknown variant {name}"))?,
                };
                base.broken = Some(variant);
                rcfg.broken = Some(variant);
            }
            "--reconfig" => reconfig = true,
            "--wan" => wan = true,
            "--jitter" => wcfg.jitter_ms = num(args.next(), "--jitter")?,
            "--loss" => wan_loss = num(args.next(), "--loss")?.min(1000),
            "--validate-ms" => wcfg.validate_ms = num(args.next(), "--validate-ms")?,
            "--block-interval" => wcfg.block_interval_ms = num(args.next(), "--block-interval")?,
            "--json" => json = Some(args.next().ok_or("--json needs a path")?),
            "--kind" => {
                let name = args.next().ok_or("--kind needs a value")?;
                rcfg.kind = Some(parse_kind(&name).ok_or(format!("unknown kind {name}"))?);
            }
            "--no-proof-check" => rcfg.check_proofs = false,
            "--stop-on-failure" => stop_on_failure = true,
            "--trace" => {
                base.trace = true;
                rcfg.trace = true;
                wcfg.trace = true;
            }
            "--verbose" => verbose = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(ExitCode::SUCCESS);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if wan {
        if wan_sizes.contains(&0) {
            return Err("--validators must be at least 1".into());
        }
        return wan_main(wcfg, &wan_sizes, wan_loss, threads, json.as_deref());
    }
    if reconfig {
        return Ok(reconfig_main(
            rcfg,
            single,
            start..start + seeds,
            threads,
            stop_on_failure,
            verbose,
        ));
    }
    if base.validators == 0 {
        return Err("--validators must be at least 1".into());
    }

    if let Some(seed) = single {
        let report = run_seed(&SimConfig { seed, ..base });
        println!("{}", report.one_line());
        println!("scenario: {:#?}", report.scenario);
        println!("stats: {:#?}", report.stats);
        if report.ok() {
            println!("seed {seed}: no violation");
            return Ok(ExitCode::SUCCESS);
        }
        println!("{}", report.failure_message());
        return Ok(ExitCode::FAILURE);
    }

    base.trace = false;
    println!(
        "running seeds {start}..{} with n={} (f={}){} on {threads} threads",
        start + seeds,
        base.validators,
        base.faults_tolerated(),
        base.broken.map_or(String::new(), |b| format!(
            ", broken variant {}",
            broken_name(b)
        )),
    );
    let began = std::time::Instant::now();
    let progress = |r: &cairn_consensus::testing::sim::SeedReport| {
        if verbose || !r.ok() {
            println!("{}", r.one_line());
        }
        if !r.ok() {
            println!("{}", r.failure_message());
        }
    };
    let summary = run_many(
        &base,
        start..start + seeds,
        threads,
        stop_on_failure,
        &progress,
    );
    println!("---");
    print!("{summary}");
    println!("wall time:          {:.1} s", began.elapsed().as_secs_f64());
    Ok(if summary.failed() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `--reconfig`: one seed with its report, or a range with a summary.
fn reconfig_main(
    base: ReconfigConfig,
    single: Option<u64>,
    seeds: std::ops::Range<u64>,
    threads: usize,
    stop_on_failure: bool,
    verbose: bool,
) -> ExitCode {
    if let Some(seed) = single {
        let report = run_reconfig(&ReconfigConfig { seed, ..base });
        println!("{}", report.one_line());
        println!("scenario: {:#?}", report.scenario);
        println!("{}", report.failure_message());
        return if report.ok() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    let base = ReconfigConfig {
        trace: false,
        ..base
    };
    println!(
        "running reconfiguration seeds {}..{} on {threads} threads",
        seeds.start, seeds.end
    );
    let began = std::time::Instant::now();
    let next = std::sync::atomic::AtomicU64::new(seeds.start);
    let stop = std::sync::atomic::AtomicU64::new(u64::MAX);
    let results = std::sync::Mutex::new(std::collections::BTreeMap::new());
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if seed >= seeds.end || seed > stop.load(std::sync::atomic::Ordering::SeqCst) {
                        break;
                    }
                    let r = run_reconfig(&ReconfigConfig {
                        seed,
                        ..base.clone()
                    });
                    if verbose || !r.ok() {
                        println!("{}", r.one_line());
                    }
                    if !r.ok() {
                        println!("{}", r.failure_message());
                        if stop_on_failure {
                            stop.fetch_min(seed, std::sync::atomic::Ordering::SeqCst);
                        }
                    }
                    results.lock().expect("no poisoning").insert(seed, r);
                }
            });
        }
    });
    let results = results.into_inner().expect("no poisoning");
    let failed = results.values().filter(|r| !r.ok()).count();
    let switches: u64 = results.values().map(|r| r.stats.epoch_switches).sum();
    let by_suffix: u64 = results.values().map(|r| r.stats.ended_by_suffix).sum();
    let max_suffix = results
        .values()
        .map(|r| r.stats.max_suffix)
        .max()
        .unwrap_or(0);
    let catch_ups: u64 = results.values().map(|r| r.stats.catch_ups).sum();
    let virtual_s: f64 = results.values().map(|r| r.time_ms as f64 / 1000.0).sum();
    println!("---");
    println!("seeds run:          {}", results.len());
    println!(
        "epoch switches:     {switches} (ended through a suffix block: {by_suffix}, longest suffix {max_suffix}); catch-ups {catch_ups}"
    );
    println!("virtual time:       {virtual_s:.1} s");
    println!("failed seeds:       {failed}");
    println!("wall time:          {:.1} s", began.elapsed().as_secs_f64());
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// One `--wan` run and how long it took.
struct WanRun {
    report: WanReport,
    wall_ms: u128,
}

/// `--wan`: for every size, a run without loss and one with `loss` ‰, on
/// `threads` threads; prints the table and writes `json`.
fn wan_main(
    base: WanConfig,
    sizes: &[usize],
    loss: u64,
    threads: usize,
    json: Option<&str>,
) -> Result<ExitCode, String> {
    let mut configs = Vec::new();
    for &n in sizes {
        for l in [0, loss] {
            configs.push(WanConfig {
                validators: n,
                loss_permille: l,
                ..base.clone()
            });
        }
        if loss == 0 {
            configs.pop();
        }
    }
    let losses = if loss == 0 {
        "no loss".to_string()
    } else {
        format!("loss 0 and {loss}‰")
    };
    println!(
        "wide-area finality: validators {sizes:?}, {} heights, seed {}, jitter 0..={} ms, \
         validation {} ms, block interval {} ms, {losses}, {threads} threads",
        base.heights, base.seed, base.jitter_ms, base.validate_ms, base.block_interval_ms
    );
    let began = std::time::Instant::now();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(std::collections::BTreeMap::new());
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                loop {
                    let k = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some(cfg) = configs.get(k) else { break };
                    let t = std::time::Instant::now();
                    let report = run_wan(cfg);
                    let wall_ms = t.elapsed().as_millis();
                    eprintln!(
                        "  n={} loss={}‰: {} in {:.1} s",
                        cfg.validators,
                        cfg.loss_permille,
                        if report.ok() { "ok" } else { "FAILED" },
                        wall_ms as f64 / 1000.0
                    );
                    results
                        .lock()
                        .expect("no poisoning")
                        .insert(k, WanRun { report, wall_ms });
                }
            });
        }
    });
    let runs: Vec<WanRun> = results
        .into_inner()
        .expect("no poisoning")
        .into_values()
        .collect();
    println!();
    println!(
        "{:>4} {:>3} {:>7} {:>5} | {:>15} | {:>6} {:>15} {:>6} {:>6} | {:>7} {:>4} {:>8} {:>6}",
        "n",
        "q",
        "δ ms",
        "3δ",
        "bound p50/90/99",
        "loss",
        "final p50/90/99",
        "p50 δ",
        "/bound",
        "skipped",
        "impl",
        "KB/v/blk",
        "wall s"
    );
    for r in &runs {
        let w = &r.report;
        println!(
            "{:>4} {:>3} {:>7.1} {:>5.0} | {:>15} | {:>5.1}% {:>15} {:>6.2} {:>6.2} | {:>7} {:>4} {:>8.1} {:>6.1}",
            w.config.validators,
            w.quorum,
            w.median_one_way_ms,
            3.0 * w.median_one_way_ms,
            triple(&w.bound),
            w.config.loss_permille as f64 / 10.0,
            triple(&w.latency),
            w.in_delays(w.latency.p50),
            w.latency.p50 as f64 / w.bound.p50.max(1) as f64,
            w.skipped_views,
            w.implicit,
            w.bytes_per_validator_view() as f64 / 1000.0,
            r.wall_ms as f64 / 1000.0
        );
        if let Some(v) = &w.violation {
            println!("     violation: {v}");
        }
    }
    println!(
        "(δ: median one-way delay between validators; bound: exact good-case finality on the \
         same matrix; final: simulated, from the proposal broadcast to each validator's \
         finalization, ms; skipped: views without a finalized block; impl: samples finalized \
         through a descendant; KB/v/blk: encoded message bytes each validator receives per \
         view)"
    );
    println!("wall time: {:.1} s", began.elapsed().as_secs_f64());
    if let Some(path) = json {
        std::fs::write(path, wan_json(&base, &runs)).map_err(|e| format!("{path}: {e}"))?;
        println!("wrote {path}");
    }
    Ok(if runs.iter().all(|r| r.report.ok()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn triple(p: &Percentiles) -> String {
    format!("{}/{}/{}", p.p50, p.p90, p.p99)
}

/// A JSON string literal.
fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_percentiles(p: &Percentiles) -> String {
    format!(
        "{{\"p50\": {}, \"p90\": {}, \"p99\": {}, \"max\": {}}}",
        p.p50, p.p90, p.p99, p.max
    )
}

/// The figures of a `--wan` projection as JSON (the model, then one object
/// per run; durations in ms).
fn wan_json(base: &WanConfig, runs: &[WanRun]) -> String {
    let regions: Vec<String> = REGIONS.iter().map(|r| json_str(r)).collect();
    let rtt: Vec<String> = RTT_MS
        .iter()
        .map(|row| {
            let cells: Vec<String> = row.iter().map(u64::to_string).collect();
            format!("[{}]", cells.join(", "))
        })
        .collect();
    let mut items = Vec::new();
    for r in runs {
        let w = &r.report;
        let placement: Vec<String> = w.placement.iter().map(usize::to_string).collect();
        items.push(format!(
            concat!(
                "    {{\"validators\": {}, \"loss_permille\": {}, \"quorum\": {}, ",
                "\"placement\": [{}], \"median_one_way_ms\": {:.1}, \"three_delays_ms\": {:.1}, ",
                "\"bound_ms\": {}, \"latency_ms\": {}, \"latency_p50_delays\": {:.2}, ",
                "\"bound_p50_delays\": {:.2}, \"samples\": {}, \"implicit\": {}, ",
                "\"below_bound\": {}, \"min_height\": {}, \"skipped_views\": {}, \"timeouts\": {}, ",
                "\"delivered\": {}, \"delivered_bytes\": {}, \"bytes_per_validator_view\": {}, ",
                "\"lost\": {}, \"virtual_ms\": {}, \"wall_ms\": {}, ",
                "\"event_hash\": \"{}\", \"ok\": {}, \"violation\": {}}}"
            ),
            w.config.validators,
            w.config.loss_permille,
            w.quorum,
            placement.join(", "),
            w.median_one_way_ms,
            3.0 * w.median_one_way_ms,
            json_percentiles(&w.bound),
            json_percentiles(&w.latency),
            w.in_delays(w.latency.p50),
            w.in_delays(w.bound.p50),
            w.samples.len(),
            w.implicit,
            w.below_bound,
            w.min_height,
            w.skipped_views,
            w.timeouts,
            w.delivered,
            w.delivered_bytes,
            w.bytes_per_validator_view(),
            w.lost,
            w.time_ms,
            r.wall_ms,
            hex_short(&w.event_hash),
            w.ok(),
            w.violation.as_deref().map_or("null".to_string(), json_str),
        ));
    }
    format!(
        concat!(
            "{{\n  \"model\": {{\"source\": {}, \"regions\": [{}], \"rtt_ms\": [{}], ",
            "\"intra_region_rtt_ms\": {}, \"one_way\": \"(rtt[a][b] + rtt[b][a] + 2) / 4\", ",
            "\"placement\": \"validator i in region i mod {}\", \"jitter_ms\": {}, ",
            "\"validate_ms\": {}, \"block_interval_ms\": {}, \"heights\": {}, \"seed\": {}, ",
            "\"bandwidth\": \"not modelled\"}},\n  \"runs\": [\n{}\n  ]\n}}\n"
        ),
        json_str(RTT_SOURCE),
        regions.join(", "),
        rtt.join(", "),
        INTRA_REGION_RTT_MS,
        REGIONS.len(),
        base.jitter_ms,
        base.validate_ms,
        base.block_interval_ms,
        base.heights,
        base.seed,
        items.join(",\n"),
    )
}

fn hex_short(h: &[u8; 32]) -> String {
    h[..8].iter().map(|b| format!("{b:02x}")).collect()
}
