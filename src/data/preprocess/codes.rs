//! Code tables shared by diagnoses, procedures and medications: interning, the frequency (top-N) or
//! reused-vocabulary filter, and the diagnosis/procedure readers (reference §1.3).

use super::stats::Report;
use super::table::{parse_row_ids, IdFailures, Table};
use anyhow::Result;
use rustc_hash::{FxHashMap, FxHashSet};

/// Which codes survive the frequency step.
pub enum Keep<'v> {
    /// The N most frequent (0 = all); ties broken by code so the result never depends on hashing.
    TopN(usize),
    /// Exactly the codes of a reused vocabulary; nothing else is filtered.
    Vocab(&'v FxHashSet<String>),
}

impl Keep<'_> {
    /// A keep-flag per code id, given each code's frequency.
    pub fn select(&self, codes: &[String], counts: &[usize]) -> Vec<bool> {
        match self {
            Keep::TopN(n) if *n == 0 || *n >= codes.len() => vec![true; codes.len()],
            Keep::TopN(n) => {
                let mut order: Vec<usize> = (0..codes.len()).collect();
                order.sort_by(|&a, &b| counts[b].cmp(&counts[a]).then_with(|| codes[a].cmp(&codes[b])));
                let mut keep = vec![false; codes.len()];
                for &i in &order[..*n] {
                    keep[i] = true;
                }
                keep
            }
            Keep::Vocab(vocab) => codes.iter().map(|c| vocab.contains(c)).collect(),
        }
    }

    /// The funnel label of this filter.
    pub fn describe(&self, kind: &str) -> String {
        match self {
            Keep::TopN(0) => format!("{kind}: keep all codes"),
            Keep::TopN(n) => format!("{kind}: keep the {n} most frequent codes"),
            Keep::Vocab(_) => format!("{kind}: keep codes of the reused vocabulary"),
        }
    }

    /// Why a dropped row was dropped.
    pub fn reason(&self) -> &'static str {
        match self {
            Keep::TopN(_) => "code outside the most frequent",
            Keep::Vocab(_) => "code outside the reused vocabulary",
        }
    }
}

/// Codes of one admission, in table order, each once.
#[derive(Debug, Clone)]
pub struct CodeVisit {
    pub subject: u64,
    pub codes: Vec<u32>,
}

/// One code table reduced to admissions.
#[derive(Debug, Default)]
pub struct Coded {
    /// Id → code as written to records.
    pub codes: Vec<String>,
    /// Id → (ICD version or "", raw code): the key of the name tables.
    pub name_keys: Vec<(String, String)>,
    pub visits: FxHashMap<u64, CodeVisit>,
}

/// How to read one ICD table.
pub struct IcdSpec<'a> {
    /// "diagnoses" or "procedures" (funnel labels).
    pub kind: &'a str,
    /// Prefix codes with their ICD version (`ICD10:I10`).
    pub version_prefix: bool,
    pub keep: Keep<'a>,
}

struct Row {
    hadm: u64,
    subject: u64,
    seq: u32,
    row: u32,
    code: u32,
}

/// Reads a DIAGNOSES_ICD / PROCEDURES_ICD table: drops rows without an admission or code, removes
/// duplicate (admission, code) rows, applies the frequency filter (frequency = admissions with the
/// code, as the reference's row count after deduplication), orders codes by `seq_num` then file order.
/// Hand-written, not polars' lazy API, by measurement (anchor cohort, 2 cores, identical outputs):
/// polars took 0.33 s against 0.25 s on DIAGNOSES_ICD (deduplication 0.15 s against 0.085 s).
pub fn read_icd(table: &Table, spec: &IcdSpec, report: &mut Report) -> Result<Coded> {
    let (mut out, mut rows) = read_rows(table, spec, report)?;
    let counts = deduplicate(&mut rows, out.codes.len(), &table.file, report)?;
    let keep = spec.keep.select(&out.codes, &counts);
    let before = rows.len();
    rows.retain(|r| keep[r.code as usize]);
    let dropped = before - rows.len();
    if matches!(spec.keep, Keep::Vocab(_)) {
        *report.out_of_vocab.kind_mut(spec.kind) += dropped;
    }
    report.funnel.push(&spec.keep.describe(spec.kind), "rows", before, &[(spec.keep.reason(), dropped)])?;
    for r in rows {
        out.visits
            .entry(r.hadm)
            .or_insert_with(|| CodeVisit { subject: r.subject, codes: Vec::new() })
            .codes
            .push(r.code);
    }
    Ok(out)
}

