//! The patient groups every metric is reported for: overall, single-visit (only the target visit,
//! reference doc §1.12), multi-visit, and a breakdown by the number of earlier visits.

/// Group keys in report order.
pub const GROUPS: [&str; 8] = [
    "overall",
    "single",
    "multi",
    "prior_visits_0",
    "prior_visits_1",
    "prior_visits_2",
    "prior_visits_3_5",
    "prior_visits_6_plus",
];

/// The indices into [`GROUPS`] a record with `prior_visits` earlier visits belongs to: overall,
/// single or multi, and its prior-visit bin (0, 1, 2, 3–5, 6+).
pub fn groups_of(prior_visits: usize) -> [usize; 3] {
    let bin = match prior_visits {
        0 => 3,
        1 => 4,
        2 => 5,
        3..=5 => 6,
        _ => 7,
    };
    [0, if prior_visits == 0 { 1 } else { 2 }, bin]
}

/// A row label for tables.
pub fn title(group: &str) -> &str {
    match group {
        "overall" => "Overall",
        "single" => "Single-visit",
        "multi" => "Multi-visit",
        "prior_visits_0" => "0 prior visits",
        "prior_visits_1" => "1 prior visit",
        "prior_visits_2" => "2 prior visits",
        "prior_visits_3_5" => "3–5 prior visits",
        "prior_visits_6_plus" => "6+ prior visits",
        other => other,
    }
}
