//! The "world" of one run: the catalogue with its generated tails, the drug products, and the
//! seeded hidden structure of the latent model (which age group and sex each drug leans to, which
//! profile values each condition leans to, the Zipf noise distributions, the DDI pairs).

use super::catalogue::Catalogue;
use super::products::{build_products, Product};
use super::profile::{admission_type, profile_fields};
use super::sampling::{chance, stream, Weighted, WORLD_STREAM};
use super::{Flavor, SynthConfig};
use anyhow::Result;
use rand::seq::SliceRandom;
use rand::Rng;
use std::collections::BTreeSet;

/// Real interacting ATC level-3 pairs (bleeding, QT, hyperkalaemia, sedation, CYP3A4 ...), kept in
/// every world; random pairs are added to reach the configured density.
const KNOWN_DDI: [(&str, &str); 20] = [
    ("B01A", "M01A"),
    ("B01A", "N06A"),
    ("N02A", "N05B"),
    ("N02A", "N05C"),
    ("C09A", "C03D"),
    ("C09A", "A12B"),
    ("C09C", "C03D"),
    ("C07A", "C08D"),
    ("C01B", "C01A"),
    ("C01B", "B01A"),
    ("J01M", "C01B"),
    ("N05A", "C01B"),
    ("J01F", "C10A"),
    ("J02A", "C10A"),
    ("J01E", "B01A"),
    ("N03A", "B01A"),
    ("L04A", "J02A"),
    ("N06A", "N02A"),
    ("M01A", "C03C"),
    ("M01A", "C09A"),
];

/// Age buckets the drug preferences use: under 45, 45-69, 70 and over.
pub fn age_bucket(age: u32) -> usize {
    match age {
        0..=44 => 0,
        45..=69 => 1,
        _ => 2,
    }
}

pub struct World {
    pub flavor: Flavor,
    pub catalogue: Catalogue,
    pub products: Vec<Product>,
    /// The products of each drug (indices into `products`), most used first.
    pub products_of: Vec<Vec<u32>>,
    pub product_choice: Vec<Weighted>,
    /// `[drug][age bucket][male as usize]`: multiplier on every probability of giving the drug.
    pub drug_modifier: Vec<[[f64; 2]; 3]>,
    /// `[condition][profile field]`: the value a condition's patients lean to.
    pub profile_preference: Vec<Vec<u16>>,
    pub admission_preference: Vec<u16>,
    pub condition_diagnoses: Vec<Weighted>,
    pub condition_procedures: Vec<Weighted>,
    /// Noise draws: a global Zipf law over all codes (common real codes ranked first).
    pub diagnosis_noise: (Vec<u32>, Weighted),
    pub procedure_noise: (Vec<u32>, Weighted),
    pub drug_noise: (Vec<u32>, Weighted),
    pub comorbidity: Weighted,
    pub profile_marginal: Vec<Weighted>,
    pub admission_marginal: Weighted,
    pub admission_location: Weighted,
    pub discharge_location: Weighted,
    /// Sorted, unique `(a, b)` with `a < b`, 4-character ATC codes.
    pub ddi_pairs: Vec<(String, String)>,
}

/// A global noise order: `first` in its order, then the other real codes shuffled, then the
/// generated ones shuffled; Zipf weights by rank.
fn noise_order(first: &[u32], real: usize, total: usize, rng: &mut rand_chacha::ChaCha8Rng) -> (Vec<u32>, Weighted) {
    let mut order = first.to_vec();
    let mut rest: Vec<u32> = (0..real as u32).filter(|c| !first.contains(c)).collect();
    rest.shuffle(rng);
    order.extend(rest);
    let mut tail: Vec<u32> = (real as u32..total as u32).collect();
    tail.shuffle(rng);
    order.extend(tail);
    let weights = Weighted::zipf(order.len(), 1.05, 2.0);
    (order, weights)
}

