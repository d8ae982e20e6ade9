//! Measures the admission proof-of-work hash rate on this machine (one core) and prints the
//! expected cost of one identity, `2^D / rate`, for D in 8..=28.
//!
//! `cargo run -p cairn-node --example pow_cost [seconds]` (default 3 s of hashing).

use std::time::Duration;

/// Upper bound on attempts measured, whatever the duration.
const ATTEMPTS_MAX: u64 = 1 << 32;
/// Longest accepted measurement, seconds.
const SECONDS_MAX: u64 = 60;

fn main() {
    let secs = std::env::args()
        .nth(1)
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(3)
        .clamp(1, SECONDS_MAX);
    let rate = cairn_node::admission::measure_rate(Duration::from_secs(secs), ATTEMPTS_MAX);
    println!("hash rate: {rate:.0} attempts/s (one core, {secs} s)");
    println!("| D (bits) | expected attempts | expected time |");
    println!("|---:|---:|---:|");
    for d in 8..=28u32 {
        let attempts = 2f64.powi(d as i32);
        let t = attempts / rate;
        let time = if t < 1.0 {
            format!("{:.1} ms", t * 1000.0)
        } else if t < 120.0 {
            format!("{t:.1} s")
        } else {
            format!("{:.1} min", t / 60.0)
        };
        println!("| {d} | {attempts:.0} | {time} |");
    }
}
