#!/bin/sh
# The testbed's VM Docker engine: a Debian guest under QEMU running docker.io (image: build.sh), reached
# from this host the way colima and lima expose theirs, so devbox's tests meet a real engine in a VM,
# whose clock stops while the VM is paused, as a laptop's does while it sleeps.
#
#   vm.sh up              build or reuse the image, boot the VM, wait for its engine (idempotent)
#   vm.sh status          say whether the VM runs and its engine answers (exit 1 if not)
#   vm.sh stop            shut it all down: guest, QEMU, ssh, port forwarder, sockets
#   vm.sh pause N         stop the VM's CPUs for N seconds (QMP stop, cont): its clock falls N s behind
#   vm.sh context HOME    write a docker context "colima" into HOME/.docker, as colima lays it out
#   vm.sh load IMAGE...   `docker save` IMAGE from this host's engine into the VM's, unless it has that very image
#   vm.sh ssh [CMD...]    run CMD (or a shell) in the guest, as root
#   vm.sh sock            print the engine socket's path
#
# How (and why so) -- the VM can reach nothing but what is forwarded here, explicitly:
#   - network: QEMU's user network with restrict=on, lima's addresses (guest 192.168.5.15, host
#     192.168.5.2; QEMU's gateway is .1, as it refuses a guestfwd on its own address). In: one hostfwd, 127.0.0.1:$DEVBOX_VM_SSH_PORT to the guest's sshd. Out: guestfwd of
#     192.168.5.2:P to this host's 127.0.0.1:P for each P in $DEVBOX_VM_S3_PORTS (socat per
#     connection), and dockerd's host-gateway-ip is 192.168.5.2, so a container's
#     http://host.docker.internal:P reaches the S3 server on this host's 127.0.0.1:P. Nothing else.
#   - engine socket: as lima does, one ssh control master forwards $RUN/docker.sock to the guest's
#     /var/run/docker.sock. ssh rather than dockerd on TCP + socat: no unauthenticated TCP engine port on
#     this host, and the same master carries the published ports, which must reach the guest's loopback.
#   - published ports: as lima's host agent does, a watcher (`vm.sh _watch`) follows the guest engine's
#     container start/die events and adds (`ssh -O forward -L 127.0.0.1:P:127.0.0.1:P`) or cancels a
#     forward for each TCP port a container publishes on the guest's 127.0.0.1 or 0.0.0.0.
#   - clock: -rtc base=utc,clock=vm, no NTP in the guest: while QMP `stop` holds the CPUs, the guest's
#     clock stands still, so after `cont` it is behind by the pause.
#   - apparmor=0 on the guest's kernel line: docker.io wants AppArmor's parser when the kernel has it on,
#     and the guest does without AppArmor (one package and a profile load less at each boot).
#   - accelerator: KVM when it boots; on machines where /dev/kvm exists but a KVM guest hangs at boot, no
#     kernel line reaches the serial console within $DEVBOX_VM_KVM_PROBE s: then TCG (software, slow).
#
# Fixed paths (RUN=$DEVBOX_VM_RUN, default /run/devbox-testbed/vm):
#   $RUN/docker.sock  the engine (mode 0666: a testbed VM, for test users too); $RUN/qmp.sock QMP;
#   $RUN/serial.log   guest console; $RUN/watch.log port forwarder; $RUN/accel the accelerator used.
#   The disk: an overlay ($DEVBOX_VM_CACHE/<image hash>/overlay.qcow2) on the cached image, kept across
#   stop/up (loaded images stay); a changed recipe means a new image and a new overlay.
# Env: DEVBOX_VM_S3_PORTS   host ports the guest reaches at host.docker.internal (default
#                           "3900 3910-3919": Garage's S3 port, and ten for tests' own moto servers);
#                           fixed at boot: changing it needs `vm.sh stop` then `vm.sh up`
#      DEVBOX_VM_SSH_PORT   the hostfwd to the guest's sshd on 127.0.0.1 (default 42022)
#      DEVBOX_VM_ACCEL      auto (default), kvm or tcg
#      DEVBOX_VM_KVM_PROBE  seconds a KVM guest gets to print its kernel banner (default 30)
#      DEVBOX_VM_TIMEOUT    seconds for the engine to answer after QEMU starts (default 600)
#      DEVBOX_VM_CPUS, DEVBOX_VM_MEM   (default 2, 2048 MiB)
# Runs as root (like the rest of the testbed).
#
# DEVBOX_VM_KIND=podman (what ../podman/vm.sh sets) runs the second VM, podman's (image:
# ../podman/build.sh), with its own defaults: RUN=/run/devbox-testbed/podman-vm, cache
# /var/cache/devbox-testbed/podman-vm, ssh port 42023. Its engine is rootless podman's API, forwarded
# to $RUN/podman.sock (the guest's /run/user/1000/podman/podman.sock), and rootful podman's to
# $RUN/podman-root.sock (the guest's /run/podman/podman.sock); `vm.sh sock` prints the rootless one.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
kind=${DEVBOX_VM_KIND:-docker}
case $kind in
  docker)
    run=${DEVBOX_VM_RUN:-/run/devbox-testbed/vm}
    cache=${DEVBOX_VM_CACHE:-/var/cache/devbox-testbed/vm}
    ssh_port=${DEVBOX_VM_SSH_PORT:-42022}
    build="$here/build.sh"
    sock="$run/docker.sock"
    forwards="$sock:/var/run/docker.sock"
    ;;
  podman)
    run=${DEVBOX_VM_RUN:-/run/devbox-testbed/podman-vm}
    cache=${DEVBOX_VM_CACHE:-/var/cache/devbox-testbed/podman-vm}
    ssh_port=${DEVBOX_VM_SSH_PORT:-42023}
    build="$here/../podman/build.sh"
    sock="$run/podman.sock"
    forwards="$sock:/run/user/1000/podman/podman.sock $run/podman-root.sock:/run/podman/podman.sock"
    ;;
  *) echo "vm: error: DEVBOX_VM_KIND is docker or podman, not $kind" >&2; exit 2 ;;
