"""Every private dramatiq, pika and urllib3 name dispatch relies on (:mod:`dispatch.upstream` lists them) still exists,
and behaves as it assumes.

These fail on the upgrade that removes or changes one, before any worker
misbehaves; ``dispatch/upstream.py`` says why each reach is worth it and
``pyproject.toml`` pins the versions they were written against.
"""

from __future__ import annotations

import inspect
from typing import Any

import pika
import pika.connection
import urllib3
from dramatiq import Message
from dramatiq import worker as dramatiq_worker
from dramatiq.broker import MessageProxy
from dramatiq.brokers import rabbitmq
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import prometheus
from dramatiq.results import Results
from dramatiq.results.backend import Missing
from dramatiq.results.backends import StubBackend
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection
from urllib3._collections import RecentlyUsedContainer
from urllib3.connection import HTTPConnection

from dispatch import upstream
from dispatch.brokers.rabbitmq import QuorumRabbitmqBroker


def _parameters(function: Any) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_pika_keeps_the_asynchronous_channel_and_connection_under_the_blocking_ones():
    assert "self._impl = channel_impl" in inspect.getsource(BlockingChannel.__init__)
    assert "self._impl = self._create_connection(" in inspect.getsource(BlockingConnection.__init__)
    assert "self.server_properties = " in inspect.getsource(pika.connection.Connection)


def test_the_rabbitmq_consumer_and_its_message_tag():
    consumer = rabbitmq._RabbitmqConsumer
    assert {"ack", "nack", "__next__"} <= set(vars(consumer)), "dramatiq's _RabbitmqConsumer changed"
    source = inspect.getsource(consumer.__init__)
    for attribute in ("self.broker", "self.connection", "self.channel", "self.known_tags", "self.logger"):
        assert attribute in source
    assert "self._tag = tag" in inspect.getsource(rabbitmq._RabbitmqMessage.__init__)
    assert isinstance(vars(rabbitmq.RabbitmqBroker)["consumer_class"], property)
    assert "self.consumer_class(self, queue_name, prefetch, timeout)" in inspect.getsource(rabbitmq.RabbitmqBroker)


def test_the_rabbitmq_broker_declares_queues_in_the_steps_the_hooks_wrap():
    broker = rabbitmq.RabbitmqBroker
    for step in ("_build_queue_arguments", "_declare_queue", "_declare_dq_queue", "_declare_xq_queue"):
        assert _parameters(getattr(broker, step)) == ["self", "queue_name"], step
    assert isinstance(rabbitmq.DEAD_MESSAGE_TTL, int)
    assert "self._build_queue_arguments(queue_name)" in inspect.getsource(broker._declare_queue)
    assert "self._build_queue_arguments(queue_name)" in inspect.getsource(broker._declare_dq_queue)
    hooked = QuorumRabbitmqBroker(url="amqp://u:pw@r1/v", delivery_limit=3)  # connects to nothing
    assert hooked._build_queue_arguments("calls")["x-delivery-limit"] == 3


def test_the_rabbitmq_broker_starts_over_the_way_the_helpers_assume():
    broker = rabbitmq.RabbitmqBroker
    assert broker.connection.fdel is not None and broker.channel.fdel is not None  # del broker.connection / .channel
    assert "self.queues_pending: set[str] = set()" in inspect.getsource(broker.__init__)
    enqueue = inspect.getsource(broker.enqueue)
    assert "del self.connection" in enqueue
    assert 'delivery_mode=2,\n                        priority=message.options.get("broker_priority")' in enqueue
    properties = upstream.publish_properties(Message("q", "a", (), {}, {"broker_priority": 3}))
    assert (properties.delivery_mode, properties.priority) == (2, 3)
    assert isinstance(properties, pika.BasicProperties)


def test_the_results_middleware_looks_its_options_up_in_one_private_step():
    assert _parameters(Results._lookup_options) == ["self", "broker", "message"]
    broker = StubBroker()
    results = Results(backend=StubBackend(), store_results=True, result_ttl=1234)
    broker.add_middleware(results)
    message = Message("q", "unknown-actor", (), {}, {})
    assert upstream.result_options(results, broker, message) == (False, 0)  # an unknown actor stores nothing


def test_a_failed_message_keeps_its_exception_where_the_results_middleware_reads_it():
    message = MessageProxy(Message("q", "a", (), {}, {}))
    assert message._exception is None
    failure = ValueError("boom")
    message.stuff_exception(failure)
    assert upstream.failure_of(message) is failure


def test_the_stub_backend_reads_and_stores_in_private_steps():
    assert _parameters(StubBackend._get) == ["self", "message_key"]
    assert _parameters(StubBackend._store) == ["self", "message_key", "result", "ttl"]
    backend = StubBackend()
    assert backend._get("absent") is Missing
    assert not upstream.stub_outcome_stored(backend, "key")
    upstream.stub_store_outcome(backend, "key", {"result": 1}, 60_000)
    assert upstream.stub_outcome_stored(backend, "key")
    assert backend._get("key") == {"result": 1}


def test_the_worker_module_globals_dispatch_tunes():
    assert callable(dramatiq_worker.has_results_middleware)
    source = inspect.getsource(dramatiq_worker)
    assert "has_results_middleware(self.broker)" in source
    assert isinstance(dramatiq_worker.CONSUMER_RESTART_DELAY_SECS, float)
    assert "POST_PROCESS_MESSAGE_RETRY_DELAY_SECS" in source
    assert '"Message %s was skipped."' in source  # the line the postponed-skips filter drops
    assert isinstance(prometheus.DB_PATH, str)


def test_urllib3_connects_through_the_steps_the_deadline_overrides():
    assert _parameters(HTTPConnection._new_conn) == ["self"]
    assert "(self._dns_host, self.port)" in inspect.getsource(HTTPConnection._new_conn)
    connection = HTTPConnection("example.com", 80)
    assert connection._dns_host == "example.com"
    connection._dns_host = "192.0.2.1"  # what transport/_deadline.py sets for each address it tries...
    assert connection.host == "192.0.2.1"  # ...and puts back before TLS and the Host header read .host


def test_urllib3_pool_managers_pick_pool_classes_and_dispose_of_evicted_pools_as_assumed():
    manager = urllib3.PoolManager(num_pools=1)
    assert set(manager.pool_classes_by_scheme) == {"http", "https"}
    assert "self.pool_classes_by_scheme[scheme]" in inspect.getsource(urllib3.PoolManager._new_pool)
    assert isinstance(manager.pools, RecentlyUsedContainer)
    disposed: list[Any] = []
    manager.pools.dispose_func = disposed.append
    first = manager.connection_from_host("a.example", 80)
    manager.connection_from_host("b.example", 80)  # evicts the first: num_pools=1
    assert disposed == [first]
