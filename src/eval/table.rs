//! Markdown tables shaped like the paper's: one row per model (or per group), columns PRAUC, Jaccard,
//! F1, DDI and #Meds, each cell `mean ± std` over the resampling rounds (the whole-split value when
//! there were no rounds).

use crate::eval::groups::{title, GROUPS};
use crate::eval::report::{GroupReport, Metric, MetricsReport, Stat};
use std::fmt::Write;

pub const COLUMNS: [(Metric, &str, usize); 5] = [
    (Metric::Prauc, "PRAUC", 4),
    (Metric::Jaccard, "Jaccard", 4),
    (Metric::F1, "F1", 4),
    (Metric::DdiRate, "DDI", 4),
    (Metric::AvgMeds, "#Meds", 2),
];

/// A table cell: `mean ± std` over the rounds, else the whole-split value, else a dash.
pub fn cell(stat: Option<&Stat>, decimals: usize) -> String {
    match stat {
        None => "–".to_string(),
        Some(Stat { mean: Some(mean), std: Some(std), .. }) => format!("{mean:.decimals$} ± {std:.decimals$}"),
        Some(stat) => format!("{:.decimals$}", stat.value),
    }
}

/// Markdown cells must not contain a bare `|`.
fn escape(label: &str) -> String {
    label.replace('|', "\\|")
}

/// One markdown table; `with_n` adds a record-count column.
fn render(first_header: &str, rows: &[(String, Option<&GroupReport>)], with_n: bool) -> String {
    let mut header = vec![first_header.to_string()];
    if with_n {
        header.push("n".into());
    }
    header.extend(COLUMNS.iter().map(|(_, name, _)| name.to_string()));
    let mut out = format!("| {} |\n|{}\n", header.join(" | "), "---|".repeat(header.len()));
    for (label, group) in rows {
        let mut cells = vec![escape(label)];
        if with_n {
            cells.push(group.map_or(0, |g| g.n).to_string());
        }
        cells.extend(COLUMNS.iter().map(|(metric, _, decimals)| cell(group.and_then(|g| g.get(*metric)), *decimals)));
        writeln!(out, "| {} |", cells.join(" | ")).expect("writing to a String");
    }
    out
}

fn resampling_note(report: &MetricsReport) -> String {
    if report.rounds == 0 {
        "values on the whole split".to_string()
    } else {
        format!(
            "mean ± std over {} rounds of {:.0}% subsamples without replacement (seed {})",
            report.rounds,
            100.0 * report.subsample_fraction,
            report.seed
        )
    }
}

/// One report, a row per patient group (groups without records show n = 0 and dashes).
pub fn group_table(report: &MetricsReport) -> String {
    let rows: Vec<_> = GROUPS.iter().map(|g| (title(g).to_string(), report.group(g))).collect();
    let mut out = render("Group", &rows, true);
    write!(out, "\nPrediction: p {} {}; {}.", report.threshold_rule, report.threshold, resampling_note(report))
        .expect("writing to a String");
    if let Some(label_ddi) = report.group("overall").and_then(|g| g.get(Metric::LabelDdiRate)) {
        write!(out, " DDI rate of the true medications: {:.4}.", label_ddi.value).expect("writing to a String");
    }
    out.push('\n');
    out
}

/// Several runs side by side, a row per run, all showing `group` (e.g. `overall`).
pub fn compare_table(runs: &[(String, MetricsReport)], group: &str) -> String {
    let rows: Vec<_> = runs.iter().map(|(label, report)| (label.clone(), report.group(group))).collect();
    let mut out = render("Model", &rows, false);
    writeln!(out, "\nGroup: {}.", title(group)).expect("writing to a String");
    for (label, report) in runs {
        writeln!(out, "- {}: p {} {}; {}.", label, report.threshold_rule, report.threshold, resampling_note(report))
            .expect("writing to a String");
    }
    out
}
