//! `cargo xtask book --check`: proves that every include of the book resolves.
//!
//! The chapters show the workshop's real code through mdBook includes, cut at
//! the `ANCHOR:` markers of the solutions. mdBook does not fail when an include
//! points at a file that moved (it logs an error, leaves the raw directive in
//! the page and exits 0), nor at an anchor that was renamed (it includes
//! nothing, silently). A chapter would then explain a fix it no longer shows.
//! This check reads the directives the way mdBook's `links` preprocessor does,
//! and fails instead.

use std::collections::{BTreeSet, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

/// The mdBook release the book is built and checked with.
pub const MDBOOK_VERSION: &str = "0.5.4";

/// One thing in the book that would render wrong without failing the build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The Markdown file the directive or link is in.
    pub file: PathBuf,
    /// 1-based line of the directive or link.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
    }
}

/// Parses every .md under `book_src` for `{{#include ...}}` and
/// `{{#rustdoc_include ...}}` (path relative to the .md file; optional
/// `:anchor`, `:N`, `:N:M`, `:N:`, `::M` line forms), checks the file exists,
/// the anchor exists (`ANCHOR: name` and `ANCHOR_END: name` both present),
/// line ranges are in range; checks every link in SUMMARY.md points to an
/// existing file, and that every chapter .md in src is listed in SUMMARY.md.
///
/// Included Markdown files (a chapter's `generated/` fragments, a definition
/// kept next to the code) are not chapters: they are checked for their own
/// includes, and need no entry in SUMMARY.md. Relative links and pictures in
/// chapters must point at existing files too; those of an included file are
/// resolved from the chapter it lands in, as they are once rendered.
pub fn check_includes(book_src: &Path) -> Vec<Problem> {
    let mut problems = Vec::new();
    let summary = book_src.join("SUMMARY.md");
    let listed = match std::fs::read_to_string(&summary) {
        Ok(text) => summary_entries(&summary, &text, book_src, &mut problems),
        Err(err) => {
            problems.push(Problem { file: summary, line: 0, message: format!("cannot read SUMMARY.md: {err}") });
            return problems;
        }
    };

    let mut markdown = Vec::new();
    if let Err(err) = collect_markdown(book_src, &mut markdown) {
        problems.push(Problem {
            file: book_src.to_path_buf(),
            line: 0,
            message: format!("cannot list the book: {err}"),
        });
    }
    markdown.sort();

    // Chapters are the files SUMMARY.md lists, and any other file no one
    // includes (reported below). Each is queued with the directory its links
    // resolve from once rendered: its own for a chapter, the including
    // chapter's for an included file.
    let included_here: BTreeSet<PathBuf> = markdown
        .iter()
        .filter_map(|file| Some((file, std::fs::read_to_string(file).ok()?)))
        .flat_map(|(file, text)| {
            directives(&text).iter().filter_map(|directive| include_path(file, directive)).collect::<Vec<_>>()
        })
        .filter(|target| target.extension().is_some_and(|ext| ext == "md"))
        .map(|target| identity(&target))
        .collect();
    let mut queue: VecDeque<(PathBuf, PathBuf)> = markdown
        .iter()
        .filter(|file| **file != summary)
        .filter(|file| listed.contains(&identity(file)) || !included_here.contains(&identity(file)))
        .map(|file| (file.clone(), parent_dir(file)))
        .collect();
    let mut seen = BTreeSet::new();
    let mut included = BTreeSet::new();
    while let Some((file, render_dir)) = queue.pop_front() {
        if !seen.insert((identity(&file), render_dir.clone())) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&file) else {
            problems.push(Problem { file: file.clone(), line: 0, message: "cannot read this file".to_owned() });
            continue;
        };
        for directive in directives(&text) {
            if let Some(target) = check_directive(&file, &directive, &mut problems)
                && target.extension().is_some_and(|ext| ext == "md")
            {
                included.insert(identity(&target));
                queue.push_back((target, render_dir.clone()));
            }
        }
        check_links(&file, &text, &render_dir, &mut problems);
        // The course's rule: the exercise first, its answer after it, folded.
        problems.extend(crate::book_order::check(&file, &text));
    }

    for file in &markdown {
        if *file == summary {
            continue;
        }
        let id = identity(file);
        if !listed.contains(&id) && !included.contains(&id) {
            problems.push(Problem {
                file: file.clone(),
                line: 1,
                message: "not listed in SUMMARY.md, nor included by a chapter: mdBook never renders it".to_owned(),
            });
        }
    }
    problems.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    problems
}

