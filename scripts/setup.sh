#!/usr/bin/env bash
# Install what the build and the tests need, skipping what is already there. Idempotent.
# `scripts/setup.sh demo` installs only what building and serving the demo needs (no browser, no
# Vulkan, no test packages).
set -euo pipefail
cd "$(dirname "$0")/.."
for_demo=false
[ "${1:-}" = demo ] && for_demo=true

need_apt=()
if ! $for_demo; then
  command -v chromium >/dev/null || need_apt+=(chromium)
  [ -e /usr/share/vulkan/icd.d/lvp_icd.x86_64.json ] || [ -e /usr/share/vulkan/icd.d/lvp_icd.json ] || need_apt+=(mesa-vulkan-drivers)
  command -v vulkaninfo >/dev/null || need_apt+=(vulkan-tools)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need_apt[@]}"
fi

rustup target list --installed | grep -q wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
# The multi-threaded wasm build rebuilds std with atomics (pkg/build.sh): std's sources.
rustup component list --installed | grep -q '^rust-src' || rustup component add rust-src

# wasm-bindgen-cli must match the wasm-bindgen crate in Cargo.lock exactly.
if grep -q '^name = "wasm-bindgen"$' Cargo.lock; then
  wb=$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/version = |"/, ""); print; exit}' Cargo.lock)
  if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$wb" ]; then
    # --locked can fail when the registry mirror lacks a pinned transitive crate; the CLI
    # version itself is pinned either way.
    cargo install --locked wasm-bindgen-cli --version "$wb" || cargo install wasm-bindgen-cli --version "$wb"
  fi
fi

dirs=(tests pkg web)
$for_demo && dirs=(pkg web)
for dir in "${dirs[@]}"; do
  [ -f "$dir/package.json" ] || continue
  if [ ! -d "$dir/node_modules" ]; then
    (cd "$dir" && npm ci --no-audit --no-fund)
  fi
done

models/fetch.sh
