//! The walk over the book: SUMMARY.md's chapters and every file they
//! include, each checked for its directives, its links and the course's
//! order; a Markdown file no chapter reaches is reported.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

use super::directives::{check_directive, directives, include_path};
use super::links::{check_links, summary_entries};
use super::{Problem, identity, parent_dir};

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
    // Each file read once; one that cannot be read is a problem of its own,
    // never a file without includes or links.
    let mut texts = BTreeMap::new();
    for file in &markdown {
        match std::fs::read_to_string(file) {
            Ok(text) => {
                texts.insert(file.clone(), text);
            }
            Err(err) => {
                problems.push(Problem { file: file.clone(), line: 0, message: format!("cannot read this file: {err}") })
            }
        }
    }

    // Chapters are the files SUMMARY.md lists, and any other file no one
    // includes (reported below). Each is queued with the directory its links
    // resolve from once rendered: its own for a chapter, the including
    // chapter's for an included file.
    let included_here: BTreeSet<PathBuf> = texts
        .iter()
        .flat_map(|(file, text)| {
            directives(text).iter().filter_map(|directive| include_path(file, directive)).collect::<Vec<_>>()
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
        let text = match texts.get(&file) {
            Some(text) => text.clone(),
            // Unreadable, and reported above.
            None if markdown.contains(&file) => continue,
            // Included from outside the book's sources.
            None => match std::fs::read_to_string(&file) {
                Ok(text) => text,
                Err(err) => {
                    let message = format!("cannot read this file: {err}");
                    problems.push(Problem { file: file.clone(), line: 0, message });
                    continue;
                }
            },
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
        problems.extend(super::order::check(&file, &text));
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
    fn an_unreadable_chapter_is_a_problem_not_a_chapter_without_includes() {
        let book = TempBook::new("unreadable");
        // Not UTF-8: read_to_string fails as it would on any unreadable file.
        std::fs::write(book.src().join("chapter.md"), [0xff, 0xfe, b'\n']).unwrap();
        let problems = check_includes(&book.src());
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].file, book.src().join("chapter.md"));
        assert!(problems[0].message.starts_with("cannot read this file: "), "{problems:?}");
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
        let src = root.join("book").join(crate::book::source_dir(&root.join("book")).unwrap());
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
        for step in stitch_runner::step::all().unwrap() {
            let chapter = &step.meta.chapter;
            assert!(root.join(chapter).is_file(), "{}: chapter {chapter} does not exist", step.name);
        }
    }
}