/// The mdbook the book is checked with: v[`MDBOOK_VERSION`] from PATH, or
/// from the cache, where it is installed with cargo the first time.
pub fn mdbook() -> anyhow::Result<std::path::PathBuf> {
    static INSTALLING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = INSTALLING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let tools = stitch_paths::cache_dir().join("tools");
    let cached = tools.join("bin").join("mdbook");
    let version_of = |program: &Path| {
        duct::cmd!(program, "--version")
            .stdout_capture()
            .stderr_null()
            .unchecked()
            .run()
            .ok()
            .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
    };
    let wanted = format!("v{MDBOOK_VERSION}");
    for candidate in [Path::new("mdbook"), cached.as_path()] {
        if version_of(candidate).is_some_and(|version| version.ends_with(&wanted)) {
            return Ok(candidate.to_path_buf());
        }
    }
    eprintln!("installing mdbook {MDBOOK_VERSION} into {} (first run only)", tools.display());
    let status = stitch_components::process::cargo(&[
        &"install",
        &"mdbook",
        &"--locked",
        &"--version",
        &MDBOOK_VERSION,
        &"--no-default-features",
        &"--features",
        &"search",
        &"--root",
        &tools,
        &"--quiet",
    ])
    .stdout_to_stderr()
    .unchecked()
    .run()
    .context("running cargo install mdbook")?
    .status;
    if !status.success() || version_of(&cached).is_none() {
        bail!("`cargo install mdbook --version {MDBOOK_VERSION}` failed ({status}); see above");
    }
    Ok(cached)
}

/// [`check_includes`] on the repo's book, then `mdbook build` (mdbook must be
/// on PATH; if not, the error says how to install the tested version). Fails
/// on any problem, on a non-zero mdbook exit, and on an error mdbook only logs.
pub fn check(project_root: &Path) -> anyhow::Result<()> {
    let book = project_root.join("book");
    let src = book.join(source_dir(&book)?);
    let problems = check_includes(&src);
    for problem in &problems {
        let file = problem.file.strip_prefix(project_root).unwrap_or(&problem.file);
        eprintln!("{}:{}: {}", file.display(), problem.line, problem.message);
    }
    if !problems.is_empty() {
        let generated = crate::report::generated_files(&stitch_runner::step::all()?);
        let only_generated = problems.iter().all(|problem| {
            generated.iter().any(|generated| problem.message.starts_with(&format!("`{generated}` does not exist")))
        });
        if only_generated {
            bail!("the measured results are missing from book/src: `cargo xtask report` writes them from real runs");
        }
        bail!("{} problem(s) in the book: mdBook would build it anyway, with holes where they are", problems.len());
    }

    let mdbook = mdbook()?;
    let output =
        duct::cmd!(mdbook, "build").dir(&book).stderr_capture().unchecked().run().context("running mdbook build")?;
    let log = String::from_utf8_lossy(&output.stderr);
    eprint!("{log}");
    if !output.status.success() {
        bail!("mdbook build failed ({})", output.status);
    }
    // A preprocessor error (an include the check above could not foresee) is
    // logged, not returned: the exit status stays 0.
    if let Some(line) = log.lines().find(|line| line.contains("ERROR")) {
        bail!("mdbook build logged an error: {}", line.trim());
    }
    Ok(())
}

/// `src` of `[book]` in book.toml (mdBook's default: `src`).
fn source_dir(book: &Path) -> anyhow::Result<PathBuf> {
    let path = book.join("book.toml");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut section = String::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line.trim_matches(|c| c == '[' || c == ']').trim().to_owned();
        } else if section == "book"
            && let Some((key, value)) = line.split_once('=')
            && key.trim() == "src"
        {
            return Ok(PathBuf::from(value.trim().trim_matches('"')));
        }
    }
    Ok(PathBuf::from("src"))
}

/// A `{{#kind target}}` directive, as mdBook's `links` preprocessor matches it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Directive<'a> {
    pub(crate) kind: &'a str,
    /// The first word after the kind: `path[:selection]`.
    pub(crate) target: &'a str,
    pub(crate) line: usize,
}

