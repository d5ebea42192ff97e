#!/usr/bin/env bash
# Lab libvirt hypervisor hosts: one network namespace per host on bridge farmlab0, each with its own
# mount namespace, an OpenSSH sshd (key-only root) and a libvirtd serving a `dir` storage pool
# named "images". The machine's real /run, /etc/libvirt and /var/lib/libvirt are never touched:
# the host gets its own copies through bind mounts inside its mount namespace.
#
#   libvirt.sh up     [ARCH:IP ...]   start (idempotent); default hosts: $FARM_LAB_HYPERVISORS
#   libvirt.sh down   [ARCH:IP ...]   stop (by pid files) and remove the namespaces; state is kept
#   libvirt.sh status [ARCH:IP ...]   prove each host answers `virsh -c qemu+ssh://... pool-list`
#                                     with its host key verified
#
# State: $FARM_LAB_DIR/hv-<arch>/ (default <repo>/.lab). The client key and known_hosts are the
# lab's: $FARM_LAB_DIR/ssh/id_ed25519 and $FARM_LAB_DIR/ssh/known_hosts.
set -euo pipefail

SCRIPT=$(readlink -f "${BASH_SOURCE[0]}")
REPO=$(cd "$(dirname "$SCRIPT")/../../.." && pwd)
LAB=${FARM_LAB_DIR:-$REPO/.lab}
BRIDGE=farmlab0
BRIDGE_CIDR=10.231.0.1/24
DEFAULT_HOSTS="x86_64:10.231.0.21 ppc64le:10.231.0.22"
SSH_DIR=$LAB/ssh
CLIENT_KEY=$SSH_DIR/id_ed25519
KNOWN_HOSTS=$SSH_DIR/known_hosts
# Bounded waits: polls of 0.1 s. Host lists are read on fd 3 so commands in the loops may use stdin.
WAIT_STEPS=200

