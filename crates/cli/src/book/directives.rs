//! The `{{#kind target}}` directives of a Markdown file, found as mdBook's
//! `links` preprocessor finds them (with its pattern), and whether what each
//! includes exists: the file, its anchor, its line range.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use regex::Regex;

use super::{Problem, parent_dir};

/// A `{{#kind target}}` directive, as mdBook's `links` preprocessor matches it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Directive<'a> {
    pub(crate) kind: &'a str,
    /// The first word after the kind: `path[:selection]`.
    pub(crate) target: &'a str,
    pub(crate) line: usize,
}

/// mdBook's pattern: an escaped directive (`\{{#include ...}}`, which it
/// prints as it is) runs to the last `}}` of its line; a directive is
/// `{{ #kind rest}}`, over lines if need be.
static DIRECTIVE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\\\{\{\#.*\}\}|\{\{\s*\#([a-zA-Z0-9_]+)\s+([^}]+)\}\}").expect("mdBook's directive pattern")
});

/// Every directive in `text`, skipping escaped ones. Directives inside code
/// blocks count: mdBook expands them there too.
pub(crate) fn directives(text: &str) -> Vec<Directive<'_>> {
    DIRECTIVE
        .captures_iter(text)
        .filter_map(|found| {
            let (kind, rest) = (found.get(1)?, found.get(2)?);
            let target = rest.as_str().split_whitespace().next()?;
            let line = text[..found.get(0)?.start()].matches('\n').count() + 1;
            Some(Directive { kind: kind.as_str(), target, line })
        })
        .collect()
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
    use anyhow::Context as _;
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
pub(super) fn include_path(file: &Path, directive: &Directive<'_>) -> Option<PathBuf> {
    let (path, _) = split_target(directive)?;
    Some(parent_dir(file).join(path)).filter(|target| target.is_file())
}

/// Checks one directive; returns the file it includes when that file exists.
pub(super) fn check_directive(file: &Path, directive: &Directive<'_>, problems: &mut Vec<Problem>) -> Option<PathBuf> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_are_found_as_mdbook_finds_them() {
        let text = "a {{#include x.rs:one}} b\n{{#include\ny.rs}}\n\\{{#include z.rs}} {{#include w.rs}}\n{{#}} {{# include}} {{#include }}\n";
        let found: Vec<_> = directives(text).into_iter().map(|d| (d.kind, d.target, d.line)).collect();
        // The escape swallows the rest of its line, up to the last `}}`.
        assert_eq!(found, [("include", "x.rs:one", 1), ("include", "y.rs", 2)]);
    }
}
