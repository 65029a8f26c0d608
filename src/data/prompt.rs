//! Teacher prompts rendered from template files (`prompts/<set>/{main,history}.txt`, see
//! `prompts/README.md`). Templates are used verbatim; `{name}` placeholders are checked when loaded.

use anyhow::{bail, Context, Result};
use std::path::Path;

/// Profile fields a main template may name; a field the source lacks renders as "unknown".
pub const PROFILE_FIELDS: [&str; 9] =
    ["age", "gender", "insurance", "language", "religion", "admission_type", "marital_status", "ethnicity", "race"];
const MAIN_SLOTS: [&str; 5] = ["visit_num", "history", "diagnoses", "procedures", "profile"];
const HISTORY_SLOTS: [&str; 4] = ["visit_no", "diagnoses", "procedures", "medications"];

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Slot(String),
}

/// One parsed template: literal text and named slots.
#[derive(Debug, Clone)]
struct Template(Vec<Piece>);

impl Template {
    fn parse(text: &str, allowed: &[&str], what: &str) -> Result<Self> {
        let mut pieces = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            let close = rest[open..]
                .find('}')
                .with_context(|| format!("{what}: unclosed '{{' at byte {}", text.len() - rest.len() + open))?;
            let name = &rest[open + 1..open + close];
            if !allowed.contains(&name) {
                bail!("{what}: unknown placeholder {{{name}}}; expected one of {allowed:?}");
            }
            if open > 0 {
                pieces.push(Piece::Text(rest[..open].to_string()));
            }
            pieces.push(Piece::Slot(name.to_string()));
            rest = &rest[open + close + 1..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        Ok(Self(pieces))
    }

    fn render(&self, out: &mut String, mut fill: impl FnMut(&str, &mut String)) {
        for piece in &self.0 {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Slot(name) => fill(name, out),
            }
        }
    }
}

/// Names (or codes, where no name exists) of one visit's codes.
#[derive(Debug, Clone, Default)]
pub struct PromptVisit<'a> {
    pub diagnoses: Vec<&'a str>,
    pub procedures: Vec<&'a str>,
    pub medications: Vec<&'a str>,
}

/// Everything one prompt shows.
#[derive(Debug, Clone, Default)]
pub struct PromptInput<'a> {
    /// Earlier visits as (1-based visit number, visit), oldest first, already cut to the window.
    pub history: Vec<(usize, PromptVisit<'a>)>,
    /// The target visit (its medications are never shown).
    pub current: PromptVisit<'a>,
    /// Number of earlier visits, including those outside the window.
    pub visit_num: usize,
    /// Profile (field, value) pairs in display order.
    pub profile: Vec<(&'a str, &'a str)>,
}

/// The main and history templates.
#[derive(Debug, Clone)]
pub struct PromptTemplates {
    main: Template,
    history: Template,
    /// Show the current visit's diagnoses in every history visit (the reference's `<DIGNOSIS>` typo).
    pub reference_diagnosis_bug: bool,
}

fn join(out: &mut String, names: &[&str]) {
    for (i, name) in names.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(name);
    }
}

/// A profile value in words: lower case, `F`/`M` spelled out.
fn profile_words(field: &str, value: &str) -> String {
    match (field, value) {
        ("gender", "F") => "female".into(),
        ("gender", "M") => "male".into(),
        _ => value.to_lowercase(),
    }
}

impl PromptTemplates {
    pub fn parse(main: &str, history: &str) -> Result<Self> {
        let main_slots: Vec<&str> = MAIN_SLOTS.iter().chain(PROFILE_FIELDS.iter()).copied().collect();
        Ok(Self {
            main: Template::parse(main, &main_slots, "main template")?,
            history: Template::parse(history, &HISTORY_SLOTS, "history template")?,
            reference_diagnosis_bug: false,
        })
    }

    /// A built-in set: "default" (with the profile) or "reference" (the reference's active strings).
    pub fn builtin(name: &str) -> Result<Self> {
        match name {
            "default" => Self::parse(
                include_str!("../../prompts/default/main.txt"),
                include_str!("../../prompts/default/history.txt"),
            ),
            "reference" => Self::parse(
                include_str!("../../prompts/reference/main.txt"),
                include_str!("../../prompts/reference/history.txt"),
            ),
            other => bail!("unknown prompt template set {other:?}: expected \"default\" or \"reference\""),
        }
    }

