//! The answer scan: no lesson's answer where a learner meets it before
//! choosing to. Each step's `hints.toml` (beside its solution) names the
//! telltales of its answer: code of the solution's lesson files, and what a
//! solved check prints about it. None may appear
//!
//! - in `steps/`, any file;
//! - in a crate a lesson can call: every workspace crate a step's crate
//!   depends on, directly or through another (`crates/flow`,
//!   `crates/telemetry`, `crates/model`…), but the solutions, whose answers
//!   the later steps reuse on purpose;
//! - in a chapter's unfolded text: every line of `book/src/*.md` outside a
//!   `<details>` block, with what it includes (generated runs too);
//! - in a file a chapter's unfolded text names (`infra/collector/tier2.yaml`,
//!   in backticks), whole: a learner sent to read a file reads all of it.
//!   The solutions are the exception here too, and chapters, read as above.
//!
//! Whitespace does not count: a telltale matches across line breaks and
//! reformatting. A telltale that is not (or no longer) in the solution or
//! in its generated run guards nothing, and fails the scan too.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use stitch_model::hints::Hints;
use stitch_runner::step::{self, Step, StepDirs as _};

use crate::book::order::layout;
use crate::book::{directives, included_text};

/// One place a telltale was found.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    pub step: String,
    pub telltale: String,
    /// `path:line`, relative to the workspace root, and how the text got there.
    pub place: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}'s answer `{}` in {}", self.step, self.telltale, self.place)
    }
}

/// A text a learner can read, and where each of its lines is.
struct Document {
    /// Where the text is, as a reader would find it.
    label: String,
    /// The 1-based line of the text's first line, in the file the label names.
    first_line: usize,
    text: String,
}

/// Text with every run of whitespace made one space, and for each byte of it
/// the 0-based line of the original it came from.
fn normalise(text: &str) -> (String, Vec<usize>) {
    let mut out = String::with_capacity(text.len());
    let mut lines = Vec::with_capacity(text.len());
    let (mut line, mut blank) = (0, false);
    for character in text.chars() {
        if character.is_whitespace() {
            if !blank && !out.is_empty() {
                out.push(' ');
                lines.push(line);
            }
            blank = true;
            if character == '\n' {
                line += 1;
            }
            continue;
        }
        blank = false;
        out.push(character);
        lines.extend(std::iter::repeat_n(line, character.len_utf8()));
    }
    (out, lines)
}

/// Whitespace-insensitive: whether `telltale` is in `text`.
fn contains(text: &str, telltale: &str) -> bool {
    normalise(text).0.contains(&normalise(telltale).0)
}

/// Every file under `dir` that is text, but build output.
fn text_files(dir: &Path) -> anyhow::Result<Vec<(PathBuf, String)>> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).with_context(|| format!("reading {}", current.display()))? {
            let path = entry?.path();
            let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
            if path.is_dir() {
                if !matches!(name.as_str(), "target" | "node_modules" | "dist" | ".git") {
                    pending.push(path);
                }
            } else if let Ok(text) = std::fs::read_to_string(&path) {
                files.push((path, text));
            }
        }
    }
    files.sort();
    Ok(files)
}

/// The workspace crates a lesson can call: every path dependency reachable
/// from a crate of `steps/`, through any crate, less `steps/` and
/// `solutions/` themselves. Read from `cargo metadata`, so a new
/// dependency is scanned the day it is added.
pub fn lesson_callable_crates(root: &Path) -> anyhow::Result<BTreeMap<String, PathBuf>> {
    let output = stitch_components::process::cargo(&[&"metadata", &"--format-version", &"1", &"--no-deps"])
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .run()
        .context("running cargo metadata")?;
    if !output.status.success() {
        bail!("cargo metadata failed: {}", String::from_utf8_lossy(&output.stderr).trim());
    }
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).context("parsing cargo metadata")?;
    let packages = metadata["packages"].as_array().context("cargo metadata lists no packages")?;
    let dir_of = |package: &serde_json::Value| {
        package["manifest_path"].as_str().and_then(|manifest| Path::new(manifest).parent()).map(Path::to_path_buf)
    };
    let by_dir: BTreeMap<PathBuf, &serde_json::Value> =
        packages.iter().filter_map(|package| Some((dir_of(package)?, package))).collect();
    let (steps, solutions) = (root.join("steps"), root.join("solutions"));
    let mut pending: Vec<PathBuf> = by_dir.keys().filter(|dir| dir.starts_with(&steps)).cloned().collect();
    if pending.is_empty() {
        bail!("cargo metadata lists no crate under {}", steps.display());
    }
    let mut seen = BTreeSet::new();
    let mut callable = BTreeMap::new();
    while let Some(dir) = pending.pop() {
        if !seen.insert(dir.clone()) {
            continue;
        }
        let Some(package) = by_dir.get(&dir) else { continue };
        if !dir.starts_with(&steps) && !dir.starts_with(&solutions) {
            let name = package["name"].as_str().unwrap_or_default().to_owned();
            callable.insert(name, dir.clone());
        }
        for dependency in package["dependencies"].as_array().into_iter().flatten() {
            if let Some(path) = dependency["path"].as_str() {
                pending.push(PathBuf::from(path));
            }
        }
    }
    Ok(callable)
}

