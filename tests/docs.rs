//! Every citation in the repository resolves to a file of the repository:
//! a document named in code, examples or docs (`FORMAT.md`, `docs/CLI.md`),
//! a markdown link to a relative path, an editor's `$schema=` pointer, or a
//! repository path in backticks (`src/model/`, `tests/common/mod.rs`). A
//! reader who follows one must find what it promises.
//!
//! A bare document name (`FORMAT.md`) means the file in `docs/` (or, for
//! `README.md`, the one at the root); a path with a `/` in prose is relative
//! to the repository root; a link or `$schema=` is relative to the file that
//! holds it, as a markdown viewer or an editor reads it.
//!
//! And the command references tell the truth: the commands the tables of
//! docs/CLI.md and README list are the ones the binary has, and what
//! docs/CLI.md lists as not built yet, it does not have.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Component, Path, PathBuf};

/// Where citations live: everything a user or contributor reads.
const SCANNED: [&str; 7] = [
    "README.md",
    "docs",
    "examples",
    "topologies",
    "src",
    "tests",
    "benches",
];

/// Top-level entries a backticked path may start with to count as a
/// citation of a repository path.
const REPOSITORY_DIRS: [&str; 8] = [
    "src/",
    "tests/",
    "docs/",
    "examples/",
    "topologies/",
    "schemas/",
    "benches/",
    ".ci/",
];

/// This file: its own fixtures cite files that do not exist on purpose.
const THIS_FILE: &str = "tests/docs.rs";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One reference found in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Citation {
    line: usize,
    /// As written.
    text: String,
    /// Where it must lead, relative to the repository root; `None` when
    /// it leads out of the repository.
    candidates: Vec<Option<PathBuf>>,
}

/// Joins `relative` onto `base` (both inside the repository) without
/// touching the file system; `None` if `..` climbs out of the repository.
fn join_inside(base: &Path, relative: &str) -> Option<PathBuf> {
    let mut parts: Vec<String> = base
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    for component in Path::new(relative).components() {
        match component {
            Component::Normal(part) => parts.push(part.to_string_lossy().into_owned()),
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts.iter().collect())
}

/// A markdown link target or `$schema=` value that points at a file, as
/// opposed to a web address, an anchor in the same page, or (in Rust doc
/// comments) an intra-doc link such as `crate::model`.
fn file_target(target: &str, in_markdown: bool) -> Option<&str> {
    let target = target.trim().trim_start_matches('<').trim_end_matches('>');
    if target.is_empty()
        || target.starts_with('#')
        || target.contains("://")
        || target.starts_with("mailto:")
        || target.contains("::")
        || target.contains(char::is_whitespace)
    {
        return None;
    }
    let path = target.split(['#', '?']).next().unwrap_or_default();
    if path.is_empty() {
        return None;
    }
    // Outside markdown, `[text](x)` is as likely code as a link: only a
    // target that looks like a path counts.
    let looks_like_a_path = path.contains('/') || Path::new(path).extension().is_some();
    (in_markdown || looks_like_a_path).then_some(path)
}

/// Markdown links on a line: `[text](target)`, and in markdown files
/// reference definitions `[label]: target`. Returns each target and its
/// byte range in the line.
fn links(line: &str, in_markdown: bool) -> Vec<(String, std::ops::Range<usize>)> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = line[from..].find("](") {
        let start = from + at + 2;
        let end = line[start..]
            .find(')')
            .map_or(line.len(), |offset| start + offset);
        if let Some(path) = file_target(&line[start..end], in_markdown) {
            found.push((path.to_string(), start..end));
        }
        from = end.min(line.len());
        if from == line.len() {
            break;
        }
    }
    if in_markdown {
        let trimmed = line.trim_start();
        if trimmed.starts_with('[')
            && let Some(close) = trimmed.find("]: ")
        {
            let start = line.len() - trimmed.len() + close + 3;
            if let Some(path) = file_target(&line[start..], true) {
                found.push((path.to_string(), start..line.len()));
            }
        }
    }
    found
}

/// Document names and paths ending in `.md`: `FORMAT.md`, `docs/CLI.md`.
fn document_names(line: &str) -> Vec<String> {
    let is_name_byte = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'/' | b'-');
    let bytes = line.as_bytes();
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = line[from..].find(".md") {
        let dot = from + at;
        let end = dot + 3;
        from = end;
        if bytes
            .get(end)
            .is_some_and(|&b| b.is_ascii_alphanumeric() || b == b'_')
        {
            continue;
        }
        let mut start = dot;
        while start > 0 && is_name_byte(bytes[start - 1]) {
            start -= 1;
        }
        let name = line[start..end].trim_start_matches("./");
        // `*.md` and the like name no file.
        if name.len() > 3 && !name.starts_with('.') {
            found.push(name.to_string());
        }
    }
    found
}

