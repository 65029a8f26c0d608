//! CSV tables read with polars: `.csv` or `.csv.gz`, file and column names matched case-insensitively,
//! every column read as a string (ICD codes, NDCs and GSNs keep their leading zeros). Eager, not a lazy
//! scan: every bad value is reported with its file line, which the byte scan below finds and a scan
//! would not keep; the steps after reading are hand-written where polars measured slower (`meds.rs`).

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

/// Where each CSV record of a file starts, and which records have another number of fields than the
/// header: one pass over the bytes that knows quotes (a quoted field may hold commas and line breaks).
struct Records {
    /// The 1-based file line of each data record, in order (blank lines are not records).
    lines: Vec<usize>,
    /// (record index, fields found) of records whose field count differs from the header's.
    ragged: Vec<(usize, usize)>,
}

impl Records {
    fn scan(bytes: &[u8]) -> Self {
        let (mut lines, mut ragged) = (Vec::new(), Vec::new());
        let (mut header_fields, mut fields, mut in_quotes) = (None, 1usize, false);
        let (mut line, mut record_line, mut record_start) = (1usize, 1usize, 0usize);
        let mut end_record = |at: usize, start: usize, fields: usize, record_line: usize| {
            let text = &bytes[start..at];
            if text.is_empty() || text == b"\r" {
                return; // a blank line, as the CSV reader skips it
            }
            match header_fields {
                None => header_fields = Some(fields),
                Some(expected) => {
                    if fields != expected {
                        ragged.push((lines.len(), fields));
                    }
                    lines.push(record_line);
                }
            }
        };
        // Line by line (memchr finds the line ends), each line eight bytes at a time (`count_fields`).
        // A quoted line break continues the record. (Stepping from comma to quote to newline with
        // memchr cost a quarter of a 4M-row preprocess: MIMIC rows are full of both.)
        let mut line_start = 0;
        for at in memchr::memchr_iter(b'\n', bytes).chain(std::iter::once(bytes.len())) {
            let (commas, quoted) = count_fields(&bytes[line_start..at], in_quotes);
            fields += commas;
            in_quotes = quoted;
            line_start = at + 1;
            if at == bytes.len() {
                break;
            }
            line += 1;
            if !in_quotes {
                end_record(at, record_start, fields, record_line);
                (fields, record_start, record_line) = (1, at + 1, line);
            }
        }
        end_record(bytes.len(), record_start, fields, record_line);
        Self { lines, ragged }
    }
}

/// The commas outside quotes in `line` (which holds no line break), starting inside quotes when
/// `quoted`, and whether the line ends inside quotes. A quote flips the state (a doubled quote flips
/// it twice). Eight bytes at a time: the bytes equal to `"` and to `,` as bit masks, the quote state
/// at each byte as the prefix XOR of the quote bits.
fn count_fields(line: &[u8], mut quoted: bool) -> (usize, bool) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    // Bit i of the result: byte i of `word` is `byte` (exact: no borrow crosses bytes).
    let bits = |word: u64, byte: u8| -> u32 {
        let x = word ^ (ONES * u64::from(byte));
        let zero = !(((x & LOW7) + LOW7) | x | LOW7);
        ((zero >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56) as u32
    };
    let mut commas = 0;
    let mut words = line.chunks_exact(8);
    for chunk in &mut words {
        let word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        let (quotes, comma) = (bits(word, b'"'), bits(word, b','));
        let mut inside = quotes ^ (quotes << 1);
        inside ^= inside << 2;
        inside ^= inside << 4;
        if quoted {
            inside = !inside;
        }
        commas += (comma & !inside & 0xff).count_ones() as usize;
        quoted = inside & 0x80 != 0;
    }
    for &b in words.remainder() {
        quoted ^= b == b'"';
        commas += usize::from(b == b',' && !quoted);
    }
    (commas, quoted)
}

/// Fails with the line and column of the first byte that is not UTF-8.
fn check_utf8(bytes: &[u8], path: &Path) -> Result<()> {
    let Err(e) = std::str::from_utf8(bytes) else { return Ok(()) };
    let at = e.valid_up_to();
    let line_start = memchr::memrchr(b'\n', &bytes[..at]).map_or(0, |i| i + 1);
    let line = memchr::memchr_iter(b'\n', &bytes[..at]).count() + 1;
    let column = String::from_utf8_lossy(&bytes[line_start..at]).chars().count() + 1;
    bail!("{}:{line}:{column}: invalid UTF-8 (byte 0x{:02x}); expected UTF-8 text", path.display(), bytes[at])
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
    /// The file line of each row.
    lines: Vec<usize>,
}

