//! The student network: encoding, shapes, padding invariance and gradient checks of every loss.

mod student_support;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use leader::nn::gradcheck;
use leader::nn::layers::Dropout;
use leader::nn::params::SeededVarMap;
use leader::student::batch::{Batch, CodeVocab, EncodeStats, EncodedRecord};
use leader::student::config::{LossConfig, ModelDims};
use leader::student::losses::{self, TrainingHeads};
use leader::student::model::{ModelShape, StudentNet};
use student_support::*;

fn tiny_dims(dropout: f64) -> ModelDims {
    ModelDims {
        hidden: 8,
        heads: 2,
        ffn: 12,
        hidden_dropout: dropout,
        attention_dropout: dropout,
        layer_norm_eps: 1e-12,
        max_visits: 10,
        max_codes: 100,
    }
}

fn shape_of(codes: &CodeVocab, m: usize) -> ModelShape {
    ModelShape { num_codes: codes.size(), num_medications: m, profile_sizes: codes.profile_sizes() }
}

fn encode_all(codes: &CodeVocab, records: &[leader::data::record::Record], dims: &ModelDims) -> Vec<EncodedRecord> {
    let mut stats = EncodeStats::default();
    records.iter().map(|r| codes.encode(r, dims.max_visits, dims.max_codes, true, &mut stats).unwrap()).collect()
}

#[test]
fn encoding_keeps_the_last_visits_truncates_codes_and_separates_streams() {
    let mut v = vocab(3, 4, 4);
    // A procedure whose string equals a diagnosis code must still get its own token (§7.13).
    v.procedures[0].code = "D1".into();
    let codes = CodeVocab::new(&v);
    assert_eq!(codes.size(), 1 + 3 + 4 + 4);
    let s = |xs: &[&str]| xs.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let visits: Vec<_> = (0..12u64)
        .map(|i| visit(i, &s(&["D0", "D1", "D2", "D3"]), &s(&["D1"]), &s(&[["M0", "M1", "M2"][i as usize % 3]])))
        .collect();
    let mut r = record(7, visits, "Medicare");
    r.visits[11].diagnoses = s(&["D3", "D2", "X9"]);
    let mut stats = EncodeStats::default();
    let e = codes.encode(&r, 10, 3, true, &mut stats).unwrap();
    // Last 10 of 12 visits kept; the target visit (index 11) is the last one.
    assert_eq!(e.diagnoses.len(), 10);
    // Token ids: PAD 0, M0..M2 -> 1..3, D0..D3 -> 4..7, procedures -> 8..11.
    assert_eq!(e.diagnoses[9], vec![7, 6]);
    assert_eq!(e.diagnoses[0], vec![4, 5, 6]);
    assert_eq!(e.procedures[0], vec![8]);
    // Prior medications: visits 2..=10 (9 of them), visit 2 had M2.
    assert_eq!(e.prior_medications.len(), 9);
    assert_eq!(e.prior_medications[0], vec![3]);
    assert_eq!(e.labels, vec![2]);
    assert_eq!(e.profile, vec![1]);
    // 9 kept visits with 4 diagnoses, each truncating one; one unknown code "X9".
    assert_eq!(stats.codes_truncated, 9);
    assert_eq!(stats.unknown_codes, 1);
    assert_eq!(stats.records_visits_truncated, 1);
    // Unknown profile values go to the extra slot and are counted.
    r.profile.insert("insurance".into(), "Self Pay".into());
    assert_eq!(codes.encode(&r, 10, 3, true, &mut stats).unwrap().profile, vec![2]);
    assert_eq!(stats.unknown_profile_values, 1);
    // A label outside the vocabulary is an error.
    r.labels.push("M9".into());
    let err = codes.encode(&r, 10, 3, true, &mut stats).unwrap_err().to_string();
    assert!(err.contains("M9"), "{err}");
}

#[test]
fn padding_never_changes_the_output() {
    let v = vocab(6, 20, 8);
    let codes = CodeVocab::new(&v);
    let dims = tiny_dims(0.0);
    let records = random_records(3, 12, &v);
    let encoded = encode_all(&codes, &records, &dims);
    let params = SeededVarMap::new(11);
    let model = StudentNet::new(params.var_builder(DType::F64, &Device::Cpu), &dims, &shape_of(&codes, 6)).unwrap();
    let logits = |rs: &[&EncodedRecord]| {
        let batch = Batch::new(rs, 6, DType::F64, &Device::Cpu).unwrap();
        let out = model.forward(&batch, &mut Dropout::off()).unwrap();
        assert_eq!(out.logits.dims(), &[rs.len(), 6]);
        assert_eq!(out.hidden.dims(), &[rs.len(), 16]);
        assert_eq!(out.profile_prompt.dims(), &[rs.len(), 8]);
        out.logits.to_vec2::<f64>().unwrap()
    };
    // The longest history and the widest visit, so the other records are padded in the batch.
    let widest = (0..encoded.len())
        .max_by_key(|&i| (encoded[i].diagnoses.len(), encoded[i].diagnoses.iter().map(Vec::len).max()))
        .unwrap();
    let all: Vec<&EncodedRecord> = encoded.iter().collect();
    let together = logits(&all);
    let mut checked_padded = 0;
    for (i, r) in encoded.iter().enumerate() {
        let alone = logits(&[r]);
        let padded = logits(&[&encoded[widest], r]);
        for j in 0..6 {
            assert!(
                (alone[0][j] - together[i][j]).abs() < 1e-10,
                "record {i}: alone {:?} vs batch {:?}",
                alone[0],
                together[i]
            );
            assert!((alone[0][j] - padded[1][j]).abs() < 1e-10, "record {i}: alone vs padded");
        }
        checked_padded += (r.diagnoses.len() < encoded[widest].diagnoses.len()) as usize;
    }
    assert!(checked_padded > 3, "the test must include records padded to more visits");
    // And the output does depend on the inputs (different records, different logits).
    assert!(together[0] != together[1]);
}

