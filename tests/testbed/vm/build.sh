#!/bin/sh
# Builds the testbed's VM image: a Debian bookworm guest running docker.io, for the tests of a Docker
# engine in a VM (colima, lima, Docker Desktop...), whose clock stops while the laptop sleeps.
# Built from Debian's packages only (debootstrap from deb.debian.org), never from a public registry.
#
# Output, cached outside the repo and keyed by a hash of this recipe (rebuilt only when it changes):
#   $DEVBOX_VM_CACHE/<hash>/disk.raw     6 GiB ext4 root filesystem (sparse), the VM's own disk
#   $DEVBOX_VM_CACHE/<hash>/vmlinuz      kernel and initrd taken from the tree: QEMU boots them with
#   $DEVBOX_VM_CACHE/<hash>/initrd.img   -kernel/-initrd, so the disk needs no bootloader
#   $DEVBOX_VM_CACHE/<hash>/id_ed25519   root's ssh key into the guest; known_hosts holds the guest's key
# Prints the image directory on stdout (the last line), and how long the build took on stderr.
#
# The guest, as lima and colima set theirs up (lima's user network: 192.168.5.0/24, the host at .2):
#   - host name colima (as colima's default VM): the engine reports it as its Name;
#   - static address 192.168.5.15/24, gateway 192.168.5.1 (QEMU's own: QEMU refuses a guestfwd on its
#     gateway address, so the host's forwarded ports sit at .2 and the gateway moves to .1), no DNS;
#   - dockerd with host-gateway-ip 192.168.5.2, where vm.sh forwards the host's S3 ports;
#   - sshd for root with the key above (the engine socket and published ports ride on ssh, as in lima);
#   - no NTP (timesyncd masked): its clock must drift when the VM is paused, as a sleeping laptop's does;
#   - apt/man-db timers, VGA gettys and unused modprobe@ units masked, a minimal initrd: under software
#     emulation (TCG) every CPU second counts.
# Usage: build.sh            (root; needs debootstrap, e2fsprogs' mkfs.ext4 -d, ssh-keygen)
# Env:   DEVBOX_VM_CACHE     cache root (default /var/cache/devbox-testbed/vm)
#        DEVBOX_VM_MIRROR    Debian mirror (default http://deb.debian.org/debian)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cache=${DEVBOX_VM_CACHE:-/var/cache/devbox-testbed/vm}
mirror=${DEVBOX_VM_MIRROR:-http://deb.debian.org/debian}
hash=$(sha256sum <"$here/build.sh" | cut -c1-16)
out="$cache/$hash"
if [ -f "$out/done" ]; then
  echo "vm image: reusing $out" >&2
  echo "$out"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "error: building the VM image needs root (debootstrap); run: sudo $0" >&2
  exit 1
fi
for tool in debootstrap mkfs.ext4 ssh-keygen; do
  command -v "$tool" >/dev/null 2>&1 || { echo "error: $tool not found (apt-get install debootstrap e2fsprogs openssh-client)" >&2; exit 1; }
done
start=$(date +%s)
echo "vm image: building $out from $mirror (several minutes)" >&2
mkdir -p "$cache/debs"
tmp="$out.tmp"
rm -rf "$tmp"
mkdir -p "$tmp"
root="$tmp/root"
trap 'rm -rf "$tmp"' EXIT

debootstrap --variant=minbase --cache-dir="$cache/debs" \
  --include=systemd-sysv,udev,kmod,iproute2,procps,openssh-server,docker.io,linux-image-amd64,initramfs-tools,zstd \
  bookworm "$root" "$mirror" >"$tmp/debootstrap.log" 2>&1 || {
  echo "error: debootstrap failed; its log:" >&2
  tail -n 30 "$tmp/debootstrap.log" >&2
  exit 1
}

# colima's VM host name: the engine then names itself "colima" in `docker info`, as on a laptop.
echo colima >"$root/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 colima\n' >"$root/etc/hosts"
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
# No wait-online: nothing in the guest needs the outside, which it cannot reach anyway.
chroot "$root" systemctl mask systemd-networkd-wait-online.service systemd-timesyncd.service \
  apt-daily.timer apt-daily-upgrade.timer man-db.timer e2scrub_all.timer fstrim.timer >/dev/null 2>&1

mkdir -p "$root/etc/docker"
cat >"$root/etc/docker/daemon.json" <<'JSON'
{
  "host-gateway-ip": "192.168.5.2"
}
JSON

mkdir -p "$root/root/.ssh"
ssh-keygen -q -t ed25519 -N '' -C devbox-testbed-vm -f "$tmp/id_ed25519"
cp "$tmp/id_ed25519.pub" "$root/root/.ssh/authorized_keys"
chmod 700 "$root/root/.ssh"
chmod 600 "$root/root/.ssh/authorized_keys"
cat >"$root/etc/ssh/sshd_config.d/devbox.conf" <<'SSHD'
PermitRootLogin prohibit-password
PasswordAuthentication no
UseDNS no
StreamLocalBindUnlink yes
SSHD
echo "devbox-vm $(cat "$root/etc/ssh/ssh_host_ed25519_key.pub")" | cut -d' ' -f1-3 >"$tmp/known_hosts"

# A small initrd (only what mounts /dev/vda) and fewer units at boot: under TCG, a boot takes minutes.
printf 'MODULES=list\n' >"$root/etc/initramfs-tools/conf.d/devbox"
printf 'virtio_pci\nvirtio_blk\ncrc32c_generic\next4\n' >>"$root/etc/initramfs-tools/modules"
chroot "$root" update-initramfs -u -k all >/dev/null 2>&1
chroot "$root" systemctl mask getty@.service dpkg-db-backup.timer modprobe@dm_mod.service \
  modprobe@efi_pstore.service modprobe@fuse.service modprobe@loop.service modprobe@drm.service >/dev/null 2>&1
cp -L "$root/vmlinuz" "$tmp/vmlinuz"
cp -L "$root/initrd.img" "$tmp/initrd.img"
chroot "$root" apt-get clean
rm -rf "$root/var/lib/apt/lists/"* "$root/usr/share/doc/"* "$root/usr/share/man/"*

truncate -s 6G "$tmp/disk.raw"
mkfs.ext4 -q -F -L devbox-vm -d "$root" "$tmp/disk.raw"
rm -rf "$root"
date -u +%Y-%m-%dT%H:%M:%SZ >"$tmp/done"
trap - EXIT
rm -rf "$out"
mv "$tmp" "$out"
echo "vm image: built in $(($(date +%s) - start)) s: $out ($(du -sh "$out/disk.raw" | cut -f1) used of 6 GiB)" >&2
echo "$out"