esac
export DEVBOX_VM_CACHE="$cache"
s3_ports=${DEVBOX_VM_S3_PORTS:-3900 3910-3919}
accel_want=${DEVBOX_VM_ACCEL:-auto}
kvm_probe=${DEVBOX_VM_KVM_PROBE:-30}
timeout=${DEVBOX_VM_TIMEOUT:-600}
cpus=${DEVBOX_VM_CPUS:-2}
mem=${DEVBOX_VM_MEM:-2048}
ctl="$run/ssh.ctl"
host_addr=192.168.5.2

say() { echo "vm: $*" >&2; }
die() { echo "vm: error: $*" >&2; exit 1; }
now() { date +%s; }

# QEMU removes its pidfile as it exits, so the file may go between the test and the read.
alive() { [ -f "$1" ] && kill -0 "$(cat "$1" 2>/dev/null)" 2>/dev/null; }
qemu_alive() { alive "$run/qemu.pid"; }
engine_answers() { [ -S "$sock" ] && docker -H "unix://$sock" version >/dev/null 2>&1; }

# The image directory the VM runs from (written by `up`); empty when none.
image_dir() { cat "$run/image" 2>/dev/null || true; }

vssh() {
  img=$(image_dir)
  [ -n "$img" ] || die "the VM is not running (vm.sh up)"
  ssh -S "$ctl" -o ControlMaster=no -i "$img/id_ed25519" -p "$ssh_port" -o HostKeyAlias=devbox-vm \
    -o UserKnownHostsFile="$img/known_hosts" -o StrictHostKeyChecking=yes -o BatchMode=yes \
    -o ConnectTimeout=10 -o LogLevel=ERROR root@127.0.0.1 "$@"
}

# Sends QMP commands, one per argument; `sleep:N` waits N seconds between them on the same session.
qmp() {
  [ -S "$run/qmp.sock" ] || die "no QMP socket at $run/qmp.sock: the VM is not running"
  {
    echo '{"execute":"qmp_capabilities"}'
    for c in "$@"; do
      case $c in
        sleep:*) sleep "${c#sleep:}" ;;
        *) printf '{"execute":"%s"}\n' "$c" ;;
      esac
    done
  } | socat -t 2 - "UNIX-CONNECT:$run/qmp.sock"
}

