#!/bin/sh
# Builds devbox-testbed/not-a-registry: a tiny image that runs, ignores whatever command it is given
# (devbox names its config path as the command) and listens on no port. It is the fault "an image
# that is not a registry at all" (issue 12): devbox must give a clear error within its ready timeout
# and leave nothing behind. Packed from the host's dash and sleep by `docker import`; no public
# registry is contacted.
# Usage: not-a-registry-image.sh [TAG]   (default: devbox-testbed/not-a-registry)
# An image that already exists under TAG is left as it is.
set -eu
tag=${1:-devbox-testbed/not-a-registry}
if docker image inspect "$tag" >/dev/null 2>&1; then
  exit 0
fi
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/tmp"
cp /bin/dash "$root/bin/sh"
cp /bin/sleep "$root/bin/sleep"
for lib in $(ldd /bin/dash /bin/sleep | awk '/=>/ { print $3 } /^\t\/lib/ { print $1 }' | sort -u); do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
chmod 1777 "$root/tmp"
# As PID 1 it must end on SIGTERM itself (the kernel gives PID 1 no default action), so that
# `docker stop` is quick.
cat > "$root/not-a-registry.sh" <<'SH'
#!/bin/sh
echo "not a registry: ignoring arguments: $*"
trap 'exit 0' TERM INT
sleep 2147483647 &
wait
SH
chmod 755 "$root/not-a-registry.sh"
tar -C "$root" -cf - . | docker import \
  --change 'ENTRYPOINT ["/not-a-registry.sh"]' \
  --change 'CMD ["/etc/distribution/config.yml"]' \
  --change 'EXPOSE 5000' \
  - "$tag" >/dev/null
echo "built $tag"
