//! The auxiliary files a MIMIC user assembles by hand, here written alongside the cohort:
//! `aux/drug_map.csv` (`ndc,atc`, ATC level 5), `aux/atc_names.csv` (`atc_code,atc_name`, every
//! level) and `aux/ddi_pairs.csv` (`atc3_a,atc3_b`, each pair sorted, 4-character codes).

use super::world::World;
use anyhow::{Context, Result};
use std::path::Path;

/// Writes `rows` under `header` to `path` as CSV (fields quoted where needed); returns the row count.
fn write<R: IntoIterator<Item = [S; 2]>, S: AsRef<[u8]>>(path: &Path, header: [&str; 2], rows: R) -> Result<u64> {
    let context = || format!("writing {}", path.display());
    let mut out = csv::Writer::from_path(path).with_context(context)?;
    out.write_record(header).with_context(context)?;
    let mut n = 0;
    for row in rows {
        out.write_record(row).with_context(context)?;
        n += 1;
    }
    out.flush().with_context(context)?;
    Ok(n)
}

/// Writes the three files into `dir` (the cohort's `aux/` folder); returns their row counts.
pub fn write_aux(world: &World, dir: &Path) -> Result<[u64; 3]> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let drugs = &world.catalogue.drugs;
    let mapped = world.products.iter().filter(|p| p.mapped).map(|p| [p.ndc.as_str(), &drugs[p.drug as usize].atc]);
    let names = world.catalogue.atc_names.iter().map(|(code, name)| [code.as_str(), name.as_str()]);
    let pairs = world.ddi_pairs.iter().map(|(a, b)| [a.as_str(), b.as_str()]);
    Ok([
        write(&dir.join("drug_map.csv"), ["ndc", "atc"], mapped)?,
        write(&dir.join("atc_names.csv"), ["atc_code", "atc_name"], names)?,
        write(&dir.join("ddi_pairs.csv"), ["atc3_a", "atc3_b"], pairs)?,
    ])
}
