#!/usr/bin/env bash
# Runs every test: formatting, clippy, unit and integration tests (real redb files, the real
# router on port 0, the real binary), then the browser tests in Debian's Chromium against a
# `concord` binary copied alone into an empty folder.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
# A test run builds everything once, so it keeps no incremental caches (GBs across the
# workspace's crates) and no debug info in the workspace's own crates: Leptos's type names alone
# made each linked test binary's .debug_str ~280 MB even at line-tables-only, and a clean CI
# machine ran out of disk. Panics still name their file and line.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
export CARGO_PROFILE_DEV_DEBUG="${CARGO_PROFILE_DEV_DEBUG:-false}"
start=$(date +%s)
step() { printf '\n\033[1m== %s (%ss)\033[0m\n' "$*" "$(( $(date +%s) - start ))" >&2; }

step "rustfmt"
cargo fmt --all -- --check
step "browser bundle (wasm, dev profile)"
cargo xtask site
step "clippy"
cargo clippy --workspace --exclude concord-frontend --all-targets --quiet -- -D warnings
step "unit and integration tests"
cargo test --workspace --exclude concord-frontend --lib --bins --tests --quiet
step "concord binary"
cargo build -p concord --bin concord --quiet
step "browser tests (Playwright + Chromium)"
(cd end2end && npx playwright test)
step "all tests passed"
