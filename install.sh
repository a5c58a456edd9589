#!/bin/sh
# Installs devbox for this user, without root, into ~/.local/bin (or $DEVBOX_INSTALL_DIR).
#
#   ./install.sh                  download the newest release, check its signature and SHA-256,
#                                 install it
#   ./install.sh --require-signature   the same, but refuse unless the signature was checked
#   ./install.sh --from-source    build this checkout with cargo and install the binary
#
# Environment:
#   DEVBOX_INSTALL_DIR    where to install (default: ~/.local/bin)
#   DEVBOX_VERSION        install this version (e.g. 0.2.0) instead of the newest
#   DEVBOX_DOWNLOAD_URL   the base URL of a release feed (a mirror) instead of GitHub releases;
#                         https:// only (plain http:// only to 127.0.0.1, [::1] or localhost)
#   DEVBOX_GITHUB_REPO    the GitHub repository whose releases to use (default: devbox/devbox)
#   DEVBOX_PUBLIC_KEY     the minisign key releases are signed with (default: the project's, below;
#                         a company that builds its own releases sets its own)
#
# What is verified: SHA256SUMS's minisign signature, with the `minisign` tool when it is installed
# (Debian/Ubuntu: apt-get install minisign; macOS: brew install minisign), against
# DEVBOX_PUBLIC_KEY; then the archive's SHA-256 against SHA256SUMS. With minisign installed, a
# missing or bad signature is refused. Without it, only the SHA-256 is checked (the sums come from
# the same server as the archive, so that proves the download is whole, not who made it), and it
# says so; --require-signature refuses instead.
#
# A release feed (the same layout `devbox self-update` reads):
#   <base>/latest                                     the newest version, e.g. 0.2.0
#   <base>/v<version>/devbox-<version>-<target>.tar.gz  holds the devbox binary at its root
#   <base>/v<version>/SHA256SUMS                      sha256sum's output for the archives
# On GitHub, <base> is https://github.com/<repo>/releases/download (tag v<version>), and each
# release also carries a `latest` asset, read through releases/latest/download/latest.
#   <base>/v<version>/SHA256SUMS.minisig              minisign's signature of SHA256SUMS
#
# POSIX sh: runs under dash; `shellcheck -s sh install.sh` is clean.
set -eu

install_dir=${DEVBOX_INSTALL_DIR:-"$HOME/.local/bin"}
github_repo=${DEVBOX_GITHUB_REPO:-devbox/devbox}
# The project's release key (keys/release.pub in the source; devbox embeds the same one).
project_key="RWRsgcmyRfvYjEX8RjmQWO39FYRftIXNAQzbjxHF1U8UZJr2R7F4bcRY"
public_key=${DEVBOX_PUBLIC_KEY:-$project_key}
require_signature=no
# curl's allowed protocols: https only, unless the feed is plain http on this machine.
proto='=https'

say() { printf '%s\n' "$*"; }
die() { printf 'install.sh: error: %s\n' "$*" >&2; exit 1; }
usage_error() { printf 'install.sh: %s\n' "$*" >&2; exit 2; }

usage() {
  say "usage: ./install.sh [--require-signature | --from-source]"
  say ""
  say "  (no option)          download the newest release, verify its signature (with minisign,"
  say "                       when installed) and its SHA-256, and install it"
  say "  --require-signature  refuse unless the signature was verified (minisign must be installed)"
  say "  --from-source        build devbox from this checkout with cargo, then install it"
  say ""
  say "Environment: DEVBOX_INSTALL_DIR (default: ~/.local/bin), DEVBOX_VERSION (e.g. 0.2.0),"
  say "DEVBOX_DOWNLOAD_URL (a release feed's https:// base URL), DEVBOX_GITHUB_REPO (default: devbox/devbox),"
  say "DEVBOX_PUBLIC_KEY (the minisign key releases are signed with)"
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
    # A redirect may only lead to https, never from it to plain http.
    curl -fsSL --proto "$proto" --proto-redir '=https' --retry 2 -o "$2" "$1"
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

# check_feed URL: https, or plain http to this machine only; refused before anything connects.
check_feed() {
  case "$1" in
    https://*) ;;
    http://*)
      host=${1#http://}
      host=${host%%/*}
      host=${host##*@}
      case "$host" in
        \[::1\] | \[::1\]:*) ;;
        *) host=${host%%:*} ;;
      esac
      case "$host" in
        127.0.0.1 | localhost | "[::1]" | \[::1\]:*) proto='=http' ;;
        *) usage_error "DEVBOX_DOWNLOAD_URL=$1: plain http:// is allowed only to this machine (127.0.0.1, [::1], localhost), since anyone on the way could change what it sends; use https://" ;;
      esac
      ;;
    *) usage_error "DEVBOX_DOWNLOAD_URL=$1 must start with https://" ;;
  esac
}

# verify_signature DIR VERSION: checks DIR/SHA256SUMS against DIR/SHA256SUMS.minisig with
# minisign and $public_key. Dies on a bad or missing signature; without minisign, says what was
# not verified (and dies under --require-signature).
verify_signature() {
  if ! command -v minisign >/dev/null 2>&1; then
    how="install minisign (Debian/Ubuntu: sudo apt-get install minisign; macOS: brew install minisign) and run again"
    [ "$require_signature" = no ] \
      || die "--require-signature: cannot verify the signature of SHA256SUMS without minisign; $how (nothing was installed)"
    say "NOT verified: the signature of SHA256SUMS (minisign is not installed); only the SHA-256 below, which comes from the same server. To verify it: $how"
    return
  fi
  [ -s "$1/SHA256SUMS.minisig" ] \
    || die "the release has no signature ($base/v$2/SHA256SUMS.minisig), so it cannot be trusted; nothing was installed"
  minisign -V -q -P "$public_key" -m "$1/SHA256SUMS" -x "$1/SHA256SUMS.minisig" >/dev/null 2>&1 \
    || die "the signature of SHA256SUMS does not verify with key $public_key (the release was changed, or signed by another key); nothing was installed"
  say "verified the signature of SHA256SUMS (minisign, key $public_key)"
}

from_release() {
  target=$(detect_target)
  if [ -n "${DEVBOX_DOWNLOAD_URL:-}" ]; then
    check_feed "$DEVBOX_DOWNLOAD_URL"
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
  if command -v minisign >/dev/null 2>&1; then
    fetch "$base/v$version/SHA256SUMS.minisig" "$tmp/SHA256SUMS.minisig" 2>/dev/null || rm -f "$tmp/SHA256SUMS.minisig"
  fi
  verify_signature "$tmp" "$version"

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
  --require-signature) require_signature=yes; from_release ;;
  "") from_release ;;
  *) usage >&2; exit 2 ;;
esac
