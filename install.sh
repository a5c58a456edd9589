#!/bin/sh
# Installs devbox for this user, without root, into ~/.local/bin (or $DEVBOX_INSTALL_DIR).
#
#   ./install.sh                  download the newest release, check its SHA-256, install it
#   ./install.sh --from-source    build this checkout with cargo and install the binary
#
# Environment:
#   DEVBOX_INSTALL_DIR    where to install (default: ~/.local/bin)
#   DEVBOX_VERSION        install this version (e.g. 0.2.0) instead of the newest
#   DEVBOX_DOWNLOAD_URL   the base URL of a release feed (a mirror) instead of GitHub releases
#   DEVBOX_GITHUB_REPO    the GitHub repository whose releases to use (default: devbox/devbox)
#
# A release feed (the same layout `devbox self-update` reads):
#   <base>/latest                                     the newest version, e.g. 0.2.0
#   <base>/v<version>/devbox-<version>-<target>.tar.gz  holds the devbox binary at its root
#   <base>/v<version>/SHA256SUMS                      sha256sum's output for the archives
# On GitHub, <base> is https://github.com/<repo>/releases/download (tag v<version>), and each
# release also carries a `latest` asset, read through releases/latest/download/latest.
#
# POSIX sh: runs under dash; `shellcheck -s sh install.sh` is clean.
set -eu

install_dir=${DEVBOX_INSTALL_DIR:-"$HOME/.local/bin"}
github_repo=${DEVBOX_GITHUB_REPO:-devbox/devbox}

say() { printf '%s\n' "$*"; }
die() { printf 'install.sh: error: %s\n' "$*" >&2; exit 1; }

usage() {
  say "usage: ./install.sh [--from-source]"
  say ""
  say "  (no option)     download the newest release, verify its SHA-256, and install it"
  say "  --from-source   build devbox from this checkout with cargo, then install it"
  say ""
  say "Environment: DEVBOX_INSTALL_DIR (default: ~/.local/bin), DEVBOX_VERSION (e.g. 0.2.0),"
  say "DEVBOX_DOWNLOAD_URL (a release feed's base URL), DEVBOX_GITHUB_REPO (default: devbox/devbox)"
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

# The Rust target triple that names this machine's release archive.
detect_target() {
  case "$(uname -s)" in
    Linux) os=unknown-linux-gnu ;;
    Darwin) os=apple-darwin ;;
    *) die "no devbox release for $(uname -s); from a checkout, run: ./install.sh --from-source" ;;
  esac
  case "$(uname -m)" in
    x86_64 | amd64) arch=x86_64 ;;
    aarch64 | arm64) arch=aarch64 ;;
    *) die "no devbox release for $(uname -m); from a checkout, run: ./install.sh --from-source" ;;
  esac
  say "$arch-$os"
}

# fetch URL FILE: downloads URL into FILE, failing on any HTTP error.
fetch() {
  if command -v curl >/dev/null 2>&1; then
    curl -fsSL --proto '=https,http' --retry 2 -o "$2" "$1"
  elif command -v wget >/dev/null 2>&1; then
    wget -q -O "$2" "$1"
  else
    die "neither curl nor wget is installed; install one of them and run again"
  fi
}

# sha256_of FILE: prints FILE's SHA-256 in lowercase hex, with whichever tool this machine has.
sha256_of() {
  if command -v sha256sum >/dev/null 2>&1; then
    sum=$(sha256sum "$1")
  elif command -v shasum >/dev/null 2>&1; then
    sum=$(shasum -a 256 "$1")
  elif command -v openssl >/dev/null 2>&1; then
    # "SHA2-256(file)= <hex>" (or "SHA256(file)= <hex>"): the digest is the last field.
    sum=$(openssl dgst -sha256 "$1" | sed 's/.*= *//')
  else
    return 1
  fi
  printf '%s\n' "${sum%% *}" | tr 'ABCDEF' 'abcdef'
}

from_release() {
  target=$(detect_target)
  if [ -n "${DEVBOX_DOWNLOAD_URL:-}" ]; then
    base=${DEVBOX_DOWNLOAD_URL%/}
    latest_url="$base/latest"
  else
    base="https://github.com/$github_repo/releases/download"
    latest_url="https://github.com/$github_repo/releases/latest/download/latest"
  fi

  tmp=$(mktemp -d 2>/dev/null || mktemp -d -t devbox-install)
  trap 'rm -rf "$tmp"' EXIT
  trap 'rm -rf "$tmp"; exit 130' INT TERM

  if [ -n "${DEVBOX_VERSION:-}" ]; then
    version=$DEVBOX_VERSION
  else
    fetch "$latest_url" "$tmp/latest" || die "cannot read the newest version from $latest_url"
    version=$(tr -d ' \t\r\n' <"$tmp/latest")
  fi
  version=${version#v}
  case "$version" in
    *[!0-9A-Za-z.+-]* | "" | .* ) die "\"$version\" is not a version such as 0.2.0" ;;
    [0-9]*.[0-9]*.[0-9]*) ;;
    *) die "\"$version\" is not a version such as 0.2.0" ;;
  esac

  archive="devbox-$version-$target.tar.gz"
  say "downloading devbox $version for $target from $base/v$version/"
  fetch "$base/v$version/$archive" "$tmp/$archive" || die "cannot download $base/v$version/$archive"
  fetch "$base/v$version/SHA256SUMS" "$tmp/SHA256SUMS" || die "cannot download $base/v$version/SHA256SUMS, so the archive cannot be verified; nothing was installed"

  # sha256sum's format: "<hex>  <name>" (or "<hex> *<name>" in binary mode).
  expected=$(awk -v f="$archive" '$2 == f || $2 == "*" f { print tolower($1); exit }' "$tmp/SHA256SUMS")
  [ -n "$expected" ] || die "SHA256SUMS lists no checksum for $archive; nothing was installed"
  actual=$(sha256_of "$tmp/$archive") \
    || die "cannot verify the download: none of sha256sum, shasum or openssl is installed; install one and run again (nothing was installed)"
  [ "$actual" = "$expected" ] \
    || die "checksum mismatch for $archive (expected $expected, got $actual); refusing to install it, and nothing was installed"
  say "verified $archive (sha256 $actual)"

  mkdir "$tmp/unpacked"
  tar -xzf "$tmp/$archive" -C "$tmp/unpacked" devbox || die "$archive holds no devbox binary at its root"
  place "$tmp/unpacked/devbox"
}

# Copies the binary next to its destination, then renames it into place: never a half-written file.
place() {
  built=$1
  [ -x "$built" ] || die "the build did not produce $built"
  mkdir -p "$install_dir" || die "cannot create $install_dir; set DEVBOX_INSTALL_DIR to a directory you own"
  tmp_bin="$install_dir/.devbox.tmp.$$"
  if ! { cp "$built" "$tmp_bin" && chmod 755 "$tmp_bin" && mv -f "$tmp_bin" "$install_dir/devbox"; }; then
    rm -f "$tmp_bin"
    die "cannot write $install_dir/devbox"
  fi
  say "installed $("$install_dir/devbox" --version) to $install_dir/devbox"
  case ":$PATH:" in
    *":$install_dir:"*) ;;
    *) say "note: $install_dir is not on your PATH; add it, e.g.: export PATH=\"$install_dir:\$PATH\"" ;;
  esac
  say "next: devbox init"
}

case "${1:-}" in
  --from-source) from_source ;;
  -h|--help) usage ;;
  "") from_release ;;
  *) usage >&2; exit 2 ;;
esac
