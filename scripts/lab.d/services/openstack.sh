#!/usr/bin/env bash
# The lab's OpenStack: a real Keystone (under uwsgi) and a real Glance (glance-api) from Debian's
# packages, run as our own processes on loopback, with sqlite databases and the file store, all
# under one state directory. Not the Debian system services: nothing here needs systemd.
#
#   openstack.sh up       start (first run: configure everything); idempotent, fast when running
#   openstack.sh down     stop our processes (state is kept; `down --purge` also deletes it)
#   openstack.sh status   show pids and prove `openstack --os-cloud lab image list` works
#
# Fixed addresses (chosen away from the usual 5000/35357/9292 so a real install cannot clash):
#   Keystone  http://127.0.0.1:15000/v3    Glance  http://127.0.0.1:19292
# State in $FARM_LAB_DIR/openstack (default <repo>/.lab/openstack):
#   clouds.yaml (0600)   clouds lab (farm user, password), lab-appcred (application credential),
#                        lab-admin (admin)
#   secrets/ (0700)      admin, glance and farm passwords (0600), never printed
#   keystone/ glance/    config, sqlite database, keys, image files, logs
#   run/*.pid            pids of the processes we started; only these are ever stopped
set -euo pipefail

readonly KEYSTONE_PORT=15000
readonly GLANCE_PORT=19292
readonly HOST=127.0.0.1
readonly KEYSTONE_URL="http://$HOST:$KEYSTONE_PORT"
readonly GLANCE_URL="http://$HOST:$GLANCE_PORT"
readonly REGION=RegionOne
# Bumped when the configuration written here changes, so an older state is rebuilt.
readonly LAYOUT_VERSION=1

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
LAB_DIR=${FARM_LAB_DIR:-$REPO/.lab}
STATE=$LAB_DIR/openstack
KS=$STATE/keystone
GL=$STATE/glance
RUN=$STATE/run
SECRETS=$STATE/secrets
CLOUDS=$STATE/clouds.yaml
MARKER=$STATE/configured