/// Repository paths in backticks: `src/model/`, `tests/common/mod.rs`.
fn backticked_paths(line: &str) -> Vec<String> {
    line.split('`')
        .skip(1)
        .step_by(2)
        .filter(|quoted| REPOSITORY_DIRS.iter().any(|dir| quoted.starts_with(dir)))
        // A glob or a placeholder is a pattern, not a citation.
        .filter(|quoted| !quoted.contains(['*', '{', '<', ' ', '$']))
        // `src/foo.rs:12` cites a line of a file.
        .map(|quoted| quoted.split(':').next().unwrap_or_default().to_string())
        .collect()
}

/// Byte ranges of web addresses (`https://...`) on a line.
fn web_addresses(line: &str) -> Vec<std::ops::Range<usize>> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = line[from..].find("://") {
        let scheme_end = from + at;
        let start = line[..scheme_end]
            .rfind(|c: char| !c.is_ascii_alphanumeric())
            .map_or(0, |i| i + 1);
        let end = line[scheme_end..]
            .find(|c: char| c.is_whitespace() || matches!(c, ')' | '>' | '`' | '"'))
            .map_or(line.len(), |offset| scheme_end + offset);
        found.push(start..end);
        from = end;
    }
    found
}

/// Every citation of one file's text. `file` is relative to the root.
fn citations(file: &Path, text: &str) -> Vec<Citation> {
    let in_markdown = file.extension().is_some_and(|e| e == "md");
    // Only a topology file's own `$schema=` pointer is read by an editor;
    // one quoted in a document or a test is an example.
    let is_yaml = file.extension().is_some_and(|e| e == "yaml" || e == "yml");
    let dir = file.parent().unwrap_or(Path::new(""));
    let mut found = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line_number = index + 1;
        let mut rest = line.to_string();
        // A web address cites no file of the repository, whatever it ends in.
        for range in web_addresses(line) {
            rest.replace_range(range.clone(), &" ".repeat(range.len()));
        }
        let mut targets = links(line, in_markdown);
        if is_yaml && let Some(at) = line.find("$schema=") {
            let start = at + "$schema=".len();
            let end = line[start..]
                .find(char::is_whitespace)
                .map_or(line.len(), |offset| start + offset);
            if let Some(path) = file_target(&line[start..end], true) {
                targets.push((path.to_string(), start..end));
            }
        }
        for (target, range) in targets {
            // Checked as a link, and not a second time as prose.
            rest.replace_range(range.clone(), &" ".repeat(range.len()));
            found.push(Citation {
                line: line_number,
                candidates: vec![join_inside(dir, &target)],
                text: target,
            });
        }
        for name in document_names(&rest) {
            let candidates = if name.contains('/') {
                vec![join_inside(Path::new(""), &name)]
            } else {
                vec![
                    Some(Path::new("docs").join(&name)),
                    Some(PathBuf::from(&name)),
                ]
            };
            found.push(Citation {
                line: line_number,
                text: name,
                candidates,
            });
        }
        for path in backticked_paths(&rest) {
            found.push(Citation {
                line: line_number,
                candidates: vec![join_inside(Path::new(""), &path)],
                text: path,
            });
        }
    }
    found.dedup();
    found
}

/// The citations of `file` (relative to `root`) that lead to nothing, as
/// `file:line: `text``.
fn dangling(root: &Path, file: &Path, text: &str) -> Vec<String> {
    citations(file, text)
        .into_iter()
        .filter(|citation| {
            !citation
                .candidates
                .iter()
                .flatten()
                .any(|path| root.join(path).exists())
        })
        .map(|citation| format!("{}:{}: `{}`", file.display(), citation.line, citation.text))
        // A link whose text is its own target is one problem, not two.
        .fold(Vec::new(), |mut found, problem| {
            if found.last() != Some(&problem) {
                found.push(problem);
            }
            found
        })
}

/// Every file under `path` (relative to `root`), sorted.
fn files_under(root: &Path, path: &Path, out: &mut Vec<PathBuf>) {
    let full = root.join(path);
    if full.is_file() {
        out.push(path.to_path_buf());
        return;
    }
    let Ok(entries) = fs::read_dir(&full) else {
        return;
    };
    let mut children: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok())
        .map(|entry| path.join(entry.file_name()))
        .collect();
    children.sort();
    for child in children {
        files_under(root, &child, out);
    }
}

