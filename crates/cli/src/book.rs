//! `cargo xtask book --check`: proves that every include of the book resolves,
//! then builds it.
//!
//! The chapters show the workshop's real code through mdBook includes, cut at
//! the `ANCHOR:` markers of the solutions. mdBook does not fail when an include
//! points at a file that moved (it logs an error, leaves the raw directive in
//! the page and exits 0), nor at an anchor that was renamed (it includes
//! nothing, silently). A chapter would then explain a fix it no longer shows.
//! The check reads the directives the way mdBook's `links` preprocessor does
//! ([`directives`]), the links as Markdown ([`links`]), walks the chapters
//! ([`includes`]) and checks the course's order ([`order`]), and fails instead.

mod directives;
mod includes;
mod links;
pub(crate) mod order;

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

pub(crate) use self::directives::{directives, included_text};
pub use self::includes::check_includes;

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
pub(super) fn source_dir(book: &Path) -> anyhow::Result<PathBuf> {
    #[derive(serde::Deserialize)]
    struct BookToml {
        #[serde(default)]
        book: BookSection,
    }
    #[derive(Default, serde::Deserialize)]
    struct BookSection {
        src: Option<PathBuf>,
    }
    let path = book.join("book.toml");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let config: BookToml = toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    Ok(config.book.src.unwrap_or_else(|| PathBuf::from("src")))
}

fn parent_dir(file: &Path) -> PathBuf {
    file.parent().map_or_else(PathBuf::new, Path::to_path_buf)
}

/// One name per file, however the path to it was spelled (`a/../b.md`). A
/// path that does not resolve (a file that is missing, which the check
/// reports where it is named) stays as it is spelled.
fn identity(file: &Path) -> PathBuf {
    file.canonicalize().unwrap_or_else(|_| file.to_path_buf())
}
