#!/usr/bin/env bash
# The lab's container registry: Debian's docker-registry (distribution 2.8) with the lab's own
# config (never /etc/docker/registry), in a network namespace of its own on the lab bridge:
#   https://10.231.0.30:5000   TLS from a lab CA, htpasswd (bcrypt) auth for user farm-lab
# The worker hosts trust the CA (certs.d in their /etc/containers view); the coordinator's tools
# are told through the env file. `up` seeds REG/farm-lab/base:latest, a four-arch OCI image index
# made from the lab's base image (images.sh): per arch, the base layer plus a layer with
# /usr/share/farm/arch (the lab arch name) and /usr/share/farm/list (the list's id), and a config
# whose architecture is that arch (amd64, arm64, ppc64le, s390x). Built as files, no emulation.
#
#   registry.sh up                     start (first run: CA, certificate, user); seed; idempotent
#   registry.sh down [--purge]         stop our process (by its pid file) and remove the namespace;
#                                      --purge also deletes the state (CA, data, secrets) and the
#                                      hosts' trust of the CA
#   registry.sh status                 pid, TLS with the lab CA, anonymous and wrong password
#                                      refused, lab user accepted, the seeded list's digest
#   registry.sh env                    print the env file's path (FARM_LAB_REGISTRY=host:port,
#                                      FARM_LAB_REGISTRY_CA, FARM_LAB_REGISTRY_CERT_DIR, REGISTRY_AUTH_FILE,
#                                      FARM_LAB_REGISTRY_IMAGE, FARM_CERTS_D)
#   registry.sh push-new-list REPO:TAG [--id ID] [--arches A,B,..]
#                                      push a new list (marker /usr/share/farm/list = ID, default
#                                      random; every lab arch unless --arches) as REPO:TAG; prints
#                                      its digest. REPO:TAG may start with the registry's host:port.
#   registry.sh trust-hosts            (re)install the CA into each worker host's certs.d
#
# State in $FARM_LAB_DIR/registry (0700): tls/ (ca.key and registry.key 0600), certs.d/HOST:PORT/
# ca.crt (what podman's and skopeo's --cert-dir read), secrets/password (0600, never printed),
# htpasswd and auth.json (0600), config.yml (0600), data/, registry.log, registry.pid, env.
set -euo pipefail

SCRIPT=$(readlink -f "${BASH_SOURCE[0]}")
# The lab's names (arches, host namespaces, bridge) and images.sh's base tarball.
. "$(dirname "$SCRIPT")/../common.sh"
. "$LAB_D/net.sh"
. "$LAB_D/images.sh"
. "$LAB_D/oci-list.sh"

readonly ADDR=10.231.0.30
readonly PORT=5000
readonly REG=$ADDR:$PORT
readonly NS=farmlab-registry
readonly VETH=vreg-farmlab # root side; not fl-*, which scripts/lab takes for its own hosts' ports
# The namespace's eth0 keeps one (locally administered) MAC address: a new one after a down/up
# would leave the coordinator's and the hosts' neighbour entries pointing at the old one, and
# connections hanging until those expire.
readonly MAC=02:66:6c:00:00:1e
readonly USER_NAME=farm-lab
readonly SEED_REPO=farm-lab/base
readonly SEED_TAG=latest
readonly EXE=/usr/bin/docker-registry
# Bounded waits (seconds).
readonly START_WAIT=30
readonly STOP_WAIT=10

STATE=$LAB_DIR/registry
TLS=$STATE/tls
CERT_DIR=$STATE/certs.d/$REG
SECRETS=$STATE/secrets
CONFIG=$STATE/config.yml
PIDFILE=$STATE/registry.pid
LOG=$STATE/registry.log
ENV_FILE=$STATE/env
AUTH_FILE=$STATE/auth.json
HTPASSWD=$STATE/htpasswd
OCI_CACHE=$STATE/cache # oci-list.sh keeps the gzipped base layer here

SERVICE=registry
DAEMON=docker-registry
# shellcheck source=daemon.sh
. "$(dirname "${BASH_SOURCE[0]}")/daemon.sh"

