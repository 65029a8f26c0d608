//! Where a base model comes from: a local folder in Hugging Face layout, a hub repo id (downloaded
//! or, under `HF_HUB_OFFLINE=1`, taken from the local cache), or `random:SHAPE`, LLaMA-shaped random
//! weights made on the device (GPU benchmarks of the 7B shape without a 13 GB folder).

use super::llama_config::{LlamaConfig, ModelShape};
use super::tokenizer::PromptTokenizer;
use crate::nn::rng::{fnv1a, TensorRng};
use anyhow::{bail, ensure, Context, Result};
use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// `--model` as a run records it: a local folder absolutely (so the run loads it from any working
/// directory), a hub id or `random:SHAPE` as given.
pub fn recorded_base(model: &str) -> Result<String> {
    if Path::new(model).is_dir() {
        Ok(crate::io::absolute_folder(Path::new(model))?.to_string_lossy().into_owned())
    } else {
        Ok(model.to_string())
    }
}

/// A resolved base model: its config, tokenizer and weights.
pub struct BaseModel {
    pub config: LlamaConfig,
    pub tokenizer: tokenizers::Tokenizer,
    /// Safetensors files (empty for `random:`).
    pub weight_files: Vec<PathBuf>,
    /// `config.json` and `tokenizer.json` (empty for `random:`).
    pub meta_files: Vec<PathBuf>,
    /// `random:SHAPE` weights drawn from this seed instead of files.
    pub random_seed: Option<u64>,
}

fn read_tokenizer(path: &Path) -> Result<tokenizers::Tokenizer> {
    tokenizers::Tokenizer::from_file(path).map_err(|e| anyhow::anyhow!("reading tokenizer {}: {e}", path.display()))
}

impl BaseModel {
    /// Resolves `--model`: a folder, `random:tiny|1b|7b`, or a hub repo id at `revision`.
    pub fn resolve(model: &str, revision: Option<&str>, seed: u64) -> Result<Self> {
        if let Some(shape) = model.strip_prefix("random:") {
            let shape = ModelShape::parse(shape)?;
            let tokenizer = super::tokenizer::train_tokenizer(super::tokenizer::builtin_corpus(), 2000)?;
            return Ok(Self {
                config: LlamaConfig::shape(shape, tokenizer.get_vocab_size(true)),
                tokenizer,
                weight_files: vec![],
                meta_files: vec![],
                random_seed: Some(seed),
            });
        }
        let dir = PathBuf::from(model);
        let fetch: Fetch = if dir.is_dir() {
            Box::new(move |name: &str| {
                let p = dir.join(name);
                crate::io::require_file(&p, &format!("{name} of the model folder"))?;
                Ok(p)
            })
        } else {
            hub_fetcher(model, revision)?
        };
        let meta_files = vec![fetch("config.json")?, fetch("tokenizer.json")?];
        let config = LlamaConfig::load(&meta_files[0])?;
        let tokenizer = read_tokenizer(&meta_files[1])?;
        let weight_files = match fetch("model.safetensors.index.json") {
            Ok(index) => {
                let json: serde_json::Value = crate::io::read_json(&index)?;
                let map =
                    json["weight_map"].as_object().with_context(|| format!("{}: no weight_map", index.display()))?;
                let mut shards: Vec<&str> = map.values().filter_map(|v| v.as_str()).collect();
                shards.sort_unstable();
                shards.dedup();
                shards.into_iter().map(&fetch).collect::<Result<Vec<_>>>()?
            }
            Err(_) => vec![fetch("model.safetensors").context("no model.safetensors or model.safetensors.index.json")?],
        };
        Ok(Self { config, tokenizer, weight_files, meta_files, random_seed: None })
    }

    /// An identity of the base: its files' fingerprints, or the shape and seed of random weights.
    pub fn fingerprint(&self) -> Result<String> {
        if let Some(seed) = self.random_seed {
            let c = &self.config;
            return Ok(format!("random:h{}-l{}-v{}-seed{seed}", c.hidden_size, c.num_hidden_layers, c.vocab_size));
        }
        let files: Vec<PathBuf> = self.meta_files.iter().chain(&self.weight_files).cloned().collect();
        crate::io::output::files_fingerprint(&files)
    }

    pub fn prompt_tokenizer(&self, max_tokens: usize) -> Result<PromptTokenizer> {
        PromptTokenizer::new(self.tokenizer.clone(), &self.config, max_tokens)
    }

