//! Errors in a topology file, as miette diagnostics: file:line:col, the
//! source line with a label under the offending value, and a help line.

use std::fmt;
use std::sync::Arc;

use miette::{
    GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteError, MietteSpanContents,
    SourceCode, SourceSpan, SpanContents,
};
use serde::Serialize;

use crate::spec::Span;

/// The text of a topology file and the name it is shown under.
#[derive(Debug)]
pub struct SourceFile {
    pub name: String,
    pub text: String,
}

impl SourceFile {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Arc<SourceFile> {
        Arc::new(SourceFile {
            name: name.into(),
            text: text.into(),
        })
    }

    /// The byte range a span covers, clamped to the text.
    fn byte_range(&self, span: Span) -> Option<(usize, usize)> {
        let (offset, len) = match span.bytes {
            Some(range) => range,
            None if span.line > 0 => (self.offset_of(span.line, span.column)?, 0),
            None => return None,
        };
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let mut end = offset + len.min(self.text.len() - offset);
        while !self.text.is_char_boundary(end) {
            end += 1;
        }
        Some((offset, end - offset))
    }

    /// Byte offset of a 1-based line and (character) column.
    fn offset_of(&self, line: u32, column: u32) -> Option<usize> {
        let start = if line <= 1 {
            0
        } else {
            self.text
                .match_indices('\n')
                .nth(line as usize - 2)
                .map(|(at, _)| at + 1)?
        };
        let rest = &self.text[start..];
        let within = rest
            .char_indices()
            .nth(column.saturating_sub(1) as usize)
            .map_or(rest.len(), |(at, _)| at);
        Some(start + within)
    }

    /// 1-based line and column of a span, computed from its bytes when the
    /// parser did not give them.
    fn line_column(&self, span: Span) -> (u32, u32) {
        if span.line > 0 {
            return (span.line, span.column);
        }
        match self.byte_range(span) {
            Some((offset, _)) => {
                let before = &self.text[..offset];
                let line = before.matches('\n').count() + 1;
                let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                (line as u32, column as u32)
            }
            None => (0, 0),
        }
    }
}

/// One problem in a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub message: String,
    pub span: Span,
    /// Short text under the offending value; defaults to the message.
    pub label: Option<String>,
    /// The fix, when there is an obvious one.
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn new(span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            message: message.into(),
            span,
            label: None,
            help: None,
        }
    }

    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// Every problem found in one file, reported together.
#[derive(Debug)]
pub struct Diagnostics {
    pub source: Arc<SourceFile>,
    pub items: Vec<Diagnostic>,
}

/// The machine-readable form of one diagnostic (`--output json`).
#[derive(Debug, Serialize)]
pub struct JsonDiagnostic<'a> {
    pub file: &'a str,
    pub line: u32,
    pub column: u32,
    pub message: &'a str,
    pub help: Option<&'a str>,
}

impl Diagnostics {
    pub fn new(source: Arc<SourceFile>, items: Vec<Diagnostic>) -> Self {
        Diagnostics { source, items }
    }

    /// The graphical report of every diagnostic, as shown on a terminal.
    pub fn render(&self, color: bool) -> String {
        let theme = if color {
            GraphicalTheme::unicode()
        } else {
            GraphicalTheme::unicode_nocolor()
        };
        let handler = GraphicalReportHandler::new_themed(theme).with_width(100);
        // The file's own bytes never reach the terminal raw: an escape
        // sequence in it could rewrite what the user reads.
        let name = escape_controls(&self.source.name);
        let text = mask_controls(&self.source.text);
        let lines = Lines::new(&name, &text);
        let mut out = String::new();
        for item in &self.items {
            let shown = Shown {
                item,
                source: &self.source,
                lines: &lines,
            };
            if handler.render_report(&mut out, &shown).is_err() {
                out.push_str(&format!("{name}: {}\n", escape_controls(&item.message)));
            }
        }
        out
    }

    pub fn to_json(&self) -> Vec<JsonDiagnostic<'_>> {
        self.items
            .iter()
            .map(|item| {
                let (line, column) = self.source.line_column(item.span);
                JsonDiagnostic {
                    file: &self.source.name,
                    line,
                    column,
                    message: &item.message,
                    help: item.help.as_deref(),
                }
            })
            .collect()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.items.len() {
            1 => write!(f, "{} has 1 error", self.source.name),
            n => write!(f, "{} has {n} errors", self.source.name),
        }
    }
}

impl std::error::Error for Diagnostics {}

/// One diagnostic with its file, in the shape miette renders.
struct Shown<'a> {
    item: &'a Diagnostic,
    source: &'a SourceFile,
    lines: &'a Lines<'a>,
}

