#!/usr/bin/env bash
# The lab's cloud services: one node process (test/fakes/lab-cloud.ts) serving on loopback
#   S3 (s3rver)                          http://127.0.0.1:19000  buckets farm-lab-imports, farm-lab-cos
#   AWS fake (EC2 + EBS direct)          http://127.0.0.1:19001  regions us-east-1, us-west-2, eu-central-1, ...
#   IBM fake (IAM, Resource Manager, VPC) http://127.0.0.1:19002  resource group farm-lab
#   IBM COS (HMAC or IAM bearer, to S3)  http://127.0.0.1:19003  bucket farm-lab-cos
#
#   cloud.sh up              start (idempotent; quick when running)
#   cloud.sh down [--purge]  stop our process (by its pid file); --purge also deletes the state
#   cloud.sh status          pid, and each service answering a signed request with the lab's keys
#   cloud.sh env             print the path of the env file (export lines: AWS_*, IBMCLOUD_API_KEY,
#                            COS_HMAC_*, OS_CLIENT_CONFIG_FILE)
#
# State in $FARM_LAB_DIR/cloud (default <repo>/.lab/cloud): env (0600), secrets.json (0600), s3/
# (bucket data), aws/ + aws-state.json, ibm-state.json, lab-cloud.log, lab-cloud.pid.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
LAB_DIR=${FARM_LAB_DIR:-$REPO/.lab}
STATE=$LAB_DIR/cloud
PIDFILE=$STATE/lab-cloud.pid
LOG=$STATE/lab-cloud.log
ENV_FILE=$STATE/env
ENTRY=$REPO/test/fakes/lab-cloud.ts
HOST=127.0.0.1
PORTS=(19000 19001 19002 19003)
# Bounded waits (seconds): start-up (node, tsx, the SDKs on a busy 2-core machine), stop.
START_WAIT=90
STOP_WAIT=15

SERVICE=cloud
DAEMON=lab-cloud
# shellcheck source=daemon.sh
. "$(dirname "${BASH_SOURCE[0]}")/daemon.sh"
our_pid() { node_entry_pid /test/fakes/lab-cloud.ts; }

cmd_up() {
  local pid p holders start=$SECONDS
  command -v node >/dev/null || die "node is not installed"
  [[ -d $REPO/node_modules/s3rver && -d $REPO/node_modules/tsx ]] || die "npm packages missing: run npm ci in $REPO"
  lock
  if pid=$(our_pid) && ! same_entry "$pid"; then
    # Its state (S3 objects, AMIs, IBM keys) lives in $STATE and survives the restart.
    log "lab-cloud (pid $pid) runs another checkout's fakes; restarting it from $REPO"
    stop_ours
  fi
  if pid=$(our_pid); then
    if all_ports_answer; then
      log "lab-cloud already running (pid $pid)"
      return 0
    fi
    log "lab-cloud (pid $pid) does not answer on every port; restarting it"
    stop_ours
  fi
  for p in "${PORTS[@]}"; do
    holders=$(ss -Htlnp "sport = :$p" 2>/dev/null || true)
    [[ -z $holders ]] || die "port $p is taken by another process: $holders"
  done
  (umask 077 && mkdir -p "$STATE")
  # One old log is kept; the service appends to a fresh one once the current passes 20 MiB.
  if [[ -f $LOG ]] && (($(stat -c %s "$LOG") > 20 << 20)); then mv -f "$LOG" "$LOG.1"; fi
  log "starting lab-cloud (S3 :${PORTS[0]}, AWS :${PORTS[1]}, IBM :${PORTS[2]}, COS :${PORTS[3]})"
  # Its own session (a terminal's ^C does not reach it); fd 9 is our lock and must not be held
  # by the service. setsid and env exec, so $! is node's pid.
  setsid env AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true \
    node "$REPO/bin/tsnode.js" "$ENTRY" --dir "$STATE" --clouds-yaml "$LAB_DIR/openstack/clouds.yaml" \
    </dev/null >>"$LOG" 2>&1 9>&- &
  pid=$!
  echo "$pid" >"$PIDFILE"
  until all_ports_answer && [[ -s $ENV_FILE ]]; do
    if ! alive "$pid"; then
      tail -n 15 "$LOG" >&2 || true
      rm -f "$PIDFILE"
      die "lab-cloud exited during start-up; see $LOG"
    fi
    if ((SECONDS - start >= START_WAIT)); then
      stop_ours
      die "lab-cloud did not answer on ports ${PORTS[*]} within ${START_WAIT} s; see $LOG"
    fi
    sleep 0.2
  done
  log "up in $((SECONDS - start)) s (pid $pid); env: $ENV_FILE"
}

