//! Drug vocabulary inputs: the key → ATC mapping (`--drug-map`, or the reference's
//! `--ndc-rxcui` + `--rxcui-atc` pair), ATC names, the medication whitelist and DDI pairs.

use super::settings::MapKey;
use super::stats::BadRows;
use super::table::Table;
use anyhow::{bail, Context, Result};
use rustc_hash::{FxHashMap, FxHashSet};
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
    pub by_key: FxHashMap<String, Option<u32>>,
}

/// Whether `code` is an ATC code or a prefix of one: a letter, two digits, two letters, two digits
/// (`N02BE01`, `N02B`, `A12`, `C`); `garbage!` is not one.
fn is_atc(code: &str) -> bool {
    const SHAPE: &[fn(&u8) -> bool] = &[
        u8::is_ascii_alphabetic,
        u8::is_ascii_digit,
        u8::is_ascii_digit,
        u8::is_ascii_alphabetic,
        u8::is_ascii_alphabetic,
        u8::is_ascii_digit,
        u8::is_ascii_digit,
    ];
    !code.is_empty() && code.len() <= SHAPE.len() && code.as_bytes().iter().zip(SHAPE).all(|(b, ok)| ok(b))
}

impl DrugMap {
    /// Maps `key` to `atc` (cut to `chars`) unless the key is mapped already: the first row wins, as
    /// the reference's RXCUI deduplication. Returns the code of the earlier row when it differs.
    fn insert(&mut self, ids: &mut FxHashMap<String, u32>, key: &str, atc: &str, chars: usize) -> Option<String> {
        let code = atc.get(..chars);
        if let Some(&earlier) = self.by_key.get(key) {
            let earlier = earlier.map(|id| self.atc[id as usize].clone());
            return (earlier.as_deref() != code).then(|| earlier.unwrap_or_else(|| "(a shorter code)".into()));
        }
        let id = code.map(|code| {
            let next = self.atc.len() as u32;
            *ids.entry(code.to_string()).or_insert_with(|| {
                self.atc.push(code.to_string());
                next
            })
        });
        self.by_key.insert(key.to_string(), id);
        None
    }

    /// Reads the mapping; rows whose ATC value is not an ATC code, or that map a key already mapped
    /// to another code, are recorded in `bad` (the first row of a key is kept).
    pub fn load(source: &DrugMapSource, atc_chars: usize, bad: &mut BadRows) -> Result<Self> {
        let mut map = DrugMap::default();
        let mut ids = FxHashMap::default();
        let check_atc = |table: &Table, row: usize, column: &str, atc: &str, bad: &mut BadRows| {
            let ok = is_atc(atc);
            if !ok {
                bad.record(
                    &table.file,
                    table.line(row),
                    column,
                    atc,
                    "an ATC code: a letter, two digits, two letters, two digits, or a prefix (row skipped)",
                );
            }
            ok
        };
        match source {
            DrugMapSource::Direct { path, key } => {
                let table = Table::read(path, &[&[key.column()], &["atc"]], &[], bad)?;
                for (row, (k, atc)) in table.values(key.column()).zip(table.values("atc")).enumerate() {
                    let (Some(k), Some(atc)) = (k, atc) else { continue };
                    if !check_atc(&table, row, "atc", atc, bad) {
                        continue;
                    }
                    if let Some(earlier) = map.insert(&mut ids, k, atc, atc_chars) {
                        let expected =
                            format!("one ATC code per {}: an earlier row maps it to {earlier} (kept)", key.column());
                        bad.record(&table.file, table.line(row), "atc", atc, &expected);
                    }
                }
            }
            DrugMapSource::ViaRxcui { ndc_rxcui, rxcui_atc } => {
                let table = Table::read(rxcui_atc, &[&["rxcui"], &["atc4", "atc"]], &[], bad)?;
                let atc_col = if table.col("atc4").is_some() { "atc4" } else { "atc" };
                let mut rxcui_to_atc: FxHashMap<&str, &str> = FxHashMap::default();
                for (row, (r, atc)) in table.values("rxcui").zip(table.values(atc_col)).enumerate() {
                    if let (Some(r), Some(atc)) = (r, atc) {
                        if check_atc(&table, row, atc_col, atc, bad) {
                            // An RXCUI has several ATC codes; the first row wins, as the reference (§1.2).
                            rxcui_to_atc.entry(r).or_insert(atc);
                        }
                    }
                }
                for (ndc, rxcui) in read_ndc_rxcui(ndc_rxcui, bad)? {
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
fn read_ndc_rxcui(path: &Path, bad: &mut BadRows) -> Result<Vec<(String, String)>> {
    let is_txt = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("txt"));
    if !is_txt {
        let table = Table::read(path, &[&["ndc"], &["rxcui"]], &[], bad)?;
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
pub fn read_atc_names(path: &Path, lowercase: bool, bad: &mut BadRows) -> Result<FxHashMap<String, String>> {
    let table = Table::read(path, &[&["atc_code"], &["atc_name"]], &[], bad)?;
    let mut names = FxHashMap::default();
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
pub fn read_whitelist(path: &Path, atc_chars: usize) -> Result<FxHashSet<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading medication whitelist {}", path.display()))?;
    let codes: FxHashSet<String> = text
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
pub fn read_ddi_pairs(path: &Path, bad: &mut BadRows) -> Result<Vec<(String, String)>> {
    let table = Table::read(path, &[&["atc3_a", "atc_a"], &["atc3_b", "atc_b"]], &[], bad)?;
    let a_col = if table.col("atc3_a").is_some() { "atc3_a" } else { "atc_a" };
    let b_col = if table.col("atc3_b").is_some() { "atc3_b" } else { "atc_b" };
    let pairs = table.values(a_col).zip(table.values(b_col));
    Ok(pairs.filter_map(|(a, b)| Some((a?.to_string(), b?.to_string()))).collect())
}

#[cfg(test)]
mod tests {
    use super::is_atc;

    #[test]
    fn atc_codes_and_their_prefixes_are_recognised() {
        for yes in ["N02BE01", "N02B", "A12", "C0", "C", "a02bc01"] {
            assert!(is_atc(yes), "{yes}");
        }
        for no in ["garbage!", "garb", "", "T127", "N02BE01X", "N02BE0A", "1234"] {
            assert!(!is_atc(no), "{no}");
        }
    }
}
