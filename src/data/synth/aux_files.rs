//! The auxiliary files a MIMIC user assembles by hand, here written alongside the cohort:
//! `aux/drug_map.csv` (`ndc,atc`, ATC level 5), `aux/atc_names.csv` (`atc_code,atc_name`, every
//! level) and `aux/ddi_pairs.csv` (`atc3_a,atc3_b`, each pair sorted, 4-character codes).

use super::world::World;
use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::path::Path;

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// Writes the three files into `dir` (the cohort's `aux/` folder); returns their row counts.
pub fn write_aux(world: &World, dir: &Path) -> Result<[u64; 3]> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut map = String::from("ndc,atc\n");
    let mut mapped = 0;
    for p in world.products.iter().filter(|p| p.mapped) {
        writeln!(map, "{},{}", p.ndc, world.catalogue.drugs[p.drug as usize].atc)?;
        mapped += 1;
    }
    write(&dir.join("drug_map.csv"), &map)?;

    let mut names = String::from("atc_code,atc_name\n");
    for (code, name) in &world.catalogue.atc_names {
        writeln!(names, "{code},{}", csv_field(name))?;
    }
    write(&dir.join("atc_names.csv"), &names)?;

    let mut ddi = String::from("atc3_a,atc3_b\n");
    for (a, b) in &world.ddi_pairs {
        writeln!(ddi, "{a},{b}")?;
    }
    write(&dir.join("ddi_pairs.csv"), &ddi)?;
    Ok([mapped, world.catalogue.atc_names.len() as u64, world.ddi_pairs.len() as u64])
}
