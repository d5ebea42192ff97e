#!/usr/bin/env bash
# The lab's Azure: one node process (test/fakes/lab-azure.ts) serving on loopback, over TLS from
# a lab CA made here (Azure's SDKs send bearer tokens over https only):
#   Azurite Blob service (real)          https://127.0.0.1:19010/farmlab  container farm-staging
#   fake Entra ID + Resource Manager     https://127.0.0.1:19011          resource group farm-lab,
#                                        gallery farm_lab_gallery (farm-lab-x64, farm-lab-arm64)
#
#   azure.sh up              start (idempotent; quick when running)
#   azure.sh down [--purge]  stop our process (by its pid file); --purge also deletes the state
#   azure.sh status          pid, and each service answering
#   azure.sh env             print the path of the env file (AZURE_*, NODE_EXTRA_CA_CERTS)
#
# State in $FARM_LAB_DIR/azure (default <repo>/.lab/azure): tls/ (CA and server certificate),
# env and secrets.json (0600), azurite/ (blobs), arm-state.json, lab-azure.log, lab-azure.pid.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
LAB_DIR=${FARM_LAB_DIR:-$REPO/.lab}
STATE=$LAB_DIR/azure
TLS=$STATE/tls
PIDFILE=$STATE/lab-azure.pid
LOG=$STATE/lab-azure.log
ENV_FILE=$STATE/env
ENTRY=$REPO/test/fakes/lab-azure.ts
HOST=127.0.0.1
PORTS=(19010 19011)
START_WAIT=90
STOP_WAIT=15

SERVICE=azure
DAEMON=lab-azure
# shellcheck source=daemon.sh
. "$(dirname "${BASH_SOURCE[0]}")/daemon.sh"
our_pid() { node_entry_pid /test/fakes/lab-azure.ts; }

# The lab CA and a server certificate for 127.0.0.1, made once. The CA key never leaves tls/.
make_tls() {
  [[ -s $TLS/ca.crt && -s $TLS/server.crt && -s $TLS/server.key ]] && return 0
  command -v openssl >/dev/null || die "openssl is not installed"
  log "making the lab Azure CA and certificate ($TLS)"
  (umask 077 && mkdir -p "$TLS")
  (
    umask 077
    cd "$TLS"
    openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 -days 3650 \
      -subj "/O=farm lab/CN=farm lab Azure CA" -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign" -keyout ca.key -out ca.crt.tmp 2>/dev/null
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 \
      -subj "/O=farm lab/CN=127.0.0.1" -keyout server.key -out server.csr 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' >server.ext
    openssl x509 -req -in server.csr -CA ca.crt.tmp -CAkey ca.key -CAcreateserial -days 3650 -sha256 \
      -extfile server.ext -out server.crt.tmp 2>/dev/null
    rm -f server.csr server.ext ca.srl
    chmod 644 ca.crt.tmp server.crt.tmp
    mv -f server.crt.tmp server.crt
    mv -f ca.crt.tmp ca.crt
  ) || die "openssl could not make the lab Azure certificates"
}

cmd_up() {
  local pid p holders start=$SECONDS
  command -v node >/dev/null || die "node is not installed"
  [[ -d $REPO/node_modules/azurite && -d $REPO/node_modules/@azure/arm-compute ]] || die "npm packages missing: run npm ci in $REPO"
  lock
  if pid=$(our_pid) && ! same_entry "$pid"; then
    log "lab-azure (pid $pid) runs another checkout's fakes; restarting it from $REPO"
    stop_ours
  fi
  if pid=$(our_pid); then
    if all_ports_answer; then
      log "lab-azure already running (pid $pid)"
      return 0
    fi
    log "lab-azure (pid $pid) does not answer on every port; restarting it"
    stop_ours
  fi
  for p in "${PORTS[@]}"; do
    holders=$(ss -Htlnp "sport = :$p" 2>/dev/null || true)
    [[ -z $holders ]] || die "port $p is taken by another process: $holders"
  done
  (umask 077 && mkdir -p "$STATE")
  make_tls
  if [[ -f $LOG ]] && (($(stat -c %s "$LOG") > 20 << 20)); then mv -f "$LOG" "$LOG.1"; fi
  log "starting lab-azure (Azurite :${PORTS[0]}, ARM + Entra ID :${PORTS[1]})"
  rm -f "$ENV_FILE"
  setsid env NODE_EXTRA_CA_CERTS="$TLS/ca.crt" \
    node "$REPO/bin/tsnode.js" "$ENTRY" --dir "$STATE" --tls "$TLS" \
    </dev/null >>"$LOG" 2>&1 9>&- &
  pid=$!
  echo "$pid" >"$PIDFILE"
  until all_ports_answer && [[ -s $ENV_FILE ]]; do
    if ! alive "$pid"; then
      tail -n 15 "$LOG" >&2 || true
      rm -f "$PIDFILE"
      die "lab-azure exited during start-up; see $LOG"
    fi
    if ((SECONDS - start >= START_WAIT)); then
      stop_ours
      die "lab-azure did not answer on ports ${PORTS[*]} within ${START_WAIT} s; see $LOG"
    fi
    sleep 0.2
  done
  log "up in $((SECONDS - start)) s (pid $pid); env: $ENV_FILE"
}

cmd_down() {
  local purge=${1:-}
  [[ -z $purge || $purge == --purge ]] || die "usage: azure.sh down [--purge]"
  lock
  stop_ours
  if [[ $purge == --purge ]]; then
    rm -rf "$STATE"
    log "state deleted"
  fi
}

cmd_status() {
  local pid ok=0 out
  if ! pid=$(our_pid); then
    printf '%-8s %-24s %s\n' azure "-" "down (not running)"
    return 1
  fi
  [[ -s $ENV_FILE ]] || { printf '%-8s %-24s %s\n' azure "-" "no $ENV_FILE"; return 1; }
  # shellcheck disable=SC1090
  source "$ENV_FILE"
  # Azurite answers an anonymous request with an authorization error, over TLS with the lab CA.
  out=$(curl -s --max-time 5 --cacert "$TLS/ca.crt" "https://$HOST:${PORTS[0]}/farmlab/farm-staging?restype=container" 2>&1) || true
  if [[ $out == *'<Code>'* ]]; then
    printf '%-8s %-24s %s\n' blob "$HOST:${PORTS[0]}" "up (pid $pid): Azurite, account farmlab"
  else
    printf '%-8s %-24s %s\n' blob "$HOST:${PORTS[0]}" "unhealthy: ${out:0:200}"
    ok=1
  fi
  out=$(curl -s --max-time 5 --cacert "$TLS/ca.crt" -K - "https://$HOST:${PORTS[1]}/$AZURE_TENANT_ID/oauth2/v2.0/token" \
    <<<"data = \"grant_type=client_credentials&client_id=$AZURE_CLIENT_ID&client_secret=$AZURE_CLIENT_SECRET&scope=https://$HOST:${PORTS[1]}/.default\"" 2>&1) || true
  if [[ $out == *'"access_token"'* ]]; then
    printf '%-8s %-24s %s\n' arm "$HOST:${PORTS[1]}" "up: token issued for the lab service principal"
  else
    printf '%-8s %-24s %s\n' arm "$HOST:${PORTS[1]}" "unhealthy: token: ${out:0:200}"
    ok=1
  fi
  return $ok
}

case ${1:-} in
  up) cmd_up ;;
  down) shift && cmd_down "$@" ;;
  status) cmd_status ;;
  env) echo "$ENV_FILE" ;;
  *)
    sed -n '2,12s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
    exit 2
    ;;
esac
