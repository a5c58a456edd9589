#!/bin/sh
# Gives the testbed's registry images repository digests, as images pulled from a registry have,
# so that the tests can pin them by digest (registry.image = "NAME:TAG@sha256:…", as devbox's
# default pins the official image): each image is pushed to a throwaway registry on 127.0.0.1 and
# pulled back as 127.0.0.1:5990/<name>:<tag>, whose RepoDigests then hold its digest. The
# registry runs only while this script does; nothing leaves this machine.
#
# Idempotent: an image whose pulled-back copy is already the same image (same ID) is left alone.
# Usage: pin-images.sh IMAGE…   (e.g. devbox-testbed/registry:3)
set -eu
port=5990
registry=devbox-testbed-pin-registry
# The registry that takes the pushes: one of the images being pinned, on its own default config
# (filesystem storage, writable).
server_image=devbox-testbed/registry:2.8

cleanup() { docker rm -f "$registry" >/dev/null 2>&1 || true; }
trap cleanup EXIT

started=""
for image in "$@"; do
  pinned="127.0.0.1:$port/$image"
  id=$(docker image inspect --format '{{.Id}}' "$image")
  if [ "$(docker image inspect --format '{{.Id}}' "$pinned" 2>/dev/null || true)" = "$id" ] \
    && docker image inspect --format '{{range .RepoDigests}}{{.}} {{end}}' "$pinned" | grep -q "127.0.0.1:$port/"; then
    continue
  fi
  if [ -z "$started" ]; then
    cleanup
    docker run -d --name "$registry" -p "127.0.0.1:$port:5000" "$server_image" >/dev/null
    tries=0
    until curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1; do
      tries=$((tries + 1))
      if [ "$tries" -gt 30 ]; then
        echo "testbed: the registry for pinning did not answer on 127.0.0.1:$port" >&2
        exit 1
      fi
      sleep 1
    done
    started=yes
  fi
  echo "testbed: pinning $image by digest (as $pinned)"
  docker tag "$image" "$pinned"
  docker push -q "$pinned" >/dev/null
  # Pulled back: only a pull records the repository digest.
  docker rmi "$pinned" >/dev/null
  docker pull -q "$pinned" >/dev/null
done
