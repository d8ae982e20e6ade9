//! The consensus fault simulator, from the command line (see SIMULATOR.md).
//!
//! ```text
//! cargo run -p cairn-consensus --release --features testing --example sim -- --seeds 5000
//! cargo run -p cairn-consensus --release --features testing --example sim -- --seed 1234 --validators 7 --trace
//! cargo run -p cairn-consensus --release --features testing --example sim -- --reconfig --seeds 1000
//! cargo run -p cairn-consensus --release --features testing --example sim -- --reconfig --seed 6 --trace
//! ```

use std::process::ExitCode;

use cairn_consensus::testing::BrokenVariant;
use cairn_consensus::testing::reconfig::{ReconfigConfig, parse_kind, run_reconfig};
use cairn_consensus::testing::sim::{SimConfig, broken_name, parse_broken, run_many, run_seed};

const USAGE: &str = "\
usage: sim [--seeds N] [--start S] [--seed N] [--validators N] [--threads T]
           [--heights H] [--liveness-heights H] [--liveness-ms MS] [--max-loss PERMILLE]
           [--no-byzantine] [--broken weak-quorum|no-persist|ignore-parent]
           [--stop-on-failure] [--trace] [--verbose]
       sim --reconfig [--seeds N] [--start S] [--seed N] [--threads T]
           [--kind add|remove|power|rotate|remove-leader|churn] [--no-byzantine]
           [--broken wrong-epoch-cert|early-switch] [--no-proof-check]
           [--stop-on-failure] [--trace] [--verbose]

  --seeds N        run seeds S..S+N (default 1000) and print a summary
  --seed N         run exactly one seed and print its report (add --trace for every event)
  --validators N   validators per run (default 4)
  --threads T      worker threads (default: available parallelism)
  --broken V       run a deliberately broken protocol variant on every node
  --verbose        print one line per seed
  --reconfig       run the reconfiguration (epochs) scenarios instead";

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
    let num = |v: Option<String>, flag: &str| -> Result<u64, String> {
        v.ok_or(format!("{flag} needs a value"))?
            .parse::<u64>()
            .map_err(|e| format!("{flag}: {e}"))
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seeds" => seeds = num(args.next(), "--seeds")?,
            "--start" => start = num(args.next(), "--start")?,
            "--seed" => single = Some(num(args.next(), "--seed")?),
            "--validators" => base.validators = num(args.next(), "--validators")? as usize,
            "--threads" => threads = num(args.next(), "--threads")? as usize,
            "--heights" => base.min_heights = num(args.next(), "--heights")?,
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
            "--kind" => {
                let name = args.next().ok_or("--kind needs a value")?;
                rcfg.kind = Some(parse_kind(&name).ok_or(format!("unknown kind {name}"))?);
            }
            "--no-proof-check" => rcfg.check_proofs = false,
            "--stop-on-failure" => stop_on_failure = true,
            "--trace" => {
                base.trace = true;
                rcfg.trace = true;
            }
            "--verbose" => verbose = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(ExitCode::SUCCESS);
            }
            other => return Err(format!("unknown argument {other}")),
        }
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
