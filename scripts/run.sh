#!/usr/bin/env bash
# Builds Concord in release mode (the binary carries the site, precompressed, and the default
# encoder, so it also runs copied alone) and starts it with a demo project on ./concord-data.
# Extra arguments go to `concord serve` (e.g. --addr 0.0.0.0:3000).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo xtask build --release
exec target/release/concord serve --demo "$@"