/// Every directive in `text`, skipping escaped ones (`\{{#include ...}}`),
/// which mdBook prints as they are. Directives inside code blocks count: mdBook
/// expands them there too.
pub(crate) fn directives(text: &str) -> Vec<Directive<'_>> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at..].starts_with(b"\\{{#") {
            // As mdBook: an escape runs to the last `}}` of its line.
            let line_end = text[at..].find('\n').map_or(text.len(), |n| at + n);
            if let Some(close) = text[at..line_end].rfind("}}") {
                at += close + 2;
                continue;
            }
        }
        if bytes[at..].starts_with(b"{{")
            && let Some((kind, rest, end)) = directive_at(text, at)
        {
            if let Some(target) = rest.split_whitespace().next() {
                let line = text[..at].matches('\n').count() + 1;
                found.push(Directive { kind, target, line });
            }
            at = end;
            continue;
        }
        at += 1;
    }
    found
}

/// Matches `{{ #kind rest}}` at `start`: mdBook's `\{\{\s*\#(\w+)\s+([^}]+)\}\}`.
fn directive_at(text: &str, start: usize) -> Option<(&str, &str, usize)> {
    let bytes = text.as_bytes();
    let mut at = start + 2;
    while bytes.get(at).is_some_and(u8::is_ascii_whitespace) {
        at += 1;
    }
    if bytes.get(at) != Some(&b'#') {
        return None;
    }
    at += 1;
    let kind_start = at;
    while bytes.get(at).is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_') {
        at += 1;
    }
    let kind = &text[kind_start..at];
    let blank_start = at;
    while bytes.get(at).is_some_and(u8::is_ascii_whitespace) {
        at += 1;
    }
    if kind.is_empty() || at == blank_start {
        return None;
    }
    let rest_start = at;
    while bytes.get(at).is_some_and(|b| *b != b'}') {
        at += 1;
    }
    if at == rest_start || !bytes[at..].starts_with(b"}}") {
        return None;
    }
    Some((kind, &text[rest_start..at], at + 2))
}

/// Which part of an included file a directive takes.
#[derive(Debug, PartialEq, Eq)]
enum Selection {
    Whole,
    Anchor(String),
    /// 1-based and inclusive, as written; `last: None` runs to the end.
    Lines {
        first: usize,
        last: Option<usize>,
    },
}

/// mdBook's reading of what follows the path: `name`, `N`, `N:M`, `N:`, `:M`.
fn selection(spec: Option<&str>) -> Result<Selection, String> {
    let Some(spec) = spec else { return Ok(Selection::Whole) };
    let mut parts = spec.splitn(3, ':');
    let first = parts.next().unwrap_or_default();
    let start = if first.is_empty() {
        None
    } else if let Ok(number) = first.parse::<usize>() {
        Some(number)
    } else {
        return Ok(Selection::Anchor(first.to_owned()));
    };
    let end = match parts.next() {
        None => None,
        Some("") => Some(None),
        // mdBook reads a bad end as "to the end of the file": almost never meant.
        Some(text) => Some(Some(text.parse::<usize>().map_err(|_| format!("`{text}` is not a line number"))?)),
    };
    Ok(match (start, end) {
        (None, None | Some(None)) => Selection::Whole,
        (None, Some(Some(last))) => Selection::Lines { first: 1, last: Some(last) },
        (Some(first), None) => Selection::Lines { first, last: Some(first) },
        (Some(first), Some(last)) => Selection::Lines { first, last },
    })
}

/// The path and the selection of a directive that includes a file.
fn split_target<'a>(directive: &Directive<'a>) -> Option<(&'a str, Option<&'a str>)> {
    match directive.kind {
        "include" | "rustdoc_include" => Some(match directive.target.split_once(':') {
            Some((path, spec)) => (path, Some(spec)),
            None => (directive.target, None),
        }),
        "playground" | "playpen" => Some((directive.target, None)),
        // `title` and unknown kinds include nothing.
        _ => None,
    }
}

