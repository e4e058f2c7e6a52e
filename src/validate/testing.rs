//! Helpers for the rule tests: parse a YAML text, validate it, and assert
//! on the diagnostics.

use crate::diagnostics::{Diagnostic, SourceFile};

/// The diagnostics of a topology text (which must parse).
pub fn check(text: &str) -> Vec<Diagnostic> {
    let topology = crate::load::parse(&SourceFile::new("t.yaml", text))
        .unwrap_or_else(|err| panic!("does not parse: {:?}", err.items));
    super::validate(&topology)
}

/// The text is valid.
#[track_caller]
pub fn valid(text: &str) {
    let problems = check(text);
    assert!(problems.is_empty(), "expected valid, got {problems:#?}");
}

/// The text has exactly one problem, whose message contains `fragment`,
/// at `line`:`column`. Returns it, to check its help.
#[track_caller]
pub fn one(text: &str, fragment: &str, (line, column): (u32, u32)) -> Diagnostic {
    let problems = check(text);
    assert_eq!(problems.len(), 1, "expected one problem, got {problems:#?}");
    let problem = problems.into_iter().next().expect("one");
    assert!(
        problem.message.contains(fragment),
        "`{}` does not contain `{fragment}`",
        problem.message
    );
    assert_eq!(
        (problem.span.line, problem.span.column),
        (line, column),
        "at the wrong place: {problem:#?}"
    );
    problem
}

/// The 1-based line and column where `needle` first occurs in `text`: what
/// a diagnostic about that value must point at.
#[track_caller]
pub fn at(text: &str, needle: &str) -> (u32, u32) {
    let offset = text.find(needle).expect("needle in text");
    line_column(text, offset)
}

/// Like `at`, for the last occurrence.
#[track_caller]
pub fn last(text: &str, needle: &str) -> (u32, u32) {
    let offset = text.rfind(needle).expect("needle in text");
    line_column(text, offset)
}

fn line_column(text: &str, offset: usize) -> (u32, u32) {
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line as u32, column as u32)
}
