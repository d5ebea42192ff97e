# Names of pool host N (FARM_LAB_POOL_HOST=N, 1..89): the lab's per-host helpers (hosts.sh,
# net.sh, images.sh, host-init.sh) take an arch and derive names from it; for a pool host they
# derive them from N instead, so the same code makes, boots and stops it. (Sourced by common.sh.)
[[ $FARM_LAB_POOL_HOST =~ ^[1-9][0-9]?$ ]] && ((FARM_LAB_POOL_HOST < 90)) ||
  { echo "lab: FARM_LAB_POOL_HOST must be 1..89, not '$FARM_LAB_POOL_HOST'" >&2; exit 2; }
host_name() { echo "pool-$FARM_LAB_POOL_HOST"; }
host_ns() { echo "farmpool-$FARM_LAB_POOL_HOST"; }
host_veth() { echo "fp-$FARM_LAB_POOL_HOST"; }
host_addr() { echo "10.231.0.$((100 + FARM_LAB_POOL_HOST))"; }
host_dir() { echo "$LAB_DIR/pool/hosts/pool-$FARM_LAB_POOL_HOST"; }
