# shellcheck shell=bash
# Installs what the project needs, each piece only when it is missing.
# Sourced by scripts/run and scripts/test. Recipe: docs/toolchain.md.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CARGO_LEPTOS_VERSION="0.3.11"
WASM_BINDGEN_VERSION="0.2.130"   # must equal the wasm-bindgen pin in Cargo.toml
LEPTOS_TOOLCHAIN="1.96.0"        # cargo-leptos 0.3.11 needs rustc >= 1.96 to build itself
# The release WASM only: a pinned nightly rebuilds the standard library for
# size (docs/benchmarks.md, "WASM size"). Everything else builds on stable.
WASM_TOOLCHAIN="nightly-2026-05-20"
WASM_RUSTFLAGS="-Zunstable-options -Cpanic=immediate-abort -Zlocation-detail=none -Zfmt-debug=none"

# Builds are cached outside the clone so a fresh clone reuses them.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/chat-target}"
# Incremental state grows by gigabytes per change and a shared cache keeps
# every version; a clean build of the workspace crates is quick enough.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
export PATH="$ROOT/end2end/node_modules/.bin:$HOME/.cargo/bin:$PATH"

log() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else die "need root to run: $*"; fi
}

APT_UPDATED=0
apt_install() {
  command -v apt-get >/dev/null || die "apt-get not found: please install $* by hand"
  if [ "$APT_UPDATED" = 0 ]; then as_root apt-get update -qq; APT_UPDATED=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

ensure_rust() {
  command -v cargo >/dev/null || die "Rust is not installed: see https://rustup.rs"
  # C code in the build: SQLite (cc) and the server's allocator, jemalloc (make).
  if ! command -v cc >/dev/null || ! command -v make >/dev/null; then
    log "installing a C compiler and make"
    apt_install gcc make libc6-dev
  fi
  if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    log "adding the wasm32-unknown-unknown target"
    rustup target add wasm32-unknown-unknown
  fi
  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt
}

ensure_cargo_leptos() {
  if cargo leptos --version 2>/dev/null | grep -q "$CARGO_LEPTOS_VERSION"; then return; fi
  log "installing cargo-leptos $CARGO_LEPTOS_VERSION (about 20 minutes on 2 cores, once)"
  rustup toolchain list | grep -q "^$LEPTOS_TOOLCHAIN" || rustup toolchain install "$LEPTOS_TOOLCHAIN" --profile minimal
  cargo "+$LEPTOS_TOOLCHAIN" install --locked cargo-leptos --version "$CARGO_LEPTOS_VERSION" --features no_downloads
}

ensure_wasm_bindgen() {
  if wasm-bindgen --version 2>/dev/null | grep -q "$WASM_BINDGEN_VERSION"; then return; fi
  log "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (about 8 minutes, once)"
  # Not --locked: its lock file wants a crate version the registry may lack.
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --force
}

ensure_node() {
  if ! command -v npm >/dev/null; then
    log "installing Node.js and npm"
    apt_install nodejs npm
  fi
  local stamp="$ROOT/end2end/node_modules/.lock-hash"
  local want
  want="$(sha256sum "$ROOT/end2end/package-lock.json" | cut -d' ' -f1)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    log "installing npm packages (Playwright, binaryen's wasm-opt)"
    (cd "$ROOT/end2end" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$want" > "$stamp"
  fi
}

ensure_chromium() {
  CHROMIUM_PATH="${CHROMIUM_PATH:-$(command -v chromium || command -v chromium-browser || true)}"
  if [ -z "$CHROMIUM_PATH" ]; then
    log "installing Chromium (Debian package)"
    apt_install chromium fonts-liberation fonts-noto-cjk fonts-noto-color-emoji
    CHROMIUM_PATH="$(command -v chromium)"
  fi
  export CHROMIUM_PATH
}

ensure_wasm_toolchain() {
  if rustup component list --toolchain "$WASM_TOOLCHAIN" --installed 2>/dev/null | grep -q '^rust-src' \
    && rustup target list --toolchain "$WASM_TOOLCHAIN" --installed | grep -qx wasm32-unknown-unknown; then
    return
  fi
  log "installing Rust $WASM_TOOLCHAIN for the release WASM (a download, once)"
  rustup toolchain install "$WASM_TOOLCHAIN" --profile minimal \
    --component rust-src --target wasm32-unknown-unknown
}

ensure_build_tools() {
  ensure_rust
  ensure_wasm_toolchain
  ensure_cargo_leptos
  ensure_wasm_bindgen
  ensure_node
}

# The release build: WASM (hashed names) and brotli/gzip copies of every
# asset, then the server; `hash.txt` also goes into the site so a copy of the
# site (the Dockerfile's) finds the hashed names without the build directory.
# The WASM is built with the standard library rebuilt for size: panics abort
# without a message, `{:?}` prints nothing and panic locations are left out
# (the browser needs none of them), and the standard library picks its smaller
# algorithms (`optimize_for_size`). Both halves erase component types
# (`erase_components`: smaller WASM, ~9 % slower page rendering); hydration
# fails unless server and browser agree on it.
build_release() {
  ensure_wasm_toolchain
  local erase="--cfg erase_components"
  (cd "$ROOT" && RUSTUP_TOOLCHAIN="$WASM_TOOLCHAIN" CARGO_UNSTABLE_BUILD_STD=std,panic_abort \
    CARGO_UNSTABLE_BUILD_STD_FEATURES=optimize_for_size \
    CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="$WASM_RUSTFLAGS $erase" \
    cargo leptos build --release --precompress --frontend-only)
  (cd "$ROOT" && RUSTFLAGS="${RUSTFLAGS:-} $erase" \
    cargo leptos build --release --precompress --server-only)
  cp "$CARGO_TARGET_DIR/release/hash.txt" "$ROOT/target/site/hash.txt"
}
