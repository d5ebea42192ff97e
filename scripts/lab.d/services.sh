# The lab's parts besides the worker hosts, each run by its own script in lab.d/services/:
#   hypervisors  libvirt.sh   two libvirt hosts, 10.231.0.21 (x86_64) and .22 (ppc64le)
#   openstack    openstack.sh Keystone 127.0.0.1:15000, Glance 127.0.0.1:19292
#   cloud        cloud.sh     S3 :19000, AWS fake :19001, IBM fake :19002, IBM COS :19003 (env file)
#   azure        azure.sh     Azurite https :19010, Entra ID + ARM fake https :19011 (env file)
#   registry     registry.sh  docker-registry https://10.231.0.30:5000 (lab CA, htpasswd; env file),
#                             seeded with farm-lab/base:latest, a four-arch list of the lab base
# Shared state: the worker hosts create the bridge and rewrite their known_hosts lines (keeping
# every other line) before libvirt.sh plugs in and adds or replaces only its own; both writers
# also take known_hosts.lock, so a libvirt.sh run by a test at the same time loses nothing.
# openstack and cloud touch neither known_hosts nor the bridge. The registry plugs into the bridge
# (making it if need be) and seeds its list from images.sh's base tarball: after the workers, which
# make that tarball, so the two never build it at once.

LAB_PARTS=(workers hypervisors openstack cloud azure registry)
LAB_SERVICES="$LAB_D/services"

# Parses a --only list (comma-separated; `libvirt` is an alias of hypervisors) into LAB_SELECTED.
# Without one: $FARM_LAB_ONLY, else every part.
select_parts() {
  local list=${1:-${FARM_LAB_ONLY:-}} p known
  LAB_SELECTED=()
  if [[ -z $list ]]; then
    LAB_SELECTED=("${LAB_PARTS[@]}")
    return 0
  fi
  for p in ${list//,/ }; do
    [[ $p == libvirt ]] && p=hypervisors
    known=0
    for k in "${LAB_PARTS[@]}"; do [[ $p == "$k" ]] && known=1; done
    ((known)) || die "unknown lab part '$p' in --only: use ${LAB_PARTS[*]} (comma-separated)"
    LAB_SELECTED+=("$p")
  done
}

selected() {
  local p
  for p in "${LAB_SELECTED[@]}"; do [[ $p == "$1" ]] && return 0; done
  return 1
}

# Runs a service script; fd 9 (our lock) is not passed on.
run_service() {
  local name=$1
  shift
  "$LAB_SERVICES/$name.sh" "$@" 9>&-
}

# Keystone/Glance and the cloud fakes share nothing with the hosts (no bridge, no known_hosts):
# they start in the background while the hosts come up (a cold Keystone setup takes a while).
# Their output interleaves with ours; every line names its script.
LAB_BG_PIDS=()
LAB_BG_NAMES=()

services_start_background() {
  local name
  for name in openstack cloud azure; do
    selected "$name" || continue
    run_service "$name" up &
    LAB_BG_PIDS+=($!)
    LAB_BG_NAMES+=("$name")
  done
}

# Waits for the background starts; status 1 (after all have finished) if any failed.
services_wait_background() {
  local i failed=0
  for i in "${!LAB_BG_PIDS[@]}"; do
    if ! wait "${LAB_BG_PIDS[$i]}"; then
      log "${LAB_BG_NAMES[$i]} did not come up (${LAB_BG_NAMES[$i]}.sh up; see its messages above)"
      failed=1
    fi
  done
  LAB_BG_PIDS=()
  LAB_BG_NAMES=()
  return $failed
}

# The hypervisors plug into the bridge and add their known_hosts lines: after the workers.
services_up_hypervisors() {
  if selected hypervisors; then run_service libvirt up || die "hypervisors did not come up (libvirt.sh up)"; fi
}

# After the workers too: it puts its CA into their containers views and seeds from the base tarball.
services_up_registry() {
  if selected registry; then run_service registry up || die "the registry did not come up (registry.sh up)"; fi
}

# Reverse order of up. State is kept unless purging.
services_down() {
  local purge=${1:-} st
  if selected registry; then run_service registry down $purge || log "registry.sh down failed"; fi
  if selected azure; then run_service azure down $purge || log "azure.sh down failed"; fi
  if selected cloud; then run_service cloud down $purge || log "cloud.sh down failed"; fi
  if selected openstack; then run_service openstack down $purge || log "openstack.sh down failed"; fi
  if selected hypervisors; then
    run_service libvirt down || log "libvirt.sh down failed"
    if [[ $purge == --purge ]]; then
      for st in "$LAB_DIR"/hv-*/; do [[ -f $st/host.env ]] && rm -rf "$st"; done
      rm -f "$LAB_DIR/hv-ssh" "$LAB_DIR/.hv-created-bridge"
    fi
  fi
}

# One section per service; status 1 if any is down.
services_status() {
  local ok=0
  if selected hypervisors; then
    echo "# hypervisors (libvirt.sh status)"
    run_service libvirt status 2>&1 || ok=1
  fi
  if selected openstack; then
    echo "# openstack (openstack.sh status)"
    run_service openstack status 2>&1 || ok=1
  fi
  if selected cloud; then
    echo "# cloud fakes (cloud.sh status; env: $(run_service cloud env))"
    run_service cloud status 2>&1 || ok=1
  fi
  if selected azure; then
    echo "# azure (azure.sh status; env: $(run_service azure env))"
    run_service azure status 2>&1 || ok=1
  fi
  if selected registry; then
    echo "# registry (registry.sh status; env: $(run_service registry env))"
    run_service registry status 2>&1 || ok=1
  fi
  return $ok
}