impl Shown<'_> {
    /// The byte range of the label, when its lines are short enough to
    /// show: miette pads labels with `{:width$}`, which panics past 65535
    /// columns. A longer line (a hostile or generated file) is named by
    /// file:line:col only.
    fn shown_range(&self) -> Option<(usize, usize)> {
        let (offset, len) = self.source.byte_range(self.item.span)?;
        let short = |at: usize| self.lines.line_len(self.lines.line_of(at)) <= MAX_SHOWN_LINE;
        (short(offset) && short(offset + len)).then_some((offset, len))
    }
}

/// Lines longer than this are not shown under a diagnostic.
const MAX_SHOWN_LINE: usize = 4096;

/// A file's text with the offset of each line, so that showing one
/// diagnostic reads only the lines around it: miette's own sources scan the
/// text from its start for every diagnostic, which thousands of errors in
/// a large file would make take minutes.
struct Lines<'a> {
    name: &'a str,
    text: &'a str,
    /// Where each line starts; lines end as miette ends them (\n, \r\n, \r).
    starts: Vec<usize>,
}

impl<'a> Lines<'a> {
    fn new(name: &'a str, text: &'a str) -> Self {
        let bytes = text.as_bytes();
        let mut starts = vec![0];
        for (at, &byte) in bytes.iter().enumerate() {
            let ends_line = byte == b'\n' || (byte == b'\r' && bytes.get(at + 1) != Some(&b'\n'));
            if ends_line {
                starts.push(at + 1);
            }
        }
        Lines { name, text, starts }
    }

    /// The 0-based line an offset is on.
    fn line_of(&self, offset: usize) -> usize {
        self.starts.partition_point(|&start| start <= offset) - 1
    }

    /// The length of a line in bytes, its line break included.
    fn line_len(&self, line: usize) -> usize {
        let end = self
            .starts
            .get(line + 1)
            .copied()
            .unwrap_or(self.text.len());
        end - self.starts[line]
    }
}

/// Whether a character could steer a terminal: C0 and C1 controls but the
/// line breaks and tabs a file is made of, and the bidirectional overrides
/// that make text read other than it is.
fn steers_terminal(c: char) -> bool {
    (c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with each character that could steer a terminal written as a
/// Rust escape (`\u{1b}`), for messages, labels and file names.
fn escape_controls(text: &str) -> String {
    text.chars()
        .map(|c| {
            if steers_terminal(c) {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// The file's text as shown under a diagnostic: each character that could
/// steer a terminal becomes as many `?` as it has bytes, so that every
/// span still points where it did.
fn mask_controls(text: &str) -> String {
    text.chars()
        .map(|c| {
            if steers_terminal(c) {
                "?".repeat(c.len_utf8())
            } else {
                c.to_string()
            }
        })
        .collect()
}

impl SourceCode for Lines<'_> {
    /// miette's own reading, of a window of the lines around the span
    /// (with a line to spare at each end), moved back to its place.
    fn read_span<'b>(
        &'b self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'b> + 'b>, MietteError> {
        let (offset, len) = (span.offset(), span.len());
        if offset + len > self.text.len() {
            return Err(MietteError::OutOfBounds);
        }
        let first = self.line_of(offset).saturating_sub(context_lines_before);
        let last = self.line_of(offset + len) + context_lines_after + 2;
        let from = self.starts[first];
        let to = self.starts.get(last).copied().unwrap_or(self.text.len());
        let window: &'b [u8] = &self.text.as_bytes()[from..to];
        let inner = <[u8] as SourceCode>::read_span(
            window,
            &SourceSpan::new((offset - from).into(), len),
            context_lines_before,
            context_lines_after,
        )?;
        let span = SourceSpan::new((inner.span().offset() + from).into(), inner.span().len());
        Ok(Box::new(MietteSpanContents::new_named(
            self.name.to_string(),
            inner.data(),
            span,
            inner.line() + first,
            inner.column(),
            inner.line_count() + first,
        )))
    }
}

impl fmt::Debug for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.item.message.fmt(f)
    }
}

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (line, column) = self.source.line_column(self.item.span);
        let name = escape_controls(&self.source.name);
        let message = escape_controls(&self.item.message);
        if line == 0 {
            write!(f, "{name}: {message}")
        } else {
            write!(f, "{name}:{line}:{column}: {message}")
        }
    }
}

impl std::error::Error for Shown<'_> {}

