#!/usr/bin/env bash
# Runs every test twinmq has, on a fresh machine with only the Rust toolchain (and, as the
# end-to-end suites grow, Python 3 for real clients, installed here into a local virtualenv).
set -euo pipefail
cd "$(dirname "$0")"

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo build --workspace --all-targets --locked
cargo test --workspace --locked
