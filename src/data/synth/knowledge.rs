//! The knowledge corpus `synth` writes beside the tables (`knowledge/*.txt`): textbook-style text
//! about the synthetic world — the kind of knowledge a pretrained language model brings from the
//! literature — for `leader pretrain`. It states each condition's diagnoses and procedures (by the
//! names the prompts use: MIMIC-III short titles, MIMIC-IV long titles, the code where a concept has
//! no title; generated siblings included), the drug classes that treat it (lower-case ATC-3 names,
//! as prompts name medications) with example substances, which are chronic and which acute, the
//! ward drugs, and the interacting class pairs. It never mentions a patient or an admission. Each
//! paragraph is one document; the text depends on the world (that is, the seed and the catalogue)
//! alone, so it is byte-identical for a seed.

use super::catalogue::{Concept, Condition};
use super::world::World;
use super::Flavor;
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// The files written, in `knowledge/`.
pub const FILES: [&str; 3] = ["conditions.txt", "drugs.txt", "interactions.txt"];

/// Writes the corpus into `dir`; returns the number of paragraphs per file.
pub fn write_knowledge(world: &World, dir: &Path) -> Result<[usize; 3]> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let names = Names::new(world);
    let texts = [conditions(world, &names), drugs(world, &names), interactions(world, &names)];
    let mut counts = [0; 3];
    for ((file, paragraphs), count) in FILES.iter().zip(&texts).zip(&mut counts) {
        let path = dir.join(file);
        std::fs::write(&path, paragraphs.join("\n\n") + "\n").with_context(|| format!("writing {}", path.display()))?;
        *count = paragraphs.len();
    }
    Ok(counts)
}

/// Names as the prompts show them.
struct Names<'a> {
    world: &'a World,
}

impl<'a> Names<'a> {
    fn new(world: &'a World) -> Self {
        Self { world }
    }

    fn concept(&self, c: &Concept) -> String {
        match (c.titled, self.world.flavor) {
            (true, Flavor::Mimic3) => c.short_title.clone(),
            (true, Flavor::Mimic4) => c.long_title.clone(),
            (false, Flavor::Mimic3) => format!("code {}", c.icd9),
            (false, Flavor::Mimic4) => format!("code {} (ICD-10 {})", c.icd9, c.icd10),
        }
    }

    fn diagnosis(&self, i: u32) -> String {
        self.concept(&self.world.catalogue.diagnoses[i as usize])
    }

    fn procedure(&self, i: u32) -> String {
        self.concept(&self.world.catalogue.procedures[i as usize])
    }

    /// The lower-case ATC-3 name of a drug's class (the code where the class has no name).
    fn class_of(&self, drug: u32) -> String {
        self.class(&self.world.catalogue.drugs[drug as usize].atc[..4])
    }

    fn class(&self, atc3: &str) -> String {
        self.world.catalogue.atc_names.get(atc3).map_or_else(|| atc3.to_string(), |n| n.to_lowercase())
    }

    fn substance(&self, drug: u32) -> String {
        self.world.catalogue.drugs[drug as usize].name.to_lowercase()
    }
}

/// Distinct items in first-seen order, joined by ", ".
fn list(items: impl IntoIterator<Item = String>) -> String {
    let mut seen: Vec<String> = Vec::new();
    for item in items {
        if !seen.contains(&item) {
            seen.push(item);
        }
    }
    seen.join(", ")
}

/// The acute drugs a real diagnosis (by its position among the condition's real codes) calls for.
fn acute_for(c: &Condition, position: usize) -> Vec<u32> {
    c.acute.iter().enumerate().filter(|(j, _)| j % c.real_diagnoses.max(1) == position).map(|(_, &d)| d).collect()
}

