"""RabbitMQ and Redis for a run: waiting for them, the ``dispatch-bench`` vhost, and emptying each system's
queues and Redis database between measurements, so no run consumes another's leftovers; and dropping the
outbox row's PostgreSQL table once it is done."""

from __future__ import annotations

import subprocess
import time

from config import AMQP_URL, CELERY_QUEUE, CELERY_REDIS, DISPATCH_QUEUE, DISPATCH_REDIS, VHOST
from launch import log


def wait_services(timeout: float = 120) -> None:
    """Wait until RabbitMQ and Redis accept connections (a test run may be restarting RabbitMQ)."""
    import pika
    import redis

    deadline = time.monotonic() + timeout
    while True:
        try:
            client = redis.Redis.from_url(DISPATCH_REDIS, socket_connect_timeout=2)
            client.ping()
            client.close()
            params = pika.URLParameters("amqp://guest:guest@127.0.0.1:5672/%2F")
            pika.BlockingConnection(params).close()
            return
        except (redis.RedisError, pika.exceptions.AMQPError, OSError) as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"RabbitMQ or Redis not reachable after {timeout:g}s: {exc!r}") from None
            log(f"waiting for RabbitMQ and Redis ({type(exc).__name__})")
            time.sleep(2)


def ensure_vhost() -> None:
    """Create the ``dispatch-bench`` vhost if it is missing, so a run never touches the tests' vhost."""
    import pika

    wait_services()
    try:
        pika.BlockingConnection(pika.URLParameters(AMQP_URL)).close()
        return
    except pika.exceptions.AMQPError:
        pass
    log(f"creating RabbitMQ vhost {VHOST}")
    for command in (["add_vhost", VHOST], ["set_permissions", "-p", VHOST, "guest", ".*", ".*", ".*"]):
        subprocess.run(["rabbitmqctl", *command], check=True, capture_output=True, timeout=120)
    pika.BlockingConnection(pika.URLParameters(AMQP_URL)).close()


def delete_queues(names: list[str], exchanges: tuple[str, ...] | list[str] = ()) -> None:
    """Drop queues (and exchanges) on the bench vhost, so no run consumes another's leftovers."""
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        channel = connection.channel()
        for name in names:
            channel.queue_delete(name)
        for name in exchanges:
            channel.exchange_delete(name)
    finally:
        connection.close()


def flush_redis(url: str) -> None:
    """Empty one Redis database (each system has its own)."""
    import redis

    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()


def clean_dispatch() -> None:
    """Empty this package's queues (main, delay, dead letter) and its Redis db."""
    delete_queues([DISPATCH_QUEUE, f"{DISPATCH_QUEUE}.DQ", f"{DISPATCH_QUEUE}.XQ"])
    flush_redis(DISPATCH_REDIS)


def clean_celery() -> None:
    """Empty the Celery port's queue, exchange and Redis db."""
    delete_queues([CELERY_QUEUE], [CELERY_QUEUE])
    flush_redis(CELERY_REDIS)


def drop_table(url: str, table: str) -> None:
    """Drop the outbox's table and its ``<table>_dead`` companion, so a run leaves nothing in the database."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(url, autocommit=True, connect_timeout=10) as connection:
        for name in (table, f"{table}_dead"):
            connection.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))
