#!/bin/sh
# Builds the testbed's registry images from Debian's docker-registry package (distribution 2.8.x),
# packed with its libc by `docker import`: no public registry is ever contacted, nothing is built
# from source.
#
# Two layouts, the same binary (devbox must cope with both, issue 12):
#   2.8  the official `registry:2.8` layout: /etc/docker/registry/config.yml,
#        ENTRYPOINT ["/bin/registry", "serve"], CMD ["/etc/docker/registry/config.yml"].
#   3    the official `registry:3` layout (distribution/distribution-library-image):
#        /etc/distribution/config.yml, an /entrypoint.sh that turns a *.yml/*.yaml first argument
#        into `registry serve <path>`, ENTRYPOINT ["/entrypoint.sh"],
#        CMD ["/etc/distribution/config.yml"], and no /etc/docker/registry directory.
# Each image carries the official image's own default config (filesystem storage), so the tests
# meet the traps devbox must avoid: "multiple storage drivers", and a config that is silently
# ignored because it was put at the other layout's path.
#
# Usage: registry-image.sh [TAG [LAYOUT]]
#   TAG defaults to devbox-testbed/registry:2.8. LAYOUT is 2.8 or 3; when omitted, a TAG ending
#   in ":3" gets the v3 layout and any other TAG the 2.8 layout.
# An image that already exists under TAG is left as it is, unless it was made from an older recipe
# (its label devbox-testbed.recipe differs from $recipe below): then it is rebuilt.
set -eu
# Bump when what goes into the images changes (2: df, for the disk check on a VM engine).
recipe=2
# wget, which the registry's health check runs (the official images have busybox's): a label of
# its own rather than a recipe bump, so that checkouts from before it, sharing this engine, still
# accept these images and do not rebuild them without it.
health=1
tag=${1:-devbox-testbed/registry:2.8}
case "$tag" in
  *:3) default_layout=3 ;;
  *) default_layout=2.8 ;;
esac
layout=${2:-$default_layout}
case "$layout" in
  2.8 | 3) ;;
  *)
    echo "error: unknown layout '$layout' (expected 2.8 or 3)" >&2
    exit 2
    ;;
esac
labels=$(docker image inspect --format '{{index .Config.Labels "devbox-testbed.recipe"}} {{index .Config.Labels "devbox-testbed.health"}}' "$tag" 2>/dev/null || true)
if [ "$labels" = "$recipe $health" ]; then
  exit 0
fi
bin=/usr/bin/docker-registry
if [ ! -x "$bin" ]; then
  echo "error: $bin not found. Install Debian's registry: apt-get install -y docker-registry" >&2
  exit 1
fi
if ! wget=$(command -v wget); then
  echo "error: wget not found (the registry's health check runs it). Install it: apt-get install -y wget" >&2
  exit 1
fi
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/var/lib/registry" "$root/tmp"
cp "$bin" "$root/bin/registry"
# `date` and `sh` are there for the clock fix's helper container, and `df` for the disk check on a
# VM engine, as in the official (busybox) image; `sh` also runs the v3 layout's entrypoint, and
# `wget` the registry's health check.
cp /bin/date "$root/bin/date"
cp /bin/df "$root/bin/df"
cp /bin/dash "$root/bin/sh"
cp "$wget" "$root/bin/wget"
for lib in $(ldd "$bin" /bin/date /bin/df /bin/dash "$wget" | awk '/=>/ { print $3 } /^\t\/lib/ { print $1 }' | sort -u); do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
chmod 1777 "$root/tmp"

if [ "$layout" = 2.8 ]; then
  mkdir -p "$root/etc/docker/registry"
  # The official registry:2.8 image's config.yml.
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
  tar -C "$root" -cf - . | docker import \
    --change "LABEL devbox-testbed.recipe=$recipe" \
    --change "LABEL devbox-testbed.health=$health" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENTRYPOINT ["/bin/registry", "serve"]' \
    --change 'CMD ["/etc/docker/registry/config.yml"]' \
    --change 'EXPOSE 5000' \
    --change 'VOLUME ["/var/lib/registry"]' \
    - "$tag" >/dev/null
else
  mkdir -p "$root/etc/distribution"
  # The official registry:3 image's config (distribution-library-image's config-example.yml, the
  # same as distribution's cmd/registry/config-dev.yml): filesystem storage, deletes enabled,
  # debug logging, a debug listener on :5001. One line is left out: `storage.tag.concurrencylimit`,
  # which v3 knows and which the 2.8 binary inside would take for a second storage driver
  # ("multiple storage drivers specified", a panic).
  cat > "$root/etc/distribution/config.yml" <<'YAML'
version: 0.1
log:
  level: debug
  fields:
    service: registry
    environment: development
storage:
    delete:
      enabled: true
    cache:
        blobdescriptor: inmemory
    filesystem:
        rootdirectory: /var/lib/registry
http:
    addr: :5000
    debug:
        addr: :5001
        prometheus:
            enabled: true
            path: /metrics
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
YAML
  # The official image's entrypoint.sh, word for word.
  cat > "$root/entrypoint.sh" <<'SH'
#!/bin/sh

set -e

case "$1" in
    *.yaml|*.yml) set -- registry serve "$@" ;;
    serve|garbage-collect|help|-*) set -- registry "$@" ;;
esac

exec "$@"
SH
  chmod 755 "$root/entrypoint.sh"
  tar -C "$root" -cf - . | docker import \
    --change "LABEL devbox-testbed.recipe=$recipe" \
    --change "LABEL devbox-testbed.health=$health" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV OTEL_TRACES_EXPORTER=none' \
    --change 'ENTRYPOINT ["/entrypoint.sh"]' \
    --change 'CMD ["/etc/distribution/config.yml"]' \
    --change 'EXPOSE 5000' \
    --change 'VOLUME ["/var/lib/registry"]' \
    - "$tag" >/dev/null
fi
echo "built $tag (layout $layout)"
