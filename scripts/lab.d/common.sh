# Shared settings and helpers of scripts/lab (sourced, not run).
# The lab: one network namespace + mount namespace per worker "host" on bridge farmlab0.

LAB_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LAB_D="$LAB_REPO/scripts/lab.d"
LAB_DIR=${FARM_LAB_DIR:-$LAB_REPO/.lab}

LAB_BRIDGE=farmlab0
LAB_BRIDGE_ADDR=10.231.0.1
LAB_PREFIX=24
LAB_ARCHES=(x86_64 aarch64 ppc64le s390x)

LAB_BASE_IMAGE=localhost/farm-lab/base:latest
LAB_BIB_IMAGE=localhost/farm-lab/bootc-image-builder:latest

# Bounded waits (seconds).
LAB_SSHD_WAIT=20
LAB_PODMAN_WAIT=20
LAB_STOP_WAIT=10

# Per-host names, all derived from the arch.
host_name() { echo "lab-$1"; }
host_ns() { echo "farmlab-$1"; }
host_veth() { echo "fl-$1"; } # root-side veth; interface names are limited to 15 characters
host_addr() {
  local i
  for i in "${!LAB_ARCHES[@]}"; do
    [[ ${LAB_ARCHES[$i]} == "$1" ]] && { echo "10.231.0.$((11 + i))"; return 0; }
  done
  return 1
}
host_dir() { echo "$LAB_DIR/hosts/$(host_name "$1")"; }

# Accepts lab-x86_64, x86_64 or 10.231.0.11; prints the arch.
resolve_host() {
  local want=$1 a
  for a in "${LAB_ARCHES[@]}"; do
    if [[ $want == "$a" || $want == "$(host_name "$a")" || $want == "$(host_addr "$a")" ]]; then
      echo "$a"
      return 0
    fi
  done
  die "unknown lab host '$want': use one of ${LAB_ARCHES[*]/#/lab-} (or just the arch)"
}

log() { printf 'lab: %s\n' "$*" >&2; }
die() {
  printf 'lab: error: %s\n' "$*" >&2
  exit 1
}

need_root() { [[ $(id -u) == 0 ]] || die "the lab needs root (network and mount namespaces): run it as root"; }

need_tools() {
  local t missing=()
  for t in "$@"; do command -v "$t" >/dev/null 2>&1 || missing+=("$t"); done
  ((${#missing[@]} == 0)) || die "missing tools: ${missing[*]}; run scripts/install-deps"
}

# PID from a pid file if that process is alive, else nothing (status 1).
live_pid() {
  local f=$1 pid
  [[ -s $f ]] || return 1
  pid=$(<"$f")
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

# The host's sshd PID, only if it really is in the host's network namespace (guards against
# a recycled PID after a crash).
host_pid() {
  local arch=$1 pid ns
  pid=$(live_pid "$(host_dir "$arch")/sshd.pid") || return 1
  ns=$(host_ns "$arch")
  [[ -e /run/netns/$ns ]] || return 1
  [[ $(stat -L -c %i "/proc/$pid/ns/net" 2>/dev/null) == "$(stat -L -c %i "/run/netns/$ns" 2>/dev/null)" ]] || return 1
  echo "$pid"
}

# Runs a command inside a running host's network, mount and UTS namespaces.
host_run() {
  local arch=$1 pid
  shift
  pid=$(host_pid "$arch") || die "$(host_name "$arch") is not running: run scripts/lab up"
  nsenter --target "$pid" --net --mount --uts -- "$@"
}

# Waits until a TCP port accepts connections, up to $3 seconds.
wait_tcp() {
  local addr=$1 port=$2 limit=$3 start=$SECONDS
  while ((SECONDS - start < limit)); do
    timeout 1 bash -c "exec 3<>/dev/tcp/$addr/$port" 2>/dev/null && return 0
    sleep 0.2
  done
  return 1
}

# sshd's StrictModes refuses keys below a world-writable directory such as /tmp, so a lab that lives
# there (a clone in /tmp) turns it off; everything in the lab belongs to root either way.
lab_strict_modes() {
  case "$LAB_DIR/" in /tmp/* | /var/tmp/*) echo no ;; *) echo yes ;; esac
}

# A pool host (scripts/lab.d/resalloc makes one per ticket) has names of its own: with
# FARM_LAB_POOL_HOST=N set, the per-host names above refer to it, whatever arch is asked.
if [[ -n ${FARM_LAB_POOL_HOST:-} ]]; then . "$LAB_D/pool-names.sh"; fi
