//! Per-dimension standardisation of vectors: the mean and standard deviation of each column over a
//! set of rows, measured once and then applied to any row. The teacher's standardised head and the
//! student's KD targets both use it.

use anyhow::{bail, Result};
use candle_core::{DType, Device, Tensor};

/// Each column's mean and standard deviation [1, H], in f64 on the CPU.
pub struct Standardise {
    pub mean: Tensor,
    pub std: Tensor,
}

impl Standardise {
    /// Statistics of the rows of `batches` (each [b, H]), accumulated batch by batch. A column that
    /// never varies gets a unit scale, so it is only centred.
    pub fn measure(batches: impl Iterator<Item = Result<Tensor>>) -> Result<Self> {
        let (mut n, mut sums) = (0usize, None::<(Tensor, Tensor)>);
        for batch in batches {
            let x = batch?.to_dtype(DType::F64)?.to_device(&Device::Cpu)?;
            n += x.dim(0)?;
            let (s, q) = (x.sum_keepdim(0)?, x.sqr()?.sum_keepdim(0)?);
            sums = Some(match sums {
                Some((sum, squares)) => ((sum + s)?, (squares + q)?),
                None => (s, q),
            });
        }
        let Some((sum, squares)) = sums.filter(|_| n > 0) else { bail!("no vectors to measure") };
        let mean = (sum / n as f64)?;
        let std = ((squares / n as f64)? - mean.sqr()?)?.relu()?.sqrt()?;
        let std = std.ge(1e-6)?.where_cond(&std, &std.ones_like()?)?;
        Ok(Self { mean, std })
    }

    /// `x` [B, H] standardised, in its own dtype and device.
    pub fn apply(&self, x: &Tensor) -> Result<Tensor> {
        let (mean, std) = (self.mean.to_device(x.device())?, self.std.to_device(x.device())?);
        Ok(x.to_dtype(DType::F64)?.broadcast_sub(&mean)?.broadcast_div(&std)?.to_dtype(x.dtype())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Measured over two batches as over one, against the textbook two-pass formulas; a constant
    /// column is centred but not scaled.
    #[test]
    fn measures_each_column_over_every_batch() {
        let rows = [[1.0, 5.0, 2.0], [3.0, 5.0, -4.0], [8.0, 5.0, 0.5]];
        let all = Tensor::new(&rows, &Device::Cpu).unwrap();
        let batches = [all.narrow(0, 0, 2), all.narrow(0, 2, 1)].map(|b| b.map_err(anyhow::Error::from));
        let s = Standardise::measure(batches.into_iter()).unwrap();
        let z: Vec<Vec<f64>> = s.apply(&all).unwrap().to_vec2().unwrap();
        for d in 0..3 {
            let mean = rows.iter().map(|r| r[d]).sum::<f64>() / 3.0;
            let var = rows.iter().map(|r| (r[d] - mean).powi(2)).sum::<f64>() / 3.0;
            let scale = if var > 0.0 { var.sqrt() } else { 1.0 };
            for (r, zr) in rows.iter().zip(&z) {
                assert!((zr[d] - (r[d] - mean) / scale).abs() < 1e-12, "column {d}");
            }
        }
        assert!(Standardise::measure(std::iter::empty()).is_err());
    }
}