#[test]
fn every_citation_resolves_to_a_file_of_the_repository() {
    let root = root();
    let mut files = Vec::new();
    for scanned in SCANNED {
        files_under(&root, Path::new(scanned), &mut files);
    }
    assert!(
        files.iter().any(|f| f.starts_with("src")),
        "found no sources under {}",
        root.display()
    );
    let mut problems = Vec::new();
    for file in files.iter().filter(|f| *f != Path::new(THIS_FILE)) {
        // Binary files cite nothing.
        let Ok(text) = fs::read_to_string(root.join(file)) else {
            continue;
        };
        problems.extend(dangling(&root, file, &text));
    }
    assert!(
        problems.is_empty(),
        "{} citation(s) lead to no file of the repository (a bare `X.md` means docs/X.md; \
         links are relative to their file):\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
}

/// The commands a markdown table documents: rows like "| `netloom plan FILE` |".
fn documented_commands(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("| `netloom "))
        .filter_map(|rest| rest.split([' ', '`']).next())
        .map(str::to_string)
        .collect()
}

/// The commands `netloom --help` lists (clap's own `help` aside).
fn built_commands() -> BTreeSet<String> {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_netloom"))
        .arg("--help")
        .output()
        .expect("netloom runs");
    let help = String::from_utf8(output.stdout).expect("help is UTF-8");
    help.lines()
        .skip_while(|line| *line != "Commands:")
        .skip(1)
        .take_while(|line| !line.is_empty())
        // A command's line is indented by two; its wrapped description more.
        .filter(|line| line.starts_with("  ") && !line.starts_with("   "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|command| *command != "help")
        .map(str::to_string)
        .collect()
}

#[test]
fn the_documented_commands_are_the_built_ones() {
    let read = |path: &str| fs::read_to_string(root().join(path)).expect(path);
    let cli = read("docs/CLI.md");
    let (reference, not_built) = cli
        .split_once("## Not built yet")
        .expect("docs/CLI.md has a \"Not built yet\" section");
    let built = built_commands();
    assert!(built.contains("apply"), "no commands in --help: {built:?}");
    assert_eq!(
        documented_commands(reference),
        built,
        "docs/CLI.md's command table and `netloom --help` list different commands"
    );
    assert_eq!(
        documented_commands(&read("README.md")),
        built,
        "README's command table and `netloom --help` list different commands"
    );
    // What is listed as not built yet must really be refused.
    let planned: Vec<&str> = not_built
        .lines()
        .filter_map(|line| line.strip_prefix("- `netloom "))
        .filter_map(|rest| rest.split([' ', '`']).next())
        .collect();
    // The list is read at all (`watch`, `check`, then `rollback` were the
    // example here until they were built; no planned command is left).
    assert!(!not_built.trim().is_empty(), "the list is read");
    for command in planned {
        assert!(
            !built.contains(command),
            "`{command}` is built: move it out of \"Not built yet\" in docs/CLI.md"
        );
    }
}

/// A throw-away repository with a few files, removed on drop.
struct Fixture(PathBuf);

impl Fixture {
    fn new(files: &[&str]) -> Fixture {
        let dir = std::env::temp_dir().join(format!("netloom-docs-{}", std::process::id()));
        for file in files {
            let path = dir.join(file);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, "").unwrap();
        }
        Fixture(dir)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
fn the_scan_reports_what_leads_nowhere_and_only_that() {
    let fixture = Fixture::new(&[
        "README.md",
        "docs/CLI.md",
        "docs/FORMAT.md",
        "src/lib.rs",
        "schemas/topology.schema.json",
    ]);
    let root = &fixture.0;
    let text = "\
//! The contract (FORMAT.md, NOWHERE.md) and [the CLI](../docs/CLI.md).
//! See docs/GONE.md, [a page](https://example.com/x.md), `src/lib.rs`,
//! `src/absent.rs:12`, `examples/*.yaml` and [`Model`](crate::model).
";
    assert_eq!(
        dangling(root, Path::new("tests/fixture.rs"), text),
        [
            "tests/fixture.rs:1: `NOWHERE.md`",
            "tests/fixture.rs:2: `docs/GONE.md`",
            "tests/fixture.rs:3: `src/absent.rs`",
        ]
    );

    // Links are relative to their file, and may not leave the repository.
    let markdown = "[up](../README.md) [here](CLI.md#exit-codes) [out](../../etc/passwd)\n\
                    [ref]: FORMAT.md\n";
    assert_eq!(
        dangling(root, Path::new("docs/INDEX.md"), markdown),
        ["docs/INDEX.md:1: `../../etc/passwd`"]
    );
    assert_eq!(
        dangling(root, Path::new("README.md"), "[format](FORMAT.md)\n"),
        ["README.md:1: `FORMAT.md`"],
        "from the root, a link to FORMAT.md needs docs/"
    );

    // An editor resolves a topology file's `$schema=` from its directory.
    let yaml = "# yaml-language-server: $schema=../schemas/topology.schema.json\n";
    assert!(dangling(root, Path::new("examples/x.yaml"), yaml).is_empty());
    assert_eq!(
        dangling(root, Path::new("x.yaml"), yaml),
        ["x.yaml:1: `../schemas/topology.schema.json`"]
    );
}