serial_tail() {
  echo "--- last lines of the guest console ($run/serial.log):" >&2
  tail -n 25 "$run/serial.log" 2>/dev/null | tr -d '\r' >&2 || true
}

# The QEMU netdev option: the ssh hostfwd in, one guestfwd per S3 port out, nothing else.
netdev() {
  nd="user,id=net0,net=192.168.5.0/24,host=192.168.5.1,restrict=on"
  nd="$nd,hostfwd=tcp:127.0.0.1:$ssh_port-192.168.5.15:22"
  for spec in $s3_ports; do
    case $spec in
      *-*) lo=${spec%-*} hi=${spec#*-} ;;
      *) lo=$spec hi=$spec ;;
    esac
    p=$lo
    while [ "$p" -le "$hi" ]; do
      nd="$nd,guestfwd=tcp:$host_addr:$p-cmd:socat STDIO TCP:127.0.0.1:$p"
      p=$((p + 1))
    done
  done
  echo "$nd"
}

start_qemu() { # $1: kvm|tcg
  img=$(image_dir)
  case $1 in
    kvm) opts="-accel kvm -cpu host" ;;
    tcg) opts="-accel tcg,thread=multi -cpu max" ;;
  esac
  rm -f "$run/qmp.sock" "$run/qemu.pid"
  : >"$run/serial.log"
  # $opts is a list of options: split on purpose.
  # shellcheck disable=SC2086
  qemu-system-x86_64 -name "devbox-$kind-vm" -machine q35 $opts -smp "$cpus" -m "$mem" \
    -kernel "$img/vmlinuz" -initrd "$img/initrd.img" \
    -append "root=/dev/vda rw console=ttyS0,115200 net.ifnames=0 mitigations=off apparmor=0" \
    -drive "file=$img/overlay.qcow2,if=virtio,format=qcow2" \
    -netdev "$(netdev)" -device virtio-net-pci,netdev=net0 \
    -device virtio-rng-pci \
    -rtc base=utc,clock=vm \
    -qmp "unix:$run/qmp.sock,server=on,wait=off" \
    -serial "file:$run/serial.log" -display none -monitor none \
    -daemonize -pidfile "$run/qemu.pid" 9>&- 2>"$run/qemu.err" || return 1
  echo "$1" >"$run/accel"
}

kill_qemu() {
  if qemu_alive; then
    qmp quit >/dev/null 2>&1 || true
    i=0
    while qemu_alive && [ "$i" -lt 10 ]; do sleep 1; i=$((i + 1)); done
    qemu_alive && kill -9 "$(cat "$run/qemu.pid" 2>/dev/null)" 2>/dev/null
  fi
  rm -f "$run/qemu.pid" "$run/qmp.sock"
}

boot() {
  accel=$accel_want
  if [ "$accel" = auto ]; then
    if [ -w /dev/kvm ] && [ "$(cat "$run/kvm-hangs" 2>/dev/null)" != yes ]; then accel=kvm; else accel=tcg; fi
  fi
  if [ "$accel" = kvm ] && ! start_qemu kvm; then
    # QEMU 7.2 under KVM here can abort at once (kvm_buf_set_msrs assertion) instead of hanging.
    say "QEMU exited at start under KVM ($(tail -n 1 "$run/qemu.err")); falling back to TCG (software emulation)"
    [ "$accel_want" = kvm ] && die "QEMU does not start under KVM (DEVBOX_VM_ACCEL=kvm)"
    echo yes >"$run/kvm-hangs"
    accel=tcg
  fi
  if [ "$accel" = kvm ]; then
    t0=$(now)
    until grep -q "Linux version" "$run/serial.log" 2>/dev/null; do
      if [ $(($(now) - t0)) -ge "$kvm_probe" ] || ! qemu_alive; then
        say "KVM guest printed no kernel banner within ${kvm_probe}s: it hangs here; falling back to TCG (software emulation)"
        kill_qemu
        [ "$accel_want" = kvm ] && { serial_tail; die "the KVM guest does not boot (DEVBOX_VM_ACCEL=kvm)"; }
        echo yes >"$run/kvm-hangs"
        accel=tcg
        break
      fi
      sleep 1
    done
  fi
  if [ "$accel" = tcg ] && ! start_qemu tcg; then
    cat "$run/qemu.err" >&2
    die "QEMU did not start"
  fi
  say "QEMU started ($accel); waiting for the guest's sshd and engine (up to ${timeout}s)"
}