/// A chapter's unfolded text, in pieces: each run of unfolded lines, and
/// each unfolded include (itself read the same way when it is Markdown).
fn unfolded(file: &Path, label: &str, text: &str, depth: usize, out: &mut Vec<Document>) -> anyhow::Result<()> {
    let (folded, _) = layout(text);
    let lines: Vec<&str> = text.lines().collect();
    let includes: BTreeMap<usize, Vec<_>> = directives(text).into_iter().fold(BTreeMap::new(), |mut map, directive| {
        map.entry(directive.line).or_insert_with(Vec::new).push(directive);
        map
    });
    let mut run: Option<(usize, String)> = None;
    let flush = |run: &mut Option<(usize, String)>, out: &mut Vec<Document>| {
        if let Some((first_line, text)) = run.take() {
            out.push(Document { label: label.to_owned(), first_line, text });
        }
    };
    for (index, line) in lines.iter().enumerate() {
        let number = index + 1;
        if folded.get(index).copied().unwrap_or(false) {
            flush(&mut run, out);
            continue;
        }
        let (_, run_text) = run.get_or_insert_with(|| (number, String::new()));
        run_text.push_str(line);
        run_text.push('\n');
        for directive in includes.get(&number).into_iter().flatten() {
            let Some((target, included)) = included_text(file, directive)? else { continue };
            let through = format!("{label}:{number} (through {})", directive.target);
            if target.extension().is_some_and(|ext| ext == "md") && depth < 4 {
                unfolded(&target, &through, &included, depth + 1, out)?;
            } else {
                out.push(Document { label: through, first_line: 1, text: included });
            }
        }
    }
    flush(&mut run, out);
    Ok(())
}

/// Every text the scan reads, relative to `root`.
fn documents(root: &Path) -> anyhow::Result<Vec<Document>> {
    let relative = |path: &Path| path.strip_prefix(root).unwrap_or(path).display().to_string();
    let mut documents = Vec::new();
    let mut dirs = vec![root.join("steps")];
    dirs.extend(lesson_callable_crates(root)?.into_values());
    for dir in dirs {
        for (path, text) in text_files(&dir)? {
            documents.push(Document { label: relative(&path), first_line: 1, text });
        }
    }
    let book = root.join("book").join("src");
    let mut chapters: Vec<PathBuf> = std::fs::read_dir(&book)
        .with_context(|| format!("reading {}", book.display()))?
        .map(|entry| entry.map(|entry| entry.path()))
        .collect::<Result<_, _>>()?;
    chapters.retain(|path| path.extension().is_some_and(|ext| ext == "md") && !path.ends_with("SUMMARY.md"));
    chapters.sort();
    let mut unfolded_text = Vec::new();
    for chapter in chapters {
        let text = std::fs::read_to_string(&chapter).with_context(|| format!("reading {}", chapter.display()))?;
        unfolded(&chapter, &relative(&chapter), &text, 0, &mut unfolded_text)?;
    }
    documents.extend(files_named(root, &unfolded_text)?);
    documents.extend(unfolded_text);
    Ok(documents)
}