    /// The weights' backend, and whether the decoder's names carry the `model.` prefix
    /// (`LlamaForCausalLM` checkpoints) or not (bare `LlamaModel` ones; `random:` weights).
    fn backend(&self) -> Result<(Box<dyn SimpleBackend>, bool)> {
        if let Some(seed) = self.random_seed {
            return Ok((Box::new(RandomWeights::new(seed)), false));
        }
        let backend = CheckedSafetensors::open(&self.weight_files)?;
        if backend.contains_tensor("model.embed_tokens.weight") {
            Ok((Box::new(backend), true))
        } else if backend.contains_tensor("embed_tokens.weight") {
            Ok((Box::new(backend), false))
        } else {
            bail!(
                "{:?}: no model.embed_tokens.weight or embed_tokens.weight: not a LLaMA checkpoint",
                self.weight_files
            )
        }
    }

    /// A VarBuilder rooted at the decoder (`embed_tokens`, `layers.*`, `norm`), mmapped and frozen.
    pub fn var_builder(&self, dtype: DType, device: &Device) -> Result<VarBuilder<'static>> {
        Ok(self.builders(dtype, device, None)?.decoder)
    }

    /// Builders at the decoder and at the checkpoint's root (where `lm_head.weight` lives); with
    /// `trainable`, every tensor they hand out is a variable recorded there (full fine-tuning).
    pub fn builders(
        &self,
        dtype: DType,
        device: &Device,
        trainable: Option<&TrainableWeights>,
    ) -> Result<BaseBuilders> {
        let (backend, prefixed) = self.backend()?;
        let backend: Box<dyn SimpleBackend> = match trainable {
            Some(t) => Box::new(t.wrapping(backend)),
            None => backend,
        };
        let root = VarBuilder::from_backend(backend, dtype, device.clone());
        let decoder = if prefixed { root.pp("model") } else { root.clone() };
        Ok(BaseBuilders { decoder, root })
    }

    /// The LM head [V, H]: `lm_head.weight`, or `None` when the config ties it to the embeddings.
    pub fn lm_head(&self, builders: &BaseBuilders) -> Result<Option<Tensor>> {
        let c = &self.config;
        if c.tie_word_embeddings {
            return Ok(None);
        }
        ensure!(
            builders.root.contains_tensor("lm_head.weight"),
            "{:?}: config.json has tie_word_embeddings false but the weights have no lm_head.weight",
            self.weight_files
        );
        Ok(Some(builders.root.get((c.vocab_size, c.hidden_size), "lm_head.weight")?))
    }
}

/// See [`BaseModel::builders`].
pub struct BaseBuilders {
    pub decoder: VarBuilder<'static>,
    pub root: VarBuilder<'static>,
}

/// Base weights made trainable (full fine-tuning): each tensor a model asks for is read from the
/// base, held as a `Var` and recorded under its name in the checkpoint, for the optimiser and for
/// saving. Clones share the record.
#[derive(Clone, Default)]
pub struct TrainableWeights {
    vars: Arc<Mutex<HashMap<String, Var>>>,
}

impl TrainableWeights {
    fn wrapping(&self, inner: Box<dyn SimpleBackend>) -> TrainableBackend {
        TrainableBackend { inner, vars: self.clone() }
    }

    /// The variables, sorted by name.
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        let mut vars: Vec<(String, Var)> =
            self.vars.lock().expect("weights lock").iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        vars
    }
}

struct TrainableBackend {
    inner: Box<dyn SimpleBackend>,
    vars: TrainableWeights,
}

impl SimpleBackend for TrainableBackend {
    fn get(&self, shape: Shape, name: &str, init: Init, dtype: DType, device: &Device) -> candle_core::Result<Tensor> {
        let mut vars = self.vars.vars.lock().expect("weights lock");
        if let Some(var) = vars.get(name) {
            // A tied LM head asks for the embedding table again: the same variable.
            return Ok(var.as_tensor().clone());
        }
        let var = Var::from_tensor(&self.inner.get(shape, name, init, dtype, device)?)?;
        vars.insert(name.to_string(), var.clone());
        Ok(var.as_tensor().clone())
    }

    fn get_unchecked(&self, name: &str, dtype: DType, device: &Device) -> candle_core::Result<Tensor> {
        self.inner.get_unchecked(name, dtype, device)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.inner.contains_tensor(name)
    }
}

