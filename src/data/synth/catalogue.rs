//! The code catalogue: real ICD-9-CM / ICD-10-CM diagnoses, ICD-9-CM / ICD-10-PCS procedures and WHO
//! ATC drugs with their names (the embedded `conditions.txt` and `atc.txt`), grown into realistic
//! vocabulary sizes by generated sibling codes ("tails") that share a real code's category.

use super::sampling::chance;
use anyhow::{bail, ensure, Context, Result};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, HashMap, HashSet};

const ATC_TEXT: &str = include_str!("atc.txt");
const CONDITIONS_TEXT: &str = include_str!("conditions.txt");

/// One diagnosis or procedure: its ICD-9 code (MIMIC-III, and MIMIC-IV before October 2015) and its
/// ICD-10 twin (MIMIC-IV afterwards).
#[derive(Debug, Clone)]
pub struct Concept {
    pub icd9: String,
    pub short_title: String,
    pub long_title: String,
    pub icd10: String,
    /// False for the few generated codes left out of the D_ICD dictionaries, as in real MIMIC.
    pub titled: bool,
}

/// An ATC level-5 substance.
#[derive(Debug, Clone)]
pub struct Drug {
    pub atc: String,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgePreference {
    Newborn,
    Young,
    Mid,
    Old,
    Any,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SexPreference {
    Male,
    Female,
    FemaleOnly,
    Any,
}

/// A latent condition: the codes it drives, most frequent first. Indices point into the catalogue.
#[derive(Debug, Clone)]
pub struct Condition {
    pub label: String,
    pub weight: f64,
    pub age: AgePreference,
    pub sex: SexPreference,
    /// `(concept, weight)`: real codes by file order (Zipf), then their generated siblings.
    pub diagnoses: Vec<(u32, f64)>,
    pub procedures: Vec<(u32, f64)>,
    pub chronic: Vec<u32>,
    /// Each acute drug is linked to the real diagnosis at the same position (cycling), see `model.rs`.
    pub acute: Vec<u32>,
    pub real_diagnoses: usize,
}

#[derive(Debug, Clone)]
pub struct Catalogue {
    pub diagnoses: Vec<Concept>,
    pub procedures: Vec<Concept>,
    pub drugs: Vec<Drug>,
    /// Every ATC code of every level with its name.
    pub atc_names: BTreeMap<String, String>,
    /// The `general` block: common comorbidities, ward procedures, ward drugs with base rates.
    pub general: Condition,
    pub background: Vec<(u32, f64)>,
    pub conditions: Vec<Condition>,
    /// Concepts before this index are real catalogue codes; later ones are generated tails.
    pub real_diagnoses: usize,
    pub real_procedures: usize,
    pub real_drugs: usize,
}

/// Qualifiers for generated diagnosis siblings: (short, long).
const DIAGNOSIS_QUALIFIERS: [(&str, &str); 14] = [
    ("NEC", "not elsewhere classified"),
    ("unsp", "unspecified"),
    ("w comp", "with complication"),
    ("w/o comp", "without complication"),
    ("acute", "acute"),
    ("chr", "chronic"),
    ("init", "initial episode of care"),
    ("subsq", "subsequent episode of care"),
    ("recur", "recurrent"),
    ("late eff", "late effect"),
    ("bilat", "bilateral"),
    ("lt", "left side"),
    ("rt", "right side"),
    ("sev", "severe"),
];
const PROCEDURE_QUALIFIERS: [(&str, &str); 7] = [
    ("NEC", "not elsewhere classified"),
    ("open", "open approach"),
    ("perc", "percutaneous approach"),
    ("endo", "via natural or artificial opening endoscopic"),
    ("revis", "revision"),
    ("bilat", "bilateral"),
    ("lap", "laparoscopic"),
];
/// ICD-10-PCS characters (no I, no O).
const PCS_ALPHABET: &[u8] = b"0123456789ABCDEFGHJKLMNPQRSTUVWXYZ";
/// Share of a real code's weight inside a condition that goes to its generated siblings.
const TAIL_WEIGHT_SHARE: f64 = 0.25;
/// MIMIC-III short titles are at most 24 characters.
const SHORT_TITLE_LEN: usize = 24;

fn parse_age(s: &str) -> Option<AgePreference> {
    Some(match s {
        "newborn" => AgePreference::Newborn,
        "young" => AgePreference::Young,
        "mid" => AgePreference::Mid,
        "old" => AgePreference::Old,
        "any" => AgePreference::Any,
        _ => return None,
    })
}

fn parse_sex(s: &str) -> Option<SexPreference> {
    Some(match s {
        "m" => SexPreference::Male,
        "f" => SexPreference::Female,
        "f_only" => SexPreference::FemaleOnly,
        "any" => SexPreference::Any,
        _ => return None,
    })
}

/// Parses `atc.txt`, adds a `<substance>, combinations` code (xxxxx5n) per substance and returns
/// the names of every level, the substances (real ones first) and the number of real ones.
fn parse_atc() -> Result<(BTreeMap<String, String>, Vec<Drug>, usize)> {
    let mut names = BTreeMap::new();
    for (i, line) in ATC_TEXT.lines().enumerate().filter(|(_, l)| !l.starts_with('#') && !l.trim().is_empty()) {
        let (code, name) =
            line.split_once('\t').with_context(|| format!("atc.txt:{}: expected CODE<TAB>name", i + 1))?;
        ensure!(matches!(code.len(), 1 | 3 | 4 | 5 | 7), "atc.txt:{}: {code:?} is no ATC code length", i + 1);
        ensure!(names.insert(code.to_string(), name.to_string()).is_none(), "atc.txt:{}: duplicate {code}", i + 1);
    }
    for code in names.keys() {
        for level in [1, 3, 4, 5] {
            ensure!(
                level >= code.len() || names.contains_key(&code[..level]),
                "atc.txt: {code} has no parent {}",
                &code[..level]
            );
        }
    }
    let real: Vec<Drug> =
        names.iter().filter(|(c, _)| c.len() == 7).map(|(c, n)| Drug { atc: c.clone(), name: n.clone() }).collect();
    let mut drugs = real.clone();
    for d in &real {
        let combo = format!("{}5{}", &d.atc[..5], &d.atc[6..]);
        if !names.contains_key(&combo) {
            let name = format!("{}, combinations", d.name);
            names.insert(combo.clone(), name.clone());
            drugs.push(Drug { atc: combo, name });
        }
    }
    Ok((names, drugs, real.len()))
}

impl Catalogue {
    /// The embedded catalogue, with `dx_tail` generated siblings per real diagnosis and `px_tail` per
    /// real procedure, drawn from `rng`.
    pub fn build(rng: &mut ChaCha8Rng, dx_tail: usize, px_tail: usize, untitled_share: f64) -> Result<Self> {
        let (atc_names, drugs, real_drugs) = parse_atc()?;
        let drug_index: HashMap<&str, u32> =
            drugs.iter().enumerate().map(|(i, d)| (d.atc.as_str(), i as u32)).collect();
        let Conditions { mut diagnoses, mut procedures, mut blocks, background } = parse_conditions(&drug_index)?;
        ensure!(blocks.len() > 1 && blocks[0].label == "general", "conditions.txt: the first block must be `general`");
        if let Some(empty) = blocks.iter().find(|b| b.diagnoses.is_empty()) {
            bail!("conditions.txt: block {:?} has no diagnoses", empty.label);
        }
        let (real_diagnoses, real_procedures) = (diagnoses.len(), procedures.len());
        let dx_children =
            grow_tails(&mut diagnoses, rng, dx_tail, untitled_share, dx9_sibling, dx10_sibling, &DIAGNOSIS_QUALIFIERS);
        let px_children =
            grow_tails(&mut procedures, rng, px_tail, untitled_share, px9_sibling, pcs_sibling, &PROCEDURE_QUALIFIERS);
        for block in &mut blocks {
            block.diagnoses = with_tails(&block.diagnoses, &dx_children);
            block.procedures = with_tails(&block.procedures, &px_children);
        }
        let general = blocks.remove(0);
        Ok(Self {
            diagnoses,
            procedures,
            drugs,
            atc_names,
            general,
            background,
            conditions: blocks,
            real_diagnoses,
            real_procedures,
            real_drugs,
        })
    }
}

/// What `conditions.txt` defines: the real ICD concepts, the condition blocks (the first is
/// `general`) and the background drug rates.
struct Conditions {
    diagnoses: Vec<Concept>,
    procedures: Vec<Concept>,
    blocks: Vec<Condition>,
    background: Vec<(u32, f64)>,
}

/// Parses `conditions.txt`; an error names its line and what was expected.
fn parse_conditions(drug_index: &HashMap<&str, u32>) -> Result<Conditions> {
    let mut diagnoses: Vec<Concept> = Vec::new();
    let mut procedures: Vec<Concept> = Vec::new();
    let mut blocks: Vec<Condition> = Vec::new();
    let mut background = Vec::new();
    for (i, raw) in CONDITIONS_TEXT.lines().enumerate() {
        let at = || format!("conditions.txt:{}", i + 1);
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (kind, rest) = line.split_once(' ').with_context(|| format!("{}: expected `kind value`", at()))?;
        if kind == "@" {
            let f: Vec<&str> = rest.split('|').map(str::trim).collect();
            ensure!(f.len() == 4, "{}: expected `@ label | weight | age | sex`", at());
            blocks.push(Condition {
                label: f[0].to_string(),
                weight: f[1].parse().with_context(|| format!("{}: weight {:?}", at(), f[1]))?,
                age: parse_age(f[2]).with_context(|| format!("{}: age {:?}", at(), f[2]))?,
                sex: parse_sex(f[3]).with_context(|| format!("{}: sex {:?}", at(), f[3]))?,
                diagnoses: vec![],
                procedures: vec![],
                chronic: vec![],
                acute: vec![],
                real_diagnoses: 0,
            });
            continue;
        }
        let block = blocks.last_mut().with_context(|| format!("{}: codes before the first `@` block", at()))?;
        match kind {
            "dx" | "px" => {
                let (list, codes) = if kind == "dx" {
                    (&mut diagnoses, &mut block.diagnoses)
                } else {
                    (&mut procedures, &mut block.procedures)
                };
                let index = code_line(list, kind, rest, &at)?;
                codes.push((index, 1.0 / (codes.len() + 1) as f64));
                block.real_diagnoses = block.diagnoses.len();
            }
            "chronic" | "acute" => {
                let ids = rest
                    .split_whitespace()
                    .map(|a| drug_index.get(a).copied().with_context(|| format!("{}: unknown ATC {a}", at())))
                    .collect::<Result<Vec<u32>>>()?;
                if kind == "chronic" { &mut block.chronic } else { &mut block.acute }.extend(ids);
            }
            "bg" => {
                let (atc, rate) = rest.split_once(' ').with_context(|| format!("{}: expected `bg ATC rate`", at()))?;
                let id = *drug_index.get(atc.trim()).with_context(|| format!("{}: unknown ATC {atc}", at()))?;
                background.push((id, rate.trim().parse::<f64>().with_context(|| format!("{}: rate {rate:?}", at()))?));
            }
            _ => bail!("{}: unknown line kind {kind:?}", at()),
        }
    }
    Ok(Conditions { diagnoses, procedures, blocks, background })
}

/// A `dx`/`px` line: a code defined earlier (`CODE`) or a new one (`ICD9 | short | long | ICD10`),
/// appended to `list`; returns its index there.
fn code_line(list: &mut Vec<Concept>, kind: &str, rest: &str, at: &dyn Fn() -> String) -> Result<u32> {
    let f: Vec<&str> = rest.split('|').map(str::trim).collect();
    let index = match f.len() {
        1 => list
            .iter()
            .position(|c| c.icd9 == f[0])
            .with_context(|| format!("{}: {} not defined earlier", at(), f[0]))?,
        4 => {
            ensure!(!list.iter().any(|c| c.icd9 == f[0] || c.icd10 == f[3]), "{}: {} defined twice", at(), f[0]);
            ensure!(f[1].len() <= SHORT_TITLE_LEN, "{}: short title over {SHORT_TITLE_LEN} characters", at());
            list.push(Concept {
                icd9: f[0].into(),
                short_title: f[1].into(),
                long_title: f[2].into(),
                icd10: f[3].into(),
                titled: true,
            });
            list.len() - 1
        }
        _ => bail!("{}: expected `{kind} CODE` or `{kind} ICD9 | short | long | ICD10`", at()),
    } as u32;
    Ok(index)
}

/// Appends each real code's generated siblings after the real codes, sharing its weight.
fn with_tails(real: &[(u32, f64)], children: &[Vec<u32>]) -> Vec<(u32, f64)> {
    let mut out = real.to_vec();
    for &(parent, weight) in real {
        let kids = &children[parent as usize];
        let harmonic: f64 = (1..=kids.len()).map(|k| 1.0 / k as f64).sum();
        out.extend(
            kids.iter().enumerate().map(|(k, &c)| (c, weight * TAIL_WEIGHT_SHARE / ((k + 1) as f64 * harmonic))),
        );
    }
    out
}

type Sibling = fn(&str, &mut ChaCha8Rng) -> String;

/// Adds up to `per_code` generated siblings per real concept (both code systems unique), titled
/// "<parent title> <qualifier>"; returns the children of every real concept.
fn grow_tails(
    list: &mut Vec<Concept>,
    rng: &mut ChaCha8Rng,
    per_code: usize,
    untitled_share: f64,
    sibling9: Sibling,
    sibling10: Sibling,
    qualifiers: &[(&str, &str)],
) -> Vec<Vec<u32>> {
    let real = list.len();
    let mut used9: HashSet<String> = list.iter().map(|c| c.icd9.clone()).collect();
    let mut used10: HashSet<String> = list.iter().map(|c| c.icd10.clone()).collect();
    let mut children = vec![Vec::new(); real];
    for (parent, kids) in children.iter_mut().enumerate() {
        for _ in 0..per_code {
            let fresh = |used: &mut HashSet<String>, make: Sibling, code: &str, rng: &mut ChaCha8Rng| {
                (0..40).map(|_| make(code, rng)).find(|c| used.insert(c.clone()))
            };
            let (p9, p10) = (list[parent].icd9.clone(), list[parent].icd10.clone());
            let (Some(icd9), Some(icd10)) =
                (fresh(&mut used9, sibling9, &p9, rng), fresh(&mut used10, sibling10, &p10, rng))
            else {
                continue;
            };
            let (q_short, q_long) = qualifiers[rng.random_range(0..qualifiers.len())];
            let short: String =
                format!("{} {q_short}", list[parent].short_title).chars().take(SHORT_TITLE_LEN).collect();
            list.push(Concept {
                icd9,
                short_title: short.trim_end().to_string(),
                long_title: format!("{}, {q_long}", list[parent].long_title),
                icd10,
                titled: !chance(rng, untitled_share),
            });
            kids.push((list.len() - 1) as u32);
        }
    }
    children
}

fn digits(rng: &mut ChaCha8Rng, n: usize) -> String {
    (0..n).map(|_| char::from(b'0' + rng.random_range(0..10u8))).collect()
}

/// ICD-9-CM diagnosis sibling: same 3-character category (4 for E codes), 4 or 5 characters.
fn dx9_sibling(code: &str, rng: &mut ChaCha8Rng) -> String {
    let category = if code.starts_with('E') { &code[..4] } else { &code[..3] };
    let extra = if category.len() == 4 || chance(rng, 0.35) { 1 } else { 2 };
    format!("{category}{}", digits(rng, extra))
}

/// ICD-10-CM sibling: same 3-character category plus 1 to 3 characters (7 for injury codes).
fn dx10_sibling(code: &str, rng: &mut ChaCha8Rng) -> String {
    let category = &code[..3];
    if code.len() == 7 {
        return format!("{category}{}{}", digits(rng, 3), &code[6..]);
    }
    let extra = rng.random_range(1..=3);
    format!("{category}{}", digits(rng, extra))
}

/// ICD-9-CM procedure sibling: same 2-digit category, 3 or 4 characters.
fn px9_sibling(code: &str, rng: &mut ChaCha8Rng) -> String {
    let extra = if chance(rng, 0.2) { 1 } else { 2 };
    format!("{}{}", &code[..2], digits(rng, extra))
}

/// ICD-10-PCS sibling: the same first five characters, new body-part/approach/device/qualifier tail.
fn pcs_sibling(code: &str, rng: &mut ChaCha8Rng) -> String {
    let tail: String = (0..2).map(|_| char::from(PCS_ALPHABET[rng.random_range(0..PCS_ALPHABET.len())])).collect();
    format!("{}{tail}", &code[..5])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::synth::sampling::stream;

    #[test]
    fn catalogue_parses_and_codes_are_unique_and_well_formed() {
        let cat = Catalogue::build(&mut stream(1, 0), 12, 4, 0.01).unwrap();
        for list in [&cat.diagnoses, &cat.procedures] {
            let nine: HashSet<_> = list.iter().map(|c| &c.icd9).collect();
            let ten: HashSet<_> = list.iter().map(|c| &c.icd10).collect();
            assert_eq!(nine.len(), list.len());
            assert_eq!(ten.len(), list.len());
        }
        assert!(cat.diagnoses.len() > 2000, "{}", cat.diagnoses.len());
        assert!(cat.procedures.len() > 250, "{}", cat.procedures.len());
        assert!(cat.diagnoses.iter().all(|c| c.short_title.len() <= SHORT_TITLE_LEN));
        assert!(cat
            .procedures
            .iter()
            .all(|c| c.icd10.len() == 7 && c.icd10.bytes().all(|b| PCS_ALPHABET.contains(&b))));
        // The 4-character (ATC level 3) groups the brief asks for: about 100-150.
        let atc3: HashSet<_> = cat.drugs.iter().map(|d| &d.atc[..4]).collect();
        assert!((100..=150).contains(&atc3.len()), "{}", atc3.len());
        assert!(cat.drugs.len() >= 300, "{}", cat.drugs.len());
        assert_eq!(cat.real_drugs, cat.drugs.iter().filter(|d| !d.name.ends_with(", combinations")).count());
        // Diagnosis and procedure strings coincide for some codes, as in real ICD-9 (e.g. 3961).
        let px: HashSet<_> = cat.procedures.iter().map(|c| &c.icd9).collect();
        assert!(cat.diagnoses.iter().any(|c| c.icd9 == "3961" && px.contains(&c.icd9)));
    }
}
