"""Every reach into dramatiq's and pika's private parts, in one place; urllib3's are named here too.

dispatch leans on a few things its dependencies do not promise to keep.
Each is here, named, with the reason it is worth the risk; the rest of the
package uses the public names this module gives them.
``tests/unit/test_upstream.py`` checks that every upstream name used here
(and urllib3's, below) still exists, and ``pyproject.toml`` pins dramatiq
(``>=2.2,<2.3``) and pika (``>=1.3.2,<1.5``) to the minor versions these were
written against: a minor release is where a private name may move.  When an
upgrade breaks one, this file and that test are the whole of what to read.

The reaches:

* pika's asynchronous channel and connection under the blocking ones
  (``BlockingChannel._impl``, ``BlockingConnection._impl``'s ``server_properties``);
* dramatiq's RabbitMQ consumer class (``_RabbitmqConsumer``) and its
  message's delivery tag (``_RabbitmqMessage._tag``), for cheap acks and
  for parking long delays;
* the RabbitMQ broker's queue-declaring steps (``_build_queue_arguments``,
  ``_declare_queue``, ``_declare_dq_queue``, ``_declare_xq_queue``,
  ``DEAD_MESSAGE_TTL``), turned into the hooks of :class:`HookedRabbitmqBroker`;
* how the broker starts over on a fresh connection or channel (``del
  broker.connection`` / ``del broker.channel``), marks a vanished queue for
  declaring again (``queues_pending``), and the properties its ``enqueue``
  publishes with -- for the publishers that do not go through ``enqueue``;
* the Results middleware's option lookup (``Results._lookup_options``), a failed
  message's exception (``MessageProxy._exception``) and the stub backend's read and
  store steps (``StubBackend._get``, ``_store``), under the in-memory call record;
* the worker module's globals (``has_results_middleware``,
  ``CONSUMER_RESTART_DELAY_SECS``, ``POST_PROCESS_MESSAGE_RETRY_DELAY_SECS``)
  and the Prometheus middleware's ``DB_PATH``.

urllib3's, which stay beside the code they serve in :mod:`dispatch.transport` (a
connection subclass cannot live apart from its pool):

* ``HTTPConnection._new_conn`` and ``_dns_host``, overridden by
  ``transport/_deadline.py`` so a host is looked up within the attempt's
  deadline and each address found is tried;
* ``PoolManager.pool_classes_by_scheme``, set there so a manager makes those
  connections;
* ``PoolManager.pools.dispose_func`` (``RecentlyUsedContainer``), set by
  ``transport/_connections.py`` so an evicted pool is closed.

urllib3 is pinned by major version only (``<3``): its security releases
matter more than these names, and the test fails on the release that moves one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any

import dramatiq
import pika
import pika.exceptions
from dramatiq import worker as dramatiq_worker
from dramatiq.broker import MessageProxy
from dramatiq.brokers.rabbitmq import DEAD_MESSAGE_TTL, RabbitmqBroker, _RabbitmqConsumer, _RabbitmqMessage
from dramatiq.common import dq_name, q_name, xq_name
from dramatiq.errors import ConnectionClosed
from dramatiq.middleware import prometheus as dramatiq_prometheus
from dramatiq.results import Results
from dramatiq.results.backend import Missing
from dramatiq.results.backends import StubBackend
from pika.adapters.blocking_connection import BlockingChannel
from pika.channel import Channel

# -- pika -------------------------------------------------------------------------------------


def async_channel(channel: BlockingChannel) -> Channel:
    """pika's asynchronous channel underneath a blocking one.

    The blocking channel can only publish-and-wait or ack-and-flush; the
    asynchronous one queues frames, which is what pipelined confirms and
    cheap acks need.
    """
    return channel._impl


def server_properties(connection: pika.BlockingConnection) -> dict[str, Any]:
    """The properties RabbitMQ announced when ``connection`` opened (``cluster_name``, ``version``, ...).

    pika keeps them on the asynchronous connection a blocking one wraps, and nowhere public.
    """
    return dict(getattr(connection._impl, "server_properties", None) or {})


# -- the RabbitMQ broker ----------------------------------------------------------------------


def reset_connection(broker: RabbitmqBroker) -> None:
    """Drop this thread's connection (and channel): the next use opens fresh ones.

    dramatiq's own ``enqueue`` does this after a connection or channel error;
    dispatch's publishers that bypass ``enqueue`` must do the same.
    """
    del broker.connection


def publish_properties(message: dramatiq.Message) -> pika.BasicProperties:
    """The properties ``RabbitmqBroker.enqueue`` publishes a message with: persistent, its priority."""
    return pika.BasicProperties(delivery_mode=2, priority=message.options.get("broker_priority"))


def declare_again(broker: RabbitmqBroker, queue_name: str) -> None:
    """Have the broker declare ``queue_name`` again before its next publish (a message came back unroutable)."""
    broker.queues_pending.add(q_name(queue_name))


class QuickAckConsumer(_RabbitmqConsumer):
    """dramatiq's consumer, acking without a synchronous flush, and asking its broker to park long delays.

    dramatiq hands each ack to the consumer thread, which then calls the
    *blocking* channel's ``basic_ack``: that runs a whole turn of pika's I/O
    loop per message, 12 % of the worker's CPU in the profile
    (benchmarks/PROFILE.md).  The asynchronous channel underneath only
    queues the frame; the consumer loop, which never stops turning, writes
    it a moment later.  An ack lost with a dropped connection means a
    redelivery either way, so nothing about delivery changes.
    """

    broker: HookedRabbitmqBroker

    def __next__(self) -> _RabbitmqMessage | None:
        """The next message, except one the broker parked (:meth:`HookedRabbitmqBroker.park`): acked, skipped.

        Parking happens here, before dramatiq's worker puts the message on
        its in-memory delay queue, because from there dramatiq would hold it
        unacked until its time.  ``None`` is what the consumer returns when
        nothing arrived, so the worker just asks again.
        """
        message = super().__next__()
        if message is not None and self.broker.park(message):
            self.ack(message)
            return None
        return message

    def ack(self, message: _RabbitmqMessage) -> None:  # type: ignore[override]  # dramatiq types it MessageProxy
        try:
            self.known_tags.remove(message._tag)
        except KeyError:
            self.logger.warning("Failed to ack message: not in known tags.")
            return
        try:
            self.connection.add_callback_threadsafe(partial(async_channel(self.channel).basic_ack, message._tag))
        except (pika.exceptions.AMQPConnectionError, pika.exceptions.AMQPChannelError) as exc:
            raise ConnectionClosed(exc) from None


class HookedRabbitmqBroker(RabbitmqBroker):
    """dramatiq's RabbitMQ broker with :class:`QuickAckConsumer` and its private steps as public hooks.

    dramatiq builds and declares queues in private methods; a subclass
    (:mod:`dispatch.brokers.rabbitmq`) overrides the hooks instead:

    * :meth:`queue_arguments` -- added to dramatiq's arguments of a queue and its ``.DQ``;
    * :meth:`dead_letter_arguments` -- added to those of its ``.XQ``;
    * :meth:`declare_or_keep` -- wraps each declare of a queue and its ``.DQ``;
    * :meth:`park` -- asked by the consumer about every message it receives.
    """

    @property
    def consumer_class(self) -> type[_RabbitmqConsumer]:
        return QuickAckConsumer

    def queue_arguments(self, queue_name: str) -> dict[str, Any]:
        return {}

    def dead_letter_arguments(self, queue_name: str) -> dict[str, Any]:
        return {}

    def declare_or_keep(self, name: str, declare: Callable[[], Any]) -> Any:
        return declare()

    def park(self, message: dramatiq.Message) -> bool:
        """Whether ``message`` was taken care of elsewhere (the consumer then acks and skips it)."""
        return False

    def reset_channel(self) -> None:
        """Drop this thread's channel (a refused declare closed it): the next use opens a fresh one."""
        del self.channel

    def _build_queue_arguments(self, queue_name: str) -> dict[str, Any]:
        return {**super()._build_queue_arguments(queue_name), **self.queue_arguments(queue_name)}

    def _declare_queue(self, queue_name: str) -> Any:
        return self.declare_or_keep(queue_name, partial(super()._declare_queue, queue_name))

    def _declare_dq_queue(self, queue_name: str) -> Any:
        return self.declare_or_keep(dq_name(queue_name), partial(super()._declare_dq_queue, queue_name))

    def _declare_xq_queue(self, queue_name: str) -> Any:
        extra = self.dead_letter_arguments(queue_name)
        if not extra:
            return super()._declare_xq_queue(queue_name)
        return self.channel.queue_declare(
            queue=xq_name(queue_name), durable=True, arguments={"x-message-ttl": DEAD_MESSAGE_TTL, **extra}
        )


