//! Reading a topology file: bounded, UTF-8, YAML with source spans. Any
//! failure is a diagnostic that points into the file.

use std::fs::{File, FileType, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Arc;

use serde_saphyr::MessageFormatter;

use crate::diagnostics::{Diagnostic, Diagnostics, SourceFile};
use crate::spec::{Span, Topology};

mod shape;

/// Larger than any sane topology (a 1000-pod file is about 100 KiB), small
/// enough that a hostile file cannot exhaust memory.
pub const MAX_FILE_BYTES: usize = 8 << 20;

/// Why a file could not even be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is larger than {MAX_FILE_BYTES} bytes; that is not a topology file")]
    TooLarge { path: String },
    #[error(
        "cannot read {path}: it is {what}, not a regular file (to read a pipe, give `-` and redirect it to standard input)"
    )]
    NotAFile { path: String, what: &'static str },
}

/// What a path names, when that is not a regular file.
#[derive(Debug, thiserror::Error)]
#[error("it is {what}, not a regular file")]
pub struct NotARegularFile {
    pub what: &'static str,
}

/// Opens a topology file to read, refusing at once what is not a regular
/// file: a FIFO would block until someone writes to it, a device may never
/// end, a socket cannot be opened at all. The error of such a path is
/// `InvalidInput` carrying a `NotARegularFile`.
pub fn open_regular(path: &Path) -> std::io::Result<File> {
    let not_regular = |file_type: FileType| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            NotARegularFile {
                what: describe_file_type(file_type),
            },
        )
    };
    // Looked at before opening: opening a device can have effects of its own.
    let file_type = std::fs::metadata(path)?.file_type();
    if !file_type.is_file() {
        return Err(not_regular(file_type));
    }
    // Swapped for a FIFO since? O_NONBLOCK keeps the open from hanging,
    // and the open file is the one looked at.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let file_type = file.metadata()?.file_type();
    if !file_type.is_file() {
        return Err(not_regular(file_type));
    }
    Ok(file)
}

/// What kind of file something is, for an error that says why it is
/// not read.
pub fn describe_file_type(file_type: FileType) -> &'static str {
    if file_type.is_fifo() {
        "a FIFO (named pipe)"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else if file_type.is_dir() {
        "a directory"
    } else if file_type.is_symlink() {
        "a symbolic link"
    } else if file_type.is_file() {
        "a regular file"
    } else {
        "of an unknown kind"
    }
}

/// Reads a file (`-` is standard input) into memory. Invalid UTF-8 is kept
/// (lossily) so that parsing can point at it.
pub fn read_source(path: &str) -> Result<Arc<SourceFile>, ReadError> {
    let io_error = |source| ReadError::Io {
        path: path.to_string(),
        source,
    };
    let mut bytes = Vec::new();
    let limit = MAX_FILE_BYTES as u64 + 1;
    if path == "-" {
        std::io::stdin()
            .lock()
            .take(limit)
            .read_to_end(&mut bytes)
            .map_err(io_error)?;
    } else {
        let opened = open_regular(Path::new(path)).map_err(|err| {
            match err
                .get_ref()
                .and_then(|e| e.downcast_ref::<NotARegularFile>())
            {
                Some(NotARegularFile { what }) => ReadError::NotAFile {
                    path: path.to_string(),
                    what,
                },
                None => io_error(err),
            }
        })?;
        opened
            .take(limit)
            .read_to_end(&mut bytes)
            .map_err(io_error)?;
    }
    let name = if path == "-" { "<stdin>" } else { path };
    source_from_bytes(name, bytes)
}

/// A file's content, read by someone else (`watch` reads through its own
/// resolution of symlinks), as a source to parse: bounded and UTF-8, like
/// `read_source`.
pub fn source_from_bytes(name: &str, bytes: Vec<u8>) -> Result<Arc<SourceFile>, ReadError> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err(ReadError::TooLarge {
            path: name.to_string(),
        });
    }
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(err) => String::from_utf8_lossy(err.as_bytes()).into_owned(),
    };
    Ok(SourceFile::new(name, text))
}