/// Four records over a small vocabulary, encoded and batched, for comparing two ways of scoring
/// them; dropout is configured (0.3) so the comparisons show it is off when scoring.
fn scoring_batch(dtype: DType) -> (CodeVocab, ModelDims, Batch) {
    let v = vocab(6, 20, 8);
    let codes = CodeVocab::new(&v);
    let dims = tiny_dims(0.3);
    let encoded = encode_all(&codes, &random_records(4, 12, &v), &dims);
    let refs: Vec<&EncodedRecord> = encoded.iter().collect();
    let batch = Batch::new(&refs, 6, dtype, &Device::Cpu).unwrap();
    (codes, dims, batch)
}

fn logits_of(model: &StudentNet, batch: &Batch) -> Vec<f64> {
    let out = model.forward(batch, &mut Dropout::off()).unwrap().logits;
    out.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap()
}

/// The two logit vectors differ by less than `tolerance` everywhere and are not trivially zero.
fn assert_same_logits(want: &[f64], got: &[f64], tolerance: f64, what: &str) {
    assert_eq!(want.len(), got.len());
    let worst = want.iter().zip(got).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(worst < tolerance, "{what} differs by {worst}");
    assert!(want.iter().any(|x| x.abs() > 1e-3), "the logits must not be trivially zero");
}

/// `predict` scores in f32; the same seeded model in f64 (what the gradient checks verify) must give
/// the same logits up to f32 rounding.
#[test]
fn f32_scoring_matches_the_f64_forward() {
    let logits = |dtype: DType| {
        let (codes, dims, batch) = scoring_batch(dtype);
        let params = SeededVarMap::new(5);
        let model = StudentNet::new(params.var_builder(dtype, &Device::Cpu), &dims, &shape_of(&codes, 6)).unwrap();
        logits_of(&model, &batch)
    };
    assert_same_logits(&logits(DType::F64), &logits(DType::F32), 1e-4, "f32 scoring vs f64");
}

/// Scoring a trained model (weights as plain tensors: per-code Q/K/V tables, bias and GELU in
/// place) gives the logits of the differentiable path the training uses, on the same weights.
#[test]
fn scoring_path_matches_the_training_path() {
    let (codes, dims, batch) = scoring_batch(DType::F64);
    let params = SeededVarMap::new(5);
    let training = StudentNet::new(params.var_builder(DType::F64, &Device::Cpu), &dims, &shape_of(&codes, 6)).unwrap();
    let weights = params.named_vars().into_iter().map(|(name, var)| (name, var.as_tensor().clone())).collect();
    let scoring =
        StudentNet::new(VarBuilder::from_tensors(weights, DType::F64, &Device::Cpu), &dims, &shape_of(&codes, 6))
            .and_then(StudentNet::for_inference)
            .unwrap();
    assert_same_logits(&logits_of(&training, &batch), &logits_of(&scoring, &batch), 1e-12, "scoring vs training");
}