# The local sockets of the forwards.
forward_socks() { for f in $forwards; do printf '%s\n' "${f%%:*}"; done; }

start_master() {
  img=$(image_dir)
  # shellcheck disable=SC2046
  rm -f $(forward_socks) "$ctl"
  locals=""
  for f in $forwards; do locals="$locals -L $f"; done
  # $locals is a list of options: split on purpose.
  # shellcheck disable=SC2086
  ssh -f -N -M -S "$ctl" -o ControlPersist=yes -i "$img/id_ed25519" -p "$ssh_port" \
    -o HostKeyAlias=devbox-vm -o UserKnownHostsFile="$img/known_hosts" -o StrictHostKeyChecking=yes \
    -o BatchMode=yes -o ConnectTimeout=10 -o LogLevel=ERROR -o ExitOnForwardFailure=yes \
    -o StreamLocalBindUnlink=yes -o StreamLocalBindMask=0111 \
    $locals root@127.0.0.1 9>&- 2>>"$run/ssh.log"
}

start_watcher() {
  if alive "$run/watch.pid"; then return 0; fi
  # In its own process group, so that `stop` ends it with its `docker events` and forwards.
  setsid env DEVBOX_VM_KIND="$kind" DEVBOX_VM_RUN="$run" sh "$here/vm.sh" _watch >>"$run/watch.log" 2>&1 9>&- </dev/null &
  echo $! >"$run/watch.pid"
}