# -- results ----------------------------------------------------------------------------------


def result_options(
    results: Results, broker: dramatiq.Broker, message: dramatiq.Message[Any] | MessageProxy
) -> tuple[bool, int]:
    """``(store_results, result_ttl)`` for ``message``, as dramatiq's Results middleware decides them."""
    store_results, result_ttl = results._lookup_options(broker, message)
    return bool(store_results), int(result_ttl)


def failure_of(message: MessageProxy) -> BaseException:
    """The exception a failed message ended with, as dramatiq's Results middleware reads it (``_exception``)."""
    return message._exception or Exception("unknown")


def stub_outcome_stored(backend: StubBackend, key: str) -> bool:
    """Whether the in-memory ``backend`` holds an unexpired outcome under ``key``."""
    return backend._get(key) is not Missing


def stub_store_outcome(backend: StubBackend, key: str, outcome: Any, ttl_ms: int) -> None:
    """Store the (wrapped) ``outcome`` under ``key`` in the in-memory ``backend`` for ``ttl_ms``."""
    backend._store(key, outcome, ttl_ms)


# -- the worker -------------------------------------------------------------------------------


def tune_worker() -> None:
    """Make dramatiq's worker (in this process) fit dispatch; called by :mod:`dispatch.tasks`, the worker's entry.

    * It recognises only dramatiq's own ``Results`` class, so with
      :class:`~dispatch.results.DurableResults` it would log "returned a
      value ... you haven't added the Results middleware" for every call:
      subclasses count too.
    * It waits 3 s before restarting a consumer and 5 s before retrying an
      ack on a dead connection; on a RabbitMQ cluster that is most of a
      node failover, so 1 s each.
    * It logs a WARNING "Message ... was skipped." for every skipped message;
      a call postponed by flow control (:mod:`dispatch.flow`) is skipped each
      time it waits, which is routine, so that line is dropped for those.
    """
    dramatiq_worker.has_results_middleware = lambda broker: any(  # type: ignore[assignment]
        isinstance(m, Results) for m in broker.middleware
    )
    dramatiq_worker.CONSUMER_RESTART_DELAY_SECS = 1.0
    dramatiq_worker.POST_PROCESS_MESSAGE_RETRY_DELAY_SECS = 1.0  # type: ignore[assignment]  # an int upstream; any number works
    skip_log = logging.getLogger("dramatiq.worker.WorkerThread")
    if not any(isinstance(f, _PostponedSkips) for f in skip_log.filters):
        skip_log.addFilter(_PostponedSkips())


class _PostponedSkips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.args[0] if isinstance(record.args, tuple) and record.args else None
        return not (record.msg == "Message %s was skipped." and getattr(message, "options", {}).get("postponed"))


def set_prometheus_db_path(path: str) -> None:
    """Point dramatiq's Prometheus middleware at ``path`` (its module-level ``DB_PATH``, read at boot)."""
    dramatiq_prometheus.DB_PATH = path