/// Parses the YAML of a file into the typed topology.
pub fn parse(source: &Arc<SourceFile>) -> Result<Topology, Diagnostics> {
    let fail = |item| Err(Diagnostics::new(source.clone(), vec![item]));
    if let Some(at) = source.text.find(char::REPLACEMENT_CHARACTER) {
        return fail(
            Diagnostic::new(bytes_span(at, 3), "the file is not UTF-8 text")
                .with_label("not UTF-8")
                .with_help("a topology file is YAML, in UTF-8"),
        );
    }
    if source.text.trim().is_empty() || only_comments(&source.text) {
        return fail(
            Diagnostic::new(bytes_span(0, 0), "the file is empty")
                .with_help("a topology needs at least `name:`, e.g. `name: lab`"),
        );
    }
    let first = match serde_saphyr::from_str_with_options::<Topology>(&source.text, options()) {
        Ok(topology) => return Ok(topology),
        // A hostile file: reading it once was enough.
        Err(err @ serde_saphyr::Error::Budget { .. }) => return fail(yaml_diagnostic(&err)),
        Err(err) => yaml_diagnostic(&err),
    };
    // serde stops at the first mistake: find the others too. Where both
    // point at one place, serde's words stay for an unknown key (its list
    // of keys is in the file format's order), the walk's for a wrong type
    // (it names the key).
    let mut items = shape::problems(&source.text, walk_options());
    let same_place =
        |d: &Diagnostic| (d.span.line, d.span.column) == (first.span.line, first.span.column);
    match items.iter().position(same_place) {
        Some(at) if first.message.starts_with("unknown field") => {
            let help = items[at].help.take();
            items[at] = Diagnostic { help, ..first };
        }
        Some(_) => {}
        None => {
            let at = items.partition_point(|d| {
                (d.span.line, d.span.column) < (first.span.line, first.span.column)
            });
            items.insert(at, first);
        }
    }
    Err(Diagnostics::new(source.clone(), items))
}

fn options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        with_snippet: false,
        budget: Some(budget()),
    }
}

/// The walk for the other mistakes is best effort: a file that expands
/// its anchors far keeps serde's one error and is not read again at length.
fn walk_options() -> serde_saphyr::Options {
    let mut budget = budget();
    budget.max_aliases = 1_000;
    budget.max_recorded_anchor_events = 10_000;
    serde_saphyr::options! {
        with_snippet: false,
        budget: Some(budget),
    }
}

/// Limits that bound the work of a hostile file (alias bombs, deep nesting)
/// far above what any topology needs.
fn budget() -> serde_saphyr::budget::Budget {
    let mut budget = serde_saphyr::budget::Budget::default();
    budget.max_depth = 32;
    budget.max_anchors = 1_000;
    budget.max_aliases = 10_000;
    budget.max_recorded_anchor_events = 100_000;
    budget.max_total_scalar_bytes = MAX_FILE_BYTES;
    budget.max_documents = 1;
    budget
}

fn only_comments(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .all(|line| line.is_empty() || line.starts_with('#'))
}

fn bytes_span(offset: usize, len: usize) -> Span {
    Span {
        line: 0,
        column: 0,
        bytes: Some((offset, len)),
    }
}

/// A YAML syntax, type or unknown-key error as a diagnostic, with a
/// "did you mean" when a misspelt key or variant is close to a known one.
fn yaml_diagnostic(err: &serde_saphyr::Error) -> Diagnostic {
    let raw = serde_saphyr::UserMessageFormatter.format_message(err);
    // The message may quote the file's own bytes: never print control characters.
    let message: String = raw
        .chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect();
    let span = err
        .location()
        .map_or(Span::UNKNOWN, |location| Span::from_location(&location));
    let diagnostic = Diagnostic::new(span, message.clone());
    match did_you_mean(&message) {
        Some(help) => diagnostic.with_help(help),
        None => diagnostic,
    }
}

