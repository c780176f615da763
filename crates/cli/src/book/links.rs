//! The links and pictures of a Markdown file, read with pulldown-cmark, and
//! whether each relative one points at a file; SUMMARY.md's chapters.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use pulldown_cmark::{Event, LinkType, Options, Parser, Tag};

use super::{Problem, identity};

/// The extensions mdBook renders with (tables, footnotes, strikethrough,
/// task lists, heading attributes): a link in a table cell is a link.
const MDBOOK_OPTIONS: Options = Options::ENABLE_TABLES
    .union(Options::ENABLE_FOOTNOTES)
    .union(Options::ENABLE_STRIKETHROUGH)
    .union(Options::ENABLE_TASKLISTS)
    .union(Options::ENABLE_HEADING_ATTRIBUTES);

/// The chapters SUMMARY.md lists, after checking each exists. A link with an
/// empty target is a draft chapter: listed, with no file.
pub(super) fn summary_entries(
    summary: &Path,
    text: &str,
    book_src: &Path,
    problems: &mut Vec<Problem>,
) -> BTreeSet<PathBuf> {
    let mut listed = BTreeSet::new();
    for (line, target) in links(text) {
        let Some(path) = local_path(&target) else { continue };
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
pub(super) fn check_links(file: &Path, text: &str, render_dir: &Path, problems: &mut Vec<Problem>) {
    for (line, target) in links(text) {
        let Some(path) = local_path(&target) else { continue };
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

/// `(line, target)` of every inline link or picture (`[text](target)`) and
/// every reference definition (`[name]: target`), read as mdBook reads
/// Markdown: nothing inside code counts. A link by reference is checked at
/// its definition.
fn links(text: &str) -> Vec<(usize, String)> {
    let line = |offset: usize| text[..offset].matches('\n').count() + 1;
    let parser = Parser::new_ext(text, MDBOOK_OPTIONS);
    let mut found: Vec<(usize, String)> = parser
        .reference_definitions()
        .iter()
        .map(|(_, definition)| (line(definition.span.start), definition.dest.to_string()))
        .collect();
    for (event, at) in parser.into_offset_iter() {
        if let Event::Start(
            Tag::Link { link_type: LinkType::Inline, dest_url, .. }
            | Tag::Image { link_type: LinkType::Inline, dest_url, .. },
        ) = event
        {
            found.push((line(at.start), dest_url.to_string()));
        }
    }
    found.sort();
    found
}

/// The file part of a link that points into the book; `None` for a web
/// address, a page-local `#anchor` or a draft chapter.
fn local_path(target: &str) -> Option<&str> {
    if target.contains("://") || target.starts_with("mailto:") || target.starts_with('/') {
        return None;
    }
    let path = target.split_once(['#', '?']).map_or(target, |(path, _)| path);
    (!path.is_empty()).then_some(path)
}

#[cfg(test)]
mod tests {
    #[test]
    fn links_in_code_are_text_and_references_count_at_their_definition() {
        let text = "# Title\n\
            [a](a.md) and ![b](images/b.png \"title\")\n\
            `[not](code.md)`\n\n\
            ```text\n[not](fence.md)\n```\n\n\
            \x20   [not](indented.md)\n\n\
            [by reference][ref] | [draft]()\n\n\
            [ref]: <docs/ref.md#part>\n";
        let found = super::links(text);
        assert_eq!(
            found,
            [
                (2, "a.md".to_owned()),
                (2, "images/b.png".to_owned()),
                (11, "".to_owned()),
                (13, "docs/ref.md#part".to_owned()),
            ]
        );
        assert_eq!(super::local_path("docs/ref.md#part"), Some("docs/ref.md"));
        assert_eq!(super::local_path("#top"), None);
        assert_eq!(super::local_path("https://example.org/a.md"), None);
    }
}