log() { printf 'libvirt.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- host list ---------------------------------------------------------------------------------

# Prints "arch ip" lines for the hosts given as ARCH:IP words (or the default list).
parse_hosts() {
  local spec
  local -a words
  if (($# > 0)); then words=("$@"); else read -r -a words <<<"${FARM_LAB_HYPERVISORS:-$DEFAULT_HOSTS}"; fi
  for spec in "${words[@]}"; do
    local arch=${spec%%:*} ip=${spec#*:}
    case $arch in x86_64 | aarch64 | ppc64le | s390x) ;; *) die "unknown arch '$arch' in '$spec' (use ARCH:IP)" ;; esac
    # The lab's traffic stays inside its own /24.
    [[ $ip =~ ^10\.231\.0\.([0-9]{1,3})$ ]] && ((BASH_REMATCH[1] >= 2 && BASH_REMATCH[1] <= 254)) ||
      die "address '$ip' in '$spec' is not a host of 10.231.0.0/24"
    printf '%s %s\n' "$arch" "$ip"
  done
}

ns_name() { printf 'farmlab-hv-%s' "$1"; }
veth_name() { printf 'vhv-%s' "$1"; } # root side; <= 15 characters for every arch
state_dir() { printf '%s/hv-%s' "$LAB" "$1"; }

# True when the pid file names a live process whose executable is $2 (guards against pid reuse).
pid_alive() {
  local file=$1 exe=$2 pid
  [[ -s $file ]] || return 1
  pid=$(<"$file")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [[ $(readlink "/proc/$pid/exe" 2>/dev/null) == "$exe" ]]
}

wait_for() { # wait_for DESCRIPTION COMMAND...: polls up to WAIT_STEPS times
  local what=$1 i
  shift
  for ((i = 0; i < WAIT_STEPS; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  die "timed out after $((WAIT_STEPS / 10)) s waiting for $what"
}

# --- shared lab pieces (bridge, client key, known_hosts) -----------------------------------------

ensure_bridge() {
  # Another lab script may own the bridge: only create what is missing, never change what exists.
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge 2>/dev/null || ip link show "$BRIDGE" >/dev/null 2>&1 ||
      die "cannot create bridge $BRIDGE"
    mkdir -p "$LAB" && touch "$LAB/.hv-created-bridge"
  fi
  if ! ip -4 addr show dev "$BRIDGE" | grep -q "inet ${BRIDGE_CIDR} "; then
    ip addr add "$BRIDGE_CIDR" dev "$BRIDGE" 2>/dev/null || true
  fi
  ip link set "$BRIDGE" up
}

ensure_client_key() {
  mkdir -p "$SSH_DIR" && chmod 700 "$SSH_DIR"
  if [[ ! -s $CLIENT_KEY ]]; then
    local tmp
    tmp=$(mktemp -d "$SSH_DIR/.keygen.XXXXXX")
    ssh-keygen -q -t ed25519 -N '' -C farm-lab -f "$tmp/key" >/dev/null
    # The public half first, then the private one with ln (fails if another script won the race).
    if ln "$tmp/key" "$CLIENT_KEY" 2>/dev/null; then
      mv "$tmp/key.pub" "$CLIENT_KEY.pub"
    fi
    rm -rf "$tmp"
  fi
  wait_for "$CLIENT_KEY.pub" test -s "$CLIENT_KEY.pub"
  touch "$KNOWN_HOSTS"
}

# Records "IP ssh-ed25519 KEY" for the host; drops a stale line for the same address only. Under
# known_hosts.lock, which scripts/lab takes too when it rewrites the worker hosts' lines.
ensure_known_host() {
  (
    exec 8>"$SSH_DIR/known_hosts.lock"
    flock -w 30 8 || die "$SSH_DIR/known_hosts.lock held for 30 s"
    ensure_known_host_locked "$@"
  )
}

ensure_known_host_locked() {
  local ip=$1 pubfile=$2 entry
  entry="$ip $(cut -d' ' -f1,2 "$pubfile")"
  if grep -qxF "$entry" "$KNOWN_HOSTS"; then return 0; fi
  if grep -q "^${ip//./\\.} " "$KNOWN_HOSTS"; then
    local tmp
    tmp=$(mktemp "$KNOWN_HOSTS.XXXXXX")
    grep -v "^${ip//./\\.} " "$KNOWN_HOSTS" >"$tmp" || true
    mv "$tmp" "$KNOWN_HOSTS"
  fi
  printf '%s\n' "$entry" >>"$KNOWN_HOSTS"
}

# libvirtd's QEMU driver refuses to start without these (LAB-NOTES).
ensure_accounts() {
  getent group kvm >/dev/null || groupadd --system kvm
  getent group libvirt-qemu >/dev/null || groupadd --system libvirt-qemu
  getent passwd libvirt-qemu >/dev/null ||
    useradd --system --gid kvm --groups libvirt-qemu --home-dir /var/lib/libvirt --no-create-home \
      --shell /usr/sbin/nologin libvirt-qemu
}

# --- one host ------------------------------------------------------------------------------------

prepare_state() { # prepare_state ARCH IP
  local arch=$1 ip=$2 st
  st=$(state_dir "$arch")
  [[ $st == "$LAB"/hv-?* ]] || die "bad state directory '$st'" # every write below stays inside it
  mkdir -p "$st"/{ssh,run,lib-libvirt,log-libvirt,cache-libvirt,pool/images,bin}
  chmod 700 "$st/ssh"
  [[ -s $st/ssh/ssh_host_ed25519_key ]] ||
    ssh-keygen -q -t ed25519 -N '' -C "farmlab-hv-$arch" -f "$st/ssh/ssh_host_ed25519_key" >/dev/null
  cp "$CLIENT_KEY.pub" "$st/ssh/authorized_keys"
  cat >"$st/ssh/sshd_config" <<EOF
ListenAddress $ip
Port 22
HostKey $st/ssh/ssh_host_ed25519_key
PidFile $st/run/sshd.pid
AuthorizedKeysFile $st/ssh/authorized_keys
StrictModes $(case "$st/" in /tmp/* | /var/tmp/*) echo no ;; *) echo yes ;; esac)
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
X11Forwarding no
AllowTcpForwarding no
PrintMotd no
MaxStartups 50:30:100
Subsystem sftp internal-sftp
EOF
  # Its own libvirt configuration: a copy of the package's, with the daemon's socket auth set to
  # root-only unix permissions (no polkit/dbus in the namespace) and no autostarted networks.
  if [[ ! -d $st/etc-libvirt ]]; then
    local tmp
    tmp=$(mktemp -d "$st/.etc-libvirt.XXXXXX")
    cp -a /etc/libvirt/. "$tmp/"
    rm -f "$tmp"/qemu/networks/autostart/* "$tmp"/storage/autostart/* 2>/dev/null || true
    rm -f "$tmp"/storage/*.xml "$tmp"/qemu/*.xml 2>/dev/null || true
    cat >>"$tmp/libvirtd.conf" <<'EOF'

# farm lab hypervisor
unix_sock_group = "root"
unix_sock_ro_perms = "0700"
unix_sock_rw_perms = "0700"
auth_unix_ro = "none"
auth_unix_rw = "none"
listen_tls = 0
listen_tcp = 0
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
EOF
    mv "$tmp" "$st/etc-libvirt"
  fi
  # `uname -m` prints the host's arch; every other flag goes to the real binary (kept beside it).
  # Rewritten only when it differs: a running host has the file bind-mounted over /usr/bin/uname.
  [[ -x $st/bin/uname.real ]] || install -m 755 /usr/bin/uname "$st/bin/uname.real"
  local wrapper
  wrapper=$(printf '#!/bin/sh\ncase "$*" in\n  -m|--machine) echo %s ;;\n  *) exec %s/bin/uname.real "$@" ;;\nesac' "$arch" "$st")
  if [[ ! -f $st/bin/uname ]] || [[ $(<"$st/bin/uname") != "$wrapper" ]]; then
    printf '%s\n' "$wrapper" >"$st/bin/uname"
  fi
  chmod 755 "$st/bin/uname"
  printf 'ARCH=%s\nIP=%s\nNS=%s\n' "$arch" "$ip" "$(ns_name "$arch")" >"$st/host.env"
}

# Runs inside `ip netns exec NS unshare --mount --propagation private`: private views of /run,
# /etc/libvirt, /var/lib/libvirt, /var/log/libvirt, /var/cache/libvirt and uname, then the daemons.
# The mount namespace lives on in sshd and libvirtd after this returns.
ns_init() { # ns_init STATEDIR
  local st=$1
  [[ -n $st && -f $st/host.env ]] || die "_ns-init: no host.env in '$st'"
  # shellcheck disable=SC1091
  source "$st/host.env"
  mkdir -p "$st/run/sshd" "$st/run/lock"
  chmod 755 "$st/run/sshd"
  mount --bind "$st/run" /run
  mount --bind "$st/etc-libvirt" /etc/libvirt
  mkdir -p /var/lib/libvirt /var/log/libvirt /var/cache/libvirt
  mount --bind "$st/lib-libvirt" /var/lib/libvirt
  mount --bind "$st/log-libvirt" /var/log/libvirt
  mount --bind "$st/cache-libvirt" /var/cache/libvirt
  if [[ $ARCH != "$(uname -m)" ]]; then mount --bind "$st/bin/uname" /usr/bin/uname; fi
  ip link set lo up
  /usr/sbin/sshd -f "$st/ssh/sshd_config" -E "$st/sshd.log"
  /usr/sbin/libvirtd --daemon --pid-file "$st/run/libvirtd.pid"
}

define_pool() { # define_pool ARCH: the `images` dir pool, autostarted and running
  local st pid
  st=$(state_dir "$1")
  pid=$(<"$st/run/libvirtd.pid")
  local -a virsh=(nsenter --target "$pid" --mount --net -- virsh -q -c qemu:///system)
  wait_for "libvirtd in $(ns_name "$1")" "${virsh[@]}" pool-list --all
  if ! "${virsh[@]}" pool-info images >/dev/null 2>&1; then
    "${virsh[@]}" pool-define-as images dir --target "$st/pool/images" >/dev/null
  fi
  "${virsh[@]}" pool-autostart images >/dev/null
  # (No `| grep -q` under pipefail: grep's early exit would fail the pipeline with SIGPIPE.)
  if [[ ! $("${virsh[@]}" pool-info images) =~ State:\ +running ]]; then
    "${virsh[@]}" pool-build images >/dev/null 2>&1 || true
    "${virsh[@]}" pool-start images >/dev/null
  fi
}

host_healthy() { # host_healthy ARCH
  local st ns
  st=$(state_dir "$1")
  ns=$(ns_name "$1")
  ip netns list | grep -qw "$ns" &&
    pid_alive "$st/run/sshd.pid" /usr/sbin/sshd &&
    pid_alive "$st/run/libvirtd.pid" /usr/sbin/libvirtd &&
    arch_ok "$1"
}

# `uname -m` in the host's mount namespace prints its arch. Replacing the machine's
# /usr/bin/uname detaches the bind mount over it in every other namespace; `up` then restarts
# the host (which mounts it again).
arch_ok() { # arch_ok ARCH
  local pid
  pid=$(<"$(state_dir "$1")/run/libvirtd.pid")
  [[ $(nsenter --target "$pid" --mount -- uname -m 2>/dev/null) == "$1" ]]
}

stop_pidfile() { # stop_pidfile FILE EXE: TERM, bounded wait, then KILL
  local file=$1 exe=$2 pid i
  pid_alive "$file" "$exe" || { rm -f "$file"; return 0; }
  pid=$(<"$file")
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    [[ -d /proc/$pid ]] || break
    sleep 0.1
  done
  if [[ -d /proc/$pid ]]; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -f "$file"
}

host_down() { # host_down ARCH
  local arch=$1 st ns
  st=$(state_dir "$arch")
  ns=$(ns_name "$arch")
  stop_pidfile "$st/run/libvirtd.pid" /usr/sbin/libvirtd
  stop_pidfile "$st/run/sshd.pid" /usr/sbin/sshd
  if ip netns list | grep -qw "$ns"; then ip netns delete "$ns"; fi
  ip link delete "$(veth_name "$arch")" 2>/dev/null || true
}

host_up() { # host_up ARCH IP
  local arch=$1 ip=$2 st ns veth
  st=$(state_dir "$arch")
  ns=$(ns_name "$arch")
  veth=$(veth_name "$arch")
  prepare_state "$arch" "$ip"
  ensure_known_host "$ip" "$st/ssh/ssh_host_ed25519_key.pub"
  if host_healthy "$arch" && ip -n "$ns" -4 addr show | grep -q "inet $ip/"; then
    define_pool "$arch"
    log "$ns ($ip) already up"
    return 0
  fi
  host_down "$arch" # a half-started host from an earlier run
  ip netns add "$ns"
  ip link add "$veth" type veth peer name eth0 netns "$ns"
  ip link set "$veth" master "$BRIDGE" up
  ip -n "$ns" addr add "$ip/24" dev eth0
  ip -n "$ns" link set eth0 up
  # 9>&-: the daemons must not inherit (and hold forever) the lock of this script.
  ip netns exec "$ns" unshare --mount --propagation private "$SCRIPT" _ns-init "$st" 9>&-
  wait_for "sshd.pid of $ns" pid_alive "$st/run/sshd.pid" /usr/sbin/sshd
  wait_for "libvirtd.pid of $ns" pid_alive "$st/run/libvirtd.pid" /usr/sbin/libvirtd
  define_pool "$arch"
  wait_for "sshd on $ip:22" bash -c "exec 3<>/dev/tcp/$ip/22"
  log "$ns ($ip) up"
}

# A tiny ssh wrapper for libvirt's `command=` URI parameter: libvirt's ssh transport spawns the
# ssh binary and ignores known_hosts=, so the known_hosts file and strict checking go in here.
write_ssh_wrapper() {
  local w=$LAB/hv-ssh
  cat >"$w.tmp" <<EOF
#!/bin/sh
exec /usr/bin/ssh -o StrictHostKeyChecking=yes -o 'UserKnownHostsFile=$KNOWN_HOSTS' \\
  -o GlobalKnownHostsFile=/dev/null -o BatchMode=yes -o IdentitiesOnly=yes "\$@"
EOF
  chmod 755 "$w.tmp" && mv "$w.tmp" "$w"
}

host_status() { # host_status ARCH IP
  local arch=$1 ip=$2 ns out
  ns=$(ns_name "$arch")
  if ! host_healthy "$arch"; then
    if pid_alive "$(state_dir "$arch")/run/libvirtd.pid" /usr/sbin/libvirtd && ! arch_ok "$arch"; then
      printf '%-20s %-12s unhealthy: uname -m does not print %s (libvirt.sh up restarts it)\n' "$ns" "$ip" "$arch"
    else
      printf '%-20s %-12s down\n' "$ns" "$ip"
    fi
    return 1
  fi
  # libvirt's ssh transport ignores known_hosts= (a libssh/libssh2 parameter): the lab's
  # known_hosts and StrictHostKeyChecking=yes reach ssh through the command= wrapper instead.
  local uri
  uri=$(printf 'qemu+ssh://root@%s/system?keyfile=%s&no_verify=0&no_tty=1&command=%s' "$ip" "$CLIENT_KEY" "$LAB/hv-ssh")
  if ! out=$(timeout 30 virsh -q -c "$uri" pool-list 2>&1 </dev/null) || [[ ! $out =~ images\ +active ]]; then
    printf '%-20s %-12s unhealthy: %s\n' "$ns" "$ip" "$(tr '\n' ' ' <<<"$out")"
    return 1
  fi
  local machine
  machine=$(timeout 20 "$LAB/hv-ssh" -n -i "$CLIENT_KEY" "root@$ip" uname -m 2>&1) || machine="?"
  printf '%-20s %-12s up (uname -m: %s, pool images active, host key verified)\n' "$ns" "$ip" "$machine"
}

# --- commands ------------------------------------------------------------------------------------

cmd_up() {
  local hosts arch ip
  hosts=$(parse_hosts "$@")
  command -v libvirtd >/dev/null && command -v virsh >/dev/null && command -v sshd >/dev/null ||
    die "libvirt-daemon, libvirt-clients and openssh-server must be installed (scripts/install-deps)"
  mkdir -p "$LAB"
  # One `up`/`down` at a time per lab directory.
  exec 9>"$LAB/hv.lock"
  flock -w 120 9 || die "another libvirt.sh holds $LAB/hv.lock"
  ensure_accounts
  ensure_bridge
  ensure_client_key
  write_ssh_wrapper
  while read -r -u 3 arch ip; do host_up "$arch" "$ip"; done 3<<<"$hosts"
}

cmd_down() {
  local arch ip hosts
  mkdir -p "$LAB"
  exec 9>"$LAB/hv.lock"
  flock -w 120 9 || die "another libvirt.sh holds $LAB/hv.lock"
  if (($# > 0)); then
    hosts=$(parse_hosts "$@")
  else # every host this script ever started here
    hosts=$(for f in "$LAB"/hv-*/host.env; do if [[ -f $f ]]; then (source "$f" && echo "$ARCH $IP"); fi; done)
  fi
  # (An if, not &&: with no hosts the loop's last status would be false and fail the script.)
  while read -r -u 3 arch ip; do
    if [[ -n $arch ]]; then host_down "$arch" && log "$(ns_name "$arch") down"; fi
  done 3<<<"$hosts"
  # Remove the bridge only if this script created it and nothing else is attached to it.
  if [[ -f $LAB/.hv-created-bridge ]] && [[ -d /sys/class/net/$BRIDGE/brif ]] &&
    [[ -z $(ls -A "/sys/class/net/$BRIDGE/brif") ]]; then
    ip link delete "$BRIDGE" && rm -f "$LAB/.hv-created-bridge"
  fi
}

cmd_status() {
  local hosts arch ip rc=0
  hosts=$(parse_hosts "$@")
  [[ -x $LAB/hv-ssh ]] || { log "not set up: run libvirt.sh up"; return 1; }
  while read -r -u 3 arch ip; do host_status "$arch" "$ip" || rc=1; done 3<<<"$hosts"
  return $rc
}

[[ $(id -u) == 0 ]] || die "must run as root (network namespaces, bind mounts)"
case ${1:-} in
  up) shift && cmd_up "$@" ;;
  down) shift && cmd_down "$@" ;;
  status) shift && cmd_status "$@" ;;
  _ns-init) ns_init "$2" ;;
  *) die "usage: libvirt.sh up|down|status [ARCH:IP ...]" ;;
esac
