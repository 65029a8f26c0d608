//! `--device` and `--dtype` parsing. A missing GPU or driver is an error, never a panic.

use anyhow::{bail, Result};
use candle_core::{DType, Device};

/// `cpu`, `cuda` or `cuda:N`.
pub fn parse_device(name: &str) -> Result<Device> {
    match name {
        "cpu" => Ok(Device::Cpu),
        other => match other.strip_prefix("cuda").map(|rest| rest.strip_prefix(':').unwrap_or(rest)) {
            Some(ordinal) => {
                let ordinal = if ordinal.is_empty() {
                    0
                } else {
                    ordinal.parse().map_err(|_| anyhow::anyhow!("bad device {other:?}"))?
                };
                cuda(ordinal)
            }
            None => bail!("unknown device {other:?}: expected cpu, cuda or cuda:N"),
        },
    }
}

#[cfg(feature = "cuda")]
fn cuda(ordinal: usize) -> Result<Device> {
    // cudarc loads libcuda at run time and panics when it is missing: turn that into an error.
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let made = std::panic::catch_unwind(|| Device::new_cuda(ordinal));
    std::panic::set_hook(previous);
    match made {
        Ok(Ok(device)) => Ok(device),
        Ok(Err(e)) => bail!("cannot use CUDA device {ordinal}: {e}"),
        Err(_) => bail!("cannot use CUDA device {ordinal}: no usable NVIDIA driver/libcuda was found"),
    }
}

#[cfg(not(feature = "cuda"))]
fn cuda(_ordinal: usize) -> Result<Device> {
    bail!("this binary was built without CUDA; rebuild with --features cuda")
}

/// The compute dtype of a base model: `f32`, `bf16`, `f16` (and `f64`, for checks).
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    F32,
    Bf16,
    F16,
    F64,
}

impl Precision {
    pub fn dtype(self) -> DType {
        match self {
            Self::F32 => DType::F32,
            Self::Bf16 => DType::BF16,
            Self::F16 => DType::F16,
            Self::F64 => DType::F64,
        }
    }
}

/// Device memory in use, in bytes, where the backend reports it (CUDA: total − free from the driver;
/// sampled after the largest allocations of a step it bounds the peak from below), else None.
pub fn memory_in_use_bytes(device: &Device) -> Option<u64> {
    #[cfg(feature = "cuda")]
    if let Device::Cuda(_) = device {
        return cuda_mem_used();
    }
    let _ = device;
    None
}

#[cfg(feature = "cuda")]
fn cuda_mem_used() -> Option<u64> {
    let (free, total) = candle_core::cuda_backend::cudarc::driver::result::mem_get_info().ok()?;
    Some((total - free) as u64)
}