/// For "unknown field `adresses`, expected one of ..." (and the same for
/// enum variants), the closest expected name.
fn did_you_mean(message: &str) -> Option<String> {
    let (_, after) = message.split_once('`')?;
    let (unknown, rest) = after.split_once('`')?;
    let expected = rest.split_once("expected")?.1;
    let expected = expected.trim_start().trim_start_matches("one of").trim();
    let candidates = expected
        .split(',')
        .map(|word| word.trim().trim_matches('`'))
        .filter(|word| !word.is_empty());
    let best = candidates
        .map(|word| (strsim::levenshtein(unknown, word), word))
        .min()?;
    if best.0 <= 3 {
        Some(format!("did you mean `{}`?", best.1))
    } else {
        Some(format!("expected one of {expected}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str) -> Result<Topology, Vec<Diagnostic>> {
        parse(&SourceFile::new("t.yaml", text)).map_err(|d| d.items)
    }

    #[test]
    fn unknown_key_suggests_the_closest() {
        let err = parse_text(
            "name: x\npods:\n  web:\n    interfaces:\n      eth0:\n        adresses: []\n",
        )
        .unwrap_err();
        assert_eq!(err.len(), 1);
        assert!(err[0].message.contains("adresses"), "{}", err[0].message);
        assert_eq!(err[0].help.as_deref(), Some("did you mean `addresses`?"));
        assert_eq!((err[0].span.line, err[0].span.column), (6, 9));
    }

    #[test]
    fn two_unknown_keys_and_a_wrong_type_are_reported_together_at_their_lines() {
        let text = "name: x\nbogus: 1\npods:\n  web:\n    interfaces:\n      eth0:\n        adresses: [10.0.0.1/24]\n        mtu: abc\n";
        let err = parse_text(text).unwrap_err();
        let found: Vec<(u32, &str)> = err
            .iter()
            .map(|d| (d.span.line, d.message.as_str()))
            .collect();
        assert_eq!(found.len(), 3, "{found:?}");
        assert_eq!(found[0].0, 2);
        assert!(found[0].1.contains("`bogus`"), "{}", found[0].1);
        assert_eq!(found[1].0, 7);
        assert!(found[1].1.contains("`adresses`"), "{}", found[1].1);
        assert_eq!(err[1].help.as_deref(), Some("did you mean `addresses`?"));
        assert_eq!(
            found[2],
            (8, "`mtu`: expected an integer, found the text `abc`")
        );
    }

    #[test]
    fn a_scalar_where_a_list_belongs_shows_the_list_form() {
        let text = "name: x\nbridges:\n  b:\n    addresses: 10.0.0.1/24\n";
        let err = parse_text(text).unwrap_err();
        assert_eq!(err.len(), 1);
        assert!(err[0].message.contains("`addresses`"), "{}", err[0].message);
        let help = err[0].help.as_deref().unwrap();
        assert!(help.contains("`addresses: [10.0.0.1/24]`"), "{help}");
    }

    #[test]
    fn a_key_indented_one_level_off_says_where_it_belongs() {
        let text = "name: x\npods:\n  web:\n  interfaces:\n    eth0: {}\n";
        let err = parse_text(text).unwrap_err();
        let lines: Vec<u32> = err.iter().map(|d| d.span.line).collect();
        assert_eq!(lines, [3, 4]);
        assert!(
            err[0]
                .help
                .as_deref()
                .unwrap()
                .contains("indented one level more")
        );
        assert!(
            err[1]
                .message
                .contains("`interfaces` is read as an entry of `pods`")
        );

        let err = parse_text("name: x\ninterfaces: {}\n").unwrap_err();
        let help = err[0].help.as_deref().unwrap();
        assert!(help.contains("a key of a host or a pod"), "{help}");
    }

    #[test]
    fn unknown_variant_suggests_the_closest() {
        let err = parse_text("name: x\nrouting: hostgw\n").unwrap_err();
        assert_eq!(err[0].help.as_deref(), Some("did you mean `host-gw`?"));
    }

    #[test]
    fn empty_and_comment_only_files_are_rejected() {
        for text in ["", "   \n", "# nothing\n"] {
            let err = parse_text(text).unwrap_err();
            assert!(err[0].message.contains("empty"));
        }
    }

    #[test]
    fn binary_junk_is_rejected_with_a_location() {
        let source = SourceFile::new("t.yaml", String::from_utf8_lossy(b"name: \xff\xfe\x00"));
        let err = parse(&source).unwrap_err();
        assert!(err.items[0].message.contains("UTF-8"));
        assert_eq!(err.items[0].span.bytes, Some((6, 3)));
    }

    #[test]
    fn deep_nesting_is_rejected_quickly() {
        for text in ["[".repeat(100_000), "{a: ".repeat(100_000)] {
            let err = parse_text(&format!("name: x\nexpect: {text}")).unwrap_err();
            assert!(!err[0].message.is_empty());
        }
        let block: String = (0..100_000)
            .map(|i| format!("{}- \n", " ".repeat(i % 200)))
            .collect();
        assert!(parse_text(&format!("name: x\nexpect:\n{block}")).is_err());
    }

    #[test]
    fn alias_bombs_are_rejected() {
        let mut text = String::from(
            "name: x\nbridges:\n  b:\n    addresses: &a0 [\"10.0.0.1/24\",\"10.0.0.1/24\"]\n",
        );
        for level in 1..30 {
            let prev = format!("*a{}", level - 1);
            text.push_str(&format!("  b{level}:\n    addresses: &a{level} [{prev},{prev},{prev},{prev},{prev},{prev},{prev},{prev}]\n"));
        }
        let started = std::time::Instant::now();
        assert!(parse_text(&text).is_err());
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn a_second_document_is_an_error() {
        assert!(parse_text("name: a\n---\nname: b\n").is_err());
    }
}
