//! The crate a check runs. A check is the same whatever crate it is given:
//! the learner's (`steps/`), the solution's (`solutions/`), a copy of the
//! learner's crate with other lesson files (CI's wrong fixes), or another
//! package with the step's flow (a trap). Only this says which one it was,
//! for the record and the screen.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use stitch_model::Step;
use stitch_model::mistakes::{Mistake, Mistakes};

use crate::step::StepDirs as _;

/// Where a crate a check runs comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// `steps/step-NN-…`, as the learner left it.
    Learner,
    /// `solutions/step-NN-…`.
    Solution,
    /// A copy of the learner's crate with these lesson files in place (a
    /// wrong fix the book names, or the solution's lesson).
    Copy(String),
    /// Another package that runs the step's flow (a trap of the book).
    Other,
}

/// A crate whose binary runs the step's flow.
#[derive(Debug, Clone)]
pub struct LessonCrate {
    /// Its package.
    pub package: String,
    /// The binary of the package that runs the flow.
    pub binary: String,
    /// Its directory: a stage reads lesson files there (step 4's
    /// `sampling.yaml`, step 7's `allowlist.js`).
    pub dir: PathBuf,
    /// The workspace manifest it is built with; `None`: the project's.
    pub manifest: Option<PathBuf>,
    pub origin: Origin,
}

impl LessonCrate {
    /// The learner's crate of `step`.
    pub fn learner(step: &Step) -> LessonCrate {
        let package = step.package(false);
        LessonCrate { binary: package.clone(), package, dir: step.dir(false), manifest: None, origin: Origin::Learner }
    }

    /// The solution of `step`.
    pub fn solution(step: &Step) -> LessonCrate {
        let package = step.package(true);
        LessonCrate { binary: package.clone(), package, dir: step.dir(true), manifest: None, origin: Origin::Solution }
    }

    /// The learner's crate, or the solution's.
    pub fn of(step: &Step, solution: bool) -> LessonCrate {
        if solution { LessonCrate::solution(step) } else { LessonCrate::learner(step) }
    }

    /// A binary of a package of the project's workspace that is neither
    /// (a trap, a flow broken as a step ships it).
    pub fn other(package: &str, binary: &str) -> LessonCrate {
        LessonCrate {
            package: package.to_owned(),
            binary: binary.to_owned(),
            dir: crate::project_root(),
            manifest: None,
            origin: Origin::Other,
        }
    }

    /// Whether it is the step's solution (for the record and the screen only).
    pub fn is_solution(&self) -> bool {
        self.origin == Origin::Solution
    }

    /// Builds its binary.
    pub fn build(&self) -> anyhow::Result<()> {
        match &self.manifest {
            None => crate::process::cargo_build(&[&self.package]),
            Some(manifest) => crate::process::cargo_build_in(manifest, &[&self.package]),
        }
    }
}

/// Where copies of learners' crates are built: a workspace of their own
/// under the run directory, whose dependencies are the project's own crates
/// by path and the same registry crates at the same versions, built into the
/// same target directory, so that only the copy compiles.
fn copies_dir() -> PathBuf {
    crate::run_dir().join("lessons")
}

impl LessonCrate {
    /// A copy of `step`'s learner crate, named `<its package>--<name>`, with
    /// each of `files` (a lesson file's path in the crate, and the file to
    /// put there) in place. The learner's crate is not touched.
    pub fn copy_of_learner(step: &Step, name: &str, files: &[(String, PathBuf)]) -> anyhow::Result<LessonCrate> {
        let learner = LessonCrate::learner(step);
        let package = format!("{}--{name}", learner.package);
        let dir = copies_dir().join(&package);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        copy_tree(&learner.dir, &dir)?;
        for (lesson, source) in files {
            if !step.meta.lesson.contains(lesson) {
                bail!("{lesson} is not a lesson file of {} (step.toml: {:?})", step.short_name(), step.meta.lesson);
            }
            let target = dir.join(lesson);
            std::fs::copy(source, &target)
                .with_context(|| format!("copying {} to {}", source.display(), target.display()))?;
        }
        rename_package(&dir.join("Cargo.toml"), &learner.package, &package)?;
        write_workspace()?;
        Ok(LessonCrate {
            binary: package.clone(),
            package,
            dir,
            manifest: Some(copies_dir().join("Cargo.toml")),
            origin: Origin::Copy(name.to_owned()),
        })
    }
}