/// Gradient check of each loss on a tiny f64 model with dropout off. Each loss must give every
/// parameter it depends on a gradient matching central differences, and no gradient elsewhere.
#[test]
fn every_loss_matches_finite_differences() {
    let v = vocab(5, 10, 6);
    let codes = CodeVocab::new(&v);
    let dims = tiny_dims(0.0);
    let records = random_records(5, 6, &v);
    let encoded = encode_all(&codes, &records, &dims);
    assert!(encoded.iter().any(|r| !r.prior_medications.is_empty()), "need a medication history");
    let refs: Vec<&EncodedRecord> = encoded.iter().collect();
    let batch = Batch::new(&refs, 5, DType::F64, &Device::Cpu).unwrap();
    let params = SeededVarMap::new(2);
    let vb = params.var_builder(DType::F64, &Device::Cpu);
    let model = StudentNet::new(vb.clone(), &dims, &shape_of(&codes, 5)).unwrap();
    let heads = TrainingHeads::new(vb.pp("train_heads"), 8, Some(4)).unwrap();
    let teacher =
        Tensor::from_vec((0..24).map(|i| ((i * 7 % 11) as f64 - 5.0) / 5.0).collect::<Vec<_>>(), (6, 4), &Device::Cpu)
            .unwrap();
    let vars = params.named_vars();
    let base =
        LossConfig { alpha: 0.0, beta: 0.0, temperature: 0.7, exclude_positive: false, standardise_teacher: false };
    // (loss, its config, which parameters it must reach)
    type Case = (&'static str, LossConfig, fn(&str) -> bool);
    let cases: [Case; 4] = [
        ("bce", base.clone(), |n| !n.starts_with("train_heads")),
        ("kd", LossConfig { alpha: 1.0, ..base.clone() }, |n| {
            !n.starts_with("head_out") && (!n.starts_with("train_heads") || n.contains("kd_projector"))
        }),
        ("align", LossConfig { beta: 1.0, ..base.clone() }, |n| {
            n.starts_with("codes") || n.starts_with("medication_set") || n.starts_with("profile") || n.contains("align")
        }),
        ("align-reference", LossConfig { beta: 1.0, exclude_positive: true, ..base.clone() }, |n| {
            n.starts_with("codes") || n.starts_with("medication_set") || n.starts_with("profile") || n.contains("align")
        }),
    ];
    for (name, cfg, expected) in cases {
        let loss = || -> anyhow::Result<Tensor> {
            let out = model.forward(&batch, &mut Dropout::off())?;
            let l =
                losses::combine(heads.terms(&model, &out, &batch, Some(&teacher), &cfg, &mut Dropout::off())?, &cfg)?;
            // Isolate one loss: BCE alone, or the weighted extra term alone.
            Ok(match name {
                "bce" => l.bce,
                "kd" => l.kd.unwrap(),
                _ => l.align.unwrap(),
            })
        };
        let reports = gradcheck::check(&vars, loss, 1e-6, 10).unwrap();
        let (with, without): (Vec<_>, Vec<_>) = reports.into_iter().partition(|r| expected(&r.name));
        assert!(with.len() > 4, "{name}: too few parameters expected to learn");
        gradcheck::assert_close(&with, 1e-5).unwrap_or_else(|e| panic!("{name}: {e}"));
        for r in without {
            assert!(r.max_analytic == 0.0 && r.max_abs_err < 1e-8, "{name}: {} should get no gradient: {r:?}", r.name);
        }
    }
}

/// The sharded training step (shards on their own threads, the alignment over the whole batch fed
/// back into each shard's backward) gives the losses and gradients of one full-batch backward pass.
#[test]
fn sharded_step_equals_the_full_batch_gradient() {
    use leader::student::kd::KdTarget;
    use leader::student::step::Trainer;
    let v = vocab(5, 16, 6);
    let codes = CodeVocab::new(&v);
    let dims = tiny_dims(0.0);
    let records = random_records(3, 7, &v);
    let encoded = encode_all(&codes, &records, &dims);
    let refs: Vec<&EncodedRecord> = encoded.iter().collect();
    let params = SeededVarMap::new(4);
    let vb = params.var_builder(DType::F64, &Device::Cpu);
    let model = StudentNet::new(vb.clone(), &dims, &shape_of(&codes, 5)).unwrap();
    let heads = TrainingHeads::new(vb.pp("train_heads"), 8, Some(3)).unwrap();
    let vars = params.named_vars();
    let hidden: Vec<f64> = (0..21).map(|i| ((i * 5 % 13) as f64 - 6.0) / 6.0).collect();
    let rows = encoded.iter().enumerate().map(|(i, r)| (r.subject_id, i)).collect();
    let teacher = KdTarget::Cache { hidden: Tensor::from_vec(hidden, (7, 3), &Device::Cpu).unwrap(), rows };
    for exclude_positive in [false, true] {
        let loss = LossConfig { alpha: 0.7, beta: 0.5, temperature: 0.8, exclude_positive, standardise_teacher: false };
        // The full batch in one graph.
        let batch = Batch::new(&refs, 5, DType::F64, &Device::Cpu).unwrap();
        let out = model.forward(&batch, &mut Dropout::off()).unwrap();
        let target = teacher.targets(&batch.subject_ids, DType::F64, &Device::Cpu).unwrap();
        let terms = heads.terms(&model, &out, &batch, target.as_ref(), &loss, &mut Dropout::off()).unwrap();
        let full = losses::combine(terms, &loss).unwrap();
        let full_total = full.total.to_scalar::<f64>().unwrap();
        let full_grads = full.total.backward().unwrap();
        for (shards, threads) in [(1, 1), (3, 1), (3, 2), (7, 3)] {
            let trainer = Trainer {
                model: &model,
                heads: &heads,
                teacher: &teacher,
                loss: &loss,
                vars: &vars,
                num_medications: 5,
                dtype: DType::F64,
                shards,
                threads,
            };
            let (step_losses, grads) = trainer.step(&refs, |_| None).unwrap();
            let total = step_losses.total;
            assert!((total - full_total).abs() < 1e-12, "{shards} shards: {total} vs {full_total}");
            for (name, var) in &vars {
                let want = full_grads.get(var.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
                let got = grads.get(var.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
                let worst = want.iter().zip(&got).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
                assert!(worst < 1e-12, "{shards} shards, {threads} threads, {name}: differs by {worst}");
            }
        }
    }
}