/// Per condition: an overview, then one paragraph per diagnosis naming what it calls for, in the
/// words the prompts end with ("The patient should be prescribed: ...").
fn conditions(world: &World, n: &Names) -> Vec<String> {
    let mut out = Vec::new();
    for c in &world.catalogue.conditions {
        let label = &c.label;
        let chronic = list(c.chronic.iter().map(|&d| n.class_of(d)));
        let acute = list(c.acute.iter().map(|&d| n.class_of(d)));
        let mut overview = format!("{label}. ");
        let real = c.diagnoses.iter().take(c.real_diagnoses).map(|&(d, _)| n.diagnosis(d));
        let _ = write!(overview, "Patients with {label} are coded with diagnoses such as {}.", list(real));
        if !c.procedures.is_empty() {
            let procedures = list(c.procedures.iter().map(|&(p, _)| n.procedure(p)));
            let _ = write!(overview, " Procedures done for {label}: {procedures}.");
        }
        if !chronic.is_empty() {
            let examples = list(c.chronic.iter().map(|&d| n.substance(d)));
            let _ = write!(
                overview,
                " Long-term treatment of {label}: {chronic} (for example {examples}); these drugs are continued at every admission."
            );
        }
        if !acute.is_empty() {
            let examples = list(c.acute.iter().map(|&d| n.substance(d)));
            let _ = write!(
                overview,
                " In an acute episode of {label}, patients are given {acute} (for example {examples})."
            );
        }
        out.push(overview);
        for (position, &(d, _)) in c.diagnoses.iter().enumerate() {
            let name = n.diagnosis(d);
            // Only real codes call for acute drugs (generated siblings are not linked to any).
            let acute = if position < c.real_diagnoses { acute_for(c, position) } else { Vec::new() };
            let drugs: Vec<String> = c.chronic.iter().chain(&acute).map(|&d| n.class_of(d)).collect();
            let sign = if position < c.real_diagnoses { "is a sign of" } else { "is a form of" };
            let mut text = format!("{name} {sign} {label}.");
            if !drugs.is_empty() {
                let _ = write!(
                    text,
                    " A patient with diagnoses: {name}. The patient should be prescribed: {}.",
                    list(drugs)
                );
            }
            out.push(text);
        }
    }
    out
}

/// What the corpus says of one drug class: its substances, the conditions it is taken for
/// long-term, and those it is given for in acute episodes.
type ClassUse = (Vec<String>, Vec<String>, Vec<String>);

/// Per drug class: its substances, and the conditions it treats, chronically or acutely; then the
/// ward drugs.
fn drugs(world: &World, n: &Names) -> Vec<String> {
    let cat = &world.catalogue;
    let mut classes: BTreeMap<&str, ClassUse> = BTreeMap::new();
    for c in &cat.conditions {
        for (drugs, chronic) in [(&c.chronic, true), (&c.acute, false)] {
            for &d in drugs {
                let entry = classes.entry(&cat.drugs[d as usize].atc[..4]).or_default();
                entry.0.push(n.substance(d));
                if chronic { &mut entry.1 } else { &mut entry.2 }.push(c.label.clone());
            }
        }
    }
    let mut out = Vec::new();
    for (code, (substances, chronic, acute)) in &classes {
        let mut text = format!("{} ({code}) includes {}.", n.class(code), list(substances.iter().cloned()));
        if !chronic.is_empty() {
            let _ = write!(text, " It is taken long-term for {}.", list(chronic.iter().cloned()));
        }
        if !acute.is_empty() {
            let _ = write!(text, " It is given in acute episodes of {}.", list(acute.iter().cloned()));
        }
        out.push(text);
    }
    let ward = list(cat.background.iter().map(|&(d, _)| n.class_of(d)));
    out.push(format!("Ward drugs: many admitted patients are given {ward}, whatever their condition."));
    out
}

/// One paragraph per interacting pair of classes.
fn interactions(world: &World, n: &Names) -> Vec<String> {
    world
        .ddi_pairs
        .iter()
        .map(|(a, b)| {
            let (a, b) = (n.class(a), n.class(b));
            format!(
                "{a} and {b} interact: giving both raises the risk of adverse events; avoid prescribing them together."
            )
        })
        .collect()
}
