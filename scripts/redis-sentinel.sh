#!/usr/bin/env bash
# A throw-away Redis master, two replicas and three sentinels on this machine, beside (never touching) 6379.
#
#   scripts/redis-sentinel.sh start      start them and wait until the sentinels agree on the master
#   scripts/redis-sentinel.sh stop       kill them all and delete their files
#   scripts/redis-sentinel.sh url [DB]   the DISPATCH_RESULTS_URL for them (redis+sentinel://...)
#   scripts/redis-sentinel.sh master     host:port of the current master, as the sentinels see it
#   scripts/redis-sentinel.sh pid PORT   the OS pid of the server on PORT
#   scripts/redis-sentinel.sh restart PORT   start the data server on PORT again (after a kill -9): it rejoins
#                                            as a replica of the current master
#
# The master listens on $((SENTINEL_BASE + 1)) (default 6391), the replicas on +2 and +3; the sentinels on
# $((SENTINEL_BASE + 20002)) .. +20004 (default 26392..26394). The service is $SENTINEL_SERVICE (default
# dispatch). Quorum 2, down-after 1000 ms, failover-timeout 5000 ms: a killed master is replaced in a few
# seconds, and with two replicas the new master still has one, so writes waiting for a replica (WAIT 1)
# go on without the lost machine. Nothing is persisted; everything lives under SENTINEL_DIR (default
# /tmp/dispatch-redis-sentinel).
set -euo pipefail

SENTINEL_DIR=${SENTINEL_DIR:-/tmp/dispatch-redis-sentinel}
SENTINEL_BASE=${SENTINEL_BASE:-6390}
SENTINEL_SERVICE=${SENTINEL_SERVICE:-dispatch}
MASTER_PORT=$((SENTINEL_BASE + 1))
REPLICA_PORTS=($((SENTINEL_BASE + 2)) $((SENTINEL_BASE + 3)))
SENTINEL_PORTS=($((SENTINEL_BASE + 20002)) $((SENTINEL_BASE + 20003)) $((SENTINEL_BASE + 20004)))

data_server() {  # PORT [replicaof-port]
  local port=$1 dir=$SENTINEL_DIR/$1
  mkdir -p "$dir"
  local args=(--port "$port" --bind 127.0.0.1 --dir "$dir" --save "" --appendonly no --daemonize yes
    --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --replica-announce-ip 127.0.0.1)
  [[ $# -gt 1 ]] && args+=(--replicaof 127.0.0.1 "$2")
  redis-server "${args[@]}"
}

sentinel() {  # PORT
  local port=$1 dir=$SENTINEL_DIR/$1
  mkdir -p "$dir"
  cat >"$dir/sentinel.conf" <<EOF
port $port
bind 127.0.0.1
daemonize yes
pidfile $dir/redis.pid
logfile $dir/redis.log
dir $dir
sentinel announce-ip 127.0.0.1
sentinel monitor $SENTINEL_SERVICE 127.0.0.1 $MASTER_PORT 2
sentinel down-after-milliseconds $SENTINEL_SERVICE 1000
sentinel failover-timeout $SENTINEL_SERVICE 5000
sentinel parallel-syncs $SENTINEL_SERVICE 1
EOF
  redis-server "$dir/sentinel.conf" --sentinel
}

master() {
  redis-cli -p "${SENTINEL_PORTS[0]}" --raw sentinel get-master-addr-by-name "$SENTINEL_SERVICE" | paste -sd:
}

wait_until() {  # SECONDS DESCRIPTION COMMAND...
  local deadline=$((SECONDS + $1)) what=$2
  shift 2
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || { echo "redis-sentinel.sh: timed out waiting for $what" >&2; return 1; }
    sleep 0.1
  done
}

replicas_in_sync() {
  for port in "${REPLICA_PORTS[@]}"; do
    redis-cli -p "$port" info replication | grep -q "master_link_status:up" || return 1
  done
}

sentinels_agree() {
  for port in "${SENTINEL_PORTS[@]}"; do
    redis-cli -p "$port" sentinel ckquorum "$SENTINEL_SERVICE" | grep -q OK || return 1
    [[ $(redis-cli -p "$port" sentinel replicas "$SENTINEL_SERVICE" | grep -c "^name$") -ge ${#REPLICA_PORTS[@]} ]] || return 1
  done
}

case ${1:-} in
start)
  "$0" stop
  mkdir -p "$SENTINEL_DIR"
  data_server "$MASTER_PORT"
  for port in "${REPLICA_PORTS[@]}"; do data_server "$port" "$MASTER_PORT"; done
  wait_until 20 "the replicas to sync" replicas_in_sync
  for port in "${SENTINEL_PORTS[@]}"; do sentinel "$port"; done
  wait_until 30 "the sentinels to see the master, its replica and each other" sentinels_agree
  echo "master $(master), replicas ${REPLICA_PORTS[*]}, sentinels ${SENTINEL_PORTS[*]}"
  ;;
stop)
  for pidfile in "$SENTINEL_DIR"/*/redis.pid; do
    [[ -s $pidfile ]] && kill -9 "$(<"$pidfile")" 2>/dev/null || true
  done
  rm -rf "$SENTINEL_DIR"
  ;;
url)
  hosts=$(printf '127.0.0.1:%s,' "${SENTINEL_PORTS[@]}")
  echo "redis+sentinel://${hosts%,}/$SENTINEL_SERVICE/${2:-0}"
  ;;
master) master ;;
pid) cat "$SENTINEL_DIR/$2/redis.pid" ;;
restart)
  data_server "$2" "$(master | cut -d: -f2)"  # a returning server rejoins as a replica of today's master
  ;;
*)
  sed -n '2,17p' "$0"
  exit 2
  ;;
esac
