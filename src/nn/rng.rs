//! A seeded random source for tensors. candle's CPU generator cannot be seeded, so every random
//! tensor in training (initial weights, dropout masks, shuffles) comes from here instead; streams are
//! derived from `(seed, labels...)` so a resumed run redraws exactly what the original run drew.

use candle_core::{DType, Device, Result, Shape, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// FNV-1a over bytes: a stable, dependency-free hash for deriving seeds and fingerprints.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ *b as u64).wrapping_mul(0x0100_0000_01b3))
}

pub struct TensorRng {
    rng: ChaCha8Rng,
}

impl TensorRng {
    pub fn new(seed: u64) -> Self {
        Self { rng: ChaCha8Rng::seed_from_u64(seed) }
    }

    /// An independent stream for `(seed, labels)`, e.g. `derive(seed, &[epoch])` or `&[step, micro]`.
    pub fn derive(seed: u64, labels: &[u64]) -> Self {
        let bytes: Vec<u8> = std::iter::once(seed).chain(labels.iter().copied()).flat_map(u64::to_le_bytes).collect();
        Self::new(fnv1a(&bytes))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.rng.random()
    }

    pub fn uniform_f64(&mut self) -> f64 {
        self.rng.random::<f64>()
    }

    /// A standard normal draw (Box–Muller).
    pub fn normal_f64(&mut self) -> f64 {
        let u1: f64 = 1.0 - self.rng.random::<f64>();
        let u2: f64 = self.rng.random::<f64>();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    pub fn below(&mut self, n: usize) -> usize {
        self.rng.random_range(0..n)
    }

    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.rng.random_range(0..=i);
            items.swap(i, j);
        }
    }

    pub fn uniform(
        &mut self,
        shape: impl Into<Shape>,
        lo: f64,
        hi: f64,
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor> {
        let shape = shape.into();
        let data: Vec<f64> = (0..shape.elem_count()).map(|_| lo + (hi - lo) * self.uniform_f64()).collect();
        Tensor::from_vec(data, shape, &Device::Cpu)?.to_dtype(dtype)?.to_device(device)
    }

    pub fn normal(
        &mut self,
        shape: impl Into<Shape>,
        mean: f64,
        std: f64,
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor> {
        let shape = shape.into();
        let data: Vec<f64> = (0..shape.elem_count()).map(|_| mean + std * self.normal_f64()).collect();
        Tensor::from_vec(data, shape, &Device::Cpu)?.to_dtype(dtype)?.to_device(device)
    }

    /// Inverted-dropout mask: each entry is 0 with probability `p`, else `1 / (1 - p)`. The draws are
    /// u32s filled in bulk (an entry is dropped when its draw is below p·2^32): training calls this on
    /// every layer of every step, and one f64 draw per entry cost more than the layers themselves.
    pub fn dropout_mask(&mut self, shape: impl Into<Shape>, p: f64, dtype: DType, device: &Device) -> Result<Tensor> {
        let shape = shape.into();
        let keep = 1.0 / (1.0 - p);
        let threshold = (p * 4_294_967_296.0).round().min(u32::MAX as f64) as u32;
        let mut draws = vec![0u32; shape.elem_count()];
        self.rng.fill(&mut draws[..]);
        let mask = if dtype == DType::F64 {
            let data: Vec<f64> = draws.iter().map(|&u| if u < threshold { 0.0 } else { keep }).collect();
            Tensor::from_vec(data, shape, &Device::Cpu)?
        } else {
            let data: Vec<f32> = draws.iter().map(|&u| if u < threshold { 0.0 } else { keep as f32 }).collect();
            Tensor::from_vec(data, shape, &Device::Cpu)?.to_dtype(dtype)?
        };
        mask.to_device(device)
    }

    /// Applies inverted dropout with probability `p` (identity when `p == 0`).
    pub fn dropout(&mut self, x: &Tensor, p: f64) -> Result<Tensor> {
        if p <= 0.0 {
            return Ok(x.clone());
        }
        let mask = self.dropout_mask(x.shape(), p, x.dtype(), x.device())?;
        x.mul(&mask)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_streams_repeat_and_differ() {
        let a: Vec<u64> = (0..4).map(|_| TensorRng::derive(7, &[1, 2]).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(TensorRng::derive(7, &[1, 2]).next_u64(), TensorRng::derive(7, &[2, 1]).next_u64());
    }

    #[test]
    fn normal_and_dropout_statistics() {
        let mut rng = TensorRng::new(3);
        let x: Vec<f64> = (0..20000).map(|_| rng.normal_f64()).collect();
        let mean = x.iter().sum::<f64>() / x.len() as f64;
        let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / x.len() as f64;
        assert!(mean.abs() < 0.03 && (var - 1.0).abs() < 0.05, "mean {mean} var {var}");
        let mask = rng.dropout_mask(10000, 0.25, DType::F32, &Device::Cpu).unwrap().to_vec1::<f32>().unwrap();
        let zeros = mask.iter().filter(|v| **v == 0.0).count() as f64 / 10000.0;
        assert!((zeros - 0.25).abs() < 0.02, "{zeros}");
        assert!(mask.iter().all(|v| *v == 0.0 || (*v - 4.0 / 3.0).abs() < 1e-6));
    }
}
