//! Drug vocabulary inputs: the key → ATC mapping (`--drug-map`, or the reference's
//! `--ndc-rxcui` + `--rxcui-atc` pair), ATC names, the medication whitelist and DDI pairs.

use super::hash::{FxMap, FxSet};
use super::settings::MapKey;
use super::table::Table;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// Where the prescription key → ATC mapping comes from.
#[derive(Debug, Clone)]
pub enum DrugMapSource {
    /// A CSV with the key column (`ndc` or `gsn`) and an `atc` column.
    Direct { path: PathBuf, key: MapKey },
    /// The reference's SafeDrug pair: NDC → RXCUI (`ndc2RXCUI.txt` dict literal, or a CSV `ndc,rxcui`)
    /// and RXCUI → ATC (`RXCUI2atc4.csv`, columns `RXCUI` and `ATC4`; first row per RXCUI, as §1.2).
    ViaRxcui { ndc_rxcui: PathBuf, rxcui_atc: PathBuf },
}

impl DrugMapSource {
    /// The prescriptions column the mapping is keyed by.
    pub fn key(&self) -> MapKey {
        match self {
            DrugMapSource::Direct { key, .. } => *key,
            DrugMapSource::ViaRxcui { .. } => MapKey::Ndc,
        }
    }
}

/// Prescription key → ATC code id (codes cut to the configured length).
#[derive(Debug, Default)]
pub struct DrugMap {
    /// Id → ATC code at the configured level.
    pub atc: Vec<String>,
    /// Key → ATC id; `None` where the mapped code is shorter than the configured level.
    pub by_key: FxMap<String, Option<u32>>,
}

impl DrugMap {
    fn insert(&mut self, ids: &mut FxMap<String, u32>, key: &str, atc: &str, chars: usize) {
        if self.by_key.contains_key(key) {
            return; // first row wins, as the reference's RXCUI deduplication
        }
        let id = atc.get(..chars).map(|code| {
            let next = self.atc.len() as u32;
            *ids.entry(code.to_string()).or_insert_with(|| {
                self.atc.push(code.to_string());
                next
            })
        });
        self.by_key.insert(key.to_string(), id);
    }

    pub fn load(source: &DrugMapSource, atc_chars: usize) -> Result<Self> {
        let mut map = DrugMap::default();
        let mut ids = FxMap::default();
        match source {
            DrugMapSource::Direct { path, key } => {
                let table = Table::read(path, &[&[key.column()], &["atc"]], &[])?;
                for (k, atc) in table.values(key.column()).zip(table.values("atc")) {
                    if let (Some(k), Some(atc)) = (k, atc) {
                        map.insert(&mut ids, k, atc, atc_chars);
                    }
                }
            }
            DrugMapSource::ViaRxcui { ndc_rxcui, rxcui_atc } => {
                let table = Table::read(rxcui_atc, &[&["rxcui"], &["atc4", "atc"]], &[])?;
                let atc_col = if table.col("atc4").is_some() { "atc4" } else { "atc" };
                let mut rxcui_to_atc: FxMap<&str, &str> = FxMap::default();
                for (r, atc) in table.values("rxcui").zip(table.values(atc_col)) {
                    if let (Some(r), Some(atc)) = (r, atc) {
                        rxcui_to_atc.entry(r).or_insert(atc);
                    }
                }
                for (ndc, rxcui) in read_ndc_rxcui(ndc_rxcui)? {
                    if let Some(atc) = rxcui_to_atc.get(rxcui.as_str()) {
                        map.insert(&mut ids, &ndc, atc, atc_chars);
                    }
                }
            }
        }
        if map.by_key.is_empty() {
            bail!("the drug map ({source:?}) has no usable rows: expected key and ATC code columns with values");
        }
        Ok(map)
    }
}

/// NDC → RXCUI pairs from the GAMENet/SafeDrug Python dict literal (`{'ndc': u'rxcui', ...}`, a `.txt`)
/// or a CSV with `ndc` and `rxcui` columns. Pairs with an empty RXCUI are left out (reference §1.2).
fn read_ndc_rxcui(path: &Path) -> Result<Vec<(String, String)>> {
    let is_txt = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("txt"));
    if !is_txt {
        let table = Table::read(path, &[&["ndc"], &["rxcui"]], &[])?;
        let pairs = table.values("ndc").zip(table.values("rxcui"));
        return Ok(pairs.filter_map(|(n, r)| Some((n?.to_string(), r?.to_string()))).collect());
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let quoted: Vec<&str> = text.split('\'').skip(1).step_by(2).collect();
    if !text.trim_start().starts_with('{') || !quoted.len().is_multiple_of(2) {
        bail!(
            "{}: expected a Python dict literal {{'NDC': u'RXCUI', ...}} with quoted keys and values",
            path.display()
        );
    }
    let pairs = quoted.chunks_exact(2).filter(|kv| !kv[1].trim().is_empty());
    Ok(pairs.map(|kv| (kv[0].trim().to_string(), kv[1].trim().to_string())).collect())
}

/// ATC code → name from a CSV with `atc_code` and `atc_name` (the WHO ATC-DDD or ethos files); a
/// repeated code keeps its first name.
pub fn read_atc_names(path: &Path, lowercase: bool) -> Result<FxMap<String, String>> {
    let table = Table::read(path, &[&["atc_code"], &["atc_name"]], &[])?;
    let mut names = FxMap::default();
    for (code, name) in table.values("atc_code").zip(table.values("atc_name")) {
        if let (Some(code), Some(name)) = (code, name) {
            names.entry(code.to_string()).or_insert_with(|| {
                if lowercase {
                    name.to_lowercase()
                } else {
                    name.to_string()
                }
            });
        }
    }
    Ok(names)
}

/// Allowed ATC codes (the reference's SMILES filter, §1.2 step 5, as a list): one code per line,
/// blank lines and `#` comments ignored; codes are cut to the configured length.
pub fn read_whitelist(path: &Path, atc_chars: usize) -> Result<FxSet<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading medication whitelist {}", path.display()))?;
    let codes: FxSet<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.chars().take(atc_chars).collect())
        .collect();
    if codes.is_empty() {
        bail!("{}: the medication whitelist is empty: expected one ATC code per line", path.display());
    }
    Ok(codes)
}

/// Unordered ATC pairs from a CSV with columns `atc3_a,atc3_b` (or `atc_a,atc_b`).
pub fn read_ddi_pairs(path: &Path) -> Result<Vec<(String, String)>> {
    let table = Table::read(path, &[&["atc3_a", "atc_a"], &["atc3_b", "atc_b"]], &[])?;
    let a_col = if table.col("atc3_a").is_some() { "atc3_a" } else { "atc_a" };
    let b_col = if table.col("atc3_b").is_some() { "atc3_b" } else { "atc_b" };
    let pairs = table.values(a_col).zip(table.values(b_col));
    Ok(pairs.filter_map(|(a, b)| Some((a?.to_string(), b?.to_string()))).collect())
}