/// Each file of the repository (but the solutions) that the chapters'
/// unfolded text names, whole, labelled with the first place naming it.
fn files_named(root: &Path, unfolded_text: &[Document]) -> anyhow::Result<Vec<Document>> {
    let mut named = BTreeMap::new();
    for document in unfolded_text {
        for (offset, line) in document.text.lines().enumerate() {
            for path in named_files(line) {
                // Chapters are read by their own rule (folded parts aside).
                let own_rule = path.starts_with("solutions/") || path.starts_with("book/");
                if !own_rule && root.join(path).is_file() {
                    let place = format!("{}:{}", document.label, document.first_line + offset);
                    named.entry(path.to_owned()).or_insert(place);
                }
            }
        }
    }
    named
        .into_iter()
        .map(|(path, place)| {
            let text = std::fs::read_to_string(root.join(&path)).with_context(|| format!("reading {path}"))?;
            Ok(Document { label: format!("{path} (named at {place})"), first_line: 1, text })
        })
        .collect()
}

/// The repository paths a line names in backticks: `dir/file.ext`.
fn named_files(line: &str) -> impl Iterator<Item = &str> {
    line.split('`').skip(1).step_by(2).filter(|span| {
        span.contains('/')
            && span.rsplit('/').next().is_some_and(|name| name.contains('.'))
            && span.chars().all(|c| c.is_ascii_alphanumeric() || "._/-".contains(c))
    })
}

/// Every place `telltale` is in `document`, as `label:line`.
fn find(document: &Document, telltale: &str) -> Vec<String> {
    let (text, lines) = normalise(&document.text);
    let needle = normalise(telltale).0;
    let mut places: Vec<String> = text
        .match_indices(&needle)
        .map(|(at, _)| match document.label.split_once(" (through ") {
            // The chapter's line says where; the included file's line is noise.
            Some(_) => document.label.clone(),
            None => format!("{}:{}", document.label, document.first_line + lines.get(at).copied().unwrap_or(0)),
        })
        .collect();
    places.dedup();
    places
}

/// Telltales that guard nothing: not (or no longer) in the solution's
/// lesson files, or in the step's generated run.
fn stale_telltales(root: &Path, step: &Step, hints: &Hints) -> anyhow::Result<Vec<String>> {
    let mut lessons = String::new();
    for file in &step.meta.lesson {
        let path = step.dir(true).join(file);
        lessons += &std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    }
    let generated = root.join("book/src/generated").join(format!("{}.md", step.name));
    let run = if hints.answer.printed.is_empty() {
        String::new()
    } else {
        std::fs::read_to_string(&generated).with_context(|| format!("reading {}", generated.display()))?
    };
    let mut stale = Vec::new();
    for telltale in &hints.answer.code {
        if !contains(&lessons, telltale) {
            stale.push(format!(
                "{}: `{telltale}` is not in the solution's lesson files ({}): a telltale that is not the answer guards nothing",
                step.short_name(),
                step.meta.lesson.join(", ")
            ));
        }
    }
    for telltale in &hints.answer.printed {
        if !contains(&run, telltale) {
            stale.push(format!(
                "{}: `{telltale}` is not in the solved run of {}: a telltale no check prints guards nothing",
                step.short_name(),
                generated.strip_prefix(root).unwrap_or(&generated).display()
            ));
        }
    }
    Ok(stale)
}

