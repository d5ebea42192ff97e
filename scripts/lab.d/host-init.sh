#!/bin/bash
# The "boot" of one lab host. scripts/lab runs it as
#   ip netns exec farmlab-ARCH unshare --mount --uts --propagation private -- host-init.sh ARCH
# so everything mounted here is private to the host. It ends by exec'ing sshd, so the PID that
# scripts/lab started is the host's sshd and every SSH session lands in these namespaces.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

arch=$1
name=$(host_name "$arch")
hd=$(host_dir "$arch")
readlink /proc/self/ns/mnt >"$hd/mntns"

# `ip netns exec` remounts /sys for the network namespace, which drops the cgroup mounts
# under /sys/fs/cgroup that runc needs. Mount the same hierarchies again (cgroup v1 allows
# mounting a hierarchy twice with the same options); PID 1's mounts name them.
mount -t tmpfs -o mode=755 cgroup-root /sys/fs/cgroup
while read -r src dir type opts _; do
  case $type in
    cgroup | cgroup2)
      mkdir -p "$dir"
      mount -t "$type" -o "$opts" "$src" "$dir"
      ;;
  esac
done < <(awk '$2 ~ "^/sys/fs/cgroup/" && ($3 == "cgroup" || $3 == "cgroup2")' /proc/1/mounts)

# Own /run (podman's runroot, sshd's privilege separation dir) and /dev/shm (podman's lock
# table, which would otherwise be shared with every other podman on the machine).
mount -t tmpfs -o mode=755,nosuid,nodev tmpfs /run
mkdir -p /run/sshd /run/podman /run/lock
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
# A pool host's data disk (a loop device, scripts/lab.d/resalloc): a stable name inside the host,
# as a VM's second disk has (/dev cannot be changed per host, /run can).
if [[ -s $hd/data-loop ]]; then
  mkdir -p /run/lab-disks
  ln -sfn "$(<"$hd/data-loop")" /run/lab-disks/data
fi

# Own disks.
mount --bind "$hd/storage" /var/lib/containers/storage
mount --bind "$hd/var-lib-farm" /var/lib/farm
mount --bind "$hd/var-lib-cni" /var/lib/cni # CNI's IP allocations
mount --bind "$hd/var-tmp" /var/tmp
# An own /tmp, unless the lab itself lives under /tmp (a clone there): mounting over /tmp would
# hide the host's keys and config from its own sshd. The hosts then share the machine's /tmp.
case "$LAB_DIR/" in
  /tmp/*) ;;
  *) mount --bind "$hd/tmp" /tmp ;;
esac

# Own home for root, as a real host has: SSH sessions must not run this machine's dotfiles (a
# ~/.bashrc that bash sources under sshd, pyenv's init in it costing 0.2 s per command).
# Keys live under the lab dir (AuthorizedKeysFile), so an empty home is enough.
mount --bind "$hd/home" /root

# Pretend to be ARCH for `uname -m` and `arch`.
mount --bind "$hd/uname" /usr/bin/uname
mount --bind "$hd/arch" /usr/bin/arch

# Written directly: the hostname tool rejects the underscore in lab-x86_64.
echo "$name" >/proc/sys/kernel/hostname

cd /
export HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
unset TMPDIR XDG_RUNTIME_DIR

# podman's API service for this host; its PID goes in a pid file for `lab down`.
podman system service --time=0 unix:///run/podman/podman.sock </dev/null >>"$hd/podman.log" 2>&1 &
echo $! >"$hd/podman.pid"

exec /usr/sbin/sshd -D -f "$hd/sshd_config" -E "$hd/sshd.log"