log() { printf 'openstack: [%3ds] %s\n' "$SECONDS" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- processes ------------------------------------------------------------------------------

# Prints the pid in run/<name>.pid if that process is alive and is still ours (its command
# line names our state directory), so a reused pid is never mistaken for our service.
live_pid() {
  local name=$1 pid cmdline
  [[ -s $RUN/$name.pid ]] || return 1
  pid=$(<"$RUN/$name.pid")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  alive "$pid" || return 1
  cmdline=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 1
  [[ $cmdline == *"$STATE/"* ]] || return 1
  printf '%s\n' "$pid"
}

# True if the process exists and is not a zombie (PID 1 here may never reap what we leave).
alive() {
  local stat
  stat=$(cat 2>/dev/null "/proc/$1/stat") || return 1
  stat=${stat##*) }
  [[ ${stat%% *} != Z ]]
}

port_busy() { [[ -n $(ss -Htln "sport = :$1") ]]; }

# Waits (bounded) until URL answers with HTTP < 500 while the process stays alive.
wait_http() {
  local name=$1 url=$2 logfile=$3 deadline=$((SECONDS + 90)) code pid
  pid=$(<"$RUN/$name.pid")
  while ((SECONDS < deadline)); do
    # Just spawned, so the pid is ours (live_pid could miss it before the exec completes).
    if ! alive "$pid"; then
      log "$name exited during startup; last lines of $logfile:"
      tail -n 20 "$logfile" >&2 || true
      return 1
    fi
    code=$(curl -s -o /dev/null --max-time 5 -w '%{http_code}' "$url" || true)
    [[ $code == [1-4]?? ]] && return 0
    sleep 0.3
  done
  log "$name did not answer on $url within 90 s; see $logfile"
  return 1
}

# Starts argv in its own session (so it outlives the caller and its group can be stopped as a
# unit) and records its pid.
spawn() {
  local name=$1 logfile=$2
  shift 2
  # fd 9 is our lock: the service must not hold it after we exit.
  setsid "$@" </dev/null >>"$logfile" 2>&1 9>&- &
  echo $! >"$RUN/$name.pid"
}

stop_one() {
  local name=$1 pid i
  if ! pid=$(live_pid "$name"); then
    rm -f "$RUN/$name.pid"
    return 0
  fi
  log "stopping $name (pid $pid)"
  # The pid leads its own process group (setsid): TERM the group to reach uwsgi's workers too.
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    alive "$pid" || break
    sleep 0.2
  done
  if alive "$pid"; then
    log "$name ignored TERM for 10 s; killing it"
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$RUN/$name.pid"
}

start_keystone() {
  live_pid keystone >/dev/null && return 0
  port_busy "$KEYSTONE_PORT" && die "port $KEYSTONE_PORT is taken by another process (ss -ltnp 'sport = :$KEYSTONE_PORT')"
  log "starting Keystone on $KEYSTONE_URL"
  # One worker, one thread: sqlite takes one writer at a time ("database is locked" otherwise).
  # uwsgi's http-socket closes each connection after the response without saying so; the header
  # stops clients from reusing it (they got "connection reset" on the next request).
  spawn keystone "$KS/uwsgi.log" env -u PYTHONHOME -u PYTHONPATH \
    uwsgi --plugin python3 --http-socket "$HOST:$KEYSTONE_PORT" \
    --wsgi-file /usr/bin/keystone-wsgi-public --env "OS_KEYSTONE_CONFIG_DIR=$KS" \
    --master --processes 1 --threads 1 --need-app --add-header "Connection: close" \
    --die-on-term --no-orphans --buffer-size 65535 --chdir "$KS"
  wait_http keystone "$KEYSTONE_URL/v3" "$KS/uwsgi.log"
}

start_glance() {
  live_pid glance >/dev/null && return 0
  port_busy "$GLANCE_PORT" && die "port $GLANCE_PORT is taken by another process (ss -ltnp 'sport = :$GLANCE_PORT')"
  log "starting Glance on $GLANCE_URL"
  spawn glance "$GL/glance-api.stderr" env -u PYTHONHOME -u PYTHONPATH \
    /usr/bin/glance-api --config-file "$GL/glance-api.conf"
  wait_http glance "$GLANCE_URL/versions" "$GL/glance-api.log"
}

# --- configuration (first run) --------------------------------------------------------------

new_secret() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }

write_secret() {
  (umask 077 && new_secret >"$SECRETS/$1")
}

secret() { cat "$SECRETS/$1"; }

write_keystone_conf() {
  cat >"$KS/keystone.conf" <<EOF
[DEFAULT]
log_dir = $KS
log_file = keystone.log

[database]
connection = sqlite:///$KS/keystone.sqlite

[token]
provider = fernet

[fernet_tokens]
key_repository = $KS/fernet-keys

[fernet_receipts]
key_repository = $KS/fernet-keys

[credential]
key_repository = $KS/credential-keys

[identity]
# The fewest bcrypt rounds keystone allows: a lab, and every password auth pays for them.
password_hash_rounds = 4
EOF
}

write_glance_conf() {
  # Debian's paste pipeline, with the healthcheck's disable file moved into our state.
  sed "s|/etc/glance/healthcheck_disable|$GL/healthcheck_disable|" \
    /usr/share/glance-common/glance-api-paste.ini >"$GL/glance-api-paste.ini"
  (umask 077 && cat >"$GL/glance-api.conf" <<EOF
[DEFAULT]
bind_host = $HOST
bind_port = $GLANCE_PORT
# One eventlet process: enough for the lab, and one pid to track.
workers = 0
log_dir = $GL
log_file = glance-api.log
enabled_backends = fs:file
# Modern clouds' policies: the project member role creates, uploads and deletes images.
enforce_secure_rbac = true

[database]
connection = sqlite:///$GL/glance.sqlite

[glance_store]
default_backend = fs

[fs]
filesystem_store_datadir = $GL/images/

[os_glance_staging_store]
filesystem_store_datadir = $GL/staging/

[os_glance_tasks_store]
filesystem_store_datadir = $GL/tasks/

[oslo_concurrency]
lock_path = $GL/locks

[oslo_policy]
enforce_new_defaults = true

[paste_deploy]
flavor = keystone
config_file = $GL/glance-api-paste.ini

[keystone_authtoken]
www_authenticate_uri = $KEYSTONE_URL
auth_url = $KEYSTONE_URL
auth_type = password
user_domain_name = Default
project_domain_name = Default
project_name = service
username = glance
password = $(secret glance)
EOF
  )
}

# keystone-manage's own output (and eventlet's noise at exit) goes to a log, shown on failure.
ks_manage() {
  env -u PYTHONHOME -u PYTHONPATH keystone-manage --config-file "$KS/keystone.conf" "$@" \
    >>"$KS/keystone-manage.out" 2>&1 || {
    tail -n 20 "$KS/keystone-manage.out" >&2
    die "keystone-manage $1 failed"
  }
}

# Keystone's REST API with the admin token; request bodies go through stdin so passwords never
# appear in argv (ps), and the token through a header file for the same reason.
ks_api() {
  local method=$1 path=$2 body=${3:-} out code
  out=$(curl -sS --max-time 30 -w '\n%{http_code}' -X "$method" -H @"$STATE/tmp/admin-token.hdr" \
    -H 'Content-Type: application/json' ${body:+--data-binary @-} "$KEYSTONE_URL/v3$path" <<<"$body") ||
    die "Keystone $method $path failed"
  code=${out##*$'\n'}
  out=${out%$'\n'*}
  # Only the error's title: a validation message may quote the value it refused.
  [[ $code == 2?? ]] || die "Keystone $method $path answered HTTP $code $(jq -r '.error.title // empty' <<<"$out" 2>/dev/null || true)"
  printf '%s' "$out"
}

admin_token() {
  local body
  body=$(jq -n --arg pw "$(secret admin)" '{auth: {identity: {methods: ["password"],
    password: {user: {name: "admin", domain: {id: "default"}, password: $pw}}},
    scope: {project: {name: "admin", domain: {id: "default"}}}}}')
  curl -sS --fail --max-time 30 -D - -o /dev/null -H 'Content-Type: application/json' \
    --data-binary @- "$KEYSTONE_URL/v3/auth/tokens" <<<"$body" |
    tr -d '\r' | sed -n 's/^[Xx]-[Ss]ubject-[Tt]oken: \(.*\)$/X-Auth-Token: \1/p' >"$STATE/tmp/admin-token.hdr"
  [[ -s $STATE/tmp/admin-token.hdr ]] || die "Keystone issued no admin token"
}

