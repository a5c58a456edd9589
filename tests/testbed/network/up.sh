#!/bin/sh
# The company network's parts, for tests/it/network.rs (each test starts its own instances):
#   - tinyproxy (Debian's tinyproxy-bin: the binary, no service), a plain HTTP proxy that logs every
#     CONNECT and can ask for Basic credentials (407);
#   - mitmproxy, pinned, from PyPI in a venv of its own (its pins would move moto's Flask): a
#     TLS-inspecting proxy that re-signs every HTTPS connection with a CA of the test's own;
#   - openssl (the tests' private CAs), socat (S3 over TLS in front of moto), iptables (the direct
#     path to S3 closed for everyone but the proxy's user, for the test's duration).
# Idempotent: what is there is left as it is. Runs as root, or as a user with sudo.
set -eu
if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi

mitm_version=11.0.2
venv=/opt/devbox-testbed/mitmproxy

missing=""
for need in tinyproxy:tinyproxy-bin openssl:openssl socat:socat iptables:iptables setpriv:util-linux; do
  command -v "${need%%:*}" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin" command -v "${need%%:*}" >/dev/null 2>&1 \
    || missing="$missing ${need#*:}"
done
if [ -n "$missing" ]; then
  echo "testbed: installing$missing"
  $sudo apt-get -o DPkg::Lock::Timeout=600 update -qq
  # $missing is a list of package names: split on purpose.
  # shellcheck disable=SC2086
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq $missing >/dev/null
fi

if ! "$venv/bin/mitmdump" --version 2>/dev/null | grep -q "Mitmproxy: $mitm_version"; then
  echo "testbed: installing mitmproxy $mitm_version into $venv"
  $sudo python3 -m venv "$venv"
  $sudo "$venv/bin/pip" install -q "mitmproxy==$mitm_version"
fi
echo "testbed: network: $(tinyproxy -v 2>&1 | head -n 1), mitmproxy $mitm_version"
