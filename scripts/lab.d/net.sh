# The lab's network: bridge farmlab0 in the root namespace, one namespace per host with a veth
# into the bridge. No default route in the hosts: they reach only the lab subnet.
# The bridge may be shared with other parts of the lab (they add their own veths); whoever comes
# first creates it and it goes only when no foreign port is left on it.

net_bridge_up() {
  if ! ip link show "$LAB_BRIDGE" >/dev/null 2>&1; then
    ip link add "$LAB_BRIDGE" type bridge
  fi
  # Output captured first: `grep -q` closing the pipe early would fail the pipeline (pipefail).
  if [[ $(ip -o addr show dev "$LAB_BRIDGE") != *" $LAB_BRIDGE_ADDR/$LAB_PREFIX "* ]]; then
    ip addr add "$LAB_BRIDGE_ADDR/$LAB_PREFIX" dev "$LAB_BRIDGE"
  fi
  ip link set "$LAB_BRIDGE" up
}

net_bridge_down() {
  local others
  ip link show "$LAB_BRIDGE" >/dev/null 2>&1 || return 0
  # Other lab parts (e.g. hypervisor hosts) may plug into the same bridge: leave it to them.
  others=$(ip -o link show master "$LAB_BRIDGE" | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -v '^fl-' || true)
  if [[ -n $others ]]; then
    log "keeping bridge $LAB_BRIDGE: still used by $(echo $others)"
    return 0
  fi
  ip link del "$LAB_BRIDGE"
}

net_host_up() {
  local arch=$1 ns veth addr
  ns=$(host_ns "$arch")
  veth=$(host_veth "$arch")
  addr=$(host_addr "$arch")
  [[ -e /run/netns/$ns ]] || ip netns add "$ns"
  if ! ip link show "$veth" >/dev/null 2>&1; then
    # A leftover eth0 in the namespace (root side lost) would block the new pair.
    ip -n "$ns" link del eth0 2>/dev/null || true
    ip link add "$veth" type veth peer name eth0 netns "$ns"
  fi
  ip link set "$veth" master "$LAB_BRIDGE"
  ip link set "$veth" up
  ip -n "$ns" link set lo up
  if [[ $(ip -n "$ns" -o addr show dev eth0) != *" $addr/$LAB_PREFIX "* ]]; then
    ip -n "$ns" addr add "$addr/$LAB_PREFIX" dev eth0
  fi
  ip -n "$ns" link set eth0 up
}

net_host_down() {
  local arch=$1 ns veth
  ns=$(host_ns "$arch")
  veth=$(host_veth "$arch")
  if [[ -e /run/netns/$ns ]]; then
    ip netns del "$ns"
  fi
  # Deleting the namespace deletes its end of the pair and with it ours, asynchronously: a
  # leftover may vanish between the check and the delete.
  if ip link show "$veth" >/dev/null 2>&1; then
    ip link del "$veth" 2>/dev/null || ! ip link show "$veth" >/dev/null 2>&1 ||
      die "cannot delete interface $veth"
  fi
}
