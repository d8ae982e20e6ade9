//! The consensus fault simulator, from the command line (see SIMULATOR.md).
//!
//! ```text
//! cargo run -p cairn-consensus --release --features testing --example sim -- --seeds 5000
//! cargo run -p cairn-consensus --release --features testing --example sim -- --seed 1234 --validators 7 --trace
//! ```

use std::process::ExitCode;

use cairn_consensus::testing::sim::{SimConfig, broken_name, parse_broken, run_many, run_seed};

const USAGE: &str = "\
usage: sim [--seeds N] [--start S] [--seed N] [--validators N] [--threads T]
           [--heights H] [--liveness-heights H] [--liveness-ms MS] [--max-loss PERMILLE]
           [--no-byzantine] [--broken weak-quorum|no-persist|ignore-parent]
           [--stop-on-failure] [--trace] [--verbose]

  --seeds N        run seeds S..S+N (default 1000) and print a summary
  --seed N         run exactly one seed and print its report (add --trace for every event)
  --validators N   validators per run (default 4)
  --threads T      worker threads (default: available parallelism)
  --broken V       run a deliberately broken protocol variant on every node
  --verbose        print one line per seed";

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
            "--no-byzantine" => base.byzantine = false,
            "--broken" => {
                let name = args.next().ok_or("--broken needs a value")?;
                base.broken = Some(parse_broken(&name).ok_or(format!("unknown variant {name}"))?);
            }
            "--stop-on-failure" => stop_on_failure = true,
            "--trace" => base.trace = true,
            "--verbose" => verbose = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(ExitCode::SUCCESS);
            }
            other => return Err(format!("unknown argument {other}")),
        }
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
