//! Drug products: every ATC substance gets one to three marketed products (NDC, GSN, formulary code,
//! strength, form, route), the rows PRESCRIPTIONS refers to. A product's NDC may be missing from
//! `aux/drug_map.csv` (unmapped) so the NDC → ATC funnel has something to count; base solutions
//! carry NDC "0" as they do in MIMIC.

use super::catalogue::Drug;
use super::sampling::chance;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::HashSet;

#[derive(Debug, Clone)]
pub struct Product {
    pub drug: u32,
    /// `DRUG` / `DRUG_NAME_POE` (MIMIC-III) / `drug` (MIMIC-IV).
    pub display: String,
    pub generic: String,
    pub formulary_code: String,
    pub gsn: String,
    /// 11 digits, or "0" for products without one (base solutions).
    pub ndc: String,
    pub strength: String,
    pub dose_value: f64,
    pub dose_unit: &'static str,
    pub form_unit: &'static str,
    pub route: &'static str,
    /// MIMIC-IV `form_rx` (set for IV products only, as in MIMIC-IV).
    pub form_rx: &'static str,
    pub drug_type: &'static str,
    /// Whether `aux/drug_map.csv` lists this NDC.
    pub mapped: bool,
}

/// How a substance is given, decided by its ATC group.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Family {
    Oral,
    Injection,
    Solution,
    Subcutaneous,
    Inhaled,
    Eye,
    Topical,
    Vaccine,
}

fn family(atc: &str) -> Family {
    let starts = |prefixes: &[&str]| prefixes.iter().any(|p| atc.starts_with(p));
    if starts(&["B05"]) {
        Family::Solution
    } else if starts(&["A10A", "B01AB", "L03"]) {
        Family::Subcutaneous
    } else if starts(&["J07"]) {
        Family::Vaccine
    } else if starts(&["R03"]) {
        Family::Inhaled
    } else if starts(&["S01"]) {
        Family::Eye
    } else if starts(&["D"]) {
        Family::Topical
    } else if starts(&[
        "N01", "C01C", "M03A", "L01", "B01AD", "B01AE03", "V03AB", "J01D", "J01CR05", "J01CF", "J01XA", "J01GB", "H01",
        "N05CD", "N05CM", "N02AB", "C08CA04", "B02", "H02AB04",
    ]) {
        Family::Injection
    } else {
        Family::Oral
    }
}

/// (strength text pattern, form unit, route, form_rx); `{s}` is the strength with its unit.
fn form(family: Family, variant: usize) -> (&'static str, &'static str, &'static str, &'static str) {
    match (family, variant % 2) {
        (Family::Oral, 0) => ("{s} Tab", "TAB", "PO", ""),
        (Family::Oral, _) => ("{s} Cap", "CAP", "PO/NG", ""),
        (Family::Injection, 0) => ("{s}/mL Vial", "VIAL", "IV", "VIAL"),
        (Family::Injection, _) => ("{s} Premix Bag", "BAG", "IV DRIP", "BAG"),
        (Family::Solution, _) => ("{s} Bag", "BAG", "IV", "BAG"),
        (Family::Subcutaneous, 0) => ("{s}/mL Syringe", "SYR", "SC", ""),
        (Family::Subcutaneous, _) => ("{s}/10mL Vial", "VIAL", "SC", "VIAL"),
        (Family::Inhaled, 0) => ("{s} Inhaler", "INH", "IH", ""),
        (Family::Inhaled, _) => ("{s}/2.5mL Neb", "NEB", "NEB", ""),
        (Family::Eye, _) => ("{s} Ophth Soln", "BTL", "BOTH EYES", ""),
        (Family::Topical, _) => ("{s} Cream", "TUBE", "TP", ""),
        (Family::Vaccine, _) => ("{s} Syringe", "SYR", "IM", ""),
    }
}

fn unit(atc: &str, family: Family) -> &'static str {
    match family {
        Family::Solution | Family::Vaccine => "mL",
        Family::Eye | Family::Topical => "%",
        _ if atc.starts_with("A10A") || atc == "B01AB01" => "UNIT",
        _ if atc == "A12BA01" => "mEq",
        _ if family == Family::Inhaled || atc.starts_with("N02AB") => "mcg",
        _ => "mg",
    }
}

fn strengths(unit: &str) -> &'static [f64] {
    match unit {
        "mL" => &[50.0, 100.0, 250.0, 500.0, 1000.0],
        "%" => &[0.1, 0.5, 1.0, 2.0],
        "UNIT" => &[100.0, 1000.0, 5000.0, 10000.0],
        "mEq" => &[10.0, 20.0, 40.0],
        "mcg" => &[25.0, 50.0, 90.0, 100.0, 250.0],
        _ => &[0.5, 1.0, 2.0, 2.5, 5.0, 10.0, 20.0, 25.0, 40.0, 50.0, 100.0, 200.0, 250.0, 500.0, 1000.0],
    }
}