id_of() { jq -er ".$1.id"; }

create_project() {
  ks_api POST /projects "$(jq -n --arg n "$1" --arg d "$2" '{project: {name: $n, description: $d, domain_id: "default"}}')" | id_of project
}

create_user() {
  ks_api POST /users "$(jq -n --arg n "$1" --arg pw "$2" --arg p "$3" \
    '{user: {name: $n, password: $pw, domain_id: "default", default_project_id: $p}}')" | id_of user
}

role_id() { ks_api GET "/roles?name=$1" | jq -er '.roles[0].id'; }

grant() { ks_api PUT "/projects/$1/users/$2/roles/$3" >/dev/null; }

write_clouds_yaml() {
  local appcred_id=${1:-} appcred_secret=${2:-}
  (umask 077 && {
    cat <<EOF
# Written by scripts/lab.d/services/openstack.sh: the lab's Keystone and Glance.
clouds:
  lab:
    auth:
      auth_url: "$KEYSTONE_URL/v3"
      username: farm
      password: "$(secret farm)"
      project_name: farm
      user_domain_name: Default
      project_domain_name: Default
    region_name: $REGION
    interface: public
    identity_api_version: 3
  lab-admin:
    auth:
      auth_url: "$KEYSTONE_URL/v3"
      username: admin
      password: "$(secret admin)"
      project_name: admin
      user_domain_name: Default
      project_domain_name: Default
    region_name: $REGION
    interface: public
    identity_api_version: 3
EOF
    if [[ -n $appcred_id ]]; then
      cat <<EOF
  lab-appcred:
    auth_type: v3applicationcredential
    auth:
      auth_url: "$KEYSTONE_URL/v3"
      application_credential_id: "$appcred_id"
      application_credential_secret: "$appcred_secret"
    region_name: $REGION
    interface: public
    identity_api_version: 3
EOF
    fi
  } >"$CLOUDS.tmp" && mv "$CLOUDS.tmp" "$CLOUDS")
}

osc() { env -u PYTHONHOME -u PYTHONPATH OS_CLIENT_CONFIG_FILE="$CLOUDS" openstack "$@"; }