impl miette::Diagnostic for Shown<'_> {
    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.item
            .help
            .as_ref()
            .map(|help| Box::new(escape_controls(help)) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.shown_range()?;
        Some(self.lines)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let (offset, len) = self.shown_range()?;
        let label = self
            .item
            .label
            .as_deref()
            .map_or_else(|| "here".to_string(), escape_controls);
        let span = SourceSpan::new(offset.into(), len);
        Some(Box::new(std::iter::once(LabeledSpan::new_with_span(
            Some(label),
            span,
        ))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_come_from_bytes_when_missing() {
        let source = SourceFile::new("t.yaml", "name: x\npods:\n  wéb: {}\n");
        let span = Span {
            line: 0,
            column: 0,
            bytes: Some((19, 1)),
        };
        assert_eq!(source.line_column(span), (3, 5));
        let from_position = Span {
            line: 3,
            column: 3,
            bytes: None,
        };
        assert_eq!(source.byte_range(from_position), Some((16, 0)));
    }

    #[test]
    fn control_characters_of_the_file_never_reach_the_terminal() {
        let text = "name: \u{1b}[2J\u{202e}x\npods: {}\n";
        let source = SourceFile::new("t\u{7}.yaml", text);
        let span = Span {
            line: 1,
            column: 7,
            bytes: Some((6, 4)),
        };
        let message = "unknown name \"\u{1b}[2J\"";
        let diagnostics = Diagnostics::new(
            source,
            vec![Diagnostic::new(span, message).with_label("\u{1b}]0;x")],
        );
        let shown = diagnostics.render(false);
        assert!(
            !shown.chars().any(steers_terminal),
            "a control character reached the output: {shown:?}"
        );
        assert!(shown.contains("unknown name \"\\u{1b}[2J\""), "{shown}");
        assert!(shown.contains("t\\u{7}.yaml:1:7"), "{shown}");
        // The source line is shown, masked byte for byte under its label.
        assert!(shown.contains("name: ?[2J???x"), "{shown}");
    }

    #[test]
    fn json_names_file_line_and_column() {
        let source = SourceFile::new("t.yaml", "name: X\n");
        let span = Span {
            line: 1,
            column: 7,
            bytes: Some((6, 1)),
        };
        let diagnostics = Diagnostics::new(
            source,
            vec![Diagnostic::new(span, "bad name").with_help("use lower case")],
        );
        let json = serde_json::to_value(diagnostics.to_json()).unwrap();
        assert_eq!(
            json,
            serde_json::json!([{"file": "t.yaml", "line": 1, "column": 7,
                                "message": "bad name", "help": "use lower case"}])
        );
    }

    /// The same report, shown from the whole text the way miette reads it.
    struct Whole<'a>(Shown<'a>, miette::NamedSource<String>);

    impl fmt::Debug for Whole<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            self.0.fmt(f)
        }
    }

    impl fmt::Display for Whole<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            fmt::Display::fmt(&self.0, f)
        }
    }

    impl std::error::Error for Whole<'_> {}

    impl miette::Diagnostic for Whole<'_> {
        fn source_code(&self) -> Option<&dyn SourceCode> {
            Some(&self.1)
        }

        fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
            self.0.labels()
        }
    }

    #[test]
    fn showing_a_window_of_lines_shows_what_the_whole_text_shows() {
        let text = "name: x\r\npods:\r\n  a: {}\n  b: {}\r  c: {}\nlinks: []\n\nexpect:\n  - { from: a, to: b }";
        let source = SourceFile::new("t.yaml", text);
        let lines = Lines::new(&source.name, &source.text);
        let handler = GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor());
        for (offset, len) in [
            (0, 4),
            (6, 1),
            (17, 1),
            (26, 1),
            (33, 6),
            (40, 0),
            (45, 1),
            (text.len() - 1, 1),
        ] {
            let item = Diagnostic::new(
                Span {
                    line: 0,
                    column: 0,
                    bytes: Some((offset, len)),
                },
                "here",
            );
            let windowed = Shown {
                item: &item,
                source: &source,
                lines: &lines,
            };
            let whole = Whole(
                Shown {
                    item: &item,
                    source: &source,
                    lines: &lines,
                },
                miette::NamedSource::new("t.yaml", text.to_string()),
            );
            let (mut a, mut b) = (String::new(), String::new());
            handler.render_report(&mut a, &windowed).unwrap();
            handler.render_report(&mut b, &whole).unwrap();
            assert_eq!(a, b, "at {offset}");
        }
    }

    #[test]
    fn a_line_too_long_to_show_is_named_not_shown() {
        let text = format!("name: {}\n", "x".repeat(100_000));
        let span = Span {
            line: 1,
            column: 7,
            bytes: Some((6, 100_000)),
        };
        let diagnostics = Diagnostics::new(
            SourceFile::new("t.yaml", text),
            vec![Diagnostic::new(span, "too long")],
        );
        let shown = diagnostics.render(false);
        assert!(shown.contains("t.yaml:1:7: too long"), "{shown}");
        assert!(shown.len() < 1000);
    }
}
