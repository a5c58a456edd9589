#!/bin/sh
# Makes devbox's releases in the feed layout that install.sh and `devbox self-update` read.
#
#   scripts/release.sh package [--target T] [--binary FILE] [--version V] [--out DIR] [--key KEY]
#       builds devbox for T with `cargo build --release --locked --target T` (or takes FILE, a
#       binary already built for T), packs it as DIR/v<V>/devbox-<V>-<T>.tar.gz, rewrites
#       DIR/v<V>/SHA256SUMS, and sets DIR/latest to V (with DIR/install.sh beside it) unless
#       V is a pre-release or a newer release is already there
#   scripts/release.sh sums [--version V] [--out DIR] [--key KEY]
#       rewrites DIR/v<V>/SHA256SUMS over the archives there (after merging per-target builds)
#
# With --key KEY (a minisign secret key file, made with `minisign -G`; never committed), the
# script signs SHA256SUMS as DIR/v<V>/SHA256SUMS.minisig. Without it, any old signature is
# removed and the release is unsigned: `devbox self-update` and `install.sh --require-signature`
# refuse it. A key with a password asks for it on the terminal; CI's key has none (`minisign -G -W`).
#
# Defaults: T is this machine's target (rustc's host), V is Cargo.toml's version,
# DIR is ./dist. Bad input exits 2 and writes nothing.
#
# The layout (docs/onboarding.md says how to publish it to GitHub releases or an S3 bucket):
#   DIR/latest                                       the newest version, e.g. 0.2.0
#   DIR/install.sh                                   the newest release's install.sh
#   DIR/v<version>/devbox-<version>-<target>.tar.gz  holds the devbox binary at its root
#   DIR/v<version>/SHA256SUMS                        "<sha256>  <archive>" for each archive
#   DIR/v<version>/SHA256SUMS.minisig                minisign's signature of SHA256SUMS (--key)
#
# POSIX sh: runs under dash; `shellcheck -s sh scripts/release.sh` is clean.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)

say() { printf '%s\n' "$*"; }
die() { printf 'release.sh: error: %s\n' "$*" >&2; exit 1; }
usage_error() {
  printf 'release.sh: %s\n' "$*" >&2
  usage | sed -n '1,2p' >&2
  say "(scripts/release.sh --help says more)" >&2
  exit 2
}

usage() {
  say "usage: scripts/release.sh package [--target T] [--binary FILE] [--version V] [--out DIR] [--key KEY]"
  say "       scripts/release.sh sums [--version V] [--out DIR] [--key KEY]"
  say ""
  say "  package   build devbox for T (or take FILE, already built for T), pack it into"
  say "            DIR/v<V>/devbox-<V>-<T>.tar.gz, rewrite DIR/v<V>/SHA256SUMS, update DIR/latest"
  say "  sums      rewrite DIR/v<V>/SHA256SUMS over the archives in DIR/v<V>"
  say ""
  say "  --key KEY  sign SHA256SUMS with this minisign secret key (SHA256SUMS.minisig beside it)"
  say ""
  say "Defaults: T is this machine's target, V is Cargo.toml's version, DIR is ./dist."
}

# This machine's target, as rustc names it (empty without rustc).
host_target() {
  rustc -vV 2>/dev/null | sed -n 's/^host: //p'
}

# The version in Cargo.toml's [package] table.
cargo_version() {
  awk '/^\[/ { in_package = ($0 == "[package]") }
       in_package && /^version *=/ { gsub(/^version *= *"|".*$/, ""); print; exit }' "$root/Cargo.toml"
}

# sha256_line FILE: "<hex>  FILE", sha256sum's format, with whichever tool this machine has.
sha256_line() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1"
  elif command -v shasum >/dev/null 2>&1; then
    shasum -a 256 "$1"
  else
    die "neither sha256sum nor shasum is installed; install coreutils (or perl's shasum) and run again"
  fi
}

# write_sums DIR: SHA256SUMS over every archive in DIR, written whole and then renamed.
write_sums() {
  (
    cd "$1"
    set -- devbox-*.tar.gz
    [ -f "$1" ] || die "$(pwd) holds no devbox-*.tar.gz archive to list in SHA256SUMS"
    for archive in "$@"; do sha256_line "$archive"; done >SHA256SUMS.tmp
    mv -f SHA256SUMS.tmp SHA256SUMS
  )
  say "wrote $1/SHA256SUMS"
  sign_sums "$1"
}

# sign_sums DIR: signs DIR/SHA256SUMS with $key as DIR/SHA256SUMS.minisig; without a key, removes
# any signature there (it would be for other sums) and says the release is unsigned.
sign_sums() {
  if [ -z "$key" ]; then
    rm -f "$1/SHA256SUMS.minisig"
    say "not signed (no --key): devbox self-update and install.sh --require-signature refuse an unsigned release"
    return
  fi
  # The trusted comment is signed too: it names what was signed.
  minisign -S -s "$key" -m "$1/SHA256SUMS" -x "$1/SHA256SUMS.minisig.tmp" -t "devbox $version SHA256SUMS" >/dev/null \
    || { rm -f "$1/SHA256SUMS.minisig.tmp"; die "minisign could not sign $1/SHA256SUMS with $key"; }
  mv -f "$1/SHA256SUMS.minisig.tmp" "$1/SHA256SUMS.minisig"
  say "signed $1/SHA256SUMS with $key ($1/SHA256SUMS.minisig)"
}

# newer_or_same A B: whether version A is at least B (numeric major.minor.patch).
newer_or_same() {
  [ "$(printf '%s\n%s\n' "$1" "$2" | sort -t . -k1,1n -k2,2n -k3,3n | tail -n 1)" = "$1" ]
}