configure() {
  local t0=$SECONDS
  log "configuring a new Keystone and Glance in $STATE"
  stop_one glance
  stop_one keystone
  rm -rf "$STATE"
  mkdir -p "$KS" "$GL"/{images,staging,tasks,locks} "$RUN" "$STATE/tmp"
  (umask 077 && mkdir -p "$SECRETS")
  chmod 700 "$STATE/tmp"
  for s in admin glance farm; do write_secret "$s"; done
  write_keystone_conf
  write_glance_conf

  # Steps that do not depend on each other run side by side (each is a slow Python start-up):
  # Glance's migration and start, Keystone's key repositories, then its migration.
  (
    env -u PYTHONHOME -u PYTHONPATH glance-manage --config-file "$GL/glance-api.conf" db_sync \
      >"$GL/db_sync.log" 2>&1 || { tail -n 20 "$GL/db_sync.log" >&2; die "glance-manage db_sync failed"; }
    start_glance
  ) &
  local glance_job=$! keys_job
  log "keystone-manage db_sync, fernet_setup, credential_setup, bootstrap"
  {
    ks_manage fernet_setup --keystone-user root --keystone-group root
    ks_manage credential_setup --keystone-user root --keystone-group root
  } &
  keys_job=$!
  ks_manage db_sync
  wait "$keys_job" || die "keystone-manage could not create the key repositories"
  # The password goes through the environment, not argv.
  OS_BOOTSTRAP_PASSWORD=$(secret admin) ks_manage bootstrap \
    --bootstrap-username admin --bootstrap-project-name admin --bootstrap-role-name admin \
    --bootstrap-region-id "$REGION" --bootstrap-admin-url "$KEYSTONE_URL/v3" \
    --bootstrap-internal-url "$KEYSTONE_URL/v3" --bootstrap-public-url "$KEYSTONE_URL/v3"
  start_keystone
  admin_token
  log "creating the glance service user, image endpoints, farm project and user"

  local admin_role member_role service_project glance_user farm_project farm_user service iface
  admin_role=$(role_id admin)
  member_role=$(role_id member)
  service_project=$(create_project service 'Service users')
  glance_user=$(create_user glance "$(secret glance)" "$service_project")
  grant "$service_project" "$glance_user" "$admin_role"
  service=$(ks_api POST /services '{"service": {"name": "glance", "type": "image", "description": "OpenStack Image"}}' | id_of service)
  for iface in public internal admin; do
    ks_api POST /endpoints "$(jq -n --arg s "$service" --arg i "$iface" --arg u "$GLANCE_URL" --arg r "$REGION" \
      '{endpoint: {service_id: $s, interface: $i, url: $u, region_id: $r}}')" >/dev/null
  done
  farm_project=$(create_project farm 'farm image uploads')
  farm_user=$(create_user farm "$(secret farm)" "$farm_project")
  grant "$farm_project" "$farm_user" "$member_role"
  rm -f "$STATE/tmp/admin-token.hdr"

  wait "$glance_job" || die "Glance did not start"

  # The application credential belongs to the farm user and is created the way its users do.
  log "creating the farm user's application credential"
  write_clouds_yaml
  local cred
  cred=$(osc --os-cloud lab application credential create farm-lab \
    --description 'farm lab uploads' -f json -c id -c secret)
  write_clouds_yaml "$(jq -er .id <<<"$cred")" "$(jq -er .secret <<<"$cred")"
  unset cred

  echo "$LAYOUT_VERSION" >"$MARKER"
  log "configured in $((SECONDS - t0)) s"
}

# --- commands -------------------------------------------------------------------------------

cmd_up() {
  local t0=$SECONDS
  if [[ -f $MARKER && $(<"$MARKER") == "$LAYOUT_VERSION" ]]; then
    # Glance needs Keystone only for requests, not to start: both start at once.
    start_glance &
    local glance_job=$!
    start_keystone
    wait "$glance_job" || die "Glance did not start"
  else
    configure
  fi
  log "up in $((SECONDS - t0)) s: Keystone $KEYSTONE_URL/v3, Glance $GLANCE_URL, clouds.yaml $CLOUDS"
}

cmd_down() {
  stop_one glance
  stop_one keystone
  if [[ ${1:-} == --purge ]]; then
    rm -rf "$STATE"
    log "state deleted"
  fi
}

cmd_status() {
  local ok=0 name pid count
  for name in keystone glance; do
    if pid=$(live_pid "$name"); then
      log "$name running (pid $pid)"
    else
      log "$name not running"
      ok=1
    fi
  done
  ((ok == 0)) || return 1
  [[ -f $CLOUDS ]] || { log "no $CLOUDS"; return 1; }
  count=$(osc --os-cloud lab image list -f value -c ID | wc -l) || { log "openstack --os-cloud lab image list failed"; return 1; }
  log "openstack --os-cloud lab image list: $count image(s); OS_CLIENT_CONFIG_FILE=$CLOUDS"
}

main() {
  local cmd=${1:-}
  shift || true
  mkdir -p "$LAB_DIR"
  # One caller at a time (scripts/lab, tests): a bounded wait for the lock.
  exec 9>"$LAB_DIR/openstack.lock"
  flock -w 600 9 || die "another openstack.sh has held $LAB_DIR/openstack.lock for 10 minutes"
  case $cmd in
    up) cmd_up ;;
    down) cmd_down "$@" ;;
    status) cmd_status ;;
    *) echo "usage: $0 up|down [--purge]|status" >&2; exit 2 ;;
  esac
}

main "$@"