/// Every problem: stale telltales, then each answer found in sight.
pub fn scan(root: &Path) -> anyhow::Result<Vec<String>> {
    let mut problems = Vec::new();
    let mut telltales = Vec::new();
    for step in step::all()? {
        let Some(hints) = crate::hint::read(&step)? else { continue };
        problems.extend(stale_telltales(root, &step, &hints)?);
        telltales.extend(hints.answer.telltales().map(|telltale| (step.short_name(), telltale.to_owned())));
    }
    let mut findings = BTreeSet::new();
    for document in documents(root)? {
        for (step, telltale) in &telltales {
            for place in find(&document, telltale) {
                findings.insert(Finding { step: step.clone(), telltale: telltale.clone(), place });
            }
        }
    }
    problems.extend(findings.iter().map(Finding::to_string));
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_does_not_hide_a_telltale() {
        assert!(contains("tokio::spawn(work\n        .with_current_context())", "work .with_current_context()"));
        assert!(contains("a\tb", "a  b"));
        assert!(!contains("with_current_span", "with_current_context"));
        let (text, lines) = normalise("one\n\n  two three\nfour");
        assert_eq!(text, "one two three four");
        assert_eq!((lines[0], lines[4], lines[14]), (0, 2, 3));
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("stitch-answer-scan-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("generated")).unwrap();
        dir
    }

    fn found(dir: &Path, chapter: &str, telltale: &str) -> Vec<String> {
        let path = dir.join("chapter.md");
        std::fs::write(&path, chapter).unwrap();
        let mut documents = Vec::new();
        unfolded(&path, "chapter.md", chapter, 0, &mut documents).unwrap();
        documents.iter().flat_map(|document| find(document, telltale)).collect()
    }

    #[test]
    fn a_file_the_chapter_names_is_read_whole() {
        let dir = scratch("named");
        std::fs::create_dir_all(dir.join("infra")).unwrap();
        std::fs::write(dir.join("infra/tier.yaml"), "policies:\n  - type: latency\n").unwrap();
        std::fs::create_dir_all(dir.join("solutions")).unwrap();
        std::fs::write(dir.join("solutions/answer.yaml"), "type: latency\n").unwrap();
        let named = |chapter: &str| {
            let path = dir.join("chapter.md");
            std::fs::write(&path, chapter).unwrap();
            let mut documents = Vec::new();
            unfolded(&path, "chapter.md", chapter, 0, &mut documents).unwrap();
            let files = files_named(&dir, &documents).unwrap();
            files.iter().flat_map(|document| find(document, "type: latency")).collect::<Vec<_>>()
        };
        let chapter = "The settings, from `infra/tier.yaml`; compare `solutions/answer.yaml`.\n";
        assert_eq!(named(chapter), ["infra/tier.yaml (named at chapter.md:1):2"]);
        assert!(named("<details>\n\nThe settings, from `infra/tier.yaml`.\n\n</details>\n").is_empty());
        assert_eq!(named_files("`a/b.rs`, `cargo xtask`, `x.rs`, `a/b c.rs`").collect::<Vec<_>>(), ["a/b.rs"]);
    }

    #[test]
    fn a_chapter_shows_an_answer_only_folded() {
        let dir = scratch("folded");
        let answer = "with_current_context";
        let prose = "# Step 2\n\nCall `with_current_context`\non the work.\n\n## The exercise\n";
        assert_eq!(found(&dir, prose, answer), ["chapter.md:3"]);
        let folded = "# Step 2\n\n## The exercise\n\n<details>\n\nCall `with_current_context`.\n\n</details>\n";
        assert_eq!(found(&dir, folded, answer), Vec::<String>::new());
    }

    #[test]
    fn an_unfolded_include_counts_and_a_folded_one_does_not() {
        let dir = scratch("include");
        std::fs::write(
            dir.join("generated/run.md"),
            "<!-- ANCHOR: unsolved -->\nnum_traces 100 each\n<!-- ANCHOR_END: unsolved -->\n\
             <!-- ANCHOR: solution -->\nnum_traces 2500 each\n<!-- ANCHOR_END: solution -->\n",
        )
        .unwrap();
        let whole = "## Measured\n\n{{#include generated/run.md}}\n";
        assert_eq!(found(&dir, whole, "num_traces 2500 each"), ["chapter.md:3 (through generated/run.md)"]);
        let split = "## Measured\n\n{{#include generated/run.md:unsolved}}\n\n<details>\n\n\
                     {{#include generated/run.md:solution}}\n\n</details>\n";
        assert_eq!(found(&dir, split, "num_traces 2500 each"), Vec::<String>::new());
        assert_eq!(found(&dir, split, "num_traces 100 each").len(), 1);
    }

    #[test]
    fn the_crates_a_lesson_can_call_are_the_shared_ones() {
        let root = stitch_paths::project_root();
        let callable = lesson_callable_crates(&root).unwrap();
        for shared in ["stitch-flow", "stitch-telemetry", "stitch-model"] {
            assert!(callable.contains_key(shared), "{shared} is missing from {callable:?}");
        }
        // The harness runs the lessons; no lesson calls it.
        assert!(!callable.contains_key("stitch-runner") && !callable.contains_key("stitch-judge"), "{callable:?}");
        assert!(callable.values().all(|dir| !dir.starts_with(root.join("solutions"))), "{callable:?}");
    }

    /// The proof `cargo xtask ci` runs, without a run: no answer in sight.
    #[test]
    fn no_answer_is_in_sight() {
        let problems = scan(&stitch_paths::project_root()).unwrap();
        assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
    }
}