# --- the process ------------------------------------------------------------------------------

# The pid in the pid file if that process is ours: docker-registry serving our config inside our
# namespace (a reused pid belongs to someone else).
our_pid() {
  local pid
  [[ -s $PIDFILE ]] || return 1
  pid=$(<"$PIDFILE")
  [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" || return 1
  [[ $(readlink "/proc/$pid/exe" 2>/dev/null) == "$EXE" ]] || return 1
  [[ $(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") == *" $CONFIG "* ]] || return 1
  [[ -e /run/netns/$NS && $(stat -L -c %i "/proc/$pid/ns/net" 2>/dev/null) == "$(stat -L -c %i "/run/netns/$NS")" ]] || return 1
  echo "$pid"
}

# The registry's namespace with its address on the lab bridge (created if the workers have not).
ns_up() {
  if ! ip link show "$LAB_BRIDGE" >/dev/null 2>&1; then
    net_bridge_up
    touch "$STATE/.created-bridge"
  else
    net_bridge_up
  fi
  [[ -e /run/netns/$NS ]] || ip netns add "$NS"
  if ! ip link show "$VETH" >/dev/null 2>&1; then
    ip -n "$NS" link del eth0 2>/dev/null || true
    ip link add "$VETH" type veth peer name eth0 address "$MAC" netns "$NS"
    # An entry from before the fixed address (or from anybody's other use of it) is forgotten.
    ip neigh del "$ADDR" dev "$LAB_BRIDGE" 2>/dev/null || true
  fi
  if [[ $(ip -n "$NS" -o link show dev eth0) != *" link/ether $MAC "* ]]; then
    ip -n "$NS" link set eth0 down
    ip -n "$NS" link set eth0 address "$MAC"
  fi
  ip link set "$VETH" master "$LAB_BRIDGE" up
  ip -n "$NS" link set lo up
  if [[ $(ip -n "$NS" -o addr show dev eth0) != *" $ADDR/$LAB_PREFIX "* ]]; then
    ip -n "$NS" addr add "$ADDR/$LAB_PREFIX" dev eth0
  fi
  ip -n "$NS" link set eth0 up
}

ns_down() {
  [[ -e /run/netns/$NS ]] && ip netns del "$NS"
  ip link del "$VETH" 2>/dev/null || true
  # The bridge goes only if this script made it and nothing is plugged into it any more.
  if [[ -f $STATE/.created-bridge && -d /sys/class/net/$LAB_BRIDGE/brif && -z $(ls -A "/sys/class/net/$LAB_BRIDGE/brif") ]]; then
    ip link del "$LAB_BRIDGE" && rm -f "$STATE/.created-bridge"
  fi
}

# Closes every descriptor above stdio this (sub)shell has (bash's own script descriptor, 255,
# stays).
close_inherited_fds() {
  local fd
  for fd in /proc/"$BASHPID"/fd/*; do
    fd=${fd##*/}
    if ((fd > 2 && fd < 255)); then eval "exec $fd>&-"; fi
  done
}

# HTTP status of GET /v2/ over TLS checked against the lab CA; curl's config (credentials
# included) comes on stdin, never in argv.
v2_status() {
  curl -s -o /dev/null -w '%{http_code}' --max-time 5 --cacert "$TLS/ca.crt" -K - "https://$REG/v2/" || true
}

# What the registry reads once, at start: a running one with other inputs is restarted.
inputs_hash() { cat "$CONFIG" "$TLS/registry.crt" "$TLS/registry.key" "$HTPASSWD" | sha256sum | cut -d' ' -f1; }

start() {
  local pid start=$SECONDS inputs
  inputs=$(inputs_hash)
  if pid=$(our_pid); then
    if [[ $(cat "$STATE/registry.inputs" 2>/dev/null) != "$inputs" ]]; then
      log "docker-registry (pid $pid) runs with an older config, certificate or htpasswd; restarting it"
      stop_ours
    elif [[ $(v2_status </dev/null) == 401 ]]; then
      log "docker-registry already running (pid $pid)"
      return 0
    else
      log "docker-registry (pid $pid) does not answer on $REG; restarting it"
      stop_ours
    fi
  fi
  if [[ -f $LOG ]] && (($(stat -c %s "$LOG") > 20 << 20)); then mv -f "$LOG" "$LOG.1"; fi
  log "starting docker-registry on https://$REG"
  # A clean environment: distribution reads REGISTRY_* variables as config overrides, and the
  # lab's own env exports REGISTRY_AUTH_FILE (which it would take for auth.file). Its own session,
  # and no descriptor but stdio: fd 9 is our lock, and a caller's `flock /work/.lab-turn` passes
  # its lock on too, which a daemon would hold for the lab's whole life. The subshell, setsid,
  # ip netns exec and env all exec, so $! is the registry's pid.
  (
    close_inherited_fds
    exec setsid ip netns exec "$NS" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$EXE" serve "$CONFIG" \
      </dev/null >>"$LOG" 2>&1
  ) &
  pid=$!
  echo "$pid" >"$PIDFILE"
  echo "$inputs" >"$STATE/registry.inputs"
  until [[ $(v2_status </dev/null) == 401 ]]; do
    if ! alive "$pid"; then
      tail -n 15 "$LOG" >&2 || true
      rm -f "$PIDFILE"
      die "docker-registry exited during start-up; see $LOG"
    fi
    if ((SECONDS - start >= START_WAIT)); then
      stop_ours
      die "docker-registry did not answer on https://$REG within ${START_WAIT} s; see $LOG"
    fi
    sleep 0.2
  done
  log "up in $((SECONDS - start)) s (pid $pid)"
}

# --- configuration (first run; kept across down/up) --------------------------------------------

# The lab CA, made once. Its key never leaves tls/.
make_ca() {
  [[ -s $TLS/ca.key && -s $TLS/ca.crt ]] && return 0
  log "making the lab CA ($TLS/ca.crt)"
  (umask 077 && openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 \
    -days 3650 -subj "/O=farm lab/CN=farm lab registry CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$TLS/ca.key.tmp" -out "$TLS/ca.crt.tmp" 2>/dev/null) || die "openssl could not make the lab CA"
  chmod 644 "$TLS/ca.crt.tmp"
  mv -f "$TLS/ca.key.tmp" "$TLS/ca.key"
  mv -f "$TLS/ca.crt.tmp" "$TLS/ca.crt"
  rm -f "$TLS/registry.crt" # a certificate from an earlier CA
}

# The registry's certificate for its address, renewed when it is missing, not from the lab CA,
# names another address, or ends within 30 days.
make_cert() {
  local crt=$TLS/registry.crt
  if [[ -s $crt && -s $TLS/registry.key ]] &&
    openssl verify -CAfile "$TLS/ca.crt" "$crt" >/dev/null 2>&1 &&
    openssl x509 -in "$crt" -noout -checkend $((30 * 86400)) >/dev/null 2>&1 &&
    [[ $(openssl x509 -in "$crt" -noout -ext subjectAltName 2>/dev/null) == *"IP Address:$ADDR"* ]]; then
    return 0
  fi
  log "making the registry's certificate for $ADDR"
  (
    umask 077
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 \
      -subj "/O=farm lab/CN=$ADDR" -keyout "$TLS/registry.key.tmp" -out "$TLS/registry.csr" 2>/dev/null
    openssl x509 -req -in "$TLS/registry.csr" -CA "$TLS/ca.crt" -CAkey "$TLS/ca.key" \
      -set_serial "0x$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')" -days 825 -sha256 \
      -extfile <(printf '%s\n' "subjectAltName=IP:$ADDR" "basicConstraints=critical,CA:FALSE" \
        "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth") \
      -out "$TLS/registry.crt.tmp" 2>/dev/null
  ) || die "openssl could not make the registry's certificate"
  chmod 644 "$TLS/registry.crt.tmp"
  mv -f "$TLS/registry.key.tmp" "$TLS/registry.key"
  mv -f "$TLS/registry.crt.tmp" "$crt"
  rm -f "$TLS/registry.csr"
}

new_secret() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }

# The lab user's random password (made once), its bcrypt line for the registry and auth.json for
# clients. The password reaches htpasswd and base64 on stdin only.
make_user() {
  [[ -s $SECRETS/password ]] || (umask 077 && new_secret >"$SECRETS/password.tmp" && mv -f "$SECRETS/password.tmp" "$SECRETS/password")
  local pw
  pw=$(<"$SECRETS/password")
  # Kept while it still matches the password (htpasswd -v checks; bcrypt hashes differ per run).
  if [[ ! -s $HTPASSWD ]] || ! htpasswd -v -i "$HTPASSWD" "$USER_NAME" <<<"$pw" >/dev/null 2>&1; then
    # bcrypt's default cost (5): every request is checked, and the password is 24 random bytes.
    (umask 077 && htpasswd -B -i -c "$HTPASSWD.tmp" "$USER_NAME" <<<"$pw" 2>/dev/null) || die "htpasswd failed"
    mv -f "$HTPASSWD.tmp" "$HTPASSWD"
  fi
  (umask 077 && printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$REG" "$(printf '%s:%s' "$USER_NAME" "$pw" | base64 -w0)" >"$AUTH_FILE.tmp")
  mv -f "$AUTH_FILE.tmp" "$AUTH_FILE"
}

write_config() {
  local secret
  [[ -s $SECRETS/http-secret ]] || (umask 077 && new_secret >"$SECRETS/http-secret")
  secret=$(<"$SECRETS/http-secret")
  (umask 077 && cat >"$CONFIG.tmp" <<EOF
# docker-registry of the farm lab (generated by scripts/lab.d/services/registry.sh)
version: 0.1
log:
  level: info
  formatter: text
  fields:
    service: farm-lab-registry
storage:
  filesystem:
    rootdirectory: $STATE/data
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: $REG
  secret: $secret
  tls:
    certificate: $TLS/registry.crt
    key: $TLS/registry.key
  headers:
    X-Content-Type-Options: [nosniff]
auth:
  htpasswd:
    realm: farm-lab-registry
    path: $HTPASSWD
EOF
  )
  mv -f "$CONFIG.tmp" "$CONFIG"
}

write_env() {
  local tmp
  tmp=$(mktemp "$ENV_FILE.XXXXXX")
  cat >"$tmp" <<EOF
# The lab registry (scripts/lab.d/services/registry.sh): https://$REG, user $USER_NAME (auth.json)
export FARM_LAB_REGISTRY='$REG'
export FARM_LAB_REGISTRY_CA='$TLS/ca.crt'
export FARM_LAB_REGISTRY_CERT_DIR='$CERT_DIR'
# A certs.d root (HOST:PORT/ca.crt) the farm's own registry client reads, as podman reads /etc/containers/certs.d.
export FARM_CERTS_D='$STATE/certs.d'
export FARM_LAB_REGISTRY_IMAGE='$REG/$SEED_REPO:$SEED_TAG'
export REGISTRY_AUTH_FILE='$AUTH_FILE'
EOF
  chmod 644 "$tmp"
  mv -f "$tmp" "$ENV_FILE"
}

configure() {
  (umask 077 && mkdir -p "$STATE" "$TLS" "$SECRETS")
  chmod 700 "$STATE" "$TLS" "$SECRETS"
  mkdir -p "$STATE/data" "$CERT_DIR"
  make_ca
  make_cert
  install -m 644 "$TLS/ca.crt" "$CERT_DIR/ca.crt"
  make_user
  write_config
  write_env
}

# The CA in each worker host's /etc/containers view (ip netns exec bind-mounts
# /etc/netns/NS/containers there, so a running host sees it at once). hosts.sh copies it too when
# it prepares a host.
trust_hosts() {
  local a etc
  for a in "${LAB_ARCHES[@]}"; do
    etc=/etc/netns/$(host_ns "$a")/containers
    [[ -d $etc ]] || continue
    mkdir -p "$etc/certs.d/$REG"
    install -m 644 "$CERT_DIR/ca.crt" "$etc/certs.d/$REG/ca.crt"
  done
}

untrust_hosts() {
  local a
  for a in "${LAB_ARCHES[@]}"; do rm -rf "/etc/netns/$(host_ns "$a")/containers/certs.d/$REG"; done
}

# --- the lists (built by lab.d/oci-list.sh) ---------------------------------------------------

# The digest REPO:TAG names in the registry (HEAD, as a client that takes lists asks), or nothing.
remote_digest() {
  local repo=$1 tag=$2 headers
  headers=$(curl -sS -I --max-time 10 --cacert "$TLS/ca.crt" -K - \
    -H 'Accept: application/vnd.oci.image.index.v1+json' \
    -H 'Accept: application/vnd.docker.distribution.manifest.list.v2+json' \
    -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    "https://$REG/v2/$repo/manifests/$tag" <<<"user = \"$USER_NAME:$(<"$SECRETS/password")\"") ||
    die "HEAD https://$REG/v2/$repo/manifests/$tag failed"
  [[ $headers =~ ^HTTP/[0-9.]+\ 200 ]] || return 0
  sed -n 's/^[Dd]ocker-[Cc]ontent-[Dd]igest: *\(sha256:[0-9a-f]*\).*/\1/p' <<<"$headers"
}

# Pushes the layout's list as REPO:TAG with skopeo (digests preserved, so what the registry holds
# is byte for byte what was built) and checks the registry's answer.
push_list() {
  local dir=$1 repo=$2 tag=$3 digest=$4 out got
  if ! out=$(skopeo copy --quiet --all --preserve-digests --dest-authfile "$AUTH_FILE" --dest-cert-dir "$CERT_DIR" \
    "oci:$dir:list" "docker://$REG/$repo:$tag" 2>&1); then
    die "skopeo copy to $REG/$repo:$tag failed: $out"
  fi
  got=$(remote_digest "$repo" "$tag")
  [[ $got == "$digest" ]] || die "pushed $digest as $REG/$repo:$tag, but the registry answers '${got:-nothing}'"
}

# The seed: every lab arch, id "seed", timestamps at the epoch (reproducible). Pushed only when
# the registry's tag names another digest (or none).
seed() {
  local dir digest current start=$SECONDS
  # Left by a run that failed half-way (we hold the lock, so no push is under way).
  rm -rf "$STATE/work"
  mkdir -p "$STATE/work"
  dir=$(mktemp -d "$STATE/work/seed.XXXXXX")
  digest=$(build_list "$dir" seed 1970-01-01T00:00:00Z "${LAB_ARCHES[@]}")
  current=$(remote_digest "$SEED_REPO" "$SEED_TAG")
  if [[ $current == "$digest" ]]; then
    log "$REG/$SEED_REPO:$SEED_TAG already holds the seed list ($digest)"
  else
    push_list "$dir" "$SEED_REPO" "$SEED_TAG" "$digest"
    log "seeded $REG/$SEED_REPO:$SEED_TAG with $digest (${LAB_ARCHES[*]}) in $((SECONDS - start)) s"
  fi
  rm -rf "$dir"
}

# --- commands ----------------------------------------------------------------------------------

cmd_up() {
  need_root
  need_tools ip openssl htpasswd skopeo jq curl gzip tar sha256sum
  [[ -x $EXE ]] || die "$EXE is missing; run scripts/install-deps (package docker-registry)"
  lock
  configure
  ns_up
  start
  trust_hosts
  seed
}

cmd_down() {
  local purge=${1:-}
  [[ -z $purge || $purge == --purge ]] || die "usage: registry.sh down [--purge]"
  need_root
  lock
  stop_ours
  ns_down
  if [[ $purge == --purge ]]; then
    untrust_hosts
    rm -rf "$STATE"
    log "state deleted"
  fi
}

cmd_status() {
  local pid ok=0 code digest manifests
  if ! pid=$(our_pid); then
    printf '%-9s %-18s %s\n' registry "$REG" "down (not running)"
    return 1
  fi
  code=$(v2_status </dev/null)
  if [[ $code != 401 ]]; then
    printf '%-9s %-18s %s\n' registry "$REG" "unhealthy (pid $pid): anonymous GET /v2/ over TLS with the lab CA gave '$code', not 401"
    return 1
  fi
  code=$(v2_status <<<"user = \"$USER_NAME:wrong-$(new_secret)\"")
  [[ $code == 401 ]] || { log "a wrong password got '$code', not 401"; ok=1; }
  code=$(v2_status <<<"user = \"$USER_NAME:$(<"$SECRETS/password")\"")
  [[ $code == 200 ]] || { log "the lab user got '$code', not 200"; ok=1; }
  digest=$(remote_digest "$SEED_REPO" "$SEED_TAG")
  if [[ -z $digest ]]; then
    log "$SEED_REPO:$SEED_TAG is missing (registry.sh up seeds it)"
    ok=1
  fi
  if ((ok == 0)); then
    manifests=$(skopeo inspect --raw --authfile "$AUTH_FILE" --cert-dir "$CERT_DIR" "docker://$REG/$SEED_REPO:$SEED_TAG" |
      jq -r '[.manifests[].platform.architecture] | join(",")') || ok=1
    printf '%-9s %-18s %s\n' registry "$REG" "up (pid $pid): TLS (lab CA), anonymous and wrong password 401, $USER_NAME 200; $SEED_REPO:$SEED_TAG $digest ($manifests)"
  else
    printf '%-9s %-18s %s\n' registry "$REG" "unhealthy (pid $pid): see above"
  fi
  return $ok
}

cmd_push_new_list() {
  local ref="" id="" arches=() a dir digest repo tag
  while (($# > 0)); do
    case $1 in
      --id) (($# >= 2)) || die "--id needs a value"; id=$2; shift 2 ;;
      --arches) (($# >= 2)) || die "--arches needs a value"; IFS=, read -r -a arches <<<"$2"; shift 2 ;;
      -*) die "unknown option $1 (push-new-list REPO:TAG [--id ID] [--arches A,B])" ;;
      *) [[ -z $ref ]] || die "one REPO:TAG only"; ref=$1; shift ;;
    esac
  done
  ref=${ref#"$REG/"}
  [[ $ref =~ ^([a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*):([A-Za-z0-9_][A-Za-z0-9_.-]{0,127})$ ]] ||
    die "push-new-list needs REPO:TAG (e.g. farm-lab/base:moved), not '$ref'"
  repo=${BASH_REMATCH[1]}
  tag=${BASH_REMATCH[5]}
  [[ -n $id ]] || id=list-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
  [[ $id =~ ^[A-Za-z0-9._-]{1,64}$ ]] || die "--id '$id': use 1-64 of A-Z a-z 0-9 . _ -"
  ((${#arches[@]} > 0)) || arches=("${LAB_ARCHES[@]}")
  for a in "${arches[@]}"; do oci_arch "$a" >/dev/null || die "unknown arch '$a': use ${LAB_ARCHES[*]}"; done
  lock
  [[ -s $AUTH_FILE ]] && our_pid >/dev/null || die "the registry is not running: scripts/lab up --only registry"
  mkdir -p "$STATE/work"
  dir=$(mktemp -d "$STATE/work/list.XXXXXX")
  digest=$(build_list "$dir" "$id" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${arches[@]}")
  push_list "$dir" "$repo" "$tag" "$digest"
  rm -rf "$dir"
  log "pushed $REG/$repo:$tag = $digest (id $id; ${arches[*]})"
  echo "$digest"
}

case ${1:-} in
  up) cmd_up ;;
  down) shift && cmd_down "$@" ;;
  status) cmd_status ;;
  env) echo "$ENV_FILE" ;;
  push-new-list) shift && cmd_push_new_list "$@" ;;
  trust-hosts)
    need_root
    [[ -s $CERT_DIR/ca.crt ]] || die "no lab CA yet: run registry.sh up"
    trust_hosts
    ;;
  *)
    sed -n '2,25s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
    exit 2
    ;;
esac