impl World {
    pub fn build(cfg: &SynthConfig) -> Result<Self> {
        let flavor = cfg.flavor;
        let mut rng = stream(cfg.seed, WORLD_STREAM);
        let catalogue = Catalogue::build(
            &mut rng,
            cfg.diagnoses.tail_per_code,
            cfg.procedures.tail_per_code,
            cfg.diagnoses.untitled_share,
        )?;
        let (products, products_of) = build_products(&catalogue.drugs, &mut rng, cfg.drugs.unmapped_product_share);
        let product_choice =
            products_of.iter().map(|ps| Weighted::new((0..ps.len()).map(|k| if k == 0 { 3.0 } else { 1.0 }))).collect();
        let drug_modifier = (0..catalogue.drugs.len())
            .map(|_| {
                let age = match rng.random_range(0..10) {
                    0..=2 => [1.8, 1.0, 0.5],
                    3..=5 => [0.5, 1.0, 1.8],
                    _ => [1.0, 1.0, 1.0],
                };
                // [female, male]
                let sex = match rng.random_range(0..10) {
                    0..=1 => [1.6, 0.6],
                    2..=3 => [0.6, 1.6],
                    _ => [1.0, 1.0],
                };
                age.map(|a| sex.map(|s| a * s))
            })
            .collect();
        let fields = profile_fields(flavor);
        let conditions = &catalogue.conditions;
        // A condition leans to one of the six most common values of each field.
        let mut lean = |values: &[(&str, f64)]| rng.random_range(0..values.len().min(6)) as u16;
        let profile_preference = conditions.iter().map(|_| fields.iter().map(|f| lean(f.values)).collect()).collect();
        let admission_preference = conditions.iter().map(|_| lean(admission_type(flavor).values)).collect();
        let weights_of = |codes: &[(u32, f64)]| Weighted::new(codes.iter().map(|c| c.1));
        let condition_diagnoses = conditions.iter().map(|c| weights_of(&c.diagnoses)).collect();
        let condition_procedures = conditions
            .iter()
            .map(|c| if c.procedures.is_empty() { Weighted::new([1.0]) } else { weights_of(&c.procedures) })
            .collect();
        let general_dx: Vec<u32> =
            catalogue.general.diagnoses.iter().take(catalogue.general.real_diagnoses).map(|c| c.0).collect();
        let general_px: Vec<u32> = catalogue
            .general
            .procedures
            .iter()
            .map(|c| c.0)
            .filter(|&c| (c as usize) < catalogue.real_procedures)
            .collect();
        let diagnosis_noise = noise_order(&general_dx, catalogue.real_diagnoses, catalogue.diagnoses.len(), &mut rng);
        let procedure_noise = noise_order(&general_px, catalogue.real_procedures, catalogue.procedures.len(), &mut rng);
        let ward_drugs: Vec<u32> = catalogue.background.iter().map(|b| b.0).collect();
        let drug_noise = noise_order(&ward_drugs, catalogue.real_drugs, catalogue.drugs.len(), &mut rng);
        let comorbidity = Weighted::zipf(general_dx.len(), 0.7, 0.0);
        let ddi_pairs = ddi_pairs(&catalogue, cfg.drugs.ddi_density, &mut rng);
        let marginal = |values: &[(&str, f64)]| Weighted::new(values.iter().map(|v| v.1));
        Ok(Self {
            flavor,
            profile_marginal: fields.iter().map(|f| marginal(f.values)).collect(),
            admission_marginal: marginal(admission_type(flavor).values),
            admission_location: marginal(super::profile::admission_location(flavor)),
            discharge_location: marginal(super::profile::discharge_location(flavor)),
            catalogue,
            products,
            products_of,
            product_choice,
            drug_modifier,
            profile_preference,
            admission_preference,
            condition_diagnoses,
            condition_procedures,
            diagnosis_noise,
            procedure_noise,
            drug_noise,
            comorbidity,
            ddi_pairs,
        })
    }

    /// The general block's real diagnosis at `rank` (the comorbidities).
    pub fn general_diagnosis(&self, rank: usize) -> u32 {
        self.catalogue.general.diagnoses[rank].0
    }
}

/// The known pairs plus random pairs over the catalogue's 4-character codes at `density`.
fn ddi_pairs(catalogue: &Catalogue, density: f64, rng: &mut rand_chacha::ChaCha8Rng) -> Vec<(String, String)> {
    let codes: BTreeSet<&str> = catalogue.drugs.iter().map(|d| &d.atc[..4]).collect();
    let codes: Vec<&str> = codes.into_iter().collect();
    let mut pairs = BTreeSet::new();
    for (a, b) in KNOWN_DDI {
        let (a, b) = if a < b { (a, b) } else { (b, a) };
        pairs.insert((a.to_string(), b.to_string()));
    }
    for (i, a) in codes.iter().enumerate() {
        for b in &codes[i + 1..] {
            if chance(rng, density) {
                pairs.insert((a.to_string(), b.to_string()));
            }
        }
    }
    pairs.into_iter().collect()
}
