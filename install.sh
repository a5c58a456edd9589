#!/bin/sh
# Installs devbox for this user, without root, into ~/.local/bin (or $DEVBOX_INSTALL_DIR).
#
#   ./install.sh --from-source    build this checkout with cargo and install the binary
#
# POSIX sh: runs under dash; `shellcheck -s sh install.sh` is clean.
set -eu

install_dir=${DEVBOX_INSTALL_DIR:-"$HOME/.local/bin"}

say() { printf '%s\n' "$*"; }
die() { printf 'install.sh: error: %s\n' "$*" >&2; exit 1; }

usage() {
  say "usage: ./install.sh --from-source"
  say ""
  say "  --from-source   build devbox from this checkout with cargo, then install it"
  say ""
  say "Environment: DEVBOX_INSTALL_DIR (default: ~/.local/bin)"
}

from_source() {
  src=$(cd "$(dirname "$0")" && pwd)
  [ -f "$src/Cargo.toml" ] || die "--from-source needs a devbox checkout; $src has no Cargo.toml"
  command -v cargo >/dev/null 2>&1 || die "cargo not found; install Rust from your package manager or rustup, then run again"
  say "building devbox from $src (release profile; this takes a few minutes the first time)"
  cargo build --release --locked --manifest-path "$src/Cargo.toml" --bin devbox
  target_dir=$(cd "$src" && cargo metadata --format-version 1 --no-deps 2>/dev/null \
    | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
  place "${target_dir:-$src/target}/release/devbox"
}

# Copies the binary next to its destination, then renames it into place: never a half-written file.
place() {
  built=$1
  [ -x "$built" ] || die "the build did not produce $built"
  mkdir -p "$install_dir" || die "cannot create $install_dir; set DEVBOX_INSTALL_DIR to a directory you own"
  tmp="$install_dir/.devbox.tmp.$$"
  if ! { cp "$built" "$tmp" && chmod 755 "$tmp" && mv -f "$tmp" "$install_dir/devbox"; }; then
    rm -f "$tmp"
    die "cannot write $install_dir/devbox"
  fi
  say "installed $("$install_dir/devbox" --version) to $install_dir/devbox"
  case ":$PATH:" in
    *":$install_dir:"*) ;;
    *) say "note: $install_dir is not on your PATH; add it, e.g.: export PATH=\"$install_dir:\$PATH\"" ;;
  esac
  say "next: devbox registry up"
}

case "${1:-}" in
  --from-source) from_source ;;
  -h|--help) usage ;;
  "") die "downloading release archives is not supported yet; from a checkout, run: ./install.sh --from-source" ;;
  *) usage >&2; exit 2 ;;
esac
