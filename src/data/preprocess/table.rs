//! CSV tables read with polars: `.csv` or `.csv.gz`, file and column names matched case-insensitively,
//! every column read as a string (ICD codes, NDCs and GSNs keep their leading zeros).

use super::stats::BadRows;
use anyhow::{anyhow, bail, Context, Result};
use polars::prelude::*;
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Finds `dir/NAME.csv` or `dir/NAME.csv.gz`, ignoring case (the demo and full MIMIC-III differ).
pub fn find(dir: &Path, name: &str) -> Result<PathBuf> {
    let wanted = [format!("{name}.csv"), format!("{name}.csv.gz")];
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading folder {}", dir.display()))?;
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            let file = p.file_name().unwrap_or_default().to_string_lossy().to_lowercase();
            wanted.iter().any(|w| w.eq_ignore_ascii_case(&file))
        })
        .collect();
    found.sort();
    found
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("{}: table {name} not found: expected {name}.csv or {name}.csv.gz", dir.display()))
}

/// The whole file as bytes, decompressed when the name ends in `.gz`.
fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if !path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gz")) {
        return Ok(raw);
    }
    let mut out = Vec::with_capacity(raw.len() * 6);
    flate2::read::MultiGzDecoder::new(&raw[..]).read_to_end(&mut out).map_err(|e| {
        anyhow!("{}: truncated or corrupt gzip data ({e}); expected a complete .csv.gz file", path.display())
    })?;
    Ok(out)
}

/// Column names of the header line, unquoted.
fn header(bytes: &[u8]) -> Vec<String> {
    let end = bytes.iter().position(|&b| b == b'\n').unwrap_or(bytes.len());
    let line = String::from_utf8_lossy(&bytes[..end]);
    line.trim_end_matches('\r').split(',').map(|c| c.trim().trim_matches('"').to_string()).collect()
}

/// A table's requested columns (lower-case names) as polars strings.
pub struct Table {
    pub path: PathBuf,
    /// The file name as shown in messages and stats.
    pub file: String,
    df: DataFrame,
    /// Lower-case requested name → actual column name (absent optional columns are missing).
    names: Vec<(String, String)>,
}

impl Table {
    /// Reads `required` columns (an error names the file and the missing column) and whichever of
    /// `optional` exist. Each entry lists accepted alternatives, e.g. `&["startdate", "starttime"]`.
    pub fn read(path: &Path, required: &[&[&str]], optional: &[&str]) -> Result<Self> {
        let bytes = read_bytes(path)?;
        let file = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let found = header(&bytes);
        let lookup = |name: &str| found.iter().find(|c| c.eq_ignore_ascii_case(name)).cloned();
        let mut names = Vec::new();
        for alternatives in required {
            let hit = alternatives.iter().find_map(|a| lookup(a).map(|actual| (a.to_string(), actual)));
            let Some(hit) = hit else {
                bail!(
                    "{}: missing column {}: expected a header with {} (case-insensitive); found {:?}",
                    path.display(),
                    alternatives.join(" or "),
                    alternatives.join(" or "),
                    found
                );
            };
            names.push(hit);
        }
        for name in optional {
            if let Some(actual) = lookup(name) {
                names.push((name.to_string(), actual));
            }
        }
        let columns: Arc<[PlSmallStr]> = names.iter().map(|(_, a)| PlSmallStr::from(a.as_str())).collect();
        let df = CsvReadOptions::default()
            .with_has_header(true)
            .with_infer_schema_length(Some(0))
            .with_columns(Some(columns))
            .into_reader_with_file_handle(Cursor::new(bytes))
            .finish()
            .map_err(|e| anyhow!("{}: cannot parse as CSV: {e}", path.display()))?;
        Ok(Self { path: path.to_path_buf(), file, df, names })
    }

    pub fn height(&self) -> usize {
        self.df.height()
    }

    /// The 1-based line of data row `row` (header = line 1; assumes no quoted line breaks).
    pub fn line(row: usize) -> usize {
        row + 2
    }

    /// The column requested as `name` (or as the first alternative of a required entry).
    pub fn col(&self, name: &str) -> Option<&StringChunked> {
        let actual = self.names.iter().find(|(n, _)| n == name).map(|(_, a)| a.as_str())?;
        Some(self.df.column(actual).ok()?.str().expect("columns are read as strings"))
    }

    /// Like [`Table::col`] for a required column.
    pub fn req(&self, name: &str) -> &StringChunked {
        self.col(name).unwrap_or_else(|| panic!("column {name} was requested as required"))
    }

    /// Values of a column, `None` for null or blank.
    pub fn values<'a>(&'a self, name: &str) -> Box<dyn Iterator<Item = Option<&'a str>> + 'a> {
        match self.col(name) {
            Some(c) => Box::new(c.iter().map(|v| v.map(str::trim).filter(|v| !v.is_empty()))),
            None => Box::new(std::iter::repeat_n(None, self.height())),
        }
    }
}

/// Parses an id column value; unparseable values are recorded in `bad` and give `None`.
pub fn parse_id(value: Option<&str>, table: &Table, row: usize, column: &str, bad: &mut BadRows) -> Option<u64> {
    let v = value?;
    match v.parse::<u64>() {
        Ok(id) => Some(id),
        Err(_) => {
            bad.record(&table.file, Table::line(row), column, v, "a non-negative integer id");
            None
        }
    }
}

/// Rows whose (subject_id, hadm_id) pair could not be read, by reason.
#[derive(Debug, Default)]
pub struct IdFailures {
    /// An id was present but not an integer (also recorded in `bad` with file and line).
    pub unparseable: usize,
    /// An id was empty.
    pub missing: usize,
}

/// Parses a row's subject and admission ids, counting the failures.
pub fn parse_row_ids(
    subject: Option<&str>,
    hadm: Option<&str>,
    table: &Table,
    row: usize,
    bad: &mut BadRows,
    failures: &mut IdFailures,
) -> Option<(u64, u64)> {
    let before = bad.total;
    let subject = parse_id(subject, table, row, "subject_id", bad);
    let hadm = parse_id(hadm, table, row, "hadm_id", bad);
    match (subject, hadm) {
        (Some(s), Some(h)) => Some((s, h)),
        _ if bad.total > before => {
            failures.unparseable += 1;
            None
        }
        _ => {
            failures.missing += 1;
            None
        }
    }
}
