//! Small sampling helpers over a seeded ChaCha stream, plus the keyed permutation that turns
//! running indices into MIMIC-looking (unordered, unique) admission and ICU-stay ids.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The stream for one purpose (`stream`) of one run (`seed`): streams never overlap, so patients
/// generated on different threads draw exactly what a single thread would.
pub fn stream(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// Stream numbers: 0 builds the world (catalogue tails, products, DDI pairs); patient `i` uses `1 + i`.
pub const WORLD_STREAM: u64 = 0;

pub fn chance(rng: &mut ChaCha8Rng, p: f64) -> bool {
    rng.random::<f64>() < p
}

/// A count with geometric distribution and the given mean (0, 1, 2, ...).
pub fn geometric(rng: &mut ChaCha8Rng, mean: f64) -> u32 {
    let stop = 1.0 / (1.0 + mean);
    let mut n = 0;
    while n < 1000 && !chance(rng, stop) {
        n += 1;
    }
    n
}

/// An integer drawn uniformly from the inclusive range `[lo, hi]`.
pub fn between(rng: &mut ChaCha8Rng, [lo, hi]: [u32; 2]) -> u32 {
    rng.random_range(lo..=hi.max(lo))
}

/// SplitMix64 of `(a, b)`: cosmetic per-row variation (dose multiples, provider ids) that the
/// table writers derive from ids instead of storing.
pub fn mix(a: u64, b: u64) -> u64 {
    let mut z = a.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(b).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A categorical distribution over `0..n` from non-negative weights.
#[derive(Debug, Clone)]
pub struct Weighted {
    cumulative: Vec<f64>,
}

impl Weighted {
    pub fn new(weights: impl IntoIterator<Item = f64>) -> Self {
        let mut total = 0.0;
        let cumulative = weights
            .into_iter()
            .map(|w| {
                total += w.max(0.0);
                total
            })
            .collect();
        Self { cumulative }
    }

    /// Zipf-Mandelbrot weights `1 / (rank + 1 + offset)^exponent` over `n` ranks (a larger offset
    /// flattens the head).
    pub fn zipf(n: usize, exponent: f64, offset: f64) -> Self {
        Self::new((0..n).map(|r| 1.0 / (r as f64 + 1.0 + offset).powf(exponent)))
    }

    pub fn sample(&self, rng: &mut ChaCha8Rng) -> usize {
        let total = *self.cumulative.last().expect("a non-empty distribution");
        let x = rng.random::<f64>() * total;
        self.cumulative.partition_point(|&c| c <= x).min(self.cumulative.len() - 1)
    }
}

/// A keyed bijection of `0..range` (a 4-round Feistel network on the next even power of two, with
/// cycle walking), so ids drawn from running indices are unique yet look random.
pub fn permute(index: u64, range: u64, key: u64) -> u64 {
    assert!(index < range, "index {index} outside 0..{range}");
    let bits = (64 - (range - 1).max(1).leading_zeros()).div_ceil(2).max(1);
    let mask = (1u64 << bits) - 1;
    let mut x = index;
    loop {
        let (mut left, mut right) = (x >> bits, x & mask);
        for round in 0..4u64 {
            let f =
                crate::nn::rng::fnv1a(&[right.to_le_bytes(), key.to_le_bytes(), round.to_le_bytes()].concat()) & mask;
            (left, right) = (right, left ^ f);
        }
        x = (left << bits) | right;
        if x < range {
            return x;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permute_is_a_bijection() {
        for range in [1u64, 7, 100, 1000, 4096] {
            let mut seen: Vec<u64> = (0..range).map(|i| permute(i, range, 42)).collect();
            seen.sort_unstable();
            assert_eq!(seen, (0..range).collect::<Vec<_>>(), "range {range}");
        }
    }

    #[test]
    fn weighted_follows_its_weights() {
        let mut rng = stream(3, 9);
        let dist = Weighted::new([1.0, 0.0, 3.0]);
        let mut counts = [0usize; 3];
        for _ in 0..20_000 {
            counts[dist.sample(&mut rng)] += 1;
        }
        assert_eq!(counts[1], 0);
        // Expected share of index 2 is 3/4; 20k draws give a standard error of about 0.003.
        let share = counts[2] as f64 / 20_000.0;
        assert!((share - 0.75).abs() < 0.02, "{share}");
    }

    #[test]
    fn geometric_has_its_mean() {
        let mut rng = stream(5, 1);
        let mean = (0..20_000).map(|_| geometric(&mut rng, 1.5) as f64).sum::<f64>() / 20_000.0;
        assert!((mean - 1.5).abs() < 0.08, "{mean}");
    }
}