/// Memory-mapped safetensors whose stored shapes are checked against the shapes the model asks for
/// (from `config.json`) before a byte is read: a corrupt or mismatched file is a clear error, never
/// an allocation of whatever size its header declares.
struct CheckedSafetensors {
    tensors: MmapedSafetensors,
    files: Vec<PathBuf>,
}

impl CheckedSafetensors {
    fn open(files: &[PathBuf]) -> Result<Self> {
        for file in files {
            crate::io::require_file(file, "a weight file of the model")?;
        }
        // SAFETY: the files are memory-mapped read-only; they must not change while the model runs.
        let tensors = unsafe { MmapedSafetensors::multi(files) }
            .map_err(|e| anyhow::anyhow!("reading the weights {}: {e}", shown_files(files)))?;
        Ok(Self { tensors, files: files.to_vec() })
    }
}

fn shown_files(files: &[PathBuf]) -> String {
    files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", ")
}

impl SimpleBackend for CheckedSafetensors {
    fn get(&self, shape: Shape, name: &str, _: Init, dtype: DType, device: &Device) -> candle_core::Result<Tensor> {
        let stored = self.tensors.get(name)?.shape().to_vec();
        if stored != shape.dims() {
            candle_core::bail!(
                "{}: tensor {name} is stored with shape {stored:?}, but config.json gives {:?}",
                shown_files(&self.files),
                shape.dims()
            );
        }
        self.tensors.load(name, device)?.to_dtype(dtype)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, device: &Device) -> candle_core::Result<Tensor> {
        self.tensors.load(name, device)?.to_dtype(dtype)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.tensors.get(name).is_ok()
    }
}

/// Finds one file of a model by name.
type Fetch = Box<dyn Fn(&str) -> Result<PathBuf>>;

/// A hub file getter; honours `HF_HUB_OFFLINE=1` by reading only the local cache.
fn hub_fetcher(repo_id: &str, revision: Option<&str>) -> Result<Fetch> {
    let repo = hf_hub::Repo::with_revision(
        repo_id.to_string(),
        hf_hub::RepoType::Model,
        revision.unwrap_or("main").to_string(),
    );
    let offline = std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"));
    let label = format!("{repo_id}@{}", revision.unwrap_or("main"));
    if offline {
        let cache = hf_hub::Cache::from_env().repo(repo);
        return Ok(Box::new(move |name: &str| {
            cache
                .get(name)
                .with_context(|| format!("{label}: {name} is not in the local hub cache and HF_HUB_OFFLINE is set"))
        }));
    }
    let api =
        hf_hub::api::sync::ApiBuilder::from_env().build().context("starting the Hugging Face hub client")?.repo(repo);
    Ok(Box::new(move |name: &str| api.get(name).with_context(|| format!("{label}: fetching {name}"))))
}

/// Random LLaMA weights: norms 1, everything else N(0, 0.02). On the CPU each tensor comes from
/// the seeded [`TensorRng`] stream of `(seed, name)`; on an accelerator from the device generator
/// (billions of host draws would take minutes). Every tensor handed out is remembered, so
/// `init-model` can save exactly what a model built from it used.
#[derive(Clone)]
pub struct RandomWeights {
    seed: u64,
    made: Arc<Mutex<HashMap<String, Tensor>>>,
}

impl RandomWeights {
    pub fn new(seed: u64) -> Self {
        Self { seed, made: Arc::new(Mutex::new(HashMap::new())) }
    }

    pub fn tensors(&self) -> HashMap<String, Tensor> {
        self.made.lock().expect("weights lock").clone()
    }
}

impl SimpleBackend for RandomWeights {
    fn get(&self, shape: Shape, name: &str, _: Init, dtype: DType, device: &Device) -> candle_core::Result<Tensor> {
        let t = if name.ends_with("norm.weight") {
            Tensor::ones(shape, dtype, device)?
        } else if device.is_cpu() {
            TensorRng::derive(self.seed, &[fnv1a(name.as_bytes())]).normal(shape, 0.0, 0.02, dtype, device)?
        } else {
            device.set_seed(self.seed ^ fnv1a(name.as_bytes()))?;
            Tensor::randn(0f32, 0.02, shape, device)?.to_dtype(dtype)?
        };
        self.made.lock().expect("weights lock").insert(name.to_string(), t.clone());
        Ok(t)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("random weights: {name} has no known shape")
    }

    fn contains_tensor(&self, _: &str) -> bool {
        true
    }
}