    /// Reads `main.txt` and `history.txt` from `dir`.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).with_context(|| format!("reading prompt template {}", path.display()))
        };
        let (main, history) = (read("main.txt")?, read("history.txt")?);
        Self::parse(&main, &history).with_context(|| format!("prompt templates in {}", dir.display()))
    }

    pub fn render(&self, input: &PromptInput) -> String {
        let mut history = String::new();
        for (visit_no, visit) in &input.history {
            let diagnoses = if self.reference_diagnosis_bug { &input.current.diagnoses } else { &visit.diagnoses };
            self.history.render(&mut history, |slot, out| match slot {
                "visit_no" => out.push_str(&visit_no.to_string()),
                "diagnoses" => join(out, diagnoses),
                "procedures" => join(out, &visit.procedures),
                _ => join(out, &visit.medications),
            });
        }
        let mut prompt = String::with_capacity(history.len() + 256);
        self.main.render(&mut prompt, |slot, out| match slot {
            "visit_num" => out.push_str(&input.visit_num.to_string()),
            "history" => out.push_str(&history),
            "diagnoses" => join(out, &input.current.diagnoses),
            "procedures" => join(out, &input.current.procedures),
            "profile" => {
                let parts: Vec<String> = input
                    .profile
                    .iter()
                    .map(|(f, v)| format!("{} {}", f.replace('_', " "), profile_words(f, v)))
                    .collect();
                out.push_str(&parts.join(", "));
            }
            field => {
                let value = input.profile.iter().find(|(f, _)| *f == field).map_or("unknown", |(_, v)| v);
                out.push_str(&profile_words(field, value));
            }
        });
        prompt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn visit<'a>(d: &[&'a str], p: &[&'a str], m: &[&'a str]) -> PromptVisit<'a> {
        PromptVisit { diagnoses: d.to_vec(), procedures: p.to_vec(), medications: m.to_vec() }
    }

    fn three_visits() -> PromptInput<'static> {
        PromptInput {
            history: vec![
                (1, visit(&["d1a", "d1b"], &["p1"], &["m1"])),
                (2, visit(&["d2"], &["p2a", "p2b"], &["m2a", "m2b"])),
            ],
            current: visit(&["d3"], &["p3"], &["m3"]),
            visit_num: 2,
            profile: vec![],
        }
    }

    /// The reference doc's §2 example, character for character, including the `<DIGNOSIS>` bug.
    #[test]
    fn reference_template_with_bug_matches_the_documented_example() {
        let mut t = PromptTemplates::builtin("reference").unwrap();
        t.reference_diagnosis_bug = true;
        let expected = "The patient has 2 times ICU visits. \n In 1 visit, the patient had diagnosis: d3; procedures: p1. The patient was prescribed drugs: m1. \nIn 2 visit, the patient had diagnosis: d3; procedures: p2a, p2b. The patient was prescribed drugs: m2a, m2b. \n In this visit, he has diagnosis: d3; procedures: p3. Then, the patient should be prescribed: ";
        assert_eq!(t.render(&three_visits()), expected);
    }

    #[test]
    fn reference_template_without_bug_shows_each_visits_own_diagnoses() {
        let t = PromptTemplates::builtin("reference").unwrap();
        let prompt = t.render(&three_visits());
        assert!(prompt.contains("In 1 visit, the patient had diagnosis: d1a, d1b; procedures: p1."), "{prompt}");
        assert!(prompt.contains("In 2 visit, the patient had diagnosis: d2; procedures: p2a, p2b."), "{prompt}");
        assert!(!prompt.contains("m3"), "the target visit's medications must never appear: {prompt}");
    }

    /// §2 single-visit example: an empty history leaves two spaces after the newline.
    #[test]
    fn reference_single_visit_example() {
        let t = PromptTemplates::builtin("reference").unwrap();
        let input = PromptInput { current: visit(&["d1a", "d1b"], &["p1"], &[]), ..Default::default() };
        assert_eq!(
            t.render(&input),
            "The patient has 0 times ICU visits. \n  In this visit, he has diagnosis: d1a, d1b; procedures: p1. Then, the patient should be prescribed: "
        );
    }

    #[test]
    fn default_template_spells_out_the_profile() {
        let t = PromptTemplates::builtin("default").unwrap();
        let input = PromptInput {
            current: visit(&["d"], &["p"], &[]),
            profile: vec![("age", "60-69"), ("gender", "F"), ("marital_status", "MARRIED")],
            ..Default::default()
        };
        let prompt = t.render(&input);
        assert!(prompt.starts_with("Patient profile: age 60-69, gender female, marital status married.\n"), "{prompt}");
    }

    #[test]
    fn single_fields_render_and_missing_fields_are_unknown() {
        let t = PromptTemplates::parse("{gender}/{race}/{religion}", "").unwrap();
        let input = PromptInput { profile: vec![("gender", "M"), ("race", "WHITE")], ..Default::default() };
        assert_eq!(t.render(&input), "male/white/unknown");
    }

    #[test]
    fn unknown_placeholders_and_unclosed_braces_are_errors() {
        let err = PromptTemplates::parse("{diagnosis}", "").unwrap_err().to_string();
        assert!(err.contains("{diagnosis}") && err.contains("main template"), "{err}");
        let err = PromptTemplates::parse("", "{visit_num}").unwrap_err().to_string();
        assert!(err.contains("history template"), "{err}");
        assert!(PromptTemplates::parse("abc {history", "").is_err());
    }
}