/// The rows with ids and a code, each code interned (`Coded::codes` and `name_keys`, no visits yet).
fn read_rows(table: &Table, spec: &IcdSpec, report: &mut Report) -> Result<(Coded, Vec<Row>)> {
    let code_col = if table.col("icd9_code").is_some() { "icd9_code" } else { "icd_code" };
    let mut ids: FxHashMap<(&str, &str), u32> = FxHashMap::default();
    let mut out = Coded::default();
    let mut rows = Vec::with_capacity(table.height());
    let (mut id_failures, mut no_code) = (IdFailures::default(), 0);
    let columns = table
        .values("subject_id")
        .zip(table.values("hadm_id"))
        .zip(table.values(code_col))
        .zip(table.values("icd_version"))
        .zip(table.values("seq_num"));
    for (i, ((((subject, hadm), code), version), seq)) in columns.enumerate() {
        let Some((subject, hadm)) = parse_row_ids(subject, hadm, table, i, &mut report.bad, &mut id_failures) else {
            continue;
        };
        let Some(code) = code else {
            no_code += 1;
            continue;
        };
        let seq = match seq.map(str::parse::<u32>) {
            Some(Ok(s)) => s,
            Some(Err(_)) => {
                let raw = seq.unwrap_or_default();
                report.bad.record(&table.file, table.line(i), "seq_num", raw, "an integer (row kept, sorted last)");
                u32::MAX
            }
            None => u32::MAX,
        };
        let version = version.unwrap_or("");
        let key = (if spec.version_prefix { version } else { "" }, code);
        let next = out.codes.len() as u32;
        let id = *ids.entry(key).or_insert_with(|| {
            out.codes.push(if spec.version_prefix { format!("ICD{version}:{code}") } else { code.to_string() });
            out.name_keys.push((version.to_string(), code.to_string()));
            next
        });
        rows.push(Row { hadm, subject, seq, row: i as u32, code: id });
    }
    let name = &table.file;
    report.funnel.push(
        &format!("{name}: read"),
        "rows",
        table.height(),
        &[
            ("missing subject_id or hadm_id", id_failures.missing),
            ("unparseable id", id_failures.unparseable),
            ("missing code", no_code),
        ],
    )?;
    Ok((out, rows))
}

/// Keeps each (admission, code) once, in (admission, `seq_num`, file) order; returns each code's
/// frequency: the admissions it is left in (the reference's row count after deduplication).
fn deduplicate(rows: &mut Vec<Row>, codes: usize, file: &str, report: &mut Report) -> Result<Vec<usize>> {
    let read = rows.len();
    rows.sort_unstable_by_key(|r| (r.hadm, r.seq, r.row));
    let mut seen: FxHashSet<(u64, u32)> = FxHashSet::default();
    rows.retain(|r| seen.insert((r.hadm, r.code)));
    let mut counts = vec![0usize; codes];
    for r in rows.iter() {
        counts[r.code as usize] += 1;
    }
    let why = "duplicate (admission, code) rows";
    report.funnel.push(&format!("{file}: deduplicate"), "rows", read, &[(why, read - rows.len())])?;
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_n_keeps_the_most_frequent_and_breaks_ties_by_code() {
        let codes: Vec<String> = ["b", "a", "c", "d"].iter().map(|s| s.to_string()).collect();
        // counts: b=5, a=3, c=3, d=1 → top 2 = b and the tie a/c resolved to "a".
        let keep = Keep::TopN(2).select(&codes, &[5, 3, 3, 1]);
        assert_eq!(keep, vec![true, true, false, false]);
        assert_eq!(Keep::TopN(0).select(&codes, &[5, 3, 3, 1]), vec![true; 4]);
        let vocab: FxHashSet<String> = ["c".to_string()].into_iter().collect();
        assert_eq!(Keep::Vocab(&vocab).select(&codes, &[5, 3, 3, 1]), vec![false, false, true, false]);
    }
}
