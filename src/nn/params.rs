//! Seeded parameter creation behind candle's `VarBuilder`: every trainable tensor is drawn from a
//! stream derived from `(seed, parameter name)`, so initial weights depend only on the seed, never on
//! creation order or on candle's unseedable CPU generator.

use super::rng::{fnv1a, TensorRng};
use candle_core::{DType, Device, Result, Shape, Tensor, Var};
use candle_nn::init::NormalOrUniform;
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder, VarMap};

/// A `VarMap` whose missing variables are initialised from a seeded stream. Clones share the variables.
#[derive(Clone)]
pub struct SeededVarMap {
    map: VarMap,
    seed: u64,
}

impl SeededVarMap {
    pub fn new(seed: u64) -> Self {
        Self { map: VarMap::new(), seed }
    }

    pub fn var_builder(&self, dtype: DType, device: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(self.clone()), dtype, device.clone())
    }

    /// All variables sorted by name (a stable order for optimisers and checkpoints).
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        let data = self.map.data().lock().expect("var map lock");
        let mut vars: Vec<(String, Var)> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        vars
    }

    fn draw(&self, shape: &Shape, name: &str, init: Init, dtype: DType, device: &Device) -> Result<Tensor> {
        let mut rng = TensorRng::derive(self.seed, &[fnv1a(name.as_bytes())]);
        match init {
            Init::Const(c) => Tensor::full(c, shape.clone(), device)?.to_dtype(dtype),
            Init::Randn { mean, stdev } => rng.normal(shape.clone(), mean, stdev, dtype, device),
            Init::Uniform { lo, up } => rng.uniform(shape.clone(), lo, up, dtype, device),
            Init::Kaiming { dist, fan, non_linearity } => {
                let std = non_linearity.gain() / (fan.for_shape(shape) as f64).sqrt();
                match dist {
                    NormalOrUniform::Uniform => {
                        let bound = 3f64.sqrt() * std;
                        rng.uniform(shape.clone(), -bound, bound, dtype, device)
                    }
                    NormalOrUniform::Normal => rng.normal(shape.clone(), 0.0, std, dtype, device),
                }
            }
        }
    }
}

impl SimpleBackend for SeededVarMap {
    fn get(&self, shape: Shape, name: &str, init: Init, dtype: DType, device: &Device) -> Result<Tensor> {
        let mut data = self.map.data().lock().expect("var map lock");
        if let Some(var) = data.get(name) {
            if var.shape() != &shape {
                candle_core::bail!("parameter {name}: shape {:?} but {shape:?} requested", var.shape());
            }
            return Ok(var.as_tensor().clone());
        }
        let var = Var::from_tensor(&self.draw(&shape, name, init, dtype, device)?)?;
        let tensor = var.as_tensor().clone();
        data.insert(name.to_string(), var);
        Ok(tensor)
    }

    fn get_unchecked(&self, name: &str, _dtype: DType, _device: &Device) -> Result<Tensor> {
        let data = self.map.data().lock().expect("var map lock");
        match data.get(name) {
            Some(var) => Ok(var.as_tensor().clone()),
            None => candle_core::bail!("parameter {name} does not exist"),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.map.data().lock().expect("var map lock").contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_weights_regardless_of_order() {
        let a = SeededVarMap::new(5);
        let vb = a.var_builder(DType::F32, &Device::Cpu);
        let a1 = candle_nn::linear(4, 3, vb.pp("one")).unwrap();
        let _ = candle_nn::linear(4, 3, vb.pp("two")).unwrap();
        let b = SeededVarMap::new(5);
        let vb = b.var_builder(DType::F32, &Device::Cpu);
        let _ = candle_nn::linear(4, 3, vb.pp("two")).unwrap();
        let b1 = candle_nn::linear(4, 3, vb.pp("one")).unwrap();
        let wa = a1.weight().to_vec2::<f32>().unwrap();
        assert_eq!(wa, b1.weight().to_vec2::<f32>().unwrap());
        assert_eq!(a.named_vars().len(), 4);
        let c = SeededVarMap::new(6);
        let c1 = candle_nn::linear(4, 3, c.var_builder(DType::F32, &Device::Cpu).pp("one")).unwrap();
        assert_ne!(wa, c1.weight().to_vec2::<f32>().unwrap());
    }
}
