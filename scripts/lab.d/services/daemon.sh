# shellcheck shell=bash
# Shared by the lab's service scripts (azure.sh, cloud.sh, registry.sh), sourced after they set:
#   SERVICE    log prefix and lock name          DAEMON     how messages name the process
#   LAB_DIR    where the lock lives              PIDFILE    the process's pid file
#   STOP_WAIT  seconds a TERM is given           HOST, PORTS  what all_ports_answer tries
#   STATE, ENTRY  for node_entry_pid and same_entry (node services)
# and define our_pid (how the service recognises its own process; node_entry_pid for node ones).

log() { printf '%s: %s\n' "$SERVICE" "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

# True if the process exists and is not a zombie.
alive() {
  local stat
  stat=$(cat 2>/dev/null "/proc/$1/stat") || return 1
  stat=${stat##*) }
  [[ ${stat%% *} != Z ]]
}

# The pid in the pid file if that process is alive and runs the node entry point named by $1
# (a path suffix such as /test/fakes/lab-cloud.ts) on our state dir: a reused pid belongs to
# someone else. It may have been started from another checkout sharing this lab dir
# (FARM_LAB_DIR): still ours, see same_entry.
node_entry_pid() {
  local pid args
  [[ -s $PIDFILE ]] || return 1
  pid=$(<"$PIDFILE")
  [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" || return 1
  args=$(tr '\0' '\n' 2>/dev/null <"/proc/$pid/cmdline") || return 1
  [[ $'\n'$args$'\n' == *"$1"$'\n'--dir$'\n'"$STATE"$'\n'* ]] || return 1
  echo "$pid"
}

# True if process $1 runs this checkout's entry point (another checkout's code may differ).
same_entry() {
  local args
  args=$(tr '\0' '\n' 2>/dev/null <"/proc/$1/cmdline") || return 1
  [[ $'\n'$args$'\n' == *$'\n'"$ENTRY"$'\n'* ]]
}

port_answers() { timeout 1 bash -c "exec 3<>/dev/tcp/$HOST/$1" 2>/dev/null; }

all_ports_answer() {
  local p
  for p in "${PORTS[@]}"; do port_answers "$p" || return 1; done
}

lock() {
  mkdir -p "$LAB_DIR"
  exec 9>"$LAB_DIR/$SERVICE.lock"
  flock -w 120 9 || die "another $SERVICE.sh has held $LAB_DIR/$SERVICE.lock for 120 s"
}

# TERM to our process (never another's: our_pid checks), KILL after STOP_WAIT seconds.
stop_ours() {
  local pid i
  if ! pid=$(our_pid); then
    rm -f "$PIDFILE"
    return 0
  fi
  log "stopping $DAEMON (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < STOP_WAIT * 5; i++)); do
    alive "$pid" || break
    sleep 0.2
  done
  if alive "$pid"; then
    log "$DAEMON ignored TERM for ${STOP_WAIT} s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$PIDFILE"
}
