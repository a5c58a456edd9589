#!/bin/sh
# Builds the testbed's registry image from Debian's docker-registry package (distribution 2.8.x),
# packed with its libc by `docker import`: no public registry is ever contacted.
# The image carries the same default config as the official `registry` image (filesystem storage),
# so the tests meet the "multiple storage drivers" trap that devbox must avoid.
# Usage: registry-image.sh [TAG]   (default: devbox-testbed/registry:2.8)
set -eu
tag=${1:-devbox-testbed/registry:2.8}
if docker image inspect "$tag" >/dev/null 2>&1; then
  exit 0
fi
bin=/usr/bin/docker-registry
if [ ! -x "$bin" ]; then
  echo "error: $bin not found. Install Debian's registry: apt-get install -y docker-registry" >&2
  exit 1
fi
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/etc/docker/registry" "$root/var/lib/registry" "$root/tmp"
cp "$bin" "$root/bin/registry"
# `date` and `sh` are there for the clock fix's helper container, as in the official (busybox) image.
cp /bin/date "$root/bin/date"
cp /bin/dash "$root/bin/sh"
for lib in $(ldd "$bin" /bin/date /bin/dash | awk '/=>/ { print $3 } /^\t\/lib/ { print $1 }' | sort -u); do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
cat > "$root/etc/docker/registry/config.yml" <<'YAML'
version: 0.1
log:
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /var/lib/registry
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
YAML
chmod 1777 "$root/tmp"
tar -C "$root" -cf - . | docker import \
  --change 'ENTRYPOINT ["/bin/registry", "serve"]' \
  --change 'CMD ["/etc/docker/registry/config.yml"]' \
  --change 'EXPOSE 5000' \
  --change 'VOLUME ["/var/lib/registry"]' \
  - "$tag" >/dev/null
echo "built $tag"
