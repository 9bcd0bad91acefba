#!/usr/bin/env bash
# A throw-away RabbitMQ cluster on this machine, beside (never touching) the node on 5672.
#
#   scripts/rabbitmq-cluster.sh start [N]        start N nodes (default 3) in parallel and cluster them
#   scripts/rabbitmq-cluster.sh stop             kill every node of the cluster and delete its files
#   scripts/rabbitmq-cluster.sh urls             the AMQP URL list, ';'-separated (DISPATCH_BROKER_URL)
#   scripts/rabbitmq-cluster.sh pid I            the OS pid of node I (1-based)
#   scripts/rabbitmq-cluster.sh restart I        start node I again (after a kill -9): it rejoins with its data
#   scripts/rabbitmq-cluster.sh ctl I ARGS...    rabbitmqctl against node I
#   scripts/rabbitmq-cluster.sh queues I ARGS... rabbitmq-queues against node I
#
# Node I is named ${CLUSTER_NAME}I@localhost (default c1@localhost ...), listens for AMQP on
# 127.0.0.1:$((CLUSTER_PORT + I)) (default 5711 ...) and for Erlang distribution on
# 127.0.0.1:$((20000 + CLUSTER_PORT + I)) (default 25711 ...).  Everything it writes lives under
# CLUSTER_DIR (default /tmp/dispatch-rabbitmq-cluster): its own HOME with a fresh Erlang cookie,
# its own env file and config file (the system ones pin NODENAME and bind 5672), its data and logs.
# The binaries in /usr/lib/rabbitmq/bin are called directly: the /usr/sbin wrappers reset HOME.
set -euo pipefail

CLUSTER_DIR=${CLUSTER_DIR:-/tmp/dispatch-rabbitmq-cluster}
CLUSTER_NAME=${CLUSTER_NAME:-c}
CLUSTER_PORT=${CLUSTER_PORT:-5710}
RABBITMQ_BIN=${RABBITMQ_BIN:-/usr/lib/rabbitmq/bin}
[[ -x $RABBITMQ_BIN/rabbitmq-server ]] || RABBITMQ_BIN=$(dirname "$(command -v rabbitmq-server)")

node_name() { echo "${CLUSTER_NAME}$1@localhost"; }
amqp_port() { echo $((CLUSTER_PORT + $1)); }
dist_port() { echo $((20000 + CLUSTER_PORT + $1)); }

# The environment every command for node I runs with (the server and the CLI tools alike).
node_env() {
  local i=$1 dir=$CLUSTER_DIR/node$1
  export HOME=$CLUSTER_DIR/home
  export RABBITMQ_CONF_ENV_FILE=$CLUSTER_DIR/rabbitmq-env.conf
  export RABBITMQ_CONFIG_FILE=$dir/rabbitmq.conf
  export RABBITMQ_ADVANCED_CONFIG_FILE=$dir/advanced.config
  export RABBITMQ_ENABLED_PLUGINS_FILE=$CLUSTER_DIR/enabled_plugins
  export RABBITMQ_NODENAME
  RABBITMQ_NODENAME=$(node_name "$i")
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
  export RABBITMQ_NODE_PORT
  RABBITMQ_NODE_PORT=$(amqp_port "$i")
  export RABBITMQ_DIST_PORT
  RABBITMQ_DIST_PORT=$(dist_port "$i")
  export RABBITMQ_MNESIA_BASE=$dir/mnesia
  export RABBITMQ_LOG_BASE=$dir/log
  export RABBITMQ_PID_FILE=$dir/rabbitmq.pid
  export ERL_EPMD_ADDRESS=127.0.0.1
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
}

nodes() { cat "$CLUSTER_DIR/nodes" 2>/dev/null || true; }

ctl() { (node_env "$1" && shift && "$RABBITMQ_BIN/rabbitmqctl" -n "$RABBITMQ_NODENAME" "$@"); }
queues() { (node_env "$1" && shift && "$RABBITMQ_BIN/rabbitmq-queues" -n "$RABBITMQ_NODENAME" "$@"); }

