//! Which accounts the load generator uses: draws from a genesis's generated accounts
//! (`--distribution uniform|zipf[:S]`, [`Distribution`]).
//!
//! - `uniform`: every account index in `0..count` equally likely.
//! - `zipf:S`: index `k - 1` with probability proportional to `k^-S` (`k` in `1..=count`,
//!   `S` in [`ZIPF_EXPONENT_MIN`]..=[`ZIPF_EXPONENT_MAX`], default 1.0): a few hot accounts
//!   and a long tail, as real payment traffic has. Drawn by rejection-inversion (Hörmann and
//!   Derflinger, "Rejection-inversion to generate variates from monotone discrete
//!   distributions", ACM TOMACS 6(3), 1996; the form Apache Commons RNG uses): O(1) time and
//!   memory per draw whatever `count` is, so 20,000,000 accounts need no table.
//!
//! Draws come from a ChaCha8 generator seeded by the run's seed, so a run is reproducible.

use std::fmt;
use std::str::FromStr;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Smallest Zipf exponent accepted.
pub const ZIPF_EXPONENT_MIN: f64 = 0.01;
/// Largest Zipf exponent accepted.
pub const ZIPF_EXPONENT_MAX: f64 = 5.0;

/// How senders and recipients are drawn from the account space.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Distribution {
    /// Every account equally likely.
    Uniform,
    /// Zipf with this exponent (rank 1 = account 0).
    Zipf(f64),
}

impl fmt::Display for Distribution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Distribution::Uniform => write!(f, "uniform"),
            Distribution::Zipf(s) => write!(f, "zipf:{s}"),
        }
    }
}

impl FromStr for Distribution {
    type Err = String;

    /// `uniform`, `zipf` (exponent 1.0) or `zipf:S`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "uniform" => Ok(Distribution::Uniform),
            "zipf" => Ok(Distribution::Zipf(1.0)),
            _ => {
                let Some(e) = s.strip_prefix("zipf:") else {
                    return Err(format!("`{s}`: expected uniform, zipf or zipf:S"));
                };
                let e: f64 = e.parse().map_err(|_| format!("`{s}`: bad exponent"))?;
                if !(ZIPF_EXPONENT_MIN..=ZIPF_EXPONENT_MAX).contains(&e) {
                    return Err(format!(
                        "`{s}`: exponent must be in {ZIPF_EXPONENT_MIN}..={ZIPF_EXPONENT_MAX}"
                    ));
                }
                Ok(Distribution::Zipf(e))
            }
        }
    }
}

/// Draws account indices in `0..count` by a [`Distribution`].
pub struct AccountSampler {
    count: u64,
    rng: ChaCha8Rng,
    zipf: Option<Zipf>,
}

impl AccountSampler {
    /// A sampler over `count` (≥ 1) accounts, seeded by `seed`.
    ///
    /// # Panics
    /// If `count` is 0 or a Zipf exponent is outside its range (the parser refuses both).
    pub fn new(distribution: Distribution, count: u64, seed: u64) -> AccountSampler {
        assert!(count >= 1, "an account space of at least 1");
        let zipf = match distribution {
            Distribution::Uniform => None,
            Distribution::Zipf(s) => {
                assert!((ZIPF_EXPONENT_MIN..=ZIPF_EXPONENT_MAX).contains(&s));
                Some(Zipf::new(count as f64, s))
            }
        };
        AccountSampler {
            count,
            rng: ChaCha8Rng::seed_from_u64(seed),
            zipf,
        }
    }

    /// One account index.
    pub fn next_index(&mut self) -> u64 {
        match &self.zipf {
            None => self.rng.gen_range(0..self.count),
            Some(z) => z.sample(&mut self.rng) - 1,
        }
    }

    /// A (sender, recipient) pair of distinct indices (needs `count` ≥ 2; with 1 account
    /// both are 0).
    pub fn next_pair(&mut self) -> (u64, u64) {
        let sender = self.next_index();
        if self.count < 2 {
            return (sender, sender);
        }
        // Bounded: with a hot account the recipient may collide a few times; after that a
        // neighbour is taken.
        for _ in 0..64 {
            let r = self.next_index();
            if r != sender {
                return (sender, r);
            }
        }
        (sender, (sender + 1) % self.count)
    }
}

/// Rejection-inversion Zipf sampler over ranks `1..=n` with exponent `s`.
struct Zipf {
    n: f64,
    s: f64,
    h_integral_x1: f64,
    h_integral_n: f64,
    s_val: f64,
}

impl Zipf {
    fn new(n: f64, s: f64) -> Zipf {
        let mut z = Zipf {
            n,
            s,
            h_integral_x1: 0.0,
            h_integral_n: 0.0,
            s_val: 0.0,
        };
        z.h_integral_x1 = z.h_integral(1.5) - 1.0;
        z.h_integral_n = z.h_integral(n + 0.5);
        z.s_val = 2.0 - z.h_integral_inverse(z.h_integral(2.5) - z.h(2.0));
        z
    }

    fn sample(&self, rng: &mut ChaCha8Rng) -> u64 {
        loop {
            let u =
                self.h_integral_n + rng.r#gen::<f64>() * (self.h_integral_x1 - self.h_integral_n);
            let x = self.h_integral_inverse(u);
            let k = (x + 0.5).floor().clamp(1.0, self.n);
            if k - x <= self.s_val || u >= self.h_integral(k + 0.5) - self.h(k) {
                return k as u64;
            }
        }
    }

