//! tidy: the workspace's own rules, checked on every test run (TigerBeetle's `tidy.zig`).
//!
//! The outside world enters only through `crates/runtime`; the simulator's determinism depends
//! on it. Files stay small enough to read.

use std::path::{Path, PathBuf};

/// Banned patterns, assembled so this file does not trip over itself.
fn banned() -> Vec<(String, &'static str)> {
    vec![
        (["tokio", "::net"].concat(), "use the Net seam (twinmq_runtime::Net)"),
        (["std", "::fs"].concat(), "use the Fs seam (twinmq_runtime::Fs)"),
        (["System", "Time"].concat(), "use the Clock seam"),
        (["Instant", "::now"].concat(), "use tokio::time (virtual in the simulator)"),
        (["thread", "_rng"].concat(), "use the Rng seam"),
        (["rand", "::rng()"].concat(), "use the Rng seam"),
        (["std::thread", "::spawn"].concat(), "no threads outside the runtime"),
        (["spawn", "_blocking"].concat(), "no blocking pool outside the runtime"),
        (
            ["sync", "::watch"].concat(),
            "watch wakes waiters in an unseeded random order; use Notify",
        ),
        (["dbg", "!("].concat(), "no debugging leftovers"),
        (["todo", "!("].concat(), "no unfinished code"),
        (["unimplemented", "!("].concat(), "no unfinished code"),
    ]
}

/// Which trees may use which banned pattern, and why.
const EXEMPTIONS: &[(&str, &str, &str)] = &[
    ("crates/runtime/", "*", "the seams themselves"),
    ("benches/", "std::fs", "the machine's ceiling is a plain std::fs loop"),
    ("benches/", "Instant::now", "benchmarks measure wall time"),
    (
        "crates/loadgen/src/",
        "Instant::now",
        "the load generator measures time (tokio::time: virtual in the simulator)",
    ),
    ("crates/cli/src/sim", "Instant::now", "a sweep reports its wall time (seeds per second)"),
    (
        "crates/kafka/src/client/",
        "Instant::now",
        "tokio::time::Instant (reconnect backoff, linger deadlines): virtual in the simulator",
    ),
    ("tests/", "std::fs", "end-to-end tests prepare real directories"),
    ("tests/", "Instant::now", "end-to-end tests bound real processes"),
    ("crates/storage/tests/", "std::fs", "crash tests damage real files by hand"),
];

/// Trees whose code runs inside the simulator, where iteration order must not be random.
const SIMULATED_TREES: &[&str] = &[
    "crates/storage/src",
    "crates/kafka/src",
    "crates/rocketmq/src",
    "crates/loadgen/src",
    "crates/runtime/src/sim",
    "sim/src",
];

const LINES_MAX: usize = 600;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

fn source_files() -> Vec<PathBuf> {
    let root = workspace_root();
    let mut roots: Vec<PathBuf> =
        vec![root.join("sim/src"), root.join("benches"), root.join("tests/src")];
    for crate_dir in std::fs::read_dir(root.join("crates")).unwrap() {
        let crate_dir = crate_dir.unwrap().path();
        roots.push(crate_dir.join("src"));
        roots.push(crate_dir.join("tests"));
    }
    let mut files = Vec::new();
    while let Some(dir) = roots.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                roots.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn relative(path: &Path) -> String {
    path.strip_prefix(workspace_root()).unwrap().to_string_lossy().into_owned()
}

fn exempt(file: &str, pattern: &str) -> bool {
    EXEMPTIONS.iter().any(|(prefix, allowed, _)| {
        file.starts_with(prefix) && (*allowed == "*" || pattern == *allowed)
    })
}

#[test]
fn only_the_runtime_touches_the_outside_world() {
    let files = source_files();
    assert!(
        files.len() >= 10,
        "tidy found only {} source files: is it looking in the right place?",
        files.len()
    );
    let mut violations = Vec::new();
    for path in &files {
        let file = relative(path);
        if file.ends_with("tests/tidy.rs") {
            continue;
        }
        let text = std::fs::read_to_string(path).unwrap();
        for (number, line) in text.lines().enumerate() {
            for (pattern, why) in banned() {
                if line.contains(&pattern) && !exempt(&file, &pattern) {
                    violations.push(format!("{file}:{}: `{pattern}`: {why}", number + 1));
                }
            }
            let unordered = line.contains("HashMap") || line.contains("HashSet");
            let deterministic_tree = SIMULATED_TREES.iter().any(|tree| file.starts_with(tree));
            if unordered && deterministic_tree && !line.contains("// lookup-only:") {
                violations.push(format!(
                    "{file}:{}: HashMap/HashSet in simulated code needs `// lookup-only:` (or use BTreeMap)",
                    number + 1
                ));
            }
            if line.contains(&["select", "! {"].concat()) {
                let next = text.lines().skip(number + 1).map(str::trim).find(|l| !l.is_empty());
                if next != Some("biased;") {
                    violations.push(format!(
                        "{file}:{}: a select must be `biased;`: an unbiased one picks among \
                         ready branches with tokio's unseeded generator, so a seed could replay \
                         differently",
                        number + 1
                    ));
                }
            }
        }
    }
    assert!(violations.is_empty(), "tidy:\n{}", violations.join("\n"));
}

#[test]
fn files_stay_readable() {
    let long: Vec<String> = source_files()
        .iter()
        .filter_map(|path| {
            let lines = std::fs::read_to_string(path).unwrap().lines().count();
            (lines > LINES_MAX).then(|| format!("{}: {lines} lines", relative(path)))
        })
        .collect();
    assert!(long.is_empty(), "files over {LINES_MAX} lines:\n{}", long.join("\n"));
}