pid_of() {
  local file=$CLUSTER_DIR/node$1/rabbitmq.pid
  [[ -s $file ]] && echo "$(<"$file")"
}

start_node() {
  local i=$1 dir=$CLUSTER_DIR/node$1
  mkdir -p "$dir/mnesia" "$dir/log"
  cat >"$dir/rabbitmq.conf" <<EOF
listeners.tcp.local = 127.0.0.1:$(amqp_port "$i")
loopback_users.guest = true
disk_free_limit.absolute = 50MB
EOF
  echo "[]." >"$dir/advanced.config"
  (
    node_env "$i"
    "$RABBITMQ_BIN/rabbitmq-server" >"$dir/log/console.log" 2>&1 &
    echo $! >"$dir/launcher.pid"
  )
}

wait_node() {
  local i=$1
  for _ in $(seq 1 240); do
    if [[ -s $CLUSTER_DIR/node$i/rabbitmq.pid ]]; then
      ctl "$i" await_startup --timeout 120 >/dev/null 2>&1 && return 0
    fi
    sleep 0.5
  done
  echo "rabbitmq-cluster: node $(node_name "$i") did not start; see $CLUSTER_DIR/node$i/log" >&2
  return 1
}

cmd_start() {
  local n=${1:-3}
  if [[ -e $CLUSTER_DIR/nodes ]]; then
    echo "rabbitmq-cluster: $CLUSTER_DIR already holds a cluster; stop it first" >&2
    return 1
  fi
  mkdir -p "$CLUSTER_DIR/home"
  chmod 700 "$CLUSTER_DIR"
  head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr a-f A-F >"$CLUSTER_DIR/home/.erlang.cookie"
  chmod 400 "$CLUSTER_DIR/home/.erlang.cookie"
  : >"$CLUSTER_DIR/rabbitmq-env.conf"
  echo "[]." >"$CLUSTER_DIR/enabled_plugins"
  seq 1 "$n" >"$CLUSTER_DIR/nodes"
  for i in $(seq 1 "$n"); do start_node "$i"; done
  for i in $(seq 1 "$n"); do wait_node "$i" || return 1; done
  for i in $(seq 2 "$n"); do
    ctl "$i" stop_app >/dev/null
    ctl "$i" join_cluster "$(node_name 1)" >/dev/null
    ctl "$i" start_app >/dev/null
  done
  for i in $(seq 1 "$n"); do ctl "$i" await_startup --timeout 120 >/dev/null; done
  cmd_urls
}

cmd_stop() {
  local i pid
  for i in $(nodes); do
    for pid in $(pid_of "$i") $(cat "$CLUSTER_DIR/node$i/launcher.pid" 2>/dev/null); do
      kill -9 "$pid" 2>/dev/null || true
    done
  done
  # A half-started node without a pid file: its beam runs with this cluster's HOME, which is ours alone.
  pgrep -f -- "-home $CLUSTER_DIR/home " | xargs -r kill -9 2>/dev/null || true
  # epmd is shared with the system node: it forgets a dead node by itself.
  [[ $CLUSTER_DIR == /tmp/* || -e $CLUSTER_DIR/nodes ]] && rm -rf "$CLUSTER_DIR"
  return 0
}

cmd_restart() {
  local i=$1
  rm -f "$CLUSTER_DIR/node$i/rabbitmq.pid"
  start_node "$i"
  wait_node "$i"
}

cmd_urls() {
  local urls=() i
  for i in $(nodes); do urls+=("amqp://guest:guest@127.0.0.1:$(amqp_port "$i")/%2F"); done
  (IFS=";" && echo "${urls[*]}")
}

case ${1:-} in
  start) shift && cmd_start "$@" ;;
  stop) cmd_stop ;;
  urls) cmd_urls ;;
  pid) pid_of "$2" ;;
  restart) cmd_restart "$2" ;;
  ctl) shift && ctl "$@" ;;
  queues) shift && queues "$@" ;;
  *)
    sed -n '2,10p' "$0" >&2
    exit 2
    ;;
esac
