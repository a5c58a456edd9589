#!/bin/sh
# Builds the testbed's podman VM image: a Debian trixie guest running podman 5.4, as podman machine
# runs it: rootless, as the user `core`, its Docker-compatible API served by
# `podman system service --time=0` on $XDG_RUNTIME_DIR/podman/podman.sock; and rootful as well, on
# /run/podman/podman.sock. A second VM beside the docker one (../vm/): its own image, run directory
# and ssh port. Built from Debian's packages only (debootstrap from deb.debian.org), never from a
# public registry: images enter it by `podman load` (the API's /images/load).
#
# Output, cached outside the repo and keyed by a hash of this recipe (rebuilt only when it changes):
#   $DEVBOX_VM_CACHE/<hash>/disk.raw, vmlinuz, initrd.img, id_ed25519, known_hosts   (as ../vm/build.sh)
#   id_ed25519 logs in as root (the testbed's own access) and as core (`podman machine ssh`'s user).
# Prints the image directory on stdout (the last line), and how long the build took on stderr.
#
# The guest, as podman machine sets its up (where it matters to devbox):
#   - user core (uid 1000), lingering, so its systemd user manager (and the API) starts at boot;
#     passwordless sudo, as on podman machine, so `podman machine ssh sudo sh` is a root shell;
#   - host.containers.internal and host-gateway (so host.docker.internal) are 192.168.5.2
#     (containers.conf host_containers_internal_ip), where vm.sh forwards the host's S3 ports, as
#     gvproxy maps the host into podman machine's VM;
#   - rootless networking by pasta (podman 5's default), pods' infra containers from catatonit
#     (podman builds its pause image locally: nothing is pulled);
#   - no NTP (no chrony, timesyncd masked): its clock must drift when the VM is paused, as podman
#     machine's does while the laptop sleeps (containers/podman #22037);
#   - host name localhost.localdomain (Fedora CoreOS's): only the socket's path says "podman machine".
# Network, disk, kernel and the small initrd as the docker VM's (../vm/build.sh says why).
# Usage: build.sh            (root; needs debootstrap with the trixie script, e2fsprogs, ssh-keygen)
# Env:   DEVBOX_VM_CACHE     cache root (default /var/cache/devbox-testbed/podman-vm)
#        DEVBOX_VM_MIRROR    Debian mirror (default http://deb.debian.org/debian)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cache=${DEVBOX_VM_CACHE:-/var/cache/devbox-testbed/podman-vm}
mirror=${DEVBOX_VM_MIRROR:-http://deb.debian.org/debian}
hash=$(sha256sum <"$here/build.sh" | cut -c1-16)
out="$cache/$hash"
if [ -f "$out/done" ]; then
  echo "podman vm image: reusing $out" >&2
  echo "$out"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "error: building the podman VM image needs root (debootstrap); run: sudo $0" >&2
  exit 1
fi
for tool in debootstrap mkfs.ext4 ssh-keygen; do
  command -v "$tool" >/dev/null 2>&1 || { echo "error: $tool not found (apt-get install debootstrap e2fsprogs openssh-client)" >&2; exit 1; }
done
[ -f /usr/share/debootstrap/scripts/trixie ] || { echo "error: this debootstrap has no trixie script (apt-get install debootstrap from bookworm-backports or later)" >&2; exit 1; }
start=$(date +%s)
echo "podman vm image: building $out from $mirror (several minutes)" >&2
mkdir -p "$cache/debs"
tmp="$out.tmp"
rm -rf "$tmp"
mkdir -p "$tmp"
root="$tmp/root"
trap 'rm -rf "$tmp"' EXIT

debootstrap --variant=minbase --cache-dir="$cache/debs" \
  --include=systemd-sysv,udev,kmod,iproute2,procps,openssh-server,sudo,dbus,dbus-user-session,libpam-systemd,podman,uidmap,passt,catatonit,crun,conmon,netavark,aardvark-dns,nftables,iptables,linux-image-amd64,initramfs-tools,zstd \
  trixie "$root" "$mirror" >"$tmp/debootstrap.log" 2>&1 || {
  echo "error: debootstrap failed; its log:" >&2
  tail -n 30 "$tmp/debootstrap.log" >&2
  exit 1
}

echo localhost.localdomain >"$root/etc/hostname"
printf '127.0.0.1 localhost localhost.localdomain\n' >"$root/etc/hosts"
printf '/dev/vda / ext4 rw,errors=remount-ro 0 1\n' >"$root/etc/fstab"
: >"$root/etc/machine-id"
mkdir -p "$root/etc/systemd/network"
cat >"$root/etc/systemd/network/10-eth0.network" <<'NET'
[Match]
Name=eth0

[Network]
Address=192.168.5.15/24
Gateway=192.168.5.1
NET
chroot "$root" systemctl enable systemd-networkd.service >/dev/null 2>&1
chroot "$root" systemctl mask systemd-networkd-wait-online.service systemd-timesyncd.service \
  apt-daily.timer apt-daily-upgrade.timer man-db.timer e2scrub_all.timer fstrim.timer \
  podman-auto-update.timer podman-clean-transient.service podman-restart.service >/dev/null 2>&1

# podman machine's user, with its subordinate ids, lingering, and sudo without a password.
chroot "$root" useradd -m -u 1000 -U -s /bin/bash core
echo 'core:100000:65536' >"$root/etc/subuid"
echo 'core:100000:65536' >"$root/etc/subgid"
echo 'core ALL=(ALL) NOPASSWD: ALL' >"$root/etc/sudoers.d/core"
chmod 440 "$root/etc/sudoers.d/core"
mkdir -p "$root/var/lib/systemd/linger"
: >"$root/var/lib/systemd/linger/core"

# The API, rootless and rootful, served for as long as the VM runs (--time=0), as podman machine does.
units="$root/home/core/.config/systemd/user"
mkdir -p "$units/default.target.wants"
cat >"$units/podman-api.service" <<'UNIT'
[Unit]
Description=podman API, rootless (as podman machine serves it)

[Service]
ExecStartPre=/bin/mkdir -p %t/podman
ExecStart=/usr/bin/podman system service --time=0 unix://%t/podman/podman.sock
Restart=always

[Install]
WantedBy=default.target
UNIT
ln -s ../podman-api.service "$units/default.target.wants/podman-api.service"
cat >"$root/etc/systemd/system/podman-api.service" <<'UNIT'
[Unit]
Description=podman API, rootful
After=network.target

[Service]
ExecStartPre=/bin/mkdir -p /run/podman
ExecStart=/usr/bin/podman system service --time=0 unix:///run/podman/podman.sock
Restart=always

[Install]
WantedBy=multi-user.target
UNIT
chroot "$root" systemctl enable podman-api.service >/dev/null 2>&1

mkdir -p "$root/etc/containers/containers.conf.d"
cat >"$root/etc/containers/containers.conf.d/devbox-testbed.conf" <<'CONF'
# The host, as gvproxy maps it into podman machine's VM: here vm.sh's guestfwd address.
[containers]
host_containers_internal_ip = "192.168.5.2"
CONF

# The laptop's registry speaks plain HTTP on loopback: dockerd trusts 127.0.0.0/8 so by default,
# podman only where registries.conf says so (what devbox's pull error tells a podman user to add).
mkdir -p "$root/etc/containers/registries.conf.d"
cat >"$root/etc/containers/registries.conf.d/devbox.conf" <<'CONF'
[[registry]]
location = "127.0.0.1"
insecure = true
CONF
ssh-keygen -q -t ed25519 -N '' -C devbox-testbed-podman-vm -f "$tmp/id_ed25519"
for home in root home/core; do
  mkdir -p "$root/$home/.ssh"
  cp "$tmp/id_ed25519.pub" "$root/$home/.ssh/authorized_keys"
  chmod 700 "$root/$home/.ssh"
  chmod 600 "$root/$home/.ssh/authorized_keys"
done
chroot "$root" chown -R core:core /home/core
cat >"$root/etc/ssh/sshd_config.d/devbox.conf" <<'SSHD'
PermitRootLogin prohibit-password
PasswordAuthentication no
UseDNS no
StreamLocalBindUnlink yes
SSHD
echo "devbox-vm $(cat "$root/etc/ssh/ssh_host_ed25519_key.pub")" | cut -d' ' -f1-3 >"$tmp/known_hosts"

printf 'MODULES=list\n' >"$root/etc/initramfs-tools/conf.d/devbox"
printf 'virtio_pci\nvirtio_blk\ncrc32c_generic\next4\n' >>"$root/etc/initramfs-tools/modules"
chroot "$root" update-initramfs -u -k all >/dev/null 2>&1
chroot "$root" systemctl mask getty@.service dpkg-db-backup.timer modprobe@dm_mod.service \
  modprobe@efi_pstore.service modprobe@loop.service modprobe@drm.service >/dev/null 2>&1
cp -L "$root/vmlinuz" "$tmp/vmlinuz"
cp -L "$root/initrd.img" "$tmp/initrd.img"
chroot "$root" dpkg-query -W -f 'podman ${Version}' podman >"$tmp/podman-version"
chroot "$root" apt-get clean
rm -rf "$root/var/lib/apt/lists/"* "$root/usr/share/doc/"* "$root/usr/share/man/"*

truncate -s 6G "$tmp/disk.raw"
mkfs.ext4 -q -F -L devbox-vm -d "$root" "$tmp/disk.raw"
rm -rf "$root"
date -u +%Y-%m-%dT%H:%M:%SZ >"$tmp/done"
trap - EXIT
rm -rf "$out"
mv "$tmp" "$out"
echo "podman vm image: built in $(($(date +%s) - start)) s: $out ($(cat "$out/podman-version"); $(du -sh "$out/disk.raw" | cut -f1) used of 6 GiB)" >&2
echo "$out"
