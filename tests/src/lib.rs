//! Helpers for twinmq's end-to-end tests: the real `twinmq` binary, run as a process.

use std::path::PathBuf;

/// The `twinmq` binary built alongside the tests (`target/<profile>/twinmq`).
///
/// Test binaries live in `target/<profile>/deps/`; the workspace's one binary sits one level up.
pub fn twinmq_binary() -> PathBuf {
    let test_binary = std::env::current_exe().expect("the test binary knows its own path");
    let profile_dir = test_binary
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binaries live in target/<profile>/deps");
    let binary = profile_dir.join("twinmq");
    assert!(
        binary.exists(),
        "{} is missing: build it first with `cargo build --workspace --all-targets`",
        binary.display()
    );
    binary
}