/// Copies `from` into `to` (which must not exist), file by file.
fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type()?.is_dir() {
            if entry.file_name() != "target" && entry.file_name() != "node_modules" {
                copy_tree(&source, &target)?;
            }
        } else {
            std::fs::copy(&source, &target)
                .with_context(|| format!("copying {} to {}", source.display(), target.display()))?;
        }
    }
    Ok(())
}

/// Renames the copy's package, keeping its library's name (its binary and
/// tests name the library) and naming its binary after the package.
fn rename_package(manifest: &Path, original: &str, package: &str) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(manifest).with_context(|| format!("reading {}", manifest.display()))?;
    let mut table: toml::Table = toml::from_str(&text).with_context(|| format!("parsing {}", manifest.display()))?;
    let section = table.get_mut("package").and_then(toml::Value::as_table_mut).context("no [package]")?;
    section.insert("name".to_owned(), package.into());
    section.insert("autobins".to_owned(), false.into());
    let mut lib = toml::Table::new();
    lib.insert("name".to_owned(), original.replace('-', "_").into());
    lib.insert("path".to_owned(), "src/lib.rs".into());
    table.insert("lib".to_owned(), lib.into());
    let mut bin = toml::Table::new();
    bin.insert("name".to_owned(), package.into());
    bin.insert("path".to_owned(), "src/main.rs".into());
    table.insert("bin".to_owned(), toml::Value::Array(vec![bin.into()]));
    std::fs::write(manifest, toml::to_string(&table)?).with_context(|| format!("writing {}", manifest.display()))
}

/// The copies' workspace: every copy a member; the project's workspace
/// settings, its dependencies (the project's own by absolute path), its
/// `Cargo.lock`, and its profiles, with each project crate a copy reaches
/// built as the project builds its members, so that cargo reuses them.
fn write_workspace() -> anyhow::Result<()> {
    let root = crate::project_root();
    let read = |path: &Path| -> anyhow::Result<toml::Table> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    };
    let project = read(&root.join("Cargo.toml"))?;
    let section = |table: &toml::Table, key: &str| -> anyhow::Result<toml::Table> {
        table.get(key).and_then(toml::Value::as_table).cloned().with_context(|| format!("no [{key}] in Cargo.toml"))
    };
    let workspace = section(&project, "workspace")?;
    let mut dependencies = section(&workspace, "dependencies")?;
    let mut paths = std::collections::BTreeMap::new();
    for (name, spec) in &mut dependencies {
        if let Some(path) = spec.get("path").and_then(toml::Value::as_str) {
            let absolute = root.join(path);
            paths.insert(name.clone(), absolute.clone());
            spec.as_table_mut()
                .context("a path dependency is a table")?
                .insert("path".to_owned(), absolute.to_str().context("a path that is not UTF-8")?.into());
        }
    }

    let dir = copies_dir();
    let mut members = Vec::new();
    let mut reached = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let manifest = entry.path().join("Cargo.toml");
        if manifest.is_file() {
            members.push(toml::Value::from(entry.file_name().to_string_lossy().into_owned()));
            reach(&read(&manifest)?, &paths, &read, &mut reached)?;
        }
    }

    let mut copies = toml::Table::new();
    copies.insert("resolver".to_owned(), workspace.get("resolver").cloned().unwrap_or_else(|| "3".into()));
    copies.insert("members".to_owned(), toml::Value::Array(members));
    for key in ["package", "lints"] {
        copies.insert(key.to_owned(), section(&workspace, key)?.into());
    }
    copies.insert("dependencies".to_owned(), dependencies.into());
    let mut profiles = section(&project, "profile")?;
    let dev = profiles.get_mut("dev").and_then(toml::Value::as_table_mut).context("no [profile.dev]")?;
    let as_member: toml::Table = dev
        .iter()
        .filter(|(key, _)| *key != "package" && *key != "build-override")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let packages = dev.entry("package").or_insert_with(|| toml::Table::new().into());
    let packages = packages.as_table_mut().context("[profile.dev.package] is a table")?;
    for name in reached {
        packages.insert(name, as_member.clone().into());
    }
    let mut manifest = toml::Table::new();
    manifest.insert("workspace".to_owned(), copies.into());
    manifest.insert("profile".to_owned(), profiles.into());
    let path = dir.join("Cargo.toml");
    std::fs::write(&path, toml::to_string(&manifest)?).with_context(|| format!("writing {}", path.display()))?;
    std::fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock")).context("copying Cargo.lock")?;
    Ok(())
}

