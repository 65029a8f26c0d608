//! AdamW (Adam when `weight_decay` is 0) with global-norm gradient clipping and a state that can be
//! saved and restored, so an interrupted run resumes bit-identically. candle-nn's optimiser keeps its
//! moments private, which rules out exact resume.

use candle_core::backprop::GradStore;
use candle_core::{DType, Result, Tensor, Var};
use std::collections::HashMap;

/// Adds the gradients of `vars` found in `from` to `into` (micro-batches, shards), detached.
pub fn accumulate(into: &mut GradStore, from: &GradStore, vars: &[(String, Var)]) -> Result<()> {
    for (_, var) in vars {
        if let Some(g) = from.get(var.as_tensor()) {
            let sum = match into.get(var.as_tensor()) {
                Some(prev) => (prev + g)?,
                None => g.clone(),
            };
            into.insert(var.as_tensor(), sum.detach());
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct AdamWConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl AdamWConfig {
    /// Adam with PyTorch's defaults and the given learning rate.
    pub fn adam(lr: f64) -> Self {
        Self { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 }
    }
}

pub struct AdamW {
    vars: Vec<(String, Var)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    step: u64,
    pub config: AdamWConfig,
    /// Threads for the host update of CPU variables (0 = every core).
    pub threads: usize,
}

impl AdamW {
    /// Moments are kept in f32 whatever the parameter dtype.
    pub fn new(vars: Vec<(String, Var)>, config: AdamWConfig) -> Result<Self> {
        let zeros = |v: &Var| v.zeros_like()?.to_dtype(DType::F32);
        let m = vars.iter().map(|(_, v)| zeros(v)).collect::<Result<Vec<_>>>()?;
        let v = vars.iter().map(|(_, v)| zeros(v)).collect::<Result<Vec<_>>>()?;
        Ok(Self { vars, m, v, step: 0, config, threads: 0 })
    }

    pub fn set_lr(&mut self, lr: f64) {
        self.config.lr = lr;
    }

    /// The global L2 norm of the gradients of this optimiser's variables.
    pub fn grad_norm(&self, grads: &GradStore) -> Result<f64> {
        let mut sum = 0f64;
        for (_, var) in &self.vars {
            if let Some(g) = grads.get(var.as_tensor()) {
                sum += g.to_dtype(DType::F64)?.sqr()?.sum_all()?.to_scalar::<f64>()?;
            }
        }
        Ok(sum.sqrt())
    }

    /// Scales gradients so their global norm is at most `max_norm`; returns the norm before clipping.
    pub fn clip_grad_norm(&self, grads: &mut GradStore, max_norm: f64) -> Result<f64> {
        let norm = self.grad_norm(grads)?;
        if norm > max_norm && norm.is_finite() {
            let scale = max_norm / (norm + 1e-6);
            for (_, var) in &self.vars {
                if let Some(g) = grads.remove(var.as_tensor()) {
                    grads.insert(var.as_tensor(), g.affine(scale, 0.0)?);
                }
            }
        }
        Ok(norm)
    }

    /// One update; variables without a gradient are left untouched (their moments too).
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step += 1;
        let c = self.config;
        let t = self.step as i32;
        let bias = (1.0 - c.beta1.powi(t), 1.0 - c.beta2.powi(t));
        let mut host = Vec::new();
        for i in 0..self.vars.len() {
            let var = &self.vars[i].1;
            let Some(g) = grads.get(var.as_tensor()) else { continue };
            if var.device().is_cpu() && var.dtype() == DType::F32 {
                host.push((i, g));
                continue;
            }
            let g = g.to_dtype(DType::F32)?;
            let m = ((&self.m[i] * c.beta1)? + (&g * (1.0 - c.beta1))?)?;
            let v = ((&self.v[i] * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
            let update = ((&m / bias.0)? / ((&v / bias.1)?.sqrt()? + c.eps)?)?;
            let theta = var.as_tensor().to_dtype(DType::F32)?;
            let theta = ((theta * (1.0 - c.lr * c.weight_decay))? - (update * c.lr)?)?;
            var.set(&theta.to_dtype(var.dtype())?)?;
            self.m[i] = m;
            self.v[i] = v;
        }
        let threads = crate::nn::parallel::threads(self.threads);
        let updated = crate::nn::parallel::map(host, threads, |(i, g)| {
            let (m, v) = self.step_host(&self.vars[i].1, g, &self.m[i], &self.v[i], bias)?;
            Ok((i, m, v))
        })
        .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        for (i, m, v) in updated {
            self.m[i] = m;
            self.v[i] = v;
        }
        Ok(())
    }

    /// The update of an f32 CPU variable in one pass over host memory (as a dozen tensor ops per
    /// variable it was a tenth of the CPU student's training time); returns the new moments.
    fn step_host(
        &self,
        var: &Var,
        grad: &Tensor,
        m: &Tensor,
        v: &Tensor,
        (bias1, bias2): (f64, f64),
    ) -> Result<(Tensor, Tensor)> {
        let c = self.config;
        let host = |t: &Tensor| t.flatten_all()?.to_vec1::<f32>();
        let (g, mut theta, mut m, mut v) = (host(grad)?, host(var.as_tensor())?, host(m)?, host(v)?);
        let (beta1, beta2, eps) = (c.beta1 as f32, c.beta2 as f32, c.eps as f32);
        let (bias1, bias2, lr, decay) = (bias1 as f32, bias2 as f32, c.lr as f32, (1.0 - c.lr * c.weight_decay) as f32);
        for (((theta, m), v), g) in theta.iter_mut().zip(&mut m).zip(&mut v).zip(&g) {
            *m = beta1 * *m + (1.0 - beta1) * g;
            *v = beta2 * *v + (1.0 - beta2) * g * g;
            *theta = *theta * decay - lr * ((*m / bias1) / ((*v / bias2).sqrt() + eps));
        }
        let (shape, device) = (var.shape(), var.device());
        var.set(&Tensor::from_vec(theta, shape, device)?)?;
        Ok((Tensor::from_vec(m, shape, device)?, Tensor::from_vec(v, shape, device)?))
    }

    /// The optimiser state as named tensors (`adam.m.NAME`, `adam.v.NAME`, `adam.step`).
    pub fn state(&self) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        for (i, (name, _)) in self.vars.iter().enumerate() {
            out.insert(format!("adam.m.{name}"), self.m[i].clone());
            out.insert(format!("adam.v.{name}"), self.v[i].clone());
        }
        out.insert("adam.step".to_string(), Tensor::new(&[self.step as i64], &candle_core::Device::Cpu)?);
        Ok(out)
    }

    /// Restores a state written by [`AdamW::state`]; every variable must be present.
    pub fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        let get = |key: String| {
            state.get(&key).cloned().ok_or_else(|| candle_core::Error::Msg(format!("optimizer state lacks {key}")))
        };
        for (i, (name, var)) in self.vars.iter().enumerate() {
            self.m[i] = get(format!("adam.m.{name}"))?.to_dtype(DType::F32)?.to_device(var.device())?;
            self.v[i] = get(format!("adam.v.{name}"))?.to_dtype(DType::F32)?.to_device(var.device())?;
        }
        self.step = get("adam.step".to_string())?.to_vec1::<i64>()?[0] as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// One Adam step by hand: with bias correction the first update is lr * sign(g) (for |g| >> eps).
    #[test]
    fn first_step_matches_hand_computation_and_decay() {
        let w = Var::new(&[1.0f32, -2.0, 3.0], &Device::Cpu).unwrap();
        let loss =
            (w.as_tensor() * &Tensor::new(&[2.0f32, -1.0, 0.5], &Device::Cpu).unwrap()).unwrap().sum_all().unwrap();
        let grads = loss.backward().unwrap();
        let cfg = AdamWConfig { weight_decay: 0.1, ..AdamWConfig::adam(0.01) };
        let mut opt = AdamW::new(vec![("w".into(), w.clone())], cfg).unwrap();
        opt.step(&grads).unwrap();
        let got = w.as_tensor().to_vec1::<f32>().unwrap();
        let expect = [1.0 * (1.0 - 0.001) - 0.01, -2.0 * (1.0 - 0.001) + 0.01, 3.0 * (1.0 - 0.001) - 0.01];
        for (g, e) in got.iter().zip(expect) {
            assert!((g - e).abs() < 1e-6, "{got:?} vs {expect:?}");
        }
    }

    /// The host loop (f32 on the CPU) and the tensor ops (any other variable) compute the same update.
    #[test]
    fn host_loop_matches_the_tensor_ops() {
        let run = |dtype: DType| {
            let w = Var::from_tensor(
                &Tensor::new(&[0.5f32, -0.25, 2.0, 0.0], &Device::Cpu).unwrap().to_dtype(dtype).unwrap(),
            )
            .unwrap();
            let cfg = AdamWConfig { weight_decay: 0.05, ..AdamWConfig::adam(0.1) };
            let mut opt = AdamW::new(vec![("w".into(), w.clone())], cfg).unwrap();
            let target = Tensor::new(&[1.0f32, 1.0, -1.0, 3.0], &Device::Cpu).unwrap().to_dtype(dtype).unwrap();
            for _ in 0..5 {
                let loss = (w.as_tensor() - &target).unwrap().sqr().unwrap().sum_all().unwrap();
                opt.step(&loss.backward().unwrap()).unwrap();
            }
            w.as_tensor().to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap()
        };
        let (host, tensor) = (run(DType::F32), run(DType::F64));
        for (a, b) in host.iter().zip(&tensor) {
            assert!((a - b).abs() < 1e-5, "{host:?} vs {tensor:?}");
        }
        assert!(host.iter().zip([0.5, -0.25, 2.0, 0.0]).all(|(a, b)| (a - b).abs() > 0.1), "the weights moved");
    }

    #[test]
    fn clipping_scales_to_max_norm() {
        let w = Var::new(&[0.0f32, 0.0], &Device::Cpu).unwrap();
        let loss = (w.as_tensor() * &Tensor::new(&[3.0f32, 4.0], &Device::Cpu).unwrap()).unwrap().sum_all().unwrap();
        let mut grads = loss.backward().unwrap();
        let opt = AdamW::new(vec![("w".into(), w.clone())], AdamWConfig::adam(0.1)).unwrap();
        let before = opt.clip_grad_norm(&mut grads, 1.0).unwrap();
        assert!((before - 5.0).abs() < 1e-9);
        assert!((opt.grad_norm(&grads).unwrap() - 1.0).abs() < 1e-5);
    }

    #[test]
    fn state_round_trip_continues_identically() {
        let run = |split: bool| {
            let w = Var::new(&[0.5f32, -0.5], &Device::Cpu).unwrap();
            let mut opt = AdamW::new(vec![("w".into(), w.clone())], AdamWConfig::adam(0.1)).unwrap();
            for i in 0..4 {
                if split && i == 2 {
                    let state = opt.state().unwrap();
                    opt = AdamW::new(vec![("w".into(), w.clone())], AdamWConfig::adam(0.1)).unwrap();
                    opt.load_state(&state).unwrap();
                }
                let loss = w.as_tensor().sqr().unwrap().sum_all().unwrap();
                opt.step(&loss.backward().unwrap()).unwrap();
            }
            w.as_tensor().to_vec1::<f32>().unwrap()
        };
        assert_eq!(run(false), run(true));
    }
}