/// A number the way MIMIC prints doses: `40`, `0.5`, `2.5`.
pub fn format_number(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{}", x as i64)
    } else {
        format!("{x:.3}").trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Dose multiples of a prescription row (derived from its row id).
pub fn dose_multiple(row: u64) -> f64 {
    [1.0, 1.0, 1.0, 2.0, 0.5][(super::sampling::mix(row, 3) % 5) as usize]
}

/// "potassium chloride" → "Potassium Chloride"; ward names for the base solutions.
fn display_name(drug: &Drug) -> String {
    match drug.atc.as_str() {
        "B05XA03" => return "Sodium Chloride 0.9%  Flush".into(),
        "B05BA03" => return "D5W".into(),
        "B05CB01" => return "NS".into(),
        "B05BB01" => return "Lactated Ringers".into(),
        _ => {}
    }
    let name = drug.name.replace(", combinations", " Combination");
    name.split(' ')
        .map(|w| {
            let mut c = w.chars();
            c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
        })
        .collect::<Vec<String>>()
        .join(" ")
}

/// Labeler prefixes of real US NDCs, so codes look like the ones in MIMIC.
const LABELERS: [&str; 24] = [
    "00904", "00121", "00338", "51079", "00074", "63323", "00409", "00054", "00182", "68084", "00536", "00006",
    "00781", "00093", "60505", "00172", "00378", "55390", "00264", "00143", "25021", "00641", "00310", "00087",
];

/// One to three products per drug; `products_of[drug]` lists them, the most used first.
pub fn build_products(drugs: &[Drug], rng: &mut ChaCha8Rng, unmapped_share: f64) -> (Vec<Product>, Vec<Vec<u32>>) {
    let mut products = Vec::new();
    let mut products_of = vec![Vec::new(); drugs.len()];
    let mut ndcs = HashSet::new();
    for (d, drug) in drugs.iter().enumerate() {
        let fam = family(&drug.atc);
        let count = 1 + usize::from(chance(rng, 0.5)) + usize::from(chance(rng, 0.25));
        let display = display_name(drug);
        for variant in 0..count {
            // Oral drugs often also come as an IV vial (pantoprazole, metoprolol, furosemide ...).
            let fam = if fam == Family::Oral && variant == 2 { Family::Injection } else { fam };
            let unit = unit(&drug.atc, fam);
            let options = strengths(unit);
            let value = options[rng.random_range(0..options.len())];
            let (pattern, form_unit, route, form_rx) = form(fam, variant);
            let strength = pattern.replace("{s}", &format!("{}{unit}", format_number(value)));
            let base = fam == Family::Solution && variant == 0;
            let ndc = if base {
                "0".to_string()
            } else {
                loop {
                    let labeler = LABELERS[rng.random_range(0..LABELERS.len())];
                    let ndc = format!("{labeler}{:04}{:02}", rng.random_range(0..10_000), rng.random_range(0..100));
                    if ndcs.insert(ndc.clone()) {
                        break ndc;
                    }
                }
            };
            let letters: String = display.chars().filter(char::is_ascii_alphabetic).take(4).collect();
            let injectable = matches!(fam, Family::Injection | Family::Solution);
            products_of[d].push(products.len() as u32);
            products.push(Product {
                drug: d as u32,
                generic: if injectable { format!("{display} (Injection)") } else { display.clone() },
                formulary_code: format!(
                    "{}{}{}",
                    letters.to_uppercase(),
                    format_number(value),
                    if injectable { "I" } else { "" }
                ),
                gsn: format!("{:06}", (products.len() as u64 * 7919 + 1031) % 1_000_000),
                ndc,
                strength,
                dose_value: value,
                dose_unit: unit,
                form_unit,
                route,
                form_rx,
                drug_type: if base {
                    "BASE"
                } else if injectable && drug.atc.starts_with("A12") {
                    "ADDITIVE"
                } else {
                    "MAIN"
                },
                mapped: !base && !chance(rng, unmapped_share),
                display: display.clone(),
            });
        }
    }
    (products, products_of)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_like_mimic() {
        assert_eq!(format_number(40.0), "40");
        assert_eq!(format_number(0.5), "0.5");
        assert_eq!(format_number(2.25), "2.25");
    }

    #[test]
    fn ndcs_are_unique_eleven_digits_or_zero() {
        let drugs: Vec<Drug> = ["N02BE01", "B05XA03", "A12BA01", "C03CA01"]
            .iter()
            .map(|a| Drug { atc: a.to_string(), name: "x y".into() })
            .collect();
        let (products, of) = build_products(&drugs, &mut super::super::sampling::stream(1, 0), 0.1);
        let real: Vec<_> = products.iter().filter(|p| p.ndc != "0").map(|p| &p.ndc).collect();
        assert!(real.iter().all(|n| n.len() == 11 && n.bytes().all(|b| b.is_ascii_digit())));
        assert_eq!(real.iter().collect::<HashSet<_>>().len(), real.len());
        // The sodium chloride flush's first product is the BASE solution without an NDC.
        assert_eq!(products[of[1][0] as usize].ndc, "0");
        assert_eq!(products[of[1][0] as usize].drug_type, "BASE");
        assert!(!products[of[1][0] as usize].mapped);
    }
}
