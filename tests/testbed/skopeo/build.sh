#!/bin/sh
# Builds the testbed's signer: devbox-testbed/skopeo, Debian trixie's skopeo (1.18) in a minimal
# trixie root, packed by `docker import`. It signs base images as CI would, with cosign-format keys
# (`skopeo generate-sigstore-key`, then `skopeo copy --sign-by-sigstore-private-key`), writing the
# `sha256-<digest>.sig` attachment beside the image in the registry. Bookworm's skopeo (1.9.3) cannot:
# a Debian patch disables sigstore signing there; trixie's binaries need trixie's glibc, hence a root
# of their own. Nothing is pulled from a public registry: debootstrap from Debian's mirror.
#
# The image runs skopeo as its entrypoint, with /etc/containers/registries.d/devbox.yaml setting
# `use-sigstore-attachments: true` for every registry (what CI's signer must set), and a policy that
# accepts anything (the signer reads what CI just pushed).
#
# Idempotent: the image carries the hash of this script as a label, and is left alone when it matches.
# The debootstrapped root is cached as a tarball under $DEVBOX_SKOPEO_CACHE/<hash>/ (default
# /var/cache/devbox-testbed/skopeo), so a machine whose engine lost the image imports it again in
# seconds; the packages' cache is shared between builds.
# Usage: skopeo/build.sh [TAG]   (root: debootstrap; default TAG devbox-testbed/skopeo)
# Env:   DEVBOX_VM_MIRROR         Debian mirror (default http://deb.debian.org/debian)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
tag=${1:-devbox-testbed/skopeo}
cache=${DEVBOX_SKOPEO_CACHE:-/var/cache/devbox-testbed/skopeo}
mirror=${DEVBOX_VM_MIRROR:-http://deb.debian.org/debian}
hash=$(sha256sum <"$here/build.sh" | cut -c1-16)
have=$(docker image inspect --format '{{index .Config.Labels "devbox-testbed.recipe"}}' "$tag" 2>/dev/null || true)
if [ "$have" = "$hash" ]; then
  exit 0
fi
out="$cache/$hash"
start=$(date +%s)
if [ ! -f "$out/rootfs.tar" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: building the signer's root needs root (debootstrap); run: sudo $0" >&2
    exit 1
  fi
  command -v debootstrap >/dev/null 2>&1 || { echo "error: debootstrap not found (apt-get install debootstrap)" >&2; exit 1; }
  [ -f /usr/share/debootstrap/scripts/trixie ] || { echo "error: this debootstrap has no trixie script (install debootstrap from bookworm-backports or later)" >&2; exit 1; }
  echo "skopeo image: building a trixie root with skopeo from $mirror (a few minutes)" >&2
  mkdir -p "$cache/debs"
  tmp="$out.tmp"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  root="$tmp/root"
  trap 'rm -rf "$tmp"' EXIT
  # netavark: containers-common needs a container-network-stack, a virtual package debootstrap cannot choose.
  debootstrap --variant=minbase --cache-dir="$cache/debs" --include=skopeo,netavark,ca-certificates \
    trixie "$root" "$mirror" >"$tmp/debootstrap.log" 2>&1 || {
    echo "error: debootstrap failed; its log ($tmp/debootstrap.log):" >&2
    tail -n 30 "$tmp/debootstrap.log" >&2
    exit 1
  }
  # shellcheck disable=SC2016 # dpkg-query's own format, not the shell's
  chroot "$root" dpkg-query -W -f '${Version}' skopeo >"$tmp/skopeo-version"
  chroot "$root" apt-get clean
  rm -rf "$root/var/lib/apt/lists/"* "$root/usr/share/doc/"* "$root/usr/share/man/"* "$root/usr/share/locale/"*
  mkdir -p "$root/etc/containers/registries.d"
  cat >"$root/etc/containers/registries.d/devbox.yaml" <<'YAML'
# Sigstore signatures go into the registry, beside the image (the sha256-<digest>.sig tag), as cosign
# stores them; no lookaside server.
default-docker:
  use-sigstore-attachments: true
YAML
  cat >"$root/etc/containers/policy.json" <<'JSON'
{ "default": [{ "type": "insecureAcceptAnything" }] }
JSON
  mkdir -p "$root/work"
  tar -C "$root" -cf "$tmp/rootfs.tar" .
  rm -rf "$root"
  trap - EXIT
  rm -rf "$out"
  mv "$tmp" "$out"
fi
docker import \
  --change "LABEL devbox-testbed.recipe=$hash" \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'WORKDIR /work' \
  --change 'ENTRYPOINT ["/usr/bin/skopeo"]' \
  "$out/rootfs.tar" "$tag" >/dev/null
echo "testbed: $tag (skopeo $(cat "$out/skopeo-version"), trixie) ready in $(($(date +%s) - start)) s"
