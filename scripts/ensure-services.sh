#!/usr/bin/env bash
# Make sure RabbitMQ (with its management UI) and Redis are running on 127.0.0.1,
# installing them first on a Debian machine that lacks them, or starting the
# docker/ stack's services where a Docker engine runs instead.  Node.js is
# installed too: the test suite runs an endpoint written in it.  PostgreSQL
# (the outbox's database: trust auth on 127.0.0.1, database `test`) is
# installed and started on Debian the same way.
# Services already running are left exactly as they are.
set -euo pipefail

port_open() { (echo >"/dev/tcp/127.0.0.1/$1") >/dev/null 2>&1; }

wait_port() {
  for _ in $(seq 1 120); do port_open "$1" && return 0; sleep 0.5; done
  echo "ensure-services: nothing is listening on port $1 after 60s ($2)" >&2
  return 1
}

missing=()
port_open 5672 || command -v rabbitmq-server >/dev/null || missing+=(rabbitmq-server)
port_open 6379 || command -v redis-server >/dev/null || missing+=(redis-server)
command -v node >/dev/null || missing+=(nodejs)
fresh_postgres=0
if ! port_open 5432 && ! command -v pg_ctlcluster >/dev/null; then
  missing+=(postgresql)
  fresh_postgres=1
fi

if ((${#missing[@]})); then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    echo "ensure-services: installing ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  elif command -v docker >/dev/null && docker info >/dev/null 2>&1; then
    echo "ensure-services: starting RabbitMQ and Redis from docker/compose.yaml"
    docker compose -f "$(dirname "$0")/../docker/compose.yaml" up -d rabbitmq redis
  else
    echo "ensure-services: missing ${missing[*]}; install them or run docker/compose.yaml" >&2
    exit 1
  fi
fi

if ! port_open 5672; then
  echo "ensure-services: starting RabbitMQ"
  rabbitmq-server -detached
  wait_port 5672 RabbitMQ
  rabbitmqctl await_startup >/dev/null
fi

if ! port_open 6379; then
  echo "ensure-services: starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  wait_port 6379 Redis
fi

# The management UI/API: operators watch the queues there, `dispatch status` reads it.
if command -v rabbitmq-plugins >/dev/null && ! port_open 15672; then
  echo "ensure-services: enabling the RabbitMQ management plugin"
  rabbitmq-plugins enable rabbitmq_management >/dev/null
  wait_port 15672 "RabbitMQ management"
fi

# PostgreSQL, for the outbox.  A cluster this script installed gets trust auth on 127.0.0.1 (a
# throw-away test database, like the guest/guest RabbitMQ above); one already running is left alone.
if { ((fresh_postgres)) || ! port_open 5432; } && command -v pg_lsclusters >/dev/null; then
  read -r pg_version pg_cluster _ < <(pg_lsclusters -h | head -n 1) || true
  if [[ -z ${pg_version:-} ]]; then
    echo "ensure-services: no PostgreSQL cluster to start (pg_createcluster one)" >&2
    exit 1
  fi
  if ((fresh_postgres)); then
    conf=/etc/postgresql/$pg_version/$pg_cluster
    echo "listen_addresses = '127.0.0.1'" >"$conf/conf.d/90-dispatch.conf"
    printf 'local all all trust\nhost all all 127.0.0.1/32 trust\n' >"$conf/pg_hba.conf"
  fi
  # pg_ctlcluster must run as root (or postgres): through sudo, as ensure-browser.sh installs, when not root.
  as_root=()
  if [[ $(id -u) != 0 ]] && [[ $(id -un) != postgres ]]; then
    command -v sudo >/dev/null && as_root=(sudo)
  fi
  if [[ $(id -u) != 0 ]] && [[ $(id -un) != postgres ]] && ((${#as_root[@]} == 0)); then
    echo "ensure-services: PostgreSQL $pg_version/$pg_cluster is not running and starting it needs root:" \
      "run 'pg_ctlcluster $pg_version $pg_cluster start' as root" >&2
  else
    echo "ensure-services: starting PostgreSQL $pg_version/$pg_cluster"
    # apt may have started it before it was configured: restart
    if ${as_root[@]+"${as_root[@]}"} pg_ctlcluster "$pg_version" "$pg_cluster" restart; then
      wait_port 5432 PostgreSQL
    else
      echo "ensure-services: could not start PostgreSQL $pg_version/$pg_cluster (see above)" >&2
    fi
  fi
fi
if port_open 5432 && command -v psql >/dev/null \
  && [[ $(psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'test'" 2>/dev/null) == "" ]] \
  && psql -h 127.0.0.1 -U postgres -c 'SELECT 1' >/dev/null 2>&1; then
  echo "ensure-services: creating the PostgreSQL database test"
  psql -h 127.0.0.1 -U postgres -c 'CREATE DATABASE test' >/dev/null
fi
port_open 5432 || echo "ensure-services: no PostgreSQL on 127.0.0.1:5432; the outbox tests need one" >&2
