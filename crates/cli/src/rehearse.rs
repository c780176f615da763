//! `cargo xtask rehearse`: the room, rehearsed on one machine. It packs
//! what a day downloads (`cargo xtask pack`), then plays an attendee's
//! fresh machine without network: a clone of this checkout's HEAD, a home
//! directory holding only the unpacked pack, and every command in a network
//! namespace of its own (loopback only). It times the first command, the
//! first check (the cold build of everything a learner builds), and one
//! check of each step that starts a component from the pack; measures the
//! disk each part takes and the largest process's memory; and writes it all
//! to `book/src/generated/room.md` for the instructors' page. It needs root
//! (`unshare -n`) and GNU time.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context as _, bail};
use stitch_paths::project_root;

const FILE: &str = "book/src/generated/room.md";

/// The checks an attendee's machine runs in the rehearsal, after the first:
/// each starts a component the pack brought (the collector and Jaeger,
/// Envoy, the page's npm packages and Chromium).
const CHECKS: [(&str, &str); 4] = [
    ("step-1", "a learner's own first step (builds its crate)"),
    ("step-4 --solution", "the collector tier and Jaeger, from the pack"),
    ("step-6 --solution", "Envoy, from the pack"),
    ("step-7 --solution", "the page's npm packages, from the pack, and Chromium"),
];

/// One timed command of the rehearsal.
struct Timed {
    what: String,
    seconds: f64,
    outcome: String,
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Bytes under `path` (`du -sb`).
fn disk(path: &Path) -> anyhow::Result<u64> {
    let output = duct::cmd!("du", "-sb", path).read().with_context(|| format!("du -sb {}", path.display()))?;
    output.split_whitespace().next().context("du printed nothing")?.parse().context("du's size")
}

fn load() -> anyhow::Result<f64> {
    let text = std::fs::read_to_string("/proc/loadavg").context("reading /proc/loadavg")?;
    text.split_whitespace().next().context("empty /proc/loadavg")?.parse().context("/proc/loadavg")
}

/// The attendee's machine: where the clone and its home are.
struct Machine {
    clone: PathBuf,
    home: PathBuf,
    rustup: PathBuf,
    path: String,
}

impl Machine {
    /// `args` in the clone, in a network namespace with only loopback, with
    /// the attendee's home; GNU time's peak RSS (KiB) in `rss`.
    fn run(&self, args: &[&str], log: &Path, rss: &Path) -> anyhow::Result<(f64, bool)> {
        let mut command: Vec<String> = vec![
            "-n".into(),
            "sh".into(),
            "-c".into(),
            "ip link set lo up && exec \"$@\"".into(),
            "sh".into(),
            "/usr/bin/time".into(),
            "-f".into(),
            "%M".into(),
            "-o".into(),
            rss.display().to_string(),
        ];
        command.extend(args.iter().map(|arg| (*arg).to_owned()));
        let started = Instant::now();
        let output = duct::cmd("unshare", &command)
            .dir(&self.clone)
            .full_env(self.env())
            .stderr_to_stdout()
            .stdout_path(log)
            .unchecked()
            .run()
            .with_context(|| format!("running {} in a network namespace", args.join(" ")))?;
        Ok((started.elapsed().as_secs_f64(), output.status.success()))
    }

    fn env(&self) -> Vec<(String, String)> {
        let home = self.home.display().to_string();
        vec![
            ("HOME".into(), home.clone()),
            ("CARGO_HOME".into(), format!("{home}/.cargo")),
            ("RUSTUP_HOME".into(), self.rustup.display().to_string()),
            ("PATH".into(), self.path.clone()),
            ("TERM".into(), "dumb".into()),
        ]
    }
}

pub fn run(keep: bool) -> anyhow::Result<ExitCode> {
    if std::fs::read_to_string("/proc/self/status").ok().as_deref().and_then(stitch_paths::cgroup::effective_uid)
        != Some(0)
    {
        bail!("the rehearsal plays a machine without network in a network namespace of its own: it needs root");
    }
    if !Path::new("/usr/bin/time").is_file() {
        bail!("the rehearsal measures memory with GNU time: apt-get install time");
    }
    let root = project_root();
    let dir = stitch_paths::run_dir().join("rehearsal");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir)?;
    let cores = std::thread::available_parallelism()?.get();
    let load_before = load()?;
    let mut timed = Vec::new();

    // The instructor's machine, the day before.
    let pack = dir.join("stitch-room.tar.gz");
    let xtask = std::env::current_exe().context("locating the xtask binary")?;
    let started = Instant::now();
    let status = duct::cmd!(&xtask, "pack", &pack).stdout_to_stderr().unchecked().run()?.status;
    if !status.success() {
        bail!("`cargo xtask pack` failed ({status}): see above");
    }
    let pack_size = std::fs::metadata(&pack)?.len();
    timed.push(Timed {
        what: "`cargo xtask pack stitch-room.tar.gz`, on a machine that fetched it all before".into(),
        seconds: started.elapsed().as_secs_f64(),
        outcome: format!("{} to copy to each machine", mib(pack_size)),
    });