    /// `h(x) = x^-s`.
    fn h(&self, x: f64) -> f64 {
        (-self.s * x.ln()).exp()
    }

    /// An antiderivative of `h`: `(x^(1-s) - 1) / (1 - s)` (`ln x` at `s = 1`).
    fn h_integral(&self, x: f64) -> f64 {
        let log_x = x.ln();
        helper2((1.0 - self.s) * log_x) * log_x
    }

    fn h_integral_inverse(&self, x: f64) -> f64 {
        let t = (x * (1.0 - self.s)).max(-1.0);
        (helper1(t) * x).exp()
    }
}

/// `ln(1 + x) / x`, accurate near 0.
fn helper1(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.ln_1p() / x
    } else {
        1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x))
    }
}

/// `(e^x - 1) / x`, accurate near 0.
fn helper2(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.exp_m1() / x
    } else {
        1.0 + x * 0.5 * (1.0 + x * (1.0 / 3.0) * (1.0 + 0.25 * x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distribution_parses_and_prints() {
        assert_eq!("uniform".parse(), Ok(Distribution::Uniform));
        assert_eq!("zipf".parse(), Ok(Distribution::Zipf(1.0)));
        assert_eq!("zipf:1.2".parse(), Ok(Distribution::Zipf(1.2)));
        assert!("zipf:0".parse::<Distribution>().is_err());
        assert!("zipf:9".parse::<Distribution>().is_err());
        assert!("zipf:x".parse::<Distribution>().is_err());
        assert!("normal".parse::<Distribution>().is_err());
        assert_eq!(Distribution::Zipf(1.2).to_string(), "zipf:1.2");
        assert_eq!(Distribution::Uniform.to_string(), "uniform");
    }

    /// Draws `draws` indices and compares each of the first `ranks` frequencies, and the
    /// tail's, with the exact Zipf probabilities: a chi-square statistic over those
    /// `ranks + 1` cells must stay below a generous critical value.
    fn zipf_fits(n: u64, s: f64, draws: usize, ranks: usize) -> (f64, Vec<u64>) {
        let mut sampler = AccountSampler::new(Distribution::Zipf(s), n, 42);
        let mut counts = vec![0u64; ranks + 1];
        for _ in 0..draws {
            let i = sampler.next_index();
            assert!(i < n);
            counts[(i as usize).min(ranks)] += 1;
        }
        let norm: f64 = (1..=n).map(|k| (k as f64).powf(-s)).sum();
        let p = |k: u64| (k as f64).powf(-s) / norm;
        let mut chi2 = 0.0;
        for (cell, &observed) in counts.iter().enumerate() {
            let expected = if cell < ranks {
                p(cell as u64 + 1)
            } else {
                1.0 - (1..=ranks as u64).map(p).sum::<f64>()
            } * draws as f64;
            chi2 += (observed as f64 - expected).powi(2) / expected;
        }
        (chi2, counts)
    }

    #[test]
    fn zipf_sampler_matches_the_distribution() {
        // 21 cells, 20 degrees of freedom: the 0.999 quantile is 45.3.
        for (n, s) in [(1_000, 1.0), (100_000, 1.0), (1_000, 1.5), (10_000, 0.7)] {
            let (chi2, counts) = zipf_fits(n, s, 200_000, 20);
            assert!(chi2 < 45.3, "n {n} s {s}: chi2 {chi2}, counts {counts:?}");
            // Skewed: rank 1 is drawn most, rank 2 about 2^-s as often.
            let ratio = counts[1] as f64 / counts[0] as f64;
            assert!(
                (ratio - 2f64.powf(-s)).abs() < 0.03,
                "n {n} s {s}: ratio {ratio}"
            );
        }
        // A wrong exponent is told apart: samples of s = 1.0 do not fit s = 1.1.
        let mut sampler = AccountSampler::new(Distribution::Zipf(1.0), 1_000, 42);
        let hits0 = (0..200_000).filter(|_| sampler.next_index() == 0).count() as f64;
        let norm11: f64 = (1..=1_000u64).map(|k| (k as f64).powf(-1.1)).sum();
        assert!((hits0 / 200_000.0 - 1.0 / norm11).abs() > 0.01);
    }

    #[test]
    fn uniform_sampler_covers_the_space_evenly() {
        let n = 100u64;
        let mut sampler = AccountSampler::new(Distribution::Uniform, n, 7);
        let mut counts = vec![0u64; n as usize];
        let draws = 100_000;
        for _ in 0..draws {
            counts[sampler.next_index() as usize] += 1;
        }
        let expected = draws as f64 / n as f64;
        let chi2: f64 = counts
            .iter()
            .map(|&c| (c as f64 - expected).powi(2) / expected)
            .sum();
        // 99 degrees of freedom: the 0.999 quantile is 148.2.
        assert!(chi2 < 148.2, "chi2 {chi2}");
    }

    #[test]
    fn pairs_are_distinct_and_reproducible() {
        let draw = |seed| {
            let mut s = AccountSampler::new(Distribution::Zipf(2.0), 50, seed);
            (0..1000).map(|_| s.next_pair()).collect::<Vec<_>>()
        };
        let a = draw(1);
        assert!(a.iter().all(|(x, y)| x != y && *x < 50 && *y < 50));
        assert_eq!(a, draw(1));
        assert_ne!(a, draw(2));
    }
}