# Sets DIR/latest to V and copies install.sh beside it, unless V is a pre-release or DIR/latest
# names a newer version.
update_latest() {
  case "$version" in
    *-* | *+*) say "left $out/latest as it is: $version is a pre-release"; return ;;
  esac
  if [ -f "$out/latest" ]; then
    current=$(tr -d ' \t\r\n' <"$out/latest")
    if ! newer_or_same "$version" "${current#v}"; then
      say "left $out/latest at $current, which is newer than $version"
      return
    fi
  fi
  # The newest release's install.sh, at the feed's root: `curl -fsSL <feed>/install.sh | sh`.
  cp "$root/install.sh" "$out/install.sh.tmp" && mv -f "$out/install.sh.tmp" "$out/install.sh"
  printf '%s\n' "$version" >"$out/latest.tmp" && mv -f "$out/latest.tmp" "$out/latest"
  say "wrote $out/latest ($version) and $out/install.sh"
}

# Builds devbox for $target and sets $binary to it.
build() {
  command -v cargo >/dev/null 2>&1 || die "cargo not found; install Rust (rustup), or pass --binary FILE"
  say "building devbox $version for $target (release profile)"
  cargo build --release --locked --manifest-path "$root/Cargo.toml" --bin devbox --target "$target" \
    || die "cargo build failed for $target; for another target, first: rustup target add $target"
  target_dir=$(cd "$root" && cargo metadata --format-version 1 --no-deps 2>/dev/null \
    | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
  binary="${target_dir:-$root/target}/$target/release/devbox"
}

package() {
  if [ -z "$binary" ]; then
    build
  fi
  { [ -f "$binary" ] && [ -x "$binary" ]; } || die "$binary is not an executable file"
  # A binary for this machine must say the version it is released as: self-update checks that
  # before it swaps a binary in, so a mismatch here would be a release nobody can update to.
  if [ "$target" = "$host" ]; then
    said=$("$binary" --version 2>/dev/null) || die "$binary --version failed; is it a devbox for $target?"
    [ "$said" = "devbox $version" ] \
      || die "$binary says \"$said\", not \"devbox $version\"; package it as the version it says (--version ${said#devbox }), or build the v$version tree"
  else
    say "not running $binary to check its version: it is for $target, this machine is ${host:-unknown}"
  fi

  dir="$out/v$version"
  archive="devbox-$version-$target.tar.gz"
  mkdir -p "$dir" || die "cannot create $dir"
  staging=$(mktemp -d 2>/dev/null || mktemp -d -t devbox-release)
  trap 'rm -rf "$staging"' EXIT
  { cp "$binary" "$staging/devbox" && chmod 755 "$staging/devbox"; } || die "cannot copy $binary to $staging"
  # Only `devbox` at the archive's root; COPYFILE_DISABLE keeps macOS's tar from adding ._ files.
  COPYFILE_DISABLE=1 tar -czf "$staging/$archive" -C "$staging" devbox || die "tar failed for $archive"
  mv -f "$staging/$archive" "$dir/$archive" || die "cannot write $dir/$archive"
  say "wrote $dir/$archive"
  write_sums "$dir"
  update_latest
}

command=${1:-}
case "$command" in
  package | sums) shift ;;
  -h | --help) usage; exit 0 ;;
  "") usage_error "say what to do: package or sums" ;;
  *) usage_error "unknown command \"$command\"" ;;
esac

host=$(host_target)
target=$host
binary=""
version=""
out="dist"
key=""
while [ $# -gt 0 ]; do
  case "$1" in
    --target | --binary | --version | --out | --key)
      { [ $# -ge 2 ] && [ -n "$2" ]; } || usage_error "$1 needs a value"
      case "$1" in
        --target) target=$2 ;;
        --binary) binary=$2 ;;
        --version) version=$2 ;;
        --out) out=$2 ;;
        --key) key=$2 ;;
      esac
      shift 2
      ;;
    -h | --help) usage; exit 0 ;;
    *) usage_error "unknown option \"$1\"" ;;
  esac
done

[ "$command" = sums ] && [ -n "$binary" ] && usage_error "--binary is for package only"
[ -n "$version" ] || version=$(cargo_version)
version=${version#v}
case "$version" in
  *[!0-9A-Za-z.+-]* | "" | .*) usage_error "\"$version\" is not a version such as 0.2.0" ;;
  [0-9]*.[0-9]*.[0-9]*) ;;
  *) usage_error "\"$version\" is not a version such as 0.2.0" ;;
esac
[ -n "$target" ] || [ "$command" = sums ] \
  || usage_error "cannot tell this machine's target (rustc -vV did not say); pass --target"
case "$target" in
  "") ;;
  *[!0-9A-Za-z._-]* | -*) usage_error "\"$target\" is not a target such as x86_64-unknown-linux-gnu" ;;
esac
if [ -n "$key" ]; then
  [ -f "$key" ] || usage_error "--key $key: no such file (a minisign secret key, made with: minisign -G -W -s $key)"
  command -v minisign >/dev/null 2>&1 \
    || usage_error "--key needs minisign to sign; install it (apt-get install minisign, brew install minisign)"
fi
if [ -n "$binary" ]; then
  [ -f "$binary" ] || usage_error "--binary $binary: no such file"
  # Run as a path, never looked up on PATH.
  case "$binary" in /*) ;; *) binary="$(pwd)/$binary" ;; esac
fi

case "$command" in
  package) package ;;
  sums)
    [ -d "$out/v$version" ] || die "$out/v$version does not exist; run package first"
    write_sums "$out/v$version"
    ;;
esac