    // An attendee's machine: the clone, the pack, no network.
    let clone = dir.join("stitch");
    let commit = duct::cmd!("git", "rev-parse", "--short", "HEAD").dir(&root).read().context("git rev-parse")?;
    let status = duct::cmd!("git", "clone", "--quiet", &root, &clone).unchecked().run()?.status;
    if !status.success() {
        bail!("git clone of {} failed ({status})", root.display());
    }
    let home = dir.join("home");
    std::fs::create_dir_all(&home)?;
    let started = Instant::now();
    let status = duct::cmd!("tar", "-xzf", &pack, "-C", &home).unchecked().run()?.status;
    if !status.success() {
        bail!("tar -xzf {} failed ({status})", pack.display());
    }
    timed.push(Timed {
        what: "`tar -xzf stitch-room.tar.gz -C ~`".into(),
        seconds: started.elapsed().as_secs_f64(),
        outcome: format!("{} unpacked", mib(disk(&home)?)),
    });
    let rustup = std::env::var_os("RUSTUP_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".rustup")))
        .context("where is rustup's home? set RUSTUP_HOME")?;
    let cargo_bin = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
        .context("where is cargo? set CARGO_HOME")?
        .join("bin");
    let machine = Machine {
        clone: clone.clone(),
        home: home.clone(),
        rustup,
        path: format!("{}:/usr/local/bin:/usr/bin:/bin", cargo_bin.display()),
    };

    let rss = dir.join("rss");
    let peak = |rss: &Path| -> anyhow::Result<u64> {
        let text = std::fs::read_to_string(rss).with_context(|| format!("reading {}", rss.display()))?;
        let kib: u64 =
            text.lines().last().context("GNU time wrote nothing")?.trim().parse().context("GNU time's %M")?;
        Ok(kib * 1024)
    };
    let (seconds, ok) = machine.run(&["cargo", "xtask", "doctor"], &dir.join("doctor.log"), &rss)?;
    timed.push(Timed {
        what: "`cargo xtask doctor`, the first command (builds the dispatcher alone)".into(),
        seconds,
        outcome: if ok { "passes".into() } else { "FAILS: see doctor.log".into() },
    });
    let (seconds, _) = machine.run(&["cargo", "xtask", "check", "step-0", "--json"], &dir.join("step-0.log"), &rss)?;
    let cold_rss = peak(&rss)?;
    let ran = std::fs::read_to_string(dir.join("step-0.log"))?.contains("\"passed\": false");
    timed.push(Timed {
        what: "`cargo xtask check step-0`, the first check: builds the workspace and the broker".into(),
        seconds,
        outcome: if ran { "runs, and fails as the baseline must".into() } else { "DID NOT RUN: see step-0.log".into() },
    });
    let target_after_build = disk(&clone.join("target"))?;
    let mut all_ran = ran;
    let mut check_rss = 0;
    for (check, what) in CHECKS {
        let mut args = vec!["cargo", "xtask", "check"];
        args.extend(check.split_whitespace());
        args.push("--json");
        let log = dir.join(format!("{}.log", check.replace([' ', '-'], "_")));
        let (seconds, passed) = machine.run(&args, &log, &rss)?;
        check_rss = check_rss.max(peak(&rss)?);
        let text = std::fs::read_to_string(&log)?;
        // A learner's own step fails unsolved; a solution passes.
        let outcome = match (check.contains("--solution"), passed, text.contains("\"passed\"")) {
            (true, true, _) => "passes".to_owned(),
            (false, false, true) => "runs, and fails unsolved".to_owned(),
            _ => format!("FAILS: see {}", log.display()),
        };
        all_ran &= !outcome.starts_with("FAILS");
        timed.push(Timed { what: format!("`cargo xtask check {check}`: {what}"), seconds, outcome });
    }
    let sizes = [
        ("the checkout's `target/`, after these checks", disk(&clone.join("target"))?),
        ("of it after the first check alone", target_after_build),
        ("`~/.cache/stitch`, the components", disk(&home.join(".cache").join("stitch"))?),
        ("`~/.cargo/registry`, crates and their sources", disk(&home.join(".cargo").join("registry"))?),
        ("`~/.npm`", disk(&home.join(".npm"))?),
        (
            "the checkout itself, with `frontend/node_modules`",
            disk(&clone)?.saturating_sub(disk(&clone.join("target"))?),
        ),
    ];
    let load_after = load()?;

    let mut text = format!(
        "<!-- generated by `cargo xtask rehearse` from a real run: do not edit -->\n\
         Rehearsed by `cargo xtask rehearse` on a {cores}-core machine (load average {load_before:.1} when it \
         started, {load_after:.1} when it ended{}), with commit {commit}: a fresh clone, a home holding only the \
         unpacked pack, every command without network.\n\n| what | took | |\n|---|---:|---|\n",
        if load_before.max(load_after) > cores as f64 / 2.0 { ": other work shared the machine" } else { "" }
    );
    for row in &timed {
        text.push_str(&format!("| {} | {:.0} s | {} |\n", row.what, row.seconds, row.outcome));
    }
    text.push_str("\n| disk | size |\n|---|---:|\n");
    for (what, bytes) in sizes {
        text.push_str(&format!("| {what} | {} |\n", mib(bytes)));
    }
    text.push_str(&format!(
        "\nThe largest single process: {} during the first check's build, {} during the later checks \
         (GNU time's peak resident memory; processes run side by side, so a machine needs more than the largest).\n",
        mib(cold_rss),
        mib(check_rss)
    ));
    let path = root.join(FILE);
    std::fs::write(&path, &text).with_context(|| format!("writing {}", path.display()))?;
    println!("{text}\nwrote {}", path.display());
    if keep {
        println!("kept {}", dir.display());
    } else {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    Ok(if all_ran { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