/// The text a directive in `file` includes, as mdBook selects it (anchor
/// and line forms; nested anchor markers left in, they match nothing), and
/// the file it comes from; `None` for a directive that includes nothing.
pub(crate) fn included_text(file: &Path, directive: &Directive<'_>) -> anyhow::Result<Option<(PathBuf, String)>> {
    let Some((path, spec)) = split_target(directive) else { return Ok(None) };
    let target = parent_dir(file).join(path);
    let text = std::fs::read_to_string(&target)
        .with_context(|| format!("{}:{}: reading `{path}`", file.display(), directive.line))?;
    let selected = match selection(spec).map_err(anyhow::Error::msg)? {
        Selection::Whole => text,
        Selection::Anchor(name) => {
            find_anchor(&text, &name).map_err(|message| anyhow::anyhow!("`{}`: {message}", directive.target))?;
            let lines = text.lines().skip_while(|line| marker_name(line, "ANCHOR:") != Some(&name)).skip(1);
            lines.take_while(|line| marker_name(line, "ANCHOR_END:") != Some(&name)).collect::<Vec<_>>().join("\n")
        }
        Selection::Lines { first, last } => {
            let lines = text.lines().skip(first.saturating_sub(1));
            match last {
                Some(last) => lines.take((last + 1).saturating_sub(first)).collect::<Vec<_>>().join("\n"),
                None => lines.collect::<Vec<_>>().join("\n"),
            }
        }
    };
    Ok(Some((target, selected)))
}

/// The file a directive in `file` includes, when it exists.
fn include_path(file: &Path, directive: &Directive<'_>) -> Option<PathBuf> {
    let (path, _) = split_target(directive)?;
    Some(parent_dir(file).join(path)).filter(|target| target.is_file())
}

/// Checks one directive; returns the file it includes when that file exists.
fn check_directive(file: &Path, directive: &Directive<'_>, problems: &mut Vec<Problem>) -> Option<PathBuf> {
    let mut problem =
        |message: String| problems.push(Problem { file: file.to_path_buf(), line: directive.line, message });
    let (path, spec) = split_target(directive)?;
    let target = parent_dir(file).join(path);
    let text = match std::fs::read_to_string(&target) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound || target.is_dir() => {
            problem(format!("`{path}` does not exist ({})", target.display()));
            return None;
        }
        Err(err) => {
            problem(format!("`{path}` cannot be read: {err}"));
            return None;
        }
    };
    match selection(spec) {
        Err(message) => problem(format!("`{}`: {message}", directive.target)),
        Ok(Selection::Whole) => {}
        Ok(Selection::Anchor(name)) => {
            if let Err(message) = find_anchor(&text, &name) {
                problem(format!("`{}`: {message}", directive.target));
            }
        }
        Ok(Selection::Lines { first, last }) => {
            let count = text.lines().count();
            let message = if first == 0 {
                Some("line numbers start at 1".to_owned())
            } else if first > count {
                Some(format!("starts at line {first}, but the file has {count} lines"))
            } else {
                match last {
                    Some(last) if last < first => Some(format!("ends at line {last}, before it starts (line {first})")),
                    Some(last) if last > count => Some(format!("ends at line {last}, but the file has {count} lines")),
                    _ => None,
                }
            };
            if let Some(message) = message {
                problem(format!("`{}`: {message}", directive.target));
            }
        }
    }
    Some(target)
}

/// mdBook takes the lines after the first `ANCHOR: name` up to the next
/// `ANCHOR_END: name`; without that end it takes the rest of the file.
fn find_anchor(text: &str, name: &str) -> Result<(), String> {
    let mut lines = text.lines();
    if !lines.by_ref().any(|line| marker_name(line, "ANCHOR:") == Some(name)) {
        return Err(format!("no `ANCHOR: {name}` in the file"));
    }
    if !lines.any(|line| marker_name(line, "ANCHOR_END:") == Some(name)) {
        return Err(format!("`ANCHOR: {name}` has no `ANCHOR_END: {name}` after it"));
    }
    Ok(())
}

/// The name after the first `marker` of `line` that has one: mdBook's
/// `ANCHOR:\s*([\w_-]+)`.
fn marker_name<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    let mut rest = line;
    while let Some(found) = rest.find(marker) {
        let after = rest[found + marker.len()..].trim_start();
        let length = after.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-')).unwrap_or(after.len());
        if length > 0 {
            return Some(&after[..length]);
        }
        rest = &rest[found + marker.len()..];
    }
    None
}

