//! `--device` and `--dtype`: typed, in flags and configs alike. A missing GPU or driver is an error, never a panic.

use anyhow::{bail, Result};
use candle_core::{DType, Device};

/// Where a model runs: `cpu`, `cuda` (device 0) or `cuda:N`. Written as that string in configs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    #[default]
    Cpu,
    Cuda(usize),
}

impl std::str::FromStr for DeviceSpec {
    type Err = anyhow::Error;

    fn from_str(name: &str) -> Result<Self> {
        if name == "cpu" {
            return Ok(Self::Cpu);
        }
        let Some(rest) = name.strip_prefix("cuda") else {
            bail!("unknown device {name:?}: expected cpu, cuda or cuda:N")
        };
        match rest.strip_prefix(':') {
            None if rest.is_empty() => Ok(Self::Cuda(0)),
            Some(n) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => Ok(Self::Cuda(n.parse()?)),
            _ => bail!("unknown device {name:?}: expected cpu, cuda or cuda:N"),
        }
    }
}

impl std::fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl serde::Serialize for DeviceSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for DeviceSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

impl DeviceSpec {
    /// The device, or a clear error where it is missing (no driver, a binary without CUDA).
    pub fn open(self) -> Result<Device> {
        match self {
            Self::Cpu => Ok(Device::Cpu),
            Self::Cuda(ordinal) => cuda(ordinal),
        }
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