cmd_down() {
  local purge=${1:-}
  [[ -z $purge || $purge == --purge ]] || die "usage: cloud.sh down [--purge]"
  lock
  stop_ours
  if [[ $purge == --purge ]]; then
    rm -rf "$STATE"
    log "state deleted"
  fi
}

# curl with the config (credentials included) on stdin: secrets never appear in argv.
curl_cfg() { curl -sS --max-time 10 -K - "$@"; }

cmd_status() {
  local pid ok=0 out
  if ! pid=$(our_pid); then
    printf '%-8s %-24s %s\n' cloud "-" "down (not running)"
    return 1
  fi
  [[ -s $ENV_FILE ]] || { printf '%-8s %-24s %s\n' cloud "-" "no $ENV_FILE"; return 1; }
  # shellcheck disable=SC1090
  source "$ENV_FILE"
  local user="user = \"$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY\""

  # S3 wants the payload's hash in a header (here: of the empty body); curl 7.88 does not add it.
  out=$(curl_cfg --aws-sigv4 "aws:amz:$AWS_REGION:s3" \
    -H 'x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855' \
    "http://$HOST:${PORTS[0]}/" <<<"$user" 2>&1) || true
  if [[ $out == *"<Name>farm-lab-imports</Name>"* && $out == *"<Name>farm-lab-cos</Name>"* ]]; then
    printf '%-8s %-24s %s\n' s3 "$HOST:${PORTS[0]}" "up (pid $pid): buckets farm-lab-imports, farm-lab-cos"
  else
    printf '%-8s %-24s %s\n' s3 "$HOST:${PORTS[0]}" "unhealthy: ListBuckets: ${out:0:200}"
    ok=1
  fi

  out=$(curl_cfg --aws-sigv4 "aws:amz:$AWS_REGION:ec2" -H 'Content-Type: application/x-www-form-urlencoded' \
    --data 'Action=DescribeImages&Version=2016-11-15&Owner.1=self' "http://$HOST:${PORTS[1]}/" <<<"$user" 2>&1) || true
  if [[ $out == *"<DescribeImagesResponse"* ]]; then
    printf '%-8s %-24s %s\n' aws "$HOST:${PORTS[1]}" "up: DescribeImages ($AWS_REGION): $(grep -o '<imageId>' <<<"$out" | wc -l) image(s)"
  else
    printf '%-8s %-24s %s\n' aws "$HOST:${PORTS[1]}" "unhealthy: DescribeImages: ${out:0:200}"
    ok=1
  fi

  out=$(curl_cfg -H 'Content-Type: application/x-www-form-urlencoded' "http://$HOST:${PORTS[2]}/identity/token" \
    <<<"data = \"grant_type=urn:ibm:params:oauth:grant-type:apikey&apikey=$IBMCLOUD_API_KEY\"" 2>&1) || true
  if [[ $out == *'"access_token"'* ]]; then
    printf '%-8s %-24s %s\n' ibm "$HOST:${PORTS[2]}" "up: IAM token issued for the lab API key"
  else
    printf '%-8s %-24s %s\n' ibm "$HOST:${PORTS[2]}" "unhealthy: IAM token: ${out:0:200}"
    ok=1
  fi

  # COS's door refuses anonymous requests with S3's AccessDenied, as COS does.
  out=$(curl -s --max-time 5 "http://$HOST:${PORTS[3]}/farm-lab-cos" 2>&1) || true
  if [[ $out == *'<Code>AccessDenied</Code>'* ]]; then
    printf '%-8s %-24s %s\n' cos "$HOST:${PORTS[3]}" "up: HMAC or IAM bearer, anonymous refused"
  else
    printf '%-8s %-24s %s\n' cos "$HOST:${PORTS[3]}" "unhealthy: anonymous request: ${out:0:200}"
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