/// The chapters SUMMARY.md lists, after checking each exists. A link with an
/// empty target is a draft chapter: listed, with no file.
fn summary_entries(summary: &Path, text: &str, book_src: &Path, problems: &mut Vec<Problem>) -> BTreeSet<PathBuf> {
    let mut listed = BTreeSet::new();
    for (line, target) in links(text) {
        let Some(path) = local_path(target) else { continue };
        let file = book_src.join(path);
        if file.is_file() {
            listed.insert(identity(&file));
        } else {
            problems.push(Problem {
                file: summary.to_path_buf(),
                line,
                message: format!("`{path}` does not exist ({})", file.display()),
            });
        }
    }
    listed
}

/// Relative links and pictures of a Markdown file must point at files.
fn check_links(file: &Path, text: &str, render_dir: &Path, problems: &mut Vec<Problem>) {
    for (line, target) in links(text) {
        let Some(path) = local_path(target) else { continue };
        let resolved = render_dir.join(path);
        if !resolved.exists() {
            problems.push(Problem {
                file: file.to_path_buf(),
                line,
                message: format!("`{path}` does not exist ({})", resolved.display()),
            });
        }
    }
}

/// `(line, target)` of every inline link or picture (`](target)`) and every
/// reference definition (`[name]: target`), outside code.
fn links(text: &str) -> Vec<(usize, &str)> {
    let mut found = Vec::new();
    let mut fence: Option<&str> = None;
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let marker = ["```", "~~~"].into_iter().find(|marker| trimmed.starts_with(marker));
        match (fence, marker) {
            (None, Some(marker)) => {
                fence = Some(marker);
                continue;
            }
            (Some(open), Some(marker)) if open == marker => {
                fence = None;
                continue;
            }
            (Some(_), _) => continue,
            (None, None) => {}
        }
        if trimmed.starts_with('[')
            && let Some((_, definition)) = trimmed.split_once("]:")
            && !trimmed.contains("](")
        {
            if let Some(target) = definition.split_whitespace().next() {
                found.push((index + 1, target.trim_start_matches('<').trim_end_matches('>')));
            }
            continue;
        }
        // Odd segments between backticks are code spans.
        for segment in line.split('`').step_by(2) {
            let mut rest = segment;
            while let Some(open) = rest.find("](") {
                rest = &rest[open + 2..];
                let target = if let Some(bracketed) = rest.strip_prefix('<') {
                    bracketed.split('>').next().unwrap_or_default()
                } else {
                    rest.split(|c: char| c == ')' || c.is_whitespace()).next().unwrap_or_default()
                };
                found.push((index + 1, target));
            }
        }
    }
    found
}

/// The file part of a link that points into the book; `None` for a web
/// address, a page-local `#anchor` or a draft chapter.
fn local_path(target: &str) -> Option<&str> {
    if target.contains("://") || target.starts_with("mailto:") || target.starts_with('/') {
        return None;
    }
    let path = target.split(['#', '?']).next().unwrap_or_default();
    (!path.is_empty()).then_some(path)
}

fn collect_markdown(dir: &Path, found: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_markdown(&path, found)?;
        } else if path.extension().is_some_and(|ext| ext == "md") {
            found.push(path);
        }
    }
    Ok(())
}

fn parent_dir(file: &Path) -> PathBuf {
    file.parent().map_or_else(PathBuf::new, Path::to_path_buf)
}

