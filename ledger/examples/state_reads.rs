//! Cost of reading accounts from a large state: `cargo run --release -p cairn-ledger
//! --example state_reads -- ACCOUNTS READS [DIR [BLOCK_CACHE_MIB]]`.
//!
//! Writes ACCOUNTS accounts (keys spread uniformly, as generated genesis accounts are) in
//! bulk, then times READS uniformly drawn reads three ways: one `StateReader::account` at a
//! time straight after the bulk write (compaction still pending), the same after
//! `Store::compact_accounts` (twice: the second pass finds what fits of the first in the
//! block cache), and in blocks of 2,000 through `Store::prefetch_accounts`
//! followed by the same reads (which then hit the cache). Prints µs per read for each. The
//! store is created under DIR (default: a temporary directory; `-` for the default) and
//! removed afterwards; its RocksDB block cache is BLOCK_CACHE_MIB (default 16,
//! `StoreOptions::block_cache_bytes`).

use std::time::Instant;

use cairn_ledger::{Account, Address, Hash, StateReader, Store, StoreOptions};

fn address(i: u64) -> Address {
    Address(*blake3::hash(&i.to_le_bytes()).as_bytes())
}

/// A deterministic draw in 0..n (splitmix64).
fn draw(state: &mut u64, n: u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) % n
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let accounts: u64 = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let reads: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let dir = match args.get(3).filter(|d| *d != "-") {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .expect("temporary directory");
    let mut opts = StoreOptions::default();
    if let Some(mib) = args.get(4) {
        opts.block_cache_bytes = mib.parse::<usize>().expect("BLOCK_CACHE_MIB: a number") << 20;
    }
    println!("block cache: {} MiB", opts.block_cache_bytes >> 20);
    let store = Store::open_with(dir.path(), Hash([7; 32]), &opts).expect("store opens");

    let t = Instant::now();
    let step = 100_000u64;
    let mut from = 0;
    while from < accounts {
        let to = (from + step).min(accounts);
        let chunk: Vec<(Address, Account)> = (from..to)
            .map(|i| {
                (
                    address(i),
                    Account {
                        balance: 1_000_000 + i,
                        nonce: 0,
                    },
                )
            })
            .collect();
        store.put_genesis_accounts(&chunk).expect("bulk write");
        from = to;
    }
    println!(
        "wrote {accounts} accounts in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let timed = |label: &str, seed: u64| {
        let mut s = seed;
        let t = Instant::now();
        let mut sum = 0u64;
        for _ in 0..reads {
            sum = sum.wrapping_add(
                store
                    .account(&address(draw(&mut s, accounts)))
                    .unwrap()
                    .balance,
            );
        }
        let us = t.elapsed().as_secs_f64() * 1e6 / reads as f64;
        println!("{label}: {us:.2} µs per read (checksum {sum})");
    };
    timed("single reads, bulk write uncompacted", 1);
    let t = Instant::now();
    store.compact_accounts();
    println!("compacted in {:.1} s", t.elapsed().as_secs_f64());
    timed("single reads, compacted", 2);
    // The same again: the block cache now holds what the first pass read (as much as fits).
    timed("single reads, compacted, second pass", 4);

    let mut s = 3;
    let t = Instant::now();
    let mut sum = 0u64;
    let mut left = reads;
    while left > 0 {
        let n = left.min(2_000);
        let block: Vec<Address> = (0..n).map(|_| address(draw(&mut s, accounts))).collect();
        store.prefetch_accounts(&block).expect("prefetch");
        for a in &block {
            sum = sum.wrapping_add(store.account(a).unwrap().balance);
        }
        left -= n;
    }
    let us = t.elapsed().as_secs_f64() * 1e6 / reads as f64;
    println!("prefetched blocks of 2,000, compacted: {us:.2} µs per read (checksum {sum})");
    let figures = store.rocksdb_figures().expect("figures");
    println!("{figures:?}");
}