impl Table {
    /// Reads `required` columns (an error names the file and the missing column) and whichever of
    /// `optional` exist. Each entry lists accepted alternatives, e.g. `&["startdate", "starttime"]`.
    /// Rows with more or fewer fields than the header are left out and recorded in `bad`.
    pub fn read(path: &Path, required: &[&[&str]], optional: &[&str], bad: &mut BadRows) -> Result<Self> {
        let bytes = read_bytes(path)?;
        check_utf8(&bytes, path)?;
        let records = Records::scan(&bytes);
        let file = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let found = header(&bytes);
        let long_rows = records.ragged.iter().any(|&(_, fields)| fields > found.len());
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
            // Rows with extra fields are read (and dropped below, counted) rather than failing the
            // whole table; asked for only when there are any (it slows the reader by a fifth).
            .map_parse_options(|o| o.with_truncate_ragged_lines(long_rows))
            .into_reader_with_file_handle(Cursor::new(bytes))
            .finish()
            .map_err(|e| anyhow!("{}: cannot parse as CSV: {e}", path.display()))?;
        if df.height() != records.lines.len() {
            bail!(
                "{}: the CSV reader found {} rows where {} records were expected; expected a CSV file with one \
                 header line and double-quoted fields",
                path.display(),
                df.height(),
                records.lines.len()
            );
        }
        let mut table = Self { path: path.to_path_buf(), file, df, names, lines: records.lines };
        table.drop_ragged(&records.ragged, found.len(), bad)?;
        Ok(table)
    }

    /// Removes the rows whose field count is not the header's, recording each in `bad`.
    fn drop_ragged(&mut self, ragged: &[(usize, usize)], expected: usize, bad: &mut BadRows) -> Result<()> {
        if ragged.is_empty() {
            return Ok(());
        }
        let mut keep = vec![true; self.lines.len()];
        for &(row, fields) in ragged {
            keep[row] = false;
            let what = format!("{expected} comma-separated fields, as the header has");
            bad.record(&self.file, self.lines[row], "(row)", &format!("{fields} fields"), &what);
        }
        let mask = BooleanChunked::from_slice(PlSmallStr::from_static("keep"), &keep);
        self.df =
            self.df.filter(&mask).map_err(|e| anyhow!("{}: dropping malformed rows: {e}", self.path.display()))?;
        self.lines = self.lines.iter().zip(&keep).filter(|(_, k)| **k).map(|(l, _)| *l).collect();
        Ok(())
    }

    pub fn height(&self) -> usize {
        self.df.height()
    }

    /// Fails, naming the file, when the table has a header but no data rows (a cohort table).
    pub fn non_empty(self) -> Result<Self> {
        if self.height() == 0 {
            bail!("{}: no data rows, only a header; expected the table's rows", self.path.display());
        }
        Ok(self)
    }

    /// The 1-based file line of data row `row` (the header is line 1).
    pub fn line(&self, row: usize) -> usize {
        self.lines[row]
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
            bad.record(&table.file, table.line(row), column, v, "a non-negative integer id");
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

#[cfg(test)]
mod tests {
    use super::Records;

    /// The word-at-a-time count equals a byte-by-byte walk on random lines of quotes, commas and
    /// letters, from either starting state.
    #[test]
    fn word_at_a_time_field_count_equals_the_byte_walk() {
        let mut rng = crate::nn::rng::TensorRng::new(5);
        for _ in 0..2000 {
            let len = rng.below(70);
            let line: Vec<u8> = (0..len).map(|_| [b'a', b',', b'"', b'x', b'\r'][rng.below(5)]).collect();
            for start in [false, true] {
                let (mut commas, mut quoted) = (0, start);
                for &b in &line {
                    quoted ^= b == b'"';
                    commas += usize::from(b == b',' && !quoted);
                }
                assert_eq!(
                    super::count_fields(&line, start),
                    (commas, quoted),
                    "{:?} {start}",
                    String::from_utf8_lossy(&line)
                );
            }
        }
    }

    #[test]
    fn records_know_quotes_line_breaks_blank_lines_and_ragged_rows() {
        let text = b"a,b,c\r\n1,2,3\r\n\n\"x,\"\"y\"\"\nz\",2,3\n4,5\n6,7,8,9\n\"q\",1,2";
        let r = Records::scan(text);
        // Records start on lines 2, 4 (spanning 5), 6, 7 and 8; line 3 is blank.
        assert_eq!(r.lines, [2, 4, 6, 7, 8]);
        assert_eq!(r.ragged, [(2, 2), (3, 4)]);
    }
}