cmd_up() {
  t_all=$(now)
  img=$(sh "$build" | tail -n 1)
  t_built=$(now)
  [ -f "$img/done" ] || die "no VM image (build.sh failed)"
  mkdir -p "$run"
  chmod 755 "$run"
  exec 9>"$run/lock"
  flock 9
  if qemu_alive && [ "$(image_dir)" = "$img" ]; then
    if ! engine_answers; then
      # QEMU runs: perhaps only the ssh master died. Reconnect before giving up on it.
      ssh -S "$ctl" -O exit x >/dev/null 2>&1 || true
      start_master 2>/dev/null || true
    fi
    if engine_answers; then
      start_watcher
      say "already running ($(cat "$run/accel")); engine $(docker -H "unix://$sock" version --format '{{.Server.Version}}') at $sock"
      return 0
    fi
    say "QEMU runs but its engine does not answer: restarting the VM"
  fi
  cmd_stop >/dev/null 2>&1 || true
  exec 9>"$run/lock"
  flock 9
  echo "$img" >"$run/image"
  # Images of older recipes (and their overlays) go: only the current one is ever booted.
  for old in "$cache"/*/done; do
    old=${old%/done}
    [ -d "$old" ] || continue
    [ "$old" = "$img" ] || { say "removing the outdated image $old"; rm -rf "$old"; }
  done
  if [ ! -f "$img/overlay.qcow2" ]; then
    qemu-img create -q -f qcow2 -b "$img/disk.raw" -F raw "$img/overlay.qcow2"
  fi
  t_boot=$(now)
  boot
  t_qemu=$(now)
  until start_master 2>/dev/null; do
    qemu_alive || { serial_tail; die "QEMU exited during boot"; }
    [ $(($(now) - t_qemu)) -lt "$timeout" ] || { serial_tail; die "the guest's sshd did not answer within ${timeout}s"; }
    sleep 3
  done
  t_ssh=$(now)
  until engine_answers; do
    [ $(($(now) - t_qemu)) -lt "$timeout" ] || {
      serial_tail
      vssh journalctl -u docker --no-pager -n 20 >&2 || true
      die "the guest's dockerd did not answer within ${timeout}s"
    }
    sleep 2
  done
  t_engine=$(now)
  start_watcher
  say "engine $(docker -H "unix://$sock" version --format '{{.Server.Version}}') ready at $sock ($(cat "$run/accel"));" \
    "image $((t_built - t_all)) s, accelerator choice $((t_qemu - t_boot)) s," \
    "then boot to sshd $((t_ssh - t_qemu)) s, to engine $((t_engine - t_qemu)) s"
}

cmd_stop() {
  mkdir -p "$run"
  exec 9>"$run/lock"
  flock 9
  if alive "$run/watch.pid"; then
    kill -- "-$(cat "$run/watch.pid")" 2>/dev/null || true
  fi
  rm -f "$run/watch.pid"
  if qemu_alive; then
    # A clean shutdown keeps the overlay consistent; QMP quit if the guest does not go in time.
    vssh systemctl poweroff >/dev/null 2>&1 || true
    i=0
    while qemu_alive && [ "$i" -lt 90 ]; do sleep 1; i=$((i + 1)); done
    kill_qemu
  fi
  ssh -S "$ctl" -O exit x >/dev/null 2>&1 || true
  # shellcheck disable=SC2046
  rm -f $(forward_socks) "$ctl" "$run/qmp.sock" "$run/qemu.pid" "$run/image" "$run/fwd."*
  say "stopped"
}

cmd_status() {
  if qemu_alive && engine_answers; then
    echo "running ($(cat "$run/accel")): engine $(docker -H "unix://$sock" version --format '{{.Server.Version}}') at $sock"
  elif qemu_alive; then
    # Under TCG a guest kernel can die of an emulation fault while QEMU runs on: say so.
    panic=$(grep -a -m 1 -E 'Kernel panic|double fault' "$run/serial.log" 2>/dev/null | tr -d '\r')
    if [ -n "$panic" ]; then
      echo "QEMU runs (pid $(cat "$run/qemu.pid" 2>/dev/null)) but the guest's kernel died ($panic; see $run/serial.log): \`sh tests/testbed/up.sh\` restarts the VM"
    else
      echo "QEMU runs (pid $(cat "$run/qemu.pid" 2>/dev/null)) but the engine at $sock does not answer"
    fi
    return 1
  else
    echo "not running"
    return 1
  fi
}

cmd_pause() {
  n=${1:?usage: vm.sh pause SECONDS}
  qemu_alive || die "the VM is not running"
  qmp stop "sleep:$n" cont >/dev/null
  say "paused the VM's CPUs for ${n}s"
}

cmd_context() {
  home=${1:?usage: vm.sh context HOME}
  if [ "$kind" = podman ]; then podman_context "$home"; return; fi
  # colima's layout: the socket at ~/.colima/default/docker.sock (here a link to the testbed's socket),
  # and a docker context "colima" made current in ~/.docker/config.json.
  mkdir -p "$home/.colima/default"
  ln -sfn "$sock" "$home/.colima/default/docker.sock"
  endpoint="unix://$home/.colima/default/docker.sock"
  digest=$(printf colima | sha256sum | cut -d' ' -f1)
  mkdir -p "$home/.docker/contexts/meta/$digest"
  printf '{"Name":"colima","Metadata":{"Description":"colima"},"Endpoints":{"docker":{"Host":"%s","SkipTLSVerify":false}}}\n' \
    "$endpoint" >"$home/.docker/contexts/meta/$digest/meta.json"
  config="$home/.docker/config.json"
  if [ ! -s "$config" ]; then
    echo '{"currentContext":"colima"}' >"$config"
  elif grep -q '"currentContext"' "$config"; then
    sed -i 's/"currentContext"[[:space:]]*:[[:space:]]*"[^"]*"/"currentContext":"colima"/' "$config"
  else
    sed -i '0,/{/s//{"currentContext":"colima",/' "$config"
  fi
  say "context colima -> $endpoint in $home/.docker"
}

# podman machine's layout on Linux, with HOME/.run standing for XDG_RUNTIME_DIR: the API socket at
# $XDG_RUNTIME_DIR/podman/podman-machine-default-api.sock (a link to the testbed's), the rootful one
# beside it (rootful.sock), and a docker context "podman-machine-default" on it, not made current (a test picks
# DOCKER_CONTEXT, or leaves discovery to find the socket).
podman_context() {
  home=$1
  mkdir -p "$home/.run/podman"
  chmod 700 "$home/.run"
  ln -sfn "$sock" "$home/.run/podman/podman-machine-default-api.sock"
  ln -sfn "$run/podman-root.sock" "$home/.run/podman/rootful.sock"
  endpoint="unix://$home/.run/podman/podman-machine-default-api.sock"
  digest=$(printf podman-machine-default | sha256sum | cut -d' ' -f1)
  mkdir -p "$home/.docker/contexts/meta/$digest"
  printf '{"Name":"podman-machine-default","Metadata":{"Description":"podman machine"},"Endpoints":{"docker":{"Host":"%s","SkipTLSVerify":false}}}\n' \
    "$endpoint" >"$home/.docker/contexts/meta/$digest/meta.json"
  say "context podman-machine-default -> $endpoint in $home/.docker; XDG_RUNTIME_DIR=$home/.run"
}

cmd_load() {
  engine_answers || die "the VM's engine does not answer (vm.sh up)"
  for image in "$@"; do
    # The same image ID (docker save/load keeps it), not merely the same name: a rebuilt image goes in.
    id=$(docker image inspect --format '{{.Id}}' "$image" 2>/dev/null) || die "no image $image on this host's engine"
    if [ "$(docker -H "unix://$sock" image inspect --format '{{.Id}}' "$image" 2>/dev/null)" = "$id" ]; then continue; fi
    t0=$(now)
    docker save "$image" | docker -H "unix://$sock" load >/dev/null || die "could not load $image into the VM"
    say "loaded $image into the VM in $(($(now) - t0)) s"
  done
}

# --- the published-port forwarder (lima's host agent, in shell) ------------------------------------

# The TCP ports container $1 publishes on the guest's 127.0.0.1 or all addresses, one per line.
published() {
  docker -H "unix://$sock" inspect --format \
    '{{range $p, $b := .NetworkSettings.Ports}}{{if eq (index (split $p "/") 1) "tcp"}}{{range $b}}{{.HostIp}} {{.HostPort}}{{"\n"}}{{end}}{{end}}{{end}}' \
    "$1" 2>/dev/null | awk '$1 == "127.0.0.1" || $1 == "0.0.0.0" || $1 == "::" { print $2 }' | sort -u
}

forward() { # $1: container id
  for p in $(published "$1"); do
    if ssh -S "$ctl" -O forward -L "127.0.0.1:$p:127.0.0.1:$p" x 2>>"$run/watch.log"; then
      echo "$p" >>"$run/fwd.$1"
      echo "$(date -u +%H:%M:%S.%N) forward 127.0.0.1:$p (container ${1%"${1#????????????}"})"
    fi
  done
}

unforward() { # $1: container id
  [ -f "$run/fwd.$1" ] || return 0
  sort -u "$run/fwd.$1" | while read -r p; do
    ssh -S "$ctl" -O cancel -L "127.0.0.1:$p:127.0.0.1:$p" x 2>>"$run/watch.log" || true
    echo "$(date -u +%H:%M:%S.%N) cancel 127.0.0.1:$p (container ${1%"${1#????????????}"})"
  done
  rm -f "$run/fwd.$1"
}

cmd_watch() {
  while qemu_alive; do
    {
      docker -H "unix://$sock" events --filter type=container --filter event=start --filter event=die \
        --format '{{.Status}} {{.ID}}' 2>/dev/null &
      # Then the containers already running (one started in between is seen twice: harmless).
      sleep 1
      for id in $(docker -H "unix://$sock" ps -q --no-trunc 2>/dev/null); do echo "start $id"; done
      wait
    } | while read -r status id; do
      case $status in
        start) forward "$id" ;;
        die) unforward "$id" ;;
      esac
    done
    sleep 2
  done
}

case ${1:-} in
  up) cmd_up ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  pause) shift; cmd_pause "$@" ;;
  context) shift; cmd_context "$@" ;;
  load) shift; cmd_load "$@" ;;
  ssh) shift; vssh "$@" ;;
  sock) echo "$sock" ;;
  _watch) cmd_watch ;;
  *) sed -n '2,/^set -eu/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