/// Adds to `reached` every project crate `manifest` depends on, and theirs.
fn reach(
    manifest: &toml::Table,
    paths: &std::collections::BTreeMap<String, PathBuf>,
    read: &dyn Fn(&Path) -> anyhow::Result<toml::Table>,
    reached: &mut std::collections::BTreeSet<String>,
) -> anyhow::Result<()> {
    for section in ["dependencies", "dev-dependencies"] {
        let Some(dependencies) = manifest.get(section).and_then(toml::Value::as_table) else { continue };
        for name in dependencies.keys() {
            if let Some(path) = paths.get(name)
                && reached.insert(name.clone())
            {
                let theirs = read(&path.join("Cargo.toml"))?;
                // Their own dev-dependencies are not built for a copy.
                let mut built = theirs.clone();
                built.remove("dev-dependencies");
                reach(&built, paths, read, reached)?;
            }
        }
    }
    Ok(())
}

/// A crate's lesson files: each file's path in the step, and where to copy it from.
pub type LessonFiles = Vec<(String, PathBuf)>;

/// A step's named wrong fixes, from its solution's `mistakes.toml`, each
/// with its lesson files: the solution's, but for those under
/// `mistakes/<name>/` (a wrong fix is the solution with one thing wrong);
/// none when the step names none (it has no such file).
pub fn mistakes(step: &Step) -> anyhow::Result<Vec<(Mistake, LessonFiles)>> {
    let solution = step.dir(true);
    let path = solution.join("mistakes.toml");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err).with_context(|| format!("reading {}", path.display())),
    };
    let listed = Mistakes::parse(&text).with_context(|| format!("in {}", path.display()))?;
    let dir = solution.join("mistakes");
    let on_disk: Vec<String> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .map(|entry| Ok(entry?.file_name().to_string_lossy().into_owned()))
            .collect::<std::io::Result<_>>()
            .with_context(|| format!("reading {}", dir.display()))?,
        Err(err) => return Err(err).with_context(|| format!("reading {}", dir.display())),
    };
    if let Some(stray) = on_disk.iter().find(|name| !listed.mistakes.iter().any(|mistake| &mistake.name == *name)) {
        bail!("{}: {stray} is not listed in {}", dir.display(), path.display());
    }
    listed
        .mistakes
        .into_iter()
        .map(|mistake| {
            let mut files = solution_lesson(step);
            let mut wrong = 0;
            for (lesson, file) in &mut files {
                let replaced = dir.join(&mistake.name).join(&*lesson);
                if replaced.is_file() {
                    *file = replaced;
                    wrong += 1;
                }
            }
            if wrong == 0 {
                bail!(
                    "{}: no lesson file of {} under {}",
                    mistake.name,
                    step.short_name(),
                    dir.join(&mistake.name).display()
                );
            }
            Ok((mistake, files))
        })
        .collect()
}

/// The solution's lesson files, as `copy_of_learner` takes them.
pub fn solution_lesson(step: &Step) -> LessonFiles {
    step.meta.lesson.iter().map(|lesson| (lesson.clone(), step.dir(true).join(lesson))).collect()
}