/// One name per file, however the path to it was spelled (`a/../b.md`).
fn identity(file: &Path) -> PathBuf {
    file.canonicalize().unwrap_or_else(|_| file.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A book in its own temporary directory, removed when dropped.
    struct TempBook {
        root: PathBuf,
    }

    impl TempBook {
        /// A valid book: one chapter showing an anchored region of `code/lib.rs`.
        fn new(name: &str) -> TempBook {
            let root = std::env::temp_dir().join(format!("stitch-book-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&root);
            let book = TempBook { root };
            book.write("code/lib.rs", LIB);
            book.write("book/src/SUMMARY.md", "# Summary\n\n- [Chapter](chapter.md)\n");
            book.write(
                "book/src/chapter.md",
                "# Chapter\n\n```rust,ignore\n{{#include ../../code/lib.rs:greet}}\n```\n",
            );
            book
        }

        fn write(&self, path: &str, text: &str) {
            let path = self.root.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }

        fn src(&self) -> PathBuf {
            self.root.join("book/src")
        }

        /// Writes `chapter.md` and returns the problems of the book.
        fn check_chapter(&self, chapter: &str) -> Vec<Problem> {
            self.write("book/src/chapter.md", chapter);
            check_includes(&self.src())
        }
    }

    impl Drop for TempBook {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }

    /// Five lines, one anchor.
    const LIB: &str = "// ANCHOR: greet\nfn greet() {}\n// ANCHOR_END: greet\nfn four() {}\nfn five() {}\n";

    fn messages(problems: &[Problem]) -> Vec<&str> {
        problems.iter().map(|problem| problem.message.as_str()).collect()
    }

    #[test]
    fn a_valid_book_passes() {
        let book = TempBook::new("valid");
        assert_eq!(check_includes(&book.src()), vec![]);

        // Every form mdBook reads, an escaped directive that is only text, and
        // an included fragment that SUMMARY.md need not list.
        book.write("book/src/generated/table.md", "| a | b |\n|---|---|\n");
        let chapter = "# Chapter\n\n\
            {{#include ../../code/lib.rs}}\n\
            {{#include ../../code/lib.rs:greet}}\n\
            {{ #include ../../code/lib.rs:2 }}\n\
            {{#include ../../code/lib.rs:2:5}}\n\
            {{#include ../../code/lib.rs:4:}}\n\
            {{#include ../../code/lib.rs::3}}\n\
            {{#rustdoc_include ../../code/lib.rs:greet}}\n\
            {{#title Chapter}}\n\
            \\{{#include ../../code/nowhere.rs}}\n\
            `\\{{#include nowhere.md}}` is how a chapter shows a directive.\n\
            {{#include generated/table.md}}\n\
            See [the same chapter](chapter.md#top) or [the web](https://example.org).\n";
        assert_eq!(book.check_chapter(chapter), vec![]);
    }

    #[test]
    fn a_removed_anchor_fails() {
        let book = TempBook::new("anchor");
        book.write("code/lib.rs", &LIB.replace("// ANCHOR_END: greet\n", ""));
        let problems = check_includes(&book.src());
        assert_eq!(
            messages(&problems),
            ["`../../code/lib.rs:greet`: `ANCHOR: greet` has no `ANCHOR_END: greet` after it"]
        );
        assert_eq!((problems[0].file.clone(), problems[0].line), (book.src().join("chapter.md"), 4));

        book.write("code/lib.rs", &LIB.replace("ANCHOR: greet", "ANCHOR: hello"));
        assert_eq!(
            messages(&check_includes(&book.src())),
            ["`../../code/lib.rs:greet`: no `ANCHOR: greet` in the file"]
        );

        // An end before its start does not close it.
        book.write("code/lib.rs", "// ANCHOR_END: greet\n// ANCHOR: greet\nfn greet() {}\n");
        assert_eq!(check_includes(&book.src()).len(), 1);
    }

    #[test]
    fn a_missing_file_fails() {
        let book = TempBook::new("missing");
        let problems = book.check_chapter("# Chapter\n\n```rust,ignore\n{{#include ../../code/gone.rs}}\n```\n");
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].message.starts_with("`../../code/gone.rs` does not exist"), "{problems:?}");
        assert_eq!(problems[0].line, 4);

        // A directive split over lines is still one directive, on its first line.
        let problems = book.check_chapter("# Chapter\n{{#rustdoc_include\n    ../../code/gone.rs:greet}}\n");
        assert_eq!(problems.iter().map(|p| p.line).collect::<Vec<_>>(), [2]);
    }

    #[test]
    fn a_bad_line_range_fails() {
        let book = TempBook::new("range");
        for (spec, expected) in [
            ("9", "starts at line 9, but the file has 5 lines"),
            ("2:6", "ends at line 6, but the file has 5 lines"),
            ("4:2", "ends at line 2, before it starts (line 4)"),
            ("6:", "starts at line 6, but the file has 5 lines"),
            (":9", "ends at line 9, but the file has 5 lines"),
            ("0", "line numbers start at 1"),
            (":0", "ends at line 0, before it starts (line 1)"),
            ("2:x", "`x` is not a line number"),
        ] {
            let problems = book.check_chapter(&format!("{{{{#include ../../code/lib.rs:{spec}}}}}\n"));
            assert_eq!(messages(&problems), [format!("`../../code/lib.rs:{spec}`: {expected}")], "{spec}");
        }
        for spec in ["1", "5", "1:5", "5:", ":5", "3:3"] {
            let problems = book.check_chapter(&format!("{{{{#include ../../code/lib.rs:{spec}}}}}\n"));
            assert_eq!(problems, vec![], "{spec}");
        }
    }

    #[test]
    fn a_chapter_missing_from_summary_fails() {
        let book = TempBook::new("summary");
        book.write("book/src/extra.md", "# Extra\n");
        let problems = check_includes(&book.src());
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].file, book.src().join("extra.md"));
        assert!(problems[0].message.starts_with("not listed in SUMMARY.md"));

        book.write("book/src/SUMMARY.md", "# Summary\n\n- [Chapter](chapter.md)\n- [Extra](extra.md)\n- [Draft]()\n");
        assert_eq!(check_includes(&book.src()), vec![]);

        book.write(
            "book/src/SUMMARY.md",
            "# Summary\n\n- [Chapter](chapter.md)\n- [Extra](extra.md)\n- [Gone](gone.md)\n",
        );
        let problems = check_includes(&book.src());
        assert_eq!((problems.len(), problems[0].line), (1, 5), "{problems:?}");
        assert!(problems[0].message.starts_with("`gone.md` does not exist"));
    }

    #[test]
    fn a_broken_picture_or_link_fails() {
        let book = TempBook::new("links");
        let problems = book.check_chapter(
            "# Chapter\n\n![A trace](images/trace.png)\n\n[next](next.md)\n\n```text\n[not](a-link.md)\n```\n",
        );
        assert_eq!(
            problems.iter().map(|p| (p.line, p.message.split(" (").next().unwrap())).collect::<Vec<_>>(),
            [(3, "`images/trace.png` does not exist"), (5, "`next.md` does not exist")]
        );

        // A fragment's picture is resolved from the chapter that includes it.
        book.write("book/src/images/trace.png", "");
        book.write("book/src/generated/run.md", "![A trace](images/trace.png)\n");
        assert_eq!(book.check_chapter("# Chapter\n\n{{#include generated/run.md}}\n"), vec![]);
    }

    /// The repo's own book. `cargo xtask report` writes
    /// [`crate::report::generated_files`] from
    /// real runs, so before it has run those files may be missing: that, and
    /// only that, is tolerated. A generated file that exists is checked like
    /// any other, and a misspelt generated name is not tolerated.
    #[test]
    fn the_workshop_book_resolves() {
        let root = stitch_paths::project_root();
        let src = root.join("book").join(source_dir(&root.join("book")).unwrap());
        let generated = crate::report::generated_files(&stitch_runner::step::all().unwrap());
        let problems: Vec<Problem> = check_includes(&src)
            .into_iter()
            .filter(|problem| {
                !generated.iter().any(|generated| {
                    problem.message.starts_with(&format!("`{generated}` does not exist"))
                        && !src.join(generated).exists()
                })
            })
            .collect();
        let listing: Vec<String> = problems.iter().map(Problem::to_string).collect();
        assert!(problems.is_empty(), "{}", listing.join("\n"));

        // `cargo xtask check` ends a failed run with `chapter: <path>`.
        for entry in std::fs::read_dir(root.join("steps")).unwrap() {
            let step = entry.unwrap().path().join("step.toml");
            let Ok(text) = std::fs::read_to_string(&step) else { continue };
            let chapter = text
                .lines()
                .find_map(|line| line.strip_prefix("chapter = "))
                .map(|value| value.trim().trim_matches('"'))
                .unwrap_or_else(|| panic!("{} names no chapter", step.display()));
            assert!(root.join(chapter).is_file(), "{}: chapter {chapter} does not exist", step.display());
        }
    }

    #[test]
    fn directives_are_found_as_mdbook_finds_them() {
        let text = "a {{#include x.rs:one}} b\n{{#include\ny.rs}}\n\\{{#include z.rs}} {{#include w.rs}}\n{{#}} {{# include}} {{#include }}\n";
        let found: Vec<_> = directives(text).into_iter().map(|d| (d.kind, d.target, d.line)).collect();
        // The escape swallows the rest of its line, up to the last `}}`.
        assert_eq!(found, [("include", "x.rs:one", 1), ("include", "y.rs", 2)]);
    }
}
