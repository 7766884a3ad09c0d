#!/usr/bin/env bash
# Runs every test twinmq has, on a fresh machine with the Rust toolchain and Python 3: it installs
# the real clients the end-to-end tests drive (kafka-python and codecs into target/test-venv,
# kcat from the distribution's packages when it is missing).
set -euo pipefail
cd "$(dirname "$0")"

install_kcat() {
  command -v kcat >/dev/null && return
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get install -y -q kcat >/dev/null 2>&1 ||
    { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q kcat >/dev/null; }
}
install_kcat
[ -x target/test-venv/bin/python ] || python3 -m venv target/test-venv
target/test-venv/bin/pip install --quiet --disable-pip-version-check -r tests/clients/requirements.txt

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo build --workspace --all-targets --locked
cargo test --workspace --locked
