//! The teacher cache: pooled teacher hidden states per record, in safetensors (`hidden` [n, H] f32 or
//! f16, `subject_id` [n] i64, optionally `input_ids` [n, T] i64 right-padded with -1). Written by
//! `leader export-hidden`, read by `leader distill --teacher-cache`.

use anyhow::{bail, ensure, Context, Result};
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::Path;

pub struct TeacherCache {
    pub subject_ids: Vec<u64>,
    /// [n, H], always f32 once loaded.
    pub hidden: Tensor,
    pub input_ids: Option<Tensor>,
}

impl TeacherCache {
    pub fn hidden_size(&self) -> usize {
        self.hidden.dim(1).expect("hidden is 2-D")
    }

    /// subject_id → row.
    pub fn rows(&self) -> HashMap<u64, usize> {
        self.subject_ids.iter().enumerate().map(|(i, s)| (*s, i)).collect()
    }

    pub fn load(path: &Path) -> Result<Self> {
        let mut tensors = candle_core::safetensors::load(path, &Device::Cpu)
            .with_context(|| format!("reading teacher cache {}", path.display()))?;
        let Some(hidden) = tensors.remove("hidden") else {
            bail!("{}: no `hidden` tensor (expected [n, H] f32/f16)", path.display())
        };
        let Some(ids) = tensors.remove("subject_id") else {
            bail!("{}: no `subject_id` tensor (expected [n] i64)", path.display())
        };
        ensure!(hidden.rank() == 2, "{}: `hidden` has shape {:?}, expected [n, H]", path.display(), hidden.shape());
        ensure!(
            ids.rank() == 1 && ids.dim(0)? == hidden.dim(0)?,
            "{}: `subject_id` has shape {:?} but `hidden` has {} rows",
            path.display(),
            ids.shape(),
            hidden.dim(0)?
        );
        let subject_ids = ids.to_dtype(DType::I64)?.to_vec1::<i64>()?.into_iter().map(|s| s as u64).collect();
        Ok(Self { subject_ids, hidden: hidden.to_dtype(DType::F32)?, input_ids: tensors.remove("input_ids") })
    }

    /// Writes the cache atomically, storing `hidden` as `dtype` (f32 or f16).
    pub fn save(&self, path: &Path, dtype: DType) -> Result<()> {
        ensure!(matches!(dtype, DType::F32 | DType::F16), "teacher cache dtype must be f32 or f16");
        let n = self.subject_ids.len();
        let ids: Vec<i64> = self.subject_ids.iter().map(|s| *s as i64).collect();
        let mut map = HashMap::from([
            ("hidden".to_string(), self.hidden.to_dtype(dtype)?.to_device(&Device::Cpu)?),
            ("subject_id".to_string(), Tensor::from_vec(ids, n, &Device::Cpu)?),
        ]);
        if let Some(input_ids) = &self.input_ids {
            map.insert("input_ids".to_string(), input_ids.to_device(&Device::Cpu)?);
        }
        crate::io::write_safetensors(path, &map)
    }
}
